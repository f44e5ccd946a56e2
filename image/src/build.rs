//! `image build`: kernel package + static binaries → `vmlinuz`, `initrd.img`, `boot.ipxe`,
//! `manifest.json`, written to a temporary directory beside the output and renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::compress::{Compression, Effort};
use crate::cpio::{normalize_guest_path, EntryKind, Tree, TreeError};
use crate::deb::{self, DebError, KernelPackage};
use crate::drivers::{self, DriverError, ListEntry, Profile, Resolved};
use crate::elf::{self, BinaryKindError, ModinfoError};
use crate::firmware::{self, FirmwareStore};
use crate::layout::{self, FileCompression, Layout, LayoutError, Separate};
use crate::manifest::{
    self, FileEntry, FirmwareEntry, ImageInfo, KernelSource, Manifest, MissingFirmware,
    ModuleEntry, NicDriverEntry, Totals, MANIFEST_FORMAT,
};
use crate::modules::{self, KernelModule, ModuleError, ModuleIndex, Root};
use crate::program::{self, PackageSet, ProgramError};

/// Where BIRD (the BGP speaker lbd starts for N-way services) is in the image: the path its
/// Debian package installs it at.
pub const BIRD_PROGRAM: &str = "/usr/sbin/bird";

/// Kernel command line used when `--cmdline` is not given. The last `console=` becomes
/// /dev/console, so the serial port gets init's output; `panic=10` reboots a wedged box.
pub const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 panic=10";

/// x86's COMMAND_LINE_SIZE, including the terminating NUL.
const MAX_CMDLINE: usize = 2047;

const IPVS_DIR: &str = "kernel/net/netfilter/ipvs/";

/// Modules always wanted besides IPVS and the NIC drivers.
const DEFAULT_MODULES: &[&str] = &[
    "ip_vs",
    "nf_conntrack",
    // virtio PCI stack: virtio_pci is the bus driver, absent from virtio_net's depends=.
    "virtio",
    "virtio_ring",
    "virtio_pci",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "failover",
    "net_failover",
    "virtio_net",
    // Topologies: VLANs, bonds, macvlan, IP-in-IP for LVS-TUN, and test links in a guest.
    "8021q",
    "bonding",
    "macvlan",
    "ipip",
    "dummy",
    "veth",
    "bridge",
    "tun",
    // ACPI power button → input event KEY_POWER for init's orderly shutdown.
    "button",
    "evdev",
];
const OPTIONAL_MODULES: &[&str] = &["nf_conntrack_netlink"];

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

/// The final command line: `initrd=initrd.img` first (iPXE's EFI loader needs it to hand the
/// initrd to the kernel), then the user's or the default parameters.
pub fn full_cmdline(user: Option<&str>) -> Result<String, BuildError> {
    let params = user.unwrap_or(DEFAULT_CMDLINE).trim();
    if params.chars().any(|c| c.is_control()) {
        return Err(BuildError::Cmdline(
            "contains a control character (newline?); it must be one line".into(),
        ));
    }
    let has_initrd = params.split_whitespace().any(|p| p.starts_with("initrd="));
    let cmdline = if has_initrd {
        params.to_string()
    } else if params.is_empty() {
        "initrd=initrd.img".to_string()
    } else {
        format!("initrd=initrd.img {params}")
    };
    if cmdline.len() > MAX_CMDLINE {
        return Err(BuildError::Cmdline(format!(
            "{} bytes; the x86 kernel accepts at most {MAX_CMDLINE}",
            cmdline.len()
        )));
    }
    Ok(cmdline)
}

/// `boot.ipxe`: relative URLs, so it works wherever the pxe server serves the directory.
pub fn ipxe_script(cmdline: &str) -> String {
    format!("#!ipxe\nkernel vmlinuz {cmdline}\ninitrd initrd.img\nboot\n")
}

