//! A bounded fuzzing run of every target, as part of the suite: `tools/fuzz.sh` with a fixed
//! number of inputs and a fixed seed, from the committed seeds and an empty corpus, so it is the
//! same run every time. It fails on a crash (a panic, a failed assertion, a converted config lbd
//! refuses), naming the target and where libFuzzer left the input.
//!
//! Needs cargo-fuzz, which tools/setup.sh installs.

use lbtest::{artifacts, programs};

const RUNS: u32 = 10_000;

#[test]
fn every_target_runs_its_inputs_without_a_crash() {
    let corpus = tempfile::tempdir().unwrap();
    let mut cmd = programs::command("bash");
    cmd.arg(artifacts::workspace_root().join("tools/fuzz.sh"))
        // Building the targets is most of this run: unoptimised (`--dev`) they build in half
        // the release profile's time, and 10,000 inputs still take seconds per target, with
        // overflow checks on. Long runs (`tools/fuzz.sh --time ...`) keep the release profile.
        .args(["--dev", "--runs", &RUNS.to_string(), "--corpus"])
        .arg(corpus.path())
        .current_dir(artifacts::workspace_root())
        .env("PATH", lbtest::fresh::toolchain_path());
    lbtest::fresh::clear_cargo_run_env(&mut cmd);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tools/fuzz.sh failed:\n{text}");
    let targets: Vec<String> =
        std::fs::read_dir(artifacts::workspace_root().join("tools/fuzz/fuzz_targets"))
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".rs")
                    .map(str::to_owned)
            })
            .collect();
    assert!(targets.len() >= 13, "{targets:?}");
    for t in &targets {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("fuzz: {t} ")))
            .unwrap_or_else(|| panic!("no result for {t}:\n{text}"));
        let runs: u32 = line
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(runs >= RUNS, "{t} ran {runs} inputs: {line}");
        assert!(line.ends_with("crashes 0"), "{line}");
    }
    eprintln!("{text}");
}
