//! Running helper programs (`ip`, `dpkg-deb`, `python3`, ...) with errors that say what ran and
//! what it printed, and a guard that kills a child process when the test lets go of it.

use std::ffi::OsStr;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

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
    let out = run(Command::new(program).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A child process that is killed (SIGKILL) and reaped when the guard is dropped, so a failing
/// test never leaves servers behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    /// Takes ownership of `child`; `what` names it in messages.
    pub fn new(child: Child, what: impl Into<String>) -> Self {
        Self {
            child,
            what: what.into(),
        }
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
