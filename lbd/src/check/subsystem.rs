//! The checks as an lbd [`Subsystem`]: the engine runs on its own thread with its own
//! single-threaded tokio runtime (the daemon applies the first config before its runtime
//! exists, and check I/O never competes with the daemon's loop). Configs go in through
//! [`Subsystem::apply`]; results come out as a `watch` channel of [`HealthReport`]s.
//!
//! The thread is created in the caller's network namespace (tests rely on that).

use super::board::HealthReport;
use super::engine::{Command, Engine};
use crate::config::Config;
use crate::daemon::Subsystem;
use crate::liveness::Liveness;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The health-check subsystem.
pub struct CheckSubsystem {
    commands: mpsc::UnboundedSender<Command>,
    health: watch::Receiver<Arc<HealthReport>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckSubsystem {
    /// Starts the check thread (with no checks until the first config).
    pub fn start() -> std::io::Result<CheckSubsystem> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (engine, health) = Engine::new();
        let thread = std::thread::Builder::new()
            .name("lbd-checks".into())
            .spawn(move || runtime.block_on(engine.run(rx)))?;
        Ok(CheckSubsystem {
            commands,
            health,
            thread: Some(thread),
        })
    }

    /// The health reports: the current one, and a notification at every change. This is the
    /// input the reconciler (via [`HealthReport::real_health`] and [`HealthReport::weights`])
    /// and VRRP (via [`HealthReport::quorum_lost`]) take.
    pub fn health(&self) -> watch::Receiver<Arc<HealthReport>> {
        self.health.clone()
    }

    /// Has the check thread beat into `liveness` (see [`crate::liveness`]): a blocked check
    /// thread stops beating.
    pub fn beat_into(&self, liveness: Arc<Liveness>) {
        let _ = self.commands.send(Command::Beat(liveness));
    }

    /// Reports every quorum change per VRRP instance to `sink(instance, lost)` (e.g. the VRRP
    /// subsystem's quorum sender), starting with the losses that already exist.
    pub fn forward_quorum(&self, sink: impl Fn(&str, bool) + Send + 'static) {
        let _ = self.commands.send(Command::ForwardQuorum(Box::new(sink)));
    }
}

impl Subsystem for CheckSubsystem {
    fn name(&self) -> &'static str {
        "checks"
    }

    fn apply(&mut self, _old: Option<&Config>, new: &Config) {
        let _ = self.commands.send(Command::Apply(Arc::new(new.clone())));
    }

    fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CheckSubsystem {
    fn drop(&mut self) {
        self.stop();
    }
}
