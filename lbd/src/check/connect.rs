//! TCP connect checks, and plain HTTP checks, without a future, a timer or a fresh socket per
//! run: the check engine's fast path for `type = "tcp"` and `type = "http"`.
//!
//! A connect check is a handshake and a reset. Done with a socket per run (socket, SO_LINGER,
//! connect, register with the reactor, SO_ERROR, deregister, close) it costs seven system
//! calls, a reactor registration, a timer and a boxed future per run; at ten thousand checks
//! a second that overhead is most of the checker's own CPU. Here:
//!
//! - Sockets are kept and reused. After a run the socket is dissolved with
//!   `connect(AF_UNSPEC)` (Linux's `tcp_disconnect`: an RST if the handshake had completed,
//!   like a close with SO_LINGER 0, so nothing lingers in TIME_WAIT) and goes back to an idle
//!   pool per (family, source address); the next run connects it again, from a new ephemeral
//!   port. A run is then two system calls: connect and disconnect.
//! - Every socket is registered once, edge-triggered (for writability, readability and
//!   hang-ups), in this connector's own epoll instance. Completions are read in batches with `epoll_wait`, once per engine tick
//!   ([`Connector::poll`]) rather than on a wake-up per completion; epoll reports a socket's
//!   state as of that call, so a stale event from an earlier run never completes a later one,
//!   and events for idle sockets are ignored.
//! - A completion without an error is a success without asking SO_ERROR; only failures ask
//!   for their reason.
//! - Deadlines are kept per timeout value in start order, so expiring them is a look at the
//!   front of a queue, not a timer per run.
//! - An HTTP check is the same run with an [`Exchange`] after the handshake: the request is
//!   sent when the connect completes, the response is read when epoll reports it, in the same
//!   batches, and judged by an [`http::Reader`](Reader) as soon as it can be. A run is four
//!   system calls (connect, send, recv, disconnect) where a future on its own socket takes
//!   about ten and a wake-up or two.
//! - With `keep_alive`, a good response leaves its connection kept under the check's id; the
//!   next run sends at once on it (two system calls: send, recv). A kept connection that
//!   reports data or a hang-up while idle is let go; one found closed when its run reads
//!   is connected again within the run, once.
//!
//! What reaches the wire is the same as with a socket per run: SYN, the handshake's ACK, the
//! request if any, RST.

use super::deadlines::Deadlines;
use super::failure::{Failure, Outcome};
use super::proto::http::{Exchange, Reader};
use crate::sockets::{new_socket, setsockopt, sockaddr};
use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Idle sockets kept per pool; beyond this a finished socket is closed.
pub const IDLE_MAX: usize = 1024;
/// Events read per `epoll_wait`.
const EVENT_BATCH: usize = 256;
/// Bytes read per `recv` of a response.
const READ_CHUNK: usize = 16 * 1024;
/// Events that say a socket has something to read, or hung up.
const LIVELY: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// A finished run.
#[derive(Debug)]
pub struct Finished<T> {
    pub token: T,
    pub started: Instant,
    pub outcome: Outcome,
}

/// Sockets that can be reused for each other: same family, same source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolKey {
    v6: bool,
    source: Option<IpAddr>,
}

struct Pool {
    key: PoolKey,
    idle: Vec<OwnedFd>,
}

/// A socket with a run in flight.
struct InFlight<T> {
    fd: OwnedFd,
    pool: usize,
    token: T,
    started: Instant,
    timeout: Duration,
    /// Tells this run's deadline from those of earlier runs on the same descriptor.
    run: u64,
    /// The HTTP exchange once connected, if the run has one.
    dialog: Option<Box<Dialog>>,
}

/// An HTTP run's exchange and how far it got.
struct Dialog {
    exchange: Arc<Exchange>,
    /// Where a connection that was kept and turned out dead is made again.
    target: SocketAddr,
    /// The id its connection is kept under after a good response, if it is kept.
    keep: Option<u64>,
    /// The run began on a connection kept from an earlier run.
    reused: bool,
    /// Request bytes sent; the whole request once connected, in practice.
    sent: usize,
    /// Connected: sending or waiting for the response.
    connected: bool,
    reader: Reader,
}

/// What an event did to an HTTP run.
enum Step {
    Pending,
    Done(Result<(), Failure>),
    /// A kept connection had been closed by the server before it took the request: the run
    /// goes on over a new connection.
    Reconnect,
}

