//! The HTTP server (hyper 1, HTTP/1.1): iPXE scripts, image files and node configs with
//! ETag / Last-Modified, conditional requests, HEAD and single byte ranges. Every request is
//! logged on target `pxe::access` when its response has been handed to the connection (or the
//! client went away): peer, method, path, status, bytes sent, whether the body was complete,
//! the time taken, node, range and user agent.

use crate::conditional::{self, Conditions, Outcome, Validators};
use crate::files::{CachedFile, FileError};
use crate::ipxe;
use crate::routes::{self, Route};
use crate::site::Lookup;
use crate::state::Shared;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// At most this many connections are served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

type Resp = Response<Bytes>;

/// Bodies go out in frames of this size, so the access log sees how far a transfer got.
const FRAME_BYTES: usize = 256 * 1024;

/// Serves HTTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                warn!("http accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, peer, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                debug!(%peer, "http connection: {e}");
            }
            drop(permit);
        });
    }
}

/// What the access log says besides the response itself.
#[derive(Default)]
struct Note {
    node: Option<String>,
    detail: Option<String>,
}

async fn handle(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Response<LoggedBody> {
    let started = Instant::now();
    let mut note = Note::default();
    let resp = respond(shared, &req, &mut note).await;
    let h = req.headers();
    let entry = AccessEntry {
        peer,
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        status: resp.status().as_u16(),
        node: note.node,
        detail: note.detail,
        range: header_str(h, &header::RANGE).map(str::to_string),
        agent: header_str(h, &header::USER_AGENT).map(str::to_string),
        started,
    };
    resp.map(|data| LoggedBody {
        data,
        sent: 0,
        entry: Some(entry),
    })
}

/// One access-log line, written when the response body is done with.
struct AccessEntry {
    peer: SocketAddr,
    method: Method,
    path: String,
    status: u16,
    node: Option<String>,
    detail: Option<String>,
    range: Option<String>,
    agent: Option<String>,
    started: Instant,
}

/// A response body that logs the request when hyper drops it: after the last frame was
/// written, or early if the client went away (then `complete=false`).
pub struct LoggedBody {
    data: Bytes,
    sent: usize,
    entry: Option<AccessEntry>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.data.len();
        if self.sent >= len {
            return Poll::Ready(None);
        }
        let end = (self.sent + FRAME_BYTES).min(len);
        let frame = self.data.slice(self.sent..end);
        self.sent = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let Some(e) = self.entry.take() else {
            return;
        };
        info!(
            target: "pxe::access",
            proto = "http",
            peer = %e.peer,
            method = %e.method,
            path = %e.path,
            status = e.status,
            bytes = self.sent,
            complete = self.sent == self.data.len(),
            node = e.node.as_deref().unwrap_or("-"),
            range = e.range.as_deref().unwrap_or("-"),
            agent = e.agent.as_deref().unwrap_or("-"),
            us = e.started.elapsed().as_micros() as u64,
            detail = e.detail.as_deref().unwrap_or(""),
        );
    }
}

