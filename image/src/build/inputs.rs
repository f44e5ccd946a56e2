//! Reading what the user gave (binaries, `--add` files, keys, command line), and the hash of
//! all inputs that tells whether a previous image can stay.

use std::fs;
use std::path::{Path, PathBuf};

use lbd::trust::PublicKey;

use super::boot::full_cmdline;
use super::{BuildError, BuildOptions, ExtraFile};
use crate::deb::DebError;
use crate::elf;
use crate::manifest;

/// The host files that go into the initramfs as they are.
pub(super) struct HostFiles<'a> {
    pub(super) init: Vec<u8>,
    pub(super) lbd: Vec<u8>,
    /// The `--add` files, with their contents and host permissions.
    pub(super) extra: Vec<(&'a ExtraFile, Vec<u8>, u32)>,
}

impl<'a> HostFiles<'a> {
    pub(super) fn read(options: &'a BuildOptions) -> Result<Self, BuildError> {
        let init = read_static_binary("init binary", &options.init)?;
        let lbd = read_static_binary("lbd binary", &options.lbd)?;
        let mut extra = Vec::new();
        for file in &options.extra_files {
            let data = read_input("--add file", &file.host)?;
            let perm = host_perm(&file.host);
            extra.push((file, data, perm));
        }
        Ok(HostFiles { init, lbd, extra })
    }
}

/// What the box is told besides its files: its kernel command line and the keys its configs
/// must be signed with.
pub(super) struct BootSettings {
    pub(super) cmdline: String,
    pub(super) trusted: Vec<PublicKey>,
}

impl BootSettings {
    pub(super) fn read(options: &BuildOptions) -> Result<Self, BuildError> {
        let cmdline = full_cmdline(options.cmdline.as_deref())?;
        let trusted = read_trusted_keys(&options.trusted_keys)?;
        Ok(BootSettings { cmdline, trusted })
    }
}

/// The keys of every `--trusted-keys` file; a file without any is an error.
fn read_trusted_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, BuildError> {
    let mut trusted = Vec::new();
    for path in paths {
        let data = read_input("--trusted-keys file", path)?;
        let text = String::from_utf8_lossy(&data);
        let keys = lbd::trust::parse_keys(&text, &path.display().to_string())?;
        if keys.is_empty() {
            return Err(BuildError::TrustedKeys(lbd::trust::TrustError::BadKey {
                origin: path.display().to_string(),
                problem: "no key in this file".into(),
            }));
        }
        trusted.extend(keys);
    }
    Ok(trusted)
}

/// Reads a file given on the command line, naming it in the error.
fn read_input(what: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
    if path.is_dir() {
        return Err(BuildError::IsDirectory {
            what: what.to_string(),
            path: path.to_path_buf(),
        });
    }
    fs::read(path).map_err(|source| BuildError::ReadInput {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn read_static_binary(what: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
    let data = read_input(what, path)?;
    elf::check_static_x86_64(&data).map_err(|source| BuildError::NotStatic {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(data)
}

fn host_perm(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}

/// SHA-256 over everything that decides the image's bytes: this builder's own executable (its
/// code decides the layout), the kernel package, init, lbd, every extra file with its guest
/// path, the extra modules, the command line, the compression and the mtime. Host paths are
/// not part of it: the same files elsewhere build the same image.
pub fn inputs_sha256(options: &BuildOptions) -> Result<String, BuildError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &str| {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        h.update([0]);
    };
    let builder = std::env::current_exe().map_err(|source| BuildError::ReadInput {
        what: "the image builder".into(),
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    field("builder", &sha256_input("the image builder", &builder)?);
    field("kernel", &sha256_file(&options.kernel_deb)?);
    field("init", &sha256_input("init binary", &options.init)?);
    field("lbd", &sha256_input("lbd binary", &options.lbd)?);
    for f in &options.extra_files {
        field("extra", &f.guest);
        field("extra-sha256", &sha256_input("extra file", &f.host)?);
    }
    for m in &options.extra_modules {
        field("module", m);
    }
    field("cmdline", options.cmdline.as_deref().unwrap_or("(default)"));
    field("compression", options.compression.name());
    field("effort", options.effort.name());
    field("layout", options.layout.name());
    field("mtime", &options.mtime.to_string());
    field("profile", options.profile.name());
    for entry in &options.nic_drivers {
        field("nic-driver", &entry.spec.to_string());
        field("nic-driver-origin", &entry.origin);
    }
    for deb in &options.firmware_debs {
        field("firmware-sha256", &sha256_file(deb)?);
    }
    for keys in &options.trusted_keys {
        field("trusted-keys-sha256", &sha256_input("trusted keys", keys)?);
    }
    for deb in &options.bird_debs {
        field("bird-sha256", &sha256_file(deb)?);
    }
    if let Some(stub) = &options.kernel_stub {
        field("kernel-stub-source-sha256", &sha256_file(&stub.source_deb)?);
    }
    Ok(manifest::sha256_hex(&h.finalize()))
}

fn sha256_input(what: &str, path: &Path) -> Result<String, BuildError> {
    let data = fs::read(path).map_err(|source| BuildError::ReadInput {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(manifest::sha256_hex(&data))
}

pub(super) fn sha256_file(path: &Path) -> Result<String, BuildError> {
    use sha2::{Digest, Sha256};
    let mut file = fs::File::open(path).map_err(|source| {
        BuildError::Deb(DebError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        use std::io::Read;
        let n = file.read(&mut buf).map_err(|source| {
            BuildError::Deb(DebError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
