//! MySQL / MariaDB client-server protocol, as far as the MySQL check needs it: the server's
//! greeting (Protocol::HandshakeV10), the client's HandshakeResponse41, the password scrambles
//! of mysql_native_password and caching_sha2_password (fast path), and the server's verdict
//! (OK, ERR, auth switch, more data). Pure.
//!
//! Layouts from the MySQL client/server protocol documentation ("Connection Phase",
//! "Authentication Methods").

use std::fmt;

pub const CLIENT_LONG_PASSWORD: u32 = 0x1;
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x8;
pub const CLIENT_PROTOCOL_41: u32 = 0x200;
pub const CLIENT_TRANSACTIONS: u32 = 0x2000;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// An ERR packet from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub sqlstate: Option<String>,
    pub message: String,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MySQL error {}", self.code)?;
        if let Some(s) = &self.sqlstate {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ServerError {
    /// ER_ACCESS_DENIED_ERROR and friends: the server is up and checks credentials.
    pub fn is_access_denied(&self) -> bool {
        matches!(self.code, 1044 | 1045 | 1698) || self.sqlstate.as_deref() == Some("28000")
    }
}

/// Malformed protocol data.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad MySQL packet: {0}")]
pub struct ProtocolError(pub String);

/// Splits the first packet off `buf`: (sequence id, payload, bytes used). `None`: incomplete.
pub fn split_packet(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], 0]) as usize;
    let payload = buf.get(4..4 + len)?;
    Some((buf[3], payload, 4 + len))
}

/// Frames a payload as a packet.
pub fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut p = Vec::with_capacity(4 + payload.len());
    p.extend_from_slice(&len.to_le_bytes()[..3]);
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// The server's greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub server_version: String,
    pub capabilities: u32,
    pub auth_plugin: Option<String>,
    /// The nonce the password scramble is computed with (20 bytes from current servers).
    pub scramble: Vec<u8>,
}

fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = buf.iter().position(|&b| b == 0)?;
    Some((&buf[..nul], &buf[nul + 1..]))
}

fn parse_err(payload: &[u8]) -> ServerError {
    let code = u16::from_le_bytes([
        payload.get(1).copied().unwrap_or(0),
        payload.get(2).copied().unwrap_or(0),
    ]);
    let rest = payload.get(3..).unwrap_or(&[]);
    let (sqlstate, msg) = match rest.first() {
        Some(b'#') if rest.len() >= 6 => (
            Some(String::from_utf8_lossy(&rest[1..6]).into_owned()),
            &rest[6..],
        ),
        _ => (None, rest),
    };
    ServerError {
        code,
        sqlstate,
        message: String::from_utf8_lossy(msg).trim().to_string(),
    }
}

