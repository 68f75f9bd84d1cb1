// StreamPulse web GUI: the only script. It keeps the dashboard live by
// polling /api/status and /healthz every few seconds and updating the cards
// in place (textContent only, never HTML), and disables "Check now" while a
// check runs. Every page works without it.
"use strict";

(function () {
  var POLL_MS = 5000;

  function text(el, s) {
    if (el && el.textContent !== s) el.textContent = s;
  }

  // "2026-11-28T22:00:05+05:30" -> "2026-11-28 22:00:05" (already in the
  // box's configured time zone).
  function localTime(iso) {
    return iso ? iso.slice(0, 19).replace("T", " ") : "";
  }

  function ago(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "";
    var s = Math.floor((Date.now() - t) / 1000);
    if (s <= 0) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  var LABELS = { up: "✔ UP", down: "✖ DOWN", unknown: "? UNKNOWN", disabled: "○ DISABLED" };

  function stateOf(s) {
    if (!s.enabled) return "disabled";
    return LABELS[s.state] ? s.state : "unknown";
  }

  function media(s) {
    var parts = [];
    if (s.codec) parts.push(s.codec);
    if (s.resolution) parts.push(s.resolution);
    if (s.fps) parts.push(Math.round(s.fps * 100) / 100 + " fps");
    return parts.length ? parts.join(" · ") : "—";
  }

  function latency(s) {
    if (s.status === "ok") return s.latency + " ms";
    if (s.status === "fail") return "failed after " + s.latency + " ms";
    return "—";
  }

  function updateCard(card, s) {
    var st = stateOf(s);
    card.className = "card st-" + st;
    var badge = card.querySelector('[data-f="state"]');
    if (badge) {
      badge.className = "badge st-" + st;
      text(badge, LABELS[st]);
    }
    text(card.querySelector('[data-f="latency"]'), latency(s));
    text(card.querySelector('[data-f="media"]'), media(s));
    text(card.querySelector('[data-f="last_ok"]'),
      s.last_ok ? localTime(s.last_ok) + " (" + ago(s.last_ok) + ")" : "never");
    var f = s.last_failure;
    text(card.querySelector('[data-f="last_fail"]'),
      f ? (f.reason || "failed") + ": " + f.message + " (" + localTime(f.ts) + ")" : "none");
    var pic = [];
    if (s.picture && s.picture !== "ok" && s.picture !== "unknown") {
      pic.push("\u26a0 " + s.picture + ": " + (s.picture_detail || ""));
    }
    if (s.camera_clock === "off") pic.push("\u26a0 the camera's clock is off by " +
      Math.round(Math.abs(s.camera_clock_offset_ms || 0) / 1000) + " s");
    var picEl = card.querySelector('[data-f="picture"]');
    if (picEl) {
      text(picEl, pic.join("; "));
      picEl.hidden = pic.length === 0;
    }
    var msg = "";
    if (!s.status) msg = s.enabled ? "waiting for the first probe" : "disabled: not probed";
    text(card.querySelector('[data-f="message"]'), msg);
    return st;
  }

  function dashboard() {
    var cards = document.getElementById("cards");
    if (!cards) return;
    var live = document.getElementById("live");
    var summary = document.getElementById("summary");

    function getJson(url) {
      return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (r.status === 401) { location.href = "/login?next=/"; throw new Error("logged out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      });
    }

    function poll() {
      Promise.all([getJson("/api/status"), getJson("/healthz")])
        .then(function (both) {
          var all = both[0], h = both[1];
          var els = cards.querySelectorAll("[data-stream]");
          var names = Object.keys(all);
          if (els.length !== names.length) { location.reload(); return; }
          var counts = { up: 0, down: 0, unknown: 0, disabled: 0 };
          for (var i = 0; i < els.length; i++) {
            var s = all[els[i].getAttribute("data-stream")];
            if (!s) { location.reload(); return; }
            counts[updateCard(els[i], s)]++;
          }
          if (names.length) {
            var line = names.length + (names.length === 1 ? " stream: " : " streams: ") +
              counts.up + " up, " + counts.down + " down, " + counts.unknown + " unknown";
            if (counts.disabled) line += ", " + counts.disabled + " disabled";
            text(summary, line);
          }
          var sec = h.uptime_s, d = Math.floor(sec / 86400), hh = Math.floor(sec % 86400 / 3600),
            m = Math.floor(sec % 3600 / 60);
          text(document.querySelector('[data-h="uptime"]'),
            d ? d + " d " + hh + " h" : hh ? hh + " h " + m + " min" : m ? m + " min" : sec + " s");
          text(document.querySelector('[data-h="time"]'), localTime(h.time));
          live.setAttribute("data-state", "live");
          // The box's clock and time zone, like every time on the page.
          text(live, "Live: updated " + localTime(h.time).slice(11));
        })
        .catch(function () {
          live.setAttribute("data-state", "stale");
          text(live, "Connection lost: showing the last known state");
        });
    }
    setInterval(poll, POLL_MS);
  }

  // A check takes up to the stream's timeout: show that something happens.
  function checkButtons() {
    var forms = document.querySelectorAll('form[action$="/preview"]');
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (e) {
        var b = e.target.querySelector("button");
        if (b) { b.disabled = true; b.textContent = "Checking…"; }
      });
    }
  }

  // System page: sends the form's chosen file as the request body of a POST
  // to `url` (streamed to the card by the box, never a form), with the
  // session's CSRF token and the upload's progress in `bar`; calls
  // `accepted(answer)` when the box answers `status`.
  function sendFile(form, url, status, out, bar, missing, accepted) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = form.querySelector("input[type=file]").files[0];
      if (!file) { text(out, missing); return; }
      var x = new XMLHttpRequest();
      x.open("POST", url);
      x.setRequestHeader("Content-Type", "application/octet-stream");
      x.setRequestHeader("X-CSRF-Token", form.getAttribute("data-csrf"));
      x.upload.onprogress = function (p) {
        if (p.lengthComputable) { bar.max = p.total; bar.value = p.loaded; }
      };
      x.onload = function () {
        var v = {};
        try { v = JSON.parse(x.responseText); } catch (err) { v = {}; }
        if (x.status !== status) { text(out, v.error || ("Failed: HTTP " + x.status)); return; }
        accepted(v);
      };
      x.onerror = function () { text(out, "The upload failed (connection lost)."); };
      text(out, "Uploading…");
      x.send(file);
    });
  }

  // Waits for the box to answer again (after a restart or reboot), then
  // goes to `next`.
  function whenBack(next, every) {
    fetch("/healthz").then(function (r) {
      if (r.ok) location.href = next; else setTimeout(function () { whenBack(next, every); }, every);
    }, function () { setTimeout(function () { whenBack(next, every); }, every); });
  }

  // System page: restore a backup, then wait for the box to come back from
  // the restart that applies it.
  function restoreForm() {
    var form = document.getElementById("restore");
    if (!form) return;
    var out = document.getElementById("restore-status");
    sendFile(form, "/system/restore", 200, out, document.getElementById("restore-progress"),
      "Choose a backup file first.", function (v) {
        text(out, "Restoring the " + v.restored + ". The box restarts; this page reloads when it is back.");
        setTimeout(function () { whenBack("/login?msg=restored", 2000); }, 3000);
      });
  }

  // System page: upload an update bundle, then follow RAUC's progress
  // (GET /system/update) until the box reboots into it or says why not.
  function updateForm() {
    var form = document.getElementById("update-form");
    if (!form) return;
    var out = document.getElementById("update-status");
    var bar = document.getElementById("update-progress");
    function follow() {
      fetch("/system/update", { headers: { Accept: "application/json" } }).then(function (r) {
        return r.json();
      }).then(function (v) {
        var p = v.progress || {};
        if (p.phase === "installing" || p.phase === "receiving") {
          bar.max = 100; bar.value = p.percent || 0;
          text(out, "Installing (" + (p.percent || 0) + " %): " + p.message);
          setTimeout(follow, 2000);
        } else if (p.phase === "rebooting") {
          bar.value = 100;
          text(out, "Installed: " + p.message + ". This page reloads when the box is back.");
          setTimeout(function () { whenBack("/system", 3000); }, 10000);
        } else if (p.phase === "installed") {
          location.href = "/system";
        } else {
          text(out, "Not installed: " + (p.message || "unknown error"));
        }
      }, function () { setTimeout(function () { whenBack("/system", 3000); }, 5000); });
    }
    sendFile(form, "/system/update", 202, out, bar,
      "Choose an update bundle (.raucb) first.", function () {
        text(out, "Received; installing…");
        follow();
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    dashboard();
    checkButtons();
    restoreForm();
    updateForm();
  });
})();
