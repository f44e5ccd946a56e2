//! What `build` is asked for ([`BuildOptions`]) and how it can fail ([`BuildError`]).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::compress::{Compression, Effort};
use crate::cpio::{normalize_guest_path, TreeError};
use crate::deb::DebError;
use crate::drivers::{DriverError, ListEntry, Profile};
use crate::elf::{BinaryKindError, ModinfoError};
use crate::layout::{Layout, LayoutError};
use crate::modules::ModuleError;
use crate::program::ProgramError;

/// An extra host file for the initramfs (`--add HOST:GUEST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    pub host: PathBuf,
    /// Absolute guest path.
    pub guest: String,
}

impl std::str::FromStr for ExtraFile {
    type Err = String;

    /// `HOST_PATH:GUEST_PATH`, split at the first `:`; the guest path must be absolute.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, guest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST_PATH:GUEST_PATH"))?;
        if host.is_empty() {
            return Err(format!("{s:?} has an empty HOST_PATH"));
        }
        normalize_guest_path(guest).map_err(|e| e.to_string())?;
        Ok(ExtraFile {
            host: PathBuf::from(host),
            guest: guest.to_string(),
        })
    }
}

/// Everything `build` needs; defaults are resolved by the caller.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    pub kernel_deb: PathBuf,
    pub init: PathBuf,
    pub lbd: PathBuf,
    pub extra_files: Vec<ExtraFile>,
    /// Extra module roots (`--module`), added to the default set with their dependencies.
    pub extra_modules: Vec<String>,
    /// Kernel command line without `initrd=` (added automatically); `None` = default.
    pub cmdline: Option<String>,
    pub compression: Compression,
    /// How hard the encoders work (`--effort fast` for test images).
    pub effort: Effort,
    /// Whether NIC drivers outside the boot set and firmware go in a separate, uncompressed
    /// archive, each file compressed on its own (see [`crate::layout`]).
    pub layout: Layout,
    /// mtime of every initramfs entry (0, or SOURCE_DATE_EPOCH).
    pub mtime: u32,
    pub profile: Profile,
    /// The NIC driver list (the profile's, or `--nic-drivers`, plus `--nic-driver` entries).
    pub nic_drivers: Vec<ListEntry>,
    /// Firmware packages (.deb) to take requested firmware from.
    pub firmware_debs: Vec<PathBuf>,
    /// Files of operator public keys (`ssh-ed25519 AAAA...` lines): init then applies only
    /// configs signed by one of them.
    pub trusted_keys: Vec<PathBuf>,
    /// Debian packages of BIRD: `bird2` and the library packages of its closure. Empty: the
    /// image carries no BIRD.
    pub bird_debs: Vec<PathBuf>,
    /// Rebuild the kernel's boot stub for an lz4 payload (see [`crate::restub`]); `None`
    /// ships the package's `vmlinuz` as it is.
    pub kernel_stub: Option<KernelStub>,
}

/// Where the boot stub is rebuilt from, and where the result is kept.
#[derive(Debug, Clone)]
pub struct KernelStub {
    /// Debian's `linux-source-X.Y` of the kernel package's version.
    pub source_deb: PathBuf,
    /// The kernel package's Debian version (`6.1.192-3`), which the source's must equal.
    pub kernel_deb_version: String,
    /// Rebuilt images, by the two packages' hashes.
    pub cache_dir: PathBuf,
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("cannot read {what} {path}: {source}")]
    ReadInput {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path} {source}")]
    NotStatic {
        what: String,
        path: PathBuf,
        #[source]
        source: BinaryKindError,
    },
    #[error("{what} {path} is a directory; --add takes single files")]
    IsDirectory { what: String, path: PathBuf },
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error("module {module} in {package}: {source}")]
    Modinfo {
        module: String,
        package: PathBuf,
        #[source]
        source: ModinfoError,
    },
    #[error(
        "module {module} was built for kernel {vermagic:?}, but the package's kernel is {version}"
    )]
    WrongKernel {
        module: String,
        vermagic: String,
        version: String,
    },
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error("trusted keys: {0}")]
    TrustedKeys(#[from] lbd::trust::TrustError),
    #[error("{source}{}", cloud_hint(.kernel))]
    Driver {
        kernel: String,
        #[source]
        source: DriverError,
    },
    #[error("rebuilding the kernel's boot stub: {0}")]
    Restub(#[from] crate::restub::RestubError),
    #[error("BIRD: {0}")]
    Bird(#[from] ProgramError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("invalid kernel command line: {0}")]
    Cmdline(String),
    #[error("refusing to replace {path}: {reason}")]
    OutputInUse { path: PathBuf, reason: &'static str },
    #[error("cannot write output {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {format}-compress the initramfs: {source}")]
    Compress {
        format: &'static str,
        #[source]
        source: io::Error,
    },
}

fn cloud_hint(kernel: &str) -> String {
    if Profile::Cloud.matches_kernel(kernel) {
        format!(" (kernel {kernel} is the cloud flavour, which has only virtual NIC drivers: build from the generic kernel package, or pass --profile cloud)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_spec_parsing() {
        let spec: ExtraFile = "/usr/sbin/ipvsadm:/sbin/ipvsadm".parse().unwrap();
        assert_eq!(spec.host, PathBuf::from("/usr/sbin/ipvsadm"));
        assert_eq!(spec.guest, "/sbin/ipvsadm");
        assert!("/usr/sbin/ipvsadm".parse::<ExtraFile>().is_err());
        assert!("/x:relative".parse::<ExtraFile>().is_err());
        assert!(":/x".parse::<ExtraFile>().is_err());
        assert!("/x:/a/../b".parse::<ExtraFile>().is_err());
    }
}
