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

/// The fuzz targets build the product's crates in a workspace of their own, with a lock file of
/// its own: every package the two share must be at the product's version, or the fuzzer tests
/// a config parser (toml), a TLS stack or a netlink encoder that no balancer runs.
#[test]
fn the_fuzz_workspace_builds_the_versions_the_product_ships() {
    let root = artifacts::workspace_root();
    let read = |path: &str| {
        let text = std::fs::read_to_string(root.join(path)).unwrap();
        lock_packages(&text)
    };
    let product = read("Cargo.lock");
    let fuzz = read("tools/fuzz/Cargo.lock");
    let shipped: std::collections::BTreeSet<&(String, String)> = product.iter().collect();
    let names: std::collections::BTreeSet<&str> = product.iter().map(|(n, _)| n.as_str()).collect();
    let differ: Vec<String> = fuzz
        .iter()
        .filter(|p| names.contains(p.0.as_str()) && !shipped.contains(p))
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    assert!(
        fuzz.len() > 100,
        "tools/fuzz/Cargo.lock lists {} packages",
        fuzz.len()
    );
    assert!(
        differ.is_empty(),
        "tools/fuzz/Cargo.lock has versions the product does not ship: {differ:?}; bring it \
         in line (from the workspace root):\n  cp Cargo.lock tools/fuzz/Cargo.lock && cargo \
         metadata --manifest-path tools/fuzz/Cargo.toml --format-version 1 >/dev/null"
    );
}

/// `(name, version)` of every `[[package]]` of a Cargo.lock.
fn lock_packages(text: &str) -> Vec<(String, String)> {
    let value = |line: &str, key: &str| {
        let rest = line
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        Some(rest.trim_matches('"').to_string())
    };
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = value(line, "name") {
            name = Some(n);
        } else if let (Some(v), Some(n)) = (value(line, "version"), name.take()) {
            out.push((n, v));
        }
    }
    out
}
