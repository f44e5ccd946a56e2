//! `manifest.json` (beside the outputs) and `/etc/lb/image.json` (inside the initramfs).
//!
//! Both are serialized from plain structs whose collections are ordered (`Vec` built in a
//! fixed order, `BTreeMap`), so they are byte-identical across identical builds. Neither holds
//! a timestamp or a host path.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the manifest layout; bump on incompatible changes.
pub const MANIFEST_FORMAT: u32 = 1;

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// One file: path (relative to the output directory, or absolute inside the initramfs), size
/// in bytes, SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Permission bits as octal text (initramfs files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A file of the uncompressed archive stored compressed on its own (`zstd` for
    /// `NAME.ko.zst`, `xz` for firmware `NAME.xz`): `size` and `sha256` are the stored bytes,
    /// these what they decompress to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

impl FileEntry {
    pub fn new(path: impl Into<String>, data: &[u8]) -> Self {
        FileEntry {
            path: path.into(),
            size: data.len() as u64,
            sha256: sha256_hex(data),
            mode: None,
            compression: None,
            content_size: None,
            content_sha256: None,
        }
    }
}

/// One kernel module in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    pub name: String,
    /// Where it is in the initramfs, relative to `/lib/modules/VER/` (as in `modules.dep`):
    /// the package's path, plus `.zst` when stored compressed.
    pub path: String,
    /// Size of the module itself (uncompressed), in bytes.
    pub size: u64,
    /// `zstd` when stored as `NAME.ko.zst` in the uncompressed archive (init decompresses it
    /// before loading it); absent when stored as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Direct dependencies (`depends=`).
    pub depends: Vec<String>,
    /// Loaded at boot from `/etc/lb/modules.boot` (false for NIC drivers, which are
    /// coldplugged by modalias).
    pub boot: bool,
    /// A NIC driver from the driver list (coldplugged by init when its device is present).
    pub nic: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub softdeps: Vec<String>,
    /// Firmware the driver may request (`firmware=`); carried files are in [`Manifest::firmware`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware: Vec<String>,
    /// Requested firmware that no firmware package had (see [`Manifest::firmware_missing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firmware_missing: Vec<String>,
}

/// One entry of the NIC driver list and the modules it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDriverEntry {
    /// As written: a module name or a PCI ID (`8086:10d3`).
    pub entry: String,
    /// `list-file:line` or `--nic-driver`.
    pub origin: String,
    pub modules: Vec<String>,
}

/// A firmware file in the initramfs (`/lib/firmware/PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareEntry {
    /// The name drivers request, relative to `/lib/firmware`.
    pub path: String,
    /// Size and hash of the firmware itself (uncompressed).
    pub size: u64,
    pub sha256: String,
    /// `xz` when stored as `/lib/firmware/PATH.xz` (the kernel's loader decompresses it);
    /// absent when stored as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Bytes in the initramfs (the compressed file's size when compressed).
    #[serde(default)]
    pub stored_size: u64,
    /// The firmware package it came from.
    pub package: String,
    /// The modules that request it.
    pub modules: Vec<String>,
}

/// A key in `/etc/lb/trusted_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
}

/// A firmware file a carried module requests that no firmware package had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingFirmware {
    pub module: String,
    pub file: String,
    /// What the driver loses without it.
    pub meaning: String,
}

/// Sizes and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// `initrd.img` size in bytes.
    pub initramfs_compressed_bytes: u64,
    /// The cpio archives as the kernel unpacks them (the compressed one decompressed), in
    /// bytes.
    pub initramfs_uncompressed_bytes: u64,
    /// The part of those the kernel must decompress at boot (the compressed archive's cpio);
    /// the rest it only copies.
    #[serde(default)]
    pub kernel_decompressed_bytes: u64,
    pub initramfs_files: u64,
    pub module_count: u64,
    /// Sum of the module file sizes (uncompressed), in bytes.
    pub module_bytes: u64,
    #[serde(default)]
    pub firmware_files: u64,
    /// Sum of the firmware file sizes, in bytes.
    #[serde(default)]
    pub firmware_bytes: u64,
    /// Sum of BIRD's files (program, libraries, loader), in bytes.
    #[serde(default)]
    pub bird_bytes: u64,
}

/// A program carried from Debian packages with its shared libraries and loader (BIRD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramEntry {
    /// Where it is in the image (`/usr/sbin/bird`).
    pub path: String,
    /// Its Debian package and version (`bird2`, `2.0.12-7`).
    pub package: String,
    pub version: String,
    /// Sum of the regular files' sizes, in bytes.
    pub bytes: u64,
    /// The program, each shared library of its `DT_NEEDED` closure and the loader, by path.
    pub files: Vec<ProgramFile>,
}

/// One path of a [`ProgramEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramFile {
    pub path: String,
    /// `program`, `library` or `loader`.
    pub role: String,
    /// 0 for a symlink.
    pub size: u64,
    /// Empty for a symlink.
    pub sha256: String,
    /// A symlink's target (another path of the program's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub package: String,
    pub version: String,
}

