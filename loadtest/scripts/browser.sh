#!/usr/bin/env bash
# Real-browser proof (FAILURES.md section 4): headless Chromium, with the dev CA trusted
# through a private NSS database (a real certificate check: no --ignore-certificate-errors,
# no SPKI pins), reloads the demo SPA rapidly in several tabs - many reloads start before
# the previous load completed - and records every failed request by its net error.
# Fails on any net::ERR_* other than net::ERR_ABORTED (our own navigation; counted apart),
# on any response >= 400 or JS error, when the app's JS did not run after the last load in
# every tab, and on the server side on a panic, a handshake alert rampart sent, or a
# connection that ended with a TLS error. Loopback only.
#
# With h3 among the protocols, those tabs are in a Chromium that speaks only HTTP/3 to
# https://localhost:PORT (--origin-to-force-quic-on: QUIC on rampart's UDP port from the
# first request, no TCP, no fallback), trusting the same CA the same way (no SPKI pins).
# The browser's network log must show every response in those tabs as h3, and rampart's
# counters and access log (on in this script) that requests came over h3: requests_h3 > 0,
# as many access lines with protocol=h3, and, in an h3-only run, no request over TCP.
#
# --idle-resume S: rampart runs with --idle-timeout S; after the final loads every tab waits
# S+2 s without a request, so the server closes its connections, and loads the app once
# more over new ones; with h3 tabs rampart must count a resumed QUIC handshake (h3_tickets).
#
#   bash loadtest/scripts/browser.sh [--reloads N] [--tabs N] [--timeout S] [--protocols h2,h1,h3]
#                                    [--seed N] [--idle-resume S]
#
# The same settings through the environment: BROWSER_RELOADS (default 400), BROWSER_TABS (4),
# BROWSER_TIMEOUT (240 s, the node script's hard limit), BROWSER_PROTOCOLS (h2,h1: half the
# tabs in a Chromium started with --disable-http2; any of h2, h1, h3, tabs dealt round-robin),
# BROWSER_SEED, BROWSER_IDLE_RESUME (off). SKIP_BUILD=1 skips cargo.
# RAMPART_ARGS: extra rampart flags (e.g. "--idle-timeout 2s --workers 8").
# A longer run by hand:  BROWSER_RELOADS=3000 BROWSER_TABS=8 BROWSER_TIMEOUT=590 bash loadtest/scripts/browser.sh
# HTTP/3 only, as CI runs it:  bash loadtest/scripts/browser.sh --protocols h3 --reloads 160 --tabs 2 --idle-resume 3
. "$(dirname "$0")/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --reloads) BROWSER_RELOADS=$2; shift 2 ;;
    --tabs) BROWSER_TABS=$2; shift 2 ;;
    --timeout) BROWSER_TIMEOUT=$2; shift 2 ;;
    --protocols) BROWSER_PROTOCOLS=$2; shift 2 ;;
    --seed) BROWSER_SEED=$2; shift 2 ;;
    --idle-resume) BROWSER_IDLE_RESUME=$2; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
export BROWSER_RELOADS=${BROWSER_RELOADS:-400} BROWSER_TABS=${BROWSER_TABS:-4}
export BROWSER_TIMEOUT=${BROWSER_TIMEOUT:-240} BROWSER_PROTOCOLS=${BROWSER_PROTOCOLS:-h2,h1}
[ -n "${BROWSER_SEED:-}" ] && export BROWSER_SEED
idle_args=()
if [ -n "${BROWSER_IDLE_RESUME:-}" ]; then
  [[ $BROWSER_IDLE_RESUME =~ ^[1-9][0-9]*$ ]] || { echo "--idle-resume: whole seconds, not $BROWSER_IDLE_RESUME" >&2; exit 2; }
  idle_args=(--idle-timeout "${BROWSER_IDLE_RESUME}s")
  export BROWSER_RESUME_AFTER=$((BROWSER_IDLE_RESUME + 2))
fi

BROWSER_DIR=$ROOT_DIR/loadtest/browser
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

