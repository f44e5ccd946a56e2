//! The checkers: one [`Probe`] per real, built once from the config, run again at every check.
//! Each run is bounded by the check's timeout and returns an [`Outcome`] with a reason.
//!
//! Sockets are closed with an RST (SO_LINGER 0) once the check has its answer, so thousands of
//! checks per second leave no TIME_WAIT entries on the balancer (HAProxy does the same).

mod exec;
mod http;
mod smtp;
mod sql;
mod tls;
mod udp;

use super::failure::{Failure, Outcome};
use super::proto::http::{BodyRules, Exchange};
use crate::config::{Check, CheckKind, Real, SqlLogin};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream};

/// Why a probe cannot be built from a (validated) config.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("service {service}, real {real}: invalid TLS server name {name:?} for SNI")]
    ServerName {
        service: String,
        real: SocketAddr,
        name: String,
    },
    #[error("service {service}, real {real}: invalid body regex: {source}")]
    Regex {
        service: String,
        real: SocketAddr,
        #[source]
        source: regex_lite::Error,
    },
    #[error("service {service}, real {real}: DNS query {name:?}: {source}")]
    DnsName {
        service: String,
        real: SocketAddr,
        name: String,
        #[source]
        source: super::proto::dns::NameError,
    },
    #[error("service {service}, real {real}: ca_pem: {reason}")]
    CaPem {
        service: String,
        real: SocketAddr,
        reason: String,
    },
    #[error("service {service}, real {real}: unknown DNS query type {qtype:?}")]
    QueryType {
        service: String,
        real: SocketAddr,
        qtype: String,
    },
}

/// What the check of one real does.
#[derive(Clone, Debug)]
pub struct Probe {
    pub service: String,
    /// The real as configured.
    pub real: SocketAddr,
    /// Where the check connects: the real, or `connect_address` / `port` when set.
    pub target: SocketAddr,
    pub source: Option<IpAddr>,
    pub timeout: Duration,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Tcp,
    Http(Arc<HttpProbe>),
    Udp {
        payload: Vec<u8>,
        expect_reply: bool,
        expect_prefix: Option<Vec<u8>>,
    },
    Dns {
        name: String,
        qtype: u16,
    },
    Smtp {
        helo: String,
    },
    Exec {
        command: Arc<Vec<String>>,
        weight_from_exit: bool,
    },
    Mysql(Arc<SqlLogin>),
    Pgsql(Arc<sql::PgsqlLogin>),
}

#[derive(Debug)]
struct HttpProbe {
    exchange: Arc<Exchange>,
    tls: Option<tls::TlsTarget>,
}

