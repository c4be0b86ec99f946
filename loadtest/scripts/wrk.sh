#!/usr/bin/env bash
# wrk.sh - rampart under wrk (HTTP/1.1 keep-alive over TLS), with the README's settings.
#
#   loadtest/scripts/wrk.sh [-d 10s] [-c 64] [-t 2] [-s asset,asset-br,index] [-- WRK ARGS...]
#
# Builds release (SKIP_BUILD=1 skips), starts rampart on a free 127.0.0.1 port with the
# demo SPA (extra server flags from $RAMPART_ARGS, e.g. RAMPART_ARGS="--workers 1"), and
# runs `wrk -t THREADS -c CONNS -d DURATION` once per scenario:
#   asset     GET /assets/app.<hash>.js (the hashed bundle, identity)
#   asset-br  the same with `Accept-Encoding: gzip, br` (the precompressed brotli variant)
#   index     GET /  (index.html, Cache-Control: no-cache)
# Each run's wrk output is printed as is. Then rampart gets SIGTERM and must exit 0.
#
# Options (or environment): -d/--duration (WRK_DURATION, 10s), -c/--connections
# (WRK_CONNECTIONS, 64), -t/--threads (WRK_THREADS, 2), -s/--scenarios (WRK_SCENARIOS,
# asset,asset-br,index); arguments after `--` go to wrk (e.g. `-- --latency`).
# wrk cannot verify certificates: it accepts any (the other scripts verify against the CA).
#
# What the output means: "N requests in T" and "Requests/sec" are the throughput; wrk
# prints "Non-2xx or 3xx responses: N" (status >= 400) and "Socket errors: connect A,
# read B, write C, timeout D" only when non-zero. The script fails (exit 1) when any
# scenario has a non-2xx/3xx response, a socket error (including wrk's 2 s timeouts),
# zero requests, or wrk exits non-zero; or when rampart logged a panic, counted an alert
# or protocol error, or did not exit 0. Last line: "wrk: PASS (...)" or "wrk: FAIL (...)".
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

duration=${WRK_DURATION:-10s}
conns=${WRK_CONNECTIONS:-64}
threads=${WRK_THREADS:-2}
scenarios=${WRK_SCENARIOS:-asset,asset-br,index}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--duration) duration=$2; shift 2 ;;
    -c|--connections) conns=$2; shift 2 ;;
    -t|--threads) threads=$2; shift 2 ;;
    -s|--scenarios) scenarios=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^# shellcheck source=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "wrk.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration" in *[0-9]) duration="${duration}s" ;; esac
# wrk runs for exactly --duration; the outer bound leaves room for start-up and the tail.
secs=$(echo "$duration" | awk '/ms$/ { print 1; exit } /m$/ { print $0 * 60; exit } /h$/ { print $0 * 3600; exit } { print $0 + 0 }')
bound=$((secs + 60))

need wrk wrk
need timeout coreutils
build_release
ASSET=$(cd "$ROOT_DIR/www" && ls assets/app.*.js | head -1)
[ -n "$ASSET" ] || { echo "no www/assets/app.*.js" >&2; exit 1; }
# shellcheck disable=SC2086
rampart_start ${RAMPART_ARGS:-}
echo "wrk: rampart at $RAMPART_URL ($(nproc) cores), -t$threads -c$conns -d$duration, scenarios $scenarios"

failed=0 summary=()
IFS=, read -r -a list <<<"$scenarios"
for sc in "${list[@]}"; do
  hdr=()
  case "$sc" in
    asset) path=/$ASSET ;;
    asset-br) path=/$ASSET; hdr=(-H "Accept-Encoding: gzip, br") ;;
    index) path=/ ;;
    *) echo "unknown scenario '$sc' (asset, asset-br, index)"; failed=$((failed + 1)); continue ;;
  esac
  echo "== $sc"
  out=$WORK/wrk-$sc.out rc=0
  timeout "$bound" wrk -t"$threads" -c"$conns" -d"$duration" "${hdr[@]}" "${extra[@]}" \
    "https://127.0.0.1:$RAMPART_PORT$path" >"$out" 2>&1 || rc=$?
  cat "$out"
  reqs=$(awk '/ requests in / { print $1; exit }' "$out")
  rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses:/ { print $2; exit }' "$out")
  sockerr=$(grep -o 'Socket errors:.*' "$out" || true)
  verdict=ok
  [ "$rc" = 0 ] || verdict="wrk exited $rc"
  [ -n "$reqs" ] && [ "$reqs" -gt 0 ] 2>/dev/null || verdict="no requests completed"
  [ -z "$non2xx" ] || [ "$non2xx" = 0 ] || verdict="$non2xx non-2xx/3xx responses"
  if [ -n "$sockerr" ]; then
    # "Socket errors: connect 0, read 0, write 0, timeout 0": any non-zero number fails.
    nums=$(echo "$sockerr" | grep -o '[0-9]\+' | awk '{ s += $1 } END { print s + 0 }')
    [ "$nums" = 0 ] || verdict="$sockerr"
  fi
  echo "-- $sc: $verdict"
  if [ "$verdict" = ok ]; then summary+=("$sc ${rps:-?} req/s"); else summary+=("$sc FAILED: $verdict"); failed=$((failed + 1)); fi
done

# Before its connections, each wrk run makes one test TCP connection per resolved address
# (wrk.resolve -> wrk.connect) and closes it without a byte: rampart counts it as fail_eof
# (a connection that ended before its handshake). So one fail_eof per run is allowed; wrk
# drops its connections at the end without close_notify: after the handshake, not a failure.
stop_and_check wrk "${#list[@]}"
joined=$(printf '%s; ' "${summary[@]}"); joined=${joined%; }
if [ "$failed" = 0 ]; then
  echo "wrk: PASS ($joined; 0 non-2xx, 0 socket errors; -t$threads -c$conns -d$duration)"
else
  echo "wrk: FAIL ($joined)"
  exit 1
fi
