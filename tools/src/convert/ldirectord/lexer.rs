//! Stage 1 of the ldirectord converter: the file's lines into global settings and `virtual=`
//! sections, with the addresses, ports and service names they hold.

use super::{settings, Converted, Converter};
use crate::convert::Loc;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A `key = value` line.
#[derive(Clone, Debug)]
pub(super) struct Setting {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) at: Loc,
}

/// A virtual service: an address and port, or a firewall mark (and whether it is IPv6).
#[derive(Clone, Debug)]
pub(super) enum VKey {
    Addr(IpAddr, u16),
    Fwmark(u32, bool),
}

/// A `virtual=` section.
#[derive(Clone, Debug)]
pub(super) struct Section {
    pub(super) at: Loc,
    /// The `virtual=` line, trimmed.
    pub(super) head: String,
    pub(super) key: VKey,
    pub(super) reals: Vec<Setting>,
    /// Last value of each other setting.
    pub(super) settings: BTreeMap<String, Setting>,
}

/// The file as read.
#[derive(Default)]
pub(super) struct File {
    /// Last value of each global setting.
    pub(super) globals: BTreeMap<String, Setting>,
    /// Global settings in file order, for warnings about each.
    pub(super) global_lines: Vec<Setting>,
    pub(super) sections: Vec<Section>,
}

/// Port numbers of the service names ldirectord configs use (from /etc/services).
pub(super) fn port_by_name(name: &str) -> Option<u16> {
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
pub(super) fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

impl Converter<'_> {
    /// A `key = value` line.
    fn setting(&self, text: &str, at: Loc) -> Converted<Setting> {
        // ldirectord takes a bare `supervised` (with a warning to write `= yes`).
        if text.trim() == "supervised" {
            return Ok(Setting {
                key: "supervised".into(),
                value: "yes".into(),
                at,
            });
        }
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
    pub(super) fn read(&mut self, text: &str) -> Converted<File> {
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
                if !settings::known("virtual", &s.key) {
                    return Err(self.err(
                        at,
                        if settings::known("global", &s.key) {
                            format!("`{}` is a global setting: ldirectord refuses it in a virtual section (write it unindented)", s.key)
                        } else {
                            format!("unknown setting `{}` in a virtual section", s.key)
                        },
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
                k if settings::known("global", k) => {
                    f.global_lines.push(s.clone());
                    f.globals.insert(s.key.clone(), s);
                }
                other if settings::known("virtual", other) => {
                    return Err(self.err(at, format!("`{other}` is a setting of a virtual section: ldirectord refuses it among the global settings (indent it under a virtual= line)")));
                }
                other => {
                    return Err(self.err(at, format!("unknown setting `{other}`")));
                }
            }
        }
        Ok(f)
    }

    /// A port number or a service name.
    fn port(&self, text: &str, at: Loc) -> Converted<u16> {
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

    /// An address of the family `v6` says (brackets allowed; host names are not resolved).
    pub(super) fn host(&self, text: &str, v6: bool, at: Loc) -> Converted<IpAddr> {
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
    fn virtual_key(&self, s: &Setting) -> Converted<VKey> {
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
    pub(super) fn host_port<'t>(&self, v: &'t str, at: Loc) -> Converted<(&'t str, Option<u16>)> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(strip_comment("a = 1 # x"), "a = 1 ");
        assert_eq!(strip_comment("a = \"#x\" # y"), "a = \"#x\" ");
        assert_eq!(unquote(" \"x y\" "), "x y");
        assert_eq!(port_by_name("http"), Some(80));
    }
}
