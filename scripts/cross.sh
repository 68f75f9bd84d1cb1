#!/bin/sh
# Cross-builds the static appliance binaries (`make cross`):
#
#   target/cross/dist/streampulse-aarch64   aarch64-unknown-linux-musl       (Pi 3/4/5/Zero 2 W, Orange Pi H5/H6/RK3399)
#   target/cross/dist/streampulse-armv7     armv7-unknown-linux-musleabihf   (Orange Pi H3 boards, 32-bit userlands)
#
# Both are fully static (musl), built with the release profile from Cargo.toml
# (opt-level="z", LTO, stripped, panic=abort). zig is the linker and C compiler
# (cargo-zigbuild), so rusqlite's bundled SQLite builds without a cross gcc.
# std is built from rust-src for both (-Zbuild-std; RUSTC_BOOTSTRAP lets the
# stable toolchain do it): rustup ships no armv7 musl std that works here,
# and a std built with our profile and without unwind tables is smaller.
# For armv7 zig's own crt is used (link-self-contained=no, or the link
# fails on crt1.o).
#
# No unwind tables (-C force-unwind-tables=no): with panic=abort nothing
# unwinds, and .eh_frame was 1 MB of the aarch64 binary (issue 20: 7.2 MB
# with them, 6.0 MB without, std included). A panic still prints its
# message and location; RUST_BACKTRACE gets no frames.
#
# Then checks each binary: `file` must say "statically linked", and under
# qemu-user it must print --version and validate a small config.
#
# Usage: scripts/cross.sh [aarch64|armv7]...   (default: both)
# Env:   CARGO_TARGET_DIR (default target/cross, away from the debug build's lock)
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cross}"
DIST="$CARGO_TARGET_DIR/dist"
ARCHES="${*:-aarch64 armv7}"

need_tools() {
    if command -v rustup >/dev/null 2>&1; then
        rustup target list --installed | grep -qx aarch64-unknown-linux-musl ||
            rustup target add aarch64-unknown-linux-musl
        rustup component list --installed | grep -q '^rust-src' ||
            rustup component add rust-src
    fi
    if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! python3 -m ziglang version >/dev/null 2>&1; then
        echo "cross: installing ziglang and cargo-zigbuild with pip"
        python3 -m pip install -q ziglang cargo-zigbuild ||
            python3 -m pip install -q --break-system-packages ziglang cargo-zigbuild
    fi
}

build() {
    case "$1" in
    aarch64)
        triple=aarch64-unknown-linux-musl
        RUSTFLAGS="-C force-unwind-tables=no" RUSTC_BOOTSTRAP=1 \
            cargo zigbuild --release -Zbuild-std=std,panic_abort --target "$triple"
        ;;
    armv7)
        triple=armv7-unknown-linux-musleabihf
        RUSTFLAGS="-C link-self-contained=no -C force-unwind-tables=no" RUSTC_BOOTSTRAP=1 \
            cargo zigbuild --release -Zbuild-std=std,panic_abort --target "$triple"
        ;;
    *) echo "cross: unknown arch $1 (aarch64 or armv7)" >&2; exit 2 ;;
    esac
    mkdir -p "$DIST"
    cp "$CARGO_TARGET_DIR/$triple/release/streampulse" "$DIST/streampulse-$1"
}

check() {
    bin="$DIST/streampulse-$1"
    case "$1" in
    aarch64) qemu=qemu-aarch64-static; want="ARM aarch64" ;;
    armv7) qemu=qemu-arm-static; want="ARM, EABI5" ;;
    esac
    info=$(file -b "$bin")
    echo "cross: $bin: $info"
    case "$info" in *"$want"*) ;; *) echo "cross: $bin is not $want" >&2; exit 1 ;; esac
    case "$info" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "cross: $bin is not static" >&2; exit 1 ;;
    esac
    echo "cross: $(wc -c <"$bin") bytes"
    if command -v "$qemu" >/dev/null 2>&1; then
        "$qemu" "$bin" --version
        tmp=$(mktemp -d)
        printf 'heartbeat_seconds: 20\nstreams:\n- name: Front door\n  url: rtsp://admin:pw@192.0.2.1/stream1\n' >"$tmp/good.yaml"
        printf 'streams:\n- name: x\n  url: rtsp://192.0.2.1/\n  interval: 1\n' >"$tmp/bad.yaml"
        "$qemu" "$bin" check-config "$tmp/good.yaml"
        if "$qemu" "$bin" check-config "$tmp/bad.yaml" 2>"$tmp/err"; then
            echo "cross: check-config accepted a bad config under $qemu" >&2; exit 1
        fi
        grep -q 'bad.yaml:[0-9]' "$tmp/err" || { echo "cross: error lacks the line:" >&2; cat "$tmp/err" >&2; exit 1; }
        rm -rf "$tmp"
    else
        echo "cross: $qemu not installed (apt-get install qemu-user-static); not run" >&2
    fi
}

need_tools
for a in $ARCHES; do build "$a"; done
for a in $ARCHES; do check "$a"; done
