//! The DHCPv4 client as a pure state machine (RFC 2131 section 4.4): time and received messages in,
//! actions out. No sockets, no clock, no tokio: [`DhcpClient::step`] is driven by the I/O edge
//! (`net::runtime`) and, in tests, by a fake clock.
//!
//! ```text
//!  Start ──► SELECTING ──OFFER──► REQUESTING ──ACK──► BOUND ──T1──► RENEWING ──T2──► REBINDING
//!              ▲  (DISCOVER         │ (REQUEST bcast,       ▲          │ (REQUEST unicast)   │ (REQUEST bcast)
//!              │   backoff)         │  backoff, N tries)    └───ACK────┴─────────────────────┘
//!              └──── NAK / tries exhausted / lease expired ◄─────────────────────────────────┘
//! ```

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{Message, MessageType};

use super::lease::Lease;
use super::message::{self, ClientIdentity, Offer, ReplyProblem, RequestKind};

/// Retransmission delays: `initial`, doubling, at most `max`, each randomized by `±jitter`
/// (RFC 2131 4.1: 4 s, 8 s, 16 s ... 64 s, ±1 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first transmission.
    pub initial: Duration,
    /// Cap on the doubled delay (before jitter).
    pub max: Duration,
    /// Uniform randomization added to each delay, in `[-jitter, +jitter]`.
    pub jitter: Duration,
}

impl Backoff {
    /// RFC 2131 4.1.
    pub const RFC2131: Backoff = Backoff {
        initial: Duration::from_secs(4),
        max: Duration::from_secs(64),
        jitter: Duration::from_secs(1),
    };

    /// The delay to wait after transmission number `attempt` (0 = the first one).
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        let base = self.initial.saturating_mul(factor).min(self.max);
        let jitter = self.jitter.as_nanos().min(u128::from(u64::MAX / 2)) as u64;
        if jitter == 0 {
            return base;
        }
        let offset = rng.u64(0..=2 * jitter);
        if offset >= jitter {
            base.saturating_add(Duration::from_nanos(offset - jitter))
        } else {
            base.saturating_sub(Duration::from_nanos(jitter - offset))
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::RFC2131
    }
}

/// Timings of the client; [`Default`] gives the RFC 2131 values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpTiming {
    /// DISCOVER and (SELECTING) REQUEST retransmissions.
    pub backoff: Backoff,
    /// REQUEST transmissions in REQUESTING before starting over with a DISCOVER.
    pub request_attempts: u32,
    /// Smallest wait between retransmissions in RENEWING/REBINDING (RFC 2131 4.4.5: 60 s).
    pub extend_retransmit_min: Duration,
    /// Wait after a NAK before the next DISCOVER, so a server that NAKs everything cannot make
    /// us spin.
    pub nak_restart_delay: Duration,
    /// Treat every lease as at most this long, with T1/T2 the RFC defaults (1/2, 7/8) of it.
    /// For tests: real servers give leases of minutes. `None` in production.
    pub lease_cap: Option<Duration>,
}

impl Default for DhcpTiming {
    fn default() -> Self {
        DhcpTiming {
            backoff: Backoff::RFC2131,
            request_attempts: 4,
            extend_retransmit_min: Duration::from_secs(60),
            nak_restart_delay: Duration::from_secs(1),
            lease_cap: None,
        }
    }
}

/// Who the client is and how it times things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// MAC and hostname sent in every message.
    pub identity: ClientIdentity,
    pub timing: DhcpTiming,
}

impl DhcpConfig {
    /// RFC 2131 timings for this identity.
    pub fn new(identity: ClientIdentity) -> Self {
        DhcpConfig {
            identity,
            timing: DhcpTiming::default(),
        }
    }
}

/// Input to [`DhcpClient::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Begin: send the first DISCOVER. Ignored unless in INIT.
    Start,
    /// A message received on port 68 (already decoded; undecodable bytes are the edge's to log).
    Packet(Box<Message>),
    /// The timer last armed with [`Action::ArmTimer`] fired. Early or stale firings are harmless.
    Timeout,
}

/// Where an outgoing message goes (UDP port 67).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255 on the client's link.
    Broadcast,
    /// The leasing server (RENEWING).
    Unicast(Ipv4Addr),
}

