use super::*;
use crate::config;
use crate::config::Config;
use crate::ipvs::msg::{self, FwdMethod, ServiceId, Timeouts};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

const BASE: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24", "192.0.2.11/24"]

[service.web]
vip = "192.0.2.10:80"
scheduler = "wlc"
forwarding = "nat"
sorry_server = "10.1.0.99:80"

[[service.web.real]]
address = "10.1.0.11:80"
weight = 3

[[service.web.real]]
address = "10.1.0.12:80"
weight = 2

[service.dns]
vip = "192.0.2.11:53"
protocol = "udp"
scheduler = "rr"
forwarding = "dr"
flags = ["one-packet"]
on_failure = "remove"

[[service.dns.real]]
address = "192.0.2.21"

[[service.dns.real]]
address = "192.0.2.22"
"#;

fn cfg(text: &str) -> Config {
    match config::parse("test.toml", text) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

fn want(text: &str) -> Desired {
    desired(
        &cfg(text),
        &RealHealth::default(),
        &Overrides::default(),
        SyncRole::Master,
    )
}

fn applied(d: &Desired) -> KernelState {
    let mut k = KernelState::default();
    for op in plan(d, &KernelState::default()) {
        k.apply(&op);
    }
    k
}

/// `apply_all` records what `apply` one at a time does, for runs of destination operations
/// interleaved across services, on a service the kernel lacks, on a service whose list
/// order was never read (a state built by hand), and on services just added.
#[test]
fn apply_all_is_apply_one_at_a_time() {
    let spec = DestSpec {
        fwd: FwdMethod::Route,
        weight: 1,
        last_weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    let other = ServiceId::Fwmark { af: 2, mark: 7 };
    let missing = ServiceId::Fwmark { af: 2, mark: 8 };
    let mut start = applied(&want(BASE));
    start.table.insert(
        other,
        ServiceState {
            spec: start.table[&web()].spec.clone(),
            dests: BTreeMap::new(),
        },
    );
    let zero = DestSpec { weight: 0, ..spec };
    let svc_spec = start.table[&web()].spec.clone();
    let fresh = |mark| ServiceId::Fwmark { af: 2, mark };
    let ops = vec![
        Op::AddDest(web(), dk("192.0.2.30:80"), spec),
        Op::EditDest(web(), dk("192.0.2.30:80"), zero),
        Op::AddDest(other, dk("192.0.2.31:80"), spec),
        Op::AddDest(other, dk("192.0.2.32:80"), spec),
        Op::DelDest(web(), dk("192.0.2.30:80")),
        Op::AddDest(missing, dk("192.0.2.33:80"), spec),
        Op::DelDest(missing, dk("192.0.2.33:80")),
        Op::AddDest(web(), dk("192.0.2.34:80"), spec),
        Op::EditDest(other, dk("192.0.2.31:80"), zero),
        Op::DelService(other),
        Op::AddDest(other, dk("192.0.2.35:80"), spec),
        // New services: adds in key order, in reverse (as for mh), and one added twice.
        Op::AddService(fresh(1), svc_spec.clone()),
        Op::AddDest(fresh(1), dk("192.0.2.40:80"), spec),
        Op::AddDest(fresh(1), dk("192.0.2.41:80"), zero),
        Op::AddService(fresh(2), svc_spec.clone()),
        Op::AddDest(fresh(2), dk("192.0.2.43:80"), spec),
        Op::AddDest(fresh(2), dk("192.0.2.42:80"), spec),
        Op::AddService(fresh(3), svc_spec),
        Op::AddDest(fresh(3), dk("192.0.2.44:80"), spec),
        Op::AddDest(fresh(3), dk("192.0.2.44:80"), zero),
        Op::AddDest(fresh(3), dk("192.0.2.45:80"), spec),
    ];
    let mut one_at_a_time = start.clone();
    for op in &ops {
        one_at_a_time.apply(op);
    }
    let mut all = start.clone();
    all.apply_all(&ops);
    assert_eq!(all, one_at_a_time);
    assert_ne!(all, start, "the operations changed something");
}

/// Address, then port, as a derived `Ord` orders them.
#[test]
fn dest_keys_order_as_derived() {
    let keys: Vec<DestKey> = [
        "10.0.0.1:80",
        "10.0.0.1:81",
        "10.0.0.2:1",
        "9.255.255.255:80",
        "[::1]:80",
        "[::1]:79",
        "[2001:db8::1]:80",
        "[fe80::1]:1",
    ]
    .iter()
    .map(|k| dk(k))
    .collect();
    for a in &keys {
        for b in &keys {
            assert_eq!(
                a.cmp(b),
                (a.addr, a.port).cmp(&(b.addr, b.port)),
                "{a} against {b}"
            );
        }
    }
}

fn web() -> ServiceId {
    ServiceId::Addr {
        protocol: msg::IPPROTO_TCP,
        addr: "192.0.2.10".parse().unwrap(),
        port: 80,
    }
}

fn dk(s: &str) -> DestKey {
    let a: SocketAddr = s.parse().unwrap();
    DestKey {
        addr: a.ip(),
        port: a.port(),
    }
}

fn names(ops: &[Op]) -> Vec<String> {
    ops.iter().map(|o| o.to_string()).collect()
}

#[test]
fn from_empty_adds_services_then_reals() {
    let ops = plan(&want(BASE), &KernelState::default());
    assert_eq!(
        names(&ops),
        [
            "add service tcp 192.0.2.10:80 (wlc)",
            "add service udp 192.0.2.11:53 (rr)",
            "add real 10.1.0.11:80 to tcp 192.0.2.10:80 (weight 3)",
            "add real 10.1.0.12:80 to tcp 192.0.2.10:80 (weight 2)",
            "add real 192.0.2.21:53 to udp 192.0.2.11:53 (weight 1)",
            "add real 192.0.2.22:53 to udp 192.0.2.11:53 (weight 1)",
        ]
    );
    let dns = want(BASE).table[&ServiceId::Addr {
        protocol: msg::IPPROTO_UDP,
        addr: "192.0.2.11".parse().unwrap(),
        port: 53,
    }]
        .clone();
    assert_eq!(dns.spec.flags, msg::SVC_F_ONEPACKET);
    assert_eq!(dns.dests[&dk("192.0.2.21:53")].fwd, FwdMethod::Route);
}

#[test]
fn same_table_plans_nothing() {
    let d = want(BASE);
    assert_eq!(plan(&d, &applied(&d)), vec![]);
}

/// (what changes in the config, the exact operations expected)
#[test]
fn config_edits_become_exactly_those_operations() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "weight change: edit in place",
            "address = \"10.1.0.12:80\"\nweight = 2",
            "address = \"10.1.0.12:80\"\nweight = 5",
            &["edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 5)"],
        ),
        (
            "scheduler change: edit the service, reals untouched",
            "scheduler = \"wlc\"",
            "scheduler = \"mh\"\nflags = [\"sh-fallback\", \"sh-port\"]",
            &["edit service tcp 192.0.2.10:80 (mh)"],
        ),
        (
            "replace a real: the new one is added before the old one leaves",
            "address = \"10.1.0.12:80\"",
            "address = \"10.1.0.13:80\"",
            &[
                "add real 10.1.0.13:80 to tcp 192.0.2.10:80 (weight 2)",
                "delete real 10.1.0.12:80 from tcp 192.0.2.10:80",
            ],
        ),
        (
            "persistence on: edit in place",
            "forwarding = \"nat\"\nsorry_server",
            "forwarding = \"nat\"\npersistence = { timeout = \"5m\", netmask = 24 }\nsorry_server",
            &["edit service tcp 192.0.2.10:80 (wlc)"],
        ),
        (
            "a new service next to an old one being removed",
            "[service.dns]\nvip = \"192.0.2.11:53\"",
            "[service.dns]\nvip = \"192.0.2.11:5353\"",
            &[
                "add service udp 192.0.2.11:5353 (rr)",
                "add real 192.0.2.21:5353 to udp 192.0.2.11:5353 (weight 1)",
                "add real 192.0.2.22:5353 to udp 192.0.2.11:5353 (weight 1)",
            ],
        ),
    ];
    for (what, from, to, expected) in cases {
        assert!(
            BASE.contains(from),
            "{what}: {from:?} not in the base config"
        );
        let observed = applied(&want(BASE));
        let ops = plan(&want(&BASE.replacen(from, to, 1)), &observed);
        assert_eq!(names(&ops), *expected, "{what}");
        // Applying the plan reaches the desired table: a second plan is empty.
        let mut after = observed.clone();
        ops.iter().for_each(|op| after.apply(op));
        let second = plan(&want(&BASE.replacen(from, to, 1)), &after);
        assert_eq!(second, vec![], "{what}: not converged");
    }
}

