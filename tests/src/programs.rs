//! The host programs the build, the image, the demo and the tests use, as `tools/programs.txt`
//! lists them with the Debian package of each (the one list `tools/setup.sh` installs from).
//!
//! Tests find programs only through this module: a listed program is looked up in the system's
//! own directories ([`SYSTEM_DIRS`]), never on `PATH`, so a program installed by hand elsewhere
//! (pyenv's python3, /usr/local) cannot stand in for the packaged one and hide a missing
//! package. A program that is not listed, or listed but not installed, fails the test with the
//! package and the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::artifacts;

/// The list, relative to the workspace root.
pub const LIST: &str = "tools/programs.txt";

/// Where Debian's packages put programs (merged /usr: the last two are the first two).
pub const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Where Debian's python3 finds the modules that packages install.
pub const PYTHON_DIST: &str = "/usr/lib/python3/dist-packages";

/// What provides a listed program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// A Debian package.
    Debian(String),
    /// The Rust toolchain (rustup): `-` in the list.
    RustToolchain,
}

impl Provider {
    /// The command that installs it, for messages.
    pub fn install_hint(&self) -> String {
        match self {
            Provider::Debian(p) => {
                format!("run tools/setup.sh (as root), or apt-get install -y {p}")
            }
            Provider::RustToolchain => "install rustup (https://rustup.rs)".to_owned(),
        }
    }
}

/// One line of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// A command name, an absolute path (`*` matches within one path component), or
    /// `py:MODULE`.
    pub program: String,
    /// Its package.
    pub provider: Provider,
    /// What it is for (free text).
    pub purpose: String,
    /// The 1-based line in the list.
    pub line: usize,
}

impl Entry {
    /// Where the program (or file, or module directory) is on this machine, if installed.
    pub fn locate(&self) -> Option<PathBuf> {
        if let Some(module) = self.program.strip_prefix("py:") {
            let dir = Path::new(PYTHON_DIST);
            return [dir.join(module), dir.join(format!("{module}.py"))]
                .into_iter()
                .find(|p| p.exists());
        }
        if self.program.starts_with('/') {
            return glob_first(&self.program);
        }
        SYSTEM_DIRS
            .iter()
            .map(|d| Path::new(d).join(&self.program))
            .find(|p| is_executable(p))
    }
}

/// The parsed list.
#[derive(Clone, Debug)]
pub struct ProgramList {
    entries: Vec<Entry>,
}

impl ProgramList {
    /// Parses the list's text; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("");
            let mut words = content.split_whitespace();
            let Some(program) = words.next() else {
                continue;
            };
            let provider = match words.next() {
                None => {
                    return Err(format!(
                        "{LIST}:{line}: `{program}` names no package (write `-` for the Rust toolchain)"
                    ))
                }
                Some("-") => Provider::RustToolchain,
                Some(p) => Provider::Debian(p.to_owned()),
            };
            if let Some(earlier) = entries.iter().find(|e| e.program == program) {
                return Err(format!(
                    "{LIST}:{line}: `{program}` is listed twice (first on line {})",
                    earlier.line
                ));
            }
            entries.push(Entry {
                program: program.to_owned(),
                provider,
                purpose: words.collect::<Vec<_>>().join(" "),
                line,
            });
        }
        Ok(Self { entries })
    }

    /// Every entry, in the list's order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry for `program`: a command name, a listed path, or a path in one of the
    /// [`SYSTEM_DIRS`] whose name is listed (`/usr/sbin/ipvsadm` is `ipvsadm`).
    pub fn get(&self, program: &str) -> Option<&Entry> {
        if let Some(e) = self.entries.iter().find(|e| e.program == program) {
            return Some(e);
        }
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.program.starts_with('/') && glob_match(&e.program, program))
        {
            return Some(e);
        }
        let path = Path::new(program);
        let dir = path.parent()?.to_str()?;
        if !SYSTEM_DIRS.contains(&dir) {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        self.entries.iter().find(|e| e.program == name)
    }

    /// True when `path` is a listed path, lies below one (a directory of a listed file), or
    /// names a listed program (see [`ProgramList::get`]).
    pub fn covers_path(&self, path: &str) -> bool {
        if self.get(path).is_some() {
            return true;
        }
        let dir: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        self.entries.iter().any(|e| {
            let listed: Vec<&str> = e.program.split('/').filter(|c| !c.is_empty()).collect();
            e.program.starts_with('/')
                && listed.len() > dir.len()
                && dir.iter().zip(&listed).all(|(d, l)| glob_match(l, d))
        })
    }
}