/// What the I/O edge must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Encode and send `message` to `to`.
    Send {
        message: Box<Message>,
        to: Destination,
    },
    /// A lease was obtained or extended: set the address (valid until the lease expires), the
    /// default route and DNS. Idempotent: the same address may come again with new times.
    Configure(Lease),
    /// The lease is gone (expired or NAKed): remove its address and routes.
    Drop(Lease),
    /// Call `step(.., Input::Timeout)` at this instant; replaces any earlier timer.
    ArmTimer(Instant),
    /// No timer needed (infinite lease).
    CancelTimer,
}

/// The RFC 2131 state, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Selecting => "SELECTING",
            State::Requesting => "REQUESTING",
            State::Bound => "BOUND",
            State::Renewing => "RENEWING",
            State::Rebinding => "REBINDING",
        }
    }
}

/// Counters since the client was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub discovers_sent: u32,
    pub requests_sent: u32,
    pub offers_received: u32,
    pub acks_received: u32,
    pub naks_received: u32,
    pub replies_ignored: u32,
}

#[derive(Debug, Clone)]
enum Phase {
    Init,
    Selecting,
    Requesting { offer: Offer },
    Bound,
    Renewing,
    Rebinding,
}

/// The DHCPv4 client state machine. See the module docs.
#[derive(Debug)]
pub struct DhcpClient {
    cfg: DhcpConfig,
    rng: fastrand::Rng,
    phase: Phase,
    xid: u32,
    /// Start of the current transaction (for the `secs` field).
    tx_start: Instant,
    /// First REQUEST of the current transaction: base of the lease times on ACK.
    request_sent: Instant,
    /// Transmissions in the current phase so far, minus one.
    attempt: u32,
    deadline: Option<Instant>,
    lease: Option<Lease>,
    stats: Stats,
}

impl DhcpClient {
    /// A client in INIT. `seed` drives xids and jitter: random in production, fixed in tests.
    pub fn new(cfg: DhcpConfig, seed: u64, now: Instant) -> Self {
        DhcpClient {
            cfg,
            rng: fastrand::Rng::with_seed(seed),
            phase: Phase::Init,
            xid: 0,
            tx_start: now,
            request_sent: now,
            attempt: 0,
            deadline: None,
            lease: None,
            stats: Stats::default(),
        }
    }

    pub fn state(&self) -> State {
        match self.phase {
            Phase::Init => State::Init,
            Phase::Selecting => State::Selecting,
            Phase::Requesting { .. } => State::Requesting,
            Phase::Bound => State::Bound,
            Phase::Renewing => State::Renewing,
            Phase::Rebinding => State::Rebinding,
        }
    }

