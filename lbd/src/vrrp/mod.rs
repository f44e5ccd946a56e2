//! VRRP: RFC 3768 (v2) and RFC 5798 (v3, IPv4 and IPv6) between the two balancers of a pair.
//!
//! ```text
//! packet    advertisements as types, emit/parse, checksums                      (pure)
//! announce  gratuitous ARP / unsolicited NA payloads                            (pure)
//! machine   one virtual router's state machine: Spec, State, Timer, Action     (pure)
//! router    all virtual routers: receive checks + drops, sync groups, faults   (pure)
//! sync      VRRP role → IPVS connection-sync role for the reconciler           (pure)
//! runtime   clock, raw sockets, rtnetlink, the lbd Subsystem       (feature `daemon`)
//! ```
//!
//! The pure parts take time and inputs and return actions (`Router::step(now, Input) ->
//! Vec<Action>`); inputs and actions are serde types, so a run can be recorded as JSON lines
//! (`LBD_VRRP_RECORD=DIR` writes `DIR/input.jsonl` and `DIR/output.jsonl`) and replayed
//! against the same outputs (`tests/vrrp_conformance/` holds recorded cases).
//!
//! # Wiring into lbd
//!
//! - `main.rs` registers [`runtime::VrrpSubsystem`] last, so it is applied after IPVS and the
//!   checks and stopped first on SIGTERM (the priority-0 advert goes out before anything
//!   else stops). The subsystem runs its own thread; `apply` only hands it the config.
//! - Health quorum → VRRP: `CheckSubsystem::forward_quorum` feeds
//!   [`runtime::VrrpSubsystem::quorum_sender`]; a lost quorum lowers the instance's priority
//!   by `quorum_priority_drop`, and a drop that would reach 0 faults the instance
//!   (`quorum_priority_drop = 0`, the default, leaves VRRP alone).
//! - VRRP → IPVS connection sync: [`runtime::VrrpSubsystem::status`] is a `watch` of every
//!   instance's [`State`]. The daemon waits on it and, on each change, takes
//!   [`sync::sync_role`] into the reconciler's inputs (`daemon::inputs`) and reconciles: the
//!   kernel then runs the sync master daemon while the followed instance (or every member of
//!   the followed sync group) is master, and the backup daemon otherwise. No VRRP code
//!   touches IPVS.
//!
//! # Limits
//!
//! - Accept_Mode is always on: VIPs are local addresses (IPVS needs that), so the master
//!   accepts packets to them; the config refuses `accept = false` rather than ignore it.
//! - `virtual_mac` on IPv6 instances: the VIPs live on the macvlan and NAs carry the virtual
//!   MAC, but adverts leave from the base interface (the macvlan has no link-local address,
//!   by design, since both balancers would share it).

pub mod announce;
pub mod machine;
pub mod packet;
pub mod router;
pub mod sync;

#[cfg(feature = "daemon")]
pub mod runtime;

pub use machine::{Action, FaultReason, Instance, Spec, State, Timer, Why};
pub use packet::{Advert, Auth, DropReason, Version};
pub use router::{Input, Packet, Router};

#[cfg(test)]
mod tests;
