//! The `vmlinuz` the image ships: the package's, or the same kernel with an lz4 payload behind
//! a boot stub rebuilt from the kernel's own source ([`crate::restub`]), cached by the two
//! packages' hashes because the rebuild takes a minute.

use std::fs;
use std::path::Path;

use super::kernel_modules::Kernel;
use super::options::{BuildError, BuildOptions};
use crate::bzimage;
use crate::deb;
use crate::restub::{self, RestubInputs};

/// The kernel image and where it came from.
pub(super) struct KernelImage {
    pub(super) vmlinuz: Vec<u8>,
    /// The payload format of `vmlinuz` (`lz4`) and of the package's (`xz`).
    pub(super) payload: &'static str,
    pub(super) package_payload: &'static str,
    /// The source package the stub was rebuilt from, if it was.
    pub(super) stub_source: Option<String>,
}

pub(super) fn kernel_image(
    options: &BuildOptions,
    kernel: &Kernel,
) -> Result<KernelImage, BuildError> {
    let package = &kernel.package.vmlinuz;
    let format = bzimage::parse(package)
        .map_err(|e| BuildError::Restub(e.into()))?
        .format;
    let as_shipped = KernelImage {
        vmlinuz: package.clone(),
        payload: format.name(),
        package_payload: format.name(),
        stub_source: None,
    };
    let Some(stub) = &options.kernel_stub else {
        return Ok(as_shipped);
    };
    if !restub::slower_than_target(format) {
        return Ok(as_shipped);
    }
    let source_name = deb::file_name(&stub.source_deb);
    let source_sha = super::inputs::sha256_file(&stub.source_deb)?;
    let cached = stub.cache_dir.join(format!(
        "{}-{}-{}.{}.vmlinuz",
        kernel.version(),
        &kernel.package_sha256[..16],
        &source_sha[..16],
        restub::TARGET.name()
    ));
    let done = |vmlinuz| KernelImage {
        vmlinuz,
        payload: restub::TARGET.name(),
        package_payload: format.name(),
        stub_source: Some(source_name.clone()),
    };
    // A cached image is held to the package again: cheap, and a damaged cache is rebuilt.
    if let Ok(vmlinuz) = fs::read(&cached) {
        if restub::check_same_kernel(package, &vmlinuz).is_ok() {
            return Ok(done(vmlinuz));
        }
    }
    let output_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Output { path, source }
    };
    fs::create_dir_all(&stub.cache_dir).map_err(output_err(&stub.cache_dir))?;
    let work = tempfile::Builder::new()
        .prefix("restub-")
        .tempdir_in(&stub.cache_dir)
        .map_err(output_err(&stub.cache_dir))?;
    let config = String::from_utf8_lossy(&kernel.package.config);
    if config.is_empty() {
        return Err(BuildError::Restub(restub::RestubError::NoConfig(
            kernel.version().to_string(),
        )));
    }
    eprintln!(
        "image: rebuilding the boot stub of {} for an {} payload, from {source_name} (about two minutes, once)",
        kernel.version(),
        restub::TARGET.name()
    );
    let vmlinuz = restub::restub(&RestubInputs {
        vmlinuz: package,
        config: &config,
        kernel_version: &stub.kernel_deb_version,
        source_deb: &stub.source_deb,
        work: work.path(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })?;
    let partial = cached.with_extension("partial");
    fs::write(&partial, &vmlinuz).map_err(output_err(&partial))?;
    fs::rename(&partial, &cached).map_err(output_err(&cached))?;
    Ok(done(vmlinuz))
}
