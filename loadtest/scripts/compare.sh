#!/usr/bin/env bash
# compare.sh - rampart vs nginx vs static-web-server (SWS): same machine, same core, same
# certificate, same bytes.
#
#   loadtest/scripts/compare.sh [--quick] [-d SECONDS] [-r ROUNDS] [-s SCENARIOS] [--servers LIST]
#
# Installs what is missing (Debian packages nginx, libnginx-mod-http-brotli-static, brotli,
# wrk, nghttp2-client, jq, curl; `cargo install static-web-server --locked`, which compiles
# for ~5 minutes and is started first, in the background), builds rampart and loadtest
# (SKIP_BUILD=1 skips), and measures each server in turn on loopback:
#
#   - every server is pinned to one core (`taskset -c $COMPARE_SERVER_CORE`, default 0) with
#     one worker: nginx `worker_processes 1`, rampart `--workers 1`, SWS `-n 1` (one tokio
#     worker: SWS sizes its runtime from the cores it may run on, which is 1);
#   - the load generator is pinned to another core (COMPARE_CLIENT_CORE, default 1) and runs
#     one thread (wrk -t1, h2load -t1, loadtest --threads 1);
#   - a fresh server process for every measurement; ROUNDS interleaved rounds (round r runs
#     every scenario on every server, the server order rotated by r); the table has medians.
#
# Scenarios (-s, comma-separated; default all):
#   h1-small    HTTP/1.1 keep-alive, 64 connections, GET /favicon.ico (771 B, identity):
#               wrk -t1 -c64 --latency -> req/s and p99
#   h1-gzip     HTTP/1.1 keep-alive, 64 connections, /assets/vendor.<hash>.js (92 KB) with
#               Accept-Encoding: gzip (the same precompressed .gz bytes from every server) -> req/s
#   h2-small    HTTP/2, 64 connections x 10 streams, /favicon.ico: h2load -c64 -m10 -> req/s
#   tls-full    full TLS 1.3 handshakes, a new connection per request, no resumption:
#               loadtest handshake -c 16 -> handshakes/s (client JSON: 0 resumed)
#   tls-resume  the same with session resumption (--resume; client JSON: ~all resumed)
#   tls-full-pq full TLS 1.3 handshakes offering only X25519MLKEM768 (the post-quantum hybrid
#               browsers send first): loadtest handshake --kx x25519mlkem768 (rampart only:
#               Debian's nginx and OpenSSL 3.0 lack ML-KEM)
#   big         32 MiB random file (big.bin), HTTP/1.1, 4 keep-alive connections: wrk -t1 -c4
#               -> MB/s (10^6 bytes; wrk decrypts with less CPU than loadtest bench does)
#   idle        memory per idle TLS keep-alive connection: loadtest idle -c 5000; the server's
#               RSS (all its processes) before, and while all are open -> bytes per connection
#   spa         SPA page loads: loadtest storm --users 16 --mix h2 --kinds tls13:1, a new
#               (resumed) HTTP/2 connection per page load fetching index.html and every asset,
#               every byte verified -> page loads/s
#   h3-small    HTTP/3, 4 QUIC connections x 32 streams, /favicon.ico: loadtest bench --http3
#               -c 4 -m 32 -> req/s
#   h3-big      the 32 MiB file over HTTP/3, 4 QUIC connections: loadtest bench --http3 -c 4
#               -m 1 -> MB/s
#   h3-full     full QUIC handshakes, a new connection per request: loadtest handshake --http3
#               -c 16 -> handshakes/s (0 resumed)
#   h3-resume   the same resumed (--resume; resumed = no certificate verified: ~all)
#   The h3-* rows run on rampart and Caddy only (`--servers caddy,rampart`; Debian's caddy,
#   installed when missing, serves h1/h2/h3 with the same certificate, files and core,
#   GOMAXPROCS=1; Caddyfile: loadtest/compare/Caddyfile.in); the other rows skip Caddy.
# and, after the rounds, the cryptographic floor on the server's core (COMPARE_FLOOR=0 skips):
# `loadtest floor` (the aws-lc-rs primitives rampart's rustls calls: ECDSA P-256 sign, X25519
# key pair and agreement, ML-KEM-768 encapsulation, AES-128-GCM on 16 KiB records) and
# `openssl speed` (ecdsap256, ecdhx25519, aes-128-gcm); full handshake floor = signature +
# key pair + agreement (openssl: signature + 2 X25519 operations), resumed = key pair +
# agreement, large file = the cipher per MB; the report divides the servers' CPU per
# handshake and per MB by them;
# and a scaling check (COMPARE_SCALING=0 skips): rampart --workers 2
# unpinned vs --workers 1 pinned, h1-small; the ratio of the req/s medians.
#
# Server CPU: utime+stime from /proc/PID/stat (nginx: master + worker) before and after each
# measurement -> CPU% (cpu seconds / wall seconds) and CPU µs per operation. A scenario in
# which a server is not near 100% CPU (below COMPARE_CPU_BOUND, default 85) is client-bound:
# its rampart/peer ratio is then the CPU cost ratio peer_us/rampart_us instead (marked *).
# Every ratio reads "above 1 = rampart better".
#
# Any non-2xx response, socket error, TLS error, h2load failed/errored request, or loadtest
# error fails the run (exit 1, after the table, the cell shows FAIL).
#
# Options (or environment):
#   --quick (QUICK=1)        2 s measurements, 1 round, 1000 idle connections (a smoke test)
#   -d SECONDS (COMPARE_DURATION, 8)   seconds per measurement
#   -r ROUNDS (COMPARE_ROUNDS, 3)
#   -s LIST (COMPARE_SCENARIOS, all)   --servers LIST (COMPARE_SERVERS, nginx,sws,rampart)
#   COMPARE_IDLE_CONNS (5000), COMPARE_IDLE_HOLD (4 s after all are open)
#   COMPARE_SITE_RULES=FILE (unset): copied into the served tree as `_headers` (rampart applies
#   it: loadtest/compare/site-rules/_headers has 20 rules, one of them for every path), to
#   measure the request path with site rules in force; its `/*` block's headers are given to
#   nginx (add_header) and SWS ([[advanced.headers]]) too, so all three send them
#   COMPARE_NICE (unset; e.g. -10: servers and clients get priority over other work on a busy
#   machine; only against work in the same cgroup, so it may not help on a shared VM)
#   COMPARE_SERVER_CORE (0), COMPARE_CLIENT_CORE (1), COMPARE_PORT_BASE (19441: nginx,
#   SWS and rampart use BASE, BASE+1, BASE+2), SWS_BIN, NGINX_BIN
#
# Output: the markdown report, printed and written to loadtest/results/compare-DATE.md (the
# table, per-round figures, versions, the commands); logs under target/loadtest/compare/.
# Time: default settings measure for ~11 minutes (8 scenarios x 3 servers x 3 rounds x 8 s,
# the scaling check 6 x 8 s, start-ups; 634 s on a 2-core VM); on a fresh machine add the SWS
# compile (the long pole: ~5-6 min on 2 idle cores, 11 min on a busy machine), which runs
# alongside apt and rampart's release build.
# Every measurement also records the load generator's CPU and "other CPU" (busy time used by
# neither server nor client): the report warns when the machine was busy (load > 1).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

T_START=$(date +%s)
INVOCATION="loadtest/scripts/compare.sh${*:+ $*}"

