//! The appliance image under test: the built kernel + initramfs (see [`Image`]) booted in QEMU
//! with a config source on the kernel command line ([`ApplianceBuilder`]), config files served
//! so that every change is seen by HTTP polling ([`ConfigDir`]), and readers for the console
//! lines that init and lbd print ([`LogLine`], [`Memory`]).
//!
//! Tests never boot an old build: [`Image::find`] first brings the image up to date with the
//! current source ([`crate::fresh`]), which is quick when tools/test.sh has just built it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::console::{Console, Match};
use crate::netns::Netns;
use crate::qemu::{GuestBuilder, MacAddr, Nic, UserNet};

/// A config for one balancer on QEMU's user networking (10.0.2.0/24, the host at 10.0.2.2):
/// a VRRP instance that becomes master alone, and one weighted service whose reals (ports on the
/// host that nobody serves) are checked and found down. What the boot, reload and shutdown tests
/// and the boot benchmark run with; `service.web` is the last table, so a real appended to the
/// text joins it.
pub const USER_NET_CONFIG: &str = r#"[node]
hostname = "lb-test"
log_level = "info"

[node.sysctl]
"net.ipv4.ip_forward" = 1

[ipvs.timeouts]
tcp = "15m"

[vrrp.instance.VI_DEMO]
interface = "eth0"
vrid = 42
priority = 100
vips = ["10.0.2.100/24"]

[service.web]
vip = "10.0.2.100:80"
scheduler = "wrr"
forwarding = "nat"
check = { type = "tcp", interval = "2s" }

[[service.web.real]]
address = "10.0.2.2:8080"
weight = 2

[[service.web.real]]
address = "10.0.2.2:8081"
weight = 1
"#;

/// The kernel command line every appliance guest starts with: the console on the captured
/// serial port, and a kernel panic ends QEMU at once (`-no-reboot`) instead of hanging a test.
pub const BASE_APPEND: &str = "console=ttyS0 panic=-1";

/// Console text that must never appear: the kernel died, or PID 1 exited.
pub const FATAL_MARKERS: [&str; 2] = ["Kernel panic", "Attempted to kill init"];

/// The built appliance image: `vmlinuz`, `initrd.img` and `manifest.json` in one directory.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image directory (`LB_IMAGE_DIR` or `<target>/lb-image`).
    pub dir: PathBuf,
    /// The kernel.
    pub vmlinuz: PathBuf,
    /// The initramfs (init, lbd, modules).
    pub initrd: PathBuf,
    /// What the image builder wrote about the image.
    pub manifest: PathBuf,
}

impl Image {
    /// The appliance image, brought up to date with the current source, if all of its files
    /// are there.
    pub fn try_find() -> Result<Self, String> {
        Self::of(crate::fresh::ImageKind::Appliance)
    }

    /// The image of `kind`, brought up to date with the current source.
    pub fn of(kind: crate::fresh::ImageKind) -> Result<Self, String> {
        Self::in_dir(crate::fresh::image(kind)?)
    }

    /// The image in `dir`, if all of its files are there (as it is: not rebuilt).
    pub fn in_dir(dir: PathBuf) -> Result<Self, String> {
        let image = Self {
            vmlinuz: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            manifest: dir.join("manifest.json"),
            dir,
        };
        for file in [&image.vmlinuz, &image.initrd, &image.manifest] {
            if !file.is_file() {
                return Err(format!(
                    "the appliance image is incomplete: {} is missing",
                    file.display()
                ));
            }
        }
        Ok(image)
    }

    /// [`Image::try_find`], panicking with why the image could not be had.
    pub fn find() -> Self {
        Self::try_find().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sizes and counts from `manifest.json`.
    pub fn sizes(&self) -> Result<ImageSizes, String> {
        let text = std::fs::read_to_string(&self.manifest)
            .map_err(|e| format!("{}: {e}", self.manifest.display()))?;
        ImageSizes::from_manifest(&text).map_err(|e| format!("{}: {e}", self.manifest.display()))
    }
}

/// What `manifest.json` says about the image's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSizes {
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_version: String,
    /// The initramfs compression (`gzip`, `zstd`, `xz`).
    pub compression: String,
    /// `initrd.img` in bytes.
    pub initramfs_compressed_bytes: u64,
    /// The cpio archive before compression, in bytes.
    pub initramfs_uncompressed_bytes: u64,
    /// Regular files in the initramfs.
    pub initramfs_files: u64,
    /// Kernel modules in the initramfs.
    pub module_count: u64,
    /// `vmlinuz` in bytes, if listed among the outputs.
    pub vmlinuz_bytes: Option<u64>,
}

