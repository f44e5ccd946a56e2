//! The initramfs besides modules, firmware and BIRD: the skeleton with init and lbd, the
//! files under `/etc/lb` that tell init about the image, the `--add` files, and the archive
//! written from it all.

use std::collections::BTreeMap;

use lbd::trust::PublicKey;

use super::bird::same_library_from_package;
use super::{BuildError, BuildOptions, ExtraFile};
use crate::cpio::{EntryKind, Tree};
use crate::layout::{self, Separate};
use crate::manifest::{self, FileEntry, ImageInfo, InitrdSegment, SupersededAdd};
use crate::modules;
use crate::program;

/// The directories and device nodes init expects, with init and lbd.
pub(super) fn skeleton(init: Vec<u8>, lbd: Vec<u8>) -> Result<Tree, BuildError> {
    let mut tree = Tree::new();
    for dir in ["/dev", "/proc", "/sys", "/run", "/etc", "/etc/lb", "/bin"] {
        tree.add_dir(dir, 0o755)?;
    }
    tree.add_dir("/tmp", 0o1777)?;
    tree.add_char_dev("/dev/console", 0o600, 5, 1)?;
    tree.add_char_dev("/dev/null", 0o666, 1, 3)?;
    tree.add_file("/init", 0o755, init)?;
    tree.add_file("/bin/lbd", 0o755, lbd)?;
    Ok(tree)
}

/// What init reads under `/etc/lb`: the modules to load at boot, the image's description,
/// the clock floor and the keys configs must be signed with.
pub(super) fn add_image_settings(
    tree: &mut Tree,
    boot_order: &[String],
    image_info: &ImageInfo,
    clock_floor: u64,
    trusted: &[PublicKey],
) -> Result<(), BuildError> {
    tree.add_file(
        "/etc/lb/modules.boot",
        0o644,
        modules::modules_boot(boot_order).into_bytes(),
    )?;
    tree.add_file("/etc/lb/image.json", 0o644, manifest::to_json(image_info))?;
    tree.add_file(
        "/etc/lb/clock_floor",
        0o644,
        format!("{clock_floor}\n").into_bytes(),
    )?;
    if !trusted.is_empty() {
        let lines: String = trusted.iter().map(|k| k.to_openssh() + "\n").collect();
        tree.add_file("/etc/lb/trusted_keys", 0o644, lines.into_bytes())?;
    }
    Ok(())
}

/// Adds the `--add` files, except those BIRD's packages already give as the same library;
/// returns those left out.
pub(super) fn add_extra_files(
    tree: &mut Tree,
    bird: Option<&program::Closure>,
    extra: Vec<(&ExtraFile, Vec<u8>, u32)>,
) -> Result<Vec<SupersededAdd>, BuildError> {
    let mut superseded_adds = Vec::new();
    for (file, data, perm) in extra {
        if let Some(package) = same_library_from_package(bird, &file.guest, &data) {
            superseded_adds.push(SupersededAdd {
                path: file.guest.clone(),
                package,
            });
            continue;
        }
        tree.add_file(&file.guest, perm, data)?;
    }
    Ok(superseded_adds)
}

/// The written `initrd.img` and what the manifest says of its contents.
pub(super) struct Initramfs {
    pub(super) initrd: Vec<u8>,
    pub(super) segments: Vec<InitrdSegment>,
    /// Every file of both archives.
    pub(super) files: Vec<FileEntry>,
    /// Each module's path as stored, relative to the modules directory.
    pub(super) stored_modules: BTreeMap<String, String>,
    /// The `--add` files left out for a package's same library.
    pub(super) superseded_adds: Vec<SupersededAdd>,
}

impl Initramfs {
    /// Writes `separate` and `tree` as the initrd.
    pub(super) fn write(
        options: &BuildOptions,
        separate: &Separate,
        tree: &Tree,
        stored_modules: BTreeMap<String, String>,
        superseded_adds: Vec<SupersededAdd>,
    ) -> Result<Self, BuildError> {
        let (initrd, segments) = layout::write_initrd(
            &separate.tree,
            tree,
            options.compression,
            options.effort,
            options.mtime,
        )
        .map_err(|source| BuildError::Compress {
            format: options.compression.name(),
            source,
        })?;
        let mut files = separate.file_entries();
        for (path, entry) in tree.iter() {
            if let EntryKind::File(data) = &entry.kind {
                let mut file = FileEntry::new(path, data);
                file.mode = Some(format!("{:04o}", entry.perm));
                files.push(file);
            }
        }
        Ok(Initramfs {
            initrd,
            segments,
            files,
            stored_modules,
            superseded_adds,
        })
    }
}
