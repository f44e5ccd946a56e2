//! The kernel's IPVS generic-netlink messages (`include/uapi/linux/ip_vs.h`) as types.
//!
//! Two levels: the wire model (one enum variant per attribute, plus `Other(raw)` for what a
//! newer kernel adds) with `emit`/`parse`, and typed entries ([`ServiceEntry`], [`DestEntry`],
//! [`DaemonEntry`], [`Timeouts`], [`Info`]) converted to and from attribute lists. No I/O.
//!
//! Byte order, as the kernel reads it: ports (`__be16`), IPv4 persistence netmasks and the sync
//! multicast group (`__be32`) and addresses are network order; every other integer is host
//! order. An IPv6 service's "netmask" is a prefix length in host order.

use super::nl::{self, Attr, ParseError, RawAttr};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Generic netlink family name and version.
pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

/// `AF_INET` / `AF_INET6`.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `IPPROTO_*` numbers the kernel uses for services.
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;

/// Service flags (`IP_VS_SVC_F_*`).
pub const SVC_F_PERSISTENT: u32 = 0x0001;
pub const SVC_F_HASHED: u32 = 0x0002;
pub const SVC_F_ONEPACKET: u32 = 0x0004;
/// `sh`/`mh`: fall back to another real when the hashed one is unavailable.
pub const SVC_F_SCHED_SH_FALLBACK: u32 = 0x0008;
/// `sh`/`mh`: hash the source port too.
pub const SVC_F_SCHED_SH_PORT: u32 = 0x0010;
pub const SVC_F_SCHED3: u32 = 0x0020;

/// Sync daemon states (`IP_VS_STATE_*`).
pub const STATE_MASTER: u32 = 1;
pub const STATE_BACKUP: u32 = 2;

/// `IPVS_CMD_*`.
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const NEW_DAEMON: u8 = 9;
    pub const DEL_DAEMON: u8 = 10;
    pub const GET_DAEMON: u8 = 11;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const SET_INFO: u8 = 14;
    pub const GET_INFO: u8 = 15;
    pub const ZERO: u8 = 16;
    pub const FLUSH: u8 = 17;

    /// The command's name in `ip_vs.h`, for messages.
    pub fn name(c: u8) -> &'static str {
        match c {
            NEW_SERVICE => "NEW_SERVICE",
            SET_SERVICE => "SET_SERVICE",
            DEL_SERVICE => "DEL_SERVICE",
            GET_SERVICE => "GET_SERVICE",
            NEW_DEST => "NEW_DEST",
            SET_DEST => "SET_DEST",
            DEL_DEST => "DEL_DEST",
            GET_DEST => "GET_DEST",
            NEW_DAEMON => "NEW_DAEMON",
            DEL_DAEMON => "DEL_DAEMON",
            GET_DAEMON => "GET_DAEMON",
            SET_CONFIG => "SET_CONFIG",
            GET_CONFIG => "GET_CONFIG",
            SET_INFO => "SET_INFO",
            GET_INFO => "GET_INFO",
            ZERO => "ZERO",
            FLUSH => "FLUSH",
            _ => "unknown command",
        }
    }
}

mod cmd_attr {
    pub const SERVICE: u16 = 1;
    pub const DEST: u16 = 2;
    pub const DAEMON: u16 = 3;
    pub const TIMEOUT_TCP: u16 = 4;
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    pub const TIMEOUT_UDP: u16 = 6;
}

mod info_attr {
    pub const VERSION: u16 = 1;
    pub const CONN_TAB_SIZE: u16 = 2;
}

mod svc_attr {
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

mod dest_attr {
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

mod daemon_attr {
    pub const STATE: u16 = 1;
    pub const MCAST_IFN: u16 = 2;
    pub const SYNC_ID: u16 = 3;
    pub const SYNC_MAXLEN: u16 = 4;
    pub const MCAST_GROUP: u16 = 5;
    pub const MCAST_GROUP6: u16 = 6;
    pub const MCAST_PORT: u16 = 7;
    pub const MCAST_TTL: u16 = 8;
}

mod stats_attr {
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

// ---------------------------------------------------------------------------------------------
// Wire model: one variant per attribute.

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

/// First-level attributes (`IPVS_CMD_ATTR_*`, and `IPVS_INFO_ATTR_*` in GET_INFO replies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    Daemon(Vec<DaemonAttr>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    InfoVersion(u32),
    InfoConnTabSize(u32),
    Other(RawAttr),
}

/// One IPVS generic netlink message: the command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<CmdAttr>,
}

fn is_info(cmd: u8) -> bool {
    cmd == cmd::GET_INFO || cmd == cmd::SET_INFO
}

impl IpvsMessage {
    pub fn new(cmd: u8, attrs: Vec<CmdAttr>) -> Self {
        IpvsMessage { cmd, attrs }
    }

    /// Appends the attribute stream (the part after the generic netlink header).
    pub fn emit_attrs(&self, buf: &mut Vec<u8>) {
        for a in &self.attrs {
            match a {
                CmdAttr::Service(s) => {
                    nl::put_nested(buf, cmd_attr::SERVICE, |b| s.iter().for_each(|a| a.emit(b)))
                }
                CmdAttr::Dest(d) => {
                    nl::put_nested(buf, cmd_attr::DEST, |b| d.iter().for_each(|a| a.emit(b)))
                }
                CmdAttr::Daemon(d) => {
                    nl::put_nested(buf, cmd_attr::DAEMON, |b| d.iter().for_each(|a| a.emit(b)))
                }
                CmdAttr::TimeoutTcp(v) => nl::put_u32(buf, cmd_attr::TIMEOUT_TCP, *v),
                CmdAttr::TimeoutTcpFin(v) => nl::put_u32(buf, cmd_attr::TIMEOUT_TCP_FIN, *v),
                CmdAttr::TimeoutUdp(v) => nl::put_u32(buf, cmd_attr::TIMEOUT_UDP, *v),
                CmdAttr::InfoVersion(v) => nl::put_u32(buf, info_attr::VERSION, *v),
                CmdAttr::InfoConnTabSize(v) => nl::put_u32(buf, info_attr::CONN_TAB_SIZE, *v),
                CmdAttr::Other(r) => r.emit(buf),
            }
        }
    }

