//! A `virtual=` section into a service: its protocol, scheduler, real servers (`real=` lines),
//! fallback server and persistence; its check is [`super::checks`]'.

use super::lexer::{unquote, File, Section, Setting, VKey};
use super::{Converted, Converter, Globals};
use crate::convert::out::{self, Entries, Origin, Value};
use crate::convert::Loc;
use lbd::config::Scheduler;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A parsed `real=` line (one per address of a range).
#[derive(Clone, Debug)]
struct RealLine {
    ip: IpAddr,
    port: Option<u16>,
    fwd: lbd::config::Forwarding,
    weight: i64,
    request: Option<String>,
    receive: Option<String>,
    /// Connection thresholds (`l:N`, `u:N`).
    lower: Option<i64>,
    upper: Option<i64>,
    at: Loc,
}

impl Converter<'_> {
    /// One virtual section into a service.
    pub(super) fn section(
        &mut self,
        sec: &Section,
        f: &File,
        g: &Globals,
        taken: &mut BTreeSet<String>,
    ) -> Converted<out::Service> {
        let get = |k: &str| sec.settings.get(k);
        let (is_fwmark, vport) = match sec.key {
            VKey::Addr(_, p) => (false, p),
            VKey::Fwmark(..) => (true, 0),
        };
        let protocol = self.protocol(sec, is_fwmark, vport)?;
        let udp = protocol.as_deref() == Some("udp");
        let scheduler = match get("scheduler") {
            Some(s) => {
                let name = unquote(&s.value);
                name.parse::<Scheduler>().map_err(|e| self.err(s.at, e))?
            }
            None => Scheduler::Wrr,
        };
        // servicename names the service (ldirectord puts it in its alert mails).
        let name_base = match (get("servicename"), &sec.key) {
            (Some(s), _) if !unquote(&s.value).trim().is_empty() => unquote(&s.value).to_string(),
            (_, &VKey::Addr(ip, p)) => format!("vs_{ip}_{p}{}", if udp { "_udp" } else { "" }),
            (_, &VKey::Fwmark(m, _)) => format!("vs_fwmark_{m}"),
        };
        let name = out::unique_name(out::name_from(&name_base), taken);
        let mut e = self.service_entries(sec, protocol, scheduler, udp)?;
        // Reals.
        let mut reals: Vec<RealLine> = Vec::new();
        for r in &sec.reals {
            for rl in self.real_lines(r)? {
                reals.push(rl);
            }
        }
        let default_fwd = reals.first().map_or(lbd::config::Forwarding::Dr, |r| r.fwd);
        e.push(("forwarding".into(), Value::str(default_fwd.to_string())));
        let quiescent = match get("quiescent") {
            Some(s) => self.yes_no(s)?,
            None => g.quiescent,
        };
        // lbd keeps a down real of an mh service at weight 0 in its place (validation refuses
        // "remove" there): the order of the kernel's list decides the mh table.
        if !quiescent && scheduler == Scheduler::Mh {
            self.warn(sec.at, "quiescent = no with the mh scheduler: lbd keeps a down real of an mh service at weight 0 in its place (on_failure = \"inhibit\"), so every balancer keeps the same mh table; add flags = [\"mh-fallback\"] so its flows go to the other reals");
        }
        let inhibit = quiescent || scheduler == Scheduler::Mh;
        e.push((
            "on_failure".into(),
            Value::str(if inhibit { "inhibit" } else { "remove" }),
        ));
        let v6 = matches!(
            sec.key,
            VKey::Addr(IpAddr::V6(_), _) | VKey::Fwmark(_, true)
        );
        self.fallback_server(sec, f, v6, is_fwmark, vport, &mut e)?;
        let mut svc = out::Service {
            name,
            origin: Origin {
                at: self.src.at(sec.at),
                what: sec.head.clone(),
            },
            entries: e,
            ..Default::default()
        };
        if let Some(c) = get("comment") {
            svc.notes.push(format!("comment: {}", unquote(&c.value)));
        }
        svc.persistence = self.persistence(sec, v6)?;
        let check = self.check(sec, vport, udp, g)?;
        let checktype =
            get("checktype").map_or("negotiate".to_string(), |s| unquote(&s.value).to_string());
        if checktype == "off" {
            self.never_activated(sec, &reals, &mut svc);
            return Ok(svc);
        }
        self.add_reals(&reals, default_fwd, &check, is_fwmark, vport, &mut svc)?;
        svc.hoist_common_check();
        Ok(svc)
    }

    /// The protocol of the section's service: tcp or udp, None for a firewall mark.
    fn protocol(&self, sec: &Section, is_fwmark: bool, vport: u16) -> Converted<Option<String>> {
        Ok(match sec.settings.get("protocol") {
            Some(s) => {
                let p = unquote(&s.value);
                match (is_fwmark, p) {
                    (true, "fwm") => None,
                    (true, _) => {
                        return Err(self.err(
                            s.at,
                            "protocol must be fwm for a firewall-mark virtual service",
                        ))
                    }
                    (false, "tcp") | (false, "udp") => Some(p.to_string()),
                    (false, _) => {
                        return Err(self.err(
                            s.at,
                            "protocol must be tcp or udp for an address virtual service",
                        ))
                    }
                }
            }
            None if is_fwmark => None,
            None if vport == 53 => Some("udp".to_string()),
            None => Some("tcp".to_string()),
        })
    }

    /// The service's entries up to its flags: address or mark, protocol, scheduler.
    fn service_entries(
        &mut self,
        sec: &Section,
        protocol: Option<String>,
        scheduler: Scheduler,
        udp: bool,
    ) -> Converted<Entries> {
        let mut e = Entries::new();
        match sec.key {
            VKey::Addr(ip, p) => {
                e.push((
                    "vip".into(),
                    Value::str(lbd::config::Endpoint { ip, port: Some(p) }.to_string()),
                ));
                e.push(("protocol".into(), Value::str(protocol.unwrap_or_default())));
            }
            VKey::Fwmark(m, v6) => {
                e.push(("fwmark".into(), Value::Int(m.into())));
                if v6 {
                    e.push(("family".into(), Value::str("ipv6")));
                }
            }
        }
        e.push(("scheduler".into(), Value::str(scheduler.to_string())));
        let mut flags = Vec::new();
        if let Some(s) = sec.settings.get("ops") {
            if self.yes_no(s)? {
                if udp {
                    flags.push(Value::str("one-packet"));
                } else {
                    self.warn(
                        s.at,
                        "ops (one-packet scheduling) applies to UDP services only: left out",
                    );
                }
            }
        }
        if let Some(s) = sec.settings.get("schedflags") {
            self.schedflags(s, scheduler, &mut flags);
        }
        if !flags.is_empty() {
            e.push(("flags".into(), Value::List(flags)));
        }
        Ok(e)
    }

    /// `schedflags = FLAG[,FLAG]`: the scheduler flags ldirectord hands `ipvsadm -b`.
    fn schedflags(&mut self, s: &Setting, scheduler: Scheduler, flags: &mut Vec<Value>) {
        let hashing = matches!(scheduler, Scheduler::Sh | Scheduler::Mh);
        for f in unquote(&s.value).split(',').map(str::trim) {
            let ours = match f {
                "sh-port" | "mh-port" | "flag-2" => "sh-port",
                "sh-fallback" | "mh-fallback" | "flag-1" => "sh-fallback",
                "" => continue,
                other => {
                    self.warn(
                        s.at,
                        format!("schedflags {other}: no scheduler lbd programs uses it: left out"),
                    );
                    continue;
                }
            };
            if !hashing {
                self.warn(
                    s.at,
                    format!("schedflags {f} only applies to the sh and mh schedulers: left out"),
                );
            } else if !flags.contains(&Value::str(ours)) {
                flags.push(Value::str(ours));
            }
        }
    }

    /// The fallback server: the section's, else the global one of the family.
    fn fallback_server(
        &mut self,
        sec: &Section,
        f: &File,
        v6: bool,
        is_fwmark: bool,
        vport: u16,
        e: &mut Entries,
    ) -> Converted<()> {
        let get = |k: &str| sec.settings.get(k);
        let fb = get("fallback")
            .or_else(|| get("fallback6"))
            .or_else(|| f.globals.get(if v6 { "fallback6" } else { "fallback" }));
        if let Some(s) = fb.filter(|s| {
            let same = (s.key == "fallback6") == v6;
            if !same {
                self.warn(s.at, format!("`{}` in a {} section: the fallback must be of the service's address family; left out", s.key, if v6 { "virtual6" } else { "virtual" }));
            }
            same
        }) {
            let (ip, port, fwd) = self.fallback(s)?;
            // Port 0 is the service's own (0, the packet's, for a firewall mark).
            let port = if fwd == lbd::config::Forwarding::Nat || is_fwmark {
                port.filter(|p| *p != 0)
            } else {
                if let Some(p) = port.filter(|p| *p != vport && *p != 0) {
                    self.warn(s.at, format!("fallback port {p} with {fwd}: {fwd} cannot change the port, so the kernel uses {vport}"));
                }
                None
            };
            e.push((
                "sorry_server".into(),
                Value::str(lbd::config::Endpoint { ip, port }.to_string()),
            ));
            e.push(("sorry_forwarding".into(), Value::str(fwd.to_string())));
        }
        Ok(())
    }

    /// Persistence, with its netmask.
    fn persistence(&mut self, sec: &Section, v6: bool) -> Converted<Option<Entries>> {
        let get = |k: &str| sec.settings.get(k);
        let Some(s) = get("persistent") else {
            if let Some(m) = get("netmask") {
                self.warn(m.at, "netmask without persistent: left out");
            }
            return Ok(None);
        };
        let t = self.seconds(s)?;
        let mut p = vec![(
            "timeout".to_string(),
            Value::duration(Duration::from_secs(t)),
        )];
        if let Some(m) = get("netmask") {
            let v = unquote(&m.value);
            if v6 {
                let n: i64 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=128).contains(n))
                    .ok_or_else(|| {
                        self.err(
                            m.at,
                            "invalid netmask: a prefix length between 1 and 128 is required",
                        )
                    })?;
                p.push(("netmask".into(), Value::Int(n)));
            } else {
                let mask = v.parse::<Ipv4Addr>().map_err(|_| {
                    self.err(m.at, "invalid netmask: dotted quad notation is required")
                })?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(self.err(
                            m.at,
                            format!("invalid netmask {v}: its one bits must be contiguous from the left, like 255.255.255.0"),
                        ));
                }
                p.push(("netmask".into(), Value::str(v)));
            }
        }
        Ok(Some(p))
    }

    /// `checktype = off`: ldirectord never activates the reals; they are listed in a note.
    fn never_activated(&mut self, sec: &Section, reals: &[RealLine], svc: &mut out::Service) {
        let get = |k: &str| sec.settings.get(k);
        let at = get("checktype").map_or(sec.at, |s| s.at);
        self.warn(at, "checktype = off: ldirectord activates no real and no fallback server; the service is kept with no reals");
        svc.notes
            .push("checktype = off in the source: these reals were never activated there:".into());
        for r in reals {
            svc.notes.push(format!(
                "  {} (line {})",
                lbd::config::Endpoint {
                    ip: r.ip,
                    port: r.port
                },
                r.at.line
            ));
        }
        svc.entries
            .retain(|(k, _)| k != "sorry_server" && k != "sorry_forwarding");
    }

    /// The reals into the service, with the section's check or their own request/receive.
    fn add_reals(
        &mut self,
        reals: &[RealLine],
        default_fwd: lbd::config::Forwarding,
        check: &Option<Entries>,
        is_fwmark: bool,
        vport: u16,
        svc: &mut out::Service,
    ) -> Converted<()> {
        let mut seen: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
        for r in reals {
            let mut port = r.port;
            if r.fwd != lbd::config::Forwarding::Nat && !is_fwmark {
                if let Some(p) = port.filter(|p| *p != vport && *p != 0) {
                    self.warn(r.at, format!("{} real {} with port {p}: {} cannot change the port, so the kernel uses {vport}", r.fwd, r.ip, r.fwd));
                }
                port = None;
            }
            // Port 0 is the service's port (written without one).
            let effective = port.filter(|p| *p != 0).unwrap_or(vport);
            if let Some(line) = seen.insert((r.ip, effective), r.at.line) {
                return Err(self.err(r.at, format!("real server {} is listed twice in this virtual section (also at line {line})", lbd::config::Endpoint { ip: r.ip, port: Some(effective) })));
            }
            let mut re = Entries::new();
            re.push((
                "address".into(),
                Value::str(
                    lbd::config::Endpoint {
                        ip: r.ip,
                        port: port.filter(|p| *p != 0),
                    }
                    .to_string(),
                ),
            ));
            re.push(("weight".into(), Value::Int(r.weight)));
            let upper = r.upper.unwrap_or(0);
            if upper > 0 {
                re.push(("upper_threshold".into(), Value::Int(upper)));
            }
            match r.lower {
                Some(l) if upper > 0 && l > upper => self.warn(r.at, format!("lower threshold l:{l} above the upper u:{upper}: lbd refuses that; the lower threshold is left out")),
                Some(l) if l > 0 => re.push(("lower_threshold".into(), Value::Int(l))),
                _ => {}
            }
            if r.fwd != default_fwd {
                re.push(("forwarding".into(), Value::str(r.fwd.to_string())));
            }
            let mut real_check = check.clone();
            if let (Some(c), Some(req)) = (&mut real_check, &r.request) {
                // A per-real request/receive pair replaces the section's for that real.
                let kind = out::get_str(c, "type");
                if matches!(kind.as_deref(), Some("http" | "https")) {
                    c.retain(|(k, _)| k != "path" && k != "expect_body_regex");
                    c.push((
                        "path".into(),
                        Value::str(if req.starts_with('/') {
                            req.clone()
                        } else {
                            format!("/{req}")
                        }),
                    ));
                    if let Some(rcv) = r.receive.as_ref().filter(|x| !x.is_empty()) {
                        if let Some(e) = crate::convert::body_regex_problem(rcv) {
                            return Err(self.err(
                                r.at,
                                format!("receive {rcv:?} is not a regular expression: {e}"),
                            ));
                        }
                        c.push(("expect_body_regex".into(), Value::str(rcv)));
                    }
                } else {
                    self.warn(r.at, "a per-real request/receive pair only applies to http and https checks in lbd: ignored");
                }
            }
            svc.reals.push(out::Real {
                origin: Origin {
                    at: self.src.at(r.at),
                    what: self.src.line(r.at).trim().to_string(),
                },
                entries: re,
                check: real_check,
            });
        }
        Ok(())
    }

    /// `real = ADDR[->ADDR2][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"]`.
    fn real_lines(&self, s: &Setting) -> Converted<Vec<RealLine>> {
        let v6 = s.key == "real6";
        let text = s.value.trim();
        let (addr, rest) = text.split_once(char::is_whitespace).ok_or_else(|| {
            self.err(
                s.at,
                "a real server needs a forwarding method: real = ADDR:PORT gate|masq|ipip [WEIGHT]",
            )
        })?;
        let (host, port) = self.host_port(addr, s.at)?;
        let (first, last) = match host.split_once("->") {
            Some((a, b)) => (self.host(a, v6, s.at)?, Some(self.host(b, v6, s.at)?)),
            None => (self.host(host, v6, s.at)?, None),
        };
        let rest = rest.trim_start();
        let (method, mut rest) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(m, r)| (m, r.trim_start()));
        let fwd = match method {
            "gate" => lbd::config::Forwarding::Dr,
            "masq" => lbd::config::Forwarding::Nat,
            "ipip" => lbd::config::Forwarding::Tun,
            other => {
                return Err(self.err(
                    s.at,
                    format!("forwarding method {other:?}: must be gate, masq or ipip"),
                ))
            }
        };
        let mut weight = 1;
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let (w, r) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(w, r)| (w, r.trim_start()));
            weight = w
                .parse::<i64>()
                .ok()
                .filter(|w| *w <= i32::MAX as i64)
                .ok_or_else(|| self.err(s.at, format!("weight {w:?} is not a number")))?;
            rest = r;
        }
        let (rest, lower, upper) = thresholds(rest);
        let (mut request, mut receive) = (None, None);
        if !rest.is_empty() {
            let parts = quoted_pair(rest).ok_or_else(|| {
                self.err(
                    s.at,
                    format!("invalid real server line around {rest:?}: expected \"REQUEST\", \"RECEIVE\""),
                )
            })?;
            request = Some(parts.0);
            receive = Some(parts.1);
        }
        let addrs: Vec<IpAddr> = match (first, last) {
            (a, None) => vec![a],
            (IpAddr::V4(a), Some(IpAddr::V4(b))) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    return Err(self.err(s.at, "address range ends before it starts"));
                }
                if b - a >= 1024 {
                    return Err(self.err(s.at, "address range of more than 1024 reals"));
                }
                (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect()
            }
            _ => return Err(self.err(s.at, "address ranges are IPv4 only (as in ldirectord)")),
        };
        Ok(addrs
            .into_iter()
            .map(|ip| RealLine {
                ip,
                port,
                fwd,
                weight,
                request: request.clone(),
                receive: receive.clone(),
                lower,
                upper,
                at: s.at,
            })
            .collect())
    }

    /// `ADDR[:PORT] [gate|masq|ipip]` as (endpoint text, forwarding).
    pub(super) fn fallback(
        &self,
        s: &Setting,
    ) -> Converted<(IpAddr, Option<u16>, lbd::config::Forwarding)> {
        let v6 = s.key == "fallback6";
        let v = unquote(&s.value);
        let mut words = v.split_whitespace();
        let addr = words
            .next()
            .ok_or_else(|| self.err(s.at, "fallback needs an address"))?;
        let fwd = match words.next() {
            None | Some("gate") => lbd::config::Forwarding::Dr,
            Some("masq") => lbd::config::Forwarding::Nat,
            Some("ipip") => lbd::config::Forwarding::Tun,
            Some(other) => {
                return Err(self.err(
                    s.at,
                    format!("forwarding method {other:?}: must be gate, masq or ipip"),
                ))
            }
        };
        let (host, port) = self.host_port(addr, s.at)?;
        Ok((self.host(host, v6, s.at)?, port, fwd))
    }
}

