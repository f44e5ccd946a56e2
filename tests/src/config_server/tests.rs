use super::connection::{header_value, is_timeout};
use super::http_date::{http_date, parse_http_date};
use super::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};

use crate::scratch::ScratchDir;
use crate::wait;

const CONFIG: &[u8] = b"[node]\nhostname = \"lb-a\"\n\n[[service]]\nname = \"web\"\n";
const LIMIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn server() -> (ScratchDir, ConfigServer) {
    let dir = ScratchDir::new("cfgsrv");
    dir.write("lb-a.toml", CONFIG);
    dir.write("lb-a.toml.sig", "signature bytes\n");
    let server = ConfigServer::start(loopback(), dir.path()).unwrap();
    (dir, server)
}

/// Connects and sends `GET path` with `headers`.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        text.push_str(&format!("{h}\r\n"));
    }
    text.push_str("\r\n");
    s.write_all(text.as_bytes()).unwrap();
    s
}

/// Reads until the server closes.
fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).unwrap();
    out
}

/// Status, headers and body of a complete answer.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

fn parse(raw: &[u8]) -> Response {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..at]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| l.split_once(": ").unwrap())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[at + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
    parse(&read_all(request(addr, "GET", path, headers)))
}

/// The log entry of request `index` once it has ended.
fn ended(server: &ConfigServer, index: usize) -> Request {
    wait::expect_some(
        "the exchange to end",
        LIMIT,
        Duration::from_millis(10),
        || {
            server
                .requests()
                .get(index)
                .filter(|r| r.end != End::InProgress)
                .cloned()
        },
    )
}

