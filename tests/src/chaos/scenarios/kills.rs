//! `kill -9` of lbd on the master or the backup; init restarts it.

use std::time::Instant;

use super::takeovers::{check_takeovers, master_index};
use super::{no_loss, spurious, wait_line, SPLIT_BRAIN_LIMIT};
use crate::chaos::analysis::{self, ms};
use crate::chaos::lab::MEMBERS;
use crate::chaos::{Chaos, Report};

pub(super) fn kill_round(c: &mut Chaos, master: bool, report: &mut Report) -> Result<(), String> {
    c.settle()?;
    let m = master_index(c);
    let who = if master { m } else { 1 - m };
    let name = MEMBERS[who].name;
    let marks = c.marks();
    let from = Instant::now();
    let pid = c.pair[who].kill_lbd()?;
    wait_line(c, who, marks[who], "lbd restarted")?;
    wait_line(c, who, marks[who], "lbd running with")?;
    c.settle()?;
    let to = Instant::now();
    let role = if master { "master" } else { "backup" };
    let mut row = c.measure(
        format!(
            "kill -9 lbd (pid {}) on {name} ({role})",
            pid.map_or("?".into(), |p| p.to_string())
        ),
        from,
        to,
        marks,
    );
    for (delay, announced) in analysis::restart_delays(&c.pair[who].console_since(marks[who])) {
        row.notes.push(format!(
            "init restarted lbd {} ms after its exit (announced {announced} s)",
            ms(delay)
        ));
    }
    if !row.takeovers.is_empty() {
        row.notes
            .push(format!("takeovers {}", row.takeovers.join(", ")));
    }
    check_takeovers(c, &mut row, from, to, report);
    no_loss(report, &row, "lbd crash");
    if !master {
        spurious(report, &mut row);
    }
    if row.split_brain.1 > SPLIT_BRAIN_LIMIT {
        report.violations.push(format!(
            "{}: two masters for {} ms",
            row.fault,
            ms(row.split_brain.1)
        ));
    }
    report.rows.push(row);
    Ok(())
}
