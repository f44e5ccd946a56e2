//! QEMU guests: a builder for the command line, a running [`Guest`] with its serial console and
//! QMP socket, and clean-up that never leaves a QEMU behind.
//!
//! The console goes to QEMU's stdout (`-chardev stdio`), which a reader thread copies into
//! memory (for expectations) and into `console.log` in the guest's log directory. QEMU's own
//! messages go to `qemu.stderr.log`, and the exact command line to `qemu.cmdline`.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::artifacts::{self, Accel};
use crate::console::{Console, ExpectError, Match};
use crate::netns::Netns;
use crate::process::describe;
use crate::qmp::{Qmp, QmpError};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Env var: base directory for guest logs (default `<target>/lbtest/logs`).
pub const ENV_LOG_DIR: &str = "LB_LOG_DIR";
/// Env var: set to `1` to copy every guest's console to stderr as it arrives.
pub const ENV_CONSOLE_ECHO: &str = "LB_CONSOLE_ECHO";
/// How many console lines a failing test prints when it drops a guest.
pub const PANIC_TAIL_LINES: usize = 200;
/// How long QEMU may take to open its QMP socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered address in QEMU's `52:54:00` range, numbered by `n`.
    pub fn local(n: u32) -> Self {
        let b = n.to_be_bytes();
        MacAddr([0x52, 0x54, 0x00, b[1], b[2], b[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("MAC address {s:?} must have 6 octets"));
        }
        let mut b = [0u8; 6];
        for (o, p) in b.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("MAC address {s:?}: {p:?} is not a hex octet"))?;
        }
        Ok(MacAddr(b))
    }
}

/// Transport protocol of a forwarded port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A user-networking port forward from the host into the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFwd {
    /// Protocol.
    pub proto: Proto,
    /// Host address to listen on (loopback by default, so tests stay local).
    pub host_addr: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Guest address (`None`: the guest's DHCP address).
    pub guest_addr: Option<Ipv4Addr>,
    /// Guest port.
    pub guest_port: u16,
}

impl HostFwd {
    fn qemu_value(&self) -> String {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let guest = self.guest_addr.map(|a| a.to_string()).unwrap_or_default();
        format!(
            "{proto}:{}:{}-{guest}:{}",
            self.host_addr, self.host_port, self.guest_port
        )
    }
}

/// QEMU user networking (slirp): the guest gets 10.0.2.15 by DHCP, the host is 10.0.2.2.
/// Fine for one guest talking to the host; passes no multicast between guests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserNet {
    hostfwd: Vec<HostFwd>,
    guestfwd: Vec<String>,
    tftp: Option<PathBuf>,
    bootfile: Option<String>,
    net: Option<String>,
    restrict: bool,
}

impl UserNet {
    /// Default user networking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forwards TCP `127.0.0.1:host_port` on the host to `guest_port` in the guest.
    pub fn hostfwd_tcp(self, host_port: u16, guest_port: u16) -> Self {
        self.hostfwd(HostFwd {
            proto: Proto::Tcp,
            host_addr: Ipv4Addr::LOCALHOST,
            host_port,
            guest_addr: None,
            guest_port,
        })
    }

    /// Adds a port forward.
    pub fn hostfwd(mut self, fwd: HostFwd) -> Self {
        self.hostfwd.push(fwd);
        self
    }

    /// Adds a guest forward in QEMU's syntax, e.g. `tcp:10.0.2.100:80-tcp:127.0.0.1:8080`
    /// (connections from the guest to 10.0.2.100:80 reach the host's 127.0.0.1:8080).
    pub fn guestfwd(mut self, spec: impl Into<String>) -> Self {
        self.guestfwd.push(spec.into());
        self
    }

    /// Serves `dir` with QEMU's built-in TFTP server at 10.0.2.2.
    pub fn tftp(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tftp = Some(dir.into());
        self
    }

    /// The boot file name QEMU's DHCP server offers (for PXE: a path under the TFTP root, or a
    /// URL such as `http://10.0.2.2:8080/boot.ipxe` for iPXE).
    pub fn bootfile(mut self, name: impl Into<String>) -> Self {
        self.bootfile = Some(name.into());
        self
    }

    /// The guest network, e.g. `10.0.2.0/24` (QEMU's default).
    pub fn net(mut self, cidr: impl Into<String>) -> Self {
        self.net = Some(cidr.into());
        self
    }

