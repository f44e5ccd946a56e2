//! `ipvs-bench`: how fast lbd's IPVS client programs and reads a large table, next to ipvsadm,
//! in the same kernel. Runs inside a guest (the test image ships it and ipvsadm).
//!
//! 1. lbd's way, with lbd's own config loader and IPVS subsystem: validate a config of 1,000
//!    services x 10 reals and apply it to an empty table (batched), with lbd's code warmed as
//!    the kernel's is (see `warm_up`); then a one-real change
//!    (the loader validates the edited service alone, the plan looks at it alone, against the
//!    kept view of the kernel); then a full dump. Milliseconds and netlink messages for each.
//! 2. The same table loaded with `ipvsadm -R` and listed with `ipvsadm -Ln`.
//! 3. Ratios. Every service this tool created is removed at the end.
//!
//! ```text
//! Usage: ipvs-bench [SERVICES] [REALS_PER_SERVICE]    (default 1000 10)
//!        ipvs-bench capture    (prints the kernel's raw replies for a small table, in hex:
//!                               the test vectors of `lbd::ipvs::msg`'s unit tests)
//! ```
//! Each side runs in a network namespace of its own (a fresh IPVS table; see `fresh_ipvs`):
//! the balancer's own table is neither read nor changed.

use lb_bench::ipvs_table::{config_text, ipvsadm_rules, plan_from_empty};
use lb_bench::proc_stat::minor_faults;
use lbd::config::{self, Loader, Validated};
use lbd::ipvs::client::{Counters, IpvsClient};
use lbd::ipvs::subsystem::{read_kernel, ApplyReport, IpvsSubsystem};
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn traffic(c: &Counters) -> u64 {
    c.messages_sent + c.messages_received
}

struct Figure {
    ms: f64,
    messages: u64,
}

fn run(
    client: &mut IpvsClient,
    f: impl FnOnce(&mut IpvsClient) -> Result<(), String>,
) -> Result<Figure, String> {
    let before = traffic(&client.counters);
    let t = Instant::now();
    f(client)?;
    Ok(Figure {
        ms: t.elapsed().as_secs_f64() * 1000.0,
        messages: traffic(&client.counters) - before,
    })
}

fn ipvsadm(args: &[&str], stdin: Option<&str>) -> Result<(f64, usize), String> {
    let t = Instant::now();
    let mut child = Command::new("ipvsadm")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ipvsadm: {e}"))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .map_err(|e| format!("ipvsadm stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ipvsadm: {e}"))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        return Err(format!(
            "ipvsadm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((ms, out.stdout.len()))
}

/// One reload as lbd does it: the config loader validates the text (only the edited services
/// when the rest is as last accepted), the IPVS subsystem plans against its kept view of the
/// kernel and applies.
struct Applied {
    /// From the text to the last acknowledgement.
    ms: f64,
    /// Minor page faults the process took on the way (dear under emulation).
    faults: u64,
    validate_ms: f64,
    validated: Option<Validated>,
    report: ApplyReport,
}

/// The transparent huge page mode and how much of this process's memory they back.
fn huge_pages() -> String {
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let backed = std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "?".into());
    format!("transparent huge pages {mode}, {backed} of anonymous memory in them")
}

fn apply(loader: &mut Loader, ipvs: &mut IpvsSubsystem, text: &str) -> Result<Applied, String> {
    let faults = minor_faults();
    let t = Instant::now();
    let loaded = loader
        .parse("bench.toml", text.to_string())
        .map_err(|e| e.to_string())?;
    let validate_ms = t.elapsed().as_secs_f64() * 1000.0;
    let report = ipvs.reconcile(&loaded.config).map_err(|e| e.to_string())?;
    if report.errors > 0 {
        return Err(format!(
            "{} of {} operations failed",
            report.errors,
            report.counts.total()
        ));
    }
    Ok(Applied {
        ms: t.elapsed().as_secs_f64() * 1000.0,
        faults: minor_faults() - faults,
        validate_ms,
        validated: loader.last_validated(),
        report,
    })
}

/// Runs lbd's side of an apply (loader, desired state, plan, requests, kernel model) on a small
/// table, without the kernel. An emulator translates a process's code the first time it runs
/// it, and each process afresh; the kernel's IPVS code is translated already (the benchmark's
/// earlier run, lbd's first apply), so without this the figures would set lbd's translation
/// against a warm kernel. A running lbd, whose reloads these figures are about, is warm too.
/// No request reaches the kernel: nothing is left in IPVS's trash of deleted destinations,
/// which would slow the kernel's side of the measured apply.
fn warm_up() -> Result<(), String> {
    for _ in 0..2 {
        let loaded = Loader::new()
            .parse("warm-up.toml", config_text(20, 10, None))
            .map_err(|e| e.to_string())?;
        let mut planned = plan_from_empty(&loaded.config);
        std::hint::black_box(planned.record());
    }
    Ok(())
}