# ---- what it needs
need node nodejs
need npm npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "node $(node --version) is too old: playwright-core needs node >= 20" >&2; exit 1; }
[ -x "$CHROMIUM" ] || need chromium chromium
need certutil libnss3-tools
want=$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$BROWSER_DIR/package.json")
have=$(node -p 'require(process.argv[1]).version' "$BROWSER_DIR/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  # playwright-core only (pinned in package-lock.json); it downloads no browser.
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
build_release

# ---- server: debug logs for rampart itself, so every TLS session and every connection
# that ended with an error is in $RAMPART_LOG, and the access log (each request's protocol)
# shellcheck disable=SC2086
rampart_start --log-level "info,rampart=debug" --access-log "${idle_args[@]}" ${RAMPART_ARGS:-}
echo "rampart at $RAMPART_URL (log $RAMPART_LOG)"

# ---- trust the dev CA, for this run only: a private NSS database under a temporary HOME
# (created before Chromium ever runs there, or Chromium creates one first)
export HOME=$WORK/home
mkdir -p "$HOME/.pki/nssdb"
certutil -d "sql:$HOME/.pki/nssdb" -N --empty-password </dev/null
certutil -d "sql:$HOME/.pki/nssdb" -A -t "C,," -n rampart-dev-ca -i "$RAMPART_CA" </dev/null
certutil -d "sql:$HOME/.pki/nssdb" -L </dev/null | grep -q "rampart-dev-ca" ||
  { echo "the dev CA is not in the NSS database" >&2; exit 1; }
export XDG_CONFIG_HOME=$HOME/.config XDG_CACHE_HOME=$HOME/.cache TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"

# ---- the browser
start=$(date +%s)
browser_status=0
timeout --kill-after=10 $((BROWSER_TIMEOUT + 30)) \
  node "$BROWSER_DIR/refresh.mjs" --url "$RAMPART_URL" --ca "$RAMPART_CA" </dev/null || browser_status=$?
elapsed=$(( $(date +%s) - start ))

# ---- the server's view
server_status=0
rampart_stop || server_status=$?
for c in connections_total handshakes_full handshakes_resumed handshakes_tls13 handshakes_tls12 \
         h3_accepted h3_handshakes h3_tickets requests_h1 requests_h2 requests_h3 fail_eof \
         fail_timeout fail_alert_received fail_alert_sent fail_protocol_error connection_panics \
         session_tls_errors closed_idle closed_stalled; do
  printf -v "c_$c" '%s' "$(counter "$c")"
done
echo "server: connections=$c_connections_total handshakes full=$c_handshakes_full resumed=$c_handshakes_resumed" \
     "(tls1.3=$c_handshakes_tls13 tls1.2=$c_handshakes_tls12) quic accepted=$c_h3_accepted" \
     "h3 handshakes=$c_h3_handshakes (with a ticket: $c_h3_tickets) closed idle=$c_closed_idle stalled=$c_closed_stalled"
echo "server: requests h1=$c_requests_h1 h2=$c_requests_h2 h3=$c_requests_h3; access log lines by protocol:" \
     "$(grep -o ' access .* protocol=[^ ]*' "$RAMPART_LOG" | grep -o 'protocol=[^ ]*' | sort | uniq -c |
        awk '{printf "%s%s=%s", sep, substr($2, 10), $1; sep=" "}')"
echo "server: handshake failures eof=$c_fail_eof timeout=$c_fail_timeout alert_received=$c_fail_alert_received" \
     "(the untrusted-CA checks cause these) alert_sent=$c_fail_alert_sent protocol_error=$c_fail_protocol_error" \
     "connection_panics=$c_connection_panics"
ended=$(grep -c "connection ended with an error" "$RAMPART_LOG" || true)
if [ "$ended" -gt 0 ]; then
  # TCP lines say reason=..., HTTP/3 ones protocol="h3" error=...
  echo "server: $ended connection(s) ended with an error (a browser cancelling a transfer or closing" \
       "a QUIC connection is one); by reason:"
  grep "connection ended with an error" "$RAMPART_LOG" | grep -oE '(reason|protocol)=.*' |
    sed 's/ connection ended with an error//; s/peer=[^ ]* //' |
    sed -E 's/\b[0-9]+\b/N/g' | sort | uniq -c | sort -rn | head -15 | sed 's/^/    /' || true
fi

fail=0
if [ "${c_connection_panics:-x}" != 0 ]; then echo "FAIL: connection_panics=$c_connection_panics" >&2; fail=1; fi
if [ "${c_session_tls_errors:-x}" != 0 ]; then
  echo "FAIL: session_tls_errors=$c_session_tls_errors (TLS errors inside established sessions)" >&2
  grep "tls error in an established session" "$RAMPART_LOG" | head -5 >&2
  fail=1
