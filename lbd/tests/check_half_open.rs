//! Half-open TCP checks ([`lbd::check::half_open::HalfOpen`], `half_open = true`) against real
//! listeners in a test network namespace: every outcome (up over IPv4 and IPv6, refused,
//! timeout, no route, an unanswered ARP reported by ICMP, a chosen source address, one that is
//! not this box's), many checks in flight at
//! once with each answer matched to its own check, and what the wire and the servers see
//! (tshark and ss as independent witnesses): SYN, SYN-ACK and the kernel's own RST per check,
//! nothing accepted, nothing left half-open. Then the same through the check engine as lbd
//! runs it: a real that stops listening goes down with "connection refused" and comes back;
//! without CAP_NET_RAW the checks run as connects.

#[allow(unused_imports)]
mod check_support;

use check_support::*;
use lbd::check::engine::START_TICK;
use lbd::check::half_open::{HalfOpen, NotStarted};
use lbd::check::subsystem::CheckSubsystem;
use lbd::check::{CheckState, Failure, HealthReport, Outcome};
use lbd::daemon::Subsystem;
use lbtest::ChildGuard;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// Starts checks of `targets` together (token = index), sends them in one flush, and drives
/// them to their ends: outcome per token.
async fn check_all(
    h: &mut HalfOpen<usize>,
    targets: &[(&str, Option<&str>)],
    timeout: Duration,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let now = Instant::now();
    for (i, (target, source)) in targets.iter().enumerate() {
        let target: SocketAddr = target.parse().unwrap();
        let source: Option<IpAddr> = source.map(|s| s.parse().unwrap());
        match h.start(target, source, timeout, i, now) {
            Ok(()) => {}
            Err(NotStarted::Finished(f)) => out.push(f),
            Err(NotStarted::Unavailable(_, e)) => panic!("no raw socket: {e}"),
        }
    }
    h.flush(&mut out);
    // As the engine does: read what has come back once per tick, and judge deadlines.
    while out.len() < targets.len() {
        assert!(
            h.next_deadline().is_some(),
            "checks in flight have deadlines"
        );
        tokio::time::sleep(START_TICK).await;
        h.poll(&mut out);
        h.expire(Instant::now(), &mut out);
    }
    assert_eq!(h.in_flight(), 0);
    let mut outcomes = vec![None; targets.len()];
    for f in out {
        assert!(
            outcomes[f.token].is_none(),
            "two results for check {}",
            f.token
        );
        outcomes[f.token] = Some(f.outcome);
    }
    outcomes.into_iter().map(Option::unwrap).collect()
}

async fn check(
    h: &mut HalfOpen<usize>,
    target: &str,
    source: Option<&str>,
    timeout: Duration,
) -> Outcome {
    check_all(h, &[(target, source)], timeout).await.remove(0)
}

