//! VRRP advertisements as types: emit and parse, RFC 3768 (v2) and RFC 5798 (v3). Pure.
//!
//! ```text
//!  v2 (RFC 3768 5.1)                         v3 (RFC 5798 5.1)
//!  0        8        16       24       32     0        8        16       24       32
//!  |Ver|Type| VRID   |Priority|Count   |     |Ver|Type| VRID   |Priority|Count   |
//!  |AuthType|AdvInt s|   Checksum      |     |Rsv|Max Adver Int cs|  Checksum     |
//!  |      IPv4 address (1..n)          |     |  IPv4 or IPv6 address (1..n)     |
//!  |      Authentication data (8 B)    |
//! ```
//!
//! The v2 checksum covers the VRRP message only. The v3 checksum also covers a pseudo-header:
//! RFC 5798 5.2.8 names the IPv6 one (RFC 2460 8.1: source, destination, upper-layer length,
//! next header 112); for IPv4 the IPv4 pseudo-header (source, destination, zero, protocol 112,
//! length) is used, as keepalived, tcpdump and Wireshark do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// TTL / hop limit every VRRP packet is sent with and must arrive with.
pub const TTL: u8 = 255;
/// The IPv4 multicast group of VRRP.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group of VRRP.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Length of the fixed header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer.
pub const AUTH_DATA_LEN: usize = 8;

const TYPE_ADVERTISEMENT: u8 = 1;
const AUTH_NONE: u8 = 0;
const AUTH_SIMPLE: u8 = 1;

/// Protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in whole seconds, authentication fields.
    V2,
    /// RFC 5798: IPv4 or IPv6, interval in centiseconds, pseudo-header checksum.
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl From<crate::config::VrrpVersion> for Version {
    fn from(v: crate::config::VrrpVersion) -> Version {
        match v {
            crate::config::VrrpVersion::V2 => Version::V2,
            crate::config::VrrpVersion::V3 => Version::V3,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// VRRPv2 authentication (RFC 2338 5.3.6; RFC 3768 keeps the fields for compatibility).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    /// Type 0, eight zero bytes.
    None,
    /// Type 1: a clear-text password of up to 8 bytes, padded with zeros.
    Simple([u8; AUTH_DATA_LEN]),
    /// Any other type (2 was IP Authentication Header), kept as received.
    Other { kind: u8, data: [u8; AUTH_DATA_LEN] },
}

impl Auth {
    /// Type 1 with `pass` (cut to 8 bytes, as every implementation does).
    pub fn simple(pass: &str) -> Auth {
        let mut data = [0u8; AUTH_DATA_LEN];
        for (d, b) in data.iter_mut().zip(pass.as_bytes()) {
            *d = *b;
        }
        Auth::Simple(data)
    }

    fn kind(&self) -> u8 {
        match self {
            Auth::None => AUTH_NONE,
            Auth::Simple(_) => AUTH_SIMPLE,
            Auth::Other { kind, .. } => *kind,
        }
    }

    fn data(&self) -> [u8; AUTH_DATA_LEN] {
        match self {
            Auth::None => [0; AUTH_DATA_LEN],
            Auth::Simple(d) | Auth::Other { data: d, .. } => *d,
        }
    }
}

/// One advertisement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    /// 0 = the master stops; 1–254; 255 = address owner.
    pub priority: u8,
    /// v2: whole seconds, 1–255 s. v3: centiseconds, 10 ms – 40.95 s.
    pub interval: Duration,
    /// The virtual addresses, all of one family.
    pub addrs: Vec<IpAddr>,
    /// v2 only; v3 carries none (always [`Auth::None`]).
    pub auth: Auth,
}

/// Why an advertisement cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("VRRP {version} interval {interval:?} is not representable (v2: whole seconds 1-255; v3: multiples of 10ms, 10ms-40.95s)")]
    Interval {
        version: Version,
        interval: Duration,
    },
    #[error("{0} addresses: an advertisement holds 1 to 255")]
    AddressCount(usize),
    #[error("address {addr} is not of the packet's family (source {src})")]
    MixedFamily { addr: IpAddr, src: IpAddr },
    #[error("VRRPv2 carries only IPv4 (source {0})")]
    V2Ipv6(IpAddr),
    #[error("VRRPv3 has no authentication")]
    V3Auth,
}

