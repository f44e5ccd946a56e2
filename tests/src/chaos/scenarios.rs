//! The scenarios: each injects its fault on a schedule, measures every round with
//! [`Chaos::measure`], checks what the wire and the client saw, and lists the invariants it
//! broke. Which takeovers a scenario expects is part of it: a takeover while the master was
//! healthy (VRRP loss, a starved backup, lbd killed on the backup) is spurious.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::analysis::{self, ms};
use super::lab::{
    Layout, Member, NeighWatch, Services, VrrpBy, ADVERT, GATEWAY, MEMBERS, NEXT_RELEASE,
    RELEASE_FILE, VIP, VIP6,
};
use super::{Chaos, Opts, Report, Row};
use crate::config_server::Mode;

/// A wait for one step inside a round (a restart, an apply).
const STEP: Duration = Duration::from_secs(90);
/// Most two masters may last once nothing keeps the balancers apart (the suite's invariant).
const SPLIT_BRAIN_LIMIT: Duration = Duration::from_secs(3);
/// A takeover must be announced (gratuitous ARP from the new master) within this.
const GARP_WITHIN: Duration = Duration::from_secs(2);
/// The client's neighbour entry must name the new master within this.
const NEIGH_WITHIN: Duration = Duration::from_secs(5);
/// lbd's RSS may grow this much over a scenario (KiB) before it counts as a leak.
const RSS_GROWTH_LIMIT_KIB: u64 = 4096;

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

/// The index of the current master on the wire (lb1 after a settle).
fn master_index(c: &Chaos) -> usize {
    let runs = c.masterships();
    let now = Instant::now();
    runs.iter()
        .rev()
        .find(|r| now.saturating_duration_since(r.to) < 2 * ADVERT)
        .and_then(|r| MEMBERS.iter().position(|m| IpAddr::V4(m.addr) == r.source))
        .unwrap_or(0)
}

/// A neighbour's entry that must follow the master: who keeps it, for which address, the MAC
/// it must name when `m` is master, and what to call it.
struct Follower<'a> {
    watch: &'a NeighWatch,
    ip: IpAddr,
    mac: String,
    what: &'static str,
}

impl Follower<'_> {
    /// Whether the entry named `m` (this follower's MAC for it) within [`NEIGH_WITHIN`] of `at`:
    /// the note saying when, or when it did move, if ever.
    fn moved(&self, m: &Member, at: Instant) -> Result<String, Option<Duration>> {
        match self.watch.moved_to(self.ip, &self.mac, at) {
            Some(when) if when <= at + NEIGH_WITHIN => Ok(format!(
                "{} entry on {} after {} ms",
                self.what,
                m.name,
                ms(when.saturating_duration_since(at))
            )),
            other => Err(other.map(|when| when.saturating_duration_since(at))),
        }
    }
}

/// The entries that follow master `m`: the client's for the VIP (and the IPv6 VIP, which only
/// lbd's pair has), and in the NAT layout r1's for the gateway, on `m`'s inside MAC.
fn followers<'a>(c: &'a Chaos, m: &Member) -> Vec<Follower<'a>> {
    let mut out = vec![Follower {
        watch: &c.lab.neigh,
        ip: IpAddr::V4(VIP),
        mac: m.mac.to_string(),
        what: "client's ARP",
    }];
    if c.lab.setup.vrrp == VrrpBy::Lbd {
        out.push(Follower {
            watch: &c.lab.neigh,
            ip: IpAddr::V6(VIP6),
            mac: m.mac.to_string(),
            what: "client's neighbour",
        });
    }
    if let (Layout::Nat, Some(watch)) = (c.lab.setup.layout, &c.lab.gateway_neigh) {
        out.push(Follower {
            watch,
            ip: IpAddr::V4(GATEWAY),
            mac: m.inside_mac.to_string(),
            what: "r1's gateway ARP",
        });
    }
    out
}

