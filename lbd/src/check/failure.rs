//! What one check run found: up (maybe with a weight), or down with a reason an operator can act
//! on ("connection refused", "bad status 503", "body mismatch ..."). Pure.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The result of one check run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    /// The real answered as expected. `weight` is set by checks that report a weight (an exec
    /// check with `weight_from_exit`); `None` leaves the current weight as it is.
    Up {
        weight: Option<u32>,
    },
    Down(Failure),
}

impl Outcome {
    pub const UP: Outcome = Outcome::Up { weight: None };

    pub fn is_up(&self) -> bool {
        matches!(self, Outcome::Up { .. })
    }
}

impl From<Result<(), Failure>> for Outcome {
    fn from(r: Result<(), Failure>) -> Outcome {
        match r {
            Ok(()) => Outcome::UP,
            Err(f) => Outcome::Down(f),
        }
    }
}

/// Why a check failed. `Display` is the reason logged and shown in status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Failure {
    /// No (complete) answer within the check's timeout; `during` says what the check was
    /// waiting for ("connecting", "the response", ...).
    Timeout {
        after: Duration,
        during: &'static str,
    },
    /// TCP RST to the SYN: nothing listens on the port.
    Refused,
    /// The connection was reset while talking.
    Reset,
    /// ICMP host/network unreachable, or no neighbour answered.
    Unreachable(String),
    /// UDP: ICMP port unreachable came back.
    PortUnreachable,
    /// The peer closed the connection before the check had its answer.
    Closed(String),
    /// The source address could not be bound (not an address of this box?).
    Bind(String),
    /// Another socket error.
    Io(String),
    /// TLS handshake or certificate problem.
    Tls(String),
    /// HTTP status outside the expected ranges.
    BadStatus(u16),
    /// HTTP body does not contain / match what was expected.
    BodyMismatch(String),
    /// UDP: the reply does not start with the expected bytes (`expect_hex`).
    ReplyMismatch(String),
    /// HTTP body MD5 (genhash) differs.
    DigestMismatch { expected: String, got: String },
    /// The peer spoke, but not the protocol (garbled HTTP, not an SMTP banner, ...).
    Protocol(String),
    /// The peer spoke the protocol and said no (SMTP 554, MySQL "too many connections", a DNS
    /// NXDOMAIN, PostgreSQL "the database system is starting up", ...).
    Rejected(String),
    /// Exec check: the command exited with this status.
    Exit(i32),
    /// Exec check: the command was killed by this signal.
    Signal(i32),
    /// Exec check: the command could not be started.
    Spawn(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Failure::Timeout { after, during } => {
                write!(f, "timeout after {}", crate::config::ConfigDuration(*after))?;
                if !during.is_empty() {
                    write!(f, " ({during})")?;
                }
                Ok(())
            }
            Failure::Refused => f.write_str("connection refused"),
            Failure::Reset => f.write_str("connection reset"),
            Failure::Unreachable(what) => f.write_str(what),
            Failure::PortUnreachable => f.write_str("port unreachable"),
            Failure::Closed(when) => write!(f, "connection closed {when}"),
            Failure::Bind(e) => write!(f, "cannot bind the source address: {e}"),
            Failure::Io(e) => write!(f, "I/O error: {e}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::BadStatus(code) => write!(f, "bad status {code}"),
            Failure::BodyMismatch(e) => write!(f, "body mismatch: {e}"),
            Failure::ReplyMismatch(e) => write!(f, "reply mismatch: {e}"),
            Failure::DigestMismatch { expected, got } => {
                write!(f, "digest mismatch: body MD5 {got}, expected {expected}")
            }
            Failure::Protocol(e) => write!(f, "protocol error: {e}"),
            Failure::Rejected(e) => write!(f, "rejected: {e}"),
            Failure::Exit(code) => write!(f, "exit status {code}"),
            Failure::Signal(sig) => write!(f, "killed by signal {sig}"),
            Failure::Spawn(e) => write!(f, "cannot run the command: {e}"),
        }
    }
}

impl Failure {
    /// Classifies a socket error. `when` says what the check was doing ("connecting", "reading
    /// the response") for errors that need context.
    pub fn from_io(e: &std::io::Error, when: &str) -> Failure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => return Failure::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => return Failure::Reset,
            K::UnexpectedEof => return Failure::Closed(when.to_string()),
            _ => {}
        }
        match e.raw_os_error() {
            Some(code) if code == EHOSTUNREACH => Failure::Unreachable("host unreachable".into()),
            Some(code) if code == ENETUNREACH => Failure::Unreachable("network unreachable".into()),
            _ => Failure::Io(format!("{when}: {e}")),
        }
    }
}

// Linux errno values; kept here so the pure part needs no libc.
const EHOSTUNREACH: i32 = 113;
const ENETUNREACH: i32 = 101;

/// How an exec check's exit status maps to a result.
///
/// Without `weight_from_exit`: 0 is up, anything else down. With it (keepalived's
/// `misc_dynamic`): 0 is up with the weight unchanged, 1 is down, 2–255 is up with weight
/// `status - 2`.
pub fn exit_outcome(status: i32, weight_from_exit: bool) -> Outcome {
    match (status, weight_from_exit) {
        (0, _) => Outcome::UP,
        (2..=255, true) => Outcome::Up {
            weight: Some((status - 2) as u32),
        },
        (code, _) => Outcome::Down(Failure::Exit(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_like_an_operator_expects() {
        let cases = [
            (
                Failure::Timeout {
                    after: Duration::from_secs(3),
                    during: "",
                },
                "timeout after 3s",
            ),
            (
                Failure::Timeout {
                    after: Duration::from_millis(250),
                    during: "connecting",
                },
                "timeout after 250ms (connecting)",
            ),
            (Failure::Refused, "connection refused"),
            (Failure::BadStatus(503), "bad status 503"),
            (
                Failure::BodyMismatch("\"OK\" not found".into()),
                "body mismatch: \"OK\" not found",
            ),
            (Failure::Exit(1), "exit status 1"),
        ];
        for (f, text) in cases {
            assert_eq!(f.to_string(), text);
        }
    }

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            Failure::from_io(&Error::from(ErrorKind::ConnectionRefused), "connecting"),
            Failure::Refused
        );
        assert_eq!(
            Failure::from_io(&Error::from_raw_os_error(113), "connecting"),
            Failure::Unreachable("host unreachable".into())
        );
        assert_eq!(
            Failure::from_io(&Error::from(ErrorKind::UnexpectedEof), "before the banner"),
            Failure::Closed("before the banner".into())
        );
    }

    #[test]
    fn exit_status_like_misc_dynamic() {
        assert_eq!(exit_outcome(0, false), Outcome::UP);
        assert_eq!(exit_outcome(3, false), Outcome::Down(Failure::Exit(3)));
        assert_eq!(exit_outcome(0, true), Outcome::UP);
        assert_eq!(exit_outcome(1, true), Outcome::Down(Failure::Exit(1)));
        assert_eq!(exit_outcome(2, true), Outcome::Up { weight: Some(0) });
        assert_eq!(exit_outcome(12, true), Outcome::Up { weight: Some(10) });
        assert_eq!(exit_outcome(255, true), Outcome::Up { weight: Some(253) });
    }
}
