#!/usr/bin/env bash
# Summarises the output of `cargo test --no-fail-fast` (a log file, or standard input): how many
# tests passed, failed and were ignored, in how many test binaries; the names of the failed tests
# with the binary each ran in; the test binaries that failed (also those that crashed without a
# failed test line); and build errors. Exit status 1 when anything failed, else 0.
#
# Usage: tools/test-summary.sh [LOG]     (tools/test.sh runs it on its test log)
set -uo pipefail

passed=0 failed=0 ignored=0 binaries=0
current=""
declare -a failed_tests=() failed_binaries=() build_errors=() durations=()
in_failed_targets=0
finished_in='finished in ([0-9]+)[.][0-9]+s'
while IFS= read -r line; do
    if ((in_failed_targets)); then
        if [[ $line =~ ^[[:space:]]+\`(.*)\`$ ]]; then
            failed_binaries+=("${BASH_REMATCH[1]}")
            continue
        fi
        in_failed_targets=0
    fi
    case "$line" in
    *"Running "*" (target/"*)
        # "     Running tests/x.rs (target/debug/deps/x-0123abcd)"
        current=${line#*Running }
        current=${current%% (target/*}
        bin=${line##*/}
        bin=${bin%)}
        current="$current, ${bin%-*}"
        binaries=$((binaries + 1))
        ;;
    *"Doc-tests "*)
        current="doc-tests of ${line#*Doc-tests }"
        binaries=$((binaries + 1))
        ;;
    "test "*" ... FAILED")
        name=${line#test }
        failed_tests+=("${name% ... FAILED}  ($current)")
        ;;
    "test result: "*)
        if [[ $line =~ $finished_in ]]; then
            durations+=("${BASH_REMATCH[1]} $current")
        fi
        if [[ $line =~ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]]; then
            passed=$((passed + BASH_REMATCH[1]))
            failed=$((failed + BASH_REMATCH[2]))
            ignored=$((ignored + BASH_REMATCH[3]))
        fi
        ;;
    "error: "*" target failed:" | "error: "*" targets failed:")
        in_failed_targets=1
        ;;
    "error: test failed, to rerun pass "*)
        # Without --no-fail-fast cargo stops here and prints no list at the end.
        arg=${line#error: test failed, to rerun pass }
        arg=${arg#\`}
        failed_binaries+=("${arg%\`}")
        ;;
    "error: could not compile"* | "error[E"*)
        build_errors+=("${line#error: }")
        ;;
    esac
done < <(if (($#)); then cat -- "$1"; else cat; fi)

# The end-of-run list repeats the per-binary lines: keep each binary once.
declare -a unique_binaries=()
for b in "${failed_binaries[@]}"; do
    [[ " ${unique_binaries[*]-} " == *" $b "* ]] || unique_binaries+=("$b")
done

printf 'test: %d passed, %d failed, %d ignored, in %d test binaries\n' \
    "$passed" "$failed" "$ignored" "$binaries"
if ((${#durations[@]})); then
    echo "test: slowest test binaries (seconds):"
    printf '%s\n' "${durations[@]}" | sort -rn | head -n 12 |
        while read -r secs name; do printf 'test:   %5d  %s\n' "$secs" "$name"; done
fi
if ((${#failed_tests[@]})); then
    echo "test: failed tests:"
    printf 'test:   %s\n' "${failed_tests[@]}"
fi
if ((${#unique_binaries[@]})); then
    echo "test: test binaries that failed (rerun one with: cargo test <arguments>):"
    printf 'test:   %s\n' "${unique_binaries[@]}"
fi
if ((${#build_errors[@]})); then
    echo "test: build errors:"
    printf 'test:   %s\n' "${build_errors[@]}"
fi
if ((failed || ${#unique_binaries[@]} || ${#build_errors[@]})); then
    exit 1
fi
exit 0
