//! When init polls its config source next: every poll interval (`lb.poll`) while polls
//! succeed, and further apart after each failed one.
//!
//! A config server that is gone, never answers, sends a body cut short or a gigabyte, or keeps
//! serving a config init refuses does not get better for being asked every interval; and on a
//! small balancer every failing fetch (a connection held until the attempt timeout, a body
//! read up to the size limit, a parse) takes CPU from forwarding. So after consecutive failed
//! polls the wait doubles from the poll interval up to a cap, with "equal" jitter (uniform in
//! the upper half of each doubling, see [`Jitter::Equal`]) so that a fleet which lost its
//! server at the same moment does not come back to it in step. The first good poll (a new
//! config taken, or the running one still current) goes back to the poll interval. An explicit
//! refetch (a SIGHUP to init) does not wait for any of this: the I/O loop fetches at once.
//!
//! Pure: the loop reports each poll's outcome and sleeps what it is told; the random source
//! is injected, so tests pin it.

use std::time::Duration;

use crate::fetch::{Backoff, BackoffPolicy, Jitter, JitterSource};

/// The cap is at most this many poll intervals: three doublings, so failing polls cost an
/// eighth of what they did, and a server that comes back is seen at most one cap later.
pub const MAX_BACKOFF_FACTOR: u32 = 8;

/// ... and at most this long, so that with a long `lb.poll` a fixed server (or a fixed config)
/// is still picked up within minutes without anyone touching the balancers. Never below the
/// poll interval itself: failing never makes polls more frequent.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// How a poll went, as far as the schedule is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// A new config was taken, or the running one is still what the server has.
    Good,
    /// No answer, a broken one, or a config that was refused (and may be served again).
    Failed,
}

/// The waits between polls of one config source.
#[derive(Debug, Clone)]
pub struct PollSchedule<J = fastrand::Rng> {
    interval: Option<Duration>,
    backoff: Backoff<J>,
    failures: u32,
}

impl PollSchedule<fastrand::Rng> {
    /// Polls every `interval` (`None`: never, only on request), jitter seeded from the OS.
    pub fn new(interval: Option<Duration>) -> Self {
        PollSchedule::with_source(interval, fastrand::Rng::new())
    }
}

impl<J: JitterSource> PollSchedule<J> {
    /// [`PollSchedule::new`] drawing its jitter from `rng`.
    pub fn with_source(interval: Option<Duration>, rng: J) -> Self {
        let min = interval.unwrap_or(Duration::ZERO);
        let policy = BackoffPolicy {
            min,
            max: backoff_cap(min),
            jitter: Jitter::Equal,
        };
        PollSchedule {
            interval,
            backoff: Backoff::with_source(policy, rng),
            failures: 0,
        }
    }

    /// The longest wait after failures.
    pub fn cap(&self) -> Duration {
        self.backoff.policy().max
    }

    /// Failed polls since the last good one.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records how a poll went; how long to wait before the next one (`None`: only when asked
    /// to refetch, as `lb.poll=0` says).
    pub fn after(&mut self, polled: Polled) -> Option<Duration> {
        let interval = self.interval?;
        match polled {
            Polled::Good => {
                self.failures = 0;
                self.backoff.reset();
                Some(interval)
            }
            Polled::Failed => {
                self.failures = self.failures.saturating_add(1);
                Some(self.backoff.next_delay())
            }
        }
    }
}