/// The roots loaded at boot (IPVS, conntrack, topologies, the virtio stack) plus the user's
/// extras; the NIC drivers are not among them: init coldplugs those by modalias.
fn boot_roots(index: &ModuleIndex, extra: &[String]) -> Vec<Root> {
    let mut roots: Vec<Root> = DEFAULT_MODULES.iter().map(|n| Root::required(n)).collect();
    roots.extend(OPTIONAL_MODULES.iter().map(|n| Root::optional(n)));
    roots.extend(
        index
            .names_under(IPVS_DIR)
            .iter()
            .map(|n| Root::required(n)),
    );
    roots.extend(extra.iter().map(|n| Root::required(n)));
    roots
}

/// The NIC drivers of the list (those that are modules: a built-in driver needs nothing).
fn nic_roots(index: &ModuleIndex, resolved: &[Resolved]) -> (BTreeSet<String>, Vec<Root>) {
    let nic: BTreeSet<String> = resolved
        .iter()
        .flat_map(|r| r.modules.iter().cloned())
        .filter(|name| index.get(name).is_some())
        .collect();
    let roots = nic.iter().map(|n| Root::required(n)).collect();
    (nic, roots)
}

/// `roots` plus, until nothing changes, every module named by the `softdep=` of a module
/// in their closure: modprobe loads those too, and some are needed for the module to load
/// at all (libcrc32c fails with ENOENT unless a crc32c driver, its soft dependency, is
/// there; r8169 wants its PHY driver). A softdep word is a module name or an alias
/// (`crc32c`), which may name several modules.
fn with_softdeps(index: &ModuleIndex, roots: &[Root]) -> Result<Vec<Root>, ModuleError> {
    let mut roots = roots.to_vec();
    loop {
        let closure = index.closure(&roots)?;
        let mut added = false;
        for name in &closure.modules {
            let module = index.get(name).expect("closure members are indexed");
            for softdep in &module.info.softdeps {
                for word in softdep.split_whitespace().filter(|w| !w.ends_with(':')) {
                    for target in index.resolve_name_or_alias(word) {
                        if !closure.modules.contains(&target)
                            && !roots.iter().any(|r| r.name == target)
                        {
                            roots.push(Root::optional(&target));
                            added = true;
                        }
                    }
                }
            }
        }
        if !added {
            return Ok(roots);
        }
    }
}

/// Parses every module's `.modinfo` into an index.
fn index_modules(package: &KernelPackage, deb: &Path) -> Result<ModuleIndex, BuildError> {
    let mut modules = Vec::with_capacity(package.modules.len());
    for (path, data) in &package.modules {
        let info = elf::modinfo_from_elf(data).map_err(|source| BuildError::Modinfo {
            module: path.clone(),
            package: deb.to_path_buf(),
            source,
        })?;
        if let Some(vermagic) = &info.vermagic {
            if vermagic.split_whitespace().next() != Some(package.version.as_str()) {
                return Err(BuildError::WrongKernel {
                    module: path.clone(),
                    vermagic: vermagic.clone(),
                    version: package.version.clone(),
                });
            }
        }
        let name = info
            .name
            .as_deref()
            .map(modules::normalize_name)
            .unwrap_or_else(|| modules::name_from_path(path));
        modules.push(KernelModule {
            name,
            path: path.clone(),
            size: data.len() as u64,
            info,
        });
    }
    let builtin: BTreeSet<String> = package
        .module_lists
        .get("modules.builtin")
        .map(|text| {
            String::from_utf8_lossy(text)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| modules::name_from_path(l.trim()))
                .collect()
        })
        .unwrap_or_default();
    Ok(ModuleIndex::new(modules, builtin)?)
}

/// What `build` produced, in memory, before it is written out.
pub struct Image {
    pub vmlinuz: Vec<u8>,
    pub initrd: Vec<u8>,
    pub ipxe: String,
    pub manifest: Manifest,
}

