//! SCRAM-SHA-256 client (RFC 5802 with RFC 7677's hash), as PostgreSQL's SASL login uses it:
//! no channel binding (the check's connection is plain TCP). Pure: the nonce is an input, and
//! the server's signature is verified, so a peer that does not know the password cannot pass
//! the check by answering "OK".

use super::base64;
use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

/// The mechanism name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// More PBKDF2 rounds than this is a server making the balancer burn CPU (PostgreSQL's
/// default is 4096).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Why the exchange failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("bad SCRAM message from the server: {0}")]
    Malformed(String),
    #[error("the server's SCRAM nonce does not extend ours")]
    Nonce,
    #[error("the server asks for {0} PBKDF2 iterations (at most {MAX_ITERATIONS})")]
    Iterations(u32),
    #[error("the server reports a SCRAM error: {0}")]
    Server(String),
    /// The server's signature is wrong: it does not know the password's verifier.
    #[error("the server's SCRAM signature is wrong (not the server that holds this password)")]
    ServerSignature,
}

/// The client side, before the server's first message.
pub struct ScramClient {
    client_first_bare: String,
    nonce: String,
    password: Vec<u8>,
}

/// The keys derived from the password for one salt and iteration count. Deriving them is the
/// costly part of a login (PBKDF2: 4096 rounds of HMAC-SHA-256 by default, about a
/// millisecond and a half of CPU), and they stay the same at every login until the password
/// or the server's stored verifier changes: a check keeps them between runs.
#[derive(Clone)]
pub struct SaltedKeys {
    salt: Vec<u8>,
    iterations: u32,
    client_key: hmac::Tag,
    server_key: hmac::Tag,
}

impl std::fmt::Debug for SaltedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "SaltedKeys {{ iterations: {}, .. }}", self.iterations)
    }
}

impl SaltedKeys {
    pub fn derive(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> SaltedKeys {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            password,
            &mut salted,
        );
        let salted = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        SaltedKeys {
            salt: salt.to_vec(),
            iterations: iterations.get(),
            client_key: hmac::sign(&salted, b"Client Key"),
            server_key: hmac::sign(&salted, b"Server Key"),
        }
    }
}

/// After the client's final message: what the server must prove.
#[derive(Debug)]
pub struct ServerCheck {
    expected: Vec<u8>,
}

/// `=` and `,` escaped in a SCRAM user name (RFC 5802 §5.1).
fn saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    /// `nonce`: printable ASCII without ',' (base64 of random bytes). `password` is used as
    /// its bytes: SASLprep leaves ASCII unchanged, and PostgreSQL falls back to the raw bytes
    /// for what SASLprep refuses.
    pub fn new(user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            client_first_bare: format!("n={},r={nonce}", saslname(user)),
            nonce: nonce.to_string(),
            password: password.as_bytes().to_vec(),
        }
    }

    /// client-first-message: no channel binding ("n,,").
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Takes server-first-message, returns client-final-message and what the server's final
    /// message must carry. `keys` holds the keys of an earlier login: used when the salt and
    /// iteration count are the same, replaced when they are not.
    pub fn client_final(
        &self,
        server_first: &str,
        keys: &mut Option<SaltedKeys>,
    ) -> Result<(String, ServerCheck), ScramError> {
        let bad = |what: &str| ScramError::Malformed(format!("{what} in {server_first:?}"));
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (i, attr) in server_first.split(',').enumerate() {
            match attr.split_once('=') {
                Some(("r", v)) if i == 0 => nonce = Some(v),
                Some(("s", v)) if i == 1 => salt = Some(v),
                Some(("i", v)) if i == 2 => iterations = Some(v),
                // RFC 5802: "m" is a mandatory extension nobody defines: fail.
                Some(("m", _)) => return Err(bad("a mandatory extension")),
                _ if i > 2 => {} // optional extensions
                _ => return Err(bad("attributes out of order")),
            }
        }
        let nonce = nonce.ok_or_else(|| bad("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = salt
            .and_then(base64::decode)
            .ok_or_else(|| bad("no salt, or not base64"))?;
        let iterations: u32 = iterations
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| bad("no iteration count"))?;
        let rounds = NonZeroU32::new(iterations).ok_or_else(|| bad("zero iterations"))?;
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::Iterations(iterations));
        }

        let keys = match keys {
            Some(k) if k.salt == salt && k.iterations == iterations => k,
            _ => keys.insert(SaltedKeys::derive(&self.password, &salt, rounds)),
        };
        let client_key = keys.client_key;
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let without_proof = format!("c={},r={nonce}", base64::encode(b"n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = keys.server_key;
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        Ok((
            format!("{without_proof},p={}", base64::encode(&proof)),
            ServerCheck {
                expected: server_signature.as_ref().to_vec(),
            },
        ))
    }
}

