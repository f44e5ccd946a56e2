//! Scaffolding for the `vrrp_*` tests: a lab of network namespaces (one per balancer, joined
//! by bridges in a namespace of their own), the real `lbd` binary and Debian's keepalived
//! started inside them with a config file each, tshark captures, and raw sockets opened in a
//! namespace to send hand-made packets.
//!
//! Needs root and `ip`; keepalived and tshark where a test names them (tools/setup.sh installs
//! them). A missing facility fails the test with what to install; nothing is skipped.
//! Namespaces, processes and files are removed by Drop guards, also when a test fails.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lbtest::process;
use lbtest::Netns;

/// A process started in a namespace, its output in `{name}.log`; killed on drop.
pub use lbtest::ChildGuard as Daemon;
pub use nix::sys::signal::Signal;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the test with a clear message unless we are root and every program exists.
pub fn require(progs: &[&str]) {
    process::require_root("network namespaces, raw sockets");
    process::require_programs(&["ip"]);
    process::require_programs(progs);
}

/// `ip args...` on the host, stdout; it must succeed.
fn ip(args: &[&str]) -> String {
    process::run_args("ip", args).unwrap()
}

/// How often the tests poll a namespace's addresses with `lbtest::wait::until`: often enough
/// that the time a VIP took to move is measured to a few milliseconds.
pub const POLL: Duration = Duration::from_millis(5);

/// Namespaces: one holds the bridges `br0..`, the others are the nodes. Node `i` has `eth{l}`
/// on bridge `l` with 10.{l+1}.0.{i+1}/24 (and its IPv6 link-local address, with duplicate
/// address detection off so it is usable at once).
pub struct Lab {
    nodes: Vec<Netns>,
    bridges: Netns,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new(nodes: usize, links: usize) -> Lab {
        require(&[]);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lbd-vrrp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let lab = Lab {
            nodes: (0..nodes)
                .map(|i| Netns::new(&format!("vrrp-n{i}")).unwrap())
                .collect(),
            bridges: Netns::new("vrrp-br").unwrap(),
            dir,
        };
        let br = lab.bridge_ns();
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
                lab.exec(
                    i,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{eth}.accept_dad=0"),
                    ],
                );
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
        self.bridges.name().to_string()
    }

    pub fn ns(&self, node: usize) -> String {
        self.nodes[node].name().to_string()
    }

    /// Node `node`'s address on link `link`.
    pub fn addr(&self, node: usize, link: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, link as u8 + 1, 0, node as u8 + 1)
    }

    /// The link-local IPv6 address of `ifname` on `node`.
    pub fn link_local(&self, node: usize, ifname: &str) -> IpAddr {
        let out = self.nodes[node]
            .ip(&["-6", "-o", "addr", "show", "dev", ifname, "scope", "link"])
            .unwrap();
        let word = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .unwrap_or_else(|| panic!("no link-local address on {ifname}: {out}"));
        word.split('/').next().unwrap().parse().unwrap()
    }

    /// Runs a command inside `node` and returns its stdout.
    pub fn exec(&self, node: usize, args: &[&str]) -> String {
        let out = self.nodes[node].run(args).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `addr` (no prefix) is on `ifname` in `node`.
    pub fn has_addr(&self, node: usize, ifname: &str, addr: &str) -> bool {
        let out = self.nodes[node]
            .ip(&["-o", "addr", "show", "dev", ifname])
            .unwrap_or_default();
        out.split_whitespace()
            .any(|w| w.split('/').next() == Some(addr))
    }

    pub fn set_link(&self, node: usize, ifname: &str, up: bool) {
        self.nodes[node]
            .ip(&["link", "set", ifname, if up { "up" } else { "down" }])
            .unwrap();
    }

    fn spawn(&self, node: usize, name: &str, argv: &[&str], env: &[(&str, &str)]) -> Daemon {
        let (program, args) = argv.split_first().expect("a program to run");
        let mut cmd = self.nodes[node].command(program);
        cmd.args(args).envs(env.iter().copied());
        Daemon::spawn_logged(&mut cmd, &self.dir.join(format!("{name}.log"))).unwrap()
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
        let out = lbtest::programs::command("curl")
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
        let index: u32 = self
            .exec(node, &["cat", &format!("/sys/class/net/{ifname}/ifindex")])
            .trim()
            .parse()
            .expect("ifindex");
        self.nodes[node]
            .enter(|| lbd::vrrp::runtime::sock::VrrpSocket::open(ifname, index, ipv6, false))
            .unwrap()
            .expect("raw socket")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The nodes (and what runs in them) go first, then the bridges.
        self.nodes.clear();
        if std::env::var_os("LBD_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
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
        self.daemon.signal(Signal::SIGINT);
        if self.daemon.wait_exit(Duration::from_secs(10)).is_none() {
            let _ = self.daemon.kill();
        }
        self.file.clone()
    }
}

/// Runs tshark over a capture: `-Y filter -T fields -e f...`, one Vec per packet.
pub fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = lbtest::programs::command("tshark");
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
    let out = process::run(&mut cmd).unwrap();
    String::from_utf8_lossy(&out.stdout)
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