fi
if [ "${c_fail_alert_sent:-x}" != 0 ] || [ "${c_fail_protocol_error:-x}" != 0 ]; then
  echo "FAIL: rampart rejected a handshake from Chromium (alert_sent=$c_fail_alert_sent protocol_error=$c_fail_protocol_error):" >&2
  grep "tls handshake failed" "$RAMPART_LOG" | grep -v "alert_received" | head -10 >&2
  fail=1
fi
# TLS-level corruption on an established connection: exactly what section 4 is about.
if grep "connection ended with an error" "$RAMPART_LOG" |
   grep -Eiq "bad_record_mac|decrypt|decode|InvalidMessage|PeerMisbehaved|illegal|alert"; then
  echo "FAIL: a connection ended with a TLS error:" >&2
  grep "connection ended with an error" "$RAMPART_LOG" |
    grep -Ei "bad_record_mac|decrypt|decode|InvalidMessage|PeerMisbehaved|illegal|alert" | head -10 >&2
  fail=1
fi
if [ "${c_requests_h2:-0}" = 0 ] && [[ $BROWSER_PROTOCOLS == *h2* ]]; then echo "FAIL: no HTTP/2 request reached rampart" >&2; fail=1; fi
if [ "${c_requests_h1:-0}" = 0 ] && [[ $BROWSER_PROTOCOLS == *h1* ]]; then echo "FAIL: no HTTP/1.1 request reached rampart" >&2; fail=1; fi
access_h3=$(grep ' access ' "$RAMPART_LOG" | grep -c ' protocol=h3' || true)
if [[ $BROWSER_PROTOCOLS == *h3* ]]; then
  if [ "${c_requests_h3:-0}" = 0 ]; then echo "FAIL: no HTTP/3 request reached rampart" >&2; fail=1; fi
  # One access line per request, written when its response ends or is dropped.
  if [ "$access_h3" != "${c_requests_h3:-x}" ]; then
    echo "FAIL: $access_h3 access log line(s) with protocol=h3 for requests_h3=$c_requests_h3" >&2; fail=1
  fi
  # HTTP/3 tabs have no TCP to fall back on: in an h3-only run nothing may arrive over TCP.
  if [ "$BROWSER_PROTOCOLS" = h3 ] && [ "$(( ${c_requests_h1:-1} + ${c_requests_h2:-1} ))" != 0 ]; then
    echo "FAIL: an HTTP/3-only run sent requests over TCP (h1=$c_requests_h1 h2=$c_requests_h2)" >&2; fail=1
  fi
  if [ -n "${BROWSER_IDLE_RESUME:-}" ] && [ "${c_h3_tickets:-0}" = 0 ]; then
    echo "FAIL: no resumed QUIC handshake (h3_tickets=0) after the idle connections were closed" >&2; fail=1
  fi
elif [ "${c_requests_h3:-0}" != 0 ] || [ "$access_h3" != 0 ]; then
  # Rampart advertises HTTP/3 (Alt-Svc); the TCP tabs run with --disable-quic.
  echo "FAIL: HTTP/3 requests ($c_requests_h3) in a run without h3 tabs" >&2; fail=1
fi
if [ "${c_handshakes_resumed:-0}" = 0 ] && [[ $BROWSER_PROTOCOLS == *h[12]* ]]; then
  echo "note: no resumed TLS handshake over TCP in this run" >&2
fi
[ "$server_status" = 0 ] || { echo "FAIL: rampart did not stop cleanly" >&2; fail=1; }
if [ "$browser_status" != 0 ]; then
  echo "FAIL: browser proof exit status $browser_status" >&2
  echo "last server log lines:" >&2; tail -15 "$RAMPART_LOG" >&2
  fail=1
fi

if [ "$fail" = 0 ]; then
  resumed="resumed TLS handshakes $c_handshakes_resumed of $(( c_handshakes_full + c_handshakes_resumed ))"
  [[ $BROWSER_PROTOCOLS != *h3* ]] || resumed+=", h3 requests $c_requests_h3 over $c_h3_handshakes QUIC handshake(s)"
  echo "browser proof: PASS in ${elapsed}s (reloads>=$BROWSER_RELOADS, tabs=$BROWSER_TABS, $BROWSER_PROTOCOLS; $resumed)"
else
  echo "browser proof: FAIL after ${elapsed}s" >&2
  exit 1
fi
