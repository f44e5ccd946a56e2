//! The lbd binary with health checks wired in, run inside a test network namespace against a
//! real python3 http.server: state changes logged once with their reasons, quorum loss, a
//! reload that keeps running checks, and an orderly SIGTERM. (The host has no IPVS, so the
//! reconciler's errors are expected here; the IPVS effect is tested in a guest.)

mod check_support;

use check_support::*;
use nix::sys::signal::Signal;
use std::time::Duration;

const CONFIG: &str = r#"
[vrrp.instance.V]
interface = "lo"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]

[service.web]
vip = "192.0.2.10:80"
scheduler = "wrr"
forwarding = "nat"
sorry_server = "127.0.0.1:8999"
quorum = { min_weight = 2 }
check = { type = "http", path = "/", interval = "200ms", rise = 2, fall = 2 }

[[service.web.real]]
address = "127.0.0.1:8501"

[[service.web.real]]
address = "127.0.0.1:8502"
"#;

/// Waits for `needle` in lbd's log; returns the log.
fn wait_log(lbd: &ChildGuard, needle: &str, within: Duration) -> String {
    assert!(
        lbd.wait_log(needle, within),
        "lbd did not log {needle:?} within {within:?}; its log:\n{}",
        lbd.log()
    );
    lbd.log()
}

#[test]
fn lbd_runs_checks_logs_changes_once_reloads_and_stops() {
    require(&["/usr/bin/python3"]);
    let ns = Netns::new("lbd");
    let dir = TempDir::new("lbd");
    let conf = dir.write("lbd.toml", CONFIG);
    let log = dir.path().join("lbd.log");
    let www = dir.path().display().to_string();
    let _web1 = ns.spawn(&[
        "/usr/bin/python3",
        "-m",
        "http.server",
        "8501",
        "--bind",
        "127.0.0.1",
        "--directory",
        &www,
    ]);
    ns.wait_tcp(
        "127.0.0.1:8501".parse().unwrap(),
        Duration::from_secs(10),
        "http.server",
    );
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_lbd"));
    cmd.arg("-c")
        .arg(&conf)
        // Its own control socket, not the host's /run/lb/lbd.sock.
        .env("LBD_API_SOCKET", dir.path().join("lbd.sock"));
    // Killed when the test fails, like everything else in the namespace.
    let mut lbd = ChildGuard::spawn_logged(&mut cmd, &log).unwrap();

    wait_log(&lbd, "lbd running with", Duration::from_secs(10));
    let text = wait_log(&lbd, "service web lost its quorum", Duration::from_secs(5));
    assert!(
        text.contains(
            "real 127.0.0.1:8502 of service web is down: connection refused (first check)"
        ),
        "{text}"
    );
    // The second real comes up: back after exactly rise = 2 checks; quorum regained.
    let _web2 = ns.spawn(&[
        "/usr/bin/python3",
        "-m",
        "http.server",
        "8502",
        "--bind",
        "127.0.0.1",
        "--directory",
        &www,
    ]);
    wait_log(
        &lbd,
        "real 127.0.0.1:8502 of service web is up again (after 2 successful checks)",
        Duration::from_secs(10),
    );
    wait_log(
        &lbd,
        "service web regained its quorum",
        Duration::from_secs(5),
    );

    // Reload with a slower check for one real only: the other check keeps running.
    std::fs::write(
        &conf,
        CONFIG.replace(
            "address = \"127.0.0.1:8502\"\n",
            "address = \"127.0.0.1:8502\"\ncheck = { interval = \"300ms\" }\n",
        ),
    )
    .unwrap();
    lbd.signal(Signal::SIGHUP);
    wait_log(
        &lbd,
        "checks configured: 2 running (1 started, 1 kept, 1 stopped)",
        Duration::from_secs(5),
    );
    wait_log(&lbd, "reloaded config", Duration::from_secs(5));

    lbd.signal(Signal::SIGTERM);
    let text = wait_log(&lbd, "lbd stopped", Duration::from_secs(10));
    let status = lbd
        .wait_exit(Duration::from_secs(10))
        .expect("lbd exits after logging that it stopped");
    assert!(status.success(), "lbd exited with {status}\n{text}");
    for line in [
        "real 127.0.0.1:8502 of service web is down",
        "real 127.0.0.1:8502 of service web is up again",
        "service web lost its quorum",
        "service web regained its quorum",
    ] {
        assert_eq!(
            text.matches(line).count(),
            1,
            "{line:?} should be logged exactly once:\n{text}"
        );
    }
    assert!(text.contains("checks stopped"), "{text}");
}