/// Why received bytes are not a valid advertisement. Each maps to a [`DropReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{len} bytes, shorter than the {HEADER_LEN}-byte VRRP header")]
    TooShort { len: usize },
    #[error("version {0}, expected 2 or 3")]
    Version(u8),
    #[error("VRRPv2 over IPv6")]
    V2OverIpv6,
    #[error("type {0}, expected 1 (advertisement)")]
    Type(u8),
    #[error("length {len} is not the header plus whole {addr_len}-byte addresses{}", if *.v2 { " plus 8 bytes of authentication data" } else { "" })]
    Length {
        len: usize,
        addr_len: usize,
        v2: bool,
    },
    #[error("address count {count} but the packet holds {present}")]
    AddressCount { count: u8, present: usize },
    #[error("checksum {got:#06x}, computed {want:#06x}")]
    Checksum { got: u16, want: u16 },
    #[error("advertisement interval 0")]
    ZeroInterval,
}

/// Why a received packet was dropped: the counters' keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// TTL / hop limit not 255 (sent from off-link or forwarded).
    Ttl,
    /// Not version 2 or 3, or not the instance's version.
    Version,
    /// Not an advertisement.
    Type,
    /// Too short, or not a whole number of addresses.
    Length,
    /// The count field disagrees with the addresses present, or is 0.
    AddressCount,
    Checksum,
    /// No instance on this interface has this VRID.
    Vrid,
    /// v2 authentication type or password differs.
    Auth,
    /// v2: interval differs from ours (RFC 3768 7.1 "MUST discard"); any version: interval 0.
    Interval,
    /// v2: address list differs and the sender is not the address owner (RFC 3768 7.1).
    Addresses,
    /// Unicast instance: the sender is not a configured peer.
    Source,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Ttl => "ttl",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Length => "length",
            DropReason::AddressCount => "address_count",
            DropReason::Checksum => "checksum",
            DropReason::Vrid => "vrid",
            DropReason::Auth => "auth",
            DropReason::Interval => "interval",
            DropReason::Addresses => "addresses",
            DropReason::Source => "source",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ParseError {
    pub fn reason(&self) -> DropReason {
        match self {
            ParseError::TooShort { .. } | ParseError::Length { .. } => DropReason::Length,
            ParseError::Version(_) | ParseError::V2OverIpv6 => DropReason::Version,
            ParseError::Type(_) => DropReason::Type,
            ParseError::AddressCount { .. } => DropReason::AddressCount,
            ParseError::Checksum { .. } => DropReason::Checksum,
            ParseError::ZeroInterval => DropReason::Interval,
        }
    }
}

/// RFC 1071 one's-complement sum, folded, not inverted.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// The checksum of a VRRP message (with its checksum field zero or not: the caller zeroes
/// it to compute, or leaves it to verify, where a valid packet gives 0).
fn vrrp_checksum(version: Version, src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let mut acc = 0u32;
    if version == Version::V3 {
        let len = msg.len() as u32;
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                acc = sum16(acc, &s.octets());
                acc = sum16(acc, &d.octets());
                acc = sum16(acc, &[0, IPPROTO_VRRP]);
                acc = sum16(acc, &(len as u16).to_be_bytes());
            }
            (s, d) => {
                let s = to_v6(s);
                let d = to_v6(d);
                acc = sum16(acc, &s.octets());
                acc = sum16(acc, &d.octets());
                acc = sum16(acc, &len.to_be_bytes());
                acc = sum16(acc, &[0, 0, 0, IPPROTO_VRRP]);
            }
        }
    }
    !fold(sum16(acc, msg))
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The interval field: v2 seconds, v3 centiseconds (12 bits).
fn interval_field(version: Version, interval: Duration) -> Option<u16> {
    match version {
        Version::V2 => {
            if interval.subsec_nanos() != 0 || !(1..=255).contains(&interval.as_secs()) {
                return None;
            }
            Some(interval.as_secs() as u16)
        }
        Version::V3 => {
            let ns = interval.as_nanos();
            if ns % 10_000_000 != 0 {
                return None;
            }
            let cs = ns / 10_000_000;
            if !(1..=0x0fff).contains(&cs) {
                return None;
            }
            Some(cs as u16)
        }
    }
}

