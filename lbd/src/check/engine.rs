//! The check runtime. One loop owns every check: a queue of next run times (each real's own,
//! phased and jittered by its [`Hysteresis`], so thousands of checks never fire in
//! lock-step), the runs in flight (a [`FuturesUnordered`] of [`Probe::run`]s), and the
//! [`HealthBoard`]. When a run ends, its outcome goes through the real's hysteresis; a state
//! change is logged once with its reason and a new [`HealthReport`] is published on a `watch`
//! channel. Changes that matter to traffic (a real stops or starts serving, a weight, a
//! quorum) are published at once, at most every [`PUBLISH_GAP`]; routine ones (a first check
//! confirming a real that already served) within [`ROUTINE_DELAY`], together.
//!
//! Idle checks cost a queue entry and a small slot, not a task with its own timer: ten
//! thousand reals checked every second keep only the few runs in flight as futures. TCP
//! connect and plain HTTP checks are not futures at all: the [`Connector`] runs them on reused
//! sockets in its own epoll instance, and the loop takes their completions in batches
//! (half-open TCP checks likewise, in [`HalfOpen`]).
//!
//! This module owns the clock and the channels; the decisions are made by the pure parts.

use super::board::{Event, HealthBoard, HealthReport, RealKey};
use super::connect::{Connector, Finished};
use super::failure::Outcome;
use super::half_open::{HalfOpen, NotStarted};
use super::hysteresis::{Hysteresis, Jitter, Timing};
use super::probe::Probe;
use super::schedule::Schedule;
use crate::config::{Check, CheckKind, Config};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Least time between two published reports while changes keep coming.
pub const PUBLISH_GAP: Duration = Duration::from_millis(10);
/// Longest time a routine change waits to be published.
pub const ROUTINE_DELAY: Duration = Duration::from_millis(200);

/// Runs due within one tick start together, at its end: one wake-up of the check thread for
/// all of them (at ten thousand checks a second, waking every millisecond costs more than some
/// of the checks' own work). A run starts at most a tick late, never early; connect and
/// half-open answers are read once a tick, and their deadlines are judged at ticks. The tick
/// is this long, or longer when checks are many and their intervals long (see [`tick_for`]).
pub const START_TICK: Duration = Duration::from_millis(10);
/// The longest tick.
pub const MAX_TICK: Duration = Duration::from_millis(50);
/// Checks started per tick (on average) beyond which the tick is not lengthened: each one's
/// answer comes back in the same burst, and receive rings hold a few hundred packets.
const TICK_BATCH: f64 = 100.0;

/// The tick for these checks: long enough that wake-ups are few (each costs the check thread
/// as much as several checks, and far more in a virtual machine), short enough that it is at
/// most a twentieth of any check's interval, timeout or retry delay and starts at most about
/// a hundred checks; between [`START_TICK`] and [`MAX_TICK`].
pub fn tick_for<'a>(checks: impl IntoIterator<Item = &'a Check>) -> Duration {
    let mut rate = 0.0; // checks a second
    let mut shortest = MAX_TICK * 20;
    for c in checks {
        rate += 1.0 / c.interval.as_secs_f64().max(1e-3);
        shortest = shortest.min(c.interval).min(c.timeout);
        if !c.retry_delay.is_zero() {
            shortest = shortest.min(c.retry_delay);
        }
    }
    let by_rate = if rate > 0.0 {
        Duration::from_secs_f64((TICK_BATCH / rate).min(MAX_TICK.as_secs_f64()))
    } else {
        MAX_TICK
    };
    by_rate.min(shortest / 20).clamp(START_TICK, MAX_TICK)
}

/// Receives quorum changes per VRRP instance: (instance, lost).
pub type QuorumSink = Box<dyn Fn(&str, bool) + Send>;

/// What the engine is told to do.
pub enum Command {
    /// A new validated config (start or reload).
    Apply(Arc<Config>),
    /// Where to report quorum changes per VRRP instance (see
    /// [`HealthReport::instance_quorum_lost`]); the current losses are reported at once.
    ForwardQuorum(QuorumSink),
    /// Beat into these heartbeats from the engine's thread while it runs.
    Beat(Arc<crate::liveness::Liveness>),
    /// Stop every check and return.
    Stop,
}

/// One checked real.
struct Slot {
    key: RealKey,
    /// Identifies this incarnation of the check; queue entries and runs of a replaced check
    /// carry an older one and are dropped.
    generation: u64,
    check: Arc<Check>,
    probe: Arc<Probe>,
    hysteresis: Hysteresis,
    rng: Jitter,
}

