//! The whole appliance as a pair: two balancers booted from the test image on one bridge, with
//! real servers and a client in network namespaces on the same bridge, a DR service on a VRRP
//! VIP, and IPVS connection sync following the VRRP instance. The master guest is killed hard
//! (SIGKILL of its QEMU); the backup takes the VIP, its sync daemon becomes the master one, new
//! requests continue through it, and a TCP connection established before the kill keeps
//! echoing — the same connection, carried by the connection entry the old master synced.
//!
//! ```text
//!   namespace "failover": br0 10.71.0.1 (config server :8080), multicast snooping off
//!     ├─ tap0 ── lb1 10.71.0.11  priority 150 ┐ VRRP v3 vrid 71, 1 s adverts
//!     ├─ tap1 ── lb2 10.71.0.12  priority 100 ┘ VIP 10.71.0.100, sync daemon on eth0
//!     ├─ veth ── r1 10.71.0.21 ┐ DR reals: VIP on lo, arp_ignore=1 arp_announce=2,
//!     ├─ veth ── r2 10.71.0.22 ┘ HTTP :80 and a line echo :9000 (python3), both name the real
//!     └─ veth ── client 10.71.0.2  (this test's threads: requests and a long connection)
//! ```
//!
//! The control: the killed balancer comes back without `[ipvs.sync]` and preempts (priority
//! 150). A connection opened through lb2 has no entry on lb1, so lb1's stack answers its next
//! segment with a reset — the same check that passes above fails without synced state.
//!
//! The independent checks are `ipvsadm -Ln --daemon` / `-Lnc` and `ip addr` on each guest's
//! debug shell (ttyS1). Figures (printed, never asserted): the gap in successful requests around
//! each VIP move, and the long connection's longest pause across the failover.
//!
//! Needs root, QEMU, python3, the kernel package (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh target/lb-test-image`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell, ShellGuest};
use lbtest::{wait, ChildGuard, MacAddr, Netns, Nic, StaticServer};

/// Two TCG guests booting at once on a busy 2-core machine.
const BOOT: Duration = Duration::from_secs(300);
/// A VRRP or sync-daemon change, seen on a console or by polling a shell.
const STEP: Duration = Duration::from_secs(60);
const CMD: Duration = Duration::from_secs(60);
/// How often a shell, the client's log or a connection is polled while waiting for a change.
const POLL: Duration = Duration::from_millis(200);

const VIP: &str = "10.71.0.100";
const SERVER: &str = "10.71.0.1";
const CLIENT: &str = "10.71.0.2";
const CONFIG_PORT: u16 = 8080;

/// New connections: one GET every 100 ms, each connect and read bounded by 1 s; at most this
/// many, and never longer than [`CLIENT_LIMIT`].
const REQUEST_EVERY: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_REQUESTS: usize = 4000;
/// The long connection: a line every 200 ms, at most this many.
const LINE_EVERY: Duration = Duration::from_millis(200);
const MAX_LINES: usize = 3000;
/// A long connection with no echo for this long counts as dead (TCP's retransmission backoff
/// makes the first echo after an outage of a few seconds come several seconds late).
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// No client thread runs longer than this.
const CLIENT_LIMIT: Duration = Duration::from_secs(480);

/// A balancer of the pair.
struct Balancer {
    name: &'static str,
    mac: MacAddr,
    addr: &'static str,
    tap: &'static str,
    priority: u8,
}

const LB1: Balancer = Balancer {
    name: "lb1",
    mac: MacAddr([0x52, 0x54, 0x00, 0x71, 0x00, 0x11]),
    addr: "10.71.0.11",
    tap: "tap0",
    priority: 150,
};
const LB2: Balancer = Balancer {
    name: "lb2",
    mac: MacAddr([0x52, 0x54, 0x00, 0x71, 0x00, 0x12]),
    addr: "10.71.0.12",
    tap: "tap1",
    priority: 100,
};

