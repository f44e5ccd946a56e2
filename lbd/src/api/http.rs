//! The little HTTP/1.1 the control API needs: one request per connection (`Connection:
//! close`), a bounded head and body, query strings. Parsing and encoding are pure;
//! [`read_request`] is the only I/O.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query string, percent-decoded.
    pub path: String,
    /// Query parameters in order, percent-decoded.
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The last value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response; always sent with `Content-Length` and `Connection: close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        let mut body = serde_json::to_vec_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot encode: {e}\"}}").into_bytes());
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            body,
        }
    }

    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body: body.into_bytes(),
        }
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Why a request could not be read; each maps to a response status.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request too large")]
    TooLarge,
    #[error("the client took too long to send its request")]
    Timeout,
    #[error("the client closed the connection")]
    Closed,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::Closed => 400,
            HttpError::TooLarge => 413,
            HttpError::Timeout => 408,
        }
    }
}

/// `%XX` and `+` decoding of a query component, as UTF-8.
pub fn percent_decode(s: &str) -> Result<String, HttpError> {
    let bytes = crate::percent::decode_query(s)
        .map_err(|e| HttpError::Malformed(format!("{e} in {s:?}")))?;
    String::from_utf8(bytes).map_err(|_| HttpError::Malformed(format!("{s:?} is not UTF-8")))
}

/// Percent-encodes a query component (for clients).
pub fn percent_encode(s: &str) -> String {
    crate::percent::encode(s)
}

/// Parses a request head; `Ok(None)` while incomplete. Returns the request (without body),
/// the head's length and the announced body length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((percent_decode(k)?, percent_decode(v)?));
    }
    let mut content_length = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Malformed(
                "chunked bodies are not accepted: send Content-Length".into(),
            ));
        }
    }
    if content_length > MAX_BODY {
        return Err(HttpError::TooLarge);
    }
    Ok(Some((
        Request {
            method,
            path: percent_decode(path)?,
            query: params,
            body: Vec::new(),
        },
        len,
        content_length,
    )))
}

/// Reads one request, within [`READ_TIMEOUT`] and the size limits.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, HttpError> {
    tokio::time::timeout(READ_TIMEOUT, read_inner(r))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn read_inner<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((mut req, head, body_len)) = parse_head(&buf)? {
            while buf.len() < head + body_len {
                let n = r
                    .read(&mut chunk)
                    .await
                    .map_err(|e| HttpError::Malformed(e.to_string()))?;
                if n == 0 {
                    return Err(HttpError::Closed);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            req.body = buf[head..head + body_len].to_vec();
            return Ok(req);
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge);
        }
        let n = r
            .read(&mut chunk)
            .await
            .map_err(|e| HttpError::Malformed(e.to_string()))?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap(),
            None
        );
        let raw: &[u8] = b"POST /drain?service=web&real=%5B2001%3Adb8%3A%3A1%5D%3A80&x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let (r, len, body) = parse_head(raw).unwrap().unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/drain");
        assert_eq!(r.param("service"), Some("web"));
        assert_eq!(r.param("real"), Some("[2001:db8::1]:80"));
        assert_eq!(r.param("x"), Some(""));
        assert_eq!(body, 2);
        assert_eq!(len, raw.len() - 2, "the head ends before the body");
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"),
            Err(HttpError::TooLarge)
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"\x01\x02 nonsense\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(percent_decode("%zz").is_err());
        assert_eq!(percent_decode("a+b%2Fc").unwrap(), "a b/c");
        assert_eq!(
            percent_encode("[2001:db8::1]:80 x"),
            "%5B2001:db8::1%5D:80%20x"
        );
    }

    #[test]
    fn responses() {
        let r = Response::text(200, "text/plain", "hi".into()).encode();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nhi"
        );
        let e = Response::error(404, "no such real");
        assert_eq!(e.status, 404);
        assert!(String::from_utf8(e.body)
            .unwrap()
            .contains("\"error\": \"no such real\""));
    }

    #[tokio::test]
    async fn reads_head_and_body_in_pieces() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in [
                &b"POST /reload HT"[..],
                b"TP/1.1\r\nContent-Length: 5\r\n\r\nhel",
                b"lo",
            ] {
                a.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            a
        });
        let req = read_request(&mut b).await.unwrap();
        assert_eq!(req.path, "/reload");
        assert_eq!(req.body, b"hello");
        drop(writer.await.unwrap());
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert_eq!(read_request(&mut b).await, Err(HttpError::Closed));
    }
}
