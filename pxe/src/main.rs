//! `pxe`: the central boot and config server (TFTP + HTTP).
//!
//! Not built yet: until then, serve boot files and configs with any TFTP/HTTP server (the
//! tests use QEMU's built-in TFTP server and `python3 -m http.server`).

fn main() -> std::process::ExitCode {
    eprintln!("pxe: the boot and config server is not implemented yet; serve the image folder and configs with any TFTP/HTTP server for now");
    std::process::ExitCode::from(2)
}
