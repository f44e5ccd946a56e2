//! lbd's IPVS subsystem: adopts the kernel's table at start, then applies only differences.
//!
//! At the first apply (and after anything made the cached view doubtful) the kernel's table,
//! timeouts and sync daemons are read once and *adopted*: the plan is computed against what is
//! there, so a restarted lbd changes nothing when the config did not change, and connections
//! survive a crash or an upgrade. Afterwards the subsystem keeps its view of the kernel up to
//! date from the results of its own operations, so a one-real change costs one message however
//! large the table is. An operation the kernel refuses is logged with the object and errno;
//! the others are still applied. When lbd stops, the table stays: nothing is flushed.
//!
//! lbd remembers which services it owns in a small state file under `/run` (tmpfs: it outlives
//! an lbd crash, and vanishes with the kernel table at reboot), so a service deleted from the
//! config while lbd was down is still removed, and `ipvs.unmanaged = "keep"` only protects
//! entries lbd never created.
//!
//! A real the config removes from a service it keeps is drained, not deleted: weight 0 until it
//! has no connections or `ipvs.removal_drain` passes ([`crate::reconcile::drain`]). The owner
//! calls [`IpvsSubsystem::check_drains`] about every second while [`IpvsSubsystem::draining`]
//! is not empty. Drains live in memory only: after a restart, the adopted table's destinations
//! that an owned service's config does not list drain again with a fresh timeout.
//!
//! Inputs besides the config — real health (checks), operator overrides, and the sync role
//! (VRRP) — come in through setters and take effect at the next [`IpvsSubsystem::reconcile`].
//!
//! The table is read with each service's destinations in the kernel's list order, which the
//! planner keeps canonical for `mh` services ([`crate::reconcile::order`]); a plan that moves
//! destinations says so in the log. Every reconcile also brings `[ipvs] sloppy_tcp`,
//! `sloppy_sctp` and `expire_nodest_conn` to `/proc/sys/net/ipv4/vs/` ([`super::sysctl`]; no
//! netlink command sets them).

use super::client::{IpvsClient, IpvsError};
use super::msg::{Encoded, ServiceId};
use crate::config::Config;
use crate::config::ConfigDuration;
use crate::reconcile::{
    self, ConnCounts, DestKey, DestList, DestSpec, DrainEnd, DrainEvent, Drains, KeptDesired,
    KernelState, Op, Overrides, PlanCounts, RealHealth, Scope, ServiceSpec, SyncRole,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

/// What one reconcile did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyReport {
    pub counts: PlanCounts,
    pub errors: usize,
    /// The config's services an operation of which failed: the kernel may not hold them as
    /// the config says (the others it does).
    pub failed: BTreeSet<String>,
    /// Netlink messages sent and received for this apply (including a dump, if one was needed).
    pub messages: u64,
    pub millis: f64,
    /// Of `millis`, the exchange with the kernel (sending the operations, reading the
    /// acknowledgements).
    pub kernel_millis: f64,
    /// Of `millis`, planning: the desired state, the operations and their requests (and
    /// reading the table when it was adopted). The rest is recording the outcome.
    pub plan_millis: f64,
    /// Set when the kernel table was (re)read: its services and destinations.
    pub adopted: Option<(usize, usize)>,
}

/// Where lbd remembers the services it owns (see the module doc).
pub const DEFAULT_STATE_FILE: &str = "/run/lb/ipvs-owned.json";

/// The IPVS subsystem.
pub struct IpvsSubsystem {
    client: Option<IpvsClient>,
    kernel: Option<KernelState>,
    health: RealHealth,
    overrides: Overrides,
    role: SyncRole,
    state_file: Option<PathBuf>,
    /// Services lbd programmed (None until loaded from the state file).
    owned: Option<BTreeSet<ServiceId>>,
    /// The desired state of the last reconcile, updated service by service.
    desired: KeptDesired,
    /// Whether the kept kernel view held exactly the desired state after the last apply: then
    /// only the services whose desired state changed need a look.
    in_step: bool,
    /// Reals removed from the config whose connections are let finish.
    drains: Drains,
    /// `ipvs.removal_drain` of the last reconcile, for [`Self::draining`].
    removal_drain: Duration,
    /// Where the IPVS sysctls are ([`super::sysctl::DIR`]; a test may point elsewhere).
    sysctl_dir: PathBuf,
    /// The last failure to write them, so it is logged once, not at every reconcile.
    sysctl_error: Option<String>,
}

