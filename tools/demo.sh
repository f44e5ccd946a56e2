#!/usr/bin/env bash
# The main job, for a newcomer: set up the host, build the appliance image, and show a balancer
# balancing. One balancer boots in QEMU from the image, fetches tools/examples/demo.toml over HTTP,
# and balances two web servers that run on this host in network namespaces; requests through its
# VIP are answered by both in the ratio of their weights (3:1); one server is stopped, marked down
# and skipped, then started and put back; `lbctl status` shows the balancer's table at each step.
#
# Usage: tools/demo.sh [--check]
#   (default)  run the walk-through, then keep the balancer running and print the commands to
#              send requests of your own from another terminal; Ctrl-C powers it off the orderly
#              way (power button → init stops lbd → power-off).
#   --check    assert every step of the walk-through, power off, exit 0 (or 1 with what failed).
# Needs root (network namespaces, a tap for QEMU); installs what it needs (tools/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
"" | --check) ;;
-h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "demo: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

say() { printf '\ndemo: %s\n' "$*"; }

say "1/4 setting up the host (packages, Rust target, Debian kernel and NIC firmware packages)"
tools/setup.sh

say "2/4 building the image into target/lb-image"
tools/build-image.sh target/lb-image
cargo run --quiet --release -p image -- inspect target/lb-image | sed 's/^/  /' || true

# Every debug binary in one build, with the features the whole workspace resolves (the test
# harness builds the same set, so after the test suite this is a no-op; one package at a time
# would build the shared dependencies again for each package's own feature set).
cargo build --quiet --workspace --bins
bin=${CARGO_TARGET_DIR:-target}/debug

say "3/4 the config this balancer will fetch (tools/examples/demo.toml):"
sed 's/^/  | /' tools/examples/demo.toml
"$bin/lbd" check tools/examples/demo.toml | sed 's/^/  /'

say "4/4 the demo: namespaces, two web servers, the balancer in QEMU, requests through the VIP"
exec "$bin/demo" "$@"
