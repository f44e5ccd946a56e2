//! A netlink connection and the operations init and lbd need on links, addresses and routes.
//! Every change is idempotent: adding what is there or removing what is gone is not an error,
//! so callers can apply the same state again (a DHCP renewal, a VRRP takeover).

use super::types::*;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use rtnetlink::packet_route::link::MacVlanMode;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub(super) fn err(
    op: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let target = target.into();
    move |source| NetError::Netlink { op, target, source }
}

/// How an address is added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressOptions {
    /// The kernel drops the address by itself when this runs out (a DHCP lease); `None`:
    /// forever.
    pub lifetime: Option<Duration>,
    /// IPv6 without duplicate address detection: the address must work at once (a VIP the old
    /// master has just given up).
    pub no_dad: bool,
}

/// A netlink connection; its I/O task runs on the current tokio runtime until this is dropped.
#[derive(Debug)]
pub struct Netlink {
    pub(super) handle: Handle,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace. Needs a tokio runtime.
    pub fn connect() -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
        Ok(Netlink {
            handle,
            conn: tokio::spawn(conn),
        })
    }

    /// All links, by index.
    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        let mut links: Vec<Link> = self
            .handle
            .link()
            .get()
            .execute()
            .map_ok(|m| Link::from_message(&m))
            .try_collect()
            .await
            .map_err(err("list", "links"))?;
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// The link called `name`.
    pub async fn link_by_name(&self, name: &str) -> Result<Link, NetError> {
        let links = self.links().await?;
        links
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .ok_or_else(|| NetError::NoSuchLink {
                name: name.to_string(),
                available: links.into_iter().map(|l| l.name).collect(),
            })
    }

    /// `ip link set <link> up`.
    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set up", name))
    }

    /// Deletes a link; fine if it is gone.
    pub async fn del_link(&self, index: u32, name: &str) -> Result<(), NetError> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            Err(e) => Err(err("delete link", name)(e)),
        }
    }

    /// Brings `lo` up and makes sure 127.0.0.1/8 is on it (a fresh namespace or initramfs has
    /// `lo` down; the kernel adds the address when it comes up, but we do not rely on that).
    pub async fn loopback_up(&self) -> Result<Link, NetError> {
        let lo = self.link_by_name("lo").await?;
        self.set_up(lo.index, &lo.name).await?;
        self.add_address(
            lo.index,
            &lo.name,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            8,
            AddressOptions::default(),
        )
        .await?;
        Ok(lo)
    }

    /// Adds (or updates) `address/prefix_len` on link `index` (called `name` in messages).
    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
        opts: AddressOptions,
    ) -> Result<(), NetError> {
        let mut req = self
            .handle
            .address()
            .add(index, address, prefix_len)
            .replace();
        if let Some(lifetime) = opts.lifetime {
            // Rounded up: the kernel must not drop the address before the caller's own expiry
            // handling does.
            let secs = lifetime
                .as_secs_f64()
                .ceil()
                .clamp(1.0, f64::from(u32::MAX - 1)) as u32;
            let mut info = CacheInfo::default();
            info.ifa_preferred = secs;
            info.ifa_valid = secs;
            req.message_mut()
                .attributes
                .push(AddressAttribute::CacheInfo(info));
        }
        if opts.no_dad && address.is_ipv6() {
            let m = req.message_mut();
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            // With NLM_F_REPLACE only an address the kernel owns (127.0.0.1/8 on lo) says so.
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(err(
                "add address",
                format!("{address}/{prefix_len} on {name}"),
            )(e)),
        }
    }

    /// Every address on every link.
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

    /// The addresses on `link`.
    pub async fn addresses_of(&self, link: &Link) -> Result<Vec<Addr>, NetError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(err("list addresses", link.name.clone()))?;
        Ok(msgs
            .iter()
            .filter_map(Addr::from_message)
            .filter(|a| a.index == link.index)
            .collect())
    }

    /// Removes `address/prefix_len` from link `index`; fine if it is not there.
    pub async fn del_address(
        &self,
        index: u32,
        name: &str,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = match address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        if address.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(address));
        }
        msg.attributes.push(AddressAttribute::Address(address));
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(EADDRNOTAVAIL | ENODEV | ENOENT)) => Ok(()),
            Err(e) => Err(err(
                "delete address",
                format!("{address}/{prefix_len} on {name}"),
            )(e)),
        }
    }

    fn default_route(
        link: &Link,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
        onlink: bool,
    ) -> RouteMessage {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .gateway(gateway)
            .output_interface(link.index)
            .protocol(protocol)
            .scope(RouteScope::Universe);
        if onlink {
            b = b.onlink();
        }
        b.build()
    }

    /// Sets the default route via `gateway` on `link`, replacing any other default route in the
    /// main table. `onlink` for a gateway outside the link's subnet. `protocol` shows in
    /// `ip route` (`proto dhcp` / `proto static`).
    pub async fn set_default_route(
        &self,
        link: &Link,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
        onlink: bool,
    ) -> Result<(), NetError> {
        let msg = Self::default_route(link, gateway, protocol, onlink);
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(err(
                "set default route",
                format!("via {gateway} dev {}", link.name),
            ))
    }

    /// Removes the default route via `gateway` on `link`; fine if it is already gone.
    pub async fn del_default_route(
        &self,
        link: &Link,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
    ) -> Result<(), NetError> {
        let msg = Self::default_route(link, gateway, protocol, false);
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => Ok(()),
            Err(e) => Err(err(
                "delete default route",
                format!("via {gateway} dev {}", link.name),
            )(e)),
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
                if !l.carrier {
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
        let index = self.link_by_name(name).await?.index;
        self.set_up(index, name).await?;
        Ok(index)
    }
}
