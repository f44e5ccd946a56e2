//! What the image says of itself: `/etc/lb/image.json` for init and lbd on the box, and
//! `manifest.json` beside the boot files.

use std::collections::BTreeMap;

use super::bird::{program_entry, same_library_from_package};
use super::boot::ipxe_script;
use super::firmware_files::FirmwareFiles;
use super::initramfs::Initramfs;
use super::inputs::{BootSettings, HostFiles};
use super::kernel_image::KernelImage;
use super::kernel_modules::{module_entries, Kernel, ModuleSelection};
use super::{BuildOptions, Image};
use crate::manifest::{
    self, FileEntry, ImageInfo, KernelSource, Manifest, ModuleEntry, NicDriverEntry, Totals,
    MANIFEST_FORMAT,
};
use crate::program;

/// `/etc/lb/image.json`: the image as the box sees it.
pub(super) fn image_info(
    options: &BuildOptions,
    files: &HostFiles,
    settings: &BootSettings,
    bird: Option<&program::Closure>,
    kernel: &Kernel,
    selection: &ModuleSelection,
    firmware: &FirmwareFiles,
) -> ImageInfo {
    ImageInfo {
        format: MANIFEST_FORMAT,
        kernel_version: kernel.version().to_string(),
        kernel_package: kernel.package_name.clone(),
        kernel_package_sha256: kernel.package_sha256.clone(),
        builder: format!("image {}", env!("CARGO_PKG_VERSION")),
        compression: options.compression.name().to_string(),
        layout: options.layout.name().to_string(),
        cmdline: settings.cmdline.clone(),
        init_sha256: manifest::sha256_hex(&files.init),
        lbd_sha256: manifest::sha256_hex(&files.lbd),
        extra_files: files
            .extra
            .iter()
            .filter(|(f, data, _)| same_library_from_package(bird, &f.guest, data).is_none())
            .map(|(f, data, _)| (f.guest.clone(), manifest::sha256_hex(data)))
            .collect::<BTreeMap<_, _>>(),
        modules: selection.order.len() as u64,
        boot_modules: selection.boot_order.len() as u64,
        profile: options.profile.name().to_string(),
        nic_drivers: selection.nic_set.iter().cloned().collect(),
        firmware_files: firmware.carried.len() as u64,
        trusted_keys: settings.trusted.iter().map(|k| k.fingerprint()).collect(),
        clock_floor: kernel.clock_floor(options.mtime),
        bird: bird.map(|b| manifest::ImageProgram {
            path: b.program.clone(),
            package: b.package.clone(),
            version: b.version.clone(),
            files: b.files.iter().map(|f| f.path.clone()).collect(),
        }),
    }
}

/// The finished image: the kernel, the initrd, the iPXE script, and the manifest of all of
/// it (without the inputs' hash, which `build` adds).
pub(super) fn image(
    options: &BuildOptions,
    (kernel, kernel_image): (Kernel, KernelImage),
    selection: &ModuleSelection,
    firmware: FirmwareFiles,
    settings: BootSettings,
    bird: Option<program::Closure>,
    initramfs: Initramfs,
) -> Image {
    let ipxe = ipxe_script(&settings.cmdline);
    let clock_floor = kernel.clock_floor(options.mtime);
    let module_entries = module_entries(
        &selection.order,
        &kernel.index,
        &selection.boot_set,
        &selection.nic_set,
        &firmware.missing,
        &initramfs.stored_modules,
    );
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        kernel_version: kernel.version().to_string(),
        kernel: KernelSource {
            package: kernel.package_name,
            package_sha256: kernel.package_sha256,
            version: kernel.package.version.clone(),
            payload: kernel_image.payload.to_string(),
            package_payload: kernel_image.package_payload.to_string(),
            stub_source: kernel_image.stub_source,
        },
        compression: options.compression.name().to_string(),
        layout: options.layout.name().to_string(),
        cmdline: settings.cmdline,
        outputs: vec![
            FileEntry::new("vmlinuz", &kernel_image.vmlinuz),
            FileEntry::new("initrd.img", &initramfs.initrd),
            FileEntry::new("boot.ipxe", ipxe.as_bytes()),
        ],
        totals: totals(&initramfs, &module_entries, &firmware, bird.as_ref()),
        initramfs: initramfs.files,
        segments: initramfs.segments,
        modules: module_entries,
        builtin_roots: selection.builtin_roots.iter().cloned().collect(),
        profile: options.profile.name().to_string(),
        nic_drivers: selection
            .resolved
            .iter()
            .map(|r| NicDriverEntry {
                entry: r.entry.spec.to_string(),
                origin: r.entry.origin.clone(),
                modules: r.modules.clone(),
            })
            .collect(),
        firmware: firmware.carried.into_iter().map(|(f, _)| f).collect(),
        firmware_missing: firmware.missing,
        trusted_keys: settings
            .trusted
            .iter()
            .map(|k| manifest::TrustedKey {
                fingerprint: k.fingerprint(),
                comment: k.comment.clone(),
            })
            .collect(),
        clock_floor,
        bird: bird.as_ref().map(program_entry),
        superseded_adds: initramfs.superseded_adds,
        inputs_sha256: String::new(),
    };
    Image {
        vmlinuz: kernel_image.vmlinuz,
        initrd: initramfs.initrd,
        ipxe,
        manifest,
    }
}

/// The manifest's sums over the initramfs, modules, firmware and BIRD.
fn totals(
    initramfs: &Initramfs,
    modules: &[ModuleEntry],
    firmware: &FirmwareFiles,
    bird: Option<&program::Closure>,
) -> Totals {
    Totals {
        initramfs_compressed_bytes: initramfs.initrd.len() as u64,
        initramfs_uncompressed_bytes: initramfs.segments.iter().map(|s| s.cpio_bytes).sum(),
        kernel_decompressed_bytes: initramfs
            .segments
            .iter()
            .filter(|s| s.compression != "none")
            .map(|s| s.cpio_bytes)
            .sum(),
        initramfs_files: initramfs.files.len() as u64,
        module_count: modules.len() as u64,
        module_bytes: modules.iter().map(|m| m.size).sum(),
        firmware_files: firmware.carried.len() as u64,
        firmware_bytes: firmware.carried.iter().map(|(f, _)| f.size).sum(),
        bird_bytes: bird.map(|b| b.bytes()).unwrap_or(0),
    }
}