/// Builds the image in memory (no output is written).
pub fn assemble(options: &BuildOptions) -> Result<Image, BuildError> {
    // Cheap checks first, so a wrong binary fails before the 30 MB package is unpacked.
    let init = read_static_binary("init binary", &options.init)?;
    let lbd = read_static_binary("lbd binary", &options.lbd)?;
    let mut extra = Vec::new();
    for file in &options.extra_files {
        let data = read_input("--add file", &file.host)?;
        let perm = host_perm(&file.host);
        extra.push((file, data, perm));
    }
    let cmdline = full_cmdline(options.cmdline.as_deref())?;
    let mut trusted = Vec::new();
    for path in &options.trusted_keys {
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

    let bird = if options.bird_debs.is_empty() {
        None
    } else {
        let set = PackageSet::read(&options.bird_debs)?;
        Some(program::resolve(&set, BIRD_PROGRAM)?)
    };

    let package_bytes_sha = sha256_file(&options.kernel_deb)?;
    let package = deb::read_kernel_package(&options.kernel_deb)?;
    let version = package.version.clone();
    let index = index_modules(&package, &options.kernel_deb)?;

    let resolved =
        drivers::resolve(&options.nic_drivers, &index).map_err(|source| BuildError::Driver {
            kernel: version.clone(),
            source,
        })?;
    let (nic_set, nic_roots) = nic_roots(&index, &resolved);
    let boot_roots = with_softdeps(&index, &boot_roots(&index, &options.extra_modules))?;
    let nic_roots = with_softdeps(&index, &nic_roots)?;
    let all_roots: Vec<Root> = boot_roots.iter().chain(&nic_roots).cloned().collect();
    let closure = index.closure(&all_roots)?;
    let order = index.load_order(&closure.modules)?;
    // Boot list: the closure of the boot roots, in the global load order.
    let boot_set = index.closure(&boot_roots)?.modules;
    let boot_order: Vec<String> = order
        .iter()
        .filter(|n| boot_set.contains(*n))
        .cloned()
        .collect();

    let store = FirmwareStore::read_packages(&options.firmware_debs)?;
    let selection = firmware::select(
        &store,
        order.iter().map(|name| {
            let m = index.get(name).expect("indexed");
            (m.name.as_str(), m.info.firmware.as_slice())
        }),
    );
    let mut firmware_files = Vec::new();
    for (path, (modules, package)) in &selection.carried {
        let found = store.find_exact(path).expect("selected from the store");
        firmware_files.push((
            FirmwareEntry {
                path: path.clone(),
                size: found.len() as u64,
                sha256: manifest::sha256_hex(found),
                package: package.clone(),
                modules: modules.iter().cloned().collect(),
                compression: None,
                stored_size: found.len() as u64,
            },
            found.to_vec(),
        ));
    }
    let firmware_missing: Vec<MissingFirmware> = selection
        .missing
        .iter()
        .map(|(module, file)| MissingFirmware {
            module: module.clone(),
            file: file.clone(),
            meaning: firmware::missing_meaning(module).to_string(),
        })
        .collect();

    // The box's clock cannot be before the kernel was built, nor before SOURCE_DATE_EPOCH.
    let clock_floor = package.built_at.max(options.mtime as u64);
    let kernel_package = options
        .kernel_deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let image_info = ImageInfo {
        format: MANIFEST_FORMAT,
        kernel_version: version.clone(),
        kernel_package: kernel_package.clone(),
        kernel_package_sha256: package_bytes_sha.clone(),
        builder: format!("image {}", env!("CARGO_PKG_VERSION")),
        compression: options.compression.name().to_string(),
        layout: options.layout.name().to_string(),
        cmdline: cmdline.clone(),
        init_sha256: manifest::sha256_hex(&init),
        lbd_sha256: manifest::sha256_hex(&lbd),
        extra_files: extra
            .iter()
            .filter(|(f, data, _)| {
                same_library_from_package(bird.as_ref(), &f.guest, data).is_none()
            })
            .map(|(f, data, _)| (f.guest.clone(), manifest::sha256_hex(data)))
            .collect::<BTreeMap<_, _>>(),
        modules: order.len() as u64,
        boot_modules: boot_order.len() as u64,
        profile: options.profile.name().to_string(),
        nic_drivers: nic_set.iter().cloned().collect(),
        firmware_files: firmware_files.len() as u64,
        trusted_keys: trusted.iter().map(|k| k.fingerprint()).collect(),
        clock_floor,
        bird: bird.as_ref().map(|b| manifest::ImageProgram {
            path: b.program.clone(),
            package: b.package.clone(),
            version: b.version.clone(),
            files: b.files.iter().map(|f| f.path.clone()).collect(),
        }),
    };

    let mut tree = Tree::new();
    for dir in ["/dev", "/proc", "/sys", "/run", "/etc", "/etc/lb", "/bin"] {
        tree.add_dir(dir, 0o755)?;
    }
    tree.add_dir("/tmp", 0o1777)?;
    tree.add_char_dev("/dev/console", 0o600, 5, 1)?;
    tree.add_char_dev("/dev/null", 0o666, 1, 3)?;
    tree.add_file("/init", 0o755, init)?;
    tree.add_file("/bin/lbd", 0o755, lbd)?;

    // Files that most boxes never read: see crate::layout.
    let mut separate = Separate::new(options.effort);
    let separate_modules: BTreeSet<String> = match options.layout {
        Layout::Split => order
            .iter()
            .filter(|n| !boot_set.contains(*n))
            .cloned()
            .collect(),
        Layout::Single => BTreeSet::new(),
    };
    let stored_modules = add_modules(
        &mut tree,
        &mut separate,
        &separate_modules,
        &version,
        &order,
        &index,
        &package,
    )?;
    if !firmware_files.is_empty() {
        tree.add_dir("/lib/firmware", 0o755)?;
    }
    for (entry, data) in &mut firmware_files {
        let guest = format!("/lib/firmware/{}", entry.path);
        match options.layout {
            Layout::Split => {
                let stored = separate.add_compressed(&guest, 0o644, data, FileCompression::Xz)?;
                entry.compression = Some(FileCompression::Xz.name().to_string());
                entry.stored_size = separate.stored_size(&stored);
            }
            Layout::Single => tree.add_file(&guest, 0o644, data.clone())?,
        }
    }
    tree.add_file(
        "/etc/lb/modules.boot",
        0o644,
        modules::modules_boot(&boot_order).into_bytes(),
    )?;
    tree.add_file("/etc/lb/image.json", 0o644, manifest::to_json(&image_info))?;
    tree.add_file(
        "/etc/lb/clock_floor",
        0o644,
        format!("{clock_floor}\n").into_bytes(),
    )?;
    if !trusted.is_empty() {
        let lines: String = trusted.iter().map(|k| k.to_openssh() + "\n").collect();
        tree.add_file("/etc/lb/trusted_keys", 0o644, lines.into_bytes())?;
    }
    if let Some(bird) = &bird {
        // Only N-way balancers run BIRD: with the split layout its files go compressed one by
        // one into the uncompressed archive, and lbd expands them before BIRD first starts
        // (a pair never pays for decompressing them at boot). Libraries an added program also
        // uses (the test image's tools) stay whole: those programs run before any expansion.
        let shared = shared_with_extras(bird, &extra);
        for f in &bird.files {
            match &f.content {
                program::Content::File { data, mode }
                    if options.layout == Layout::Split && !shared.contains(&f.path) =>
                {
                    separate.add_compressed(&f.path, *mode, data, FileCompression::Zstd)?;
                }
                program::Content::File { data, mode } => {
                    tree.add_file(&f.path, *mode, data.clone())?
                }
                program::Content::Symlink { target } => tree.add_symlink(&f.path, target)?,
            }
        }
    }
    let mut superseded_adds = Vec::new();
    for (file, data, perm) in extra {
        if let Some(package) = same_library_from_package(bird.as_ref(), &file.guest, &data) {
            superseded_adds.push(manifest::SupersededAdd {
                path: file.guest.clone(),
                package,
            });
            continue;
        }
        tree.add_file(&file.guest, perm, data)?;
    }

    let (initrd, segments) = layout::write_initrd(
        &separate.tree,
        &tree,
        options.compression,
        options.effort,
        options.mtime,
    )
    .map_err(|source| BuildError::Compress {
        format: options.compression.name(),
        source,
    })?;

    let ipxe = ipxe_script(&cmdline);
    let mut initramfs_files = separate.file_entries();
    for (path, entry) in tree.iter() {
        if let EntryKind::File(data) = &entry.kind {
            let mut file = FileEntry::new(path, data);
            file.mode = Some(format!("{:04o}", entry.perm));
            initramfs_files.push(file);
        }
    }
    let module_entries = module_entries(
        &order,
        &index,
        &boot_set,
        &nic_set,
        &firmware_missing,
        &stored_modules,
    );
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        kernel_version: version.clone(),
        kernel: KernelSource {
            package: kernel_package,
            package_sha256: package_bytes_sha,
            version,
        },
        compression: options.compression.name().to_string(),
        layout: options.layout.name().to_string(),
        cmdline,
        outputs: vec![
            FileEntry::new("vmlinuz", &package.vmlinuz),
            FileEntry::new("initrd.img", &initrd),
            FileEntry::new("boot.ipxe", ipxe.as_bytes()),
        ],
        totals: Totals {
            initramfs_compressed_bytes: initrd.len() as u64,
            initramfs_uncompressed_bytes: segments.iter().map(|s| s.cpio_bytes).sum(),
            kernel_decompressed_bytes: segments
                .iter()
                .filter(|s| s.compression != "none")
                .map(|s| s.cpio_bytes)
                .sum(),
            initramfs_files: initramfs_files.len() as u64,
            module_count: module_entries.len() as u64,
            module_bytes: module_entries.iter().map(|m| m.size).sum(),
            firmware_files: firmware_files.len() as u64,
            firmware_bytes: firmware_files.iter().map(|(f, _)| f.size).sum(),
            bird_bytes: bird.as_ref().map(|b| b.bytes()).unwrap_or(0),
        },
        initramfs: initramfs_files,
        segments,
        modules: module_entries,
        builtin_roots: closure.builtin_roots.into_iter().collect(),
        profile: options.profile.name().to_string(),
        nic_drivers: resolved
            .iter()
            .map(|r| NicDriverEntry {
                entry: r.entry.spec.to_string(),
                origin: r.entry.origin.clone(),
                modules: r.modules.clone(),
            })
            .collect(),
        firmware: firmware_files.into_iter().map(|(f, _)| f).collect(),
        firmware_missing,
        trusted_keys: trusted
            .iter()
            .map(|k| manifest::TrustedKey {
                fingerprint: k.fingerprint(),
                comment: k.comment.clone(),
            })
            .collect(),
        clock_floor,
        bird: bird.as_ref().map(program_entry),
        superseded_adds,
        inputs_sha256: String::new(),
    };
    Ok(Image {
        vmlinuz: package.vmlinuz,
        initrd,
        ipxe,
        manifest,
    })
}