/// A finished run.
struct Done {
    slot: usize,
    generation: u64,
    /// When the run was due: the next run is timed from here, so starting a batch at the end
    /// of its tick does not stretch the interval.
    started: Instant,
    outcome: Outcome,
}

type Run = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A connect check's run, as the [`Connector`] carries it.
#[derive(Clone, Copy, Debug)]
struct RunId {
    slot: usize,
    generation: u64,
    due: Instant,
}

impl From<Finished<RunId>> for Done {
    fn from(f: Finished<RunId>) -> Done {
        Done {
            slot: f.token.slot,
            generation: f.token.generation,
            started: f.token.due,
            outcome: f.outcome,
        }
    }
}

/// The check engine.
pub struct Engine {
    board: HealthBoard,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    index: HashMap<RealKey, usize>,
    /// (slot, generation, when due) by when each runs next.
    queue: Schedule<(usize, u64, Instant)>,
    /// Scratch list for the runs due now.
    due: Vec<(usize, u64, Instant)>,
    inflight: FuturesUnordered<Run>,
    /// TCP connect and plain HTTP checks in flight (created when the loop starts, inside the
    /// runtime; if that fails they run as futures like the other kinds).
    connector: Option<Connector<RunId>>,
    /// Half-open TCP checks in flight (raw sockets opened with the first one).
    half_open: HalfOpen<RunId>,
    /// Half-open checks cannot run here (no raw socket): they run as connect checks.
    half_open_unavailable: bool,
    /// Connector and half-open runs finished, waiting to be recorded.
    connected: Vec<Finished<RunId>>,
    publish: watch::Sender<Arc<HealthReport>>,
    generation: u64,
    seeds: Jitter,
    quorum_sink: Option<QuorumSink>,
    /// What the sink was last told, per instance.
    quorum_sent: BTreeMap<String, bool>,
    last_publish: Instant,
    /// When the changes not yet published are due.
    publish_due: Option<Instant>,
}

/// How much a finished run changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    None,
    Routine,
    Traffic,
}

impl Engine {
    /// An engine with no checks, and the receiver of its reports.
    pub fn new() -> (Engine, watch::Receiver<Arc<HealthReport>>) {
        let (publish, health) = watch::channel(Arc::new(HealthReport::default()));
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        (
            Engine {
                board: HealthBoard::new(),
                slots: Vec::new(),
                free: Vec::new(),
                index: HashMap::new(),
                queue: Schedule::new(Instant::now(), START_TICK),
                due: Vec::new(),
                inflight: FuturesUnordered::new(),
                connector: None,
                half_open: HalfOpen::new(),
                half_open_unavailable: false,
                connected: Vec::new(),
                publish,
                generation: 0,
                seeds: Jitter::new(seed),
                quorum_sink: None,
                quorum_sent: BTreeMap::new(),
                last_publish: Instant::now(),
                publish_due: None,
            },
            health,
        )
    }

    /// Number of checked reals.
    pub fn checks(&self) -> usize {
        self.index.len()
    }

