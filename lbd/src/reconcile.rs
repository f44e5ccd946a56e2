//! Reconcile planning for IPVS: what the config, health states and runtime overrides want,
//! against what the kernel has, as an ordered list of operations. Pure: no sockets, no clock.
//!
//! ```text
//! Config + RealHealth + Overrides + SyncRole ──desired()──▶ Desired
//! Desired + KernelState (dumped once, then kept up to date) ──plan()──▶ Vec<Op>
//! ```
//!
//! Rules:
//! - Services and destinations are matched by key ([`ServiceId`], [`DestKey`]); a changed
//!   setting is an edit in place (scheduler, flags, persistence, weight, method, thresholds),
//!   never a delete + add, so established connections keep their entries.
//! - Order: timeouts, sync daemon, then adds (services, then destinations), edits, and only
//!   then deletes (destinations, then services): while a real is replaced, the new one is in the
//!   table before the old one leaves. Nothing is ever flushed.
//! - Ownership: a service whose key is in the config is lbd's, with all its destinations
//!   (destinations the config does not list are removed). A service lbd owned before (an
//!   earlier config; the subsystem remembers them across lbd restarts) and that the config no
//!   longer names is deleted. Other services are *unmanaged*: `ipvs.unmanaged = "keep"`
//!   (default) leaves them alone, `"remove"` deletes them. The same policy covers a sync daemon
//!   when the config has no `[ipvs.sync]`.
//! - Health: a down real gets weight 0 with `on_failure = "inhibit"` (established connections
//!   continue) or leaves the table with `"remove"`. When no real of a service is up, its sorry
//!   server is added (weight 1).

use crate::config::{
    Config, Family, Forwarding, OnFailure, Protocol, ServiceFlag, ServiceKey, UnmanagedPolicy,
};
use crate::ipvs::msg::{
    self, request, DaemonEntry, DaemonState, FwdMethod, IpvsMessage, ServiceId, Timeouts,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Identity of a destination within its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", SocketAddr::new(self.addr, self.port))
    }
}

/// The settings of a destination that the kernel holds and lbd controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestSpec {
    pub fwd: FwdMethod,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
}

impl DestSpec {
    /// Whether the kernel's `observed` destination already is what `self` wants. The kernel
    /// reports "Local" for a real that is an address of this box, whatever method was asked.
    pub fn satisfied_by(&self, observed: &DestSpec) -> bool {
        (observed.fwd == self.fwd || observed.fwd == FwdMethod::Local)
            && observed.weight == self.weight
            && observed.upper_threshold == self.upper_threshold
            && observed.lower_threshold == self.lower_threshold
    }

    pub fn entry(&self, key: &DestKey) -> msg::DestEntry {
        let mut d = msg::DestEntry::new(key.addr, key.port, self.fwd, self.weight);
        d.upper_threshold = self.upper_threshold;
        d.lower_threshold = self.lower_threshold;
        d
    }

    pub fn from_entry(d: &msg::DestEntry) -> (DestKey, DestSpec) {
        (
            DestKey {
                addr: d.addr,
                port: d.port,
            },
            DestSpec {
                fwd: d.fwd,
                weight: d.weight,
                upper_threshold: d.upper_threshold,
                lower_threshold: d.lower_threshold,
            },
        )
    }
}

/// The settings of a virtual service that the kernel holds and lbd controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub scheduler: String,
    /// `SVC_F_*` without `SVC_F_HASHED`.
    pub flags: u32,
    /// Persistence timeout in seconds; 0 when not persistent.
    pub timeout: u32,
    /// Persistence prefix length.
    pub netmask: u8,
    pub pe_name: Option<String>,
}

