//! Half-open TCP checks (`type = "tcp"`, `half_open = true`): a SYN, and the SYN-ACK (up) or
//! RST (refused) that answers it. No socket, no handshake: the kernel answers the SYN-ACK with
//! an RST itself, because no socket on this side is connecting from that port. Three packets
//! instead of a connect check's four, nothing for the real's application to accept, log or
//! reset, and on this side no system call per check at all:
//!
//! - SYNs due together are queued and sent with one `sendmmsg` per address family
//!   ([`HalfOpen::flush`]); answers are read in batches with `recvmmsg` from one raw TCP socket
//!   per family, whose classic BPF filter lets through only SYN-ACKs and RSTs to this side's
//!   ports, so the box's other TCP traffic is never queued to it. The sockets are read once
//!   per engine tick ([`HalfOpen::poll`]) rather than woken per answer.
//! - A SYN's sequence number is unique among the checks in flight and the answer acknowledges
//!   it plus one, so the answer names its check; its source address and port must also be the
//!   check's target.
//! - The source ports are held by bound, never connected TCP sockets, eight per (family,
//!   source address), eight more at a time (up to 64) while one target has that many checks
//!   in flight: nothing else on the box can take them, and an answer to them finds no socket
//!   and is reset by the kernel. Consecutive checks of one real use different ports, so a late
//!   SYN-ACK or a lost RST of one check never meets the next check's SYN. A reload that
//!   leaves no check from a source lets its ports go.
//! - IPv4 SYNs carry their own IP header (IP_HDRINCL) with a source address chosen like the
//!   kernel would (a route lookup, cached per destination and dropped when a check times out),
//!   because the TCP checksum covers it; IPv6 raw sockets compute the checksum themselves
//!   (IPV6_CHECKSUM) for the source they choose.
//!
//! - ICMP errors about a SYN (host or network unreachable, an unanswered ARP, which the kernel
//!   reports as host unreachable) come back on the raw socket's error queue (IP_RECVERR) with
//!   the SYN quoted, so the check ends with the same reason a connect check gives; the queue is
//!   read with the answers and before deadlines are judged.
//!
//! Needs CAP_NET_RAW; without it the engine runs the checks as connect checks and says so.
//!
//! - this module: the runs in flight ([`HalfOpen`]): sequence numbers, held source ports,
//!   deadlines, route lookups, and which answer or error ends which run.
//! - `socket`: the raw sockets and their BPF answer filter, the held-port sockets, and the
//!   batched sends and reads (`sendmmsg`, `recvmmsg`, the error queue's messages).
//! - `keys`: the hasher of this module's maps.

mod keys;
mod socket;

use super::connect::Finished;
use super::deadlines::Deadlines;
use super::failure::{Failure, Outcome};
use super::proto::syn::{self, Answer, V4_SYN_LEN};
use crate::sockets::{local_addr, new_socket, sockaddr};
use keys::Keys;
use socket::{attach_filter, extended_errno, hold_port, open_raw, send_batch, Inbox, RECV_BATCH};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Source ports held per (family, source address) at first, and added at a time when every
/// one is in flight to the same target.
const PORTS_PER_SOURCE: usize = 8;
/// At most this many per (family, source address): checks of one target in flight at once.
const MAX_PORTS_PER_SOURCE: usize = 64;
/// How long a route lookup's source address is trusted while checks keep being answered.
const ROUTE_TTL: Duration = Duration::from_secs(300);
/// The MSS an IPv6 SYN advertises.
const MSS_V6: u16 = 1440;

/// Why a run could not start as a half-open check.
pub enum NotStarted<T> {
    /// Its result is known at once (no source port, a bad source address).
    Finished(Finished<T>),
    /// Half-open checks cannot run here (no raw socket: CAP_NET_RAW missing?); the token is
    /// handed back so the run can be made another way.
    Unavailable(T, io::Error),
}

/// A source port held by a bound TCP socket.
struct Held {
    v6: bool,
    source: Option<IpAddr>,
    port: u16,
    _socket: OwnedFd,
}

/// A check in flight, by the sequence number of its SYN.
struct Pending<T> {
    token: T,
    started: Instant,
    timeout: Duration,
    target: SocketAddr,
    port: u16,
    source: Option<IpAddr>,
    run: u64,
}

/// A SYN waiting for [`HalfOpen::flush`].
struct Outgoing {
    seq: u32,
    to: SocketAddr,
    /// IPv6: the source address asked for (IPV6_PKTINFO); IPv4 SYNs carry theirs.
    source_v6: Option<Ipv6Addr>,
    len: usize,
    bytes: [u8; V4_SYN_LEN],
}

