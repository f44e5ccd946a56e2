//! Two real lbd processes in two network namespaces on one bridge: election, failover on
//! kill -9 and on SIGTERM, preemption as configured, sync groups, interface faults.
//!
//! Needs root. Times are checked only loosely (to tell "after skew time" from "after a whole
//! master-down interval"); the benchmark binary measures them.

mod vrrp_support;

use lbtest::wait;
use std::time::Duration;
use vrrp_support::*;

const VIP: &str = "10.1.0.100";
const SEC: Duration = Duration::from_secs(1);

fn pair_config(priority: u8, interval: &str, extra: &str) -> String {
    lbd_instance(
        "VI_1",
        "eth0",
        51,
        priority,
        3,
        interval,
        &["10.1.0.100/24"],
        extra,
    )
}

/// Starts `a` (priority 150) and waits until it holds the VIP, then `b` (100).
fn elect(lab: &Lab, interval: &str, extra_a: &str, extra_b: &str) -> (Daemon, Daemon) {
    let a = lab.lbd(0, "a", &pair_config(150, interval, extra_a));
    assert!(
        wait::until(10 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)).is_some(),
        "a never became master:\n{}",
        a.log()
    );
    let b = lab.lbd(1, "b", &pair_config(100, interval, extra_b));
    assert!(
        b.wait_log("VI_1: INIT -> BACKUP", 10 * SEC),
        "b did not start as backup:\n{}",
        b.log()
    );
    (a, b)
}

#[test]
fn elect_then_fail_over_on_kill9() {
    let lab = Lab::new(2, 1);
    let (mut a, b) = elect(&lab, "100ms", "", "");
    // b stays backup while a advertises.
    std::thread::sleep(SEC);
    assert!(
        !lab.has_addr(1, "eth0", VIP),
        "both hold the VIP:\n{}",
        b.log()
    );
    assert_eq!(b.count("-> MASTER"), 0, "{}", b.log());
    a.kill().unwrap();
    let took = wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP));
    assert!(took.is_some(), "b did not take over:\n{}", b.log());
    assert!(
        b.log().contains("VI_1: BACKUP -> MASTER (master down)"),
        "{}",
        b.log()
    );
    // The VIP was announced: a third party learns b's MAC for it.
    assert!(
        b.log().contains("added 10.1.0.100/24 on eth0"),
        "{}",
        b.log()
    );
    // a restarted (no preempt settings: preempt is on by default) takes it back and b
    // releases it: exactly one holder.
    let a2 = lab.lbd(0, "a2", &pair_config(150, "100ms", ""));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)
            && !lab.has_addr(1, "eth0", VIP))
        .is_some(),
        "a did not preempt b:\na2:\n{}\nb:\n{}",
        a2.log(),
        b.log()
    );
    assert!(
        b.log()
            .contains("VI_1: MASTER -> BACKUP (10.1.0.1 advertises priority 150)"),
        "{}",
        b.log()
    );
}

/// A master's lbd killed and restarted within the backup's master-down interval (1 s adverts:
/// 3.4 s) finds its VIP still on the link and resumes as master at once: the backup never
/// takes the VIP, so clients see no move at all (instead of two).
#[test]
fn a_quick_restart_after_kill9_keeps_the_master() {
    let lab = Lab::new(2, 1);
    let (mut a, b) = elect(&lab, "1s", "", "");
    std::thread::sleep(SEC);
    a.kill().unwrap();
    assert!(lab.has_addr(0, "eth0", VIP), "kill -9 removed the VIP");
    let a2 = lab.lbd(0, "a2", &pair_config(150, "1s", ""));
    assert!(
        a2.wait_log(
            "VI_1: INIT -> MASTER (restarted while holding the addresses)",
            5 * SEC
        ),
        "{}",
        a2.log()
    );
    // Longer than b's master-down interval after a's last advertisement.
    std::thread::sleep(5 * SEC);
    assert_eq!(b.count("-> MASTER"), 0, "b took over:\n{}", b.log());
    assert!(lab.has_addr(0, "eth0", VIP) && !lab.has_addr(1, "eth0", VIP));
}

