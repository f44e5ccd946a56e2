//! What the rest of the config names that the network must have: gathered from the raw tables,
//! then checked against the validated links.

use super::{NetworkRefs, Validator};
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::types::*;
use crate::config::validate::{unknown_name_help, Raw};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

impl Validator {
    /// What VRRP, connection sync, checks and the API name must exist on this node.
    pub(super) fn references(
        &mut self,
        network: &Network,
        declared: &BTreeMap<String, Range<usize>>,
        refs: &NetworkRefs,
    ) {
        let bond_of = network.bond_of();
        for (iface, span, what) in &refs.interfaces {
            if !declared.contains_key(iface) {
                self.err(
                    "unknown-interface",
                    span.clone(),
                    format!("{what} `{iface}` is not a link of [network]"),
                )
                .help = Some(unknown_name_help(
                    iface,
                    declared.keys(),
                    &format!(
                        "declare it as [network.link.{iface}], or name one of the node's links"
                    ),
                ));
            } else if let Some(bond) = bond_of.get(iface.as_str()) {
                self.err(
                    "interface-is-bond-member",
                    span.clone(),
                    format!("{what} `{iface}` is a member of bond `{bond}`"),
                )
                .help = Some(format!("use the bond: \"{bond}\""));
            }
        }
        // Addresses DHCP hands out are not known here.
        if !network.links.values().any(|l| l.dhcp) {
            for (addr, span, what) in &refs.addresses {
                let held = network
                    .links
                    .values()
                    .any(|l| l.addresses.iter().any(|a| a.addr == *addr));
                if !held && !addr.is_unspecified() && !addr.is_loopback() {
                    self.err(
                        "not-a-node-address",
                        span.clone(),
                        format!("{what} {addr} is on none of the node's links"),
                    )
                    .help = Some("add it to a link's addresses, or use one the node has".into());
                }
            }
        }
        for (vip, span, iface) in &refs.vips {
            let Some(link) = network.links.get(iface) else {
                continue;
            };
            let family = Family::of(vip);
            let subnets: Vec<&IpPrefix> = link
                .addresses
                .iter()
                // A host address (/32, /128) has no neighbours: it says nothing of subnets.
                .filter(|a| Family::of(&a.addr) == family && a.prefix_len < family.max_prefix())
                .collect();
            if link.dhcp || subnets.is_empty() || subnets.iter().any(|s| s.contains(*vip)) {
                continue;
            }
            let list: Vec<String> = subnets
                .iter()
                .map(|s| {
                    IpPrefix {
                        addr: s.network(),
                        prefix_len: s.prefix_len,
                    }
                    .to_string()
                })
                .collect();
            self.err(
                "vip-outside-subnets",
                span.clone(),
                format!("VIP {vip} is outside every subnet of `{iface}` ({})", list.join(", ")),
            )
            .help = Some(format!(
                "neighbours on `{iface}` would not send to it: give `{iface}` an address in the VIP's subnet, or move the instance"
            ));
        }
    }
}

/// What the raw tables name that the node's network must have.
pub(in crate::config::validate) fn references(raw: &Raw) -> NetworkRefs {
    let mut refs = NetworkRefs::default();
    for (_, s) in &raw.instances {
        let iface = s.interface.get_ref();
        refs.interfaces
            .push((iface.clone(), s.interface.span(), "VRRP interface"));
        for t in &s.track_interfaces {
            refs.interfaces
                .push((t.get_ref().clone(), t.span(), "tracked interface"));
        }
        if let Some(src) = &s.unicast_source {
            refs.addresses
                .push((*src.get_ref(), src.span(), "unicast_source"));
        }
        for v in s.vips.get_ref() {
            refs.vips.push((v.get_ref().addr, v.span(), iface.clone()));
        }
    }
    if let Some(sync) = &raw.ipvs.sync {
        refs.interfaces.push((
            sync.interface.get_ref().clone(),
            sync.interface.span(),
            "connection sync interface",
        ));
    }
    if let Some(api) = &raw.node.api_listen {
        refs.addresses
            .push((api.get_ref().ip, api.span(), "api_listen address"));
    }
    let inline = |c: &Option<Spanned<CheckRef>>| match c.as_ref().map(|c| c.get_ref()) {
        Some(CheckRef::Inline(c)) => c.source_address.clone(),
        _ => None,
    };
    let sources = raw
        .checks
        .values()
        .map(|(_, c)| c.source_address.clone())
        .chain(raw.services.iter().flat_map(|(_, s, reals)| {
            std::iter::once(inline(&s.check)).chain(reals.iter().map(|r| inline(&r.check)))
        }));
    for src in sources.flatten() {
        refs.addresses
            .push((*src.get_ref(), src.span(), "check source_address"));
    }
    refs
}
