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

use nix::sys::socket;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use lbtest::appliance::{ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell, ShellGuest};
use lbtest::{MacAddr, Netns, Nic, StaticServer};

const BOOT: Duration = Duration::from_secs(240);
const CMD: Duration = Duration::from_secs(60);
/// The namespace's address on the guest's segment (config server, gateway to the reals).
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const CONFIG_PORT: u16 = 8000;
/// Every real's address is in here; the namespace answers all of it.
const REALS_NET: &str = "10.201.0.0/16";
/// The guest's USER_HZ (always 100 on x86).
const CLK_TCK: f64 = 100.0;
/// How long a checker may take to reach its steady state (IPVS loaded, every real checked).
const WARMUP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Tcp,
    /// lbd's `half_open = true` (keepalived has no such check: its figure is its TCP_CHECK's).
    TcpHalfOpen,
    Http,
    /// lbd's `keep_alive = true` (keepalived connects every time: its figure is its
    /// HTTP_GET's). The host counts requests, not connections, as checks served.
    HttpKeepAlive,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::TcpHalfOpen => "tcp-half-open",
            Kind::Http => "http",
            Kind::HttpKeepAlive => "http-keepalive",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Checker {
    Lbd,
    Keepalived,
}

impl Checker {
    fn name(self) -> &'static str {
        match self {
            Checker::Lbd => "lbd",
            Checker::Keepalived => "keepalived",
        }
    }

    /// The port its reals listen on, so the host can tell whose checks it served.
    fn port(self, kind: Kind) -> u16 {
        match (self, kind) {
            (Checker::Lbd, Kind::Tcp) => 8001,
            (Checker::Keepalived, Kind::Tcp) => 8002,
            (Checker::Lbd, Kind::TcpHalfOpen) => 8003,
            (Checker::Keepalived, Kind::TcpHalfOpen) => 8004,
            (Checker::Lbd, Kind::Http) => 8101,
            (Checker::Keepalived, Kind::Http) => 8102,
            (Checker::Lbd, Kind::HttpKeepAlive) => 8103,
            (Checker::Keepalived, Kind::HttpKeepAlive) => 8104,
        }
    }

    /// First firewall mark of its services (the two sets never overlap in IPVS).
    fn first_fwmark(self) -> usize {
        match self {
            Checker::Lbd => 1,
            Checker::Keepalived => 1001,
        }
    }
}

