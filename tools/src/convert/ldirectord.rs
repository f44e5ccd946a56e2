//! ldirectord.cf → our config.
//!
//! The file is line-based: global `key = value` lines start in column 0; a `virtual=` (or
//! `virtual6=`) line opens a section whose lines are indented by at least four spaces or a tab.
//! Everything is read first and mapped afterwards, because globals such as `fork` or
//! `checktimeout` may come after the sections they apply to.
//!
//! Defaults are ldirectord's, written out because ours differ: scheduler wrr, checks every 10 s,
//! connect timeout 5 s, negotiate timeout 30 s, one failure marks a real down, a down real is
//! removed (`quiescent = no`), the fallback server is reached by direct routing.

use super::out::{self, Entries, Origin, Output, Value};
use super::{Conversion, ConvertError, Loc, Options, Sources, Warning};
use lbd::config::Scheduler;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

type R<T> = Result<T, ConvertError>;

/// Converts ldirectord.cf text.
pub fn convert_str(name: &str, text: &str, opts: &Options) -> R<Conversion> {
    let mut src = Sources::default();
    src.add(name, text);
    let mut cx = Cx {
        src: &src,
        warnings: Vec::new(),
        opts,
    };
    let file = cx.read(text)?;
    let output = cx.map(&file, name)?;
    let mut warnings = cx.warnings;
    warnings.sort_by_key(|w| w.line);
    super::accepted(name, Conversion { output, warnings })
}

/// Converts an ldirectord.cf file.
pub fn convert_file(path: &std::path::Path, opts: &Options) -> R<Conversion> {
    let text = super::FileSystem::read(&super::RealFs, path).map_err(|e| ConvertError::Read {
        file: path.display().to_string(),
        source: e,
    })?;
    convert_str(&path.display().to_string(), &text, opts)
}

/// A `key = value` line.
#[derive(Clone, Debug)]
struct Setting {
    key: String,
    value: String,
    at: Loc,
}

#[derive(Clone, Debug)]
enum VKey {
    Addr(IpAddr, u16),
    Fwmark(u32, bool),
}

#[derive(Clone, Debug)]
struct Section {
    at: Loc,
    head: String,
    key: VKey,
    reals: Vec<Setting>,
    /// Last value of each other setting.
    settings: BTreeMap<String, Setting>,
}

#[derive(Default)]
struct File {
    globals: BTreeMap<String, Setting>,
    /// Global settings in file order, for warnings about each.
    global_lines: Vec<Setting>,
    sections: Vec<Section>,
}

/// A parsed `real=` line (one per address of a range).
#[derive(Clone, Debug)]
struct RealLine {
    ip: IpAddr,
    port: Option<u16>,
    fwd: lbd::config::Forwarding,
    weight: i64,
    request: Option<String>,
    receive: Option<String>,
    at: Loc,
}

const GLOBAL_KEYS: &[&str] = &[
    "checktimeout",
    "negotiatetimeout",
    "checkinterval",
    "checkcount",
    "failurecount",
    "fallback",
    "fallback6",
    "fallbackcommand",
    "autoreload",
    "callback",
    "logfile",
    "execute",
    "fork",
    "supervised",
    "quiescent",
    "readdquiescent",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "emailalertfrom",
    "cleanstop",
    "smtp",
    "maintenancedir",
];

const VIRTUAL_KEYS: &[&str] = &[
    "real",
    "real6",
    "request",
    "receive",
    "checktype",
    "checkcommand",
    "checktimeout",
    "negotiatetimeout",
    "checkcount",
    "failurecount",
    "checkinterval",
    "checkport",
    "login",
    "passwd",
    "database",
    "secret",
    "load",
    "scheduler",
    "persistent",
    "netmask",
    "protocol",
    "ops",
    "service",
    "httpmethod",
    "virtualhost",
    "fallback",
    "fallback6",
    "fallbackcommand",
    "quiescent",
    "emailalert",
    "emailalertfreq",
    "emailalertstatus",
    "monitorfile",
    "cleanstop",
    "smtp",
];

