//! Health results into the IPVS reconciler: a [`Subsystem`] wrapping the
//! [`IpvsSubsystem`] that, besides applying each config, reconciles again whenever the checks
//! publish a report that changes what IPVS should hold (a real down or up, a weight set by a
//! check). The reconciler decides what that means ([`crate::reconcile::desired`]: weight 0 or
//! removal per `on_failure`, the sorry server when no real serves); this module only feeds it,
//! so there is no second path to the kernel.
//!
//! ```text
//! Daemon ──apply(config)──▶ HealthFeed ──lock──▶ IpvsSubsystem::apply
//! checks ──watch<HealthReport>──▶ feed thread ──lock──▶ set_health + set_overrides + reconcile
//! control API ──watch<OperatorWeights>──▶ feed thread   (drain: weight 0, wins over checks)
//! VRRP ──watch<Status>──▶ feed thread ──▶ set_sync_role   (connection sync follows the master)
//! ```
//!
//! Until VRRP reports a master, a config with `[ipvs.sync]` runs the backup sync daemon:
//! a node that is not yet sure it holds the VIPs must not send its (empty) connection table
//! over its peer's.

use super::board::{HealthReport, RealKey};
use crate::config::Config;
use crate::daemon::Subsystem;
use crate::ipvs::subsystem::IpvsSubsystem;
use crate::reconcile::{Overrides, RealHealth, SyncRole};
use crate::vrrp::runtime::Status as VrrpStatus;
use crate::vrrp::sync::sync_role;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tracing::{error, info};

/// Operator weight overrides per real (the control API's drain: weight 0 until undrain). They
/// win over the weights the checks set. (Added for the control API, crate::api.)
pub type OperatorWeights = Arc<BTreeMap<RealKey, u32>>;

struct Inner {
    ipvs: IpvsSubsystem,
    config: Option<Config>,
    health: RealHealth,
    weights: BTreeMap<RealKey, u32>,
    role: SyncRole,
    last_error: Option<String>,
}

impl Inner {
    /// Takes the report's health and weights, and the operator's weights over them; whether
    /// they differ from what IPVS has.
    fn take(&mut self, report: &HealthReport, operator: &BTreeMap<RealKey, u32>) -> bool {
        let health = report.real_health();
        let mut weights = report.weights();
        weights.extend(operator.iter().map(|(k, w)| (k.clone(), *w)));
        if health == self.health && weights == self.weights {
            return false;
        }
        self.ipvs.set_health(health.clone());
        self.ipvs.set_overrides(Overrides {
            weights: weights.clone(),
        });
        self.health = health;
        self.weights = weights;
        true
    }

    /// Takes the sync role the VRRP roles ask for under the current config; whether it changed.
    fn take_role(&mut self, vrrp: &VrrpStatus) -> bool {
        let Some(config) = self.config.as_ref() else {
            return false;
        };
        let role = sync_role(config, &vrrp.roles).unwrap_or_default();
        if role == self.role {
            return false;
        }
        if config.ipvs.sync.is_some() {
            info!(
                "ipvs: connection sync follows VRRP: {} daemon",
                match role {
                    SyncRole::Master => "master",
                    SyncRole::Backup => "backup",
                }
            );
        }
        self.ipvs.set_sync_role(role);
        self.role = role;
        true
    }
}

