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
/// An IPv6 VIP, announced over the IPv6 session.
const VIP6: &str = "2001:db8:100::10";
const BALANCER: &str = "10.77.0.2";
const BALANCER6: &str = "2001:db8:77::2";
const ROUTER6: &str = "2001:db8:77::1";
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
watchdog = "2s"

[bgp.peer.router]
address = "{ROUTER}"
remote_as = 65000

[bgp.peer.router6]
address = "{ROUTER6}"
remote_as = 65000

[service.web]
vip = "{VIP}:80"
announce = "bgp"
forwarding = "dr"
[[service.web.real]]
address = "10.0.0.1"

[service.web6]
vip = "[{VIP6}]:80"
announce = "bgp"
forwarding = "dr"
[[service.web6.real]]
address = "[2001:db8:1::1]:80"
"#
    )
}

const ROUTER_CONF: &str = r#"
router id 10.77.0.1;
log stderr all;
protocol device { }
protocol kernel { ipv4 { export all; }; merge paths on; }
protocol kernel { ipv6 { export all; }; merge paths on; }
protocol bgp lb1 {
  local 10.77.0.1 as 65000;
  neighbor 10.77.0.2 as 65001;
  hold time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 4;
  ipv4 { import all; export none; };
}
protocol bgp lb1v6 {
  local 2001:db8:77::1 as 65000;
  neighbor 2001:db8:77::2 as 65001;
  hold time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 4;
  ipv6 { import all; export none; };
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
        let liveness = bgp.liveness();
        // Like the daemon's loop: it beats while it turns, and its first config comes with no
        // health known yet (down here, so that `up` is a change).
        let mut beat = tokio::time::interval(lbd::liveness::BEAT_INTERVAL);
        let mut quiet_until = None;
        let mut next = Some(Health::Down);
        loop {
            let health = match next.take() {
                Some(h) => h,
                None => {
                    let cmd = tokio::select! {
                        cmd = rx.recv() => cmd,
                        _ = beat.tick() => {
                            if quiet_until.is_none_or(|t| Instant::now() >= t) {
                                liveness.beat(lbd::liveness::Loop::Daemon);
                            }
                            continue;
                        }
                    };
                    let Some(cmd) = cmd else { break };
                    let words: Vec<&str> = cmd.split_whitespace().collect();
                    match words[..] {
                        ["up"] => Health::Up,
                        ["down"] => Health::Down,
                        ["stop"] => break,
                        // The loop blocks its thread (and so the whole runtime, BIRD's
                        // subsystem with it), like a hung lbd.
                        ["hang", secs] => {
                            println!("hanging for {secs} s");
                            std::thread::sleep(Duration::from_secs(secs.parse().unwrap()));
                            println!("turning again");
                            continue;
                        }
                        // The runtime runs but the loop does not turn (stuck on an await).
                        ["quiet", secs] => {
                            quiet_until =
                                Some(Instant::now() + Duration::from_secs(secs.parse().unwrap()));
                            continue;
                        }
                        _ => panic!("unknown command {cmd:?}"),
                    }
                }
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
        lb.ip(&[
            "addr",
            "add",
            &format!("{BALANCER6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
        rt.ip(&[
            "addr",
            "add",
            &format!("{ROUTER6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
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

    /// The router's kernel route to the IPv6 VIP, if it has one.
    fn route6(&self) -> Option<String> {
        let out = self.rt.ip(&["-6", "route", "show", VIP6]).unwrap();
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
    // The IPv6 VIP over the IPv6 session.
    let route6 = wait::until_some(10 * SEC, POLL, || lab.route6())
        .unwrap_or_else(|| panic!("no route to {VIP6} at the router\n{}", lab.logs(&speaker)));
    assert!(route6.contains(&format!("via {BALANCER6}")), "{route6}");
    // The VIPs are local on the balancer (DR's packets are for them).
    let lo = lab.lb.ip(&["addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains(&format!("{VIP}/32")), "{lo}");
    assert!(lo.contains(&format!("{VIP6}/128")), "{lo}");

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
    // The other VIP is untouched.
    assert!(
        lab.route6().is_some(),
        "withdrawing {VIP} took {VIP6} with it\n{}",
        lab.logs(&speaker)
    );

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
    let gone = wait::until(5 * SEC, Duration::from_millis(5), || {
        lab.route().is_none() && lab.route6().is_none()
    });
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

/// A hung lbd must not keep announcing: the watchdog (`watchdog = "2s"` here) kills BIRD when
/// the daemon's loop stops turning, whether its thread is blocked or the loop waits on
/// something; BIRD is not started again until the loop turns. Then a restarted lbd whose config
/// no longer has the N-way service takes its VIP off `lo`.
#[test]
fn a_hung_lbd_stops_announcing_and_a_restarted_one_takes_off_what_it_no_longer_has() {
    let lab = Lab::new();
    let mut speaker = lab.speaker("hung.log");
    speaker.send("up");
    wait::until_some(20 * SEC, POLL, || lab.route())
        .unwrap_or_else(|| panic!("no route to {VIP} at the router\n{}", lab.logs(&speaker)));

    // The loop's thread blocks for 15 s: the route goes while it is still blocked.
    let hung = Instant::now();
    speaker.send("hang 15");
    wait::until(12 * SEC, Duration::from_millis(10), || {
        lab.route().is_none()
    })
    .unwrap_or_else(|| {
        panic!(
            "the router kept the route of a hung lbd\n{}",
            lab.logs(&speaker)
        )
    });
    let blocked_withdrawn = hung.elapsed();
    assert!(
        blocked_withdrawn < 15 * SEC,
        "withdrawn only after the hang ended"
    );
    // It turns again: BIRD is started again and the route comes back.
    wait::until(40 * SEC, POLL, || lab.route().is_some())
        .unwrap_or_else(|| panic!("not announced again after the hang\n{}", lab.logs(&speaker)));
    let blocked_back = hung.elapsed();

    // The runtime runs but the loop is silent for 20 s: killed, and not started again while
    // the silence lasts (a restarted BIRD would bring the route back within seconds).
    let quiet = Instant::now();
    speaker.send("quiet 20");
    wait::until(12 * SEC, Duration::from_millis(10), || {
        lab.route().is_none()
    })
    .unwrap_or_else(|| {
        panic!(
            "the router kept the route of a silent lbd\n{}",
            lab.logs(&speaker)
        )
    });
    let quiet_withdrawn = quiet.elapsed();
    let mut came_back = None;
    while quiet.elapsed() < 18 * SEC {
        if lab.route().is_some() {
            came_back = Some(quiet.elapsed());
            break;
        }
        std::thread::sleep(POLL);
    }
    assert_eq!(
        came_back,
        None,
        "announced again while the loop was still silent\n{}",
        lab.logs(&speaker)
    );
    wait::until(40 * SEC, POLL, || lab.route().is_some()).unwrap_or_else(|| {
        panic!(
            "not announced again after the silence\n{}",
            lab.logs(&speaker)
        )
    });
    let quiet_back = quiet.elapsed();
    let log = std::fs::read_to_string(&speaker.log).unwrap_or_default();
    assert!(
        log.contains("has not turned for"),
        "the watchdog said nothing\n{log}"
    );

    // kill -9: the VIP stays on lo (a restarted lbd finds it there)...
    speaker.guard.kill().unwrap();
    let on_lo = || lab.lb.ip(&["addr", "show", "dev", "lo"]).unwrap();
    assert!(on_lo().contains(&format!("{VIP}/32")), "{}", on_lo());
    // ... and the next lbd's config has no N-way service any more: it takes the VIP off.
    let text = lbd_config();
    let without = &text[..text.find("[service.web]").unwrap()];
    std::fs::write(lab.dir.join("lbd.toml"), without).unwrap();
    let mut speaker = lab.speaker("restarted.log");
    wait::until(10 * SEC, POLL, || !on_lo().contains(VIP)).unwrap_or_else(|| {
        panic!(
            "the restarted lbd left {VIP} on lo: {}\n{}",
            on_lo(),
            lab.logs(&speaker)
        )
    });
    speaker.send("stop");
    assert!(speaker
        .guard
        .wait_exit(10 * SEC)
        .is_some_and(|s| s.success()));
    eprintln!(
        "figures (watchdog 2 s): thread blocked → route withdrawn {blocked_withdrawn:?}, back {blocked_back:?} after a 15 s hang; \
         loop silent → withdrawn {quiet_withdrawn:?}, back {quiet_back:?} after 20 s of silence"
    );
}
