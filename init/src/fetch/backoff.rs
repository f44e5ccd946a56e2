//! Retry delays: exponential backoff with jitter, between a floor and a cap.
//!
//! Pure: the random source is injected ([`JitterSource`]), so a test can seed it or pin it.
//! Jitter keeps a fleet of balancers that lost their config server at the same moment from
//! hammering it in lock-step when it comes back.

use std::time::Duration;

/// How randomness is applied to the exponential ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// No randomness: `min·2ⁿ`, capped at `max`. For tests and single nodes.
    None,
    /// "Full jitter": uniform in `[min, min(max, min·2ⁿ⁺¹)]`.
    Full,
    /// "Decorrelated jitter": uniform in `[min, 3·previous]`, capped at `max`; spreads retries
    /// well while growing about as fast as the exponential.
    Decorrelated,
    /// "Equal jitter": uniform in the upper half of the exponential ceiling, `[c/2, c]` with
    /// `c = min(max, min·2ⁿ)` (and never below `min`). Until the cap, a delay is never shorter
    /// than the one before (each half starts where the previous ceiling ended); at the cap the
    /// delays stay spread over `[max/2, max]`.
    Equal,
}

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The shortest delay, and the base of the exponential.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How randomness is applied.
    pub jitter: Jitter,
}

impl Default for BackoffPolicy {
    /// 500 ms to 30 s, decorrelated jitter.
    fn default() -> Self {
        BackoffPolicy {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: Jitter::Decorrelated,
        }
    }
}

/// A source of uniform random durations.
pub trait JitterSource {
    /// A duration uniformly distributed in `[lo, hi]` (`lo <= hi`).
    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration;
}

impl JitterSource for fastrand::Rng {
    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        let lo_ns = lo.as_nanos().min(u64::MAX as u128) as u64;
        let hi_ns = hi.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(self.u64(lo_ns..=hi_ns.max(lo_ns)))
    }
}

/// The delay sequence of one retry loop. [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff<J = fastrand::Rng> {
    policy: BackoffPolicy,
    rng: J,
    attempt: u32,
    previous: Duration,
}

impl Backoff<fastrand::Rng> {
    /// Backoff with a random source seeded from the OS (jitter differs between nodes).
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff::with_source(policy, fastrand::Rng::new())
    }

    /// Backoff with a fixed seed: the same seed gives the same delays.
    pub fn seeded(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff::with_source(policy, fastrand::Rng::with_seed(seed))
    }
}

impl<J: JitterSource> Backoff<J> {
    /// Backoff drawing its randomness from `rng`.
    pub fn with_source(policy: BackoffPolicy, rng: J) -> Self {
        let max = policy.max.max(policy.min);
        Backoff {
            policy: BackoffPolicy { max, ..policy },
            rng,
            attempt: 0,
            previous: policy.min,
        }
    }

    /// The parameters in use (`max` raised to `min` if it was lower).
    pub fn policy(&self) -> BackoffPolicy {
        self.policy
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over at the shortest delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.previous = self.policy.min;
    }

    /// The delay before the next retry; always within `[min, max]`.
    pub fn next_delay(&mut self) -> Duration {
        let BackoffPolicy { min, max, jitter } = self.policy;
        let delay = match jitter {
            Jitter::None => exp_ceiling(min, max, self.attempt),
            Jitter::Full => {
                let hi = exp_ceiling(min, max, self.attempt.saturating_add(1));
                self.rng.uniform(min, hi)
            }
            Jitter::Decorrelated => {
                let hi = self.previous.saturating_mul(3).min(max).max(min);
                self.rng.uniform(min, hi)
            }
            Jitter::Equal => {
                let hi = exp_ceiling(min, max, self.attempt);
                self.rng.uniform((hi / 2).max(min), hi)
            }
        };
        let delay = delay.clamp(min, max);
        self.previous = delay;
        self.attempt = self.attempt.saturating_add(1);
        delay
    }
}

/// `min·2ⁿ`, capped at `max`, without overflow.
fn exp_ceiling(min: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    min.checked_mul(factor).unwrap_or(max).min(max)
}

/// Jitter sources pinned to one end of the range, for tests of what draws from it.
#[cfg(test)]
pub(crate) mod fixed {
    use super::JitterSource;
    use std::time::Duration;

