//! The daemon's runtime: owns the current config, reacts to signals, and (later) drives the
//! IPVS reconciler, health checks and VRRP from one place.
//!
//! Reload is validate-then-swap: a refused config is logged with every error and the running
//! one stays. Subsystems see only validated configs, through [`Subsystem::apply`].

use crate::config::{self, Config, Loaded};
use std::path::{Path, PathBuf};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info, warn};

/// A part of lbd that acts on the config (IPVS, checks, VRRP). Called with each new valid
/// config, in order, after the previous one was applied.
pub trait Subsystem: Send {
    fn name(&self) -> &'static str;
    /// Applies `new`; `old` is the config applied before (None at start).
    fn apply(&mut self, old: Option<&Config>, new: &Config);
    /// Orderly stop (e.g. VRRP sends its priority-0 advert).
    fn stop(&mut self) {}
}

pub struct Daemon {
    path: PathBuf,
    current: Loaded,
    subsystems: Vec<Box<dyn Subsystem>>,
}

/// Why the daemon could not start.
#[derive(Debug)]
pub struct StartError(pub config::ConfigError);

impl Daemon {
    /// Loads and validates the config; refuses to start on an invalid one.
    pub fn start(path: &Path, subsystems: Vec<Box<dyn Subsystem>>) -> Result<Daemon, StartError> {
        let current = config::load(path).map_err(StartError)?;
        for w in current.warning_lines() {
            warn!("{w}");
        }
        let mut daemon = Daemon {
            path: path.to_path_buf(),
            current,
            subsystems,
        };
        for s in &mut daemon.subsystems {
            s.apply(None, &daemon.current.config);
            debug!(subsystem = s.name(), version = %short(&daemon.current.config.version), "applied config");
        }
        Ok(daemon)
    }

    pub fn config(&self) -> &Config {
        &self.current.config
    }

    /// Re-reads the config file. Returns whether a new config was applied.
    pub fn reload(&mut self) -> bool {
        match config::load(&self.path) {
            Ok(next) => {
                if next.config.version == self.current.config.version {
                    info!(version = %short(&next.config.version), "reload: config unchanged");
                    return false;
                }
                for w in next.warning_lines() {
                    warn!("{w}");
                }
                for s in &mut self.subsystems {
                    s.apply(Some(&self.current.config), &next.config);
                    debug!(subsystem = s.name(), version = %short(&next.config.version), "applied config");
                }
                info!(
                    previous = %short(&self.current.config.version),
                    "reloaded config {}: {}",
                    self.path.display(),
                    next.config.summary()
                );
                self.current = next;
                true
            }
            Err(e) => {
                error!(
                    errors = e.error_count(),
                    keeping = %short(&self.current.config.version),
                    "refused new config {}; keeping the running one",
                    self.path.display()
                );
                for line in e.one_line_each() {
                    error!("{line}");
                }
                false
            }
        }
    }

    /// Runs until SIGTERM/SIGINT; SIGHUP reloads.
    pub async fn run(mut self) -> std::io::Result<()> {
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        info!(
            pid = std::process::id(),
            "lbd running with {}: {}",
            self.path.display(),
            self.current.config.summary()
        );
        loop {
            tokio::select! {
                _ = hup.recv() => { self.reload(); }
                _ = term.recv() => { info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { info!("SIGINT: stopping"); break; }
            }
        }
        for s in self.subsystems.iter_mut().rev() {
            s.stop();
        }
        info!("lbd stopped");
        Ok(())
    }
}

fn short(version: &str) -> &str {
    &version[..12.min(version.len())]
}
