//! The reals' listeners on the host: one port per checker and kind, counting what they serve.

use crate::opts::Kind;
use lb_bench::{http_request, tcp_segment};
use lbtest::Netns;
use nix::sys::socket;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Connections served on one port.
#[derive(Default)]
pub struct Served {
    pub accepted: AtomicU64,
    pub answered: AtomicU64,
}

impl Served {
    /// A check that is served as soon as it arrives.
    fn count(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// HTTP connections are handed to a pool, so a slow guest request never stalls the accepts.
const HTTP_WORKERS: usize = 32;

/// Serves `kind`'s checks on `listener` from threads of their own, counting them in `served`.
pub fn serve(
    ns: &Netns,
    listener: TcpListener,
    kind: Kind,
    served: Arc<Served>,
) -> Result<(), String> {
    match kind {
        Kind::TcpHalfOpen => count_syns(ns, listener, served)?,
        Kind::Tcp => {
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if conn.is_ok() {
                        served.count();
                    }
                    // Dropped at once: the server closes first, as a health endpoint does.
                }
            });
        }
        Kind::Http => answer_from_a_pool(listener, served),
        Kind::HttpKeepAlive => {
            // A thread per connection: each is kept, and answers request after request.
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let served = served.clone();
                    std::thread::spawn(move || serve_kept(conn, &served));
                }
            });
        }
    }
    Ok(())
}

/// Nothing is accepted: counts the SYNs that reach the listener's port, from a raw socket (it
/// gets a copy of every TCP segment for this namespace's addresses).
fn count_syns(ns: &Netns, listener: TcpListener, served: Arc<Served>) -> Result<(), String> {
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let raw = ns
        .enter(|| {
            socket::socket(
                socket::AddressFamily::Inet,
                socket::SockType::Raw,
                socket::SockFlag::SOCK_CLOEXEC,
                socket::SockProtocol::Tcp,
            )
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("raw socket: {e}"))?;
    std::thread::spawn(move || {
        let _listener = listener;
        let mut buf = [0u8; 128];
        while let Ok(n) = socket::recv(raw.as_raw_fd(), &mut buf, socket::MsgFlags::empty()) {
            if tcp_segment::syn_destination_port(&buf[..n]) == Some(port) {
                served.count();
            }
        }
    });
    Ok(())
}

/// Accepts on one thread and answers on a pool of [`HTTP_WORKERS`].
fn answer_from_a_pool(listener: TcpListener, served: Arc<Served>) {
    let (tx, rx) = mpsc::channel::<TcpStream>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..HTTP_WORKERS {
        let rx = rx.clone();
        let served = served.clone();
        std::thread::spawn(move || loop {
            let next = rx.lock().map(|r| r.recv());
            let Ok(Ok(conn)) = next else { return };
            if answer_http(conn) {
                served.answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            served.accepted.fetch_add(1, Ordering::Relaxed);
            if tx.send(conn).is_err() {
                return;
            }
        }
    });
}

/// Answers HTTP/1.1 requests on one connection until the client closes it; each counts as a
/// check served.
fn serve_kept(mut conn: TcpStream, served: &Served) {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    loop {
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
        while http_request::take_head(&mut buf, &mut got) {
            served.accepted.fetch_add(1, Ordering::Relaxed);
            if conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n",
                )
                .is_err()
            {
                return;
            }
            served.answered.fetch_add(1, Ordering::Relaxed);
        }
        if got == buf.len() {
            return; // not HTTP
        }
    }
}

/// Reads a request head and answers 200 with a short body; true if it was answered.
fn answer_http(mut conn: TcpStream) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => got += k,
        }
        if http_request::has_head(&buf[..got]) {
            break;
        }
    }
    conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .is_ok()
}
