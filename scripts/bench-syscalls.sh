#!/usr/bin/env bash
# System calls per echoed message, per server: where the kernel's share of the CPU per
# message goes (the floor and BENCHMARKS.md's "floor" section explain why it matters).
#
#   scripts/bench-syscalls.sh                 # the three echo scenarios, 3 rounds, a few minutes
#   scripts/bench-syscalls.sh --reps 5 --secs 5
#
# Each server runs as in the suite (server on core 0, load on core 1, SCHED_FIFO 10 when
# allowed, servers interleaved round by round); `perf stat` counts the server's read,
# write and epoll_wait calls over the load generator's whole run (no warm-up; setup included: 100 or
# 10 upgrades against hundreds of thousands of messages) with kernel tracepoints, which
# cost little next to the calls themselves. Prints a Markdown table of medians.
# Needs: perf (linux-perf) with tracepoints readable (root, or perf_event_paranoid <= -1),
# and the binaries built by scripts/bench.sh (run it once first, or pass --build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reps=3
secs=3
build=0
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --secs) secs="$2"; shift 2 ;;
        --build) build=1; shift ;;
        *) echo "bench-syscalls.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

command -v perf >/dev/null || { echo "bench-syscalls.sh: perf not found (Debian: linux-perf)" >&2; exit 1; }
if ! perf stat -e syscalls:sys_enter_read -x, -o /dev/null true 2>/dev/null; then
    echo "bench-syscalls.sh: perf cannot read syscall tracepoints here" >&2
    exit 1
fi
if [ "$build" = 1 ]; then
    cargo build --release --manifest-path "$root/Cargo.toml" --bin lariat-demo
    CARGO_TARGET_DIR="$root/bench/target" cargo build --release --manifest-path "$root/bench/Cargo.toml" --workspace
fi
bin="$root/bench/target/release"
lariat="${CARGO_TARGET_DIR:-$root/target}/release/lariat-demo"
for b in "$lariat" "$bin/loadgen" "$bin/floor" "$bin/bench-fastwebsockets"; do
    [ -x "$b" ] || { echo "bench-syscalls.sh: $b missing: run scripts/bench.sh or pass --build" >&2; exit 1; }
done

chrt=(chrt -f 10)
"${chrt[@]}" true 2>/dev/null || chrt=()

servers=(lariat fastwebsockets actix-ws tokio-tungstenite floor)
server_cmd() {
    case "$1" in
        lariat) echo "$lariat --threads 1" ;;
        floor) echo "$bin/floor" ;;
        *) echo "$bin/bench-$1" ;;
    esac
}
scenarios=(
    "echo 32 B text, W=1, 100 conns|--conns 100 --size 32 --window 1"
    "echo 32 B text, W=16, 100 conns|--conns 100 --size 32 --window 16"
    "echo 64 KiB binary, W=4, 10 conns|--conns 10 --size 65536 --window 4 --binary"
)
events=syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_wait
work="$(mktemp -d)"
server_pid=
perf_pid=
cleanup() {
    [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=22000
for s in "${!scenarios[@]}"; do
    args="${scenarios[$s]#*|}"
    for r in $(seq "$reps"); do
        for name in "${servers[@]}"; do
            cmd=$(server_cmd "$name")
            [ -x "${cmd%% *}" ] || continue
            port=$((port + 1))
            # shellcheck disable=SC2086
            "${chrt[@]}" taskset -c 0 $cmd --addr "127.0.0.1:$port" >/dev/null 2>&1 &
            server_pid=$!
            for _ in $(seq 100); do
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
                sleep 0.05
            done
            perf stat -x, -e "$events" -p "$server_pid" -o "$work/perf.$s.$r.$name" &
            perf_pid=$!
            sleep 0.2
            # shellcheck disable=SC2086
            "${chrt[@]}" taskset -c 1 "$bin/loadgen" echo --addr "127.0.0.1:$port" --path /echo \
                --server-pid "$server_pid" --secs "$secs" --warmup 0 $args | tail -1 >"$work/load.$s.$r.$name"
            kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
            perf_pid=
            kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
            server_pid=
        done
    done
done

python3 - "$work" "$reps" "${servers[*]}" "${scenarios[@]}" <<'PY'
import json, os, statistics, sys
work, reps, servers, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
kinds = {"read": "reads", "readv": "reads", "recvfrom": "reads",
         "write": "writes", "writev": "writes", "sendto": "writes", "epoll_wait": "epoll_wait"}
print("| scenario | server | CPU/msg (µs) | reads/msg | writes/msg | epoll_wait/msg |")
print("|---|---|---:|---:|---:|---:|")
for s, sc in enumerate(scenarios):
    title = sc.split("|")[0]
    for name in servers:
        rows = []
        for r in range(1, reps + 1):
            load, perf = f"{work}/load.{s}.{r}.{name}", f"{work}/perf.{s}.{r}.{name}"
            if not (os.path.exists(load) and os.path.exists(perf)):
                continue
            try:
                d = json.loads(open(load).read())
            except ValueError:
                continue
            msgs = d["msgs"]
            counts = {"reads": 0, "writes": 0, "epoll_wait": 0}
            for line in open(perf):
                f = line.strip().split(",")
                if len(f) > 2 and f[0].isdigit():
                    call = f[2].rsplit("sys_enter_", 1)[-1]
                    counts[kinds[call]] += int(f[0])
            rows.append((d["cpu_per_msg_us"], *(counts[k] / msgs for k in ("reads", "writes", "epoll_wait"))))
        if rows:
            med = [statistics.median(c) for c in zip(*rows)]
            print(f"| {title} | {name} | {med[0]:.2f} | {med[1]:.3f} | {med[2]:.3f} | {med[3]:.3f} |")
PY
