//! The early filesystems a PID 1 must mount itself: nothing else will.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use std::path::Path;

/// One mount of the early set.
struct Early {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const EARLY: &[Early] = &[
    Early {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
    },
    Early {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
    },
    Early {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    Early {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("mode=0620,ptmxmode=0666"),
    },
    Early {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777"),
    },
    Early {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=0755,size=25%"),
    },
    Early {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=1777,size=25%"),
    },
];

/// A mount that failed, with its cause.
#[derive(Debug)]
pub struct MountError {
    pub target: &'static str,
    pub errno: Errno,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mount {}: {}", self.target, self.errno.desc())
    }
}

/// Mounts proc, sys, devtmpfs, devpts, /dev/shm, /run and /tmp. Already-mounted targets
/// (EBUSY) are fine; every other failure is returned, and the rest are still attempted.
pub fn mount_early() -> Vec<MountError> {
    let mut errors = Vec::new();
    for m in EARLY {
        let target = Path::new(m.target);
        if let Err(e) = std::fs::create_dir_all(target) {
            errors.push(MountError {
                target: m.target,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            });
            continue;
        }
        match mount(Some(m.source), target, Some(m.fstype), m.flags, m.data) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(errno) => errors.push(MountError {
                target: m.target,
                errno,
            }),
        }
    }
    // Conventional links that programs expect once /proc and /dev are up.
    for (link, to) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(to, link);
    }
    errors
}