/// The wire at every takeover of [from, to): the new master's gratuitous ARP, and the
/// client's neighbour entries (and a NAT real's for the gateway) moving to its MAC; adds
/// notes and violations.
fn check_takeovers(c: &Chaos, row: &mut Row, from: Instant, to: Instant, report: &mut Report) {
    let runs = c.masterships();
    let events = c.lab.observer.events();
    for t in analysis::takeovers(&runs, from, to) {
        let Some(m) = MEMBERS.iter().find(|m| IpAddr::V4(m.addr) == t.source) else {
            continue;
        };
        let garp = events.iter().find(|e| {
            e.at + Duration::from_millis(200) >= t.at
                && e.at <= t.at + GARP_WITHIN
                && e.packet.announces(IpAddr::V4(VIP))
                && e.packet.link.src.0 == m.mac.0
        });
        match garp {
            Some(e) => row.notes.push(format!(
                "{} announced the VIP {} ms after its first advert",
                m.name,
                ms(e.at.saturating_duration_since(t.at))
            )),
            None => report.violations.push(format!(
                "{}: no gratuitous ARP for {VIP} from {} within {GARP_WITHIN:?} of its takeover",
                row.fault, m.name
            )),
        }
        if c.lab.setup.vrrp != VrrpBy::Lbd {
            // The anchor: reported, not judged.
            for f in followers(c, m) {
                row.notes
                    .push(f.moved(m, t.at).unwrap_or_else(|_| {
                        format!("{} entry did not move to {}", f.what, m.name)
                    }));
            }
            continue;
        }
        let na = events.iter().find(|e| {
            e.at + Duration::from_millis(200) >= t.at
                && e.at <= t.at + GARP_WITHIN
                && e.packet.announces(IpAddr::V6(VIP6))
                && e.packet.link.src.0 == m.mac.0
        });
        if na.is_none() {
            report.violations.push(format!(
                "{}: no unsolicited neighbour advertisement for {VIP6} from {} within {GARP_WITHIN:?} of its takeover",
                row.fault, m.name
            ));
        }
        // A takeover undone at once (the old master answered its first advert: a spurious
        // one under VRRP loss) may leave no trace in the neighbours' tables, which are
        // sampled: what matters is that they point at whoever holds the VIP once it settled.
        // Any longer takeover must move the entries.
        if let Some((holder, ended)) = undone_by(&runs, t.source, t.at) {
            let after = ended + NEIGH_WITHIN;
            let Some(holder) = MEMBERS.iter().find(|h| IpAddr::V4(h.addr) == holder) else {
                continue;
            };
            for f in followers(c, holder) {
                let entry = f.watch.entry_at(f.ip, after);
                if entry.as_deref() == Some(f.mac.as_str()) {
                    row.notes.push(format!(
                        "{}'s takeover undone by {} after {} ms; the {} entry on {} {NEIGH_WITHIN:?} later",
                        m.name,
                        holder.name,
                        ms(ended.saturating_duration_since(t.at)),
                        f.what,
                        holder.name
                    ));
                } else {
                    report.violations.push(format!(
                        "{}: {}'s takeover was undone by {}, but {NEIGH_WITHIN:?} later the {} entry for {} is {entry:?}, not {} ({})",
                        row.fault, m.name, holder.name, f.what, f.ip, holder.name, f.mac
                    ));
                }
            }
            continue;
        }
        for f in followers(c, m) {
            match f.moved(m, t.at) {
                Ok(note) => row.notes.push(note),
                Err(other) => report.violations.push(format!(
                    "{}: the {} entry for {} did not move to {} ({}) within {NEIGH_WITHIN:?} of its takeover (moved: {:?})",
                    row.fault,
                    f.what,
                    f.ip,
                    m.name,
                    f.mac,
                    other
                )),
            }
        }
    }
}

/// Who held the VIP after `source`'s takeover at `at`, when that mastership ended within one
/// advert interval (answered at once: a partition's takeover lasts) and another master went
/// on past it; with when it ended.
fn undone_by(
    runs: &[analysis::Mastership],
    source: IpAddr,
    at: Instant,
) -> Option<(IpAddr, Instant)> {
    let run = runs.iter().find(|r| r.source == source && r.from == at)?;
    if run.to >= at + ADVERT {
        return None;
    }
    let holder = runs
        .iter()
        .filter(|r| r.source != source && r.to > run.to && r.from <= run.to + NEIGH_WITHIN)
        .max_by_key(|r| r.to)?;
    Some((holder.source, run.to))
}

