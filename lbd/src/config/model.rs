//! The validated config: what the rest of lbd (and init, pxe, lbctl) works with.
//!
//! Every value here has been checked; defaults are filled in; units are `Duration`s.
//! Maps are keyed by the names operators gave, so reconcile and status can refer to them.

use super::types::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A whole validated node config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub node: Node,
    /// `[release]`: the node this config is for, its serial and expiry (signed configs
    /// must have it; init checks it).
    pub release: Option<Release>,
    /// `None` when the config has no `[network]`: the boot network stays as it is.
    pub network: Option<super::network::Network>,
    pub ipvs: IpvsSettings,
    pub vrrp_instances: BTreeMap<String, VrrpInstance>,
    pub sync_groups: BTreeMap<String, SyncGroup>,
    /// `[bgp]`: the BGP speaker's settings and peers; `None` without a `[bgp]` section.
    pub bgp: Option<Bgp>,
    /// Shared between configs: a reload that leaves a service as it was keeps the same `Arc`,
    /// so the reconciler can tell unchanged services apart without comparing them. The map is
    /// shared too: a copy of a config (the loader keeps one of each it accepts) copies no
    /// names; change it with `Arc::make_mut`.
    pub services: Arc<BTreeMap<String, Arc<Service>>>,
    /// Identity of this config: sha256 of its source text. Shown in status and logs.
    pub version: Version,
}

/// Identity of a config: the SHA-256 of its source text, hex, worked out when first asked
/// for. Nothing on the way to the kernel needs it, and hashing a large file costs more than
/// applying a small edit of it (half a megabyte is about 25 ms under emulation, where
/// processors have no SHA instructions). Two versions are equal when their texts are.
#[derive(Clone, Default)]
pub struct Version {
    text: Arc<str>,
    hex: Arc<std::sync::OnceLock<String>>,
}

impl Version {
    /// The version of `text` (shared, not copied).
    pub fn of(text: Arc<str>) -> Version {
        Version {
            text,
            hex: Arc::default(),
        }
    }

    /// The hex SHA-256 of the text.
    pub fn hex(&self) -> &str {
        self.hex.get_or_init(|| {
            use sha2::{Digest, Sha256};
            Sha256::digest(self.text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
    }

    /// Its first 12 hex digits, for log lines.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || self.text == other.text
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.hex())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Version({})", self.hex())
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.hex())
    }
}

/// A secret kept as plain text in the model, serialized as [`Secret::REDACTED`].
fn redact_option<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some(super::types::Secret::REDACTED),
        None => s.serialize_none(),
    }
}

/// What a config says of itself (`[release]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    /// Higher for every new config of a node.
    pub serial: u64,
    /// The node it is for: a MAC address (`52:54:00:12:34:56`) or a host name.
    pub node: String,
    /// Seconds since the epoch after which the config must not be applied.
    pub not_after: Option<u64>,
}

