//! `lbtest`: the harness for the project's end-to-end tests — QEMU guests with a captured serial
//! console and a QMP socket, network namespaces with bridges and taps, and a static HTTP server.
//!
//! Everything here drives real programs (QEMU, `ip`, `python3 -m http.server`, `dpkg-deb`,
//! busybox); nothing is mocked. Run `tools/setup.sh` once to install them and to download the
//! Debian cloud kernel package into `.cache/kernel/`.
//!
//! # Modules
//!
//! - [`appliance`]: the built appliance image ([`appliance::Image`]) booted with a config source
//!   ([`appliance::ApplianceBuilder`]), served configs that polling always sees change
//!   ([`appliance::ConfigDir`]), and parsers for init's and lbd's console lines.
//! - [`artifacts`]: the workspace root, the kernel package ([`artifacts::kernel_deb`], env
//!   `LB_KERNEL_DEB`), the built image directory ([`artifacts::image_dir`], env `LB_IMAGE_DIR`),
//!   the unpacked kernel and module dependency order ([`artifacts::kernel`],
//!   [`artifacts::Kernel::modules_with_deps`]), and the accelerator ([`artifacts::accel`]: KVM only
//!   if `/dev/kvm` opens and a probe boot works, else TCG; env `LB_ACCEL=kvm|tcg` overrides).
//! - [`config_server`]: [`config_server::ConfigServer`] — an HTTP config server (std threads,
//!   also inside a [`Netns`]) whose faults are switched at run time: not listening, silent,
//!   not HTTP, truncated, huge, slow; with a log of every request and how it ended.
//! - [`qemu`]: [`GuestBuilder`] (direct kernel boot or PXE, memory, CPUs, user-networking or tap
//!   NICs, QEMU inside a [`Netns`]) and the running [`Guest`] (console, QMP, exit status). A guest
//!   is killed when dropped; a panicking test prints its last 200 console lines and log paths.
//! - [`console`]: ordered expectations on the serial console: [`Console::expect`],
//!   [`Console::expect_any`], [`Console::wait_for_line`]; failures show the console's tail.
//! - [`qmp`]: the QMP client (`system_powerdown`, `send-key` ctrl-alt-delete, `quit`,
//!   `human-monitor-command`, events).
//! - [`netns`]: [`Netns`] — a uniquely named namespace with bridges, taps and veth pairs;
//!   commands and Rust closures ([`Netns::enter`]) run inside; everything removed on drop.
//! - [`fresh`]: tests never run an old build — images ([`fresh::image`]) and other packages'
//!   binaries ([`fresh::binary`]) are brought up to date with the source before use.
//! - [`fuzz`]: replays the fuzz targets' seed and regression corpora in plain `cargo test`.
//! - [`http`]: [`StaticServer`] — `python3 -m http.server` on a free port, with its request log.
//! - [`initramfs`]: [`Initramfs`] — small cpio archives, e.g. busybox with a shell-script `/init`.
//! - [`process`]: running helper commands with useful errors; [`ChildGuard`] kills on drop and
//!   may log the child's output to a file the test waits on; test preconditions
//!   ([`process::require_root`], [`process::require_programs`]).
//! - [`programs`]: the host programs of `tools/programs.txt` (the list `tools/setup.sh` installs
//!   from), found in the system's directories only; an unlisted or missing program fails the
//!   test with its package.
//! - [`scratch`]: [`ScratchDir`] — a world-readable temporary directory, removed on drop.
//! - [`tls`]: test certificates for the control API's mutual TLS ([`tls::TestCa`]: a CA, lbd's
//!   certificate, clients' certificates, the `[node.api.tls]` table), made with rcgen per run.
//! - [`wait`]: bounded waits for a condition, a polled value, a file's text, a TCP listener or
//!   (feature `tokio`) a `watch` channel's value; `expect*` forms panic naming what was awaited.
//! - [`nway`]: the N-way lab: three balancers announcing VIPs by BGP to a BIRD router that
//!   spreads flows over them by ECMP, DR reals, a client behind the router; fixed-port flow
//!   probes and the router's next hops ([`nway::flows`]).
//! - [`wire`]: [`wire::Observer`] — a third-party capture of VRRP adverts, ARP and neighbour
//!   advertisements on a test link, and pure analysis of what it saw: who was master when
//!   ([`wire::masters`]), split brain, takeovers, gratuitous ARPs for a VIP, advert destinations.
//!
//! Features: `tokio` adds [`Netns::run_async`] for futures run inside a namespace; `tracing`
//! adds [`init_test_tracing`].
//!
//! Logs of every guest go to `target/lbtest/logs/<name>.<pid>.<n>/` (`console.log`,
//! `qemu.stderr.log`, `qemu.cmdline`; env `LB_LOG_DIR` moves them). `LB_CONSOLE_ECHO=1` copies
//! consoles to stderr live.
//!
//! # Example
//!
//! Boot the cloud kernel with a busybox initramfs on a bridge in a fresh namespace and ping it:
//!
//! ```no_run
//! use std::time::Duration;
//! use lbtest::{artifacts, GuestBuilder, Initramfs, MacAddr, Netns, Nic};
//!
//! let kernel = artifacts::kernel(); // panics with "run tools/setup.sh" if missing
//! let modules = kernel.modules_with_deps(&["virtio_pci", "virtio_net"]).unwrap();
//! let mut fs = Initramfs::busybox_script(
//!     "for m in /modules/*.ko; do insmod $m; done\n\
//!      ip addr add 10.9.0.2/24 dev eth0; ip link set eth0 up\n\
//!      echo READY; while true; do sleep 1; done\n",
//! ).unwrap();
//! // Name the files so the glob keeps the dependency order.
//! for (i, m) in modules.iter().enumerate() {
//!     let name = m.file_name().unwrap().to_str().unwrap();
//!     fs.file_from(&format!("/modules/{i:02}-{name}"), m, 0o644).unwrap();
//! }
//! let dir = tempfile::tempdir().unwrap();
//! let initrd = dir.path().join("initrd.cpio");
//! fs.write_to(&initrd).unwrap();
//!
//! let ns = Netns::new("example").unwrap();
//! ns.add_bridge("br0").unwrap();
//! ns.add_addr("br0", "10.9.0.1/24").unwrap();
//! ns.add_tap("tap0", Some("br0")).unwrap();
//!
//! let guest = GuestBuilder::new("example")
//!     .kernel(&kernel.vmlinuz)
//!     .initrd(&initrd)
//!     .append("console=ttyS0 panic=-1")
//!     .nic(Nic::tap("tap0", MacAddr::local(2)))
//!     .netns(&ns)
//!     .spawn()
//!     .unwrap();
//! guest.expect("READY", Duration::from_secs(60)).unwrap();
//! ns.run(&["ping", "-c", "1", "-W", "5", "10.9.0.2"]).unwrap();
//! guest.quit().unwrap();
//! // Dropping `guest` then `ns` kills QEMU and deletes the namespace.
//! ```