/// An HTTP connection kept between runs.
struct Kept {
    fd: OwnedFd,
    pool: usize,
}

impl Dialog {
    /// What a timeout interrupted.
    fn waiting_for(&self) -> &'static str {
        if !self.connected {
            "connecting"
        } else if self.sent < self.exchange.request.len() {
            "sending the request"
        } else {
            self.reader.waiting_for()
        }
    }
}

/// Connect and HTTP checks in flight, their reusable and kept sockets, and their epoll
/// instance.
pub struct Connector<T> {
    epoll: OwnedFd,
    /// Runs in flight, indexed by descriptor number.
    inflight: Vec<Option<InFlight<T>>>,
    pools: Vec<Pool>,
    /// (descriptor, run) by deadline.
    deadlines: Deadlines<(RawFd, u64)>,
    runs: u64,
    /// Runs in flight (the `Some`s of `inflight`).
    running: usize,
    events: Vec<libc::epoll_event>,
    /// Where responses are read.
    scratch: Vec<u8>,
    /// Idle HTTP connections kept for their checks' next runs, by keep id.
    kept: HashMap<u64, Kept>,
    /// The keep id of each kept connection, by descriptor number.
    kept_ids: Vec<Option<u64>>,
    /// The keep ids of the checks that exist, as of the last [`Connector::retain_kept`]: a run
    /// in flight when its check was stopped must not keep its connection afterwards. Boxed:
    /// a probe's run future holds a connector, and must stay small.
    #[allow(clippy::box_collection)]
    live: Option<Box<std::collections::HashSet<u64>>>,
}

