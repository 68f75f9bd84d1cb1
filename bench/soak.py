#!/usr/bin/env python3
"""`make soak`: does StreamPulse's memory stay flat over a long run?

Runs `streampulse run` on N streams (default 1000) with short heartbeats
(5 s, the shortest the config allows) against the bench's loopback cameras
(bench/run.py's set-up, reused: GStreamer RTSP live mounts, the Python
MJPEG/snapshot server, an SNTP server, 20 % failing streams of every kind)
for SOAK_MINUTES (default 60). After a warm-up it samples VmRSS, RssAnon,
VmHWM, threads and probes done every --every seconds, prints the curve as a
table, writes bench/results/soak-<stamp>.json and .svg, and ends with the
verdict

    RSS growth after warm-up ≤ 1 MB: PASS|FAIL (… kB)

where growth = median VmRSS of the last quarter of the samples minus the
median of the first quarter (medians, so one sample taken while 60 probes
are in flight does not decide it). The exit status is 1 on FAIL.

Like the bench it runs inside a network namespace made for the run (root
needed): everything stays on that namespace's loopback.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: cameras, process helpers)

# No strace here: the soak measures memory, and tracing every write for an
# hour would only slow the box down.
bench.strace_argv = lambda out: []

LIMIT_KB = 1024
# Reason codes as stored (src/probe/mod.rs, Reason::ALL, 1-based).
REASONS = {1: "dns", 2: "connect", 3: "timeout", 4: "auth", 5: "not_found", 6: "protocol",
           7: "no_video", 8: "no_frame", 9: "bad_frame", 10: "too_large", 11: "http_status"}


def log(*a):
    print("[soak]", *a, file=sys.stderr, flush=True)


def median(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] + s[(n - 1) // 2]) / 2 if n else None


def sample(ours):
    """One point of the curve (kB and counters) or None if the process is gone."""
    s = bench.sum_samples(ours.pids())
    if "VmRSS" not in s:
        return None
    try:
        h = bench.http_json(ours.base + "/healthz", timeout=10)
    except Exception as e:  # a busy box: keep the memory figure anyway
        log(f"/healthz failed: {e}")
        h = {}
    rec = h.get("recorder") or {}
    return {
        "rss_kb": s["VmRSS"], "anon_kb": s.get("RssAnon"), "hwm_kb": s.get("VmHWM"),
        "threads": s.get("Threads"), "cpu_ticks": s.get("ticks"),
        "probes": h.get("probes_done"), "dropped": rec.get("dropped"),
        "committed": rec.get("heartbeats_committed"),
    }


def verdict(points):
    rss = [p["rss_kb"] for p in points]
    q = max(1, len(rss) // 4)
    first, last = median(rss[:q]), median(rss[-q:])
    # Least-squares slope, kB per hour: how fast it would grow if it did.
    ts = [p["t_s"] for p in points]
    n = len(ts)
    slope = None
    if n >= 2:
        mt, mr = sum(ts) / n, sum(rss) / n
        den = sum((t - mt) ** 2 for t in ts)
        if den:
            slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rss)) / den * 3600
    growth = last - first
    return {
        "first_quarter_median_kb": first, "last_quarter_median_kb": last,
        "growth_kb": growth, "min_kb": min(rss), "max_kb": max(rss),
        "slope_kb_per_h": slope, "limit_kb": LIMIT_KB, "pass": growth <= LIMIT_KB,
    }


def inside(args):
    procs = bench.Procs()
    work = tempfile.mkdtemp(prefix="spsoak-")
    try:
        cams = bench.Cameras(procs, work)
        cams.start()
        streams = bench.stream_list(args.streams, cams, False)
        ours = bench.Ours(args.bin)
        t_start = time.time()
        run_dir = os.path.join(work, "run")
        os.makedirs(run_dir)
        ours.start(procs, run_dir, streams, args.interval, cams,
                   max(16, args.streams // 16))
        log(f"{args.streams} streams every {args.interval} s; warm-up {args.warmup:.0f} s, "
            f"then a sample every {args.every} s until {args.minutes} min")
        end = t_start + args.minutes * 60
        warm_end = t_start + args.warmup
        warm = []  # during warm-up too, for the curve (not for the verdict)
        points = []
        while time.time() < end:
            time.sleep(min(args.every, max(0.0, end - time.time())))
            if ours.proc.poll() is not None:
                raise RuntimeError(f"streampulse exited with {ours.proc.returncode}")
            s = sample(ours)
            if s is None:
                continue
            s["t_s"] = round(time.time() - t_start, 1)
            (points if time.time() >= warm_end else warm).append(s)
            log(f"t={s['t_s']:7.0f} s  VmRSS {s['rss_kb'] / 1024:6.2f} MB  "
                f"probes {s['probes']}  dropped {s['dropped']}")
        # Did the box keep up, and with what results? Heartbeats after the
        # warm-up by slot kind (the name's suffix) and result, read-only from
        # the database (the API would want a login).
        summary = {}
        try:
            c = sqlite3.connect(f"file:{ours.db}?mode=ro", uri=True, timeout=10)
            try:
                rows = list(bench.blocks.heartbeats(c, int(warm_end * 1000)))
            finally:
                c.close()
            for name, _, ok, _, reason in rows:
                slot = name.rsplit("-", 1)[1]
                key = f"{slot} {'ok' if ok else REASONS.get(reason, reason)}"
                summary[key] = summary.get(key, 0) + 1
        except sqlite3.Error as e:
            log(f"reading the database failed: {e}")
        ours.stop(procs)
        return {"warmup": warm, "points": points, "results": summary}
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def table(warm, points, every_row):
    out = [f"{'t (min)':>8} {'VmRSS MB':>9} {'RssAnon MB':>10} {'VmHWM MB':>9} {'threads':>7} "
           f"{'probes/s':>8} {'dropped':>7}"]
    allp = warm + points
    prev = None
    first_counted = points[0] if points else None
    for i, p in enumerate(allp):
        # About 30 rows: every `every_row`-th sample, the first counted one and the last.
        if i % every_row and i != len(allp) - 1 and p is not first_counted:
            continue
        rate = ""
        if prev and p["probes"] is not None and prev["probes"] is not None:
            rate = f"{(p['probes'] - prev['probes']) / max(0.1, p['t_s'] - prev['t_s']):.1f}"
        tag = " (warm-up)" if p in warm else ""
        mb = lambda k: f"{p[k] / 1024:.2f}" if p.get(k) is not None else "–"  # noqa: E731
        out.append(f"{p['t_s'] / 60:8.1f} {mb('rss_kb'):>9} {mb('anon_kb'):>10} {mb('hwm_kb'):>9} "
                   f"{p['threads'] or '–':>7} {rate:>8} {p['dropped'] if p['dropped'] is not None else '–':>7}{tag}")
        prev = p
    return "\n".join(out)


def svg(warm, points, v, path, title):
    allp = warm + points
    W, H, L, T = 640, 260, 60, 30
    t_max = max(p["t_s"] for p in allp) or 1
    lo = min(p["rss_kb"] for p in allp) / 1024
    hi = max(p["rss_kb"] for p in allp) / 1024
    lo, hi = lo - 0.5, hi + 0.5
    x = lambda t: L + t / t_max * W  # noqa: E731
    y = lambda mb: T + H - (mb - lo) / (hi - lo) * H  # noqa: E731
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W + L + 20}" height="{H + T + 50}" '
         f'font-family="sans-serif" font-size="11">',
         f'<text x="{L}" y="18" font-size="13">{title}</text>']
    if points:
        s.append(f'<rect x="{L}" y="{T}" width="{x(points[0]["t_s"]) - L:.1f}" height="{H}" fill="#eee"/>')
        s.append(f'<text x="{L + 4}" y="{T + 14}" fill="#777">warm-up</text>')
    for k in range(5):
        mb = lo + (hi - lo) * k / 4
        s.append(f'<line x1="{L}" y1="{y(mb):.1f}" x2="{L + W}" y2="{y(mb):.1f}" stroke="#ddd"/>'
                 f'<text x="{L - 6}" y="{y(mb) + 4:.1f}" text-anchor="end">{mb:.1f}</text>')
    pts = " ".join(f"{x(p['t_s']):.1f},{y(p['rss_kb'] / 1024):.1f}" for p in allp)
    s.append(f'<polyline points="{pts}" fill="none" stroke="#2b7bb9" stroke-width="1.5"/>')
    if v:
        for key, color in (("first_quarter_median_kb", "#888"), ("last_quarter_median_kb", "#d9822b")):
            yy = y(v[key] / 1024)
            s.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + W}" y2="{yy:.1f}" stroke="{color}" '
                     f'stroke-dasharray="4 3"/>')
    s.append(f'<text x="{L + W / 2}" y="{T + H + 30}" text-anchor="middle">minutes '
             f'(0–{t_max / 60:.0f}); y: VmRSS (MB); dashed: first/last-quarter medians</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(bench.ROOT, "target", "bench", "release", "streampulse"))
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 60))
    ap.add_argument("--streams", type=int, default=int(os.environ.get("SOAK_STREAMS") or 1000))
    ap.add_argument("--interval", type=int, default=int(os.environ.get("SOAK_INTERVAL") or 5),
                    help="heartbeat_seconds (≥ 5; default $SOAK_INTERVAL or 5)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the samples that count (default: a fifth of the run, at most 10 min)")
    ap.add_argument("--every", type=float, default=None, help="seconds between samples (default: run/60, 5–30 s)")
    ap.add_argument("--out", default=os.path.join(bench.BENCH, "results"))
    ap.add_argument("--inside", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    total = args.minutes * 60
    if args.warmup is None:
        args.warmup = min(600.0, total / 5)
    if args.every is None:
        args.every = min(30.0, max(5.0, total / 60))

    if args.inside:
        with open(args.inside, "w") as f:
            json.dump(inside(args), f)
        return

    if os.geteuid() != 0 or not shutil.which("ip"):
        raise SystemExit("soak: needs root and iproute2 (it runs in its own network namespace)")
    if not os.path.exists(args.bin):
        raise SystemExit(f"soak: {args.bin} not found (make soak builds it)")
    ns = f"spsoak-{os.getpid()}"
    etc = f"/etc/netns/{ns}"
    out = tempfile.NamedTemporaryFile(prefix="spsoak-", suffix=".json", delete=False).name
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        os.makedirs(etc, exist_ok=True)
        with open(f"{etc}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
        with open(f"{etc}/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost\n")
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                        "--inside", out, "--bin", args.bin, "--minutes", str(args.minutes),
                        "--streams", str(args.streams), "--interval", str(args.interval),
                        "--warmup", str(args.warmup), "--every", str(args.every)], check=True)
        with open(out) as f:
            res = json.load(f)
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(etc, ignore_errors=True)
        os.unlink(out)

    warm, points = res["warmup"], res["points"]
    if len(points) < 4:
        raise SystemExit(f"soak: only {len(points)} samples after warm-up; run longer")
    v = verdict(points)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    title = (f"StreamPulse soak: {args.streams} streams every {args.interval} s, "
             f"{args.minutes:g} min, warm-up {args.warmup:.0f} s")
    rows = max(1, len(warm + points) // 30)  # about 30 rows whatever the length
    print(f"## {title}\n\n```\n{table(warm, points, rows)}\n```\n")
    print(f"samples after warm-up: {len(points)} (every {args.every:g} s); VmRSS min {v['min_kb'] / 1024:.2f} MB, "
          f"max {v['max_kb'] / 1024:.2f} MB; first-quarter median {v['first_quarter_median_kb'] / 1024:.2f} MB, "
          f"last-quarter median {v['last_quarter_median_kb'] / 1024:.2f} MB; slope "
          f"{v['slope_kb_per_h'] or 0:.0f} kB/h")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"soak-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump({"meta": {"when": stamp, "machine": bench.machine_note(), "streams": args.streams,
                            "interval_s": args.interval, "minutes": args.minutes,
                            "warmup_s": args.warmup, "every_s": args.every,
                            "binary": os.path.relpath(args.bin, bench.ROOT)},
                   "verdict": v, "results": res.get("results"), "warmup": warm,
                   "points": points}, f, indent=1)
    svg(warm, points, v, base + ".svg", title)
    span = points[-1]["t_s"] - points[0]["t_s"]
    if span > 0 and points[-1]["probes"] is not None and points[0]["probes"] is not None:
        print(f"probes/s after warm-up: {(points[-1]['probes'] - points[0]['probes']) / span:.1f} achieved, "
              f"{args.streams / args.interval:.1f} scheduled")
    print("heartbeats after warm-up by stream kind and result: "
          + ", ".join(f"{k} {n}" for k, n in sorted((res.get("results") or {}).items())))
    print(f"curve: {os.path.relpath(base, bench.ROOT)}.json / .svg")
    print(f"RSS growth after warm-up ≤ 1 MB: {'PASS' if v['pass'] else 'FAIL'} "
          f"({v['growth_kb']:+.0f} kB)")
    if not v["pass"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
