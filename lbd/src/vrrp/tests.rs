//! The state machine against the RFCs' rules, driven with a fake clock to the nanosecond.

use super::machine::*;
use super::packet::*;
use super::router::*;
use crate::config::IpPrefix;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pfx(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

const ME: &str = "10.0.0.2";
const GROUP: IpAddr = IpAddr::V4(MULTICAST_V4);

fn spec(name: &str, vrid: u8, priority: u8, version: Version, interval: Duration) -> Spec {
    Spec {
        name: name.into(),
        interface: "eth0".into(),
        vrid,
        version,
        ipv6: false,
        priority,
        advert_interval: interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        vips: vec![pfx(&format!("10.0.0.{}/24", 100 + vrid))],
        unicast_peers: vec![],
        unicast_source: None,
        auth_pass: None,
        track_interfaces: vec![],
        virtual_mac: None,
        accept: false,
        garp_count: 5,
        garp_repeat_after: 5 * S,
        quorum_priority_drop: 0,
        primary: Some(ip(ME)),
        resume: false,
    }
}

fn configure(specs: Vec<Spec>, groups: &[(&str, &[&str])]) -> Input {
    Input::Configure {
        instances: specs,
        sync_groups: groups
            .iter()
            .map(|(g, m)| (g.to_string(), m.iter().map(|s| s.to_string()).collect()))
            .collect(),
    }
}

/// A peer's advertisement for `s`'s router, as received on eth0 with TTL 255.
fn advert_from(s: &Spec, src: &str, priority: u8, interval: Duration) -> Input {
    let adv = Advert {
        version: s.version,
        vrid: s.vrid,
        priority,
        interval,
        addrs: s.vips.iter().map(|v| v.addr).collect(),
        auth: s.auth(),
    };
    Input::Packet(Packet {
        ifname: s.interface.clone(),
        src: ip(src),
        dst: GROUP,
        ttl: TTL,
        data: adv.emit(ip(src), GROUP).unwrap(),
    })
}

fn timer(name: &str, t: Timer) -> Input {
    Input::Timer {
        instance: name.into(),
        timer: t,
    }
}

fn deadline(n: &Router, name: &str, t: Timer) -> Option<Duration> {
    n.instance(name).unwrap().timers().get(&t).copied()
}

fn state(n: &Router, name: &str) -> State {
    n.instance(name).unwrap().state()
}

fn sent(actions: &[Action]) -> Vec<(String, u8)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { instance, advert } => Some((instance.clone(), advert.priority)),
            _ => None,
        })
        .collect()
}

fn transitions(actions: &[Action]) -> Vec<(String, State, State)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::State {
                instance, from, to, ..
            } => Some((instance.clone(), *from, *to)),
            _ => None,
        })
        .collect()
}

fn drops(actions: &[Action]) -> Vec<DropReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dropped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Skew and master-down interval, exactly as the RFC formulas give them.
#[test]
fn timer_formulas() {
    let i = Instance::new(spec("a", 1, 100, Version::V3, S));
    assert_eq!(i.skew_time(), Duration::from_nanos(609_375_000)); // 156/256 s
    assert_eq!(
        i.master_down_interval(),
        Duration::from_nanos(3_609_375_000)
    );
    let i = Instance::new(spec("a", 1, 100, Version::V3, 20 * MS));
    // (256-100) * 20 ms / 256 = 12.1875 ms
    assert_eq!(
        i.skew_time(),
        Duration::from_micros(12_187) + Duration::from_nanos(500)
    );
    assert_eq!(i.master_down_interval(), Duration::from_nanos(72_187_500));
    let i = Instance::new(spec("a", 1, 254, Version::V3, 100 * MS));
    assert_eq!(i.skew_time(), Duration::from_nanos(781_250)); // 2/256 * 100 ms
                                                              // v2: (256 - p) / 256 seconds whatever the interval.
    let i = Instance::new(spec("a", 1, 200, Version::V2, 3 * S));
    assert_eq!(i.skew_time(), Duration::from_nanos(218_750_000));
    assert_eq!(
        i.master_down_interval(),
        Duration::from_nanos(9_218_750_000)
    );
    let i = Instance::new(spec("a", 1, 1, Version::V2, S));
    assert_eq!(i.skew_time(), Duration::from_nanos(996_093_750));
}