/// A balancer's config; `sync` adds `[ipvs.sync]` following the VRRP instance.
fn config(lb: &Balancer, sync: bool) -> String {
    let sync = if sync {
        "\n[ipvs.sync]\ninterface = \"eth0\"\nsync_id = 71\nfollow = \"VI_1\"\n"
    } else {
        ""
    };
    format!(
        r#"[node]
hostname = "{name}"

[node.sysctl]
"net.ipv4.ip_forward" = 1
{sync}
[vrrp.instance.VI_1]
interface = "eth0"
vrid = 71
priority = {priority}
version = 3
advert_interval = "1s"
vips = ["{VIP}/32"]

[service.web]
vip = "{VIP}:80"
scheduler = "rr"
forwarding = "dr"

[[service.web.real]]
address = "10.71.0.21"

[[service.web.real]]
address = "10.71.0.22"

[service.echo]
vip = "{VIP}:9000"
scheduler = "rr"
forwarding = "dr"

[[service.echo.real]]
address = "10.71.0.21"

[[service.echo.real]]
address = "10.71.0.22"
"#,
        name = lb.name,
        priority = lb.priority,
    )
}

fn config_file(lb: &Balancer) -> String {
    format!("{}.toml", lb.mac.to_string().replace(':', "-"))
}

/// Boots `lb` from the test image on its tap, with a static address and its config fetched
/// by MAC from the namespace's HTTP server.
fn boot(ns: &Netns, lb: &Balancer, boot: Duration) -> ShellGuest {
    boot_with_shell(
        ApplianceBuilder::new(format!("failover-{}", lb.name))
            .nic(Nic::tap(lb.tap, lb.mac))
            .netns(ns)
            .append(format!(
                "ip={}::{SERVER}:255.255.255.0:{}:eth0:off",
                lb.addr, lb.name
            ))
            .config_url(format!(
                "http://{SERVER}:{CONFIG_PORT}/${{mac_hyphen}}.toml"
            )),
        boot,
    )
    .unwrap()
}

/// A real server: HTTP on :80 answering its name, and a line echo on :9000 answering
/// `NAME LINE`, so the client can tell which real holds a connection (the chaos lab's; its
/// health endpoint is not used here).
use lbtest::chaos::lab::REAL_SERVER;

/// The segment: the bridge namespace (config server), two reals and the client.
struct Lab {
    // Dropped first: the servers, then the namespaces.
    _reals: Vec<ChildGuard>,
    _http: StaticServer,
    configs: ConfigDir,
    client: Netns,
    _real_ns: Vec<Netns>,
    ns: Netns,
}

impl Lab {
    fn start() -> Lab {
        let ns = Netns::new("failover").expect("network namespaces (run the tests as root)");
        // Sync messages go to 224.0.0.81: no snooping surprises on the test bridge.
        ns.add_flooding_bridge("br0").unwrap();
        ns.add_addr("br0", &format!("{SERVER}/24")).unwrap();
        for n in [&LB1, &LB2] {
            ns.add_tap(n.tap, Some("br0")).unwrap();
        }
        let configs = ConfigDir::new().unwrap();
        for n in [&LB1, &LB2] {
            configs.publish(&config_file(n), &config(n, true)).unwrap();
        }
        let http =
            StaticServer::start_in(&ns, configs.path(), SERVER.parse().unwrap(), CONFIG_PORT)
                .unwrap();

        let mut real_ns = Vec::new();
        let mut reals = Vec::new();
        for (i, name) in ["r1", "r2"].into_iter().enumerate() {
            let r = Netns::new(&format!("failover-{name}")).unwrap();
            let host_end = format!("v{name}");
            ns.add_veth_to(&host_end, &r, "eth0").unwrap();
            ns.set_master(&host_end, "br0").unwrap();
            r.add_addr("eth0", &format!("10.71.0.{}/24", 21 + i))
                .unwrap();
            r.hold_dr_vips(&[VIP.parse().unwrap()]).unwrap();
            // A health file that never exists: the real always answers.
            let never = format!("/nonexistent/{name}-down");
            reals.push(
                r.spawn(&["python3", "-c", REAL_SERVER, name, &never])
                    .unwrap(),
            );
            real_ns.push(r);
        }
        let client = Netns::new("failover-client").unwrap();
        ns.add_veth_to("vclient", &client, "eth0").unwrap();
        ns.set_master("vclient", "br0").unwrap();
        client.add_addr("eth0", &format!("{CLIENT}/24")).unwrap();

        // The reals answer directly (not through the VIP yet).
        client
            .enter(|| {
                for (addr, name) in [("10.71.0.21", "r1"), ("10.71.0.22", "r2")] {
                    let mut last = None;
                    let answered =
                        wait::until(Duration::from_secs(30), Duration::from_millis(100), || {
                            let got = http_get(addr);
                            let ok = matches!(&got, Ok(body) if body == name);
                            last = Some(got);
                            ok
                        });
                    assert!(
                        answered.is_some(),
                        "real {name} at {addr} does not answer: {last:?}"
                    );
                }
            })
            .unwrap();
        Lab {
            _reals: reals,
            _http: http,
            configs,
            client,
            _real_ns: real_ns,
            ns,
        }
    }
}

