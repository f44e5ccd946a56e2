//! A minimal HTTP/1.1 GET client on hyper's connection-level API: one TCP connection per
//! request, no pool, no name resolution. Sends conditional headers, bounds the body, follows a
//! few redirects.

use std::io;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpStream;

use super::url::{FetchUrl, Scheme, UrlError};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("lb-init/", env!("CARGO_PKG_VERSION"));

/// Cache validators from an earlier response, sent back as `If-None-Match` /
/// `If-Modified-Since`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The earlier `ETag`, verbatim (quotes and `W/` included).
    pub etag: Option<&'a str>,
    /// The earlier `Last-Modified`, verbatim.
    pub last_modified: Option<&'a str>,
}

impl Validators<'_> {
    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// Limits of one GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The largest body accepted, in bytes.
    pub max_body: u64,
    /// How many redirects are followed.
    pub max_redirects: u8,
}

impl Default for HttpLimits {
    /// 4 MiB, 5 redirects.
    fn default() -> Self {
        HttpLimits {
            max_body: 4 << 20,
            max_redirects: 5,
        }
    }
}

/// A successful GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpResponse {
    /// 304: the validators still match.
    NotModified {
        /// The URL that answered (after redirects).
        url: FetchUrl,
    },
    /// 200 with its body.
    Ok {
        /// The body.
        body: Bytes,
        /// The URL that answered (after redirects).
        url: FetchUrl,
        /// The response's `ETag`, if any.
        etag: Option<String>,
        /// The response's `Last-Modified`, if any.
        last_modified: Option<String>,
    },
}

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an `http://` URL.
    #[error("{url} is not an http:// URL")]
    NotHttp {
        /// The URL.
        url: FetchUrl,
    },
    /// TCP connect failed (refused, unreachable).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL.
        url: FetchUrl,
        /// The OS error.
        source: io::Error,
    },
    /// The HTTP exchange failed (connection reset, malformed response, body cut short, ...).
    /// The message carries hyper's causes: its own text alone is often generic.
    #[error("HTTP exchange with {url} failed: {}", with_causes(source))]
    Protocol {
        /// The URL.
        url: FetchUrl,
        /// hyper's error.
        source: hyper::Error,
    },
    /// A status other than 200, 304 or a followed redirect.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL that answered.
        url: FetchUrl,
        /// The status.
        status: StatusCode,
    },
    /// 304 although no validators were sent.
    #[error("{url} answered 304 Not Modified to an unconditional request")]
    UnexpectedNotModified {
        /// The URL.
        url: FetchUrl,
    },
    /// The body is larger than allowed.
    #[error("body from {url} exceeds the limit of {limit} bytes ({detail})")]
    TooLarge {
        /// The URL.
        url: FetchUrl,
        /// The limit in bytes.
        limit: u64,
        /// The announced length, or that more arrived without one.
        detail: String,
    },
    /// A redirect without a usable `Location`.
    #[error("{url} answered HTTP {status} without a usable Location header")]
    BadRedirect {
        /// The URL.
        url: FetchUrl,
        /// The redirect status.
        status: StatusCode,
    },
    /// A redirect to a URL this client cannot fetch (https, a host name, tftp).
    #[error("{url} redirects to an unusable location: {source}")]
    RedirectTarget {
        /// The redirecting URL.
        url: FetchUrl,
        /// What is wrong with the target.
        source: UrlError,
    },
    /// A redirect to a non-http scheme.
    #[error("{url} redirects to {target}, which is not http://")]
    RedirectScheme {
        /// The redirecting URL.
        url: FetchUrl,
        /// The target.
        target: FetchUrl,
    },
    /// More redirects than allowed.
    #[error("more than {max} redirects starting at {start} (last: {last})")]
    TooManyRedirects {
        /// The first URL.
        start: FetchUrl,
        /// The last location seen.
        last: FetchUrl,
        /// The limit.
        max: u8,
    },
    /// The request could not be built (a header value the server sent us back is invalid).
    #[error("cannot build a request for {url}: {reason}")]
    Request {
        /// The URL.
        url: FetchUrl,
        /// What is wrong.
        reason: String,
    },
    /// An `https://` URL and no pinned key to trust.
    #[error("{url}: https:// needs the server's key pinned (lb.tls_pin=sha256//BASE64 on the kernel command line, or image build --tls-pin): a box booting from the network has no clock to check a certificate chain with")]
    NoPin {
        /// The URL.
        url: FetchUrl,
    },
    /// The TLS handshake failed (a key that is not pinned, no common protocol...).
    #[error("{url}: TLS: {source}")]
    Tls {
        /// The URL.
        url: FetchUrl,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `e` and its chain of causes, `: `-separated. hyper's own text says what it was doing ("error
/// reading a body from connection"); the cause says what went wrong ("end of file before message
/// length reached": the server closed before the declared length, i.e. a truncated config).
fn with_causes(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// GETs `url`, following redirects. Validators are sent to every hop (they describe the
/// resource, not the hop). Not bounded in time: the caller wraps it in a timeout.
pub async fn get(
    url: &FetchUrl,
    validators: Validators<'_>,
    limits: HttpLimits,
) -> Result<HttpResponse, HttpError> {
    get_with_tls(url, validators, limits, None).await
}

/// [`get`], with the TLS client config `https://` URLs use (pinned server keys).
pub async fn get_with_tls(
    url: &FetchUrl,
    validators: Validators<'_>,
    limits: HttpLimits,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<HttpResponse, HttpError> {
    let mut current = url.clone();
    let mut redirects = 0u8;
    loop {
        let response = get_once(&current, validators, limits, tls).await?;
        match response {
            Hop::Final(r) => return Ok(r),
            Hop::Redirect(target) => {
                if redirects >= limits.max_redirects {
                    return Err(HttpError::TooManyRedirects {
                        start: url.clone(),
                        last: target,
                        max: limits.max_redirects,
                    });
                }
                redirects += 1;
                tracing::debug!(from = %current, to = %target, "following redirect");
                current = target;
            }
        }
    }
}

enum Hop {
    Final(HttpResponse),
    Redirect(FetchUrl),
}

/// Aborts the connection task when the request is done or abandoned (e.g. by a timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// HTTP/1.1 over `stream` (plain TCP or TLS), its connection driven on a task that ends
/// with the returned guard.
async fn handshake<S>(
    stream: S,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        AbortOnDrop,
    ),
    hyper::Error,
>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "http connection ended with an error");
        }
    }));
    Ok((sender, guard))
}

