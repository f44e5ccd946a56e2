//! Every console of the kernel command line gets init's (and lbd's) output, not only the last.
//!
//! The kernel prints its own messages on every `console=`, but `/dev/console` (PID 1's stdout)
//! is only the last one. A box without a screen is read on a serial port (`console=ttyS1`), a
//! box in a rack on its screen or BMC (`console=tty0`): both must see why a boot stalls. So
//! init points its stdout/stderr at a pipe and copies what comes out of it to `/dev/console`
//! and to each other console. The other consoles are written without blocking: a stuck
//! serial line loses its own output, it never holds up init.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The copy is running (stdout/stderr are the pipe).
static TEEING: AtomicBool = AtomicBool::new(false);
/// The copy thread holds bytes it has read and not yet written everywhere.
static COPYING: AtomicBool = AtomicBool::new(false);

nix::ioctl_read_bad!(fionread, nix::libc::FIONREAD, nix::libc::c_int);

/// The device names (`tty0`, `ttyS1`) of the `console=` words besides the last one (which is
/// `/dev/console` already), each once, in command-line order.
pub fn extra_consoles(console_words: &[&str]) -> Vec<String> {
    let devices: Vec<String> = console_words
        .iter()
        .map(|w| w.split(',').next().unwrap_or("").to_string())
        .filter(|d| !d.is_empty() && !d.contains('/') && d != "null")
        .collect();
    let Some(last) = devices.last() else {
        return Vec::new();
    };
    let mut extra: Vec<String> = Vec::new();
    for d in &devices {
        if d != last && !extra.contains(d) {
            extra.push(d.clone());
        }
    }
    extra
}

/// Starts copying stdout/stderr to `/dev/console` and each of `extra` (names under /dev).
/// Returns the consoles opened; on any failure to set up the pipe, output stays as it was.
pub fn tee(extra: &[String]) -> std::io::Result<Vec<String>> {
    let mut outputs: Vec<(String, File)> = Vec::new();
    for name in extra {
        let path = format!("/dev/{name}");
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc_flags())
            .open(&path)
        {
            Ok(f) => outputs.push((name.clone(), f)),
            // Reported on the console that works, once the tee runs.
            Err(e) => eprintln!("console {path}: {e}; init's output will not reach it"),
        }
    }
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let primary = OpenOptions::new().write(true).open("/dev/console")?;
    let (read_end, write_end) = nix::unistd::pipe()?;
    let names = outputs.iter().map(|(n, _)| n.clone()).collect();
    std::thread::Builder::new()
        .name("console-tee".into())
        .spawn(move || copy_loop(File::from(read_end), primary, outputs))?;
    nix::unistd::dup2_stdout(&write_end)?;
    nix::unistd::dup2_stderr(&write_end)?;
    TEEING.store(true, Ordering::SeqCst);
    Ok(names)
}

/// Waits (at most `limit`) until everything written so far has reached the consoles: the
/// last lines before reboot(2) must not die in the pipe.
pub fn drain(limit: Duration) {
    if !TEEING.load(Ordering::SeqCst) {
        return;
    }
    let deadline = Instant::now() + limit;
    // Idle twice in a row: the copy thread may have just read a chunk and not yet said so.
    let mut idle = 0;
    while Instant::now() < deadline && idle < 2 {
        let mut pending: nix::libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which is valid.
        let queued = unsafe { fionread(1, &mut pending) }.map_or(0, |_| pending);
        idle = if queued == 0 && !COPYING.load(Ordering::SeqCst) {
            idle + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// O_NOCTTY so a serial line never becomes our controlling terminal; O_NONBLOCK so it
/// never stalls the copy.
fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_NONBLOCK).bits()
}

fn copy_loop(mut input: File, mut primary: File, mut others: Vec<(String, File)>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        COPYING.store(true, Ordering::SeqCst);
        let _ = primary.write_all(&buf[..n]);
        for (_, f) in others.iter_mut() {
            // Non-blocking: a full or stuck line drops this chunk.
            let _ = f.write(&buf[..n]);
        }
        COPYING.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_but_the_last_is_extra() {
        assert_eq!(
            extra_consoles(&["tty0", "ttyS1,115200n8"]),
            ["tty0".to_string()]
        );
        assert_eq!(
            extra_consoles(&["ttyS0,115200", "tty0", "ttyS1,115200n8", "tty0"]),
            ["ttyS0".to_string(), "ttyS1".to_string()],
            "the last console is tty0: it is /dev/console already"
        );
        assert!(extra_consoles(&["ttyS0"]).is_empty());
        assert!(extra_consoles(&[]).is_empty());
        assert_eq!(
            extra_consoles(&["../x", "null", "hvc0", "ttyS0"]),
            ["hvc0".to_string()]
        );
    }
}
