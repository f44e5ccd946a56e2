//! Health checkers of a real server (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `SMTP_CHECK`,
//! `DNS_CHECK`, `MISC_CHECK`, `UDP_CHECK`), and the check settings virtual and real servers pass
//! down to them.

use super::{settings, Converted, Converter, Item};
use crate::convert::out::{Entries, Value};
use crate::convert::Loc;
use std::net::IpAddr;
use std::time::Duration;

/// Health-check timing and defaults inherited virtual server → real server → checker.
#[derive(Clone, Debug, Default)]
pub(super) struct CheckDefaults {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    virtualhost: Option<String>,
}

/// A checker block's settings as written, over the defaults it inherits.
struct CheckerSettings<'i> {
    d: CheckDefaults,
    port: Option<i64>,
    connect_ip: Option<IpAddr>,
    bindto: Option<IpAddr>,
    urls: Vec<&'i Item>,
    sni: bool,
    sni_name: Option<String>,
    command: Option<Vec<String>>,
    misc_timeout: Option<Duration>,
    dynamic: bool,
    dns_type: Option<String>,
    dns_name: Option<String>,
    helo: Option<String>,
    payload: Option<(String, Loc)>,
    require_reply: bool,
    reply_data: Option<(String, Loc)>,
}

impl Converter<'_> {
    /// Inherited check settings; false when `c` is not one.
    pub(super) fn check_default(&mut self, c: &Item, d: &mut CheckDefaults) -> Converted<bool> {
        match c.key.as_str() {
            "connect_timeout" => {
                let t = self.timer(c, 0)?;
                if t.is_zero() {
                    self.warn(c.at, "connect_timeout 0: a check needs time to answer; keepalived's default, 5s, is used");
                } else {
                    d.connect_timeout = Some(t);
                }
            }
            "retry" => d.retry = Some(self.int(c, 0, 0, 99, "a retry count")? as u32),
            "delay_before_retry" => d.delay_before_retry = Some(self.timer(c, 0)?),
            "warmup" => d.warmup = Some(self.timer(c, 0)?),
            "delay_loop" => {
                let t = self.timer(c, 0)?;
                if t.is_zero() {
                    self.warn(
                        c.at,
                        "delay_loop 0: keepalived refuses it and keeps its default, 60s",
                    );
                } else {
                    d.delay_loop = Some(t);
                }
            }
            "virtualhost" => d.virtualhost = Some(self.arg(c, 0, "a host name")?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One checker block as an inline check table; None when lbd has no such check.
    pub(super) fn checker(
        &mut self,
        c: &Item,
        inherited: &CheckDefaults,
    ) -> Converted<Option<Entries>> {
        let Some(kind) = self.check_type(c) else {
            return Ok(None);
        };
        let s = self.checker_settings(c, kind, inherited)?;
        let mut e: Entries = vec![("type".into(), Value::str(kind))];
        self.check_timing(c, kind, &s, &mut e);
        if let Some(p) = s.port {
            e.push(("port".into(), Value::Int(p)));
        }
        if let Some(ip) = s.connect_ip {
            e.push(("connect_address".into(), Value::str(ip.to_string())));
        }
        if let Some(ip) = s.bindto {
            e.push(("source_address".into(), Value::str(ip.to_string())));
        }
        let specific = match kind {
            "http" | "https" => self.http_check(c, &s)?,
            "exec" => self.exec_check(c, s)?,
            "dns" => vec![
                (
                    "query".into(),
                    Value::str(s.dns_name.unwrap_or_else(|| ".".into())),
                ),
                (
                    "query_type".into(),
                    Value::str(s.dns_type.unwrap_or_else(|| "SOA".into())),
                ),
            ],
            "smtp" => match s.helo {
                Some(h) => vec![("helo_name".into(), Value::str(h))],
                None => Vec::new(),
            },
            "udp" => self.udp_check(s)?,
            _ => Vec::new(),
        };
        e.extend(specific);
        Ok(Some(e))
    }

    /// Our check type for a checker keyword; None, with a warning, when lbd has none.
    fn check_type(&mut self, c: &Item) -> Option<&'static str> {
        Some(match c.key.as_str() {
            "TCP_CHECK" => "tcp",
            "HTTP_GET" => "http",
            "SSL_GET" => "https",
            "SMTP_CHECK" => "smtp",
            "DNS_CHECK" => "dns",
            "MISC_CHECK" => "exec",
            "UDP_CHECK" => "udp",
            other => {
                let why = settings::reason("real_server", other)
                    .unwrap_or("not a checker keepalived knows");
                self.warn(
                    c.at,
                    format!(
                        "{other} has no equivalent in lbd: the real has no check from it ({why})"
                    ),
                );
                if let Some(inner) = settings::block_context("real_server", other) {
                    for o in c.children() {
                        self.unconverted(o, inner);
                    }
                }
                return None;
            }
        })
    }

    /// The settings in a checker block of type `kind`.
    fn checker_settings<'i>(
        &mut self,
        c: &'i Item,
        kind: &str,
        inherited: &CheckDefaults,
    ) -> Converted<CheckerSettings<'i>> {
        let mut s = CheckerSettings {
            d: inherited.clone(),
            port: None,
            connect_ip: None,
            bindto: None,
            urls: Vec::new(),
            sni: false,
            sni_name: None,
            command: None,
            misc_timeout: None,
            dynamic: false,
            dns_type: None,
            dns_name: None,
            helo: None,
            payload: None,
            require_reply: false,
            reply_data: None,
        };
        for o in c.children() {
            match o.key.as_str() {
                "connect_port" => s.port = Some(self.int(o, 0, 1, 65535, "a port")?),
                "connect_ip" => s.connect_ip = Some(self.ip(o, 0)?),
                "bindto" => s.bindto = Some(self.ip(o, 0)?),
                "url" if matches!(kind, "http" | "https") => s.urls.push(o),
                "enable_sni" if kind == "https" => s.sni = self.boolean(o, 0)?,
                "sni_name" if kind == "https" => {
                    s.sni_name = Some(self.arg(o, 0, "a server name")?.to_string())
                }
                // Deprecated, and only known inside HTTP_GET and SSL_GET.
                "nb_get_retry" if matches!(kind, "http" | "https") => {
                    s.d.retry = Some(self.int(o, 0, 0, 99, "a retry count")? as u32)
                }
                "misc_path" if kind == "exec" => {
                    let words: Vec<String> = if o.args.len() == 1 {
                        split_command(&o.args[0])
                    } else {
                        o.args.clone()
                    };
                    if words.is_empty() {
                        return Err(self.err(o.at, "misc_path needs a program"));
                    }
                    s.command = Some(words);
                }
                "misc_timeout" if kind == "exec" => s.misc_timeout = Some(self.timer(o, 0)?),
                "misc_dynamic" if kind == "exec" => s.dynamic = true,
                "type" if kind == "dns" => self.dns_type(o, &mut s)?,
                "name" if kind == "dns" => s.dns_name = Some(self.arg(o, 0, "a name")?.to_string()),
                "helo_name" if kind == "smtp" => {
                    s.helo = Some(self.arg(o, 0, "a name")?.to_string())
                }
                "host" if kind == "smtp" => self.smtp_host(o, &mut s)?,
                "payload" if kind == "udp" => s.payload = Some((o.args.concat(), o.at)),
                "require_reply" if kind == "udp" => {
                    s.require_reply = true;
                    if !o.args.is_empty() {
                        s.reply_data = Some((o.args.concat(), o.at));
                    }
                }
                _ => {
                    if !self.check_default(o, &mut s.d)? {
                        self.unconverted(o, &c.key);
                    }
                }
            }
        }
        Ok(s)
    }

    /// A DNS_CHECK's `type`: keepalived ignores one it does not know.
    fn dns_type(&mut self, o: &Item, s: &mut CheckerSettings) -> Converted<()> {
        let t = self.arg(o, 0, "a query type")?.to_ascii_uppercase();
        match t.as_str() {
            "A" | "NS" | "CNAME" | "SOA" | "MX" | "TXT" | "AAAA" => s.dns_type = Some(t),
            "RRSIG" | "DNSKEY" => self.warn(o.at, format!("DNS_CHECK type {t}: lbd's DNS check does not ask for {t} records: left out (the query type is SOA, keepalived's default, unless set)")),
            _ => self.warn(o.at, format!("DNS_CHECK type {t:?}: keepalived ignores a type it does not know (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY): left out")),
        }
        Ok(())
    }

    /// Old SMTP_CHECK syntax: one or more host { connect_ip ... } blocks.
    fn smtp_host(&mut self, o: &Item, s: &mut CheckerSettings) -> Converted<()> {
        if s.connect_ip.is_some() || s.port.is_some() {
            self.warn(
                o.at,
                "a second SMTP host in one SMTP_CHECK: lbd checks one; only the first is kept",
            );
            return Ok(());
        }
        for h in o.children() {
            match h.key.as_str() {
                "connect_ip" => s.connect_ip = Some(self.ip(h, 0)?),
                "connect_port" => s.port = Some(self.int(h, 0, 1, 65535, "a port")?),
                "bindto" => s.bindto = Some(self.ip(h, 0)?),
                _ => self.unconverted(h, "checker"),
            }
        }
        Ok(())
    }

    /// Interval, timeout, rise, fall, retry delay and warmup, with keepalived's defaults.
    fn check_timing(&mut self, c: &Item, kind: &str, s: &CheckerSettings, e: &mut Entries) {
        let d = &s.d;
        let interval = d.delay_loop.unwrap_or(Duration::from_secs(60));
        // misc_timeout 0 is keepalived's "unset": the delay_loop.
        let misc_timeout = s.misc_timeout.filter(|t| !t.is_zero());
        let timeout = match kind {
            "exec" => misc_timeout.or(d.connect_timeout).unwrap_or(interval),
            _ => d.connect_timeout.unwrap_or(Duration::from_secs(5)),
        };
        let retry = d.retry.unwrap_or(match kind {
            "dns" => 3,
            "exec" => 0,
            _ => 1,
        });
        let retry_delay = d.delay_before_retry.unwrap_or(match kind {
            "http" | "https" => Duration::from_secs(3),
            "dns" => interval,
            _ => Duration::from_secs(1),
        });
        let ms = Duration::from_millis;
        let interval = self.check_limit(c, "delay_loop", interval, ms(10));
        let timeout = self.check_limit(c, "the check timeout", timeout, ms(1));
        let retry_delay = self.check_limit(c, "delay_before_retry", retry_delay, ms(0));
        e.push(("interval".into(), Value::duration(interval)));
        e.push(("timeout".into(), Value::duration(timeout)));
        e.push(("rise".into(), Value::Int(1)));
        e.push(("fall".into(), Value::Int(i64::from(retry) + 1)));
        e.push(("retry_delay".into(), Value::duration(retry_delay)));
        if let Some(w) = d.warmup {
            self.warn(c.at, "warmup: keepalived waits a random time up to it before the first check; lbd waits exactly that long");
            let w = self.check_limit(c, "warmup", w, ms(0));
            e.push(("warmup".into(), Value::duration(w)));
        }
    }

    /// A check timer within what lbd takes (`lo` to an hour), with a warning when it is not.
    fn check_limit(&mut self, c: &Item, what: &str, d: Duration, lo: Duration) -> Duration {
        let used = d.clamp(lo, Duration::from_secs(3600));
        if used != d {
            let text = crate::convert::out::duration_text;
            self.warn(
                c.at,
                format!(
                    "{what} {}: lbd takes {} to 1h for it: {} used",
                    text(d),
                    text(lo),
                    text(used)
                ),
            );
        }
        used
    }

    /// An HTTP_GET's or SSL_GET's request and expectations, from its first url.
    fn http_check(&mut self, c: &Item, s: &CheckerSettings) -> Converted<Entries> {
        let mut specific: Entries = Vec::new();
        let mut host = s.d.virtualhost.clone();
        let mut regex_options = None;
        if let Some(u) = s.urls.first() {
            for f in u.children() {
                if f.key == "regex_options" {
                    regex_options = Some(f);
                } else {
                    self.url_setting(f, &mut specific, &mut host)?;
                }
            }
            if let Some(o) = regex_options {
                self.regex_options(o, &mut specific)?;
            }
            for extra in s.urls.iter().skip(1) {
                self.warn(extra.at, "a second url in one HTTP check: lbd checks one URL per real; only the first is kept");
            }
        } else {
            self.warn(
                c.at,
                format!("{} without url: lbd checks path \"/\"", c.key),
            );
        }
        if let Some(h) = &host {
            specific.insert(1.min(specific.len()), ("host".into(), Value::str(h)));
        }
        // sni_name turns SNI on with that name; enable_sni sends the virtual host.
        match (&s.sni_name, host) {
            (Some(n), _) => specific.push(("sni".into(), Value::str(n))),
            (None, Some(h)) if s.sni => specific.push(("sni".into(), Value::str(h))),
            _ => {}
        }
        Ok(specific)
    }

    /// `regex_options`: the PCRE2 options lbd's regular expressions take as inline flags.
    fn regex_options(&mut self, o: &Item, specific: &mut Entries) -> Converted<()> {
        let mut flags = String::new();
        let mut others = Vec::new();
        for a in &o.args {
            match a.as_str() {
                "caseless" => flags.push('i'),
                "multiline" => flags.push('m'),
                "dotall" => flags.push('s'),
                "ungreedy" => flags.push('U'),
                "extended" => flags.push('x'),
                other => others.push(other),
            }
        }
        if !others.is_empty() {
            self.warn(o.at, format!("regex_options {}: PCRE2 options keepalived matches with have no equivalent in lbd: ignored (its regex takes the flags of caseless, multiline, dotall, ungreedy and extended)", others.join(" ")));
        }
        if flags.is_empty() {
            return Ok(());
        }
        match specific.iter_mut().find(|(k, _)| k == "expect_body_regex") {
            Some((_, Value::Str(re))) => {
                let with = format!("(?{flags}){re}");
                if let Some(e) = crate::convert::body_regex_problem(&with) {
                    return Err(self.err(o.at, format!("regex with regex_options: {e}")));
                }
                *re = with;
            }
            _ => self.warn(o.at, "regex_options without regex: left out"),
        }
        Ok(())
    }

    /// One setting of a `url` block.
    fn url_setting(
        &mut self,
        f: &Item,
        specific: &mut Entries,
        host: &mut Option<String>,
    ) -> Converted<()> {
        match f.key.as_str() {
            "path" => {
                let path = self.arg(f, 0, "a path")?;
                if !path.starts_with('/') {
                    return Err(self.err(
                        f.at,
                        format!("path {path:?}: an HTTP request path starts with '/'"),
                    ));
                }
                specific.push(("path".into(), Value::str(path)));
            }
            "digest" => {
                let d = self.arg(f, 0, "an MD5 digest")?.to_ascii_lowercase();
                if d.len() != 32 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(self.err(f.at, format!("digest {d:?}: an MD5 digest is 32 hexadecimal digits (genhash prints it)")));
                }
                specific.push(("digest".into(), Value::str(d)));
            }
            "status_code" => {
                let mut codes = Vec::new();
                for a in &f.args {
                    let r: lbd::config::StatusRange =
                        a.parse().map_err(|e: String| self.err(f.at, e))?;
                    codes.push(if r.low == r.high {
                        Value::Int(r.low.into())
                    } else {
                        Value::str(a)
                    });
                }
                if codes.is_empty() {
                    return Err(self.err(f.at, "status_code needs a code or range"));
                }
                specific.push(("expect_status".into(), Value::List(codes)));
            }
            "virtualhost" => *host = Some(self.arg(f, 0, "a host name")?.to_string()),
            "regex" => {
                let re = self.arg(f, 0, "a regular expression")?;
                if let Some(e) = crate::convert::body_regex_problem(re) {
                    return Err(self.err(
                        f.at,
                        format!("regex {re:?} is not a regular expression: {e}"),
                    ));
                }
                specific.push(("expect_body_regex".into(), Value::str(re)));
            }
            _ => self.unconverted(f, "url"),
        }
        Ok(())
    }

    /// A MISC_CHECK's command.
    fn exec_check(&mut self, c: &Item, s: CheckerSettings) -> Converted<Entries> {
        let Some(cmd) = s.command else {
            return Err(self.err(c.at, "MISC_CHECK needs misc_path"));
        };
        let mut specific: Entries = vec![(
            "command".into(),
            Value::List(cmd.into_iter().map(Value::Str).collect()),
        )];
        if s.dynamic {
            specific.push(("weight_from_exit".into(), Value::Bool(true)));
        }
        Ok(specific)
    }

    /// A UDP_CHECK's payload and the reply it requires.
    fn udp_check(&mut self, s: CheckerSettings) -> Converted<Entries> {
        let mut specific: Entries = Vec::new();
        if let Some((hex, at)) = s.payload {
            match decode_hex(&hex) {
                // Text stays readable; anything else goes as hex.
                Some(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => specific.push(("payload".into(), Value::str(text))),
                    Err(e) => {
                        specific.push(("payload_hex".into(), Value::str(to_hex(e.as_bytes()))))
                    }
                },
                None => return Err(self.err(at, "payload: not hexadecimal")),
            }
        }
        let reply = s.reply_data.and_then(|(hex, at)| match decode_hex(&hex) {
            Some(bytes) if !bytes.is_empty() => {
                self.warn(at, "require_reply with data: lbd requires the reply to start with all of it (keepalived also accepts a shorter reply that matches as far as it goes)");
                Some(bytes)
            }
            _ => {
                self.warn(at, "require_reply data with a mask: lbd compares whole bytes (expect_hex); only a reply is required");
                None
            }
        });
        match reply {
            Some(bytes) => specific.push(("expect_hex".into(), Value::str(to_hex(&bytes)))),
            None if s.require_reply => specific.push(("expect_reply".into(), Value::Bool(true))),
            None => {}
        }
        Ok(specific)
    }
}

/// A command line into words: spaces separate, single quotes group (keepalived's rule).
fn split_command(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Bytes as lower-case hex digits, two a byte.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// keepalived's free-form hex ("Ab12f 3 456": pairs, a lone digit before a space is one byte).
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for group in text.split_whitespace() {
        let digits: Vec<u8> = group
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()?;
        for chunk in digits.chunks(2) {
            out.push(match chunk {
                [a, b] => a << 4 | b,
                [a] => *a,
                _ => unreachable!("chunks(2)"),
            });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_hex() {
        assert_eq!(
            split_command("/bin/chk -a 'b c' d"),
            ["/bin/chk", "-a", "b c", "d"]
        );
        assert_eq!(
            decode_hex("Ab12f 3 456"),
            Some(vec![0xab, 0x12, 0x0f, 0x03, 0x45, 0x06])
        );
        assert_eq!(decode_hex("zz"), None);
    }
}