#[test]
fn startup_backup_then_master_down_at_exactly_the_interval() {
    let s = spec("a", 1, 100, Version::V3, 100 * MS);
    let mut n = Router::new();
    let t0 = Duration::from_secs(10);
    let out = n.step(t0, configure(vec![s.clone()], &[]));
    // Addresses a previous run may have left are removed first.
    assert!(matches!(&out[1], Action::RemoveVips { vips, .. } if vips == &s.vips));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Initialize, State::Backup)]
    );
    let mdi = Duration::from_nanos(360_937_500); // 300 ms + 156/256 * 100 ms
    assert_eq!(deadline(&n, "a", Timer::MasterDown), Some(t0 + mdi));
    // One nanosecond early: nothing.
    assert!(n
        .step(
            t0 + mdi - Duration::from_nanos(1),
            timer("a", Timer::MasterDown)
        )
        .is_empty());
    let out = n.step(t0 + mdi, timer("a", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Backup, State::Master)]
    );
    // Advertisement first, then the addresses, then the announcement burst.
    let kinds: Vec<&str> = out
        .iter()
        .map(|a| match a {
            Action::Send { .. } => "send",
            Action::AddVips { .. } => "add",
            Action::Announce { .. } => "announce",
            Action::ArmTimer { .. } => "arm",
            Action::State { .. } => "state",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["state", "send", "add", "announce", "arm", "arm"]);
    assert_eq!(sent(&out), vec![("a".into(), 100)]);
    assert_eq!(deadline(&n, "a", Timer::Adver), Some(t0 + mdi + 100 * MS));
    assert_eq!(deadline(&n, "a", Timer::GarpRepeat), Some(t0 + mdi + 5 * S));
    // Adverts every interval, on the previous deadline even when woken late.
    let out = n.step(t0 + mdi + 104 * MS, timer("a", Timer::Adver));
    assert_eq!(sent(&out), vec![("a".into(), 100)]);
    assert_eq!(deadline(&n, "a", Timer::Adver), Some(t0 + mdi + 200 * MS));
    // GARP repeated once.
    let out = n.step(t0 + mdi + 5 * S, timer("a", Timer::GarpRepeat));
    assert!(matches!(&out[..], [Action::Announce { count: 5, .. }]));
    assert_eq!(deadline(&n, "a", Timer::GarpRepeat), None);
}

#[test]
fn owner_is_master_at_once() {
    let mut n = Router::new();
    let out = n.step(S, configure(vec![spec("o", 1, 255, Version::V3, S)], &[]));
    assert_eq!(
        transitions(&out),
        vec![("o".into(), State::Initialize, State::Master)]
    );
    assert_eq!(sent(&out), vec![("o".into(), 255)]);
}

#[test]
fn a_restart_after_dying_as_master_resumes_once_and_only_when_it_may_preempt() {
    let mut s = spec("a", 1, 150, Version::V3, S);
    s.resume = true;
    let mut n = Router::new();
    let out = n.step(S, configure(vec![s.clone()], &[]));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Initialize, State::Master)]
    );
    assert_eq!(sent(&out), vec![("a".into(), 150)]);
    assert!(out.iter().any(|a| matches!(a, Action::AddVips { .. })));
    assert!(out.iter().any(|a| matches!(a, Action::Announce { .. })));
    // A better peer still wins at its next advertisement.
    let out = n.step(S + 100 * MS, advert_from(&s, "10.0.0.3", 200, S));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Backup)]
    );

    // Spent by the first start: a fault and its end start as Backup, as the RFC says.
    let mut t = spec("t", 2, 150, Version::V3, S);
    t.resume = true;
    t.track_interfaces = vec!["eth1".into()];
    let mut n = Router::new();
    n.step(S, configure(vec![t.clone()], &[]));
    let link = |up| Input::Link {
        ifname: "eth1".into(),
        up,
    };
    n.step(2 * S, link(false));
    let out = n.step(3 * S, link(true));
    assert_eq!(
        transitions(&out),
        vec![("t".into(), State::Fault, State::Backup)]
    );

    // Without preemption (or with a delay) a restart may not take the VIP back: Backup.
    for (preempt, delay) in [(false, Duration::ZERO), (true, 5 * S)] {
        let mut u = spec("u", 3, 150, Version::V3, S);
        (u.resume, u.preempt, u.preempt_delay) = (true, preempt, delay);
        let mut n = Router::new();
        let out = n.step(S, configure(vec![u], &[]));
        assert_eq!(
            transitions(&out),
            vec![("u".into(), State::Initialize, State::Backup)],
            "preempt {preempt}, delay {delay:?}"
        );
        assert!(sent(&out).is_empty());
    }
}

