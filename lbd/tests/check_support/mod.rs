//! Shared scaffolding for the `check_*` tests: a network namespace per test (so every server and
//! address is the test's own), code run inside it on a thread with its own tokio runtime, real
//! programs started inside it (python3 http.server, nginx, dnsmasq, aiosmtpd, postgres,
//! mariadbd), and configs/probes built from TOML like an operator writes them.
//!
//! Needs root (network namespaces) and the programs each test names; a missing one fails the
//! test with the package to install (tools/setup.sh installs them all). Nothing is skipped.
//! Namespaces, processes and directories are removed by Drop guards (from `lbtest`), also when
//! a test fails.

#![allow(dead_code)]

use lbd::check::connect::Connector;
use lbd::check::engine::START_TICK;
use lbd::check::probe::Probe;
use lbd::check::proto::http::Exchange;
use lbd::check::{Failure, Outcome};
use lbd::config::{self, Config};
use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use lbtest::process::ChildGuard;
pub use lbtest::ScratchDir as TempDir;

/// Fails the test with a clear message unless we are root and every program exists.
pub fn require(progs: &[&str]) {
    lbtest::process::require_root("it creates network namespaces");
    lbtest::process::require_programs(&["ip"]);
    lbtest::process::require_programs(progs);
}

/// Installs a tracing subscriber printing into the test's captured output (once per binary).
pub fn init_tracing() {
    lbtest::init_test_tracing();
}

/// A network namespace with `lo` up, deleted on drop with everything running in it; the test's
/// view of [`lbtest::Netns`], whose failures fail the test.
pub struct Netns(lbtest::Netns);

impl std::ops::Deref for Netns {
    type Target = lbtest::Netns;
    fn deref(&self) -> &lbtest::Netns {
        &self.0
    }
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        Netns(lbtest::Netns::new(tag).unwrap())
    }

    /// `ip -n NS args...`, stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.0.ip(args).unwrap()
    }

    /// Puts `cidr` on one end of a veth pair and a permanent neighbour entry with a MAC nobody
    /// has for `swallower`: packets to it leave, reach the other end and are dropped there (a
    /// real that swallows SYNs).
    pub fn add_blackhole(&self, dev: &str, cidr: &str, swallower: &str) {
        self.0.add_veth(dev, &format!("{dev}p")).unwrap();
        self.0.add_addr(dev, cidr).unwrap();
        self.ip(&[
            "neigh",
            "add",
            swallower,
            "lladdr",
            "02:00:00:00:99:99",
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }

    /// Runs `f` on a new thread inside the namespace with a current-thread tokio runtime.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        self.0.run_async(f).unwrap()
    }

    /// Starts a program inside the namespace (stderr kept for [`ChildGuard::assert_running`]);
    /// it is killed when the guard drops.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let (program, rest) = args.split_first().expect("a program to run");
        let mut cmd = self.0.command(program);
        cmd.args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        ChildGuard::spawn(&mut cmd).unwrap()
    }

    /// Runs a program inside the namespace to completion; it must succeed.
    pub fn exec(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.0.run(args).unwrap().stdout).into_owned()
    }

    /// Waits until something accepts TCP connections at `addr` inside the namespace.
    pub fn wait_tcp(&self, addr: SocketAddr, within: Duration, what: &str) {
        let up = self.0.enter(|| lbtest::wait::tcp(addr, within)).unwrap();
        assert!(up, "{what} did not listen on {addr} within {within:?}");
    }
}

/// Config header: one VRRP instance owning the VIPs the tests use.
pub const BASE: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]
"#;

/// A validated config from BASE + `services`.
pub fn config(services: &str) -> Config {
    let text = format!("{BASE}{services}");
    match config::parse("test.toml", &text) {
        Ok(l) => l.config,
        Err(e) => panic!("test config refused:\n{e}\n{text}"),
    }
}

/// The probe of one real at `real` with the inline check `check` (TOML inline table body).
pub fn probe(real: &str, check: &str) -> Probe {
    let c = config(&format!(
        r#"
[service.s]
fwmark = 1
family = "{family}"
scheduler = "rr"
forwarding = "nat"
check = {{ {check} }}

[[service.s.real]]
address = "{real}"
"#,
        family = if real.starts_with('[') {
            "ipv6"
        } else {
            "ipv4"
        }
    ));
    let real = &c.services["s"].reals[0];
    Probe::new("s", real, real.check.as_ref().expect("a check")).expect("probe")
}

/// One run through a connector, driven as the engine drives it: started, its events read once
/// per tick, then its deadline judged.
pub async fn drive(
    c: &mut Connector<u32>,
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
    exchange: Option<Arc<Exchange>>,
    keep: Option<u64>,
) -> Outcome {
    let mut out = Vec::new();
    if let Err(f) = c.start(target, source, timeout, 7, Instant::now(), exchange, keep) {
        return f.outcome;
    }
    loop {
        assert!(
            c.next_deadline().is_some(),
            "a run in flight has a deadline"
        );
        tokio::time::sleep(START_TICK).await;
        c.poll(&mut out).unwrap();
        c.expire(Instant::now(), &mut out);
        if let Some(f) = out.pop() {
            assert_eq!(f.token, 7);
            assert!(out.is_empty(), "one run, one result: {out:?}");
            assert_eq!(c.in_flight(), 0);
            return f.outcome;
        }
    }
}

thread_local! {
    /// The connector of this thread's plain HTTP runs: its sockets are reused from run to run,
    /// as in the engine.
    static CONNECTOR: RefCell<Option<Connector<u32>>> = const { RefCell::new(None) };
}

/// A plain HTTP probe's outcome as the engine gets it, in a [`Connector`]; `None` for other
/// kinds.
pub async fn in_connector(p: &Probe) -> Option<Outcome> {
    let exchange = p.plain_http()?.clone();
    let mut c = CONNECTOR
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| Connector::new().expect("connector"));
    // One keep id per check, as the engine has: the same probe (same target and request)
    // finds its kept connection again.
    let keep = std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
        (p.target, &exchange.request),
    );
    let outcome = drive(
        &mut c,
        p.target,
        p.source,
        p.timeout,
        Some(exchange),
        Some(keep),
    )
    .await;
    CONNECTOR.with(|cell| *cell.borrow_mut() = Some(c));
    Some(outcome)
}

/// Runs the probe as a future (as HTTPS and the other kinds run) and, if it is a plain HTTP
/// check, also in a connector (as the engine runs those): both must reach the same outcome.
pub async fn run(p: &Probe) -> Outcome {
    let outcome = p.run().await;
    if let Some(engine) = in_connector(p).await {
        assert_eq!(
            engine, outcome,
            "{}: the engine's connector and the probe disagree",
            p.target
        );
    }
    outcome
}

/// The failure of a run that must fail.
pub fn down(o: Outcome) -> Failure {
    match o {
        Outcome::Down(f) => f,
        up => panic!("expected a failure, got {up:?}"),
    }
}

/// Runs the probe of `real` with the inline check `check` (see [`run`]), which must fail.
pub async fn fails(real: &str, check: &str) -> Failure {
    down(run(&probe(real, check)).await)
}

/// A line-based log of what a test server saw, shared with the test.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
