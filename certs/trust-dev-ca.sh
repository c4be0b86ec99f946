#!/usr/bin/env bash
# Trusts (or with --remove, untrusts) rampart's development CA on this machine: the system
# store (Debian/Ubuntu) and the NSS database used by Chromium and Firefox on Linux.
# Development machines only.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/dev"
ca="$dir/ca.pem"
name="rampart-development-ca"
if [ "${1:-}" = "--remove" ]; then
  if [ -f "/usr/local/share/ca-certificates/$name.crt" ]; then
    sudo rm -f "/usr/local/share/ca-certificates/$name.crt" && sudo update-ca-certificates --fresh >/dev/null
  fi
  command -v certutil >/dev/null && certutil -d "sql:$HOME/.pki/nssdb" -D -n "$name" 2>/dev/null || true
  echo "removed $name"
  exit 0
fi
[ -f "$ca" ] || { echo "no $ca yet: start rampart once without --cert/--key"; exit 1; }
if command -v update-ca-certificates >/dev/null; then
  sudo install -m 0644 "$ca" "/usr/local/share/ca-certificates/$name.crt"
  sudo update-ca-certificates >/dev/null
  echo "system store: trusted $ca"
fi
if command -v certutil >/dev/null; then
  mkdir -p "$HOME/.pki/nssdb"
  [ -f "$HOME/.pki/nssdb/cert9.db" ] || certutil -d "sql:$HOME/.pki/nssdb" -N --empty-password
  certutil -d "sql:$HOME/.pki/nssdb" -A -t "C,," -n "$name" -i "$ca"
  echo "NSS (Chromium/Firefox): trusted $ca"
else
  echo "certutil not found (apt-get install libnss3-tools) - browsers not updated"
fi