#[test]
fn a_master_hearing_a_lower_master_answers_and_announces_again_once() {
    let s = spec("a", 1, 150, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    assert_eq!(state(&n, "a"), State::Master);
    // The other side of a healed partition still advertises, lower.
    let out = n.step(t + S, advert_from(&s, "10.0.0.3", 100, S));
    assert_eq!(sent(&out), vec![("a".into(), 150)]);
    assert!(
        out.iter().any(|a| matches!(a, Action::Announce { .. })),
        "{out:?}"
    );
    assert!(transitions(&out).is_empty());
    assert_eq!(deadline(&n, "a", Timer::Adver), Some(t + 2 * S));
    // And once more an advert interval later, after the rival's own late announcements.
    assert_eq!(deadline(&n, "a", Timer::GarpRepeat), Some(t + 2 * S));
    let out = n.step(t + 2 * S, timer("a", Timer::GarpRepeat));
    assert!(
        out.iter().any(|a| matches!(a, Action::Announce { .. })),
        "{out:?}"
    );
    // Its next advert within the master-down interval: an answer, no further burst.
    let out = n.step(t + 2 * S, advert_from(&s, "10.0.0.3", 100, S));
    assert_eq!(sent(&out), vec![("a".into(), 150)]);
    assert!(!out.iter().any(|a| matches!(a, Action::Announce { .. })));
    assert_eq!(deadline(&n, "a", Timer::GarpRepeat), None);
    // Much later, another episode: announced again.
    let out = n.step(t + 60 * S, advert_from(&s, "10.0.0.3", 100, S));
    assert!(out.iter().any(|a| matches!(a, Action::Announce { .. })));
}

#[test]
fn backup_resets_master_down_and_learns_the_interval_v3() {
    let s = spec("a", 1, 100, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = 500 * MS;
    let out = n.step(t, advert_from(&s, "10.0.0.3", 150, 100 * MS));
    assert!(out.iter().any(|a| matches!(a, Action::PeerMismatch { .. })));
    let i = n.instance("a").unwrap();
    assert_eq!(i.master_adver_interval(), 100 * MS);
    assert_eq!(i.master(), Some(ip("10.0.0.3")));
    // 3 * 100 ms + 156/256 * 100 ms
    assert_eq!(
        deadline(&n, "a", Timer::MasterDown),
        Some(t + Duration::from_nanos(360_937_500))
    );
    // The mismatch is logged once, not for every advertisement.
    let out = n.step(t + 100 * MS, advert_from(&s, "10.0.0.3", 150, 100 * MS));
    assert!(!out.iter().any(|a| matches!(a, Action::PeerMismatch { .. })));
}

#[test]
fn v2_uses_its_own_interval_and_drops_a_different_one() {
    let s = spec("a", 1, 100, Version::V2, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let before = deadline(&n, "a", Timer::MasterDown);
    let out = n.step(100 * MS, advert_from(&s, "10.0.0.3", 150, 2 * S));
    assert_eq!(drops(&out), vec![DropReason::Interval]);
    assert!(out.iter().any(|a| matches!(a, Action::PeerMismatch { .. })));
    assert_eq!(deadline(&n, "a", Timer::MasterDown), before);
    let out = n.step(200 * MS, advert_from(&s, "10.0.0.3", 150, S));
    assert!(drops(&out).is_empty());
    assert_eq!(
        deadline(&n, "a", Timer::MasterDown),
        Some(200 * MS + Duration::from_nanos(3_609_375_000))
    );
}

/// RFC 6.4.2: a priority-0 advertisement sets Master_Down_Timer to Skew_Time only.
#[test]
fn priority_zero_means_takeover_after_skew_time() {
    for (version, interval, skew) in [
        (Version::V3, 100 * MS, Duration::from_nanos(60_937_500)),
        (Version::V3, 20 * MS, Duration::from_nanos(12_187_500)),
        (Version::V2, S, Duration::from_nanos(609_375_000)),
    ] {
        let s = spec("a", 1, 100, version, interval);
        let mut n = Router::new();
        n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
        n.step(10 * MS, advert_from(&s, "10.0.0.3", 150, interval));
        let t = 50 * MS;
        let out = n.step(t, advert_from(&s, "10.0.0.3", 0, interval));
        assert_eq!(state(&n, "a"), State::Backup);
        assert!(sent(&out).is_empty());
        assert_eq!(
            deadline(&n, "a", Timer::MasterDown),
            Some(t + skew),
            "{version:?}"
        );
        let out = n.step(t + skew, timer("a", Timer::MasterDown));
        assert_eq!(
            transitions(&out),
            vec![("a".into(), State::Backup, State::Master)]
        );
    }
}

#[test]
fn preempt_discards_lower_priority_adverts() {
    let s = spec("a", 1, 150, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let first = deadline(&n, "a", Timer::MasterDown).unwrap();
    for k in 1..3 {
        let out = n.step(k * S, advert_from(&s, "10.0.0.3", 100, S));
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(deadline(&n, "a", Timer::MasterDown), Some(first));
    let out = n.step(first, timer("a", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Backup, State::Master)]
    );
    // The old master sees our higher priority and backs off (its side of the test):
    let old = spec("b", 1, 100, Version::V3, S);
    let mut m = Router::new();
    m.step(Duration::ZERO, configure(vec![old.clone()], &[]));
    m.step(4 * S, timer("b", Timer::MasterDown));
    assert_eq!(state(&m, "b"), State::Master);
    let out = m.step(5 * S, advert_from(&old, "10.0.0.9", 150, S));
    assert_eq!(
        transitions(&out),
        vec![("b".into(), State::Master, State::Backup)]
    );
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::RemoveVips { vips, .. } if vips == &old.vips)));
    assert_eq!(sent(&out), vec![("b".into(), 0)], "resigns on the way down");
}

#[test]
fn no_preempt_keeps_a_lower_priority_master() {
    let mut s = spec("a", 1, 150, Version::V3, S);
    s.preempt = false;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    for k in 1..20 {
        n.step(k * S, advert_from(&s, "10.0.0.3", 100, S));
        assert_eq!(
            deadline(&n, "a", Timer::MasterDown),
            Some(k * S + Duration::from_nanos(3_414_062_500))
        );
    }
    assert_eq!(state(&n, "a"), State::Backup);
}

#[test]
fn owner_preempts_even_without_preempt() {
    let mut s = spec("a", 1, 255, Version::V3, S);
    s.preempt = false;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    assert_eq!(state(&n, "a"), State::Master);
    // The lower master is answered (so it backs off), never followed.
    let out = n.step(S, advert_from(&s, "10.0.0.3", 100, S));
    assert!(transitions(&out).is_empty());
    assert_eq!(sent(&out), vec![("a".into(), 255)]);
}

#[test]
fn preempt_delay_accepts_the_lower_master_for_the_delay() {
    let mut s = spec("a", 1, 150, Version::V3, S);
    s.preempt_delay = 10 * S;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let mdi = Duration::from_nanos(3_414_062_500);
    // First seen at 1 s: accepted until 11 s.
    for k in 1..=10 {
        n.step(k * S, advert_from(&s, "10.0.0.3", 100, S));
        assert_eq!(
            deadline(&n, "a", Timer::MasterDown),
            Some(k * S + mdi),
            "{k}"
        );
    }
    n.step(11 * S, advert_from(&s, "10.0.0.3", 100, S));
    assert_eq!(deadline(&n, "a", Timer::MasterDown), Some(10 * S + mdi));
    let out = n.step(10 * S + mdi, timer("a", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Backup, State::Master)]
    );
}

