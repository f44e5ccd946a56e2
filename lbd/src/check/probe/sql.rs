//! MySQL/MariaDB and PostgreSQL checks: a real login handshake, as ldirectord's checks do.
//!
//! With a `user`, the login must succeed (with an empty password: give the check's user
//! passwordless access from the balancer, e.g. `trust` in pg_hba.conf). Without one, the check
//! logs in as `lbd-check` and a refusal of those credentials counts as up: the server runs and
//! answers; errors such as "too many connections" or "starting up" are down. Completing the
//! login instead of hanging up after the greeting matters: MySQL blocks a host after
//! `max_connect_errors` interrupted handshakes.

use super::{read_some, Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::{mysql, pgsql};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The login used when the check names no user.
pub const DEFAULT_USER: &str = "lbd-check";

async fn write(s: &mut TcpStream, bytes: &[u8]) -> Result<(), Failure> {
    s.write_all(bytes)
        .await
        .map_err(|e| Failure::from_io(&e, "sending"))
}

async fn mysql_packet(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    when: &str,
) -> Result<(u8, Vec<u8>), Failure> {
    loop {
        if let Some((seq, payload, used)) = mysql::split_packet(buf) {
            let out = (seq, payload.to_vec());
            buf.drain(..used);
            return Ok(out);
        }
        if buf.len() > 1 << 20 {
            return Err(Failure::Protocol("MySQL packet over 1 MiB".into()));
        }
        read_some(s, buf, when).await?;
    }
}

pub(super) async fn mysql(
    p: &Probe,
    user: Option<&str>,
    database: Option<&str>,
    progress: &Progress,
) -> Result<(), Failure> {
    let proto = |e: mysql::ProtocolError| Failure::Protocol(e.to_string());
    let mut s = p.connect(progress).await?;
    progress.set(Stage::Greeting);
    let mut buf = Vec::with_capacity(256);
    let (seq, payload) = mysql_packet(&mut s, &mut buf, "before the greeting").await?;
    let greeting = mysql::parse_greeting(&payload)
        .map_err(proto)?
        .map_err(|e| Failure::Rejected(e.to_string()))?;
    progress.set(Stage::Reply);
    let login = user.unwrap_or(DEFAULT_USER);
    let response = mysql::handshake_response(&greeting, login, database);
    write(&mut s, &mysql::packet(seq.wrapping_add(1), &response)).await?;
    for _ in 0..4 {
        let (seq, payload) = mysql_packet(&mut s, &mut buf, "during the login").await?;
        match mysql::parse_auth_reply(&payload).map_err(proto)? {
            mysql::AuthReply::Ok => {
                let _ = s.write_all(&mysql::com_quit()).await;
                return Ok(());
            }
            mysql::AuthReply::Err(e) if user.is_none() && e.is_access_denied() => return Ok(()),
            mysql::AuthReply::Err(e) => return Err(Failure::Rejected(e.to_string())),
            mysql::AuthReply::Switch(plugin) => {
                // An empty password in the requested plugin's format.
                let data: &[u8] = if plugin == "mysql_clear_password" {
                    b"\0"
                } else {
                    b""
                };
                write(&mut s, &mysql::packet(seq.wrapping_add(1), data)).await?;
            }
            mysql::AuthReply::MoreData(d) => match d.first() {
                Some(3) => {} // caching_sha2_password fast auth passed; OK follows
                Some(4) if user.is_none() => return Ok(()),
                Some(4) => {
                    return Err(Failure::Rejected(format!(
                        "MySQL wants a password for user {login}; the check has none"
                    )))
                }
                _ => return Err(Failure::Protocol("unexpected MySQL auth data".into())),
            },
        }
    }
    Err(Failure::Protocol("MySQL login did not finish".into()))
}

pub(super) async fn pgsql(
    p: &Probe,
    user: Option<&str>,
    database: Option<&str>,
    progress: &Progress,
) -> Result<(), Failure> {
    let proto = |e: pgsql::ProtocolError| Failure::Protocol(e.to_string());
    let mut s = p.connect(progress).await?;
    let login = user.unwrap_or(DEFAULT_USER);
    write(&mut s, &pgsql::startup(login, database)).await?;
    progress.set(Stage::Reply);
    let mut buf = Vec::with_capacity(512);
    // A login is a handful of messages (auth, parameter statuses, key data, ready).
    for _ in 0..256 {
        let (tag, body) = loop {
            if let Some((tag, body, used)) = pgsql::split_message(&buf).map_err(proto)? {
                let out = (tag, body.to_vec());
                buf.drain(..used);
                break out;
            }
            read_some(&mut s, &mut buf, "during the login").await?;
        };
        match tag {
            b'R' => match pgsql::parse_auth(&body).map_err(proto)? {
                pgsql::AuthRequest::Ok => {}
                _ if user.is_none() => return Ok(()),
                pgsql::AuthRequest::Password(code) => {
                    return Err(Failure::Rejected(format!(
                        "PostgreSQL asks for a password for user {login} (method {code}); the check has none (trust the user in pg_hba.conf)"
                    )))
                }
                pgsql::AuthRequest::Other(code) => {
                    return Err(Failure::Rejected(format!(
                        "PostgreSQL asks for authentication method {code}, which the check cannot do"
                    )))
                }
            },
            b'E' => {
                let e = pgsql::parse_error(&body);
                if user.is_none() && e.is_credentials() {
                    return Ok(());
                }
                return Err(Failure::Rejected(e.to_string()));
            }
            b'Z' => {
                let _ = s.write_all(&pgsql::terminate()).await;
                return Ok(());
            }
            // ParameterStatus, BackendKeyData, NoticeResponse, NegotiateProtocolVersion.
            b'S' | b'K' | b'N' | b'v' => {}
            other => {
                return Err(Failure::Protocol(format!(
                    "unexpected PostgreSQL message {:?} during the login",
                    other as char
                )))
            }
        }
    }
    Err(Failure::Protocol("PostgreSQL login did not finish".into()))
}
