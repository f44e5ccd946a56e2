//! Running helper programs (`ip`, `dpkg-deb`, `python3`, ...) with errors that say what ran and
//! what it printed, a guard that kills a child process when the test lets go of it (optionally
//! with its output in a log file the test can wait on), and test preconditions (root, programs).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

/// A helper command that could not be run or did not succeed.
#[derive(thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (not installed, not executable, ...).
    #[error(
        "cannot start `{cmd}`: {source} (is it installed? tools/setup.sh installs the test tools)"
    )]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {}", stderr.trim())]
    Failed {
        /// The command line.
        cmd: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stdout.
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The log file for a child's output could not be created.
    #[error("cannot create the log {} for `{cmd}`: {source}", path.display())]
    Log {
        /// The command line.
        cmd: String,
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

crate::debug_is_display!(CommandError);

/// The command line of `cmd`, for messages (`ip -n ns0 link set up dev lo`).
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with stdin closed and its output captured; an unsuccessful exit is an
/// error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<Output, CommandError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CommandError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(CommandError::Failed {
            cmd: describe(cmd),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Like [`run`] for a program and its arguments, returning stdout as text.
pub fn run_args<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String, CommandError> {
    let out = run(Command::new(crate::programs::resolve_arg0(program.as_ref())).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process that is killed (SIGKILL) and reaped when the guard is dropped, so a failing
/// test never leaves servers behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    what: String,
    /// Where stdout and stderr go, when started with [`ChildGuard::spawn_logged`].
    log: Option<PathBuf>,
}

impl ChildGuard {
    /// Takes ownership of `child`; `what` names it in messages.
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        Self {
            child,
            what: what.into(),
            log: None,
        }
    }

    /// Starts `cmd` with stdin closed and stdout and stderr both written to `log` (created or
    /// truncated), and guards the child. [`ChildGuard::log`] and [`ChildGuard::wait_log`] read it.
    pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Self, CommandError> {
        let log_err = |source| CommandError::Log {
            cmd: describe(cmd),
            path: log.to_owned(),
            source,
        };
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut guard = Self::spawn(cmd)?;
        guard.log = Some(log.to_owned());
        Ok(guard)
    }

    /// Starts `cmd` and guards the child.
    pub fn spawn(cmd: &mut Command) -> Result<Self, CommandError> {
        let what = describe(cmd);
        let child = cmd.spawn().map_err(|source| CommandError::Spawn {
            cmd: what.clone(),
            source,
        })?;
        Ok(Self::new(child, what))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What this child is (its command line unless named otherwise).
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The guarded child, e.g. to take its stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `Some(status)` once the child has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// True while the child has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` to the child, unless it has already exited (and been reaped: its pid may
    /// belong to another process by now).
    pub fn signal(&mut self, signal: Signal) {
        if self.running() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// Waits (polling, at most `timeout`) for the child to exit; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        crate::wait::until(timeout, Duration::from_millis(10), || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Panics with how the child ended and what it said (piped stderr, log file) if it has
    /// already exited: for servers that must still be running.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut said = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = stderr.read_to_string(&mut said);
            }
            said.push_str(&self.log());
            panic!("{} exited early ({status}): {said}", self.what);
        }
    }

    /// The log file, if started with [`ChildGuard::spawn_logged`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// What the child wrote to its log so far (empty without a log).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Waits (polling every 5 ms, at most `timeout`) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        crate::wait::until(timeout, Duration::from_millis(5), || {
            self.log().contains(needle)
        })
        .is_some()
    }

    /// How often `needle` occurs in the log so far.
    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Kills the child now and reaps it; returns how it ended.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // It may exit between try_wait and kill; wait() below reaps it either way.
        let _ = self.child.kill();
        self.child.wait()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound and released). Another process may
/// take it before the caller binds it, so callers that can retry on "address in use" should.
pub fn free_tcp_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// True when the process runs as root (network namespaces, taps and bridges need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test unless it runs as root; `why` says what needs it ("network namespaces").
pub fn require_root(why: &str) {
    assert!(is_root(), "this test needs root ({why}); run it as root");
}

/// Where `program` is: itself if it is a path (contains `/`), else the listed program found in
/// the system's directories (see [`crate::programs`]); `None` if it is not listed or not
/// installed.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    crate::programs::try_path(program).ok()
}

/// The path of `program`, or a test failure that names the package to install (or, for a
/// program missing from `tools/programs.txt`, says to list it there).
pub fn require_program(program: &str) -> PathBuf {
    crate::programs::path(program)
}

/// Fails the test unless every program in `programs` exists (see [`require_program`]).
pub fn require_programs(programs: &[&str]) {
    for program in programs {
        require_program(program);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_joins_program_and_args() {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", "ns0", "link"]);
        assert_eq!(describe(&cmd), "ip -n ns0 link");
    }

    #[test]
    fn run_reports_stderr_of_a_failing_command() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("oops"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
    }

    #[test]
    fn run_reports_a_missing_program() {
        let err = run(&mut Command::new("lbtest-no-such-program")).unwrap_err();
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
    }

    #[test]
    fn programs_are_found_by_name_and_by_path() {
        let sh = find_program("sh").expect("sh on PATH");
        assert!(sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program("lbtest-no-such-program"), None);
        assert_eq!(find_program("/nonexistent/sh"), None);
    }

    #[test]
    fn logged_child_output_is_waited_for_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("child.log");
        let mut child = ChildGuard::spawn_logged(
            Command::new("sh").args(["-c", "echo one; echo two >&2; echo one; sleep 600"]),
            &log,
        )
        .unwrap();
        assert!(
            child.wait_log("two", Duration::from_secs(10)),
            "{}",
            child.log()
        );
        assert!(child.wait_log("one", Duration::from_secs(10)));
        assert_eq!(child.count("one"), 2, "{}", child.log());
        assert!(!child.wait_log("three", Duration::from_millis(50)));
        assert!(child.running());
        child.assert_running();
        child.signal(Signal::SIGTERM);
        let status = child
            .wait_exit(Duration::from_secs(10))
            .expect("exits on SIGTERM");
        assert!(!status.success());
        assert!(!child.running());
    }

    #[test]
    #[should_panic(expected = "exited early")]
    fn assert_running_reports_an_exited_child_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = ChildGuard::spawn_logged(
            Command::new("sh").args(["-c", "echo bad config; exit 1"]),
            &dir.path().join("child.log"),
        )
        .unwrap();
        child.wait_exit(Duration::from_secs(10)).expect("exits");
        child.assert_running();
    }

    #[test]
    fn child_guard_kills_on_drop() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("600")).unwrap();
        let pid = guard.id();
        drop(guard);
        // Reaped by the guard, so the pid no longer names a live process of ours.
        let alive = std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| c.contains("sleep"))
                .unwrap_or(false);
        assert!(
            !alive,
            "sleep {pid} still running after the guard was dropped"
        );
    }
}
