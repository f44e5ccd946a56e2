//! The firmware the carried drivers request: taken from the firmware packages, or reported
//! missing.

use std::path::PathBuf;

use super::BuildError;
use crate::cpio::Tree;
use crate::firmware::{self, FirmwareStore};
use crate::layout::{FileCompression, Layout, Separate};
use crate::manifest::{self, FirmwareEntry, MissingFirmware};
use crate::modules::ModuleIndex;

/// The firmware files the image carries and those no package has.
pub(super) struct FirmwareFiles {
    /// Each carried file's manifest entry and contents.
    pub(super) carried: Vec<(FirmwareEntry, Vec<u8>)>,
    pub(super) missing: Vec<MissingFirmware>,
}

impl FirmwareFiles {
    /// The files requested by the modules of `order` (in that order) found in `debs`.
    pub(super) fn select(
        debs: &[PathBuf],
        index: &ModuleIndex,
        order: &[String],
    ) -> Result<Self, BuildError> {
        let store = FirmwareStore::read_packages(debs)?;
        let selection = firmware::select(
            &store,
            order.iter().map(|name| {
                let m = index.get(name).expect("indexed");
                (m.name.as_str(), m.info.firmware.as_slice())
            }),
        );
        let mut carried = Vec::new();
        for (path, (modules, package)) in &selection.carried {
            let found = store.find_exact(path).expect("selected from the store");
            carried.push((
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
        let missing: Vec<MissingFirmware> = selection
            .missing
            .iter()
            .map(|(module, file)| MissingFirmware {
                module: module.clone(),
                file: file.clone(),
                meaning: firmware::missing_meaning(module).to_string(),
            })
            .collect();
        Ok(FirmwareFiles { carried, missing })
    }

    /// Puts the carried files under `/lib/firmware`: with the split layout each compressed on
    /// its own in the separate archive, its entry recording how it is stored.
    pub(super) fn add(
        &mut self,
        tree: &mut Tree,
        separate: &mut Separate,
        layout: Layout,
    ) -> Result<(), BuildError> {
        if !self.carried.is_empty() {
            tree.add_dir("/lib/firmware", 0o755)?;
        }
        for (entry, data) in &mut self.carried {
            let guest = format!("/lib/firmware/{}", entry.path);
            match layout {
                Layout::Split => {
                    let stored =
                        separate.add_compressed(&guest, 0o644, data, FileCompression::Xz)?;
                    entry.compression = Some(FileCompression::Xz.name().to_string());
                    entry.stored_size = separate.stored_size(&stored);
                }
                Layout::Single => tree.add_file(&guest, 0o644, data.clone())?,
            }
        }
        Ok(())
    }
}
