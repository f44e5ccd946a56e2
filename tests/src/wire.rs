//! What the network segment saw: a third-party observer on a test link, and the questions a
//! failover test asks of it.
//!
//! A balancer's logs say what it meant to do; clients and neighbours only see what went out on
//! the wire. [`Observer`] captures one interface of a namespace (a bridge, a tap, a veth end)
//! with an `AF_PACKET` socket and keeps the frames that matter to VRRP failover: VRRP adverts
//! (v2 and v3, IPv4 and IPv6), ARP, and ICMPv6 neighbour advertisements. Each is stamped with
//! the [`Instant`] it arrived.
//!
//! Parsing ([`parse_frame`]) and the questions asked of a capture ([`adverts`], [`garps_for`],
//! [`adverts_to`]) are pure functions over bytes and [`Event`] slices, so they are tested with
//! hand-built frames, without root. Who was master when, from the adverts, is the chaos
//! suite's analysis (`chaos::analysis`). [`timeline`] prints
//! a capture one line per frame for a failure message.
//!
//! [`send_frame`] and [`send_ipv4`] put hand-built traffic on a link, for tests of the observer
//! itself and for tests that inject what a rogue or confused neighbour would send.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{self, sockopt, LinkAddr, MsgFlags, SockaddrIn, SockaddrLike};
use nix::sys::time::TimeVal;

use crate::netns::{Netns, NetnsError};
use crate::MacAddr;

/// The IP protocol number (and IPv6 next header) of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// VRRP's IPv4 multicast group.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// VRRP's IPv6 multicast group.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// ARP opcode of a request.
pub const ARP_REQUEST: u16 = 1;
/// ARP opcode of a reply.
pub const ARP_REPLY: u16 = 2;

/// At most this many events are kept per capture (about a day of a busy failover test); later
/// ones are counted in [`Observer::dropped`], so memory stays bounded.
pub const MAX_EVENTS: usize = 1_000_000;

/// How long a read waits before the reader looks at its stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// A large receive buffer, so a burst while the reader is descheduled is not lost.
const RCVBUF: usize = 4 << 20;
/// Frames beyond this are cut; nothing kept here is nearly as long.
const FRAME_MAX: usize = 65536;

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NA: u8 = 136;

/// A capture or injection that failed.
#[derive(thiserror::Error)]
pub enum WireError {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket call failed.
    #[error("{op} on {ifname}: {source}")]
    Socket {
        /// The interface.
        ifname: String,
        /// What was being done ("opening a packet socket", "recv").
        op: &'static str,
        /// The error.
        #[source]
        source: Errno,
    },
    /// A frame too short to hold an Ethernet header was given to [`send_frame`].
    #[error("a frame of {len} bytes has no Ethernet header")]
    ShortFrame {
        /// Its length.
        len: usize,
    },
}

crate::debug_is_display!(WireError);

/// The Ethernet header of a kept frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Source MAC.
    pub src: MacAddr,
    /// Destination MAC.
    pub dst: MacAddr,
    /// The VLAN id of an 802.1Q tag, if the frame had one.
    pub vlan: Option<u16>,
}

/// A VRRP advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vrrp {
    /// IP source: which router sent it.
    pub src: IpAddr,
    /// IP destination: the multicast group or a unicast peer.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (RFC 5798 requires 255).
    pub ttl: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority; 0 means the master is giving up.
    pub priority: u8,
    /// Advertisement interval (v2 carries seconds, v3 centiseconds).
    pub interval: Duration,
    /// The virtual addresses.
    pub addresses: Vec<IpAddr>,
}

/// An ARP packet (Ethernet, IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// [`ARP_REQUEST`], [`ARP_REPLY`] or another opcode.
    pub op: u16,
    /// Sender hardware address: who claims `sender_ip`.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// An announcement (request or reply) about the sender's own address, which neighbours use
    /// to update their caches.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// An ICMPv6 neighbour advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination (ff02::1 for an unsolicited one).
    pub dst: Ipv6Addr,
    /// Hop limit (RFC 4861 requires 255).
    pub hop_limit: u8,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// The router flag.
    pub router: bool,
    /// The solicited flag: an answer to a neighbour solicitation.
    pub solicited: bool,
    /// The override flag: neighbours replace a cached MAC.
    pub override_: bool,
    /// The target link-layer address option, if present.
    pub target_mac: Option<MacAddr>,
}

impl NeighborAdvert {
    /// Sent on the sender's own initiative (an announcement), not as an answer.
    pub fn is_unsolicited(&self) -> bool {
        !self.solicited
    }
}

/// What a kept frame carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A VRRP advertisement.
    Vrrp(Vrrp),
    /// An ARP packet.
    Arp(Arp),
    /// An ICMPv6 neighbour advertisement.
    NeighborAdvert(NeighborAdvert),
}

