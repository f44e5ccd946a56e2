//! Remote logs and the ring of recent events, shared by init and lbd.
//!
//! Nothing on the box survives a reboot, so every log event goes three ways:
//!
//! ```text
//! tracing event ──▶ console (logging.rs)
//!               ──▶ EventRing (the last 1000 events, for GET /events)
//!               ──▶ sender thread ──RFC 5424──▶ collector (UDP datagrams, or TCP octet-counted)
//! ```
//!
//! [`layer`] is installed by `logging::init` for both programs, which then takes the target
//! from the kernel command line (`lb.syslog=udp://IP:514`, env `LB_SYSLOG` overrides); lbd
//! changes it with its config's `[node.syslog]` ([`set_target`]). Logging never blocks: events
//! go through a bounded queue to one thread, which keeps a bounded backlog while the collector
//! is unreachable (before the network is up, a TCP collector restarting) and retries every
//! second; what overflows is counted in [`status`]. Events logged before any target is known
//! are kept (up to [`EARLY_BACKLOG`]) and sent once one is.

pub mod rfc5424;
pub mod ring;
#[cfg(feature = "daemon")]
pub mod subsystem;
pub mod target;

pub use ring::{Event, EventRing};
pub use target::{Target, Transport};

use serde::Serialize;
use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// Events kept in memory for the API.
pub const RING_CAPACITY: usize = 1000;
/// Events queued between the logging call and the sender thread.
const QUEUE: usize = 1024;
/// Formatted messages kept while the collector cannot be reached.
const BACKLOG: usize = 2048;
/// Events kept before any target is known.
pub const EARLY_BACKLOG: usize = 256;
const RETRY: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(2);

enum Msg {
    Event(std::sync::Arc<Event>),
    Target(Option<Target>),
    Flush(SyncSender<()>),
}

