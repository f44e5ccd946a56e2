//! `init`: PID 1 of the load-balancer appliance.
//!
//! Boot: mounts → console log → kernel modules (boot set + coldplug) → network → config
//! fetch (validated) → sysctls → lbd, supervised. Then: poll the config source and hand valid
//! changes to lbd (SIGHUP), restart lbd with backoff if it dies, reap every child, and on
//! Ctrl-Alt-Del / power button / SIGTERM / SIGUSR1 / SIGUSR2 stop lbd first, then everything,
//! sync and reboot(2). PID 1 never exits: a panic ends in a reboot, not a kernel panic.

use init::cmdline::{InitSettings, KernelCmdline};
use init::power::{self, PowerAction};
use init::supervise::{self, Supervised};
use init::{config_source, console, modules, mount};
use nix::sys::signal::Signal;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// What `init --help` prints (only when it is not PID 1: as PID 1 it has no terminal to ask).
const HELP: &str = "\
init: the appliance's PID 1. It mounts, loads modules, brings the network up, fetches the config
and supervises lbd. It takes its settings from the kernel command line:

  lb.config=URL[,URL...]   config source(s): http://, https://, tftp:// (variables ${mac}, ${mac_hyphen},
                           ${ip}, ${hostname}, ${uuid})
  lb.poll=DURATION         how often to look for a changed config (0: never)       [30s]
                           (failing polls back off: x2 each, up to 8 polls or 5 min)
  lb.timeout=DURATION      per-attempt fetch timeout                                [5s]
  lb.shutdown_timeout=D    how long lbd gets to stop before SIGKILL                 [10s]
  lb.carrier_timeout=D     how long the boot link may take to get carrier per try   [90s]
  lb.tls_pin=sha256//B64   the config server's key for https:// URLs (no CA, no clock)
  lb.unsigned=allow        apply configs without a valid signature (images with keys)
  lb.log=LEVEL             init's log level; wins over the config's [node] log_level
  lb.syslog=udp://IP:514   remote syslog for init and lbd (tcp:// too)
  lb.shell=TTY             debug shell (test images only)
  ip=...                   the kernel's ip= syntax (dhcp, or a static address)

Environment (the kernel passes unknown KEY=value words of its command line to PID 1):
  LB_INIT_LOG=FILTER       init's log filter (tracing syntax); wins over lb.log= and the config
  LB_SYSLOG=udp://IP:514   as lb.syslog=, and wins over it
";

fn main() {
    if std::process::id() != 1
        && matches!(std::env::args().nth(1).as_deref(), Some("-h" | "--help"))
    {
        print!("{HELP}");
        return;
    }
    let mount_errors = mount::mount_early();
    let cmdline_text = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let cmdline = KernelCmdline::parse(&cmdline_text);
    let (settings, setting_errors) = InitSettings::from_cmdline(&cmdline);
    let consoles = if std::process::id() == 1 {
        console::tee(&console::extra_consoles(&cmdline.get_all("console")))
    } else {
        Ok(Vec::new())
    };
    lbd::logging::init("init", "LB_INIT_LOG", &settings.log_level);
    info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "init starting"
    );
    match consoles {
        Ok(extra) if !extra.is_empty() => info!(also = ?extra, "output goes to every console"),
        Ok(_) => {}
        Err(e) => warn!("cannot copy output to every console= ({e}); only /dev/console has it"),
    }
    for e in &mount_errors {
        error!("{e}");
    }
    for e in &setting_errors {
        warn!("{e}");
    }
    if std::process::id() != 1 {
        warn!("not running as PID 1: reboot and module loading will fail");
    }
    // Ctrl-Alt-Del becomes SIGINT to us instead of an immediate reboot, so lbd can hand over.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        warn!("cannot take over Ctrl-Alt-Del: {e}");
    }

    load_kernel_modules();

    let action = match std::panic::catch_unwind(|| run(settings, cmdline)) {
        Ok(action) => action,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            error!("init failed: {what}; rebooting in 10 s");
            std::thread::sleep(Duration::from_secs(10));
            PowerAction::Reboot
        }
    };
    power::finish(action);
}