/// A frame that [`parse_frame`] kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Its Ethernet header.
    pub link: Link,
    /// What it carried.
    pub body: Body,
}

impl Packet {
    /// The VRRP advert, if it is one.
    pub fn vrrp(&self) -> Option<&Vrrp> {
        match &self.body {
            Body::Vrrp(v) => Some(v),
            _ => None,
        }
    }

    /// The ARP packet, if it is one.
    pub fn arp(&self) -> Option<&Arp> {
        match &self.body {
            Body::Arp(a) => Some(a),
            _ => None,
        }
    }

    /// The neighbour advertisement, if it is one.
    pub fn neighbor_advert(&self) -> Option<&NeighborAdvert> {
        match &self.body {
            Body::NeighborAdvert(n) => Some(n),
            _ => None,
        }
    }

    /// A gratuitous ARP for `ip` (sender and target both `ip`) or an unsolicited neighbour
    /// advertisement whose target is `ip`: what tells neighbours where `ip` now lives.
    pub fn announces(&self, ip: IpAddr) -> bool {
        match (&self.body, ip) {
            (Body::Arp(a), IpAddr::V4(v4)) => a.is_gratuitous() && a.sender_ip == v4,
            (Body::NeighborAdvert(n), IpAddr::V6(v6)) => n.is_unsolicited() && n.target == v6,
            _ => false,
        }
    }
}

impl std::fmt::Display for Packet {
    /// One line, for failure messages: `vrrp v3 vrid 51 prio 100 10.0.0.2 > 224.0.0.18 ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.link;
        match &self.body {
            Body::Vrrp(v) => write!(
                f,
                "vrrp v{} vrid {} prio {} {} > {} ttl {} every {:?} {:?}",
                v.version, v.vrid, v.priority, v.src, v.dst, v.ttl, v.interval, v.addresses
            )?,
            Body::Arp(a) => {
                let op = match a.op {
                    ARP_REQUEST => "request".to_owned(),
                    ARP_REPLY => "reply".to_owned(),
                    op => format!("op {op}"),
                };
                write!(
                    f,
                    "arp {op} {} is {} (target {} {}){}",
                    a.sender_ip,
                    a.sender_mac,
                    a.target_ip,
                    a.target_mac,
                    if a.is_gratuitous() { " gratuitous" } else { "" }
                )?
            }
            Body::NeighborAdvert(n) => {
                write!(f, "na {} > {} target {}", n.src, n.dst, n.target)?;
                if let Some(m) = n.target_mac {
                    write!(f, " is {m}")?;
                }
                for (set, name) in [(n.router, "R"), (n.solicited, "S"), (n.override_, "O")] {
                    if set {
                        write!(f, " {name}")?;
                    }
                }
            }
        }
        write!(f, " [{} > {}", l.src, l.dst)?;
        if let Some(vlan) = l.vlan {
            write!(f, " vlan {vlan}")?;
        }
        write!(f, "]")
    }
}

/// `events` one per line with their time since `origin`, for failure messages.
pub fn timeline(events: &[Event], origin: Instant) -> String {
    events
        .iter()
        .map(|e| {
            let (sign, d) = match e.at.checked_duration_since(origin) {
                Some(d) => ("+", d),
                None => ("-", origin.duration_since(e.at)),
            };
            format!("{sign}{:.3}s {}\n", d.as_secs_f64(), e.packet)
        })
        .collect()
}

/// A kept frame and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When the reader received it.
    pub at: Instant,
    /// What it was.
    pub packet: Packet,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn mac(b: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(b.get(at..at + 6)?.try_into().ok()?))
}

fn ipv4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn ipv6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// Parses an Ethernet II frame (one 802.1Q tag allowed) into a VRRP advert, an ARP packet or a
/// neighbour advertisement; `None` for anything else or anything truncated. Checksums are not
/// verified: the observer reports what was sent, and the kernel has already dropped frames
/// with a bad Ethernet FCS.
pub fn parse_frame(frame: &[u8]) -> Option<Packet> {
    let dst = mac(frame, 0)?;
    let src = mac(frame, 6)?;
    let mut ethertype = be16(frame, 12)?;
    let mut off = 14;
    let mut vlan = None;
    if ethertype == ETH_P_8021Q {
        vlan = Some(be16(frame, 14)? & 0x0fff);
        ethertype = be16(frame, 16)?;
        off = 18;
    }
    let l3 = frame.get(off..)?;
    let body = match ethertype {
        ETH_P_IP => parse_ipv4(l3)?,
        ETH_P_IPV6 => parse_ipv6(l3)?,
        ETH_P_ARP => Body::Arp(parse_arp(l3)?),
        _ => return None,
    };
    Some(Packet {
        link: Link { src, dst, vlan },
        body,
    })
}

