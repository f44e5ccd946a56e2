//! Which configs init applies. An image built with operator keys (`image build
//! --trusted-keys`) carries them in [`TRUSTED_KEYS`]; then a config is applied only with a
//! valid detached signature (`URL.sig`, made with `ssh-keygen -Y sign -n lb-config`) by one
//! of them, and only if its `[release]` names this box, does not go back in serial, and has
//! not expired by the clock floor. `lb.unsigned=allow` on the kernel command line lets
//! unsigned configs in anyway: logged at every config, shown in status and metrics.
//!
//! The checks themselves are [`lbd::trust`]'s; this is the plumbing into the fetcher's
//! [`ConfigGate`] and what is reported.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lbd::trust::{self, Identity, PublicKey, Release, Running};
use sha2::{Digest, Sha256};

use crate::fetch::{Candidate, ConfigGate, FetchUrl, UrlError};

/// Operator keys the image trusts (OpenSSH public key lines).
pub const TRUSTED_KEYS: &str = "/etc/lb/trusted_keys";
/// The lowest the time can be (seconds since the epoch), written by the image builder.
pub const CLOCK_FLOOR: &str = "/etc/lb/clock_floor";
/// What init applied and on what trust, for lbd's status and metrics.
pub const TRUST_STATE: &str = "/run/lb/trust";

/// How configs are admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The image carries no keys: configs are not signed (the network is the only guard).
    NoKeys,
    /// Only configs signed by one of the image's keys.
    Signed,
    /// The image carries keys but `lb.unsigned=allow` lets any config in.
    UnsignedAllowed,
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::NoKeys => "no-keys",
            Mode::Signed => "signed",
            Mode::UnsignedAllowed => "unsigned-allowed",
        }
    }
}

/// The image's keys and the command line's choice.
#[derive(Clone, Debug)]
pub struct Policy {
    pub keys: Vec<PublicKey>,
    pub mode: Mode,
    /// Seconds since the epoch the clock cannot be before (the image's).
    pub clock_floor: u64,
}

impl Policy {
    /// From the image's files. A key file that does not parse fails closed: every config is
    /// refused until the image is fixed, rather than accepting unsigned ones.
    pub fn from_image(allow_unsigned: bool) -> Result<Policy, String> {
        let keys = match std::fs::read_to_string(TRUSTED_KEYS) {
            Ok(text) => trust::parse_keys(&text, TRUSTED_KEYS).map_err(|e| e.to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{TRUSTED_KEYS}: {e}")),
        };
        let clock_floor = std::fs::read_to_string(CLOCK_FLOOR)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Ok(Policy::new(keys, allow_unsigned, clock_floor))
    }

    pub fn new(keys: Vec<PublicKey>, allow_unsigned: bool, clock_floor: u64) -> Policy {
        let mode = match (keys.is_empty(), allow_unsigned) {
            (true, _) => Mode::NoKeys,
            (false, false) => Mode::Signed,
            (false, true) => Mode::UnsignedAllowed,
        };
        Policy {
            keys,
            mode,
            clock_floor,
        }
    }

    /// A policy that refuses everything, naming why (a damaged key file).
    pub fn refusing() -> Policy {
        Policy {
            keys: Vec::new(),
            mode: Mode::Signed,
            clock_floor: 0,
        }
    }

    /// The later of the box's clock and the image's floor.
    pub fn clock_floor_now(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.max(self.clock_floor)
    }
}

/// What was decided for one config (by its SHA-256), for status once it is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub sha256: String,
    pub mode: Mode,
    /// The key that signed it (`SHA256:...`), when signed.
    pub signer: Option<String>,
    pub serial: Option<u64>,
}

impl Verdict {
    /// `/run/lb/trust`: `key=value` lines.
    pub fn render(&self) -> String {
        format!(
            "mode={}\nsigner={}\nserial={}\nsha256={}\n",
            self.mode.name(),
            self.signer.as_deref().unwrap_or(""),
            self.serial.map(|s| s.to_string()).unwrap_or_default(),
            self.sha256
        )
    }
}

/// The [`ConfigGate`] that enforces the policy.
pub struct SignatureGate {
    policy: Policy,
    identity: Identity,
    /// The last verdict, read by the config source when the config is installed.
    verdicts: Arc<Mutex<Option<Verdict>>>,
}

impl SignatureGate {
    pub fn new(policy: Policy, identity: Identity) -> (SignatureGate, Arc<Mutex<Option<Verdict>>>) {
        let verdicts = Arc::new(Mutex::new(None));
        (
            SignatureGate {
                policy,
                identity,
                verdicts: verdicts.clone(),
            },
            verdicts,
        )
    }