impl ServerCheck {
    /// Verifies server-final-message ("v=signature", or "e=error").
    pub fn verify(&self, server_final: &str) -> Result<(), ScramError> {
        let first = server_final.split(',').next().unwrap_or("");
        match first.split_once('=') {
            Some(("v", sig)) => match base64::decode(sig) {
                Some(sig) if sig == self.expected => Ok(()),
                Some(_) => Err(ScramError::ServerSignature),
                None => Err(ScramError::Malformed(format!(
                    "signature not base64 in {server_final:?}"
                ))),
            },
            Some(("e", e)) => Err(ScramError::Server(e.to_string())),
            _ => Err(ScramError::Malformed(format!(
                "no signature in {server_final:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_example() {
        let c = ScramClient::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut keys = None;
        let (last, check) = c.client_final(server_first, &mut keys).unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        check
            .verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        // One bit off in the signature: the server does not know the password.
        assert_eq!(
            check.verify("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::ServerSignature)
        );
        assert_eq!(
            check.verify("e=invalid-proof"),
            Err(ScramError::Server("invalid-proof".into()))
        );

        // The keys kept from this login give the same exchange without PBKDF2 again...
        assert_eq!(
            format!("{keys:?}"),
            "Some(SaltedKeys { iterations: 4096, .. })"
        );
        let kept = keys.clone();
        let (again, _) = c.client_final(server_first, &mut keys).unwrap();
        assert_eq!(again, last);
        // ...and keys kept for another salt (a password changed on the server) are replaced.
        let other_salt = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=c2FsdA==,i=4096";
        let mut keys = kept;
        let (other, _) = c.client_final(other_salt, &mut keys).unwrap();
        assert_ne!(other, last);
        let mut fresh = None;
        assert_eq!(c.client_final(other_salt, &mut fresh).unwrap().0, other);
    }

    #[test]
    fn refuses_bad_server_messages() {
        let c = ScramClient::new("", "pencil", "abc");
        let err = |m: &str| c.client_final(m, &mut None).unwrap_err();
        assert_eq!(err("r=xyzdef,s=c2FsdA==,i=4096"), ScramError::Nonce);
        assert_eq!(err("r=abc,s=c2FsdA==,i=4096"), ScramError::Nonce);
        assert_eq!(
            err("r=abcdef,s=c2FsdA==,i=4000000000"),
            ScramError::Iterations(4_000_000_000)
        );
        for m in [
            "m=ext,r=abcdef,s=c2FsdA==,i=4096",
            "s=c2FsdA==,r=abcdef,i=4096",
            "r=abcdef,s=!!,i=4096",
            "r=abcdef,s=c2FsdA==,i=0",
            "r=abcdef,s=c2FsdA==",
            "",
        ] {
            assert!(matches!(err(m), ScramError::Malformed(_)), "{m}");
        }
        // PostgreSQL sends an empty user name (it takes the startup message's).
        assert_eq!(c.client_first(), "n,,n=,r=abc");
        assert_eq!(saslname("a=b,c"), "a=3Db=2Cc");
    }
}
