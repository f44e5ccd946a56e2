//! The plan: desired against kernel, as the ordered operations that close the gap.

use super::desired::Desired;
use super::kernel::{DestKey, DestSpec, KernelState, ServiceSpec};
use crate::config::UnmanagedPolicy;
use crate::ipvs::msg::{request, DaemonEntry, DaemonState, IpvsMessage, ServiceId, Timeouts};
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
