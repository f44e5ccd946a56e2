//! QEMU guests: a builder for the command line ([`GuestBuilder`], with its NICs in [`nic`]), a
//! running [`Guest`] with its serial console and QMP socket, and clean-up that never leaves a
//! QEMU behind.
//!
//! The console goes to QEMU's stdout (`-chardev stdio`), which a reader thread copies into
//! memory (for expectations) and into `console.log` in the guest's log directory. QEMU's own
//! messages go to `qemu.stderr.log`, and the exact command line to `qemu.cmdline`.

mod builder;
pub mod nic;

pub use builder::GuestBuilder;
pub use nic::{HostFwd, MacAddr, NetBackend, Nic, Proto, UserNet};

use std::ffi::OsString;

use std::io;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::artifacts::{self, Accel};
use crate::console::{Console, ExpectError, Match};
use crate::netns::Netns;
use crate::process::describe;
use crate::qmp::{Qmp, QmpError};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Env var: base directory for guest logs (default `<target>/lbtest/logs`).
pub const ENV_LOG_DIR: &str = "LB_LOG_DIR";
/// Env var: set to `1` to copy every guest's console to stderr as it arrives.
pub const ENV_CONSOLE_ECHO: &str = "LB_CONSOLE_ECHO";
/// How many console lines a failing test prints when it drops a guest.
pub const PANIC_TAIL_LINES: usize = 200;
/// How long QEMU may take to open its QMP socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A guest that could not be started or did not behave.
#[derive(thiserror::Error)]
pub enum GuestError {
    /// The builder's settings contradict each other.
    #[error("guest {name}: {detail}")]
    Config {
        /// The guest.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A log or socket directory could not be created.
    #[error("guest {name}: {path}: {source}")]
    Io {
        /// The guest.
        name: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// QEMU could not be executed.
    #[error(
        "guest {name}: cannot run `{cmd}`: {source} (install qemu-system-x86 with tools/setup.sh)"
    )]
    Spawn {
        /// The guest.
        name: String,
        /// The command line.
        cmd: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// QEMU started but did not come up (bad option, missing tap, ...).
    #[error("guest {name}: QEMU did not start: {detail}\nQEMU said:\n{}\n(command line and logs in {})", stderr.join("\n"), log_dir.display())]
    Start {
        /// The guest.
        name: String,
        /// What went wrong.
        detail: String,
        /// QEMU's stderr.
        stderr: Vec<String>,
        /// The log directory.
        log_dir: PathBuf,
    },
    /// The guest did not exit in time.
    #[error("guest {name} still running after {timeout:?}; last console lines:\n{}\n(full log: {})", tail.join("\n"), log.display())]
    ExitTimeout {
        /// The guest.
        name: String,
        /// How long we waited.
        timeout: Duration,
        /// The end of the console.
        tail: Vec<String>,
        /// The console log.
        log: PathBuf,
    },
    /// Waiting for QEMU failed.
    #[error("guest {name}: waiting for QEMU: {source}")]
    Wait {
        /// The guest.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

crate::debug_is_display!(GuestError);

/// How a guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestExit {
    /// QEMU's exit status (0 after a guest power-off, a reset with `-no-reboot`, or `quit`).
    pub status: ExitStatus,
    /// The `reason` of QEMU's SHUTDOWN event, e.g. `guest-shutdown` (the guest powered off),
    /// `guest-reset` (it rebooted, with `-no-reboot`), `host-qmp-quit`, `guest-panic`; `None`
    /// when QEMU was killed.
    pub shutdown_reason: Option<String>,
    /// Time from spawn to exit.
    pub uptime: Duration,
}

static GUEST_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running (or finished) QEMU guest. Dropping it kills QEMU; if the test is panicking, the
/// drop prints the last [`PANIC_TAIL_LINES`] console lines and where the full logs are.
#[derive(Debug)]
pub struct Guest {
    name: String,
    child: Option<Child>,
    exit: Option<GuestExit>,
    console: Console,
    stderr: Console,
    qmp: Qmp,
    log_dir: PathBuf,
    accel: Accel,
    started: Instant,
    _run_dir: tempfile::TempDir,
}

impl Guest {
    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The accelerator QEMU runs with.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// QEMU's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory with `console.log`, `qemu.stderr.log` and `qemu.cmdline`.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// How long after QEMU was started a console line reached the host: firmware, loading the
    /// kernel and initrd, the kernel's own start and everything after, on the host's clock.
    pub fn since_start(&self, m: &Match) -> Duration {
        m.arrived().saturating_duration_since(self.started)
    }

    /// The serial console.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// What QEMU itself printed (warnings, errors).
    pub fn qemu_stderr(&self) -> Vec<String> {
        self.stderr.lines()
    }

    /// The QMP client.
    pub fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    /// See [`Console::expect`].
    pub fn expect(&self, pattern: &str, timeout: Duration) -> Result<Match, ExpectError> {
        self.console.expect(pattern, timeout)
    }

    /// See [`Console::expect_any`].
    pub fn expect_any(
        &self,
        patterns: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        self.console.expect_any(patterns, timeout)
    }

    /// See [`Console::wait_for_line`].
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, ExpectError> {
        self.console.wait_for_line(needle, timeout)
    }

    /// Presses the ACPI power button.
    pub fn system_powerdown(&self) -> Result<(), QmpError> {
        self.qmp.system_powerdown()
    }

    /// Sends ctrl-alt-delete on the keyboard.
    pub fn ctrl_alt_delete(&self) -> Result<(), QmpError> {
        self.qmp.send_ctrl_alt_delete()
    }

    /// Ends QEMU at once through QMP.
    pub fn quit(&self) -> Result<(), QmpError> {
        self.qmp.quit()
    }

    /// Runs a human monitor command (e.g. `info network`) and returns its output.
    pub fn human_monitor_command(&self, command_line: &str) -> Result<String, QmpError> {
        self.qmp.human_monitor_command(command_line)
    }

    /// How the guest ended, without waiting; `None` while it runs.
    pub fn try_exit(&mut self) -> Result<Option<GuestExit>, GuestError> {
        if let Some(e) = &self.exit {
            return Ok(Some(e.clone()));
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().map_err(|source| GuestError::Wait {
            name: self.name.clone(),
            source,
        })?;
        Ok(status.map(|s| self.finish(s)))
    }

    /// True while QEMU runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_exit(), Ok(None))
    }

    /// Waits at most `timeout` for QEMU to exit (the guest powered off or rebooted, or `quit`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<GuestExit, GuestError> {
        // `Some` once QEMU is gone or `try_exit` fails: either ends the wait.
        let exited = crate::wait::until_some(timeout, Duration::from_millis(20), || {
            self.try_exit().transpose()
        });
        exited.unwrap_or_else(|| {
            Err(GuestError::ExitTimeout {
                name: self.name.clone(),
                timeout,
                tail: self.console.tail(crate::console::ERROR_TAIL_LINES),
                log: self.log_dir.join("console.log"),
            })
        })
    }

    /// Kills QEMU (SIGKILL) if it runs and reaps it.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.finish(status);
            }
        }
    }

    fn finish(&mut self, status: ExitStatus) -> GuestExit {
        let uptime = self.started.elapsed();
        // QEMU sends SHUTDOWN before exiting; the readers finish when the pipes close.
        self.qmp.wait_closed(Duration::from_secs(2));
        self.console.wait_closed(Duration::from_secs(2));
        self.stderr.wait_closed(Duration::from_secs(2));
        let shutdown_reason = self
            .qmp
            .events()
            .into_iter()
            .find(|e| e.name == "SHUTDOWN")
            .and_then(|e| e.data["reason"].as_str().map(str::to_owned));
        let exit = GuestExit {
            status,
            shutdown_reason,
            uptime,
        };
        self.child = None;
        self.exit = Some(exit.clone());
        exit
    }

    /// The failure report printed when a test panics with this guest in scope.
    pub fn report(&self) -> String {
        let mut s = format!(
            "==== guest {}: last {} console lines (full log: {}) ====\n",
            self.name,
            PANIC_TAIL_LINES,
            self.log_dir.join("console.log").display()
        );
        for line in self.console.tail(PANIC_TAIL_LINES) {
            s += &format!("| {line}\n");
        }
        let stderr = self.stderr.tail(30);
        if !stderr.is_empty() {
            s += &format!(
                "==== QEMU stderr ({}) ====\n",
                self.log_dir.join("qemu.stderr.log").display()
            );
            for line in stderr {
                s += &format!("| {line}\n");
            }
        }
        match &self.exit {
            Some(e) => {
                s += &format!(
                    "==== guest {} exited: {} (shutdown reason {:?}) ====",
                    self.name, e.status, e.shutdown_reason
                )
            }
            None => s += &format!("==== guest {} was still running ====", self.name),
        }
        s
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let running = self.child.is_some();
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        if running {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::builder::shell_quote;
    use super::*;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn direct_boot_command_line() {
        let args = GuestBuilder::new("lb 1")
            .kernel("/k/vmlinuz")
            .initrd("/k/initrd")
            .append("console=ttyS0 quiet")
            .memory_mib(256)
            .qemu_args(Accel::Tcg, Path::new("/run/q.sock"))
            .unwrap();
        let args = strings(args);
        let joined = args.join(" ");
        assert!(
            joined.starts_with(
                "-name lb_1 -nodefaults -accel tcg -cpu max -m 256 -smp 1 -display none -no-reboot"
            ),
            "{joined}"
        );
        assert!(joined.contains("-chardev stdio,id=console0,signal=off -serial chardev:console0"));
        assert!(joined.contains("-qmp unix:/run/q.sock,server=on,wait=off"));
        // The command line stays one argument.
        let i = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[i + 1], "console=ttyS0 quiet");
        assert!(!joined.contains("-boot"));
    }

    #[test]
    fn nics_become_netdev_device_pairs() {
        let args = GuestBuilder::new("pxe")
            .pxe()
            .nic(Nic::tap("tap0", MacAddr::local(0x0a0b0c)))
            .nic(
                Nic::user(
                    UserNet::new()
                        .tftp("/srv/tf,tp")
                        .bootfile("boot.ipxe")
                        .hostfwd_tcp(8080, 80)
                        .guestfwd("tcp:10.0.2.100:80-tcp:127.0.0.1:8081"),
                )
                .model("e1000"),
            )
            .qemu_args(Accel::Kvm, Path::new("/q"))
            .unwrap();
        let args = strings(args);
        let pairs: Vec<_> = args
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert!(pairs.contains(&("-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no")));
        assert!(pairs.contains(&("-device", "virtio-net-pci,netdev=n0,mac=52:54:00:0a:0b:0c")));
        assert!(pairs.contains(&(
            "-netdev",
            "user,id=n1,tftp=/srv/tf,,tp,bootfile=boot.ipxe,hostfwd=tcp:127.0.0.1:8080-:80,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8081"
        )));
        assert!(pairs.contains(&("-device", "e1000,netdev=n1")));
        assert!(pairs.contains(&("-boot", "n")));
        assert!(pairs.contains(&("-accel", "kvm")));
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let q = Path::new("/q");
        assert!(GuestBuilder::new("x")
            .pxe()
            .kernel("/k")
            .nic(Nic::user(UserNet::new()))
            .qemu_args(Accel::Tcg, q)
            .is_err());
        assert!(GuestBuilder::new("x")
            .pxe()
            .qemu_args(Accel::Tcg, q)
            .is_err());
        assert!(GuestBuilder::new("x")
            .append("console=ttyS0")
            .qemu_args(Accel::Tcg, q)
            .is_err());
    }

    #[test]
    fn mac_addresses_parse_and_print() {
        let m: MacAddr = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert_eq!(MacAddr::local(1).to_string(), "52:54:00:00:00:01");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn command_lines_are_shell_quoted() {
        let mut c = Command::new("qemu");
        c.args(["-append", "console=ttyS0 it's", "-m", "256"]);
        assert_eq!(
            shell_quote(&c),
            r"qemu -append 'console=ttyS0 it'\''s' -m 256"
        );
    }
}
