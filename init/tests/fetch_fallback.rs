//! The fetcher across several URLs and rounds, with real servers on loopback: fallback to the
//! next URL, every cause listed when all fail, the validator and the gate (the seam for signed
//! configs) counting as failures, URL variables, and the boot-path retry loop.

mod fetch_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fetch_common::*;
use init::fetch::{
    AttemptError, Backoff, BackoffPolicy, Candidate, ConfigGate, FetchError, FetchOutcome,
    FetchUrl, Fetched, Fetcher, HttpError, Jitter, TftpError, TftpSettings, UrlError, Vars,
};
use sha2::{Digest, Sha256};

/// Short TFTP timers, so a dead TFTP URL costs well under a second.
fn quick_tftp() -> TftpSettings {
    TftpSettings {
        timeout: Duration::from_millis(100),
        retries: 2,
        ..TftpSettings::default()
    }
}

fn fetcher(urls: &[String]) -> Fetcher {
    Fetcher::from_templates(urls, Vars::default())
        .unwrap()
        .with_attempt_timeout(Duration::from_secs(3))
        .with_tftp(quick_tftp())
}

fn new_config(outcome: Result<FetchOutcome, FetchError>) -> Fetched {
    match outcome {
        Ok(FetchOutcome::New(f)) => f,
        other => panic!("expected a new config, got {other:?}"),
    }
}

fn failures(e: FetchError) -> Vec<(String, AttemptError)> {
    match e {
        FetchError::AllFailed { failures } => {
            failures.into_iter().map(|f| (f.url, f.error)).collect()
        }
        other => panic!("expected AllFailed, got {other}"),
    }
}

/// A UDP socket that swallows requests: a TFTP server that never answers.
async fn silent_udp() -> (tokio::net::UdpSocket, SocketAddr) {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

#[tokio::test]
async fn first_url_dead_second_works() {
    bounded(async {
        let dir = TempDir::new("fb-second");
        dir.write("n.toml", b"from python");
        dir.write("t.toml", b"from tftpd");
        let (_py, http) = python_http(dir.path()).await;
        let (_tftpd, tftp) = in_tftpd(dir.path()).await;
        let dead_http = format!("http://127.0.0.1:{}/n.toml", free_tcp_port());
        let (_silent, dead_tftp) = silent_udp().await;

        let urls = [dead_http.clone(), format!("http://{http}/n.toml")];
        let got = new_config(fetcher(&urls).fetch(None).await);
        assert_eq!(&got.bytes[..], b"from python");
        assert_eq!(got.url, FetchUrl::parse(&urls[1]).unwrap());

        let urls = [
            format!("tftp://{dead_tftp}/t.toml"),
            format!("tftp://{tftp}/t.toml"),
        ];
        let started = Instant::now();
        let got = new_config(fetcher(&urls).fetch(None).await);
        assert_eq!(&got.bytes[..], b"from tftpd");
        assert_eq!(got.url, FetchUrl::parse(&urls[1]).unwrap());
        // The dead one cost its retransmission budget (3 × 100 ms), not more.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        // Order matters: when both work, the first wins.
        let urls = [
            format!("tftp://{tftp}/t.toml"),
            format!("http://{http}/n.toml"),
        ];
        let got = new_config(fetcher(&urls).fetch(None).await);
        assert_eq!(&got.bytes[..], b"from tftpd");
    })
    .await
}

#[tokio::test]
async fn all_dead_lists_every_url_and_cause() {
    bounded(async {
        let dead_http = format!("http://127.0.0.1:{}/n.toml", free_tcp_port());
        let (_silent, dead_tftp) = silent_udp().await;
        let dead_tftp = format!("tftp://{dead_tftp}/n.toml");
        let urls = [dead_http.clone(), dead_tftp.clone()];
        let e = fetcher(&urls).fetch(None).await.unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("all 2 config URLs failed: [1] "), "{text}");
        assert!(
            text.contains(&dead_http) && text.contains(&dead_tftp),
            "{text}"
        );
        let f = failures(e);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, dead_http);
        assert!(
            matches!(f[0].1, AttemptError::Http(HttpError::Connect { .. })),
            "{:?}",
            f[0].1
        );
        assert_eq!(f[1].0, dead_tftp);
        assert!(
            matches!(f[1].1, AttemptError::Tftp(TftpError::Transfer(_))),
            "{:?}",
            f[1].1
        );
        assert!(
            f[1].1.to_string().contains("reply to the read request"),
            "{}",
            f[1].1
        );
    })
    .await
}