#[test]
fn persistence_values_reach_the_spec() {
    let d = want(&BASE.replacen(
        "forwarding = \"nat\"\nsorry_server",
        "forwarding = \"nat\"\npersistence = { timeout = \"5m\", netmask = \"255.255.255.0\" }\nsorry_server",
        1,
    ));
    let s = &d.table[&web()].spec;
    assert_eq!(
        (s.flags, s.timeout, s.netmask),
        (msg::SVC_F_PERSISTENT, 300, 24)
    );
}

#[test]
fn unmanaged_services_follow_the_policy() {
    let mut observed = applied(&want(BASE));
    let foreign = ServiceId::Fwmark {
        af: msg::AF_INET,
        mark: 9,
    };
    observed.table.insert(
        foreign,
        ServiceState {
            spec: ServiceSpec {
                scheduler: "rr".into(),
                flags: 0,
                timeout: 0,
                netmask: 32,
                pe_name: None,
            },
            dests: BTreeMap::new(),
        },
    );
    assert_eq!(plan(&want(BASE), &observed), vec![], "keep is the default");
    let remove = format!("[ipvs]\nunmanaged = \"remove\"\n{BASE}");
    assert_eq!(
        names(&plan(&want(&remove), &observed)),
        ["delete service fwmark 9 (IPv4)"]
    );
}