impl Probe {
    /// The probe for `real` of `service` checked by `check`.
    pub fn new(service: &str, real: &Real, check: &Check) -> Result<Probe, ProbeError> {
        let target = SocketAddr::new(
            check.connect_address.unwrap_or(real.addr.ip()),
            check.port.unwrap_or(real.addr.port()),
        );
        let verify = tls::Verify::of(check).map_err(|reason| ProbeError::CaPem {
            service: service.into(),
            real: real.addr,
            reason,
        })?;
        let kind = match &check.kind {
            CheckKind::Tcp { .. } => Kind::Tcp,
            CheckKind::Http(h) | CheckKind::Https(h) => {
                // Host header: `host`, else the SNI name (a name-based virtual server is
                // chosen by Host after the handshake), else the address checked.
                let host = h
                    .host
                    .clone()
                    .or_else(|| {
                        h.sni
                            .clone()
                            .filter(|_| matches!(check.kind, CheckKind::Https(_)))
                    })
                    .unwrap_or_else(|| target.to_string());
                let tls = match &check.kind {
                    CheckKind::Https(_) => {
                        let name = h
                            .sni
                            .clone()
                            .or_else(|| h.host.as_deref().map(host_without_port))
                            .unwrap_or_else(|| target.ip().to_string());
                        Some(tls::TlsTarget::new(&name, verify).ok_or_else(|| {
                            ProbeError::ServerName {
                                service: service.into(),
                                real: real.addr,
                                name,
                            }
                        })?)
                    }
                    _ => None,
                };
                let regex =
                    match &h.expect_body_regex {
                        Some(re) => Some(regex_lite::Regex::new(re).map_err(|source| {
                            ProbeError::Regex {
                                service: service.into(),
                                real: real.addr,
                                source,
                            }
                        })?),
                        None => None,
                    };
                Kind::Http(Arc::new(HttpProbe {
                    exchange: Arc::new(Exchange {
                        request: if h.keep_alive {
                            super::proto::http::request_keep_alive(&h.path, &host)
                        } else {
                            super::proto::http::request(&h.path, &host)
                        },
                        keep_alive: h.keep_alive,
                        expect_status: h.expect_status.clone(),
                        body: BodyRules {
                            substring: h.expect_body.clone(),
                            regex,
                            digest: h.digest.as_ref().map(|d| d.to_ascii_lowercase()),
                        },
                    }),
                    tls,
                }))
            }
            CheckKind::Udp {
                payload,
                expect_reply,
                expect_prefix,
            } => Kind::Udp {
                payload: payload.clone(),
                expect_reply: *expect_reply,
                expect_prefix: expect_prefix.clone(),
            },
            CheckKind::Dns { query, query_type } => {
                let qtype = super::proto::dns::qtype_code(query_type).ok_or_else(|| {
                    ProbeError::QueryType {
                        service: service.into(),
                        real: real.addr,
                        qtype: query_type.clone(),
                    }
                })?;
                super::proto::dns::encode_query(0, query, qtype).map_err(|source| {
                    ProbeError::DnsName {
                        service: service.into(),
                        real: real.addr,
                        name: query.clone(),
                        source,
                    }
                })?;
                Kind::Dns {
                    name: query.clone(),
                    qtype,
                }
            }
            CheckKind::Smtp { helo_name } => Kind::Smtp {
                helo: helo_name.clone(),
            },
            CheckKind::Exec {
                command,
                weight_from_exit,
            } => Kind::Exec {
                command: Arc::new(command.clone()),
                weight_from_exit: *weight_from_exit,
            },
            CheckKind::Mysql(login) => Kind::Mysql(Arc::new(login.clone())),
            CheckKind::Pgsql(login) => Kind::Pgsql(Arc::new(sql::PgsqlLogin::new(login))),
        };
        Ok(Probe {
            service: service.to_string(),
            real: real.addr,
            target,
            source: check.source_address,
            timeout: check.timeout,
            kind,
        })
    }

    /// The request and expectations of a plain HTTP check (not HTTPS), which the engine runs
    /// on the [`Connector`](super::connect::Connector)'s sockets rather than as a future.
    pub fn plain_http(&self) -> Option<&Arc<Exchange>> {
        match &self.kind {
            Kind::Http(h) if h.tls.is_none() => Some(&h.exchange),
            _ => None,
        }
    }

    /// Runs the check once, within its timeout.
    pub async fn run(&self) -> Outcome {
        // Plain HTTP runs on a connector, as in the engine (one implementation of it), which
        // keeps the deadline itself and says what the run was waiting for.
        if let Some(exchange) = self.plain_http() {
            return super::connect::run_once(
                self.target,
                self.source,
                self.timeout,
                Some(exchange.clone()),
                super::engine::START_TICK,
            )
            .await;
        }
        let progress = Progress::default();
        match tokio::time::timeout(self.timeout, self.run_unbounded(&progress)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Down(Failure::Timeout {
                after: self.timeout,
                during: progress.get().describe(),
            }),
        }
    }

