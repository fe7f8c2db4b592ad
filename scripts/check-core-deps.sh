#!/usr/bin/env bash
# Check that the protocol core stays sans-I/O: lariat-proto's normal (non-dev,
# non-build) dependency tree must hold no async runtime or I/O reactor.
#
# Usage: scripts/check-core-deps.sh
# Prints the core's dependency tree, then `check-core-deps: ok` and exits 0, or
# names each forbidden crate found (with the path that pulls it in) and exits 1.
# Exit 2 when `cargo tree` itself fails. (CHECK_CORE_CRATE=lariat shows a failure.)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
cd "$REPO"

CORE=${CHECK_CORE_CRATE:-lariat-proto}  # overridable only to test this script
# Async runtimes, reactors and their I/O layers, as an extended regex matched
# against whole crate names: anything tokio (tokio, tokio-util, tokio-rustls...),
# mio, async-std and the smol family (async-*), other runtimes, and the
# futures executor/IO crates.
FORBIDDEN='^(.*tokio.*|mio|async-.*|smol|glommio|monoio|compio|io-uring|polling|futures|futures-(executor|io|util)|actix-rt|hyper)$'

err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! tree=$(cargo tree -p "$CORE" -e normal --prefix depth --color never 2>"$err"); then
    cat "$err" >&2
    echo "check-core-deps: cargo tree failed" >&2
    exit 2
fi

echo "check-core-deps: normal dependencies of $CORE:"
cargo tree -p "$CORE" -e normal --color never
echo

# `--prefix depth` lines look like `2sha1 v0.10.6`: strip the depth, keep the name.
names=$(printf '%s\n' "$tree" | sed -E 's/^[0-9]+//' | awk '{print $1}' | sort -u)
echo "check-core-deps: crates: $(printf '%s\n' "$names" | grep -vx "$CORE" | tr '\n' ' ')"

bad=$(printf '%s\n' "$names" | grep -E -- "$FORBIDDEN" || true)
if [ -n "$bad" ]; then
    for crate in $bad; do
        echo "check-core-deps: FORBIDDEN: $CORE depends on '$crate':" >&2
        cargo tree -p "$CORE" -e normal --color never -i "$crate" >&2 || true
    done
    echo "check-core-deps: the protocol core must not depend on an async runtime or I/O reactor" >&2
    exit 1
fi
echo "check-core-deps: ok (no async runtime in $CORE)"