    /// Isolates the guest from the host's network (forwards still work).
    pub fn restrict(mut self, on: bool) -> Self {
        self.restrict = on;
        self
    }

    fn qemu_options(&self) -> String {
        let mut opts = String::new();
        if let Some(net) = &self.net {
            opts += &format!(",net={}", escape(net));
        }
        if self.restrict {
            opts += ",restrict=on";
        }
        if let Some(dir) = &self.tftp {
            opts += &format!(",tftp={}", escape(&dir.to_string_lossy()));
        }
        if let Some(file) = &self.bootfile {
            opts += &format!(",bootfile={}", escape(file));
        }
        for f in &self.hostfwd {
            opts += &format!(",hostfwd={}", f.qemu_value());
        }
        for g in &self.guestfwd {
            opts += &format!(",guestfwd={}", escape(g));
        }
        opts
    }
}

/// What a NIC is connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// QEMU user networking.
    User(UserNet),
    /// An existing tap device (created in the guest's network namespace, e.g. by
    /// [`Netns::add_tap`]).
    Tap {
        /// The tap's interface name.
        ifname: String,
    },
}

/// A guest network card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    /// What it connects to.
    pub backend: NetBackend,
    /// The QEMU device model (default `virtio-net-pci`).
    pub model: String,
    /// The MAC address (default: QEMU's choice).
    pub mac: Option<MacAddr>,
    /// An option ROM for PXE (default: QEMU's iPXE ROM for the model).
    pub romfile: Option<PathBuf>,
}

impl Nic {
    /// A virtio NIC on user networking.
    pub fn user(net: UserNet) -> Self {
        Self {
            backend: NetBackend::User(net),
            model: "virtio-net-pci".into(),
            mac: None,
            romfile: None,
        }
    }

    /// A virtio NIC on the tap `ifname` with address `mac`.
    pub fn tap(ifname: impl Into<String>, mac: MacAddr) -> Self {
        Self {
            backend: NetBackend::Tap {
                ifname: ifname.into(),
            },
            model: "virtio-net-pci".into(),
            mac: Some(mac),
            romfile: None,
        }
    }

    /// Uses another device model, e.g. `e1000`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Uses `rom` as the NIC's option ROM.
    pub fn romfile(mut self, rom: impl Into<PathBuf>) -> Self {
        self.romfile = Some(rom.into());
        self
    }

    fn qemu_args(&self, index: usize) -> [String; 4] {
        let id = format!("n{index}");
        let netdev = match &self.backend {
            NetBackend::User(u) => format!("user,id={id}{}", u.qemu_options()),
            NetBackend::Tap { ifname } => format!(
                "tap,id={id},ifname={},script=no,downscript=no",
                escape(ifname)
            ),
        };
        let mut device = format!("{},netdev={id}", self.model);
        if let Some(mac) = self.mac {
            device += &format!(",mac={mac}");
        }
        if let Some(rom) = &self.romfile {
            device += &format!(",romfile={}", escape(&rom.to_string_lossy()));
        }
        ["-netdev".into(), netdev, "-device".into(), device]
    }
}

