//! Paces gratuitous ARP / unsolicited NA bursts. Pure: times in, packets due out.
//!
//! A burst of `count` rounds sends one packet per VIP per round, the first round at once and
//! the next ones [`ROUND_GAP`] apart. All instances share a token bucket of [`BUCKET`]
//! packets refilled at [`RATE`] per second, so a node with many VIPs never floods the link
//! (a takeover of 100 VIPs × 5 rounds goes out in about half a second, the first round of up
//! to `BUCKET` packets at once).

use crate::config::IpPrefix;
use std::collections::VecDeque;
use std::time::Duration;

/// Time between the rounds of one burst.
pub const ROUND_GAP: Duration = Duration::from_millis(100);
/// Packets that may go out back to back.
pub const BUCKET: u32 = 64;
/// Sustained packets per second.
pub const RATE: u32 = 1000;

/// One announcement to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub instance: String,
    pub vip: IpPrefix,
}

#[derive(Debug)]
pub struct Pacer {
    /// (due, item), in due order.
    queue: VecDeque<(Duration, Item)>,
    tokens: f64,
    refilled: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer {
            queue: VecDeque::new(),
            tokens: f64::from(BUCKET),
            refilled: Duration::ZERO,
        }
    }
}

impl Pacer {
    /// Queues `count` rounds for `vips` starting at `now`.
    pub fn burst(&mut self, now: Duration, instance: &str, vips: &[IpPrefix], count: u32) {
        for round in 0..count {
            let due = now + ROUND_GAP * round;
            for v in vips {
                let item = Item {
                    instance: instance.to_string(),
                    vip: *v,
                };
                let at = self.queue.partition_point(|(d, _)| *d <= due);
                self.queue.insert(at, (due, item));
            }
        }
    }

    /// Forgets what is queued for `instance` (it is no longer master).
    pub fn cancel(&mut self, instance: &str) {
        self.queue.retain(|(_, i)| i.instance != instance);
    }

    fn refill(&mut self, now: Duration) {
        if now > self.refilled {
            let add = (now - self.refilled).as_secs_f64() * f64::from(RATE);
            self.tokens = (self.tokens + add).min(f64::from(BUCKET));
            self.refilled = now;
        }
    }

    /// The items to send now.
    pub fn due(&mut self, now: Duration) -> Vec<Item> {
        self.refill(now);
        let mut out = Vec::new();
        while let Some((d, _)) = self.queue.front() {
            if *d > now || self.tokens < 1.0 {
                break;
            }
            self.tokens -= 1.0;
            out.push(self.queue.pop_front().expect("front exists").1);
        }
        out
    }

    /// When to call [`Pacer::due`] next.
    pub fn next_wake(&self) -> Option<Duration> {
        let (d, _) = self.queue.front()?;
        if self.tokens >= 1.0 {
            Some(*d)
        } else {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / f64::from(RATE));
            Some((*d).max(self.refilled + wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    #[test]
    fn rounds_are_spaced_and_the_first_goes_at_once() {
        let mut p = Pacer::default();
        let t = Duration::from_secs(5);
        p.burst(t, "a", &[v("10.0.0.1/24"), v("10.0.0.2/24")], 3);
        assert_eq!(p.due(t).len(), 2);
        assert_eq!(p.next_wake(), Some(t + ROUND_GAP));
        assert!(p.due(t + ROUND_GAP - Duration::from_millis(1)).is_empty());
        assert_eq!(p.due(t + ROUND_GAP).len(), 2);
        p.cancel("a");
        assert_eq!(p.next_wake(), None);
    }

    #[test]
    fn the_bucket_limits_the_rate() {
        let mut p = Pacer::default();
        let vips: Vec<IpPrefix> = (0..200)
            .map(|i| v(&format!("10.0.{}.{}/16", i / 250, i % 250)))
            .collect();
        let t = Duration::from_secs(1);
        p.burst(t, "a", &vips, 1);
        assert_eq!(p.due(t).len(), BUCKET as usize);
        let wake = p.next_wake().unwrap();
        assert_eq!(wake, t + Duration::from_millis(1));
        // 10 ms later: 10 more.
        assert_eq!(p.due(t + Duration::from_millis(10)).len(), 10);
        let mut sent = BUCKET as usize + 10;
        let mut now = t + Duration::from_millis(10);
        for _ in 0..1000 {
            let Some(w) = p.next_wake() else { break };
            now = w;
            sent += p.due(now).len();
        }
        assert_eq!(sent, 200);
        // 136 packets after the bucket emptied take 136 ms at 1000/s.
        assert!(
            now - t >= Duration::from_millis(135) && now - t <= Duration::from_millis(137),
            "{:?}",
            now - t
        );
    }
}
