//! Shared scaffolding for the `check_*` tests: a network namespace per test (so every server and
//! address is the test's own), code run inside it on a thread with its own tokio runtime, real
//! programs started inside it (python3 http.server, nginx, dnsmasq, aiosmtpd, postgres,
//! mariadbd), and configs/probes built from TOML like an operator writes them.
//!
//! Needs root (network namespaces) and the programs each test names; a missing one fails the
//! test with the package to install (tools/setup.sh installs them all). Nothing is skipped.
//! Namespaces, processes and directories are removed by Drop guards, also when a test fails.

#![allow(dead_code)]

use lbd::check::probe::Probe;
use lbd::config::{self, Config};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the test with a clear message unless we are root and every program exists.
pub fn require(progs: &[&str]) {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test needs root (it creates network namespaces); run it as root"
    );
    for prog in ["ip"].iter().chain(progs) {
        let found = if prog.starts_with('/') {
            Path::new(prog).is_file()
        } else {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
                .unwrap_or(false)
                || ["/usr/sbin", "/sbin"]
                    .iter()
                    .any(|d| Path::new(d).join(prog).is_file())
        };
        let package = match *prog {
            "ip" => "iproute2",
            "dnsmasq" => "dnsmasq-base",
            "nginx" => "nginx-light",
            "genhash" => "keepalived",
            "mariadbd" | "mariadb-install-db" => "mariadb-server",
            p if p.contains("postgresql") => "postgresql",
            "/usr/bin/python3" => "python3 (and python3-aiosmtpd for SMTP)",
            other => other,
        };
        assert!(
            found,
            "this test needs `{prog}`: run tools/setup.sh or `apt-get install -y {package}`"
        );
    }
}

/// Installs a tracing subscriber printing into the test's captured output (once per binary).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace with `lo` up, deleted on drop with everything running in it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "lbdchk-{}-{}-{tag}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS args...`, stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run(Command::new("ip").args(all))
    }

    /// Puts `cidr` on one end of a veth pair and a permanent neighbour entry with a MAC nobody
    /// has for `swallower`: packets to it leave, reach the other end and are dropped there (a
    /// real that swallows SYNs).
    pub fn add_blackhole(&self, dev: &str, cidr: &str, swallower: &str) {
        let peer = format!("{dev}p");
        self.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        self.ip(&["addr", "add", cidr, "dev", dev]);
        self.ip(&["link", "set", dev, "up"]);
        self.ip(&["link", "set", &peer, "up"]);
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
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Starts a program inside the namespace; it is killed when the guard drops.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name));
        ChildGuard {
            child: Some(child),
            what: args.join(" "),
        }
    }

    /// Runs a program inside the namespace to completion; it must succeed.
    pub fn exec(&self, args: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid fd for this thread only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only processes this test started can be in its namespace.
        for _ in 0..20 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process, killed and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Stops the process now (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its stderr so far (the process must have exited) for failure messages.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{} exited early ({status}): {err}", self.what);
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "lbdchk-{}-{}-{tag}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (inside a namespace thread) until something accepts TCP connections at `addr`.
pub async fn wait_tcp(addr: SocketAddr, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// A line-based log of what a test server saw, shared with the test.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
