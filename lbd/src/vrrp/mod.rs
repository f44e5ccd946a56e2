//! VRRP: RFC 3768 (v2) and RFC 5798 (v3, IPv4 and IPv6) between the two balancers of a pair.
//!
//! ```text
//! packet    advertisements as types, emit/parse, checksums                      (pure)
//! announce  gratuitous ARP / unsolicited NA payloads                            (pure)
//! machine   one virtual router's state machine: Spec, State, Timer, Action     (pure)
//! node      all routers: receive checks + drop counters, sync groups, faults   (pure)
//! sync      VRRP role → IPVS connection-sync role for the reconciler           (pure)
//! runtime   clock, raw sockets, rtnetlink, the lbd Subsystem       (feature `daemon`)
//! ```
//!
//! The pure parts take time and inputs and return actions (`Node::step(now, Input) ->
//! Vec<Action>`); inputs and actions are serde types, so a run can be recorded as JSON lines
//! (`LBD_VRRP_RECORD=FILE`) and replayed against the same outputs.

pub mod announce;
pub mod machine;
pub mod node;
pub mod packet;
pub mod sync;

#[cfg(feature = "daemon")]
pub mod runtime;

pub use machine::{Action, FaultReason, Instance, Spec, State, Timer, Why};
pub use node::{Input, Node, Packet};
pub use packet::{Advert, Auth, DropReason, Version};

#[cfg(test)]
mod tests;
