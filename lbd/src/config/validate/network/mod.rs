//! `[network]`: the node's links, addresses, routes, rules and resolvers, and what the rest of
//! the config says about them (VRRP and sync interfaces, source addresses, VIPs).
//!
//! Each link is read on its own first (`links`, `bond`, `routing`), then checked against the
//! others (`across_links`) and against what the rest of the config names (`references`).

mod across_links;
mod bond;
mod links;
mod references;
mod routing;
mod settings;

pub(super) use references::references;

use super::{valid_ifname, Validator};
use crate::config::network::*;
use crate::config::schema::*;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `[network]` as gathered: its own keys, and each link and rule read on its own.
#[derive(Default)]
pub(super) struct RawNetwork {
    pub settings: NetworkSchema,
    /// Every `[network.link.NAME]` in file order; `None` when its table was refused.
    pub links: Vec<(Spanned<String>, Option<LinkSchema>)>,
    pub rules: Vec<Spanned<RuleSchema>>,
}

/// What the rest of the config names that the network must have, read from the raw tables
/// before they are validated (so a refused instance still has its interface checked).
#[derive(Default)]
pub(super) struct NetworkRefs {
    /// (interface, where, what names it).
    pub interfaces: Vec<(String, Range<usize>, &'static str)>,
    /// (address, where, what uses it): addresses the node must hold to send from.
    pub addresses: Vec<(IpAddr, Range<usize>, &'static str)>,
    /// (VIP, where, the instance's interface).
    pub vips: Vec<(IpAddr, Range<usize>, String)>,
}

/// What one link's validation found, for the checks across links.
struct Checked {
    link: Link,
    span: Range<usize>,
    mtu_span: Option<Range<usize>>,
    member_spans: Vec<Range<usize>>,
    parent_span: Option<Range<usize>>,
}

impl Validator {
    pub(super) fn network(&mut self, raw: RawNetwork, refs: &NetworkRefs) -> Network {
        let declared: BTreeMap<String, Range<usize>> = raw
            .links
            .iter()
            .map(|(n, _)| (n.get_ref().clone(), n.span()))
            .collect();
        // Every link whose shape could be read, in file order (so "first" means first in the
        // file), mistakes and all: a bond with a bad mode still has members to check. A config
        // with any error is refused, so none of these is ever applied.
        let mut checked: Vec<Checked> = Vec::new();
        for (name, schema) in raw.links {
            if let Some(c) = schema.and_then(|s| self.link(&name, s)) {
                checked.push(c);
            }
        }
        checked.sort_by_key(|c| c.span.start);
        self.bonds_and_vlans(&checked, &declared);
        self.addresses_once(&checked);
        let links: BTreeMap<String, Link> = checked
            .into_iter()
            .map(|c| (c.link.name.clone(), c))
            .map(|(name, c)| (name, c.link))
            .collect();
        let network = Network {
            rules: raw.rules.into_iter().filter_map(|r| self.rule(r)).collect(),
            resolvers: self.resolvers(&raw.settings),
            search: self.search(&raw.settings),
            confirm_timeout: self.confirm_timeout(&raw.settings),
            links,
        };
        self.references(&network, &declared, refs);
        network
    }
}

impl Validator {
    /// `[network]`: its links and rules one by one, so one mistake hides nothing else.
    pub(super) fn gather_network(&mut self, value: &Spanned<DeValue<'_>>) -> RawNetwork {
        let mut raw = RawNetwork::default();
        let Some(table) = self.table(value, "[network]") else {
            return raw;
        };
        let mut rest = DeTable::new();
        for (k, v) in table.iter() {
            match &**k.get_ref() {
                "link" => self.gather_links(v, &mut raw),
                "rule" => match v.get_ref() {
                    DeValue::Array(items) => {
                        for r in items.iter() {
                            if let Some(rule) = self.de::<RuleSchema>(r) {
                                raw.rules.push(Spanned::new(r.span(), rule));
                            }
                        }
                    }
                    _ => {
                        self.err(
                            "invalid-value",
                            v.span(),
                            "`rule` must be a list of tables",
                        )
                        .help = Some(
                            "write each rule as [[network.rule]] with from = \"10.1.0.0/24\", table = 100"
                                .into(),
                        );
                    }
                },
                _ => {
                    rest.insert(k.clone(), v.clone());
                }
            }
        }
        let settings = Spanned::new(value.span(), DeValue::Table(rest));
        if let Some(s) = self.de::<NetworkSchema>(&settings) {
            raw.settings = s;
        }
        raw
    }

    fn gather_links(&mut self, value: &Spanned<DeValue<'_>>, raw: &mut RawNetwork) {
        let Some(links) = self.table(value, "[network.link]") else {
            return;
        };
        for (name, item) in links.iter() {
            let name = Spanned::new(name.span(), name.get_ref().to_string());
            if !valid_ifname(name.get_ref()) {
                self.bad_ifname(&name);
                continue;
            }
            if !matches!(item.get_ref(), DeValue::Table(_)) {
                self.err(
                    "invalid-value",
                    name.span(),
                    format!("`network.link.{}` must be a table", name.get_ref()),
                )
                .help = Some(format!(
                    "write it as a section: [network.link.{}]",
                    name.get_ref()
                ));
                continue;
            }
            let schema = self.de::<LinkSchema>(item);
            raw.links.push((name, schema));
        }
    }
}
