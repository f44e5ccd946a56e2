//! The one netlink layer of init and lbd: links, addresses and routes over rtnetlink.
//!
//! - [`types`]: [`Link`] and [`Addr`] read from rtnetlink messages (pure, tested on real bytes
//!   the kernel sent), the error type with the kernel's errno kept;
//! - [`conn`]: [`Netlink`], a connection on the current tokio runtime with idempotent changes
//!   (boot networking in init, VIPs and the virtual-MAC macvlan in lbd's VRRP);
//! - [`monitor`]: link and address changes as the kernel announces them.
//!
//! (The IPVS genetlink family is elsewhere: `lbd::ipvs`.)

pub mod conn;
pub mod monitor;
pub mod stack;
pub mod types;

pub use conn::{AddressOptions, Netlink};
pub use monitor::{monitor, Event};
/// `proto` of a route (`ip route` shows it: `proto static`, `proto dhcp`).
pub use rtnetlink::packet_route::link::LinkLayerType;
pub use rtnetlink::packet_route::route::RouteProtocol;
pub use types::{errno, Addr, Link, NetError};
