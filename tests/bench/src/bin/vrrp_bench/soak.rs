//! The soak: the pair at 20 ms adverts with every core busy.

use crate::args::Args;
use crate::daemons::{start, wait_for, Case, Daemon};
use crate::lab::Lab;
use crate::watcher::{Event, Watcher};
use lbd::vrrp::packet::Version;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What the backup heard during the soak.
pub struct Soak {
    /// Times the VIP appeared on the backup.
    pub spurious: usize,
    /// The longest gap between two of the master's adverts.
    pub longest_gap: Duration,
    pub adverts: usize,
}

/// `daemon`'s pair at 20 ms adverts for `secs` seconds, with twice as many busy loops as cores.
pub fn soak(lab: &Lab, args: &Args, daemon: Daemon, secs: u64) -> Result<Soak, String> {
    let case = Case {
        version: Version::V3,
        interval: Duration::from_millis(20),
    };
    lab.kill_all(0, libc::SIGKILL);
    lab.kill_all(1, libc::SIGKILL);
    lab.remove_vip(0);
    lab.remove_vip(1);
    let mut master = start(lab, args, daemon, &case, 0, 150, "soak")?;
    if !wait_for(Duration::from_secs(5), || lab.has_vip(0)) {
        return Err(format!("{} never became master (soak)", daemon.name()));
    }
    let mut backup = start(lab, args, daemon, &case, 1, 100, "soak")?;
    std::thread::sleep(Duration::from_millis(500));
    let watcher = Watcher::start(&lab.node(1))?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut burners: Vec<Child> = (0..cores * 2)
        .filter_map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .ok()
        })
        .collect();
    let start_t = Instant::now();
    let mut spurious = 0;
    let mut max_gap = Duration::ZERO;
    let mut last: Option<Instant> = None;
    let mut adverts = 0;
    while start_t.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(200));
        for (t, e) in watcher.take() {
            match e {
                Event::VipAdded => spurious += 1,
                Event::Advert {
                    from_master: true, ..
                } => {
                    adverts += 1;
                    if let Some(l) = last {
                        max_gap = max_gap.max(t - l);
                    }
                    last = Some(t);
                }
                _ => {}
            }
        }
    }
    for b in &mut burners {
        let _ = b.kill();
        let _ = b.wait();
    }
    let _ = master.kill();
    let _ = backup.kill();
    let _ = master.wait();
    let _ = backup.wait();
    Ok(Soak {
        spurious,
        longest_gap: max_gap,
        adverts,
    })
}
