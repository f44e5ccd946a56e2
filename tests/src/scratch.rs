//! Scratch directories for a test's files (configs, web roots, logs), removed on drop.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory under the system temp dir named `lbt-<tag>-…`, readable by everyone (servers
/// such as in.tftpd or nginx workers drop to an unprivileged user) and removed on drop, also
/// when the test fails.
#[derive(Debug)]
pub struct ScratchDir(tempfile::TempDir);

impl ScratchDir {
    /// Creates the directory; panics (a test precondition) if the temp dir is not writable.
    pub fn new(tag: &str) -> Self {
        Self::try_new(tag).unwrap_or_else(|e| panic!("cannot create a scratch directory: {e}"))
    }

    fn try_new(tag: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lbt-{tag}-"))
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(Self(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `name` (which may contain `/`; missing directories are made), readable by
    /// everyone, and returns its path. Panics if it cannot.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        let written = (|| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::write(&path, contents)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        })();
        written.unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_world_readable_and_removed_with_the_dir() {
        let dir = ScratchDir::new("unit");
        let root = dir.path().to_owned();
        let file = dir.write("a/b.txt", "hello");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o755);
        assert_eq!(mode(&root.join("a")), 0o755);
        assert_eq!(mode(&file), 0o644);
        drop(dir);
        assert!(!root.exists());
    }
}
