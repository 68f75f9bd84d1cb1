// What both browser flows (flow.mjs, live.mjs) need: Debian's headless
// Chromium launched the same way, and pages that record every page error,
// console error and failed sub-resource as a problem that fails the run.

import { chromium } from "playwright-core";

// Chromium without a sandbox, GPU or background traffic; `streampulse.test`
// resolves to the box on 127.0.0.1 (a non-localhost name, so pages run as the
// insecure LAN origin they really are). `extraArgs` add flags.
export async function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.SP_CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic",
      ...extraArgs,
      "--host-resolver-rules=MAP streampulse.test 127.0.0.1",
    ],
  });
}

// A new context and page (1280x900, 20 s timeouts) whose problems go into
// `problems`. Error statuses of the pages themselves are expected (a 400 form,
// a 401 login); a failing stylesheet, script, picture or fetch is not, unless
// `expectedFailure(response)` says so.
export async function openPage(browser, problems, expectedFailure = () => false) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.request().resourceType() !== "document" && r.status() >= 400 && !expectedFailure(r)) problems.push(`${r.status()} for ${r.url()}`);
  });
  return { context, page };
}
