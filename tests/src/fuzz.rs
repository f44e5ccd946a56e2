//! Replaying fuzz corpora in plain `cargo test`: each crate's targets (`<crate>::fuzz`) run on
//! the committed seeds (`tools/fuzz/seeds/TARGET`: real bytes and files) and on every input a
//! fuzzing run once crashed on (`tools/fuzz/regressions/TARGET`), so a fixed crash stays fixed.

use std::path::PathBuf;

use crate::artifacts::workspace_root;

fn corpus(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = workspace_root().join("tools/fuzz").join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A fuzz target: the name of its corpus directories, and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Runs every target on its seeds and regressions; fails naming the target and the file that
/// panics, and when a target has no seeds.
pub fn replay(targets: &[Target]) {
    for (target, run) in targets {
        let seeds = corpus("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for file in seeds.iter().chain(&corpus("regressions", target)) {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {target} panics on {}",
                file.display()
            );
        }
    }
}
