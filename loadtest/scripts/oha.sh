#!/usr/bin/env bash
# oha.sh - rampart under oha (HTTP/1.1 and HTTP/2, certificates verified), README settings.
#
#   loadtest/scripts/oha.sh [-z 10s | -n 200000] [-c 64] [-p 10] [--passes h1,h2] [-- OHA ARGS...]
#
# Builds release (SKIP_BUILD=1 skips), starts rampart on a free 127.0.0.1 port with the
# demo SPA (extra server flags from $RAMPART_ARGS), and runs oha once per pass, each over
# the hashed JS bundle and `/` (oha --urls-from-file), verifying the certificate against
# the dev CA (--cacert; never --insecure):
#   h1   oha --http-version 1.1 -c CONNS -w https://127.0.0.1:PORT/...    (IP-address SAN)
#   h2   oha --http2 -c CONNS -p PARALLEL --ipv4 https://localhost:PORT/... (SNI, DNS SAN)
# oha asks for compressed responses by default, so the brotli variants are what is served.
# Installs oha with `cargo install oha --locked` when it is missing (several minutes).
# Then rampart gets SIGTERM and must exit 0.
#
# Options (or environment): -z duration (OHA_DURATION, 10s), -n requests (OHA_REQUESTS;
# replaces -z), -c (OHA_CONNECTIONS, 64), -p HTTP/2 streams per connection (OHA_PARALLEL,
# 10), --passes (OHA_PASSES, h1,h2); arguments after `--` go to oha.
#
# What the output means: per pass, oha's summary (success rate, requests/sec, latency
# percentiles), its status-code distribution and its error distribution, read from oha's
# JSON output (kept in $LOG_KEEP/oha-PASS.json, default target/loadtest). The script fails
# (exit 1) on any status that is not 2xx, any error, zero responses, or oha exiting
# non-zero; or when rampart logged a panic, counted a handshake failure, or did not exit 0.
# One error kind is oha's own: with -z, requests still in flight when the time is up are
# dropped and reported as "aborted due to deadline" (HTTP/1.1 waits for them with -w; on
# HTTP/2 oha drops them). At most one per concurrent request (c, or c x p) is tolerated and
# reported; rampart never sees anything wrong there (it counts them as served).
# Last line: "oha: PASS (...)" or "oha: FAIL (...)".
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

duration=${OHA_DURATION:-10s}
requests=${OHA_REQUESTS:-}
conns=${OHA_CONNECTIONS:-64}
parallel=${OHA_PARALLEL:-10}
passes=${OHA_PASSES:-h1,h2}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -z) duration=$2; requests=""; shift 2 ;;
    -n) requests=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -p) parallel=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^# shellcheck source=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "oha.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration" in *[0-9]) duration="${duration}s" ;; esac
if [ -n "$requests" ]; then
  mode=(-n "$requests"); label="-n $requests"; bound=600
else
  secs=$(echo "$duration" | awk '/ms$/ { print 1; exit } /m$/ { print $0 * 60; exit } /h$/ { print $0 * 3600; exit } { print $0 + 0 }')
  mode=(-z "$duration"); label="-z $duration"; bound=$((secs + 60))
fi

export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v oha >/dev/null 2>&1; then
  echo "oha is missing: running 'cargo install oha --locked' (this compiles oha; expect several minutes)" >&2
  cargo install oha --locked --quiet
fi
need python3 python3
need timeout coreutils
build_release
ASSET=$(cd "$ROOT_DIR/www" && ls assets/app.*.js | head -1)
[ -n "$ASSET" ] || { echo "no www/assets/app.*.js" >&2; exit 1; }
# shellcheck disable=SC2086
rampart_start ${RAMPART_ARGS:-}
mkdir -p "${LOG_KEEP:=$ROOT_DIR/target/loadtest}"
echo "oha: $(oha --version), rampart at $RAMPART_URL ($(nproc) cores), $label -c $conns (h2: -p $parallel)"

