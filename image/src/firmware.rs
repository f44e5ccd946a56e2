//! Firmware for the drivers an image carries: the files their `.modinfo` `firmware=` entries
//! name, taken from Debian firmware packages (`firmware-bnx2x`, `firmware-misc-nonfree`, ...),
//! and what a driver loses when a file it asks for is not there.
//!
//! The kernel's own loader reads `/lib/firmware/NAME` from the initramfs when a driver asks
//! for it, so carrying the file is all it takes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::deb::{self, DataError, DebError};

/// Firmware files by name relative to `/lib/firmware`, with the package each came from.
#[derive(Debug, Default)]
pub struct FirmwareStore {
    files: BTreeMap<String, (Vec<u8>, String)>,
    /// Symlinks inside the packages: name → target name (relative to `/lib/firmware`).
    links: BTreeMap<String, String>,
    /// Package file names read, in order.
    pub packages: Vec<String>,
}

/// One firmware file found for a requested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// Name the file is stored under in the initramfs (the requested name, or with `.xz`).
    pub name: String,
    pub data: &'a [u8],
    pub package: &'a str,
}

impl FirmwareStore {
    /// Reads every file under `lib/firmware/` of each .deb.
    pub fn read_packages(paths: &[PathBuf]) -> Result<Self, DebError> {
        let mut store = FirmwareStore::default();
        for path in paths {
            let package = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (files, links) = deb::with_data_tar(
                path,
                |r| read_firmware_tar(r),
                |path, reason| DebError::NotFirmware {
                    path: path.to_path_buf(),
                    reason,
                },
            )?;
            for (name, data) in files {
                store.files.insert(name, (data, package.clone()));
            }
            store.links.extend(links);
            store.packages.push(package);
        }
        Ok(store)
    }

    /// Adds one file (tests, and firmware given as a plain file).
    pub fn insert(&mut self, name: &str, data: Vec<u8>, package: &str) {
        self.files
            .insert(name.to_string(), (data, package.to_string()));
    }

    /// The file for a requested name: exact, or the `.xz` the kernel also accepts, following
    /// the packages' symlinks (a few hops at most).
    pub fn find(&self, requested: &str) -> Option<Found<'_>> {
        for name in [requested.to_string(), format!("{requested}.xz")] {
            let mut target = name.clone();
            for _ in 0..8 {
                if let Some((data, package)) = self.files.get(&target) {
                    return Some(Found {
                        name: name.clone(),
                        data,
                        package,
                    });
                }
                match self.links.get(&target) {
                    Some(next) => target = next.clone(),
                    None => break,
                }
            }
        }
        None
    }

    /// The bytes stored under exactly this name (a name [`Self::find`] returned).
    pub fn find_exact(&self, name: &str) -> Option<&[u8]> {
        self.find(name)
            .filter(|f| f.name == name)
            .map(|f| f.data)
            .or_else(|| {
                let stem = name.strip_suffix(".xz")?;
                self.find(stem).filter(|f| f.name == name).map(|f| f.data)
            })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

type FirmwareFiles = (Vec<(String, Vec<u8>)>, Vec<(String, String)>);

fn read_firmware_tar(reader: Box<dyn Read + '_>) -> Result<FirmwareFiles, DataError> {
    let mut archive = tar::Archive::new(reader);
    let mut files = Vec::new();
    let mut links = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(name) = firmware_name(&path) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data)?;
            files.push((name, data));
        } else if kind.is_symlink() {
            if let Some(target) = entry.link_name()? {
                let target = target.to_string_lossy().into_owned();
                if let Some(resolved) = resolve_link(&name, &target) {
                    links.push((name, resolved));
                }
            }
        }
    }
    if files.is_empty() {
        return Err(DataError::Invalid(
            "it has no files under lib/firmware/".into(),
        ));
    }
    Ok((files, links))
}

/// `./lib/firmware/a/b.bin` (or under `usr/`) → `a/b.bin`.
fn firmware_name(path: &str) -> Option<String> {
    let path = path.trim_start_matches("./");
    let path = path.strip_prefix("usr/").unwrap_or(path);
    let name = path.strip_prefix("lib/firmware/")?;
    (!name.is_empty() && !name.ends_with('/')).then(|| name.to_string())
}

/// A symlink's target as a name under `/lib/firmware`, or `None` when it leaves that tree.
fn resolve_link(name: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if let Some(abs) = target.strip_prefix('/') {
        let abs = abs.strip_prefix("usr/").unwrap_or(abs);
        let rest = abs.strip_prefix("lib/firmware")?;
        return normalize(rest.split('/').collect());
    } else {
        let mut dir: Vec<&str> = name.split('/').collect();
        dir.pop();
        dir
    };
    parts.extend(target.split('/'));
    normalize(parts)
}

fn normalize(parts: Vec<&str>) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in parts {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    (!out.is_empty()).then(|| out.join("/"))
}

