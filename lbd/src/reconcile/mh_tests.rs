//! `mh` services: the canonical order and the slots of down reals, checked against a kernel
//! written here from `ip_vs_ctl.c` (independent of [`KernelState::apply`]) over many random
//! histories, and two boxes with different histories ending with the same table.

use super::order::{canonical, is_canonical, DestList};
use super::*;
use crate::config;
use crate::config::Config;
use crate::ipvs::msg::{self, DestEntry, ServiceId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One destination as the kernel keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KDest {
    key: DestKey,
    weight: u32,
    last_weight: u32,
}

/// The kernel side of what a plan does: services with their destination lists (head first),
/// by the rules of `ip_vs_ctl.c` (add: `list_add_rcu` at the head, `last_weight` set; edit:
/// in place, `last_weight` kept when the weight is 0; delete: unlinked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Kernel {
    services: BTreeMap<ServiceId, (ServiceSpec, Vec<KDest>)>,
}

impl Kernel {
    /// Carries out `op`; `Err` as the kernel would refuse it (EEXIST / ENOENT).
    fn exec(&mut self, op: &Op) -> Result<(), &'static str> {
        match op {
            Op::SetTimeouts(_) | Op::StopDaemon(_) | Op::StartDaemon(_) => Ok(()),
            Op::AddService(id, spec) => {
                if self.services.contains_key(id) {
                    return Err("EEXIST");
                }
                self.services.insert(*id, (spec.clone(), Vec::new()));
                Ok(())
            }
            Op::EditService(id, spec) => {
                let s = self.services.get_mut(id).ok_or("ENOENT")?;
                s.0 = spec.clone();
                Ok(())
            }
            Op::DelService(id) => self.services.remove(id).map(|_| ()).ok_or("ENOENT"),
            Op::AddDest(id, k, d) => {
                let s = self.services.get_mut(id).ok_or("ENOENT")?;
                if s.1.iter().any(|x| x.key == *k) {
                    return Err("EEXIST");
                }
                s.1.insert(
                    0,
                    KDest {
                        key: *k,
                        weight: d.weight,
                        last_weight: d.weight,
                    },
                );
                Ok(())
            }
            Op::EditDest(id, k, d) => {
                let s = self.services.get_mut(id).ok_or("ENOENT")?;
                let x = s.1.iter_mut().find(|x| x.key == *k).ok_or("ENOENT")?;
                if d.weight != 0 {
                    x.last_weight = d.weight;
                }
                x.weight = d.weight;
                Ok(())
            }
            Op::DelDest(id, k) => {
                let s = self.services.get_mut(id).ok_or("ENOENT")?;
                let before = s.1.len();
                s.1.retain(|x| x.key != *k);
                if s.1.len() == before {
                    return Err("ENOENT");
                }
                Ok(())
            }
        }
    }

    /// What lbd reads when it adopts the table: a dump (no `last_weight` in it).
    fn dump(&self) -> KernelState {
        let mut k = KernelState::default();
        for (id, (spec, dests)) in &self.services {
            let entries: Vec<(DestKey, DestSpec)> = dests
                .iter()
                .map(|d| {
                    DestSpec::from_entry(&DestEntry::new(
                        d.key.addr,
                        d.key.port,
                        msg::FwdMethod::Masq,
                        d.weight,
                    ))
                })
                .collect();
            k.lists
                .insert(*id, DestList::from_dump(entries.iter().map(|(k, _)| *k)));
            k.table.insert(
                *id,
                ServiceState {
                    spec: ServiceSpec::from_entry(&spec.entry(id)),
                    dests: entries.into_iter().collect(),
                },
            );
        }
        k
    }

    fn list(&self, id: &ServiceId) -> Vec<DestKey> {
        self.services[id].1.iter().map(|d| d.key).collect()
    }
}

fn svc_id(port: u16) -> ServiceId {
    ServiceId::Addr {
        protocol: msg::IPPROTO_TCP,
        addr: "192.0.2.10".parse().unwrap(),
        port,
    }
}

fn cfg(text: &str) -> Config {
    match config::parse("test.toml", text) {
        Ok(l) => l.config,
        Err(e) => panic!("{e}"),
    }
}

const HEAD: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]
"#;

fn mh_service(name: &str, port: u16, reals: &[(&str, u32)]) -> String {
    let mut t = format!(
        "[service.{name}]\nvip = \"192.0.2.10:{port}\"\nscheduler = \"mh\"\nflags = [\"mh-port\", \"mh-fallback\"]\nforwarding = \"nat\"\nsorry_server = \"10.9.9.9:80\"\n"
    );
    for (a, w) in reals {
        t += &format!("[[service.{name}.real]]\naddress = \"{a}\"\nweight = {w}\n");
    }
    t
}

