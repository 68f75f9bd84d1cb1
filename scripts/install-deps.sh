#!/bin/sh
# Installs what StreamPulse's tests and `make run` need on a fresh Debian
# machine: the real servers the tests start on loopback (GStreamer's RTSP
# server, ffmpeg, Mosquitto), promtool for the Prometheus files in contrib/,
# and the Rust lint components. Idempotent and
# quiet when everything is already there.
set -eu

PKGS="python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools \
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
gstreamer1.0-plugins-ugly ffmpeg lighttpd mosquitto mosquitto-clients \
openssl python3-prometheus-client \
time faketime systemd wpasupplicant \
wrk strace iproute2 python3-venv \
file xz-utils cpio kmod fdisk dosfstools mtools e2fsprogs genimage \
qemu-user-static qemu-system-arm mmdebstrap arch-test \
u-boot-qemu u-boot-tools rauc squashfs-tools dbus-daemon"

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

# promtool checks contrib/prometheus (tests/it/prometheus_files.rs). Debian
# ships it only inside the `prometheus` package, whose install is the whole
# server: 96 MB, a dozen JavaScript packages, a system user, and a
# Prometheus started on port 9090 by its init script (this machine's PID 1
# is not systemd, so nothing stops it). So take the one binary out of the
# package instead: `apt-get download` + `dpkg-deb`, into /usr/local/bin.
if ! command -v promtool >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "install-deps: installing promtool (from Debian's prometheus package)"
    tmp="$(mktemp -d)"
    $SUDO apt-get update -qq
    # As root, apt's download sandbox user cannot write to our temp dir; make it its.
    [ "$(id -u)" != 0 ] || chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
    $SUDO install -m 0755 "$tmp/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$tmp"
fi

if command -v rustup >/dev/null 2>&1; then
    for c in clippy rustfmt; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
    done
fi

# The web GUI's end-to-end test (tests/e2e): Debian's Chromium driven by
# playwright-core from npm (pinned in tests/e2e/package-lock.json; it never
# downloads a browser of its own). Node.js comes with the machine; Debian's
# is installed only where there is none.
web_missing=""
for p in chromium fonts-dejavu-core; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || web_missing="$web_missing $p"
done
command -v npm >/dev/null 2>&1 || web_missing="$web_missing nodejs npm"
if [ -n "$web_missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "install-deps: installing$web_missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $web_missing >/dev/null
fi
E2E="$(dirname "$0")/../tests/e2e"
if [ ! -d "$E2E/node_modules/playwright-core" ] || [ "$E2E/package-lock.json" -nt "$E2E/node_modules/.package-lock.json" ]; then
    echo "install-deps: npm ci in tests/e2e"
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
fi

# openapi-spec-validator (PyPI; Debian 12 does not package it), for the
# write API's OpenAPI test (tests/it/write_api.rs), in a venv of Debian's
# Python under target/.
PYVENV="$(dirname "$0")/../target/pyvenv"
if ! "$PYVENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    echo "install-deps: openapi-spec-validator into target/pyvenv"
    /usr/bin/python3 -m venv "$PYVENV"
    "$PYVENV/bin/pip" install -q --disable-pip-version-check 'openapi-spec-validator==0.7.1'
fi
