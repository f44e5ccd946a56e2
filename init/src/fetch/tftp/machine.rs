//! The TFTP read-transfer state machine: packets and timer expiries in, packets and timer
//! settings out. No sockets, no clock: the caller passes `now` and does the sending, which is
//! what lets the tests below drive retransmissions, stray ports and block-number wrap-around
//! without a network.
//!
//! Covered: RFC 1350 (lock-step DATA/ACK, transfer IDs), RFC 2347 (OACK), RFC 2348 (blksize),
//! RFC 2349 (tsize, timeout), RFC 1123 4.2.3.1 (Sorcerer's Apprentice: a duplicate DATA is
//! re-acknowledged at most once).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::packet::{ErrorCode, Packet, PacketError, TftpOption};

/// Block size without the blksize option (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Requested block size: fills a 1500-byte Ethernet frame (1468 + 4 TFTP + 8 UDP + 20 IP).
pub const ETHERNET_BLKSIZE: u16 = 1468;

/// Parameters of one read transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadConfig {
    /// Where the read request goes (the server's well-known port).
    pub server: SocketAddr,
    /// The file to read.
    pub filename: String,
    /// The block size to ask for (RFC 2348), `None` to not ask. The server may grant less.
    pub blksize: Option<u16>,
    /// Whether to ask the file size (RFC 2349 `tsize`), so an oversized file is refused before
    /// its first block.
    pub ask_tsize: bool,
    /// Retransmission timeout per packet; also offered to the server as the `timeout` option
    /// (whole seconds, 1 to 255) when `ask_timeout` is set.
    pub timeout: Duration,
    /// Whether to send the `timeout` option.
    pub ask_timeout: bool,
    /// How many times one packet is retransmitted before the transfer fails.
    pub retries: u32,
    /// The largest file accepted, in bytes.
    pub max_size: u64,
}

impl ReadConfig {
    /// A read of `filename` from `server` with the defaults: blksize 1468, tsize, timeout 1 s,
    /// 5 retransmissions, 4 MiB at most.
    pub fn new(server: SocketAddr, filename: impl Into<String>) -> Self {
        ReadConfig {
            server,
            filename: filename.into(),
            blksize: Some(ETHERNET_BLKSIZE),
            ask_tsize: true,
            timeout: Duration::from_secs(1),
            ask_timeout: true,
            retries: 5,
            max_size: 4 << 20,
        }
    }

    fn requested_options(&self) -> Vec<TftpOption> {
        let mut options = Vec::new();
        if let Some(b) = self.blksize {
            options.push(TftpOption::new("blksize", b));
        }
        if self.ask_tsize {
            options.push(TftpOption::new("tsize", 0));
        }
        if self.ask_timeout {
            options.push(TftpOption::new("timeout", timeout_secs(self.timeout)));
        }
        options
    }
}

/// The `timeout` option's value: whole seconds, rounded up, 1 to 255.
fn timeout_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.clamp(1, 255)
}

