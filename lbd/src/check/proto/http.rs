//! HTTP/1.x for the HTTP(S) checks: the request, the response head, chunked bodies, and the
//! body rules (substring as ldirectord's `receive`, regex, and keepalived genhash's MD5). Pure.
//!
//! The request is HTTP/1.0 with `Connection: close`, as keepalived's checker sends it (genhash
//! `-P 1.0c`): servers answer without chunking and close after the body, and the MD5 of that
//! body is the digest genhash prints.

use crate::check::failure::Failure;
use crate::config::StatusRange;
use md5::{Digest, Md5};
use std::fmt::Write;

/// Bodies larger than this are not read to the end (the check fails).
pub const MAX_BODY: usize = 8 << 20;

/// The check's request. `host` is the Host header value.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lbd-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head (status line and headers, including the blank line).
    pub len: usize,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

/// Parses the response head from the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > 64 * 1024 {
                return Err(Failure::Protocol("HTTP response head over 64 KiB".into()));
            }
            return Ok(None);
        }
        Err(e) => {
            let start: String = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into();
            return Err(Failure::Protocol(format!(
                "bad HTTP response ({e}): {start:?}"
            )));
        }
    };
    let status = resp.code.unwrap_or(0);
    let mut content_length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked");
        }
    }
    Ok(Some(Head {
        status,
        len,
        content_length,
        chunked,
    }))
}

/// Decodes a complete chunked body (trailers are dropped).
pub fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, Failure> {
    let bad = |what: &str| Failure::Protocol(format!("bad chunked body: {what}"));
    let mut out = Vec::with_capacity(body.len());
    loop {
        match httparse::parse_chunk_size(body) {
            Ok(httparse::Status::Complete((used, size))) => {
                body = &body[used..];
                if size == 0 {
                    return Ok(out);
                }
                let size = usize::try_from(size).map_err(|_| bad("chunk too large"))?;
                let chunk = body.get(..size).ok_or_else(|| bad("truncated chunk"))?;
                out.extend_from_slice(chunk);
                body = body[size..]
                    .strip_prefix(b"\r\n")
                    .ok_or_else(|| bad("chunk not followed by CRLF"))?;
            }
            Ok(httparse::Status::Partial) => return Err(bad("truncated")),
            Err(_) => return Err(bad("invalid chunk size")),
        }
    }
}

/// Whether `status` is one of the expected codes.
pub fn status_ok(expected: &[StatusRange], status: u16) -> bool {
    expected.iter().any(|r| r.contains(status))
}

/// An HTTP check's request, and what its response must be.
#[derive(Debug)]
pub struct Exchange {
    pub request: Vec<u8>,
    pub expect_status: Vec<StatusRange>,
    pub body: BodyRules,
}

/// One response, fed as its bytes arrive and judged as soon as it can be: at the head when the
/// body does not matter, at `Content-Length`, or when the server closes.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    head: Option<Head>,
}

impl Reader {
    /// What a timeout interrupted.
    pub fn waiting_for(&self) -> &'static str {
        if self.head.is_some() {
            "reading the body"
        } else {
            "waiting for the response"
        }
    }

    /// Where a read error happened.
    pub fn reading(&self) -> &'static str {
        if self.head.is_some() {
            "reading the body"
        } else {
            "before the response"
        }
    }

    /// Whether the head has been read.
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Takes the next bytes of the response; the verdict once there is one.
    pub fn feed(&mut self, x: &Exchange, data: &[u8]) -> Option<Result<(), Failure>> {
        self.buf.extend_from_slice(data);
        self.judge(x, false).transpose()
    }

    /// The server closed the connection: the verdict on what came.
    pub fn end(&mut self, x: &Exchange) -> Result<(), Failure> {
        match self.judge(x, true) {
            Ok(Some(())) => Ok(()),
            Ok(None) => Err(Failure::Closed("before the response".into())),
            Err(f) => Err(f),
        }
    }

    /// `Ok(None)`: more is needed (never at the end).
    fn judge(&mut self, x: &Exchange, end: bool) -> Result<Option<()>, Failure> {
        let head = match &self.head {
            Some(head) => head,
            None => {
                let Some(head) = parse_head(&self.buf)? else {
                    return Ok(None);
                };
                if !status_ok(&x.expect_status, head.status) {
                    return Err(Failure::BadStatus(head.status));
                }
                if !x.body.needs_body() {
                    return Ok(Some(()));
                }
                self.head.insert(head)
            }
        };
        let too_large = || Failure::Protocol(format!("body larger than {} MiB", MAX_BODY >> 20));
        let body = &self.buf[head.len..];
        let length = head.content_length.filter(|_| !head.chunked);
        match length {
            Some(n) if n > MAX_BODY as u64 => return Err(too_large()),
            Some(n) if body.len() as u64 >= n => {
                return x.body.check(&body[..n as usize]).map(Some);
            }
            None if body.len() > MAX_BODY => return Err(too_large()),
            _ if !end => return Ok(None),
            _ => {}
        }
        if let Some(n) = length {
            return Err(Failure::Closed(format!(
                "after {} of {n} body bytes",
                body.len()
            )));
        }
        if head.chunked {
            x.body.check(&dechunk(body)?)
        } else {
            x.body.check(body)
        }
        .map(Some)
    }
}

