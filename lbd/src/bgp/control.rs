//! BIRD's control-socket protocol, pure: replies as lines, and what lbd reads from them.
//!
//! A reply is lines `DDDD-text` (more follow), ` text` (more text of the previous line's
//! code) and one last `DDDD text`. Codes `0xxx` end a command that worked, `1xxx` carry
//! table rows, `2xxx` table headers, `8xxx` and `9xxx` errors (runtime and syntax). BIRD greets
//! a new connection with `0001 BIRD 2.0.12 ready.`

use serde::Serialize;
use std::net::IpAddr;

/// One line of a reply: its code (the previous line's for a continuation) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// A whole reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub lines: Vec<Line>,
}

/// A line that is not BIRD's protocol.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a BIRD control line: {0:?}")]
pub struct BadLine(pub String);

impl Reply {
    /// The code of the last line.
    pub fn code(&self) -> u16 {
        self.lines.last().map_or(0, |l| l.code)
    }

    /// `8xxx` (runtime error) or `9xxx` (syntax error).
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }

    /// Every line's text, one per line.
    pub fn text(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(|l| l.text.as_str()).collect();
        lines.join("\n")
    }
}

/// Collects the lines of one reply; [`ReplyReader::line`] returns the reply with its last line.
#[derive(Debug, Default)]
pub struct ReplyReader {
    lines: Vec<Line>,
}

impl ReplyReader {
    /// Takes one line (without its `\n`).
    pub fn line(&mut self, raw: &str) -> Result<Option<Reply>, BadLine> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ') {
            let code = self.lines.last().map_or(0, |l| l.code);
            self.lines.push(Line {
                code,
                text: rest.to_string(),
            });
            return Ok(None);
        }
        let bytes = raw.as_bytes();
        if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) {
            return Err(BadLine(raw.to_string()));
        }
        let code: u16 = raw[..4].parse().map_err(|_| BadLine(raw.to_string()))?;
        let text = raw[5..].to_string();
        self.lines.push(Line { code, text });
        match bytes[4] {
            b'-' => Ok(None),
            b' ' => Ok(Some(Reply {
                lines: std::mem::take(&mut self.lines),
            })),
            _ => Err(BadLine(raw.to_string())),
        }
    }
}

