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

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::netns::{Netns, NetnsError};

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
/// How often the listener thread looks for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// How long `start` and `set_mode` wait for the listener thread.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `drop` waits for the threads.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// The size of each write of a [`Mode::Huge`] body.
const JUNK_CHUNK: usize = 64 * 1024;

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

/// What the listener thread is told and what it reports back.
struct Control {
    mode: Mode,
    /// Bumped by each `set_mode`.
    wanted: u64,
    /// The last `wanted` the listener thread has acted on.
    applied: u64,
    /// Why listening again failed when `applied` was last set.
    bind_error: Option<io::Error>,
}

/// State of one server, shared by its threads.
struct Shared {
    dir: PathBuf,
    control: Mutex<Control>,
    control_changed: Condvar,
    stop: AtomicBool,
    log: Mutex<Vec<Request>>,
    active: AtomicUsize,
    rejected: AtomicU64,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks, also after a panic elsewhere (the data are logs and flags, still usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn mode(&self) -> Mode {
        lock(&self.control).mode
    }

    /// Logs a new request; returns its index for later updates.
    fn log_start(&self, request: Request) -> usize {
        let mut log = lock(&self.log);
        log.push(request);
        log.len() - 1
    }

    fn log_update(&self, index: usize, f: impl FnOnce(&mut Request)) {
        if let Some(r) = lock(&self.log).get_mut(index) {
            f(r);
        }
    }
}

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

/// A non-blocking listener on `addr` (std sets `SO_REUSEADDR`, so the address of a closed
/// listener can be taken again at once).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The listener thread: acts on mode changes (closing and reopening the listener), accepts and
/// hands each connection to a thread of its own, until the stop flag is set.
fn accept_loop(shared: &Arc<Shared>, addr: SocketAddr, listener: TcpListener) {
    let mut listener = Some(listener);
    let mut control = lock(&shared.control);
    loop {
        if shared.stopping() {
            return;
        }
        let changed = control.applied != control.wanted;
        if control.mode == Mode::Gone {
            listener = None;
        } else if listener.is_none() {
            match listen(addr) {
                Ok(l) => listener = Some(l),
                // Reported to the set_mode that asked; retried every poll.
                Err(e) if changed => control.bind_error = Some(e),
                Err(_) => {}
            }
        }
        if changed {
            control.applied = control.wanted;
            shared.control_changed.notify_all();
        }
        if let Some(l) = &listener {
            drop(control);
            // Until WouldBlock (none waiting) or another error (a connection reset while
            // queued, too many open files): those are tried again at the next poll.
            while let Ok((stream, peer)) = l.accept() {
                spawn_connection(shared, stream, peer);
            }
            control = lock(&shared.control);
        }
        if !shared.stopping() && control.applied == control.wanted {
            control = shared
                .control_changed
                .wait_timeout(control, ACCEPT_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Decrements the count of active connections when a connection thread ends, also by panic.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    // Only this thread adds to `active`, so the check cannot be overtaken.
    if shared.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        return; // dropping the stream closes it
    }
    shared.active.fetch_add(1, Ordering::Relaxed);
    let active = Active(Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .name("config-server-conn".into())
        .spawn(move || {
            let shared = Arc::clone(&active.0);
            serve_connection(&shared, stream, peer);
            drop(active);
        });
    match spawned {
        Ok(h) => {
            let mut workers = lock(&shared.workers);
            workers.retain(|w| !w.is_finished());
            workers.push(h);
        }
        // The closure (with `active` and the stream) was dropped: count and connection are undone.
        Err(_) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Reads the request head (up to the blank line); `None` if the client closes, is too slow,
/// sends too much, or the server stops.
fn read_head(shared: &Shared, stream: &mut TcpStream) -> Option<Head> {
    stream.set_read_timeout(Some(TICK)).ok()?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let end = loop {
        if shared.stopping() || Instant::now() >= deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                // Look again from just before the new bytes: the blank line may straddle.
                let from = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                    break from + at;
                }
                if buf.len() > MAX_HEAD {
                    return None;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return None,
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Head {
        method,
        target,
        headers,
    })
}

/// One connection's socket and what has been written to it.
struct Conn<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    sent: u64,
}

impl Conn<'_> {
    /// Writes all of `buf`; the error is how the exchange ended instead.
    fn send(&mut self, mut buf: &[u8]) -> Result<(), End> {
        let mut progress = Instant::now();
        while !buf.is_empty() {
            if self.shared.stopping() {
                return Err(End::Stopped);
            }
            match self.stream.write(buf) {
                Ok(0) => return Err(End::PeerClosed),
                Ok(n) => {
                    buf = &buf[n..];
                    self.sent += n as u64;
                    progress = Instant::now();
                }
                Err(e) if is_timeout(&e) => {
                    if progress.elapsed() >= STALL_TIMEOUT {
                        return Err(End::Stalled);
                    }
                }
                Err(e) if is_peer_gone(&e) => return Err(End::PeerClosed),
                Err(e) => return Err(End::Error(e.to_string())),
            }
        }
        Ok(())
    }

    /// Waits `d`, or less if the client closes (a read sees the end of the stream) or the
    /// server stops; `Err` says which.
    fn pause(&mut self, d: Duration) -> Result<(), End> {
        let until = Instant::now() + d;
        let mut byte = [0u8; 1];
        loop {
            if self.shared.stopping() {
                return Err(End::Stopped);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let step = left.min(TICK);
            self.stream
                .set_read_timeout(Some(step))
                .map_err(|e| End::Error(e.to_string()))?;
            match self.stream.peek(&mut byte) {
                Ok(0) => return Err(End::PeerClosed),
                // More bytes from the client (a pipelined request) hide a close; just wait.
                Ok(_) => std::thread::sleep(step),
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_peer_gone(&e) => return Err(End::PeerClosed),
                Err(e) => return Err(End::Error(e.to_string())),
            }
        }
    }

    /// Writes `data` at `rate` bytes per second: byte `k` not before `k / rate` seconds after
    /// the first.
    fn send_paced(&mut self, data: &[u8], rate: u32) -> Result<(), End> {
        let rate = f64::from(rate.max(1));
        let start = Instant::now();
        let mut done = 0;
        while done < data.len() {
            let due = (start.elapsed().as_secs_f64() * rate) as usize + 1;
            let allowed = due.min(data.len());
            if allowed > done {
                self.send(&data[done..allowed])?;
                done = allowed;
                continue;
            }
            let next = start + Duration::from_secs_f64(done as f64 / rate);
            let wait = next.saturating_duration_since(Instant::now());
            self.pause(wait.max(Duration::from_millis(5)))?;
        }
        Ok(())
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let mut stream = stream;
    // An accepted socket does not inherit the listener's O_NONBLOCK on Linux; be sure.
    if stream.set_nonblocking(false).is_err() || stream.set_write_timeout(Some(TICK)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let Some(head) = read_head(shared, &mut stream) else {
        return;
    };
    let mode = shared.mode();
    let index = shared.log_start(Request {
        at: Instant::now(),
        peer,
        method: head.method.clone(),
        path: head.target.clone(),
        headers: head.headers.clone(),
        mode,
        status: None,
        declared: None,
        sent: 0,
        end: End::InProgress,
    });
    let mut conn = Conn {
        stream,
        shared,
        sent: 0,
    };
    let announce = |status: Option<u16>, declared: Option<u64>| {
        shared.log_update(index, |r| {
            r.status = status;
            r.declared = declared;
        })
    };
    let outcome = match mode {
        // Accepted just before the listener closed: closed unanswered, as by a crash.
        Mode::Gone => Ok(End::Complete),
        Mode::Serve => {
            let answer = answer_file(&shared.dir, &head, true);
            announce(Some(answer.status), answer.declared);
            conn.send(&answer.bytes).map(|()| End::Complete)
        }
        Mode::Blackhole => conn.pause(BLACKHOLE_HOLD).map(|()| End::Held),
        Mode::Garbage => conn.send(&garbage()).map(|()| End::Complete),
        Mode::Truncated => {
            let mut answer = answer_file(&shared.dir, &head, false);
            if answer.status == 200 && head.method != "HEAD" {
                answer = truncate(answer);
            }
            announce(Some(answer.status), answer.declared);
            conn.send(&answer.bytes).map(|()| End::Complete)
        }
        Mode::Huge(len) | Mode::HugeUndeclared(len) => {
            let declared = matches!(mode, Mode::Huge(_)).then_some(len);
            announce(Some(200), declared);
            send_huge(&mut conn, declared, len).map(|()| End::Complete)
        }
        Mode::Slow { bytes_per_second } => {
            let answer = answer_file(&shared.dir, &head, true);
            announce(Some(answer.status), answer.declared);
            conn.send_paced(&answer.bytes, bytes_per_second)
                .map(|()| End::Complete)
        }
    };
    let end = outcome.unwrap_or_else(|end| end);
    let sent = conn.sent;
    shared.log_update(index, |r| {
        r.sent = sent;
        r.end = end;
    });
    // Dropping the stream closes it; the client sees the end of the stream (or a reset).
}

/// A complete answer: status line, headers and body, as they go on the wire.
struct Answer {
    status: u16,
    declared: Option<u64>,
    /// Where the body starts in `bytes`.
    body_at: usize,
    bytes: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// Status line and headers (with `Connection: close`) and the blank line.
fn head_bytes(status: u16, headers: &[(&str, String)]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// An answer with a `Content-Length` body; for HEAD the same headers without the body.
fn answer(status: u16, head_only: bool, mut headers: Vec<(&str, String)>, body: &[u8]) -> Answer {
    headers.push(("Content-Length", body.len().to_string()));
    let mut bytes = head_bytes(status, &headers);
    let body_at = bytes.len();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    Answer {
        status,
        declared: Some(body.len() as u64),
        body_at,
        bytes,
    }
}

/// [`Mode::Serve`]'s answer to `head`; validators are ignored unless `conditional`.
fn answer_file(dir: &Path, head: &Head, conditional: bool) -> Answer {
    let head_only = head.method == "HEAD";
    let text = |status: u16, extra: Vec<(&str, String)>, msg: &str| {
        let mut headers = vec![("Content-Type", "text/plain".to_owned())];
        headers.extend(extra);
        answer(status, head_only, headers, format!("{msg}\n").as_bytes())
    };
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        let allow = vec![("Allow", "GET, HEAD".to_owned())];
        return text(405, allow, "only GET and HEAD");
    }
    let path = head.target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') || path.split('/').any(|s| s == "..") {
        return text(400, Vec::new(), "bad path");
    }
    let file = dir.join(path.trim_start_matches('/'));
    let read = std::fs::metadata(&file).and_then(|meta| {
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok((meta.modified().ok(), std::fs::read(&file)?))
    });
    let (modified, content) = match read {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return text(404, Vec::new(), "not found"),
        Err(e) => return text(500, Vec::new(), &e.to_string()),
    };
    let etag = etag_of(&content);
    let modified = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let validators = vec![
        ("ETag", etag.clone()),
        ("Last-Modified", http_date(modified)),
    ];
    let not_modified = conditional
        && match head.header("If-None-Match") {
            Some(tags) => tags
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag),
            None => head
                .header("If-Modified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| modified <= since),
        };
    if not_modified {
        let bytes = head_bytes(304, &validators);
        return Answer {
            status: 304,
            declared: None,
            body_at: bytes.len(),
            bytes,
        };
    }
    answer(200, head_only, validators, &content)
}

/// A 200 cut after half its body, declaring at least one byte more than it carries.
fn truncate(answer: Answer) -> Answer {
    let body_len = answer.bytes.len() - answer.body_at;
    if body_len == 0 {
        // Nothing to cut: declare one byte and send none.
        let text = String::from_utf8_lossy(&answer.bytes)
            .replace("Content-Length: 0\r\n", "Content-Length: 1\r\n");
        let bytes = text.into_bytes();
        return Answer {
            declared: Some(1),
            body_at: bytes.len(),
            bytes,
            ..answer
        };
    }
    let mut answer = answer;
    answer.bytes.truncate(answer.body_at + body_len / 2);
    answer
}

/// `"` + the first 32 hex digits of the content's SHA-256 + `"`.
fn etag_of(content: &[u8]) -> String {
    let hex: String = Sha256::digest(content)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// 64 KiB of TOML-looking services, made once.
fn junk_chunk() -> &'static [u8] {
    static JUNK: OnceLock<Vec<u8>> = OnceLock::new();
    JUNK.get_or_init(|| {
        let mut junk = String::with_capacity(JUNK_CHUNK + 256);
        let mut i = 0u32;
        while junk.len() < JUNK_CHUNK {
            junk.push_str(&format!(
                "[[service]]\nname = \"junk-{i:06}\"\nvip = \"10.{}.{}.1:80\"\n\
                 backends = [\"10.200.{}.{}:8080\"]\n\n",
                (i >> 8) & 0xff,
                i & 0xff,
                (i >> 8) & 0xff,
                i & 0xff,
            ));
            i += 1;
        }
        junk.truncate(JUNK_CHUNK);
        junk.into_bytes()
    })
}

fn send_huge(conn: &mut Conn<'_>, declared: Option<u64>, len: u64) -> Result<(), End> {
    let mut headers = vec![("Content-Type", "text/plain".to_owned())];
    if let Some(len) = declared {
        headers.push(("Content-Length", len.to_string()));
    }
    conn.send(&head_bytes(200, &headers))?;
    let junk = junk_chunk();
    let mut left = len;
    while left > 0 {
        let n = left.min(junk.len() as u64) as usize;
        conn.send(&junk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// About 1 KiB of random printable ASCII in lines, ending in a blank line (so a client that
/// waits for the end of a header block gets one), never starting with `H` (as `HTTP/` would).
fn garbage() -> Vec<u8> {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // xorshift64*: random enough, never zero.
    let mut x = (nanos ^ SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = Vec::with_capacity(1100);
    for _ in 0..14 {
        for _ in 0..70 {
            // '!'..='~'
            out.push(b'!' + (next() % 94) as u8);
        }
        out.extend_from_slice(b"\r\n");
    }
    if out[0] == b'H' {
        out[0] = b'h';
    }
    out.extend_from_slice(b"\r\n");
    out
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch as an HTTP date (IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[m as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// An IMF-fixdate as seconds since the epoch; `None` for anything else.
fn parse_http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Shutdown};

    use crate::scratch::ScratchDir;
    use crate::wait;

    const CONFIG: &[u8] = b"[node]\nhostname = \"lb-a\"\n\n[[service]]\nname = \"web\"\n";
    const LIMIT: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    fn server() -> (ScratchDir, ConfigServer) {
        let dir = ScratchDir::new("cfgsrv");
        dir.write("lb-a.toml", CONFIG);
        dir.write("lb-a.toml.sig", "signature bytes\n");
        let server = ConfigServer::start(loopback(), dir.path()).unwrap();
        (dir, server)
    }

    /// Connects and sends `GET path` with `headers`.
    fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> TcpStream {
        let mut s = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for h in headers {
            text.push_str(&format!("{h}\r\n"));
        }
        text.push_str("\r\n");
        s.write_all(text.as_bytes()).unwrap();
        s
    }

    /// Reads until the server closes.
    fn read_all(mut s: TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    /// Reads exactly `n` bytes.
    fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        s.read_exact(&mut out).unwrap();
        out
    }

    /// Status, headers and body of a complete answer.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            header_value(&self.headers, name)
        }
    }

    fn parse(raw: &[u8]) -> Response {
        let at = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..at]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers = lines
            .map(|l| l.split_once(": ").unwrap())
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: raw[at + 4..].to_vec(),
        }
    }

    fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
        parse(&read_all(request(addr, "GET", path, headers)))
    }

    /// The log entry of request `index` once it has ended.
    fn ended(server: &ConfigServer, index: usize) -> Request {
        wait::expect_some(
            "the exchange to end",
            LIMIT,
            Duration::from_millis(10),
            || {
                server
                    .requests()
                    .get(index)
                    .filter(|r| r.end != End::InProgress)
                    .cloned()
            },
        )
    }

    #[test]
    fn serve_answers_files_with_validators_and_304() {
        let (dir, server) = server();
        let addr = server.addr();

        let first = get(addr, "/lb-a.toml", &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.body, CONFIG);
        assert_eq!(
            first.header("Content-Length"),
            Some(CONFIG.len().to_string().as_str())
        );
        let etag = first.header("ETag").unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let last_modified = first.header("Last-Modified").unwrap().to_owned();
        assert!(parse_http_date(&last_modified).is_some(), "{last_modified}");

        // The same ETag (also weak, also in a list) is answered 304 without a body.
        for tag in [etag.clone(), format!("\"x\", W/{etag}")] {
            let again = get(addr, "/lb-a.toml", &[&format!("If-None-Match: {tag}")]);
            assert_eq!(again.status, 304, "{tag}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("ETag"), Some(etag.as_str()));
        }
        let other = get(addr, "/lb-a.toml", &["If-None-Match: \"other\""]);
        assert_eq!(other.status, 200);
        let since = get(
            addr,
            "/lb-a.toml",
            &[&format!("If-Modified-Since: {last_modified}")],
        );
        assert_eq!(since.status, 304);

        // Files are read per request: a change is a new body under a new ETag.
        dir.write("lb-a.toml", "[node]\nhostname = \"lb-b\"\n");
        let changed = get(addr, "/lb-a.toml", &[&format!("If-None-Match: {etag}")]);
        assert_eq!(changed.status, 200);
        assert_eq!(changed.body, b"[node]\nhostname = \"lb-b\"\n");
        assert_ne!(changed.header("ETag"), Some(etag.as_str()));

        let sig = get(addr, "/lb-a.toml.sig?node=a", &[]);
        assert_eq!(
            (sig.status, &sig.body[..]),
            (200, &b"signature bytes\n"[..])
        );
        let head = parse(&read_all(request(addr, "HEAD", "/lb-a.toml", &[])));
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        let length = changed.body.len().to_string();
        assert_eq!(head.header("Content-Length"), Some(length.as_str()));

        assert_eq!(get(addr, "/missing.toml", &[]).status, 404);
        assert_eq!(get(addr, "/", &[]).status, 404);
        assert_eq!(get(addr, "/../etc/passwd", &[]).status, 400);
        assert_eq!(get(addr, "/a/../lb-a.toml", &[]).status, 400);
        let post = parse(&read_all(request(addr, "POST", "/lb-a.toml", &[])));
        assert_eq!(post.status, 405);

        let log = server.requests();
        let statuses: Vec<_> = log.iter().map(|r| r.status.unwrap()).collect();
        assert_eq!(
            statuses,
            [200, 304, 304, 200, 304, 200, 200, 200, 404, 404, 400, 400, 405]
        );
        assert!(log
            .iter()
            .all(|r| r.mode == Mode::Serve && r.end == End::Complete));
        assert_eq!(log[0].path, "/lb-a.toml");
        assert_eq!(log[0].method, "GET");
        assert_eq!(log[1].header("if-none-match"), Some(etag.as_str()));
        assert_eq!(log[0].declared, Some(CONFIG.len() as u64));
        assert!(log[0].sent > CONFIG.len() as u64);
        assert!(log.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn gone_refuses_connections_and_serve_listens_again_on_the_same_port() {
        let (_dir, server) = server();
        let addr = server.addr();
        assert_eq!(get(addr, "/lb-a.toml", &[]).status, 200);

        server.set_mode(Mode::Gone).unwrap();
        assert_eq!(server.mode(), Mode::Gone);
        let refused = TcpStream::connect_timeout(&addr, LIMIT).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        // Switching within Gone keeps it closed.
        server.set_mode(Mode::Gone).unwrap();
        assert!(TcpStream::connect_timeout(&addr, LIMIT).is_err());

        server.set_mode(Mode::Serve).unwrap();
        assert_eq!(server.addr(), addr);
        assert_eq!(get(addr, "/lb-a.toml", &[]).body, CONFIG);
        assert_eq!(
            server.requests().len(),
            2,
            "refused connections are not requests"
        );
    }

    #[test]
    fn blackhole_accepts_and_never_answers_until_the_client_closes() {
        let (_dir, server) = server();
        server.set_mode(Mode::Blackhole).unwrap();
        let mut s = request(server.addr(), "GET", "/lb-a.toml", &[]);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let started = Instant::now();
        let e = s.read(&mut [0; 16]).unwrap_err();
        assert!(is_timeout(&e), "{e}");
        assert!(started.elapsed() >= Duration::from_millis(250));

        let log = wait::expect_some("the request logged", LIMIT, TICK, || {
            server.requests().pop()
        });
        assert_eq!(
            (log.mode, log.end, log.status),
            (Mode::Blackhole, End::InProgress, None)
        );
        assert_eq!(server.active_connections(), 1);
        drop(s);
        let log = ended(&server, 0);
        assert_eq!((log.end, log.sent), (End::PeerClosed, 0));
        wait::expect("the connection thread ended", LIMIT, TICK, || {
            server.active_connections() == 0
        });
    }

    #[test]
    fn garbage_is_not_http() {
        let (_dir, server) = server();
        server.set_mode(Mode::Garbage).unwrap();
        let raw = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
        assert!(raw.len() >= 512, "{}", raw.len());
        assert!(!raw.starts_with(b"HTTP/"));
        assert!(raw
            .iter()
            .all(|b| b.is_ascii_graphic() || b"\r\n".contains(b)));
        let again = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
        assert_ne!(raw, again, "random each time");
        let log = ended(&server, 0);
        assert_eq!(
            (log.mode, log.status, log.end),
            (Mode::Garbage, None, End::Complete)
        );
        assert_eq!(log.sent, raw.len() as u64);
    }

    #[test]
    fn truncated_sends_less_than_it_declares() {
        let (dir, server) = server();
        server.set_mode(Mode::Truncated).unwrap();
        let r = get(server.addr(), "/lb-a.toml", &[]);
        assert_eq!(r.status, 200);
        let declared: usize = r.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(declared, CONFIG.len());
        assert_eq!(r.body, &CONFIG[..CONFIG.len() / 2]);
        let etag = format!("If-None-Match: {}", r.header("ETag").unwrap());
        let again = get(server.addr(), "/lb-a.toml", &[&etag]);
        assert_eq!((again.status, again.body.len()), (200, CONFIG.len() / 2));

        dir.write("empty.toml", "");
        let r = get(server.addr(), "/empty.toml", &[]);
        assert_eq!((r.header("Content-Length"), r.body.len()), (Some("1"), 0));
        assert_eq!(get(server.addr(), "/missing", &[]).status, 404);

        let log = ended(&server, 0);
        assert_eq!(
            (log.status, log.declared),
            (Some(200), Some(CONFIG.len() as u64))
        );
        assert_eq!(log.end, End::Complete);
    }

    #[test]
    fn huge_streams_until_the_client_gives_up() {
        const CAP: usize = 4 << 20;
        const GIB: u64 = 1 << 30;
        let (_dir, server) = server();
        server.set_mode(Mode::Huge(GIB)).unwrap();
        let mut s = request(server.addr(), "GET", "/lb-a.toml", &[]);
        let mut raw = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        // Read the head and 4 MiB of body, as a client with a 4 MiB cap would, then close.
        let body_at = loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            raw.extend_from_slice(&buf[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = parse(&raw[..body_at]);
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Content-Length"), Some("1073741824"));
        let want = body_at + CAP;
        while raw.len() < want {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            raw.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8_lossy(&raw[body_at..]);
        assert!(
            body.starts_with("[[service]]\nname = \"junk-000000\""),
            "{}",
            &body[..80]
        );
        s.shutdown(Shutdown::Both).unwrap();
        drop(s);

        let log = ended(&server, 0);
        assert_eq!(log.end, End::PeerClosed);
        assert_eq!((log.status, log.declared), (Some(200), Some(GIB)));
        // What the client read, plus what socket buffers held when it closed: nowhere near 1 GiB.
        assert!(log.sent >= want as u64, "{}", log.sent);
        assert!(log.sent < GIB / 4, "{}", log.sent);

        // Undeclared: no Content-Length, the body ends with the connection.
        server.set_mode(Mode::HugeUndeclared(100_000)).unwrap();
        let r = get(server.addr(), "/lb-a.toml", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Length"), None);
        assert_eq!(r.body.len(), 100_000);
        let log = ended(&server, 1);
        assert_eq!((log.declared, log.end), (None, End::Complete));
    }

    #[test]
    fn slow_trickles_a_valid_answer_and_stops_when_the_client_closes() {
        let (dir, server) = server();
        // Fast enough to finish: the whole answer, valid, no sooner than the rate allows.
        server
            .set_mode(Mode::Slow {
                bytes_per_second: 2000,
            })
            .unwrap();
        let started = Instant::now();
        let raw = read_all(request(server.addr(), "GET", "/lb-a.toml", &[]));
        let floor = Duration::from_secs_f64((raw.len() - 1) as f64 / 2000.0);
        assert!(
            started.elapsed() >= floor,
            "{:?} < {floor:?}",
            started.elapsed()
        );
        let r = parse(&raw);
        assert_eq!((r.status, &r.body[..]), (200, CONFIG));
        assert_eq!(ended(&server, 0).end, End::Complete);

        // 2 kB at 100 bytes per second would take 20 s; the client reads 30 bytes and closes.
        dir.write("big.toml", "# padding\n".repeat(200));
        server
            .set_mode(Mode::Slow {
                bytes_per_second: 100,
            })
            .unwrap();
        let started = Instant::now();
        let mut s = request(server.addr(), "GET", "/big.toml", &[]);
        let first = read_n(&mut s, 1);
        let first_at = started.elapsed();
        let rest = read_n(&mut s, 29);
        // Byte k is written no earlier than k/100 s after byte 0, which is after the request.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(280), "{took:?}");
        assert!(took > first_at);
        assert!([first, rest].concat().starts_with(b"HTTP/1.1 200 OK\r\n"));
        drop(s);
        let log = ended(&server, 1);
        assert_eq!((log.status, log.end), (Some(200), End::PeerClosed));
        assert!(log.sent >= 30 && log.sent < 1000, "{}", log.sent);

        let e = server
            .set_mode(Mode::Slow {
                bytes_per_second: 0,
            })
            .unwrap_err();
        assert!(matches!(e, ConfigServerError::BadMode(..)), "{e}");
    }

    #[test]
    fn connections_beyond_the_limit_are_closed_and_drop_ends_every_thread() {
        let (_dir, server) = server();
        server.set_mode(Mode::Blackhole).unwrap();
        let held: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| request(server.addr(), "GET", "/lb-a.toml", &[]))
            .collect();
        wait::expect("every connection held", LIMIT, TICK, || {
            server.active_connections() == MAX_CONNECTIONS
                && server.requests().len() == MAX_CONNECTIONS
        });
        let mut extra = request(server.addr(), "GET", "/lb-a.toml", &[]);
        // Closed unanswered: the end of the stream or a reset.
        let mut buf = [0; 16];
        assert!(matches!(extra.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!(server.rejected_connections(), 1);

        // A slow answer that would take minutes and a huge one the client does not read.
        server
            .set_mode(Mode::Slow {
                bytes_per_second: 1,
            })
            .unwrap();
        drop(held.into_iter().take(2).collect::<Vec<_>>());
        wait::expect("room again", LIMIT, TICK, || {
            server.active_connections() < MAX_CONNECTIONS - 1
        });
        let mut slow = request(server.addr(), "GET", "/lb-a.toml", &[]);
        assert_eq!(read_n(&mut slow, 1), b"H");
        server.set_mode(Mode::Huge(1 << 30)).unwrap();
        let mut huge = request(server.addr(), "GET", "/lb-a.toml", &[]);
        assert_eq!(read_n(&mut huge, 1), b"H");

        let started = Instant::now();
        let addr = server.addr();
        let log = server.requests();
        drop(server);
        assert!(started.elapsed() < STOP_TIMEOUT, "{:?}", started.elapsed());
        assert!(TcpStream::connect_timeout(&addr, LIMIT).is_err());
        // The slow client sees its connection end, long before the answer could have.
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(rest.len() < 10, "{}", rest.len());
        assert_eq!(log.len(), MAX_CONNECTIONS + 2);
    }

    #[test]
    fn a_missing_directory_or_a_taken_address_is_an_error() {
        let e = ConfigServer::start(loopback(), Path::new("/nonexistent/lbtest")).unwrap_err();
        assert!(matches!(e, ConfigServerError::NoDir(_)), "{e}");
        let (dir, server) = server();
        let e = ConfigServer::start(server.addr(), dir.path()).unwrap_err();
        assert!(matches!(e, ConfigServerError::Bind { .. }), "{e}");
        assert!(e.to_string().contains(&server.addr().to_string()), "{e}");
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }
}
