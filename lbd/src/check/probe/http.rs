//! HTTPS GET checks (plain HTTP runs on the connector, `check::connect`; both judge the
//! response with the same `proto::http::Reader`).

use super::{HttpProbe, Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::http::{Exchange, Reader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) async fn run(p: &Probe, h: &HttpProbe, progress: &Progress) -> Result<(), Failure> {
    let Some(t) = &h.tls else {
        unreachable!("plain HTTP runs on the connector (Probe::run_unbounded)");
    };
    let tcp = p.connect(progress).await?;
    progress.set(Stage::Tls);
    let conn = tokio_rustls::TlsConnector::from(t.config.clone())
        .connect(t.name.clone(), tcp)
        .await
        .map_err(|e| tls_failure(&e))?;
    exchange(conn, &h.exchange, progress).await
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
    x: &Exchange,
    progress: &Progress,
) -> Result<(), Failure> {
    let sending = |e: std::io::Error| Failure::from_io(&e, "sending the request");
    s.write_all(&x.request).await.map_err(sending)?;
    s.flush().await.map_err(sending)?;
    progress.set(Stage::Response);
    let mut reader = Reader::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: the response ended.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(Failure::from_io(&e, reader.reading())),
        };
        let verdict = match n {
            0 => Some(reader.end(x)),
            n => reader.feed(x, &buf[..n]),
        };
        if let Some(verdict) = verdict {
            return verdict;
        }
        if reader.has_head() {
            progress.set(Stage::Body);
        }
    }
}