impl ServiceSpec {
    /// Whether `observed` already is what `self` wants. Timeout and netmask only matter for a
    /// persistent service (other tools leave arbitrary values there otherwise).
    pub fn satisfied_by(&self, observed: &ServiceSpec) -> bool {
        let persistent = self.flags & msg::SVC_F_PERSISTENT != 0;
        self.scheduler == observed.scheduler
            && self.flags == observed.flags
            && self.pe_name == observed.pe_name
            && (!persistent
                || (self.timeout == observed.timeout && self.netmask == observed.netmask))
    }

    pub fn entry(&self, id: &ServiceId) -> msg::ServiceEntry {
        msg::ServiceEntry {
            id: *id,
            scheduler: self.scheduler.clone(),
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
            pe_name: self.pe_name.clone(),
            stats: None,
        }
    }

    pub fn from_entry(s: &msg::ServiceEntry) -> ServiceSpec {
        ServiceSpec {
            scheduler: s.scheduler.clone(),
            flags: s.flags & !msg::SVC_F_HASHED,
            timeout: s.timeout,
            netmask: s.netmask,
            pe_name: s.pe_name.clone(),
        }
    }
}

/// A service and its destinations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub spec: ServiceSpec,
    pub dests: BTreeMap<DestKey, DestSpec>,
}

/// A virtual-server table keyed by identity.
pub type Table = BTreeMap<ServiceId, ServiceState>;

/// What the kernel has (dumped at start, then kept current by [`KernelState::apply`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelState {
    pub table: Table,
    pub timeouts: Timeouts,
    pub daemons: Vec<DaemonEntry>,
}

impl KernelState {
    /// Number of destinations in the table.
    pub fn dest_count(&self) -> usize {
        self.table.values().map(|s| s.dests.len()).sum()
    }

    /// Records that `op` succeeded in the kernel.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
            }
            Op::StopDaemon(state) => self.daemons.retain(|d| d.state != *state),
            Op::StartDaemon(d) => {
                self.daemons.retain(|x| x.state != d.state);
                self.daemons.push(d.clone());
            }
            Op::AddService(id, spec) => {
                self.table.insert(
                    *id,
                    ServiceState {
                        spec: spec.clone(),
                        dests: BTreeMap::new(),
                    },
                );
            }
            Op::EditService(id, spec) => {
                if let Some(s) = self.table.get_mut(id) {
                    s.spec = spec.clone();
                }
            }
            Op::DelService(id) => {
                self.table.remove(id);
            }
            Op::AddDest(id, key, spec) | Op::EditDest(id, key, spec) => {
                if let Some(s) = self.table.get_mut(id) {
                    s.dests.insert(*key, *spec);
                }
            }
            Op::DelDest(id, key) => {
                if let Some(s) = self.table.get_mut(id) {
                    s.dests.remove(key);
                }
            }
        }
    }
}

/// Health of a real server, as the checks (a later subsystem) see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Up,
    Down,
}

/// Health per (service name, real address); a real not in the map is up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealHealth(pub BTreeMap<(String, SocketAddr), Health>);

impl RealHealth {
    pub fn get(&self, service: &str, real: &SocketAddr) -> Health {
        self.0
            .get(&(service.to_string(), *real))
            .copied()
            .unwrap_or_default()
    }
}

/// Runtime overrides by an operator (e.g. drain a real): weight per (service name, real).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub weights: BTreeMap<(String, SocketAddr), u32>,
}

/// Which side of the connection sync this node is on. Follows VRRP (a later issue); until then
/// lbd runs as [`SyncRole::Master`], the role of a balancer that holds its VIPs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncRole {
    #[default]
    Master,
    Backup,
}

/// Timeouts the config sets, in seconds (`None`: leave the kernel's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DesiredTimeouts {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

/// What lbd wants the kernel to hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub table: Table,
    pub timeouts: DesiredTimeouts,
    /// `None`: the config has no `[ipvs.sync]`.
    pub daemon: Option<DaemonEntry>,
    pub unmanaged: UnmanagedPolicy,
    /// Config service names by key, for messages.
    pub names: BTreeMap<ServiceId, String>,
    /// Services lbd programmed for an earlier config: deleted when no longer desired, whatever
    /// the unmanaged policy.
    pub owned_before: BTreeSet<ServiceId>,
}

