//! Value types of the config language: each parses from the text an operator writes and says
//! what would be right when it cannot. `toml` attaches the value's line and column to these
//! errors, so a bad scheduler name or port is reported where it was written.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Implements `Deserialize` through `FromStr` so the parse error becomes a spanned toml error.
macro_rules! deserialize_via_from_str {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// A duration written with units: `"250ms"`, `"5s"`, `"1m30s"`, `"2h"`, `"1d"`.
///
/// Bare numbers are refused: whether `5` means seconds or centiseconds depends on who wrote
/// the config, and that ambiguity is how keepalived users get 100x intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for ConfigDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let bad = || {
            format!(
                "invalid duration {s:?}: write a number with a unit, e.g. \"250ms\", \"5s\", \"1m30s\", \"2h\" (units: ms, s, m, h, d)"
            )
        };
        if text.is_empty() {
            return Err(bad());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(value),
                "s" => Duration::from_secs(value),
                "m" | "min" => Duration::from_secs(value.saturating_mul(60)),
                "h" => Duration::from_secs(value.saturating_mul(3600)),
                "d" => Duration::from_secs(value.saturating_mul(86400)),
                _ => return Err(bad()),
            };
            total = total.saturating_add(part);
        }
        Ok(ConfigDuration(total))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, like \"5s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ConfigDuration, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ConfigDuration, E> {
                Err(E::custom(format!(
                    "a bare number is ambiguous for a duration: write \"{n}s\" or \"{n}ms\""
                )))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ConfigDuration, E> {
                self.visit_i64(n as i64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<ConfigDuration, E> {
                Err(E::custom(format!(
                    "a bare number is ambiguous for a duration: write \"{}ms\"",
                    (n * 1000.0).round()
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 || ms == 0 {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// IPVS schedulers, as the kernel names them (`ip_vs_<name>` modules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Mh,
    Fo,
    Ovf,
}

impl Scheduler {
    pub const ALL: [Scheduler; 13] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Mh,
        Scheduler::Fo,
        Scheduler::Ovf,
    ];

    /// The name the kernel uses (IPVS_SVC_ATTR_SCHED_NAME).
    pub fn kernel_name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
        }
    }

    /// Whether the scheduler takes real-server weights into account.
    pub fn uses_weights(self) -> bool {
        !matches!(
            self,
            Scheduler::Rr | Scheduler::Lc | Scheduler::Dh | Scheduler::Sh
        )
    }
}

impl FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        Scheduler::ALL
            .into_iter()
            .find(|x| x.kernel_name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Scheduler::ALL.iter().map(|x| x.kernel_name()).collect();
                format!("unknown scheduler {s:?}: use one of {}", names.join(", "))
            })
    }
}
deserialize_via_from_str!(Scheduler, "an IPVS scheduler name such as \"wlc\"");

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.kernel_name())
    }
}

/// How IPVS forwards packets to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Masquerading: destination NAT; replies must come back through the balancer.
    Nat,
    /// Direct routing ("gatewaying"): the real holds the VIP on a non-ARPing interface.
    Dr,
    /// IP-in-IP tunnelling.
    Tun,
}

impl FromStr for Forwarding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "nat" | "masq" | "masquerade" => Ok(Forwarding::Nat),
            "dr" | "gate" | "direct" | "route" => Ok(Forwarding::Dr),
            "tun" | "ipip" | "tunnel" => Ok(Forwarding::Tun),
            _ => Err(format!(
                "unknown forwarding method {s:?}: use \"nat\" (masquerading), \"dr\" (direct routing) or \"tun\" (IP-in-IP)"
            )),
        }
    }
}
deserialize_via_from_str!(Forwarding, "a forwarding method: nat, dr or tun");

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tun => "tun",
        })
    }
}

