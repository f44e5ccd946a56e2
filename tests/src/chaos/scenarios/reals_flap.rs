//! A real's health flapping on one service while the other must stay untouched.

use std::time::{Duration, Instant};

use super::tables::{echo_destinations, wait_tables};
use super::{no_loss, spurious};
use crate::chaos::analysis;
use crate::chaos::lab::Services;
use crate::chaos::{Chaos, Report};

pub(super) fn reals_flap(
    c: &mut Chaos,
    duration: Duration,
    report: &mut Report,
) -> Result<(), String> {
    wait_tables(c, &Services::default())?;
    c.settle()?;
    let before = [echo_destinations(c, 0)?, echo_destinations(c, 1)?];
    let marks = c.marks();
    let from = Instant::now();
    let every = Duration::from_millis(500);
    let steps = (duration.as_millis() / every.as_millis()).max(2) as u32;
    for n in 0..steps {
        c.lab.set_health_down(1, n % 2 == 0);
        std::thread::sleep((from + every * (n + 1)).saturating_duration_since(Instant::now()));
    }
    c.lab.set_health_down(1, false);
    let flapped = Instant::now() - from;
    // rise 2 × 1 s brings r2 back.
    std::thread::sleep(Duration::from_secs(4));
    wait_tables(c, &Services::default())?;
    let after = [echo_destinations(c, 0)?, echo_destinations(c, 1)?];
    c.settle()?;
    let to = Instant::now();
    let mut row = c.measure(
        format!(
            "r2's health flapping every 500 ms for {:.0} s",
            flapped.as_secs_f64()
        ),
        from,
        to,
        marks,
    );
    // The bound: rise/fall hysteresis changes a real's state at most once per
    // min(rise, fall) × interval = 2 s, each change one IPVS operation per balancer; plus
    // the return at the end.
    let bound = 2 * (flapped.as_secs() / 2 + 2);
    let ops: u64 = (0..2)
        .flat_map(|w| c.pair[w].console_since(marks[w]))
        .filter_map(|l| analysis::ipvs_operations(&l))
        .sum();
    row.notes.push(format!(
        "{ops} IPVS operations on the two balancers (bound {bound}: one per 2 s of flapping per balancer)"
    ));
    if ops > bound {
        report.violations.push(format!(
            "reals flap: {ops} IPVS operations, more than the bound {bound}"
        ));
    }
    if before != after {
        report.violations.push(format!(
            "reals flap: the echo service changed: {before:?} -> {after:?}"
        ));
    }
    no_loss(report, &row, "reals flapping");
    spurious(report, &mut row);
    report.rows.push(row);
    Ok(())
}
