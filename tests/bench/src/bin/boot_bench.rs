//! Boot benchmark of the appliance image: boots it N times (default 3) in QEMU with the sample
//! config over TFTP and prints the image's size, the time to "lbd running" by the guest's own
//! clock and by the wall clock, and the resident memory of init and lbd. Prints figures beside
//! the goals; asserts nothing about time.
//!
//! ```text
//! cargo run --release -p lb-bench --bin boot_bench [-- BOOTS]
//! ```
//!
//! Needs QEMU and the kernel package (tools/setup.sh); the image is brought up to date with the
//! source first (`lbtest::fresh`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lbtest::appliance::{
    stamp, ApplianceBuilder, ConfigDir, Image, LbdRunning, LogLine, Memory, Mib, LBD_RUNNING,
};
use lbtest::artifacts;

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// init logs its memory line 3 s after starting lbd.
const MEMORY_TIMEOUT: Duration = Duration::from_secs(20);

const GOAL_INITRAMFS_BYTES: u64 = 16 * 1024 * 1024;
const GOAL_INIT_RSS_KIB: u64 = 5 * 1024;

/// Figures from one boot.
struct Boot {
    /// Kernel start → "Run /init" (guest clock).
    to_init: Option<Duration>,
    /// "Run /init" → init's "network up".
    init_to_network: Option<Duration>,
    /// "network up" → lbd running.
    network_to_lbd: Option<Duration>,
    /// Kernel start → lbd running (guest clock: the stamp on lbd's line).
    guest: Duration,
    /// QEMU start → the lbd line seen on the host.
    wall: Duration,
    memory: Option<Memory>,
}

