//! The kernel side: what IPVS holds, as specs keyed like the desired table, kept up to
//! date by applying each operation that succeeded.

use super::order::DestList;
use super::plan::Op;
use crate::config::types::Scheduler;
use crate::ipvs::msg::{self, DaemonEntry, FwdMethod, ServiceId, Timeouts};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Identity of a destination within its service. Ordered by address, then port (as derived),
/// comparing addresses as numbers ([`msg::ip_cmp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl Ord for DestKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        msg::ip_cmp(&self.addr, &other.addr).then(self.port.cmp(&other.port))
    }
}

impl PartialOrd for DestKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
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
    /// The kernel's `last_weight`: the latest weight other than 0 (`__ip_vs_update_dest` sets
    /// it on every add, and on an edit to a weight other than 0). The `mh` scheduler fills its
    /// lookup table from it, not from `weight`, so a destination edited to weight 0 keeps its
    /// slots (and `mh-fallback` sends their flows on), while one *added* at weight 0 gets
    /// none. Desired side: the weight the destination has when it is up (its slots). Kernel
    /// side: as far as lbd knows it (a dumped destination at weight 0 reads as 0: unknown).
    /// Not compared by [`DestSpec::satisfied_by`]: nothing sets it without a moment at a
    /// weight other than 0.
    pub last_weight: u32,
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

    /// What the kernel holds after `self` was sent as an add (`add`) or an edit of `old`:
    /// `last_weight` follows the kernel's rule (see the field).
    pub fn applied_to(&self, old: Option<&DestSpec>, add: bool) -> DestSpec {
        let last_weight = match old {
            Some(o) if !add && self.weight == 0 => o.last_weight,
            _ => self.weight,
        };
        DestSpec {
            last_weight,
            ..*self
        }
    }

    /// What NEW_DEST or SET_DEST sends for it (the fields of [`Self::entry`] without counters).
    pub fn settings(&self, key: &DestKey) -> msg::DestSettings {
        msg::DestSettings {
            addr: key.addr,
            port: key.port,
            fwd: self.fwd,
            weight: self.weight,
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
            tunnel: None,
        }
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
                last_weight: d.weight,
            },
        )
    }
}

/// The settings of a virtual service that the kernel holds and lbd controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Borrowed for the schedulers lbd knows (a plan copies specs thousands of times), owned
    /// for a name read from the kernel that it does not.
    pub scheduler: Cow<'static, str>,
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

    /// What NEW_SERVICE or SET_SERVICE sends for it, borrowed.
    pub fn settings<'a>(&'a self, id: &'a ServiceId) -> msg::request::ServiceSettings<'a> {
        msg::request::ServiceSettings {
            id,
            scheduler: &self.scheduler,
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
            pe_name: self.pe_name.as_deref(),
        }
    }

    pub fn entry(&self, id: &ServiceId) -> msg::ServiceEntry {
        msg::ServiceEntry {
            id: *id,
            scheduler: self.scheduler.to_string(),
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
            pe_name: self.pe_name.clone(),
            stats: None,
        }
    }

    pub fn from_entry(s: &msg::ServiceEntry) -> ServiceSpec {
        ServiceSpec {
            scheduler: scheduler_name(&s.scheduler),
            flags: s.flags & !msg::SVC_F_HASHED,
            timeout: s.timeout,
            netmask: s.netmask,
            pe_name: s.pe_name.clone(),
        }
    }
}

/// A scheduler's name as lbd keeps it: the known names borrowed.
fn scheduler_name(name: &str) -> Cow<'static, str> {
    match Scheduler::ALL.into_iter().find(|s| s.kernel_name() == name) {
        Some(s) => Cow::Borrowed(s.kernel_name()),
        None => Cow::Owned(name.to_string()),
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
    /// Each service's destinations in the kernel's list order (head first, as dumped); see
    /// [`super::order`].
    pub lists: BTreeMap<ServiceId, DestList>,
    pub timeouts: Timeouts,
    pub daemons: Vec<DaemonEntry>,
}

impl KernelState {
    /// Number of destinations in the table.
    pub fn dest_count(&self) -> usize {
        self.table.values().map(|s| s.dests.len()).sum()
    }

