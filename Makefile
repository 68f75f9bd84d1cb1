# StreamPulse: the two commands a new machine needs are `make run` and `make test`.
CARGO ?= cargo
CONFIG ?= config.yaml
DATA_DIR ?= data

.PHONY: deps build release run test lint fmt check-config clean bench bench-availability soak

deps:
	./scripts/install-deps.sh

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Runs the appliance on this host with the repo's config.yaml and ./data,
# after starting the loopback demo cameras that config.yaml points at.
run: deps release
	./scripts/run-demo.sh ./target/release/streampulse $(CONFIG) $(DATA_DIR)

# Every test: formatting, lints, no import cycle between top-level modules,
# unit tests and the integration tests against real servers started on
# loopback (installed by `deps`).
test: deps
	$(CARGO) fmt --check
	python3 scripts/module-graph.py
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

check-config: build
	./target/debug/streampulse check-config $(CONFIG)

clean:
	$(CARGO) clean

# Memory, CPU, flash writes and API latency at 10/100/1000 streams (a few
# minutes per size; root: it runs in its own network namespace). With
# PEER=path/to/streampulse-v2.2-checkout it also runs the Python original on
# the same streams and prints the ratios. BENCH_ARGS passes options to
# bench/run.py (e.g. BENCH_ARGS="--sizes 100 --interval 5"). BENCH_LIBC=musl
# measures the static x86_64 musl build instead (the appliance's libc; built
# with cargo-zigbuild as scripts/cross.sh does). Not part of `test`.
BENCH_LIBC ?= glibc
BENCH_MUSL = x86_64-unknown-linux-musl
bench: deps
ifeq ($(BENCH_LIBC),musl)
	rustup target list --installed | grep -qx $(BENCH_MUSL) || rustup target add $(BENCH_MUSL)
	command -v cargo-zigbuild >/dev/null || python3 -m pip install -q ziglang cargo-zigbuild || \
		python3 -m pip install -q --break-system-packages ziglang cargo-zigbuild
	CARGO_TARGET_DIR=target/bench cargo zigbuild --release --target $(BENCH_MUSL)
	target/bench/$(BENCH_MUSL)/release/streampulse bench-availability
	python3 bench/run.py --binary target/bench/$(BENCH_MUSL)/release/streampulse $(if $(PEER),--peer $(PEER)) $(BENCH_ARGS)
else
	CARGO_TARGET_DIR=target/bench $(CARGO) build --release
	target/bench/release/streampulse bench-availability
	python3 bench/run.py $(if $(PEER),--peer $(PEER)) $(BENCH_ARGS)
endif

# The availability figures alone (no root, a few seconds): 1000 streams ×
# 30 days of hourly rollups in a scratch database in the temp dir; prints
# the time for every stream's 24 h / 7 d / 30 d figures, and for one
# stream's 30 days. Also the first step of `bench`.
bench-availability:
	CARGO_TARGET_DIR=target/bench $(CARGO) build --release
	target/bench/release/streampulse bench-availability

# Memory over a long run: SOAK_STREAMS (1000) streams every 5 s for
# SOAK_MINUTES (60); VmRSS sampled after a warm-up, curve in
# bench/results/soak-*.json/.svg, fails if RSS grows by more than 1 MB.
# Root (own network namespace). Not part of `test`.
SOAK_MINUTES ?= 60
SOAK_STREAMS ?= 1000
soak: deps
	CARGO_TARGET_DIR=target/bench $(CARGO) build --release
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_STREAMS=$(SOAK_STREAMS) python3 bench/soak.py $(SOAK_ARGS)

# Box camera: glass-to-glass latency in Chromium and CPU per viewer, beside
# pistreaming's pipeline (MPEG-1 -> websocket -> jsmpg.js), issue 21
# (bench/live_latency.py, docs/PERFORMANCE.md "Box camera"); about 6 minutes, results in
# bench/results/live-latency-*.json/.md. Needs only loopback. Installs, for
# this target only: jsmpeg (npm, pinned in bench/live/package-lock.json) and
# ws4py (PyPI) in a venv in target/bench-live-venv. BENCH_LIVE_ARGS passes
# options (e.g. "--seconds 10 --window 10"). Not part of `test`.
BENCH_LIVE_VENV ?= target/bench-live-venv
.PHONY: bench-live
bench-live: deps release
	@test -d bench/live/node_modules/jsmpeg || (cd bench/live && npm ci --no-audit --no-fund --loglevel=error)
	@$(BENCH_LIVE_VENV)/bin/python -c 'import ws4py' 2>/dev/null || { \
		/usr/bin/python3 -m venv $(BENCH_LIVE_VENV) && \
		$(BENCH_LIVE_VENV)/bin/pip install -q --disable-pip-version-check 'ws4py==0.5.1'; }
	$(BENCH_LIVE_VENV)/bin/python bench/live_latency.py $(BENCH_LIVE_ARGS)

# Known advisories in Cargo.lock (cargo-audit, installed from crates.io into
# target/tools). It fetches the RustSec database from GitHub; offline, point
# AUDIT_DB at a clone of github.com/rustsec/advisory-db. Not part of `test`
# (CI has no GitHub); the last result is in docs/HARDENING.md.
.PHONY: audit
audit:
	@test -x target/tools/bin/cargo-audit || $(CARGO) install cargo-audit --locked --root target/tools
	target/tools/bin/cargo-audit audit $(if $(AUDIT_DB),--db $(AUDIT_DB) --no-fetch --stale)

