//! `tools/test-summary.sh` (the end of `tools/test.sh`) on the output of a real
//! `cargo test --no-fail-fast`: a throw-away crate with a passing, a failing and an ignored test,
//! and a second test binary that aborts without a result line. The summary must count them,
//! name the failed test and both failed binaries, and exit non-zero; on a clean run it exits 0.

use std::path::Path;
use std::process::Output;

use lbtest::{artifacts, programs};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `cargo test --no-fail-fast` in `dir`, stdout and stderr interleaved into one log as
/// `2>&1 | tee` makes it in tools/test.sh.
fn cargo_test(dir: &Path) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let log_path = dir.join("cargo.log");
    let log = std::fs::File::create(&log_path).unwrap();
    std::process::Command::new(cargo)
        .args(["test", "--offline", "--no-fail-fast"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    std::fs::read_to_string(&log_path).unwrap()
}

fn summarise(log: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cargo-test.log");
    std::fs::write(&path, log).unwrap();
    programs::command("bash")
        .arg(artifacts::workspace_root().join("tools/test-summary.sh"))
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn failures_are_counted_and_named_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("Cargo.toml"),
        "[package]\nname = \"sample\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    );
    write(
        &root.join("src/lib.rs"),
        "#[cfg(test)]\nmod tests {\n\
         #[test] fn adds_up() { assert_eq!(1 + 1, 2); }\n\
         #[test] fn wrong_sum() { assert_eq!(1 + 1, 3); }\n\
         #[test] #[ignore] fn slow_one() {}\n}\n",
    );
    write(
        &root.join("tests/crashes.rs"),
        "#[test] fn aborts() { std::process::abort(); }\n",
    );
    let log = cargo_test(root);
    let out = summarise(&log);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}\n--- cargo said:\n{log}");
    assert!(
        text.contains("test: 1 passed, 1 failed, 1 ignored, in 3 test binaries"),
        "{text}\n--- cargo said:\n{log}"
    );
    assert!(
        text.contains("tests::wrong_sum  (unittests src/lib.rs, sample)"),
        "{text}"
    );
    assert!(
        text.contains("--lib"),
        "the failing lib binary is not named:\n{text}"
    );
    assert!(
        text.contains("--test crashes"),
        "the aborted binary is not named:\n{text}"
    );

    // The same crate fixed: a clean summary and exit 0.
    write(
        &root.join("src/lib.rs"),
        "#[cfg(test)]\nmod tests {\n#[test] fn adds_up() { assert_eq!(1 + 1, 2); }\n}\n",
    );
    std::fs::remove_file(root.join("tests/crashes.rs")).unwrap();
    let log = cargo_test(root);
    let out = summarise(&log);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n--- cargo said:\n{log}");
    assert!(
        text.contains("test: 1 passed, 0 failed, 0 ignored"),
        "{text}"
    );
    assert!(!text.contains("failed tests"), "{text}");
    // The binaries that ran are listed by time, each named.
    assert!(
        text.contains("slowest test binaries") && text.contains("unittests src/lib.rs, sample"),
        "{text}"
    );
}
