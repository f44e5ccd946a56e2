//! IPVS services: `virtual_server` (by address, firewall mark or group), and the forwarding
//! methods.

use super::checks::CheckDefaults;
use super::{Converted, Converter, Item};
use crate::convert::out::{self, Entries, Origin, Value};
use crate::convert::Loc;
use lbd::config::{Family, Forwarding, Protocol, Scheduler};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A virtual server's identity before expansion of groups.
#[derive(Clone, Debug)]
pub(super) enum VsKey {
    Addr(IpAddr, u16),
    Fwmark(u32, Option<Family>),
}

/// The services a virtual server or group names, each with the line that names it.
pub(super) type VsKeys = Vec<(VsKey, Loc)>;

/// A virtual server's settings as written: the same for every member of its group.
struct VsSettings<'i> {
    scheduler: Scheduler,
    forwarding: Forwarding,
    protocol: Option<(Protocol, Loc)>,
    flags: Vec<(&'static str, Loc)>,
    persistence: Option<Duration>,
    granularity: Option<(Value, Loc)>,
    sorry: Option<(IpAddr, Option<u16>, Loc)>,
    sorry_fwd: Option<Forwarding>,
    quorum: Option<(i64, Loc)>,
    hysteresis: Option<i64>,
    family: Option<(Family, Loc)>,
    inhibit: bool,
    /// Check settings the reals inherit.
    defaults: CheckDefaults,
    reals: Vec<&'i Item>,
}

/// A real server as read, with its check: the same for every member of a group.
struct RealServer {
    ip: IpAddr,
    port: Option<u16>,
    at: Loc,
    item: Item,
    weight: i64,
    forwarding: Option<Forwarding>,
    upper: Option<i64>,
    lower: Option<i64>,
    inhibit: Option<(bool, Loc)>,
    check: Option<Entries>,
}

