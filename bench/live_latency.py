#!/usr/bin/env python3
"""Box camera: glass-to-glass latency and CPU per viewer, beside pistreaming
(issue 21). `make bench-live` runs it; one run takes about 5 minutes.

Two paths, one after the other, each fed by the same stamped camera
(bench/live/stamp.py: 640x480 at 30 fps, the wall-clock ms in the picture):

* ours:  stamp -> ffmpeg/x264 (ultrafast, zerolatency) as the `libcamera:0`
  stream's capture command (bench/live/stamped-rpicam-vid) -> the daemon
  (target/release/streampulse) -> fMP4 -> Chromium MSE <video> in the /live
  grid tile.
* peer:  pistreaming's pipeline: stamp -> ffmpeg `-f mpeg1video -b 800k`
  -> a ws4py websocket relay (bench/live/pistreaming_relay.py, 512-byte
  broadcasts as pistreaming's server.py) -> jsmpg.js (npm jsmpeg 1.0.0) into
  a canvas.

Latency: bench/live/driver.mjs in headless Chromium reads every presented
frame's stamp from pixels and records now - stamp (same clock at both ends).
CPU: utime+stime from /proc/PID/stat over a fixed window with 0, 1, 2, 4
viewers, per process (viewers here are plain HTTP / websocket readers, not
browsers, so Chromium's own CPU stays off the 2 cores during the windows).

Writes bench/results/live-latency-<UTC>.json and .md. Exits 1 when a path
measured fewer than --min-frames frames, any stamp did not decode, or a
viewer received nothing: a figure must measure what it names.
Logs: /tmp/latency-*.log. Run it with a Python that has ws4py (the
Makefile's venv).
"""

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

from ws4py.client.threadedclient import WebSocketClient
import ws4py

ROOT = Path(__file__).resolve().parent.parent
LIVE = ROOT / "bench" / "live"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CAM = "Box camera"


def log(msg):
    print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {msg}", flush=True)


def cpu_ticks(pid):
    """(utime+stime, cutime+cstime) of `pid` in clock ticks, or None."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    # fields 14-17 of proc(5): utime stime cutime cstime (here from index 11)
    return int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else None


def summary(rec):
    lat = rec["latency_ms"]
    out = {"frames": rec["frames"], "decoded": len(lat), "undecodable": rec["undecodable"],
           "first_bad": rec["first_bad"], "renderer": rec["renderer"],
           "p50_ms": round(pct(lat, 50), 1) if lat else None,
           "p95_ms": round(pct(lat, 95), 1) if lat else None,
           "min_ms": round(min(lat), 1) if lat else None,
           "max_ms": round(max(lat), 1) if lat else None}
    if rec.get("display_wait_ms"):
        out["display_wait_p50_ms"] = round(pct(rec["display_wait_ms"], 50), 1)
    if rec.get("buffered_ahead_ms"):
        out["buffered_ahead_p50_ms"] = round(pct(rec["buffered_ahead_ms"], 50), 1)
    return out


def run_driver(env, seconds, logname):
    e = dict(os.environ, SP_SECONDS=str(seconds), **env)
    with open(f"/tmp/latency-{logname}.log", "w") as err:
        p = subprocess.run(["node", str(LIVE / "driver.mjs")], env=e, stdout=subprocess.PIPE,
                           stderr=err, text=True, timeout=seconds + 120)
    if p.returncode != 0:
        raise SystemExit(f"the Chromium driver failed ({logname}); see /tmp/latency-{logname}.log")
    return json.loads(p.stdout.strip().splitlines()[-1])


class HttpViewer(threading.Thread):
    """Reads the daemon's live fMP4 stream and throws it away."""

    def __init__(self, addr, token):
        super().__init__(daemon=True)
        self.addr, self.token, self.bytes, self.stop = addr, token, 0, False
        self.conn = None

    def run(self):
        host, port = self.addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        path = "/live/" + urllib.parse.quote(CAM, safe="") + "/stream"
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        r = self.conn.getresponse()
        if r.status != 200:
            log(f"viewer: HTTP {r.status}")
            return
        while not self.stop:
            b = r.read1(65536)
            if not b:
                break
            self.bytes += len(b)

    def close(self):
        self.stop = True
        try:
            self.conn.sock.shutdown(2)
        except Exception:
            pass


class WsViewer(WebSocketClient):
    """Reads pistreaming's websocket and throws it away."""
    nbytes = 0

    def received_message(self, m):
        self.nbytes += len(m.data)