/// The kernel identity of a config service key.
pub fn service_id(key: &ServiceKey) -> ServiceId {
    match *key {
        ServiceKey::Addr { protocol, addr } => ServiceId::Addr {
            protocol: match protocol {
                Protocol::Tcp => msg::IPPROTO_TCP,
                Protocol::Udp => msg::IPPROTO_UDP,
                Protocol::Sctp => msg::IPPROTO_SCTP,
            },
            addr: addr.ip(),
            port: addr.port(),
        },
        ServiceKey::Fwmark { mark, family } => ServiceId::Fwmark {
            af: match family {
                Family::Ipv4 => msg::AF_INET,
                Family::Ipv6 => msg::AF_INET6,
            },
            mark,
        },
    }
}

pub fn fwd_method(f: Forwarding) -> FwdMethod {
    match f {
        Forwarding::Nat => FwdMethod::Masq,
        Forwarding::Dr => FwdMethod::Route,
        Forwarding::Tun => FwdMethod::Tunnel,
    }
}

fn secs(d: std::time::Duration) -> u32 {
    // Round up: a timeout of 1.5 s must not become 1 s; the kernel counts whole seconds.
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(u32::MAX as u64) as u32
}

/// The desired table from a validated config and the current inputs.
pub fn desired(
    config: &Config,
    health: &RealHealth,
    overrides: &Overrides,
    role: SyncRole,
) -> Desired {
    let mut out = Desired {
        unmanaged: config.ipvs.unmanaged,
        ..Desired::default()
    };
    for svc in config.services.values() {
        let id = service_id(&svc.key);
        let af = id.af();
        let mut flags = 0;
        for f in &svc.flags {
            flags |= match f {
                ServiceFlag::ShFallback => msg::SVC_F_SCHED_SH_FALLBACK,
                ServiceFlag::ShPort => msg::SVC_F_SCHED_SH_PORT,
                ServiceFlag::OnePacket => msg::SVC_F_ONEPACKET,
            };
        }
        let max_prefix = if af == msg::AF_INET6 { 128 } else { 32 };
        let (timeout, netmask) = match &svc.persistence {
            Some(p) => {
                flags |= msg::SVC_F_PERSISTENT;
                (secs(p.timeout).max(1), p.prefix_len)
            }
            None => (0, max_prefix),
        };
        let spec = ServiceSpec {
            scheduler: svc.scheduler.kernel_name().to_string(),
            flags,
            timeout,
            netmask,
            pe_name: None,
        };
        let mut dests = BTreeMap::new();
        let mut any_up = false;
        for real in &svc.reals {
            let key = DestKey {
                addr: real.addr.ip(),
                port: real.addr.port(),
            };
            let weight = match health.get(&svc.name, &real.addr) {
                Health::Up => {
                    any_up = true;
                    overrides
                        .weights
                        .get(&(svc.name.clone(), real.addr))
                        .copied()
                        .unwrap_or(real.weight)
                }
                Health::Down => match svc.on_failure {
                    OnFailure::Inhibit => 0,
                    OnFailure::Remove => continue,
                },
            };
            dests.insert(
                key,
                DestSpec {
                    fwd: fwd_method(real.forwarding),
                    weight,
                    upper_threshold: real.upper_threshold,
                    lower_threshold: real.lower_threshold,
                },
            );
        }
        if !any_up {
            if let Some(sorry) = &svc.sorry {
                dests
                    .entry(DestKey {
                        addr: sorry.addr.ip(),
                        port: sorry.addr.port(),
                    })
                    .or_insert(DestSpec {
                        fwd: fwd_method(sorry.forwarding),
                        weight: 1,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    });
            }
        }
        out.names.insert(id, svc.name.clone());
        out.table.insert(id, ServiceState { spec, dests });
    }
    let t = &config.ipvs.timeouts;
    out.timeouts = DesiredTimeouts {
        tcp: t.tcp.map(secs),
        tcp_fin: t.tcp_fin.map(secs),
        udp: t.udp.map(secs),
    };
    out.daemon = config.ipvs.sync.as_ref().map(|s| DaemonEntry {
        state: match role {
            SyncRole::Master => DaemonState::Master,
            SyncRole::Backup => DaemonState::Backup,
        },
        ifname: s.interface.clone(),
        sync_id: u32::from(s.sync_id),
        max_len: s.max_len,
        group: s.group,
        port: Some(s.port),
        ttl: Some(s.ttl),
    });
    out
}