#[tokio::test]
async fn rejected_config_counts_as_a_failure_and_the_next_url_is_tried() {
    bounded(async {
        let dir = TempDir::new("fb-validate");
        dir.write("bad.toml", b"garbage = = 1");
        dir.write("good.toml", b"ok = 1");
        let (_py, http) = python_http(dir.path()).await;
        let (_tftpd, tftp) = in_tftpd(dir.path()).await;
        let validate = |_url: &FetchUrl, body: &[u8]| {
            if body.starts_with(b"ok") {
                Ok(())
            } else {
                Err(format!("line 1: cannot parse {:?}", String::from_utf8_lossy(body)))
            }
        };

        let urls = [format!("http://{http}/bad.toml"), format!("tftp://{tftp}/good.toml")];
        let got = new_config(fetcher(&urls).with_validator(validate).fetch(None).await);
        assert_eq!(&got.bytes[..], b"ok = 1");
        assert_eq!(got.url, FetchUrl::parse(&urls[1]).unwrap());

        let urls = [format!("http://{http}/bad.toml"), format!("tftp://{tftp}/bad.toml")];
        let e = fetcher(&urls).with_validator(validate).fetch(None).await.unwrap_err();
        let f = failures(e);
        assert_eq!(f.len(), 2);
        for (url, cause) in &f {
            assert!(
                matches!(cause, AttemptError::Rejected(m) if m == "line 1: cannot parse \"garbage = = 1\""),
                "{url}: {cause:?}"
            );
            assert!(cause.to_string().starts_with("config rejected: line 1"), "{cause}");
        }
    })
    .await
}

#[tokio::test]
async fn validators_are_only_sent_to_the_url_that_produced_them() {
    bounded(async {
        // Two servers with the same ETag for different bodies: a 304 from the first one would
        // wrongly keep the second one's config.
        let one = ScriptedHttp::start(|req| {
            if req.header("If-None-Match").is_some() {
                response("304 Not Modified", &[("ETag", "\"x\"")], b"")
            } else {
                response("200 OK", &[("ETag", "\"x\"")], b"config one")
            }
        })
        .await;
        let two =
            ScriptedHttp::start(|_| response("200 OK", &[("ETag", "\"x\"")], b"config two")).await;
        let mut only_two = fetcher(&[two.url("/c")]);
        let running = new_config(only_two.fetch(None).await);

        let mut both = fetcher(&[one.url("/c"), two.url("/c")]);
        let got = new_config(both.fetch(Some(&running)).await);
        assert_eq!(&got.bytes[..], b"config one");
        assert_eq!(one.requests()[0].header("If-None-Match"), None);

        // ... and they are sent to it when it is the same URL.
        let again = both.fetch(Some(&got)).await.unwrap();
        assert_eq!(again, FetchOutcome::Unchanged);
        assert_eq!(one.requests()[1].header("If-None-Match"), Some("\"x\""));
    })
    .await
}

