//! Finds the host programs that the workspace's code and scripts start, so a test can hold them
//! against `tools/programs.txt` (see [`crate::programs`]).
//!
//! Rust: the call sites that start programs in this workspace — `Command::new("…")`,
//! `programs::command/path("…")`, `require*(…)`, `run_args("…")`, a namespace's or lab's
//! `run/spawn/exec/output/program(…&["prog", …])` and `.command("prog")` — and absolute paths
//! under `/usr` in string literals. Shell: the first word of every simple command (after
//! `;`, `&&`, `|`, `$(`, keywords, assignments, redirections, `exec`/`command -v`/`runuser --`),
//! skipping builtins, the script's own functions, case patterns and heredoc bodies.
//!
//! Heuristic by design (no full parser), and tested below against the forms the project uses.

use std::path::{Path, PathBuf};

/// One program a file starts (or checks for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramUse {
    /// The file, relative to the scanned root.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// A command name or an absolute path.
    pub program: String,
}

mod rust;
mod shell;
mod shell_lexer;

pub use rust::rust_uses;
pub use shell::shell_uses;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

fn plausible_program(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c))
        && !s.starts_with('-')
        && (s.starts_with('/') || !s.contains('/'))
}

/// True for a file that is a shell script: `.sh`, or a shebang naming sh or bash.
pub fn is_shell_script(path: &Path, text: &str) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let first = text.lines().next().unwrap_or("");
    first.starts_with("#!") && (first.contains("bash") || first.ends_with("/sh"))
}

/// Every program used by the Rust sources and shell scripts below `root` (`target` and hidden
/// directories skipped), with file and line.
pub fn scan(root: &Path) -> std::io::Result<Vec<ProgramUse>> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    let mut uses = Vec::new();
    for rel in files {
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else {
            continue;
        };
        let found = if rel.extension().is_some_and(|e| e == "rs") {
            rust_uses(&text)
        } else if is_shell_script(&rel, &text) {
            shell_uses(&text)
        } else {
            continue;
        };
        uses.extend(found.into_iter().map(|(line, program)| ProgramUse {
            file: rel.clone(),
            line,
            program,
        }));
    }
    Ok(uses)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            // The CI entry point lives in .ci; other hidden directories (.git, .cache) are not ours.
            if name == "target" || (name.starts_with('.') && name != ".ci") {
                continue;
            }
            collect(root, &path, out)?;
        } else if ty.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[(usize, String)]) -> Vec<&str> {
        let mut v: Vec<&str> = found.iter().map(|(_, p)| p.as_str()).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn rust_call_sites_are_found_with_lines() {
        let src = r#"
fn a() {
    let out = Command::new("frobnicate").arg("x");
    lbtest::programs::command("curl");
    require(&["ip", "tshark"]);
    require("atftp");
    ns.spawn(&["nginx", "-c", conf]);
    lab.program(0, "ka", &["keepalived", "-n"]);
    ns.command("dnsmasq");
    let p = "/usr/lib/postgresql/15/bin/initdb";
    sh.run("ipvsadm -Ln", CMD); // a guest shell: not a host program
    stats.command("stats line") // not a name
}
"#;
        let found = rust_uses(src);
        assert_eq!(
            names(&found),
            [
                "/usr/lib/postgresql/15/bin/initdb",
                "atftp",
                "curl",
                "dnsmasq",
                "frobnicate",
                "ip",
                "keepalived",
                "nginx",
                "tshark"
            ]
        );
        assert!(found.contains(&(3, "frobnicate".to_owned())));
        assert!(found.contains(&(5, "tshark".to_owned())));
    }

    #[test]
    fn shell_commands_are_found_after_separators_and_in_substitutions() {
        let script = r#"#!/usr/bin/env bash
# a comment naming notaprogram
set -euo pipefail
out=${1:-target/x}
die() { printf 'x\n' >&2; exit 1; }
cargo build --release -p init 2>/dev/null || die "no"
busybox=$(command -v busybox || true)
libs=$(ldd "$prog" | awk '$2 == "=>" { print $3 }')
for lib in $libs; do cp "$lib" "$out"; done
if [[ -f x ]] && grep -q y z; then sed -n 1p a; fi
case "$mode" in
--check) CHECK=1 ;;
kvm | tcg) qemu-system-x86_64 -accel "$mode" ;;
esac
python3 - "$sock" <<'PY'
import json
notacommand here
PY
tools/setup.sh
X=1 Y=2 timeout 5 curl http://x/
echo "$(date +%s) and $(stat -c %Y f)"
(( n = n + 1 ))
exec tail -f log
runuser -u nobody -- rustup target list
PACKAGES=(linux-image-amd64 firmware-bnx2
    firmware-realtek)
"#;
        let found = shell_uses(script);
        assert_eq!(
            names(&found),
            [
                "awk",
                "busybox",
                "cargo",
                "cp",
                "curl",
                "date",
                "grep",
                "ldd",
                "python3",
                "qemu-system-x86_64",
                "runuser",
                "rustup",
                "sed",
                "stat",
                "tail",
                "timeout"
            ]
        );
        assert!(found.contains(&(6, "cargo".to_owned())), "{found:?}");
        assert!(found.contains(&(15, "python3".to_owned())), "{found:?}");
    }

    #[test]
    fn shell_scripts_are_recognised() {
        assert!(is_shell_script(Path::new("tools/x.sh"), ""));
        assert!(is_shell_script(
            Path::new(".ci/run"),
            "#!/usr/bin/env bash\n"
        ));
        assert!(is_shell_script(Path::new("x"), "#!/bin/sh\n"));
        assert!(!is_shell_script(
            Path::new("x.rs"),
            "#!/usr/bin/env python3\n"
        ));
    }
}
