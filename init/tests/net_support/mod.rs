//! Shared scaffolding for the `net_*` tests: network namespaces joined by a veth pair, a real
//! dnsmasq as DHCP server, and running code inside a namespace on a dedicated thread.
//!
//! Needs root (network namespaces, SO_BINDTODEVICE, port 67/68) and `ip` + `dnsmasq` (package
//! dnsmasq-base, installed by the project's tools/setup.sh). Missing any of these fails the test
//! with a message saying so; nothing is skipped.
//!
//! Every namespace, process and directory made here is removed by a Drop guard, also when the
//! test fails.

#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lbtest::process::ChildGuard;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

pub use lbtest::ScratchDir as TempDir;

/// The client's MAC in every test (locally administered).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x09, 0x07];
pub const CLIENT_MAC_STR: &str = "02:00:00:00:09:07";
/// The client-side link name.
pub const CLIENT_DEV: &str = "lan0";
/// The server-side link name.
pub const SERVER_DEV: &str = "srv0";

/// Fails the test with a clear message unless we can make namespaces and run `prog`.
pub fn require(progs: &[&str]) {
    lbtest::process::require_root("network namespaces, SO_BINDTODEVICE, UDP ports 67/68");
    lbtest::process::require_programs(progs);
}

/// Installs a tracing subscriber printing to the test's captured output (once per binary).
pub fn init_tracing() {
    lbtest::init_test_tracing();
}

/// A network namespace, deleted on drop (with every link and process in it); the test's view
/// of [`lbtest::Netns`], whose failures fail the test.
pub struct Netns(lbtest::Netns);

impl std::ops::Deref for Netns {
    type Target = lbtest::Netns;
    fn deref(&self) -> &lbtest::Netns {
        &self.0
    }
}

impl Netns {
    pub fn new(role: &str) -> Self {
        Netns(lbtest::Netns::new(role).unwrap())
    }

    /// `ip -n <ns> <args>`, stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.0.ip(args).unwrap()
    }

    /// Runs `f` on a new thread inside this namespace with its own current-thread tokio runtime,
    /// and returns its result (a panic inside is re-raised here).
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        self.0.run_async(f).unwrap()
    }

    /// Like [`Netns::run`] but does not wait: join the handle with [`join`].
    pub fn spawn_async<F, Fut, T>(&self, f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        self.0.spawn_async(f).unwrap()
    }

    /// Runs blocking `f` on a new thread inside this namespace; the handle joins it.
    pub fn thread<F, T>(&self, f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.thread(f).unwrap()
    }
}

/// Gives the calling thread its own UTS namespace, so code under test may `sethostname` without
/// touching the host's name. Call it on the thread that runs the code (inside [`Netns::run`]).
pub fn with_own_hostname() {
    nix::sched::unshare(CloneFlags::CLONE_NEWUTS).expect("unshare(CLONE_NEWUTS)");
    nix::unistd::sethostname("before-test").unwrap();
}

