#!/usr/bin/env bash
# h2load.sh - rampart under nghttp2's h2load (HTTP/2 multiplexed over TLS), README settings.
#
#   loadtest/scripts/h2load.sh [-n 200000 | -D 10] [-c 64] [-m 10] [-t 1] [--h1] [-- H2LOAD ARGS...]
#
# Builds release (SKIP_BUILD=1 skips), starts rampart on a free 127.0.0.1 port with the
# demo SPA (extra server flags from $RAMPART_ARGS), and runs
#   h2load -n N -c CONNS -m STREAMS -t THREADS https://127.0.0.1:PORT/assets/app.<hash>.js https://127.0.0.1:PORT/
# (h2load alternates between the two URIs: the hashed JS bundle and index.html). With -D
# it runs for that many seconds instead of a request count. --h1 adds a second pass over
# HTTP/1.1 (h2load --h1, one request at a time per connection: -m 1). Then rampart gets
# SIGTERM and must exit 0.
#
# Options (or environment): -n (H2LOAD_N, 200000), -D seconds (H2LOAD_DURATION; overrides
# -n), -c (H2LOAD_CONNECTIONS, 64), -m (H2LOAD_STREAMS, 10), -t (H2LOAD_THREADS, 1),
# --h1 (H2LOAD_H1=1); arguments after `--` go to h2load.
# h2load cannot verify certificates: it accepts any (stacks.sh and oha.sh verify).
#
# What the output means: "requests: T total, S started, D done, OK succeeded, F failed,
# E errored, X timeout" - failed is a response that did not complete (stream reset,
# connection lost), errored a request that could not be sent, timeout one that hit a
# deadline; "status codes: A 2xx, B 3xx, C 4xx, D 5xx". The script fails (exit 1) unless
# failed, errored and timeout are 0, every done request succeeded with a 2xx, and (count
# mode) done equals -n; or when rampart logged a panic, counted an alert or protocol error
# or an unfinished handshake, or did not exit 0. In duration mode "started" exceeds "done":
# requests in flight when the time ends are dropped by h2load, not failed.
# Last line: "h2load: PASS (...)" or "h2load: FAIL (...)".
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

n=${H2LOAD_N:-200000}
dur=${H2LOAD_DURATION:-}
conns=${H2LOAD_CONNECTIONS:-64}
streams=${H2LOAD_STREAMS:-10}
threads=${H2LOAD_THREADS:-1}
h1=${H2LOAD_H1:-}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; dur=""; shift 2 ;;
    -D) dur=${2%s}; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -m) streams=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --h1) h1=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^# shellcheck source=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "h2load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$dur" ]; then
  mode=(-D "$dur"); label="-D ${dur}s"; bound=$((dur + 60))
else
  mode=(-n "$n"); label="-n $n"; bound=300
fi

need h2load nghttp2-client
need timeout coreutils
build_release
ASSET=$(cd "$ROOT_DIR/www" && ls assets/app.*.js | head -1)
[ -n "$ASSET" ] || { echo "no www/assets/app.*.js" >&2; exit 1; }
# shellcheck disable=SC2086
rampart_start ${RAMPART_ARGS:-}
echo "h2load: rampart at $RAMPART_URL ($(nproc) cores), $label -c $conns -m $streams -t $threads"

failed=0 summary=()
passes=(h2)
[ -z "$h1" ] || passes+=(h1)
for p in "${passes[@]}"; do
  flags=(-m "$streams")
  [ "$p" = h1 ] && flags=(--h1 -m 1)
  echo "== $p"
  out=$WORK/h2load-$p.out rc=0
  timeout "$bound" h2load "${mode[@]}" -c "$conns" -t "$threads" "${flags[@]}" "${extra[@]}" \
    "https://127.0.0.1:$RAMPART_PORT/$ASSET" "https://127.0.0.1:$RAMPART_PORT/" \
    >"$out" 2>&1 || rc=$?
  grep -v '^progress: ' "$out"
  line=$(grep '^requests: ' "$out" || true)
  codes=$(grep '^status codes: ' "$out" || true)
  rps=$(awk '/^finished in/ { print $4; exit }' "$out" | tr -d ,)
  read -r total _ _ _ ndone _ ok _ fail _ err _ tmo _ <<<"${line#requests: }" || true
  read -r c2 _ c3 _ c4 _ c5 _ <<<"${codes#status codes: }" || true
  want_proto=h2; [ "$p" = h1 ] && want_proto=http/1.1
  verdict=ok
  if [ "$rc" != 0 ]; then verdict="h2load exited $rc"
  elif [ -z "$line" ] || [ -z "$codes" ]; then verdict="no summary in h2load's output"
  elif ! grep -q "^Application protocol: $want_proto\$" "$out"; then verdict="did not negotiate $want_proto"
  elif [ "$fail" != 0 ] || [ "$err" != 0 ] || [ "$tmo" != 0 ]; then verdict="$fail failed, $err errored, $tmo timeout"
  elif [ "$ok" != "$ndone" ] || [ "$ndone" != "$total" ] || [ "$ndone" = 0 ]; then verdict="$ok succeeded of $ndone done, $total total"
  elif [ "$c2" != "$ndone" ] || [ "$c3" != 0 ] || [ "$c4" != 0 ] || [ "$c5" != 0 ]; then verdict="not all 2xx ($codes)"
  elif [ -z "$dur" ] && [ "$ndone" != "$n" ]; then verdict="$ndone done, not $n"
  fi
  echo "-- $p: $verdict"
  if [ "$verdict" = ok ]; then summary+=("$p $ndone requests all 2xx, ${rps:-?} req/s"); else summary+=("$p FAILED: $verdict"); failed=$((failed + 1)); fi
done

# h2load completes every handshake before its requests and closes its connections at the
# end, so no handshake failure of any class is expected.
stop_and_check h2load 0
joined=$(printf '%s; ' "${summary[@]}"); joined=${joined%; }
if [ "$failed" = 0 ]; then
  echo "h2load: PASS ($joined; 0 failed, 0 errored; $label -c $conns -m $streams)"
else
  echo "h2load: FAIL ($joined)"
  exit 1
fi