/// Transport protocol of an address-based virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(format!(
                "unknown protocol {s:?}: use \"tcp\", \"udp\" or \"sctp\""
            )),
        }
    }
}
deserialize_via_from_str!(Protocol, "tcp, udp or sctp");

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn max_prefix(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ipv4" | "inet" | "4" => Ok(Family::Ipv4),
            "ipv6" | "inet6" | "6" => Ok(Family::Ipv6),
            _ => Err(format!(
                "unknown address family {s:?}: use \"ipv4\" or \"ipv6\""
            )),
        }
    }
}
deserialize_via_from_str!(Family, "ipv4 or ipv6");

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// An IP address with an optional port: `"192.0.2.10:80"`, `"[2001:db8::1]:443"`,
/// `"192.0.2.10"`, `"2001:db8::1"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl Endpoint {
    pub fn socket_addr(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(default_port))
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, String> {
    let n: u64 = text.parse().map_err(|_| {
        format!("invalid port {text:?} in {whole:?}: a port is a number from 1 to 65535")
    })?;
    if n == 0 || n > 65535 {
        return Err(format!(
            "port {n} in {whole:?} is out of range: a port is a number from 1 to 65535"
        ));
    }
    Ok(n as u16)
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| {
                format!("invalid address {s:?}: missing ']' (IPv6 with a port is written \"[2001:db8::1]:80\")")
            })?;
            let ip: Ipv6Addr = host
                .parse()
                .map_err(|_| format!("invalid IPv6 address {host:?} in {s:?}"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(
                    p.strip_prefix(':').ok_or_else(|| {
                        format!("invalid address {s:?}: expected ':' and a port after ']'")
                    })?,
                    s,
                )?),
            };
            return Ok(Endpoint {
                ip: IpAddr::V6(ip),
                port,
            });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Endpoint { ip, port: None });
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                let ip: Ipv4Addr = host.parse().map_err(|_| {
                    format!("invalid address {s:?}: {host:?} is not an IPv4 address (host names are not resolved)")
                })?;
                Ok(Endpoint {
                    ip: IpAddr::V4(ip),
                    port: Some(parse_port(port, s)?),
                })
            }
            _ => Err(format!(
                "invalid address {s:?}: write \"192.0.2.10\", \"192.0.2.10:80\" or \"[2001:db8::10]:80\" (host names are not resolved)"
            )),
        }
    }
}
deserialize_via_from_str!(Endpoint, "an address like \"192.0.2.10:80\"");

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (self.ip, self.port) {
            (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
            (ip, Some(p)) => write!(f, "{ip}:{p}"),
            (ip, None) => write!(f, "{ip}"),
        }
    }
}

/// An address with a prefix length, `"192.0.2.10/24"`; a bare address means a host route
/// (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl FromStr for IpPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text.trim().parse().map_err(|_| {
            format!("invalid address {addr_text:?}: write \"192.0.2.10/24\" or \"2001:db8::10/64\"")
        })?;
        let max = Family::of(&addr).max_prefix();
        let prefix_len = match len_text {
            None => max,
            Some(l) => match l.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "invalid prefix length {l:?} in {s:?}: use 0 to {max} for an {} address",
                        Family::of(&addr)
                    ))
                }
            },
        };
        Ok(IpPrefix { addr, prefix_len })
    }
}
impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
deserialize_via_from_str!(
    IpPrefix,
    "an address with prefix length like \"192.0.2.10/24\""
);

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Persistence netmask: a prefix length (`24`, or `"/24"`) or an IPv4 dotted mask
/// (`"255.255.255.0"`). Stored as a prefix length; clients in the same prefix share a real.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixLen {
    pub len: u8,
    /// Written as a dotted IPv4 mask, which means nothing for an IPv6 service.
    pub dotted: bool,
}

fn prefix_from_dotted(s: &str) -> Result<u8, String> {
    let mask: Ipv4Addr = s.parse().map_err(|_| {
        format!("invalid netmask {s:?}: write \"255.255.255.0\" or a prefix length such as 24")
    })?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        return Err(format!(
            "netmask {s:?} is not contiguous: write a mask like \"255.255.255.0\""
        ));
    }
    Ok(len as u8)
}