/// The package that already gives the image `guest` as the same shared library (same
/// `DT_SONAME`) that an `--add` file is: the test image adds the host's libraries of its tools
/// at the same multiarch paths, and the package's file stays, so BIRD runs in the test image
/// with exactly the files of the default image. `None` when the path is not a library from the
/// packages (a real clash is then reported by the tree as a duplicate path).
fn same_library_from_package(
    closure: Option<&program::Closure>,
    guest: &str,
    data: &[u8],
) -> Option<String> {
    let closure = closure?;
    let carried = closure.files.iter().find(|f| f.path == guest)?;
    let package_soname = |c: &program::Carried| match &c.content {
        program::Content::File { data, .. } => elf::dynamic_info(data).ok()?.soname,
        program::Content::Symlink { target } => closure
            .files
            .iter()
            .find(|f| &f.path == target)
            .and_then(|f| match &f.content {
                program::Content::File { data, .. } => elf::dynamic_info(data).ok()?.soname,
                program::Content::Symlink { .. } => None,
            }),
    };
    let added = elf::dynamic_info(data).ok()?.soname?;
    (package_soname(carried)? == added).then(|| carried.package.clone())
}

/// The files of `closure` that an `--add`ed file stands in for (the same library), with the
/// files their symlinks point at.
fn shared_with_extras(
    closure: &program::Closure,
    extra: &[(&ExtraFile, Vec<u8>, u32)],
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (file, data, _) in extra {
        if same_library_from_package(Some(closure), &file.guest, data).is_none() {
            continue;
        }
        out.insert(file.guest.clone());
        let target = closure.files.iter().find_map(|f| match &f.content {
            program::Content::Symlink { target } if f.path == file.guest => Some(target.clone()),
            _ => None,
        });
        if let Some(target) = target {
            let resolved = if target.starts_with('/') {
                target
            } else {
                let dir = file.guest.rsplit_once('/').map_or("", |(d, _)| d);
                format!("{dir}/{target}")
            };
            out.insert(resolved);
        }
    }
    out
}

