//! init's HTTP config fetch against a server that fails on purpose (lbtest's `ConfigServer`):
//! a server that is gone, silent, not HTTP, cuts the body short, sends a gigabyte or trickles.
//! Each fault must end the attempt with an error that says what happened, never with a config,
//! within the attempt timeout and without reading more than the size limit; and the same
//! fetcher, holding the running config, must see it again once the server serves it.

mod fetch_common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fetch_common::*;
use init::fetch::{AttemptError, FetchError, FetchOutcome, Fetched, Fetcher, HttpError, Vars};
use lbtest::config_server::{ConfigServer, End, Mode, Request};

/// The attempt timeout of every fetch here: short, so the tests are.
const ATTEMPT: Duration = Duration::from_secs(1);
/// init's default size limit, spelled out: the Huge cases are about it.
const MAX_SIZE: u64 = 4 << 20;
const GIB: u64 = 1 << 30;
const CONFIG: &[u8] =
    b"[node]\nhostname = \"lb-a\"\n\n[[service]]\nname = \"web\"\nvip = \"10.0.0.10:80\"\n";

fn serve() -> (TempDir, ConfigServer) {
    let dir = TempDir::new("faults");
    dir.write("lb-a.toml", CONFIG);
    let server = ConfigServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), dir.path())
        .expect("config server on loopback");
    (dir, server)
}

fn fetcher(server: &ConfigServer) -> Fetcher {
    Fetcher::from_templates(&[server.url("lb-a.toml")], Vars::default())
        .unwrap()
        .with_attempt_timeout(ATTEMPT)
        .with_max_size(MAX_SIZE)
}

async fn fetch_new(f: &mut Fetcher, previous: Option<&Fetched>) -> Fetched {
    match f.fetch(previous).await {
        Ok(FetchOutcome::New(got)) => got,
        other => panic!("expected a new config, got {other:?}"),
    }
}

/// Fetches, expecting a failure: its single cause and how long the fetch took.
async fn failure(f: &mut Fetcher, previous: Option<&Fetched>) -> (AttemptError, Duration) {
    let started = Instant::now();
    let result = f.fetch(previous).await;
    let took = started.elapsed();
    match result {
        Err(FetchError::AllFailed { mut failures }) if failures.len() == 1 => {
            (failures.remove(0).error, took)
        }
        other => panic!("expected one failed URL, got {other:?}"),
    }
}

fn http(e: AttemptError) -> HttpError {
    match e {
        AttemptError::Http(h) => h,
        other => panic!("expected an HTTP error, got {other}"),
    }
}

/// The last request's log entry once the server has finished with it (the client side may
/// have given up a moment earlier).
async fn last_ended(server: &ConfigServer) -> Request {
    let done = lbtest::wait::until_async(Duration::from_secs(5), Duration::from_millis(10), || {
        server
            .requests()
            .last()
            .is_some_and(|r| r.end != End::InProgress)
    })
    .await;
    let log = server.requests();
    assert!(done.is_some(), "the server did not finish: {log:#?}");
    log.last().unwrap().clone()
}