impl<'de> Deserialize<'de> for PrefixLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PrefixLen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prefix length (24) or a netmask (\"255.255.255.0\")")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PrefixLen, E> {
                if (0..=128).contains(&n) {
                    Ok(PrefixLen {
                        len: n as u8,
                        dotted: false,
                    })
                } else {
                    Err(E::custom(format!(
                        "prefix length {n} is out of range: use 0 to 32 (IPv4) or 0 to 128 (IPv6)"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PrefixLen, E> {
                self.visit_i64(n.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PrefixLen, E> {
                if let Some(rest) = s.strip_prefix('/') {
                    let n: i64 = rest.parse().map_err(|_| {
                        E::custom(format!("invalid prefix length {s:?}: write 24 or \"/24\""))
                    })?;
                    return self.visit_i64(n);
                }
                prefix_from_dotted(s)
                    .map(|len| PrefixLen { len, dotted: true })
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Inclusive range of acceptable HTTP status codes: `200`, `"200"`, `"200-299"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

fn parse_status(s: &str, whole: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid HTTP status {whole:?}: use a code from 100 to 599 or a range like \"200-299\""
        )),
    }
}

impl FromStr for StatusRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (low, high) = match s.split_once('-') {
            Some((a, b)) => (parse_status(a, s)?, parse_status(b, s)?),
            None => {
                let n = parse_status(s, s)?;
                (n, n)
            }
        };
        if low > high {
            return Err(format!(
                "invalid status range {s:?}: the low end comes first"
            ));
        }
        Ok(StatusRange { low, high })
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an HTTP status (200) or range (\"200-299\")")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusRange, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusRange, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusRange, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `expect_status`: a list of statuses and ranges, or one of them written alone (`200`,
/// `"200-299"`), which is read as a one-item list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusList(pub Vec<StatusRange>);

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("HTTP statuses and ranges: 200, \"200-299\" or [200, \"301-302\"]")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusList, E> {
                n.to_string()
                    .parse()
                    .map(|r| StatusList(vec![r]))
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusList, E> {
                self.visit_i64(n.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusList, E> {
                s.parse().map(|r| StatusList(vec![r])).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StatusList, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element::<StatusRange>()? {
                    out.push(r);
                }
                Ok(StatusList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "unknown log level {s:?}: use error, warn, info, debug or trace"
            )),
        }
    }
}
deserialize_via_from_str!(LogLevel, "a log level");

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// IPVS service flags an operator can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceFlag {
    /// `sh` / `mh`: pick another real when the hashed one is unavailable (weight 0).
    ShFallback,
    /// `sh` / `mh`: include the source port in the hash.
    ShPort,
    /// UDP: schedule every datagram independently (one-packet scheduling, "ops").
    OnePacket,
}

impl FromStr for ServiceFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "sh-fallback" | "mh-fallback" => Ok(ServiceFlag::ShFallback),
            "sh-port" | "mh-port" => Ok(ServiceFlag::ShPort),
            "one-packet" | "ops" => Ok(ServiceFlag::OnePacket),
            _ => Err(format!(
                "unknown service flag {s:?}: use \"sh-fallback\", \"sh-port\" or \"one-packet\""
            )),
        }
    }
}
deserialize_via_from_str!(ServiceFlag, "a service flag");

/// What a failed health check does to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Set the weight to 0: no new connections, established ones continue
    /// (keepalived `inhibit_on_failure`, ldirectord `quiescent = yes`).
    #[default]
    Inhibit,
    /// Remove the real from the kernel table (ldirectord `quiescent = no`).
    Remove,
}

impl FromStr for OnFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "inhibit" | "quiescent" | "weight0" => Ok(OnFailure::Inhibit),
            "remove" => Ok(OnFailure::Remove),
            _ => Err(format!(
                "unknown on_failure {s:?}: use \"inhibit\" (weight 0, keeps established connections) or \"remove\""
            )),
        }
    }
}
deserialize_via_from_str!(OnFailure, "inhibit or remove");

/// What lbd does with kernel IPVS entries that no config service owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnmanagedPolicy {
    /// Leave them alone (another tool may own them).
    #[default]
    Keep,
    /// Delete them: lbd owns the whole table.
    Remove,
}

impl FromStr for UnmanagedPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "keep" => Ok(UnmanagedPolicy::Keep),
            "remove" => Ok(UnmanagedPolicy::Remove),
            _ => Err(format!(
                "unknown policy {s:?}: use \"keep\" (leave entries this config does not own) or \"remove\""
            )),
        }
    }
}
deserialize_via_from_str!(UnmanagedPolicy, "keep or remove");

/// Kinds of health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    Tcp,
    Http,
    Https,
    Udp,
    Dns,
    Smtp,
    Exec,
    Mysql,
    Pgsql,
    /// No check: the real is always considered up.
    None,
}

impl CheckType {
    pub const ALL: [CheckType; 10] = [
        CheckType::Tcp,
        CheckType::Http,
        CheckType::Https,
        CheckType::Udp,
        CheckType::Dns,
        CheckType::Smtp,
        CheckType::Exec,
        CheckType::Mysql,
        CheckType::Pgsql,
        CheckType::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Https => "https",
            CheckType::Udp => "udp",
            CheckType::Dns => "dns",
            CheckType::Smtp => "smtp",
            CheckType::Exec => "exec",
            CheckType::Mysql => "mysql",
            CheckType::Pgsql => "pgsql",
            CheckType::None => "none",
        }
    }
}

impl FromStr for CheckType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "connect" => "tcp",
            "postgresql" | "postgres" => "pgsql",
            "external" | "misc" => "exec",
            other => other,
        };
        CheckType::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| {
                let names: Vec<&str> = CheckType::ALL.iter().map(|t| t.name()).collect();
                format!("unknown check type {s:?}: use one of {}", names.join(", "))
            })
    }
}
deserialize_via_from_str!(CheckType, "a check type such as \"http\"");

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A secret from the config (a check's password): used by the checker, never shown. `Debug`
/// and `Serialize` print a placeholder, so `lbd check --dump`, the control API and logs built
/// from the model cannot leak it; equality still compares the text, so a changed password is
/// a changed check.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` and `Serialize` print instead of the secret.
    pub const REDACTED: &'static str = "<redacted>";

    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the code that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Secret({})", Secret::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Secret::REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        let s = Secret::new("hunter2");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_ne!(s, Secret::new("hunter3"));
    }

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<ConfigDuration>().map(|d| d.0);
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(d("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert!(d("5").is_err());
        assert!(d("s").is_err());
        assert!(d("5 parsecs").is_err());
        assert!(d("").is_err());
        assert_eq!(
            ConfigDuration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
        assert_eq!(ConfigDuration(Duration::from_secs(3)).to_string(), "3s");
    }

    #[test]
    fn endpoints() {
        let e = |s: &str| s.parse::<Endpoint>();
        assert_eq!(e("192.0.2.1:80").unwrap().to_string(), "192.0.2.1:80");
        assert_eq!(e("192.0.2.1").unwrap().port, None);
        assert_eq!(e("[2001:db8::1]:443").unwrap().port, Some(443));
        assert_eq!(e("2001:db8::1").unwrap().port, None);
        assert!(e("192.0.2.1:70000").unwrap_err().contains("out of range"));
        assert!(e("192.0.2.1:0").unwrap_err().contains("out of range"));
        assert!(e("web1:80").unwrap_err().contains("not resolved"));
        assert!(e("[2001:db8::1").is_err());
    }

    #[test]
    fn prefixes_and_masks() {
        assert_eq!("192.0.2.10/24".parse::<IpPrefix>().unwrap().prefix_len, 24);
        assert_eq!("192.0.2.10".parse::<IpPrefix>().unwrap().prefix_len, 32);
        assert_eq!("2001:db8::1".parse::<IpPrefix>().unwrap().prefix_len, 128);
        assert!("192.0.2.10/33".parse::<IpPrefix>().is_err());
        assert_eq!(prefix_from_dotted("255.255.255.0"), Ok(24));
        assert_eq!(prefix_from_dotted("255.255.255.255"), Ok(32));
        assert_eq!(prefix_from_dotted("0.0.0.0"), Ok(0));
        assert!(prefix_from_dotted("255.0.255.0").is_err());
    }

    #[test]
    fn names() {
        assert_eq!("WLC".parse::<Scheduler>(), Ok(Scheduler::Wlc));
        let err = "wlcx".parse::<Scheduler>().unwrap_err();
        assert!(err.contains("rr, wrr, lc, wlc"), "{err}");
        assert_eq!("gate".parse::<Forwarding>(), Ok(Forwarding::Dr));
        assert_eq!("masq".parse::<Forwarding>(), Ok(Forwarding::Nat));
        assert_eq!("ipip".parse::<Forwarding>(), Ok(Forwarding::Tun));
        assert_eq!("200-299".parse::<StatusRange>().unwrap().high, 299);
        assert!("299-200".parse::<StatusRange>().is_err());
        assert!("700".parse::<StatusRange>().is_err());
    }
}
