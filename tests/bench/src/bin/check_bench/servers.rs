//! The server processes, as the benchmark drives them (what they run is in `serve`).

use crate::netns::Netns;
use crate::opts::Opts;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The server processes (not measured): one, or for kept connections several, since each
/// real is then a listener and a connection and a process may hold only so many files.
pub struct Servers {
    parts: Vec<(Range<usize>, Server)>,
}

/// Reals per server process when connections are kept.
const KEPT_PER_SERVER: usize = 4000;

impl Servers {
    pub fn start(ns: &Netns, opts: &Opts, kind: &str) -> Result<Servers, String> {
        let per = if kind == "http-keepalive" {
            KEPT_PER_SERVER
        } else {
            opts.reals.max(1)
        };
        let mut parts = Vec::new();
        for first in (0..opts.reals).step_by(per) {
            let range = first..(first + per).min(opts.reals);
            parts.push((range.clone(), Server::start(ns, opts, kind, range)?));
        }
        Ok(Servers { parts })
    }

    /// Checks served so far, by all of them.
    pub fn served(&mut self) -> Result<u64, String> {
        let mut total = 0;
        for (_, s) in &mut self.parts {
            total += s
                .request("stats")?
                .parse::<u64>()
                .map_err(|_| "bad stats")?;
        }
        Ok(total)
    }

    /// Kills real `i`'s server; its reply.
    pub fn kill(&mut self, i: usize) -> Result<String, String> {
        let (_, s) = self
            .parts
            .iter_mut()
            .find(|(r, _)| r.contains(&i))
            .ok_or_else(|| format!("no server for real {i}"))?;
        s.request(&format!("kill {i}"))
    }
}

/// One server process.
struct Server {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Server {
    fn start(ns: &Netns, opts: &Opts, kind: &str, reals: Range<usize>) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(exe)
            .args([
                "--serve",
                kind,
                &reals.start.to_string(),
                &reals.end.to_string(),
                &opts.ports.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("server: {e}"))?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut s = Server { child, out };
        let line = s.line()?;
        if line != "ready" {
            return Err(format!("server said {line:?}"));
        }
        Ok(s)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.out.read_line(&mut l) {
            Ok(0) => Err("server exited".into()),
            Ok(_) => Ok(l.trim().to_string()),
            Err(e) => Err(format!("server: {e}")),
        }
    }

    /// Sends one request line (`stats`, `kill I`) and reads the answer line.
    fn request(&mut self, line: &str) -> Result<String, String> {
        let stdin = self.child.stdin.as_mut().ok_or("server stdin closed")?;
        writeln!(stdin, "{line}").map_err(|e| format!("server: {e}"))?;
        self.line()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
