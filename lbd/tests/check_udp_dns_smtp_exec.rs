//! UDP, DNS, SMTP and exec checkers against real peers inside a test network namespace: tokio
//! UDP servers (echo, silent), socat (binary payloads and expected replies), dnsmasq answering
//! for a local zone, aiosmtpd (python3-aiosmtpd)
//! and scripted SMTP peers (rejecting banner, HELO-only, silent, not SMTP), and real commands
//! through /bin/sh (exit codes, weights, timeouts that kill the whole process group).

mod check_support;

use check_support::*;
use lbd::check::{Failure, Outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

const MS: Duration = Duration::from_millis(1);

#[test]
fn udp_reply_silence_and_port_unreachable() {
    require(&[]);
    let ns = Netns::new("udp");
    ns.run(|| async {
        let got: Log = Arc::default();
        let echo = UdpSocket::bind("127.0.0.1:7001").await.unwrap();
        let g = got.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let (n, peer) = echo.recv_from(&mut buf).await.unwrap();
                g.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into());
                echo.send_to(&buf[..n], peer).await.unwrap();
            }
        });
        let silent = UdpSocket::bind("127.0.0.1:7002").await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let _ = silent.recv_from(&mut buf).await;
            }
        });

        let p = probe(
            "127.0.0.1:7001",
            r#"type = "udp", payload = "ping\n", expect_reply = true"#,
        );
        assert_eq!(p.run().await, Outcome::UP);
        assert_eq!(got.lock().unwrap().as_slice(), ["ping\n"]);
        // A reply is required and none comes.
        let f = fails(
            "127.0.0.1:7002",
            r#"type = "udp", payload = "x", expect_reply = true, timeout = "300ms""#,
        )
        .await;
        assert_eq!(f.to_string(), "timeout after 300ms (waiting for a reply)");
        // No reply required: silence is fine, ICMP port unreachable is not.
        let t = Instant::now();
        assert_eq!(
            probe(
                "127.0.0.1:7002",
                r#"type = "udp", payload = "x", timeout = "400ms""#
            )
            .run()
            .await,
            Outcome::UP
        );
        assert!(
            t.elapsed() >= 200 * MS,
            "waited {:?} for an ICMP error",
            t.elapsed()
        );
        for expect_reply in [false, true] {
            let check = format!(r#"type = "udp", payload = "x", expect_reply = {expect_reply}"#);
            assert_eq!(
                fails("127.0.0.1:7003", &check).await,
                Failure::PortUnreachable
            );
        }
    });
}

