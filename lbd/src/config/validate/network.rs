//! `[network]`: the node's links, addresses, routes, rules and resolvers, and what the rest of
//! the config says about them (VRRP and sync interfaces, source addresses, VIPs).

use super::{unknown_name_help, valid_hostname, valid_ifname, Validator};
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;
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

/// A bond's keys, a VLAN's keys and `match`, by the kind they belong to.
const BOND_KEYS: &[&str] = &[
    "members",
    "mode",
    "miimon",
    "lacp_rate",
    "xmit_hash_policy",
    "min_links",
    "updelay",
    "downdelay",
    "primary",
];
const VLAN_KEYS: &[&str] = &["parent", "id"];

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

    /// One link on its own; `None` if not even its kind could be read (its errors reported).
    fn link(&mut self, name: &Spanned<String>, s: LinkSchema) -> Option<Checked> {
        let kind_word = s.kind.as_ref().map_or("ethernet", |k| k.get_ref().as_str());
        if !matches!(kind_word, "ethernet" | "bond" | "vlan") {
            let span = s.kind.as_ref().map(|k| k.span()).unwrap_or(name.span());
            let near = crate::config::suggest::nearest(kind_word, ["ethernet", "bond", "vlan"]);
            self.err(
                "bad-link-kind",
                span,
                format!("unknown link kind {kind_word:?}"),
            )
            .help = Some(match near {
                Some(n) => format!("did you mean \"{n}\"? kinds are ethernet, bond and vlan"),
                None => "kinds are ethernet (the default), bond and vlan".into(),
            });
            return None;
        }
        self.keys_of_other_kinds(name.get_ref(), kind_word, &s);
        let mtu = s.mtu.as_ref().map(|m| {
            self.int_in(
                m,
                68,
                65535,
                "mtu",
                "an MTU is 68 to 65535 bytes (1500 on most ethernet, 9000 for jumbo frames)",
            ) as u32
        });
        let routes = s
            .route
            .iter()
            .filter_map(|r| self.route(name.get_ref(), r))
            .collect();
        let kind = match kind_word {
            "bond" => LinkKind::Bond(self.bond(name, &s)?),
            "vlan" => self.vlan(name, &s)?,
            _ => LinkKind::Ethernet {
                matches: s.matches.as_ref().and_then(|m| self.nic_match(m)),
            },
        };
        let link = Link {
            name: name.get_ref().clone(),
            kind,
            mtu,
            addresses: s.addresses.iter().map(|a| *a.get_ref()).collect(),
            dhcp: s.dhcp.as_ref().is_some_and(|d| *d.get_ref()),
            routes,
        };
        Some(Checked {
            link,
            span: name.span(),
            mtu_span: s.mtu.as_ref().map(|m| m.span()),
            member_spans: s
                .members
                .as_ref()
                .map(|m| m.get_ref().iter().map(|x| x.span()).collect())
                .unwrap_or_default(),
            parent_span: s.parent.as_ref().map(|p| p.span()),
        })
    }

    /// A bond's keys on a VLAN, a VLAN's on a bond, `match` on either: refused by name.
    fn keys_of_other_kinds(&mut self, link: &str, kind: &str, s: &LinkSchema) {
        let present: [(&str, Option<Range<usize>>); 12] = [
            ("match", s.matches.as_ref().map(|v| v.span())),
            ("members", s.members.as_ref().map(|v| v.span())),
            ("mode", s.mode.as_ref().map(|v| v.span())),
            ("miimon", s.miimon.as_ref().map(|v| v.span())),
            ("lacp_rate", s.lacp_rate.as_ref().map(|v| v.span())),
            (
                "xmit_hash_policy",
                s.xmit_hash_policy.as_ref().map(|v| v.span()),
            ),
            ("min_links", s.min_links.as_ref().map(|v| v.span())),
            ("updelay", s.updelay.as_ref().map(|v| v.span())),
            ("downdelay", s.downdelay.as_ref().map(|v| v.span())),
            ("primary", s.primary.as_ref().map(|v| v.span())),
            ("parent", s.parent.as_ref().map(|v| v.span())),
            ("id", s.id.as_ref().map(|v| v.span())),
        ];
        for (key, span) in present {
            let Some(span) = span else { continue };
            let owner = if key == "match" {
                "ethernet"
            } else if BOND_KEYS.contains(&key) {
                "bond"
            } else if VLAN_KEYS.contains(&key) {
                "vlan"
            } else {
                continue;
            };
            if owner != kind {
                self.err(
                    "key-not-for-kind",
                    span,
                    format!("`{key}` is a key of {owner} links; link `{link}` is a {kind} link"),
                )
                .help = Some(format!(
                    "set kind = \"{owner}\" if `{link}` is one, or remove `{key}`"
                ));
            }
        }
    }

    fn nic_match(&mut self, m: &Spanned<MatchSchema>) -> Option<NicMatch> {
        let s = m.get_ref();
        if s.mac.is_none() && s.name.is_none() && s.driver.is_none() && s.path.is_none() {
            self.err("empty-match", m.span(), "`match` names no criterion")
                .help = Some(
                "match by mac = \"52:54:00:12:34:56\" (the permanent address), name, driver or path"
                    .into(),
            );
            return None;
        }
        let mut out = NicMatch::default();
        if let Some(mac) = &s.mac {
            match parse_mac(mac.get_ref()) {
                Ok(m) => out.mac = Some(m),
                Err(e) => {
                    self.err("bad-mac", mac.span(), e).help =
                        Some("write six hex pairs: \"52:54:00:12:34:56\"".into());
                }
            }
        }
        if let Some(n) = &s.name {
            if valid_ifname(n.get_ref()) {
                out.name = Some(n.get_ref().clone());
            } else {
                self.bad_ifname(n);
            }
        }
        for (field, value) in [("driver", &s.driver), ("path", &s.path)] {
            let Some(v) = value else { continue };
            let text = v.get_ref();
            if text.is_empty() || text.contains('/') || text.chars().any(char::is_whitespace) {
                self.err(
                    "bad-match",
                    v.span(),
                    format!("invalid {field} {text:?} in `match`"),
                )
                .help = Some(match field {
                    "driver" => "the driver's module name, e.g. \"ixgbe\"".into(),
                    _ => "the device's bus address, e.g. \"0000:03:00.0\"".into(),
                });
                continue;
            }
            match field {
                "driver" => out.driver = Some(text.clone()),
                _ => out.path = Some(text.clone()),
            }
        }
        Some(out)
    }

    fn bad_ifname(&mut self, n: &Spanned<String>) {
        self.err(
            "bad-interface",
            n.span(),
            format!("invalid interface name {:?}", n.get_ref()),
        )
        .help = Some("Linux interface names are 1 to 15 characters without '/' or spaces".into());
    }

    fn bond(&mut self, name: &Spanned<String>, s: &LinkSchema) -> Option<Bond> {
        let Some(members) = &s.members else {
            self.err(
                "missing-key",
                name.span(),
                format!("bond `{}` has no `members`", name.get_ref()),
            )
            .help = Some("list its links: members = [\"eth0\", \"eth1\"]".into());
            return None;
        };
        // A refused mode leaves the mode-dependent keys unjudged: they may fit the mode meant.
        let (mode, mode_known) = match self.word::<BondMode>(s.mode.as_ref(), "mode") {
            Some(m) => (m.unwrap_or(BondMode::ActiveBackup), true),
            None => (BondMode::ActiveBackup, false),
        };
        let lacp_rate = self
            .word::<LacpRate>(s.lacp_rate.as_ref(), "lacp_rate")
            .flatten();
        let xmit_hash_policy = self
            .word::<XmitHashPolicy>(s.xmit_hash_policy.as_ref(), "xmit_hash_policy")
            .flatten();
        if mode_known {
            if let (Some(r), false) = (&s.lacp_rate, mode == BondMode::Lacp) {
                self.not_for_mode(r.span(), "lacp_rate", mode, "802.3ad");
            }
            if let (Some(p), false) = (&s.xmit_hash_policy, mode.takes_hash_policy()) {
                self.not_for_mode(
                    p.span(),
                    "xmit_hash_policy",
                    mode,
                    "balance-xor, 802.3ad and balance-tlb",
                );
            }
            if let (Some(p), false) = (&s.primary, mode.takes_primary()) {
                self.not_for_mode(
                    p.span(),
                    "primary",
                    mode,
                    "active-backup, balance-tlb and balance-alb",
                );
            }
        }
        if let Some(p) = &s.primary {
            if !members.get_ref().iter().any(|m| m.get_ref() == p.get_ref()) {
                self.err(
                    "unknown-member",
                    p.span(),
                    format!(
                        "primary `{}` is not a member of bond `{}`",
                        p.get_ref(),
                        name.get_ref()
                    ),
                )
                .help = Some(unknown_name_help(
                    p.get_ref(),
                    members.get_ref().iter().map(|m| m.get_ref()),
                    "name one of the bond's members",
                ));
            }
        }
        let min_links = s.min_links.as_ref().map_or(0, |m| {
            self.int_in(
                m,
                0,
                255,
                "min_links",
                "the number of members that must be up for the bond to be up",
            ) as u32
        });
        let miimon = self
            .bond_duration(s.miimon.as_ref(), "miimon")
            .unwrap_or(Bond::DEFAULT_MIIMON);
        if miimon.is_zero() {
            let span = s.miimon.as_ref().map(|m| m.span()).unwrap_or(name.span());
            self.err("out-of-range", span, "miimon 0 turns link monitoring off")
                .help = Some(
                "without it the bond never notices a member losing carrier: use \"100ms\"".into(),
            );
        }
        let mut delays = [Duration::ZERO; 2];
        for (slot, (key, value)) in delays
            .iter_mut()
            .zip([("updelay", &s.updelay), ("downdelay", &s.downdelay)])
        {
            let Some(d) = self.bond_duration(value.as_ref(), key) else {
                continue;
            };
            if !miimon.is_zero() && d.as_millis() % miimon.as_millis() != 0 {
                let span = value.as_ref().map(|v| v.span()).unwrap_or(name.span());
                self.warn(
                    "delay-not-multiple",
                    span,
                    format!(
                        "{key} {} is not a multiple of miimon {}",
                        ConfigDuration(d),
                        ConfigDuration(miimon)
                    ),
                )
                .help = Some("the kernel rounds it down to a multiple of miimon".into());
            }
            *slot = d;
        }
        Some(Bond {
            members: members
                .get_ref()
                .iter()
                .map(|m| m.get_ref().clone())
                .collect(),
            mode,
            miimon,
            lacp_rate: lacp_rate.unwrap_or(LacpRate::Slow),
            xmit_hash_policy,
            min_links,
            updelay: delays[0],
            downdelay: delays[1],
            primary: s.primary.as_ref().map(|p| p.get_ref().clone()),
        })
    }

    /// A word from a fixed set; `Some(None)` when absent, `None` when refused.
    fn word<T: std::str::FromStr<Err = String>>(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> Option<Option<T>> {
        let Some(v) = value else { return Some(None) };
        match v.get_ref().parse::<T>() {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                self.err("bad-bond-option", v.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    fn not_for_mode(&mut self, span: Range<usize>, key: &str, mode: BondMode, modes: &str) {
        self.err(
            "key-not-for-mode",
            span,
            format!("`{key}` does nothing in bond mode {mode}"),
        )
        .help = Some(format!(
            "it applies to {modes}; remove it or change the mode"
        ));
    }

    /// A bond timer: whole milliseconds, as the kernel takes them.
    fn bond_duration(
        &mut self,
        value: Option<&Spanned<ConfigDuration>>,
        key: &str,
    ) -> Option<Duration> {
        let v = value?;
        let d = v.get_ref().0;
        if d.subsec_nanos() % 1_000_000 != 0 || d > Duration::from_secs(60) {
            self.err(
                "out-of-range",
                v.span(),
                format!(
                    "{key} {} is not whole milliseconds up to a minute",
                    v.get_ref()
                ),
            )
            .help = Some("bonding counts these timers in milliseconds, e.g. \"100ms\"".into());
            return None;
        }
        Some(d)
    }

    fn vlan(&mut self, name: &Spanned<String>, s: &LinkSchema) -> Option<LinkKind> {
        let (Some(parent), Some(id)) = (&s.parent, &s.id) else {
            let missing = if s.parent.is_none() { "parent" } else { "id" };
            self.err(
                "missing-key",
                name.span(),
                format!("VLAN `{}` has no `{missing}`", name.get_ref()),
            )
            .help = Some(
                "a VLAN needs the link it is tagged on and its id: parent = \"bond0\", id = 100"
                    .into(),
            );
            return None;
        };
        // A refused id is kept as 0, which no other VLAN can share.
        let id = match *id.get_ref() {
            1..=4094 => *id.get_ref() as u16,
            _ => {
                self.int_in(id, 1, 4094, "VLAN id", "802.1Q ids are 1 to 4094");
                0
            }
        };
        Some(LinkKind::Vlan {
            parent: parent.get_ref().clone(),
            id,
        })
    }

    fn route(&mut self, link: &str, r: &Spanned<RouteSchema>) -> Option<Route> {
        let s = r.get_ref();
        let errors_before = self.error_count();
        let via = s.via.as_ref().map(|v| *v.get_ref());
        let to = if s.to.get_ref() == "default" {
            match via {
                Some(IpAddr::V4(_)) => Some("0.0.0.0/0".parse::<IpPrefix>().expect("a prefix")),
                Some(IpAddr::V6(_)) => Some("::/0".parse::<IpPrefix>().expect("a prefix")),
                None => {
                    self.err(
                        "bad-route",
                        s.to.span(),
                        format!("the default route on `{link}` has no `via`"),
                    )
                    .help = Some("say which gateway: via = \"192.0.2.1\"".into());
                    None
                }
            }
        } else {
            match s.to.get_ref().parse::<IpPrefix>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err("bad-route", s.to.span(), e).help =
                        Some("to is \"default\" or a prefix such as \"10.8.0.0/16\"".into());
                    None
                }
            }
        };
        for (key, addr) in [("via", &s.via), ("source", &s.source)] {
            if let (Some(to), Some(a)) = (&to, addr) {
                if Family::of(a.get_ref()) != Family::of(&to.addr) {
                    self.err(
                        "route-mixed-family",
                        a.span(),
                        format!("{key} {} is not of the family of {}", a.get_ref(), to),
                    );
                }
            }
        }
        let metric = s.metric.as_ref().map(|m| {
            self.int_in(
                m,
                0,
                u32::MAX.into(),
                "metric",
                "a route metric is 0 to 4294967295",
            ) as u32
        });
        let table = s.table.as_ref().map(|t| {
            self.int_in(
                t,
                1,
                u32::MAX.into(),
                "table",
                "tables are 1 to 4294967295 (254 is main)",
            ) as u32
        });
        let to = to?;
        (self.error_count() == errors_before).then(|| Route {
            to,
            via,
            metric,
            table,
            source: s.source.as_ref().map(|a| *a.get_ref()),
        })
    }

    fn rule(&mut self, r: Spanned<RuleSchema>) -> Option<Rule> {
        let s = r.get_ref();
        let errors_before = self.error_count();
        if let (Some(f), Some(t)) = (&s.from, &s.to) {
            if Family::of(&f.get_ref().addr) != Family::of(&t.get_ref().addr) {
                self.err(
                    "rule-mixed-family",
                    t.span(),
                    format!("a rule from {} cannot go to {}", f.get_ref(), t.get_ref()),
                );
            }
        }
        if s.from.is_none() && s.to.is_none() {
            self.err("bad-rule", r.span(), "a rule needs `from` or `to`")
                .help = Some("e.g. from = \"10.1.0.0/24\", table = 100: replies from the inside network use table 100".into());
        }
        let table = self.int_in(
            &s.table,
            1,
            u32::MAX.into(),
            "table",
            "tables are 1 to 4294967295 (254 is main)",
        ) as u32;
        let priority = s.priority.as_ref().map(|p| {
            self.int_in(
                p,
                1,
                32765,
                "priority",
                "0, 32766 and 32767 are the kernel's own rules (local, main, default)",
            ) as u32
        });
        (self.error_count() == errors_before).then(|| Rule {
            from: s.from.as_ref().map(|f| *f.get_ref()),
            to: s.to.as_ref().map(|t| *t.get_ref()),
            table,
            priority,
        })
    }

    fn resolvers(&mut self, s: &NetworkSchema) -> Vec<IpAddr> {
        if let Some(fourth) = s.resolvers.get(3) {
            self.warn(
                "too-many-resolvers",
                fourth.span(),
                "resolvers after the third are never asked",
            )
            .help = Some("glibc and musl read at most three nameservers".into());
        }
        s.resolvers.iter().map(|r| *r.get_ref()).collect()
    }

    fn search(&mut self, s: &NetworkSchema) -> Vec<String> {
        let mut out = Vec::new();
        for d in &s.search {
            if valid_hostname(d.get_ref()) {
                out.push(d.get_ref().clone());
            } else {
                self.err(
                    "bad-hostname",
                    d.span(),
                    format!("invalid search domain {:?}", d.get_ref()),
                );
            }
        }
        out
    }

    fn confirm_timeout(&mut self, s: &NetworkSchema) -> Duration {
        let Some(t) = &s.confirm_timeout else {
            return Network::DEFAULT_CONFIRM_TIMEOUT;
        };
        let d = t.get_ref().0;
        if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
            self.err(
                "out-of-range",
                t.span(),
                format!("confirm_timeout {} is outside 1s to 10m", t.get_ref()),
            )
            .help = Some(
                "long enough for links to come up (LACP can take 30 s), short enough to wait for"
                    .into(),
            );
            return Network::DEFAULT_CONFIRM_TIMEOUT;
        }
        d
    }

    /// Members and parents that exist, a link in one bond at most, VLANs no larger than their
    /// parent, one VLAN per (parent, id).
    fn bonds_and_vlans(&mut self, checked: &[Checked], declared: &BTreeMap<String, Range<usize>>) {
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
    fn addresses_once(&mut self, checked: &[Checked]) {
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

    /// What VRRP, connection sync, checks and the API name must exist on this node.
    fn references(
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

/// What the raw tables name that the node's network must have.
pub(super) fn references(raw: &super::Raw) -> NetworkRefs {
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
