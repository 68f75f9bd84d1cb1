#!/usr/bin/env python3
"""`make bench`: StreamPulse's cost per stream, side by side with StreamPulse v2.2.

Starts real loopback cameras (GStreamer RTSP with shared live mounts, a Python
MJPEG/snapshot HTTP server, a camera that hangs, an SNTP server), runs
`streampulse run` on 10, 100 and 1000 streams (a mix of RTSP H.264/H.265/MJPEG,
MJPEG over HTTP, snapshots, and 20 % failing in different ways), and prints one
table per size: memory, CPU per probe, probes/s achieved vs scheduled, bytes
written per heartbeat, fsyncs, /api/status latency under load, start-up time.

The fault column repeats the run while the NTP server and the DNS server are
silent and 10 % of the cameras accept connections but never answer.

With `--peer DIR` (or `PEER=DIR make bench`; DIR = a checkout of
github.com/855princekumar/streampulse, or its `version-2.2/` folder) the same
streams are given to the Python original's three services (monitor, web GUI,
MQTT service) in a throw-away copy with its requirements in a venv, and the
table gets its columns and the ratios.

Everything runs inside a network namespace made for the run (root needed):
nothing leaves its loopback, fixed ports (the peer's 7000/8000, NTP 123,
DNS 53) cannot collide with anything on the host, and /etc/hosts and
resolv.conf are the bench's own. Results go to bench/results/ as JSON, a
Markdown table and an SVG chart.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
import blocks  # noqa: E402  (bench/blocks.py: the stored heartbeat format)
SYS_PY = "/usr/bin/python3"  # Debian's: has the GStreamer bindings
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# What each side proves on a heartbeat (printed under every table).
OURS_CHECK = "a real frame: RTSP DESCRIBE/SETUP/PLAY to the first key frame; HTTP: one complete JPEG, decoded"
PEER_CHECK = "RTSP: DESCRIBE answered (200/401/403/404/454 all count as up); HTTP: HEAD status 2xx/3xx"


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Procs:
    """Children of this run; each gets a stdin pipe so our death ends them."""

    def __init__(self):
        self.children = []

    def start(self, argv, name, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, **kw)
        p.bench_name = name
        self.children.append(p)
        return p

    def port_of(self, p, timeout=20):
        """Reads the `PORT n` line a bench server prints."""
        deadline = time.time() + timeout
        line = b""
        while time.time() < deadline:
            line = p.stdout.readline()
            if line.startswith(b"PORT "):
                return int(line.split()[1])
            if not line and p.poll() is not None:
                break
        raise RuntimeError(f"{p.bench_name} did not print its port (got {line!r})")

    def stop(self, p, grace=5):
        # Descendants first (the bench's `sh -c`/strace wrappers do not forward signals).
        for d in reversed(descendants(p.pid)[1:]):
            try:
                os.kill(d, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.children:
            self.children.remove(p)

    def stop_all(self):
        for p in list(reversed(self.children)):
            self.stop(p, grace=3)


# ------------------------------------------------------------------ /proc

def proc_sample(pid):
    """CPU ticks, RSS/HWM (kB), threads, and io counters of one process."""
    s = {}
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        s["ticks"] = int(parts[11]) + int(parts[12])  # utime + stime
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    s[k] = int(v.split()[0])
                elif k == "Threads":
                    s[k] = int(v)
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, _, v = line.partition(":")
                s[k] = int(v)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return s


def sum_samples(pids):
    tot = {}
    for pid in pids:
        s = proc_sample(pid)
        if s is None:
            continue
        for k, v in s.items():
            tot[k] = tot.get(k, 0) + v
    return tot


def descendants(pid):
    """pid and all its descendants (the peer's services run under a shell)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return out


class RssWatcher(threading.Thread):
    """Samples VmRSS of a process set every 0.5 s (mean and max over the window)."""

    def __init__(self, pids_fn):
        super().__init__(daemon=True)
        self.pids_fn = pids_fn
        self.samples = []
        self.anon = []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(0.5):
            s = sum_samples(self.pids_fn())
            if "VmRSS" in s:
                self.samples.append(s["VmRSS"])
                self.anon.append(s.get("RssAnon", 0))

    def result(self):
        """(mean VmRSS, max VmRSS, mean RssAnon) in kB."""
        self.stop_ev.set()
        self.join()
        if not self.samples:
            return None, None, None
        n = len(self.samples)
        return sum(self.samples) / n, max(self.samples), sum(self.anon) / n


# ------------------------------------------------------------------ strace

def strace_argv(out):
    """Traces only file writes and syncs (seccomp-bpf: other syscalls run free).
    BENCH_NO_STRACE=1: no tracer (CPU without its cost; no write figures)."""
    if not shutil.which("strace") or os.environ.get("BENCH_NO_STRACE"):
        return []
    return ["strace", "-f", "--seccomp-bpf", "-qq", "-y", "-ttt",
            "-e", "trace=pwrite64,pwritev,pwritev2,fsync,fdatasync,msync,sync_file_range" + os.environ.get("BENCH_STRACE_EXTRA", ""),
            "-e", "signal=none", "-o", out]


STRACE_LINE = re.compile(r"^\d+\s+([\d.]+)\s+(\w+)\((\d+)<([^>]*)>(.*?)\)\s+=\s+(-?\d+)")


def strace_stats(path, t0, data_dir):
    """Bytes written per file kind and syncs, from time t0 to the end of the trace."""
    st = {"db": 0, "wal": 0, "other": 0, "syncs": 0, "sync_times": []}
    if not path or not os.path.exists(path):
        return None
    with open(path, errors="replace") as f:
        for line in f:
            m = STRACE_LINE.match(line)
            if not m:
                continue
            ts, call, _fd, fname, _rest, ret = m.groups()
            if float(ts) < t0:
                continue
            if call in ("fsync", "fdatasync", "sync_file_range", "msync"):
                st["syncs"] += 1
                st["sync_times"].append(float(ts))
                continue
            n = int(ret)
            if n <= 0:
                continue
            if fname.endswith("-wal"):
                st["wal"] += n
            elif fname.endswith(".db") or fname.endswith("-journal"):
                st["db"] += n
            else:
                st["other"] += n
    return st


# ----------------------------------------------------------------- cameras

def make_frames(d):
    """37 frames of a moving test picture: a prime count, so a probe every
    N seconds of a camera that plays them at 10 fps never lands on the same
    frame four times in a row (the picture checks' `frozen`)."""
    os.makedirs(d, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10", "-frames:v", "37", "-q:v", "5",
                    os.path.join(d, "f%02d.jpg")], check=True)


