//! lbd's owner. The daemon holds the running config and every subsystem, and is the only one
//! that changes them: it loads and applies configs, feeds the IPVS reconciler from the health
//! checks, the VRRP roles and the operator's drains, answers the control API's requests, and
//! stops everything in order.
//!
//! ```text
//!  SIGHUP ─┐                          ┌─▶ log level, remote syslog
//!  API ────┴─ Request::Reload ─▶ Daemon ─┼─▶ IpvsSubsystem (lent to a blocking worker per apply)
//!  API ─── Request::KernelTable ─▶       ├─▶ CheckSubsystem (thread: the engine's epoll loop)
//!  API ─── Request::OperatorWeights ─▶   └─▶ VrrpSubsystem  (thread: real-time, VIPs, adverts)
//!  checks ─ watch<HealthReport> ─▶ Daemon ─▶ reconcile
//!  VRRP ─── watch<Status> ─────────▶ Daemon ─▶ connection-sync role ─▶ reconcile
//!  after each reconcile (health, drains, IPVS's outcome) ─▶ bgp::decision ─▶ BgpSubsystem (BIRD)
//!  API ─── Request::NodeDrain ─▶ Daemon ─▶ bgp::decision (withdraw every VIP)
//!  1 s tick, while reals drain ─────▶ Daemon ─▶ IpvsSubsystem::check_drains
//!  Daemon ─ watch<Published> ─▶ API (config, load time, the last reload's outcome)
//! ```
//!
//! One tokio runtime runs the daemon and the API; the check engine and VRRP have their own
//! threads (an epoll loop, a real-time priority), started and stopped by the daemon. Nothing is
//! shared behind a lock: the IPVS subsystem is moved into a blocking worker for each kernel
//! operation and moved back, so a large apply never stalls the API.
//!
//! Reload is validate-then-swap, whoever asks (SIGHUP — which is how init hands over a config it
//! fetched — or the API): one path, [`Daemon::reload`], whose [`ReloadOutcome`] is answered to
//! the asker and published. A refused config is logged with every error and the running one
//! stays.

pub mod inputs;
mod reload;

use crate::api::snapshot::KernelView;
use crate::api::{Api, ApiOptions};
use crate::bgp::decision::{decide, nway_vips, Inputs as BgpInputs};
use crate::bgp::subsystem::{BgpStatus, BgpSubsystem, Wanted as BgpWanted};
use crate::check::board::HealthReport;
use crate::check::subsystem::CheckSubsystem;
use crate::config::{self, Config, Loaded};
use crate::ipvs::client::IpvsError;
use crate::ipvs::subsystem::{ApplyReport, DrainingReal, IpvsSubsystem};
use crate::liveness::{Liveness, Loop, BEAT_INTERVAL};
use crate::syslog::subsystem::SyslogSubsystem;
use crate::vrrp::runtime::{Status as VrrpStatus, VrrpSubsystem};
use inputs::{IpvsInputs, OperatorWeights};
pub use reload::{ReloadOutcome, ReloadResult, ReloadSource};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

/// A part of lbd that runs on its own thread and follows the config (checks, VRRP), or a
/// setting applied in place (log level, remote syslog). Called with each new valid config, in
/// order, after the previous one was applied.
pub trait Subsystem: Send {
    fn name(&self) -> &'static str;
    /// Applies `new`; `old` is the config applied before (None at start).
    fn apply(&mut self, old: Option<&Config>, new: &Config);
    /// Orderly stop (e.g. VRRP sends its priority-0 advert).
    fn stop(&mut self) {}
}

/// What the daemon publishes for the API after every change.
#[derive(Clone, Debug)]
pub struct Published {
    pub config: Arc<Config>,
    pub config_path: PathBuf,
    pub loaded_at: SystemTime,
    /// Configs applied so far (1 after the start).
    pub applied: u64,
    pub started_at: SystemTime,
    pub last_reload: Option<ReloadOutcome>,
    /// Reals removed from the config that IPVS keeps at weight 0 until their connections end.
    pub draining: Arc<Vec<DrainingReal>>,
}

