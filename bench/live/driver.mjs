// The browser end of bench/live_latency.py (issue 21): Debian's headless
// Chromium (tests/e2e/common.mjs) shows one live path and, for every
// picture presented, reads the stamp (bench/live/stamp.py) back from the
// pixels and records now - stamp on the same machine's clock.
//
//   SP_MODE=ours  SP_BASE=http://streampulse.test:<port> SP_PASSWORD=...
//       logs in, opens the /live grid, plays the "Box camera" tile (fMP4 into
//       MSE) and reads each frame in the <video>'s requestVideoFrameCallback:
//       "at" is the frame's presentationTime (handed to the compositor).
//   SP_MODE=peer  SP_URL=http://127.0.0.1:<port>/index.html
//       pistreaming's page: jsmpg.js draws into a canvas; each picture is read
//       in its ondecodeframe hook, "at" is the time of that hook (the canvas
//       was just drawn; it is composited with the next frame).
//   SP_SECONDS   how long to record after the warm-up [20]
//   SP_WARMUP    seconds of frames ignored first [3]
//
// Prints one JSON line: {frames, undecodable, latency_ms: [...],
// display_wait_ms: [...] (video only: expectedDisplayTime - presentationTime),
// buffered_ahead_ms: [...] (video only: media buffered past the frame shown),
// first_bad: [...], renderer}. Exits 1 on a page error.

import { launchChromium, openPage } from "../../tests/e2e/common.mjs";

const MODE = process.env.SP_MODE;
const SECONDS = Number(process.env.SP_SECONDS || 20);
const WARMUP = Number(process.env.SP_WARMUP || 3);
const CAM = "Box camera";

// Installed in the page before any script: the stamp reader and the record.
function pageSide() {
  const W = 640, BLOCK = 32, PER_ROW = 20;
  const c = document.createElement("canvas");
  c.width = W; c.height = 2 * BLOCK;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  function crc8(bytes) {
    let crc = 0;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  }
  // The stamp of `src` (a video or canvas at 640 wide): {ms32} or {bad}.
  function read(src) {
    ctx.drawImage(src, 0, 0, W, 2 * BLOCK, 0, 0, W, 2 * BLOCK);
    const d = ctx.getImageData(0, 0, W, 2 * BLOCK).data;
    const bits = [];
    for (let i = 0; i < 40; i++) {
      const x0 = (i % PER_ROW) * BLOCK + 8, y0 = Math.floor(i / PER_ROW) * BLOCK + 8;
      let sum = 0;
      for (let y = y0; y < y0 + 16; y++) for (let x = x0; x < x0 + 16; x++) {
        const p = (y * W + x) * 4;
        sum += 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2];
      }
      const m = sum / 256;
      if (m > 80 && m < 170) return { bad: `block ${i} luma ${m.toFixed(0)}` };
      bits.push(m >= 128 ? 1 : 0);
    }
    let v = 0;
    for (let i = 0; i < 32; i++) v = v * 2 + bits[i];
    let crc = 0;
    for (let i = 32; i < 40; i++) crc = crc * 2 + bits[i];
    const want = crc8([(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
    if (crc !== want) return { bad: `crc ${crc} != ${want}` };
    return { ms32: v };
  }
  const R = window.benchRecord = { frames: 0, undecodable: 0, latency_ms: [], display_wait_ms: [], first_bad: [], buffered_ahead_ms: [], recording: false, renderer: "" };
  // One picture shown at page time `at` (performance.now() domain).
  window.benchSample = function (src, at, displayWaitMs) {
    if (!R.recording) return;
    const wall = at + (Date.now() - performance.now());
    const s = read(src);
    R.frames++;
    if (s.bad) { R.undecodable++; if (R.first_bad.length < 5) R.first_bad.push(s.bad); return; }
    let diff = (Math.floor(wall) % 2 ** 32) - s.ms32;
    if (diff < -(2 ** 31)) diff += 2 ** 32;
    if (diff > 2 ** 31) diff -= 2 ** 32;
    R.latency_ms.push(diff + (wall - Math.floor(wall)));
    if (displayWaitMs !== undefined) R.display_wait_ms.push(displayWaitMs);
  };
  window.benchOnDecode = function (player, canvas) {
    R.renderer = player.gl ? "webgl" : "canvas2d";
    window.benchSample(canvas, performance.now());
  };
  window.benchWatchVideo = function (video) {
    R.renderer = "video (MSE)";
    const cb = (now, md) => {
      const b = video.buffered;
      if (R.recording && b.length) R.buffered_ahead_ms.push((b.end(b.length - 1) - md.mediaTime) * 1000);
      window.benchSample(video, md.presentationTime, md.expectedDisplayTime - md.presentationTime);
      video.requestVideoFrameCallback(cb);
    };
    video.requestVideoFrameCallback(cb);
  };
}

const problems = [];
const browser = await launchChromium(["--autoplay-policy=no-user-gesture-required"]);
try {
  const { page } = await openPage(browser, problems);
  await page.addInitScript(pageSide);
  if (MODE === "ours") {
    const BASE = process.env.SP_BASE;
    await page.goto(`${BASE}/login?next=/live`);
    await page.fill("#f-password", process.env.SP_PASSWORD);
    await page.click("main form.form button[type=submit]");
    await page.waitForURL(`${BASE}/live`);
    const tile = page.locator(`.tile[data-stream="${CAM}"]`);
    await tile.locator("[data-act=play]").click();
    await page.waitForFunction((n) => Number(document.querySelector(`.tile[data-stream="${n}"]`).dataset.frames || 0) > 5, CAM, { timeout: 30000 });
    await page.evaluate((n) => window.benchWatchVideo(document.querySelector(`.tile[data-stream="${n}"] .view`)), CAM);
  } else if (MODE === "peer") {
    await page.goto(process.env.SP_URL);
  } else {
    throw new Error(`SP_MODE is ours or peer, not ${MODE}`);
  }
  await page.waitForTimeout(WARMUP * 1000);
  await page.evaluate(() => { window.benchRecord.recording = true; });
  await page.waitForTimeout(SECONDS * 1000);
  const rec = await page.evaluate(() => { window.benchRecord.recording = false; return window.benchRecord; });
  if (problems.length) throw new Error(`problems:\n${problems.join("\n")}`);
  console.log(JSON.stringify(rec));
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
