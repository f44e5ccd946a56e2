//! Every environment variable the code reads is documented: a product binary's in its own
//! `--help` and in the README, the harness's and the benchmarks' in the README. A variable that
//! changes behaviour and that nobody can find is a setting operators would trip over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lbtest::artifacts::workspace_root;
use lbtest::fresh::{self, Profile};
use regex::Regex;

/// Variables that are conventions of the platform, not settings of ours.
const PLATFORM: &[&str] = &[
    "PATH",
    "HOME",
    "TERM",
    "CARGO",
    "CARGO_TARGET_DIR",
    "SUDO_USER",
];

/// `NAME` of every variable read in the Rust files below `dir` (recursively), with where.
fn read_vars(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let patterns = [
        r#"env::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]+)"\s*\)"#,
        r#"\benv\s*=\s*"([A-Z][A-Z0-9_]+)""#,
        r#"logging::init\(\s*"[^"]+",\s*"([A-Z][A-Z0-9_]+)""#,
        r#"const ENV_[A-Z0-9_]+: &str = "([A-Z][A-Z0-9_]+)""#,
    ]
    .map(|p| Regex::new(p).unwrap());
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(workspace_root()).unwrap().to_path_buf();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for re in &patterns {
                    for c in re.captures_iter(&text) {
                        let name = c[1].to_owned();
                        if !PLATFORM.contains(&name.as_str()) {
                            found
                                .entry(name)
                                .or_insert_with(|| rel.display().to_string());
                        }
                    }
                }
            }
        }
    }
    found
}

fn help(binary: &Path) -> String {
    let out = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(out.status.success(), "{} --help failed", binary.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_variable_a_binary_reads_is_in_its_help_and_the_readme() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let products = [
        ("init", "init", vec!["init/src"]),
        ("lbd", "lbd", vec!["lbd/src"]),
        ("lbctl", "lbctl", vec!["tools/src"]),
        ("image", "image", vec!["image/src"]),
        ("pxe", "pxe", vec!["pxe/src"]),
    ];
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for (package, bin, dirs) in &products {
        let text = help(&fresh::binary(package, bin, Profile::Debug));
        for dir in dirs {
            // The benchmark programs are not the daemon: their variables are checked below.
            for (var, file) in read_vars(&root.join(dir), &[]) {
                seen.insert(var.clone());
                if !text.contains(&var) {
                    missing.push(format!("{var} (read in {file}) is not in `{bin} --help`"));
                }
                if !readme.contains(&var) {
                    missing.push(format!("{var} (read in {file}) is not in README.md"));
                }
            }
        }
    }
    for dir in ["tests/src", "tests/bench/src"] {
        for (var, file) in read_vars(&root.join(dir), &[]) {
            seen.insert(var.clone());
            if !readme.contains(&var) {
                missing.push(format!("{var} (read in {file}) is not in README.md"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented environment variables:\n  {}",
        missing.join("\n  ")
    );
    // The scan must find the ones we know, or it proves nothing.
    for known in [
        "LBD_LOG",
        "LBD_API_SOCKET",
        "LBCTL_URL",
        "LB_ACCEL",
        "LB_INIT_LOG",
    ] {
        assert!(seen.contains(known), "the scan lost {known}: {seen:?}");
    }
}
