// The box's own camera (issue 21) in the live grid, in Debian's headless
// Chromium, driven by playwright-core.
//
// Run by tests/it/live/box_camera.rs (`e2e_chromium_box_camera_in_the_grid`),
// which starts the daemon with one stream, "Box camera" (url libcamera:0,
// the rpicam-vid stand-in as its capture command), and passes:
//   SP_BASE      http://streampulse.test:<port> (an insecure LAN origin: MSE)
//   SP_OUT       folder for screenshots
//   SP_PASSWORD  the admin password
//
// Flow: log in -> grid -> play the box camera (fMP4 into Media Source
// Extensions): frames advance, the picture is not blank -> stop.
// Any page error or console error fails the run.

import path from "node:path";
import { launchChromium, openPage } from "./common.mjs";

const BASE = process.env.SP_BASE;
const OUT = process.env.SP_OUT;
const PASSWORD = process.env.SP_PASSWORD;
for (const [k, v] of Object.entries({ SP_BASE: BASE, SP_OUT: OUT, SP_PASSWORD: PASSWORD })) {
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
}
const CAM = "Box camera";
const problems = [];
function step(name) { console.log(`step: ${name}`); }
function expect(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const frames = (page) => page.evaluate((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0), CAM);
// Spread of the luma of the tile's video: 0 for a blank picture.
const pictureSpread = (page) => page.evaluate((n) => {
  const v = document.querySelector(`.tile[data-stream="${n}"] .view`);
  if (!v || !v.videoWidth) return -1;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext("2d");
  ctx.drawImage(v, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sum2 = 0;
  for (let i = 0; i < d.length; i += 4) {
    const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    sum += y; sum2 += y * y;
  }
  const n2 = d.length / 4, mean = sum / n2;
  return Math.sqrt(Math.max(0, sum2 / n2 - mean * mean));
}, CAM);

const browser = await launchChromium(["--autoplay-policy=no-user-gesture-required"]);
try {
  step("log in and open the grid");
  const { page } = await openPage(browser, problems);
  await page.goto(`${BASE}/login?next=/live`);
  await page.fill("#f-password", PASSWORD);
  await page.click("main form.form button[type=submit]");
  await page.waitForURL(`${BASE}/live`);
  const tile = page.locator(`.tile[data-stream="${CAM}"]`);
  expect(await tile.count() === 1, "the box camera has a tile");

  step("play the box camera (fMP4 into MSE)");
  await tile.locator("[data-act=play]").click();
  await page.waitForFunction((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0) > 20, CAM, { timeout: 30000 });
  expect(await tile.getAttribute("data-live") === "playing", "the tile plays");
  const size = await page.evaluate((n) => {
    const v = document.querySelector(`.tile[data-stream="${n}"] .view`);
    return `${v.videoWidth}x${v.videoHeight}`;
  }, CAM);
  expect(size === "320x240", `the video is the size asked of the camera: ${size}`);
  const spread = await pictureSpread(page);
  expect(spread > 20, `the picture is not blank (luma spread ${spread})`);
  const a = await frames(page);
  await sleep(1500);
  const b = await frames(page);
  expect(b >= a + 8, `the frame counter advances (${a} -> ${b})`);
  await tile.screenshot({ path: path.join(OUT, "box-camera-tile.png") });

  step("stop");
  await tile.locator("[data-act=stop]").click();
  expect(await tile.getAttribute("data-live") === "idle", "stopped");
  expect(problems.length === 0, `problems:\n${problems.join("\n")}`);
  console.log("E2E BOX CAMERA OK");
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error(`problems:\n${problems.join("\n")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
