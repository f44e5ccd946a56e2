//! The check engine as lbd runs it (the `CheckSubsystem` thread), against real servers inside a
//! test network namespace: rise and fall counted exactly (the server's own log of what it
//! answered is compared with the moment the state changed), each change logged once with its
//! reason, the pacing of interval and retry delay, reload keeping states, quorum and the
//! all-down signal, exec weights, thousands of checks spread over the interval, and HTTP
//! keep-alive connections kept per real until their check goes.

mod check_support;

use check_support::*;
use lbd::check::engine::START_TICK;
use lbd::check::subsystem::CheckSubsystem;
use lbd::check::{CheckState, Failure, HealthReport};
use lbd::daemon::Subsystem;
use lbd::reconcile::Health;
use lbtest::wait;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MS: Duration = Duration::from_millis(1);

/// Everything lbd logs in this test binary.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

/// Log lines containing `needle`.
fn log_lines(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs().lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// The state of a real (`None` before the config reached the engine).
fn state(r: &HealthReport, svc: &str, real: &str) -> Option<CheckState> {
    r.real(svc, &real.parse().unwrap()).map(|s| s.state)
}

/// An HTTP server whose answer the test switches: 0 = 200, 1 = 503, 2 = read and never answer.
/// It logs (time, mode) for every request it gets.
struct Switchable {
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<(SystemTime, u8)>>>,
}

impl Switchable {
    async fn start(addr: &str) -> Switchable {
        let mode = Arc::new(AtomicU8::new(0));
        let seen: Arc<Mutex<Vec<(SystemTime, u8)>>> = Arc::default();
        let l = TcpListener::bind(addr).await.unwrap();
        let (m, s) = (mode.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = l.accept().await.unwrap();
                let (m, s) = (m.clone(), s.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 512];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let mode = m.load(Ordering::SeqCst);
                    s.lock().unwrap().push((SystemTime::now(), mode));
                    let status = match mode {
                        0 => "200 OK",
                        1 => "503 Service Unavailable",
                        _ => {
                            tokio::time::sleep(Duration::from_secs(10)).await;
                            return;
                        }
                    };
                    let _ = conn
                        .write_all(
                            format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        Switchable { mode, seen }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Requests answered in `mode` strictly after `after` and up to `until`.
    fn count(&self, mode: u8, after: SystemTime, until: SystemTime) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, m)| *m == mode && *t > after && *t <= until)
            .count()
    }

    /// Gaps between consecutive requests in `mode` after `after`.
    fn gaps(&self, mode: u8, after: SystemTime) -> Vec<Duration> {
        let times: Vec<SystemTime> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, m)| *m == mode && *t > after)
            .map(|(t, _)| *t)
            .collect();
        times
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
            .collect()
    }
}