/// RFC 5798 6.4.3: equal priorities: the greater primary address wins.
#[test]
fn ties_broken_by_primary_address() {
    let s = spec("a", 1, 100, Version::V3, S);
    let master = |n: &mut Router| {
        n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
        n.step(4 * S, timer("a", Timer::MasterDown));
        assert_eq!(state(n, "a"), State::Master);
    };
    let mut n = Router::new();
    master(&mut n);
    // 10.0.0.1 < 10.0.0.2 (ours): we stay master and answer.
    let out = n.step(5 * S, advert_from(&s, "10.0.0.1", 100, S));
    assert!(transitions(&out).is_empty());
    assert_eq!(sent(&out), vec![("a".into(), 100)]);
    assert_eq!(state(&n, "a"), State::Master);
    // 10.0.0.3 > 10.0.0.2: we back off.
    let out = n.step(6 * S, advert_from(&s, "10.0.0.3", 100, S));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Backup)]
    );
    // Compared as unsigned integers, not as text: 10.0.0.10 > 10.0.0.9.
    assert!(greater(ip("10.0.0.10"), ip("10.0.0.9")));
    assert!(greater(ip("200.0.0.1"), ip("10.0.0.1")));
    assert!(greater(ip("fe80::1:0"), ip("fe80::ffff")));
    // A backup with equal priority simply follows the master.
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    n.step(S, advert_from(&s, "10.0.0.1", 100, S));
    assert_eq!(
        deadline(&n, "a", Timer::MasterDown),
        Some(S + Duration::from_nanos(3_609_375_000))
    );
}

#[test]
fn master_answers_priority_zero_at_once() {
    let s = spec("a", 1, 100, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    let out = n.step(t + 300 * MS, advert_from(&s, "10.0.0.3", 0, S));
    assert_eq!(sent(&out), vec![("a".into(), 100)]);
    assert_eq!(deadline(&n, "a", Timer::Adver), Some(t + 1300 * MS));
}

#[test]
fn shutdown_sends_priority_zero_and_releases() {
    let s = spec("a", 1, 100, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    let out = n.step(t + S, Input::Shutdown);
    assert_eq!(sent(&out), vec![("a".into(), 0)]);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::RemoveVips { vips, .. } if vips == &s.vips)));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Initialize)]
    );
    // Priority 0 goes out before the addresses are removed.
    let send = out.iter().position(|a| matches!(a, Action::Send { .. }));
    let rm = out
        .iter()
        .position(|a| matches!(a, Action::RemoveVips { .. }));
    assert!(send < rm);
    assert!(n.step(t + 2 * S, timer("a", Timer::Adver)).is_empty());
    // A backup just stops.
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s], &[]));
    let out = n.step(S, Input::Shutdown);
    assert!(sent(&out).is_empty());
}