fn parse_arp(p: &[u8]) -> Option<Arp> {
    // Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses: the only ARP there is here.
    if be16(p, 0)? != 1 || be16(p, 2)? != ETH_P_IP || p.get(4..6)? != [6, 4] {
        return None;
    }
    Some(Arp {
        op: be16(p, 6)?,
        sender_mac: mac(p, 8)?,
        sender_ip: ipv4(p, 14)?,
        target_mac: mac(p, 18)?,
        target_ip: ipv4(p, 24)?,
    })
}

fn parse_ipv4(p: &[u8]) -> Option<Body> {
    let first = *p.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(be16(p, 2)?);
    if first >> 4 != 4 || ihl < 20 || total < ihl || total > p.len() {
        return None;
    }
    // A later fragment has no VRRP header; VRRP is never fragmented anyway.
    if be16(p, 6)? & 0x1fff != 0 || p[9] != IPPROTO_VRRP {
        return None;
    }
    let src = IpAddr::V4(ipv4(p, 12)?);
    let dst = IpAddr::V4(ipv4(p, 16)?);
    // `total` cuts the padding of short Ethernet frames.
    parse_vrrp(&p[ihl..total], src, dst, p[8]).map(Body::Vrrp)
}

fn parse_ipv6(p: &[u8]) -> Option<Body> {
    if *p.first()? >> 4 != 6 {
        return None;
    }
    let len = usize::from(be16(p, 4)?);
    let mut next = *p.get(6)?;
    let hop_limit = *p.get(7)?;
    let src = ipv6(p, 8)?;
    let dst = ipv6(p, 24)?;
    let mut rest = p.get(40..40 + len)?;
    // Hop-by-hop and destination options share one simple layout; skip a few.
    for _ in 0..4 {
        if next != 0 && next != 60 {
            break;
        }
        let ext_len = (usize::from(*rest.get(1)?) + 1) * 8;
        next = rest[0];
        rest = rest.get(ext_len..)?;
    }
    match next {
        IPPROTO_VRRP => {
            parse_vrrp(rest, IpAddr::V6(src), IpAddr::V6(dst), hop_limit).map(Body::Vrrp)
        }
        IPPROTO_ICMPV6 => parse_na(rest, src, dst, hop_limit).map(Body::NeighborAdvert),
        _ => None,
    }
}

