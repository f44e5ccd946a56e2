//! TFTP read client: the pure protocol ([`packet`], [`machine`]) driven over a tokio UDP socket.

pub mod machine;
pub mod packet;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

pub use machine::{Action, Input, ReadConfig, ReadTransfer, TransferError};
pub use packet::{ErrorCode, Packet, PacketError, TftpOption};

/// Why a TFTP read failed.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The local UDP socket could not be opened.
    #[error("cannot open a UDP socket on {local}: {source}")]
    Socket {
        /// The address we tried to bind.
        local: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Sending a packet failed (no route, network down).
    #[error("cannot send {what} to {to}: {source}")]
    Send {
        /// The packet kind.
        what: String,
        /// Its destination.
        to: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("cannot receive from the socket: {source}")]
    Recv {
        /// The OS error.
        source: io::Error,
    },
    /// The protocol ended in failure (server error, timeout, size, ...).
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

/// A completed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpRead {
    /// The file.
    pub data: Vec<u8>,
    /// The block size used (granted by the OACK, else 512).
    pub blksize: usize,
    /// The size the server announced (tsize), if it did.
    pub announced_size: Option<u64>,
    /// DATA blocks received (a multiple-of-blksize file ends with an empty one).
    pub blocks: u64,
    /// The server's transfer ID: its address and the port it answered from.
    pub server_tid: SocketAddr,
}

/// Reads one file. Bounded in time by the retransmission budget (`cfg.timeout × (cfg.retries
/// + 1)` per packet); callers add an overall deadline.
pub async fn read(cfg: ReadConfig) -> Result<TftpRead, TftpError> {
    let local: SocketAddr = if cfg.server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    // Not connected: the server answers from a new port (its TID), which the machine locks on.
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|source| TftpError::Socket { local, source })?;
    let server = cfg.server;
    let mut transfer = ReadTransfer::new(cfg);
    let mut timer: Option<tokio::time::Instant> = None;
    // Large enough for the biggest block RFC 2348 allows (65464) plus the header.
    let mut buf = vec![0u8; 65_536];
    let mut actions = transfer.step(std::time::Instant::now(), Input::Start);
    loop {
        for action in actions.drain(..) {
            match action {
                Action::Send { to, packet } => {
                    let stray = transfer.server_tid().is_some_and(|tid| tid != to);
                    match socket.send_to(&packet.emit(), to).await {
                        Ok(_) => {}
                        // An ERROR 5 to a stray sender is a courtesy; failing to send it is no
                        // reason to abandon our own transfer.
                        Err(_) if stray => {}
                        Err(source) => {
                            return Err(TftpError::Send {
                                what: packet.kind(),
                                to,
                                source,
                            })
                        }
                    }
                }
                Action::ArmTimer(at) => timer = Some(tokio::time::Instant::from_std(at)),
                Action::Complete => {
                    let done = TftpRead {
                        blksize: transfer.blksize(),
                        announced_size: transfer.announced_size(),
                        blocks: transfer.blocks(),
                        server_tid: transfer.server_tid().unwrap_or(server),
                        data: transfer.take_data(),
                    };
                    tracing::debug!(
                        bytes = done.data.len(),
                        blocks = done.blocks,
                        blksize = done.blksize,
                        server = %done.server_tid,
                        "tftp read complete"
                    );
                    return Ok(done);
                }
                Action::Fail(e) => return Err(e.into()),
            }
        }
        let Some(deadline) = timer else {
            // The machine always arms a timer while a transfer is open; guard anyway.
            return Err(TransferError::Protocol("transfer stalled without a timer".into()).into());
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received.map_err(|source| TftpError::Recv { source })?;
                let input = Input::Received { from, bytes: &buf[..len] };
                actions = transfer.step(std::time::Instant::now(), input);
            }
            () = tokio::time::sleep_until(deadline) => {
                timer = None;
                actions = transfer.step(std::time::Instant::now(), Input::Timeout);
            }
        }
    }
}
