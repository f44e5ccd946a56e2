//! The control-API client: one HTTP/1.1 request per connection, over lbd's Unix socket or its
//! HTTP listener. Blocking and dependency-free on purpose (lbctl runs on operators' machines
//! and on the box itself).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Default path of lbd's socket.
pub const DEFAULT_SOCKET: &str = "/run/lb/lbd.sock";

/// Where lbd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    /// `host:port` of `[node] api_listen`.
    Http(String),
}

impl Target {
    /// `--url http://HOST:PORT` wins over `--socket PATH`.
    pub fn new(socket: Option<PathBuf>, url: Option<&str>) -> Result<Target, ClientError> {
        if let Some(u) = url {
            let rest = u
                .strip_prefix("http://")
                .ok_or_else(|| ClientError::BadUrl(u.to_string()))?;
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() || hostport.contains('/') {
                return Err(ClientError::BadUrl(u.to_string()));
            }
            return Ok(Target::Http(hostport.to_string()));
        }
        Ok(Target::Unix(
            socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        ))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Http(h) => write!(f, "http://{h}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}: write http://HOST:PORT (the [node] api_listen of the balancer)")]
    BadUrl(String),
    #[error("cannot reach lbd at {target}: {source} (is lbd running? is this the right --socket/--url?)")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to lbd at {target}: {source}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lbd at {target} answered something that is not HTTP: {detail}")]
    Protocol { target: String, detail: String },
}

/// An answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body, or the text when it is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|_| self.text())
    }

    /// The `error` field of a JSON error answer, or the body.
    pub fn error_text(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| self.text().trim().to_string())
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `method path` (path with its query string) and reads the whole answer.
pub fn request(target: &Target, method: &str, path: &str) -> Result<Reply, ClientError> {
    let name = target.to_string();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: lbd\r\nUser-Agent: lbctl/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let io = |source| ClientError::Io {
        target: name.clone(),
        source,
    };
    let mut buf = Vec::new();
    match target {
        Target::Unix(path) => {
            let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
                target: name.clone(),
                source,
            })?;
            s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
            s.write_all(head.as_bytes()).map_err(io)?;
            s.read_to_end(&mut buf).map_err(io)?;
        }
        Target::Http(hostport) => {
            let addrs: Vec<SocketAddr> = hostport
                .to_socket_addrs()
                .map_err(|source| ClientError::Connect {
                    target: name.clone(),
                    source,
                })?
                .collect();
            let mut last = None;
            let mut stream = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let mut s = stream.ok_or_else(|| ClientError::Connect {
                target: name.clone(),
                source: last.unwrap_or_else(|| std::io::Error::other("no address")),
            })?;
            s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
            s.write_all(head.as_bytes()).map_err(io)?;
            s.read_to_end(&mut buf).map_err(io)?;
        }
    }
    parse_reply(&buf).map_err(|detail| ClientError::Protocol {
        target: name,
        detail,
    })
}

/// Parses a whole HTTP/1.1 answer.
pub fn parse_reply(buf: &[u8]) -> Result<Reply, String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "headers are not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut content_type = String::new();
    let mut length: Option<usize> = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_string();
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let body = &buf[end + 4..];
    if let Some(n) = length {
        if body.len() < n {
            return Err(format!("body cut short: {} of {n} bytes", body.len()));
        }
    }
    Ok(Reply {
        status,
        content_type,
        body: body[..length.unwrap_or(body.len())].to_vec(),
    })
}

/// A query-string component, percent-encoded.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let r = parse_reply(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"nope\"}\n",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.error_text(), "nope");
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert!(parse_reply(b"SSH-2.0\r\n\r\n").is_err());
        assert_eq!(encode("[2001:db8::1]:80"), "%5B2001:db8::1%5D:80");
    }

    #[test]
    fn targets() {
        assert_eq!(
            Target::new(None, None).unwrap(),
            Target::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            Target::new(Some("/x.sock".into()), Some("http://192.0.2.2:9900/")).unwrap(),
            Target::Http("192.0.2.2:9900".into())
        );
        assert!(Target::new(None, Some("https://x")).is_err());
        assert!(Target::new(None, Some("http://x/status")).is_err());
    }
}
