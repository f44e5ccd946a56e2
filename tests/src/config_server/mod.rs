//! A config server that can misbehave on purpose, for chaos tests of init's config fetch.
//!
//! init fetches the node's config over HTTP and keeps polling it; it must never apply a bad
//! config, and it must recover by itself once the server is well again. python's http.server
//! ([`crate::http`]) only ever answers correctly, so the faults a real network and a real
//! server produce need a server of our own: one that stops listening ([`Mode::Gone`]), accepts
//! and says nothing ([`Mode::Blackhole`]), answers something that is not HTTP
//! ([`Mode::Garbage`]), cuts a body short ([`Mode::Truncated`]), sends far more than any config
//! ([`Mode::Huge`], [`Mode::HugeUndeclared`]) or trickles ([`Mode::Slow`]). The mode is switched
//! while the server runs ([`ConfigServer::set_mode`]) and applies to the requests that follow,
//! so a test can break the server under a polling init and mend it again.
//!
//! It is plain std threads, no async runtime: it runs beside anything, and inside a network
//! namespace ([`ConfigServer::start_in`]) like any other thread of [`Netns::thread`]. One
//! thread owns the listener (and closes and reopens it for [`Mode::Gone`]); every connection
//! gets a thread of its own, at most [`MAX_CONNECTIONS`] at a time. Each connection answers one
//! request and is closed (`Connection: close`), as init makes one connection per request.
//! Every thread looks at a stop flag at least every 50 ms, so dropping the server ends them all
//! within about a second, also a [`Mode::Slow`] answer that would take hours.
//!
//! Every request is logged ([`ConfigServer::requests`]): when it came, what it asked for, the
//! mode that answered it, the status sent, the bytes sent and how the exchange ended, so a test
//! can assert how many fetches happened and what they got.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::{Netns, NetnsError};

mod answer;
mod connection;
mod faults;
mod http_date;
mod listener;
mod shared;

use connection::header_value;
use listener::{accept_loop, listen};
use shared::{lock, Control, Shared};

/// Connections served at once; more are closed as soon as they are accepted (and counted in
/// [`ConfigServer::rejected_connections`]).
pub const MAX_CONNECTIONS: usize = 64;
/// How long [`Mode::Blackhole`] holds a connection before closing it (the client's timeout is
/// meant to fire long before).
pub const BLACKHOLE_HOLD: Duration = Duration::from_secs(120);
/// How long a client may take to send its request head; then the connection is closed
/// without an answer and without a log entry.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may stop reading an answer before the server gives up on it
/// ([`End::Stalled`]).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a blocked thread looks at the stop flag (socket timeouts are this short).
const TICK: Duration = Duration::from_millis(50);
/// How long `start` and `set_mode` wait for the listener thread.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `drop` waits for the threads.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// How the server answers; see [`ConfigServer::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A correct static file server: `GET /NAME` answers the file `DIR/NAME` as it is at that
    /// moment (read per request) with `Content-Length`, an `ETag` (a hash of the content) and
    /// `Last-Modified`; `304 Not Modified` to a matching `If-None-Match` (or, without one, an
    /// `If-Modified-Since` not older than the file). `404` for a missing file, `400` for a path
    /// with a `..` segment, `405` for methods other than GET and HEAD.
    Serve,
    /// Not listening: the listening socket is closed, so connections are refused as from a
    /// stopped or crashed server. Leaving this mode listens again on the same address. A
    /// request already accepted is closed without an answer.
    Gone,
    /// Reads the request and never answers; the connection is closed after
    /// [`BLACKHOLE_HOLD`], when the client closes it, or when the server is dropped.
    Blackhole,
    /// Answers about 1 KiB of random printable bytes (not HTTP), then closes.
    Garbage,
    /// A `200` for the real file whose `Content-Length` is the file's length (at least 1), then
    /// only the first half of the file, then close; also to a request whose validators match
    /// (a 304 has no body to cut). Other answers (404...) are sent as in [`Mode::Serve`].
    Truncated,
    /// A `200` declaring a `Content-Length` of this many bytes, then a body of that many bytes
    /// of config-looking junk, written in chunks until done or until the client closes, whatever
    /// the path and method.
    Huge(u64),
    /// [`Mode::Huge`] without a `Content-Length`: the body ends when the connection closes.
    HugeUndeclared(u64),
    /// The answer of [`Mode::Serve`], written at this many bytes per second from the first
    /// byte of the status line (at 1 byte per second the headers alone take minutes). Stops when
    /// the client closes. Must be at least 1.
    Slow {
        /// The rate.
        bytes_per_second: u32,
    },
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Still going (a blackholed connection, a slow or huge answer being written).
    InProgress,
    /// Everything the mode meant to send was sent (for [`Mode::Truncated`] the half body, for
    /// [`Mode::Gone`] nothing), then the connection was closed.
    Complete,
    /// The client closed or reset the connection first.
    PeerClosed,
    /// [`Mode::Blackhole`] held the connection for [`BLACKHOLE_HOLD`] and closed it.
    Held,
    /// The client stopped reading for [`STALL_TIMEOUT`].
    Stalled,
    /// The server was dropped.
    Stopped,
    /// Another socket error.
    Error(String),
}

/// One request the server read, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// When the request head was read.
    pub at: Instant,
    /// The client.
    pub peer: SocketAddr,
    /// The method (`GET`).
    pub method: String,
    /// The request target as sent, query included (`/nodes/lb-a.toml`).
    pub path: String,
    /// The request's headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The mode that answered.
    pub mode: Mode,
    /// The status sent, if a status line was sent (not for [`Mode::Gone`],
    /// [`Mode::Blackhole`], [`Mode::Garbage`]). Set before the first byte is written.
    pub status: Option<u16>,
    /// The `Content-Length` announced, if any.
    pub declared: Option<u64>,
    /// Bytes written to the socket (head and body).
    pub sent: u64,
    /// How it ended.
    pub end: End,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// The server could not be started or switched.
