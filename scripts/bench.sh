#!/usr/bin/env bash
# The side-by-side benchmark: lariat's demo server against tokio-tungstenite,
# fastwebsockets, axum's ws and actix-ws (bench/README.md tells how it works).
#
#   scripts/bench.sh            # full run, about 10-15 minutes
#   scripts/bench.sh --quick    # every scenario, short windows: under 3 minutes
#
# Last it runs scripts/bench-pubsub.sh (the topics benchmark; skipped when --scenarios
# names others but not `pubsub`), which appends its section to BENCHMARKS.md.
#
# Builds everything in release mode, then runs the suite, which writes bench/BENCHMARKS.md (copied
# to BENCHMARKS.md at the root),
# bench/cpu-per-message.svg and bench/results.json. Any other option is passed to the suite
# (--reps N, --sched fifo|nice|normal, --servers k1,k2, --scenarios k1,k2).
# Needs: cargo, taskset and chrt (util-linux), two cores; root (or CAP_SYS_NICE) for the
# default SCHED_FIFO scheduling, else the suite falls back to normal scheduling.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lariat_target="${CARGO_TARGET_DIR:-$root/target}"
# bench/ is its own workspace with its own target dir, whatever CARGO_TARGET_DIR says.
bench_target="$root/bench/target"

for tool in cargo taskset chrt; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found" >&2; exit 1; }
done

echo "bench.sh: building lariat's demo server (release)" >&2
cargo build --release --manifest-path "$root/Cargo.toml" --bin lariat-demo
echo "bench.sh: building the load generator and the peers' servers (release)" >&2
CARGO_TARGET_DIR="$bench_target" cargo build --release --manifest-path "$root/bench/Cargo.toml" --workspace

"$bench_target/release/suite" \
    --lariat "$lariat_target/release/lariat-demo" \
    --bin-dir "$bench_target/release" \
    --out "$root/bench/BENCHMARKS.md" \
    "$@"

# The repository's BENCHMARKS.md is the same report, its chart path made relative to the root.
{
    echo '<!-- Written by scripts/bench.sh (as bench/BENCHMARKS.md); copied here with the chart path adjusted. -->'
    sed 's|](cpu-per-message.svg)|](bench/cpu-per-message.svg)|' "$root/bench/BENCHMARKS.md"
} > "$root/BENCHMARKS.md"
echo "bench.sh: wrote $root/BENCHMARKS.md" >&2

# Then the topics benchmark (its own section at the end), unless --scenarios picked others.
run_pubsub=1
quick=()
prev=""
for a in "$@"; do
    [ "$a" = --quick ] && quick=(--quick)
    if [ "$prev" = --scenarios ] && [[ ",$a," != *,pubsub,* ]]; then run_pubsub=0; fi
    prev="$a"
done
if [ "$run_pubsub" = 1 ]; then
    bash "$root/scripts/bench-pubsub.sh" "${quick[@]}"
fi
