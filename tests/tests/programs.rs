//! `tools/programs.txt` against the code: every program the workspace's Rust code and shell
//! scripts start is listed; every listed Debian package really provides its program (asked of
//! dpkg, not assumed); and `tools/setup.sh --check` names a program that is missing.
//!
//! This is what turns the next forgotten package into a red test instead of a silent
//! dependency on the machine that happened to have it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use lbtest::program_uses::{self, ProgramUse};
use lbtest::programs::{self, ProgramList, Provider};
use lbtest::{artifacts, process};

/// Words the scanner finds that are not host programs, with why.
const NOT_PROGRAMS: &[(&str, &str, &str)] = &[
    (
        "tests/src/program_uses",
        "*",
        "the scanner's own docs and test inputs",
    ),
    (
        "tests/src/process.rs",
        "lbtest-no-such-program",
        "a test that a missing program is reported",
    ),
    (
        "tests/src/process.rs",
        "/nonexistent/sh",
        "the same, by path",
    ),
    (
        "tests/src/programs.rs",
        "*",
        "the list's own tests, and where python modules live",
    ),
    (
        "tests/src/qemu/mod.rs",
        "qemu",
        "a test of how command lines are quoted",
    ),
];

fn exempt(u: &ProgramUse) -> bool {
    NOT_PROGRAMS
        .iter()
        .any(|(file, prog, _)| u.file.starts_with(file) && (*prog == "*" || *prog == u.program))
}

fn is_listed(list: &ProgramList, program: &str) -> bool {
    if program.starts_with('/') {
        list.covers_path(program)
    } else {
        list.get(program).is_some()
    }
}

#[test]
fn every_program_the_workspace_starts_is_listed() {
    let root = artifacts::workspace_root();
    let uses = program_uses::scan(root).expect("scan the workspace");
    let list = programs::list();
    // The scan must see the places we know start programs, or it proves nothing.
    for (file, program) in [
        ("tools/setup.sh", "apt-get"),
        ("tools/demo.sh", "cargo"),
        ("tools/build-test-image.sh", "ldd"),
        ("tests/src/qemu/builder.rs", "ip"),
        ("init/tests/fetch_common/mod.rs", "in.tftpd"),
    ] {
        assert!(
            uses.iter()
                .any(|u| u.file == Path::new(file) && u.program == program),
            "the scan did not find `{program}` in {file}: the scanner has lost a pattern"
        );
    }
    // An exemption that matches nothing is stale and would hide the next real use.
    let stale: Vec<String> = NOT_PROGRAMS
        .iter()
        .filter(|(file, prog, _)| {
            !uses
                .iter()
                .any(|u| u.file.starts_with(file) && (*prog == "*" || *prog == u.program))
        })
        .map(|(file, prog, why)| format!("{file}: `{prog}` ({why})"))
        .collect();
    assert!(
        stale.is_empty(),
        "exemptions in NOT_PROGRAMS that match no use any more (remove them):\n  {}",
        stale.join("\n  ")
    );
    let unlisted: Vec<String> = uses
        .iter()
        .filter(|u| !exempt(u) && !is_listed(list, &u.program))
        .map(|u| format!("{}:{}: `{}`", u.file.display(), u.line, u.program))
        .collect();
    assert!(
        unlisted.is_empty(),
        "programs started by the workspace but missing from {} (add each with the Debian package that provides it):\n  {}",
        programs::LIST,
        unlisted.join("\n  ")
    );
    eprintln!(
        "{} uses of {} programs checked against {} listed",
        uses.len(),
        uses.iter()
            .map(|u| &u.program)
            .collect::<BTreeSet<_>>()
            .len(),
        list.entries().len()
    );
}

/// The packages that own `path` according to dpkg (merged /usr: `/usr/bin/x` may be recorded
/// as `/bin/x`; a symlink's target may be the owned file).
fn owners(path: &Path) -> BTreeSet<String> {
    let mut candidates: Vec<PathBuf> = vec![path.to_path_buf()];
    if let Ok(real) = path.canonicalize() {
        candidates.push(real);
    }
    for c in candidates.clone() {
        let s = c.to_string_lossy().into_owned();
        if let Some(rest) = s.strip_prefix("/usr") {
            candidates.push(PathBuf::from(rest));
        } else {
            candidates.push(PathBuf::from(format!("/usr{s}")));
        }
    }
    let mut found = BTreeSet::new();
    for c in candidates {
        let Ok(out) = programs::command("dpkg-query").arg("-S").arg(&c).output() else {
            continue;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.starts_with("diversion ") {
                continue;
            }
            if let Some((pkgs, p)) = line.rsplit_once(": ") {
                if Path::new(p.trim()) == c {
                    found.extend(
                        pkgs.split(", ")
                            .map(|p| p.split(':').next().unwrap_or(p).trim().to_owned()),
                    );
                }
            }
        }
    }
    found
}

