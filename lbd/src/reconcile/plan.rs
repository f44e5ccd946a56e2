//! The plan: desired against kernel, as the ordered operations that close the gap.

use super::desired::Desired;
use super::kernel::{DestKey, DestSpec, KernelState, ServiceSpec, ServiceState};
use super::order;
use crate::config::UnmanagedPolicy;
use crate::ipvs::msg::{
    cmd, request, DaemonEntry, DaemonState, IpvsMessage, Request, ServiceId, Timeouts,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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

    /// The request's command (that of [`Self::message`]).
    pub fn cmd(&self) -> u8 {
        match self {
            Op::SetTimeouts(_) => cmd::SET_CONFIG,
            Op::StopDaemon(_) => cmd::DEL_DAEMON,
            Op::StartDaemon(_) => cmd::NEW_DAEMON,
            Op::AddService(..) => cmd::NEW_SERVICE,
            Op::EditService(..) => cmd::SET_SERVICE,
            Op::AddDest(..) => cmd::NEW_DEST,
            Op::EditDest(..) => cmd::SET_DEST,
            Op::DelDest(..) => cmd::DEL_DEST,
            Op::DelService(_) => cmd::DEL_SERVICE,
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

    /// The service of a destination operation.
    pub fn dest_service(&self) -> Option<&ServiceId> {
        match self {
            Op::AddDest(id, _, _) | Op::EditDest(id, _, _) | Op::DelDest(id, _) => Some(id),
            _ => None,
        }
    }
}

/// Written out as [`Op::message`] would be, but the service and destination operations
/// (nearly all of a large apply) without building the message first.
impl Request for Op {
    fn cmd(&self) -> u8 {
        Op::cmd(self)
    }
    fn emit_attrs(&self, buf: &mut Vec<u8>) {
        match self {
            Op::AddDest(id, k, spec) | Op::EditDest(id, k, spec) => {
                request::write_dest_settings_attrs(buf, id, &spec.settings(k))
            }
            Op::DelDest(id, k) => request::write_del_dest_attrs(buf, id, &k.addr, k.port),
            Op::AddService(id, spec) | Op::EditService(id, spec) => {
                request::write_service_attrs(buf, &spec.settings(id))
            }
            _ => self.message().emit_attrs(buf),
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
    /// All operations.
    pub fn total(&self) -> usize {
        self.services_added
            + self.services_edited
            + self.services_deleted
            + self.reals_added
            + self.reals_edited
            + self.reals_deleted
            + self.other
    }

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

/// Which services a plan looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every service desired or in the kernel.
    All,
    /// Only these: the others are known to be as desired (the kernel model was in step with
    /// the desired state after the last apply, and their desired state has not changed).
    Services(BTreeSet<ServiceId>),
}

/// The operations that turn `observed` into `desired`, in a safe order.
pub fn plan(desired: &Desired, observed: &KernelState) -> Vec<Op> {
    plan_in(desired, observed, &Scope::All)
}

/// [`plan`] for the services in `scope` (timeouts and the sync daemon are always planned).
/// For a scope that holds every service whose desired state changed, the same operations as
/// [`plan`], at a cost that follows the change instead of the table.
pub fn plan_in(desired: &Desired, observed: &KernelState, scope: &Scope) -> Vec<Op> {
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

    let mut steps = Steps::default();
    if observed.table.is_empty() {
        // Every destination is an add (the first apply at boot): room for them at once.
        let dests = desired.table.values().map(|s| s.dests.len()).sum();
        steps.add_dest.reserve_exact(dests);
    }
    match scope {
        Scope::All => {
            for (id, want) in &desired.table {
                steps.service(*id, want, observed);
            }
            for id in observed.table.keys() {
                if !desired.table.contains_key(id) {
                    steps.unwanted(*id, desired);
                }
            }
        }
        Scope::Services(ids) => {
            for id in ids {
                match (desired.table.get(id), observed.table.get(id)) {
                    (Some(want), _) => steps.service(*id, want, observed),
                    (None, Some(_)) => steps.unwanted(*id, desired),
                    (None, None) => {}
                }
            }
        }
    }
    let Steps {
        add_svc,
        edit_svc,
        add_dest,
        edit_dest,
        del_dest,
        del_svc,
    } = steps;
    ops.reserve_exact(
        add_svc.len()
            + edit_svc.len()
            + add_dest.len()
            + edit_dest.len()
            + del_dest.len()
            + del_svc.len(),
    );
    ops.extend(add_svc);
    ops.extend(edit_svc);
    ops.extend(add_dest);
    ops.extend(edit_dest);
    ops.extend(del_dest);
    ops.extend(del_svc);
    ops
}

/// The kernel name of the Maglev scheduler, whose services keep their destinations in the
/// canonical order ([`order`]).
pub const MH: &str = "mh";

/// The destinations a plan moves (deletes and adds back at once, to keep an `mh` service's
/// order), by service.
pub fn moves(ops: &[Op]) -> BTreeMap<ServiceId, Vec<DestKey>> {
    let mut out: BTreeMap<ServiceId, Vec<DestKey>> = BTreeMap::new();
    for w in ops.windows(2) {
        if let (Op::DelDest(a, k), Op::AddDest(b, l, _)) = (&w[0], &w[1]) {
            if a == b && k == l {
                out.entry(*a).or_default().push(*k);
            }
        }
    }
    out
}

/// The service operations of a plan, by kind, each in service order.
#[derive(Default)]
struct Steps {
    add_svc: Vec<Op>,
    edit_svc: Vec<Op>,
    add_dest: Vec<Op>,
    edit_dest: Vec<Op>,
    del_dest: Vec<Op>,
    del_svc: Vec<Op>,
}

impl Steps {
    /// A desired service against what the kernel has of it.
    fn service(&mut self, id: ServiceId, want: &ServiceState, observed: &KernelState) {
        let mh = want.spec.scheduler == MH;
        match observed.table.get(&id) {
            None => {
                self.add_svc.push(Op::AddService(id, want.spec.clone()));
                if mh {
                    // Each add links at the head: the last added is first.
                    for k in order::canonical(want.dests.keys()).iter().rev() {
                        self.add_mh_dest(id, *k, &want.dests[k]);
                    }
                } else {
                    for (k, d) in &want.dests {
                        self.add_dest.push(Op::AddDest(id, *k, *d));
                    }
                }
            }
            Some(have) => {
                if !want.spec.satisfied_by(&have.spec) {
                    self.edit_svc.push(Op::EditService(id, want.spec.clone()));
                }
                // mh: the destinations that must be (re)added, in that order, for the list to
                // end in the canonical order; a move is a delete right before its add.
                let moved: BTreeSet<DestKey> = if mh {
                    let wanted: BTreeSet<DestKey> = want.dests.keys().copied().collect();
                    // Slots it should not have (its configured weight became 0): only an add
                    // clears the kernel's last_weight.
                    let stale: BTreeSet<DestKey> = want
                        .dests
                        .iter()
                        .filter(|(k, d)| {
                            d.last_weight == 0
                                && have.dests.get(k).is_some_and(|h| h.last_weight != 0)
                        })
                        .map(|(k, _)| *k)
                        .collect();
                    let adds = order::reorder(&observed.order_of(&id), &wanted, &stale);
                    for k in &adds {
                        if have.dests.contains_key(k) {
                            self.add_dest.push(Op::DelDest(id, *k));
                        }
                        self.add_mh_dest(id, *k, &want.dests[k]);
                    }
                    adds.into_iter().collect()
                } else {
                    BTreeSet::new()
                };
                for (k, d) in &want.dests {
                    if moved.contains(k) {
                        continue;
                    }
                    match have.dests.get(k) {
                        None => self.add_dest.push(Op::AddDest(id, *k, *d)),
                        // mh, a destination wanted at weight 0 whose slots are not those it has
                        // when up (its weight changed while it was down, or an adopted table
                        // does not tell): an edit to 0 keeps the kernel's last_weight, so set
                        // its weight, then 0 again.
                        Some(h)
                            if mh
                                && d.weight == 0
                                && d.last_weight != 0
                                && h.last_weight != d.last_weight =>
                        {
                            let slots = DestSpec {
                                weight: d.last_weight,
                                ..*d
                            };
                            self.edit_dest.push(Op::EditDest(id, *k, slots));
                            self.edit_dest.push(Op::EditDest(id, *k, *d));
                        }
                        Some(h) if !d.satisfied_by(h) => {
                            self.edit_dest.push(Op::EditDest(id, *k, *d))
                        }
                        Some(_) => {}
                    }
                }
                for k in have.dests.keys() {
                    if !want.dests.contains_key(k) {
                        self.del_dest.push(Op::DelDest(id, *k));
                    }
                }
            }
        }
    }

    /// Adds a destination of an `mh` service. One that is wanted at weight 0 is added at its
    /// `last_weight` and set to 0 by the next operation: added at 0 it would get no slots in
    /// the lookup table, where an edit to 0 keeps them (see [`DestSpec::last_weight`]).
    fn add_mh_dest(&mut self, id: ServiceId, k: DestKey, d: &DestSpec) {
        if d.weight == 0 && d.last_weight != 0 {
            let slots = DestSpec {
                weight: d.last_weight,
                ..*d
            };
            self.add_dest.push(Op::AddDest(id, k, slots));
            self.add_dest.push(Op::EditDest(id, k, *d));
        } else {
            self.add_dest.push(Op::AddDest(id, k, *d));
        }
    }

    /// A kernel service the config does not want: deleted if lbd owned it or the policy says
    /// so.
    fn unwanted(&mut self, id: ServiceId, desired: &Desired) {
        if desired.owned_before.contains(&id) || desired.unmanaged == UnmanagedPolicy::Remove {
            self.del_svc.push(Op::DelService(id));
        }
    }
}
