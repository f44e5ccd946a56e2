//! The chaos lab: one segment in a namespace with a bridge, two balancers booted from the test
//! image on taps, three DR reals and a client in namespaces, a config server that can
//! misbehave, a third party watching the wire, and the faults the scenarios inject on the
//! bridge (nftables in the bridge family: VRRP loss, a partition between the balancers).
//!
//! ```text
//!   namespace "chaos": br0 10.72.0.1 — config server :8080, wire observer, nftables faults
//!     ├─ tap1 ── lb1 10.72.0.11  priority 150 ┐ VRRP v3 vrid 72, 1 s adverts,
//!     ├─ tap2 ── lb2 10.72.0.12  priority 100 ┘ VIP 10.72.0.100, connection sync on eth0
//!     ├─ veth ── r1 10.72.0.21 ┐
//!     ├─ veth ── r2 10.72.0.22 ├ DR reals: HTTP :80, line echo :9000, health :8080
//!     ├─ veth ── r3 10.72.0.23 ┘
//!     └─ veth ── client 10.72.0.2 (the load)
//! ```
//!
//! The NAT layout ([`Layout::Nat`]) adds an inside segment: the balancers' second NICs on br1,
//! the reals there instead (no VIP on their loopback), routing back through a gateway VIP that
//! a fourth instance of the sync group holds, so a reply always passes the balancer that holds
//! the outside VIP and the connection:
//!
//! ```text
//!     br1 (no host address)
//!     ├─ tap1i ── lb1 eth1 10.73.0.11 ┐ VRRP vrid 75, gateway VIP 10.73.0.1 (sync group)
//!     ├─ tap2i ── lb2 eth1 10.73.0.12 ┘
//!     └─ veth ── r1 10.73.0.21, r2 .22, r3 .23 (default route via 10.73.0.1)
//! ```
//!
//! Every config is signed with an operator key that the lab's image trusts, and carries a
//! `[release]` serial that grows with each publication, so "an unsigned or invalid config was
//! never applied" is a property the scenarios can check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::appliance::{ApplianceBuilder, Image};
use crate::config_server::{ConfigServer, Mode};
use crate::fresh::{self, ImageKind};
use crate::ipvs::{boot_image_with_shell, GuestShell, ShellGuest};
use crate::netns::Netns;
use crate::process::ChildGuard;
use crate::qemu::{MacAddr, Nic};
use crate::wire::Observer;

/// Where the next release's image names itself (the first image has no such file).
pub const RELEASE_FILE: &str = "/etc/lb/release";
/// What it says.
pub const NEXT_RELEASE: &str = "chaos-next\n";

/// The VIP of the pair.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 100);
/// The IPv6 VIP (its own instance, in the sync group): unsolicited NAs at every takeover.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd72, 0, 0, 0, 0, 0, 0, 0x100);
/// The VIP of the unicast instance (in the sync group): its adverts go to the peer only.
pub const VIP_UNICAST: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 101);
/// The unicast instance's VRID.
pub const VRID_UNICAST: u8 = 74;
/// The IPv6 instance's VRID.
pub const VRID6: u8 = 73;
/// The client's IPv6 address (on the VIP's /64).
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd72, 0, 0, 0, 0, 0, 0, 2);
/// The bridge's address: config server.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 1);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 2);
/// The config server's port.
pub const CONFIG_PORT: u16 = 8080;
/// The NAT layout's gateway VIP: the reals' default route, held by the master.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 73, 0, 1);
/// The gateway instance's VRID.
pub const VRID_INSIDE: u8 = 75;
/// VRRP's VRID for the VIP.
pub const VRID: u8 = 72;
/// The advert interval of the pair.
pub const ADVERT: Duration = Duration::from_secs(1);
/// One try of [`Balancer::sh`].
const SHELL_TRY: Duration = Duration::from_secs(20);

/// A balancer's fixed identity in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Host name (and the name in tables).
    pub name: &'static str,
    /// Its NIC's MAC (the config's `[release] node`).
    pub mac: MacAddr,
    /// Its own address on the segment.
    pub addr: Ipv4Addr,
    /// Its tap on the bridge.
    pub tap: &'static str,
    /// VRRP priority.
    pub priority: u8,
    /// The NAT layout's second NIC: its MAC, address and tap on the inside bridge.
    pub inside_mac: MacAddr,
    /// See `inside_mac`.
    pub inside_addr: Ipv4Addr,
    /// See `inside_mac`.
    pub inside_tap: &'static str,
}

/// The pair: lb1 is the preferred master.
pub const MEMBERS: [Member; 2] = [
    Member {
        name: "lb1",
        mac: MacAddr([0x52, 0x54, 0x00, 0x72, 0x00, 0x11]),
        addr: Ipv4Addr::new(10, 72, 0, 11),
        tap: "tap1",
        priority: 150,
        inside_mac: MacAddr([0x52, 0x54, 0x00, 0x73, 0x00, 0x11]),
        inside_addr: Ipv4Addr::new(10, 73, 0, 11),
        inside_tap: "tap1i",
    },
    Member {
        name: "lb2",
        mac: MacAddr([0x52, 0x54, 0x00, 0x72, 0x00, 0x12]),
        addr: Ipv4Addr::new(10, 72, 0, 12),
        tap: "tap2",
        priority: 100,
        inside_mac: MacAddr([0x52, 0x54, 0x00, 0x73, 0x00, 0x12]),
        inside_addr: Ipv4Addr::new(10, 73, 0, 12),
        inside_tap: "tap2i",
    },
];