/// How often the daemon looks at draining reals: a drained real leaves within about this long
/// after its last connection.
pub const DRAIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What others ask of the daemon.
pub enum Request {
    Reload {
        source: ReloadSource,
        reply: Option<oneshot::Sender<ReloadOutcome>>,
    },
    /// The kernel's IPVS table with counters, as the IPVS subsystem reads it.
    KernelTable {
        reply: oneshot::Sender<Arc<KernelView>>,
    },
    /// The operator's drains, as weight overrides; each change reconciles.
    OperatorWeights(OperatorWeights),
    /// The operator's drain of the whole node (`lbctl drain --node`): withdraw every BGP
    /// announcement, keep IPVS as it is.
    NodeDrain(bool),
}

/// How the API (and tests) talk to the daemon.
#[derive(Clone)]
pub struct Handle {
    requests: mpsc::UnboundedSender<Request>,
    published: watch::Receiver<Option<Arc<Published>>>,
    health: watch::Receiver<Arc<HealthReport>>,
    vrrp: watch::Receiver<VrrpStatus>,
    bgp: watch::Receiver<BgpStatus>,
}

impl Handle {
    /// Reloads the config file and waits for the outcome (`None` if the daemon is gone).
    pub async fn reload(&self, source: ReloadSource) -> Option<ReloadOutcome> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Reload {
                source,
                reply: Some(reply),
            })
            .ok()?;
        rx.await.ok()
    }

    /// The kernel's table as the IPVS subsystem last read it (at most [`KERNEL_VIEW_MAX_AGE`]
    /// old).
    pub async fn kernel_table(&self) -> Arc<KernelView> {
        let (reply, rx) = oneshot::channel();
        if self.requests.send(Request::KernelTable { reply }).is_err() {
            return Arc::new(KernelView::Unavailable("lbd is stopping".into()));
        }
        rx.await
            .unwrap_or_else(|_| Arc::new(KernelView::Unavailable("lbd is stopping".into())))
    }

    /// Hands the operator's drains to the reconciler.
    pub fn set_operator_weights(&self, weights: OperatorWeights) {
        let _ = self.requests.send(Request::OperatorWeights(weights));
    }

    /// The running config and its history; `None` until the first one is applied.
    pub fn published(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.published.clone()
    }

    pub fn health(&self) -> &watch::Receiver<Arc<HealthReport>> {
        &self.health
    }

    pub fn vrrp(&self) -> &watch::Receiver<VrrpStatus> {
        &self.vrrp
    }

    /// The BGP speaker: sessions, and each N-way VIP announced or not and why.
    pub fn bgp(&self) -> &watch::Receiver<BgpStatus> {
        &self.bgp
    }

    /// Drains (or undrains) the whole node: every BGP announcement withdrawn.
    pub fn set_node_drained(&self, drained: bool) {
        let _ = self.requests.send(Request::NodeDrain(drained));
    }
}

/// A kernel-table view younger than this is answered again instead of read again (a status
/// request and a metrics scrape at once read the table once).
pub const KERNEL_VIEW_MAX_AGE: Duration = Duration::from_millis(500);

/// The order in which the daemon stops its parts, and why (see [`Daemon::stop`]).
pub const STOP_ORDER: [(&str, &str); 6] = [
    (
        "vrrp",
        "priority-0 adverts, then the VIPs go: the peer takes over at once",
    ),
    (
        "bgp",
        "every VIP withdrawn, a moment for the routers to move the flows, then BIRD stops",
    ),
    ("api", "no more requests to a daemon that is going away"),
    ("checks", "no more health changes"),
    (
        "ipvs",
        "the table stays as it is: connections keep flowing through a restart",
    ),
    ("syslog", "last, so everything above reaches the collector"),
];