/// The attempt timeout fires, not much later than it should: the attempt is bounded.
fn assert_timed_out(e: &AttemptError, took: Duration) {
    assert!(
        matches!(e, AttemptError::Timeout(d) if *d == ATTEMPT),
        "{e}"
    );
    assert!(took >= ATTEMPT, "{took:?}");
    assert!(took < ATTEMPT + Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn serve_answers_200_then_304_to_the_validators_init_sends() {
    bounded(async {
        let (_dir, server) = serve();
        let mut f = fetcher(&server);
        let first = fetch_new(&mut f, None).await;
        assert_eq!(&first.bytes[..], CONFIG);
        let etag = first.etag.clone().expect("the server sends an ETag");
        assert!(first.last_modified.is_some());
        assert_eq!(
            f.fetch(Some(&first)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        let log = server.requests();
        let statuses: Vec<_> = log.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Some(200), Some(304)], "answered on the wire");
        assert_eq!(log[1].header("If-None-Match"), Some(etag.as_str()));
        assert_eq!(
            log[1].header("If-Modified-Since"),
            first.last_modified.as_deref()
        );
    })
    .await
}

#[tokio::test]
async fn a_gone_server_is_refused_and_the_config_comes_back_with_it() {
    bounded(async {
        let (_dir, server) = serve();
        let mut f = fetcher(&server);
        let running = fetch_new(&mut f, None).await;

        server.set_mode(Mode::Gone).unwrap();
        let (e, _) = failure(&mut f, Some(&running)).await;
        match http(e) {
            HttpError::Connect { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }

        server.set_mode(Mode::Serve).unwrap();
        assert_eq!(
            f.fetch(Some(&running)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        assert_eq!(fetch_new(&mut f, None).await.bytes, running.bytes);
    })
    .await
}

#[tokio::test]
async fn a_silent_server_is_cut_off_by_the_attempt_timeout() {
    bounded(async {
        let (_dir, server) = serve();
        server.set_mode(Mode::Blackhole).unwrap();
        let (e, took) = failure(&mut fetcher(&server), None).await;
        assert_timed_out(&e, took);
        // init closed the connection when it gave up.
        let log = last_ended(&server).await;
        assert_eq!(
            (log.mode, log.end, log.sent),
            (Mode::Blackhole, End::PeerClosed, 0)
        );
    })
    .await
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_parse_error() {
    bounded(async {
        let (_dir, server) = serve();
        server.set_mode(Mode::Garbage).unwrap();
        let (e, _) = failure(&mut fetcher(&server), None).await;
        let e = http(e);
        assert!(matches!(e, HttpError::Protocol { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("invalid HTTP"), "{text}");
    })
    .await
}

#[tokio::test]
async fn a_truncated_body_is_an_error_not_half_a_config() {
    bounded(async {
        let (_dir, server) = serve();
        server.set_mode(Mode::Truncated).unwrap();
        let (e, _) = failure(&mut fetcher(&server), None).await;
        let e = http(e);
        assert!(matches!(e, HttpError::Protocol { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("end of file before message length reached"),
            "{text}"
        );
        let log = last_ended(&server).await;
        assert_eq!(log.declared, Some(CONFIG.len() as u64));
    })
    .await
}

#[tokio::test]
async fn a_huge_declared_body_is_refused_from_its_header() {
    bounded(async {
        let (_dir, server) = serve();
        server.set_mode(Mode::Huge(GIB)).unwrap();
        let (e, _) = failure(&mut fetcher(&server), None).await;
        match http(e) {
            HttpError::TooLarge { limit, detail, .. } => {
                assert_eq!(limit, MAX_SIZE);
                assert_eq!(detail, format!("Content-Length is {GIB}"));
            }
            other => panic!("{other:?}"),
        }
        // init closed the connection without reading the body: the server got rid of no more
        // than socket buffers hold.
        let log = last_ended(&server).await;
        assert_eq!(log.end, End::PeerClosed);
        assert!(log.sent < 64 << 20, "{}", log.sent);
    })
    .await
}

#[tokio::test]
async fn a_huge_undeclared_body_is_cut_at_the_size_limit() {
    bounded(async {
        let (_dir, server) = serve();
        server.set_mode(Mode::HugeUndeclared(GIB)).unwrap();
        let (e, _) = failure(&mut fetcher(&server), None).await;
        match http(e) {
            HttpError::TooLarge { limit, detail, .. } => {
                assert_eq!(limit, MAX_SIZE);
                assert_eq!(detail, "no Content-Length, and more than that arrived");
            }
            other => panic!("{other:?}"),
        }
        let log = last_ended(&server).await;
        assert_eq!(log.end, End::PeerClosed);
        assert!(log.sent > MAX_SIZE, "{}", log.sent);
        assert!(log.sent < MAX_SIZE + (64 << 20), "{}", log.sent);
    })
    .await
}

#[tokio::test]
async fn a_trickling_answer_is_cut_off_by_the_attempt_timeout() {
    bounded(async {
        let (_dir, server) = serve();
        // One byte per second: the status line alone would take 17 s.
        server
            .set_mode(Mode::Slow {
                bytes_per_second: 1,
            })
            .unwrap();
        let (e, took) = failure(&mut fetcher(&server), None).await;
        assert_timed_out(&e, took);
        let log = last_ended(&server).await;
        assert_eq!(log.end, End::PeerClosed);
        // Not even the status line (17 bytes) was sent.
        assert!(log.sent < 17, "{}", log.sent);

        // Slow but within the timeout is fine.
        server
            .set_mode(Mode::Slow {
                bytes_per_second: 4000,
            })
            .unwrap();
        let got = fetch_new(&mut fetcher(&server), None).await;
        assert_eq!(&got.bytes[..], CONFIG);
    })
    .await
}

/// What kind of failure `e` is, for the table of the chaos test.
fn kind(e: &AttemptError) -> &'static str {
    match e {
        AttemptError::Timeout(_) => "timeout",
        AttemptError::Http(HttpError::Connect { .. }) => "connect",
        AttemptError::Http(HttpError::Protocol { .. }) => "protocol",
        AttemptError::Http(HttpError::TooLarge { .. }) => "too large",
        _ => "other",
    }
}

/// The chaos test in small: a fetcher holding a running config goes through every fault, gets
/// the expected error each time (never a new config), with and without validators, and sees the
/// running config unchanged once the server is back.
#[tokio::test]
async fn no_fault_yields_a_config_and_serving_again_recovers() {
    bounded(async {
        let (_dir, server) = serve();
        let mut f = fetcher(&server);
        let running = fetch_new(&mut f, None).await;
        for (mode, expected) in [
            (Mode::Gone, "connect"),
            (Mode::Blackhole, "timeout"),
            (Mode::Garbage, "protocol"),
            (Mode::Truncated, "protocol"),
            (Mode::Huge(GIB), "too large"),
            (Mode::HugeUndeclared(GIB), "too large"),
            (
                Mode::Slow {
                    bytes_per_second: 1,
                },
                "timeout",
            ),
        ] {
            server.set_mode(mode).unwrap();
            for previous in [Some(&running), None] {
                let (e, took) = failure(&mut f, previous).await;
                assert_eq!(kind(&e), expected, "{mode:?}: {e}");
                assert!(
                    took < ATTEMPT + Duration::from_secs(4),
                    "{mode:?}: {took:?}"
                );
            }
        }
        server.set_mode(Mode::Serve).unwrap();
        assert_eq!(
            f.fetch(Some(&running)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        let again = fetch_new(&mut f, None).await;
        assert_eq!(again.sha256, running.sha256);
    })
    .await
}

/// A fetcher whose validator refuses any config without `[node]`, counting its calls.
fn validating(url: String) -> (Fetcher, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let f = Fetcher::from_templates(&[url], Vars::default())
        .unwrap()
        .with_attempt_timeout(ATTEMPT)
        .with_validator(move |_, body| {
            counted.fetch_add(1, Ordering::SeqCst);
            match std::str::from_utf8(body) {
                Ok(text) if text.contains("[node]") => Ok(()),
                _ => Err("no [node] section".into()),
            }
        });
    (f, calls)
}

/// The refusal's text, which must stay the same poll after poll (it is reported once).
async fn refusal(f: &mut Fetcher, previous: &Fetched) -> String {
    let (e, _) = failure(f, Some(previous)).await;
    assert!(matches!(e, AttemptError::Rejected(_)), "{e}");
    e.to_string()
}

/// A server that keeps serving the same invalid config: init asks with the refused body's ETag,
/// the server answers 304 without a body, and the validator is not run again; a fixed config
/// is fetched and validated as usual.
#[tokio::test]
async fn a_refused_config_served_again_costs_a_304_not_a_download_and_a_parse() {
    bounded(async {
        let (dir, server) = serve();
        let (mut f, validated) = validating(server.url("lb-a.toml"));
        let running = fetch_new(&mut f, None).await;
        assert_eq!(validated.load(Ordering::SeqCst), 1);

        dir.write("lb-a.toml", b"[[service]]\nname = \"web\"\n");
        let first = refusal(&mut f, &running).await;
        for _ in 0..3 {
            assert_eq!(refusal(&mut f, &running).await, first);
        }
        assert_eq!(
            validated.load(Ordering::SeqCst),
            2,
            "validated once per body"
        );
        let log = server.requests();
        let statuses: Vec<_> = log.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Some(200), Some(200), Some(304), Some(304), Some(304)]
        );
        // Asked about the refused body (its ETag), not about the running one.
        assert_eq!(log[1].header("If-None-Match"), running.etag.as_deref());
        let asked = log[2]
            .header("If-None-Match")
            .expect("a conditional request");
        assert_ne!(Some(asked), running.etag.as_deref());
        assert!(log[3..]
            .iter()
            .all(|r| r.header("If-None-Match") == Some(asked)));
        assert_eq!(log[2].header("If-Modified-Since"), None);

        // Fixed: a new body, validated and taken.
        let fixed = b"[node]\nhostname = \"lb-a\"\n# fixed\n";
        dir.write("lb-a.toml", fixed);
        assert_eq!(&fetch_new(&mut f, Some(&running)).await.bytes[..], fixed);
        assert_eq!(validated.load(Ordering::SeqCst), 3);
    })
    .await
}

/// Without an ETag (python's http.server sends only Last-Modified) the refused body is
/// downloaded again, but known by its hash: refused for the same reason, not parsed again. And
/// going back to the running config is seen as "unchanged".
#[tokio::test]
async fn without_an_etag_a_refused_config_is_known_by_its_hash() {
    bounded(async {
        let dir = TempDir::new("faults-py");
        dir.write("lb-a.toml", CONFIG);
        let (_server, addr) = python_http(dir.path()).await;
        let (mut f, validated) = validating(format!("http://{addr}/lb-a.toml"));
        let running = fetch_new(&mut f, None).await;
        assert_eq!(running.etag, None);

        // Each write a later time stamp: Last-Modified has whole seconds.
        let publish = |body: &[u8], later: u64| {
            let file = dir.write("lb-a.toml", body);
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_modified(std::time::SystemTime::now() + Duration::from_secs(later))
                .unwrap();
        };
        publish(b"[[service]]\nname = \"web\"\n", 5);
        let first = refusal(&mut f, &running).await;
        for _ in 0..3 {
            assert_eq!(refusal(&mut f, &running).await, first);
        }
        assert_eq!(
            validated.load(Ordering::SeqCst),
            2,
            "validated once per body"
        );

        publish(CONFIG, 10);
        assert_eq!(
            f.fetch(Some(&running)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        assert_eq!(validated.load(Ordering::SeqCst), 2);
    })
    .await
}