/// Two masters after `healed`: how long, at most, they lasted past it.
fn split_brain_after(c: &Chaos, healed: Instant) -> Duration {
    analysis::split_brain(&c.masterships())
        .iter()
        .filter(|(_, to)| *to > healed)
        .map(|(from, to)| *to - (*from).max(healed))
        .max()
        .unwrap_or_default()
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

fn kill_round(c: &mut Chaos, master: bool, report: &mut Report) -> Result<(), String> {
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

/// `ipvsadm -Ln`'s destinations: (service, real, weight).
fn destinations(listing: &str) -> BTreeSet<(String, String, u32)> {
    let mut out = BTreeSet::new();
    let mut service = String::new();
    for line in listing.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["TCP" | "UDP" | "SCTP", addr, ..] => service = addr.to_string(),
            ["->", real, _forward, weight, ..]
                if real.contains(':') && *real != "RemoteAddress:Port" =>
            {
                if let Ok(weight) = weight.parse() {
                    out.insert((service.clone(), real.to_string(), weight));
                }
            }
            _ => {}
        }
    }
    out
}

/// What `services` should look like in `ipvsadm -Ln` (all reals healthy).
fn expected_destinations(services: &Services, layout: Layout) -> BTreeSet<(String, String, u32)> {
    let mut out = BTreeSet::new();
    for (port, reals) in [(80, &services.web), (9000, &services.echo)] {
        for &(i, weight) in reals {
            out.insert((
                format!("{VIP}:{port}"),
                format!("{}:{port}", super::lab::REALS[i].addr_in(layout)),
                weight,
            ));
        }
    }
    out
}

fn ipvs_listing(c: &mut Chaos, who: usize) -> Result<String, String> {
    c.pair[who].sh("ipvsadm -Ln")
}

/// Waits until both balancers' tables hold `services`.
fn wait_tables(c: &mut Chaos, services: &Services) -> Result<Duration, String> {
    let want = expected_destinations(services, c.lab.setup.layout);
    let started = Instant::now();
    let mut last = Vec::new();
    let ok = crate::wait::until(STEP, Duration::from_millis(300), || {
        last.clear();
        for who in 0..2 {
            match ipvs_listing(c, who) {
                Ok(l) => last.push(destinations(&l)),
                Err(_) => return false,
            }
        }
        last.iter().all(|d| *d == want)
    });
    ok.map(|_| started.elapsed())
        .ok_or_else(|| format!("the tables did not become {want:?} within {STEP:?}: {last:?}"))
}

