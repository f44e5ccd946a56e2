//! HTTP validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14). Pure: the
//! server hands in the request's header values and the resource's validators and gets back
//! what to answer.
//!
//! Order of evaluation (§13.2.2): If-Match, If-Unmodified-Since, If-None-Match,
//! If-Modified-Since, then If-Range + Range. One byte range per request is served (`a-b`,
//! `a-`, `-n`); a request for several ranges, another unit or a malformed header gets the
//! whole body, which the RFC allows. Range is ignored for HEAD.

use sha2::{Digest, Sha256};
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, quotes included: `"0123abcd..."`.
    pub etag: String,
    /// Last modification, whole seconds (HTTP dates have no fractions).
    pub modified: SystemTime,
    /// Body length in bytes.
    pub len: u64,
}

impl Validators {
    /// Validators of a body: the ETag is the first 128 bits of its SHA-256.
    pub fn of(body: &[u8], modified: SystemTime) -> Validators {
        Validators {
            etag: etag_of(body),
            modified: whole_seconds(modified),
            len: body.len() as u64,
        }
    }

    /// `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// A strong ETag from content: `"` + 32 hex digits of SHA-256 + `"`.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Drops sub-second precision, as HTTP dates do.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// The request header values that matter here (raw text, `None` when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub range: Option<&'a str>,
}

/// What to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the whole body.
    Full,
    /// 206 with these bytes (end exclusive) and `Content-Range: bytes a-b/len`.
    Partial(Range<u64>),
    /// 304, no body.
    NotModified,
    /// 412, no body.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides the answer to a GET (`head = false`) or HEAD (`head = true`).