/// Half-open checks in flight, their raw sockets and held ports.
pub struct HalfOpen<T> {
    /// The raw TCP socket of each family.
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
    held: Vec<Held>,
    /// Rotates the held port each check uses.
    turn: usize,
    pending: HashMap<u32, Pending<T>, Keys>,
    /// (held port, target) of the checks in flight: one SYN per four-tuple at a time.
    busy: HashSet<(u16, SocketAddr), Keys>,
    deadlines: Deadlines<(u32, u64)>,
    /// IPv4 source address per (source asked for, destination), and when it was looked up.
    routes: HashMap<Ipv4Addr, (Ipv4Addr, Instant), Keys>,
    /// A UDP socket connected to a destination to learn the kernel's source address for it.
    router: Option<OwnedFd>,
    outbox: Vec<Outgoing>,
    /// Per family (IPv4, IPv6): a system call on the raw socket reported an error, so its
    /// error queue has ICMP errors to read.
    signalled: [bool; 2],
    runs: u64,
    rng: u64,
    inbox: Box<Inbox>,
}

impl<T> HalfOpen<T> {
    /// No sockets yet: they are opened with the first check of each family.
    pub fn new() -> HalfOpen<T> {
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        HalfOpen {
            v4: None,
            v6: None,
            held: Vec::new(),
            turn: 0,
            pending: HashMap::default(),
            busy: HashSet::default(),
            deadlines: Deadlines::default(),
            routes: HashMap::default(),
            router: None,
            outbox: Vec::new(),
            signalled: [false; 2],
            runs: 0,
            rng: seed | 1,
            inbox: Inbox::new(),
        }
    }

    /// Checks in flight (sent or queued).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Forgets the looked-up source addresses (after a reload: routes may have changed too).
    pub fn forget_routes(&mut self) {
        self.routes.clear();
    }

    /// Source ports held.
    pub fn held_ports(&self) -> usize {
        self.held.len()
    }

    /// Lets go of the ports held for the (family, source address) pairs that `used` rejects
    /// (after a reload that removed the last checks from a source), except those with a check
    /// in flight; the families' filters then pass only the ports still held.
    pub fn retain_sources(&mut self, used: impl Fn(bool, Option<IpAddr>) -> bool) {
        let busy: HashSet<u16> = self.busy.iter().map(|(port, _)| *port).collect();
        let before = self.held.len();
        let mut changed = [false; 2];
        self.held.retain(|h| {
            let keep = used(h.v6, h.source) || busy.contains(&h.port);
            changed[usize::from(h.v6)] |= !keep;
            keep
        });
        if self.held.len() == before {
            return;
        }
        self.turn = 0;
        for v6 in [false, true] {
            if changed[usize::from(v6)] {
                if let Err(e) = self.refilter(v6) {
                    tracing::warn!("checks: half-open answer filter: {e}");
                }
            }
        }
    }

    /// Sets the family's answer filter to pass exactly the ports it holds.
    fn refilter(&self, v6: bool) -> io::Result<()> {
        let raw = if v6 { &self.v6 } else { &self.v4 };
        let Some(raw) = raw else { return Ok(()) };
        let ports: Vec<u16> = self
            .held
            .iter()
            .filter(|h| h.v6 == v6)
            .map(|h| h.port)
            .collect();
        attach_filter(raw.as_raw_fd(), &syn::answer_filter(&ports, !v6))
    }

