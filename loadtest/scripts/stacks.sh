#!/usr/bin/env bash
# stacks.sh - other TLS implementations against one rampart.
#
# Usage:  loadtest/scripts/stacks.sh            (SKIP_BUILD=1 to skip the cargo build)
#
# Starts one rampart on 127.0.0.1 (a free port, the demo SPA in www/, a fresh dev CA) and
# runs, one after the other:
#   openssl-tls12          `openssl s_client -reconnect` over TLS 1.2 with tickets: the 5
#                          reconnects must all say "Reused"; then a sess_out/sess_in chain of
#                          6 connections, each sending a GET (1 New + 5 Reused, all 200)
#   openssl-tls12-sessid   the same with -no_ticket (session-ID resumption from the cache)
#   openssl-tls13          a sess_out/sess_in chain over TLS 1.3 with a GET on each
#                          (`-reconnect` is not used for 1.3: OpenSSL 3 reconnects before it
#                          has read the NewSessionTicket sent after the handshake, so every
#                          reconnect is "New"; that is the client, not the server)
#   curl-h1 / curl-h2      curl --parallel --parallel-max 20: every file of www/ 10 times plus
#                          SPA deep routes, with and without --compressed, over TLS 1.3 and
#                          1.2; every status 200, every http_version as asked, every body
#                          byte-identical to the file in www/ (deep routes: www/index.html)
#   gnutls-tls13/12/12-sessid  `gnutls-cli --resume` with a GET on the resumed connection:
#                          "This is a resumed session" and an `HTTP/1.1 200` response
#   h2load                 nghttp2's h2load -n $H2LOAD_N -c 32 -m 10 over assets/app.*.js and `/`:
#                          0 failed, 0 errored, all 2xx (h2load cannot verify certificates)
# Every certificate check except h2load's is real (--cacert/-CAfile/--x509cafile with the
# dev CA, name `localhost`). Then SIGTERM; the server must exit 0 with connection_panics=0
# and no handshake failure of any class (see the comment at the counter checks).
#
# Environment: H2LOAD_N (default 20000), CURL_REPEAT (fetches of each www/ file per curl
# pass, default 10), RAMPART_ARGS (extra server flags), LOG_KEEP (where the server log is
# copied, default target/loadtest).
#
# Output: each stack's details, then a PASS/FAIL table and one verdict line
# ("stacks: PASS (...)" / "stacks: FAIL (...)"); exit status 0 only when every stack passed.
# The server log is copied to $LOG_KEEP/stacks-rampart.log either way.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

H2LOAD_N=${H2LOAD_N:-20000}
CURL_REPEAT=${CURL_REPEAT:-10}
LOG_KEEP=${LOG_KEEP:-$ROOT_DIR/target/loadtest}
STARTED=$SECONDS

need openssl openssl
need curl curl
need gnutls-cli gnutls-bin
need h2load nghttp2-client
need timeout coreutils
build_release
# shellcheck disable=SC2086
rampart_start ${RAMPART_ARGS:-}
echo "rampart at $RAMPART_URL (CA $RAMPART_CA)"
# The client side counts resumptions it saw; the server must have counted at least these.
echo 0 >"$WORK/client_resumed"

die() { echo "FAIL: $*"; exit 1; }
add_resumed() { echo $(( $(cat "$WORK/client_resumed") + $1 )) >"$WORK/client_resumed"; }
GET_REQ='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

# --- OpenSSL ----------------------------------------------------------------------------
# openssl_reconnect FLAGS...: s_client -reconnect (1 first connection + 5 reconnects).
openssl_reconnect() {
  local out=$WORK/ossl_reconnect.out
  timeout 30 openssl s_client -connect "$RAMPART_ADDR" -servername localhost \
    -CAfile "$RAMPART_CA" -verify_return_error -reconnect "$@" </dev/null >"$out" 2>&1 \
    || { tail -20 "$out"; die "s_client -reconnect $* exited non-zero"; }
  local new reused ok
  new=$(grep -c '^New, ' "$out" || true)
  reused=$(grep -c '^Reused, ' "$out" || true)
  ok=$(grep -c 'Verify return code: 0 (ok)' "$out" || true)
  echo "  s_client -reconnect $*: New=$new Reused=$reused verify-ok=$ok"
  [ "$new" = 1 ] && [ "$reused" = 5 ] || { tail -20 "$out"; die "expected 1 New + 5 Reused"; }
  [ "$ok" -ge 6 ] || die "certificate verification not ok on every connection"
  add_resumed "$reused"
}

