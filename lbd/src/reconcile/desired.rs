//! What lbd wants the kernel to hold, from the config, health, operator overrides and the
//! sync role.

use super::kernel::{DestKey, DestSpec, ServiceSpec, ServiceState, Table};
use crate::config::{
    Config, Family, Forwarding, OnFailure, Protocol, Scheduler, Service, ServiceFlag, ServiceKey,
    UnmanagedPolicy,
};
use crate::ipvs::msg::{self, DaemonEntry, DaemonState, FwdMethod, ServiceId};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

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
        self.of_service(service)
            .find(|(addr, _)| *addr == real)
            .map_or(Health::Up, |(_, h)| *h)
    }

    /// The entries of one service, in address order.
    pub fn of_service<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = (&'a SocketAddr, &'a Health)> + Clone + 'a {
        entries_of(&self.0, service)
    }
}

/// Runtime overrides by an operator (e.g. drain a real): weight per (service name, real).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub weights: BTreeMap<(String, SocketAddr), u32>,
}

impl Overrides {
    /// The weights of one service, in address order.
    pub fn of_service<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = (&'a SocketAddr, &'a u32)> + Clone + 'a {
        entries_of(&self.weights, service)
    }
}

/// The entries of a map keyed by (service, real) that belong to `service`.
fn entries_of<'a, V>(
    map: &'a BTreeMap<(String, SocketAddr), V>,
    service: &'a str,
) -> impl Iterator<Item = (&'a SocketAddr, &'a V)> + Clone + 'a {
    use std::ops::Bound;
    // The smallest socket address: every entry of the service sorts at or after it. An empty
    // map (no checks, no overrides) needs no bound, nor the copy of the name one takes.
    let first = SocketAddr::from(([0, 0, 0, 0], 0));
    let from = match map.is_empty() {
        true => Bound::Unbounded,
        false => Bound::Included((service.to_string(), first)),
    };
    map.range((from, Bound::Unbounded))
        .take_while(move |((s, _), _)| s == service)
        .map(|((_, addr), v)| (addr, v))
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
    let mut out = Desired::default();
    set_globals(&mut out, config, role);
    for svc in config.services.values() {
        let id = service_id(&svc.key);
        out.names.insert(id, svc.name.clone());
        out.table.insert(id, service_state(svc, health, overrides));
    }
    out
}

/// What the kernel should hold for one service under the current health and overrides.
pub fn service_state(svc: &Service, health: &RealHealth, overrides: &Overrides) -> ServiceState {
    let af = service_id(&svc.key).af();
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
        scheduler: svc.scheduler.kernel_name().into(),
        flags,
        timeout,
        netmask,
        pe_name: None,
    };
    // Collected, then built into the map at once (reals are nearly always written in address
    // order, which the sort then only confirms).
    let mut dests = Vec::with_capacity(svc.reals.len());
    let mut any_up = false;
    // In address order (the maps' order), looked up by halving: a service of a thousand
    // reals with their health known would otherwise scan a thousand entries per real.
    let downs: Vec<&SocketAddr> = health
        .of_service(&svc.name)
        .filter(|(_, h)| **h == Health::Down)
        .map(|(addr, _)| addr)
        .collect();
    let weights: Vec<(&SocketAddr, &u32)> = overrides.of_service(&svc.name).collect();
    for real in &svc.reals {
        let key = DestKey {
            addr: real.addr.ip(),
            port: real.addr.port(),
        };
        let down = downs.binary_search(&&real.addr).is_ok();
        let overridden = weights
            .binary_search_by(|(addr, _)| (*addr).cmp(&real.addr))
            .ok()
            .map(|i| *weights[i].1);
        // What it has when up; an operator's drain (0) leaves the configured weight as the one
        // its mh slots keep.
        let up_weight = overridden.filter(|w| *w != 0).unwrap_or(real.weight);
        let weight = if down {
            match svc.on_failure {
                OnFailure::Inhibit => 0,
                // mh keeps a down real in its place at weight 0 (validation refuses "remove"
                // with mh; a config built otherwise gets the same).
                OnFailure::Remove if svc.scheduler == Scheduler::Mh => 0,
                OnFailure::Remove => continue,
            }
        } else {
            any_up = true;
            overridden.unwrap_or(real.weight)
        };
        dests.push((
            key,
            DestSpec {
                fwd: fwd_method(real.forwarding),
                weight,
                upper_threshold: real.upper_threshold,
                lower_threshold: real.lower_threshold,
                last_weight: up_weight,
            },
        ));
    }
    let mut dests: BTreeMap<DestKey, DestSpec> = dests.into_iter().collect();
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
                    last_weight: 1,
                });
        }
    }
    ServiceState { spec, dests }
}

/// The parts of the desired state that are not services: timeouts, the sync daemon, the
/// unmanaged policy.
pub fn set_globals(out: &mut Desired, config: &Config, role: SyncRole) {
    out.unmanaged = config.ipvs.unmanaged;
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
}
