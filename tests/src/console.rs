//! A guest's serial console: captured by a reader thread into memory and a log file, and
//! searched by ordered expectations.
//!
//! Every [`Console`] keeps a cursor. [`Console::expect`] searches only the text after the cursor
//! and moves the cursor to the end of what it matched, so a sequence of expectations must appear
//! in that order. Lines are matched one at a time (a regex never spans lines). The line being
//! written (no newline yet) is searched too once the output has paused for [`PARTIAL_SETTLE`],
//! so a prompt such as `login: ` can be awaited while a line that is still arriving (the serial
//! port delivers lines in pieces) is not matched half-way (`mac=(\S+)` must not see `mac=52:5`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regex::Regex;

/// How long the output must pause before an unfinished last line is searched.
pub const PARTIAL_SETTLE: Duration = Duration::from_millis(200);

/// How many console lines an [`ExpectError`] shows.
pub const ERROR_TAIL_LINES: usize = 40;

/// A place in the console transcript: a line index and a byte offset within that line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 0-based line index.
    pub line: usize,
    /// Byte offset within the line.
    pub offset: usize,
}

/// Everything the guest wrote so far, split into lines (`\r` removed).
#[derive(Debug, Default)]
pub struct Transcript {
    lines: Vec<String>,
    /// When each complete line's newline reached us (host clock).
    arrivals: Vec<Instant>,
    partial: Vec<u8>,
    /// The start of a program's line that a kernel message cut into, waiting for its end.
    interrupted: Option<String>,
    closed: bool,
    last_data: Option<Instant>,
}

impl Transcript {
    /// Appends raw console bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.last_data = Some(now);
        for &b in bytes {
            match b {
                b'\n' => {
                    let line = String::from_utf8_lossy(&self.partial).into_owned();
                    self.partial.clear();
                    self.complete_line(line, now);
                }
                b'\r' => {}
                _ => self.partial.push(b),
            }
        }
    }

    /// Files a finished line. The kernel writes its messages to the serial port the moment they
    /// are logged, so one can land inside a line a program is writing (`lbd: INFO
    /// stopping[    4.69] IPv6: ...`, the program's newline after it). The kernel's message
    /// becomes a line of its own and the program's line is put back together from its two parts.
    fn complete_line(&mut self, line: String, now: Instant) {
        if let Some(at) = embedded_kernel_message(&line) {
            let head = self.interrupted.take().unwrap_or_default() + &line[..at];
            self.push_line(line[at..].to_owned(), now);
            self.interrupted = Some(head);
        } else if starts_with_kernel_timestamp(&line) {
            self.push_line(line, now);
        } else {
            let whole = self.interrupted.take().unwrap_or_default() + &line;
            self.push_line(whole, now);
        }
    }

    fn push_line(&mut self, line: String, arrived: Instant) {
        self.lines.push(line);
        self.arrivals.push(arrived);
    }

    /// Marks the end of output (the guest's console closed).
    pub fn close(&mut self) {
        if let Some(head) = self.interrupted.take() {
            let arrived = self.last_data.unwrap_or_else(Instant::now);
            self.push_line(head, arrived);
        }
        self.closed = true;
    }

    /// True once the console has closed (QEMU exited).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Complete lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The line being written (no newline yet), possibly empty.
    pub fn partial(&self) -> String {
        String::from_utf8_lossy(&self.partial).into_owned()
    }

    /// The last `n` lines, the partial one included when non-empty.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let mut all: Vec<String> = self.lines[self.lines.len().saturating_sub(n)..].to_vec();
        all.extend(self.interrupted.clone());
        if !self.partial.is_empty() {
            all.push(self.partial());
        }
        let extra = all.len().saturating_sub(n);
        all.drain(..extra);
        all
    }

    /// The position just after everything received so far.
    pub fn end(&self) -> Position {
        Position {
            line: self.lines.len(),
            offset: self.partial().len(),
        }
    }

    /// How long until the unfinished last line has been quiet for [`PARTIAL_SETTLE`]
    /// (`Duration::ZERO` once it has, or when the console closed).
    pub fn partial_settles_in(&self, now: Instant) -> Duration {
        match self.last_data {
            Some(t) if !self.closed => {
                PARTIAL_SETTLE.saturating_sub(now.saturating_duration_since(t))
            }
            _ => Duration::ZERO,
        }
    }

    /// Finds the earliest match of any of `patterns` at or after `from`. Returns the index of the
    /// pattern that matched (the first one listed wins a tie) and the match. The unfinished last
    /// line is searched only with `with_partial`.
    pub fn search(
        &self,
        from: Position,
        patterns: &[Regex],
        with_partial: bool,
    ) -> Option<(usize, Match)> {
        let partial = self.partial();
        let with_partial = with_partial && !partial.is_empty();
        let count = self.lines.len() + usize::from(with_partial);
        for line_no in from.line..count {
            let (line, arrived): (&str, _) = if line_no < self.lines.len() {
                (&self.lines[line_no], self.arrivals[line_no])
            } else {
                (&partial, self.last_data.unwrap_or_else(Instant::now))
            };
            let mut start = if line_no == from.line { from.offset } else { 0 };
            if start > line.len() {
                continue;
            }
            while !line.is_char_boundary(start) {
                start += 1;
            }
            let best = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, re)| re.captures_at(line, start).map(|c| (i, c)))
                .min_by_key(|(i, c)| (c.get(0).map_or(usize::MAX, |m| m.start()), *i));
            if let Some((index, caps)) = best {
                let m = Match::new(&patterns[index], line_no, line, &caps, arrived);
                return Some((index, m));
            }
        }
        None
    }
}

