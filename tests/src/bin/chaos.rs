//! The chaos runner: boots a real pair (two guests from the test image, the DR or the NAT
//! layout, reals and a client in namespaces), keeps constant traffic through the VIP, injects
//! faults on a schedule and prints one table per scenario (see `lbtest::chaos`).
//!
//! ```text
//! cargo run --release -p lbtest --bin chaos -- SCENARIO... [--rounds N] [--duration D] [--short]
//!     [--layout dr|nat] [--vcpus N] [--vrrp lbd|keepalived]
//! ```
//!
//! Needs root, QEMU, python3, nft and the kernel package (`tools/setup.sh`). Exits 1 when a
//! scenario broke an invariant, 2 on a usage error, 3 when the lab itself failed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lbtest::chaos::lab::{Layout, Setup, VrrpBy};
use lbtest::chaos::{Chaos, Opts, Scenario};

fn usage() -> String {
    let mut names: Vec<String> = Scenario::ALL.iter().map(|s| s.name()).collect();
    names.push("all".into());
    let list: Vec<String> = Scenario::ALL
        .iter()
        .map(|s| {
            let long = s.long();
            format!(
                "  {:<14} {} [{} round{}{}]",
                s.name(),
                s.what(),
                long.rounds,
                if long.rounds == 1 { "" } else { "s" },
                long.duration
                    .map(|d| format!(", {}", human(d)))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "usage: chaos SCENARIO... [--rounds N] [--duration D] [--short] [--layout dr|nat]\n             \
         [--vcpus N] [--vrrp lbd|keepalived]\n\n\
         Boots a real pair under constant traffic, injects each scenario's fault and prints\n\
         its table: long connections lost, requests failed, the longest gap, takeovers and\n\
         time with two masters (from the wire), IPVS operations per second, init's and lbd's\n\
         memory and descriptors.\n\n\
         scenarios (default rounds and duration in brackets; vrrp-loss-N takes any N in 1..=100):\n{}\n  \
         all            every scenario above, in this order\n\n\
         options:\n  \
         --rounds N     rounds of each scenario (default: the scenario's)\n  \
         --duration D   length of each timed fault, e.g. 90s, 2m, 500ms (default: the scenario's)\n  \
         --short        the test suite's short version of each scenario\n  \
         --layout L     dr (default): reals beside the balancers, the VIP on their loopback;\n                 \
         nat: reals on an inside segment routing back through a gateway VIP that\n                 \
         moves with the pair (sync group)\n  \
         --vcpus N      vCPUs of each balancer (default 1; backup-cpu saturates them all)\n  \
         --vrrp WHO     lbd (default), or keepalived in the same guests as the anchor of the\n                 \
         VRRP scenarios (vrrp-loss-N, backup-cpu, partition, soak)\n  \
         -h, --help     this text",
        list.join("\n")
    )
}

fn human(d: Duration) -> String {
    if d.as_secs() >= 60 && d.as_secs() % 60 == 0 {
        format!("{} min", d.as_secs() / 60)
    } else {
        format!("{} s", d.as_secs())
    }
}

/// `90s`, `2m`, `500ms`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

#[derive(Debug)]
struct Args {
    scenarios: Vec<Scenario>,
    rounds: Option<usize>,
    duration: Option<Duration>,
    short: bool,
    setup: Setup,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut out = Args {
        scenarios: Vec::new(),
        rounds: None,
        duration: None,
        short: false,
        setup: Setup::default(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--short" => out.short = true,
            "--layout" => {
                let v = it.next().map_or("", String::as_str);
                out.setup.layout = Layout::parse(v).ok_or(format!("--layout {v:?}: dr or nat"))?;
            }
            "--vcpus" => {
                let v = it.next().ok_or("--vcpus needs a number")?;
                out.setup.vcpus = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=8).contains(n))
                    .ok_or(format!("--vcpus {v:?}: a number of vCPUs, 1 to 8"))?;
            }
            "--vrrp" => {
                out.setup.vrrp = match it.next().map(String::as_str) {
                    Some("lbd") => VrrpBy::Lbd,
                    Some("keepalived") => VrrpBy::Keepalived,
                    other => {
                        return Err(format!(
                            "--vrrp {}: lbd or keepalived",
                            other.map_or("(nothing)".into(), |o| format!("{o:?}"))
                        ))
                    }
                }
            }
            "--rounds" => {
                let v = it.next().ok_or("--rounds needs a number")?;
                out.rounds = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--rounds {v:?}: a number of rounds, at least 1"))?,
                );
            }
            "--duration" => {
                let v = it.next().ok_or("--duration needs a length")?;
                out.duration = Some(parse_duration(v).ok_or(format!(
                    "--duration {v:?}: a length such as 90s, 2m or 500ms"
                ))?);
            }
            "all" => out.scenarios.extend(Scenario::ALL),
            other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
            name => {
                out.scenarios.push(Scenario::parse(name).ok_or_else(|| {
                    format!("unknown scenario {name:?} (chaos --help lists them)")
                })?)
            }
        }
    }
    if out.scenarios.is_empty() {
        return Err("name at least one scenario (chaos --help lists them)".into());
    }
    if out.setup.vrrp == VrrpBy::Keepalived {
        let all = out.scenarios.len() == Scenario::ALL.len();
        if all {
            out.scenarios.retain(|s| s.with_keepalived());
        }
        if let Some(s) = out.scenarios.iter().find(|s| !s.with_keepalived()) {
            return Err(format!(
                "{} is not a VRRP scenario: with --vrrp keepalived only vrrp-loss-N, backup-cpu, partition and soak run",
                s.name()
            ));
        }
    }
    Ok(Some(out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    lbtest::process::require_root("the chaos runner makes namespaces, taps and a bridge");
    let plan: Vec<(Scenario, Opts)> = args
        .scenarios
        .iter()
        .map(|s| {
            let base = if args.short { s.short() } else { s.long() };
            (
                *s,
                Opts {
                    rounds: args.rounds.unwrap_or(base.rounds),
                    duration: args.duration.or(base.duration),
                },
            )
        })
        .collect();
    // The load must outlast every scenario: a generous bound from the plan.
    let limit = plan.iter().fold(Duration::from_secs(1800), |acc, (_, o)| {
        acc + o.duration.unwrap_or(Duration::from_secs(60)) * 3 * o.rounds as u32
            + Duration::from_secs(180) * o.rounds as u32
    });
    let started = Instant::now();
    let mut chaos = match Chaos::start(limit, args.setup) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: the lab did not come up: {e}");
            return ExitCode::from(3);
        }
    };
    let mut broken = 0;
    for (scenario, opts) in plan {
        eprintln!(
            "chaos: {} ({} round{})...",
            scenario.name(),
            opts.rounds,
            if opts.rounds == 1 { "" } else { "s" }
        );
        match chaos.run(scenario, &opts) {
            Ok(report) => {
                println!("{}", report.table());
                broken += report.violations.len();
            }
            Err(e) => {
                eprintln!("chaos: {}: the lab failed: {e}", scenario.name());
                return ExitCode::from(3);
            }
        }
    }
    eprintln!(
        "chaos: done in {:.0} s, {broken} invariant{} broken",
        started.elapsed().as_secs_f64(),
        if broken == 1 { "" } else { "s" }
    );
    if broken > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 s"), None);
    }

    #[test]
    fn arguments_name_what_is_wrong() {
        let a = parse_args(&args(&["kill-master", "--rounds", "3"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.scenarios, [Scenario::KillMaster]);
        assert_eq!(a.rounds, Some(3));
        assert!(parse_args(&args(&["--help"])).unwrap().is_none());
        assert_eq!(
            parse_args(&args(&["all"]))
                .unwrap()
                .unwrap()
                .scenarios
                .len(),
            Scenario::ALL.len()
        );
        let e = parse_args(&args(&["kil-master"])).unwrap_err();
        assert!(e.contains("\"kil-master\""), "{e}");
        let e = parse_args(&args(&["partition", "--rounds", "0"])).unwrap_err();
        assert!(e.contains("--rounds \"0\""), "{e}");
        let e = parse_args(&args(&["partition", "--duration", "forever"])).unwrap_err();
        assert!(e.contains("--duration \"forever\""), "{e}");
        assert!(parse_args(&args(&[])).is_err());
        assert!(parse_args(&args(&["soak", "--fast"]))
            .unwrap_err()
            .contains("--fast"));
        assert!(usage().contains("vrrp-loss-30"));
        let a = parse_args(&args(&["all", "--vrrp", "keepalived"]))
            .unwrap()
            .unwrap();
        assert!(a.scenarios.iter().all(|s| s.with_keepalived()) && a.scenarios.len() == 6);
        let e = parse_args(&args(&["kill-master", "--vrrp", "keepalived"])).unwrap_err();
        assert!(e.contains("kill-master is not a VRRP scenario"), "{e}");
        let e = parse_args(&args(&["partition", "--vrrp", "vrrpd"])).unwrap_err();
        assert!(e.contains("--vrrp \"vrrpd\""), "{e}");
        let a = parse_args(&args(&["partition", "--layout", "nat", "--vcpus", "2"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.setup.layout, Layout::Nat);
        assert_eq!(a.setup.vcpus, 2);
        let e = parse_args(&args(&["partition", "--layout", "tun"])).unwrap_err();
        assert!(e.contains("--layout \"tun\": dr or nat"), "{e}");
        let e = parse_args(&args(&["partition", "--layout"])).unwrap_err();
        assert!(e.contains("--layout \"\""), "{e}");
        let e = parse_args(&args(&["backup-cpu", "--vcpus", "0"])).unwrap_err();
        assert!(e.contains("--vcpus \"0\""), "{e}");
    }
}