    /// Queues a SYN to `target` (from `source`, if set); [`HalfOpen::flush`] sends it. The run
    /// finishes in [`HalfOpen::poll`] or [`HalfOpen::expire`].
    pub fn start(
        &mut self,
        target: SocketAddr,
        source: Option<IpAddr>,
        timeout: Duration,
        token: T,
        now: Instant,
    ) -> Result<(), NotStarted<T>> {
        let v6 = target.is_ipv6();
        if let Err(e) = self.open(v6) {
            return Err(NotStarted::Unavailable(token, e));
        }
        let finished = |token, f| {
            NotStarted::Finished(Finished {
                token,
                started: now,
                outcome: Outcome::Down(f),
            })
        };
        let port = match self.port_for(v6, source, target) {
            Ok(p) => p,
            Err(f) => return Err(finished(token, f)),
        };
        let seq = self.new_seq();
        let mut bytes = [0u8; V4_SYN_LEN];
        let (len, source_v6) = match (target, source) {
            (SocketAddr::V4(t), _) => {
                let from = match source {
                    Some(IpAddr::V4(s)) => s,
                    _ => match self.route_source(*t.ip(), now) {
                        Ok(s) => s,
                        Err(e) => return Err(finished(token, Failure::from_io(&e, "connecting"))),
                    },
                };
                bytes = syn::syn_v4(from, *t.ip(), port, t.port(), seq);
                (V4_SYN_LEN, None)
            }
            (SocketAddr::V6(t), s) => {
                bytes[..syn::TCP_SYN_LEN].copy_from_slice(&syn::syn_tcp(
                    port,
                    t.port(),
                    seq,
                    MSS_V6,
                ));
                let s = match s {
                    Some(IpAddr::V6(s)) => Some(s),
                    _ => None,
                };
                (syn::TCP_SYN_LEN, s)
            }
        };
        self.runs += 1;
        self.busy.insert((port, target));
        self.pending.insert(
            seq,
            Pending {
                token,
                started: now,
                timeout,
                target,
                port,
                source,
                run: self.runs,
            },
        );
        self.deadlines.push(now, timeout, (seq, self.runs));
        self.outbox.push(Outgoing {
            seq,
            to: target,
            source_v6,
            len,
            bytes,
        });
        Ok(())
    }

    /// Sends the queued SYNs, one `sendmmsg` per family (more if the kernel takes fewer);
    /// a SYN the kernel refuses ends its check at once, into `out`.
    pub fn flush(&mut self, out: &mut Vec<Finished<T>>) {
        if self.outbox.is_empty() {
            return;
        }
        let outbox = std::mem::take(&mut self.outbox);
        for v6 in [false, true] {
            let batch: Vec<&Outgoing> = outbox.iter().filter(|o| o.to.is_ipv6() == v6).collect();
            let Some(raw) = (if v6 { &self.v6 } else { &self.v4 }) else {
                continue;
            };
            let fd = raw.as_raw_fd();
            let mut i = 0;
            let mut retried = false;
            while i < batch.len() {
                match send_batch(fd, &batch[i..]) {
                    Ok(n) if n > 0 => {
                        // A send that stopped short failed on the next SYN, perhaps with an
                        // error that was pending for another check (below): the error queue
                        // has something to read.
                        self.signalled[v6 as usize] |= i + n < batch.len();
                        i += n;
                        retried = false;
                    }
                    _ if !retried => {
                        // An ICMP error about an earlier SYN leaves an error pending on the
                        // socket, and the next send reports it as its own: read the error
                        // queue (which ends the check it was about and clears it) and send
                        // again. Only a second failure is this SYN's.
                        self.read_errors(v6, out);
                        retried = true;
                    }
                    result => {
                        let e = result
                            .err()
                            .unwrap_or_else(|| io::Error::other("nothing sent"));
                        // The first of the rest could not be sent: end it, go on with the rest.
                        let failure = Failure::from_io(&e, "sending the SYN");
                        self.end(batch[i].seq, |_| true, |_| Outcome::Down(failure), out);
                        i += 1;
                        retried = false;
                    }
                }
            }
        }
        self.outbox = outbox;
        self.outbox.clear(); // keeps its capacity
    }

    /// Reads the answers queued so far, and the ICMP errors if the socket reported one,
    /// ending their checks into `out`. Not woken by each answer: the engine calls this once
    /// per tick while checks are in flight, so a tick's answers cost one wake-up and one
    /// `recvmmsg`, not one of each per check. An answer is taken at most a tick after it
    /// arrived.
    ///
    /// The error queue is read only when a read or send on the socket reported an error: every
    /// ICMP error queued also leaves the socket's error set, and the next system call on it
    /// reports that (the kernel sets it again while more are queued). [`HalfOpen::expire`]
    /// reads the queue anyway before it declares a timeout.
    pub fn poll(&mut self, out: &mut Vec<Finished<T>>) {
        for v6 in [false, true] {
            self.read_answers(v6, out);
            if std::mem::take(&mut self.signalled[v6 as usize]) {
                self.read_errors(v6, out);
            }
        }
    }

    /// Reads both queues of both sockets.
    fn read_all(&mut self, out: &mut Vec<Finished<T>>) {
        for v6 in [false, true] {
            self.signalled[v6 as usize] = false;
            self.read_errors(v6, out);
            self.read_answers(v6, out);
        }
    }

