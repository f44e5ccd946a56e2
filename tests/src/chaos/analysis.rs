//! Pure analysis of what a chaos round recorded: who was master when (from the adverts a third
//! party saw on the wire), split brain, takeovers, IPVS operations from lbd's log lines, init's
//! restart delays from the stamps of lbd's exits and starts. No I/O, so it is unit-tested with
//! synthetic timelines.

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A VRRP advert seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// When the observer saw it.
    pub at: Instant,
    /// Its source address (the sender's own address).
    pub source: IpAddr,
    /// The advertised priority (0: the sender leaves mastership).
    pub priority: u8,
}

/// The IPv4 adverts of `vrid` in a capture (IPv4 and IPv6 routers of one VRID are separate
/// routers).
pub fn ipv4_adverts(events: &[crate::wire::Event], vrid: u8) -> Vec<Advert> {
    crate::wire::adverts(events, vrid)
        .filter(|(_, v)| v.src.is_ipv4())
        .map(|(e, v)| Advert {
            at: e.at,
            source: v.src,
            priority: v.priority,
        })
        .collect()
}

/// A run of mastership: one source sending adverts with no gap longer than the window the
/// analysis was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mastership {
    /// The sender.
    pub source: IpAddr,
    /// Its first advert of the run.
    pub from: Instant,
    /// Its last advert of the run with a priority above 0.
    pub to: Instant,
}

/// Runs of mastership from `adverts` (in time order): a source is master from its first advert
/// to its last one while consecutive adverts are at most `gap` apart; an advert of priority 0
/// ends its run. Two runs that overlap are two masters at once.
pub fn masterships(adverts: &[Advert], gap: Duration) -> Vec<Mastership> {
    let mut open: Vec<Mastership> = Vec::new();
    let mut done = Vec::new();
    for a in adverts {
        let pos = open.iter().position(|m| m.source == a.source);
        if let Some(i) = pos {
            if a.priority == 0 || a.at.saturating_duration_since(open[i].to) > gap {
                done.push(open.remove(i));
            }
        }
        if a.priority == 0 {
            continue;
        }
        match open.iter_mut().find(|m| m.source == a.source) {
            Some(m) => m.to = a.at,
            None => open.push(Mastership {
                source: a.source,
                from: a.at,
                to: a.at,
            }),
        }
    }
    done.extend(open);
    done.sort_by_key(|m| m.from);
    done
}

/// The intervals during which two or more sources were master at once (merged, in order).
pub fn split_brain(runs: &[Mastership]) -> Vec<(Instant, Instant)> {
    let mut overlaps: Vec<(Instant, Instant)> = Vec::new();
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            if a.source == b.source {
                continue;
            }
            let from = a.from.max(b.from);
            let to = a.to.min(b.to);
            if from < to {
                overlaps.push((from, to));
            }
        }
    }
    overlaps.sort();
    let mut merged: Vec<(Instant, Instant)> = Vec::new();
    for (from, to) in overlaps {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// The total and the longest of some intervals.
pub fn total_and_longest(spans: &[(Instant, Instant)]) -> (Duration, Duration) {
    spans
        .iter()
        .fold((Duration::ZERO, Duration::ZERO), |(t, l), (a, b)| {
            let d = *b - *a;
            (t + d, l.max(d))
        })
}

/// A source becoming master: the start of one of its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Takeover {
    /// When its first advert was seen.
    pub at: Instant,
    /// The new master.
    pub source: IpAddr,
    /// The master before it (whose run started last before this one), if any.
    pub previous: Option<IpAddr>,
}

