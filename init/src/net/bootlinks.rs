//! Links the kernel command line asks for before any config arrives, in the forms operators
//! already write for dracut and Talos: `bond=`, `vlan=` and iPXE's `BOOTIF=`. They become a
//! `[network]` (bonds, VLANs, their members by name) that init applies with the same planner
//! as a config's, before `ip=` configures addresses on them.
//!
//! - `bond=<name>[:<members>[:<options>[:<mtu>]]]`, members comma-separated, options
//!   `mode=802.3ad,miimon=100,lacp_rate=fast,xmit_hash_policy=layer3+4,min_links=1,updelay=200,
//!   downdelay=200,primary=eth0` (bonding.rst's names, times in milliseconds); `bond` alone is
//!   dracut's `bond0` of `eth0,eth1`.
//! - `vlan=<name>:<parent>`, the id read from the name (`bond0.100`, `vlan0100`, `vlan100`).
//! - `BOOTIF=01-52-54-00-12-34-56`: the NIC the firmware booted from, which `ip=` without a
//!   device then uses (or the bond it is in).

use lbd::config::network::{
    parse_mac, Bond, BondMode, LacpRate, Link, LinkKind, Network, XmitHashPolicy,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct BootLinks {
    /// Bonds, VLANs and the members they name.
    pub network: Network,
    /// `BOOTIF=`'s MAC.
    pub bootif: Option<[u8; 6]>,
}

/// A word of the command line that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{word}: {why}")]
pub struct BootLinkError {
    pub word: String,
    pub why: String,
}

impl BootLinks {
    pub fn is_empty(&self) -> bool {
        self.network.links.is_empty()
    }
}

/// Reads `bond=`, `vlan=` and `BOOTIF=` from the command line's words.
pub fn parse(words: &[&str]) -> Result<BootLinks, BootLinkError> {
    let mut links: BTreeMap<String, Link> = BTreeMap::new();
    let mut bootif = None;
    for word in words {
        let fail = |why: String| BootLinkError {
            word: word.to_string(),
            why,
        };
        if *word == "bond" {
            add_bond(&mut links, "bond0:eth0,eth1").map_err(fail)?;
        } else if let Some(v) = word.strip_prefix("bond=") {
            add_bond(&mut links, v).map_err(fail)?;
        } else if let Some(v) = word.strip_prefix("vlan=") {
            add_vlan(&mut links, v).map_err(fail)?;
        } else if let Some(v) = word.strip_prefix("BOOTIF=") {
            // `01-` is the hardware type (ethernet) pxelinux and iPXE put first.
            let mac = v.strip_prefix("01-").unwrap_or(v);
            bootif = Some(parse_mac(mac).map_err(fail)?);
        }
    }
    Ok(BootLinks {
        network: Network {
            links,
            rules: Vec::new(),
            resolvers: Vec::new(),
            search: Vec::new(),
            confirm_timeout: Network::DEFAULT_CONFIRM_TIMEOUT,
        },
        bootif,
    })
}

fn plain(name: &str) -> Link {
    Link {
        name: name.to_string(),
        kind: LinkKind::Ethernet { matches: None },
        mtu: None,
        addresses: Vec::new(),
        dhcp: false,
        routes: Vec::new(),
    }
}

fn ifname(name: &str) -> Result<String, String> {
    if lbd::config::valid_ifname(name) {
        Ok(name.to_string())
    } else {
        Err(format!("{name:?} is not an interface name"))
    }
}

fn millis(key: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms <= 60_000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{key}={value}: milliseconds, at most 60000"))
}

fn add_bond(links: &mut BTreeMap<String, Link>, value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() > 4 {
        return Err("bond=<name>:<members>:<options>:<mtu> has at most four parts".into());
    }
    let name = ifname(parts[0])?;
    let members: Vec<String> = match parts.get(1).filter(|m| !m.is_empty()) {
        Some(m) => m.split(',').map(ifname).collect::<Result<_, _>>()?,
        None => vec!["eth0".into(), "eth1".into()],
    };
    let mut bond = Bond {
        members: members.clone(),
        // dracut's default.
        mode: BondMode::BalanceRr,
        miimon: Bond::DEFAULT_MIIMON,
        lacp_rate: LacpRate::Slow,
        xmit_hash_policy: None,
        min_links: 0,
        updelay: Duration::ZERO,
        downdelay: Duration::ZERO,
        primary: None,
    };
    for opt in parts
        .get(2)
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| format!("bond option {opt:?} is not key=value"))?;
        match k {
            "mode" => bond.mode = numbered_mode(v).map_or_else(|| v.parse(), Ok)?,
            "miimon" => bond.miimon = millis(k, v)?,
            "updelay" => bond.updelay = millis(k, v)?,
            "downdelay" => bond.downdelay = millis(k, v)?,
            "lacp_rate" => {
                bond.lacp_rate = match v {
                    "0" => LacpRate::Slow,
                    "1" => LacpRate::Fast,
                    _ => v.parse()?,
                }
            }
            "xmit_hash_policy" => bond.xmit_hash_policy = Some(v.parse::<XmitHashPolicy>()?),
            "min_links" => {
                bond.min_links = v
                    .parse()
                    .map_err(|_| format!("min_links={v}: a number"))?
            }
            "primary" if members.iter().any(|m| m == v) => bond.primary = Some(v.to_string()),
            "primary" => return Err(format!("primary={v} is not one of the members")),
            other => return Err(format!("bond option {other:?} is not one lbd sets (mode, miimon, lacp_rate, xmit_hash_policy, min_links, updelay, downdelay, primary)")),
        }
    }
    let mtu = match parts.get(3).filter(|m| !m.is_empty()) {
        Some(m) => Some(
            m.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| format!("mtu {m:?}: 68 to 65535"))?,
        ),
        None => None,
    };
    for m in &members {
        links.entry(m.clone()).or_insert_with(|| plain(m));
    }
    let mut link = plain(&name);
    link.kind = LinkKind::Bond(bond);
    link.mtu = mtu;
    links.insert(name, link);
    Ok(())
}

