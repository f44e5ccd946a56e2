//! The lbd binary with health checks wired in, run inside a test network namespace against a
//! real python3 http.server: state changes logged once with their reasons, quorum loss, a
//! reload that keeps running checks, and an orderly SIGTERM. (The host has no IPVS, so the
//! reconciler's errors are expected here; the IPVS effect is tested in a guest.)

mod check_support;

use check_support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn wait_log(path: &std::path::Path, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "lbd did not log {needle:?} within {within:?}; its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    ns.run(|| async {
        wait_tcp(
            "127.0.0.1:8501".parse().unwrap(),
            Duration::from_secs(10),
            "http.server",
        )
        .await;
    });
    let mut lbd = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_lbd"), "-c"])
        .arg(&conf)
        .env("LBD_VRRP_RT_PRIORITY", "0")
        // Its own control socket, not the host's /run/lb/lbd.sock.
        .env("LBD_API_SOCKET", dir.path().join("lbd.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // If the test fails, dropping the namespace kills lbd with everything else in it.
    let pid = lbd.id() as i32;

    wait_log(&log, "lbd running with", Duration::from_secs(10));
    let text = wait_log(&log, "service web lost its quorum", Duration::from_secs(5));
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
        &log,
        "real 127.0.0.1:8502 of service web is up again (after 2 successful checks)",
        Duration::from_secs(10),
    );
    wait_log(
        &log,
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
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_log(
        &log,
        "checks configured: 2 running (1 started, 1 kept, 1 stopped)",
        Duration::from_secs(5),
    );
    wait_log(&log, "reloaded config", Duration::from_secs(5));

    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let text = wait_log(&log, "lbd stopped", Duration::from_secs(10));
    let status = lbd.wait().unwrap();
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
