//! Which configs a balancer may apply: detached signatures made with a stock tool, and what
//! the signed config must say about itself.
//!
//! Signatures are OpenSSH's (`ssh-keygen -Y sign -f KEY -n lb-config FILE` writes
//! `FILE.sig`; format: PROTOCOL.sshsig). Operators already have the tool and the keys, an
//! Ed25519 signature needs no clock to check (an X.509 chain does, and a box booting from
//! the network has no trustworthy clock), and the namespace keeps a config signature from
//! being reused as, say, a git commit signature made with the same key.
//!
//! Pure: parsing and checking bytes; the caller fetches them.

use std::fmt;

use sha2::{Digest, Sha256, Sha512};
use thiserror::Error;

/// The signature namespace of configs: `ssh-keygen -Y sign -n lb-config`.
pub const NAMESPACE: &str = "lb-config";

const MAGIC: &[u8; 6] = b"SSHSIG";
const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const END: &str = "-----END SSH SIGNATURE-----";
const ED25519: &str = "ssh-ed25519";

/// Why a signature or a key was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrustError {
    #[error("not an SSH signature (no {BEGIN} line); make one with `ssh-keygen -Y sign -n {NAMESPACE} -f KEY FILE`")]
    NotArmored,
    #[error("the SSH signature is damaged: {0}")]
    Malformed(String),
    #[error("the signature is for namespace {found:?}, configs are signed with -n {NAMESPACE}")]
    Namespace { found: String },
    #[error(
        "{0} keys are not supported: sign configs with an Ed25519 key (ssh-keygen -t ed25519)"
    )]
    UnsupportedKey(String),
    #[error("signature hash {0:?} is not supported (sha256, sha512)")]
    UnsupportedHash(String),
    #[error("signed by {fingerprint}, a key this image does not trust")]
    UntrustedKey { fingerprint: String },
    #[error("the signature by {fingerprint} does not match these bytes: the config was changed after it was signed, or the signature is for another file")]
    BadSignature { fingerprint: String },
    #[error("{origin}: {problem}")]
    BadKey { origin: String, problem: String },
}

/// A trusted Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The SSH wire encoding (`string "ssh-ed25519", string key`), as signatures carry it.
    blob: Vec<u8>,
    key: [u8; 32],
    pub comment: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.fingerprint(), self.comment)
    }
}

impl PublicKey {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob)
    }

    /// One line as OpenSSH writes public keys: `ssh-ed25519 AAAA... comment`.
    pub fn to_openssh(&self) -> String {
        let mut line = format!("{ED25519} {}", base64_encode(&self.blob));
        if !self.comment.is_empty() {
            line.push(' ');
            line.push_str(&self.comment);
        }
        line
    }

    fn from_blob(blob: &[u8], comment: &str) -> Result<Self, String> {
        let mut r = Reader(blob);
        let algorithm = r.string_utf8("key type")?;
        if algorithm != ED25519 {
            return Err(format!(
                "{algorithm} keys are not supported (only {ED25519})"
            ));
        }
        let key = r.string("key")?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| "an Ed25519 key is 32 bytes".to_string())?;
        if !r.0.is_empty() {
            return Err("trailing bytes after the key".into());
        }
        Ok(PublicKey {
            blob: blob.to_vec(),
            key,
            comment: comment.to_string(),
        })
    }
}

fn fingerprint(blob: &[u8]) -> String {
    let mut text = base64_encode(&Sha256::digest(blob));
    while text.ends_with('=') {
        text.pop();
    }
    format!("SHA256:{text}")
}

