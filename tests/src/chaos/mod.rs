//! The chaos suite: a real pair under constant traffic, faults injected on a schedule, and one
//! table per scenario of what clients and neighbours saw — measured on the wire and at the
//! client, not taken from lbd's log.
//!
//! [`Chaos::start`] builds the [`lab`], boots the two balancers from the test image (with the
//! lab's operator key, so every config is signed), waits for lb1 to be master as a third party
//! on the segment sees it, and starts the [`load`]. [`Chaos::run`] runs one [`Scenario`] for a
//! number of rounds and returns its [`Report`]: per round, the long connections lost, the short
//! requests that failed, the longest gap without a successful request, the longest pause of a
//! long connection, the takeovers and the time with two masters (from the adverts on the
//! wire), IPVS operations per second (from lbd's `ipvs applied` lines), and whatever the
//! scenario adds; per scenario, init's and lbd's memory and descriptors before and after.
//! [`Report::violations`] lists what breaks the suite's invariants; the test suite runs a
//! short version of every scenario and asserts there are none, and `cargo run --release -p
//! lbtest --bin chaos` runs the long ones and prints the tables.

pub mod analysis;
pub mod lab;
pub mod load;
pub mod scenarios;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use analysis::{Advert, Mastership};
use lab::{Balancer, GuestStats, Lab, ADVERT, MEMBERS, VIP, VRID};
use load::{Load, LoadSpec};

pub use scenarios::Scenario;

/// How long two TCG guests may take to boot at once on a busy 2-core machine.
pub const BOOT: Duration = Duration::from_secs(300);
/// How long the pair may take to settle after a fault (one master, traffic flowing).
pub const SETTLE: Duration = Duration::from_secs(120);
/// Adverts further apart than this end a run of mastership.
pub const RUN_GAP: Duration = Duration::from_millis(1500);

/// How long and how often a scenario runs.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// Rounds of the fault.
    pub rounds: usize,
    /// The length of a timed fault (a reload storm, a flap, a loss, a partition, a soak); each
    /// scenario has its own default.
    pub duration: Option<Duration>,
}

/// One round's figures.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// What the round did (e.g. `kill -9 lbd on lb1`).
    pub fault: String,
    /// How long the round lasted (fault and recovery).
    pub length: Duration,
    /// Long connections lost.
    pub conns_lost: usize,
    /// Short requests that failed, and how many were sent.
    pub requests_failed: usize,
    /// Short requests sent.
    pub requests: usize,
    /// The longest time without a successful short request.
    pub longest_gap: Duration,
    /// The longest pause of a long connection.
    pub longest_pause: Duration,
    /// VRRP takeovers seen on the wire (`lb2<-lb1` each).
    pub takeovers: Vec<String>,
    /// Time with two masters on the wire: total and longest.
    pub split_brain: (Duration, Duration),
    /// IPVS operations on both balancers per second of the round.
    pub ipvs_ops_per_s: f64,
    /// Anything else the scenario measured, one item each.
    pub notes: Vec<String>,
}

/// A scenario's result.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// What it does.
    pub what: String,
    /// Its rounds.
    pub rows: Vec<Row>,
    /// Who was master over the whole scenario (`lb1 0.0–12.3 s` ...), from the wire.
    pub holders: String,
    /// Each balancer's stats at the start and the end.
    pub stats: Vec<(String, GuestStats, GuestStats)>,
    /// Figures of the scenario as a whole.
    pub figures: Vec<String>,
    /// Broken invariants (empty when the scenario passed).
    pub violations: Vec<String>,
}

