//! The command line of a guest: kernel or PXE boot, memory, CPUs, NICs, the accelerator, the
//! network namespace it runs in; and starting it.

use super::nic::escape;
use super::*;

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

pub(super) fn shell_quote(cmd: &Command) -> String {
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