/// One successful expectation: where it matched and what the groups captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// 0-based line index in the transcript.
    pub line_no: usize,
    /// The whole line that matched.
    pub line: String,
    /// Byte range of the match within `line`.
    pub range: std::ops::Range<usize>,
    groups: Vec<Option<String>>,
    names: Vec<Option<String>>,
    arrived: Instant,
}

impl Match {
    fn new(
        re: &Regex,
        line_no: usize,
        line: &str,
        caps: &regex::Captures<'_>,
        arrived: Instant,
    ) -> Self {
        let whole = caps.get(0).expect("group 0 always participates");
        Self {
            arrived,
            line_no,
            line: line.to_owned(),
            range: whole.range(),
            groups: caps
                .iter()
                .map(|g| g.map(|m| m.as_str().to_owned()))
                .collect(),
            names: re.capture_names().map(|n| n.map(str::to_owned)).collect(),
        }
    }

    /// When the line reached the host (its last byte so far, for an unfinished line): a clock
    /// that does not depend on the guest's.
    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// The matched text.
    pub fn text(&self) -> &str {
        &self.line[self.range.clone()]
    }

    /// Capture group `i` (0 is the whole match), if it participated.
    pub fn group(&self, i: usize) -> Option<&str> {
        self.groups.get(i)?.as_deref()
    }

    /// The named capture group `name`, if it exists and participated.
    pub fn name(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        self.group(i)
    }

    /// The position right after the match (where the next expectation starts).
    pub fn end(&self) -> Position {
        Position {
            line: self.line_no,
            offset: self.range.end,
        }
    }
}

/// Why an expectation failed.
#[derive(Debug)]
pub enum ExpectFailure {
    /// Nothing matched within the timeout.
    Timeout(Duration),
    /// The console closed (the guest exited) before anything matched.
    Closed,
    /// A pattern is not a valid regex.
    BadPattern(regex::Error),
}

/// An expectation that failed, with what was awaited and the end of the console.
pub struct ExpectError {
    /// What went wrong.
    pub failure: ExpectFailure,
    /// Which console (the guest name).
    pub console: String,
    /// What was awaited (the patterns).
    pub awaited: String,
    /// The last lines of the console when it failed.
    pub tail: Vec<String>,
    /// The full console log, if one is written.
    pub log_path: Option<PathBuf>,
}

