//! DHCPv4 client: message encoding/decoding ([`message`]), the lease a DHCPACK grants
//! ([`lease`]) and the pure client state machine ([`client`]). The socket and the timer that
//! drive it live in `net::runtime`.

pub mod client;
pub mod lease;
pub mod message;

pub use client::{
    Action, Backoff, Destination, DhcpClient, DhcpConfig, DhcpTiming, Input, State, Stats,
};
pub use lease::Lease;
pub use message::ClientIdentity;
