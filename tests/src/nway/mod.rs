//! N-way balancing: three balancers behind a router that spreads flows over them by ECMP,
//! each balancer announcing the VIP by BGP while it can serve it (lbd drives BIRD), and every
//! balancer picking the same real for a flow (`mh` with its reals in one canonical order,
//! `sloppy_tcp` so a flow moved mid-connection is picked up).
//!
//! ```text
//!   namespace "nway": the router — br0 10.73.0.1/24, BIRD AS 65000 with BFD, ECMP routes to
//!   │  the VIPs hashed on L4 (fib_multipath_hash_policy=1); config server :8080 on br0
//!   ├─ tap1 ── lb1 10.73.0.11 ┐ AS 65001; services web (:80) and echo (:9000) on VIP
//!   ├─ tap2 ── lb2 10.73.0.12 ├ 10.73.100.1, single (:80, r1 only) on VIP 10.73.100.2;
//!   ├─ tap3 ── lb3 10.73.0.13 ┘ DR, mh with mh-port and mh-fallback; and on lb1/lb2 only,
//!   │                           a pair service on VRRP VIP 10.73.0.100 (mixed roles)
//!   ├─ veth ── r1 10.73.0.21 ┐
//!   ├─ veth ── r2 10.73.0.22 ├ DR reals: the VIPs on lo, default route via the router
//!   ├─ veth ── r3 10.73.0.23 ┘
//!   └─ vcl 10.74.0.1 ── veth ── client 10.74.0.2 (default route via the router)
//! ```
//!
//! The router is real routing software (BIRD 2, the Debian package), so "the router stops
//! using a balancer" is read from its kernel routing table (`ip -j route`), not from lbd.
//! Which real served a flow is read from the answer itself (every real answers its name).

pub mod flows;
pub mod lab;

pub use lab::{Lab, Member, MEMBERS};
