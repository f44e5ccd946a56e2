//! Who is calling and what they may do: the role each endpoint needs, the caller as the kernel
//! (Unix socket: `SO_PEERCRED`) or the TLS handshake (a client certificate verified against
//! `[node.api.tls] client_ca_pem`) vouches for it, and the audit trail of what callers change.
//!
//! Roles are ordered: reader < operator < admin, and `none` may do nothing. The role of a
//! caller is looked up again at every request from the config lbd runs, so a reload that
//! changes `[node.api]` applies to the next request.

use crate::config::{ApiAccess, Role};
use crate::logging::AUDIT_TARGET;
use std::fmt;
use std::net::SocketAddr;

/// The endpoints, the role each needs, and what each does (for `GET /` and `GET /whoami`).
pub const ENDPOINTS: &[(&str, &str, Role, &str)] = &[
    ("GET", "/", Role::Reader, "GET / (this list)"),
    ("GET", "/status", Role::Reader, "GET /status"),
    ("GET", "/metrics", Role::Reader, "GET /metrics"),
    (
        "GET",
        "/events",
        Role::Reader,
        "GET /events?since=SEQ&max=N",
    ),
    ("GET", "/whoami", Role::Reader, "GET /whoami"),
    ("POST", "/reload", Role::Operator, "POST /reload"),
    (
        "POST",
        "/drain",
        Role::Operator,
        "POST /drain?real=ADDR[:PORT][&service=NAME]",
    ),
    (
        "POST",
        "/undrain",
        Role::Operator,
        "POST /undrain?real=ADDR[:PORT][&service=NAME]",
    ),
];

/// The role a request needs. A request no endpoint takes needs the least role (reader), so
/// it gets its 404 or 405; a method that is not GET or HEAD on a known path needs the role of
/// that path's changing endpoint, so probing a state-changing path is refused and audited
/// like using it.
pub fn needed(method: &str, path: &str) -> Role {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let on_path = ENDPOINTS.iter().filter(|(_, p, _, _)| *p == path);
    if let Some((_, _, role, _)) = on_path.clone().find(|(m, _, _, _)| *m == method) {
        return *role;
    }
    if method == "GET" || method == "HEAD" {
        return Role::Reader;
    }
    on_path.map(|(_, _, r, _)| *r).max().unwrap_or(Role::Reader)
}

/// Whether a request may change the balancer's state (and so is audited whatever its outcome).
pub fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD")
}

/// What `role` may call, as `GET /status`... lines.
pub fn allowed(role: Role) -> Vec<&'static str> {
    ENDPOINTS
        .iter()
        .filter(|(_, _, needed, _)| role.may(*needed))
        .map(|(_, _, _, text)| *text)
        .collect()
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// On the Unix socket: the kernel's credentials of the connecting process.
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    /// Over TCP: the client certificate, verified against the client CA in the handshake.
    Tls {
        /// The certificate's subject, RFC 4514 style (`CN=alice,O=ops`).
        subject: String,
        /// Its subject CNs and its DNS, email and URI subject alternative names.
        names: Vec<String>,
        peer: SocketAddr,
    },
}

impl Caller {
    /// The caller's role under `access`.
    pub fn role(&self, access: &ApiAccess) -> Role {
        match self {
            Caller::Unix { uid, gid, .. } => access.unix_role(*uid, *gid),
            Caller::Tls { names, .. } => access.tls_role(names.iter().map(String::as_str)),
        }
    }

    /// The caller from a verified client certificate (DER).
    pub fn from_certificate(der: &[u8], peer: SocketAddr) -> Result<Caller, String> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("the client certificate does not parse: {e}"))?;
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(String::from)
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        names.push((*s).to_string())
                    }
                    _ => {}
                }
            }
        }
        names.dedup();
        Ok(Caller::Tls {
            subject: cert.subject().to_string(),
            names,
            peer,
        })
    }

    /// How the caller reached lbd: `unix`, or `tls from ADDR:PORT`.
    pub fn via(&self) -> String {
        match self {
            Caller::Unix { .. } => "unix".into(),
            Caller::Tls { peer, .. } => format!("tls from {peer}"),
        }
    }
}

