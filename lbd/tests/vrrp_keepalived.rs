//! Interoperability with Debian's keepalived (VRRP only) in both roles, v2 (with a simple
//! password) and v3 (IPv4 and IPv6); every advertisement lbd sends is decoded by tshark as
//! valid VRRP (right version, good checksum, no malformed or expert fields).
//!
//! Needs root, keepalived and tshark (tools/setup.sh installs both).

mod vrrp_support;

use lbtest::wait;
use std::path::Path;
use std::time::Duration;
use vrrp_support::*;

const SEC: Duration = Duration::from_secs(1);

struct Flavour {
    version: u8,
    lbd_interval: &'static str,
    ka_interval: &'static str,
    /// Master-down interval of the priority-100 side, rounded up.
    master_down: Duration,
    lbd_extra: &'static str,
    ka_extra: &'static str,
    vip: &'static str,
    vip_prefix: &'static str,
    ipv6: bool,
}

const V2: Flavour = Flavour {
    version: 2,
    lbd_interval: "1s",
    ka_interval: "1",
    master_down: Duration::from_millis(3700),
    lbd_extra: "auth_pass = \"secret\"",
    ka_extra: "  authentication {\n    auth_type PASS\n    auth_pass secret\n  }",
    vip: "10.1.0.100",
    vip_prefix: "10.1.0.100/24",
    ipv6: false,
};

const V3: Flavour = Flavour {
    version: 3,
    lbd_interval: "100ms",
    ka_interval: "0.1",
    master_down: Duration::from_millis(370),
    lbd_extra: "",
    ka_extra: "",
    vip: "10.1.0.100",
    vip_prefix: "10.1.0.100/24",
    ipv6: false,
};

const V3_IPV6: Flavour = Flavour {
    version: 3,
    lbd_interval: "100ms",
    ka_interval: "0.1",
    master_down: Duration::from_millis(370),
    lbd_extra: "",
    ka_extra: "",
    vip: "2001:db8::64",
    vip_prefix: "2001:db8::64/64",
    ipv6: true,
};

fn lbd_cfg(f: &Flavour, priority: u8) -> String {
    lbd_instance(
        "VI_1",
        "eth0",
        51,
        priority,
        f.version,
        f.lbd_interval,
        &[f.vip_prefix],
        f.lbd_extra,
    )
}

fn ka_cfg(f: &Flavour, priority: u8) -> String {
    let mut extra = f.ka_extra.to_string();
    if f.ipv6 {
        extra.push_str("\n  native_ipv6");
    }
    keepalived_instance(
        "VI_1",
        "eth0",
        51,
        priority,
        f.version,
        f.ka_interval,
        &[f.vip_prefix],
        &extra,
    )
}

/// Every VRRP packet from `src` in the capture is valid VRRP of version `version`.
fn check_decoded(file: &Path, src: &str, version: u8, ipv6: bool) {
    let filter = if ipv6 {
        format!("vrrp && ipv6.src == {src}")
    } else {
        format!("vrrp && ip.src == {src}")
    };
    let rows = tshark_fields(
        file,
        &filter,
        &[
            "vrrp.version",
            "vrrp.type",
            "vrrp.virt_rtr_id",
            "vrrp.checksum.status",
            "_ws.malformed",
            "_ws.expert",
            "vrrp.prio",
        ],
    );
    assert!(
        !rows.is_empty(),
        "no VRRP packets from {src} in {}",
        file.display()
    );
    for r in &rows {
        assert_eq!(r[0], version.to_string(), "{r:?}");
        assert_eq!(r[1], "1", "not an advertisement: {r:?}");
        assert_eq!(r[2], "51", "{r:?}");
        assert_eq!(r[3], "1", "checksum not good: {r:?}");
        assert!(r[4].is_empty(), "malformed: {r:?}");
        assert!(r[5].is_empty(), "expert info: {r:?}");
    }
    // Nothing lbd sent is flagged at all, by any dissector.
    let flagged = tshark_fields(
        file,
        &format!("({filter}) && (_ws.malformed || _ws.expert)"),
        &["frame.number"],
    );
    assert!(flagged.is_empty(), "flagged frames: {flagged:?}");
}

