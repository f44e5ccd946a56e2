//! PostgreSQL frontend/backend protocol 3.0, as far as the PostgreSQL check needs it: the
//! StartupMessage, the backend's authentication requests, ErrorResponse and ReadyForQuery, and
//! Terminate. Pure. Layouts from the PostgreSQL documentation, "Message Formats".

use std::fmt;

/// Protocol version 3.0.
pub const PROTOCOL_3_0: u32 = 196_608;

/// StartupMessage with `user`, optional `database`, and an application name that shows in
/// `pg_stat_activity` and the server's log.
pub fn startup(user: &str, database: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
    let mut param = |k: &str, v: &str| {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    };
    param("user", user);
    if let Some(db) = database {
        param("database", db);
    }
    param("application_name", "lbd-check");
    body.push(0);
    let mut m = Vec::with_capacity(body.len() + 4);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(&body);
    m
}

/// Terminate ('X').
pub fn terminate() -> Vec<u8> {
    vec![b'X', 0, 0, 0, 4]
}

/// A backend message split off a buffer: (type, body, bytes used).
pub type Split<'a> = (u8, &'a [u8], usize);

/// Splits the first backend message off `buf`. `None`: incomplete.
pub fn split_message(buf: &[u8]) -> Result<Option<Split<'_>>, ProtocolError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=1 << 20).contains(&len) {
        return Err(ProtocolError(format!(
            "message {:?} with length {len}",
            buf[0] as char
        )));
    }
    Ok(buf.get(5..1 + len).map(|body| (buf[0], body, 1 + len)))
}

/// Malformed protocol data.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad PostgreSQL message: {0}")]
pub struct ProtocolError(pub String);

/// An ErrorResponse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PostgreSQL {} {}: {}",
            self.severity, self.code, self.message
        )
    }
}

impl ServerError {
    /// Class 28 (invalid authorization: no such role, wrong password) and 3D000 (no such
    /// database): the server runs and answers; only the check's credentials are wrong.
    pub fn is_credentials(&self) -> bool {
        self.code.starts_with("28") || self.code == "3D000"
    }
}

pub fn parse_error(body: &[u8]) -> ServerError {
    let mut e = ServerError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let nul = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..nul]).into_owned();
        match field {
            b'V' => e.severity = value,
            b'S' if e.severity.is_empty() => e.severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            _ => {}
        }
        rest = tail.get(nul + 1..).unwrap_or(&[]);
    }
    e
}

/// What an authentication request ('R') asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    /// A password of some kind (cleartext 3, MD5 5, SASL 10, ...).
    Password(u32),
    /// GSS, SSPI and other methods a health check cannot do.
    Other(u32),
}

pub fn parse_auth(body: &[u8]) -> Result<AuthRequest, ProtocolError> {
    let code = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| ProtocolError("short authentication request".into()))?;
    Ok(match code {
        0 => AuthRequest::Ok,
        3 | 5 | 10 => AuthRequest::Password(code),
        n => AuthRequest::Other(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_bytes() {
        let m = startup("lbcheck", Some("app"));
        let body = b"\x00\x03\x00\x00user\0lbcheck\0database\0app\0application_name\0lbd-check\0\0";
        assert_eq!(&m[..4], &((body.len() + 4) as u32).to_be_bytes());
        assert_eq!(&m[4..], body);
        assert_eq!(terminate(), [b'X', 0, 0, 0, 4]);
    }

    #[test]
    fn backend_messages() {
        let auth_ok = [b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I'];
        let (t, body, used) = split_message(&auth_ok).unwrap().unwrap();
        assert_eq!((t, used), (b'R', 9));
        assert_eq!(parse_auth(body).unwrap(), AuthRequest::Ok);
        let (t, body, _) = split_message(&auth_ok[used..]).unwrap().unwrap();
        assert_eq!((t, body), (b'Z', &b"I"[..]));
        assert_eq!(split_message(&auth_ok[..7]).unwrap(), None);
        assert!(split_message(&[b'R', 0, 0, 0, 1]).is_err());
        assert_eq!(
            parse_auth(&[0, 0, 0, 5, 1, 2, 3, 4]).unwrap(),
            AuthRequest::Password(5)
        );
        assert_eq!(parse_auth(&[0, 0, 0, 7]).unwrap(), AuthRequest::Other(7));

        let e = parse_error(
            b"SFATAL\0VFATAL\0C28000\0Mrole \"nobody\" does not exist\0Fauth.c\0L100\0\0",
        );
        assert_eq!(
            e.to_string(),
            "PostgreSQL FATAL 28000: role \"nobody\" does not exist"
        );
        assert!(e.is_credentials());
        let e = parse_error(b"SFATAL\0C57P03\0Mthe database system is starting up\0\0");
        assert!(!e.is_credentials());
    }
}
