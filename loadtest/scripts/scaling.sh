#!/usr/bin/env bash
# scaling.sh - how rampart scales with its workers: requests per second and handshakes per
# second at 1, 2, 4, 8 and 15 workers, the server pinned to cores 0..W-1 and the load
# generator on the cores left (W..N-1), so the two never share a core.
#
#   loadtest/scripts/scaling.sh [--workers 1,2,4,8,15] [-d SECONDS]
#
# Made for a 16-core machine (the goal: near-linear, efficiency = rate(W) / (W x rate(1))
# near 1). A worker count that leaves the client no core of its own (W >= cores) is
# skipped with a note, so on a 2-core machine only W=1 runs. Per worker count, after a fresh
# start of `rampart --workers W`:
#   h1     wrk -t C -c 64xC keep-alive GETs of /favicon.ico (C = client cores) -> req/s
#   tls    loadtest handshake -c 16xC --threads C --resume: resumed TLS 1.3 handshakes/s
#   full   the same without --resume: full handshakes/s
# with the server's CPU (utime+stime from /proc) per operation, so that a run where the
# client ran out of cores still shows whether the server's cost per operation held.
# Builds release (SKIP_BUILD=1 skips). Prints a markdown table. Loopback only; each
# measurement is bounded by -d plus a 30 s margin.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

WORKERS=1,2,4,8,15
DURATION=8
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS=$2; shift 2 ;;
    -d|--duration) DURATION=${2%s}; shift 2 ;;
    -h|--help) sed -n '2,/^# shellcheck source=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
NCORES=$(nproc)
need wrk
need jq
build_release
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure NAME CMD...: runs the client, prints "rate server_cpu_s ops".
measure() {
  local name=$1 c0 c1 t0 t1 out=$WORK/$1.out
  shift
  c0=$(cpu_ticks "$RAMPART_PID"); t0=$(date +%s.%N)
  timeout $((DURATION + 30)) "$@" >"$out" 2>&1 || { echo "FAIL"; tail -3 "$out" >&2; return 0; }
  t1=$(date +%s.%N); c1=$(cpu_ticks "$RAMPART_PID")
  local rate ops
  case "$name" in
    h1) rate=$(awk '/^Requests\/sec:/ { print $2 }' "$out"); ops=$(awk '/requests in/ { print $1 }' "$out") ;;
    *) rate=$(jq -r '.requests.per_s' "$WORK/$name.json"); ops=$(jq -r '.requests.ok' "$WORK/$name.json") ;;
  esac
  awk -v r="$rate" -v o="$ops" -v c="$(( c1 - c0 ))" -v k="$CLK_TCK" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
    'BEGIN { printf "%.0f %.1f %.1f\n", r, 100 * c / k / w, (o > 0 ? 1e6 * c / k / o : 0) }'
}

# rampart_start_pinned: rampart --workers $w on cores $server_cores, on a free port.
rampart_start_pinned() {
  RAMPART_LOG=$WORK/rampart.log
  taskset -c "$server_cores" "$RAMPART_BIN" --listen 127.0.0.1:0 --root "$ROOT_DIR/www" \
    --dev-cert-dir "$WORK/certs" --workers "$w" --no-http3 >"$RAMPART_LOG" 2>&1 &
  RAMPART_PID=$!
  local i
  for i in $(seq 1 300); do
    grep -qs "listening addr=" "$RAMPART_LOG" && break
    kill -0 "$RAMPART_PID" 2>/dev/null || { cat "$RAMPART_LOG" >&2; return 1; }
    sleep 0.1
  done
  RAMPART_ADDR=$(grep -o "listening addr=[^ ]*" "$RAMPART_LOG" | head -1 | cut -d= -f2)
  RAMPART_URL="https://$RAMPART_ADDR"
  RAMPART_CA=$WORK/certs/ca.pem
}

declare -A RATE
rows=()
IFS=, read -r -a WLIST <<<"$WORKERS"
for w in "${WLIST[@]}"; do
  if [ "$w" -ge "$NCORES" ]; then
    rows+=("| $w | skipped: $NCORES cores leave the client none of its own | | | |"); continue
  fi
  server_cores="0-$((w - 1))"; client_cores="$w-$((NCORES - 1))"; c=$((NCORES - w))
  line="| $w |"
  for kind in h1 tls full; do
    rampart_start_pinned
    case "$kind" in
      h1) r=$(measure h1 taskset -c "$client_cores" wrk -t"$c" -c$((64 * c)) -d"${DURATION}s" "$RAMPART_URL/favicon.ico") ;;
      tls) r=$(measure tls taskset -c "$client_cores" "$LOADTEST_BIN" handshake --url "$RAMPART_URL/favicon.ico" \
               --ca "$RAMPART_CA" -c $((16 * c)) --threads "$c" --resume --duration "${DURATION}s" --quiet --json "$WORK/tls.json") ;;
      full) r=$(measure full taskset -c "$client_cores" "$LOADTEST_BIN" handshake --url "$RAMPART_URL/favicon.ico" \
               --ca "$RAMPART_CA" -c $((16 * c)) --threads "$c" --duration "${DURATION}s" --quiet --json "$WORK/full.json") ;;
    esac
    rampart_stop >/dev/null || true
    read -r rate cpu us <<<"$r"
    [ "$w" = "${WLIST[0]}" ] && RATE[$kind]=$rate
    eff=$(awk -v r="$rate" -v b="${RATE[$kind]:-0}" -v w="$w" -v w0="${WLIST[0]}" \
      'BEGIN { print (b > 0 ? sprintf("%.2f", r * w0 / (b * w)) : "-") }')
    line="$line $rate ($cpu% CPU, $us µs/op, efficiency $eff) |"
  done
  rows+=("$line")
done
echo "# rampart scaling on $NCORES cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), ${DURATION}s per measurement"
echo
echo "| workers | h1 req/s | resumed handshakes/s | full handshakes/s |"
echo "|---:|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "efficiency = rate / (workers x the first row's rate per worker); CPU = the server's, % of one core."
