#!/usr/bin/env bash
# Runs the README's first command (`cargo run --release`, no flags) as a user would, fetches
# the app with curl over HTTP/1.1 and HTTP/2 using the printed CA, then SIGTERMs it and
# requires a clean exit (status 0) within the drain deadline. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
cargo build --release --quiet
cargo run --release >"$log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$log"' EXIT
for i in $(seq 1 150); do
  grep -q "listening" "$log" && break
  [ "$i" = 150 ] && { cat "$log"; echo "smoke: not listening after 30 s"; exit 1; }
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "smoke: server exited early"; exit 1; }
  sleep 0.2
done
grep -q "certs/dev/ca.pem" "$log" || { cat "$log"; echo "smoke: CA path not printed"; exit 1; }
for v in --http1.1 --http2; do
  out=$(curl -sS $v --cacert certs/dev/ca.pem -o /dev/null -w '%{http_code} %{http_version}' https://127.0.0.1:8443/)
  echo "smoke: curl $v -> $out"
  case "$out" in 200\ 1.1|200\ 2) ;; *) cat "$log"; exit 1 ;; esac
done
# The process is `cargo`'s child: signal the server itself.
srv=$(pgrep -P $pid rampart || echo $pid)
kill -TERM "$srv"
for _ in $(seq 1 50); do
  kill -0 "$srv" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$srv" 2>/dev/null; then cat "$log"; echo "smoke: still running 10 s after SIGTERM"; exit 1; fi
wait $pid && status=0 || status=$?
grep -q "shutdown complete" "$log" || { cat "$log"; echo "smoke: no shutdown summary"; exit 1; }
[ "$status" = 0 ] || { cat "$log"; echo "smoke: exit status $status"; exit 1; }
echo "smoke: ok (served, then clean exit 0 on SIGTERM)"
