#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzing client (`wstest -m fuzzingclient`) against a
# WebSocket server on loopback and summarise the report.
#
# Usage: scripts/autobahn.sh [options]
#   --url URL            server to test (default ws://127.0.0.1:9001/echo); loopback only
#   --cases LIST         comma-separated case ids/globs (default 1.*,2.*,...,11.*)
#   --exclude LIST       comma-separated case ids/globs to skip (default none)
#   --out DIR            report directory (default $REPO/target/autobahn)
#   --agent NAME         agent name used in the report (default lariat)
#   --timeout SECS       limit for the wstest run (default 1800)
#   --server-cmd CMD     start CMD (via bash) in the background in its own process
#                        group, wait until the URL's port accepts TCP, stop it at exit
#   --server-wait SECS   how long to wait for --server-cmd's port (default 120)
#   --setup-only         only create/refresh the Python 2.7 virtualenv, then exit
#   -v, --verbose        stream wstest's output (it is always kept in $OUT/wstest.log)
#   -h, --help           this help
#
# Globs follow wstest's rules: '*' matches anything, '.' is literal and the
# pattern is anchored at the start only, so '1.*' is group 1 but '1*' would also
# match 10.*, 12.* and 13.*. Groups 12 and 13 (permessage-deflate) take ~20 min.
#
# Exit status: 0 when every selected case is OK or INFORMATIONAL (and no
# behaviorClose is FAILED); 1 when any case is NON-STRICT, UNIMPLEMENTED,
# FAILED, has a FAILED close, or is missing from the report (wstest crashed,
# timed out or could not connect); 2 on usage or setup errors.
# The last line printed after a run is `autobahn: N passed, M failed`.
#
# Environment:
#   LARIAT_AUTOBAHN_VENV  virtualenv location (default $REPO/target/autobahn-venv)
#   LARIAT_PYTHON27       Python 2.7 interpreter to build the virtualenv from
#                         (default: pyenv's 2.7.18, then python2.7 on PATH)
#   PYTHON3               Python 3 used for the bootstrap and the report (default python3)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

URL="ws://127.0.0.1:9001/echo"
CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*,11.*"
EXCLUDE=""
OUT="$REPO/target/autobahn"
AGENT="lariat"
TIMEOUT=1800
SERVER_CMD=""
SERVER_WAIT=120
SETUP_ONLY=0
VERBOSE=0

VENV="${LARIAT_AUTOBAHN_VENV:-$REPO/target/autobahn-venv}"
PYTHON3="${PYTHON3:-python3}"
PY27_VERSION="2.7.18"
VIRTUALENV_PIN="virtualenv==20.15.1"
SETUP_TIMEOUT=1200 # seconds for each networked setup step (pip)

log() { printf 'autobahn.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

need_arg() { [[ $# -ge 2 ]] || die "$1 needs an argument (see --help)"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --url) need_arg "$@"; URL="$2"; shift 2 ;;
    --cases) need_arg "$@"; CASES="$2"; shift 2 ;;
    --exclude) need_arg "$@"; EXCLUDE="$2"; shift 2 ;;
    --out) need_arg "$@"; OUT="$2"; shift 2 ;;
    --agent) need_arg "$@"; AGENT="$2"; shift 2 ;;
    --timeout) need_arg "$@"; TIMEOUT="$2"; shift 2 ;;
    --server-cmd) need_arg "$@"; SERVER_CMD="$2"; shift 2 ;;
    --server-wait) need_arg "$@"; SERVER_WAIT="$2"; shift 2 ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --url=*|--cases=*|--exclude=*|--out=*|--agent=*|--timeout=*|--server-cmd=*|--server-wait=*)
      opt="${1%%=*}"; val="${1#*=}"; shift; set -- "$opt" "$val" "$@" ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds"
[[ "$SERVER_WAIT" =~ ^[1-9][0-9]*$ ]] || die "--server-wait must be a positive number of seconds"
[[ -n "$AGENT" ]] || die "--agent must not be empty"
command -v "$PYTHON3" >/dev/null || die "$PYTHON3 not found (needed for setup and the report)"
command -v timeout >/dev/null || die "timeout (coreutils) not found"