impl Converter<'_> {
    /// One `virtual_server` block into services (several for a group), each with the VIP it
    /// needs a VRRP instance for.
    pub(super) fn virtual_server(
        &mut self,
        it: &Item,
        groups: &BTreeMap<String, VsKeys>,
        taken: &mut BTreeSet<String>,
    ) -> Converted<Vec<(out::Service, Option<IpAddr>, Loc)>> {
        let (keys, group) = self.vs_keys(it, groups)?;
        let vs = self.vs_settings(self.block(it)?)?;
        if let Some((_, at)) = &vs.protocol {
            if group.is_none() && keys.iter().any(|k| matches!(k.0, VsKey::Fwmark(..))) {
                self.warn(*at, "protocol on a fwmark virtual server: the mark selects the packets; left out, as keepalived ignores it");
            }
        }
        if let Some((_, at)) = vs.family {
            if !keys.iter().any(|k| matches!(k.0, VsKey::Fwmark(..))) {
                self.warn(at, "ip_family on a virtual server by address: keepalived takes the family from the address (ip_family is for firewall marks); left out");
            }
        }
        // Real servers, their settings and checks, once: the same for every group member.
        let mut rs: Vec<RealServer> = Vec::new();
        for r in &vs.reals {
            rs.push(self.real_server(r, &vs.defaults)?);
        }
        // inhibit_on_failure is per real in keepalived and per service in lbd.
        for r in &rs {
            if let Some((v, at)) = r.inhibit {
                if v != vs.inhibit {
                    self.warn(at, format!("inhibit_on_failure differs from its virtual server's: lbd sets it per service, on_failure = {:?} used for every real", if vs.inhibit { "inhibit" } else { "remove" }));
                }
            }
        }
        let mut services = Vec::new();
        if rs.is_empty() {
            self.warn(
                it.at,
                "virtual server without real servers: keepalived ignores it; left out",
            );
            return Ok(services);
        }
        let svc_protocol = match vs.protocol {
            Some((p, _)) => p,
            None => {
                if keys.iter().any(|k| matches!(k.0, VsKey::Addr(..))) {
                    self.warn(it.at, "no protocol: keepalived then uses UDP (the kernel's default for protocol 0); write `protocol TCP` if TCP was meant");
                }
                Protocol::Udp
            }
        };
        for (key, key_at) in &keys {
            let Some((name, vip)) =
                self.service_name(it, key, group.as_deref(), svc_protocol, taken)
            else {
                continue;
            };
            let svc = self.service(it, key, name, &vs, &rs, svc_protocol)?;
            services.push((svc, vip, *key_at));
        }
        Ok(services)
    }

    /// The services a virtual_server's head names (`IP [PORT]`, `fwmark N`, `group NAME`), and
    /// the group's name.
    fn vs_keys(
        &mut self,
        it: &Item,
        groups: &BTreeMap<String, VsKeys>,
    ) -> Converted<(VsKeys, Option<String>)> {
        Ok(match it.arg(0) {
            Some("fwmark") => (
                vec![(
                    VsKey::Fwmark(
                        self.int(it, 1, 1, u32::MAX as i64, "a firewall mark")? as u32,
                        None,
                    ),
                    it.at,
                )],
                None,
            ),
            Some("group") => {
                let name = self.arg(it, 1, "a virtual_server_group name")?;
                let Some(members) = groups.get(name) else {
                    return Err(
                        self.err(it.at, format!("virtual_server_group {name} is not defined"))
                    );
                };
                if members.is_empty() {
                    self.warn(
                        it.at,
                        format!("virtual_server_group {name} has no usable member: no service"),
                    );
                }
                (members.clone(), Some(name.to_string()))
            }
            Some(_) => {
                let ip = self.ip(it, 0)?;
                match it.arg(1) {
                    Some(_) => (vec![(VsKey::Addr(ip, self.port(it, 1)?), it.at)], None),
                    None => (vec![(VsKey::Addr(ip, 0), it.at)], None),
                }
            }
            None => {
                return Err(self.err(
                    it.at,
                    "virtual_server needs an address and port, `fwmark N` or `group NAME`",
                ))
            }
        })
    }

    /// The virtual server's own settings; its real servers are kept to be read after.
    fn vs_settings<'i>(&mut self, body: &'i [Item]) -> Converted<VsSettings<'i>> {
        let mut vs = VsSettings {
            scheduler: Scheduler::Wlc,
            forwarding: Forwarding::Nat,
            protocol: None,
            flags: Vec::new(),
            persistence: None,
            granularity: None,
            sorry: None,
            sorry_fwd: None,
            quorum: None,
            hysteresis: None,
            family: None,
            inhibit: false,
            defaults: CheckDefaults::default(),
            reals: Vec::new(),
        };
        for c in body {
            match c.key.as_str() {
                "lvs_sched" | "lb_algo" => {
                    let name = self.arg(c, 0, "a scheduler")?;
                    match name.parse::<Scheduler>() {
                        Ok(s) => vs.scheduler = s,
                        Err(e) => {
                            self.warn(c.at, format!("{e}; wlc used"));
                        }
                    }
                }
                "lvs_method" | "lb_kind" => vs.forwarding = self.forwarding(c)?,
                "protocol" => {
                    let p = self.arg(c, 0, "TCP, UDP or SCTP")?;
                    vs.protocol = Some((p.parse().map_err(|e: String| self.err(c.at, e))?, c.at));
                }
                "persistence_timeout" => {
                    vs.persistence = Some(match c.arg(0) {
                        None => Duration::from_secs(360),
                        Some(_) => {
                            Duration::from_secs(
                                self.int(c, 0, 1, u32::MAX as i64, "seconds")? as u64
                            )
                        }
                    })
                }
                "persistence_granularity" => vs.granularity = Some((self.granularity(c)?, c.at)),
                "sorry_server" => {
                    let ip = self.ip(c, 0)?;
                    let port = match c.arg(1) {
                        Some(_) => Some(self.port(c, 1)?),
                        None => None,
                    };
                    vs.sorry = Some((ip, port, c.at));
                }
                "sorry_server_lvs_method" | "sorry_server_lb_kind" => {
                    vs.sorry_fwd = Some(self.forwarding(c)?)
                }
                "quorum" => {
                    vs.quorum = Some((self.int(c, 0, 1, i32::MAX as i64, "a weight")?, c.at))
                }
                "hysteresis" => {
                    vs.hysteresis = Some(self.int(c, 0, 0, i32::MAX as i64, "a weight")?)
                }
                "ip_family" => {
                    vs.family = Some((
                        match self.arg(c, 0, "inet or inet6")? {
                            "inet" => Family::Ipv4,
                            "inet6" => Family::Ipv6,
                            other => {
                                return Err(self
                                    .err(c.at, format!("ip_family {other:?}: use inet or inet6")))
                            }
                        },
                        c.at,
                    ))
                }
                "inhibit_on_failure" => vs.inhibit = self.boolean(c, 0)?,
                "sh-port" | "mh-port" | "flag-2" => vs.flags.push(("sh-port", c.at)),
                "sh-fallback" | "mh-fallback" | "flag-1" => vs.flags.push(("sh-fallback", c.at)),
                "ops" => vs.flags.push(("one-packet", c.at)),
                "real_server" => vs.reals.push(c),
                _ => {
                    if !self.check_default(c, &mut vs.defaults)? {
                        self.unconverted(c, "virtual_server");
                    }
                }
            }
        }
        Ok(vs)
    }

    /// `persistence_granularity`: a netmask or a prefix length.
    fn granularity(&self, c: &Item) -> Converted<Value> {
        let m = self.arg(c, 0, "a netmask")?;
        Ok(if let Ok(n) = m.trim_start_matches('/').parse::<i64>() {
            Value::Int(n)
        } else if let Ok(mask) = m.parse::<Ipv4Addr>() {
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(self.err(c.at, format!("persistence_granularity {m}: the one bits of a netmask are contiguous from the left, like 255.255.255.0")));
            }
            Value::str(m)
        } else {
            return Err(self.err(c.at, format!("persistence_granularity {m:?}: write a netmask such as 255.255.255.0 or a prefix length")));
        })
    }

    /// One `real_server` block: its settings, and the first of its checkers lbd can run.
    fn real_server(&mut self, r: &Item, defaults: &CheckDefaults) -> Converted<RealServer> {
        let ip = self.ip(r, 0)?;
        let port = match r.arg(1) {
            Some(_) => Some(self.port(r, 1)?),
            None => None,
        };
        let mut ro = RealServer {
            ip,
            port,
            at: r.at,
            item: r.clone(),
            weight: 1,
            forwarding: None,
            upper: None,
            lower: None,
            inhibit: None,
            check: None,
        };
        let mut rdefaults = defaults.clone();
        let mut checkers: Vec<&Item> = Vec::new();
        for c in r.children() {
            match c.key.as_str() {
                "weight" => ro.weight = self.int(c, 0, 0, i32::MAX as i64, "a weight")?,
                "lvs_method" | "lb_kind" => ro.forwarding = Some(self.forwarding(c)?),
                "uthreshold" => {
                    ro.upper = Some(self.int(c, 0, 0, i32::MAX as i64, "a connection count")?)
                }
                "lthreshold" => {
                    ro.lower = Some(self.int(c, 0, 0, i32::MAX as i64, "a connection count")?)
                }
                "inhibit_on_failure" => ro.inhibit = Some((self.boolean(c, 0)?, c.at)),
                "HTTP_GET" | "SSL_GET" | "TCP_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
                | "MISC_CHECK" | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
                    checkers.push(c)
                }
                _ => {
                    if !self.check_default(c, &mut rdefaults)? {
                        self.unconverted(c, "real_server");
                    }
                }
            }
        }
        let mut mapped = false;
        for c in checkers {
            if mapped {
                self.warn(c.at, format!("a second checker ({}) on the same real: lbd runs one check per real; only the first is kept", c.key));
                continue;
            }
            if let Some(e) = self.checker(c, &rdefaults)? {
                ro.check = Some(e);
                mapped = true;
            }
        }
        Ok(ro)
    }

    /// The name of the service for one member of a virtual server (group), and its VIP; None
    /// when it is left out.
    fn service_name(
        &mut self,
        it: &Item,
        key: &VsKey,
        group: Option<&str>,
        svc_protocol: Protocol,
        taken: &mut BTreeSet<String>,
    ) -> Option<(String, Option<IpAddr>)> {
        let proto_suffix = match svc_protocol {
            Protocol::Udp => "_udp",
            Protocol::Sctp => "_sctp",
            Protocol::Tcp => "",
        };
        let (name_base, vip_ip, svc_port) = match key {
            VsKey::Addr(ip, port) => (
                format!(
                    "{}{}_{}{proto_suffix}",
                    group.map(|g| format!("{g}_")).unwrap_or_default(),
                    ip,
                    port
                ),
                Some(*ip),
                Some(*port),
            ),
            VsKey::Fwmark(m, _) => (
                format!(
                    "{}fwmark_{m}",
                    group.map(|g| format!("{g}_")).unwrap_or_default()
                ),
                None,
                None,
            ),
        };
        if svc_port == Some(0) {
            self.warn(it.at, format!("virtual server {} without a port (all ports, persistent): lbd services have a port; use a firewall mark for all ports. Left out", vip_ip.map(|i| i.to_string()).unwrap_or_default()));
            return None;
        }
        let name = out::unique_name(out::name_from(&format!("vs_{name_base}")), taken);
        Some((name, vip_ip))
    }

    /// One service of a virtual server (one member of its group).
    fn service(
        &mut self,
        it: &Item,
        key: &VsKey,
        name: String,
        vs: &VsSettings,
        rs: &[RealServer],
        svc_protocol: Protocol,
    ) -> Converted<out::Service> {
        let svc_port = match key {
            VsKey::Addr(_, port) => Some(*port),
            VsKey::Fwmark(..) => None,
        };
        let is_fwmark = matches!(key, VsKey::Fwmark(..));
        let mut e = Entries::new();
        let svc_family = match key {
            VsKey::Addr(ip, port) => {
                let ep = lbd::config::Endpoint {
                    ip: *ip,
                    port: Some(*port),
                };
                e.push(("vip".into(), Value::str(ep.to_string())));
                e.push(("protocol".into(), Value::str(svc_protocol.to_string())));
                Family::of(ip)
            }
            VsKey::Fwmark(m, f) => {
                e.push(("fwmark".into(), Value::Int(i64::from(*m))));
                let fam = f.or(vs.family.map(|f| f.0)).unwrap_or_else(|| {
                    // keepalived takes the family of the reals (all tunnelled or not).
                    rs.first().map_or(Family::Ipv4, |r| Family::of(&r.ip))
                });
                if fam == Family::Ipv6 {
                    e.push(("family".into(), Value::str("ipv6")));
                }
                fam
            }
        };
        e.push(("scheduler".into(), Value::str(vs.scheduler.to_string())));
        let fl = self.flags(vs, svc_protocol, is_fwmark);
        if !fl.is_empty() {
            e.push(("flags".into(), Value::List(fl)));
        }
        e.push(("forwarding".into(), Value::str(vs.forwarding.to_string())));
        // lbd keeps a down real of an mh service at weight 0 in its place (validation refuses
        // "remove" there): the order of the kernel's list decides the mh table.
        let inhibit = vs.inhibit || vs.scheduler == Scheduler::Mh;
        if !vs.inhibit && vs.scheduler == Scheduler::Mh {
            self.warn(it.at, "mh virtual server without inhibit_on_failure: lbd keeps a down real of an mh service at weight 0 in its place (on_failure = \"inhibit\"), so every balancer keeps the same mh table; add flags = [\"mh-fallback\"] so its flows go to the other reals");
        }
        e.push((
            "on_failure".into(),
            Value::str(if inhibit { "inhibit" } else { "remove" }),
        ));
        self.sorry_server(vs, svc_family, &mut e);
        let mut svc = out::Service {
            name,
            origin: self.origin(it),
            entries: e,
            ..Default::default()
        };
        self.persistence(vs, &mut svc)?;
        self.add_reals(vs, rs, svc_family, svc_port, is_fwmark, &mut svc);
        self.quorum(it, vs, &mut svc);
        svc.hoist_common_check();
        Ok(svc)
    }

    /// The scheduler flags that apply to this service, each once.
    fn flags(&mut self, vs: &VsSettings, svc_protocol: Protocol, is_fwmark: bool) -> Vec<Value> {
        let mut fl: Vec<Value> = Vec::new();
        for (f, at) in &vs.flags {
            let ok = match *f {
                "one-packet" => svc_protocol == Protocol::Udp && !is_fwmark,
                _ => matches!(vs.scheduler, Scheduler::Sh | Scheduler::Mh),
            };
            if !ok {
                self.warn(
                    *at,
                    format!(
                        "{f} only applies to {}: left out",
                        if *f == "one-packet" {
                            "UDP services"
                        } else {
                            "the sh and mh schedulers"
                        }
                    ),
                );
            } else if !fl.contains(&Value::str(*f)) {
                fl.push(Value::str(*f));
            }
        }
        fl
    }

    /// The sorry server, if it is of the service's family.
    fn sorry_server(&mut self, vs: &VsSettings, svc_family: Family, e: &mut Entries) {
        let Some((ip, port, at)) = vs.sorry else {
            return;
        };
        if Family::of(&ip) != svc_family {
            self.warn(at, "sorry server of another address family: left out");
        } else {
            // Not NAT: the sorry server takes the service's port (0 for a mark).
            let nat = vs.sorry_fwd.unwrap_or(vs.forwarding) == Forwarding::Nat;
            let port = if nat { port } else { None };
            let ep = lbd::config::Endpoint {
                ip,
                port: port.filter(|p| *p != 0),
            };
            e.push(("sorry_server".into(), Value::str(ep.to_string())));
            if let Some(f) = vs.sorry_fwd {
                e.push(("sorry_forwarding".into(), Value::str(f.to_string())));
            }
        }
    }

    /// Persistence, with its granularity if it fits the service's family.
    fn persistence(&mut self, vs: &VsSettings, svc: &mut out::Service) -> Converted<()> {
        if let Some(t) = vs.persistence {
            let mut p = vec![("timeout".to_string(), Value::duration(t))];
            if let Some((g, at)) = &vs.granularity {
                let v6 = svc_is_v6(&svc.entries);
                let fits = match g {
                    Value::Int(n) => (0..=if v6 { 128 } else { 32 }).contains(n),
                    _ => !v6,
                };
                if !fits {
                    return Err(self.err(
                        *at,
                        format!(
                            "persistence_granularity {}: an {} service takes {}",
                            match g {
                                Value::Str(s) => s.clone(),
                                other => format!("{other:?}"),
                            },
                            if v6 { "IPv6" } else { "IPv4" },
                            if v6 {
                                "a prefix length from 0 to 128"
                            } else {
                                "a netmask such as 255.255.255.0 or a prefix length from 0 to 32"
                            }
                        ),
                    ));
                }
                p.push(("netmask".into(), g.clone()));
            }
            svc.persistence = Some(p);
        } else if let Some((_, at)) = &vs.granularity {
            self.warn(
                *at,
                "persistence_granularity without persistence_timeout: left out",
            );
        }
        Ok(())
    }

    /// The reals into the service, with keepalived's port rules; those the kernel would refuse
    /// (another family, a duplicate) are left out.
    fn add_reals(
        &mut self,
        vs: &VsSettings,
        rs: &[RealServer],
        svc_family: Family,
        svc_port: Option<u16>,
        is_fwmark: bool,
        svc: &mut out::Service,
    ) {
        let mut seen: BTreeSet<(IpAddr, u16)> = BTreeSet::new();
        for r in rs {
            let fwd = r.forwarding.unwrap_or(vs.forwarding);
            let port = self.real_port(r, fwd, svc_port);
            if Family::of(&r.ip) != svc_family && fwd != Forwarding::Tun {
                self.warn(r.at, format!("real server {} is of another address family than its virtual server: the kernel forwards across families only through a tunnel, so keepalived fails to add it; left out", r.ip));
                continue;
            }
            let effective = port.or(svc_port).unwrap_or(0);
            if !seen.insert((r.ip, effective)) {
                self.warn(
                    r.at,
                    format!(
                        "real server {} appears twice: keepalived drops the second",
                        lbd::config::Endpoint {
                            ip: r.ip,
                            port: Some(effective)
                        }
                    ),
                );
                continue;
            }
            let ep = lbd::config::Endpoint { ip: r.ip, port };
            let mut re = Entries::new();
            re.push(("address".into(), Value::str(ep.to_string())));
            re.push(("weight".into(), Value::Int(r.weight)));
            if r.forwarding.is_some() && fwd != vs.forwarding {
                re.push(("forwarding".into(), Value::str(fwd.to_string())));
            }
            if let Some(u) = r.upper {
                re.push(("upper_threshold".into(), Value::Int(u)));
            }
            match (r.lower, r.upper.unwrap_or(0)) {
                (Some(l), u) if u > 0 && l > u => self.warn(r.at, format!("lthreshold {l} above uthreshold {u}: lbd refuses a lower threshold above the upper one; lthreshold left out")),
                (Some(l), _) => re.push(("lower_threshold".into(), Value::Int(l))),
                (None, _) => {}
            }
            svc.reals.push(out::Real {
                origin: Origin {
                    at: self.src.at(r.at),
                    what: r.item.head(),
                },
                entries: re,
                check: r.check.clone().filter(|c| {
                    // A fwmark service's real without a port, checked without a
                    // connect_port: keepalived connects to port 0, which fails.
                    let portless = is_fwmark
                        && port.is_none()
                        && !c.iter().any(|(k, _)| k == "port" || k == "command")
                        && !c.iter().any(|(k, v)| k == "type" && *v == Value::str("exec"));
                    if portless {
                        self.warn(r.at, "a check on a firewall-mark real without a port, and no connect_port: keepalived checks port 0, which fails; lbd leaves the real unchecked (set connect_port)");
                    }
                    !portless
                }),
            });
        }
    }

    /// A real's port by keepalived's rules: NAT keeps the port written (the service's when
    /// none); otherwise an address service's real takes the service port and a firewall
    /// mark's real port 0.
    fn real_port(&mut self, r: &RealServer, fwd: Forwarding, svc_port: Option<u16>) -> Option<u16> {
        match (fwd, svc_port, r.port) {
            (Forwarding::Nat, _, p) => p.filter(|p| *p != 0),
            (_, Some(sp), Some(p)) if p != sp && p != 0 => {
                self.warn(r.at, format!("{fwd} real with port {p} on service port {sp}: {fwd} cannot change the port, so keepalived (and lbd) use {sp}"));
                None
            }
            (_, None, Some(p)) if p != 0 => {
                self.warn(r.at, format!("{fwd} real with port {p} behind a firewall mark: keepalived clears the port (0)"));
                None
            }
            _ => None,
        }
    }

    /// The service's quorum, from keepalived's quorum and hysteresis.
    fn quorum(&mut self, it: &Item, vs: &VsSettings, svc: &mut out::Service) {
        if vs.quorum.is_none() && vs.hysteresis.is_none() {
            return;
        }
        // keepalived lowers a quorum above the total weight to it, and a hysteresis
        // to quorum - 1; it loses the quorum below quorum - hysteresis and regains it
        // at quorum + hysteresis. Ours: lost below min_weight, regained at
        // min_weight + hysteresis.
        // Of the reals kept: duplicates and reals of another family are left out above.
        let total: i64 = svc
            .reals
            .iter()
            .flat_map(|r| &r.entries)
            .filter_map(|(k, v)| match (k.as_str(), v) {
                ("weight", Value::Int(w)) => Some(*w),
                _ => None,
            })
            .sum();
        let q = vs.quorum.map_or(1, |q| q.0).min(total.max(1));
        let h = vs.hysteresis.unwrap_or(0).min(q - 1);
        let at = vs.quorum.map_or(it.at, |q| q.1);
        if q + h > total {
            self.warn(at, format!("quorum {q} + hysteresis {h} can never be regained with these reals (total weight {total}): left out"));
        } else {
            svc.quorum = Some(vec![
                ("min_weight".into(), Value::Int(q - h)),
                ("hysteresis".into(), Value::Int(2 * h)),
            ]);
            if q > 1 {
                self.warn(at, "quorum: keepalived swaps in the sorry server when the quorum is lost; lbd adds it only when no real is up (its quorum feeds VRRP quorum_priority_drop)");
            }
        }
    }

    /// `lvs_method NAT|DR|TUN [type {ipip|gue port N|gre} [nocsum|csum|remcsum]]`: lbd
    /// tunnels with IP-in-IP only.
    pub(super) fn forwarding(&mut self, c: &Item) -> Converted<Forwarding> {
        let m = self.arg(c, 0, "NAT, DR or TUN")?;
        let f: Forwarding = m.parse().map_err(|e: String| self.err(c.at, e))?;
        if f != Forwarding::Tun {
            return Ok(f);
        }
        let mut i = 1;
        while i < c.args.len() {
            match c.args[i].to_ascii_lowercase().as_str() {
                "type" => {
                    let kind = self.arg(c, i + 1, "a tunnel type (ipip, gue or gre)")?;
                    match kind.to_ascii_lowercase().as_str() {
                        "ipip" => {}
                        "gue" | "gre" => self.warn(c.at, format!("tunnel type {kind}: keepalived has the kernel encapsulate in {}; lbd tunnels with IP-in-IP only, so ipip is used: the reals must take IPIP packets (lbctl realserver)", kind.to_ascii_uppercase())),
                        other => {
                            return Err(self.err(
                                c.at,
                                format!("tunnel type {other:?}: use ipip, gue or gre"),
                            ))
                        }
                    }
                    i += 2;
                }
                "port" => {
                    self.port(c, i + 1)?;
                    i += 2;
                }
                "nocsum" | "csum" | "remcsum" => {
                    self.warn(c.at, format!("tunnel checksum option {}: keepalived sets the GUE/GRE checksum mode; lbd's IP-in-IP tunnels have none: ignored", c.args[i]));
                    i += 1;
                }
                other => {
                    return Err(self.err(
                        c.at,
                        format!("lvs_method TUN: unexpected {other:?} (type ipip|gue port N|gre, then nocsum|csum|remcsum)"),
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// Whether a converted service's entries make it an IPv6 one (its `vip`, or its `family`).
fn svc_is_v6(e: &Entries) -> bool {
    e.iter().any(|(k, v)| match (k.as_str(), v) {
        ("vip", Value::Str(s)) => s.starts_with('['),
        ("family", Value::Str(s)) => s == "ipv6",
        _ => false,
    })
}