/// Why the daemon could not start.
#[derive(Debug)]
pub enum StartError {
    Config(config::ConfigError),
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The parts the daemon owns.
pub struct Parts {
    pub ipvs: IpvsSubsystem,
    pub checks: CheckSubsystem,
    pub vrrp: VrrpSubsystem,
    pub syslog: SyslogSubsystem,
    /// The BGP speaker of N-way VIPs (BIRD runs only while a service announces by BGP).
    pub bgp: BgpSubsystem,
    /// The control API; `None` runs without one (tests of the engine alone).
    pub api: Option<ApiOptions>,
}

pub struct Daemon {
    path: PathBuf,
    current: Loaded,
    /// Validates a reloaded file at the cost of what changed. `None` only while lent to a
    /// blocking worker.
    loader: Option<config::Loader>,
    started_at: SystemTime,
    loaded_at: SystemTime,
    applied: u64,
    last_reload: Option<ReloadOutcome>,
    /// `None` only while lent to a blocking worker.
    ipvs: Option<IpvsSubsystem>,
    ipvs_inputs: IpvsInputs,
    operator: OperatorWeights,
    last_ipvs_error: Option<String>,
    /// As the IPVS subsystem last reported; checked every [`DRAIN_CHECK_INTERVAL`] while not
    /// empty.
    draining: Arc<Vec<DrainingReal>>,
    kernel_view: Option<(Instant, Arc<KernelView>)>,
    checks: CheckSubsystem,
    vrrp: VrrpSubsystem,
    syslog: SyslogSubsystem,
    bgp: BgpSubsystem,
    /// The services IPVS holds: the config's, but for those an operation of which failed in
    /// the last apply, and none when the apply failed as a whole (the decision withdraws the
    /// VIPs of those not held).
    ipvs_holds: BTreeSet<String>,
    node_drained: bool,
    /// Heartbeats: the daemon's loop beats, the BGP watchdog reads.
    liveness: Arc<Liveness>,
    /// Why lbd counts as unhealthy for the BGP decision (the health checks stalled).
    unhealthy: Option<String>,
    log_level: crate::logging::LogLevelSubsystem,
    api: Option<Api>,
    requests: mpsc::UnboundedReceiver<Request>,
    handle: Handle,
    published: watch::Sender<Option<Arc<Published>>>,
}

impl Daemon {
    /// Loads and validates the config, starts the API (so drains remembered from an earlier
    /// lbd hold from the first apply) and applies the config to every part. Refuses to start
    /// on an invalid config. Must run inside the tokio runtime.
    pub async fn start(path: &Path, parts: Parts) -> Result<Daemon, StartError> {
        let mut loader = config::Loader::new();
        let current = loader.load(path).map_err(StartError::Config)?;
        for w in current.warning_lines() {
            warn!("{w}");
        }
        let liveness = parts.bgp.liveness();
        parts.checks.beat_into(liveness.clone());
        let quorum = parts.vrrp.quorum_sender();
        parts
            .checks
            .forward_quorum(move |instance, lost| quorum.set(instance, lost));
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (published, published_rx) = watch::channel(None);
        let handle = Handle {
            requests: requests_tx,
            published: published_rx,
            health: parts.checks.health(),
            vrrp: parts.vrrp.status(),
            bgp: parts.bgp.status(),
        };
        let mut operator = OperatorWeights::default();
        let mut node_drained = false;
        let api = match parts.api {
            Some(opts) => match Api::start(opts, handle.clone()) {
                Ok((api, drained)) => {
                    operator = drained;
                    node_drained = api.node_drained();
                    Some(api)
                }
                Err(e) => {
                    error!("api: {e}; lbd runs without its control API");
                    None
                }
            },
            None => None,
        };
        let now = SystemTime::now();
        let mut daemon = Daemon {
            path: path.to_path_buf(),
            current,
            loader: Some(loader),
            started_at: now,
            loaded_at: now,
            applied: 0,
            last_reload: None,
            ipvs: Some(parts.ipvs),
            ipvs_inputs: IpvsInputs::default(),
            operator,
            last_ipvs_error: None,
            draining: Arc::new(Vec::new()),
            kernel_view: None,
            checks: parts.checks,
            vrrp: parts.vrrp,
            syslog: parts.syslog,
            bgp: parts.bgp,
            ipvs_holds: BTreeSet::new(),
            node_drained,
            liveness,
            unhealthy: None,
            log_level: crate::logging::LogLevelSubsystem,
            api,
            requests,
            handle,
            published,
        };
        let config = daemon.current.config.clone();
        daemon.apply(None, &config).await;
        Ok(daemon)
    }

