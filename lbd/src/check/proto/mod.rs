//! Protocol messages the checkers speak, as pure encoders and parsers (no sockets).

pub mod base64;
pub mod dns;
#[cfg(feature = "daemon")]
pub mod http;
pub mod mysql;
pub mod pgsql;
#[cfg(feature = "daemon")]
pub mod scram;
pub mod smtp;
pub mod syn;