    /// The destinations of service `id` in the kernel's order, head first. A destination the
    /// list lacks (a state built by hand, not from a dump) reads as being at the tail.
    pub fn order_of(&self, id: &ServiceId) -> Vec<DestKey> {
        let Some(s) = self.table.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<DestKey> = self
            .lists
            .get(id)
            .map(|l| {
                l.keys()
                    .iter()
                    .filter(|k| s.dests.contains_key(k))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        // The list's keys are distinct destinations of the service: when it has as many, it
        // has them all.
        if out.len() < s.dests.len() {
            let listed: std::collections::BTreeSet<DestKey> = out.iter().copied().collect();
            out.extend(s.dests.keys().filter(|k| !listed.contains(k)).copied());
        }
        out
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
                self.lists.insert(*id, DestList::new());
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
                self.lists.remove(id);
            }
            Op::AddDest(id, key, spec) => {
                if let Some(s) = self.table.get_mut(id) {
                    s.dests.insert(*key, spec.applied_to(None, true));
                    self.lists.entry(*id).or_default().add(*key);
                }
            }
            Op::EditDest(id, key, spec) => {
                if let Some(s) = self.table.get_mut(id) {
                    let new = spec.applied_to(s.dests.get(key), false);
                    s.dests.insert(*key, new);
                }
            }
            Op::DelDest(id, key) => {
                if let Some(s) = self.table.get_mut(id) {
                    s.dests.remove(key);
                }
                if let Some(l) = self.lists.get_mut(id) {
                    l.remove(key);
                }
            }
        }
    }

    /// [`Self::apply`] for each of `ops` in order. A run of destination operations on one
    /// service (nearly all of a full apply) looks the service and its list up once.
    pub fn apply_all<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) {
        let mut ops = ops.into_iter().peekable();
        let mut run: Vec<&Op> = Vec::new();
        while let Some(op) = ops.next() {
            let (Op::AddDest(id, ..) | Op::EditDest(id, ..) | Op::DelDest(id, _)) = op else {
                self.apply(op);
                continue;
            };
            let (Some(service), Some(list)) = (self.table.get_mut(id), self.lists.get_mut(id))
            else {
                self.apply(op);
                continue;
            };
            run.clear();
            run.push(op);
            while let Some(next) = ops.next_if(|next| next.dest_service() == Some(id)) {
                run.push(next);
            }
            apply_dest_run(service, list, &run);
        }
    }
}

/// What [`KernelState::apply`] does for a run of destination operations on one service the
/// kernel holds with a known list order. Adds of distinct destinations to a service that has
/// none yet (each service of a full apply) build its map in one go, in key order, instead of
/// inserting one by one.
fn apply_dest_run(service: &mut ServiceState, list: &mut DestList, run: &[&Op]) {
    let adds = || {
        run.iter().filter_map(|op| match op {
            Op::AddDest(_, key, spec) => Some((*key, spec)),
            _ => None,
        })
    };
    if service.dests.is_empty() && list.is_empty() && adds().count() == run.len() {
        let dests: BTreeMap<DestKey, DestSpec> = adds()
            .map(|(key, spec)| (key, spec.applied_to(None, true)))
            .collect();
        // Each destination once: otherwise the kernel refused the second add.
        if dests.len() == run.len() {
            list.reserve(run.len());
            for (key, _) in adds() {
                list.add_absent(key);
            }
            service.dests = dests;
            return;
        }
    }
    for op in run {
        apply_dest_op(service, list, op);
    }
}

/// What [`KernelState::apply`] does for a destination operation on a service the kernel holds
/// with a known list order.
fn apply_dest_op(service: &mut ServiceState, list: &mut DestList, op: &Op) {
    match op {
        Op::AddDest(_, key, spec) => {
            service.dests.insert(*key, spec.applied_to(None, true));
            list.add(*key);
        }
        Op::EditDest(_, key, spec) => {
            let new = spec.applied_to(service.dests.get(key), false);
            service.dests.insert(*key, new);
        }
        Op::DelDest(_, key) => {
            service.dests.remove(key);
            list.remove(key);
        }
        _ => {}
    }
}
