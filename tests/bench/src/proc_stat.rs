//! CPU times from `/proc/PID/stat` (or a thread's `/proc/PID/task/TID/stat`), and the page
//! faults this process has taken.

/// (utime, stime) in clock ticks from a stat line. They are fields 14 and 15, so 12 and 13
/// after "pid (comm) "; the command name may hold spaces and parentheses, so that part ends at
/// the last ") ".
pub fn utime_stime(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// Minor page faults this process has taken so far (dear under emulation, where the
/// benchmarks' figures are measured).
pub fn minor_faults() -> u64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt as u64
}

#[cfg(test)]
mod tests {
    use super::utime_stime;

    #[test]
    fn times_are_read_after_the_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 9 0 0";
        assert_eq!(utime_stime(stat), Some((17, 5)));
        assert_eq!(utime_stime("42 (short) S 1"), None);
    }
}
