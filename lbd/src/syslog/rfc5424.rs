//! RFC 5424 syslog messages, formatted from log events. Pure: the caller supplies the clock's
//! reading, the host name and the process id.
//!
//! ```text
//! <30>1 2025-03-01T12:00:00.123456Z lb1 lbd 812 - [lb@32473 level="INFO" uptime="12.345678" target="lbd::vrrp" instance="VI_1"] VI_1 is master
//! ```
//!
//! - PRI: facility `daemon` (3) × 8 + severity (error 3, warning 4, info 6, debug 7).
//! - TIMESTAMP: UTC with microseconds; HOSTNAME `-` when unknown; MSGID `-`.
//! - STRUCTURED-DATA: one element `lb@32473` (32473 is the enterprise number RFC 5612 reserves
//!   for documentation) with the level, seconds since boot, the event's target and its fields,
//!   so a collector can filter on them without parsing the text.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The structured-data id of our element.
pub const SD_ID: &str = "lb@32473";
/// syslog facility `daemon`.
pub const FACILITY_DAEMON: u8 = 3;
/// Largest message sent in one UDP datagram (RFC 5426 says receivers should take 2048 octets).
pub const MAX_UDP_LEN: usize = 2048;

/// Severity (RFC 5424 6.2.1), from a log level name (`ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`).
pub fn severity(level: &str) -> u8 {
    match level {
        "ERROR" => 3,
        "WARN" => 4,
        "INFO" => 6,
        _ => 7,
    }
}

/// What one message says; the sender fills in host and process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub time: SystemTime,
    pub hostname: &'a str,
    pub app: &'a str,
    pub pid: u32,
    pub level: &'a str,
    /// Time since boot.
    pub uptime: Duration,
    pub target: &'a str,
    pub fields: &'a [(String, String)],
    pub message: &'a str,
}

/// The message text (no framing, no trailing newline).
pub fn format(p: &Parts) -> String {
    let pri = FACILITY_DAEMON * 8 + severity(p.level);
    let mut s = String::with_capacity(128 + p.message.len());
    let _ = write!(
        s,
        "<{pri}>1 {} {} {} {} - [{SD_ID}",
        timestamp(p.time),
        header_field(p.hostname, 255),
        header_field(p.app, 48),
        p.pid
    );
    param(&mut s, "level", p.level);
    param(
        &mut s,
        "uptime",
        &format!("{}.{:06}", p.uptime.as_secs(), p.uptime.subsec_micros()),
    );
    param(&mut s, "target", p.target);
    for (k, v) in p.fields {
        param(&mut s, &sd_name(k), v);
    }
    s.push(']');
    if !p.message.is_empty() {
        s.push(' ');
        s.push_str(p.message);
    }
    s
}

/// `message` cut to `max` bytes at a character boundary.
pub fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A header field: printable US-ASCII, at most `max` characters, `-` (NILVALUE) when empty.
fn header_field(text: &str, max: usize) -> String {
    let t: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// An SD-NAME: printable US-ASCII without `=`, space, `]` and `"`, 1 to 32 characters.
fn sd_name(key: &str) -> String {
    let n: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    if n.is_empty() {
        "_".into()
    } else {
        n
    }
}

/// ` name="value"` with `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn param(s: &mut String, name: &str, value: &str) {
    s.push(' ');
    s.push_str(name);
    s.push_str("=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
}

/// RFC 3339 UTC with microseconds: `2025-03-01T12:00:00.123456Z`.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (leap day), 2024-12-31 23:59:59.5
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1_735_689_599_500)),
            "2024-12-31T23:59:59.500000Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_micros(4_102_444_800_000_001)),
            "2100-01-01T00:00:00.000001Z"
        );
    }

    #[test]
    fn formats_a_message() {
        let fields = vec![
            ("instance".to_string(), "VI_1".to_string()),
            ("odd key=\"x\"]".to_string(), "a\"b\\c]d".to_string()),
        ];
        let p = Parts {
            time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            hostname: "lb1",
            app: "lbd",
            pid: 812,
            level: "WARN",
            uptime: Duration::from_micros(12_345_678),
            target: "lbd::vrrp",
            fields: &fields,
            message: "VI_1 is master",
        };
        assert_eq!(
            format(&p),
            "<28>1 2023-11-14T22:13:20.123456Z lb1 lbd 812 - [lb@32473 level=\"WARN\" \
             uptime=\"12.345678\" target=\"lbd::vrrp\" instance=\"VI_1\" \
             odd_key__x__=\"a\\\"b\\\\c\\]d\"] VI_1 is master"
        );
        let p = Parts {
            hostname: "",
            level: "ERROR",
            message: "",
            fields: &[],
            ..p
        };
        assert!(format(&p).starts_with("<27>1 2023-11-14T22:13:20.123456Z - lbd 812 - ["));
        assert!(format(&p).ends_with("target=\"lbd::vrrp\"]"));
    }

    #[test]
    fn severities_and_truncation() {
        assert_eq!(severity("ERROR"), 3);
        assert_eq!(severity("WARN"), 4);
        assert_eq!(severity("INFO"), 6);
        assert_eq!(severity("DEBUG"), 7);
        assert_eq!(severity("TRACE"), 7);
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