#[test]
fn serve_answers_files_with_validators_and_304() {
    let (dir, server) = server();
    let addr = server.addr();

    let first = get(addr, "/lb-a.toml", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, CONFIG);
    assert_eq!(
        first.header("Content-Length"),
        Some(CONFIG.len().to_string().as_str())
    );
    let etag = first.header("ETag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let last_modified = first.header("Last-Modified").unwrap().to_owned();
    assert!(parse_http_date(&last_modified).is_some(), "{last_modified}");

    // The same ETag (also weak, also in a list) is answered 304 without a body.
    for tag in [etag.clone(), format!("\"x\", W/{etag}")] {
        let again = get(addr, "/lb-a.toml", &[&format!("If-None-Match: {tag}")]);
        assert_eq!(again.status, 304, "{tag}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("ETag"), Some(etag.as_str()));
    }
    let other = get(addr, "/lb-a.toml", &["If-None-Match: \"other\""]);
    assert_eq!(other.status, 200);
    let since = get(
        addr,
        "/lb-a.toml",
        &[&format!("If-Modified-Since: {last_modified}")],
    );
    assert_eq!(since.status, 304);

    // Files are read per request: a change is a new body under a new ETag.
    dir.write("lb-a.toml", "[node]\nhostname = \"lb-b\"\n");
    let changed = get(addr, "/lb-a.toml", &[&format!("If-None-Match: {etag}")]);
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, b"[node]\nhostname = \"lb-b\"\n");
    assert_ne!(changed.header("ETag"), Some(etag.as_str()));

    let sig = get(addr, "/lb-a.toml.sig?node=a", &[]);
    assert_eq!(
        (sig.status, &sig.body[..]),
        (200, &b"signature bytes\n"[..])
    );
    let head = parse(&read_all(request(addr, "HEAD", "/lb-a.toml", &[])));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length = changed.body.len().to_string();
    assert_eq!(head.header("Content-Length"), Some(length.as_str()));

    assert_eq!(get(addr, "/missing.toml", &[]).status, 404);
    assert_eq!(get(addr, "/", &[]).status, 404);
    assert_eq!(get(addr, "/../etc/passwd", &[]).status, 400);
    assert_eq!(get(addr, "/a/../lb-a.toml", &[]).status, 400);
    let post = parse(&read_all(request(addr, "POST", "/lb-a.toml", &[])));
    assert_eq!(post.status, 405);

    let log = server.requests();
    let statuses: Vec<_> = log.iter().map(|r| r.status.unwrap()).collect();
    assert_eq!(
        statuses,
        [200, 304, 304, 200, 304, 200, 200, 200, 404, 404, 400, 400, 405]
    );
    assert!(log
        .iter()
        .all(|r| r.mode == Mode::Serve && r.end == End::Complete));
    assert_eq!(log[0].path, "/lb-a.toml");
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[1].header("if-none-match"), Some(etag.as_str()));
    assert_eq!(log[0].declared, Some(CONFIG.len() as u64));
    assert!(log[0].sent > CONFIG.len() as u64);
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn gone_refuses_connections_and_serve_listens_again_on_the_same_port() {
    let (_dir, server) = server();
    let addr = server.addr();
    assert_eq!(get(addr, "/lb-a.toml", &[]).status, 200);

    server.set_mode(Mode::Gone).unwrap();
    assert_eq!(server.mode(), Mode::Gone);
    let refused = TcpStream::connect_timeout(&addr, LIMIT).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    // Switching within Gone keeps it closed.
    server.set_mode(Mode::Gone).unwrap();
    assert!(TcpStream::connect_timeout(&addr, LIMIT).is_err());

    server.set_mode(Mode::Serve).unwrap();
    assert_eq!(server.addr(), addr);
    assert_eq!(get(addr, "/lb-a.toml", &[]).body, CONFIG);
    assert_eq!(
        server.requests().len(),
        2,
        "refused connections are not requests"
    );
}

#[test]
fn blackhole_accepts_and_never_answers_until_the_client_closes() {
    let (_dir, server) = server();
    server.set_mode(Mode::Blackhole).unwrap();
    let mut s = request(server.addr(), "GET", "/lb-a.toml", &[]);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let e = s.read(&mut [0; 16]).unwrap_err();
    assert!(is_timeout(&e), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(250));

    let log = wait::expect_some("the request logged", LIMIT, TICK, || {
        server.requests().pop()
    });
    assert_eq!(
        (log.mode, log.end, log.status),
        (Mode::Blackhole, End::InProgress, None)
    );
    assert_eq!(server.active_connections(), 1);
    drop(s);
    let log = ended(&server, 0);
    assert_eq!((log.end, log.sent), (End::PeerClosed, 0));
    wait::expect("the connection thread ended", LIMIT, TICK, || {
        server.active_connections() == 0
    });
}

#[test]
fn garbage_is_not_http() {
    let (_dir, server) = server();
    server.set_mode(Mode::Garbage).unwrap();
    let raw = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
    assert!(raw.len() >= 512, "{}", raw.len());
    assert!(!raw.starts_with(b"HTTP/"));
    assert!(raw
        .iter()
        .all(|b| b.is_ascii_graphic() || b"\r\n".contains(b)));
    let again = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
    assert_ne!(raw, again, "random each time");
    let log = ended(&server, 0);
    assert_eq!(
        (log.mode, log.status, log.end),
        (Mode::Garbage, None, End::Complete)
    );
    assert_eq!(log.sent, raw.len() as u64);
}

#[test]
fn truncated_sends_less_than_it_declares() {
    let (dir, server) = server();
    server.set_mode(Mode::Truncated).unwrap();
    let r = get(server.addr(), "/lb-a.toml", &[]);
    assert_eq!(r.status, 200);
    let declared: usize = r.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(declared, CONFIG.len());
    assert_eq!(r.body, &CONFIG[..CONFIG.len() / 2]);
    let etag = format!("If-None-Match: {}", r.header("ETag").unwrap());
    let again = get(server.addr(), "/lb-a.toml", &[&etag]);
    assert_eq!((again.status, again.body.len()), (200, CONFIG.len() / 2));

    dir.write("empty.toml", "");
    let r = get(server.addr(), "/empty.toml", &[]);
    assert_eq!((r.header("Content-Length"), r.body.len()), (Some("1"), 0));
    assert_eq!(get(server.addr(), "/missing", &[]).status, 404);

    let log = ended(&server, 0);
    assert_eq!(
        (log.status, log.declared),
        (Some(200), Some(CONFIG.len() as u64))
    );
    assert_eq!(log.end, End::Complete);
}

#[test]
fn huge_streams_until_the_client_gives_up() {
    const CAP: usize = 4 << 20;
    const GIB: u64 = 1 << 30;
    let (_dir, server) = server();
    server.set_mode(Mode::Huge(GIB)).unwrap();
    let mut s = request(server.addr(), "GET", "/lb-a.toml", &[]);
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    // Read the head and 4 MiB of body, as a client with a 4 MiB cap would, then close.
    let body_at = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = parse(&raw[..body_at]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("1073741824"));
    let want = body_at + CAP;
    while raw.len() < want {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[body_at..]);
    assert!(
        body.starts_with("[[service]]\nname = \"junk-000000\""),
        "{}",
        &body[..80]
    );
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);

    let log = ended(&server, 0);
    assert_eq!(log.end, End::PeerClosed);
    assert_eq!((log.status, log.declared), (Some(200), Some(GIB)));
    // What the client read, plus what socket buffers held when it closed: nowhere near 1 GiB.
    assert!(log.sent >= want as u64, "{}", log.sent);
    assert!(log.sent < GIB / 4, "{}", log.sent);

    // Undeclared: no Content-Length, the body ends with the connection.
    server.set_mode(Mode::HugeUndeclared(100_000)).unwrap();
    let r = get(server.addr(), "/lb-a.toml", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), None);
    assert_eq!(r.body.len(), 100_000);
    let log = ended(&server, 1);
    assert_eq!((log.declared, log.end), (None, End::Complete));
}

