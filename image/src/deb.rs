//! Reading a Debian kernel package (`linux-image-*.deb`) without dpkg.
//!
//! A .deb is an `ar` archive whose `data.tar.{xz,zst,gz}` member holds the files. We stream
//! through that tar once and keep only the kernel, the modules and the small module lists.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// One member header of an `ar` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Error)]
pub enum DebError {
    #[error("cannot read package {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a Debian package: {reason}")]
    NotDeb { path: PathBuf, reason: String },
    #[error("{path} has no {member} member (members: {members})")]
    NoData {
        path: PathBuf,
        member: String,
        members: String,
    },
    #[error("{path}: cannot unpack {member}: {source}")]
    Data {
        path: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a kernel image package: {reason}")]
    NotKernel { path: PathBuf, reason: String },
    #[error("{path} is not a firmware package: {reason}")]
    NotFirmware { path: PathBuf, reason: String },
    #[error("cannot read package {path}: {reason}")]
    NotPackage { path: PathBuf, reason: String },
}

/// Parses one 60-byte `ar` member header (GNU/BSD common subset: name, decimal size).
pub fn parse_ar_header(header: &[u8; AR_HEADER_LEN]) -> Result<ArMember, String> {
    if &header[58..60] != b"`\n" {
        return Err("bad ar member header terminator".into());
    }
    let field = |range: std::ops::Range<usize>| {
        std::str::from_utf8(&header[range])
            .map(str::trim_end)
            .map_err(|_| "non-ASCII ar header".to_string())
    };
    let name = field(0..16)?.trim_end_matches('/').to_string();
    let size = field(48..58)?
        .parse::<u64>()
        .map_err(|_| format!("bad ar member size for {name:?}"))?;
    Ok(ArMember { name, size })
}

/// Which decoder a `data.tar*` / `control.tar*` member needs, by its name's extension.
fn data_decoder<'a, R: Read + 'a>(name: &str, reader: R) -> Option<Box<dyn Read + 'a>> {
    let ext = name
        .strip_prefix("data.tar")
        .or_else(|| name.strip_prefix("control.tar"))?;
    match ext {
        "" => Some(Box::new(reader)),
        ".xz" => Some(Box::new(liblzma::read::XzDecoder::new_multi_decoder(
            reader,
        ))),
        ".zst" => zstd::stream::read::Decoder::new(reader)
            .ok()
            .map(|d| Box::new(d) as Box<dyn Read>),
        ".gz" => Some(Box::new(flate2::read::GzDecoder::new(reader))),
        _ => None,
    }
}

/// Files we keep from the kernel package.
#[derive(Debug, Default)]
pub struct KernelPackage {
    /// Kernel release, e.g. `6.1.0-56-cloud-amd64` (from `boot/vmlinuz-VER`).
    pub version: String,
    pub vmlinuz: Vec<u8>,
    /// `boot/config-VER`: the config the kernel was built with (empty if the package has none).
    pub config: Vec<u8>,
    /// Module files by path relative to `lib/modules/VER/` (`kernel/...ko`), decompressed if
    /// the package ships `.ko.xz`/`.ko.zst`/`.ko.gz` (the path then ends in `.ko`).
    pub modules: BTreeMap<String, Vec<u8>>,
    /// The newest modification time of the package's files (seconds since the epoch): when
    /// the package was built, a time the box's clock cannot be before.
    pub built_at: u64,
    /// Other files directly in `lib/modules/VER/` that we keep (`modules.builtin`,
    /// `modules.builtin.modinfo`, `modules.order`).
    pub module_lists: BTreeMap<String, Vec<u8>>,
}