DURATION=${COMPARE_DURATION:-8}
ROUNDS=${COMPARE_ROUNDS:-3}
IDLE_CONNS=${COMPARE_IDLE_CONNS:-5000}
IDLE_HOLD=${COMPARE_IDLE_HOLD:-4}
SCENARIOS=${COMPARE_SCENARIOS:-h1-small,h1-gzip,h2-small,tls-full,tls-resume,tls-full-pq,big,idle,spa}
SERVERS=${COMPARE_SERVERS:-nginx,sws,rampart}
SCALING=${COMPARE_SCALING:-1}
FLOOR=${COMPARE_FLOOR:-1}
SERVER_CORE=${COMPARE_SERVER_CORE:-0}
CLIENT_CORE=${COMPARE_CLIENT_CORE:-1}
PORT_BASE=${COMPARE_PORT_BASE:-19441}
CPU_BOUND=${COMPARE_CPU_BOUND:-85}
# On a shared machine, COMPARE_NICE=-10 (root) gives servers and clients the larger share of
# their cores against other work; the report's "other CPU" shows what was left to others.
NICE=(env)
[ -z "${COMPARE_NICE:-}" ] || NICE=(nice -n "$COMPARE_NICE")
if [ -n "${QUICK:-}" ]; then DURATION=${COMPARE_DURATION:-2}; ROUNDS=${COMPARE_ROUNDS:-1}; IDLE_CONNS=${COMPARE_IDLE_CONNS:-1000}; IDLE_HOLD=${COMPARE_IDLE_HOLD:-2}; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=2; ROUNDS=1; IDLE_CONNS=1000; IDLE_HOLD=2; shift ;;
    -d|--duration) DURATION=${2%s}; shift 2 ;;
    -r|--rounds) ROUNDS=$2; shift 2 ;;
    -s|--scenarios) SCENARIOS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^# shellcheck source=/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$DURATION" in ''|*[!0-9]*) echo "compare.sh: duration must be whole seconds, got '$DURATION'" >&2; exit 2 ;; esac
IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"
IFS=, read -r -a SRV_LIST <<<"$SERVERS"
for s in "${SCEN_LIST[@]}"; do
  case "$s" in h1-small|h1-gzip|h2-small|tls-full|tls-resume|tls-full-pq|big|idle|spa|h3-small|h3-big|h3-full|h3-resume) ;;
    *) echo "compare.sh: unknown scenario '$s'" >&2; exit 2 ;; esac
done
for s in "${SRV_LIST[@]}"; do
  case "$s" in nginx|sws|rampart|caddy) ;; *) echo "compare.sh: unknown server '$s'" >&2; exit 2 ;; esac
done

LOGDIR=$ROOT_DIR/target/loadtest/compare
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR" "$ROOT_DIR/loadtest/results"
log() { echo "compare: $*" >&2; }

# ---------------------------------------------------------------- installs
SWS_BIN=${SWS_BIN:-$(command -v static-web-server || echo "${CARGO_HOME:-$HOME/.cargo}/bin/static-web-server")}
SWS_INSTALL_PID=""
if [[ " ${SRV_LIST[*]} " == *" sws "* ]] && [ ! -x "$SWS_BIN" ]; then
  log "installing static-web-server (cargo install --locked, ~5 min; log: $LOGDIR/sws-install.log)"
  timeout 1800 cargo install static-web-server --locked >"$LOGDIR/sws-install.log" 2>&1 &
  SWS_INSTALL_PID=$!
fi

SRV_PID="" SRV_NAME=""
srv_kill() { # SIGKILL the server and its children (nginx workers outlive a killed master)
  local p
  for p in $(srv_pids); do kill -9 "$p" 2>/dev/null || true; done
}
compare_cleanup() {
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then srv_kill; fi
  if [ -n "$SWS_INSTALL_PID" ] && kill -0 "$SWS_INSTALL_PID" 2>/dev/null; then
    kill "$SWS_INSTALL_PID" 2>/dev/null || true
  fi
  cleanup
}
trap compare_cleanup EXIT

apt_install() { # PACKAGE... (keeps a package's service from being started: nginx would bind :80)
  local sudo="" prc=/usr/sbin/policy-rc.d made=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ ! -e "$prc" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$prc" >/dev/null && $sudo chmod +x "$prc" && made=1
  fi
  [ -n "${APT_UPDATED:-}" ] || { $sudo apt-get update -qq; APT_UPDATED=1; }
  local rc=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  [ -z "$made" ] || $sudo rm -f "$prc"
  return $rc
}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
if [[ " ${SRV_LIST[*]} " == *" nginx "* ]]; then
  if [ ! -x "$NGINX_BIN" ]; then log "installing nginx"; apt_install nginx; fi
  if ! ls /usr/lib/nginx/modules/ngx_http_brotli_static_module.so >/dev/null 2>&1; then
    apt_install libnginx-mod-http-brotli-static || log "no brotli module for nginx: it serves gzip to br clients"
  fi
fi
CADDY_BIN=${CADDY_BIN:-$(command -v caddy || echo /usr/bin/caddy)}
if [[ " ${SRV_LIST[*]} " == *" caddy "* ]] && [ ! -x "$CADDY_BIN" ]; then
  log "installing caddy"; apt_install caddy
fi
command -v brotli >/dev/null || apt_install brotli || log "no brotli command: no .br copies"
need wrk wrk
need h2load nghttp2-client
need jq jq
need curl curl
need taskset util-linux
need timeout coreutils
build_release
# Private copies: other work may rebuild target/release while this runs.
mkdir -p "$WORK/bin"
cp "$RAMPART_BIN" "$WORK/bin/rampart"; cp "$LOADTEST_BIN" "$WORK/bin/loadtest"
RAMPART=$WORK/bin/rampart LOADTEST=$WORK/bin/loadtest
if [ -n "$SWS_INSTALL_PID" ]; then
  log "waiting for the static-web-server build"
  wait "$SWS_INSTALL_PID" || { tail -20 "$LOGDIR/sws-install.log" >&2; echo "cargo install static-web-server failed" >&2; exit 1; }
  SWS_INSTALL_PID=""
  [ -x "$SWS_BIN" ] || SWS_BIN=$(command -v static-web-server)
fi
T_INSTALLED=$(date +%s)

NCORES=$(nproc)
[ "$NCORES" -ge 2 ] || { echo "compare.sh needs 2 cores (server core + client core), have $NCORES" >&2; exit 2; }
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- the served tree
WWW=$WORK/www
cp -a "$ROOT_DIR/www" "$WWW"
head -c $((32 * 1024 * 1024)) /dev/urandom >"$WWW/big.bin"
# SWS serves its --page-fallback file trimmed of surrounding whitespace; without a trailing
# newline, index.html is the same bytes at / and at every SPA route on all three servers.
index=$(<"$WWW/index.html")
printf '%s' "$index" >"$WWW/index.html"
# Precompressed copies for every server (rampart uses .gz/.br next to a file after checking
# them; nginx gzip_static/brotli_static; SWS --compression-static): the same bytes from all
# three. Text-like files of 256 bytes or more (rampart's rule), kept only when smaller.
while IFS= read -r -d '' f; do
  size=$(stat -c %s "$f")
  [ "$size" -ge 256 ] || continue
  gzip -9 -n -c "$f" >"$f.gz"
  [ "$(stat -c %s "$f.gz")" -lt "$size" ] || rm -f "$f.gz"
  if command -v brotli >/dev/null; then
    brotli -q 11 -c "$f" >"$f.br"
    [ "$(stat -c %s "$f.br")" -lt "$size" ] || rm -f "$f.br"
  fi
done < <(find "$WWW" -type f \( -name '*.html' -o -name '*.js' -o -name '*.mjs' -o -name '*.css' \
  -o -name '*.json' -o -name '*.webmanifest' -o -name '*.svg' -o -name '*.txt' -o -name '*.xml' \
  -o -name '*.wasm' -o -name '*.ico' \) -print0)
