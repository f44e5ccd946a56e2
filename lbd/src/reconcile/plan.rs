//! The plan: desired against kernel, as the ordered operations that close the gap.

use super::desired::Desired;
use super::kernel::{DestKey, DestSpec, KernelState, ServiceSpec, ServiceState};
use crate::config::UnmanagedPolicy;
use crate::ipvs::msg::{request, DaemonEntry, DaemonState, IpvsMessage, ServiceId, Timeouts};
use std::collections::BTreeSet;
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
    match scope {
        Scope::All => {
            for (id, want) in &desired.table {
                steps.service(*id, want, observed.table.get(id));
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
                    (Some(want), have) => steps.service(*id, want, have),
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
    ops.extend(add_svc);
    ops.extend(edit_svc);
    ops.extend(add_dest);
    ops.extend(edit_dest);
    ops.extend(del_dest);
    ops.extend(del_svc);
    ops
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
    fn service(&mut self, id: ServiceId, want: &ServiceState, have: Option<&ServiceState>) {
        match have {
            None => {
                self.add_svc.push(Op::AddService(id, want.spec.clone()));
                for (k, d) in &want.dests {
                    self.add_dest.push(Op::AddDest(id, *k, *d));
                }
            }
            Some(have) => {
                if !want.spec.satisfied_by(&have.spec) {
                    self.edit_svc.push(Op::EditService(id, want.spec.clone()));
                }
                for (k, d) in &want.dests {
                    match have.dests.get(k) {
                        None => self.add_dest.push(Op::AddDest(id, *k, *d)),
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

    /// A kernel service the config does not want: deleted if lbd owned it or the policy says
    /// so.
    fn unwanted(&mut self, id: ServiceId, desired: &Desired) {
        if desired.owned_before.contains(&id) || desired.unmanaged == UnmanagedPolicy::Remove {
            self.del_svc.push(Op::DelService(id));
        }
    }
}