fn load_kernel_modules() {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let root = std::path::PathBuf::from("/lib/modules").join(&release);
    let index = match modules::ModuleIndex::load(&root) {
        Ok(i) => i,
        Err(e) => {
            warn!(
                "no module index for kernel {release} ({}: {e}); only built-in drivers",
                root.display()
            );
            return;
        }
    };
    let mut loader = modules::Loader::new(index);
    let boot_set = std::fs::read_to_string("/etc/lb/modules.boot").unwrap_or_default();
    let started = std::time::Instant::now();
    let mut loaded = 0usize;
    for name in boot_set
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match loader.load_with_deps(name) {
            Ok(newly) => loaded += newly.len(),
            Err(e) => error!("module {name}: {e}"),
        }
    }
    let (plugged, errors) = loader.coldplug(std::path::Path::new("/sys/bus"));
    for e in errors {
        warn!("coldplug: {e}");
    }
    info!(
        kernel = %release,
        boot_set = loaded,
        coldplug = ?plugged,
        ms = started.elapsed().as_millis() as u64,
        "kernel modules loaded"
    );
}

/// The main loop; returns how the box should end.
fn run(settings: InitSettings, cmdline: KernelCmdline) -> PowerAction {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}; rebooting in 10 s");
            std::thread::sleep(Duration::from_secs(10));
            return PowerAction::Reboot;
        }
    };
    // The fetcher holds non-Sync callbacks; everything runs on this one thread anyway.
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        async move { supervise_loop(&settings, cmdline).await },
    )
}

async fn supervise_loop(settings: &InitSettings, cmdline: KernelCmdline) -> PowerAction {
    let (power_tx, mut power_rx) = mpsc::unbounded_channel();
    let buttons = power::watch_power_button(power_tx);
    info!(devices = buttons, "watching for the power button");

    let mut sigchld = signal(SignalKind::child()).expect("SIGCHLD handler");
    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut sigusr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let mut sigusr2 = signal(SignalKind::user_defined2()).expect("SIGUSR2 handler");
    let mut sighup = signal(SignalKind::hangup()).expect("SIGHUP handler");

    let (config_tx, mut config_rx) = mpsc::unbounded_channel();
    let refetch = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::task::spawn_local(config_source::run(
        settings.clone(),
        cmdline,
        config_tx,
        refetch.clone(),
    ));

    let mut lbd = Supervised::new(
        "lbd",
        settings.lbd_path.clone(),
        vec![
            "--config".into(),
            config_source::CONFIG_PATH.into(),
            "run".into(),
        ],
    );
    // Debug shell: only where the image ships /bin/sh (test images), and only when asked for.
    let mut shell = settings.shell_tty.as_ref().and_then(|tty| {
        if !std::path::Path::new("/bin/sh").exists() {
            warn!("lb.shell={tty}: this image has no /bin/sh; no debug shell");
            return None;
        }
        warn!("debug shell on /dev/{tty} (lb.shell): anyone on that line is root");
        let mut s = Supervised::new("shell", "/bin/sh".into(), vec![]);
        s.tty = Some(std::path::PathBuf::from("/dev").join(tty));
        Some(s)
    });
    if let Some(s) = shell.as_mut() {
        start_child(s);
    }
    let mut shell_restart_at: Option<Instant> = None;
    let mut have_config = false;
    // init's level follows [node] log_level unless lb.log= pinned it.
    let mut log_level = settings.log_level.clone();
    let mut restart_at: Option<Instant> = None;
    // Memory figures are logged once lbd has settled, for operators and the boot benchmark.
    let mut memory_report_at: Option<Instant> = None;
    // Reap now and then even without SIGCHLD: signals of the same kind coalesce.
    let mut reap_tick = tokio::time::interval(Duration::from_secs(5));

    let action: PowerAction = loop {
        tokio::select! {
            _ = sigchld.recv() => reap(&mut lbd, &mut restart_at, shell.as_mut(), &mut shell_restart_at),
            _ = reap_tick.tick() => reap(&mut lbd, &mut restart_at, shell.as_mut(), &mut shell_restart_at),
            _ = sleep_until_opt(shell_restart_at) => {
                shell_restart_at = None;
                if let Some(s) = shell.as_mut() {
                    start_child(s);
                }
            }
            _ = sleep_until_opt(restart_at) => {
                restart_at = None;
                start_child(&mut lbd);
            }
            _ = sleep_until_opt(memory_report_at) => {
                memory_report_at = None;
                log_memory(lbd.pid());
            }
            Some(new) = config_rx.recv() => {
                let new: config_source::NewConfig = new;
                if let Err(e) = config_source::install(&new) {
                    error!("cannot install the new config: {e}; keeping the running one");
                    continue;
                }
                let level = new.loaded.config.node.log_level.as_str();
                if !settings.log_level_explicit && log_level != level {
                    log_level = level.to_string();
                    if lbd::logging::set_level(level) == lbd::logging::LevelChange::Applied {
                        info!("log level {level} from [node] log_level");
                    }
                }
                if !have_config {
                    have_config = true;
                    start_child(&mut lbd);
                    memory_report_at = Some(Instant::now() + Duration::from_secs(3));
                } else if lbd.pid().is_some() {
                    info!(version = %new.loaded.config.version.short(), "new config handed to lbd");
                    if let Err(e) = lbd.signal(Signal::SIGHUP) {
                        warn!("cannot signal lbd: {e}");
                    }
                }
            }
            _ = sighup.recv() => {
                info!("SIGHUP: fetching the config now");
                refetch.notify_one();
            }
            _ = sigterm.recv() => break PowerAction::Reboot,
            _ = sigint.recv() => { info!("Ctrl-Alt-Del"); break PowerAction::Reboot }
            _ = sigusr1.recv() => break PowerAction::Halt,
            _ = sigusr2.recv() => break PowerAction::PowerOff,
            Some(a) = power_rx.recv() => { info!("power button"); break a }
        }
    };
    info!("{}: stopping", action.verb());
    stop_lbd(&mut lbd, settings.shutdown_timeout, &mut sigchld).await;
    power::terminate_everything(Duration::from_secs(2));
    // Nothing on the box survives the reboot: get the last lines to the remote collector.
    lbd::syslog::flush(Duration::from_secs(2));
    action
}