/// What the manifest says of a program carried from packages.
fn program_entry(closure: &program::Closure) -> manifest::ProgramEntry {
    manifest::ProgramEntry {
        path: closure.program.clone(),
        package: closure.package.clone(),
        version: closure.version.clone(),
        bytes: closure.bytes(),
        files: closure
            .files
            .iter()
            .map(|f| {
                let (size, sha256, link) = match &f.content {
                    program::Content::File { data, .. } => {
                        (data.len() as u64, manifest::sha256_hex(data), None)
                    }
                    program::Content::Symlink { target } => {
                        (0, String::new(), Some(target.clone()))
                    }
                };
                manifest::ProgramFile {
                    path: f.path.clone(),
                    role: f.role.name().to_string(),
                    size,
                    sha256,
                    link,
                    package: f.package.clone(),
                    version: f.version.clone(),
                }
            })
            .collect(),
    }
}

/// The modules in load order under `/lib/modules/VERSION`, with the lists modprobe and init
/// read (`modules.dep`, `.alias`, `.softdep`, and the package's builtin lists). Those of
/// `separate` go in the separate archive as `NAME.ko.zst`. Returns each module's path as
/// stored, relative to the modules directory.
fn add_modules(
    tree: &mut Tree,
    separate: &mut Separate,
    separate_modules: &BTreeSet<String>,
    version: &str,
    order: &[String],
    index: &ModuleIndex,
    package: &KernelPackage,
) -> Result<BTreeMap<String, String>, BuildError> {
    let moddir = format!("/lib/modules/{version}");
    tree.add_dir(&moddir, 0o755)?;
    let mut stored = BTreeMap::new();
    for name in order {
        let module = index.get(name).expect("closure members are indexed");
        let data = package.modules[&module.path].clone();
        let guest = format!("/lib/modules/{version}/{}", module.path);
        let path = if separate_modules.contains(name) {
            separate.add_compressed(&guest, 0o644, &data, FileCompression::Zstd)?
        } else {
            tree.add_file(&guest, 0o644, data)?;
            guest
        };
        let rel = path[moddir.len() + 1..].to_string();
        stored.insert(name.clone(), rel);
    }
    let lists = [
        (
            "modules.dep",
            index.modules_dep_as(order, |name| &stored[name]),
        ),
        ("modules.alias", index.modules_alias(order)),
        ("modules.softdep", index.modules_softdep(order)),
    ];
    for (name, text) in lists {
        tree.add_file(&format!("{moddir}/{name}"), 0o644, text.into_bytes())?;
    }
    for list in ["modules.builtin", "modules.builtin.modinfo"] {
        if let Some(data) = package.module_lists.get(list) {
            tree.add_file(&format!("{moddir}/{list}"), 0o644, data.clone())?;
        }
    }
    Ok(stored)
}