impl fmt::Display for ExpectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            ExpectFailure::Timeout(t) => write!(
                f,
                "console of {}: nothing matched {} within {:.1?}",
                self.console, self.awaited, t
            )?,
            ExpectFailure::Closed => write!(
                f,
                "console of {}: the guest exited before anything matched {}",
                self.console, self.awaited
            )?,
            ExpectFailure::BadPattern(e) => {
                return write!(f, "invalid pattern {}: {e}", self.awaited)
            }
        }
        write!(f, "\n--- last {} console lines", self.tail.len())?;
        if let Some(p) = &self.log_path {
            write!(f, " (full log: {})", p.display())?;
        }
        writeln!(f, " ---")?;
        for line in &self.tail {
            writeln!(f, "| {line}")?;
        }
        write!(f, "--- end of console ---")
    }
}

crate::debug_is_display!(ExpectError);

impl std::error::Error for ExpectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            ExpectFailure::BadPattern(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    transcript: Mutex<Transcript>,
    changed: Condvar,
}

/// A console being captured, with its own expectation cursor. Cheap to share by reference;
/// all methods take `&self`.
#[derive(Debug)]
pub struct Console {
    name: String,
    shared: Arc<Shared>,
    cursor: Mutex<Position>,
    log_path: Option<PathBuf>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Console {
    /// A console fed by hand (see [`Console::push`]), e.g. for tests of code that parses output.
    pub fn detached(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            shared: Arc::default(),
            cursor: Mutex::default(),
            log_path: None,
            reader: Mutex::new(None),
        }
    }

    /// Starts a thread that copies `source` into this console and into the file `log_path`
    /// (created or truncated). With `echo`, lines also go to stderr prefixed by the name.
    pub fn capture(
        name: impl Into<String>,
        mut source: impl Read + Send + 'static,
        log_path: &Path,
        echo: bool,
    ) -> io::Result<Self> {
        let name = name.into();
        let mut log = File::create(log_path)?;
        let shared = Arc::<Shared>::default();
        let thread_shared = Arc::clone(&shared);
        let prefix = name.clone();
        let reader = std::thread::Builder::new()
            .name(format!("console-{name}"))
            .spawn(move || {
                let mut buf = [0u8; 4096];
                let mut echo_line = Vec::new();
                loop {
                    let n = match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    // The log is best effort: a full disk must not stop the test's expectations.
                    let _ = log.write_all(&buf[..n]);
                    if echo {
                        for &b in &buf[..n] {
                            if b == b'\n' {
                                eprintln!("[{prefix}] {}", String::from_utf8_lossy(&echo_line));
                                echo_line.clear();
                            } else if b != b'\r' {
                                echo_line.push(b);
                            }
                        }
                    }
                    lock(&thread_shared.transcript).push_bytes(&buf[..n]);
                    thread_shared.changed.notify_all();
                }
                let _ = log.flush();
                lock(&thread_shared.transcript).close();
                thread_shared.changed.notify_all();
            })?;
        Ok(Self {
            name,
            shared,
            cursor: Mutex::default(),
            log_path: Some(log_path.to_owned()),
            reader: Mutex::new(Some(reader)),
        })
    }

    /// Feeds bytes to a [`Console::detached`] console.
    pub fn push(&self, bytes: &[u8]) {
        lock(&self.shared.transcript).push_bytes(bytes);
        self.shared.changed.notify_all();
    }

    /// Marks a [`Console::detached`] console closed.
    pub fn close(&self) {
        lock(&self.shared.transcript).close();
        self.shared.changed.notify_all();
    }

    /// Waits (at most `timeout`) for the reader thread to see the end of the output, so the
    /// transcript is complete after the guest exited. Returns whether it finished.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = lock(&self.shared.transcript);
        while !t.is_closed() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            t = self
                .shared
                .changed
                .wait_timeout(t, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(t);
        if let Some(handle) = lock(&self.reader).take() {
            let _ = handle.join();
        }
        true
    }