/// The takeovers among `runs` (sorted by start) that start in [from, to): every run whose
/// source was not master just before it — `previous` is another source still master then
/// (two masters), or else the source of the run that ended last. A source's new run after a
/// silence of its own (lbd restarted and resumed) is no takeover.
pub fn takeovers(runs: &[Mastership], from: Instant, to: Instant) -> Vec<Takeover> {
    let mut out = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        if r.from < from || r.from >= to {
            continue;
        }
        let earlier = &runs[..i];
        let covering = earlier
            .iter()
            .filter(|o| o.source != r.source && o.from <= r.from && r.from <= o.to)
            .map(|o| o.source)
            .next_back();
        let previous = covering.or_else(|| {
            earlier
                .iter()
                .filter(|o| o.to <= r.from)
                .max_by_key(|o| o.to)
                .map(|o| o.source)
        });
        if previous != Some(r.source) {
            out.push(Takeover {
                at: r.from,
                source: r.source,
                previous,
            });
        }
    }
    out
}

/// Who was master at `t` (the sources whose runs cover it).
pub fn masters_at(runs: &[Mastership], t: Instant) -> Vec<IpAddr> {
    runs.iter()
        .filter(|r| r.from <= t && t <= r.to)
        .map(|r| r.source)
        .collect()
}

/// IPVS operations a line of lbd's log reports: `ipvs applied: services +1 ~0 -0, reals +2 ~0
/// -1, other 0, 0 errors` (a config) or `ipvs applied health changes: reals +0 ~1 -0, 0
/// errors` (an input). `None` for other lines.
pub fn ipvs_operations(line: &str) -> Option<u64> {
    let at = line.find("ipvs applied")?;
    let rest = &line[at..];
    let counts = rest.split(", ").take_while(|p| !p.contains("error"));
    let mut total = 0;
    for part in counts {
        for word in part.split_whitespace() {
            let digits = word.trim_start_matches(['+', '~', '-']);
            let signed = word.len() != digits.len();
            if let (true, Ok(n)) = (signed || part.starts_with("other"), digits.parse::<u64>()) {
                total += n;
            }
        }
    }
    Some(total)
}

