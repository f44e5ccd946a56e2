//! Gives a Debian kernel an lz4 payload: the boot stub (the code in `vmlinuz` that decompresses
//! the kernel, the real-mode setup and the EFI stub) is rebuilt from Debian's own source of the
//! same version (`linux-source-X.Y`), with the package's own config but for
//! `CONFIG_KERNEL_LZ4`, around the package's kernel taken out of its `vmlinuz` unchanged.
//!
//! Why: Debian's generic kernel ships an xz payload. Decompressing it costs about 0.75 s of
//! CPU at every boot of a server and 3–4 s in a TCG guest; lz4 takes a fraction of that (it is
//! what Debian's cloud flavour uses, for the same reason). zstd was tried first: 5 MiB smaller,
//! but 0.5 s slower than lz4 to decompress under TCG. Nothing of the kernel itself is rebuilt:
//! the stub is built around the package's bytes, and the result is only accepted when its
//! payload decompresses to exactly the package's (checked here, again at every image build,
//! and by the image tests with the `lz4` and `xz` programs).
//!
//! kbuild makes the stub from `vmlinux`; the package has no `vmlinux`, but its payload is what
//! kbuild would make of one: the stripped ELF image and the relocation table. So the build
//! gets the ELF image as `vmlinux`, is told not to remake it (`make -o vmlinux`), and gets two
//! stand-ins through kbuild's own variables: `NM` answers for `vmlinux` with the four symbols
//! the stub needs (from the section table, see [`bzimage::stub_symbols`]), `CMD_RELOCS` hands
//! back the package's relocation table.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

use crate::bzimage::{self, BzImageError, KernelVersion, PayloadError, PayloadFormat};
use crate::deb::{self, DataError, DebError};

/// The payload format the stub is rebuilt for.
pub const TARGET: PayloadFormat = PayloadFormat::Lz4;

/// Whether a payload of `format` takes longer to decompress than [`TARGET`] (lzo is about as
/// fast: a kernel shipped with it, or with lz4, is left as it is).
pub fn slower_than_target(format: PayloadFormat) -> bool {
    !matches!(format, PayloadFormat::Lz4 | PayloadFormat::Lzo)
}

/// Config lines kbuild rewrites for the machine that builds (compiler banner, signing key
/// defaults, build salt) or that the rebuild changes on purpose (the payload format). Any
/// other difference between the package's config and the source's idea of it means the
/// source is not the package's.
const CONFIG_MAY_DIFFER: &[&str] = &[
    "CONFIG_CC_VERSION_TEXT",
    "CONFIG_BUILD_SALT",
    "CONFIG_MODULE_SIG_ALL",
    "CONFIG_MODULE_SIG_KEY",
    "CONFIG_SYSTEM_TRUSTED_KEYS",
];

