//! Bad packets are dropped, counted and never acted on. Each one below is a priority-0
//! advertisement that would make the backup take over after its skew time (0.61 s) if it
//! were believed; the test then sends a good one to show that one does.
//!
//! Needs root.

mod vrrp_support;

use lbd::vrrp::packet::{internet_checksum, Advert, Auth, Version, MULTICAST_V4};
use lbtest::wait;
use std::net::IpAddr;
use std::time::Duration;
use vrrp_support::*;

const SEC: Duration = Duration::from_secs(1);

fn advert(version: Version, vrid: u8, priority: u8, interval: Duration, auth: Auth) -> Advert {
    Advert {
        version,
        vrid,
        priority,
        interval,
        addrs: vec!["10.1.0.100".parse().unwrap()],
        auth,
    }
}

/// Recomputes a v2 checksum after a field was changed.
fn fix(mut b: Vec<u8>) -> Vec<u8> {
    b[6] = 0;
    b[7] = 0;
    let s = internet_checksum(&b);
    b[6..8].copy_from_slice(&s.to_be_bytes());
    b
}

#[test]
fn bad_packets_are_dropped_counted_and_never_acted_on() {
    let lab = Lab::new(2, 1);
    let cfg = lbd_instance(
        "V2",
        "eth0",
        51,
        100,
        2,
        "1s",
        &["10.1.0.100/24"],
        "auth_pass = \"secret\"",
    );
    let mut b = lab.lbd_env(1, "b", &cfg, &[("LBD_LOG", "info,lbd::vrrp=debug")]);
    assert!(b.wait_log("V2: INIT -> BACKUP", 5 * SEC), "{}", b.log());
    let sock = lab.raw_socket(0, "eth0", false);
    let src: IpAddr = "10.1.0.1".parse().unwrap();
    let dst = IpAddr::V4(MULTICAST_V4);
    let pass = || Auth::simple("secret");
    let good = |prio: u8| {
        advert(Version::V2, 51, prio, SEC, pass())
            .emit(src, dst)
            .unwrap()
    };
    // b follows us as master.
    sock.send(src, dst, &good(200)).unwrap();
    let zero = good(0);
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut v = zero.clone();
    v[0] = 0x41;
    bad.push(("version", fix(v)));
    let v3 = advert(Version::V3, 51, 0, SEC, Auth::None)
        .emit(src, dst)
        .unwrap();
    bad.push(("version", v3));
    let mut v = zero.clone();
    v[1] = 99;
    bad.push(("vrid", fix(v)));
    bad.push(("length", zero[..zero.len() - 3].to_vec()));
    let mut v = zero.clone();
    v[7] ^= 0x5a;
    bad.push(("checksum", v));
    bad.push((
        "auth",
        advert(Version::V2, 51, 0, SEC, Auth::simple("guess"))
            .emit(src, dst)
            .unwrap(),
    ));
    bad.push((
        "auth",
        advert(Version::V2, 51, 0, SEC, Auth::None)
            .emit(src, dst)
            .unwrap(),
    ));
    let mut v = zero.clone();
    v[3] = 2;
    bad.push(("address_count", fix(v)));
    bad.push((
        "interval",
        advert(Version::V2, 51, 0, 2 * SEC, pass())
            .emit(src, dst)
            .unwrap(),
    ));
    let mut other = advert(Version::V2, 51, 0, SEC, pass());
    other.addrs = vec!["10.1.0.7".parse().unwrap()];
    bad.push(("addresses", other.emit(src, dst).unwrap()));
    for (_, p) in &bad {
        sock.send(src, dst, p).unwrap();
    }
    // And a good priority-0 advert, but with TTL 64 (forwarded from off-link).
    sock.set_ttl(64).unwrap();
    sock.send(src, dst, &zero).unwrap();
    sock.set_ttl(255).unwrap();
    // Longer than the skew time, shorter than the master-down interval (3.61 s).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !lab.has_addr(1, "eth0", "10.1.0.100"),
        "b acted on a bad packet:\n{}",
        b.log()
    );
    assert_eq!(b.count("-> MASTER"), 0, "{}", b.log());
    let log = b.log();
    for reason in [
        "ttl",
        "version",
        "vrid",
        "length",
        "checksum",
        "auth",
        "address_count",
        "interval",
        "addresses",
    ] {
        assert!(
            log.contains(&format!("on eth0: {reason}: "))
                || log.contains(&format!("for V2: {reason}: ")),
            "no drop logged for {reason}:\n{log}"
        );
    }
    assert!(
        log.contains("peer 10.1.0.1 advertises interval 2s (ours 1s), dropped (RFC 3768)"),
        "{log}"
    );
    // The good priority-0 advert is believed: b takes over after its skew time.
    sock.send(src, dst, &good(200)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    sock.send(src, dst, &zero).unwrap();
    let took = wait::until(3 * SEC, POLL, || lab.has_addr(1, "eth0", "10.1.0.100"));
    assert!(
        took.is_some(),
        "b ignored a good priority-0 advert:\n{}",
        b.log()
    );
    assert!(took.unwrap() < Duration::from_millis(1500), "{took:?}");
    // Counted exactly: the summary at shutdown.
    b.signal(Signal::SIGTERM);
    b.wait_exit(5 * SEC).expect("b did not stop");
    let log = b.log();
    assert!(
        log.contains("vrrp: dropped packets by reason: ttl=1 version=2 length=1 address_count=1 checksum=1 vrid=1 auth=2 interval=1 addresses=1"),
        "{log}"
    );
}