# The site-wide headers of the rules file (its `/*` block), as `Name|value` lines: nginx and
# SWS send them too, so that all three servers answer with the same header block.
SITE_HEADERS=""
if [ -n "${COMPARE_SITE_RULES:-}" ]; then
  cp "$COMPARE_SITE_RULES" "$WWW/_headers"
  SITE_HEADERS=$(awk '/^\/\*[[:space:]]*$/ { on = 1; next } /^[^[:space:]#]/ { on = 0 }
    on && /^[[:space:]]+[A-Za-z-]+:/ { sub(/^[[:space:]]+/, ""); i = index($0, ":");
      v = substr($0, i + 1); sub(/^[[:space:]]+/, "", v); print substr($0, 1, i - 1) "|" v }' "$COMPARE_SITE_RULES")
fi
SMALL=/favicon.ico
VENDOR=""
for f in "$WWW"/assets/vendor.*.js; do [ -f "$f" ] && VENDOR=${f#"$WWW"} && break; done
[ -n "$VENDOR" ] || { echo "no www/assets/vendor.*.js" >&2; exit 1; }

# rampart creates the development CA and leaf once; all three servers use that leaf + key.
CERTS=$WORK/certs CA=$WORK/certs/ca.pem
"$RAMPART" --listen 127.0.0.1:0 --root "$WWW" --dev-cert-dir "$CERTS" --workers 1 >"$WORK/certgen.log" 2>&1 &
gen=$!
for i in $(seq 1 300); do
  [ -s "$CERTS/key.pem" ] && grep -q "listening addr=" "$WORK/certgen.log" && break
  kill -0 "$gen" 2>/dev/null || { cat "$WORK/certgen.log" >&2; exit 1; }
  [ "$i" = 300 ] && { cat "$WORK/certgen.log" >&2; echo "rampart did not start" >&2; exit 1; }
  sleep 0.1
done
kill -TERM "$gen"; wait "$gen" || true
CERT=$CERTS/cert.pem KEY=$CERTS/key.pem

port_of() { case "$1" in nginx) echo "$PORT_BASE" ;; sws) echo $((PORT_BASE + 1)) ;; rampart) echo $((PORT_BASE + 2)) ;; caddy) echo $((PORT_BASE + 3)) ;; esac; }
for s in nginx sws rampart caddy; do
  p=$(port_of "$s")
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is in use (set COMPARE_PORT_BASE)" >&2; exit 1
  fi
done

# ---------------------------------------------------------------- server configs
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')
nginx_conf() { # WORKERS -> $WORK/nginx-WORKERS/nginx.conf
  local w=$1 dir=$WORK/nginx-$1 v h2l="" h2on="" mods="" br=""
  mkdir -p "$dir/tmp"
  v=${NGINX_VERSION#nginx/}
  # `http2 on` exists from 1.25.1; before that it is a listen parameter.
  if printf '%s\n1.25.1\n' "$v" | sort -V -C; then h2l=" http2"; else h2on="http2 on;"; fi
  if [ -f /usr/lib/nginx/modules/ngx_http_brotli_static_module.so ]; then
    mods="load_module /usr/lib/nginx/modules/ngx_http_brotli_static_module.so;"
    br="brotli_static on;"
  fi
  sed -e "s|@PREFIX@|$dir|g" -e "s|@WORKERS@|$w|g" -e "s|@PORT@|$(port_of nginx)|g" \
      -e "s|@ROOT@|$WWW|g" -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" \
      -e "s|@LISTEN_HTTP2@|$h2l|g" -e "s|@HTTP2_ON@|$h2on|g" -e "s|@LOAD_MODULES@|$mods|g" \
      -e "s|@BROTLI@|$br|g" "$ROOT_DIR/loadtest/compare/nginx.conf.in" >"$dir/nginx.conf.base"
  # The rules' site-wide headers (none without COMPARE_SITE_RULES); a rule's HSTS replaces
  # the default's line.
  local extra=$dir/site-headers.conf
  : >"$extra"
  while IFS='|' read -r name value; do
    [ -n "$name" ] || continue
    printf '            add_header %s "%s" always;\n' "$name" "${value//\"/\\\"}" >>"$extra"
  done <<<"$SITE_HEADERS"
  if grep -qi '^ *add_header strict-transport-security' "$extra"; then
    sed -i '/add_header Strict-Transport-Security "max-age=31536000" always;/d' "$dir/nginx.conf.base"
  fi
  awk -v extra="$extra" '/@SITE_HEADERS@/ { while ((getline l < extra) > 0) print l; close(extra); next } { print }' \
    "$dir/nginx.conf.base" >"$dir/nginx.conf"
  "$NGINX_BIN" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
    || { cat "$dir/error.log" >&2; echo "nginx -t failed for $dir/nginx.conf" >&2; return 1; }
}
if [[ " ${SRV_LIST[*]} " == *" nginx "* ]]; then
  nginx_conf 1
  cp "$WORK/nginx-1/nginx.conf" "$LOGDIR/nginx.conf"
fi
if [[ " ${SRV_LIST[*]} " == *" sws "* ]]; then
  sed -e "s|@ROOT@|$WWW|g" "$ROOT_DIR/loadtest/compare/sws.toml.in" >"$WORK/sws.toml"
  if [ -n "$SITE_HEADERS" ]; then
    { printf '\n# The site-wide headers of COMPARE_SITE_RULES (compare.sh).\n[[advanced.headers]]\nsource = "**"\nheaders = { '
      sep=""
      while IFS='|' read -r name value; do
        [ -n "$name" ] || continue
        printf '%s%s = "%s"' "$sep" "$name" "${value//\"/\\\"}"
        sep=", "
      done <<<"$SITE_HEADERS"
      printf ' }\n'
    } >>"$WORK/sws.toml"
  fi
  cp "$WORK/sws.toml" "$LOGDIR/sws.toml"
fi

if [[ " ${SRV_LIST[*]} " == *" caddy "* ]]; then
  sed -e "s|@PORT@|$(port_of caddy)|g" -e "s|@ROOT@|$WWW|g" -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" \
    "$ROOT_DIR/loadtest/compare/Caddyfile.in" >"$WORK/Caddyfile"
  cp "$WORK/Caddyfile" "$LOGDIR/Caddyfile"
fi
# runs_on SCENARIO SERVER: HTTP/3 rows compare rampart with Caddy only; Caddy runs only those.
runs_on() {
  case "$1:$2" in h3-*:rampart|h3-*:caddy|tls-full-pq:rampart) return 0 ;; h3-*:*|tls-full-pq:*|*:caddy) return 1 ;; *) return 0 ;; esac
}

# srv_cmd NAME WORKERS: the server's command line (without taskset).
srv_cmd() {
  local name=$1 w=$2 port
  port=$(port_of "$name")
  case "$name" in
    nginx) nginx_conf "$w" >/dev/null
           SRV_ARGV=("$NGINX_BIN" -p "$WORK/nginx-$w/" -c "$WORK/nginx-$w/nginx.conf" -e "$WORK/nginx-$w/error.log") ;;
    sws) SRV_ARGV=("$SWS_BIN" --config-file "$WORK/sws.toml" --host 127.0.0.1 --port "$port" --root "$WWW"
                   --http2 true --http2-tls-cert "$CERT" --http2-tls-key "$KEY"
                   --page-fallback "$WWW/index.html" --compression false --compression-static true
                   --security-headers false --cache-control-headers false --directory-listing false
                   --ignore-hidden-files false --log-level error --threads-multiplier "$w") ;;
    caddy) SRV_ARGV=(env GOMAXPROCS="$w" HOME="$WORK" XDG_DATA_HOME="$WORK/caddy-data" XDG_CONFIG_HOME="$WORK/caddy-config"
                     "$CADDY_BIN" run --config "$WORK/Caddyfile" --adapter caddyfile) ;;
    rampart) SRV_ARGV=("$RAMPART" --listen "127.0.0.1:$port" --root "$WWW" --cert "$CERT" --key "$KEY"
                       --workers "$w") ;;
  esac
}

