//! Converters from keepalived.conf and ldirectord.cf to our config language.
//!
//! Each converter is a pure function from source text (and, for keepalived's `include`, a
//! file-system seam) to an [`out::Output`] and a list of [`Warning`]s: one warning, with the
//! file, line and text of the source line, for every construct that has no equivalent in lbd or
//! whose meaning changes. Malformed input is a [`ConvertError`] naming the file and line.
//!
//! The result is meant to validate as is and, loaded by lbd with every real healthy, to give
//! the IPVS table the original daemon would have programmed.

pub mod keepalived;
pub mod ldirectord;
pub mod out;

use std::fmt;
use std::path::{Path, PathBuf};

/// Choices the source file cannot answer.
#[derive(Clone, Debug)]
pub struct Options {
    /// Interface of a VRRP instance made up for VIPs no source instance holds (ldirectord has
    /// no VRRP at all: heartbeat or pacemaker moved its addresses).
    pub interface: String,
    /// Virtual router id of such an instance.
    pub vrid: u8,
    /// Priority of such an instance on this node.
    pub priority: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interface: "eth0".into(),
            vrid: 51,
            priority: 100,
        }
    }
}

/// A position in a source file (line numbers start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub file: usize,
    pub line: usize,
}

/// The text of every file read, for messages.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub files: Vec<(String, Vec<String>)>,
}

impl Sources {
    pub fn add(&mut self, name: &str, text: &str) -> usize {
        self.files.push((
            name.to_string(),
            text.lines().map(|l| l.to_string()).collect(),
        ));
        self.files.len() - 1
    }

    pub fn name(&self, at: Loc) -> &str {
        self.files.get(at.file).map_or("?", |f| f.0.as_str())
    }

    pub fn line(&self, at: Loc) -> &str {
        self.files
            .get(at.file)
            .and_then(|f| f.1.get(at.line.wrapping_sub(1)))
            .map_or("", |l| l.as_str())
    }

    /// "file:line".
    pub fn at(&self, at: Loc) -> String {
        format!("{}:{}", self.name(at), at.line)
    }

    pub fn warning(&self, at: Loc, message: impl Into<String>) -> Warning {
        Warning {
            file: self.name(at).to_string(),
            line: at.line,
            source: redact_line(self.line(at).trim()),
            message: message.into(),
        }
    }

    pub fn error(&self, at: Loc, message: impl Into<String>) -> ConvertError {
        ConvertError::Syntax {
            file: self.name(at).to_string(),
            line: at.line,
            source_line: redact_line(self.line(at).trim()),
            message: message.into(),
        }
    }
}

/// Source keys whose values are secrets (keepalived's `auth_pass`, SSL `password`,
/// ldirectord's `passwd`, `secret` of RADIUS checks): messages quote the line without them.
const SECRET_KEYS: &[&str] = &["auth_pass", "password", "passwd", "secret"];

/// A source line as messages may show it: the value of a secret key replaced.
pub fn redact_line(line: &str) -> String {
    let key_end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = &line[..key_end];
    if SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k)) {
        let sep = line[key_end..]
            .chars()
            .take_while(|c| c.is_whitespace() || *c == '=')
            .collect::<String>();
        format!("{key}{sep}<redacted>")
    } else {
        line.to_string()
    }
}

/// Something in the source that lbd does not do, or does differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    /// The source line, trimmed.
    pub source: String,
    pub message: String,
}

#[cfg(test)]
mod redact_tests {
    use super::redact_line;

    #[test]
    fn secret_values_are_not_quoted() {
        assert_eq!(redact_line("auth_pass s3cret"), "auth_pass <redacted>");
        assert_eq!(redact_line("passwd=s3cret"), "passwd=<redacted>");
        assert_eq!(redact_line("PASSWORD  x y"), "PASSWORD  <redacted>");
        assert_eq!(redact_line("priority 100"), "priority 100");
        assert_eq!(redact_line("passwordless yes"), "passwordless yes");
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}\n    | {}",
            self.file, self.line, self.message, self.source
        )
    }
}

/// Why a source file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{file}:{line}: {message}\n    | {source_line}")]
    Syntax {
        file: String,
        line: usize,
        source_line: String,
        message: String,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The conversion gave a config lbd refuses: settings the converter does not carry over
    /// yet. Never written out; a bug of the converter (fuzzing looks for these).
    #[error("{file}: converted into a config lbd refuses (a combination of settings the converter cannot carry over yet; please report it):\n{errors}")]
    NotAccepted { file: String, errors: String },
}

/// `c` if lbd accepts the config it holds; else the error that says why, so a converter never
/// hands out a config that lbd would refuse.
pub fn accepted(file: &str, c: Conversion) -> Result<Conversion, ConvertError> {
    match lbd::config::parse("converted.toml", &c.toml()) {
        Ok(_) => Ok(c),
        Err(e) => Err(ConvertError::NotAccepted {
            file: file.to_string(),
            errors: e.to_string(),
        }),
    }
}

impl ConvertError {
    /// The line the error is at (0 for unreadable files).
    pub fn line(&self) -> usize {
        match self {
            ConvertError::Syntax { line, .. } => *line,
            ConvertError::Read { .. } | ConvertError::NotAccepted { .. } => 0,
        }
    }
}