async fn get_once(
    url: &FetchUrl,
    validators: Validators<'_>,
    limits: HttpLimits,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Hop, HttpError> {
    if !matches!(url.scheme(), Scheme::Http | Scheme::Https) {
        return Err(HttpError::NotHttp { url: url.clone() });
    }
    let protocol = |source| HttpError::Protocol {
        url: url.clone(),
        source,
    };
    if url.scheme() == Scheme::Https && tls.is_none() {
        return Err(HttpError::NoPin { url: url.clone() });
    }
    let stream = TcpStream::connect(url.socket_addr())
        .await
        .map_err(|source| HttpError::Connect {
            url: url.clone(),
            source,
        })?;
    // Small request, small answer: do not let Nagle delay the request.
    let _ = stream.set_nodelay(true);
    let (mut sender, _connection) = if url.scheme() == Scheme::Https {
        let config = tls.ok_or_else(|| HttpError::NoPin { url: url.clone() })?;
        let name = rustls::pki_types::ServerName::IpAddress(url.host().into());
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|source| HttpError::Tls {
                url: url.clone(),
                source,
            })?;
        handshake(stream).await.map_err(protocol)?
    } else {
        handshake(stream).await.map_err(protocol)?
    };

    let request = build_request(url, validators)?;
    let response = sender.send_request(request).await.map_err(protocol)?;
    let status = response.status();
    let headers = response.headers().clone();

    if matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| HttpError::BadRedirect {
                url: url.clone(),
                status,
            })?;
        let target = url
            .join(location)
            .map_err(|source| HttpError::RedirectTarget {
                url: url.clone(),
                source,
            })?;
        // HTTP may move to HTTPS, never the other way (that would drop the pin's protection).
        let allowed = match url.scheme() {
            Scheme::Https => target.scheme() == Scheme::Https,
            _ => matches!(target.scheme(), Scheme::Http | Scheme::Https),
        };
        if !allowed {
            return Err(HttpError::RedirectScheme {
                url: url.clone(),
                target,
            });
        }
        return Ok(Hop::Redirect(target));
    }
    if status == StatusCode::NOT_MODIFIED {
        if validators.is_empty() {
            return Err(HttpError::UnexpectedNotModified { url: url.clone() });
        }
        return Ok(Hop::Final(HttpResponse::NotModified { url: url.clone() }));
    }
    if status != StatusCode::OK {
        return Err(HttpError::Status {
            url: url.clone(),
            status,
        });
    }

    let too_large = |detail: String| HttpError::TooLarge {
        url: url.clone(),
        limit: limits.max_body,
        detail,
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced {
        if len > limits.max_body {
            return Err(too_large(format!("Content-Length is {len}")));
        }
    }
    let mut body = response.into_body();
    let capacity = announced.unwrap_or(0).min(limits.max_body) as usize;
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(protocol)?;
        if let Ok(chunk) = frame.into_data() {
            if buf.len() as u64 + chunk.len() as u64 > limits.max_body {
                // The same words every time (not the byte count, which varies with how the
                // transport split the body), so a poll that keeps failing is reported once.
                return Err(too_large(
                    "no Content-Length, and more than that arrived".into(),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
    }
    let header_text = |name: header::HeaderName, headers: &HeaderMap| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(Hop::Final(HttpResponse::Ok {
        body: buf.freeze(),
        url: url.clone(),
        etag: header_text(header::ETAG, &headers),
        last_modified: header_text(header::LAST_MODIFIED, &headers),
    }))
}

fn build_request(
    url: &FetchUrl,
    validators: Validators<'_>,
) -> Result<Request<Empty<Bytes>>, HttpError> {
    let bad = |reason: String| HttpError::Request {
        url: url.clone(),
        reason,
    };
    let mut builder = Request::get(url.path())
        .header(header::HOST, url.authority())
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::ACCEPT, "*/*");
    if let Some(etag) = validators.etag {
        let v = HeaderValue::from_str(etag).map_err(|e| bad(format!("ETag {etag:?}: {e}")))?;
        builder = builder.header(header::IF_NONE_MATCH, v);
    }
    if let Some(lm) = validators.last_modified {
        let v = HeaderValue::from_str(lm).map_err(|e| bad(format!("Last-Modified {lm:?}: {e}")))?;
        builder = builder.header(header::IF_MODIFIED_SINCE, v);
    }
    builder.body(Empty::new()).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_host_agent_and_validators() {
        let url = FetchUrl::parse("http://10.0.0.1:8080/n/a.toml?x=1").unwrap();
        let r = build_request(
            &url,
            Validators {
                etag: Some("W/\"abc\""),
                last_modified: Some("Tue, 01 Jul 2025 10:00:00 GMT"),
            },
        )
        .unwrap();
        assert_eq!(r.uri(), "/n/a.toml?x=1");
        assert_eq!(r.headers()[header::HOST], "10.0.0.1:8080");
        assert_eq!(r.headers()[header::USER_AGENT], USER_AGENT);
        assert!(USER_AGENT.starts_with("lb-init/0."));
        assert_eq!(r.headers()[header::IF_NONE_MATCH], "W/\"abc\"");
        assert_eq!(
            r.headers()[header::IF_MODIFIED_SINCE],
            "Tue, 01 Jul 2025 10:00:00 GMT"
        );
        let url = FetchUrl::parse("http://[fd00::1]/x").unwrap();
        let r = build_request(&url, Validators::default()).unwrap();
        assert_eq!(r.headers()[header::HOST], "[fd00::1]");
        assert!(r.headers().get(header::IF_NONE_MATCH).is_none());
        assert!(r.headers().get(header::IF_MODIFIED_SINCE).is_none());
    }

    /// A body cut short (the server closes before its `Content-Length`) must say so, not only
    /// hyper's generic "error reading a body from connection".
    #[tokio::test]
    async fn a_protocol_error_says_what_went_wrong() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (client, mut server) = tokio::io::duplex(4096);
        let peer = tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = server.read(&mut request).await;
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                .await
                .unwrap();
            // Dropping `server` ends the stream 7 bytes short.
        });
        let url = FetchUrl::parse("http://10.0.0.1/lb.toml").unwrap();
        let (mut sender, _connection) = handshake(client).await.unwrap();
        let request = build_request(&url, Validators::default()).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let source = response.into_body().collect().await.unwrap_err();
        peer.await.unwrap();
        let e = HttpError::Protocol { url, source };
        assert_eq!(
            e.to_string(),
            "HTTP exchange with http://10.0.0.1/lb.toml failed: error reading a body from \
             connection: end of file before message length reached"
        );
    }

    #[test]
    fn invalid_validator_is_an_error_not_a_panic() {
        let url = FetchUrl::parse("http://10.0.0.1/x").unwrap();
        let e = build_request(
            &url,
            Validators {
                etag: Some("a\nb"),
                last_modified: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("ETag"), "{e}");
    }
}
