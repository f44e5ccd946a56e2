//! The initramfs file tree and its "newc" cpio encoding (the format the kernel unpacks).
//!
//! [`Tree`] holds guest paths in sorted order (parents always sort before their children), and
//! [`Tree::write_cpio`] emits them with deterministic inode numbers, uid/gid 0 and one fixed
//! mtime, so two builds from the same inputs are byte-identical.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use thiserror::Error;

/// File-type bits of `st_mode` as the kernel's initramfs unpacker expects them.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Magic of the "new ASCII" (SVR4, no CRC) cpio format.
const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Fixed size of a newc header: magic + 13 fields of 8 hex digits.
const NEWC_HEADER_LEN: usize = 6 + 13 * 8;
const TRAILER_NAME: &str = "TRAILER!!!";

/// What a path in the tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// Regular file contents (shared, so the same bytes can also be hashed for the manifest).
    File(Arc<[u8]>),
    /// Character device node `major:minor`.
    CharDev {
        major: u32,
        minor: u32,
    },
    Symlink(String),
}

/// One entry: kind plus permission bits (`0o7777` mask; the type bits come from the kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub perm: u32,
}

/// Errors from adding paths to a [`Tree`].
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("guest path {path:?} is invalid: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("guest path {path:?} is already in the image (as {existing})")]
    Duplicate {
        path: String,
        existing: &'static str,
    },
    #[error("cannot put {path:?} under {parent:?}: that is not a directory in the image")]
    ParentNotDir { path: String, parent: String },
    #[error("file {path:?} is {size} bytes; newc cpio entries are limited to 4 GiB")]
    TooLarge { path: String, size: usize },
}

/// A sorted set of guest paths (stored without the leading `/`).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl EntryKind {
    fn describe(&self) -> &'static str {
        match self {
            EntryKind::Dir => "a directory",
            EntryKind::File(_) => "a file",
            EntryKind::CharDev { .. } => "a device node",
            EntryKind::Symlink(_) => "a symlink",
        }
    }

    fn type_bits(&self) -> u32 {
        match self {
            EntryKind::Dir => S_IFDIR,
            EntryKind::File(_) => S_IFREG,
            EntryKind::CharDev { .. } => S_IFCHR,
            EntryKind::Symlink(_) => S_IFLNK,
        }
    }
}

