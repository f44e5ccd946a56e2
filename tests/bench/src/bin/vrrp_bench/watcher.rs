//! What the backup's namespace sees, timestamped: the VIP added, the adverts heard.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const MASTER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// Something the backup's namespace saw.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    VipAdded,
    Advert { from_master: bool, priority: u8 },
}

/// Timestamps what the backup's namespace sees: VIP added, adverts received.
pub struct Watcher {
    pub events: Arc<Mutex<Vec<(Instant, Event)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A system call's result, or its error named after `what`.
fn os_result(r: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if r < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

fn open_sockets(ns: &Path) -> Result<(OwnedFd, OwnedFd), String> {
    let f = File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
    // SAFETY: setns on this watcher thread only.
    os_result(
        unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
        "setns",
    )?;
    // SAFETY: plain socket calls; fds owned right after.
    let nl = os_result(
        unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        },
        "netlink socket",
    )?;
    let nl = unsafe { OwnedFd::from_raw_fd(nl) };
    // SAFETY: zeroed sockaddr_nl is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = libc::RTMGRP_IPV4_IFADDR as u32;
    // SAFETY: sa is a valid sockaddr_nl.
    os_result(
        unsafe {
            libc::bind(
                nl.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        },
        "netlink bind",
    )?;
    let raw = os_result(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 112) },
        "raw socket",
    )?;
    let raw = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: a NUL-terminated name; looked up in the namespace we just entered.
    let idx = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    let mreq = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::new(224, 0, 0, 18)).to_be(),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: idx as libc::c_int,
    };
    // SAFETY: mreq is a valid ip_mreqn.
    os_result(
        unsafe {
            libc::setsockopt(
                raw.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_ADD_MEMBERSHIP,
                &mreq as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::ip_mreqn>() as u32,
            )
        },
        "join 224.0.0.18",
    )?;
    Ok((nl, raw))
}

impl Watcher {
    /// Starts watching in namespace `ns`, on a real-time thread of its own; returns once its
    /// sockets are open.
    pub fn start(ns: &str) -> Result<Watcher, String> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = PathBuf::from(format!("/var/run/netns/{ns}"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let events = events.clone();
            let stop = stop.clone();
            move || {
                // Timestamps must not wait for the busy loops of the soak (or anything
                // else): the watcher runs above lbd's own real-time priority.
                let param = libc::sched_param { sched_priority: 20 };
                // SAFETY: pid 0 is this thread; param is valid.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
                let (nl, raw) = match open_sockets(&path) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                watch(&nl, &raw, &events, &stop);
            }
        });
        ready_rx
            .recv()
            .map_err(|_| "watcher thread died".to_string())??;
        Ok(Watcher {
            events,
            stop,
            thread: Some(thread),
        })
    }

    /// The events seen since the last call.
    pub fn take(&self) -> Vec<(Instant, Event)> {
        std::mem::take(&mut *self.events.lock().expect("events"))
    }
}

/// Records what the netlink socket `nl` and the raw VRRP socket `raw` receive until `stop`.
fn watch(nl: &OwnedFd, raw: &OwnedFd, events: &Mutex<Vec<(Instant, Event)>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [
            libc::pollfd {
                fd: nl.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: raw.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 50) };
        if n <= 0 {
            continue;
        }
        let now = Instant::now();
        for (k, fd) in fds.iter().enumerate() {
            if fd.revents & libc::POLLIN == 0 {
                continue;
            }
            // SAFETY: buf is writable for its length.
            let len = unsafe {
                libc::recv(
                    fd.fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if len <= 0 {
                continue;
            }
            let p = &buf[..len as usize];
            let event = if k == 0 {
                vip_added(p).then_some(Event::VipAdded)
            } else {
                advert(p)
            };
            if let Some(event) = event {
                events.lock().expect("events").push((now, event));
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a netlink datagram holds an RTM_NEWADDR for the VIP.
fn vip_added(mut p: &[u8]) -> bool {
    while p.len() >= 16 {
        let len = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let kind = u16::from_ne_bytes([p[4], p[5]]);
        if len < 16 || len > p.len() {
            return false;
        }
        if kind == libc::RTM_NEWADDR && len >= 24 {
            let mut attrs = &p[16 + 8..len];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]);
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if (akind == 1 || akind == 2) && attrs[4..alen] == VIP.octets() {
                    return true;
                }
                attrs = &attrs[(alen + 3) & !3..];
                if attrs.is_empty() {
                    break;
                }
            }
        }
        p = &p[((len + 3) & !3).min(p.len())..];
    }
    false
}

/// An advert (IPv4 packet with header, protocol 112).
fn advert(p: &[u8]) -> Option<Event> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    let prio = *p.get(ihl + 2)?;
    let src = Ipv4Addr::new(*p.get(12)?, p[13], p[14], p[15]);
    Some(Event::Advert {
        from_master: src == MASTER_IP,
        priority: prio,
    })
}
