// What both end-to-end scripts need from Chromium: Debian's headless browser
// launched the same way, and a page that records every page error, console
// error and failed sub-resource, so a CSP violation or a broken asset fails
// the run instead of passing unseen.

import { chromium } from "playwright-core";

// Debian's /usr/bin/chromium (no browser download); streampulse.test maps to
// loopback so pages run as the insecure LAN origin the box really is.
export function launch(extraArgs = []) {
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

// A new 1280×900 context and page whose problems are pushed to `problems`.
// Error statuses of documents are expected (a 400 form, a 401 login); a
// failing stylesheet, script, picture or fetch is not, unless `allowed(r)`.
export async function watchedPage(browser, problems, allowed = () => false) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.request().resourceType() !== "document" && r.status() >= 400 && !allowed(r)) problems.push(`${r.status()} for ${r.url()}`);
  });
  return { context, page };
}