    /// Reads every answer queued to the family's raw socket and ends their checks into `out`.
    fn read_answers(&mut self, v6: bool, out: &mut Vec<Finished<T>>) {
        let Some(raw) = (if v6 { &self.v6 } else { &self.v4 }) else {
            return;
        };
        let fd = raw.as_raw_fd();
        let mut errors = 0;
        loop {
            let n = match self.inbox.receive(fd) {
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    // A pending socket error (an ICMP error queued) is reported once: note it
                    // and read on, but not forever.
                    _ if errors < 4 => {
                        errors += 1;
                        self.signalled[v6 as usize] = true;
                        continue;
                    }
                    _ => return,
                },
            };
            for i in 0..n {
                let (data, from) = self.inbox.message(i);
                let parsed = if v6 {
                    syn::parse_tcp(data).map(|r| (IpAddr::V6(from), r))
                } else {
                    syn::parse_v4(data)
                };
                let Some((from, reply)) = parsed else {
                    continue;
                };
                // Not ours, or late (the check timed out): ignored.
                let answered = |p: &Pending<T>| {
                    p.target.ip() == from
                        && p.target.port() == reply.from_port
                        && p.port == reply.to_port
                };
                let outcome = match reply.answer {
                    Answer::Open => Outcome::UP,
                    Answer::Refused => Outcome::Down(Failure::Refused),
                };
                self.end(reply.syn_seq, answered, |_| outcome, out);
            }
            if n < RECV_BATCH {
                return;
            }
        }
    }

    /// Reads the ICMP errors queued to the family's raw socket and ends the checks whose SYN
    /// they quote.
    fn read_errors(&mut self, v6: bool, out: &mut Vec<Finished<T>>) {
        let Some(raw) = (if v6 { &self.v6 } else { &self.v4 }) else {
            return;
        };
        let fd = raw.as_raw_fd();
        loop {
            let mut data = [0u8; 128];
            let mut control = [0u64; 16];
            let mut name = MaybeUninit::<libc::sockaddr_in6>::zeroed();
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            // SAFETY: an all-zero msghdr is valid.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = name.as_mut_ptr().cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 16]>();
            // SAFETY: the message points at live buffers of the sizes given.
            let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
            if n < 0 {
                return; // empty (or nothing readable: the next read tries again)
            }
            let Some(errno) = extended_errno(&msg) else {
                continue;
            };
            let data = &data[..(n as usize).min(data.len())];
            let quoted = if v6 {
                // SAFETY: msg_name holds the original destination, a sockaddr_in6 here.
                let to = unsafe { name.assume_init() };
                syn::parse_quoted_tcp(data).map(|(sp, dp, seq)| {
                    (
                        IpAddr::V6(Ipv6Addr::from(to.sin6_addr.s6_addr)),
                        sp,
                        dp,
                        seq,
                    )
                })
            } else {
                syn::parse_quoted_v4(data).map(|(to, sp, dp, seq)| (IpAddr::V4(to), sp, dp, seq))
            };
            let Some((to, sport, dport, seq)) = quoted else {
                continue;
            };
            let quotes =
                |p: &Pending<T>| p.target.ip() == to && p.target.port() == dport && p.port == sport;
            let failure = Failure::from_io(&io::Error::from_raw_os_error(errno), "connecting");
            self.end(seq, quotes, |_| Outcome::Down(failure), out);
        }
    }

    /// The earliest deadline of a check in flight.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let pending = &self.pending;
        self.deadlines
            .next(|(seq, run)| pending.get(&seq).is_some_and(|p| p.run == run))
    }

    /// Ends the checks whose deadline has passed as timeouts, into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Finished<T>>) {
        // An answer or ICMP error that came back is better than a timeout.
        if self.deadlines.next(|_| true).is_some_and(|d| d <= now) {
            self.read_all(out);
        }
        let mut expired = Vec::new();
        let pending = &self.pending;
        self.deadlines.expire(now, |(seq, run)| {
            if pending.get(&seq).is_some_and(|p| p.run == run) {
                expired.push(seq);
            }
        });
        for seq in expired {
            let timeout = |p: &Pending<T>| {
                Outcome::Down(Failure::Timeout {
                    after: p.timeout,
                    during: "connecting",
                })
            };
            self.end(seq, |_| true, timeout, out);
        }
    }

    /// Ends the check in flight under `seq`, if `is_it` holds for it, with the outcome
    /// `outcome` gives, into `out`. A check that did not reach the real (down for any reason
    /// but a refusal) has its source address looked up again next time: the route may have
    /// changed.
    fn end(
        &mut self,
        seq: u32,
        is_it: impl FnOnce(&Pending<T>) -> bool,
        outcome: impl FnOnce(&Pending<T>) -> Outcome,
        out: &mut Vec<Finished<T>>,
    ) {
        if !self.pending.get(&seq).is_some_and(is_it) {
            return;
        }
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        self.busy.remove(&(p.port, p.target));
        let outcome = outcome(&p);
        let reached = matches!(
            outcome,
            Outcome::Up { .. } | Outcome::Down(Failure::Refused)
        );
        if let (IpAddr::V4(dst), None, false) = (p.target.ip(), p.source, reached) {
            self.routes.remove(&dst);
        }
        out.push(Finished {
            token: p.token,
            started: p.started,
            outcome,
        });
    }

    /// A sequence number no check in flight uses.
    fn new_seq(&mut self) -> u32 {
        loop {
            // xorshift64*
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let seq = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
            if !self.pending.contains_key(&seq) {
                return seq;
            }
        }
    }

    /// Opens the family's raw socket if it is not open yet.
    fn open(&mut self, v6: bool) -> io::Result<()> {
        let slot = if v6 { &mut self.v6 } else { &mut self.v4 };
        if slot.is_none() {
            *slot = Some(open_raw(v6, &[])?);
        }
        Ok(())
    }

    /// A held port for a check of `target` from `source` that is not busy with a check of the
    /// same target; holds more ports for this source when it has none yet.
    fn port_for(
        &mut self,
        v6: bool,
        source: Option<IpAddr>,
        target: SocketAddr,
    ) -> Result<u16, Failure> {
        if !self.held.iter().any(|h| h.v6 == v6 && h.source == source) {
            self.hold_more(v6, source)?;
        }
        loop {
            let n = self.held.len();
            for i in 0..n {
                let h = &self.held[(self.turn + i) % n];
                if h.v6 == v6 && h.source == source && !self.busy.contains(&(h.port, target)) {
                    self.turn = (self.turn + i + 1) % n;
                    return Ok(h.port);
                }
            }
            // Every port of this source is in flight to this target (many services check
            // the same real and port, and a tick's checks are all in flight until the next
            // one): hold more, up to a limit per source and what one filter can take.
            let mine = self
                .held
                .iter()
                .filter(|h| h.v6 == v6 && h.source == source);
            let family = self.held.iter().filter(|h| h.v6 == v6);
            if mine.count() >= MAX_PORTS_PER_SOURCE
                || family.count() + PORTS_PER_SOURCE > syn::FILTER_PORTS_MAX
            {
                return Err(Failure::Io(format!(
                    "{MAX_PORTS_PER_SOURCE} checks of {target} already in flight"
                )));
            }
            self.hold_more(v6, source)?;
        }
    }

    /// Holds PORTS_PER_SOURCE more source ports for (family, source) and lets their answers
    /// through the family's filter.
    fn hold_more(&mut self, v6: bool, source: Option<IpAddr>) -> Result<(), Failure> {
        for _ in 0..PORTS_PER_SOURCE {
            let (socket, port) = hold_port(v6, source)?;
            self.held.push(Held {
                v6,
                source,
                port,
                _socket: socket,
            });
        }
        self.refilter(v6)
            .map_err(|e| Failure::Io(format!("filtering answers: {e}")))
    }

    /// The source address the kernel would use towards `dst`.
    fn route_source(&mut self, dst: Ipv4Addr, now: Instant) -> io::Result<Ipv4Addr> {
        if let Some((src, at)) = self.routes.get(&dst) {
            if now.duration_since(*at) < ROUTE_TTL {
                return Ok(*src);
            }
        }
        if self.router.is_none() {
            self.router = Some(new_socket(
                libc::AF_INET,
                libc::SOCK_DGRAM,
                libc::IPPROTO_UDP,
            )?);
        }
        let fd = self.router.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        // Connecting a UDP socket sends nothing: it routes, and picks the source address.
        let (addr, len) = sockaddr(SocketAddr::new(IpAddr::V4(dst), 9));
        // SAFETY: `addr` holds a sockaddr of `len` bytes.
        if unsafe { libc::connect(fd, addr.as_ptr().cast(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let local = local_addr(fd);
        // Dissolve it, so the next lookup is not bound to this one's source address.
        let unspec = libc::sockaddr {
            sa_family: libc::AF_UNSPEC as libc::sa_family_t,
            sa_data: [0; 14],
        };
        // SAFETY: `unspec` is a valid sockaddr of the size passed.
        unsafe {
            libc::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t);
        }
        let SocketAddr::V4(local) = local? else {
            return Err(io::Error::other("route lookup gave an IPv6 address"));
        };
        self.routes.insert(dst, (*local.ip(), now));
        Ok(*local.ip())
    }
}

impl<T> Default for HalfOpen<T> {
    fn default() -> Self {
        Self::new()
    }
}