/// Moves this process (and the ipvsadm it starts from now on) to a new network namespace:
/// an empty IPVS table, whatever the balancer runs, and an empty trash. IPVS keeps every
/// deleted destination in a per-namespace trash for a minute or two and scans the whole trash
/// on each add (`ip_vs_trash_get_dest`), so in a namespace where a large table was just
/// cleared every add pays for the deleted ones, and the kernel's side of an apply would
/// measure that instead of itself.
fn fresh_ipvs() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("cannot make a network namespace for the benchmark: {e}"))?;
    // IPVS takes a real only at an address the namespace can route (`inet_addr_type` in
    // `ip_vs_new_dest`); a new namespace has no routing table at all until its loopback is up.
    loopback_up().map_err(|e| format!("cannot bring the namespace's loopback up: {e}"))
}

/// `lo` up in this thread's namespace, through lbd's netlink layer.
fn loopback_up() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let nl = lbd::netlink::Netlink::connect().map_err(|e| e.to_string())?;
        nl.loopback_up().await.map(drop).map_err(|e| e.to_string())
    })
}

fn clear(client: &mut IpvsClient) -> Result<(), String> {
    let services = client.services().map_err(|e| e.to_string())?;
    let requests: Vec<_> = services
        .iter()
        .map(|s| {
            (
                format!("delete {}", s.id),
                lbd::ipvs::msg::request::del_service(&s.id),
            )
        })
        .collect();
    for r in client.execute(&requests).map_err(|e| e.to_string())? {
        r.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    // lbd's subsystem says why an operation failed in its log: shown as lbd shows it.
    lbd::logging::init("ipvs-bench", "LBD_LOG", "warn");
    // The reloads measured are lbd's: the same heap policy as the daemon.
    let refused = lbd::heap::keep_for_reloads();
    if !refused.is_empty() {
        eprintln!("ipvs-bench: the allocator refused {refused:?}");
    }
    lbd::heap::pretouch(lbd::heap::PRETOUCHED);
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipvs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A small table with every kind of setting, then each query's raw reply.
fn capture() -> Result<(), String> {
    use lbd::ipvs::msg::{self, request, DaemonEntry, DaemonState, DestEntry, FwdMethod};
    let e = |e: lbd::ipvs::client::IpvsError| e.to_string();
    let mut c = IpvsClient::connect().map_err(e)?;
    let svc = msg::ServiceEntry {
        id: msg::ServiceId::Addr {
            protocol: msg::IPPROTO_TCP,
            addr: "10.10.0.1".parse().expect("address"),
            port: 80,
        },
        scheduler: "wlc".into(),
        flags: msg::SVC_F_PERSISTENT,
        timeout: 300,
        netmask: 24,
        pe_name: None,
        stats: None,
    };
    let mut dest = DestEntry::new(
        "10.20.0.1".parse().expect("address"),
        80,
        FwdMethod::Route,
        3,
    );
    dest.upper_threshold = 100;
    dest.lower_threshold = 10;
    c.add_service(&svc).map_err(e)?;
    c.add_dest(&svc.id, &dest).map_err(e)?;
    c.set_timeouts(&msg::Timeouts {
        tcp: 7200,
        tcp_fin: 120,
        udp: 300,
    })
    .map_err(e)?;
    c.start_daemon(&DaemonEntry {
        state: DaemonState::Master,
        ifname: "eth0".into(),
        sync_id: 51,
        max_len: None,
        group: None,
        port: None,
        ttl: None,
    })
    .map_err(e)?;
    let queries = [
        ("GET_INFO", request::get_info(), false),
        ("GET_SERVICE dump", request::get_services(), true),
        ("GET_DEST dump", request::get_dests(&svc.id), true),
        ("GET_CONFIG", request::get_timeouts(), false),
        ("GET_DAEMON dump", request::get_daemons(), true),
        (
            "NEW_SERVICE again (EEXIST)",
            request::add_service(&svc),
            false,
        ),
    ];
    for (name, m, dump) in queries {
        for d in c.query_raw(&m, dump).map_err(e)? {
            println!("{name}: {}", hex(&d));
        }
    }
    c.stop_daemon(DaemonState::Master).map_err(e)?;
    c.del_service(&svc.id).map_err(e)?;
    Ok(())
}

fn bench() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("capture") {
        return capture();
    }
    let mut args = std::env::args().skip(1);
    let services: u32 = args
        .next()
        .map_or(Ok(1000), |a| a.parse())
        .map_err(|e| format!("SERVICES: {e}"))?;
    let reals: u32 = args
        .next()
        .map_or(Ok(10), |a| a.parse())
        .map_err(|e| format!("REALS: {e}"))?;
    let dests = services * reals;

    // lbd's side in a network namespace of its own: an IPVS table of its own, and an empty
    // trash of deleted destinations (see `fresh_ipvs`).
    fresh_ipvs()?;
    let mut client = IpvsClient::connect().map_err(|e| e.to_string())?;
    println!(
        "ipvs-bench: {services} services x {reals} reals = {dests} destinations; batches of up to {} requests",
        client.batch_size()
    );
    let full = config_text(services, reals, None);
    let changed = config_text(services, reals, Some(7));

    let mut loader = Loader::new();
    let mut ipvs = IpvsSubsystem::new().with_state_file(None);
    // lbd's first apply adopts the kernel's table (empty here): done before the figures.
    apply(&mut loader, &mut ipvs, &config_text(0, 0, None))?;
    warm_up()?;
    let apply_full = apply(&mut loader, &mut ipvs, &full)?;
    let apply_one = apply(&mut loader, &mut ipvs, &changed)?;
    if apply_one.validated != Some(Validated::Services(1)) {
        return Err(format!(
            "the one-real change validated {:?}, not the one service",
            apply_one.validated
        ));
    }
    let t = Instant::now();
    config::parse("bench.toml", &changed).map_err(|e| e.to_string())?;
    let whole_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut dumped = (0, 0);
    let dump = run(&mut client, |c| {
        let k = read_kernel(c).map_err(|e| e.to_string())?;
        dumped = (k.table.len(), k.dest_count());
        Ok(())
    })?;
    if dumped != (services as usize, dests as usize) {
        return Err(format!(
            "the dump has {} services and {} destinations, expected {services} and {dests}",
            dumped.0, dumped.1
        ));
    }
    // Where a dump's time goes: the service list, the per-service destination lists, parsing.
    let t = Instant::now();
    let list = client.services().map_err(|e| e.to_string())?;
    let services_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    for s in &list {
        client.dests(&s.id).map_err(|e| e.to_string())?;
    }
    let dests_ms = t.elapsed().as_secs_f64() * 1000.0;
    clear(&mut client)?;

    // ipvsadm's side in another: the trash lbd's table left behind is not its.
    fresh_ipvs()?;
    let mut client = IpvsClient::connect().map_err(|e| e.to_string())?;
    let rules = ipvsadm_rules(services, reals);
    let (restore_ms, _) = ipvsadm(&["-R"], Some(&rules))?;
    let (list_ms, list_bytes) = ipvsadm(&["-Ln"], None)?;
    clear(&mut client)?;

    println!(
        "figure: lbd full apply from empty: {:.0} ms, {} netlink messages ({} operations; validating the config {:.0} ms, planning {:.0} ms, kernel exchange {:.0} ms, recording {:.0} ms)",
        apply_full.ms,
        apply_full.report.messages,
        apply_full.report.counts.total(),
        apply_full.validate_ms,
        apply_full.report.plan_millis,
        apply_full.report.kernel_millis,
        apply_full.report.millis - apply_full.report.plan_millis - apply_full.report.kernel_millis
    );
    println!(
        "figure: lbd full apply / its kernel exchange: {:.2}x ({} page faults; {})",
        apply_full.ms / apply_full.report.kernel_millis,
        apply_full.faults,
        huge_pages()
    );
    println!(
        "figure: lbd one-real change: {:.1} ms end to end, {} netlink messages ({} operation; validating the edited service {:.1} ms, kernel exchange {:.2} ms, the rest is planning)",
        apply_one.ms,
        apply_one.report.messages,
        apply_one.report.counts.total(),
        apply_one.validate_ms,
        apply_one.report.kernel_millis
    );
    println!(
        "figure: validating the whole {services}-service file: {whole_ms:.0} ms (what every reload took before lbd kept the last config)"
    );
    println!(
        "figure: lbd full dump: {:.0} ms, {} netlink messages ({} services, {} destinations)",
        dump.ms, dump.messages, dumped.0, dumped.1
    );
    println!(
        "figure: lbd dump parts: service list {services_ms:.0} ms, {} destination lists {dests_ms:.0} ms",
        list.len()
    );
    println!(
        "figure: ipvsadm -R: {restore_ms:.0} ms ({} rules, one request and acknowledgement each)",
        services + dests
    );
    println!("figure: ipvsadm -Ln: {list_ms:.0} ms ({list_bytes} bytes of output)");
    println!(
        "figure: ratio full apply ipvsadm -R / lbd = {:.1}x",
        restore_ms / apply_full.ms
    );
    println!(
        "figure: ratio full listing ipvsadm -Ln / lbd dump = {:.1}x",
        list_ms / dump.ms
    );
    Ok(())
}
