//! The wire model of the nested attributes: one enum variant per `IPVS_SVC_ATTR_*`,
//! `IPVS_DEST_ATTR_*`, `IPVS_DAEMON_ATTR_*` and `IPVS_STATS_ATTR_*`, plus `Other(raw)` for what
//! a newer kernel adds, with `emit` and `parse`. The numbers are `pub(super)` because the
//! direct readers of dumps (in `entries`) match them without building the attribute list.

use super::super::nl::{self, Attr, ParseError, RawAttr};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) mod svc_attr {
    pub const AF: u16 = 1;
    pub const PROTOCOL: u16 = 2;
    pub const ADDR: u16 = 3;
    pub const PORT: u16 = 4;
    pub const FWMARK: u16 = 5;
    pub const SCHED_NAME: u16 = 6;
    pub const FLAGS: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    pub const NETMASK: u16 = 9;
    pub const STATS: u16 = 10;
    pub const PE_NAME: u16 = 11;
    pub const STATS64: u16 = 12;
}

pub(super) mod dest_attr {
    pub const ADDR: u16 = 1;
    pub const PORT: u16 = 2;
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const STATS: u16 = 10;
    pub const ADDR_FAMILY: u16 = 11;
    pub const STATS64: u16 = 12;
    pub const TUN_TYPE: u16 = 13;
    pub const TUN_PORT: u16 = 14;
    pub const TUN_FLAGS: u16 = 15;
}

pub(super) mod daemon_attr {
    pub const STATE: u16 = 1;
    pub const MCAST_IFN: u16 = 2;
    pub const SYNC_ID: u16 = 3;
    pub const SYNC_MAXLEN: u16 = 4;
    pub const MCAST_GROUP: u16 = 5;
    pub const MCAST_GROUP6: u16 = 6;
    pub const MCAST_PORT: u16 = 7;
    pub const MCAST_TTL: u16 = 8;
}

pub(super) mod stats_attr {
    pub const CONNS: u16 = 1;
    pub const INPKTS: u16 = 2;
    pub const OUTPKTS: u16 = 3;
    pub const INBYTES: u16 = 4;
    pub const OUTBYTES: u16 = 5;
    pub const CPS: u16 = 6;
    pub const INPPS: u16 = 7;
    pub const OUTPPS: u16 = 8;
    pub const INBPS: u16 = 9;
    pub const OUTBPS: u16 = 10;
    pub const PAD: u16 = 11;
}

/// `struct ip_vs_flags`: the flags to set and which of them to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagsAttr {
    pub flags: u32,
    pub mask: u32,
}

/// `IPVS_SVC_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    Af(u16),
    Protocol(u16),
    /// `union nf_inet_addr`: 16 bytes, an IPv4 address in the first 4.
    Addr([u8; 16]),
    /// Host-order value; network order on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags(FlagsAttr),
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// Raw `__be32`: an IPv4 mask in network order, or an IPv6 prefix length in host order.
    Netmask([u8; 4]),
    Stats(Vec<StatsAttr>),
    PeName(String),
    Stats64(Vec<StatsAttr>),
    Other(RawAttr),
}

/// `IPVS_DEST_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    Addr([u8; 16]),
    Port(u16),
    /// Connection flags; the forwarding method is the low 3 bits.
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsAttr>),
    AddrFamily(u16),
    Stats64(Vec<StatsAttr>),
    TunType(u8),
    /// Host-order value; network order on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(RawAttr),
}

/// `IPVS_DAEMON_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxlen(u16),
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Host order (unlike service and destination ports): the kernel uses `nla_get_u16`.
    McastPort(u16),
    McastTtl(u8),
    Other(RawAttr),
}

/// `IPVS_STATS_ATTR_*`. In `STATS` the byte counters are 64-bit and the rest 32-bit; in
/// `STATS64` everything is 64-bit. Values are kept as `u64` either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsAttr {
    Conns(u64),
    InPkts(u64),
    OutPkts(u64),
    InBytes(u64),
    OutBytes(u64),
    Cps(u64),
    InPps(u64),
    OutPps(u64),
    InBps(u64),
    OutBps(u64),
    Pad,
    Other(RawAttr),
}

