//! The classic two-network LVS pair, end to end, configured by `tools/examples/classic-pair.toml`
//! as shipped (only the host name, the VRRP priorities and the node's own addresses differ per
//! balancer): an outside segment where the client reaches the VIPs, an inside segment where the
//! NAT reals route back through the floating gateway VIP. The balancers' inside addresses come
//! from the config's `[network]`, not from the boot.
//!
//! ```text
//!   namespace "classic": br-out 192.0.2.1 (config server :8080)     br-in (no host address)
//!     ├─ lb1 eth0 192.0.2.2  prio 150 ┐ VI_EXT 192.0.2.10, .11  ─┐   ├─ lb1 eth1 10.1.0.2
//!     ├─ lb2 eth0 192.0.2.3  prio 100 ┘ (sync group NAT_PAIR)    └─  ├─ lb2 eth1 10.1.0.3   VI_INT 10.1.0.1
//!     ├─ DR reals 192.0.2.21, .22 (192.0.2.11 on lo)                 ├─ NAT reals 10.1.0.11, .12 (:80, :443)
//!     └─ client 192.0.2.100                                          └─          10.1.0.13 (:8080, :443)
//! ```
//!
//! Requests flow to the NAT and the DR service; `kill -9` of the master's QEMU moves both VIPs to
//! the backup together (the sync group), new requests continue, and an established NAT
//! connection keeps echoing through the backup, carried by the connection the old master
//! synced. Figures (printed): the gap in new requests and the long connection's longest pause.
//!
//! Needs root, QEMU, python3, the kernel package (`tools/setup.sh`) and the test image.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, ShellGuest};
use lbtest::{wait, ChildGuard, MacAddr, Netns, Nic, StaticServer};

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(90);
const SERVER: &str = "192.0.2.1";
const CONFIG_PORT: u16 = 8080;
const CLIENT: &str = "192.0.2.100";
const NAT_VIP: &str = "192.0.2.10";
const DR_VIP: &str = "192.0.2.11";

struct Balancer {
    name: &'static str,
    outside: &'static str,
    inside: &'static str,
    priority: u8,
    macs: [MacAddr; 2],
}

const LB1: Balancer = Balancer {
    name: "lb1",
    outside: "192.0.2.2",
    inside: "10.1.0.2",
    priority: 150,
    macs: [
        MacAddr([0x52, 0x54, 0x00, 0x01, 0x00, 0x10]),
        MacAddr([0x52, 0x54, 0x00, 0x01, 0x00, 0x11]),
    ],
};
const LB2: Balancer = Balancer {
    name: "lb2",
    outside: "192.0.2.3",
    inside: "10.1.0.3",
    priority: 100,
    macs: [
        MacAddr([0x52, 0x54, 0x00, 0x01, 0x00, 0x20]),
        MacAddr([0x52, 0x54, 0x00, 0x01, 0x00, 0x21]),
    ],
};

/// The example, with this balancer's name, priority and own addresses.
fn config(lb: &Balancer) -> String {
    let path = lbtest::artifacts::workspace_root().join("tools/examples/classic-pair.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        (
            "hostname = \"lb1\"".to_string(),
            format!("hostname = \"{}\"", lb.name),
        ),
        (
            "priority = 150".to_string(),
            format!("priority = {}", lb.priority),
        ),
        (
            "\"192.0.2.2/24\"".to_string(),
            format!("\"{}/24\"", lb.outside),
        ),
        (
            "\"10.1.0.2/24\"".to_string(),
            format!("\"{}/24\"", lb.inside),
        ),
    ] {
        assert!(text.contains(&from), "the example has no {from}");
        text = text.replace(&from, &to);
    }
    text
}

