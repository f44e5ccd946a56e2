//! lbd's BGP subsystem with a real BIRD as its speaker, against a second real BIRD acting as
//! the router (ECMP: `merge paths` into its namespace's kernel table), in two network
//! namespaces on a veth pair.
//!
//! The host has no IPVS, so the subsystem runs without lbd's daemon: the test drives it with
//! the decision's inputs (a real's health; IPVS holding the service), in a process of its own —
//! this test binary started again inside the balancer's namespace (`speaker_process`) — so
//! that the test can `kill -9` it like a dead lbd. What reaches the router is real: its kernel
//! route to the VIP via the balancer.
//!
//! Needs root and `bird` (Debian `bird2`).

use lbtest::process::ChildGuard;
use lbtest::wait;
use lbtest::Netns;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const VIP: &str = "198.51.100.10";
const BALANCER: &str = "10.77.0.2";
const ROUTER: &str = "10.77.0.1";
const SEC: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(20);
/// What the speaker process is told, one line each: the real's health, or stop.
const CHILD_ENV: &str = "LBD_TEST_BGP_SPEAKER";

fn lbd_config() -> String {
    format!(
        r#"
[bgp]
local_as = 65001
router_id = "{BALANCER}"
hold_time = "3s"

[bgp.peer.router]
address = "{ROUTER}"
remote_as = 65000

[service.web]
vip = "{VIP}:80"
announce = "bgp"
forwarding = "dr"
[[service.web.real]]
address = "10.0.0.1"
"#
    )
}

const ROUTER_CONF: &str = r#"
router id 10.77.0.1;
log stderr all;
protocol device { }
protocol kernel { ipv4 { export all; }; merge paths on; }
protocol bgp lb1 {
  local 10.77.0.1 as 65000;
  neighbor 10.77.0.2 as 65001;
  hold time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 4;
  ipv4 { import all; export none; };
}
"#;

/// The balancer side: this test binary as a process in the balancer's namespace, running
/// lbd's BGP subsystem until told `stop`.
#[test]
fn speaker_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // Only a step of the tests below, in a process of its own.
    };
    let dir = PathBuf::from(dir);
    lbd::logging::init("bgp-speaker", "LBD_LOG", "info");
    let text = std::fs::read_to_string(dir.join("lbd.toml")).unwrap();
    let config = lbd::config::parse("lbd.toml", &text).unwrap().config;
    // Single-threaded, like lbd: BIRD's parent-death signal follows this thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use lbd::bgp::decision::{decide, nway_vips, Inputs};
        use lbd::bgp::subsystem::{BgpOptions, BgpSubsystem, Wanted};
        use lbd::reconcile::{Health, RealHealth};
        let mut opts = BgpOptions::in_dir(&dir);
        opts.bird = lbtest::programs::path("bird");
        let mut bgp = BgpSubsystem::start(opts);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let holds = config.services.keys().cloned().collect();
        let real = ("web".to_string(), "10.0.0.1:80".parse().unwrap());
        loop {
            let Some(cmd) = rx.recv().await else { break };
            let health = match cmd.trim() {
                "up" => Health::Up,
                "down" => Health::Down,
                "stop" => break,
                other => panic!("unknown command {other:?}"),
            };
            let health = RealHealth([(real.clone(), health)].into());
            let decision = decide(
                &config,
                &Inputs {
                    health: Some(&health),
                    ipvs_holds: Some(&holds),
                    ..Inputs::default()
                },
            );
            println!("decision: {}", serde_json::to_string(&decision).unwrap());
            bgp.set(Wanted {
                bgp: config.bgp.clone(),
                local_vips: nway_vips(&config).into_keys().collect(),
                decision,
            });
        }
        let stopping = Instant::now();
        bgp.stop().await;
        println!("stopped in {:?}", stopping.elapsed());
    });
}

struct Lab {
    lb: Netns,
    rt: Netns,
    dir: PathBuf,
    _router: ChildGuard,
}

impl Lab {
    fn new() -> Lab {
        lbtest::process::require_root("network namespaces and BIRD");
        lbtest::process::require_programs(&["ip", "bird", "birdc"]);
        let lb = Netns::new("bgp-lb").unwrap();
        let rt = Netns::new("bgp-rt").unwrap();
        lb.add_veth_to("eth0", &rt, "eth0").unwrap();
        lb.add_addr("eth0", &format!("{BALANCER}/24")).unwrap();
        rt.add_addr("eth0", &format!("{ROUTER}/24")).unwrap();
        lb.link_up("lo").unwrap();
        rt.link_up("lo").unwrap();
        let dir =
            std::env::temp_dir().join(format!("lbd-bgp-{}-{}", std::process::id(), lb.name()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("router.conf"), ROUTER_CONF).unwrap();
        std::fs::write(dir.join("lbd.toml"), lbd_config()).unwrap();
        let mut cmd = rt.command("bird");
        cmd.arg("-f")
            .arg("-c")
            .arg(dir.join("router.conf"))
            .arg("-s")
            .arg(dir.join("router.ctl"));
        let router = ChildGuard::spawn_logged(&mut cmd, &dir.join("router.log")).unwrap();
        Lab {
            lb,
            rt,
            dir,
            _router: router,
        }
    }

    /// Starts the speaker process in the balancer's namespace.
    fn speaker(&self, log: &str) -> Speaker {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = self.lb.command(&exe);
        cmd.args([
            "speaker_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &self.dir)
        .env("LBD_LOG", "info")
        .stdin(Stdio::piped());
        let log = self.dir.join(log);
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        let guard = ChildGuard::new(cmd.spawn().unwrap(), "the BGP speaker process");
        Speaker { guard, log }
    }

    /// The router's kernel route to the VIP, if it has one.
    fn route(&self) -> Option<String> {
        let out = self.rt.ip(&["route", "show", VIP]).unwrap();
        (!out.trim().is_empty()).then(|| out.trim().to_string())
    }

    /// Whether the router's session with the balancer is established.
    fn established(&self) -> bool {
        let ctl = self.dir.join("router.ctl");
        let out = self
            .rt
            .run(&[
                "birdc",
                "-s",
                ctl.to_str().unwrap(),
                "show",
                "protocols",
                "lb1",
            ])
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.contains("Established")
    }

    fn bird_pids(&self) -> Vec<i32> {
        self.lb
            .pids()
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "bird")
            })
            .collect()
    }

