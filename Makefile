# omnisaga: `make run` starts everything, `make test` runs every test.
# Cargo's intermediate artefacts live outside the clone, shared by every clone
# and CI run on the machine so rebuilds reuse them; each clone's binaries go
# to its own target/, so two clones never run each other's builds.
export CARGO_BUILD_BUILD_DIR ?= $(HOME)/.cache/omnisaga/target
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export OMNISAGA_ROOT := $(CURDIR)
SHELL := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help deps build run test bench bench-quick bench-scaling chaos soak fuzz lint fmt openapi config-docs clean-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install what the build and the stack need (Debian packages, PostgreSQL, Apache Kafka), once
	@bash infra/scripts/install-deps.sh >/dev/null
	@bash infra/scripts/ensure-postgres.sh
	@bash infra/scripts/claim-build-dir.sh

# What `make run` starts: the five services, the CLI that provisions the
# broker, the trace viewer and the launcher (not the benchmark or the fault
# suite). Built with the same features as the tests, so `make test` after
# `make run` rebuilds nothing of it.
RUN_PACKAGES := -p omnisaga-order -p omnisaga-payment -p omnisaga-warehouse -p omnisaga-notification \
	-p omnisaga-analytics -p omnisaga-cli -p omnisaga-trace-viewer -p omnisaga-stack

build: deps ## build every service and tool (with failpoints, inert unless FAILPOINTS is set; release builds have none)
	cargo build --workspace --bins --features omnisaga-runtime/failpoints

run: deps ## build what the system runs and start it in the foreground (Ctrl-C stops it)
	cargo build --bins $(RUN_PACKAGES) --features omnisaga-runtime/failpoints
	@OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/debug" "$(CARGO_TARGET_DIR)/debug/omnisaga-stack"

test: build ## unit, service and end-to-end tests against a real broker and PostgreSQL
	@OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/debug" bash infra/scripts/test.sh

bench: deps ## limits, maximum order rate and runs at 25/50/80/100% of it (release build; BENCH_ARGS=--duration 300 ...)
	cargo build --release --workspace --bins
	OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/release" "$(CARGO_TARGET_DIR)/release/omnisaga-bench" $(BENCH_ARGS)

bench-quick: deps ## the same table in about a minute, numbers not judged
	cargo build --release --workspace --bins
	OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/release" "$(CARGO_TARGET_DIR)/release/omnisaga-bench" --quick $(BENCH_ARGS)

bench-scaling: deps ## throughput and saga latency with 1, 2 and 3 instances of every service, side by side (BENCH_ARGS=--quick ...)
	cargo build --release --workspace --bins
	OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/release" "$(CARGO_TARGET_DIR)/release/omnisaga-bench" --instances 1,2,3 $(BENCH_ARGS)

chaos: build ## the fault suite: every fault a test of its own under load (load, fault, quiet, every invariant checked) (CHAOS_ARGS=--faults kill-each,broker ...)
	@OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/debug" "$(CARGO_TARGET_DIR)/debug/omnisaga-chaos" --each $(CHAOS_ARGS)

soak: build ## every fault, around and around for SOAK_MINUTES (10), under load; then every invariant checked
	@OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/debug" "$(CARGO_TARGET_DIR)/debug/omnisaga-chaos" --minutes $${SOAK_MINUTES:-10} --gap 10 --out "$(CURDIR)/target/chaos/soak.json" $(CHAOS_ARGS)

FUZZ_SECONDS ?= 30
fuzz: deps ## coverage-guided fuzzing of the envelope decoder, traceparent and the order body for FUZZ_SECONDS (30) each; failing inputs kept in target/fuzz/artifacts
	@FUZZ_SECONDS="$(FUZZ_SECONDS)" bash infra/scripts/fuzz.sh

openapi: ## write schemas/openapi/<service>.json from the code (each service's test fails while file and code differ)
	OMNISAGA_WRITE_OPENAPI=1 cargo test -q --lib -p omnisaga-order -p omnisaga-payment -p omnisaga-warehouse -p omnisaga-notification -p omnisaga-analytics the_checked_in_openapi_document

config-docs: ## write docs/configuration.md's tables from the settings' definitions (the runtime's and each service's test fails while file and code differ)
	OMNISAGA_WRITE_CONFIG=1 cargo test -q --lib -p omnisaga-runtime -p omnisaga-order -p omnisaga-payment -p omnisaga-warehouse -p omnisaga-notification -p omnisaga-analytics the_checked_in_configuration_reference

lint: ## rustfmt, clippy (warnings are errors), cargo-machete (no unused dependencies), cargo-deny (deny.toml), and a new event type failing to compile until handled
	@bash infra/scripts/claim-build-dir.sh
	cargo fmt --all --check
	rustfmt --check --edition 2021 tools/fuzz/fuzz_targets/*.rs
	cargo clippy --workspace --all-targets -- -D warnings
	@command -v cargo-machete >/dev/null || cargo install cargo-machete --locked --version 0.9.2
	cargo machete
	@command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --version 0.20.2
	cargo deny check --hide-inclusion-graph licenses bans sources
	@bash infra/scripts/check-advisories.sh
	@bash infra/scripts/check-new-event.sh

fmt: ## format the code
	cargo fmt --all

clean-data: build ## forget the local run's data: the broker's log, the logs and its databases, together (stop the stack first)
	@OMNISAGA_BIN_DIR="$(CARGO_TARGET_DIR)/debug" "$(CARGO_TARGET_DIR)/debug/omnisaga-stack" clean
