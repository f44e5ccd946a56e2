//! Where the tests' inputs are: the workspace, the cached Debian kernel package, the built image,
//! the extracted kernel and its modules, and which QEMU accelerator works on this machine.
//!
//! Functions named `try_*` return errors; their short forms panic with a message that says how
//! to get the missing piece (`tools/setup.sh`, building the image), which is what a test wants.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::{self, CommandError};

/// Env var: path of the kernel .deb to use instead of the one in the cache.
pub const ENV_KERNEL_DEB: &str = "LB_KERNEL_DEB";
/// Env var: the cache directory (default `<repo>/.cache`; the kernel is in `kernel/` below it).
pub const ENV_CACHE_DIR: &str = "LB_CACHE_DIR";
/// Env var: the built image directory (default `<repo>/target/lb-image`).
pub const ENV_IMAGE_DIR: &str = "LB_IMAGE_DIR";
/// Env var: `kvm` or `tcg` to skip the accelerator probe.
pub const ENV_ACCEL: &str = "LB_ACCEL";

/// How long the KVM probe may take to boot the kernel to its "no root filesystem" panic. Under
/// TCG the same boot takes about 3 s here; a working KVM needs well under a second.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// A missing or unusable test input.
#[derive(thiserror::Error)]
pub enum ArtifactError {
    /// No kernel package was found.
    #[error("no Debian cloud kernel package in {dir} (looked for linux-image-*-cloud-amd64_*.deb); run tools/setup.sh to download it, or set {ENV_KERNEL_DEB}")]
    NoKernelDeb {
        /// Where we looked.
        dir: PathBuf,
    },
    /// A path named by an environment variable does not exist.
    #[error("{var}={path} does not exist")]
    BadEnvPath {
        /// The variable.
        var: &'static str,
        /// Its value.
        path: PathBuf,
    },
    /// Extracting the kernel package failed.
    #[error("cannot extract kernel package {deb}: {source}")]
    Extract {
        /// The package.
        deb: PathBuf,
        /// Why.
        #[source]
        source: CommandError,
    },
    /// The kernel could not be prepared earlier in this process (the first error, as text).
    #[error("{0}")]
    KernelUnavailable(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The extracted package does not look like a kernel package.
    #[error("kernel package {deb} has no {what}")]
    NotAKernel {
        /// The package.
        deb: PathBuf,
        /// What is missing.
        what: String,
    },
    /// A kernel module is not in the package.
    #[error("kernel module {name} is not in {dir}")]
    NoModule {
        /// The module name.
        name: String,
        /// The modules directory searched.
        dir: PathBuf,
    },
    /// A module file could not be understood.
    #[error("kernel module {path}: {detail}")]
    BadModule {
        /// The .ko file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

crate::debug_is_display!(ArtifactError);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The workspace root (the directory with the workspace `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir
            .ancestors()
            .find(|dir| {
                std::fs::read_to_string(dir.join("Cargo.toml"))
                    .map(|t| t.contains("[workspace]"))
                    .unwrap_or(false)
            })
            .unwrap_or_else(|| manifest_dir.parent().unwrap_or(manifest_dir))
            .to_owned()
    })
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Scratch space for the harness that survives between runs (`<target>/lbtest`).
pub fn harness_dir() -> PathBuf {
    target_dir().join("lbtest")
}

/// The cache directory filled by `tools/setup.sh` (`LB_CACHE_DIR` or `<repo>/.cache`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os(ENV_CACHE_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".cache"))
}

/// The Debian cloud kernel package: `LB_KERNEL_DEB`, else the newest
/// `linux-image-*-cloud-amd64_*.deb` in `<cache>/kernel`.
pub fn try_kernel_deb() -> Result<PathBuf, ArtifactError> {
    if let Some(p) = std::env::var_os(ENV_KERNEL_DEB) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ArtifactError::BadEnvPath {
                var: ENV_KERNEL_DEB,
                path,
            })
        };
    }
    let dir = cache_dir().join("kernel");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(is_cloud_kernel_deb_name)
                })
                .collect()
        })
        .unwrap_or_default();
    // setup.sh keeps one; if there are several, the newest download wins.
    debs.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    debs.pop().ok_or(ArtifactError::NoKernelDeb { dir })
}

fn is_cloud_kernel_deb_name(name: &str) -> bool {
    name.starts_with("linux-image-")
        && name.ends_with("_amd64.deb")
        && name
            .split('_')
            .next()
            .is_some_and(|pkg| pkg.ends_with("-cloud-amd64"))
}

/// [`try_kernel_deb`], panicking with instructions when it is missing.
pub fn kernel_deb() -> PathBuf {
    try_kernel_deb().unwrap_or_else(|e| panic!("{e}"))
}

/// The appliance image directory, brought up to date with the current source first (see
/// [`crate::fresh`]): `<target>/lb-image`, or `LB_IMAGE_DIR` if its init and lbd are current.
pub fn image_dir() -> PathBuf {
    crate::fresh::image(crate::fresh::ImageKind::Appliance).unwrap_or_else(|e| panic!("{e}"))
}

/// A kernel package unpacked on disk: the bootable image and its modules.
#[derive(Debug)]
pub struct Kernel {
    /// Where the package was unpacked.
    pub root: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub release: String,
    /// `boot/vmlinuz-<release>`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    pub modules_dir: PathBuf,
    index: OnceLock<HashMap<String, PathBuf>>,
}

impl Kernel {
    /// Unpacks `deb` (with `dpkg-deb -x`) below `parent`, reusing an earlier unpack of the same
    /// file. Safe against concurrent test processes: each unpacks to a private directory and
    /// renames it into place.
    pub fn extract(deb: &Path, parent: &Path) -> Result<Self, ArtifactError> {
        let stem = deb
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("kernel")
            .to_owned();
        let dest = parent.join(&stem);
        // A package replaced in place (same name, new contents) must not reuse an old unpack.
        let meta = deb.metadata().map_err(io_err(deb))?;
        let stamp = format!("{} {:?}", meta.len(), meta.modified().map_err(io_err(deb))?);
        let stamp_path = dest.join(".lbtest-unpacked");
        if std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{stem}-"))
                .tempdir_in(parent)
                .map_err(io_err(parent))?;
            process::run(
                crate::programs::command("dpkg-deb")
                    .arg("-x")
                    .arg(deb)
                    .arg(tmp.path()),
            )
            .map_err(|source| ArtifactError::Extract {
                deb: deb.to_owned(),
                source,
            })?;
            std::fs::write(tmp.path().join(".lbtest-unpacked"), &stamp)
                .map_err(io_err(tmp.path()))?;
            let tmp = tmp.keep();
            if dest.exists() {
                // Stale (or a concurrent process just finished): replace it unless it is good.
                if std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
                    let _ = std::fs::remove_dir_all(&tmp);
                } else {
                    let _ = std::fs::remove_dir_all(&dest);
                    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
                }
            } else if std::fs::rename(&tmp, &dest).is_err() {
                // Lost a race to another process: theirs is as good as ours.
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        Self::open(deb, &dest)
    }

    fn open(deb: &Path, root: &Path) -> Result<Self, ArtifactError> {
        let boot = root.join("boot");
        let vmlinuz = std::fs::read_dir(&boot)
            .map_err(io_err(&boot))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
            })
            .ok_or_else(|| ArtifactError::NotAKernel {
                deb: deb.to_owned(),
                what: "boot/vmlinuz-*".into(),
            })?;
        let release = vmlinuz
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            .unwrap_or_default()
            .to_owned();
        let modules_dir = root.join("lib/modules").join(&release);
        if !modules_dir.is_dir() {
            return Err(ArtifactError::NotAKernel {
                deb: deb.to_owned(),
                what: format!("lib/modules/{release}"),
            });
        }
        Ok(Self {
            root: root.to_owned(),
            release,
            vmlinuz,
            modules_dir,
            index: OnceLock::new(),
        })
    }

    /// The kernel's build configuration (`boot/config-<release>`).
    pub fn config_path(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("config-{}", self.release))
    }

    /// The `.ko` file of module `name` (`-` and `_` are the same, as for modprobe).
    pub fn module(&self, name: &str) -> Result<PathBuf, ArtifactError> {
        let index = self.index.get_or_init(|| {
            let mut map = HashMap::new();
            index_modules(&self.modules_dir, &mut map);
            map
        });
        index
            .get(&module_key(name))
            .cloned()
            .ok_or_else(|| ArtifactError::NoModule {
                name: name.to_owned(),
                dir: self.modules_dir.clone(),
            })
    }

    /// The `depends=` of module `name`, read from its `.modinfo` section (the package has no
    /// modules.dep).
    pub fn module_depends(&self, name: &str) -> Result<Vec<String>, ArtifactError> {
        let path = self.module(name)?;
        let data = std::fs::read(&path).map_err(io_err(&path))?;
        let info = modinfo(&data).map_err(|detail| ArtifactError::BadModule {
            path: path.clone(),
            detail,
        })?;
        Ok(depends_of(&info))
    }

    /// `names` and everything they depend on, as `.ko` paths in an order `insmod` accepts
    /// (dependencies first, each module once). Modules found by modalias rather than by
    /// `depends=` (e.g. `virtio_pci` for `virtio_net`) must be listed explicitly.
    pub fn modules_with_deps(&self, names: &[&str]) -> Result<Vec<PathBuf>, ArtifactError> {
        let order = load_order(names, |n| self.module_depends(n))?;
        order.iter().map(|n| self.module(n)).collect()
    }
}

fn module_key(name: &str) -> String {
    name.replace('-', "_")
}

fn index_modules(dir: &Path, map: &mut HashMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            index_modules(&path, map);
        } else if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            map.insert(module_key(name), path);
        }
    }
}

/// The `key=value` strings of a module's `.modinfo` ELF section.
pub fn modinfo(ko: &[u8]) -> Result<Vec<(String, String)>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(ko).map_err(|e| format!("not an ELF object: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section (is it compressed? only plain .ko is supported)")?;
    let data = section
        .data()
        .map_err(|e| format!("cannot read .modinfo: {e}"))?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect())
}

fn depends_of(info: &[(String, String)]) -> Vec<String> {
    info.iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| v.split(','))
        .filter(|d| !d.is_empty())
        .map(module_key)
        .collect()
}

/// Orders `roots` and their transitive dependencies so that each module comes after all of its
/// dependencies (depth first, in the order given). Each module appears once.
pub fn load_order<E>(
    roots: &[&str],
    mut depends: impl FnMut(&str) -> Result<Vec<String>, E>,
) -> Result<Vec<String>, E> {
    fn visit<E>(
        name: String,
        depends: &mut dyn FnMut(&str) -> Result<Vec<String>, E>,
        visiting: &mut HashSet<String>,
        done: &mut Vec<String>,
    ) -> Result<(), E> {
        // A module already placed, or a cycle (which the kernel would refuse anyway).
        if done.contains(&name) || !visiting.insert(name.clone()) {
            return Ok(());
        }
        for dep in depends(&name)? {
            visit(dep, depends, visiting, done)?;
        }
        done.push(name);
        Ok(())
    }
    let mut visiting = HashSet::new();
    let mut done = Vec::new();
    for root in roots {
        visit(module_key(root), &mut depends, &mut visiting, &mut done)?;
    }
    Ok(done)
}

/// The kernel from [`try_kernel_deb`], unpacked once per process below `<target>/lbtest/kernel`.
pub fn try_kernel() -> Result<&'static Kernel, ArtifactError> {
    static KERNEL: OnceLock<Result<Kernel, String>> = OnceLock::new();
    let result = KERNEL.get_or_init(|| {
        let deb = try_kernel_deb().map_err(|e| e.to_string())?;
        Kernel::extract(&deb, &harness_dir().join("kernel")).map_err(|e| e.to_string())
    });
    result
        .as_ref()
        .map_err(|e| ArtifactError::KernelUnavailable(e.clone()))
}

/// [`try_kernel`], panicking with instructions when the package is missing.
pub fn kernel() -> &'static Kernel {
    try_kernel().unwrap_or_else(|e| panic!("{e}"))
}

/// A QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Emulation (`-accel tcg -cpu max`); always works, slower.
    Tcg,
}

impl Accel {
    /// The QEMU arguments that select this accelerator.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
        }
    }

    /// `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Parses `kvm` / `tcg` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }
}

/// The accelerator to use: `LB_ACCEL` if set; else KVM if `/dev/kvm` opens and the cloud kernel
/// boots under it (probed once per process, the result remembered per host boot in
/// `<target>/lbtest/`); else TCG. KVM is a speed-up where it works, never a requirement.
pub fn accel() -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        if let Some(v) = std::env::var_os(ENV_ACCEL) {
            let v = v.to_string_lossy();
            return Accel::parse(&v)
                .unwrap_or_else(|| panic!("{ENV_ACCEL}={v} is not understood; use kvm or tcg"));
        }
        detect_accel()
    })
}