pub fn evaluate(head: bool, c: &Conditions<'_>, v: &Validators) -> Outcome {
    if let Some(im) = c.if_match {
        if !tag_list_matches(im, &v.etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(date) = c.if_unmodified_since.and_then(parse_date) {
        if v.modified > date {
            return Outcome::PreconditionFailed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if tag_list_matches(inm, &v.etag, false) {
            return Outcome::NotModified;
        }
    } else if let Some(date) = c.if_modified_since.and_then(parse_date) {
        if v.modified <= date {
            return Outcome::NotModified;
        }
    }
    if head {
        return Outcome::Full;
    }
    let Some(range) = c.range else {
        return Outcome::Full;
    };
    if let Some(ir) = c.if_range {
        if !if_range_holds(ir.trim(), v) {
            return Outcome::Full;
        }
    }
    match parse_range(range, v.len) {
        RangeSpec::Ignore => Outcome::Full,
        RangeSpec::Bytes(r) => Outcome::Partial(r),
        RangeSpec::Unsatisfiable => Outcome::Unsatisfiable,
    }
}

/// A parsed `Range` header against a body of known length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// Malformed, several ranges, or another unit: serve everything.
    Ignore,
    /// One satisfiable range, end exclusive, clamped to the body.
    Bytes(Range<u64>),
    /// Syntactically fine, but no byte of it exists (416).
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` for a body of `len` bytes.
pub fn parse_range(header: &str, len: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // More digits than u64 holds: larger than any body.
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    if first.is_empty() {
        // Suffix: the last n bytes.
        return match number(last) {
            None => RangeSpec::Ignore,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(len.saturating_sub(n)..len),
        };
    }
    let Some(start) = number(first) else {
        return RangeSpec::Ignore;
    };
    let end_inclusive = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeSpec::Ignore,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    let end = end_inclusive.map_or(len, |e| e.saturating_add(1).min(len));
    RangeSpec::Bytes(start..end)
}

/// `Content-Range` of a 206.
pub fn content_range(r: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end - 1)
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

/// Whether an `If-Match` / `If-None-Match` list matches `etag`. `strong`: W/ tags never match
/// (If-Match); otherwise the weak comparison (If-None-Match).
fn tag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    split_tags(list).any(|t| match t.strip_prefix("W/") {
        Some(weak) => !strong && weak == etag,
        None => t == etag,
    })
}

/// Splits a comma-separated entity-tag list; commas inside quotes are part of a tag.
fn split_tags(list: &str) -> impl Iterator<Item = &str> {
    let mut tags = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                tags.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    tags.push(list[start..].trim());
    tags.into_iter().filter(|t| !t.is_empty())
}

/// `If-Range`: an entity tag must match strongly; a date must equal Last-Modified exactly.
fn if_range_holds(ir: &str, v: &Validators) -> bool {
    if ir.starts_with('"') {
        ir == v.etag
    } else if ir.starts_with("W/") {
        false
    } else {
        parse_date(ir) == Some(v.modified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators::of(
            b"0123456789",
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_900),
        )
    }

    fn get(c: Conditions<'_>) -> Outcome {
        evaluate(false, &c, &v())
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";

    #[test]
    fn validators_are_content_hash_and_whole_seconds() {
        let v = v();
        assert_eq!(v.etag, "\"84d89877f0d4041efb6bf91a16f0248f\"");
        assert_eq!(v.last_modified(), LM);
        assert_eq!(v.len, 10);
        assert_eq!(etag_of(b"0123456789"), v.etag);
        assert_ne!(etag_of(b"0123456788"), v.etag);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let etag = v().etag;
        let weak = format!("W/{etag}");
        let list = format!("\"other\", {etag}");
        for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
            let c = Conditions {
                if_none_match: Some(inm),
                ..Default::default()
            };
            assert_eq!(get(c), Outcome::NotModified, "{inm}");
        }
        // A different tag: modified, even though the date would say otherwise.
        let c = Conditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(LM),
            ..Default::default()
        };
        assert_eq!(get(c), Outcome::Full);
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let ims = |d| Conditions {
            if_modified_since: Some(d),
            ..Default::default()
        };
        assert_eq!(get(ims(LM)), Outcome::NotModified);
        assert_eq!(
            get(ims("Wed, 15 Nov 2023 00:00:00 GMT")),
            Outcome::NotModified
        );
        assert_eq!(get(ims(BEFORE)), Outcome::Full);
        assert_eq!(
            get(ims("yesterday")),
            Outcome::Full,
            "bad dates are ignored"
        );
        assert_eq!(
            evaluate(true, &ims(LM), &v()),
            Outcome::NotModified,
            "HEAD too"
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since_guard() {
        let etag = v().etag;
        let c = |im| Conditions {
            if_match: Some(im),
            ..Default::default()
        };
        assert_eq!(get(c(&etag)), Outcome::Full);
        assert_eq!(get(c("*")), Outcome::Full);
        assert_eq!(get(c("\"other\"")), Outcome::PreconditionFailed);
        let weak = format!("W/{etag}");
        assert_eq!(get(c(&weak)), Outcome::PreconditionFailed, "strong only");
        let ius = |d| Conditions {
            if_unmodified_since: Some(d),
            ..Default::default()
        };
        assert_eq!(get(ius(LM)), Outcome::Full);
        assert_eq!(get(ius(BEFORE)), Outcome::PreconditionFailed);
    }

    #[test]
    fn ranges() {
        let r = |h| parse_range(h, 10);
        assert_eq!(r("bytes=0-3"), RangeSpec::Bytes(0..4));
        assert_eq!(r("bytes=2-"), RangeSpec::Bytes(2..10));
        assert_eq!(r("bytes=9-9"), RangeSpec::Bytes(9..10));
        assert_eq!(r("bytes=5-100"), RangeSpec::Bytes(5..10), "clamped");
        assert_eq!(r("bytes=-3"), RangeSpec::Bytes(7..10), "suffix");
        assert_eq!(
            r("bytes=-30"),
            RangeSpec::Bytes(0..10),
            "suffix longer than body"
        );
        assert_eq!(r("bytes= 1 - 2 "), RangeSpec::Bytes(1..3));
        assert_eq!(r("bytes=10-"), RangeSpec::Unsatisfiable);
        assert_eq!(r("bytes=10-20"), RangeSpec::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeSpec::Unsatisfiable);
        assert_eq!(
            r("bytes=99999999999999999999999-"),
            RangeSpec::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-5", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), RangeSpec::Unsatisfiable);
        for ignored in [
            "bytes=3-1",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(r(ignored), RangeSpec::Ignore, "{ignored:?}");
        }
        assert_eq!(content_range(&(7..10), 10), "bytes 7-9/10");
    }

    #[test]
    fn range_outcomes_with_if_range() {
        let etag = v().etag;
        let c = |ir| Conditions {
            range: Some("bytes=0-1"),
            if_range: ir,
            ..Default::default()
        };
        assert_eq!(get(c(None)), Outcome::Partial(0..2));
        assert_eq!(get(c(Some(&etag))), Outcome::Partial(0..2));
        assert_eq!(get(c(Some(LM))), Outcome::Partial(0..2));
        assert_eq!(
            get(c(Some("\"old\""))),
            Outcome::Full,
            "changed: whole body"
        );
        assert_eq!(get(c(Some(BEFORE))), Outcome::Full);
        let weak = format!("W/{etag}");
        assert_eq!(get(c(Some(&weak))), Outcome::Full);
        assert_eq!(
            evaluate(true, &c(None), &v()),
            Outcome::Full,
            "HEAD ignores Range"
        );
        let c = Conditions {
            range: Some("bytes=50-"),
            ..Default::default()
        };
        assert_eq!(get(c), Outcome::Unsatisfiable);
    }

    #[test]
    fn tag_lists_keep_quoted_commas() {
        assert!(tag_list_matches("\"a,b\", \"c\"", "\"a,b\"", true));
        assert!(tag_list_matches("\"x\",\"c\"", "\"c\"", true));
        assert!(!tag_list_matches("\"a\"", "\"a,b\"", true));
        assert!(!tag_list_matches("", "\"a\"", false));
    }
}
