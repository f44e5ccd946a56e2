#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up the host, build the image the end-to-end
# tests boot, then formatting, lints and every test (unit, network-namespace, QEMU).
#
# Usage: tools/test.sh [extra cargo test args]
# Needs root (network namespaces, QEMU taps); CI runs it as root via .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "test: 1/5 host setup"
tools/setup.sh

echo "test: 2/5 building the appliance image (target/lb-image)"
tools/build-image.sh target/lb-image
tools/build-test-image.sh target/lb-test-image  # + busybox, ipvsadm and keepalived, for the IPVS guest tests

echo "test: 3/5 formatting"
cargo fmt --all -- --check

echo "test: 4/5 lints"
cargo clippy --quiet --workspace --all-targets -- -D warnings

echo "test: 5/5 tests"
export LB_IMAGE_DIR="$PWD/target/lb-image"
cargo test --workspace "$@"