fn detect_accel() -> Accel {
    if OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let Ok(kernel) = try_kernel() else {
        // Nothing to probe with; TCG is always right.
        return Accel::Tcg;
    };
    // The probe costs seconds when KVM hangs, so remember it for this host boot, this QEMU and
    // this kernel.
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let qemu_mtime = crate::programs::try_path(crate::qemu::QEMU)
        .ok()
        .and_then(|p| p.metadata().ok())
        .and_then(|m| m.modified().ok());
    let key = format!("{} {:?} {}", boot_id.trim(), qemu_mtime, kernel.release);
    let cache = harness_dir().join("accel-probe");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((k, v)) = text.rsplit_once('\n') {
            if k == key {
                if let Some(a) = Accel::parse(v) {
                    return a;
                }
            }
        }
    }
    let found = match probe_kvm(kernel) {
        Ok(took) => {
            eprintln!("lbtest: KVM boots the kernel ({took:.1?}); using -accel kvm");
            Accel::Kvm
        }
        Err(why) => {
            eprintln!("lbtest: KVM is not usable ({why}); using -accel tcg");
            Accel::Tcg
        }
    };
    let _ = std::fs::create_dir_all(harness_dir());
    let _ = std::fs::write(&cache, format!("{key}\n{}", found.name()));
    found
}