/// What a path in data.tar is to us (paths normalized: no `./`, no `usr/` prefix).
#[derive(Debug, PartialEq, Eq)]
enum Wanted<'a> {
    Vmlinuz { version: &'a str },
    Config { version: &'a str },
    Module { version: &'a str, rel: &'a str },
    ModuleList { version: &'a str, file: &'a str },
    Skip,
}

const KEPT_MODULE_LISTS: [&str; 3] = [
    "modules.builtin",
    "modules.builtin.modinfo",
    "modules.order",
];

fn classify(path: &str) -> Wanted<'_> {
    let path = path.trim_start_matches("./");
    // Debian moved /lib to /usr/lib in later releases; accept both layouts.
    let path = path.strip_prefix("usr/").unwrap_or(path);
    if let Some(version) = path.strip_prefix("boot/vmlinuz-") {
        if !version.contains('/') && !version.is_empty() {
            return Wanted::Vmlinuz { version };
        }
    }
    if let Some(version) = path.strip_prefix("boot/config-") {
        if !version.contains('/') && !version.is_empty() {
            return Wanted::Config { version };
        }
    }
    if let Some(rest) = path.strip_prefix("lib/modules/") {
        if let Some((version, rel)) = rest.split_once('/') {
            if rel.starts_with("kernel/")
                && [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                    .iter()
                    .any(|ext| rel.ends_with(ext))
            {
                return Wanted::Module { version, rel };
            }
            if KEPT_MODULE_LISTS.contains(&rel) {
                return Wanted::ModuleList { version, file: rel };
            }
        }
    }
    Wanted::Skip
}

fn decompress_module(rel: &str, data: Vec<u8>) -> io::Result<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(stem) = rel.strip_suffix(".xz") {
        liblzma::read::XzDecoder::new(&data[..]).read_to_end(&mut out)?;
        Ok((stem.to_string(), out))
    } else if let Some(stem) = rel.strip_suffix(".zst") {
        Ok((stem.to_string(), zstd::stream::decode_all(&data[..])?))
    } else if let Some(stem) = rel.strip_suffix(".gz") {
        flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut out)?;
        Ok((stem.to_string(), out))
    } else {
        Ok((rel.to_string(), data))
    }
}

/// Reads the kernel, modules and module lists from a kernel .deb in one pass.
pub fn read_kernel_package(path: &Path) -> Result<KernelPackage, DebError> {
    with_data_tar(
        path,
        |r| read_data_tar(r),
        |path, reason| DebError::NotKernel {
            path: path.to_path_buf(),
            reason,
        },
    )
}

/// Opens the `data.tar*` member of the .deb at `path` and hands its decoded tar stream to
/// `read`; `invalid` turns a content complaint of `read` into the caller's error.
pub(crate) fn with_data_tar<T>(
    path: &Path,
    read: impl FnOnce(Box<dyn Read + '_>) -> Result<T, DataError>,
    invalid: impl FnOnce(&Path, String) -> DebError,
) -> Result<T, DebError> {
    with_member_tar(path, "data.tar", read, invalid)
}

/// [`with_data_tar`] for the member whose name starts with `prefix` (`data.tar`,
/// `control.tar`).
pub(crate) fn with_member_tar<T>(
    path: &Path,
    prefix: &str,
    read: impl FnOnce(Box<dyn Read + '_>) -> Result<T, DataError>,
    invalid: impl FnOnce(&Path, String) -> DebError,
) -> Result<T, DebError> {
    let io_err = |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_deb = |reason: String| DebError::NotDeb {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_err)?);
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic)
        .map_err(|_| not_deb("file is shorter than an ar header".into()))?;
    if &magic != AR_MAGIC {
        return Err(not_deb("no ar archive magic (!<arch>)".into()));
    }
    let mut members = Vec::new();
    loop {
        let mut header = [0u8; AR_HEADER_LEN];
        match file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err(e)),
        }
        let member = parse_ar_header(&header).map_err(not_deb)?;
        members.push(member.name.clone());
        if member.name.starts_with(prefix) {
            let limited = (&mut file).take(member.size);
            let decoder = data_decoder(&member.name, limited).ok_or_else(|| DebError::Data {
                path: path.to_path_buf(),
                member: member.name.clone(),
                source: io::Error::new(io::ErrorKind::Unsupported, "unsupported compression"),
            })?;
            return read(decoder).map_err(|e| match e {
                DataError::Io(source) => DebError::Data {
                    path: path.to_path_buf(),
                    member: member.name.clone(),
                    source,
                },
                DataError::Invalid(reason) => invalid(path, reason),
            });
        }
        // Members are 2-byte aligned.
        let skip = member.size + (member.size & 1);
        file.seek(SeekFrom::Current(skip as i64)).map_err(io_err)?;
    }
    Err(DebError::NoData {
        path: path.to_path_buf(),
        member: prefix.to_string(),
        members: members.join(", "),
    })
}

