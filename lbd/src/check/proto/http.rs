//! HTTP/1.x for the HTTP(S) checks: the request, the response head, chunked bodies, and the
//! body rules (substring as ldirectord's `receive`, regex, and keepalived genhash's MD5). Pure.
//!
//! The request is HTTP/1.0 with `Connection: close`, as keepalived's checker sends it (genhash
//! `-P 1.0c`): servers answer without chunking and close after the body, and the MD5 of that
//! body is the digest genhash prints. With `keep_alive` it is HTTP/1.1 on a connection kept
//! from one run to the next: then every response is read to its framed end (`Content-Length`,
//! or the end of a chunked body), so the next one starts where it should.

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

/// The request of a check that keeps its connection: HTTP/1.1, persistent by default.
pub fn request_keep_alive(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lbd-check\r\nAccept: */*\r\n\r\n")
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
    /// The server keeps the connection open after this response (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Head {
    /// The response has no body whatever its headers say (RFC 9112 6.3: 1xx, 204, 304).
    fn bodiless(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }
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
    let mut keep_alive = resp.version == Some(1);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in String::from_utf8_lossy(h.value).split(',') {
                match token.trim().to_ascii_lowercase().as_str() {
                    "close" => keep_alive = false,
                    "keep-alive" => keep_alive = resp.version == Some(0) || keep_alive,
                    _ => {}
                }
            }
        }
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
        keep_alive,
    }))
}

/// Where a chunked body ends, scanning from `from` (the end of the chunks already scanned,
/// moved forward past every complete data chunk so each byte is looked at once): the length
/// of the whole body with its last chunk and trailers, or `None` while incomplete.
pub fn chunked_end(body: &[u8], from: &mut usize) -> Result<Option<usize>, Failure> {
    let bad = |what: &str| Failure::Protocol(format!("bad chunked body: {what}"));
    let mut at = *from;
    loop {
        match httparse::parse_chunk_size(&body[at..]) {
            Ok(httparse::Status::Complete((used, 0))) => {
                at += used;
                break;
            }
            Ok(httparse::Status::Complete((used, size))) => {
                let end = usize::try_from(size)
                    .ok()
                    .filter(|n| *n <= MAX_BODY)
                    .and_then(|n| (at + used).checked_add(n))
                    .ok_or_else(|| bad("chunk too large"))?;
                match body.get(end..end + 2) {
                    None => return Ok(None),
                    Some(b"\r\n") => at = end + 2,
                    Some(_) => return Err(bad("chunk not followed by CRLF")),
                }
                *from = at;
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(bad("invalid chunk size")),
        }
    }
    // Trailer lines, then the empty line.
    loop {
        let Some(eol) = body[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        at += eol + 2;
        if eol == 0 {
            return Ok(Some(at));
        }
    }
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
    /// The connection is kept for the next run: every response is read to its end.
    pub keep_alive: bool,
}

/// One response, fed as its bytes arrive and judged as soon as it can be: at the head when the
/// body does not matter (and the connection is not kept), at the end of a framed body, or
/// when the server closes.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    head: Option<Head>,
    /// How far a chunked body has been scanned.
    chunks: usize,
    /// The response was good and read exactly to its end, and the server keeps the connection.
    reusable: bool,
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

    /// Whether any byte of the response came.
    pub fn started(&self) -> bool {
        !self.buf.is_empty()
    }

    /// After a good verdict: the connection can carry the next request (the response ended
    /// where its framing said, nothing followed it, and the server keeps the connection).
    pub fn reusable(&self) -> bool {
        self.reusable
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
                if !x.body.needs_body() && !x.keep_alive {
                    return Ok(Some(()));
                }
                self.head.insert(head)
            }
        };
        let too_large = || Failure::Protocol(format!("body larger than {} MiB", MAX_BODY >> 20));
        let body = &self.buf[head.len..];
        // The body's framed length once known; `None` for a body that ends with the connection.
        let framed = if head.bodiless() {
            Some(0)
        } else if head.chunked {
            match chunked_end(body, &mut self.chunks)? {
                Some(n) => Some(n),
                None if end => return Err(Failure::Protocol("bad chunked body: truncated".into())),
                None if body.len() > MAX_BODY => return Err(too_large()),
                None => return Ok(None),
            }
        } else {
            match head.content_length {
                Some(n) if n > MAX_BODY as u64 => return Err(too_large()),
                Some(n) if (body.len() as u64) < n && end => {
                    return Err(Failure::Closed(format!(
                        "after {} of {n} body bytes",
                        body.len()
                    )))
                }
                Some(n) if (body.len() as u64) < n => return Ok(None),
                Some(n) => Some(n as usize),
                None if body.len() > MAX_BODY => return Err(too_large()),
                None if !end => return Ok(None),
                None => None,
            }
        };
        let whole = &body[..framed.unwrap_or(body.len())];
        if head.chunked {
            x.body.check(&dechunk(whole)?)?;
        } else {
            x.body.check(whole)?;
        }
        self.reusable = head.keep_alive && !end && framed == Some(body.len());
        Ok(Some(()))
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
                chunked: false,
                keep_alive: true,
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
            keep_alive: false,
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
            // Chunked: decoded at its last chunk's end, without waiting for the close.
            let chunked =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
            let (v, at) = judge(&substring, chunked, step);
            assert_eq!(v, Ok(()));
            assert!(
                at >= chunked.len() && at < chunked.len() + step,
                "step {step}: at {at}"
            );
            let (v, _) = judge(&substring, &chunked[..chunked.len() - 2], step);
            assert_eq!(
                v,
                Err(Failure::Protocol("bad chunked body: truncated".into()))
            );
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

    /// The verdict, where it came, and whether the connection can carry the next request.
    fn kept(x: &Exchange, response: &[u8], step: usize) -> (Result<(), Failure>, usize, bool) {
        let mut r = Reader::default();
        for (i, piece) in response.chunks(step).enumerate() {
            if let Some(verdict) = r.feed(x, piece) {
                return (verdict, (i + 1) * step, r.reusable());
            }
        }
        (r.end(x), usize::MAX, r.reusable())
    }

    #[test]
    fn a_kept_connection_reads_every_response_to_its_framed_end() {
        let mut x = exchange(BodyRules::default());
        x.keep_alive = true;
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\n!!\n\r\n0\r\nX-T: 1\r\n\r\n";
        let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
        for step in [1, 3, 1000] {
            // Even with no body rule, the body is read to its end before the verdict; 204
            // and 304 have no body, whatever their headers say.
            for r in [&ok[..], &chunked[..], &no_content[..]] {
                let (v, at, reusable) = kept(&x, r, step);
                assert_eq!(v, Ok(()));
                assert!(at >= r.len() && at < r.len() + step, "step {step}: at {at}");
                assert!(reusable);
                // Bytes after the response: out of step, not reused.
                let mut more = r.to_vec();
                more.extend_from_slice(b"HTTP/1.1");
                assert!(!kept(&x, &more, 1000).2);
            }
            // The server closes: the verdict stands, the connection is not reused.
            for close in [
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n"[..],
                b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
                b"HTTP/1.1 200 OK\r\n\r\nok\n",
            ] {
                let (v, _, reusable) = kept(&x, close, step);
                assert_eq!((v, reusable), (Ok(()), false));
            }
            let ka10 =
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nok\n";
            assert!(kept(&x, ka10, step).2);
            // A bad status decides at the head, and the connection is not reused.
            let busy = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy";
            let (v, _, reusable) = kept(&x, busy, step);
            assert_eq!((v, reusable), (Err(Failure::BadStatus(503)), false));
        }
        assert_eq!(
            request_keep_alive("/h", "a:80"),
            b"GET /h HTTP/1.1\r\nHost: a:80\r\nUser-Agent: lbd-check\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn chunked_ends_are_found_across_pieces_and_bad_chunks_refused() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            let mut from = 0;
            assert_eq!(chunked_end(&body[..cut], &mut from), Ok(None), "cut {cut}");
            assert_eq!(
                chunked_end(body, &mut from),
                Ok(Some(body.len())),
                "cut {cut}"
            );
        }
        let bad = |b: &[u8]| chunked_end(b, &mut 0).unwrap_err().to_string();
        assert_eq!(
            bad(b"4\r\nWikiXX"),
            "protocol error: bad chunked body: chunk not followed by CRLF"
        );
        assert_eq!(
            bad(b"zz\r\n"),
            "protocol error: bad chunked body: invalid chunk size"
        );
        assert_eq!(
            bad(b"ffffffffff\r\n"),
            "protocol error: bad chunked body: chunk too large"
        );
    }
}
