//! The balancers cut off each other, then healed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::takeovers::{check_takeovers, followers, master_index, split_brain_after};
use super::{NEIGH_WITHIN, SPLIT_BRAIN_LIMIT};
use crate::chaos::analysis::ms;
use crate::chaos::lab::{VrrpBy, ADVERT, MEMBERS, VIP6};
use crate::chaos::{Chaos, Report};

pub(super) fn partition_round(
    c: &mut Chaos,
    duration: Duration,
    report: &mut Report,
) -> Result<(), String> {
    c.settle()?;
    let backup = 1 - master_index(c);
    let marks = c.marks();
    let from = Instant::now();
    c.lab.partition(true)?;
    std::thread::sleep(duration);
    c.lab.partition(false)?;
    let healed = Instant::now();
    c.settle()?;
    let to = Instant::now();
    let mut row = c.measure(
        format!("partition for {:.0} s", duration.as_secs_f64()),
        from,
        to,
        marks,
    );
    // Cut off for longer than the master-down interval (3 adverts and the skew), a live
    // backup takes over: none means its VRRP no longer runs.
    if duration > 4 * ADVERT && row.takeovers.is_empty() {
        let mut v = format!(
            "{}: {} never took over while cut off from the master (its VRRP is not running)",
            row.fault, MEMBERS[backup].name
        );
        if c.lab.setup.vrrp == VrrpBy::Keepalived {
            let log = c.pair[backup].sh(
                "for p in $(pidof keepalived); do echo \"pid $p waits in $(cat /proc/$p/wchan)\"; cat /proc/$p/stack; ls -l /proc/$p/fd | grep -o 'socket:.*'; done; cat /proc/net/netlink; tail -n 8 /tmp/keepalived.log",
            )?;
            v.push_str(&format!("; its keepalived processes and log:\n{log}"));
        }
        report.violations.push(v);
    }
    let after = split_brain_after(c, healed);
    row.notes
        .push(format!("two masters for {} ms after healing", ms(after)));
    // The side that stayed master should win the neighbours back: they learned the other
    // side's MAC during the partition.
    let winner = MEMBERS[master_index(c)];
    for f in followers(c, &winner) {
        // The IPv6 entry is judged at takeovers; here the ones the data path uses.
        if f.ip == IpAddr::V6(VIP6) {
            continue;
        }
        match f.watch.moved_to(f.ip, &f.mac, healed) {
            Some(at) if at <= healed + NEIGH_WITHIN => row.notes.push(format!(
                "{} entry back on {} {} ms after healing",
                f.what,
                winner.name,
                ms(at.saturating_duration_since(healed))
            )),
            // Whichever advert crosses first, the winner announces again: it hears the other
            // side's lower advert, or the other side resigns (priority 0) when it steps down.
            other => {
                let v = format!(
                    "{}: {} entry not back on {} within {NEIGH_WITHIN:?} of healing ({:?})",
                    row.fault,
                    f.what,
                    winner.name,
                    other.map(|at| at.saturating_duration_since(healed))
                );
                row.notes.push(v.clone());
                report.violations.push(v);
            }
        }
    }
    if after > SPLIT_BRAIN_LIMIT {
        report.violations.push(format!(
            "{}: two masters for {} ms after healing (limit {} ms)",
            row.fault,
            ms(after),
            ms(SPLIT_BRAIN_LIMIT)
        ));
    }
    check_takeovers(c, &mut row, from, to, report);
    report.rows.push(row);
    Ok(())
}
