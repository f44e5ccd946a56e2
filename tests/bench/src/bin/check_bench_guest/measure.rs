//! One checker and kind measured: the warm-up, the window, and its figures.

use crate::guest::{ipvs_dests, run, start_checker, stop_checker};
use crate::lab::Lab;
use crate::opts::{Checker, Kind, Opts};
use crate::sample::{sample_command, Sample};
use crate::CMD;
use lbtest::ipvs::GuestShell;
use std::time::{Duration, Instant};

/// The guest's USER_HZ (always 100 on x86).
const CLK_TCK: f64 = 100.0;
/// How long a checker may take to reach its steady state (IPVS loaded, every real checked).
pub const WARMUP_LIMIT: Duration = Duration::from_secs(300);

/// What one checker did over the window.
pub struct Figures {
    pub kind: Kind,
    pub checker: Checker,
    reals: usize,
    /// Seconds from start to the steady state (None: never reached within the limit).
    warmup: Option<f64>,
    /// Served per second, host clock.
    pub accepted_per_s: f64,
    answered_per_s: f64,
    /// Share of one core, guest clock.
    user: f64,
    system: f64,
    check_thread: Option<f64>,
    /// Processes counted.
    processes: usize,
    guest_busy: f64,
    /// The guest's busy time split: user, system, irq, softirq (shares of its time).
    guest_split: [f64; 4],
    /// Wake-ups of the checker a second (its threads' voluntary sleeps).
    wakeups: f64,
    /// (VmRSS, VmHWM) KiB per process.
    memory: Vec<(u64, u64)>,
    window: f64,
}

impl Figures {
    pub fn cpu(&self) -> f64 {
        self.user + self.system
    }
    fn rss_kib(&self) -> u64 {
        self.memory.iter().map(|m| m.0).sum()
    }
}

/// Starts `checker` for `kind`, waits for its steady state, measures it over the window,
/// prints the figures and stops it.
pub fn measure(
    lab: &Lab,
    sh: &mut GuestShell,
    opts: &Opts,
    checker: Checker,
    kind: Kind,
) -> Result<Figures, String> {
    let port = checker.port(kind);
    let comm = checker.name();
    let started = Instant::now();
    start_checker(lab, sh, opts, checker, kind)?;
    let warmup = warm_up(lab, sh, opts, checker, kind, started)?;
    std::thread::sleep(Duration::from_secs(opts.settle));

    let cmd = sample_command(comm);
    let (h0, c0) = (Instant::now(), lab.served(port));
    let s0 = Sample::parse(&run(sh, &cmd, CMD)?)?;
    std::thread::sleep(Duration::from_secs(opts.seconds));
    let s1 = Sample::parse(&run(sh, &cmd, CMD)?)?;
    let (h1, c1) = (Instant::now(), lab.served(port));
    if s1.procs.is_empty() {
        return Err(format!("no {comm} process in the guest"));
    }
    let host_window = (h1 - h0).as_secs_f64();
    let figures = Figures {
        warmup,
        accepted_per_s: (c1.0 - c0.0) as f64 / host_window,
        answered_per_s: (c1.1 - c0.1) as f64 / host_window,
        ..Figures::from_samples(&s0, &s1, kind, checker, opts.reals)
    };
    print_figures(&figures);
    stop_checker(lab, sh, checker)?;
    Ok(figures)
}

