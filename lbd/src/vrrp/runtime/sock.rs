//! Sockets of the VRRP runtime: raw IP protocol 112 (IPv4 and IPv6), a packet socket for
//! gratuitous ARP and an ICMPv6 socket for unsolicited neighbour advertisements.
//!
//! - One receive-and-send socket per (interface, family), bound to the interface, joined to
//!   the VRRP group there. IPv4 raw sockets deliver the IP header (TTL, addresses read from
//!   it); IPv6 ones do not, so the hop limit and destination come as control messages.
//! - Packets leave with TTL / hop limit 255 and the source address given per packet
//!   (`IP_PKTINFO` / `IPV6_PKTINFO`): binding a raw socket to an address would also filter
//!   what it receives by destination, which would lose the multicast adverts.
//! - Send-only sockets (on a virtual-MAC macvlan, ARP, NA) drop everything they would
//!   receive with a one-instruction BPF filter, so nothing queues up unread.

use super::super::packet::{IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, TTL};
use crate::sockets::{new_socket, setsockopt};
use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A failed socket operation: what, on which interface, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{what} on {ifname}: {source}")]
pub struct SockError {
    pub what: &'static str,
    pub ifname: String,
    #[source]
    pub source: io::Error,
}

fn ctx<T>(r: io::Result<T>, what: &'static str, ifname: &str) -> Result<T, SockError> {
    r.map_err(|source| SockError {
        what,
        ifname: ifname.to_string(),
        source,
    })
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn bind_device(fd: RawFd, ifname: &str) -> io::Result<()> {
    let name = ifname.as_bytes();
    // SAFETY: name points to ifname's bytes; the kernel copies at most optlen.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.len() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Attaches a filter that accepts nothing: for sockets we only send on.
fn drop_all_input(fd: RawFd) -> io::Result<()> {
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: code.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// A received VRRP packet, before any check.
#[derive(Debug, Clone)]
pub struct Received {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub data: Vec<u8>,
}

/// A raw protocol-112 socket on one interface and family.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    pub ifname: String,
    pub ifindex: u32,
    pub ipv6: bool,
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl VrrpSocket {
    /// Opens the socket on `ifname` (index `ifindex`). With `join`, joins the VRRP multicast
    /// group there and receives; without, it only sends (a virtual-MAC macvlan).
    pub fn open(ifname: &str, ifindex: u32, ipv6: bool, join: bool) -> Result<Self, SockError> {
        let domain = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
        let fd = ctx(
            new_socket(domain, libc::SOCK_RAW, libc::c_int::from(IPPROTO_VRRP)),
            "opening a raw IP protocol 112 socket (needs CAP_NET_RAW)",
            ifname,
        )?;
        let raw = fd.as_raw_fd();
        ctx(bind_device(raw, ifname), "SO_BINDTODEVICE", ifname)?;
        let ttl: libc::c_int = libc::c_int::from(TTL);
        let off: libc::c_int = 0;
        let on: libc::c_int = 1;
        if ipv6 {
            let r = (|| {
                setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl)?;
                setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
                setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
                setsockopt(
                    raw,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_IF,
                    &(ifindex as libc::c_int),
                )?;
                setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
                setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on)
            })();
            ctx(r, "setting IPv6 socket options", ifname)?;
            if join {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr {
                        s6_addr: MULTICAST_V6.octets(),
                    },
                    ipv6mr_interface: ifindex,
                };
                ctx(
                    setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq),
                    "joining ff02::12",
                    ifname,
                )?;
            }
        } else {
            let mreqn = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from(MULTICAST_V4).to_be(),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            let r = (|| {
                setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
                setsockopt(raw, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
                setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
                setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)
            })();
            ctx(r, "setting IPv4 socket options", ifname)?;
            if join {
                ctx(
                    setsockopt(raw, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreqn),
                    "joining 224.0.0.18",
                    ifname,
                )?;
            }
        }
        if !join {
            ctx(drop_all_input(raw), "attaching a drop-all filter", ifname)?;
        }
        Ok(VrrpSocket {
            fd,
            ifname: ifname.to_string(),
            ifindex,
            ipv6,
        })
    }

    /// Changes the TTL / hop limit of what this socket sends (255 unless changed; tests use
    /// it to send what a receiver must drop).
    pub fn set_ttl(&self, ttl: u8) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let v = libc::c_int::from(ttl);
        if self.ipv6 {
            setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &v)?;
            setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &v)
        } else {
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &v)?;
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &v)
        }
    }

    /// Sends one VRRP message from `src` to `dst`.
    pub fn send(&self, src: IpAddr, dst: IpAddr, msg: &[u8]) -> io::Result<()> {
        let iov = [IoSlice::new(msg)];
        let fd = self.fd.as_raw_fd();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(SocketAddrV4::new(d, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let scope = if is_link_local(&d) || d.is_multicast() {
                    self.ifindex
                } else {
                    0
                };
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, scope));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("source {src} and destination {dst} of different families"),
                ))
            }
        }
        Ok(())
    }

    /// Reads one packet; `WouldBlock` when none is queued. Packets too short to hold an IPv4
    /// header are reported as `InvalidData`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.fd.as_raw_fd();
        if self.ipv6 {
            let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
            let mut iov = [IoSliceMut::new(buf)];
            let (n, src, dst, ttl) = {
                let m =
                    recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
                let src = m
                    .address
                    .and_then(|a| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source"))?;
                let mut dst = None;
                let mut ttl = None;
                for c in m.cmsgs().map_err(io::Error::from)? {
                    match c {
                        ControlMessageOwned::Ipv6PacketInfo(i) => {
                            dst = Some(IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)))
                        }
                        ControlMessageOwned::Ipv6HopLimit(h) => ttl = Some(h),
                        _ => {}
                    }
                }
                (m.bytes, src, dst, ttl)
            };
            let dst =
                dst.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no IPV6_PKTINFO"))?;
            // A missing hop limit must not pass the TTL check.
            let ttl = ttl.map(|h| h.clamp(0, 255) as u8).unwrap_or(0);
            Ok(Received {
                src,
                dst,
                ttl,
                data: buf[..n].to_vec(),
            })
        } else {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = cvt(unsafe {
                libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) as libc::c_int
            })? as usize;
            parse_ipv4(&buf[..n])
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short IPv4 packet"))
        }
    }
}