    /// How the API and tests reach this daemon.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    pub fn config(&self) -> &Config {
        &self.current.config
    }

    /// Applies `new` to every part: log level and remote syslog first (so the others' lines
    /// about it are logged at its level and reach the collector), then IPVS, checks, VRRP.
    async fn apply(&mut self, old: Option<&Config>, new: &Config) {
        let mut since = Instant::now();
        let mut applied = |part: &str| {
            debug!(
                subsystem = part,
                version = %short(&new.version),
                ms = format!("{:.2}", since.elapsed().as_secs_f64() * 1000.0),
                "applied config"
            );
            since = Instant::now();
        };
        for s in [&mut self.log_level as &mut dyn Subsystem, &mut self.syslog] {
            s.apply(old, new);
            applied(s.name());
        }
        self.take_inputs(new);
        self.reconcile(new, "config").await;
        applied("ipvs");
        for s in [&mut self.checks as &mut dyn Subsystem, &mut self.vrrp] {
            s.apply(old, new);
            applied(s.name());
        }
        self.loaded_at = SystemTime::now();
        self.applied += 1;
        self.publish();
    }

    fn publish(&self) {
        self.published.send_replace(Some(Arc::new(Published {
            config: Arc::new(self.current.config.clone()),
            config_path: self.path.clone(),
            loaded_at: self.loaded_at,
            applied: self.applied,
            started_at: self.started_at,
            last_reload: self.last_reload.clone(),
            draining: self.draining.clone(),
        })));
    }

    /// Takes the current health, drains and VRRP roles into the reconciler's inputs; whether
    /// any changed.
    fn take_inputs(&mut self, config: &Config) -> inputs::Changed {
        let report = self.handle.health.borrow().clone();
        let vrrp = self.handle.vrrp.borrow().clone();
        let before = self.ipvs_inputs.role;
        let changed = self
            .ipvs_inputs
            .take(config, &report, &self.operator, &vrrp);
        if changed.role && config.ipvs.sync.is_some() {
            info!(
                "ipvs: connection sync follows VRRP: {} daemon (was {})",
                role_name(self.ipvs_inputs.role),
                role_name(before)
            );
        }
        changed
    }

    /// Brings IPVS to what `config` and the inputs want, on a blocking worker.
    async fn reconcile(&mut self, config: &Config, why: &'static str) {
        let health = self.ipvs_inputs.health.clone();
        let overrides = self.ipvs_inputs.overrides();
        let role = self.ipvs_inputs.role;
        self.on_ipvs_worker(config, why, move |ipvs, config| {
            ipvs.set_health(health);
            ipvs.set_overrides(overrides);
            ipvs.set_sync_role(role);
            ipvs.reconcile(config).map(Some)
        })
        .await;
        self.announce(config);
    }

    /// Tells the BGP speaker what to announce now, from the inputs as last taken.
    fn announce(&mut self, config: &Config) {
        let decision = decide(
            config,
            &BgpInputs {
                health: Some(&self.ipvs_inputs.health),
                weights: Some(&self.ipvs_inputs.weights),
                ipvs_holds: Some(&self.ipvs_holds),
                lbd_unhealthy: self.unhealthy.as_deref(),
                node_drained: self.node_drained,
            },
        );
        self.bgp.set(BgpWanted {
            bgp: config.bgp.clone(),
            local_vips: nway_vips(config).into_keys().collect(),
            decision,
        });
    }

    /// Withdraws the N-way VIPs while the health checks have stopped running (their results
    /// would be stale), and announces again once they run.
    fn watch_checks(&mut self) {
        let Some(limit) = self.current.config.bgp.as_ref().map(|b| b.watchdog) else {
            return;
        };
        let unhealthy = checks_unhealthy(self.liveness.stalled(Loop::Checks, limit));
        if unhealthy.is_some() != self.unhealthy.is_some() {
            let config = self.current.config.clone();
            match &unhealthy {
                Some(why) => error!("bgp: {why}: every N-way VIP withdrawn until they run"),
                None => info!("bgp: the health checks run again: announcing as they say"),
            }
            self.unhealthy = unhealthy;
            self.announce(&config);
        }
    }

