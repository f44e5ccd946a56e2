//! Constant traffic through the VIP from the client's namespace, every answer checked: a set
//! of long-lived connections to the echo service that each send a line every 100 ms, and a
//! steady stream of short HTTP requests. Everything is recorded with the harness's clock, so a
//! scenario can cut the record into rounds and compute what clients saw.
//!
//! A long connection that fails (reset, closed, a wrong or missing echo) is recorded as lost
//! and replaced by a new one, so the set keeps its size for the next round. Every loop is
//! bounded in count and in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// What the load sends, and its bounds.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The VIP's HTTP service (answers the real's name).
    pub http: SocketAddr,
    /// The VIP's line echo service (answers `REAL LINE`).
    pub echo: SocketAddr,
    /// Long connections kept open at once.
    pub connections: usize,
    /// Each long connection sends a line this often.
    pub line_every: Duration,
    /// A short request starts this often.
    pub request_every: Duration,
    /// Connect and answer timeout of a short request.
    pub request_timeout: Duration,
    /// A long connection with no echo for this long is counted lost (TCP's retransmission
    /// backoff makes the first echo after an outage of a few seconds come seconds late).
    pub silence_limit: Duration,
    /// No load thread runs longer than this.
    pub limit: Duration,
}

impl LoadSpec {
    /// The chaos suite's load: 8 long connections, a line each every 100 ms, a short request
    /// every 50 ms.
    pub fn new(http: SocketAddr, echo: SocketAddr, limit: Duration) -> LoadSpec {
        LoadSpec {
            http,
            echo,
            connections: 8,
            line_every: Duration::from_millis(100),
            request_every: Duration::from_millis(50),
            request_timeout: Duration::from_secs(1),
            silence_limit: Duration::from_secs(30),
            limit,
        }
    }
}

/// One short request: when it started and what came back (the real's name, or why not).
#[derive(Clone, Debug)]
pub struct Request {
    /// When it started.
    pub at: Instant,
    /// The real that answered, or the failure.
    pub outcome: Result<String, String>,
}

/// How one long connection ended, when it did not end because the load stopped.
#[derive(Clone, Debug)]
pub struct Lost {
    /// Which connection slot (0..connections).
    pub slot: usize,
    /// When it was opened.
    pub opened: Instant,
    /// When the failure was seen.
    pub at: Instant,
    /// The last echo before that.
    pub last_echo: Option<Instant>,
    /// What happened.
    pub why: String,
}

/// Everything the load saw, shared with its threads.
#[derive(Debug, Default)]
pub struct Record {
    /// Short requests in the order they started.
    pub requests: Vec<Request>,
    /// Every echo of every long connection: (when, slot).
    pub echoes: Vec<(Instant, usize)>,
    /// Long connections lost.
    pub lost: Vec<Lost>,
    /// Long connections opened (including replacements), with the time.
    pub opened: Vec<(Instant, usize)>,
}

/// The running load; stopped and joined on drop.
pub struct Load {
    connections: usize,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    record: Arc<Mutex<Record>>,
}

impl Load {
    /// Starts the load inside `ns` (the client's namespace).
    pub fn start(ns: &Netns, spec: LoadSpec) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let t0 = Instant::now();
        let mut threads = Vec::new();
        for slot in 0..spec.connections {
            let (stop, record, spec) = (stop.clone(), record.clone(), spec.clone());
            threads.push(
                ns.thread(move || conversations(slot, &spec, t0, &stop, &record))
                    .expect("enter the client's namespace"),
            );
        }
        let connections = spec.connections;
        let (stop2, record2) = (stop.clone(), record.clone());
        threads.push(
            ns.thread(move || requests(&spec, t0, &stop2, &record2))
                .expect("enter the client's namespace"),
        );
        Load {
            connections,
            stop,
            threads,
            record,
        }
    }

    /// How many long connections it keeps open.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// A snapshot of the record.
    pub fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops every thread and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

fn requests(spec: &LoadSpec, t0: Instant, stop: &AtomicBool, record: &Mutex<Record>) {
    let max = (spec.limit.as_millis() / spec.request_every.as_millis().max(1)) as usize + 1;
    for _ in 0..max {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > spec.limit {
            return;
        }
        let at = Instant::now();
        let outcome = http_get(spec.http, spec.request_timeout);
        record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .push(Request { at, outcome });
        std::thread::sleep(spec.request_every.saturating_sub(at.elapsed()));
    }
}

