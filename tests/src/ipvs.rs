//! IPVS tests in guests: the test image (the appliance plus busybox and ipvsadm, built by
//! `tools/build-test-image.sh`), a [`GuestShell`] on the guest's second serial port (init's
//! `lb.shell=ttyS1` debug shell), and helpers to compare `ipvsadm -Ln` listings.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::appliance::{ApplianceBuilder, Image};
use crate::qemu::{Guest, GuestError};

/// Env var: the test image directory (default `<target>/lb-test-image`).
pub const ENV_TEST_IMAGE_DIR: &str = "LB_TEST_IMAGE_DIR";

/// How to build the test image (from the workspace root).
pub const BUILD_TEST_IMAGE: &str = "tools/build-test-image.sh target/lb-test-image";

/// The test image: the appliance image plus busybox and ipvsadm, brought up to date with the
/// current source ([`crate::fresh`]). Panics with the build's output when that fails.
pub fn test_image() -> Image {
    let dir = crate::fresh::image(crate::fresh::ImageKind::Test).unwrap_or_else(|e| panic!("{e}"));
    let image = Image {
        vmlinuz: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        manifest: dir.join("manifest.json"),
        dir: dir.clone(),
    };
    for f in [&image.vmlinuz, &image.initrd, &image.manifest] {
        assert!(
            f.is_file(),
            "the IPVS test image is missing {} — build it first (from the workspace root):\n  {BUILD_TEST_IMAGE}",
            f.display()
        );
    }
    let manifest = std::fs::read_to_string(&image.manifest).unwrap_or_default();
    assert!(
        manifest.contains("/sbin/ipvsadm") && manifest.contains("/bin/sh"),
        "{} is not a test image (no /sbin/ipvsadm or /bin/sh in its manifest) — build it with:\n  {BUILD_TEST_IMAGE}",
        dir.display()
    );
    image
}

/// A test-image guest with its debug shell attached to a Unix socket.
pub struct ShellGuest {
    /// The running guest (console on ttyS0).
    pub guest: Guest,
    /// The shell on ttyS1.
    pub shell: GuestShell,
    _sock_dir: tempfile::TempDir,
}

/// Boots `builder` (with `lb.shell=ttyS1` added) from the test image, with the second serial
/// port on a Unix socket, and connects a [`GuestShell`] to it.
pub fn boot_with_shell(builder: ApplianceBuilder, boot: Duration) -> Result<ShellGuest, String> {
    boot_image_with_shell(&test_image(), builder, boot)
}

/// [`boot_with_shell`] with another image that ships a shell (one built from the test image's
/// script with other `image build` arguments, [`crate::fresh::variant`]).
pub fn boot_image_with_shell(
    image: &Image,
    builder: ApplianceBuilder,
    boot: Duration,
) -> Result<ShellGuest, String> {
    let sock_dir = tempfile::Builder::new()
        .prefix("lbtest-sh-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let sock = sock_dir.path().join("ttyS1.sock");
    let guest = builder
        .append("lb.shell=ttyS1")
        .guest_builder(image)
        .args([
            "-chardev".to_string(),
            format!(
                "socket,id=shell0,path={},server=on,wait=off",
                sock.display()
            ),
            "-serial".to_string(),
            "chardev:shell0".to_string(),
        ])
        .spawn()
        .map_err(|e: GuestError| e.to_string())?;
    let shell = GuestShell::connect(&sock, boot).map_err(|e| format!("{e}\n{}", guest.report()))?;
    Ok(ShellGuest {
        guest,
        shell,
        _sock_dir: sock_dir,
    })
}

/// The output and exit status of one command in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellOutput {
    /// stdout and stderr together, `\r` removed.
    pub output: String,
    /// The shell's `$?`.
    pub status: i32,
}

/// A shell on a guest's serial line: sends a command framed by unique markers and reads until
/// the end marker with the exit status.
pub struct GuestShell {
    stream: UnixStream,
    seq: u32,
    pending: String,
}

/// Why a shell command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The socket failed.
    #[error("guest shell: {0}")]
    Io(#[from] std::io::Error),
    /// No end marker in time.
    #[error(
        "guest shell: `{command}` did not finish within {timeout:?}; output so far:\n{partial}"
    )]
    Timeout {
        /// The command.
        command: String,
        /// How long we waited.
        timeout: Duration,
        /// What came back.
        partial: String,
    },
    /// The command ran but failed.
    #[error("guest shell: `{command}` exited with {status}:\n{output}")]
    Failed {
        /// The command.
        command: String,
        /// Its status.
        status: i32,
        /// Its output.
        output: String,
    },
}