class Cameras:
    """The loopback peers every run shares; `fault=True` silences NTP and DNS."""

    def __init__(self, procs, work):
        self.procs, self.work = procs, work
        self.rtsp = self.http = self.hang = None
        self.ntp = None
        self.dns = None
        self.anchors = []

    def start(self):
        frames = os.path.join(self.work, "frames")
        make_frames(frames)
        fakes = os.path.join(BENCH, "servers", "fakes.py")
        p = self.procs.start([SYS_PY, os.path.join(BENCH, "servers", "rtsp_cams.py")], "rtsp")
        self.rtsp = self.procs.port_of(p)
        p = self.procs.start([sys.executable, fakes, "http", frames], "http")
        self.http = self.procs.port_of(p)
        p = self.procs.start([sys.executable, fakes, "hang"], "hang")
        self.hang = self.procs.port_of(p)
        # A port nobody listens on: a camera that is switched off.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.closed = s.getsockname()[1]
        s.close()
        # One permanent viewer per live mount keeps its shared pipeline
        # running, so a probe joins a live stream as it would on a camera.
        for mount in ("h264", "h265", "mjpeg"):
            self.anchors.append(self.procs.start(
                ["gst-launch-1.0", "-q", "rtspsrc", f"location=rtsp://127.0.0.1:{self.rtsp}/{mount}",
                 "protocols=tcp", "!", "fakesink"], f"anchor-{mount}"))
        time.sleep(2)
        self.set_fault(False)

    def set_fault(self, fault):
        """Normal: SNTP answers on :123, DNS queries are refused at once.
        Fault: both swallow queries (a firewall that drops, a dead server)."""
        fakes = os.path.join(BENCH, "servers", "fakes.py")
        for p in (self.ntp, self.dns):
            if p is not None:
                self.procs.stop(p)
        self.ntp = self.procs.start([sys.executable, fakes, "silent-udp" if fault else "sntp",
                                     "--port", "123"], "ntp")
        self.procs.port_of(self.ntp)
        self.dns = None
        if fault:
            self.dns = self.procs.start([sys.executable, fakes, "silent-udp", "--port", "53"], "dns")
            self.procs.port_of(self.dns)


# One cycle of 20 slots; small sizes take a prefix, so 10 streams still mix
# every kind and two failures. Failing slots: 4 (camera off), 9 (DNS name),
# 14 (wrong password), 19 (404 / no video track).
PATTERN = ["h264", "mjpeg_http", "snapshot", "h265", "off",
           "h264", "mjpeg_rtsp", "snapshot", "mjpeg_http", "dns",
           "h264", "snapshot", "mjpeg_http", "h265", "auth",
           "h264", "mjpeg_rtsp", "snapshot", "mjpeg_http", "missing"]
FAILING = {"off", "dns", "auth", "missing"}