/// init's restarts of lbd from its console lines: for every `lbd exited ... restarting in N s`
/// the time from that line's stamp to the next `lbd restarted` line's stamp (guest uptime), and
/// the announced N.
pub fn restart_delays(lines: &[String]) -> Vec<(Duration, u64)> {
    let mut out = Vec::new();
    let mut exited: Option<(Duration, u64)> = None;
    for line in lines {
        let Some(parsed) = crate::appliance::LogLine::parse(line) else {
            continue;
        };
        if parsed.program != "init" {
            continue;
        }
        if parsed.message.starts_with("lbd exited") {
            let announced = parsed
                .message
                .split("restarting in ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            exited = Some((parsed.uptime, announced));
        } else if parsed.message.starts_with("lbd restarted") {
            if let Some((at, announced)) = exited.take() {
                out.push((parsed.uptime.saturating_sub(at), announced));
            }
        }
    }
    out
}

/// Milliseconds, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 72, 0, n))
    }

    fn adverts(t: Instant, list: &[(u64, u8, u8)]) -> Vec<Advert> {
        list.iter()
            .map(|&(ms, n, priority)| Advert {
                at: t + Duration::from_millis(ms),
                source: ip(n),
                priority,
            })
            .collect()
    }

    #[test]
    fn a_failover_and_a_preemption_are_takeovers_without_split_brain() {
        let t = Instant::now();
        // lb1 until 2 s, silent (killed); lb2 from 5.4 s; lb1 back at 9.5 s, lb2 steps down.
        let a = adverts(
            t,
            &[
                (0, 11, 150),
                (1000, 11, 150),
                (2000, 11, 150),
                (5400, 12, 100),
                (6400, 12, 100),
                (7400, 12, 100),
                (8400, 12, 100),
                (9500, 11, 150),
                (10500, 11, 150),
            ],
        );
        let runs = masterships(&a, Duration::from_millis(1500));
        assert_eq!(runs.len(), 3);
        assert!(split_brain(&runs).is_empty());
        let tk = takeovers(&runs, t, t + Duration::from_secs(20));
        assert_eq!(
            tk.iter()
                .map(|k| (k.source, k.previous))
                .collect::<Vec<_>>(),
            [
                (ip(11), None),
                (ip(12), Some(ip(11))),
                (ip(11), Some(ip(12)))
            ]
        );
        assert_eq!(masters_at(&runs, t + Duration::from_millis(6000)), [ip(12)]);
        assert!(masters_at(&runs, t + Duration::from_millis(4000)).is_empty());
    }

    #[test]
    fn interleaved_adverts_are_split_brain_and_priority_zero_ends_a_run() {
        let t = Instant::now();
        let a = adverts(
            t,
            &[
                (0, 11, 150),
                (500, 12, 100),
                (1000, 11, 150),
                (1500, 12, 100),
                (2000, 11, 150),
                (2100, 12, 0),
                (3000, 11, 150),
            ],
        );
        let runs = masterships(&a, Duration::from_millis(1500));
        let sb = split_brain(&runs);
        assert_eq!(
            sb,
            [(
                t + Duration::from_millis(500),
                t + Duration::from_millis(1500)
            )]
        );
        assert_eq!(
            total_and_longest(&sb),
            (Duration::from_millis(1000), Duration::from_millis(1000))
        );
        // lb1's run is one (no gap), lb2's ends at its priority-0 advert.
        assert_eq!(runs.len(), 2);
        assert_eq!(takeovers(&runs, t, t + Duration::from_secs(5)).len(), 2);
    }

    #[test]
    fn each_partition_is_a_takeover_even_while_the_other_stays_master() {
        let t = Instant::now();
        // lb1 advertises throughout; lb2 is master in two separate episodes.
        let mut list: Vec<(u64, u8, u8)> = (0..20).map(|s| (s * 1000, 11, 150)).collect();
        list.extend([
            (3400, 12, 100),
            (4400, 12, 100),
            (12400, 12, 100),
            (13400, 12, 100),
        ]);
        list.sort();
        let runs = masterships(&adverts(t, &list), Duration::from_millis(1500));
        let tk = takeovers(&runs, t, t + Duration::from_secs(30));
        assert_eq!(
            tk.iter()
                .map(|k| (k.source, k.previous))
                .collect::<Vec<_>>(),
            [
                (ip(11), None),
                (ip(12), Some(ip(11))),
                (ip(12), Some(ip(11)))
            ]
        );
        // A master's own new run after a silence (a resumed lbd) is none.
        let a = adverts(t, &[(0, 11, 150), (1000, 11, 150), (3500, 11, 150)]);
        let runs = masterships(&a, Duration::from_millis(1500));
        assert_eq!(
            takeovers(
                &runs,
                t + Duration::from_secs(2),
                t + Duration::from_secs(9)
            ),
            []
        );
    }

    #[test]
    fn ipvs_operations_are_summed_from_log_lines() {
        assert_eq!(
            ipvs_operations("[ 3.1] lbd:  INFO ipvs applied: services +2 ~0 -0, reals +4 ~0 -1, other 1, 0 errors services_added=2"),
            Some(8)
        );
        assert_eq!(
            ipvs_operations("[ 9.0] lbd:  INFO ipvs applied health changes: reals +0 ~1 -0, 0 errors reals_added=0"),
            Some(1)
        );
        assert_eq!(ipvs_operations("[ 9.0] lbd:  INFO reloaded config"), None);
    }

    #[test]
    fn restart_delays_come_from_the_stamps() {
        let lines: Vec<String> = [
            "[   20.000000] init:  WARN lbd exited (killed by SIGKILL) after 15.2 s; restarting in 1 s",
            "[   21.250000] init:  INFO lbd restarted pid=99 restarts=1",
            "[   40.000000] init:  WARN lbd exited (killed by SIGKILL) after 18.7 s; restarting in 2 s",
            "[   42.100000] init:  INFO lbd restarted pid=120 restarts=2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            restart_delays(&lines),
            [
                (Duration::from_millis(1250), 1),
                (Duration::from_millis(2100), 2)
            ]
        );
    }
}
