//! Shared helpers of the `fetch_*` integration tests: temporary directories, real servers
//! (python3 http.server, in.tftpd from tftpd-hpa, dnsmasq) on loopback, and a scripted HTTP
//! peer for responses a stock server will not produce. Every server is stopped in `Drop`.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lbtest::process::{require_program, ChildGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound of any one test.
pub const TEST_LIMIT: Duration = Duration::from_secs(20);

/// Runs a test body with [`TEST_LIMIT`], so a bug shows up as a failure, not a hang.
pub async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test exceeded its time limit")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A world-readable directory (in.tftpd drops to `nobody`), removed in `Drop`.
pub use lbtest::ScratchDir as TempDir;

/// Deterministic pseudo-random bytes (a simple LCG), so content mistakes show.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// A port that was free a moment ago on 127.0.0.1 (TCP).
pub fn free_tcp_port() -> u16 {
    lbtest::process::free_tcp_port().expect("bind a TCP port")
}

/// A port that was free a moment ago on 127.0.0.1 (UDP).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP port")
        .port()
}

/// A server process, killed and reaped in `Drop`; its output goes to a log in a directory of
/// its own, removed with it.
pub struct ServerProcess {
    child: ChildGuard,
    name: &'static str,
    _dir: TempDir,
}

impl ServerProcess {
    fn spawn(name: &'static str, command: &mut Command) -> ServerProcess {
        let dir = TempDir::new(name);
        let log = dir.path().join(format!("{name}-{}.log", unique()));
        let child = ChildGuard::spawn_logged(command, &log).unwrap();
        ServerProcess {
            child,
            name,
            _dir: dir,
        }
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Panics with the server's output if it already exited.
    fn check_alive(&mut self) {
        self.child.assert_running();
    }

    /// Stops the server now (before `Drop`).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Waits (polling every 50 ms, at most 10 s) until a TCP connect to `addr` succeeds.
async fn wait_tcp(server: &mut ServerProcess, addr: SocketAddr) {
    let up = lbtest::wait::until_probe(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return true;
            }
            server.check_alive();
            false
        },
    )
    .await;
    if up.is_none() {
        panic!(
            "{} did not accept connections on {addr} within 10 s: {}",
            server.name,
            server.log()
        );
    }
}

/// Waits (at most 10 s) until a TFTP server at `addr` answers a read request (for a file that
/// does not exist: any ERROR or DATA means it is up). Each probe waits 200 ms for an answer.
async fn wait_tftp(server: &mut ServerProcess, addr: SocketAddr) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let probe = b"\x00\x01__readiness_probe__\x00octet\x00";
    let mut buf = [0u8; 1024];
    let up = lbtest::wait::until_probe(Duration::from_secs(10), Duration::ZERO, async || {
        let _ = socket.send_to(probe, addr).await;
        let answer =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await;
        if matches!(answer, Ok(Ok((n, _))) if n >= 2) {
            return true;
        }
        server.check_alive();
        false
    })
    .await;
    if up.is_none() {
        panic!(
            "{} did not answer TFTP on {addr} within 10 s: {}",
            server.name,
            server.log()
        );
    }
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1; it sends `Last-Modified` and answers
/// `If-Modified-Since` with 304.
pub async fn python_http(dir: &Path) -> (ServerProcess, SocketAddr) {
    let python = require_program("python3");
    let port = free_tcp_port();
    let mut server = ServerProcess::spawn(
        "python3-http.server",
        Command::new(python)
            .args([
                "-u",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir),
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_tcp(&mut server, addr).await;
    (server, addr)
}

/// `in.tftpd` (tftpd-hpa) in the foreground, serving `dir` on 127.0.0.1.
pub async fn in_tftpd(dir: &Path) -> (ServerProcess, SocketAddr) {
    in_tftpd_with(dir, &[]).await
}

/// `in.tftpd` with extra arguments, e.g. `["--blocksize", "1024"]` or
/// `["--refuse", "blksize"]`.
pub async fn in_tftpd_with(dir: &Path, extra: &[&str]) -> (ServerProcess, SocketAddr) {
    let tftpd = require_program("in.tftpd");
    let port = free_udp_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut server = ServerProcess::spawn(
        "in.tftpd",
        Command::new(tftpd)
            .args(["--foreground", "--address", &addr.to_string()])
            .args(extra)
            .arg("--secure")
            .arg(dir),
    );
    wait_tftp(&mut server, addr).await;
    (server, addr)
}

/// dnsmasq with only its TFTP server, serving `dir`. dnsmasq's TFTP port is fixed at 69, so
/// each instance gets its own loopback address (127.69.x.y) to not collide with anyone else's.
pub async fn dnsmasq_tftp(dir: &Path) -> (ServerProcess, SocketAddr) {
    let dnsmasq = require_program("dnsmasq");
    let n = (std::process::id() % 250 + 1, unique() % 250 + 1);
    let ip = Ipv4Addr::new(127, 69, n.0 as u8, n.1 as u8);
    let addr = SocketAddr::from((ip, 69));
    let mut server = ServerProcess::spawn(
        "dnsmasq",
        Command::new(dnsmasq)
            .args([
                "--keep-in-foreground",
                "--port=0",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--log-facility=-",
                "--bind-interfaces",
                "--user=root",
                "--group=root",
                "--enable-tftp",
            ])
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--tftp-root={}", dir.display())),
    );
    wait_tftp(&mut server, addr).await;
    (server, addr)
}

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the scripted server does with a request.
pub enum Reply {
    /// Write these bytes, then close.
    Raw(Vec<u8>),
    /// Write these chunks with a pause between them, then close.
    Slow(Vec<Vec<u8>>, Duration),
    /// Keep the connection open and say nothing (for at most 30 s).
    Hang,
}

/// A complete HTTP/1.1 response with Content-Length.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Raw(bytes)
}

/// A 200 with a chunked body made of `chunks`.
pub fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// An HTTP peer on 127.0.0.1 answering from a closure: for ETags, error statuses, redirects,
/// chunked bodies and silence. Records every request. Stopped in `Drop`.
pub struct ScriptedHttp {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedHttp {
    pub async fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), handler).await
    }

    /// Like [`ScriptedHttp::start`], on a given address (e.g. a port a client already tries).
    pub async fn start_at(
        addr: SocketAddr,
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind scripted http");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move { serve(stream, &*handler, &seen).await });
            }
        });
        ScriptedHttp { addr, seen, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ScriptedHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<SeenRequest>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let request = SeenRequest {
        method: first.next().unwrap_or_default().to_string(),
        target: first.next().unwrap_or_default().to_string(),
        headers: lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect(),
    };
    let reply = handler(&request);
    seen.lock().unwrap().push(request);
    match reply {
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
        }
        Reply::Slow(chunks, pause) => {
            for c in chunks {
                if stream.write_all(&c).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
            }
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
    }
    let _ = stream.shutdown().await;
}

/// `openssl s_server -WWW` serving `dir` over TLS on 127.0.0.1 with a fresh self-signed
/// P-256 certificate (valid from now, for a day); returns its key's pin as `openssl` itself
/// computes it (`sha256//` + base64 of the SPKI's SHA-256).
pub async fn openssl_https(dir: &Path) -> (ServerProcess, SocketAddr, String) {
    let openssl = require_program("openssl");
    let (cert, key, pin) = lbtest::operator_keys::server_certificate(dir);
    let port = free_tcp_port();
    let mut server = ServerProcess::spawn(
        "openssl-s_server",
        Command::new(openssl)
            .args(["s_server", "-WWW", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(dir),
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_tcp(&mut server, addr).await;
    (server, addr, pin)
}