fn parse_vrrp(p: &[u8], src: IpAddr, dst: IpAddr, ttl: u8) -> Option<Vrrp> {
    let first = *p.first()?;
    let version = first >> 4;
    // Type 1 is the only VRRP message: an advertisement.
    if first & 0x0f != 1 {
        return None;
    }
    let interval = match version {
        2 if src.is_ipv4() => Duration::from_secs(u64::from(*p.get(5)?)),
        3 => Duration::from_millis(u64::from(be16(p, 4)? & 0x0fff) * 10),
        _ => return None,
    };
    let count = usize::from(*p.get(3)?);
    let addresses = (0..count)
        .map(|i| match src {
            IpAddr::V4(_) => ipv4(p, 8 + 4 * i).map(IpAddr::V4),
            IpAddr::V6(_) => ipv6(p, 8 + 16 * i).map(IpAddr::V6),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Vrrp {
        src,
        dst,
        ttl,
        version,
        vrid: *p.get(1)?,
        priority: *p.get(2)?,
        interval,
        addresses,
    })
}

fn parse_na(p: &[u8], src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Option<NeighborAdvert> {
    if *p.first()? != ICMPV6_NA || *p.get(1)? != 0 {
        return None;
    }
    let flags = *p.get(4)?;
    let target = ipv6(p, 8)?;
    let mut target_mac = None;
    let mut opts = p.get(24..)?;
    while opts.len() >= 2 {
        let len = usize::from(opts[1]) * 8;
        // A zero length is invalid and would never advance.
        if len == 0 || len > opts.len() {
            break;
        }
        if opts[0] == 2 && len == 8 {
            target_mac = mac(opts, 2);
        }
        opts = &opts[len..];
    }
    Some(NeighborAdvert {
        src,
        dst,
        hop_limit,
        target,
        router: flags & 0x80 != 0,
        solicited: flags & 0x40 != 0,
        override_: flags & 0x20 != 0,
        target_mac,
    })
}

/// The VRRP adverts for `vrid` in `events`, in the order given.
pub fn adverts(events: &[Event], vrid: u8) -> impl Iterator<Item = (&Event, &Vrrp)> {
    events
        .iter()
        .filter_map(move |e| e.packet.vrrp().filter(|v| v.vrid == vrid).map(|v| (e, v)))
}

/// The distinct destinations of the adverts for `vrid`: the multicast group, or with unicast
/// peers configured exactly those peers.
pub fn adverts_to(events: &[Event], vrid: u8) -> BTreeSet<IpAddr> {
    adverts(events, vrid).map(|(_, v)| v.dst).collect()
}

/// The gratuitous ARPs and unsolicited neighbour advertisements for `vip` (see
/// [`Packet::announces`]) that arrived in `[from, from + within]`.
pub fn garps_for(events: &[Event], vip: IpAddr, from: Instant, within: Duration) -> Vec<&Event> {
    let until = from + within;
    events
        .iter()
        .filter(|e| e.at >= from && e.at <= until && e.packet.announces(vip))
        .collect()
}

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Event>>,
    stop: AtomicBool,
    dropped: AtomicU64,
}

impl Shared {
    fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() < MAX_EVENTS {
            events.push(event);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A capture of one interface inside a namespace, running until [`Observer::stop`] or drop.
///
/// The socket is in promiscuous mode (for this socket only; undone when it closes), so a
/// capture on a bridge sees unicast between the bridge's ports too. A capture on one port (a
/// tap) sees only what the bridge sends to and receives from that port: what that neighbour
/// sees.
pub struct Observer {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<Result<(), WireError>>>,
    ifname: String,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Starts capturing on `ifname` in `ns`. Frames that arrive after this returns are seen.
    pub fn start(ns: &Netns, ifname: &str) -> Result<Self, WireError> {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let reader = {
            let shared = Arc::clone(&shared);
            let ifname = ifname.to_owned();
            ns.thread(move || {
                let fd = match capture_socket(&ifname) {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                let _ = ready_tx.send(Ok(()));
                read_loop(&fd, &ifname, &shared)
            })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                shared,
                reader: Some(reader),
                ifname: ifname.to_owned(),
            }),
            Ok(Err(e)) => {
                let _ = reader.join();
                Err(e)
            }
            // The thread died before opening the socket: raise its panic here.
            Err(_) => match reader.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(r) => Err(r.expect_err("a reader that never got ready failed")),
            },
        }
    }

    /// The interface captured.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Everything kept so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.shared.snapshot()
    }

    /// What was kept at or after `t`.
    pub fn since(&self, t: Instant) -> Vec<Event> {
        let events = self.shared.events.lock().unwrap_or_else(|p| p.into_inner());
        // Arrival order is time order.
        let first = events.partition_point(|e| e.at < t);
        events[first..].to_vec()
    }

    /// Events not kept because [`MAX_EVENTS`] was reached.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Stops the capture and returns everything kept, or why the reader failed. A panic in the
    /// reader is raised here.
    pub fn stop(mut self) -> Result<Vec<Event>, WireError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        Ok(self.shared.snapshot())
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn sock_err<'a>(ifname: &'a str, op: &'static str) -> impl FnOnce(Errno) -> WireError + 'a {
    move |source| WireError::Socket {
        ifname: ifname.to_owned(),
        op,
        source,
    }
}

/// A packet socket bound to `ifname` for `protocol` (network order inside the address).
fn packet_socket(ifname: &str, protocol: u16) -> Result<(OwnedFd, u32), WireError> {
    // Protocol 0 at creation: nothing from other interfaces is queued before the bind.
    let fd = socket::socket(
        socket::AddressFamily::Packet,
        socket::SockType::Raw,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sock_err(ifname, "opening a packet socket"))?;
    let ifindex =
        nix::net::if_::if_nametoindex(ifname).map_err(sock_err(ifname, "finding the interface"))?;
    socket::bind(fd.as_raw_fd(), &link_addr(ifindex, protocol, None))
        .map_err(sock_err(ifname, "binding the packet socket"))?;
    Ok((fd, ifindex))
}

fn link_addr(ifindex: u32, protocol: u16, dst: Option<[u8; 6]>) -> LinkAddr {
    // SAFETY: an all-zero sockaddr_ll is valid; fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    if let Some(dst) = dst {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&dst);
    }
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is a complete sockaddr_ll of family AF_PACKET and `len` is its size.
    unsafe {
        LinkAddr::from_raw(
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            Some(len),
        )
    }
    .expect("a sockaddr_ll converts to a LinkAddr")
}

fn capture_socket(ifname: &str) -> Result<OwnedFd, WireError> {
    let (fd, ifindex) = packet_socket(ifname, ETH_P_ALL)?;
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex as i32,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: `mreq` is a packet_mreq that lives for the call; the length is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq as *const libc::packet_mreq as *const libc::c_void,
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    Errno::result(r).map_err(sock_err(ifname, "entering promiscuous mode"))?;
    socket::setsockopt(&fd, sockopt::RcvBuf, &RCVBUF)
        .map_err(sock_err(ifname, "setting the receive buffer"))?;
    socket::setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &TimeVal::from(libc::timeval {
            tv_sec: 0,
            tv_usec: READ_TIMEOUT.as_micros() as libc::suseconds_t,
        }),
    )
    .map_err(sock_err(ifname, "setting the read timeout"))?;
    Ok(fd)
}

