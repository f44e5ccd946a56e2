//! VRRP: `vrrp_instance`, `vrrp_sync_group`, and global_defs' `lvs_sync_daemon` (the IPVS
//! connection sync daemon, which follows an instance's state).

use super::global::Globals;
use super::settings;
use super::{Converted, Converter, Item};
use crate::convert::out::{self, Entries, Origin, Output, Value};
use crate::convert::Loc;
use lbd::config::{Family, IpPrefix};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// A VRRP instance as read, before output.
pub(super) struct InstanceInfo {
    pub(super) name: String,
    pub(super) interface: String,
    pub(super) vrid: u8,
    pub(super) vips: Vec<IpAddr>,
}

/// A vrrp_instance's settings as written (global_defs' where it inherits them), before they
/// are checked against each other.
struct InstanceSettings {
    interface: Option<String>,
    vrid: Option<u8>,
    priority: u8,
    version: Option<(u8, Loc)>,
    advert: Option<(Duration, Loc)>,
    vips: Vec<(IpPrefix, Loc)>,
    preempt: bool,
    preempt_delay: Option<Duration>,
    unicast_source: Option<IpAddr>,
    peers: Vec<IpAddr>,
    auth: Option<(String, Loc)>,
    track: Vec<String>,
    vmac: bool,
    vmac_name: Option<String>,
    vmac_at: Option<Loc>,
    accept: Option<bool>,
    /// Where accept mode was turned off (no_accept / strict_mode), for the warning.
    accept_at: Loc,
    strict: bool,
    garp_repeat: Option<i64>,
    garp_delay: Option<Duration>,
    state_master: Option<Loc>,
    promote_secondaries: Option<Loc>,
}

