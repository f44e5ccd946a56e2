//! A running `pxe serve` on loopback with a scratch site (image, TFTP root, inventory and the
//! classic-pair template from tools/examples/pxe), and real clients: curl, tftp-hpa, atftp.
//! The server is killed when the handle drops; every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const PXE: &str = env!("CARGO_BIN_EXE_pxe");
pub const LB1: &str = "52:54:00:00:00:01";
pub const LB2: &str = "52:54:00:00:00:02";

/// The example inventory and template every test starts from.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/examples/pxe")
}

/// Incompressible, reproducible bytes (xorshift), so ranges and hashes mean something.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A scratch site: `image/` (vmlinuz, initrd.img, manifest.json), `tftp/` (undionly.kpxe),
/// `inventory.toml`, `pair.toml.tmpl`, and a `secret` outside every served directory.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        std::fs::create_dir(p.join("image")).unwrap();
        std::fs::create_dir(p.join("tftp")).unwrap();
        std::fs::write(p.join("image/vmlinuz"), noise(300_000, 1)).unwrap();
        std::fs::write(p.join("image/initrd.img"), noise(2_000_000, 2)).unwrap();
        std::fs::write(
            p.join("image/manifest.json"),
            r#"{"format":1,"cmdline":"initrd=initrd.img console=ttyS0,115200n8 panic=10"}"#,
        )
        .unwrap();
        std::fs::write(p.join("tftp/undionly.kpxe"), noise(74_213, 3)).unwrap();
        std::fs::write(p.join("secret"), "SECRET-OUTSIDE-THE-ROOT\n").unwrap();
        std::fs::copy(examples().join("inventory.toml"), p.join("inventory.toml")).unwrap();
        std::fs::copy(
            examples().join("classic-pair.toml.tmpl"),
            p.join("pair.toml.tmpl"),
        )
        .unwrap();
        Site { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap()
    }

    /// Replaces a file the way editors and config management do: write beside, rename over.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        let tmp = path.with_extension("tmp-write");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = String::from_utf8(self.read(rel)).unwrap();
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub fn source_args(&self) -> Vec<String> {
        vec![
            "--inventory".into(),
            self.path("inventory.toml").display().to_string(),
            "--template".into(),
            self.path("pair.toml.tmpl").display().to_string(),
        ]
    }
}

/// A running `pxe serve`.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub tftp: SocketAddr,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts pxe on loopback (ports chosen by the OS), polling its sources every 200 ms.
    pub fn start(site: &Site) -> Server {
        Self::start_with(site, &[])
    }

    pub fn start_with(site: &Site, extra: &[&str]) -> Server {
        let log = site.path("pxe.log");
        let mut cmd = Command::new(PXE);
        cmd.arg("serve")
            .arg("--image")
            .arg(site.path("image"))
            .args(site.source_args())
            .args([
                "--http",
                "127.0.0.1:0",
                "--tftp",
                "127.0.0.1:0",
                "--poll",
                "200ms",
            ])
            .arg("--tftp-root")
            .arg(site.path("tftp"))
            .args(extra)
            .env("PXE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start pxe");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        let (Some(http), Some(tftp), Some(base)) =
            (field("http"), field("tftp"), field("base_url"))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pxe did not start: stdout {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Server {
            child,
            http: http.parse().unwrap(),
            tftp: tftp.parse().unwrap(),
            base,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `count` lines containing every needle; returns them.
    pub fn wait_log_n(&self, needles: &[&str], count: usize, timeout: Duration) -> Vec<String> {
        let mut log = String::new();
        let hits = lbtest::wait::until_some(timeout, Duration::from_millis(50), || {
            log = self.log();
            let hits: Vec<String> = log
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string)
                .collect();
            (hits.len() >= count).then_some(hits)
        });
        hits.unwrap_or_else(|| {
            panic!("no log line with {needles:?} within {timeout:?}; log:\n{log}")
        })
    }

    pub fn wait_log(&self, needles: &[&str]) -> String {
        self.wait_log_n(needles, 1, Duration::from_secs(10))
            .pop()
            .unwrap()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- pxe log ---\n{}", self.log());
        }
    }
}

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl with `args` (plus the URL) and returns status, headers and body.
pub fn curl(url: &str, args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let headers = dir.path().join("headers");
    let out = lbtest::programs::command("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (apt-get install curl; tools/setup.sh installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let headers = std::fs::read_to_string(&headers)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// Runs a command to completion (bounded by `timeout` via coreutils `timeout`).
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Output {
    lbtest::programs::command("timeout")
        .arg(format!("{}", timeout.as_secs().max(1)))
        .arg(lbtest::programs::path(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Fails with the package to install when a client program is missing (see
/// `lbtest::programs`).
pub fn require(program: &str) {
    lbtest::programs::path(program);
}