#[test]
fn fall_and_rise_counted_exactly_against_a_real_server_with_reasons_logged_once() {
    require(&[]);
    capture_logs();
    let ns = Netns::new("hyst");
    ns.run(|| async {
        let server = Switchable::start("127.0.0.1:8100").await;
        let cfg = config(
            r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "http", interval = "150ms", timeout = "100ms", retry_delay = "60ms", jitter = "20ms", rise = 3, fall = 2 }

[[service.web.real]]
address = "127.0.0.1:8100"
"#,
        );
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &cfg);
        let real = "127.0.0.1:8100";
        let r = wait::expect_watch("first check", &mut rx, 2 * Duration::from_secs(1), |r| {
            r.real("web", &real.parse().unwrap()).is_some_and(|s| s.state == CheckState::Up)
        })
        .await;
        let up_since = r.real("web", &real.parse().unwrap()).unwrap().since.unwrap();

        // 503: down after exactly `fall` (2) bad answers.
        let t503 = SystemTime::now();
        server.set(1);
        let r = wait::expect_watch("down on 503", &mut rx, Duration::from_secs(3), |r| {
            state(r, "web", real) == Some(CheckState::Down)
        })
        .await;
        let s = r.real("web", &real.parse().unwrap()).unwrap().clone();
        assert_eq!(s.reason, Some(Failure::BadStatus(503)));
        let down_at = s.since.unwrap();
        assert_eq!(server.count(1, t503, down_at), 2, "503 answers before the real went down");
        assert_eq!(r.real_health().get("web", &real.parse().unwrap()), Health::Down);
        // The retry after the first failure came after retry_delay, not after the interval.
        let gaps = server.gaps(1, t503);
        assert!(
            gaps[0] >= 50 * MS && gaps[0] < 130 * MS,
            "retry gap {:?} (retry_delay 60ms ± 10ms jitter + check time)",
            gaps[0]
        );

        // Healthy again: up after exactly `rise` (3) good answers.
        let t200 = SystemTime::now();
        server.set(0);
        let r = wait::expect_watch("up again", &mut rx, Duration::from_secs(3), |r| {
            state(r, "web", real) == Some(CheckState::Up)
        })
        .await;
        let s = r.real("web", &real.parse().unwrap()).unwrap().clone();
        assert_eq!(s.reason, None);
        let up_at = s.since.unwrap();
        assert_eq!(server.count(0, t200, up_at), 3, "good answers before the real came back");
        // While down and while up, checks come every interval (150ms ± 10ms jitter), timed
        // from when each was due; one may start up to a START_TICK late.
        tokio::time::sleep(500 * MS).await;
        for gap in server.gaps(0, t200) {
            assert!(
                gap >= 140 * MS - START_TICK && gap < 230 * MS,
                "interval gap {gap:?}"
            );
        }

        // Half-open: the server reads the request and never answers.
        let tsilent = SystemTime::now();
        server.set(2);
        let r = wait::expect_watch("down on silence", &mut rx, Duration::from_secs(3), |r| {
            state(r, "web", real) == Some(CheckState::Down)
        })
        .await;
        let s = r.real("web", &real.parse().unwrap()).unwrap().clone();
        assert_eq!(
            s.reason.as_ref().map(|f| f.to_string()).as_deref(),
            Some("timeout after 100ms (waiting for the response)")
        );
        assert_eq!(server.count(2, tsilent, s.since.unwrap()), 2);
        checks.stop();

        // Each change was logged exactly once, with its reason.
        let mine = log_lines("real 127.0.0.1:8100 of service web");
        assert_eq!(
            mine.iter()
                .map(|l| {
                    let msg = l.split("real 127.0.0.1:8100").nth(1).unwrap();
                    msg.split(" service=").next().unwrap().to_string()
                })
                .collect::<Vec<_>>(),
            [
                " of service web is down: bad status 503 (after 2 failed checks)",
                " of service web is up again (after 3 successful checks)",
                " of service web is down: timeout after 100ms (waiting for the response) (after 2 failed checks)",
            ],
            "{mine:#?}"
        );
        assert!(mine[0].contains("WARN"), "{}", mine[0]);
        let _ = up_since;
    });
}

