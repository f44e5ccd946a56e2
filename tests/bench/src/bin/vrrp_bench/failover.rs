//! Failovers of one case: the master stopped, the time until the backup holds the VIP.

use crate::args::Args;
use crate::daemons::{start, wait_for, Case, Daemon};
use crate::lab::Lab;
use crate::watcher::{Event, Watcher};
use std::process::Child;
use std::time::{Duration, Instant};

/// One failover.
pub struct Failover {
    /// Stop of the master → VIP present on the backup.
    pub time: Duration,
    /// Takeover minus the RFC time (positive: late).
    pub late: Option<f64>,
}

/// Runs one case: `runs` failovers of `daemon` with `kill9` or SIGTERM; the failovers, and
/// how many runs were skipped because the backup held the VIP from the start.
pub fn failovers(
    lab: &Lab,
    args: &Args,
    daemon: Daemon,
    case: &Case,
    kill9: bool,
    runs: usize,
) -> Result<(Vec<Failover>, usize), String> {
    let mut samples = Vec::new();
    let mut unstable = 0;
    let watcher = Watcher::start(&lab.node(1))?;
    for run in 0..runs {
        match failover(lab, args, daemon, case, kill9, run, &watcher)? {
            Some(f) => samples.push(f),
            None => unstable += 1,
        }
    }
    Ok((samples, unstable))
}

/// Run `run` of a case: the pair started afresh, the master stopped, the takeover timed.
/// None if the backup grabbed the VIP at start-up and kept it: not a failover to measure.
fn failover(
    lab: &Lab,
    args: &Args,
    daemon: Daemon,
    case: &Case,
    kill9: bool,
    run: usize,
    watcher: &Watcher,
) -> Result<Option<Failover>, String> {
    let (mdi, skew) = case.backup_timers();
    let settle = case.interval * 2 + Duration::from_millis(300);
    lab.kill_all(0, libc::SIGKILL);
    lab.kill_all(1, libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(50));
    lab.remove_vip(0);
    lab.remove_vip(1);
    watcher.take();
    let tag = format!(
        "{}-{}-{run}",
        case.label().replace(' ', ""),
        if kill9 { "kill" } else { "term" }
    );
    let mut master = start(lab, args, daemon, case, 0, 150, &tag)?;
    if !wait_for(mdi * 2 + Duration::from_secs(5), || lab.has_vip(0)) {
        return Err(format!(
            "{} never became master ({tag}); see {}",
            daemon.name(),
            lab.dir.display()
        ));
    }
    let mut backup = start(lab, args, daemon, case, 1, 100, &tag)?;
    std::thread::sleep(settle);
    if !wait_for(Duration::from_secs(2), || !lab.has_vip(1)) {
        // Counted and skipped.
        stop_pair(&mut master, &mut backup);
        return Ok(None);
    }
    let t0 = Instant::now();
    stop_master(lab, &master, kill9);
    let ok = wait_for(mdi + Duration::from_secs(3), || {
        watcher
            .events
            .lock()
            .expect("events")
            .iter()
            .any(|(t, e)| *t >= t0 && matches!(e, Event::VipAdded))
    });
    let events = watcher.take();
    stop_pair(&mut master, &mut backup);
    lab.kill_all(0, libc::SIGKILL);
    lab.kill_all(1, libc::SIGKILL);
    if !ok {
        return Err(format!(
            "{}: the backup never took over ({tag})",
            daemon.name()
        ));
    }
    let t_vip = events
        .iter()
        .find(|(t, e)| *t >= t0 && matches!(e, Event::VipAdded))
        .map(|(t, _)| *t)
        .expect("seen");
    let late = rfc_time(&events, t_vip, kill9, mdi, skew).map(|r| {
        if t_vip >= r {
            (t_vip - r).as_secs_f64()
        } else {
            -(r - t_vip).as_secs_f64()
        }
    });
    Ok(Some(Failover {
        time: t_vip - t0,
        late,
    }))
}

fn stop_master(lab: &Lab, master: &Child, kill9: bool) {
    if kill9 {
        // Freeze first: keepalived's parent would otherwise respawn a child killed a moment
        // before it (or the child resign on its parent's death), which is not what a dead
        // machine does.
        lab.kill_all(0, libc::SIGSTOP);
        lab.kill_all(0, libc::SIGKILL);
    } else {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(master.id() as i32, libc::SIGTERM) };
    }
}

fn stop_pair(master: &mut Child, backup: &mut Child) {
    let _ = master.kill();
    let _ = master.wait();
    let _ = backup.kill();
    let _ = backup.wait();
}

/// When the RFC says the backup takes over (VIP seen at `t_vip`): after `kill -9`, the last
/// advert heard plus the master-down interval; after a stop, the priority-0 advert plus the
/// skew time.
fn rfc_time(
    events: &[(Instant, Event)],
    t_vip: Instant,
    kill9: bool,
    mdi: Duration,
    skew: Duration,
) -> Option<Instant> {
    let before: Vec<&(Instant, Event)> = events.iter().filter(|(t, _)| *t <= t_vip).collect();
    if kill9 {
        before
            .iter()
            .rev()
            .find(|(_, e)| {
                matches!(e, Event::Advert { from_master: true, priority } if *priority > 0)
            })
            .map(|(t, _)| *t + mdi)
    } else {
        before
            .iter()
            .find(|(_, e)| {
                matches!(
                    e,
                    Event::Advert {
                        from_master: true,
                        priority: 0
                    }
                )
            })
            .map(|(t, _)| *t + skew)
    }
}
