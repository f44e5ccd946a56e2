//! lbd: the load-balancer daemon.
//!
//! `config` is pure (no tokio) and shared with `init`, `pxe` and `lbctl`; the daemon parts are
//! behind the `daemon` feature.

pub mod config;
pub mod ipvs;
pub mod reconcile;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "logging")]
pub mod logging;