fn main() -> ExitCode {
    let boots = match std::env::args().nth(1) {
        None => 3,
        Some(a) => match a.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: boot_bench [BOOTS]   (BOOTS: a positive number, default 3)");
                return ExitCode::from(2);
            }
        },
    };
    let image = Image::find();
    let sizes = match image.sizes() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("boot_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let accel = artifacts::accel();
    println!(
        "boot_bench: {boots} boot(s) of {} (kernel {}, -accel {}), config over QEMU's TFTP",
        image.dir.display(),
        sizes.kernel_version,
        accel.name()
    );
    println!();
    println!("{:<34} {:>12}   goal", "image", "figure");
    println!(
        "{:<34} {:>12}   < 16 MiB  {}",
        format!("initramfs compressed ({})", sizes.compression),
        Mib(sizes.initramfs_compressed_bytes).to_string(),
        verdict(sizes.initramfs_compressed_bytes < GOAL_INITRAMFS_BYTES)
    );
    println!(
        "{:<34} {:>12}",
        "initramfs uncompressed",
        Mib(sizes.initramfs_uncompressed_bytes).to_string()
    );
    println!(
        "{:<34} {:>12}",
        "initramfs files / modules",
        format!("{} / {}", sizes.initramfs_files, sizes.module_count)
    );
    if let Some(v) = sizes.vmlinuz_bytes {
        println!("{:<34} {:>12}", "vmlinuz", Mib(v).to_string());
    }
    println!();

    let mut results = Vec::new();
    for i in 1..=boots {
        match boot_once(&image, i) {
            Ok(b) => results.push(b),
            Err(e) => {
                eprintln!("boot_bench: boot {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    println!(
        "{:<6} {:>12} {:>14} {:>16} {:>16} {:>16} {:>10} {:>10}",
        "boot",
        "kernel→/init",
        "/init→net up",
        "net up→lbd run",
        "kernel→lbd run",
        "QEMU→lbd run",
        "init RSS",
        "lbd RSS"
    );
    println!(
        "{:<6} {:>12} {:>14} {:>16} {:>16} {:>16} {:>10} {:>10}",
        "", "(guest)", "(guest)", "(guest)", "(guest)", "(wall)", "", ""
    );
    for (i, b) in results.iter().enumerate() {
        println!(
            "{:<6} {:>12} {:>14} {:>16} {:>16} {:>16} {:>10} {:>10}",
            i + 1,
            secs(b.to_init),
            secs(b.init_to_network),
            secs(b.network_to_lbd),
            secs(Some(b.guest)),
            secs(Some(b.wall)),
            kib(b.memory.map(|m| m.init_rss_kib)),
            kib(b.memory.map(|m| m.lbd_rss_kib)),
        );
    }
    println!();
    let guest: Vec<Duration> = results.iter().map(|b| b.guest).collect();
    let wall: Vec<Duration> = results.iter().map(|b| b.wall).collect();
    println!(
        "kernel start → lbd running (guest clock): min {}  median {}  max {}",
        secs(guest.iter().min().copied()),
        secs(median(&guest)),
        secs(guest.iter().max().copied())
    );
    println!(
        "QEMU start → lbd running (wall clock):    min {}  median {}  max {}",
        secs(wall.iter().min().copied()),
        secs(median(&wall)),
        secs(wall.iter().max().copied())
    );
    let init_rss: Vec<u64> = results
        .iter()
        .filter_map(|b| b.memory.map(|m| m.init_rss_kib))
        .collect();
    let lbd_rss: Vec<u64> = results
        .iter()
        .filter_map(|b| b.memory.map(|m| m.lbd_rss_kib))
        .collect();
    match init_rss.iter().max() {
        Some(&max) => println!(
            "init RSS (max of {}): {}   goal < 5 MiB  {}",
            init_rss.len(),
            kib(Some(max)),
            verdict(max < GOAL_INIT_RSS_KIB)
        ),
        None => println!("init RSS: n/a (init printed no memory line)   goal < 5 MiB"),
    }
    match lbd_rss.iter().max() {
        Some(&max) => println!("lbd RSS (max of {}): {}", lbd_rss.len(), kib(Some(max))),
        None => println!("lbd RSS: n/a"),
    }
    ExitCode::SUCCESS
}

fn boot_once(image: &Image, n: usize) -> Result<Boot, String> {
    let configs = ConfigDir::new().map_err(|e| format!("temp dir: {e}"))?;
    configs
        .publish("demo.toml", lbtest::appliance::USER_NET_CONFIG)
        .map_err(|e| format!("writing the config: {e}"))?;

    let started = Instant::now();
    let mut g = ApplianceBuilder::new(format!("boot-bench-{n}"))
        .tftp(configs.path())
        .config_url("tftp://10.0.2.2/demo.toml")
        .spawn(image)
        .map_err(|e| e.to_string())?;
    let m = g
        .expect(LBD_RUNNING, BOOT_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    let running = LbdRunning::from_match(&m).ok_or("lbd's running line has no stamp or pid")?;
    let memory = g
        .expect(r"init:\s+INFO memory ", MEMORY_TIMEOUT)
        .ok()
        .and_then(|m| Memory::parse(&m.line));

    let lines = g.console().lines();
    let run_init = lines
        .iter()
        .find(|l| l.contains("Run /init as init process"))
        .and_then(|l| stamp(l));
    let network_up = lines
        .iter()
        .filter_map(|l| LogLine::parse(l))
        .find(|l| l.program == "init" && l.message.starts_with("network up"))
        .map(|l| l.uptime);
    let _ = g.quit();
    let _ = g.wait_exit(Duration::from_secs(10));

    let between = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => b.checked_sub(a),
        _ => None,
    };
    Ok(Boot {
        to_init: run_init,
        init_to_network: between(run_init, network_up),
        network_to_lbd: between(network_up, Some(running.uptime)),
        guest: running.uptime,
        wall,
        memory,
    })
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn kib(k: Option<u64>) -> String {
    k.map_or_else(|| "n/a".into(), |k| format!("{:.2} MiB", k as f64 / 1024.0))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "OVER"
    }
}