def cpu_windows(counts, window, pids_of, add_viewer, bytes_of, settle):
    """For each viewer count: start the viewers, settle, read CPU of
    pids_of() over `window` seconds. Returns a list of rows."""
    rows = []
    for n in counts:
        viewers = [add_viewer() for _ in range(n)]
        time.sleep(settle)
        pids = pids_of()
        b0 = [bytes_of(v) for v in viewers]
        t0, c0 = time.monotonic(), {k: cpu_ticks(p) for k, p in pids.items()}
        time.sleep(window)
        t1, c1 = time.monotonic(), {k: cpu_ticks(p) for k, p in pids.items()}
        b1 = [bytes_of(v) for v in viewers]
        row = {"viewers": n, "seconds": round(t1 - t0, 2), "loadavg": list(os.getloadavg()),
               "viewer_kbytes_per_s": [round((y - x) / (t1 - t0) / 1000, 1) for x, y in zip(b0, b1)],
               "cpu_ms_per_s": {}, "children_cpu_ms_per_s": {}}
        for k in pids:
            a, z = c0[k], c1[k]
            if a is None or z is None:
                row["cpu_ms_per_s"][k] = None
                continue
            row["cpu_ms_per_s"][k] = round((z[0] - a[0]) * 1000 / CLK_TCK / (t1 - t0), 2)
            row["children_cpu_ms_per_s"][k] = round((z[1] - a[1]) * 1000 / CLK_TCK / (t1 - t0), 2)
        log(f"  {n} viewers: {row['cpu_ms_per_s']} (reaped children {row['children_cpu_ms_per_s']}), "
            f"viewers kB/s {row['viewer_kbytes_per_s']}, load {row['loadavg'][0]:.2f}")
        rows.append(row)
        for v in viewers:
            v.close()
        time.sleep(settle)
    return rows


