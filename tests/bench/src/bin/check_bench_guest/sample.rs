//! CPU and memory of a checker's processes, read in the guest at one instant.

use lb_bench::proc_stat::utime_stime;
use std::collections::BTreeMap;

/// CPU and memory of a checker's processes, and the guest's overall CPU, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// The guest's uptime, seconds.
    pub uptime: f64,
    /// The guest's `cpu` line of /proc/stat: (busy, total) ticks.
    pub guest: (u64, u64),
    /// Its user, system, irq and softirq ticks (user and system include nice and steal).
    pub guest_split: [u64; 4],
    /// pid → (utime, stime) ticks, of every process of the checker.
    pub procs: BTreeMap<u32, (u64, u64)>,
    /// (utime, stime) ticks of lbd's check thread.
    pub check_thread: Option<(u64, u64)>,
    /// pid → (VmRSS, VmHWM) KiB.
    pub memory: BTreeMap<u32, (u64, u64)>,
    /// Times the checker's threads went to sleep (voluntary context switches), all threads.
    pub sleeps: u64,
}

/// One shell line printing what [`Sample::parse`] reads, for the processes named `comm`.
pub fn sample_command(comm: &str) -> String {
    format!(
        "read up _ < /proc/uptime; echo \"uptime $up\"; head -1 /proc/stat; \
         for p in $(pidof {comm}); do echo \"proc $p $(cat /proc/$p/stat)\"; \
         echo \"mem $p $(grep VmRSS /proc/$p/status) $(grep VmHWM /proc/$p/status)\"; \
         for t in /proc/$p/task/*; do [ \"$(cat $t/comm)\" = lbd-checks ] && echo \"checks $(cat $t/stat)\"; \
         echo \"sleeps $p $(grep ^voluntary_ctxt_switches $t/status)\"; done; \
         done; true"
    )
}

impl Sample {
    /// What [`sample_command`] printed.
    pub fn parse(text: &str) -> Result<Sample, String> {
        let mut s = Sample::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["uptime", up] => s.uptime = up.parse().map_err(|_| format!("uptime {up:?}"))?,
                ["cpu", fields @ ..] => {
                    let n: Vec<u64> = fields.iter().filter_map(|f| f.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal
                    let total: u64 = n.iter().take(8).sum();
                    let idle = n.get(3).copied().unwrap_or(0) + n.get(4).copied().unwrap_or(0);
                    s.guest = (total - idle, total);
                    let at = |i: usize| n.get(i).copied().unwrap_or(0);
                    s.guest_split = [at(0) + at(1), at(2) + at(7), at(5), at(6)];
                }
                ["proc", pid, ..] => {
                    let pid: u32 = pid.parse().map_err(|_| format!("bad line {line:?}"))?;
                    let stat = line.splitn(3, ' ').nth(2).unwrap_or_default();
                    let t = utime_stime(stat).ok_or_else(|| format!("bad stat {line:?}"))?;
                    s.procs.insert(pid, t);
                }
                ["mem", pid, "VmRSS:", rss, "kB", "VmHWM:", hwm, "kB"] => {
                    let num = |v: &str| v.parse::<u64>().map_err(|_| format!("bad {line:?}"));
                    s.memory.insert(num(pid)? as u32, (num(rss)?, num(hwm)?));
                }
                ["sleeps", _, "voluntary_ctxt_switches:", n] => {
                    s.sleeps += n.parse::<u64>().map_err(|_| format!("bad {line:?}"))?;
                }
                ["checks", ..] => {
                    let stat = line.split_once(' ').map(|x| x.1).unwrap_or_default();
                    s.check_thread = utime_stime(stat);
                }
                _ => {}
            }
        }
        if s.uptime == 0.0 {
            return Err(format!("no uptime in the sample:\n{text}"));
        }
        Ok(s)
    }
}