#[test]
fn interface_down_faults_and_up_restarts() {
    let mut s = spec("a", 1, 100, Version::V3, S);
    s.track_interfaces = vec!["eth1".into()];
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    let out = n.step(
        t + S,
        Input::Link {
            ifname: "eth1".into(),
            up: false,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Fault)]
    );
    assert_eq!(sent(&out), vec![("a".into(), 0)]);
    assert!(out.iter().any(|a| matches!(a, Action::RemoveVips { .. })));
    assert!(n.instance("a").unwrap().timers().is_empty());
    // Adverts are ignored in fault.
    assert!(n
        .step(t + 2 * S, advert_from(&s, "10.0.0.3", 200, S))
        .is_empty());
    // Own interface down too, then eth1 back: still fault (eth0).
    n.step(
        t + 3 * S,
        Input::Link {
            ifname: "eth0".into(),
            up: false,
        },
    );
    let out = n.step(
        t + 4 * S,
        Input::Link {
            ifname: "eth1".into(),
            up: true,
        },
    );
    assert!(transitions(&out).is_empty());
    let out = n.step(
        t + 5 * S,
        Input::Link {
            ifname: "eth0".into(),
            up: true,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Fault, State::Backup)]
    );
    // An interface reported down before the config starts the instance in fault.
    let mut n = Router::new();
    n.step(
        Duration::ZERO,
        Input::Link {
            ifname: "eth0".into(),
            up: false,
        },
    );
    let out = n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Initialize, State::Fault)]
    );
    assert!(out.iter().any(|a| matches!(a, Action::RemoveVips { .. })));
    // No primary address: fault until one appears.
    let mut s2 = s.clone();
    s2.primary = None;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s2], &[]));
    assert_eq!(state(&n, "a"), State::Fault);
    n.step(
        S,
        Input::Primary {
            instance: "a".into(),
            addr: Some(ip(ME)),
        },
    );
    assert_eq!(state(&n, "a"), State::Backup);
}

fn two_member_group() -> (Router, Spec, Spec) {
    let a = spec("a", 1, 100, Version::V3, S);
    let mut b = spec("b", 2, 100, Version::V3, S);
    b.interface = "eth1".into();
    let mut n = Router::new();
    n.step(
        Duration::ZERO,
        configure(vec![a.clone(), b.clone()], &[("g", &["a", "b"])]),
    );
    (n, a, b)
}

