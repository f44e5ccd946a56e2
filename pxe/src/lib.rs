//! `pxe`: the central boot and config server of the appliance, as a library so its parts are
//! tested on their own. `main.rs` is the CLI.
//!
//! ```text
//! inventory.toml ─┐                          ┌─ HTTP: /boot.ipxe, /boot/MAC.ipxe,
//! template.tmpl ──┼─ reload ─▶ Site (per node ┤        /config/MAC.toml, /image/FILE, /status,
//!                 │            last good cfg) │        /ipxe/FILE (UEFI HTTP boot)
//! image/manifest ─┘   (poll)                 └─ TFTP: boot.ipxe, boot/MAC.ipxe, config/MAC.toml,
//!                                                       undionly.kpxe, snponly.efi, ipxe.efi (read-only)
//! ```
//!
//! Pure parts (no I/O, no tokio): [`mac`], [`console`], [`inventory`], [`template`], [`site`], [`ipxe`],
//! [`conditional`], [`routes`], [`safepath::clean`]. I/O at the edge: [`files`], [`http`],
//! [`tftp`], [`reload`].

pub mod conditional;
pub mod console;
pub mod files;
pub mod fuzz;
pub mod http;
pub mod inventory;
pub mod ipxe;
pub mod mac;
pub mod reload;
pub mod routes;
pub mod safepath;
pub mod signing;
pub mod site;
pub mod state;
pub mod template;
pub mod tftp;

pub use mac::Mac;
