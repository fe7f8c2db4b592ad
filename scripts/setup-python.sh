#!/usr/bin/env bash
# A Python 3 virtualenv with the independent WebSocket client the interop
# tests use (Python `websockets`, which compresses by default). Idempotent.
# Prints the interpreter's path on its last line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${LARIAT_PY_VENV:-target/py-venv}"
pin="websockets==17.4"
if ! "$venv/bin/python" -c "import websockets, sys; sys.exit(websockets.version.version != '${pin#*==}')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
fi
echo "$(cd "$venv" && pwd)/bin/python"
