#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up the host, build the image the end-to-end
# tests boot, then formatting, lints, every test (unit, network-namespace, QEMU) and the demo.
#
# Usage: tools/test.sh [extra cargo test args]
# Needs root (network namespaces, QEMU taps); CI runs it as root via .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# A CI build is built once: the incremental cache would only add gigabytes to its disk.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi

echo "test: 1/6 host setup"
tools/setup.sh

echo "test: 2/6 building the appliance image (target/lb-image)"
tools/build-image.sh target/lb-image
tools/build-test-image.sh target/lb-test-image  # + busybox, ipvsadm and keepalived, for the IPVS guest tests

echo "test: 3/6 formatting"
cargo fmt --all -- --check

echo "test: 4/6 lints"
cargo clippy --quiet --workspace --all-targets -- -D warnings

echo "test: 5/6 tests"
export LB_IMAGE_DIR="$PWD/target/lb-image"
cargo test --workspace "$@"

# The README's main command, end to end, so it cannot rot: set-up and image build are no-ops by
# now; it boots the demo balancer, waits for "lbd running" and powers it off.
echo "test: 6/6 the demo (tools/demo.sh --check)"
tools/demo.sh --check
