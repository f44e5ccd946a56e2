//! Small safe wrappers over the socket system calls that the checkers and VRRP use directly
//! (raw sockets, reused sockets, batched sends), where std and tokio offer no way in.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A new non-blocking, close-on-exec socket.
pub fn new_socket(family: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            family,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

pub fn setsockopt<V>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &V,
) -> io::Result<()> {
    // SAFETY: `value` points to a V of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const V).cast(),
            size_of::<V>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A socket address in the kernel's layout, and its length.
pub fn sockaddr(addr: SocketAddr) -> (MaybeUninit<libc::sockaddr_in6>, libc::socklen_t) {
    let mut storage = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in6 is larger than sockaddr_in; both are plain data.
            unsafe { storage.as_mut_ptr().cast::<libc::sockaddr_in>().write(sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            storage.write(sin6);
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address a socket is bound to.
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: `storage` has room for `len` bytes.
    if unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getsockname wrote a sockaddr of the socket's family.
    let s = unsafe { storage.assume_init() };
    if i32::from(s.sin6_family) == libc::AF_INET {
        // SAFETY: an AF_INET address is a sockaddr_in.
        let s4: libc::sockaddr_in =
            unsafe { std::ptr::read((&s as *const libc::sockaddr_in6).cast()) };
        Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(u32::from_be(s4.sin_addr.s_addr))),
            u16::from_be(s4.sin_port),
        ))
    } else {
        Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(s.sin6_addr.s6_addr),
            u16::from_be(s.sin6_port),
            s.sin6_flowinfo,
            s.sin6_scope_id,
        )))
    }
}

/// Raises the open files limit to `want` (or as close as allowed: the hard limit, unless
/// privileged, and the kernel's `fs.nr_open`); the limit now in force.
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if r.rlim_cur >= want {
        return Ok(r.rlim_cur);
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(want);
    let raised = libc::rlimit {
        rlim_cur: want.min(nr_open).max(r.rlim_cur),
        rlim_max: want.min(nr_open).max(r.rlim_max),
    };
    // SAFETY: `raised` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(raised.rlim_cur);
    }
    // Not privileged: up to the hard limit.
    let soft = libc::rlimit {
        rlim_cur: r.rlim_max,
        rlim_max: r.rlim_max,
    };
    // SAFETY: `soft` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r.rlim_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft_limit() -> (u64, u64) {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid rlimit to write.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        (r.rlim_cur, r.rlim_max)
    }

    #[test]
    fn the_open_files_limit_is_raised_as_far_as_allowed() {
        let (_, hard) = soft_limit();
        let n = raise_fd_limit(8192).unwrap();
        assert_eq!(soft_limit().0, n);
        assert!(n >= 8192.min(hard), "limit {n}, hard limit was {hard}");
        // Never lowered.
        assert_eq!(raise_fd_limit(16).unwrap(), n);
    }
}