# openssl_chain PROTO FLAGS...: 6 connections chained through -sess_out/-sess_in, each
# sending a GET and reading to the server's close (-ign_eof), so the TLS 1.3 ticket that
# arrives after the handshake is read and saved.
openssl_chain() {
  local proto=$1; shift
  local sess=$WORK/ossl.sess i new=0 reused=0 out=$WORK/ossl_chain.out
  rm -f "$sess"
  for i in 1 2 3 4 5 6; do
    local in=()
    [ -s "$sess" ] && in=(-sess_in "$sess")
    # shellcheck disable=SC2059
    printf "$GET_REQ" | timeout 15 openssl s_client -connect "$RAMPART_ADDR" \
      -servername localhost -CAfile "$RAMPART_CA" -verify_return_error -ign_eof \
      -sess_out "$sess.new" "${in[@]}" "$@" >"$out" 2>&1 \
      || { tail -20 "$out"; die "s_client $* (connection $i) exited non-zero"; }
    # A resumed TLS 1.2 session is not written again by -sess_out: keep the previous one.
    if [ -s "$sess.new" ]; then mv "$sess.new" "$sess"; fi
    grep -q "^HTTP/1.1 200 OK" "$out" || { tail -20 "$out"; die "connection $i: no 'HTTP/1.1 200 OK'"; }
    grep -q "Verify return code: 0 (ok)" "$out" || die "connection $i: certificate not verified"
    grep -Eq "Protocol *: *$proto\$" "$out" || { grep Protocol "$out"; die "connection $i: not $proto"; }
    grep -q '</html>' "$out" || die "connection $i: body incomplete"
    if grep -q '^Reused, ' "$out"; then reused=$((reused + 1)); else new=$((new + 1)); fi
  done
  echo "  s_client chain $proto $*: New=$new Reused=$reused, 6 x 'HTTP/1.1 200 OK'"
  [ "$new" = 1 ] && [ "$reused" = 5 ] || die "expected 1 New + 5 Reused"
  add_resumed "$reused"
}

stack_openssl_tls12() {
  openssl_reconnect -tls1_2
  openssl_chain TLSv1.2 -tls1_2
}
stack_openssl_tls12_sessid() {
  openssl_reconnect -tls1_2 -no_ticket
  openssl_chain TLSv1.2 -tls1_2 -no_ticket
}
stack_openssl_tls13() {
  openssl_chain TLSv1.3 -tls1_3
}