#[test]
fn slow_trickles_a_valid_answer_and_stops_when_the_client_closes() {
    let (dir, server) = server();
    // Fast enough to finish: the whole answer, valid, no sooner than the rate allows.
    server
        .set_mode(Mode::Slow {
            bytes_per_second: 2000,
        })
        .unwrap();
    let started = Instant::now();
    let raw = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
    let floor = Duration::from_secs_f64((raw.len() - 1) as f64 / 2000.0);
    assert!(
        started.elapsed() >= floor,
        "{:?} < {floor:?}",
        started.elapsed()
    );
    let r = parse(&raw);
    assert_eq!((r.status, &r.body[..]), (200, CONFIG));
    assert_eq!(ended(&server, 0).end, End::Complete);

    // 2 kB at 100 bytes per second would take 20 s; the client reads 30 bytes and closes.
    dir.write("big.toml", "# padding\n".repeat(200));
    server
        .set_mode(Mode::Slow {
            bytes_per_second: 100,
        })
        .unwrap();
    let started = Instant::now();
    let mut s = request(server.addr(), "GET", "/big.toml", &[]);
    let first = read_n(&mut s, 1);
    let first_at = started.elapsed();
    let rest = read_n(&mut s, 29);
    // Byte k is written no earlier than k/100 s after byte 0, which is after the request.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took > first_at);
    assert!([first, rest].concat().starts_with(b"HTTP/1.1 200 OK\r\n"));
    drop(s);
    let log = ended(&server, 1);
    assert_eq!((log.status, log.end), (Some(200), End::PeerClosed));
    assert!(log.sent >= 30 && log.sent < 1000, "{}", log.sent);

    let e = server
        .set_mode(Mode::Slow {
            bytes_per_second: 0,
        })
        .unwrap_err();
    assert!(matches!(e, ConfigServerError::BadMode(..)), "{e}");
}

#[test]
fn connections_beyond_the_limit_are_closed_and_drop_ends_every_thread() {
    let (_dir, server) = server();
    server.set_mode(Mode::Blackhole).unwrap();
    let held: Vec<_> = (0..MAX_CONNECTIONS)
        .map(|_| request(server.addr(), "GET", "/lb-a.toml", &[]))
        .collect();
    wait::expect("every connection held", LIMIT, TICK, || {
        server.active_connections() == MAX_CONNECTIONS && server.requests().len() == MAX_CONNECTIONS
    });
    let mut extra = request(server.addr(), "GET", "/lb-a.toml", &[]);
    // Closed unanswered: the end of the stream or a reset.
    let mut buf = [0; 16];
    assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(server.rejected_connections(), 1);

    // A slow answer that would take minutes and a huge one the client does not read.
    server
        .set_mode(Mode::Slow {
            bytes_per_second: 1,
        })
        .unwrap();
    drop(held.into_iter().take(2).collect::<Vec<_>>());
    wait::expect("room again", LIMIT, TICK, || {
        server.active_connections() < MAX_CONNECTIONS - 1
    });
    let mut slow = request(server.addr(), "GET", "/lb-a.toml", &[]);
    assert_eq!(read_n(&mut slow, 1), b"H");
    server.set_mode(Mode::Huge(1 << 30)).unwrap();
    let mut huge = request(server.addr(), "GET", "/lb-a.toml", &[]);
    assert_eq!(read_n(&mut huge, 1), b"H");

    let started = Instant::now();
    let addr = server.addr();
    let log = server.requests();
    drop(server);
    assert!(started.elapsed() < STOP_TIMEOUT, "{:?}", started.elapsed());
    assert!(TcpStream::connect_timeout(&addr, LIMIT).is_err());
    // The slow client sees its connection end, long before the answer could have.
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.len() < 10, "{}", rest.len());
    assert_eq!(log.len(), MAX_CONNECTIONS + 2);
}

#[test]
fn a_missing_directory_or_a_taken_address_is_an_error() {
    let e = ConfigServer::start(loopback(), Path::new("/nonexistent/lbtest")).unwrap_err();
    assert!(matches!(e, ConfigServerError::NoDir(_)), "{e}");
    let (dir, server) = server();
    let e = ConfigServer::start(server.addr(), dir.path()).unwrap_err();
    assert!(matches!(e, ConfigServerError::Bind { .. }), "{e}");
    assert!(e.to_string().contains(&server.addr().to_string()), "{e}");
}

#[test]
fn http_dates_round_trip() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
        assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
    }
    assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
}
