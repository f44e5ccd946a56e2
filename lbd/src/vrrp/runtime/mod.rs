//! The VRRP runtime and lbd subsystem: a dedicated thread with its own single-threaded tokio
//! runtime (so VRRP timing does not depend on what the rest of lbd is doing, and it can run
//! at real-time priority), fed with configs and health quorum through a channel.
//!
//! ```text
//! Daemon ──apply(config)──▶ VrrpSubsystem ──Command──▶ thread "vrrp": Driver
//!                                 ▲                       │ Router::step(now, Input) → Actions
//!        roles / drops ◀──watch───┘                       ▼
//!                                        raw sockets, rtnetlink, ARP/NA, timers
//! ```
//!
//! What leaves the subsystem as data: [`VrrpSubsystem::status`], a `watch` of the role of
//! every instance and the drop counters. The IPVS connection-sync role is computed from it
//! with [`crate::vrrp::sync::sync_role`] by whoever drives the reconciler (STYLE: the VRRP
//! role is an input to reconcile, never a second path to the kernel).

mod driver;
pub mod pacer;
mod record;
mod rx;
pub mod sock;

use crate::config::Config;
use crate::daemon::Subsystem;
use crate::vrrp::machine::State;
use crate::vrrp::packet::DropReason;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// How long an orderly stop may take (priority-0 adverts, VIP removal).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// What the VRRP subsystem publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// State of each instance by name.
    pub roles: BTreeMap<String, State>,
    /// Priority each instance advertises now: the configured one, lowered by
    /// `quorum_priority_drop` while its services' health quorum is lost.
    pub priorities: BTreeMap<String, u8>,
    /// Dropped packets by reason.
    pub drops: BTreeMap<DropReason, u64>,
}

pub(crate) enum Command {
    Configure(Box<Config>),
    Quorum { instance: String, lost: bool },
    Stop(std::sync::mpsc::Sender<()>),
}

/// Sends health-quorum changes to the VRRP thread (for the health-check subsystem).
#[derive(Clone)]
pub struct QuorumSender(mpsc::UnboundedSender<Command>);

impl QuorumSender {
    /// The services behind `instance` lost (or regained) their quorum.
    pub fn set(&self, instance: &str, lost: bool) {
        let _ = self.0.send(Command::Quorum {
            instance: instance.to_string(),
            lost,
        });
    }
}

/// lbd's VRRP subsystem.
pub struct VrrpSubsystem {
    cmd: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    thread: Option<std::thread::JoinHandle<()>>,
    configured: bool,
}

impl Default for VrrpSubsystem {
    fn default() -> Self {
        Self::new()
    }
}

/// Puts the calling thread (the VRRP thread) at SCHED_FIFO `priority`, or back to the normal
/// scheduler for 0; `[node] vrrp_realtime_priority`, applied at every config.
pub(crate) fn set_realtime(priority: u8) {
    let (policy, prio) = if priority == 0 {
        (libc::SCHED_OTHER, 0)
    } else {
        (libc::SCHED_FIFO, i32::from(priority))
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: pid 0 is the calling thread; param is a valid sched_param.
    let r = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if r != 0 {
        warn!(
            "vrrp: cannot run at real-time priority {priority}: {}; timers may slip under load",
            std::io::Error::last_os_error()
        );
    }
}

impl VrrpSubsystem {
    /// Starts the VRRP thread (idle until the first config).
    pub fn new() -> VrrpSubsystem {
        let (cmd, mut rx) = mpsc::unbounded_channel::<Command>();
        let (status_tx, status) = watch::channel(Status::default());
        let thread = std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || {
                set_realtime(crate::config::Node::DEFAULT_VRRP_REALTIME_PRIORITY);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        error!("vrrp: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    match driver::Driver::new(status_tx) {
                        Ok(d) => d.run(rx).await,
                        Err(e) => {
                            error!("vrrp: {e}; VRRP is not running");
                            // Answer stop requests so lbd does not wait for us.
                            while let Some(c) = rx.recv().await {
                                if let Command::Stop(done) = c {
                                    let _ = done.send(());
                                    return;
                                }
                            }
                        }
                    }
                });
            })
            .map_err(|e| error!("vrrp: cannot start its thread: {e}"))
            .ok();
        VrrpSubsystem {
            cmd,
            status,
            thread,
            configured: false,
        }
    }

    /// Roles and drop counters, updated after every change.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// A handle for the health checks to report quorum per VRRP instance.
    pub fn quorum_sender(&self) -> QuorumSender {
        QuorumSender(self.cmd.clone())
    }
}

impl Subsystem for VrrpSubsystem {
    fn name(&self) -> &'static str {
        "vrrp"
    }

    fn apply(&mut self, _old: Option<&Config>, new: &Config) {
        if new.vrrp_instances.is_empty() && !self.configured {
            return;
        }
        self.configured = true;
        let _ = self.cmd.send(Command::Configure(Box::new(new.clone())));
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.cmd.send(Command::Stop(done_tx)).is_err() {
            return;
        }
        match done_rx.recv_timeout(STOP_TIMEOUT) {
            Ok(()) => {
                let _ = thread.join();
            }
            Err(_) => {
                error!("vrrp: did not stop within {STOP_TIMEOUT:?}; VIPs may be left behind");
                return;
            }
        }
        info!("vrrp: stopped");
    }
}