    /// Reads the attribute stream of a message with command `cmd`.
    pub fn parse(cmd: u8, data: &[u8]) -> Result<IpvsMessage, ParseError> {
        let mut attrs = Vec::new();
        for a in nl::attrs(data) {
            let a = a?;
            let parsed = if is_info(cmd) {
                match a.kind {
                    info_attr::VERSION => CmdAttr::InfoVersion(a.u32("info VERSION")?),
                    info_attr::CONN_TAB_SIZE => {
                        CmdAttr::InfoConnTabSize(a.u32("info CONN_TAB_SIZE")?)
                    }
                    _ => CmdAttr::Other(RawAttr::from_attr(&a)),
                }
            } else {
                match a.kind {
                    cmd_attr::SERVICE => CmdAttr::Service(parse_list(a.data, SvcAttr::parse)?),
                    cmd_attr::DEST => CmdAttr::Dest(parse_list(a.data, DestAttr::parse)?),
                    cmd_attr::DAEMON => CmdAttr::Daemon(parse_list(a.data, DaemonAttr::parse)?),
                    cmd_attr::TIMEOUT_TCP => CmdAttr::TimeoutTcp(a.u32("TIMEOUT_TCP")?),
                    cmd_attr::TIMEOUT_TCP_FIN => CmdAttr::TimeoutTcpFin(a.u32("TIMEOUT_TCP_FIN")?),
                    cmd_attr::TIMEOUT_UDP => CmdAttr::TimeoutUdp(a.u32("TIMEOUT_UDP")?),
                    _ => CmdAttr::Other(RawAttr::from_attr(&a)),
                }
            };
            attrs.push(parsed);
        }
        Ok(IpvsMessage { cmd, attrs })
    }

    /// The nested service attributes, if any.
    pub fn service(&self) -> Option<&[SvcAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    pub fn dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Dest(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    pub fn daemon(&self) -> Option<&[DaemonAttr]> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Daemon(d) => Some(d.as_slice()),
            _ => None,
        })
    }
}

fn parse_list<T>(
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
            SvcAttr::Addr(a) => nl::put_attr(b, ADDR, a),
            SvcAttr::Port(p) => nl::put_attr(b, PORT, &p.to_be_bytes()),
            SvcAttr::Fwmark(v) => nl::put_u32(b, FWMARK, *v),
            SvcAttr::SchedName(s) => nl::put_str(b, SCHED_NAME, s),
            SvcAttr::Flags(f) => {
                let mut d = f.flags.to_ne_bytes().to_vec();
                d.extend_from_slice(&f.mask.to_ne_bytes());
                nl::put_attr(b, FLAGS, &d)
            }
            SvcAttr::Timeout(v) => nl::put_u32(b, TIMEOUT, *v),
            SvcAttr::Netmask(m) => nl::put_attr(b, NETMASK, m),
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
            DestAttr::Addr(a) => nl::put_attr(b, ADDR, a),
            DestAttr::Port(p) => nl::put_attr(b, PORT, &p.to_be_bytes()),
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
            DestAttr::TunPort(p) => nl::put_attr(b, TUN_PORT, &p.to_be_bytes()),
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

// ---------------------------------------------------------------------------------------------
// Typed entries.

/// Identity of a virtual service in the kernel.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ServiceId {
    /// Protocol (`IPPROTO_*`), virtual address and port.
    Addr {
        protocol: u16,
        addr: IpAddr,
        port: u16,
    },
    /// Firewall mark, per address family (`AF_INET` / `AF_INET6`).
    Fwmark { af: u16, mark: u32 },
}

impl ServiceId {
    pub fn af(&self) -> u16 {
        match self {
            ServiceId::Addr { addr, .. } => af_of(addr),
            ServiceId::Fwmark { af, .. } => *af,
        }
    }

    /// The attributes that name the service (all a delete or a dest operation needs).
    pub fn attrs(&self) -> Vec<SvcAttr> {
        match *self {
            ServiceId::Addr {
                protocol,
                addr,
                port,
            } => vec![
                SvcAttr::Af(af_of(&addr)),
                SvcAttr::Protocol(protocol),
                SvcAttr::Addr(addr_bytes(&addr)),
                SvcAttr::Port(port),
            ],
            ServiceId::Fwmark { af, mark } => vec![SvcAttr::Af(af), SvcAttr::Fwmark(mark)],
        }
    }
}

/// `tcp`, `udp`, `sctp` or the protocol number.
pub fn protocol_name(p: u16) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_SCTP => "sctp".into(),
        n => format!("protocol {n}"),
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ServiceId::Addr {
                protocol,
                addr,
                port,
            } => write!(
                f,
                "{} {}",
                protocol_name(*protocol),
                std::net::SocketAddr::new(*addr, *port)
            ),
            ServiceId::Fwmark { af, mark } => write!(
                f,
                "fwmark {mark} ({})",
                if *af == AF_INET6 { "IPv6" } else { "IPv4" }
            ),
        }
    }
}

pub fn af_of(a: &IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// `union nf_inet_addr` bytes of an address.
pub fn addr_bytes(a: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn addr_from(af: u16, b: &[u8; 16], what: &str) -> Result<IpAddr, ParseError> {
    match af {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*b))),
        other => Err(ParseError::new(
            what,
            format!("unknown address family {other}"),
        )),
    }
}

/// The persistence netmask as the kernel holds it.
pub fn netmask_bytes(af: u16, prefix_len: u8) -> [u8; 4] {
    if af == AF_INET6 {
        (prefix_len as u32).to_ne_bytes()
    } else {
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - prefix_len.min(32) as u32)
        };
        mask.to_be_bytes()
    }
}

/// The prefix length of a netmask attribute (for IPv4, the leading ones of the mask).
pub fn netmask_prefix(af: u16, raw: [u8; 4]) -> u8 {
    if af == AF_INET6 {
        u32::from_ne_bytes(raw).min(128) as u8
    } else {
        u32::from_be_bytes(raw).leading_ones() as u8
    }
}

/// Traffic counters of a service or destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

impl Stats {
    fn from_attrs(attrs: &[StatsAttr]) -> Stats {
        let mut s = Stats::default();
        for a in attrs {
            match *a {
                StatsAttr::Conns(v) => s.conns = v,
                StatsAttr::InPkts(v) => s.inpkts = v,
                StatsAttr::OutPkts(v) => s.outpkts = v,
                StatsAttr::InBytes(v) => s.inbytes = v,
                StatsAttr::OutBytes(v) => s.outbytes = v,
                StatsAttr::Cps(v) => s.cps = v,
                StatsAttr::InPps(v) => s.inpps = v,
                StatsAttr::OutPps(v) => s.outpps = v,
                StatsAttr::InBps(v) => s.inbps = v,
                StatsAttr::OutBps(v) => s.outbps = v,
                StatsAttr::Pad | StatsAttr::Other(_) => {}
            }
        }
        s
    }
}