#[tokio::test]
async fn url_variables_pick_the_nodes_file() {
    bounded(async {
        let dir = TempDir::new("fb-vars");
        dir.write("nodes/52-54-00-12-34-56/lb-b.toml", b"by mac and name");
        dir.write("pxelinux.cfg/01-52-54-00-12-34-56", b"by pxelinux name");
        dir.write("by-ip/10.9.8.7", b"by ip");
        let (_py, http) = python_http(dir.path()).await;
        let (_tftpd, tftp) = in_tftpd(dir.path()).await;
        let vars = Vars {
            mac: Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            ip: Some("10.9.8.7".parse().unwrap()),
            hostname: Some("lb-b".into()),
            uuid: None,
        };
        let cases = [
            (
                format!("http://{http}/nodes/${{mac_hyphen}}/${{hostname}}.toml"),
                &b"by mac and name"[..],
            ),
            (
                format!("tftp://{tftp}/pxelinux.cfg/01-${{mac_hyphen}}"),
                b"by pxelinux name",
            ),
            (format!("tftp://{tftp}/by-ip/${{ip}}"), b"by ip"),
        ];
        for (template, want) in cases {
            let mut f = Fetcher::from_templates(&[&template], vars.clone()).unwrap();
            let got = new_config(f.fetch(None).await);
            assert_eq!(&got.bytes[..], want, "{template}");
        }

        // A template using a variable this node lacks fails that URL with a clear cause, and the
        // retry loop gives up at once: retrying cannot give the node a UUID.
        let template = format!("http://{http}/by-uuid/${{uuid}}.toml");
        let mut f = Fetcher::from_templates(&[&template], vars.clone()).unwrap();
        let started = Instant::now();
        let e = f.fetch_until_ok(None, None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(e.is_permanent());
        let f = failures(e);
        assert_eq!(f[0].0, template);
        assert!(matches!(
            &f[0].1,
            AttemptError::Url(UrlError::VariableUnset { name: "uuid", .. })
        ));

        // An unknown variable is refused when the template is parsed.
        let e = Fetcher::from_templates(&[format!("http://{http}/${{serial}}")], vars).unwrap_err();
        assert!(e.to_string().contains("unknown variable ${serial}"), "{e}");
    })
    .await
}

#[tokio::test]
async fn retry_loop_waits_for_a_server_that_comes_up_late() {
    bounded(async {
        let port = free_tcp_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let policy = BackoffPolicy {
            min: Duration::from_millis(100),
            max: Duration::from_millis(300),
            jitter: Jitter::Decorrelated,
        };
        let mut f = fetcher(&[format!("http://{addr}/c")]).with_backoff(Backoff::seeded(policy, 1));
        let late = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            ScriptedHttp::start_at(addr, |_| response("200 OK", &[], b"finally")).await
        };
        let started = Instant::now();
        let (outcome, server) = tokio::join!(f.fetch_until_ok(None, None), late);
        let elapsed = started.elapsed();
        assert_eq!(&new_config(outcome).bytes[..], b"finally");
        assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
        // Success comes within one backoff cap (300 ms) of the server's start, plus slack.
        assert!(elapsed < Duration::from_millis(1800), "{elapsed:?}");
        assert_eq!(server.requests().len(), 1);
    })
    .await
}

#[tokio::test]
async fn retry_loop_gives_up_at_the_deadline() {
    bounded(async {
        let dead = format!("http://127.0.0.1:{}/c", free_tcp_port());
        let policy = BackoffPolicy {
            min: Duration::from_millis(50),
            max: Duration::from_millis(200),
            jitter: Jitter::Full,
        };
        let mut f = fetcher(std::slice::from_ref(&dead)).with_backoff(Backoff::seeded(policy, 2));
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let e = f.fetch_until_ok(None, Some(deadline)).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(800) && elapsed < Duration::from_millis(1500),
            "{elapsed:?}"
        );
        match &e {
            FetchError::Deadline { rounds, last } => {
                assert!(
                    *rounds >= 5,
                    "only {rounds} rounds in 1 s with ≤ 200 ms delays"
                );
                assert!(last.to_string().contains(&dead), "{last}");
            }
            other => panic!("{other}"),
        }
    })
    .await
}