/// A real server.
#[derive(Clone, Copy, Debug)]
pub struct RealServer {
    /// Its name (what it answers).
    pub name: &'static str,
    /// Its address in the DR layout (on the balancers' segment).
    pub addr: Ipv4Addr,
    /// Its address in the NAT layout (on the inside segment).
    pub nat_addr: Ipv4Addr,
}

impl RealServer {
    /// Its address in `layout`.
    pub fn addr_in(&self, layout: Layout) -> Ipv4Addr {
        match layout {
            Layout::Dr => self.addr,
            Layout::Nat => self.nat_addr,
        }
    }
}

/// The reals.
pub const REALS: [RealServer; 3] = [
    RealServer {
        name: "r1",
        addr: Ipv4Addr::new(10, 72, 0, 21),
        nat_addr: Ipv4Addr::new(10, 73, 0, 21),
    },
    RealServer {
        name: "r2",
        addr: Ipv4Addr::new(10, 72, 0, 22),
        nat_addr: Ipv4Addr::new(10, 73, 0, 22),
    },
    RealServer {
        name: "r3",
        addr: Ipv4Addr::new(10, 72, 0, 23),
        nat_addr: Ipv4Addr::new(10, 73, 0, 23),
    },
];

/// A real: HTTP on :80 answering its name, a line echo on :9000 answering `NAME LINE`, and
/// `/health` on :8080 that answers 503 while the file named by its second argument exists.
pub(crate) const REAL_SERVER: &str = r#"
import http.server, os, socketserver, sys, threading
name, down = sys.argv[1], sys.argv[2]
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name.encode() + b" " + line)
class Web(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Health(Web):
    def do_GET(self):
        ok = not os.path.exists(down)
        body = b"ok\n" if ok else b"down\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
http.server.ThreadingHTTPServer.daemon_threads = True
echo = socketserver.ThreadingTCPServer(("0.0.0.0", 9000), Echo)
threading.Thread(target=echo.serve_forever, daemon=True).start()
health = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Health)
threading.Thread(target=health.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 80), Web).serve_forever()
"#;

/// What a published config contains besides the fixed parts: the reals of each service with
/// their weights (the reload storm alternates two of these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    /// `(real index in REALS, weight)` for the HTTP service.
    pub web: Vec<(usize, u32)>,
    /// The same for the echo service.
    pub echo: Vec<(usize, u32)>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            web: vec![(0, 1), (1, 1)],
            echo: vec![(0, 1), (1, 1)],
        }
    }
}

impl Services {
    /// The other config of the reload storm: r3 added to both services, weights changed.
    pub fn storm_alternate() -> Services {
        Services {
            web: vec![(0, 3), (1, 1), (2, 2)],
            echo: vec![(0, 2), (1, 1), (2, 1)],
        }
    }
}

/// Who does VRRP on the balancers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrrpBy {
    /// lbd (the product).
    Lbd,
    /// keepalived, as operators run it today, started in each guest with the same VRRP
    /// instance, the same services and health checks, and connection sync following the
    /// instance (lbd runs with no services and no VRRP): the anchor the VRRP scenarios are
    /// compared with. No IPv6 or unicast instance.
    Keepalived,
}

/// How the pair reaches its reals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Direct routing: the reals on the balancers' segment, the VIP on their loopback.
    Dr,
    /// NAT: the reals on an inside segment, routing back through the gateway VIP (see the
    /// module doc).
    Nat,
}

impl Layout {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Dr => "dr",
            Layout::Nat => "nat",
        }
    }

    /// The layout named `name`.
    pub fn parse(name: &str) -> Option<Layout> {
        [Layout::Dr, Layout::Nat]
            .into_iter()
            .find(|l| l.name() == name)
    }

    fn forwarding(self) -> &'static str {
        match self {
            Layout::Dr => "dr",
            Layout::Nat => "nat",
        }
    }
}

/// What a lab is made of besides its fixed parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Who does VRRP.
    pub vrrp: VrrpBy,
    /// DR or NAT.
    pub layout: Layout,
    /// vCPUs per balancer.
    pub vcpus: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            vrrp: VrrpBy::Lbd,
            layout: Layout::Dr,
            vcpus: 1,
        }
    }
}

/// The config of `m` with `serial` (see the module doc for the layout).
pub fn config_text(m: &Member, serial: u64, services: &Services, layout: Layout) -> String {
    config_with_priority(m, m.priority, serial, services, VrrpBy::Lbd, layout)
}

