//! Configs alternating every 200 ms on both balancers.

use std::time::{Duration, Instant};

use super::tables::wait_tables;
use super::{lines_with, no_loss, spurious};
use crate::chaos::analysis::ms;
use crate::chaos::lab::{Services, MEMBERS};
use crate::chaos::{Chaos, Report};

pub(super) fn reload_storm(
    c: &mut Chaos,
    duration: Duration,
    report: &mut Report,
) -> Result<(), String> {
    c.settle()?;
    let marks = c.marks();
    let from = Instant::now();
    let every = Duration::from_millis(200);
    let steps = (duration.as_millis() / every.as_millis()).max(1) as u32;
    for n in 0..steps {
        let services = if n % 2 == 0 {
            Services::storm_alternate()
        } else {
            Services::default()
        };
        c.lab.publish_all(&services)?;
        std::thread::sleep((from + every * (n + 1)).saturating_duration_since(Instant::now()));
    }
    c.lab.publish_all(&Services::default())?;
    let storm_end = Instant::now();
    let converged = wait_tables(c, &Services::default())?;
    c.settle()?;
    let to = Instant::now();
    let mut row = c.measure(
        format!(
            "{} configs in {:.1} s on each balancer",
            steps + 1,
            (storm_end - from).as_secs_f64()
        ),
        from,
        to,
        marks,
    );
    for (who, m) in MEMBERS.iter().enumerate() {
        let applied = lines_with(c, who, marks[who], "reloaded config").len();
        let refused = lines_with(c, who, marks[who], "refused").len()
            + lines_with(c, who, marks[who], "config fetch failed").len();
        row.notes
            .push(format!("{}: {applied} applied, {refused} refusals", m.name));
        if applied == 0 {
            report
                .violations
                .push(format!("{}: no config of the storm was applied", m.name));
        }
    }
    row.notes.push(format!(
        "both tables final {} ms after the storm",
        ms(converged)
    ));
    no_loss(report, &row, "reload");
    if row.requests_failed > 0 {
        report.violations.push(format!(
            "reload storm: {} short requests failed",
            row.requests_failed
        ));
    }
    spurious(report, &mut row);
    report.rows.push(row);
    Ok(())
}