/// The list from the workspace, parsed once; a malformed list fails the test.
pub fn list() -> &'static ProgramList {
    static LIST_CELL: OnceLock<ProgramList> = OnceLock::new();
    LIST_CELL.get_or_init(|| {
        let path = artifacts::workspace_root().join(LIST);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        ProgramList::parse(&text).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Why a program cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// The program is not in the list.
    #[error("`{0}` is not in {LIST}: add it there with the Debian package that provides it, so tools/setup.sh installs it")]
    NotListed(String),
    /// Listed, but not on this machine.
    #[error("this needs `{program}` (package {package}), which is not installed: {hint}")]
    Missing {
        /// The program.
        program: String,
        /// Its package.
        package: String,
        /// How to install it.
        hint: String,
    },
}

/// The path of a listed program, found in the system's directories (a listed path is itself).
pub fn try_path(program: &str) -> Result<PathBuf, ProgramError> {
    let entry = list()
        .get(program)
        .ok_or_else(|| ProgramError::NotListed(program.to_owned()))?;
    let missing = || ProgramError::Missing {
        program: program.to_owned(),
        package: match &entry.provider {
            Provider::Debian(p) => p.clone(),
            Provider::RustToolchain => "the Rust toolchain".to_owned(),
        },
        hint: entry.provider.install_hint(),
    };
    if program.contains('/') {
        // Asked for by path: that exact file.
        return if Path::new(program).exists() {
            Ok(PathBuf::from(program))
        } else {
            Err(missing())
        };
    }
    entry.locate().ok_or_else(missing)
}

/// [`try_path`], failing the test with the reason.
pub fn path(program: &str) -> PathBuf {
    try_path(program).unwrap_or_else(|e| panic!("{e}"))
}

/// A [`Command`] for a listed program (see [`path`]).
pub fn command(program: &str) -> Command {
    Command::new(path(program))
}

/// The path to run for `program` when it is given as an argument vector's first word: a path
/// (it contains `/`) as it is, a listed command name resolved by [`path`].
pub fn resolve_arg0(program: &std::ffi::OsStr) -> PathBuf {
    match program.to_str() {
        Some(name) if !name.contains('/') => path(name),
        _ => PathBuf::from(program),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first existing path matching `pattern` (`*` within one component), in sorted order.
fn glob_first(pattern: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = vec![PathBuf::from("/")];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &found {
            if part.contains('*') {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| glob_match(part, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                let p = dir.join(part);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        found = next;
    }
    found.into_iter().next()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters other than `/`.
fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| i == 0 || !rest[..i].contains('/'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob_match(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# comment\n\
        cargo  -  builds\n\
        ip     iproute2   namespaces # trailing comment\n\
        \n\
        /usr/lib/postgresql/*/bin/initdb postgresql\n\
        py:aiosmtpd python3-aiosmtpd SMTP peer\n";

    #[test]
    fn the_list_parses_with_packages_lines_and_purposes() {
        let list = ProgramList::parse(SAMPLE).unwrap();
        let ip = list.get("ip").unwrap();
        assert_eq!(ip.provider, Provider::Debian("iproute2".into()));
        assert_eq!(ip.line, 3);
        assert_eq!(ip.purpose, "namespaces");
        assert_eq!(list.get("cargo").unwrap().provider, Provider::RustToolchain);
        assert_eq!(list.entries().len(), 4);
    }

    #[test]
    fn paths_in_system_dirs_and_globs_find_their_entries() {
        let list = ProgramList::parse(SAMPLE).unwrap();
        assert_eq!(list.get("/usr/sbin/ip").unwrap().program, "ip");
        assert_eq!(list.get("/bin/ip").unwrap().program, "ip");
        assert!(list.get("/opt/ip").is_none());
        assert!(list.get("/usr/lib/postgresql/15/bin/initdb").is_some());
        assert!(list.get("/usr/lib/postgresql/15/x/bin/initdb").is_none());
        assert!(list.covers_path("/usr/lib/postgresql/15/bin"));
        assert!(!list.covers_path("/usr/lib/mysql"));
        assert!(list.get("tshark").is_none());
    }

    #[test]
    fn malformed_lists_are_refused_with_the_line() {
        let e = ProgramList::parse("ip iproute2\ncurl\n").unwrap_err();
        assert!(e.contains(":2:") && e.contains("curl"), "{e}");
        let e = ProgramList::parse("ip iproute2\nip iproute2\n").unwrap_err();
        assert!(e.contains("twice") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn globs_match_within_one_component() {
        assert!(glob_match("/a/*/c", "/a/15/c"));
        assert!(!glob_match("/a/*/c", "/a/1/5/c"));
        assert!(glob_match("x*", "x"));
        assert!(!glob_match("x", "xy"));
    }

    #[test]
    fn unlisted_programs_are_refused_by_name() {
        let e = try_path("lbtest-no-such-program").unwrap_err();
        assert!(matches!(e, ProgramError::NotListed(_)), "{e}");
        assert!(e.to_string().contains(LIST), "{e}");
    }

    #[test]
    fn listed_programs_resolve_outside_path() {
        // sh is essential: always installed, always in a system directory.
        let sh = path("sh");
        assert!(
            SYSTEM_DIRS.iter().any(|d| sh.starts_with(d)),
            "{}",
            sh.display()
        );
    }
}