/// Doubles commas, QEMU's escape inside option values.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// A guest that could not be started or did not behave.
#[derive(thiserror::Error)]
pub enum GuestError {
    /// The builder's settings contradict each other.
    #[error("guest {name}: {detail}")]
    Config {
        /// The guest.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A log or socket directory could not be created.
    #[error("guest {name}: {path}: {source}")]
    Io {
        /// The guest.
        name: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// QEMU could not be executed.
    #[error(
        "guest {name}: cannot run `{cmd}`: {source} (install qemu-system-x86 with tools/setup.sh)"
    )]
    Spawn {
        /// The guest.
        name: String,
        /// The command line.
        cmd: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// QEMU started but did not come up (bad option, missing tap, ...).
    #[error("guest {name}: QEMU did not start: {detail}\nQEMU said:\n{}\n(command line and logs in {})", stderr.join("\n"), log_dir.display())]
    Start {
        /// The guest.
        name: String,
        /// What went wrong.
        detail: String,
        /// QEMU's stderr.
        stderr: Vec<String>,
        /// The log directory.
        log_dir: PathBuf,
    },
    /// The guest did not exit in time.
    #[error("guest {name} still running after {timeout:?}; last console lines:\n{}\n(full log: {})", tail.join("\n"), log.display())]
    ExitTimeout {
        /// The guest.
        name: String,
        /// How long we waited.
        timeout: Duration,
        /// The end of the console.
        tail: Vec<String>,
        /// The console log.
        log: PathBuf,
    },
    /// Waiting for QEMU failed.
    #[error("guest {name}: waiting for QEMU: {source}")]
    Wait {
        /// The guest.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

crate::debug_is_display!(GuestError);

/// How a guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestExit {
    /// QEMU's exit status (0 after a guest power-off, a reset with `-no-reboot`, or `quit`).
    pub status: ExitStatus,
    /// The `reason` of QEMU's SHUTDOWN event, e.g. `guest-shutdown` (the guest powered off),
    /// `guest-reset` (it rebooted, with `-no-reboot`), `host-qmp-quit`, `guest-panic`; `None`
    /// when QEMU was killed.
    pub shutdown_reason: Option<String>,
    /// Time from spawn to exit.
    pub uptime: Duration,
}

static GUEST_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Builds a QEMU command line and starts it. Defaults: 512 MiB, 1 CPU, the accelerator from
/// [`artifacts::accel`], `-display none -no-reboot`, no NICs, console on ttyS0.
#[derive(Clone, Debug)]
pub struct GuestBuilder {
    name: String,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    pxe: bool,
    memory_mib: u32,
    smp: u32,
    nics: Vec<Nic>,
    display_none: bool,
    no_reboot: bool,
    accel: Option<Accel>,
    netns: Option<String>,
    extra: Vec<OsString>,
    log_dir: Option<PathBuf>,
    echo: bool,
    own_process_group: bool,
}

impl GuestBuilder {
    /// A guest called `name` (used in log directory names and messages).
    pub fn new(name: impl Into<String>) -> Self {
        let name: String = name.into();
        let name = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            name,
            kernel: None,
            initrd: None,
            append: None,
            pxe: false,
            memory_mib: 512,
            smp: 1,
            nics: Vec::new(),
            display_none: true,
            no_reboot: true,
            accel: None,
            netns: None,
            extra: Vec::new(),
            log_dir: None,
            echo: std::env::var_os(ENV_CONSOLE_ECHO).is_some_and(|v| v == "1"),
            own_process_group: false,
        }
    }

    /// Starts QEMU in a process group of its own, so a Ctrl-C at the terminal reaches only the
    /// caller, which can then power the guest off in order. (Tests leave it in theirs: a
    /// Ctrl-C that ends the test run ends its guests too.)
    pub fn own_process_group(mut self, on: bool) -> Self {
        self.own_process_group = on;
        self
    }

    /// Boots this kernel directly (`-kernel`).
    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.kernel = Some(path.into());
        self
    }

