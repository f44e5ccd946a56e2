//! What a health check is configured with: its kind, the answers it accepts, what a failure
//! does, and the secrets it carries.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Inclusive range of acceptable HTTP status codes: `200`, `"200"`, `"200-299"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

fn parse_status(s: &str, whole: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid HTTP status {whole:?}: use a code from 100 to 599 or a range like \"200-299\""
        )),
    }
}

impl FromStr for StatusRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (low, high) = match s.split_once('-') {
            Some((a, b)) => (parse_status(a, s)?, parse_status(b, s)?),
            None => {
                let n = parse_status(s, s)?;
                (n, n)
            }
        };
        if low > high {
            return Err(format!(
                "invalid status range {s:?}: the low end comes first"
            ));
        }
        Ok(StatusRange { low, high })
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an HTTP status (200) or range (\"200-299\")")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusRange, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusRange, E> {
                n.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusRange, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `expect_status`: a list of statuses and ranges, or one of them written alone (`200`,
/// `"200-299"`), which is read as a one-item list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusList(pub Vec<StatusRange>);

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("HTTP statuses and ranges: 200, \"200-299\" or [200, \"301-302\"]")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<StatusList, E> {
                n.to_string()
                    .parse()
                    .map(|r| StatusList(vec![r]))
                    .map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusList, E> {
                self.visit_i64(n.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StatusList, E> {
                s.parse().map(|r| StatusList(vec![r])).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<StatusList, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element::<StatusRange>()? {
                    out.push(r);
                }
                Ok(StatusList(out))
            }
        }
        d.deserialize_any(V)
    }
}
/// What a failed health check does to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Set the weight to 0: no new connections, established ones continue
    /// (keepalived `inhibit_on_failure`, ldirectord `quiescent = yes`).
    #[default]
    Inhibit,
    /// Remove the real from the kernel table (ldirectord `quiescent = no`).
    Remove,
}

impl FromStr for OnFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "inhibit" | "quiescent" | "weight0" => Ok(OnFailure::Inhibit),
            "remove" => Ok(OnFailure::Remove),
            _ => Err(format!(
                "unknown on_failure {s:?}: use \"inhibit\" (weight 0, keeps established connections) or \"remove\""
            )),
        }
    }
}
deserialize_via_from_str!(OnFailure, "inhibit or remove");
/// Kinds of health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    Tcp,
    Http,
    Https,
    Udp,
    Dns,
    Smtp,
    Exec,
    Mysql,
    Pgsql,
    /// No check: the real is always considered up.
    None,
}

impl CheckType {
    pub const ALL: [CheckType; 10] = [
        CheckType::Tcp,
        CheckType::Http,
        CheckType::Https,
        CheckType::Udp,
        CheckType::Dns,
        CheckType::Smtp,
        CheckType::Exec,
        CheckType::Mysql,
        CheckType::Pgsql,
        CheckType::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Https => "https",
            CheckType::Udp => "udp",
            CheckType::Dns => "dns",
            CheckType::Smtp => "smtp",
            CheckType::Exec => "exec",
            CheckType::Mysql => "mysql",
            CheckType::Pgsql => "pgsql",
            CheckType::None => "none",
        }
    }
}

impl FromStr for CheckType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "connect" => "tcp",
            "postgresql" | "postgres" => "pgsql",
            "external" | "misc" => "exec",
            other => other,
        };
        CheckType::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| {
                let names: Vec<&str> = CheckType::ALL.iter().map(|t| t.name()).collect();
                format!("unknown check type {s:?}: use one of {}", names.join(", "))
            })
    }
}
deserialize_via_from_str!(CheckType, "a check type such as \"http\"");

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A secret from the config (a check's password): used by the checker, never shown. `Debug`
/// and `Serialize` print a placeholder, so `lbd check --dump`, the control API and logs built
/// from the model cannot leak it; equality still compares the text, so a changed password is
/// a changed check.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `Debug` and `Serialize` print instead of the secret.
    pub const REDACTED: &'static str = "<redacted>";

    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the code that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Secret({})", Secret::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Secret::REDACTED)
    }
}
