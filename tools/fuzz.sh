#!/usr/bin/env bash
# Fuzzes the decoders that take bytes from the network or an operator (VRRP, IPVS and rtnetlink
# replies, DHCP, TFTP, the control API's and pxe's requests, configs, kernel command lines,
# health-check replies, keepalived.conf and ldirectord.cf) with libFuzzer, through cargo-fuzz on
# the stable toolchain (`--sanitizer none`: no nightly needed; panics and failed assertions are
# what is caught).
#
# Usage: tools/fuzz.sh [--runs N | --time SECONDS] [TARGET...]
#   --runs N       N inputs per target (default 10000: what the test suite runs)
#   --time SECONDS run each target this long instead (e.g. --time 3600 for an hour each)
#   --corpus DIR   keep the found inputs in DIR/TARGET (default target/fuzz-corpus; the test suite
#                  gives an empty one, so its run is the same run every time)
#   --dev          build the targets unoptimised, with debug assertions and overflow checks and
#                  without debug info: half the build time of the release profile, for short runs
#                  (the test suite's); long runs want the release profile's speed. Also turns off
#                  libFuzzer's entropic scheduling, whose bookkeeping per input grows with the
#                  unoptimised build's many more edges (half of a short run's time)
#   TARGET         some of the targets (default: all; `tools/fuzz.sh --list` names them)
#
# Corpora: each target reads the committed seeds (tools/fuzz/seeds/TARGET: real bytes and files)
# and keeps what it finds in target/fuzz-corpus/TARGET, which later runs start from. A crash
# leaves its input in tools/fuzz/artifacts/TARGET/; copy it to tools/fuzz/regressions/TARGET/
# with the fix, and plain `cargo test` replays it from then on.
#
# Prints one line per target: inputs run, how long they took, corpus size, and crashes. Exit status 1 on a crash.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10000
seconds=""
profile=()
scheduling=()
corpus_root=target/fuzz-corpus
targets=()
list_only=0
while (($#)); do
    case "$1" in
    --runs)
        runs=${2:?--runs needs a number}
        shift 2
        ;;
    --time)
        seconds=${2:?--time needs seconds}
        shift 2
        ;;
    --corpus)
        corpus_root=${2:?--corpus needs a directory}
        shift 2
        ;;
    --dev)
        profile=(--dev)
        scheduling=(-entropic=0)
        # Debug info is most of the unoptimised build's link time and no use to libFuzzer.
        export CARGO_PROFILE_DEV_DEBUG=0
        shift
        ;;
    --list)
        list_only=1
        shift
        ;;
    -h | --help)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "fuzz: unknown option $1 (try --help)" >&2
        exit 2
        ;;
    *)
        targets+=("$1")
        shift
        ;;
    esac
done

all=()
for f in tools/fuzz/fuzz_targets/*.rs; do
    name=${f##*/}
    all+=("${name%.rs}")
done
if ((list_only)); then
    printf '%s\n' "${all[@]}"
    exit 0
fi
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || {
        echo "fuzz: no target $t (targets: ${all[*]})" >&2
        exit 2
    }
done

cargo fuzz --version >/dev/null 2>&1 || {
    echo "fuzz: cargo-fuzz is missing: tools/setup.sh installs it (cargo install --locked cargo-fuzz)" >&2
    exit 1
}

echo "fuzz: building the targets (${profile[*]:-release}, coverage instrumentation)"
mkdir -p target
(cd tools/fuzz && cargo fuzz build "${profile[@]}" --sanitizer none) >target/fuzz-build.log 2>&1 || {
    tail -n 30 target/fuzz-build.log >&2
    exit 1
}

status=0
for t in "${targets[@]}"; do
    mkdir -p "$corpus_root/$t" "tools/fuzz/artifacts/$t"
    corpus=$(cd "$corpus_root/$t" && pwd)
    limit=(-runs="$runs")
    [[ -n "$seconds" ]] && limit=(-max_total_time="$seconds")
    log=$corpus_root/$t.log
    target_started=$SECONDS
    # -seed fixes the mutation sequence, so a bounded run is the same run every time.
    (cd tools/fuzz && cargo fuzz run "${profile[@]}" --sanitizer none "$t" "$corpus" "seeds/$t" -- \
        "${limit[@]}" "${scheduling[@]}" -seed=1 -max_len=65536 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1) >"$log" 2>&1
    rc=$?
    done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    found=$(find "$corpus" -type f | wc -l)
    crashes=$(find "tools/fuzz/artifacts/$t" -type f | wc -l)
    if ((rc != 0)); then
        status=1
        printf 'fuzz: %-16s FAILED after %s inputs (exit %d); crash inputs in tools/fuzz/artifacts/%s/:\n' \
            "$t" "${done_runs:-?}" "$rc" "$t"
        grep -a -A3 -E 'panicked|ERROR|Test unit written' "$log" | head -n 12 | sed 's/^/fuzz:   /'
    else
        printf 'fuzz: %-16s %8s inputs in %3d s, corpus %5d, crashes %d\n' "$t" "${done_runs:-?}" \
            $((SECONDS - target_started)) "$found" "$crashes"
    fi
done
exit "$status"
