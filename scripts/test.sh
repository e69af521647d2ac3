#!/usr/bin/env bash
# Runs every test of fleetwire: format and lint gates, Rust (unit, integration, doc) with the
# server's store on SQLite and on PostgreSQL, Python (pytest against the pyo3 bindings), Kotlin
# (uniffi bindings on the JVM) and a short fuzz smoke of every fuzz target. Installs what a fresh
# machine lacks (idempotent); starts a throwaway PostgreSQL and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tools the tests need"
# strace: the sensor durability test traces the server's fsyncs against its acks.
# pebble (+ pebble-challtestsrv): the local ACME server the certificate test orders from.
need=()
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v pebble >/dev/null 2>&1 || need+=(pebble)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y "${need[@]}" || { $SUDO apt-get update && $SUDO apt-get install -y "${need[@]}"; }
fi

step "a throwaway PostgreSQL"
eval "$(bash scripts/pg.sh start)"
trap 'bash scripts/pg.sh stop' EXIT
echo "FLEETWIRE_TEST_PG=$FLEETWIRE_TEST_PG"

step "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast --lib --bins --tests
fi
cargo test --workspace --locked --doc

step "the server's tests again, on PostgreSQL"
# The same end-to-end suite with each server storing into a fresh PostgreSQL database of its
# own (tests/common::write_config); tests that only make sense on one backend say so.
if command -v cargo-nextest >/dev/null 2>&1; then
  FLEETWIRE_TEST_STORE=postgres cargo nextest run -p fleetwire-server --locked --no-fail-fast
else
  FLEETWIRE_TEST_STORE=postgres cargo test -p fleetwire-server --locked --no-fail-fast --tests
fi

step "Python tests"
bash scripts/test-python.sh

step "Kotlin tests"
bash scripts/test-kotlin.sh

step "fuzz smoke"
bash scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-4}"
