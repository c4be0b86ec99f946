# Shared helpers for the load-test proofs. Source it: `. "$(dirname "$0")/lib.sh"`.
# Everything here runs on loopback only and every wait is bounded.
#
#   need CMD [DEBIAN_PACKAGE]   install the package with apt when CMD is missing
#   build_release               cargo build --release of rampart and loadtest (once)
#   rampart_start [ARGS...]     start target/release/rampart on a free 127.0.0.1 port with
#                               the demo SPA (or $RAMPART_ROOT) and a fresh dev CA; sets RAMPART_PID,
#                               RAMPART_ADDR (127.0.0.1:PORT), RAMPART_PORT, RAMPART_URL,
#                               RAMPART_CA, RAMPART_LOG, WORK (a temp dir removed at exit)
#   rampart_stop                SIGTERM, wait (bounded), require exit 0 and print the
#                               server's `counters` line
#   counter NAME                one field of that line (after rampart_stop)
#   stop_and_check NAME [EOF]   rampart_stop, keep the log as $LOG_KEEP/NAME-rampart.log,
#                               and require the counters a well-behaved client leaves at
#                               zero (at most EOF fail_eof); problems go to the caller's
#                               `summary` array and `failed` count

set -euo pipefail
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RAMPART_BIN=${RAMPART_BIN:-$ROOT_DIR/target/release/rampart}
LOADTEST_BIN=${LOADTEST_BIN:-$ROOT_DIR/target/release/loadtest}
WORK=$(mktemp -d)
# Hundreds of users open thousands of sockets: lift the soft descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RAMPART_PID=""

cleanup() {
  local status=$?
  # A failed run keeps the server log for the post-mortem.
  if [ "$status" != 0 ] && [ -n "${RAMPART_LOG:-}" ] && [ -f "$RAMPART_LOG" ]; then
    mkdir -p "$ROOT_DIR/target/loadtest"
    local keep
    keep="$ROOT_DIR/target/loadtest/$(basename "$0" .sh)-$(date +%Y%m%dT%H%M%S)-rampart.log"
    cp "$RAMPART_LOG" "$keep" && echo "server log kept: $keep" >&2
  fi
  if [ -n "$RAMPART_PID" ] && kill -0 "$RAMPART_PID" 2>/dev/null; then
    kill -9 "$RAMPART_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  local cmd=$1 pkg=${2:-$1}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "installing $pkg (for $cmd)" >&2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || { echo "$cmd still missing after installing $pkg" >&2; return 1; }
}

build_release() {
  if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$ROOT_DIR" && cargo build --release --quiet -p rampart -p loadtest)
  fi
}

rampart_start() {
  RAMPART_LOG=$WORK/rampart.log
  "$RAMPART_BIN" --listen 127.0.0.1:0 --root "${RAMPART_ROOT:-$ROOT_DIR/www}" --dev-cert-dir "$WORK/certs" \
    "$@" >"$RAMPART_LOG" 2>&1 &
  RAMPART_PID=$!
  local i
  for i in $(seq 1 300); do
    if grep -qs "listening addr=" "$RAMPART_LOG"; then break; fi
    if ! kill -0 "$RAMPART_PID" 2>/dev/null; then
      cat "$RAMPART_LOG" >&2; echo "rampart exited during start-up" >&2; return 1
    fi
    [ "$i" = 300 ] && { cat "$RAMPART_LOG" >&2; echo "rampart not listening after 30 s" >&2; return 1; }
    sleep 0.1
  done
  RAMPART_ADDR=$(grep -o "listening addr=[^ ]*" "$RAMPART_LOG" | head -1 | cut -d= -f2)
  RAMPART_PORT=${RAMPART_ADDR##*:}
  RAMPART_URL="https://127.0.0.1:$RAMPART_PORT/"
  RAMPART_CA=$WORK/certs/ca.pem
  export RAMPART_PID RAMPART_ADDR RAMPART_PORT RAMPART_URL RAMPART_CA RAMPART_LOG
}

rampart_stop() {
  kill -TERM "$RAMPART_PID"
  local status=0 i
  for i in $(seq 1 400); do
    kill -0 "$RAMPART_PID" 2>/dev/null || break
    [ "$i" = 400 ] && { echo "rampart still running 40 s after SIGTERM" >&2; kill -9 "$RAMPART_PID"; }
    sleep 0.1
  done
  wait "$RAMPART_PID" || status=$?
  RAMPART_PID=""
  echo "server: $(grep -o 'counters .*' "$RAMPART_LOG" | tail -1)"
  if grep -q "panicked" "$RAMPART_LOG"; then
    grep "panicked" "$RAMPART_LOG" >&2; echo "rampart logged a panic" >&2; return 1
  fi
  [ "$status" = 0 ] || { tail -20 "$RAMPART_LOG" >&2; echo "rampart exit status $status" >&2; return 1; }
}

counter() {
  grep -o "counters .*" "$RAMPART_LOG" | tail -1 | tr ' ' '\n' | grep "^$1=" | cut -d= -f2
}

stop_and_check() {
  local name=$1 eof_allowed=${2:-0} stop_rc=0 c v
  mkdir -p "${LOG_KEEP:=$ROOT_DIR/target/loadtest}"
  rampart_stop || stop_rc=$?
  cp "$RAMPART_LOG" "$LOG_KEEP/$name-rampart.log"
  if [ "$stop_rc" != 0 ]; then
    summary+=("rampart did not shut down cleanly"); failed=$((failed + 1))
  else
    for c in connection_panics session_tls_errors fail_alert_received fail_alert_sent \
             fail_protocol_error fail_timeout fail_not_tls fail_plaintext_http; do
      v=$(counter "$c")
      [ "$v" = 0 ] || { summary+=("server $c=$v"); failed=$((failed + 1)); }
    done
    v=$(counter fail_eof)
    [ "$v" -le "$eof_allowed" ] || {
      summary+=("server fail_eof=$v (at most $eof_allowed expected)"); failed=$((failed + 1))
    }
  fi
  [ "$failed" = 0 ] || grep -E " (WARN|ERROR) " "$RAMPART_LOG" | tail -20 || true
  echo "server log: $LOG_KEEP/$name-rampart.log"
}
