//! The servers' network namespace (and the client's, behind a veth pair).

use crate::opts::Opts;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `ip ARGS...`; an error names the command and how it failed.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let st = Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?}: {st}"))
    }
}

/// A named network namespace (`ip netns`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// The servers' namespace: loopback up, with an address for every `opts.ports` reals.
    pub fn new(opts: &Opts) -> Result<Netns, String> {
        let name = format!("lbdbench-{}", std::process::id());
        let run = ip;
        run(&["netns", "add", &name])?;
        let ns = Netns { name };
        run(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        let mut batch = String::new();
        for host in 0..opts.reals.div_ceil(opts.ports) {
            let a = crate::addr(host * opts.ports, opts.ports);
            batch += &format!("addr add {}/32 dev lo\n", a.ip());
        }
        let mut child = Command::new("ip")
            .args(["-n", &ns.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("ip -batch: {e}"))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(batch.as_bytes())
            .map_err(|e| format!("ip -batch: {e}"))?;
        let st = child.wait().map_err(|e| format!("ip -batch: {e}"))?;
        if !st.success() {
            return Err(format!("adding addresses failed: {st}"));
        }
        Ok(ns)
    }

    fn enter(&self) -> Result<(), String> {
        let path = format!("/run/netns/{}", self.name);
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd, for the calling thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn in_thread<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                Ok(f())
            })
            .join()
            .map_err(|_| "namespace thread panicked".to_string())?
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
