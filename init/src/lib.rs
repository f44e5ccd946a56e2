//! PID 1 of the load-balancer appliance, as a library so its parts can be tested on the host.
//!
//! `main.rs` wires these together; every module here is usable (and tested) on its own.

pub mod fetch;
pub mod net;