#[test]
fn reload_keeps_states_quorum_and_all_down_follow_the_reals() {
    require(&[]);
    capture_logs();
    let ns = Netns::new("reload");
    ns.run(|| async {
        // Two reals listen, the third does not.
        let a = TcpListener::bind("127.0.0.1:8201").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:8202").await.unwrap();
        let text = r#"
[service.app]
vip = "192.0.2.10:8200"
scheduler = "wrr"
forwarding = "nat"
sorry_server = "127.0.0.1:8299"
quorum = { min_weight = 3, hysteresis = 1 }
check = { type = "tcp", interval = "100ms", timeout = "80ms", rise = 1, fall = 1 }

[[service.app.real]]
address = "127.0.0.1:8201"
weight = 2

[[service.app.real]]
address = "127.0.0.1:8202"
weight = 2

[[service.app.real]]
address = "127.0.0.1:8203"
weight = 1
"#;
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        // What VRRP would be told, per instance.
        let told: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let t = told.clone();
        checks.forward_quorum(move |instance, lost| {
            t.lock().unwrap().push((instance.to_string(), lost));
        });
        checks.apply(None, &config(text));
        let r = wait::expect_watch("first round", &mut rx, Duration::from_secs(2), |r| {
            state(r, "app", "127.0.0.1:8201") == Some(CheckState::Up)
                && state(r, "app", "127.0.0.1:8202") == Some(CheckState::Up)
                && state(r, "app", "127.0.0.1:8203") == Some(CheckState::Down)
        })
        .await;
        let app = &r.services["app"];
        assert_eq!((app.reals_up, app.up_weight), (2, 4));
        assert!(app.quorum_up());
        assert_eq!(
            r.real("app", &"127.0.0.1:8203".parse().unwrap())
                .unwrap()
                .reason,
            Some(Failure::Refused)
        );

        // .8202 dies: weight 2 < 3, quorum lost.
        drop(b);
        let r = wait::expect_watch("quorum lost", &mut rx, Duration::from_secs(2), |r| {
            !r.services["app"].quorum_up()
        })
        .await;
        assert_eq!(r.quorum_lost(), ["app"]);
        assert_eq!(
            log_lines("service app lost its quorum: up weight 2 is below 3").len(),
            1
        );
        // The VIP's VRRP instance (V in the test header) hears of it, once.
        assert_eq!(told.lock().unwrap().as_slice(), [("V".to_string(), true)]);

        // Reload: .8203's check changes, .8202 leaves. .8203 stays down right away (its state
        // is kept, not reset to unknown), .8202 is gone from the report.
        let reloaded = text
            .replace(
                "address = \"127.0.0.1:8202\"\nweight = 2\n",
                "address = \"127.0.0.1:8204\"\nweight = 2\n",
            )
            .replace(
                "address = \"127.0.0.1:8203\"\nweight = 1\n",
                "address = \"127.0.0.1:8203\"\nweight = 1\ncheck = { interval = \"200ms\" }\n",
            );
        let before = SystemTime::now();
        checks.apply(None, &config(&reloaded));
        let r = wait::expect_watch("reload applied", &mut rx, Duration::from_secs(2), |r| {
            r.real("app", &"127.0.0.1:8204".parse().unwrap()).is_some()
        })
        .await;
        assert_eq!(state(&r, "app", "127.0.0.1:8203"), Some(CheckState::Down));
        assert!(r.real("app", &"127.0.0.1:8202".parse().unwrap()).is_none());
        assert!(
            r.real("app", &"127.0.0.1:8203".parse().unwrap())
                .unwrap()
                .since
                .unwrap()
                < before
        );

        // Everything down: the sorry server is announced once.
        drop(a);
        let r = wait::expect_watch("all down", &mut rx, Duration::from_secs(2), |r| {
            r.services["app"].all_down()
        })
        .await;
        assert_eq!(
            r.services["app"].sorry,
            Some("127.0.0.1:8299".parse().unwrap())
        );
        assert_eq!(
            log_lines("service app: no real is up; sorry server 127.0.0.1:8299 takes the traffic")
                .len(),
            1
        );
        // One comes back: the quorum needs min + hysteresis = 4; weight 2 is not enough.
        let _back = TcpListener::bind("127.0.0.1:8201").await.unwrap();
        let r = wait::expect_watch("one back", &mut rx, Duration::from_secs(2), |r| {
            !r.services["app"].all_down()
        })
        .await;
        assert!(!r.services["app"].quorum_up());
        checks.stop();
    });
}