/// What the manifest says of each module carried.
fn module_entries(
    order: &[String],
    index: &ModuleIndex,
    boot_set: &BTreeSet<String>,
    nic_set: &BTreeSet<String>,
    missing: &[MissingFirmware],
    stored: &BTreeMap<String, String>,
) -> Vec<ModuleEntry> {
    order
        .iter()
        .map(|name| {
            let m = index.get(name).expect("indexed");
            ModuleEntry {
                name: m.name.clone(),
                path: stored.get(name).unwrap_or(&m.path).clone(),
                size: m.size,
                compression: stored
                    .get(name)
                    .filter(|p| **p != m.path)
                    .map(|_| FileCompression::Zstd.name().to_string()),
                depends: m
                    .info
                    .depends
                    .iter()
                    .map(|d| modules::normalize_name(d))
                    .collect(),
                boot: boot_set.contains(name),
                nic: nic_set.contains(name),
                softdeps: m.info.softdeps.clone(),
                firmware: m.info.firmware.clone(),
                firmware_missing: missing
                    .iter()
                    .filter(|f| f.module == m.name)
                    .map(|f| f.file.clone())
                    .collect(),
            }
        })
        .collect()
}

/// What [`build`] did.
#[derive(Debug)]
pub struct Built {
    /// The manifest of the image now in `options.out`.
    pub manifest: Manifest,
    /// False when the image there was already built from the same inputs and left alone.
    pub rebuilt: bool,
}

