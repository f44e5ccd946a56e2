//! What the benchmark reads of itself and the kernel: CPU times, memory, load, the clock the
//! servers share.

use std::time::Duration;

/// CPU time (user, system) of a thread or of the whole process, from /proc.
pub fn cpu_split(stat_path: &str) -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let (user, system) = lb_bench::proc_stat::utime_stime(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let d = |ticks: u64| Duration::from_nanos(ticks * 1_000_000_000 / hz);
    Some((d(user), d(system)))
}

pub fn cpu_of(stat_path: &str) -> Option<Duration> {
    cpu_split(stat_path).map(|(u, s)| u + s)
}

/// CPU time of a set of threads.
pub fn cpu_of_all(stats: &[String]) -> Duration {
    stats.iter().filter_map(|s| cpu_of(s)).sum()
}

/// The stat file of this process's thread called `name`.
pub fn thread_stat(name: &str) -> Option<String> {
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return Some(entry.path().join("stat").display().to_string());
        }
    }
    None
}

/// A KiB figure of /proc/self/status (`VmRSS:`, `VmHWM:`).
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The monotonic clock in ns, which the server processes share with the benchmark.
pub fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}
