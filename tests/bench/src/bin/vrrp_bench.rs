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

fn main() -> std::process::ExitCode {
    bench::main()
}

mod bench {
    use lbd::vrrp::machine::{Instance, Spec};
    use lbd::vrrp::packet::Version;
    use std::fs::File;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
    const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

    struct Args {
        runs: usize,
        soak: u64,
        keepalived: bool,
        lbd: PathBuf,
    }

    fn parse_args() -> Result<Args, String> {
        let mut a = Args {
            runs: 5,
            soak: 60,
            keepalived: true,
            lbd: std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("lbd"),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
                "--soak" => {
                    a.soak = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--soak SECS")?
                }
                "--no-keepalived" => a.keepalived = false,
                "--lbd" => a.lbd = it.next().ok_or("--lbd PATH")?.into(),
                "-h" | "--help" => {
                    return Err(
                        "usage: vrrp_bench [--runs N] [--soak SECS] [--no-keepalived] [--lbd PATH]"
                            .into(),
                    )
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !a.lbd.is_file() {
            return Err(format!(
                "no lbd binary at {} (build it, or pass --lbd PATH)",
                a.lbd.display()
            ));
        }
        Ok(a)
    }

    fn sh(args: &[&str]) -> Result<String, String> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Three namespaces: bridge, master (node 0), backup (node 1). Deleted on drop.
    struct Lab {
        prefix: String,
        dir: PathBuf,
    }

    impl Lab {
        fn new() -> Result<Lab, String> {
            let prefix = format!("vb{}", std::process::id());
            let dir = std::env::temp_dir().join(format!("vrrp-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let lab = Lab { prefix, dir };
            let br = lab.ns("br");
            sh(&["ip", "netns", "add", &br])?;
            sh(&[
                "ip",
                "-n",
                &br,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "forward_delay",
                "0",
            ])?;
            sh(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
            for i in 0..2 {
                let ns = lab.node(i);
                sh(&["ip", "netns", "add", &ns])?;
                sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
                let port = format!("p{i}");
                sh(&[
                    "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name",
                    &port, "netns", &br,
                ])?;
                sh(&["ip", "-n", &br, "link", "set", &port, "master", "br0"])?;
                sh(&["ip", "-n", &br, "link", "set", &port, "up"])?;
                sh(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("10.77.0.{}/24", i + 1),
                    "dev",
                    "eth0",
                ])?;
                sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            }
            Ok(lab)
        }

        fn ns(&self, s: &str) -> String {
            format!("{}{s}", self.prefix)
        }

        fn node(&self, i: usize) -> String {
            self.ns(&format!("n{i}"))
        }

        fn pids(&self, i: usize) -> Vec<i32> {
            sh(&["ip", "netns", "pids", &self.node(i)])
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        }

        fn kill_all(&self, i: usize, sig: i32) {
            for p in self.pids(i) {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(p, sig) };
            }
        }

        fn has_vip(&self, i: usize) -> bool {
            sh(&[
                "ip",
                "-n",
                &self.node(i),
                "-o",
                "-4",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .map(|o| o.contains("10.77.0.100/"))
            .unwrap_or(false)
        }

        fn remove_vip(&self, i: usize) {
            let _ = sh(&[
                "ip",
                "-n",
                &self.node(i),
                "addr",
                "del",
                "10.77.0.100/24",
                "dev",
                "eth0",
            ]);
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for i in 0..2 {
                self.kill_all(i, libc::SIGKILL);
            }
            for ns in [self.node(0), self.node(1), self.ns("br")] {
                let _ = sh(&["ip", "netns", "del", &ns]);
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Impl {
        Lbd,
        Keepalived,
    }

    impl Impl {
        fn name(self) -> &'static str {
            match self {
                Impl::Lbd => "lbd",
                Impl::Keepalived => "keepalived",
            }
        }
    }

    #[derive(Clone, Copy)]
    struct Case {
        version: Version,
        interval: Duration,
    }

    impl Case {
        fn label(&self) -> String {
            match self.version {
                Version::V2 => format!("v2 {}s", self.interval.as_secs()),
                Version::V3 => format!("v3 {}ms", self.interval.as_millis()),
            }
        }

        /// The backup's (priority 100) RFC timers, from lbd's own state machine.
        fn backup_timers(&self) -> (Duration, Duration) {
            let spec = Spec {
                name: "b".into(),
                interface: "eth0".into(),
                vrid: 51,
                version: self.version,
                ipv6: false,
                priority: 100,
                advert_interval: self.interval,
                preempt: true,
                preempt_delay: Duration::ZERO,
                vips: vec!["10.77.0.100/24".parse().expect("prefix")],
                unicast_peers: vec![],
                unicast_source: None,
                auth_pass: None,
                track_interfaces: vec![],
                virtual_mac: None,
                accept: false,
                garp_count: 1,
                garp_repeat_after: Duration::ZERO,
                quorum_priority_drop: 0,
                primary: None,
            };
            let i = Instance::new(spec);
            (i.master_down_interval(), i.skew_time())
        }
    }

    fn config(imp: Impl, case: &Case, priority: u8) -> String {
        let v = match case.version {
            Version::V2 => 2,
            Version::V3 => 3,
        };
        match imp {
            Impl::Lbd => {
                let interval = if case.interval.subsec_nanos() == 0 {
                    format!("{}s", case.interval.as_secs())
                } else {
                    format!("{}ms", case.interval.as_millis())
                };
                format!(
                    "[vrrp.instance.VI_1]\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\nversion = {v}\nadvert_interval = \"{interval}\"\nvips = [\"10.77.0.100/24\"]\ngarp_count = 1\n"
                )
            }
            Impl::Keepalived => format!(
                // The same scheduling as lbd's VRRP thread (SCHED_FIFO at its default
                // `vrrp_realtime_priority`), so the soak compares the implementations, not the
                // priorities.
                "global_defs {{\n  router_id bench{priority}\n  vrrp_rt_priority {rt}\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int {}\n  version {v}\n  garp_master_repeat 1\n  virtual_ipaddress {{\n    10.77.0.100/24\n  }}\n}}\n",
                case.interval.as_secs_f64(),
                rt = lbd::config::Node::DEFAULT_VRRP_REALTIME_PRIORITY,
            ),
        }
    }

    fn start(
        lab: &Lab,
        args: &Args,
        imp: Impl,
        case: &Case,
        node: usize,
        priority: u8,
        tag: &str,
    ) -> Result<Child, String> {
        let base = lab.dir.join(format!("{}-{tag}-n{node}", imp.name()));
        let log = File::create(base.with_extension("log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let cfg = base.with_extension(if imp == Impl::Lbd { "toml" } else { "conf" });
        std::fs::write(&cfg, config(imp, case, priority)).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.node(node)]);
        match imp {
            Impl::Lbd => {
                cmd.arg(&args.lbd)
                    .arg("-c")
                    .arg(&cfg)
                    .env("LBD_LOG", "warn");
            }
            Impl::Keepalived => {
                cmd.args(["keepalived", "--vrrp", "-n", "-l", "-f"])
                    .arg(&cfg)
                    .arg("-p")
                    .arg(base.with_extension("pid"))
                    .arg("-r")
                    .arg(base.with_extension("vrrp.pid"));
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", imp.name()))
    }

    fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    #[derive(Clone, Copy, Debug)]
    enum Ev {
        VipAdded,
        Advert { from_master: bool, priority: u8 },
    }

    /// Timestamps what the backup's namespace sees: VIP added, adverts received.
    struct Watcher {
        events: Arc<Mutex<Vec<(Instant, Ev)>>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    fn cvt(r: libc::c_int, what: &str) -> Result<libc::c_int, String> {
        if r < 0 {
            Err(format!("{what}: {}", std::io::Error::last_os_error()))
        } else {
            Ok(r)
        }
    }

    fn open_sockets(ns: &Path) -> Result<(OwnedFd, OwnedFd), String> {
        let f = File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
        // SAFETY: setns on this watcher thread only.
        cvt(
            unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
            "setns",
        )?;
        // SAFETY: plain socket calls; fds owned right after.
        let nl = cvt(
            unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            },
            "netlink socket",
        )?;
        let nl = unsafe { OwnedFd::from_raw_fd(nl) };
        // SAFETY: zeroed sockaddr_nl is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = libc::RTMGRP_IPV4_IFADDR as u32;
        // SAFETY: sa is a valid sockaddr_nl.
        cvt(
            unsafe {
                libc::bind(
                    nl.as_raw_fd(),
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            },
            "netlink bind",
        )?;
        let raw = cvt(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 112) },
            "raw socket",
        )?;
        let raw = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a NUL-terminated name; looked up in the namespace we just entered.
        let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::new(224, 0, 0, 18)).to_be(),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: idx as libc::c_int,
        };
        // SAFETY: mreq is a valid ip_mreqn.
        cvt(
            unsafe {
                libc::setsockopt(
                    raw.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_ADD_MEMBERSHIP,
                    &mreq as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::ip_mreqn>() as u32,
                )
            },
            "join 224.0.0.18",
        )?;
        Ok((nl, raw))
    }

    impl Watcher {
        fn start(ns: &str) -> Result<Watcher, String> {
            let events = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let path = PathBuf::from(format!("/var/run/netns/{ns}"));
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn({
                let events = events.clone();
                let stop = stop.clone();
                move || {
                    // Timestamps must not wait for the busy loops of the soak (or anything
                    // else): the watcher runs above lbd's own real-time priority.
                    let param = libc::sched_param { sched_priority: 20 };
                    // SAFETY: pid 0 is this thread; param is valid.
                    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                    let (nl, raw) = match open_sockets(&path) {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        let mut fds = [
                            libc::pollfd {
                                fd: nl.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            },
                            libc::pollfd {
                                fd: raw.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            },
                        ];
                        // SAFETY: fds is a valid array of two pollfds.
                        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) };
                        if n <= 0 {
                            continue;
                        }
                        let now = Instant::now();
                        for (k, fd) in fds.iter().enumerate() {
                            if fd.revents & libc::POLLIN == 0 {
                                continue;
                            }
                            // SAFETY: buf is writable for its length.
                            let len = unsafe {
                                libc::recv(
                                    fd.fd,
                                    buf.as_mut_ptr() as *mut libc::c_void,
                                    buf.len(),
                                    libc::MSG_DONTWAIT,
                                )
                            };
                            if len <= 0 {
                                continue;
                            }
                            let p = &buf[..len as usize];
                            let ev = if k == 0 {
                                vip_added(p).then_some(Ev::VipAdded)
                            } else {
                                advert(p)
                            };
                            if let Some(ev) = ev {
                                events.lock().expect("events").push((now, ev));
                            }
                        }
                    }
                }
            });
            ready_rx
                .recv()
                .map_err(|_| "watcher thread died".to_string())??;
            Ok(Watcher {
                events,
                stop,
                thread: Some(thread),
            })
        }

        fn take(&self) -> Vec<(Instant, Ev)> {
            std::mem::take(&mut *self.events.lock().expect("events"))
        }
    }

    impl Drop for Watcher {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Whether a netlink datagram holds an RTM_NEWADDR for the VIP.
    fn vip_added(mut p: &[u8]) -> bool {
        while p.len() >= 16 {
            let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
            let kind = u16::from_ne_bytes([p[4], p[5]]);
            if len < 16 || len > p.len() {
                return false;
            }
            if kind == libc::RTM_NEWADDR && len >= 24 {
                let mut attrs = &p[16 + 8..len];
                while attrs.len() >= 4 {
                    let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                    let akind = u16::from_ne_bytes([attrs[2], attrs[3]]);
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    if (akind == 1 || akind == 2) && attrs[4..alen] == VIP.octets() {
                        return true;
                    }
                    attrs = &attrs[(alen + 3) & !3..];
                    if attrs.is_empty() {
                        break;
                    }
                }
            }
            p = &p[((len + 3) & !3).min(p.len())..];
        }
        false
    }

    /// An advert (IPv4 packet with header, protocol 112).
    fn advert(p: &[u8]) -> Option<Ev> {
        let ihl = usize::from(p.first()? & 0x0f) * 4;
        let prio = *p.get(ihl + 2)?;
        let src = Ipv4Addr::new(*p.get(12)?, p[13], p[14], p[15]);
        Some(Ev::Advert {
            from_master: src == MASTER_IP,
            priority: prio,
        })
    }

    struct Sample {
        failover: Duration,
        /// Takeover minus the RFC time (positive: late).
        late: Option<f64>,
    }

    fn stats(v: &mut [f64]) -> (f64, f64) {
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.is_empty() {
            f64::NAN
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        let worst = v
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(f64::NAN);
        (median, worst)
    }

    /// Runs one case: `runs` failovers of `imp` with `kill9` or SIGTERM.
    fn failovers(
        lab: &Lab,
        args: &Args,
        imp: Impl,
        case: &Case,
        kill9: bool,
        runs: usize,
    ) -> Result<(Vec<Sample>, usize), String> {
        let (mdi, skew) = case.backup_timers();
        let settle = case.interval * 2 + Duration::from_millis(300);
        let mut samples = Vec::new();
        let mut unstable = 0;
        let watcher = Watcher::start(&lab.node(1))?;
        for run in 0..runs {
            lab.kill_all(0, libc::SIGKILL);
            lab.kill_all(1, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            lab.remove_vip(0);
            lab.remove_vip(1);
            watcher.take();
            let tag = format!(
                "{}-{}-{run}",
                case.label().replace(' ', ""),
                if kill9 { "kill" } else { "term" }
            );
            let mut master = start(lab, args, imp, case, 0, 150, &tag)?;
            if !wait_for(mdi * 2 + Duration::from_secs(5), || lab.has_vip(0)) {
                return Err(format!(
                    "{} never became master ({tag}); see {}",
                    imp.name(),
                    lab.dir.display()
                ));
            }
            let mut backup = start(lab, args, imp, case, 1, 100, &tag)?;
            std::thread::sleep(settle);
            if !wait_for(Duration::from_secs(2), || !lab.has_vip(1)) {
                // A backup that grabbed the VIP at start-up and kept it: not a failover to
                // measure. Counted and skipped.
                unstable += 1;
                let _ = master.kill();
                let _ = master.wait();
                let _ = backup.kill();
                let _ = backup.wait();
                continue;
            }
            let t0 = Instant::now();
            if kill9 {
                // Freeze first: keepalived's parent would otherwise respawn a child killed a
                // moment before it (or the child resign on its parent's death), which is not
                // what a dead machine does.
                lab.kill_all(0, libc::SIGSTOP);
                lab.kill_all(0, libc::SIGKILL);
            } else {
                // SAFETY: plain kill(2) on our child.
                unsafe { libc::kill(master.id() as i32, libc::SIGTERM) };
            }
            let ok = wait_for(mdi + Duration::from_secs(3), || {
                watcher
                    .events
                    .lock()
                    .expect("events")
                    .iter()
                    .any(|(t, e)| *t >= t0 && matches!(e, Ev::VipAdded))
            });
            let events = watcher.take();
            let _ = master.kill();
            let _ = master.wait();
            let _ = backup.kill();
            let _ = backup.wait();
            lab.kill_all(0, libc::SIGKILL);
            lab.kill_all(1, libc::SIGKILL);
            if !ok {
                return Err(format!(
                    "{}: the backup never took over ({tag})",
                    imp.name()
                ));
            }
            let t_vip = events
                .iter()
                .find(|(t, e)| *t >= t0 && matches!(e, Ev::VipAdded))
                .map(|(t, _)| *t)
                .expect("seen");
            let before: Vec<&(Instant, Ev)> = events.iter().filter(|(t, _)| *t <= t_vip).collect();
            let rfc = if kill9 {
                before
                    .iter()
                    .rev()
                    .find(|(_, e)| matches!(e, Ev::Advert { from_master: true, priority } if *priority > 0))
                    .map(|(t, _)| *t + mdi)
            } else {
                before
                    .iter()
                    .find(|(_, e)| {
                        matches!(
                            e,
                            Ev::Advert {
                                from_master: true,
                                priority: 0
                            }
                        )
                    })
                    .map(|(t, _)| *t + skew)
            };
            let late = rfc.map(|r| {
                if t_vip >= r {
                    (t_vip - r).as_secs_f64()
                } else {
                    -(r - t_vip).as_secs_f64()
                }
            });
            samples.push(Sample {
                failover: t_vip - t0,
                late,
            });
        }
        Ok((samples, unstable))
    }

    fn ms(s: f64) -> String {
        if s.is_nan() {
            "n/a".into()
        } else if s.abs() >= 1.0 {
            format!("{s:.3} s")
        } else {
            format!("{:.1} ms", s * 1000.0)
        }
    }

    fn soak(
        lab: &Lab,
        args: &Args,
        imp: Impl,
        secs: u64,
    ) -> Result<(usize, Duration, usize), String> {
        let case = Case {
            version: Version::V3,
            interval: Duration::from_millis(20),
        };
        lab.kill_all(0, libc::SIGKILL);
        lab.kill_all(1, libc::SIGKILL);
        lab.remove_vip(0);
        lab.remove_vip(1);
        let mut master = start(lab, args, imp, &case, 0, 150, "soak")?;
        if !wait_for(Duration::from_secs(5), || lab.has_vip(0)) {
            return Err(format!("{} never became master (soak)", imp.name()));
        }
        let mut backup = start(lab, args, imp, &case, 1, 100, "soak")?;
        std::thread::sleep(Duration::from_millis(500));
        let watcher = Watcher::start(&lab.node(1))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut burners: Vec<Child> = (0..cores * 2)
            .filter_map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .ok()
            })
            .collect();
        let start_t = Instant::now();
        let mut spurious = 0;
        let mut max_gap = Duration::ZERO;
        let mut last: Option<Instant> = None;
        let mut adverts = 0;
        while start_t.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(200));
            for (t, e) in watcher.take() {
                match e {
                    Ev::VipAdded => spurious += 1,
                    Ev::Advert {
                        from_master: true, ..
                    } => {
                        adverts += 1;
                        if let Some(l) = last {
                            max_gap = max_gap.max(t - l);
                        }
                        last = Some(t);
                    }
                    _ => {}
                }
            }
        }
        for b in &mut burners {
            let _ = b.kill();
            let _ = b.wait();
        }
        let _ = master.kill();
        let _ = backup.kill();
        let _ = master.wait();
        let _ = backup.wait();
        Ok((spurious, max_gap, adverts))
    }

    pub fn main() -> ExitCode {
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
        println!("failover = stop of the master -> VIP present on the backup; late = takeover - RFC time");
        println!("(RFC time: last advert heard + master-down interval after kill -9; priority-0 advert + skew time after a stop)\n");
        println!(
            "{:<11} {:<9} {:<8} {:>4}  {:>10} {:>10}  {:>10} {:>10}  {:>10}",
            "impl",
            "adverts",
            "stop",
            "runs",
            "median",
            "worst",
            "late med",
            "late worst",
            "RFC time"
        );
        let cases = [
            (
                Case {
                    version: Version::V2,
                    interval: Duration::from_secs(1),
                },
                args.runs.div_ceil(2).max(1),
            ),
            (
                Case {
                    version: Version::V3,
                    interval: Duration::from_millis(100),
                },
                args.runs,
            ),
            (
                Case {
                    version: Version::V3,
                    interval: Duration::from_millis(20),
                },
                args.runs,
            ),
        ];
        let mut impls = vec![Impl::Lbd];
        if keepalived {
            impls.push(Impl::Keepalived);
        }
        let mut failed = false;
        // --runs 0: the soak only.
        for (case, runs) in cases.iter().filter(|_| args.runs > 0) {
            for kill9 in [true, false] {
                for imp in &impls {
                    match failovers(&lab, &args, *imp, case, kill9, *runs) {
                        Ok((samples, unstable)) => {
                            let mut f: Vec<f64> =
                                samples.iter().map(|s| s.failover.as_secs_f64()).collect();
                            let mut l: Vec<f64> = samples.iter().filter_map(|s| s.late).collect();
                            let (fm, fw) = stats(&mut f);
                            let (lm, lw) = stats(&mut l);
                            let (mdi, skew) = case.backup_timers();
                            println!(
                                "{:<11} {:<9} {:<8} {:>4}  {:>10} {:>10}  {:>10} {:>10}  {:>10}",
                                imp.name(),
                                case.label(),
                                if kill9 { "kill -9" } else { "SIGTERM" },
                                samples.len(),
                                ms(fm),
                                ms(fw),
                                ms(lm),
                                ms(lw),
                                ms(if kill9 { mdi } else { skew }.as_secs_f64())
                            );
                            if unstable > 0 {
                                println!(
                                    "{:<11} {unstable} run(s) skipped: the backup held the VIP at start-up",
                                    ""
                                );
                            }
                        }
                        Err(e) => {
                            failed = true;
                            println!(
                                "{:<11} {:<9} {:<8} failed: {e}",
                                imp.name(),
                                case.label(),
                                if kill9 { "kill -9" } else { "SIGTERM" }
                            );
                        }
                    }
                }
            }
        }
        if args.soak > 0 {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            println!(
                "\nsoak: v3 20 ms adverts for {} s with {} busy loops on {} cores",
                args.soak,
                cores * 2,
                cores
            );
            for imp in &impls {
                match soak(&lab, &args, *imp, args.soak) {
                    Ok((spurious, gap, adverts)) => println!(
                        "{:<11} spurious failovers: {spurious}   adverts heard: {adverts}   longest gap between adverts: {}",
                        imp.name(),
                        ms(gap.as_secs_f64())
                    ),
                    Err(e) => {
                        failed = true;
                        println!("{:<11} soak failed: {e}", imp.name());
                    }
                }
            }
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