#[derive(Clone, Debug)]
struct Opts {
    reals: usize,
    seconds: u64,
    /// Extra time in the steady state before the window opens.
    settle: u64,
    kinds: Vec<Kind>,
    checkers: Vec<Checker>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        reals: 10_000,
        seconds: 30,
        settle: 5,
        kinds: vec![
            Kind::Tcp,
            Kind::TcpHalfOpen,
            Kind::Http,
            Kind::HttpKeepAlive,
        ],
        checkers: vec![Checker::Lbd, Checker::Keepalived],
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--reals" => {
                let v = val()?;
                o.reals = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=REALS_MAX).contains(n))
                    .ok_or_else(|| format!("--reals {v}: a number from 1 to {REALS_MAX}"))?;
            }
            "--seconds" => {
                let v = val()?;
                o.seconds = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--seconds {v}: a positive number"))?;
            }
            "--settle" => {
                let v = val()?;
                o.settle = v
                    .parse()
                    .map_err(|_| format!("--settle {v}: a number of seconds"))?;
            }
            "--kind" => {
                o.kinds = match val()?.as_str() {
                    "connect" => vec![Kind::Tcp],
                    "tcp" => vec![Kind::Tcp, Kind::TcpHalfOpen],
                    "half-open" => vec![Kind::TcpHalfOpen],
                    "http" => vec![Kind::Http],
                    "http-keepalive" => vec![Kind::HttpKeepAlive],
                    "http-all" => vec![Kind::Http, Kind::HttpKeepAlive],
                    "both" | "all" => vec![
                        Kind::Tcp,
                        Kind::TcpHalfOpen,
                        Kind::Http,
                        Kind::HttpKeepAlive,
                    ],
                    k => {
                        return Err(format!(
                        "--kind {k}: connect, half-open, tcp (connect and half-open), http, http-keepalive, http-all or all"
                    ))
                    }
                }
            }
            "--checker" => {
                o.checkers = match val()?.as_str() {
                    "lbd" => vec![Checker::Lbd],
                    "keepalived" => vec![Checker::Keepalived],
                    "both" => vec![Checker::Lbd, Checker::Keepalived],
                    c => return Err(format!("--checker {c}: lbd, keepalived or both")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Whether `checker` is measured for `kind` (keepalived has no half-open or keep-alive check).
fn runs(checker: Checker, kind: Kind) -> bool {
    checker == Checker::Lbd || !matches!(kind, Kind::TcpHalfOpen | Kind::HttpKeepAlive)
}

/// 250 addresses per /24 in 10.201.0.0/16.
const REALS_MAX: usize = 250 * 256;
/// Reals per virtual service (both configs).
const PER_SERVICE: usize = 100;

/// The address of real `i` (the same for both checkers; the port tells them apart).
fn real_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, (i / 250) as u8, (i % 250 + 1) as u8)
}

// ---------------------------------------------------------------------------------------------
// The settings both checkers get.

/// Interval 1 s, connect/answer timeout 1 s, a real goes down after 2 failed checks (keepalived:
/// the first failure and `retry 1` after `delay_before_retry 1`) and comes back after 1.
const SETTINGS: &str =
    "interval 1s, timeout 1s, down after 2 failures 1s apart, up after 1 success; lbd jitter 100ms";

fn lbd_config(opts: &Opts, kind: Kind) -> String {
    let port = Checker::Lbd.port(kind);
    let check = match kind {
        Kind::TcpHalfOpen => {
            r#"{ type = "tcp", half_open = true, interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::Tcp => {
            r#"{ type = "tcp", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::Http => {
            r#"{ type = "http", path = "/health", expect_status = [200], interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::HttpKeepAlive => {
            r#"{ type = "http", keep_alive = true, path = "/health", expect_status = [200], interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
    };
    let mut t = String::from("[node]\nhostname = \"ckbench\"\n\n");
    for i in 0..opts.reals {
        if i % PER_SERVICE == 0 {
            let s = i / PER_SERVICE;
            t += &format!(
                "[service.s{s}]\nfwmark = {}\nscheduler = \"wrr\"\nforwarding = \"dr\"\ncheck = {check}\n",
                Checker::Lbd.first_fwmark() + s
            );
        }
        t += &format!(
            "[[service.s{}.real]]\naddress = \"{}:{port}\"\n",
            i / PER_SERVICE,
            real_ip(i)
        );
    }
    t
}

/// lbd's config between phases: no services, so no checks.
const LBD_IDLE: &str = "[node]\nhostname = \"ckbench\"\n";

fn keepalived_config(opts: &Opts, kind: Kind) -> String {
    let port = Checker::Keepalived.port(kind);
    let check = match kind {
        Kind::Tcp | Kind::TcpHalfOpen => "        TCP_CHECK {\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n".to_string(),
        Kind::Http | Kind::HttpKeepAlive => "        HTTP_GET {\n            url {\n                path /health\n                status_code 200\n            }\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n".to_string(),
    };
    let mut t = String::from("global_defs {\n    router_id ckbench\n}\n");
    for s in 0..opts.reals.div_ceil(PER_SERVICE) {
        t += &format!(
            "virtual_server fwmark {} {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n",
            Checker::Keepalived.first_fwmark() + s
        );
        for i in s * PER_SERVICE..((s + 1) * PER_SERVICE).min(opts.reals) {
            t += &format!(
                "    real_server {} {port} {{\n        weight 1\n{check}    }}\n",
                real_ip(i)
            );
        }
        t += "}\n";
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The host side: the namespace, the reals' listeners, the config server.

/// Connections served on one port.
#[derive(Default)]
struct Served {
    accepted: AtomicU64,
    answered: AtomicU64,
}

/// HTTP connections are handed to a pool, so a slow guest request never stalls the accepts.
const HTTP_WORKERS: usize = 32;

fn serve(ns: &Netns, listener: TcpListener, kind: Kind, served: Arc<Served>) -> Result<(), String> {
    match kind {
        Kind::TcpHalfOpen => {
            // Nothing is accepted: count the SYNs that reach the port, from a raw socket (it
            // gets a copy of every TCP segment for this namespace's addresses).
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            let raw = ns
                .enter(|| {
                    socket::socket(
                        socket::AddressFamily::Inet,
                        socket::SockType::Raw,
                        socket::SockFlag::SOCK_CLOEXEC,
                        socket::SockProtocol::Tcp,
                    )
                })
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("raw socket: {e}"))?;
            std::thread::spawn(move || {
                let _listener = listener;
                let mut buf = [0u8; 128];
                while let Ok(n) = socket::recv(raw.as_raw_fd(), &mut buf, socket::MsgFlags::empty())
                {
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    let Some(tcp) = buf[..n].get(ihl..ihl + 14) else {
                        continue;
                    };
                    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
                    if dport == port && tcp[13] == 0x02 {
                        served.accepted.fetch_add(1, Ordering::Relaxed);
                        served.answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        Kind::Tcp => {
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if conn.is_ok() {
                        served.accepted.fetch_add(1, Ordering::Relaxed);
                        served.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    // Dropped at once: the server closes first, as a health endpoint does.
                }
            });
        }
        Kind::Http => {
            let (tx, rx) = mpsc::channel::<TcpStream>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..HTTP_WORKERS {
                let rx = rx.clone();
                let served = served.clone();
                std::thread::spawn(move || loop {
                    let next = rx.lock().map(|r| r.recv());
                    let Ok(Ok(conn)) = next else { return };
                    if answer_http(conn) {
                        served.answered.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    served.accepted.fetch_add(1, Ordering::Relaxed);
                    if tx.send(conn).is_err() {
                        return;
                    }
                }
            });
        }
        Kind::HttpKeepAlive => {
            // A thread per connection: each is kept, and answers request after request.
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let served = served.clone();
                    std::thread::spawn(move || serve_kept(conn, &served));
                }
            });
        }
    }
    Ok(())
}

/// Answers HTTP/1.1 requests on one connection until the client closes it; each counts as a
/// check served.
fn serve_kept(mut conn: TcpStream, served: &Served) {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    loop {
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => got += k,
        }
        while let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.copy_within(end + 4..got, 0);
            got -= end + 4;
            served.accepted.fetch_add(1, Ordering::Relaxed);
            if conn
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n",
                )
                .is_err()
            {
                return;
            }
            served.answered.fetch_add(1, Ordering::Relaxed);
        }
        if got == buf.len() {
            return; // not HTTP
        }
    }
}

/// Reads a request head and answers 200 with a short body; true if it was answered.
fn answer_http(mut conn: TcpStream) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => got += k,
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .is_ok()
}