#[test]
fn exec_check_weights_and_failures_reach_the_report() {
    require(&["sh"]);
    capture_logs();
    let dir = TempDir::new("exec");
    let code = dir.write("code", "12");
    let script = dir.write(
        "check.sh",
        format!(
            "#!/bin/sh\n[ \"$LBD_REAL_IP:$LBD_REAL_PORT\" = 127.0.0.1:8301 ] || exit 1\nexit $(cat {})\n",
            code.display()
        ),
    );
    let ns = Netns::new("exec");
    let script = script.display().to_string();
    let code = code.clone();
    ns.run(move || async move {
        let cfg = config(&format!(
            r#"
[service.app]
vip = "192.0.2.10:8300"
scheduler = "wrr"
forwarding = "nat"
check = {{ type = "exec", command = ["sh", "{script}"], weight_from_exit = true, interval = "100ms", rise = 1, fall = 1 }}

[[service.app.real]]
address = "127.0.0.1:8301"
weight = 5
"#
        ));
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &cfg);
        let real: SocketAddr = "127.0.0.1:8301".parse().unwrap();
        let r = wait::expect_watch("weight 10", &mut rx, Duration::from_secs(3), |r| {
            r.real("app", &real).is_some_and(|s| s.weight == Some(10))
        })
        .await;
        assert_eq!(r.weights()[&("app".to_string(), real)], 10);
        assert_eq!(r.services["app"].up_weight, 10);
        std::fs::write(&code, "1").unwrap();
        let r = wait::expect_watch("exit 1", &mut rx, Duration::from_secs(3), |r| {
            r.real("app", &real).is_some_and(|s| s.state == CheckState::Down)
        })
        .await;
        assert_eq!(r.real("app", &real).unwrap().reason, Some(Failure::Exit(1)));
        checks.stop();
    });
    assert_eq!(
        log_lines(
            "real 127.0.0.1:8301 of service app: check sets weight 10 (was the configured weight)"
        )
        .len(),
        1
    );
}

#[test]
fn two_thousand_checks_spread_over_the_interval() {
    require(&[]);
    let ns = Netns::new("spread");
    ns.run(|| async {
        // 2000 reals (distinct ports) whose checks all connect to one listener.
        let mut text = String::from(
            r#"
[service.many]
vip = "192.0.2.10:9000"
scheduler = "rr"
forwarding = "nat"
check = { type = "tcp", port = 9000, interval = "1s", timeout = "500ms" }
"#,
        );
        for i in 0..2000 {
            text += &format!(
                "[[service.many.real]]\naddress = \"127.0.0.1:{}\"\n",
                20000 + i
            );
        }
        let cfg = config(&text);
        let accepts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let l = TcpListener::bind("127.0.0.1:9000").await.unwrap();
        let acc = accepts.clone();
        tokio::spawn(async move {
            loop {
                let (_c, _) = l.accept().await.unwrap();
                acc.lock().unwrap().push(Instant::now());
            }
        });
        let mut checks = CheckSubsystem::start().unwrap();
        let rx = checks.health();
        let start = Instant::now();
        checks.apply(None, &cfg);
        tokio::time::sleep(Duration::from_millis(2800)).await;
        checks.stop();
        let times = accepts.lock().unwrap().clone();
        // Lock-step would start all 2000 first checks within a few milliseconds; phased,
        // they spread over the 1 s interval. Load on a shared machine only delays and widens
        // the accepts, so the width of the middle 80% of the first round is a load-robust
        // measure (exact spreading is unit-tested on the scheduler's own plan).
        let mut first_round: Vec<u128> = times
            .iter()
            .map(|t| t.duration_since(start).as_millis())
            .collect();
        first_round.sort_unstable();
        first_round.truncate(2000);
        assert!(
            first_round.len() >= 1800,
            "only {} checks reached the listener in 2.8 s",
            first_round.len()
        );
        let p10 = first_round[first_round.len() / 10];
        let p90 = first_round[first_round.len() * 9 / 10];
        assert!(
            p90 - p10 >= 400,
            "the first round of checks bunches up: 80% of them within {} ms (p10 {p10} ms, p90 {p90} ms)",
            p90 - p10
        );
        let r = rx.borrow().clone();
        assert_eq!(r.services["many"].reals_up, 2000);
    });
}

