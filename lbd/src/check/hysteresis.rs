//! Per-real check timing and rise/fall hysteresis, as a pure state machine: it takes the time
//! and each check's outcome and returns the state change (if any) and when to run next. No
//! clock, sockets or tokio inside, so tests drive it to the microsecond with a fake clock.
//!
//! Rules:
//! - A real starts [`CheckState::Unknown`], which the reconciler treats as up (a restart or
//!   reload must not empty a service before its first checks ran). The first result decides:
//!   one success makes it `Up`, one failure `Down`.
//! - `Up` → `Down` after exactly `fall` consecutive failures; `Down` → `Up` after exactly
//!   `rise` consecutive successes. A result of the other kind resets the count.
//! - The first run is `warmup` plus a random phase within one interval after the check starts,
//!   so thousands of checks configured at once spread over the interval instead of firing
//!   together. Each later run is `interval` after the previous one *started* (the engine
//!   passes the time it was due, so batching starts does not stretch it), moved by a
//!   random amount within ±`jitter`/2 (so a real is still checked once per interval on
//!   average); after a failure that has not yet brought an up real down, the retry comes
//!   `retry_delay` (± `jitter`/2) after that check *ended*. A check never starts before the
//!   previous one ended.
//! - The random inputs are fractions in [0, 1) passed by the caller.

use super::failure::{Failure, Outcome};
use crate::config::Check;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

/// Health of a real as its checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// Not checked yet (treated as up).
    #[default]
    Unknown,
    Up,
    Down,
}

impl CheckState {
    /// Whether traffic should go to the real: up or not yet known.
    pub fn serves(self) -> bool {
        self != CheckState::Down
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            CheckState::Unknown => "unknown",
            CheckState::Up => "up",
            CheckState::Down => "down",
        })
    }
}

/// The timing settings of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub retry_delay: Duration,
    pub warmup: Duration,
    pub jitter: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl From<&Check> for Timing {
    fn from(c: &Check) -> Timing {
        Timing {
            interval: c.interval,
            timeout: c.timeout,
            retry_delay: c.retry_delay,
            warmup: c.warmup,
            jitter: c.jitter,
            rise: c.rise.max(1),
            fall: c.fall.max(1),
        }
    }
}

/// A change of state, with what caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: CheckState,
    pub to: CheckState,
    /// The failure that brought the real down (`None` for a change to up).
    pub reason: Option<Failure>,
    /// Consecutive results of the new kind that made the change (`rise` or `fall`, or 1 for
    /// the first check).
    pub after: u32,
}

/// What a recorded result leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub transition: Option<Transition>,
    /// Set when the check reported a new weight: (previous, new); `None` is the config's.
    pub weight_change: Option<(Option<u32>, Option<u32>)>,
    /// When the next check starts.
    pub next_run: Instant,
}

/// The hysteresis state of one check.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    timing: Timing,
    state: CheckState,
    successes: u32,
    failures: u32,
    weight: Option<u32>,
    last_failure: Option<Failure>,
}

impl Hysteresis {
    /// A check that has not run yet.
    pub fn new(timing: Timing) -> Hysteresis {
        Hysteresis::resume(timing, CheckState::Unknown, None)
    }

    /// A check whose real already has a state (its check was edited on reload): the state and
    /// weight carry over, the counts start again.
    pub fn resume(timing: Timing, state: CheckState, weight: Option<u32>) -> Hysteresis {
        Hysteresis {
            timing,
            state,
            successes: 0,
            failures: 0,
            weight,
            last_failure: None,
        }
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn state(&self) -> CheckState {
        self.state
    }

    /// The weight the check reported last (`None`: the config's).
    pub fn weight(&self) -> Option<u32> {
        self.weight
    }

    /// Consecutive successes and failures so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.successes, self.failures)
    }

    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// When the first check runs, for a check set up at `now`; `phase` in [0, 1).
    pub fn first_run(&self, now: Instant, phase: f64) -> Instant {
        now + self.timing.warmup + self.timing.interval.mul_f64(clamp_fraction(phase))
    }

