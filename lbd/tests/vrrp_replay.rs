//! Conformance cases: runs recorded with `LBD_VRRP_RECORD=DIR` from real lbd processes (see
//! the first line of each file), replayed through the pure state machine. Every step must give
//! the recorded actions exactly, so a change of behaviour shows up as a diff against a real
//! run. No root needed.

use lbd::vrrp::{Action, Input, Router};
use std::path::PathBuf;
use std::time::Duration;

fn lines(path: &PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut it = text.lines();
    let first = it.next().unwrap_or_default();
    assert!(
        first.starts_with('#'),
        "{}: the first line says what the case shows",
        path.display()
    );
    it.filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn recorded_runs_replay_to_the_same_actions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vrrp_conformance");
    let mut cases = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for input in entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with("-input.jsonl"))
    {
        let output = PathBuf::from(
            input
                .to_string_lossy()
                .replace("-input.jsonl", "-output.jsonl"),
        );
        let ins = lines(input);
        let outs = lines(&output);
        assert_eq!(
            ins.len(),
            outs.len(),
            "{}: one output line per input",
            input.display()
        );
        let mut router = Router::new();
        for (k, (i, o)) in ins.iter().zip(&outs).enumerate() {
            let (now, step): (Duration, Input) = serde_json::from_str(i)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", input.display(), k + 2));
            let want: Vec<Action> = serde_json::from_str(o)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", output.display(), k + 2));
            let got = router.step(now, step);
            assert_eq!(
                got,
                want,
                "{} line {}: actions differ",
                input.display(),
                k + 2
            );
        }
        cases += 1;
    }
    assert!(
        cases >= 2,
        "no conformance cases found in {}",
        dir.display()
    );
}