/// Port numbers of the service names ldirectord configs use (from /etc/services).
fn port_by_name(name: &str) -> Option<u16> {
    Some(match name {
        "ftp" => 21,
        "ssh" => 22,
        "smtp" => 25,
        "domain" | "dns" => 53,
        "http" | "www" => 80,
        "pop3" | "pop" => 110,
        "nntp" => 119,
        "imap" | "imap2" => 143,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" | "pops" => 995,
        "oracle" => 1521,
        "radius" => 1812,
        "http_proxy" | "squid" => 3128,
        "mysql" => 3306,
        "sip" => 5060,
        "postgresql" | "pgsql" => 5432,
        "http-alt" | "webcache" => 8080,
        _ => return None,
    })
}

/// ldirectord's service by virtual port.
fn service_by_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        993 => "imaps",
        995 => "pops",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

/// Strips a `#` comment outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// A value without its enclosing double quotes.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

struct Cx<'a> {
    src: &'a Sources,
    warnings: Vec<Warning>,
    opts: &'a Options,
}

impl<'a> Cx<'a> {
    fn warn(&mut self, at: Loc, msg: impl Into<String>) {
        self.warnings.push(self.src.warning(at, msg));
    }

    fn err(&self, at: Loc, msg: impl Into<String>) -> ConvertError {
        self.src.error(at, msg)
    }