    /// The checkers other than TCP are boxed: a check task lives as long as its real, and an
    /// async state machine is as large as its largest state (a TLS connection is kilobytes),
    /// so ten thousand sleeping TCP checks would otherwise each carry an HTTPS-sized future.
    async fn run_unbounded(&self, p: &Progress) -> Outcome {
        match &self.kind {
            Kind::Tcp => self.connect(p).await.map(drop).into(),
            Kind::Http(h) => Box::pin(http::run(self, h, p)).await.into(),
            Kind::Udp {
                payload,
                expect_reply,
                expect_prefix,
            } => Box::pin(udp::run_udp(self, payload, *expect_reply, expect_prefix, p))
                .await
                .into(),
            Kind::Dns { name, qtype } => Box::pin(udp::run_dns(self, name, *qtype, p)).await.into(),
            Kind::Smtp { helo } => Box::pin(smtp::run(self, helo, p)).await.into(),
            Kind::Exec {
                command,
                weight_from_exit,
            } => Box::pin(exec::run(self, command, *weight_from_exit, p)).await,
            Kind::Mysql(login) => Box::pin(sql::mysql(self, login, p)).await.into(),
            Kind::Pgsql(login) => Box::pin(sql::pgsql(self, login, p)).await.into(),
        }
    }

    /// A TCP connection to the target, from the source address if one is set, closed with an
    /// RST when dropped.
    async fn connect(&self, p: &Progress) -> Result<TcpStream, Failure> {
        p.set(Stage::Connecting);
        let io = |e: std::io::Error| Failure::from_io(&e, "connecting");
        let sock = match self.target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(io)?;
        if let Some(src) = self.source {
            sock.bind(SocketAddr::new(src, 0))
                .map_err(|e| Failure::Bind(format!("{src}: {e}")))?;
        }
        #[allow(deprecated)]
        sock.set_linger(Some(Duration::ZERO)).map_err(io)?;
        sock.connect(self.target).await.map_err(io)
    }
}

fn host_without_port(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_string();
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            h.to_string()
        }
        _ => host.to_string(),
    }
}

/// What a check was doing, for the reason of a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    Starting,
    Connecting,
    Tls,
    Response,
    Body,
    Banner,
    Reply,
    Greeting,
    Command,
}

impl Stage {
    const ALL: [Stage; 9] = [
        Stage::Starting,
        Stage::Connecting,
        Stage::Tls,
        Stage::Response,
        Stage::Body,
        Stage::Banner,
        Stage::Reply,
        Stage::Greeting,
        Stage::Command,
    ];

    fn describe(self) -> &'static str {
        match self {
            Stage::Starting => "",
            Stage::Connecting => "connecting",
            Stage::Tls => "TLS handshake",
            Stage::Response => "waiting for the response",
            Stage::Body => "reading the body",
            Stage::Banner => "waiting for the banner",
            Stage::Reply => "waiting for a reply",
            Stage::Greeting => "waiting for the server greeting",
            Stage::Command => "waiting for the command",
        }
    }
}

#[derive(Default)]
struct Progress(AtomicU8);

impl Progress {
    fn set(&self, s: Stage) {
        self.0.store(s as u8, Ordering::Relaxed);
    }
    fn get(&self) -> Stage {
        Stage::ALL
            .get(self.0.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(Stage::Starting)
    }
}

/// Reads more bytes into `buf`; the peer closing is `Closed(when)`.
async fn read_some<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    when: &str,
) -> Result<(), Failure> {
    buf.reserve(4096);
    match s.read_buf(buf).await {
        Ok(0) => Err(Failure::Closed(when.to_string())),
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::from_io(&e, when)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_run_future_is_small() {
        let c = crate::config::parse(
            "t.toml",
            "[service.s]\nfwmark = 1\nscheduler = \"rr\"\nforwarding = \"dr\"\ncheck = { type = \"https\" }\n[[service.s.real]]\naddress = \"10.0.0.1:443\"\n",
        )
        .unwrap()
        .config;
        let real = &c.services["s"].reals[0];
        let probe = Probe::new("s", real, real.check.as_ref().unwrap()).unwrap();
        let size = std::mem::size_of_val(&probe.run());
        assert!(size < 512, "a check run future takes {size} bytes");
    }

    #[test]
    fn host_header_to_server_name() {
        assert_eq!(host_without_port("www.example.org"), "www.example.org");
        assert_eq!(host_without_port("www.example.org:8443"), "www.example.org");
        assert_eq!(host_without_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(host_without_port("2001:db8::1"), "2001:db8::1");
    }
}
