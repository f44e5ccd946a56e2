//! Benchmark of the `pxe` server. Prints figures; asserts nothing about time.
//!
//! 1. PXE chain: a QEMU guest with no kernel (`-boot n`, QEMU's iPXE ROM) on a bridge in a
//!    network namespace, dnsmasq → pxe's script → kernel + initramfs over HTTP → init fetches its
//!    config from pxe → "lbd running". Time from QEMU start to that line (wall clock), and the
//!    guest's own uptime at that line (so the firmware + download part is the difference).
//! 2. HTTP throughput on loopback: N concurrent clients (N = 1, 16, 64) fetching the image's
//!    initramfs, one request per connection, from pxe and from python3's http.server on the same
//!    file in the same run. Every response is checked (status 200, full length).
//!
//! ```text
//! cargo run --release -p lb-bench --bin pxe_bench [-- [--boots N] [--no-boot] [--no-http]]
//! ```
//!
//! Needs, for the chain root, QEMU, dnsmasq and the kernel package (tools/setup.sh). The image
//! and a release `pxe` are built from the current source first (`lbtest::fresh`).
//! `PXE_BENCH_DHCP=1` also prints dnsmasq's DHCP exchanges of each boot.

#[path = "../../../tests/pxe_support/mod.rs"]
mod pxe_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lbtest::appliance::{Image, LbdRunning, Mib, LBD_RUNNING};
use lbtest::{artifacts, ChildGuard, MacAddr, StaticServer};
use pxe_support::{pxe_binary, Lab, PxeBalancer};

const CHAIN_TIMEOUT: Duration = Duration::from_secs(240);
const CLIENTS: [usize; 3] = [1, 16, 64];
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let mut boots = 2usize;
    let (mut chain, mut http) = (true, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--boots" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => boots = n,
                _ => return usage(),
            },
            "--no-boot" => chain = false,
            "--no-http" => http = false,
            _ => return usage(),
        }
    }
    let pxe = pxe_binary(true);
    println!("pxe binary: {} (release)", pxe.display());
    let image = Image::find();
    if chain {
        chain_bench(&pxe, boots);
    }
    if http {
        if let Err(e) = http_bench(&pxe, &image) {
            eprintln!("pxe_bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: pxe_bench [--boots N] [--no-boot] [--no-http]");
    ExitCode::from(2)
}

fn chain_bench(pxe: &Path, boots: usize) {
    println!("\nPXE chain: QEMU start (no kernel, iPXE ROM) → DHCP → pxe HTTP script, kernel, initramfs → init → config from pxe → lbd running");
    let mut walls = Vec::new();
    for b in 0..boots {
        let balancer = PxeBalancer {
            mac: MacAddr::local(0x66_10_00 + b as u32),
            hostname: "bench-lb",
            priority: 100,
            via_tftp: false,
        };
        let lab = Lab::start("pxe-bench", vec![balancer], pxe);
        let started = Instant::now();
        let started_at = SystemTime::now();
        let guest = match lab.guest(0).spawn() {
            Ok(g) => g,
            Err(e) => {
                println!("  boot {}: cannot start QEMU: {e}", b + 1);
                return;
            }
        };
        match guest.expect(LBD_RUNNING, CHAIN_TIMEOUT) {
            Ok(m) => {
                let wall = started.elapsed();
                let uptime = LbdRunning::from_match(&m).map(|r| r.uptime);
                println!(
                    "  boot {} ({}): {:.2?} QEMU start → lbd running; kernel start → lbd running {:.2?} (guest clock); firmware + DHCP + downloads ≈ {:.2?}",
                    b + 1,
                    guest.accel().name(),
                    wall,
                    uptime.unwrap_or_default(),
                    wall.saturating_sub(uptime.unwrap_or_default())
                );
                walls.push(wall);
                if std::env::var_os("PXE_BENCH_DHCP").is_some() {
                    for l in lab
                        .dnsmasq_log()
                        .lines()
                        .filter(|l| l.contains("DHCP") && !l.contains("option"))
                    {
                        println!("           | {l}");
                    }
                }
                let mut timeline = Vec::new();
                for (label, needle) in [
                    ("boot.ipxe", "path=/boot.ipxe "),
                    ("its script", "path=/boot/"),
                    ("vmlinuz", "path=/image/vmlinuz "),
                    ("initrd.img", "path=/image/initrd.img "),
                    ("config", "path=/config/"),
                ] {
                    let at = lab
                        .access(&[needle, "status=200"])
                        .first()
                        .and_then(|l| l.split_whitespace().next().and_then(parse_rfc3339))
                        .and_then(|t| t.duration_since(started_at).ok());
                    if let Some(at) = at {
                        timeline.push(format!("{label} {:.1}s", at.as_secs_f64()));
                    }
                }
                timeline.push(format!(
                    "kernel start ≈{:.1}s",
                    wall.saturating_sub(uptime.unwrap_or_default())
                        .as_secs_f64()
                ));
                timeline.push(format!("lbd running {:.1}s", wall.as_secs_f64()));
                println!(
                    "           timeline after QEMU start (pxe's access log, sent in full): {}",
                    timeline.join(", ")
                );
                for file in ["vmlinuz", "initrd.img"] {
                    if let Some(line) = lab
                        .access(&[
                            &format!("path=/image/{file}"),
                            "status=200",
                            "complete=true",
                        ])
                        .first()
                    {
                        let field = |k: &str| {
                            line.split_whitespace()
                                .find_map(|w| w.strip_prefix(k))
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(0)
                        };
                        let (bytes, us) = (field("bytes="), field("us="));
                        println!(
                            "           iPXE fetched {file} ({}) in {:.2?} ({:.1} MiB/s, pxe's access log)",
                            Mib(bytes),
                            Duration::from_micros(us),
                            bytes as f64 / (us.max(1) as f64 / 1e6) / (1024.0 * 1024.0)
                        );
                    }
                }
            }
            Err(e) => println!("  boot {}: no lbd running line: {e}", b + 1),
        }
    }
    if !walls.is_empty() {
        walls.sort();
        println!(
            "  figure: PXE chain to lbd running, median of {}: {:.2?}",
            walls.len(),
            walls[walls.len() / 2]
        );
    }
}

/// One server under test.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: String,
}

