//! The fuzz corpora of `init::fuzz`'s targets, replayed (see `lbtest::fuzz`);
//! `tools/fuzz.sh` fuzzes them for longer.

#[test]
fn seeds_and_regressions_run_clean() {
    lbtest::fuzz::replay(init::fuzz::TARGETS);
}
