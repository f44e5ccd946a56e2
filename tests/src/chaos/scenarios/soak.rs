//! Steady load, with init's and lbd's memory and descriptors sampled.

use std::time::{Duration, Instant};

use super::{no_loss, spurious};
use crate::chaos::lab::MEMBERS;
use crate::chaos::{Chaos, Report};

/// lbd's RSS may grow this much over a scenario (KiB) before it counts as a leak.
const RSS_GROWTH_LIMIT_KIB: u64 = 4096;

pub(super) fn soak(c: &mut Chaos, duration: Duration, report: &mut Report) -> Result<(), String> {
    c.settle()?;
    let marks = c.marks();
    let from = Instant::now();
    let samples = 10u32;
    let mut series: Vec<Vec<crate::chaos::lab::GuestStats>> = vec![Vec::new(), Vec::new()];
    for n in 0..=samples {
        for (who, s) in series.iter_mut().enumerate() {
            s.push(c.pair[who].stats()?);
        }
        if n < samples {
            std::thread::sleep(
                (from + duration * (n + 1) / samples).saturating_duration_since(Instant::now()),
            );
        }
    }
    let to = Instant::now();
    let mut row = c.measure(
        format!("steady load for {:.0} s", duration.as_secs_f64()),
        from,
        to,
        marks,
    );
    for (who, s) in series.iter().enumerate() {
        let name = MEMBERS[who].name;
        let rss: Vec<String> = s
            .iter()
            .map(|g| g.lbd.map_or("-".into(), |p| p.rss_kib.to_string()))
            .collect();
        let fds: Vec<String> = s
            .iter()
            .map(|g| g.lbd.map_or("-".into(), |p| p.fds.to_string()))
            .collect();
        report
            .figures
            .push(format!("{name}: lbd RSS KiB over time: {}", rss.join(" ")));
        report
            .figures
            .push(format!("{name}: lbd fds over time: {}", fds.join(" ")));
        // From the second sample: the first includes warm-up allocations.
        if let (Some(a), Some(b)) = (s.get(1).and_then(|g| g.lbd), s.last().and_then(|g| g.lbd)) {
            if b.rss_kib > a.rss_kib + RSS_GROWTH_LIMIT_KIB {
                report.violations.push(format!(
                    "soak: {name}'s lbd grew from {} to {} KiB",
                    a.rss_kib, b.rss_kib
                ));
            }
            if b.fds > a.fds + 2 {
                report.violations.push(format!(
                    "soak: {name}'s lbd went from {} to {} open fds",
                    a.fds, b.fds
                ));
            }
        }
    }
    no_loss(report, &row, "steady load");
    if row.requests_failed > 0 {
        report.violations.push(format!(
            "soak: {} short requests failed",
            row.requests_failed
        ));
    }
    spurious(report, &mut row);
    report.rows.push(row);
    Ok(())
}