impl<T> Connector<T> {
    /// A connector with no sockets.
    pub fn new() -> io::Result<Connector<T>> {
        // SAFETY: plain system call; the descriptor is owned at once.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Connector {
            epoll,
            inflight: Vec::new(),
            pools: Vec::new(),
            deadlines: Deadlines::default(),
            runs: 0,
            running: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENT_BATCH],
            scratch: vec![0; READ_CHUNK],
            kept: HashMap::new(),
            kept_ids: Vec::new(),
            live: None,
        })
    }

    /// Runs in flight.
    pub fn in_flight(&self) -> usize {
        self.running
    }

    /// Idle sockets kept for reuse.
    pub fn idle(&self) -> usize {
        self.pools.iter().map(|p| p.idle.len()).sum()
    }

    /// Connections kept for HTTP checks with `keep_alive`.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// Closes the kept connections whose keep id `live` rejects (checks that are gone).
    pub fn retain_kept(&mut self, live: std::collections::HashSet<u64>) {
        let gone: Vec<u64> = self
            .kept
            .keys()
            .copied()
            .filter(|id| !live.contains(id))
            .collect();
        for id in gone {
            if let Some(k) = self.take_kept(id) {
                recycle(&mut self.pools, k.pool, k.fd);
            }
        }
        self.live = Some(Box::new(live));
    }

    fn take_kept(&mut self, id: u64) -> Option<Kept> {
        let k = self.kept.remove(&id)?;
        self.kept_ids[k.fd.as_raw_fd() as usize] = None;
        Some(k)
    }

    fn keep(&mut self, id: u64, fd: OwnedFd, pool: usize) {
        // Its check was stopped while this run was in flight.
        if self.live.as_ref().is_some_and(|live| !live.contains(&id)) {
            return recycle(&mut self.pools, pool, fd);
        }
        let i = fd.as_raw_fd() as usize;
        if self.kept_ids.len() <= i {
            self.kept_ids.resize(i + 1, None);
        }
        self.kept_ids[i] = Some(id);
        if let Some(old) = self.kept.insert(id, Kept { fd, pool }) {
            self.kept_ids[old.fd.as_raw_fd() as usize] = None;
            recycle(&mut self.pools, old.pool, old.fd);
        }
    }

    /// Closes idle sockets beyond `keep` per pool (after a reload that removed connect checks,
    /// `keep` is how many remain, so fds are not held for checks that are gone).
    pub fn trim_idle(&mut self, keep: usize) {
        for p in &mut self.pools {
            p.idle.truncate(keep);
        }
    }

    /// Starts connecting to `target` (from `source`, if set), and then, with an `exchange`,
    /// sending its request and judging the response. An exchange with `keep_alive` and a
    /// `keep` id (one per check) keeps its connection under that id for the next run, which
    /// then sends at once. `Err` is a result known at once (no socket, the source cannot be
    /// bound, no route, or a connect check connected at once); otherwise the run finishes in
    /// [`Connector::poll`] or [`Connector::expire`].
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        target: SocketAddr,
        source: Option<IpAddr>,
        timeout: Duration,
        token: T,
        now: Instant,
        exchange: Option<Arc<Exchange>>,
        keep: Option<u64>,
    ) -> Result<(), Finished<T>> {
        let keep = keep.filter(|_| exchange.as_ref().is_some_and(|x| x.keep_alive));
        let dialog = |reused| {
            exchange.clone().map(|exchange| {
                Box::new(Dialog {
                    exchange,
                    target,
                    keep,
                    reused,
                    sent: 0,
                    connected: reused,
                    reader: Reader::default(),
                })
            })
        };
        if let Some(k) = keep.and_then(|id| self.take_kept(id)) {
            if let Some(mut d) = dialog(true) {
                if let Ok(n) = send(k.fd.as_raw_fd(), &d.exchange.request) {
                    d.sent = n;
                    return self.track(k.fd, k.pool, token, now, timeout, Some(d));
                }
            }
            // Closed while it was idle: a new connection.
            recycle(&mut self.pools, k.pool, k.fd);
        }
        let key = PoolKey {
            v6: target.is_ipv6(),
            source,
        };
        let pool = match self.pools.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                self.pools.push(Pool {
                    key,
                    idle: Vec::new(),
                });
                self.pools.len() - 1
            }
        };
        let finished = |token, outcome| Finished {
            token,
            started: now,
            outcome,
        };
        let fd = match self.pools[pool].idle.pop() {
            Some(fd) => fd,
            None => match self.open_socket(key) {
                Ok(fd) => fd,
                Err(f) => return Err(finished(token, Outcome::Down(f))),
            },
        };
        let connected = connect(fd.as_raw_fd(), target);
        match connected {
            Ok(()) if exchange.is_none() => {
                recycle(&mut self.pools, pool, fd);
                Err(finished(token, Outcome::UP))
            }
            // Connected at once (never over TCP in practice): the request goes out at the
            // next poll, since the socket reports itself writable.
            Ok(()) => self.track(fd, pool, token, now, timeout, dialog(false)),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                self.track(fd, pool, token, now, timeout, dialog(false))
            }
            // The socket's state after a failed connect is not worth trusting: close it.
            Err(e) => Err(finished(
                token,
                Outcome::Down(Failure::from_io(&e, "connecting")),
            )),
        }
    }

    /// Keeps a started run until it finishes or times out.
    fn track(
        &mut self,
        fd: OwnedFd,
        pool: usize,
        token: T,
        now: Instant,
        timeout: Duration,
        dialog: Option<Box<Dialog>>,
    ) -> Result<(), Finished<T>> {
        let raw = fd.as_raw_fd();
        let i = raw as usize;
        if self.inflight.len() <= i {
            self.inflight.resize_with(i + 1, || None);
        }
        self.runs += 1;
        self.running += 1;
        self.inflight[i] = Some(InFlight {
            fd,
            pool,
            token,
            started: now,
            timeout,
            run: self.runs,
            dialog,
        });
        self.deadlines.push(now, timeout, (raw, self.runs));
        Ok(())
    }

    /// A new socket for `key`: non-blocking, RST on close, bound to the source, registered.
    fn open_socket(&self, key: PoolKey) -> Result<OwnedFd, Failure> {
        let io = |e: io::Error| Failure::from_io(&e, "connecting");
        let family = if key.v6 {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        let fd = new_socket(family, libc::SOCK_STREAM, 0).map_err(io)?;
        let raw = fd.as_raw_fd();
        // Not needed for the disconnect (that resets by itself) but for the sockets still
        // connected when the connector is dropped.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_LINGER, &linger).map_err(io)?;
        if let Some(src) = key.source {
            // Choose the port at connect time, per destination, not at bind time.
            let _ = setsockopt(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, &1i32);
            let (addr, len) = sockaddr(SocketAddr::new(src, 0));
            // SAFETY: `addr` holds a sockaddr of `len` bytes.
            if unsafe { libc::bind(raw, addr.as_ptr().cast(), len) } != 0 {
                let e = io::Error::last_os_error();
                return Err(Failure::Bind(format!("{src}: {e}")));
            }
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: raw as u64,
        };
        // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, raw, &mut ev) }
            != 0
        {
            return Err(io(io::Error::last_os_error()));
        }
        Ok(fd)
    }

    /// Reads the completions so far into `out`. Not woken by each completion: the engine
    /// calls this once per tick while runs are in flight, so a tick's completions cost one
    /// wake-up and one `epoll_wait`, not one of each per check. A completion is taken at most
    /// a tick after it happened.
    pub fn poll(&mut self, out: &mut Vec<Finished<T>>) -> io::Result<()> {
        let epfd = self.epoll.as_raw_fd();
        loop {
            // SAFETY: `events` has room for EVENT_BATCH entries.
            let n = unsafe {
                libc::epoll_wait(
                    epfd,
                    self.events.as_mut_ptr(),
                    EVENT_BATCH as libc::c_int,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            for i in 0..n {
                let ev = self.events[i];
                let (flags, fd) = (ev.events, ev.u64 as RawFd);
                let i = fd as usize;
                let Some(run) = self.inflight.get_mut(i).and_then(Option::as_mut) else {
                    // Not in flight: an idle socket's disconnect, a run that timed out, or a
                    // kept connection that the server closed (or spoke on) while idle, which
                    // is not worth a request.
                    let kept = self.kept_ids.get(i).copied().flatten();
                    if let Some(k) = kept.filter(|_| flags & LIVELY != 0) {
                        if let Some(k) = self.take_kept(k) {
                            recycle(&mut self.pools, k.pool, k.fd);
                        }
                    }
                    continue;
                };
                let verdict = match run.dialog.as_deref_mut() {
                    None => handshake(flags, fd),
                    Some(dialog) => match dialog.step(flags, fd, &mut self.scratch) {
                        Step::Pending => continue,
                        Step::Done(verdict) => verdict,
                        Step::Reconnect => match dialog.reconnect(fd) {
                            Ok(()) => continue,
                            Err(f) => Err(f),
                        },
                    },
                };
                let Some(run) = self.inflight[i].take() else {
                    continue;
                };
                self.running -= 1;
                let keep = run
                    .dialog
                    .as_ref()
                    .filter(|d| verdict.is_ok() && d.reader.reusable())
                    .and_then(|d| d.keep);
                out.push(Finished {
                    token: run.token,
                    started: run.started,
                    outcome: verdict.into(),
                });
                match keep {
                    Some(id) => self.keep(id, run.fd, run.pool),
                    None => recycle(&mut self.pools, run.pool, run.fd),
                }
            }
            if n < EVENT_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// The earliest deadline of a run in flight. Deadlines of runs that already finished are
    /// dropped from the fronts of the queues here, so they never wake anyone.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let inflight = &self.inflight;
        self.deadlines.next(|(fd, run)| {
            inflight
                .get(fd as usize)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.run == run)
        })
    }

    /// Ends the runs whose deadline has passed as timeouts, into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Finished<T>>) {
        let (inflight, pools, running) = (&mut self.inflight, &mut self.pools, &mut self.running);
        self.deadlines.expire(now, |(fd, run)| {
            let slot = &mut inflight[fd as usize];
            if slot.as_ref().is_none_or(|r| r.run != run) {
                return; // finished earlier
            }
            let Some(r) = slot.take() else { return };
            *running -= 1;
            out.push(Finished {
                token: r.token,
                started: r.started,
                outcome: Outcome::Down(Failure::Timeout {
                    after: r.timeout,
                    during: r.dialog.as_ref().map_or("connecting", |d| d.waiting_for()),
                }),
            });
            recycle(pools, r.pool, r.fd);
        });
    }
}

impl Dialog {
    /// Takes an event for this run's socket: completes the connect, sends the request, reads
    /// the response.
    fn step(&mut self, flags: u32, fd: RawFd, buf: &mut [u8]) -> Step {
        let hangup = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let request = &self.exchange.request;
        if !self.connected {
            if let Err(f) = handshake(flags, fd) {
                return Step::Done(Err(f));
            }
            self.connected = true;
        }
        if self.sent < request.len() {
            match send(fd, &request[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(_) if self.reused => return Step::Reconnect,
                Err(e) => return Step::Done(Err(Failure::from_io(&e, "sending the request"))),
            }
            // The rest when the socket is writable again; an answer only after the request,
            // unless the server spoke or hung up first (no later event would say so).
            if self.sent < request.len() || flags & LIVELY == 0 {
                return Step::Pending;
            }
        }
        loop {
            let n = match recv(fd, buf) {
                Ok(0) if self.reused && !self.reader.started() => return Step::Reconnect,
                Ok(0) => return Step::Done(self.reader.end(&self.exchange)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(_) if self.reused && !self.reader.started() => return Step::Reconnect,
                Err(e) => return Step::Done(Err(Failure::from_io(&e, self.reader.reading()))),
            };
            if let Some(verdict) = self.reader.feed(&self.exchange, &buf[..n]) {
                return Step::Done(verdict);
            }
            // A short read emptied the socket: what comes next (more, or the end) raises
            // another event, unless the peer had already hung up when this one was read.
            if n < buf.len() && flags & hangup == 0 {
                return Step::Pending;
            }
        }
    }

    /// Starts the run again on a new connection from the same socket, after the kept one
    /// turned out closed.
    fn reconnect(&mut self, fd: RawFd) -> Result<(), Failure> {
        if !disconnect(fd) {
            return Err(Failure::from_io(
                &io::Error::last_os_error(),
                "reconnecting",
            ));
        }
        self.reused = false;
        self.connected = false;
        self.sent = 0;
        self.reader = Reader::default();
        match connect(fd, self.target) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
            Err(e) => Err(Failure::from_io(&e, "connecting")),
        }
    }
}

/// How a connect ended, from its epoll event.
fn handshake(flags: u32, fd: RawFd) -> Result<(), Failure> {
    let err = if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
        so_error(fd)
    } else {
        0
    };
    if err != 0 {
        Err(Failure::from_io(
            &io::Error::from_raw_os_error(err),
            "connecting",
        ))
    } else if flags & libc::EPOLLOUT as u32 != 0 {
        Ok(())
    } else {
        Err(Failure::Closed("while connecting".into()))
    }
}

/// A non-blocking send that never raises SIGPIPE.
fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for reads of its length.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking read.
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Dissolves the connection (an RST if it was established) and keeps the socket for the
/// next run, or closes it when the pool is full or the socket cannot be reused.
fn recycle(pools: &mut [Pool], pool: usize, fd: OwnedFd) {
    if pools[pool].idle.len() < IDLE_MAX && disconnect(fd.as_raw_fd()) {
        pools[pool].idle.push(fd);
    }
    // else closed on drop, with an RST (SO_LINGER 0)
}

/// `connect(AF_UNSPEC)`: Linux's `tcp_disconnect`, which resets an established connection
/// and leaves the socket ready to connect again.
fn disconnect(fd: RawFd) -> bool {
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: `unspec` is a valid sockaddr of the size passed.
    let r = unsafe { libc::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t) };
    r == 0
}