    /// Always the upper bound: the longest waits.
    pub struct Top;
    impl JitterSource for Top {
        fn uniform(&mut self, _lo: Duration, hi: Duration) -> Duration {
            hi
        }
    }
    /// Always the lower bound: the shortest waits.
    pub struct Bottom;
    impl JitterSource for Bottom {
        fn uniform(&mut self, lo: Duration, _hi: Duration) -> Duration {
            lo
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    use super::fixed::{Bottom, Top};

    fn policy(jitter: Jitter) -> BackoffPolicy {
        BackoffPolicy {
            min: 100 * MS,
            max: 1000 * MS,
            jitter,
        }
    }

    fn take<J: JitterSource>(b: &mut Backoff<J>, n: usize) -> Vec<u64> {
        (0..n).map(|_| b.next_delay().as_millis() as u64).collect()
    }

    #[test]
    fn no_jitter_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::with_source(policy(Jitter::None), Bottom);
        assert_eq!(take(&mut b, 6), [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(take(&mut b, 2), [100, 200]);
    }

    #[test]
    fn full_jitter_bounds() {
        let mut b = Backoff::with_source(policy(Jitter::Full), Top);
        assert_eq!(take(&mut b, 5), [200, 400, 800, 1000, 1000]);
        let mut b = Backoff::with_source(policy(Jitter::Full), Bottom);
        assert_eq!(take(&mut b, 3), [100, 100, 100]);
    }

    #[test]
    fn decorrelated_jitter_bounds() {
        let mut b = Backoff::with_source(policy(Jitter::Decorrelated), Top);
        assert_eq!(take(&mut b, 4), [300, 900, 1000, 1000]);
        b.reset();
        assert_eq!(take(&mut b, 1), [300]);
    }

    #[test]
    fn equal_jitter_keeps_to_the_upper_half_of_the_ceiling() {
        let mut b = Backoff::with_source(policy(Jitter::Equal), Top);
        assert_eq!(take(&mut b, 6), [100, 200, 400, 800, 1000, 1000]);
        let mut b = Backoff::with_source(policy(Jitter::Equal), Bottom);
        assert_eq!(take(&mut b, 6), [100, 100, 200, 400, 500, 500]);
        // Whatever the draws, no delay is shorter than the one before until the cap (the
        // ceilings 100, 200, 400, 800), and they stay in the cap's upper half after it.
        for seed in 0..100 {
            let delays = take(&mut Backoff::seeded(policy(Jitter::Equal), seed), 20);
            assert!(delays[..4].windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
            assert!(
                delays[4..].iter().all(|d| (500..=1000).contains(d)),
                "{delays:?}"
            );
        }
    }

    #[test]
    fn seeded_is_deterministic_and_in_range() {
        for jitter in [Jitter::Full, Jitter::Decorrelated, Jitter::Equal] {
            let a = take(&mut Backoff::seeded(policy(jitter), 7), 50);
            let b = take(&mut Backoff::seeded(policy(jitter), 7), 50);
            let c = take(&mut Backoff::seeded(policy(jitter), 8), 50);
            assert_eq!(a, b);
            assert_ne!(a, c, "different seeds should give different delays");
            assert!(a.iter().all(|d| (100..=1000).contains(d)), "{a:?}");
            // Randomness actually spreads the values.
            let distinct: std::collections::BTreeSet<_> = a.iter().collect();
            assert!(distinct.len() > 10, "{a:?}");
        }
    }

    #[test]
    fn extreme_parameters_do_not_overflow() {
        let p = BackoffPolicy {
            min: Duration::from_secs(u64::MAX / 2),
            max: Duration::from_secs(u64::MAX),
            jitter: Jitter::None,
        };
        let mut b = Backoff::with_source(p, Bottom);
        for _ in 0..100 {
            assert!(b.next_delay() >= p.min);
        }
        // max below min is raised to min.
        let p = BackoffPolicy {
            min: 50 * MS,
            max: 10 * MS,
            jitter: Jitter::Decorrelated,
        };
        let mut b = Backoff::seeded(p, 1);
        assert_eq!(take(&mut b, 3), [50, 50, 50]);
    }
}