/// Something that happened to the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Begin: send the read request.
    Start,
    /// A UDP datagram arrived.
    Received {
        /// Its source address and port.
        from: SocketAddr,
        /// Its payload.
        bytes: &'a [u8],
    },
    /// The timer from the last [`Action::ArmTimer`] expired.
    Timeout,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `packet` to `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The packet.
        packet: Packet,
    },
    /// (Re)arm the one timer to fire at this instant, replacing any earlier setting.
    ArmTimer(Instant),
    /// The whole file has arrived: take it with [`ReadTransfer::take_data`].
    Complete,
    /// The transfer is over and failed.
    Fail(TransferError),
}

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The server sent an ERROR packet.
    #[error("server error {code}: {message:?}")]
    Server {
        /// Its code.
        code: ErrorCode,
        /// Its message, as sent.
        message: String,
    },
    /// No answer after all retransmissions.
    #[error("no {waiting_for} after {attempts} tries, {timeout:?} apart")]
    Timeout {
        /// What was awaited, e.g. `reply to the read request` or `DATA 12`.
        waiting_for: String,
        /// Packets sent for it (the first plus retransmissions).
        attempts: u32,
        /// The per-packet timeout.
        timeout: Duration,
    },
    /// The file is larger than allowed.
    #[error("file is larger than the limit of {limit} bytes ({detail})")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
        /// What showed it: the announced tsize or the bytes received so far.
        detail: String,
    },
    /// The server's OACK was unacceptable.
    #[error("bad option acknowledgement: {0}")]
    BadOack(String),
    /// The server broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server sent something that is not a TFTP packet.
    #[error("malformed packet from the server: {0}")]
    Malformed(PacketError),
    /// The received length differs from the size the server announced.
    #[error("server announced {announced} bytes (tsize) but sent {received}")]
    SizeMismatch {
        /// From the OACK.
        announced: u64,
        /// Actually received.
        received: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// The read request is out; no reply yet, so no server TID.
    Requested {
        with_options: bool,
    },
    /// Locked onto the server's TID; `last_block` has been acknowledged (0 = the OACK).
    Receiving {
        tid: SocketAddr,
        last_block: u16,
        /// A duplicate of `last_block` has already been re-acknowledged (RFC 1123 4.2.3.1).
        dup_reacked: bool,
    },
    Done,
    Failed,
}

/// One client read transfer (see the module docs).
#[derive(Debug)]
pub struct ReadTransfer {
    cfg: ReadConfig,
    state: State,
    data: Vec<u8>,
    blksize: usize,
    timeout: Duration,
    tsize: Option<u64>,
    blocks: u64,
    /// The server's TID, kept after the transfer ends.
    tid: Option<SocketAddr>,
    /// The packet to retransmit on timeout, and where to.
    last_sent: Option<(SocketAddr, Packet)>,
    /// Packets sent for the current step (first send included).
    sends: u32,
}

impl ReadTransfer {
    /// A transfer that has not started; feed it [`Input::Start`].
    pub fn new(cfg: ReadConfig) -> Self {
        let timeout = cfg.timeout;
        ReadTransfer {
            cfg,
            state: State::Idle,
            data: Vec::new(),
            blksize: DEFAULT_BLKSIZE.into(),
            timeout,
            tsize: None,
            blocks: 0,
            tid: None,
            last_sent: None,
            sends: 0,
        }
    }

    /// The block size in use (512 until an OACK grants another).
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// The file size the server announced (tsize), if it did.
    pub fn announced_size(&self) -> Option<u64> {
        self.tsize
    }

    /// DATA blocks accepted so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.data.len() as u64
    }

    /// The server's transfer ID once locked on.
    pub fn server_tid(&self) -> Option<SocketAddr> {
        self.tid
    }

    /// The file, after [`Action::Complete`] (empty before).
    pub fn take_data(&mut self) -> Vec<u8> {
        if self.state == State::Done {
            std::mem::take(&mut self.data)
        } else {
            Vec::new()
        }
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if self.state == State::Idle {
                    let options = self.cfg.requested_options();
                    self.send_request(now, options, &mut out);
                }
            }
            Input::Timeout => self.on_timeout(now, &mut out),
            Input::Received { from, bytes } => self.on_packet(now, from, bytes, &mut out),
        }
        out
    }

    fn send_request(&mut self, now: Instant, options: Vec<TftpOption>, out: &mut Vec<Action>) {
        self.state = State::Requested {
            with_options: !options.is_empty(),
        };
        let rrq = Packet::Rrq {
            filename: self.cfg.filename.clone(),
            mode: "octet".into(),
            options,
        };
        self.sends = 0;
        self.send_tracked(now, self.cfg.server, rrq, out);
    }

    /// Sends a packet that is retransmitted on timeout, and arms the timer.
    fn send_tracked(
        &mut self,
        now: Instant,
        to: SocketAddr,
        packet: Packet,
        out: &mut Vec<Action>,
    ) {
        self.sends += 1;
        out.push(Action::Send {
            to,
            packet: packet.clone(),
        });
        out.push(Action::ArmTimer(now + self.timeout));
        self.last_sent = Some((to, packet));
    }

    fn fail(&mut self, error: TransferError, out: &mut Vec<Action>) {
        self.state = State::Failed;
        self.data = Vec::new();
        out.push(Action::Fail(error));
    }

    /// Tells the server why we stop, then fails.
    fn abort(
        &mut self,
        to: SocketAddr,
        code: ErrorCode,
        error: TransferError,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send {
            to,
            packet: Packet::Error {
                code,
                message: error.to_string(),
            },
        });
        self.fail(error, out);
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let waiting_for = match &self.state {
            State::Requested { .. } => "reply to the read request".to_string(),
            State::Receiving { last_block, .. } if self.blocks == 0 && *last_block == 0 => {
                "DATA 1 after acknowledging the options".to_string()
            }
            State::Receiving { last_block, .. } => format!("DATA {}", last_block.wrapping_add(1)),
            State::Idle | State::Done | State::Failed => return,
        };
        if self.sends > self.cfg.retries {
            let error = TransferError::Timeout {
                waiting_for,
                attempts: self.sends,
                timeout: self.timeout,
            };
            self.fail(error, out);
            return;
        }
        if let Some((to, packet)) = self.last_sent.clone() {
            self.send_tracked(now, to, packet, out);
        }
    }

    fn on_packet(&mut self, now: Instant, from: SocketAddr, bytes: &[u8], out: &mut Vec<Action>) {
        match self.state.clone() {
            State::Idle | State::Done | State::Failed => {}
            State::Requested { with_options } => {
                // The server answers from a new port; only its address must match.
                if from.ip() != self.cfg.server.ip() {
                    return;
                }
                match Packet::parse(bytes) {
                    Ok(Packet::Oack { options }) if with_options => {
                        self.on_oack(now, from, &options, out)
                    }
                    Ok(Packet::Data { block: 1, data }) => {
                        // No OACK: the server ignored our options (RFC 2347), plain RFC 1350.
                        self.blksize = DEFAULT_BLKSIZE.into();
                        self.timeout = self.cfg.timeout;
                        self.state = State::Receiving {
                            tid: from,
                            last_block: 0,
                            dup_reacked: false,
                        };
                        self.tid = Some(from);
                        self.on_data(now, from, 1, &data, out);
                    }
                    Ok(Packet::Error {
                        code: ErrorCode::OptionsRefused,
                        ..
                    }) if with_options => {
                        // An old server that errors on options instead of ignoring them: ask
                        // again plainly (its next reply comes from yet another port; fine,
                        // we have not locked on yet).
                        self.send_request(now, Vec::new(), out);
                    }
                    Ok(Packet::Error { code, message }) => {
                        self.fail(TransferError::Server { code, message }, out)
                    }
                    // Anything else (a stray packet, garbage) is not an answer to our request.
                    _ => {}
                }
            }
            State::Receiving {
                tid,
                last_block,
                dup_reacked,
            } => {
                if from != tid {
                    // RFC 1350: answer a foreign TID with ERROR 5, leave the transfer alone.
                    out.push(Action::Send {
                        to: from,
                        packet: Packet::Error {
                            code: ErrorCode::UnknownTid,
                            message: "unknown transfer ID".into(),
                        },
                    });
                    return;
                }
                let packet = match Packet::parse(bytes) {
                    Ok(p) => p,
                    Err(e) => {
                        let error = TransferError::Malformed(e);
                        self.abort(tid, ErrorCode::IllegalOperation, error, out);
                        return;
                    }
                };
                match packet {
                    Packet::Data { block, data } => {
                        let next = last_block.wrapping_add(1);
                        // After 65535, servers roll over to 0 (tftp-hpa, dnsmasq) or to 1
                        // (some others); in lock-step a block 1 there cannot be stale.
                        let rolled_to_one = last_block == u16::MAX && block == 1;
                        if block == next || rolled_to_one {
                            self.on_data(now, tid, block, &data, out);
                        } else if block == last_block && self.blocks > 0 {
                            self.on_duplicate(tid, last_block, dup_reacked, out);
                        }
                        // Older blocks: late duplicates, ignored.
                    }
                    Packet::Oack { .. } if self.blocks == 0 => {
                        // Our ACK 0 was lost and the server repeated its OACK.
                        self.on_duplicate(tid, 0, dup_reacked, out);
                    }
                    Packet::Error { code, message } => {
                        self.fail(TransferError::Server { code, message }, out)
                    }
                    other => {
                        let error = TransferError::Protocol(format!(
                            "unexpected {} during a read transfer",
                            other.kind()
                        ));
                        self.abort(tid, ErrorCode::IllegalOperation, error, out);
                    }
                }
            }
        }
    }

    /// Re-acknowledges a duplicate once per block, so a server that retransmits on every ACK
    /// (the Sorcerer's Apprentice bug) cannot double the traffic through us. A lost ACK is still
    /// repaired by our own retransmission timer.
    fn on_duplicate(
        &mut self,
        tid: SocketAddr,
        block: u16,
        dup_reacked: bool,
        out: &mut Vec<Action>,
    ) {
        if dup_reacked {
            return;
        }
        out.push(Action::Send {
            to: tid,
            packet: Packet::Ack { block },
        });
        if let State::Receiving { dup_reacked, .. } = &mut self.state {
            *dup_reacked = true;
        }
    }

    fn on_oack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        options: &[TftpOption],
        out: &mut Vec<Action>,
    ) {
        match self.apply_oack(options) {
            Ok(()) => {}
            Err(reason) => {
                let error = TransferError::BadOack(reason);
                self.abort(from, ErrorCode::OptionsRefused, error, out);
                return;
            }
        }
        if let Some(size) = self.tsize {
            if size > self.cfg.max_size {
                let error = TransferError::TooLarge {
                    limit: self.cfg.max_size,
                    detail: format!("server announced {size} bytes"),
                };
                self.abort(from, ErrorCode::DiskFull, error, out);
                return;
            }
        }
        self.state = State::Receiving {
            tid: from,
            last_block: 0,
            dup_reacked: false,
        };
        self.tid = Some(from);
        self.sends = 0;
        self.send_tracked(now, from, Packet::Ack { block: 0 }, out);
    }

    fn apply_oack(&mut self, options: &[TftpOption]) -> Result<(), String> {
        for o in options {
            let name = o.name.to_ascii_lowercase();
            let value = o.value.trim();
            match name.as_str() {
                "blksize" => {
                    let asked = self
                        .cfg
                        .blksize
                        .ok_or("blksize granted but not requested")?;
                    let granted: u16 = value
                        .parse()
                        .map_err(|_| format!("blksize {value:?} is not a number"))?;
                    if !(8..=asked).contains(&granted) {
                        return Err(format!("blksize {granted} outside 8..={asked}"));
                    }
                    self.blksize = granted.into();
                }
                "tsize" if self.cfg.ask_tsize => {
                    let size = value
                        .parse()
                        .map_err(|_| format!("tsize {value:?} is not a number"))?;
                    self.tsize = Some(size);
                }
                "timeout" if self.cfg.ask_timeout => {
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| format!("timeout {value:?} is not a number"))?;
                    if !(1..=255).contains(&secs) {
                        return Err(format!("timeout {secs} outside 1..=255"));
                    }
                    // The server retransmits after `secs`; we keep our (finer) own timer if it
                    // matches what we offered, else follow the server.
                    if secs != timeout_secs(self.cfg.timeout) {
                        self.timeout = Duration::from_secs(secs);
                    }
                }
                _ => return Err(format!("option {:?} was not requested", o.name)),
            }
        }
        Ok(())
    }

    fn on_data(
        &mut self,
        now: Instant,
        tid: SocketAddr,
        block: u16,
        data: &[u8],
        out: &mut Vec<Action>,
    ) {
        if data.len() > self.blksize {
            let error = TransferError::Protocol(format!(
                "DATA {block} carries {} bytes, more than the block size {}",
                data.len(),
                self.blksize
            ));
            self.abort(tid, ErrorCode::IllegalOperation, error, out);
            return;
        }
        let total = self.data.len() as u64 + data.len() as u64;
        if total > self.cfg.max_size {
            let error = TransferError::TooLarge {
                limit: self.cfg.max_size,
                detail: format!("{total} bytes received by DATA {block}"),
            };
            self.abort(tid, ErrorCode::DiskFull, error, out);
            return;
        }
        self.data.extend_from_slice(data);
        self.blocks += 1;
        self.state = State::Receiving {
            tid,
            last_block: block,
            dup_reacked: false,
        };
        let ack = Packet::Ack { block };
        if data.len() < self.blksize {
            // Last block. We do not dally for a retransmitted final DATA (RFC 1350 suggests
            // it): the server times out on its own, and the boot path must not wait for it.
            out.push(Action::Send {
                to: tid,
                packet: ack,
            });
            if let Some(announced) = self.tsize {
                if announced != total {
                    let error = TransferError::SizeMismatch {
                        announced,
                        received: total,
                    };
                    self.fail(error, out);
                    return;
                }
            }
            self.state = State::Done;
            self.last_sent = None;
            out.push(Action::Complete);
        } else {
            self.sends = 0;
            self.send_tracked(now, tid, ack, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "192.0.2.1:69";
    const TID: &str = "192.0.2.1:40001";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn cfg() -> ReadConfig {
        ReadConfig::new(addr(SERVER), "node.toml")
    }

    /// Drives a transfer with a clock that advances 1 ms per input.
    struct Driver {
        t: ReadTransfer,
        now: Instant,
    }

    impl Driver {
        fn new(cfg: ReadConfig) -> Self {
            Driver {
                t: ReadTransfer::new(cfg),
                now: Instant::now(),
            }
        }
        fn start(&mut self) -> Vec<Action> {
            self.t.step(self.now, Input::Start)
        }
        fn recv(&mut self, from: &str, p: &Packet) -> Vec<Action> {
            self.now += Duration::from_millis(1);
            let bytes = p.emit();
            self.t.step(
                self.now,
                Input::Received {
                    from: addr(from),
                    bytes: &bytes,
                },
            )
        }
        fn timeout(&mut self) -> Vec<Action> {
            self.now += self.t.timeout;
            self.t.step(self.now, Input::Timeout)
        }
        fn ack_and_timer(&self, block: u16) -> Vec<Action> {
            vec![
                send(TID, Packet::Ack { block }),
                Action::ArmTimer(self.now + self.t.timeout),
            ]
        }
    }

    fn send(to: &str, packet: Packet) -> Action {
        Action::Send {
            to: addr(to),
            packet,
        }
    }

    fn data(block: u16, len: usize) -> Packet {
        Packet::Data {
            block,
            data: vec![block as u8; len],
        }
    }

    fn oack(opts: &[(&str, &str)]) -> Packet {
        Packet::Oack {
            options: opts.iter().map(|(n, v)| TftpOption::new(*n, v)).collect(),
        }
    }

    fn plain_cfg() -> ReadConfig {
        ReadConfig {
            blksize: None,
            ask_tsize: false,
            ask_timeout: false,
            ..cfg()
        }
    }

    #[test]
    fn request_carries_the_options() {
        let mut d = Driver::new(cfg());
        let now = d.now;
        assert_eq!(
            d.start(),
            vec![
                send(
                    SERVER,
                    Packet::Rrq {
                        filename: "node.toml".into(),
                        mode: "octet".into(),
                        options: vec![
                            TftpOption::new("blksize", 1468),
                            TftpOption::new("tsize", 0),
                            TftpOption::new("timeout", 1),
                        ],
                    }
                ),
                Action::ArmTimer(now + Duration::from_secs(1)),
            ]
        );
        // A second Start is ignored.
        assert_eq!(d.start(), vec![]);
    }

    #[test]
    fn plain_rfc1350_transfer_of_513_bytes() {
        let mut d = Driver::new(plain_cfg());
        let start = d.start();
        assert_eq!(
            start[0],
            send(
                SERVER,
                Packet::Rrq {
                    filename: "node.toml".into(),
                    mode: "octet".into(),
                    options: vec![]
                }
            )
        );
        let a = d.recv(TID, &data(1, 512));
        assert_eq!(a, d.ack_and_timer(1));
        assert_eq!(d.t.server_tid(), Some(addr(TID)));
        let a = d.recv(TID, &data(2, 1));
        assert_eq!(
            a,
            vec![send(TID, Packet::Ack { block: 2 }), Action::Complete]
        );
        assert_eq!(d.t.server_tid(), Some(addr(TID)), "kept after the end");
        let got = d.t.take_data();
        assert_eq!(got.len(), 513);
        assert_eq!(got[511], 1);
        assert_eq!(got[512], 2);
    }

    #[test]
    fn file_of_exactly_one_block_ends_with_an_empty_block() {
        let mut d = Driver::new(plain_cfg());
        d.start();
        assert_eq!(d.recv(TID, &data(1, 512)), d.ack_and_timer(1));
        assert_eq!(
            d.recv(TID, &data(2, 0)),
            vec![send(TID, Packet::Ack { block: 2 }), Action::Complete]
        );
        assert_eq!(d.t.take_data().len(), 512);
    }

    #[test]
    fn server_without_options_support_falls_back_to_512() {
        let mut d = Driver::new(cfg());
        d.start();
        // DATA 1 straight away (no OACK): a 512-byte block is not the last one.
        assert_eq!(d.recv(TID, &data(1, 512)), d.ack_and_timer(1));
        assert_eq!(d.t.blksize(), 512);
        assert_eq!(d.t.announced_size(), None);
        let a = d.recv(TID, &data(2, 100));
        assert_eq!(a.last(), Some(&Action::Complete));
    }

    #[test]
    fn oack_sets_blksize_and_tsize() {
        let mut d = Driver::new(cfg());
        d.start();
        let a = d.recv(
            TID,
            &oack(&[("BLKSIZE", "1024"), ("tsize", "1500"), ("timeout", "1")]),
        );
        assert_eq!(a, d.ack_and_timer(0));
        assert_eq!(d.t.blksize(), 1024);
        assert_eq!(d.t.announced_size(), Some(1500));
        assert_eq!(d.recv(TID, &data(1, 1024)), d.ack_and_timer(1));
        let a = d.recv(TID, &data(2, 476));
        assert_eq!(
            a,
            vec![send(TID, Packet::Ack { block: 2 }), Action::Complete]
        );
        assert_eq!(d.t.take_data().len(), 1500);
    }

    #[test]
    fn oack_timeout_from_the_server_is_followed() {
        let mut d = Driver::new(cfg());
        d.start();
        d.recv(TID, &oack(&[("timeout", "3")]));
        assert_eq!(d.t.timeout, Duration::from_secs(3));
    }

    #[test]
    fn announced_size_over_the_limit_is_refused_before_data() {
        let mut d = Driver::new(ReadConfig {
            max_size: 1000,
            ..cfg()
        });
        d.start();
        let a = d.recv(TID, &oack(&[("tsize", "1001")]));
        let error = TransferError::TooLarge {
            limit: 1000,
            detail: "server announced 1001 bytes".into(),
        };
        assert_eq!(
            a,
            vec![
                send(
                    TID,
                    Packet::Error {
                        code: ErrorCode::DiskFull,
                        message: error.to_string()
                    }
                ),
                Action::Fail(error)
            ]
        );
        // Nothing more happens after a failure.
        assert_eq!(d.recv(TID, &data(1, 512)), vec![]);
        assert_eq!(d.timeout(), vec![]);
    }

    #[test]
    fn received_size_over_the_limit_is_refused() {
        let mut d = Driver::new(ReadConfig {
            max_size: 1000,
            ..plain_cfg()
        });
        d.start();
        d.recv(TID, &data(1, 512));
        let a = d.recv(TID, &data(2, 512));
        assert!(
            matches!(
                &a[..],
                [
                    Action::Send {
                        packet: Packet::Error {
                            code: ErrorCode::DiskFull,
                            ..
                        },
                        ..
                    },
                    Action::Fail(TransferError::TooLarge { limit: 1000, .. })
                ]
            ),
            "{a:?}"
        );
        assert!(d.t.take_data().is_empty());
    }

    #[test]
    fn bad_oacks_are_refused_with_error_8() {
        let cases: [(ReadConfig, Packet, &str); 5] = [
            (
                cfg(),
                oack(&[("blksize", "2000")]),
                "blksize 2000 outside 8..=1468",
            ),
            (
                cfg(),
                oack(&[("blksize", "4")]),
                "blksize 4 outside 8..=1468",
            ),
            (
                cfg(),
                oack(&[("windowsize", "4")]),
                "option \"windowsize\" was not requested",
            ),
            (
                cfg(),
                oack(&[("tsize", "big")]),
                "tsize \"big\" is not a number",
            ),
            (
                ReadConfig {
                    ask_tsize: false,
                    ..cfg()
                },
                oack(&[("tsize", "10")]),
                "option \"tsize\" was not requested",
            ),
        ];
        for (cfg, packet, reason) in cases {
            let mut d = Driver::new(cfg);
            d.start();
            let a = d.recv(TID, &packet);
            let error = TransferError::BadOack(reason.into());
            assert_eq!(
                a,
                vec![
                    send(
                        TID,
                        Packet::Error {
                            code: ErrorCode::OptionsRefused,
                            message: error.to_string()
                        }
                    ),
                    Action::Fail(error)
                ],
                "{reason}"
            );
        }
    }

    #[test]
    fn error_8_to_options_retries_without_them() {
        let mut d = Driver::new(cfg());
        d.start();
        let a = d.recv(
            TID,
            &Packet::Error {
                code: ErrorCode::OptionsRefused,
                message: "no options".into(),
            },
        );
        assert_eq!(
            a[0],
            send(
                SERVER,
                Packet::Rrq {
                    filename: "node.toml".into(),
                    mode: "octet".into(),
                    options: vec![]
                }
            )
        );
        // The plain answer may come from another port.
        let other = "192.0.2.1:40002";
        let a = d.recv(other, &data(1, 3));
        assert_eq!(
            a,
            vec![send(other, Packet::Ack { block: 1 }), Action::Complete]
        );
    }

    #[test]
    fn server_error_ends_the_transfer_with_its_message() {
        let mut d = Driver::new(cfg());
        d.start();
        let a = d.recv(
            TID,
            &Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "File not found".into(),
            },
        );
        let e = TransferError::Server {
            code: ErrorCode::FileNotFound,
            message: "File not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "server error 1 (file not found): \"File not found\""
        );
        assert_eq!(a, vec![Action::Fail(e)]);
    }

    #[test]
    fn replies_from_another_address_are_ignored_before_lock() {
        let mut d = Driver::new(cfg());
        d.start();
        assert_eq!(d.recv("198.51.100.9:40001", &data(1, 10)), vec![]);
        assert_eq!(d.t.server_tid(), None);
    }

    #[test]
    fn foreign_tid_gets_error_5_and_the_transfer_goes_on() {
        let mut d = Driver::new(plain_cfg());
        d.start();
        d.recv(TID, &data(1, 512));
        let stranger = "192.0.2.1:40999";
        let a = d.recv(stranger, &data(2, 512));
        assert_eq!(
            a,
            vec![send(
                stranger,
                Packet::Error {
                    code: ErrorCode::UnknownTid,
                    message: "unknown transfer ID".into()
                }
            )]
        );
        assert_eq!(d.recv(TID, &data(2, 512)), d.ack_and_timer(2));
        assert_eq!(d.t.received(), 1024);
    }

    #[test]
    fn timeouts_retransmit_the_last_packet_then_give_up() {
        let mut d = Driver::new(ReadConfig {
            retries: 2,
            ..plain_cfg()
        });
        d.start();
        d.recv(TID, &data(1, 512));
        for _ in 0..2 {
            let a = d.timeout();
            assert_eq!(a, d.ack_and_timer(1));
        }
        let a = d.timeout();
        assert_eq!(
            a,
            vec![Action::Fail(TransferError::Timeout {
                waiting_for: "DATA 2".into(),
                attempts: 3,
                timeout: Duration::from_secs(1)
            })]
        );
    }

    #[test]
    fn unanswered_request_is_retransmitted_then_fails() {
        let mut d = Driver::new(ReadConfig {
            retries: 1,
            ..cfg()
        });
        let first = d.start();
        let a = d.timeout();
        assert_eq!(a[0], first[0]);
        let a = d.timeout();
        assert!(
            matches!(
                &a[..],
                [Action::Fail(TransferError::Timeout { attempts: 2, .. })]
            ),
            "{a:?}"
        );
    }

    #[test]
    fn progress_resets_the_retry_budget() {
        let mut d = Driver::new(ReadConfig {
            retries: 1,
            ..plain_cfg()
        });
        d.start();
        for block in 1..=5u16 {
            d.timeout();
            assert_eq!(d.recv(TID, &data(block, 512)), d.ack_and_timer(block));
        }
    }

    #[test]
    fn duplicate_data_is_reacked_once_per_chain() {
        let mut d = Driver::new(plain_cfg());
        d.start();
        d.recv(TID, &data(1, 512));
        // First duplicate: our ACK may have been lost, re-ACK (without re-arming the timer).
        assert_eq!(
            d.recv(TID, &data(1, 512)),
            vec![send(TID, Packet::Ack { block: 1 })]
        );
        // Further duplicates of the same block: silence.
        assert_eq!(d.recv(TID, &data(1, 512)), vec![]);
        assert_eq!(d.recv(TID, &data(1, 512)), vec![]);
        // The data was appended once.
        assert_eq!(d.t.received(), 512);
        // The next block starts a new chain.
        d.recv(TID, &data(2, 512));
        assert_eq!(
            d.recv(TID, &data(2, 512)),
            vec![send(TID, Packet::Ack { block: 2 })]
        );
        assert_eq!(d.recv(TID, &data(2, 512)), vec![]);
        // Stale older blocks are ignored.
        assert_eq!(d.recv(TID, &data(1, 512)), vec![]);
    }

    #[test]
    fn duplicate_oack_is_reacked_once() {
        let mut d = Driver::new(cfg());
        d.start();
        let o = oack(&[("blksize", "1024")]);
        d.recv(TID, &o);
        assert_eq!(d.recv(TID, &o), vec![send(TID, Packet::Ack { block: 0 })]);
        assert_eq!(d.recv(TID, &o), vec![]);
    }

    #[test]
    fn oversized_block_and_unexpected_packets_abort() {
        let mut d = Driver::new(plain_cfg());
        d.start();
        let a = d.recv(TID, &data(1, 513));
        assert!(
            matches!(&a[..], [Action::Send { packet: Packet::Error { code: ErrorCode::IllegalOperation, .. }, .. }, Action::Fail(TransferError::Protocol(m))] if m.contains("513 bytes")),
            "{a:?}"
        );
        let mut d = Driver::new(plain_cfg());
        d.start();
        d.recv(TID, &data(1, 512));
        let a = d.recv(TID, &Packet::Ack { block: 1 });
        assert!(
            matches!(&a[..], [_, Action::Fail(TransferError::Protocol(m))] if m.contains("unexpected ACK 1")),
            "{a:?}"
        );
        let mut d = Driver::new(plain_cfg());
        d.start();
        d.recv(TID, &data(1, 512));
        d.now += Duration::from_millis(1);
        let a = d.t.step(
            d.now,
            Input::Received {
                from: addr(TID),
                bytes: &[0, 9],
            },
        );
        assert!(
            matches!(
                &a[..],
                [
                    _,
                    Action::Fail(TransferError::Malformed(PacketError::UnknownOpcode(9)))
                ]
            ),
            "{a:?}"
        );
    }

    #[test]
    fn size_mismatch_with_tsize_fails() {
        let mut d = Driver::new(cfg());
        d.start();
        d.recv(TID, &oack(&[("tsize", "600")]));
        let a = d.recv(TID, &data(1, 100));
        assert_eq!(
            a,
            vec![
                send(TID, Packet::Ack { block: 1 }),
                Action::Fail(TransferError::SizeMismatch {
                    announced: 600,
                    received: 100
                })
            ]
        );
    }

    /// Transfers `blocks` full blocks of `blksize` and a final short one, the server numbering
    /// blocks with `number(i)` for the i-th block (1-based).
    fn long_transfer(number: impl Fn(u64) -> u16) {
        let blksize = 8u16;
        let total_blocks: u64 = 70_000; // > 65535: the block number wraps
        let mut d = Driver::new(ReadConfig {
            blksize: Some(blksize),
            ask_tsize: false,
            ask_timeout: false,
            max_size: u64::MAX,
            ..cfg()
        });
        d.start();
        assert_eq!(d.recv(TID, &oack(&[("blksize", "8")])), d.ack_and_timer(0));
        let mut acked = Vec::new();
        for i in 1..=total_blocks {
            let block = number(i);
            let len = if i == total_blocks {
                3
            } else {
                blksize as usize
            };
            let p = Packet::Data {
                block,
                data: (i as u32).to_be_bytes().repeat(2)[..len].to_vec(),
            };
            let a = d.recv(TID, &p);
            match &a[0] {
                Action::Send {
                    packet: Packet::Ack { block: b },
                    ..
                } => acked.push(*b),
                other => panic!("block {i} ({block}): {other:?}"),
            }
            if i == 65_535 {
                // A duplicate right before the wrap is still recognised.
                assert_eq!(d.recv(TID, &p), vec![send(TID, Packet::Ack { block })]);
            }
        }
        assert_eq!(acked.len() as u64, total_blocks);
        assert_eq!(acked[65_534], 65_535);
        assert_eq!(acked[65_535], number(65_536));
        let got = d.t.take_data();
        assert_eq!(got.len() as u64, (total_blocks - 1) * 8 + 3);
        // Block 65,537's bytes are where they belong.
        let at = 65_536 * 8;
        assert_eq!(&got[at..at + 4], &65_537u32.to_be_bytes());
    }

    #[test]
    fn block_numbers_wrap_to_zero() {
        long_transfer(|i| (i % 65_536) as u16);
    }

    #[test]
    fn block_numbers_wrap_to_one() {
        // Servers that skip 0 on rollover: 65535 → 1.
        long_transfer(|i| {
            if i <= 65_535 {
                i as u16
            } else {
                ((i - 65_536) % 65_535 + 1) as u16
            }
        });
    }
}