/// What a driver loses when a firmware file it requests is not in the image. Drivers not
/// named here are assumed to need the file for the NICs that ask for it.
pub fn missing_meaning(module: &str) -> &'static str {
    match module {
        "bnx2" | "bnx2x" | "qed" | "cxgb4" | "qlcnic" | "netxen_nic" | "nfp" | "bna"
        | "liquidio" => "NICs of this driver do not come up without it",
        "ice" => "the NIC runs in safe mode: one queue, no RSS, no flow director",
        "r8169" => "the NIC works; chips that need a fix in this file may drop their link",
        "tg3" => "the NIC works; old chips that need this file lose TSO offload",
        "e100" => "the NIC works without its CPUSaver microcode",
        _ => "NICs of this driver that need this file may not come up",
    }
}

/// Firmware carried and missing, per module, for a set of modules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Name in `/lib/firmware` → (modules asking for it, package).
    pub carried: BTreeMap<String, (BTreeSet<String>, String)>,
    /// (module, requested name) with no file in any package.
    pub missing: Vec<(String, String)>,
}

/// For each module (name, `firmware=` entries), which files the store has and which not.
pub fn select<'a>(
    store: &FirmwareStore,
    modules: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Selection {
    let mut selection = Selection::default();
    for (module, requested) in modules {
        for name in requested {
            match store.find(name) {
                Some(found) => {
                    selection
                        .carried
                        .entry(found.name)
                        .or_insert_with(|| (BTreeSet::new(), found.package.to_string()))
                        .0
                        .insert(module.to_string());
                }
                None => selection
                    .missing
                    .push((module.to_string(), name.to_string())),
            }
        }
    }
    selection
}

/// The firmware .debs in `dir` (sorted by name); none when it does not exist.
pub fn packages_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut debs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    debs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links() {
        assert_eq!(
            firmware_name("./lib/firmware/e100/d101m_ucode.bin").as_deref(),
            Some("e100/d101m_ucode.bin")
        );
        assert_eq!(
            firmware_name("./usr/lib/firmware/tigon/tg3.bin").as_deref(),
            Some("tigon/tg3.bin")
        );
        assert_eq!(firmware_name("./usr/share/doc/x"), None);
        assert_eq!(firmware_name("./lib/firmware/"), None);
        assert_eq!(
            resolve_link("rtl_nic/a.fw", "b.fw").as_deref(),
            Some("rtl_nic/b.fw")
        );
        assert_eq!(
            resolve_link("intel/ice/ddp/ice.pkg", "ice-1.3.30.0.pkg").as_deref(),
            Some("intel/ice/ddp/ice-1.3.30.0.pkg")
        );
        assert_eq!(
            resolve_link("a/b.fw", "../c/d.fw").as_deref(),
            Some("c/d.fw")
        );
        assert_eq!(
            resolve_link("a/b.fw", "/lib/firmware/c.fw").as_deref(),
            Some("c.fw")
        );
        assert_eq!(resolve_link("a.fw", "/etc/passwd"), None);
        assert_eq!(resolve_link("a.fw", "../../x"), None);
    }

    #[test]
    fn finds_files_through_links_and_xz() {
        let mut store = FirmwareStore::default();
        store.insert("intel/ice/ddp/ice-1.3.30.0.pkg", b"ddp".to_vec(), "fw-misc");
        store.links.insert(
            "intel/ice/ddp/ice.pkg".into(),
            "intel/ice/ddp/ice-1.3.30.0.pkg".into(),
        );
        store.insert("bnx2x/e2.fw.xz", b"xz".to_vec(), "fw-bnx2x");
        let found = store.find("intel/ice/ddp/ice.pkg").unwrap();
        assert_eq!(found.name, "intel/ice/ddp/ice.pkg");
        assert_eq!(found.data, b"ddp");
        assert_eq!(store.find("bnx2x/e2.fw").unwrap().name, "bnx2x/e2.fw.xz");
        assert!(store.find("nope.bin").is_none());
    }

    #[test]
    fn selection_records_carried_and_missing() {
        let mut store = FirmwareStore::default();
        store.insert("e100/d101m_ucode.bin", b"u".to_vec(), "fw-misc");
        let e100 = vec!["e100/d101m_ucode.bin".to_string()];
        let bnx2x = vec!["bnx2x/bnx2x-e2-7.13.21.0.fw".to_string()];
        let sel = select(
            &store,
            [("e100", e100.as_slice()), ("bnx2x", bnx2x.as_slice())],
        );
        assert_eq!(
            sel.carried["e100/d101m_ucode.bin"],
            (["e100".to_string()].into(), "fw-misc".to_string())
        );
        assert_eq!(
            sel.missing,
            [(
                "bnx2x".to_string(),
                "bnx2x/bnx2x-e2-7.13.21.0.fw".to_string()
            )]
        );
        assert!(missing_meaning("bnx2x").contains("do not come up"));
        assert!(missing_meaning("ice").contains("safe mode"));
    }
}