# The Home Assistant discovery payloads of a running daemon, validated with
# Home Assistant Core's own MQTT schemas and template engine
# (scripts/check-ha-discovery.py). Home Assistant 2024.3.3 is the newest that
# installs on Python 3.11; it goes into a venv in target/ha-venv (~400 MB,
# once; it needs josepy<2 beside it). Not part of `test`: heavy, and it needs
# the package index.
# `make ha-core-check` runs a real Home Assistant Core against Mosquitto and
# the daemon (a restart with a camera down, a rename, a removal, a disabled
# stream; HA's states through its mqtt_statestream, its log searched for MQTT
# warnings); about a minute.
HA_VENV ?= target/ha-venv
HA_REQS = 'homeassistant==2024.3.3' 'josepy<2' 'paho-mqtt==1.6.1' 'aiohttp_cors==0.7.0' \
	'aiohttp-fast-url-dispatcher==0.3.0' 'aiohttp-zlib-ng==0.3.1' 'janus==1.0.0'
.PHONY: ha-check ha-core-check ha-venv
ha-venv:
	@test -x $(HA_VENV)/bin/hass -a -d $(HA_VENV)/lib/python3.11/site-packages/paho || { \
		python3 -m venv $(HA_VENV) && $(HA_VENV)/bin/pip install -q $(HA_REQS); }
ha-check: deps build ha-venv
	$(HA_VENV)/bin/python scripts/check-ha-discovery.py target/debug/streampulse
ha-core-check: deps build ha-venv
	$(HA_VENV)/bin/python scripts/check-ha-discovery.py --core target/debug/streampulse

# --- The appliance (docs/APPLIANCE.md) ----------------------------------------
BOARD ?= rpi4_64
BUILDROOT_VERSION ?= 2026.05.1

.PHONY: cross qemu-test image bundle check-defconfigs

# Static musl binaries for aarch64 and armv7 in target/cross/dist, checked with
# `file` (static) and under qemu-user (--version, check-config).
cross: deps
	./scripts/cross.sh

# Boots the appliance's SD-card layout under qemu-system-aarch64 (TCG) with
# real systemd: Debian's arm64 kernel and userland (mmdebstrap, cached in
# target/qemu-kit) + our binary + overlay/, four boots. SKIP_CROSS=1 reuses the
# aarch64 binary from the last `make cross`.
qemu-test: deps
	./scripts/qemu-boot-test.sh

# The SD-card image for BOARD (rpi3_64 rpi4_64 rpi5 rpizero2w_64 orangepi_pc
# orangepi_zero3) with Buildroot $(BUILDROOT_VERSION). Needs the internet.
# The image trusts update bundles signed under STREAMPULSE_RAUC_KEYRING
# (default: ca.cert.pem in STREAMPULSE_RAUC_KEYS, target/rauc-keys), made
# once with scripts/rauc-keys.sh. docs/UPDATES.md.
image:
	./buildroot/build-image.sh $(BOARD) $(BUILDROOT_VERSION)

# A signed RAUC update bundle of BOARD's root filesystem (after `make image
# BOARD=...`), next to the image: target/image-<board>/images/update.raucb.
# Its compatible is the one the image's /etc/rauc/system.conf carries
# (streampulse-<board>, from board/common/post-build.sh), so a box only takes
# bundles built for its board; Pi 4/5 bundles also carry the slot's boot
# partition (boot-a.vfat). Signed with Buildroot's host rauc. Keys:
# STREAMPULSE_RAUC_KEYS (default target/rauc-keys); VERSION defaults to the
# crate's. docs/UPDATES.md.
BUNDLE_OUT = target/image-$(BOARD)
bundle:
	@test -n "$(BOARD)" || { echo "usage: make bundle BOARD=<board> [VERSION=...]"; exit 2; }
	@test -f $(BUNDLE_OUT)/target/etc/rauc/system.conf || { echo "make bundle: no $(BUNDLE_OUT)/target/etc/rauc/system.conf: run make image BOARD=$(BOARD) first"; exit 2; }
	STREAMPULSE_RAUC_COMPATIBLE="$$(sed -n 's/^compatible=//p' $(BUNDLE_OUT)/target/etc/rauc/system.conf)" \
	PATH="$(CURDIR)/$(BUNDLE_OUT)/host/bin:$(CURDIR)/$(BUNDLE_OUT)/host/sbin:$$PATH" \
	./scripts/make-bundle.sh $(BUNDLE_OUT)/images/rootfs.ext4 \
		"$${VERSION:-$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)}" \
		$(BUNDLE_OUT)/images/update.raucb \
		$$(grep -q '^\[slot\.boot\.' $(BUNDLE_OUT)/target/etc/rauc/system.conf && echo $(BUNDLE_OUT)/images/boot-a.vfat)

# Buildroot's kconfig on every defconfig; fails on any symbol it dropped.
check-defconfigs:
	@test -n "$(BUILDROOT)" || { echo "usage: make check-defconfigs BUILDROOT=/path/to/buildroot"; exit 2; }
	./buildroot/check-defconfigs.sh $(BUILDROOT)