#[test]
fn a_service_removed_from_the_config_is_deleted_even_with_keep() {
    let before = want(BASE);
    let observed = applied(&before);
    let start = BASE.find("[service.dns]").unwrap();
    let mut after = want(&BASE[..start]);
    // Without knowing it owned the service, keep leaves it...
    assert_eq!(plan(&after, &observed), vec![]);
    // ...with the services of the earlier config as owned, it goes.
    after.owned_before = before.table.keys().copied().collect();
    assert_eq!(
        names(&plan(&after, &observed)),
        ["delete service udp 192.0.2.11:53"]
    );
}

#[test]
fn reals_the_config_does_not_list_are_removed_from_owned_services() {
    let mut observed = applied(&want(BASE));
    observed.table.get_mut(&web()).unwrap().dests.insert(
        dk("10.9.9.9:80"),
        DestSpec {
            fwd: FwdMethod::Masq,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            last_weight: 1,
        },
    );
    assert_eq!(
        names(&plan(&want(BASE), &observed)),
        ["delete real 10.9.9.9:80 from tcp 192.0.2.10:80"]
    );
}

#[test]
fn health_inhibit_remove_and_sorry_server() {
    let c = cfg(BASE);
    let observed = applied(&want(BASE));
    let mut health = RealHealth::default();
    let down = |h: &mut RealHealth, s: &str, a: &str| {
        h.0.insert((s.into(), a.parse().unwrap()), Health::Down);
    };
    // One web real down: inhibit → weight 0, the sorry server stays out.
    down(&mut health, "web", "10.1.0.11:80");
    let d = desired(&c, &health, &Overrides::default(), SyncRole::Master);
    assert_eq!(
        names(&plan(&d, &observed)),
        ["edit real 10.1.0.11:80 of tcp 192.0.2.10:80 (weight 0)"]
    );
    // Both down: the sorry server joins.
    down(&mut health, "web", "10.1.0.12:80");
    // One dns real down: on_failure = remove.
    down(&mut health, "dns", "192.0.2.21:53");
    let d = desired(&c, &health, &Overrides::default(), SyncRole::Master);
    assert_eq!(
        names(&plan(&d, &observed)),
        [
            "add real 10.1.0.99:80 to tcp 192.0.2.10:80 (weight 1)",
            "edit real 10.1.0.11:80 of tcp 192.0.2.10:80 (weight 0)",
            "edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 0)",
            "delete real 192.0.2.21:53 from udp 192.0.2.11:53",
        ]
    );
    // An operator override drains a real.
    let mut o = Overrides::default();
    o.weights
        .insert(("web".into(), "10.1.0.12:80".parse().unwrap()), 0);
    let d = desired(&c, &RealHealth::default(), &o, SyncRole::Master);
    assert_eq!(
        names(&plan(&d, &observed)),
        ["edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 0)"]
    );
}

#[test]
fn local_reals_reported_as_local_are_not_edited_forever() {
    let d = want(BASE);
    let mut observed = applied(&d);
    for s in observed.table.values_mut() {
        for spec in s.dests.values_mut() {
            spec.fwd = FwdMethod::Local;
        }
    }
    assert_eq!(plan(&d, &observed), vec![]);
}

#[test]
fn timeouts_only_when_set_and_different() {
    let text = format!("[ipvs.timeouts]\ntcp = \"2h\"\nudp = \"5m\"\n{BASE}");
    let d = want(&text);
    let mut observed = applied(&want(BASE));
    observed.timeouts = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        plan(&d, &observed),
        vec![Op::SetTimeouts(Timeouts {
            tcp: 7200,
            tcp_fin: 0,
            udp: 0
        })]
    );
    observed.timeouts.tcp = 7200;
    assert_eq!(plan(&d, &observed), vec![]);
}

#[test]
fn sync_daemon_started_restarted_and_left_alone() {
    let text = format!("[ipvs.sync]\ninterface = \"eth0\"\nsync_id = 7\n{BASE}");
    let d = want(&text);
    let mut observed = applied(&want(BASE));
    let ops = plan(&d, &observed);
    assert_eq!(names(&ops), ["start sync daemon (Master, eth0, syncid 7)"]);
    ops.iter().for_each(|o| observed.apply(o));
    // The kernel reports its defaults too; still satisfied.
    observed.daemons[0].max_len = Some(1472);
    assert_eq!(plan(&d, &observed), vec![]);
    // Another sync id: stop, then start.
    let d2 = want(&text.replace("sync_id = 7", "sync_id = 8"));
    assert_eq!(
        names(&plan(&d2, &observed)),
        [
            "stop sync daemon (Master)",
            "start sync daemon (Master, eth0, syncid 8)"
        ]
    );
    // Role change to backup.
    let d3 = desired(
        &cfg(&text),
        &RealHealth::default(),
        &Overrides::default(),
        SyncRole::Backup,
    );
    assert_eq!(
        names(&plan(&d3, &observed)),
        [
            "stop sync daemon (Master)",
            "start sync daemon (Backup, eth0, syncid 7)"
        ]
    );
    // No [ipvs.sync]: keep leaves the running daemon, remove stops it.
    assert_eq!(plan(&want(BASE), &observed), vec![]);
    let remove = format!("[ipvs]\nunmanaged = \"remove\"\n{BASE}");
    assert_eq!(
        names(&plan(&want(&remove), &observed)),
        ["stop sync daemon (Master)"]
    );
}

