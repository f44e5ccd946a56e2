//! The N-way lab (see the module doc of [`super`] for the picture): the router namespace with
//! BIRD and ECMP, three DR reals, a client behind the router, and three balancers booted from
//! the test image on taps, each fetching its config from the router's config server.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::appliance::{ApplianceBuilder, ConfigDir, Image};
use crate::ipvs::{boot_image_with_shell, ShellGuest};
use crate::netns::Netns;
use crate::process::ChildGuard;
use crate::qemu::{MacAddr, Nic};

/// The router's address on the balancers' segment (BGP peer, gateway, config server).
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 73, 0, 1);
/// The router's AS.
pub const ROUTER_AS: u32 = 65000;
/// The balancers' AS.
pub const BALANCER_AS: u32 = 65001;
/// The VIP of the web (:80) and echo (:9000) services.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 73, 100, 1);
/// The VIP of the `single` service (:80), whose only real is r1.
pub const VIP_SINGLE: Ipv4Addr = Ipv4Addr::new(10, 73, 100, 2);
/// The VIP of the `pair` service: VRRP between lb1 (master) and lb2, beside the N-way VIPs
/// (mixed roles). On the segment, so the router reaches it by ARP.
pub const VIP_PAIR: Ipv4Addr = Ipv4Addr::new(10, 73, 0, 100);
/// The pair's VRID.
pub const VRID_PAIR: u8 = 73;
/// The client, behind the router.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 74, 0, 2);
/// The router's address on the client's side.
pub const CLIENT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 74, 0, 1);
/// The config server's port on [`ROUTER`].
pub const CONFIG_PORT: u16 = 8080;
/// Source ports the flow probes use (the pinning rules match them only, so other traffic
/// keeps following ECMP).
pub const PROBE_PORTS: std::ops::Range<u16> = 41000..42000;

/// A balancer's fixed identity in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Host name.
    pub name: &'static str,
    /// Its NIC's MAC.
    pub mac: MacAddr,
    /// Its address on the segment (BGP next hop).
    pub addr: Ipv4Addr,
    /// Its tap on the bridge.
    pub tap: &'static str,
}

/// The three balancers.
pub const MEMBERS: [Member; 3] = [
    Member {
        name: "lb1",
        mac: MacAddr([0x52, 0x54, 0x00, 0x73, 0x00, 0x11]),
        addr: Ipv4Addr::new(10, 73, 0, 11),
        tap: "tap1",
    },
    Member {
        name: "lb2",
        mac: MacAddr([0x52, 0x54, 0x00, 0x73, 0x00, 0x12]),
        addr: Ipv4Addr::new(10, 73, 0, 12),
        tap: "tap2",
    },
    Member {
        name: "lb3",
        mac: MacAddr([0x52, 0x54, 0x00, 0x73, 0x00, 0x13]),
        addr: Ipv4Addr::new(10, 73, 0, 13),
        tap: "tap3",
    },
];

/// The reals: (name, address).
pub const REALS: [(&str, Ipv4Addr); 3] = [
    ("r1", Ipv4Addr::new(10, 73, 0, 21)),
    ("r2", Ipv4Addr::new(10, 73, 0, 22)),
    ("r3", Ipv4Addr::new(10, 73, 0, 23)),
];

/// What a balancer's config says besides the fixed parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `[ipvs] sloppy_tcp` (None: not set, lbd's default for N-way services).
    pub sloppy_tcp: Option<bool>,
    /// Indexes into [`REALS`] of the web and echo services' reals, in the order the config
    /// lists them (the order must not matter).
    pub reals: Vec<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sloppy_tcp: None,
            reals: vec![0, 1, 2],
        }
    }
}

