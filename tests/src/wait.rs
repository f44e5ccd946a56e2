//! Bounded waiting: until a condition holds, until a poll yields a value, until a file says
//! something, until something accepts TCP connections, or (feature `tokio`) until a `watch`
//! channel carries a value that passes.
//!
//! Every wait has a limit. The plain forms report whether the condition came true and the
//! caller decides what a miss means; the `expect*` forms are for tests where a miss is the
//! failure: they panic naming what was awaited and the limit.
//!
//! | poll a closure | returns on a miss | panics on a miss |
//! | --- | --- | --- |
//! | `FnMut() -> bool` | [`until`] (in async code: [`until_async`]) | [`expect`] |
//! | `FnMut() -> Option<T>` | [`until_some`] | [`expect_some`] |
//! | `AsyncFnMut() -> bool` (a probe that awaits: a connect, a request) | [`until_probe`] | |
//! | a `watch::Receiver` (woken by each change, no polling) | [`watch_until`] | [`expect_watch`] |

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Calls `f` every `poll` until it returns `Some`, or `timeout` has passed; returns the value,
/// or `None` on a miss. `f` is called at least once, and once more at the limit.
pub fn until_some<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(poll);
    }
}

/// Calls `f` every `poll` until it returns true or `timeout` has passed; returns how long it
/// took, or `None` on a miss. `f` is called at least once, and once more at the limit.
pub fn until(timeout: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    until_some(timeout, poll, || f().then(|| start.elapsed()))
}

/// [`until`], for a test that fails without the condition: how long it took, or a panic
/// saying `what` was not reached within `timeout`.
#[track_caller]
pub fn expect(what: &str, timeout: Duration, poll: Duration, f: impl FnMut() -> bool) -> Duration {
    match until(timeout, poll, f) {
        Some(took) => took,
        None => panic!("{what}: not within {timeout:?}"),
    }
}

/// [`until_some`], for a test that fails without the value: the value, or a panic saying
/// `what` was not reached within `timeout`.
#[track_caller]
pub fn expect_some<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    f: impl FnMut() -> Option<T>,
) -> T {
    match until_some(timeout, poll, f) {
        Some(v) => v,
        None => panic!("{what}: not within {timeout:?}"),
    }
}

/// Waits (re-reading every 50 ms, at most `timeout`) until the file at `path` contains
/// `needle`; false on a miss. A file that does not exist yet reads as empty.
pub fn file_contains(path: &Path, needle: &str, timeout: Duration) -> bool {
    until(timeout, Duration::from_millis(50), || {
        std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle))
    })
    .is_some()
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

/// [`until`] inside async code: the same tries of `f`, but the pauses between them are
/// `tokio::time::sleep`, so the runtime's other tasks (servers the condition watches) go on
/// running, also on a single-threaded runtime.
#[cfg(feature = "tokio")]
pub async fn until_async(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> bool,
) -> Option<Duration> {
    until_probe(timeout, poll, async || f()).await
}

/// [`until_async`] for a condition that must itself be awaited (an async connect, a request, a
/// health check): awaits `f` every `poll` until it yields true or `timeout` has passed; returns
/// how long it took, or `None` on a miss. `f` is awaited at least once, and once more at the
/// limit; the time `f` itself takes counts against `timeout`, so bound it inside `f`.
#[cfg(feature = "tokio")]
pub async fn until_probe(
    timeout: Duration,
    poll: Duration,
    mut f: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits (at most `timeout`) until the value in `rx` passes `pred`, checking the current value
/// first and then each new one as it is sent (marking them seen). `Ok` with the value that
/// passed; on a miss `Err` with the last value seen — also at once when the sender is gone,
/// since nothing can change any more.
#[cfg(feature = "tokio")]
pub async fn watch_until<T: Clone>(
    rx: &mut tokio::sync::watch::Receiver<T>,
    timeout: Duration,
    mut pred: impl FnMut(&T) -> bool,
) -> Result<T, T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = rx.borrow_and_update().clone();
        if pred(&value) {
            return Ok(value);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            // The sender is gone (nothing can change any more), or the limit passed.
            Ok(Err(_)) | Err(_) => return Err(value),
        }
    }
}