#[test]
fn fwmark_and_ipv6_services() {
    let text = r#"
[service.marked]
fwmark = 5
family = "ipv6"
scheduler = "sh"
forwarding = "dr"
persistence = { timeout = "1h", netmask = 64 }

[[service.marked.real]]
address = "[2001:db8::21]:80"
"#;
    let d = want(text);
    let id = ServiceId::Fwmark {
        af: msg::AF_INET6,
        mark: 5,
    };
    let s = &d.table[&id];
    assert_eq!((s.spec.timeout, s.spec.netmask), (3600, 64));
    let ops = plan(&d, &KernelState::default());
    assert_eq!(
        names(&ops),
        [
            "add service fwmark 5 (IPv6) (sh)",
            "add real [2001:db8::21]:80 to fwmark 5 (IPv6) (weight 1)"
        ]
    );
    // The message for the service carries AF_INET6 and the prefix length in host order.
    let m = ops[0].message();
    let e = msg::ServiceEntry::from_attrs(m.service().unwrap()).unwrap();
    assert_eq!(e.netmask, 64);
}

#[test]
fn a_one_real_change_is_one_operation_in_a_large_table() {
    let vips: Vec<String> = (0..200u32)
        .map(|i| format!("\"10.{}.{}.1/32\"", i / 256, i % 256))
        .collect();
    let mut text = format!(
        "[vrrp.instance.V]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [{}]\n",
        vips.join(", ")
    );
    for i in 0..200u32 {
        text += &format!(
            "[service.s{i}]\nvip = \"10.{}.{}.1:80\"\nscheduler = \"wrr\"\nforwarding = \"dr\"\n",
            i / 256,
            i % 256
        );
        for r in 0..10 {
            text += &format!(
                "[[service.s{i}.real]]\naddress = \"172.16.{}.{r}\"\n",
                i % 256
            );
        }
    }
    let d = want(&text);
    let observed = applied(&d);
    assert_eq!(observed.dest_count(), 2000);
    let changed = text.replacen(
        "address = \"172.16.7.3\"",
        "address = \"172.16.7.3\"\nweight = 9",
        1,
    );
    assert_eq!(plan(&want(&changed), &observed).len(), 1);
}

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn pool_config() -> Config {
    let mut text = String::from(
        "[vrrp.instance.V]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"192.0.2.10/24\"]\n",
    );
    for i in 0..6 {
        text += &format!(
            "[service.s{i}]\nvip = \"192.0.2.10:{}\"\nsorry_server = \"10.9.9.9:80\"\n",
            8000 + i
        );
        for r in 1..=3 {
            text += &format!("[[service.s{i}.real]]\naddress = \"10.0.{i}.{r}:80\"\n");
        }
    }
    cfg(&text)
}

