//! What lbd and init know of the kernel's links and addresses, read from rtnetlink messages.
//! Pure: `from_message` takes a parsed message and does no I/O, so it is tested on real bytes.

use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{
    BondPortState, InfoBond, InfoBondPort, InfoData, InfoPortData, InfoVlan, LinkAttribute,
    LinkFlags, LinkInfo, LinkLayerType, LinkMessage, MiiStatus,
};
use std::net::IpAddr;

/// A failed netlink operation: what we tried, on what, and the kernel's answer.
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
    #[error("no link named {name:?} (links: {})", available.join(", "))]
    NoSuchLink {
        name: String,
        available: Vec<String>,
    },
}

impl NetError {
    /// The kernel's errno, if the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { source, .. } => errno(source),
            _ => None,
        }
    }
}

/// The errno of a netlink error answer, if that is what it is.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

pub const EEXIST: i32 = 17;
pub const ESRCH: i32 = 3;
pub const ENOENT: i32 = 2;
pub const ENODEV: i32 = 19;
pub const EADDRNOTAVAIL: i32 = 99;

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
    pub admin_up: bool,
    /// Up with carrier: `IFF_UP` and the physical layer (`IFLA_CARRIER`, else `IFF_LOWER_UP`).
    pub carrier: bool,
    /// Software link kind (`dummy`, `veth`, `bridge`, `bond`, `vlan`, `macvlan`...); `None` for
    /// a real NIC.
    pub virtual_kind: Option<String>,
    pub mtu: Option<u32>,
    /// The index of the bond or bridge this link is enslaved to.
    pub controller: Option<u32>,
    /// The permanent (factory) MAC: a bond member's current one is the bond's.
    pub perm_mac: Option<[u8; 6]>,
    /// The link this one is stacked on (a VLAN's parent, a macvlan's base).
    pub lower: Option<u32>,
    /// A VLAN's 802.1Q id.
    pub vlan_id: Option<u16>,
    /// A bond's settings.
    pub bond: Option<BondInfo>,
    /// A bond member's state.
    pub bond_port: Option<BondPortInfo>,
}

/// A bond's settings as the kernel reports them (`IFLA_BOND_*`; times in milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BondInfo {
    pub mode: u8,
    pub miimon: u32,
    pub updelay: u32,
    pub downdelay: u32,
    pub min_links: u32,
    pub lacp_rate: u8,
    pub xmit_hash_policy: u8,
    /// The primary member's index.
    pub primary: Option<u32>,
    /// The member in use (active-backup).
    pub active: Option<u32>,
}

/// A bond member's state (`IFLA_BOND_SLAVE_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BondPortInfo {
    /// Carrier as the bond's link monitoring sees it.
    pub mii_up: bool,
    /// In use (active-backup: the active member; other modes: every usable one).
    pub active: bool,
    pub perm_mac: Option<[u8; 6]>,
    /// 802.3ad: this end's and the partner's LACP port state bits.
    pub actor_state: Option<u8>,
    pub partner_state: Option<u8>,
    pub aggregator: Option<u16>,
}

impl BondPortInfo {
    const COLLECTING: u8 = 0x10;
    const DISTRIBUTING: u8 = 0x20;

    /// 802.3ad: LACP has agreed and the member carries traffic both ways.
    pub fn collecting_distributing(&self) -> bool {
        let both = Self::COLLECTING | Self::DISTRIBUTING;
        self.actor_state.is_some_and(|s| s & both == both)
    }
}

fn mac6(bytes: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(bytes).ok()
}

fn bond_info(nlas: &[InfoBond]) -> BondInfo {
    let mut b = BondInfo::default();
    for nla in nlas {
        match nla {
            InfoBond::Mode(m) => b.mode = u8::from(*m),
            InfoBond::MiiMon(v) => b.miimon = *v,
            InfoBond::UpDelay(v) => b.updelay = *v,
            InfoBond::DownDelay(v) => b.downdelay = *v,
            InfoBond::MinLinks(v) => b.min_links = *v,
            InfoBond::AdLacpRate(r) => b.lacp_rate = u8::from(*r),
            InfoBond::XmitHashPolicy(p) => b.xmit_hash_policy = u8::from(*p),
            InfoBond::Primary(i) => b.primary = Some(*i),
            InfoBond::ActivePort(i) => b.active = Some(*i),
            _ => {}
        }
    }
    b
}

fn bond_port_info(nlas: &[InfoBondPort]) -> BondPortInfo {
    let mut p = BondPortInfo::default();
    for nla in nlas {
        match nla {
            InfoBondPort::MiiStatus(m) => p.mii_up = *m == MiiStatus::Up,
            InfoBondPort::BondPortState(s) => p.active = *s == BondPortState::Active,
            InfoBondPort::PermHwaddr(a) => p.perm_mac = mac6(a),
            InfoBondPort::AdActorOperPortState(s) => p.actor_state = Some(s.bits()),
            InfoBondPort::AdPartnerOperPortState(s) => p.partner_state = Some(s.bits()),
            InfoBondPort::AdAggregatorId(a) => p.aggregator = Some(*a),
            _ => {}
        }
    }
    p
}