def stream_list(n, cams, fault):
    """[(name, url, kind, extra)]: the same names in both modes; with `fault`
    10 % of them (spread over every kind) point at the camera that hangs."""
    out = []
    for i in range(n):
        slot = PATTERN[i % len(PATTERN)]
        r = f"rtsp://127.0.0.1:{cams.rtsp}"
        h = f"http://127.0.0.1:{cams.http}"
        extra = {}
        if slot in ("h264", "h265", "mjpeg_rtsp"):
            url, kind = f"{r}/{slot.replace('_rtsp', '')}?cam={i}", "rtsp"
        elif slot == "mjpeg_http":
            url, kind = f"{h}/mjpeg?cam={i}", "mjpeg"
        elif slot == "snapshot":
            url, kind = f"{h}/snap.jpg?cam={i}", "snapshot"
        elif slot == "off":
            url, kind = f"rtsp://127.0.0.1:{cams.closed}/stream1?cam={i}", "rtsp"
        elif slot == "dns":
            rtsp = (i // 20) % 2 == 0
            url = f"{'rtsp' if rtsp else 'http'}://cam-{i}.bench.invalid/{'stream1' if rtsp else 'mjpeg'}"
            kind = "rtsp" if rtsp else "mjpeg"
        elif slot == "auth":
            if (i // 20) % 2 == 0:
                url, kind = f"{r}/auth?cam={i}", "rtsp"
            else:
                url, kind = f"{h}/auth?cam={i}", "mjpeg"
            extra = {"username": "admin", "password": "wrong"}
        else:  # missing
            if (i // 20) % 2 == 0:
                url, kind = f"{r}/audioonly?cam={i}", "rtsp"
            else:
                url, kind = f"{h}/gone.jpg?cam={i}", "snapshot"
        if fault and i % 10 == (i // 10) % 10:
            scheme = url.split(":", 1)[0]
            url = f"{scheme}://127.0.0.1:{cams.hang}/hung?cam={i}"
            extra = {}
        out.append((f"cam-{i:04d}-{slot}", url, kind, extra))
    return out


def mix_text(n):
    c = {}
    for i in range(n):
        c[PATTERN[i % len(PATTERN)]] = c.get(PATTERN[i % len(PATTERN)], 0) + 1
    g = lambda *k: sum(c.get(x, 0) for x in k)  # noqa: E731
    return (f"{g('h264', 'h265', 'mjpeg_rtsp')} RTSP ({g('h264')} H.264, {g('h265')} H.265, "
            f"{g('mjpeg_rtsp')} MJPEG), {g('mjpeg_http', 'snapshot')} HTTP ({g('mjpeg_http')} MJPEG, "
            f"{g('snapshot')} snapshot), {g(*FAILING)} failing (off, DNS, auth, 404/no video)")


# ------------------------------------------------------------------- load

class BenchError(Exception):
    """A measurement that would not measure what it names: the run stops."""


def check_status_body(url, n_streams):
    """One GET of /api/status must be a 200 with the full report (an object
    with one entry per stream), or the load below would time an error page."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        raise BenchError(f"{url}: HTTP {e.code} before the load; the latency would be an error page's")
    except OSError as e:
        raise BenchError(f"{url}: {e}")
    try:
        report = json.loads(body)
    except ValueError:
        raise BenchError(f"{url}: {status} but not JSON ({len(body)} bytes)")
    if not isinstance(report, dict) or len(report) != n_streams:
        got = len(report) if isinstance(report, dict) else type(report).__name__
        raise BenchError(f"{url}: {got} entries, want {n_streams}: not the full status report")
    return len(body)


def api_latency(url, seconds, n_streams, conns=4):
    """/api/status latency under load: wrk if installed, else a Python client.
    The body is checked before and after (full report, 200); any answer that
    is not a 2xx during the load fails the run (issue 20: a run once timed
    34,272 of 34,272 401 answers)."""
    body_bytes = check_status_body(url, n_streams)
    result = api_load(url, seconds, conns)
    if "error" in result:
        raise BenchError(f"{url}: the load tool failed: {result['error']}")
    if result.get("non_2xx", 0) or result.get("errors", 0):
        raise BenchError(f"{url}: {result.get('non_2xx', 0)} non-2xx answers and "
                         f"{result.get('errors', 0)} errors under load")
    check_status_body(url, n_streams)
    result["body_bytes"] = body_bytes
    return result


def api_load(url, seconds, conns):
    if shutil.which("wrk"):
        r = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s", url],
                           capture_output=True, text=True, timeout=seconds + 30)
        pct = {}
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M):
            v = float(m.group(2)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(3)]
            pct[m.group(1)] = v
        rps = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
        errs = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
        if "50" not in pct:
            return {"tool": "wrk", "error": r.stdout[-300:] + r.stderr[-300:]}
        return {"tool": "wrk", "p50_ms": pct["50"], "p99_ms": pct.get("99"),
                "rps": float(rps.group(1)) if rps else None,
                "non_2xx": int(errs.group(1)) if errs else 0,
                "errors": sum(int(g) for g in sock.groups()) if sock else 0, "connections": conns}
    lat = []
    failed = [0]
    stop = time.time() + seconds
    lock = threading.Lock()

    def worker():
        while time.time() < stop:
            t = time.perf_counter()
            try:
                urllib.request.urlopen(url, timeout=5).read()
            except Exception:
                with lock:
                    failed[0] += 1
                continue
            with lock:
                lat.append((time.perf_counter() - t) * 1000)
    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    if not lat:
        return {"tool": "python", "error": "no answer"}
    return {"tool": "python", "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(len(lat) * 0.99)],
            "rps": len(lat) / seconds, "errors": failed[0], "connections": conns}


def http_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


# ------------------------------------------------------------ the two sides

def yaml_str(s):
    return json.dumps(s)  # a JSON string is a valid YAML scalar


def build_label(binary):
    """What the binary was built against, for the tables: a static binary here
    is the musl build (the appliance's libc), a dynamic one links glibc."""
    try:
        info = subprocess.run(["file", "-b", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return "musl" if ("statically linked" in info or "static-pie" in info) else "glibc"


class Ours:
    name = "streampulse"

    def __init__(self, binary, env=None, build=None, picture_checks=True):
        self.binary = binary
        self.env = env or {}
        self.build = build or build_label(binary)
        # Off: the probes of before the picture checks (issue 17), for the
        # side-by-side cost of the checks.
        self.picture_checks = picture_checks
        if not picture_checks:
            self.build += ", picture checks off"
        self.proc = None

    def size(self):
        return os.path.getsize(self.binary)

    def start(self, procs, run_dir, streams, interval, cams, max_conc):
        # public_status: the peer's /api/status needs no login either, so both
        # sides answer the same request with the full report (issue 20).
        lines = [f"heartbeat_seconds: {interval}", "timezone: UTC", "device_name: bench",
                 "web:", "  public_status: true",
                 "monitor:", f"  max_concurrent_probes: {max_conc}",
                 "time:", "  ntp_servers: ['127.0.0.1:123']", "streams:"]
        for name, url, kind, extra in streams:
            lines.append(f"- name: {name}\n  url: {yaml_str(url)}\n  kind: {kind}")
            for k, v in extra.items():
                lines.append(f"  {k}: {yaml_str(v)}")
            if not self.picture_checks:
                lines.append("  picture: {frozen: off, black: off, camera_clock: off}")
        cfg = os.path.join(run_dir, "config.yaml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.data = os.path.join(run_dir, "data")
        self.db = os.path.join(self.data, "streampulse.db")
        self.trace = os.path.join(run_dir, "strace.txt")
        self.stderr = open(os.path.join(run_dir, "stderr.txt"), "w+")
        env = dict(os.environ, **self.env)
        argv = strace_argv(self.trace) + [self.binary, "run", "--config", cfg, "--data-dir", self.data,
                                          "--listen", "127.0.0.1:0"]
        self.t_spawn = time.time()
        # stderr at info level for the port line only, then warn: read the line from the log.
        env["RUST_LOG"] = "warn,streampulse::cmds::run=info"
        self.proc = procs.start(argv, "streampulse", stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        deadline = time.time() + 30
        self.base = None
        while time.time() < deadline and self.base is None:
            self.stderr.seek(0)
            m = re.search(r"listening on (http://[\d.:]+)", self.stderr.read())
            if m:
                self.base = m.group(1)
            elif self.proc.poll() is not None:
                raise RuntimeError("streampulse exited: " + open(self.stderr.name).read()[-2000:])
            else:
                time.sleep(0.005)
        if not self.base:
            raise RuntimeError("streampulse did not report its address")
        while time.time() < deadline:
            try:
                if (http_json(self.base + "/healthz").get("probes_done") or 0) >= 1:
                    self.first_heartbeat_ms = (time.time() - self.t_spawn) * 1000
                    return
            except Exception:
                pass
            time.sleep(0.01)
        raise RuntimeError("no heartbeat within 30 s")

    def pids(self):
        if self.proc is None:
            return []
        # Under strace the binary is strace's child: measure it, not strace.
        kids = descendants(self.proc.pid)
        return kids[1:] if len(kids) > 1 and strace_argv("x") else kids

    def probes(self):
        return http_json(self.base + "/healthz")["probes_done"]

    def ok_ratio(self, since_ms):
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            results = [ok for _, _, ok, _, _ in blocks.heartbeats(c, since_ms)]
        finally:
            c.close()
        return sum(results) / len(results) if results else None

    def stored_rows(self):
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return c.execute("SELECT coalesce(sum(probes), 0) FROM heartbeat_blocks").fetchone()[0]
        finally:
            c.close()

    def checkpoint(self):
        """Starts the write accounting from a checkpointed database."""
        c = sqlite3.connect(self.db, timeout=5)
        try:
            c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            c.close()

    def age(self, streams, interval, hours):
        """Fills the database with `hours` of history, as a box that has been
        running for a while (retention keeps 7 days): a fresh database hides
        the write cost of a big B-tree."""
        c = sqlite3.connect(self.db, timeout=10)
        try:
            ids = dict(c.execute("SELECT name, id FROM streams"))
            failing = {ids[name] for name, *_ in streams if name.rsplit("-", 1)[1] in FAILING}
            now = int(time.time() * 1000)
            step = interval * 1000
            order = sorted(ids.values())
            # Whole windows only, ending before the run's first window: the
            # box writes the current one itself.
            end = now - now % blocks.WINDOW_MS
            hist = {}
            for k, sid in enumerate(order):
                bad = sid in failing
                hist[sid] = [(t + (k * 7919) % step, not bad, 5 if bad else 100 + k % 50, 1 if bad else None)
                             for t in range(end - hours * 3_600_000, end - step, step)]
            blocks.insert_history(c, hist)
            # As on a box that has been running: the older hours are rolled up
            # already, so the first retention pass does one hour's work.
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_watermark', ?)",
                      (now - now % 3_600_000 - 3_600_000,))
            c.commit()
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            c.close()

    def api_url(self):
        return self.base + "/api/status"

    def db_files(self):
        return [self.db, self.db + "-wal"]

    def stop(self, procs):
        # SIGTERM goes to streampulse itself (strace would detach, not stop it);
        # its graceful stop commits the last batch, then strace exits with it.
        for p in self.pids():
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            for p in self.pids():
                os.kill(p, signal.SIGKILL)
        procs.stop(self.proc, grace=5)
        self.proc = None


class Peer:
    """StreamPulse v2.2 (Python): monitor.py (probes + API on :7000),
    webgui.py (:8000) and mqtt_service.py (MQTT off, as in its default config)."""
    name = "peer v2.2"

    def __init__(self, src, venv):
        self.src, self.venv = src, venv
        self.procs_ = []

    def size(self):
        total = 0
        for d in (self.src, self.venv):
            for root, _, files in os.walk(d):
                for f in files:
                    try:
                        total += os.path.getsize(os.path.join(root, f))
                    except OSError:
                        pass
        return total

    def start(self, procs, run_dir, streams, interval, cams, max_conc):
        app = os.path.join(run_dir, "app")
        if not os.path.exists(app):
            shutil.copytree(self.src, app, ignore=shutil.ignore_patterns("streams.db", "*.pyc"))
        lines = [f"heartbeat_seconds: {interval}", "timezone: UTC", "mqtt:", "  enabled: false",
                 "streams:"]
        for name, url, kind, extra in streams:
            if extra.get("username"):  # the peer only knows credentials inside the URL
                scheme, rest = url.split("://", 1)
                url = f"{scheme}://{extra['username']}:{extra['password']}@{rest}"
            lines.append(f"- name: {name}\n  url: {yaml_str(url)}")
        with open(os.path.join(app, "config.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.db = os.path.join(app, "streams.db")
        self.trace = os.path.join(run_dir, "strace.txt")
        self.data = app
        py = os.path.join(self.venv, "bin", "python")
        env = dict(os.environ, DB_PATH=self.db, CFG_PATH=os.path.join(app, "config.yaml"),
                   PYTHONUNBUFFERED="1")
        script = " & ".join(f"{py} {os.path.join(app, s)}" for s in
                            ("monitor.py", "webgui.py", "mqtt_service.py")) + " & wait"
        self.t_spawn = time.time()
        self.proc = procs.start(strace_argv(self.trace) + ["sh", "-c", script], "peer",
                                stdout=open(os.path.join(run_dir, "stdout.txt"), "w"),
                                stderr=subprocess.STDOUT, cwd=app, env=env)
        deadline = time.time() + 60
        before = self.probes()  # a restart finds the aged rows
        while time.time() < deadline:
            if self.probes() > before:
                self.first_heartbeat_ms = (time.time() - self.t_spawn) * 1000
                return
            if self.proc.poll() is not None:
                raise RuntimeError("peer exited; see " + os.path.join(run_dir, "stdout.txt"))
            time.sleep(0.01)
        raise RuntimeError("peer: no heartbeat within 60 s")

    def pids(self):
        if self.proc is None:
            return []
        return [p for p in descendants(self.proc.pid) if _is_python(p)]

    def probes(self):
        if not os.path.exists(self.db):
            return 0
        try:
            c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                return c.execute("SELECT coalesce(sum(seq), 0) FROM sqlite_sequence").fetchone()[0]
            finally:
                c.close()
        except sqlite3.Error:
            return 0

    def ok_ratio(self, since_ms):
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        n = ok = 0
        try:
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since_ms / 1000))
            for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'log_%'"):
                a, b = c.execute(f"SELECT count(*), coalesce(sum(status = 'ok'), 0) FROM {t} WHERE ts >= ?",
                                 (since,)).fetchone()
                n, ok = n + a, ok + b
        finally:
            c.close()
        return ok / n if n else None

    def age(self, streams, interval, hours):
        """The same history in the peer's tables (one per stream)."""
        c = sqlite3.connect(self.db, timeout=10)
        try:
            tables = [t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'log_%'")]
            now = time.time()
            for t in tables:
                bad = t.rsplit("_", 1)[1] in FAILING
                ts = now - hours * 3600
                rows = []
                while ts < now - 60:
                    iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))
                    rows.append((iso, "fail" if bad else "ok", 5 if bad else 100, "timeout" if bad else "RTSP 200"))
                    ts += interval
                c.executemany(f"INSERT INTO {t} (ts, status, latency_ms, message) VALUES (?, ?, ?, ?)", rows)
            c.commit()
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            c.close()

    def stored_rows(self):
        return self.probes()

    def checkpoint(self):
        pass  # its connections open and close per heartbeat: the WAL is checkpointed every time

    def api_url(self):
        return "http://127.0.0.1:7000/api/status"

    def db_files(self):
        return [self.db, self.db + "-wal"]

    def stop(self, procs):
        for p in self.pids():
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            for p in self.pids():
                os.kill(p, signal.SIGKILL)
        procs.stop(self.proc, grace=5)
        self.proc = None


def _is_python(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().startswith("python")
    except FileNotFoundError:
        return False


def setup_peer(path, cache):
    """A copy of the peer's version-2.2/ and a venv with its pinned requirements."""
    src = path
    if os.path.isdir(os.path.join(path, "version-2.2")):
        src = os.path.join(path, "version-2.2")
    if not os.path.exists(os.path.join(src, "monitor.py")):
        raise SystemExit(f"PEER={path}: no monitor.py (point it at StreamPulse v2.2's version-2.2/)")
    venv = os.path.join(cache, "peer-venv")
    stamp = os.path.join(venv, ".requirements")
    req = open(os.path.join(src, "requirements.txt")).read()
    if not os.path.exists(stamp) or open(stamp).read() != req:
        log(f"installing the peer's requirements into {venv} (PyPI)")
        shutil.rmtree(venv, ignore_errors=True)
        base_py = shutil.which("python3.11") or sys.executable
        subprocess.run([base_py, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r",
                        os.path.join(src, "requirements.txt")], check=True)
        with open(stamp, "w") as f:
            f.write(req)
    return src, venv


# ------------------------------------------------------------------ a run

def measure(side, procs, cams, n, interval, fault, args, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    cams.set_fault(fault)
    streams = stream_list(n, cams, fault)
    max_conc = max(16, n // 16)
    load0 = os.getloadavg()[0]
    side.start(procs, run_dir, streams, interval, cams, max_conc)
    if args.aged_hours:
        side.stop(procs)
        side.age(streams, interval, args.aged_hours)
        side.start(procs, run_dir, streams, interval, cams, max_conc)
    first_ms = side.first_heartbeat_ms
    time.sleep(args.warmup)
    side.checkpoint()
    # Ours keeps raw heartbeats in memory until their 10-minute window ends
    # (store/blocks.rs): bytes are divided by the heartbeats *written* in
    # the same span, not by the probes run in it.
    ours = isinstance(side, Ours)
    stored0 = side.stored_rows() if ours else None
    watcher = RssWatcher(side.pids)
    watcher.start()
    t0, wall0 = time.time(), time.monotonic()
    s0, p0 = sum_samples(side.pids()), side.probes()
    size0 = sum(os.path.getsize(f) for f in side.db_files() if os.path.exists(f))
    time.sleep(args.window)
    s1, p1 = sum_samples(side.pids()), side.probes()
    stored1 = side.stored_rows() if ours else None
    wall = time.monotonic() - wall0
    size1 = sum(os.path.getsize(f) for f in side.db_files() if os.path.exists(f))
    rss_avg, rss_max, anon_avg = watcher.result()
    api = api_latency(side.api_url(), args.api_seconds, len(streams))
    threads = s1.get("Threads")
    hwm = sum_samples(side.pids()).get("VmHWM")
    nprocs = len(side.pids())
    for pid in side.pids():  # where the memory is, for docs/PERFORMANCE.md
        try:
            shutil.copy(f"/proc/{pid}/smaps", os.path.join(run_dir, f"smaps.{pid}.txt"))
        except OSError:
            pass
    p_end = side.probes()
    try:
        stored = side.stored_rows()
    except sqlite3.Error:
        stored = None
    side.stop(procs)
    # After the stop: ours has then written every heartbeat it kept in memory.
    ok = side.ok_ratio(int(t0 * 1000))
    st = strace_stats(side.trace, t0, side.data)
    probes = p1 - p0
    # Heartbeats written in the window (kernel counters: the process is
    # gone after the stop) and from t0 to the exit (strace: the stop writes
    # the open windows and checkpoints). For the peer: every probe at once.
    written_win = stored1 - stored0 if ours else probes
    written_total = side.stored_rows() - stored0 if ours else p_end - p0
    r = {
        "side": side.name, "streams": n, "interval_s": interval, "fault": fault,
        "build": getattr(side, "build", None),
        "window_s": round(wall, 1), "load_avg_at_start": load0,
        "max_concurrent_probes": max_conc if isinstance(side, Ours) else None,
        "vm_hwm_mb": hwm / 1024 if hwm else None,
        "vm_rss_avg_mb": rss_avg / 1024 if rss_avg else None,
        "vm_rss_max_mb": rss_max / 1024 if rss_max else None,
        "rss_anon_avg_mb": anon_avg / 1024 if anon_avg else None,
        "threads": threads, "processes": nprocs,
        "probes": probes,
        "probes_per_s": probes / wall,
        "scheduled_per_s": n / interval,
        "ok_ratio": ok,
        "cpu_s": (s1["ticks"] - s0["ticks"]) / CLK,
        "cpu_ms_per_probe": (s1["ticks"] - s0["ticks"]) / CLK * 1000 / probes if probes else None,
        "cpu_pct": (s1["ticks"] - s0["ticks"]) / CLK / wall * 100,
        "heartbeats_written_window": written_win,
        "heartbeats_written_to_exit": written_total,
        "write_bytes_per_hb": (s1["write_bytes"] - s0["write_bytes"]) / written_win if written_win else None,
        "wchar_per_hb": (s1["wchar"] - s0["wchar"]) / written_win if written_win else None,
        "db_growth_per_hb": (size1 - size0) / probes if probes else None,
        "db_size_end": size1,
        "stored_bytes_per_hb": size1 / stored if stored else None,
        "first_heartbeat_ms": first_ms,
        "api": api,
        "install_bytes": side.size(),
    }
    if st is not None:
        # Bytes from t0 to exit (the final commit and checkpoint included)
        # over the heartbeats written from t0 to the exit.
        total = written_total
        r["file_bytes_per_hb"] = (st["db"] + st["wal"]) / total if total else None
        r["wal_bytes_per_hb"] = st["wal"] / total if total else None
        r["db_bytes_per_hb"] = st["db"] / total if total else None
        in_win = [t for t in st["sync_times"] if t <= t0 + wall]
        r["fsyncs_per_min"] = len(in_win) / wall * 60
    fix = " +faults" if fault else ""
    log(f"{side.name}{fix} n={n} ({r['build'] or 'python'}, load {load0:.2f}): "
        f"{probes / wall:.1f}/{n / interval:.1f} probes/s, "
        f"HWM {r['vm_hwm_mb'] or 0:.1f} MB, CPU {r['cpu_ms_per_probe'] or 0:.2f} ms/probe, "
        f"api p99 {api.get('p99_ms')} ms")
    return r


# ----------------------------------------------------------------- output

def fmt(v, digits=1, suffix=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}{suffix}"
    return f"{v}{suffix}"


ROWS = [
    # label, key or function, digits, lower is better
    ("RSS peak, VmHWM (MB)", "vm_hwm_mb", 1, True),
    ("RSS steady, VmRSS mean (MB)", "vm_rss_avg_mb", 1, True),
    ("  of which private (RssAnon, MB)", "rss_anon_avg_mb", 1, True),
    ("processes / threads", lambda r: f"{r['processes']} / {r['threads']}", None, None),
    ("CPU per probe (ms)", "cpu_ms_per_probe", 2, True),
    ("CPU, % of one core", "cpu_pct", 1, True),
    ("probes/s achieved / scheduled", lambda r: f"{r['probes_per_s']:.2f} / {r['scheduled_per_s']:.2f}", None, None),
    ("heartbeats ok (%)", lambda r: fmt(r["ok_ratio"] * 100 if r["ok_ratio"] is not None else None, 0), None, None),
    ("DB+WAL bytes written / heartbeat", "file_bytes_per_hb", 0, True),
    ("kernel write_bytes / heartbeat", "write_bytes_per_hb", 0, True),
    ("DB file bytes / stored heartbeat", "stored_bytes_per_hb", 0, True),
    ("fsyncs per minute", "fsyncs_per_min", 1, True),
    ("/api/status p50 (ms)", lambda r: r["api"].get("p50_ms"), 2, True),
    ("/api/status p99 (ms)", lambda r: r["api"].get("p99_ms"), 2, True),
    ("start-up to first heartbeat (ms)", "first_heartbeat_ms", 0, True),
    ("binary / install size (MB)", lambda r: r["install_bytes"] / 1e6, 1, True),
]


def cell(r, key, digits):
    if r is None:
        return None
    v = key(r) if callable(key) else r.get(key)
    return v


def result_key(r):
    """(side, build, fault); results written before builds were labelled
    came from the glibc build."""
    build = r.get("build", "glibc") if r["side"] == "streampulse" else None
    return (r["side"], build, r["fault"])


def table(n, interval, results, mix):
    by = {}
    for r in results:
        if r["streams"] == n:
            by[result_key(r)] = r
    builds = sorted({b for side, b, _ in by if side == "streampulse"})
    # One build: the columns read "streampulse", "+faults"; several (glibc
    # and musl): each build's name heads its pair of columns.
    cols = []
    for b in builds:
        name = "streampulse" if len(builds) == 1 else b
        cols += [(name, ("streampulse", b, False)), (f"{b} +faults" if len(builds) > 1 else "+faults",
                                                      ("streampulse", b, True))]
    cols += [("peer v2.2", ("peer v2.2", None, False)), ("peer +faults", ("peer v2.2", None, True))]
    present = [(lbl, k) for lbl, k in cols if k in by]
    ours = by.get(("streampulse", builds[0], False)) if builds else None
    peer = by.get(("peer v2.2", None, False))
    width = max([16] + [len(lbl) + 2 for lbl, _ in present])
    head = f"{'':36}" + "".join(f"{lbl:>{width}}" for lbl, _ in present)
    if ours and peer:
        head += f"{'peer/ours':>11}"
    out = [f"### {n} streams, heartbeat {interval} s: {mix}", "", "```", head]
    for label, key, digits, lower in ROWS:
        line = f"{label:36}"
        for _, k in present:
            v = cell(by[k], key, digits)
            line += f"{(v if isinstance(v, str) else fmt(v, digits)):>{width}}"
        if ours and peer and digits is not None:
            a, b = cell(ours, key, digits), cell(peer, key, digits)
            ratio = "–"
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
                ratio = f"{b / a:.1f}×"
            line += f"{ratio:>11}"
        out.append(line)
    out.append("```")
    out.append("")
    out.append(f"- streampulse checks {OURS_CHECK}.")
    if peer:
        out.append(f"- peer v2.2 checks {PEER_CHECK}; it writes one row (~55 B of text) per heartbeat "
                   "in a table per stream and never prunes.")
    if ours:
        out.append(f"- streampulse: `monitor.max_concurrent_probes: {ours['max_concurrent_probes']}`, "
                   "state changes committed every 5 s, raw heartbeats written as packed blocks when "
                   "their 10-minute window ends, retention on. Bytes per heartbeat: DB+WAL bytes "
                   "from the window's start to the exit (the stop writes the open windows, then "
                   "checkpoints) over the heartbeats written then; kernel write_bytes over the "
                   "window only (– if no 10-minute window ended in it).")
    loads = [f"{lbl} {by[k]['load_avg_at_start']:.1f}" for lbl, k in present
             if by[k].get("load_avg_at_start") is not None]
    if loads:
        out.append("- load average at the start of each run (2 cores, shared): " + ", ".join(loads) + ".")
    runs = sorted({by[k].get("run") for _, k in present if by[k].get("run")})
    if len(runs) > 1:
        out.append("- columns from different runs (`--merge`): " + ", ".join(
            f"{lbl} from {by[k]['run']}" for lbl, k in present if by[k].get("run")) + ".")
    if len(builds) > 1:
        out.append("- builds: " + ", ".join(f"{b}: {by[('streampulse', b, False)].get('binary', '?')}"
                                             for b in builds if ('streampulse', b, False) in by) + ".")
    return "\n".join(out)


def svg_chart(results, path):
    """Grouped bars (log scale) per metric and size: ours vs peer."""
    metrics = [("RSS peak (MB)", "vm_hwm_mb"), ("CPU per probe (ms)", "cpu_ms_per_probe"),
               ("bytes written / heartbeat", "file_bytes_per_hb"), ("/api/status p99 (ms)", None)]
    sizes = sorted({r["streams"] for r in results})
    sides = [("streampulse", "#2b7bb9"), ("peer v2.2", "#d9822b")]
    W, H, pad = 220, 200, 40
    width = pad + len(metrics) * (W + 20)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H + 90}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{pad}" y="16" font-size="13">StreamPulse vs StreamPulse v2.2 '
           f'(no faults; log scale; lower is better)</text>']
    import math
    for mi, (title, key) in enumerate(metrics):
        x0 = pad + mi * (W + 20)
        svg.append(f'<text x="{x0}" y="38">{title}</text>')
        vals = []
        for r in results:
            if r["fault"]:
                continue
            v = r["api"].get("p99_ms") if key is None else r.get(key)
            if v:
                vals.append(v)
        if not vals:
            continue
        lo, hi = math.log10(min(vals)) - 0.3, math.log10(max(vals)) + 0.1
        y_base = H + 40
        bw = W / (len(sizes) * 3)
        for si, n in enumerate(sizes):
            for k, (side, color) in enumerate(sides):
                r = next((r for r in results if r["streams"] == n and r["side"] == side and not r["fault"]
                          and r.get("build", "glibc") in ("glibc", None)), None)
                if not r:
                    continue
                v = r["api"].get("p99_ms") if key is None else r.get(key)
                if not v:
                    continue
                h = max(1, (math.log10(v) - lo) / (hi - lo) * (H - 20))
                x = x0 + si * 3 * bw + k * bw
                svg.append(f'<rect x="{x:.1f}" y="{y_base - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{color}"/>')
                svg.append(f'<text x="{x:.1f}" y="{y_base - h - 3:.1f}" font-size="9">{v:.3g}</text>')
            svg.append(f'<text x="{x0 + si * 3 * bw:.1f}" y="{y_base + 14}">{n}</text>')
        svg.append(f'<line x1="{x0}" y1="{y_base}" x2="{x0 + W}" y2="{y_base}" stroke="#999"/>')
    ly = H + 75
    for k, (side, color) in enumerate(sides):
        svg.append(f'<rect x="{pad + k * 140}" y="{ly - 10}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{pad + k * 140 + 14}" y="{ly}">{side}</text>')
    svg.append(f'<text x="{pad + 300}" y="{ly}">x axis: streams</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


def machine_note():
    cpus = os.cpu_count()
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpus} cores ({model}), load average {os.getloadavg()[0]:.2f} at the end"


# ------------------------------------------------------------------- main

def inside(args):
    procs = Procs()
    work = tempfile.mkdtemp(prefix="spbench-")
    results = []
    try:
        cams = Cameras(procs, work)
        cams.start()
        sides = [] if args.only == "peer" else [Ours(args.bin, dict(e.split("=", 1) for e in args.env),
                                                      args.label, args.picture_checks)]
        if args.peer and args.only != "ours":
            src, venv = setup_peer(args.peer, args.cache)
            sides.append(Peer(src, venv))
        for n in args.sizes:
            for side in sides:
                for fault in ([True] if args.faults_only else [False, True] if args.faults else [False]):
                    rd = os.path.join(work, f"{side.name.split()[0]}-{n}-{'fault' if fault else 'ok'}")
                    try:
                        r = measure(side, procs, cams, n, args.interval, fault, args, rd)
                        if isinstance(side, Ours):
                            r["binary"] = os.path.relpath(args.bin, ROOT)
                        results.append(r)
                    except Exception as e:  # one failed run must not lose the others
                        log(f"{side.name} n={n} fault={fault} failed: {e}")
                        if side.proc is not None:
                            side.stop(procs)
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    return results


def merge(results, paths):
    """Adds the results of earlier runs (`--merge`), e.g. the glibc build's
    next to the musl build's; this run's results win where both have the
    same side, build, size and fault column."""
    have = {result_key(r) + (r["streams"],) for r in results}
    merged = list(results)
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        earlier = doc["results"]
        for r in earlier:
            r.setdefault("run", doc.get("meta", {}).get("when"))
            if result_key(r) + (r["streams"],) not in have:
                have.add(result_key(r) + (r["streams"],))
                merged.append(r)
    return merged


def report(args, results):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for r in results:
        r.setdefault("run", stamp)
    results = merge(results, args.merge)
    os.makedirs(args.out, exist_ok=True)
    meta = {"when": stamp, "machine": machine_note(), "interval_s": args.interval,
            "warmup_s": args.warmup, "window_s": args.window, "api_seconds": args.api_seconds,
            "binary": os.path.relpath(args.bin, ROOT), "ours_checks": OURS_CHECK,
            "peer_checks": PEER_CHECK if args.peer else None}
    doc = [f"# StreamPulse bench {stamp}", "",
           f"Machine: {meta['machine']}. Warm-up {args.warmup} s, window {args.window} s, "
           f"then {args.api_seconds} s of `/api/status` load (4 connections).", ""]
    for n in sorted({r["streams"] for r in results}):
        if any(r["streams"] == n for r in results):
            doc.append(table(n, args.interval, results, mix_text(n)))
            doc.append("")
    text = "\n".join(doc)
    print(text)
    if not args.smoke:
        with open(os.path.join(args.out, f"{stamp}.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        with open(os.path.join(args.out, "latest.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(text + "\n")
        svg_chart(results, os.path.join(args.out, "latest.svg"))
        log(f"results in {os.path.relpath(args.out, ROOT)}/ (latest.md, latest.json, latest.svg)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", "--binary", dest="bin",
                    default=os.path.join(ROOT, "target", "bench", "release", "streampulse"),
                    help="the streampulse binary to measure, e.g. a static musl build "
                         "(default target/bench/release/streampulse)")
    ap.add_argument("--label", help="name of the build in the tables (default: musl for a static "
                                    "binary, glibc otherwise)")
    ap.add_argument("--merge", action="append", default=[], metavar="RESULTS.json",
                    help="also report the results of an earlier run (e.g. the other libc's); "
                         "this run's win where both measured the same thing")
    ap.add_argument("--sizes", default="10,100,1000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--interval", type=int, default=15, help="heartbeat_seconds (≥ 5; 5 = compressed time)")
    ap.add_argument("--warmup", type=float, default=40,
                    help="seconds before the window (the first retention pass runs at 30 s)")
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--api-seconds", type=int, default=8)
    ap.add_argument("--aged-hours", type=int, default=24,
                    help="history put in the database before measuring (0 = fresh database)")
    ap.add_argument("--no-faults", dest="faults", action="store_false")
    ap.add_argument("--faults-only", action="store_true", help="run only the fault column")
    ap.add_argument("--peer", default=os.environ.get("PEER") or None,
                    help="StreamPulse v2.2 checkout (or its version-2.2/); default $PEER")
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "bench"))
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    ap.add_argument("--env", action="append", default=[], help="K=V for streampulse's environment")
    ap.add_argument("--only", choices=["ours", "peer"], help="run one side only")
    ap.add_argument("--no-picture-checks", dest="picture_checks", action="store_false",
                    help="ours with every stream's picture checks off (the probes of before them)")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument("--smoke", action="store_true", help="print the table only, write no results")
    ap.add_argument("--inside", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if args.peer:
        args.peer = os.path.abspath(args.peer)

    if args.inside:
        results = inside(args)
        with open(args.inside, "w") as f:
            json.dump(results, f)
        return

    if os.geteuid() != 0 or not shutil.which("ip"):
        raise SystemExit("bench: needs root and iproute2 (it runs in its own network namespace)")
    if not os.path.exists(args.bin):
        raise SystemExit(f"bench: {args.bin} not found (make bench builds it)")
    if args.peer:
        setup_peer(args.peer, args.cache)  # install outside the namespace (PyPI)
    ns = f"spbench-{os.getpid()}"
    etc = f"/etc/netns/{ns}"
    out = tempfile.NamedTemporaryFile(prefix="spbench-", suffix=".json", delete=False).name
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        os.makedirs(etc, exist_ok=True)
        with open(f"{etc}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
        with open(f"{etc}/hosts", "w") as f:
            # The peer asks pool.ntp.org for the time on every heartbeat.
            f.write("127.0.0.1 localhost pool.ntp.org\n::1 localhost\n")
        argv = [a for a in sys.argv[1:]]
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                        "--inside", out] + argv, check=True)
        results = json.load(open(out))
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(etc, ignore_errors=True)
        os.unlink(out)
    if not results:
        raise SystemExit("bench: no run succeeded")
    report(args, results)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"bench: FAILED: {e}")
