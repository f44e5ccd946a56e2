//! What the benchmark prints: the setup, and per kind its figures.

use crate::measure::{Detection, Steady};
use crate::netns::Netns;
use crate::opts::Opts;
use crate::proc::loadavg;
use crate::veth::VethClient;
use std::time::Duration;

pub fn print_setup(opts: &Opts, ns: &Netns, client: Option<&VethClient>) {
    println!(
        "check-bench: {} reals on {} addresses x {} ports in namespace {}, interval 1s, timeout 1s, rise 1, fall {}, jitter 100ms",
        opts.reals,
        opts.reals.div_ceil(opts.ports),
        opts.ports,
        ns.name,
        opts.fall
    );
    match client {
        Some(c) => println!(
            "check-bench: checks from namespace {} over veth {} -> {} ({} queue{}, GRO on, TSO off, threaded NAPI on both ends)",
            c.ns.name,
            c.dev,
            c.peer,
            opts.veth_queues,
            if opts.veth_queues == 1 { "" } else { "s" }
        ),
        None => println!("check-bench: checks from the servers' namespace over loopback"),
    }
}

pub fn print_kind(
    kind: &str,
    reals: usize,
    first_round: Duration,
    steady: &Steady,
    rss_before_checks: u64,
    detection: &Detection,
) {
    let wall = steady.wall();
    let checks_per_s = steady.served as f64 / wall;
    println!("{kind}:");
    println!(
        "  first round: all {} reals up {:.2}s after the config was applied",
        reals,
        first_round.as_secs_f64()
    );
    println!(
        "  checks served: {checks_per_s:.0}/s ({:.0}% of {} reals x 1/s)",
        100.0 * checks_per_s / reals as f64,
        reals
    );
    print_cpu(steady, wall);
    println!(
        "  memory: RSS {:.1} MiB (peak {:.1} MiB; {:.1} MiB before the checks started, incl. the parsed config)",
        steady.rss as f64 / 1024.0,
        steady.hwm as f64 / 1024.0,
        rss_before_checks as f64 / 1024.0
    );
    print_detection(detection);
    println!("  host load average: {}", loadavg());
}

fn print_cpu(steady: &Steady, wall: f64) {
    let (b, a) = (&steady.before, &steady.after);
    println!(
        "  CPU: check thread {:.1}% of one core (user {:.1}%, kernel {:.1}%), whole process {:.1}% (over {wall:.0}s)",
        100.0 * (a.thread - b.thread).as_secs_f64() / wall,
        100.0 * (a.thread_split.0 - b.thread_split.0).as_secs_f64() / wall,
        100.0 * (a.thread_split.1 - b.thread_split.1).as_secs_f64() / wall,
        100.0 * (a.process - b.process).as_secs_f64() / wall
    );
    match (b.napi, a.napi) {
        (Some((c0, s0)), Some((c1, s1))) => {
            let client = 100.0 * (c1 - c0).as_secs_f64() / wall;
            println!(
                "       the checks' receive side (SYN-ACK in, ACK out; client NAPI threads) {client:.1}%: with it {:.1}%",
                100.0 * (a.thread - b.thread).as_secs_f64() / wall + client
            );
            println!(
                "       (not lbd's: the servers' side of the handshakes, server NAPI threads {:.1}%)",
                100.0 * (s1 - s0).as_secs_f64() / wall
            );
        }
        _ => println!(
            "       (the kernel part includes the listeners' side of every loopback handshake, which runs in the checker's context here)"
        ),
    }
}

fn print_detection(d: &Detection) {
    let lat = &d.latencies;
    println!(
        "  detection (server killed -> real down in the report), {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}",
        lat.len(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        if d.missed > 0 {
            format!(", {} not detected in time", d.missed)
        } else {
            String::new()
        }
    );
    if !d.spurious.is_empty() {
        let mut reasons: Vec<&String> = d.spurious.values().collect();
        reasons.sort();
        reasons.dedup();
        println!(
            "  false alarms: {} live servers seen down during the kills ({})",
            d.spurious.len(),
            reasons
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