fn read_loop(fd: &OwnedFd, ifname: &str, shared: &Shared) -> Result<(), WireError> {
    let mut buf = vec![0u8; FRAME_MAX];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => {
                let at = Instant::now();
                if let Some(packet) = parse_frame(&buf[..n]) {
                    shared.push(Event { at, packet });
                }
            }
            // A link set down (a test cutting a cable) reports ENETDOWN once; the socket
            // captures again when the link comes back.
            Err(Errno::EAGAIN | Errno::EINTR | Errno::ENETDOWN) => {}
            Err(e) => return Err(sock_err(ifname, "recv")(e)),
        }
    }
    Ok(())
}

/// Sends one hand-built Ethernet frame (header included, as it should appear on the wire) out
/// of `ifname` in `ns`.
pub fn send_frame(ns: &Netns, ifname: &str, frame: &[u8]) -> Result<(), WireError> {
    let (Some(dst), Some(ethertype)) = (mac(frame, 0), be16(frame, 12)) else {
        return Err(WireError::ShortFrame { len: frame.len() });
    };
    ns.enter(|| {
        let (fd, ifindex) = packet_socket(ifname, 0)?;
        let to = link_addr(ifindex, ethertype, Some(dst.0));
        socket::sendto(fd.as_raw_fd(), frame, &to, MsgFlags::empty())
            .map_err(sock_err(ifname, "sending a frame"))?;
        Ok(())
    })?
}