    /// Takes a config: starts checks for new reals and for reals whose check changed (keeping
    /// their state), stops the checks of removed reals, and leaves the others on their
    /// schedule.
    pub fn configure(&mut self, config: &Config) {
        for event in self.board.configure(config, SystemTime::now()) {
            log(&event);
        }
        // The config shares one copy of a check among the reals that resolve to it alike.
        let mut wanted: HashMap<RealKey, (&crate::config::Real, Arc<Check>)> = HashMap::new();
        for (name, svc) in config.services.iter() {
            for real in &svc.reals {
                let Some(check) = &real.check else { continue };
                wanted.insert((name.clone(), real.addr), (real, check.clone()));
            }
        }
        let before = self.index.len();
        let stale: Vec<RealKey> = self
            .index
            .iter()
            .filter(|(key, slot)| {
                let current = self.slots[**slot].as_ref().map(|s| &s.check);
                match (wanted.get(*key), current) {
                    (Some((_, want)), Some(have)) => **want != **have,
                    _ => true,
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            if let Some(slot) = self.index.remove(key) {
                self.slots[slot] = None;
                self.free.push(slot);
            }
        }
        let kept = self.index.len();
        let mut started = 0;
        let now = Instant::now();
        for (key, (real, check)) in wanted {
            if self.index.contains_key(&key) {
                // Unchanged: keep the running schedule, but share the new copy of the check.
                let slot = self.index[&key];
                if let Some(s) = self.slots[slot].as_mut() {
                    s.check = check;
                }
                continue;
            }
            let probe = match Probe::new(&key.0, real, &check) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    error!("checks: cannot check {}: {e}", key.1);
                    continue;
                }
            };
            let (state, weight) = self
                .board
                .real(&key.0, &key.1)
                .map(|r| (r.state, r.weight))
                .unwrap_or_default();
            let hysteresis = Hysteresis::resume(Timing::from(&*check), state, weight);
            self.generation += 1;
            let mut rng = Jitter::new(self.seeds.next_u64() ^ hash(&key));
            let first = hysteresis.first_run(now, rng.fraction());
            let slot = Slot {
                key: key.clone(),
                generation: self.generation,
                check,
                probe,
                hysteresis,
                rng,
            };
            let id = match self.free.pop() {
                Some(id) => {
                    self.slots[id] = Some(slot);
                    id
                }
                None => {
                    self.slots.push(Some(slot));
                    self.slots.len() - 1
                }
            };
            self.index.insert(key, id);
            self.queue.push(first, (id, self.generation, first));
            started += 1;
        }
        // Drop queue entries of stopped checks now rather than when they come due.
        if !stale.is_empty() {
            let slots = &self.slots;
            self.queue
                .retain(|(id, gen, _)| slots[*id].as_ref().is_some_and(|s| s.generation == *gen));
        }
        let stopped = before - kept;
        let tick = tick_for(self.slots.iter().flatten().map(|s| &*s.check));
        if tick != self.queue.tick() {
            debug!("checks: tick {tick:?}");
            self.queue.set_tick(tick);
        }
        self.half_open.forget_routes();
        if stopped > 0 {
            let all_connect = self.half_open_unavailable;
            let connects = self
                .slots
                .iter()
                .flatten()
                .filter(|s| match s.check.kind {
                    CheckKind::Tcp { half_open } => !half_open || all_connect,
                    _ => s.probe.plain_http().is_some(),
                })
                .count();
            // Ports held for half-open checks from sources no check uses any more go.
            let sources: HashSet<(bool, Option<std::net::IpAddr>)> = self
                .slots
                .iter()
                .flatten()
                .filter(|s| matches!(s.check.kind, CheckKind::Tcp { half_open: true }))
                .map(|s| (s.probe.target.is_ipv6(), s.probe.source))
                .collect();
            self.half_open
                .retain_sources(|v6, source| sources.contains(&(v6, source)));
            if let Some(c) = self.connector.as_mut() {
                c.trim_idle(connects);
                // Kept HTTP connections are the checks' own: close those of stopped checks.
                let live: HashSet<u64> =
                    self.slots.iter().flatten().map(|s| s.generation).collect();
                c.retain_kept(live);
            }
        }
        info!(
            checks = self.index.len(),
            started,
            kept,
            stopped,
            "checks configured: {} running ({started} started, {kept} kept, {stopped} stopped)",
            self.index.len(),
        );
        self.publish();
    }

    /// Schedules publishing for a change of this kind.
    fn changed(&mut self, change: Change, now: Instant) {
        let due = match change {
            Change::None => return,
            Change::Routine => now + ROUTINE_DELAY,
            Change::Traffic => (self.last_publish + PUBLISH_GAP).max(now),
        };
        self.publish_due = Some(self.publish_due.map_or(due, |d| d.min(due)));
    }

    fn publish(&mut self) {
        self.publish_due = None;
        self.last_publish = Instant::now();
        let report = Arc::new(self.board.report());
        if let Some(sink) = &self.quorum_sink {
            let now = report.instance_quorum_lost();
            for (instance, lost) in &now {
                let before = self.quorum_sent.get(instance).copied().unwrap_or(false);
                if *lost != before {
                    sink(instance, *lost);
                }
            }
            for (instance, lost) in &self.quorum_sent {
                if *lost && !now.contains_key(instance) {
                    sink(instance, false);
                }
            }
            self.quorum_sent = now;
        }
        self.publish.send_replace(report);
    }