/// SIGTERM: a priority-0 advertisement makes the backup take over after its skew time, not
/// after a whole master-down interval (1 s adverts: skew 0.61 s, master down 3.61 s).
#[test]
fn sigterm_hands_over_after_skew_time() {
    let lab = Lab::new(3, 1);
    let (mut a, b) = elect(&lab, "1s", "", "");
    let cap = lab.capture(2, "eth0", "term");
    // At least one advert of a's is in the capture before it stops.
    std::thread::sleep(Duration::from_millis(1200));
    a.signal(Signal::SIGTERM);
    let status = a.wait_exit(5 * SEC).expect("lbd did not exit on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", a.log());
    assert!(
        !lab.has_addr(0, "eth0", VIP),
        "a kept the VIP after stopping:\n{}",
        a.log()
    );
    let took =
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)).expect("b never took over");
    assert!(
        took < Duration::from_millis(2500),
        "b took {took:?}: it ignored the priority-0 advertisement\n{}",
        b.log()
    );
    let log = a.log();
    for needle in [
        "SIGTERM: stopping",
        "VI_1: MASTER -> INIT (shutdown)",
        "vrrp: stopped",
        "lbd stopped",
    ] {
        assert!(log.contains(needle), "missing {needle:?}:\n{log}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let file = cap.stop();
    let from_a = tshark_fields(&file, "vrrp && ip.src == 10.1.0.1", &["vrrp.prio"]);
    assert!(
        from_a.iter().any(|f| f[0] == "150") && from_a.last().is_some_and(|f| f[0] == "0"),
        "adverts of a do not end with priority 0: {from_a:?}"
    );
    let from_b = tshark_fields(&file, "vrrp && ip.src == 10.1.0.2", &["vrrp.prio"]);
    assert!(
        !from_b.is_empty() && from_b.iter().all(|f| f[0] == "100"),
        "{from_b:?}"
    );
}

#[test]
fn no_preempt_keeps_the_lower_master() {
    let lab = Lab::new(2, 1);
    // b (100) alone becomes master.
    let b = lab.lbd(1, "b", &pair_config(100, "100ms", ""));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)).is_some(),
        "{}",
        b.log()
    );
    // a (150) with preempt = false joins and must stay backup.
    let a = lab.lbd(0, "a", &pair_config(150, "100ms", "preempt = false"));
    assert!(a.wait_log("VI_1: INIT -> BACKUP", 5 * SEC), "{}", a.log());
    std::thread::sleep(2 * SEC);
    assert!(!lab.has_addr(0, "eth0", VIP), "a preempted:\n{}", a.log());
    assert!(lab.has_addr(1, "eth0", VIP));
    assert_eq!(a.count("-> MASTER"), 0, "{}", a.log());
    // With preempt (default), a second node at 150 takes over.
    drop(a);
    let a2 = lab.lbd(0, "a2", &pair_config(150, "100ms", ""));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)
            && !lab.has_addr(1, "eth0", VIP))
        .is_some(),
        "{}",
        a2.log()
    );
}

#[test]
fn preempt_delay_waits_before_taking_over() {
    let lab = Lab::new(2, 1);
    let b = lab.lbd(1, "b", &pair_config(100, "100ms", ""));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)).is_some(),
        "{}",
        b.log()
    );
    let a = lab.lbd(0, "a", &pair_config(150, "100ms", "preempt_delay = \"2s\""));
    assert!(a.wait_log("VI_1: INIT -> BACKUP", 5 * SEC), "{}", a.log());
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        !lab.has_addr(0, "eth0", VIP),
        "a preempted before its delay:\n{}",
        a.log()
    );
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)).is_some(),
        "a never preempted:\n{}",
        a.log()
    );
}