/// [`config_text`] with another VRRP priority (a planned handover lowers the master's), and
/// without any VRRP when keepalived does it.
pub fn config_with_priority(
    m: &Member,
    priority: u8,
    serial: u64,
    services: &Services,
    vrrp: VrrpBy,
    layout: Layout,
) -> String {
    let mut text = format!(
        r#"[release]
serial = {serial}
node = "{mac}"

[node]
hostname = "{name}"

[node.sysctl]
"net.ipv4.ip_forward" = 1

"#,
        mac = m.mac,
        name = m.name,
    );
    if layout == Layout::Nat {
        // The boot names eth0 (ip=); the config names both, as a NAT pair's config does.
        text.push_str(&format!(
            "[network.link.eth0]\naddresses = [\"{}/24\"]\n\n[network.link.eth1]\naddresses = [\"{}/24\"]\n",
            m.addr, m.inside_addr
        ));
    }
    if vrrp == VrrpBy::Keepalived {
        // keepalived does it all; lbd leaves its table and sync daemon alone.
        return text;
    }
    text.push_str(
        r#"
[ipvs]
# Reals the storm removes drain for at most this long (connections finish, no new ones).
removal_drain = "5s"
"#,
    );
    text.push_str(&lbd_vrrp(m, priority, layout));
    text.push_str(
        r#"
[check.health]
type = "http"
port = 8080
path = "/health"
interval = "1s"
timeout = "800ms"
rise = 2
fall = 2
"#,
    );
    let forwarding = layout.forwarding();
    for (service, port, reals, check) in [
        ("web", 80, &services.web, "\ncheck = \"health\""),
        ("echo", 9000, &services.echo, ""),
    ] {
        text.push_str(&format!(
            "\n[service.{service}]\nvip = \"{VIP}:{port}\"\nscheduler = \"wrr\"\nforwarding = \"{forwarding}\"\non_failure = \"inhibit\"{check}\n"
        ));
        for &(i, weight) in reals {
            text.push_str(&format!(
                "\n[[service.{service}.real]]\naddress = \"{}\"\nweight = {weight}\n",
                REALS[i].addr_in(layout)
            ));
        }
    }
    text
}

/// keepalived.conf for `m`: what lbd's config says, as keepalived says it — the IPv4
/// instance (VRRP v3, 1 s adverts, preemption, 5 gratuitous ARPs), connection sync following
/// it, and the services with the same reals, weights and health check (inhibit on failure);
/// in the NAT layout the gateway instance too, with the first in a sync group.
pub fn keepalived_conf(m: &Member, services: &Services, layout: Layout) -> String {
    let mut text = format!(
        "global_defs {{\n    router_id {name}\n    vrrp_version 3\n    vrrp_garp_master_repeat 5\n    \
         lvs_sync_daemon eth0 VI_1 id {VRID}\n}}\n\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {VRID}\n    \
         priority {priority}\n    advert_int 1\n    virtual_ipaddress {{\n        {VIP}/32 dev eth0\n    }}\n}}\n",
        name = m.name,
        priority = m.priority,
    );
    if layout == Layout::Nat {
        text.push_str(&format!(
            "\nvrrp_instance VI_2 {{\n    state BACKUP\n    interface eth1\n    virtual_router_id {VRID_INSIDE}\n    \
             priority {priority}\n    advert_int 1\n    virtual_ipaddress {{\n        {GATEWAY}/24 dev eth1\n    }}\n}}\n\n\
             vrrp_sync_group PAIR {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n",
            priority = m.priority,
        ));
    }
    let kind = match layout {
        Layout::Dr => "DR",
        Layout::Nat => "NAT",
    };
    for (port, reals, checked) in [(80, &services.web, true), (9000, &services.echo, false)] {
        text.push_str(&format!(
            "\nvirtual_server {VIP} {port} {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind {kind}\n    protocol TCP\n"
        ));
        for &(i, weight) in reals {
            let check = if checked {
                "        HTTP_GET {\n            url {\n                path /health\n                status_code 200\n            }\n            \
                 connect_port 8080\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n"
            } else {
                ""
            };
            text.push_str(&format!(
                "    real_server {} {port} {{\n        weight {weight}\n        inhibit_on_failure\n{check}    }}\n",
                REALS[i].addr_in(layout)
            ));
        }
        text.push_str("}\n");
    }
    text
}

/// lbd's VRRP part: the instance of the VIP with connection sync following it, a unicast
/// instance and an IPv6 one, and in the NAT layout the gateway's, all in one sync group.
fn lbd_vrrp(m: &Member, priority: u8, layout: Layout) -> String {
    let (inside, members) = match layout {
        Layout::Dr => (String::new(), r#""VI_1", "VI_U", "VI_6""#),
        Layout::Nat => (
            format!(
                r#"
# The NAT reals' default route.
[vrrp.instance.VI_IN]
interface = "eth1"
vrid = {VRID_INSIDE}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{GATEWAY}/24"]
"#
            ),
            r#""VI_1", "VI_U", "VI_6", "VI_IN""#,
        ),
    };
    format!(
        r#"
[ipvs.sync]
interface = "eth0"
sync_id = {VRID}
follow = "VI_1"

[vrrp.instance.VI_1]
interface = "eth0"
vrid = {VRID}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP}/32"]

# The same pair over unicast: adverts to the peer only.
[vrrp.instance.VI_U]
interface = "eth0"
vrid = {VRID_UNICAST}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP_UNICAST}/32"]
unicast_peers = ["{peer}"]

[vrrp.instance.VI_6]
interface = "eth0"
vrid = {VRID6}
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP6}/128"]
{inside}
[vrrp.sync_group.PAIR]
instances = [{members}]
"#,
        peer = MEMBERS
            .iter()
            .find(|p| p.name != m.name)
            .expect("a pair")
            .addr,
    )
}

/// The file a member's config is served as (`${mac_hyphen}.toml`).
pub fn config_file(m: &Member) -> String {
    format!("{}.toml", m.mac.to_string().replace(':', "-"))
}

