//! UDP and DNS checks.

use super::{Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::dns::{check_reply, encode_query, Reply};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

async fn socket(p: &Probe, progress: &Progress) -> Result<UdpSocket, Failure> {
    progress.set(Stage::Connecting);
    let local = match (p.source, p.target) {
        (Some(src), _) => SocketAddr::new(src, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let s = UdpSocket::bind(local).await.map_err(|e| match p.source {
        Some(src) => Failure::Bind(format!("{src}: {e}")),
        None => Failure::from_io(&e, "opening a UDP socket"),
    })?;
    s.connect(p.target)
        .await
        .map_err(|e| Failure::from_io(&e, "connecting"))?;
    Ok(s)
}

fn recv_failure(e: &std::io::Error) -> Failure {
    // On a connected UDP socket, an ICMP port unreachable comes back as ECONNREFUSED.
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Failure::PortUnreachable
    } else {
        Failure::from_io(e, "waiting for a reply")
    }
}

/// Sends the payload. With `expect_reply`, a datagram back is success (one that starts with
/// `expect_prefix`, when set). Without, the real is up unless an ICMP error comes back within
/// half the timeout.
pub(super) async fn run_udp(
    p: &Probe,
    payload: &[u8],
    expect_reply: bool,
    expect_prefix: &Option<Vec<u8>>,
    progress: &Progress,
) -> Result<(), Failure> {
    let s = socket(p, progress).await?;
    s.send(payload)
        .await
        .map_err(|e| Failure::from_io(&e, "sending"))?;
    progress.set(Stage::Reply);
    let mut buf = [0u8; 2048];
    if expect_reply {
        let n = s.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
        return match expect_prefix.as_deref() {
            Some(want) if !buf[..n].starts_with(want) => Err(Failure::ReplyMismatch(format!(
                "{} does not start with {}",
                hex_excerpt(&buf[..n], want.len() + 8),
                hex_excerpt(want, want.len())
            ))),
            _ => Ok(()),
        };
    }
    match tokio::time::timeout(p.timeout / 2, s.recv(&mut buf)).await {
        Err(_silence) => Ok(()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(recv_failure(&e)),
    }
}

/// The first `max` bytes as hex digit pairs, "…" when there are more.
fn hex_excerpt(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > max {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u16
}

/// Queries `name`/`qtype` and requires a NOERROR answer with at least one record.
pub(super) async fn run_dns(
    p: &Probe,
    name: &str,
    qtype: u16,
    progress: &Progress,
) -> Result<(), Failure> {
    let query =
        encode_query(query_id(), name, qtype).map_err(|e| Failure::Protocol(e.to_string()))?;
    let s = socket(p, progress).await?;
    s.send(&query)
        .await
        .map_err(|e| Failure::from_io(&e, "sending"))?;
    progress.set(Stage::Reply);
    let mut buf = vec![0u8; 4096];
    // Bounded by the check's timeout; datagrams that are not the answer are skipped.
    loop {
        let n = s.recv(&mut buf).await.map_err(|e| recv_failure(&e))?;
        match check_reply(&query, &buf[..n])? {
            Reply::NotOurs => continue,
            Reply::Answers(_) => return Ok(()),
        }
    }
}
