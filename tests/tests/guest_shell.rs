//! The guest-shell harness ([`GuestShell`]) against a real busybox ash on a pseudo-terminal,
//! bridged to a Unix socket the way QEMU bridges a guest's serial line: markers, exit statuses,
//! and recovery from a command that reached the shell cut. Needs busybox-static
//! (`tools/setup.sh`); no QEMU.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use lbtest::initramfs::BUSYBOX;
use lbtest::ipvs::{GuestShell, ShellError};
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

/// busybox ash as the session leader of a pseudo-terminal (its controlling tty, as init starts
/// the debug shell), the terminal's master side served on a Unix socket (one client).
struct PtyShell {
    child: Child,
    socket: PathBuf,
    /// The terminal's master side.
    terminal: File,
    _dir: tempfile::TempDir,
}

impl PtyShell {
    fn start() -> PtyShell {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave_path = ptsname_r(&master).unwrap();
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&slave_path)
                .unwrap()
        };
        let mut command = Command::new(BUSYBOX);
        command
            .arg("sh")
            .stdin(open())
            .stdout(open())
            .stderr(open())
            .env_clear()
            .env("TERM", "vt100")
            .env("PS1", "lb# ")
            .env("PATH", "/usr/bin:/bin");
        // SAFETY: only async-signal-safe calls between fork and exec (sigaction, setsid, ioctl).
        unsafe {
            command.pre_exec(|| {
                // As init starts the guest's shell: SIGINT not ignored. A suite started in the
                // background of a shell without job control has it ignored, and an interactive
                // ash keeps a signal that was ignored at its start ignored, ^C and all.
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGINT,
                    nix::sys::signal::SigHandler::SigDfl,
                )
                .map_err(std::io::Error::from)?;
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 1) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{BUSYBOX}: {e} (install busybox-static: tools/setup.sh)"));
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("shell.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let terminal = File::from(OwnedFd::from(master));
        let bridged = terminal.try_clone().unwrap();
        std::thread::spawn(move || bridge(&listener, bridged));
        PtyShell {
            child,
            socket,
            terminal,
            _dir: dir,
        }
    }

    /// Types `bytes` on the terminal directly (not through the socket), as a line that
    /// arrived before anyone connected.
    fn type_raw(&self, bytes: &[u8]) {
        (&self.terminal).write_all(bytes).unwrap();
        // Let the shell read it before the client's first poke.
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for PtyShell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies between the terminal and the socket's one client until either closes.
fn bridge(listener: &UnixListener, terminal: File) {
    let Ok((mut client, _)) = listener.accept() else {
        return;
    };
    let mut from_terminal = terminal.try_clone().unwrap();
    let mut to_client = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from_terminal.read(&mut buf) {
            if n == 0 || to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut to_terminal = terminal;
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.read(&mut buf) {
        if n == 0 || to_terminal.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

fn connect(path: &Path) -> GuestShell {
    GuestShell::connect(path, Duration::from_secs(20)).unwrap()
}

#[test]
fn runs_commands_and_reports_their_output_and_status() {
    let sh = PtyShell::start();
    let mut shell = connect(&sh.socket);
    assert_eq!(
        shell
            .run("echo hello; echo world", Duration::from_secs(5))
            .unwrap(),
        "hello\nworld\n"
    );
    let out = shell
        .run_status(
            "echo oops >&2; exit_code() { return 3; }; exit_code",
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!((out.output.as_str(), out.status), ("oops\n", 3));
    match shell.run("false", Duration::from_secs(5)) {
        Err(ShellError::Failed { status: 1, .. }) => {}
        other => panic!("`false` gave {other:?}"),
    }
}

/// A poke sent while the shell was starting can arrive cut: here its tail opens a quote (and a
/// `{`), so the shell reads every later line as more of that command until it is abandoned.
#[test]
fn a_command_that_arrived_cut_does_not_swallow_the_ones_after_it() {
    let sh = PtyShell::start();
    sh.type_raw(b"_1__'; { true\n");
    let mut shell = connect(&sh.socket);
    assert_eq!(
        shell.run("echo ok", Duration::from_secs(5)).unwrap(),
        "ok\n"
    );
    // Later in a session as well: a half-typed command, then resync.
    sh.type_raw(b"echo \"unclosed\n");
    shell.resync(Duration::from_secs(20)).unwrap();
    assert_eq!(
        shell
            .run("echo 'after' \"resync\"", Duration::from_secs(5))
            .unwrap(),
        "after resync\n"
    );
}