/// A real: HTTP on `ports` answering its name on `/` and `ok` on `/healthz` and `/status`,
/// and a line echo on :443 answering `NAME LINE`.
const REAL_SERVER: &str = r#"
import http.server, socketserver, sys, threading
name = sys.argv[1]
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name.encode() + b" " + line)
class Web(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (("ok" if self.path in ("/healthz", "/status") else name) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
http.server.ThreadingHTTPServer.allow_reuse_address = True
echo = socketserver.ThreadingTCPServer(("0.0.0.0", 443), Echo)
threading.Thread(target=echo.serve_forever, daemon=True).start()
for port in sys.argv[3:]:
    web = http.server.ThreadingHTTPServer(("0.0.0.0", int(port)), Web)
    threading.Thread(target=web.serve_forever, daemon=True).start()
threading.Event().wait()
"#;

struct Lab {
    _reals: Vec<ChildGuard>,
    _http: StaticServer,
    _configs: ConfigDir,
    client: Netns,
    _real_ns: Vec<Netns>,
    ns: Netns,
}

impl Lab {
    fn start() -> Lab {
        let ns = Netns::new("classic").expect("network namespaces (run the tests as root)");
        // Sync messages go to a multicast group: no snooping surprises on the test bridges.
        ns.add_flooding_bridge("brout").unwrap();
        ns.add_flooding_bridge("brin").unwrap();
        ns.add_addr("brout", &format!("{SERVER}/24")).unwrap();
        for lb in [&LB1, &LB2] {
            ns.add_tap(&format!("{}o", lb.name), Some("brout")).unwrap();
            ns.add_tap(&format!("{}i", lb.name), Some("brin")).unwrap();
        }
        let configs = ConfigDir::new().unwrap();
        for lb in [&LB1, &LB2] {
            configs
                .publish(&format!("{}.toml", lb.name), &config(lb))
                .unwrap();
        }
        let http =
            StaticServer::start_in(&ns, configs.path(), SERVER.parse().unwrap(), CONFIG_PORT)
                .unwrap();
        let mut real_ns = Vec::new();
        let mut reals = Vec::new();
        // NAT reals on the inside, routing back through the gateway VIP.
        for (name, addr, port) in [
            ("n1", "10.1.0.11", "80"),
            ("n2", "10.1.0.12", "80"),
            ("n3", "10.1.0.13", "8080"),
        ] {
            let r = Netns::new(&format!("classic-{name}")).unwrap();
            let host_end = format!("v{name}");
            ns.add_veth_to(&host_end, &r, "eth0").unwrap();
            ns.set_master(&host_end, "brin").unwrap();
            r.add_addr("eth0", &format!("{addr}/24")).unwrap();
            r.ip(&["route", "add", "default", "via", "10.1.0.1"])
                .unwrap();
            reals.push(
                r.spawn(&["python3", "-c", REAL_SERVER, name, addr, port])
                    .unwrap(),
            );
            real_ns.push(r);
        }
        // DR reals on the outside: the VIP on lo, never answered for in ARP.
        for (name, addr) in [("d1", "192.0.2.21"), ("d2", "192.0.2.22")] {
            let r = Netns::new(&format!("classic-{name}")).unwrap();
            let host_end = format!("v{name}");
            ns.add_veth_to(&host_end, &r, "eth0").unwrap();
            ns.set_master(&host_end, "brout").unwrap();
            r.add_addr("eth0", &format!("{addr}/24")).unwrap();
            r.hold_dr_vips(&[DR_VIP.parse().unwrap()]).unwrap();
            reals.push(
                r.spawn(&["python3", "-c", REAL_SERVER, name, addr, "80"])
                    .unwrap(),
            );
            real_ns.push(r);
        }
        let client = Netns::new("classic-client").unwrap();
        ns.add_veth_to("vclient", &client, "eth0").unwrap();
        ns.set_master("vclient", "brout").unwrap();
        client.add_addr("eth0", &format!("{CLIENT}/24")).unwrap();
        Lab {
            _reals: reals,
            _http: http,
            _configs: configs,
            client,
            _real_ns: real_ns,
            ns,
        }
    }
}

fn boot(lab: &Lab, lb: &Balancer) -> ShellGuest {
    boot_with_shell(
        ApplianceBuilder::new(format!("classic-{}", lb.name))
            .nic(Nic::tap(format!("{}o", lb.name), lb.macs[0]))
            .nic(Nic::tap(format!("{}i", lb.name), lb.macs[1]))
            .netns(&lab.ns)
            .append(format!(
                "ip={}::{SERVER}:255.255.255.0:{}:eth0:off",
                lb.outside, lb.name
            ))
            .config_url(format!("http://{SERVER}:{CONFIG_PORT}/{}.toml", lb.name)),
        BOOT,
    )
    .unwrap()
}

/// One GET of `/` from `addr`:80 with a 1 s bound; the body (the real's name) or why not.
fn http_get(addr: &str) -> Result<String, String> {
    let sa: SocketAddr = format!("{addr}:80").parse().unwrap();
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    answer
        .split("\r\n\r\n")
        .nth(1)
        .map(|b| b.trim().to_string())
        .filter(|_| answer.starts_with("HTTP/1.0 200"))
        .ok_or_else(|| format!("answer {answer:?}"))
}

/// Runs `f` on a new thread inside `ns`.
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

/// Each new request: when it started (since the test's start) and whether it was answered.
type Outcomes = Arc<Mutex<Vec<(Duration, bool)>>>;

/// New requests to the NAT VIP every 100 ms (at most 3,000, at most 6 minutes), each outcome
/// with its time since `t0`.
fn start_requests(ns: &Netns, t0: Instant, stop: Arc<AtomicBool>) -> (JoinHandle<()>, Outcomes) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let thread = spawn_in(ns, {
        let log = log.clone();
        move || {
            for _ in 0..3000 {
                if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(360) {
                    break;
                }
                let at = t0.elapsed();
                let ok = http_get(NAT_VIP).is_ok();
                log.lock().unwrap().push((at, ok));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    (thread, log)
}

/// A long connection through the NAT VIP's :443: a line every 200 ms (at most 2,000), every
/// echo checked. The times of the echoes since `t0`, and how it ended if it did.
fn start_conversation(
    ns: &Netns,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> (JoinHandle<Option<String>>, Arc<Mutex<Vec<Duration>>>) {
    let echoes = Arc::new(Mutex::new(Vec::new()));
    let thread = spawn_in(ns, {
        let echoes = echoes.clone();
        move || {
            let sa: SocketAddr = format!("{NAT_VIP}:443").parse().unwrap();
            let stream = match TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
                Ok(s) => s,
                Err(e) => return Some(format!("connect: {e}")),
            };
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut real: Option<String> = None;
            for n in 1..=2000 {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                if let Err(e) = writer.write_all(format!("line {n}\n").as_bytes()) {
                    return Some(format!("send: {e}"));
                }
                let mut buf = Vec::new();
                let waiting = Instant::now();
                loop {
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) => return Some("closed by the peer".into()),
                        Ok(_) if buf.ends_with(b"\n") => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            if stop.load(Ordering::Relaxed) {
                                return None;
                            }
                            if waiting.elapsed() > Duration::from_secs(60) {
                                return Some("no echo for 60 s".into());
                            }
                        }
                        Err(e) => return Some(format!("receive: {e}")),
                    }
                }
                let text = String::from_utf8_lossy(&buf).trim_end().to_string();
                let Some((who, line)) = text.split_once(' ') else {
                    return Some(format!("echo {text:?}"));
                };
                if line != format!("line {n}") || real.as_deref().is_some_and(|r| r != who) {
                    return Some(format!("echo {text:?} for line {n} (real {real:?})"));
                }
                real = Some(who.to_string());
                echoes.lock().unwrap().push(t0.elapsed());
                std::thread::sleep(Duration::from_millis(200));
            }
            None
        }
    });
    (thread, echoes)
}

/// Waits until the guest's console says `instance` became master (in whatever order the
/// instances of the sync group say it).
fn wait_master(g: &ShellGuest, instance: &str, timeout: Duration) {
    let line = format!("vrrp: {instance}: BACKUP -> MASTER");
    let seen = wait::until(timeout, Duration::from_millis(200), || {
        g.guest.console().lines().iter().any(|l| l.contains(&line))
    });
    assert!(
        seen.is_some(),
        "{line:?} not within {timeout:?}\n{}",
        g.guest.report()
    );
}

#[test]
fn the_classic_pair_fails_over_with_both_networks() {
    let lab = Lab::start();
    let mut lb1 = boot(&lab, &LB1);
    let mut lb2 = boot(&lab, &LB2);
    for vi in ["VI_EXT", "VI_INT"] {
        wait_master(&lb1, vi, BOOT);
    }
    lb2.guest
        .expect(r"lbd:\s+INFO lbd running", BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lb2.guest.report()));
    // The inside addresses come from the config's [network].
    for (g, lb) in [(&mut lb1, &LB1), (&mut lb2, &LB2)] {
        let eth1 = g.shell.run("ip -4 addr show dev eth1", STEP).unwrap();
        assert!(eth1.contains(&format!("{}/24", lb.inside)), "{eth1}");
    }

    // Both services answer the client, from their own reals.
    let (nat, dr) = lab
        .client
        .enter(|| {
            let mut nat = Vec::new();
            let mut dr = Vec::new();
            wait::expect(
                "the NAT and DR services answer",
                STEP,
                Duration::from_millis(200),
                || {
                    nat = (0..6)
                        .filter_map(|_| http_get(NAT_VIP).ok())
                        .collect::<Vec<_>>();
                    dr = (0..6)
                        .filter_map(|_| http_get(DR_VIP).ok())
                        .collect::<Vec<_>>();
                    nat.len() == 6 && dr.len() == 6
                },
            );
            (nat, dr)
        })
        .unwrap();
    assert!(nat.iter().all(|n| n.starts_with('n')), "{nat:?}");
    assert!(dr.iter().all(|n| n.starts_with('d')), "{dr:?}");

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (conversation, echoes) = start_conversation(&lab.client, t0, stop.clone());
    let (requests, log) = start_requests(&lab.client, t0, stop.clone());
    // Let the connection be synced to the backup before the master dies.
    wait::expect(
        "the long connection echoes",
        STEP,
        Duration::from_millis(200),
        || echoes.lock().unwrap().len() >= 10,
    );
    std::thread::sleep(Duration::from_secs(3));

    let killed = t0.elapsed();
    lb1.guest.kill();
    for vi in ["VI_EXT", "VI_INT"] {
        wait_master(&lb2, vi, STEP);
    }
    let echoes_at_kill = echoes
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t <= killed)
        .count();
    wait::expect(
        "the long connection echoes through lb2",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || echoes.lock().unwrap().len() >= echoes_at_kill + 10,
    );
    wait::expect(
        "new requests succeed through lb2",
        STEP,
        Duration::from_millis(200),
        || {
            let l = log.lock().unwrap();
            l.iter()
                .rev()
                .take(10)
                .filter(|(at, ok)| *ok && *at > killed)
                .count()
                == 10
        },
    );
    stop.store(true, Ordering::Relaxed);
    let ended = conversation.join().unwrap();
    requests.join().unwrap();
    assert_eq!(ended, None, "the established NAT connection broke");

    let after: Vec<Duration> = echoes.lock().unwrap().clone();
    let pause = after
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let log = log.lock().unwrap().clone();
    let first_ok_after = log
        .iter()
        .find(|(at, ok)| *ok && *at > killed)
        .map(|(at, _)| *at);
    let last_ok_before = log
        .iter()
        .rev()
        .find(|(at, ok)| *ok && *at < killed)
        .map(|(at, _)| *at);
    if let (Some(a), Some(b)) = (first_ok_after, last_ok_before) {
        println!(
            "figure: classic pair, kill -9 of the master: new requests gap {:?}",
            a - b
        );
    }
    println!(
        "figure: classic pair, kill -9 of the master: the NAT connection's longest pause {pause:?}"
    );
    let vips = lb2.shell.run("ip -4 addr show", STEP).unwrap();
    for vip in ["192.0.2.10/24", "192.0.2.11/24", "10.1.0.1/24"] {
        assert!(vips.contains(vip), "lb2 lacks {vip}:\n{vips}");
    }
    assert_no_fatal(lb2.guest.console());
}
