//! N-way VIPs announced by BGP (issue 21): several active balancers behind ECMP routers, each
//! announcing a VIP while it can serve it, through BIRD 2 (an existing, widely deployed BGP
//! speaker with BFD and a text control socket) that lbd runs and drives.
//!
//! - [`decision`]: which VIPs to announce and why (pure);
//! - [`birdconf`]: BIRD's config for them (pure);
//! - [`control`]: BIRD's control-socket replies (pure, tested on bytes a real BIRD sent);
//! - [`client`]: the control socket (tokio);
//! - [`subsystem`]: BIRD as lbd's child, reconfigured as the decision changes, and the
//!   N-way VIPs on `lo`;
//! - [`watchdog`]: a thread that kills BIRD when lbd's loop has stalled.

pub mod birdconf;
#[cfg(feature = "daemon")]
pub mod client;
pub mod control;
pub mod decision;
#[cfg(feature = "daemon")]
pub mod subsystem;
#[cfg(feature = "daemon")]
pub mod watchdog;
