//! The speaker's watchdog: a thread of its own that kills BIRD when lbd's daemon loop has not
//! turned for `[bgp] watchdog`.
//!
//! BIRD dies with a dead lbd (parent-death signal), but a hung lbd — its runtime blocked, or
//! its loop waiting on something that never ends — would leave BIRD announcing VIPs whose
//! health nobody looks at any more. Killing BIRD closes its sessions, so the routers drop this
//! node's routes at once and the other balancers take its flows (the same real for each flow:
//! nothing breaks). The kernel keeps forwarding meanwhile; only the announcements go. While the
//! loop stays silent the subsystem does not start BIRD again; once it turns, BIRD is started as
//! after any death.
//!
//! The thread only reads atomics and sends a signal: it never waits for the loop it watches.

use crate::liveness::{Liveness, Loop};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info};

/// How often the thread looks.
const LOOK_INTERVAL: Duration = Duration::from_millis(100);

/// What the watchdog and the subsystem share.
#[derive(Debug)]
pub struct Shared {
    liveness: Arc<Liveness>,
    /// BIRD's pid while it runs, else 0.
    bird: AtomicU32,
    /// `[bgp] watchdog`, in milliseconds.
    limit_ms: AtomicU64,
}

impl Shared {
    pub fn new(liveness: Arc<Liveness>) -> Shared {
        Shared {
            liveness,
            bird: AtomicU32::new(0),
            limit_ms: AtomicU64::new(crate::config::Bgp::DEFAULT_WATCHDOG.as_millis() as u64),
        }
    }

    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    pub fn set_limit(&self, limit: Duration) {
        self.limit_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn limit(&self) -> Duration {
        Duration::from_millis(self.limit_ms.load(Ordering::Relaxed))
    }

    /// BIRD runs as `pid` (or no longer runs: `None`).
    pub fn set_bird(&self, pid: Option<u32>) {
        self.bird.store(pid.unwrap_or(0), Ordering::Relaxed);
    }

    /// How long the daemon's loop has been silent, when that is longer than the limit.
    pub fn daemon_stalled(&self) -> Option<Duration> {
        self.liveness.stalled(Loop::Daemon, self.limit())
    }
}

/// What the watchdog does at one look.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: the loop turns, or it is still silent and BIRD was dealt with.
    Nothing,
    /// The loop has just gone silent for longer than the limit: kill BIRD, say so.
    Trip { silent: Duration },
    /// The loop turns again after a stall.
    Recovered,
}

/// One look: `silent` is how long the loop has been quiet (`None` before its first beat),
/// `tripped` whether this stall was already reported.
pub fn judge(silent: Option<Duration>, limit: Duration, tripped: bool) -> Verdict {
    let stalled = silent.is_some_and(|s| s > limit);
    match (stalled, tripped) {
        (true, false) => Verdict::Trip {
            silent: silent.unwrap_or_default(),
        },
        (false, true) => Verdict::Recovered,
        _ => Verdict::Nothing,
    }
}

/// The watchdog thread; stopped and joined on drop.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Watchdog> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lbd-bgp-watchdog".into())
            .spawn(move || watch(&shared, &stopped))?;
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(shared: &Shared, stop: &AtomicBool) {
    let mut tripped = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(LOOK_INTERVAL);
        let silent = shared.liveness.silent_for(Loop::Daemon);
        match judge(silent, shared.limit(), tripped) {
            Verdict::Trip { silent } => {
                tripped = true;
                error!(
                    "bgp: lbd's daemon loop has not turned for {:.1} s (watchdog {:?}): BIRD is killed so that the routers stop sending here",
                    silent.as_secs_f64(),
                    shared.limit()
                );
            }
            Verdict::Recovered => {
                tripped = false;
                info!("bgp: lbd's daemon loop turns again: BIRD may start again");
            }
            Verdict::Nothing => {}
        }
        if tripped {
            // Every BIRD seen while the stall lasts (one started just before it, too). The
            // subsystem reaps a killed BIRD only when its loop runs, so the pid is not reused
            // while it is still stored here.
            let pid = shared.bird.load(Ordering::Relaxed);
            if pid != 0 {
                // SAFETY: kill(2) with a pid of our own child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn trips_once_per_stall_and_recovers_when_the_loop_turns() {
        let s = |secs| Some(Duration::from_secs(secs));
        // Never beat yet: lbd is still starting, nothing to judge.
        assert_eq!(judge(None, LIMIT, false), Verdict::Nothing);
        assert_eq!(judge(s(3), LIMIT, false), Verdict::Nothing);
        assert_eq!(judge(s(10), LIMIT, false), Verdict::Nothing, "at the limit");
        assert_eq!(
            judge(s(11), LIMIT, false),
            Verdict::Trip {
                silent: Duration::from_secs(11)
            }
        );
        assert_eq!(judge(s(30), LIMIT, true), Verdict::Nothing, "reported once");
        assert_eq!(judge(s(0), LIMIT, true), Verdict::Recovered);
    }

    #[test]
    fn the_thread_kills_bird_only_after_the_loop_went_silent() {
        let liveness = Arc::new(Liveness::default());
        let shared = Arc::new(Shared::new(liveness.clone()));
        shared.set_limit(Duration::from_millis(300));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        shared.set_bird(Some(child.id()));
        let _dog = Watchdog::start(shared.clone()).unwrap();
        // The loop turns: the child lives.
        for _ in 0..8 {
            liveness.beat(Loop::Daemon);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(child.try_wait().unwrap().is_none(), "killed while beating");
        // The loop goes silent: killed within the limit and a look or two.
        let t = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "never killed");
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(shared.daemon_stalled().is_some());
    }
}
