//! One link on its own: its kind, the keys that belong to that kind, its NIC match, and a
//! VLAN's parent and id.

use super::{Checked, Validator};
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::validate::valid_ifname;
use std::ops::Range;
use toml::Spanned;

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
    /// One link on its own; `None` if not even its kind could be read (its errors reported).
    pub(super) fn link(&mut self, name: &Spanned<String>, s: LinkSchema) -> Option<Checked> {
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

    pub(super) fn bad_ifname(&mut self, n: &Spanned<String>) {
        self.err(
            "bad-interface",
            n.span(),
            format!("invalid interface name {:?}", n.get_ref()),
        )
        .help = Some("Linux interface names are 1 to 15 characters without '/' or spaces".into());
    }

    pub(super) fn vlan(&mut self, name: &Spanned<String>, s: &LinkSchema) -> Option<LinkKind> {
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
}