/// Parses the first packet a server sends: a greeting, or an ERR (too many connections, host
/// blocked, ...).
pub fn parse_greeting(payload: &[u8]) -> Result<Result<Greeting, ServerError>, ProtocolError> {
    let bad = |what: &str| ProtocolError(what.to_string());
    match payload.first() {
        Some(0xff) => return Ok(Err(parse_err(payload))),
        Some(10) => {}
        Some(v) => return Err(ProtocolError(format!("protocol version {v}, expected 10"))),
        None => return Err(bad("empty greeting")),
    }
    let (version, rest) =
        cstr(&payload[1..]).ok_or_else(|| bad("greeting without a server version"))?;
    // connection id (4), auth data part 1 (8), filler (1), capabilities low (2)
    if rest.len() < 15 {
        return Err(bad("greeting too short"));
    }
    let mut caps = u32::from(u16::from_le_bytes([rest[13], rest[14]]));
    let mut scramble = rest[4..12].to_vec();
    let more = &rest[15..];
    let mut plugin = None;
    if more.len() >= 16 {
        // charset (1), status (2), capabilities high (2), auth data length (1), reserved (10)
        caps |= u32::from(u16::from_le_bytes([more[3], more[4]])) << 16;
        let auth_len = more[5] as usize;
        let after = &more[16..];
        if caps & CLIENT_SECURE_CONNECTION != 0 {
            let part2 = auth_len.saturating_sub(8).max(13);
            // The second part of the nonce ends with a NUL that is not part of it.
            if let Some(p) = after.get(..part2) {
                scramble.extend_from_slice(p.split(|&b| b == 0).next().unwrap_or(p));
            }
            if caps & CLIENT_PLUGIN_AUTH != 0 {
                if let Some(tail) = after.get(part2..) {
                    let name = cstr(tail).map_or(tail, |(n, _)| n);
                    plugin = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    Ok(Ok(Greeting {
        server_version: String::from_utf8_lossy(version).into_owned(),
        capabilities: caps,
        auth_plugin: plugin,
        scramble,
    }))
}

/// The client's answer to the greeting: log in as `user` into `database` if given, with
/// `auth` (the password scrambled for `plugin`; empty for an empty password) when the server
/// supports plugins, else as mysql_native_password.
pub fn handshake_response(
    greeting: &Greeting,
    user: &str,
    database: Option<&str>,
    plugin: &str,
    auth: &[u8],
) -> Vec<u8> {
    let mut caps =
        CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION;
    if database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    let plugin = Some(plugin).filter(|_| greeting.capabilities & CLIENT_PLUGIN_AUTH != 0);
    if plugin.is_some() {
        caps |= CLIENT_PLUGIN_AUTH;
    }
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet 16 MiB
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user.as_bytes());
    p.push(0);
    // Scrambles are 20 or 32 bytes: the one-byte length form always fits.
    p.push(auth.len().min(255) as u8);
    p.extend_from_slice(&auth[..auth.len().min(255)]);
    if let Some(db) = database {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    if let Some(name) = plugin {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
    }
    p
}

/// The auth plugins the check can answer.
pub const NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";
pub const CLEAR_PASSWORD: &str = "mysql_clear_password";

/// mysql_native_password: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))); an empty
/// password is an empty answer.
#[cfg(feature = "daemon")]
pub fn native_password_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    use ring::digest::{digest, Context, SHA1_FOR_LEGACY_USE_ONLY as SHA1};
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = digest(&SHA1, password);
    let stage2 = digest(&SHA1, stage1.as_ref());
    let mut ctx = Context::new(&SHA1);
    ctx.update(nonce);
    ctx.update(stage2.as_ref());
    let mask = ctx.finish();
    xor(stage1.as_ref(), mask.as_ref())
}

/// caching_sha2_password's fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) +
/// nonce); an empty password is an empty answer.
#[cfg(feature = "daemon")]
pub fn caching_sha2_scramble(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    use ring::digest::{digest, Context, SHA256};
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = digest(&SHA256, password);
    let stage2 = digest(&SHA256, stage1.as_ref());
    let mut ctx = Context::new(&SHA256);
    ctx.update(stage2.as_ref());
    ctx.update(nonce);
    let mask = ctx.finish();
    xor(stage1.as_ref(), mask.as_ref())
}

#[cfg(feature = "daemon")]
fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// COM_QUIT, to leave politely.
pub fn com_quit() -> Vec<u8> {
    packet(0, &[0x01])
}

/// The server's answer during authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthReply {
    Ok,
    Err(ServerError),
    /// AuthSwitchRequest: answer with the password in that plugin's format, scrambled with
    /// the new nonce.
    Switch {
        plugin: String,
        nonce: Vec<u8>,
    },
    /// AuthMoreData: for caching_sha2_password, 3 = fast auth done, 4 = full auth needed.
    MoreData(Vec<u8>),
}

pub fn parse_auth_reply(payload: &[u8]) -> Result<AuthReply, ProtocolError> {
    match payload.first() {
        Some(0x00) => Ok(AuthReply::Ok),
        Some(0xff) => Ok(AuthReply::Err(parse_err(payload))),
        Some(0xfe) => {
            let (name, data) = cstr(&payload[1..]).unwrap_or((&payload[1..], &[]));
            // The nonce is sent NUL-terminated.
            let nonce = data.strip_suffix(&[0]).unwrap_or(data);
            Ok(AuthReply::Switch {
                plugin: String::from_utf8_lossy(name).into_owned(),
                nonce: nonce.to_vec(),
            })
        }
        Some(0x01) => Ok(AuthReply::MoreData(payload[1..].to_vec())),
        Some(b) => Err(ProtocolError(format!(
            "unexpected packet 0x{b:02x} during authentication"
        ))),
        None => Err(ProtocolError("empty packet during authentication".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MariaDB 10.11 greeting as captured on the wire (scramble bytes replaced).
    fn mariadb_greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.6-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&7u32.to_le_bytes()); // connection id
        p.extend_from_slice(b"abcdefgh"); // scramble 1
        p.push(0);
        p.extend_from_slice(&0xf7feu16.to_le_bytes()); // capabilities low
        p.push(45); // charset
        p.extend_from_slice(&2u16.to_le_bytes()); // status
        p.extend_from_slice(&0x81ffu16.to_le_bytes()); // capabilities high (PLUGIN_AUTH)
        p.push(21); // auth data length
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[0x1d, 0, 0, 0]); // MariaDB extended capabilities
        p.extend_from_slice(b"ijklmnopqrst\0"); // scramble 2
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn packets_frame_and_split() {
        let p = packet(3, b"hello");
        assert_eq!(p, [5, 0, 0, 3, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(split_packet(&p), Some((3, &b"hello"[..], 9)));
        assert_eq!(split_packet(&p[..8]), None);
        assert_eq!(com_quit(), [1, 0, 0, 0, 1]);
    }

    #[test]
    fn greeting_and_response() {
        let g = parse_greeting(&mariadb_greeting()).unwrap().unwrap();
        assert_eq!(g.server_version, "5.5.5-10.11.6-MariaDB-0+deb12u1");
        assert_eq!(g.auth_plugin.as_deref(), Some("mysql_native_password"));
        assert_ne!(g.capabilities & CLIENT_PLUGIN_AUTH, 0);
        assert_eq!(g.scramble, b"abcdefghijklmnopqrst");

        let r = handshake_response(&g, "lbcheck", Some("app"), NATIVE_PASSWORD, b"");
        let caps = u32::from_le_bytes(r[..4].try_into().unwrap());
        assert_eq!(
            caps,
            CLIENT_LONG_PASSWORD
                | CLIENT_PROTOCOL_41
                | CLIENT_TRANSACTIONS
                | CLIENT_SECURE_CONNECTION
                | CLIENT_CONNECT_WITH_DB
                | CLIENT_PLUGIN_AUTH
        );
        assert_eq!(r[8], 45);
        assert_eq!(&r[9..32], &[0; 23]);
        assert_eq!(&r[32..], b"lbcheck\0\0app\0mysql_native_password\0");

        let auth = [0xaa; 20];
        let r = handshake_response(&g, "lbcheck", None, NATIVE_PASSWORD, &auth);
        let mut want = b"lbcheck\0\x14".to_vec();
        want.extend_from_slice(&auth);
        want.extend_from_slice(b"mysql_native_password\0");
        assert_eq!(&r[32..], want);
    }

    /// mysql_native_password: the server stores SHA1(SHA1(password)), which MySQL's and
    /// MariaDB's PASSWORD('secret') print as *14E65567ABDB5135D0CFD9A70B3032C179A49EE7; the
    /// scramble, XORed back with SHA1(nonce + that), must give SHA1(password) again. The
    /// expected bytes were computed independently (Python's hashlib).
    #[cfg(feature = "daemon")]
    #[test]
    fn native_password_scramble_vector() {
        let nonce = b"abcdefghijklmnopqrst";
        let s = native_password_scramble(b"secret", nonce);
        assert_eq!(hex(&s), "8817c50fa779daef010ee7577825b0847df9842e");
        use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY as SHA1};
        let stored = digest(&SHA1, digest(&SHA1, b"secret").as_ref());
        assert_eq!(
            hex(stored.as_ref()).to_uppercase(),
            "14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
        // What the server does: recover SHA1(password) and hash it again.
        let mask = digest(&SHA1, &[&nonce[..], stored.as_ref()].concat());
        let stage1 = xor(&s, mask.as_ref());
        assert_eq!(digest(&SHA1, &stage1).as_ref(), stored.as_ref());
        assert!(native_password_scramble(b"", nonce).is_empty());
    }

    /// caching_sha2_password's fast path, computed independently (Python's hashlib).
    #[cfg(feature = "daemon")]
    #[test]
    fn caching_sha2_scramble_vector() {
        let s = caching_sha2_scramble(b"secret", b"abcdefghijklmnopqrst");
        assert_eq!(
            hex(&s),
            "c76e2898612a4cf042c77fa8c4702c4c64c0c2c557c53c4d75595aaa6abae809"
        );
        assert!(caching_sha2_scramble(b"", b"abcdefghijklmnopqrst").is_empty());
    }

    #[cfg(feature = "daemon")]
    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn errors_before_and_after_the_greeting() {
        let mut too_many = vec![0xff];
        too_many.extend_from_slice(&1040u16.to_le_bytes());
        too_many.extend_from_slice(b"Too many connections");
        let e = parse_greeting(&too_many).unwrap().unwrap_err();
        assert_eq!(e.to_string(), "MySQL error 1040: Too many connections");
        assert!(!e.is_access_denied());

        let mut denied = vec![0xff];
        denied.extend_from_slice(&1045u16.to_le_bytes());
        denied.extend_from_slice(b"#28000Access denied for user 'x'@'10.0.0.1'");
        let AuthReply::Err(e) = parse_auth_reply(&denied).unwrap() else {
            panic!()
        };
        assert_eq!(e.sqlstate.as_deref(), Some("28000"));
        assert!(e.is_access_denied());
        assert_eq!(parse_auth_reply(&[0, 0, 0, 2, 0]).unwrap(), AuthReply::Ok);
        assert_eq!(
            parse_auth_reply(b"\xfemysql_native_password\0abcdefghijklmnopqrst\0").unwrap(),
            AuthReply::Switch {
                plugin: "mysql_native_password".into(),
                nonce: b"abcdefghijklmnopqrst".to_vec()
            }
        );
        assert_eq!(
            parse_auth_reply(&[1, 3]).unwrap(),
            AuthReply::MoreData(vec![3])
        );
        assert!(parse_greeting(b"\x09old").is_err());
        assert!(parse_greeting(b"\x0a5.7").is_err());
    }
}