/// A real the config no longer lists, kept at weight 0 until its connections end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainingReal {
    pub service: String,
    pub address: SocketAddr,
    pub started_at: SystemTime,
    /// When it is deleted at the latest (`ipvs.removal_drain` after the start).
    pub ends_by: SystemTime,
}

impl Default for IpvsSubsystem {
    fn default() -> Self {
        IpvsSubsystem {
            client: None,
            kernel: None,
            health: RealHealth::default(),
            overrides: Overrides::default(),
            role: SyncRole::default(),
            state_file: Some(PathBuf::from(DEFAULT_STATE_FILE)),
            owned: None,
            desired: KeptDesired::new(),
            in_step: false,
            drains: Drains::new(),
            removal_drain: Duration::ZERO,
            sysctl_dir: PathBuf::from(super::sysctl::DIR),
            sysctl_error: None,
        }
    }
}

fn load_owned(path: &Path) -> BTreeSet<ServiceId> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!("ipvs: ignoring {}: {e}", path.display());
            BTreeSet::new()
        }),
        Err(_) => BTreeSet::new(),
    }
}

fn save_owned(path: &Path, owned: &BTreeSet<ServiceId>) -> std::io::Result<()> {
    let json = serde_json::to_vec(owned).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// Reads the kernel's whole IPVS state.
pub fn read_kernel(client: &mut IpvsClient) -> Result<KernelState, IpvsError> {
    Ok(kernel_state(
        client.dump()?,
        client.timeouts()?,
        client.daemons()?,
    ))
}

/// The kernel state a dump describes. Each service's destinations come in the kernel's list
/// order (head first), which `mh` services depend on ([`crate::reconcile::order`]).
pub fn kernel_state(
    dump: super::client::Dump,
    timeouts: super::msg::Timeouts,
    daemons: Vec<super::msg::DaemonEntry>,
) -> KernelState {
    let mut table = BTreeMap::new();
    let mut lists = BTreeMap::new();
    for (s, dests) in dump {
        let dests: Vec<(DestKey, DestSpec)> = dests.iter().map(DestSpec::from_entry).collect();
        lists.insert(s.id, DestList::from_dump(dests.iter().map(|(k, _)| *k)));
        table.insert(
            s.id,
            reconcile::ServiceState {
                spec: ServiceSpec::from_entry(&s),
                dests: dests.into_iter().collect(),
            },
        );
    }
    KernelState {
        table,
        lists,
        timeouts,
        daemons,
    }
}

impl IpvsSubsystem {
    pub fn new() -> IpvsSubsystem {
        IpvsSubsystem::default()
    }

    /// Remembers owned services in `path` instead of [`DEFAULT_STATE_FILE`] (`None`: only in
    /// memory).
    pub fn with_state_file(mut self, path: Option<PathBuf>) -> IpvsSubsystem {
        self.state_file = path;
        self
    }

    /// Reads and writes the IPVS sysctls in `dir` instead of [`super::sysctl::DIR`].
    pub fn with_sysctl_dir(mut self, dir: PathBuf) -> IpvsSubsystem {
        self.sysctl_dir = dir;
        self
    }

    /// Brings `sloppy_tcp`, `sloppy_sctp` and `expire_nodest_conn` to what the config sets (an
    /// unset key is left alone). Run with every reconcile — at start, at every reload, and
    /// after health or role changes — so a value changed by hand comes back at the next one; a
    /// file is written only when it differs.
    pub fn apply_sysctls(&mut self, config: &Config) {
        let dir = self.sysctl_dir.clone();
        let writes = super::sysctl::writes(&config.ipvs, |name| {
            std::fs::read_to_string(dir.join(name)).ok()
        });
        let mut failed = None;
        for w in writes {
            match std::fs::write(dir.join(w.name), w.value) {
                Ok(()) => info!(
                    "ipvs: {} set to {} (was {})",
                    w.name,
                    w.value,
                    w.was.as_deref().unwrap_or("unreadable")
                ),
                Err(e) => {
                    failed = Some(format!(
                        "ipvs: cannot set {} to {}: {}: {e}",
                        w.name,
                        w.value,
                        dir.join(w.name).display()
                    ))
                }
            }
        }
        if let Some(text) = &failed {
            if self.sysctl_error.as_ref() != Some(text) {
                error!("{text}");
            }
        }
        self.sysctl_error = failed;
    }

    /// Health of the reals, from the checks.
    pub fn set_health(&mut self, health: RealHealth) {
        self.health = health;
    }

    /// Operator overrides (drain, weights).
    pub fn set_overrides(&mut self, overrides: Overrides) {
        self.overrides = overrides;
    }

    /// Master or backup for the connection sync daemon (VRRP decides, later).
    pub fn set_sync_role(&mut self, role: SyncRole) {
        self.role = role;
    }

    /// Forgets the kept view of the kernel: the next [`Self::reconcile`] reads the table again
    /// (for a periodic resync, or after another tool changed it).
    pub fn invalidate(&mut self) {
        self.kernel = None;
    }

    fn traffic(&self) -> u64 {
        self.client
            .as_ref()
            .map(|c| c.counters.messages_sent + c.counters.messages_received)
            .unwrap_or(0)
    }

    /// Brings the kernel to what `config` (and the current inputs) want.
    pub fn reconcile(&mut self, config: &Config) -> Result<ApplyReport, IpvsError> {
        self.run(config, BTreeSet::new())
    }

    /// The reals draining now.
    pub fn draining(&self) -> Vec<DrainingReal> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        self.drains
            .active()
            .map(|((_, key), d)| {
                let started_at = wall - now.saturating_duration_since(d.started);
                DrainingReal {
                    service: d.service.clone(),
                    address: SocketAddr::new(key.addr, key.port),
                    started_at,
                    ends_by: started_at + self.removal_drain,
                }
            })
            .collect()
    }

    /// Deletes the draining reals that have no connections left or whose drain timed out;
    /// `None` when none did.
    pub fn check_drains(&mut self, config: &Config) -> Result<Option<ApplyReport>, IpvsError> {
        if !self.drains.any_active() {
            return Ok(None);
        }
        if self.client.is_none() {
            self.client = Some(IpvsClient::connect()?);
        }
        let client = self.client.as_mut().expect("just connected");
        let mut counts = ConnCounts::new();
        for id in self.drains.services() {
            match client.dests(&id) {
                Ok(dests) => {
                    for d in dests {
                        let key = DestKey {
                            addr: d.addr,
                            port: d.port,
                        };
                        counts.insert((id, key), (d.active_conns, d.inactive_conns));
                    }
                }
                // The service is gone: nothing of it is left to wait for.
                Err(IpvsError::NotFound { .. }) => {}
                Err(e) => {
                    self.client = None;
                    return Err(e);
                }
            }
        }
        let (services, events) = self.drains.finish(
            self.desired.desired_mut(),
            &counts,
            Instant::now(),
            config.ipvs.removal_drain,
        );
        if services.is_empty() {
            return Ok(None);
        }
        log_drain_events(&events);
        self.run(config, services).map(Some)
    }

    /// [`Self::reconcile`], planning `extra` services besides those whose desired state
    /// changed.
    fn run(
        &mut self,
        config: &Config,
        extra: BTreeSet<ServiceId>,
    ) -> Result<ApplyReport, IpvsError> {
        let started = Instant::now();
        if self.client.is_none() {
            self.client = Some(IpvsClient::connect()?);
        }
        let before = self.traffic();
        let mut report = ApplyReport::default();
        let client = self.client.as_mut().expect("just connected");
        if self.kernel.is_none() {
            let k = match read_kernel(client) {
                Ok(k) => k,
                Err(e) => {
                    self.client = None;
                    return Err(e);
                }
            };
            report.adopted = Some((k.table.len(), k.dest_count()));
            self.kernel = Some(k);
        }
        let kernel = self.kernel.as_mut().expect("just read");
        let state_file = self.state_file.clone();
        let owned = self
            .owned
            .get_or_insert_with(|| state_file.as_deref().map(load_owned).unwrap_or_default());
        let mut scope = self
            .desired
            .update(config, &self.health, &self.overrides, self.role);
        // A fresh view of the kernel, or one that may differ from the desired state after
        // failed operations, is compared whole.
        if report.adopted.is_some() || !self.in_step {
            scope = Scope::All;
        } else if let Scope::Services(ids) = &mut scope {
            ids.extend(extra);
        }
        self.desired.set_owned_before(owned.clone());
        self.in_step = false;
        self.removal_drain = config.ipvs.removal_drain;
        let events = self.drains.update(
            self.desired.desired_mut(),
            config,
            kernel,
            &scope,
            Instant::now(),
            config.ipvs.removal_drain,
        );
        log_drain_events(&events);
        let desired = self.desired.desired();
        let ops = reconcile::plan_in(desired, kernel, &scope);
        report.counts = PlanCounts::of(&ops);
        log_mh_moves(&ops, &desired.names);
        let encoded = Encoded::of(ops.iter());
        let requests: Vec<(&Op, _)> = ops.iter().zip(encoded.iter()).collect();
        let exchange = Instant::now();
        report.plan_millis = exchange.duration_since(started).as_secs_f64() * 1000.0;
        let executed = client.execute(&requests);
        report.kernel_millis = exchange.elapsed().as_secs_f64() * 1000.0;
        let results = match executed {
            Ok(r) => r,
            Err(e) => {
                // The outcome of the batch is unknown: reconnect and re-read next time.
                self.client = None;
                self.kernel = None;
                return Err(e);
            }
        };
        let (done, doubtful) = sort_results(&ops, results, &desired.names, &mut report);
        kernel.apply_all(done);
        // Owned from now on: what the config wants, plus what could not be deleted.
        let mut now_owned: BTreeSet<ServiceId> = desired.table.keys().copied().collect();
        now_owned.extend(owned.iter().filter(|id| kernel.table.contains_key(id)));
        if now_owned != *owned {
            if let Some(path) = &self.state_file {
                if let Err(e) = save_owned(path, &now_owned) {
                    warn!(
                        "ipvs: cannot remember owned services in {}: {e}",
                        path.display()
                    );
                }
            }
            *owned = now_owned;
        }
        self.drains.prune(kernel);
        if doubtful {
            self.kernel = None;
        }
        self.in_step = report.errors == 0 && self.kernel.is_some();
        self.apply_sysctls(config);
        report.messages = self.traffic() - before;
        report.millis = started.elapsed().as_secs_f64() * 1000.0;
        Ok(report)
    }
}