/// Parses trusted keys: one per line in OpenSSH's public key format (`ssh-ed25519 AAAA...
/// comment`, as in a `.pub` file or `authorized_keys`) or `allowed_signers`' (a principal
/// before the key); `#` comments and blank lines are skipped. `origin` names the file.
pub fn parse_keys(text: &str, origin: &str) -> Result<Vec<PublicKey>, TrustError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |problem: String| TrustError::BadKey {
            origin: format!("{origin}:{}", i + 1),
            problem,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))
            .ok_or_else(|| bad("no key type (ssh-ed25519) on this line".into()))?;
        if words[at] != ED25519 {
            return Err(bad(format!(
                "{} keys are not supported; configs are signed with Ed25519 keys (ssh-keygen -t ed25519)",
                words[at]
            )));
        }
        let encoded = words
            .get(at + 1)
            .ok_or_else(|| bad("the key itself is missing after ssh-ed25519".into()))?;
        let blob =
            base64_decode(encoded).map_err(|e| bad(format!("the key is not base64: {e}")))?;
        let comment = words[at + 2..].join(" ");
        keys.push(PublicKey::from_blob(&blob, &comment).map_err(bad)?);
    }
    Ok(keys)
}

/// The hash a signature was made over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha512,
}

/// A parsed `-----BEGIN SSH SIGNATURE-----` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    public_key: Vec<u8>,
    pub namespace: String,
    pub hash: HashAlg,
    signature: [u8; 64],
}

impl Signature {
    /// The fingerprint of the key that made it.
    pub fn signer(&self) -> String {
        fingerprint(&self.public_key)
    }
}

/// Parses an armored SSH signature (PROTOCOL.sshsig).
pub fn parse_signature(armored: &[u8]) -> Result<Signature, TrustError> {
    let text = std::str::from_utf8(armored).map_err(|_| TrustError::NotArmored)?;
    let start = text.find(BEGIN).ok_or(TrustError::NotArmored)? + BEGIN.len();
    let end = text[start..]
        .find(END)
        .ok_or_else(|| TrustError::Malformed(format!("no {END} line")))?;
    let body: String = text[start..start + end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let raw = base64_decode(&body).map_err(|e| TrustError::Malformed(format!("base64: {e}")))?;
    let malformed = TrustError::Malformed;
    let mut r = Reader(&raw);
    if r.take(6).map_err(malformed)? != MAGIC {
        return Err(TrustError::Malformed("no SSHSIG magic".into()));
    }
    let version = r.u32("version").map_err(malformed)?;
    if version != 1 {
        return Err(TrustError::Malformed(format!("version {version}, not 1")));
    }
    let public_key = r.string("public key").map_err(malformed)?.to_vec();
    let namespace = r.string_utf8("namespace").map_err(malformed)?;
    let _reserved = r.string("reserved").map_err(malformed)?;
    let hash = match r.string_utf8("hash algorithm").map_err(malformed)?.as_str() {
        "sha256" => HashAlg::Sha256,
        "sha512" => HashAlg::Sha512,
        other => return Err(TrustError::UnsupportedHash(other.to_string())),
    };
    let sig_blob = r.string("signature").map_err(malformed)?;
    let mut s = Reader(sig_blob);
    let algorithm = s.string_utf8("signature type").map_err(malformed)?;
    if algorithm != ED25519 {
        return Err(TrustError::UnsupportedKey(algorithm));
    }
    let signature: [u8; 64] = s
        .string("signature bytes")
        .map_err(malformed)?
        .try_into()
        .map_err(|_| TrustError::Malformed("an Ed25519 signature is 64 bytes".into()))?;
    Ok(Signature {
        public_key,
        namespace,
        hash,
        signature,
    })
}

/// Checks that `armored` is a signature of `message` in our namespace by one of `trusted`,
/// and returns that key.
pub fn verify<'k>(
    message: &[u8],
    armored: &[u8],
    trusted: &'k [PublicKey],
) -> Result<&'k PublicKey, TrustError> {
    let sig = parse_signature(armored)?;
    if sig.namespace != NAMESPACE {
        return Err(TrustError::Namespace {
            found: sig.namespace,
        });
    }
    let key = trusted
        .iter()
        .find(|k| k.blob == sig.public_key)
        .ok_or_else(|| TrustError::UntrustedKey {
            fingerprint: sig.signer(),
        })?;
    let (hash_name, digest): (&str, Vec<u8>) = match sig.hash {
        HashAlg::Sha256 => ("sha256", Sha256::digest(message).to_vec()),
        HashAlg::Sha512 => ("sha512", Sha512::digest(message).to_vec()),
    };
    let mut signed = Vec::with_capacity(64 + digest.len());
    signed.extend_from_slice(MAGIC);
    put_string(&mut signed, NAMESPACE.as_bytes());
    put_string(&mut signed, b"");
    put_string(&mut signed, hash_name.as_bytes());
    put_string(&mut signed, &digest);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.key)
        .verify(&signed, &sig.signature)
        .map_err(|_| TrustError::BadSignature {
            fingerprint: key.fingerprint(),
        })?;
    Ok(key)
}

