#!/usr/bin/env bash
# The zero-downtime restart proof: `loadtest storm` runs against one port while rampart is
# replaced twice (A -> B -> C) the way the README's Operations section says: start the new
# process with --reuse-port on the same address, wait for its `listening` line, SIGTERM the
# old one (which answers /readyz 503, keeps accepting for --drain-delay, then drains).
#
#   loadtest/scripts/restart.sh [--duration 16] [--users 32]
#
# Fails (exit 1) when the storm saw any failed request or connection, or any of the three
# processes did not exit 0, panicked, or counted a TLS error in an established session.
# Needs net.ipv4.tcp_migrate_req=1 (Linux 5.14+) so that connections queued on the old
# listener when it closes move to the new one: the script sets it when it can (root) and
# puts the old value back at exit; without it, it fails and says why.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

duration=16 users=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2%s}; shift 2 ;;
    --users) users=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$duration" -ge 12 ] || { echo "--duration must be at least 12 (two swaps)" >&2; exit 2; }

knob=/proc/sys/net/ipv4/tcp_migrate_req
old_knob=$(cat "$knob" 2>/dev/null || echo missing)
if [ "$old_knob" = missing ]; then
  echo "restart: this kernel has no $knob (Linux < 5.14): queued connections cannot move between listeners" >&2
  exit 1
fi
if [ "$old_knob" != 1 ]; then
  if ! echo 1 >"$knob" 2>/dev/null; then
    echo "restart: net.ipv4.tcp_migrate_req is $old_knob and cannot be set (run as root, or sysctl -w net.ipv4.tcp_migrate_req=1)" >&2
    exit 1
  fi
  trap 'echo "$old_knob" >"$knob" 2>/dev/null || true; cleanup' EXIT
fi

build_release
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=() logs=()

# start NAME: a rampart on the shared port; sets started_pid once it listens.
start() {
  local log=$WORK/$1.log
  "$RAMPART_BIN" --listen "127.0.0.1:$port" --reuse-port --drain-delay 1s \
    --root "$ROOT_DIR/www" --dev-cert-dir "$WORK/certs" --watch-interval 0 >"$log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid") logs+=("$log")
  local i
  for i in $(seq 1 200); do
    grep -qs "listening addr=" "$log" && return 0
    kill -0 "$started_pid" 2>/dev/null || { cat "$log" >&2; echo "$1 exited at start" >&2; return 1; }
    sleep 0.1
  done
  cat "$log" >&2; echo "$1 not listening after 20 s" >&2; return 1
}

# swap OLD_PID NEW_NAME: start the new process, then SIGTERM the old one.
swap() {
  start "$2"
  echo "restart: $2 (pid $started_pid) listening; SIGTERM to pid $1"
  kill -TERM "$1"
}

start a
a=$started_pid
echo "restart: a (pid $a) on 127.0.0.1:$port; storm: $users users for ${duration}s"
json=$WORK/storm.json
"$LOADTEST_BIN" storm --url "https://127.0.0.1:$port/" --ca "$WORK/certs/ca.pem" \
  --root "$ROOT_DIR/www" --users "$users" --duration "${duration}s" --timeout 20s \
  --json "$json" &
storm=$!
sleep $((duration / 4))
swap "$a" b
b=$started_pid
sleep $((duration / 3))
swap "$b" c
c=$started_pid
storm_rc=0
wait "$storm" || storm_rc=$?
kill -TERM "$c"

failed=0
for i in "${!pids[@]}"; do
  pid=${pids[$i]} log=${logs[$i]} rc=0
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" || rc=$?
  name=$(basename "$log" .log)
  counters=$(grep -o 'counters .*' "$log" | tail -1 || true)
  echo "restart: $name exit $rc; $counters"
  if [ "$rc" != 0 ] || grep -q panicked "$log"; then failed=1; tail -20 "$log" >&2; fi
  for c in session_tls_errors connection_panics fail_alert_received fail_protocol_error; do
    v=$(echo "$counters" | tr ' ' '\n' | grep "^$c=" | cut -d= -f2)
    [ "${v:-x}" = 0 ] || { echo "restart: $name $c=${v:-missing}" >&2; failed=1; }
  done
done
python3 - "$json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"restart: storm: {s['requests']['ok']} responses verified, "
      f"{s['page_loads']['completed']} page loads, {s['connections']['total']} connections, "
      f"{s['requests']['resent']} requests resent after a clean server close (as browsers do); "
      f"errors {s['errors']['total']} {s['errors'].get('by_class', {})}")
PY
if [ "$storm_rc" != 0 ]; then echo "restart: the storm saw failures (exit $storm_rc)" >&2; failed=1; fi
[ "$failed" = 0 ] && echo "restart: PASS: two restarts under load, zero failed requests"
exit "$failed"