/// One GET of `/` from `addr`:80; the body (the real's name) or why not.
fn http_get(addr: &str) -> Result<String, String> {
    let sa: SocketAddr = format!("{addr}:80").parse().unwrap();
    lbtest::chaos::load::http_get(sa, REQUEST_TIMEOUT)
}

/// Runs `f` on a new thread inside `ns` (the thread's own network namespace).
fn spawn_in<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = Path::new("/run/netns").join(ns.name());
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// One new-connection request: when it started (since the test's start) and what came back.
#[derive(Clone, Debug)]
struct Attempt {
    at: Duration,
    outcome: Result<String, String>,
}

/// A stop flag and a thread that watches it; stopped and joined on drop, so a failing test
/// does not wait for the client's own bounds.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// New connections to the VIP, continuously (bounded by [`MAX_REQUESTS`] and
/// [`CLIENT_LIMIT`]).
fn start_requests(ns: &Netns, t0: Instant) -> (Worker, Arc<Mutex<Vec<Attempt>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let thread = spawn_in(ns, {
        let (stop, log) = (stop.clone(), log.clone());
        move || {
            for _ in 0..MAX_REQUESTS {
                if stop.load(Ordering::Relaxed) || t0.elapsed() > CLIENT_LIMIT {
                    break;
                }
                let at = t0.elapsed();
                let outcome = http_get(VIP);
                log.lock().unwrap().push(Attempt { at, outcome });
                std::thread::sleep(REQUEST_EVERY);
            }
        }
    });
    (
        Worker {
            stop,
            thread: Some(thread),
        },
        log,
    )
}

/// What one long-lived connection saw.
#[derive(Clone, Debug, Default)]
struct Conversation {
    /// The client's end, once connected.
    local: Option<SocketAddr>,
    /// When each echo came back (since the test's start) and which real sent it.
    echoes: Vec<(Duration, String)>,
    /// When and how it ended, if it did before being stopped.
    end: Option<(Duration, String)>,
}

impl Conversation {
    fn echoes_after(&self, t: Duration) -> usize {
        self.echoes.iter().filter(|(at, _)| *at > t).count()
    }

    /// The longest time between two echoes (or from the last echo to the end).
    fn longest_pause(&self) -> (Duration, Duration) {
        let mut worst = (Duration::ZERO, Duration::ZERO);
        for w in self.echoes.windows(2) {
            let gap = w[1].0 - w[0].0;
            if gap > worst.0 {
                worst = (gap, w[0].0);
            }
        }
        worst
    }
}

/// One TCP connection to the VIP's echo service: a line every [`LINE_EVERY`], each echo
/// checked (the same real, the right line). Ends on a reset, a close, a wrong echo or
/// [`SILENCE_LIMIT`] without an echo; TCP itself retransmits while the VIP moves.
fn start_conversation(ns: &Netns, t0: Instant) -> (Worker, Arc<Mutex<Conversation>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(Conversation::default()));
    let thread = spawn_in(ns, {
        let (stop, state) = (stop.clone(), state.clone());
        move || {
            let end = |why: String| state.lock().unwrap().end = Some((t0.elapsed(), why));
            let sa: SocketAddr = format!("{VIP}:9000").parse().unwrap();
            let stream = match TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
                Ok(s) => s,
                Err(e) => return end(format!("connect: {e}")),
            };
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            state.lock().unwrap().local = stream.local_addr().ok();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut real: Option<String> = None;
            for n in 1..=MAX_LINES {
                if stop.load(Ordering::Relaxed) || t0.elapsed() > CLIENT_LIMIT {
                    return;
                }
                let sent = Instant::now();
                if let Err(e) = writer.write_all(format!("line {n}\n").as_bytes()) {
                    return end(format!("send: {e}"));
                }
                // Read timeouts leave what was read in `buf` (BufRead::read_until).
                let mut buf = Vec::new();
                let waiting = Instant::now();
                loop {
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) => return end("closed by the peer".into()),
                        Ok(_) if buf.ends_with(b"\n") => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            if waiting.elapsed() > SILENCE_LIMIT {
                                return end(format!("no echo for {SILENCE_LIMIT:?}"));
                            }
                        }
                        Err(e) => return end(format!("receive: {e}")),
                    }
                }
                let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                let Some((who, line)) = text.split_once(' ') else {
                    return end(format!("echo {text:?}"));
                };
                if line != format!("line {n}") || real.as_deref().is_some_and(|r| r != who) {
                    return end(format!("echo {text:?} for line {n} (real {real:?})"));
                }
                real = Some(who.to_string());
                state
                    .lock()
                    .unwrap()
                    .echoes
                    .push((t0.elapsed(), who.to_string()));
                std::thread::sleep(LINE_EVERY.saturating_sub(sent.elapsed()));
            }
        }
    });
    (
        Worker {
            stop,
            thread: Some(thread),
        },
        state,
    )
}