# srv_start NAME [WORKERS] [pin|nopin]: a fresh server; sets SRV_PID, SRV_URL, SRV_LOG.
srv_start() {
  local name=$1 w=${2:-1} pin=${3:-pin} i
  srv_cmd "$name" "$w"
  SRV_NAME=$name SRV_LOG=$WORK/$name.log
  SRV_URL="https://127.0.0.1:$(port_of "$name")"
  if [ "$pin" = pin ]; then
    (cd "$WORK" && exec "${NICE[@]}" taskset -c "$SERVER_CORE" "${SRV_ARGV[@]}") >"$SRV_LOG" 2>&1 &
  else
    (cd "$WORK" && exec "${NICE[@]}" "${SRV_ARGV[@]}") >"$SRV_LOG" 2>&1 &
  fi
  SRV_PID=$!
  for i in $(seq 1 300); do
    if curl -s -o /dev/null --max-time 2 --cacert "$CA" "$SRV_URL$SMALL"; then break; fi
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      cat "$SRV_LOG" >&2; echo "$name exited during start-up" >&2; return 1
    fi
    [ "$i" = 300 ] && { cat "$SRV_LOG" >&2; echo "$name not answering after 30 s" >&2; return 1; }
    sleep 0.1
  done
  # nginx: wait until the workers are up (the answer above came from one).
  if [ "$name" = nginx ]; then
    for i in $(seq 1 50); do [ "$(srv_pids | wc -l)" -gt "$w" ] && break; sleep 0.1; done
  fi
}

# srv_stop: SIGTERM, bounded wait; rampart must exit 0 (its counters line goes to the log).
srv_stop() {
  local status=0 i
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for i in $(seq 1 200); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    [ "$i" = 200 ] && { log "$SRV_NAME still running 20 s after SIGTERM: SIGKILL"; srv_kill; }
    sleep 0.1
  done
  wait "$SRV_PID" 2>/dev/null || status=$?
  SRV_PID=""
  cat "$SRV_LOG" >>"$LOGDIR/$SRV_NAME.log"
  if [ "$SRV_NAME" = rampart ]; then
    SRV_COUNTERS=$(grep -o 'counters .*' "$SRV_LOG" | tail -1 || true)
    if grep -q panicked "$SRV_LOG"; then log "rampart logged a panic"; return 1; fi
    [ "$status" = 0 ] || { log "rampart exit status $status"; return 1; }
  fi
  return 0
}

srv_pids() { # the server's processes: the one started, and its children (nginx workers)
  [ -n "$SRV_PID" ] || return 0
  echo "$SRV_PID"
  ps -o pid= --ppid "$SRV_PID" 2>/dev/null | tr -d ' ' || true
}
cpu_ticks() { # utime + stime of all server processes, in clock ticks
  local t=0 p s
  for p in $(srv_pids); do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
rss_kib() { # VmRSS of all server processes
  local t=0 p v
  for p in $(srv_pids); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
now() { date +%s.%N; }
children_s() { # CH_S = CPU seconds of this shell's finished children (the load generator);
  # `times` must run in this shell, not in a $(...) subshell (a fork starts from zero).
  times >"$WORK/times"
  CH_S=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%.3f", s }' "$WORK/times")
}
busy_ticks() { # busy clock ticks of all cores (user nice system irq softirq steal)
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# ---------------------------------------------------------------- one measurement
# measure SCENARIO ROUND [LABEL]: runs the scenario against the started server; appends
# "scenario server round value ops cpu_s wall_s p99_ms status detail" to $RESULTS.
RESULTS=$WORK/results.tsv
: >"$RESULTS"
FAILURES=()
CL=("${NICE[@]}" taskset -c "$CLIENT_CORE")
bound=$((DURATION + 60))

measure() {
  local sc=$1 round=$2 label=${3:-$SRV_NAME}
  local out=$WORK/out-$sc-$label-$round json=$WORK/out-$sc-$label-$round.json
  local t0 t1 c0 c1 b0 b1 k0 k1 rc=0 value="" ops="" p99="-" status=ok detail=""
  rm -f "$json"
  if [ "$sc" = idle ]; then
    measure_idle "$round" "$label"; return
  fi
  children_s; k0=$CH_S; b0=$(busy_ticks); c0=$(cpu_ticks); t0=$(now)
  case "$sc" in
    h1-small|h1-gzip)
      local hdr=() path=$SMALL
      [ "$sc" = h1-gzip ] && { hdr=(-H "Accept-Encoding: gzip"); path=$VENDOR; }
      timeout "$bound" "${CL[@]}" wrk -t1 -c64 -d"${DURATION}s" --latency "${hdr[@]}" "$SRV_URL$path" >"$out" 2>&1 || rc=$? ;;
    h2-small)
      timeout "$bound" "${CL[@]}" h2load -t1 -c64 -m10 -D "$DURATION" "$SRV_URL$SMALL" >"$out" 2>&1 || rc=$? ;;
    h3-small|h3-big)
      local path=$SMALL m=32; [ "$sc" = h3-big ] && { path=/big.bin; m=1; }
      timeout "$bound" "${CL[@]}" "$LOADTEST" bench --http3 --url "$SRV_URL$path" --ca "$CA" -c 4 -m "$m" \
        --duration "${DURATION}s" --threads 1 --quiet --json "$json" >"$out" 2>&1 || rc=$? ;;
    h3-full|h3-resume)
      local res=(); [ "$sc" = h3-resume ] && res=(--resume)
      timeout "$bound" "${CL[@]}" "$LOADTEST" handshake --http3 --url "$SRV_URL$SMALL" --ca "$CA" -c 16 "${res[@]}" \
        --duration "${DURATION}s" --threads 1 --quiet --json "$json" >"$out" 2>&1 || rc=$? ;;
    tls-full|tls-resume|tls-full-pq)
      local res=(); [ "$sc" = tls-resume ] && res=(--resume); [ "$sc" = tls-full-pq ] && res=(--kx x25519mlkem768)
      timeout "$bound" "${CL[@]}" "$LOADTEST" handshake --url "$SRV_URL$SMALL" --ca "$CA" -c 16 "${res[@]}" \
        --duration "${DURATION}s" --threads 1 --quiet --json "$json" >"$out" 2>&1 || rc=$? ;;
    big)
      timeout "$bound" "${CL[@]}" wrk -t1 -c4 -d"${DURATION}s" "$SRV_URL/big.bin" >"$out" 2>&1 || rc=$? ;;
    spa)
      timeout "$bound" "${CL[@]}" "$LOADTEST" storm --url "$SRV_URL/" --ca "$CA" --root "$WWW" --users 16 \
        --duration "${DURATION}s" --mix h2 --kinds tls13:1 --abort-share 0 --reuse 0 --threads 1 \
        --quiet --json "$json" >"$out" 2>&1 || rc=$? ;;
  esac
  t1=$(now); c1=$(cpu_ticks); b1=$(busy_ticks); children_s; k1=$CH_S
  # The load generator's CPU, and what neither it nor the server used (other work on the
  # machine: it should be ~0 for a valid figure), in seconds.
  MEAS_CLIENT_S=$(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.3f", b - a }')
  MEAS_FOREIGN_S=$(awk -v b0="$b0" -v b1="$b1" -v c0="$c0" -v c1="$c1" -v k="$CLK_TCK" -v cl="$MEAS_CLIENT_S" \
    'BEGIN { f = (b1 - b0 - (c1 - c0)) / k - cl; printf "%.3f", (f > 0 ? f : 0) }')
  case "$sc" in
    h1-small|h1-gzip|big)
      local non2xx sockerr
      ops=$(awk '/ requests in / { print $1; exit }' "$out")
      value=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
      if [ "$sc" = big ]; then
        # wrk's Transfer/sec is in 1024-based units: to MB/s (10^6); ops = MB moved.
        value=$(awk '/^Transfer\/sec:/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
                     m = u == "GB" ? 1073741824 : u == "MB" ? 1048576 : u == "KB" ? 1024 : 1; printf "%.1f", v * m / 1e6; exit }' "$out")
        detail="$ops responses"
        ops=$(awk -v v="$value" -v d="$DURATION" 'BEGIN { printf "%.1f", v * d }')
      fi
      p99=$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                 if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
                 printf "%.2f", v; exit }' "$out")
      non2xx=$(awk -F': *' '/Non-2xx or 3xx responses:/ { print $2; exit }' "$out")
      sockerr=$(grep -o 'Socket errors:.*' "$out" || true)
      if [ "$rc" != 0 ]; then status=fail; detail="wrk exited $rc"
      elif [ -z "$ops" ] || [ "$ops" = 0 ]; then status=fail; detail="no requests"
      elif [ -n "$non2xx" ] && [ "$non2xx" != 0 ]; then status=fail; detail="$non2xx non-2xx/3xx"
      elif [ -n "$sockerr" ] && [ "$(echo "$sockerr" | grep -o '[0-9]\+' | awk '{ s += $1 } END { print s + 0 }')" != 0 ]; then
        status=fail; detail=$sockerr
      fi ;;
    h2-small)
      local line codes total ndone okc fail err tmo c2
      line=$(grep '^requests: ' "$out" || true); codes=$(grep '^status codes: ' "$out" || true)
      value=$(awk '/^finished in/ { gsub(/,/, ""); print $4; exit }' "$out")
      read -r total _ _ _ ndone _ okc _ fail _ err _ tmo _ <<<"${line#requests: }" || true
      read -r c2 _ <<<"${codes#status codes: }" || true
      ops=$ndone
      if [ "$rc" != 0 ]; then status=fail; detail="h2load exited $rc"
      elif [ -z "$line" ] || [ -z "$codes" ]; then status=fail; detail="no h2load summary"
      elif ! grep -q '^Application protocol: h2$' "$out"; then status=fail; detail="not h2"
      elif [ "$fail" != 0 ] || [ "$err" != 0 ] || [ "$tmo" != 0 ]; then status=fail; detail="$fail failed, $err errored, $tmo timeout"
      elif [ "$okc" != "$ndone" ] || [ "$ndone" = 0 ] || [ "$c2" != "$ndone" ]; then status=fail; detail="$okc ok of $ndone done ($codes)"
      fi ;;
    tls-full|tls-resume|tls-full-pq|spa|h3-*)
      local errs total resumed
      if [ ! -s "$json" ]; then status=fail; detail="loadtest exited $rc without a summary: $(tail -2 "$out" | tr '\n' ' ')"
      else
        errs=$(jq -r '.errors.total' "$json")
        case "$sc" in
          h3-small) value=$(jq -r '.requests.per_s' "$json"); ops=$(jq -r '.requests.ok' "$json") ;;
          h3-big) value=$(jq -r '.bytes / .duration_s / 1e6' "$json"); ops=$(jq -r '.bytes / 1e6' "$json")
                  detail="$(jq -r '.requests.ok' "$json") responses" ;;
          tls-*|h3-full|h3-resume) value=$(jq -r '.requests.per_s' "$json"); ops=$(jq -r '.requests.ok' "$json")
                 total=$(jq -r '.connections.total' "$json"); resumed=$(jq -r '.connections.resumed' "$json")
                 detail="$resumed of $total resumed" ;;
          spa) value=$(jq -r '.page_loads.per_s' "$json"); ops=$(jq -r '.page_loads.completed' "$json")
               detail="$(jq -r '.requests.ok' "$json") requests, $(jq -r '.connections.resumed' "$json")/$(jq -r '.connections.total' "$json") resumed" ;;
        esac
        if [ "$rc" != 0 ] || [ "$errs" != 0 ]; then
          status=fail; detail="loadtest exit $rc, errors $(jq -c '.errors.by_class' "$json")"
        elif [ -z "$ops" ] || [ "$(awk -v o="$ops" 'BEGIN { print (o > 0) }')" != 1 ]; then status=fail; detail="nothing completed"
        elif [[ "$sc" == *-full ]] && [ "$resumed" != 0 ]; then status=fail; detail="$resumed resumed handshakes in the full-handshake run"
        # Caddy 2.6 (quic-go) resumes ~92% of QUIC handshakes under this load (measured
        # 2026-12-03; rampart 99.9%): 90% for HTTP/3, 95% for TCP.
        elif [[ "$sc" == *-resume ]] && [ "$(awk -v r="$resumed" -v t="$total" -v m="$([ "$sc" = h3-resume ] && echo 0.90 || echo 0.95)" 'BEGIN { print (r >= m * t) }')" != 1 ]; then
          status=fail; detail="only $resumed of $total handshakes resumed"
        fi
      fi ;;
  esac
  value=$(awk -v v="${value:-0}" 'BEGIN { printf "%.2f", v }')
  record "$sc" "$label" "$round" "$value" "${ops:-0}" "$(awk -v a="$c0" -v b="$c1" -v k="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / k }')" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "${p99:--}" "$status" "$detail" "$out"
}