/// lbd (150) is master, keepalived (100) backup; kill -9 lbd → keepalived takes over;
/// lbd back → it preempts keepalived.
fn lbd_master_keepalived_backup(f: &Flavour) {
    let lab = Lab::new(3, 1);
    let cap = lab.capture(2, "eth0", "cap");
    let mut lbd = lab.lbd(0, "lbd", &lbd_cfg(f, 150));
    assert!(
        wait::until(5 * SEC + f.master_down, POLL, || lab
            .has_addr(0, "eth0", f.vip))
        .is_some(),
        "{}",
        lbd.log()
    );
    let ka = lab.keepalived(1, "ka", &ka_cfg(f, 100));
    assert!(
        ka.wait_log("Entering BACKUP STATE", 10 * SEC),
        "{}",
        ka.log()
    );
    std::thread::sleep(f.master_down * 2);
    assert!(
        !ka.log().contains("Entering MASTER STATE"),
        "keepalived ignored lbd:\n{}",
        ka.log()
    );
    assert!(!lab.has_addr(1, "eth0", f.vip));
    lbd.kill().unwrap();
    assert!(
        wait::until(f.master_down + 3 * SEC, POLL, || lab
            .has_addr(1, "eth0", f.vip))
        .is_some(),
        "keepalived did not take over:\n{}",
        ka.log()
    );
    let lbd2 = lab.lbd(0, "lbd2", &lbd_cfg(f, 150));
    assert!(
        wait::until(f.master_down + 5 * SEC, POLL, || lab
            .has_addr(0, "eth0", f.vip)
            && !lab.has_addr(1, "eth0", f.vip))
        .is_some(),
        "lbd did not preempt keepalived:\nlbd:\n{}\nkeepalived:\n{}",
        lbd2.log(),
        ka.log()
    );
    assert!(
        ka.log().contains("with higher priority 150, ours 100"),
        "{}",
        ka.log()
    );
    assert!(!lbd2.log().contains("dropped packet"), "{}", lbd2.log());
    std::thread::sleep(Duration::from_millis(300));
    let file = cap.stop();
    let src = if f.ipv6 {
        lab.link_local(0, "eth0").to_string()
    } else {
        lab.addr(0, 0).to_string()
    };
    check_decoded(&file, &src, f.version, f.ipv6);
    if f.version == 2 {
        let auth = tshark_fields(
            &file,
            &format!("vrrp && ip.src == {src}"),
            &["vrrp.auth_type", "vrrp.auth_string"],
        );
        assert!(
            auth.iter().all(|r| r[0] == "1" && r[1] == "secret"),
            "{auth:?}"
        );
    }
}

/// keepalived (150) is master, lbd (100) backup and quiet; SIGTERM keepalived → its
/// priority-0 advert → lbd takes over after its skew time.
fn keepalived_master_lbd_backup(f: &Flavour) {
    let lab = Lab::new(3, 1);
    let cap = lab.capture(2, "eth0", "cap");
    let mut ka = lab.keepalived(0, "ka", &ka_cfg(f, 150));
    assert!(
        wait::until(10 * SEC + f.master_down, POLL, || lab
            .has_addr(0, "eth0", f.vip))
        .is_some(),
        "{}",
        ka.log()
    );
    let lbd = lab.lbd(1, "lbd", &lbd_cfg(f, 100));
    assert!(
        lbd.wait_log("VI_1: INIT -> BACKUP", 5 * SEC),
        "{}",
        lbd.log()
    );
    std::thread::sleep(f.master_down * 2);
    assert_eq!(
        lbd.count("-> MASTER"),
        0,
        "lbd did not follow keepalived:\n{}",
        lbd.log()
    );
    assert!(!lbd.log().contains("dropped packet"), "{}", lbd.log());
    assert!(!lab.has_addr(1, "eth0", f.vip));
    ka.signal(Signal::SIGTERM);
    let took = wait::until(f.master_down + 3 * SEC, POLL, || {
        lab.has_addr(1, "eth0", f.vip)
    });
    assert!(took.is_some(), "lbd did not take over:\n{}", lbd.log());
    // After the priority-0 advert: the skew time (0.61 s v2, 61 ms v3), not master down.
    assert!(took.unwrap() < f.master_down, "{took:?}\n{}", lbd.log());
    ka.wait_exit(5 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    let file = cap.stop();
    let src = if f.ipv6 {
        lab.link_local(1, "eth0").to_string()
    } else {
        lab.addr(1, 0).to_string()
    };
    check_decoded(&file, &src, f.version, f.ipv6);
}

#[test]
fn v2_lbd_master_keepalived_backup() {
    lbd_master_keepalived_backup(&V2);
}

#[test]
fn v2_keepalived_master_lbd_backup() {
    keepalived_master_lbd_backup(&V2);
}

#[test]
fn v3_lbd_master_keepalived_backup() {
    lbd_master_keepalived_backup(&V3);
}

#[test]
fn v3_keepalived_master_lbd_backup() {
    keepalived_master_lbd_backup(&V3);
}

#[test]
fn v3_ipv6_lbd_master_keepalived_backup() {
    lbd_master_keepalived_backup(&V3_IPV6);
}

#[test]
fn v3_ipv6_keepalived_master_lbd_backup() {
    keepalived_master_lbd_backup(&V3_IPV6);
}