/// `package` and the packages it depends on, two levels deep (meta-packages such as
/// `postgresql` → `postgresql-15`).
fn with_dependencies(package: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::from([package.to_owned()]);
    let mut frontier = vec![package.to_owned()];
    for _ in 0..2 {
        let mut next = Vec::new();
        for p in frontier {
            let out = programs::command("dpkg-query")
                .args(["-W", "-f=${Depends},${Pre-Depends}", &p])
                .output()
                .expect("dpkg-query");
            for dep in String::from_utf8_lossy(&out.stdout).split([',', '|']) {
                let name = dep.split_whitespace().next().unwrap_or("");
                let name = name.split(':').next().unwrap_or(name);
                if !name.is_empty() && all.insert(name.to_owned()) {
                    next.push(name.to_owned());
                }
            }
        }
        frontier = next;
    }
    all
}

#[test]
fn every_listed_package_provides_its_program() {
    let list = programs::list();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for entry in list.entries() {
        let Provider::Debian(package) = &entry.provider else {
            continue;
        };
        let Some(path) = entry.locate() else {
            wrong.push(format!(
                "{}:{}: `{}` is not installed (package {package}: run tools/setup.sh)",
                programs::LIST,
                entry.line,
                entry.program
            ));
            continue;
        };
        let owned_by = owners(&path);
        let accepted = with_dependencies(package);
        if owned_by.is_disjoint(&accepted) {
            wrong.push(format!(
                "{}:{}: `{}` ({}) belongs to {} according to dpkg, not to {package}",
                programs::LIST,
                entry.line,
                entry.program,
                path.display(),
                if owned_by.is_empty() {
                    "no package".to_owned()
                } else {
                    owned_by.into_iter().collect::<Vec<_>>().join(", ")
                }
            ));
        }
        checked += 1;
    }
    assert!(
        wrong.is_empty(),
        "the list is wrong:\n  {}",
        wrong.join("\n  ")
    );
    assert!(checked > 40, "only {checked} entries checked");
}

/// Runs `tools/setup.sh --check` with PATH set to a directory of links to every listed command
/// except those in `leave_out`.
fn setup_check(leave_out: &[&str]) -> (bool, String) {
    let farm = tempfile::tempdir().unwrap();
    for entry in programs::list().entries() {
        let name = &entry.program;
        if name.starts_with('/') || name.starts_with("py:") || leave_out.contains(&name.as_str()) {
            continue;
        }
        // The toolchain comes from PATH (rustup's shims), the rest from the system directories.
        let target = match entry.provider {
            Provider::RustToolchain => std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            }),
            Provider::Debian(_) => entry.locate(),
        };
        if let Some(target) = target {
            symlink(target, farm.path().join(name)).unwrap();
        }
    }
    let bash = programs::path("bash");
    let out = Command::new(bash)
        .arg(artifacts::workspace_root().join("tools/setup.sh"))
        .arg("--check")
        .env_clear()
        .env("PATH", farm.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn setup_check_passes_with_everything_and_names_what_is_missing() {
    process::require_root("tools/setup.sh has run as root and installed the list");
    let (ok, text) = setup_check(&[]);
    assert!(
        ok,
        "setup.sh --check fails with every listed program on PATH:\n{text}"
    );
    assert!(!text.contains("missing:"), "{text}");

    let (ok, text) = setup_check(&["tshark"]);
    assert!(!ok, "setup.sh --check passed without tshark:\n{text}");
    let missing: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("missing: "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(
        missing.keys().copied().collect::<Vec<_>>(),
        ["tshark"],
        "exactly tshark should be missing:\n{text}"
    );
    assert!(
        missing["tshark"].contains("package tshark")
            && missing["tshark"].contains("apt-get install tshark"),
        "{text}"
    );
}

#[test]
fn setup_check_reports_a_missing_package_by_name() {
    // The same with a program whose package has another name.
    let (ok, text) = setup_check(&["in.tftpd"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("missing: in.tftpd (package tftpd-hpa: apt-get install tftpd-hpa)"),
        "{text}"
    );
}