failed=0 summary=()
IFS=, read -r -a list <<<"$passes"
for p in "${list[@]}"; do
  case "$p" in
    h1) host=127.0.0.1; flags=(--http-version 1.1 -w); inflight=$conns ;;
    h2) host=localhost; flags=(--http2 -p "$parallel" --ipv4); inflight=$((conns * parallel)) ;;
    *) echo "unknown pass '$p' (h1, h2)"; failed=$((failed + 1)); continue ;;
  esac
  urls=$WORK/urls-$p.txt json=$LOG_KEEP/oha-$p.json
  printf 'https://%s:%s/%s\nhttps://%s:%s/\n' "$host" "$RAMPART_PORT" "$ASSET" "$host" "$RAMPART_PORT" >"$urls"
  echo "== $p: oha ${mode[*]} -c $conns ${flags[*]} --cacert CA --urls-from-file ($(paste -sd' ' "$urls"))"
  rc=0
  timeout "$bound" oha "${mode[@]}" -c "$conns" "${flags[@]}" --no-tui --output-format json \
    --cacert "$RAMPART_CA" "${extra[@]}" --urls-from-file "$urls" >"$json" 2>"$WORK/oha-$p.err" || rc=$?
  cat "$WORK/oha-$p.err"
  verdict=$(python3 - "$json" "$rc" "$inflight" "${requests:+count}" <<'PY'
import json, sys
path, rc, inflight, count_mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["count"]
try:
    d = json.load(open(path))
except Exception as e:  # oha died before writing its report
    print(f"  no JSON report ({e})", file=sys.stderr)
    print(f"oha exited {rc} without a report")
    sys.exit()
s, codes, errors = d["summary"], d.get("statusCodeDistribution", {}), d.get("errorDistribution", {})
lat = d.get("latencyPercentiles", {})
ms = lambda v: "-" if v is None else f"{v * 1000:.2f} ms"
n = sum(codes.values())
print(f"  success rate {s['successRate'] * 100:.2f}%, {s['requestsPerSec']:.0f} req/s, "
      f"{n} responses in {s['total']:.2f} s, {s.get('sizePerRequest') or 0} B/response", file=sys.stderr)
print("  latency p50 %s, p90 %s, p99 %s, p99.9 %s, slowest %s" % (
    ms(lat.get("p50")), ms(lat.get("p90")), ms(lat.get("p99")), ms(lat.get("p99.9")), ms(s.get("slowest"))),
    file=sys.stderr)
print(f"  status codes: {codes or '{}'}", file=sys.stderr)
print(f"  errors: {errors or '{}'}", file=sys.stderr)
problems = []
if rc != 0:
    problems.append(f"oha exited {rc}")
bad = {k: v for k, v in codes.items() if not k.startswith("2")}
if bad:
    problems.append(f"non-2xx statuses {bad}")
if n == 0:
    problems.append("no responses")
aborted = errors.get("aborted due to deadline", 0)
real = {k: v for k, v in errors.items() if k != "aborted due to deadline"}
if real:
    problems.append(f"errors {real}")
if aborted and (count_mode or aborted > inflight):
    problems.append(f"{aborted} aborted due to deadline (at most {inflight} in flight)")
if problems:
    print("; ".join(problems))
else:
    note = f", {aborted} in flight at the deadline dropped by oha" if aborted else ""
    print(f"ok {n} x 2xx, {s['requestsPerSec']:.0f} req/s{note}")
PY
)
  echo "-- $p: $verdict"
  case "$verdict" in
    ok*) summary+=("$p ${verdict#ok }") ;;
    *) summary+=("$p FAILED: $verdict"); failed=$((failed + 1)) ;;
  esac
done

# oha completes every handshake before its requests and verifies the certificate, so no
# handshake failure of any class is expected.
stop_and_check oha 0
joined=$(printf '%s; ' "${summary[@]}"); joined=${joined%; }
if [ "$failed" = 0 ]; then
  echo "oha: PASS ($joined; no errors, all 2xx; $label -c $conns)"
else
  echo "oha: FAIL ($joined)"
  exit 1
fi
