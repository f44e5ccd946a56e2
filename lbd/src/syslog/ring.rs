//! The in-memory ring of recent log events: a diskless box keeps its recent history here
//! (the control API serves it as `GET /events`); the oldest events are overwritten.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One log event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Position in the ring's history, from 1; gaps mean overwritten events.
    pub seq: u64,
    /// Wall-clock time, RFC 3339 UTC.
    #[serde(serialize_with = "ser_time")]
    pub time: SystemTime,
    /// Seconds since boot.
    #[serde(serialize_with = "ser_secs")]
    pub uptime: Duration,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged it (`lbd::vrrp::runtime`).
    pub target: String,
    pub message: String,
    /// The event's other fields, in the order given, as text.
    #[serde(serialize_with = "ser_fields")]
    pub fields: Vec<(String, String)>,
}

fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::rfc5424::timestamp(*t))
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_fields<S: Serializer>(f: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(f.len()))?;
    for (k, v) in f {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// A bounded, thread-safe ring of events.
#[derive(Debug)]
pub struct EventRing {
    history: Mutex<History>,
}

/// The events kept, oldest first, and the numbering of the next one.
#[derive(Debug)]
struct History {
    buf: VecDeque<Arc<Event>>,
    capacity: usize,
    next_seq: u64,
}

impl EventRing {
    pub fn new(capacity: usize) -> EventRing {
        EventRing {
            history: Mutex::new(History {
                buf: VecDeque::with_capacity(capacity.min(1024)),
                capacity: capacity.max(1),
                next_seq: 1,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding the lock leaves a consistent deque: keep using it.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `event` with the next sequence number and returns it.
    pub fn push(&self, mut event: Event) -> Arc<Event> {
        let mut g = self.lock();
        event.seq = g.next_seq;
        g.next_seq += 1;
        let e = Arc::new(event);
        if g.buf.len() == g.capacity {
            g.buf.pop_front();
        }
        g.buf.push_back(e.clone());
        e
    }

    /// Events with `seq > after`, oldest first, at most `max` (the newest of them).
    pub fn since(&self, after: u64, max: usize) -> Vec<Arc<Event>> {
        let g = self.lock();
        let newer: Vec<Arc<Event>> = g.buf.iter().filter(|e| e.seq > after).cloned().collect();
        let skip = newer.len().saturating_sub(max);
        newer.into_iter().skip(skip).collect()
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &str) -> Event {
        Event {
            seq: 0,
            time: SystemTime::UNIX_EPOCH,
            uptime: Duration::from_millis(1500),
            level: "INFO",
            target: "t".into(),
            message: msg.into(),
            fields: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn keeps_the_newest() {
        let r = EventRing::new(3);
        for i in 0..5 {
            r.push(ev(&format!("m{i}")));
        }
        let all = r.since(0, 100);
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [3, 4, 5],
            "the two oldest were overwritten"
        );
        assert_eq!(all[0].message, "m2");
        assert_eq!(r.since(4, 100).len(), 1);
        assert_eq!(
            r.since(0, 2).iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(r.next_seq(), 6);
    }

    #[test]
    fn json() {
        let r = EventRing::new(2);
        let e = r.push(ev("hello"));
        let j = serde_json::to_string(&*e).unwrap();
        assert_eq!(
            j,
            r#"{"seq":1,"time":"1970-01-01T00:00:00.000000Z","uptime":1.5,"level":"INFO","target":"t","message":"hello","fields":{"k":"v"}}"#
        );
    }
}
