//! The node's network as the config describes it (`[network]`): links (ethernet, bond, VLAN),
//! their addresses and routes, policy rules and resolvers. init applies it before lbd starts
//! and on every change, as a difference; lbd only reads it (to know the node's links).
//!
//! The vocabulary is the kernel's and iproute2's (bonding.rst's mode and option names), so an
//! operator's existing notes translate one to one.

use super::types::IpPrefix;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// `[network]`: every link the node configures, in name order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    pub links: BTreeMap<String, Link>,
    pub rules: Vec<Rule>,
    pub resolvers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// How long init waits, after applying a change, to reach the config source again before
    /// it puts the previous network back.
    pub confirm_timeout: Duration,
}

impl Network {
    pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

    /// The link a packet to `dest` leaves by, from the config alone: the most specific
    /// connected subnet or route of the main table (policy rules and other tables aside).
    /// `None` when the config gives no way there. Links on DHCP may learn routes the config
    /// cannot know: [`Network::may_reach`] counts them.
    pub fn route_to(&self, dest: IpAddr) -> Option<&str> {
        let mut best: Option<(u8, &str)> = None;
        for (name, link) in &self.links {
            let connected = link.addresses.iter().map(|a| (a.network(), a.prefix_len));
            let routed = link
                .routes
                .iter()
                .filter(|r| r.table.is_none_or(|t| t == Route::MAIN_TABLE))
                .map(|r| (r.to.network(), r.to.prefix_len));
            for (net, len) in connected.chain(routed) {
                let prefix = IpPrefix {
                    addr: net,
                    prefix_len: len,
                };
                if prefix.contains(dest) && best.is_none_or(|(l, _)| len > l) {
                    best = Some((len, name));
                }
            }
        }
        best.map(|(_, n)| n)
    }

    /// Whether the node may reach `dest` once this network is applied: a route or subnet of
    /// the config covers it, or a link on DHCP may bring one.
    pub fn may_reach(&self, dest: IpAddr) -> bool {
        self.route_to(dest).is_some() || self.links.values().any(|l| l.dhcp && dest.is_ipv4())
    }

    /// The members of every bond: member name → bond name.
    pub fn bond_of(&self) -> BTreeMap<&str, &str> {
        let mut out = BTreeMap::new();
        for (name, link) in &self.links {
            if let LinkKind::Bond(b) = &link.kind {
                for m in &b.members {
                    out.insert(m.as_str(), name.as_str());
                }
            }
        }
        out
    }
}

/// One `[network.link.NAME]`: the kernel interface named NAME.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub name: String,
    pub kind: LinkKind,
    pub mtu: Option<u32>,
    pub addresses: Vec<IpPrefix>,
    /// IPv4 DHCP on this link (init's client; addresses and routes it learns are its own).
    pub dhcp: bool,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A NIC. Without `match`, the one the kernel calls NAME; with it, the one NIC that
    /// matches, renamed to NAME.
    Ethernet {
        matches: Option<NicMatch>,
    },
    Bond(Bond),
    Vlan {
        parent: String,
        id: u16,
    },
}

impl LinkKind {
    pub fn word(&self) -> &'static str {
        match self {
            LinkKind::Ethernet { .. } => "ethernet",
            LinkKind::Bond(_) => "bond",
            LinkKind::Vlan { .. } => "vlan",
        }
    }
}

/// Which NIC an ethernet link is: every criterion given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NicMatch {
    /// The permanent MAC address (a bond member's current MAC is the bond's).
    pub mac: Option<[u8; 6]>,
    /// The kernel name the NIC has before init renames it.
    pub name: Option<String>,
    /// The driver bound to it (`ixgbe`), as `/sys/class/net/X/device/driver` names it.
    pub driver: Option<String>,
    /// Its bus address (`0000:03:00.0`), as `/sys/class/net/X/device` links to it.
    pub path: Option<String>,
}

/// A bond and its options (bonding.rst).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bond {
    pub members: Vec<String>,
    pub mode: BondMode,
    pub miimon: Duration,
    pub lacp_rate: LacpRate,
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    pub min_links: u32,
    pub updelay: Duration,
    pub downdelay: Duration,
    pub primary: Option<String>,
}

impl Bond {
    /// Link monitoring every 100 ms unless the config says otherwise: without miimon a bond
    /// never notices a member's carrier going away.
    pub const DEFAULT_MIIMON: Duration = Duration::from_millis(100);
}

macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $word:literal => $kernel:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The word the config and bonding.rst use.
            pub fn word(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
            /// The value the kernel's bonding netlink attribute takes.
            pub fn kernel(self) -> u8 {
                match self { $($name::$variant => $kernel),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .find(|v| v.word() == s)
                    .copied()
                    .ok_or_else(|| {
                        let words: Vec<&str> = Self::ALL.iter().map(|v| v.word()).collect();
                        format!("unknown value {s:?}: one of {}", words.join(", "))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.word())
            }
        }
    };
}

words!(
    /// Bonding modes, by bonding.rst's names.
    BondMode {
        BalanceRr = "balance-rr" => 0,
        ActiveBackup = "active-backup" => 1,
        BalanceXor = "balance-xor" => 2,
        Broadcast = "broadcast" => 3,
        Lacp = "802.3ad" => 4,
        BalanceTlb = "balance-tlb" => 5,
        BalanceAlb = "balance-alb" => 6,
    }
);

impl BondMode {
    /// Modes where `primary` means something.
    pub fn takes_primary(self) -> bool {
        matches!(
            self,
            BondMode::ActiveBackup | BondMode::BalanceTlb | BondMode::BalanceAlb
        )
    }