    /// The console's name (the guest name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the whole console is written to.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Waits for `pattern` (a regex, matched per line) after the cursor; moves the cursor past it.
    pub fn expect(&self, pattern: &str, timeout: Duration) -> Result<Match, ExpectError> {
        self.expect_any(&[pattern], timeout).map(|(_, m)| m)
    }

    /// Like [`Console::expect`] with a compiled regex.
    pub fn expect_regex(&self, re: &Regex, timeout: Duration) -> Result<Match, ExpectError> {
        let awaited = format!("/{}/", re.as_str());
        self.wait_search(std::slice::from_ref(re), false, awaited, timeout)
            .map(|(_, m)| m)
    }

    /// Waits for whichever of `patterns` appears first after the cursor. Returns the index of
    /// that pattern and the match; the cursor moves past it.
    pub fn expect_any(
        &self,
        patterns: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        let awaited = patterns
            .iter()
            .map(|p| format!("/{p}/"))
            .collect::<Vec<_>>()
            .join(" or ");
        let compiled = patterns
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(ExpectFailure::BadPattern(e), awaited.clone()))?;
        self.wait_search(&compiled, false, awaited, timeout)
    }

    /// Waits for a complete line (newline received) after the cursor that contains `needle`
    /// literally; returns that line and moves the cursor to the start of the next line.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, ExpectError> {
        let re = Regex::new(&regex::escape(needle)).expect("an escaped literal is a valid regex");
        let (_, m) = self.wait_search(
            std::slice::from_ref(&re),
            true,
            format!("a line containing {needle:?}"),
            timeout,
        )?;
        *lock(&self.cursor) = Position {
            line: m.line_no + 1,
            offset: 0,
        };
        Ok(m.line)
    }

    /// Moves the cursor to the end of what has been received, so later expectations only see
    /// new output.
    pub fn skip_to_end(&self) {
        *lock(&self.cursor) = lock(&self.shared.transcript).end();
    }

    /// The expectation cursor.
    pub fn position(&self) -> Position {
        *lock(&self.cursor)
    }

    /// Sets the expectation cursor (e.g. back to `Position::default()` to search from the start).
    pub fn set_position(&self, position: Position) {
        *lock(&self.cursor) = position;
    }

    /// All lines received so far (the partial last line included when non-empty).
    pub fn lines(&self) -> Vec<String> {
        let t = lock(&self.shared.transcript);
        let mut lines = t.lines().to_vec();
        let partial = t.partial();
        if !partial.is_empty() {
            lines.push(partial);
        }
        lines
    }

    /// The last `n` lines received.
    pub fn tail(&self, n: usize) -> Vec<String> {
        lock(&self.shared.transcript).tail(n)
    }

    /// True once the guest's output has ended.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.transcript).is_closed()
    }

    fn error(&self, failure: ExpectFailure, awaited: String) -> ExpectError {
        ExpectError {
            failure,
            console: self.name.clone(),
            awaited,
            tail: self.tail(ERROR_TAIL_LINES),
            log_path: self.log_path.clone(),
        }
    }

    fn wait_search(
        &self,
        patterns: &[Regex],
        complete_lines_only: bool,
        awaited: String,
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        let from = self.position();
        let deadline = Instant::now() + timeout;
        let mut t = lock(&self.shared.transcript);
        loop {
            let settles_in = t.partial_settles_in(Instant::now());
            let with_partial = !complete_lines_only && settles_in.is_zero();
            if let Some((i, m)) = t.search(from, patterns, with_partial) {
                drop(t);
                *lock(&self.cursor) = m.end();
                return Ok((i, m));
            }
            if t.is_closed() {
                drop(t);
                return Err(self.error(ExpectFailure::Closed, awaited));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(t);
                return Err(self.error(ExpectFailure::Timeout(timeout), awaited));
            }
            // Wake up when the unfinished line settles, if it may be what we wait for.
            let mut wait = deadline - now;
            if !complete_lines_only && !settles_in.is_zero() && !t.partial.is_empty() {
                wait = wait.min(settles_in);
            }
            t = self
                .shared
                .changed
                .wait_timeout(t, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A kernel log line's timestamp, `[    4.698390] `.
fn kernel_timestamp() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[\s*\d+\.\d{6}\] ").expect("valid regex"))
}

fn starts_with_kernel_timestamp(line: &str) -> bool {
    kernel_timestamp()
        .find(line)
        .is_some_and(|m| m.start() == 0)
}

/// Where a kernel message starts inside a line that is not itself a kernel message.
fn embedded_kernel_message(line: &str) -> Option<usize> {
    let at = kernel_timestamp().find(line)?.start();
    (at > 0).then_some(at)
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not hide the console from
/// the failure report.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    fn console(text: &str) -> Console {
        let c = Console::detached("test");
        c.push(text.as_bytes());
        c
    }

    #[test]
    fn lines_are_split_and_carriage_returns_dropped() {
        let mut t = Transcript::default();
        t.push_bytes(b"one\r\ntw");
        t.push_bytes(b"o\r\nthree");
        assert_eq!(t.lines(), ["one", "two"]);
        assert_eq!(t.partial(), "three");
        assert_eq!(t.tail(2), ["two", "three"]);
    }

    #[test]
    fn a_kernel_message_inside_a_program_line_is_taken_out() {
        let mut t = Transcript::default();
        t.push_bytes(b"[    4.600000] init: stopping lbd\r\n");
        t.push_bytes(
            b"lbd:  INFO SIGTERM: stopping[    4.698390] IPv6: eth0: link becomes ready\r\n",
        );
        t.push_bytes(
            b"\r\nlbd:  INFO vrrp: st[    4.700001] one\r\n[    4.700002] two\r\nopped\r\n",
        );
        assert_eq!(
            t.lines(),
            [
                "[    4.600000] init: stopping lbd",
                "[    4.698390] IPv6: eth0: link becomes ready",
                "lbd:  INFO SIGTERM: stopping",
                "[    4.700001] one",
                "[    4.700002] two",
                "lbd:  INFO vrrp: stopped",
            ]
        );
        let c = console("lbd:  INFO SIGTERM: stopping[    4.698390] IPv6: ready\n\n");
        assert_eq!(
            c.expect(r"INFO SIGTERM: stopping$", SHORT).unwrap().line_no,
            1
        );
    }

    #[test]
    fn an_interrupted_line_cut_short_by_the_end_is_kept() {
        let mut t = Transcript::default();
        t.push_bytes(b"lbd: half[    1.000000] kernel\n");
        assert_eq!(t.tail(5), ["[    1.000000] kernel", "lbd: half"]);
        t.close();
        assert_eq!(t.lines(), ["[    1.000000] kernel", "lbd: half"]);
    }

    #[test]
    fn expectations_are_ordered() {
        let c = console("b marker\na marker\nb again\n");
        let m = c.expect("a marker", SHORT).unwrap();
        assert_eq!(m.line_no, 1);
        // "b marker" on line 0 is before the cursor now: only line 2 can match.
        let m = c.expect("^b", SHORT).unwrap();
        assert_eq!(m.line, "b again");
        let err = c.expect("a marker", SHORT).unwrap_err();
        assert!(matches!(err.failure, ExpectFailure::Timeout(_)), "{err}");
    }

    #[test]
    fn two_matches_on_one_line_are_found_in_turn() {
        let c = console("x=1 x=2\n");
        assert_eq!(c.expect(r"x=(\d)", SHORT).unwrap().group(1), Some("1"));
        assert_eq!(c.expect(r"x=(\d)", SHORT).unwrap().group(1), Some("2"));
        // `^` still means the start of the line, not the cursor.
        assert!(c.expect("^x", SHORT).is_err());
    }

    #[test]
    fn named_groups_are_available() {
        let c = console("3 packets transmitted, 3 packets received, 0% packet loss\n");
        let m = c
            .expect(
                r"(?P<tx>\d+) packets transmitted, (?P<rx>\d+) packets received",
                SHORT,
            )
            .unwrap();
        assert_eq!(m.name("tx"), Some("3"));
        assert_eq!(m.name("rx"), Some("3"));
        assert_eq!(m.name("nope"), None);
    }

    #[test]
    fn a_settled_partial_line_matches_but_not_for_wait_for_line() {
        let c = console("boot\nlogin: ");
        assert!(c.wait_for_line("login", PARTIAL_SETTLE * 2).is_err());
        c.set_position(Position::default());
        let m = c.expect("login: $", Duration::from_secs(5)).unwrap();
        assert_eq!(m.line_no, 1);
    }

    #[test]
    fn a_line_still_arriving_is_not_matched_half_way() {
        let c = Arc::new(console("LBTEST-NET-UP mac=52:54:0"));
        let feeder = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            std::thread::sleep(PARTIAL_SETTLE / 4);
            feeder.push(b"0:77:00:02\n");
        });
        let m = c.expect(r"mac=(\S+)", Duration::from_secs(5)).unwrap();
        assert_eq!(m.group(1), Some("52:54:00:77:00:02"));
        t.join().unwrap();
    }

    #[test]
    fn expect_any_picks_the_earliest_match() {
        let c = console("Kernel panic - not syncing\nMARKER\n");
        let (i, m) = c.expect_any(&["MARKER", "Kernel panic"], SHORT).unwrap();
        assert_eq!(i, 1);
        assert_eq!(m.line_no, 0);
        // Same place: the first pattern listed wins.
        let c = console("abc\n");
        let (i, _) = c.expect_any(&["b", "bc"], SHORT).unwrap();
        assert_eq!(i, 0);
    }

    #[test]
    fn wait_for_line_moves_to_the_next_line() {
        let c = console("ready ready\nready\n");
        assert_eq!(c.wait_for_line("ready", SHORT).unwrap(), "ready ready");
        let m = c.expect("ready", SHORT).unwrap();
        assert_eq!(m.line_no, 1);
        // Literal, not a regex.
        let c = console("a.b\naxb\n");
        assert_eq!(c.wait_for_line("x", SHORT).unwrap(), "axb");
        c.set_position(Position::default());
        assert_eq!(c.wait_for_line("a.b", SHORT).unwrap(), "a.b");
    }

    #[test]
    fn output_arriving_later_is_seen() {
        let c = Arc::new(Console::detached("late"));
        let feeder = Arc::clone(&c);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            feeder.push(b"hello from the guest\n");
        });
        let m = c.expect("from the (\\w+)", Duration::from_secs(5)).unwrap();
        assert_eq!(m.group(1), Some("guest"));
        t.join().unwrap();
    }

    #[test]
    fn a_closed_console_fails_at_once_and_shows_its_tail() {
        let c = console("line 1\nKernel panic - not syncing: VFS\n");
        c.close();
        let started = Instant::now();
        let err = c.expect("MARKER", Duration::from_secs(30)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err.failure, ExpectFailure::Closed));
        let text = err.to_string();
        assert!(text.contains("/MARKER/"), "{text}");
        assert!(text.contains("| Kernel panic - not syncing: VFS"), "{text}");
    }

    #[test]
    fn a_bad_pattern_is_reported() {
        let err = console("x\n").expect("(", SHORT).unwrap_err();
        assert!(matches!(err.failure, ExpectFailure::BadPattern(_)), "{err}");
    }

    #[test]
    fn skip_to_end_ignores_earlier_output() {
        let c = console("MARKER\nhalf");
        c.skip_to_end();
        assert!(c.expect("MARKER|half", PARTIAL_SETTLE * 2).is_err());
        c.push(b" done\nMARKER\n");
        assert_eq!(c.expect("MARKER|half", SHORT).unwrap().line_no, 2);
    }

    #[test]
    fn capture_copies_a_stream_to_the_log_and_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let c = Console::capture("cap", &b"first\r\nsecond\n"[..], &log, false).unwrap();
        assert!(c.wait_closed(Duration::from_secs(5)));
        assert_eq!(c.lines(), ["first", "second"]);
        assert_eq!(std::fs::read(&log).unwrap(), b"first\r\nsecond\n");
    }
}