impl Link {
    pub fn from_message(msg: &LinkMessage) -> Self {
        let mut name = String::new();
        let mut mac = None;
        let mut carrier = None;
        let mut virtual_kind = None;
        let mut mtu = None;
        let mut controller = None;
        let (mut perm_mac, mut lower, mut vlan_id, mut bond, mut bond_port) =
            (None, None, None, None, None);
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => virtual_kind = Some(kind.to_string()),
                            LinkInfo::Data(InfoData::Bond(b)) => bond = Some(bond_info(b)),
                            LinkInfo::Data(InfoData::Vlan(v)) => {
                                vlan_id = v.iter().find_map(|x| match x {
                                    InfoVlan::Id(id) => Some(*id),
                                    _ => None,
                                })
                            }
                            LinkInfo::PortData(InfoPortData::BondPort(p)) => {
                                bond_port = Some(bond_port_info(p))
                            }
                            _ => {}
                        }
                    }
                }
                LinkAttribute::PermAddress(a) => perm_mac = mac6(a),
                LinkAttribute::Link(l) => lower = Some(*l),
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => {
                    mac = Some([a[0], a[1], a[2], a[3], a[4], a[5]]);
                }
                LinkAttribute::Carrier(c) => carrier = Some(*c != 0),
                LinkAttribute::Mtu(m) => mtu = Some(*m),
                LinkAttribute::Controller(c) => controller = Some(*c),
                _ => {}
            }
        }
        let flags = msg.header.flags;
        let admin_up = flags.contains(LinkFlags::Up);
        Link {
            index: msg.header.index,
            name,
            mac,
            kind: msg.header.link_layer_type,
            admin_up,
            carrier: admin_up && carrier.unwrap_or(flags.contains(LinkFlags::LowerUp)),
            virtual_kind,
            mtu,
            controller,
            perm_mac: perm_mac
                .or_else(|| bond_port.as_ref().and_then(|p: &BondPortInfo| p.perm_mac)),
            lower,
            vlan_id,
            bond,
            bond_port,
        }
    }

    pub fn is_ethernet(&self) -> bool {
        self.kind == LinkLayerType::Ether && self.mac.is_some()
    }

    /// A link to boot from when nothing names one: ethernet, and not a software link that
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
    pub fn from_message(m: &AddressMessage) -> Option<Addr> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::Parseable;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The captured messages: (kind, payload bytes).
    fn dump() -> Vec<(String, Vec<u8>)> {
        include_str!("testdata/dump.txt")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (kind, hex) = l.split_once(' ').unwrap();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (kind.to_string(), bytes)
            })
            .collect()
    }

    fn links() -> Vec<Link> {
        dump()
            .iter()
            .filter(|(k, _)| k == "LINK")
            .map(|(_, b)| Link::from_message(&LinkMessage::parse(b.as_slice()).unwrap()))
            .collect()
    }

    fn addrs() -> Vec<Addr> {
        dump()
            .iter()
            .filter(|(k, _)| k == "ADDR")
            .filter_map(|(_, b)| Addr::from_message(&AddressMessage::parse(b.as_slice()).unwrap()))
            .collect()
    }

    #[test]
    fn links_from_the_kernel() {
        let links = links();
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "vcap1", "vcap0"]);
        let lo = &links[0];
        assert_eq!(lo.kind, LinkLayerType::Loopback);
        assert!(lo.admin_up && !lo.is_ethernet());
        let v = links.iter().find(|l| l.name == "vcap0").unwrap();
        assert_eq!(v.mac, Some([0x02, 0x00, 0x00, 0xaa, 0xbb, 0x01]));
        assert_eq!(v.virtual_kind.as_deref(), Some("veth"));
        assert_eq!(v.mtu, Some(1500));
        assert!(v.admin_up && v.carrier, "both ends are up: {v:?}");
        assert!(v.is_ethernet() && v.is_physical_ethernet());
        assert_eq!(v.controller, None);
    }

    #[test]
    fn addresses_from_the_kernel() {
        let links = links();
        let vcap0 = links.iter().find(|l| l.name == "vcap0").unwrap().index;
        let addrs = addrs();
        let v4 = addrs
            .iter()
            .find(|a| a.addr == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
            .unwrap();
        assert_eq!((v4.index, v4.prefix_len, v4.secondary), (vcap0, 24, false));
        let v6 = addrs
            .iter()
            .find(|a| a.addr == IpAddr::V6("2001:db8::7".parse::<Ipv6Addr>().unwrap()))
            .unwrap();
        assert_eq!((v6.index, v6.prefix_len, v6.tentative), (vcap0, 64, false));
        assert!(addrs
            .iter()
            .any(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