/// Joins a thread, re-raising its panic here.
pub fn join<T>(handle: std::thread::JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A server namespace and a client namespace joined by a veth pair: `srv0` (server side, up,
/// with `server_ip/24`) and `lan0` (client side, MAC [`CLIENT_MAC`], left down for the code
/// under test to bring up).
pub struct Lan {
    // Field order = drop order: the client namespace goes first, then the server's.
    pub client: Netns,
    pub server: Netns,
    pub server_ip: Ipv4Addr,
}

impl Lan {
    pub fn new(server_ip: Ipv4Addr) -> Self {
        let server = Netns::new("srv");
        let client = Netns::new("cli");
        lbtest::process::run_args(
            "ip",
            &[
                "link",
                "add",
                CLIENT_DEV,
                "address",
                CLIENT_MAC_STR,
                "netns",
                client.name(),
                "type",
                "veth",
                "peer",
                "name",
                SERVER_DEV,
                "netns",
                server.name(),
            ],
        )
        .unwrap();
        server.ip(&["addr", "add", &format!("{server_ip}/24"), "dev", SERVER_DEV]);
        server.ip(&["link", "set", SERVER_DEV, "up"]);
        Lan {
            client,
            server,
            server_ip,
        }
    }

    /// `ip -4 addr show dev lan0` in the client namespace.
    pub fn client_addrs(&self) -> String {
        self.client.ip(&["-4", "addr", "show", "dev", CLIENT_DEV])
    }

    /// `ip -4 route` in the client namespace.
    pub fn client_routes(&self) -> String {
        self.client.ip(&["-4", "route", "show"])
    }
}

/// A dnsmasq DHCP server on `srv0`, killed on drop.
pub struct Dnsmasq {
    child: ChildGuard,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` with our fixed options plus `extra` (`--dhcp-range=...` etc.) and
    /// waits (at most 5 s) until it says it serves DHCP.
    pub fn start(ns: &Netns, extra: &[&str]) -> Self {
        let dir = TempDir::new("dnsmasq");
        let log = dir.path().join("dnsmasq.log");
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            &format!("--interface={SERVER_DEV}"),
            "--bind-interfaces",
            "--user=root",
            "--group=root",
        ])
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--dhcp-leasefile={}",
            dir.path().join("leases").display()
        ))
        .arg(format!("--log-facility={}", log.display()))
        .arg("--log-dhcp")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd).unwrap();
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let ready = lbtest::wait::until(Duration::from_secs(5), Duration::from_millis(20), || {
            // An early exit fails here with dnsmasq's stderr.
            child.assert_running();
            let text = read_log();
            text.contains("DHCP, IP range") || text.contains("DHCP, static leases only")
        });
        assert!(
            ready.is_some(),
            "dnsmasq did not report DHCP ready within 5 s; log:\n{}",
            read_log()
        );
        Dnsmasq {
            child,
            log,
            _dir: dir,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Stops it now (SIGTERM, wait).
    pub fn stop(&mut self) {
        self.child.signal(Signal::SIGTERM);
        if self.child.wait_exit(Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One DHCP message seen by a [`Listener`].
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Sent to 255.255.255.255 (else unicast to the server address).
    pub broadcast: bool,
    pub msg: dhcproto::v4::Message,
}

impl Seen {
    pub fn kind(&self) -> Option<dhcproto::v4::MessageType> {
        self.msg.opts().msg_type()
    }
}

/// A stand-in for an unresponsive DHCP server: records every message sent to port 67, telling
/// broadcast from unicast by which socket got it (one bound to 255.255.255.255:67, one to the
/// server address). Never answers. Runs inside the server namespace until dropped.
pub struct Listener {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub fn start(ns: &Netns, server_ip: Ipv4Addr) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for (bind, broadcast) in [(Ipv4Addr::BROADCAST, true), (server_ip, false)] {
            let seen = seen.clone();
            let stop = stop.clone();
            let ready = ready_tx.clone();
            threads.push(ns.thread(move || {
                let sock = bind_reuse(SocketAddrV4::new(bind, 67));
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready.send(()).unwrap();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, _)) = sock.recv_from(&mut buf) {
                        let at = Instant::now();
                        if let Ok(msg) = init::net::dhcp::message::decode(&buf[..len]) {
                            seen.lock().unwrap().push(Seen { at, broadcast, msg });
                        }
                    }
                }
            }));
        }
        for _ in 0..2 {
            ready_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("listener sockets bound");
        }
        Listener {
            seen,
            stop,
            threads,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        let mut v = self.seen.lock().unwrap().clone();
        v.sort_by_key(|s| s.at);
        v
    }

    /// Waits (bounded) until `pred` holds for what was seen.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let poll = Duration::from_millis(20);
        lbtest::wait::until_some(timeout, poll, || {
            let seen = self.seen();
            pred(&seen).then_some(seen)
        })
        .unwrap_or_else(|| {
            panic!(
                "condition not met within {timeout:?}; seen: {:#?}",
                self.seen()
                    .iter()
                    .map(|s| (s.kind(), s.broadcast, s.msg.ciaddr(), s.msg.xid()))
                    .collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A UDP socket with SO_REUSEADDR, bound to `addr`.
fn bind_reuse(addr: SocketAddrV4) -> UdpSocket {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
    socket::setsockopt(&fd, sockopt::Broadcast, &true).unwrap();
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(addr),
    )
    .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    UdpSocket::from(fd)
}

/// Options for tests: no hostname change on the host, resolv.conf in `dir`, short timeouts.
pub fn test_options(dir: &Path) -> init::net::NetOptions {
    let mut opts = init::net::NetOptions {
        carrier_timeout: Duration::from_secs(5),
        dhcp_timeout: Duration::from_secs(20),
        resolv_conf: Some(dir.join("etc").join("resolv.conf")),
        set_hostname: false,
        seed: Some(0x5eed),
        ..Default::default()
    };
    opts.dhcp.backoff = init::net::dhcp::Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(2),
        jitter: Duration::ZERO,
    };
    opts
}
