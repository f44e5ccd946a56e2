//! A static HTTP server for tests: `python3 -m http.server` serving a directory, started on a
//! free port, ready when it answers, killed on drop. Its request log is kept, so a test can
//! check what a guest fetched.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::netns::{Netns, NetnsError};
use crate::process::{self, ChildGuard, CommandError};

/// How long the server may take to answer its first request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: usize = 5;

/// The server did not come up.
#[derive(thiserror::Error)]
pub enum HttpError {
    /// python3 could not be started.
    #[error("cannot start the HTTP server: {0}")]
    Spawn(#[from] CommandError),
    /// The directory to serve does not exist.
    #[error("cannot serve {0}: not a directory")]
    NoDir(PathBuf),
    /// It exited or never answered.
    #[error("HTTP server for {dir} on {addr} did not come up: {detail}")]
    NotReady {
        /// The directory.
        dir: PathBuf,
        /// The address it was to listen on.
        addr: SocketAddr,
        /// What happened (its stderr, or the last connection error).
        detail: String,
    },
    /// The namespace could not be entered to check it.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// No free port could be found.
    #[error("no free TCP port: {0}")]
    Port(std::io::Error),
}

crate::debug_is_display!(HttpError);

/// A running `python3 -m http.server`.
#[derive(Debug)]
pub struct StaticServer {
    child: ChildGuard,
    addr: SocketAddr,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl StaticServer {
    /// Serves `dir` on 127.0.0.1 at a free port.
    pub fn start(dir: &Path) -> Result<Self, HttpError> {
        Self::start_on(dir, None, IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    /// Serves `dir` inside `ns` on `bind:port` (the namespace's own address space, so any
    /// fixed port works).
    pub fn start_in(ns: &Netns, dir: &Path, bind: IpAddr, port: u16) -> Result<Self, HttpError> {
        Self::start_on(dir, Some(ns), bind, Some(port))
    }

    fn start_on(
        dir: &Path,
        ns: Option<&Netns>,
        bind: IpAddr,
        port: Option<u16>,
    ) -> Result<Self, HttpError> {
        if !dir.is_dir() {
            return Err(HttpError::NoDir(dir.to_owned()));
        }
        let attempts = if port.is_some() { 1 } else { PORT_ATTEMPTS };
        let mut last = None;
        for _ in 0..attempts {
            let port = match port {
                Some(p) => p,
                None => process::free_tcp_port().map_err(HttpError::Port)?,
            };
            match Self::try_start(dir, ns, SocketAddr::new(bind, port)) {
                Ok(s) => return Ok(s),
                // Another process took the port between our probe and python's bind: retry.
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn try_start(dir: &Path, ns: Option<&Netns>, addr: SocketAddr) -> Result<Self, HttpError> {
        let port = addr.port().to_string();
        let bind = addr.ip().to_string();
        let args = [
            "-u",
            "-m",
            "http.server",
            "--bind",
            &bind,
            &port,
            "--directory",
        ];
        let mut cmd = match ns {
            Some(ns) => ns.command("python3"),
            None => crate::programs::command("python3"),
        };
        cmd.args(args)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let stderr = child.child_mut().stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut server = Self {
            child,
            addr,
            dir: dir.to_owned(),
            log,
        };
        server.wait_ready(ns)?;
        Ok(server)
    }

    fn wait_ready(&mut self, ns: Option<&Netns>) -> Result<(), HttpError> {
        // Some once it answers or cannot any more; the last failure on a miss.
        let mut last = None;
        let ready = crate::wait::until_some(READY_TIMEOUT, Duration::from_millis(50), || {
            let probe = match ns.map(|ns| ns.enter(|| http_get(self.addr, "/"))) {
                Some(Err(e)) => return Some(Err(e.into())),
                Some(Ok(probe)) => probe,
                None => http_get(self.addr, "/"),
            };
            match probe {
                Ok(status) if status.starts_with("HTTP/1.") => Some(Ok(())),
                Ok(other) => Some(Err(self.not_ready(format!("unexpected answer {other:?}")))),
                Err(e) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        // Let the stderr reader catch python's last words.
                        std::thread::sleep(Duration::from_millis(100));
                        return Some(Err(self.not_ready(format!(
                            "python3 exited ({status}): {}",
                            self.log().join("\n")
                        ))));
                    }
                    last = Some(e);
                    None
                }
            }
        });
        ready.unwrap_or_else(|| {
            let e = last.expect("until_some tries at least once");
            Err(self.not_ready(format!("no answer within {READY_TIMEOUT:?}: {e}")))
        })
    }

    fn not_ready(&self, detail: String) -> HttpError {
        HttpError::NotReady {
            dir: self.dir.clone(),
            addr: self.addr,
            detail,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://ADDR:PORT/` + `path` (without a leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far: one line per request (`"GET /vmlinuz HTTP/1.1" 200 -`) plus
    /// any errors.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The request paths logged with `status`, e.g. all paths fetched with 200.
    pub fn requests_with_status(&self, status: u16) -> Vec<String> {
        self.log()
            .iter()
            .filter_map(|l| parse_request_line(l))
            .filter(|(_, _, s)| *s == status)
            .map(|(_, path, _)| path)
            .collect()
    }
}

/// Parses a python http.server log line: `127.0.0.1 - - [date] "GET /x HTTP/1.1" 200 -`.
fn parse_request_line(line: &str) -> Option<(String, String, u16)> {
    let (_, rest) = line.split_once('"')?;
    let (request, rest) = rest.split_once('"')?;
    let mut req = request.split_whitespace();
    let method = req.next()?.to_owned();
    let path = req.next()?.to_owned();
    let status = rest.split_whitespace().next()?.parse().ok()?;
    Some((method, path, status))
}

/// Sends `GET path` and returns the status line.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "HEAD {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(4096).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed() {
        let line = r#"127.0.0.1 - - [23/Nov/2026 11:00:00] "GET /boot/vmlinuz HTTP/1.1" 200 -"#;
        assert_eq!(
            parse_request_line(line),
            Some(("GET".into(), "/boot/vmlinuz".into(), 200))
        );
        let line = r#"10.0.2.15 - - [23/Nov/2026 11:00:00] code 404, message File not found"#;
        assert_eq!(parse_request_line(line), None);
        let line = r#"10.0.2.15 - - [23/Nov/2026 11:00:00] "GET /nope HTTP/1.1" 404 -"#;
        assert_eq!(parse_request_line(line).unwrap().2, 404);
    }

    /// A real python3 http.server on loopback serves a file and logs the request.
    #[test]
    fn serves_a_directory_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.txt"), "hello from the test\n").unwrap();
        let server = StaticServer::start(dir.path()).unwrap();
        assert!(server.url("/hello.txt").starts_with("http://127.0.0.1:"));

        let mut s = TcpStream::connect(server.addr()).unwrap();
        write!(s, "GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        assert!(body.ends_with("hello from the test\n"), "{body}");

        // The log line is written after the response; give python a moment.
        let logged = crate::wait::until(Duration::from_secs(5), Duration::from_millis(20), || {
            server
                .requests_with_status(200)
                .contains(&"/hello.txt".to_owned())
        });
        assert!(logged.is_some(), "log: {:?}", server.log());

        let addr = server.addr();
        drop(server);
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_missing_directory_is_refused() {
        let err = StaticServer::start(Path::new("/nonexistent/lbtest")).unwrap_err();
        assert!(matches!(err, HttpError::NoDir(_)), "{err}");
    }
}