/// A package's control fields.
pub fn read_control(path: &Path) -> Result<Control, DebError> {
    let control = with_member_tar(path, "control.tar", read_control_tar, |path, reason| {
        DebError::NotPackage {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    if control.package.is_empty() || control.version.is_empty() {
        return Err(DebError::NotPackage {
            path: path.to_path_buf(),
            reason: "its control file has no Package or Version field".into(),
        });
    }
    Ok(control)
}

/// The fields of a package's `control` file that the image records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// `Package:`, e.g. `bird2`.
    pub package: String,
    /// `Version:`, e.g. `2.0.12-7` or `1:1.2.13.dfsg-1`.
    pub version: String,
    /// `Architecture:`, e.g. `amd64` or `all`.
    pub architecture: String,
}

/// Parses a `control` file (RFC 822 style; continuation lines start with a space).
pub fn parse_control(text: &str) -> Control {
    let mut control = Control::default();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match key {
            "Package" => control.package = value,
            "Version" => control.version = value,
            "Architecture" => control.architecture = value,
            _ => {}
        }
    }
    control
}

/// One file or symlink of a package's data, by absolute path as the package installs it
/// (`/usr/sbin/bird`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageEntry {
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// A Debian package read whole: its control fields and the files and symlinks of its data
/// (directories and documentation under `/usr/share` are left out).
#[derive(Debug, Clone, Default)]
pub struct Package {
    /// The .deb's file name (no host directory).
    pub file: String,
    pub control: Control,
    pub entries: BTreeMap<String, PackageEntry>,
}

/// Reads a package's control fields and its files (not `/usr/share`: documentation, man
/// pages, the changelog) in two passes over the .deb.
pub fn read_package(path: &Path) -> Result<Package, DebError> {
    let control = read_control(path)?;
    let entries = with_data_tar(path, read_package_tar, |path, reason| {
        DebError::NotPackage {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    Ok(Package {
        file: file_name(path),
        control,
        entries,
    })
}

/// A package's file name without its directory (what manifests record; never a host path).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_control_tar(reader: Box<dyn Read + '_>) -> Result<Control, DataError> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path.trim_start_matches("./") == "control" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(parse_control(&text));
        }
    }
    Err(DataError::Invalid(
        "its control.tar has no control file".into(),
    ))
}

fn read_package_tar(
    reader: Box<dyn Read + '_>,
) -> Result<BTreeMap<String, PackageEntry>, DataError> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = format!("/{}", path.trim_start_matches("./").trim_end_matches('/'));
        if path.starts_with("/usr/share/") {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut data)?;
            entries.insert(path, PackageEntry::File { data, mode });
        } else if kind.is_symlink() {
            if let Some(target) = entry.link_name()? {
                let target = target.to_string_lossy().into_owned();
                entries.insert(path, PackageEntry::Symlink { target });
            }
        }
    }
    Ok(entries)
}

pub(crate) enum DataError {
    Io(io::Error),
    /// The package is readable but not what the caller wants (the reason says why).
    Invalid(String),
}

impl From<io::Error> for DataError {
    fn from(e: io::Error) -> Self {
        DataError::Io(e)
    }
}

