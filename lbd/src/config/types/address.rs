//! Addresses, endpoints, prefixes and persistence masks.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

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

/// `a.b.c.d` or `a.b.c.d:port` written plainly (nearly every real of a large file): the
/// endpoint the general parser gives, read in one pass. `None` for anything else, which the
/// general parser then reads (and explains, when it is wrong).
fn plain_ipv4(s: &[u8]) -> Option<Endpoint> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            (s.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        let digits = s[i..]
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        // One to three digits, no leading zero (as `Ipv4Addr`'s parser wants).
        if digits == 0 || digits > 3 || (digits > 1 && s[i] == b'0') {
            return None;
        }
        let value = s[i..i + digits]
            .iter()
            .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
        i += digits;
    }
    let ip = IpAddr::V4(Ipv4Addr::from(octets));
    let port = match &s[i..] {
        [] => None,
        [b':', port @ ..] if (1..=5).contains(&port.len()) => {
            let mut value = 0u32;
            for d in port {
                d.is_ascii_digit().then_some(())?;
                value = value * 10 + u32::from(d - b'0');
            }
            Some(u16::try_from(value).ok().filter(|&p| p != 0)?)
        }
        _ => return None,
    };
    Some(Endpoint { ip, port })
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match plain_ipv4(s.as_bytes()) {
            Some(e) => Ok(e),
            None => Endpoint::parse_general(s),
        }
    }
}

impl Endpoint {
    /// Every form of endpoint, with the errors.
    fn parse_general(s: &str) -> Result<Endpoint, String> {
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
#[cfg(test)]
#[test]
fn plain_ipv4_reads_as_the_general_parser_does() {
    let mut inputs: Vec<String> = [
        "10.0.0.1",
        "10.0.0.1:80",
        "0.0.0.0:1",
        "255.255.255.255:65535",
        "256.0.0.1:80",
        "01.2.3.4",
        "1.2.3.04:80",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:080",
        "1.2.3.4:+80",
        "1.2.3.4:",
        "1.2.3.4:123456",
        " 1.2.3.4:80",
        "1.2.3.4:80 ",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4:8a",
        "1..3.4",
        "1.2.3.4::80",
        "[::1]:80",
        "::1",
        "1000.2.3.4",
        "a.b.c.d",
        "1.2.3.4#",
        "",
    ]
    .map(String::from)
    .to_vec();
    for a in [
        "0", "1", "9", "10", "99", "100", "199", "255", "256", "00", "09", "999",
    ] {
        for p in ["", ":1", ":65535", ":65536", ":0", ":00080", ":999999"] {
            inputs.push(format!("{a}.1.{a}.2{p}"));
        }
    }
    for s in &inputs {
        if let Some(e) = plain_ipv4(s.as_bytes()) {
            assert_eq!(Endpoint::parse_general(s), Ok(e), "{s:?}");
        }
        assert_eq!(s.parse::<Endpoint>(), Endpoint::parse_general(s), "{s:?}");
    }
    assert!(plain_ipv4(b"10.20.0.1:80").is_some());
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

impl IpPrefix {
    /// The address with its host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// Whether `ip` is in this prefix's subnet (of the same family).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let other = IpPrefix {
            addr: ip,
            prefix_len: self.prefix_len,
        };
        Family::of(&ip) == Family::of(&self.addr) && other.network() == self.network()
    }
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

pub(super) fn prefix_from_dotted(s: &str) -> Result<u8, String> {
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
