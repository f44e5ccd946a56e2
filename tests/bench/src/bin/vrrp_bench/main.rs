//! `vrrp_bench`: VRRP failover times of an lbd pair in host network namespaces, with a
//! keepalived pair with the same settings measured in the same run as the anchor, and a soak
//! that counts spurious failovers at 20 ms adverts while every core is busy.
//!
//! Setup: two namespaces (master priority 150, backup 100) on a bridge in a third. For each
//! advert interval (v2 1 s, v3 100 ms, v3 20 ms) and each way of stopping the master
//! (`kill -9` of everything in its namespace, or SIGTERM for an orderly stop), repeated runs:
//! the master is (re)started and takes the VIP, the backup settles, the master is stopped.
//! A watcher thread inside the backup's namespace timestamps, from a netlink address
//! subscription and a raw VRRP socket, the moment the VIP appears and the adverts it hears.
//!
//! Printed per case: failover time (stop → VIP present on the backup), median and worst; and
//! how late the takeover was against the RFC's own time — after `kill -9`, the last advert
//! heard plus the backup's master-down interval; after a stop, the priority-0 advert plus its
//! skew time (negative = early).
//!
//! Soak: the pair at 20 ms adverts with busy loops on every core (twice as many as cores, at
//! normal priority) for `--soak` seconds (default 60); counts the times the VIP appeared on
//! the backup (spurious failovers) and the longest gap between the master's adverts.
//!
//! Needs root, `ip`, and keepalived for the anchor (tools/setup.sh). Usage:
//!   vrrp_bench [--runs N] [--soak SECS] [--no-keepalived] [--lbd PATH]
//! (`--runs 0` runs the soak only; `--soak 0` skips it.)
//! Build it with `cargo build --release -p lb-bench --bins` so lbd runs optimised.

mod args;
mod daemons;
mod failover;
mod lab;
mod report;
mod soak;
mod watcher;

use args::{parse_args, Args};
use daemons::{Case, Daemon};
use lab::{sh, Lab};
use lbd::vrrp::packet::Version;
use report::{duration_text, median_and_worst};
use std::process::{Command, ExitCode};
use std::time::Duration;

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("vrrp_bench needs root (network namespaces, raw sockets)");
        return ExitCode::from(2);
    }
    let keepalived = args.keepalived && sh(&["sh", "-c", "command -v keepalived"]).is_ok();
    if args.keepalived && !keepalived {
        eprintln!("keepalived not found (tools/setup.sh installs it); measuring lbd only");
    }
    let lab = match Lab::new() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot build the lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_header(&args, keepalived);
    let mut daemons = vec![Daemon::Lbd];
    if keepalived {
        daemons.push(Daemon::Keepalived);
    }
    let mut failed = false;
    // --runs 0: the soak only.
    if args.runs > 0 {
        failed |= !failover_table(&lab, &args, &daemons);
    }
    if args.soak > 0 {
        failed |= !soaks(&lab, &args, &daemons);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The setup, the anchor's version, what the columns mean, and the table's head.
fn print_header(args: &Args, keepalived: bool) {
    let ka_version = Command::new("keepalived")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stderr),
                String::from_utf8_lossy(&o.stdout)
            )
        });
    println!(
        "VRRP failover in host network namespaces ({} cores), master priority 150, backup 100",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("lbd: {}", args.lbd.display());
    if keepalived {
        println!(
            "anchor: {}",
            ka_version
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or("keepalived")
        );
    }
    println!(
        "failover = stop of the master -> VIP present on the backup; late = takeover - RFC time"
    );
    println!("(RFC time: last advert heard + master-down interval after kill -9; priority-0 advert + skew time after a stop)\n");
    println!(
        "{:<11} {:<9} {:<8} {:>4}  {:>10} {:>10}  {:>10} {:>10}  {:>10}",
        "impl", "adverts", "stop", "runs", "median", "worst", "late med", "late worst", "RFC time"
    );
}

/// The cases, with their runs: v2 at 1 s adverts (half the runs: each takes seconds), v3 at
/// 100 ms and 20 ms.
fn cases(runs: usize) -> [(Case, usize); 3] {
    [
        (
            Case {
                version: Version::V2,
                interval: Duration::from_secs(1),
            },
            runs.div_ceil(2).max(1),
        ),
        (
            Case {
                version: Version::V3,
                interval: Duration::from_millis(100),
            },
            runs,
        ),
        (
            Case {
                version: Version::V3,
                interval: Duration::from_millis(20),
            },
            runs,
        ),
    ]
}

/// A row per case, way of stopping and daemon; false if any failed.
fn failover_table(lab: &Lab, args: &Args, daemons: &[Daemon]) -> bool {
    let mut ok = true;
    for (case, runs) in &cases(args.runs) {
        for kill9 in [true, false] {
            for daemon in daemons {
                ok &= failover_row(lab, args, *daemon, case, kill9, *runs);
            }
        }
    }
    ok
}

fn failover_row(
    lab: &Lab,
    args: &Args,
    daemon: Daemon,
    case: &Case,
    kill9: bool,
    runs: usize,
) -> bool {
    let stop = if kill9 { "kill -9" } else { "SIGTERM" };
    match failover::failovers(lab, args, daemon, case, kill9, runs) {
        Ok((samples, unstable)) => {
            let mut f: Vec<f64> = samples.iter().map(|s| s.time.as_secs_f64()).collect();
            let mut l: Vec<f64> = samples.iter().filter_map(|s| s.late).collect();
            let (fm, fw) = median_and_worst(&mut f);
            let (lm, lw) = median_and_worst(&mut l);
            let (mdi, skew) = case.backup_timers();
            println!(
                "{:<11} {:<9} {:<8} {:>4}  {:>10} {:>10}  {:>10} {:>10}  {:>10}",
                daemon.name(),
                case.label(),
                stop,
                samples.len(),
                duration_text(fm),
                duration_text(fw),
                duration_text(lm),
                duration_text(lw),
                duration_text(if kill9 { mdi } else { skew }.as_secs_f64())
            );
            if unstable > 0 {
                println!(
                    "{:<11} {unstable} run(s) skipped: the backup held the VIP at start-up",
                    ""
                );
            }
            true
        }
        Err(e) => {
            println!(
                "{:<11} {:<9} {:<8} failed: {e}",
                daemon.name(),
                case.label(),
                stop
            );
            false
        }
    }
}

/// The soak of each daemon; false if any failed.
fn soaks(lab: &Lab, args: &Args, daemons: &[Daemon]) -> bool {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    println!(
        "\nsoak: v3 20 ms adverts for {} s with {} busy loops on {} cores",
        args.soak,
        cores * 2,
        cores
    );
    let mut ok = true;
    for daemon in daemons {
        match soak::soak(lab, args, *daemon, args.soak) {
            Ok(s) => println!(
                "{:<11} spurious failovers: {}   adverts heard: {}   longest gap between adverts: {}",
                daemon.name(),
                s.spurious,
                s.adverts,
                duration_text(s.longest_gap.as_secs_f64())
            ),
            Err(e) => {
                ok = false;
                println!("{:<11} soak failed: {e}", daemon.name());
            }
        }
    }
    ok
}
