//! The guest side: starting and stopping each checker, and its IPVS table.

use crate::configs::{keepalived_config, lbd_config, LBD_IDLE};
use crate::lab::Lab;
use crate::measure::WARMUP_LIMIT;
use crate::opts::{Checker, Kind, Opts};
use crate::{CMD, CONFIG_PORT, HOST_IP};
use lbtest::ipvs::GuestShell;
use std::time::{Duration, Instant};

/// Runs a shell command in the guest; its output.
pub fn run(sh: &mut GuestShell, command: &str, timeout: Duration) -> Result<String, String> {
    sh.run(command, timeout).map_err(|e| e.to_string())
}

/// Destinations in the guest's IPVS table: (all, with a weight above 0).
pub fn ipvs_dests(sh: &mut GuestShell) -> Result<(usize, usize), String> {
    let out = run(
        sh,
        "awk '$1 == \"->\" && $2 != \"RemoteAddress:Port\" { n++; if ($4 > 0) w++ } END { print n+0, w+0 }' /proc/net/ip_vs",
        CMD,
    )?;
    let mut w = out.split_whitespace().map(|v| v.parse::<usize>());
    match (w.next(), w.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => Err(format!("bad IPVS count {out:?}")),
    }
}

/// Waits until the guest's IPVS table has no destinations left.
fn wait_ipvs_empty(sh: &mut GuestShell, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + WARMUP_LIMIT;
    loop {
        let (all, _) = ipvs_dests(sh)?;
        if all == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: {all} IPVS destinations still there"));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

pub fn start_checker(
    lab: &Lab,
    sh: &mut GuestShell,
    opts: &Opts,
    checker: Checker,
    kind: Kind,
) -> Result<(), String> {
    match checker {
        Checker::Lbd => {
            lab.configs
                .publish("lb.toml", &lbd_config(opts, kind))
                .map_err(|e| format!("lb.toml: {e}"))?;
        }
        Checker::Keepalived => {
            let name = format!("keepalived-{}.conf", kind.name());
            lab.configs
                .publish(&name, &keepalived_config(opts, kind))
                .map_err(|e| format!("{name}: {e}"))?;
            // busybox nc (its wget cannot resolve in a static build); the body after the
            // blank line is the file.
            run(
                sh,
                &format!(
                    "printf 'GET /{name} HTTP/1.0\\r\\n\\r\\n' | nc -w 30 {HOST_IP} {CONFIG_PORT} | tr -d '\\r' | sed '1,/^$/d' > /tmp/keepalived.conf && \
                     grep -c real_server /tmp/keepalived.conf"
                ),
                CMD,
            )?;
            run(
                sh,
                "rm -f /tmp/keepalived.log; keepalived --check --dont-fork --log-console -f /tmp/keepalived.conf \
                 -p /tmp/keepalived.pid -c /tmp/keepalived-checkers.pid </dev/null >/tmp/keepalived.log 2>&1 &",
                CMD,
            )?;
            std::thread::sleep(Duration::from_secs(2));
            let alive = run(sh, "pidof keepalived || true", CMD)?;
            if alive.trim().is_empty() {
                let log = run(sh, "tail -n 30 /tmp/keepalived.log", CMD).unwrap_or_default();
                return Err(format!("keepalived exited at start:\n{log}"));
            }
        }
    }
    Ok(())
}

pub fn stop_checker(lab: &Lab, sh: &mut GuestShell, checker: Checker) -> Result<(), String> {
    match checker {
        Checker::Lbd => {
            lab.configs
                .publish("lb.toml", LBD_IDLE)
                .map_err(|e| format!("lb.toml: {e}"))?;
        }
        Checker::Keepalived => {
            // keepalived removes its IPVS services as it stops.
            run(
                sh,
                "kill $(cat /tmp/keepalived.pid); i=0; while pidof keepalived >/dev/null && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; \
                 ! pidof keepalived",
                Duration::from_secs(320),
            )?;
        }
    }
    wait_ipvs_empty(sh, &format!("after stopping {}", checker.name()))
}
