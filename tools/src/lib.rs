//! lbctl's library: config converters, real-server set-up commands, and the control-API
//! client, so tests can drive them without the binary.

pub mod client;
pub mod convert;
pub mod fuzz;
pub mod realserver;
pub mod status;
pub mod table;
