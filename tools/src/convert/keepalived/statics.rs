//! keepalived's `static_ipaddress`, `static_routes` and `static_rules`: the box's own
//! addresses, routes and policy rules, into `[network]`. keepalived adds them at start and
//! leaves the rest of the box's network to the system; in the appliance init configures
//! them, so once there is a `[network]` every interface the config names is declared in it.

use super::{Converted, Converter, Item};
use crate::convert::out::{self, Output, Value};
use lbd::config::IpPrefix;
use std::net::IpAddr;

/// The words of one line of a static block: its keyword and arguments.
fn words(it: &Item) -> Vec<&str> {
    std::iter::once(it.key.as_str())
        .chain(it.args.iter().map(String::as_str))
        .collect()
}

/// Options of a line that lbd has no use for, with the word after each (all take one).
const ADDRESS_SKIPPED: &[&str] = &[
    "brd",
    "scope",
    "label",
    "peer",
    "preferred_lft",
    "valid_lft",
];
const ROUTE_SKIPPED: &[&str] = &[
    "scope", "proto", "protocol", "mtu", "advmss", "realms", "onlink", "nexthop", "or", "pref",
    "type",
];
const RULE_SKIPPED: &[&str] = &[
    "iif",
    "oif",
    "fwmark",
    "tos",
    "dsfield",
    "realms",
    "goto",
    "suppress_prefixlength",
    "uidrange",
    "l3mdev",
    "sport",
    "dport",
    "ipproto",
    "no_track",
];

