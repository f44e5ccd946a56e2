//! Scaffolding for the `vrrp_*` tests: a lab of network namespaces (one per balancer, joined
//! by bridges in a namespace of their own), the real `lbd` binary and Debian's keepalived
//! started inside them with a config file each, tshark captures, and raw sockets opened in a
//! namespace to send hand-made packets.
//!
//! Needs root and `ip`; keepalived and tshark where a test names them (tools/setup.sh installs
//! them). A missing facility fails the test with what to install; nothing is skipped.
//! Namespaces, processes and files are removed by Drop guards, also when a test fails.

#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .any(|d| Path::new(d).join(prog).is_file())
}

/// Fails the test with a clear message unless we are root and every program exists.
pub fn require(progs: &[&str]) {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root (network namespaces, raw sockets); run it as root"
    );
    for prog in std::iter::once(&"ip").chain(progs) {
        let package = match *prog {
            "ip" => "iproute2",
            other => other,
        };
        assert!(
            on_path(prog),
            "this test needs `{prog}`: run tools/setup.sh or `apt-get install -y {package}`"
        );
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// Polls `f` every 5 ms until it is true or `timeout` passes; returns how long it took.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Namespaces: `{prefix}br` holds the bridges `br0..`, `{prefix}n0..` are the nodes. Node `i`
/// has `eth{l}` on bridge `l` with 10.{l+1}.0.{i+1}/24 (and its IPv6 link-local address, with
/// duplicate address detection off so it is usable at once).
pub struct Lab {
    prefix: String,
    nodes: usize,
    links: usize,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new(nodes: usize, links: usize) -> Lab {
        require(&[]);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("lv{}x{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("lbd-vrrp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = Lab {
            prefix,
            nodes,
            links,
            dir,
        };
        let br = lab.bridge_ns();
        ip(&["netns", "add", &br]);
        for i in 0..nodes {
            ip(&["netns", "add", &lab.ns(i)]);
            ip(&["-n", &lab.ns(i), "link", "set", "lo", "up"]);
        }
        for l in 0..links {
            let bridge = format!("br{l}");
            ip(&["-n", &br, "link", "add", &bridge, "type", "bridge"]);
            // Forward at once: no STP listening/learning delay.
            ip(&[
                "-n",
                &br,
                "link",
                "set",
                &bridge,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ]);
            ip(&["-n", &br, "link", "set", &bridge, "up"]);
            for i in 0..nodes {
                let ns = lab.ns(i);
                let port = format!("p{i}l{l}");
                let eth = format!("eth{l}");
                ip(&[
                    "link", "add", &eth, "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &br,
                ]);
                run(Command::new("ip")
                    .args(["netns", "exec", &ns, "sysctl", "-qw"])
                    .arg(format!("net.ipv6.conf.{eth}.accept_dad=0")));
                ip(&["-n", &br, "link", "set", &port, "master", &bridge]);
                ip(&["-n", &br, "link", "set", &port, "up"]);
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/24", lab.addr(i, l)),
                    "dev",
                    &eth,
                ]);
                ip(&["-n", &ns, "link", "set", &eth, "up"]);
            }
        }
        lab
    }

    pub fn bridge_ns(&self) -> String {
        format!("{}br", self.prefix)
    }

    pub fn ns(&self, node: usize) -> String {
        format!("{}n{node}", self.prefix)
    }

    /// Node `node`'s address on link `link`.
    pub fn addr(&self, node: usize, link: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, link as u8 + 1, 0, node as u8 + 1)
    }

    /// The link-local IPv6 address of `ifname` on `node`.
    pub fn link_local(&self, node: usize, ifname: &str) -> IpAddr {
        let out = ip(&[
            "-n",
            &self.ns(node),
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            ifname,
            "scope",
            "link",
        ]);
        let word = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .unwrap_or_else(|| panic!("no link-local address on {ifname}: {out}"));
        word.split('/').next().unwrap().parse().unwrap()
    }

    /// Runs a command inside `node` and returns its stdout.
    pub fn exec(&self, node: usize, args: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(args))
    }

    /// Whether `addr` (no prefix) is on `ifname` in `node`.
    pub fn has_addr(&self, node: usize, ifname: &str, addr: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns(node), "-o", "addr", "show", "dev", ifname])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.split_whitespace()
            .any(|w| w.split('/').next() == Some(addr))
    }

    pub fn set_link(&self, node: usize, ifname: &str, up: bool) {
        ip(&[
            "-n",
            &self.ns(node),
            "link",
            "set",
            ifname,
            if up { "up" } else { "down" },
        ]);
    }

    fn spawn(&self, node: usize, name: &str, argv: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = self.dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(node)])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Daemon {
            child: Some(child),
            log,
            name: name.to_string(),
        }
    }

    /// Starts any program in `node`, output to `{name}.log`.
    pub fn program(&self, node: usize, name: &str, argv: &[&str]) -> Daemon {
        self.spawn(node, name, argv, &[])
    }

    /// Starts the real lbd in `node` with `config` (TOML).
    pub fn lbd(&self, node: usize, name: &str, config: &str) -> Daemon {
        self.lbd_env(node, name, config, &[])
    }

    pub fn lbd_env(&self, node: usize, name: &str, config: &str, env: &[(&str, &str)]) -> Daemon {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("config file");
        let bin = env!("CARGO_BIN_EXE_lbd");
        // Each lbd its own control socket (not the host's /run/lb/lbd.sock).
        let socket = self.api_socket(name);
        let socket = socket.to_str().unwrap();
        let mut e = vec![("LBD_LOG", "info"), ("LBD_API_SOCKET", socket)];
        e.extend_from_slice(env);
        self.spawn(node, name, &[bin, "-c", path.to_str().unwrap()], &e)
    }

    /// The control API socket of the lbd started as `name`.
    pub fn api_socket(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    /// GET `path` from the control API of the lbd started as `name` (with curl), as JSON.
    pub fn api_get(&self, name: &str, path: &str) -> Option<serde_json::Value> {
        let out = std::process::Command::new("curl")
            .args(["-sf", "--max-time", "5", "--unix-socket"])
            .arg(self.api_socket(name))
            .arg(format!("http://lbd{path}"))
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Starts keepalived (VRRP only, foreground, logging to the console) in `node`.
    pub fn keepalived(&self, node: usize, name: &str, conf: &str) -> Daemon {
        require(&["keepalived"]);
        let path = self.dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).expect("config file");
        let pid = self.dir.join(format!("{name}.pid"));
        let vpid = self.dir.join(format!("{name}.vrrp.pid"));
        self.spawn(
            node,
            name,
            &[
                "keepalived",
                "--vrrp",
                "-n",
                "-l",
                "-f",
                path.to_str().unwrap(),
                "-p",
                pid.to_str().unwrap(),
                "-r",
                vpid.to_str().unwrap(),
            ],
            &[],
        )
    }

    /// Starts tshark on `ifname` of `node`, capturing VRRP and ARP/ICMPv6 to a file.
    pub fn capture(&self, node: usize, ifname: &str, name: &str) -> Capture {
        require(&["tshark"]);
        let file = self.dir.join(format!("{name}.pcapng"));
        let d = self.spawn(
            node,
            &format!("{name}.tshark"),
            &[
                "tshark",
                "-n",
                "-i",
                ifname,
                "-w",
                file.to_str().unwrap(),
                "-f",
                "ip proto 112 or ip6 proto 112 or arp or icmp6",
            ],
            &[],
        );
        assert!(
            d.wait_log("Capturing on", Duration::from_secs(20)),
            "tshark did not start: {}",
            d.log()
        );
        // dumpcap announces the capture a moment before its socket sees packets.
        std::thread::sleep(Duration::from_millis(500));
        Capture { daemon: d, file }
    }

    /// A raw VRRP socket opened inside `node` on `ifname` (sends from there with TTL 255).
    pub fn raw_socket(
        &self,
        node: usize,
        ifname: &str,
        ipv6: bool,
    ) -> lbd::vrrp::runtime::sock::VrrpSocket {
        let ns_path = format!("/var/run/netns/{}", self.ns(node));
        let index: u32 = self
            .exec(node, &["cat", &format!("/sys/class/net/{ifname}/ifindex")])
            .trim()
            .parse()
            .expect("ifindex");
        let ifname = ifname.to_string();
        std::thread::spawn(move || {
            let f = File::open(&ns_path).expect("namespace file");
            // SAFETY: setns on this (short-lived) thread only; fd is a valid netns file.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            lbd::vrrp::runtime::sock::VrrpSocket::open(&ifname, index, ipv6, false)
                .expect("raw socket")
        })
        .join()
        .expect("socket thread")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut names: Vec<String> = (0..self.nodes).map(|i| self.ns(i)).collect();
        names.push(self.bridge_ns());
        for ns in &names {
            // Anything still running inside goes first.
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        // SAFETY: plain kill(2).
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if std::env::var_os("LBD_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        let _ = self.links;
    }
}

/// A process started in a namespace; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
    pub name: String,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(5));
    }

    /// Waits (bounded) for the process to exit; None if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log().contains(needle)).is_some()
    }

    /// How often `needle` occurs in the log.
    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running tshark capture.