impl ImageSizes {
    /// Reads the fields from the manifest's JSON text (`totals`, `outputs`, ...).
    pub fn from_manifest(json: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let totals = &v["totals"];
        let number = |key: &str| {
            totals[key]
                .as_u64()
                .ok_or_else(|| format!("totals.{key} is missing or not a number"))
        };
        let text = |key: &str| {
            v[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{key} is missing or not a string"))
        };
        let vmlinuz_bytes = v["outputs"].as_array().and_then(|outs| {
            outs.iter()
                .find(|o| o["path"] == "vmlinuz")
                .and_then(|o| o["size"].as_u64())
        });
        Ok(Self {
            kernel_version: text("kernel_version")?,
            compression: text("compression")?,
            initramfs_compressed_bytes: number("initramfs_compressed_bytes")?,
            initramfs_uncompressed_bytes: number("initramfs_uncompressed_bytes")?,
            initramfs_files: number("initramfs_files")?,
            module_count: number("module_count")?,
            vmlinuz_bytes,
        })
    }
}

/// Boots the appliance image with a config source. Defaults: 512 MiB, a virtio NIC on user
/// networking, [`BASE_APPEND`], no `lb.*` keys.
#[derive(Clone, Debug)]
pub struct ApplianceBuilder {
    name: String,
    mac: Option<MacAddr>,
    net: UserNet,
    /// NICs that replace the user-networking one (taps on a test bridge).
    nics: Vec<Nic>,
    /// The network namespace QEMU runs in (where the taps are).
    netns: Option<String>,
    config_urls: Vec<String>,
    poll: Option<String>,
    extra: Vec<String>,
    vcpus: u32,
}

impl ApplianceBuilder {
    /// An appliance guest called `name` (log directory and messages).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            mac: None,
            net: UserNet::new(),
            nics: Vec::new(),
            netns: None,
            config_urls: Vec::new(),
            poll: None,
            extra: Vec::new(),
            vcpus: 1,
        }
    }

    /// The NIC's MAC address (the guest's `${mac}`).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Serves `dir` with QEMU's TFTP server at `tftp://10.0.2.2/`.
    pub fn tftp(mut self, dir: impl Into<PathBuf>) -> Self {
        self.net = self.net.tftp(dir);
        self
    }

    /// Forwards TCP `127.0.0.1:host_port` on the host to `guest_port` on the guest's user
    /// networking address (10.0.2.15), e.g. to reach lbd's TCP API from the host.
    pub fn hostfwd_tcp(mut self, host_port: u16, guest_port: u16) -> Self {
        self.net = self.net.hostfwd_tcp(host_port, guest_port);
        self
    }

    /// Adds a NIC; once one is added, the guest has only the NICs added (in that order) and no
    /// user networking, e.g. a tap on a bridge in [`ApplianceBuilder::netns`].
    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    /// Runs QEMU inside `ns`, so tap NICs refer to taps there.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_owned());
        self
    }

    /// Adds `lb.config=URL` (URLs are tried in the order added).
    pub fn config_url(mut self, url: impl Into<String>) -> Self {
        self.config_urls.push(url.into());
        self
    }

    /// `lb.poll=EVERY`, e.g. `1s`.
    pub fn poll(mut self, every: impl Into<String>) -> Self {
        self.poll = Some(every.into());
        self
    }

    /// The guest's vCPUs (1 unless set).
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }

    /// Appends a word to the kernel command line.
    pub fn append(mut self, word: impl Into<String>) -> Self {
        self.extra.push(word.into());
        self
    }

    /// The kernel command line this builder boots with.
    pub fn cmdline(&self) -> String {
        let mut words = vec![BASE_APPEND.to_owned()];
        words.extend(self.config_urls.iter().map(|u| format!("lb.config={u}")));
        if let Some(p) = &self.poll {
            words.push(format!("lb.poll={p}"));
        }
        words.extend(self.extra.iter().cloned());
        words.join(" ")
    }

    /// The harness builder for `image`, to adjust further before spawning.
    pub fn guest_builder(&self, image: &Image) -> GuestBuilder {
        let mut g = GuestBuilder::new(&self.name)
            .kernel(&image.vmlinuz)
            .initrd(&image.initrd)
            .append(self.cmdline())
            .memory_mib(512)
            .smp(self.vcpus);
        if self.nics.is_empty() {
            let mut nic = Nic::user(self.net.clone());
            if let Some(mac) = self.mac {
                nic = nic.mac(mac);
            }
            g = g.nic(nic);
        }
        for nic in &self.nics {
            g = g.nic(nic.clone());
        }
        if let Some(ns) = &self.netns {
            g = g.netns_named(ns);
        }
        g
    }

    /// Starts QEMU with `image`.
    pub fn spawn(&self, image: &Image) -> Result<crate::Guest, crate::qemu::GuestError> {
        self.guest_builder(image).spawn()
    }
}