/// Parses each attribute of a nested list with `f`.
pub(super) fn parse_list<T>(
    data: &[u8],
    f: impl Fn(&Attr) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    nl::attrs(data).map(|a| f(&a?)).collect()
}

fn addr16(a: &Attr, what: &str) -> Result<[u8; 16], ParseError> {
    // The kernel sends the whole 16-byte union; accept a bare IPv4 address too.
    let mut out = [0u8; 16];
    match a.data.len() {
        4 | 16 => {
            out[..a.data.len()].copy_from_slice(a.data);
            Ok(out)
        }
        n => Err(ParseError::new(
            what,
            format!("address is {n} bytes, expected 4 or 16"),
        )),
    }
}

impl SvcAttr {
    pub fn emit(&self, b: &mut Vec<u8>) {
        use svc_attr::*;
        match self {
            SvcAttr::Af(v) => nl::put_u16(b, AF, *v),
            SvcAttr::Protocol(v) => nl::put_u16(b, PROTOCOL, *v),
            SvcAttr::Addr(a) => nl::put_array(b, ADDR, *a),
            SvcAttr::Port(p) => nl::put_array(b, PORT, p.to_be_bytes()),
            SvcAttr::Fwmark(v) => nl::put_u32(b, FWMARK, *v),
            SvcAttr::SchedName(s) => nl::put_str(b, SCHED_NAME, s),
            SvcAttr::Flags(f) => {
                let mut d = [0u8; 8];
                d[..4].copy_from_slice(&f.flags.to_ne_bytes());
                d[4..].copy_from_slice(&f.mask.to_ne_bytes());
                nl::put_array(b, FLAGS, d)
            }
            SvcAttr::Timeout(v) => nl::put_u32(b, TIMEOUT, *v),
            SvcAttr::Netmask(m) => nl::put_array(b, NETMASK, *m),
            SvcAttr::Stats(s) => nl::put_nested(b, STATS, |b| emit_stats(b, s, false)),
            SvcAttr::PeName(s) => nl::put_str(b, PE_NAME, s),
            SvcAttr::Stats64(s) => nl::put_nested(b, STATS64, |b| emit_stats(b, s, true)),
            SvcAttr::Other(r) => r.emit(b),
        }
    }

    pub fn parse(a: &Attr) -> Result<SvcAttr, ParseError> {
        use svc_attr::*;
        Ok(match a.kind {
            AF => SvcAttr::Af(a.u16("service AF")?),
            PROTOCOL => SvcAttr::Protocol(a.u16("service PROTOCOL")?),
            ADDR => SvcAttr::Addr(addr16(a, "service ADDR")?),
            PORT => SvcAttr::Port(a.be16("service PORT")?),
            FWMARK => SvcAttr::Fwmark(a.u32("service FWMARK")?),
            SCHED_NAME => SvcAttr::SchedName(a.string("service SCHED_NAME")?),
            FLAGS => {
                if a.data.len() != 8 {
                    return Err(ParseError::new(
                        "service FLAGS",
                        format!("payload is {} bytes, expected 8", a.data.len()),
                    ));
                }
                SvcAttr::Flags(FlagsAttr {
                    flags: u32::from_ne_bytes(a.data[0..4].try_into().expect("4 bytes")),
                    mask: u32::from_ne_bytes(a.data[4..8].try_into().expect("4 bytes")),
                })
            }
            TIMEOUT => SvcAttr::Timeout(a.u32("service TIMEOUT")?),
            NETMASK => SvcAttr::Netmask(a.bytes4("service NETMASK")?),
            STATS => SvcAttr::Stats(parse_stats(a.data)?),
            PE_NAME => SvcAttr::PeName(a.string("service PE_NAME")?),
            STATS64 => SvcAttr::Stats64(parse_stats(a.data)?),
            _ => SvcAttr::Other(RawAttr::from_attr(a)),
        })
    }
}