async fn respond(shared: &Shared, req: &Request<Incoming>, note: &mut Note) -> Resp {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "pxe serves GET and HEAD only\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let h = req.headers();
    let conds = Conditions {
        if_match: header_str(h, &header::IF_MATCH),
        if_none_match: header_str(h, &header::IF_NONE_MATCH),
        if_modified_since: header_str(h, &header::IF_MODIFIED_SINCE),
        if_unmodified_since: header_str(h, &header::IF_UNMODIFIED_SINCE),
        if_range: header_str(h, &header::IF_RANGE),
        range: header_str(h, &header::RANGE),
    };
    let site = shared.site();
    match routes::http(req.uri().path()) {
        Route::GenericScript => {
            let body = Bytes::from(ipxe::generic_script(&site.params.base_url));
            let v = Validators::of(&body, site.modified);
            resource(head, &conds, body, &v, "text/plain; charset=utf-8")
        }
        Route::NodeScript(mac) => match site.script(mac) {
            Some((hostname, script)) => {
                note.node = Some(hostname);
                let body = Bytes::from(script);
                let v = Validators::of(&body, site.modified);
                resource(head, &conds, body, &v, "text/plain; charset=utf-8")
            }
            None => {
                warn!(%mac, "unknown MAC asked for its boot script; add it to the inventory (or an [unknown] section)");
                note.detail = Some("unknown MAC".into());
                text(
                    StatusCode::NOT_FOUND,
                    &format!("pxe: MAC {mac} is not in the inventory\n"),
                )
            }
        },
        Route::Config(mac) => match site.lookup(mac) {
            Lookup::Node { hostname, rendered } | Lookup::Default { hostname, rendered } => {
                note.node = Some(hostname);
                note.detail = Some(format!("version {}", rendered.short_version()));
                resource(
                    head,
                    &conds,
                    rendered.body.clone(),
                    &rendered.validators,
                    "application/toml",
                )
            }
            Lookup::NotReady { hostname, problem } => {
                note.node = Some(hostname.clone());
                note.detail = Some("no valid config yet".into());
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "pxe: no valid config for {hostname} ({mac}) yet:\n{}\n",
                        problem.join("\n")
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
                r
            }
            Lookup::Unknown => {
                warn!(%mac, "unknown MAC asked for its config; add it to the inventory (or an [unknown] section)");
                note.detail = Some("unknown MAC".into());
                text(
                    StatusCode::NOT_FOUND,
                    &format!("pxe: MAC {mac} is not in the inventory\n"),
                )
            }
        },
        Route::File(words) => file_answer(head, &conds, shared.image.get(&words).await, req, note),
        Route::LoaderFile(words) => match &shared.tftp_root {
            Some(root) => file_answer(head, &conds, root.get(&words).await, req, note),
            None => {
                note.detail = Some("no TFTP root".into());
                text(StatusCode::NOT_FOUND, "pxe: no TFTP root (iPXE binaries) configured\n")
            }
        },
        Route::Signature(words) => match &shared.signatures {
            Some(dir) => file_answer(head, &conds, dir.get(&words).await, req, note),
            None => {
                note.detail = Some("no signatures directory".into());
                text(
                    StatusCode::NOT_FOUND,
                    "pxe: no signatures are served (pxe serve --signatures DIR, filled by pxe sign)\n",
                )
            }
        },
        Route::Status => {
            let body = Bytes::from(format!("{:#}\n", site.status_json()));
            let v = Validators::of(&body, site.modified);
            resource(head, &conds, body, &v, "application/json")
        }
        Route::BadMac(stem) => {
            note.detail = Some(format!("{stem:?} is not a MAC"));
            text(
                StatusCode::NOT_FOUND,
                &format!("pxe: {stem:?} is not a MAC address; use aa-bb-cc-dd-ee-ff\n"),
            )
        }
        Route::Refused(e) => {
            warn!(path = %req.uri().path(), "refused: {e}");
            note.detail = Some(e.to_string());
            text(StatusCode::FORBIDDEN, "pxe: forbidden\n")
        }
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "pxe: not found; see /boot.ipxe, /boot/MAC.ipxe, /config/MAC.toml, /image/FILE, /status\n",
        ),
    }
}

/// A file of the image directory or the TFTP root, or why it cannot be had.
fn file_answer(
    head: bool,
    conds: &Conditions<'_>,
    got: Result<Arc<CachedFile>, FileError>,
    req: &Request<Incoming>,
    note: &mut Note,
) -> Resp {
    match got {
        Ok(f) => resource(
            head,
            conds,
            f.body.clone(),
            &f.validators,
            "application/octet-stream",
        ),
        Err(FileError::Path(e)) if e.is_forbidden() => {
            warn!(path = %req.uri().path(), "refused: {e}");
            note.detail = Some(e.to_string());
            text(StatusCode::FORBIDDEN, "pxe: forbidden\n")
        }
        Err(FileError::Path(e)) => {
            note.detail = Some(e.to_string());
            text(StatusCode::NOT_FOUND, "pxe: no such file\n")
        }
        Err(e) => {
            warn!(path = %req.uri().path(), "{e}");
            note.detail = Some(e.to_string());
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "pxe: cannot read the file\n",
            )
        }
    }
}

/// A cacheable resource answered according to the request's conditions and range.
fn resource(
    head: bool,
    conds: &Conditions<'_>,
    body: Bytes,
    v: &Validators,
    content_type: &'static str,
) -> Resp {
    let outcome = conditional::evaluate(head, conds, v);
    let mut b = Response::builder()
        .header(header::ETAG, &v.etag)
        .header(header::LAST_MODIFIED, v.last_modified())
        // Stored, but checked every time: configs and images change in place.
        .header(header::CACHE_CONTROL, "no-cache");
    let (status, payload) = match outcome {
        Outcome::Full => {
            b = b
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ACCEPT_RANGES, "bytes");
            if head {
                b = b.header(header::CONTENT_LENGTH, v.len);
                (StatusCode::OK, Bytes::new())
            } else {
                (StatusCode::OK, body)
            }
        }
        Outcome::Partial(r) => {
            b = b
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ACCEPT_RANGES, "bytes")
                .header(header::CONTENT_RANGE, conditional::content_range(&r, v.len));
            (
                StatusCode::PARTIAL_CONTENT,
                body.slice(r.start as usize..r.end as usize),
            )
        }
        Outcome::NotModified => (StatusCode::NOT_MODIFIED, Bytes::new()),
        Outcome::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, Bytes::new()),
        Outcome::Unsatisfiable => {
            b = b.header(header::CONTENT_RANGE, format!("bytes */{}", v.len));
            (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
        }
    };
    b.status(status)
        .body(payload)
        .unwrap_or_else(|e| text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")))
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