#[test]
fn sync_group_members_become_master_together() {
    let (mut n, a, b) = two_member_group();
    // b still hears its master; a's master went silent.
    n.step(S, advert_from(&b, "10.0.0.3", 150, S));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    let out = n.step(t, timer("a", Timer::MasterDown));
    // keepalived's rule: a member becomes master only when every member wants to. a stays
    // backup and looks again a master-down interval later.
    assert!(transitions(&out).is_empty(), "{out:?}");
    assert!(out.iter().any(
        |x| matches!(x, Action::GroupWait { instance, member } if instance == "a" && member == "b")
    ));
    let again = deadline(&n, "a", Timer::MasterDown).unwrap();
    assert!(again > t, "{again:?}");
    // b goes on hearing its master: a waits again, without saying so again.
    n.step(again - S, advert_from(&b, "10.0.0.3", 150, S));
    let out = n.step(again, timer("a", Timer::MasterDown));
    assert!(transitions(&out).is_empty(), "{out:?}");
    assert!(!out.iter().any(|x| matches!(x, Action::GroupWait { .. })));
    assert_eq!(state(&n, "a"), State::Backup);
    // Now b's master goes silent too: when b's timer fires, both want it, and both go.
    let t = deadline(&n, "b", Timer::MasterDown).unwrap();
    let out = n.step(t, timer("b", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![
            ("b".into(), State::Backup, State::Master),
            ("a".into(), State::Backup, State::Master)
        ]
    );
    assert_eq!(sent(&out), vec![("b".into(), 100), ("a".into(), 100)]);
    assert!(out
        .iter()
        .any(|x| matches!(x, Action::AddVips { instance, .. } if instance == "a")));
    // A better advertisement for a takes both back to backup, each resigning with priority 0
    // (a because it was preempted, b because its group went down).
    let out = n.step(t + S, advert_from(&a, "10.0.0.3", 200, S));
    assert_eq!(
        transitions(&out),
        vec![
            ("a".into(), State::Master, State::Backup),
            ("b".into(), State::Master, State::Backup)
        ]
    );
    assert_eq!(sent(&out), vec![("a".into(), 0), ("b".into(), 0)]);
}

/// The master dying (both members' timers fire, a few milliseconds apart): the first waits
/// for the second, which takes the group over at once: no extra delay.
#[test]
fn sync_group_takes_over_when_the_last_member_misses_the_master() {
    let (mut n, _a, b) = two_member_group();
    n.step(S, advert_from(&b, "10.0.0.3", 150, S));
    let ta = deadline(&n, "a", Timer::MasterDown).unwrap();
    let tb = deadline(&n, "b", Timer::MasterDown).unwrap();
    assert!(ta < tb);
    let out = n.step(ta, timer("a", Timer::MasterDown));
    assert!(transitions(&out).is_empty());
    let out = n.step(tb, timer("b", Timer::MasterDown));
    assert_eq!(transitions(&out).len(), 2, "{out:?}");
    assert_eq!(state(&n, "a"), State::Master);
    assert_eq!(state(&n, "b"), State::Master);
}

/// A better-priority group preempting a lower master: its members discard the lower adverts
/// so their timers run out, at different times here (different intervals). Discarded adverts
/// are not "hearing a master": the group takes over when the last timer fires.
#[test]
fn sync_group_preempts_a_lower_master_with_members_on_different_intervals() {
    let a = spec("a", 1, 150, Version::V3, S);
    let mut b = spec("b", 2, 200, Version::V3, 2 * S);
    b.interface = "eth1".into();
    let mut n = Router::new();
    n.step(
        Duration::ZERO,
        configure(vec![a.clone(), b.clone()], &[("g", &["a", "b"])]),
    );
    let ta = deadline(&n, "a", Timer::MasterDown).unwrap();
    let tb = deadline(&n, "b", Timer::MasterDown).unwrap();
    assert!(ta < tb);
    let out = n.step(ta, timer("a", Timer::MasterDown));
    assert!(transitions(&out).is_empty(), "{out:?}");
    // The lower master goes on advertising on both links; both members discard it.
    n.step(ta + S / 2, advert_from(&a, "10.0.0.3", 100, S));
    n.step(ta + S / 2, advert_from(&b, "10.0.0.3", 100, 2 * S));
    // a's next look comes after b's timer: only a's earlier wish can let b go.
    assert!(deadline(&n, "a", Timer::MasterDown).unwrap() > tb);
    assert!(deadline(&n, "b", Timer::MasterDown) == Some(tb));
    let out = n.step(tb, timer("b", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![
            ("b".into(), State::Backup, State::Master),
            ("a".into(), State::Backup, State::Master)
        ]
    );
}

/// Both members' masters silent from the start: their timers fire together and the group
/// goes master at once.
#[test]
fn sync_group_without_a_master_goes_master_at_once() {
    let (mut n, _a, _b) = two_member_group();
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    let out = n.step(t, timer("a", Timer::MasterDown));
    assert_eq!(
        transitions(&out),
        vec![
            ("a".into(), State::Backup, State::Master),
            ("b".into(), State::Backup, State::Master)
        ]
    );
    assert_eq!(sent(&out), vec![("a".into(), 100), ("b".into(), 100)]);
    assert!(out
        .iter()
        .any(|x| matches!(x, Action::AddVips { instance, .. } if instance == "b")));
}

#[test]
fn sync_group_fault_takes_all_members() {
    let (mut n, _a, _b) = two_member_group();
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    assert_eq!(state(&n, "b"), State::Master);
    let out = n.step(
        t + S,
        Input::Link {
            ifname: "eth1".into(),
            up: false,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![
            ("a".into(), State::Master, State::Fault),
            ("b".into(), State::Master, State::Fault)
        ]
    );
    assert!(out.iter().any(|x| matches!(x,
        Action::State { instance, why: Why::Fault(FaultReason::Group(m)), .. } if instance == "a" && m == "b")));
    let out = n.step(
        t + 2 * S,
        Input::Link {
            ifname: "eth1".into(),
            up: true,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![
            ("a".into(), State::Fault, State::Backup),
            ("b".into(), State::Fault, State::Backup)
        ]
    );
}

#[test]
fn quorum_lowers_priority_or_faults() {
    let mut s = spec("a", 1, 150, Version::V3, S);
    s.quorum_priority_drop = 60;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    n.step(
        t + 10 * MS,
        Input::Quorum {
            instance: "a".into(),
            lost: true,
        },
    );
    assert_eq!(n.instance("a").unwrap().priority(), 90);
    let out = n.step(t + S, timer("a", Timer::Adver));
    assert_eq!(sent(&out), vec![("a".into(), 90)]);
    // A peer at 100 now wins.
    let out = n.step(t + 1500 * MS, advert_from(&s, "10.0.0.1", 100, S));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Backup)]
    );
    // A drop to 0 faults.
    s.quorum_priority_drop = 200;
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let out = n.step(
        S,
        Input::Quorum {
            instance: "a".into(),
            lost: true,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Backup, State::Fault)]
    );
    let out = n.step(
        2 * S,
        Input::Quorum {
            instance: "a".into(),
            lost: false,
        },
    );
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Fault, State::Backup)]
    );
}

