#!/usr/bin/env bash
# Fuzz smoke test: run every cargo-fuzz target of fuzz/ for a short, bounded time.
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]        (default: every target of fuzz/)
#
# Environment:
#   FUZZ_SECONDS     seconds of fuzzing per target (default 20)
#   FUZZ_SANITIZER   cargo fuzz sanitizer: address (default) or none. The
#                    toolchain is stable, so the nightly-only flags cargo fuzz
#                    passes (-Zsanitizer, -Cpasses=sancov) are unlocked with
#                    RUSTC_BOOTSTRAP=1; AddressSanitizer works that way on 1.95.
#   FUZZ_JOBS        targets fuzzed at once (default 1; the machines have 2 cores)
#   FUZZ_BUILD_TIMEOUT  seconds allowed for building the targets (default 1200)
#
# Each target starts from fuzz/seeds/TARGET (tracked) and fuzz/corpus/TARGET
# (kept between runs, not tracked) and uses fuzz/dict/TARGET.dict when present.
# A crash, a failed invariant (panic), a timeout or an out-of-memory leaves its
# input in fuzz/artifacts/TARGET/ and makes the script exit 1, printing the
# input, the reproduction command and the log's tail. Every target still runs.
# cargo-fuzz is installed with `cargo install cargo-fuzz` when missing.
# The whole run is bounded: build + targets x (FUZZ_SECONDS + 120 s) at most.
# The last line is `fuzz-smoke: N passed, M failed`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
FUZZ_DIR="$REPO/fuzz"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
SANITIZER=${FUZZ_SANITIZER:-address}
JOBS=${FUZZ_JOBS:-1}
BUILD_TIMEOUT=${FUZZ_BUILD_TIMEOUT:-1200}

case "$SECONDS_PER_TARGET" in
    '' | *[!0-9]*) echo "fuzz-smoke: FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2 ;;
esac
case "$JOBS" in
    '' | *[!0-9]* | 0) echo "fuzz-smoke: FUZZ_JOBS must be a positive number" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

cd "$FUZZ_DIR"
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi
if [ "${#TARGETS[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 2
fi

echo "fuzz-smoke: building ${TARGETS[*]} (sanitizer: $SANITIZER)"
if ! timeout "$BUILD_TIMEOUT" cargo fuzz build -s "$SANITIZER"; then
    echo "fuzz-smoke: build failed or took over ${BUILD_TIMEOUT}s" >&2
    exit 1
fi

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")

run_target() {
    local t=$1 log="$LOG_DIR/$1.log"
    local args=(-max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [ -f "dict/$t.dict" ]; then
        args+=(-dict="dict/$t.dict")
    fi
    mkdir -p "corpus/$t" "artifacts/$t"
    local dirs=("corpus/$t")
    if [ -d "seeds/$t" ]; then
        dirs+=("seeds/$t")
    fi
    # libFuzzer stops itself at -max_total_time; the outer timeout is a backstop.
    local rc=0
    timeout -k 10 $((SECONDS_PER_TARGET + 120)) \
        cargo fuzz run -s "$SANITIZER" "$t" "${dirs[@]}" -- "${args[@]}" >"$log" 2>&1 || rc=$?
    echo "$rc" >"$LOG_DIR/$t.rc"
}

# Run the targets, at most $JOBS at once.
running=0
for t in "${TARGETS[@]}"; do
    echo "fuzz-smoke: $t for ${SECONDS_PER_TARGET}s"
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

passed=0
failed=0
for t in "${TARGETS[@]}"; do
    log="$LOG_DIR/$t.log"
    rc=$(cat "$LOG_DIR/$t.rc" 2>/dev/null || echo 1)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "fuzz-smoke: $t ok: ${runs:-?} execs in ${SECONDS_PER_TARGET}s"
    else
        failed=$((failed + 1))
        echo "fuzz-smoke: $t FAILED (exit $rc)" >&2
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //' || true)
        if [ -n "$artifact" ]; then
            echo "fuzz-smoke: input: $artifact" >&2
            echo "fuzz-smoke: reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SANITIZER $t $artifact  (in fuzz/)" >&2
            echo "fuzz-smoke: minimize:  RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s $SANITIZER $t $artifact  (in fuzz/)" >&2
            if command -v xxd >/dev/null 2>&1 && [ -f "$artifact" ]; then
                head -c 512 "$artifact" | xxd >&2
            fi
        fi
        echo "---- $t: the failure ----" >&2
        grep -E -A3 'panicked at|^==[0-9]+==ERROR|^SUMMARY:|ERROR: libFuzzer' "$log" | head -n 40 >&2 || true
        echo "---- $t: last lines of the log ----" >&2
        grep -v '^#[0-9]' "$log" | tail -n 60 >&2 || true
        echo "----" >&2
    fi
done
rm -rf "$LOG_DIR"
echo "fuzz-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
