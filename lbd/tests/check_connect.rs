//! The check engine's fast path for TCP connect checks ([`lbd::check::connect::Connector`]):
//! reused sockets in one epoll instance read once per tick, against real listeners in a test network namespace.
//! Every outcome a connect check can have (up over IPv4 and IPv6, refused, timeout, no route,
//! a chosen source address, a source that cannot be bound), the same outcome again and again
//! on recycled sockets with no earlier run's result leaking into a later one, and what the
//! servers see: a completed handshake ended by an RST, with nothing left in TIME_WAIT.

#[allow(unused_imports)]
mod check_support;

use check_support::*;
use lbd::check::connect::Connector;
use lbd::check::{Failure, Outcome};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const MS: Duration = Duration::from_millis(1);

/// One run through the connector, as the engine drives it.
async fn check(
    c: &mut Connector<u32>,
    target: &str,
    source: Option<&str>,
    timeout: Duration,
) -> Outcome {
    let target: SocketAddr = target.parse().unwrap();
    let source: Option<IpAddr> = source.map(|s| s.parse().unwrap());
    drive(c, target, source, timeout, None, None).await
}

#[test]
fn connect_checks_on_reused_sockets_every_outcome_and_an_rst_at_the_end() {
    require(&["ss"]);
    let ns = Netns::new("connect");
    // 10.99.0.0/24 sits on one end of a veth pair: SYNs to 10.99.0.2 vanish.
    ns.add_blackhole("bh0", "10.99.0.1/24", "10.99.0.2");
    ns.run(|| async {
        // The server reads each accepted connection to its end: an RST shows as a reset, a
        // close as end of file.
        let ends: Log = Arc::default();
        let l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
        let l6 = TcpListener::bind("[::1]:8080").await.unwrap();
        let e = ends.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, peer) = l.accept().await.unwrap();
                let e = e.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    let end = match s.read(&mut buf).await {
                        Ok(0) => "eof".to_string(),
                        Ok(_) => "data".to_string(),
                        Err(err) => format!("{:?}", err.kind()),
                    };
                    e.lock().unwrap().push(format!("{} {end}", peer.ip()));
                });
            }
        });
        tokio::spawn(async move {
            loop {
                drop(l6.accept().await.unwrap());
            }
        });
        let mut c = Connector::<u32>::new().unwrap();
        let second = Duration::from_secs(1);

        assert_eq!(
            check(&mut c, "127.0.0.1:8080", None, second).await,
            Outcome::UP
        );
        assert_eq!(check(&mut c, "[::1]:8080", None, second).await, Outcome::UP);
        assert_eq!(
            down(check(&mut c, "127.0.0.1:8081", None, second).await),
            Failure::Refused
        );
        let t = Instant::now();
        let f = down(check(&mut c, "10.99.0.2:80", None, 300 * MS).await);
        assert_eq!(
            f,
            Failure::Timeout {
                after: 300 * MS,
                during: "connecting"
            }
        );
        assert!(
            t.elapsed() >= 300 * MS && t.elapsed() < 1500 * MS,
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            down(check(&mut c, "203.0.113.7:80", None, second).await),
            Failure::Unreachable("network unreachable".into())
        );
        // From a chosen source address (the whole of 127/8 is local), and from one that is
        // not an address of this box.
        assert_eq!(
            check(&mut c, "127.0.0.1:8080", Some("127.0.0.2"), second).await,
            Outcome::UP
        );
        assert!(matches!(
            down(check(&mut c, "127.0.0.1:8080", Some("192.0.2.77"), second).await),
            Failure::Bind(_)
        ));

        // One socket per family and source serves run after run, and each run gets its own
        // result: up, refused and timed-out runs interleaved on the same sockets.
        for round in 0..50 {
            assert_eq!(
                check(&mut c, "127.0.0.1:8080", None, second).await,
                Outcome::UP,
                "round {round}"
            );
            assert_eq!(
                down(check(&mut c, "127.0.0.1:8081", None, second).await),
                Failure::Refused,
                "round {round}"
            );
            if round % 10 == 0 {
                assert!(matches!(
                    down(check(&mut c, "10.99.0.2:80", None, 20 * MS).await),
                    Failure::Timeout { .. }
                ));
            }
            assert_eq!(
                check(&mut c, "127.0.0.1:8080", Some("127.0.0.2"), second).await,
                Outcome::UP,
                "round {round}"
            );
        }
        assert_eq!(c.in_flight(), 0);
        assert!(c.idle() <= 3, "{} idle sockets for three pools", c.idle());

        // The server saw every handshake complete and end with an RST.
        tokio::time::sleep(50 * MS).await;
        let ends = ends.lock().unwrap().clone();
        assert_eq!(ends.len(), 1 + 1 + 50 + 50, "{ends:?}");
        assert!(
            ends.iter().all(|e| e.ends_with(" ConnectionReset")),
            "{ends:?}"
        );
        assert_eq!(
            ends.iter().filter(|e| e.starts_with("127.0.0.2 ")).count(),
            51,
            "{ends:?}"
        );
        let idle = c.idle();
        assert!(idle >= 2, "{idle} idle sockets after runs from two sources");
        // A reload that leaves no connect checks closes the idle sockets.
        c.trim_idle(0);
        assert_eq!(c.idle(), 0);
        // ... and the connector still works afterwards, on new sockets.
        assert_eq!(
            check(&mut c, "127.0.0.1:8080", None, second).await,
            Outcome::UP
        );
    });
    let tw = ns.exec(&["ss", "-Htan", "state", "time-wait"]);
    assert_eq!(tw.trim(), "", "nothing in TIME_WAIT");
}
