//! The control-API client: one HTTP/1.1 request per connection, over lbd's Unix socket or its
//! TCP listener with mutual TLS. Blocking, with no runtime (lbctl runs on operators' machines
//! and on the box itself); TLS is rustls with the ring provider, as in lbd.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default path of lbd's socket.
pub const DEFAULT_SOCKET: &str = "/run/lb/lbd.sock";

/// Where lbd listens.
#[derive(Clone, Debug)]
pub enum Target {
    Unix(PathBuf),
    /// `host:port` of `[node] api_listen`, and the TLS to speak there.
    Https {
        hostport: String,
        tls: Tls,
    },
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Unix(a), Target::Unix(b)) => a == b,
            (Target::Https { hostport: a, .. }, Target::Https { hostport: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// The files of a client's mutual TLS: its certificate and key, and the CA that signed lbd's
/// certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// A client TLS config and the name lbd's certificate must carry.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
}

impl Target {
    /// `--url https://HOST:PORT` (with the TLS files) wins over `--socket PATH`.
    pub fn new(
        socket: Option<PathBuf>,
        url: Option<&str>,
        files: &TlsFiles,
    ) -> Result<Target, ClientError> {
        let Some(u) = url else {
            return Ok(Target::Unix(
                socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            ));
        };
        if u.starts_with("http://") {
            return Err(ClientError::PlainHttp(u.to_string()));
        }
        let rest = u
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::BadUrl(u.to_string()))?;
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') {
            return Err(ClientError::BadUrl(u.to_string()));
        }
        let host = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => return Err(ClientError::BadUrl(u.to_string())),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| ClientError::BadUrl(u.to_string()))?;
        let config = client_config(files)?;
        Ok(Target::Https {
            hostport: hostport.to_string(),
            tls: Tls {
                config,
                server_name,
            },
        })
    }
}

/// The client config: lbd's certificate checked against `--ca` (and the URL's host), this
/// client's certificate and key presented.
fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let missing: Vec<&str> = [
        ("--cert", files.cert.is_none()),
        ("--key", files.key.is_none()),
        ("--ca", files.ca.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(f, _)| *f)
    .collect();
    if !missing.is_empty() {
        return Err(ClientError::TlsFiles(format!(
            "https needs --cert, --key and --ca (or LBCTL_CERT, LBCTL_KEY, LBCTL_CA): {} not given",
            missing.join(", ")
        )));
    }
    let (cert, key, ca) = (
        files.cert.as_deref().unwrap_or(Path::new("")),
        files.key.as_deref().unwrap_or(Path::new("")),
        files.ca.as_deref().unwrap_or(Path::new("")),
    );
    let text = |flag: &str, path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| ClientError::TlsFiles(format!("{flag} {}: {e}", path.display())))
    };
    let bad = |flag: &str, path: &Path, e: String| {
        ClientError::TlsFiles(format!("{flag} {}: {e}", path.display()))
    };
    let chain = lbd::config::pem::certificate_chain("the certificate file", &text("--cert", cert)?)
        .map_err(|e| bad("--cert", cert, e))?;
    let private = lbd::config::pem::private_key("the key file", &text("--key", key)?)
        .map_err(|e| bad("--key", key, e))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in lbd::config::pem::ca_certificates_of("the CA file", &text("--ca", ca)?)
        .map_err(|e| bad("--ca", ca, e))?
    {
        roots.add(c).map_err(|e| bad("--ca", ca, e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::TlsFiles(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => ClientError::TlsFiles(format!(
                "--key {} is not the key of --cert {}",
                key.display(),
                cert.display()
            )),
            e => ClientError::TlsFiles(format!("--cert and --key: {e}")),
        })?;
    Ok(Arc::new(config))
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Https { hostport, .. } => write!(f, "https://{hostport}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}: write https://HOST:PORT (the [node] api_listen of the balancer)")]
    BadUrl(String),
    #[error("{0:?}: lbd's TCP API speaks mutual TLS only: write https://HOST:PORT and give --cert, --key and --ca")]
    PlainHttp(String),
    #[error("{0}")]
    TlsFiles(String),
    #[error("TLS with lbd at {target} failed: {detail}")]
    Tls { target: String, detail: String },
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
        Target::Https { hostport, tls } => {
            let s = connect_tcp(hostport, &name)?;
            s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
            s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
            let conn = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
                .map_err(|e| ClientError::Tls {
                target: name.clone(),
                detail: e.to_string(),
            })?;
            let mut s = rustls::StreamOwned::new(conn, s);
            let tls_err = |e: std::io::Error| tls_error(&name, e);
            s.write_all(head.as_bytes()).map_err(tls_err)?;
            s.flush().map_err(tls_err)?;
            s.read_to_end(&mut buf).map_err(tls_err)?;
        }
    }
    parse_reply(&buf).map_err(|detail| ClientError::Protocol {
        target: name,
        detail,
    })
}

fn connect_tcp(hostport: &str, name: &str) -> Result<TcpStream, ClientError> {
    let connect = |source| ClientError::Connect {
        target: name.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = hostport.to_socket_addrs().map_err(connect)?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(connect(
        last.unwrap_or_else(|| std::io::Error::other("no address")),
    ))
}

/// An I/O error of the TLS stream: a TLS failure says which side refused and what to check.
fn tls_error(target: &str, e: std::io::Error) -> ClientError {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ClientError::Io {
            target: target.to_string(),
            source: e,
        };
    };
    let hint = match tls {
        rustls::Error::AlertReceived(_) => {
            " (lbd refused this client: is --cert signed by the CA of lbd's [node.api.tls] client_ca_pem, and still valid?)"
        }
        rustls::Error::InvalidCertificate(_) => {
            " (lbd's certificate is not trusted: is --ca the CA that signed lbd's [node.api.tls] cert_pem, and does that certificate name the URL's host?)"
        }
        _ => "",
    };
    ClientError::Tls {
        target: target.to_string(),
        detail: format!("{tls}{hint}"),
    }
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
        let none = TlsFiles::default();
        assert_eq!(
            Target::new(None, None, &none).unwrap(),
            Target::Unix(DEFAULT_SOCKET.into())
        );
        let e = |url: &str| Target::new(None, Some(url), &none).unwrap_err().to_string();
        assert!(
            e("http://192.0.2.2:9900").contains("speaks mutual TLS only"),
            "{}",
            e("http://192.0.2.2:9900")
        );
        assert!(e("https://x").starts_with("invalid URL"));
        assert!(e("https://x:1/status").starts_with("invalid URL"));
        assert!(e("ftp://x:1").starts_with("invalid URL"));
        let missing = e("https://192.0.2.2:9900/");
        assert!(
            missing.contains("--cert, --key, --ca not given"),
            "{missing}"
        );
        let files = TlsFiles {
            cert: Some("/nonexistent/c.pem".into()),
            key: Some("/k".into()),
            ca: Some("/ca".into()),
        };
        let unreadable = Target::new(None, Some("https://[2001:db8::1]:9900"), &files)
            .unwrap_err()
            .to_string();
        assert!(
            unreadable.starts_with("--cert /nonexistent/c.pem: "),
            "{unreadable}"
        );
    }
}
