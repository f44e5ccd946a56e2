//! The TOML schema, as written by operators: serde types with spans, no semantics.
//!
//! Each top-level item (a service, a VRRP instance, a check...) is deserialized on its own so
//! one mistake does not hide the others. `validate` turns these into the domain model.

use super::types::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[node]`: settings of the box itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSchema {
    /// Host name; when absent init uses DHCP's or the kernel command line's.
    pub hostname: Option<Spanned<String>>,
    pub log_level: Option<LogLevel>,
    /// Extra sysctls applied by init before lbd starts (`"net.ipv4.vs.conntrack" = "1"`).
    #[serde(default)]
    pub sysctl: BTreeMap<Spanned<String>, Spanned<SysctlValue>>,
    /// Remote syslog collector (RFC 5424).
    pub syslog: Option<SyslogSchema>,
    /// Control API listener on a management address (`"192.0.2.2:9900"`), mutual TLS only;
    /// the Unix socket is always there.
    pub api_listen: Option<Spanned<Endpoint>>,
    /// `[node.api]`: who may do what through the control API.
    pub api: Option<ApiSchema>,
    /// SCHED_FIFO priority of lbd's VRRP thread (0: none).
    pub vrrp_realtime_priority: Option<Spanned<i64>>,
}

/// `[release]`: what a (signed) config says of itself: which node it is for, its serial,
/// and until when it may be applied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSchema {
    pub serial: Spanned<i64>,
    pub node: Spanned<String>,
    pub not_after: Option<Spanned<toml::value::Datetime>>,
}

/// A sysctl value: written as a string, integer or boolean.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SysctlValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl SysctlValue {
    pub fn render(&self) -> String {
        match self {
            SysctlValue::Text(s) => s.clone(),
            SysctlValue::Int(n) => n.to_string(),
            SysctlValue::Bool(b) => u8::from(*b).to_string(),
        }
    }
}

/// `[node.api]`: roles of the control API's callers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSchema {
    /// The role of a caller no entry names (default `reader`; `none` refuses it).
    pub default_role: Option<Spanned<Role>>,
    /// Unix socket: the caller's uid (a number) → role.
    #[serde(default)]
    pub uid: BTreeMap<Spanned<String>, Spanned<Role>>,
    /// Unix socket: the caller's primary gid (a number) → role.
    #[serde(default)]
    pub gid: BTreeMap<Spanned<String>, Spanned<Role>>,
    /// `[node.api.tls]`: required with `api_listen`.
    pub tls: Option<ApiTlsSchema>,
}

/// `[node.api.tls]`: the TCP listener's certificate and the clients it accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsSchema {
    /// lbd's certificate chain as PEM text, its own certificate first.
    pub cert_pem: Spanned<String>,
    /// Its private key as PEM text.
    pub key_pem: Spanned<String>,
    /// The CA certificate(s) that sign the clients' certificates, PEM.
    pub client_ca_pem: Spanned<String>,
    /// A name of a client certificate (subject CN, or a DNS, email or URI subject alternative
    /// name) → role.
    #[serde(default)]
    pub clients: BTreeMap<Spanned<String>, Spanned<Role>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSchema {
    pub server: Spanned<Endpoint>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
}

/// `[ipvs]`: kernel-wide IPVS settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpvsSchema {
    /// Policy for kernel entries that no service of this config owns.
    pub unmanaged: Option<UnmanagedPolicy>,
    /// How long a real removed from a service keeps its established connections.
    pub removal_drain: Option<Spanned<ConfigDuration>>,
    pub timeouts: Option<TimeoutsSchema>,
    pub sync: Option<SyncSchema>,
    /// `/proc/sys/net/ipv4/vs/sloppy_tcp`; absent: left as it is.
    pub sloppy_tcp: Option<bool>,
    /// `/proc/sys/net/ipv4/vs/sloppy_sctp`; absent: left as it is.
    pub sloppy_sctp: Option<bool>,
    /// `/proc/sys/net/ipv4/vs/expire_nodest_conn`; absent: on when there are services.
    pub expire_nodest_conn: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSchema {
    pub tcp: Option<Spanned<ConfigDuration>>,
    pub tcp_fin: Option<Spanned<ConfigDuration>>,
    pub udp: Option<Spanned<ConfigDuration>>,
}

/// Connection synchronisation between the pair (the kernel's sync daemon).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSchema {
    pub interface: Spanned<String>,
    pub sync_id: Option<Spanned<i64>>,
    /// VRRP instance or sync group whose state decides master/backup; default: the only one.
    pub follow: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub ttl: Option<Spanned<i64>>,
    pub max_len: Option<Spanned<i64>>,
    /// Multicast group for sync messages (default 224.0.0.81).
    pub group: Option<Spanned<std::net::IpAddr>>,
}

/// `[vrrp.instance.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstanceSchema {
    pub interface: Spanned<String>,
    pub vrid: Spanned<i64>,
    pub priority: Spanned<i64>,
    pub version: Option<Spanned<i64>>,
    pub advert_interval: Option<Spanned<ConfigDuration>>,
    pub vips: Spanned<Vec<Spanned<IpPrefix>>>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<Spanned<ConfigDuration>>,
    #[serde(default)]
    pub unicast_peers: Vec<Spanned<std::net::IpAddr>>,
    pub unicast_source: Option<Spanned<std::net::IpAddr>>,
    /// VRRPv2 simple-password authentication (RFC 2338 compatibility), at most 8 characters.
    pub auth_pass: Option<Spanned<String>>,
    #[serde(default)]
    pub track_interfaces: Vec<Spanned<String>>,
    /// Use the RFC virtual MAC 00:00:5e:00:01:VRID (on a macvlan).
    pub virtual_mac: Option<bool>,
    /// Name of that macvlan (default `vrrp.VRID`, `vrrp6.VRID` for IPv6), like keepalived's
    /// `use_vmac NAME`: needed when one VRID is used on two interfaces.
    pub virtual_mac_interface: Option<Spanned<String>>,
    /// RFC 5798 Accept_Mode: the master answers packets addressed to the VIPs.
    pub accept: Option<Spanned<bool>>,
    /// Gratuitous ARP / unsolicited NA burst on takeover.
    pub garp_count: Option<Spanned<i64>>,
    pub garp_repeat_after: Option<Spanned<ConfigDuration>>,
    /// Lower this node's priority by this much while a service's quorum is lost.
    pub quorum_priority_drop: Option<Spanned<i64>>,
}

/// `[vrrp.sync_group.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroupSchema {
    pub instances: Spanned<Vec<Spanned<String>>>,
}

