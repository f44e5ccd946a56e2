//! When each check runs next: items bucketed by tick (a fixed duration, e.g. 10 ms). Ten
//! thousand checks a second each take one item out and put one back; in a binary heap of ten
//! thousand entries that is two walks of fourteen levels each time, here it is one lookup among
//! the (a hundred or so) distinct ticks ahead and a push onto that tick's list; and everything
//! due in one tick comes out together, for one wake-up of the caller. Pure: the caller passes
//! the time.
//!
//! Times are rounded up to the next whole tick after the schedule's origin, so an item never
//! comes out before its time, and at most a tick after it. Items due in the same tick come out
//! in the order they went in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Emptied lists kept for new ticks, so steady state allocates nothing.
const SPARE_MAX: usize = 64;

/// Items keyed by the tick they are due in.
#[derive(Debug)]
pub struct Schedule<T> {
    origin: Instant,
    tick: Duration,
    buckets: BTreeMap<u64, Vec<T>>,
    spare: Vec<Vec<T>>,
    len: usize,
}

impl<T> Schedule<T> {
    /// An empty schedule with this resolution (at least a microsecond); times before
    /// `origin` count as due at once.
    pub fn new(origin: Instant, tick: Duration) -> Schedule<T> {
        Schedule {
            origin,
            tick: tick.max(Duration::from_micros(1)),
            buckets: BTreeMap::new(),
            spare: Vec::new(),
            len: 0,
        }
    }

    /// Its resolution.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Changes the resolution (at least a microsecond), keeping every item in order: each
    /// goes to the first new tick at or after the time its old tick would have come out, so
    /// none comes out early, and none more than a new tick later than it would have.
    pub fn set_tick(&mut self, tick: Duration) {
        let tick = tick.max(Duration::from_micros(1));
        if tick == self.tick {
            return;
        }
        let old: Vec<(Instant, Vec<T>)> = std::mem::take(&mut self.buckets)
            .into_iter()
            .map(|(t, items)| (self.time_of(t), items))
            .collect();
        self.tick = tick;
        for (when, mut items) in old {
            let t = self.tick_after(when);
            self.buckets.entry(t).or_default().append(&mut items);
        }
    }

    /// Items scheduled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first whole tick at or after `when`.
    fn tick_after(&self, when: Instant) -> u64 {
        let d = when.saturating_duration_since(self.origin);
        let ticks = d.as_nanos().div_ceil(self.tick.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The last whole tick at or before `now`.
    fn tick_before(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos() / self.tick.as_nanos()).unwrap_or(u64::MAX)
    }

    fn time_of(&self, tick: u64) -> Instant {
        let nanos = u128::from(tick) * self.tick.as_nanos();
        let d = Duration::new(
            u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX / 2),
            (nanos % 1_000_000_000) as u32,
        );
        self.origin
            .checked_add(d)
            .unwrap_or(self.origin + Duration::from_secs(1 << 32))
    }

    /// Rounds `when` up to the tick it would come out in.
    pub fn round_up(&self, when: Instant) -> Instant {
        self.time_of(self.tick_after(when))
    }

    /// Schedules `item` for `when`.
    pub fn push(&mut self, when: Instant, item: T) {
        let tick = self.tick_after(when);
        let spare = &mut self.spare;
        self.buckets
            .entry(tick)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(item);
        self.len += 1;
    }

    /// When the earliest item comes out (its time rounded up to the tick).
    pub fn next(&self) -> Option<Instant> {
        self.buckets
            .first_key_value()
            .map(|(t, _)| self.time_of(*t))
    }

