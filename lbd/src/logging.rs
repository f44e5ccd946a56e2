//! Console logging shared by init and lbd: one line per event, stamped with seconds since
//! boot (CLOCK_BOOTTIME) like the kernel's own messages, so a console log reads as one timeline.

use std::fmt;
use std::sync::OnceLock;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The installed filter, which [`set_level`] replaces at run time.
struct LevelControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The environment variable named at [`init`], when it was set: it wins over the config.
    env_override: Option<(String, String)>,
}

static LEVEL: OnceLock<LevelControl> = OnceLock::new();

/// `[   12.345678]`: seconds since boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootClock;

/// Seconds since boot, from CLOCK_BOOTTIME.
pub fn since_boot() -> std::time::Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(std::time::Duration::from)
        .unwrap_or_default()
}

impl FormatTime for BootClock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let t = since_boot();
        write!(w, "[{:5}.{:06}]", t.as_secs(), t.subsec_micros())
    }
}

/// Installs the console logger. `program` prefixes every line (`init`, `lbd`); the level comes
/// from the environment variable `env` (e.g. `LBD_LOG=debug`) or `default_level`, and can be
/// changed later with [`set_level`] unless `env` was set.
pub fn init(program: &'static str, env: &str, default_level: &str) {
    let from_env = EnvFilter::try_from_env(env).ok();
    let env_override = from_env
        .as_ref()
        .map(|_| (env.to_string(), std::env::var(env).unwrap_or_default()));
    let filter = with_audit(
        from_env.unwrap_or_else(|| EnvFilter::new(default_level)),
        env_override
            .as_ref()
            .map_or(default_level, |(_, v)| v.as_str()),
    );
    let (filter, handle) = reload::Layer::new(filter);
    let inner = tracing_subscriber::fmt::format()
        .without_time()
        .with_target(false)
        .with_level(true)
        // No colour: console logs end up in files, serial captures and syslog.
        .with_ansi(false)
        .compact();
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Prefixed { program, inner });
    // Every event also goes to the ring of recent events and, once a target is set, to remote
    // syslog (crate::syslog); the boot-time target comes from `lb.syslog=` on the kernel
    // command line, so init and lbd send from their first line.
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(crate::syslog::layer(program))
        .try_init()
        .is_ok();
    if installed {
        let _ = LEVEL.set(LevelControl {
            handle,
            env_override,
        });
    }
    match crate::syslog::boot_target() {
        Some(Ok(t)) => crate::syslog::set_target(Some(t)),
        Some(Err(e)) => tracing::warn!("lb.syslog: {e}"),
        None => {}
    }
}

/// The target of the control API's audit events (`tracing` target).
pub const AUDIT_TARGET: &str = "lbd::audit";

/// `filter`, letting audit events through at every level: who changed what on the box is
/// kept (event ring, remote syslog) even when the log level is `error`. A filter `spec` that
/// names the audit target itself decides for it.
fn with_audit(filter: EnvFilter, spec: &str) -> EnvFilter {
    if spec.contains(AUDIT_TARGET) {
        return filter;
    }
    match format!("{AUDIT_TARGET}=info").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// What [`set_level`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// The environment variable (name, value) set at start wins; nothing changed.
    Overridden(String, String),
    /// No logger was installed by [`init`].
    NoLogger,
}

/// Makes `level` (`error`, `warn`, `info`, `debug`, `trace`) the level of every later event,
/// unless the environment variable given to [`init`] was set: that one is the debugging
/// override and stays in force.
pub fn set_level(level: &str) -> LevelChange {
    let Some(control) = LEVEL.get() else {
        return LevelChange::NoLogger;
    };
    if let Some((name, value)) = &control.env_override {
        return LevelChange::Overridden(name.clone(), value.clone());
    }
    match control
        .handle
        .reload(with_audit(EnvFilter::new(level), level))
    {
        Ok(()) => LevelChange::Applied,
        Err(_) => LevelChange::NoLogger,
    }
}

/// lbd's log level follows `[node] log_level`, at start and on every reload.
#[cfg(feature = "daemon")]
pub struct LogLevelSubsystem;

#[cfg(feature = "daemon")]
impl crate::daemon::Subsystem for LogLevelSubsystem {
    fn name(&self) -> &'static str {
        "log-level"
    }

    fn apply(&mut self, old: Option<&crate::config::Config>, new: &crate::config::Config) {
        let level = new.node.log_level;
        if old.is_some_and(|o| o.node.log_level == level) {
            return;
        }
        match set_level(level.as_str()) {
            LevelChange::Applied => {
                tracing::info!("log level {} from [node] log_level", level.as_str())
            }
            // Said once, at start: the override does not change while lbd runs.
            LevelChange::Overridden(name, value) if old.is_none() => tracing::info!(
                "log level from {name}={value}; [node] log_level = {:?} is not used",
                level.as_str()
            ),
            LevelChange::Overridden(..) | LevelChange::NoLogger => {}
        }
    }
}

struct Prefixed<F> {
    program: &'static str,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Prefixed<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        BootClock.format_time(&mut writer)?;
        write!(writer, " {}: ", self.program)?;
        self.inner.format_event(ctx, writer, event)
    }
}