/// `m`'s config.
pub fn config_text(m: &Member, s: &Settings) -> String {
    let sloppy = match s.sloppy_tcp {
        Some(on) => format!("sloppy_tcp = {on}\n"),
        None => String::new(),
    };
    let mut text = format!(
        r#"[node]
hostname = "{name}"

[node.sysctl]
"net.ipv4.ip_forward" = 1

[ipvs]
removal_drain = "0s"
{sloppy}
[bgp]
local_as = {BALANCER_AS}
router_id = "{addr}"
hold_time = "3s"
bfd = true

[bgp.peer.router]
address = "{ROUTER}"
remote_as = {ROUTER_AS}

[check.health]
type = "http"
port = 8080
path = "/health"
interval = "500ms"
timeout = "400ms"
rise = 1
fall = 2
"#,
        name = m.name,
        addr = m.addr,
    );
    let all: Vec<usize> = s.reals.clone();
    for (service, vip, port, reals) in [
        ("web", VIP, 80, &all),
        ("echo", VIP, 9000, &all),
        ("single", VIP_SINGLE, 80, &vec![0]),
    ] {
        text.push_str(&format!(
            "\n[service.{service}]\nvip = \"{vip}:{port}\"\nannounce = \"bgp\"\nforwarding = \"dr\"\n\
             scheduler = \"mh\"\nflags = [\"mh-port\", \"mh-fallback\"]\ncheck = \"health\"\n"
        ));
        for &i in reals {
            text.push_str(&format!(
                "\n[[service.{service}.real]]\naddress = \"{}\"\n",
                REALS[i].1
            ));
        }
    }
    // Mixed roles: lb1 and lb2 also run a pair service on a VRRP VIP; lb3 has none.
    let priority = match m.name {
        "lb1" => Some(150),
        "lb2" => Some(100),
        _ => None,
    };
    if let Some(priority) = priority {
        text.push_str(&format!(
            "\n[vrrp.instance.VI_PAIR]\ninterface = \"eth0\"\nvrid = {VRID_PAIR}\npriority = {priority}\n\
             vips = [\"{VIP_PAIR}/32\"]\n\n[service.pair]\nvip = \"{VIP_PAIR}:80\"\nforwarding = \"dr\"\n\
             scheduler = \"wrr\"\ncheck = \"health\"\n"
        ));
        for &i in &all {
            text.push_str(&format!(
                "\n[[service.pair.real]]\naddress = \"{}\"\n",
                REALS[i].1
            ));
        }
    }
    text
}

/// The router's BIRD: one eBGP session per balancer with BFD, routes merged into ECMP routes
/// of its kernel table; nothing exported to the balancers.
pub fn router_bird_conf() -> String {
    let mut text = format!(
        r#"log stderr all;
router id {ROUTER};
protocol device {{ scan time 10; }}
protocol kernel {{
  ipv4 {{ import none; export all; }};
  merge paths on;
}}
protocol bfd {{
  interface "br0" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};
}}
template bgp balancer {{
  local {ROUTER} as {ROUTER_AS};
  hold time 3;
  connect retry time 1;
  error wait time 1, 5;
  bfd on;
  ipv4 {{ import all; export none; }};
}}
"#
    );
    for m in &MEMBERS {
        text.push_str(&format!(
            "protocol bgp {} from balancer {{ neighbor {} as {BALANCER_AS}; }}\n",
            m.name, m.addr
        ));
    }
    text
}

/// A real: HTTP on :80 answering its name, a line echo on :9000, health on :8080 (503 while
/// the file named by its second argument exists).
const REAL_SERVER: &str = crate::chaos::lab::REAL_SERVER;