impl Config {
    /// One-line summary for logs: what was loaded.
    pub fn summary(&self) -> String {
        let reals: usize = self.services.values().map(|s| s.reals.len()).sum();
        let vips: usize = self.vrrp_instances.values().map(|v| v.vips.len()).sum();
        format!(
            "{} service{}, {} real{}, {} vrrp instance{} ({} vip{}), {} sync group{}, version {}",
            self.services.len(),
            plural(self.services.len()),
            reals,
            plural(reals),
            self.vrrp_instances.len(),
            plural(self.vrrp_instances.len()),
            vips,
            plural(vips),
            self.sync_groups.len(),
            plural(self.sync_groups.len()),
            self.version.short()
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct Node {
    pub hostname: Option<String>,
    pub log_level: LogLevel,
    /// sysctl name (dotted) → value, applied by init before lbd starts.
    pub sysctls: BTreeMap<String, String>,
    pub syslog: Option<Syslog>,
    /// The control API over TCP, mutual TLS only (`api.tls` is set whenever this is).
    pub api_listen: Option<SocketAddr>,
    /// Who may do what through the control API.
    pub api: ApiAccess,
    /// SCHED_FIFO priority of the VRRP thread, 1–99, or 0 for none; `None`: the default
    /// ([`Node::DEFAULT_VRRP_REALTIME_PRIORITY`]).
    pub vrrp_realtime_priority: Option<u8>,
}

impl Node {
    /// The VRRP thread's real-time priority when the config sets none: above every normal
    /// thread, so adverts and master-down timers keep their times when the cores are busy, and
    /// low among real-time ones (keepalived's `vrrp_rt_priority` is unset by default).
    pub const DEFAULT_VRRP_REALTIME_PRIORITY: u8 = 10;

    /// The priority the VRRP thread runs at (0: not real-time).
    pub fn vrrp_realtime_priority(&self) -> u8 {
        self.vrrp_realtime_priority
            .unwrap_or(Self::DEFAULT_VRRP_REALTIME_PRIORITY)
    }
}

/// Who may do what through the control API (`[node.api]`).
#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct ApiAccess {
    /// The role of a caller that no entry names.
    pub default_role: Role,
    /// Unix socket callers by uid.
    pub uids: BTreeMap<u32, Role>,
    /// Unix socket callers by primary gid.
    pub gids: BTreeMap<u32, Role>,
    /// The TCP listener's TLS (`[node.api.tls]`).
    pub tls: Option<ApiTls>,
}

impl ApiAccess {
    /// The role of a Unix socket caller, from its kernel credentials: its uid's entry, else
    /// admin for root (uid 0), else its gid's entry, else the default.
    pub fn unix_role(&self, uid: u32, gid: u32) -> Role {
        if let Some(r) = self.uids.get(&uid) {
            return *r;
        }
        if uid == 0 {
            return Role::Admin;
        }
        self.gids.get(&gid).copied().unwrap_or(self.default_role)
    }

    /// The role of a TLS client whose (verified) certificate carries `names` (subject CN and
    /// subject alternative names): the highest role any of them has in `clients`, else the
    /// default.
    pub fn tls_role<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Role {
        let Some(tls) = &self.tls else {
            return self.default_role;
        };
        names
            .into_iter()
            .filter_map(|n| tls.clients.get(n).copied())
            .max()
            .unwrap_or(self.default_role)
    }
}

/// The control API's TLS: lbd's certificate and key, and the CA its clients' certificates
/// must chain to. The key is never shown (see [`Secret`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiTls {
    /// lbd's certificate chain, PEM, its own certificate first.
    pub cert_pem: String,
    pub key_pem: Secret,
    /// The CA certificate(s) of the clients, PEM.
    pub client_ca_pem: String,
    /// A certificate name (subject CN or a DNS, email or URI SAN) → role.
    pub clients: BTreeMap<String, Role>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Syslog {
    pub server: SocketAddr,
    pub protocol: SyslogProtocol,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    Udp,
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IpvsSettings {
    pub unmanaged: UnmanagedPolicy,
    /// How long a real the config no longer lists stays in IPVS at weight 0 so its
    /// established connections finish (deleted as soon as it has none); zero deletes at once.
    pub removal_drain: Duration,
    pub timeouts: IpvsTimeouts,
    pub sync: Option<ConnSync>,
    /// `net.ipv4.vs.sloppy_tcp`: let a TCP packet other than a SYN create an IPVS connection
    /// (a balancer that did not see the handshake, behind ECMP). `None`: lbd leaves the
    /// kernel's setting alone.
    pub sloppy_tcp: Option<bool>,
    /// `net.ipv4.vs.sloppy_sctp`: the same for SCTP packets other than an INIT.
    pub sloppy_sctp: Option<bool>,
    /// `net.ipv4.vs.expire_nodest_conn`: a packet of a connection whose real was deleted
    /// expires the entry and is scheduled anew, instead of being dropped for as long as the
    /// entry lives. `None`: left alone (on by default when the config has services).
    pub expire_nodest_conn: Option<bool>,
}

impl IpvsSettings {
    pub const DEFAULT_REMOVAL_DRAIN: Duration = Duration::from_secs(60);
    /// Longer would keep a removed real's entry for days: the timeout bounds a drain.
    pub const MAX_REMOVAL_DRAIN: Duration = Duration::from_secs(86400);
}

impl Default for IpvsSettings {
    fn default() -> Self {
        IpvsSettings {
            unmanaged: UnmanagedPolicy::default(),
            removal_drain: Self::DEFAULT_REMOVAL_DRAIN,
            timeouts: IpvsTimeouts::default(),
            sync: None,
            sloppy_tcp: None,
            sloppy_sctp: None,
            expire_nodest_conn: None,
        }
    }
}

/// IPVS connection timeouts; `None` leaves the kernel's value alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
pub struct IpvsTimeouts {
    pub tcp: Option<Duration>,
    pub tcp_fin: Option<Duration>,
    pub udp: Option<Duration>,
}

/// Connection synchronisation (the kernel's sync daemon), following a VRRP state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnSync {
    pub interface: String,
    pub sync_id: u8,
    /// The VRRP instance or sync group whose master/backup state the sync daemon follows.
    pub follow: String,
    pub port: u16,
    pub ttl: u8,
    pub max_len: Option<u16>,
    pub group: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VrrpVersion {
    V2,
    V3,
}

/// One VRRP virtual router on one interface.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1–254, or 255 when this node owns the addresses.
    pub priority: u8,
    pub version: VrrpVersion,
    pub family: Family,
    pub advert_interval: Duration,
    pub vips: Vec<IpPrefix>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Empty: multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_source: Option<IpAddr>,
    /// VRRPv2's simple password; `--dump` and the API print it redacted.
    #[serde(serialize_with = "redact_option")]
    pub auth_pass: Option<String>,
    pub track_interfaces: Vec<String>,
    /// With the RFC virtual MAC: the name of the macvlan that carries it and the VIPs.
    pub virtual_mac: Option<String>,
    pub accept: bool,
    pub garp_count: u32,
    pub garp_repeat_after: Duration,
    pub quorum_priority_drop: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncGroup {
    pub name: String,
    pub instances: Vec<String>,
}

/// Identity of a virtual service in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: SocketAddr,
    },
    Fwmark {
        mark: u32,
        family: Family,
    },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(&addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol} {addr}"),
            ServiceKey::Fwmark { mark, family } => write!(f, "fwmark {mark} ({family})"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Persistence {
    pub timeout: Duration,
    /// Clients within this prefix length share one real.
    pub prefix_len: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Quorum {
    pub min_weight: u32,
    pub hysteresis: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SorryServer {
    pub addr: SocketAddr,
    pub forwarding: Forwarding,
}

/// A virtual service and its real servers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub flags: BTreeSet<ServiceFlag>,
    pub persistence: Option<Persistence>,
    pub sorry: Option<SorryServer>,
    pub quorum: Option<Quorum>,
    pub on_failure: OnFailure,
    /// The VRRP instance holding the VIP (address services announced by VRRP).
    pub vrrp_instance: Option<String>,
    /// How the VIP reaches the routers: a VRRP pair, or BGP from every balancer (N-way).
    pub announce: Announce,
    pub reals: Vec<Real>,
}

/// `[bgp]`: how lbd's BGP speaker (BIRD) talks to the routers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bgp {
    /// `None` when the config sets none; required (and set) when a service announces by BGP.
    pub local_as: Option<u32>,
    /// `None` when neither set nor found in `[network]`; set when a service announces by BGP.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// BGP hold time, whole seconds: zero (no keepalives) or 3 s to 65535 s.
    pub hold_time: Duration,
    pub bfd: bool,
    /// BFD transmit and receive interval.
    pub bfd_interval: Duration,
    /// BFD detect multiplier: missed packets before the session is down.
    pub bfd_multiplier: u8,
    /// BIRD is killed (every route withdrawn at once) when lbd's daemon loop has not turned
    /// for this long, and the decision withdraws every VIP when the health checks have not.
    pub watchdog: Duration,
    pub peers: BTreeMap<String, BgpPeer>,
}

impl Bgp {
    pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(3);
    pub const DEFAULT_BFD_INTERVAL: Duration = Duration::from_millis(100);
    pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;
    pub const DEFAULT_WATCHDOG: Duration = Duration::from_secs(10);
}

/// `[bgp.peer.NAME]`: a router lbd announces VIPs to.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BgpPeer {
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    /// TCP MD5 password; `--dump` and the API print it redacted.
    #[serde(serialize_with = "redact_option")]
    pub password: Option<String>,
    /// The node's hold time unless the peer sets its own.
    pub hold_time: Duration,
    /// The node's `bfd` unless the peer sets its own.
    pub bfd: bool,
    pub source_address: Option<IpAddr>,
    /// eBGP multihop TTL; `None`: a directly connected peer.
    pub multihop: Option<u8>,
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Real {
    pub addr: SocketAddr,
    pub weight: u32,
    pub forwarding: Forwarding,
    /// Connection limits; 0 = none.
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Shared: the reals of a service nearly always resolve to the same check, and a
    /// `Check` is some 340 bytes, most of a real's size when held inline.
    pub check: Option<Arc<Check>>,
}

/// A fully resolved health check for one real.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before a down real is up.
    pub rise: u32,
    /// Consecutive failures before an up real is down.
    pub fall: u32,
    /// Delay before re-checking after a failure.
    pub retry_delay: Duration,
    /// Delay before the first check after start or reload.
    pub warmup: Duration,
    /// Random spread of each interval, ±jitter/2 around it (so the mean interval stays the
    /// configured one), so thousands of checks do not fire in lock-step.
    pub jitter: Duration,
    pub port: Option<u16>,
    pub connect_address: Option<IpAddr>,
    pub source_address: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    Tcp {
        /// A SYN and its answer (SYN-ACK up, RST refused) instead of a whole connection.
        half_open: bool,
    },
    Http(HttpCheck),
    Https(HttpCheck),
    Udp {
        /// The datagram sent (`payload` text or `payload_hex`), shown as hex.
        #[serde(rename = "payload_hex", serialize_with = "as_hex")]
        payload: Vec<u8>,
        /// A reply is required (`expect_reply`, or implied by `expect_hex`).
        expect_reply: bool,
        /// The reply must start with these bytes (`expect_hex`).
        #[serde(rename = "expect_hex", serialize_with = "option_as_hex")]
        expect_prefix: Option<Vec<u8>>,
    },
    Dns {
        query: String,
        query_type: String,
    },
    Smtp {
        helo_name: String,
    },
    Exec {
        command: Vec<String>,
        weight_from_exit: bool,
    },
    Mysql(SqlLogin),
    Pgsql(SqlLogin),
}

/// The login of a MySQL or PostgreSQL check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SqlLogin {
    /// `None`: log in as `lbd-check`, and "access denied" counts as up (the server answers).
    pub user: Option<String>,
    /// `None`: an empty password. Never shown (see [`Secret`]).
    pub password: Option<Secret>,
    pub database: Option<String>,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&HexBytes(bytes))
}

fn option_as_hex<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.collect_str(&HexBytes(b)),
        None => s.serialize_none(),
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpCheck {
    pub path: String,
    pub host: Option<String>,
    pub sni: Option<String>,
    pub expect_status: Vec<StatusRange>,
    pub expect_body: Option<String>,
    pub expect_body_regex: Option<String>,
    /// keepalived genhash-compatible MD5 of the body, lower-case hex.
    pub digest: Option<String>,
    /// Verify the server's certificate (set by `tls_verify`, or by `ca_pem`).
    pub tls_verify: bool,
    /// PEM text of the CAs to verify against instead of the built-in public roots.
    pub ca_pem: Option<String>,
    /// Keep the connection from one run to the next (plain HTTP only).
    pub keep_alive: bool,
}
