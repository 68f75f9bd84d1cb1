// The live grid in Debian's headless Chromium, driven by playwright-core.
//
// Run by tests/it/live/chromium.rs (`e2e_chromium_live_grid`), which starts the daemon
// (caps: 3 live views, 2 per camera), GStreamer's RTSP server and ffmpeg's
// single-client MJPEG server, and passes:
//   SP_BASE        http://streampulse.test:<port> (a non-localhost name: the
//                  page runs as the insecure LAN origin it really is)
//   SP_OUT         folder for screenshots
//   SP_PASSWORD    the admin password
//   SP_RTSP_PORT   the RTSP server's port, SP_MJPEG_PORT the MJPEG server's
//                  (camera connections are counted in /proc/net/tcp)
//
// Streams: "Lobby (H.264)", "Garage (MJPEG)", "Yard (H.265)".
// Flow: log in -> grid with thumbnails -> play H.264 (MSE) and MJPEG (canvas):
// frames advance, pictures not blank, latency shown -> pause and resume ->
// a second browser shares the camera session -> a third hits both caps ->
// stop -> close everything -> the camera connections close.
// Any page error or console error fails the run.

import { readFileSync } from "node:fs";
import path from "node:path";
import { launchChromium, openPage } from "./common.mjs";

const BASE = process.env.SP_BASE;
const OUT = process.env.SP_OUT;
const PASSWORD = process.env.SP_PASSWORD;
const RTSP_PORT = Number(process.env.SP_RTSP_PORT);
const MJPEG_PORT = Number(process.env.SP_MJPEG_PORT);
for (const [k, v] of Object.entries({ SP_BASE: BASE, SP_OUT: OUT, SP_PASSWORD: PASSWORD, RTSP_PORT, MJPEG_PORT })) {
  if (!v) { console.error(`missing ${k}`); process.exit(2); }
}
const LOBBY = "Lobby (H.264)", GARAGE = "Garage (MJPEG)", YARD = "Yard (H.265)";

