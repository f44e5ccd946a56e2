//! N-way balancing end to end: three balancers from the test image announce the VIPs by BGP
//! (lbd driving BIRD) to a router running BIRD with ECMP and an L4 multipath hash; DR reals
//! and a client behind the router (`lbtest::nway` has the picture).
//!
//! What is asserted, each from a third party (the router's kernel table, the reals' own
//! answers, `ipvsadm` in each guest):
//! - the router's route to each VIP has three next hops once the balancers are up, while lb1
//!   and lb2 also serve a pair service on a VRRP VIP (mixed roles);
//! - agreement: the same flows (fixed source ports) sent through each balancer in turn land
//!   on the same real from all three, and the three kernel tables list the reals in one order;
//! - a VIP whose last real fails on one balancer only loses that next hop, and gets it back;
//! - a real marked down moves only the flows that were on it (`mh-fallback`); a real removed
//!   from the config moves its own flows plus at most Maglev's slack;
//! - a balancer drained and brought back (`lbctl drain --node`) breaks no long connection with
//!   `sloppy_tcp` on, and breaks some with it off (the negative control that proves the
//!   mechanism: ECMP moves flows between balancers mid-connection);
//! - an orderly stop and a kill -9 of a balancer's QEMU while long connections flow: none
//!   breaks, and the router stops using that balancer (the time is printed).
//!
//! Needs root, QEMU, python3, BIRD, nft and the kernel package (`tools/setup.sh`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lbtest::chaos::load::{Load, LoadSpec};
use lbtest::ipvs::ShellGuest;
use lbtest::nway::flows::{disagreements, moved, spread};
use lbtest::nway::lab::{Settings, CLIENT, VIP, VIP_PAIR, VIP_SINGLE};
use lbtest::nway::{Lab, Member, MEMBERS};

/// Three TCG guests booting at once on a busy 2-core machine.
const BOOT: Duration = Duration::from_secs(400);
/// A route change seen by the router (BGP over BFD, a health check, a reload).
const ROUTE: Duration = Duration::from_secs(60);
const CMD: Duration = Duration::from_secs(60);
/// The agreement flows.
const FLOWS: std::ops::Range<u16> = 41000..41060;

fn sh(g: &mut ShellGuest, m: &Member, command: &str) -> String {
    g.shell
        .run(command, CMD)
        .unwrap_or_else(|e| panic!("{}: {command}: {e}", m.name))
}

/// Waits until every guest's lbd applied the config whose text is `text` (by its version).
fn wait_applied(guests: &mut [(Member, ShellGuest)], settings: &Settings) {
    for (m, g) in guests.iter_mut() {
        let version =
            lbtest::appliance::sha256_hex(lbtest::nway::lab::config_text(m, settings).as_bytes());
        let short = &version[..12];
        lbtest::wait::expect(
            &format!("{} applies config {short}", m.name),
            ROUTE,
            Duration::from_millis(500),
            || {
                g.shell
                    .run("lbctl status", CMD)
                    .is_ok_and(|s| s.contains(short))
            },
        );
    }
}

/// Long connections through ECMP (24, a line every 100 ms) and a short request every 100 ms.
fn load(lab: &Lab) -> Load {
    let mut spec = LoadSpec::new(
        SocketAddr::new(IpAddr::V4(VIP), 80),
        SocketAddr::new(IpAddr::V4(VIP), 9000),
        Duration::from_secs(600),
    );
    spec.connections = 24;
    spec.request_every = Duration::from_millis(100);
    let l = Load::start(&lab.client, spec);
    lbtest::wait::expect(
        "24 long connections open",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || l.record().opened.len() >= 24,
    );
    std::thread::sleep(Duration::from_secs(2));
    l
}

