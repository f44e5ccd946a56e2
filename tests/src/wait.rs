//! Bounded polling: until a condition holds, or until something accepts TCP connections.
//!
//! Every wait has a limit and reports whether the condition came true; the caller decides what
//! a miss means (tests assert, with what they saw).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Calls `f` every `poll` until it returns true or `timeout` has passed; returns how long it
/// took, or `None` on a miss. `f` is called at least once, and once more at the limit.
pub fn until(timeout: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(poll);
    }
}

/// True if a TCP connect to `addr` succeeds now (in the calling thread's network namespace).
pub fn tcp_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Waits (polling every 50 ms, at most `timeout`) until something accepts TCP connections at
/// `addr`; false on a miss.
pub fn tcp(addr: SocketAddr, timeout: Duration) -> bool {
    until(timeout, Duration::from_millis(50), || tcp_accepts(addr)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn until_reports_when_the_condition_came_true() {
        let mut calls = 0;
        let took = until(Duration::from_secs(10), Duration::from_millis(1), || {
            calls += 1;
            calls == 3
        });
        assert!(took.is_some());
        assert_eq!(calls, 3);
    }

    #[test]
    fn until_gives_up_at_the_limit_after_a_last_try() {
        let mut calls = 0;
        let took = until(Duration::from_millis(30), Duration::from_millis(10), || {
            calls += 1;
            false
        });
        assert_eq!(took, None);
        assert!(calls >= 2, "called {calls} times");
    }

    #[test]
    fn tcp_tells_a_listener_from_a_closed_port() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(tcp(addr, Duration::from_secs(10)));
        drop(listener);
        assert!(!tcp(addr, Duration::from_millis(100)));
    }
}