    /// The initramfs for a direct boot (`-initrd`).
    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }

    /// The kernel command line for a direct boot (`-append`); include `console=ttyS0` to see
    /// the kernel on the captured console.
    pub fn append(mut self, cmdline: impl Into<String>) -> Self {
        self.append = Some(cmdline.into());
        self
    }

    /// Boots from the network (`-boot n`) with the NICs' PXE ROMs; no kernel is given.
    pub fn pxe(mut self) -> Self {
        self.pxe = true;
        self
    }

    /// Guest memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Number of virtual CPUs.
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// Adds a NIC (they appear in the guest in the order added).
    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    /// `-display none` (default on).
    pub fn display_none(mut self, on: bool) -> Self {
        self.display_none = on;
        self
    }

    /// `-no-reboot`: a guest reboot ends QEMU (default on).
    pub fn no_reboot(mut self, on: bool) -> Self {
        self.no_reboot = on;
        self
    }

    /// Forces an accelerator instead of [`artifacts::accel`].
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = Some(accel);
        self
    }

    /// Runs QEMU inside `ns` (`ip netns exec`), so tap NICs refer to taps in that namespace.
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_owned());
        self
    }

    /// [`GuestBuilder::netns`] by the namespace's name.
    pub(crate) fn netns_named(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    /// Appends raw QEMU arguments.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Appends raw QEMU arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Writes logs to `dir` instead of `<target>/lbtest/logs/<name>.<pid>.<n>`.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Copies the console to stderr as it arrives (also enabled by `LB_CONSOLE_ECHO=1`).
    pub fn echo_console(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// The QEMU arguments (without the program) for accelerator `accel` and QMP socket `qmp`.
    pub fn qemu_args(&self, accel: Accel, qmp: &Path) -> Result<Vec<OsString>, GuestError> {
        let config = |detail: &str| GuestError::Config {
            name: self.name.clone(),
            detail: detail.to_owned(),
        };
        if self.pxe && self.kernel.is_some() {
            return Err(config("choose either PXE boot or a kernel, not both"));
        }
        if self.kernel.is_none() && (self.initrd.is_some() || self.append.is_some()) {
            return Err(config("initrd/append given without a kernel"));
        }
        if self.pxe && self.nics.is_empty() {
            return Err(config("PXE boot needs a NIC"));
        }
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-name");
        push(&escape(&self.name));
        // No default VGA, NIC, serial or monitor: only what is asked for.
        push("-nodefaults");
        for s in accel.qemu_args() {
            push(s);
        }
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.smp.to_string());
        if self.display_none {
            push("-display");
            push("none");
        }
        if self.no_reboot {
            push("-no-reboot");
        }
        push("-chardev");
        push("stdio,id=console0,signal=off");
        push("-serial");
        push("chardev:console0");
        push("-qmp");
        push(&format!(
            "unix:{},server=on,wait=off",
            escape(&qmp.to_string_lossy())
        ));
        for (i, nic) in self.nics.iter().enumerate() {
            for s in nic.qemu_args(i) {
                push(&s);
            }
        }
        if self.pxe {
            push("-boot");
            push("n");
        }
        if let Some(k) = &self.kernel {
            a.push("-kernel".into());
            a.push(k.into());
        }
        if let Some(i) = &self.initrd {
            a.push("-initrd".into());
            a.push(i.into());
        }
        if let Some(c) = &self.append {
            a.push("-append".into());
            a.push(c.into());
        }
        a.extend(self.extra.iter().cloned());
        Ok(a)
    }

    /// Starts QEMU and waits until its QMP socket answers.
    pub fn spawn(self) -> Result<Guest, GuestError> {
        let name = self.name.clone();
        let io_err = |path: &Path| {
            let name = name.clone();
            let path = path.to_owned();
            move |source| GuestError::Io { name, path, source }
        };
        let log_dir = match &self.log_dir {
            Some(d) => d.clone(),
            None => {
                let base = std::env::var_os(ENV_LOG_DIR)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| artifacts::harness_dir().join("logs"));
                let seq = GUEST_SEQ.fetch_add(1, Ordering::Relaxed);
                base.join(format!("{}.{}.{seq}", self.name, std::process::id()))
            }
        };
        std::fs::create_dir_all(&log_dir).map_err(io_err(&log_dir))?;
        // Unix socket paths are limited to 108 bytes: keep the socket in a short temp dir.
        let run_dir = tempfile::Builder::new()
            .prefix("lbtest-qmp-")
            .tempdir()
            .map_err(io_err(&std::env::temp_dir()))?;
        let qmp_path = run_dir.path().join("qmp.sock");
        let accel = self.accel.unwrap_or_else(artifacts::accel);
        let args = self.qemu_args(accel, &qmp_path)?;

        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = crate::programs::command("ip");
                c.args(["netns", "exec", ns])
                    .arg(crate::programs::path(QEMU));
                c
            }
            None => crate::programs::command(QEMU),
        };
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.own_process_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let cmdline = describe(&cmd);
        let cmdline_path = log_dir.join("qemu.cmdline");
        std::fs::write(&cmdline_path, format!("{}\n", shell_quote(&cmd)))
            .map_err(io_err(&cmdline_path))?;
        let mut child = cmd.spawn().map_err(|source| GuestError::Spawn {
            name: name.clone(),
            cmd: cmdline.clone(),
            source,
        })?;
        let started = Instant::now();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let console_path = log_dir.join("console.log");
        let stderr_path = log_dir.join("qemu.stderr.log");
        let captured =
            Console::capture(name.clone(), stdout, &console_path, self.echo).and_then(|console| {
                Console::capture(format!("{name} (qemu stderr)"), stderr, &stderr_path, false)
                    .map(|stderr| (console, stderr))
            });
        let (console, stderr) = match captured {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io_err(&log_dir)(e));
            }
        };
        let qmp = Qmp::connect(&qmp_path, START_TIMEOUT, || match child.try_wait() {
            Ok(Some(status)) => Err(format!("QEMU exited at startup ({status})")),
            _ => Ok(()),
        });
        let qmp = match qmp {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                stderr.wait_closed(Duration::from_secs(2));
                return Err(GuestError::Start {
                    name,
                    detail: e.to_string(),
                    stderr: stderr.lines(),
                    log_dir,
                });
            }
        };
        Ok(Guest {
            name,
            child: Some(child),
            exit: None,
            console,
            stderr,
            qmp,
            log_dir,
            accel,
            started,
            _run_dir: run_dir,
        })
    }
}