    /// Starts the runs that are due and ends the connect checks that timed out; how much the
    /// runs that ended changed.
    fn start_due(&mut self, now: Instant) -> Change {
        let mut due = std::mem::take(&mut self.due);
        self.queue.pop_due(now, &mut due);
        for (id, gen, when) in due.drain(..) {
            let Some(slot) = self.slots.get(id).and_then(|s| s.as_ref()) else {
                continue;
            };
            if slot.generation != gen {
                continue;
            }
            let p = &slot.probe;
            let mut run = RunId {
                slot: id,
                generation: gen,
                due: when,
            };
            // TCP and plain HTTP checks run in the connector (TCP maybe half-open), the other
            // kinds as futures. `in_connector`: `Some(exchange)`, with `None` for TCP.
            let in_connector = match slot.check.kind {
                CheckKind::Tcp { half_open } => {
                    if half_open && !self.half_open_unavailable {
                        match self
                            .half_open
                            .start(p.target, p.source, p.timeout, run, now)
                        {
                            Ok(()) => continue,
                            Err(NotStarted::Finished(done)) => {
                                self.connected.push(done);
                                continue;
                            }
                            Err(NotStarted::Unavailable(token, e)) => {
                                warn!("checks: half-open TCP checks need a raw socket ({e}): they run as connect checks");
                                self.half_open_unavailable = true;
                                run = token;
                            }
                        }
                    }
                    Some(None)
                }
                _ => p.plain_http().map(|x| Some(x.clone())),
            };
            if let (Some(exchange), Some(connector)) = (in_connector, self.connector.as_mut()) {
                if let Err(done) =
                    connector.start(p.target, p.source, p.timeout, run, now, exchange, Some(gen))
                {
                    self.connected.push(done);
                }
                continue;
            }
            let probe = slot.probe.clone();
            self.inflight.push(Box::pin(async move {
                let outcome = probe.run().await;
                Done {
                    slot: id,
                    generation: gen,
                    started: when,
                    outcome,
                }
            }));
        }
        self.due = due; // keeps its capacity
        if self.half_open.in_flight() > 0 {
            self.half_open.flush(&mut self.connected);
            self.half_open.poll(&mut self.connected);
            self.half_open.expire(now, &mut self.connected);
        }
        if let Some(c) = self.connector.as_mut().filter(|c| c.in_flight() > 0) {
            if let Err(e) = c.poll(&mut self.connected) {
                error!("checks: reading TCP connect completions: {e}");
            }
            c.expire(now, &mut self.connected);
        }
        self.finish_connected()
    }

    /// Records the connector and half-open runs that finished.
    fn finish_connected(&mut self) -> Change {
        let mut change = Change::None;
        let mut done = std::mem::take(&mut self.connected);
        for f in done.drain(..) {
            change = change.max(self.finish(f.into()));
        }
        self.connected = done; // keeps its capacity
        change
    }

    /// Records a finished run; how much it changed.
    fn finish(&mut self, done: Done) -> Change {
        let finished = Instant::now();
        let Some(slot) = self.slots.get_mut(done.slot).and_then(|s| s.as_mut()) else {
            return Change::None;
        };
        if slot.generation != done.generation {
            return Change::None; // a run of a check that was replaced or stopped
        }
        if let Outcome::Down(f) = &done.outcome {
            debug!(service = %slot.key.0, real = %slot.key.1, "check failed: {f}");
        }
        let jitter = slot.rng.fraction();
        let step = slot
            .hysteresis
            .record(done.started, finished, done.outcome, jitter);
        self.queue
            .push(step.next_run, (done.slot, done.generation, step.next_run));
        if step.transition.is_none() && step.weight_change.is_none() {
            return Change::None;
        }
        let (service, addr) = (slot.key.0.clone(), slot.key.1);
        let events = self.board.record(
            &service,
            addr,
            step.transition,
            step.weight_change,
            SystemTime::now(),
        );
        for event in &events {
            log(event);
        }
        events
            .iter()
            .map(|e| {
                if e.is_routine() {
                    Change::Routine
                } else {
                    Change::Traffic
                }
            })
            .max()
            .unwrap_or(Change::None)
    }

