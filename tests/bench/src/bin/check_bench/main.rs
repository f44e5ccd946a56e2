//! Benchmark of lbd's health checks: N real servers (10,000 by default) checked every second,
//! by TCP connect and then by HTTP GET, against listeners on N distinct (address, port) pairs
//! inside a network namespace the benchmark creates (many /32 addresses on its loopback, a few
//! ports each, served by a separate process so its CPU is not counted).
//!
//! Where the checks run (`--topology`):
//! - `veth` (default): the check thread lives in a second namespace, joined to the servers' by
//!   a veth pair with GRO on and TSO off (so veth delivers through NAPI) and threaded NAPI on
//!   both ends. Each side's receive path then runs in its own kernel thread (`napi/<dev>-<id>`)
//!   instead of in the sender's context, so the check thread is charged with its own system
//!   calls only: socket, connect (building and sending the SYN), epoll, close (the RST).
//!   The checker's receive side (SYN-ACK in, the handshake's ACK out) is measured on the
//!   client end's NAPI thread and printed beside it; the servers' side (SYN, ACK and RST in,
//!   SYN-ACK out, accept) on the server end's thread, which is not lbd's work.
//! - `loopback`: the check thread in the servers' namespace, as before: loopback delivers
//!   in the sender's context, so the check thread is also charged with the listeners' side of
//!   every handshake.
//!
//! Prints, per check type: checks per second actually served, the CPU of lbd's check thread
//! and of the whole process (share of one core), resident memory, and the detection latency
//! (p50/p99) from a server's death (its listener closed, so connects are refused) to the
//! state change in the published health report, with the settings used.
//!
//! keepalived's checker needs IPVS to run, which hosts without the ip_vs module lack; its
//! figures are printed as n/a here (the guest benchmark, `lbtest`'s `check_bench_guest`, runs
//! both side by side in a test-image guest).
//!
//! Each veth receive queue is a ring of 256 packets; bursts of HTTP checks can overflow one,
//! and a dropped SYN-ACK or response shows as a server that did not answer in time (a false
//! alarm of the rig, not of the servers). The drops are printed; `--veth-queues Q` spreads
//! connections over Q rings (each with its own NAPI thread, so more wake-ups, and more of them
//! charged to the sender: the CPU figures are cleanest with one).
//!
//! `--kind half-open` runs the TCP checks with `half_open = true`: nothing is accepted, so the
//! servers count the SYNs that reach them instead. `--kind http-keepalive` runs the HTTP checks
//! with `keep_alive = true`: the servers count requests, and a killed server closes its open
//! connections with its listener.
//!
//! Needs root. Usage: check-bench [--reals N] [--ports-per-address P] [--seconds S]
//!                    [--kills K] [--fall F] [--kind tcp|half-open|http|http-keepalive|both|all]
//!                    [--topology veth|loopback]

mod measure;
mod netns;
mod opts;
mod proc;
mod report;
mod serve;
mod servers;
mod veth;

use netns::Netns;
use opts::Opts;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, ExitCode};
use veth::VethClient;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve::serve(&args[1..]);
    }
    let opts = match opts::parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("check-bench: {e}");
            }
            eprintln!("usage: check-bench [--reals N] [--ports-per-address P] [--seconds S] [--kills K] [--fall F] [--kind tcp|half-open|http|http-keepalive|both|all] [--topology veth|loopback] [--veth-queues Q]");
            return ExitCode::from(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("check-bench: needs root (it creates a network namespace)");
        return ExitCode::from(2);
    }
    raise_nofile();
    if opts.kinds.len() > 1 {
        return run_each_kind_in_a_child(&args, &opts);
    }
    run_kinds(&opts)
}

/// One process per kind, so each starts from the same memory.
fn run_each_kind_in_a_child(args: &[String], opts: &Opts) -> ExitCode {
    let mut ok = true;
    for kind in &opts.kinds {
        let mut child_args: Vec<String> = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--kind" {
                it.next();
            } else {
                child_args.push(a.clone());
            }
        }
        child_args.extend(["--kind".into(), kind.clone(), "--child".into()]);
        let status =
            std::env::current_exe().and_then(|exe| Command::new(exe).args(&child_args).status());
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("check-bench: {kind}: {s}");
                ok = false;
            }
            Err(e) => {
                eprintln!("check-bench: {kind}: {e}");
                ok = false;
            }
        }
    }
    print_keepalived_note();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Builds the namespaces and runs every kind of `opts` in this process.
fn run_kinds(opts: &Opts) -> ExitCode {
    let ns = match Netns::new(opts) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("check-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = if opts.veth {
        match VethClient::new(&ns, opts.veth_queues) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("check-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    report::print_setup(opts, &ns, client.as_ref());
    let mut ok = true;
    for kind in &opts.kinds {
        match measure::run_kind(&ns, client.as_ref(), opts, kind) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("check-bench: {kind}: {e}");
                ok = false;
            }
        }
    }
    if !opts.child {
        print_keepalived_note();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_keepalived_note() {
    println!(
        "keepalived: n/a (its checker programs IPVS, which this kernel lacks; compare inside a test-image guest)"
    );
}

/// Real `i`'s address: `ports` reals to an address, addresses from 10.200.0.1 on.
fn addr(i: usize, ports: usize) -> SocketAddr {
    let host = i / ports;
    let ip = Ipv4Addr::new(10, 200, (host / 250) as u8, (host % 250 + 1) as u8);
    SocketAddr::new(ip.into(), 20_000 + (i % ports) as u16)
}

/// Ten thousand listeners and as many kept connections need more than the usual hard
/// limit (often 20,000); root may raise it.
fn raise_nofile() {
    if let Err(e) = lbd::sockets::raise_fd_limit(1 << 20) {
        eprintln!("check-bench: open files limit: {e}");
    }
}
