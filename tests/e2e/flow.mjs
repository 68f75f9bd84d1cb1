// End-to-end flow of the StreamPulse web GUI in Debian's headless Chromium,
// driven by playwright-core (no browser download: /usr/bin/chromium).
//
// Run by tests/it/web/chromium.rs (`e2e_chromium_flow`), which starts the daemon and
// a GStreamer RTSP server and passes:
//   SP_BASE      http://streampulse.test:<port>  (a non-localhost name, so the
//                page runs as the insecure LAN origin it really is)
//   SP_PORT      the daemon's port on 127.0.0.1 (for the host mapping)
//   SP_RTSP      rtsp://127.0.0.1:<port>/h264
//   SP_OUT       folder for screenshots
//   SP_PASSWORD  the admin password to set
//
// Flow: first-boot setup -> login -> add the RTSP stream -> it turns UP on
// the dashboard (live refresh) -> stream page -> Check now shows a picture
// that is not blank -> edit (rename) -> delete. Any uncaught page error or
// console error (e.g. a CSP violation) fails the run.

import path from "node:path";
import { launchChromium, openPage } from "./common.mjs";

const BASE = process.env.SP_BASE;
const RTSP = process.env.SP_RTSP;
const OUT = process.env.SP_OUT;
const PASSWORD = process.env.SP_PASSWORD;
for (const [k, v] of Object.entries({ SP_BASE: BASE, SP_RTSP: RTSP, SP_OUT: OUT, SP_PASSWORD: PASSWORD })) {
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
}

const problems = [];
function step(name) { console.log(`step: ${name}`); }
function fail(msg) { throw new Error(msg); }
function expect(cond, msg) { if (!cond) fail(msg); }

const browser = await launchChromium();