/// A virtual service: identity and the settings the kernel holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub id: ServiceId,
    /// Scheduler name (`wlc`, `sh`, ...).
    pub scheduler: String,
    /// `SVC_F_*` bits. Dumps include `SVC_F_HASHED`, which the kernel sets itself.
    pub flags: u32,
    /// Persistence timeout in seconds (0: not persistent).
    pub timeout: u32,
    /// Persistence netmask as a prefix length.
    pub netmask: u8,
    /// Persistence engine (`sip`), rarely used.
    pub pe_name: Option<String>,
    /// Counters, in dumps only (the 64-bit set when the kernel sends it).
    pub stats: Option<Stats>,
}

impl ServiceEntry {
    /// Attributes for NEW_SERVICE / SET_SERVICE: identity plus every setting (the kernel needs
    /// scheduler, flags, timeout and netmask together). Flags are sent with a full mask.
    pub fn to_attrs(&self) -> Vec<SvcAttr> {
        let mut v = self.id.attrs();
        v.push(SvcAttr::SchedName(self.scheduler.clone()));
        v.push(SvcAttr::Flags(FlagsAttr {
            flags: self.flags & !SVC_F_HASHED,
            mask: u32::MAX,
        }));
        v.push(SvcAttr::Timeout(self.timeout));
        v.push(SvcAttr::Netmask(netmask_bytes(self.id.af(), self.netmask)));
        if let Some(pe) = &self.pe_name {
            v.push(SvcAttr::PeName(pe.clone()));
        }
        v
    }

    /// Reads a service from a dump reply's attributes.
    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<ServiceEntry, ParseError> {
        let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
        let mut e = ServiceEntry {
            id: ServiceId::Fwmark { af: 0, mark: 0 },
            scheduler: String::new(),
            flags: 0,
            timeout: 0,
            netmask: 0,
            pe_name: None,
            stats: None,
        };
        let mut netmask_raw = None;
        let mut stats64 = None;
        for a in attrs {
            match a {
                SvcAttr::Af(v) => af = Some(*v),
                SvcAttr::Protocol(v) => protocol = Some(*v),
                SvcAttr::Addr(v) => addr = Some(*v),
                SvcAttr::Port(v) => port = Some(*v),
                SvcAttr::Fwmark(v) => fwmark = Some(*v),
                SvcAttr::SchedName(s) => e.scheduler = s.clone(),
                SvcAttr::Flags(f) => e.flags = f.flags,
                SvcAttr::Timeout(t) => e.timeout = *t,
                SvcAttr::Netmask(m) => netmask_raw = Some(*m),
                SvcAttr::Stats(s) => e.stats = Some(Stats::from_attrs(s)),
                SvcAttr::Stats64(s) => stats64 = Some(Stats::from_attrs(s)),
                SvcAttr::PeName(p) => e.pe_name = Some(p.clone()),
                SvcAttr::Other(_) => {}
            }
        }
        if stats64.is_some() {
            e.stats = stats64;
        }
        let af = af.ok_or_else(|| ParseError::new("service", "no AF attribute"))?;
        e.id = match (fwmark, protocol, addr, port) {
            (Some(mark), _, _, _) if mark != 0 => ServiceId::Fwmark { af, mark },
            (_, Some(protocol), Some(addr), Some(port)) => ServiceId::Addr {
                protocol,
                addr: addr_from(af, &addr, "service ADDR")?,
                port,
            },
            _ => {
                return Err(ParseError::new(
                    "service",
                    "neither a firewall mark nor protocol, address and port",
                ))
            }
        };
        e.netmask = netmask_raw
            .map(|m| netmask_prefix(af, m))
            .unwrap_or(if af == AF_INET6 { 128 } else { 32 });
        Ok(e)
    }
}

/// Forwarding method of a destination (the low bits of its connection flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwdMethod {
    /// NAT ("Masq").
    Masq,
    /// The real is this host ("Local").
    Local,
    /// IP-in-IP ("Tunnel").
    Tunnel,
    /// Direct routing ("Route").
    Route,
    Bypass,
}

impl FwdMethod {
    pub fn conn_flags(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::Bypass => 4,
        }
    }

    pub fn from_conn_flags(f: u32) -> FwdMethod {
        match f & 0x7 {
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            3 => FwdMethod::Route,
            4 => FwdMethod::Bypass,
            _ => FwdMethod::Masq,
        }
    }

    /// ipvsadm's name for it.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::Bypass => "Bypass",
        }
    }
}

/// Tunnel encapsulation of a tunnelling destination (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: u8,
    pub port: u16,
    pub flags: u16,
}

/// A destination (real server) of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestEntry {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: u32,
    /// Connection thresholds (0: none).
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// Counters, in dumps only.
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Option<Stats>,
    pub tunnel: Option<Tunnel>,
}

impl DestEntry {
    /// A destination with no counters.
    pub fn new(addr: IpAddr, port: u16, fwd: FwdMethod, weight: u32) -> DestEntry {
        DestEntry {
            addr,
            port,
            fwd,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: None,
            tunnel: None,
        }
    }

    /// Attributes naming the destination (for DEL_DEST).
    pub fn key_attrs(addr: &IpAddr, port: u16) -> Vec<DestAttr> {
        vec![
            DestAttr::AddrFamily(af_of(addr)),
            DestAttr::Addr(addr_bytes(addr)),
            DestAttr::Port(port),
        ]
    }

