#!/usr/bin/env bash
# The long conformance run: Autobahn|Testsuite groups 12 and 13 (the 216
# permessage-deflate cases, RFC 7692) against the demo's /echo. About 20
# minutes, mostly in wstest itself; not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
exec bash scripts/autobahn.sh --url "ws://127.0.0.1:$port/echo" --cases '12.*,13.*' \
  --out target/autobahn-deflate --timeout 3600 \
  --server-cmd "RUST_LOG=warn exec target/release/lariat-demo --addr 127.0.0.1:$port" "$@"