/// The socket's pending error (and clears it).
fn so_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for getsockopt's output.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
    }
    err
}

/// A non-blocking connect: `Ok` if it connected at once, else the error (EINPROGRESS when the
/// handshake is under way).
fn connect(fd: RawFd, target: SocketAddr) -> io::Result<()> {
    let (addr, len) = sockaddr(target);
    // SAFETY: `addr` holds a sockaddr of `len` bytes.
    if unsafe { libc::connect(fd, addr.as_ptr().cast(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One run on a connector of its own, polled every `tick` until it ends: how a plain HTTP (or
/// TCP connect) check runs outside the engine (`Probe::run`), through the same code as in it.
pub async fn run_once(
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    exchange: Option<Arc<Exchange>>,
    tick: Duration,
) -> Outcome {
    let mut c = match Connector::<()>::new() {
        Ok(c) => c,
        Err(e) => return Outcome::Down(Failure::from_io(&e, "creating the check's epoll")),
    };
    if let Err(done) = c.start(target, source, timeout, (), Instant::now(), exchange, None) {
        return done.outcome;
    }
    let mut out = Vec::new();
    loop {
        tokio::time::sleep(tick).await;
        if let Err(e) = c.poll(&mut out) {
            return Outcome::Down(Failure::from_io(&e, "waiting for the check's sockets"));
        }
        c.expire(Instant::now(), &mut out);
        if let Some(done) = out.pop() {
            return done.outcome;
        }
    }
}