fn reload_storm(c: &mut Chaos, duration: Duration, report: &mut Report) -> Result<(), String> {
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

/// A config server fault: how the server misbehaves, or what bad config it serves.
#[derive(Clone, Debug)]
enum ServerFault {
    Mode(&'static str, Mode),
    Unsigned,
    Invalid,
}

fn config_server(c: &mut Chaos, gone_for: Duration, report: &mut Report) -> Result<(), String> {
    c.settle()?;
    // Gone for a long time, then back with a new config.
    let marks = c.marks();
    let from = Instant::now();
    c.lab.server_mode(Mode::Gone)?;
    c.lab.publish_all(&Services::storm_alternate())?;
    std::thread::sleep(gone_for);
    let applied_while_gone: usize = (0..2)
        .map(|w| lines_with(c, w, marks[w], "reloaded config").len())
        .sum();
    let back = Instant::now();
    c.lab.server_mode(Mode::Serve)?;
    let converged = wait_tables(c, &Services::storm_alternate())?;
    c.settle()?;
    let mut row = c.measure(
        format!(
            "server gone for {:.0} s, then back with a new config",
            gone_for.as_secs_f64()
        ),
        from,
        Instant::now(),
        marks,
    );
    row.notes.push(format!(
        "new config in both tables {} ms after the server came back",
        ms(converged)
    ));
    let _ = back;
    if applied_while_gone > 0 {
        report.violations.push(format!(
            "{applied_while_gone} configs applied while the server was gone"
        ));
    }
    no_loss(report, &row, "config server gone");
    spurious(report, &mut row);
    report.rows.push(row);

    // Each misbehaviour for a while, with a new config waiting behind it; then served.
    let hold = (gone_for / 2).max(Duration::from_secs(5));
    let faults = [
        ServerFault::Mode("garbage", Mode::Garbage),
        ServerFault::Mode("truncated body", Mode::Truncated),
        ServerFault::Mode("1 GiB body", Mode::Huge(1 << 30)),
        ServerFault::Mode(
            "1 GiB body, length not declared",
            Mode::HugeUndeclared(1 << 30),
        ),
        ServerFault::Mode(
            "1 byte a second",
            Mode::Slow {
                bytes_per_second: 1,
            },
        ),
        ServerFault::Mode("no answer", Mode::Blackhole),
        ServerFault::Unsigned,
        ServerFault::Invalid,
    ];
    let mut flip = false;
    for fault in faults {
        flip = !flip;
        let good = if flip {
            Services::default()
        } else {
            Services::storm_alternate()
        };
        let marks = c.marks();
        let from = Instant::now();
        let label = match &fault {
            ServerFault::Mode(label, mode) => {
                c.lab.publish_all(&good)?;
                c.lab.server_mode(*mode)?;
                label.to_string()
            }
            ServerFault::Unsigned => {
                for m in &MEMBERS {
                    let serial = c.lab.serial(m) + 1;
                    let text = c.lab.config_for(m, serial, &good);
                    c.lab.publish_raw(m, &text, false)?;
                }
                "a valid config without its signature".to_string()
            }
            ServerFault::Invalid => {
                for m in &MEMBERS {
                    let serial = c.lab.serial(m) + 1;
                    let text = c
                        .lab
                        .config_for(m, serial, &good)
                        .replace("scheduler = \"wrr\"", "scheduler = \"fastest\"");
                    let key_signed = true;
                    c.lab.publish_raw(m, &text, key_signed)?;
                }
                "a signed config that does not validate".to_string()
            }
        };
        std::thread::sleep(hold);
        let mut applied = 0;
        let mut said = Vec::new();
        for who in 0..2 {
            applied += lines_with(c, who, marks[who], "reloaded config").len();
            if let Some(l) = c.pair[who]
                .console_since(marks[who])
                .into_iter()
                .find(|l| l.contains("WARN") || l.contains("ERROR"))
            {
                said.push(format!("{} said: {}", MEMBERS[who].name, cause(&l)));
            }
            // One line per distinct cause, however often init polls.
            let refusals = lines_with(c, who, marks[who], "refused new config").len();
            if refusals > 2 {
                report.violations.push(format!(
                    "{label}: {} logged {refusals} refusals for one fault",
                    MEMBERS[who].name
                ));
            }
            if !lines_with(c, who, marks[who], "lbd exited").is_empty() {
                report
                    .violations
                    .push(format!("{label}: lbd exited on {}", MEMBERS[who].name));
            }
        }
        // Served properly again, with a good config: it must be applied.
        c.lab.server_mode(Mode::Serve)?;
        c.lab.publish_all(&good)?;
        let converged = wait_tables(c, &good)?;
        let mut row = c.measure(label.clone(), from, Instant::now(), marks);
        row.notes.push(format!(
            "good config in both tables {} ms after the server recovered",
            ms(converged)
        ));
        row.notes.extend(said);
        if applied > 0 {
            report.violations.push(format!(
                "{label}: {applied} configs applied during the fault"
            ));
        }
        no_loss(report, &row, "config server fault");
        spurious(report, &mut row);
        report.rows.push(row);
    }
    // Back to the default services, as every scenario starts.
    c.lab.publish_all(&Services::default())?;
    wait_tables(c, &Services::default())?;
    for (who, m) in MEMBERS.iter().enumerate() {
        let s = c.pair[who].stats()?;
        report.figures.push(format!(
            "{}: init RSS {} KiB after the faults (the 1 GiB bodies were cut at init's limit)",
            m.name, s.init.rss_kib
        ));
    }
    c.settle()?;
    Ok(())
}

/// The end of a refusal line: the innermost cause (after the last URL), at most 160 chars.
fn cause(line: &str) -> String {
    let from = line
        .rfind(".toml: ")
        .map_or(0, |i| i + 7)
        .max(line.rfind(".sig: ").map_or(0, |i| i + 6));
    let text = line[from..].trim();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 160 {
        format!("…{}", chars[chars.len() - 160..].iter().collect::<String>())
    } else {
        text.to_string()
    }
}

fn echo_destinations(c: &mut Chaos, who: usize) -> Result<BTreeSet<(String, String, u32)>, String> {
    let echo = format!("{VIP}:9000");
    Ok(destinations(&ipvs_listing(c, who)?)
        .into_iter()
        .filter(|(s, _, _)| *s == echo)
        .collect())
}

fn reals_flap(c: &mut Chaos, duration: Duration, report: &mut Report) -> Result<(), String> {
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

/// A fault during which the master stays healthy: every takeover is spurious.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Loss(u32),
    BackupCpu,
}

fn quiet_fault(
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

fn partition_round(c: &mut Chaos, duration: Duration, report: &mut Report) -> Result<(), String> {
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

/// Connection entries of the client's long connections (echo service) that `who` holds in
/// state ESTABLISHED: its own, or synced from the master.
fn synced_connections(c: &mut Chaos, who: usize) -> Result<usize, String> {
    let conns = c.pair[who].sh("ipvsadm -Lnc")?;
    let client = format!(" {}:", super::lab::CLIENT);
    let echo = format!(" {VIP}:9000 ");
    Ok(conns
        .lines()
        .filter(|l| l.contains("ESTABLISHED") && l.contains(&client) && l.contains(&echo))
        .count())
}

/// Reboots balancer `who` the orderly way (the power button: init stops lbd, which hands
/// over if master) into `image`, and waits until its lbd programmed IPVS.
fn reboot(c: &mut Chaos, who: usize, image: &crate::appliance::Image) -> Result<Duration, String> {
    let started = Instant::now();
    let m = MEMBERS[who];
    c.pair[who]
        .guest
        .guest
        .system_powerdown()
        .map_err(|e| format!("{}: power button: {e}", m.name))?;
    c.pair[who]
        .guest
        .guest
        .wait_exit(STEP)
        .map_err(|e| format!("{}: {e}", m.name))?;
    let fresh = super::lab::Balancer::boot(&c.lab, image, m, super::BOOT)?;
    c.pair[who] = fresh;
    c.pair[who]
        .guest
        .guest
        .expect(r"lbd:\s+INFO ipvs applied: .* 0 errors", super::BOOT)
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// Waits until `who` holds an entry for every long connection (synced from the master).
fn wait_synced(c: &mut Chaos, who: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let want = c.load.connections();
    let mut got = 0;
    crate::wait::until(STEP, Duration::from_millis(500), || {
        got = synced_connections(c, who).unwrap_or(0);
        got >= want
    })
    .map(|_| started.elapsed())
    .ok_or_else(|| {
        format!(
            "{} holds {got} of the {want} long connections' entries after {STEP:?}",
            MEMBERS[who].name
        )
    })
}

/// Waits until `who` is master on the wire.
fn wait_master(c: &Chaos, who: usize) -> Result<Duration, String> {
    let started = Instant::now();
    crate::wait::until(STEP, Duration::from_millis(200), || {
        master_index(c) == who && {
            let runs = c.masterships();
            runs.last()
                .is_some_and(|r| r.source == IpAddr::V4(MEMBERS[who].addr))
        }
    })
    .map(|_| started.elapsed())
    .ok_or_else(|| {
        format!(
            "{} did not become master within {STEP:?}",
            MEMBERS[who].name
        )
    })
}

/// The upgrade procedure of the README, with the long connections running throughout.
fn rolling_upgrade(c: &mut Chaos, report: &mut Report) -> Result<(), String> {
    if c.next_image.is_none() {
        c.next_image = Some(c.lab.next_image()?);
    }
    // Back and forth between the two images, round after round.
    let (image, release) = if c.running_next {
        (c.image.clone(), None)
    } else {
        (
            c.next_image.clone().expect("built above"),
            Some(NEXT_RELEASE.trim()),
        )
    };
    c.settle()?;
    let from = Instant::now();
    let marks = c.marks();
    let services = Services::default();
    let mut steps = Vec::new();
    let at = |from: Instant| from.elapsed().as_secs_f64();
    // 1. The backup reboots into the new image and syncs the established connections.
    reboot(c, 1, &image)?;
    steps.push(format!(
        "lb2 rebooted into {} by {:.1} s",
        running_release(c, 1, release)?,
        at(from)
    ));
    wait_synced(c, 1)?;
    steps.push(format!("lb2 synced every connection by {:.1} s", at(from)));
    // 2. Planned handover: the master's priority lowered below the backup's.
    c.lab.set_priority(&MEMBERS[0], Some(50), &services)?;
    steps.push(format!("lb1's priority lowered at {:.1} s", at(from)));
    wait_master(c, 1)?;
    steps.push(format!("lb2 master by {:.1} s", at(from)));
    // 3. The old master reboots (keeping the lowered priority, so it comes back as backup
    // and cannot take the VIP before it holds the connections) and syncs.
    reboot(c, 0, &image)?;
    steps.push(format!(
        "lb1 rebooted into {} by {:.1} s",
        running_release(c, 0, release)?,
        at(from)
    ));
    c.running_next = release.is_some();
    wait_synced(c, 0)?;
    steps.push(format!("lb1 synced by {:.1} s", at(from)));
    // 4. Its priority back: it preempts, the pair is as before.
    c.lab.set_priority(&MEMBERS[0], None, &services)?;
    steps.push(format!("lb1's priority restored at {:.1} s", at(from)));
    wait_master(c, 0)?;
    steps.push(format!("lb1 master by {:.1} s", at(from)));
    c.settle()?;
    let to = Instant::now();
    // The console marks of the rebooted guests restart at 0.
    let _ = marks;
    let mut row = c.measure("rolling upgrade".into(), from, to, [0, 0]);
    row.notes.extend(steps);
    if !row.takeovers.is_empty() {
        row.notes
            .push(format!("takeovers {}", row.takeovers.join(", ")));
    }
    check_takeovers(c, &mut row, from, to, report);
    no_loss(report, &row, "rolling upgrade");
    if row.split_brain.1 > SPLIT_BRAIN_LIMIT {
        report.violations.push(format!(
            "rolling upgrade: two masters for {} ms",
            ms(row.split_brain.1)
        ));
    }
    report.rows.push(row);
    Ok(())
}

/// What `who` runs, checked against `want` (`None`: the first image, without a release file).
fn running_release(c: &mut Chaos, who: usize, want: Option<&str>) -> Result<String, String> {
    let out = c.pair[who].sh(&format!("cat {RELEASE_FILE} 2>/dev/null || echo none"))?;
    let got = out.trim();
    let expected = want.unwrap_or("none");
    if got != expected {
        return Err(format!(
            "{} runs release {got:?} after the reboot, not {expected:?}",
            MEMBERS[who].name
        ));
    }
    Ok(match want {
        Some(r) => format!("the next image ({RELEASE_FILE}: {r})"),
        None => "the first image again".into(),
    })
}

fn soak(c: &mut Chaos, duration: Duration, report: &mut Report) -> Result<(), String> {
    c.settle()?;
    let marks = c.marks();
    let from = Instant::now();
    let samples = 10u32;
    let mut series: Vec<Vec<super::lab::GuestStats>> = vec![Vec::new(), Vec::new()];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_takeover_answered_at_once_counts_as_undone() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let lb1 = IpAddr::V4(MEMBERS[0].addr);
        let lb2 = IpAddr::V4(MEMBERS[1].addr);
        let run = |source, from, to| analysis::Mastership {
            source,
            from: at(from),
            to: at(to),
        };
        // lb1 master throughout; lb2 sends one advert as master (VRRP loss): undone by lb1.
        let spurious = [run(lb1, 0, 20_000), run(lb2, 5_900, 5_900)];
        assert_eq!(undone_by(&spurious, lb2, at(5_900)), Some((lb1, at(5_900))));
        // A partition: lb2 master for 5 s beside lb1, which goes on: a real takeover.
        let partition = [run(lb1, 0, 20_000), run(lb2, 5_000, 10_000)];
        assert_eq!(undone_by(&partition, lb2, at(5_000)), None);
        // lb2 takes over and keeps it: nothing undone.
        let failover = [run(lb1, 0, 5_000), run(lb2, 8_000, 20_000)];
        assert_eq!(undone_by(&failover, lb2, at(8_000)), None);
    }

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

    #[test]
    fn destinations_come_from_ipvsadm_listings() {
        let l = "IP Virtual Server version 1.2.1 (size=4096)\n\
                 Prot LocalAddress:Port Scheduler Flags\n\
                   -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                 TCP  10.72.0.100:80 wrr\n\
                   -> 10.72.0.21:80                Route   1      0          3\n\
                   -> 10.72.0.22:80                Route   0      0          0\n\
                 TCP  10.72.0.100:9000 wrr\n\
                   -> 10.72.0.21:9000              Route   1      4          0\n\
                   -> 10.72.0.22:9000              Route   1      4          0\n";
        let d = destinations(l);
        assert_eq!(d.len(), 4);
        assert!(d.contains(&("10.72.0.100:80".into(), "10.72.0.22:80".into(), 0)));
        let mut want = expected_destinations(&Services::default(), Layout::Dr);
        assert_ne!(d, want);
        want.remove(&("10.72.0.100:80".into(), "10.72.0.22:80".into(), 1));
        want.insert(("10.72.0.100:80".into(), "10.72.0.22:80".into(), 0));
        assert_eq!(d, want);
    }
}