#![warn(missing_docs)]

/// Makes `Debug` print the `Display` text, so `.unwrap()` in a test shows the readable message
/// (with the console tail) instead of a struct dump.
macro_rules! debug_is_display {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)
            }
        }
    };
}
pub(crate) use debug_is_display;

pub mod appliance;
pub mod artifacts;
pub mod chaos;
pub mod config_server;
pub mod console;
pub mod fresh;
pub mod fuzz;
pub mod http;
pub mod initramfs;
pub mod ipvs;
pub mod netns;
pub mod nway;
pub mod operator_keys;
pub mod process;
pub mod program_uses;
pub mod programs;
pub mod qemu;
pub mod qmp;
pub mod scratch;
pub mod tls;
pub mod wait;
pub mod wire;

pub use artifacts::Accel;
pub use console::{Console, ExpectError, Match};
pub use http::StaticServer;
pub use initramfs::Initramfs;
pub use netns::Netns;
pub use process::ChildGuard;
pub use qemu::{Guest, GuestBuilder, GuestExit, MacAddr, Nic, UserNet};
pub use qmp::Qmp;
pub use scratch::ScratchDir;

/// Installs a tracing subscriber (debug level, no colours) that prints into the test's captured
/// output; once per test binary, later calls do nothing.
#[cfg(feature = "tracing")]
pub fn init_test_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .try_init();
}
