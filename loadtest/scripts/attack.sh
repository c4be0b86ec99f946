#!/usr/bin/env bash
# The denial-of-service proof (issue 14): three bounded attacks, each against a fresh
# rampart (--workers 2) on a free loopback port, with `loadtest attack` reading the server's
# CPU and memory from /proc and a legitimate client (a new TLS connection and GET / every
# 200 ms, 2 s each) fetching throughout.
#
#   loadtest/scripts/attack.sh [ATTACK ARGS...]   (passed to every `loadtest attack`)
#
#   pipeline        one HTTP/1.1 connection writes 40,000 pipelined GET /small.txt in one
#                   write, pauses 0.5 s, reads 3 MiB of responses and leaves
#   h2-zero-window  4 HTTP/2 connections with an initial window of 0, 128 streams each for
#                   a 32 MiB file, held 2 s without granting a byte
#   h2-tiny-window  one HTTP/2 stream for the 32 MiB file, its window opened a byte at a
#                   time (100 updates per write, at most 50,000)
#
# Builds release (SKIP_BUILD=1 skips; RAMPART_BIN picks another server binary). Fails
# (exit 1) when an attack fails (the server used over 20% of a core 1-2 s after the attacker
# left, a legitimate fetch failed, memory grew by over 8 MiB per attacking connection, the
# one-byte windows were answered to the end) or rampart did not exit 0 on SIGTERM or
# panicked. Each report's JSON and server log are kept in target/loadtest/. About 30 s.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build_release
root=$WORK/www
cp -r "$ROOT_DIR/www" "$root"
echo "small file for the pipelining attack" >"$root/small.txt"
# Above the default --stream-threshold (8 MiB): streamed from disk in chunks.
head -c $((32 << 20)) /dev/urandom >"$root/big.bin"
export RAMPART_ROOT=$root
keep=$ROOT_DIR/target/loadtest
mkdir -p "$keep"

failed=0 summary=()
for kind in pipeline h2-zero-window h2-tiny-window; do
  rampart_start --workers 2
  echo "attack: $kind against rampart pid $RAMPART_PID on $RAMPART_ADDR"
  rc=0
  "$LOADTEST_BIN" attack --kind "$kind" --url "$RAMPART_URL" --ca "$RAMPART_CA" \
    --server-pid "$RAMPART_PID" --json "$keep/attack-$kind.json" "$@" || rc=$?
  [ "$rc" = 2 ] && { echo "attack: loadtest could not run $kind (usage or setup error)" >&2; exit 2; }
  stop_rc=0
  rampart_stop || stop_rc=$?
  cp "$RAMPART_LOG" "$keep/attack-$kind-rampart.log"
  if [ "$rc" != 0 ]; then
    summary+=("$kind: FAIL (the report above says why)"); failed=$((failed + 1))
  elif [ "$stop_rc" != 0 ]; then
    summary+=("$kind: FAIL (rampart did not shut down cleanly)"); failed=$((failed + 1))
  else
    summary+=("$kind: PASS")
  fi
  echo
done

printf 'attack: %s\n' "${summary[@]}"
echo "attack: reports and server logs in $keep/attack-*"
[ "$failed" = 0 ] && echo "attack: PASS: the server stayed idle, small and available under all three attacks"
exit "$((failed > 0))"