/// A health-check definition: `[check.NAME]` templates, inline `check = { ... }` on a service,
/// and per-real overrides where every field is optional and replaces the service's.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSchema {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<CheckType>>,
    pub interval: Option<Spanned<ConfigDuration>>,
    pub timeout: Option<Spanned<ConfigDuration>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub retry_delay: Option<Spanned<ConfigDuration>>,
    pub warmup: Option<Spanned<ConfigDuration>>,
    pub jitter: Option<Spanned<ConfigDuration>>,
    /// Connect here instead of the real's own port / address.
    pub port: Option<Spanned<i64>>,
    pub connect_address: Option<Spanned<std::net::IpAddr>>,
    pub source_address: Option<Spanned<std::net::IpAddr>>,
    // tcp
    /// A SYN and its answer instead of a whole connection.
    pub half_open: Option<Spanned<bool>>,
    // http / https
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub sni: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<StatusList>>,
    pub expect_body: Option<Spanned<String>>,
    pub expect_body_regex: Option<Spanned<String>>,
    pub digest: Option<Spanned<String>>,
    pub tls_verify: Option<Spanned<bool>>,
    /// PEM text of the CA certificate(s) that sign the reals' certificates (implies
    /// `tls_verify`); inline because the appliance has no files of its own.
    pub ca_pem: Option<Spanned<String>>,
    /// Keep the connection from one run to the next (HTTP/1.1 keep-alive).
    pub keep_alive: Option<Spanned<bool>>,
    // udp
    pub payload: Option<Spanned<String>>,
    /// The payload as hexadecimal digits, for binary protocols (instead of `payload`).
    pub payload_hex: Option<Spanned<String>>,
    pub expect_reply: Option<Spanned<bool>>,
    /// The reply must start with these bytes (hexadecimal); implies `expect_reply`.
    pub expect_hex: Option<Spanned<String>>,
    // dns
    pub query: Option<Spanned<String>>,
    pub query_type: Option<Spanned<String>>,
    // smtp
    pub helo_name: Option<Spanned<String>>,
    // exec
    pub command: Option<Spanned<Vec<String>>>,
    pub weight_from_exit: Option<Spanned<bool>>,
    // mysql / pgsql
    pub user: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub database: Option<Spanned<String>>,
}

/// A check reference: the name of a `[check.NAME]` or an inline definition.
#[derive(Debug, Clone)]
pub enum CheckRef {
    Named(String),
    Inline(Box<CheckSchema>),
}