/// Outside and inside instances in one sync group: a fault on the inside link moves both.
#[test]
fn sync_group_moves_together_and_faults_on_interface_down() {
    let lab = Lab::new(2, 2);
    let cfg = |p: u8| {
        format!(
            "{}{}[vrrp.sync_group.G]\ninstances = [\"EXT\", \"INT\"]\n",
            lbd_instance("EXT", "eth0", 51, p, 3, "100ms", &["10.1.0.100/24"], ""),
            lbd_instance("INT", "eth1", 52, p, 3, "100ms", &["10.2.0.100/24"], "")
        )
    };
    let both = |node: usize| {
        lab.has_addr(node, "eth0", "10.1.0.100") && lab.has_addr(node, "eth1", "10.2.0.100")
    };
    let none = |node: usize| {
        !lab.has_addr(node, "eth0", "10.1.0.100") && !lab.has_addr(node, "eth1", "10.2.0.100")
    };
    let a = lab.lbd(0, "a", &cfg(150));
    assert!(
        wait::until(5 * SEC, POLL, || both(0)).is_some(),
        "{}",
        a.log()
    );
    let b = lab.lbd(1, "b", &cfg(100));
    assert!(b.wait_log("INIT -> BACKUP", 5 * SEC), "{}", b.log());
    std::thread::sleep(SEC);
    assert!(none(1), "{}", b.log());
    // a's inside link goes down: both of a's instances fault, b takes both.
    lab.set_link(0, "eth1", false);
    assert!(
        wait::until(5 * SEC, POLL, || both(1) && none(0)).is_some(),
        "a:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log()
            .contains("EXT: MASTER -> FAULT (fault: sync group member INT in fault)"),
        "{}",
        a.log()
    );
    assert!(
        a.log()
            .contains("INT: MASTER -> FAULT (fault: interface eth1 down)"),
        "{}",
        a.log()
    );
    // b's EXT became master on its own (priority 0 from a), INT with it or on its own.
    assert!(b.log().contains("EXT: BACKUP -> MASTER"), "{}", b.log());
    // The link comes back: a recovers and preempts both.
    lab.set_link(0, "eth1", true);
    assert!(
        wait::until(5 * SEC, POLL, || both(0) && none(1)).is_some(),
        "a:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(a.log().contains("FAULT -> BACKUP"), "{}", a.log());
}

/// A tracked interface (not the VRRP one) down faults the instance.
#[test]
fn tracked_interface_down_faults() {
    let lab = Lab::new(2, 2);
    let cfg = |p: u8| pair_config(p, "100ms", "track_interfaces = [\"eth1\"]");
    let a = lab.lbd(0, "a", &cfg(150));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)).is_some(),
        "{}",
        a.log()
    );
    let b = lab.lbd(1, "b", &cfg(100));
    assert!(b.wait_log("INIT -> BACKUP", 5 * SEC), "{}", b.log());
    lab.set_link(0, "eth1", false);
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)
            && !lab.has_addr(0, "eth0", VIP))
        .is_some(),
        "a:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log()
            .contains("VI_1: MASTER -> FAULT (fault: interface eth1 down)"),
        "{}",
        a.log()
    );
    // Its own interface down: it stays in fault even with eth1 back.
    lab.set_link(0, "eth0", false);
    lab.set_link(0, "eth1", true);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.count("FAULT -> BACKUP"), 0, "{}", a.log());
    lab.set_link(0, "eth0", true);
    assert!(a.wait_log("FAULT -> BACKUP", 5 * SEC), "{}", a.log());
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)).is_some(),
        "{}",
        a.log()
    );
}

/// Unicast peers instead of multicast; and an IPv6 pair.
#[test]
fn unicast_and_ipv6_pairs() {
    let lab = Lab::new(2, 1);
    let uni = |p: u8, peer: &str| {
        lbd_instance(
            "U",
            "eth0",
            60,
            p,
            3,
            "100ms",
            &["10.1.0.160/24"],
            &format!("unicast_peers = [\"{peer}\"]"),
        )
    };
    let six = |p: u8| {
        lbd_instance(
            "S",
            "eth0",
            61,
            p,
            3,
            "100ms",
            &["fe80::61/64", "2001:db8::61/64"],
            "",
        )
    };
    let a = lab.lbd(0, "a", &format!("{}{}", uni(150, "10.1.0.2"), six(150)));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", "10.1.0.160")
            && lab.has_addr(0, "eth0", "2001:db8::61"))
        .is_some(),
        "{}",
        a.log()
    );
    let mut a = a;
    let b = lab.lbd(1, "b", &format!("{}{}", uni(100, "10.1.0.1"), six(100)));
    assert!(b.wait_log("S: INIT -> BACKUP", 5 * SEC), "{}", b.log());
    std::thread::sleep(SEC);
    assert!(
        !lab.has_addr(1, "eth0", "10.1.0.160") && !lab.has_addr(1, "eth0", "2001:db8::61"),
        "{}",
        b.log()
    );
    a.kill().unwrap();
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", "10.1.0.160")
            && lab.has_addr(1, "eth0", "2001:db8::61"))
        .is_some(),
        "{}",
        b.log()
    );
}