#[derive(thiserror::Error)]
pub enum ConfigServerError {
    /// The directory to serve does not exist.
    #[error("cannot serve {0}: not a directory")]
    NoDir(PathBuf),
    /// Listening failed (the address is in use, not local...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The listener thread could not be started, died, or did not answer in time.
    #[error("config server thread: {0}")]
    Thread(String),
    /// A mode that cannot be served.
    #[error("invalid mode {0:?}: {1}")]
    BadMode(Mode, &'static str),
}

crate::debug_is_display!(ConfigServerError);

/// A running config server; every thread of it is stopped on drop.
pub struct ConfigServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ConfigServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServer")
            .field("addr", &self.addr)
            .field("dir", &self.shared.dir)
            .field("mode", &self.mode())
            .finish()
    }
}

impl ConfigServer {
    /// Serves `dir` on `bind` in the caller's network namespace, in [`Mode::Serve`]. Port 0
    /// picks a free port ([`ConfigServer::addr`] tells which).
    pub fn start(bind: SocketAddr, dir: &Path) -> Result<Self, ConfigServerError> {
        Self::launch(None, bind, dir)
    }

    /// Serves `dir` on `bind` inside `ns` (the listening socket is made, and remade after
    /// [`Mode::Gone`], on a thread in the namespace), in [`Mode::Serve`].
    pub fn start_in(ns: &Netns, bind: SocketAddr, dir: &Path) -> Result<Self, ConfigServerError> {
        Self::launch(Some(ns), bind, dir)
    }

    fn launch(ns: Option<&Netns>, bind: SocketAddr, dir: &Path) -> Result<Self, ConfigServerError> {
        if !dir.is_dir() {
            return Err(ConfigServerError::NoDir(dir.to_owned()));
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            control: Mutex::new(Control {
                mode: Mode::Serve,
                wanted: 0,
                applied: 0,
                bind_error: None,
            }),
            control_changed: Condvar::new(),
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            workers: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let body = move || {
            let listener = match listen(bind) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let addr = match listener.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(addr));
            accept_loop(&thread_shared, addr, listener);
        };
        let handle = match ns {
            Some(ns) => ns.thread(body)?,
            None => std::thread::Builder::new()
                .name("config-server".into())
                .spawn(body)
                .map_err(|e| ConfigServerError::Thread(format!("cannot start: {e}")))?,
        };
        match rx.recv_timeout(CONTROL_TIMEOUT) {
            Ok(Ok(addr)) => Ok(ConfigServer {
                shared,
                addr,
                listener: Some(handle),
            }),
            Ok(Err(source)) => {
                let _ = handle.join();
                Err(ConfigServerError::Bind { addr: bind, source })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = match handle.join() {
                    Err(panic) => panic_text(panic.as_ref()),
                    Ok(()) => "ended without listening".to_owned(),
                };
                Err(ConfigServerError::Thread(why))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                shared.stop.store(true, Ordering::Relaxed);
                Err(ConfigServerError::Thread(format!(
                    "not listening after {CONTROL_TIMEOUT:?}"
                )))
            }
        }
    }

    /// The address it listens on (the real port when started on port 0), also while
    /// [`Mode::Gone`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/` + `path` (without a leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches the mode for the requests that follow (exchanges under way finish in their
    /// mode). Returns once the listener thread has acted on it: after `set_mode(Mode::Gone)`
    /// connections are refused, after leaving it they are accepted again. An error if listening
    /// again fails (the thread keeps trying every 10 ms), or for `Slow` at 0 bytes per second.
    pub fn set_mode(&self, mode: Mode) -> Result<(), ConfigServerError> {
        if matches!(
            mode,
            Mode::Slow {
                bytes_per_second: 0
            }
        ) {
            return Err(ConfigServerError::BadMode(
                mode,
                "the rate must be at least 1 byte per second",
            ));
        }
        let mut control = lock(&self.shared.control);
        control.mode = mode;
        control.wanted += 1;
        let wanted = control.wanted;
        self.shared.control_changed.notify_all();
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        while control.applied < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.listener.as_ref().is_none_or(|h| h.is_finished()) {
                return Err(ConfigServerError::Thread(format!(
                    "the listener thread did not switch to {mode:?} within {CONTROL_TIMEOUT:?}"
                )));
            }
            control = self
                .shared
                .control_changed
                .wait_timeout(control, left.min(TICK))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        match control.bind_error.take() {
            Some(source) => Err(ConfigServerError::Bind {
                addr: self.addr,
                source,
            }),
            None => Ok(()),
        }
    }

    /// Every request so far, in the order their heads were read (connections that never sent
    /// a request head are not logged).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Connections closed unserved because [`MAX_CONNECTIONS`] were being served.
    pub fn rejected_connections(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }
}

impl Drop for ConfigServer {
    fn drop(&mut self) {
        {
            let _control = lock(&self.shared.control);
            self.shared.stop.store(true, Ordering::Relaxed);
            self.shared.control_changed.notify_all();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        // The listener thread first: once it is gone no connection thread is added.
        if let Some(h) = self.listener.take() {
            join_by(h, deadline);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for h in workers {
            join_by(h, deadline);
        }
    }
}

/// Joins `h` if it ends by `deadline`; else leaves it running (every thread here looks at the
/// stop flag every 50 ms, so this only happens if a socket call ignores its timeout).
fn join_by(h: JoinHandle<()>, deadline: Instant) {
    while !h.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        let _ = h.join();
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_owned()
    }
}

#[cfg(test)]
mod tests;
