//! One connection: reading the request head, then answering it as the mode says, logged.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::answer::{answer_file, truncate};
use super::faults::{garbage, send_huge};
use super::shared::Shared;
use super::{End, Mode, Request, BLACKHOLE_HOLD, REQUEST_TIMEOUT, STALL_TIMEOUT, TICK};

/// The largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

pub(super) fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Reads the request head (up to the blank line); `None` if the client closes, is too slow,
/// sends too much, or the server stops.
fn read_head(shared: &Shared, stream: &mut TcpStream) -> Option<Head> {
    stream.set_read_timeout(Some(TICK)).ok()?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let end = loop {
        if shared.stopping() || Instant::now() >= deadline {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                // Look again from just before the new bytes: the blank line may straddle.
                let from = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                    break from + at;
                }
                if buf.len() > MAX_HEAD {
                    return None;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return None,
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(Head {
        method,
        target,
        headers,
    })
}

/// One connection's socket and what has been written to it.
pub(super) struct Conn<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    sent: u64,
}

impl Conn<'_> {
    /// Writes all of `buf`; the error is how the exchange ended instead.
    pub(super) fn send(&mut self, mut buf: &[u8]) -> Result<(), End> {
        let mut progress = Instant::now();
        while !buf.is_empty() {
            if self.shared.stopping() {
                return Err(End::Stopped);
            }
            match self.stream.write(buf) {
                Ok(0) => return Err(End::PeerClosed),
                Ok(n) => {
                    buf = &buf[n..];
                    self.sent += n as u64;
                    progress = Instant::now();
                }
                Err(e) if is_timeout(&e) => {
                    if progress.elapsed() >= STALL_TIMEOUT {
                        return Err(End::Stalled);
                    }
                }
                Err(e) if is_peer_gone(&e) => return Err(End::PeerClosed),
                Err(e) => return Err(End::Error(e.to_string())),
            }
        }
        Ok(())
    }

    /// Waits `d`, or less if the client closes (a read sees the end of the stream) or the
    /// server stops; `Err` says which.
    fn pause(&mut self, d: Duration) -> Result<(), End> {
        let until = Instant::now() + d;
        let mut byte = [0u8; 1];
        loop {
            if self.shared.stopping() {
                return Err(End::Stopped);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let step = left.min(TICK);
            self.stream
                .set_read_timeout(Some(step))
                .map_err(|e| End::Error(e.to_string()))?;
            match self.stream.peek(&mut byte) {
                Ok(0) => return Err(End::PeerClosed),
                // More bytes from the client (a pipelined request) hide a close; just wait.
                Ok(_) => std::thread::sleep(step),
                Err(e) if is_timeout(&e) => {}
                Err(e) if is_peer_gone(&e) => return Err(End::PeerClosed),
                Err(e) => return Err(End::Error(e.to_string())),
            }
        }
    }

    /// Writes `data` at `rate` bytes per second: byte `k` not before `k / rate` seconds after
    /// the first.
    fn send_paced(&mut self, data: &[u8], rate: u32) -> Result<(), End> {
        let rate = f64::from(rate.max(1));
        let start = Instant::now();
        let mut done = 0;
        while done < data.len() {
            let due = (start.elapsed().as_secs_f64() * rate) as usize + 1;
            let allowed = due.min(data.len());
            if allowed > done {
                self.send(&data[done..allowed])?;
                done = allowed;
                continue;
            }
            let next = start + Duration::from_secs_f64(done as f64 / rate);
            let wait = next.saturating_duration_since(Instant::now());
            self.pause(wait.max(Duration::from_millis(5)))?;
        }
        Ok(())
    }
}

pub(super) fn serve_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let mut stream = stream;
    // An accepted socket does not inherit the listener's O_NONBLOCK on Linux; be sure.
    if stream.set_nonblocking(false).is_err() || stream.set_write_timeout(Some(TICK)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let Some(head) = read_head(shared, &mut stream) else {
        return;
    };
    let mode = shared.mode();
    let index = shared.log_start(Request {
        at: Instant::now(),
        peer,
        method: head.method.clone(),
        path: head.target.clone(),
        headers: head.headers.clone(),
        mode,
        status: None,
        declared: None,
        sent: 0,
        end: End::InProgress,
    });
    let mut conn = Conn {
        stream,
        shared,
        sent: 0,
    };
    let announce = |status: Option<u16>, declared: Option<u64>| {
        shared.log_update(index, |r| {
            r.status = status;
            r.declared = declared;
        })
    };
    let outcome = match mode {
        // Accepted just before the listener closed: closed unanswered, as by a crash.
        Mode::Gone => Ok(End::Complete),
        Mode::Serve => {
            let answer = answer_file(&shared.dir, &head, true);
            announce(Some(answer.status), answer.declared);
            conn.send(&answer.bytes).map(|()| End::Complete)
        }
        Mode::Blackhole => conn.pause(BLACKHOLE_HOLD).map(|()| End::Held),
        Mode::Garbage => conn.send(&garbage()).map(|()| End::Complete),
        Mode::Truncated => {
            let mut answer = answer_file(&shared.dir, &head, false);
            if answer.status == 200 && head.method != "HEAD" {
                answer = truncate(answer);
            }
            announce(Some(answer.status), answer.declared);
            conn.send(&answer.bytes).map(|()| End::Complete)
        }
        Mode::Huge(len) | Mode::HugeUndeclared(len) => {
            let declared = matches!(mode, Mode::Huge(_)).then_some(len);
            announce(Some(200), declared);
            send_huge(&mut conn, declared, len).map(|()| End::Complete)
        }
        Mode::Slow { bytes_per_second } => {
            let answer = answer_file(&shared.dir, &head, true);
            announce(Some(answer.status), answer.declared);
            conn.send_paced(&answer.bytes, bytes_per_second)
                .map(|()| End::Complete)
        }
    };
    let end = outcome.unwrap_or_else(|end| end);
    let sent = conn.sent;
    shared.log_update(index, |r| {
        r.sent = sent;
        r.end = end;
    });
    // Dropping the stream closes it; the client sees the end of the stream (or a reset).
}