# ---------------------------------------------------------------- cleanup ---
SERVER_PID=""
WSTEST_PID=""
TAIL_PID=""
TMP_DIRS=()
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
  local rc=$?
  if [[ -n "$WSTEST_PID" ]]; then
    # `timeout` passes TERM on to wstest (and KILLs it 15 s later if needed).
    kill -TERM "$WSTEST_PID" 2>/dev/null || true
    wait "$WSTEST_PID" 2>/dev/null || true
    WSTEST_PID=""
  fi
  if [[ -n "$TAIL_PID" ]]; then kill "$TAIL_PID" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]]; then
    # The server was started with setsid, so its PID is also its process-group
    # id: signal that group only (it holds exactly what --server-cmd started).
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  if [[ ${#TMP_DIRS[@]} -gt 0 ]]; then rm -rf "${TMP_DIRS[@]}"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ setup ---
find_requirements() {
  local shared="$REPO/../shared/conformance/autobahn-py27-requirements.txt"
  local local_copy="$SCRIPT_DIR/autobahn-py27-requirements.txt"
  if [[ -f "$shared" ]]; then
    (cd "$(dirname "$shared")" && printf '%s/%s\n' "$(pwd)" "$(basename "$shared")")
  elif [[ -f "$local_copy" ]]; then
    printf '%s\n' "$local_copy"
  else
    die "no requirements file: neither $shared nor $local_copy exists"
  fi
}

is_py27() { [[ -x "$1" ]] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' 2>/dev/null; }

find_python27() {
  if [[ -n "${LARIAT_PYTHON27:-}" ]]; then
    is_py27 "$LARIAT_PYTHON27" || die "LARIAT_PYTHON27=$LARIAT_PYTHON27 is not a Python 2.7 interpreter"
    printf '%s\n' "$LARIAT_PYTHON27"; return
  fi
  local root=""
  if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null || true); fi
  [[ -n "$root" ]] || root="${PYENV_ROOT:-$HOME/.pyenv}"
  local cand="$root/versions/$PY27_VERSION/bin/python"
  if is_py27 "$cand"; then printf '%s\n' "$cand"; return; fi
  cand=$(command -v python2.7 2>/dev/null || true)
  if [[ -n "$cand" ]] && is_py27 "$cand"; then printf '%s\n' "$cand"; return; fi
  # Last resort: build it with pyenv (needs CPython's source tarball to be reachable).
  local pyenv_bin=""
  if command -v pyenv >/dev/null 2>&1; then pyenv_bin=$(command -v pyenv)
  elif [[ -x "$root/bin/pyenv" ]]; then pyenv_bin="$root/bin/pyenv"; fi
  [[ -n "$pyenv_bin" ]] || die "no Python 2.7 found (looked for $root/versions/$PY27_VERSION and python2.7) and no pyenv to install one"
  log "Python $PY27_VERSION missing; trying: pyenv install -s $PY27_VERSION"
  timeout "$SETUP_TIMEOUT" "$pyenv_bin" install -s "$PY27_VERSION" >&2 || die "pyenv install $PY27_VERSION failed"
  cand="$("$pyenv_bin" root)/versions/$PY27_VERSION/bin/python"
  is_py27 "$cand" || die "pyenv install finished but $cand is not Python 2.7"
  printf '%s\n' "$cand"
}

venv_ready() {
  local stamp="$1"
  [[ -f "$VENV/.lariat-autobahn-ready" ]] \
    && [[ "$(cat "$VENV/.lariat-autobahn-ready")" == "$stamp" ]] \
    && [[ -x "$VENV/bin/wstest" ]] \
    && "$VENV/bin/python" -c 'import autobahntestsuite.fuzzing' >/dev/null 2>&1
}

setup_venv() {
  local req stamp
  req=$(find_requirements)
  stamp="requirements-sha256=$(sha256sum "$req" | cut -d' ' -f1)"
  if venv_ready "$stamp"; then
    log "virtualenv ready: $VENV"
    return
  fi
  mkdir -p "$(dirname "$VENV")"
  # Serialise concurrent setups of the same virtualenv.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock -w "$SETUP_TIMEOUT" 9 || die "timed out waiting for lock $VENV.lock"
    if venv_ready "$stamp"; then log "virtualenv ready: $VENV"; return; fi
  fi
  local t0=$SECONDS py27
  py27=$(find_python27)
  log "setting up Python 2.7 virtualenv at $VENV (python: $py27, requirements: $req)"
  if [[ -e "$VENV" ]]; then
    if [[ -f "$VENV/pyvenv.cfg" || -f "$VENV/bin/activate" ]]; then
      rm -rf "$VENV"
    elif [[ -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
      die "$VENV exists, is not empty and is not a virtualenv; refusing to touch it"
    fi
  fi
  # virtualenv 20.15.1 (run from a throwaway Python 3 venv) can still create
  # Python 2.7 environments and seeds them with pip 20.3.4 / setuptools 44.1.1.
  local boot
  boot=$(mktemp -d "${TMPDIR:-/tmp}/lariat-virtualenv.XXXXXX")
  TMP_DIRS+=("$boot")
  "$PYTHON3" -m venv "$boot/env" >&2 || die "$PYTHON3 -m venv failed (on Debian's python3: apt-get install python3-venv)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 timeout "$SETUP_TIMEOUT" \
    "$boot/env/bin/python" -m pip install -q "$VIRTUALENV_PIN" >&2 || die "pip install $VIRTUALENV_PIN failed"
  VIRTUALENV_OVERRIDE_APP_DATA="$boot/app-data" timeout "$SETUP_TIMEOUT" \
    "$boot/env/bin/python" -m virtualenv --quiet --no-periodic-update -p "$py27" "$VENV" >&2 \
    || die "virtualenv -p $py27 $VENV failed"
  log "installing pinned requirements (compiles wsaccel, zope.interface, ...; about a minute)"
  if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONWARNINGS=ignore timeout "$SETUP_TIMEOUT" \
      "$VENV/bin/python" -m pip install -q -r "$req" >&2; then
    die "pip install -r $req failed"
  fi
  PYTHONWARNINGS=ignore "$VENV/bin/wstest" --help >/dev/null 2>&1 || die "wstest does not run in $VENV"
  printf '%s' "$stamp" >"$VENV/.lariat-autobahn-ready"
  rm -rf "$boot"
  log "virtualenv ready after $((SECONDS - t0))s: $VENV"
}

# ---------------------------------------------------------- url + server ---
# Prints "host port" for the URL, or fails if it is not a loopback ws(s) URL.
url_host_port() {
  "$PYTHON3" - "$1" <<'PY'
import ipaddress, sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
if u.scheme not in ("ws", "wss") or not u.hostname:
    sys.exit("URL must be ws://HOST:PORT/PATH or wss://..., got %r" % sys.argv[1])
host = u.hostname
try:
    ok = ipaddress.ip_address(host).is_loopback
except ValueError:
    ok = host.lower() in ("localhost", "localhost.")
if not ok:
    sys.exit("only loopback servers may be targeted (127.0.0.0/8, ::1, localhost), got %r" % host)
try:
    port = u.port or (443 if u.scheme == "wss" else 80)
except ValueError as e:
    sys.exit("bad port in URL: %s" % e)
print(host, port)
PY
}

port_open() {
  "$PYTHON3" - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

start_server() {
  local host="$1" port="$2" log_file="$OUT/server.log"
  if port_open "$host" "$port"; then
    die "something already listens on $host:$port; not starting --server-cmd"
  fi
  command -v setsid >/dev/null || die "setsid (util-linux) is needed for --server-cmd"
  log "starting server: $SERVER_CMD (log: $log_file)"
  # setsid gives the command its own process group (PGID == $!), so cleanup can
  # stop it and any children it forks without touching anything else.
  setsid bash -c "$SERVER_CMD" </dev/null >"$log_file" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + SERVER_WAIT))
  until port_open "$host" "$port"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$log_file" >&2 || true
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      die "--server-cmd exited before $host:$port accepted connections"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log_file" >&2 || true
      die "$host:$port did not accept connections within ${SERVER_WAIT}s"
    fi
    sleep 0.2
  done
  log "server (pid $SERVER_PID) is accepting connections on $host:$port"
}

# ------------------------------------------------------------------- main ---
if ((!SETUP_ONLY)); then
  HOST_PORT=$(url_host_port "$URL") || die "bad --url: $URL"
  read -r HOST PORT <<<"$HOST_PORT"
fi

setup_venv
if ((SETUP_ONLY)); then exit 0; fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SPEC="$OUT/spec.json"
EXPECTED="$OUT/expected-cases.txt"

# Write the fuzzingclient spec.
"$PYTHON3" - "$SPEC" "$OUT" "$AGENT" "$URL" "$CASES" "$EXCLUDE" <<'PY' || die "could not write $SPEC"
import json, sys
spec_path, outdir, agent, url, cases, exclude = sys.argv[1:]
split = lambda s: [c.strip() for c in s.split(",") if c.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": agent, "url": url}],
    "cases": split(cases),
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
if not spec["cases"]:
    sys.exit("--cases selects nothing")
with open(spec_path, "w") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
PY

# Expand the patterns with the suite's own CaseSet, so that cases missing from
# the report (crash, timeout, refused connection) count as failures.
PYTHONWARNINGS=ignore "$VENV/bin/python" - "$SPEC" >"$EXPECTED" <<'PY' || die "bad --cases/--exclude"
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
from autobahntestsuite.caseset import CaseSet
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
spec = json.load(open(sys.argv[1]))
ids = cs.parseSpecCases(spec)
unknown = [c for c in ids if c not in cs.CasesIndices]
if unknown:
    sys.exit("unknown case id(s): %s" % ", ".join(unknown))
if not ids:
    sys.exit("the case selection matches no case")
for c in ids:
    print(c)
PY
N_EXPECTED=$(wc -l <"$EXPECTED")

if [[ -n "$SERVER_CMD" ]]; then
  start_server "$HOST" "$PORT"
elif ! port_open "$HOST" "$PORT"; then
  log "nothing accepts connections on $HOST:$PORT (start the server first, or use --server-cmd)"
  echo "autobahn: 0 passed, $N_EXPECTED failed"
  exit 1
fi

# Remove the previous run's index so a crashed run is never judged on stale data.
rm -f "$OUT/index.json" "$OUT/index.html"
WSLOG="$OUT/wstest.log"
log "running $N_EXPECTED cases against $URL (agent $AGENT, timeout ${TIMEOUT}s, log $WSLOG)"
t0=$SECONDS
# wstest runs in the background and the script waits for it, so that INT/TERM
# reach the traps at once (bash defers traps while a foreground child runs).
: >"$WSLOG"
(cd "$OUT" && exec env PYTHONWARNINGS=ignore timeout --kill-after=15 "$TIMEOUT" \
  "$VENV/bin/wstest" -m fuzzingclient -s "$SPEC") >"$WSLOG" 2>&1 </dev/null &
WSTEST_PID=$!
if ((VERBOSE)); then
  tail -n +1 -f --pid="$WSTEST_PID" "$WSLOG" &
  TAIL_PID=$!
fi
set +e
wait "$WSTEST_PID"
WSTEST_RC=$?
set -e
WSTEST_PID=""
if [[ -n "$TAIL_PID" ]]; then wait "$TAIL_PID" 2>/dev/null || true; TAIL_PID=""; fi
log "wstest finished in $((SECONDS - t0))s (exit $WSTEST_RC)"
if ((WSTEST_RC == 124 || WSTEST_RC == 137)); then
  log "wstest hit the ${TIMEOUT}s timeout"
elif ((WSTEST_RC != 0)); then
  log "wstest failed; last lines of $WSLOG:"
  tail -n 20 "$WSLOG" >&2 || true
fi
if grep -q "^Connection to .* failed" "$WSLOG"; then
  log "$(grep -m1 "^Connection to .* failed" "$WSLOG")"
fi

# Summarise the report; its exit status is the script's.
set +e
"$PYTHON3" - "$OUT/index.json" "$AGENT" "$EXPECTED" "$WSTEST_RC" <<'PY'
import json, os, sys
index_path, agent, expected_path, wstest_rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected = [l.strip() for l in open(expected_path) if l.strip()]

def key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))

results = {}
if os.path.exists(index_path):
    with open(index_path) as f:
        index = json.load(f)
    if agent in index:
        results = index[agent]
    elif index:
        print("warning: agent %r not in %s (agents: %s)" % (agent, index_path, ", ".join(sorted(index))))
else:
    print("no report index at %s" % index_path)

ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
counts = dict((b, 0) for b in ORDER)
bad = []
passed = 0
for cid in sorted(set(expected) | set(results), key=key):
    r = results.get(cid)
    if r is None:
        counts["MISSING"] = counts.get("MISSING", 0) + 1
        bad.append((cid, "MISSING", "-"))
        continue
    b, bc = r.get("behavior", "?"), r.get("behaviorClose", "?")
    counts[b] = counts.get(b, 0) + 1
    if b in ("OK", "INFORMATIONAL") and bc != "FAILED":
        passed += 1
    else:
        bad.append((cid, b, bc))

print("Autobahn|Testsuite fuzzingclient, agent %s: %d case(s) expected, %d reported"
      % (agent, len(expected), len(results)))
print("behavior counts: " + ", ".join("%s=%d" % (b, counts[b])
      for b in ORDER + sorted(set(counts) - set(ORDER))))
listed = [x for x in bad if x[1] != "MISSING"]
missing = [x[0] for x in bad if x[1] == "MISSING"]
if listed:
    print("cases not passing (behavior / behaviorClose):")
    for cid, b, bc in listed:
        print("  %-10s %-14s close=%s" % (cid, b, bc))
if missing:
    shown = ", ".join(missing[:40]) + (", ..." if len(missing) > 40 else "")
    print("missing from the report (%d): %s" % (len(missing), shown))
html = os.path.join(os.path.dirname(index_path), "index.html")
if bad and os.path.exists(html):
    print("details: %s" % html)
if wstest_rc != 0:
    print("wstest exited with status %d" % wstest_rc)
failed = len(bad)
print("autobahn: %d passed, %d failed" % (passed, failed))
sys.exit(0 if failed == 0 and passed > 0 and wstest_rc == 0 else 1)
PY
RC=$?
set -e
exit "$RC"
