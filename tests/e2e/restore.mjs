// Restoring a backup through the System page in Debian's headless Chromium:
// the page's own script (app.js: the file as the request body with the
// session's CSRF token, the upload's progress, then waiting for the box to
// come back from its restart).
//
// Run by tests/it/backup.rs (`restore_form_in_chromium`), which starts box B
// on a fixed port (it restarts in place) and passes:
//   SP_BASE      http://streampulse.test:<port>
//   SP_FILE      box A's backup (.spbackup)
//   SP_PASSWORD  the admin password (the same on both boxes here)
//
// Flow: log in to B -> System -> choose the file -> Restore -> the page lands
// on /login?msg=restored by itself -> log in -> the box is now "Box A".

import { launchChromium, openPage } from "./common.mjs";

const BASE = process.env.SP_BASE;
const FILE = process.env.SP_FILE;
const PASSWORD = process.env.SP_PASSWORD;
for (const [k, v] of Object.entries({ SP_BASE: BASE, SP_FILE: FILE, SP_PASSWORD: PASSWORD })) {
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
}

const problems = [];
function step(name) { console.log(`step: ${name}`); }
function expect(cond, msg) { if (!cond) throw new Error(msg); }

const browser = await launchChromium();

try {
  // While the box restarts, the page's /healthz polls may be refused.
  const { page } = await openPage(browser, problems, (r) => new URL(r.url()).pathname === "/healthz");
  const logIn = async () => {
    await page.fill("#f-password", PASSWORD);
    await page.click("main form.form button[type=submit]");
    await page.waitForURL((u) => new URL(u).pathname === "/");
  };

  step("log in to box B");
  await page.goto(`${BASE}/login`);
  await logIn();
  expect((await page.textContent("header")).includes("Box B"), "box B's name in the header");

  step("restore box A's backup on the System page");
  await page.goto(`${BASE}/system`);
  await page.setInputFiles("#restore input[type=file]", FILE);
  await page.click("#restore button[type=submit]");
  await page.waitForURL(/\/login\?msg=restored/, { timeout: 60000 });
  expect((await page.textContent("main")).includes("Backup restored"), "the login page says the backup was restored");

  step("log in: the box is box A now");
  await logIn();
  expect((await page.textContent("header")).includes("Box A"), "box A's name in the header after the restore");

  if (problems.length) throw new Error(problems.join("\n"));
  console.log("RESTORE OK");
} catch (e) {
  console.error(`RESTORE FAILED: ${e.message}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    const body = await p.evaluate(() => document.body ? document.body.innerText : "").catch(() => "");
    console.error(`at ${p.url()}:\n${body.slice(0, 1500)}`);
  }
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
