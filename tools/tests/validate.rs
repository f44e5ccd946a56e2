//! `lbctl validate` on the shipped samples and on a broken file.

use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn samples_validate() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3);
    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("validate")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": ok: ")).count(),
        files.len(),
        "{stdout}"
    );
}

#[test]
fn broken_file_fails_with_location() {
    let dir = std::env::temp_dir().join(format!("lbctl-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[service.a]\nvip = \"192.0.2.1:80\"\nforwarding = \"bridge\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:14"), "{err}");
    assert!(
        err.contains("unknown forwarding method \"bridge\""),
        "{err}"
    );
    let usage = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}
