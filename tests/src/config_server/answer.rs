//! The HTTP answers of a static file server, whole or cut short.

use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::connection::Head;
use super::http_date::{http_date, parse_http_date};

/// A complete answer: status line, headers and body, as they go on the wire.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) declared: Option<u64>,
    /// Where the body starts in `bytes`.
    pub(super) body_at: usize,
    pub(super) bytes: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

/// Status line and headers (with `Connection: close`) and the blank line.
pub(super) fn head_bytes(status: u16, headers: &[(&str, String)]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// An answer with a `Content-Length` body; for HEAD the same headers without the body.
fn answer(status: u16, head_only: bool, mut headers: Vec<(&str, String)>, body: &[u8]) -> Answer {
    headers.push(("Content-Length", body.len().to_string()));
    let mut bytes = head_bytes(status, &headers);
    let body_at = bytes.len();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    Answer {
        status,
        declared: Some(body.len() as u64),
        body_at,
        bytes,
    }
}

/// [`Mode::Serve`](super::Mode::Serve)'s answer to `head`; validators are ignored unless
/// `conditional`.
pub(super) fn answer_file(dir: &Path, head: &Head, conditional: bool) -> Answer {
    let head_only = head.method == "HEAD";
    let text = |status: u16, extra: Vec<(&str, String)>, msg: &str| {
        let mut headers = vec![("Content-Type", "text/plain".to_owned())];
        headers.extend(extra);
        answer(status, head_only, headers, format!("{msg}\n").as_bytes())
    };
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        let allow = vec![("Allow", "GET, HEAD".to_owned())];
        return text(405, allow, "only GET and HEAD");
    }
    let path = head.target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') || path.split('/').any(|s| s == "..") {
        return text(400, Vec::new(), "bad path");
    }
    let file = dir.join(path.trim_start_matches('/'));
    let read = std::fs::metadata(&file).and_then(|meta| {
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok((meta.modified().ok(), std::fs::read(&file)?))
    });
    let (modified, content) = match read {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return text(404, Vec::new(), "not found"),
        Err(e) => return text(500, Vec::new(), &e.to_string()),
    };
    let etag = etag_of(&content);
    let modified = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let validators = vec![
        ("ETag", etag.clone()),
        ("Last-Modified", http_date(modified)),
    ];
    let not_modified = conditional
        && match head.header("If-None-Match") {
            Some(tags) => tags
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag),
            None => head
                .header("If-Modified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| modified <= since),
        };
    if not_modified {
        let bytes = head_bytes(304, &validators);
        return Answer {
            status: 304,
            declared: None,
            body_at: bytes.len(),
            bytes,
        };
    }
    answer(200, head_only, validators, &content)
}

/// A 200 cut after half its body, declaring at least one byte more than it carries.
pub(super) fn truncate(answer: Answer) -> Answer {
    let body_len = answer.bytes.len() - answer.body_at;
    if body_len == 0 {
        // Nothing to cut: declare one byte and send none.
        let text = String::from_utf8_lossy(&answer.bytes)
            .replace("Content-Length: 0\r\n", "Content-Length: 1\r\n");
        let bytes = text.into_bytes();
        return Answer {
            declared: Some(1),
            body_at: bytes.len(),
            bytes,
            ..answer
        };
    }
    let mut answer = answer;
    answer.bytes.truncate(answer.body_at + body_len / 2);
    answer
}

/// `"` + the first 32 hex digits of the content's SHA-256 + `"`.
fn etag_of(content: &[u8]) -> String {
    let hex: String = Sha256::digest(content)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}
