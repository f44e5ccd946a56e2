//! MySQL/MariaDB and PostgreSQL checks: a real login handshake, as ldirectord's checks do.
//!
//! With a `user`, the login must succeed, with the check's `password` (or an empty one):
//! MySQL's mysql_native_password and caching_sha2_password (its fast path: the server must
//! have the user cached, as it does after any earlier login; the full path needs TLS or an RSA
//! key exchange, which the check does not do), PostgreSQL's password, md5 and SCRAM-SHA-256
//! (the server's signature is verified). Cleartext passwords go only to PostgreSQL's
//! `password` method, which asks for exactly that. Without a `user`, the check logs in as
//! `lbd-check` and a refusal of those credentials counts as up: the server runs and answers;
//! errors such as "too many connections" or "starting up" are down. Completing the login
//! instead of hanging up after the greeting matters: MySQL blocks a host after
//! `max_connect_errors` interrupted handshakes.
//!
//! The password is never part of a failure reason or a log line.

use super::{read_some, Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::{base64, mysql, pgsql, scram};
use crate::config::SqlLogin;
use std::sync::Mutex;
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
    mysql_packet_within(s, buf, when, 1 << 20).await
}

/// A greeting is a few hundred bytes: a first packet that declares more is not MySQL (an
/// HTTP server's "HTTP/1.1" reads as a 5 MB packet), said at once rather than after the
/// timeout.
const MAX_GREETING: usize = 16 << 10;

async fn mysql_packet_within(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    when: &str,
    limit: usize,
) -> Result<(u8, Vec<u8>), Failure> {
    loop {
        if let Some((seq, payload, used)) = mysql::split_packet(buf) {
            let out = (seq, payload.to_vec());
            buf.drain(..used);
            return Ok(out);
        }
        if buf.len() >= 3 {
            let declared =
                usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
            if declared > limit {
                return Err(Failure::Protocol(format!(
                    "a packet of {declared} bytes {when}: not a MySQL server (a greeting is a few hundred)"
                )));
            }
        }
        read_some(s, buf, when).await?;
    }
}

/// The answer to `plugin`'s request for the password, scrambled with `nonce`.
fn mysql_auth_data(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>, Failure> {
    match plugin {
        mysql::NATIVE_PASSWORD => Ok(mysql::native_password_scramble(password.as_bytes(), nonce)),
        mysql::CACHING_SHA2_PASSWORD => {
            Ok(mysql::caching_sha2_scramble(password.as_bytes(), nonce))
        }
        // An empty password in clear text is a lone NUL; a real one is not sent over plain TCP.
        mysql::CLEAR_PASSWORD if password.is_empty() => Ok(vec![0]),
        mysql::CLEAR_PASSWORD => Err(Failure::Rejected(
            "MySQL asks for the password in clear text (mysql_clear_password); the check does not send it over an unencrypted connection".into(),
        )),
        other => Err(Failure::Rejected(format!(
            "MySQL asks for auth plugin {other}, which the check cannot do (it speaks mysql_native_password and caching_sha2_password)"
        ))),
    }
}

pub(super) async fn mysql(p: &Probe, login: &SqlLogin, progress: &Progress) -> Result<(), Failure> {
    let proto = |e: mysql::ProtocolError| Failure::Protocol(e.to_string());
    let user = login.user.as_deref();
    let password = login.password.as_ref().map_or("", |s| s.expose());
    let mut s = p.connect(progress).await?;
    progress.set(Stage::Greeting);
    let mut buf = Vec::with_capacity(256);
    let (seq, payload) =
        mysql_packet_within(&mut s, &mut buf, "before the greeting", MAX_GREETING).await?;
    let greeting = mysql::parse_greeting(&payload)
        .map_err(proto)?
        .map_err(|e| Failure::Rejected(e.to_string()))?;
    progress.set(Stage::Reply);
    let login_name = user.unwrap_or(DEFAULT_USER);
    // Answer in the server's default plugin when the check speaks it; otherwise in
    // mysql_native_password, and the server switches us to the user's plugin if it differs.
    let mut plugin = match greeting.auth_plugin.as_deref() {
        Some(pl @ (mysql::NATIVE_PASSWORD | mysql::CACHING_SHA2_PASSWORD)) => pl.to_string(),
        _ => mysql::NATIVE_PASSWORD.to_string(),
    };
    let auth = mysql_auth_data(&plugin, password, &greeting.scramble)?;
    let response = mysql::handshake_response(
        &greeting,
        login_name,
        login.database.as_deref(),
        &plugin,
        &auth,
    );
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
            mysql::AuthReply::Switch { plugin: to, nonce } => {
                let data = match mysql_auth_data(&to, password, &nonce) {
                    Ok(d) => d,
                    // The server runs and wants something the default user cannot give.
                    Err(_) if user.is_none() => return Ok(()),
                    Err(f) => return Err(f),
                };
                plugin = to;
                write(&mut s, &mysql::packet(seq.wrapping_add(1), &data)).await?;
            }
            mysql::AuthReply::MoreData(d) => match d.first() {
                // caching_sha2_password fast auth passed; OK follows.
                Some(3) if plugin == mysql::CACHING_SHA2_PASSWORD => {}
                Some(4) if user.is_none() => return Ok(()),
                Some(4) => {
                    return Err(Failure::Rejected(format!(
                        "MySQL caching_sha2_password wants full authentication for user {login_name} (the server has no cached login for it): over a plain connection that needs an RSA key exchange, which the check does not do; log in once with a client (that fills the server's cache) or give the user mysql_native_password"
                    )))
                }
                _ => return Err(Failure::Protocol("unexpected MySQL auth data".into())),
            },
        }
    }
    Err(Failure::Protocol("MySQL login did not finish".into()))
}