def ours(args, w, h):
    log("ours: the daemon with the stamped camera as libcamera:0")
    tmp = Path(tempfile.mkdtemp(prefix="latency-ours-"))
    data = tmp / "data"
    data.mkdir()
    password = secrets.token_urlsafe(18)
    hashed = subprocess.run([args.binary, "passwd"], input=password + "\n", text=True,
                            capture_output=True, check=True).stdout.strip()
    tokens = {}
    entries = []
    for scope in ("read", "live"):
        tok = "sp_" + secrets.token_hex(32)
        d = sha256(tok.encode()).hexdigest()
        tokens[scope] = tok
        entries.append({"id": d[:12], "name": f"bench {scope}", "sha256": d, "created_ms": 0, "scope": scope})
    (data / "api-tokens.json").write_text(json.dumps(entries))
    wrapper = LIVE / "stamped-rpicam-vid"
    cfg = (f"admin_password_hash: '{hashed}'\nweb:\n  allowed_hosts: [streampulse.test]\n"
           f"heartbeat_seconds: 20\nlive:\n  max_viewers: 8\n  max_viewers_per_stream: 8\n"
           f"streams:\n- name: {CAM}\n  url: libcamera:0\n  capture:\n"
           f"    width: {w}\n    height: {h}\n    framerate: {args.fps}\n"
           f"    command: {wrapper} -t 0 --camera {{camera}} --codec h264 --inline --intra {{framerate}} "
           f"--nopreview --width {{width}} --height {{height}} --framerate {{framerate}} -o -\n")
    (tmp / "config.yaml").write_text(cfg)
    pidfile = tmp / "capture.pid"
    env = dict(os.environ, STREAMPULSE_CAPTURE_PROGRAMS=str(wrapper), STAMP_PIDFILE=str(pidfile),
               RUST_LOG="info")
    dlog = open("/tmp/latency-daemon.log", "w")
    d = subprocess.Popen([args.binary, "run", "--listen", "127.0.0.1:0", "--config", str(tmp / "config.yaml"),
                          "--data-dir", str(data)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    addr_box = []

    def pump():
        for line in d.stderr:
            dlog.write(line)
            dlog.flush()
            m = re.search(r"listening on http://(\S+)", line)
            if m and not addr_box:
                addr_box.append(m.group(1))
    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not addr_box and time.monotonic() < deadline:
            time.sleep(0.1)
        if not addr_box:
            raise SystemExit("the daemon did not say where it listens; /tmp/latency-daemon.log")
        addr = addr_box[0]
        deadline = time.monotonic() + 60
        while True:
            req = urllib.request.Request(f"http://{addr}/api/status",
                                         headers={"Authorization": f"Bearer {tokens['read']}"})
            st = json.load(urllib.request.urlopen(req, timeout=10))
            if st.get(CAM, {}).get("status") == "ok":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the box camera did not go ok: {st.get(CAM)}")
            time.sleep(0.5)
        log(f"ours: daemon pid {d.pid} on {addr}, camera ok ({st[CAM].get('codec')} "
            f"{st[CAM].get('width')}x{st[CAM].get('height')})")
        port = addr.rsplit(":", 1)[1]
        log(f"ours: latency, {args.seconds} s in Chromium")
        rec = run_driver({"SP_MODE": "ours", "SP_BASE": f"http://streampulse.test:{port}",
                          "SP_PASSWORD": password}, args.seconds, "driver-ours")
        lat = summary(rec)
        log(f"ours: {lat}")
        time.sleep(4)  # the capture stops 2 s after the last viewer

        def pids():
            p = {"daemon": d.pid}
            if pidfile.exists():
                gen, enc = pidfile.read_text().split()
                if Path(f"/proc/{enc}").exists():
                    p["h264_encoder"] = int(enc)
                    p["camera"] = int(gen)
            return p

        def add():
            v = HttpViewer(addr, tokens["live"])
            v.start()
            return v
        log(f"ours: CPU, {args.window} s windows")
        rows = cpu_windows(args.viewers, args.window, pids, add, lambda v: v.bytes, args.settle)
        return {"latency": lat, "cpu": rows, "raw_latency_ms": [round(x, 1) for x in rec["latency_ms"]]}
    finally:
        d.terminate()
        try:
            d.wait(20)
        except subprocess.TimeoutExpired:
            d.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def peer(args, w, h, python):
    log("peer: pistreaming's pipeline (MPEG-1 -> ws4py relay -> jsmpg.js)")
    logf = open("/tmp/latency-peer.log", "w")
    cam = subprocess.Popen([sys.executable, str(LIVE / "stamp.py"), "--width", str(w), "--height", str(h),
                            "--fps", str(args.fps)], stdout=subprocess.PIPE, stderr=logf)
    enc = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", str(args.fps),
                            "-i", "pipe:0", "-f", "mpeg1video", "-b:v", "800k", "-r", str(args.fps), "pipe:1"],
                           stdin=cam.stdout, stdout=subprocess.PIPE, stderr=logf)
    cam.stdout.close()
    relay = subprocess.Popen([python, str(LIVE / "pistreaming_relay.py"), str(w), str(h),
                              str(LIVE / "node_modules" / "jsmpeg" / "jsmpg.js"), str(LIVE / "pistreaming.html")],
                             stdin=enc.stdout, stdout=subprocess.PIPE, stderr=logf, text=True)
    enc.stdout.close()
    try:
        ports = json.loads(relay.stdout.readline())
        log(f"peer: relay pid {relay.pid}, http {ports['http_port']}, ws {ports['ws_port']}")
        log(f"peer: latency, {args.seconds} s in Chromium")
        rec = run_driver({"SP_MODE": "peer", "SP_URL": f"http://127.0.0.1:{ports['http_port']}/index.html"},
                         args.seconds, "driver-peer")
        lat = summary(rec)
        log(f"peer: {lat}")
        time.sleep(2)

        def add():
            v = WsViewer(f"ws://127.0.0.1:{ports['ws_port']}/")
            v.connect()
            return v
        log(f"peer: CPU, {args.window} s windows")
        rows = cpu_windows(args.viewers, args.window,
                           lambda: {"relay": relay.pid, "mpeg1_encoder": enc.pid, "camera": cam.pid},
                           add, lambda v: v.nbytes, args.settle)
        return {"latency": lat, "cpu": rows, "raw_latency_ms": [round(x, 1) for x in rec["latency_ms"]]}
    finally:
        for p in (cam, enc, relay):
            p.terminate()
        for p in (cam, enc, relay):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception as e:
        return f"? ({e})"


def versions(binary):
    pkg = lambda p: json.loads(Path(p).read_text())["version"]
    return {
        "streampulse": first_line([binary, "--version"]),
        "git": first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "chromium": first_line(["chromium", "--version"]),
        "playwright-core": pkg(ROOT / "tests/e2e/node_modules/playwright-core/package.json"),
        "node": first_line(["node", "--version"]),
        "ffmpeg": first_line(["ffmpeg", "-version"]),
        "jsmpeg (npm)": pkg(LIVE / "node_modules/jsmpeg/package.json"),
        "ws4py": ws4py.__version__,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "cores": os.cpu_count(),
    }