/// Each kind of bad packet is dropped, counted under its reason, and never resets the
/// master-down timer.
#[test]
fn bad_packets_are_dropped_and_counted() {
    let mut s = spec("a", 1, 100, Version::V2, S);
    s.auth_pass = Some("secret".into());
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let before = deadline(&n, "a", Timer::MasterDown);
    let good = |n: &Spec| match advert_from(n, "10.0.0.3", 150, S) {
        Input::Packet(p) => p,
        _ => unreachable!(),
    };
    let fix = |mut p: Packet| {
        p.data[6] = 0;
        p.data[7] = 0;
        let sum = internet_checksum(&p.data);
        p.data[6..8].copy_from_slice(&sum.to_be_bytes());
        p
    };
    let mut cases: Vec<(DropReason, Packet)> = Vec::new();
    let mut p = good(&s);
    p.ttl = 254;
    cases.push((DropReason::Ttl, p));
    let mut p = good(&s);
    p.data[0] = 0x41;
    cases.push((DropReason::Version, fix(p)));
    // A well-formed v3 advertisement for this v2 router.
    let v3 = good(&spec("a", 1, 100, Version::V3, S));
    cases.push((DropReason::Version, v3));
    let mut p = good(&s);
    p.data[1] = 9;
    cases.push((DropReason::Vrid, fix(p)));
    let mut p = good(&s);
    p.data.truncate(15);
    cases.push((DropReason::Length, p));
    let mut p = good(&s);
    p.data[7] ^= 0xff;
    cases.push((DropReason::Checksum, p));
    let mut p = good(&s);
    p.data[3] = 2;
    cases.push((DropReason::AddressCount, fix(p)));
    let mut p = good(&s);
    let n_ = p.data.len();
    p.data[n_ - 1] = b'x';
    p.data[n_ - 2] = b'x';
    cases.push((DropReason::Auth, fix(p)));
    let mut p = good(&s);
    p.data[4] = 0;
    cases.push((DropReason::Auth, fix(p)));
    let mut p = good(&s);
    p.data[5] = 2;
    cases.push((DropReason::Interval, fix(p)));
    let mut p = good(&s);
    p.data[11] = 7;
    cases.push((DropReason::Addresses, fix(p)));
    let mut p = good(&s);
    p.data[0] = 0x22;
    cases.push((DropReason::Type, fix(p)));
    let mut expected: BTreeMap<DropReason, u64> = BTreeMap::new();
    for (k, (reason, p)) in cases.into_iter().enumerate() {
        let out = n.step((k as u32 + 1) * 10 * MS, Input::Packet(p));
        assert_eq!(drops(&out), vec![reason], "case {k}: {out:?}");
        *expected.entry(reason).or_default() += 1;
    }
    assert_eq!(n.drops(), &expected);
    assert_eq!(deadline(&n, "a", Timer::MasterDown), before);
    assert_eq!(state(&n, "a"), State::Backup);
    // Counted per instance too, except the VRID nobody has.
    assert_eq!(n.instance_drops("a").values().sum::<u64>(), 11);
    // The owner may advertise other addresses in v2.
    let mut p = good(&s);
    p.data[2] = 255;
    p.data[11] = 7;
    let out = n.step(S, Input::Packet(fix(p)));
    assert!(drops(&out).is_empty());
    // Unicast: only configured peers.
    let mut u = spec("u", 3, 100, Version::V3, S);
    u.unicast_peers = vec![ip("10.0.0.3")];
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![u.clone()], &[]));
    let out = n.step(S, advert_from(&u, "10.0.0.4", 150, S));
    assert_eq!(drops(&out), vec![DropReason::Source]);
    let out = n.step(S, advert_from(&u, "10.0.0.3", 150, S));
    assert!(drops(&out).is_empty());
}

#[test]
fn reconfigure_moves_only_what_changed() {
    let s = spec("a", 1, 100, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    let mut s2 = s.clone();
    s2.vips = vec![pfx("10.0.0.101/24"), pfx("10.0.0.200/24")];
    s2.priority = 120;
    let out = n.step(t + S, configure(vec![s2.clone()], &[]));
    assert!(transitions(&out).is_empty());
    assert!(out.contains(&Action::AddVips {
        instance: "a".into(),
        vips: vec![pfx("10.0.0.200/24")]
    }));
    assert!(!out.iter().any(|a| matches!(a, Action::RemoveVips { .. })));
    // Another VRID is another router: the old one resigns, the new one starts.
    let mut s3 = s2.clone();
    s3.vrid = 9;
    let out = n.step(t + 2 * S, configure(vec![s3], &[]));
    assert_eq!(
        transitions(&out),
        vec![
            ("a".into(), State::Master, State::Initialize),
            ("a".into(), State::Initialize, State::Backup)
        ]
    );
    assert_eq!(sent(&out), vec![("a".into(), 0)]);
    // Removed: shut down.
    let out = n.step(t + 3 * S, configure(vec![], &[]));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Backup, State::Initialize)]
    );
    assert!(n.roles().is_empty());
}

