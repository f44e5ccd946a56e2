//! The checks across links: bond members and VLAN parents, addresses held once.

use super::{Checked, Validator};
use crate::config::network::*;
use crate::config::validate::unknown_name_help;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;

impl Validator {
    /// Members and parents that exist, a link in one bond at most, VLANs no larger than their
    /// parent, one VLAN per (parent, id).
    pub(super) fn bonds_and_vlans(
        &mut self,
        checked: &[Checked],
        declared: &BTreeMap<String, Range<usize>>,
    ) {
        let links: BTreeMap<&str, &Checked> =
            checked.iter().map(|c| (c.link.name.as_str(), c)).collect();
        let mut member_of: HashMap<&str, (&str, Range<usize>)> = HashMap::new();
        let mut vlans: HashMap<(&str, u16), (&str, Range<usize>)> = HashMap::new();
        for c in checked {
            let name = &c.link.name;
            match &c.link.kind {
                LinkKind::Bond(b) => {
                    for (m, span) in b.members.iter().zip(&c.member_spans) {
                        if !self.known_link(m, span, declared, "member") {
                            continue;
                        }
                        if m == name {
                            self.err(
                                "bad-bond-member",
                                span.clone(),
                                format!("bond `{name}` cannot be its own member"),
                            );
                            continue;
                        }
                        if let Some((other, first)) = member_of.get(m.as_str()) {
                            self.err(
                                "link-in-two-bonds",
                                span.clone(),
                                format!("`{m}` is a member of bonds `{other}` and `{name}`"),
                            )
                            .and_related(first.clone(), "first made a member here")
                            .and_help("a link can be enslaved to one bond only");
                            continue;
                        }
                        member_of.insert(m, (name, span.clone()));
                        let Some(member) = links.get(m.as_str()) else {
                            continue;
                        };
                        if !matches!(member.link.kind, LinkKind::Ethernet { .. }) {
                            self.err(
                                "bad-bond-member",
                                span.clone(),
                                format!(
                                    "`{m}` is a {} link; bond members are ethernet links",
                                    member.link.kind.word()
                                ),
                            );
                        } else if !member.link.addresses.is_empty()
                            || member.link.dhcp
                            || !member.link.routes.is_empty()
                        {
                            self.err(
                                "member-has-addresses",
                                member.span.clone(),
                                format!("`{m}` is a member of bond `{name}` but has its own addresses, DHCP or routes"),
                            )
                            .and_related(span.clone(), "made a member here")
                            .and_help(format!("a member carries no addresses: put them on `{name}`"));
                        } else if member.link.mtu.is_some() {
                            self.err(
                                "member-has-addresses",
                                member.mtu_span.clone().unwrap_or(member.span.clone()),
                                format!(
                                    "`{m}` is a member of bond `{name}`: its MTU is the bond's"
                                ),
                            )
                            .help = Some(format!("set mtu on `{name}`"));
                        }
                    }
                }
                LinkKind::Vlan { parent, id } => {
                    let span = c.parent_span.clone().unwrap_or(c.span.clone());
                    if !self.known_link(parent, &span, declared, "parent") {
                        continue;
                    }
                    if *id == 0 {
                        // Refused id: nothing to compare.
                    } else if let Some((other, first)) = vlans.get(&(parent.as_str(), *id)) {
                        self.err(
                            "duplicate-vlan",
                            c.span.clone(),
                            format!("VLAN {id} on `{parent}` is declared twice (`{other}` and `{name}`)"),
                        )
                        .and_related(first.clone(), "first declared here");
                        continue;
                    } else {
                        vlans.insert((parent, *id), (name, c.span.clone()));
                    }
                    let Some(p) = links.get(parent.as_str()) else {
                        continue;
                    };
                    let parent_mtu = p.link.mtu.unwrap_or(1500);
                    if let (Some(mtu), Some(mtu_span)) = (c.link.mtu, &c.mtu_span) {
                        if mtu > parent_mtu {
                            let d = self.err(
                                "vlan-mtu-above-parent",
                                mtu_span.clone(),
                                format!("VLAN `{name}` has MTU {mtu}, above its parent `{parent}`'s {parent_mtu}"),
                            );
                            d.help =
                                Some(format!("raise `{parent}`'s mtu first, or lower this one"));
                            if let Some(ps) = &p.mtu_span {
                                d.and_related(ps.clone(), "the parent's MTU");
                            }
                        }
                    }
                }
                LinkKind::Ethernet { .. } => {}
            }
        }
        // A VLAN on a bond's member bypasses the bond.
        for c in checked {
            let name = &c.link.name;
            if let LinkKind::Vlan { parent, .. } = &c.link.kind {
                if let Some((bond, _)) = member_of.get(parent.as_str()) {
                    self.err(
                        "vlan-on-bond-member",
                        c.parent_span.clone().unwrap_or(c.span.clone()),
                        format!("VLAN `{name}` is on `{parent}`, a member of bond `{bond}`"),
                    )
                    .help = Some(format!("put the VLAN on the bond: parent = \"{bond}\""));
                }
            }
        }
    }

    /// Whether `name` is a declared link; reports it otherwise.
    fn known_link(
        &mut self,
        name: &str,
        span: &Range<usize>,
        declared: &BTreeMap<String, Range<usize>>,
        what: &str,
    ) -> bool {
        if declared.contains_key(name) {
            return true;
        }
        self.err(
            "unknown-link",
            span.clone(),
            format!("{what} `{name}` is not a link of [network]"),
        )
        .help = Some(unknown_name_help(
            name,
            declared.keys(),
            &format!("declare it as [network.link.{name}]"),
        ));
        false
    }

    /// An address on two links (or twice on one) is refused.
    pub(super) fn addresses_once(&mut self, checked: &[Checked]) {
        let mut seen: HashMap<IpAddr, &str> = HashMap::new();
        for c in checked {
            let name = c.link.name.as_str();
            for a in &c.link.addresses {
                if let Some(other) = seen.insert(a.addr, name) {
                    self.err(
                        "duplicate-address",
                        c.span.clone(),
                        format!("{} is on links `{other}` and `{name}`", a.addr),
                    )
                    .help = Some(
                        "an address belongs on one link; VIPs are VRRP's, not the links'".into(),
                    );
                }
            }
        }
    }
}
