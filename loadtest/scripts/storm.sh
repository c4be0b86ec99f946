#!/usr/bin/env bash
# The refresh-storm proof: rampart under browser-like page loads with refresh aborts.
#
#   loadtest/scripts/storm.sh [--duration 20s] [--users 64] [--json FILE] [--http3] [STORM ARGS...]
#
# --http3 (or STORM_HTTP3=1): the storm over QUIC instead. Every user resumes its QUIC
# handshakes with session tickets from its own TCP connections (`--kinds tcp-ticket`): a user
# holding no such ticket loads the page over HTTP/2 first. Aborts cancel the load's request
# streams (STOP_SENDING) or, for half of them, close the connection mid-body
# (CONNECTION_CLOSE). Fails unless: zero errors, over 90% of the QUIC handshakes resumed (the
# client counts a handshake that verified no certificate), and the server's h3_tickets (QUIC
# handshakes that opened a ticket) is at least the client's resumed count.
#
# Builds release (SKIP_BUILD=1 skips), copies the demo SPA plus a 1.5 MiB incompressible
# asset (so that aborts land mid-body on a streamed file: rampart runs with
# --stream-threshold 1048576, so it is read from disk with pread) into a temp root, starts
# rampart on a free loopback port, and runs `loadtest storm` against it with every
# connection kind (TLS 1.3 / 1.2 full, TLS 1.3 resumption, TLS 1.2 ticket and session-ID
# resumption; HTTP/1.1 with six connections and HTTP/2) and 30% of page loads abandoned
# mid-body (half of those connections closed with a TCP RST). Then it stops rampart with
# SIGTERM and prints the server's own counters.
#
# Fails (exit 1) when: the storm saw any error (a TLS alert, a local TLS error such as
# bad_record_mac, EOF without close_notify, a reset, a timeout, a wrong status or byte);
# rampart panicked, counted an alert *received*, a protocol error or a TLS error inside an
# established session (an alert from the client, a record that failed to decrypt), or did
# not exit 0;
# the resumption rate seen by the client or by the server is not above 50%; the client's
# and the server's resumed-handshake counts differ.
# A response slower than --timeout (default 30 s: two shared cores run both client and
# server) counts as an error. Loopback only; bounded by --duration plus the timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

duration=20s users=64 json="" timeout=30s http3=${STORM_HTTP3:-}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --duration=*) duration=${1#*=}; shift ;;
    --users) users=$2; shift 2 ;;
    --users=*) users=${1#*=}; shift ;;
    --json) json=$2; shift 2 ;;
    --json=*) json=${1#*=}; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --http3) http3=1; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done
case "$duration" in *[0-9]) duration="${duration}s" ;; esac

build_release
root=$WORK/www
cp -r "$ROOT_DIR/www" "$root"
head -c 1572864 /dev/urandom >"$root/assets/big.5f0c1e2a.bin"
json=${json:-$WORK/storm.json}

RAMPART_ROOT=$root rampart_start --stream-threshold 1048576
mode=tcp
if [ -n "$http3" ]; then mode=h3; extra=(--http3 --kinds tcp-ticket "${extra[@]}"); fi
echo "storm: rampart at $RAMPART_URL ($(nproc) cores), $users users for $duration${http3:+, HTTP/3 resuming with TCP tickets}"
status=0
"$LOADTEST_BIN" storm --url "$RAMPART_URL" --ca "$RAMPART_CA" --root "$root" \
  --also /assets/big.5f0c1e2a.bin --users "$users" --duration "$duration" \
  --timeout "$timeout" --json "$json" "${extra[@]}" || status=$?
rampart_stop

python3 - "$json" "$RAMPART_LOG" "$status" "$mode" <<'PY'
import json, re, sys
summary = json.load(open(sys.argv[1]))
line = [l for l in open(sys.argv[2]) if " counters " in l][-1]
srv = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
status = int(sys.argv[3])
problems = []
if status != 0 or summary["errors"]["total"] != 0:
    problems.append(f"storm reported {summary['errors']['total']} errors (exit {status})")
if summary["page_loads"]["completed"] == 0:
    problems.append("no page load completed")
hs = srv["handshakes_full"] + srv["handshakes_full_hrr"] + srv["handshakes_resumed"]
srv_rate = srv["handshakes_resumed"] / hs if hs else 0.0
cli_rate = summary["connections"]["resumption_rate"]
print(f"resumption: client {summary['connections']['resumed']}/{summary['connections']['total']} = {cli_rate:.1%}, "
      f"server {srv['handshakes_resumed']}/{hs} = {srv_rate:.1%}")
print(f"server handshakes: full {srv['handshakes_full']}, full+HRR {srv['handshakes_full_hrr']}, "
      f"resumed {srv['handshakes_resumed']}; TLS 1.3 {srv['handshakes_tls13']}, TLS 1.2 {srv['handshakes_tls12']}")
fails = {k[5:]: v for k, v in srv.items() if k.startswith("fail_")}
print("server handshake failures by reason: " + ", ".join(f"{k} {v}" for k, v in fails.items()))
print(f"  (eof/timeout here are handshakes our own refresh aborts cut: "
      f"{summary['connections']['aborted_by_client']} connections dropped on purpose)")
print(f"server requests: h1 {srv['requests_h1']}, h2 {srv['requests_h2']}, h3 {srv.get('requests_h3', 0)}")
if sys.argv[4] == "h3":
    q = summary["connections"]["by_kind"].get("tcp-ticket", {}).get("h3", {"total": 0, "resumed": 0})
    print(f"QUIC: {q['total']} handshakes, {q['resumed']} resumed with a ticket from TCP "
          f"({q['total'] - q['resumed']} verified a certificate); server h3_handshakes {srv['h3_handshakes']}, "
          f"h3_tickets {srv['h3_tickets']}; {summary['requests']['aborted']} requests cut by our aborts, "
          f"{summary['connections']['aborted_by_client']} connections dropped by us")
    if q["total"] == 0: problems.append("no QUIC handshake")
    elif q["resumed"] <= 0.9 * q["total"]:
        problems.append(f"only {q['resumed']} of {q['total']} QUIC handshakes resumed with TCP tickets")
    if srv["h3_tickets"] < q["resumed"]:
        problems.append(f"server h3_tickets {srv['h3_tickets']} < client's {q['resumed']} resumed QUIC handshakes")
    # The TCP side only brings tickets: its handshakes are full by design.
    cli_rate = srv_rate = 1.0
    summary["connections"]["resumed"] = srv["handshakes_resumed"]
if cli_rate <= 0.5: problems.append(f"client resumption rate {cli_rate:.1%} is not above 50%")
if srv_rate <= 0.5: problems.append(f"server resumption rate {srv_rate:.1%} is not above 50%")
if srv["handshakes_resumed"] != summary["connections"]["resumed"]:
    problems.append(f"client saw {summary['connections']['resumed']} resumed handshakes, server counted {srv['handshakes_resumed']}")
for k in ("alert_received", "protocol_error", "not_tls", "plaintext_http"):
    if fails.get(k):
        problems.append(f"server counted {fails[k]} handshake failures of class {k}")
if srv.get("session_tls_errors"):
    problems.append(f"server logged {srv['session_tls_errors']} TLS errors inside established sessions")
if srv["connection_panics"]:
    problems.append(f"server counted {srv['connection_panics']} connection panics")
if problems:
    print("storm: FAIL")
    for p in problems: print("  - " + p)
    sys.exit(1)
print("storm: PASS (zero errors, " + ("QUIC resumed with TCP tickets)" if sys.argv[4] == "h3"
      else "resumption above 50% on both sides)"))
PY
