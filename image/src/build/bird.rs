//! BIRD, the program the image carries from Debian packages: reading its closure, putting its
//! files in the initramfs, and what the manifest says of it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{BuildError, ExtraFile};
use crate::cpio::Tree;
use crate::elf;
use crate::layout::{FileCompression, Layout, Separate};
use crate::manifest;
use crate::program::{self, PackageSet};

/// Where BIRD (the BGP speaker lbd starts for N-way services) is in the image: the path its
/// Debian package installs it at.
pub const BIRD_PROGRAM: &str = "/usr/sbin/bird";

/// BIRD's closure from `debs`; no packages, no BIRD.
pub(super) fn read(debs: &[PathBuf]) -> Result<Option<program::Closure>, BuildError> {
    if debs.is_empty() {
        Ok(None)
    } else {
        let set = PackageSet::read(debs)?;
        Ok(Some(program::resolve(&set, BIRD_PROGRAM)?))
    }
}

/// Puts BIRD's files in the initramfs.
pub(super) fn add(
    tree: &mut Tree,
    separate: &mut Separate,
    layout: Layout,
    bird: &program::Closure,
    extra: &[(&ExtraFile, Vec<u8>, u32)],
) -> Result<(), BuildError> {
    // Only N-way balancers run BIRD: with the split layout its files go compressed one by
    // one into the uncompressed archive, and lbd expands them before BIRD first starts
    // (a pair never pays for decompressing them at boot). Libraries an added program also
    // uses (the test image's tools) stay whole: those programs run before any expansion.
    let shared = shared_with_extras(bird, extra);
    for f in &bird.files {
        match &f.content {
            program::Content::File { data, mode }
                if layout == Layout::Split && !shared.contains(&f.path) =>
            {
                separate.add_compressed(&f.path, *mode, data, FileCompression::Zstd)?;
            }
            program::Content::File { data, mode } => tree.add_file(&f.path, *mode, data.clone())?,
            program::Content::Symlink { target } => tree.add_symlink(&f.path, target)?,
        }
    }
    Ok(())
}

/// The package that already gives the image `guest` as the same shared library (same
/// `DT_SONAME`) that an `--add` file is: the test image adds the host's libraries of its tools
/// at the same multiarch paths, and the package's file stays, so BIRD runs in the test image
/// with exactly the files of the default image. `None` when the path is not a library from the
/// packages (a real clash is then reported by the tree as a duplicate path).
pub(super) fn same_library_from_package(
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
pub(super) fn program_entry(closure: &program::Closure) -> manifest::ProgramEntry {
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