/// One random edit of the kind a reload or an input change brings: the edited services get
/// a new `Arc`, the others keep theirs, as the config loader does.
fn edit(rng: &mut Rng, c: &mut Config, health: &mut RealHealth, ov: &mut Overrides) -> String {
    let names: Vec<String> = c.services.keys().cloned().collect();
    let pick = |rng: &mut Rng| names[rng.below(names.len() as u64) as usize].clone();
    let real_of = |rng: &mut Rng, c: &Config, n: &str| {
        let s = &c.services[n];
        (!s.reals.is_empty()).then(|| s.reals[rng.below(s.reals.len() as u64) as usize].addr)
    };
    match rng.below(9) {
        0 => {
            let n = pick(rng);
            let s = Arc::make_mut(Arc::make_mut(&mut c.services).get_mut(&n).unwrap());
            if let Some(r) = s.reals.first_mut() {
                r.weight = rng.below(5) as u32;
            }
            format!("weight in {n}")
        }
        1 => {
            let n = pick(rng);
            let s = Arc::make_mut(Arc::make_mut(&mut c.services).get_mut(&n).unwrap());
            let addr: SocketAddr = format!("10.1.{}.{}:80", rng.below(4), rng.below(200) + 1)
                .parse()
                .unwrap();
            if !s.reals.iter().any(|r| r.addr == addr) {
                let mut r = s.reals.first().cloned().unwrap_or(config::Real {
                    addr,
                    weight: 1,
                    forwarding: config::Forwarding::Nat,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    check: None,
                });
                r.addr = addr;
                s.reals.push(r);
            }
            format!("real added to {n}")
        }
        2 => {
            let n = pick(rng);
            let s = Arc::make_mut(Arc::make_mut(&mut c.services).get_mut(&n).unwrap());
            s.reals.pop();
            format!("real removed from {n}")
        }
        3 if names.len() > 1 => {
            let n = pick(rng);
            Arc::make_mut(&mut c.services).remove(&n);
            format!("{n} removed")
        }
        4 => {
            // Two services swap their VIPs (and so their kernel identities).
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                let ka = c.services[&a].key;
                let kb = c.services[&b].key;
                Arc::make_mut(Arc::make_mut(&mut c.services).get_mut(&a).unwrap()).key = kb;
                Arc::make_mut(Arc::make_mut(&mut c.services).get_mut(&b).unwrap()).key = ka;
            }
            format!("{a} and {b} swap keys")
        }
        5 => {
            let n = pick(rng);
            if let Some(addr) = real_of(rng, c, &n) {
                let k = (n.clone(), addr);
                if health.0.remove(&k).is_none() {
                    health.0.insert(k, Health::Down);
                }
            }
            format!("health in {n}")
        }
        6 => {
            let n = pick(rng);
            if let Some(addr) = real_of(rng, c, &n) {
                let k = (n.clone(), addr);
                if ov.weights.remove(&k).is_none() {
                    ov.weights.insert(k, 0);
                }
            }
            format!("drain in {n}")
        }
        7 => {
            c.ipvs.unmanaged = match c.ipvs.unmanaged {
                config::UnmanagedPolicy::Keep => config::UnmanagedPolicy::Remove,
                config::UnmanagedPolicy::Remove => config::UnmanagedPolicy::Keep,
            };
            "unmanaged policy".into()
        }
        _ => {
            // A new service on a port nobody uses.
            let i = 100 + rng.below(50);
            let n = format!("n{i}");
            let key = config::ServiceKey::Addr {
                protocol: config::Protocol::Tcp,
                addr: format!("192.0.2.10:{}", 9000 + i).parse().unwrap(),
            };
            if !c.services.values().any(|s| s.key == key) && !c.services.contains_key(&n) {
                let mut s = (*c.services.values().next().unwrap().clone()).clone();
                s.name = n.clone();
                s.key = key;
                Arc::make_mut(&mut c.services).insert(n.clone(), Arc::new(s));
            }
            format!("{n} added")
        }
    }
}

#[test]
fn kept_desired_and_scoped_plans_match_the_full_computation() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut c = pool_config();
        let (mut health, mut ov) = (RealHealth::default(), Overrides::default());
        let mut kept = KeptDesired::new();
        let mut kernel = KernelState::default();
        // A service lbd does not own: the unmanaged policy decides about it.
        kernel.table.insert(
            ServiceId::Addr {
                protocol: msg::IPPROTO_TCP,
                addr: "198.51.100.1".parse().unwrap(),
                port: 1,
            },
            ServiceState {
                spec: ServiceSpec {
                    scheduler: "wlc".into(),
                    flags: 0,
                    timeout: 0,
                    netmask: 32,
                    pe_name: None,
                },
                dests: BTreeMap::new(),
            },
        );
        let mut history = Vec::new();
        for step in 0..60 {
            let role = if rng.below(4) == 0 {
                SyncRole::Backup
            } else {
                SyncRole::Master
            };
            let scope = kept.update(&c, &health, &ov, role);
            let full = desired(&c, &health, &ov, role);
            assert_eq!(
                kept.desired(),
                &full,
                "seed {seed} step {step} after {history:?}"
            );
            let ops = plan_in(kept.desired(), &kernel, &scope);
            assert_eq!(
                ops,
                plan(&full, &kernel),
                "seed {seed} step {step} after {history:?}"
            );
            if let Scope::Services(ids) = &scope {
                assert!(ids.len() <= 4, "{ids:?}: more than the edit touched");
            }
            let mut all_at_once = kernel.clone();
            all_at_once.apply_all(&ops);
            for op in &ops {
                kernel.apply(op);
            }
            assert_eq!(all_at_once, kernel, "seed {seed} step {step}: apply_all");
            assert!(plan(&full, &kernel).is_empty());
            history.push(edit(&mut rng, &mut c, &mut health, &mut ov));
        }
    }
}

#[test]
fn a_one_real_change_is_planned_over_its_service_alone() {
    let mut c = pool_config();
    let mut kept = KeptDesired::new();
    let none = (RealHealth::default(), Overrides::default());
    assert_eq!(
        kept.update(&c, &none.0, &none.1, SyncRole::Master),
        Scope::All
    );
    let mut kernel = KernelState::default();
    for op in plan_in(kept.desired(), &kernel, &Scope::All) {
        kernel.apply(&op);
    }
    assert_eq!(
        kept.update(&c, &none.0, &none.1, SyncRole::Master),
        Scope::Services(BTreeSet::new()),
        "nothing changed, nothing to look at"
    );
    Arc::make_mut(Arc::make_mut(&mut c.services).get_mut("s3").unwrap()).reals[1].weight = 7;
    let scope = kept.update(&c, &none.0, &none.1, SyncRole::Master);
    let s3 = service_id(&c.services["s3"].key);
    assert_eq!(scope, Scope::Services(BTreeSet::from([s3])));
    assert_eq!(
        names(&plan_in(kept.desired(), &kernel, &scope)),
        ["edit real 10.0.3.2:80 of tcp 192.0.2.10:8003 (weight 7)"]
    );
    kept.forget();
    assert_eq!(
        kept.update(&c, &none.0, &none.1, SyncRole::Master),
        Scope::All
    );
}

