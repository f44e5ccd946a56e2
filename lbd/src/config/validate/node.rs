//! The `[node]` section: the box's host name, sysctls, remote syslog, API listener and the
//! VRRP thread's real-time priority.

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
        if let Some(api) = n.api_listen {
            match api.get_ref().port {
                Some(p) => node.api_listen = Some(SocketAddr::new(api.get_ref().ip, p)),
                None => {
                    self.err("missing-port", api.span(), "api_listen needs a port")
                        .help = Some("e.g. api_listen = \"192.0.2.2:9900\"".into());
                }
            }
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
}
