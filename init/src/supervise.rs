//! Supervision: the one reaper for every child of PID 1, and the restart policy for lbd.
//!
//! Only this module calls `waitpid`, and always with -1: orphans re-parented to PID 1 are
//! reaped here too. Children are therefore started with `std::process::Command` and never
//! `wait()`ed on (a second waiter would steal statuses).

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exit code {c}"),
            ExitKind::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "signal {}", sig.as_str()),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

/// One reaped child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildExit {
    pub pid: i32,
    pub kind: ExitKind,
}

/// Reaps every child that has exited (non-blocking). Call on SIGCHLD and periodically.
pub fn reap_all() -> Vec<ChildExit> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push(ChildExit {
                pid: pid.as_raw(),
                kind: ExitKind::Code(code),
            }),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push(ChildExit {
                pid: pid.as_raw(),
                kind: ExitKind::Signal(sig as i32),
            }),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    out
}

/// Restart delays for a crashing daemon: doubling from `min` to `max`, back to `min` once a
/// run lasted `stable_after` (a daemon that ran for an hour and crashed is not crash-looping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartBackoff {
    pub min: Duration,
    pub max: Duration,
    pub stable_after: Duration,
    next: Duration,
}

impl RestartBackoff {
    pub fn new(min: Duration, max: Duration, stable_after: Duration) -> Self {
        RestartBackoff {
            min,
            max,
            stable_after,
            next: min,
        }
    }

    /// The delay before restarting a child that ran for `ran_for`.
    pub fn delay_after(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable_after {
            self.next = self.min;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }
}

/// A supervised program (lbd): its command, current pid and restart policy.
pub struct Supervised {
    pub name: &'static str,
    pub program: String,
    pub args: Vec<String>,
    pid: Option<i32>,
    started: Option<Instant>,
    pub restarts: u32,
    backoff: RestartBackoff,
    /// Run on this terminal as a session leader with it as controlling tty (a debug shell);
    /// `None`: inherit init's console output.
    pub tty: Option<std::path::PathBuf>,
}

impl Supervised {
    pub fn new(name: &'static str, program: String, args: Vec<String>) -> Self {
        Supervised {
            name,
            program,
            args,
            pid: None,
            started: None,
            restarts: 0,
            backoff: RestartBackoff::default(),
            tty: None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Starts the program with the console as stdout/stderr.
    pub fn spawn(&mut self, now: Instant) -> std::io::Result<i32> {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        match &self.tty {
            None => {
                command
                    .stdin(Stdio::null())
                    .stdout(Stdio::inherit())
                    .stderr(Stdio::inherit());
            }
            Some(tty) => {
                let open = || std::fs::OpenOptions::new().read(true).write(true).open(tty);
                command.stdin(open()?).stdout(open()?).stderr(open()?);
                command
                    .env("TERM", "vt100")
                    .env("PS1", "lb# ")
                    .env("HOME", "/root");
                use std::os::unix::process::CommandExt;
                // SAFETY: only async-signal-safe calls between fork and exec (setsid, ioctl).
                unsafe {
                    command.pre_exec(|| {
                        nix::unistd::setsid().map_err(std::io::Error::from)?;
                        // TIOCSCTTY on stdin: make the terminal our controlling tty (job control).
                        if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 1) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
        }
        let child = command.spawn()?;
        let pid = child.id() as i32;
        // Not waited on here: the reaper owns exit statuses.
        drop(child);
        self.pid = Some(pid);
        self.started = Some(now);
        Ok(pid)
    }

    /// If `exit` is ours, forgets the pid and returns how long it ran and the restart delay.
    pub fn on_exit(&mut self, exit: &ChildExit, now: Instant) -> Option<(Duration, Duration)> {
        if self.pid != Some(exit.pid) {
            return None;
        }
        self.pid = None;
        let ran = self
            .started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        Some((ran, self.backoff.delay_after(ran)))
    }

    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        match self.pid {
            Some(pid) => kill(Pid::from_raw(pid), sig),
            None => Err(nix::errno::Errno::ESRCH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = RestartBackoff::default();
        let quick = Duration::from_millis(100);
        let delays: Vec<u64> = (0..7).map(|_| b.delay_after(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            b.delay_after(Duration::from_secs(61)),
            Duration::from_secs(1)
        );
        assert_eq!(b.delay_after(quick), Duration::from_secs(2));
    }

    #[test]
    fn supervised_child_is_reaped_and_recognised() {
        // Runs on the host: the test process is the parent, and reap_all is its only waiter.
        let mut s = Supervised::new("t", "/bin/sh".into(), vec!["-c".into(), "exit 7".into()]);
        let start = Instant::now();
        let pid = s.spawn(start).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(e) = reap_all().into_iter().find(|e| e.pid == pid) {
                break e;
            }
            assert!(Instant::now() < deadline, "child not reaped");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(exit.kind, ExitKind::Code(7));
        let (_, delay) = s.on_exit(&exit, Instant::now()).unwrap();
        assert_eq!(delay, Duration::from_secs(1));
        assert_eq!(s.pid(), None);
        assert!(
            s.on_exit(&exit, Instant::now()).is_none(),
            "a pid is handled once"
        );
    }
}