    /// Records the result of a check that ran from `started` to `finished`; `jitter` in [0, 1)
    /// picks the random part of the next delay (0.5: none).
    pub fn record(
        &mut self,
        started: Instant,
        finished: Instant,
        outcome: Outcome,
        jitter: f64,
    ) -> Step {
        let mut transition = None;
        let mut weight_change = None;
        let failed = match outcome {
            Outcome::Up { weight } => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                if weight.is_some() && weight != self.weight {
                    weight_change = Some((self.weight, weight));
                    self.weight = weight;
                }
                let needed = match self.state {
                    CheckState::Unknown => 1,
                    CheckState::Down => self.timing.rise,
                    CheckState::Up => u32::MAX,
                };
                if self.successes >= needed {
                    transition = Some(Transition {
                        from: self.state,
                        to: CheckState::Up,
                        reason: None,
                        after: self.successes,
                    });
                    self.state = CheckState::Up;
                }
                false
            }
            Outcome::Down(failure) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                let needed = match self.state {
                    CheckState::Unknown => 1,
                    CheckState::Up => self.timing.fall,
                    CheckState::Down => u32::MAX,
                };
                if self.failures >= needed {
                    transition = Some(Transition {
                        from: self.state,
                        to: CheckState::Down,
                        reason: Some(failure.clone()),
                        after: self.failures,
                    });
                    self.state = CheckState::Down;
                }
                self.last_failure = Some(failure);
                true
            }
        };
        let spread = self.timing.jitter.mul_f64(clamp_fraction(jitter));
        let half = self.timing.jitter / 2;
        let next_run = if failed && self.state == CheckState::Up {
            // A retry on the way to `fall`.
            finished + (self.timing.retry_delay + spread).saturating_sub(half)
        } else {
            (started + (self.timing.interval + spread).saturating_sub(half)).max(finished)
        };
        Step {
            transition,
            weight_change,
            next_run,
        }
    }
}

