//! The check runtime: one tokio task per checked real, each sleeping until its own next run
//! (phase and jitter keep thousands of them out of lock-step), running its [`Probe`] and
//! feeding the result to its [`Hysteresis`]. State changes go to the engine's loop, which keeps
//! the [`HealthBoard`], logs every change once with its reason, and publishes a new
//! [`HealthReport`] on a `watch` channel (changes that arrive together are published once).
//!
//! This module owns the clock and the channels; the decisions are made by the pure parts.

use super::board::{Event, HealthBoard, HealthReport, RealKey};
use super::hysteresis::{Hysteresis, Jitter, Step, Timing};
use super::probe::Probe;
use crate::config::{Check, Config};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

/// Receives quorum changes per VRRP instance: (instance, lost).
pub type QuorumSink = Box<dyn Fn(&str, bool) + Send>;

/// What the engine is told to do.
pub enum Command {
    /// A new validated config (start or reload).
    Apply(Arc<Config>),
    /// Where to report quorum changes per VRRP instance (see
    /// [`HealthReport::instance_quorum_lost`]); the current losses are reported at once.
    ForwardQuorum(QuorumSink),
    /// Stop every check and return.
    Stop,
}

/// A state change reported by a check task.
#[derive(Debug)]
struct Report {
    key: RealKey,
    generation: u64,
    step: Step,
    at: SystemTime,
}

struct Task {
    check: Check,
    generation: u64,
    handle: JoinHandle<()>,
}

/// The check engine.
pub struct Engine {
    board: HealthBoard,
    tasks: HashMap<RealKey, Task>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    publish: watch::Sender<Arc<HealthReport>>,
    generation: u64,
    seeds: Jitter,
    quorum_sink: Option<QuorumSink>,
    /// What the sink was last told, per instance.
    quorum_sent: BTreeMap<String, bool>,
}

impl Engine {
    /// An engine with no checks, and the receiver of its reports.
    pub fn new() -> (Engine, watch::Receiver<Arc<HealthReport>>) {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (publish, health) = watch::channel(Arc::new(HealthReport::default()));
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        (
            Engine {
                board: HealthBoard::new(),
                tasks: HashMap::new(),
                reports_tx,
                reports_rx,
                publish,
                generation: 0,
                seeds: Jitter::new(seed),
                quorum_sink: None,
                quorum_sent: BTreeMap::new(),
            },
            health,
        )
    }

    /// Number of running check tasks.
    pub fn checks(&self) -> usize {
        self.tasks.len()
    }

    /// Takes a config: starts checks for new reals and for reals whose check changed (keeping
    /// their state), stops the checks of removed reals, leaves the others running on their
    /// schedule. Must be called inside a tokio runtime.
    pub fn configure(&mut self, config: &Config) {
        for event in self.board.configure(config, SystemTime::now()) {
            log(&event);
        }
        let mut wanted: HashMap<RealKey, (&crate::config::Real, &Check)> = HashMap::new();
        for (name, svc) in &config.services {
            for real in &svc.reals {
                if let Some(check) = &real.check {
                    wanted.insert((name.clone(), real.addr), (real, check));
                }
            }
        }
        let before = self.tasks.len();
        self.tasks.retain(|key, task| {
            let keep = wanted.get(key).is_some_and(|(_, c)| **c == task.check);
            if !keep {
                task.handle.abort();
            }
            keep
        });
        let (kept, mut started) = (self.tasks.len(), 0);
        let now = Instant::now();
        for (key, (real, check)) in wanted {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let probe = match Probe::new(&key.0, real, check) {
                Ok(p) => p,
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
            let hysteresis = Hysteresis::resume(Timing::from(check), state, weight);
            self.generation += 1;
            let mut rng = Jitter::new(self.seeds.next_u64() ^ hash(&key));
            let first = hysteresis.first_run(now, rng.fraction());
            let handle = tokio::spawn(check_loop(
                key.clone(),
                self.generation,
                probe,
                hysteresis,
                rng,
                first,
                self.reports_tx.clone(),
            ));
            self.tasks.insert(
                key,
                Task {
                    check: check.clone(),
                    generation: self.generation,
                    handle,
                },
            );
            started += 1;
        }
        info!(
            checks = self.tasks.len(),
            started,
            kept,
            stopped = before - kept,
            "checks configured: {} running ({started} started, {kept} kept, {} stopped)",
            self.tasks.len(),
            before - kept
        );
        self.publish();
    }

    fn publish(&mut self) {
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

    fn handle(&mut self, r: Report) -> bool {
        match self.tasks.get(&r.key) {
            Some(t) if t.generation == r.generation => {}
            _ => return false, // from a check that was replaced or stopped
        }
        let events = self.board.record(
            &r.key.0,
            r.key.1,
            r.step.transition,
            r.step.weight_change,
            r.at,
        );
        for event in &events {
            log(event);
        }
        !events.is_empty()
    }

    /// Runs until [`Command::Stop`] or until the command channel closes.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Apply(config)) => self.configure(&config),
                    Some(Command::ForwardQuorum(sink)) => {
                        self.quorum_sink = Some(sink);
                        self.quorum_sent.clear();
                        self.publish();
                    }
                    Some(Command::Stop) | None => break,
                },
                Some(report) = self.reports_rx.recv() => {
                    let mut changed = self.handle(report);
                    // Publish once for everything that is already waiting.
                    while let Ok(report) = self.reports_rx.try_recv() {
                        changed |= self.handle(report);
                    }
                    if changed {
                        self.publish();
                    }
                }
            }
        }
        for (_, task) in self.tasks.drain() {
            task.handle.abort();
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

async fn check_loop(
    key: RealKey,
    generation: u64,
    probe: Probe,
    mut hysteresis: Hysteresis,
    mut rng: Jitter,
    first: Instant,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut next = first;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let started = Instant::now();
        let outcome = probe.run().await;
        let finished = Instant::now();
        if let super::failure::Outcome::Down(f) = &outcome {
            debug!(service = %key.0, real = %key.1, "check failed: {f}");
        }
        let step = hysteresis.record(started, finished, outcome, rng.fraction());
        next = step.next_run;
        if step.transition.is_some() || step.weight_change.is_some() {
            let report = Report {
                key: key.clone(),
                generation,
                step,
                at: SystemTime::now(),
            };
            if reports.send(report).is_err() {
                return;
            }
        }
    }
}