/// The IPVS subsystem, driven by configs and by health reports.
pub struct HealthFeed {
    inner: Arc<Mutex<Inner>>,
    health: watch::Receiver<Arc<HealthReport>>,
    vrrp: watch::Receiver<VrrpStatus>,
    operator: watch::Sender<OperatorWeights>,
    stop: Option<mpsc::UnboundedSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthFeed {
    /// Wraps `ipvs`; health reports come from `health` (see
    /// [`super::subsystem::CheckSubsystem::health`]), VRRP roles from `vrrp` (see
    /// [`crate::vrrp::runtime::VrrpSubsystem::status`]).
    pub fn new(
        mut ipvs: IpvsSubsystem,
        health: watch::Receiver<Arc<HealthReport>>,
        vrrp: watch::Receiver<VrrpStatus>,
    ) -> HealthFeed {
        ipvs.set_sync_role(SyncRole::Backup);
        let inner = Arc::new(Mutex::new(Inner {
            ipvs,
            config: None,
            health: RealHealth::default(),
            weights: BTreeMap::new(),
            role: SyncRole::Backup,
            last_error: None,
        }));
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let (operator, operator_rx) = watch::channel(OperatorWeights::default());
        let thread = std::thread::Builder::new()
            .name("lbd-health-feed".into())
            .spawn({
                let inner = inner.clone();
                let health = health.clone();
                let vrrp = vrrp.clone();
                move || feed(inner, health, vrrp, operator_rx, stop_rx)
            })
            .map_err(|e| error!("checks: cannot start the health feed thread: {e}; health changes will not reach IPVS"))
            .ok();
        HealthFeed {
            inner,
            health,
            vrrp,
            operator,
            stop: Some(stop_tx),
            thread,
        }
    }

    /// Where the control API sends operator weights (drain/undrain); each change reconciles.
    pub fn operator_weights(&self) -> watch::Sender<OperatorWeights> {
        self.operator.clone()
    }
}

fn feed(
    inner: Arc<Mutex<Inner>>,
    mut health: watch::Receiver<Arc<HealthReport>>,
    mut vrrp: watch::Receiver<VrrpStatus>,
    mut operator: watch::Receiver<OperatorWeights>,
    mut stop: mpsc::UnboundedReceiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(r) => r,
        Err(e) => {
            error!("checks: health feed runtime: {e}; health changes will not reach IPVS");
            return;
        }
    };
    runtime.block_on(async move {
        loop {
            tokio::select! {
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                // The HealthFeed holds the sender, so this only ends with the feed.
                changed = operator.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                // A VRRP subsystem that is gone leaves the last role in place.
                Ok(()) = vrrp.changed() => {}
                _ = stop.recv() => return,
            }
            // Changes that arrive while a reconcile runs are coalesced by the watch channel.
            let report = health.borrow_and_update().clone();
            let operator_weights = operator.borrow_and_update().clone();
            let vrrp_status = vrrp.borrow_and_update().clone();
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            let inner = &mut *guard;
            let health_changed = inner.take(&report, &operator_weights);
            let role_changed = inner.take_role(&vrrp_status);
            if !health_changed && !role_changed {
                continue;
            }
            let Some(config) = inner.config.as_ref() else {
                continue;
            };
            match inner.ipvs.reconcile(config) {
                Ok(r) => {
                    inner.last_error = None;
                    let c = r.counts;
                    info!(
                        reals_added = c.reals_added,
                        reals_edited = c.reals_edited,
                        reals_deleted = c.reals_deleted,
                        errors = r.errors,
                        ms = format!("{:.1}", r.millis),
                        "ipvs applied {} changes: reals +{} ~{} -{}, {} error{}",
                        if role_changed { "sync role" } else { "health" },
                        c.reals_added,
                        c.reals_edited,
                        c.reals_deleted,
                        r.errors,
                        if r.errors == 1 { "" } else { "s" }
                    );
                }
                Err(e) => {
                    let text = e.to_string();
                    if inner.last_error.as_deref() != Some(text.as_str()) {
                        error!("ipvs: cannot apply health changes: {text}");
                        inner.last_error = Some(text);
                    }
                }
            }
        }
    });
}

impl Subsystem for HealthFeed {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn apply(&mut self, old: Option<&Config>, new: &Config) {
        let report = self.health.borrow().clone();
        let operator_weights = self.operator.borrow().clone();
        let vrrp_status = self.vrrp.borrow().clone();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.take(&report, &operator_weights);
        inner.config = Some(new.clone());
        inner.take_role(&vrrp_status);
        inner.ipvs.apply(old, new);
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ipvs
            .stop();
    }
}
