# StreamPulse: the two commands a new machine needs are `make run` and `make test`.
CARGO ?= cargo
CONFIG ?= config.yaml
DATA_DIR ?= data

.PHONY: deps build release run test lint fmt check-config clean

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

# Every test: formatting, lints, unit tests and the integration tests against
# real servers started on loopback (installed by `deps`).
test: deps
	$(CARGO) fmt --check
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