    /// Deletes the draining reals that are empty or timed out, on a blocking worker.
    async fn check_drains(&mut self) {
        let config = self.current.config.clone();
        self.on_ipvs_worker(&config, "removal drain", |ipvs, config| {
            ipvs.check_drains(config)
        })
        .await;
    }

    /// Lends the IPVS subsystem to a blocking worker for `work`, logs what it did, and
    /// publishes the draining reals when they changed.
    async fn on_ipvs_worker<F>(&mut self, config: &Config, why: &'static str, work: F)
    where
        F: FnOnce(&mut IpvsSubsystem, &Config) -> Result<Option<ApplyReport>, IpvsError>
            + Send
            + 'static,
    {
        let Some(mut ipvs) = self.ipvs.take() else {
            return;
        };
        let services: BTreeSet<String> = config.services.keys().cloned().collect();
        let config = config.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let r = work(&mut ipvs, &config);
            (ipvs, r)
        });
        let (ipvs, result) = match worker.await {
            Ok(x) => x,
            Err(e) => {
                // The worker panicked: the subsystem is lost with it, which lbd cannot run
                // without; end here and let init restart lbd (the table stays).
                error!("ipvs: the apply worker failed: {e}; lbd exits and is restarted");
                std::process::exit(1);
            }
        };
        let draining = ipvs.draining();
        self.ipvs = Some(ipvs);
        match result {
            Ok(None) => {}
            Ok(Some(report)) => {
                self.kernel_view = None;
                self.last_ipvs_error = None;
                // A service whose operations failed is not held; the others are.
                self.ipvs_holds = services.difference(&report.failed).cloned().collect();
                crate::ipvs::subsystem::log_report(&report, why);
            }
            Err(e) => {
                self.kernel_view = None;
                self.ipvs_holds.clear();
                let text = e.to_string();
                if self.last_ipvs_error.as_deref() != Some(text.as_str()) {
                    error!("ipvs: cannot apply ({why}): {text}; the kernel table will be read again at the next apply");
                    self.last_ipvs_error = Some(text);
                }
            }
        }
        // Only which reals drain is published; their times follow from the start.
        let same = |a: &[DrainingReal], b: &[DrainingReal]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (&x.service, x.address) == (&y.service, y.address))
        };
        if !same(&draining, &self.draining) {
            self.draining = Arc::new(draining);
            self.publish();
        }
    }

    async fn kernel_table(&mut self) -> Arc<KernelView> {
        if let Some((at, view)) = &self.kernel_view {
            if at.elapsed() < KERNEL_VIEW_MAX_AGE {
                return view.clone();
            }
        }
        let Some(mut ipvs) = self.ipvs.take() else {
            return Arc::new(KernelView::Unavailable("the IPVS subsystem is busy".into()));
        };
        let worker = tokio::task::spawn_blocking(move || {
            let d = ipvs.dump();
            (ipvs, d)
        });
        let view = match worker.await {
            Ok((ipvs, dump)) => {
                self.ipvs = Some(ipvs);
                match dump {
                    Ok(d) => KernelView::Table(d),
                    Err(e) => KernelView::Unavailable(e.to_string()),
                }
            }
            Err(e) => {
                error!("ipvs: the dump worker failed: {e}; lbd exits and is restarted");
                std::process::exit(1);
            }
        };
        let view = Arc::new(view);
        self.kernel_view = Some((Instant::now(), view.clone()));
        view
    }

    async fn request(&mut self, req: Request) {
        match req {
            Request::Reload { source, reply } => {
                let outcome = self.reload(source).await;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            Request::KernelTable { reply } => {
                let view = self.kernel_table().await;
                let _ = reply.send(view);
            }
            Request::OperatorWeights(w) => {
                self.operator = w;
                let config = self.current.config.clone();
                if self.take_inputs(&config).any() {
                    self.reconcile(&config, "drain").await;
                }
            }
            Request::NodeDrain(drained) => {
                if drained != self.node_drained {
                    info!(
                        "bgp: node {}",
                        if drained {
                            "drained: every VIP withdrawn, IPVS kept"
                        } else {
                            "undrained: announcing again"
                        }
                    );
                }
                self.node_drained = drained;
                let config = self.current.config.clone();
                self.announce(&config);
            }
        }
    }

    /// Runs until SIGTERM or SIGINT, then stops in [`STOP_ORDER`]. SIGHUP reloads.
    pub async fn run(mut self) -> std::io::Result<()> {
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut health = self.handle.health.clone();
        let mut vrrp = self.handle.vrrp.clone();
        let mut drain_tick = tokio::time::interval(DRAIN_CHECK_INTERVAL);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            pid = std::process::id(),
            "lbd running with {}: {}",
            self.path.display(),
            self.current.config.summary()
        );
        // The heap a large reload needs, faulted in once (see `heap`): after the first apply, so
        // that a start or restart is not delayed by it (about 0.1 s in an emulated guest).
        crate::heap::pretouch(crate::heap::PRETOUCHED);
        loop {
            let why = tokio::select! {
                _ = hup.recv() => { self.reload(ReloadSource::Signal).await; continue; }
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
                Some(req) = self.requests.recv() => { self.request(req).await; continue; }
                _ = drain_tick.tick(), if !self.draining.is_empty() => {
                    self.check_drains().await;
                    continue;
                }
                _ = beat.tick() => {
                    self.liveness.beat(Loop::Daemon);
                    self.watch_checks();
                    continue;
                }
                Ok(()) = health.changed() => "health",
                // A VRRP subsystem that is gone leaves the last role in place.
                Ok(()) = vrrp.changed() => "sync role",
            };
            // Both may have changed (a restarted lbd learns its health and its VRRP role at
            // once): one reconcile, named for both.
            let why = match why {
                "health" if vrrp.has_changed().unwrap_or(false) => "health and sync role",
                "sync role" if health.has_changed().unwrap_or(false) => "health and sync role",
                w => w,
            };
            // Changes that arrive while a reconcile runs are coalesced by the watch channels.
            health.borrow_and_update();
            vrrp.borrow_and_update();
            let config = self.current.config.clone();
            if self.take_inputs(&config).any() {
                self.reconcile(&config, why).await;
            }
        }
        self.stop().await;
        info!("lbd stopped");
        Ok(())
    }

    /// Stops every part in [`STOP_ORDER`].
    async fn stop(&mut self) {
        for (part, _) in STOP_ORDER {
            match part {
                "vrrp" => self.vrrp.stop(),
                "bgp" => self.bgp.stop().await,
                "api" => {
                    if let Some(api) = self.api.take() {
                        api.stop().await;
                    }
                }
                "checks" => self.checks.stop(),
                "ipvs" => {
                    if let Some(ipvs) = self.ipvs.as_mut() {
                        ipvs.stop();
                    }
                }
                "syslog" => {}
                other => unreachable!("unknown part {other} in STOP_ORDER"),
            }
            debug!(part, "stopped");
        }
    }
}