    /// The decision, without the fetcher: signature, then `[release]` against this box,
    /// the running config and the clock floor.
    pub fn decide(
        &self,
        body: &[u8],
        signature: Option<&[u8]>,
        running: Option<&[u8]>,
    ) -> Result<Verdict, String> {
        let sha256 = hex(&Sha256::digest(body));
        let release = release_of(body);
        let mut verdict = Verdict {
            sha256: sha256.clone(),
            mode: self.policy.mode.clone(),
            signer: None,
            serial: release.as_ref().map(|r| r.serial),
        };
        match self.policy.mode {
            Mode::NoKeys => return Ok(verdict),
            Mode::UnsignedAllowed => {
                tracing::warn!(
                    sha256 = %&sha256[..12],
                    "config accepted WITHOUT a signature check: lb.unsigned=allow is on the kernel command line; remove it for production"
                );
                return Ok(verdict);
            }
            Mode::Signed => {}
        }
        if self.policy.keys.is_empty() {
            return Err(format!(
                "the image's trusted keys cannot be read ({TRUSTED_KEYS}): no config is applied"
            ));
        }
        let signature = signature.ok_or("unsigned config: no signature beside it")?;
        let key = trust::verify(body, signature, &self.policy.keys).map_err(|e| e.to_string())?;
        verdict.signer = Some(key.fingerprint());
        let running = running.and_then(|bytes| {
            release_of(bytes).map(|r| Running {
                serial: r.serial,
                sha256: hex(&Sha256::digest(bytes)),
            })
        });
        trust::check_release(
            release.as_ref(),
            &sha256,
            &self.identity,
            running.as_ref(),
            self.policy.clock_floor_now(),
        )
        .map_err(|e| format!("signed by {}, but {e}", key.fingerprint()))?;
        tracing::info!(
            signer = %key.fingerprint(),
            comment = %key.comment,
            serial = ?verdict.serial,
            "config signature verified"
        );
        Ok(verdict)
    }
}

impl ConfigGate for SignatureGate {
    fn companions(&self, served_from: &FetchUrl) -> Result<Vec<FetchUrl>, UrlError> {
        match self.policy.mode {
            Mode::Signed => Ok(vec![served_from.with_path_suffix(".sig")?]),
            Mode::NoKeys | Mode::UnsignedAllowed => Ok(Vec::new()),
        }
    }

    fn check(&mut self, candidate: &Candidate<'_>) -> Result<(), String> {
        let signature = candidate.companions.first().map(|c| &c.bytes[..]);
        let running = candidate.running.map(|r| &r.bytes[..]);
        let verdict = self.decide(candidate.body, signature, running)?;
        *self.verdicts.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
        Ok(())
    }
}

/// The `[release]` of a config, read without validating the rest (the validator reports
/// anything else); `None` when it has none or is not TOML.
pub fn release_of(body: &[u8]) -> Option<Release> {
    #[derive(serde::Deserialize)]
    struct Doc {
        release: Option<Raw>,
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        serial: u64,
        node: String,
        not_after: Option<toml::value::Datetime>,
    }
    let text = std::str::from_utf8(body).ok()?;
    let raw = toml::from_str::<Doc>(text).ok()?.release?;
    Some(Release {
        serial: raw.serial,
        node: raw.node,
        not_after: raw
            .not_after
            .as_ref()
            .and_then(lbd::config::epoch_seconds)
            // A not_after that is not a full date-time is the validator's to refuse; here
            // it must not let the config live forever.
            .or(raw.not_after.map(|_| 0)),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(mode_keys: Vec<PublicKey>, allow: bool) -> SignatureGate {
        SignatureGate::new(
            Policy::new(mode_keys, allow, 0),
            Identity {
                macs: vec![[0x52, 0x54, 0, 0, 0, 1]],
                hostname: None,
            },
        )
        .0
    }

    #[test]
    fn release_is_read_without_the_rest() {
        let r = release_of(b"[release]\nserial = 7\nnode = \"lb1\"\nnot_after = 1970-01-01T00:01:00Z\n[service.x]\nnonsense = 1\n").unwrap();
        assert_eq!(
            (r.serial, r.node.as_str(), r.not_after),
            (7, "lb1", Some(60))
        );
        assert!(release_of(b"[node]\n").is_none());
        assert!(release_of(b"not toml [").is_none());
        // A date without a time must not mean "never expires".
        let r =
            release_of(b"[release]\nserial = 1\nnode = \"a\"\nnot_after = 2099-01-01\n").unwrap();
        assert_eq!(r.not_after, Some(0));
    }

    #[test]
    fn without_keys_anything_goes_and_with_the_flag_it_is_said() {
        let v = gate(vec![], false).decide(b"x", None, None).unwrap();
        assert_eq!(v.mode, Mode::NoKeys);
        let keys = lbd::trust::parse_keys(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH t\n",
            "k",
        )
        .unwrap();
        let v = gate(keys.clone(), true).decide(b"x", None, None).unwrap();
        assert_eq!(v.mode, Mode::UnsignedAllowed);
        let err = gate(keys, false).decide(b"x", None, None).unwrap_err();
        assert_eq!(err, "unsigned config: no signature beside it");
        assert!(Verdict {
            sha256: "ab".into(),
            mode: Mode::Signed,
            signer: Some("SHA256:x".into()),
            serial: Some(3)
        }
        .render()
        .contains("mode=signed\nsigner=SHA256:x\nserial=3\n"));
    }
}