#[test]
fn health_reports_drive_the_reconcile_plan_inhibit_remove_and_sorry() {
    use lbd::reconcile::{desired, plan, KernelState, Overrides, SyncRole};
    require(&[]);
    let ns = Netns::new("plan");
    ns.run(|| async {
        let web1 = TcpListener::bind("127.0.0.1:8401").await.unwrap();
        let web2 = TcpListener::bind("127.0.0.1:8402").await.unwrap();
        let dns1 = TcpListener::bind("127.0.0.1:8411").await.unwrap();
        let _dns2 = TcpListener::bind("127.0.0.1:8412").await.unwrap();
        let cfg = config(
            r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "wrr"
forwarding = "nat"
on_failure = "inhibit"
sorry_server = "127.0.0.1:8499"
check = { type = "tcp", interval = "100ms", rise = 1, fall = 1 }

[[service.web.real]]
address = "127.0.0.1:8401"
weight = 3

[[service.web.real]]
address = "127.0.0.1:8402"

[service.app]
vip = "192.0.2.10:81"
scheduler = "rr"
forwarding = "nat"
on_failure = "remove"
check = { type = "tcp", interval = "100ms", rise = 1, fall = 1 }

[[service.app.real]]
address = "127.0.0.1:8411"

[[service.app.real]]
address = "127.0.0.1:8412"
"#,
        );
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &cfg);
        // The kernel as lbd programmed it with every real up.
        let mut kernel = KernelState::default();
        let all_up = desired(
            &cfg,
            &Default::default(),
            &Overrides::default(),
            SyncRole::Master,
        );
        for op in plan(&all_up, &kernel) {
            kernel.apply(&op);
        }
        let ops = |r: &HealthReport| -> Vec<String> {
            let d = desired(
                &cfg,
                &r.real_health(),
                &Overrides::default(),
                SyncRole::Master,
            );
            plan(&d, &kernel).iter().map(|o| o.to_string()).collect()
        };
        let r = wait::expect_watch("all checked", &mut rx, Duration::from_secs(2), |r| {
            r.services
                .values()
                .all(|s| s.reals.values().all(|x| x.state == CheckState::Up))
        })
        .await;
        assert_eq!(ops(&r), Vec::<String>::new());

        // A web real dies: inhibit keeps it at weight 0. An app real dies: removed.
        drop(web1);
        drop(dns1);
        let r = wait::expect_watch("two down", &mut rx, Duration::from_secs(2), |r| {
            state(r, "web", "127.0.0.1:8401") == Some(CheckState::Down)
                && state(r, "app", "127.0.0.1:8411") == Some(CheckState::Down)
        })
        .await;
        assert_eq!(
            ops(&r),
            [
                "edit real 127.0.0.1:8401 of tcp 192.0.2.10:80 (weight 0)",
                "delete real 127.0.0.1:8411 from tcp 192.0.2.10:81",
            ]
        );
        // Every web real down: the sorry server comes in.
        drop(web2);
        let r = wait::expect_watch("web all down", &mut rx, Duration::from_secs(2), |r| {
            r.services["web"].all_down()
        })
        .await;
        assert_eq!(
            ops(&r),
            [
                "add real 127.0.0.1:8499 to tcp 192.0.2.10:80 (weight 1)",
                "edit real 127.0.0.1:8401 of tcp 192.0.2.10:80 (weight 0)",
                "edit real 127.0.0.1:8402 of tcp 192.0.2.10:80 (weight 0)",
                "delete real 127.0.0.1:8411 from tcp 192.0.2.10:81",
            ]
        );
        checks.stop();
    });
}