    /// Appends every item due at `now` to `out`, earliest first.
    pub fn pop_due(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_tick = self.tick_before(now);
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_tick {
                break;
            }
            let mut items = entry.remove();
            self.len -= items.len();
            out.append(&mut items);
            if self.spare.len() < SPARE_MAX {
                self.spare.push(items);
            }
        }
    }

    /// Keeps only the items for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut len = 0;
        self.buckets.retain(|_, items| {
            items.retain(&mut keep);
            len += items.len();
            !items.is_empty()
        });
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn items_come_out_in_time_order_never_early_at_most_a_tick_late() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, ms(1));
        s.push(t0 + ms(5) + Duration::from_micros(300), "c");
        s.push(t0 + ms(2), "b");
        s.push(t0, "a");
        s.push(t0 + ms(3_600_000), "hour");
        assert_eq!(s.len(), 4);
        assert_eq!(s.next(), Some(t0));
        let mut out = Vec::new();
        s.pop_due(t0, &mut out);
        assert_eq!(out, ["a"]);
        // 5.3 ms rounds up to 6 ms: not out at 5.9 ms, out at 6 ms.
        s.pop_due(t0 + ms(5) + Duration::from_micros(900), &mut out);
        assert_eq!(out, ["a", "b"]);
        assert_eq!(s.next(), Some(t0 + ms(6)));
        s.pop_due(t0 + ms(6), &mut out);
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(s.next(), Some(t0 + ms(3_600_000)));
        assert_eq!(s.len(), 1);
        s.pop_due(t0 + ms(3_600_000), &mut out);
        assert_eq!(out.last(), Some(&"hour"));
        assert!(s.is_empty());
        assert_eq!(s.next(), None);
    }

    #[test]
    fn same_millisecond_in_order_and_the_past_is_due_at_once() {
        let t0 = Instant::now() + ms(100);
        let mut s = Schedule::new(t0, ms(1));
        // Later times first, all within the first tick.
        for i in 0..5 {
            s.push(t0 + Duration::from_micros(100 * (5 - i)), i);
        }
        s.push(t0 - ms(50), 99);
        let mut out = Vec::new();
        s.pop_due(t0, &mut out);
        assert_eq!(out, [99]);
        s.pop_due(t0 + ms(1), &mut out);
        assert_eq!(out, [99, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn retain_drops_items_and_empty_ticks() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, ms(1));
        for i in 0..10u32 {
            s.push(t0 + ms(u64::from(i % 3)), i);
        }
        s.retain(|i| i % 3 != 0 && *i != 4);
        assert_eq!(s.len(), 5);
        assert_eq!(s.next(), Some(t0 + ms(1)));
        let mut out = Vec::new();
        s.pop_due(t0 + ms(10), &mut out);
        assert_eq!(out, [1, 7, 2, 5, 8]);
    }

    #[test]
    fn a_new_tick_keeps_every_item_in_order_never_earlier() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, ms(10));
        for i in 0..100u64 {
            s.push(t0 + ms(3 * i), i);
        }
        s.set_tick(ms(50));
        assert_eq!(s.tick(), ms(50));
        assert_eq!(s.len(), 100);
        // Item 0 is due at once; items 1 to 16 (3 to 48 ms) in the first 50 ms tick.
        assert_eq!(s.next(), Some(t0));
        let mut out = Vec::new();
        // Item 17 (51 ms) is not out before 100 ms.
        s.pop_due(t0 + ms(99), &mut out);
        assert_eq!(out, (0..=16).collect::<Vec<_>>());
        s.set_tick(ms(10));
        // 51 ms had become 60 (the old 10 ms tick's time), then 100: now due at 100.
        assert_eq!(s.next(), Some(t0 + ms(100)));
        s.pop_due(t0 + ms(1000), &mut out);
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_coarse_tick_batches_what_is_due_within_it() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, ms(10));
        for i in 1..=25u64 {
            s.push(t0 + ms(i), i);
        }
        assert_eq!(s.next(), Some(t0 + ms(10)));
        assert_eq!(s.round_up(t0 + ms(11)), t0 + ms(20));
        assert_eq!(s.round_up(t0 + ms(20)), t0 + ms(20));
        let mut out = Vec::new();
        s.pop_due(t0 + ms(9), &mut out);
        assert!(out.is_empty());
        s.pop_due(t0 + ms(10), &mut out);
        assert_eq!(out, (1..=10).collect::<Vec<_>>());
        s.pop_due(t0 + ms(29), &mut out);
        assert_eq!(out.len(), 20);
        assert_eq!(s.next(), Some(t0 + ms(30)));
    }
}