/// A PostgreSQL check's login, and the SCRAM keys of its last login (so PBKDF2 runs once per
/// password and server verifier, not at every check).
#[derive(Debug)]
pub(super) struct PgsqlLogin {
    login: SqlLogin,
    scram_keys: Mutex<Option<scram::SaltedKeys>>,
}

impl PgsqlLogin {
    pub(super) fn new(login: &SqlLogin) -> PgsqlLogin {
        PgsqlLogin {
            login: login.clone(),
            scram_keys: Mutex::new(None),
        }
    }
}

/// The SCRAM exchange in progress, if any.
enum Sasl {
    None,
    Started(scram::ScramClient),
    Sent(scram::ServerCheck),
    Verified,
}

fn scram_failure(e: scram::ScramError) -> Failure {
    match e {
        scram::ScramError::Malformed(m) => Failure::Protocol(m),
        other => Failure::Rejected(format!("PostgreSQL SCRAM: {other}")),
    }
}

/// 18 random bytes, base64: the client's SCRAM nonce.
fn scram_nonce() -> Result<String, Failure> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut raw = [0u8; 18];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Failure::Io("no randomness for the SCRAM nonce".into()))?;
    Ok(base64::encode(&raw))
}

pub(super) async fn pgsql(p: &Probe, pg: &PgsqlLogin, progress: &Progress) -> Result<(), Failure> {
    let login = &pg.login;
    let proto = |e: pgsql::ProtocolError| Failure::Protocol(e.to_string());
    let user = login.user.as_deref();
    let password = login.password.as_ref().map(|s| s.expose());
    let mut s = p.connect(progress).await?;
    let login_name = user.unwrap_or(DEFAULT_USER);
    write(
        &mut s,
        &pgsql::startup(login_name, login.database.as_deref()),
    )
    .await?;
    progress.set(Stage::Reply);
    let mut buf = Vec::with_capacity(512);
    let mut sasl = Sasl::None;
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
            b'R' => {
                let request = pgsql::parse_auth(&body).map_err(proto)?;
                let answer = match (&request, password) {
                    (pgsql::AuthRequest::Ok, _) => {
                        if matches!(sasl, Sasl::Started(_) | Sasl::Sent(_)) {
                            return Err(Failure::Protocol(
                                "PostgreSQL ended SCRAM without proving it knows the password"
                                    .into(),
                            ));
                        }
                        continue;
                    }
                    // The default user has no password: being asked for one proves the server runs.
                    _ if user.is_none() => return Ok(()),
                    (pgsql::AuthRequest::Other(_), _) => {
                        return Err(Failure::Rejected(format!(
                            "PostgreSQL asks for {} authentication, which the check cannot do",
                            request.method()
                        )))
                    }
                    (_, None) => {
                        return Err(Failure::Rejected(format!(
                            "PostgreSQL asks for a password for user {login_name} ({}); the check has none (set `password`, or trust the user in pg_hba.conf)",
                            request.method()
                        )))
                    }
                    (pgsql::AuthRequest::Cleartext, Some(pw)) => pgsql::password_message(pw),
                    (pgsql::AuthRequest::Md5(salt), Some(pw)) => {
                        pgsql::password_message(&pgsql::md5_password(login_name, pw, salt))
                    }
                    (pgsql::AuthRequest::Sasl(mechanisms), Some(pw)) => {
                        if !mechanisms.iter().any(|m| m == scram::SCRAM_SHA_256) {
                            return Err(Failure::Rejected(format!(
                                "PostgreSQL offers SASL {}, the check speaks {}",
                                mechanisms.join(", "),
                                scram::SCRAM_SHA_256
                            )));
                        }
                        // PostgreSQL takes the user from the startup message: "n=" stays empty.
                        let client = scram::ScramClient::new("", pw, &scram_nonce()?);
                        let m = pgsql::sasl_initial_response(
                            scram::SCRAM_SHA_256,
                            client.client_first().as_bytes(),
                        );
                        sasl = Sasl::Started(client);
                        m
                    }
                    (pgsql::AuthRequest::SaslContinue(data), Some(_)) => {
                        let Sasl::Started(client) = &sasl else {
                            return Err(Failure::Protocol("unexpected SASL continue".into()));
                        };
                        // Taken out while it is used: no lock is held across an await.
                        let mut keys = pg.scram_keys.lock().ok().and_then(|mut k| k.take());
                        let (last, check) = client
                            .client_final(&String::from_utf8_lossy(data), &mut keys)
                            .map_err(scram_failure)?;
                        if let Ok(mut k) = pg.scram_keys.lock() {
                            *k = keys;
                        }
                        sasl = Sasl::Sent(check);
                        pgsql::sasl_response(last.as_bytes())
                    }
                    (pgsql::AuthRequest::SaslFinal(data), Some(_)) => {
                        let Sasl::Sent(check) = &sasl else {
                            return Err(Failure::Protocol("unexpected SASL final".into()));
                        };
                        check
                            .verify(&String::from_utf8_lossy(data))
                            .map_err(scram_failure)?;
                        sasl = Sasl::Verified;
                        continue;
                    }
                };
                write(&mut s, &answer).await?;
            }
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