impl DestAttr {
    pub fn emit(&self, b: &mut Vec<u8>) {
        use dest_attr::*;
        match self {
            DestAttr::Addr(a) => nl::put_array(b, ADDR, *a),
            DestAttr::Port(p) => nl::put_array(b, PORT, p.to_be_bytes()),
            DestAttr::FwdMethod(v) => nl::put_u32(b, FWD_METHOD, *v),
            DestAttr::Weight(v) => nl::put_u32(b, WEIGHT, *v),
            DestAttr::UThresh(v) => nl::put_u32(b, U_THRESH, *v),
            DestAttr::LThresh(v) => nl::put_u32(b, L_THRESH, *v),
            DestAttr::ActiveConns(v) => nl::put_u32(b, ACTIVE_CONNS, *v),
            DestAttr::InactConns(v) => nl::put_u32(b, INACT_CONNS, *v),
            DestAttr::PersistConns(v) => nl::put_u32(b, PERSIST_CONNS, *v),
            DestAttr::Stats(s) => nl::put_nested(b, STATS, |b| emit_stats(b, s, false)),
            DestAttr::AddrFamily(v) => nl::put_u16(b, ADDR_FAMILY, *v),
            DestAttr::Stats64(s) => nl::put_nested(b, STATS64, |b| emit_stats(b, s, true)),
            DestAttr::TunType(v) => nl::put_u8(b, TUN_TYPE, *v),
            DestAttr::TunPort(p) => nl::put_array(b, TUN_PORT, p.to_be_bytes()),
            DestAttr::TunFlags(v) => nl::put_u16(b, TUN_FLAGS, *v),
            DestAttr::Other(r) => r.emit(b),
        }
    }

    pub fn parse(a: &Attr) -> Result<DestAttr, ParseError> {
        use dest_attr::*;
        Ok(match a.kind {
            ADDR => DestAttr::Addr(addr16(a, "dest ADDR")?),
            PORT => DestAttr::Port(a.be16("dest PORT")?),
            FWD_METHOD => DestAttr::FwdMethod(a.u32("dest FWD_METHOD")?),
            WEIGHT => DestAttr::Weight(a.u32("dest WEIGHT")?),
            U_THRESH => DestAttr::UThresh(a.u32("dest U_THRESH")?),
            L_THRESH => DestAttr::LThresh(a.u32("dest L_THRESH")?),
            ACTIVE_CONNS => DestAttr::ActiveConns(a.u32("dest ACTIVE_CONNS")?),
            INACT_CONNS => DestAttr::InactConns(a.u32("dest INACT_CONNS")?),
            PERSIST_CONNS => DestAttr::PersistConns(a.u32("dest PERSIST_CONNS")?),
            STATS => DestAttr::Stats(parse_stats(a.data)?),
            ADDR_FAMILY => DestAttr::AddrFamily(a.u16("dest ADDR_FAMILY")?),
            STATS64 => DestAttr::Stats64(parse_stats(a.data)?),
            TUN_TYPE => DestAttr::TunType(a.u8("dest TUN_TYPE")?),
            TUN_PORT => DestAttr::TunPort(a.be16("dest TUN_PORT")?),
            TUN_FLAGS => DestAttr::TunFlags(a.u16("dest TUN_FLAGS")?),
            _ => DestAttr::Other(RawAttr::from_attr(a)),
        })
    }
}

impl DaemonAttr {
    pub fn emit(&self, b: &mut Vec<u8>) {
        use daemon_attr::*;
        match self {
            DaemonAttr::State(v) => nl::put_u32(b, STATE, *v),
            DaemonAttr::McastIfn(s) => nl::put_str(b, MCAST_IFN, s),
            DaemonAttr::SyncId(v) => nl::put_u32(b, SYNC_ID, *v),
            DaemonAttr::SyncMaxlen(v) => nl::put_u16(b, SYNC_MAXLEN, *v),
            DaemonAttr::McastGroup(a) => nl::put_attr(b, MCAST_GROUP, &a.octets()),
            DaemonAttr::McastGroup6(a) => nl::put_attr(b, MCAST_GROUP6, &a.octets()),
            DaemonAttr::McastPort(p) => nl::put_u16(b, MCAST_PORT, *p),
            DaemonAttr::McastTtl(v) => nl::put_u8(b, MCAST_TTL, *v),
            DaemonAttr::Other(r) => r.emit(b),
        }
    }