    fn logs(&self, speaker: &Speaker) -> String {
        format!(
            "speaker:\n{}\nrouter:\n{}",
            std::fs::read_to_string(&speaker.log).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("router.log")).unwrap_or_default()
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("LBD_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

struct Speaker {
    guard: ChildGuard,
    log: PathBuf,
}

impl Speaker {
    fn send(&mut self, line: &str) {
        let stdin = self.guard.child_mut().stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

#[test]
fn the_router_follows_health_and_drops_the_route_when_lbd_dies_or_stops() {
    let lab = Lab::new();
    let mut speaker = lab.speaker("speaker1.log");
    speaker.send("up");
    let route = wait::until_some(20 * SEC, POLL, || lab.route());
    let route =
        route.unwrap_or_else(|| panic!("no route to {VIP} at the router\n{}", lab.logs(&speaker)));
    assert!(route.contains(&format!("via {BALANCER}")), "{route}");
    assert!(route.contains("proto bird"), "{route}");
    // The VIP is local on the balancer (DR's packets are for it).
    let lo = lab.lb.ip(&["addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains(&format!("{VIP}/32")), "{lo}");

    // The service's last real goes down: the route goes, the session stays.
    let down = Instant::now();
    speaker.send("down");
    let took = wait::until(5 * SEC, POLL, || lab.route().is_none()).unwrap_or_else(|| {
        panic!(
            "the route stayed after the last real went down\n{}",
            lab.logs(&speaker)
        )
    });
    let health_down = down.elapsed();
    assert!(
        lab.established(),
        "the session must stay up: {}",
        lab.logs(&speaker)
    );
    assert!(took < 2 * SEC, "withdrawal took {took:?}");

    // Back up: announced again on the same session.
    let up = Instant::now();
    speaker.send("up");
    assert!(
        wait::until(5 * SEC, POLL, || lab.route().is_some()).is_some(),
        "not announced again\n{}",
        lab.logs(&speaker)
    );
    let health_up = up.elapsed();

    // kill -9 of the process running the subsystem: BIRD dies with it, its session closes,
    // and the router drops the route without waiting out the hold time.
    assert_eq!(lab.bird_pids().len(), 1, "one BIRD on the balancer");
    let killed = Instant::now();
    speaker.guard.kill().unwrap();
    let gone = wait::until(5 * SEC, Duration::from_millis(5), || lab.route().is_none());
    let kill9 = killed.elapsed();
    assert!(
        gone.is_some(),
        "the router kept the route of a dead lbd\n{}",
        lab.logs(&speaker)
    );
    assert!(
        wait::until(2 * SEC, POLL, || lab.bird_pids().is_empty()).is_some(),
        "BIRD outlived its lbd"
    );

    // Orderly stop: the route goes while the session is still up, then the session closes.
    let mut speaker = lab.speaker("speaker2.log");
    speaker.send("up");
    assert!(
        wait::until(20 * SEC, POLL, || lab.route().is_some()
            && lab.established())
        .is_some(),
        "not announced after a restart\n{}",
        lab.logs(&speaker)
    );
    let stop = Instant::now();
    speaker.send("stop");
    wait::until(5 * SEC, Duration::from_millis(5), || lab.route().is_none()).unwrap_or_else(|| {
        panic!(
            "the route stayed through an orderly stop\n{}",
            lab.logs(&speaker)
        )
    });
    let withdrawn = stop.elapsed();
    assert!(
        lab.established(),
        "the session closed before the withdrawal reached the router\n{}",
        lab.logs(&speaker)
    );
    assert!(
        wait::until(5 * SEC, POLL, || !lab.established()).is_some(),
        "the session stayed up after the stop"
    );
    let closed = stop.elapsed();
    assert!(speaker
        .guard
        .wait_exit(5 * SEC)
        .is_some_and(|s| s.success()));
    eprintln!(
        "figures: health down → route withdrawn at the router {health_down:?}; health up → route back {health_up:?}; \
         kill -9 → route dropped {kill9:?}; orderly stop → withdrawn {withdrawn:?}, session closed {closed:?}"
    );
}