/// A GET of the pair service's VIP from the client: the real's name.
fn pair_get(lab: &Lab) -> Result<String, String> {
    lab.client
        .enter(|| {
            lbtest::chaos::load::http_get(
                SocketAddr::new(IpAddr::V4(VIP_PAIR), 80),
                Duration::from_secs(2),
            )
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Long connections lost by `l` so far.
fn lost(l: &Load) -> usize {
    l.record().lost.len()
}

#[test]
fn three_balancers_behind_ecmp_agree_and_lose_nothing() {
    lbtest::process::require_root("the N-way lab makes namespaces, taps and a bridge");
    let image = lbtest::ipvs::test_image();
    let mut settings = Settings::default();
    let lab = Lab::start(&settings).unwrap_or_else(|e| panic!("{e}"));
    let booted = Instant::now();
    let mut guests: Vec<(Member, ShellGuest)> = std::thread::scope(|s| {
        let handles: Vec<_> = MEMBERS
            .iter()
            .map(|m| {
                let (lab, image) = (&lab, &image);
                s.spawn(move || {
                    (
                        *m,
                        lab.boot(image, m, BOOT).unwrap_or_else(|e| panic!("{e}")),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let all: Vec<&Member> = MEMBERS.iter().collect();
    for vip in [VIP, VIP_SINGLE] {
        lab.wait_next_hops(vip, &all, BOOT)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!(
        "nway: the router has three next hops for both VIPs {:.1} s after the guests started",
        booted.elapsed().as_secs_f64()
    );

    // Mixed roles: the pair service's VRRP VIP is on lb1 (the master) and serves, beside the
    // N-way VIPs.
    let (m1, g1) = &mut guests[0];
    lbtest::wait::expect(
        "lb1 holds the pair's VIP",
        ROUTE,
        Duration::from_millis(500),
        || sh(g1, m1, "ip -4 addr show dev eth0").contains(&format!("inet {VIP_PAIR}/32")),
    );
    let (m2, g2) = &mut guests[1];
    assert!(
        !sh(g2, m2, "ip -4 addr show dev eth0").contains(&format!("inet {VIP_PAIR}/32")),
        "lb2 (backup) holds the pair's VIP too"
    );
    let got = pair_get(&lab);
    assert!(
        got.as_ref().is_ok_and(|r| r.starts_with('r')),
        "GET of the pair VIP {VIP_PAIR}: {got:?}"
    );

    // Agreement: the same flows through each balancer in turn, and the same kernel order.
    let mut maps = Vec::new();
    for m in &MEMBERS {
        lab.pin(Some(m)).unwrap_or_else(|e| panic!("{e}"));
        let (map, failed) = lab.probe(FLOWS, VIP).unwrap_or_else(|e| panic!("{e}"));
        assert!(failed.is_empty(), "through {}: {failed:?}", m.name);
        eprintln!("nway: through {}: {:?}", m.name, spread(&map));
        maps.push(map);
    }
    lab.pin(None).unwrap_or_else(|e| panic!("{e}"));
    for (i, m) in MEMBERS.iter().enumerate().skip(1) {
        let d = disagreements(&maps[0], &maps[i]);
        assert!(
            d.is_empty(),
            "flows {d:?} land on other reals through {} than through lb1",
            m.name
        );
    }
    assert!(
        spread(&maps[0]).len() == 3,
        "60 flows should reach all three reals: {:?}",
        spread(&maps[0])
    );
    // The N-way services in the kernel's own order (`--nosort`), without the counters: the
    // same reals, weights and order on all three (the pair service is on lb1 and lb2 only).
    let tables: Vec<String> = guests
        .iter_mut()
        .map(|(m, g)| {
            let mut t = String::new();
            for service in [
                format!("{VIP}:80"),
                format!("{VIP}:9000"),
                format!("{VIP_SINGLE}:80"),
            ] {
                let out = sh(g, m, &format!("ipvsadm -Ln --nosort -t {service}"));
                for line in out
                    .lines()
                    .filter(|l| l.contains("->") || l.starts_with("TCP"))
                {
                    let fields: Vec<&str> = line.split_whitespace().take(4).collect();
                    t.push_str(&fields.join(" "));
                    t.push('\n');
                }
            }
            t
        })
        .collect();
    for (i, t) in tables.iter().enumerate().skip(1) {
        assert_eq!(
            &tables[0], t,
            "{} lists its N-way services otherwise than lb1",
            MEMBERS[i].name
        );
    }
    eprintln!(
        "nway: the N-way services on all three, in the kernel's order:\n{}",
        tables[0]
    );

    // The single real of VIP_SINGLE fails for lb1 only: only lb1's next hop goes.
    lab.block_checks(&MEMBERS[0], 0, true)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = lab
        .wait_next_hops(VIP_SINGLE, &[&MEMBERS[1], &MEMBERS[2]], ROUTE)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "nway: lb1's checks of r1 blocked: its next hop for {VIP_SINGLE} withdrawn after {:.1} s",
        t.as_secs_f64()
    );
    assert_eq!(
        lab.next_hops(VIP).unwrap_or_else(|e| panic!("{e}")).len(),
        3,
        "{VIP} still has r2 and r3 on lb1: it stays announced"
    );
    // What lb1 says of it: the session up, one VIP announced, the other withdrawn and why.
    let (m1, g1) = &mut guests[0];
    let status = sh(g1, m1, "lbctl status --color never");
    let line = |needle: &str| {
        status
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in lb1's status:\n{status}"))
    };
    assert!(line("peer router").contains("established"), "{status}");
    assert!(
        line(&format!("vip {VIP} ")).contains("announced"),
        "{status}"
    );
    assert!(
        line(&format!("vip {VIP_SINGLE} ")).contains("withdrawn"),
        "{status}"
    );
    lab.block_checks(&MEMBERS[0], 0, false)
        .unwrap_or_else(|e| panic!("{e}"));
    lab.wait_next_hops(VIP_SINGLE, &all, ROUTE)
        .unwrap_or_else(|e| panic!("{e}"));

    // A real marked down moves only its own flows; removed from the config, its own plus
    // Maglev's slack.
    lab.pin(Some(&MEMBERS[0])).unwrap_or_else(|e| panic!("{e}"));
    let before = maps[0].clone();
    lab.set_health_down(1, true);
    lbtest::wait::expect(
        "every balancer sets r2 to weight 0",
        ROUTE,
        Duration::from_millis(500),
        || {
            guests.iter_mut().all(|(m, g)| {
                sh(g, m, "ipvsadm -Ln -t 10.73.100.1:80").lines().any(|l| {
                    l.contains("10.73.0.22:80") && l.split_whitespace().nth(3) == Some("0")
                })
            })
        },
    );
    let (down, failed) = lab.probe(FLOWS, VIP).unwrap_or_else(|e| panic!("{e}"));
    assert!(failed.is_empty(), "{failed:?}");
    let m_down = moved(&before, &down, "r2");
    assert!(
        !down.values().any(|r| r == "r2"),
        "a flow still reached r2 at weight 0"
    );
    assert_eq!(
        m_down.others_moved, 0,
        "marking r2 down moved flows that were not on it: {m_down:?}"
    );
    lab.set_health_down(1, false);
    settings.reals = vec![0, 2];
    for m in &MEMBERS {
        lab.publish(m, &settings).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_applied(&mut guests, &settings);
    let (removed, failed) = lab.probe(FLOWS, VIP).unwrap_or_else(|e| panic!("{e}"));
    assert!(failed.is_empty(), "{failed:?}");
    let m_removed = moved(&before, &removed, "r2");
    eprintln!(
        "nway: r2 down (weight 0): {} of {} flows moved, all {} of its own, 0 others; \
         r2 removed: its {} plus {} others moved (ideal 0)",
        m_down.on_gone, m_down.compared, m_down.on_gone, m_removed.on_gone, m_removed.others_moved
    );
    assert!(
        m_removed.others_moved * 5 <= m_removed.compared,
        "removing r2 moved more than a fifth of the other flows: {m_removed:?}"
    );
    settings.reals = vec![2, 1, 0];
    for m in &MEMBERS {
        lab.publish(m, &settings).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_applied(&mut guests, &settings);
    let (back, _) = lab.probe(FLOWS, VIP).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        disagreements(&before, &back).is_empty(),
        "r2 back (listed in another order): flows should land where they did at first"
    );
    lab.pin(None).unwrap_or_else(|e| panic!("{e}"));

    // lb3 leaves (drained: what an orderly stop does first) and returns under one load: with
    // sloppy_tcp off, the flows ECMP moves mid-connection break both ways (the negative
    // control); with it on, none does.
    let mut breaks = BTreeMap::new();
    for sloppy in [false, true] {
        settings.sloppy_tcp = Some(sloppy);
        for m in &MEMBERS {
            lab.publish(m, &settings).unwrap_or_else(|e| panic!("{e}"));
        }
        wait_applied(&mut guests, &settings);
        let l = load(&lab);
        let (m3, g3) = &mut guests[2];
        sh(g3, m3, "lbctl drain --node");
        lab.wait_next_hops(VIP, &[&MEMBERS[0], &MEMBERS[1]], ROUTE)
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(3));
        let on_leave = lost(&l);
        let (m3, g3) = &mut guests[2];
        sh(g3, m3, "lbctl undrain --node");
        lab.wait_next_hops(VIP, &all, ROUTE)
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(5));
        let on_join = lost(&l) - on_leave;
        breaks.insert(sloppy, (on_leave, on_join));
        eprintln!(
            "nway: sloppy_tcp {sloppy}: lb3 left under load: {on_leave} of 24 long connections \
             lost; returned: {on_join} more lost"
        );
    }
    assert_eq!(
        breaks[&true],
        (0, 0),
        "with sloppy_tcp on, a balancer leaving or joining broke connections"
    );
    let (on_leave, on_join) = breaks[&false];
    assert!(
        on_leave > 0 && on_join > 0,
        "the negative control: with sloppy_tcp off, flows ECMP moves mid-connection (off lb3 \
         as it leaves, onto it as it returns) should be reset where they land; lost {on_leave} \
         on leaving, {on_join} on joining (does ECMP move flows at all?)"
    );

    // Losing balancers under load: lb3 the orderly way, then lb1's QEMU killed (the pair's
    // master: lb2 takes its VRRP VIP over while the N-way flows go on). First, how ECMP spread
    // the long connections over the three.
    let l = load(&lab);
    // This load's connections (their client ports), then which balancer holds each: earlier
    // loads left entries behind on balancers their flows moved away from.
    let ss = lab
        .client
        .run(&[
            "ss",
            "-Htn",
            "state",
            "established",
            "dst",
            &format!("{VIP}:9000"),
        ])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| panic!("ss: {e}"));
    let ports: Vec<String> = ss
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(2)?
                .rsplit(':')
                .next()
                .map(str::to_string)
        })
        .collect();
    let spread_over: Vec<String> = guests
        .iter_mut()
        .map(|(m, g)| {
            let table = sh(g, m, "ipvsadm -Lnc");
            let n = table
                .lines()
                .filter(|l| l.contains("ESTABLISHED") && l.contains(&format!(" {VIP}:9000 ")))
                .filter(|l| ports.iter().any(|p| l.contains(&format!(" {CLIENT}:{p} "))))
                .count();
            format!("{} {n}", m.name)
        })
        .collect();
    eprintln!(
        "nway: {} long connections through ECMP, on each balancer: {}",
        ports.len(),
        spread_over.join(", ")
    );
    let (_, g3) = &mut guests[2];
    let stop = Instant::now();
    g3.guest
        .system_powerdown()
        .unwrap_or_else(|e| panic!("lb3: power button: {e}"));
    lab.wait_next_hops(VIP, &[&MEMBERS[0], &MEMBERS[1]], ROUTE)
        .unwrap_or_else(|e| panic!("{e}"));
    let orderly = stop.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let lost_orderly = lost(&l);
    let (_, g1) = &mut guests[0];
    let kill = Instant::now();
    g1.guest.kill();
    lab.wait_next_hops(VIP, &[&MEMBERS[1]], ROUTE)
        .unwrap_or_else(|e| panic!("{e}"));
    let killed = kill.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let lost_killed = lost(&l) - lost_orderly;
    let requests = l.record().requests.len();
    let failed = l
        .record()
        .requests
        .iter()
        .filter(|r| r.outcome.is_err())
        .count();
    eprintln!(
        "nway: lb3 powered off: the router dropped it {:.2} s after the button, {lost_orderly} \
         long connections lost; lb1's QEMU killed: dropped after {:.2} s, {lost_killed} lost; \
         {failed}/{requests} short requests failed ({CLIENT} through ECMP)",
        orderly.as_secs_f64(),
        killed.as_secs_f64()
    );
    // lb2, the pair's backup, took the pair's VIP over: it serves again (VRRP's master-down
    // interval is about 3 s).
    let failover = Instant::now();
    let mut got = pair_get(&lab);
    while !got.as_ref().is_ok_and(|r| r.starts_with('r')) && failover.elapsed() < ROUTE {
        std::thread::sleep(Duration::from_millis(200));
        got = pair_get(&lab);
    }
    assert!(
        got.as_ref().is_ok_and(|r| r.starts_with('r')),
        "GET of the pair VIP {VIP_PAIR} after its master died: {got:?}"
    );
    let (m2, g2) = &mut guests[1];
    let status = sh(g2, m2, "lbctl status --color never");
    assert!(
        status
            .lines()
            .any(|l| l.contains("VI_PAIR") && l.contains("MASTER")),
        "lb2 is not the pair's master after lb1 died:\n{status}"
    );
    eprintln!(
        "nway: the pair's VIP served from lb2 by {:.1} s after lb1's QEMU was killed (its own \
         VRRP failover, beside the N-way flows; first tried {:.1} s after the kill)",
        kill.elapsed().as_secs_f64(),
        (kill.elapsed() - failover.elapsed()).as_secs_f64()
    );
    assert_eq!(lost_orderly, 0, "an orderly stop broke long connections");
    assert_eq!(lost_killed, 0, "a balancer's death broke long connections");
}
