//! Faults during which the master stays healthy (VRRP loss, a starved backup): every
//! takeover is spurious.

use std::time::{Duration, Instant};

use super::takeovers::{check_takeovers, master_index, split_brain_after};
use super::{no_loss, spurious, SPLIT_BRAIN_LIMIT};
use crate::chaos::analysis::ms;
use crate::chaos::lab::MEMBERS;
use crate::chaos::{Chaos, Report};

/// A fault during which the master stays healthy: every takeover is spurious.
#[derive(Clone, Copy, Debug)]
pub(super) enum Fault {
    Loss(u32),
    BackupCpu,
}

pub(super) fn quiet_fault(
    c: &mut Chaos,
    fault: Fault,
    duration: Duration,
    report: &mut Report,
) -> Result<(), String> {
    c.settle()?;
    let marks = c.marks();
    let from = Instant::now();
    let mut busy = None;
    match fault {
        Fault::Loss(p) => c.lab.vrrp_loss(p)?,
        Fault::BackupCpu => {
            // Four busy loops per vCPU. They end by themselves: a starved guest loses
            // characters on its serial line, so a later `kill` typed into its shell may never
            // arrive whole.
            let backup = 1 - master_index(c);
            let before = c.pair[backup].sh("nproc; head -1 /proc/stat")?;
            c.pair[backup].sh(&format!(
                "for i in $(seq $((4 * $(nproc)))); do timeout -s KILL {} sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 & done",
                duration.as_secs().max(1)
            ))?;
            busy = Some((backup, before));
        }
    }
    std::thread::sleep(duration);
    let busy = match busy {
        Some((backup, before)) => {
            let after = c.pair[backup].sh("head -1 /proc/stat")?;
            Some((MEMBERS[backup].name, cpu_busy(&before, &after)))
        }
        None => None,
    };
    if let Fault::Loss(_) = fault {
        c.lab.vrrp_loss(0)?;
    }
    let healed = Instant::now();
    c.settle()?;
    let to = Instant::now();
    let label = match fault {
        Fault::Loss(p) => format!("{p} % VRRP loss for {:.0} s", duration.as_secs_f64()),
        Fault::BackupCpu => format!("backup's CPU saturated for {:.0} s", duration.as_secs_f64()),
    };
    let mut row = c.measure(label, from, to, marks);
    let after = split_brain_after(c, healed);
    row.notes.push(format!(
        "two masters for {} ms after the fault ended",
        ms(after)
    ));
    if after > SPLIT_BRAIN_LIMIT {
        report.violations.push(format!(
            "{}: two masters for {} ms after the fault ended",
            row.fault,
            ms(after)
        ));
    }
    check_takeovers(c, &mut row, from, to, report);
    match fault {
        // Losing adverts makes the backup take over at some rate: that is the figure.
        Fault::Loss(_) => {
            for t in row.takeovers.clone() {
                row.notes.push(format!("spurious takeover {t}"));
            }
        }
        Fault::BackupCpu => {
            match busy {
                Some((name, Some((vcpus, share)))) => row.notes.push(format!(
                    "{name}'s {vcpus} vCPU{} {:.0} % busy over the fault",
                    if vcpus == 1 { "" } else { "s" },
                    share * 100.0
                )),
                _ => row
                    .notes
                    .push("the backup's CPU use could not be read".to_string()),
            }
            spurious(report, &mut row);
            no_loss(report, &row, "a busy backup");
        }
    }
    report.rows.push(row);
    Ok(())
}

/// The vCPUs (`nproc`, first line of `before`) and the share of their time spent busy between
/// two readings of `/proc/stat`'s `cpu` line (idle and iowait are not busy).
fn cpu_busy(before: &str, after: &str) -> Option<(u32, f64)> {
    let vcpus: u32 = before.lines().next()?.trim().parse().ok()?;
    let times = |text: &str| -> Option<(u64, u64)> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        // guest and guest_nice are already counted in user and nice.
        let total = v.iter().take(8).sum::<u64>();
        Some((total, idle))
    };
    let (t0, i0) = times(before)?;
    let (t1, i1) = times(after)?;
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    let idle = i1.saturating_sub(i0);
    Some((vcpus, 1.0 - idle as f64 / total as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_comes_from_proc_stat() {
        let before = "2\ncpu  100 0 50 1000 10 0 0 0 0 0\n";
        let after = "cpu  1050 0 90 1040 10 0 5 0 0 0\n";
        let (vcpus, busy) = cpu_busy(before, after).unwrap();
        assert_eq!(vcpus, 2);
        // 1,035 ticks went by, 40 of them idle.
        assert!((busy - 995.0 / 1035.0).abs() < 1e-9, "{busy}");
        assert_eq!(cpu_busy("cpu  1 2 3 4\n", after), None);
        assert_eq!(cpu_busy(before, before), None);
    }
}