impl Report {
    /// The table, as printed.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {}: {}", self.name, self.what);
        let _ = writeln!(
            out,
            "{:>5} {:>9} {:>6} {:>10} {:>8} {:>8} {:>10} {:>14} {:>8}  fault / notes",
            "round",
            "length s",
            "lost",
            "failed",
            "gap ms",
            "pause ms",
            "takeovers",
            "2 masters ms",
            "ipvs/s"
        );
        for (i, r) in self.rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>5} {:>9.1} {:>6} {:>10} {:>8} {:>8} {:>10} {:>14} {:>8.2}  {}{}",
                i + 1,
                r.length.as_secs_f64(),
                r.conns_lost,
                format!("{}/{}", r.requests_failed, r.requests),
                analysis::ms(r.longest_gap),
                analysis::ms(r.longest_pause),
                r.takeovers.len(),
                format!(
                    "{}/{}",
                    analysis::ms(r.split_brain.0),
                    analysis::ms(r.split_brain.1)
                ),
                r.ipvs_ops_per_s,
                r.fault,
                if r.notes.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.notes.join("; "))
                }
            );
        }
        let sum = |f: fn(&Row) -> usize| self.rows.iter().map(f).sum::<usize>();
        let max = |f: fn(&Row) -> Duration| self.rows.iter().map(f).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "  all {} rounds: {} long connections lost, {}/{} requests failed, longest gap {} ms, longest pause {} ms, {} takeovers ({} spurious), two masters {} ms in all (longest {} ms)",
            self.rows.len(),
            sum(|r| r.conns_lost),
            sum(|r| r.requests_failed),
            sum(|r| r.requests),
            analysis::ms(max(|r| r.longest_gap)),
            analysis::ms(max(|r| r.longest_pause)),
            sum(|r| r.takeovers.len()),
            self.spurious(),
            analysis::ms(self.rows.iter().map(|r| r.split_brain.0).sum()),
            analysis::ms(max(|r| r.split_brain.1)),
        );
        let _ = writeln!(out, "  VIP holders (wire): {}", self.holders);
        for (name, a, b) in &self.stats {
            let lbd = |s: &GuestStats| {
                s.lbd
                    .map(|p| format!("{} KiB {} fds", p.rss_kib, p.fds))
                    .unwrap_or_else(|| "not running".into())
            };
            let _ = writeln!(
                out,
                "  {name}: init {} KiB {} fds -> {} KiB {} fds; lbd {} -> {}",
                a.init.rss_kib,
                a.init.fds,
                b.init.rss_kib,
                b.init.fds,
                lbd(a),
                lbd(b)
            );
        }
        for f in &self.figures {
            let _ = writeln!(out, "  {f}");
        }
        if self.violations.is_empty() {
            let _ = writeln!(out, "  invariants: held");
        } else {
            for v in &self.violations {
                let _ = writeln!(out, "  VIOLATION: {v}");
            }
        }
        out
    }

    /// Takeovers in scenarios where the master never failed (the scenario marks them).
    pub fn spurious(&self) -> usize {
        self.rows
            .iter()
            .flat_map(|r| &r.notes)
            .filter(|n| n.starts_with("spurious takeover"))
            .count()
    }
}

/// Every broken invariant of `reports`, each prefixed with its scenario's name.
pub fn broken(reports: &[Report]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.violations.iter().map(move |v| format!("{}: {v}", r.name)))
        .collect()
}

/// What lbd (the same process) or init may grow by over one scenario, KiB: more is a leak.
/// init's allowance covers the buffers of a config body at its 4 MiB limit, which the
/// allocator keeps once they were used.
pub const LBD_GROWTH_KIB: u64 = 4096;
/// See [`LBD_GROWTH_KIB`].
pub const INIT_GROWTH_KIB: u64 = 12288;

/// Descriptors lbd may gain over one scenario: a backup that becomes master for the first time
/// opens its announcement sockets (gratuitous ARP, unsolicited NA, unicast adverts) and keeps
/// them (a pair's backup goes from 25 to 28 after its first mastership and stays there however
/// many follow; the master starts with them). A leak grows with every round instead.
pub const LBD_FD_GROWTH: u64 = 4;

/// Why the memory or descriptors from `a` to `b` look like a leak, if they do.
pub fn memory_growth(a: &GuestStats, b: &GuestStats) -> Option<String> {
    if b.init.rss_kib > a.init.rss_kib + INIT_GROWTH_KIB || b.init.fds > a.init.fds + 2 {
        return Some(format!(
            "init grew from {} KiB, {} fds to {} KiB, {} fds",
            a.init.rss_kib, a.init.fds, b.init.rss_kib, b.init.fds
        ));
    }
    match (a.lbd, b.lbd) {
        // A restarted lbd is another process.
        (Some(x), Some(y)) if a.lbd_pid == b.lbd_pid => {
            (y.rss_kib > x.rss_kib + LBD_GROWTH_KIB || y.fds > x.fds + LBD_FD_GROWTH).then(|| {
                format!(
                    "lbd grew from {} KiB, {} fds to {} KiB, {} fds",
                    x.rss_kib, x.fds, y.rss_kib, y.fds
                )
            })
        }
        _ => None,
    }
}

