//! Proof that lbd's loops still turn: each loop stamps its heartbeat, and whoever must not act
//! for a hung lbd (the BGP watchdog) reads how old the stamps are.
//!
//! A hung lbd is worse than a dead one for an N-way balancer: a dead lbd takes BIRD with it
//! (parent-death signal) and the routers drop its routes, but a hung one keeps BIRD announcing
//! while the health it announces for is no longer looked at. The stamps are atomics: the
//! watchdog is a thread of its own and must never wait for the loops it watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often each loop stamps its heartbeat.
pub const BEAT_INTERVAL: Duration = Duration::from_millis(500);

/// The loops that beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// The daemon's loop: reloads, health and VRRP changes into IPVS and the BGP decision.
    Daemon,
    /// The check engine's thread.
    Checks,
}

/// The loops' last heartbeats.
#[derive(Debug)]
pub struct Liveness {
    epoch: Instant,
    /// Milliseconds since `epoch` plus one; 0 until the first beat (not watched before it).
    daemon: AtomicU64,
    checks: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            epoch: Instant::now(),
            daemon: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }
}

impl Liveness {
    fn stamp(&self, l: Loop) -> &AtomicU64 {
        match l {
            Loop::Daemon => &self.daemon,
            Loop::Checks => &self.checks,
        }
    }

    /// `l` is turning now.
    pub fn beat(&self, l: Loop) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.stamp(l).store(ms, Ordering::Relaxed);
    }

    /// How long since `l` last beat; `None` before its first beat.
    pub fn silent_for(&self, l: Loop) -> Option<Duration> {
        silent_for(self.stamp(l).load(Ordering::Relaxed), self.epoch.elapsed())
    }

    /// `l` has been silent for longer than `limit` (never before its first beat).
    pub fn stalled(&self, l: Loop, limit: Duration) -> Option<Duration> {
        self.silent_for(l).filter(|age| *age > limit)
    }
}

fn silent_for(stamp: u64, now: Duration) -> Option<Duration> {
    (stamp != 0).then(|| now.saturating_sub(Duration::from_millis(stamp - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_from_the_last_beat_and_not_before_the_first() {
        assert_eq!(silent_for(0, Duration::from_secs(100)), None);
        assert_eq!(
            silent_for(1_001, Duration::from_millis(4_000)),
            Some(Duration::from_millis(3_000))
        );
        // A stamp taken a hair after `now` was read is no age, not an underflow.
        assert_eq!(
            silent_for(5_001, Duration::from_millis(4_999)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_loop_is_stalled_only_after_it_beat_once_and_then_went_quiet() {
        let l = Liveness::default();
        assert_eq!(l.stalled(Loop::Daemon, Duration::ZERO), None);
        l.beat(Loop::Daemon);
        assert_eq!(l.stalled(Loop::Daemon, Duration::from_secs(60)), None);
        std::thread::sleep(Duration::from_millis(20));
        assert!(l.stalled(Loop::Daemon, Duration::from_millis(10)).is_some());
        assert_eq!(
            l.silent_for(Loop::Checks),
            None,
            "the loops are stamped apart"
        );
    }
}
