//! Keeps the check benchmark (`check_bench_guest`: lbd against keepalived's checker in one
//! test-image guest) from rotting: a tiny run, TCP only (connect and half-open), 20 reals and a 2 s window. Asserts
//! what does not depend on the machine: both checkers checked every real (counted by the
//! servers on the host, on each checker's own port), and every figure was printed. The CPU
//! figures themselves are not judged (a loaded host and TCG make them noise at this size).
//!
//! Needs root, QEMU, the kernel package (`tools/setup.sh`) and the test image with keepalived
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::process::Command;

const REALS: f64 = 20.0;

/// The value before `/s` in a `figure: KIND CHECKER checks N/s ...` line.
fn checks_per_second(out: &str, who: &str) -> f64 {
    let prefix = format!("figure: {who} checks ");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"));
    line[prefix.len()..]
        .split("/s")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line:?}"))
}

#[test]
fn check_bench_runs_lbd_and_keepalived_side_by_side() {
    let out = Command::new(env!("CARGO_BIN_EXE_check_bench_guest"))
        .args([
            "--reals",
            "20",
            "--seconds",
            "2",
            "--settle",
            "1",
            "--kind",
            "tcp",
        ])
        .output()
        .expect("run check_bench_guest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check_bench_guest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for who in ["tcp lbd", "tcp keepalived", "tcp-half-open lbd"] {
        let rate = checks_per_second(&stdout, who);
        // Every real once a second; a third of that is plenty of margin for a slow host.
        assert!(
            (REALS / 3.0..=REALS * 2.0).contains(&rate),
            "{who}: {rate} checks/s for 20 reals checked every second:\n{stdout}"
        );
        for figure in ["cpu", "rss"] {
            let prefix = format!("figure: {who} {figure} ");
            assert!(
                stdout.lines().any(|l| l.starts_with(&prefix)),
                "no {prefix:?} line:\n{stdout}"
            );
        }
    }
    for kind in ["tcp", "tcp-half-open"] {
        let prefix = format!("figure: {kind} ratio keepalived/lbd cpu ");
        assert!(
            stdout.lines().any(|l| l.starts_with(&prefix)),
            "no {prefix:?} line:\n{stdout}"
        );
    }
}