const problems = [];
function step(name) { console.log(`step: ${name}`); }
function expect(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Established connections to a loopback server on `port`, counted on the
// server's side (local port == port).
function established(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let t = "";
    try { t = readFileSync(f, "utf8"); } catch { continue; }
    for (const line of t.split("\n").slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length > 3 && c[1].endsWith(":" + hex) && c[3] === "01") n++;
    }
  }
  return n;
}
// Connections that stay: the fewest seen over `ms` (monitor probes come and go).
async function persistent(port, ms = 2500) {
  let min = Infinity;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) min = Math.min(min, established(port));
  return min;
}
async function waitUntil(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const browser = await launchChromium(["--autoplay-policy=no-user-gesture-required"]);

// A refused live stream (503: a viewer cap) is part of the flow.
const capRefusal = (r) => r.status() === 503 && /\/live\/[^/]+\/stream$/.test(new URL(r.url()).pathname);

async function openGrid() {
  const { context, page } = await openPage(browser, problems, capRefusal);
  await page.goto(`${BASE}/login?next=/live`);
  await page.fill("#f-password", PASSWORD);
  await page.click("main form.form button[type=submit]");
  await page.waitForURL(`${BASE}/live`);
  return { context, page };
}

const tile = (page, name) => page.locator(`.tile[data-stream="${name}"]`);
const frames = (page, name) => page.evaluate((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0), name);
const attr = (page, name, a) => page.evaluate(([n, a]) => document.querySelector(`.tile[data-stream="${n}"]`).getAttribute(a), [name, a]);

// Spread of the luma of the tile's picture (video or canvas): 0 for a blank one.
const pictureSpread = (page, name) => page.evaluate((n) => {
  const v = document.querySelector(`.tile[data-stream="${n}"] .view`);
  if (!v) return -1;
  const w = v.videoWidth || v.width, h = v.videoHeight || v.height;
  if (!w || !h) return -2;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  ctx.drawImage(v, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  let sum = 0, sum2 = 0;
  const n2 = d.length / 4;
  for (let i = 0; i < d.length; i += 4) {
    const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    sum += y; sum2 += y * y;
  }
  const mean = sum / n2;
  return Math.sqrt(Math.max(0, sum2 / n2 - mean * mean));
}, name);

async function advancing(page, name, label) {
  const a = await frames(page, name);
  await sleep(1500);
  const b = await frames(page, name);
  expect(b >= a + 8, `${label}: frame counter should advance (${a} -> ${b})`);
  return b - a;
}

const latency = {};
try {
  step("log in and open the grid (insecure origin)");
  const A = await openGrid();
  const page = A.page;
  expect(await page.evaluate(() => window.isSecureContext) === false, "the page must run as an insecure (LAN http) origin");
  expect(await page.evaluate(() => typeof VideoDecoder) === "undefined", "no WebCodecs on an insecure origin (MSE is used)");
  expect(await page.locator(".tile").count() === 3, "three tiles");

  step("thumbnails arrive (from the monitor's probes)");
  await page.waitForFunction((names) => names.every((n) => {
    const img = document.querySelector(`.tile[data-stream="${n}"] [data-f=thumb]`);
    return img.src.includes("?v=") && img.complete && img.naturalWidth > 0;
  }), [LOBBY, GARAGE], { timeout: 45000 });
  const hevc = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L63.90"'));
  if (!hevc) {
    expect((await tile(page, YARD).locator("[data-f=status]").textContent()).includes("No live view for H.265"),
      "the H.265 tile says honestly that this browser cannot play it");
    expect(await tile(page, YARD).locator("[data-act=play]").isDisabled(), "no Play for H.265 here");
  }
  await page.screenshot({ path: path.join(OUT, "live-grid.png"), fullPage: true });

  step("play H.264 (fragmented MP4 into Media Source Extensions)");
  await tile(page, LOBBY).locator("[data-act=play]").click();
  await page.waitForFunction((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0) > 20, LOBBY, { timeout: 30000 });
  expect(await attr(page, LOBBY, "data-live") === "playing", "H.264 tile playing");
  const h264Spread = await pictureSpread(page, LOBBY);
  expect(h264Spread > 20, `the H.264 picture is not blank (luma spread ${h264Spread})`);
  await advancing(page, LOBBY, "H.264");

  step("play MJPEG (multipart relay onto a canvas)");
  await tile(page, GARAGE).locator("[data-act=play]").click();
  await page.waitForFunction((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0) > 10, GARAGE, { timeout: 30000 });
  const mjSpread = await pictureSpread(page, GARAGE);
  expect(mjSpread > 20, `the MJPEG picture is not blank (luma spread ${mjSpread})`);
  await advancing(page, GARAGE, "MJPEG");
  expect(await persistent(MJPEG_PORT) === 1, "one MJPEG camera session");
  expect(await persistent(RTSP_PORT) === 1, "one RTSP camera session");

  step("latency is measured and shown");
  await page.waitForFunction((n) => document.querySelector(`.tile[data-stream="${n}"] [data-f=stats]`).textContent.includes("glass-to-glass"),
    LOBBY, { timeout: 20000 });
  await sleep(3000);
  latency.h264 = Number(await attr(page, LOBBY, "data-latency"));
  latency.h264BoxToScreen = Number(await attr(page, LOBBY, "data-box-to-screen"));
  latency.mjpegBoxToScreen = Number(await attr(page, GARAGE, "data-box-to-screen"));
  console.log(`latency: ${await tile(page, LOBBY).locator("[data-f=stats]").textContent()}`);
  console.log(`latency: ${await tile(page, GARAGE).locator("[data-f=stats]").textContent()}`);
  expect(latency.h264 > 0 && latency.h264 < 5000, `H.264 glass-to-glass latency is a number: ${latency.h264}`);
  await page.screenshot({ path: path.join(OUT, "live-playing.png"), fullPage: true });
  await tile(page, LOBBY).screenshot({ path: path.join(OUT, "live-tile.png") });

  step("pause keeps the picture, stops the frames, frees the camera session; play resumes");
  await tile(page, LOBBY).locator("[data-act=pause]").click();
  expect(await attr(page, LOBBY, "data-live") === "paused", "paused");
  await sleep(300);
  const p0 = await frames(page, LOBBY);
  await sleep(1500);
  expect(await frames(page, LOBBY) === p0, "no frames while paused");
  expect(await pictureSpread(page, LOBBY) > 20, "the last picture stays while paused");
  await waitUntil("the RTSP session to close after pause", async () => await persistent(RTSP_PORT, 1000) === 0, 20000);
  await tile(page, LOBBY).locator("[data-act=play]").click();
  await page.waitForFunction(([n, f]) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames) > f + 10, [LOBBY, p0], { timeout: 30000 });

  step("a second browser shares the camera session");
  const B = await openGrid();
  await tile(B.page, LOBBY).locator("[data-act=play]").click();
  await B.page.waitForFunction((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0) > 10, LOBBY, { timeout: 30000 });
  expect(await persistent(RTSP_PORT) === 1, "two viewers, one RTSP camera session");

  step("a third browser hits the per-camera cap, then the total cap");
  const C = await openGrid();
  await tile(C.page, LOBBY).locator("[data-act=play]").click();
  await C.page.waitForFunction((n) => document.querySelector(`.tile[data-stream="${n}"]`).dataset.error === "503", LOBBY);
  const perCam = await tile(C.page, LOBBY).locator("[data-f=status]").textContent();
  expect(perCam.includes("already has 2 live viewers"), `per-camera cap explained: ${perCam}`);
  await tile(C.page, GARAGE).locator("[data-act=play]").click();
  await C.page.waitForFunction((n) => document.querySelector(`.tile[data-stream="${n}"]`).dataset.error === "503", GARAGE);
  const total = await tile(C.page, GARAGE).locator("[data-f=status]").textContent();
  expect(total.includes("All 3 live views"), `total cap explained: ${total}`);
  await C.page.screenshot({ path: path.join(OUT, "live-cap.png"), fullPage: true });

  step("stop shows the thumbnail again");
  await tile(page, GARAGE).locator("[data-act=stop]").click();
  expect(await attr(page, GARAGE, "data-live") === "idle", "stopped");
  expect(await tile(page, GARAGE).locator("[data-f=thumb]").isVisible(), "thumbnail visible after stop");
  expect(await tile(page, GARAGE).locator(".view").count() === 0, "no player after stop");

  step("closing every page closes the camera connections");
  const closed = Date.now();
  for (const x of [A, B, C]) await x.context.close();
  await waitUntil("the RTSP camera session to close", async () => await persistent(RTSP_PORT, 1000) === 0, 20000);
  await waitUntil("the MJPEG camera session to close", () => established(MJPEG_PORT) === 0, 20000);
  console.log(`camera connections closed ${Date.now() - closed} ms after the pages closed`);
  console.log(`LATENCY h264_glass_to_glass_ms=${latency.h264} h264_box_to_screen_ms=${latency.h264BoxToScreen} mjpeg_box_to_screen_ms=${latency.mjpegBoxToScreen}`);
  expect(problems.length === 0, `problems:\n${problems.join("\n")}`);
  console.log("E2E LIVE OK");
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error(`problems:\n${problems.join("\n")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