impl GuestShell {
    /// Connects to QEMU's socket for the serial line and waits (at most `timeout`) until the
    /// shell answers; then turns off echo, installs the busybox applets and sets `PATH`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<GuestShell, ShellError> {
        let started = Instant::now();
        let mut last = None;
        let stream = crate::wait::until_some(timeout, Duration::from_millis(100), || {
            UnixStream::connect(path).map_err(|e| last = Some(e)).ok()
        });
        let stream = stream.ok_or_else(|| last.expect("until_some tries at least once"))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut shell = GuestShell {
            stream,
            seq: 0,
            pending: String::new(),
        };
        shell.resync(timeout.saturating_sub(started.elapsed()))?;
        shell.run(
            "stty -echo; mkdir -p /usr/bin /usr/sbin /sbin; /bin/busybox --install -s; export PATH=/sbin:/usr/sbin:/bin:/usr/bin",
            Duration::from_secs(30),
        )?;
        Ok(shell)
    }

    /// Pokes the shell until it runs a command (at most `timeout`; each poke waits up to 3 s
    /// for its marker, so no pause between pokes). The shell starts once init is up, and the
    /// serial line drops what arrives before it is open, so an early poke can reach the shell
    /// cut, inside a quote or a `{`: the shell then reads every later line as more of that
    /// command and answers with its continuation prompt. Then the next poke first sends ^C,
    /// which makes the shell abandon the half-read command. Not before: a ^C that reaches a
    /// shell still starting, before it handles SIGINT, kills it.
    pub fn resync(&mut self, timeout: Duration) -> Result<(), ShellError> {
        let mut last_err = None;
        let mut interrupt = false;
        let answered = crate::wait::until(timeout, Duration::ZERO, || {
            if interrupt {
                if let Err(e) = self.stream.write_all(b"\x03") {
                    last_err = Some(e.into());
                    return false;
                }
                // The shell prints a fresh prompt before it reads the poke.
                std::thread::sleep(Duration::from_millis(200));
            }
            match self.run_status("true", Duration::from_secs(3)) {
                Ok(_) => true,
                Err(e) => {
                    if let ShellError::Timeout { partial, .. } = &e {
                        interrupt = partial.starts_with("> ") || partial.contains("\n> ");
                    }
                    last_err = Some(e);
                    false
                }
            }
        });
        match answered {
            Some(_) => Ok(()),
            None => Err(last_err.expect("until tries at least once")),
        }
    }

    /// Runs `command` (one line of sh) and returns its output and status.
    pub fn run_status(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, ShellError> {
        self.seq += 1;
        let n = self.seq;
        // Markers are split by quotes so the echoed command line never matches them.
        let line = format!(
            "echo '__LB''BEGIN_{n}__'; {{ {command}\n}} 2>&1; echo \"__LB\"\"END_{n}_$?__\"\n"
        );
        self.stream.write_all(line.as_bytes())?;
        let begin = format!("__LBBEGIN_{n}__");
        let end_prefix = format!("__LBEND_{n}_");
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(b) = self.pending.find(&begin) {
                let after = b + begin.len();
                if let Some(e) = self.pending[after..].find(&end_prefix) {
                    let e = after + e;
                    let rest = &self.pending[e + end_prefix.len()..];
                    if let Some(close) = rest.find("__") {
                        let status: i32 = rest[..close].trim().parse().unwrap_or(-1);
                        let output = self.pending[after..e]
                            .trim_start_matches(['\r', '\n'])
                            .to_string();
                        let consumed = e + end_prefix.len() + close + 2;
                        self.pending.drain(..consumed);
                        return Ok(ShellOutput { output, status });
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ShellError::Timeout {
                    command: command.to_string(),
                    timeout,
                    partial: std::mem::take(&mut self.pending),
                });
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(ShellError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "QEMU closed the serial socket",
                    )))
                }
                Ok(k) => self
                    .pending
                    .push_str(&String::from_utf8_lossy(&buf[..k]).replace('\r', "")),
                // A signal to this process (a child of another thread exiting) interrupts
                // the read; the command is still running.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs `command` and returns its output; a non-zero status is an error.
    pub fn run(&mut self, command: &str, timeout: Duration) -> Result<String, ShellError> {
        let out = self.run_status(command, timeout)?;
        if out.status != 0 {
            return Err(ShellError::Failed {
                command: command.to_string(),
                status: out.status,
                output: out.output,
            });
        }
        Ok(out.output)
    }
}

/// An `ipvsadm -Ln` (or `--thresholds`) listing in a canonical order: the header kept, each
/// service line followed by its destination lines sorted, services sorted, trailing spaces
/// removed. The kernel lists services in hash order and destinations newest first; neither
/// order means anything.
pub fn canonical_listing(text: &str) -> String {
    let mut header = Vec::new();
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("  -> ") && !blocks.is_empty() {
            blocks
                .last_mut()
                .expect("not empty")
                .1
                .push(line.to_string());
        } else if line.starts_with("  -> ")
            || line.starts_with("IP Virtual Server")
            || line.starts_with("Prot ")
        {
            header.push(line.to_string());
        } else {
            blocks.push((line.to_string(), Vec::new()));
        }
    }
    for b in &mut blocks {
        b.1.sort();
    }
    blocks.sort();
    let mut out = header;
    for (s, d) in blocks {
        out.push(s);
        out.extend(d);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_compare_in_canonical_order() {
        // Joined lines, not `\n\` continuations: those would strip the "  ->" indentation.
        let kernel = [
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "UDP  10.0.2.101:53 rr",
            "  -> 10.0.2.32:53                 Route   1      0          0         ",
            "  -> 10.0.2.31:53                 Route   1      0          0         ",
            "TCP  10.0.2.100:80 wrr",
            "  -> 10.0.2.2:8080                Masq    2      0          0         ",
            "",
        ]
        .join("\n");
        let kernel = kernel.as_str();
        let expected = [
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  10.0.2.100:80 wrr",
            "  -> 10.0.2.2:8080                Masq    2      0          0",
            "UDP  10.0.2.101:53 rr",
            "  -> 10.0.2.31:53                 Route   1      0          0",
            "  -> 10.0.2.32:53                 Route   1      0          0",
        ]
        .join("\n");
        assert_eq!(canonical_listing(kernel), expected);
        assert_ne!(
            canonical_listing(kernel),
            canonical_listing(&kernel.replace("Masq    2", "Masq    3"))
        );
    }
}
