#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ when a nightly toolchain and cargo-fuzz are
# available (installing cargo-fuzz if need be); otherwise says so and succeeds: the
# property tests in tests/parsers_proptest.rs exercise the same parsers on every
# `cargo test`. Set FUZZ_BUILD_REQUIRED=1 to fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "fuzz-build: skipped: $1"
  echo "fuzz-build: tests/parsers_proptest.rs covers the same functions (sniff, proxy header, plaintext, path, range, encoding)"
  if [ "${FUZZ_BUILD_REQUIRED:-0}" = 1 ]; then
    exit 1
  fi
  exit 0
}

if ! cargo +nightly --version >/dev/null 2>&1; then
  skip "no nightly toolchain (rustup toolchain install nightly)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-build: installing cargo-fuzz"
  if ! timeout "${FUZZ_INSTALL_TIMEOUT:-600}" cargo install cargo-fuzz --locked; then
    skip "cargo-fuzz is not installed and could not be installed"
  fi
fi

echo "fuzz-build: $(cargo +nightly --version), $(cargo fuzz --version)"
# The dev profile (ASan and the fuzzer's instrumentation, no optimisation): CI proves the
# targets compile and link, and that takes 3 min on 2 cores against 7 for the release
# build a fuzzing run uses (`cargo +nightly fuzz run` builds that itself).
cargo +nightly fuzz build --dev
echo "fuzz-build: targets: $(cargo +nightly fuzz list | tr '\n' ' ')"