/// A gate like the coming signature check: wants `URL.sha256` beside the config holding its
/// hex digest, and refuses a `serial` lower than the running config's (anti-rollback).
struct DigestAndSerialGate {
    checked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn serial(body: &[u8]) -> u64 {
    String::from_utf8_lossy(body)
        .strip_prefix("serial=")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl ConfigGate for DigestAndSerialGate {
    fn companions(&self, served_from: &FetchUrl) -> Result<Vec<FetchUrl>, UrlError> {
        Ok(vec![served_from.with_path_suffix(".sha256")?])
    }

    fn check(&mut self, c: &Candidate<'_>) -> Result<(), String> {
        self.checked.lock().unwrap().push(c.url.to_string());
        let [digest] = c.companions else {
            return Err(format!(
                "expected one companion, got {}",
                c.companions.len()
            ));
        };
        let want: String = Sha256::digest(c.body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest.bytes.trim_ascii() != want.as_bytes() {
            return Err(format!("digest in {} does not match", digest.url));
        }
        if let Some(running) = c.running {
            if serial(c.body) < serial(&running.bytes) {
                return Err(format!(
                    "serial {} is older than the running {}",
                    serial(c.body),
                    serial(&running.bytes)
                ));
            }
        }
        Ok(())
    }
}

fn hex_digest(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn gate_fetches_companions_and_can_refuse() {
    bounded(async {
        let dir = TempDir::new("fb-gate");
        let v5 = b"serial=5\nweight=1\n";
        let v7 = b"serial=7\nweight=3\n";
        dir.write("tampered.toml", v7);
        dir.write("tampered.toml.sha256", hex_digest(v5).as_bytes());
        dir.write("good.toml", v7);
        dir.write("good.toml.sha256", hex_digest(v7).as_bytes());
        dir.write("old.toml", v5);
        dir.write("old.toml.sha256", hex_digest(v5).as_bytes());
        dir.write("unsigned.toml", v7);
        let (_py, http) = python_http(dir.path()).await;
        let (_tftpd, tftp) = in_tftpd(dir.path()).await;
        let checked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = || DigestAndSerialGate {
            checked: checked.clone(),
        };

        // Tampered over HTTP → refused; the good one over TFTP (companion over TFTP too) wins.
        let urls = [
            format!("http://{http}/tampered.toml"),
            format!("http://{http}/unsigned.toml"),
            format!("tftp://{tftp}/good.toml"),
        ];
        let mut f = fetcher(&urls).with_gate(gate());
        let running = new_config(f.fetch(None).await);
        assert_eq!(&running.bytes[..], v7);
        assert_eq!(running.url, FetchUrl::parse(&urls[2]).unwrap());
        // The gate saw the tampered and the good config; the unsigned one failed on its missing
        // companion before reaching it.
        assert_eq!(checked.lock().unwrap().len(), 2);

        // Rollback: an older (validly digested) config is refused when v7 runs.
        let urls = [format!("http://{http}/old.toml")];
        let mut f = fetcher(&urls).with_gate(gate());
        let e = f.fetch(Some(&running)).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("config refused: serial 5 is older than the running 7"),
            "{text}"
        );
        // Without a running config it is accepted.
        assert_eq!(&new_config(f.fetch(None).await).bytes[..], v5);

        // The causes say which check failed.
        let urls = [
            format!("http://{http}/tampered.toml"),
            format!("http://{http}/unsigned.toml"),
        ];
        let f = failures(
            fetcher(&urls)
                .with_gate(gate())
                .fetch(None)
                .await
                .unwrap_err(),
        );
        assert!(
            f[0].1
                .to_string()
                .contains("tampered.toml.sha256 does not match"),
            "{}",
            f[0].1
        );
        match &f[1].1 {
            AttemptError::Companion { url, cause } => {
                assert!(url.to_string().ends_with("/unsigned.toml.sha256"));
                assert!(cause.to_string().contains("404"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await
}