pub struct Capture {
    daemon: Daemon,
    pub file: PathBuf,
}

impl Capture {
    /// Stops the capture and returns the file.
    pub fn stop(mut self) -> PathBuf {
        self.daemon.signal(libc::SIGINT);
        if self.daemon.wait_exit(Duration::from_secs(10)).is_none() {
            self.daemon.kill9();
        }
        self.file.clone()
    }
}

/// Runs tshark over a capture: `-Y filter -T fields -e f...`, one Vec per packet.
pub fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-n",
        "-r",
        file.to_str().unwrap(),
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    run(&mut cmd)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// A one-instance lbd config.
#[allow(clippy::too_many_arguments)]
pub fn lbd_instance(
    name: &str,
    ifname: &str,
    vrid: u8,
    priority: u8,
    version: u8,
    interval: &str,
    vips: &[&str],
    extra: &str,
) -> String {
    let vips: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        "[vrrp.instance.{name}]\ninterface = \"{ifname}\"\nvrid = {vrid}\npriority = {priority}\nversion = {version}\nadvert_interval = \"{interval}\"\nvips = [{}]\n{extra}\n",
        vips.join(", ")
    )
}

/// A one-instance keepalived config with the same settings.
#[allow(clippy::too_many_arguments)]
pub fn keepalived_instance(
    name: &str,
    ifname: &str,
    vrid: u8,
    priority: u8,
    version: u8,
    interval_s: &str,
    vips: &[&str],
    extra: &str,
) -> String {
    format!(
        "global_defs {{\n  router_id {name}\n}}\nvrrp_instance {name} {{\n  state BACKUP\n  interface {ifname}\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int {interval_s}\n  version {version}\n{extra}\n  virtual_ipaddress {{\n{}\n  }}\n}}\n",
        vips.iter().map(|v| format!("    {v}")).collect::<Vec<_>>().join("\n")
    )
}
