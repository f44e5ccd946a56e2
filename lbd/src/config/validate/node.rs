//! The `[node]` section: the box's host name, sysctls, remote syslog, the control API (its
//! listener, roles and TLS) and the VRRP thread's real-time priority.

use super::{valid_hostname, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use toml::Spanned;

impl Validator {
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