/// Builds and writes the image to `options.out`, replacing a previous image there — unless
/// that image was built from the same inputs ([`inputs_sha256`]) and its files still match
/// its manifest, and `force` is false: then it is left as it is. A build from the same inputs
/// is byte for byte the same, so skipping it changes nothing but the time.
pub fn build(options: &BuildOptions, force: bool) -> Result<Built, BuildError> {
    // An input that cannot be read is reported by `assemble`, with what it is.
    let inputs = inputs_sha256(options).ok();
    if let (false, Some(inputs)) = (force, &inputs) {
        if let Some(manifest) = unchanged(&options.out, inputs) {
            return Ok(Built {
                manifest,
                rebuilt: false,
            });
        }
    }
    check_output_replaceable(&options.out)?;
    let mut image = assemble(options)?;
    image.manifest.inputs_sha256 = inputs.unwrap_or_default();
    write_output(&options.out, &image)?;
    Ok(Built {
        manifest: image.manifest,
        rebuilt: true,
    })
}

/// The manifest in `out` if it records `inputs` and every output file still matches it.
fn unchanged(out: &Path, inputs: &str) -> Option<Manifest> {
    let inspection = crate::inspect::inspect(out).ok()?;
    (inspection.manifest.inputs_sha256 == inputs && inspection.all_ok())
        .then_some(inspection.manifest)
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

fn host_perm(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}

fn sha256_file(path: &Path) -> Result<String, BuildError> {
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

/// An existing output must be a previous image (has manifest.json) or an empty directory, so
/// a typo in `--out` cannot wipe an unrelated directory.
fn check_output_replaceable(out: &Path) -> Result<(), BuildError> {
    let meta = match fs::symlink_metadata(out) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BuildError::Output {
                path: out.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(BuildError::OutputInUse {
            path: out.to_path_buf(),
            reason: "it exists and is not a directory",
        });
    }
    let empty = fs::read_dir(out)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty && !out.join("manifest.json").is_file() {
        return Err(BuildError::OutputInUse {
            path: out.to_path_buf(),
            reason: "it is a non-empty directory without manifest.json (not an image output)",
        });
    }
    Ok(())
}

fn output_parent(out: &Path) -> Result<(PathBuf, String), BuildError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BuildError::OutputInUse {
            path: out.to_path_buf(),
            reason: "it has no final path component",
        })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    let err = |source| BuildError::Output {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::create(path).map_err(err)?;
    file.write_all(data).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Writes into `<parent>/<name>.tmp-XXXX`, then swaps it into place; on any error the temp
/// directory is removed and a previous image at `out` is left as it was.
pub fn write_output(out: &Path, image: &Image) -> Result<(), BuildError> {
    check_output_replaceable(out)?;
    let (parent, name) = output_parent(out)?;
    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Output { path, source }
    };
    fs::create_dir_all(&parent).map_err(out_err(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp-"))
        .tempdir_in(&parent)
        .map_err(out_err(&parent))?;
    write_file(&tmp.path().join("vmlinuz"), &image.vmlinuz)?;
    write_file(&tmp.path().join("initrd.img"), &image.initrd)?;
    write_file(&tmp.path().join("boot.ipxe"), image.ipxe.as_bytes())?;
    write_file(
        &tmp.path().join("manifest.json"),
        &manifest::to_json(&image.manifest),
    )?;
    // Readable by the pxe server whatever our umask.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(out_err(tmp.path()))?;

    if fs::symlink_metadata(out).is_ok() {
        let old = tempfile::Builder::new()
            .prefix(&format!("{name}.old-"))
            .tempdir_in(&parent)
            .map_err(out_err(&parent))?
            .keep();
        // `old` is an empty directory: rename(2) replaces it with the previous image.
        fs::rename(out, &old).map_err(out_err(out))?;
        if let Err(source) = fs::rename(tmp.path(), out) {
            let _ = fs::rename(&old, out);
            return Err(BuildError::Output {
                path: out.to_path_buf(),
                source,
            });
        }
        let _ = tmp.keep();
        fs::remove_dir_all(&old).map_err(out_err(&old))?;
    } else {
        fs::rename(tmp.path(), out).map_err(out_err(out))?;
        let _ = tmp.keep();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_gets_initrd_first() {
        assert_eq!(
            full_cmdline(None).unwrap(),
            format!("initrd=initrd.img {DEFAULT_CMDLINE}")
        );
        assert_eq!(
            full_cmdline(Some("console=ttyS0 lb.debug")).unwrap(),
            "initrd=initrd.img console=ttyS0 lb.debug"
        );
        assert_eq!(
            full_cmdline(Some("initrd=other.img quiet")).unwrap(),
            "initrd=other.img quiet"
        );
        assert_eq!(full_cmdline(Some("")).unwrap(), "initrd=initrd.img");
        assert!(full_cmdline(Some("a\nchain http://evil/")).is_err());
        assert!(full_cmdline(Some(&"x".repeat(3000))).is_err());
    }

    #[test]
    fn ipxe_script_is_relative() {
        assert_eq!(
            ipxe_script("initrd=initrd.img console=ttyS0"),
            "#!ipxe\nkernel vmlinuz initrd=initrd.img console=ttyS0\ninitrd initrd.img\nboot\n"
        );
    }

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

    #[test]
    fn refuses_to_replace_unrelated_directories() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        assert!(check_output_replaceable(&out).is_ok());
        fs::create_dir(&out).unwrap();
        assert!(check_output_replaceable(&out).is_ok());
        fs::write(out.join("precious.txt"), b"x").unwrap();
        assert!(matches!(
            check_output_replaceable(&out),
            Err(BuildError::OutputInUse { .. })
        ));
        fs::write(out.join("manifest.json"), b"{}").unwrap();
        assert!(check_output_replaceable(&out).is_ok());
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(check_output_replaceable(&file).is_err());
    }

    fn tiny_image(tag: &str) -> Image {
        Image {
            vmlinuz: tag.as_bytes().to_vec(),
            initrd: b"initrd".to_vec(),
            ipxe: ipxe_script("initrd=initrd.img"),
            manifest: Manifest {
                format: MANIFEST_FORMAT,
                kernel_version: "1".into(),
                kernel: KernelSource {
                    package: "k.deb".into(),
                    package_sha256: String::new(),
                    version: "1".into(),
                },
                compression: "gzip".into(),
                layout: "single".into(),
                segments: vec![],
                cmdline: "initrd=initrd.img".into(),
                outputs: vec![],
                initramfs: vec![],
                modules: vec![],
                builtin_roots: vec![],
                profile: "cloud".into(),
                nic_drivers: vec![],
                firmware: vec![],
                firmware_missing: vec![],
                trusted_keys: vec![],
                clock_floor: 0,
                bird: None,
                superseded_adds: vec![],
                inputs_sha256: String::new(),
                totals: Totals {
                    initramfs_compressed_bytes: 0,
                    initramfs_uncompressed_bytes: 0,
                    kernel_decompressed_bytes: 0,
                    initramfs_files: 0,
                    module_count: 0,
                    module_bytes: 0,
                    firmware_files: 0,
                    firmware_bytes: 0,
                    bird_bytes: 0,
                },
            },
        }
    }

    #[test]
    fn output_is_swapped_into_place_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("img");
        write_output(&out, &tiny_image("first")).unwrap();
        assert_eq!(fs::read(out.join("vmlinuz")).unwrap(), b"first");
        fs::write(out.join("stale"), b"from an older build").unwrap();
        write_output(&out, &tiny_image("second")).unwrap();
        assert_eq!(fs::read(out.join("vmlinuz")).unwrap(), b"second");
        assert!(!out.join("stale").exists());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["img"]);
    }
}