impl Converter<'_> {
    /// One vrrp_instance into `o`; None when it is left out (a second of its name, or no VIP
    /// of its own).
    pub(super) fn vrrp_instance(
        &mut self,
        it: &Item,
        g: &Globals,
        o: &mut Output,
    ) -> Converted<Option<InstanceInfo>> {
        let name = out::name_from(self.arg(it, 0, "a name")?);
        if o.instances.iter().any(|i| i.name == name) {
            self.warn(
                it.at,
                format!("a second vrrp_instance named {name}: keepalived keeps the first; this one is left out"),
            );
            return Ok(None);
        }
        let mut s = self.instance_settings(it, g)?;
        let Some(vrid) = s.vrid else {
            return Err(self.err(
                it.at,
                format!("vrrp_instance {name} has no virtual_router_id"),
            ));
        };
        let vips = self.own_vips(&name, std::mem::take(&mut s.vips), o);
        let vips = self.one_family(it, &name, vips, &mut s);
        if vips.is_empty() {
            self.warn(
                it.at,
                format!("vrrp_instance {name} has no virtual_ipaddress (of its own): keepalived runs it for its state (and scripts) alone; lbd's instances move addresses, and this one has none: left out"),
            );
            return Ok(None);
        }
        let interface = match s.interface.take() {
            Some(i) => i,
            None => {
                let i = g
                    .default_interface
                    .clone()
                    .unwrap_or_else(|| self.opts.interface.clone());
                self.warn(
                    it.at,
                    format!("vrrp_instance {name} has no interface; lbd needs one: {i} used"),
                );
                i
            }
        };
        // One virtual router per (interface, vrid, family): keepalived reports the clash, lbd
        // refuses it.
        let v6 = vips.first().is_some_and(|(p, _)| p.addr.is_ipv6());
        if let Some(other) = o
            .instances
            .iter()
            .find(|i| same_router(i, &interface, vrid, v6))
        {
            self.warn(
                it.at,
                format!(
                    "vrrp_instance {name} is the same virtual router as {} (interface {interface}, virtual_router_id {vrid}): keepalived refuses the clash; this one is left out",
                    other.name
                ),
            );
            return Ok(None);
        }
        let ver = self.instance_version(&s, g, &vips);
        let mut e: Entries = vec![
            ("interface".into(), Value::str(&interface)),
            ("vrid".into(), Value::Int(vrid.into())),
            ("priority".into(), Value::Int(s.priority.into())),
            ("version".into(), Value::Int(ver.into())),
        ];
        if let Some((d, at)) = s.advert {
            e.push(("advert_interval".into(), self.advert_interval(d, at, ver)));
        }
        e.push((
            "vips".into(),
            Value::List(
                vips.iter()
                    .map(|(p, _)| Value::str(p.to_string()))
                    .collect(),
            ),
        ));
        if let Some(at) = s.promote_secondaries {
            self.promote_secondaries(at, &interface, s.vmac, o);
        }
        self.instance_options(it, &name, s, ver, &mut e);
        o.instances.push(out::Instance {
            name: name.clone(),
            origin: self.origin(it),
            entries: e,
        });
        Ok(Some(InstanceInfo {
            name,
            interface,
            vrid,
            vips: vips.iter().map(|(p, _)| p.addr).collect(),
        }))
    }

    /// The settings in a vrrp_instance block.
    fn instance_settings(&mut self, it: &Item, g: &Globals) -> Converted<InstanceSettings> {
        let mut s = InstanceSettings {
            interface: None,
            vrid: None,
            priority: 100,
            version: None,
            advert: None,
            vips: Vec::new(),
            preempt: true,
            preempt_delay: None,
            unicast_source: None,
            peers: Vec::new(),
            auth: None,
            track: Vec::new(),
            vmac: false,
            vmac_name: None,
            vmac_at: None,
            accept: None,
            accept_at: it.at,
            strict: g.strict,
            garp_repeat: g.garp_repeat,
            garp_delay: g.garp_delay,
            state_master: None,
            promote_secondaries: None,
        };
        for c in self.block(it)? {
            match c.key.as_str() {
                "state" => {
                    let state = self.arg(c, 0, "MASTER or BACKUP")?.to_ascii_uppercase();
                    match state.as_str() {
                        "MASTER" => s.state_master = Some(c.at),
                        "BACKUP" => {}
                        other => {
                            return Err(
                                self.err(c.at, format!("state {other:?}: use MASTER or BACKUP"))
                            )
                        }
                    }
                }
                "interface" => s.interface = Some(self.ifname(c, 0)?),
                "virtual_router_id" => {
                    s.vrid = Some(self.int(c, 0, 1, 255, "a virtual router id (1 to 255)")? as u8)
                }
                "priority" => s.priority = self.int(c, 0, 1, 255, "a priority (1 to 255)")? as u8,
                "advert_int" => s.advert = Some((self.timer(c, 0)?, c.at)),
                "version" => {
                    s.version = Some((self.int(c, 0, 2, 3, "a VRRP version (2 or 3)")? as u8, c.at))
                }
                "nopreempt" => s.preempt = false,
                "preempt" => s.preempt = true,
                "preempt_delay" => {
                    let d = self.timer(c, 0)?;
                    if d > Duration::from_secs(1000) {
                        return Err(self.err(c.at, "`preempt_delay` is 0 to 1000 seconds"));
                    }
                    s.preempt_delay = Some(d);
                }
                "authentication" => {
                    if let Some(pass) = self.authentication(c)? {
                        s.auth = Some(pass);
                    }
                }
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    self.virtual_ipaddresses(c, s.interface.as_deref(), &mut s.vips)?
                }
                "unicast_src_ip" => s.unicast_source = Some(self.ip(c, 0)?),
                "unicast_peer" => {
                    for a in self.block(c)? {
                        let ip: IpAddr = a.key.parse().map_err(|_| {
                            self.err(
                                a.at,
                                format!("unicast_peer: {:?} is not an IP address", a.key),
                            )
                        })?;
                        if !a.args.is_empty() {
                            self.warn(a.at, "unicast peer TTL limits (min_ttl/max_ttl) have no equivalent in lbd: ignored (lbd checks TTL 255 as the RFC says)");
                        }
                        if s.peers.contains(&ip) {
                            self.warn(
                                a.at,
                                format!("unicast peer {ip} is listed twice: listed once"),
                            );
                        } else {
                            s.peers.push(ip);
                        }
                    }
                }
                "track_interface" => {
                    for a in self.block(c)? {
                        if !a.args.is_empty() {
                            self.warn(a.at, "a weighted tracked interface lowers the priority in keepalived; in lbd a down tracked interface faults the instance");
                        }
                        if lbd::config::valid_ifname(&a.key) {
                            s.track.push(a.key.clone());
                        } else {
                            self.warn(a.at, format!("track_interface {:?} is not an interface name Linux takes: left out", a.key));
                        }
                    }
                }
                "use_vmac" => {
                    s.vmac = true;
                    s.vmac_at = Some(c.at);
                    for a in &c.args {
                        if a.split(':').count() == 6 {
                            self.warn(c.at, format!("use_vmac with a MAC address ({a}): lbd always uses the RFC's 00:00:5e:00:01:VRID"));
                        } else if lbd::config::valid_ifname(a) {
                            s.vmac_name = Some(a.clone());
                        } else {
                            self.warn(c.at, format!("use_vmac {a:?} is not an interface name Linux takes: lbd names the macvlan itself (vrrp.VRID)"));
                        }
                    }
                }
                "accept" => s.accept = Some(true),
                "no_accept" => {
                    s.accept = Some(false);
                    s.accept_at = c.at;
                }
                "strict_mode" => {
                    s.strict = self.boolean(c, 0)?;
                    s.accept_at = c.at;
                }
                "garp_master_repeat" => s.garp_repeat = Some(self.int(c, 0, 0, 100, "a count")?),
                "garp_master_delay" => s.garp_delay = Some(self.timer(c, 0)?),
                "promote_secondaries" => s.promote_secondaries = Some(c.at),
                _ => self.unconverted(c, "vrrp_instance"),
            }
        }
        Ok(s)
    }

    /// `promote_secondaries`: keepalived sets the interface's sysctl, so removing a VIP keeps
    /// the other addresses of its subnet; so does `[node.sysctl]`.
    fn promote_secondaries(&mut self, at: Loc, interface: &str, vmac: bool, o: &mut Output) {
        if vmac {
            self.warn(at, "promote_secondaries with use_vmac: keepalived sets it on its macvlan by itself, and ignores this; left out");
        } else if interface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            o.set_sysctl(
                &format!("net.ipv4.conf.{interface}.promote_secondaries"),
                Value::Int(1),
            );
        } else {
            self.warn(at, format!("promote_secondaries: [node.sysctl] cannot name interface {interface:?} (sysctl names separate their parts with '.' and '/'): left out; keepalived sets net.ipv4.conf.{interface}.promote_secondaries"));
        }
    }

    /// An `authentication` block: the password it sets, if any (AH has no equivalent).
    fn authentication(&mut self, c: &Item) -> Converted<Option<(String, Loc)>> {
        let mut kind = "PASS".to_string();
        let mut pass = None;
        for a in self.block(c)? {
            match a.key.as_str() {
                "auth_type" => kind = self.arg(a, 0, "PASS or AH")?.to_ascii_uppercase(),
                "auth_pass" => pass = Some((self.arg(a, 0, "a password")?.to_string(), a.at)),
                _ => self.unconverted(a, "authentication"),
            }
        }
        if kind == "AH" {
            self.warn(c.at, "IPsec AH authentication has no equivalent in lbd: left out (peers using it will not talk to lbd)");
            return Ok(None);
        }
        Ok(pass)
    }

    /// A `virtual_ipaddress` block's addresses into `vips`; `interface` is the instance's as
    /// far as read.
    fn virtual_ipaddresses(
        &mut self,
        c: &Item,
        interface: Option<&str>,
        vips: &mut Vec<(IpPrefix, Loc)>,
    ) -> Converted<()> {
        if c.key == "virtual_ipaddress_excluded" {
            self.warn(c.at, "virtual_ipaddress_excluded: lbd lists every VIP in its adverts; these addresses are added to vips");
        }
        for a in self.block(c)? {
            let p: IpPrefix = a.key.parse().map_err(|e: String| self.err(a.at, e))?;
            let mut i = 0;
            while i < a.args.len() {
                let opt = a.args[i].as_str();
                let value = a.args.get(i + 1).map(String::as_str);
                match opt {
                    "dev" => {
                        if value != interface {
                            self.warn(a.at, format!("VIP on another interface (dev {}): lbd puts an instance's VIPs on its own interface", value.unwrap_or("?")));
                        }
                        i += 2;
                    }
                    _ => {
                        let (takes_value, why) = settings::vip_option(opt)
                            .unwrap_or((false, "not an option of an address keepalived knows"));
                        self.warn(
                            a.at,
                            format!("VIP option `{opt}` has no equivalent in lbd: ignored ({why})"),
                        );
                        i += if takes_value { 2 } else { 1 };
                    }
                }
            }
            vips.push((p, a.at));
        }
        Ok(())
    }

    /// The instance's VIPs, each once. An address is moved by one instance: listed twice, or
    /// already an earlier instance's, it is left out here.
    fn own_vips(
        &mut self,
        name: &str,
        vips: Vec<(IpPrefix, Loc)>,
        o: &Output,
    ) -> Vec<(IpPrefix, Loc)> {
        let held_before: BTreeSet<IpAddr> = o
            .instances
            .iter()
            .flat_map(|i| &i.entries)
            .filter(|(k, _)| k == "vips")
            .flat_map(|(_, v)| match v {
                Value::List(items) => items.clone(),
                _ => Vec::new(),
            })
            .filter_map(|v| match v {
                Value::Str(s) => s.parse::<IpPrefix>().ok().map(|p| p.addr),
                _ => None,
            })
            .collect();
        let mut kept: BTreeSet<IpAddr> = BTreeSet::new();
        let mut unique = Vec::new();
        for (p, at) in vips {
            if held_before.contains(&p.addr) {
                self.warn(at, format!("{} is already a VIP of an earlier vrrp_instance: one instance moves an address; left out of {name}", p.addr));
            } else if !kept.insert(p.addr) {
                self.warn(
                    at,
                    format!(
                        "{} is listed twice in vrrp_instance {name}: listed once",
                        p.addr
                    ),
                );
            } else {
                unique.push((p, at));
            }
        }
        unique
    }

    /// The VIPs, unicast peers and source of the family of the instance's first VIP: lbd's
    /// instances carry one (keepalived takes the other family as excluded addresses only).
    fn one_family(
        &mut self,
        it: &Item,
        name: &str,
        vips: Vec<(IpPrefix, Loc)>,
        s: &mut InstanceSettings,
    ) -> Vec<(IpPrefix, Loc)> {
        let Some(v6) = vips.first().map(|(p, _)| p.addr.is_ipv6()) else {
            return vips;
        };
        let family = if v6 { "IPv6" } else { "IPv4" };
        let mut kept = Vec::new();
        for (p, at) in vips {
            if p.addr.is_ipv6() == v6 {
                kept.push((p, at));
            } else {
                self.warn(at, format!("{} is not {family} like the first VIP of vrrp_instance {name}: lbd's instances carry one address family; left out (put it in an instance of its own)", p.addr));
            }
        }
        let other: Vec<IpAddr> = s
            .peers
            .iter()
            .chain(&s.unicast_source)
            .filter(|a| a.is_ipv6() != v6)
            .copied()
            .collect();
        if !other.is_empty() {
            let list: Vec<String> = other.iter().map(|a| a.to_string()).collect();
            self.warn(it.at, format!("unicast peers or source {} are not {family} like the VIPs of vrrp_instance {name}: left out", list.join(", ")));
            s.peers.retain(|a| a.is_ipv6() == v6);
            s.unicast_source = s.unicast_source.filter(|a| a.is_ipv6() == v6);
        }
        kept
    }

    /// The VRRP version: the instance's, else global_defs', else 2; 3 for IPv6.
    fn instance_version(
        &mut self,
        s: &InstanceSettings,
        g: &Globals,
        vips: &[(IpPrefix, Loc)],
    ) -> u8 {
        let family = vips
            .first()
            .map_or(Family::Ipv4, |(p, _)| Family::of(&p.addr));
        let mut ver = s.version.map(|v| v.0).or(g.vrrp_version).unwrap_or(2);
        if family == Family::Ipv6 && ver == 2 {
            if let Some((_, at)) = s.version {
                self.warn(
                    at,
                    "VRRP version 2 carries no IPv6: version 3 used, as keepalived does",
                );
            }
            ver = 3;
        }
        ver
    }

    /// `advert_int` in the unit the version counts in.
    fn advert_interval(&mut self, d: Duration, at: Loc, ver: u8) -> Value {
        let adjusted = if ver == 2 {
            let secs = d.as_millis().div_ceil(1000).clamp(1, 255) as u64;
            Duration::from_secs(secs)
        } else {
            let cs = d.as_millis().div_ceil(10).clamp(1, 4095) as u64;
            Duration::from_millis(cs * 10)
        };
        if adjusted != d {
            self.warn(
                at,
                format!(
                    "advert_int {}: VRRPv{ver} counts in {}, so {} is used",
                    out::duration_text(d),
                    if ver == 2 {
                        "whole seconds"
                    } else {
                        "centiseconds"
                    },
                    out::duration_text(adjusted)
                ),
            );
        }
        Value::duration(adjusted)
    }

    /// The entries after the VIPs: preemption, unicast, authentication, tracking, virtual
    /// MAC and gratuitous ARP.
    fn instance_options(
        &mut self,
        it: &Item,
        name: &str,
        s: InstanceSettings,
        ver: u8,
        e: &mut Entries,
    ) {
        if let Some(at) = s.state_master {
            if s.preempt {
                // Nothing to say: MASTER with preemption is what the priorities decide anyway.
            } else {
                self.warn(at, "state MASTER with nopreempt: keepalived ignores nopreempt then; lbd starts as backup and does not preempt");
            }
        }
        e.push(("preempt".into(), Value::Bool(s.preempt)));
        if let Some(d) = s.preempt_delay {
            if !d.is_zero() {
                e.push(("preempt_delay".into(), Value::duration(d)));
            }
        }
        if let Some(src) = s.unicast_source {
            if s.peers.is_empty() {
                self.warn(it.at, "unicast_src_ip without unicast_peer: multicast is used, the source is left out");
            } else {
                e.push(("unicast_source".into(), Value::str(src.to_string())));
            }
        }
        if !s.peers.is_empty() {
            e.push((
                "unicast_peers".into(),
                Value::List(s.peers.iter().map(|p| Value::str(p.to_string())).collect()),
            ));
        }
        if let Some((mut pass, at)) = s.auth {
            if ver == 3 {
                self.warn(at, "authentication with VRRP version 3: RFC 5798 has none and keepalived ignores it; left out");
            } else {
                // keepalived keeps the first 8 bytes (the advert's field); a cut inside a
                // character leaves bytes a config cannot hold.
                if pass.len() > 8 {
                    let mut end = 8;
                    while !pass.is_char_boundary(end) {
                        end -= 1;
                    }
                    if end < 8 {
                        self.warn(at, "auth_pass: keepalived keeps its first 8 bytes, which cut a character in two; left out (set a new password on both nodes)");
                        pass.clear();
                    } else {
                        pass.truncate(8);
                        self.warn(at, "auth_pass longer than 8 bytes: only the first 8 count (as in keepalived)");
                    }
                }
                if !pass.is_empty() {
                    e.push(("auth_pass".into(), Value::str(pass)));
                }
            }
        }
        if !s.track.is_empty() {
            e.push((
                "track_interfaces".into(),
                Value::List(s.track.iter().map(Value::str).collect()),
            ));
        }
        if s.vmac {
            self.vmac_at
                .insert(name.to_string(), s.vmac_at.unwrap_or(it.at));
            e.push(("virtual_mac".into(), Value::Bool(true)));
            if let Some(n) = s.vmac_name {
                e.push(("virtual_mac_interface".into(), Value::str(n)));
            }
        }
        // keepalived accepts packets to the VIPs unless strict mode or no_accept; lbd always
        // does (IPVS needs the VIPs local), so only the refusal is worth a warning.
        if !s.accept.unwrap_or(!s.strict) {
            self.warn(
                s.accept_at,
                format!("vrrp_instance {name}: no_accept / strict mode has no equivalent: lbd always accepts packets to the VIPs (IPVS needs them local); filter other traffic to them with a firewall"),
            );
        }
        if let Some(n) = s.garp_repeat {
            e.push(("garp_count".into(), Value::Int(n)));
        }
        if let Some(d) = s.garp_delay {
            e.push(("garp_repeat_after".into(), Value::duration(d)));
        }
    }

    /// Gives every virtual MAC's macvlan a name of its own. keepalived's default name is
    /// `vrrp.VRID`, as lbd's, so one VRID on two interfaces clashes, and `use_vmac NAME` may
    /// repeat another instance's name or name a VRRP interface: lbd refuses such a config, so
    /// the later instance's macvlan is renamed, with a warning.
    pub(super) fn distinct_vmac_names(&mut self, o: &mut Output) {
        let interfaces: BTreeSet<String> = o
            .instances
            .iter()
            .filter_map(|i| out::get_str(&i.entries, "interface"))
            .collect();
        let mut taken: BTreeMap<String, String> = BTreeMap::new();
        for inst in &mut o.instances {
            if !matches!(
                out::get(&inst.entries, "virtual_mac"),
                Some(Value::Bool(true))
            ) {
                continue;
            }
            let vrid = match out::get(&inst.entries, "vrid") {
                Some(Value::Int(v)) => *v,
                _ => continue,
            };
            let prefix = if vips_are_v6(&inst.entries) {
                "vrrp6"
            } else {
                "vrrp"
            };
            let default = format!("{prefix}.{vrid}");
            let wanted = out::get_str(&inst.entries, "virtual_mac_interface")
                .unwrap_or_else(|| default.clone());
            let clash = if interfaces.contains(&wanted) {
                format!("{wanted} is the interface of a vrrp_instance")
            } else if let Some(other) = taken.get(&wanted) {
                format!("vrrp_instance {other} already has a macvlan named {wanted}")
            } else {
                taken.insert(wanted, inst.name.clone());
                continue;
            };
            let free = std::iter::once(default.clone())
                .chain((2..).map(|n| format!("{default}-{n}")))
                .find(|n| !interfaces.contains(n) && !taken.contains_key(n))
                .expect("an endless list has a free name");
            let at = self.vmac_at.get(&inst.name).copied();
            if let Some(at) = at {
                self.warn(
                    at,
                    format!("vrrp_instance {}: the virtual MAC's macvlan cannot be named {wanted}: {clash} (keepalived would fight over it); named {free} instead", inst.name),
                );
            }
            inst.entries.retain(|(k, _)| k != "virtual_mac_interface");
            inst.entries
                .push(("virtual_mac_interface".into(), Value::str(&free)));
            taken.insert(free, inst.name.clone());
        }
    }

    /// One vrrp_sync_group into `o`: its members are defined instances, each in one group.
    pub(super) fn sync_group(
        &mut self,
        it: &Item,
        known: &BTreeSet<String>,
        member_of: &mut BTreeMap<String, String>,
        o: &mut Output,
    ) -> Converted<()> {
        let name = out::name_from(self.arg(it, 0, "a name")?);
        if o.sync_groups.iter().any(|g| g.name == name) {
            self.warn(
                it.at,
                format!("a second vrrp_sync_group named {name}: keepalived keeps the first; this one is left out"),
            );
            return Ok(());
        }
        let mut members = Vec::new();
        for c in self.block(it)? {
            match c.key.as_str() {
                "group" => {
                    for m in self.block(c)? {
                        let n = out::name_from(&m.key);
                        if let Some(group) = member_of.get(&n) {
                            let why = if *group == name {
                                format!(
                                    "sync group {name} lists vrrp_instance {} twice: listed once",
                                    m.key
                                )
                            } else {
                                format!("vrrp_instance {} is already in sync group {group}: an instance is in one sync group (keepalived refuses the second); left out of {name}", m.key)
                            };
                            self.warn(m.at, why);
                        } else if known.contains(&n) {
                            member_of.insert(n.clone(), name.clone());
                            members.push(n);
                        } else {
                            self.warn(m.at, format!("sync group {name} names vrrp_instance {} which is not defined: left out", m.key));
                        }
                    }
                }
                _ => self.unconverted(c, "vrrp_sync_group"),
            }
        }
        o.sync_groups.push(out::SyncGroup {
            name,
            origin: self.origin(it),
            instances: members,
        });
        Ok(())
    }

    /// `lvs_sync_daemon IFACE [[inst] VI] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
    pub(super) fn sync_daemon(
        &mut self,
        it: &Item,
        instances: &[InstanceInfo],
    ) -> Converted<(Origin, Entries)> {
        let iface = self.ifname(it, 0)?;
        let mut e = Entries::new();
        e.push(("interface".into(), Value::str(&iface)));
        let mut follow: Option<String> = None;
        let mut sync_id: Option<i64> = None;
        let mut i = 1;
        while i < it.args.len() {
            match it.args[i].as_str() {
                "inst" => {
                    follow = Some(self.arg(it, i + 1, "a vrrp_instance name")?.to_string());
                    i += 2;
                }
                "id" => {
                    sync_id = Some(self.int(it, i + 1, 0, 255, "a sync id (0 to 255)")?);
                    i += 2;
                }
                "maxlen" => {
                    let n = self.int(it, i + 1, 1, 65507, "a length")?;
                    let clamped = n.max(256);
                    if clamped != n {
                        self.warn(
                            it.at,
                            format!("maxlen {n}: lbd's minimum is 256, used instead"),
                        );
                    }
                    e.push(("max_len".into(), Value::Int(clamped)));
                    i += 2;
                }
                "port" => {
                    e.push((
                        "port".into(),
                        Value::Int(self.int(it, i + 1, 1, 65535, "a port")?),
                    ));
                    i += 2;
                }
                "ttl" => {
                    e.push((
                        "ttl".into(),
                        Value::Int(self.int(it, i + 1, 1, 255, "a TTL")?),
                    ));
                    i += 2;
                }
                "group" => {
                    e.push(("group".into(), Value::str(self.ip(it, i + 1)?.to_string())));
                    i += 2;
                }
                word if follow.is_none() && i == 1 => {
                    follow = Some(word.to_string());
                    i += 1;
                }
                other => {
                    return Err(self.err(it.at, format!("lvs_sync_daemon: unexpected {other:?}")))
                }
            }
        }
        let follow_inst = follow.as_ref().map(|f| out::name_from(f));
        let inst = follow_inst
            .as_ref()
            .and_then(|f| instances.iter().find(|i| &i.name == f));
        match (&follow_inst, inst) {
            (Some(f), None) => {
                return Err(self.err(
                    it.at,
                    format!("lvs_sync_daemon follows vrrp_instance {f}, which is not defined"),
                ))
            }
            (Some(f), Some(_)) => e.push(("follow".into(), Value::str(f))),
            // Without an instance, see Converter::sync_follows_one once every instance is known.
            (None, _) => {
                if instances.len() == 1 {
                    e.push(("follow".into(), Value::str(&instances[0].name)));
                }
            }
        }
        let id = sync_id.or_else(|| inst.map(|i| i.vrid.into())).unwrap_or(0);
        e.insert(1, ("sync_id".into(), Value::Int(id)));
        Ok((self.origin(it), e))
    }
}

/// Whether converted instance `i` is the virtual router (interface, vrid, family).
fn same_router(i: &out::Instance, interface: &str, vrid: u8, v6: bool) -> bool {
    out::get(&i.entries, "interface") == Some(&Value::str(interface))
        && out::get(&i.entries, "vrid") == Some(&Value::Int(vrid.into()))
        && vips_are_v6(&i.entries) == v6
}

/// An instance's family is its first VIP's (lbd's rule).
fn vips_are_v6(entries: &Entries) -> bool {
    match out::get(entries, "vips") {
        Some(Value::List(l)) => l
            .first()
            .is_some_and(|v| matches!(v, Value::Str(s) if s.contains(':'))),
        _ => false,
    }
}
