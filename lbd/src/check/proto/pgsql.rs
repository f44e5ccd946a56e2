//! PostgreSQL frontend/backend protocol 3.0, as far as the PostgreSQL check needs it: the
//! StartupMessage, the backend's authentication requests, the password answers (cleartext,
//! MD5, SASL for SCRAM-SHA-256), ErrorResponse and ReadyForQuery, and Terminate. Pure. Layouts
//! from the PostgreSQL documentation, "Message Formats" and "SASL Authentication".

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    Ok,
    /// AuthenticationCleartextPassword (3).
    Cleartext,
    /// AuthenticationMD5Password (5), with its salt.
    Md5([u8; 4]),
    /// AuthenticationSASL (10): the mechanisms the server offers.
    Sasl(Vec<String>),
    /// AuthenticationSASLContinue (11): the server's SCRAM message.
    SaslContinue(Vec<u8>),
    /// AuthenticationSASLFinal (12).
    SaslFinal(Vec<u8>),
    /// GSS, SSPI and other methods a health check cannot do.
    Other(u32),
}

impl AuthRequest {
    /// The method's name, for reasons.
    pub fn method(&self) -> String {
        match self {
            AuthRequest::Ok => "none".into(),
            AuthRequest::Cleartext => "password".into(),
            AuthRequest::Md5(_) => "md5".into(),
            AuthRequest::Sasl(m) => format!("SASL {}", m.join(", ")),
            AuthRequest::SaslContinue(_) | AuthRequest::SaslFinal(_) => "SASL".into(),
            AuthRequest::Other(7) => "GSSAPI".into(),
            AuthRequest::Other(9) => "SSPI".into(),
            AuthRequest::Other(n) => format!("method {n}"),
        }
    }
}

pub fn parse_auth(body: &[u8]) -> Result<AuthRequest, ProtocolError> {
    let short = || ProtocolError("short authentication request".into());
    let code = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(short)?;
    let data = &body[4..];
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => AuthRequest::Md5(
            data.get(..4)
                .ok_or_else(short)?
                .try_into()
                .map_err(|_| short())?,
        ),
        10 => AuthRequest::Sasl(
            data.split(|&b| b == 0)
                .take_while(|m| !m.is_empty())
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect(),
        ),
        11 => AuthRequest::SaslContinue(data.to_vec()),
        12 => AuthRequest::SaslFinal(data.to_vec()),
        n => AuthRequest::Other(n),
    })
}

/// A frontend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(tag);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// PasswordMessage: the password (cleartext) or its MD5 form, NUL-terminated.
pub fn password_message(password: &str) -> Vec<u8> {
    let mut body = password.as_bytes().to_vec();
    body.push(0);
    message(b'p', &body)
}

/// The MD5 method's answer: "md5" + md5hex(md5hex(password + user) + salt).
#[cfg(feature = "daemon")]
pub fn md5_password(user: &str, password: &str, salt: &[u8; 4]) -> String {
    use md5::{Digest, Md5};
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let inner = hex(&Md5::new()
        .chain_update(password)
        .chain_update(user)
        .finalize());
    let outer = Md5::new().chain_update(inner).chain_update(salt).finalize();
    format!("md5{}", hex(&outer))
}

/// SASLInitialResponse: the chosen mechanism and the client's first message.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(mechanism.len() + data.len() + 5);
    body.extend_from_slice(mechanism.as_bytes());
    body.push(0);
    body.extend_from_slice(&(data.len() as u32).to_be_bytes());
    body.extend_from_slice(data);
    message(b'p', &body)
}

/// SASLResponse: the client's next message.
pub fn sasl_response(data: &[u8]) -> Vec<u8> {
    message(b'p', data)
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
            AuthRequest::Md5([1, 2, 3, 4])
        );
        assert!(parse_auth(&[0, 0, 0, 5, 1, 2]).is_err());
        assert_eq!(parse_auth(&[0, 0, 0, 3]).unwrap(), AuthRequest::Cleartext);
        assert_eq!(
            parse_auth(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0").unwrap(),
            AuthRequest::Sasl(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()])
        );
        assert_eq!(
            parse_auth(b"\0\0\0\x0br=abc,s=c2FsdA==,i=4096").unwrap(),
            AuthRequest::SaslContinue(b"r=abc,s=c2FsdA==,i=4096".to_vec())
        );
        assert_eq!(
            parse_auth(b"\0\0\0\x0cv=sig").unwrap(),
            AuthRequest::SaslFinal(b"v=sig".to_vec())
        );
        assert_eq!(parse_auth(&[0, 0, 0, 7]).unwrap(), AuthRequest::Other(7));
        assert_eq!(AuthRequest::Other(7).method(), "GSSAPI");

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

    #[test]
    fn password_messages() {
        assert_eq!(password_message("pw"), b"p\0\0\0\x07pw\0");
        let m = sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc");
        let mut want = b"p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0b".to_vec();
        want.extend_from_slice(b"n,,n=,r=abc");
        assert_eq!(m, want);
        assert_eq!(sasl_response(b"c=biws"), b"p\0\0\0\x0ac=biws");
    }

    /// The MD5 method as the PostgreSQL docs define it (and as pg_authid stores "md5" +
    /// md5hex(password + user)); expected value computed independently with Python's hashlib.
    #[cfg(feature = "daemon")]
    #[test]
    fn md5_password_vector() {
        assert_eq!(
            md5_password("pwuser", "secret", &[1, 2, 3, 4]),
            "md53cf9d7c69570c82069074f52ec594e6e"
        );
    }
}