#[test]
fn half_open_checks_every_outcome_and_answers_matched_to_their_checks() {
    require(&["ss"]);
    let ns = Netns::new("halfopen");
    ns.add_blackhole("bh0", "10.99.0.1/24", "10.99.0.2");
    // Give up on unanswered ARP after two tries 100 ms apart.
    ns.exec(&["sysctl", "-qw", "net.ipv4.neigh.bh0.retrans_time_ms=100"]);
    ns.exec(&["sysctl", "-qw", "net.ipv4.neigh.bh0.mcast_solicit=2"]);
    ns.ip(&["-6", "route", "add", "unreachable", "2001:db8:99::/64"]);
    let listeners = ns.run(|| async {
        // Never accepted: a half-open check must not leave anything in the accept queue.
        // All of 127/8 is this box's: one listener answers for many addresses.
        let l = TcpListener::bind("0.0.0.0:8080").await.unwrap();
        let l6 = TcpListener::bind("[::1]:8080").await.unwrap();
        let mut h = HalfOpen::<usize>::new();

        assert_eq!(
            check(&mut h, "127.0.0.1:8080", None, SECOND).await,
            Outcome::UP
        );
        assert_eq!(check(&mut h, "[::1]:8080", None, SECOND).await, Outcome::UP);
        assert_eq!(
            down(check(&mut h, "127.0.0.1:8081", None, SECOND).await),
            Failure::Refused
        );
        assert_eq!(
            down(check(&mut h, "[::1]:8081", None, SECOND).await),
            Failure::Refused
        );
        let t = Instant::now();
        assert_eq!(
            down(check(&mut h, "10.99.0.2:80", None, 300 * MS).await),
            Failure::Timeout {
                after: 300 * MS,
                during: "connecting"
            }
        );
        assert!(t.elapsed() >= 300 * MS, "{:?}", t.elapsed());
        assert_eq!(
            down(check(&mut h, "203.0.113.7:80", None, SECOND).await),
            Failure::Unreachable("network unreachable".into())
        );
        // No neighbour answers for 10.99.0.3: the kernel's ICMP host unreachable comes back
        // on the raw socket's error queue, quoting the SYN, and ends the check before its
        // deadline (not at it, where the queue is read again before a timeout is declared).
        let t = Instant::now();
        let deadline = 20 * SECOND;
        assert_eq!(
            down(check(&mut h, "10.99.0.3:80", None, deadline).await),
            Failure::Unreachable("host unreachable".into())
        );
        assert!(t.elapsed() < deadline, "{:?}", t.elapsed());
        assert!(matches!(
            down(check(&mut h, "[2001:db8:99::7]:80", None, SECOND).await),
            Failure::Unreachable(_)
        ));
        assert_eq!(
            check(&mut h, "127.0.0.1:8080", Some("127.0.0.2"), SECOND).await,
            Outcome::UP
        );
        assert_eq!(
            check(&mut h, "[::1]:8080", Some("::1"), SECOND).await,
            Outcome::UP
        );
        assert!(matches!(
            down(check(&mut h, "127.0.0.1:8080", Some("192.0.2.77"), SECOND).await),
            Failure::Bind(_)
        ));

        // Many at once, listening and closed ports and a silent address interleaved, the same
        // target several times: each gets its own answer.
        let mut targets = Vec::new();
        for i in 0..300 {
            targets.push(match i % 5 {
                0 | 1 => ("127.0.0.1:8080", None),
                2 => ("127.0.0.1:8081", None),
                3 => ("[::1]:8080", None),
                _ => ("127.0.0.1:8080", Some("127.0.0.3")),
            });
        }
        // More checks of one target at once than there are source ports: the extra ones are
        // refused at start with a reason, not sent on a four-tuple already in flight.
        let outcomes = check_all(&mut h, &targets, SECOND).await;
        let mut tally: HashMap<String, usize> = HashMap::new();
        for (i, o) in outcomes.iter().enumerate() {
            let key = match o {
                Outcome::Up { .. } => format!("{} up", targets[i].0),
                Outcome::Down(Failure::Io(e)) if e.contains("already in flight") => {
                    format!("{} busy", targets[i].0)
                }
                Outcome::Down(f) => format!("{} {f}", targets[i].0),
            };
            *tally.entry(key).or_default() += 1;
        }
        // Ports are held 8 at a time as one target needs more, up to 64 per source: 120
        // checks of 127.0.0.1:8080 from the default source get 64 ports; 60 from 127.0.0.3
        // and those of the other targets all get one.
        assert_eq!(
            tally,
            HashMap::from([
                ("127.0.0.1:8080 up".to_string(), 64 + 60),
                ("127.0.0.1:8080 busy".to_string(), 120 - 64),
                ("127.0.0.1:8081 up".to_string(), 0),
                ("127.0.0.1:8081 connection refused".to_string(), 60),
                ("[::1]:8080 up".to_string(), 60),
            ])
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect::<HashMap<_, _>>(),
        );

        // Distinct targets at once: every one answered.
        let addrs: Vec<String> = (1..=200)
            .map(|i| format!("127.0.{}.{}:8080", i / 100, 1 + i % 100))
            .collect();
        let many: Vec<(&str, Option<&str>)> = addrs.iter().map(|a| (a.as_str(), None)).collect();
        let outcomes = check_all(&mut h, &many, SECOND).await;
        assert!(outcomes.iter().all(|o| *o == Outcome::UP), "{outcomes:?}");

        // Held now: 64 ports each for IPv4 and IPv6 from the default source and for
        // 127.0.0.3, 8 each for 127.0.0.2 and ::1. A reload that leaves no checks from the
        // 127.0.0.x sources lets their ports go; the rest still work, and a source that comes
        // back holds ports again.
        assert_eq!(h.held_ports(), 64 + 64 + 64 + 8 + 8);
        let six: IpAddr = "::1".parse().unwrap();
        h.retain_sources(|_, source| source.is_none() || source == Some(six));
        assert_eq!(h.held_ports(), 64 + 64 + 8);
        assert_eq!(
            check(&mut h, "127.0.0.1:8080", None, SECOND).await,
            Outcome::UP
        );
        assert_eq!(
            check(&mut h, "[::1]:8080", Some("::1"), SECOND).await,
            Outcome::UP
        );
        assert_eq!(
            check(&mut h, "127.0.0.1:8080", Some("127.0.0.3"), SECOND).await,
            Outcome::UP
        );
        assert_eq!(h.held_ports(), 64 + 64 + 8 + 8);
        (l, l6)
    });
    // Nothing was accepted or left half-open on the servers' side: every SYN-ACK was reset.
    std::thread::sleep(100 * MS);
    let listen = ns.exec(&["ss", "-Htln", "sport", "=", ":8080"]);
    for line in listen.lines() {
        let recv_q: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(recv_q, 0, "connections waiting to be accepted: {line}");
    }
    let states = ns.exec(&["ss", "-Htan", "state", "syn-recv", "state", "established"]);
    assert_eq!(
        states.trim(),
        "",
        "half-open or established connections left"
    );
    drop(listeners);
}

