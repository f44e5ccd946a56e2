//! Links, addresses and routes through rtnetlink: the kernel side of boot networking.
//!
//! Every operation is idempotent (adding what exists or removing what is gone is not an error),
//! so the DHCP lease keeper can apply the same lease again on each renewal.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, CacheInfo};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// A failed netlink operation: what we tried, on what, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("netlink: {op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("no link named {name:?} (links: {})", available.join(", "))]
    NoSuchLink {
        name: String,
        available: Vec<String>,
    },
    #[error("link {name:?} is not ethernet (type {kind}), cannot run DHCP or take a MAC from it")]
    NotEthernet { name: String, kind: String },
    #[error("no carrier after {waited:?} on {}", if candidates.is_empty() { "any link (no ethernet links found)".to_string() } else { candidates.join(", ") })]
    NoCarrier {
        waited: Duration,
        candidates: Vec<String>,
    },
}

/// One network interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address, for ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// `ETHER`, `LOOPBACK`, ...
    pub kind: LinkLayerType,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Physical layer up (`IFF_LOWER_UP` / `IFLA_CARRIER`).
    pub carrier: bool,
    /// Software link kind (`dummy`, `veth`, `bridge`, `bond`...); `None` for a real NIC.
    pub virtual_kind: Option<String>,
}

impl Link {
    pub fn is_ethernet(&self) -> bool {
        self.kind == LinkLayerType::Ether && self.mac.is_some()
    }

    /// A link to boot from when `ip=` names no device: ethernet, and not a software link that
    /// always has "carrier" but leads nowhere by itself (loading `dummy` or `bonding` creates
    /// `dummy0` / `bond0`). A veth counts: in a container or test namespace it is the NIC.
    pub fn is_physical_ethernet(&self) -> bool {
        const NOT_A_NIC: [&str; 10] = [
            "dummy", "bond", "bridge", "vlan", "macvlan", "ipvlan", "vxlan", "team", "ifb", "tun",
        ];
        self.is_ethernet()
            && !self
                .virtual_kind
                .as_deref()
                .is_some_and(|k| NOT_A_NIC.contains(&k))
    }

    fn from_message(msg: &LinkMessage) -> Self {
        let mut name = String::new();
        let mut mac = None;
        let mut carrier = None;
        let mut virtual_kind = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let rtnetlink::packet_route::link::LinkInfo::Kind(kind) = info {
                            virtual_kind = Some(kind.to_string());
                        }
                    }
                }
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    mac = Some([a[0], a[1], a[2], a[3], a[4], a[5]]);
                }
                LinkAttribute::Carrier(c) => carrier = Some(*c != 0),
                _ => {}
            }
        }
        let flags = msg.header.flags;
        let up = flags.contains(LinkFlags::Up);
        Link {
            index: msg.header.index,
            name,
            mac,
            kind: msg.header.link_layer_type,
            up,
            carrier: up && carrier.unwrap_or(flags.contains(LinkFlags::LowerUp)),
            virtual_kind,
        }
    }
}

/// Negative errno in a netlink error, if that is what it is.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;
const EADDRNOTAVAIL: i32 = 99;