fn shell_quote(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running (or finished) QEMU guest. Dropping it kills QEMU; if the test is panicking, the
/// drop prints the last [`PANIC_TAIL_LINES`] console lines and where the full logs are.
#[derive(Debug)]
pub struct Guest {
    name: String,
    child: Option<Child>,
    exit: Option<GuestExit>,
    console: Console,
    stderr: Console,
    qmp: Qmp,
    log_dir: PathBuf,
    accel: Accel,
    started: Instant,
    _run_dir: tempfile::TempDir,
}

impl Guest {
    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The accelerator QEMU runs with.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// QEMU's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory with `console.log`, `qemu.stderr.log` and `qemu.cmdline`.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The serial console.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// What QEMU itself printed (warnings, errors).
    pub fn qemu_stderr(&self) -> Vec<String> {
        self.stderr.lines()
    }

    /// The QMP client.
    pub fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    /// See [`Console::expect`].
    pub fn expect(&self, pattern: &str, timeout: Duration) -> Result<Match, ExpectError> {
        self.console.expect(pattern, timeout)
    }

    /// See [`Console::expect_any`].
    pub fn expect_any(
        &self,
        patterns: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        self.console.expect_any(patterns, timeout)
    }

    /// See [`Console::wait_for_line`].
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, ExpectError> {
        self.console.wait_for_line(needle, timeout)
    }

    /// Presses the ACPI power button.
    pub fn system_powerdown(&self) -> Result<(), QmpError> {
        self.qmp.system_powerdown()
    }

    /// Sends ctrl-alt-delete on the keyboard.
    pub fn ctrl_alt_delete(&self) -> Result<(), QmpError> {
        self.qmp.send_ctrl_alt_delete()
    }

    /// Ends QEMU at once through QMP.
    pub fn quit(&self) -> Result<(), QmpError> {
        self.qmp.quit()
    }

    /// Runs a human monitor command (e.g. `info network`) and returns its output.
    pub fn human_monitor_command(&self, command_line: &str) -> Result<String, QmpError> {
        self.qmp.human_monitor_command(command_line)
    }

    /// How the guest ended, without waiting; `None` while it runs.
    pub fn try_exit(&mut self) -> Result<Option<GuestExit>, GuestError> {
        if let Some(e) = &self.exit {
            return Ok(Some(e.clone()));
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().map_err(|source| GuestError::Wait {
            name: self.name.clone(),
            source,
        })?;
        Ok(status.map(|s| self.finish(s)))
    }

    /// True while QEMU runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_exit(), Ok(None))
    }

    /// Waits at most `timeout` for QEMU to exit (the guest powered off or rebooted, or `quit`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<GuestExit, GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_exit()? {
                return Ok(exit);
            }
            if Instant::now() >= deadline {
                return Err(GuestError::ExitTimeout {
                    name: self.name.clone(),
                    timeout,
                    tail: self.console.tail(crate::console::ERROR_TAIL_LINES),
                    log: self.log_dir.join("console.log"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills QEMU (SIGKILL) if it runs and reaps it.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.finish(status);
            }
        }
    }

    fn finish(&mut self, status: ExitStatus) -> GuestExit {
        let uptime = self.started.elapsed();
        // QEMU sends SHUTDOWN before exiting; the readers finish when the pipes close.
        self.qmp.wait_closed(Duration::from_secs(2));
        self.console.wait_closed(Duration::from_secs(2));
        self.stderr.wait_closed(Duration::from_secs(2));
        let shutdown_reason = self
            .qmp
            .events()
            .into_iter()
            .find(|e| e.name == "SHUTDOWN")
            .and_then(|e| e.data["reason"].as_str().map(str::to_owned));
        let exit = GuestExit {
            status,
            shutdown_reason,
            uptime,
        };
        self.child = None;
        self.exit = Some(exit.clone());
        exit
    }

    /// The failure report printed when a test panics with this guest in scope.
    pub fn report(&self) -> String {
        let mut s = format!(
            "==== guest {}: last {} console lines (full log: {}) ====\n",
            self.name,
            PANIC_TAIL_LINES,
            self.log_dir.join("console.log").display()
        );
        for line in self.console.tail(PANIC_TAIL_LINES) {
            s += &format!("| {line}\n");
        }
        let stderr = self.stderr.tail(30);
        if !stderr.is_empty() {
            s += &format!(
                "==== QEMU stderr ({}) ====\n",
                self.log_dir.join("qemu.stderr.log").display()
            );
            for line in stderr {
                s += &format!("| {line}\n");
            }
        }
        match &self.exit {
            Some(e) => {
                s += &format!(
                    "==== guest {} exited: {} (shutdown reason {:?}) ====",
                    self.name, e.status, e.shutdown_reason
                )
            }
            None => s += &format!("==== guest {} was still running ====", self.name),
        }
        s
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let running = self.child.is_some();
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        if running {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn direct_boot_command_line() {
        let args = GuestBuilder::new("lb 1")
            .kernel("/k/vmlinuz")
            .initrd("/k/initrd")
            .append("console=ttyS0 quiet")
            .memory_mib(256)
            .qemu_args(Accel::Tcg, Path::new("/run/q.sock"))
            .unwrap();
        let args = strings(args);
        let joined = args.join(" ");
        assert!(
            joined.starts_with(
                "-name lb_1 -nodefaults -accel tcg -cpu max -m 256 -smp 1 -display none -no-reboot"
            ),
            "{joined}"
        );
        assert!(joined.contains("-chardev stdio,id=console0,signal=off -serial chardev:console0"));
        assert!(joined.contains("-qmp unix:/run/q.sock,server=on,wait=off"));
        // The command line stays one argument.
        let i = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[i + 1], "console=ttyS0 quiet");
        assert!(!joined.contains("-boot"));
    }

    #[test]
    fn nics_become_netdev_device_pairs() {
        let args = GuestBuilder::new("pxe")
            .pxe()
            .nic(Nic::tap("tap0", MacAddr::local(0x0a0b0c)))
            .nic(
                Nic::user(
                    UserNet::new()
                        .tftp("/srv/tf,tp")
                        .bootfile("boot.ipxe")
                        .hostfwd_tcp(8080, 80)
                        .guestfwd("tcp:10.0.2.100:80-tcp:127.0.0.1:8081"),
                )
                .model("e1000"),
            )
            .qemu_args(Accel::Kvm, Path::new("/q"))
            .unwrap();
        let args = strings(args);
        let pairs: Vec<_> = args
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert!(pairs.contains(&("-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no")));
        assert!(pairs.contains(&("-device", "virtio-net-pci,netdev=n0,mac=52:54:00:0a:0b:0c")));
        assert!(pairs.contains(&(
            "-netdev",
            "user,id=n1,tftp=/srv/tf,,tp,bootfile=boot.ipxe,hostfwd=tcp:127.0.0.1:8080-:80,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8081"
        )));
        assert!(pairs.contains(&("-device", "e1000,netdev=n1")));
        assert!(pairs.contains(&("-boot", "n")));
        assert!(pairs.contains(&("-accel", "kvm")));
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let q = Path::new("/q");
        assert!(GuestBuilder::new("x")
            .pxe()
            .kernel("/k")
            .nic(Nic::user(UserNet::new()))
            .qemu_args(Accel::Tcg, q)
            .is_err());
        assert!(GuestBuilder::new("x")
            .pxe()
            .qemu_args(Accel::Tcg, q)
            .is_err());
        assert!(GuestBuilder::new("x")
            .append("console=ttyS0")
            .qemu_args(Accel::Tcg, q)
            .is_err());
    }

    #[test]
    fn mac_addresses_parse_and_print() {
        let m: MacAddr = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert_eq!(MacAddr::local(1).to_string(), "52:54:00:00:00:01");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn command_lines_are_shell_quoted() {
        let mut c = Command::new("qemu");
        c.args(["-append", "console=ttyS0 it's", "-m", "256"]);
        assert_eq!(
            shell_quote(&c),
            r"qemu -append 'console=ttyS0 it'\''s' -m 256"
        );
    }
}
