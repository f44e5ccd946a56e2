//! TCP, HTTP and HTTPS checkers against real servers inside a test network namespace: small
//! tokio servers scripted for each case (up, refused, swallowed SYN, slow, half-open, wrong
//! status, wrong body, garbage), python3's http.server (with keepalived's own `genhash` as the
//! reference for digests) and nginx with a self-signed certificate for HTTPS and SNI, and
//! with a certificate signed by a private CA that the check trusts through `ca_pem`.

mod check_support;

use check_support::*;
use lbd::check::connect::Connector;
use lbd::check::{Failure, Outcome};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MS: Duration = Duration::from_millis(1);

#[test]
fn tcp_up_refused_swallowed_syn_unreachable_source_and_override() {
    require(&[]);
    let ns = Netns::new("tcp");
    // 10.99.0.0/24 sits on a dummy interface: SYNs to 10.99.0.2 vanish.
    ns.add_blackhole("bh0", "10.99.0.1/24", "10.99.0.2");
    ns.run(|| async {
        let peers: Log = Arc::default();
        let l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
        let l6 = TcpListener::bind("[::1]:8080").await.unwrap();
        let p = peers.clone();
        tokio::spawn(async move {
            loop {
                let (_s, peer) = l.accept().await.unwrap();
                p.lock().unwrap().push(peer.ip().to_string());
            }
        });
        tokio::spawn(async move {
            loop {
                drop(l6.accept().await.unwrap());
            }
        });

        assert_eq!(
            probe("127.0.0.1:8080", r#"type = "tcp""#).run().await,
            Outcome::UP
        );
        assert_eq!(
            probe("[::1]:8080", r#"type = "tcp""#).run().await,
            Outcome::UP
        );
        assert_eq!(
            fails("127.0.0.1:8081", r#"type = "tcp""#).await,
            Failure::Refused
        );
        let t = Instant::now();
        let f = fails("10.99.0.2:80", r#"type = "tcp", timeout = "300ms""#).await;
        assert_eq!(
            f,
            Failure::Timeout {
                after: 300 * MS,
                during: "connecting"
            }
        );
        assert_eq!(f.to_string(), "timeout after 300ms (connecting)");
        assert!(
            t.elapsed() >= 300 * MS && t.elapsed() < 1500 * MS,
            "{:?}",
            t.elapsed()
        );
        // No route at all.
        assert_eq!(
            fails("203.0.113.7:80", r#"type = "tcp""#).await,
            Failure::Unreachable("network unreachable".into())
        );
        // From a chosen source address (the whole of 127/8 is local).
        assert_eq!(
            probe(
                "127.0.0.1:8080",
                r#"type = "tcp", source_address = "127.0.0.2""#
            )
            .run()
            .await,
            Outcome::UP
        );
        tokio::time::sleep(20 * MS).await;
        assert_eq!(
            peers.lock().unwrap().last().map(String::as_str),
            Some("127.0.0.2")
        );
        // A source that is not an address of this box.
        let f = fails(
            "127.0.0.1:8080",
            r#"type = "tcp", source_address = "192.0.2.77""#,
        )
        .await;
        assert!(matches!(f, Failure::Bind(_)), "{f}");
        // The real is 10.99.0.2:80 but the check connects elsewhere.
        assert_eq!(
            probe(
                "10.99.0.2:80",
                r#"type = "tcp", connect_address = "127.0.0.1", port = 8080"#
            )
            .run()
            .await,
            Outcome::UP
        );
    });
}

/// What a scripted HTTP server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Reads the request, waits, answers with these bytes and closes.
    Answer(Duration, Vec<u8>),
    /// Reads the request and never answers (keeps the connection open).
    Silent,
    /// Accepts and closes at once.
    Close,
}

/// Serves `b` at `addr`, logging every request head.
async fn scripted(addr: &str, b: Behaviour) -> Log {
    let log: Log = Arc::default();
    let l = TcpListener::bind(addr).await.unwrap();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let b = b.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                if matches!(b, Behaviour::Close) {
                    return;
                }
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).into());
                match b {
                    Behaviour::Answer(delay, bytes) => {
                        tokio::time::sleep(delay).await;
                        let _ = s.write_all(&bytes).await;
                    }
                    Behaviour::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Behaviour::Close => {}
                }
            });
        }
    });
    log
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn http_status_body_host_and_broken_servers() {
    require(&[]);
    let ns = Netns::new("http");
    ns.run(|| async {
        let ok = scripted("127.0.0.1:8001", Behaviour::Answer(MS, response("200 OK", "status: up OK\n"))).await;
        scripted("127.0.0.1:8002", Behaviour::Answer(MS, response("503 Service Unavailable", "busy\n"))).await;
        scripted("127.0.0.1:8003", Behaviour::Silent).await;
        scripted("127.0.0.1:8004", Behaviour::Close).await;
        scripted("127.0.0.1:8005", Behaviour::Answer(500 * MS, response("200 OK", "slow\n"))).await;
        scripted("127.0.0.1:8006", Behaviour::Answer(MS, b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n".to_vec())).await;
        scripted(
            "127.0.0.1:8007",
            Behaviour::Answer(
                MS,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n0\r\n\r\n".to_vec(),
            ),
        )
        .await;
        scripted(
            "127.0.0.1:8008",
            Behaviour::Answer(MS, b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec()),
        )
        .await;

        // Up, with the request as configured.
        let p = probe(
            "127.0.0.1:8001",
            r#"type = "http", path = "/healthz?full=1", host = "www.example.org", expect_body = "OK""#,
        );
        assert_eq!(run(&p).await, Outcome::UP);
        let req = ok.lock().unwrap().last().unwrap().clone();
        assert!(req.starts_with("GET /healthz?full=1 HTTP/1.0\r\n"), "{req}");
        assert!(req.contains("\r\nHost: www.example.org\r\n"), "{req}");
        // Without `host`, the Host header names the address checked.
        assert_eq!(run(&probe("127.0.0.1:8001", r#"type = "http""#)).await, Outcome::UP);
        let req = ok.lock().unwrap().last().unwrap().clone();
        assert!(req.contains("\r\nHost: 127.0.0.1:8001\r\n"), "{req}");
        // Regex over the body, as ldirectord's `receive`.
        assert_eq!(
            run(&probe("127.0.0.1:8001", r#"type = "http", expect_body_regex = "^status: (up|ok)""#)).await,
            Outcome::UP
        );

        // Wrong body.
        let f = fails("127.0.0.1:8001", r#"type = "http", expect_body = "ready""#).await;
        assert_eq!(f.to_string(), "body mismatch: \"ready\" not found");
        let f = fails(
            "127.0.0.1:8001",
            r#"type = "http", expect_body_regex = "^status: down""#,
        )
        .await;
        assert_eq!(f.to_string(), "body mismatch: no match for /^status: down/");

        // Wrong status, and the same status accepted by a range.
        let f = fails("127.0.0.1:8002", r#"type = "http""#).await;
        assert_eq!(f, Failure::BadStatus(503));
        assert_eq!(f.to_string(), "bad status 503");
        assert_eq!(
            run(&probe("127.0.0.1:8002", r#"type = "http", expect_status = ["200-299", "500-503"]"#)).await,
            Outcome::UP
        );

        // Half-open: accepts, reads, never answers.
        let f = fails("127.0.0.1:8003", r#"type = "http", timeout = "300ms""#).await;
        assert_eq!(f.to_string(), "timeout after 300ms (waiting for the response)");
        // Hangs up at once: closed, or reset if the request arrived first (both ways).
        let p = probe("127.0.0.1:8004", r#"type = "http""#);
        for o in [p.run().await, in_connector(&p).await.unwrap()] {
            let f = down(o);
            assert!(matches!(&f, Failure::Closed(_) | Failure::Reset), "{f}");
        }
        // Slow: 500 ms is too slow for a 300 ms timeout, fine for 2 s.
        let f = fails("127.0.0.1:8005", r#"type = "http", timeout = "300ms""#).await;
        assert!(matches!(f, Failure::Timeout { .. }), "{f}");
        assert_eq!(
            run(&probe("127.0.0.1:8005", r#"type = "http", timeout = "2s""#)).await,
            Outcome::UP
        );
        // Not HTTP.
        let f = fails("127.0.0.1:8006", r#"type = "http""#).await;
        assert!(f.to_string().starts_with("protocol error: bad HTTP response"), "{f}");
        // Chunked body, with a genhash digest of the decoded body ("hello\n").
        assert_eq!(
            run(&probe(
                "127.0.0.1:8007",
                r#"type = "http", digest = "B1946AC92492D2347C6235B4D2611184""#
            )).await,
            Outcome::UP
        );
        // The body ends before its Content-Length.
        let f = fails("127.0.0.1:8008", r#"type = "http", expect_body = "short""#).await;
        assert_eq!(f.to_string(), "connection closed after 5 of 100 body bytes");
        // Nothing listens.
        assert_eq!(fails("127.0.0.1:8009", r#"type = "http""#).await, Failure::Refused);
        // Over IPv6, and from a chosen source address.
        scripted("[::1]:8001", Behaviour::Answer(MS, response("200 OK", "six\n"))).await;
        assert_eq!(run(&probe("[::1]:8001", r#"type = "http", expect_body = "six""#)).await, Outcome::UP);
        let from = r#"type = "http", expect_body = "OK", source_address = "127.0.0.1""#;
        assert_eq!(run(&probe("127.0.0.1:8001", from)).await, Outcome::UP);
        let f = fails("127.0.0.1:8001", r#"type = "http", source_address = "192.0.2.99""#).await;
        assert!(matches!(f, Failure::Bind(_)), "{f}");
    });
}

#[test]
fn http_against_python_http_server_with_genhash_digests() {
    require(&["/usr/bin/python3", "genhash"]);
    let ns = Netns::new("pyhttp");
    let dir = TempDir::new("www");
    dir.write("health.txt", "status: ok\n");
    // A body larger than one read, with every byte value.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    dir.write("big.bin", &big);
    let root = dir.path().to_str().unwrap().to_string();
    let mut server = ns.spawn(&[
        "/usr/bin/python3",
        "-m",
        "http.server",
        "8000",
        "--bind",
        "127.0.0.1",
        "--directory",
        &root,
    ]);
    ns.wait_tcp(
        "127.0.0.1:8000".parse().unwrap(),
        Duration::from_secs(10),
        "python3 http.server",
    );
    server.assert_running();
    // keepalived's genhash, run against the same server, is the reference digest.
    let genhash = |path: &str| {
        ns.exec(&["genhash", "-s", "127.0.0.1", "-p", "8000", "-u", path])
            .trim()
            .to_string()
    };
    let big_digest = genhash("/big.bin");
    assert_eq!(big_digest.len(), 32, "genhash printed {big_digest:?}");
    let health_digest = genhash("/health.txt");
    ns.run(move || async move {
        assert_eq!(
            run(&probe(
                "127.0.0.1:8000",
                r#"type = "http", path = "/health.txt", expect_body = "ok""#
            ))
            .await,
            Outcome::UP
        );
        assert_eq!(
            fails("127.0.0.1:8000", r#"type = "http", path = "/missing""#).await,
            Failure::BadStatus(404)
        );
        // An HTTP/1.0 server with keep_alive: answered, and the connection is not kept.
        let keep = r#"type = "http", path = "/health.txt", keep_alive = true"#;
        assert_eq!(run(&probe("127.0.0.1:8000", keep)).await, Outcome::UP);
        assert_eq!(run(&probe("127.0.0.1:8000", keep)).await, Outcome::UP);
        for (path, digest) in [("/big.bin", &big_digest), ("/health.txt", &health_digest)] {
            let check = format!(r#"type = "http", path = "{path}", digest = "{digest}""#);
            assert_eq!(
                run(&probe("127.0.0.1:8000", &check)).await,
                Outcome::UP,
                "{path}"
            );
        }
        let check = format!(r#"type = "http", path = "/health.txt", digest = "{big_digest}""#);
        let f = fails("127.0.0.1:8000", &check).await;
        assert_eq!(
            f,
            Failure::DigestMismatch {
                expected: big_digest.clone(),
                got: health_digest.clone()
            }
        );
    });
    // The server stops: refused.
    server.kill().unwrap();
    ns.run(|| async {
        assert_eq!(
            fails("127.0.0.1:8000", r#"type = "http""#).await,
            Failure::Refused
        );
    });
}

/// How the keep-alive server treats each request.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Keeping {
    /// 200 with a Content-Length, and the connection stays open.
    Keep,
    /// 200 with a chunked body, and the connection stays open.
    Chunked,
    /// 200 and then, 20 ms later, a close without warning (a keep-alive timeout shorter than
    /// the interval).
    IdleClose,
    /// Reads the request and closes without answering.
    HangUp,
    /// 503, and the connection stays open.
    Busy,
}

/// An HTTP/1.1 server that keeps connections, counting them and the requests answered.
#[derive(Clone, Default)]
struct KeepServer {
    mode: Arc<AtomicU8>,
    connections: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl KeepServer {
    async fn start(addr: &str) -> KeepServer {
        let server = KeepServer::default();
        let l = TcpListener::bind(addr).await.unwrap();
        let srv = server.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                srv.connections.fetch_add(1, Relaxed);
                let srv = srv.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        assert!(req.starts_with(b"GET / HTTP/1.1\r\n"));
                        req.clear();
                        let mode = srv.mode();
                        let answer: &[u8] = match mode {
                            Keeping::Keep | Keeping::IdleClose => {
                                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                            }
                            Keeping::Chunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
                            Keeping::Busy => b"HTTP/1.1 503 Busy\r\nContent-Length: 5\r\n\r\nbusy\n",
                            Keeping::HangUp => return,
                        };
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                        srv.answered.fetch_add(1, Relaxed);
                        if mode == Keeping::IdleClose {
                            tokio::time::sleep(20 * MS).await;
                            return;
                        }
                    }
                });
            }
        });
        server
    }

    fn mode(&self) -> Keeping {
        match self.mode.load(Relaxed) {
            0 => Keeping::Keep,
            1 => Keeping::Chunked,
            2 => Keeping::IdleClose,
            3 => Keeping::HangUp,
            _ => Keeping::Busy,
        }
    }

    fn set(&self, mode: Keeping) {
        self.mode.store(mode as u8, Relaxed);
    }

    /// (connections accepted, requests answered).
    fn counts(&self) -> (usize, usize) {
        (self.connections.load(Relaxed), self.answered.load(Relaxed))
    }
}

#[test]
fn http_keep_alive_reuses_its_connection_and_makes_a_new_one_when_the_server_closed_it() {
    require(&[]);
    let ns = Netns::new("keepalive");
    ns.run(|| async {
        let srv = KeepServer::start("127.0.0.1:8301").await;
        let p = probe(
            "127.0.0.1:8301",
            r#"type = "http", keep_alive = true, expect_body = "ok""#,
        );
        let up = Some(Outcome::UP);
        // Five runs, one connection; chunked answers keep it too.
        for _ in 0..5 {
            assert_eq!(in_connector(&p).await, up);
        }
        assert_eq!(srv.counts(), (1, 5));
        srv.set(Keeping::Chunked);
        for _ in 0..3 {
            assert_eq!(in_connector(&p).await, up);
        }
        assert_eq!(srv.counts(), (1, 8));
        // Without a body rule the body is still read to its end, or the next answer would be
        // out of step (the same target and request: the same keep id here, the same
        // connection).
        let status_only = probe("127.0.0.1:8301", r#"type = "http", keep_alive = true"#);
        for _ in 0..3 {
            assert_eq!(in_connector(&status_only).await, up);
        }
        assert_eq!(srv.counts(), (1, 11));

        // The server closes idle connections: each run finds its connection closed, makes
        // a new one, and is up.
        srv.set(Keeping::IdleClose);
        assert_eq!(in_connector(&p).await, up);
        for _ in 0..3 {
            tokio::time::sleep(100 * MS).await;
            assert_eq!(in_connector(&p).await, up);
        }
        assert_eq!(srv.counts(), (4, 15));

        // A server that hangs up on every request is down: the new connection is tried once.
        srv.set(Keeping::HangUp);
        let f = down(in_connector(&p).await.unwrap());
        assert_eq!(f, Failure::Closed("before the response".into()));
        assert_eq!(srv.counts().0, 5);

        // A 503 fails the run and the connection is not kept.
        srv.set(Keeping::Keep);
        assert_eq!(in_connector(&p).await, up);
        srv.set(Keeping::Busy);
        assert_eq!(
            in_connector(&p).await,
            Some(Outcome::Down(Failure::BadStatus(503)))
        );
        srv.set(Keeping::Keep);
        assert_eq!(in_connector(&p).await, up);
        assert_eq!(srv.counts(), (7, 18));

        // A kept connection that the server closes while idle is let go as soon as its
        // event is read (here during another check's run), not first tried with a request.
        scripted(
            "127.0.0.1:8302",
            Behaviour::Answer(150 * MS, response("200 OK", "slow\n")),
        )
        .await;
        let slow = probe("127.0.0.1:8302", r#"type = "http""#);
        let mut c = Connector::new().unwrap();
        let x = p.plain_http().unwrap().clone();
        srv.set(Keeping::IdleClose);
        let up = Outcome::UP;
        assert_eq!(
            drive(&mut c, p.target, None, p.timeout, Some(x.clone()), Some(1)).await,
            up
        );
        assert_eq!(c.kept(), 1);
        let other = slow.plain_http().unwrap().clone();
        assert_eq!(
            drive(
                &mut c,
                slow.target,
                None,
                slow.timeout,
                Some(other),
                Some(2)
            )
            .await,
            up
        );
        assert_eq!(c.kept(), 0, "the closed connection was let go");
        srv.set(Keeping::Keep);
        assert_eq!(
            drive(&mut c, p.target, None, p.timeout, Some(x.clone()), Some(1)).await,
            up
        );
        assert_eq!(c.kept(), 1);
        // The checks of a reload that are gone lose their connections.
        c.retain_kept([2].into_iter().collect());
        assert_eq!(c.kept(), 0);
        assert_eq!(srv.counts(), (9, 20));
        // And a run of a gone check that finishes afterwards does not keep its connection.
        assert_eq!(
            drive(&mut c, p.target, None, p.timeout, Some(x.clone()), Some(1)).await,
            up
        );
        assert_eq!(
            c.kept(),
            0,
            "check 1 is gone: its run's connection is let go"
        );
        assert_eq!(
            drive(&mut c, p.target, None, p.timeout, Some(x.clone()), Some(2)).await,
            up
        );
        assert_eq!(c.kept(), 1, "check 2 lives: its connection is kept");

        // As a future (the engine's fallback), the same check gets the same answers.
        assert_eq!(p.run().await, Outcome::UP);
        srv.set(Keeping::Busy);
        assert_eq!(
            fails("127.0.0.1:8301", r#"type = "http", keep_alive = true"#).await,
            Failure::BadStatus(503)
        );
    });
}

const NGINX_CONF: &str = r#"
daemon off;
master_process off;
worker_processes 1;
user root;
pid DIR/nginx.pid;
error_log DIR/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path DIR/tmp;
    proxy_temp_path DIR/tmp;
    fastcgi_temp_path DIR/tmp;
    uwsgi_temp_path DIR/tmp;
    scgi_temp_path DIR/tmp;
    ssl_certificate DIR/cert.pem;
    ssl_certificate_key DIR/key.pem;
    log_format keep '$connection $connection_requests $server_protocol $status';
    server {
        listen 127.0.0.1:8080;
        keepalive_requests 3;
        access_log DIR/keep.log keep;
        location / { return 200 "plain ok\n"; }
    }
    server {
        listen 127.0.0.1:8443 ssl default_server;
        server_name a.test;
        location / { return 200 "site A\n"; }
    }
    server {
        listen 127.0.0.1:8443 ssl;
        server_name b.test;
        location / { return 503 "site B down\n"; }
        location /ok { return 200 "site B ok\n"; }
    }
}
"#;

#[test]
fn https_against_nginx_sni_host_verify_and_half_open() {
    require(&["nginx", "openssl"]);
    let ns = Netns::new("https");
    let dir = TempDir::new("nginx");
    let d = dir.path().to_str().unwrap().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let out = lbtest::programs::command("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-keyout",
            &format!("{d}/key.pem"),
            "-out",
            &format!("{d}/cert.pem"),
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=a.test",
            "-addext",
            "subjectAltName=DNS:a.test,DNS:b.test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = dir.write("nginx.conf", NGINX_CONF.replace("DIR", &d));
    let mut nginx = ns.spawn(&["nginx", "-c", conf.to_str().unwrap(), "-p", &d]);
    ns.wait_tcp(
        "127.0.0.1:8443".parse().unwrap(),
        Duration::from_secs(10),
        "nginx",
    );
    nginx.assert_running();
    ns.run(|| async {
        // SNI picks the virtual server.
        assert_eq!(
            probe(
                "127.0.0.1:8443",
                r#"type = "https", sni = "a.test", expect_body = "site A""#
            )
            .run()
            .await,
            Outcome::UP
        );
        assert_eq!(
            fails("127.0.0.1:8443", r#"type = "https", sni = "b.test""#).await,
            Failure::BadStatus(503)
        );
        // Without `sni`, the Host name is the SNI name too.
        assert_eq!(
            probe(
                "127.0.0.1:8443",
                r#"type = "https", host = "b.test", path = "/ok", expect_body = "site B ok""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // Neither: no SNI, nginx's default server answers.
        assert_eq!(
            probe(
                "127.0.0.1:8443",
                r#"type = "https", expect_body = "site A""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // A self-signed certificate fails verification when asked for.
        let f = fails(
            "127.0.0.1:8443",
            r#"type = "https", sni = "a.test", tls_verify = true"#,
        )
        .await;
        assert!(
            matches!(&f, Failure::Tls(m) if m.contains("certificate")),
            "{f}"
        );
        // Plain HTTP to the TLS port: nginx says 400.
        assert_eq!(
            fails("127.0.0.1:8443", r#"type = "http""#).await,
            Failure::BadStatus(400)
        );
        // Plain HTTP with keep_alive: nginx ends a connection after 3 requests (it says
        // `Connection: close` on the third answer), so 7 runs take 3 connections.
        let keep = probe(
            "127.0.0.1:8080",
            r#"type = "http", keep_alive = true, expect_body = "plain ok""#,
        );
        for _ in 0..7 {
            assert_eq!(in_connector(&keep).await, Some(Outcome::UP));
        }
        // Half-open TLS: a port that accepts and never speaks.
        scripted("127.0.0.1:8444", Behaviour::Silent).await;
        let f = fails("127.0.0.1:8444", r#"type = "https", timeout = "300ms""#).await;
        assert_eq!(f.to_string(), "timeout after 300ms (TLS handshake)");
        // A server that hangs up during the handshake.
        scripted("127.0.0.1:8445", Behaviour::Close).await;
        let f = fails("127.0.0.1:8445", r#"type = "https""#).await;
        assert!(matches!(f, Failure::Closed(_) | Failure::Reset), "{f}");
    });
    // What nginx logged of the keep-alive runs: connection, its request number, protocol.
    let log = std::fs::read_to_string(dir.path().join("keep.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 7, "{log}");
    let numbers: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(numbers, ["1", "2", "3", "1", "2", "3", "1"], "{log}");
    let connections: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(connections.len(), 3, "{log}");
    assert!(lines.iter().all(|l| l.ends_with(" HTTP/1.1 200")), "{log}");
    nginx.kill().unwrap();
    ns.run(|| async {
        assert_eq!(
            fails("127.0.0.1:8443", r#"type = "https""#).await,
            Failure::Refused
        );
    });
}

/// Runs openssl; it must succeed.
fn openssl(args: &[&str]) {
    let out = lbtest::programs::command("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (made here with openssl) signs nginx's certificate for a.test, b.test and
/// 127.0.0.1: with the CA's PEM in `ca_pem` the check verifies it; without (the public
/// roots), or with another CA, or for a name the certificate does not hold, it is refused.
#[test]
fn https_verified_against_a_private_ca() {
    require(&["nginx", "openssl"]);
    let ns = Netns::new("privca");
    let dir = TempDir::new("privca");
    let d = dir.path().to_str().unwrap().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{d}/ca.key");
    let ca_pem = format!("{d}/ca.pem");
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &ca_key,
                "-out",
                &ca_pem,
                "-days",
                "2",
                "-subj",
                "/CN=lbd test private CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    let csr = format!("{d}/leaf.csr");
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &format!("{d}/key.pem"),
                "-out",
                &csr,
                "-subj",
                "/CN=a.test",
            ],
        ]
        .concat(),
    );
    let ext = dir.write(
        "leaf.ext",
        "subjectAltName=DNS:a.test,DNS:b.test,IP:127.0.0.1\n\
         basicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-set_serial",
        "2",
        "-days",
        "2",
        "-out",
        &format!("{d}/cert.pem"),
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    let ca = std::fs::read_to_string(&ca_pem).unwrap();
    let conf = dir.write("nginx.conf", NGINX_CONF.replace("DIR", &d));
    let mut nginx = ns.spawn(&["nginx", "-c", conf.to_str().unwrap(), "-p", &d]);
    ns.wait_tcp(
        "127.0.0.1:8443".parse().unwrap(),
        Duration::from_secs(10),
        "nginx",
    );
    nginx.assert_running();
    let other_ca = include_str!("check_support/test-ca.pem");
    ns.run(move || async move {
        let with_ca = |extra: &str, pem: &str| {
            probe(
                "127.0.0.1:8443",
                &format!("type = \"https\", {extra}ca_pem = \"\"\"\n{pem}\"\"\""),
            )
        };
        // The private CA verifies the certificate by DNS name (SNI) and by IP address.
        assert_eq!(
            with_ca(r#"sni = "a.test", expect_body = "site A", "#, &ca)
                .run()
                .await,
            Outcome::UP
        );
        assert_eq!(
            with_ca(r#"host = "b.test", path = "/ok", "#, &ca)
                .run()
                .await,
            Outcome::UP
        );
        assert_eq!(with_ca("", &ca).run().await, Outcome::UP);
        // ...but not for a name the certificate does not hold.
        let f = down(with_ca(r#"sni = "c.test", "#, &ca).run().await);
        assert!(
            matches!(&f, Failure::Tls(m) if m.contains("not valid for name \"c.test\"")),
            "{f}"
        );
        // The public roots do not know the private CA; neither does another CA.
        let f = fails(
            "127.0.0.1:8443",
            r#"type = "https", sni = "a.test", tls_verify = true"#,
        )
        .await;
        assert!(
            matches!(&f, Failure::Tls(m) if m.contains("UnknownIssuer")),
            "{f}"
        );
        let f = down(with_ca(r#"sni = "a.test", "#, other_ca).run().await);
        assert!(
            matches!(&f, Failure::Tls(m) if m.contains("UnknownIssuer")),
            "{f}"
        );
        // Both CAs in one ca_pem: the right one is found.
        let both = format!("{other_ca}{ca}");
        assert_eq!(
            with_ca(r#"sni = "a.test", "#, &both).run().await,
            Outcome::UP
        );
    });
}