    /// Modes that hash flows over members.
    pub fn takes_hash_policy(self) -> bool {
        matches!(
            self,
            BondMode::BalanceXor | BondMode::Lacp | BondMode::BalanceTlb
        )
    }
}

words!(
    /// How often an 802.3ad partner is asked for LACPDUs.
    LacpRate {
        Slow = "slow" => 0,
        Fast = "fast" => 1,
    }
);

words!(
    /// What a bond hashes to spread flows over its members.
    XmitHashPolicy {
        Layer2 = "layer2" => 0,
        Layer34 = "layer3+4" => 1,
        Layer23 = "layer2+3" => 2,
        Encap23 = "encap2+3" => 3,
        Encap34 = "encap3+4" => 4,
        VlanSrcMac = "vlan+srcmac" => 5,
    }
);

/// A route out of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The destination; `0.0.0.0/0` or `::/0` for a default route.
    pub to: IpPrefix,
    /// The gateway; `None` for a destination directly on the link.
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
    /// Routing table; `None` is the main table.
    pub table: Option<u32>,
    /// Preferred source address.
    pub source: Option<IpAddr>,
}

impl Route {
    pub const MAIN_TABLE: u32 = 254;
}

/// A policy routing rule (`ip rule`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub from: Option<IpPrefix>,
    pub to: Option<IpPrefix>,
    pub table: u32,
    pub priority: Option<u32>,
}

/// The error for a `[network]` (of the config text `text`) that leaves no way to the config
/// source `source`, at the `[network` header, for whoever knows the source (init, at apply).
pub fn no_route_to_source(text: &str, source: IpAddr) -> super::Diagnostic {
    let at = text
        .match_indices("[network")
        .find(|(i, _)| *i == 0 || text[..*i].ends_with('\n'))
        .map(|(i, _)| i);
    super::Diagnostic::error(
        "no-route-to-source",
        at.map(|i| i..i + "[network".len()),
        format!("this network leaves no route to the config source {source}"),
    )
    .help(
        "give a link an address in the source's subnet, a route to it, or a default route; \
         or leave the boot link as it booted",
    )
}

/// A MAC address written `52:54:00:12:34:56` (or with `-`).
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{text:?} is not a MAC address (six hex pairs)"));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(format!("{text:?} is not a MAC address (six hex pairs)"));
        }
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| format!("{text:?} is not a MAC address (six hex pairs)"))?;
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, addresses: &[&str], routes: Vec<Route>) -> Link {
        Link {
            name: name.into(),
            kind: LinkKind::Ethernet { matches: None },
            mtu: None,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            dhcp: false,
            routes,
        }
    }

    fn network(links: Vec<Link>) -> Network {
        Network {
            links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
            rules: vec![],
            resolvers: vec![],
            search: vec![],
            confirm_timeout: Network::DEFAULT_CONFIRM_TIMEOUT,
        }
    }

    #[test]
    fn the_most_specific_subnet_or_route_wins() {
        let default = Route {
            to: "0.0.0.0/0".parse().unwrap(),
            via: Some("192.0.2.1".parse().unwrap()),
            metric: None,
            table: None,
            source: None,
        };
        let n = network(vec![
            link("outside", &["192.0.2.2/24"], vec![default.clone()]),
            link("inside", &["10.1.0.2/24"], vec![]),
        ]);
        assert_eq!(n.route_to("10.1.0.9".parse().unwrap()), Some("inside"));
        assert_eq!(n.route_to("192.0.2.77".parse().unwrap()), Some("outside"));
        assert_eq!(n.route_to("198.51.100.1".parse().unwrap()), Some("outside"));
        assert_eq!(n.route_to("2001:db8::1".parse().unwrap()), None);
        // A default route in another table is policy routing: not the main table's way out.
        let other_table = Route {
            table: Some(100),
            ..default
        };
        let n = network(vec![link("outside", &["192.0.2.2/24"], vec![other_table])]);
        assert_eq!(n.route_to("198.51.100.1".parse().unwrap()), None);
        assert!(!n.may_reach("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn words_round_trip_and_say_what_is_accepted() {
        for m in BondMode::ALL {
            assert_eq!(m.word().parse::<BondMode>(), Ok(*m));
        }
        assert_eq!(BondMode::Lacp.kernel(), 4);
        assert_eq!(XmitHashPolicy::Layer34.kernel(), 1);
        let e = "lacp".parse::<BondMode>().unwrap_err();
        assert!(e.contains("802.3ad") && e.contains("active-backup"), "{e}");
    }

    #[test]
    fn no_route_points_at_the_network_header() {
        let text =
            "[node]\nhostname = \"lb\"\n\n[network.link.eth0]\naddresses = [\"192.0.2.2/24\"]\n";
        let d = no_route_to_source(text, "198.51.100.1".parse().unwrap());
        assert_eq!(d.code, "no-route-to-source");
        let loc = super::super::Location::of(text, d.span.clone().unwrap().start);
        assert_eq!((loc.line, loc.column), (4, 1));
        assert!(d.message.contains("198.51.100.1"));
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:AB:cd:0f"),
            Ok([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])
        );
        assert_eq!(
            parse_mac("52-54-00-ab-cd-0f")
                .map(|m| format_mac(&m))
                .as_deref(),
            Ok("52:54:00:ab:cd:0f")
        );
        assert!(parse_mac("52:54:00:ab:cd").is_err());
        assert!(parse_mac("52:54:00:ab:cd:0g").is_err());
        assert!(parse_mac("525:4:00:ab:cd:0f").is_err());
    }
}