struct Lab {
    ns: Netns,
    configs: ConfigDir,
    _http: StaticServer,
    served: BTreeMap<u16, Arc<Served>>,
}

impl Lab {
    fn new(opts: &Opts) -> Result<Lab, String> {
        let e = |e: lbtest::netns::NetnsError| e.to_string();
        let ns = Netns::new("ckbench").map_err(e)?;
        ns.add_bridge("br0").map_err(e)?;
        ns.add_addr("br0", &format!("{HOST_IP}/24")).map_err(e)?;
        ns.add_tap("tap0", Some("br0")).map_err(e)?;
        ns.ip(&["route", "add", "local", REALS_NET, "dev", "lo"])
            .map_err(e)?;
        // Room for bursts of handshakes in the accept queues.
        ns.run(&["sysctl", "-qw", "net.core.somaxconn=8192"])
            .map_err(e)?;
        let mut served = BTreeMap::new();
        for checker in &opts.checkers {
            for kind in &opts.kinds {
                if !runs(*checker, *kind) {
                    continue;
                }
                let port = checker.port(*kind);
                let listener = ns
                    .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
                    .map_err(e)?
                    .map_err(|err| format!("listen on port {port}: {err}"))?;
                let s = Arc::new(Served::default());
                serve(&ns, listener, *kind, s.clone())?;
                served.insert(port, s);
            }
        }
        let configs = ConfigDir::new().map_err(|err| format!("config dir: {err}"))?;
        configs
            .publish("lb.toml", LBD_IDLE)
            .map_err(|err| format!("lb.toml: {err}"))?;
        let http = StaticServer::start_in(&ns, configs.path(), HOST_IP.into(), CONFIG_PORT)
            .map_err(|err| err.to_string())?;
        Ok(Lab {
            ns,
            configs,
            _http: http,
            served,
        })
    }