/// An ICMP error for one check leaves an error pending on the shared raw socket until it is
/// read; a SYN sent for another check meanwhile must not be failed with it.
#[test]
fn an_icmp_error_for_one_check_never_fails_another() {
    require(&[]);
    let ns = Netns::new("halficmp");
    ns.add_blackhole("bh0", "10.99.0.1/24", "10.99.0.2");
    ns.exec(&["sysctl", "-qw", "net.ipv4.neigh.bh0.retrans_time_ms=100"]);
    ns.exec(&["sysctl", "-qw", "net.ipv4.neigh.bh0.mcast_solicit=2"]);
    ns.run(|| async {
        let _l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
        let mut h = HalfOpen::<usize>::new();
        for round in 0..3 {
            let mut out = Vec::new();
            let now = Instant::now();
            let unanswered = "10.99.0.3:80".parse().unwrap();
            assert!(h.start(unanswered, None, 20 * SECOND, 0, now).is_ok());
            h.flush(&mut out);
            // Not read for a while: the ICMP error (ARP gives up after 200 ms) waits.
            tokio::time::sleep(SECOND).await;
            let healthy = "127.0.0.1:8080".parse().unwrap();
            assert!(h.start(healthy, None, SECOND, 1, Instant::now()).is_ok());
            h.flush(&mut out);
            while out.len() < 2 {
                tokio::time::sleep(START_TICK).await;
                h.poll(&mut out);
                h.expire(Instant::now(), &mut out);
            }
            out.sort_by_key(|f| f.token);
            assert_eq!(
                down(out[0].outcome.clone()),
                Failure::Unreachable("host unreachable".into()),
                "round {round}"
            );
            assert_eq!(out[1].outcome, Outcome::UP, "round {round}");
        }
    });
}

#[test]
fn on_the_wire_a_syn_the_answer_and_the_kernels_rst() {
    require(&["tshark", "ss"]);
    let ns = Netns::new("halfwire");
    let dir = std::env::temp_dir().join(format!("lbd-halfwire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lo.pcapng");
    let mut tshark = ChildGuard::spawn_logged(
        ns.command("tshark")
            .args(["-n", "-i", "lo", "-w"])
            .arg(&file)
            .args(["-f", "tcp port 8080 or tcp port 8081"]),
        &dir.join("tshark.log"),
    )
    .unwrap();
    assert!(
        tshark.wait_log("Capturing on", 20 * SECOND),
        "tshark: {}",
        tshark.log()
    );
    std::thread::sleep(500 * MS);
    ns.run(|| async {
        let _l = TcpListener::bind("127.0.0.1:8080").await.unwrap();
        let mut h = HalfOpen::<usize>::new();
        for _ in 0..5 {
            assert_eq!(
                check(&mut h, "127.0.0.1:8080", None, SECOND).await,
                Outcome::UP
            );
            assert_eq!(
                down(check(&mut h, "127.0.0.1:8081", None, SECOND).await),
                Failure::Refused
            );
        }
        tokio::time::sleep(200 * MS).await;
    });
    tshark.signal(nix::sys::signal::Signal::SIGINT);
    assert!(
        tshark.wait_exit(10 * SECOND).is_some(),
        "tshark did not stop"
    );
    let out = lbtest::programs::command("tshark")
        .args(["-n", "-r"])
        .arg(&file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.seq_raw",
            "-e",
            "tcp.ack_raw",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    let packets: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    let flags = |p: &Vec<&str>| u32::from_str_radix(p[2].trim_start_matches("0x"), 16).unwrap();
    // Per check to 8080: SYN, SYN-ACK, RST from the checker's port; to 8081: SYN, RST-ACK.
    let summary: Vec<String> = packets
        .iter()
        .map(|p| {
            let dir = if p[1] == "8080" || p[1] == "8081" {
                ">"
            } else {
                "<"
            };
            format!("{dir}{:03x}", flags(p))
        })
        .collect();
    let expected: Vec<&str> = (0..5)
        .flat_map(|_| [">002", "<012", ">004", ">002", "<014"])
        .collect();
    assert_eq!(summary, expected, "{text}");
    for p in &packets {
        let f = flags(p);
        if f == 0x012 || f == 0x014 {
            // The answer acknowledges the SYN before it; the RST carries that number.
            continue;
        }
        assert!(f == 0x002 || f == 0x004, "unexpected segment {p:?}");
    }
    // The kernel's RST uses the SYN-ACK's acknowledgement as its sequence number.
    for w in packets.windows(2) {
        if flags(&w[0]) == 0x012 {
            assert_eq!(flags(&w[1]), 0x004);
            assert_eq!(w[1][3], w[0][4], "RST seq = SYN-ACK ack: {w:?}");
        }
    }
}

#[test]
fn engine_runs_half_open_checks_down_on_refused_and_back() {
    require(&[]);
    let ns = Netns::new("halfeng");
    ns.run(|| async {
        let cfg = config(
            r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "tcp", half_open = true, interval = "100ms", timeout = "80ms", jitter = "10ms", rise = 2, fall = 2 }

[[service.web.real]]
address = "127.0.0.1:8300"

[vrrp.instance.V6]
interface = "eth0"
vrid = 2
priority = 100
vips = ["2001:db8::10/64"]

[service.web6]
vip = "[2001:db8::10]:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "tcp", half_open = true, interval = "100ms", timeout = "80ms", jitter = "10ms", rise = 2, fall = 2 }

[[service.web6.real]]
address = "[::1]:8300"
"#,
        );
        let l4 = TcpListener::bind("127.0.0.1:8300").await.unwrap();
        let _l6 = TcpListener::bind("[::1]:8300").await.unwrap();
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &cfg);
        let v4 = "127.0.0.1:8300";
        let v6 = "[::1]:8300";
        wait_state(&mut rx, &[("web", v4, CheckState::Up), ("web6", v6, CheckState::Up)]).await;
        drop(l4);
        let r = wait_state(&mut rx, &[("web", v4, CheckState::Down)]).await;
        let real = |svc: &str, a: &str| r.real(svc, &a.parse().unwrap()).unwrap().clone();
        assert_eq!(real("web", v4).reason, Some(Failure::Refused));
        assert_eq!(real("web6", v6).state, CheckState::Up);
        let _l4 = TcpListener::bind(v4).await.unwrap();
        wait_state(&mut rx, &[("web", v4, CheckState::Up)]).await;
        checks.stop();
    });
}