fn put_string(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// SSH wire format reader (RFC 4251 `uint32` and `string`).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "cut short ({} bytes left, {n} needed)",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4).map_err(|e| format!("{what}: {e}"))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        self.take(n).map_err(|e| format!("{what}: {e}"))
    }

    fn string_utf8(&mut self, what: &str) -> Result<String, String> {
        let b = self.string(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not text"))
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())
}

pub use crate::config::model::Release;

/// Who this box is, for [`check_release`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Permanent MACs of the box's NICs.
    pub macs: Vec<[u8; 6]>,
    /// The host name the box was given before the config (DHCP, `ip=`), if any.
    pub hostname: Option<String>,
}

/// The config running now, for the serial and replay checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub serial: u64,
    pub sha256: String,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReleaseError {
    #[error("a signed config must say which node it is for and its serial: add [release] with serial and node")]
    Missing,
    #[error("the config is for node {node:?}, not this box (MACs {macs}{})", .hostname.as_ref().map(|h| format!(", host name {h}")).unwrap_or_default())]
    OtherNode {
        node: String,
        macs: String,
        hostname: Option<String>,
    },
    #[error("serial {new} is lower than the running config's {running}: an older config is not applied again")]
    LowerSerial { new: u64, running: u64 },
    #[error("serial {serial} is the running config's, but the content differs: give a changed config a higher serial")]
    SameSerial { serial: u64 },
    #[error("the config expired (not_after {not_after}, the clock says at least {floor}): sign a new one")]
    Expired { not_after: u64, floor: u64 },
}

/// Checks a signed config's `[release]` against this box, the running config and the
/// lowest time it can be (`clock_floor`, seconds since the epoch).
pub fn check_release(
    release: Option<&Release>,
    sha256: &str,
    identity: &Identity,
    running: Option<&Running>,
    clock_floor: u64,
) -> Result<(), ReleaseError> {
    let release = release.ok_or(ReleaseError::Missing)?;
    if !names_this_box(&release.node, identity) {
        return Err(ReleaseError::OtherNode {
            node: release.node.clone(),
            macs: identity
                .macs
                .iter()
                .map(crate::config::network::format_mac)
                .collect::<Vec<_>>()
                .join(" "),
            hostname: identity.hostname.clone(),
        });
    }
    if let Some(running) = running {
        if release.serial < running.serial {
            return Err(ReleaseError::LowerSerial {
                new: release.serial,
                running: running.serial,
            });
        }
        if release.serial == running.serial && sha256 != running.sha256 {
            return Err(ReleaseError::SameSerial {
                serial: release.serial,
            });
        }
    }
    if let Some(not_after) = release.not_after {
        if not_after < clock_floor {
            return Err(ReleaseError::Expired {
                not_after,
                floor: clock_floor,
            });
        }
    }
    Ok(())
}