/// A converted config.
#[derive(Clone, Debug)]
pub struct Conversion {
    pub output: out::Output,
    pub warnings: Vec<Warning>,
}

impl Conversion {
    /// The config as TOML, with the warnings listed in its header.
    pub fn toml(&self) -> String {
        let mut o = self.output.clone();
        if !self.warnings.is_empty() {
            o.header.push(String::new());
            o.header.push(format!(
                "{} construct{} had no exact equivalent (also printed as warnings):",
                self.warnings.len(),
                if self.warnings.len() == 1 { "" } else { "s" }
            ));
            for w in &self.warnings {
                o.header
                    .push(format!("  {}:{}: {}", w.file, w.line, w.message));
            }
        }
        o.render()
    }
}

/// How the keepalived converter reads included files.
pub trait FileSystem {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The files matching a glob pattern, sorted.
    fn glob(&self, pattern: &str) -> Vec<PathBuf>;
}

/// The real file system.
pub struct RealFs;

impl FileSystem for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = match glob::glob(pattern) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        };
        found.sort();
        found
    }
}

/// Files held in memory (tests).
#[derive(Default)]
pub struct MemFs(pub std::collections::BTreeMap<PathBuf, String>);

impl FileSystem for MemFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }

    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        let Ok(p) = glob::Pattern::new(pattern) else {
            return Vec::new();
        };
        self.0
            .keys()
            .filter(|k| p.matches_path(k))
            .cloned()
            .collect()
    }
}

/// Whether `name` is a host name our `[node] hostname` accepts.
/// Whether lbd can use `text` as an `expect_body_regex` (its checks use regex-lite's syntax).
pub fn body_regex_problem(text: &str) -> Option<String> {
    regex_lite::Regex::new(text).err().map(|e| e.to_string())
}

pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// VRRP instances for service VIPs that no source instance holds: lbd moves every service VIP
/// with VRRP (a lone balancer simply becomes master), so each family gets one new instance,
/// and each such VIP a warning at the line that used it.
pub fn adopt_orphan_vips(
    orphans: &[(std::net::IpAddr, Loc)],
    interface: &str,
    used: &std::collections::BTreeSet<(String, u8)>,
    taken: &std::collections::BTreeSet<String>,
    opts: &Options,
    src: &Sources,
    why: &str,
) -> (Vec<out::Instance>, Vec<Warning>) {
    use out::Value;
    let mut instances = Vec::new();
    let mut warnings = Vec::new();
    let mut used = used.clone();
    let mut taken = taken.clone();
    for (v6, base) in [(false, "VI_LVS"), (true, "VI_LVS6")] {
        let vips: Vec<&(std::net::IpAddr, Loc)> = orphans
            .iter()
            .filter(|(ip, _)| ip.is_ipv6() == v6)
            .collect();
        let Some((_, first_at)) = vips.first() else {
            continue;
        };
        let name = out::unique_name(base.to_string(), &mut taken);
        let mut vrid = opts.vrid.max(1);
        while used.contains(&(interface.to_string(), vrid)) && vrid < 255 {
            vrid += 1;
        }
        used.insert((interface.to_string(), vrid));
        for (ip, at) in &vips {
            warnings.push(src.warning(
                *at,
                format!(
                    "VIP {ip} is in no VRRP instance ({why}); lbd moves every service VIP with VRRP, so it is in the new instance {name} on {interface} (vrid {vrid}, priority {}): set interface, vrid and priority for this pair (lbctl convert --interface, --vrid, --priority)",
                    opts.priority
                ),
            ));
        }
        let entries = vec![
            ("interface".to_string(), Value::str(interface)),
            ("vrid".into(), Value::Int(vrid.into())),
            ("priority".into(), Value::Int(opts.priority.into())),
            ("version".into(), Value::Int(3)),
            (
                "vips".into(),
                Value::List(
                    vips.iter()
                        .map(|(ip, _)| Value::str(ip.to_string()))
                        .collect(),
                ),
            ),
        ];
        instances.push(out::Instance {
            name,
            origin: out::Origin {
                at: src.at(*first_at),
                what: "made up for the VIPs of the services below".into(),
            },
            entries,
        });
    }
    (instances, warnings)
}

/// Seconds with an optional fraction ("2", "0.5", "2.71828") as a duration, to the millisecond.
pub fn parse_seconds(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('-') || t.starts_with('+') {
        return None;
    }
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    if !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || (whole.is_empty() && frac.is_empty())
    {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ms = 0u64;
    for (i, c) in frac.chars().take(3).enumerate() {
        ms += u64::from(c.to_digit(10)?) * 10u64.pow(2 - i as u32);
    }
    // Round up what is below a millisecond: a timer never becomes 0 by conversion.
    if frac.len() > 3 && frac[3..].chars().any(|c| c != '0') {
        ms += 1;
    }
    Some(std::time::Duration::from_secs(secs) + std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds(".25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_seconds("2.71828"), Some(Duration::from_millis(2719)));
        assert_eq!(parse_seconds("1.0000"), Some(Duration::from_secs(1)));
        assert_eq!(parse_seconds("x"), None);
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("."), None);
        assert_eq!(parse_seconds(""), None);
    }
}