    /// The lease held, if any (also during RENEWING/REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The current transaction id.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// When the client next wants `Input::Timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.cfg
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if matches!(self.phase, Phase::Init) {
                    self.start_discover(now, &mut out);
                }
            }
            Input::Timeout => self.on_timeout(now, &mut out),
            Input::Packet(msg) => self.on_packet(now, &msg, &mut out),
        }
        out
    }

    fn arm(&mut self, at: Instant, out: &mut Vec<Action>) {
        self.deadline = Some(at);
        out.push(Action::ArmTimer(at));
    }

    fn secs(&self, now: Instant) -> u16 {
        now.saturating_duration_since(self.tx_start)
            .as_secs()
            .min(u64::from(u16::MAX)) as u16
    }

    fn new_transaction(&mut self, now: Instant) {
        self.xid = self.rng.u32(..);
        self.tx_start = now;
        self.request_sent = now;
        self.attempt = 0;
    }

    fn start_discover(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Selecting;
        self.new_transaction(now);
        self.send_discover(now, out);
    }

    fn send_discover(&mut self, now: Instant, out: &mut Vec<Action>) {
        let msg = message::discover(&self.cfg.identity, self.xid, self.secs(now));
        self.stats.discovers_sent += 1;
        out.push(Action::Send {
            message: Box::new(msg),
            to: Destination::Broadcast,
        });
        let delay = self.cfg.timing.backoff.delay(self.attempt, &mut self.rng);
        self.arm(now + delay, out);
    }

    fn send_request(
        &mut self,
        now: Instant,
        kind: RequestKind,
        to: Destination,
        out: &mut Vec<Action>,
    ) {
        let msg = message::request(&self.cfg.identity, self.xid, self.secs(now), kind);
        self.stats.requests_sent += 1;
        out.push(Action::Send {
            message: Box::new(msg),
            to,
        });
    }

    fn send_selecting_request(&mut self, now: Instant, offer: &Offer, out: &mut Vec<Action>) {
        let kind = RequestKind::Selecting {
            requested: offer.address,
            server: offer.server,
        };
        self.send_request(now, kind, Destination::Broadcast, out);
        let delay = self.cfg.timing.backoff.delay(self.attempt, &mut self.rng);
        self.arm(now + delay, out);
    }

    /// RENEWING/REBINDING step at `now`: send the right REQUEST, or give the lease up.
    fn extend(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(lease) = self.lease.clone() else {
            self.start_discover(now, out);
            return;
        };
        let (Some(rebind_at), Some(expires_at)) = (lease.rebind_at(), lease.expires_at()) else {
            // Infinite lease: nothing to extend.
            self.phase = Phase::Bound;
            self.deadline = None;
            out.push(Action::CancelTimer);
            return;
        };
        if now >= expires_at {
            tracing::warn!(address = %lease.address, "DHCP lease expired");
            self.lease = None;
            out.push(Action::Drop(lease));
            self.start_discover(now, out);
            return;
        }
        let ciaddr = lease.address;
        let (to, limit) = if now >= rebind_at {
            if !matches!(self.phase, Phase::Rebinding) {
                self.phase = Phase::Rebinding;
                self.new_transaction(now);
            }
            (Destination::Broadcast, expires_at)
        } else {
            if !matches!(self.phase, Phase::Renewing) {
                self.phase = Phase::Renewing;
                self.new_transaction(now);
            }
            (Destination::Unicast(lease.server), rebind_at)
        };
        self.send_request(now, RequestKind::Extending { ciaddr }, to, out);
        self.attempt += 1;
        // RFC 2131 4.4.5: wait half the time left until T2 (RENEWING) or expiry (REBINDING), but
        // at least the minimum; never past that limit, where the next phase starts.
        let half = limit.saturating_duration_since(now) / 2;
        let next = (now + half.max(self.cfg.timing.extend_retransmit_min)).min(limit);
        self.arm(next, out);
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            // Early wake-up: keep waiting for the real deadline.
            out.push(Action::ArmTimer(deadline));
            return;
        }
        self.deadline = None;
        match self.phase.clone() {
            Phase::Init => self.start_discover(now, out),
            Phase::Selecting => {
                self.attempt += 1;
                self.send_discover(now, out);
            }
            Phase::Requesting { offer } => {
                self.attempt += 1;
                if self.attempt >= self.cfg.timing.request_attempts {
                    tracing::info!(
                        server = %offer.server,
                        attempts = self.attempt,
                        "no answer to DHCPREQUEST, starting over"
                    );
                    self.start_discover(now, out);
                } else {
                    self.send_selecting_request(now, &offer, out);
                }
            }
            Phase::Bound | Phase::Renewing | Phase::Rebinding => self.extend(now, out),
        }
    }

    fn on_packet(&mut self, now: Instant, msg: &Message, out: &mut Vec<Action>) {
        let kind = match message::check_reply(msg, self.xid, &self.cfg.identity.mac) {
            Ok(kind) => kind,
            Err(problem) => return self.ignore(problem),
        };
        match kind {
            MessageType::Offer => self.stats.offers_received += 1,
            MessageType::Ack => self.stats.acks_received += 1,
            MessageType::Nak => self.stats.naks_received += 1,
            _ => {}
        }
        let from = message::server_id(msg);
        match (self.phase.clone(), kind) {
            (Phase::Selecting, MessageType::Offer) => match message::parse_offer(msg) {
                Ok(offer) => {
                    tracing::debug!(address = %offer.address, server = %offer.server, "DHCPOFFER");
                    self.phase = Phase::Requesting {
                        offer: offer.clone(),
                    };
                    self.attempt = 0;
                    self.request_sent = now;
                    self.send_selecting_request(now, &offer, out);
                }
                Err(problem) => self.ignore(problem),
            },
            (Phase::Requesting { offer }, MessageType::Ack) => {
                if let Some(p) = from.filter(|s| *s != offer.server) {
                    return self.ignore(ReplyProblem::OtherServer {
                        got: p,
                        want: offer.server,
                    });
                }
                self.bind(now, msg, offer.server, out);
            }
            (Phase::Requesting { offer }, MessageType::Nak) => {
                if let Some(p) = from.filter(|s| *s != offer.server) {
                    return self.ignore(ReplyProblem::OtherServer {
                        got: p,
                        want: offer.server,
                    });
                }
                self.nak(now, msg, out);
            }
            (Phase::Renewing | Phase::Rebinding, MessageType::Ack) => {
                let server = self.lease.as_ref().map(|l| l.server);
                if let (Phase::Renewing, Some(p), Some(want)) = (&self.phase, from, server) {
                    if p != want {
                        return self.ignore(ReplyProblem::OtherServer { got: p, want });
                    }
                }
                let fallback = from.or(server).unwrap_or(Ipv4Addr::UNSPECIFIED);
                self.bind(now, msg, fallback, out);
            }
            (Phase::Renewing | Phase::Rebinding, MessageType::Nak) => self.nak(now, msg, out),
            (_, kind) => self.ignore(ReplyProblem::Unexpected {
                kind,
                state: self.state().name(),
            }),
        }
    }

    fn ignore(&mut self, problem: ReplyProblem) {
        self.stats.replies_ignored += 1;
        tracing::debug!(state = self.state().name(), %problem, "ignoring DHCP reply");
    }

    fn bind(&mut self, now: Instant, msg: &Message, server: Ipv4Addr, out: &mut Vec<Action>) {
        let lease = match message::parse_ack(msg, server, self.request_sent) {
            Ok(l) => l.capped(self.cfg.timing.lease_cap),
            Err(problem) => return self.ignore(problem),
        };
        if let Some(old) = self.lease.take() {
            if old.address != lease.address || old.prefix_len != lease.prefix_len {
                out.push(Action::Drop(old));
            }
        }
        self.phase = Phase::Bound;
        self.attempt = 0;
        out.push(Action::Configure(lease.clone()));
        match lease.renew_at() {
            // If the ACK arrived after T1 (slow server, capped lease), renew right away.
            Some(t1) => self.arm(t1.max(now), out),
            None => {
                self.deadline = None;
                out.push(Action::CancelTimer);
            }
        }
        self.lease = Some(lease);
    }

    fn nak(&mut self, now: Instant, msg: &Message, out: &mut Vec<Action>) {
        let reason = match msg.opts().get(dhcproto::v4::OptionCode::Message) {
            Some(dhcproto::v4::DhcpOption::Message(m)) => m.clone(),
            _ => String::new(),
        };
        tracing::warn!(state = self.state().name(), %reason, "DHCPNAK, starting over");
        if let Some(old) = self.lease.take() {
            out.push(Action::Drop(old));
        }
        self.phase = Phase::Init;
        if self.cfg.timing.nak_restart_delay.is_zero() {
            self.start_discover(now, out);
        } else {
            self.arm(now + self.cfg.timing.nak_restart_delay, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dhcp::message::tests::{ident, MAC};
    use crate::net::dhcp::message::{decode, encode};
    use dhcproto::v4::{DhcpOption, Flags, Opcode, OptionCode};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn cfg() -> DhcpConfig {
        let mut c = DhcpConfig::new(ident());
        c.timing.backoff.jitter = Duration::ZERO;
        c
    }

    /// A server reply as bytes on the wire, decoded again (what the edge hands to `step`).
    fn reply(
        kind: MessageType,
        xid: u32,
        yiaddr: Ipv4Addr,
        lease: Option<(u32, u32, u32)>,
    ) -> Input {
        reply_from(kind, xid, yiaddr, SERVER, &MAC, lease)
    }

    fn reply_from(
        kind: MessageType,
        xid: u32,
        yiaddr: Ipv4Addr,
        server: Ipv4Addr,
        mac: &[u8; 6],
        lease: Option<(u32, u32, u32)>,
    ) -> Input {
        let mut m = Message::new_with_id(
            xid,
            Ipv4Addr::UNSPECIFIED,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            mac,
        );
        m.set_opcode(Opcode::BootReply)
            .set_flags(Flags::default().set_broadcast());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ServerIdentifier(server));
        if kind != MessageType::Nak {
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 254)]));
            o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 0, 0, 53,
            )]));
        }
        if let Some((lease, t1, t2)) = lease {
            o.insert(DhcpOption::AddressLeaseTime(lease));
            o.insert(DhcpOption::Renewal(t1));
            o.insert(DhcpOption::Rebinding(t2));
        }
        let bytes = encode(&m).unwrap();
        Input::Packet(Box::new(decode(&bytes).unwrap()))
    }

    /// The messages sent, decoded from their wire bytes, with their destinations.
    fn sent(actions: &[Action]) -> Vec<(MessageType, Message, Destination)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { message, to } => {
                    let m = decode(&encode(message).unwrap()).unwrap();
                    Some((m.opts().msg_type().unwrap(), m, *to))
                }
                _ => None,
            })
            .collect()
    }

    fn timer(actions: &[Action]) -> Option<Instant> {
        actions.iter().rev().find_map(|a| match a {
            Action::ArmTimer(t) => Some(*t),
            _ => None,
        })
    }

    /// Drives a client to BOUND; returns (client, t0, time the REQUEST was sent).
    fn bound(c: DhcpConfig, lease: (u32, u32, u32)) -> (DhcpClient, Instant, Instant) {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(c, 42, t0);
        cl.step(t0, Input::Start);
        let t_req = t0 + s(0.5);
        let xid = cl.xid();
        cl.step(t_req, reply(MessageType::Offer, xid, ADDR, Some(lease)));
        let a = cl.step(t0 + s(0.6), reply(MessageType::Ack, xid, ADDR, Some(lease)));
        assert!(matches!(a[0], Action::Configure(_)), "{a:?}");
        assert_eq!(cl.state(), State::Bound);
        (cl, t0, t_req)
    }

    #[test]
    fn discover_offer_request_ack() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        let a = cl.step(t0, Input::Start);
        let msgs = sent(&a);
        assert_eq!(msgs.len(), 1);
        let (kind, disc, to) = &msgs[0];
        assert_eq!(*kind, MessageType::Discover);
        assert_eq!(*to, Destination::Broadcast);
        assert!(disc.flags().broadcast());
        assert_eq!(&disc.chaddr()[..6], &MAC);
        assert_eq!(
            disc.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(
                [&[1u8][..], &MAC[..]].concat()
            ))
        );
        assert_eq!(
            disc.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("lb1".into()))
        );
        assert_eq!(timer(&a), Some(t0 + s(4.0)));
        assert_eq!(cl.state(), State::Selecting);
        let xid = disc.xid();

        let t1 = t0 + s(1.5);
        let a = cl.step(
            t1,
            reply(MessageType::Offer, xid, ADDR, Some((120, 60, 105))),
        );
        let msgs = sent(&a);
        assert_eq!(msgs.len(), 1);
        let (kind, req, to) = &msgs[0];
        assert_eq!(*kind, MessageType::Request);
        assert_eq!(*to, Destination::Broadcast);
        assert_eq!(req.xid(), xid, "REQUEST in SELECTING keeps the OFFER's xid");
        assert_eq!(req.secs(), 1);
        assert_eq!(
            req.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ADDR))
        );
        assert_eq!(
            req.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(timer(&a), Some(t1 + s(4.0)));
        assert_eq!(cl.state(), State::Requesting);

        let a = cl.step(
            t1 + s(0.2),
            reply(MessageType::Ack, xid, ADDR, Some((120, 60, 105))),
        );
        let Action::Configure(lease) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(lease.address, ADDR);
        assert_eq!(lease.prefix_len, 24);
        assert_eq!(lease.server, SERVER);
        assert_eq!(lease.routers, vec![Ipv4Addr::new(10, 0, 0, 254)]);
        assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 0, 53)]);
        assert_eq!(lease.obtained_at, t1, "lease counts from the REQUEST");
        assert_eq!(lease.renew_at(), Some(t1 + s(60.0)));
        assert_eq!(lease.rebind_at(), Some(t1 + s(105.0)));
        assert_eq!(lease.expires_at(), Some(t1 + s(120.0)));
        assert_eq!(a[1], Action::ArmTimer(t1 + s(60.0)));
        assert_eq!(a.len(), 2);
        assert_eq!(cl.state(), State::Bound);
        assert_eq!(cl.lease(), Some(lease));
        let st = cl.stats();
        assert_eq!(
            (
                st.discovers_sent,
                st.requests_sent,
                st.offers_received,
                st.acks_received
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn discover_backoff_doubles_to_64s_with_same_xid() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 7, t0);
        let mut now = t0;
        let mut a = cl.step(now, Input::Start);
        let xid = cl.xid();
        let mut times = vec![];
        for _ in 0..8 {
            let msgs = sent(&a);
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].0, MessageType::Discover);
            assert_eq!(msgs[0].1.xid(), xid);
            assert_eq!(
                u64::from(msgs[0].1.secs()),
                (now - t0).as_secs(),
                "secs counts from the first DISCOVER"
            );
            times.push((now - t0).as_secs());
            now = timer(&a).unwrap();
            a = cl.step(now, Input::Timeout);
        }
        assert_eq!(times, vec![0, 4, 12, 28, 60, 124, 188, 252]);
    }

    #[test]
    fn jitter_is_within_one_second_and_seeded() {
        let b = Backoff::RFC2131;
        let mut rng = fastrand::Rng::with_seed(3);
        for attempt in 0..10u32 {
            let base = 4u64.saturating_mul(1 << attempt).min(64);
            for _ in 0..50 {
                let d = b.delay(attempt, &mut rng);
                assert!(
                    d >= s(base as f64 - 1.0) && d <= s(base as f64 + 1.0),
                    "{attempt}: {d:?}"
                );
            }
        }
        let mut r1 = fastrand::Rng::with_seed(9);
        let mut r2 = fastrand::Rng::with_seed(9);
        assert_eq!(b.delay(2, &mut r1), b.delay(2, &mut r2));
        // Jitter actually varies.
        let mut rng = fastrand::Rng::with_seed(5);
        let ds: Vec<_> = (0..20).map(|_| b.delay(0, &mut rng)).collect();
        assert!(ds.iter().any(|d| *d != ds[0]));
        // Tighter test values work too, and huge attempt counts do not overflow.
        let fast = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            jitter: Duration::ZERO,
        };
        let ds: Vec<_> = (0..5).map(|i| fast.delay(i, &mut rng)).collect();
        assert_eq!(ds, [100, 200, 400, 400, 400].map(Duration::from_millis));
        assert_eq!(fast.delay(1000, &mut rng), Duration::from_millis(400));
    }

    #[test]
    fn renew_at_t1_rebind_at_t2_expire_and_restart() {
        // lease 1000 s, T1 500 s, T2 875 s; retransmit minimum 60 s (RFC).
        let (mut cl, _, tr) = bound(cfg(), (1000, 500, 875));
        let at = |secs: f64| tr + s(secs);
        let old_xid = cl.xid();

        // T1: unicast REQUEST to the server, ciaddr set, new xid.
        let a = cl.step(at(500.0), Input::Timeout);
        let m = sent(&a);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, MessageType::Request);
        assert_eq!(m[0].2, Destination::Unicast(SERVER));
        assert_eq!(m[0].1.ciaddr(), ADDR);
        assert_ne!(m[0].1.xid(), old_xid);
        assert_eq!(cl.state(), State::Renewing);
        let renew_xid = m[0].1.xid();
        // Half the time to T2 (187.5 s), then 93.75 s, then the 60 s minimum, then clamp to T2.
        let mut expected = vec![687.5, 781.25, 841.25, 875.0];
        let mut now = at(500.0);
        let mut next = timer(&a).unwrap();
        for want in expected.drain(..) {
            assert_eq!(next, at(want), "renew retransmission timer");
            now = next;
            let a = cl.step(now, Input::Timeout);
            let m = sent(&a);
            assert_eq!(m.len(), 1);
            next = timer(&a).unwrap();
            if want < 875.0 {
                assert_eq!(m[0].2, Destination::Unicast(SERVER));
                assert_eq!(m[0].1.xid(), renew_xid);
            } else {
                // T2: broadcast REQUEST (any server may answer), still with ciaddr.
                assert_eq!(m[0].2, Destination::Broadcast);
                assert_eq!(m[0].1.ciaddr(), ADDR);
                assert_eq!(cl.state(), State::Rebinding);
            }
        }
        assert_eq!(now, at(875.0));
        // Half the time to expiry (62.5 s), then the 60 s minimum, then clamp to expiry.
        for want in [937.5, 997.5] {
            assert_eq!(next, at(want), "rebind retransmission timer");
            let a = cl.step(next, Input::Timeout);
            assert_eq!(sent(&a)[0].2, Destination::Broadcast);
            next = timer(&a).unwrap();
        }
        assert_eq!(next, at(1000.0));
        let a = cl.step(next, Input::Timeout);
        let Action::Drop(lease) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(lease.address, ADDR);
        let m = sent(&a);
        assert_eq!(m[0].0, MessageType::Discover);
        assert_eq!(cl.state(), State::Selecting);
        assert!(cl.lease().is_none());
        assert_eq!(timer(&a), Some(at(1004.0)));
    }

    #[test]
    fn ack_while_renewing_extends_the_lease() {
        let (mut cl, _, tr) = bound(cfg(), (120, 60, 105));
        let t1 = tr + s(60.0);
        cl.step(t1, Input::Timeout);
        let xid = cl.xid();
        // An ACK from some other server during RENEWING is not ours to take.
        let other = Ipv4Addr::new(10, 0, 0, 2);
        let a = cl.step(
            t1 + s(0.1),
            reply_from(
                MessageType::Ack,
                xid,
                ADDR,
                other,
                &MAC,
                Some((120, 60, 105)),
            ),
        );
        assert!(a.is_empty(), "{a:?}");
        let a = cl.step(
            t1 + s(0.2),
            reply(MessageType::Ack, xid, ADDR, Some((120, 60, 105))),
        );
        let Action::Configure(lease) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!(lease.obtained_at, t1);
        assert_eq!(lease.expires_at(), Some(t1 + s(120.0)));
        assert_eq!(a[1], Action::ArmTimer(t1 + s(60.0)));
        assert_eq!(cl.state(), State::Bound);
    }

    #[test]
    fn rebinding_ack_with_new_address_drops_the_old_one_first() {
        let (mut cl, _, tr) = bound(cfg(), (120, 60, 105));
        cl.step(tr + s(60.0), Input::Timeout);
        cl.step(tr + s(105.0), Input::Timeout);
        assert_eq!(cl.state(), State::Rebinding);
        let xid = cl.xid();
        let new = Ipv4Addr::new(10, 0, 0, 77);
        let other = Ipv4Addr::new(10, 0, 0, 2);
        let a = cl.step(
            tr + s(106.0),
            reply_from(
                MessageType::Ack,
                xid,
                new,
                other,
                &MAC,
                Some((120, 60, 105)),
            ),
        );
        assert!(
            matches!(&a[0], Action::Drop(l) if l.address == ADDR),
            "{a:?}"
        );
        assert!(
            matches!(&a[1], Action::Configure(l) if l.address == new && l.server == other),
            "{a:?}"
        );
    }

    #[test]
    fn nak_while_requesting_restarts_after_delay() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        cl.step(t0, Input::Start);
        let xid = cl.xid();
        cl.step(
            t0 + s(1.0),
            reply(MessageType::Offer, xid, ADDR, Some((120, 60, 105))),
        );
        let a = cl.step(
            t0 + s(1.5),
            reply(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, None),
        );
        assert_eq!(a, vec![Action::ArmTimer(t0 + s(2.5))]);
        assert_eq!(cl.state(), State::Init);
        let a = cl.step(t0 + s(2.5), Input::Timeout);
        let m = sent(&a);
        assert_eq!(m[0].0, MessageType::Discover);
        assert_ne!(m[0].1.xid(), xid, "a new transaction");
        assert_eq!(m[0].1.secs(), 0);
        assert_eq!(cl.stats().naks_received, 1);
    }

    #[test]
    fn nak_while_renewing_drops_lease_and_rediscovers() {
        let mut c = cfg();
        c.timing.nak_restart_delay = Duration::ZERO;
        let (mut cl, _, tr) = bound(c, (120, 60, 105));
        cl.step(tr + s(60.0), Input::Timeout);
        let xid = cl.xid();
        let a = cl.step(
            tr + s(60.1),
            reply(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, None),
        );
        assert!(
            matches!(&a[0], Action::Drop(l) if l.address == ADDR),
            "{a:?}"
        );
        assert_eq!(sent(&a)[0].0, MessageType::Discover);
        assert_eq!(cl.state(), State::Selecting);
        assert!(cl.lease().is_none());
    }

    #[test]
    fn request_retries_exhausted_goes_back_to_discover() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        cl.step(t0, Input::Start);
        let xid = cl.xid();
        let a = cl.step(
            t0,
            reply(MessageType::Offer, xid, ADDR, Some((120, 60, 105))),
        );
        let mut next = timer(&a).unwrap();
        let mut kinds = vec![];
        for _ in 0..4 {
            let a = cl.step(next, Input::Timeout);
            kinds.push(((next - t0).as_secs(), sent(&a)[0].0));
            next = timer(&a).unwrap();
        }
        use MessageType::*;
        assert_eq!(
            kinds,
            vec![(4, Request), (12, Request), (28, Request), (60, Discover)]
        );
        assert_ne!(cl.xid(), xid);
    }

    #[test]
    fn foreign_and_unexpected_replies_are_ignored() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        cl.step(t0, Input::Start);
        let xid = cl.xid();
        let lease = Some((120, 60, 105));
        let other_mac = [2, 0, 0, 0, 0, 9];
        assert!(cl
            .step(t0, reply(MessageType::Offer, xid ^ 1, ADDR, lease))
            .is_empty());
        assert!(cl
            .step(
                t0,
                reply_from(MessageType::Offer, xid, ADDR, SERVER, &other_mac, lease)
            )
            .is_empty());
        assert!(
            cl.step(t0, reply(MessageType::Ack, xid, ADDR, lease))
                .is_empty(),
            "ACK in SELECTING"
        );
        assert!(cl
            .step(
                t0,
                reply(MessageType::Offer, xid, Ipv4Addr::UNSPECIFIED, lease)
            )
            .is_empty());
        assert_eq!(cl.state(), State::Selecting);
        cl.step(t0, reply(MessageType::Offer, xid, ADDR, lease));
        // A second OFFER (another server) while REQUESTING changes nothing.
        let other = Ipv4Addr::new(10, 0, 0, 2);
        assert!(cl
            .step(
                t0,
                reply_from(MessageType::Offer, xid, ADDR, other, &MAC, lease)
            )
            .is_empty());
        // Nor does that server's NAK or ACK.
        assert!(cl
            .step(
                t0,
                reply_from(MessageType::Nak, xid, ADDR, other, &MAC, None)
            )
            .is_empty());
        assert!(cl
            .step(
                t0,
                reply_from(MessageType::Ack, xid, ADDR, other, &MAC, lease)
            )
            .is_empty());
        assert_eq!(cl.state(), State::Requesting);
        assert_eq!(cl.stats().replies_ignored, 7);
    }

    #[test]
    fn early_or_stale_timeouts_send_nothing() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        // Before Start there is no timer at all.
        assert!(cl.step(t0, Input::Timeout).is_empty());
        cl.step(t0, Input::Start);
        let a = cl.step(t0 + s(3.9), Input::Timeout);
        assert_eq!(a, vec![Action::ArmTimer(t0 + s(4.0))]);
        // Start again changes nothing once running.
        assert!(cl.step(t0 + s(1.0), Input::Start).is_empty());
        assert_eq!(cl.stats().discovers_sent, 1);
    }

    #[test]
    fn late_timer_past_expiry_drops_immediately() {
        let (mut cl, _, tr) = bound(cfg(), (120, 60, 105));
        // Timer fires long after expiry (e.g. the box was stalled): no renew, just drop.
        let a = cl.step(tr + s(500.0), Input::Timeout);
        assert!(matches!(a[0], Action::Drop(_)), "{a:?}");
        assert_eq!(sent(&a)[0].0, MessageType::Discover);
    }

    #[test]
    fn lease_cap_shortens_lease_for_tests() {
        let mut c = cfg();
        c.timing.lease_cap = Some(s(6.0));
        let (cl, _, tr) = bound(c, (120, 60, 105));
        let l = cl.lease().unwrap();
        assert_eq!(l.lease_time, Some(s(6.0)));
        assert_eq!(l.renew_at(), Some(tr + s(3.0)));
        assert_eq!(l.rebind_at(), Some(tr + s(5.25)));
    }

    #[test]
    fn infinite_lease_cancels_timer() {
        let t0 = Instant::now();
        let mut cl = DhcpClient::new(cfg(), 1, t0);
        cl.step(t0, Input::Start);
        let xid = cl.xid();
        cl.step(t0, reply(MessageType::Offer, xid, ADDR, None));
        let a = cl.step(
            t0,
            reply(
                MessageType::Ack,
                xid,
                ADDR,
                Some((u32::MAX, u32::MAX, u32::MAX)),
            ),
        );
        assert!(matches!(&a[0], Action::Configure(l) if l.lease_time.is_none()));
        assert_eq!(a[1], Action::CancelTimer);
        assert_eq!(cl.deadline(), None);
    }
}
