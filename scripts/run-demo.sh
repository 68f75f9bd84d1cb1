#!/usr/bin/env bash
# `make run`: starts the loopback demo cameras that the repo's config.yaml
# points at, then runs StreamPulse in the foreground. Ctrl-C stops everything.
#
#   demo RTSP server   rtsp://127.0.0.1:18554/{h264,h265,mjpeg,digest}  (GStreamer)
#   demo MJPEG camera  http://127.0.0.1:18080/stream.mjpg               (ffmpeg mpjpeg)
#   demo snapshot      http://127.0.0.1:18081/snapshot.jpg              (python http.server)
#   demo MQTT broker   127.0.0.1:18883 (mosquitto; watch it with
#                      mosquitto_sub -h 127.0.0.1 -p 18883 -v -t '#')
#
# These fixed ports are for the demo only (tests always take free ports).
set -euo pipefail
BIN=${1:-./target/release/streampulse}
CONFIG=${2:-config.yaml}
DATA_DIR=${3:-data}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=$(mktemp -d -t streampulse-demo.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DEMO_DIR"
}
trap cleanup EXIT INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 18554 18080 18081 18883; do
    if port_busy "$p"; then
        echo "run-demo: port $p is already in use; the demo needs 18554, 18080, 18081 and 18883" >&2
        exit 1
    fi
done

/usr/bin/python3 "$ROOT/tests/servers/rtsp_server.py" --port 18554 >"$DEMO_DIR/rtsp.log" 2>&1 &
PIDS+=($!)

# ffmpeg's HTTP server serves one client and exits: restart it for every probe.
(
    while true; do
        # A little sensor-like noise, seeded anew for every client: testsrc
        # alone starts every session on the same picture, which the picture
        # checks rightly call frozen.
        ffmpeg -hide_banner -loglevel error -re -f lavfi \
            -i "testsrc=size=640x360:rate=10,noise=alls=6:allf=t:all_seed=$RANDOM" \
            -f mpjpeg -listen 1 http://127.0.0.1:18080/stream.mjpg || sleep 1
    done
) >"$DEMO_DIR/mjpeg.log" 2>&1 &
PIDS+=($!)

mkdir -p "$DEMO_DIR/www"
# A snapshot camera takes a new picture for every request; this one every 2 s
# (a file that never changes would be a frozen camera).
snapshot() {
    ffmpeg -hide_banner -loglevel error -f lavfi \
        -i "testsrc=size=640x360,noise=alls=6:allf=t:all_seed=$RANDOM" -frames:v 1 \
        -y "$DEMO_DIR/www/next.jpg" && mv "$DEMO_DIR/www/next.jpg" "$DEMO_DIR/www/snapshot.jpg"
}
snapshot
(while sleep 2; do snapshot; done) >"$DEMO_DIR/snapshot.log" 2>&1 &
PIDS+=($!)
/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$DEMO_DIR/www" 18081 >"$DEMO_DIR/http.log" 2>&1 &
PIDS+=($!)

cat >"$DEMO_DIR/mosquitto.conf" <<CONF
listener 18883 127.0.0.1
allow_anonymous true
persistence false
CONF
mosquitto -c "$DEMO_DIR/mosquitto.conf" >"$DEMO_DIR/mosquitto.log" 2>&1 &
PIDS+=($!)

sleep 1
echo "run-demo: demo cameras up; starting StreamPulse (dashboard/API on the web.listen address in $CONFIG)"
RUST_LOG=${RUST_LOG:-info,streampulse::monitor=debug} "$BIN" run --config "$CONFIG" --data-dir "$DATA_DIR" &
SP=$!
PIDS+=($SP)
wait "$SP"