    pub fn parse(a: &Attr) -> Result<DaemonAttr, ParseError> {
        use daemon_attr::*;
        Ok(match a.kind {
            STATE => DaemonAttr::State(a.u32("daemon STATE")?),
            MCAST_IFN => DaemonAttr::McastIfn(a.string("daemon MCAST_IFN")?),
            SYNC_ID => DaemonAttr::SyncId(a.u32("daemon SYNC_ID")?),
            SYNC_MAXLEN => DaemonAttr::SyncMaxlen(a.u16("daemon SYNC_MAXLEN")?),
            MCAST_GROUP => DaemonAttr::McastGroup(Ipv4Addr::from(a.bytes4("daemon MCAST_GROUP")?)),
            MCAST_GROUP6 => {
                let b: [u8; 16] = a
                    .data
                    .try_into()
                    .map_err(|_| ParseError::new("daemon MCAST_GROUP6", "expected 16 bytes"))?;
                DaemonAttr::McastGroup6(Ipv6Addr::from(b))
            }
            MCAST_PORT => DaemonAttr::McastPort(a.u16("daemon MCAST_PORT")?),
            MCAST_TTL => DaemonAttr::McastTtl(a.u8("daemon MCAST_TTL")?),
            _ => DaemonAttr::Other(RawAttr::from_attr(a)),
        })
    }
}

fn emit_stats(b: &mut Vec<u8>, stats: &[StatsAttr], wide: bool) {
    use stats_attr::*;
    // A counter that does not fit 32 bits keeps its 64 (found by fuzzing: a STATS nest with an
    // 8-byte counter parsed, then lost its high half on the way out).
    let n = |b: &mut Vec<u8>, kind: u16, v: u64, always_wide: bool| {
        if wide || always_wide || v > u64::from(u32::MAX) {
            nl::put_u64(b, kind, v)
        } else {
            nl::put_u32(b, kind, v as u32)
        }
    };
    for s in stats {
        match s {
            StatsAttr::Conns(v) => n(b, CONNS, *v, false),
            StatsAttr::InPkts(v) => n(b, INPKTS, *v, false),
            StatsAttr::OutPkts(v) => n(b, OUTPKTS, *v, false),
            StatsAttr::InBytes(v) => n(b, INBYTES, *v, true),
            StatsAttr::OutBytes(v) => n(b, OUTBYTES, *v, true),
            StatsAttr::Cps(v) => n(b, CPS, *v, false),
            StatsAttr::InPps(v) => n(b, INPPS, *v, false),
            StatsAttr::OutPps(v) => n(b, OUTPPS, *v, false),
            StatsAttr::InBps(v) => n(b, INBPS, *v, false),
            StatsAttr::OutBps(v) => n(b, OUTBPS, *v, false),
            StatsAttr::Pad => nl::put_attr(b, PAD, &[]),
            StatsAttr::Other(r) => r.emit(b),
        }
    }
}

fn parse_stats(data: &[u8]) -> Result<Vec<StatsAttr>, ParseError> {
    use stats_attr::*;
    let counter = |a: &Attr| -> Result<u64, ParseError> {
        match a.data.len() {
            4 => Ok(a.u32("stats counter")? as u64),
            8 => a.u64("stats counter"),
            n => Err(ParseError::new(
                "stats counter",
                format!("payload is {n} bytes, expected 4 or 8"),
            )),
        }
    };
    parse_list(data, |a| {
        Ok(match a.kind {
            CONNS => StatsAttr::Conns(counter(a)?),
            INPKTS => StatsAttr::InPkts(counter(a)?),
            OUTPKTS => StatsAttr::OutPkts(counter(a)?),
            INBYTES => StatsAttr::InBytes(counter(a)?),
            OUTBYTES => StatsAttr::OutBytes(counter(a)?),
            CPS => StatsAttr::Cps(counter(a)?),
            INPPS => StatsAttr::InPps(counter(a)?),
            OUTPPS => StatsAttr::OutPps(counter(a)?),
            INBPS => StatsAttr::InBps(counter(a)?),
            OUTBPS => StatsAttr::OutBps(counter(a)?),
            PAD => StatsAttr::Pad,
            _ => StatsAttr::Other(RawAttr::from_attr(a)),
        })
    })
}