/// An `--add` file left out because a package already gives the image the same library there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupersededAdd {
    pub path: String,
    /// The package whose file the image carries instead.
    pub package: String,
}

/// A program in `/etc/lb/image.json`: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProgram {
    pub path: String,
    pub package: String,
    pub version: String,
    /// Every file it needs (program, libraries, loader; symlinks too): lbd expands the ones
    /// the image stores compressed (`PATH.zst`) before it first starts the program.
    #[serde(default)]
    pub files: Vec<String>,
}

/// One archive of `initrd.img` (the kernel unpacks them in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitrdSegment {
    /// Byte offset in `initrd.img`.
    pub offset: u64,
    /// Bytes in `initrd.img`.
    pub size: u64,
    /// `none` (a plain cpio archive), or `zstd`, `gzip`, `xz`.
    pub compression: String,
    /// The cpio archive's size once decompressed, in bytes.
    pub cpio_bytes: u64,
    /// Regular files in it.
    pub files: u64,
}

/// The kernel package the image was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSource {
    /// File name only (never the host directory).
    pub package: String,
    pub package_sha256: String,
    pub version: String,
    /// How `vmlinuz`'s payload is compressed (`lz4`), and how the package's was (`xz`).
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub package_payload: String,
    /// The source package the boot stub was rebuilt from, when `vmlinuz` is not the
    /// package's own (the kernel inside is: see `image::restub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub_source: Option<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kernel_version: String,
    pub kernel: KernelSource,
    pub compression: String,
    /// `split` (NIC drivers outside the boot set and firmware in an uncompressed archive
    /// first, each file compressed on its own) or `single` (one compressed archive).
    #[serde(default)]
    pub layout: String,
    /// The archives of `initrd.img`, in order.
    #[serde(default)]
    pub segments: Vec<InitrdSegment>,
    /// Kernel command line written to `boot.ipxe`.
    pub cmdline: String,
    /// `vmlinuz`, `initrd.img`, `boot.ipxe`.
    pub outputs: Vec<FileEntry>,
    /// Every regular file inside the initramfs, in archive order (the uncompressed archive
    /// first).
    pub initramfs: Vec<FileEntry>,
    /// Modules in load order (dependencies first).
    pub modules: Vec<ModuleEntry>,
    /// Configured roots that are compiled into this kernel (nothing to load).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtin_roots: Vec<String>,
    /// `bare-metal` or `cloud`.
    #[serde(default)]
    pub profile: String,
    /// The NIC driver list, resolved.
    #[serde(default)]
    pub nic_drivers: Vec<NicDriverEntry>,
    /// Firmware carried for the modules, by path.
    #[serde(default)]
    pub firmware: Vec<FirmwareEntry>,
    /// Firmware requested but not found in any firmware package.
    #[serde(default)]
    pub firmware_missing: Vec<MissingFirmware>,
    /// Operator keys whose signatures the image's init requires on configs.
    #[serde(default)]
    pub trusted_keys: Vec<TrustedKey>,
    /// Seconds since the epoch the box's clock cannot be before (`/etc/lb/clock_floor`).
    #[serde(default)]
    pub clock_floor: u64,
    /// BIRD, the BGP speaker, from its Debian packages (absent in an image built without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird: Option<ProgramEntry>,
    /// `--add` files the packages already provided (see [`SupersededAdd`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded_adds: Vec<SupersededAdd>,
    pub totals: Totals,
    /// SHA-256 over everything that decides the image's bytes (see `build::inputs_sha256`):
    /// a build whose inputs hash the same leaves the image as it is.
    #[serde(default)]
    pub inputs_sha256: String,
}

/// `/etc/lb/image.json`: what init and operators can learn about the running image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub format: u32,
    pub kernel_version: String,
    pub kernel_package: String,
    pub kernel_package_sha256: String,
    /// `image` crate version that built this.
    pub builder: String,
    pub compression: String,
    #[serde(default)]
    pub layout: String,
    pub cmdline: String,
    pub init_sha256: String,
    pub lbd_sha256: String,
    /// Extra files added with `--add`, as guest path → SHA-256.
    pub extra_files: std::collections::BTreeMap<String, String>,
    pub modules: u64,
    pub boot_modules: u64,
    #[serde(default)]
    pub profile: String,
    /// NIC driver modules carried (coldplugged when their device is present).
    #[serde(default)]
    pub nic_drivers: Vec<String>,
    #[serde(default)]
    pub firmware_files: u64,
    /// Fingerprints of the trusted keys.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    #[serde(default)]
    pub clock_floor: u64,
    /// BIRD, when the image carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird: Option<ImageProgram>,
}

/// Pretty JSON with a trailing newline.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("manifest types always serialize");
    text.push(b'\n');
    text
}