impl Advert {
    /// Encodes the advertisement as sent from `src` to `dst` (the addresses go into the v3
    /// checksum; v2 ignores them but they must be IPv4).
    pub fn emit(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EmitError> {
        let field = interval_field(self.version, self.interval).ok_or(EmitError::Interval {
            version: self.version,
            interval: self.interval,
        })?;
        if self.addrs.is_empty() || self.addrs.len() > 255 {
            return Err(EmitError::AddressCount(self.addrs.len()));
        }
        let v6 = src.is_ipv6();
        if self.version == Version::V2 && v6 {
            return Err(EmitError::V2Ipv6(src));
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(EmitError::V3Auth);
        }
        if let Some(a) = self.addrs.iter().find(|a| a.is_ipv6() != v6) {
            return Err(EmitError::MixedFamily { addr: *a, src });
        }
        let addr_len = if v6 { 16 } else { 4 };
        let tail = if self.version == Version::V2 {
            AUTH_DATA_LEN
        } else {
            0
        };
        let mut out = Vec::with_capacity(HEADER_LEN + addr_len * self.addrs.len() + tail);
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(self.addrs.len() as u8);
        match self.version {
            Version::V2 => {
                out.push(self.auth.kind());
                out.push(field as u8);
            }
            Version::V3 => out.extend_from_slice(&field.to_be_bytes()),
        }
        out.extend_from_slice(&[0, 0]);
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            out.extend_from_slice(&self.auth.data());
        }
        let sum = vrrp_checksum(self.version, src, dst, &out);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(out)
    }

    /// Decodes and checks `msg` (the VRRP message, after the IP header) received from `src`
    /// to `dst`: version, type, length, address count, checksum, interval.
    pub fn parse(msg: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advert, ParseError> {
        if msg.len() < HEADER_LEN {
            return Err(ParseError::TooShort { len: msg.len() });
        }
        let version = match msg[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            n => return Err(ParseError::Version(n)),
        };
        let v6 = src.is_ipv6();
        if version == Version::V2 && v6 {
            return Err(ParseError::V2OverIpv6);
        }
        let kind = msg[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(ParseError::Type(kind));
        }
        let addr_len = if v6 { 16 } else { 4 };
        let tail = if version == Version::V2 {
            AUTH_DATA_LEN
        } else {
            0
        };
        let body = msg.len() - HEADER_LEN;
        if body < tail || (body - tail) % addr_len != 0 {
            return Err(ParseError::Length {
                len: msg.len(),
                addr_len,
                v2: version == Version::V2,
            });
        }
        let present = (body - tail) / addr_len;
        let count = msg[3];
        if count == 0 || usize::from(count) != present {
            return Err(ParseError::AddressCount { count, present });
        }
        let got = u16::from_be_bytes([msg[6], msg[7]]);
        if vrrp_checksum(version, src, dst, msg) != 0 {
            let mut zeroed = msg.to_vec();
            zeroed[6] = 0;
            zeroed[7] = 0;
            return Err(ParseError::Checksum {
                got,
                want: vrrp_checksum(version, src, dst, &zeroed),
            });
        }
        let (interval, auth) = match version {
            Version::V2 => {
                let data: [u8; AUTH_DATA_LEN] = msg[msg.len() - AUTH_DATA_LEN..]
                    .try_into()
                    .expect("length checked");
                let auth = match msg[4] {
                    AUTH_NONE => Auth::None,
                    AUTH_SIMPLE => Auth::Simple(data),
                    kind => Auth::Other { kind, data },
                };
                (Duration::from_secs(u64::from(msg[5])), auth)
            }
            Version::V3 => {
                let cs = u16::from_be_bytes([msg[4] & 0x0f, msg[5]]);
                (Duration::from_millis(u64::from(cs) * 10), Auth::None)
            }
        };
        if interval.is_zero() {
            return Err(ParseError::ZeroInterval);
        }
        let addrs = msg[HEADER_LEN..HEADER_LEN + present * addr_len]
            .chunks_exact(addr_len)
            .map(|c| {
                if v6 {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(c).expect("16 bytes")))
                } else {
                    IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                }
            })
            .collect();
        Ok(Advert {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval,
            addrs,
            auth,
        })
    }
}

