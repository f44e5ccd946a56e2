//! One kind of check, measured: the config applied, the warm-up until every real is up, the
//! steady state's CPU and memory, and the detection of killed servers.

use crate::netns::Netns;
use crate::opts::Opts;
use crate::proc::{cpu_of, cpu_of_all, cpu_split, monotonic_ns, status_kib, thread_stat};
use crate::report;
use crate::servers::Servers;
use crate::veth::{napi_threads, VethClient};
use lbd::check::subsystem::CheckSubsystem;
use lbd::check::{CheckState, HealthReport};
use lbd::daemon::Subsystem;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Reals per service in the generated config.
const PER_SERVICE: usize = 100;

/// The stat files of the NAPI threads of the client's end and of the servers' end.
type NapiThreads = (Vec<String>, Vec<String>);

pub fn run_kind(
    ns: &Netns,
    client: Option<&VethClient>,
    opts: &Opts,
    kind: &str,
) -> Result<(), String> {
    let mut server = Servers::start(ns, opts, kind)?;
    let config = lbd::config::parse("bench.toml", &config_text(opts, kind))
        .map_err(|e| format!("bench config refused: {e}"))?
        .config;
    let rss_before_checks = status_kib("VmRSS:");
    // The check thread inherits this thread's namespace: start it from a thread inside.
    let (mut checks, rx) = client.map_or(ns, |c| &c.ns).in_thread(|| {
        let c = CheckSubsystem::start().map_err(|e| e.to_string())?;
        let rx = c.health();
        Ok::<_, String>((c, rx))
    })??;
    let napi = match client {
        Some(c) => Some((napi_threads(&c.dev)?, napi_threads(&c.peer)?)),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    checks.apply(None, &config);
    let drops_before = client.map(VethClient::drops);
    let result = runtime.block_on(measure(
        opts,
        kind,
        &mut server,
        rx,
        t0,
        rss_before_checks,
        napi,
    ));
    checks.stop();
    if let (Some(c), Some(before)) = (client, drops_before) {
        let drops = c.drops() - before;
        if drops > 0 {
            println!(
                "  veth drops: {drops} packets lost in full veth rings (the rig's, not the servers': false alarms above may be these; try --veth-queues 4)"
            );
        }
    }
    result
}

fn config_text(opts: &Opts, kind: &str) -> String {
    let check = match kind {
        "half-open" => r#"{ type = "tcp", half_open = true, interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
        "tcp" => r#"{ type = "tcp", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
        "http-keepalive" => r#"{ type = "http", keep_alive = true, path = "/health", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
        _ => r#"{ type = "http", path = "/health", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = FALL }"#,
    }
    .replace("FALL", &opts.fall.to_string());
    let reals = (0..opts.reals).map(|i| crate::addr(i, opts.ports));
    lb_bench::lbd_config::services(reals, PER_SERVICE, 1, &check)
}

async fn measure(
    opts: &Opts,
    kind: &str,
    server: &mut Servers,
    mut rx: watch::Receiver<Arc<HealthReport>>,
    t0: Instant,
    rss_before_checks: u64,
    napi: Option<NapiThreads>,
) -> Result<(), String> {
    let reals: Vec<(String, SocketAddr)> = (0..opts.reals)
        .map(|i| (format!("s{}", i / PER_SERVICE), crate::addr(i, opts.ports)))
        .collect();
    warm_up(&reals, &mut rx).await?;
    let first_round = t0.elapsed();
    let steady = steady_state(opts, server, napi.as_ref()).await?;
    let detection = detect_kills(opts, &reals, server, &mut rx).await?;
    report::print_kind(
        kind,
        reals.len(),
        first_round,
        &steady,
        rss_before_checks,
        &detection,
    );
    if detection.missed > 0 {
        return Err(format!(
            "{} killed servers were not detected",
            detection.missed
        ));
    }
    Ok(())
}

/// Waits until every real was checked once and is up (30 s at most).
async fn warm_up(
    reals: &[(String, SocketAddr)],
    rx: &mut watch::Receiver<Arc<HealthReport>>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = rx.borrow_and_update().clone();
        let up = reals
            .iter()
            .filter(|(s, a)| r.real(s, a).is_some_and(|x| x.state == CheckState::Up))
            .count();
        if up == reals.len() {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            let down: Vec<String> = reals
                .iter()
                .filter_map(|(s, a)| {
                    let x = r.real(s, a)?;
                    (x.state != CheckState::Up).then(|| {
                        let why = x.reason.as_ref().map(|f| f.to_string());
                        format!("{a} {:?} ({})", x.state, why.unwrap_or_default())
                    })
                })
                .take(5)
                .collect();
            return Err(format!(
                "only {up} of {} reals up after 30s of checks; for example: {}",
                reals.len(),
                down.join(", ")
            ));
        }
    }
}

/// CPU times at one instant.
pub struct CpuSample {
    /// lbd's check thread: (user, system), and their sum.
    pub thread_split: (Duration, Duration),
    pub thread: Duration,
    /// The whole process.
    pub process: Duration,
    /// The NAPI threads of the client's end and of the servers' end.
    pub napi: Option<(Duration, Duration)>,
    pub at: Instant,
}

impl CpuSample {
    fn take(thread: &str, napi: Option<&NapiThreads>) -> CpuSample {
        CpuSample {
            thread_split: cpu_split(thread).unwrap_or_default(),
            thread: cpu_of(thread).unwrap_or_default(),
            process: cpu_of("/proc/self/stat").unwrap_or_default(),
            napi: napi.map(|(c, s)| (cpu_of_all(c), cpu_of_all(s))),
            at: Instant::now(),
        }
    }
}

