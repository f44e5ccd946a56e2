//! Exec check: runs a command; exit 0 is up. With `weight_from_exit`, keepalived's
//! `misc_dynamic` rules (1 down, 2–255 up with weight status − 2). The command runs in its own
//! process group, which is killed when the check times out, so a script's children go too.
//!
//! The environment tells the command what to check: `LBD_SERVICE`, `LBD_REAL_IP`,
//! `LBD_REAL_PORT`, and `LBD_CHECK_IP` / `LBD_CHECK_PORT` (the connect address and port).

use super::{Probe, Progress, Stage};
use crate::check::failure::{exit_outcome, Failure, Outcome};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

/// Kills a process group when dropped, unless disarmed.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory access.
            unsafe {
                libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

pub(super) async fn run(
    p: &Probe,
    command: &[String],
    weight_from_exit: bool,
    progress: &Progress,
) -> Outcome {
    progress.set(Stage::Command);
    let Some((program, args)) = command.split_first() else {
        return Outcome::Down(Failure::Spawn("empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("LBD_SERVICE", &p.service)
        .env("LBD_REAL_IP", p.real.ip().to_string())
        .env("LBD_REAL_PORT", p.real.port().to_string())
        .env("LBD_CHECK_IP", p.target.ip().to_string())
        .env("LBD_CHECK_PORT", p.target.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Down(Failure::Spawn(format!("{program}: {e}"))),
    };
    let mut guard = GroupKill(child.id());
    let status = child.wait().await;
    guard.0 = None;
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => exit_outcome(code, weight_from_exit),
            (None, Some(sig)) => Outcome::Down(Failure::Signal(sig)),
            (None, None) => Outcome::Down(Failure::Spawn(format!("{program}: {st}"))),
        },
        Err(e) => Outcome::Down(Failure::Spawn(format!("waiting for {program}: {e}"))),
    }
}
