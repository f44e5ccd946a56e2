//! Which NIC drivers an image carries: a list the operator can read and extend, by module name
//! or by PCI ID (`8086:1572`, as `lspci -nn` prints it), resolved against the kernel package.
//!
//! Pure logic: parsing the list and resolving it over module metadata; no I/O.

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

use crate::modules::{normalize_name, ModuleIndex};

/// The bare-metal driver list: the NICs of real servers, plus the virtual ones.
pub const BARE_METAL_LIST: &str = include_str!("../drivers/bare-metal.txt");
/// The cloud driver list: virtual NICs and the SR-IOV/cloud NICs of the cloud kernel.
pub const CLOUD_LIST: &str = include_str!("../drivers/cloud.txt");

/// What kind of machine the image is for: decides the kernel flavour and the NIC driver list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Debian's generic kernel with the NICs of real servers (and the virtual ones).
    #[default]
    BareMetal,
    /// Debian's cloud kernel: virtual NICs only; a smaller image for VMs.
    Cloud,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::BareMetal => "bare-metal",
            Profile::Cloud => "cloud",
        }
    }

    /// The driver list used unless `--nic-drivers` replaces it, and its name in messages.
    pub fn default_list(self) -> (&'static str, &'static str) {
        match self {
            Profile::BareMetal => (BARE_METAL_LIST, "image/drivers/bare-metal.txt"),
            Profile::Cloud => (CLOUD_LIST, "image/drivers/cloud.txt"),
        }
    }

    /// Whether a kernel release (`6.1.0-57-amd64`, `6.1.0-57-cloud-amd64`) is this
    /// profile's flavour.
    pub fn matches_kernel(self, release: &str) -> bool {
        let cloud = release.contains("-cloud-");
        match self {
            Profile::BareMetal => !cloud,
            Profile::Cloud => cloud,
        }
    }
}

/// One entry of a driver list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverSpec {
    /// A module name (`ixgbe`, `xen-netfront`; `-` and `_` alike).
    Module(String),
    /// A PCI vendor:device ID: every module whose aliases name that exact vendor and device.
    Pci { vendor: u16, device: u16 },
}

impl fmt::Display for DriverSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverSpec::Module(name) => f.write_str(name),
            DriverSpec::Pci { vendor, device } => write!(f, "{vendor:04x}:{device:04x}"),
        }
    }
}

/// A driver list entry and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub spec: DriverSpec,
    /// `file:line`, or `--nic-driver` for one given on the command line.
    pub origin: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DriverError {
    #[error("{origin}: {text:?} is neither a module name nor a PCI ID (VVVV:DDDD, four hex digits each, as `lspci -nn` prints)")]
    Syntax { origin: String, text: String },
    #[error("{origin}: NIC driver {name:?} is not in the kernel package{}", suggestions_text(.suggestions))]
    UnknownModule {
        origin: String,
        name: String,
        suggestions: Vec<String>,
    },
    #[error("{origin}: no module in the kernel package drives PCI device {id} (no alias names that vendor and device)")]
    UnknownPciId { origin: String, id: String },
}

fn suggestions_text(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (close matches: {})", s.join(", "))
    }
}

/// Parses one entry: a module name or `VVVV:DDDD`.
pub fn parse_spec(text: &str, origin: &str) -> Result<DriverSpec, DriverError> {
    let syntax = || DriverError::Syntax {
        origin: origin.to_string(),
        text: text.to_string(),
    };
    if let Some((v, d)) = text.split_once(':') {
        let hex = |s: &str| {
            (s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(s, 16).ok())
                .flatten()
        };
        return match (hex(v), hex(d)) {
            (Some(vendor), Some(device)) => Ok(DriverSpec::Pci { vendor, device }),
            _ => Err(syntax()),
        };
    }
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(DriverSpec::Module(normalize_name(text)))
    } else {
        Err(syntax())
    }
}

/// Parses a list file: one entry per line, `#` starts a comment, blank lines ignored.
pub fn parse_list(text: &str, file: &str) -> Result<Vec<ListEntry>, DriverError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let origin = format!("{file}:{}", i + 1);
        for word in line.split_whitespace() {
            entries.push(ListEntry {
                spec: parse_spec(word, &origin)?,
                origin: origin.clone(),
            });
        }
    }
    Ok(entries)
}

/// A list entry resolved to modules of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub entry: ListEntry,
    /// Module names (normalized); one for a module name, one or more for a PCI ID.
    pub modules: Vec<String>,
}

/// Resolves every entry against the package; any entry the package cannot satisfy is an
/// error (a list that names a driver the image would not carry must not build quietly).
pub fn resolve(entries: &[ListEntry], index: &ModuleIndex) -> Result<Vec<Resolved>, DriverError> {
    entries
        .iter()
        .map(|entry| {
            let modules = match &entry.spec {
                DriverSpec::Module(name) => {
                    if index.get(name).is_none() && !index.is_builtin(name) {
                        return Err(DriverError::UnknownModule {
                            origin: entry.origin.clone(),
                            name: name.clone(),
                            suggestions: index.suggest(name),
                        });
                    }
                    vec![name.clone()]
                }
                DriverSpec::Pci { vendor, device } => {
                    let found = modules_for_pci(index, *vendor, *device);
                    if found.is_empty() {
                        return Err(DriverError::UnknownPciId {
                            origin: entry.origin.clone(),
                            id: entry.spec.to_string(),
                        });
                    }
                    found
                }
            };
            Ok(Resolved {
                entry: entry.clone(),
                modules,
            })
        })
        .collect()
}