/// The gap in successful requests around `t`: the last success started before it, the first
/// started after it, and the failures in between.
fn gap_around(log: &[Attempt], t: Duration) -> (Option<Duration>, Option<Duration>, usize) {
    let before = log
        .iter()
        .filter(|a| a.at < t && a.outcome.is_ok())
        .map(|a| a.at)
        .next_back();
    let after = log
        .iter()
        .find(|a| a.at >= t && a.outcome.is_ok())
        .map(|a| a.at);
    let lo = before.unwrap_or(Duration::ZERO);
    let hi = after.unwrap_or(Duration::MAX);
    let failed = log
        .iter()
        .filter(|a| a.at > lo && a.at < hi && a.outcome.is_err())
        .count();
    (before, after, failed)
}

/// The longest time between two successful requests started after `from`, and the failures
/// in that gap.
fn longest_gap(log: &[Attempt], from: Duration) -> (Duration, usize) {
    let ok: Vec<Duration> = log
        .iter()
        .filter(|a| a.at >= from && a.outcome.is_ok())
        .map(|a| a.at)
        .collect();
    let Some((lo, hi)) = ok
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| *b - *a)
    else {
        return (Duration::ZERO, 0);
    };
    let failed = log
        .iter()
        .filter(|a| a.at > lo && a.at < hi && a.outcome.is_err())
        .count();
    (hi - lo, failed)
}

fn holds_vip(sh: &mut GuestShell) -> bool {
    sh.run("ip addr show dev eth0", CMD)
        .unwrap()
        .contains(&format!("inet {VIP}/32"))
}