    fn served(&self, port: u16) -> (u64, u64) {
        let s = &self.served[&port];
        (
            s.accepted.load(Ordering::Relaxed),
            s.answered.load(Ordering::Relaxed),
        )
    }

    fn boot(&self) -> Result<ShellGuest, String> {
        boot_with_shell(
            ApplianceBuilder::new("check-bench")
                .nic(Nic::tap("tap0", MacAddr::local(0x00c4_b001)))
                .netns(&self.ns)
                .append(format!(
                    "ip={GUEST_IP}::{HOST_IP}:255.255.255.0:ckbench:eth0:off"
                ))
                .config_url(format!("http://{HOST_IP}:{CONFIG_PORT}/lb.toml"))
                .poll("1s"),
            BOOT,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The guest side: starting and stopping each checker, and reading its CPU and memory.

/// CPU and memory of a checker's processes, and the guest's overall CPU, at one instant.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// The guest's uptime, seconds.
    uptime: f64,
    /// The guest's `cpu` line of /proc/stat: (busy, total) ticks.
    guest: (u64, u64),
    /// Its user, system, irq and softirq ticks (user and system include nice and steal).
    guest_split: [u64; 4],
    /// pid → (utime, stime) ticks, of every process of the checker.
    procs: BTreeMap<u32, (u64, u64)>,
    /// (utime, stime) ticks of lbd's check thread.
    check_thread: Option<(u64, u64)>,
    /// pid → (VmRSS, VmHWM) KiB.
    memory: BTreeMap<u32, (u64, u64)>,
    /// Times the checker's threads went to sleep (voluntary context switches), all threads.
    sleeps: u64,
}

/// One shell line printing what [`Sample::parse`] reads, for the processes named `comm`.
fn sample_command(comm: &str) -> String {
    format!(
        "read up _ < /proc/uptime; echo \"uptime $up\"; head -1 /proc/stat; \
         for p in $(pidof {comm}); do echo \"proc $p $(cat /proc/$p/stat)\"; \
         echo \"mem $p $(grep VmRSS /proc/$p/status) $(grep VmHWM /proc/$p/status)\"; \
         for t in /proc/$p/task/*; do [ \"$(cat $t/comm)\" = lbd-checks ] && echo \"checks $(cat $t/stat)\"; \
         echo \"sleeps $p $(grep ^voluntary_ctxt_switches $t/status)\"; done; \
         done; true"
    )
}

/// (utime, stime) from the fields of a stat line after "pid (comm) ".
fn stat_times(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

impl Sample {
    fn parse(text: &str) -> Result<Sample, String> {
        let mut s = Sample::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["uptime", up] => s.uptime = up.parse().map_err(|_| format!("uptime {up:?}"))?,
                ["cpu", fields @ ..] => {
                    let n: Vec<u64> = fields.iter().filter_map(|f| f.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal
                    let total: u64 = n.iter().take(8).sum();
                    let idle = n.get(3).copied().unwrap_or(0) + n.get(4).copied().unwrap_or(0);
                    s.guest = (total - idle, total);
                    let at = |i: usize| n.get(i).copied().unwrap_or(0);
                    s.guest_split = [at(0) + at(1), at(2) + at(7), at(5), at(6)];
                }
                ["proc", pid, ..] => {
                    let pid: u32 = pid.parse().map_err(|_| format!("bad line {line:?}"))?;
                    let stat = line.splitn(3, ' ').nth(2).unwrap_or_default();
                    let t = stat_times(stat).ok_or_else(|| format!("bad stat {line:?}"))?;
                    s.procs.insert(pid, t);
                }
                ["mem", pid, "VmRSS:", rss, "kB", "VmHWM:", hwm, "kB"] => {
                    let num = |v: &str| v.parse::<u64>().map_err(|_| format!("bad {line:?}"));
                    s.memory.insert(num(pid)? as u32, (num(rss)?, num(hwm)?));
                }
                ["sleeps", _, "voluntary_ctxt_switches:", n] => {
                    s.sleeps += n.parse::<u64>().map_err(|_| format!("bad {line:?}"))?;
                }
                ["checks", ..] => {
                    let stat = line.split_once(' ').map(|x| x.1).unwrap_or_default();
                    s.check_thread = stat_times(stat);
                }
                _ => {}
            }
        }
        if s.uptime == 0.0 {
            return Err(format!("no uptime in the sample:\n{text}"));
        }
        Ok(s)
    }
}

fn run(sh: &mut GuestShell, command: &str, timeout: Duration) -> Result<String, String> {
    sh.run(command, timeout).map_err(|e| e.to_string())
}

/// Destinations in the guest's IPVS table: (all, with a weight above 0).
fn ipvs_dests(sh: &mut GuestShell) -> Result<(usize, usize), String> {
    let out = run(
        sh,
        "awk '$1 == \"->\" && $2 != \"RemoteAddress:Port\" { n++; if ($4 > 0) w++ } END { print n+0, w+0 }' /proc/net/ip_vs",
        CMD,
    )?;
    let mut w = out.split_whitespace().map(|v| v.parse::<usize>());
    match (w.next(), w.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => Err(format!("bad IPVS count {out:?}")),
    }
}

/// Waits until the guest's IPVS table has no destinations left.
fn wait_ipvs_empty(sh: &mut GuestShell, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + WARMUP_LIMIT;
    loop {
        let (all, _) = ipvs_dests(sh)?;
        if all == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: {all} IPVS destinations still there"));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn start_checker(
    lab: &Lab,
    sh: &mut GuestShell,
    opts: &Opts,
    checker: Checker,
    kind: Kind,
) -> Result<(), String> {
    match checker {
        Checker::Lbd => {
            lab.configs
                .publish("lb.toml", &lbd_config(opts, kind))
                .map_err(|e| format!("lb.toml: {e}"))?;
        }
        Checker::Keepalived => {
            let name = format!("keepalived-{}.conf", kind.name());
            lab.configs
                .publish(&name, &keepalived_config(opts, kind))
                .map_err(|e| format!("{name}: {e}"))?;
            // busybox nc (its wget cannot resolve in a static build); the body after the
            // blank line is the file.
            run(
                sh,
                &format!(
                    "printf 'GET /{name} HTTP/1.0\\r\\n\\r\\n' | nc -w 30 {HOST_IP} {CONFIG_PORT} | tr -d '\\r' | sed '1,/^$/d' > /tmp/keepalived.conf && \
                     grep -c real_server /tmp/keepalived.conf"
                ),
                CMD,
            )?;
            run(
                sh,
                "rm -f /tmp/keepalived.log; keepalived --check --dont-fork --log-console -f /tmp/keepalived.conf \
                 -p /tmp/keepalived.pid -c /tmp/keepalived-checkers.pid </dev/null >/tmp/keepalived.log 2>&1 &",
                CMD,
            )?;
            std::thread::sleep(Duration::from_secs(2));
            let alive = run(sh, "pidof keepalived || true", CMD)?;
            if alive.trim().is_empty() {
                let log = run(sh, "tail -n 30 /tmp/keepalived.log", CMD).unwrap_or_default();
                return Err(format!("keepalived exited at start:\n{log}"));
            }
        }
    }
    Ok(())
}

fn stop_checker(lab: &Lab, sh: &mut GuestShell, checker: Checker) -> Result<(), String> {
    match checker {
        Checker::Lbd => {
            lab.configs
                .publish("lb.toml", LBD_IDLE)
                .map_err(|e| format!("lb.toml: {e}"))?;
        }
        Checker::Keepalived => {
            // keepalived removes its IPVS services as it stops.
            run(
                sh,
                "kill $(cat /tmp/keepalived.pid); i=0; while pidof keepalived >/dev/null && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; \
                 ! pidof keepalived",
                Duration::from_secs(320),
            )?;
        }
    }
    wait_ipvs_empty(sh, &format!("after stopping {}", checker.name()))
}

/// What one checker did over the window.
struct Figures {
    kind: Kind,
    checker: Checker,
    reals: usize,
    /// Seconds from start to the steady state (None: never reached within the limit).
    warmup: Option<f64>,
    /// Served per second, host clock.
    accepted_per_s: f64,
    answered_per_s: f64,
    /// Share of one core, guest clock.
    user: f64,
    system: f64,
    check_thread: Option<f64>,
    /// Processes counted.
    processes: usize,
    guest_busy: f64,
    /// The guest's busy time split: user, system, irq, softirq (shares of its time).
    guest_split: [f64; 4],
    /// Wake-ups of the checker a second (its threads' voluntary sleeps).
    wakeups: f64,
    /// (VmRSS, VmHWM) KiB per process.
    memory: Vec<(u64, u64)>,
    window: f64,
}

impl Figures {
    fn cpu(&self) -> f64 {
        self.user + self.system
    }
    fn rss_kib(&self) -> u64 {
        self.memory.iter().map(|m| m.0).sum()
    }
}

fn measure(
    lab: &Lab,
    sh: &mut GuestShell,
    opts: &Opts,
    checker: Checker,
    kind: Kind,
) -> Result<Figures, String> {
    let port = checker.port(kind);
    let comm = checker.name();
    let started = Instant::now();
    start_checker(lab, sh, opts, checker, kind)?;

    // Warm-up: every real in IPVS with a weight, and nearly N checks served in 2 s.
    let mut warmup = None;
    let mut last = (Instant::now(), lab.served(port).1);
    while started.elapsed() < WARMUP_LIMIT {
        std::thread::sleep(Duration::from_secs(2));
        let (_, weighted) = ipvs_dests(sh)?;
        let now = (Instant::now(), lab.served(port).1);
        let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
        last = now;
        eprintln!(
            "check-bench: {} {}: {:.0}s: {weighted} of {} reals weighted in IPVS, {rate:.0} checks/s",
            kind.name(),
            comm,
            started.elapsed().as_secs_f64(),
            opts.reals
        );
        if weighted >= opts.reals && rate >= 0.9 * opts.reals as f64 {
            warmup = Some(started.elapsed().as_secs_f64());
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(opts.settle));

    let cmd = sample_command(comm);
    let (h0, c0) = (Instant::now(), lab.served(port));
    let s0 = Sample::parse(&run(sh, &cmd, CMD)?)?;
    std::thread::sleep(Duration::from_secs(opts.seconds));
    let s1 = Sample::parse(&run(sh, &cmd, CMD)?)?;
    let (h1, c1) = (Instant::now(), lab.served(port));

    let window = s1.uptime - s0.uptime;
    let host_window = (h1 - h0).as_secs_f64();
    // Processes alive through the whole window (keepalived's parent and checker child).
    let (mut user, mut system) = (0u64, 0u64);
    for (pid, (u1, st1)) in &s1.procs {
        let (u0, st0) = s0.procs.get(pid).copied().unwrap_or((0, 0));
        user += u1.saturating_sub(u0);
        system += st1.saturating_sub(st0);
    }
    if s1.procs.is_empty() {
        return Err(format!("no {comm} process in the guest"));
    }
    let share = |ticks: u64| ticks as f64 / CLK_TCK / window;
    let check_thread = match (s0.check_thread, s1.check_thread) {
        (Some(a), Some(b)) => Some(share((b.0 + b.1).saturating_sub(a.0 + a.1))),
        _ => None,
    };
    let guest_total = (s1.guest.1 - s0.guest.1).max(1) as f64;
    let guest_busy = (s1.guest.0 - s0.guest.0) as f64 / guest_total;
    let guest_split: [f64; 4] = std::array::from_fn(|i| {
        s1.guest_split[i].saturating_sub(s0.guest_split[i]) as f64 / guest_total
    });
    let figures = Figures {
        kind,
        checker,
        reals: opts.reals,
        warmup,
        accepted_per_s: (c1.0 - c0.0) as f64 / host_window,
        answered_per_s: (c1.1 - c0.1) as f64 / host_window,
        user: share(user),
        system: share(system),
        check_thread,
        processes: s1.procs.len(),
        guest_busy,
        guest_split,
        wakeups: s1.sleeps.saturating_sub(s0.sleeps) as f64 / window,
        memory: s1.memory.values().copied().collect(),
        window,
    };
    print_figures(&figures);
    stop_checker(lab, sh, checker)?;
    Ok(figures)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_figures(f: &Figures) {
    let who = format!("{} {}", f.kind.name(), f.checker.name());
    println!(
        "figure: {who} checks {:.0}/s ({:.1}% of {} reals x 1/s; {:.0}/s answered){}",
        f.accepted_per_s,
        100.0 * f.accepted_per_s / f.reals as f64,
        f.reals,
        f.answered_per_s,
        match f.warmup {
            Some(w) => format!(", steady after {w:.0}s"),
            None => format!(
                ", NOT steady within {}s (measured anyway)",
                WARMUP_LIMIT.as_secs()
            ),
        }
    );
    println!(
        "figure: {who} cpu {:.1}% of one core (user {:.1}%, sys {:.1}%; {} process{}{}) over {:.0}s, guest busy {:.0}% (user {:.0}%, sys {:.0}%, irq {:.0}%, softirq {:.0}%)",
        100.0 * f.cpu(),
        100.0 * f.user,
        100.0 * f.system,
        f.processes,
        if f.processes == 1 { "" } else { "es" },
        f.check_thread
            .map(|c| format!("; check thread {:.1}%", 100.0 * c))
            .unwrap_or_default(),
        f.window,
        100.0 * f.guest_busy,
        100.0 * f.guest_split[0],
        100.0 * f.guest_split[1],
        100.0 * f.guest_split[2],
        100.0 * f.guest_split[3],
    );
    println!("figure: {who} wakeups {:.0}/s", f.wakeups);
    println!(
        "figure: {who} rss {:.1} MiB (per process: {})",
        mib(f.rss_kib()),
        f.memory
            .iter()
            .map(|(rss, hwm)| format!("{:.1} MiB, peak {:.1} MiB", mib(*rss), mib(*hwm)))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

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
    let version = if opts.checkers.contains(&Checker::Keepalived) {
        run(&mut sg.shell, "keepalived --version 2>&1 | head -1", CMD).and_then(|v| {
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
            &mut sg.shell,
            "cat /sys/devices/system/clocksource/clocksource0/current_clocksource",
            CMD
        )?
        .trim()
    );
    println!(
        "check-bench-guest: {} reals ({} per service, fwmark services, DR), {SETTINGS}; one TCG guest (1 vCPU); servers on the host behind the tap; window {}s; {}",
        opts.reals,
        PER_SERVICE,
        opts.seconds,
        version.trim()
    );
    let mut all = Vec::new();
    for kind in &opts.kinds {
        for checker in &opts.checkers {
            if runs(*checker, *kind) {
                all.push(measure(&lab, &mut sg.shell, opts, *checker, *kind)?);
            }
        }
        // keepalived's TCP_CHECK is what lbd's half-open checks are compared with.
        let theirs = match kind {
            Kind::TcpHalfOpen => Kind::Tcp,
            Kind::HttpKeepAlive => Kind::Http,
            k => *k,
        };
        let find = |c: Checker, k: Kind| all.iter().find(|f| f.kind == k && f.checker == c);
        let find = |c: Checker| find(c, if c == Checker::Lbd { *kind } else { theirs });
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
    Ok(())
}
