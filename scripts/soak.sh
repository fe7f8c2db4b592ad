#!/usr/bin/env bash
# Soak test: the demo server, run as a child process, under a bounded mix of
# good and hostile clients for SOAK_SECONDS, its memory and descriptors sampled
# every 10 s. It is tests/soak.rs, an #[ignore]d test of the root package; this
# runs it in release mode with its report on stdout:
#
#   cargo test --release --test soak -- --ignored --nocapture
#
# Usage: scripts/soak.sh
#
# Environment:
#   SOAK_SECONDS  seconds of client traffic (default 600); the clients then end
#                 their iteration, which takes up to ~20 s more
#   SOAK_SEED     replay the random choices of an earlier run (each run prints
#                 its seed)
#
# The mix (all on 127.0.0.1): 50 tokio-tungstenite clients echoing random text
# and binary messages up to 64 KiB on /echo, checked byte for byte, and 5 on
# /seed/hibernate; malformed frames after a real upgrade (each must get its
# close code: 1002, 1007 or 1009); random bytes and random frame headers;
# abrupt disconnects; slow readers; garbage HTTP, oversized heads, bad
# handshakes, slowloris; handler crashes (1011) and idle timeouts (1000).
# The server's log goes to target/tmp/soak-demo-<port>.log.
#
# It fails unless: no good client got a wrong echo; the clients saw no error,
# hang or unexpected answer; the server is alive and still serving at the
# end; its open descriptors come back to their idle count once the clients
# stop; its RSS at the end is at most 1.5 x its RSS after the 30 s warm-up
# + 16 MiB; and it exits cleanly on SIGTERM. The child is killed by its PID
# when the test ends, even on a panic. RELIABILITY.md records a full run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SOAK_SECONDS="${SOAK_SECONDS:-600}"
exec cargo test --release --test soak -- --ignored --nocapture