fn http_bench(pxe: &Path, image: &Image) -> Result<(), String> {
    let len = std::fs::metadata(&image.initrd)
        .map_err(|e| format!("{}: {e}", image.initrd.display()))?
        .len();
    let (_pxe_guard, pxe_addr) = start_pxe(pxe, &image.dir)?;
    let python = StaticServer::start(&image.dir).map_err(|e| e.to_string())?;
    let targets = [
        Target {
            name: "pxe",
            addr: pxe_addr,
            path: "/image/initrd.img".into(),
        },
        Target {
            name: "python3 http.server",
            addr: python.addr(),
            path: "/initrd.img".into(),
        },
    ];
    println!(
        "\nHTTP throughput: initrd.img ({}), loopback, one request per connection, every response checked",
        Mib(len)
    );
    println!(
        "  {:>7}  {:<20} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "clients", "server", "requests", "failed", "req/s", "MiB/s", "p50 ms", "p99 ms"
    );
    for n in CLIENTS {
        let requests = (2 * n).max(32);
        let mut rates = Vec::new();
        for t in &targets {
            // Warm up (pxe reads and hashes the file on first use; python's page cache).
            fetch(t.addr, &t.path, len)?;
            let r = run_clients(t, n, requests, len)?;
            println!(
                "  {:>7}  {:<20} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                n,
                t.name,
                requests,
                r.failed,
                r.requests_per_sec,
                r.mib_per_sec,
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0
            );
            rates.push(r.mib_per_sec);
        }
        println!(
            "  figure: {n} client{}: pxe {:.1} MiB/s vs python3 http.server {:.1} MiB/s (complete responses only): {:.2}x",
            if n == 1 { "" } else { "s" },
            rates[0],
            rates[1],
            rates[0] / rates[1].max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// Starts `pxe serve` on 127.0.0.1 (any port) with the example pair; returns its address.
fn start_pxe(pxe: &Path, image: &Path) -> Result<(ChildGuard, SocketAddr), String> {
    let examples = artifacts::workspace_root().join("tools/examples/pxe");
    let log = std::env::temp_dir().join(format!("pxe-bench-{}.log", std::process::id()));
    let mut cmd = std::process::Command::new(pxe);
    cmd.arg("serve")
        .arg("--image")
        .arg(image)
        .arg("--inventory")
        .arg(examples.join("inventory.toml"))
        .arg("--template")
        .arg(examples.join("classic-pair.toml.tmpl"))
        .args(["--http", "127.0.0.1:0"])
        .env("PXE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?);
    let mut guard = ChildGuard::spawn(&mut cmd).map_err(|e| e.to_string())?;
    let stdout = guard
        .child_mut()
        .stdout
        .take()
        .ok_or("no stdout from pxe")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("pxe did not start; see {}", log.display()))?;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("pxe did not start ({line:?}); see {}", log.display()))?;
    Ok((guard, addr))
}

struct RunResult {
    /// Requests that did not get a complete 200 (refused, reset, short).
    failed: usize,
    requests_per_sec: f64,
    mib_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// `clients` threads share `requests` GETs; returns rates (of complete responses) and
/// latency percentiles. A failed request is counted, not retried; the first error is shown.
fn run_clients(t: &Target, clients: usize, requests: usize, len: u64) -> Result<RunResult, String> {
    let left = Arc::new(AtomicUsize::new(requests));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let left = left.clone();
            let (addr, path) = (t.addr, t.path.clone());
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut errors = Vec::new();
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let t0 = Instant::now();
                    match fetch(addr, &path, len) {
                        Ok(()) => times.push(t0.elapsed()),
                        Err(e) => errors.push(e),
                    }
                }
                (times, errors)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        let (t, e) = h.join().map_err(|_| "a client thread panicked")?;
        times.extend(t);
        errors.extend(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(e) = errors.first() {
        println!("           ({}: {} failed, e.g. {e})", t.name, errors.len());
    }
    if times.is_empty() {
        return Err(format!("{}: every request failed", t.name));
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    Ok(RunResult {
        failed: errors.len(),
        requests_per_sec: times.len() as f64 / elapsed,
        mib_per_sec: (times.len() as u64 * len) as f64 / elapsed / (1024.0 * 1024.0),
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

/// One GET on a fresh connection; checks the status and that the whole body arrived.
fn fetch(addr: SocketAddr, path: &str, len: u64) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{addr}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(err)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(err)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: pxe_bench\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut status = String::new();
    r.read_line(&mut status).map_err(err)?;
    if !status.contains(" 200 ") {
        return Err(format!("{addr}{path}: {}", status.trim()));
    }
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(err)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut body = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf).map_err(err)? {
            0 => break,
            n => body += n as u64,
        }
    }
    if body != len {
        return Err(format!("{addr}{path}: {body} of {len} bytes"));
    }
    Ok(())
}

/// `2026-11-23T11:54:50.810171Z` (tracing's UTC timestamps) as a system time.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