/// The lab, the booted pair and the load.
pub struct Chaos {
    /// The load (dropped first: its threads stop before the network goes).
    pub load: Load,
    /// The balancers.
    pub pair: [Balancer; 2],
    /// The network and servers.
    pub lab: Lab,
    /// The image the balancers boot (and reboot into).
    pub image: crate::appliance::Image,
    /// The image a rolling upgrade moves to (built at the first upgrade).
    pub next_image: Option<crate::appliance::Image>,
    /// Whether the balancers run `next_image` now (rolling upgrades go back and forth).
    pub running_next: bool,
    /// When the pair was booted.
    pub t0: Instant,
}

impl Chaos {
    /// Builds the lab and the image, boots the pair, waits for lb1 to be master and the load
    /// to flow. `limit` bounds the load's threads.
    pub fn start(limit: Duration, setup: lab::Setup) -> Result<Chaos, String> {
        let vrrp = setup.vrrp;
        let lab = Lab::start(setup)?;
        let image = lab.image()?;
        let t0 = Instant::now();
        let mut pair = lab.boot(&image, BOOT)?;
        for b in &pair {
            b.guest
                .guest
                .expect(r"lbd:\s+INFO ipvs applied: .* 0 errors", BOOT)
                .map_err(|e| e.to_string())?;
        }
        eprintln!(
            "chaos: both balancers booted and programmed IPVS in {:.1?}",
            t0.elapsed()
        );
        if vrrp == lab::VrrpBy::Keepalived {
            for b in &mut pair {
                lab.start_keepalived(b)?;
            }
        }
        let load = Load::start(
            &lab.client,
            LoadSpec::new(
                SocketAddr::new(IpAddr::V4(VIP), 80),
                SocketAddr::new(IpAddr::V4(VIP), 9000),
                limit,
            ),
        );
        let mut chaos = Chaos {
            load,
            pair,
            lab,
            image,
            next_image: None,
            running_next: false,
            t0,
        };
        chaos.settle()?;
        Ok(chaos)
    }

    /// The adverts of the pair's VRID the observer saw.
    pub fn adverts(&self) -> Vec<Advert> {
        analysis::ipv4_adverts(&self.lab.observer.events(), VRID)
    }

    /// Runs of mastership on the wire.
    pub fn masterships(&self) -> Vec<Mastership> {
        analysis::masterships(&self.adverts(), RUN_GAP)
    }

    /// Waits until lb1 alone has been master for three adverts, the long connections all
    /// echo and short requests succeed.
    pub fn settle(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let lb1 = IpAddr::V4(MEMBERS[0].addr);
        let mut why = String::new();
        let ok = crate::wait::until(SETTLE, Duration::from_millis(250), || {
            let now = Instant::now();
            let since = now - 3 * ADVERT - ADVERT / 2;
            let recent: Vec<Advert> = self
                .adverts()
                .into_iter()
                .filter(|a| a.at >= since)
                .collect();
            // The last one recent too: adverts from before a fault must not count.
            let fresh = recent
                .last()
                .is_some_and(|a| now.saturating_duration_since(a.at) < RUN_GAP);
            if !fresh
                || recent.len() < 3
                || recent.iter().any(|a| a.source != lb1 || a.priority == 0)
            {
                why = format!("adverts of the last 3.5 s: {recent:?}");
                return false;
            }
            let record = self.load.record();
            let window = now - Duration::from_secs(1);
            let echoing: std::collections::BTreeSet<usize> = record
                .echoes
                .iter()
                .rev()
                .take_while(|(at, _)| *at >= window)
                .map(|(_, s)| *s)
                .collect();
            let last: Vec<&load::Request> = record.requests.iter().rev().take(5).collect();
            if echoing.len() < self.load.connections() {
                why = format!(
                    "{} of {} long connections echoed in the last second",
                    echoing.len(),
                    self.load.connections()
                );
                return false;
            }
            if last.len() < 5 || last.iter().any(|r| r.outcome.is_err()) {
                why = format!("the last short requests: {last:?}");
                return false;
            }
            true
        });
        match ok {
            Some(_) => Ok(started.elapsed()),
            None => Err(format!("the pair did not settle within {SETTLE:?}: {why}")),
        }
    }

    /// Reads both balancers' stats.
    pub fn stats(&mut self) -> Result<Vec<GuestStats>, String> {
        self.pair.iter_mut().map(|b| b.stats()).collect()
    }

