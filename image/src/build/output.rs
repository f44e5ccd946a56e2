//! Writing the image to its output directory: beside it first, then renamed into place.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{BuildError, Image};
use crate::manifest;

/// An existing output must be a previous image (has manifest.json) or an empty directory, so
/// a typo in `--out` cannot wipe an unrelated directory.
pub(super) fn check_output_replaceable(out: &Path) -> Result<(), BuildError> {
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
    use crate::build::ipxe_script;
    use crate::manifest::{KernelSource, Manifest, Totals, MANIFEST_FORMAT};

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
                    payload: String::new(),
                    package_payload: String::new(),
                    stub_source: None,
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
