//! The system side of half-open checks: the raw TCP socket of each family and its classic
//! BPF answer filter, the bound TCP sockets that hold source ports, and the batched I/O
//! (`sendmmsg` of SYNs, `recvmmsg` of answers into a buffer set up once, the error queue's
//! control messages).

use super::Outgoing;
use crate::check::failure::Failure;
use crate::check::proto::syn;
use crate::sockets::{local_addr, new_socket, setsockopt, sockaddr};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Answers read per `recvmmsg`.
pub(super) const RECV_BATCH: usize = 256;
/// Bytes kept of each answer: an IPv4 header with options and the TCP header's first 14 bytes.
const RECV_LEN: usize = 80;
/// Socket buffer sizes asked for: a tick's worth of SYNs or answers at ten thousand checks a
/// second is a few hundred packets.
const BUFFER_BYTES: i32 = 1 << 20;

/// What one `recvmmsg` reads into, set up once: its messages point into the buffers beside
/// them, in the same heap allocation, so a read costs no setting up of RECV_BATCH headers.
pub(super) struct Inbox {
    msgs: [libc::mmsghdr; RECV_BATCH],
    iovs: [libc::iovec; RECV_BATCH],
    names: [libc::sockaddr_in6; RECV_BATCH],
    buffers: [[u8; RECV_LEN]; RECV_BATCH],
    /// Messages the last read filled (their name lengths were overwritten).
    used: usize,
}

// SAFETY: the raw pointers in `msgs` and `iovs` point only into the same `Inbox` allocation,
// which moves with its `Box`; nothing is shared between threads.
unsafe impl Send for Inbox {}

impl Inbox {
    pub(super) fn new() -> Box<Inbox> {
        let layout = std::alloc::Layout::new::<Inbox>();
        // SAFETY: the layout is Inbox's (not zero-sized); an all-zero Inbox is valid (null
        // pointers, zero lengths and bytes), and the allocation is handed to a Box of it.
        let mut inbox: Box<Inbox> = unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Inbox>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        for i in 0..RECV_BATCH {
            inbox.iovs[i] = libc::iovec {
                iov_base: inbox.buffers[i].as_mut_ptr().cast(),
                iov_len: RECV_LEN,
            };
            let name = std::ptr::addr_of_mut!(inbox.names[i]);
            let iov = std::ptr::addr_of_mut!(inbox.iovs[i]);
            let h = &mut inbox.msgs[i].msg_hdr;
            h.msg_name = name.cast();
            h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        inbox
    }

    /// Reads what is queued to `fd`, up to RECV_BATCH messages, without waiting: how many.
    pub(super) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        for m in &mut self.msgs[..self.used] {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        }
        self.used = 0;
        // SAFETY: every message points at live buffers of the sizes given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.used = n as usize;
        Ok(self.used)
    }

    /// Message `i` of the last read: its bytes (at most RECV_LEN) and the address it came
    /// from if it is an IPv6 one.
    pub(super) fn message(&self, i: usize) -> (&[u8], Ipv6Addr) {
        let len = (self.msgs[i].msg_len as usize).min(RECV_LEN);
        let from = Ipv6Addr::from(self.names[i].sin6_addr.s6_addr);
        (&self.buffers[i][..len], from)
    }
}

/// A raw TCP socket for answers, with the filter for `ports`.
pub(super) fn open_raw(v6: bool, ports: &[u16]) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let fd = new_socket(family, libc::SOCK_RAW, libc::IPPROTO_TCP)?;
    let raw = fd.as_raw_fd();
    // Until ports are held, let nothing through.
    attach_filter(raw, &syn::answer_filter(ports, !v6))?;
    // Drop what arrived before the filter was attached.
    let mut scratch = [0u8; 1];
    // SAFETY: `scratch` is a valid buffer of the length given.
    while unsafe { libc::recv(raw, scratch.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) } >= 0 {}
    if v6 {
        // The kernel fills in the TCP checksum at this offset, for the source it chooses.
        setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, &16i32)?;
        setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, &1i32)?;
    } else {
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_HDRINCL, &1i32)?;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_RECVERR, &1i32)?;
    }
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &BUFFER_BYTES);
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, &BUFFER_BYTES);
    Ok(fd)
}

/// Holds a local port: a TCP socket bound to (source or any address, a port the kernel
/// chooses), never listening or connecting.
pub(super) fn hold_port(v6: bool, source: Option<IpAddr>) -> Result<(OwnedFd, u16), Failure> {
    let io = |e: io::Error| Failure::Io(format!("holding a source port: {e}"));
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let fd = new_socket(family, libc::SOCK_STREAM, 0).map_err(io)?;
    if v6 {
        setsockopt(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &1i32).map_err(io)?;
    }
    let any = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let (addr, len) = sockaddr(SocketAddr::new(source.unwrap_or(any), 0));
    // SAFETY: `addr` holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr().cast(), len) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match source {
            Some(s) => Failure::Bind(format!("{s}: {e}")),
            None => io(e),
        });
    }
    let port = local_addr(fd.as_raw_fd()).map_err(io)?.port();
    Ok((fd, port))
}

/// Sends as many of `batch` as the kernel takes in one `sendmmsg`: how many, or the error of
/// the first.
pub(super) fn send_batch(fd: RawFd, batch: &[&Outgoing]) -> io::Result<usize> {
    const CMSG_LEN: usize = 64;
    let n = batch.len().min(1024);
    let mut names: Vec<(MaybeUninit<libc::sockaddr_in6>, libc::socklen_t)> = batch[..n]
        .iter()
        .map(|o| sockaddr(raw_destination(o.to)))
        .collect();
    let mut iovs: Vec<libc::iovec> = batch[..n]
        .iter()
        .map(|o| libc::iovec {
            iov_base: o.bytes.as_ptr() as *mut libc::c_void,
            iov_len: o.len,
        })
        .collect();
    let mut controls = vec![[0u64; CMSG_LEN / 8]; n];
    // SAFETY: an all-zero mmsghdr is valid.
    let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
    for i in 0..n {
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = names[i].0.as_mut_ptr().cast();
        h.msg_namelen = names[i].1;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if let Some(src) = batch[i].source_v6 {
            h.msg_control = controls[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_LEN;
            // SAFETY: the control buffer has room for one in6_pktinfo message (CMSG_LEN
            // covers CMSG_SPACE(20)); the header and data are written inside it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                libc::CMSG_DATA(c)
                    .cast::<libc::in6_pktinfo>()
                    .write_unaligned(info);
                h.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize;
            }
        }
    }
    // SAFETY: every message points at live names, buffers and control data.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

pub(super) fn attach_filter(fd: RawFd, program: &[syn::Insn]) -> io::Result<()> {
    let mut insns: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

/// Where a raw socket sends: the target's address with port zero (an IPv6 raw socket takes a
/// port there as the protocol number), keeping an IPv6 scope.
fn raw_destination(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(t) => SocketAddr::new(IpAddr::V4(*t.ip()), 0),
        SocketAddr::V6(t) => SocketAddr::V6(SocketAddrV6::new(*t.ip(), 0, 0, t.scope_id())),
    }
}

/// The error number of an IP_RECVERR / IPV6_RECVERR control message.
pub(super) fn extended_errno(msg: &libc::msghdr) -> Option<i32> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros stay within msg_controllen, and the
    // data of these messages is a sock_extended_err.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            let h = &*c;
            if (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_RECVERR)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_RECVERR)
            {
                let e = libc::CMSG_DATA(c)
                    .cast::<libc::sock_extended_err>()
                    .read_unaligned();
                return Some(e.ee_errno as i32);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}