/// IPv6 v3 end to end through the router: link-local source, pseudo-header checksum.
#[test]
fn ipv6_instance() {
    let mut s = spec("six", 7, 100, Version::V3, 100 * MS);
    s.ipv6 = true;
    s.vips = vec![pfx("fe80::7/64"), pfx("2001:db8::7/64")];
    s.primary = Some(ip("fe80::2"));
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let adv = Instance::new(s.clone()).advert(150);
    let dst = IpAddr::V6(MULTICAST_V6);
    let data = adv.emit(ip("fe80::3"), dst).unwrap();
    let p = Packet {
        ifname: "eth0".into(),
        src: ip("fe80::3"),
        dst,
        ttl: 255,
        data,
    };
    let out = n.step(S, Input::Packet(p.clone()));
    assert!(drops(&out).is_empty(), "{out:?}");
    assert_eq!(n.instance("six").unwrap().master(), Some(ip("fe80::3")));
    let mut bad = p;
    bad.ttl = 64;
    assert_eq!(drops(&n.step(S, Input::Packet(bad))), vec![DropReason::Ttl]);
    // An IPv4 packet with the same VRID on that interface is not for it.
    let v4 = advert_from(
        &spec("x", 7, 100, Version::V3, 100 * MS),
        "10.0.0.3",
        100,
        100 * MS,
    );
    assert_eq!(drops(&n.step(S, v4)), vec![DropReason::Vrid]);
}

/// Inputs and actions survive a JSON-lines round trip, and replaying the recorded inputs
/// gives the recorded actions.
#[test]
fn record_and_replay() {
    let a = spec("a", 1, 100, Version::V3, 100 * MS);
    let inputs: Vec<(Duration, Input)> = vec![
        (Duration::ZERO, configure(vec![a.clone()], &[])),
        (50 * MS, advert_from(&a, "10.0.0.3", 150, 100 * MS)),
        (150 * MS, advert_from(&a, "10.0.0.3", 0, 100 * MS)),
        (150 * MS + a_skew(), timer("a", Timer::MasterDown)),
        (400 * MS, Input::Shutdown),
    ];
    let mut n = Router::new();
    let mut log = String::new();
    let mut outputs = Vec::new();
    for (t, i) in &inputs {
        log.push_str(&serde_json::to_string(&(t, i)).unwrap());
        log.push('\n');
        outputs.push(n.step(*t, i.clone()));
    }
    let mut m = Router::new();
    for (line, expect) in log.lines().zip(outputs) {
        let (t, i): (Duration, Input) = serde_json::from_str(line).unwrap();
        let got = m.step(t, i);
        let json = serde_json::to_string(&got).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Action>>(&json).unwrap(), expect);
        assert_eq!(got, expect);
    }
    assert_eq!(m.roles()["a"], State::Initialize);
}

fn a_skew() -> Duration {
    Duration::from_nanos(60_937_500)
}

#[test]
fn garp_count_zero_sends_no_announcements() {
    let mut s = spec("a", 1, 255, Version::V3, S);
    s.garp_count = 0;
    let mut n = Router::new();
    let out = n.step(Duration::ZERO, configure(vec![s], &[]));
    assert!(!out.iter().any(|a| matches!(a, Action::Announce { .. })));
    assert_eq!(deadline(&n, "a", Timer::GarpRepeat), None);
    let _ = Ipv4Addr::LOCALHOST;
}

#[test]
fn a_preempted_master_resigns_and_the_winner_announces_again() {
    // The healed-partition race: the better master's advert reaches the other side first.
    let s = spec("a", 1, 100, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![s.clone()], &[]));
    let t = deadline(&n, "a", Timer::MasterDown).unwrap();
    n.step(t, timer("a", Timer::MasterDown));
    assert_eq!(state(&n, "a"), State::Master);
    let out = n.step(t + S, advert_from(&s, "10.0.0.3", 150, S));
    assert_eq!(
        transitions(&out),
        vec![("a".into(), State::Master, State::Backup)]
    );
    assert_eq!(sent(&out), vec![("a".into(), 0)], "resigns on the way down");

    // The winner's side: a master hearing priority 0 answers and announces again, once per
    // master-down interval.
    let w = spec("w", 1, 150, Version::V3, S);
    let mut n = Router::new();
    n.step(Duration::ZERO, configure(vec![w.clone()], &[]));
    let t = deadline(&n, "w", Timer::MasterDown).unwrap();
    n.step(t, timer("w", Timer::MasterDown));
    let out = n.step(t + 30 * S, advert_from(&w, "10.0.0.3", 0, S));
    assert_eq!(sent(&out), vec![("w".into(), 150)]);
    assert!(
        out.iter().any(|a| matches!(a, Action::Announce { .. })),
        "{out:?}"
    );
    assert!(transitions(&out).is_empty());
    let out = n.step(t + 31 * S, advert_from(&w, "10.0.0.3", 0, S));
    assert!(!out.iter().any(|a| matches!(a, Action::Announce { .. })));
}
