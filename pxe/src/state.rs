//! What the HTTP and TFTP servers share: the current [`Site`] (swapped whole on reload) and
//! the served directories.

use crate::files::FileCache;
use crate::site::Site;
use std::sync::{Arc, RwLock};

/// Shared server state.
#[derive(Debug)]
pub struct Shared {
    site: RwLock<Arc<Site>>,
    /// The image directory (`/image/...` over HTTP).
    pub image: FileCache,
    /// The TFTP root (iPXE binaries), if any.
    pub tftp_root: Option<FileCache>,
    /// Detached signatures (`--signatures`, written by `pxe sign`), if any.
    pub signatures: Option<FileCache>,
}

impl Shared {
    pub fn new(site: Site, image: FileCache, tftp_root: Option<FileCache>) -> Shared {
        Shared {
            site: RwLock::new(Arc::new(site)),
            image,
            tftp_root,
            signatures: None,
        }
    }

    /// Serves detached signatures from `dir`.
    pub fn with_signatures(mut self, dir: FileCache) -> Shared {
        self.signatures = Some(dir);
        self
    }

    /// The current site; requests work on one snapshot from start to end.
    pub fn site(&self) -> Arc<Site> {
        self.site.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts a new site in place for the next requests.
    pub fn set_site(&self, site: Site) {
        *self.site.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(site);
    }
}