impl Converter<'_> {
    /// One of the three blocks, into `o`'s network.
    pub(super) fn statics(
        &mut self,
        it: &Item,
        default_interface: &str,
        o: &mut Output,
    ) -> Converted<()> {
        let lines = self.block(it)?;
        for line in lines {
            let done = match it.key.as_str() {
                "static_ipaddress" => self.static_address(line, default_interface, o),
                "static_routes" => self.static_route(line, o),
                _ => self.static_rule(line, o),
            };
            if let Err(why) = done {
                self.warn(
                    line.at,
                    format!("{} `{}` is not carried over: {why}", it.key, line.head()),
                );
            }
        }
        Ok(())
    }

    /// `ADDR[/LEN] [dev IF] [brd ..] [scope ..] [label ..]`: dev defaults as keepalived's does.
    fn static_address(
        &mut self,
        line: &Item,
        default_interface: &str,
        o: &mut Output,
    ) -> Result<(), String> {
        let w = words(line);
        let prefix: IpPrefix = w[0].parse()?;
        let mut dev = default_interface.to_string();
        let mut i = 1;
        while i < w.len() {
            match w[i] {
                "dev" => dev = interface(w.get(i + 1))?,
                skipped if ADDRESS_SKIPPED.contains(&skipped) => {
                    self.skipped_option(line, skipped, w.get(i + 1))
                }
                flag => {
                    self.warn(
                        line.at,
                        format!("`{flag}` on a static address has no equivalent in lbd: ignored"),
                    );
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        o.push_link_list(&dev, "addresses", Value::str(prefix.to_string()));
        Ok(())
    }

    /// `[src ADDR] [to] DEST via|gw GW [dev IF] [metric N] [table N]`; `default` for a
    /// default route.
    fn static_route(&mut self, line: &Item, o: &mut Output) -> Result<(), String> {
        let w = words(line);
        let mut route: Vec<(String, Value)> = Vec::new();
        let (mut to, mut via, mut dev, mut source): (
            Option<String>,
            Option<IpAddr>,
            Option<String>,
            Option<IpAddr>,
        ) = (None, None, None, None);
        let mut i = 0;
        while i < w.len() {
            let next = w.get(i + 1);
            match w[i] {
                "src" => source = Some(address(next)?),
                "to" => to = Some(destination(next)?),
                "via" | "gw" => via = Some(address(next)?),
                "dev" => dev = Some(interface(next)?),
                "metric" | "preference" | "priority" => route.push((
                    "metric".into(),
                    Value::Int(number(next, 0, u32::MAX.into())?),
                )),
                "table" => route.push(("table".into(), Value::Int(table(next)?))),
                "blackhole" | "unreachable" | "prohibit" | "throw" => {
                    return Err(format!("lbd configures no `{}` routes", w[i]));
                }
                skipped if ROUTE_SKIPPED.contains(&skipped) => {
                    self.skipped_option(line, skipped, next)
                }
                dest if to.is_none() => {
                    to = Some(destination(Some(&dest))?);
                    i += 1;
                    continue;
                }
                other => return Err(format!("`{other}` is not a route option lbctl knows")),
            }
            i += 2;
        }
        let to = to.ok_or("it names no destination")?;
        let dev = match dev {
            Some(d) => d,
            None => {
                let gw = via.ok_or("it names neither a gateway nor an interface")?;
                self.link_of(gw, o).ok_or_else(|| {
                    format!("no static address says which interface reaches {gw}: add `dev IF`")
                })?
            }
        };
        let to = if to == "default" && via.is_none() {
            "0.0.0.0/0".to_string()
        } else {
            to
        };
        let mut e = vec![("to".to_string(), Value::str(to))];
        if let Some(v) = via {
            e.push(("via".into(), Value::str(v.to_string())));
        }
        if let Some(s) = source {
            e.push(("source".into(), Value::str(s.to_string())));
        }
        e.extend(route);
        o.push_link_list(&dev, "route", Value::Table(e));
        Ok(())
    }

    /// `[from PREFIX] [to PREFIX] table N [priority N]`.
    fn static_rule(&mut self, line: &Item, o: &mut Output) -> Result<(), String> {
        let w = words(line);
        let mut e: Vec<(String, Value)> = Vec::new();
        let mut i = 0;
        while i < w.len() {
            let next = w.get(i + 1);
            match w[i] {
                "from" | "to" => {
                    let text = next.ok_or(format!("`{}` needs a prefix", w[i]))?;
                    let p: IpPrefix = if *text == "all" {
                        i += 2;
                        continue;
                    } else {
                        text.parse()?
                    };
                    e.push((w[i].to_string(), Value::str(p.to_string())));
                }
                "table" | "lookup" => e.push(("table".into(), Value::Int(table(next)?))),
                "priority" | "preference" | "pref" => {
                    e.push(("priority".into(), Value::Int(number(next, 1, 32765)?)))
                }
                skipped if RULE_SKIPPED.contains(&skipped) => {
                    return Err(format!(
                        "lbd's rules match on from and to only, not `{skipped}`"
                    ));
                }
                other => return Err(format!("`{other}` is not a rule option lbctl knows")),
            }
            i += 2;
        }
        if !e.iter().any(|(k, _)| k == "table") {
            return Err("it names no table".into());
        }
        if !e.iter().any(|(k, _)| k == "from" || k == "to") {
            return Err("it matches every packet (no from or to)".into());
        }
        o.network_rules.push(e);
        Ok(())
    }

    fn skipped_option(&mut self, line: &Item, option: &str, value: Option<&&str>) {
        self.warn(
            line.at,
            format!(
                "`{option} {}` has no equivalent in lbd's [network]: ignored (the kernel's default is used)",
                value.copied().unwrap_or("")
            ),
        );
    }

    /// The link holding a static address whose subnet has `gw`.
    fn link_of(&self, gw: IpAddr, o: &Output) -> Option<String> {
        o.network_links.iter().find_map(|(name, e)| {
            let Value::List(items) = out::get(e, "addresses")? else {
                return None;
            };
            items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => s.parse::<IpPrefix>().ok(),
                    _ => None,
                })
                .any(|p| p.prefix_len < 32 && p.contains(gw))
                .then(|| name.clone())
        })
    }

    /// Once there is a `[network]`, it must hold every interface the config names (lbd
    /// refuses one it lacks), and the addresses VRRP sends from: keepalived left those to the
    /// system, so each is added with a warning to check it.
    pub(super) fn declare_links(&mut self, o: &mut Output, at: crate::convert::Loc) {
        if o.network_links.is_empty() && o.network_rules.is_empty() {
            return;
        }
        let mut named: Vec<String> = Vec::new();
        let mut sources: Vec<(String, String)> = Vec::new();
        for i in &o.instances {
            let mut iface = None;
            for (k, v) in &i.entries {
                match (k.as_str(), v) {
                    ("interface", Value::Str(s)) => {
                        iface = Some(s.clone());
                        named.push(s.clone());
                    }
                    ("track_interfaces", Value::List(l)) => {
                        named.extend(l.iter().filter_map(|v| match v {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        }))
                    }
                    ("unicast_source", Value::Str(s)) => {
                        if let Some(f) = &iface {
                            sources.push((f.clone(), s.clone()));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some((_, e)) = &o.ipvs_sync {
            for (k, v) in e {
                if let ("interface", Value::Str(s)) = (k.as_str(), v) {
                    named.push(s.clone());
                }
            }
        }
        for n in named {
            o.network_links.entry(n).or_default();
        }
        for (iface, addr) in sources {
            let held = o.network_links.values().flatten().any(|(k, v)| {
                k == "addresses"
                    && matches!(v, Value::List(l) if l.iter().any(|a| matches!(a, Value::Str(s) if s.split('/').next() == Some(addr.as_str()))))
            });
            if !held {
                self.warn(
                    at,
                    format!("unicast_src_ip {addr} was an address the system gave {iface}; lbd's [network] now configures {iface}, so it is added there as a host address: give it its real prefix"),
                );
                o.push_link_list(&iface, "addresses", Value::str(addr));
            }
        }
    }
}

fn address(w: Option<&&str>) -> Result<IpAddr, String> {
    let text = w.ok_or("an address is missing")?;
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

fn destination(w: Option<&&str>) -> Result<String, String> {
    let text = *w.ok_or("the destination is missing")?;
    if text == "default" {
        return Ok("default".into());
    }
    let p: IpPrefix = text.parse()?;
    Ok(if p.prefix_len == 0 && p.addr.is_ipv4() {
        "default".into()
    } else {
        p.to_string()
    })
}

fn interface(w: Option<&&str>) -> Result<String, String> {
    let text = *w.ok_or("the interface is missing")?;
    if lbd::config::valid_ifname(text) {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not an interface name"))
    }
}

fn number(w: Option<&&str>, lo: i64, hi: i64) -> Result<i64, String> {
    let text = w.ok_or("a number is missing")?;
    match text.parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number from {lo} to {hi}")),
    }
}

/// A table by number, or by the names iproute2 gives the kernel's own.
fn table(w: Option<&&str>) -> Result<i64, String> {
    match w.copied() {
        Some("main") => Ok(254),
        Some("default") => Ok(253),
        Some("local") => Ok(255),
        other => number(other.as_ref(), 1, u32::MAX.into()),
    }
}