/// A directory of config files served to a guest (by a [`crate::StaticServer`] or QEMU's TFTP).
///
/// Every [`ConfigDir::publish`] is seen as a change by HTTP polling: python's http.server
/// answers `If-Modified-Since` with whole-second `Last-Modified` times, so a file rewritten
/// within the same second as its previous version would be reported unchanged (304). Publishing
/// therefore waits until the clock has passed the previous version's second, and replaces the
/// file by rename, so a server never sends half a file.
#[derive(Debug)]
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// A fresh, empty directory (removed on drop).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("lbtest-config-")
                .tempdir()?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` as `name`, with a modification time in a later second than the version it
    /// replaces. Returns the SHA-256 of `text` in hex (lbd's config version).
    pub fn publish(&self, name: &str, text: &str) -> std::io::Result<String> {
        let path = self.dir.path().join(name);
        let old_secs = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .map(unix_secs);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        // File times come from the kernel's coarse clock, which lags the system time by up to
        // a tick, so check the written file's own time rather than the clock. Bounded: the
        // second changes within about one second.
        let write = || -> std::io::Result<u64> {
            std::fs::write(&tmp, text)?;
            Ok(unix_secs(std::fs::metadata(&tmp)?.modified()?))
        };
        let mut stuck = 0;
        crate::wait::until_some(Duration::from_secs(3), Duration::from_millis(20), || {
            let new_secs = match write() {
                Ok(secs) => secs,
                Err(e) => return Some(Err(e)),
            };
            if old_secs.is_none_or(|old| new_secs > old) {
                return Some(Ok(()));
            }
            stuck = new_secs;
            None
        })
        .unwrap_or_else(|| {
            Err(std::io::Error::other(format!(
                "{}: the file time stays in second {stuck}",
                tmp.display()
            )))
        })?;
        std::fs::rename(&tmp, &path)?;
        Ok(sha256_hex(text.as_bytes()))
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Lower-case hex SHA-256; lbd's config version is this hash of the config file (its first 12
/// characters appear in log lines).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The 1-based `line:column` of the first occurrence of `needle` in `text`, as config errors
/// report it (e.g. the opening quote of a bad value).
pub fn position_of(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        line.find(needle)
            .map(|col| (i + 1, line[..col].chars().count() + 1))
    })
}

/// One line that init or lbd printed: `[    3.721686] lbd:  INFO lbd running with ... pid=81`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine<'a> {
    /// Seconds since the guest booted (CLOCK_BOOTTIME), from the bracketed stamp.
    pub uptime: Duration,
    /// `init` or `lbd` (any word before the colon).
    pub program: &'a str,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'a str,
    /// The message and its `key=value` fields.
    pub message: &'a str,
}

impl<'a> LogLine<'a> {
    /// Parses a program's log line; `None` for kernel messages and anything else.
    pub fn parse(line: &'a str) -> Option<Self> {
        let uptime = stamp(line)?;
        let rest = line.split_once(']')?.1.trim_start();
        let (program, rest) = rest.split_once(':')?;
        if program.is_empty()
            || !program
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        let rest = rest.trim_start();
        let (level, message) = rest.split_once(' ').unwrap_or((rest, ""));
        if !matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE") {
            return None;
        }
        Some(Self {
            uptime,
            program,
            level,
            message,
        })
    }

    /// The value of the field `key=value` (values end at whitespace; quotes are kept).
    pub fn field(&self, key: &str) -> Option<&'a str> {
        field(self.message, key)
    }
}

/// The bracketed `[seconds.fraction]` stamp at the start of a kernel or program console line.
pub fn stamp(line: &str) -> Option<Duration> {
    let inner = line.strip_prefix('[')?.split_once(']')?.0.trim();
    let secs: f64 = inner.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Whether the kernel's console timestamps count from the kernel's start (`Some(true)`), or only
/// from its first timer tick (`Some(false)`); `None` before the kernel printed its command line.
/// The x86 kernel starts its clock in `setup_arch` only when its quick calibration of the TSC
/// against the PIT works; under TCG that fails in about one boot in four, the TSC is then
/// calibrated later against the HPET, and every timestamp until the first tick reads 0: such a
/// boot's times are a few hundred ms short. The sign is where `tsc: Detected` comes: before the
/// command line or after it.
pub fn kernel_clock_from_start(lines: &[String]) -> Option<bool> {
    for line in lines {
        if line.contains("tsc: Detected ") {
            return Some(true);
        }
        if line.contains("Kernel command line:") {
            return Some(false);
        }
    }
    None
}

/// The value of `key=value` among the whitespace-separated words of `text`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// init's `memory` line: `memory init_rss_kib=4552 lbd_rss_kib=1624 mem_available_kib=433048`,
/// logged a few seconds after lbd started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// init's resident set size, KiB.
    pub init_rss_kib: u64,
    /// lbd's resident set size, KiB (0 when lbd was not running).
    pub lbd_rss_kib: u64,
    /// The kernel's MemAvailable, KiB, if logged.
    pub mem_available_kib: Option<u64>,
}

impl Memory {
    /// Parses init's memory line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Self> {
        let l = LogLine::parse(line)?;
        if l.program != "init" || !l.message.starts_with("memory ") {
            return None;
        }
        let num = |k: &str| l.field(k).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            init_rss_kib: num("init_rss_kib")?,
            lbd_rss_kib: num("lbd_rss_kib")?,
            mem_available_kib: num("mem_available_kib"),
        })
    }
}

/// lbd's "running" line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbdRunning {
    /// lbd's pid in the guest.
    pub pid: u32,
    /// When lbd printed it, in seconds since the guest booted.
    pub uptime: Duration,
    /// The config summary (`1 service, 2 reals, ... version 538a950868ab`).
    pub summary: String,
    /// The whole console line.
    pub line: String,
}

/// The pattern of lbd's "running" line; groups `summary` and `pid`. It ends at the pid, not
/// at the end of the line: a kernel message can land on the same console line
/// (`... pid=86[    8.786745] IPv6: ADDRCONF...`).
pub const LBD_RUNNING: &str =
    r"lbd:\s+INFO lbd running with /run/lb/config\.toml: (?P<summary>.*) pid=(?P<pid>\d+)\b";

impl LbdRunning {
    /// From a match of [`LBD_RUNNING`].
    pub fn from_match(m: &Match) -> Option<Self> {
        Some(Self {
            pid: m.name("pid")?.parse().ok()?,
            uptime: stamp(&m.line)?,
            summary: m.name("summary")?.to_owned(),
            line: m.line.clone(),
        })
    }
}

/// Console lines that contain one of [`FATAL_MARKERS`].
pub fn fatal_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| FATAL_MARKERS.iter().any(|m| l.contains(m)))
        .cloned()
        .collect()
}

/// Panics if the console shows a kernel panic or PID 1 exiting.
pub fn assert_no_fatal(console: &Console) {
    let bad = fatal_lines(&console.lines());
    assert!(
        bad.is_empty(),
        "console of {} shows a fatal error:\n{}",
        console.name(),
        bad.join("\n")
    );
}

/// Console lines (complete or not) that contain `needle`.
pub fn lines_containing(console: &Console, needle: &str) -> Vec<String> {
    console
        .lines()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// Bytes as MiB with two decimals.
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} MiB", self.0 as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_lines_are_parsed_and_kernel_lines_are_not() {
        let l = LogLine::parse(
            "[    3.721686] lbd:  INFO lbd running with /run/lb/config.toml: 1 service, 2 reals pid=81",
        )
        .unwrap();
        assert_eq!(l.uptime, Duration::from_micros(3_721_686));
        assert_eq!(l.program, "lbd");
        assert_eq!(l.level, "INFO");
        assert!(l.message.starts_with("lbd running with"));
        assert_eq!(l.field("pid"), Some("81"));
        assert_eq!(l.field("pi"), None);

        let w = LogLine::parse("[   12.5] init:  WARN config fetch failed round=1").unwrap();
        assert_eq!((w.program, w.level), ("init", "WARN"));
        assert_eq!(w.field("round"), Some("1"));

        for kernel in [
            "[    2.607197] input: Power Button as /devices/LNXSYSTM:00/input/input2",
            "[    2.744083] IPVS: ipvs loaded.",
            "no stamp: INFO x",
            "",
        ] {
            assert_eq!(LogLine::parse(kernel), None, "{kernel}");
        }
    }

    #[test]
    fn stamps_are_seconds_since_boot() {
        assert_eq!(
            stamp("[    0.138926] mem auto-init"),
            Some(Duration::from_micros(138_926))
        );
        assert_eq!(stamp("[  123.5] x"), Some(Duration::from_millis(123_500)));
        assert_eq!(stamp("[nope] x"), None);
        assert_eq!(stamp("x [1.0]"), None);
    }

    #[test]
    fn the_kernel_clock_counts_from_the_start_only_after_an_early_tsc_calibration() {
        let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
        let early = lines(
            "[    0.000000] tsc: Fast TSC calibration using PIT\n\
             [    0.000000] tsc: Detected 2596.127 MHz processor\n\
             [    0.192746] Kernel command line: console=ttyS0 panic=-1\n\
             [    0.432221] clocksource: tsc-early: mask: 0xffffffffffffffff",
        );
        let late = lines(
            "[    0.000000] Kernel command line: console=ttyS0 panic=-1\n\
             [    0.040000] tsc: Unable to calibrate against PIT\n\
             [    0.040000] tsc: using HPET reference calibration\n\
             [    0.040000] tsc: Detected 2596.154 MHz processor",
        );
        assert_eq!(kernel_clock_from_start(&early), Some(true));
        assert_eq!(kernel_clock_from_start(&late), Some(false));
        assert_eq!(kernel_clock_from_start(&early[..1]), None);
        assert_eq!(kernel_clock_from_start(&[]), None);
    }

    #[test]
    fn memory_line() {
        let m = Memory::parse(
            "[    6.622551] init:  INFO memory init_rss_kib=4552 lbd_rss_kib=1624 mem_available_kib=433048",
        )
        .unwrap();
        assert_eq!(
            m,
            Memory {
                init_rss_kib: 4552,
                lbd_rss_kib: 1624,
                mem_available_kib: Some(433_048)
            }
        );
        assert_eq!(
            Memory::parse("[ 6.6] lbd:  INFO memory init_rss_kib=1 lbd_rss_kib=2"),
            None
        );
        assert_eq!(
            Memory::parse("[ 6.6] init:  INFO memory init_rss_kib=x lbd_rss_kib=2"),
            None
        );
    }

    #[test]
    fn running_line_pattern() {
        let c = Console::detached("t");
        c.push(b"[    3.72] lbd:  INFO lbd running with /run/lb/config.toml: 1 service, 2 reals, version 538a950868ab pid=81\n");
        let m = c.expect(LBD_RUNNING, Duration::from_secs(1)).unwrap();
        let r = LbdRunning::from_match(&m).unwrap();
        assert_eq!(r.pid, 81);
        assert_eq!(r.summary, "1 service, 2 reals, version 538a950868ab");
        assert_eq!(r.uptime, Duration::from_millis(3720));
    }

    #[test]
    fn positions_are_one_based() {
        let text = "[service.web]\nvip = \"10.0.2.100:80\"\nscheduler = \"fastest\"\n";
        assert_eq!(position_of(text, "\"fastest\""), Some((3, 13)));
        assert_eq!(position_of(text, "[service"), Some((1, 1)));
        assert_eq!(position_of(text, "nope"), None);
    }

    #[test]
    fn fatal_markers_are_found() {
        let lines = vec![
            "[ 1.0] ok".to_owned(),
            "[ 2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0".to_owned(),
        ];
        assert_eq!(fatal_lines(&lines).len(), 1);
        assert!(fatal_lines(&lines[..1]).is_empty());
    }

    #[test]
    fn manifest_sizes() {
        let json = r#"{"format":1,"kernel_version":"6.1.0-56-cloud-amd64","compression":"gzip",
            "outputs":[{"path":"vmlinuz","size":14186432,"sha256":"x"}],
            "totals":{"initramfs_compressed_bytes":5690534,"initramfs_uncompressed_bytes":17260140,
            "initramfs_files":67,"module_count":58,"module_bytes":8439578}}"#;
        let s = ImageSizes::from_manifest(json).unwrap();
        assert_eq!(s.initramfs_compressed_bytes, 5_690_534);
        assert_eq!(s.initramfs_uncompressed_bytes, 17_260_140);
        assert_eq!(s.vmlinuz_bytes, Some(14_186_432));
        assert_eq!(s.compression, "gzip");
        let err =
            ImageSizes::from_manifest(r#"{"kernel_version":"k","compression":"gzip","totals":{}}"#)
                .unwrap_err();
        assert!(err.contains("totals.initramfs_compressed_bytes"), "{err}");
        assert_eq!(Mib(5_690_534).to_string(), "5.43 MiB");
    }

    #[test]
    fn published_configs_change_second_and_hash() {
        let dir = ConfigDir::new().unwrap();
        let h1 = dir.publish("c.toml", "a = 1\n").unwrap();
        let t1 = std::fs::metadata(dir.path().join("c.toml"))
            .unwrap()
            .modified()
            .unwrap();
        let h2 = dir.publish("c.toml", "a = 2\n").unwrap();
        let t2 = std::fs::metadata(dir.path().join("c.toml"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(unix_secs(t2) > unix_secs(t1));
        assert_ne!(h1, h2);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c.toml")).unwrap(),
            "a = 2\n"
        );
        assert!(!dir.path().join(".c.toml.tmp").exists());
    }

    #[test]
    fn tap_nics_replace_user_networking() {
        let image = Image {
            dir: "/img".into(),
            vmlinuz: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            manifest: "/img/manifest.json".into(),
        };
        let args = |b: ApplianceBuilder| -> String {
            b.guest_builder(&image)
                .qemu_args(crate::Accel::Tcg, Path::new("/q"))
                .unwrap()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let user = args(ApplianceBuilder::new("u"));
        assert!(user.contains("-netdev user,id=n0"), "{user}");
        let tap = args(ApplianceBuilder::new("t").nic(Nic::tap("tap1", MacAddr::local(7))));
        assert!(
            tap.contains("-netdev tap,id=n0,ifname=tap1,") && !tap.contains("user,"),
            "{tap}"
        );
        assert!(!tap.contains("id=n1"), "{tap}");
    }

    #[test]
    fn cmdline_has_the_lb_keys() {
        let b = ApplianceBuilder::new("x")
            .config_url("http://10.0.2.2:8000/${mac}.toml")
            .poll("1s")
            .append("lb.log=debug");
        assert_eq!(
            b.cmdline(),
            "console=ttyS0 panic=-1 lb.config=http://10.0.2.2:8000/${mac}.toml lb.poll=1s lb.log=debug"
        );
        assert_eq!(ApplianceBuilder::new("y").cmdline(), BASE_APPEND);
    }
}