    /// The balancer whose address is `ip`.
    pub fn name_of(ip: IpAddr) -> &'static str {
        MEMBERS
            .iter()
            .find(|m| IpAddr::V4(m.addr) == ip)
            .map_or("?", |m| m.name)
    }

    /// The figures of [from, to): what clients saw, the wire, IPVS operations (from the
    /// console lines since `marks`).
    pub fn measure(&self, fault: String, from: Instant, to: Instant, marks: [usize; 2]) -> Row {
        let record = self.load.record();
        let requests: Vec<&load::Request> = record.requests_in(from, to).collect();
        let runs = self.masterships();
        let in_window: Vec<Mastership> = runs
            .iter()
            .filter(|r| r.to >= from && r.from < to)
            .copied()
            .collect();
        let sb = analysis::split_brain(&in_window);
        let clipped: Vec<(Instant, Instant)> = sb
            .iter()
            .map(|(a, b)| ((*a).max(from), (*b).min(to)))
            .filter(|(a, b)| a < b)
            .collect();
        let ops: u64 = self
            .pair
            .iter()
            .zip(marks)
            .flat_map(|(b, mark)| b.console_since(mark))
            .filter_map(|l| analysis::ipvs_operations(&l))
            .sum();
        let length = to - from;
        let failed: Vec<Duration> = requests
            .iter()
            .filter(|r| r.outcome.is_err())
            .map(|r| r.at.saturating_duration_since(from))
            .collect();
        let mut notes = Vec::new();
        if let (Some(first), Some(last)) = (failed.first(), failed.last()) {
            // Why they failed, most common first: a timed-out connect (a dropped SYN) and a
            // refused one (a reset) point at different culprits.
            let mut why: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &requests {
                if let Err(e) = &r.outcome {
                    *why.entry(e.as_str()).or_default() += 1;
                }
            }
            let mut why: Vec<(&str, usize)> = why.into_iter().collect();
            why.sort_by_key(|w| std::cmp::Reverse(w.1));
            let why: Vec<String> = why
                .iter()
                .take(3)
                .map(|(e, n)| format!("{n}x {e}"))
                .collect();
            notes.push(format!(
                "requests failed between {:.1} and {:.1} s into the round: {}",
                first.as_secs_f64(),
                last.as_secs_f64(),
                why.join(", ")
            ));
        }
        Row {
            fault,
            length,
            conns_lost: record.lost_in(from, to).len(),
            requests_failed: requests.iter().filter(|r| r.outcome.is_err()).count(),
            requests: requests.len(),
            longest_gap: record.longest_gap(from, to),
            longest_pause: record.longest_pause(from, to),
            takeovers: analysis::takeovers(&runs, from, to)
                .iter()
                .map(|t| {
                    format!(
                        "{}<-{}",
                        Self::name_of(t.source),
                        t.previous.map_or("none", Self::name_of)
                    )
                })
                .collect(),
            split_brain: analysis::total_and_longest(&clipped),
            ipvs_ops_per_s: ops as f64 / length.as_secs_f64().max(0.001),
            notes,
        }
    }

    /// Console line counts of both balancers (marks for [`Chaos::measure`]).
    pub fn marks(&self) -> [usize; 2] {
        [self.pair[0].console_len(), self.pair[1].console_len()]
    }

    /// Who held the VIP over [from, to), relative to `from`: `lb1 0.0–12.3 s, lb2 ...`.
    pub fn holders(&self, from: Instant, to: Instant) -> String {
        let runs = self.masterships();
        let parts: Vec<String> = runs
            .iter()
            .filter(|r| r.to >= from && r.from < to)
            .map(|r| {
                format!(
                    "{} {:.1}–{:.1} s",
                    Self::name_of(r.source),
                    r.from.saturating_duration_since(from).as_secs_f64(),
                    r.to.min(to).saturating_duration_since(from).as_secs_f64()
                )
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// The unicast instance's adverts since `from`: on the bridge, only to the balancers; on
    /// the client's port, none at all.
    /// While a balancer reboots its MAC is unknown to the bridge, which floods the unicast
    /// adverts sent to it (as a switch does): `peers_up` says whether both stayed up.
    fn check_unicast(&self, from: Instant, peers_up: bool, report: &mut Report) {
        let peers: std::collections::BTreeSet<IpAddr> =
            MEMBERS.iter().map(|m| IpAddr::V4(m.addr)).collect();
        let on_bridge = crate::wire::adverts_to(&self.lab.observer.since(from), lab::VRID_UNICAST);
        let at_client =
            crate::wire::adverts(&self.lab.client_port.since(from), lab::VRID_UNICAST).count();
        report.figures.push(format!(
            "unicast instance (vrid {}): adverts on the bridge to {on_bridge:?}, {at_client} on the client's port",
            lab::VRID_UNICAST
        ));
        if on_bridge.is_empty() || !on_bridge.is_subset(&peers) {
            report.violations.push(format!(
                "unicast adverts went to {on_bridge:?}, not only to the peers {peers:?}"
            ));
        }
        if at_client > 0 && peers_up {
            report.violations.push(format!(
                "{at_client} unicast adverts reached the client's port, which is no peer"
            ));
        }
    }

    /// The anchor is only worth its figures while keepalived runs whole on both balancers: its
    /// parent, VRRP and checker processes. A backup's VRRP process that died or hung shows on
    /// the wire only when it should take over, so it is looked for at the end of every
    /// scenario (with the end of its log when it is gone).
    fn check_keepalived(&mut self, report: &mut Report) -> Result<(), String> {
        for (who, m) in MEMBERS.iter().enumerate() {
            let out = self.pair[who].sh(
                "for p in $(pidof keepalived); do echo \"$p $(cut -d' ' -f3 /proc/$p/stat)\"; done",
            )?;
            let states: Vec<&str> = out
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .collect();
            report.figures.push(format!(
                "{}: {} keepalived processes (states {})",
                m.name,
                states.len(),
                states.join(" ")
            ));
            if states.len() < 3 || states.iter().any(|s| matches!(*s, "Z" | "T" | "D")) {
                let log = self.pair[who].sh("tail -n 5 /tmp/keepalived.log")?;
                report.violations.push(format!(
                    "{}: keepalived is not whole ({} processes, states {:?}); its log ends:\n{log}",
                    m.name,
                    states.len(),
                    states
                ));
            }
        }
        Ok(())
    }

    /// Runs the short version of each of `scenarios` (the test suite's), printing each table to
    /// stderr; the reports, or why the lab failed.
    pub fn run_short(&mut self, scenarios: &[Scenario]) -> Result<Vec<Report>, String> {
        let mut reports = Vec::new();
        for s in scenarios {
            let report = self
                .run(*s, &s.short())
                .map_err(|e| format!("{}: {e}", s.name()))?;
            eprintln!("{}", report.table());
            reports.push(report);
        }
        Ok(reports)
    }

    /// Runs `scenario` and returns its report (an error when the lab itself failed: a guest
    /// shell that no longer answers, a pair that never settled).
    pub fn run(&mut self, scenario: Scenario, opts: &Opts) -> Result<Report, String> {
        let before = self.stats()?;
        let from = Instant::now();
        let mut report = scenarios::run(self, scenario, opts)?;
        self.settle()?;
        let after = self.stats()?;
        match self.lab.setup.vrrp {
            lab::VrrpBy::Lbd => {
                self.check_unicast(from, scenario != Scenario::RollingUpgrade, &mut report)
            }
            lab::VrrpBy::Keepalived => self.check_keepalived(&mut report)?,
        }
        report.holders = self.holders(from, Instant::now());
        report.stats = MEMBERS
            .iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(m, (a, b))| (m.name.to_string(), *a, *b))
            .collect();
        for (name, a, b) in &report.stats {
            if let Some(grew) = memory_growth(a, b) {
                report.violations.push(format!("{name}: {grew}"));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::lab::ProcStats;
    use super::*;

    fn stats(init: u64, lbd: u64, pid: u32) -> GuestStats {
        GuestStats {
            init: ProcStats {
                rss_kib: init,
                fds: 11,
            },
            lbd: Some(ProcStats {
                rss_kib: lbd,
                fds: 25,
            }),
            lbd_pid: Some(pid),
        }
    }

    #[test]
    fn growth_is_judged_per_process() {
        assert_eq!(
            memory_growth(&stats(6000, 6000, 90), &stats(6100, 6500, 90)),
            None
        );
        assert!(
            memory_growth(&stats(6000, 6000, 90), &stats(6000, 11000, 90))
                .is_some_and(|w| w.starts_with("lbd grew"))
        );
        // Another lbd after a restart is not growth.
        assert_eq!(
            memory_growth(&stats(6000, 6000, 90), &stats(6000, 11000, 120)),
            None
        );
        assert!(
            memory_growth(&stats(6000, 6000, 90), &stats(19000, 6000, 90))
                .is_some_and(|w| w.starts_with("init grew"))
        );
    }
}
