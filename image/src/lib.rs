//! Builds the appliance's boot files from a Debian kernel package and our static binaries:
//! `vmlinuz`, a compressed newc `initrd.img` (init, lbd, kernel modules with kmod index files),
//! an iPXE script and a `manifest.json` describing all of it.
//!
//! Layers: pure parts ([`cpio`], [`modules`], [`elf`] parsing, [`manifest`] types) are unit
//! tested; [`deb`] and [`build`] do the I/O.

pub mod build;
pub mod bzimage;
pub mod compress;
pub mod cpio;
pub mod deb;
pub mod drivers;
pub mod elf;
pub mod firmware;
pub mod inspect;
pub mod layout;
pub mod manifest;
pub mod modules;
pub mod program;
pub mod restub;
pub mod workspace;

pub use build::{build, BuildError, BuildOptions, ExtraFile};
pub use compress::{Compression, Effort};
pub use manifest::Manifest;