/// Why lbd is unhealthy when its health checks have been silent for `stalled`.
fn checks_unhealthy(stalled: Option<Duration>) -> Option<String> {
    stalled.map(|d| {
        format!(
            "the health checks have not run for {:.0} s",
            d.as_secs_f64()
        )
    })
}

fn role_name(role: crate::reconcile::SyncRole) -> &'static str {
    match role {
        crate::reconcile::SyncRole::Master => "master",
        crate::reconcile::SyncRole::Backup => "backup",
    }
}

fn short(version: &crate::config::Version) -> &str {
    version.short()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_checks_make_lbd_unhealthy_with_how_long() {
        assert_eq!(checks_unhealthy(None), None);
        assert_eq!(
            checks_unhealthy(Some(Duration::from_millis(12_400))).as_deref(),
            Some("the health checks have not run for 12 s")
        );
    }

    #[test]
    fn vrrp_stops_first_and_syslog_last() {
        let order: Vec<&str> = STOP_ORDER.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            order.first(),
            Some(&"vrrp"),
            "the peer must take the VIPs first"
        );
        assert_eq!(order.last(), Some(&"syslog"));
        let pos = |p| order.iter().position(|x| *x == p).unwrap();
        assert!(
            pos("checks") < pos("ipvs"),
            "no health change may reach IPVS after its stop"
        );
    }
}
