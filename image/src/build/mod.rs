//! `image build`: kernel package + static binaries → `vmlinuz`, `initrd.img`, `boot.ipxe`,
//! `manifest.json`, written to a temporary directory beside the output and renamed into place.
//!
//! [`assemble`] reads the inputs (`inputs`, `bird`) and the kernel package, chooses the
//! modules (`kernel_modules`) and their firmware (`firmware_files`), fills the initramfs
//! (`initramfs`) and describes the result (`describe`); [`build`] writes it out
//! (`output`) unless the image there is already the same.

mod bird;
mod boot;
mod describe;
mod firmware_files;
mod initramfs;
mod inputs;
mod kernel_image;
mod kernel_modules;
mod options;
mod output;

use std::path::Path;

use crate::layout::Separate;
use crate::manifest::Manifest;
use firmware_files::FirmwareFiles;
use initramfs::Initramfs;
use inputs::{BootSettings, HostFiles};
use kernel_modules::{Kernel, ModuleSelection};
use output::check_output_replaceable;

pub use bird::BIRD_PROGRAM;
pub use boot::{full_cmdline, ipxe_script, DEFAULT_CMDLINE};
pub use inputs::inputs_sha256;
pub use options::{BuildError, BuildOptions, ExtraFile, KernelStub};
pub use output::write_output;

/// What `build` produced, in memory, before it is written out.
pub struct Image {
    pub vmlinuz: Vec<u8>,
    pub initrd: Vec<u8>,
    pub ipxe: String,
    pub manifest: Manifest,
}

/// Builds the image in memory (no output is written).
pub fn assemble(options: &BuildOptions) -> Result<Image, BuildError> {
    // Cheap checks first, so a wrong binary fails before the 30 MB package is unpacked.
    let files = HostFiles::read(options)?;
    let settings = BootSettings::read(options)?;
    let bird = bird::read(&options.bird_debs)?;
    let kernel = Kernel::read(&options.kernel_deb)?;
    let selection = ModuleSelection::select(options, &kernel)?;
    let mut firmware =
        FirmwareFiles::select(&options.firmware_debs, &kernel.index, &selection.order)?;
    // After the checks above: the first rebuild of the boot stub takes a while.
    let kernel_image = kernel_image::kernel_image(options, &kernel)?;
    let image_info = describe::image_info(
        options,
        &files,
        &settings,
        bird.as_ref(),
        &kernel,
        &selection,
        &firmware,
    );

    let mut tree = initramfs::skeleton(files.init, files.lbd)?;
    // Files that most boxes never read: see crate::layout.
    let mut separate = Separate::new(options.effort);
    let stored_modules = kernel_modules::add_modules(
        &mut tree,
        &mut separate,
        &selection.separate(options.layout),
        kernel.version(),
        &selection.order,
        &kernel.index,
        &kernel.package,
    )?;
    firmware.add(&mut tree, &mut separate, options.layout)?;
    initramfs::add_image_settings(
        &mut tree,
        &selection.boot_order,
        &image_info,
        kernel.clock_floor(options.mtime),
        &settings.trusted,
    )?;
    if let Some(bird) = &bird {
        bird::add(&mut tree, &mut separate, options.layout, bird, &files.extra)?;
    }
    let superseded_adds = initramfs::add_extra_files(&mut tree, bird.as_ref(), files.extra)?;
    let initramfs = Initramfs::write(options, &separate, &tree, stored_modules, superseded_adds)?;

    Ok(describe::image(
        options,
        (kernel, kernel_image),
        &selection,
        firmware,
        settings,
        bird,
        initramfs,
    ))
}

/// What [`build`] did.
#[derive(Debug)]
pub struct Built {
    /// The manifest of the image now in `options.out`.
    pub manifest: Manifest,
    /// False when the image there was already built from the same inputs and left alone.
    pub rebuilt: bool,
}

/// Builds and writes the image to `options.out`, replacing a previous image there — unless
/// that image was built from the same inputs ([`inputs_sha256`]) and its files still match
/// its manifest, and `force` is false: then it is left as it is. A build from the same inputs
/// is byte for byte the same, so skipping it changes nothing but the time.
pub fn build(options: &BuildOptions, force: bool) -> Result<Built, BuildError> {
    // An input that cannot be read is reported by `assemble`, with what it is.
    let inputs = inputs_sha256(options).ok();
    if let (false, Some(inputs)) = (force, &inputs) {
        if let Some(manifest) = unchanged(&options.out, inputs) {
            return Ok(Built {
                manifest,
                rebuilt: false,
            });
        }
    }
    check_output_replaceable(&options.out)?;
    let mut image = assemble(options)?;
    image.manifest.inputs_sha256 = inputs.unwrap_or_default();
    write_output(&options.out, &image)?;
    Ok(Built {
        manifest: image.manifest,
        rebuilt: true,
    })
}

/// The manifest in `out` if it records `inputs` and every output file still matches it.
fn unchanged(out: &Path, inputs: &str) -> Option<Manifest> {
    let inspection = crate::inspect::inspect(out).ok()?;
    (inspection.manifest.inputs_sha256 == inputs && inspection.all_ok())
        .then_some(inspection.manifest)
}
