//! HTTP client against a real `python3 -m http.server` (Last-Modified / If-Modified-Since) and a
//! scripted peer on loopback (ETag, error statuses, silence, size limits, chunked bodies,
//! redirects).

mod fetch_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fetch_common::*;
use hyper::StatusCode;
use init::fetch::http::{self, HttpError, HttpLimits, HttpResponse, Validators, USER_AGENT};
use init::fetch::{AttemptError, FetchError, FetchOutcome, FetchUrl, Fetched, Fetcher, Vars};

fn fetcher(url: &str) -> Fetcher {
    Fetcher::from_templates(&[url], Vars::default())
        .unwrap()
        .with_attempt_timeout(Duration::from_secs(5))
}

async fn fetch_new(f: &mut Fetcher, previous: Option<&Fetched>) -> Fetched {
    match f.fetch(previous).await {
        Ok(FetchOutcome::New(got)) => got,
        other => panic!("expected a new config, got {other:?}"),
    }
}

/// The single cause of a one-URL fetch failure.
fn only_cause(e: FetchError) -> AttemptError {
    match e {
        FetchError::AllFailed { mut failures } if failures.len() == 1 => failures.remove(0).error,
        other => panic!("expected one failure, got {other}"),
    }
}

fn http_cause(e: FetchError) -> HttpError {
    match only_cause(e) {
        AttemptError::Http(h) => h,
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[tokio::test]
async fn python_server_fetch_conditional_refetch_and_change() {
    bounded(async {
        let dir = TempDir::new("py-http");
        let file = dir.write("nodes/lb-a.toml", b"[node]\nname = \"lb-a\"\n");
        let (server, addr) = python_http(dir.path()).await;
        let url = format!("http://{addr}/nodes/lb-a.toml");
        let mut f = fetcher(&url);

        let first = fetch_new(&mut f, None).await;
        assert_eq!(&first.bytes[..], b"[node]\nname = \"lb-a\"\n");
        assert_eq!(first.url, FetchUrl::parse(&url).unwrap());
        assert_eq!(first.final_url, first.url);
        let last_modified = first
            .last_modified
            .clone()
            .expect("python's http.server sends Last-Modified");
        assert!(last_modified.ends_with(" GMT"), "{last_modified}");

        // Conditional re-fetch: the server answers 304 (seen on the wire, not by hash).
        let direct = http::get(&first.url, first.validators(), HttpLimits::default())
            .await
            .unwrap();
        assert!(
            matches!(direct, HttpResponse::NotModified { .. }),
            "{direct:?}"
        );
        assert_eq!(
            f.fetch(Some(&first)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        assert_eq!(
            server.log().matches("\" 304 ").count(),
            2,
            "python should have logged two 304s: {}",
            server.log()
        );

        // The file changes (new content, later mtime): a new config.
        std::fs::write(&file, b"[node]\nname = \"lb-a\"\nweight = 2\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let second = fetch_new(&mut f, Some(&first)).await;
        assert_eq!(&second.bytes[..], b"[node]\nname = \"lb-a\"\nweight = 2\n");
        assert_ne!(second.sha256, first.sha256);
        assert_ne!(second.last_modified, first.last_modified);

        // Missing file: python's 404 with the URL in the message.
        let missing = format!("http://{addr}/nodes/nope.toml");
        let e = fetcher(&missing).fetch(None).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&missing) && text.contains("404"), "{text}");
    })
    .await
}

#[tokio::test]
async fn etag_if_none_match_and_request_headers() {
    bounded(async {
        let server = ScriptedHttp::start(|req| {
            if req.header("If-None-Match") == Some("\"v1\"") {
                response("304 Not Modified", &[("ETag", "\"v1\"")], b"")
            } else {
                response("200 OK", &[("ETag", "\"v1\"")], b"config v1")
            }
        })
        .await;
        let url = server.url("/cfg?node=a");
        let mut f = fetcher(&url);
        let first = fetch_new(&mut f, None).await;
        assert_eq!(first.etag.as_deref(), Some("\"v1\""));
        assert_eq!(first.last_modified, None);
        assert_eq!(
            f.fetch(Some(&first)).await.unwrap(),
            FetchOutcome::Unchanged
        );

        let seen = server.requests();
        assert_eq!(seen.len(), 2);
        let host = server.addr.to_string();
        for r in &seen {
            assert_eq!(r.method, "GET");
            assert_eq!(r.target, "/cfg?node=a");
            assert_eq!(r.header("Host"), Some(host.as_str()));
            assert_eq!(r.header("User-Agent"), Some(USER_AGENT));
            assert_eq!(r.header("If-Modified-Since"), None);
        }
        assert_eq!(seen[0].header("If-None-Match"), None);
        assert_eq!(seen[1].header("If-None-Match"), Some("\"v1\""));
    })
    .await
}

#[tokio::test]
async fn same_body_under_a_new_etag_is_unchanged_by_hash() {
    bounded(async {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let server = ScriptedHttp::start(move |_| {
            let etag = format!("\"v{}\"", n2.fetch_add(1, Ordering::SeqCst));
            response("200 OK", &[("ETag", &etag)], b"same bytes")
        })
        .await;
        let mut f = fetcher(&server.url("/c"));
        let first = fetch_new(&mut f, None).await;
        assert_eq!(
            f.fetch(Some(&first)).await.unwrap(),
            FetchOutcome::Unchanged
        );
        assert_eq!(
            n.load(Ordering::SeqCst),
            2,
            "both fetches reached the server"
        );
    })
    .await
}

#[tokio::test]
async fn error_statuses_name_status_and_url() {
    bounded(async {
        let server = ScriptedHttp::start(|req| match req.target.as_str() {
            "/missing" => response("404 Not Found", &[], b"no such node"),
            "/broken" => response("500 Internal Server Error", &[], b"oops"),
            "/notmod" => response("304 Not Modified", &[], b""),
            _ => response("204 No Content", &[], b""),
        })
        .await;
        for (path, status) in [
            ("/missing", StatusCode::NOT_FOUND),
            ("/broken", StatusCode::INTERNAL_SERVER_ERROR),
            ("/other", StatusCode::NO_CONTENT),
        ] {
            let url = server.url(path);
            let e = http_cause(fetcher(&url).fetch(None).await.unwrap_err());
            match &e {
                HttpError::Status { url: u, status: s } => {
                    assert_eq!(*s, status);
                    assert_eq!(u.to_string(), url);
                }
                other => panic!("{other:?}"),
            }
            let text = e.to_string();
            assert!(
                text.contains(&url) && text.contains(status.as_str()),
                "{text}"
            );
        }
        let e = http_cause(
            fetcher(&server.url("/notmod"))
                .fetch(None)
                .await
                .unwrap_err(),
        );
        assert!(
            matches!(e, HttpError::UnexpectedNotModified { .. }),
            "{e:?}"
        );
    })
    .await
}

#[tokio::test]
async fn silent_server_hits_the_attempt_timeout() {
    bounded(async {
        let server = ScriptedHttp::start(|_| Reply::Hang).await;
        let mut f = fetcher(&server.url("/c")).with_attempt_timeout(Duration::from_millis(400));
        let started = Instant::now();
        let e = only_cause(f.fetch(None).await.unwrap_err());
        let elapsed = started.elapsed();
        assert!(
            matches!(e, AttemptError::Timeout(d) if d == Duration::from_millis(400)),
            "{e}"
        );
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(
            server.requests().len(),
            1,
            "the request did reach the server"
        );

        // A body that trickles in slower than the timeout is cut off as well.
        let slow = ScriptedHttp::start(|_| {
            Reply::Slow(
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n".to_vec(),
                    b"a".to_vec(),
                    b"b".to_vec(),
                    b"c".to_vec(),
                ],
                Duration::from_millis(300),
            )
        })
        .await;
        let mut f = fetcher(&slow.url("/c")).with_attempt_timeout(Duration::from_millis(500));
        let e = only_cause(f.fetch(None).await.unwrap_err());
        assert!(matches!(e, AttemptError::Timeout(_)), "{e}");
    })
    .await
}

#[tokio::test]
async fn connection_refused_is_reported() {
    bounded(async {
        let port = free_tcp_port();
        let url = format!("http://127.0.0.1:{port}/c");
        let e = http_cause(fetcher(&url).fetch(None).await.unwrap_err());
        match &e {
            HttpError::Connect { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&url), "{e}");
    })
    .await
}

#[tokio::test]
async fn body_size_is_bounded() {
    bounded(async {
        let big = vec![b'x'; 5000];
        let big2 = big.clone();
        let server = ScriptedHttp::start(move |req| match req.target.as_str() {
            "/announced" => response("200 OK", &[], &big2),
            // Chunked: no length up front, the limit trips while reading.
            _ => Reply::Raw(chunked(&[&big2[..3000], &big2[3000..]])),
        })
        .await;
        for (path, detail) in [
            ("/announced", "Content-Length is 5000"),
            ("/chunked", "no Content-Length, and more than that arrived"),
        ] {
            let mut f = fetcher(&server.url(path)).with_max_size(4096);
            let e = http_cause(f.fetch(None).await.unwrap_err());
            match &e {
                HttpError::TooLarge {
                    limit, detail: d, ..
                } => {
                    assert_eq!(*limit, 4096);
                    assert_eq!(d, detail);
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        // Exactly at the limit is fine.
        let mut f = fetcher(&server.url("/announced")).with_max_size(5000);
        assert!(fetch_new(&mut f, None).await.bytes == big);
    })
    .await
}

#[tokio::test]
async fn chunked_body_is_reassembled() {
    bounded(async {
        let body = pattern(70_000, 1);
        let parts: Vec<&[u8]> = body.chunks(7_001).collect();
        let raw = chunked(&parts);
        let server = ScriptedHttp::start(move |_| Reply::Raw(raw.clone())).await;
        let got = fetch_new(&mut fetcher(&server.url("/c")), None).await;
        assert!(got.bytes == body, "chunked body differs");
    })
    .await
}

#[tokio::test]
async fn redirects_are_followed_a_few_times() {
    bounded(async {
        let other = ScriptedHttp::start(|req| {
            response(
                "200 OK",
                &[("ETag", "\"o\"")],
                format!("from other {}", req.target).as_bytes(),
            )
        })
        .await;
        let other_base = other.url("");
        let server = ScriptedHttp::start(move |req| {
            let to =
                |status: &str, location: &str| response(status, &[("Location", location)], b"");
            match req.target.as_str() {
                "/a/start" => to("301 Moved Permanently", "next"), // relative: /a/next
                "/a/next" => to("302 Found", "/b/then"),
                "/b/then" => to("307 Temporary Redirect", "../c/final?x=1"),
                "/c/final?x=1" => response("200 OK", &[], b"final"),
                "/away" => to("308 Permanent Redirect", &format!("{other_base}/elsewhere")),
                "/loop" => to("302 Found", "/loop"),
                "/https" => to("302 Found", "https://127.0.0.1/x"),
                "/name" => to("302 Found", "http://config.example/x"),
                "/tftp" => to("302 Found", "tftp://127.0.0.1/x"),
                "/nolocation" => response("302 Found", &[], b""),
                _ => response("404 Not Found", &[], b""),
            }
        })
        .await;

        let got = fetch_new(&mut fetcher(&server.url("/a/start")), None).await;
        assert_eq!(&got.bytes[..], b"final");
        assert_eq!(got.url.to_string(), server.url("/a/start"));
        assert_eq!(got.final_url.to_string(), server.url("/c/final?x=1"));

        let got = fetch_new(&mut fetcher(&server.url("/away")), None).await;
        assert_eq!(&got.bytes[..], b"from other /elsewhere");
        assert_eq!(got.etag.as_deref(), Some("\"o\""));
        assert_eq!(got.final_url.to_string(), other.url("/elsewhere"));

        // Validators go along to the final hop.
        let url = FetchUrl::parse(&server.url("/away")).unwrap();
        let v = Validators {
            etag: Some("\"o\""),
            last_modified: None,
        };
        http::get(&url, v, HttpLimits::default()).await.unwrap();
        let last = other.requests().pop().unwrap();
        assert_eq!(last.header("If-None-Match"), Some("\"o\""));

        let e = http_cause(fetcher(&server.url("/loop")).fetch(None).await.unwrap_err());
        assert!(
            matches!(e, HttpError::TooManyRedirects { max: 5, .. }),
            "{e:?}"
        );
        let loops = server
            .requests()
            .iter()
            .filter(|r| r.target == "/loop")
            .count();
        assert_eq!(loops, 6, "the first request and 5 redirects");

        let mut two = fetcher(&server.url("/a/start")).with_max_redirects(2);
        let e = http_cause(two.fetch(None).await.unwrap_err());
        assert!(
            matches!(e, HttpError::TooManyRedirects { max: 2, .. }),
            "{e:?}"
        );

        let e = http_cause(
            fetcher(&server.url("/https"))
                .fetch(None)
                .await
                .unwrap_err(),
        );
        // HTTP may move to HTTPS; without a pinned key that cannot be trusted.
        assert!(matches!(e, HttpError::NoPin { .. }), "{e:?}");
        let e = http_cause(fetcher(&server.url("/name")).fetch(None).await.unwrap_err());
        assert!(
            e.to_string().contains("names are not resolved at boot"),
            "{e}"
        );
        let e = http_cause(fetcher(&server.url("/tftp")).fetch(None).await.unwrap_err());
        assert!(matches!(e, HttpError::RedirectScheme { .. }), "{e:?}");
        let e = http_cause(
            fetcher(&server.url("/nolocation"))
                .fetch(None)
                .await
                .unwrap_err(),
        );
        assert!(matches!(e, HttpError::BadRedirect { .. }), "{e:?}");
    })
    .await
}

#[tokio::test]
async fn malformed_response_is_a_protocol_error() {
    bounded(async {
        let server =
            ScriptedHttp::start(|_| Reply::Raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec())).await;
        let e = http_cause(fetcher(&server.url("/c")).fetch(None).await.unwrap_err());
        assert!(matches!(e, HttpError::Protocol { .. }), "{e:?}");
    })
    .await
}

/// HTTPS against `openssl s_server` with the server's key pinned: fetched; a key that is
/// not the pinned one and a missing pin are refused, saying why.
#[tokio::test]
async fn https_trusts_exactly_the_pinned_server_key() {
    bounded(async {
        let dir = TempDir::new("https");
        dir.write("lb.toml", b"[node]\nhostname = \"lb-tls\"\n");
        let (_server, addr, pin) = openssl_https(dir.path()).await;
        let url = format!("https://{addr}/lb.toml");

        let mut f = fetcher(&url).with_pinned_keys(vec![pin.parse().unwrap()]);
        let got = fetch_new(&mut f, None).await;
        assert_eq!(&got.bytes[..], b"[node]\nhostname = \"lb-tls\"\n");

        let other = "sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let mut f = fetcher(&url).with_pinned_keys(vec![other.parse().unwrap()]);
        let e = http_cause(f.fetch(None).await.unwrap_err());
        let text = e.to_string();
        assert!(matches!(e, HttpError::Tls { .. }), "{text}");
        assert!(
            text.contains(&format!(
                "the server's key is {pin}, not a pinned one ({other})"
            )),
            "{text}"
        );

        let mut f = fetcher(&url);
        let e = http_cause(f.fetch(None).await.unwrap_err());
        assert!(matches!(e, HttpError::NoPin { .. }), "{e}");
        assert!(e.to_string().contains("lb.tls_pin=sha256//"), "{e}");
    })
    .await;
}
