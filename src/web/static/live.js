// StreamPulse live grid. Plays a tile on demand from /live/<name>/stream:
//  * multipart JPEG (MJPEG cameras, snapshots, MJPEG over RTSP): parts are cut
//    by their Content-Length, decoded with createImageBitmap and drawn on a
//    canvas (only the newest frame is kept while one decodes);
//  * fragmented MP4 (RTSP H.264/H.265): StreamPulse's timing boxes are
//    stripped and the rest goes to Media Source Extensions, which work on a
//    plain-http LAN origin (WebCodecs would need HTTPS).
// Every frame carries the box's receive time (and the camera's capture time
// when its RTCP reports give it), so each tile shows its latency. Pause keeps
// the last picture and Stop shows the thumbnail again; both disconnect, which
// frees the camera session a few seconds later. Text goes in via textContent only.
"use strict";

(function () {
  var POLL_MS = 5000;
  var MS = window.MediaSource || window.ManagedMediaSource;
  var grid = document.getElementById("tiles");
  if (!grid) return;

  // Box clock minus page clock (ms), measured NTP-style on /api/live.
  var offsetMs = 0, bestRtt = Infinity;
  function pageNow() { return performance.timeOrigin + performance.now(); }

  function text(el, s) { if (el && el.textContent !== s) el.textContent = s; }
  function $(t, f) { return t.el.querySelector('[data-f="' + f + '"]'); }
  function btn(t, act) { return t.el.querySelector('[data-act="' + act + '"]'); }

  function median(a) {
    if (!a.length) return null;
    var s = a.slice().sort(function (x, y) { return x - y; });
    return s[Math.floor(s.length / 2)];
  }

  var tiles = [];
  var els = grid.querySelectorAll(".tile");
  for (var i = 0; i < els.length; i++) tiles.push(makeTile(els[i]));

  function makeTile(el) {
    var t = {
      el: el, name: el.getAttribute("data-stream"), src: el.getAttribute("data-src"),
      state: "idle", ctl: null, frames: 0, times: [], g2g: [], b2s: [], c2b: null,
      view: null, retries: 0, gen: 0
    };
    btn(t, "play").addEventListener("click", function () { play(t); });
    btn(t, "pause").addEventListener("click", function () { halt(t, "paused"); });
    btn(t, "stop").addEventListener("click", function () { halt(t, "idle"); });
    var why = unsupported(el.getAttribute("data-rfc6381"));
    if (why) { text($(t, "status"), why); btn(t, "play").disabled = true; }
    return t;
  }

  // Why this browser cannot play `codec` (RFC 6381), or "".
  function unsupported(codec) {
    if (!codec || codec === "jpeg") return "";
    if (!MS) return "This browser has no Media Source Extensions: no live video here (thumbnails only).";
    if (MS.isTypeSupported('video/mp4; codecs="' + codec + '"')) return "";
    if (/^(hvc1|hev1)/.test(codec)) {
      return "No live view for H.265 in this browser: its Media Source Extensions cannot play " +
        "HEVC, and the box relays video without transcoding. The thumbnail is refreshed instead.";
    }
    return "This browser cannot play " + codec + " (no transcoding on the box).";
  }

  function setState(t, st, msg) {
    t.state = st;
    t.el.setAttribute("data-live", st);
    btn(t, "play").disabled = st === "playing" || st === "connecting";
    btn(t, "pause").disabled = !(st === "playing" || st === "connecting");
    btn(t, "stop").disabled = st === "idle" || st === "error";
    if (msg !== undefined) text($(t, "status"), msg);
  }

  function setFrames(t) { t.el.setAttribute("data-frames", String(t.frames)); }

  // The element frames are shown in (canvas or video), created on demand.
  function screenEl(t, tag) {
    if (t.view && t.view.tagName.toLowerCase() !== tag) { t.view.remove(); t.view = null; }
    if (!t.view) {
      t.view = document.createElement(tag);
      t.view.className = "view";
      if (tag === "video") { t.view.muted = true; t.view.playsInline = true; t.view.disablePictureInPicture = true; }
      $(t, "screen").appendChild(t.view);
    }
    $(t, "thumb").hidden = true;
    text($(t, "overlay"), "");
    return t.view;
  }

  function showThumb(t) {
    if (t.view) { t.view.remove(); t.view = null; }
    $(t, "thumb").hidden = false;
  }

  function halt(t, to) {
    t.gen++;
    if (t.ctl) { t.ctl.abort(); t.ctl = null; }
    if (t.view && t.view.tagName === "VIDEO") t.view.pause();
    if (to === "idle") {
      showThumb(t);
      setState(t, "idle", "Stopped: the camera session closes in a few seconds.");
    } else if (to === "paused") {
      setState(t, "paused", "Paused on the last picture: disconnected, so the camera session is free.");
    }
    text($(t, "stats"), "");
  }

  function play(t) {
    halt(t, null);
    var gen = t.gen;
    t.ctl = new AbortController();
    t.times = []; t.g2g = []; t.b2s = []; t.c2b = null;
    setState(t, "connecting", "Connecting to the camera…");
    fetch(t.src, { signal: t.ctl.signal, cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (gen !== t.gen) return;
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (j) {
            if (r.status === 401) { location.href = "/login?next=/live"; return; }
            setState(t, "error", j.error || ("The box answered HTTP " + r.status + "."));
            t.el.setAttribute("data-error", String(r.status));
          });
        }
        t.el.removeAttribute("data-error");
        var ctype = r.headers.get("Content-Type") || "";
        var reader = r.body.getReader();
        if (ctype.indexOf("multipart/") === 0) return mjpeg(t, gen, reader);
        var codec = r.headers.get("X-Live-Codec") || "";
        var why = unsupported(codec);
        if (why) { halt(t, "idle"); setState(t, "error", why); return; }
        return mse(t, gen, reader, 'video/mp4; codecs="' + codec + '"');
      })
      .then(function () {
        if (gen === t.gen && (t.state === "playing" || t.state === "connecting")) lost(t, "The live stream ended.");
      })
      .catch(function (e) {
        if (gen === t.gen && e && e.name !== "AbortError") lost(t, "Connection lost (" + (e.message || e) + ").");
      });
  }

  // The stream ended on its own: try again a few times, then say why.
  function lost(t, msg) {
    if (t.retries < 3) {
      t.retries++;
      setState(t, "connecting", msg + " Reconnecting…");
      var gen = t.gen;
      setTimeout(function () { if (gen === t.gen) play(t); }, 1000);
      return;
    }
    t.retries = 0;
    halt(t, null);
    setState(t, "error", msg);
  }

  // One frame reached the screen at page time `shown`.
  function shown(t, shownAt, recvMs, captureMs) {
    t.frames++;
    t.retries = 0;
    setFrames(t);
    if (t.state !== "playing") setState(t, "playing", "Live.");
    var boxShown = shownAt + offsetMs;
    t.times.push(shownAt);
    while (t.times.length > 1 && shownAt - t.times[0] > 2000) t.times.shift();
    if (recvMs) { t.b2s.push(boxShown - recvMs); if (t.b2s.length > 30) t.b2s.shift(); }
    if (captureMs) {
      t.g2g.push(boxShown - captureMs); if (t.g2g.length > 30) t.g2g.shift();
      t.c2b = recvMs - captureMs;
    }
    if (t.frames % 5 === 0 || t.frames < 3) stats(t);
  }

  function stats(t) {
    var fps = t.times.length > 1 ? (t.times.length - 1) * 1000 / (t.times[t.times.length - 1] - t.times[0]) : 0;
    var parts = [fps.toFixed(1) + " fps", t.frames + " frames"];
    var g = median(t.g2g), b = median(t.b2s);
    var lat = "";
    if (g !== null) {
      lat = "latency " + Math.round(g) + " ms glass-to-glass (camera→box " + Math.round(t.c2b) +
        " ms, box→screen " + Math.round(b) + " ms)";
    } else if (b !== null) {
      lat = "latency box→screen " + Math.round(b) + " ms (the camera sends no capture time)";
    }
    if (lat) parts.push(lat);
    t.el.setAttribute("data-latency", g !== null ? String(Math.round(g)) : b !== null ? String(Math.round(b)) : "");
    t.el.setAttribute("data-box-to-screen", b !== null ? String(Math.round(b)) : "");
    text($(t, "stats"), parts.join(" · "));
  }

  // ------------------------------------------------------------- MJPEG

  var CRLF2 = [13, 10, 13, 10];

  function indexOf(buf, pat, from) {
    outer: for (var i = from || 0; i <= buf.length - pat.length; i++) {
      for (var j = 0; j < pat.length; j++) if (buf[i + j] !== pat[j]) continue outer;
      return i;
    }
    return -1;
  }

  function concat(a, b) {
    if (!a.length) return b;
    var c = new Uint8Array(a.length + b.length);
    c.set(a, 0); c.set(b, a.length);
    return c;
  }

  function mjpeg(t, gen, reader) {
    var canvas = screenEl(t, "canvas");
    var ctx = canvas.getContext("2d");
    var buf = new Uint8Array(0);
    var decoding = false, next = null;

    function draw(part) {
      if (decoding) { next = part; return; } // newest wins while one decodes
      decoding = true;
      createImageBitmap(new Blob([part.jpeg], { type: "image/jpeg" })).then(function (bmp) {
        requestAnimationFrame(function () {
          if (gen === t.gen) {
            if (canvas.width !== bmp.width || canvas.height !== bmp.height) {
              canvas.width = bmp.width; canvas.height = bmp.height;
            }
            ctx.drawImage(bmp, 0, 0);
            shown(t, pageNow(), part.recv, part.capture);
          }
          bmp.close();
          decoding = false;
          if (next) { var n = next; next = null; draw(n); }
        });
      }, function () { decoding = false; });
    }

    function pump() {
      return reader.read().then(function (r) {
        if (r.done || gen !== t.gen) return;
        buf = concat(buf, r.value);
        for (;;) {
          var he = indexOf(buf, CRLF2, 0);
          if (he < 0) break;
          var head = new TextDecoder().decode(buf.subarray(0, he));
          var len = /content-length:\s*(\d+)/i.exec(head);
          if (!len) throw new Error("a part without Content-Length");
          var n = parseInt(len[1], 10);
          if (buf.length < he + 4 + n) break;
          var recv = /x-recv-ms:\s*([\d.]+)/i.exec(head);
          var cap = /x-capture-ms:\s*([\d.]+)/i.exec(head);
          draw({
            jpeg: buf.slice(he + 4, he + 4 + n),
            recv: recv ? parseFloat(recv[1]) : 0,
            capture: cap ? parseFloat(cap[1]) : 0
          });
          buf = buf.slice(he + 4 + n);
        }
        return pump();
      });
    }
    return pump();
  }

  // --------------------------------------------------------------- MSE

  var TIMING_UUID = "streampulse-time";

  function fourcc(b, at) { return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]); }

  function mse(t, gen, reader, mime) {
    var video = screenEl(t, "video");
    var src = new MS();
    var url = URL.createObjectURL(src);
    video.src = url;
    var sb = null, queue = [], waitKey = false, started = false;
    var timing = {}; // decode time in ms -> {recv, capture}
    var init = null, moof = null, lastTiming = null;
    var buf = new Uint8Array(0);
    // The buffered end moves by one frame per append: its average step is
    // the frame duration, the least a player can trail the newest frame by.
    var lastEnd = 0, frameDur = 0.04;

    var opened = new Promise(function (resolve) {
      src.addEventListener("sourceopen", function () {
        URL.revokeObjectURL(url);
        sb = src.addSourceBuffer(mime);
        sb.mode = "segments";
        sb.addEventListener("updateend", afterAppend);
        resolve();
      }, { once: true });
    });

    function enqueue(data, tm) {
      if (tm) {
        if (queue.length > 45 && !tm.key) { waitKey = true; return; } // far behind: skip to a key frame
        if (waitKey && !tm.key) return;
        if (tm.key) waitKey = false;
      }
      queue.push({ data: data, tm: tm });
      pumpAppend();
    }

    function pumpAppend() {
      if (!sb || sb.updating || !queue.length || gen !== t.gen) return;
      var q = queue.shift();
      if (q.tm) timing[Math.round(q.tm.dt * 1000 / q.tm.ts)] = q.tm;
      try { sb.appendBuffer(q.data); } catch (e) { lost(t, "The browser refused the video (" + e.name + ")."); }
    }

    function afterAppend() {
      if (gen !== t.gen) return;
      var b = video.buffered;
      if (b.length) {
        var end = b.end(b.length - 1);
        if (lastEnd && end > lastEnd && end - lastEnd < 1) {
          frameDur = Math.min(0.5, Math.max(0.01, 0.9 * frameDur + 0.1 * (end - lastEnd)));
        }
        lastEnd = end;
        if (!started) {
          started = true;
          video.currentTime = Math.max(b.start(b.length - 1), end - 0.05);
          video.play().catch(function () {});
        } else if (end - video.currentTime > 0.5 || (b.length > 1 && video.readyState < 3)) {
          // Behind the live edge (or stuck in a gap after skipped frames): jump.
          video.currentTime = end - 0.05;
        } else {
          // A little behind: play slightly faster until the newest frame is
          // the one shown (one frame's duration before the buffered end,
          // plus 20 ms for jitter). A fixed 150 ms here left playback
          // settling 100-150 ms behind (make bench-live).
          var target = frameDur + 0.02;
          var rate = end - video.currentTime > target + 0.02 ? 1.1 : 1;
          if (video.playbackRate !== rate) video.playbackRate = rate;
        }
        // Keep about 10 s of video in the buffer.
        if (!sb.updating && video.currentTime - b.start(0) > 20) {
          sb.remove(0, video.currentTime - 10);
          return;
        }
      }
      pumpAppend();
    }

    function onFrame(now, md) {
      if (gen !== t.gen) return;
      var key = Math.round(md.mediaTime * 1000);
      var tm = timing[key] || timing[key - 1] || timing[key + 1];
      var shownAt = performance.timeOrigin + (md.expectedDisplayTime || now);
      shown(t, shownAt, tm ? tm.recv : 0, tm && !isNaN(tm.capture) ? tm.capture : 0);
      if (t.frames % 100 === 0) {
        for (var k in timing) if (+k < key - 30000) delete timing[k];
      }
      video.requestVideoFrameCallback(onFrame);
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
    else video.addEventListener("timeupdate", function () { if (gen === t.gen) shown(t, pageNow(), 0, 0); });

    function box(b, at, size) {
      var type = fourcc(b, at + 4);
      var whole = b.subarray(at, at + size);
      if (type === "ftyp") { init = whole.slice(); return; }
      if (type === "moov") { enqueue(concat(init || new Uint8Array(0), whole.slice()), null); init = null; return; }
      if (type === "uuid" && size >= 56 && fourcc(b, at + 8) + fourcc(b, at + 12) + fourcc(b, at + 16) + fourcc(b, at + 20) === TIMING_UUID) {
        var dv = new DataView(b.buffer, b.byteOffset + at, size);
        lastTiming = {
          key: (dv.getUint8(24) & 1) === 1,
          recv: dv.getFloat64(28), capture: dv.getFloat64(36),
          dt: Number(dv.getBigUint64(44)), ts: dv.getUint32(52)
        };
        return;
      }
      if (type === "moof") { moof = whole.slice(); return; }
      if (type === "mdat" && moof) {
        enqueue(concat(moof, whole.slice()), lastTiming || { key: true, recv: 0, capture: NaN, dt: 0, ts: 1 });
        moof = null; lastTiming = null;
      }
      // free (keep-alive) and anything else: skipped.
    }

    function pump() {
      return reader.read().then(function (r) {
        if (r.done || gen !== t.gen) return;
        buf = concat(buf, r.value);
        var at = 0;
        while (buf.length - at >= 8) {
          var size = new DataView(buf.buffer, buf.byteOffset + at, 4).getUint32(0);
          if (size < 8) throw new Error("bad MP4 box size");
          if (buf.length - at < size) break;
          box(buf, at, size);
          at += size;
        }
        buf = buf.slice(at);
        return pump();
      });
    }
    return opened.then(pump);
  }

  // ------------------------------------------------------------ status

  function poll() {
    var t0 = pageNow();
    fetch("/api/live", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.href = "/login?next=/live"; throw new Error("logged out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (d) {
        var t1 = pageNow(), rtt = t1 - t0;
        if (rtt <= bestRtt + 5) { bestRtt = Math.min(bestRtt, rtt); offsetMs = d.now_ms - (t0 + t1) / 2; }
        text(document.getElementById("live-viewers"),
          d.viewers + " of " + d.max_viewers + " in use now.");
        var byName = {};
        d.streams.forEach(function (s) { byName[s.name] = s; });
        tiles.forEach(function (t) {
          var s = byName[t.name];
          if (!s) return;
          var badge = $(t, "state");
          badge.className = "badge st-" + s.state;
          text(badge, s.state_label);
          t.el.className = "tile st-" + s.state;
          text($(t, "media"), s.media + (s.live.viewers ? " · " + s.live.viewers + " watching" : ""));
          var img = $(t, "thumb");
          if (s.thumb.url && img.getAttribute("src") !== s.thumb.url) {
            img.src = s.thumb.url;
            img.removeAttribute("data-placeholder");
            text($(t, "overlay"), "");
          } else if (!s.thumb.url) {
            text($(t, "overlay"), s.thumb.note);
          }
          if (t.state === "connecting" && s.live.state === "retrying" && s.live.message) {
            text($(t, "status"), "The camera connection was lost (" + s.live.message + "); retrying…");
          }
          if (t.state === "idle" && !t.el.getAttribute("data-rfc6381") && s.rfc6381) {
            t.el.setAttribute("data-rfc6381", s.rfc6381);
            var why = unsupported(s.rfc6381);
            if (why) { text($(t, "status"), why); btn(t, "play").disabled = true; }
          }
        });
      })
      .catch(function () {});
  }
  poll();
  setInterval(poll, POLL_MS);

  // Leaving the page closes every stream at once (the camera sessions follow).
  window.addEventListener("pagehide", function () { tiles.forEach(function (t) { halt(t, null); }); });
})();
