//! The scenarios: each injects its fault on a schedule, measures every round with
//! [`Chaos::measure`], checks what the wire and the client saw, and lists the invariants it
//! broke. Which takeovers a scenario expects is part of it: a takeover while the master was
//! healthy (VRRP loss, a starved backup, lbd killed on the backup) is spurious.

mod config_server;
mod kills;
mod partition;
mod quiet_faults;
mod reals_flap;
mod reload_storm;
mod rolling_upgrade;
mod soak;
mod tables;
mod takeovers;

use std::time::Duration;

use super::lab::MEMBERS;
use super::{Chaos, Opts, Report, Row};
use config_server::config_server;
use kills::kill_round;
use partition::partition_round;
use quiet_faults::{quiet_fault, Fault};
use reals_flap::reals_flap;
use reload_storm::reload_storm;
use rolling_upgrade::rolling_upgrade;
use soak::soak;

/// A wait for one step inside a round (a restart, an apply).
const STEP: Duration = Duration::from_secs(90);
/// Most two masters may last once nothing keeps the balancers apart (the suite's invariant).
const SPLIT_BRAIN_LIMIT: Duration = Duration::from_secs(3);
/// The client's neighbour entry must name the new master within this.
const NEIGH_WITHIN: Duration = Duration::from_secs(5);

/// A fault and how it is repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// `kill -9` of lbd on the master.
    KillMaster,
    /// `kill -9` of lbd on the backup.
    KillBackup,
    /// Configs alternating every 200 ms.
    ReloadStorm,
    /// The config server gone, then back; answering garbage, a truncated body, 1 GiB, 1 byte a
    /// second, nothing; serving an unsigned and an invalid config.
    ConfigServer,
    /// A real's health flapping every 500 ms.
    RealsFlap,
    /// This percentage of VRRP packets lost between the balancers.
    VrrpLoss(u32),
    /// The backup's CPU saturated.
    BackupCpu,
    /// The balancers cut off each other, then healed.
    Partition,
    /// Both balancers rebooted in turn (the backup, a planned handover, the old master) with
    /// connection sync carrying the established connections.
    RollingUpgrade,
    /// Steady load, nothing else.
    Soak,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 12] = [
        Scenario::KillMaster,
        Scenario::KillBackup,
        Scenario::ReloadStorm,
        Scenario::ConfigServer,
        Scenario::RealsFlap,
        Scenario::VrrpLoss(10),
        Scenario::VrrpLoss(30),
        Scenario::VrrpLoss(60),
        Scenario::BackupCpu,
        Scenario::Partition,
        Scenario::RollingUpgrade,
        Scenario::Soak,
    ];

    /// The name on the command line.
    pub fn name(&self) -> String {
        match self {
            Scenario::KillMaster => "kill-master".into(),
            Scenario::KillBackup => "kill-backup".into(),
            Scenario::ReloadStorm => "reload-storm".into(),
            Scenario::ConfigServer => "config-server".into(),
            Scenario::RealsFlap => "reals-flap".into(),
            Scenario::VrrpLoss(p) => format!("vrrp-loss-{p}"),
            Scenario::BackupCpu => "backup-cpu".into(),
            Scenario::Partition => "partition".into(),
            Scenario::RollingUpgrade => "rolling-upgrade".into(),
            Scenario::Soak => "soak".into(),
        }
    }

    /// The scenario named `name` (`vrrp-loss-N` takes any N from 1 to 100).
    pub fn parse(name: &str) -> Option<Scenario> {
        if let Some(p) = name.strip_prefix("vrrp-loss-") {
            return p
                .parse()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .map(Scenario::VrrpLoss);
        }
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line on what it does.
    pub fn what(&self) -> String {
        match self {
            Scenario::KillMaster => "kill -9 of lbd on the master; init restarts it".into(),
            Scenario::KillBackup => "kill -9 of lbd on the backup; init restarts it".into(),
            Scenario::ReloadStorm => "configs alternating every 200 ms (a real added and removed, weights changed), each signed with a new serial".into(),
            Scenario::ConfigServer => "the config server gone, then back with a new config; then answering garbage, a truncated body, 1 GiB (declared and not), 1 byte a second, nothing at all; serving an unsigned and an invalid config".into(),
            Scenario::RealsFlap => "r2's health check flapping (up/down every 500 ms) on the web service; the echo service must stay untouched".into(),
            Scenario::VrrpLoss(p) => format!("{p} % of VRRP packets dropped on the bridge between the balancers"),
            Scenario::BackupCpu => "every vCPU of the backup saturated by busy loops (chaos --vcpus sets how many)".into(),
            Scenario::Partition => "the balancers cut off each other on the bridge (both become master), then healed".into(),
            Scenario::RollingUpgrade => "the backup rebooted into the next image (another initramfs, naming its release), a planned handover (the master's priority lowered by a reload), the old master rebooted and given its priority back".into(),
            Scenario::Soak => "steady load; init's and lbd's memory and descriptors sampled".into(),
        }
    }

    /// Whether it runs with keepalived doing VRRP (the VRRP scenarios, and the soak).
    pub fn with_keepalived(&self) -> bool {
        matches!(
            self,
            Scenario::VrrpLoss(_) | Scenario::BackupCpu | Scenario::Partition | Scenario::Soak
        )
    }

    /// Rounds and duration for a long run (`--rounds`, `--duration` override them).
    pub fn long(&self) -> Opts {
        let (rounds, secs) = match self {
            Scenario::KillMaster | Scenario::KillBackup => (20, 0),
            Scenario::ReloadStorm => (1, 60),
            Scenario::ConfigServer => (1, 300),
            Scenario::RealsFlap => (1, 60),
            Scenario::VrrpLoss(_) | Scenario::BackupCpu => (1, 120),
            Scenario::Partition => (20, 10),
            Scenario::RollingUpgrade => (3, 0),
            Scenario::Soak => (1, 1800),
        };
        Opts {
            rounds,
            duration: (secs > 0).then(|| Duration::from_secs(secs)),
        }
    }

    /// The test suite's short version.
    pub fn short(&self) -> Opts {
        let (rounds, secs) = match self {
            Scenario::KillMaster | Scenario::KillBackup => (1, 0),
            Scenario::ReloadStorm => (1, 8),
            Scenario::ConfigServer => (1, 8),
            Scenario::RealsFlap => (1, 10),
            Scenario::VrrpLoss(_) | Scenario::BackupCpu => (1, 15),
            Scenario::Partition => (1, 8),
            Scenario::RollingUpgrade => (1, 0),
            Scenario::Soak => (1, 30),
        };
        Opts {
            rounds,
            duration: (secs > 0).then(|| Duration::from_secs(secs)),
        }
    }
}

