//! Networking at boot: links, `ip=` parsing, static addresses and the DHCP client.

pub mod dhcp;
pub mod ipspec;
