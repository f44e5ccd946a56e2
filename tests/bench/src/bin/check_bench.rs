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
//!                    [--veth-queues Q]

fn main() -> std::process::ExitCode {
    bench::main()
}

mod bench {
    use lbd::check::subsystem::CheckSubsystem;
    use lbd::check::{CheckState, HealthReport};
    use lbd::daemon::Subsystem;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[derive(Clone, Debug)]
    struct Opts {
        reals: usize,
        ports: usize,
        seconds: u64,
        kills: usize,
        fall: u32,
        kinds: Vec<String>,
        /// The check thread behind a veth pair (true) or on the servers' loopback.
        veth: bool,
        /// Queues (receive rings and NAPI threads) per veth end.
        veth_queues: u32,
        /// Run by the parent for one kind: no closing notes.
        child: bool,
    }

    fn parse_opts(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            reals: 10_000,
            ports: 10,
            seconds: 20,
            kills: 200,
            fall: 1,
            kinds: vec!["tcp".into(), "http".into()],
            veth: true,
            veth_queues: 1,
            child: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let num = |v: String, name: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name}: {v:?} is not a number"))
            };
            match a.as_str() {
                "--reals" => o.reals = num(val(a)?, a)? as usize,
                "--ports-per-address" => o.ports = num(val(a)?, a)?.max(1) as usize,
                "--seconds" => o.seconds = num(val(a)?, a)?.max(1),
                "--kills" => o.kills = num(val(a)?, a)? as usize,
                "--fall" => o.fall = num(val(a)?, a)?.clamp(1, 100) as u32,
                "--kind" => {
                    o.kinds = match val(a)?.as_str() {
                        "both" => vec!["tcp".into(), "http".into()],
                        "all" => vec![
                            "tcp".into(),
                            "half-open".into(),
                            "http".into(),
                            "http-keepalive".into(),
                        ],
                        k @ ("tcp" | "half-open" | "http" | "http-keepalive") => vec![k.into()],
                        k => {
                            return Err(format!(
                                "--kind {k}: use tcp, half-open, http, http-keepalive, both (tcp and http) or all"
                            ))
                        }
                    }
                }
                "--topology" => {
                    o.veth = match val(a)?.as_str() {
                        "veth" => true,
                        "loopback" => false,
                        t => return Err(format!("--topology {t}: use veth or loopback")),
                    }
                }
                "--veth-queues" => o.veth_queues = num(val(a)?, a)?.clamp(1, 16) as u32,
                "--child" => o.child = true,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if o.kills > o.reals {
            o.kills = o.reals;
        }
        Ok(o)
    }

    fn addr(i: usize, ports: usize) -> SocketAddr {
        let host = i / ports;
        let ip = Ipv4Addr::new(10, 200, (host / 250) as u8, (host % 250 + 1) as u8);
        SocketAddr::new(ip.into(), 20_000 + (i % ports) as u16)
    }

    fn monotonic_ns() -> u128 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
    }

    /// Ten thousand listeners and as many kept connections need more than the usual hard
    /// limit (often 20,000); root may raise it.
    fn raise_nofile() {
        if let Err(e) = lbd::sockets::raise_fd_limit(1 << 20) {
            eprintln!("check-bench: open files limit: {e}");
        }
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("--serve") {
            return serve(&args[1..]);
        }
        let opts = match parse_opts(&args) {
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
            // One process per kind, so each starts from the same memory.
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
                let status = std::env::current_exe()
                    .and_then(|exe| Command::new(exe).args(&child_args).status());
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
            return if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        let ns = match Netns::new(&opts) {
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
        println!(
            "check-bench: {} reals on {} addresses x {} ports in namespace {}, interval 1s, timeout 1s, rise 1, fall {}, jitter 100ms",
            opts.reals,
            opts.reals.div_ceil(opts.ports),
            opts.ports,
            ns.name,
            opts.fall
        );
        match &client {
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
        let mut ok = true;
        for kind in &opts.kinds {
            match run_kind(&ns, client.as_ref(), &opts, kind) {
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

    /// Runs `ip ARGS...`; an error names the command and how it failed.
    fn ip(args: &[&str]) -> Result<(), String> {
        let st = Command::new("ip")
            .args(args)
            .status()
            .map_err(|e| format!("ip {args:?}: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("ip {args:?}: {st}"))
        }
    }

    struct Netns {
        name: String,
    }

    impl Netns {
        fn new(opts: &Opts) -> Result<Netns, String> {
            let name = format!("lbdbench-{}", std::process::id());
            let run = ip;
            run(&["netns", "add", &name])?;
            let ns = Netns { name };
            run(&["-n", &ns.name, "link", "set", "lo", "up"])?;
            let mut batch = String::new();
            for host in 0..opts.reals.div_ceil(opts.ports) {
                let a = addr(host * opts.ports, opts.ports);
                batch += &format!("addr add {}/32 dev lo\n", a.ip());
            }
            let mut child = Command::new("ip")
                .args(["-n", &ns.name, "-batch", "-"])
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| format!("ip -batch: {e}"))?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(batch.as_bytes())
                .map_err(|e| format!("ip -batch: {e}"))?;
            let st = child.wait().map_err(|e| format!("ip -batch: {e}"))?;
            if !st.success() {
                return Err(format!("adding addresses failed: {st}"));
            }
            Ok(ns)
        }

        fn enter(&self) -> Result<(), String> {
            let path = format!("/run/netns/{}", self.name);
            let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd, for the calling thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(())
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }

    /// The checks' own namespace, joined to the servers' by a veth pair whose two ends receive
    /// in threaded NAPI (see the module docs).
    struct VethClient {
        ns: Netns,
        /// The servers' namespace (owned by the caller).
        servers: String,
        /// The end in the client namespace.
        dev: String,
        /// The end in the servers' namespace.
        peer: String,
    }

    impl VethClient {
        fn new(servers: &Netns, queues: u32) -> Result<VethClient, String> {
            let run = ip;
            let ns = Netns {
                name: format!("{}-c", servers.name),
            };
            run(&["netns", "add", &ns.name])?;
            let id = std::process::id();
            let (dev, peer) = (format!("lbc{id}"), format!("lbs{id}"));
            let queues = queues.to_string();
            run(&[
                "-n",
                &ns.name,
                "link",
                "add",
                &dev,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "numtxqueues",
                &queues,
                "numrxqueues",
                &queues,
                "netns",
                &servers.name,
            ])?;
            run(&["-n", &ns.name, "link", "set", "lo", "up"])?;
            run(&["-n", &ns.name, "link", "set", &dev, "up"])?;
            run(&["-n", &servers.name, "link", "set", &peer, "up"])?;
            run(&["-n", &ns.name, "addr", "add", "10.199.0.1/30", "dev", &dev])?;
            run(&[
                "-n",
                &servers.name,
                "addr",
                "add",
                "10.199.0.2/30",
                "dev",
                &peer,
            ])?;
            run(&[
                "-n",
                &ns.name,
                "route",
                "add",
                "10.200.0.0/16",
                "via",
                "10.199.0.2",
            ])?;
            for (side, d) in [(&ns, &dev), (servers, &peer)] {
                // veth hands a packet to the peer's NAPI only with GRO on the receiver and no
                // TSO on the sender; otherwise it is processed in the sender's context.
                side.in_thread(|| {
                    ethtool_set(d, ETHTOOL_SGRO, true)?;
                    ethtool_set(d, ETHTOOL_STSO, false)
                })??;
                // /sys/class/net shows the devices of the namespace that mounted /sys: write
                // from `ip netns exec`, which mounts the namespace's own.
                let st = Command::new("ip")
                    .args(["netns", "exec", &side.name, "sh", "-c"])
                    .arg(format!("echo 1 > /sys/class/net/{d}/threaded"))
                    .status()
                    .map_err(|e| format!("threaded NAPI on {d}: {e}"))?;
                if !st.success() {
                    return Err(format!("threaded NAPI on {d}: {st}"));
                }
            }
            Ok(VethClient {
                ns,
                servers: servers.name.clone(),
                dev,
                peer,
            })
        }

        /// Packets the two ends dropped on transmit so far (the peer's ring was full).
        fn drops(&self) -> u64 {
            tx_dropped(&self.ns.name, &self.dev) + tx_dropped(&self.servers, &self.peer)
        }
    }

    /// `ip -s link`'s transmit "dropped" counter of `dev` in namespace `ns`.
    fn tx_dropped(ns: &str, dev: &str) -> u64 {
        let out = Command::new("ip")
            .args(["-n", ns, "-s", "link", "show", "dev", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut lines = out.lines();
        while let Some(l) = lines.next() {
            if l.trim_start().starts_with("TX:") {
                // bytes packets errors dropped ...
                return lines
                    .next()
                    .and_then(|v| v.split_whitespace().nth(3)?.parse().ok())
                    .unwrap_or(0);
            }
        }
        0
    }

    const ETHTOOL_STSO: u32 = 0x1f;
    const ETHTOOL_SGRO: u32 = 0x2c;

    /// One of ethtool's legacy on/off settings (`ethtool -K`), on this thread's namespace.
    fn ethtool_set(dev: &str, cmd: u32, on: bool) -> Result<(), String> {
        #[repr(C)]
        struct EthtoolValue {
            cmd: u32,
            data: u32,
        }
        #[repr(C)]
        struct IfReq {
            name: [u8; libc::IFNAMSIZ],
            data: *mut EthtoolValue,
            _pad: [u8; 16],
        }
        let mut value = EthtoolValue {
            cmd,
            data: on as u32,
        };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: &mut value,
            _pad: [0; 16],
        };
        if dev.len() >= libc::IFNAMSIZ {
            return Err(format!("{dev}: name too long"));
        }
        req.name[..dev.len()].copy_from_slice(dev.as_bytes());
        // SAFETY: a datagram socket for the ioctl, closed below; `req` and `value` outlive it.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(format!("socket: {}", std::io::Error::last_os_error()));
            }
            let r = libc::ioctl(fd, libc::SIOCETHTOOL, &mut req);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if r != 0 {
                return Err(format!("ethtool {cmd:#x} on {dev}: {err}"));
            }
        }
        Ok(())
    }

    /// The kernel threads that run `dev`'s threaded NAPI (`napi/<dev>-<id>`, one per queue).
    fn napi_threads(dev: &str) -> Result<Vec<String>, String> {
        let prefix = format!("napi/{dev}-");
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim().starts_with(&prefix) {
                found.push(entry.path().join("stat").display().to_string());
            }
        }
        if found.is_empty() {
            return Err(format!("no NAPI thread for {dev}"));
        }
        Ok(found)
    }

    /// CPU time of a set of threads.
    fn cpu_of_all(stats: &[String]) -> Duration {
        stats.iter().filter_map(|s| cpu_of(s)).sum()
    }

    /// The server processes (not measured): one, or for kept connections several, since each
    /// real is then a listener and a connection and a process may hold only so many files.
    struct Servers {
        parts: Vec<(std::ops::Range<usize>, Server)>,
    }

    /// Reals per server process when connections are kept.
    const KEPT_PER_SERVER: usize = 4000;

    impl Servers {
        fn start(ns: &Netns, opts: &Opts, kind: &str) -> Result<Servers, String> {
            let per = if kind == "http-keepalive" {
                KEPT_PER_SERVER
            } else {
                opts.reals.max(1)
            };
            let mut parts = Vec::new();
            for first in (0..opts.reals).step_by(per) {
                let range = first..(first + per).min(opts.reals);
                parts.push((range.clone(), Server::start(ns, opts, kind, range)?));
            }
            Ok(Servers { parts })
        }

        /// Checks served so far, by all of them.
        fn stats(&mut self) -> Result<u64, String> {
            let mut total = 0;
            for (_, s) in &mut self.parts {
                total += s
                    .command("stats")?
                    .parse::<u64>()
                    .map_err(|_| "bad stats")?;
            }
            Ok(total)
        }

        /// Kills real `i`'s server; its reply.
        fn kill(&mut self, i: usize) -> Result<String, String> {
            let (_, s) = self
                .parts
                .iter_mut()
                .find(|(r, _)| r.contains(&i))
                .ok_or_else(|| format!("no server for real {i}"))?;
            s.command(&format!("kill {i}"))
        }
    }

    /// One server process.
    struct Server {
        child: Child,
        out: BufReader<std::process::ChildStdout>,
    }

    impl Server {
        fn start(
            ns: &Netns,
            opts: &Opts,
            kind: &str,
            reals: std::ops::Range<usize>,
        ) -> Result<Server, String> {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut child = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(exe)
                .args([
                    "--serve",
                    kind,
                    &reals.start.to_string(),
                    &reals.end.to_string(),
                    &opts.ports.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("server: {e}"))?;
            let out = BufReader::new(child.stdout.take().expect("piped"));
            let mut s = Server { child, out };
            let line = s.line()?;
            if line != "ready" {
                return Err(format!("server said {line:?}"));
            }
            Ok(s)
        }

        fn line(&mut self) -> Result<String, String> {
            let mut l = String::new();
            match self.out.read_line(&mut l) {
                Ok(0) => Err("server exited".into()),
                Ok(_) => Ok(l.trim().to_string()),
                Err(e) => Err(format!("server: {e}")),
            }
        }

        fn command(&mut self, cmd: &str) -> Result<String, String> {
            let stdin = self.child.stdin.as_mut().ok_or("server stdin closed")?;
            writeln!(stdin, "{cmd}").map_err(|e| format!("server: {e}"))?;
            self.line()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn config_text(opts: &Opts, kind: &str) -> String {
        let mut t = String::new();
        let per_service = 100;
        let check = match kind {
            "half-open" => r#"{ type = "tcp", half_open = true, interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
            "tcp" => r#"{ type = "tcp", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
            "http-keepalive" => r#"{ type = "http", keep_alive = true, path = "/health", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
            _ => r#"{ type = "http", path = "/health", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
        }
        .replace("FALL", &opts.fall.to_string());
        for i in 0..opts.reals {
            if i % per_service == 0 {
                t += &format!(
                    "[service.s{}]\nfwmark = {}\nscheduler = \"wrr\"\nforwarding = \"dr\"\ncheck = {check}\n",
                    i / per_service,
                    i / per_service + 1
                );
            }
            t += &format!(
                "[[service.s{}.real]]\naddress = \"{}\"\n",
                i / per_service,
                addr(i, opts.ports)
            );
        }
        t
    }

    /// CPU time (user, system) of a thread or of the whole process, from /proc.
    fn cpu_split(stat_path: &str) -> Option<(Duration, Duration)> {
        let stat = std::fs::read_to_string(stat_path).ok()?;
        let rest = stat.rsplit_once(") ")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after "pid (comm) ".
        let user: u64 = f.get(11)?.parse().ok()?;
        let system: u64 = f.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let d = |ticks: u64| Duration::from_nanos(ticks * 1_000_000_000 / hz);
        Some((d(user), d(system)))
    }

    fn cpu_of(stat_path: &str) -> Option<Duration> {
        cpu_split(stat_path).map(|(u, s)| u + s)
    }

    fn thread_stat(name: &str) -> Option<String> {
        for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim() == name {
                return Some(entry.path().join("stat").display().to_string());
            }
        }
        None
    }

    fn status_kib(field: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[idx.min(sorted.len() - 1)]
    }

    fn run_kind(
        ns: &Netns,
        client: Option<&VethClient>,
        opts: &Opts,
        kind: &str,
    ) -> Result<(), String> {
        let mut server = Servers::start(ns, opts, kind)?;
        let config = lbd::config::parse("bench.toml", &config_text(opts, kind))
            .map_err(|e| format!("bench config refused: {e}"))?
            .config;
        let rss_before_checks = status_kib("VmRSS:");
        // The check thread inherits this thread's namespace: start it from a thread inside.
        let (mut checks, rx) = client.map_or(ns, |c| &c.ns).in_thread(|| {
            let c = CheckSubsystem::start().map_err(|e| e.to_string())?;
            let rx = c.health();
            Ok::<_, String>((c, rx))
        })??;
        let napi = match client {
            Some(c) => Some((napi_threads(&c.dev)?, napi_threads(&c.peer)?)),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        checks.apply(None, &config);
        let drops_before = client.map(VethClient::drops);
        let result = runtime.block_on(measure(
            opts,
            kind,
            &mut server,
            rx,
            t0,
            rss_before_checks,
            napi,
        ));
        checks.stop();
        if let (Some(c), Some(before)) = (client, drops_before) {
            let drops = c.drops() - before;
            if drops > 0 {
                println!(
                    "  veth drops: {drops} packets lost in full veth rings (the rig's, not the servers': false alarms above may be these; try --veth-queues 4)"
                );
            }
        }
        result
    }

    async fn measure(
        opts: &Opts,
        kind: &str,
        server: &mut Servers,
        mut rx: tokio::sync::watch::Receiver<Arc<HealthReport>>,
        t0: Instant,
        rss_before_checks: u64,
        napi: Option<(Vec<String>, Vec<String>)>,
    ) -> Result<(), String> {
        let reals: Vec<(String, SocketAddr)> = (0..opts.reals)
            .map(|i| (format!("s{}", i / 100), addr(i, opts.ports)))
            .collect();
        // Warm-up: every real checked once and up.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = rx.borrow_and_update().clone();
            let up = reals
                .iter()
                .filter(|(s, a)| r.real(s, a).is_some_and(|x| x.state == CheckState::Up))
                .count();
            if up == reals.len() {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let down: Vec<String> = reals
                    .iter()
                    .filter_map(|(s, a)| {
                        let x = r.real(s, a)?;
                        (x.state != CheckState::Up).then(|| {
                            let why = x.reason.as_ref().map(|f| f.to_string());
                            format!("{a} {:?} ({})", x.state, why.unwrap_or_default())
                        })
                    })
                    .take(5)
                    .collect();
                return Err(format!(
                    "only {up} of {} reals up after 30s of checks; for example: {}",
                    reals.len(),
                    down.join(", ")
                ));
            }
        }
        let first_round = t0.elapsed();
        // Steady state: CPU over `seconds`, with no state changes.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let thread = thread_stat("lbd-checks").ok_or("no lbd-checks thread")?;
        let served0 = server.stats()?;
        let napi_cpu = || napi.as_ref().map(|(c, s)| (cpu_of_all(c), cpu_of_all(s)));
        let (t_split0, t_cpu0, p_cpu0, n_cpu0, w0) = (
            cpu_split(&thread).unwrap_or_default(),
            cpu_of(&thread).unwrap_or_default(),
            cpu_of("/proc/self/stat").unwrap_or_default(),
            napi_cpu(),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
        let (t_split1, t_cpu1, p_cpu1, n_cpu1, w1) = (
            cpu_split(&thread).unwrap_or_default(),
            cpu_of(&thread).unwrap_or_default(),
            cpu_of("/proc/self/stat").unwrap_or_default(),
            napi_cpu(),
            Instant::now(),
        );
        let served1 = server.stats()?;
        let wall = (w1 - w0).as_secs_f64();
        let rss = status_kib("VmRSS:");
        let hwm = status_kib("VmHWM:");
        if std::env::var_os("CHECK_BENCH_MALLOC_STATS").is_some() {
            extern "C" {
                fn malloc_stats();
            }
            // SAFETY: glibc's malloc_stats prints to stderr; no arguments.
            unsafe { malloc_stats() };
        }

        // Detection: kill servers one by one (spread over ~`kills` x 37 ms), note when each
        // died (monotonic clock, shared with the server) and when its real went down.
        let victims: Vec<usize> = (0..opts.kills)
            .map(|k| (k * 7919) % opts.reals)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut died: HashMap<usize, u128> = HashMap::new();
        let mut spurious: HashMap<usize, String> = HashMap::new();
        let mut down_at: HashMap<usize, u128> = HashMap::new();
        let index: HashMap<(String, SocketAddr), usize> = reals
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        let mut pending = victims.clone().into_iter();
        let mut next_kill = tokio::time::Instant::now();
        let end = tokio::time::Instant::now()
            + Duration::from_millis(37 * victims.len() as u64)
            + Duration::from_secs(3 + 2 * opts.fall as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_kill), if pending.len() > 0 => {
                    if let Some(v) = pending.next() {
                        let (s, a) = &reals[v];
                        if rx.borrow().real(s, a).is_some_and(|x| x.state == CheckState::Down) {
                            spurious.entry(v).or_insert_with(|| "down before it was killed".into());
                        }
                        let reply = server.kill(v)?;
                        let ns: u128 = reply.parse().map_err(|_| format!("bad kill reply {reply:?}"))?;
                        died.insert(v, ns);
                    }
                    next_kill += Duration::from_millis(37);
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = monotonic_ns();
                    let r = rx.borrow_and_update().clone();
                    for v in &victims {
                        if down_at.contains_key(v) {
                            continue;
                        }
                        let (s, a) = &reals[*v];
                        if died.contains_key(v)
                            && r.real(s, a).is_some_and(|x| x.state == CheckState::Down)
                        {
                            down_at.insert(*v, now);
                        }
                    }
                    // Anything else that goes down is a false alarm (an overloaded host).
                    for (svc, h) in &r.services {
                        for (a, st) in &h.reals {
                            if st.state == CheckState::Down {
                                let i = index[&(svc.clone(), *a)];
                                if !died.contains_key(&i) && !spurious.contains_key(&i) {
                                    spurious.insert(i, st.reason.as_ref().map(|f| f.to_string()).unwrap_or_default());
                                }
                            }
                        }
                    }
                    if down_at.len() == victims.len() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(end) => break,
            }
        }
        // A victim seen down before it was killed was a false alarm, not a detection.
        let mut lat: Vec<f64> = victims
            .iter()
            .filter_map(|v| {
                if spurious.contains_key(v) {
                    return None;
                }
                let (down, died) = (*down_at.get(v)?, *died.get(v)?);
                (down >= died).then(|| (down - died) as f64 / 1e6)
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let missed = victims
            .iter()
            .filter(|v| !down_at.contains_key(v) && !spurious.contains_key(v))
            .count();

        let checks_per_s = (served1 - served0) as f64 / wall;
        println!("{kind}:");
        println!(
            "  first round: all {} reals up {:.2}s after the config was applied",
            reals.len(),
            first_round.as_secs_f64()
        );
        println!(
            "  checks served: {checks_per_s:.0}/s ({:.0}% of {} reals x 1/s)",
            100.0 * checks_per_s / reals.len() as f64,
            reals.len()
        );
        println!(
            "  CPU: check thread {:.1}% of one core (user {:.1}%, kernel {:.1}%), whole process {:.1}% (over {wall:.0}s)",
            100.0 * (t_cpu1 - t_cpu0).as_secs_f64() / wall,
            100.0 * (t_split1.0 - t_split0.0).as_secs_f64() / wall,
            100.0 * (t_split1.1 - t_split0.1).as_secs_f64() / wall,
            100.0 * (p_cpu1 - p_cpu0).as_secs_f64() / wall
        );
        match (n_cpu0, n_cpu1) {
            (Some((c0, s0)), Some((c1, s1))) => {
                let client = 100.0 * (c1 - c0).as_secs_f64() / wall;
                println!(
                    "       the checks' receive side (SYN-ACK in, ACK out; client NAPI threads) {client:.1}%: with it {:.1}%",
                    100.0 * (t_cpu1 - t_cpu0).as_secs_f64() / wall + client
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
        println!(
            "  memory: RSS {:.1} MiB (peak {:.1} MiB; {:.1} MiB before the checks started, incl. the parsed config)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            rss_before_checks as f64 / 1024.0
        );
        println!(
            "  detection (server killed -> real down in the report), {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            if missed > 0 {
                format!(", {missed} not detected in time")
            } else {
                String::new()
            }
        );
        if !spurious.is_empty() {
            let mut reasons: Vec<&String> = spurious.values().collect();
            reasons.sort();
            reasons.dedup();
            println!(
                "  false alarms: {} live servers seen down during the kills ({})",
                spurious.len(),
                reasons
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        println!("  host load average: {}", loadavg());
        if missed > 0 {
            return Err(format!("{missed} killed servers were not detected"));
        }
        Ok(())
    }

    impl Netns {
        /// Runs `f` on a thread inside the namespace.
        fn in_thread<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
            std::thread::scope(|s| {
                s.spawn(|| {
                    self.enter()?;
                    Ok(f())
                })
                .join()
                .map_err(|_| "namespace thread panicked".to_string())?
            })
        }
    }

    /// Counts SYNs (SYN alone set) arriving in this namespace, from a raw TCP socket (which
    /// gets a copy of every TCP segment for a local address), on a thread of its own.
    fn count_syns(count: Arc<std::sync::atomic::AtomicU64>) -> Result<(), String> {
        // SAFETY: plain system call; the descriptor is owned by the thread below.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP,
            )
        };
        if fd < 0 {
            return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: `buf` is a valid buffer of the length given.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    return;
                }
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                if (n as usize) > ihl + 13 && buf[ihl + 13] == 0x02 {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        Ok(())
    }

    /// `--serve KIND FIRST END P`: listeners for reals FIRST..END; TCP accepts and closes,
    /// HTTP answers 200. Reads commands on stdin: `stats` (checks served so far), `kill I`
    /// (closes real I's listener, answers the monotonic time in ns when closing began).
    fn serve(args: &[String]) -> ExitCode {
        raise_nofile();
        let kind = args.first().cloned().unwrap_or_default();
        let first: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let end: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
        let ports: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("server: {e}");
                return ExitCode::FAILURE;
            }
        };
        rt.block_on(async move {
            use std::sync::atomic::{AtomicU64, Ordering};
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let accepted = Arc::new(AtomicU64::new(0));
            if kind == "half-open" {
                // Nothing is accepted: count the SYNs that arrive instead.
                if let Err(e) = count_syns(accepted.clone()) {
                    eprintln!("server: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let mut handles = Vec::with_capacity(end.saturating_sub(first));
            for i in first..end {
                let l = match tokio::net::TcpListener::bind(addr(i, ports)).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("server: bind {}: {e}", addr(i, ports));
                        return ExitCode::FAILURE;
                    }
                };
                let accepted = accepted.clone();
                let http = kind == "http";
                let kept = kind == "http-keepalive";
                handles.push(tokio::spawn(async move {
                    // A kept connection dies with its listener (this task): a killed server
                    // closes every connection, as a stopped process would.
                    let mut connections = tokio::task::JoinSet::new();
                    loop {
                        let Ok((mut s, _)) = l.accept().await else {
                            continue;
                        };
                        if kept {
                            let accepted = accepted.clone();
                            connections.spawn(async move {
                                let mut buf = [0u8; 1024];
                                let mut got = 0;
                                loop {
                                    match s.read(&mut buf[got..]).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(k) => got += k,
                                    }
                                    while let Some(end) =
                                        buf[..got].windows(4).position(|w| w == b"\r\n\r\n")
                                    {
                                        buf.copy_within(end + 4..got, 0);
                                        got -= end + 4;
                                        accepted.fetch_add(1, Ordering::Relaxed);
                                        if s.write_all(
                                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
                                        )
                                        .await
                                        .is_err()
                                        {
                                            return;
                                        }
                                    }
                                    if got == buf.len() {
                                        return;
                                    }
                                }
                            });
                            while connections.try_join_next().is_some() {}
                            continue;
                        }
                        accepted.fetch_add(1, Ordering::Relaxed);
                        if http {
                            tokio::spawn(async move {
                                let mut buf = [0u8; 1024];
                                let mut got = 0;
                                while got < buf.len() {
                                    match s.read(&mut buf[got..]).await {
                                        Ok(0) | Err(_) => return,
                                        Ok(k) => got += k,
                                    }
                                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                                        break;
                                    }
                                }
                                let _ = s
                                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                                    .await;
                            });
                        }
                    }
                }));
            }
            println!("ready");
            // Commands arrive on a plain thread reading stdin.
            let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
            std::thread::spawn(move || {
                for line in std::io::stdin().lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            while let Some(line) = lines.recv().await {
                let mut w = line.split_whitespace();
                match (w.next(), w.next().and_then(|v| v.parse::<usize>().ok())) {
                    (Some("stats"), _) => println!("{}", accepted.load(Ordering::Relaxed)),
                    (Some("kill"), Some(i)) if (first..end).contains(&i) => {
                        let i = i - first;
                        // The death starts when the listener starts closing: a check refused
                        // before the abort is awaited is a detection, not a false alarm.
                        let died = monotonic_ns();
                        handles[i].abort();
                        let _ = (&mut handles[i]).await;
                        println!("{died}");
                    }
                    _ => println!("?"),
                }
            }
            ExitCode::SUCCESS
        })
    }
}