/// Waits (at most 5 s) until each listed (service, real) is in its state.
async fn wait_state(
    rx: &mut tokio::sync::watch::Receiver<Arc<HealthReport>>,
    want: &[(&str, &str, CheckState)],
) -> Arc<HealthReport> {
    let reached = lbtest::wait::watch_until(rx, 5 * SECOND, |r| {
        want.iter().all(|(svc, a, st)| {
            r.real(svc, &a.parse().unwrap())
                .is_some_and(|s| s.state == *st)
        })
    });
    reached
        .await
        .unwrap_or_else(|r| panic!("{want:?} not reached; last report {r:#?}"))
}

/// Takes CAP_NET_RAW out of this thread's effective capabilities (threads created from here
/// on start without it too).
fn drop_net_raw() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words, for this thread (pid 0).
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_RAW);
        assert_eq!(libc::syscall(libc::SYS_capset, &header, data.as_ptr()), 0);
    }
}

#[test]
fn without_cap_net_raw_half_open_checks_run_as_connects() {
    require(&[]);
    let ns = Netns::new("halfnocap");
    ns.run(|| async {
        // This thread is the test's own (Netns::run starts one): the engine thread started
        // below inherits the reduced capabilities.
        drop_net_raw();
        assert!(
            HalfOpen::<usize>::new()
                .start(
                    "127.0.0.1:1".parse().unwrap(),
                    None,
                    SECOND,
                    0,
                    Instant::now()
                )
                .is_err_and(|e| matches!(e, NotStarted::Unavailable(..))),
            "a raw socket opened without CAP_NET_RAW"
        );
        let cfg = config(
            r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "tcp", half_open = true, interval = "100ms", timeout = "80ms", rise = 1, fall = 1 }

[[service.web.real]]
address = "127.0.0.1:8400"
"#,
        );
        let l = TcpListener::bind("127.0.0.1:8400").await.unwrap();
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &cfg);
        // The checks connect: the listener gets connections to accept.
        let accepted = tokio::time::timeout(5 * SECOND, l.accept()).await;
        assert!(accepted.is_ok(), "no connect check reached the listener");
        wait_state(&mut rx, &[("web", "127.0.0.1:8400", CheckState::Up)]).await;
        drop(l);
        let r = wait_state(&mut rx, &[("web", "127.0.0.1:8400", CheckState::Down)]).await;
        let real = r.real("web", &"127.0.0.1:8400".parse().unwrap()).unwrap();
        assert_eq!(real.reason, Some(Failure::Refused));
        checks.stop();
    });
}