/// Sends `payload` as one IPv4 datagram of `protocol` to `dst` out of `ifname` in `ns`, with
/// TTL `ttl`; the kernel writes the IP header (source: the interface's address).
pub fn send_ipv4(
    ns: &Netns,
    ifname: &str,
    protocol: u8,
    dst: Ipv4Addr,
    ttl: u8,
    payload: &[u8],
) -> Result<(), WireError> {
    ns.enter(|| {
        // SAFETY: plain socket(2); the result is checked before it is owned.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        };
        let raw = Errno::result(raw).map_err(sock_err(ifname, "opening a raw IPv4 socket"))?;
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        socket::setsockopt(&fd, sockopt::BindToDevice, &ifname.into())
            .map_err(sock_err(ifname, "binding to the interface"))?;
        socket::setsockopt(&fd, sockopt::IpMulticastTtl, &ttl)
            .map_err(sock_err(ifname, "setting the multicast TTL"))?;
        socket::setsockopt(&fd, sockopt::Ipv4Ttl, &i32::from(ttl))
            .map_err(sock_err(ifname, "setting the TTL"))?;
        let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
        socket::sendto(fd.as_raw_fd(), payload, &to, MsgFlags::empty())
            .map_err(sock_err(ifname, "sending a datagram"))?;
        Ok(())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0, 0, 0x0a]);
    const B_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0, 0, 0x0b]);

    fn eth(dst: [u8; 6], src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4_header(proto: u8, ttl: u8, src: [u8; 4], dst: [u8; 4], payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0xc0];
        h.extend_from_slice(&total.to_be_bytes());
        // Identification 0x1234, DF set, no fragment offset.
        h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, proto, 0xbe, 0xef]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    fn ipv6_header(
        next: u8,
        hops: u8,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        payload_len: usize,
    ) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload_len as u16).to_be_bytes());
        h.extend_from_slice(&[next, hops]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h
    }

    /// VRRP v3 over IPv4: 100 cs interval, checksum bytes present but not checked.
    fn vrrp3_v4(vrid: u8, prio: u8, addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut v = vec![0x31, vrid, prio, addrs.len() as u8, 0x00, 100, 0xab, 0xcd];
        for a in addrs {
            v.extend_from_slice(a);
        }
        v
    }

    fn v4_frame(src_mac: MacAddr, src: [u8; 4], dst: [u8; 4], ttl: u8, vrrp: &[u8]) -> Vec<u8> {
        let mut ip = ipv4_header(IPPROTO_VRRP, ttl, src, dst, vrrp.len());
        ip.extend_from_slice(vrrp);
        eth([0x01, 0x00, 0x5e, 0, 0, 0x12], src_mac, ETH_P_IP, &ip)
    }

    fn arp(op: u16, smac: MacAddr, sip: [u8; 4], tmac: [u8; 6], tip: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&smac.0);
        a.extend_from_slice(&sip);
        a.extend_from_slice(&tmac);
        a.extend_from_slice(&tip);
        // Ethernet's minimum frame pads ARP with zeros.
        a.extend_from_slice(&[0; 18]);
        eth([0xff; 6], smac, ETH_P_ARP, &a)
    }

    fn na(flags: u8, target: Ipv6Addr, tlla: Option<MacAddr>) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_NA, 0, 0x12, 0x34, flags, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        // A nonce option (type 14) first, to check that options are walked.
        icmp.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        if let Some(m) = tlla {
            icmp.extend_from_slice(&[2, 1]);
            icmp.extend_from_slice(&m.0);
        }
        let src: Ipv6Addr = "fe80::5054:ff:fe00:a".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        let mut ip = ipv6_header(IPPROTO_ICMPV6, 255, src, dst, icmp.len());
        ip.extend_from_slice(&icmp);
        eth([0x33, 0x33, 0, 0, 0, 1], A_MAC, ETH_P_IPV6, &ip)
    }

    #[test]
    fn vrrp_v3_over_ipv4_multicast() {
        let vrrp = vrrp3_v4(51, 150, &[[10, 0, 0, 100], [10, 0, 0, 101]]);
        let mut frame = v4_frame(A_MAC, [10, 0, 0, 2], [224, 0, 0, 18], 255, &vrrp);
        // Ethernet padding after the datagram is not read as addresses.
        frame.extend_from_slice(&[0xee; 10]);
        let p = parse_frame(&frame).unwrap();
        assert_eq!(p.link.src, A_MAC);
        assert_eq!(p.link.dst, MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x12]));
        assert_eq!(p.link.vlan, None);
        let v = p.vrrp().unwrap();
        assert_eq!(v.src, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(v.dst, IpAddr::V4(VRRP_GROUP_V4));
        assert_eq!((v.ttl, v.version, v.vrid, v.priority), (255, 3, 51, 150));
        assert_eq!(v.interval, Duration::from_secs(1));
        assert_eq!(
            v.addresses,
            [IpAddr::from([10, 0, 0, 100]), IpAddr::from([10, 0, 0, 101])]
        );
        assert!(p.arp().is_none() && p.neighbor_advert().is_none());
    }

    #[test]
    fn vrrp_v2_carries_seconds_and_auth_data() {
        // v2: auth type 0, interval 3 s, checksum, one address, 8 bytes of auth data.
        let mut vrrp = vec![0x21, 7, 0, 1, 0, 3, 0x55, 0xaa, 192, 168, 1, 1];
        vrrp.extend_from_slice(&[0; 8]);
        let frame = v4_frame(B_MAC, [192, 168, 1, 3], [192, 168, 1, 2], 64, &vrrp);
        let v = parse_frame(&frame).unwrap().vrrp().cloned().unwrap();
        assert_eq!((v.version, v.vrid, v.priority, v.ttl), (2, 7, 0, 64));
        assert_eq!(v.interval, Duration::from_secs(3));
        assert_eq!(v.dst, IpAddr::from([192, 168, 1, 2]));
        assert_eq!(v.addresses, [IpAddr::from([192, 168, 1, 1])]);
    }

    #[test]
    fn vrrp_v3_over_ipv6_with_a_vlan_tag() {
        let vip: Ipv6Addr = "fd00::100".parse().unwrap();
        // 12-bit interval 0x096 = 150 cs; the 4 reserved bits set must be ignored.
        let mut vrrp = vec![0x31, 9, 200, 1, 0xf0, 0x96, 0, 0];
        vrrp.extend_from_slice(&vip.octets());
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut ip = ipv6_header(IPPROTO_VRRP, 255, src, VRRP_GROUP_V6, vrrp.len());
        ip.extend_from_slice(&vrrp);
        let mut tagged = vec![0x20, 0x05]; // priority 1, VLAN 5
        tagged.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        tagged.extend_from_slice(&ip);
        let frame = eth([0x33, 0x33, 0, 0, 0, 0x12], A_MAC, ETH_P_8021Q, &tagged);
        let p = parse_frame(&frame).unwrap();
        assert_eq!(p.link.vlan, Some(5));
        let v = p.vrrp().unwrap();
        assert_eq!((v.version, v.vrid, v.priority, v.ttl), (3, 9, 200, 255));
        assert_eq!(v.src, IpAddr::V6(src));
        assert_eq!(v.dst, IpAddr::V6(VRRP_GROUP_V6));
        assert_eq!(v.interval, Duration::from_millis(1500));
        assert_eq!(v.addresses, [IpAddr::V6(vip)]);
    }

    #[test]
    fn other_and_broken_frames_are_none() {
        let good = v4_frame(
            A_MAC,
            [10, 0, 0, 2],
            [224, 0, 0, 18],
            255,
            &vrrp3_v4(1, 100, &[[10, 0, 0, 9]]),
        );
        assert!(parse_frame(&good).is_some());
        // Cut anywhere: never a panic, never a packet.
        for len in 0..good.len() {
            assert_eq!(parse_frame(&good[..len]), None, "cut at {len}");
        }
        // UDP instead of VRRP.
        let mut udp = good.clone();
        udp[14 + 9] = 17;
        assert_eq!(parse_frame(&udp), None);
        // A VRRP type other than advertisement.
        let mut kind = good.clone();
        kind[14 + 20] = 0x32;
        assert_eq!(parse_frame(&kind), None);
        // VRRP version 4 does not exist.
        let mut v4 = good.clone();
        v4[14 + 20] = 0x41;
        assert_eq!(parse_frame(&v4), None);
        // A later fragment.
        let mut frag = good.clone();
        frag[14 + 7] = 0x10;
        assert_eq!(parse_frame(&frag), None);
        // Not IP, ARP or IPv6.
        assert_eq!(parse_frame(&eth([0xff; 6], A_MAC, 0x88cc, &[0; 46])), None);
        // ARP for another protocol.
        let mut arp_other = arp(1, A_MAC, [1, 2, 3, 4], [0; 6], [1, 2, 3, 4]);
        arp_other[16] = 0x86;
        arp_other[17] = 0xdd;
        assert_eq!(parse_frame(&arp_other), None);
        // A neighbour solicitation (135) is not an advertisement.
        let mut ns = na(0x20, "fd00::1".parse().unwrap(), None);
        ns[14 + 40] = 135;
        assert_eq!(parse_frame(&ns), None);
    }

    #[test]
    fn a_timeline_is_one_line_per_event() {
        let t0 = Instant::now();
        let ev = |ms: u64, frame: Vec<u8>| Event {
            at: at(t0, ms),
            packet: parse_frame(&frame).unwrap(),
        };
        let vrrp = vrrp3_v4(51, 150, &[[10, 0, 0, 100]]);
        let events = [
            ev(
                0,
                v4_frame(A_MAC, [10, 0, 0, 2], [224, 0, 0, 18], 255, &vrrp),
            ),
            ev(
                1_500,
                arp(ARP_REPLY, A_MAC, [10, 0, 0, 100], [0; 6], [10, 0, 0, 100]),
            ),
            ev(2_000, na(0x60, "fd00::100".parse().unwrap(), Some(A_MAC))),
        ];
        assert_eq!(
            timeline(&events, at(t0, 500)),
            "-0.500s vrrp v3 vrid 51 prio 150 10.0.0.2 > 224.0.0.18 ttl 255 every 1s [10.0.0.100] \
             [52:54:00:00:00:0a > 01:00:5e:00:00:12]\n\
             +1.000s arp reply 10.0.0.100 is 52:54:00:00:00:0a (target 10.0.0.100 \
             00:00:00:00:00:00) gratuitous [52:54:00:00:00:0a > ff:ff:ff:ff:ff:ff]\n\
             +1.500s na fe80::5054:ff:fe00:a > ff02::1 target fd00::100 is 52:54:00:00:00:0a S O \
             [52:54:00:00:00:0a > 33:33:00:00:00:01]\n"
        );
    }

    #[test]
    fn gratuitous_and_ordinary_arp() {
        let garp = arp(ARP_REQUEST, A_MAC, [10, 0, 0, 100], [0; 6], [10, 0, 0, 100]);
        let p = parse_frame(&garp).unwrap();
        let a = p.arp().unwrap();
        assert_eq!(a.op, ARP_REQUEST);
        assert_eq!(a.sender_mac, A_MAC);
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 0, 100));
        assert!(a.is_gratuitous());
        assert!(p.announces("10.0.0.100".parse().unwrap()));
        assert!(!p.announces("10.0.0.101".parse().unwrap()));
        assert_eq!(p.link.dst, MacAddr([0xff; 6]));

        let reply = arp(ARP_REPLY, B_MAC, [10, 0, 0, 100], A_MAC.0, [10, 0, 0, 100]);
        let a = *parse_frame(&reply).unwrap().arp().unwrap();
        assert!(a.is_gratuitous() && a.op == ARP_REPLY && a.target_mac == A_MAC);

        let ask = arp(ARP_REQUEST, B_MAC, [10, 0, 0, 3], [0; 6], [10, 0, 0, 100]);
        let p = parse_frame(&ask).unwrap();
        assert!(!p.arp().unwrap().is_gratuitous());
        assert!(!p.announces("10.0.0.100".parse().unwrap()));
    }

    #[test]
    fn neighbour_advertisements() {
        let vip: Ipv6Addr = "fd00::100".parse().unwrap();
        let p = parse_frame(&na(0x20, vip, Some(A_MAC))).unwrap();
        let n = *p.neighbor_advert().unwrap();
        assert_eq!(n.target, vip);
        assert_eq!(n.src, "fe80::5054:ff:fe00:a".parse::<Ipv6Addr>().unwrap());
        assert_eq!(n.dst, "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(n.hop_limit, 255);
        assert!(!n.router && !n.solicited && n.override_);
        assert!(n.is_unsolicited());
        assert_eq!(n.target_mac, Some(A_MAC));
        assert!(p.announces(IpAddr::V6(vip)));
        // Solicited, router, no option: an answer, not an announcement.
        let p = parse_frame(&na(0xe0, vip, None)).unwrap();
        let n = p.neighbor_advert().unwrap();
        assert!(n.router && n.solicited && !n.is_unsolicited());
        assert_eq!(n.target_mac, None);
        assert!(!p.announces(IpAddr::V6(vip)));
    }

    #[test]
    fn destination_options_are_skipped() {
        let vip: Ipv6Addr = "fd00::100".parse().unwrap();
        let plain = na(0x20, vip, None);
        let ip = &plain[14..];
        let icmp = &ip[40..];
        // Destination options header (60): next header ICMPv6, 8 bytes, PadN.
        let mut payload = vec![IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(icmp);
        let mut hdr = ipv6_header(
            60,
            255,
            ipv6(ip, 8).unwrap(),
            ipv6(ip, 24).unwrap(),
            payload.len(),
        );
        hdr.extend_from_slice(&payload);
        let frame = eth([0x33, 0x33, 0, 0, 0, 1], A_MAC, ETH_P_IPV6, &hdr);
        assert_eq!(parse_frame(&frame), parse_frame(&plain));
    }

    // --- timelines ---------------------------------------------------------------------------

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn advert(t0: Instant, ms: u64, router: u8, vrid: u8, priority: u8) -> Event {
        Event {
            at: t0 + Duration::from_millis(ms),
            packet: Packet {
                link: Link {
                    src: MacAddr([0x52, 0x54, 0, 0, 0, router]),
                    dst: MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x12]),
                    vlan: None,
                },
                body: Body::Vrrp(Vrrp {
                    src: ip(router),
                    dst: IpAddr::V4(VRRP_GROUP_V4),
                    ttl: 255,
                    version: 3,
                    vrid,
                    priority,
                    interval: Duration::from_secs(1),
                    addresses: vec![ip(100)],
                }),
            },
        }
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn adverts_are_picked_by_vrid_and_their_destinations_listed() {
        let t0 = Instant::now();
        let events = [
            advert(t0, 0, 1, 51, 100),
            advert(t0, 10, 2, 52, 100),
            advert(t0, 20, 1, 51, 0),
        ];
        let of_51: Vec<u8> = adverts(&events, 51).map(|(_, v)| v.priority).collect();
        assert_eq!(of_51, [100, 0]);
        assert_eq!(
            adverts_to(&events, 52),
            BTreeSet::from([IpAddr::V4(VRRP_GROUP_V4)])
        );
    }

    #[test]
    fn garps_for_a_vip_within_a_window() {
        let t0 = Instant::now();
        let vip = ip(100);
        let ev = |ms: u64, frame: Vec<u8>| Event {
            at: at(t0, ms),
            packet: parse_frame(&frame).unwrap(),
        };
        let events = vec![
            ev(
                100,
                arp(ARP_REQUEST, A_MAC, [10, 0, 0, 100], [0; 6], [10, 0, 0, 100]),
            ),
            ev(
                200,
                arp(
                    ARP_REPLY,
                    A_MAC,
                    [10, 0, 0, 100],
                    [0xff; 6],
                    [10, 0, 0, 100],
                ),
            ),
            // An ordinary question about the VIP, and a GARP for another address.
            ev(
                300,
                arp(ARP_REQUEST, B_MAC, [10, 0, 0, 3], [0; 6], [10, 0, 0, 100]),
            ),
            ev(
                400,
                arp(ARP_REQUEST, B_MAC, [10, 0, 0, 3], [0; 6], [10, 0, 0, 3]),
            ),
            ev(500, na(0x20, "fd00::100".parse().unwrap(), Some(A_MAC))),
            ev(
                5_000,
                arp(ARP_REQUEST, A_MAC, [10, 0, 0, 100], [0; 6], [10, 0, 0, 100]),
            ),
        ];
        let got: Vec<Instant> = garps_for(&events, vip, at(t0, 0), Duration::from_secs(1))
            .iter()
            .map(|e| e.at)
            .collect();
        assert_eq!(got, [at(t0, 100), at(t0, 200)]);
        // The bounds are inclusive.
        assert_eq!(
            garps_for(&events, vip, at(t0, 200), Duration::from_millis(4_800)).len(),
            2
        );
        let v6 = garps_for(
            &events,
            "fd00::100".parse().unwrap(),
            t0,
            Duration::from_secs(9),
        );
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].at, at(t0, 500));
    }
}