/// The candidate reals: several ports on one address, and addresses whose text order is not
/// their numeric order.
const POOL: [&str; 9] = [
    "10.0.0.1:80",
    "10.0.0.2:80",
    "10.0.0.2:8080",
    "10.0.0.10:80",
    "10.0.0.100:80",
    "10.0.1.3:80",
    "172.16.0.5:80",
    "9.9.9.9:80",
    "10.0.0.20:80",
];

/// The reconcile step as the subsystem runs it (desired, drains, plan), against [`Kernel`]:
/// lbd's own view is kept up to date by [`KernelState::apply`] and read again from a dump
/// when lbd "restarts".
struct Box1 {
    config: Config,
    health: RealHealth,
    overrides: Overrides,
    kept: KeptDesired,
    drains: Drains,
    view: KernelState,
    kernel: Kernel,
    t0: Instant,
    secs: u64,
    history: Vec<String>,
}

impl Box1 {
    fn new(config: Config) -> Box1 {
        Box1 {
            config,
            health: RealHealth::default(),
            overrides: Overrides::default(),
            kept: KeptDesired::new(),
            drains: Drains::new(),
            view: KernelState::default(),
            kernel: Kernel::default(),
            t0: Instant::now(),
            secs: 0,
            history: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_secs(self.secs)
    }

    fn run(&mut self, ops: Vec<Op>) {
        for op in &ops {
            self.kernel
                .exec(op)
                .unwrap_or_else(|e| panic!("{op}: {e} after {:?}", self.history));
            self.view.apply(op);
        }
        self.drains.prune(&self.view);
    }

    fn reconcile(&mut self) -> Vec<Op> {
        // A new KeptDesired (a restart) plans over everything, as the subsystem does after
        // adopting the table.
        let scope = self.kept.update(
            &self.config,
            &self.health,
            &self.overrides,
            SyncRole::Master,
        );
        let now = self.now();
        let timeout = self.config.ipvs.removal_drain;
        self.drains.update(
            self.kept.desired_mut(),
            &self.config,
            &self.view,
            &scope,
            now,
            timeout,
        );
        let ops = plan_in(self.kept.desired(), &self.view, &scope);
        self.run(ops.clone());
        ops
    }

    /// The drains end (every real reports no connections left).
    fn finish_drains(&mut self) {
        let now = self.now();
        let (services, _) = self.drains.finish(
            self.kept.desired_mut(),
            &ConnCounts::new(),
            now,
            self.config.ipvs.removal_drain,
        );
        if !services.is_empty() {
            let ops = plan_in(self.kept.desired(), &self.view, &Scope::Services(services));
            self.run(ops);
        }
    }

    /// lbd restarts: everything in memory is gone, the kernel table stays.
    fn restart(&mut self) {
        self.kept = KeptDesired::new();
        self.drains = Drains::new();
        self.view = self.kernel.dump();
        self.health = RealHealth::default();
        self.overrides = Overrides::default();
    }

    /// The kernel holds what lbd wants, in the canonical order, with the slots of every
    /// destination (its `last_weight`) those it has when up.
    fn assert_ideal(&self) {
        let desired = self.kept.desired();
        for (id, want) in desired
            .table
            .iter()
            .filter(|(_, s)| s.spec.scheduler == "mh")
        {
            let list = self.kernel.list(id);
            assert!(
                is_canonical(&list),
                "{id}: {list:?} after {:?}",
                self.history
            );
            assert_eq!(
                list,
                canonical(want.dests.keys()),
                "after {:?}",
                self.history
            );
            assert_eq!(
                self.view.order_of(id),
                list,
                "lbd's view of the order after {:?}",
                self.history
            );
            for d in &self.kernel.services[id].1 {
                let w = &want.dests[&d.key];
                assert_eq!(d.weight, w.weight, "{} after {:?}", d.key, self.history);
                // A drain adopted after a restart wants the slots it has, which lbd cannot
                // read (0).
                if w.last_weight != 0 {
                    assert_eq!(
                        d.last_weight, w.last_weight,
                        "slots of {} after {:?}",
                        d.key, self.history
                    );
                }
            }
        }
        assert_eq!(
            plan(desired, &self.view),
            vec![],
            "nothing left to do after {:?}",
            self.history
        );
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One random change of the kind a box lives through.
fn step(rng: &mut Rng, b: &mut Box1) {
    let names: Vec<String> = b.config.services.keys().cloned().collect();
    let name = names[rng.below(names.len() as u64) as usize].clone();
    let reals: Vec<SocketAddr> = b.config.services[&name]
        .reals
        .iter()
        .map(|r| r.addr)
        .collect();
    // Only called when the service has reals.
    let pick = |rng: &mut Rng| reals[rng.below(reals.len() as u64) as usize];
    let what = match rng.below(10) {
        0 | 1 => {
            let a = addr(POOL[rng.below(POOL.len() as u64) as usize]);
            let s = Arc::make_mut(
                Arc::make_mut(&mut b.config.services)
                    .get_mut(&name)
                    .unwrap(),
            );
            if !s.reals.iter().any(|r| r.addr == a) {
                let mut r = s.reals.first().cloned().unwrap_or(config::Real {
                    addr: a,
                    weight: 1,
                    forwarding: config::Forwarding::Nat,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    check: None,
                });
                r.addr = a;
                r.weight = 1 + rng.below(4) as u32;
                // Anywhere in the config's list: its order means nothing.
                let at = rng.below(s.reals.len() as u64 + 1) as usize;
                s.reals.insert(at, r);
            }
            format!("add {a} to {name}")
        }
        2 if !reals.is_empty() => {
            let a = pick(rng);
            let s = Arc::make_mut(
                Arc::make_mut(&mut b.config.services)
                    .get_mut(&name)
                    .unwrap(),
            );
            s.reals.retain(|r| r.addr != a);
            format!("remove {a} from {name}")
        }
        3 if !reals.is_empty() => {
            let a = pick(rng);
            let w = rng.below(5) as u32;
            let s = Arc::make_mut(
                Arc::make_mut(&mut b.config.services)
                    .get_mut(&name)
                    .unwrap(),
            );
            s.reals.iter_mut().find(|r| r.addr == a).unwrap().weight = w;
            format!("weight {w} for {a} in {name}")
        }
        4 | 5 if !reals.is_empty() => {
            let a = pick(rng);
            let k = (name.clone(), a);
            if b.health.0.remove(&k).is_none() {
                b.health.0.insert(k, Health::Down);
                format!("{a} of {name} down")
            } else {
                format!("{a} of {name} up")
            }
        }
        6 if !reals.is_empty() => {
            let a = pick(rng);
            let k = (name.clone(), a);
            if b.overrides.weights.remove(&k).is_none() {
                b.overrides.weights.insert(k, 0);
                format!("operator drains {a} of {name}")
            } else {
                format!("operator undrains {a} of {name}")
            }
        }
        7 => {
            b.secs += 1;
            b.finish_drains();
            "drains end".into()
        }
        8 if rng.below(3) == 0 => {
            b.restart();
            "restart".into()
        }
        _ => "reload".into(),
    };
    b.history.push(what);
}

fn two_services() -> Config {
    let mut t = HEAD.to_string();
    t += &mh_service("a", 80, &[("10.0.0.1:80", 1), ("10.0.0.2:80", 2)]);
    t += &mh_service("b", 81, &[("10.0.0.100:80", 3)]);
    // A service of another scheduler beside them keeps the plain plan.
    t += "[service.w]\nvip = \"192.0.2.10:82\"\nscheduler = \"wlc\"\n[[service.w.real]]\naddress = \"10.0.0.2:80\"\n";
    cfg(&t)
}

#[test]
fn random_histories_end_in_the_canonical_order_with_the_slots_of_up_reals() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut b = Box1::new(two_services());
        b.reconcile();
        b.assert_ideal();
        for _ in 0..80 {
            step(&mut rng, &mut b);
            b.reconcile();
            b.assert_ideal();
        }
    }
}

#[test]
fn two_boxes_with_different_histories_hold_the_same_table() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut one = Box1::new(two_services());
        let mut two = Box1::new(two_services());
        for b in [&mut one, &mut two] {
            b.reconcile();
            for _ in 0..rng.below(60) {
                step(&mut rng, b);
                b.reconcile();
            }
        }
        // Then both get the same config, health and overrides, and their drains end.
        let last = two_services();
        let mut final_cfg = last.clone();
        {
            let a = Arc::make_mut(Arc::make_mut(&mut final_cfg.services).get_mut("a").unwrap());
            a.reals.clear();
            for (s, w) in [
                ("10.0.0.20:80", 2),
                ("10.0.0.2:8080", 1),
                ("9.9.9.9:80", 1),
                ("10.0.1.3:80", 5),
            ] {
                let mut r = last.services["a"].reals[0].clone();
                r.addr = addr(s);
                r.weight = w;
                a.reals.push(r);
            }
        }
        let mut health = RealHealth::default();
        health
            .0
            .insert(("a".into(), addr("9.9.9.9:80")), Health::Down);
        for b in [&mut one, &mut two] {
            b.config = final_cfg.clone();
            b.health = health.clone();
            b.overrides = Overrides::default();
            b.history.push("final config".into());
            b.reconcile();
            b.secs += 1;
            b.finish_drains();
            b.reconcile();
            b.assert_ideal();
        }
        // The mh services (the wlc one keeps whatever order its history gave it).
        for port in [80, 81] {
            assert_eq!(
                one.kernel.services[&svc_id(port)],
                two.kernel.services[&svc_id(port)],
                "seed {seed}: {:?} vs {:?}",
                one.history,
                two.history
            );
        }
        // The down real keeps its place at weight 0, with the slots of weight 1.
        let a = &one.kernel.services[&svc_id(80)].1;
        let down = a
            .iter()
            .find(|d| d.key.port == 80 && d.key.addr.to_string() == "9.9.9.9")
            .unwrap();
        assert_eq!((down.weight, down.last_weight), (0, 1));
    }
}