    fn setting(&self, text: &str, at: Loc) -> R<Setting> {
        let Some((k, v)) = text.split_once('=') else {
            return Err(self.err(
                at,
                format!("expected `key = value`, found {:?}", text.trim()),
            ));
        };
        let key = k.trim().to_string();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.err(at, format!("invalid key {key:?}: expected `key = value`")));
        }
        Ok(Setting {
            key,
            value: v.trim().to_string(),
            at,
        })
    }

    /// Stage 1: lines into globals and sections.
    fn read(&mut self, text: &str) -> R<File> {
        let mut f = File::default();
        for (i, raw) in text.lines().enumerate() {
            let at = Loc {
                file: 0,
                line: i + 1,
            };
            if raw.trim_start().starts_with('#') || raw.trim().is_empty() {
                continue;
            }
            let line = strip_comment(raw).replace('\t', "    ");
            if line.trim().is_empty() {
                continue;
            }
            let indented = line.starts_with("    ");
            if !indented && line.starts_with(char::is_whitespace) {
                return Err(self.err(
                    at,
                    "lines of a virtual section are indented by at least 4 spaces or a tab; global lines start in column 1",
                ));
            }
            let s = self.setting(&line, at)?;
            if indented {
                let Some(sec) = f.sections.last_mut() else {
                    return Err(self.err(at, "indented line outside a virtual= section"));
                };
                if !VIRTUAL_KEYS.contains(&s.key.as_str()) {
                    return Err(self.err(
                        at,
                        format!("unknown setting `{}` in a virtual section", s.key),
                    ));
                }
                if s.key == "real" || s.key == "real6" {
                    let v6 = matches!(
                        sec.key,
                        VKey::Addr(IpAddr::V6(_), _) | VKey::Fwmark(_, true)
                    );
                    if (s.key == "real6") != v6 {
                        return Err(self.err(
                            at,
                            format!(
                                "`{}` in a {} section: use `{}`",
                                s.key,
                                if v6 { "virtual6" } else { "virtual" },
                                if v6 { "real6" } else { "real" }
                            ),
                        ));
                    }
                    sec.reals.push(s);
                } else {
                    sec.settings.insert(s.key.clone(), s);
                }
                continue;
            }
            match s.key.as_str() {
                "virtual" | "virtual6" => {
                    let key = self.virtual_key(&s)?;
                    f.sections.push(Section {
                        at,
                        head: line.trim().to_string(),
                        key,
                        reals: Vec::new(),
                        settings: BTreeMap::new(),
                    });
                }
                "connecttimeout" | "timeout" => {
                    return Err(self.err(
                        at,
                        format!("`{}` is no longer accepted by ldirectord: use checktimeout and negotiatetimeout", s.key),
                    ))
                }
                k if GLOBAL_KEYS.contains(&k) => {
                    f.global_lines.push(s.clone());
                    f.globals.insert(s.key.clone(), s);
                }
                other => {
                    return Err(self.err(at, format!("unknown setting `{other}`")));
                }
            }
        }
        Ok(f)
    }

    fn port(&self, text: &str, at: Loc) -> R<u16> {
        if let Ok(n) = text.parse::<u32>() {
            return match u16::try_from(n) {
                Ok(p) => Ok(p),
                Err(_) => Err(self.err(at, format!("port {n} is out of range 0 to 65535"))),
            };
        }
        port_by_name(text).ok_or_else(|| {
            self.err(
                at,
                format!("unknown service name {text:?}: write the port number"),
            )
        })
    }

    fn host(&self, text: &str, v6: bool, at: Loc) -> R<IpAddr> {
        let t = text.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = t.parse().map_err(|_| {
            self.err(
                at,
                format!("{text:?} is not an IP address (host names are not resolved: write the address)"),
            )
        })?;
        if ip.is_ipv6() != v6 {
            return Err(self.err(
                at,
                if v6 {
                    format!("{ip} is not an IPv6 address (virtual6, real6 and fallback6 take IPv6 in brackets)")
                } else {
                    format!("{ip} is IPv6: use virtual6, real6 or fallback6")
                },
            ));
        }
        Ok(ip)
    }

    /// `ADDR:PORT`, `[ADDR6]:PORT` or a firewall mark.
    fn virtual_key(&self, s: &Setting) -> R<VKey> {
        let v6 = s.key == "virtual6";
        let v = unquote(&s.value);
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
            let mark: u32 = v
                .parse()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| self.err(s.at, "a firewall mark is 1 to 4294967295"))?;
            return Ok(VKey::Fwmark(mark, v6));
        }
        let (host, port) = self.host_port(v, s.at)?;
        let Some(port) = port else {
            return Err(self.err(
                s.at,
                format!("virtual service {v:?} needs a port (ADDR:PORT) or is a firewall mark"),
            ));
        };
        if port == 0 {
            return Err(self.err(
                s.at,
                format!("virtual service {v:?} has port 0 (every port): lbd's services have one port each; mark the ports with a firewall mark and use virtual = MARK"),
            ));
        }
        Ok(VKey::Addr(self.host(host, v6, s.at)?, port))
    }

    /// Splits `ADDR[:PORT]` / `[ADDR6][:PORT]`.
    fn host_port<'t>(&self, v: &'t str, at: Loc) -> R<(&'t str, Option<u16>)> {
        if let Some(rest) = v.strip_prefix('[') {
            let Some((h, after)) = rest.split_once(']') else {
                return Err(self.err(at, format!("{v:?}: missing ']'")));
            };
            let port = match after.strip_prefix(':') {
                Some(p) => Some(self.port(p, at)?),
                None if after.is_empty() => None,
                None => {
                    return Err(self.err(at, format!("{v:?}: expected ':' and a port after ']'")))
                }
            };
            return Ok((h, port));
        }
        match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Ok((h, Some(self.port(p, at)?))),
            _ => Ok((v, None)),
        }
    }

    /// `real = ADDR[->ADDR2][:PORT] gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"]`.
    fn real_lines(&self, s: &Setting) -> R<Vec<RealLine>> {
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
                at: s.at,
            })
            .collect())
    }

    fn seconds(&self, s: &Setting) -> R<u64> {
        unquote(&s.value)
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                self.err(
                    s.at,
                    format!("`{}` needs a number of seconds (1 or more)", s.key),
                )
            })
    }

    fn yes_no(&self, s: &Setting) -> R<bool> {
        match unquote(&s.value) {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(self.err(
                s.at,
                format!("`{}` must be yes or no, not {other:?}", s.key),
            )),
        }
    }

    /// `ADDR[:PORT] [gate|masq|ipip]` as (endpoint text, forwarding).
    fn fallback(&self, s: &Setting) -> R<(IpAddr, Option<u16>, lbd::config::Forwarding)> {
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

    /// Stage 2: the sections into services.
    fn map(&mut self, f: &File, name: &str) -> R<Output> {
        let mut o = Output::default();
        o.header.push(format!(
            "Converted from ldirectord config {name} by lbctl convert."
        ));
        o.header
            .push("Review the VRRP instance and the checks before use.".into());
        let g = |k: &str| f.globals.get(k);
        let fork = match g("fork") {
            Some(s) => self.yes_no(s)?,
            None => false,
        };
        let mut g_checktimeout = None;
        let mut g_negotiatetimeout = None;
        let mut g_interval = 10;
        let mut g_failurecount = 1;
        let mut g_quiescent = false;
        for s in &f.global_lines {
            match s.key.as_str() {
                "checktimeout" => g_checktimeout = Some(self.seconds(s)?),
                "negotiatetimeout" => g_negotiatetimeout = Some(self.seconds(s)?),
                "checkinterval" => g_interval = self.seconds(s)?,
                "failurecount" => g_failurecount = self.seconds(s)?,
                "quiescent" => g_quiescent = self.yes_no(s)?,
                "fallback" | "fallback6" => {
                    // Used per section; checked here so a bad one is reported even if unused.
                    self.fallback(s)?;
                }
                "fork" => {}
                "checkcount" => self.warn(s.at, "checkcount (deprecated; ping checks only) has no equivalent in lbd: use failurecount"),
                "autoreload" | "callback" => self.warn(s.at, format!("`{}` has no equivalent in lbd: lbd reloads on SIGHUP and when init hands it a new config", s.key)),
                "logfile" | "supervised" => self.warn(s.at, format!("`{}` has no equivalent in lbd: it logs to the console and, with [node.syslog], to a remote collector", s.key)),
                "maintenancedir" => self.warn(s.at, "maintenancedir has no equivalent in lbd: drain a real with `lbctl drain SERVICE REAL` (weight 0 until undrain)"),
                "cleanstop" => self.warn(s.at, "cleanstop has no equivalent in lbd: lbd leaves its IPVS table in place when it stops, so connections survive a restart"),
                "readdquiescent" => self.warn(s.at, "readdquiescent has no equivalent in lbd: lbd keeps the kernel table as the config says"),
                "fallbackcommand" | "execute" => self.warn(s.at, format!("`{}` has no equivalent in lbd: it runs no scripts", s.key)),
                _ => self.warn(s.at, format!("`{}` has no equivalent in lbd: ignored (health changes are in lbd's log, remote syslog and status API)", s.key)),
            }
        }
        let mut taken = BTreeSet::new();
        let mut orphans: Vec<(IpAddr, Loc)> = Vec::new();
        let mut seen_keys: BTreeMap<String, Loc> = BTreeMap::new();
        for sec in &f.sections {
            let svc = self.section(
                sec,
                f,
                fork,
                g_checktimeout,
                g_negotiatetimeout,
                g_interval,
                g_failurecount,
                g_quiescent,
                &mut taken,
            )?;
            let id = format!(
                "{:?}{}",
                sec.key,
                svc.entries
                    .iter()
                    .find(|(k, _)| k == "protocol")
                    .map(|(_, v)| format!("{v:?}"))
                    .unwrap_or_default()
            );
            if let Some(first) = seen_keys.get(&id) {
                return Err(self.err(
                    sec.at,
                    format!("duplicate virtual service (first at line {})", first.line),
                ));
            }
            seen_keys.insert(id, sec.at);
            if let VKey::Addr(ip, _) = sec.key {
                if !orphans.iter().any(|(o, _)| *o == ip) {
                    orphans.push((ip, sec.at));
                }
            }
            o.services.push(svc);
        }
        if !orphans.is_empty() {
            let (instances, warnings) = super::adopt_orphan_vips(
                &orphans,
                &self.opts.interface,
                &BTreeSet::new(),
                &BTreeSet::new(),
                self.opts,
                self.src,
                "ldirectord has no VRRP: heartbeat or pacemaker moved its addresses",
            );
            // One warning per VIP is enough: the first service of each names the instance.
            o.instances = instances;
            self.warnings.extend(warnings);
        }
        Ok(o)
    }

    #[allow(clippy::too_many_arguments)]
    fn section(
        &mut self,
        sec: &Section,
        f: &File,
        fork: bool,
        g_checktimeout: Option<u64>,
        g_negotiatetimeout: Option<u64>,
        g_interval: u64,
        g_failurecount: u64,
        g_quiescent: bool,
        taken: &mut BTreeSet<String>,
    ) -> R<out::Service> {
        let get = |k: &str| sec.settings.get(k);
        let (is_fwmark, vport) = match sec.key {
            VKey::Addr(_, p) => (false, p),
            VKey::Fwmark(..) => (true, 0),
        };
        // Protocol.
        let protocol = match get("protocol") {
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
        };
        let udp = protocol.as_deref() == Some("udp");
        let scheduler = match get("scheduler") {
            Some(s) => {
                let name = unquote(&s.value);
                name.parse::<Scheduler>().map_err(|e| self.err(s.at, e))?
            }
            None => Scheduler::Wrr,
        };
        let name_base = match sec.key {
            VKey::Addr(ip, p) => format!("vs_{ip}_{p}{}", if udp { "_udp" } else { "" }),
            VKey::Fwmark(m, _) => format!("vs_fwmark_{m}"),
        };
        let name = out::unique_name(out::name_from(&name_base), taken);
        let mut e = Entries::new();
        match sec.key {
            VKey::Addr(ip, p) => {
                e.push((
                    "vip".into(),
                    Value::str(lbd::config::Endpoint { ip, port: Some(p) }.to_string()),
                ));
                e.push((
                    "protocol".into(),
                    Value::str(protocol.clone().unwrap_or_default()),
                ));
            }
            VKey::Fwmark(m, v6) => {
                e.push(("fwmark".into(), Value::Int(m.into())));
                if v6 {
                    e.push(("family".into(), Value::str("ipv6")));
                }
            }
        }
        e.push(("scheduler".into(), Value::str(scheduler.to_string())));
        if let Some(s) = get("ops") {
            if self.yes_no(s)? {
                if udp {
                    e.push(("flags".into(), Value::List(vec![Value::str("one-packet")])));
                } else {
                    self.warn(
                        s.at,
                        "ops (one-packet scheduling) applies to UDP services only: left out",
                    );
                }
            }
        }
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
            None => g_quiescent,
        };
        e.push((
            "on_failure".into(),
            Value::str(if quiescent { "inhibit" } else { "remove" }),
        ));
        // Fallback: the section's, else the global one of the family.
        let v6 = matches!(
            sec.key,
            VKey::Addr(IpAddr::V6(_), _) | VKey::Fwmark(_, true)
        );
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
            let port = if fwd == lbd::config::Forwarding::Nat || is_fwmark {
                port
            } else {
                if let Some(p) = port.filter(|p| *p != vport) {
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
        let mut svc = out::Service {
            name,
            origin: Origin {
                at: self.src.at(sec.at),
                what: sec.head.clone(),
            },
            entries: e,
            ..Default::default()
        };
        // Persistence.
        if let Some(s) = get("persistent") {
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
            svc.persistence = Some(p);
        } else if let Some(m) = get("netmask") {
            self.warn(m.at, "netmask without persistent: left out");
        }
        // The check.
        let check = self.check(
            sec,
            vport,
            udp,
            g_checktimeout,
            g_negotiatetimeout,
            g_interval,
            g_failurecount,
            fork,
        )?;
        let checktype =
            get("checktype").map_or("negotiate".to_string(), |s| unquote(&s.value).to_string());
        if checktype == "off" {
            let at = get("checktype").map_or(sec.at, |s| s.at);
            self.warn(at, "checktype = off: ldirectord activates no real and no fallback server; the service is kept with no reals");
            svc.notes.push(
                "checktype = off in the source: these reals were never activated there:".into(),
            );
            for r in &reals {
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
            return Ok(svc);
        }
        let mut seen: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
        for r in &reals {
            let mut port = r.port;
            if r.fwd != lbd::config::Forwarding::Nat && !is_fwmark {
                if let Some(p) = port.filter(|p| *p != vport && *p != 0) {
                    self.warn(r.at, format!("{} real {} with port {p}: {} cannot change the port, so the kernel uses {vport}", r.fwd, r.ip, r.fwd));
                }
                port = None;
            }
            let effective = port.unwrap_or(vport);
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
            if r.fwd != default_fwd {
                re.push(("forwarding".into(), Value::str(r.fwd.to_string())));
            }
            let mut real_check = check.clone();
            if let (Some(c), Some(req)) = (&mut real_check, &r.request) {
                // A per-real request/receive pair replaces the section's for that real.
                let kind = c.iter().find(|(k, _)| k == "type").map(|(_, v)| v.clone());
                if matches!(kind, Some(Value::Str(ref t)) if t == "http" || t == "https") {
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
                        if let Some(e) = super::body_regex_problem(rcv) {
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
        svc.hoist_common_check();
        Ok(svc)
    }

    /// The section's check as an inline table; None for no check (the real is always up).
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        sec: &Section,
        vport: u16,
        udp: bool,
        g_checktimeout: Option<u64>,
        g_negotiatetimeout: Option<u64>,
        g_interval: u64,
        g_failurecount: u64,
        fork: bool,
    ) -> R<Option<Entries>> {
        let get = |k: &str| sec.settings.get(k);
        let text = |k: &str| get(k).map(|s| unquote(&s.value).to_string());
        let ct_at = get("checktype").map_or(sec.at, |s| s.at);
        let mut checktype = text("checktype").unwrap_or_else(|| "negotiate".into());
        if checktype.chars().all(|c| c.is_ascii_digit()) && !checktype.is_empty() {
            self.warn(ct_at, format!("checktype = {checktype} (connect checks with a negotiate check every {checktype}th time): lbd runs the negotiate check every time"));
            checktype = "negotiate".into();
        }
        let service = match get("service") {
            Some(s) => unquote(&s.value).to_string(),
            None => service_by_port(vport).to_string(),
        };
        let svc_at = get("service").map_or(sec.at, |s| s.at);
        let ct = match get("checktimeout") {
            Some(s) => Some(self.seconds(s)?),
            None => g_checktimeout,
        };
        let nt = match get("negotiatetimeout") {
            Some(s) => Some(self.seconds(s)?),
            None => g_negotiatetimeout,
        };
        let interval = match get("checkinterval") {
            Some(s) if fork => self.seconds(s)?,
            Some(s) => {
                self.warn(s.at, "checkinterval in a virtual section is ignored by ldirectord unless fork = yes: the global value is used");
                g_interval
            }
            None => g_interval,
        };
        let fall = match get("failurecount") {
            Some(s) => self.seconds(s)?,
            None => g_failurecount,
        };
        if let Some(s) = get("checkcount") {
            self.warn(s.at, "checkcount (deprecated; ping checks only) has no equivalent in lbd: use failurecount");
        }
        for k in ["emailalert", "emailalertfreq", "emailalertstatus", "smtp"] {
            if let Some(s) = get(k) {
                self.warn(s.at, format!("`{k}` has no equivalent in lbd: ignored (health changes are in lbd's log, remote syslog and status API)"));
            }
        }
        if let Some(s) = get("monitorfile") {
            self.warn(s.at, "monitorfile has no equivalent in lbd: check results are in its log, remote syslog and the status API (lbctl status)");
        }
        if let Some(s) = get("cleanstop") {
            self.warn(s.at, "cleanstop has no equivalent in lbd: lbd leaves its IPVS table in place when it stops");
        }
        if let Some(s) = get("fallbackcommand") {
            self.warn(
                s.at,
                "fallbackcommand has no equivalent in lbd: it runs no scripts",
            );
        }
        if let Some(s) = get("load") {
            self.warn(s.at, "`load` has no equivalent in lbd: ignored");
        }
        let connect_timeout = ct.or(nt).unwrap_or(5);
        let negotiate_timeout = nt.or(ct).unwrap_or(30);
        let mut e: Entries = Vec::new();
        let mut timeout = connect_timeout;
        let kind: &str = match checktype.as_str() {
            "on" | "off" => return Ok(None),
            "connect" => {
                if udp {
                    self.warn(ct_at, "connect check of a UDP service: ldirectord pings; lbd sends a UDP datagram and counts an ICMP unreachable as down");
                    "udp"
                } else {
                    "tcp"
                }
            }
            "ping" => {
                self.warn(ct_at, format!("checktype = ping: lbd has no ICMP check; a {} check is used", if udp { "UDP" } else { "TCP connect" }));
                if udp { "udp" } else { "tcp" }
            }
            "external" | "external-perl" => {
                let cmd = text("checkcommand").unwrap_or_else(|| "/bin/true".into());
                if checktype == "external-perl" {
                    self.warn(ct_at, "external-perl: lbd runs the command as a program (it must be executable with a #! line)");
                }
                self.warn(ct_at, "external check: lbd passes the service and real in the environment (LBD_REAL_IP, LBD_REAL_PORT, LBD_SERVICE...), not as the four arguments ldirectord passes");
                e.push(("command".into(), Value::List(cmd.split_whitespace().map(Value::str).collect())));
                "exec"
            }
            "negotiate" => {
                timeout = negotiate_timeout;
                let request = text("request");
                let receive = text("receive").filter(|r| !r.is_empty());
                match service.as_str() {
                    "http" | "https" => {
                        let path = request.clone().unwrap_or_else(|| "/".into());
                        if path.starts_with("http://") || path.starts_with("https://") {
                            let at = get("request").map_or(sec.at, |s| s.at);
                            self.warn(at, "request with a full URL: lbd checks the real's own address; write the path (and virtualhost)");
                        }
                        let path = if path.starts_with('/') { path } else { format!("/{path}") };
                        e.push(("path".into(), Value::str(path)));
                        if let Some(h) = text("virtualhost") {
                            e.push(("host".into(), Value::str(h)));
                        }
                        if let Some(r) = receive {
                            if let Some(problem) = super::body_regex_problem(&r) {
                                let at = get("receive").map_or(sec.at, |s| s.at);
                                return Err(self.err(at, format!("receive {r:?} is not a regular expression: {problem}")));
                            }
                            e.push(("expect_body_regex".into(), Value::str(r)));
                        }
                        if let Some(m) = get("httpmethod") {
                            if unquote(&m.value).eq_ignore_ascii_case("HEAD") {
                                self.warn(m.at, "httpmethod = HEAD: lbd checks with GET");
                            }
                        }
                        if service == "http" { "http" } else { "https" }
                    }
                    "dns" => {
                        let q = request.unwrap_or_default().trim_start_matches('/').to_string();
                        let (q, t) = match q.parse::<IpAddr>() {
                            Ok(ip) => (reverse_name(ip), "PTR"),
                            Err(_) => (if q.is_empty() { ".".to_string() } else { q }, "A"),
                        };
                        e.push(("query".into(), Value::str(q)));
                        e.push(("query_type".into(), Value::str(t)));
                        if let Some(s) = get("receive") {
                            self.warn(s.at, "receive of a DNS check: lbd checks that the server answers the query, not the address in the answer");
                        }
                        "dns"
                    }
                    "smtp" | "submission" => "smtp",
                    "mysql" | "pgsql" => {
                        if let Some(u) = text("login") {
                            e.push(("user".into(), Value::str(u)));
                        }
                        if let Some(d) = text("database") {
                            e.push(("database".into(), Value::str(d)));
                        }
                        match (text("passwd").filter(|p| !p.is_empty()), text("login")) {
                            (Some(p), Some(_)) => e.push(("password".into(), Value::str(p))),
                            (Some(_), None) => {
                                let at = get("passwd").map_or(sec.at, |s| s.at);
                                self.warn(at, "passwd without login: left out (lbd's check without a user logs in as lbd-check and needs no password)");
                            }
                            _ => {}
                        }
                        if let Some(s) = get("request") {
                            self.warn(s.at, "the SQL query of a database check: lbd checks the login, it runs no query");
                        }
                        if service == "mysql" { "mysql" } else { "pgsql" }
                    }
                    "none" => return Ok(None),
                    "simpletcp" => {
                        self.warn(svc_at, "service = simpletcp: lbd has no send/expect TCP check; a TCP connect check is used");
                        "tcp"
                    }
                    other => {
                        let proto = if udp || other == "radius" { "udp" } else { "tcp" };
                        self.warn(svc_at, format!("negotiate check of service {other}: lbd has no {other} check; a {} check is used", if proto == "udp" { "UDP" } else { "TCP connect" }));
                        proto
                    }
                }
            }
            other => {
                return Err(self.err(ct_at, format!("checktype {other:?}: must be connect, negotiate, on, off, ping, external, external-perl or a number")))
            }
        };
        if kind != "mysql" && kind != "pgsql" {
            if let Some(s) = get("passwd").or_else(|| get("login")) {
                if checktype == "negotiate" {
                    self.warn(
                        s.at,
                        format!(
                            "`{}` has no equivalent in lbd's {kind} check: ignored",
                            s.key
                        ),
                    );
                }
            }
        }
        if let Some(s) = get("secret") {
            self.warn(s.at, "`secret` (RADIUS) has no equivalent in lbd: ignored");
        }
        let mut c: Entries = vec![
            ("type".into(), Value::str(kind)),
            (
                "interval".into(),
                Value::duration(Duration::from_secs(interval)),
            ),
            (
                "timeout".into(),
                Value::duration(Duration::from_secs(timeout)),
            ),
            ("rise".into(), Value::Int(1)),
            ("fall".into(), Value::Int(fall as i64)),
        ];
        if let Some(s) = get("checkport") {
            let p: i64 = unquote(&s.value)
                .parse()
                .ok()
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| self.err(s.at, "checkport must be in range 1..65535"))?;
            c.push(("port".into(), Value::Int(p)));
        } else if vport == 0 && kind != "exec" {
            // fwmark reals have no port: ldirectord checks the service's well-known port.
            match get("service").and_then(|s| port_by_name(unquote(&s.value))) {
                Some(p) => c.push(("port".into(), Value::Int(p.into()))),
                None => {
                    self.warn(
                        svc_at,
                        format!("a firewall-mark service checked as `{service}`, which has no well-known port, and no checkport: ldirectord would check a port it cannot name; lbd leaves the reals unchecked (set checkport)"),
                    );
                    return Ok(None);
                }
            }
        }
        c.extend(e);
        Ok(Some(c))
    }
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

/// The PTR name of an address.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in Ipv6Addr::octets(&v6).iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(strip_comment("a = 1 # x"), "a = 1 ");
        assert_eq!(strip_comment("a = \"#x\" # y"), "a = \"#x\" ");
        assert_eq!(unquote(" \"x y\" "), "x y");
        assert_eq!(
            quoted_pair("\"/a.html\", \"OK\""),
            Some(("/a.html".into(), "OK".into()))
        );
        assert_eq!(
            quoted_pair("\"/a\" \"b c\""),
            Some(("/a".into(), "b c".into()))
        );
        assert_eq!(quoted_pair("\"/a\" x"), None);
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert!(reverse_name("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert_eq!(port_by_name("http"), Some(80));
        assert_eq!(service_by_port(443), "https");
    }
}