    /// Attributes for NEW_DEST / SET_DEST (the kernel needs method, weight and both
    /// thresholds together).
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let mut v = Self::key_attrs(&self.addr, self.port);
        v.push(DestAttr::FwdMethod(self.fwd.conn_flags()));
        v.push(DestAttr::Weight(self.weight));
        v.push(DestAttr::UThresh(self.upper_threshold));
        v.push(DestAttr::LThresh(self.lower_threshold));
        if let Some(t) = self.tunnel {
            v.push(DestAttr::TunType(t.kind));
            v.push(DestAttr::TunPort(t.port));
            v.push(DestAttr::TunFlags(t.flags));
        }
        v
    }

    /// Reads a destination from a dump reply; `service_af` applies when the kernel does not
    /// send the destination's own family.
    pub fn from_attrs(attrs: &[DestAttr], service_af: u16) -> Result<DestEntry, ParseError> {
        let mut af = service_af;
        let (mut addr, mut port) = (None, None);
        let mut e = DestEntry::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, FwdMethod::Masq, 0);
        let mut stats64 = None;
        let mut tun = Tunnel {
            kind: 0,
            port: 0,
            flags: 0,
        };
        let mut has_tun = false;
        for a in attrs {
            match a {
                DestAttr::Addr(b) => addr = Some(*b),
                DestAttr::Port(p) => port = Some(*p),
                DestAttr::FwdMethod(f) => e.fwd = FwdMethod::from_conn_flags(*f),
                DestAttr::Weight(w) => e.weight = *w,
                DestAttr::UThresh(v) => e.upper_threshold = *v,
                DestAttr::LThresh(v) => e.lower_threshold = *v,
                DestAttr::ActiveConns(v) => e.active_conns = *v,
                DestAttr::InactConns(v) => e.inactive_conns = *v,
                DestAttr::PersistConns(v) => e.persistent_conns = *v,
                DestAttr::Stats(s) => e.stats = Some(Stats::from_attrs(s)),
                DestAttr::Stats64(s) => stats64 = Some(Stats::from_attrs(s)),
                DestAttr::AddrFamily(f) => af = *f,
                DestAttr::TunType(t) => {
                    tun.kind = *t;
                    has_tun = true
                }
                DestAttr::TunPort(p) => tun.port = *p,
                DestAttr::TunFlags(f) => tun.flags = *f,
                DestAttr::Other(_) => {}
            }
        }
        if stats64.is_some() {
            e.stats = stats64;
        }
        let addr = addr.ok_or_else(|| ParseError::new("dest", "no ADDR attribute"))?;
        e.addr = addr_from(af, &addr, "dest ADDR")?;
        e.port = port.ok_or_else(|| ParseError::new("dest", "no PORT attribute"))?;
        if has_tun && e.fwd == FwdMethod::Tunnel {
            e.tunnel = Some(tun);
        }
        Ok(e)
    }
}

/// Sync daemon role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn raw(self) -> u32 {
        match self {
            DaemonState::Master => STATE_MASTER,
            DaemonState::Backup => STATE_BACKUP,
        }
    }
}

/// A connection-sync daemon. Optional fields: `None` = the kernel's default (when starting)
/// or not reported (older kernels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonEntry {
    pub state: DaemonState,
    pub ifname: String,
    pub sync_id: u32,
    pub max_len: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

impl DaemonEntry {
    pub fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut v = vec![
            DaemonAttr::State(self.state.raw()),
            DaemonAttr::McastIfn(self.ifname.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        if let Some(l) = self.max_len {
            v.push(DaemonAttr::SyncMaxlen(l));
        }
        match self.group {
            Some(IpAddr::V4(g)) => v.push(DaemonAttr::McastGroup(g)),
            Some(IpAddr::V6(g)) => v.push(DaemonAttr::McastGroup6(g)),
            None => {}
        }
        if let Some(p) = self.port {
            v.push(DaemonAttr::McastPort(p));
        }
        if let Some(t) = self.ttl {
            v.push(DaemonAttr::McastTtl(t));
        }
        v
    }

    pub fn from_attrs(attrs: &[DaemonAttr]) -> Result<DaemonEntry, ParseError> {
        let mut state = None;
        let mut e = DaemonEntry {
            state: DaemonState::Master,
            ifname: String::new(),
            sync_id: 0,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        };
        for a in attrs {
            match a {
                DaemonAttr::State(s) => state = Some(*s),
                DaemonAttr::McastIfn(n) => e.ifname = n.clone(),
                DaemonAttr::SyncId(i) => e.sync_id = *i,
                DaemonAttr::SyncMaxlen(l) => e.max_len = Some(*l),
                DaemonAttr::McastGroup(g) if !g.is_unspecified() => e.group = Some(IpAddr::V4(*g)),
                DaemonAttr::McastGroup6(g) if !g.is_unspecified() => e.group = Some(IpAddr::V6(*g)),
                DaemonAttr::McastPort(p) => e.port = Some(*p),
                DaemonAttr::McastTtl(t) => e.ttl = Some(*t),
                _ => {}
            }
        }
        e.state = match state {
            Some(STATE_MASTER) => DaemonState::Master,
            Some(STATE_BACKUP) => DaemonState::Backup,
            Some(s) => {
                return Err(ParseError::new(
                    "daemon STATE",
                    format!("unknown state {s}"),
                ))
            }
            None => return Err(ParseError::new("daemon", "no STATE attribute")),
        };
        Ok(e)
    }
}

/// Connection timeouts in seconds (0 in a SET_CONFIG: leave unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// GET_INFO reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// `IP_VS_VERSION_CODE`-style: major << 16 | minor << 8 | patch.
    pub version: u32,
    /// Size of the connection hash table.
    pub conn_tab_size: u32,
}

impl Info {
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}.{}",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Direct readers for dumps: the same result as parsing the attribute list and then
// `from_attrs`, without building the list (a 10,000-destination dump is parsed in a TCG guest
// in a fraction of the time).

fn stats_direct(data: &[u8]) -> Result<Stats, ParseError> {
    use stats_attr::*;
    let mut s = Stats::default();
    for a in nl::attrs(data) {
        let a = a?;
        let v = match a.data.len() {
            4 => a.u32("stats counter")? as u64,
            8 => a.u64("stats counter")?,
            _ if a.kind == PAD => continue,
            n => {
                return Err(ParseError::new(
                    "stats counter",
                    format!("payload is {n} bytes, expected 4 or 8"),
                ))
            }
        };
        match a.kind {
            CONNS => s.conns = v,
            INPKTS => s.inpkts = v,
            OUTPKTS => s.outpkts = v,
            INBYTES => s.inbytes = v,
            OUTBYTES => s.outbytes = v,
            CPS => s.cps = v,
            INPPS => s.inpps = v,
            OUTPPS => s.outpps = v,
            INBPS => s.inbps = v,
            OUTBPS => s.outbps = v,
            _ => {}
        }
    }
    Ok(s)
}

/// The payload of the first-level attribute `kind` in a message's attribute stream.
pub fn nested_payload(attrs: &[u8], kind: u16) -> Result<Option<&[u8]>, ParseError> {
    for a in nl::attrs(attrs) {
        let a = a?;
        if a.kind == kind {
            return Ok(Some(a.data));
        }
    }
    Ok(None)
}

/// First-level attribute numbers of the nested service and destination.
pub const CMD_ATTR_SERVICE: u16 = cmd_attr::SERVICE;
pub const CMD_ATTR_DEST: u16 = cmd_attr::DEST;

