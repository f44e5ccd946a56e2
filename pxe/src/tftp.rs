//! The TFTP server (async-tftp), read-only: the generic iPXE script, node scripts and configs
//! (the same as over HTTP) and the files of the TFTP root (`undionly.kpxe`, `snponly.efi`, `ipxe.efi`).
//! Write requests are refused. Each request is logged on `pxe::access` when it is opened and
//! again when the transfer ends (complete or abandoned, with the bytes sent).

use crate::files::FileError;
use crate::ipxe;
use crate::routes::{self, Route};
use crate::site::Lookup;
use crate::state::Shared;
use async_tftp::packet;
use async_tftp::server::{Handler, TftpServerBuilder};
use bytes::Bytes;
use futures_lite::io::{AsyncRead, Cursor};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The read-only handler.
pub struct ReadOnly {
    shared: Arc<Shared>,
}

/// Starts serving TFTP on `socket` (already bound).
pub async fn serve(socket: UdpSocket, shared: Arc<Shared>) -> Result<(), async_tftp::Error> {
    let server = TftpServerBuilder::with_handler(ReadOnly { shared })
        .std_socket(socket)?
        .timeout(Duration::from_secs(2))
        .max_send_retries(10)
        .build()
        .await?;
    server.serve().await
}

fn refuse(peer: &SocketAddr, file: &str, what: &str, err: packet::Error) -> packet::Error {
    info!(
        target: "pxe::access",
        proto = "tftp",
        %peer,
        path = file,
        status = what,
        bytes = 0u64,
        node = "-",
        "tftp request refused"
    );
    err
}

impl Handler for ReadOnly {
    type Reader = Logged;
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let file = path.to_string_lossy().into_owned();
        let site = self.shared.site();
        let (body, node): (Bytes, Option<String>) = match routes::tftp(&file) {
            Route::GenericScript => (
                Bytes::from(ipxe::generic_script(&site.params.base_url)),
                None,
            ),
            Route::NodeScript(mac) => match site.script(mac) {
                Some((hostname, script)) => (Bytes::from(script), Some(hostname)),
                None => {
                    warn!(%mac, "unknown MAC asked for its boot script over TFTP; add it to the inventory");
                    return Err(refuse(
                        client,
                        &file,
                        "unknown-mac",
                        packet::Error::FileNotFound,
                    ));
                }
            },
            Route::Config(mac) => match site.lookup(mac) {
                Lookup::Node { hostname, rendered } | Lookup::Default { hostname, rendered } => {
                    (rendered.body.clone(), Some(hostname))
                }
                Lookup::NotReady { hostname, .. } => {
                    warn!(%mac, %hostname, "no valid config yet for a TFTP request");
                    return Err(refuse(
                        client,
                        &file,
                        "not-ready",
                        packet::Error::FileNotFound,
                    ));
                }
                Lookup::Unknown => {
                    warn!(%mac, "unknown MAC asked for its config over TFTP; add it to the inventory");
                    return Err(refuse(
                        client,
                        &file,
                        "unknown-mac",
                        packet::Error::FileNotFound,
                    ));
                }
            },
            Route::Signature(words) => match &self.shared.signatures {
                Some(dir) => match dir.get(&words).await {
                    Ok(f) => (f.body.clone(), None),
                    Err(_) => {
                        return Err(refuse(
                            client,
                            &file,
                            "not-found",
                            packet::Error::FileNotFound,
                        ))
                    }
                },
                None => {
                    return Err(refuse(
                        client,
                        &file,
                        "not-found",
                        packet::Error::FileNotFound,
                    ))
                }
            },
            Route::File(words) => {
                let Some(root) = &self.shared.tftp_root else {
                    return Err(refuse(
                        client,
                        &file,
                        "not-found",
                        packet::Error::FileNotFound,
                    ));
                };
                match root.get(&words).await {
                    Ok(f) => (f.body.clone(), None),
                    Err(FileError::Path(e)) if e.is_forbidden() => {
                        warn!(peer = %client, path = %file, "tftp refused: {e}");
                        return Err(refuse(
                            client,
                            &file,
                            "forbidden",
                            packet::Error::PermissionDenied,
                        ));
                    }
                    Err(e) => {
                        return Err(refuse(
                            client,
                            &file,
                            if matches!(e, FileError::Path(_)) {
                                "not-found"
                            } else {
                                "error"
                            },
                            packet::Error::FileNotFound,
                        ));
                    }
                }
            }
            Route::Refused(e) => {
                warn!(peer = %client, path = %file, "tftp refused: {e}");
                return Err(refuse(
                    client,
                    &file,
                    "forbidden",
                    packet::Error::PermissionDenied,
                ));
            }
            Route::Status | Route::LoaderFile(_) | Route::BadMac(_) | Route::NotFound => {
                return Err(refuse(
                    client,
                    &file,
                    "not-found",
                    packet::Error::FileNotFound,
                ));
            }
        };
        let len = body.len() as u64;
        info!(
            target: "pxe::access",
            proto = "tftp",
            peer = %client,
            path = %file,
            status = "sending",
            bytes = len,
            node = node.as_deref().unwrap_or("-"),
        );
        Ok((
            Logged {
                inner: Cursor::new(body),
                peer: *client,
                file,
                node,
                len,
                sent: 0,
                started: Instant::now(),
            },
            Some(len),
        ))
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        warn!(peer = %client, path = %path.display(), "tftp write refused: pxe is read-only");
        Err(refuse(
            client,
            &path.to_string_lossy(),
            "write-refused",
            packet::Error::PermissionDenied,
        ))
    }
}

/// A body being sent; logs the end of the transfer when dropped.
pub struct Logged {
    inner: Cursor<Bytes>,
    peer: SocketAddr,
    file: String,
    node: Option<String>,
    len: u64,
    sent: u64,
    started: Instant,
}

impl AsyncRead for Logged {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.sent += *n as u64;
        }
        r
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // The reader is dropped after the last ACK or when the client gives up. All bytes
        // read means the last block went out; the server ends the transfer only once it is
        // acknowledged or the retries are exhausted.
        let status = if self.sent == self.len {
            "complete"
        } else {
            "abandoned"
        };
        info!(
            target: "pxe::access",
            proto = "tftp",
            peer = %self.peer,
            path = %self.file,
            status,
            bytes = self.sent,
            node = self.node.as_deref().unwrap_or("-"),
            us = self.started.elapsed().as_micros() as u64,
        );
    }
}
