#!/usr/bin/env bash
# lariat's whole test suite, from a fresh machine: installs what the tests need
# (Debian's chromium for the browser tests, Debian's redis-server for the
# cluster tests, Python `websockets` for the interop
# test, cargo-fuzz, the Python 2.7 Autobahn virtualenv), then runs, in order:
#   1. formatting, clippy and rustdoc with warnings as errors;
#   2. `cargo test --workspace` (unit, property, integration, browser, doc tests);
#   3. the check that the protocol core does not depend on tokio;
#   4. the Autobahn|Testsuite cases 1-11 against the demo's /echo;
#   5. a short fuzz smoke run of every fuzz target.
# Set LARIAT_SKIP_FUZZ=1 or LARIAT_SKIP_AUTOBAHN=1 to leave a step out locally.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-chromium.sh
bash scripts/install-redis.sh
LARIAT_PYTHON=$(bash scripts/setup-python.sh | tail -n 1)
export LARIAT_PYTHON

step "cargo fmt --check, clippy, rustdoc"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --quiet

step "cargo test --workspace"
cargo test --workspace

step "the protocol core does not depend on tokio"
bash scripts/check-core-deps.sh

if [[ "${LARIAT_SKIP_FUZZ:-0}" != 1 ]]; then
  step "fuzz smoke run"
  FUZZ_SECONDS="${FUZZ_SECONDS:-15}" bash scripts/fuzz-smoke.sh
fi

if [[ "${LARIAT_SKIP_AUTOBAHN:-0}" != 1 ]]; then
  step "Autobahn|Testsuite 1-11 against the demo's /echo"
  cargo build --release --quiet
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  bash scripts/autobahn.sh --url "ws://127.0.0.1:$port/echo" \
    --server-cmd "RUST_LOG=warn exec target/release/lariat-demo --addr 127.0.0.1:$port"
fi