fn read_data_tar(reader: impl Read) -> Result<KernelPackage, DataError> {
    let mut archive = tar::Archive::new(reader);
    let mut package = KernelPackage::default();
    let mut vmlinuz_versions = Vec::new();
    let mut configs = BTreeMap::new();
    let mut module_versions = std::collections::BTreeSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if let Ok(mtime) = entry.header().mtime() {
            package.built_at = package.built_at.max(mtime);
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        match classify(&path) {
            Wanted::Skip => {}
            Wanted::Vmlinuz { version } => {
                vmlinuz_versions.push(version.to_string());
                package.version = version.to_string();
                package.vmlinuz.clear();
                entry.read_to_end(&mut package.vmlinuz)?;
            }
            Wanted::Config { version } => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                configs.insert(version.to_string(), data);
            }
            Wanted::Module { version, rel } => {
                module_versions.insert(version.to_string());
                let rel = rel.to_string();
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data)?;
                let (rel, data) = decompress_module(&rel, data).map_err(|e| {
                    io::Error::new(e.kind(), format!("decompressing module {rel}: {e}"))
                })?;
                package.modules.insert(rel, data);
            }
            Wanted::ModuleList { version, file } => {
                module_versions.insert(version.to_string());
                let file = file.to_string();
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                package.module_lists.insert(file, data);
            }
        }
    }
    match vmlinuz_versions.len() {
        0 => return Err(DataError::Invalid("it has no boot/vmlinuz-*".into())),
        1 => {}
        _ => {
            return Err(DataError::Invalid(format!(
                "it has several kernels: {}",
                vmlinuz_versions.join(", ")
            )))
        }
    }
    let expected: std::collections::BTreeSet<String> = [package.version.clone()].into();
    if !module_versions.is_empty() && module_versions != expected {
        return Err(DataError::Invalid(format!(
            "kernel is {} but modules are for {}",
            package.version,
            module_versions.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    package.config = configs.remove(&package.version).unwrap_or_default();
    Ok(package)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ar_header(name: &str, size: usize) -> [u8; 60] {
        let text = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name, 0, 0, 0, 100644, size
        );
        text.as_bytes().try_into().unwrap()
    }

    #[test]
    fn parses_gnu_ar_headers() {
        let member = parse_ar_header(&ar_header("data.tar.xz/", 12345)).unwrap();
        assert_eq!(
            member,
            ArMember {
                name: "data.tar.xz".into(),
                size: 12345
            }
        );
        let mut bad = ar_header("x", 1);
        bad[59] = b'X';
        assert!(parse_ar_header(&bad).is_err());
    }

    #[test]
    fn parses_control_fields() {
        let control = parse_control(
            "Package: zlib1g\nSource: zlib\nVersion: 1:1.2.13.dfsg-1+deb12u1\n\
             Architecture: amd64\nDescription: compression library\n Version: not this one\n",
        );
        assert_eq!(
            control,
            Control {
                package: "zlib1g".into(),
                version: "1:1.2.13.dfsg-1+deb12u1".into(),
                architecture: "amd64".into(),
            }
        );
    }

    #[test]
    fn classifies_package_paths() {
        assert_eq!(
            classify("./boot/vmlinuz-6.1.0-56-cloud-amd64"),
            Wanted::Vmlinuz {
                version: "6.1.0-56-cloud-amd64"
            }
        );
        assert_eq!(
            classify("./usr/lib/modules/6.12.1/kernel/net/x.ko.xz"),
            Wanted::Module {
                version: "6.12.1",
                rel: "kernel/net/x.ko.xz"
            }
        );
        assert_eq!(
            classify("./lib/modules/6.1.0/modules.builtin"),
            Wanted::ModuleList {
                version: "6.1.0",
                file: "modules.builtin"
            }
        );
        assert_eq!(
            classify("./boot/config-6.1.0-57-amd64"),
            Wanted::Config {
                version: "6.1.0-57-amd64"
            }
        );
        assert_eq!(classify("./boot/System.map-6.1.0"), Wanted::Skip);
        assert_eq!(classify("./usr/share/doc/x/changelog.gz"), Wanted::Skip);
        assert_eq!(classify("./lib/modules/6.1.0/kernel/x.txt"), Wanted::Skip);
    }

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn deb_with(data_name: &str, data: &[u8]) -> Vec<u8> {
        let mut deb = AR_MAGIC.to_vec();
        for (name, body) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.xz", &b"xyz"[..]),
            (data_name, data),
        ] {
            deb.extend_from_slice(&ar_header(name, body.len()));
            deb.extend_from_slice(body);
            if body.len() % 2 == 1 {
                deb.push(b'\n');
            }
        }
        deb
    }

    #[test]
    fn reads_a_synthetic_package_with_compressed_modules() {
        let mut ko_gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        ko_gz.write_all(b"module-bytes").unwrap();
        let ko_gz = ko_gz.finish().unwrap();
        let tar = tar_with(&[
            ("./boot/vmlinuz-1.2.3", b"kernel"),
            ("./boot/config-1.2.3", b"CONFIG_NET=y\n"),
            ("./boot/config-0.9", b"another kernel's\n"),
            ("./lib/modules/1.2.3/kernel/a/b.ko", b"plain"),
            ("./lib/modules/1.2.3/kernel/a/c.ko.gz", &ko_gz),
            ("./lib/modules/1.2.3/modules.builtin", b"kernel/x.ko\n"),
            ("./usr/share/doc/readme", b"skip me"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let deb = deb_with("data.tar.gz", &gz.finish().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.deb");
        std::fs::write(&path, deb).unwrap();

        let package = read_kernel_package(&path).unwrap();
        assert_eq!(package.version, "1.2.3");
        assert_eq!(package.vmlinuz, b"kernel");
        assert_eq!(package.config, b"CONFIG_NET=y\n");
        assert_eq!(package.modules["kernel/a/b.ko"], b"plain");
        assert_eq!(package.modules["kernel/a/c.ko"], b"module-bytes");
        assert_eq!(package.modules.len(), 2);
        assert_eq!(package.module_lists["modules.builtin"], b"kernel/x.ko\n");
    }

    #[test]
    fn rejects_non_debs_and_non_kernels() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.deb");
        std::fs::write(&text, b"hello, this is not an archive").unwrap();
        assert!(matches!(
            read_kernel_package(&text),
            Err(DebError::NotDeb { .. })
        ));

        let no_kernel = dir.path().join("nokernel.deb");
        std::fs::write(
            &no_kernel,
            deb_with("data.tar", &tar_with(&[("./usr/bin/x", b"x")])),
        )
        .unwrap();
        let err = read_kernel_package(&no_kernel).unwrap_err();
        assert!(matches!(err, DebError::NotKernel { .. }), "{err}");
        assert!(err.to_string().contains("no boot/vmlinuz"));

        let missing = dir.path().join("missing.deb");
        assert!(matches!(
            read_kernel_package(&missing),
            Err(DebError::Io { .. })
        ));
    }
}
