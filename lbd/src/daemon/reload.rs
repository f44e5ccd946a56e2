//! The reload path: validate-then-swap, whoever asks. The file is read and validated on a
//! blocking worker (a large config must not stall the API); only a valid, changed config is
//! applied, and every outcome is kept for the API to show.

use super::{short, Daemon};
use crate::config;
use serde::Serialize;
use std::time::{Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// Who asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadSource {
    /// SIGHUP: init after it fetched a changed config, or an operator with `kill -HUP`.
    Signal,
    /// The control API's `POST /reload` (`lbctl reload`).
    Api,
}

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum ReloadResult {
    /// A new config is running.
    Reloaded { version: String, previous: String },
    /// The file holds the config that runs already.
    Unchanged { version: String },
    /// The file does not validate (or cannot be read); the running config stays.
    Refused {
        errors: Vec<String>,
        running: String,
    },
}

/// One reload: who asked, when, what came of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReloadOutcome {
    pub source: ReloadSource,
    #[serde(flatten)]
    pub result: ReloadResult,
    /// Seconds since the epoch.
    pub at: f64,
    /// How long reading, validating and applying took.
    pub millis: f64,
    /// What validation looked at: the whole file, or only the services an edit touched
    /// (absent when the file could not be read).
    pub validated: Option<config::Validated>,
}

impl Daemon {
    /// Re-reads the config file and applies it if it validates; the one path every reload
    /// takes.
    pub async fn reload(&mut self, source: ReloadSource) -> ReloadOutcome {
        let started = Instant::now();
        let path = self.path.clone();
        let mut loader = self.loader.take().unwrap_or_default();
        let worker = tokio::task::spawn_blocking(move || {
            let loaded = loader.load(&path);
            (loader, loaded)
        });
        let (loaded, validated) = match worker.await {
            Ok((loader, loaded)) => {
                let validated = loader.last_validated();
                debug!(
                    ?validated,
                    ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
                    "reload: read and validated"
                );
                self.loader = Some(loader);
                (loaded, validated)
            }
            Err(e) => {
                error!("reload: the validation worker failed: {e}");
                let result = ReloadResult::Refused {
                    errors: vec![format!("the validation worker failed: {e}")],
                    running: self.current.config.version.to_string(),
                };
                return self.finish_reload(source, result, started, None);
            }
        };
        let result = match loaded {
            Ok(next) if next.config.version == self.current.config.version => {
                info!(version = %short(&next.config.version), ?source, "reload: config unchanged");
                ReloadResult::Unchanged {
                    version: next.config.version.to_string(),
                }
            }
            Ok(next) => {
                for w in next.warning_lines() {
                    warn!("{w}");
                }
                let previous = self.current.config.version.clone();
                let old = std::mem::replace(&mut self.current, next);
                let new = self.current.config.clone();
                self.apply(Some(&old.config), &new).await;
                info!(
                    previous = %short(&previous),
                    ?source,
                    ?validated,
                    ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                    "reloaded config {}: {}",
                    self.path.display(),
                    new.summary()
                );
                ReloadResult::Reloaded {
                    version: new.version.to_string(),
                    previous: previous.to_string(),
                }
            }
            Err(e) => {
                error!(
                    errors = e.error_count(),
                    keeping = %short(&self.current.config.version),
                    ?source,
                    "refused new config {}; keeping the running one",
                    self.path.display()
                );
                let errors = e.one_line_each();
                for line in &errors {
                    error!("{line}");
                }
                ReloadResult::Refused {
                    errors,
                    running: self.current.config.version.to_string(),
                }
            }
        };
        self.finish_reload(source, result, started, validated)
    }

    fn finish_reload(
        &mut self,
        source: ReloadSource,
        result: ReloadResult,
        started: Instant,
        validated: Option<config::Validated>,
    ) -> ReloadOutcome {
        let outcome = ReloadOutcome {
            source,
            result,
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            millis: started.elapsed().as_secs_f64() * 1000.0,
            validated,
        };
        self.last_reload = Some(outcome.clone());
        self.publish();
        outcome
    }
}