measure_idle() {
  local round=$1 label=$2
  local out=$WORK/out-idle-$label-$round json=$WORK/out-idle-$label-$round.json
  local before after held="" lt rc=0 i status=ok detail="" n="" value=0
  sleep 0.5
  before=$(rss_kib)
  "${CL[@]}" "$LOADTEST" idle --url "$SRV_URL$SMALL" --ca "$CA" -c "$IDLE_CONNS" --hold "${IDLE_HOLD}s" \
    --threads 1 --quiet --json "$json" >"$out" 2>&1 &
  lt=$!
  for i in $(seq 1 600); do
    if grep -q "connections open; holding" "$out"; then held=1; break; fi
    kill -0 "$lt" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$held" ]; then
    sleep 1
    after=$(rss_kib)
    n=$(grep -o 'loadtest idle: [0-9]* connections open' "$out" | grep -o '[0-9]\+' | head -1)
  fi
  for i in $(seq 1 $((IDLE_HOLD * 10 + 600))); do kill -0 "$lt" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$lt" 2>/dev/null && kill -9 "$lt" 2>/dev/null
  wait "$lt" || rc=$?
  if [ -z "$held" ]; then status=fail; detail="connections never all open (exit $rc): $(tail -2 "$out" | tr '\n' ' ')"
  elif [ "$rc" != 0 ] || [ "$(jq -r '.errors.total' "$json" 2>/dev/null)" != 0 ]; then
    status=fail; detail="loadtest idle exit $rc, errors $(jq -c '.errors.by_class' "$json" 2>/dev/null)"
  elif [ "$n" != "$IDLE_CONNS" ]; then status=fail; detail="$n of $IDLE_CONNS connections open"
  else
    value=$(awk -v a="$before" -v b="$after" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    detail="RSS ${before} KiB -> ${after} KiB with $n connections"
  fi
  MEAS_CLIENT_S=- MEAS_FOREIGN_S=-
  record idle "$label" "$round" "$value" "${n:-0}" 0 0 - "$status" "$detail" "$out"
}

record() { # scenario label round value ops cpu_s wall_s p99 status detail outfile
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" \
    "$MEAS_CLIENT_S" "$MEAS_FOREIGN_S" >>"$RESULTS"
  cp "${11}" "$LOGDIR/" 2>/dev/null || true
  [ -f "${11}.json" ] && cp "${11}.json" "$LOGDIR/" 2>/dev/null
  local cpu_pct="-" us="-" cl_pct="-" fo_pct="-"
  if [ "$1" != idle ]; then
    cpu_pct=$(awk -v c="$6" -v w="$7" 'BEGIN { printf "%.0f", (w > 0 ? 100 * c / w : 0) }')
    us=$(awk -v c="$6" -v o="$5" 'BEGIN { printf "%.1f", (o > 0 ? 1e6 * c / o : 0) }')
    cl_pct=$(awk -v c="$MEAS_CLIENT_S" -v w="$7" 'BEGIN { printf "%.0f", (w > 0 ? 100 * c / w : 0) }')
    fo_pct=$(awk -v c="$MEAS_FOREIGN_S" -v w="$7" 'BEGIN { printf "%.0f", (w > 0 ? 100 * c / w : 0) }')
  fi
  log "round $3 $1 $2: $4 (server CPU ${cpu_pct}%, ${us} us/op; client CPU ${cl_pct}%; other ${fo_pct}%; p99 $8 ms) $9${10:+ - ${10}}"
  if [ "$9" != ok ]; then FAILURES+=("round $3 $1 $2: ${10}"); fi
}

# ---------------------------------------------------------------- sanity: same responses
SANITY=$WORK/sanity.md
THREADS=()
SUITES=()
{
  echo "| server | path | status, version | content-type | content-encoding | body bytes | cache-control |"
  echo "|---|---|---|---|---|---|---|"
} >"$SANITY"
for s in "${SRV_LIST[@]}"; do
  srv_start "$s" 1 pin
  for spec in "/|gzip" "/settings|gzip" "$VENDOR|gzip" "$VENDOR|br" "$SMALL|" "/robots.txt|" "/big.bin|"; do
    path=${spec%%|*} enc=${spec#*|}
    hdrs=$WORK/hdrs
    # Without --compressed, curl keeps the body as sent: its size is the encoded size.
    got=$(curl -s -o /dev/null -D "$hdrs" -w '%{size_download}' --cacert "$CA" ${enc:+-H "Accept-Encoding: $enc"} "$SRV_URL$path" || true)
    st=$(head -1 "$hdrs" | tr -d '\r' | awk '{ print $2 ", " $1 }')
    h() { grep -i "^$1:" "$hdrs" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }
    echo "| $s | $path${enc:+ ($enc)} | $st | $(h content-type) | $(h content-encoding) | $got | $(h cache-control) |" >>"$SANITY"
    case "$st" in 200*) ;; *) FAILURES+=("sanity: $s $path: status $st") ;; esac
  done
  # The suite an AES-256-first client (OpenSSL's default order, like rustls') gets: nginx is
  # configured with rampart's order (AES-128-GCM first); SWS has no setting and follows the
  # client.
  suite=$(openssl s_client -connect "${SRV_URL#https://}" -servername localhost -CAfile "$CA" </dev/null 2>/dev/null \
    | awk '/^New, TLSv1.3, Cipher is/ { print $NF; exit }')
  SUITES+=("$s ${suite:-unknown}")
  THREADS+=("$s $(for p in $(srv_pids); do find "/proc/$p/task" -mindepth 1 -maxdepth 1 | wc -l; done | paste -sd+) threads")
  for hn in strict-transport-security x-content-type-options referrer-policy; do
    grep -qi "^$hn:" "$hdrs" || log "note: $s sends no $hn"
  done
  for v in http1.1 http2; do
    got=$(curl -s -o /dev/null --"$v" -w '%{http_version}' --cacert "$CA" "$SRV_URL$SMALL" || true)
    case "$v:$got" in http1.1:1.1|http2:2) ;; *) FAILURES+=("sanity: $s --$v got HTTP/$got") ;; esac
  done
  srv_stop || FAILURES+=("sanity: $s did not stop cleanly")