def markdown(res):
    L = [f"# Box camera latency and CPU per viewer, {res['started']}", "",
         f"Stamped camera {res['size']} at {res['fps']} fps; latency recorded {res['seconds']} s per path "
         f"in headless Chromium; CPU windows {res['window']} s. Load average (1/5/15 min) at start "
         f"{res['loadavg_start']}, at end {res['loadavg_end']} on {res['versions']['cores']} cores.", "",
         "| path | frames | undecodable | p50 ms | p95 ms | max ms | drawn by |", "|---|---|---|---|---|---|---|"]
    for k, name in (("ours", "StreamPulse: x264 zerolatency -> daemon -> fMP4/MSE"),
                    ("peer", "pistreaming: MPEG-1 -> ws4py relay -> jsmpg.js")):
        l = res[k]["latency"]
        L.append(f"| {name} | {l['frames']} | {l['undecodable']} | {l['p50_ms']} | {l['p95_ms']} | {l['max_ms']} | {l['renderer']} |")
    for k in ("ours", "peer"):
        l = res[k]["latency"]
        if "buffered_ahead_p50_ms" in l:
            L.append(f"\n{k}: in the <video>, p50 {l['buffered_ahead_p50_ms']} ms of media was buffered past the frame "
                     f"shown; the compositor expected to show a frame {l['display_wait_p50_ms']} ms (p50) after it "
                     f"was handed over (not in the figures above).")
    L += ["", "CPU, ms per second (10 ms tick resolution: ±0.5 ms/s over the window); load = 1-min average during the window:", ""]
    for k in ("ours", "peer"):
        procs = list(res[k]["cpu"][-1]["cpu_ms_per_s"].keys())
        L += [f"**{k}**", "", "| viewers | " + " | ".join(procs) + " | load |", "|---" * (len(procs) + 2) + "|"]
        for r in res[k]["cpu"]:
            L.append(f"| {r['viewers']} | " + " | ".join(str(r['cpu_ms_per_s'].get(p, '—')) for p in procs)
                     + f" | {r['loadavg'][0]:.2f} |")
        L.append("")
    L += ["Versions: " + "; ".join(f"{k} {v}" for k, v in res["versions"].items()), "",
          f"Command: `{res['command']}`", ""]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description="Box camera latency and CPU per viewer, beside pistreaming")
    ap.add_argument("--binary", default=str(ROOT / "target/release/streampulse"))
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=int, default=30, help="latency recording per path")
    ap.add_argument("--window", type=int, default=20, help="CPU window per viewer count")
    ap.add_argument("--settle", type=float, default=4, help="seconds after (dis)connecting viewers")
    ap.add_argument("--viewers", default="0,1,2,4")
    ap.add_argument("--min-frames", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args()
    args.viewers = [int(x) for x in args.viewers.split(",")]
    w, h = (int(x) for x in args.size.split("x"))
    for need in (ROOT / "tests/e2e/node_modules/playwright-core", LIVE / "node_modules/jsmpeg"):
        if not need.exists():
            raise SystemExit(f"missing {need}: run `make bench-live` (it installs the node modules)")
    started = datetime.now(timezone.utc)
    res = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "size": args.size, "fps": args.fps,
           "seconds": args.seconds, "window": args.window, "command": " ".join([Path(sys.executable).name] + sys.argv),
           "loadavg_start": [round(x, 2) for x in os.getloadavg()], "versions": versions(args.binary)}
    log(f"load average {res['loadavg_start']}")
    res["ours"] = ours(args, w, h)
    res["peer"] = peer(args, w, h, sys.executable)
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    failures = []
    for k in ("ours", "peer"):
        l = res[k]["latency"]
        if len(res[k]["raw_latency_ms"]) < args.min_frames:
            failures.append(f"{k}: {len(res[k]['raw_latency_ms'])} frames measured (< {args.min_frames})")
        # A lossy encoder at a low bit rate (pistreaming's MPEG-1 at
        # 800 kbit/s) can leave a stamp block stale or smeared in a frame:
        # such frames are counted and left out of the figures. More than 2 %
        # of them means the stamp, not the frame, is being measured.
        if l["undecodable"] > 0.02 * max(1, l["frames"]):
            failures.append(f"{k}: {l['undecodable']} of {l['frames']} stamps did not decode ({l['first_bad']})")
        for r in res[k]["cpu"]:
            if any(x <= 0 for x in r["viewer_kbytes_per_s"]):
                failures.append(f"{k}: a viewer received nothing with {r['viewers']} viewers")
    res["failures"] = failures
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"live-latency-{started:%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(res) + ("\n**FAILED**: " + "; ".join(failures) + "\n" if failures else ""))
    log(f"wrote {stem}.json and .md")
    print(markdown(res))
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
