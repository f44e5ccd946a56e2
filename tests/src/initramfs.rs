//! Small initramfs archives for test guests (cpio "newc", uncompressed), e.g. busybox with a
//! shell-script `/init`. Building in memory needs no root (device nodes are just entries).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Where busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The start of every [`Initramfs::busybox_script`] `/init`: applet links, the kernel
/// filesystems, and a PATH. Written for busybox `sh` as PID 1.
pub const BUSYBOX_PREAMBLE: &str = "\
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
}

/// An initramfs being assembled. Paths are absolute inside the archive (`/bin/busybox`); parent
/// directories are added automatically (mode 0755).
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// An archive with static busybox from the host (`/bin/busybox`, from busybox-static),
    /// `/dev/console`, and an executable `/init` made of [`BUSYBOX_PREAMBLE`] and `script`.
    /// The script runs as PID 1: it must not exit (end it with `poweroff -f`, `reboot -f`, or a
    /// wait loop), or the kernel panics.
    pub fn busybox_script(script: &str) -> io::Result<Self> {
        let mut fs = Self::new();
        fs.file_from(BUSYBOX, Path::new(BUSYBOX), 0o755)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{BUSYBOX}: {e} (install busybox-static: tools/setup.sh)"),
                )
            })?;
        fs.char_dev("/dev/console", 0o600, 5, 1);
        fs.file("/init", format!("{BUSYBOX_PREAMBLE}{script}"), 0o755);
        Ok(fs)
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.insert(path, Kind::Dir, mode)
    }

    /// Adds a regular file with `data`.
    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.insert(path, Kind::File(data.into()), mode)
    }

    /// Adds a regular file with the contents of the host file `source`.
    pub fn file_from(&mut self, path: &str, source: &Path, mode: u32) -> io::Result<&mut Self> {
        let data = std::fs::read(source)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", source.display())))?;
        Ok(self.file(path, data, mode))
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.insert(path, Kind::Symlink(target.to_owned()), 0o777)
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        self.insert(path, Kind::CharDev { major, minor }, mode)
    }

    /// Adds kernel modules (host `.ko` files) under `dir`, keeping their file names, and returns
    /// their paths inside the archive in the same order (ready for `insmod` lines).
    pub fn modules(&mut self, dir: &str, modules: &[PathBuf]) -> io::Result<Vec<String>> {
        let dir = dir.trim_end_matches('/');
        let mut paths = Vec::with_capacity(modules.len());
        for m in modules {
            let name = m.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad module path {}", m.display()),
                )
            })?;
            let path = format!("{dir}/{name}");
            self.file_from(&path, m, 0o644)?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// Paths in the archive, in archive order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn insert(&mut self, path: &str, kind: Kind, mode: u32) -> &mut Self {
        let path = normalize(path);
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for c in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(c);
            self.entries.entry(parent.clone()).or_insert(Entry {
                kind: Kind::Dir,
                mode: 0o755,
            });
        }
        self.entries.insert(path, Entry { kind, mode });
        self
    }

    /// The archive in cpio "newc" format (what the kernel unpacks), uncompressed.
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Ordered by path, so every directory precedes what it contains ("a" < "a/b").
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (type_bits, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match &entry.kind {
                Kind::Dir => (0o040000, &[], 2, (0, 0)),
                Kind::File(d) => (0o100000, d, 1, (0, 0)),
                Kind::Symlink(t) => (0o120000, t.as_bytes(), 1, (0, 0)),
                Kind::CharDev { major, minor } => (0o020000, &[], 1, (*major, *minor)),
            };
            push_header(
                &mut out,
                ino,
                type_bits | (entry.mode & 0o7777),
                nlink,
                data.len(),
                rdev,
                path,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        push_header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }

    /// Writes the archive to `path`.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.to_newc())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }
}

fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn push_header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let size = u32::try_from(size).expect("initramfs members are smaller than 4 GiB");
    let namesize = u32::try_from(name.len() + 1).expect("short path");
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn header_layout_matches_newc() {
        let mut fs = Initramfs::new();
        fs.file("/a", "xyz", 0o644);
        let bytes = fs.to_newc();
        // 110-byte header + "a\0" = 112 (aligned), then 3 bytes of data padded to 4.
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001"); // ino
        assert_eq!(&bytes[14..22], b"000081a4"); // regular file, 0644
        assert_eq!(&bytes[54..62], b"00000003"); // filesize
        assert_eq!(&bytes[94..102], b"00000002"); // namesize incl. NUL
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..115], b"xyz");
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn parents_are_added_before_children() {
        let mut fs = Initramfs::new();
        fs.file("/lib/modules/x.ko", "", 0o644)
            .symlink("/bin/sh", "busybox");
        let paths: Vec<_> = fs.paths().collect();
        assert_eq!(
            paths,
            ["bin", "bin/sh", "lib", "lib/modules", "lib/modules/x.ko"]
        );
    }

    /// The real `cpio` tool reads what we write: names, types, contents, links, device numbers.
    #[test]
    fn gnu_cpio_extracts_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let mut fs = Initramfs::new();
        fs.file("/init", "#!/bin/sh\necho hi\n", 0o755)
            .file("/etc/odd-size", vec![7u8; 1021], 0o600)
            .symlink("/bin/sh", "busybox")
            .dir("/empty", 0o700)
            .char_dev("/dev/console", 0o600, 5, 1);
        let archive = dir.path().join("initrd.cpio");
        fs.write_to(&archive).unwrap();

        let listing = crate::programs::command("cpio")
            .args(["-itv", "-F"])
            .arg(&archive)
            .output()
            .expect("cpio is installed (tools/setup.sh)");
        assert!(listing.status.success(), "{listing:?}");
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(
            listing.lines().any(|l| l.starts_with("crw-------")
                && l.contains("5,")
                && l.ends_with("dev/console")),
            "{listing}"
        );

        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Device nodes need mknod; extract everything else.
        let status = crate::programs::command("cpio")
            .args(["-id", "--no-absolute-filenames", "-F"])
            .arg(&archive)
            .arg("--nonmatching")
            .arg("dev/console")
            .current_dir(&out)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(out.join("init")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            std::fs::read(out.join("etc/odd-size")).unwrap(),
            vec![7u8; 1021]
        );
        assert_eq!(
            std::fs::read_link(out.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("init"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(out.join("empty").is_dir());
    }
}