/// A netlink connection; its I/O task runs on the current tokio runtime until this is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace. Needs a tokio runtime.
    pub fn connect() -> Result<Self, LinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        let conn = tokio::spawn(conn);
        Ok(Netlink { handle, conn })
    }

    fn err(
        op: &'static str,
        target: impl Into<String>,
    ) -> impl FnOnce(rtnetlink::Error) -> LinkError {
        let target = target.into();
        move |source| LinkError::Netlink { op, target, source }
    }

    /// All links, by index.
    pub async fn links(&self) -> Result<Vec<Link>, LinkError> {
        let mut links: Vec<Link> = self
            .handle
            .link()
            .get()
            .execute()
            .map_ok(|m| Link::from_message(&m))
            .try_collect()
            .await
            .map_err(Self::err("list", "links"))?;
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// The link called `name`.
    pub async fn link_by_name(&self, name: &str) -> Result<Link, LinkError> {
        let links = self.links().await?;
        links
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .ok_or_else(|| LinkError::NoSuchLink {
                name: name.to_string(),
                available: links.into_iter().map(|l| l.name).collect(),
            })
    }

    /// `ip link set <link> up`.
    pub async fn set_up(&self, link: &Link) -> Result<(), LinkError> {
        let msg = LinkUnspec::new_with_index(link.index).up().build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(Self::err("set up", link.name.clone()))
    }

    /// Brings `lo` up and makes sure 127.0.0.1/8 is on it (a fresh namespace or initramfs has
    /// `lo` down; the kernel adds the address when it comes up, but we do not rely on that).
    pub async fn loopback_up(&self) -> Result<Link, LinkError> {
        let lo = self.link_by_name("lo").await?;
        self.set_up(&lo).await?;
        self.add_address(&lo, Ipv4Addr::LOCALHOST, 8, None).await?;
        Ok(lo)
    }

    /// Adds (or updates) `address/prefix_len` on `link`. With `lifetime`, the kernel drops the
    /// address by itself when it runs out (a DHCP lease); `None` = forever.
    pub async fn add_address(
        &self,
        link: &Link,
        address: Ipv4Addr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<(), LinkError> {
        let target = format!("{address}/{prefix_len} on {}", link.name);
        let mut req = self
            .handle
            .address()
            .add(link.index, IpAddr::V4(address), prefix_len)
            .replace();
        if let Some(lifetime) = lifetime {
            // Rounded up: the kernel must not drop the address before our own expiry handling does.
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
        match req.execute().await {
            Ok(()) => Ok(()),
            // 127.0.0.1/8 on lo may be there already; with NLM_F_REPLACE only lo reports this.
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            Err(e) => Err(Self::err("add address", target)(e)),
        }
    }

    /// The IPv4 addresses on `link`, as (address, prefix length).
    pub async fn addresses(&self, link: &Link) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(Self::err("list addresses", link.name.clone()))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == link.index)
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Removes `address/prefix_len` from `link`; fine if it is already gone.
    pub async fn del_address(
        &self,
        link: &Link,
        address: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let target = format!("{address}/{prefix_len} on {}", link.name);
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute()
            .try_collect()
            .await
            .map_err(Self::err("list addresses", target.clone()))?;
        for msg in msgs {
            let matches = msg.header.index == link.index
                && msg.header.prefix_len == prefix_len
                && msg
                    .attributes
                    .contains(&AddressAttribute::Local(IpAddr::V4(address)));
            if !matches {
                continue;
            }
            match self.handle.address().del(msg).execute().await {
                Ok(()) => {}
                Err(e) if matches!(errno(&e), Some(EADDRNOTAVAIL | ENOENT)) => {}
                Err(e) => return Err(Self::err("delete address", target)(e)),
            }
        }
        Ok(())
    }

    fn default_route(
        link: &Link,
        gateway: Ipv4Addr,
        protocol: RouteProtocol,
        onlink: bool,
    ) -> rtnetlink::packet_route::route::RouteMessage {
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
    ) -> Result<(), LinkError> {
        let msg = Self::default_route(link, gateway, protocol, onlink);
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(Self::err(
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
    ) -> Result<(), LinkError> {
        let msg = Self::default_route(link, gateway, protocol, false);
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => Ok(()),
            Err(e) => Err(Self::err(
                "delete default route",
                format!("via {gateway} dev {}", link.name),
            )(e)),
        }
    }

    /// Picks the link to configure and waits (bounded by `timeout`) for its carrier.
    ///
    /// With `device`, that link must be (or appear within `timeout`) and be ethernet; it is
    /// brought up. Without, every ethernet link is brought up, also ones that appear while we
    /// wait (a NIC driver still probing), and the first (lowest index) to show carrier is chosen;
    /// the others stay up, unconfigured.
    pub async fn choose_link(
        &self,
        device: Option<&str>,
        timeout: Duration,
    ) -> Result<Link, LinkError> {
        let started = Instant::now();
        let mut brought_up: Vec<u32> = Vec::new();
        // Poll: carrier usually comes within a second or two of "up"; 100 ms keeps the wait
        // short without a multicast subscription.
        let poll = Duration::from_millis(100);
        loop {
            let links = self.links().await?;
            let candidates: Vec<&Link> = match device {
                Some(name) => links.iter().filter(|l| l.name == name).collect(),
                None => links.iter().filter(|l| l.is_physical_ethernet()).collect(),
            };
            for link in &candidates {
                if device.is_some() && !link.is_ethernet() {
                    return Err(LinkError::NotEthernet {
                        name: link.name.clone(),
                        kind: format!("{:?}", link.kind),
                    });
                }
                if !link.up && !brought_up.contains(&link.index) {
                    self.set_up(link).await?;
                    brought_up.push(link.index);
                }
            }
            if let Some(link) = candidates.iter().find(|l| l.carrier) {
                tracing::info!(
                    device = %link.name,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "carrier up"
                );
                return Ok((*link).clone());
            }
            if started.elapsed() >= timeout {
                if let (Some(name), true) = (device, candidates.is_empty()) {
                    return Err(LinkError::NoSuchLink {
                        name: name.to_string(),
                        available: links.into_iter().map(|l| l.name).collect(),
                    });
                }
                return Err(LinkError::NoCarrier {
                    waited: started.elapsed(),
                    candidates: candidates.iter().map(|l| l.name.clone()).collect(),
                });
            }
            tokio::time::sleep(poll.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }
}
