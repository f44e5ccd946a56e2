//! The kernel package and the modules taken from it: which modules the image carries (the
//! boot set, the NIC drivers, their dependencies and soft dependencies), how they are stored
//! in the initramfs, and what the manifest says of each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::inputs::sha256_file;
use super::{BuildError, BuildOptions};
use crate::cpio::Tree;
use crate::deb::{self, KernelPackage};
use crate::drivers::{self, Resolved};
use crate::elf;
use crate::layout::{FileCompression, Layout, Separate};
use crate::manifest::{MissingFirmware, ModuleEntry};
use crate::modules::{self, KernelModule, ModuleError, ModuleIndex, Root};

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

/// The kernel package, read, with its modules indexed.
pub(super) struct Kernel {
    /// The package's file name.
    pub(super) package_name: String,
    pub(super) package_sha256: String,
    pub(super) package: KernelPackage,
    pub(super) index: ModuleIndex,
}

impl Kernel {
    pub(super) fn read(deb: &Path) -> Result<Self, BuildError> {
        let package_sha256 = sha256_file(deb)?;
        let package = deb::read_kernel_package(deb)?;
        let index = index_modules(&package, deb)?;
        let package_name = deb::file_name(deb);
        Ok(Kernel {
            package_name,
            package_sha256,
            package,
            index,
        })
    }

    pub(super) fn version(&self) -> &str {
        &self.package.version
    }

    /// The earliest time the box may believe it is.
    pub(super) fn clock_floor(&self, mtime: u32) -> u64 {
        // The box's clock cannot be before the kernel was built, nor before SOURCE_DATE_EPOCH.
        self.package.built_at.max(mtime as u64)
    }
}

/// The modules the image carries, and which of them are loaded at boot.
pub(super) struct ModuleSelection {
    /// The NIC driver list with the modules each entry resolved to.
    pub(super) resolved: Vec<Resolved>,
    /// The NIC drivers that are modules.
    pub(super) nic_set: BTreeSet<String>,
    /// Every module carried, in load order.
    pub(super) order: Vec<String>,
    /// The closure of the boot roots.
    pub(super) boot_set: BTreeSet<String>,
    /// `boot_set` in load order: what init loads at boot.
    pub(super) boot_order: Vec<String>,
    /// Roots that are compiled into the kernel.
    pub(super) builtin_roots: BTreeSet<String>,
}

impl ModuleSelection {
    pub(super) fn select(options: &BuildOptions, kernel: &Kernel) -> Result<Self, BuildError> {
        let index = &kernel.index;
        let resolved =
            drivers::resolve(&options.nic_drivers, index).map_err(|source| BuildError::Driver {
                kernel: kernel.version().to_string(),
                source,
            })?;
        let (nic_set, nic_roots) = nic_roots(index, &resolved);
        let boot_roots = with_softdeps(index, &boot_roots(index, &options.extra_modules))?;
        let nic_roots = with_softdeps(index, &nic_roots)?;
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
        Ok(ModuleSelection {
            resolved,
            nic_set,
            order,
            boot_set,
            boot_order,
            builtin_roots: closure.builtin_roots,
        })
    }

    /// The modules that go in the separate archive (see [`crate::layout`]).
    pub(super) fn separate(&self, layout: Layout) -> BTreeSet<String> {
        match layout {
            Layout::Split => self
                .order
                .iter()
                .filter(|n| !self.boot_set.contains(*n))
                .cloned()
                .collect(),
            Layout::Single => BTreeSet::new(),
        }
    }
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

/// The modules in load order under `/lib/modules/VERSION`, with the lists modprobe and init
/// read (`modules.dep`, `.alias`, `.softdep`, and the package's builtin lists). Those of
/// `separate` go in the separate archive as `NAME.ko.zst`. Returns each module's path as
/// stored, relative to the modules directory.
pub(super) fn add_modules(
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
pub(super) fn module_entries(
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