/// Reads the kernel's answers to `ops` in order: what the kernel did (the successes, and the
/// deletions of what was gone already), and whether the cached view became doubtful. Failures
/// are counted in `report` and logged.
fn sort_results<'a>(
    ops: &'a [Op],
    results: Vec<Result<(), IpvsError>>,
    names: &BTreeMap<ServiceId, String>,
    report: &mut ApplyReport,
) -> (Vec<&'a Op>, bool) {
    let mut failed_services = BTreeSet::new();
    let mut doubtful = false;
    // What the kernel did, recorded in order once all results are read.
    let mut done = Vec::with_capacity(ops.len());
    for (op, result) in ops.iter().zip(results) {
        match result {
            Ok(()) => done.push(op),
            Err(e) => {
                // Destinations of a service that could not be added fail too; say it once.
                let of_failed_service = matches!(op, Op::AddDest(..))
                    && op.service().is_some_and(|s| failed_services.contains(s));
                if let Op::AddService(id, _) = op {
                    failed_services.insert(*id);
                }
                match (&e, op) {
                    // Already gone: what we wanted.
                    (IpvsError::NotFound { .. }, Op::DelDest(..) | Op::DelService(..)) => {
                        warn!("ipvs: {e}; someone else removed it");
                        done.push(op);
                        continue;
                    }
                    (IpvsError::AlreadyExists { .. } | IpvsError::NotFound { .. }, _) => {
                        // Someone else changed the table: read it again next time.
                        doubtful = true;
                    }
                    _ => {}
                }
                report.errors += 1;
                if let Some(name) = op.service().and_then(|id| names.get(id)) {
                    report.failed.insert(name.clone());
                }
                if !of_failed_service {
                    log_op_error(op, &e, names);
                }
            }
        }
    }
    (done, doubtful)
}

