//! SMTP check: the 220 banner, then EHLO (HELO if the server does not know EHLO), then QUIT.

use super::{read_some, Probe, Progress, Stage};
use crate::check::failure::Failure;
use crate::check::proto::smtp::{parse_reply, SmtpReply};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

async fn reply<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    when: &str,
) -> Result<SmtpReply, Failure> {
    loop {
        if let Some((r, used)) = parse_reply(buf).map_err(|e| Failure::Protocol(e.to_string()))? {
            buf.drain(..used);
            return Ok(r);
        }
        read_some(s, buf, when).await?;
    }
}

async fn send(s: &mut TcpStream, line: &str) -> Result<(), Failure> {
    s.write_all(line.as_bytes())
        .await
        .map_err(|e| Failure::from_io(&e, "sending a command"))
}

pub(super) async fn run(p: &Probe, helo: &str, progress: &Progress) -> Result<(), Failure> {
    let mut s = p.connect(progress).await?;
    progress.set(Stage::Banner);
    let mut buf = Vec::with_capacity(1024);
    let banner = reply(&mut s, &mut buf, "before the banner").await?;
    if banner.code != 220 {
        return Err(Failure::Rejected(format!(
            "SMTP banner {} {}",
            banner.code, banner.text
        )));
    }
    progress.set(Stage::Reply);
    send(&mut s, &format!("EHLO {helo}\r\n")).await?;
    let r = reply(&mut s, &mut buf, "after EHLO").await?;
    if r.code != 250 {
        if !(500..=504).contains(&r.code) {
            return Err(Failure::Rejected(format!(
                "SMTP EHLO answered {} {}",
                r.code, r.text
            )));
        }
        send(&mut s, &format!("HELO {helo}\r\n")).await?;
        let r = reply(&mut s, &mut buf, "after HELO").await?;
        if r.code != 250 {
            return Err(Failure::Rejected(format!(
                "SMTP HELO answered {} {}",
                r.code, r.text
            )));
        }
    }
    // Leave politely; the server's 221 is not part of the verdict.
    if send(&mut s, "QUIT\r\n").await.is_ok() {
        let _ = reply(&mut s, &mut buf, "after QUIT").await;
    }
    Ok(())
}