/// Binary payloads (`payload_hex`) and the expected start of the reply (`expect_hex`)
/// against socat: an echo (so the reply shows the bytes that were sent) and a peer with a
/// fixed binary answer.
#[test]
fn udp_binary_payload_and_expected_reply_against_socat() {
    require(&["socat"]);
    let ns = Netns::new("udphex");
    let dir = TempDir::new("udphex");
    // The fixed answer comes from a script (socat's address syntax eats backslashes), which
    // reads the request first: closing a socket with unread data resets it, answer and all.
    let answer = dir.write(
        "answer.sh",
        "#!/bin/sh\ncat >/dev/null\nprintf '\\001\\002OK'\n",
    );
    std::fs::set_permissions(&answer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut echo = ns.spawn(&["socat", "UDP4-RECVFROM:7101,bind=127.0.0.1,fork", "PIPE"]);
    let fixed_addr = format!("EXEC:{}", answer.display());
    let mut fixed = ns.spawn(&[
        "socat",
        "UDP4-RECVFROM:7102,bind=127.0.0.1,fork",
        &fixed_addr,
    ]);
    // socat answers once it runs; poll with the check itself (bounded).
    let ready = ns.run(|| async {
        let check = r#"type = "udp", payload_hex = "00", expect_reply = true, timeout = "200ms""#;
        let (a, b) = (
            probe("127.0.0.1:7101", check),
            probe("127.0.0.1:7102", check),
        );
        for _ in 0..50 {
            if a.run().await == Outcome::UP && b.run().await == Outcome::UP {
                return true;
            }
            tokio::time::sleep(50 * MS).await;
        }
        false
    });
    echo.assert_running();
    fixed.assert_running();
    assert!(ready, "socat never answered");
    ns.run(|| async {
        // Bytes that are not text, sent as they are: the echo returns them.
        let p = probe(
            "127.0.0.1:7101",
            r#"type = "udp", payload_hex = "00 ff 10 80", expect_hex = "00ff""#,
        );
        assert_eq!(p.run().await, Outcome::UP);
        let f = fails(
            "127.0.0.1:7101",
            r#"type = "udp", payload_hex = "00ff1080", expect_hex = "ff""#,
        )
        .await;
        assert_eq!(
            f,
            Failure::ReplyMismatch("00ff1080 does not start with ff".into())
        );
        assert_eq!(
            f.to_string(),
            "reply mismatch: 00ff1080 does not start with ff"
        );
        // A text payload, a binary answer.
        assert_eq!(
            probe(
                "127.0.0.1:7102",
                r#"type = "udp", payload = "status", expect_hex = "01 02 4f 4b""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // The reply is shorter than what must start it.
        let f = fails(
            "127.0.0.1:7102",
            r#"type = "udp", payload = "status", expect_hex = "01024f4b00""#,
        )
        .await;
        assert_eq!(
            f.to_string(),
            "reply mismatch: 01024f4b does not start with 01024f4b00"
        );
    });
    echo.kill().unwrap();
    ns.run(|| async {
        assert_eq!(
            fails(
                "127.0.0.1:7101",
                r#"type = "udp", payload_hex = "00", expect_hex = "00""#
            )
            .await,
            Failure::PortUnreachable
        );
    });
}

#[test]
fn dns_answer_nodata_nxdomain_and_down_server() {
    require(&["dnsmasq"]);
    let ns = Netns::new("dns");
    let mut dnsmasq = ns.spawn(&[
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file",
        "--user=root",
        "--port=5353",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--local=/test/",
        "--host-record=www.test,192.0.2.5",
        "--mx-host=test,mail.test,10",
    ]);
    // dnsmasq answers once it runs; poll with the check itself (bounded).
    let ok = ns.run(|| async {
        let p = probe(
            "127.0.0.1:5353",
            r#"type = "dns", query = "www.test", query_type = "A""#,
        );
        for _ in 0..100 {
            if p.run().await == Outcome::UP {
                return true;
            }
            tokio::time::sleep(50 * MS).await;
        }
        false
    });
    dnsmasq.assert_running();
    assert!(ok, "dnsmasq never answered www.test A");
    ns.run(|| async {
        assert_eq!(
            probe(
                "127.0.0.1:5353",
                r#"type = "dns", query = "test", query_type = "MX""#
            )
            .run()
            .await,
            Outcome::UP
        );
        // The name exists, but has no AAAA.
        assert_eq!(
            fails(
                "127.0.0.1:5353",
                r#"type = "dns", query = "www.test", query_type = "AAAA""#
            )
            .await
            .to_string(),
            "rejected: DNS NOERROR without an answer"
        );
        assert_eq!(
            fails("127.0.0.1:5353", r#"type = "dns", query = "nosuch.test""#)
                .await
                .to_string(),
            "rejected: DNS NXDOMAIN"
        );
    });
    dnsmasq.kill().unwrap();
    ns.run(|| async {
        assert_eq!(
            fails("127.0.0.1:5353", r#"type = "dns", query = "www.test""#).await,
            Failure::PortUnreachable
        );
    });
}

/// A scripted SMTP peer: sends `banner`, then answers each command line by the first matching
/// prefix in `answers` (or stays silent), logging the commands.
async fn smtp_peer(
    addr: &str,
    banner: &'static str,
    answers: &'static [(&'static str, &'static str)],
) -> Log {
    let log: Log = Arc::default();
    let l = TcpListener::bind(addr).await.unwrap();
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let log = log2.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                if w.write_all(banner.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line.clone());
                    match answers.iter().find(|(p, _)| line.starts_with(p)) {
                        Some((_, a)) => {
                            let _ = w.write_all(a.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                }
            });
        }
    });
    log
}

#[test]
fn smtp_against_aiosmtpd_and_scripted_peers() {
    require(&["/usr/bin/python3"]);
    let ns = Netns::new("smtp");
    let mut aiosmtpd = ns.spawn(&[
        "/usr/bin/python3",
        "-m",
        "aiosmtpd",
        "--nosetuid",
        "--listen",
        "127.0.0.1:2525",
    ]);
    ns.wait_tcp(
        "127.0.0.1:2525".parse().unwrap(),
        Duration::from_secs(15),
        "aiosmtpd (python3-aiosmtpd)",
    );
    aiosmtpd.assert_running();
    ns.run(|| async {
        assert_eq!(
            probe(
                "127.0.0.1:2525",
                r#"type = "smtp", helo_name = "lb1.example.org""#
            )
            .run()
            .await,
            Outcome::UP
        );

        let rejecting = smtp_peer("127.0.0.1:2526", "554 5.3.2 not accepting mail\r\n", &[]).await;
        let f = fails("127.0.0.1:2526", r#"type = "smtp""#).await;
        assert_eq!(
            f.to_string(),
            "rejected: SMTP banner 554 5.3.2 not accepting mail"
        );
        assert!(rejecting.lock().unwrap().is_empty());

        // An old server: EHLO unknown, HELO fine (and a multi-line banner).
        let old = smtp_peer(
            "127.0.0.1:2527",
            "220-old.example.org\r\n220 ready\r\n",
            &[
                ("EHLO", "502 5.5.2 command not recognized\r\n"),
                ("HELO", "250 old.example.org\r\n"),
                ("QUIT", "221 bye\r\n"),
            ],
        )
        .await;
        assert_eq!(
            probe("127.0.0.1:2527", r#"type = "smtp", helo_name = "lb1""#)
                .run()
                .await,
            Outcome::UP
        );
        assert_eq!(
            old.lock().unwrap().as_slice(),
            ["EHLO lb1", "HELO lb1", "QUIT"]
        );

        // Banner, then silence after EHLO (half-open application).
        smtp_peer("127.0.0.1:2528", "220 ready\r\n", &[]).await;
        let f = fails("127.0.0.1:2528", r#"type = "smtp", timeout = "300ms""#).await;
        assert_eq!(f.to_string(), "timeout after 300ms (waiting for a reply)");
        // No banner at all.
        let silent = TcpListener::bind("127.0.0.1:2529").await.unwrap();
        let f = fails("127.0.0.1:2529", r#"type = "smtp", timeout = "300ms""#).await;
        assert_eq!(
            f.to_string(),
            "timeout after 300ms (waiting for the banner)"
        );
        drop(silent);
        // Not SMTP.
        smtp_peer("127.0.0.1:2530", "SSH-2.0-OpenSSH_9.2\r\n", &[]).await;
        let f = fails("127.0.0.1:2530", r#"type = "smtp""#).await;
        assert!(
            f.to_string()
                .starts_with("protocol error: not an SMTP reply"),
            "{f}"
        );
    });
    aiosmtpd.kill().unwrap();
    ns.run(|| async {
        assert_eq!(
            fails("127.0.0.1:2525", r#"type = "smtp""#).await,
            Failure::Refused
        );
    });
}

/// Whether `pid` runs (a zombie waiting for its reaper does not).
fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[test]
fn exec_exit_codes_weights_environment_and_timeouts() {
    require(&["sh", "sleep"]);
    let dir = TempDir::new("exec");
    let env_out = dir.path().join("env");
    let pidfile = dir.path().join("pid");
    let (env_out, pidfile) = (env_out.display().to_string(), pidfile.display().to_string());
    let ns = Netns::new("exec");
    ns.run(move || async move {
        let sh = |script: &str, extra: &str| {
            format!(r#"type = "exec", command = ["sh", "-c", {script:?}]{extra}"#)
        };
        assert_eq!(probe("10.0.0.5:80", &sh("exit 0", "")).run().await, Outcome::UP);
        assert_eq!(
            fails("10.0.0.5:80", &sh("exit 3", "")).await,
            Failure::Exit(3)
        );
        // keepalived's misc_dynamic: 2..255 is up with weight status - 2, 1 is down.
        let dynamic = ", weight_from_exit = true";
        assert_eq!(
            probe("10.0.0.5:80", &sh("exit 12", dynamic)).run().await,
            Outcome::Up { weight: Some(10) }
        );
        assert_eq!(
            probe("10.0.0.5:80", &sh("exit 0", dynamic)).run().await,
            Outcome::Up { weight: None }
        );
        assert_eq!(
            fails("10.0.0.5:80", &sh("exit 1", dynamic)).await,
            Failure::Exit(1)
        );
        assert_eq!(
            fails("10.0.0.5:80", &sh("kill -9 $$", "")).await,
            Failure::Signal(9)
        );
        // What to check comes in the environment.
        let script = format!(
            "echo \"$LBD_SERVICE $LBD_REAL_IP $LBD_REAL_PORT $LBD_CHECK_IP $LBD_CHECK_PORT\" > {env_out}"
        );
        assert_eq!(
            probe("10.0.0.5:80", &sh(&script, r#", port = 8080, connect_address = "10.0.0.6""#))
                .run()
                .await,
            Outcome::UP
        );
        assert_eq!(
            std::fs::read_to_string(&env_out).unwrap().trim(),
            "s 10.0.0.5 80 10.0.0.6 8080"
        );
        // A command that does not exist.
        let f = fails("10.0.0.5:80", r#"type = "exec", command = ["/nonexistent/check"]"#).await;
        assert!(matches!(&f, Failure::Spawn(m) if m.contains("/nonexistent/check")), "{f}");
        // Too slow: killed at the timeout, with the children it started.
        let script = format!("sleep 30 & echo $! > {pidfile}; wait");
        let t = Instant::now();
        let f = fails("10.0.0.5:80", &sh(&script, r#", timeout = "500ms""#)).await;
        assert_eq!(f.to_string(), "timeout after 500ms (waiting for the command)");
        assert!(t.elapsed() < 2000 * MS);
        let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let mut gone = false;
        for _ in 0..40 {
            if !pid_alive(child) {
                gone = true;
                break;
            }
            tokio::time::sleep(50 * MS).await;
        }
        assert!(gone, "the command's child {child} outlived the timeout");
    });
}