fn reap(
    lbd: &mut Supervised,
    restart_at: &mut Option<Instant>,
    shell: Option<&mut Supervised>,
    shell_restart_at: &mut Option<Instant>,
) {
    let exits = supervise::reap_all();
    if let Some(shell) = shell {
        for exit in &exits {
            if let Some((_, delay)) = shell.on_exit(exit, std::time::Instant::now()) {
                *shell_restart_at = Some(Instant::now() + delay);
            }
        }
    }
    for exit in exits {
        if let Some((ran, delay)) = lbd.on_exit(&exit, std::time::Instant::now()) {
            warn!(
                "lbd exited ({}) after {:.1} s; restarting in {} s",
                exit.kind,
                ran.as_secs_f64(),
                delay.as_secs()
            );
            *restart_at = Some(Instant::now() + delay);
        }
    }
}

fn start_child(child: &mut Supervised) {
    match child.spawn(std::time::Instant::now()) {
        Ok(pid) => {
            if child.restarts > 0 {
                info!(pid, restarts = child.restarts, "{} restarted", child.name);
            } else {
                info!(pid, "{} started", child.name);
            }
            child.restarts += 1;
        }
        Err(e) => error!("cannot start {}: {e}", child.program),
    }
}

/// Resident set size of a process in KiB, from /proc/PID/status.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn log_memory(lbd_pid: Option<i32>) {
    let init_rss = rss_kib("self");
    let lbd_rss = lbd_pid.and_then(|p| rss_kib(&p.to_string()));
    let mem_available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    info!(
        init_rss_kib = init_rss.unwrap_or(0),
        lbd_rss_kib = lbd_rss.unwrap_or(0),
        mem_available_kib = mem_available.unwrap_or(0),
        "memory"
    );
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Orderly stop: SIGTERM to lbd (it releases its VIPs), then wait for it, SIGKILL at the deadline.
async fn stop_lbd(
    lbd: &mut Supervised,
    grace: Duration,
    sigchld: &mut tokio::signal::unix::Signal,
) {
    let Some(pid) = lbd.pid() else { return };
    info!(pid, "stopping lbd");
    if lbd.signal(Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    loop {
        for exit in supervise::reap_all() {
            if exit.pid == pid {
                info!("lbd stopped ({})", exit.kind);
                return;
            }
        }
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                warn!(pid, "lbd did not stop within {} s; killing it", grace.as_secs());
                let _ = lbd.signal(Signal::SIGKILL);
                return;
            }
        }
    }
}