/// `ipvsadm -Ln --daemon`, one line per daemon.
fn daemons(sh: &mut GuestShell) -> Vec<String> {
    sh.run("ipvsadm -Ln --daemon", CMD)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn runs_only(daemons: &[String], state: &str) -> bool {
    daemons.len() == 1
        && daemons[0].starts_with(&format!("{state} sync daemon (mcast=eth0, syncid=71,"))
}

fn sh_conns(sh: &mut GuestShell) -> String {
    sh.run("ipvsadm -Lnc", CMD).unwrap()
}

/// The `ipvsadm -Lnc` line of the client's connection `local` to the echo service, if any.
fn conn_entry(sh: &mut GuestShell, local: SocketAddr) -> Option<String> {
    let conns = sh_conns(sh);
    let from = format!(" {local} ");
    let to = format!(" {VIP}:9000 ");
    conns
        .lines()
        .find(|l| l.contains(&from) && l.contains(&to))
        .map(str::to_string)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn conversation(c: &Mutex<Conversation>) -> Conversation {
    c.lock().unwrap().clone()
}

#[test]
fn pair_fails_over_on_kill_and_established_connections_survive_with_sync() {
    let lab = Lab::start();
    let t0 = Instant::now();
    // Both at once, as a pair powered on together.
    let (mut lb1, mut lb2) = std::thread::scope(|s| {
        let a = s.spawn(|| boot(&lab.ns, &LB1, BOOT));
        let b = s.spawn(|| boot(&lab.ns, &LB2, BOOT));
        (a.join().unwrap(), b.join().unwrap())
    });
    for g in [&lb1, &lb2] {
        g.guest
            .expect(r"lbd:\s+INFO ipvs applied: .* 0 errors", BOOT)
            .unwrap();
    }
    eprintln!(
        "figure: both balancers booted and programmed IPVS in {:.1?} ({} guests booting at once)",
        t0.elapsed(),
        lb1.guest.accel().name(),
    );

    // Whichever booted first, lb1 (150) ends up master with the VIP and the master sync
    // daemon; lb2 is backup with the backup daemon.
    wait::expect_some("lb1 master with the VIP, lb2 backup", STEP, POLL, || {
        let d1 = daemons(&mut lb1.shell);
        let d2 = daemons(&mut lb2.shell);
        (holds_vip(&mut lb1.shell)
            && !holds_vip(&mut lb2.shell)
            && runs_only(&d1, "master")
            && runs_only(&d2, "backup"))
        .then_some(())
    });
    lb1.guest
        .expect(r"lbd:\s+INFO vrrp: VI_1: BACKUP -> MASTER", STEP)
        .unwrap();
    lb1.guest
        .expect(
            r"lbd:\s+INFO ipvs: connection sync follows VRRP: master daemon",
            STEP,
        )
        .unwrap();

    // Traffic: new connections continuously, and one long connection.
    let (mut requests, attempts) = start_requests(&lab.client, t0);
    let (mut talk, conv) = start_conversation(&lab.client, t0);
    let local = wait::expect_some("the long connection echoes", STEP, POLL, || {
        let c = conversation(&conv);
        assert!(c.end.is_none(), "the long connection ended: {c:?}");
        (c.echoes.len() >= 5).then_some(c.local).flatten()
    });
    let real = conversation(&conv).echoes[0].1.clone();

    // The proof that sync works: the backup holds the master's entry for that connection.
    let on_master = conn_entry(&mut lb1.shell, local);
    assert!(
        on_master
            .as_deref()
            .is_some_and(|l| l.contains("ESTABLISHED")),
        "lb1 has no entry for {local}: {on_master:?}"
    );
    let synced = wait::expect_some("the connection synced to lb2", STEP, POLL, || {
        conn_entry(&mut lb2.shell, local).filter(|l| l.contains("ESTABLISHED"))
    });
    let real_addr = if real == "r1" {
        "10.71.0.21"
    } else {
        "10.71.0.22"
    };
    assert!(
        synced.contains(&format!(" {real_addr}:9000")),
        "the synced entry names another real than {real}, which answers: {synced}"
    );
    eprintln!("lb2 holds the synced entry: {synced}");
    wait::expect_some("requests through lb1 reach both reals", STEP, POLL, || {
        let log = attempts.lock().unwrap();
        let ok = |n: &str| log.iter().any(|a| a.outcome.as_deref() == Ok(n));
        (ok("r1") && ok("r2")).then_some(())
    });

    // Kill the master hard.
    lb2.guest.console().skip_to_end();
    let killed = t0.elapsed();
    lb1.guest.kill();

    lb2.guest
        .expect(r"lbd:\s+INFO vrrp: VI_1: BACKUP -> MASTER", STEP)
        .unwrap();
    lb2.guest
        .expect(
            r"lbd:\s+INFO ipvs: connection sync follows VRRP: master daemon",
            STEP,
        )
        .unwrap();
    wait::expect_some(
        "lb2 holds the VIP and runs the master daemon",
        STEP,
        POLL,
        || {
            let d = daemons(&mut lb2.shell);
            (holds_vip(&mut lb2.shell) && runs_only(&d, "master")).then_some(())
        },
    );
    let vip_seen = t0.elapsed();
    // New requests resume through lb2, and the long connection keeps echoing from the same real.
    wait::expect_some("requests succeed through lb2", STEP, POLL, || {
        let log = attempts.lock().unwrap();
        (log.iter()
            .filter(|a| a.at > vip_seen && a.outcome.is_ok())
            .count()
            >= 10)
            .then_some(())
    });
    wait::expect_some(
        "the long connection echoes after the failover",
        SILENCE_LIMIT + STEP,
        POLL,
        || {
            let c = conversation(&conv);
            assert!(
                c.end.is_none(),
                "the long connection broke at the failover (kill at {}): {:?}",
                ms(killed),
                c.end
            );
            (c.echoes_after(vip_seen) >= 10).then_some(())
        },
    );
    talk.stop();
    let c = conversation(&conv);
    assert!(c.end.is_none(), "{c:?}");
    assert!(
        c.echoes.iter().all(|(_, who)| *who == real),
        "the long connection moved to another real: {:?}",
        c.echoes
    );
    let (pause, pause_from) = c.longest_pause();
    let after_kill = c
        .echoes
        .iter()
        .find(|(at, _)| *at > killed)
        .map(|(at, _)| *at - killed);
    let log = attempts.lock().unwrap().clone();
    let (before, after, failed) = gap_around(&log, killed);
    let (before, after) = (before.unwrap(), after.unwrap());
    eprintln!(
        "figure: failover (kill -9 of lb1's QEMU, VRRP v3 1 s adverts, 150/100): new requests: last success {} before the kill, first {} after it, gap {}, {failed} failed in between",
        ms(killed - before),
        ms(after - killed),
        ms(after - before),
    );
    eprintln!(
        "figure: failover: the established connection ({local} via {real}) longest pause {} (from {} before the kill), first echo {} after the kill, {} echoes in all, no reconnect",
        ms(pause),
        ms(killed.saturating_sub(pause_from)),
        after_kill.map_or("-".into(), ms),
        c.echoes.len(),
    );
    eprintln!(
        "figure: failover: the VIP and master sync daemon seen on lb2's shell {} after the kill",
        ms(vip_seen - killed)
    );
    assert_no_fatal(lb2.guest.console());

    // Control: lb1 returns without [ipvs.sync] and preempts. A connection opened through lb2
    // has no entry on lb1, which resets it: without synced state, the check above fails.
    let (mut talk2, conv2) = start_conversation(&lab.client, t0);
    let local2 = wait::expect_some("a second long connection through lb2", STEP, POLL, || {
        let c = conversation(&conv2);
        assert!(c.end.is_none(), "{c:?}");
        (c.echoes.len() >= 5).then_some(c.local).flatten()
    });
    lab.configs
        .publish(&config_file(&LB1), &config(&LB1, false))
        .unwrap();
    drop(lb1);
    let rebooted = t0.elapsed();
    let mut lb1 = boot(&lab.ns, &LB1, BOOT);
    lb1.guest
        .expect(r"lbd:\s+INFO vrrp: VI_1: BACKUP -> MASTER", BOOT)
        .unwrap();
    // The console line arrives as it is printed: close to the takeover on the test's clock.
    let lb1_master = t0.elapsed();
    let took_back = wait::expect_some("lb1 takes the VIP back", STEP, POLL, || {
        holds_vip(&mut lb1.shell).then(|| t0.elapsed())
    });
    assert!(daemons(&mut lb1.shell).is_empty(), "lb1 runs a sync daemon");
    let broken = wait::expect_some(
        "the unsynced connection breaks",
        SILENCE_LIMIT + STEP,
        POLL,
        || {
            let c = conversation(&conv2);
            c.end.clone()
        },
    );
    let c2 = conversation(&conv2);
    assert!(
        conn_entry(&mut lb1.shell, local2).is_none_or(|l| !l.contains("ESTABLISHED")),
        "lb1 has an entry for the unsynced connection {local2}"
    );
    eprintln!(
        "figure: control (lb1 back without [ipvs.sync], preempting): the connection {local2} ended {} after lb1's console said MASTER: {} ({} echoes, the last {} before that)",
        ms(broken.0.saturating_sub(lb1_master)),
        broken.1,
        c2.echoes.len(),
        c2.echoes
            .last()
            .map_or("-".into(), |(at, _)| ms(lb1_master.saturating_sub(*at))),
    );
    talk2.stop();
    // New connections work through lb1: only the established one needed the synced entry.
    wait::expect_some("requests succeed through lb1 again", STEP, POLL, || {
        let log = attempts.lock().unwrap();
        (log.iter()
            .filter(|a| a.at > took_back && a.outcome.is_ok())
            .count()
            >= 5)
            .then_some(())
    });
    // lb1 (no sync, so every entry is its own) scheduled them.
    let own = sh_conns(&mut lb1.shell);
    assert!(
        own.lines()
            .any(|l| l.contains(&format!(" {CLIENT}:")) && l.contains(&format!(" {VIP}:80 "))),
        "lb1 has no connection of the client to {VIP}:80:\n{own}"
    );
    requests.stop();
    let log = attempts.lock().unwrap().clone();
    let (gap, failed) = longest_gap(&log, rebooted);
    eprintln!(
        "figure: failback (lb1 rebooted, preempting): new requests: longest gap {} ({failed} failed in it); {} requests in all, {} failed",
        ms(gap),
        log.len(),
        log.iter().filter(|a| a.outcome.is_err()).count(),
    );
    assert!(
        broken.0 > rebooted,
        "the control connection broke before lb1 came back: {c2:?}"
    );
    for g in [&lb1, &lb2] {
        assert_no_fatal(g.guest.console());
    }
}