/// The connection thresholds at the end of a real line's flags (`l:N`, `u:N`, in that order,
/// as ldirectord reads them), and what is before them.
fn thresholds(rest: &str) -> (&str, Option<i64>, Option<i64>) {
    let mut rest = rest.trim_end();
    let mut found = [None, None];
    for (i, prefix) in [(1, "u:"), (0, "l:")] {
        let (before, last) = rest.rsplit_once(char::is_whitespace).unwrap_or(("", rest));
        let n = last
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n));
        if let Some(n) = n {
            found[i] = Some(n);
            rest = before.trim_end();
        }
    }
    (rest, found[0], found[1])
}

/// `"a", "b"` or `"a" "b"` → (a, b).
fn quoted_pair(text: &str) -> Option<(String, String)> {
    let rest = text.trim().strip_prefix('"')?;
    let (a, rest) = rest.split_once('"')?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    let rest = rest.strip_prefix('"')?;
    let (b, rest) = rest.rsplit_once('"')?;
    if !rest.trim().is_empty() {
        return None;
    }
    Some((a.to_string(), b.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_pairs() {
        assert_eq!(
            quoted_pair("\"/a.html\", \"OK\""),
            Some(("/a.html".into(), "OK".into()))
        );
        assert_eq!(
            quoted_pair("\"/a\" \"b c\""),
            Some(("/a".into(), "b c".into()))
        );
        assert_eq!(quoted_pair("\"/a\" x"), None);
        assert_eq!(thresholds("l:5 u:10"), ("", Some(5), Some(10)));
        assert_eq!(
            thresholds("\"/\", \"ok\" u:7"),
            ("\"/\", \"ok\"", None, Some(7))
        );
        assert_eq!(thresholds("\"/\", \"ok\""), ("\"/\", \"ok\"", None, None));
    }
}
