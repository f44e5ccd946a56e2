//! The kernel side of VRRP over rtnetlink: links (index, MAC, up/carrier), addresses
//! (primary address, VIPs), the virtual-MAC macvlan, and a monitor of link and address
//! changes. Every change is idempotent: adding a VIP that is there or removing one that is
//! gone is not an error.

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, MacVlanMode};
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};
use std::net::IpAddr;

use crate::config::IpPrefix;

/// A failed netlink operation: what, on what, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("netlink: {op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
}

fn err(op: &'static str, target: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let target = target.into();
    move |source| NetError::Netlink { op, target, source }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;

/// A link as VRRP cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Administratively up with carrier (`IFF_UP` and `IFF_LOWER_UP`).
    pub up: bool,
}

impl Link {
    pub fn from_message(m: &LinkMessage) -> Link {
        let mut name = String::new();
        let mut mac = None;
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    mac = Some([a[0], a[1], a[2], a[3], a[4], a[5]])
                }
                _ => {}
            }
        }
        let f = m.header.flags;
        Link {
            index: m.header.index,
            name,
            mac,
            up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp),
        }
    }
}

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Not usable as a source yet (IPv6 duplicate address detection running, or failed).
    pub tentative: bool,
    /// An IPv4 secondary address of its subnet.
    pub secondary: bool,
}

impl Addr {
    pub fn from_message(m: &rtnetlink::packet_route::address::AddressMessage) -> Option<Addr> {
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::empty();
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags |= *f,
                _ => {}
            }
        }
        let hf = m.header.flags;
        let tentative = flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
            || hf.intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed);
        let secondary =
            flags.contains(AddressFlags::Secondary) || hf.contains(AddressHeaderFlags::Secondary);
        Some(Addr {
            index: m.header.index,
            addr: local.or(address)?,
            prefix_len: m.header.prefix_len,
            tentative,
            secondary,
        })
    }
}

/// A netlink connection whose I/O task runs on the current tokio runtime.
pub struct Net {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Net {
    pub fn connect() -> Result<Net, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        Ok(Net {
            handle,
            conn: tokio::spawn(conn),
        })
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        self.handle
            .link()
            .get()
            .execute()
            .map_ok(|m| Link::from_message(&m))
            .try_collect()
            .await
            .map_err(err("list", "links"))
    }

    pub async fn addresses(&self) -> Result<Vec<Addr>, NetError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(err("list", "addresses"))?;
        Ok(msgs.iter().filter_map(Addr::from_message).collect())
    }

    /// Adds a VIP to link `index`; IPv6 without duplicate address detection (the address
    /// must work at once, and the old master has just given it up).
    pub async fn add_vip(&self, index: u32, ifname: &str, vip: IpPrefix) -> Result<(), NetError> {
        let mut req = self
            .handle
            .address()
            .add(index, vip.addr, vip.prefix_len)
            .replace();
        if vip.addr.is_ipv6() {
            let m = req.message_mut();
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(err("add address", format!("{vip} on {ifname}"))(e)),
        }
    }

    /// Removes a VIP from link `index`; fine if it is not there.
    pub async fn del_vip(&self, index: u32, ifname: &str, vip: IpPrefix) -> Result<(), NetError> {
        let mut msg = rtnetlink::packet_route::address::AddressMessage::default();
        msg.header.family = match vip.addr {
            IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
        };
        msg.header.prefix_len = vip.prefix_len;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(vip.addr));
        if vip.addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Address(vip.addr));
        } else {
            msg.attributes = vec![AddressAttribute::Address(vip.addr)];
        }
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(EADDRNOTAVAIL | ENODEV)) => Ok(()),
            Err(e) => Err(err("delete address", format!("{vip} on {ifname}"))(e)),
        }
    }

    /// Makes sure the macvlan `name` on `base` with `mac` exists and is up; returns its index.
    /// IPv6 address autoconfiguration is turned off on it before it comes up (both balancers
    /// have the same MAC there, so their link-local addresses would collide).
    pub async fn ensure_macvlan(
        &self,
        base: u32,
        name: &str,
        mac: [u8; 6],
    ) -> Result<u32, NetError> {
        let links = self.links().await?;
        if let Some(l) = links.iter().find(|l| l.name == name) {
            if l.mac == Some(mac) {
                if !l.up {
                    self.set_up(l.index, name).await?;
                }
                return Ok(l.index);
            }
            self.del_link(l.index, name).await?;
        }
        // Bridge mode, not private: the master's adverts come from the virtual MAC, which this
        // node's own macvlan also has; a private macvlan takes every frame with its MAC as the
        // *source* for itself, so the base interface (where adverts are read) would never see
        // the master and a backup would take over at once (split brain).
        let msg = LinkMacVlan::new(name, base, MacVlanMode::Bridge)
            .address(mac.to_vec())
            .build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(err("create macvlan", name)(e)),
        }
        // No IPv6 link-local from the shared MAC: addr_gen_mode 1 = none.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/addr_gen_mode"), "1");
        let index = self
            .links()
            .await?
            .into_iter()
            .find(|l| l.name == name)
            .map(|l| l.index)
            .ok_or_else(|| NetError::Netlink {
                op: "find created macvlan",
                target: name.to_string(),
                source: rtnetlink::Error::RequestFailed,
            })?;
        self.set_up(index, name).await?;
        Ok(index)
    }

    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set up", name))
    }

    pub async fn del_link(&self, index: u32, name: &str) -> Result<(), NetError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(err("delete link", name)(e)),
        }
    }
}

/// A change the monitor saw.
#[derive(Debug, Clone)]
pub enum Event {
    Link(Link),
    LinkGone(Link),
    /// Some address was added or removed: primary addresses must be looked at again.
    Addresses,
}

/// Subscribes to link and address changes. The returned receiver yields events until the
/// connection fails.
pub fn monitor() -> Result<
    (
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::UnboundedReceiver<Event>,
    ),
    NetError,
> {
    use futures::StreamExt;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    use rtnetlink::MulticastGroup as G;
    let (conn, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&[G::Link, G::Ipv4Ifaddr, G::Ipv6Ifaddr])
            .map_err(NetError::Connect)?;
    let conn_task = tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let fwd = tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let ev = match msg.payload {
                NetlinkPayload::InnerMessage(M::NewLink(l)) => Event::Link(Link::from_message(&l)),
                NetlinkPayload::InnerMessage(M::DelLink(l)) => {
                    Event::LinkGone(Link::from_message(&l))
                }
                NetlinkPayload::InnerMessage(M::NewAddress(_) | M::DelAddress(_)) => {
                    Event::Addresses
                }
                _ => continue,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
        conn_task.abort();
    });
    Ok((fwd, rx))
}