/// One kernel operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Fields that are 0 stay as they are.
    SetTimeouts(Timeouts),
    StopDaemon(DaemonState),
    StartDaemon(DaemonEntry),
    AddService(ServiceId, ServiceSpec),
    EditService(ServiceId, ServiceSpec),
    AddDest(ServiceId, DestKey, DestSpec),
    EditDest(ServiceId, DestKey, DestSpec),
    DelDest(ServiceId, DestKey),
    DelService(ServiceId),
}

impl Op {
    /// The netlink request that carries it out.
    pub fn message(&self) -> IpvsMessage {
        match self {
            Op::SetTimeouts(t) => request::set_timeouts(t),
            Op::StopDaemon(s) => request::stop_daemon(*s),
            Op::StartDaemon(d) => request::start_daemon(d),
            Op::AddService(id, spec) => request::add_service(&spec.entry(id)),
            Op::EditService(id, spec) => request::edit_service(&spec.entry(id)),
            Op::AddDest(id, k, spec) => request::add_dest(id, &spec.entry(k)),
            Op::EditDest(id, k, spec) => request::edit_dest(id, &spec.entry(k)),
            Op::DelDest(id, k) => request::del_dest(id, &k.addr, k.port),
            Op::DelService(id) => request::del_service(id),
        }
    }

    /// The service an operation is about, if any.
    pub fn service(&self) -> Option<&ServiceId> {
        match self {
            Op::AddService(id, _)
            | Op::EditService(id, _)
            | Op::DelService(id)
            | Op::AddDest(id, _, _)
            | Op::EditDest(id, _, _)
            | Op::DelDest(id, _) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Op::SetTimeouts(t) => write!(
                f,
                "set timeouts tcp {} tcpfin {} udp {} (0 = unchanged)",
                t.tcp, t.tcp_fin, t.udp
            ),
            Op::StopDaemon(s) => write!(f, "stop sync daemon ({s:?})"),
            Op::StartDaemon(d) => write!(
                f,
                "start sync daemon ({:?}, {}, syncid {})",
                d.state, d.ifname, d.sync_id
            ),
            Op::AddService(id, s) => write!(f, "add service {id} ({})", s.scheduler),
            Op::EditService(id, s) => write!(f, "edit service {id} ({})", s.scheduler),
            Op::DelService(id) => write!(f, "delete service {id}"),
            Op::AddDest(id, k, s) => write!(f, "add real {k} to {id} (weight {})", s.weight),
            Op::EditDest(id, k, s) => write!(f, "edit real {k} of {id} (weight {})", s.weight),
            Op::DelDest(id, k) => write!(f, "delete real {k} from {id}"),
        }
    }
}

/// Counts of a plan by kind, for the apply summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub services_added: usize,
    pub services_edited: usize,
    pub services_deleted: usize,
    pub reals_added: usize,
    pub reals_edited: usize,
    pub reals_deleted: usize,
    pub other: usize,
}