/// The network, the router, the reals and the client; balancers are booted with
/// [`Lab::boot`].
pub struct Lab {
    // Dropped in order: processes, then namespaces.
    _bird: ChildGuard,
    _reals: Vec<ChildGuard>,
    _config_server: ChildGuard,
    /// The client's namespace.
    pub client: Netns,
    _real_ns: Vec<Netns>,
    /// The router's namespace (bridge, BIRD, config server).
    pub ns: Netns,
    configs: ConfigDir,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Sets up the segment, the router, the reals and the client, and publishes every
    /// balancer's config with `settings`.
    pub fn start(settings: &Settings) -> Result<Lab, String> {
        let e = |e: crate::netns::NetnsError| e.to_string();
        let dir = tempfile::Builder::new()
            .prefix("lbtest-nway-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.path().join("health")).map_err(|e| e.to_string())?;
        let ns = Netns::new("nway").map_err(e)?;
        ns.add_bridge("br0").map_err(e)?;
        ns.add_addr("br0", &format!("{ROUTER}/24")).map_err(e)?;
        ns.run(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ])
        .map_err(e)?;
        for m in &MEMBERS {
            ns.add_tap(m.tap, Some("br0")).map_err(e)?;
        }
        let mut real_ns = Vec::new();
        let mut reals = Vec::new();
        for (name, addr) in REALS {
            let rns = Netns::new(&format!("nway-{name}")).map_err(e)?;
            let host_end = format!("v{name}");
            ns.add_veth_to(&host_end, &rns, "eth0")
                .and_then(|()| ns.set_master(&host_end, "br0"))
                .and_then(|()| rns.add_addr("eth0", &format!("{addr}/24")))
                .map_err(e)?;
            rns.hold_dr_vips(&[VIP, VIP_SINGLE, VIP_PAIR].map(IpAddr::V4))
                .map_err(e)?;
            rns.ip(&["route", "add", "default", "via", &ROUTER.to_string()])
                .map_err(e)?;
            let down = dir.path().join("health").join(name);
            reals.push(
                rns.spawn(&["python3", "-c", REAL_SERVER, name, &down.to_string_lossy()])
                    .map_err(e)?,
            );
            real_ns.push(rns);
        }
        let client = Netns::new("nway-client").map_err(e)?;
        ns.add_veth_to("vcl", &client, "eth0")
            .and_then(|()| ns.add_addr("vcl", &format!("{CLIENT_GATEWAY}/24")))
            .and_then(|()| ns.link_up("vcl"))
            .and_then(|()| client.add_addr("eth0", &format!("{CLIENT}/24")))
            .and_then(|()| {
                client
                    .ip(&[
                        "route",
                        "add",
                        "default",
                        "via",
                        &CLIENT_GATEWAY.to_string(),
                    ])
                    .map(|_| ())
            })
            .map_err(e)?;
        let configs = ConfigDir::new().map_err(|e| e.to_string())?;
        // Its request log goes to a file: the guests poll every second.
        let config_server = ChildGuard::spawn_logged(
            ns.command("python3").args([
                "-m",
                "http.server",
                "--bind",
                &ROUTER.to_string(),
                "--directory",
                &configs.path().to_string_lossy(),
                &CONFIG_PORT.to_string(),
            ]),
            &dir.path().join("config-server.log"),
        )
        .map_err(|e| e.to_string())?;
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, router_bird_conf()).map_err(|e| e.to_string())?;
        let sock = dir.path().join("bird.ctl");
        let mut bird = ChildGuard::spawn_logged(
            ns.command("bird").args([
                "-f",
                "-c",
                &conf.to_string_lossy(),
                "-s",
                &sock.to_string_lossy(),
            ]),
            &dir.path().join("bird.log"),
        )
        .map_err(|e| e.to_string())?;
        if !crate::wait::file_contains(
            &dir.path().join("bird.log"),
            "Started",
            Duration::from_secs(10),
        ) || !bird.running()
        {
            return Err(format!("the router's BIRD did not start:\n{}", bird.log()));
        }
        let lab = Lab {
            _bird: bird,
            _reals: reals,
            _config_server: config_server,
            client,
            _real_ns: real_ns,
            ns,
            configs,
            dir,
        };
        for m in &MEMBERS {
            lab.publish(m, settings)?;
        }
        Ok(lab)
    }

    /// Publishes `m`'s config with `settings`.
    pub fn publish(&self, m: &Member, settings: &Settings) -> Result<(), String> {
        self.configs
            .publish(&config_file(m), &config_text(m, settings))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Boots `m` from `image` on its tap; returns once its shell answers.
    pub fn boot(&self, image: &Image, m: &Member, boot: Duration) -> Result<ShellGuest, String> {
        boot_image_with_shell(
            image,
            ApplianceBuilder::new(format!("nway-{}", m.name))
                .nic(Nic::tap(m.tap, m.mac))
                .netns(&self.ns)
                .append(format!(
                    "ip={}::{ROUTER}:255.255.255.0:{}:eth0:off",
                    m.addr, m.name
                ))
                .config_url(format!(
                    "http://{ROUTER}:{CONFIG_PORT}/${{mac_hyphen}}.toml"
                ))
                .poll("1s"),
            boot,
        )
    }

    /// The router's next hops for `vip` now (sorted).
    pub fn next_hops(&self, vip: Ipv4Addr) -> Result<Vec<IpAddr>, String> {
        let out = self
            .ns
            .ip(&["-j", "-4", "route", "show", &format!("{vip}/32")])
            .map_err(|e| e.to_string())?;
        super::flows::next_hops(&out)
    }

    /// Waits until the router's next hops for `vip` are exactly `want`'s addresses; how long
    /// that took.
    pub fn wait_next_hops(
        &self,
        vip: Ipv4Addr,
        want: &[&Member],
        timeout: Duration,
    ) -> Result<Duration, String> {
        let mut want: Vec<IpAddr> = want.iter().map(|m| IpAddr::V4(m.addr)).collect();
        want.sort();
        let start = Instant::now();
        let mut last = Ok(Vec::new());
        let got = crate::wait::until(timeout, Duration::from_millis(20), || {
            last = self.next_hops(vip);
            last.as_ref().is_ok_and(|h| *h == want)
        });
        got.ok_or_else(|| {
            format!(
                "the router's next hops for {vip} are {last:?}, not {want:?}, after {:?}\n\
                 router BIRD:\n{}",
                start.elapsed(),
                self.birdc("show protocols")
            )
        })
    }

    /// What the router's BIRD answers to `command` (for reports).
    pub fn birdc(&self, command: &str) -> String {
        let sock = self.dir.path().join("bird.ctl");
        let mut args = vec!["birdc", "-s"];
        let sock = sock.to_string_lossy().into_owned();
        args.push(&sock);
        args.extend(command.split_whitespace());
        match self.ns.run(&args) {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("birdc: {e}"),
        }
    }

    /// Sends the probe flows of `ports` (a subrange of [`PROBE_PORTS`]) through `via` only
    /// (a policy rule on the router), or through ECMP (`None`).
    pub fn pin(&self, via: Option<&Member>) -> Result<(), String> {
        let ports = format!("{}-{}", PROBE_PORTS.start, PROBE_PORTS.end - 1);
        let client = CLIENT.to_string();
        let rule = |op: &str| {
            self.ns.ip(&[
                "rule", op, "pref", "100", "from", &client, "ipproto", "tcp", "sport", &ports,
                "lookup", "100",
            ])
        };
        // Removing a rule that is not there fails: ignore.
        let _ = rule("del");
        let _ = self.ns.ip(&["route", "flush", "table", "100"]);
        let Some(m) = via else { return Ok(()) };
        for vip in [VIP, VIP_SINGLE] {
            let to = format!("{vip}/32");
            self.ns
                .ip(&[
                    "route",
                    "add",
                    &to,
                    "via",
                    &m.addr.to_string(),
                    "table",
                    "100",
                ])
                .map_err(|e| e.to_string())?;
        }
        rule("add").map(|_| ()).map_err(|e| e.to_string())
    }

    /// Sends every flow of `ports` to `vip:80` from the client; which real answered each, and
    /// the failures.
    pub fn probe(
        &self,
        ports: std::ops::Range<u16>,
        vip: Ipv4Addr,
    ) -> Result<
        (
            super::flows::FlowMap,
            std::collections::BTreeMap<u16, String>,
        ),
        String,
    > {
        self.client
            .enter(move || {
                super::flows::probe(
                    CLIENT,
                    ports,
                    SocketAddrV4::new(vip, 80),
                    Duration::from_secs(2),
                )
            })
            .map_err(|e| e.to_string())
    }

    /// Marks real `i`'s health endpoint down for every balancer (`true`) or up.
    pub fn set_health_down(&self, i: usize, down: bool) {
        let path = self.dir.path().join("health").join(REALS[i].0);
        if down {
            let _ = std::fs::write(&path, b"down");
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Drops `m`'s health checks to real `i` on the bridge (`true`), so that only `m` sees the
    /// real down, or lets them through again.
    pub fn block_checks(&self, m: &Member, i: usize, on: bool) -> Result<(), String> {
        let rule = if on {
            format!(
                "iifname \"{}\" ip daddr {} tcp dport 8080 drop",
                m.tap, REALS[i].1
            )
        } else {
            String::new()
        };
        self.ns.set_bridge_rules(self.dir.path(), "nway", &rule)
    }

    /// Where the lab keeps its files (router BIRD's log: `bird.log`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The file a member's config is served as.
pub fn config_file(m: &Member) -> String {
    format!("{}.toml", m.mac.to_string().replace(':', "-"))
}
