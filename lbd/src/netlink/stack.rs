//! The operations that build a node's link stack from `[network]`: renames, bonds and their
//! members, VLANs, MTUs, static routes and policy rules. Like the rest of [`Netlink`], each is
//! idempotent where the kernel allows it (a route is replaced, a rule is looked for first).

use super::conn::err;
use super::types::*;
use super::Netlink;
use crate::config::network::{Bond, BondMode, Route, Rule};
use crate::config::IpPrefix;
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{BondLacpRate, BondXmitHashPolicy, InfoBond};
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol};
use rtnetlink::packet_route::rule::{RuleAttribute, RuleMessage};
use rtnetlink::{IpVersion, LinkBond, LinkUnspec, LinkVlan, RouteMessageBuilder};
use std::net::IpAddr;

impl Netlink {
    /// `ip link set <link> down`.
    pub async fn set_down(&self, index: u32, name: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set down", name))
    }

    /// Renames a link (the kernel wants it down).
    pub async fn rename(&self, index: u32, from: &str, to: &str) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).name(to).build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("rename", format!("{from} to {to}")))
    }

    pub async fn set_mtu(&self, index: u32, name: &str, mtu: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set mtu", format!("{mtu} on {name}")))
    }

    /// Enslaves link `index` to `controller`, or releases it with `None`.
    pub async fn set_controller(
        &self,
        index: u32,
        name: &str,
        controller: Option<u32>,
    ) -> Result<(), NetError> {
        let b = LinkUnspec::new_with_index(index);
        let msg = match controller {
            Some(c) => b.controller(c).build(),
            None => b.nocontroller().build(),
        };
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set controller", name))
    }

    /// Creates bond `name` with `bond`'s mode and options (members are enslaved one by one).
    pub async fn create_bond(&self, name: &str, bond: &Bond) -> Result<(), NetError> {
        let mut b = LinkBond::new(name)
            .mode(bond.mode.kernel().into())
            .miimon(bond.miimon.as_millis() as u32)
            .updelay(bond.updelay.as_millis() as u32)
            .downdelay(bond.downdelay.as_millis() as u32)
            .min_links(bond.min_links);
        if bond.mode == BondMode::Lacp {
            b = b.ad_lacp_rate(BondLacpRate::from(bond.lacp_rate.kernel()));
        }
        if let Some(p) = bond.xmit_hash_policy {
            b = b.xmit_hash_policy(BondXmitHashPolicy::from(p.kernel()));
        }
        self.handle
            .link()
            .add(b.build())
            .execute()
            .await
            .map_err(err("create bond", name))
    }

    /// Makes `primary` the bond's primary member.
    pub async fn set_bond_primary(
        &self,
        bond: u32,
        name: &str,
        primary: u32,
    ) -> Result<(), NetError> {
        let msg = LinkBond::new(name)
            .index(bond)
            .append_info_data(InfoBond::Primary(primary))
            .build();
        self.handle
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(err("set bond primary", name))
    }

    pub async fn create_vlan(&self, name: &str, parent: u32, id: u16) -> Result<(), NetError> {
        let msg = LinkVlan::new(name, parent, id).build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(err("create vlan", format!("{name} (id {id})")))
    }

    fn route_message(index: u32, r: &Route) -> RouteMessage {
        let mut msg = match r.to.addr {
            IpAddr::V4(a) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .destination_prefix(a, r.to.prefix_len)
                    .output_interface(index)
                    .protocol(RouteProtocol::Static);
                if let Some(IpAddr::V4(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some(IpAddr::V4(s)) = r.source {
                    b = b.pref_source(s);
                }
                if let Some(t) = r.table {
                    b = b.table_id(t);
                }
                if let Some(m) = r.metric {
                    b = b.priority(m);
                }
                b.build()
            }
            IpAddr::V6(a) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .destination_prefix(a, r.to.prefix_len)
                    .output_interface(index)
                    .protocol(RouteProtocol::Static);
                if let Some(IpAddr::V6(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some(IpAddr::V6(s)) = r.source {
                    b = b.pref_source(s);
                }
                if let Some(t) = r.table {
                    b = b.table_id(t);
                }
                if let Some(m) = r.metric {
                    b = b.priority(m);
                }
                b.build()
            }
        };
        // A route without a gateway is on the link.
        if r.via.is_none() {
            msg.header.scope = rtnetlink::packet_route::route::RouteScope::Link;
        }
        msg
    }

    /// Adds (or replaces) a static route out of link `index`.
    pub async fn add_route(&self, index: u32, name: &str, r: &Route) -> Result<(), NetError> {
        self.handle
            .route()
            .add(Self::route_message(index, r))
            .replace()
            .execute()
            .await
            .map_err(err("add route", format!("{} on {name}", r.to)))
    }

    /// Removes a static route; fine if it is gone.
    pub async fn del_route(&self, index: u32, name: &str, r: &Route) -> Result<(), NetError> {
        match self
            .handle
            .route()
            .del(Self::route_message(index, r))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => Ok(()),
            Err(e) => Err(err("delete route", format!("{} on {name}", r.to))(e)),
        }
    }

    /// The policy rules of both families, as the config writes them (the kernel's own
    /// local/main/default rules included, with their tables).
    pub async fn rules(&self) -> Result<Vec<Rule>, NetError> {
        let mut out = Vec::new();
        for v in [IpVersion::V4, IpVersion::V6] {
            let msgs: Vec<RuleMessage> = self
                .handle
                .rule()
                .get(v)
                .execute()
                .try_collect()
                .await
                .map_err(err("list", "rules"))?;
            out.extend(msgs.iter().map(rule_of));
        }
        Ok(out)
    }

    /// Adds a rule unless an identical one is there (the kernel would add a second).
    pub async fn add_rule(&self, r: &Rule) -> Result<(), NetError> {
        if self.rules().await?.iter().any(|x| same_rule(x, r)) {
            return Ok(());
        }
        let family_v6 = r.from.or(r.to).is_some_and(|p| p.addr.is_ipv6());
        let what = format!("{r:?}");
        let mut req = self.handle.rule().add().table_id(r.table);
        if let Some(p) = r.priority {
            req = req.priority(p);
        }
        if family_v6 {
            let mut req = req.v6();
            if let Some(IpPrefix {
                addr: IpAddr::V6(a),
                prefix_len,
            }) = r.from
            {
                req = req.source_prefix(a, prefix_len);
            }
            if let Some(IpPrefix {
                addr: IpAddr::V6(a),
                prefix_len,
            }) = r.to
            {
                req = req.destination_prefix(a, prefix_len);
            }
            req.execute().await.map_err(err("add rule", what))
        } else {
            let mut req = req.v4();
            if let Some(IpPrefix {
                addr: IpAddr::V4(a),
                prefix_len,
            }) = r.from
            {
                req = req.source_prefix(a, prefix_len);
            }
            if let Some(IpPrefix {
                addr: IpAddr::V4(a),
                prefix_len,
            }) = r.to
            {
                req = req.destination_prefix(a, prefix_len);
            }
            req.execute().await.map_err(err("add rule", what))
        }
    }

    /// Removes every rule identical to `r`; fine if there is none.
    pub async fn del_rule(&self, r: &Rule) -> Result<(), NetError> {
        for v in [IpVersion::V4, IpVersion::V6] {
            let msgs: Vec<RuleMessage> = self
                .handle
                .rule()
                .get(v)
                .execute()
                .try_collect()
                .await
                .map_err(err("list", "rules"))?;
            for m in msgs.into_iter().filter(|m| same_rule(&rule_of(m), r)) {
                match self.handle.rule().del(m).execute().await {
                    Ok(()) => {}
                    Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => {}
                    Err(e) => return Err(err("delete rule", format!("{r:?}"))(e)),
                }
            }
        }
        Ok(())
    }
}

/// A rule as the config writes it: a prefix of length 0 matches everything, so it is none.
fn rule_of(m: &RuleMessage) -> Rule {
    let mut from = None;
    let mut to = None;
    let mut table = u32::from(m.header.table);
    let mut priority = None;
    for a in &m.attributes {
        match a {
            RuleAttribute::Source(ip) if m.header.src_len > 0 => {
                from = Some(IpPrefix {
                    addr: *ip,
                    prefix_len: m.header.src_len,
                })
            }
            RuleAttribute::Destination(ip) if m.header.dst_len > 0 => {
                to = Some(IpPrefix {
                    addr: *ip,
                    prefix_len: m.header.dst_len,
                })
            }
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => priority = Some(*p),
            _ => {}
        }
    }
    Rule {
        from,
        to,
        table,
        priority,
    }
}

/// The same rule; a rule written without a priority matches any priority the kernel gave it.
fn same_rule(kernel: &Rule, wanted: &Rule) -> bool {
    kernel.from == wanted.from
        && kernel.to == wanted.to
        && kernel.table == wanted.table
        && (wanted.priority.is_none() || kernel.priority == wanted.priority)
}
