//! Protocol messages the checkers speak, as pure encoders and parsers (no sockets).

pub mod dns;
#[cfg(feature = "daemon")]
pub mod http;
pub mod mysql;
pub mod pgsql;
pub mod smtp;
