//! HTTP and HTTPS GET checks.

use super::{read_some, HttpProbe, Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::http::{dechunk, parse_head, status_ok, MAX_BODY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) async fn run(p: &Probe, h: &HttpProbe, progress: &Progress) -> Result<(), Failure> {
    let tcp = p.connect(progress).await?;
    match &h.tls {
        None => exchange(tcp, h, progress).await,
        Some(t) => {
            progress.set(Stage::Tls);
            let conn = tokio_rustls::TlsConnector::from(t.config.clone())
                .connect(t.name.clone(), tcp)
                .await
                .map_err(|e| tls_failure(&e))?;
            exchange(conn, h, progress).await
        }
    }
}

fn tls_failure(e: &std::io::Error) -> Failure {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Failure::Tls(tls.to_string()),
        None => Failure::from_io(e, "during the TLS handshake"),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    h: &HttpProbe,
    progress: &Progress,
) -> Result<(), Failure> {
    let sending = |e: std::io::Error| Failure::from_io(&e, "sending the request");
    s.write_all(&h.request).await.map_err(sending)?;
    s.flush().await.map_err(sending)?;
    progress.set(Stage::Response);
    let mut buf = Vec::with_capacity(4096);
    let head = loop {
        read_some(&mut s, &mut buf, "before the response").await?;
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
    };
    if !status_ok(&h.expect_status, head.status) {
        return Err(Failure::BadStatus(head.status));
    }
    if !h.body.needs_body() {
        return Ok(());
    }
    progress.set(Stage::Body);
    let mut body = buf.split_off(head.len);
    let wanted = head
        .content_length
        .filter(|_| !head.chunked)
        .map(|n| n.min(MAX_BODY as u64 + 1) as usize);
    loop {
        if wanted.is_some_and(|n| body.len() >= n) {
            break;
        }
        if body.len() > MAX_BODY {
            return Err(Failure::Protocol(format!(
                "body larger than {} MiB",
                MAX_BODY >> 20
            )));
        }
        body.reserve(16 * 1024);
        match s.read_buf(&mut body).await {
            Ok(0) => break,
            Ok(_) => {}
            // A TLS peer that closes without close_notify: the body ended.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(Failure::from_io(&e, "reading the body")),
        }
    }
    if let Some(n) = wanted {
        if body.len() < n {
            return Err(Failure::Closed(format!(
                "after {} of {n} body bytes",
                body.len()
            )));
        }
        body.truncate(n);
    }
    let body = if head.chunked { dechunk(&body)? } else { body };
    h.body.check(&body)
}