/// One GET of `/` from `addr`; the body (the real's name) or why not.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    if !answer.starts_with("HTTP/1.0 200") {
        return Err(format!("answer {answer:?}"));
    }
    Ok(answer
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// Slot `slot`'s long connections, one after another while the load runs.
fn conversations(
    slot: usize,
    spec: &LoadSpec,
    t0: Instant,
    stop: &AtomicBool,
    record: &Mutex<Record>,
) {
    // Spread the slots' lines over the interval.
    std::thread::sleep(spec.line_every * slot as u32 / spec.connections.max(1) as u32);
    // Bounded: a connection that cannot even be opened waits a second before the next try.
    let max_connections = spec.limit.as_secs() as usize + 1;
    for _ in 0..max_connections {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > spec.limit {
            return;
        }
        let opened = Instant::now();
        let failure = conversation(slot, spec, t0, stop, record);
        if let Some((why, last_echo)) = failure {
            record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lost
                .push(Lost {
                    slot,
                    opened,
                    at: Instant::now(),
                    last_echo,
                    why,
                });
            std::thread::sleep(Duration::from_secs(1).saturating_sub(opened.elapsed()));
        }
    }
}

/// One long connection until it fails (why, and the last echo) or the load stops (`None`).
fn conversation(
    slot: usize,
    spec: &LoadSpec,
    t0: Instant,
    stop: &AtomicBool,
    record: &Mutex<Record>,
) -> Option<(String, Option<Instant>)> {
    let mut last_echo = None;
    let stream = match TcpStream::connect_timeout(&spec.echo, Duration::from_secs(3)) {
        Ok(s) => s,
        Err(e) => return Some((format!("connect: {e}"), None)),
    };
    record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .opened
        .push((Instant::now(), slot));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return Some((format!("clone: {e}"), None)),
    };
    let mut reader = BufReader::new(stream);
    let mut real: Option<String> = None;
    let max_lines = spec.limit.as_millis() / spec.line_every.as_millis().max(1) + 1;
    for n in 1..=max_lines {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > spec.limit {
            return None;
        }
        let sent = Instant::now();
        if let Err(e) = writer.write_all(format!("line {n}\n").as_bytes()) {
            return Some((format!("send: {e}"), last_echo));
        }
        // Read timeouts leave what was read in `buf` (BufRead::read_until).
        let mut buf = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return Some(("closed by the peer".into(), last_echo)),
                Ok(_) if buf.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    if sent.elapsed() > spec.silence_limit {
                        return Some((format!("no echo for {:?}", spec.silence_limit), last_echo));
                    }
                }
                Err(e) => return Some((format!("receive: {e}"), last_echo)),
            }
        }
        let text = String::from_utf8_lossy(&buf).trim_end().to_string();
        let Some((who, line)) = text.split_once(' ') else {
            return Some((format!("echo {text:?}"), last_echo));
        };
        if line != format!("line {n}") || real.as_deref().is_some_and(|r| r != who) {
            return Some((
                format!("echo {text:?} for line {n} (real {real:?})"),
                last_echo,
            ));
        }
        real = Some(who.to_string());
        let now = Instant::now();
        last_echo = Some(now);
        record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .echoes
            .push((now, slot));
        std::thread::sleep(spec.line_every.saturating_sub(sent.elapsed()));
    }
    None
}

impl Record {
    /// Short requests started in [from, to).
    pub fn requests_in(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Request> {
        self.requests
            .iter()
            .filter(move |r| r.at >= from && r.at < to)
    }

    /// Long connections lost in [from, to).
    pub fn lost_in(&self, from: Instant, to: Instant) -> Vec<&Lost> {
        self.lost
            .iter()
            .filter(|l| l.at >= from && l.at < to)
            .collect()
    }

    /// The longest time in [from, to) without a successful short request (from `from` to the
    /// first success, between successes, and from the last success to `to`).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut worst = Duration::ZERO;
        for r in self.requests_in(from, to).filter(|r| r.outcome.is_ok()) {
            worst = worst.max(r.at - last);
            last = r.at;
        }
        worst.max(to.saturating_duration_since(last))
    }

    /// The longest pause of any long connection in [from, to): the longest time between two
    /// echoes of one slot.
    pub fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let mut last: std::collections::HashMap<usize, Instant> = Default::default();
        let mut worst = Duration::ZERO;
        for &(at, slot) in self.echoes.iter().filter(|(at, _)| *at >= from && *at < to) {
            if let Some(prev) = last.insert(slot, at) {
                worst = worst.max(at - prev);
            }
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_from_the_window_edges() {
        let t = Instant::now();
        let at = |ms: u64| t + Duration::from_millis(ms);
        let r = Record {
            requests: vec![
                Request {
                    at: at(100),
                    outcome: Ok("r1".into()),
                },
                Request {
                    at: at(200),
                    outcome: Err("connect: refused".into()),
                },
                Request {
                    at: at(900),
                    outcome: Ok("r2".into()),
                },
            ],
            echoes: vec![(at(0), 0), (at(100), 1), (at(300), 0), (at(1000), 1)],
            ..Record::default()
        };
        assert_eq!(r.longest_gap(at(0), at(1000)), Duration::from_millis(800));
        assert_eq!(r.longest_gap(at(0), at(2500)), Duration::from_millis(1600));
        assert_eq!(r.longest_pause(at(0), at(2000)), Duration::from_millis(900));
        assert_eq!(r.requests_in(at(150), at(1000)).count(), 2);
    }
}