/// The steady state: checks served and CPU over `--seconds`, memory at its end.
pub struct Steady {
    pub served: u64,
    pub before: CpuSample,
    pub after: CpuSample,
    /// VmRSS and VmHWM, KiB.
    pub rss: u64,
    pub hwm: u64,
}

impl Steady {
    /// The window's length, seconds.
    pub fn wall(&self) -> f64 {
        (self.after.at - self.before.at).as_secs_f64()
    }
}

/// CPU over `seconds`, with no state changes.
async fn steady_state(
    opts: &Opts,
    server: &mut Servers,
    napi: Option<&NapiThreads>,
) -> Result<Steady, String> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let thread = thread_stat("lbd-checks").ok_or("no lbd-checks thread")?;
    let served0 = server.served()?;
    let before = CpuSample::take(&thread, napi);
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    let after = CpuSample::take(&thread, napi);
    let served1 = server.served()?;
    let steady = Steady {
        served: served1 - served0,
        before,
        after,
        rss: status_kib("VmRSS:"),
        hwm: status_kib("VmHWM:"),
    };
    if std::env::var_os("CHECK_BENCH_MALLOC_STATS").is_some() {
        extern "C" {
            fn malloc_stats();
        }
        // SAFETY: glibc's malloc_stats prints to stderr; no arguments.
        unsafe { malloc_stats() };
    }
    Ok(steady)
}

/// What the kills showed.
pub struct Detection {
    /// Killed → down in the report, ms, sorted; false alarms left out.
    pub latencies: Vec<f64>,
    /// Killed servers whose reals were not seen down in time.
    pub missed: usize,
    /// Live reals seen down (and killed ones seen down before their kill), with why.
    pub spurious: HashMap<usize, String>,
}

/// When each victim died and went down, and which reals went down when they should not.
#[derive(Default)]
struct Kills {
    died: HashMap<usize, u128>,
    down_at: HashMap<usize, u128>,
    spurious: HashMap<usize, String>,
}

/// Kills servers one by one (spread over ~`kills` x 37 ms), noting when each died (monotonic
/// clock, shared with the server) and when its real went down.
async fn detect_kills(
    opts: &Opts,
    reals: &[(String, SocketAddr)],
    server: &mut Servers,
    rx: &mut watch::Receiver<Arc<HealthReport>>,
) -> Result<Detection, String> {
    let victims: Vec<usize> = (0..opts.kills)
        .map(|k| (k * 7919) % opts.reals)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut kills = Kills::default();
    let index: HashMap<(String, SocketAddr), usize> = reals
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    let mut pending = victims.clone().into_iter();
    let mut next_kill = tokio::time::Instant::now();
    let end = tokio::time::Instant::now()
        + Duration::from_millis(37 * victims.len() as u64)
        + Duration::from_secs(3 + 2 * opts.fall as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_kill), if pending.len() > 0 => {
                if let Some(v) = pending.next() {
                    let r = rx.borrow().clone();
                    kills.kill(v, reals, server, &r)?;
                }
                next_kill += Duration::from_millis(37);
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = monotonic_ns();
                let r = rx.borrow_and_update().clone();
                kills.observe(&r, now, &victims, reals, &index);
                if kills.down_at.len() == victims.len() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(end) => break,
        }
    }
    Ok(kills.detection(&victims))
}

impl Kills {
    /// Kills victim `v`'s server (a victim already down is a false alarm).
    fn kill(
        &mut self,
        v: usize,
        reals: &[(String, SocketAddr)],
        server: &mut Servers,
        report: &HealthReport,
    ) -> Result<(), String> {
        let (s, a) = &reals[v];
        if report
            .real(s, a)
            .is_some_and(|x| x.state == CheckState::Down)
        {
            self.spurious
                .entry(v)
                .or_insert_with(|| "down before it was killed".into());
        }
        let reply = server.kill(v)?;
        let ns: u128 = reply
            .parse()
            .map_err(|_| format!("bad kill reply {reply:?}"))?;
        self.died.insert(v, ns);
        Ok(())
    }

    /// Notes the victims `r` shows down, and anything else down as a false alarm.
    fn observe(
        &mut self,
        r: &HealthReport,
        now: u128,
        victims: &[usize],
        reals: &[(String, SocketAddr)],
        index: &HashMap<(String, SocketAddr), usize>,
    ) {
        for v in victims {
            if self.down_at.contains_key(v) {
                continue;
            }
            let (s, a) = &reals[*v];
            if self.died.contains_key(v)
                && r.real(s, a).is_some_and(|x| x.state == CheckState::Down)
            {
                self.down_at.insert(*v, now);
            }
        }
        // Anything else that goes down is a false alarm (an overloaded host).
        for (svc, h) in &r.services {
            for (a, st) in &h.reals {
                if st.state == CheckState::Down {
                    let i = index[&(svc.clone(), *a)];
                    if !self.died.contains_key(&i) && !self.spurious.contains_key(&i) {
                        self.spurious.insert(
                            i,
                            st.reason
                                .as_ref()
                                .map(|f| f.to_string())
                                .unwrap_or_default(),
                        );
                    }
                }
            }
        }
    }

    fn detection(self, victims: &[usize]) -> Detection {
        // A victim seen down before it was killed was a false alarm, not a detection.
        let mut latencies: Vec<f64> = victims
            .iter()
            .filter_map(|v| {
                if self.spurious.contains_key(v) {
                    return None;
                }
                let (down, died) = (*self.down_at.get(v)?, *self.died.get(v)?);
                (down >= died).then(|| (down - died) as f64 / 1e6)
            })
            .collect();
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let missed = victims
            .iter()
            .filter(|v| !self.down_at.contains_key(v) && !self.spurious.contains_key(v))
            .count();
        Detection {
            latencies,
            missed,
            spurious: self.spurious,
        }
    }
}