# --- curl -------------------------------------------------------------------------------
# curl_pass NAME HTTPFLAG WANTVER TLSFLAGS COMPRESSED
curl_pass() {
  local name=$1 httpflag=$2 want=$3 tlsflags=$4 compressed=$5
  local dir=$WORK/curl_$name cfg=$WORK/curl_$name.cfg manifest=$WORK/curl_$name.manifest
  local res=$WORK/curl_$name.res n=0 f rel route
  mkdir -p "$dir"; : >"$cfg"; : >"$manifest"
  for _ in $(seq 1 "$CURL_REPEAT"); do
    while IFS= read -r f; do
      rel=${f#"$ROOT_DIR/www/"}
      n=$((n + 1))
      printf 'url = "https://localhost:%s/%s"\noutput = "%s/%s"\n' "$RAMPART_PORT" "$rel" "$dir" "$n" >>"$cfg"
      echo "$dir/$n $f" >>"$manifest"
    # Dotfiles are 404 by design, except under /.well-known/.
    done < <(find "$ROOT_DIR/www" -type f \( -path "$ROOT_DIR/www/.well-known/*" -o ! -path '*/.*' \) | sort)
  done
  for _ in 1 2 3; do
    for route in / /settings/profile /dashboard /users/42/edit /a/b/c/d/e /checkout/step-2; do
      n=$((n + 1))
      printf 'url = "https://localhost:%s%s"\noutput = "%s/%s"\n' "$RAMPART_PORT" "$route" "$dir" "$n" >>"$cfg"
      echo "$dir/$n $ROOT_DIR/www/index.html" >>"$manifest"
    done
  done
  local extra=()
  [ "$compressed" = yes ] && extra+=(--compressed)
  # shellcheck disable=SC2086
  # --no-progress-meter, not --silent: curl 7.88 draws the parallel progress meter even
  # with --silent.
  timeout 60 curl --no-progress-meter --show-error --parallel --parallel-max 20 "$httpflag" $tlsflags \
    --cacert "$RAMPART_CA" --resolve "localhost:$RAMPART_PORT:127.0.0.1" \
    --max-time 30 "${extra[@]}" -K "$cfg" \
    -w '%{http_code} %{http_version} %header{content-encoding} %{filename_effective}\n' \
    >"$res" 2>"$res.err" || { cat "$res.err"; die "curl $name exited non-zero"; }
  [ -s "$res.err" ] && { cat "$res.err"; die "curl $name printed errors"; }
  local lines bad diffs=0 codings expect actual
  lines=$(wc -l <"$res")
  [ "$lines" = "$n" ] || die "curl $name: $lines results for $n URLs"
  bad=$(awk -v v="$want" '$1 != 200 || $2 != v' "$res" | head -5)
  [ -z "$bad" ] || { echo "$bad"; die "curl $name: status not 200 or http_version not $want"; }
  while read -r actual expect; do
    cmp -s "$actual" "$expect" || { echo "  differs: $actual vs $expect"; diffs=$((diffs + 1)); }
  done <"$manifest"
  [ "$diffs" = 0 ] || die "curl $name: $diffs bodies differ from www/"
  # Which codings the server chose (with --compressed, br/gzip bodies were decoded by curl
  # and still matched the files byte for byte).
  codings=$(awk 'NF == 4 { c[$3]++ } NF == 3 { c["identity"]++ } END { for (k in c) printf "%s=%d ", k, c[k] }' "$res")
  echo "  curl $name: $n transfers, all 200 over HTTP/$want, all bodies identical; codings: $codings"
  if [ "$compressed" = yes ]; then
    grep -q ' br ' "$res" || die "curl $name: --compressed but no response was brotli-encoded"
  else
    grep -Eq ' (br|gzip) ' "$res" && die "curl $name: encoded response without --compressed"
  fi
  return 0
}
stack_curl_h1() {
  curl_pass h1-tls13 --http1.1 1.1 "--tlsv1.3" no
  curl_pass h1-tls12-compressed --http1.1 1.1 "--tlsv1.2 --tls-max 1.2" yes
}
stack_curl_h2() {
  curl_pass h2-tls12 --http2 2 "--tlsv1.2 --tls-max 1.2" no
  curl_pass h2-tls13-compressed --http2 2 "--tlsv1.3" yes
}

# --- GnuTLS -----------------------------------------------------------------------------
# gnutls_resume PRIORITY: --resume connects, disconnects, reconnects resuming; stdin is
# sent on the resumed connection only. gnutls-cli stops reading as soon as its stdin ends,
# so stdin is a FIFO held open until gnutls-cli exits (on the server's close after the
# `Connection: close` response) or its timeout.
gnutls_resume() {
  local prio=$1 out=$WORK/gnutls.out fifo=$WORK/gnutls.fifo pid rc=0
  rm -f "$fifo"; mkfifo "$fifo"
  timeout 20 gnutls-cli --resume --x509cafile "$RAMPART_CA" --sni-hostname localhost \
    --verify-hostname localhost --priority "$prio" -p "$RAMPART_PORT" 127.0.0.1 \
    <"$fifo" >"$out" 2>&1 &
  pid=$!
  exec 3>"$fifo"
  # shellcheck disable=SC2059
  printf "$GET_REQ" >&3
  wait "$pid" || rc=$?
  exec 3>&-
  [ "$rc" = 0 ] || { tail -20 "$out"; die "gnutls-cli --priority $prio exited $rc"; }
  grep -q "The certificate is trusted" "$out" || { tail -20 "$out"; die "gnutls: certificate not trusted"; }
  grep -q "This is a resumed session" "$out" || { tail -20 "$out"; die "gnutls $prio: no resumed session"; }
  grep -q "^HTTP/1.1 200 OK" "$out" || { tail -20 "$out"; die "gnutls $prio: no 'HTTP/1.1 200 OK' on the resumed connection"; }
  grep -q '</html>' "$out" || die "gnutls $prio: body incomplete"
  grep -Eqi "error|alert" "$out" && { grep -Ei "error|alert" "$out"; die "gnutls $prio reported an error/alert"; }
  echo "  gnutls-cli --resume $prio: $(grep -o '(TLS1\.[23][^ ]*' "$out" | tail -1 | cut -d')' -f1)); resumed; HTTP/1.1 200 OK"
  add_resumed 1
}
stack_gnutls_tls13() { gnutls_resume "NORMAL:-VERS-ALL:+VERS-TLS1.3"; }
stack_gnutls_tls12() { gnutls_resume "NORMAL:-VERS-ALL:+VERS-TLS1.2"; }
stack_gnutls_tls12_sessid() { gnutls_resume "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_TICKETS"; }

# --- nghttp2 ----------------------------------------------------------------------------
stack_h2load() {
  local out=$WORK/h2load.out
  # The hashed app bundle, whatever its current hash (scripts/rehash-www.py renames it).
  ASSET=$(cd "$ROOT_DIR/www" && ls assets/app.*.js | head -1)
  [ -n "$ASSET" ] || die "no www/assets/app.*.js"
  timeout 90 h2load -n "$H2LOAD_N" -c 32 -m 10 \
    "https://127.0.0.1:$RAMPART_PORT/$ASSET" "https://127.0.0.1:$RAMPART_PORT/" \
    >"$out" 2>&1 || { tail -20 "$out"; die "h2load exited non-zero"; }
  grep -E "^(finished|requests|status codes|traffic):|^TLS Protocol|^Application protocol" "$out" | sed 's/^/  /'
  grep -q "Application protocol: h2" "$out" || die "h2load did not negotiate h2"
  grep -Eq "^requests: $H2LOAD_N total, $H2LOAD_N started, $H2LOAD_N done, $H2LOAD_N succeeded, 0 failed, 0 errored, 0 timeout" "$out" \
    || die "h2load: not every request succeeded"
  grep -Eq "^status codes: $H2LOAD_N 2xx, 0 3xx, 0 4xx, 0 5xx" "$out" || die "h2load: not all 2xx"
}

# --- run --------------------------------------------------------------------------------
STACKS=(openssl_tls12 openssl_tls12_sessid openssl_tls13 curl_h1 curl_h2
        gnutls_tls13 gnutls_tls12 gnutls_tls12_sessid h2load)
declare -A RESULT SECS
failed=0
for s in "${STACKS[@]}"; do
  echo "== ${s//_/-}"
  t0=$SECONDS
  # In the background so that `set -e` stays in force inside the stack (it is ignored in
  # the body of an `if`/`||` condition); the subshell does not inherit lib.sh's EXIT trap.
  ( "stack_$s" ) &
  rc=0; wait $! || rc=$?
  SECS[$s]=$((SECONDS - t0))
  if [ "$rc" = 0 ]; then RESULT[$s]=PASS; else RESULT[$s]=FAIL; failed=$((failed + 1)); fi
done

srv=PASS
mkdir -p "$LOG_KEEP"
stop_rc=0
rampart_stop || stop_rc=$?
cp "$RAMPART_LOG" "$LOG_KEEP/stacks-rampart.log"
[ "$stop_rc" = 0 ] || { echo "FAIL: rampart did not shut down cleanly"; srv=FAIL; }
if [ "$srv" = PASS ]; then
  # Every stack above completes its handshakes and sends close_notify (or is closed by the
  # server after `Connection: close`), so no handshake failure of any class is legitimate:
  # not even fail_eof, which counts only connections that end before the handshake is done.
  for c in connection_panics session_tls_errors fail_alert_received fail_alert_sent fail_protocol_error fail_eof \
           fail_timeout fail_not_tls fail_plaintext_http; do
    v=$(counter "$c")
    [ "$v" = 0 ] || { echo "FAIL: server counted $c=$v"; srv=FAIL; }
  done
  resumed=$(counter handshakes_resumed); full=$(counter handshakes_full)
  seen=$(cat "$WORK/client_resumed")
  echo "server handshakes: full=$full resumed=$resumed (tls12=$(counter handshakes_tls12) tls13=$(counter handshakes_tls13)); clients saw $seen resumed"
  [ "$resumed" -ge "$seen" ] || { echo "FAIL: server counted fewer resumptions than the clients saw"; srv=FAIL; }
  echo "server requests: h1=$(counter requests_h1) h2=$(counter requests_h2)"
fi
if [ "$srv" = FAIL ]; then
  failed=$((failed + 1))
  grep -E " (WARN|ERROR) " "$RAMPART_LOG" | tail -20 || true
fi

echo
printf '%-22s %-5s %s\n' stack result seconds
for s in "${STACKS[@]}"; do printf '%-22s %-5s %s\n' "${s//_/-}" "${RESULT[$s]}" "${SECS[$s]}"; done
printf '%-22s %-5s\n' server "$srv"
echo "server log: $LOG_KEEP/stacks-rampart.log"
total=$(( ${#STACKS[@]} + 1 ))
if [ "$failed" = 0 ]; then
  echo "stacks: PASS ($total/$total: openssl, curl, gnutls, h2load; $((SECONDS - STARTED)) s)"
else
  echo "stacks: FAIL ($failed of $total failed; $((SECONDS - STARTED)) s)"
  exit 1
fi