/// Modes by number, as `/etc/modprobe.d` and old dracut lines write them.
fn numbered_mode(v: &str) -> Option<BondMode> {
    let n: u8 = v.parse().ok()?;
    BondMode::ALL.iter().copied().find(|m| m.kernel() == n)
}

fn add_vlan(links: &mut BTreeMap<String, Link>, value: &str) -> Result<(), String> {
    let (name, parent) = value
        .split_once(':')
        .ok_or("vlan=<name>:<parent>, e.g. vlan=bond0.100:bond0")?;
    let name = ifname(name)?;
    let parent = ifname(parent)?;
    let digits = name
        .rsplit_once('.')
        .map(|(_, id)| id)
        .or_else(|| name.strip_prefix("vlan"))
        .ok_or_else(|| {
            format!("the VLAN id is read from the name ({name:?}): write PARENT.ID or vlanID")
        })?;
    let id = digits
        .parse::<u16>()
        .ok()
        .filter(|id| (1..=4094).contains(id))
        .ok_or_else(|| format!("{digits:?} in {name:?} is not a VLAN id (1 to 4094)"))?;
    links
        .entry(parent.clone())
        .or_insert_with(|| plain(&parent));
    let mut link = plain(&name);
    link.kind = LinkKind::Vlan { parent, id };
    links.insert(name, link);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dracut_and_talos_forms() {
        let b = parse(&[
            "console=ttyS0",
            "bond=bond0:eth0,eth1:mode=802.3ad,miimon=100,lacp_rate=fast,xmit_hash_policy=layer3+4,min_links=1:9000",
            "vlan=bond0.100:bond0",
            "vlan=vlan0042:eth2",
            "BOOTIF=01-52-54-00-12-34-56",
            "ip=bond0.100:dhcp",
        ])
        .unwrap();
        assert_eq!(b.bootif, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        let links = &b.network.links;
        assert_eq!(
            links.keys().collect::<Vec<_>>(),
            ["bond0", "bond0.100", "eth0", "eth1", "eth2", "vlan0042"]
        );
        let LinkKind::Bond(bond) = &links["bond0"].kind else {
            panic!()
        };
        assert_eq!(bond.mode, BondMode::Lacp);
        assert_eq!(bond.lacp_rate, LacpRate::Fast);
        assert_eq!(bond.xmit_hash_policy, Some(XmitHashPolicy::Layer34));
        assert_eq!((bond.min_links, links["bond0"].mtu), (1, Some(9000)));
        assert_eq!(
            links["bond0.100"].kind,
            LinkKind::Vlan {
                parent: "bond0".into(),
                id: 100
            }
        );
        assert_eq!(
            links["vlan0042"].kind,
            LinkKind::Vlan {
                parent: "eth2".into(),
                id: 42
            }
        );
        // `bond` alone, and modes by number.
        let b = parse(&["bond"]).unwrap();
        let LinkKind::Bond(bond) = &b.network.links["bond0"].kind else {
            panic!()
        };
        assert_eq!((bond.members.len(), bond.mode), (2, BondMode::BalanceRr));
        let b = parse(&["bond=bond1:eth2,eth3:mode=1,primary=eth3"]).unwrap();
        let LinkKind::Bond(bond) = &b.network.links["bond1"].kind else {
            panic!()
        };
        assert_eq!(bond.mode, BondMode::ActiveBackup);
        assert_eq!(bond.primary.as_deref(), Some("eth3"));
        assert!(parse(&["console=ttyS0"]).unwrap().is_empty());
    }

    #[test]
    fn mistakes_name_the_word_and_what_is_wrong() {
        for (word, says) in [
            ("bond=bond0:eth0:mode=lacp", "unknown value \"lacp\""),
            ("bond=bond0:eth0:speed=10", "\"speed\" is not one lbd sets"),
            (
                "bond=bond0:eth0:primary=eth9",
                "primary=eth9 is not one of the members",
            ),
            ("bond=bond0:eth0::70000", "mtu \"70000\""),
            ("vlan=bond0.5000:bond0", "not a VLAN id"),
            ("vlan=mgmt:bond0", "the VLAN id is read from the name"),
            ("vlan=bond0.100", "vlan=<name>:<parent>"),
            ("BOOTIF=01-52-54-00", "not a MAC address"),
        ] {
            let e = parse(&[word]).unwrap_err();
            assert_eq!(e.word, word);
            assert!(e.to_string().contains(says), "{word}: {e}");
        }
    }
}
