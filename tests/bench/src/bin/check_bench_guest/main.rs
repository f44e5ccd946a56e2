//! Health-check benchmark, lbd against keepalived, in one test-image guest: N real servers
//! checked every second by TCP connect (and then by HTTP GET; lbd also half-open and with
//! `keep_alive`), first by lbd (the appliance's own daemon, given a generated config), then by
//! keepalived's checker (`keepalived --check`, the Debian binary in the test image, given the
//! same reals in keepalived.conf).
//!
//! The servers run on the host, in a network namespace behind the guest's tap: one AnyIP route
//! (`local 10.201.0.0/16 dev lo`) answers every real's address, one listener per (checker,
//! kind) port accepts (TCP: accept and close; HTTP: read the request, answer 200, close) and
//! counts what it served. So the listeners' kernel work is the host's, and what the guest
//! charges to a checker is its own work: its user time and the kernel work of its own sockets
//! (including the softirq work that happens to run while it is on the CPU, the same for both).
//!
//! Figures, per kind and checker, over a window after a warm-up (all reals in IPVS with a
//! weight, and the served rate near N/s): checks per second served (counted on the host), CPU
//! as a share of one guest core (utime + stime of every process of the checker, from
//! /proc/PID/stat in the guest; lbd's check thread separately), resident memory (VmRSS, VmHWM),
//! the guest's overall busy share, and the keepalived / lbd CPU ratio. Nothing is asserted
//! about time: the guest runs under TCG on a shared host, so only the ratio is meaningful.
//!
//! ```text
//! cargo run --release -p lb-bench --bin check_bench_guest -- [--reals N] [--seconds S]
//!     [--settle S] [--kind connect|half-open|tcp|http|http-keepalive|http-all|all]
//!     [--checker lbd|keepalived|both]
//! ```
//!
//! Needs root, QEMU, the kernel package (`tools/setup.sh`) and the test image with keepalived
//! (`tools/build-test-image.sh`; `LB_TEST_IMAGE_DIR` picks another one).

mod configs;
mod guest;
mod lab;
mod measure;
mod opts;
mod sample;
mod servers;

use guest::run;
use lab::Lab;
use lbtest::ipvs::GuestShell;
use measure::Figures;
use opts::{parse_opts, runs, Checker, Kind, Opts};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(240);
const CMD: Duration = Duration::from_secs(60);
/// The namespace's address on the guest's segment (config server, gateway to the reals).
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const CONFIG_PORT: u16 = 8000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("check_bench_guest: {e}");
            }
            eprintln!("usage: check_bench_guest [--reals N] [--seconds S] [--settle S] [--kind connect|half-open|tcp|http|http-keepalive|http-all|all] [--checker lbd|keepalived|both]");
            return ExitCode::from(2);
        }
    };
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check_bench_guest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(opts: &Opts) -> Result<(), String> {
    let lab = Lab::new(opts)?;
    let mut sg = lab.boot()?;
    sg.guest
        .expect(r"lbd:\s+INFO lbd running with", BOOT)
        .map_err(|e| e.to_string())?;
    print_setup(opts, &mut sg.shell)?;
    let mut all = Vec::new();
    for kind in &opts.kinds {
        for checker in &opts.checkers {
            if runs(*checker, *kind) {
                all.push(measure::measure(
                    &lab,
                    &mut sg.shell,
                    opts,
                    *checker,
                    *kind,
                )?);
            }
        }
        print_ratio(&all, *kind);
    }
    Ok(())
}

/// The guest's clock source, and the settings with keepalived's version.
fn print_setup(opts: &Opts, sh: &mut GuestShell) -> Result<(), String> {
    let version = if opts.checkers.contains(&Checker::Keepalived) {
        run(sh, "keepalived --version 2>&1 | head -1", CMD).and_then(|v| {
            if v.starts_with("Keepalived") {
                Ok(v)
            } else {
                Err(format!(
                    "the test image has no working keepalived ({}); rebuild it: tools/build-test-image.sh",
                    v.trim()
                ))
            }
        })?
    } else {
        "keepalived not run".to_string()
    };
    println!(
        "check-bench-guest: guest clock source {}",
        run(
            sh,
            "cat /sys/devices/system/clocksource/clocksource0/current_clocksource",
            CMD
        )?
        .trim()
    );
    println!(
        "check-bench-guest: {} reals ({} per service, fwmark services, DR), {}; one TCG guest (1 vCPU); servers on the host behind the tap; window {}s; {}",
        opts.reals,
        configs::PER_SERVICE,
        configs::SETTINGS,
        opts.seconds,
        version.trim()
    );
    Ok(())
}

/// keepalived's CPU against lbd's for `kind`, once both were measured.
fn print_ratio(all: &[Figures], kind: Kind) {
    // keepalived's TCP_CHECK is what lbd's half-open checks are compared with.
    let theirs = match kind {
        Kind::TcpHalfOpen => Kind::Tcp,
        Kind::HttpKeepAlive => Kind::Http,
        k => k,
    };
    let find = |c: Checker, k: Kind| all.iter().find(|f| f.kind == k && f.checker == c);
    let find = |c: Checker| find(c, if c == Checker::Lbd { kind } else { theirs });
    if let (Some(l), Some(k)) = (find(Checker::Lbd), find(Checker::Keepalived)) {
        // CPU per check served, so a checker that fell behind is not flattered.
        let per = |f: &Figures| f.cpu() / f.accepted_per_s.max(1.0);
        println!(
            "figure: {} ratio keepalived/lbd cpu {:.2} (per check served {:.2}); lbd uses {:.0}% of keepalived's CPU",
            kind.name(),
            k.cpu() / l.cpu().max(1e-9),
            per(k) / per(l).max(1e-12),
            100.0 * l.cpu() / k.cpu().max(1e-9)
        );
    }
}
