//! `image inspect DIR`: summarize a built image and verify its output files against the
//! manifest's hashes.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::manifest::{sha256_hex, Manifest};

#[derive(Debug, Error)]
pub enum InspectError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid image manifest: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One output file checked against the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    Ok,
    Missing,
    Mismatch { size: u64 },
}

pub struct Inspection {
    pub manifest: Manifest,
    pub checks: Vec<(String, FileCheck)>,
}

impl Inspection {
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|(_, c)| *c == FileCheck::Ok)
    }
}

pub fn inspect(dir: &Path) -> Result<Inspection, InspectError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read(&path).map_err(|source| InspectError::Read {
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|source| InspectError::Parse { path, source })?;
    let checks = manifest
        .outputs
        .iter()
        .map(|entry| {
            let check = match std::fs::read(dir.join(&entry.path)) {
                Err(_) => FileCheck::Missing,
                Ok(data)
                    if data.len() as u64 == entry.size && sha256_hex(&data) == entry.sha256 =>
                {
                    FileCheck::Ok
                }
                Ok(data) => FileCheck::Mismatch {
                    size: data.len() as u64,
                },
            };
            (entry.path.clone(), check)
        })
        .collect();
    Ok(Inspection { manifest, checks })
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Human-readable summary.
pub fn summary(inspection: &Inspection) -> String {
    let m = &inspection.manifest;
    let mut out = String::new();
    write_boot(&mut out, m);
    write_modules(&mut out, m);
    write_firmware(&mut out, m);
    write_bird(&mut out, m);
    write_trust(&mut out, m);
    write_checks(&mut out, inspection);
    out
}

/// The kernel, its command line and the initramfs with each of its archives.
fn write_boot(out: &mut String, m: &Manifest) {
    let t = &m.totals;
    let _ = writeln!(
        out,
        "kernel      {} ({})",
        m.kernel_version, m.kernel.package
    );
    match (&m.kernel.stub_source, m.kernel.payload.as_str()) {
        (Some(source), payload) => {
            let _ = writeln!(
                out,
                "            the package's kernel with a {payload} payload (the package's is {}); boot stub rebuilt from {source}",
                m.kernel.package_payload
            );
        }
        (None, "") => {}
        (None, payload) => {
            let _ = writeln!(out, "            the package's vmlinuz ({payload} payload)");
        }
    }
    let _ = writeln!(out, "cmdline     {}", m.cmdline);
    let _ = writeln!(
        out,
        "initramfs   {} {} ({} uncompressed, {} files)",
        mib(t.initramfs_compressed_bytes),
        m.compression,
        mib(t.initramfs_uncompressed_bytes),
        t.initramfs_files
    );
    for s in &m.segments {
        let what = if s.compression == "none" {
            let separate = |suffix: &str| {
                m.initramfs
                    .iter()
                    .filter(|f| f.compression.is_some() && f.path.ends_with(suffix))
                    .count()
            };
            format!(
                "uncompressed cpio, copied by the kernel: {} modules .ko.zst, {} firmware .xz",
                separate(".ko.zst"),
                separate(".xz")
            )
        } else {
            format!(
                "{} cpio, decompressed by the kernel to {}",
                s.compression,
                mib(s.cpio_bytes)
            )
        };
        let _ = writeln!(
            out,
            "  archive   {} at {}: {} files, {what}",
            mib(s.size),
            s.offset,
            s.files
        );
    }
}

/// The modules, the profile and the NIC drivers.
fn write_modules(out: &mut String, m: &Manifest) {
    let t = &m.totals;
    let boot = m.modules.iter().filter(|x| x.boot).count();
    let nic: Vec<&str> = m
        .modules
        .iter()
        .filter(|x| x.nic)
        .map(|x| x.name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "modules     {} ({}), {} loaded at boot",
        t.module_count,
        mib(t.module_bytes),
        boot,
    );
    let _ = writeln!(
        out,
        "profile     {}",
        if m.profile.is_empty() {
            "(not recorded)"
        } else {
            &m.profile
        }
    );
    let _ = writeln!(
        out,
        "NIC drivers {} (coldplugged by PCI/virtio ID): {}",
        nic.len(),
        if nic.is_empty() {
            "none".to_string()
        } else {
            nic.join(" ")
        }
    );
}

/// The firmware carried, by package and file, and what is missing.
fn write_firmware(out: &mut String, m: &Manifest) {
    let t = &m.totals;
    let mut by_package: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for f in &m.firmware {
        let e = by_package.entry(f.package.as_str()).or_default();
        e.0 += 1;
        e.1 += f.size;
    }
    let _ = writeln!(
        out,
        "firmware    {} files ({}){}",
        t.firmware_files,
        mib(t.firmware_bytes),
        by_package
            .iter()
            .map(|(p, (n, size))| format!("\n            {n:>4} from {p} ({})", mib(*size)))
            .collect::<String>()
    );
    for f in &m.firmware {
        let stored = match &f.compression {
            Some(c) => format!(" ({c}, {})", f.stored_size),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "            {:<44} {:>10}{stored}  for {}",
            f.path,
            f.size,
            f.modules.join(" ")
        );
    }
    for warning in firmware_warnings(m) {
        let _ = writeln!(out, "missing     {warning}");
    }
}

/// BIRD's files, and the `--add` files its packages stood in for.
fn write_bird(out: &mut String, m: &Manifest) {
    match &m.bird {
        None => {
            let _ = writeln!(
                out,
                "bird        not carried: no BGP speaker (N-way services cannot run)"
            );
        }
        Some(b) => {
            let libraries = b.files.iter().filter(|f| f.role == "library").count();
            let _ = writeln!(
                out,
                "bird        {} {} from {} {}: {} files ({}): the program, {} libraries, the loader",
                b.path,
                upstream_version(&b.version),
                b.package,
                b.version,
                b.files.len(),
                mib(b.bytes),
                libraries,
            );
            for f in &b.files {
                let what = match &f.link {
                    Some(target) => format!("-> {target}"),
                    None => format!("{:>10}", f.size),
                };
                let _ = writeln!(
                    out,
                    "            {:<44} {:<10} {} {}",
                    f.path, what, f.package, f.version
                );
            }
        }
    }
    for add in &m.superseded_adds {
        let _ = writeln!(
            out,
            "note        --add {} left out: package {} gives the same library there",
            add.path, add.package
        );
    }
}

/// The keys configs must be signed with, and the roots built into the kernel.
fn write_trust(out: &mut String, m: &Manifest) {
    if m.trusted_keys.is_empty() {
        let _ = writeln!(
            out,
            "trust       no keys: configs are applied without a signature check"
        );
    } else {
        for k in &m.trusted_keys {
            let _ = writeln!(
                out,
                "trust       configs must be signed by {} {}",
                k.fingerprint, k.comment
            );
        }
    }
    if !m.builtin_roots.is_empty() {
        let _ = writeln!(out, "built in    {}", m.builtin_roots.join(" "));
    }
}

/// Each output file with how it compares to the manifest.
fn write_checks(out: &mut String, inspection: &Inspection) {
    let m = &inspection.manifest;
    for (entry, (_, check)) in m.outputs.iter().zip(&inspection.checks) {
        let status = match check {
            FileCheck::Ok => "ok".to_string(),
            FileCheck::Missing => "MISSING".to_string(),
            FileCheck::Mismatch { size } => format!("MISMATCH (now {size} bytes)"),
        };
        let _ = writeln!(
            out,
            "{:<11} {:>12}  {}  {}",
            entry.path,
            mib(entry.size),
            &entry.sha256[..16.min(entry.sha256.len())],
            status
        );
    }
}

/// A Debian version without its epoch and Debian revision: `1:2.0.12-7` → `2.0.12`, the
/// version the upstream program reports.
pub fn upstream_version(debian: &str) -> &str {
    let v = debian.split_once(':').map(|(_, v)| v).unwrap_or(debian);
    v.rsplit_once('-').map(|(v, _)| v).unwrap_or(v)
}

/// One line per module that requests firmware the image does not carry: how many files,
/// which, and what the driver loses.
pub fn firmware_warnings(m: &crate::Manifest) -> Vec<String> {
    let mut by_module: std::collections::BTreeMap<&str, (Vec<&str>, &str)> = Default::default();
    for f in &m.firmware_missing {
        let e = by_module
            .entry(f.module.as_str())
            .or_insert((Vec::new(), f.meaning.as_str()));
        e.0.push(f.file.as_str());
    }
    by_module
        .into_iter()
        .map(|(module, (files, meaning))| {
            let requested = m
                .modules
                .iter()
                .find(|x| x.name == module)
                .map(|x| x.firmware.len())
                .unwrap_or(files.len());
            let shown: Vec<&str> = files.iter().take(4).copied().collect();
            let more = if files.len() > shown.len() {
                format!(", and {} more", files.len() - shown.len())
            } else {
                String::new()
            };
            format!(
                "driver {module}: {} of its {requested} requested firmware files are in no firmware package ({}{more}): {meaning}",
                files.len(),
                shown.join(", "),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream_version("2.0.12-7"), "2.0.12");
        assert_eq!(upstream_version("1:1.2.13.dfsg-1+deb12u1"), "1.2.13.dfsg");
        assert_eq!(upstream_version("1.46"), "1.46");
    }
}