/// (history of configs as real lists, health changes applied after each; the exact operations
/// of the last step)
#[test]
fn exact_operations() {
    let base = |reals: &[(&str, u32)]| {
        let mut t = HEAD.to_string();
        t += &mh_service("a", 80, reals);
        cfg(&t)
    };
    let names = |ops: &[Op]| ops.iter().map(|o| o.to_string()).collect::<Vec<_>>();
    let id = "tcp 192.0.2.10:80";

    // A new service: added in ascending order, so the kernel lists them descending.
    let mut b = Box1::new(base(&[
        ("10.0.0.2:80", 1),
        ("10.0.0.10:80", 2),
        ("10.0.0.1:80", 1),
    ]));
    assert_eq!(
        names(&b.reconcile()),
        [
            "add service tcp 192.0.2.10:80 (mh)",
            &format!("add real 10.0.0.1:80 to {id} (weight 1)"),
            &format!("add real 10.0.0.2:80 to {id} (weight 1)"),
            &format!("add real 10.0.0.10:80 to {id} (weight 2)"),
        ]
    );
    // A real above the others: one add.
    b.config = base(&[
        ("10.0.0.2:80", 1),
        ("10.0.0.10:80", 2),
        ("10.0.0.1:80", 1),
        ("10.0.0.11:80", 1),
    ]);
    assert_eq!(
        names(&b.reconcile()),
        [format!("add real 10.0.0.11:80 to {id} (weight 1)")]
    );
    // A real between: those above it move, lowest first, in the adds' place in the plan.
    b.config = base(&[
        ("10.0.0.2:80", 1),
        ("10.0.0.10:80", 2),
        ("10.0.0.1:80", 1),
        ("10.0.0.11:80", 1),
        ("10.0.0.5:80", 3),
    ]);
    let ops = b.reconcile();
    assert_eq!(
        names(&ops),
        [
            format!("add real 10.0.0.5:80 to {id} (weight 3)"),
            format!("delete real 10.0.0.10:80 from {id}"),
            format!("add real 10.0.0.10:80 to {id} (weight 2)"),
            format!("delete real 10.0.0.11:80 from {id}"),
            format!("add real 10.0.0.11:80 to {id} (weight 1)"),
        ]
    );
    assert_eq!(
        moves(&ops).into_values().collect::<Vec<_>>(),
        [vec![
            DestKey {
                addr: "10.0.0.10".parse().unwrap(),
                port: 80
            },
            DestKey {
                addr: "10.0.0.11".parse().unwrap(),
                port: 80
            }
        ]]
    );
    // Down: weight 0 in place.
    b.health
        .0
        .insert(("a".into(), addr("10.0.0.10:80")), Health::Down);
    assert_eq!(
        names(&b.reconcile()),
        [format!("edit real 10.0.0.10:80 of {id} (weight 0)")]
    );
    // A real below it while it is down: it moves, added at its weight (for its slots), then
    // set to 0 by the next message.
    b.config = base(&[
        ("10.0.0.2:80", 1),
        ("10.0.0.10:80", 2),
        ("10.0.0.1:80", 1),
        ("10.0.0.11:80", 1),
        ("10.0.0.5:80", 3),
        ("10.0.0.6:80", 1),
    ]);
    assert_eq!(
        names(&b.reconcile()),
        [
            format!("add real 10.0.0.6:80 to {id} (weight 1)"),
            format!("delete real 10.0.0.10:80 from {id}"),
            format!("add real 10.0.0.10:80 to {id} (weight 2)"),
            format!("edit real 10.0.0.10:80 of {id} (weight 0)"),
            format!("delete real 10.0.0.11:80 from {id}"),
            format!("add real 10.0.0.11:80 to {id} (weight 1)"),
        ]
    );
    b.assert_ideal();
    // Its weight changes while it is down: its slots follow (weight, then 0 again).
    b.config = base(&[
        ("10.0.0.2:80", 1),
        ("10.0.0.10:80", 4),
        ("10.0.0.1:80", 1),
        ("10.0.0.11:80", 1),
        ("10.0.0.5:80", 3),
        ("10.0.0.6:80", 1),
    ]);
    assert_eq!(
        names(&b.reconcile()),
        [
            format!("edit real 10.0.0.10:80 of {id} (weight 4)"),
            format!("edit real 10.0.0.10:80 of {id} (weight 0)"),
        ]
    );
    b.assert_ideal();
    // A restart adopts the table as it is: the order is already canonical, nothing moves
    // (health starts up again: the down real gets its weight back).
    b.restart();
    b.history.push("restart".into());
    assert_eq!(
        names(&b.reconcile()),
        [format!("edit real 10.0.0.10:80 of {id} (weight 4)")]
    );
    b.assert_ideal();
}

