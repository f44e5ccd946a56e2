//! `[node] log_level` with the real lbd binary: applied at start, changed by a reload (SIGHUP),
//! and overridden by `LBD_LOG` when that is set. lbd runs in its own network namespace with its
//! own control socket; the config has no services (the host has no IPVS, so the reconciler's
//! "no IPVS" error is expected here). Needs root (network namespaces).

use lbtest::process::require_root;
use lbtest::{wait, ChildGuard, Netns, ScratchDir};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// How often lbd's log is read while waiting for a line.
const POLL: Duration = Duration::from_millis(10);

fn config(level: Option<&str>, hostname: &str) -> String {
    let mut c = format!("[node]\nhostname = \"{hostname}\"\n");
    if let Some(level) = level {
        c.push_str(&format!("log_level = \"{level}\"\n"));
    }
    c
}

fn start(ns: &Netns, dir: &ScratchDir, conf: &Path, lbd_log: Option<&str>) -> ChildGuard {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_lbd"));
    cmd.arg("-c")
        .arg(conf)
        .env("LBD_API_SOCKET", dir.path().join("lbd.sock"))
        .env_remove("LB_SYSLOG");
    match lbd_log {
        Some(v) => cmd.env("LBD_LOG", v),
        None => cmd.env_remove("LBD_LOG"),
    };
    let lbd = ChildGuard::spawn_logged(&mut cmd, &dir.path().join("lbd.log")).unwrap();
    wait_log(&lbd, "lbd running with", 1);
    lbd
}

/// Waits until `needle` is in the log `n` times; returns the log.
fn wait_log(lbd: &ChildGuard, needle: &str, n: usize) -> String {
    let found = wait::until(WAIT, POLL, || lbd.count(needle) >= n).is_some();
    assert!(
        found,
        "lbd did not log {needle:?} {n} time(s) within {WAIT:?}; its log:\n{}",
        lbd.log()
    );
    lbd.log()
}

/// The short version lbd prints in the `n`-th (1-based) line containing `marker`.
fn version_in(log: &str, marker: &str, n: usize) -> String {
    let line = log
        .lines()
        .filter(|l| l.contains(marker))
        .nth(n - 1)
        .unwrap_or_else(|| panic!("no line {n} with {marker:?}:\n{log}"));
    let v = line
        .split("version ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no version in {line:?}"));
    v.to_string()
}

/// The `applied config` debug lines of one config version.
fn debug_applied(log: &str, version: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains(" DEBUG ")
                && l.contains("applied config")
                && l.contains(&format!("version={version}"))
        })
        .count()
}

#[test]
fn log_level_follows_the_config_on_start_and_reload() {
    require_root("network namespaces");
    let ns = Netns::new("loglevel").unwrap();
    let dir = ScratchDir::new("lbd-log-level");
    let conf = dir.write("lbd.toml", config(None, "lb1"));
    let mut lbd = start(&ns, &dir, &conf, None);

    // Default info: the subsystems' debug lines about the config are not there.
    let log = lbd.log();
    let v1 = version_in(&log, "lbd running with", 1);
    assert_eq!(debug_applied(&log, &v1), 0, "{log}");
    assert!(!log.contains(" DEBUG "), "{log}");

    // Reload to debug: the reload's own debug lines appear (the level is set first).
    std::fs::write(&conf, config(Some("debug"), "lb1")).unwrap();
    lbd.signal(Signal::SIGHUP);
    let log = wait_log(&lbd, "reloaded config", 1);
    let v2 = version_in(&log, "reloaded config", 1);
    assert!(
        log.contains("log level debug from [node] log_level"),
        "{log}"
    );
    assert!(debug_applied(&log, &v2) >= 4, "{log}");

    // Back to info: the next reload's debug lines are gone again.
    std::fs::write(&conf, config(Some("info"), "lb2")).unwrap();
    lbd.signal(Signal::SIGHUP);
    let log = wait_log(&lbd, "reloaded config", 2);
    let v3 = version_in(&log, "reloaded config", 2);
    assert_ne!(v2, v3);
    assert_eq!(debug_applied(&log, &v3), 0, "{log}");
    assert!(
        log.contains("log level info from [node] log_level"),
        "{log}"
    );

    lbd.signal(Signal::SIGTERM);
    assert!(
        lbd.wait_exit(WAIT).is_some_and(|s| s.success()),
        "{}",
        lbd.log()
    );
}

#[test]
fn lbd_log_overrides_the_config() {
    require_root("network namespaces");
    let ns = Netns::new("loglevel").unwrap();
    let dir = ScratchDir::new("lbd-log-level");
    let conf = dir.write("lbd.toml", config(Some("debug"), "lb1"));
    let mut lbd = start(&ns, &dir, &conf, Some("info"));
    let log = lbd.log();
    let v1 = version_in(&log, "lbd running with", 1);
    assert!(
        log.contains("log level from LBD_LOG=info; [node] log_level = \"debug\" is not used"),
        "{log}"
    );
    assert_eq!(debug_applied(&log, &v1), 0, "{log}");

    // A reload does not undo the override either.
    std::fs::write(&conf, config(Some("trace"), "lb2")).unwrap();
    lbd.signal(Signal::SIGHUP);
    let log = wait_log(&lbd, "reloaded config", 1);
    let v2 = version_in(&log, "reloaded config", 1);
    assert_eq!(debug_applied(&log, &v2), 0, "{log}");
    assert!(
        !log.contains(" DEBUG ") && !log.contains(" TRACE "),
        "{log}"
    );
    lbd.signal(Signal::SIGTERM);
    assert!(
        lbd.wait_exit(WAIT).is_some_and(|s| s.success()),
        "{}",
        lbd.log()
    );
}
