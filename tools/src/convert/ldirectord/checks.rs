//! A `virtual=` section's check (`checktype`, `service` and their settings) as an inline check
//! table.

use super::lexer::{port_by_name, unquote, Section};
use super::{Converted, Converter, Globals};
use crate::convert::out::{Entries, Value};
use crate::convert::Loc;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// A section's check timing in seconds: its own settings, else the global ones.
struct Timing {
    connect_timeout: u64,
    negotiate_timeout: u64,
    interval: u64,
    fall: u64,
}

impl Converter<'_> {
    /// The section's check as an inline table; None for no check (the real is always up).
    pub(super) fn check(
        &mut self,
        sec: &Section,
        vport: u16,
        udp: bool,
        g: &Globals,
    ) -> Converted<Option<Entries>> {
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
        let t = self.check_timing(sec, g)?;
        for s in sec.settings.values() {
            self.unconverted(s, "virtual");
        }
        let mut e: Entries = Vec::new();
        let kind = self.check_kind(sec, &checktype, &service, (ct_at, svc_at), udp, &mut e)?;
        self.unused_by_check(sec, &checktype, &service, kind);
        let Some(kind) = kind else {
            return Ok(None);
        };
        let timeout = if checktype == "negotiate" {
            t.negotiate_timeout
        } else {
            t.connect_timeout
        };
        let mut c: Entries = vec![
            ("type".into(), Value::str(kind)),
            (
                "interval".into(),
                Value::duration(Duration::from_secs(t.interval)),
            ),
            (
                "timeout".into(),
                Value::duration(Duration::from_secs(timeout)),
            ),
            ("rise".into(), Value::Int(1)),
            ("fall".into(), Value::Int(t.fall as i64)),
        ];
        if !self.check_port(sec, vport, kind, &service, svc_at, &mut c)? {
            return Ok(None);
        }
        c.extend(e);
        Ok(Some(c))
    }

    /// Our check type for the section's `checktype` (and `service`), its settings into `e`;
    /// None for no check.
    fn check_kind(
        &mut self,
        sec: &Section,
        checktype: &str,
        service: &str,
        (ct_at, svc_at): (Loc, Loc),
        udp: bool,
        e: &mut Entries,
    ) -> Converted<Option<&'static str>> {
        Ok(Some(match checktype {
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
                let cmd = sec
                    .settings
                    .get("checkcommand")
                    .map_or("/bin/true", |s| unquote(&s.value));
                if cmd.split_whitespace().next().is_none() {
                    let at = sec.settings.get("checkcommand").map_or(ct_at, |s| s.at);
                    return Err(self.err(at, "checkcommand needs a command"));
                }
                if checktype == "external-perl" {
                    self.warn(ct_at, "external-perl: lbd runs the command as a program (it must be executable with a #! line)");
                }
                self.warn(ct_at, "external check: lbd passes the service and real in the environment (LBD_REAL_IP, LBD_REAL_PORT, LBD_SERVICE...), not as the four arguments ldirectord passes");
                e.push(("command".into(), Value::List(cmd.split_whitespace().map(Value::str).collect())));
                "exec"
            }
            "negotiate" => return self.negotiate_check(sec, service, svc_at, udp, e),
            other => {
                return Err(self.err(ct_at, format!("checktype {other:?}: must be connect, negotiate, on, off, ping, external, external-perl or a number")))
            }
        }))
    }

    /// A warning for each setting of the section that its check does not use.
    fn unused_by_check(
        &mut self,
        sec: &Section,
        checktype: &str,
        service: &str,
        kind: Option<&str>,
    ) {
        let negotiate = checktype == "negotiate";
        let what = match kind {
            Some(k) => format!("lbd's {k} check"),
            None if negotiate => format!("a service with service = {service} (no check)"),
            None => format!("a service with checktype = {checktype} (no check)"),
        };
        const LOGIN: &str = "negotiate checks that log in (ftp, imap, ldap, mysql, oracle, pgsql, pop, radius, sip)";
        let uses: [(&str, bool, &str); 9] = [
            (
                "checkcommand",
                matches!(checktype, "external" | "external-perl"),
                "external and external-perl checks: the program they run",
            ),
            (
                "request",
                negotiate && matches!(service, "http" | "https" | "dns" | "mysql" | "pgsql"),
                "negotiate checks: the URI, DNS name, SQL query or text sent",
            ),
            (
                "receive",
                negotiate && matches!(service, "http" | "https" | "dns"),
                "negotiate checks: what the answer must match",
            ),
            (
                "httpmethod",
                negotiate && matches!(service, "http" | "https"),
                "negotiate checks of http and https: GET or HEAD",
            ),
            (
                "virtualhost",
                negotiate && matches!(service, "http" | "https"),
                "negotiate checks of http and https: the Host header",
            ),
            (
                "login",
                negotiate && matches!(service, "mysql" | "pgsql"),
                LOGIN,
            ),
            (
                "passwd",
                negotiate && matches!(service, "mysql" | "pgsql"),
                LOGIN,
            ),
            (
                "database",
                negotiate && matches!(service, "mysql" | "pgsql"),
                "negotiate checks of mysql, oracle and pgsql: the database queried",
            ),
            ("checkport", kind.is_some(), "its checks: the port checked"),
        ];
        for (key, used, usage) in uses {
            if let Some(s) = sec.settings.get(key).filter(|_| !used) {
                self.warn(
                    s.at,
                    format!("`{key}` has no equivalent in {what}: ignored (ldirectord uses it in {usage})"),
                );
            }
        }
    }

    /// Timeouts, interval and failure count: the section's, else the global ones.
    fn check_timing(&mut self, sec: &Section, g: &Globals) -> Converted<Timing> {
        let get = |k: &str| sec.settings.get(k);
        let ct = match get("checktimeout") {
            Some(s) => Some(self.seconds(s)?),
            None => g.checktimeout,
        };
        let nt = match get("negotiatetimeout") {
            Some(s) => Some(self.seconds(s)?),
            None => g.negotiatetimeout,
        };
        let interval = match get("checkinterval") {
            Some(s) if g.fork => self.seconds(s)?,
            Some(s) => {
                self.warn(s.at, "checkinterval in a virtual section is ignored by ldirectord unless fork = yes: the global value is used");
                g.interval
            }
            None => g.interval,
        };
        let fall = match get("failurecount") {
            Some(s) => self.seconds(s)?,
            None => g.failurecount,
        };
        let limit = |converter: &mut Self, what: &str, n: u64, hi: u64| {
            if n > hi {
                converter.warn(
                    sec.at,
                    format!("{what} {n}: lbd takes at most {hi} for a check, so {hi} is used"),
                );
            }
            n.min(hi)
        };
        const HOUR: u64 = 3600;
        Ok(Timing {
            connect_timeout: limit(self, "checktimeout", ct.or(nt).unwrap_or(5), HOUR),
            negotiate_timeout: limit(self, "negotiatetimeout", nt.or(ct).unwrap_or(30), HOUR),
            interval: limit(self, "checkinterval", interval, HOUR),
            fall: limit(self, "failurecount", fall, 100),
        })
    }

    /// A negotiate check of the section's service: its type, and its settings into `e`; None
    /// for no check.
    fn negotiate_check(
        &mut self,
        sec: &Section,
        service: &str,
        svc_at: Loc,
        udp: bool,
        e: &mut Entries,
    ) -> Converted<Option<&'static str>> {
        let get = |k: &str| sec.settings.get(k);
        let text = |k: &str| get(k).map(|s| unquote(&s.value).to_string());
        let request = text("request");
        Ok(Some(match service {
            "http" | "https" => {
                self.http_negotiate(sec, request, e)?;
                if service == "http" {
                    "http"
                } else {
                    "https"
                }
            }
            "dns" => {
                let q = request
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
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
                self.sql_negotiate(sec, e);
                if service == "mysql" {
                    "mysql"
                } else {
                    "pgsql"
                }
            }
            "none" => return Ok(None),
            "simpletcp" => {
                self.warn(svc_at, "service = simpletcp: lbd has no send/expect TCP check; a TCP connect check is used");
                "tcp"
            }
            other => {
                let proto = if udp || other == "radius" {
                    "udp"
                } else {
                    "tcp"
                };
                self.warn(svc_at, format!("negotiate check of service {other}: lbd has no {other} check; a {} check is used", if proto == "udp" { "UDP" } else { "TCP connect" }));
                proto
            }
        }))
    }

    /// An HTTP(S) check's request path, host and expected body.
    fn http_negotiate(
        &mut self,
        sec: &Section,
        request: Option<String>,
        e: &mut Entries,
    ) -> Converted<()> {
        let get = |k: &str| sec.settings.get(k);
        let text = |k: &str| get(k).map(|s| unquote(&s.value).to_string());
        let receive = text("receive").filter(|r| !r.is_empty());
        let path = request.unwrap_or_else(|| "/".into());
        if path.starts_with("http://") || path.starts_with("https://") {
            let at = get("request").map_or(sec.at, |s| s.at);
            self.warn(at, "request with a full URL: lbd checks the real's own address; write the path (and virtualhost)");
        }
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        e.push(("path".into(), Value::str(path)));
        if let Some(h) = text("virtualhost") {
            e.push(("host".into(), Value::str(h)));
        }
        if let Some(r) = receive {
            if let Some(problem) = crate::convert::body_regex_problem(&r) {
                let at = get("receive").map_or(sec.at, |s| s.at);
                return Err(self.err(
                    at,
                    format!("receive {r:?} is not a regular expression: {problem}"),
                ));
            }
            e.push(("expect_body_regex".into(), Value::str(r)));
        }
        if let Some(m) = get("httpmethod") {
            if unquote(&m.value).eq_ignore_ascii_case("HEAD") {
                self.warn(m.at, "httpmethod = HEAD: lbd checks with GET");
            }
        }
        Ok(())
    }

    /// A database check's login.
    fn sql_negotiate(&mut self, sec: &Section, e: &mut Entries) {
        let get = |k: &str| sec.settings.get(k);
        let text = |k: &str| get(k).map(|s| unquote(&s.value).to_string());
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
            self.warn(
                s.at,
                "the SQL query of a database check: lbd checks the login, it runs no query",
            );
        }
    }

    /// The port checked: `checkport`, else for a firewall mark the service's well-known port;
    /// false when there is none (the reals are left unchecked).
    fn check_port(
        &mut self,
        sec: &Section,
        vport: u16,
        kind: &str,
        service: &str,
        svc_at: Loc,
        c: &mut Entries,
    ) -> Converted<bool> {
        let get = |k: &str| sec.settings.get(k);
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
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
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
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert!(reverse_name("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert_eq!(service_by_port(443), "https");
    }
}
