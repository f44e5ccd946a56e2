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

mod balancer;
mod config;
mod faults;
mod keepalived;
mod neigh;
mod network;
mod publish;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config_server::ConfigServer;
use crate::netns::Netns;
use crate::process::ChildGuard;
use crate::qemu::MacAddr;
use crate::wire::Observer;

pub use balancer::{Balancer, GuestStats, ProcStats};
pub use config::{config_file, config_text, config_with_priority};
pub use keepalived::keepalived_conf;
pub use neigh::{NeighChange, NeighWatch};

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
/// The failover test's reals run it too.
pub const REAL_SERVER: &str = r#"
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