/// Who the caller is, as audit events and `GET /whoami` name it: `uid=0 gid=0 pid=42` or the
/// certificate's subject.
impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Caller::Unix { uid, gid, pid } => {
                write!(f, "uid={uid} gid={gid}")?;
                if let Some(p) = pid {
                    write!(f, " pid={p}")?;
                }
                Ok(())
            }
            Caller::Tls { subject, .. } => f.write_str(subject),
        }
    }
}

/// Records one audit event: who (`who`, reached `via`, with `role`) asked for `action`, and
/// the outcome. A refusal is a warning, everything else information; both go to the event
/// ring and remote syslog whatever the log level (see [`crate::logging::AUDIT_TARGET`]).
pub fn audit(who: &str, via: &str, role: Role, action: &str, outcome: &str, refused: bool) {
    let role = role.name();
    if refused {
        tracing::warn!(
            target: AUDIT_TARGET,
            who,
            via,
            role,
            action,
            outcome,
            "audit: {who} ({role}, {via}) {action}: {outcome}"
        );
    } else {
        tracing::info!(
            target: AUDIT_TARGET,
            who,
            via,
            role,
            action,
            outcome,
            "audit: {who} ({role}, {via}) {action}: {outcome}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiTls;

    #[test]
    fn roles_by_endpoint() {
        assert_eq!(needed("GET", "/status"), Role::Reader);
        assert_eq!(needed("GET", "/"), Role::Reader);
        assert_eq!(needed("GET", "/nope"), Role::Reader, "answered 404");
        assert_eq!(needed("POST", "/drain"), Role::Operator);
        assert_eq!(needed("POST", "/undrain/"), Role::Operator);
        assert_eq!(needed("DELETE", "/reload"), Role::Operator, "answered 405");
        assert_eq!(needed("POST", "/status"), Role::Reader, "answered 405");
        assert!(changes_state("POST") && !changes_state("GET"));
        assert!(allowed(Role::Reader).contains(&"GET /status"));
        assert!(!allowed(Role::Reader).contains(&"POST /reload"));
        assert_eq!(allowed(Role::Admin).len(), ENDPOINTS.len());
        assert!(allowed(Role::Denied).is_empty());
    }

    #[test]
    fn unix_roles_from_credentials() {
        let mut a = ApiAccess::default();
        assert_eq!(a.unix_role(0, 0), Role::Admin, "root is admin by default");
        assert_eq!(a.unix_role(1000, 1000), Role::Reader, "the default role");
        a.gids.insert(50, Role::Operator);
        a.uids.insert(1001, Role::Denied);
        a.uids.insert(0, Role::Reader);
        assert_eq!(a.unix_role(1000, 50), Role::Operator, "by gid");
        assert_eq!(a.unix_role(1001, 50), Role::Denied, "a uid entry wins");
        assert_eq!(a.unix_role(0, 0), Role::Reader, "root as configured");
        a.default_role = Role::Denied;
        assert_eq!(a.unix_role(7, 7), Role::Denied);
    }

    #[test]
    fn tls_roles_from_names() {
        let mut a = ApiAccess::default();
        assert_eq!(a.tls_role(["alice"]), Role::Reader);
        a.tls = Some(ApiTls {
            cert_pem: String::new(),
            key_pem: crate::config::Secret::new(""),
            client_ca_pem: String::new(),
            clients: [
                ("alice".to_string(), Role::Admin),
                ("ops.example.net".to_string(), Role::Operator),
            ]
            .into(),
        });
        assert_eq!(a.tls_role(["ops.example.net"]), Role::Operator);
        assert_eq!(
            a.tls_role(["ops.example.net", "alice"]),
            Role::Admin,
            "the highest of its names"
        );
        assert_eq!(a.tls_role(["bob"]), Role::Reader);
    }
}