/// The reconcile step as the subsystem runs it, with the clock passed in: desired state from
/// the config, drains over it, then the plan; the plan is applied to `kernel`.
struct DrainRig {
    kept: KeptDesired,
    drains: Drains,
    kernel: KernelState,
    t0: std::time::Instant,
}

impl DrainRig {
    fn new(text: &str) -> DrainRig {
        let mut rig = DrainRig {
            kept: KeptDesired::new(),
            drains: Drains::new(),
            kernel: KernelState::default(),
            t0: std::time::Instant::now(),
        };
        let ops = rig.reconcile(&cfg(text), 0);
        assert!(!ops.is_empty());
        rig
    }

    fn at(&self, secs: u64) -> std::time::Instant {
        self.t0 + std::time::Duration::from_secs(secs)
    }

    /// A reload (or any input) at `secs`: returns the operations, applied to the kernel.
    fn reconcile(&mut self, c: &Config, secs: u64) -> Vec<String> {
        let (none_h, none_o) = (RealHealth::default(), Overrides::default());
        let scope = self.kept.update(c, &none_h, &none_o, SyncRole::Master);
        self.plan_and_apply(c, scope, secs)
    }

    fn plan_and_apply(&mut self, c: &Config, scope: Scope, secs: u64) -> Vec<String> {
        let now = self.at(secs);
        self.drains.update(
            self.kept.desired_mut(),
            c,
            &self.kernel,
            &scope,
            now,
            c.ipvs.removal_drain,
        );
        let ops = plan_in(self.kept.desired(), &self.kernel, &scope);
        ops.iter().for_each(|op| self.kernel.apply(op));
        self.drains.prune(&self.kernel);
        // Whatever the scope, the kernel is now what is desired.
        assert_eq!(plan(self.kept.desired(), &self.kernel), vec![]);
        names(&ops)
    }

    /// The periodic check at `secs` with these connection counts.
    fn check(&mut self, c: &Config, counts: &[(&str, u32, u32)], secs: u64) -> Vec<String> {
        let counts: ConnCounts = counts
            .iter()
            .map(|(a, act, inact)| ((web(), dk(a)), (*act, *inact)))
            .collect();
        let now = self.at(secs);
        let (services, _) =
            self.drains
                .finish(self.kept.desired_mut(), &counts, now, c.ipvs.removal_drain);
        if services.is_empty() {
            return Vec::new();
        }
        let mut scope = self.kept.update(
            c,
            &RealHealth::default(),
            &Overrides::default(),
            SyncRole::Master,
        );
        if let Scope::Services(ids) = &mut scope {
            ids.extend(services);
        }
        self.plan_and_apply(c, scope, secs)
    }
}

const REMOVED: &str = "[[service.web.real]]\naddress = \"10.1.0.12:80\"\nweight = 2\n";

fn without_real(text: &str) -> String {
    assert!(text.contains(REMOVED));
    text.replacen(REMOVED, "", 1)
}

