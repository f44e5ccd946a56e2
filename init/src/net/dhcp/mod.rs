//! DHCPv4 client: message encoding/decoding ([`message`]) and the pure client state machine
//! ([`client`]). The socket and the timer that drive it live in `net::runtime`.

pub mod client;
pub mod message;

pub use client::{
    Action, Backoff, Destination, DhcpClient, DhcpConfig, DhcpTiming, Input, Lease, State, Stats,
};
pub use message::ClientIdentity;
