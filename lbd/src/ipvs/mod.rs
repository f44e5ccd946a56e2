//! IPVS: the kernel's virtual-server tables over generic netlink (family "IPVS").
//!
//! - [`nl`]: netlink/generic-netlink framing (pure).
//! - [`msg`]: IPVS messages as types, emit and parse (pure).
//! - [`sysctl`]: the settings only `/proc/sys/net/ipv4/vs` holds (sloppy TCP/SCTP), planned.
//! - `client` (feature `daemon`): a blocking client over a netlink socket (neli resolves the
//!   family and owns the socket; the messages are encoded by [`msg`]), batching many requests
//!   per send and reading their acknowledgements in bulk.
//! - `subsystem` (feature `daemon`): lbd's IPVS subsystem: adopt the kernel table, reconcile.

pub mod msg;
pub mod nl;
pub mod sysctl;

#[cfg(feature = "daemon")]
pub mod client;
#[cfg(feature = "daemon")]
pub mod subsystem;