    /// Runs until [`Command::Stop`] or until the command channel closes.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        match Connector::new() {
            Ok(c) => self.connector = Some(c),
            Err(e) => warn!("checks: TCP connect checks run one socket per check: {e}"),
        }
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        // Never polled, always a tick after `timer`: see the reset below.
        let spare = tokio::time::sleep_until(tokio::time::Instant::now() + START_TICK);
        tokio::pin!(spare);
        let publish_timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(publish_timer);
        loop {
            let due = self.queue.next();
            // Timeouts are batched like starts.
            // Connect completions and half-open answers are read at every tick while any are
            // awaited.
            let awaited =
                self.half_open.in_flight() + self.connector.as_ref().map_or(0, |c| c.in_flight());
            let answers = (awaited > 0).then(|| Instant::now() + Duration::from_nanos(1));
            let expiry = [
                self.connector.as_mut().and_then(|c| c.next_deadline()),
                self.half_open.next_deadline(),
                answers,
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|d| self.queue.round_up(d));
            let next = match (due, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(when) = next {
                if timer.deadline() != when.into() {
                    timer.as_mut().reset(when.into());
                }
                // Setting a timer earlier than every other one the runtime holds makes it
                // wake its own driver (an eventfd write, and one more epoll_wait) so it can
                // recompute how long to sleep, and right after `timer` fires there is no other
                // one. The spare, a tick later, is always there: `timer` is then set no
                // earlier than the earliest, and a busy tick costs one epoll_wait.
                let after = when + self.queue.tick();
                if spare.deadline() != after.into() {
                    spare.as_mut().reset(after.into());
                }
            }
            if let Some(when) = self.publish_due {
                if publish_timer.deadline() != when.into() {
                    publish_timer.as_mut().reset(when.into());
                }
            }
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Apply(config)) => self.configure(&config),
                    Some(Command::ForwardQuorum(sink)) => {
                        self.quorum_sink = Some(sink);
                        self.quorum_sent.clear();
                        self.publish();
                    }
                    Some(Command::Beat(liveness)) => {
                        // A task of this thread's runtime: it beats only while the thread runs.
                        tokio::spawn(async move {
                            let mut beat = tokio::time::interval(crate::liveness::BEAT_INTERVAL);
                            loop {
                                beat.tick().await;
                                liveness.beat(crate::liveness::Loop::Checks);
                            }
                        });
                    }
                    Some(Command::Stop) | None => break,
                },
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => {
                    let mut change = self.finish(done);
                    // Take every run that has already finished.
                    while let Some(Some(done)) = futures::FutureExt::now_or_never(self.inflight.next()) {
                        change = change.max(self.finish(done));
                    }
                    self.changed(change, Instant::now());
                }
                () = &mut timer, if next.is_some() => {
                    let now = Instant::now();
                    let change = self.start_due(now);
                    self.changed(change, now);
                }
                () = &mut publish_timer, if self.publish_due.is_some() => {
                    self.publish();
                }
            }
        }
        info!("checks stopped");
    }
}

fn hash(key: &RealKey) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

fn log(event: &Event) {
    match event {
        Event::Real { service, addr, .. } | Event::Weight { service, addr, .. } => {
            let real = addr.to_string();
            if event.is_routine() {
                debug!(service, real, "{event}");
            } else if event.is_warning() {
                warn!(service, real, "{event}");
            } else {
                info!(service, real, "{event}");
            }
        }
        Event::Quorum { service, .. } | Event::AllDown { service, .. } => {
            if event.is_warning() {
                warn!(service, "{event}");
            } else {
                info!(service, "{event}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(interval_ms: u64, timeout_ms: u64) -> Check {
        Check {
            kind: CheckKind::Tcp { half_open: true },
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            rise: 1,
            fall: 2,
            retry_delay: Duration::from_millis(interval_ms),
            warmup: Duration::ZERO,
            jitter: Duration::ZERO,
            port: None,
            connect_address: None,
            source_address: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_tick_lengthens_with_long_intervals_and_shortens_with_many_checks() {
        let each_second = |n: usize| vec![check(1000, 1000); n];
        assert_eq!(tick_for(&[]), MAX_TICK);
        // A thousand checks a second: 50 per 50 ms tick.
        assert_eq!(tick_for(&each_second(1000)), ms(50));
        // Four thousand: 100 per 25 ms tick.
        assert_eq!(tick_for(&each_second(4000)), ms(25));
        // Ten thousand and more: the shortest tick.
        assert_eq!(tick_for(&each_second(10_000)), START_TICK);
        assert_eq!(tick_for(&each_second(50_000)), START_TICK);
        // A twentieth of the shortest interval or timeout.
        let mut some = each_second(10);
        some.push(check(400, 300));
        assert_eq!(tick_for(&some), ms(15));
        let mut retrying = check(1000, 1000);
        retrying.retry_delay = ms(500);
        some.push(retrying);
        assert_eq!(tick_for(&some), ms(15));
        some[0].retry_delay = ms(200);
        assert_eq!(tick_for(&some), START_TICK);
        some[0].retry_delay = Duration::ZERO; // retries at once: no bound
        assert_eq!(tick_for(&some), ms(15));
        some.push(check(100, 80));
        assert_eq!(tick_for(&some), START_TICK);
    }
}