done
# The gzip bundle must be the same bytes everywhere (a fair h1-gzip).
lens=$(grep -F "| $VENDOR (gzip) |" "$SANITY" | awk -F'|' '{ gsub(/ /, "", $7); print $7 }' | sort -u | wc -l)
[ "$lens" = 1 ] || FAILURES+=("sanity: the servers send different gzip lengths for $VENDOR")
cat "$SANITY" >&2

# ---------------------------------------------------------------- the rounds
log "$NCORES cores; servers on core $SERVER_CORE, client on core $CLIENT_CORE; ${DURATION}s per measurement, $ROUNDS rounds; scenarios $SCENARIOS"
T_MEASURE=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  order=()
  n=${#SRV_LIST[@]}
  for i in $(seq 0 $((n - 1))); do order+=("${SRV_LIST[$(((i + round - 1) % n))]}"); done
  for sc in "${SCEN_LIST[@]}"; do
    for s in "${order[@]}"; do
      runs_on "$sc" "$s" || continue
      if ! srv_start "$s" 1 pin; then FAILURES+=("round $round $sc $s: start failed"); continue; fi
      measure "$sc" "$round"
      srv_stop || FAILURES+=("round $round $sc $s: did not stop cleanly")
      [ "$s" != rampart ] || [ -z "${SRV_COUNTERS:-}" ] || echo "round $round $sc: $SRV_COUNTERS" >>"$LOGDIR/rampart-counters.log"
    done
  done
done
if [ "$SCALING" = 1 ] && [[ " ${SRV_LIST[*]} " == *" rampart "* ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for cfg in w1 w2; do
      if [ "$cfg" = w1 ]; then srv_start rampart 1 pin; else srv_start rampart 2 nopin; fi
      measure h1-small "$round" "rampart-$cfg"
      srv_stop || FAILURES+=("scaling $cfg: rampart did not stop cleanly")
    done
  done
fi
# The floor, on the server's core with nothing else running.
FLOOR_TEXT=""
if [ "$FLOOR" = 1 ]; then
  log "the cryptographic floor on core $SERVER_CORE (loadtest floor, openssl speed)"
  if taskset -c "$SERVER_CORE" "$LOADTEST" floor --time 1s --json "$WORK/floor.json" >"$LOGDIR/floor.log" 2>&1; then
    ossl=$(taskset -c "$SERVER_CORE" openssl speed -seconds 1 -mr ecdsap256 ecdhx25519 2>/dev/null; \
           taskset -c "$SERVER_CORE" openssl speed -seconds 1 -mr -evp aes-128-gcm -bytes 16384 2>/dev/null)
    o_sign=$(awk -F: '/^\+F4:/ && $3 == 256 { printf "%.1f", 1e6 / $4 }' <<<"$ossl")
    o_x=$(awk -F: '/^\+F5:/ && $3 == 253 { printf "%.1f", 1e6 / $4 }' <<<"$ossl")
    o_aes=$(awk -F: '/^\+F:/ && $3 == "AES-128-GCM" { printf "%.0f", 1e12 / $4 }' <<<"$ossl")
    FLOOR_TEXT=$(jq -r --arg os "${o_sign:-}" --arg ox "${o_x:-}" --arg oa "${o_aes:-}" '
      def f: . * 10 | round / 10;
      "| primitive (µs) | aws-lc-rs (rampart'"'"'s) | openssl speed |\n|---|---:|---:|\n" +
      "| ECDSA P-256 signature | \(.ecdsa_p256_sign_us | f) | \($os) |\n" +
      "| X25519 key pair | \(.x25519_keygen_us | f) | \($ox) |\n" +
      "| X25519 agreement | \(.x25519_agree_us | f) | \($ox) |\n" +
      "| ML-KEM-768 encapsulation | \(.mlkem768_encapsulate_us | f) | - |\n" +
      "| AES-128-GCM, µs per MB | \(.aes128gcm_us_per_mb | round) | \($oa) |\n" +
      "| **floor: full handshake** | \(.full_handshake_us | f) | \(if $os != "" and $ox != "" then (($os | tonumber) + 2 * ($ox | tonumber) | f) else "-" end) |\n" +
      "| **floor: full handshake, X25519MLKEM768** | \(.full_handshake_mlkem_us | f) | - |\n" +
      "| **floor: resumed handshake** | \(.resumed_handshake_us | f) | \(if $ox != "" then (2 * ($ox | tonumber) | f) else "-" end) |\n" +
      "| **floor: large file, µs per MB** | \(.aes128gcm_us_per_mb | round) | \($oa) |"' "$WORK/floor.json")
    cp "$WORK/floor.json" "$LOGDIR/floor.json"
  else
    FAILURES+=("floor: loadtest floor failed: $(tail -1 "$LOGDIR/floor.log")")
  fi
fi
T_END=$(date +%s)

# ---------------------------------------------------------------- the report
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
REPORT=$ROOT_DIR/loadtest/results/compare-$(date -u +%Y%m%d-%H%M%S).md
cp "$RESULTS" "$LOGDIR/results.tsv"
REV=$(cd "$ROOT_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$ROOT_DIR" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null) || REV="$REV (+ uncommitted changes)"
SWS_VERSION=$("$SWS_BIN" --version 2>/dev/null | awk '/^Version:/ { print "static-web-server " $2; exit }' || true)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
ncol() { awk -v s="$1" 'BEGIN { n = split(s, a, ","); print n }'; }

table() {
  awk -F'\t' -v servers="$SERVERS" -v bound="$CPU_BOUND" -v scen="$SCENARIOS" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (n == 0) return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function fmt(v) {
    if (v == "") return "-"
    v += 0
    if (v >= 1000) return sprintf("%.0f", v)
    if (v >= 100) return sprintf("%.1f", v)
    return sprintf("%.2f", v)
  }
  {
    k = $1 SUBSEP $2
    val[k] = val[k] " " $4
    if ($1 != "idle") {
      cpu[k] = cpu[k] " " ($7 > 0 ? 100 * $6 / $7 : 0)
      us[k] = us[k] " " ($5 > 0 ? 1e6 * $6 / $5 : 0)
    }
    if ($8 != "-") p99[k] = p99[k] " " $8
    if ($9 != "ok") failed[k] = 1
  }
  END {
    ns = split(servers, sv, ",")
    nc = split(scen, sc, ",")
    unit["h1-small"] = "req/s"; unit["h1-gzip"] = "req/s"; unit["h2-small"] = "req/s"
    unit["tls-full"] = "handshakes/s"; unit["tls-resume"] = "handshakes/s"; unit["big"] = "MB/s"
    unit["tls-full-pq"] = "handshakes/s"; opn["tls-full-pq"] = "hs"
    unit["idle"] = "bytes/conn (lower better)"; unit["spa"] = "page loads/s"
    opn["h1-small"] = "req"; opn["h1-gzip"] = "req"; opn["h2-small"] = "req"; opn["tls-full"] = "hs"
    opn["tls-resume"] = "hs"; opn["big"] = "MB"; opn["spa"] = "page"
    unit["h3-small"] = "req/s"; unit["h3-big"] = "MB/s"; unit["h3-full"] = "handshakes/s"; unit["h3-resume"] = "handshakes/s"
    opn["h3-small"] = "req"; opn["h3-big"] = "MB"; opn["h3-full"] = "hs"; opn["h3-resume"] = "hs"
    name["nginx"] = "nginx"; name["sws"] = "SWS"; name["rampart"] = "rampart"; name["caddy"] = "Caddy"
    hdr = "| scenario | unit"
    for (i = 1; i <= ns; i++) hdr = hdr " | " name[sv[i]]
    for (i = 1; i <= ns; i++) if (sv[i] != "rampart") hdr = hdr " | rampart/" name[sv[i]]
    hdr = hdr " | server CPU % (" 
    for (i = 1; i <= ns; i++) hdr = hdr (i > 1 ? " / " : "") name[sv[i]]
    hdr = hdr ") | server CPU µs/op ("
    for (i = 1; i <= ns; i++) hdr = hdr (i > 1 ? " / " : "") name[sv[i]]
    print hdr ") |"
    sep = "|---|---"
    for (i = 1; i <= ns; i++) sep = sep "|---:"
    for (i = 1; i <= ns; i++) if (sv[i] != "rampart") sep = sep "|---:"
    print sep "|---|---|"
    for (c = 1; c <= nc; c++) {
      s = sc[c]
      line = "| " s " | " unit[s]
      for (i = 1; i <= ns; i++) {
        k = s SUBSEP sv[i]
        m[sv[i]] = median(val[k]); mc[sv[i]] = median(cpu[k]); mu[sv[i]] = median(us[k])
        line = line " | " (failed[k] ? "FAIL " : "") fmt(m[sv[i]])
      }
      r = "rampart"
      for (i = 1; i <= ns; i++) {
        p = sv[i]; if (p == r) continue
        ratio = "-"
        if (m[r] != "" && m[p] != "" && m[r] > 0 && m[p] > 0) {
          if (s == "idle") ratio = sprintf("%.2f", m[p] / m[r])
          else if (mc[r] >= bound && mc[p] >= bound) ratio = sprintf("%.2f", m[r] / m[p])
          else if (mu[r] > 0) ratio = sprintf("%.2f*", mu[p] / mu[r])
        }
        line = line " | " ratio
      }
      cl = ""; ul = ""
      for (i = 1; i <= ns; i++) {
        cl = cl (i > 1 ? " / " : "") (s == "idle" ? "-" : sprintf("%.0f", mc[sv[i]]))
        ul = ul (i > 1 ? " / " : "") (s == "idle" ? "-" : (mu[sv[i]] == "" ? "-" : sprintf(mu[sv[i]] >= 100 ? "%.0f" : "%.1f", mu[sv[i]])) " /" opn[s])
      }
      print line " | " cl " | " ul " |"
      if (s == "h1-small") {
        line = "| h1-small p99 | ms (lower better)"
        for (i = 1; i <= ns; i++) { pm[sv[i]] = median(p99[s SUBSEP sv[i]]); line = line " | " fmt(pm[sv[i]]) }
        for (i = 1; i <= ns; i++) {
          p = sv[i]; if (p == r) continue
          line = line " | " (pm[r] > 0 && pm[p] > 0 ? sprintf("%.2f", pm[p] / pm[r]) : "-")
        }
        print line " | | |"
      }
    }
  }' "$RESULTS"
}

# floor_ratios: for tls-full, tls-full-pq, tls-resume and big, each server's median CPU µs
# per operation and its ratio to the aws-lc-rs floor and to the openssl speed floor.
floor_ratios() {
  local fl
  fl=$(jq -r '"\(.full_handshake_us) \(.resumed_handshake_us) \(.aes128gcm_us_per_mb) \(.full_handshake_mlkem_us)"' "$WORK/floor.json")
  awk -F'\t' -v fl="$fl" -v os="${o_sign:-0}" -v ox="${o_x:-0}" -v oa="${o_aes:-0}" '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  ($1 == "tls-full" || $1 == "tls-resume" || $1 == "tls-full-pq" || $1 == "big") && $5 > 0 && $9 == "ok" {
    us[$1 SUBSEP $2] = us[$1 SUBSEP $2] " " 1e6 * $6 / $5; seen[$2] = 1
  }
  END {
    split(fl, f, " ")
    a["tls-full"] = f[1]; a["tls-resume"] = f[2]; a["big"] = f[3]; a["tls-full-pq"] = f[4]
    o["tls-full"] = (os > 0 && ox > 0) ? os + 2 * ox : 0; o["tls-resume"] = ox > 0 ? 2 * ox : 0; o["big"] = oa; o["tls-full-pq"] = 0
    print "| scenario | server | CPU µs per op | / aws-lc-rs floor | / openssl floor |"
    print "|---|---|---:|---:|---:|"
    n = split("tls-full tls-full-pq tls-resume big", sc, " ")
    for (i = 1; i <= n; i++) for (s in seen) {
      k = sc[i] SUBSEP s; if (!(k in us)) continue
      m = median(us[k])
      printf "| %s | %s | %.1f | %.2f | %s |\n", sc[i], s, m, m / a[sc[i]], (o[sc[i]] > 0 ? sprintf("%.2f", m / o[sc[i]]) : "-")
    }
  }' "$RESULTS"
}

scaling() {
  awk -F'\t' '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $2 ~ /^rampart-w/ { v[$2] = v[$2] " " $4; c[$2] = c[$2] " " ($7 > 0 ? 100 * $6 / $7 : 0) }
  END {
    if (!("rampart-w1" in v)) exit
    a = median(v["rampart-w1"]); b = median(v["rampart-w2"])
    printf "rampart h1-small: --workers 1 pinned to one core %.0f req/s (server CPU %.0f%%); --workers 2 unpinned %.0f req/s (server CPU %.0f%%): ratio %.2f\n",
      a, median(c["rampart-w1"]), b, median(c["rampart-w2"]), (a > 0 ? b / a : 0)
  }' "$RESULTS"
}

{
  echo "# rampart vs nginx vs static-web-server"
  echo
  echo "- date: $DATE; command: \`$INVOCATION\` (QUICK=${QUICK:-}, COMPARE_SITE_RULES=${COMPARE_SITE_RULES:-}, ${DURATION}s per measurement, $ROUNDS rounds, medians)"
  echo "- machine: $NCORES cores ($CPU_MODEL), $(uname -sr); servers pinned to core $SERVER_CORE with one worker, the load generator to core $CLIENT_CORE with one thread"
  echo "- versions: rampart $REV (binary built $(date -u -r "$RAMPART_BIN" +%Y-%m-%dT%H:%M:%SZ)); $NGINX_VERSION$( [ -f /usr/lib/nginx/modules/ngx_http_brotli_static_module.so ] && echo ' (+ brotli_static)'); $SWS_VERSION; $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }'); $(h2load --version 2>&1 | head -1); $("$LOADTEST" --version)"
  echo "- same leaf certificate (rampart's ECDSA development certificate), TLS 1.2/1.3, the same precompressed .gz/.br bytes; small file = $SMALL ($(stat -c %s "$WWW$SMALL") B, identity), bundle = $VENDOR ($(stat -c %s "$WWW$VENDOR") B, gzip $(stat -c %s "$WWW$VENDOR.gz") B)"
  echo "- load average before measuring: $LOAD_START${COMPARE_NICE:+; servers and clients ran at nice $COMPARE_NICE}; other CPU (used by neither server nor client) median $(awk -F'\t' '$12 != "-" && $7 > 0 { v[++n] = 100 * $12 / $7 } END { if (!n) { print "-"; exit } for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t } printf "%.0f%%, max %.0f%% of a core", v[int((n + 1) / 2)], v[n] }' "$RESULTS")"
  if awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 1.0) }'; then
    echo "- **warning: the machine was busy (load ${LOAD_START%% *} > 1.0): the figures are not comparable with a quiet run**"
  fi
  echo "- threads when started (per process): $(printf '%s, ' "${THREADS[@]}" | sed 's/, $//')"
  echo "- TLS 1.3 suite negotiated with a client listing AES-256-GCM first (OpenSSL's and rustls' default order): $(printf '%s, ' "${SUITES[@]}" | sed 's/, $//')"
  echo "- time: installs + build $((T_INSTALLED - T_START)) s, measurements $((T_END - T_MEASURE)) s, total $(( $(date +%s) - T_START )) s"
  echo
  table
  echo
  echo "Ratios: above 1 = rampart better. Throughput ratio = rampart/peer when both servers ran at"
  echo "${CPU_BOUND}%+ CPU; otherwise (marked *, client-bound) the CPU cost ratio peer µs/op ÷ rampart µs/op."
  echo "Memory and latency ratios are peer/rampart. Server CPU = utime+stime of all the server's"
  echo "processes over the measurement's wall time; µs/op = server CPU per request, handshake, MB or page load."
  if [ -n "$FLOOR_TEXT" ]; then
    echo
    echo "## The cryptographic floor (core $SERVER_CORE)"
    echo
    echo -e "$FLOOR_TEXT"
    echo
    echo "Each server's CPU per operation over the floor (aws-lc-rs / openssl speed):"
    echo
    floor_ratios
  fi
  if [ "$SCALING" = 1 ] && [[ " ${SRV_LIST[*]} " == *" rampart "* ]]; then
    echo
    echo "Scaling: $(scaling) (the client shares the second core on this $NCORES-core machine)"
  fi
  if [ ${#FAILURES[@]} -gt 0 ]; then
    echo
    echo "## FAILURES"
    printf -- '- %s\n' "${FAILURES[@]}"
  fi
  if [ -s "$LOGDIR/rampart-counters.log" ]; then
    echo
    echo "rampart's own counters (handshakes, failures) after each TLS measurement:"
    echo
    grep -E '^round [0-9]+ (tls-full|tls-resume|tls-full-pq|spa):' "$LOGDIR/rampart-counters.log" \
      | sed -E 's/^(round [0-9]+ [a-z-]+): counters (.*)$/- \1: \2/' \
      | awk '{ out = ""; for (i = 1; i <= NF; i++) if ($i !~ /=0$/) out = out " " $i; print substr(out, 2) }' || true
  fi
  echo
  echo "## Responses (first request of each server)"
  echo
  cat "$SANITY"
  echo
  echo "## Every measurement"
  echo
  echo "| scenario | server | round | value | ops | server CPU s | wall s | server CPU % | client CPU % | other CPU % | p99 ms | status | detail |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  awk -F'\t' 'function pct(c, w) { return (c == "-" || w <= 0) ? "-" : sprintf("%.0f", 100 * c / w) }
    { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7,
      pct($6, $7), pct($11, $7), pct($12, $7), $8, $9, $10 }' "$RESULTS"
  echo
  echo "client CPU = the load generator (one core at most); other CPU = busy time on the machine"
  echo "used by neither server nor client (other work, interrupts): it should be near 0."
  echo
  echo "## Commands"
  echo
  echo "- servers (\`taskset -c $SERVER_CORE\`): \`nginx -p PREFIX -c nginx.conf\` (loadtest/compare/nginx.conf.in, worker_processes 1);"
  echo "  \`static-web-server --config-file sws.toml --http2 true --http2-tls-cert C --http2-tls-key K --page-fallback index.html --compression false --compression-static true --security-headers false --cache-control-headers false --ignore-hidden-files false --threads-multiplier 1\` (headers from loadtest/compare/sws.toml.in);"
  echo "  \`rampart --cert C --key K --workers 1\`"
  echo "- clients (\`taskset -c $CLIENT_CORE\`): h1-small \`wrk -t1 -c64 -d${DURATION}s --latency URL$SMALL\`; h1-gzip \`wrk -t1 -c64 -d${DURATION}s -H 'Accept-Encoding: gzip' URL$VENDOR\`;"
  echo "  h2-small \`h2load -t1 -c64 -m10 -D $DURATION URL$SMALL\`; tls-full/tls-resume/tls-full-pq \`loadtest handshake -c 16 [--resume | --kx x25519mlkem768] --threads 1\`;"
  echo "  big \`wrk -t1 -c4 -d${DURATION}s URL/big.bin\`; idle \`loadtest idle -c $IDLE_CONNS --hold ${IDLE_HOLD}s --threads 1\`;"
  echo "  spa \`loadtest storm --users 16 --mix h2 --kinds tls13:1 --abort-share 0 --reuse 0 --threads 1\`"
  echo "  h3-small \`loadtest bench --http3 -c 4 -m 32 --threads 1\`; h3-big \`loadtest bench --http3 -c 4 -m 1 --threads 1 URL/big.bin\`; h3-full/h3-resume \`loadtest handshake --http3 -c 16 [--resume] --threads 1\`"
  echo "- Caddy (\`taskset -c $SERVER_CORE\`, GOMAXPROCS=1): \`caddy run --config Caddyfile\` (loadtest/compare/Caddyfile.in: protocols h1 h2 h3, default_sni 127.0.0.1)"
  echo "- logs: target/loadtest/compare/"
} >"$REPORT"
cat "$REPORT"
echo
echo "report: $REPORT"
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "compare: FAIL (${#FAILURES[@]} failures, listed above)"
  exit 1
fi
echo "compare: PASS"