#[test]
fn removal_drain_defaults_to_60s_and_is_validated() {
    assert_eq!(
        cfg(BASE).ipvs.removal_drain,
        std::time::Duration::from_secs(60)
    );
    let c = cfg(&format!("[ipvs]\nremoval_drain = \"5m\"\n{BASE}"));
    assert_eq!(c.ipvs.removal_drain, std::time::Duration::from_secs(300));
    let c = cfg(&format!("[ipvs]\nremoval_drain = \"0s\"\n{BASE}"));
    assert!(c.ipvs.removal_drain.is_zero());
    let e = match config::parse(
        "test.toml",
        &format!("[ipvs]\nremoval_drain = \"2d\"\n{BASE}"),
    ) {
        Ok(_) => panic!("over the limit, yet accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("bad-removal-drain"), "{e}");
    assert!(
        e.contains("removal_drain 172800s is over the limit of 1d"),
        "{e}"
    );
}

#[test]
fn a_removed_real_drains_at_weight_0_and_is_deleted_once_empty() {
    let mut rig = DrainRig::new(BASE);
    let removed = cfg(&without_real(BASE));
    assert_eq!(
        rig.reconcile(&removed, 1),
        ["edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 0)"],
        "weight 0, not a delete"
    );
    assert!(rig.drains.any_active());
    // Connections left: nothing happens.
    assert_eq!(rig.check(&removed, &[("10.1.0.12:80", 3, 1)], 2), [""; 0]);
    assert_eq!(rig.check(&removed, &[("10.1.0.12:80", 0, 1)], 3), [""; 0]);
    // Another reload meanwhile keeps it draining.
    let other = cfg(&without_real(BASE).replacen("weight = 3", "weight = 4", 1));
    assert_eq!(
        rig.reconcile(&other, 4),
        ["edit real 10.1.0.11:80 of tcp 192.0.2.10:80 (weight 4)"]
    );
    // No active and no inactive connections: deleted.
    assert_eq!(
        rig.check(&other, &[("10.1.0.12:80", 0, 0)], 5),
        ["delete real 10.1.0.12:80 from tcp 192.0.2.10:80"]
    );
    assert!(!rig.drains.any_active());
    // A later reload does not drain it again.
    assert_eq!(
        rig.reconcile(&removed, 6),
        ["edit real 10.1.0.11:80 of tcp 192.0.2.10:80 (weight 3)"]
    );
    assert!(!rig.drains.any_active());
}

#[test]
fn a_drain_times_out() {
    let text = format!("[ipvs]\nremoval_drain = \"30s\"\n{BASE}");
    let mut rig = DrainRig::new(&text);
    let removed = cfg(&without_real(&text));
    rig.reconcile(&removed, 0);
    assert_eq!(rig.check(&removed, &[("10.1.0.12:80", 5, 2)], 29), [""; 0]);
    let mut d = rig.kept.desired().clone();
    let (services, events) = rig.drains.clone().finish(
        &mut d,
        &[((web(), dk("10.1.0.12:80")), (5, 2))].into(),
        rig.at(30),
        removed.ipvs.removal_drain,
    );
    assert_eq!(services, BTreeSet::from([web()]));
    assert_eq!(
        events,
        [DrainEvent::Ended {
            service: "web".into(),
            real: dk("10.1.0.12:80"),
            why: DrainEnd::TimedOut,
            after: std::time::Duration::from_secs(30),
            active: 5,
            inactive: 2,
        }]
    );
    assert_eq!(
        rig.check(&removed, &[("10.1.0.12:80", 5, 2)], 30),
        ["delete real 10.1.0.12:80 from tcp 192.0.2.10:80"]
    );
}

#[test]
fn a_draining_real_added_back_gets_its_weight_in_place() {
    let mut rig = DrainRig::new(BASE);
    rig.reconcile(&cfg(&without_real(BASE)), 1);
    let mut d = rig.kept.desired().clone();
    let mut drains = rig.drains.clone();
    let back = cfg(BASE);
    let events = drains.update(
        &mut d,
        &back,
        &rig.kernel,
        &Scope::All,
        rig.at(2),
        back.ipvs.removal_drain,
    );
    assert_eq!(
        events,
        [DrainEvent::Readded {
            service: "web".into(),
            real: dk("10.1.0.12:80")
        }]
    );
    assert_eq!(
        rig.reconcile(&back, 2),
        ["edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 2)"],
        "no delete + add"
    );
    assert!(!rig.drains.any_active());
    // The old drain's check finds nothing to delete.
    assert_eq!(rig.check(&back, &[("10.1.0.12:80", 0, 0)], 3), [""; 0]);
}

#[test]
fn a_deleted_service_is_deleted_not_drained() {
    let mut rig = DrainRig::new(BASE);
    rig.reconcile(&cfg(&without_real(BASE)), 1);
    assert!(rig.drains.any_active());
    // The whole web service goes: its connections go with it, as before.
    let start = BASE.find("[service.web]").unwrap();
    let end = BASE.find("[service.dns]").unwrap();
    let text = format!("{}{}", &BASE[..start], &BASE[end..]);
    let c = cfg(&text);
    let (none_h, none_o) = (RealHealth::default(), Overrides::default());
    let scope = rig.kept.update(&c, &none_h, &none_o, SyncRole::Master);
    rig.kept
        .set_owned_before(BTreeSet::from([web(), service_id(&c.services["dns"].key)]));
    assert_eq!(
        rig.plan_and_apply(&c, scope, 2),
        ["delete service tcp 192.0.2.10:80"]
    );
    assert!(!rig.drains.any_active());
}

#[test]
fn removal_drain_0_deletes_at_once() {
    let text = format!("[ipvs]\nremoval_drain = \"0s\"\n{BASE}");
    let mut rig = DrainRig::new(&text);
    assert_eq!(
        rig.reconcile(&cfg(&without_real(&text)), 1),
        ["delete real 10.1.0.12:80 from tcp 192.0.2.10:80"]
    );
    assert!(!rig.drains.any_active());
}

#[test]
fn a_replaced_real_drains_after_the_new_one_is_in() {
    let mut rig = DrainRig::new(BASE);
    let c = cfg(&BASE.replacen(
        "address = \"10.1.0.12:80\"",
        "address = \"10.1.0.13:80\"",
        1,
    ));
    assert_eq!(
        rig.reconcile(&c, 1),
        [
            "add real 10.1.0.13:80 to tcp 192.0.2.10:80 (weight 2)",
            "edit real 10.1.0.12:80 of tcp 192.0.2.10:80 (weight 0)",
        ]
    );
}

#[test]
fn health_removal_and_the_sorry_server_are_not_drained() {
    let mut rig = DrainRig::new(BASE);
    let c = cfg(BASE);
    // on_failure = "remove": the operator chose removal, the real leaves at once.
    let mut health = RealHealth::default();
    health.0.insert(
        ("dns".into(), "192.0.2.21:53".parse().unwrap()),
        Health::Down,
    );
    let scope = rig
        .kept
        .update(&c, &health, &Overrides::default(), SyncRole::Master);
    assert_eq!(
        rig.plan_and_apply(&c, scope, 1),
        ["delete real 192.0.2.21:53 from udp 192.0.2.11:53"]
    );
    // The sorry server leaves when a real serves again, as before.
    for a in ["10.1.0.11:80", "10.1.0.12:80"] {
        health
            .0
            .insert(("web".into(), a.parse().unwrap()), Health::Down);
    }
    let scope = rig
        .kept
        .update(&c, &health, &Overrides::default(), SyncRole::Master);
    rig.plan_and_apply(&c, scope, 2);
    health.0.clear();
    let scope = rig
        .kept
        .update(&c, &health, &Overrides::default(), SyncRole::Master);
    let ops = rig.plan_and_apply(&c, scope, 3);
    assert!(
        ops.contains(&"delete real 10.1.0.99:80 from tcp 192.0.2.10:80".to_string()),
        "{ops:?}"
    );
    assert!(!rig.drains.any_active());
}

#[test]
fn after_a_restart_unlisted_destinations_of_owned_services_drain_afresh() {
    // The kernel as a stopped lbd left it: 10.1.0.12 draining at weight 0, and 10.1.0.13
    // removed from the config while lbd was down.
    let mut kernel = applied(&want(&without_real(BASE)));
    let dests = &mut kernel.table.get_mut(&web()).unwrap().dests;
    let spec = |weight| DestSpec {
        fwd: FwdMethod::Masq,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        last_weight: weight,
    };
    dests.insert(dk("10.1.0.12:80"), spec(0));
    dests.insert(dk("10.1.0.13:80"), spec(5));
    let c = cfg(&without_real(BASE));
    let mut rig = DrainRig {
        kept: KeptDesired::new(),
        drains: Drains::new(),
        kernel,
        t0: std::time::Instant::now(),
    };
    // Adopted: the restarted lbd plans over everything, and nothing is deleted.
    assert_eq!(
        rig.reconcile(&c, 100),
        ["edit real 10.1.0.13:80 of tcp 192.0.2.10:80 (weight 0)"]
    );
    let draining: Vec<_> = rig
        .drains
        .active()
        .map(|((_, k), d)| (*k, d.started))
        .collect();
    assert_eq!(
        draining,
        [
            (dk("10.1.0.12:80"), rig.at(100)),
            (dk("10.1.0.13:80"), rig.at(100))
        ],
        "a fresh timeout from the restart"
    );
    assert_eq!(
        rig.check(&c, &[("10.1.0.12:80", 0, 0), ("10.1.0.13:80", 1, 0)], 101),
        ["delete real 10.1.0.12:80 from tcp 192.0.2.10:80"]
    );
    assert_eq!(rig.check(&c, &[("10.1.0.13:80", 1, 0)], 159), [""; 0]);
    assert_eq!(
        rig.check(&c, &[("10.1.0.13:80", 1, 0)], 160),
        ["delete real 10.1.0.13:80 from tcp 192.0.2.10:80"]
    );
}

/// Operations write themselves out exactly as their messages do: the destination operations
/// skip building the message, so each kind is compared byte for byte, for both families and
/// for a fwmark service.
#[test]
fn operations_write_the_bytes_of_their_messages() {
    use crate::ipvs::msg::Request;
    let services = [
        ServiceId::Addr {
            protocol: msg::IPPROTO_TCP,
            addr: "192.0.2.10".parse().unwrap(),
            port: 80,
        },
        ServiceId::Addr {
            protocol: msg::IPPROTO_UDP,
            addr: "2001:db8::10".parse().unwrap(),
            port: 53,
        },
        ServiceId::Fwmark {
            af: msg::AF_INET,
            mark: 7,
        },
    ];
    let key = DestKey {
        addr: "10.1.0.11".parse().unwrap(),
        port: 8080,
    };
    let dest = DestSpec {
        fwd: FwdMethod::Route,
        weight: 3,
        upper_threshold: 100,
        lower_threshold: 10,
        last_weight: 3,
    };
    let service = ServiceSpec {
        scheduler: "mh".into(),
        flags: 0,
        timeout: 300,
        netmask: 24,
        pe_name: None,
    };
    for id in services {
        for op in [
            Op::AddService(id, service.clone()),
            Op::EditService(id, service.clone()),
            Op::AddDest(id, key, dest),
            Op::EditDest(id, key, dest),
            Op::DelDest(id, key),
            Op::DelService(id),
            Op::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 0,
                udp: 0,
            }),
        ] {
            let m = op.message();
            let (mut want, mut got) = (Vec::new(), Vec::new());
            m.emit_attrs(&mut want);
            Request::emit_attrs(&op, &mut got);
            assert_eq!((Request::cmd(&op), got), (m.cmd, want), "{op}");
        }
    }
}