#[derive(Debug, Error)]
pub enum RestubError {
    #[error("the kernel package's vmlinuz: {0}")]
    Vmlinuz(#[from] BzImageError),
    #[error("the kernel package's payload: {0}")]
    Payload(#[from] PayloadError),
    #[error("the kernel package has no boot/config-{0}, which the stub must be built with")]
    NoConfig(String),
    #[error("the kernel's version line {0:?} is not `RELEASE (USER@HOST) #N ...`")]
    VersionLine(String),
    #[error("{0}")]
    Deb(#[from] DebError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the kernel source package {source_deb} is version {source_version}, the kernel package {kernel_version}: the stub must come from the kernel's own source (tools/setup.sh fetches the matching one)")]
    VersionMismatch {
        source_deb: PathBuf,
        source_version: String,
        kernel_version: String,
    },
    #[error("{0} holds no usr/src/linux-source-*.tar.xz")]
    NoTarball(PathBuf),
    #[error("the source's kernel config differs from the package's in {count} lines, e.g. {first}: the source is not this kernel's")]
    ConfigDrift { count: usize, first: String },
    #[error("`{step}` failed ({status}); the end of its output ({log}):\n{tail}")]
    Step {
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the rebuilt vmlinuz: {0}")]
    Rebuilt(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RestubError + '_ {
    move |source| RestubError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The package's kernel config with the payload format switched to [`TARGET`].
pub fn config_for_target(config: &str) -> String {
    let mut out = String::with_capacity(config.len());
    for line in config.lines() {
        let option = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
            .or_else(|| line.split_once('=').map(|(k, _)| k));
        match option {
            Some(o) if PayloadFormat::ALL.iter().any(|f| f.config_option() == o) => {
                if o == TARGET.config_option() {
                    let _ = writeln!(out, "{o}=y");
                } else {
                    let _ = writeln!(out, "# {o} is not set");
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `CONFIG_X=...` lines of `a` missing from `b` or different there, but for the payload
/// format and [`CONFIG_MAY_DIFFER`].
pub fn config_drift(a: &str, b: &str) -> Vec<String> {
    let set = |text: &str| -> std::collections::BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.starts_with("CONFIG_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (a, b) = (set(a), set(b));
    let ignored = |k: &str| {
        CONFIG_MAY_DIFFER.contains(&k) || PayloadFormat::ALL.iter().any(|f| f.config_option() == k)
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !ignored(k) && a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: package {}, source {}",
                a.get(k).map_or("unset", String::as_str),
                b.get(k).map_or("unset", String::as_str)
            )
        })
        .collect()
}

/// What [`restub`] needs.
pub struct RestubInputs<'a> {
    /// The package's `vmlinuz`.
    pub vmlinuz: &'a [u8],
    /// The package's `boot/config-RELEASE`.
    pub config: &'a str,
    /// The kernel package's Debian version (`6.1.192-3`).
    pub kernel_version: &'a str,
    /// Debian's `linux-source-X.Y` package of that version.
    pub source_deb: &'a Path,
    /// An empty directory to build in (about 1.5 GB of source).
    pub work: &'a Path,
    /// `make -j`.
    pub jobs: usize,
}

/// Builds an lz4 `vmlinuz` around the package's kernel and checks it (see the module docs).
pub fn restub(inputs: &RestubInputs<'_>) -> Result<Vec<u8>, RestubError> {
    let original = bzimage::parse(inputs.vmlinuz)?;
    let version = KernelVersion::parse(&original.version)
        .ok_or_else(|| RestubError::VersionLine(original.version.clone()))?;
    let payload = original.decompress()?;
    let parts = bzimage::split_payload(&payload)?;
    let symbols = bzimage::stub_symbols(parts.elf)?;

    let source_control = deb::read_control(inputs.source_deb)?;
    if source_control.version != inputs.kernel_version {
        return Err(RestubError::VersionMismatch {
            source_deb: inputs.source_deb.to_path_buf(),
            source_version: source_control.version,
            kernel_version: inputs.kernel_version.to_string(),
        });
    }
    let tree = unpack_source(inputs.source_deb, inputs.work)?;
    // Every step with the package's release and builder: prepare and later steps rewrite
    // the version headers, which the stub's version line is made of.
    let common = [
        format!("KERNELRELEASE={}", version.release),
        format!("KBUILD_BUILD_USER={}", version.user),
        format!("KBUILD_BUILD_HOST={}", version.host),
    ];
    let run = Runner {
        tree: &tree,
        logs: inputs.work,
        jobs: inputs.jobs,
        common: &common,
    };

    let config_path = tree.join(".config");
    fs::write(&config_path, config_for_target(inputs.config)).map_err(io_err(&config_path))?;
    run.make("olddefconfig", &["olddefconfig"], false)?;
    let resolved = fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let drift = config_drift(inputs.config, &resolved);
    if let Some(first) = drift.first() {
        return Err(RestubError::ConfigDrift {
            count: drift.len(),
            first: first.clone(),
        });
    }
    run.make("prepare", &["prepare"], true)?;
    // Files kbuild generates in the main build that the stub's sources include: the CPU
    // feature names (capflags.c) and the instruction decoder's tables (inat-tables.c, made
    // when arch/x86/lib/ is built).
    run.make(
        "generated tables",
        &["arch/x86/kernel/cpu/capflags.o", "arch/x86/lib/"],
        true,
    )?;
    run.make("EFI stub", &["drivers/firmware/efi/libstub/"], true)?;
    let uts = tree.join("include/generated/utsversion.h");
    fs::write(
        &uts,
        format!("#define UTS_VERSION \"{}\"\n", version.uts_version),
    )
    .map_err(io_err(&uts))?;

    // The stand-ins (see the module docs).
    let vmlinux = tree.join("vmlinux");
    fs::write(&vmlinux, parts.elf).map_err(io_err(&vmlinux))?;
    let stand_ins = inputs.work.join("stand-ins");
    fs::create_dir_all(&stand_ins).map_err(io_err(&stand_ins))?;
    let symbols_file = stand_ins.join("vmlinux.nm");
    fs::write(&symbols_file, symbols.nm_lines()).map_err(io_err(&symbols_file))?;
    let relocs_file = stand_ins.join("vmlinux.relocs");
    fs::write(&relocs_file, parts.relocs).map_err(io_err(&relocs_file))?;
    let nm = script(
        &stand_ins.join("nm"),
        &format!(
            "#!/bin/sh\n# kbuild's nm, answering for the package's vmlinux, which has no symbols.\n\
             for a in \"$@\"; do last=$a; done\n\
             if [ \"$last\" = vmlinux ]; then exec cat '{}'; fi\nexec nm \"$@\"\n",
            symbols_file.display()
        ),
    )?;
    let relocs = script(
        &stand_ins.join("relocs"),
        &format!(
            "#!/bin/sh\n# kbuild's relocs tool: the package's table (it checks none).\n\
             [ \"$1\" = --abs-relocs ] && exit 0\nexec cat '{}'\n",
            relocs_file.display()
        ),
    )?;
    run.make(
        "bzImage",
        &[
            &format!("NM={}", nm.display()),
            &format!("CMD_RELOCS={}", relocs.display()),
            "-o",
            "vmlinux",
            "bzImage",
        ],
        true,
    )?;
    let built = tree.join("arch/x86/boot/bzImage");
    let rebuilt = fs::read(&built).map_err(io_err(&built))?;
    check_same_kernel(inputs.vmlinuz, &rebuilt)?;
    Ok(rebuilt)
}

/// Holds a rebuilt `vmlinuz` to the package's: the same version line, a [`TARGET`] payload,
/// and the same kernel inside, byte for byte.
pub fn check_same_kernel(package: &[u8], rebuilt: &[u8]) -> Result<(), RestubError> {
    let original = bzimage::parse(package)?;
    let new = bzimage::parse(rebuilt).map_err(|e| RestubError::Rebuilt(e.to_string()))?;
    if new.format != TARGET {
        return Err(RestubError::Rebuilt(format!(
            "its payload is {}, not {}",
            new.format.name(),
            TARGET.name()
        )));
    }
    if new.version != original.version {
        return Err(RestubError::Rebuilt(format!(
            "its version line {:?} is not the package's {:?}",
            new.version, original.version
        )));
    }
    let inside = new
        .decompress()
        .map_err(|e| RestubError::Rebuilt(e.to_string()))?;
    let theirs = original.decompress()?;
    if inside != theirs {
        let at = inside
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(inside.len().min(theirs.len()));
        return Err(RestubError::Rebuilt(format!(
            "its kernel differs from the package's from byte {at} ({} against {} bytes)",
            inside.len(),
            theirs.len()
        )));
    }
    Ok(())
}

fn script(path: &Path, text: &str) -> Result<PathBuf, RestubError> {
    fs::write(path, text).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// Writes the source package's tarball into `work` and unpacks it there; returns the tree.
fn unpack_source(source_deb: &Path, work: &Path) -> Result<PathBuf, RestubError> {
    let tarball = work.join("linux-source.tar.xz");
    let found = deb::with_data_tar(
        source_deb,
        |reader| {
            let mut archive = tar::Archive::new(reader);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = entry.path()?.to_string_lossy().into_owned();
                let path = path.trim_start_matches("./");
                if path.starts_with("usr/src/linux-source-") && path.ends_with(".tar.xz") {
                    let mut file = fs::File::create(&tarball)?;
                    io::copy(&mut entry, &mut file)?;
                    return Ok(true);
                }
            }
            Ok::<_, DataError>(false)
        },
        |path, reason| DebError::NotPackage {
            path: path.to_path_buf(),
            reason,
        },
    )?;
    if !found {
        return Err(RestubError::NoTarball(source_deb.to_path_buf()));
    }
    let log = work.join("unpack.log");
    run_logged(
        "unpack the kernel source",
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(work),
        &log,
    )?;
    fs::remove_file(&tarball).map_err(io_err(&tarball))?;
    let mut trees = Vec::new();
    for entry in fs::read_dir(work).map_err(io_err(work))? {
        let entry = entry.map_err(io_err(work))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("linux-source-")
        {
            trees.push(entry.path());
        }
    }
    match trees.as_slice() {
        [tree] => Ok(tree.clone()),
        _ => Err(RestubError::NoTarball(source_deb.to_path_buf())),
    }
}

struct Runner<'a> {
    tree: &'a Path,
    logs: &'a Path,
    jobs: usize,
    /// Variables every step gets.
    common: &'a [String],
}

impl Runner<'_> {
    fn make(&self, step: &str, args: &[&str], parallel: bool) -> Result<(), RestubError> {
        let mut cmd = Command::new("make");
        cmd.current_dir(self.tree)
            .arg(format!("-j{}", if parallel { self.jobs.max(1) } else { 1 }))
            .args(self.common)
            .args(args)
            // The build's messages in one language, and no ccache or distcc of the host's.
            .env("LC_ALL", "C")
            .env_remove("CC")
            .env_remove("MAKEFLAGS");
        let log = self.logs.join(format!("{}.log", step.replace(' ', "-")));
        run_logged(step, &mut cmd, &log)
    }
}

/// Runs `cmd` with its output in `log`; a failure carries the log's last lines.
fn run_logged(step: &str, cmd: &mut Command, log: &Path) -> Result<(), RestubError> {
    let out = fs::File::create(log).map_err(io_err(log))?;
    let err = out.try_clone().map_err(io_err(log))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| RestubError::Step {
            step: step.to_string(),
            status: format!("cannot start {:?}: {e}", cmd.get_program()),
            log: log.to_path_buf(),
            tail: String::new(),
        })?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    Err(RestubError::Step {
        step: step.to_string(),
        status: status.to_string(),
        log: log.to_path_buf(),
        tail: lines[lines.len().saturating_sub(20)..].join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"\n# CONFIG_KERNEL_GZIP is not set\n# CONFIG_KERNEL_BZIP2 is not set\n# CONFIG_KERNEL_LZMA is not set\nCONFIG_KERNEL_XZ=y\n# CONFIG_KERNEL_LZO is not set\n# CONFIG_KERNEL_LZ4 is not set\n# CONFIG_KERNEL_ZSTD is not set\nCONFIG_DEFAULT_INIT=\"\"\nCONFIG_NET=y\n# CONFIG_X86_X32_ABI is not set\n";

    #[test]
    fn the_config_changes_only_in_its_payload_format() {
        let out = config_for_target(CONFIG);
        assert!(out.contains("\nCONFIG_KERNEL_LZ4=y\n"), "{out}");
        assert!(out.contains("\n# CONFIG_KERNEL_XZ is not set\n"), "{out}");
        assert_eq!(out.matches("=y\n").count(), 2, "{out}");
        let changed: Vec<(&str, &str)> = CONFIG
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [
                ("CONFIG_KERNEL_XZ=y", "# CONFIG_KERNEL_XZ is not set"),
                ("# CONFIG_KERNEL_LZ4 is not set", "CONFIG_KERNEL_LZ4=y"),
            ]
        );
        assert_eq!(config_drift(CONFIG, &out), Vec::<String>::new());
    }

    #[test]
    fn only_payloads_slower_than_lz4_are_rebuilt() {
        let slower: Vec<&str> = PayloadFormat::ALL
            .into_iter()
            .filter(|f| slower_than_target(*f))
            .map(PayloadFormat::name)
            .collect();
        assert_eq!(slower, ["gzip", "bzip2", "lzma", "xz", "zstd"]);
    }

    #[test]
    fn drift_names_what_the_source_would_change() {
        let resolved = config_for_target(CONFIG)
            .replace("CONFIG_NET=y", "CONFIG_NET=m")
            .replace(
                "CONFIG_CC_VERSION_TEXT=\"gcc-12",
                "CONFIG_CC_VERSION_TEXT=\"gcc",
            )
            + "CONFIG_NEW_IN_SOURCE=y\nCONFIG_BUILD_SALT=\"\"\n";
        assert_eq!(
            config_drift(CONFIG, &resolved),
            [
                "CONFIG_NET: package y, source m",
                "CONFIG_NEW_IN_SOURCE: package unset, source y",
            ]
        );
    }
}