/// The network, the servers and the client; the balancers are booted separately
/// ([`Lab::boot`]).
pub struct Lab {
    // Dropped in order: the observer and servers, then the namespaces.
    /// The third party on the segment (a packet socket on the bridge, which sees what crosses
    /// it, unicast included).
    pub observer: Observer,
    /// What the client's port of the bridge sees: a port that is no VRRP peer.
    pub client_port: Observer,
    /// The client's neighbour entry for the VIP over time.
    pub neigh: NeighWatch,
    /// NAT layout: r1's neighbour entry for the gateway VIP over time.
    pub gateway_neigh: Option<NeighWatch>,
    _reals: Vec<ChildGuard>,
    /// The config server.
    pub server: ConfigServer,
    /// The client's namespace (the load runs there).
    pub client: Netns,
    _real_ns: Vec<Netns>,
    /// The segment's namespace.
    pub ns: Netns,
    dir: tempfile::TempDir,
    key: PathBuf,
    serials: [u64; 2],
    priorities: [Option<u8>; 2],
    /// Who does VRRP, the layout, the guests' vCPUs.
    pub setup: Setup,
}

impl Lab {
    /// Sets up the segment (and the inside one for NAT), starts the reals, the config server
    /// and the observer, and publishes the first configs (serial 1, [`Services::default`]).
    pub fn start(setup: Setup) -> Result<Lab, String> {
        let dir = tempfile::Builder::new()
            .prefix("lbtest-chaos-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let key = crate::operator_keys::keypair(dir.path(), "operator");
        for sub in ["configs", "health"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let ns = Netns::new("chaos").map_err(|e| e.to_string())?;
        ns.add_flooding_bridge("br0").map_err(|e| e.to_string())?;
        ns.add_addr("br0", &format!("{SERVER}/24"))
            .map_err(|e| e.to_string())?;
        for m in &MEMBERS {
            ns.add_tap(m.tap, Some("br0")).map_err(|e| e.to_string())?;
        }
        let reals_bridge = match setup.layout {
            Layout::Dr => "br0",
            Layout::Nat => {
                ns.add_flooding_bridge("br1").map_err(|e| e.to_string())?;
                for m in &MEMBERS {
                    ns.add_tap(m.inside_tap, Some("br1"))
                        .map_err(|e| e.to_string())?;
                }
                "br1"
            }
        };
        let mut real_ns = Vec::new();
        let mut reals = Vec::new();
        for r in &REALS {
            let rns = Netns::new(&format!("chaos-{}", r.name)).map_err(|e| e.to_string())?;
            let host_end = format!("v{}", r.name);
            ns.add_veth_to(&host_end, &rns, "eth0")
                .and_then(|()| ns.set_master(&host_end, reals_bridge))
                .and_then(|()| rns.add_addr("eth0", &format!("{}/24", r.addr_in(setup.layout))))
                .map_err(|e| e.to_string())?;
            match setup.layout {
                Layout::Dr => rns
                    .hold_dr_vips(&[IpAddr::V4(VIP)])
                    .map_err(|e| e.to_string())?,
                // NAT: replies go back through whoever holds the gateway VIP.
                Layout::Nat => rns
                    .ip(&["route", "add", "default", "via", &GATEWAY.to_string()])
                    .map(|_| ())
                    .map_err(|e| e.to_string())?,
            }
            let down = dir.path().join("health").join(r.name);
            let down = down.to_string_lossy();
            reals.push(
                rns.spawn(&["python3", "-c", REAL_SERVER, r.name, &down])
                    .map_err(|e| e.to_string())?,
            );
            real_ns.push(rns);
        }
        let client = Netns::new("chaos-client").map_err(|e| e.to_string())?;
        ns.add_veth_to("vclient", &client, "eth0")
            .and_then(|()| ns.set_master("vclient", "br0"))
            .and_then(|()| client.add_addr("eth0", &format!("{CLIENT}/24")))
            .and_then(|()| {
                client
                    .ip(&[
                        "-6",
                        "addr",
                        "add",
                        &format!("{CLIENT6}/64"),
                        "dev",
                        "eth0",
                        "nodad",
                    ])
                    .map(|_| ())
            })
            .map_err(|e| e.to_string())?;
        let server = ConfigServer::start_in(
            &ns,
            SocketAddr::new(IpAddr::V4(SERVER), CONFIG_PORT),
            &dir.path().join("configs"),
        )
        .map_err(|e| e.to_string())?;
        let observer = Observer::start(&ns, "br0").map_err(|e| e.to_string())?;
        let client_port = Observer::start(&ns, "vclient").map_err(|e| e.to_string())?;
        let neigh = NeighWatch::start(&client, VIP, Some(VIP6))?;
        let gateway_neigh = match setup.layout {
            Layout::Dr => None,
            Layout::Nat => Some(NeighWatch::start(&real_ns[0], GATEWAY, None)?),
        };
        let mut lab = Lab {
            observer,
            client_port,
            neigh,
            gateway_neigh,
            _reals: reals,
            server,
            client,
            _real_ns: real_ns,
            ns,
            dir,
            key,
            serials: [0; 2],
            priorities: [None; 2],
            setup,
        };
        lab.wait_reals()?;
        lab.publish_all(&Services::default())?;
        Ok(lab)
    }

    /// The reals answer directly (before any VIP exists): the client asks the DR reals, each
    /// NAT real (out of the client's reach) answers itself.
    fn wait_reals(&self) -> Result<(), String> {
        for (r, rns) in REALS.iter().zip(&self._real_ns) {
            let from = match self.setup.layout {
                Layout::Dr => &self.client,
                Layout::Nat => rns,
            };
            from.enter(|| self.wait_real(r))
                .map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    fn wait_real(&self, r: &RealServer) -> Result<(), String> {
        let addr = SocketAddr::new(IpAddr::V4(r.addr_in(self.setup.layout)), 80);
        let mut last = None;
        let ok = crate::wait::until(Duration::from_secs(30), Duration::from_millis(100), || {
            let got = super::load::http_get(addr, Duration::from_secs(1));
            let ok = matches!(&got, Ok(name) if name == r.name);
            last = Some(got);
            ok
        });
        match ok {
            Some(_) => Ok(()),
            None => Err(format!(
                "real {} at {addr} does not answer: {last:?}",
                r.name
            )),
        }
    }

    /// The public half of the operator key (for the image).
    pub fn public_key(&self) -> PathBuf {
        PathBuf::from(format!("{}.pub", self.key.display()))
    }

    /// The test image with this lab's operator key (built into `<target>/lb-test-image-chaos`).
    pub fn image(&self) -> Result<Image, String> {
        let dir = crate::artifacts::target_dir().join("lb-test-image-chaos");
        let args = vec![format!("--trusted-keys {}", self.public_key().display())];
        Image::in_dir(fresh::variant(ImageKind::Test, &dir, &args)?)
    }

    /// The image a rolling upgrade moves to: the test image with this lab's key and one more
    /// file, [`RELEASE_FILE`], naming the release (built into
    /// `<target>/lb-test-image-chaos-next`). A different initramfs, fetched and booted like a
    /// new release; its binaries are those of the source tree.
    pub fn next_image(&self) -> Result<Image, String> {
        let target = crate::artifacts::target_dir();
        let note = target.join("chaos-next-release");
        write_replacing(&note, NEXT_RELEASE.as_bytes())?;
        let dir = target.join("lb-test-image-chaos-next");
        let args = vec![
            format!("--trusted-keys {}", self.public_key().display()),
            format!("--add {}:{RELEASE_FILE}", note.display()),
        ];
        Image::in_dir(fresh::variant(ImageKind::Test, &dir, &args)?)
    }

    fn configs(&self) -> PathBuf {
        self.dir.path().join("configs")
    }

    /// Publishes a signed config for `m` with the next serial; returns the serial.
    pub fn publish(&mut self, m: &Member, services: &Services) -> Result<u64, String> {
        let i = member_index(m);
        self.serials[i] += 1;
        let serial = self.serials[i];
        let priority = self.priorities[i].unwrap_or(m.priority);
        let text = config_with_priority(
            m,
            priority,
            serial,
            services,
            self.setup.vrrp,
            self.setup.layout,
        );
        self.publish_raw(m, &text, true)?;
        Ok(serial)
    }

    /// Publishes `m`'s config with `priority` instead of its own (None: its own again), and
    /// keeps it for later publications.
    pub fn set_priority(
        &mut self,
        m: &Member,
        priority: Option<u8>,
        services: &Services,
    ) -> Result<u64, String> {
        self.priorities[member_index(m)] = priority;
        self.publish(m, services)
    }

    /// `m`'s config with `serial` as this lab publishes it.
    pub fn config_for(&self, m: &Member, serial: u64, services: &Services) -> String {
        let priority = self.priorities[member_index(m)].unwrap_or(m.priority);
        config_with_priority(
            m,
            priority,
            serial,
            services,
            self.setup.vrrp,
            self.setup.layout,
        )
    }

    /// Starts keepalived in `b` with [`keepalived_conf`] (fetched from the config server).
    pub fn start_keepalived(&self, b: &mut Balancer) -> Result<(), String> {
        let name = format!("keepalived-{}.conf", b.member.name);
        write_replacing(
            &self.configs().join(&name),
            keepalived_conf(&b.member, &Services::default(), self.setup.layout).as_bytes(),
        )?;
        b.sh(&format!(
            "wget -q -O /tmp/keepalived.conf http://{SERVER}:{CONFIG_PORT}/{name} && \
             (keepalived --dont-fork --log-console --log-detail -f /tmp/keepalived.conf \
              --pid /tmp/keepalived.pid --vrrp_pid /tmp/keepalived-vrrp.pid \
              --checkers_pid /tmp/keepalived-check.pid \
              </dev/null >/tmp/keepalived.log 2>&1 &) && sleep 1 && pidof keepalived"
        ))
        .map(|_| ())
        .map_err(|e| format!("keepalived did not start: {e}"))
    }

    /// Publishes `services` for both members.
    pub fn publish_all(&mut self, services: &Services) -> Result<(), String> {
        for m in &MEMBERS {
            self.publish(m, services)?;
        }
        Ok(())
    }

    /// The serial the next [`Lab::publish`] for `m` will not reuse (the last one published).
    pub fn serial(&self, m: &Member) -> u64 {
        self.serials[member_index(m)]
    }

    /// Writes `text` as `m`'s config, signed (signature first, each file replaced by rename)
    /// or with its signature removed.
    pub fn publish_raw(&self, m: &Member, text: &str, signed: bool) -> Result<(), String> {
        let name = config_file(m);
        let staging = self.dir.path().join(format!("staging-{name}"));
        std::fs::write(&staging, text).map_err(|e| e.to_string())?;
        let sig_path = self.configs().join(format!("{name}.sig"));
        if signed {
            let sig = crate::operator_keys::sign(&self.key, "lb-config", &staging);
            write_replacing(&sig_path, &sig)?;
        } else {
            let _ = std::fs::remove_file(&sig_path);
        }
        write_replacing(&self.configs().join(&name), text.as_bytes())
    }

    /// How the config server answers from now on.
    pub fn server_mode(&self, mode: Mode) -> Result<(), String> {
        self.server.set_mode(mode).map_err(|e| e.to_string())
    }

    /// Marks a real's health endpoint down (`true`) or up.
    pub fn set_health_down(&self, real: usize, down: bool) {
        let path = self.dir.path().join("health").join(REALS[real].name);
        if down {
            let _ = std::fs::write(&path, b"down");
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Boots both balancers at once from `image`.
    pub fn boot(&self, image: &Image, boot: Duration) -> Result<[Balancer; 2], String> {
        let [a, b] = std::thread::scope(|s| {
            let a = s.spawn(|| Balancer::boot(self, image, MEMBERS[0], boot));
            let b = s.spawn(|| Balancer::boot(self, image, MEMBERS[1], boot));
            [a.join(), b.join()]
        });
        let unwrap = |r: std::thread::Result<Result<Balancer, String>>| {
            r.unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        Ok([unwrap(a)?, unwrap(b)?])
    }

    /// Drops `percent` % of VRRP packets crossing the bridges (0: none).
    pub fn vrrp_loss(&self, percent: u32) -> Result<(), String> {
        self.set_faults(&format!(
            "ip protocol 112 numgen random mod 100 < {percent} drop\n\
             ip6 nexthdr 112 numgen random mod 100 < {percent} drop"
        ))
    }

    /// Cuts the balancers off each other (everything between their taps, on both segments in
    /// the NAT layout), or heals.
    pub fn partition(&self, on: bool) -> Result<(), String> {
        if !on {
            return self.set_faults("");
        }
        let mut pairs = vec![(MEMBERS[0].tap, MEMBERS[1].tap)];
        if self.setup.layout == Layout::Nat {
            pairs.push((MEMBERS[0].inside_tap, MEMBERS[1].inside_tap));
        }
        let rules: Vec<String> = pairs
            .iter()
            .map(|(a, b)| {
                format!(
                    "iifname \"{a}\" oifname \"{b}\" drop\niifname \"{b}\" oifname \"{a}\" drop"
                )
            })
            .collect();
        self.set_faults(&rules.join("\n"))
    }

    /// Replaces the bridge's fault rules with `rules` (one nft rule per line).
    fn set_faults(&self, rules: &str) -> Result<(), String> {
        let script = format!(
            "table bridge chaos\ndelete table bridge chaos\n\
             table bridge chaos {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}\n  }}\n}}\n"
        );
        let path = self.dir.path().join("faults.nft");
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        self.ns
            .run(&["nft", "-f", &path.to_string_lossy()])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn member_index(m: &Member) -> usize {
    MEMBERS
        .iter()
        .position(|x| x.name == m.name)
        .expect("a member of the pair")
}

fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A neighbour's entries for a VIP and optionally an IPv6 one: the ARP entry sampled every
/// 50 ms from its namespace's `/proc/net/arp`, the IPv6 one every 200 ms from `ip -6 neigh` (a
/// datagram to that VIP every second keeps it in use): what a neighbour on the segment (the
/// client; a NAT real for its gateway) believes, and when that changed.
pub struct NeighWatch {
    stop: Arc<AtomicBool>,
    /// IPv4, IPv6.
    changes: Arc<Mutex<[Vec<NeighChange>; 2]>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// When the client's entry changed, and the MAC it named (None: no complete entry).
pub type NeighChange = (Instant, Option<String>);

/// No sampler runs longer than this.
const NEIGH_LIMIT: Duration = Duration::from_secs(4 * 3600);
const NEIGH_EVERY: Duration = Duration::from_millis(50);

impl NeighWatch {
    fn start(client: &Netns, v4: Ipv4Addr, v6: Option<Ipv6Addr>) -> Result<NeighWatch, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new([Vec::new(), Vec::new()]));
        let (s, c) = (stop.clone(), changes.clone());
        let thread = client
            .thread(move || {
                let started = Instant::now();
                let mut last: [Option<Option<String>>; 2] = [None, None];
                let mut record = |family: usize, mac: Option<String>| {
                    if last[family].as_ref() != Some(&mac) {
                        c.lock().unwrap_or_else(|e| e.into_inner())[family]
                            .push((Instant::now(), mac.clone()));
                        last[family] = Some(mac);
                    }
                };
                let poke = UdpSocket::bind("[::]:0").ok();
                let max = NEIGH_LIMIT.as_millis() / NEIGH_EVERY.as_millis();
                for n in 0..max {
                    if s.load(Ordering::Relaxed) || started.elapsed() > NEIGH_LIMIT {
                        return;
                    }
                    // thread-self: /proc/net follows the process's first thread, not this one.
                    let table =
                        std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
                    record(0, arp_entry(&table, v4));
                    let Some(v6) = v6 else {
                        std::thread::sleep(NEIGH_EVERY);
                        continue;
                    };
                    if n % 4 == 0 {
                        if n % 20 == 0 {
                            if let Some(sock) = &poke {
                                let _ = sock.send_to(b"neighbour", (v6, 9));
                            }
                        }
                        // A child of this thread is in its namespace.
                        let out = crate::programs::command("ip")
                            .args(["-6", "neigh", "show", &v6.to_string(), "dev", "eth0"])
                            .output()
                            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                            .unwrap_or_default();
                        record(1, neigh6_entry(&out));
                    }
                    std::thread::sleep(NEIGH_EVERY);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(NeighWatch {
            stop,
            changes,
            thread: Some(thread),
        })
    }

    /// Every change of the entry for `vip` (the watched IPv4 or IPv6 one): when it was seen,
    /// and the MAC (None: no usable entry).
    pub fn changes(&self, vip: IpAddr) -> Vec<NeighChange> {
        let family = usize::from(vip.is_ipv6());
        self.changes.lock().unwrap_or_else(|e| e.into_inner())[family].clone()
    }

    /// The MAC the entry for `vip` named at `at` (as last seen by then).
    pub fn entry_at(&self, vip: IpAddr, at: Instant) -> Option<String> {
        self.changes(vip)
            .iter()
            .rev()
            .find(|(seen, _)| *seen <= at)
            .and_then(|(_, mac)| mac.clone())
    }

    /// When the entry for `vip` first named `mac` at or after `from`, if it did.
    pub fn moved_to(&self, vip: IpAddr, mac: &str, from: Instant) -> Option<Instant> {
        let changes = self.changes(vip);
        // The entry may already have held `mac` when `from` came.
        let before = changes.iter().rev().find(|(at, _)| *at < from);
        if before.is_some_and(|(_, m)| m.as_deref() == Some(mac)) {
            return Some(from);
        }
        changes
            .iter()
            .find(|(at, m)| *at >= from && m.as_deref() == Some(mac))
            .map(|(at, _)| *at)
    }
}

impl Drop for NeighWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MAC of `ip -6 neigh show ADDR dev eth0`'s entry, unless it is failed or incomplete.
fn neigh6_entry(out: &str) -> Option<String> {
    let words: Vec<&str> = out.split_whitespace().collect();
    if words.iter().any(|w| matches!(*w, "FAILED" | "INCOMPLETE")) {
        return None;
    }
    let i = words.iter().position(|w| *w == "lladdr")?;
    words.get(i + 1).map(|m| m.to_string())
}

/// The complete entry's MAC for `ip` in a `/proc/net/arp` table.
fn arp_entry(table: &str, ip: Ipv4Addr) -> Option<String> {
    let ip = ip.to_string();
    table.lines().skip(1).find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // IP address, HW type, Flags (0x2: complete), HW address, Mask, Device
        (w.len() >= 4 && w[0] == ip && w[2] == "0x2").then(|| w[3].to_string())
    })
}

/// Memory and descriptors of a process in a guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// init's and lbd's [`ProcStats`], read through the guest's shell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// PID 1.
    pub init: ProcStats,
    /// lbd, if it runs.
    pub lbd: Option<ProcStats>,
    /// lbd's pid.
    pub lbd_pid: Option<u32>,
}

/// A balancer of the pair: the guest with its shell.
pub struct Balancer {
    /// Its identity in the lab.
    pub member: Member,
    /// The guest and its shell.
    pub guest: ShellGuest,
}

impl Balancer {
    /// Boots `m` from `image` on its tap, fetching its config by MAC every 100 ms (the reload
    /// storm changes it every 200 ms).
    pub fn boot(lab: &Lab, image: &Image, m: Member, boot: Duration) -> Result<Balancer, String> {
        let mut builder =
            ApplianceBuilder::new(format!("chaos-{}", m.name)).nic(Nic::tap(m.tap, m.mac));
        if lab.setup.layout == Layout::Nat {
            builder = builder.nic(Nic::tap(m.inside_tap, m.inside_mac));
        }
        let guest = boot_image_with_shell(
            image,
            builder
                .vcpus(lab.setup.vcpus)
                .netns(&lab.ns)
                .append(format!(
                    "ip={}::{SERVER}:255.255.255.0:{}:eth0:off",
                    m.addr, m.name
                ))
                .config_url(format!(
                    "http://{SERVER}:{CONFIG_PORT}/${{mac_hyphen}}.toml"
                ))
                .poll("100ms"),
            boot,
        )?;
        Ok(Balancer { member: m, guest })
    }

    /// The shell.
    pub fn shell(&mut self) -> &mut GuestShell {
        &mut self.guest.shell
    }

    /// Runs `command` in the guest's shell; its output. Tried up to three times: a guest whose
    /// CPU was saturated can lose characters of a command on its serial line (and init
    /// restarts a shell that exits), so a lost command is sent again.
    pub fn sh(&mut self, command: &str) -> Result<String, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match self.shell().run(command, SHELL_TRY) {
                Ok(out) => return Ok(out),
                // Only a command that never answered is sent again: one that ran and failed
                // (or half ran) must not run twice.
                Err(e @ crate::ipvs::ShellError::Timeout { .. }) => last = e.to_string(),
                Err(e) => return Err(format!("{}: {e}", self.member.name)),
            }
        }
        Err(format!("{}: {last}", self.member.name))
    }

    /// init's and lbd's memory and descriptors.
    pub fn stats(&mut self) -> Result<GuestStats, String> {
        // Descriptors: the fewest of five looks 200 ms apart, so health-check sockets in flight
        // (three reals checked every second) do not read as growth.
        let out = self.sh(
            "for p in 1 $(pidof lbd); do m=100000; for i in 1 2 3 4 5; do n=$(ls /proc/$p/fd | wc -l); [ $n -lt $m ] && m=$n; sleep 0.2; done; echo \"$p $(awk '/^VmRSS:/ {print $2}' /proc/$p/status) $m\"; done",
        )?;
        Ok(parse_stats(&out))
    }

    /// `kill -9` of lbd; its pid, if it ran.
    pub fn kill_lbd(&mut self) -> Result<Option<u32>, String> {
        let out = self.sh("p=$(pidof lbd) && kill -9 $p && echo $p")?;
        Ok(out.trim().parse().ok())
    }

    /// Whether the VIP is on its eth0 (as the guest sees it).
    pub fn holds_vip(&mut self) -> Result<bool, String> {
        let out = self.sh("ip -4 addr show dev eth0")?;
        Ok(out.contains(&format!("inet {VIP}/32")))
    }

    /// The console lines printed since `from` (an index from [`Balancer::console_len`]).
    pub fn console_since(&self, from: usize) -> Vec<String> {
        self.guest
            .guest
            .console()
            .lines()
            .split_off(from.min(self.console_len()))
    }

    /// How many console lines there are so far.
    pub fn console_len(&self) -> usize {
        self.guest.guest.console().lines().len()
    }
}

/// Parses `PID RSS FDS` lines, PID 1 first.
fn parse_stats(out: &str) -> GuestStats {
    let mut stats = GuestStats::default();
    for line in out.lines() {
        let w: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [pid, rss_kib, fds] = w[..] else { continue };
        let p = ProcStats { rss_kib, fds };
        if pid == 1 {
            stats.init = p;
        } else {
            stats.lbd = Some(p);
            stats.lbd_pid = Some(pid as u32);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_parse() {
        let s = parse_stats("1 4552 12\n81 9000 23\n");
        assert_eq!(
            s.init,
            ProcStats {
                rss_kib: 4552,
                fds: 12
            }
        );
        assert_eq!(
            s.lbd,
            Some(ProcStats {
                rss_kib: 9000,
                fds: 23
            })
        );
        assert_eq!(s.lbd_pid, Some(81));
        assert_eq!(parse_stats("1 4552 12\n").lbd, None);
    }

    #[test]
    fn arp_entries_parse() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.72.0.100      0x1         0x2         52:54:00:72:00:11     *        eth0\n\
                 10.72.0.21       0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(arp_entry(t, VIP).as_deref(), Some("52:54:00:72:00:11"));
        assert_eq!(arp_entry(t, REALS[0].addr), None);
        assert_eq!(
            neigh6_entry("fd72::100 lladdr 52:54:00:72:00:12 STALE\n").as_deref(),
            Some("52:54:00:72:00:12")
        );
        assert_eq!(neigh6_entry("fd72::100  FAILED\n"), None);
        assert_eq!(neigh6_entry(""), None);
    }

    #[test]
    fn configs_differ_by_serial_and_services() {
        let a = config_text(&MEMBERS[0], 1, &Services::default(), Layout::Dr);
        assert!(a.contains("serial = 1\nnode = \"52:54:00:72:00:11\""));
        assert!(a.contains("priority = 150"));
        assert_eq!(a.matches("[[service.web.real]]").count(), 2);
        assert!(!a.contains("[network") && !a.contains("VI_IN"));
        let k = keepalived_conf(&MEMBERS[1], &Services::default(), Layout::Dr);
        assert!(k.contains("virtual_router_id 72") && k.contains("priority 100"));
        assert!(k.contains("10.72.0.100/32 dev eth0"));
        assert!(k.contains("lvs_sync_daemon eth0 VI_1 id 72"));
        assert_eq!(k.matches("real_server").count(), 4);
        assert_eq!(k.matches("HTTP_GET").count(), 2);
        assert_eq!(k.matches('{').count(), k.matches('}').count());
        let idle = config_with_priority(
            &MEMBERS[0],
            150,
            1,
            &Services::default(),
            VrrpBy::Keepalived,
            Layout::Dr,
        );
        assert!(!idle.contains("[vrrp") && !idle.contains("[service") && !idle.contains("[ipvs"));
        let b = config_text(&MEMBERS[0], 2, &Services::storm_alternate(), Layout::Dr);
        assert_eq!(b.matches("[[service.echo.real]]").count(), 3);
        assert!(b.contains("address = \"10.72.0.23\"\nweight = 1"));
    }

    #[test]
    fn the_nat_layout_adds_the_inside_link_and_the_gateway_to_the_group() {
        let a = config_text(&MEMBERS[1], 1, &Services::default(), Layout::Nat);
        assert!(a.contains("[network.link.eth1]\naddresses = [\"10.73.0.12/24\"]"));
        assert!(a.contains("[network.link.eth0]\naddresses = [\"10.72.0.12/24\"]"));
        assert!(a.contains("interface = \"eth1\"\nvrid = 75\npriority = 100"));
        assert!(a.contains("vips = [\"10.73.0.1/24\"]"));
        assert!(a.contains("instances = [\"VI_1\", \"VI_U\", \"VI_6\", \"VI_IN\"]"));
        assert_eq!(a.matches("forwarding = \"nat\"").count(), 2);
        assert!(!a.contains("forwarding = \"dr\""));
        assert!(a.contains("address = \"10.73.0.21\"") && !a.contains("10.72.0.21"));
        let k = keepalived_conf(&MEMBERS[0], &Services::default(), Layout::Nat);
        assert!(k.contains("virtual_router_id 75") && k.contains("10.73.0.1/24 dev eth1"));
        assert!(k.contains("vrrp_sync_group PAIR"));
        assert_eq!(k.matches("lb_kind NAT").count(), 2);
        assert!(k.contains("real_server 10.73.0.22 80"));
        assert_eq!(k.matches('{').count(), k.matches('}').count());
        // keepalived's node config still names the inside address (init applies it).
        let idle = config_with_priority(
            &MEMBERS[0],
            150,
            1,
            &Services::default(),
            VrrpBy::Keepalived,
            Layout::Nat,
        );
        assert!(idle.contains("10.73.0.11/24") && !idle.contains("[vrrp"));
        assert_eq!(Layout::parse("nat"), Some(Layout::Nat));
        assert_eq!(Layout::parse("dr"), Some(Layout::Dr));
        assert_eq!(Layout::parse("tun"), None);
    }
}