fn names_this_box(node: &str, identity: &Identity) -> bool {
    if let Ok(mac) = crate::config::network::parse_mac(node) {
        return identity.macs.contains(&mac);
    }
    identity
        .hostname
        .as_deref()
        .is_some_and(|h| h.eq_ignore_ascii_case(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            macs: vec![[0x52, 0x54, 0, 0x12, 0x34, 0x56]],
            hostname: Some("lb1".into()),
        }
    }

    fn release(serial: u64, node: &str) -> Release {
        Release {
            serial,
            node: node.into(),
            not_after: None,
        }
    }

    #[test]
    fn a_release_must_name_this_box() {
        let id = identity();
        for node in ["52:54:00:12:34:56", "52-54-00-12-34-56", "LB1"] {
            assert_eq!(
                check_release(Some(&release(1, node)), "a", &id, None, 0),
                Ok(())
            );
        }
        let err = check_release(Some(&release(1, "52:54:00:12:34:57")), "a", &id, None, 0);
        assert_eq!(
            err.unwrap_err().to_string(),
            "the config is for node \"52:54:00:12:34:57\", not this box (MACs 52:54:00:12:34:56, host name lb1)"
        );
        assert_eq!(
            check_release(None, "a", &id, None, 0),
            Err(ReleaseError::Missing)
        );
    }

    #[test]
    fn serials_only_go_up_and_a_change_needs_a_new_one() {
        let id = identity();
        let running = Running {
            serial: 7,
            sha256: "old".into(),
        };
        let r = |serial, sha: &str| {
            check_release(Some(&release(serial, "lb1")), sha, &id, Some(&running), 0)
        };
        assert_eq!(
            r(6, "x"),
            Err(ReleaseError::LowerSerial { new: 6, running: 7 })
        );
        assert_eq!(r(7, "x"), Err(ReleaseError::SameSerial { serial: 7 }));
        assert_eq!(
            r(7, "old"),
            Ok(()),
            "the running config itself, fetched again"
        );
        assert_eq!(r(8, "x"), Ok(()));
    }

    #[test]
    fn an_expired_config_is_refused_against_the_clock_floor() {
        let mut rel = release(1, "lb1");
        rel.not_after = Some(1_000);
        let id = identity();
        assert_eq!(check_release(Some(&rel), "a", &id, None, 999), Ok(()));
        assert_eq!(
            check_release(Some(&rel), "a", &id, None, 1_001),
            Err(ReleaseError::Expired {
                not_after: 1_000,
                floor: 1_001
            })
        );
    }

    #[test]
    fn keys_parse_from_pub_and_allowed_signers_lines() {
        let blob = {
            let mut b = Vec::new();
            put_string(&mut b, b"ssh-ed25519");
            put_string(&mut b, &[7u8; 32]);
            b
        };
        let line = format!("ssh-ed25519 {} ops@example", base64_encode(&blob));
        let text = format!("# operators\n{line}\nops@example namespaces=\"lb-config\" {line}\n");
        let keys = parse_keys(&text, "keys").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].comment, "ops@example");
        assert_eq!(keys[0].to_openssh(), line);
        assert!(keys[0].fingerprint().starts_with("SHA256:"));
        let err = parse_keys("ssh-rsa AAAAB3NzaC1yc2E= x\n", "keys").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("keys:1: ssh-rsa keys are not supported"),
            "{err}"
        );
        assert!(parse_keys("ssh-ed25519 !!!\n", "k").is_err());
        assert!(parse_keys("hello\n", "k").is_err());
    }

    #[test]
    fn damaged_signatures_say_what_is_wrong() {
        assert_eq!(parse_signature(b"hello"), Err(TrustError::NotArmored));
        let cut = format!("{BEGIN}\nU1NIU0lH\n{END}\n");
        assert!(matches!(
            parse_signature(cut.as_bytes()),
            Err(TrustError::Malformed(_))
        ));
        let no_end = format!("{BEGIN}\nU1NIU0lH\n");
        assert!(matches!(
            parse_signature(no_end.as_bytes()),
            Err(TrustError::Malformed(_))
        ));
    }
}
