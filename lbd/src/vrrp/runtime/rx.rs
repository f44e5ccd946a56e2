//! Receiving adverts: one reader task per VRRP socket, handing packets to the driver.

use super::sock::{Received, VrrpSocket};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::{error, warn};

/// A receive-and-send socket and its reader task.
pub(super) struct RxSocket {
    pub(super) sock: Arc<AsyncFd<VrrpSocket>>,
    pub(super) reader: tokio::task::JoinHandle<()>,
}

impl Drop for RxSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub(super) async fn read_loop(
    sock: Arc<AsyncFd<VrrpSocket>>,
    tx: mpsc::UnboundedSender<(String, Received)>,
) {
    let mut buf = vec![0u8; 65536];
    let ifname = sock.get_ref().ifname.clone();
    loop {
        let mut guard = match sock.readable().await {
            Ok(g) => g,
            Err(e) => {
                error!("vrrp: receiving on {ifname}: {e}");
                return;
            }
        };
        loop {
            match guard.get_inner().recv(&mut buf) {
                Ok(r) => {
                    if tx.send((ifname.clone(), r)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => continue,
                Err(e) => {
                    warn!("vrrp: receiving on {ifname}: {e}");
                    guard.clear_ready();
                    break;
                }
            }
        }
    }
}
