//! Typed entries: a service ([`ServiceEntry`], named by [`ServiceId`]), a destination
//! ([`DestEntry`]), a sync daemon ([`DaemonEntry`]), counters ([`Stats`]), timeouts and the
//! GET_INFO reply, converted to and from the attribute lists of `attrs` (`to_attrs` /
//! `from_attrs`), and read straight from a dump's bytes (`parse_nested`).

use super::super::nl::{self, ParseError};
use super::attrs::{dest_attr, stats_attr, svc_attr};
use super::{
    CmdAttr, DaemonAttr, DestAttr, FlagsAttr, IpvsMessage, StatsAttr, SvcAttr, AF_INET, AF_INET6,
    IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, STATE_BACKUP, STATE_MASTER, SVC_F_HASHED,
};
use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Identity of a virtual service in the kernel. Ordered as a derived `Ord` would order it
/// (address services first), comparing addresses as numbers ([`ip_cmp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

impl Ord for ServiceId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (
                ServiceId::Addr {
                    protocol,
                    addr,
                    port,
                },
                ServiceId::Addr {
                    protocol: p,
                    addr: a,
                    port: o,
                },
            ) => protocol
                .cmp(p)
                .then_with(|| ip_cmp(addr, a))
                .then(port.cmp(o)),
            (ServiceId::Fwmark { af, mark }, ServiceId::Fwmark { af: a, mark: m }) => {
                af.cmp(a).then(mark.cmp(m))
            }
            (ServiceId::Addr { .. }, ServiceId::Fwmark { .. }) => Ordering::Less,
            (ServiceId::Fwmark { .. }, ServiceId::Addr { .. }) => Ordering::Greater,
        }
    }
}

impl PartialOrd for ServiceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `IpAddr`'s own order (every IPv4 address before every IPv6 one, then by value), with each
/// address compared as one number rather than byte by byte: the kernel model's maps compare
/// addresses on every lookup.
pub fn ip_cmp(a: &IpAddr, b: &IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.to_bits().cmp(&b.to_bits()),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.to_bits().cmp(&b.to_bits()),
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
    }
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
        let mut v = Vec::with_capacity(4);
        self.each_attr(|a| v.push(a));
        v
    }

    /// [`Self::attrs`] one at a time, none collected (a full apply names thousands).
    pub fn each_attr(&self, mut f: impl FnMut(SvcAttr)) {
        match *self {
            ServiceId::Addr {
                protocol,
                addr,
                port,
            } => {
                f(SvcAttr::Af(af_of(&addr)));
                f(SvcAttr::Protocol(protocol));
                f(SvcAttr::Addr(addr_bytes(&addr)));
                f(SvcAttr::Port(port));
            }
            ServiceId::Fwmark { af, mark } => {
                f(SvcAttr::Af(af));
                f(SvcAttr::Fwmark(mark));
            }
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

/// A destination as NEW_DEST and SET_DEST set it: key and settings, no counters (a
/// [`DestEntry`] is several times larger, for its counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestSettings {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: u32,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub tunnel: Option<Tunnel>,
}

impl DestSettings {
    /// Its attributes, in the order the kernel's own tools send them.
    pub fn each_attr(&self, mut f: impl FnMut(DestAttr)) {
        DestEntry::each_key_attr(&self.addr, self.port, &mut f);
        f(DestAttr::FwdMethod(self.fwd.conn_flags()));
        f(DestAttr::Weight(self.weight));
        f(DestAttr::UThresh(self.upper_threshold));
        f(DestAttr::LThresh(self.lower_threshold));
        if let Some(t) = self.tunnel {
            f(DestAttr::TunType(t.kind));
            f(DestAttr::TunPort(t.port));
            f(DestAttr::TunFlags(t.flags));
        }
    }
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
        let mut v = Vec::with_capacity(3);
        Self::each_key_attr(addr, port, |a| v.push(a));
        v
    }

    /// [`Self::key_attrs`] one at a time, none collected.
    pub fn each_key_attr(addr: &IpAddr, port: u16, mut f: impl FnMut(DestAttr)) {
        f(DestAttr::AddrFamily(af_of(addr)));
        f(DestAttr::Addr(addr_bytes(addr)));
        f(DestAttr::Port(port));
    }

    /// Attributes for NEW_DEST / SET_DEST (the kernel needs method, weight and both
    /// thresholds together).
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let mut v = Vec::with_capacity(10);
        self.each_attr(|a| v.push(a));
        v
    }

    /// [`Self::to_attrs`] one at a time, none collected (a full apply writes thousands).
    pub fn each_attr(&self, f: impl FnMut(DestAttr)) {
        self.settings().each_attr(f)
    }

    /// What NEW_DEST and SET_DEST carry of it.
    pub fn settings(&self) -> DestSettings {
        DestSettings {
            addr: self.addr,
            port: self.port,
            fwd: self.fwd,
            weight: self.weight,
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
            tunnel: self.tunnel,
        }
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

    /// The order a derived `Ord` gives: fields in declaration order, addresses by `IpAddr`'s.
    #[test]
    fn services_order_as_derived() {
        let addrs: Vec<IpAddr> = [
            "0.0.0.0",
            "10.0.0.1",
            "10.0.0.2",
            "10.0.1.0",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::1",
            "2001:db8::1:0",
            "ffff::",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut ids = Vec::new();
        for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
            for addr in &addrs {
                for port in [1, 80, 65535] {
                    ids.push(ServiceId::Addr {
                        protocol,
                        addr: *addr,
                        port,
                    });
                }
            }
        }
        for af in [AF_INET, AF_INET6] {
            for mark in [0, 1, u32::MAX] {
                ids.push(ServiceId::Fwmark { af, mark });
            }
        }
        // (variant, protocol or af, address, port or mark), compared with std's orders.
        let rank = |id: &ServiceId| match *id {
            ServiceId::Addr {
                protocol,
                addr,
                port,
            } => (0, protocol, Some(addr), u32::from(port)),
            ServiceId::Fwmark { af, mark } => (1, af, None, mark),
        };
        for a in &ids {
            for b in &ids {
                assert_eq!(a.cmp(b), rank(a).cmp(&rank(b)), "{a} against {b}");
            }
        }
        for a in &addrs {
            for b in &addrs {
                assert_eq!(ip_cmp(a, b), a.cmp(b), "{a} against {b}");
            }
        }
    }
}