impl<'de> Deserialize<'de> for CheckRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CheckRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "the name of a [check.NAME] or an inline table such as { type = \"tcp\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<CheckRef, E> {
                Ok(CheckRef::Named(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<CheckRef, A::Error> {
                CheckSchema::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|c| CheckRef::Inline(Box::new(c)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[service.NAME]`, a virtual service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSchema {
    /// `"192.0.2.10:80"` for an address service.
    pub vip: Option<Spanned<Endpoint>>,
    /// Firewall-mark service (marks set by nftables/iptables).
    pub fwmark: Option<Spanned<i64>>,
    /// Family of a firewall-mark service (default ipv4).
    pub family: Option<Spanned<Family>>,
    pub protocol: Option<Spanned<Protocol>>,
    pub scheduler: Option<Spanned<Scheduler>>,
    #[serde(default)]
    pub flags: Vec<Spanned<ServiceFlag>>,
    /// Default forwarding method of the reals.
    pub forwarding: Option<Spanned<Forwarding>>,
    pub persistence: Option<PersistenceSchema>,
    pub sorry_server: Option<Spanned<Endpoint>>,
    pub sorry_forwarding: Option<Spanned<Forwarding>>,
    pub quorum: Option<QuorumSchema>,
    pub on_failure: Option<Spanned<OnFailure>>,
    pub check: Option<Spanned<CheckRef>>,
    /// How the VIP reaches the clients' routers: `vrrp` (a VRRP pair holds it) or `bgp`
    /// (every balancer announces it by BGP, N-way behind ECMP).
    pub announce: Option<Spanned<Announce>>,
    // `real` entries are taken out before this table is deserialized and read one by one.
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceSchema {
    pub timeout: Spanned<ConfigDuration>,
    pub netmask: Option<Spanned<PrefixLen>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumSchema {
    /// Minimum total weight of healthy reals.
    pub min_weight: Spanned<i64>,
    /// The quorum is regained at `min_weight + hysteresis` and lost below `min_weight`.
    pub hysteresis: Option<Spanned<i64>>,
}

/// `[[service.NAME.real]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealSchema {
    pub address: Spanned<Endpoint>,
    pub weight: Option<Spanned<i64>>,
    pub forwarding: Option<Spanned<Forwarding>>,
    pub upper_threshold: Option<Spanned<i64>>,
    pub lower_threshold: Option<Spanned<i64>>,
    /// The name of a `[check.NAME]` (used instead of the service's check), or overrides of
    /// single keys of the service's check.
    pub check: Option<Spanned<CheckRef>>,
}

/// `[network]`'s own keys (its links and rules are read one by one, like services).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSchema {
    /// DNS servers for /etc/resolv.conf (glibc and musl read the first three).
    #[serde(default)]
    pub resolvers: Vec<Spanned<std::net::IpAddr>>,
    #[serde(default)]
    pub search: Vec<Spanned<String>>,
    /// How long a change may leave the config source unreachable before init undoes it.
    pub confirm_timeout: Option<Spanned<ConfigDuration>>,
}

/// `[network.link.NAME]`: one link. The keys of each kind sit side by side, like a check's;
/// validation refuses those of another kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSchema {
    /// `ethernet` (the default), `bond` or `vlan`.
    pub kind: Option<Spanned<String>>,
    /// Ethernet: which NIC this is when its kernel name is not NAME.
    #[serde(rename = "match")]
    pub matches: Option<Spanned<MatchSchema>>,
    pub mtu: Option<Spanned<i64>>,
    #[serde(default)]
    pub addresses: Vec<Spanned<IpPrefix>>,
    pub dhcp: Option<Spanned<bool>>,
    #[serde(default)]
    pub route: Vec<Spanned<RouteSchema>>,
    // Bond.
    pub members: Option<Spanned<Vec<Spanned<String>>>>,
    pub mode: Option<Spanned<String>>,
    pub miimon: Option<Spanned<ConfigDuration>>,
    pub lacp_rate: Option<Spanned<String>>,
    pub xmit_hash_policy: Option<Spanned<String>>,
    pub min_links: Option<Spanned<i64>>,
    pub updelay: Option<Spanned<ConfigDuration>>,
    pub downdelay: Option<Spanned<ConfigDuration>>,
    pub primary: Option<Spanned<String>>,
    // VLAN.
    pub parent: Option<Spanned<String>>,
    pub id: Option<Spanned<i64>>,
}

/// `match = { mac = "...", driver = "...", path = "...", name = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSchema {
    pub mac: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
}

/// `[[network.link.NAME.route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSchema {
    /// `"default"` or a prefix.
    pub to: Spanned<String>,
    pub via: Option<Spanned<std::net::IpAddr>>,
    pub metric: Option<Spanned<i64>>,
    pub table: Option<Spanned<i64>>,
    pub source: Option<Spanned<std::net::IpAddr>>,
}

/// `[[network.rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSchema {
    pub from: Option<Spanned<IpPrefix>>,
    pub to: Option<Spanned<IpPrefix>>,
    pub table: Spanned<i64>,
    pub priority: Option<Spanned<i64>>,
}

/// `[bgp]`'s own keys (its peers are read one by one, like services).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSchema {
    /// This node's AS number.
    pub local_as: Option<Spanned<i64>>,
    /// The BGP router id (an IPv4 address).
    pub router_id: Option<Spanned<std::net::Ipv4Addr>>,
    pub hold_time: Option<Spanned<ConfigDuration>>,
    pub bfd: Option<Spanned<bool>>,
    pub bfd_interval: Option<Spanned<ConfigDuration>>,
    pub bfd_multiplier: Option<Spanned<i64>>,
    pub watchdog: Option<Spanned<ConfigDuration>>,
}

/// `[bgp.peer.NAME]`: one BGP neighbour (a router).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpPeerSchema {
    pub address: Spanned<std::net::IpAddr>,
    pub remote_as: Spanned<i64>,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<Spanned<String>>,
    pub hold_time: Option<Spanned<ConfigDuration>>,
    pub bfd: Option<Spanned<bool>>,
    pub source_address: Option<Spanned<std::net::IpAddr>>,
    /// The peer is this many hops away (eBGP multihop TTL).
    pub multihop: Option<Spanned<i64>>,
}
