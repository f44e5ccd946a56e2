//! Files served from a directory (the image, the TFTP root), held in memory with their
//! validators. A file is re-read when its size, mtime, ctime or inode changes, so a rebuilt
//! image is picked up on the next request without a restart.

use crate::conditional::Validators;
use crate::safepath::{self, PathError};
use bytes::Bytes;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// Larger files are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// A file's content and validators.
#[derive(Debug)]
pub struct CachedFile {
    pub path: PathBuf,
    pub body: Bytes,
    pub validators: Validators,
    key: FileKey,
}

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileKey {
    fn of(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {len} bytes; files over {MAX_FILE_BYTES} bytes are not served")]
    TooLarge { path: PathBuf, len: u64 },
}

/// A served directory.
#[derive(Debug)]
pub struct FileCache {
    root: PathBuf,
    entries: RwLock<HashMap<PathBuf, Arc<CachedFile>>>,
    /// One load at a time: 64 clients asking for a changed initramfs read it once.
    loading: tokio::sync::Mutex<()>,
}

impl FileCache {
    /// Serves `root` (which must exist; it is canonicalized).
    pub fn new(root: &Path) -> std::io::Result<FileCache> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(FileCache {
            root,
            entries: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file named by the checked path words `words` (see [`safepath::clean`]).
    pub async fn get(&self, words: &[String]) -> Result<Arc<CachedFile>, FileError> {
        let path = safepath::resolve(&self.root, words)?;
        let key = self.stat(&path)?;
        if let Some(hit) = self.cached(&path, key) {
            return Ok(hit);
        }
        let _guard = self.loading.lock().await;
        let key = self.stat(&path)?;
        if let Some(hit) = self.cached(&path, key) {
            return Ok(hit);
        }
        if key.len > MAX_FILE_BYTES {
            return Err(FileError::TooLarge { path, len: key.len });
        }
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || -> std::io::Result<CachedFile> {
            let file = std::fs::File::open(&p)?;
            let meta = file.metadata()?;
            let mut body = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_FILE_BYTES), &mut body)?;
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Ok(CachedFile {
                validators: Validators::of(&body, modified),
                body: Bytes::from(body),
                key: FileKey::of(&meta),
                path: p,
            })
        })
        .await
        .map_err(|e| FileError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| FileError::Io {
            path: path.clone(),
            source,
        })?;
        let loaded = Arc::new(loaded);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path, loaded.clone());
        Ok(loaded)
    }

    fn stat(&self, path: &Path) -> Result<FileKey, FileError> {
        std::fs::metadata(path)
            .map(|m| FileKey::of(&m))
            .map_err(|source| FileError::Io {
                path: path.to_path_buf(),
                source,
            })
    }

    fn cached(&self, path: &Path, key: FileKey) -> Option<Arc<CachedFile>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(path).filter(|f| f.key == key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_once_and_again_after_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "one").unwrap();
        let cache = FileCache::new(dir.path()).unwrap();
        let w = vec!["f".to_string()];
        let a = cache.get(&w).await.unwrap();
        let b = cache.get(&w).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "served from memory");
        assert_eq!(&a.body[..], b"one");
        // Replaced by rename, as image builds do: a new inode.
        std::fs::write(dir.path().join("f.new"), "two!").unwrap();
        std::fs::rename(dir.path().join("f.new"), dir.path().join("f")).unwrap();
        let c = cache.get(&w).await.unwrap();
        assert_eq!(&c.body[..], b"two!");
        assert_ne!(c.validators.etag, a.validators.etag);
        let e = cache.get(&["missing".to_string()]).await.unwrap_err();
        assert!(
            matches!(e, FileError::Path(PathError::NotFound { .. })),
            "{e}"
        );
    }
}