impl ServiceEntry {
    /// Reads a service from the payload of `IPVS_CMD_ATTR_SERVICE`; equal to
    /// `from_attrs` of the parsed attributes.
    pub fn parse_nested(data: &[u8]) -> Result<ServiceEntry, ParseError> {
        let mut keep = Vec::with_capacity(10);
        let mut stats = None;
        let mut stats64 = None;
        for a in nl::attrs(data) {
            let a = a?;
            match a.kind {
                svc_attr::STATS => stats = Some(stats_direct(a.data)?),
                svc_attr::STATS64 => stats64 = Some(stats_direct(a.data)?),
                _ => keep.push(SvcAttr::parse(&a)?),
            }
        }
        let mut e = ServiceEntry::from_attrs(&keep)?;
        e.stats = stats64.or(stats);
        Ok(e)
    }
}

impl DestEntry {
    /// Reads a destination from the payload of `IPVS_CMD_ATTR_DEST`; equal to `from_attrs` of
    /// the parsed attributes.
    pub fn parse_nested(data: &[u8], service_af: u16) -> Result<DestEntry, ParseError> {
        let mut keep = Vec::with_capacity(16);
        let mut stats = None;
        let mut stats64 = None;
        for a in nl::attrs(data) {
            let a = a?;
            match a.kind {
                dest_attr::STATS => stats = Some(stats_direct(a.data)?),
                dest_attr::STATS64 => stats64 = Some(stats_direct(a.data)?),
                _ => keep.push(DestAttr::parse(&a)?),
            }
        }
        let mut e = DestEntry::from_attrs(&keep, service_af)?;
        e.stats = stats64.or(stats);
        Ok(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// Request builders: each returns the message for one kernel operation.
pub mod request {
    use super::*;

    pub fn get_info() -> IpvsMessage {
        IpvsMessage::new(cmd::GET_INFO, vec![])
    }
    pub fn get_services() -> IpvsMessage {
        IpvsMessage::new(cmd::GET_SERVICE, vec![])
    }
    pub fn add_service(s: &ServiceEntry) -> IpvsMessage {
        IpvsMessage::new(cmd::NEW_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
    }
    pub fn edit_service(s: &ServiceEntry) -> IpvsMessage {
        IpvsMessage::new(cmd::SET_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
    }
    pub fn del_service(id: &ServiceId) -> IpvsMessage {
        IpvsMessage::new(cmd::DEL_SERVICE, vec![CmdAttr::Service(id.attrs())])
    }
    pub fn get_dests(id: &ServiceId) -> IpvsMessage {
        IpvsMessage::new(cmd::GET_DEST, vec![CmdAttr::Service(id.attrs())])
    }
    pub fn add_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
        IpvsMessage::new(
            cmd::NEW_DEST,
            vec![CmdAttr::Service(id.attrs()), CmdAttr::Dest(d.to_attrs())],
        )
    }
    pub fn edit_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
        IpvsMessage::new(
            cmd::SET_DEST,
            vec![CmdAttr::Service(id.attrs()), CmdAttr::Dest(d.to_attrs())],
        )
    }
    pub fn del_dest(id: &ServiceId, addr: &IpAddr, port: u16) -> IpvsMessage {
        IpvsMessage::new(
            cmd::DEL_DEST,
            vec![
                CmdAttr::Service(id.attrs()),
                CmdAttr::Dest(DestEntry::key_attrs(addr, port)),
            ],
        )
    }
    pub fn get_timeouts() -> IpvsMessage {
        IpvsMessage::new(cmd::GET_CONFIG, vec![])
    }
    /// Fields that are 0 are left unchanged by the kernel.
    pub fn set_timeouts(t: &Timeouts) -> IpvsMessage {
        IpvsMessage::new(
            cmd::SET_CONFIG,
            vec![
                CmdAttr::TimeoutTcp(t.tcp),
                CmdAttr::TimeoutTcpFin(t.tcp_fin),
                CmdAttr::TimeoutUdp(t.udp),
            ],
        )
    }
    pub fn get_daemons() -> IpvsMessage {
        IpvsMessage::new(cmd::GET_DAEMON, vec![])
    }
    pub fn start_daemon(d: &DaemonEntry) -> IpvsMessage {
        IpvsMessage::new(cmd::NEW_DAEMON, vec![CmdAttr::Daemon(d.to_attrs())])
    }
    pub fn stop_daemon(state: DaemonState) -> IpvsMessage {
        IpvsMessage::new(
            cmd::DEL_DAEMON,
            vec![CmdAttr::Daemon(vec![DaemonAttr::State(state.raw())])],
        )
    }
}

/// Reads the timeouts from a GET_CONFIG reply.
pub fn timeouts_from(m: &IpvsMessage) -> Timeouts {
    let mut t = Timeouts::default();
    for a in &m.attrs {
        match *a {
            CmdAttr::TimeoutTcp(v) => t.tcp = v,
            CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = v,
            CmdAttr::TimeoutUdp(v) => t.udp = v,
            _ => {}
        }
    }
    t
}

/// Reads a GET_INFO reply.
pub fn info_from(m: &IpvsMessage) -> Result<Info, ParseError> {
    let mut version = None;
    let mut size = None;
    for a in &m.attrs {
        match *a {
            CmdAttr::InfoVersion(v) => version = Some(v),
            CmdAttr::InfoConnTabSize(v) => size = Some(v),
            _ => {}
        }
    }
    Ok(Info {
        version: version.ok_or_else(|| ParseError::new("info reply", "no VERSION"))?,
        conn_tab_size: size.ok_or_else(|| ParseError::new("info reply", "no CONN_TAB_SIZE"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Byte vectors follow ip_vs.h's attribute numbering and the kernel's nla_put calls;
    // integers are little-endian (x86-64), ports and IPv4 masks big-endian.

    fn emit(m: &IpvsMessage) -> Vec<u8> {
        let mut b = Vec::new();
        m.emit_attrs(&mut b);
        b
    }

    fn web_service() -> ServiceEntry {
        ServiceEntry {
            id: ServiceId::Addr {
                protocol: IPPROTO_TCP,
                addr: "192.0.2.10".parse().unwrap(),
                port: 80,
            },
            scheduler: "wlc".into(),
            flags: SVC_F_PERSISTENT,
            timeout: 300,
            netmask: 24,
            pe_name: None,
            stats: None,
        }
    }

    /// NEW_SERVICE tcp 192.0.2.10:80 wlc, persistent 300 s per /24.
    const NEW_SERVICE_BYTES: &[u8] = &[
        84, 0, 1, 0x80, // IPVS_CMD_ATTR_SERVICE, nested, 84 bytes
        6, 0, 1, 0, 2, 0, 0, 0, // AF = AF_INET
        6, 0, 2, 0, 6, 0, 0, 0, // PROTOCOL = IPPROTO_TCP
        20, 0, 3, 0, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ADDR (nf_inet_addr)
        6, 0, 4, 0, 0, 80, 0, 0, // PORT, big-endian
        8, 0, 6, 0, b'w', b'l', b'c', 0, // SCHED_NAME
        12, 0, 7, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // FLAGS {PERSISTENT, mask ~0}
        8, 0, 8, 0, 0x2c, 1, 0, 0, // TIMEOUT 300
        8, 0, 9, 0, 255, 255, 255, 0, // NETMASK 255.255.255.0 (be32)
    ];

    #[test]
    fn new_service_bytes() {
        let m = request::add_service(&web_service());
        assert_eq!(emit(&m), NEW_SERVICE_BYTES);
        let back = IpvsMessage::parse(cmd::NEW_SERVICE, NEW_SERVICE_BYTES).unwrap();
        assert_eq!(back, m);
        let entry = ServiceEntry::from_attrs(back.service().unwrap()).unwrap();
        assert_eq!(entry, web_service());
    }

    #[test]
    fn fwmark_ipv6_service_and_netmask_as_prefix() {
        let s = ServiceEntry {
            id: ServiceId::Fwmark {
                af: AF_INET6,
                mark: 7,
            },
            scheduler: "sh".into(),
            flags: SVC_F_SCHED_SH_FALLBACK | SVC_F_SCHED_SH_PORT,
            timeout: 0,
            netmask: 64,
            pe_name: None,
            stats: None,
        };
        let b = emit(&request::edit_service(&s));
        assert_eq!(
            b,
            [
                56, 0, 1, 0x80, //
                6, 0, 1, 0, 10, 0, 0, 0, // AF_INET6
                8, 0, 5, 0, 7, 0, 0, 0, // FWMARK 7
                7, 0, 6, 0, b's', b'h', 0, 0, // "sh\0" + pad
                12, 0, 7, 0, 0x18, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // SCHED1|SCHED2
                8, 0, 8, 0, 0, 0, 0, 0, // TIMEOUT 0
                8, 0, 9, 0, 64, 0, 0, 0, // prefix length 64, host order
            ]
        );
        let back = IpvsMessage::parse(cmd::SET_SERVICE, &b).unwrap();
        assert_eq!(
            ServiceEntry::from_attrs(back.service().unwrap()).unwrap(),
            s
        );
    }

    #[test]
    fn dump_reply_with_stats_and_unknown_attribute() {
        // A GET_SERVICE dump entry as 6.1 sends it: id, sched, flags incl. HASHED, timeout,
        // netmask, STATS (32/64-bit mix), STATS64, and an attribute from the future (99).
        let mut svc = Vec::new();
        for a in [
            SvcAttr::Af(AF_INET),
            SvcAttr::Protocol(IPPROTO_UDP),
            SvcAttr::Addr(addr_bytes(&"10.0.0.1".parse().unwrap())),
            SvcAttr::Port(53),
            SvcAttr::SchedName("rr".into()),
            SvcAttr::Flags(FlagsAttr {
                flags: SVC_F_HASHED | SVC_F_ONEPACKET,
                mask: u32::MAX,
            }),
            SvcAttr::Timeout(0),
            SvcAttr::Netmask([255, 255, 255, 255]),
        ] {
            a.emit(&mut svc);
        }
        // STATS: conns u32 = 5, inbytes u64 = 1000
        svc.extend_from_slice(&[
            24, 0, 10, 0x80, 8, 0, 1, 0, 5, 0, 0, 0, 12, 0, 4, 0, 0xe8, 3, 0, 0, 0, 0, 0, 0,
        ]);
        // STATS64: conns u64 = 6
        svc.extend_from_slice(&[16, 0, 12, 0x80, 12, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        svc.extend_from_slice(&[8, 0, 99, 0, 1, 2, 3, 4]);
        let mut b = Vec::new();
        nl::put_attr(&mut b, 1 | nl::NLA_F_NESTED, &svc);
        let m = IpvsMessage::parse(cmd::NEW_SERVICE, &b).unwrap();
        let attrs = m.service().unwrap();
        assert!(attrs.contains(&SvcAttr::Stats(vec![
            StatsAttr::Conns(5),
            StatsAttr::InBytes(1000)
        ])));
        assert_eq!(
            attrs.last(),
            Some(&SvcAttr::Other(RawAttr {
                kind: 99,
                data: vec![1, 2, 3, 4]
            }))
        );
        // Re-emitting gives the same bytes (unknown attributes survive).
        assert_eq!(emit(&m), b);
        let e = ServiceEntry::from_attrs(attrs).unwrap();
        assert_eq!(e.stats.unwrap().conns, 6, "STATS64 wins over STATS");
        assert_eq!(e.netmask, 32);
        assert_eq!(e.flags & !SVC_F_HASHED, SVC_F_ONEPACKET);
        assert_eq!(e.id.to_string(), "udp 10.0.0.1:53");
    }

    #[test]
    fn new_dest_bytes() {
        let id = ServiceId::Addr {
            protocol: IPPROTO_TCP,
            addr: "192.0.2.10".parse().unwrap(),
            port: 80,
        };
        let mut d = DestEntry::new("10.1.0.11".parse().unwrap(), 8080, FwdMethod::Route, 3);
        d.upper_threshold = 100;
        d.lower_threshold = 10;
        let b = emit(&request::add_dest(&id, &d));
        let mut expected = vec![
            48, 0, 1, 0x80, // service id only
            6, 0, 1, 0, 2, 0, 0, 0, 6, 0, 2, 0, 6, 0, 0, 0, 20, 0, 3, 0, 192, 0, 2, 10, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 4, 0, 0, 80, 0, 0,
        ];
        expected.extend_from_slice(&[
            72, 0, 2, 0x80, // IPVS_CMD_ATTR_DEST
            6, 0, 11, 0, 2, 0, 0, 0, // ADDR_FAMILY
            20, 0, 1, 0, 10, 1, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ADDR
            6, 0, 2, 0, 0x1f, 0x90, 0, 0, // PORT 8080 big-endian
            8, 0, 3, 0, 3, 0, 0, 0, // FWD_METHOD = IP_VS_CONN_F_DROUTE
            8, 0, 4, 0, 3, 0, 0, 0, // WEIGHT
            8, 0, 5, 0, 100, 0, 0, 0, // U_THRESH
            8, 0, 6, 0, 10, 0, 0, 0, // L_THRESH
        ]);
        assert_eq!(b, expected);
        let back = IpvsMessage::parse(cmd::NEW_DEST, &b).unwrap();
        assert_eq!(
            DestEntry::from_attrs(back.dest().unwrap(), AF_INET).unwrap(),
            d
        );
    }

    #[test]
    fn dest_dump_with_counters_and_v6() {
        let attrs = vec![
            DestAttr::Addr(addr_bytes(&"2001:db8::5".parse().unwrap())),
            DestAttr::Port(443),
            DestAttr::FwdMethod(0x2 | 0x0100), // tunnel, plus a non-method bit
            DestAttr::Weight(1),
            DestAttr::UThresh(0),
            DestAttr::LThresh(0),
            DestAttr::ActiveConns(4),
            DestAttr::InactConns(2),
            DestAttr::PersistConns(1),
            DestAttr::AddrFamily(AF_INET6),
            DestAttr::TunType(0),
            DestAttr::TunPort(0),
            DestAttr::TunFlags(0),
        ];
        let mut b = Vec::new();
        attrs.iter().for_each(|a| a.emit(&mut b));
        let parsed: Vec<DestAttr> = nl::attrs(&b)
            .map(|a| DestAttr::parse(&a.unwrap()).unwrap())
            .collect();
        assert_eq!(parsed, attrs);
        let d = DestEntry::from_attrs(&parsed, AF_INET).unwrap();
        assert_eq!(d.addr, "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(d.fwd, FwdMethod::Tunnel);
        assert_eq!((d.active_conns, d.inactive_conns), (4, 2));
        assert!(d.tunnel.is_some());
        let no_addr = DestEntry::from_attrs(&[DestAttr::Port(1)], AF_INET).unwrap_err();
        assert!(no_addr.detail.contains("no ADDR"));
    }

    #[test]
    fn timeouts_info_and_daemon() {
        let b = emit(&request::set_timeouts(&Timeouts {
            tcp: 7200,
            tcp_fin: 120,
            udp: 300,
        }));
        assert_eq!(
            b,
            [8, 0, 4, 0, 0x20, 0x1c, 0, 0, 8, 0, 5, 0, 120, 0, 0, 0, 8, 0, 6, 0, 0x2c, 1, 0, 0]
        );
        let t = timeouts_from(&IpvsMessage::parse(cmd::SET_CONFIG, &b).unwrap());
        assert_eq!((t.tcp, t.tcp_fin, t.udp), (7200, 120, 300));

        // GET_INFO reply: version 1.2.1, 4096 buckets; attribute 1 means VERSION here.
        let info = [8, 0, 1, 0, 1, 2, 1, 0, 8, 0, 2, 0, 0, 0x10, 0, 0];
        let m = IpvsMessage::parse(cmd::SET_INFO, &info).unwrap();
        let i = info_from(&m).unwrap();
        assert_eq!(
            (i.version_string(), i.conn_tab_size),
            ("1.2.1".into(), 4096)
        );

        let d = DaemonEntry {
            state: DaemonState::Master,
            ifname: "eth1".into(),
            sync_id: 51,
            max_len: None,
            group: Some("224.0.0.81".parse().unwrap()),
            port: Some(8848),
            ttl: Some(1),
        };
        let b = emit(&request::start_daemon(&d));
        assert_eq!(
            b,
            [
                56, 0, 3, 0x80, // IPVS_CMD_ATTR_DAEMON
                8, 0, 1, 0, 1, 0, 0, 0, // STATE master
                9, 0, 2, 0, b'e', b't', b'h', b'1', 0, 0, 0, 0, // MCAST_IFN
                8, 0, 3, 0, 51, 0, 0, 0, // SYNC_ID
                8, 0, 5, 0, 224, 0, 0, 81, // MCAST_GROUP
                6, 0, 7, 0, 0x90, 0x22, 0, 0, // MCAST_PORT 8848, host order (nla_get_u16)
                5, 0, 8, 0, 1, 0, 0, 0, // MCAST_TTL
            ]
        );
        let back = IpvsMessage::parse(cmd::NEW_DAEMON, &b).unwrap();
        assert_eq!(DaemonEntry::from_attrs(back.daemon().unwrap()).unwrap(), d);
        assert_eq!(
            emit(&request::stop_daemon(DaemonState::Backup)),
            [12, 0, 3, 0x80, 8, 0, 1, 0, 2, 0, 0, 0]
        );
    }

    #[test]
    fn direct_readers_match_the_attribute_model() {
        let mut d = Vec::new();
        for a in [
            DestAttr::Addr(addr_bytes(&"10.1.0.11".parse().unwrap())),
            DestAttr::Port(80),
            DestAttr::FwdMethod(0),
            DestAttr::Weight(3),
            DestAttr::UThresh(0),
            DestAttr::LThresh(0),
            DestAttr::ActiveConns(7),
            DestAttr::InactConns(1),
            DestAttr::PersistConns(0),
            DestAttr::Stats(vec![StatsAttr::Conns(9), StatsAttr::InBytes(1 << 40)]),
            DestAttr::AddrFamily(AF_INET),
            DestAttr::Stats64(vec![StatsAttr::Conns(10), StatsAttr::OutBytes(5)]),
        ] {
            a.emit(&mut d);
        }
        let list: Vec<DestAttr> = nl::attrs(&d)
            .map(|a| DestAttr::parse(&a.unwrap()).unwrap())
            .collect();
        let via_list = DestEntry::from_attrs(&list, AF_INET).unwrap();
        let direct = DestEntry::parse_nested(&d, AF_INET).unwrap();
        assert_eq!(direct, via_list);
        assert_eq!(direct.stats.unwrap().conns, 10);

        let mut m = Vec::new();
        request::add_service(&web_service()).emit_attrs(&mut m);
        let payload = nested_payload(&m, CMD_ATTR_SERVICE).unwrap().unwrap();
        assert_eq!(ServiceEntry::parse_nested(payload).unwrap(), web_service());
        assert_eq!(nested_payload(&m, CMD_ATTR_DEST).unwrap(), None);
    }

    #[test]
    fn netmask_conversions() {
        assert_eq!(netmask_bytes(AF_INET, 24), [255, 255, 255, 0]);
        assert_eq!(netmask_bytes(AF_INET, 0), [0, 0, 0, 0]);
        assert_eq!(netmask_bytes(AF_INET, 32), [255; 4]);
        assert_eq!(netmask_prefix(AF_INET, [255, 255, 240, 0]), 20);
        assert_eq!(netmask_prefix(AF_INET6, 48u32.to_ne_bytes()), 48);
    }

    #[test]
    fn service_without_identity_is_refused() {
        let e = ServiceEntry::from_attrs(&[SvcAttr::Af(AF_INET), SvcAttr::Port(80)]).unwrap_err();
        assert!(e.detail.contains("neither a firewall mark"), "{e}");
        let e = ServiceEntry::from_attrs(&[SvcAttr::Port(80)]).unwrap_err();
        assert!(e.detail.contains("no AF"), "{e}");
    }
}

/// Replies captured from the real kernel (Debian 6.1 cloud kernel in a TCG guest) with
/// `ipvs-bench capture`: one service tcp 10.10.0.1:80 wlc persistent 300 s /24, one real
/// 10.20.0.1:80 route weight 3 thresholds 100/10, timeouts 7200/120/300, a master sync daemon
/// on eth0 with sync id 51. The kernel nests without NLA_F_NESTED and sends STATS and STATS64.
#[cfg(test)]
mod captured {
    use super::super::nl::{self, Received};
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The one generic netlink message of a datagram, parsed.
    fn genl(datagram: &str) -> IpvsMessage {
        let bytes = unhex(datagram);
        let msgs: Vec<_> = nl::messages(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        match &msgs[0] {
            Received::Genl { genl, attrs, .. } => {
                assert_eq!(genl.version, 1);
                IpvsMessage::parse(genl.cmd, attrs).unwrap()
            }
            m => panic!("{m:?}"),
        }
    }

    const SERVICE_DUMP: &str = concat!(
            "40010000200002000600000058000000010100002c01010006000100020000000600020006000000140003000a0a0001",
            "000000000000000000000000060004000050000008000600776c63000c00070003000000ffffffff080008002c010000",
            "08000900ffffff005c000a000800010000000000080002000000000008000300000000000c0004000000000000000000",
            "0c0005000000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00",
            "000000007c000c000c00010000000000000000000c00020000000000000000000c00030000000000000000000c000400",
            "00000000000000000c00050000000000000000000c00060000000000000000000c00070000000000000000000c000800",
            "00000000000000000c00090000000000000000000c000a000000000000000000",
        );
    const DEST_DUMP: &str = concat!(
            "640100002000020007000000580000000501000050010200140001000a14000100000000000000000000000006000200",
            "005000000800030003000000080004000300000005000d000000000006000e000000000006000f000000000008000500",
            "64000000080006000a00000008000700000000000800080000000000080009000000000006000b00020000005c000a00",
            "0800010000000000080002000000000008000300000000000c00040000000000000000000c0005000000000000000000",
            "080006000000000008000700000000000800080000000000080009000000000008000a00000000007c000c000c000100",
            "00000000000000000c00020000000000000000000c00030000000000000000000c00040000000000000000000c000500",
            "00000000000000000c00060000000000000000000c00070000000000000000000c00080000000000000000000c000900",
            "00000000000000000c000a000000000000000000",
        );
    const DONE: &str = "1400000003000200060000005800000000000000";
    const INFO: &str = "240000002000000005000000580000000e01000008000100010201000800020000100000";
    const CONFIG: &str =
        "2c0000002000000008000000580000000c01000008000400201c00000800050078000000080006002c010000";
    const DAEMON: &str = concat!(
            "540000002000020009000000580000000901000040000300080001000100000009000200657468300000000008000300",
            "3300000006000400c00500000600070090220000050008000100000008000500e0000051",
        );
    const EEXIST: &str = "24000000020000010a00000058000000efffffff68000000200005000a00000000000000";

    #[test]
    fn service_dump() {
        let m = genl(SERVICE_DUMP);
        assert_eq!(m.cmd, cmd::NEW_SERVICE);
        let s = ServiceEntry::from_attrs(m.service().unwrap()).unwrap();
        assert_eq!(
            s.id,
            ServiceId::Addr {
                protocol: IPPROTO_TCP,
                addr: "10.10.0.1".parse().unwrap(),
                port: 80
            }
        );
        assert_eq!(s.scheduler, "wlc");
        assert_eq!(s.flags, SVC_F_PERSISTENT | SVC_F_HASHED);
        assert_eq!((s.timeout, s.netmask), (300, 24));
        assert_eq!(s.stats, Some(Stats::default()));
        // The direct reader gives the same entry.
        let bytes = unhex(SERVICE_DUMP);
        let attrs = &bytes[nl::NLMSG_HDRLEN + nl::GENL_HDRLEN..];
        let payload = nested_payload(attrs, CMD_ATTR_SERVICE).unwrap().unwrap();
        assert_eq!(ServiceEntry::parse_nested(payload).unwrap(), s);
    }

    #[test]
    fn dest_dump() {
        let m = genl(DEST_DUMP);
        assert_eq!(m.cmd, cmd::NEW_DEST);
        let d = DestEntry::from_attrs(m.dest().unwrap(), AF_INET).unwrap();
        let mut want = DestEntry::new("10.20.0.1".parse().unwrap(), 80, FwdMethod::Route, 3);
        want.upper_threshold = 100;
        want.lower_threshold = 10;
        want.stats = Some(Stats::default());
        assert_eq!(d, want);
        // 6.1 also reports the tunnel attributes, zero for a non-tunnel real.
        assert!(m.dest().unwrap().contains(&DestAttr::TunType(0)));
    }

    #[test]
    fn info_config_daemon_done_and_eexist() {
        let i = info_from(&genl(INFO)).unwrap();
        assert_eq!(
            (i.version_string().as_str(), i.conn_tab_size),
            ("1.2.1", 4096)
        );
        let c = genl(CONFIG);
        assert_eq!(c.cmd, cmd::SET_CONFIG);
        assert_eq!(
            timeouts_from(&c),
            Timeouts {
                tcp: 7200,
                tcp_fin: 120,
                udp: 300
            }
        );
        let d = genl(DAEMON);
        assert_eq!(
            DaemonEntry::from_attrs(d.daemon().unwrap()).unwrap(),
            DaemonEntry {
                state: DaemonState::Master,
                ifname: "eth0".into(),
                sync_id: 51,
                max_len: Some(1472),
                group: Some("224.0.0.81".parse().unwrap()),
                port: Some(8848),
                ttl: Some(1),
            }
        );
        let done = unhex(DONE);
        assert!(matches!(
            nl::messages(&done).next().unwrap().unwrap(),
            Received::Done { errno: 0, .. }
        ));
        let err = unhex(EEXIST);
        match nl::messages(&err).next().unwrap().unwrap() {
            Received::Error { errno, request, .. } => {
                assert_eq!(errno, 17);
                assert_eq!(request.seq, 10);
            }
            m => panic!("{m:?}"),
        }
    }
}