/// Modules with an alias naming exactly this vendor and device. Aliases with a wildcard in
/// either (`pci:v*d*...` of vfio-pci, `pci:v00008086d*...bc01sc06...` of ahci) match by
/// class or by vendor, not this NIC, and do not count.
pub fn modules_for_pci(index: &ModuleIndex, vendor: u16, device: u16) -> Vec<String> {
    let vendor_text = format!("{:08X}", vendor as u32);
    let device_text = format!("{:08X}", device as u32);
    let mut found = BTreeSet::new();
    for module in index.modules() {
        for alias in &module.info.aliases {
            let Some((v, d)) = pci_alias_ids(alias) else {
                continue;
            };
            if v == vendor_text && d == device_text {
                found.insert(module.name.clone());
            }
        }
    }
    found.into_iter().collect()
}

/// The vendor and device fields of a PCI alias (`pci:v00008086d000010D3sv*sd*bc*sc*i*`),
/// upper-cased as the kernel writes device modaliases.
fn pci_alias_ids(alias: &str) -> Option<(String, String)> {
    let rest = alias.strip_prefix("pci:v")?;
    let (vendor, rest) = rest.split_once('d')?;
    let device = rest.split("sv").next()?;
    Some((vendor.to_ascii_uppercase(), device.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::ModInfo;
    use crate::modules::KernelModule;

    fn module(name: &str, aliases: &[&str]) -> KernelModule {
        KernelModule {
            name: name.into(),
            path: format!("kernel/drivers/net/ethernet/{name}.ko"),
            size: 1,
            info: ModInfo {
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                ..ModInfo::default()
            },
        }
    }

    fn index() -> ModuleIndex {
        ModuleIndex::new(
            [
                module("e1000e", &["pci:v00008086d000010D3sv*sd*bc*sc*i*"]),
                module("ixgbe", &["pci:v00008086d000010FBsv*sd*bc*sc*i*"]),
                module("8139cp", &["pci:v000010ECd00008139sv*sd*bc*sc*i*"]),
                module("8139too", &["pci:v000010ECd00008139sv*sd*bc*sc*i*"]),
                module("vfio_pci", &["pci:v*d*sv*sd*bc*sc*i*"]),
                module("ahci", &["pci:v00008086d*sv*sd*bc01sc06i01*"]),
            ],
            ["af_packet".to_string()].into(),
        )
        .unwrap()
    }

    #[test]
    fn parses_names_ids_and_comments() {
        let list = parse_list(
            "# Intel\ne1000e   # 82574L\n\n8086:10FB xen-netfront\n",
            "list.txt",
        )
        .unwrap();
        let specs: Vec<String> = list.iter().map(|e| e.spec.to_string()).collect();
        assert_eq!(specs, ["e1000e", "8086:10fb", "xen_netfront"]);
        assert_eq!(list[1].origin, "list.txt:4");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse_list("e1000e\n8086:10F\n", "my.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "my.txt:2: \"8086:10F\" is neither a module name nor a PCI ID (VVVV:DDDD, four hex digits each, as `lspci -nn` prints)"
        );
        assert!(parse_list("ixgbe.ko\n", "f").is_err());
        assert!(parse_list("zz12:0000\n", "f").is_err());
    }

    #[test]
    fn pci_ids_resolve_through_exact_aliases_only() {
        let index = index();
        assert_eq!(modules_for_pci(&index, 0x8086, 0x10d3), ["e1000e"]);
        assert_eq!(
            modules_for_pci(&index, 0x10ec, 0x8139),
            ["8139cp", "8139too"]
        );
        // Catch-all and class aliases (vfio-pci, ahci) are not drivers for a NIC.
        assert!(modules_for_pci(&index, 0x1234, 0x5678).is_empty());
        assert!(modules_for_pci(&index, 0x8086, 0xffff).is_empty());
    }

    #[test]
    fn unknown_entries_are_errors_with_suggestions() {
        let index = index();
        let list = parse_list("e1000\n", "l").unwrap();
        let err = resolve(&list, &index).unwrap_err();
        assert_eq!(
            err.to_string(),
            "l:1: NIC driver \"e1000\" is not in the kernel package (close matches: e1000e)"
        );
        let list = parse_list("1234:5678\n", "l").unwrap();
        assert!(matches!(
            resolve(&list, &index),
            Err(DriverError::UnknownPciId { .. })
        ));
        let list = parse_list("af_packet ixgbe 8086:10d3\n", "l").unwrap();
        let resolved = resolve(&list, &index).unwrap();
        assert_eq!(resolved[2].modules, ["e1000e"]);
    }

    #[test]
    fn shipped_lists_parse() {
        assert!(parse_list(BARE_METAL_LIST, "bare-metal.txt").unwrap().len() > 20);
        assert!(!parse_list(CLOUD_LIST, "cloud.txt").unwrap().is_empty());
    }
}
