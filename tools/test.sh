#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up the host, build the images the end-to-end
# tests boot, then formatting, lints, every test (unit, network-namespace, QEMU) and the demo.
#
# Every step runs even when an earlier one failed (the tests with --no-fail-fast, so one failing
# test binary does not hide the others); the end is one summary: tests passed, failed and
# ignored, the names of the failed tests, and each step's outcome. The exit status is non-zero
# when anything failed. Only a failed host set-up or image build stops the run early: nothing
# after them could mean anything.
#
# Usage: tools/test.sh [extra cargo test args]
# Needs root (packages, network namespaces, QEMU taps); CI runs it as root via .ci/run.
set -uo pipefail
cd "$(dirname "$0")/.."

# A CI build is built once: the incremental cache would only add gigabytes to its disk.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=0; fi

started=$(date +%s)
log_dir=target/test-logs
mkdir -p "$log_dir"
tests_log=$log_dir/cargo-test.log

declare -a step_names=() step_results=() step_times=()
step_started=$started
# Each step's outcome and how long it took (the set-up and image builds count into the first).
record() {
    local now
    now=$(date +%s)
    step_names+=("$1")
    step_results+=("$2")
    step_times+=($((now - step_started)))
    step_started=$now
}
fatal() {
    printf 'test: %s failed; nothing after it can run\n' "$1" >&2
    exit 1
}

echo "test: 1/6 host setup (tools/setup.sh)"
tools/setup.sh || fatal "the host setup"

echo "test: 2/6 building the appliance images (target/lb-image, target/lb-test-image)"
tools/build-image.sh target/lb-image || fatal "building the appliance image"
# + busybox, ipvsadm and keepalived, for the IPVS guest tests
tools/build-test-image.sh target/lb-test-image || fatal "building the test image"
record setup ok

echo "test: 3/6 formatting"
if cargo fmt --all -- --check; then record fmt ok; else record fmt FAILED; fi

echo "test: 4/6 lints"
if cargo clippy --quiet --workspace --all-targets -- -D warnings; then
    record clippy ok
else
    record clippy FAILED
fi

echo "test: 5/6 tests (output also in $tests_log)"
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$tests_log"
tests_status=${PIPESTATUS[0]}
if ((tests_status == 0)); then record tests ok; else record tests FAILED; fi

# The README's main command, end to end, so it cannot rot: set-up and image build are no-ops by
# now; it boots the demo balancer, checks that requests are balanced by weight, that a stopped
# real is taken out and comes back, and powers it off.
echo "test: 6/6 the demo (tools/demo.sh --check)"
if tools/demo.sh --check; then record demo ok; else record demo FAILED; fi

elapsed=$(($(date +%s) - started))
echo
echo "test: ================================ summary ================================"
tools/test-summary.sh "$tests_log"
status=0
for i in "${!step_names[@]}"; do
    printf 'test: %-7s %-6s %4d s\n' "${step_names[$i]}" "${step_results[$i]}" "${step_times[$i]}"
    [[ "${step_results[$i]}" == ok ]] || status=1
done
printf 'test: %d min %02d s in all\n' $((elapsed / 60)) $((elapsed % 60))
if ((status == 0)); then
    echo "test: everything passed"
else
    echo "test: FAILED (full test output: $tests_log)"
fi
exit "$status"