/// Waits until every real is in IPVS with a weight and nearly N checks were served in 2 s;
/// the seconds that took from `started` (None: not within [`WARMUP_LIMIT`]).
fn warm_up(
    lab: &Lab,
    sh: &mut GuestShell,
    opts: &Opts,
    checker: Checker,
    kind: Kind,
    started: Instant,
) -> Result<Option<f64>, String> {
    let port = checker.port(kind);
    let mut last = (Instant::now(), lab.served(port).1);
    while started.elapsed() < WARMUP_LIMIT {
        std::thread::sleep(Duration::from_secs(2));
        let (_, weighted) = ipvs_dests(sh)?;
        let now = (Instant::now(), lab.served(port).1);
        let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
        last = now;
        eprintln!(
            "check-bench: {} {}: {:.0}s: {weighted} of {} reals weighted in IPVS, {rate:.0} checks/s",
            kind.name(),
            checker.name(),
            started.elapsed().as_secs_f64(),
            opts.reals
        );
        if weighted >= opts.reals && rate >= 0.9 * opts.reals as f64 {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
    }
    Ok(None)
}

impl Figures {
    /// The guest's figures between two samples (the host's rates and the warm-up left at 0).
    fn from_samples(s0: &Sample, s1: &Sample, kind: Kind, checker: Checker, reals: usize) -> Self {
        let window = s1.uptime - s0.uptime;
        // Processes alive through the whole window (keepalived's parent and checker child).
        let (mut user, mut system) = (0u64, 0u64);
        for (pid, (u1, st1)) in &s1.procs {
            let (u0, st0) = s0.procs.get(pid).copied().unwrap_or((0, 0));
            user += u1.saturating_sub(u0);
            system += st1.saturating_sub(st0);
        }
        let share = |ticks: u64| ticks as f64 / CLK_TCK / window;
        let check_thread = match (s0.check_thread, s1.check_thread) {
            (Some(a), Some(b)) => Some(share((b.0 + b.1).saturating_sub(a.0 + a.1))),
            _ => None,
        };
        let guest_total = (s1.guest.1 - s0.guest.1).max(1) as f64;
        let guest_busy = (s1.guest.0 - s0.guest.0) as f64 / guest_total;
        let guest_split: [f64; 4] = std::array::from_fn(|i| {
            s1.guest_split[i].saturating_sub(s0.guest_split[i]) as f64 / guest_total
        });
        Figures {
            kind,
            checker,
            reals,
            warmup: None,
            accepted_per_s: 0.0,
            answered_per_s: 0.0,
            user: share(user),
            system: share(system),
            check_thread,
            processes: s1.procs.len(),
            guest_busy,
            guest_split,
            wakeups: s1.sleeps.saturating_sub(s0.sleeps) as f64 / window,
            memory: s1.memory.values().copied().collect(),
            window,
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_figures(f: &Figures) {
    let who = format!("{} {}", f.kind.name(), f.checker.name());
    println!(
        "figure: {who} checks {:.0}/s ({:.1}% of {} reals x 1/s; {:.0}/s answered){}",
        f.accepted_per_s,
        100.0 * f.accepted_per_s / f.reals as f64,
        f.reals,
        f.answered_per_s,
        match f.warmup {
            Some(w) => format!(", steady after {w:.0}s"),
            None => format!(
                ", NOT steady within {}s (measured anyway)",
                WARMUP_LIMIT.as_secs()
            ),
        }
    );
    println!(
        "figure: {who} cpu {:.1}% of one core (user {:.1}%, sys {:.1}%; {} process{}{}) over {:.0}s, guest busy {:.0}% (user {:.0}%, sys {:.0}%, irq {:.0}%, softirq {:.0}%)",
        100.0 * f.cpu(),
        100.0 * f.user,
        100.0 * f.system,
        f.processes,
        if f.processes == 1 { "" } else { "es" },
        f.check_thread
            .map(|c| format!("; check thread {:.1}%", 100.0 * c))
            .unwrap_or_default(),
        f.window,
        100.0 * f.guest_busy,
        100.0 * f.guest_split[0],
        100.0 * f.guest_split[1],
        100.0 * f.guest_split[2],
        100.0 * f.guest_split[3],
    );
    println!("figure: {who} wakeups {:.0}/s", f.wakeups);
    println!(
        "figure: {who} rss {:.1} MiB (per process: {})",
        mib(f.rss_kib()),
        f.memory
            .iter()
            .map(|(rss, hwm)| format!("{:.1} MiB, peak {:.1} MiB", mib(*rss), mib(*hwm)))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