/// Runs `scenario` on the pair.
pub fn run(c: &mut Chaos, scenario: Scenario, opts: &Opts) -> Result<Report, String> {
    let mut report = Report {
        name: scenario.name(),
        what: scenario.what(),
        ..Report::default()
    };
    let dur = |default: u64| opts.duration.unwrap_or(Duration::from_secs(default));
    match scenario {
        Scenario::KillMaster | Scenario::KillBackup => {
            let master = scenario == Scenario::KillMaster;
            for _ in 0..opts.rounds {
                kill_round(c, master, &mut report)?;
            }
        }
        Scenario::ReloadStorm => reload_storm(c, dur(60), &mut report)?,
        Scenario::ConfigServer => config_server(c, dur(300), &mut report)?,
        Scenario::RealsFlap => reals_flap(c, dur(60), &mut report)?,
        Scenario::VrrpLoss(p) => {
            for _ in 0..opts.rounds {
                quiet_fault(c, Fault::Loss(p), dur(120), &mut report)?;
            }
        }
        Scenario::BackupCpu => {
            for _ in 0..opts.rounds {
                quiet_fault(c, Fault::BackupCpu, dur(120), &mut report)?;
            }
        }
        Scenario::Partition => {
            for _ in 0..opts.rounds {
                partition_round(c, dur(10), &mut report)?;
            }
        }
        Scenario::RollingUpgrade => {
            for _ in 0..opts.rounds {
                rolling_upgrade(c, &mut report)?;
            }
        }
        Scenario::Soak => soak(c, dur(1800), &mut report)?,
    }
    Ok(report)
}

/// Waits until a console line after `mark` contains `needle`; the line.
fn wait_line(c: &Chaos, who: usize, mark: usize, needle: &str) -> Result<String, String> {
    crate::wait::until_some(STEP, Duration::from_millis(200), || {
        c.pair[who]
            .console_since(mark)
            .into_iter()
            .find(|l| l.contains(needle))
    })
    .ok_or_else(|| {
        format!(
            "{}: no console line with {needle:?} within {STEP:?}",
            MEMBERS[who].name
        )
    })
}

/// Console lines of `who` after `mark` that contain `needle`.
fn lines_with(c: &Chaos, who: usize, mark: usize, needle: &str) -> Vec<String> {
    c.pair[who]
        .console_since(mark)
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

fn no_loss(report: &mut Report, row: &Row, what: &str) {
    if row.conns_lost > 0 {
        report.violations.push(format!(
            "{}: {} established connections lost ({what})",
            row.fault, row.conns_lost
        ));
    }
}

fn spurious(report: &mut Report, row: &mut Row) {
    for t in row.takeovers.clone() {
        row.notes.push(format!("spurious takeover {t}"));
        report
            .violations
            .push(format!("{}: spurious takeover {t}", row.fault));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses_from_its_name() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(&s.name()), Some(s));
        }
        assert_eq!(
            Scenario::parse("vrrp-loss-45"),
            Some(Scenario::VrrpLoss(45))
        );
        assert_eq!(Scenario::parse("vrrp-loss-0"), None);
        assert_eq!(Scenario::parse("vrrp-loss-101"), None);
        assert_eq!(Scenario::parse("kill"), None);
    }
}