#[test]
fn a_table_from_another_history_is_put_in_order_when_adopted() {
    // An older lbd (or ipvsadm by hand) left the reals newest-first in the order they were
    // added: 10.0.0.3, then 10.0.0.1 removed and added back.
    let mut k = Kernel::default();
    let id = svc_id(80);
    let spec = ServiceSpec {
        scheduler: "mh".into(),
        flags: msg::SVC_F_SCHED_SH_FALLBACK | msg::SVC_F_SCHED_SH_PORT,
        timeout: 0,
        netmask: 32,
        pe_name: None,
    };
    k.exec(&Op::AddService(id, spec)).unwrap();
    let d = |w| DestSpec {
        fwd: msg::FwdMethod::Masq,
        weight: w,
        upper_threshold: 0,
        lower_threshold: 0,
        last_weight: w,
    };
    let key = |s: &str| {
        let a = addr(s);
        DestKey {
            addr: a.ip(),
            port: a.port(),
        }
    };
    for a in ["10.0.0.3:80", "10.0.0.2:80", "10.0.0.1:80"] {
        k.exec(&Op::AddDest(id, key(a), d(1))).unwrap();
    }
    assert_eq!(
        k.list(&id),
        [key("10.0.0.1:80"), key("10.0.0.2:80"), key("10.0.0.3:80")]
    );
    let mut t = HEAD.to_string();
    t += &mh_service(
        "a",
        80,
        &[("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)],
    );
    let mut b = Box1::new(cfg(&t));
    b.kernel = k;
    b.restart();
    b.history.push("restart".into());
    let ops = b.reconcile();
    assert_eq!(ops.len(), 4, "{ops:?}");
    b.assert_ideal();
    assert_eq!(
        b.kernel.list(&id),
        [key("10.0.0.3:80"), key("10.0.0.2:80"), key("10.0.0.1:80")]
    );
}

#[test]
fn a_down_real_of_an_mh_service_stays_even_when_built_with_remove() {
    // Validation refuses on_failure = "remove" with mh; a config built otherwise keeps the
    // down real at weight 0 all the same.
    let mut t = HEAD.to_string();
    t += &mh_service("a", 80, &[("10.0.0.1:80", 1), ("10.0.0.2:80", 3)]);
    let mut c = cfg(&t);
    Arc::make_mut(Arc::make_mut(&mut c.services).get_mut("a").unwrap()).on_failure =
        config::OnFailure::Remove;
    let mut health = RealHealth::default();
    health
        .0
        .insert(("a".into(), addr("10.0.0.2:80")), Health::Down);
    let d = desired(&c, &health, &Overrides::default(), SyncRole::Master);
    let s = &d.table[&svc_id(80)];
    let down = s.dests[&DestKey {
        addr: "10.0.0.2".parse().unwrap(),
        port: 80,
    }];
    assert_eq!((down.weight, down.last_weight), (0, 3));
}