/// Parses whole replies from text (fixtures, tests).
pub fn parse_replies(text: &str) -> Result<Vec<Reply>, BadLine> {
    let mut reader = ReplyReader::default();
    let mut out = Vec::new();
    for l in text.lines() {
        if let Some(r) = reader.line(l)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// A BGP session's state (RFC 4271 8.2.2) as BIRD names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BgpState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    /// Something else BIRD says (e.g. `Close`, `Down`).
    Other(String),
}

impl BgpState {
    pub fn parse(s: &str) -> BgpState {
        match s {
            "Idle" => BgpState::Idle,
            "Connect" => BgpState::Connect,
            "Active" => BgpState::Active,
            "OpenSent" => BgpState::OpenSent,
            "OpenConfirm" => BgpState::OpenConfirm,
            "Established" => BgpState::Established,
            other => BgpState::Other(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            BgpState::Idle => "idle",
            BgpState::Connect => "connect",
            BgpState::Active => "active",
            BgpState::OpenSent => "opensent",
            BgpState::OpenConfirm => "openconfirm",
            BgpState::Established => "established",
            BgpState::Other(s) => s,
        }
    }
}

/// One protocol of `show protocols all`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Protocol {
    pub name: String,
    /// `BGP`, `Static`, `Device`, `BFD`...
    pub proto: String,
    /// BIRD's own state: `up`, `start`, `down`...
    pub state: String,
    /// When it entered that state (BIRD's clock, `HH:MM:SS.mmm`).
    pub since: String,
    /// The last column (`Established`, `Active  Socket: Connection refused`).
    pub info: String,
    /// BGP protocols: the session's state.
    pub bgp_state: Option<BgpState>,
    pub neighbor: Option<IpAddr>,
    /// BGP protocols: why the session last went down.
    pub last_error: Option<String>,
    /// Routes exported to the peer.
    pub exported: Option<u64>,
}

/// The protocols of a `show protocols all` reply: a `1002` row each, then its `1006` details.
pub fn protocols(reply: &Reply) -> Vec<Protocol> {
    let mut out: Vec<Protocol> = Vec::new();
    for line in &reply.lines {
        match line.code {
            1002 => {
                let mut cols = line.text.split_whitespace();
                let (Some(name), Some(proto), Some(_table), Some(state), Some(since)) = (
                    cols.next(),
                    cols.next(),
                    cols.next(),
                    cols.next(),
                    cols.next(),
                ) else {
                    continue;
                };
                let info = cols.collect::<Vec<_>>().join(" ");
                out.push(Protocol {
                    name: name.to_string(),
                    proto: proto.to_string(),
                    state: state.to_string(),
                    since: since.to_string(),
                    info,
                    bgp_state: None,
                    neighbor: None,
                    last_error: None,
                    exported: None,
                });
            }
            1006 => {
                let Some(p) = out.last_mut() else { continue };
                let text = line.text.trim();
                let Some((key, value)) = text.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match key {
                    "BGP state" => p.bgp_state = Some(BgpState::parse(value)),
                    "Neighbor address" => p.neighbor = value.parse().ok(),
                    "Last error" => p.last_error = Some(value.to_string()),
                    "Routes" => {
                        // "0 imported, 1 exported, 0 preferred": summed over channels.
                        let n = value
                            .split(',')
                            .find_map(|part| part.trim().strip_suffix(" exported"))
                            .and_then(|n| n.trim().parse::<u64>().ok());
                        if let Some(n) = n {
                            p.exported = Some(p.exported.unwrap_or(0) + n);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

/// The prefixes of a `show route export PROTOCOL` reply (its `1007` rows).
pub fn exported_prefixes(reply: &Reply) -> Vec<String> {
    reply
        .lines
        .iter()
        .filter(|l| l.code == 1007)
        .filter_map(|l| l.text.split_whitespace().next())
        .filter(|w| w.contains('/'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies captured from BIRD 2.0.12 (Debian bookworm's `bird2`) on its control socket,
    /// one balancer and one router in two network namespaces; `captured-with.conf` is the
    /// balancer's config.
    fn fixture(name: &str) -> Reply {
        let text = match name {
            "hello" => include_str!("testdata/hello.txt"),
            "show_protocols_all" => include_str!("testdata/show_protocols_all.txt"),
            "show_protocols_peer_lost" => include_str!("testdata/show_protocols_peer_lost.txt"),
            "show_route_export" => include_str!("testdata/show_route_export.txt"),
            "configure" => include_str!("testdata/configure.txt"),
            "configure_bad" => include_str!("testdata/configure_bad.txt"),
            "unknown" => include_str!("testdata/unknown.txt"),
            _ => unreachable!(),
        };
        let mut replies = parse_replies(text).unwrap();
        assert_eq!(replies.len(), 1, "{name}: one reply");
        replies.pop().unwrap()
    }

    #[test]
    fn greeting_and_configure() {
        let hello = fixture("hello");
        assert_eq!(hello.code(), 1);
        assert_eq!(hello.text(), "BIRD 2.0.12 ready.");
        let ok = fixture("configure");
        assert_eq!(ok.code(), 3);
        assert!(!ok.is_error());
        assert_eq!(
            ok.text(),
            "Reading configuration from lb.conf\nReconfigured"
        );
        let bad = fixture("configure_bad");
        assert_eq!(bad.code(), 8002);
        assert!(bad.is_error());
        assert!(bad.text().contains("lb.conf:24:10 syntax error"));
        let unknown = fixture("unknown");
        assert_eq!(unknown.code(), 9001);
        assert!(unknown.is_error());
    }

    #[test]
    fn protocols_with_their_bgp_states_and_errors() {
        let ps = protocols(&fixture("show_protocols_all"));
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["device1", "lbd_vips4", "lbd_bfd", "peer_tor1", "peer_down"]
        );
        let up = &ps[3];
        assert_eq!(up.proto, "BGP");
        assert_eq!(up.state, "up");
        assert_eq!(up.bgp_state, Some(BgpState::Established));
        assert_eq!(up.neighbor, Some("10.77.0.1".parse().unwrap()));
        assert_eq!(up.last_error, None);
        assert_eq!(up.exported, Some(1));
        let down = &ps[4];
        assert_eq!(down.state, "start");
        assert_eq!(down.bgp_state, Some(BgpState::Active));
        assert_eq!(down.last_error.as_deref(), Some("Socket: No route to host"));
        assert_eq!(down.info, "Active Socket: No route to host");
        assert_eq!(ps[1].bgp_state, None);
        let lost = protocols(&fixture("show_protocols_peer_lost"));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].bgp_state, Some(BgpState::Active));
        assert_eq!(
            lost[0].last_error.as_deref(),
            Some("Received: Administrative shutdown")
        );
    }

    #[test]
    fn exported_routes() {
        assert_eq!(
            exported_prefixes(&fixture("show_route_export")),
            ["198.51.100.10/32"]
        );
    }

    #[test]
    fn continuation_takes_the_previous_code_and_bad_lines_are_refused() {
        let mut r = ReplyReader::default();
        assert_eq!(r.line("1006-  BGP state: Idle"), Ok(None));
        assert_eq!(r.line("     Last error: x"), Ok(None));
        let reply = r.line("0000 ").unwrap().unwrap();
        assert_eq!(reply.lines[1].code, 1006);
        assert!(r.line("hello").is_err());
        assert!(r.line("12a4 x").is_err());
        assert!(r.line("1234x").is_err());
    }
}