/// One error line for a failed operation, naming its service.
fn log_op_error(op: &Op, e: &IpvsError, names: &BTreeMap<ServiceId, String>) {
    let name = op
        .service()
        .and_then(|id| names.get(id))
        .map(|n| format!(" (service {n})"))
        .unwrap_or_default();
    match op {
        // IPVS answers ENOENT for a scheduler it cannot find, which is not "no such service".
        Op::AddService(_, spec) | Op::EditService(_, spec) if e.errno() == Some(libc::ENOENT) => {
            error!(
                "ipvs: {op}: the kernel has no scheduler {:?} (module ip_vs_{} missing){name}",
                spec.scheduler, spec.scheduler
            )
        }
        _ => error!("ipvs: {e}{name}"),
    }
}

/// Says which destinations of `mh` services a plan deletes and adds back to keep their order.
fn log_mh_moves(ops: &[Op], names: &BTreeMap<ServiceId, String>) {
    for (id, keys) in reconcile::moves(ops) {
        let name = names.get(&id).cloned().unwrap_or_else(|| id.to_string());
        let list: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        info!(
            service = %name,
            moved = keys.len(),
            "ipvs: service {name} (mh): moving {} to keep the canonical order of its reals (delete and add back at once; established connections continue): {}",
            if keys.len() == 1 { "1 real".to_string() } else { format!("{} reals", keys.len()) },
            list.join(", ")
        );
    }
}

