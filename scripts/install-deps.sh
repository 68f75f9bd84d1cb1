#!/bin/sh
# Installs what StreamPulse's tests and `make run` need on a fresh Debian
# machine: the real servers the tests start on loopback (GStreamer's RTSP
# server, ffmpeg, Mosquitto) and the Rust lint components. Idempotent and
# quiet when everything is already there.
set -eu

PKGS="python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools \
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
gstreamer1.0-plugins-ugly ffmpeg lighttpd mosquitto mosquitto-clients"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "install-deps: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
    for c in clippy rustfmt; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
fi