struct State {
    ring: EventRing,
    app: OnceLock<&'static str>,
    tx: SyncSender<Msg>,
    rx: Mutex<Option<Receiver<Msg>>>,
    started: std::sync::Once,
    target: Mutex<Option<Target>>,
    sent: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        State {
            ring: EventRing::new(RING_CAPACITY),
            app: OnceLock::new(),
            tx,
            rx: Mutex::new(Some(rx)),
            started: std::sync::Once::new(),
            target: Mutex::new(None),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Queues a message for the sender thread, starting it on first use; never blocks.
fn send(msg: Msg) -> bool {
    let s = state();
    s.started.call_once(|| {
        if let Some(rx) = lock(&s.rx).take() {
            let spawned = std::thread::Builder::new()
                .name("syslog".into())
                .spawn(move || Sender::new(rx).run());
            if let Err(e) = spawned {
                *lock(&s.last_error) = Some(format!("cannot start the syslog thread: {e}"));
            }
        }
    });
    match s.tx.try_send(msg) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The ring of recent events.
pub fn ring() -> &'static EventRing {
    &state().ring
}

/// Sends logs to `target` from now on (None: stop sending, drop what waits).
pub fn set_target(target: Option<Target>) {
    *lock(&state().target) = target;
    send(Msg::Target(target));
}

/// The current target.
pub fn target() -> Option<Target> {
    *lock(&state().target)
}

/// Waits until everything logged so far is sent (or `timeout` passes); false on timeout.
/// Call it before exiting, so the last lines reach the collector.
pub fn flush(timeout: Duration) -> bool {
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    if !send(Msg::Flush(ack_tx)) {
        return false;
    }
    ack_rx.recv_timeout(timeout).is_ok()
}

/// Counters of the remote log, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SyslogStatus {
    /// `udp://...` / `tcp://...`, or None.
    pub target: Option<String>,
    /// Messages handed to the socket.
    pub sent: u64,
    /// Messages lost: queue or backlog full.
    pub dropped: u64,
    /// Failed send attempts (each is retried).
    pub failures: u64,
    pub last_error: Option<String>,
}

pub fn status() -> SyslogStatus {
    let s = state();
    SyslogStatus {
        target: target().map(|t| t.to_string()),
        sent: s.sent.load(Ordering::Relaxed),
        dropped: s.dropped.load(Ordering::Relaxed),
        failures: s.failures.load(Ordering::Relaxed),
        last_error: lock(&s.last_error).clone(),
    }
}

/// The target from the environment (`LB_SYSLOG`) or the kernel command line (`lb.syslog=`),
/// if any; a malformed value is an error text.
pub fn boot_target() -> Option<Result<Target, String>> {
    if let Ok(v) = std::env::var("LB_SYSLOG") {
        if !v.is_empty() {
            return Some(v.parse());
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    target::from_cmdline(&cmdline)
}

/// The tracing layer that feeds the ring and the sender; `app` is the APP-NAME (`init`, `lbd`).
pub fn layer(app: &'static str) -> EventLayer {
    let _ = state().app.set(app);
    EventLayer { _priv: () }
}

/// See [`layer`].
pub struct EventLayer {
    _priv: (),
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for EventLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        let e = state().ring.push(Event {
            seq: 0,
            time: SystemTime::now(),
            uptime: uptime(),
            level: meta.level().as_str(),
            target: meta.target().to_string(),
            message: f.message,
            fields: f.fields,
        });
        send(Msg::Event(e));
    }
}

fn uptime() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A connection to the collector.
enum Conn {
    None,
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// The sender thread: owns the socket and the backlog.
struct Sender {
    rx: Receiver<Msg>,
    /// None: no target decided yet (keep early events); Some(None): decided, none.
    target: Option<Option<Target>>,
    conn: Conn,
    backlog: VecDeque<String>,
    early: VecDeque<std::sync::Arc<Event>>,
    waiters: Vec<SyncSender<()>>,
    next_try: Instant,
}

impl Sender {
    fn new(rx: Receiver<Msg>) -> Sender {
        Sender {
            rx,
            target: None,
            conn: Conn::None,
            backlog: VecDeque::new(),
            early: VecDeque::new(),
            waiters: Vec::new(),
            next_try: Instant::now(),
        }
    }

    fn run(mut self) {
        loop {
            let wait = if self.backlog.is_empty() {
                Duration::from_secs(3600)
            } else {
                self.next_try.saturating_duration_since(Instant::now())
            };
            match self.rx.recv_timeout(wait) {
                Ok(m) => {
                    self.take(m);
                    // Take whatever else is queued before touching the socket.
                    while let Ok(m) = self.rx.try_recv() {
                        self.take(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if !self.backlog.is_empty() && Instant::now() >= self.next_try {
                self.drain();
            }
            if self.backlog.is_empty() {
                for w in self.waiters.drain(..) {
                    let _ = w.try_send(());
                }
            }
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Event(e) => match self.target {
                None => {
                    if self.early.len() == EARLY_BACKLOG {
                        self.early.pop_front();
                        state().dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    self.early.push_back(e);
                }
                Some(Some(_)) => self.queue(&e),
                Some(None) => {}
            },
            Msg::Target(t) => {
                let changed = self.target != Some(t);
                if changed && matches!(self.target, Some(Some(_))) {
                    // What was logged before the switch goes to the old collector if it can
                    // (one attempt); what it cannot take moves on to the new one.
                    self.drain();
                }
                self.target = Some(t);
                if changed {
                    self.conn = Conn::None;
                    self.next_try = Instant::now();
                }
                match t {
                    Some(_) => {
                        for e in std::mem::take(&mut self.early) {
                            self.queue(&e);
                        }
                    }
                    None => {
                        self.backlog.clear();
                        self.early.clear();
                    }
                }
            }
            Msg::Flush(ack) => {
                if !matches!(self.target, Some(Some(_))) || self.backlog.is_empty() {
                    let _ = ack.try_send(());
                } else {
                    self.next_try = Instant::now();
                    self.waiters.push(ack);
                }
            }
        }
    }

    fn queue(&mut self, e: &Event) {
        let app = state().app.get().copied().unwrap_or("lbd");
        let host = hostname();
        let text = rfc5424::format(&rfc5424::Parts {
            time: e.time,
            hostname: &host,
            app,
            pid: std::process::id(),
            level: e.level,
            uptime: e.uptime,
            target: &e.target,
            fields: &e.fields,
            message: &e.message,
        });
        if self.backlog.len() == BACKLOG {
            self.backlog.pop_front();
            state().dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.backlog.push_back(text);
    }

    /// Sends the backlog in order; on the first failure keeps the rest and retries later.
    fn drain(&mut self) {
        let Some(Some(target)) = self.target else {
            self.backlog.clear();
            return;
        };
        while let Some(msg) = self.backlog.pop_front() {
            match self.send_one(target, &msg) {
                Ok(()) => {
                    state().sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.backlog.push_front(msg);
                    self.conn = Conn::None;
                    state().failures.fetch_add(1, Ordering::Relaxed);
                    *lock(&state().last_error) = Some(format!("{target}: {e}"));
                    self.next_try = Instant::now() + RETRY;
                    return;
                }
            }
        }
    }

    fn send_one(&mut self, target: Target, msg: &str) -> std::io::Result<()> {
        match target.transport {
            Transport::Udp => {
                if !matches!(self.conn, Conn::Udp(_)) {
                    let bind: SocketAddr = if target.addr.is_ipv6() {
                        "[::]:0".parse().expect("literal")
                    } else {
                        "0.0.0.0:0".parse().expect("literal")
                    };
                    self.conn = Conn::Udp(UdpSocket::bind(bind)?);
                }
                let Conn::Udp(sock) = &self.conn else {
                    unreachable!("set above")
                };
                sock.send_to(
                    rfc5424::truncate(msg, rfc5424::MAX_UDP_LEN).as_bytes(),
                    target.addr,
                )?;
            }
            Transport::Tcp => {
                if !matches!(self.conn, Conn::Tcp(_)) {
                    let s = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT)?;
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    s.set_nodelay(true)?;
                    self.conn = Conn::Tcp(s);
                }
                let Conn::Tcp(stream) = &mut self.conn else {
                    unreachable!("set above")
                };
                // RFC 6587 octet counting: the length in bytes, a space, the message.
                let framed = format!("{} {msg}", msg.len());
                stream.write_all(framed.as_bytes())?;
            }
        }
        Ok(())
    }
}