/// Checks an absolute guest path and returns it without the leading `/`.
pub fn normalize_guest_path(path: &str) -> Result<String, TreeError> {
    let invalid = |reason| TreeError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let rel = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("must be absolute (start with /)"))?;
    if rel.is_empty() {
        return Err(invalid("is the root directory"));
    }
    if rel.ends_with('/') {
        return Err(invalid("must not end with /"));
    }
    for component in rel.split('/') {
        match component {
            "" => return Err(invalid("has an empty component (//)")),
            "." | ".." => return Err(invalid("must not contain . or .. components")),
            _ => {}
        }
    }
    if rel.bytes().any(|b| b == 0 || b == b'\n') {
        return Err(invalid("must not contain NUL or newline"));
    }
    Ok(rel.to_string())
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory; an existing directory at `path` is kept (its mode is not changed).
    pub fn add_dir(&mut self, path: &str, perm: u32) -> Result<(), TreeError> {
        let rel = normalize_guest_path(path)?;
        self.ensure_parents(&rel)?;
        match self.entries.get(&rel) {
            Some(Entry {
                kind: EntryKind::Dir,
                ..
            }) => Ok(()),
            Some(other) => Err(TreeError::Duplicate {
                path: path.to_string(),
                existing: other.kind.describe(),
            }),
            None => {
                self.entries.insert(
                    rel,
                    Entry {
                        kind: EntryKind::Dir,
                        perm,
                    },
                );
                Ok(())
            }
        }
    }

    /// Adds a regular file, creating missing parent directories (0755).
    pub fn add_file(
        &mut self,
        path: &str,
        perm: u32,
        data: impl Into<Arc<[u8]>>,
    ) -> Result<(), TreeError> {
        let data = data.into();
        if u32::try_from(data.len()).is_err() {
            return Err(TreeError::TooLarge {
                path: path.to_string(),
                size: data.len(),
            });
        }
        self.insert_new(path, EntryKind::File(data), perm)
    }

    /// Adds a character device node.
    pub fn add_char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), TreeError> {
        self.insert_new(path, EntryKind::CharDev { major, minor }, perm)
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), TreeError> {
        self.insert_new(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    fn insert_new(&mut self, path: &str, kind: EntryKind, perm: u32) -> Result<(), TreeError> {
        let rel = normalize_guest_path(path)?;
        self.ensure_parents(&rel)?;
        if let Some(existing) = self.entries.get(&rel) {
            return Err(TreeError::Duplicate {
                path: path.to_string(),
                existing: existing.kind.describe(),
            });
        }
        self.entries.insert(rel, Entry { kind, perm });
        Ok(())
    }

    fn ensure_parents(&mut self, rel: &str) -> Result<(), TreeError> {
        let mut end = 0;
        while let Some(pos) = rel[end..].find('/') {
            let parent = &rel[..end + pos];
            match self.entries.get(parent) {
                Some(Entry {
                    kind: EntryKind::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(TreeError::ParentNotDir {
                        path: format!("/{rel}"),
                        parent: format!("/{parent}"),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Entry {
                            kind: EntryKind::Dir,
                            perm: 0o755,
                        },
                    );
                }
            }
            end += pos + 1;
        }
        Ok(())
    }

    /// Looks up a guest path (absolute, e.g. `/init`).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path.strip_prefix('/').unwrap_or(path))
    }

    /// All entries in archive order, as (absolute guest path, entry).
    pub fn iter(&self) -> impl Iterator<Item = (String, &Entry)> {
        self.entries.iter().map(|(k, v)| (format!("/{k}"), v))
    }

    /// Writes the whole tree as a newc cpio archive (with trailer) and returns the bytes written.
    ///
    /// Inode numbers are assigned 1, 2, 3... in path order; every entry has uid/gid 0 and the
    /// given `mtime` (seconds since the epoch).
    pub fn write_cpio<W: Write>(&self, out: W, mtime: u32) -> io::Result<u64> {
        let mut writer = CpioWriter::new(out, mtime);
        for (path, entry) in &self.entries {
            writer.append(path, entry)?;
        }
        let (_, written) = writer.finish()?;
        Ok(written)
    }
}

/// Streaming newc writer: entries in the order given, then a trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    mtime: u32,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W, mtime: u32) -> Self {
        Self {
            out,
            mtime,
            next_ino: 1,
            written: 0,
        }
    }

    /// Appends one entry; `name` is the archive name (no leading `/`).
    pub fn append(&mut self, name: &str, entry: &Entry) -> io::Result<()> {
        let (data, rdev): (&[u8], (u32, u32)) = match &entry.kind {
            EntryKind::Dir => (&[], (0, 0)),
            EntryKind::File(bytes) => (bytes, (0, 0)),
            EntryKind::CharDev { major, minor } => (&[], (*major, *minor)),
            EntryKind::Symlink(target) => (target.as_bytes(), (0, 0)),
        };
        let header = Header {
            ino: self.next_ino,
            mode: entry.kind.type_bits() | (entry.perm & 0o7777),
            nlink: if entry.kind == EntryKind::Dir { 2 } else { 1 },
            mtime: self.mtime,
            filesize: len_u32(data.len())?,
            rdev,
        };
        self.next_ino += 1;
        self.emit(&header, name, data)
    }

    /// Writes the `TRAILER!!!` entry and returns the writer and the total bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev: (0, 0),
        };
        self.emit(&trailer, TRAILER_NAME, &[])?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn emit(&mut self, header: &Header, name: &str, data: &[u8]) -> io::Result<()> {
        let namesize = len_u32(name.len() + 1)?;
        let encoded = header.encode(namesize);
        self.write(&encoded)?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// newc aligns both the name (after the header) and the data to 4 bytes.
    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % 4) as usize;
        if rem != 0 {
            self.write(&[0u8; 3][..4 - rem])?;
        }
        Ok(())
    }
}

fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpio entry of {len} bytes exceeds the newc limit of 4 GiB"),
        )
    })
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdev: (u32, u32),
}

impl Header {
    fn encode(&self, namesize: u32) -> [u8; NEWC_HEADER_LEN] {
        let fields = [
            self.ino,
            self.mode,
            0, // uid
            0, // gid
            self.nlink,
            self.mtime,
            self.filesize,
            0, // devmajor of the file system holding the entry
            0, // devminor
            self.rdev.0,
            self.rdev.1,
            namesize,
            0, // check (only used by the CRC variant 070702)
        ];
        let mut buf = [0u8; NEWC_HEADER_LEN];
        buf[..6].copy_from_slice(NEWC_MAGIC);
        for (i, field) in fields.iter().enumerate() {
            let hex = format!("{field:08X}");
            buf[6 + i * 8..6 + (i + 1) * 8].copy_from_slice(hex.as_bytes());
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Stdio};

    fn sample_tree() -> Tree {
        let mut tree = Tree::new();
        tree.add_dir("/dev", 0o755).unwrap();
        tree.add_char_dev("/dev/console", 0o600, 5, 1).unwrap();
        tree.add_char_dev("/dev/null", 0o666, 1, 3).unwrap();
        tree.add_file("/init", 0o755, b"#!/bin/sh\necho hi\n".to_vec())
            .unwrap();
        // Lengths 0..=5 exercise every padding remainder of name and data.
        for len in 0..=5usize {
            let data = vec![b'a' + len as u8; len];
            tree.add_file(&format!("/etc/lb/f{len}{}", "x".repeat(len)), 0o644, data)
                .unwrap();
        }
        tree.add_symlink("/bin/sh", "busybox").unwrap();
        tree
    }

    fn archive(tree: &Tree) -> Vec<u8> {
        let mut buf = Vec::new();
        let written = tree.write_cpio(&mut buf, 0).unwrap();
        assert_eq!(written as usize, buf.len());
        buf
    }

    fn gnu_cpio(args: &[&str], input: &[u8], dir: &Path) -> String {
        let mut child = Command::new("cpio")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("GNU cpio must be installed (apt-get install cpio) for this test");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cpio {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn header_layout_matches_newc() {
        let mut buf = Vec::new();
        let mut w = CpioWriter::new(&mut buf, 0x1234);
        let entry = Entry {
            kind: EntryKind::File(Arc::from(&b"abcde"[..])),
            perm: 0o755,
        };
        w.append("init", &entry).unwrap();
        let (_, n) = w.finish().unwrap();
        let expected_header = "070701\
            00000001\
            000081ED\
            00000000\
            00000000\
            00000001\
            00001234\
            00000005\
            00000000\
            00000000\
            00000000\
            00000000\
            00000005\
            00000000";
        assert_eq!(&buf[..110], expected_header.as_bytes());
        // 110 + "init\0" = 115 -> padded to 116; data 5 -> padded to 8.
        assert_eq!(&buf[110..116], b"init\0\0");
        assert_eq!(&buf[116..124], b"abcde\0\0\0");
        assert_eq!(&buf[124..130], b"070701");
        assert!(buf.ends_with(b"TRAILER!!!\0\0\0\0"));
        assert_eq!(n as usize, buf.len());
        assert_eq!(buf.len() % 4, 0);
    }

    #[test]
    fn gnu_cpio_lists_every_entry_in_order() {
        let tree = sample_tree();
        let buf = archive(&tree);
        let dir = tempfile::tempdir().unwrap();
        let listing = gnu_cpio(&["-t", "--quiet"], &buf, dir.path());
        let names: Vec<&str> = listing.lines().collect();
        let expected: Vec<String> = tree
            .iter()
            .map(|(p, _)| p.trim_start_matches('/').to_string())
            .collect();
        assert_eq!(names, expected);
        assert!(names.contains(&"dev/console"));
        assert!(names.contains(&"etc/lb")); // parent created implicitly
    }

    #[test]
    fn gnu_cpio_extracts_contents_modes_and_devices() {
        let tree = sample_tree();
        let buf = archive(&tree);
        let dir = tempfile::tempdir().unwrap();
        gnu_cpio(
            &[
                "-i",
                "--quiet",
                "--make-directories",
                "--no-absolute-filenames",
            ],
            &buf,
            dir.path(),
        );
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        for (path, entry) in tree.iter() {
            let host = dir.path().join(path.trim_start_matches('/'));
            let meta = std::fs::symlink_metadata(&host).unwrap();
            match &entry.kind {
                EntryKind::File(data) => {
                    assert_eq!(std::fs::read(&host).unwrap(), &data[..], "{path}");
                    assert_eq!(meta.permissions().mode() & 0o7777, entry.perm, "{path}");
                }
                EntryKind::Dir => assert!(meta.is_dir(), "{path}"),
                EntryKind::Symlink(target) => {
                    assert_eq!(std::fs::read_link(&host).unwrap(), Path::new(target))
                }
                EntryKind::CharDev { major, minor } => {
                    assert!(meta.file_type().is_char_device(), "{path}");
                    let rdev = meta.rdev();
                    let (maj, min) = (
                        ((rdev >> 8) & 0xfff) as u32,
                        ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as u32,
                    );
                    assert_eq!((maj, min), (*major, *minor), "{path}");
                    assert_eq!(meta.permissions().mode() & 0o7777, entry.perm, "{path}");
                }
            }
        }
        assert_eq!(
            std::fs::read(dir.path().join("etc/lb/f3xxx")).unwrap(),
            b"ddd"
        );
    }

    #[test]
    fn output_is_deterministic_and_insertion_order_free() {
        let a = sample_tree();
        let mut b = Tree::new();
        b.add_symlink("/bin/sh", "busybox").unwrap();
        for (path, entry) in a.iter().collect::<Vec<_>>().into_iter().rev() {
            match &entry.kind {
                EntryKind::File(d) => b.add_file(&path, entry.perm, d.clone()).unwrap(),
                EntryKind::Dir => b.add_dir(&path, entry.perm).unwrap(),
                EntryKind::CharDev { major, minor } => {
                    b.add_char_dev(&path, entry.perm, *major, *minor).unwrap()
                }
                EntryKind::Symlink(_) => {}
            }
        }
        assert_eq!(archive(&a), archive(&b));
    }

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        let mut tree = Tree::new();
        tree.add_file("/init", 0o755, b"x".to_vec()).unwrap();
        assert!(matches!(
            tree.add_file("/init", 0o755, b"y".to_vec()),
            Err(TreeError::Duplicate { .. })
        ));
        assert!(matches!(
            tree.add_file("/init/x", 0o644, b"y".to_vec()),
            Err(TreeError::ParentNotDir { .. })
        ));
        assert!(matches!(
            tree.add_dir("/init", 0o755),
            Err(TreeError::Duplicate { .. })
        ));
        for bad in ["init", "/", "/a//b", "/a/../b", "/a/./b", "/a/"] {
            assert!(
                matches!(
                    tree.add_file(bad, 0o644, b"".to_vec()),
                    Err(TreeError::InvalidPath { .. })
                ),
                "{bad}"
            );
        }
        // Adding an existing directory again is fine.
        tree.add_dir("/etc", 0o755).unwrap();
        tree.add_dir("/etc", 0o700).unwrap();
        assert_eq!(tree.get("/etc").unwrap().perm, 0o755);
    }
}
