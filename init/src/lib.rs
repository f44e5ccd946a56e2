//! PID 1 of the load-balancer appliance, as a library so its parts can be tested on the host.
//!
//! `main.rs` wires these together; every module here is usable (and tested) on its own.
//!
//! - [`mount`]: the early filesystems.
//! - [`cmdline`]: the kernel command line and init's `lb.*` keys.
//! - [`console`]: init's output on every `console=`, not only the last.
//! - [`modules`]: kernel modules in dependency order, coldplug by modalias.
//! - [`net`]: links, `ip=`, DHCP.
//! - [`fetch`]: HTTP and TFTP config fetch with retries.
//! - [`config_source`]: where the node's config comes from (network → fetch → validate →
//!   poll) and config install.
//! - [`poll_schedule`]: the waits between polls, backing off while the source fails.
//! - [`sysctl`]: the role's sysctls and the config's.
//! - [`trust`]: signed configs: the image's keys, the fetcher's gate, what is reported.
//! - [`supervise`]: the one reaper, lbd's restart policy.
//! - [`power`]: power button, final reboot(2).

pub mod cmdline;
pub mod config_source;
pub mod console;
pub mod fetch;
pub mod fuzz;
pub mod modules;
pub mod mount;
pub mod net;
pub mod node_network;
pub mod poll_schedule;
pub mod power;
pub mod supervise;
pub mod sysctl;
pub mod trust;