/// Boots the kernel with no root filesystem under KVM: reaching the "VFS: Unable to mount root"
/// panic proves the kernel runs.
fn probe_kvm(kernel: &Kernel) -> Result<Duration, String> {
    let started = Instant::now();
    let mut guest = crate::qemu::GuestBuilder::new("kvm-probe")
        .accel(Accel::Kvm)
        .kernel(&kernel.vmlinuz)
        .append("console=ttyS0 panic=-1")
        .memory_mib(256)
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = guest
        .expect("Kernel panic|VFS: Unable to mount root", KVM_PROBE_TIMEOUT)
        .map(|_| started.elapsed())
        .map_err(|e| match e.failure {
            crate::console::ExpectFailure::Timeout(t) => {
                format!("the kernel printed no panic within {t:?} under KVM")
            }
            _ => format!("the guest exited early; see {}", guest.log_dir().display()),
        });
    guest.kill();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_names() {
        assert!(is_cloud_kernel_deb_name(
            "linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb"
        ));
        assert!(!is_cloud_kernel_deb_name(
            "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"
        ));
        assert!(!is_cloud_kernel_deb_name(
            "linux-image-cloud-amd64_6.1.192-2_amd64.deb.partial"
        ));
    }

    #[test]
    fn load_order_puts_dependencies_first() {
        // The virtio_net closure as the cloud kernel's .modinfo sections describe it.
        let deps: HashMap<&str, Vec<&str>> = [
            ("virtio", vec!["virtio_ring"]),
            ("virtio_ring", vec![]),
            ("virtio_pci_modern_dev", vec![]),
            ("virtio_pci_legacy_dev", vec![]),
            (
                "virtio_pci",
                vec![
                    "virtio_ring",
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                ],
            ),
            ("failover", vec![]),
            ("net_failover", vec!["failover"]),
            ("virtio_net", vec!["virtio_ring", "virtio", "net_failover"]),
        ]
        .into_iter()
        .collect();
        let order = load_order::<String>(&["virtio_pci", "virtio-net"], |n| {
            deps.get(n)
                .map(|d| d.iter().map(|s| s.to_string()).collect())
                .ok_or_else(|| format!("unknown {n}"))
        })
        .unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net"
            ]
        );
        for (i, m) in order.iter().enumerate() {
            for d in &deps[m.as_str()] {
                assert!(order[..i].contains(&d.to_string()), "{d} after {m}");
            }
        }
    }

    #[test]
    fn load_order_survives_a_cycle_and_reports_errors() {
        let order = load_order::<String>(&["a"], |n| {
            Ok(match n {
                "a" => vec!["b".into()],
                _ => vec!["a".into()],
            })
        })
        .unwrap();
        assert_eq!(order, ["b", "a"]);
        let err = load_order::<String>(&["x"], |n| Err(format!("no {n}"))).unwrap_err();
        assert_eq!(err, "no x");
    }

    #[test]
    fn depends_are_split_and_normalised() {
        let info = vec![
            ("license".to_owned(), "GPL".to_owned()),
            (
                "depends".to_owned(),
                "nf_conntrack,libcrc32c,nf-defrag-ipv6".to_owned(),
            ),
        ];
        assert_eq!(
            depends_of(&info),
            ["nf_conntrack", "libcrc32c", "nf_defrag_ipv6"]
        );
        let none = vec![("depends".to_owned(), String::new())];
        assert!(depends_of(&none).is_empty());
    }

    #[test]
    fn modinfo_rejects_non_elf() {
        assert!(modinfo(b"not an elf").is_err());
    }

    #[test]
    fn accel_names_round_trip() {
        for a in [Accel::Kvm, Accel::Tcg] {
            assert_eq!(Accel::parse(a.name()), Some(a));
        }
        assert_eq!(Accel::parse(" TCG\n"), Some(Accel::Tcg));
        assert_eq!(Accel::parse("hvf"), None);
        assert_eq!(Accel::Tcg.qemu_args(), ["-accel", "tcg", "-cpu", "max"]);
    }

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(text.contains("[workspace]"));
        assert!(workspace_root().join("tests").is_dir());
    }
}