/// Reads the VRID of a packet too broken to parse, to attribute a drop to an instance.
pub fn peek_vrid(msg: &[u8]) -> Option<u8> {
    msg.get(1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A v2 advert (vrid 51, priority 100, 1 s, auth none, VIP 192.168.200.16), laid out by
    /// hand from RFC 3768 5.1; the checksum covers the message only.
    #[test]
    fn v2_bytes_both_ways() {
        let raw: [u8; 20] = [
            0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0xf2, 0x10, 192, 168, 200, 16, 0, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let adv = Advert {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            interval: Duration::from_secs(1),
            addrs: vec![v4("192.168.200.16")],
            auth: Auth::None,
        };
        let (src, dst) = (v4("192.168.200.1"), IpAddr::V4(MULTICAST_V4));
        let emitted = adv.emit(src, dst).unwrap();
        // Checksum by hand: 0x2133 + 0x6401 + 0x0001 + 0xc0a8 + 0xc810 = 0x20ded → 0x0def → !
        assert_eq!(internet_checksum(&emitted), 0);
        assert_eq!(emitted, raw);
        assert_eq!(Advert::parse(&emitted, src, dst).unwrap(), adv);
        // v2 ignores the addresses around it.
        assert_eq!(
            Advert::parse(&emitted, v4("10.0.0.1"), v4("10.0.0.2")).unwrap(),
            adv
        );
    }

    #[test]
    fn v2_simple_password() {
        let adv = Advert {
            version: Version::V2,
            vrid: 7,
            priority: 150,
            interval: Duration::from_secs(3),
            addrs: vec![v4("192.0.2.10"), v4("192.0.2.11")],
            auth: Auth::simple("secret"),
        };
        let b = adv.emit(v4("192.0.2.2"), IpAddr::V4(MULTICAST_V4)).unwrap();
        assert_eq!(b.len(), 8 + 8 + 8);
        assert_eq!(b[4], 1);
        assert_eq!(b[5], 3);
        assert_eq!(&b[16..], b"secret\0\0");
        let back = Advert::parse(&b, v4("192.0.2.2"), IpAddr::V4(MULTICAST_V4)).unwrap();
        assert_eq!(back, adv);
        // Longer passwords are cut to 8 bytes, as peers do.
        assert_eq!(Auth::simple("0123456789"), Auth::Simple(*b"01234567"));
    }

    /// A v3 IPv4 advert: the checksum includes the IPv4 pseudo-header (src, dst, 0, 112, len).
    #[test]
    fn v3_ipv4_pseudo_header() {
        let adv = Advert {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            interval: Duration::from_millis(1000),
            addrs: vec![v4("10.0.0.100")],
            auth: Auth::None,
        };
        let (src, dst) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
        let b = adv.emit(src, dst).unwrap();
        assert_eq!(&b[..6], &[0x31, 1, 100, 1, 0x00, 0x64]);
        assert_eq!(b.len(), 12);
        // By hand: pseudo 0x0a00+0x0001+0xe000+0x0012+0x0070+0x000c
        //        + msg 0x3101+0x6401+0x0064+0x0a00+0x0064 = 0x18a59 → 0x8a5a → !0x8a5a = 0x75a5
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), 0x75a5);
        assert_eq!(Advert::parse(&b, src, dst).unwrap(), adv);
        // Another destination (unicast peer) makes the same bytes invalid.
        assert!(matches!(
            Advert::parse(&b, src, v4("10.0.0.2")),
            Err(ParseError::Checksum { got: 0x75a5, .. })
        ));
    }

    /// A v3 IPv6 advert: checksum over the RFC 2460 pseudo-header.
    #[test]
    fn v3_ipv6_pseudo_header() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(MULTICAST_V6);
        let adv = Advert {
            version: Version::V3,
            vrid: 2,
            priority: 200,
            interval: Duration::from_millis(20),
            addrs: vec![
                "fe80::100".parse().unwrap(),
                "2001:db8::10".parse().unwrap(),
            ],
            auth: Auth::None,
        };
        let b = adv.emit(src, dst).unwrap();
        assert_eq!(b.len(), 8 + 32);
        assert_eq!(&b[..6], &[0x31, 2, 200, 2, 0x00, 0x02]);
        // Independent computation of the pseudo-header sum.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        pseudo.extend_from_slice(&MULTICAST_V6.octets());
        pseudo.extend_from_slice(&(40u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 112]);
        pseudo.extend_from_slice(&b);
        assert_eq!(internet_checksum(&pseudo), 0);
        assert_eq!(Advert::parse(&b, src, dst).unwrap(), adv);
        // Swapping source changes the sum.
        assert!(matches!(
            Advert::parse(&b, "fe80::2".parse().unwrap(), dst),
            Err(ParseError::Checksum { .. })
        ));
    }

    #[test]
    fn v3_interval_is_centiseconds_in_12_bits() {
        let mut adv = Advert {
            version: Version::V3,
            vrid: 1,
            priority: 1,
            interval: Duration::from_millis(40950),
            addrs: vec![v4("10.0.0.100")],
            auth: Auth::None,
        };
        let (s, d) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
        let b = adv.emit(s, d).unwrap();
        assert_eq!(&b[4..6], &[0x0f, 0xff]);
        // Reserved bits are ignored on receive.
        let mut r = b.clone();
        r[4] |= 0xf0;
        let mut zeroed = r.clone();
        zeroed[6] = 0;
        zeroed[7] = 0;
        let sum = vrrp_checksum(Version::V3, s, d, &zeroed);
        r[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            Advert::parse(&r, s, d).unwrap().interval,
            Duration::from_millis(40950)
        );
        for bad in [0, 5, 40960, 15] {
            adv.interval = Duration::from_millis(bad);
            assert!(
                matches!(adv.emit(s, d), Err(EmitError::Interval { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn emit_refuses_what_cannot_be_sent() {
        let adv = Advert {
            version: Version::V2,
            vrid: 1,
            priority: 1,
            interval: Duration::from_millis(1500),
            addrs: vec![v4("10.0.0.100")],
            auth: Auth::None,
        };
        let (s, d) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
        assert!(matches!(adv.emit(s, d), Err(EmitError::Interval { .. })));
        let adv = Advert {
            interval: Duration::from_secs(1),
            addrs: vec![],
            ..adv
        };
        assert_eq!(adv.emit(s, d), Err(EmitError::AddressCount(0)));
        let adv = Advert {
            addrs: vec!["2001:db8::1".parse().unwrap()],
            ..adv
        };
        assert!(matches!(adv.emit(s, d), Err(EmitError::MixedFamily { .. })));
        let v6 = IpAddr::V6(MULTICAST_V6);
        assert!(matches!(
            adv.emit("fe80::1".parse().unwrap(), v6),
            Err(EmitError::V2Ipv6(_))
        ));
        let adv = Advert {
            version: Version::V3,
            addrs: vec![v4("10.0.0.100")],
            auth: Auth::simple("x"),
            ..adv
        };
        assert_eq!(adv.emit(s, d), Err(EmitError::V3Auth));
    }

    /// Re-checksums a modified packet so only the intended field is wrong.
    fn fix(version: Version, s: IpAddr, d: IpAddr, mut b: Vec<u8>) -> Vec<u8> {
        b[6] = 0;
        b[7] = 0;
        let sum = vrrp_checksum(version, s, d, &b);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn every_malformation_has_its_reason() {
        let (s, d) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
        let good = Advert {
            version: Version::V3,
            vrid: 9,
            priority: 100,
            interval: Duration::from_millis(100),
            addrs: vec![v4("10.0.0.100"), v4("10.0.0.101")],
            auth: Auth::None,
        }
        .emit(s, d)
        .unwrap();
        let reason = |b: &[u8]| Advert::parse(b, s, d).unwrap_err().reason();
        assert_eq!(reason(&good[..7]), DropReason::Length);
        assert_eq!(reason(&good[..14]), DropReason::Length);
        let mut b = good.clone();
        b[0] = 0x41;
        assert_eq!(reason(&fix(Version::V3, s, d, b)), DropReason::Version);
        let mut b = good.clone();
        b[0] = 0x11;
        assert_eq!(reason(&b), DropReason::Version);
        let mut b = good.clone();
        b[0] = 0x32;
        assert_eq!(reason(&fix(Version::V3, s, d, b)), DropReason::Type);
        let mut b = good.clone();
        b[3] = 3;
        assert_eq!(
            Advert::parse(&fix(Version::V3, s, d, b), s, d),
            Err(ParseError::AddressCount {
                count: 3,
                present: 2
            })
        );
        let mut b = good.clone();
        b[3] = 0;
        assert_eq!(reason(&fix(Version::V3, s, d, b)), DropReason::AddressCount);
        let mut b = good.clone();
        b[7] ^= 1;
        assert_eq!(reason(&b), DropReason::Checksum);
        let mut b = good.clone();
        b[4] = 0;
        b[5] = 0;
        assert_eq!(reason(&fix(Version::V3, s, d, b)), DropReason::Interval);
        // v2 without its 8 bytes of auth data.
        let v2 = Advert {
            version: Version::V2,
            vrid: 9,
            priority: 100,
            interval: Duration::from_secs(1),
            addrs: vec![v4("10.0.0.100")],
            auth: Auth::None,
        }
        .emit(s, d)
        .unwrap();
        assert_eq!(reason(&v2[..12]), DropReason::Length);
        assert_eq!(
            Advert::parse(&v2, "fe80::1".parse().unwrap(), IpAddr::V6(MULTICAST_V6)),
            Err(ParseError::V2OverIpv6)
        );
    }

    /// Bounded pseudo-random bytes never panic the decoder (the fuzz target's smoke test).
    #[test]
    fn parse_never_panics_on_noise() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (s, d) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
        let s6: IpAddr = "fe80::1".parse().unwrap();
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 0 {
                b[0] = if next() % 2 == 0 { 0x21 } else { 0x31 };
            }
            let _ = Advert::parse(&b, s, d);
            let _ = Advert::parse(&b, s6, IpAddr::V6(MULTICAST_V6));
        }
    }
}