impl PlanCounts {
    pub fn of(ops: &[Op]) -> PlanCounts {
        let mut c = PlanCounts::default();
        for op in ops {
            match op {
                Op::AddService(..) => c.services_added += 1,
                Op::EditService(..) => c.services_edited += 1,
                Op::DelService(..) => c.services_deleted += 1,
                Op::AddDest(..) => c.reals_added += 1,
                Op::EditDest(..) => c.reals_edited += 1,
                Op::DelDest(..) => c.reals_deleted += 1,
                _ => c.other += 1,
            }
        }
        c
    }
}

fn daemon_satisfied(want: &DaemonEntry, have: &DaemonEntry) -> bool {
    // The kernel fills in defaults for what was not given; compare what lbd asks for.
    fn opt<T: PartialEq>(w: Option<T>, h: Option<T>) -> bool {
        w.is_none() || h.is_none() || w == h
    }
    want.state == have.state
        && want.ifname == have.ifname
        && want.sync_id == have.sync_id
        && opt(want.max_len, have.max_len)
        && opt(want.group, have.group)
        && opt(want.port, have.port)
        && opt(want.ttl, have.ttl)
}

/// The operations that turn `observed` into `desired`, in a safe order.
pub fn plan(desired: &Desired, observed: &KernelState) -> Vec<Op> {
    let mut ops = Vec::new();

    // Timeouts: only the ones the config sets and the kernel does not have.
    let t = &desired.timeouts;
    let want = |w: Option<u32>, have: u32| w.filter(|&v| v != have && v != 0).unwrap_or(0);
    let set = Timeouts {
        tcp: want(t.tcp, observed.timeouts.tcp),
        tcp_fin: want(t.tcp_fin, observed.timeouts.tcp_fin),
        udp: want(t.udp, observed.timeouts.udp),
    };
    if set != Timeouts::default() {
        ops.push(Op::SetTimeouts(set));
    }

    // Sync daemon: a running daemon cannot be edited, only stopped and started again.
    match &desired.daemon {
        Some(want) => {
            let mut start = true;
            for have in &observed.daemons {
                if have.state == want.state && daemon_satisfied(want, have) {
                    start = false;
                } else {
                    ops.push(Op::StopDaemon(have.state));
                }
            }
            if start {
                ops.push(Op::StartDaemon(want.clone()));
            }
        }
        None => {
            if desired.unmanaged == UnmanagedPolicy::Remove {
                for have in &observed.daemons {
                    ops.push(Op::StopDaemon(have.state));
                }
            }
        }
    }

    let (mut add_svc, mut edit_svc, mut add_dest, mut edit_dest, mut del_dest, mut del_svc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (id, want) in &desired.table {
        match observed.table.get(id) {
            None => {
                add_svc.push(Op::AddService(*id, want.spec.clone()));
                for (k, d) in &want.dests {
                    add_dest.push(Op::AddDest(*id, *k, *d));
                }
            }
            Some(have) => {
                if !want.spec.satisfied_by(&have.spec) {
                    edit_svc.push(Op::EditService(*id, want.spec.clone()));
                }
                for (k, d) in &want.dests {
                    match have.dests.get(k) {
                        None => add_dest.push(Op::AddDest(*id, *k, *d)),
                        Some(h) if !d.satisfied_by(h) => edit_dest.push(Op::EditDest(*id, *k, *d)),
                        Some(_) => {}
                    }
                }
                for k in have.dests.keys() {
                    if !want.dests.contains_key(k) {
                        del_dest.push(Op::DelDest(*id, *k));
                    }
                }
            }
        }
    }
    for id in observed.table.keys() {
        let ours = desired.owned_before.contains(id);
        if !desired.table.contains_key(id) && (ours || desired.unmanaged == UnmanagedPolicy::Remove)
        {
            del_svc.push(Op::DelService(*id));
        }
    }
    ops.extend(add_svc);
    ops.extend(edit_svc);
    ops.extend(add_dest);
    ops.extend(edit_dest);
    ops.extend(del_dest);
    ops.extend(del_svc);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

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
}