/// [`MAX_BACKOFF_FACTOR`] poll intervals or [`MAX_BACKOFF`], whichever is shorter, but never
/// shorter than the interval itself.
pub fn backoff_cap(interval: Duration) -> Duration {
    interval
        .saturating_mul(MAX_BACKOFF_FACTOR)
        .min(MAX_BACKOFF)
        .max(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    use crate::fetch::backoff::fixed::{Bottom, Top};

    fn waits<J: JitterSource>(s: &mut PollSchedule<J>, polls: &[Polled]) -> Vec<u64> {
        polls
            .iter()
            .map(|p| s.after(*p).expect("polling").as_secs())
            .collect()
    }

    /// How many polls a schedule makes in `span` with every poll failing: a fake clock that
    /// advances by each wait.
    fn polls_while_failing<J: JitterSource>(s: &mut PollSchedule<J>, span: Duration) -> usize {
        let mut now = Duration::ZERO;
        let mut polls = 0;
        while now < span {
            polls += 1;
            now += s.after(Polled::Failed).expect("polling");
        }
        polls
    }

    #[test]
    fn failures_double_the_wait_up_to_the_cap_and_a_good_poll_resets_it() {
        use Polled::{Failed, Good};
        let mut s = PollSchedule::with_source(Some(30 * S), Top);
        assert_eq!(s.cap(), 240 * S);
        assert_eq!(
            waits(
                &mut s,
                &[Good, Good, Failed, Failed, Failed, Failed, Failed]
            ),
            [30, 30, 30, 60, 120, 240, 240]
        );
        assert_eq!(s.failures(), 5);
        // The server is back: the next wait is the interval, and a new outage starts over.
        assert_eq!(waits(&mut s, &[Good, Failed, Failed]), [30, 30, 60]);
        assert_eq!(s.failures(), 2);
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_each_doubling() {
        let failing = [Polled::Failed; 6];
        let mut s = PollSchedule::with_source(Some(30 * S), Bottom);
        assert_eq!(waits(&mut s, &failing), [30, 30, 60, 120, 120, 120]);
        for seed in 0..50 {
            let mut s = PollSchedule::with_source(Some(30 * S), fastrand::Rng::with_seed(seed));
            let w = waits(&mut s, &failing);
            assert_eq!(w[0], 30, "{w:?}");
            assert!((30..=60).contains(&w[1]), "{w:?}");
            assert!((60..=120).contains(&w[2]), "{w:?}");
            assert!(w[3..].iter().all(|d| (120..=240).contains(d)), "{w:?}");
        }
    }

    #[test]
    fn the_cap_is_eight_intervals_or_five_minutes_and_never_below_the_interval() {
        assert_eq!(
            backoff_cap(Duration::from_millis(100)),
            800 * Duration::from_millis(1)
        );
        assert_eq!(backoff_cap(30 * S), 240 * S);
        assert_eq!(backoff_cap(60 * S), 300 * S);
        // A poll interval longer than the cap: failures change nothing.
        let mut s = PollSchedule::with_source(Some(600 * S), Top);
        assert_eq!(waits(&mut s, &[Polled::Failed; 3]), [600, 600, 600]);
    }

    #[test]
    fn never_polling_stays_never_polling() {
        let mut s = PollSchedule::with_source(None, Top);
        assert_eq!(s.after(Polled::Failed), None);
        assert_eq!(s.after(Polled::Good), None);
    }

    /// The point of it: over ten minutes of a dead server at `lb.poll=30s`, a fixed interval
    /// makes 20 polls; backing off makes a handful, whatever the jitter draws.
    #[test]
    fn a_long_outage_costs_a_handful_of_polls() {
        let ten_minutes = 600 * S;
        let fewest = polls_while_failing(
            &mut PollSchedule::with_source(Some(30 * S), Top),
            ten_minutes,
        );
        let most = polls_while_failing(
            &mut PollSchedule::with_source(Some(30 * S), Bottom),
            ten_minutes,
        );
        // Top: 30+60+120+240 = 450 s after 4 polls, one more at the cap.
        assert_eq!(fewest, 5);
        // Bottom: 30+30+60+120 = 240 s, then every 120 s.
        assert_eq!(most, 7);
        for seed in 0..50 {
            let mut s = PollSchedule::with_source(Some(30 * S), fastrand::Rng::with_seed(seed));
            let n = polls_while_failing(&mut s, ten_minutes);
            assert!((fewest..=most).contains(&n), "seed {seed}: {n}");
        }
    }
}
