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
//!   table before the old one leaves. Nothing is ever flushed. The moves that keep an `mh`
//!   service in order (a delete right before the add of the same destination) are among the
//!   adds.
//! - Ownership: a service whose key is in the config is lbd's, with all its destinations
//!   (destinations the config does not list are drained, then removed: see [`drain`]). A service lbd owned before (an
//!   earlier config; the subsystem remembers them across lbd restarts) and that the config no
//!   longer names is deleted. Other services are *unmanaged*: `ipvs.unmanaged = "keep"`
//!   (default) leaves them alone, `"remove"` deletes them. The same policy covers a sync daemon
//!   when the config has no `[ipvs.sync]`.
//! - Health: a down real gets weight 0 with `on_failure = "inhibit"` (established connections
//!   continue) or leaves the table with `"remove"`. When no real of a service is up, its sorry
//!   server is added (weight 1).
//! - `mh` services: their destinations are kept in the kernel in one canonical order whatever
//!   the history of adds and deletes, so that balancers with the same reals build the same
//!   Maglev table ([`order`]): an add that would break the order moves the destinations it
//!   must (delete + add, in one batch). A down real of an `mh` service always stays at weight 0
//!   in its place (`on_failure = "remove"` is refused for `mh` by validation), and so does a
//!   draining one.

mod desired;
pub mod drain;
mod kept;
mod kernel;
#[cfg(test)]
mod mh_tests;
pub mod order;
mod plan;
#[cfg(test)]
mod tests;

pub use desired::{
    desired, fwd_method, service_id, service_state, Desired, DesiredTimeouts, Health, Overrides,
    RealHealth, SyncRole,
};
pub use drain::{ConnCounts, DrainEnd, DrainEvent, Drains};
pub use kept::KeptDesired;
pub use kernel::{DestKey, DestSpec, KernelState, ServiceSpec, ServiceState, Table};
pub use order::DestList;
pub use plan::{moves, plan, plan_in, Op, PlanCounts, Scope};
