#!/usr/bin/env bash
# The topics benchmark (issue #7): one message to 10,000 subscribers on one node (topics
# against a plain per-connection send loop), and latency across two nodes through Redis.
#
#   scripts/bench-pubsub.sh            # about 1 minute
#   scripts/bench-pubsub.sh --quick    # 2,000 subscribers, short: seconds
#
# Builds the demo and bench/ in release mode, runs bench/target/release/pubsub (on core 1;
# it pins the servers and Redis to core 0), and puts its section at the end of
# BENCHMARKS.md and bench/BENCHMARKS.md, replacing an earlier one. Any option is passed to
# pubsub (--subs N, --rounds R, --reps K, --msgs M, --quick). Needs redis-server
# (scripts/install-redis.sh) and taskset.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lariat_target="${CARGO_TARGET_DIR:-$root/target}"
bench_target="$root/bench/target"

bash "$root/scripts/install-redis.sh" >/dev/null
cargo build --release --manifest-path "$root/Cargo.toml" --bin lariat-demo
CARGO_TARGET_DIR="$bench_target" cargo build --release --manifest-path "$root/bench/Cargo.toml" --bin pubsub

section="$(mktemp)"
trap 'rm -f "$section"' EXIT
taskset -c 1 "$bench_target/release/pubsub" --lariat "$lariat_target/release/lariat-demo" --out "$section" "$@"

heading='## Topics: fan-out and across nodes (issue #7)'
for md in "$root/bench/BENCHMARKS.md" "$root/BENCHMARKS.md"; do
    [ -f "$md" ] || touch "$md"
    # Everything before an earlier section, then the new one.
    awk -v h="$heading" '$0 == h { exit } { print }' "$md" > "$md.new"
    cat "$section" >> "$md.new"
    mv "$md.new" "$md"
done
echo "bench-pubsub.sh: updated $root/BENCHMARKS.md and bench/BENCHMARKS.md" >&2
