//! Health checkers of a real server (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `SMTP_CHECK`,
//! `DNS_CHECK`, `MISC_CHECK`, `UDP_CHECK`), and the check settings virtual and real servers pass
//! down to them.

use super::{Cx, Item, R};
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

impl Cx<'_> {
    /// Inherited check settings; false when `c` is not one.
    pub(super) fn check_default(&mut self, c: &Item, d: &mut CheckDefaults) -> R<bool> {
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
            "delay_loop" => d.delay_loop = Some(self.timer(c, 0)?),
            "virtualhost" => d.virtualhost = Some(self.arg(c, 0, "a host name")?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One checker block as an inline check table; None when lbd has no such check.
    pub(super) fn checker(&mut self, c: &Item, inherited: &CheckDefaults) -> R<Option<Entries>> {
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
            "PING_CHECK" => {
                self.warn(c.at, "PING_CHECK has no equivalent in lbd (no ICMP checks): the real has no check and is always up");
                return None;
            }
            other => {
                self.warn(
                    c.at,
                    format!("{other} has no equivalent in lbd: the real has no check from it"),
                );
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
    ) -> R<CheckerSettings<'i>> {
        let mut s = CheckerSettings {
            d: inherited.clone(),
            port: None,
            connect_ip: None,
            bindto: None,
            urls: Vec::new(),
            sni: false,
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
                "bind_port" | "bind_if" | "fwmark" => self.ignore(o, "checks leave from an ephemeral port of the address the kernel picks (or source_address)"),
                "url" if matches!(kind, "http" | "https") => s.urls.push(o),
                "enable_sni" if kind == "https" => s.sni = self.boolean(o, 0)?,
                "http_protocol" => self.ignore(o, "lbd's HTTP checks send HTTP/1.1 with Connection: close"),
                // Deprecated, and only known inside HTTP_GET and SSL_GET.
                "nb_get_retry" if matches!(kind, "http" | "https") => {
                    s.d.retry = Some(self.int(o, 0, 0, 99, "a retry count")? as u32)
                }
                "fast_recovery" => self.ignore(o, ""),
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
                "user" => self.ignore(o, "lbd runs check commands as itself"),
                "type" if kind == "dns" => s.dns_type = Some(self.arg(o, 0, "a query type")?.to_ascii_uppercase()),
                "name" if kind == "dns" => s.dns_name = Some(self.arg(o, 0, "a name")?.to_string()),
                "helo_name" if kind == "smtp" => s.helo = Some(self.arg(o, 0, "a name")?.to_string()),
                "host" if kind == "smtp" => self.smtp_host(o, &mut s)?,
                "payload" if kind == "udp" => s.payload = Some((o.args.concat(), o.at)),
                "require_reply" if kind == "udp" => {
                    s.require_reply = true;
                    if !o.args.is_empty() {
                        s.reply_data = Some((o.args.concat(), o.at));
                    }
                }
                "min_reply_length" | "max_reply_length" => self.ignore(o, "lbd checks the start of the reply (expect_hex), not its length"),
                "log_all_failures" | "alpha" => self.ignore(o, ""),
                _ => {
                    if !self.check_default(o, &mut s.d)? {
                        self.ignore(o, "");
                    }
                }
            }
        }
        Ok(s)
    }

    /// Old SMTP_CHECK syntax: one or more host { connect_ip ... } blocks.
    fn smtp_host(&mut self, o: &Item, s: &mut CheckerSettings) -> R<()> {
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
                _ => self.ignore(h, ""),
            }
        }
        Ok(())
    }

    /// Interval, timeout, rise, fall, retry delay and warmup, with keepalived's defaults.
    fn check_timing(&mut self, c: &Item, kind: &str, s: &CheckerSettings, e: &mut Entries) {
        let d = &s.d;
        let interval = d.delay_loop.unwrap_or(Duration::from_secs(60));
        let timeout = match kind {
            "exec" => s.misc_timeout.or(d.connect_timeout).unwrap_or(interval),
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
        e.push(("interval".into(), Value::duration(interval)));
        e.push(("timeout".into(), Value::duration(timeout)));
        e.push(("rise".into(), Value::Int(1)));
        e.push(("fall".into(), Value::Int(i64::from(retry) + 1)));
        e.push(("retry_delay".into(), Value::duration(retry_delay)));
        if let Some(w) = d.warmup {
            self.warn(c.at, "warmup: keepalived waits a random time up to it before the first check; lbd waits exactly that long");
            e.push(("warmup".into(), Value::duration(w)));
        }
    }

    /// An HTTP_GET's or SSL_GET's request and expectations, from its first url.
    fn http_check(&mut self, c: &Item, s: &CheckerSettings) -> R<Entries> {
        let mut specific: Entries = Vec::new();
        let mut host = s.d.virtualhost.clone();
        if let Some(u) = s.urls.first() {
            for f in u.children() {
                self.url_setting(f, &mut specific, &mut host)?;
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
        if let Some(h) = host {
            specific.insert(1.min(specific.len()), ("host".into(), Value::str(&h)));
            if s.sni {
                specific.push(("sni".into(), Value::str(h)));
            }
        }
        Ok(specific)
    }

    /// One setting of a `url` block.
    fn url_setting(
        &mut self,
        f: &Item,
        specific: &mut Entries,
        host: &mut Option<String>,
    ) -> R<()> {
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
            "regex_no_match" => self.ignore(f, "lbd's body match must match"),
            _ => self.ignore(f, ""),
        }
        Ok(())
    }

    /// A MISC_CHECK's command.
    fn exec_check(&mut self, c: &Item, s: CheckerSettings) -> R<Entries> {
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
    fn udp_check(&mut self, s: CheckerSettings) -> R<Entries> {
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