/// Lower-case hex MD5 of the body, as genhash prints it.
pub fn md5_hex(body: &[u8]) -> String {
    let sum = Md5::digest(body);
    let mut s = String::with_capacity(32);
    for b in sum.iter() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What the body must satisfy (all that are set).
#[derive(Clone, Debug, Default)]
pub struct BodyRules {
    pub substring: Option<String>,
    pub regex: Option<regex_lite::Regex>,
    /// Lower-case hex MD5.
    pub digest: Option<String>,
}

impl BodyRules {
    /// Whether the body has to be read at all.
    pub fn needs_body(&self) -> bool {
        self.substring.is_some() || self.regex.is_some() || self.digest.is_some()
    }

    pub fn check(&self, body: &[u8]) -> Result<(), Failure> {
        if let Some(s) = &self.substring {
            if !s.is_empty() && !body.windows(s.len()).any(|w| w == s.as_bytes()) {
                return Err(Failure::BodyMismatch(format!("{s:?} not found")));
            }
        }
        if let Some(re) = &self.regex {
            if !re.is_match(&String::from_utf8_lossy(body)) {
                return Err(Failure::BodyMismatch(format!(
                    "no match for /{}/",
                    re.as_str()
                )));
            }
        }
        if let Some(expected) = &self.digest {
            let got = md5_hex(body);
            if &got != expected {
                return Err(Failure::DigestMismatch {
                    expected: expected.clone(),
                    got,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_http_1_0_with_host() {
        assert_eq!(
            request("/health?x=1", "www.example.org"),
            b"GET /health?x=1 HTTP/1.0\r\nHost: www.example.org\r\nUser-Agent: lbd-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nServer: x\r\n\r\nbusy!";
        assert_eq!(
            parse_head(r).unwrap(),
            Some(Head {
                status: 503,
                len: r.len() - 5,
                content_length: Some(5),
                chunked: false
            })
        );
        assert_eq!(parse_head(&r[..20]).unwrap(), None);
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_head(c).unwrap().unwrap().chunked);
        let e = parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("protocol error: bad HTTP response"),
            "{e}"
        );
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n").unwrap(),
            b"hello, world"
        );
        assert!(dechunk(b"5\r\nhel").is_err());
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn status_ranges() {
        let r = [
            StatusRange {
                low: 200,
                high: 299,
            },
            StatusRange {
                low: 301,
                high: 301,
            },
        ];
        assert!(status_ok(&r, 204));
        assert!(status_ok(&r, 301));
        assert!(!status_ok(&r, 302));
        assert!(!status_ok(&r, 503));
    }

    #[test]
    fn body_rules() {
        // MD5 of "hello\n" as `md5sum` and genhash print it.
        assert_eq!(md5_hex(b"hello\n"), "b1946ac92492d2347c6235b4d2611184");
        let rules = BodyRules {
            substring: Some("OK".into()),
            regex: Some(regex_lite::Regex::new("^status: (up|ok)").unwrap()),
            digest: None,
        };
        assert!(rules.needs_body());
        assert_eq!(rules.check(b"status: up OK"), Ok(()));
        assert_eq!(
            rules.check(b"status: up").unwrap_err().to_string(),
            "body mismatch: \"OK\" not found"
        );
        assert_eq!(
            rules.check(b"OK status: down").unwrap_err().to_string(),
            "body mismatch: no match for /^status: (up|ok)/"
        );
        let rules = BodyRules {
            digest: Some("b1946ac92492d2347c6235b4d2611184".into()),
            ..BodyRules::default()
        };
        assert_eq!(rules.check(b"hello\n"), Ok(()));
        assert!(matches!(
            rules.check(b"hello"),
            Err(Failure::DigestMismatch { .. })
        ));
        assert!(!BodyRules::default().needs_body());
    }

    fn exchange(body: BodyRules) -> Exchange {
        Exchange {
            request: request("/", "h"),
            expect_status: vec![StatusRange {
                low: 200,
                high: 299,
            }],
            body,
        }
    }

    /// Feeds `response` in pieces of `step` bytes, then the end if it is still undecided.
    fn judge(x: &Exchange, response: &[u8], step: usize) -> (Result<(), Failure>, usize) {
        let mut r = Reader::default();
        for (i, piece) in response.chunks(step).enumerate() {
            if let Some(verdict) = r.feed(x, piece) {
                return (verdict, (i + 1) * step);
            }
        }
        (r.end(x), usize::MAX)
    }

    #[test]
    fn a_response_is_judged_as_soon_as_it_can_be_in_any_pieces() {
        let status_only = exchange(BodyRules::default());
        let substring = exchange(BodyRules {
            substring: Some("ok".into()),
            ..BodyRules::default()
        });
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        let head = ok.len() - 3;
        for step in [1, 2, 7, 1000] {
            // The status decides at the end of the head when the body does not matter.
            let (v, at) = judge(&status_only, ok, step);
            assert_eq!(v, Ok(()));
            assert!(at >= head && at < head + step, "step {step}: at {at}");
            // With a body rule: at Content-Length, without waiting for the close.
            let (v, at) = judge(&substring, ok, step);
            assert_eq!(v, Ok(()));
            assert!(
                at >= ok.len() && at < ok.len() + step,
                "step {step}: at {at}"
            );
            let (v, _) = judge(&substring, b"HTTP/1.0 503 Busy\r\n\r\nok", step);
            assert_eq!(v, Err(Failure::BadStatus(503)));
            // No length: the body ends when the server closes.
            let (v, at) = judge(&substring, b"HTTP/1.0 200 OK\r\n\r\nall ok", step);
            assert_eq!((v, at), (Ok(()), usize::MAX));
            let (v, _) = judge(&substring, b"HTTP/1.0 200 OK\r\n\r\nnope", step);
            assert!(matches!(v, Err(Failure::BodyMismatch(_))), "{v:?}");
            // Chunked: decoded at the close.
            let chunked =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
            assert_eq!(judge(&substring, chunked, step), (Ok(()), usize::MAX));
            // Cut short.
            let (v, _) = judge(&substring, &ok[..ok.len() - 1], step);
            assert_eq!(v, Err(Failure::Closed("after 2 of 3 body bytes".into())));
            let (v, _) = judge(&status_only, &ok[..10], step);
            assert_eq!(v, Err(Failure::Closed("before the response".into())));
            let (v, _) = judge(&status_only, b"", step);
            assert_eq!(v, Err(Failure::Closed("before the response".into())));
        }
    }

    #[test]
    fn the_reader_says_what_it_waits_for_and_refuses_huge_bodies() {
        let x = exchange(BodyRules {
            substring: Some("ok".into()),
            ..BodyRules::default()
        });
        let mut r = Reader::default();
        assert_eq!(r.feed(&x, b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(r.waiting_for(), "waiting for the response");
        assert_eq!(r.reading(), "before the response");
        assert_eq!(r.feed(&x, b"Content-Length: 10\r\n\r\nok"), None);
        assert!(r.has_head());
        assert_eq!(r.waiting_for(), "reading the body");
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let too_large = Some(Err(Failure::Protocol("body larger than 8 MiB".into())));
        assert_eq!(Reader::default().feed(&x, huge.as_bytes()), too_large);
        let mut r = Reader::default();
        assert_eq!(r.feed(&x, b"HTTP/1.0 200 OK\r\n\r\n"), None);
        let mb = vec![b'x'; 1 << 20];
        let verdicts: Vec<_> = (0..9).map(|_| r.feed(&x, &mb)).collect();
        assert_eq!(verdicts[..8], vec![None; 8]);
        assert_eq!(verdicts[8], too_large);
    }
}
