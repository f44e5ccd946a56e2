//! `ipvs-bench`: how fast lbd's IPVS client programs and reads a large table, next to ipvsadm,
//! in the same kernel. Runs inside a guest (the test image ships it and ipvsadm).
//!
//! 1. lbd's way: plan 1,000 services x 10 reals from a config against an empty table and apply
//!    it (batched); then a one-real change (planned against the kept view, as lbd does); then a
//!    full dump. Milliseconds and netlink messages for each.
//! 2. The same table loaded with `ipvsadm -R` and listed with `ipvsadm -Ln`.
//! 3. Ratios. Every service this tool created is removed at the end.
//!
//! ```text
//! Usage: ipvs-bench [SERVICES] [REALS_PER_SERVICE]    (default 1000 10)
//!        ipvs-bench capture    (prints the kernel's raw replies for a small table, in hex:
//!                               the test vectors of `lbd::ipvs::msg`'s unit tests)
//! ```
//! Refuses to run when the kernel table is not empty (it would delete what it did not create).

use lbd::config;
use lbd::ipvs::client::{Counters, IpvsClient};
use lbd::ipvs::subsystem::read_kernel;
use lbd::reconcile::{self, KernelState, Overrides, RealHealth, SyncRole};
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn config_text(services: u32, reals: u32, changed_weight: Option<u32>) -> String {
    let mut t = String::from(
        "[vrrp.instance.BENCH]\ninterface = \"eth0\"\nvrid = 9\npriority = 100\nvips = [\"10.10.0.1/32\"]\n",
    );
    for s in 0..services {
        t += &format!(
            "[service.s{s}]\nvip = \"10.10.0.1:{}\"\nscheduler = \"wrr\"\nforwarding = \"dr\"\n",
            s + 1
        );
        for r in 0..reals {
            let weight = match (s, r, changed_weight) {
                (0, 0, Some(w)) => w,
                _ => 1,
            };
            t += &format!(
                "[[service.s{s}.real]]\naddress = \"10.20.{}.{}:{}\"\nweight = {weight}\n",
                r / 250,
                r % 250 + 1,
                s + 1
            );
        }
    }
    t
}

fn ipvsadm_rules(services: u32, reals: u32) -> String {
    let mut t = String::new();
    for s in 0..services {
        t += &format!("-A -t 10.10.0.1:{} -s wrr\n", s + 1);
        for r in 0..reals {
            t += &format!(
                "-a -t 10.10.0.1:{} -r 10.20.{}.{}:{} -g -w 1\n",
                s + 1,
                r / 250,
                r % 250 + 1,
                s + 1
            );
        }
    }
    t
}

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

/// Parses `text`, plans against `kernel` and applies; returns the operation count and the time
/// spent in the kernel exchange alone (milliseconds).
fn apply(
    client: &mut IpvsClient,
    kernel: &mut KernelState,
    text: &str,
) -> Result<(usize, f64), String> {
    let cfg = config::parse("bench.toml", text)
        .map_err(|e| e.to_string())?
        .config;
    let desired = reconcile::desired(
        &cfg,
        &RealHealth::default(),
        &Overrides::default(),
        SyncRole::Master,
    );
    let ops = reconcile::plan(&desired, kernel);
    let requests: Vec<_> = ops.iter().map(|o| (o.to_string(), o.message())).collect();
    let t = Instant::now();
    let results = client.execute(&requests).map_err(|e| e.to_string())?;
    let kernel_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut errors = 0;
    for (op, r) in ops.iter().zip(results) {
        match r {
            Ok(()) => kernel.apply(op),
            Err(e) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("ipvs-bench: {e}");
                }
            }
        }
    }
    if errors > 0 {
        return Err(format!("{errors} of {} operations failed", ops.len()));
    }
    Ok((ops.len(), kernel_ms))
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

    let mut client = IpvsClient::connect().map_err(|e| e.to_string())?;
    if !client.services().map_err(|e| e.to_string())?.is_empty() {
        return Err("the IPVS table is not empty; run on a balancer without services".into());
    }
    println!(
        "ipvs-bench: {services} services x {reals} reals = {dests} destinations; batches of up to {} requests",
        client.batch_size()
    );
    let full = config_text(services, reals, None);
    let changed = config_text(services, reals, Some(7));

    let mut kernel = KernelState::default();
    let (mut ops, mut full_kernel_ms) = (0, 0.0);
    let apply_full = run(&mut client, |c| {
        (ops, full_kernel_ms) = apply(c, &mut kernel, &full)?;
        Ok(())
    })?;
    let (mut one_ops, mut one_kernel_ms) = (0, 0.0);
    let apply_one = run(&mut client, |c| {
        (one_ops, one_kernel_ms) = apply(c, &mut kernel, &changed)?;
        Ok(())
    })?;
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

    let rules = ipvsadm_rules(services, reals);
    let (restore_ms, _) = ipvsadm(&["-R"], Some(&rules))?;
    let (list_ms, list_bytes) = ipvsadm(&["-Ln"], None)?;
    clear(&mut client)?;

    println!(
        "figure: lbd full apply from empty: {:.0} ms, {} netlink messages ({ops} operations; kernel exchange {full_kernel_ms:.0} ms, the rest is parsing the config and planning)",
        apply_full.ms, apply_full.messages
    );
    println!(
        "figure: lbd one-real change: {:.0} ms, {} netlink messages ({one_ops} operation; kernel exchange {one_kernel_ms:.2} ms, the rest is parsing the {services}-service config and planning)",
        apply_one.ms, apply_one.messages
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
