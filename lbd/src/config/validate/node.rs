//! The `[node]` section: the box's host name, sysctls, remote syslog, the control API (its
//! listener, roles and TLS) and the VRRP thread's real-time priority.

use super::{valid_hostname, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use toml::Spanned;

impl Validator {
    /// `[release]`: serial, node (a MAC or a host name), not_after (a date-time with offset).
    pub(super) fn release(&mut self, r: ReleaseSchema) -> Option<Release> {
        let serial = *r.serial.get_ref();
        let serial = match u64::try_from(serial) {
            Ok(s) => s,
            Err(_) => {
                self.err(
                    "out-of-range",
                    r.serial.span(),
                    format!("serial {serial} is negative"),
                )
                .help = Some("a serial counts up from 0: e.g. the date, 2026120601".into());
                return None;
            }
        };
        let node = r.node.get_ref().clone();
        if crate::config::network::parse_mac(&node).is_err() && !valid_hostname(&node) {
            self.err(
                "bad-release-node",
                r.node.span(),
                format!("{node:?} is neither a MAC address nor a host name"),
            )
            .help = Some(
                "name the node this config is for: its MAC (\"52:54:00:12:34:56\") or its host name"
                    .into(),
            );
            return None;
        }
        let not_after = match r.not_after {
            None => None,
            Some(at) => match epoch_seconds(at.get_ref()) {
                Some(secs) => Some(secs),
                None => {
                    self.err(
                        "bad-not-after",
                        at.span(),
                        format!("not_after {} has no date, time and offset", at.get_ref()),
                    )
                    .help =
                        Some("write a full date-time with its offset: 2027-01-31T00:00:00Z".into());
                    return None;
                }
            },
        };
        Some(Release {
            serial,
            node,
            not_after,
        })
    }

    pub(super) fn node(&mut self, n: NodeSchema) -> Node {
        let mut node = Node {
            log_level: n.log_level.unwrap_or_default(),
            ..Node::default()
        };
        if let Some(h) = n.hostname {
            if valid_hostname(h.get_ref()) {
                node.hostname = Some(h.get_ref().clone());
            } else {
                self.err(
                    "bad-hostname",
                    h.span(),
                    format!("invalid host name {:?}", h.get_ref()),
                )
                .help = Some(
                    "use letters, digits and '-', dot-separated labels of at most 63 characters"
                        .into(),
                );
            }
        }
        // In source order, so a second spelling of one sysctl is the one pointed at.
        let mut sysctls: Vec<_> = n.sysctl.into_iter().collect();
        sysctls.sort_by_key(|(k, _)| k.span().start);
        let mut spelled: HashMap<String, Spanned<String>> = HashMap::new();
        for (k, v) in sysctls {
            let key = k.get_ref();
            if key.is_empty()
                || key.starts_with('.')
                || key.contains("..")
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
            {
                self.err(
                    "bad-sysctl",
                    k.span(),
                    format!("invalid sysctl name {key:?}"),
                )
                .help = Some("write the dotted name, e.g. \"net.ipv4.ip_forward\"".into());
                continue;
            }
            let dotted = key.replace('/', ".");
            if let Some(first) = spelled.get(&dotted) {
                self.err(
                    "duplicate-sysctl",
                    k.span(),
                    format!(
                        "{key:?} and {:?} are the same sysctl, {dotted}",
                        first.get_ref()
                    ),
                )
                .and_related(first.span(), "first set here")
                .and_help("`/` and `.` both separate the parts of a name: keep one of them");
                continue;
            }
            spelled.insert(dotted.clone(), k.clone());
            node.sysctls.insert(dotted, v.get_ref().render());
        }
        if let Some(s) = n.syslog {
            let protocol = match s
                .protocol
                .as_ref()
                .map(|p| p.get_ref().to_ascii_lowercase())
            {
                None => Some(SyslogProtocol::Udp),
                Some(p) if p == "udp" => Some(SyslogProtocol::Udp),
                Some(p) if p == "tcp" => Some(SyslogProtocol::Tcp),
                Some(p) => {
                    let span = s.protocol.as_ref().map(|x| x.span()).unwrap_or(0..0);
                    self.err("bad-syslog", span, format!("unknown syslog protocol {p:?}"))
                        .help = Some("use \"udp\" or \"tcp\"".into());
                    None
                }
            };
            if let Some(protocol) = protocol {
                node.syslog = Some(Syslog {
                    server: s.server.get_ref().socket_addr(514),
                    protocol,
                });
            }
        }
        let api = n.api.unwrap_or_default();
        let tls_span = api.tls.as_ref().map(|t| t.cert_pem.span());
        node.api = self.api_access(api);
        if let Some(listen) = n.api_listen {
            match listen.get_ref().port {
                Some(p) => node.api_listen = Some(SocketAddr::new(listen.get_ref().ip, p)),
                None => {
                    self.err("missing-port", listen.span(), "api_listen needs a port")
                        .help = Some("e.g. api_listen = \"192.0.2.2:9900\"".into());
                }
            }
            if tls_span.is_none() {
                self.err(
                    "api-without-tls",
                    listen.span(),
                    "api_listen without [node.api.tls]: the control API is served over TCP with mutual TLS only",
                )
                .help = Some(
                    "add [node.api.tls] with cert_pem, key_pem and client_ca_pem (see \"[node.api.tls]\" in lbd/CONFIG.md), or remove api_listen and use the Unix socket"
                        .into(),
                );
            }
        } else if let Some(span) = tls_span {
            self.warn(
                "unused-key",
                span,
                "[node.api.tls] has no effect without api_listen: the Unix socket does not use TLS",
            )
            .help = Some(
                "set [node] api_listen to serve the API over TCP, or remove [node.api.tls]".into(),
            );
        }
        if let Some(p) = n.vrrp_realtime_priority {
            match u8::try_from(*p.get_ref()) {
                Ok(v) if v <= 99 => node.vrrp_realtime_priority = Some(v),
                _ => {
                    self.err(
                        "bad-realtime-priority",
                        p.span(),
                        format!("vrrp_realtime_priority {} is outside 0–99", p.get_ref()),
                    )
                    .help = Some(
                        "SCHED_FIFO priorities are 1 to 99; 0 runs the VRRP thread as a normal one"
                            .into(),
                    );
                }
            }
        }
        node
    }

    /// `[node.api]`: the roles of Unix socket callers and TLS clients, and the TLS material.
    fn api_access(&mut self, api: ApiSchema) -> ApiAccess {
        let mut access = ApiAccess {
            default_role: api.default_role.map(|r| *r.get_ref()).unwrap_or_default(),
            ..ApiAccess::default()
        };
        for (which, map, out) in [
            ("uid", api.uid, &mut access.uids),
            ("gid", api.gid, &mut access.gids),
        ] {
            for (id, role) in map {
                match id.get_ref().parse::<u32>() {
                    // u32::MAX is the kernel's "no id" (-1), never a caller's.
                    Ok(n) if n != u32::MAX => {
                        out.insert(n, *role.get_ref());
                    }
                    _ => {
                        self.err(
                            "bad-uid",
                            id.span(),
                            format!("[node.api.{which}] key {:?} is not a {which}", id.get_ref()),
                        )
                        .help = Some(
                            "write the number, 0 to 4294967294 (the box has no user database to look names up in), e.g. 1000 = \"operator\""
                        .into());
                    }
                }
            }
        }
        if let Some(t) = api.tls {
            let cert = crate::config::pem::certificate_chain("cert_pem", t.cert_pem.get_ref());
            if let Err(e) = &cert {
                self.err("bad-pem", t.cert_pem.span(), format!("cert_pem: {e}"))
                    .help = Some("paste lbd's certificate (then any intermediate CA certificates) as a multi-line string: cert_pem = \"\"\"\n-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n\"\"\"".into());
            }
            let key = crate::config::pem::private_key("key_pem", t.key_pem.get_ref());
            if let Err(e) = &key {
                self.err("bad-key", t.key_pem.span(), format!("key_pem: {e}"))
                    .help = Some("paste the private key of cert_pem's certificate as a multi-line string: key_pem = \"\"\"\n-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n\"\"\"".into());
            }
            let ca =
                crate::config::pem::ca_certificates_of("client_ca_pem", t.client_ca_pem.get_ref());
            if let Err(e) = &ca {
                self.err("bad-pem", t.client_ca_pem.span(), format!("client_ca_pem: {e}"))
                    .help = Some("paste the certificate of the CA that signs the clients' certificates: client_ca_pem = \"\"\"\n-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n\"\"\"".into());
            }
            let mut clients = std::collections::BTreeMap::new();
            for (name, role) in t.clients {
                if name.get_ref().trim().is_empty() {
                    self.err("invalid-value", name.span(), "an empty client name matches no certificate")
                        .help = Some("write the certificate's subject CN or a subject alternative name, e.g. \"ops@example.net\" = \"operator\"".into());
                    continue;
                }
                clients.insert(name.get_ref().clone(), *role.get_ref());
            }
            if cert.is_ok() && key.is_ok() && ca.is_ok() {
                access.tls = Some(ApiTls {
                    cert_pem: t.cert_pem.into_inner(),
                    key_pem: crate::config::Secret::new(t.key_pem.into_inner()),
                    client_ca_pem: t.client_ca_pem.into_inner(),
                    clients,
                });
            }
        }
        access
    }
}

/// Seconds since the epoch of a TOML offset date-time; `None` for a local date or time.
pub fn epoch_seconds(at: &toml::value::Datetime) -> Option<u64> {
    let date = at.date?;
    let time = at.time?;
    let offset_minutes: i64 = match at.offset? {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => minutes as i64,
    };
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let (y, m, d) = (date.year as i64, date.month as i64, date.day as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400
        + time.hour as i64 * 3600
        + time.minute as i64 * 60
        + time.second.unwrap_or(0) as i64
        - offset_minutes * 60;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod release_tests {
    use super::epoch_seconds;

    #[test]
    fn offset_date_times_become_epoch_seconds() {
        let at = |s: &str| epoch_seconds(&s.parse().unwrap());
        assert_eq!(at("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(at("2026-12-06T10:00:00Z"), Some(1_796_551_200));
        assert_eq!(at("2026-12-06T11:00:00+01:00"), Some(1_796_551_200));
        assert_eq!(at("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(at("2026-12-06"), None);
        assert_eq!(at("2026-12-06T10:00:00"), None);
    }
}