/// Splits an IPv4 packet as a raw socket delivers it: header (TTL, addresses) and payload.
pub fn parse_ipv4(p: &[u8]) -> Option<Received> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    // The kernel hands over exactly the datagram; trust the shorter of the two lengths.
    let end = total.clamp(ihl, p.len());
    Some(Received {
        ttl: p[8],
        src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
        dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
        data: p[ihl..end].to_vec(),
    })
}

pub fn is_link_local(a: &Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// A packet socket for gratuitous ARP on one interface (the kernel adds the Ethernet header
/// with the interface's MAC).
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl ArpSocket {
    pub fn open(ifname: &str, ifindex: u32) -> Result<Self, SockError> {
        let proto = (super::super::announce::ETH_P_ARP).to_be() as libc::c_int;
        let fd = ctx(
            new_socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto),
            "opening a packet socket for ARP",
            ifname,
        )?;
        ctx(
            drop_all_input(fd.as_raw_fd()),
            "attaching a drop-all filter",
            ifname,
        )?;
        Ok(ArpSocket { fd, ifindex })
    }

    /// Broadcasts one ARP payload.
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = super::super::announce::ETH_P_ARP.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: payload and sll are live for the call; sizes match.
        cvt(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr() as *const libc::c_void,
                payload.len(),
                0,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            ) as libc::c_int
        })
        .map(|_| ())
    }
}

/// An ICMPv6 socket for unsolicited neighbour advertisements on one interface.
#[derive(Debug)]
pub struct NdSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl NdSocket {
    pub fn open(ifname: &str, ifindex: u32) -> Result<Self, SockError> {
        let fd = ctx(
            new_socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
            "opening an ICMPv6 socket",
            ifname,
        )?;
        let raw = fd.as_raw_fd();
        let hops: libc::c_int = 255;
        let r = (|| {
            bind_device(raw, ifname)?;
            setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &hops)?;
            setsockopt(
                raw,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                &(ifindex as libc::c_int),
            )?;
            drop_all_input(raw)
        })();
        ctx(r, "setting ICMPv6 socket options", ifname)?;
        Ok(NdSocket { fd, ifindex })
    }

    /// Sends one NA from `src` (a link-local address) to all nodes.
    pub fn send(&self, src: Ipv6Addr, payload: &[u8]) -> io::Result<()> {
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        let to = SockaddrIn6::from(SocketAddrV6::new(
            super::super::announce::ALL_NODES,
            0,
            0,
            self.ifindex,
        ));
        sendmsg(
            self.fd.as_raw_fd(),
            &[IoSlice::new(payload)],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&to),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_split() {
        let mut p = vec![
            0x45, 0xc0, 0, 32, 0, 0, 0x40, 0, 255, 112, 0, 0, 10, 0, 0, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[0x31, 1, 100, 1, 0, 100, 0, 0, 10, 0, 0, 100]);
        let r = parse_ipv4(&p).unwrap();
        assert_eq!(r.ttl, 255);
        assert_eq!(r.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.dst, IpAddr::V4(MULTICAST_V4));
        assert_eq!(r.data.len(), 12);
        // Options (IHL 6) are skipped.
        let mut o = p.clone();
        o[0] = 0x46;
        o[3] = 36;
        o.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(parse_ipv4(&o).unwrap().data, r.data);
        assert!(parse_ipv4(&p[..19]).is_none());
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
    }
}