/// [`watch_until`], for a test that fails without the value: the value that passed, or a
/// panic saying `what` was not reached within `timeout`, with the last value seen.
#[cfg(feature = "tokio")]
pub async fn expect_watch<T: Clone + std::fmt::Debug>(
    what: &str,
    rx: &mut tokio::sync::watch::Receiver<T>,
    timeout: Duration,
    pred: impl FnMut(&T) -> bool,
) -> T {
    match watch_until(rx, timeout, pred).await {
        Ok(v) => v,
        Err(last) => panic!("{what}: not reached within {timeout:?}; last value: {last:#?}"),
    }
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
    fn until_some_returns_the_first_value() {
        let mut calls = 0;
        let got = until_some(Duration::from_secs(10), Duration::from_millis(1), || {
            calls += 1;
            (calls >= 3).then_some(calls * 10)
        });
        assert_eq!(got, Some(30));
        assert_eq!(calls, 3);
    }

    #[test]
    fn until_some_gives_up_at_the_limit_after_a_last_try() {
        let mut calls = 0;
        let got: Option<()> =
            until_some(Duration::from_millis(30), Duration::from_millis(10), || {
                calls += 1;
                None
            });
        assert_eq!(got, None);
        assert!(calls >= 2, "called {calls} times");
    }

    #[test]
    fn expect_and_expect_some_pass_through_a_hit() {
        let mut calls = 0;
        expect(
            "third call",
            Duration::from_secs(10),
            Duration::from_millis(1),
            || {
                calls += 1;
                calls == 3
            },
        );
        assert_eq!(calls, 3);
        let v = expect_some("a value", Duration::from_secs(10), Duration::ZERO, || {
            Some(7)
        });
        assert_eq!(v, 7);
    }

    #[test]
    fn expect_some_names_what_was_awaited_on_a_miss() {
        let miss = std::panic::catch_unwind(|| {
            expect_some::<()>(
                "the answer",
                Duration::from_millis(20),
                Duration::from_millis(5),
                || None,
            )
        })
        .unwrap_err();
        let text = miss.downcast_ref::<String>().unwrap();
        assert_eq!(text, "the answer: not within 20ms");
        let miss =
            std::panic::catch_unwind(|| expect("never", Duration::ZERO, Duration::ZERO, || false))
                .unwrap_err();
        assert_eq!(
            miss.downcast_ref::<String>().unwrap(),
            "never: not within 0ns"
        );
    }

    #[test]
    fn file_contains_waits_for_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        assert!(!file_contains(&path, "ready", Duration::from_millis(60)));
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::fs::write(&path, "starting\n").unwrap();
                std::thread::sleep(Duration::from_millis(100));
                std::fs::write(&path, "starting\nready\n").unwrap();
            })
        };
        assert!(file_contains(&path, "ready", Duration::from_secs(10)));
        writer.join().unwrap();
        assert!(!file_contains(&path, "gone", Duration::ZERO));
    }

    #[test]
    fn tcp_tells_a_listener_from_a_closed_port() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(tcp(addr, Duration::from_secs(10)));
        drop(listener);
        assert!(!tcp(addr, Duration::from_millis(100)));
    }

    #[cfg(feature = "tokio")]
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn until_async_lets_other_tasks_run_between_tries() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        block_on(async {
            let count = Arc::new(AtomicU32::new(0));
            let counter = Arc::clone(&count);
            // Same thread as the wait: it only runs while the wait sleeps.
            tokio::spawn(async move {
                loop {
                    counter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let took = until_async(Duration::from_secs(10), Duration::from_millis(1), || {
                count.load(Ordering::Relaxed) >= 5
            })
            .await;
            assert!(took.is_some());
            let miss = until_async(Duration::from_millis(20), Duration::from_millis(5), || {
                false
            });
            assert_eq!(miss.await, None);
        });
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn until_probe_awaits_each_try_and_keeps_its_state() {
        block_on(async {
            // A probe that awaits (a TCP connect) and keeps state between tries.
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut tries = 0;
            let took = until_probe(
                Duration::from_secs(10),
                Duration::from_millis(1),
                async || {
                    tries += 1;
                    tokio::net::TcpStream::connect(addr).await.is_ok() && tries == 3
                },
            )
            .await;
            assert!(took.is_some());
            assert_eq!(tries, 3);
            // Nothing listens any more: a miss at the limit, the last failure kept.
            drop(listener);
            let mut last = None;
            let started = Instant::now();
            let miss = until_probe(
                Duration::from_millis(30),
                Duration::from_millis(5),
                async || match tokio::net::TcpStream::connect(addr).await {
                    Ok(_) => true,
                    Err(e) => {
                        last = Some(e.kind());
                        false
                    }
                },
            );
            assert_eq!(miss.await, None);
            assert!(started.elapsed() >= Duration::from_millis(30));
            assert_eq!(last, Some(std::io::ErrorKind::ConnectionRefused));
        });
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn watch_until_sees_each_new_value() {
        block_on(async {
            let (tx, mut rx) = tokio::sync::watch::channel(0u32);
            let sender = tokio::spawn(async move {
                for i in 1..=5 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    tx.send(i).unwrap();
                }
                tx
            });
            let got = watch_until(&mut rx, Duration::from_secs(10), |v| *v >= 3).await;
            assert!(matches!(got, Ok(3..=5)), "{got:?}");
            let tx = sender.await.unwrap();
            // The current value counts without a new send.
            assert_eq!(
                watch_until(&mut rx, Duration::ZERO, |v| *v == 5).await,
                Ok(5)
            );
            drop(tx);
        });
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn watch_until_returns_the_last_value_on_a_miss_or_a_closed_channel() {
        block_on(async {
            let (tx, mut rx) = tokio::sync::watch::channel(1u32);
            let started = Instant::now();
            let got = watch_until(&mut rx, Duration::from_millis(30), |v| *v == 2).await;
            assert_eq!(got, Err(1));
            assert!(started.elapsed() >= Duration::from_millis(30));
            tx.send(4).unwrap();
            drop(tx);
            let started = Instant::now();
            let got = watch_until(&mut rx, Duration::from_secs(30), |v| *v == 2).await;
            assert_eq!(got, Err(4));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "waited for a closed channel"
            );
            assert_eq!(
                expect_watch("four", &mut rx, Duration::ZERO, |v| *v == 4).await,
                4
            );
        });
    }
}