/// `virtual_mac`: the VIP lives on a macvlan with 00:00:5e:00:01:VRID, adverts and ARP leave
/// from that MAC, and a client resolves the VIP to it — before and after a failover.
#[test]
fn virtual_mac_moves_with_the_vip() {
    let lab = Lab::new(3, 1);
    let cfg = |p: u8| pair_config(p, "100ms", "virtual_mac = true");
    let mut a = lab.lbd(0, "a", &cfg(150));
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "vrrp.51", VIP)).is_some(),
        "{}",
        a.log()
    );
    let link = lab.exec(0, &["ip", "-o", "link", "show", "vrrp.51"]);
    assert!(link.contains("link/ether 00:00:5e:00:01:33"), "{link}");
    let b = lab.lbd(1, "b", &cfg(100));
    assert!(b.wait_log("INIT -> BACKUP", 5 * SEC), "{}", b.log());
    let cap = lab.capture(2, "eth0", "vmac");
    // b hears a's adverts, which come from the virtual MAC b's own macvlan also has: it stays
    // backup (a private-mode macvlan once swallowed them, and b took over at once).
    std::thread::sleep(SEC);
    assert!(
        !b.log().contains("-> MASTER") && !lab.has_addr(1, "vrrp.51", VIP),
        "b became master while a was alive:\na:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    let resolve = |lab: &Lab| {
        let _ = lbtest::programs::command("ip")
            .args([
                "netns",
                "exec",
                &lab.ns(2),
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                VIP,
            ])
            .output();
        lab.exec(2, &["ip", "neigh", "show", VIP])
    };
    let neigh = resolve(&lab);
    assert!(
        neigh.contains("00:00:5e:00:01:33"),
        "client resolved the VIP to {neigh:?}"
    );
    a.kill().unwrap();
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "vrrp.51", VIP)).is_some(),
        "{}",
        b.log()
    );
    // The client's entry still points at the virtual MAC, and the VIP answers (now from b).
    let ping = lbtest::programs::command("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(2),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            VIP,
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    std::thread::sleep(Duration::from_millis(300));
    let file = cap.stop();
    let adverts = tshark_fields(&file, "vrrp && ip.src == 10.1.0.2", &["eth.src"]);
    assert!(
        !adverts.is_empty() && adverts.iter().all(|r| r[0] == "00:00:5e:00:01:33"),
        "{adverts:?}"
    );
    let garps = tshark_fields(
        &file,
        "arp.src.proto_ipv4 == 10.1.0.100 && arp.dst.proto_ipv4 == 10.1.0.100",
        &["arp.src.hw_mac"],
    );
    assert!(
        !garps.is_empty() && garps.iter().all(|r| r[0] == "00:00:5e:00:01:33"),
        "{garps:?}\na:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    // An orderly stop removes the VIP and the macvlan.
    let mut b = b;
    b.signal(Signal::SIGTERM);
    b.wait_exit(5 * SEC).expect("b did not stop");
    let links = lab.exec(1, &["ip", "-o", "link", "show"]);
    assert!(!links.contains("vrrp.51"), "{links}");
}

/// SIGHUP with a changed config: the backup's new higher priority makes it preempt, and a
/// VIP added to the master's instance appears without a state change.
#[test]
fn reload_changes_priority_and_vips_in_place() {
    let lab = Lab::new(2, 1);
    let (mut a, mut b) = elect(&lab, "100ms", "", "");
    // a gets a second VIP: added in place.
    let two = lbd_instance(
        "VI_1",
        "eth0",
        51,
        150,
        3,
        "100ms",
        &["10.1.0.100/24", "10.1.0.101/24"],
        "",
    );
    std::fs::write(lab.dir.join("a.toml"), &two).unwrap();
    a.signal(Signal::SIGHUP);
    assert!(a.wait_log("reloaded config", 5 * SEC), "{}", a.log());
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", "10.1.0.101")).is_some(),
        "{}",
        a.log()
    );
    assert_eq!(a.count("-> MASTER"), 1, "{}", a.log());
    // b now outranks a: it preempts; a releases both VIPs.
    let b_cfg = lbd_instance(
        "VI_1",
        "eth0",
        51,
        200,
        3,
        "100ms",
        &["10.1.0.100/24", "10.1.0.101/24"],
        "",
    );
    std::fs::write(lab.dir.join("b.toml"), &b_cfg).unwrap();
    b.signal(Signal::SIGHUP);
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)
            && lab.has_addr(1, "eth0", "10.1.0.101")
            && !lab.has_addr(0, "eth0", VIP)
            && !lab.has_addr(0, "eth0", "10.1.0.101"))
        .is_some(),
        "a:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log()
            .contains("VI_1: MASTER -> BACKUP (10.1.0.2 advertises priority 200)"),
        "{}",
        a.log()
    );
}
