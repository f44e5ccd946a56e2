//! lbd: the load-balancer daemon.
//!
//! `config` is pure (no tokio) and shared with `init`, `pxe` and `lbctl`; the daemon parts are
//! behind the `daemon` feature.

#[cfg(feature = "daemon")]
pub mod api;
pub mod bgp;
pub mod check;
pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod fuzz;
#[cfg(feature = "daemon")]
pub mod heap;
pub mod ipvs;
pub mod liveness;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "netlink")]
pub mod netlink;
pub mod packed;
pub mod percent;
pub mod reconcile;
#[cfg(feature = "daemon")]
pub mod sockets;
#[cfg(feature = "logging")]
pub mod syslog;
#[cfg(feature = "trust")]
pub mod trust;
pub mod vrrp;
