//! Deadlines of runs in flight without a timer per run. Runs with the same timeout expire in
//! the order they started, so each timeout value keeps a queue in start order and expiring is a
//! look at the fronts of a few queues. A run that finished early is not looked for: its entry
//! stays until it reaches a front and the caller says it is no longer live. Pure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Deadlines of runs, each named by a key of the caller's (which must tell a later run from an
/// earlier one that reused the same resource, e.g. by carrying a run number).
#[derive(Debug)]
pub struct Deadlines<K> {
    lanes: Vec<Lane<K>>,
}

#[derive(Debug)]
struct Lane<K> {
    timeout: Duration,
    queue: VecDeque<(Instant, K)>,
}

impl<K: Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines { lanes: Vec::new() }
    }
}

impl<K: Copy> Deadlines<K> {
    /// A run started at `now` that times out after `timeout`.
    pub fn push(&mut self, now: Instant, timeout: Duration, key: K) {
        let lane = match self.lanes.iter().position(|l| l.timeout == timeout) {
            Some(l) => l,
            None => {
                self.lanes.push(Lane {
                    timeout,
                    queue: VecDeque::new(),
                });
                self.lanes.len() - 1
            }
        };
        self.lanes[lane].queue.push_back((now + timeout, key));
    }

    /// The earliest deadline of a live run; entries of runs no longer live are dropped from
    /// the fronts on the way, so they never wake anyone.
    pub fn next(&mut self, live: impl Fn(K) -> bool) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for lane in &mut self.lanes {
            while let Some(&(when, key)) = lane.queue.front() {
                if live(key) {
                    next = Some(next.map_or(when, |n| n.min(when)));
                    break;
                }
                lane.queue.pop_front();
            }
        }
        next
    }

    /// Takes every entry whose deadline is at or before `now`, passing its key to `expired`
    /// (which must ignore keys of runs that already finished).
    pub fn expire(&mut self, now: Instant, mut expired: impl FnMut(K)) {
        for lane in &mut self.lanes {
            while let Some(&(when, key)) = lane.queue.front() {
                if when > now {
                    break;
                }
                lane.queue.pop_front();
                expired(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_in_deadline_order_across_timeouts() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Deadlines::default();
        d.push(t0, ms(100), 1);
        d.push(t0 + ms(10), ms(50), 2);
        d.push(t0 + ms(20), ms(100), 3);
        assert_eq!(d.next(|_| true), Some(t0 + ms(60)));
        assert_eq!(d.next(|k| k != 2), Some(t0 + ms(100)), "2 finished early");
        let mut out = Vec::new();
        d.expire(t0 + ms(100), |k| out.push(k));
        assert_eq!(out, [1], "2 was dropped by next(), 3 is not due");
        d.expire(t0 + ms(120), |k| out.push(k));
        assert_eq!(out, [1, 3]);
        assert_eq!(d.next(|_| true), None);
    }
}