/// One line per drain that starts, is cancelled or ends.
fn log_drain_events(events: &[DrainEvent]) {
    for e in events {
        match e {
            DrainEvent::Started {
                service,
                real,
                timeout,
            } => info!(
                service = %service,
                real = %real,
                "ipvs: real {real} removed from service {service}: draining at weight 0 (no new connections, established ones continue) for at most {}",
                ConfigDuration(*timeout)
            ),
            DrainEvent::Readded { service, real } => info!(
                service = %service,
                real = %real,
                "ipvs: real {real} is back in service {service}: drain cancelled, weight restored"
            ),
            DrainEvent::Ended {
                service,
                real,
                why: DrainEnd::Empty,
                after,
                ..
            } => info!(
                service = %service,
                real = %real,
                "ipvs: real {real} of service {service} drained: no connections left after {:.1}s, deleting it",
                after.as_secs_f64()
            ),
            DrainEvent::Ended {
                service,
                real,
                why: DrainEnd::TimedOut,
                after,
                active,
                inactive,
            } => warn!(
                service = %service,
                real = %real,
                active,
                inactive,
                "ipvs: real {real} of service {service} drain timed out after {:.1}s with {active} active and {inactive} inactive connections left, deleting it",
                after.as_secs_f64()
            ),
        }
    }
}

/// Logs what a reconcile did: the whole apply of a config with its counts, or the changes an
/// input (`health`, `drain`, `sync role`) brought.
pub fn log_report(r: &ApplyReport, why: &str) {
    if let Some((services, reals)) = r.adopted {
        info!(
            services,
            reals, "ipvs: adopted the kernel table as it is (no rebuild)"
        );
    }
    let c = r.counts;
    let mut errors = String::from(if r.errors == 1 { "" } else { "s" });
    if !r.failed.is_empty() {
        let names: Vec<&str> = r.failed.iter().map(String::as_str).collect();
        errors += &format!("; not as configured: {}", names.join(", "));
    }
    if why == "config" {
        info!(
            services_added = c.services_added,
            services_edited = c.services_edited,
            services_deleted = c.services_deleted,
            reals_added = c.reals_added,
            reals_edited = c.reals_edited,
            reals_deleted = c.reals_deleted,
            other = c.other,
            errors = r.errors,
            messages = r.messages,
            ms = format!("{:.1}", r.millis),
            "ipvs applied: services +{} ~{} -{}, reals +{} ~{} -{}, other {}, {} error{errors}",
            c.services_added,
            c.services_edited,
            c.services_deleted,
            c.reals_added,
            c.reals_edited,
            c.reals_deleted,
            c.other,
            r.errors,
        );
    } else {
        info!(
            reals_added = c.reals_added,
            reals_edited = c.reals_edited,
            reals_deleted = c.reals_deleted,
            errors = r.errors,
            ms = format!("{:.1}", r.millis),
            "ipvs applied {why} changes: reals +{} ~{} -{}, {} error{errors}",
            c.reals_added,
            c.reals_edited,
            c.reals_deleted,
            r.errors,
        );
    }
}

impl IpvsSubsystem {
    /// The kernel's table with counters, read with this subsystem's own client.
    pub fn dump(&mut self) -> Result<super::client::Dump, IpvsError> {
        if self.client.is_none() {
            self.client = Some(IpvsClient::connect()?);
        }
        let client = self.client.as_mut().expect("just connected");
        client.dump().inspect_err(|_| self.client = None)
    }

    /// Applies `config` and logs what it did.
    pub fn apply(&mut self, config: &Config) {
        match self.reconcile(config) {
            Ok(r) => log_report(&r, "config"),
            Err(IpvsError::Unavailable) => {
                error!(
                    "ipvs: {}; services are not programmed",
                    IpvsError::Unavailable
                );
            }
            Err(e) => error!("ipvs: {e}; will read the kernel table again at the next apply"),
        }
    }

    /// lbd stops: the table stays as it is (nothing is flushed), so connections keep flowing
    /// through a restart or an upgrade.
    pub fn stop(&mut self) {
        if self.client.is_some() {
            info!("ipvs: leaving the kernel table in place (connections keep flowing)");
        }
    }
}
