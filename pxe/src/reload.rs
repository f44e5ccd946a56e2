//! Watching the sources: the inventory, the template and the image's `manifest.json` are read
//! every poll interval (and on SIGHUP); when any content changed, the site is rebuilt and
//! swapped in, and what changed or is wrong is logged with file:line:col.
//!
//! Contents are compared, not mtimes: two saves within one mtime tick are still seen, and a
//! touch without an edit rebuilds nothing. The files are small; reading them every couple of
//! seconds costs nothing.

use crate::ipxe::{self, BootParams};
use crate::site::{Report, Site, SourceText};
use crate::state::Shared;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{error, info, warn};

/// Inventory and template are refused above this size (they are text files of a few KiB).
pub const MAX_SOURCE_BYTES: u64 = 4 << 20;

/// Where the site comes from.
#[derive(Clone, Debug)]
pub struct Sources {
    pub inventory: PathBuf,
    pub template: PathBuf,
    pub image: PathBuf,
    /// `http://ADDR:PORT` the nodes use.
    pub base_url: String,
}

/// Reads the sources and rebuilds the site when they change.
#[derive(Debug)]
pub struct Loader {
    sources: Sources,
    last: Option<[u8; 32]>,
}

/// A source that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {reason}")]
pub struct ReadError {
    pub path: PathBuf,
    pub reason: String,
}

impl Loader {
    pub fn new(sources: Sources) -> Loader {
        Loader {
            sources,
            last: None,
        }
    }

    /// Reads the sources; `Ok(None)` when nothing changed since the last call.
    pub fn poll(&mut self, prev: &Site) -> Result<Option<(Site, Report)>, ReadError> {
        let inventory = read_source(&self.sources.inventory)?;
        let template = read_source(&self.sources.template)?;
        let manifest_path = self.sources.image.join("manifest.json");
        let manifest = std::fs::read_to_string(&manifest_path).ok();
        let mut h = Sha256::new();
        for part in [
            inventory.text.as_bytes(),
            template.text.as_bytes(),
            manifest.as_deref().unwrap_or("").as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let digest: [u8; 32] = h.finalize().into();
        if self.last == Some(digest) {
            return Ok(None);
        }
        self.last = Some(digest);
        let image_cmdline = manifest
            .as_deref()
            .and_then(ipxe::image_cmdline_from_manifest)
            .unwrap_or_else(|| ipxe::DEFAULT_IMAGE_CMDLINE.to_string());
        let image_modified = std::fs::metadata(&manifest_path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // The boot cmdline and console are part of the inventory; an unparsable inventory
        // keeps the old ones.
        let (boot_cmdline, boot_console) =
            match crate::inventory::parse(&inventory.name, &inventory.text) {
                Ok(i) => (i.boot_cmdline, i.boot_console),
                Err(_) => (
                    prev.params.boot_cmdline.clone(),
                    prev.params.boot_console.clone(),
                ),
            };
        let params = BootParams {
            base_url: self.sources.base_url.clone(),
            image_cmdline,
            boot_cmdline,
            boot_console,
        };
        Ok(Some(Site::build(
            prev,
            &inventory,
            &template,
            params,
            image_modified,
        )))
    }
}

fn read_source(path: &Path) -> Result<SourceText, ReadError> {
    let err = |reason: String| ReadError {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(err(format!(
            "{} bytes is too large for a source file (limit {MAX_SOURCE_BYTES})",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    Ok(SourceText {
        name: path.display().to_string(),
        text,
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    })
}

/// Logs a build's report: problems as errors (one line per finding, file:line:col first),
/// changes as info, config warnings as warnings.
pub fn log_report(report: &Report) {
    for p in &report.problems {
        for line in &p.lines {
            error!(scope = %p.scope, "{line}");
        }
        error!(scope = %p.scope, "{}", p.consequence);
    }
    for w in &report.warnings {
        warn!("{w}");
    }
    for c in &report.changes {
        info!("{c}");
    }
}

/// Polls every `every` and on SIGHUP, forever.
pub async fn watch(shared: Arc<Shared>, mut loader: Loader, every: Duration) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("no SIGHUP reload: {e}");
            None
        }
    };
    let mut last_read_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = async {
                match hup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => info!("SIGHUP: reloading"),
        }
        match loader.poll(&shared.site()) {
            Ok(Some((site, report))) => {
                last_read_error = None;
                log_report(&report);
                shared.set_site(site);
                info!("sources reloaded");
            }
            Ok(None) => last_read_error = None,
            Err(e) => {
                // An editor replacing the file, or a real problem: say it once.
                let text = e.to_string();
                if last_read_error.as_deref() != Some(&text) {
                    error!("{text}; serving what was loaded before");
                    last_read_error = Some(text);
                }
            }
        }
    }
}