try {
  const { context, page } = await openPage(browser, problems);
  const submit = () => page.click("main form.form button[type=submit]");
  const shot = (name, opts = {}) => page.screenshot({ path: path.join(OUT, name), fullPage: true, ...opts });

  step("first boot leads to /setup");
  await page.goto(`${BASE}/`);
  expect(new URL(page.url()).pathname === "/setup", `expected /setup, at ${page.url()}`);
  expect(await page.evaluate(() => window.isSecureContext) === false,
    "the page must run as an insecure (LAN http) origin");
  await shot("setup.png");

  step("setup: mismatched passwords are shown next to the field");
  await page.fill("#f-password", PASSWORD);
  await page.fill("#f-password2", PASSWORD + "x");
  await submit();
  expect((await page.textContent("#err-password2")).includes("differ"), "mismatch error next to the field");

  step("setup: set the password");
  await page.fill("#f-password", PASSWORD);
  await page.fill("#f-password2", PASSWORD);
  await page.fill("#f-device_name", "Lab box");
  await page.fill("#f-timezone", "Europe/Berlin");
  await submit();
  await page.waitForURL(/\/login/);

  step("login");
  await page.fill("#f-password", "not the password");
  await submit();
  expect((await page.textContent("#err-form")).includes("Wrong password"), "wrong password is refused");
  await page.fill("#f-password", PASSWORD);
  await submit();
  await page.waitForURL(`${BASE}/`);
  expect((await page.textContent("#summary")).includes("No streams"), "empty dashboard");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "sp_session");
  expect(session && session.httpOnly && session.sameSite === "Strict", `session cookie flags: ${JSON.stringify(session)}`);
  expect(await page.evaluate(() => document.cookie.includes("sp_session")) === false, "HttpOnly: not visible to scripts");

  step("add the RTSP stream");
  await page.click("nav >> text=Add stream");
  await page.waitForURL(/\/add$/);
  await page.fill("#f-name", "Lobby camera");
  await page.fill("#f-url", "not a url");
  await submit();
  expect((await page.textContent("#err-url")).includes("not a valid URL"), "URL error next to the field");
  await page.fill("#f-url", RTSP);
  await submit();
  await page.waitForURL(/\/streams\/Lobby%20camera/);

  step("add a second stream with a wrong path");
  await page.goto(`${BASE}/add`);
  await page.fill("#f-name", "Garage");
  await page.fill("#f-url", RTSP.replace(/\/[^/]*$/, "/no-such-path"));
  await submit();
  await page.waitForURL(/\/streams\/Garage/);

  step("the stream turns UP on the dashboard without a reload");
  await page.goto(`${BASE}/`);
  const card = page.locator('[data-stream="Lobby camera"]');
  await card.waitFor();
  await page.waitForFunction(
    () => document.querySelector('[data-stream="Lobby camera"] [data-f="state"]').textContent.includes("UP"),
    null, { timeout: 45000 });
  expect((await card.locator('[data-f="media"]').textContent()).includes("h264"), "codec on the card");
  expect((await card.locator('[data-f="latency"]').textContent()).match(/^\d+ ms$/), "latency on the card");
  await page.waitForFunction(
    () => document.querySelector('[data-stream="Garage"] [data-f="state"]').textContent.includes("DOWN"),
    null, { timeout: 45000 });
  expect((await page.textContent('[data-stream="Garage"] [data-f="last_fail"]')).includes("not_found"),
    "the failure reason is on the card");
  await page.waitForFunction(() => document.getElementById("live").textContent.includes("updated"));
  await shot("dashboard.png");
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("dashboard-phone.png");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 0, `the phone layout scrolls sideways by ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 900 });

  step("stream page");
  await card.locator("h2 a").click();
  await page.waitForURL(/\/streams\/Lobby%20camera$/);
  await page.locator("figure.chart svg").waitFor();
  expect((await page.textContent("#url")).startsWith("rtsp://127.0.0.1"), "redacted URL shown");
  await shot("stream.png");
  await page.setViewportSize({ width: 390, height: 844 });
  const streamOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(streamOverflow <= 0, `the stream page scrolls sideways on a phone by ${streamOverflow}px`);
  await page.setViewportSize({ width: 1280, height: 900 });

  step("check now shows a picture that is not blank");
  await page.click("button:has-text('Check now')");
  await page.waitForURL(/\/preview$/, { timeout: 30000 });
  expect((await page.textContent("#verdict")).includes("Video arrives"), `verdict: ${await page.textContent("#verdict")}`);
  const img = page.locator("#preview-img");
  await img.waitFor();
  await page.waitForFunction(() => {
    const i = document.getElementById("preview-img");
    return i.complete && i.naturalWidth > 0;
  });
  const stats = await page.evaluate(() => {
    const i = document.getElementById("preview-img");
    const c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(i, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let n = 0, sum = 0, sq = 0;
    const colours = new Set();
    for (let p = 0; p < d.length; p += 4) {
      const y = 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2];
      sum += y; sq += y * y; n++;
      colours.add(((d[p] >> 5) << 6) | ((d[p + 1] >> 5) << 3) | (d[p + 2] >> 5));
    }
    const mean = sum / n;
    return { w: c.width, h: c.height, mean, sd: Math.sqrt(sq / n - mean * mean), colours: colours.size };
  });
  console.log(`preview: ${JSON.stringify(stats)}`);
  expect(stats.w >= 160 && stats.h >= 120, `preview size ${stats.w}x${stats.h}`);
  expect(stats.sd > 20 && stats.colours >= 6, `the preview looks blank: ${JSON.stringify(stats)}`);
  await shot("preview.png");

  step("edit: rename and change the interval");
  await page.goto(`${BASE}/streams/Lobby%20camera/edit`);
  expect(await page.inputValue("#f-url") === RTSP, "URL pre-filled");
  expect(await page.inputValue("#f-password") === "", "password never pre-filled");
  await page.fill("#f-name", "Lobby camera 2");
  await page.fill("#f-interval", "7");
  await submit();
  await page.waitForURL(/\/streams\/Lobby%20camera%202/);
  expect((await page.textContent("h1")).includes("Lobby camera 2"), "renamed");
  expect((await page.textContent(".facts")).includes("every 7 s"), "new interval shown");
  await page.goto(`${BASE}/`);
  await page.locator('[data-stream="Lobby camera 2"]').waitFor();
  expect(await page.locator('[data-stream="Lobby camera"]').count() === 0, "old name gone");

  step("delete");
  await page.goto(`${BASE}/streams/Lobby%20camera%202`);
  await page.click("main a:has-text('Delete')");
  await page.waitForURL(/\/delete$/);
  await page.click("main button:has-text('Delete')");
  await page.waitForURL(`${BASE}/?msg=deleted`);
  expect(await page.locator('[data-stream="Lobby camera 2"]').count() === 0, "card gone after delete");
  await page.goto(`${BASE}/streams/Garage/delete`);
  await page.click("main button:has-text('Delete')");
  await page.waitForURL(`${BASE}/?msg=deleted`);
  expect(await page.locator("[data-stream]").count() === 0, "no cards after deleting both");
  expect((await page.textContent("#summary")).includes("No streams"), "empty again");

  step("logout");
  await page.click("button:has-text('Log out')");
  await page.waitForURL(/\/login/);
  await page.goto(`${BASE}/`);
  expect(new URL(page.url()).pathname === "/login", "logged out: back to the login page");

  if (problems.length) fail(problems.join("\n"));
  console.log("E2E OK");
} catch (e) {
  console.error(`E2E FAILED: ${e.message}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    const body = await p.evaluate(() => document.body ? document.body.innerText : "").catch(() => "");
    console.error(`at ${p.url()}:\n${body.slice(0, 1500)}`);
  }
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