#[test]
fn warmup_delays_the_first_check() {
    require(&[]);
    let ns = Netns::new("warmup");
    ns.run(|| async {
        let server = Switchable::start("127.0.0.1:8501").await;
        let cfg = config(
            r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "http", interval = "100ms", warmup = "600ms" }

[[service.web.real]]
address = "127.0.0.1:8501"
"#,
        );
        let mut checks = CheckSubsystem::start().unwrap();
        let applied = SystemTime::now();
        checks.apply(None, &cfg);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        checks.stop();
        let seen = server.seen.lock().unwrap().clone();
        let first = seen.first().expect("checked after the warm-up").0;
        let after = first.duration_since(applied).unwrap();
        // Warm-up, plus a phase within one interval.
        assert!(
            after >= 600 * MS && after < 800 * MS,
            "first check {after:?} after the config"
        );
    });
}

/// Connections a keep-alive HTTP server saw: accepted, requests answered, ended.
#[derive(Clone, Default)]
struct KeptCounts {
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    answered: Arc<std::sync::atomic::AtomicUsize>,
    ended: Arc<std::sync::atomic::AtomicUsize>,
}

impl KeptCounts {
    fn get(&self) -> (usize, usize, usize) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed),
        )
    }

    /// Serves HTTP/1.1 at `addr`, keeping every connection until the client ends it.
    async fn serve(&self, addr: &str) {
        let l = TcpListener::bind(addr).await.unwrap();
        let counts = self.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                counts.accepted.fetch_add(1, Ordering::Relaxed);
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                        if req.windows(4).any(|w| w == b"\r\n\r\n") {
                            req.clear();
                            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                            if s.write_all(ok).await.is_err() {
                                break;
                            }
                            counts.answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    counts.ended.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
    }
}

#[test]
fn keep_alive_checks_keep_a_connection_per_real_until_their_check_goes() {
    require(&[]);
    let ns = Netns::new("ekeep");
    ns.run(|| async {
        let counts = KeptCounts::default();
        counts.serve("127.0.0.1:8401").await;
        counts.serve("127.0.0.1:8402").await;
        let service = |reals: &[u16]| {
            let mut t = r#"
[service.web]
vip = "192.0.2.10:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "http", keep_alive = true, interval = "100ms", timeout = "80ms", rise = 1, fall = 1 }
"#
            .to_string();
            for port in reals {
                t += &format!("[[service.web.real]]\naddress = \"127.0.0.1:{port}\"\n");
            }
            config(&t)
        };
        let mut checks = CheckSubsystem::start().unwrap();
        let mut rx = checks.health();
        checks.apply(None, &service(&[8401, 8402]));
        wait::expect_watch("both up", &mut rx, Duration::from_secs(3), |r| {
            state(r, "web", "127.0.0.1:8401") == Some(CheckState::Up)
                && state(r, "web", "127.0.0.1:8402") == Some(CheckState::Up)
        })
        .await;
        // About ten runs a second per real, all on one connection each.
        tokio::time::sleep(1200 * MS).await;
        let (accepted, answered, ended) = counts.get();
        assert_eq!((accepted, ended), (2, 0), "{answered} answered");
        assert!(answered >= 16, "{answered} answered in 1.2s at 100ms");

        // A reload that drops a real closes its connection; the other real keeps its own.
        checks.apply(None, &service(&[8401]));
        wait::until_async(Duration::from_secs(2), 10 * MS, || counts.get().2 >= 1).await;
        tokio::time::sleep(300 * MS).await;
        let (accepted, answered_now, ended) = counts.get();
        assert_eq!((accepted, ended), (2, 1));
        assert!(answered_now >= answered + 2, "the kept real is still checked");

        // Stopping closes the last one.
        checks.stop();
        wait::until_async(Duration::from_secs(2), 10 * MS, || counts.get().2 >= 2).await;
        assert_eq!(counts.get().2, 2, "every kept connection closed at stop");
    });
}