fn clamp_fraction(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A small, fast random source for phases and jitter (SplitMix64). Not for secrets.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fraction in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing(rise: u32, fall: u32) -> Timing {
        Timing {
            interval: 1000 * MS,
            timeout: 300 * MS,
            retry_delay: 200 * MS,
            warmup: 500 * MS,
            jitter: 100 * MS,
            rise,
            fall,
        }
    }

    fn fail() -> Outcome {
        Outcome::Down(Failure::Refused)
    }

    /// A fake clock driving one check: each result takes `took`; the next starts at the time
    /// the machine asked for.
    struct Driver {
        h: Hysteresis,
        now: Instant,
        took: Duration,
    }

    impl Driver {
        fn new(t: Timing) -> Driver {
            Driver {
                h: Hysteresis::new(t),
                now: Instant::now(),
                took: 10 * MS,
            }
        }
        fn feed(&mut self, o: Outcome) -> Step {
            let started = self.now;
            let step = self.h.record(started, started + self.took, o, 0.5);
            self.now = step.next_run;
            step
        }
        /// Feeds `n` results and returns at which (1-based) one the state changed, if any.
        fn feed_n(&mut self, n: u32, o: Outcome) -> Vec<(u32, CheckState)> {
            (1..=n)
                .filter_map(|i| self.feed(o.clone()).transition.map(|t| (i, t.to)))
                .collect()
        }
    }

    #[test]
    fn first_result_decides_an_unknown_real() {
        let mut d = Driver::new(timing(3, 3));
        assert_eq!(d.h.state(), CheckState::Unknown);
        assert!(d.h.state().serves());
        let t = d.feed(Outcome::UP).transition.unwrap();
        assert_eq!(
            (t.from, t.to, t.after),
            (CheckState::Unknown, CheckState::Up, 1)
        );

        let mut d = Driver::new(timing(3, 3));
        let t = d.feed(fail()).transition.unwrap();
        assert_eq!((t.from, t.to), (CheckState::Unknown, CheckState::Down));
        assert_eq!(t.reason, Some(Failure::Refused));
        assert!(!d.h.state().serves());
    }

    #[test]
    fn fall_and_rise_are_counted_exactly() {
        for (rise, fall) in [(1, 1), (2, 3), (5, 2), (10, 10)] {
            let mut d = Driver::new(timing(rise, fall));
            d.feed(Outcome::UP);
            // fall - 1 failures: still up; the fall-th brings it down, exactly once.
            assert_eq!(d.feed_n(fall + 4, fail()), vec![(fall, CheckState::Down)]);
            assert_eq!(d.h.counts(), (0, fall + 4));
            // rise - 1 successes: still down; the rise-th brings it up.
            assert_eq!(
                d.feed_n(rise + 4, Outcome::UP),
                vec![(rise, CheckState::Up)]
            );
        }
    }

    #[test]
    fn an_interrupting_result_restarts_the_count() {
        let mut d = Driver::new(timing(3, 3));
        d.feed(Outcome::UP);
        // fail, fail, ok, fail, fail: never three in a row.
        for o in [fail(), fail(), Outcome::UP, fail(), fail()] {
            assert_eq!(d.feed(o).transition, None);
        }
        assert_eq!(d.h.state(), CheckState::Up);
        let t = d.feed(fail()).transition.unwrap();
        assert_eq!((t.to, t.after), (CheckState::Down, 3));
        // Flapping while down does not bring it back either.
        for o in [Outcome::UP, Outcome::UP, fail(), Outcome::UP, Outcome::UP] {
            assert_eq!(d.feed(o).transition, None);
        }
        assert_eq!(d.feed(Outcome::UP).transition.unwrap().to, CheckState::Up);
    }

    #[test]
    fn the_reason_is_the_failure_that_made_the_change() {
        let mut d = Driver::new(timing(1, 2));
        d.feed(Outcome::UP);
        d.feed(Outcome::Down(Failure::Refused));
        let t = d
            .feed(Outcome::Down(Failure::BadStatus(503)))
            .transition
            .unwrap();
        assert_eq!(t.reason, Some(Failure::BadStatus(503)));
        assert_eq!(d.h.last_failure(), Some(&Failure::BadStatus(503)));
    }

    #[test]
    fn schedule_first_run_interval_retry_and_overrun() {
        let t = timing(2, 3);
        let h = Hysteresis::new(t);
        let t0 = Instant::now();
        // Warm-up plus a phase within one interval.
        assert_eq!(h.first_run(t0, 0.0), t0 + 500 * MS);
        assert_eq!(h.first_run(t0, 0.25), t0 + 750 * MS);
        assert_eq!(h.first_run(t0, 7.0), t0 + 1500 * MS, "phase is clamped");

        let mut h = Hysteresis::new(t);
        // Success: next start is one interval after this start, within ±jitter/2 (100ms).
        let s = h.record(t0, t0 + 20 * MS, Outcome::UP, 0.5);
        assert_eq!(s.next_run, t0 + 1000 * MS);
        let s = h.record(t0, t0 + 20 * MS, Outcome::UP, 0.0);
        assert_eq!(s.next_run, t0 + 950 * MS);
        let s = h.record(t0, t0 + 20 * MS, Outcome::UP, 0.75);
        assert_eq!(s.next_run, t0 + 1025 * MS);
        // A failure of an up real is retried retry_delay after it ended.
        let s = h.record(t0, t0 + 300 * MS, fail(), 0.5);
        assert_eq!(s.next_run, t0 + 500 * MS);
        // Once down, back to the interval.
        h.record(t0, t0 + 300 * MS, fail(), 0.5);
        let s = h.record(t0, t0 + 300 * MS, fail(), 0.5);
        assert_eq!(h.state(), CheckState::Down);
        assert_eq!(s.next_run, t0 + 1000 * MS);
        // A check that took longer than the interval: the next starts when it ended.
        let s = h.record(t0, t0 + 1700 * MS, fail(), 0.5);
        assert_eq!(s.next_run, t0 + 1700 * MS);
        // Jitter larger than the delay never schedules into the past.
        let mut h = Hysteresis::new(Timing {
            jitter: 3000 * MS,
            ..t
        });
        let s = h.record(t0, t0 + 20 * MS, Outcome::UP, 0.0);
        assert_eq!(s.next_run, t0 + 20 * MS);
    }

    #[test]
    fn detection_takes_fall_runs_at_the_retry_delay() {
        // interval 1s, retry 200ms, fall 3, checks take 10ms: the real dies just after a
        // successful check; the first failure comes one interval later, then two retries.
        let mut d = Driver::new(timing(2, 3));
        let start = d.now;
        d.feed(Outcome::UP);
        let died = d.now - 990 * MS;
        let mut down_at = None;
        for _ in 0..5 {
            let before = d.now;
            if d.feed(fail()).transition.is_some() {
                down_at = Some(before + d.took);
                break;
            }
        }
        let down_at = down_at.unwrap();
        assert_eq!(
            down_at - start,
            1000 * MS + 2 * (10 * MS + 200 * MS) + 10 * MS
        );
        assert!(down_at - died <= 3 * 1000 * MS);
    }

    #[test]
    fn weights_reported_by_the_check_are_kept_and_changes_flagged() {
        let mut d = Driver::new(timing(1, 1));
        let s = d.feed(Outcome::Up { weight: Some(10) });
        assert_eq!(s.weight_change, Some((None, Some(10))));
        // exit 0: weight unchanged.
        assert_eq!(d.feed(Outcome::UP).weight_change, None);
        assert_eq!(d.h.weight(), Some(10));
        assert_eq!(d.feed(Outcome::Up { weight: Some(10) }).weight_change, None);
        assert_eq!(
            d.feed(Outcome::Up { weight: Some(0) }).weight_change,
            Some((Some(10), Some(0)))
        );
    }

    #[test]
    fn resume_keeps_state_and_weight_but_counts_again() {
        let mut h = Hysteresis::resume(timing(2, 2), CheckState::Down, Some(4));
        let t0 = Instant::now();
        assert_eq!(h.record(t0, t0, Outcome::UP, 0.5).transition, None);
        assert!(h.record(t0, t0, Outcome::UP, 0.5).transition.is_some());
        assert_eq!(h.weight(), Some(4));
    }

    #[test]
    fn jitter_fractions_are_in_range_and_spread() {
        let mut j = Jitter::new(42);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let f = j.fraction();
            assert!((0.0..1.0).contains(&f));
            buckets[(f * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (800..1200).contains(&b)),
            "{buckets:?}"
        );
    }
}
