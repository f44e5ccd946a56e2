//! Console logging shared by init and lbd: one line per event, stamped with seconds since
//! boot (CLOCK_BOOTTIME) like the kernel's own messages, so a console log reads as one timeline.

use std::fmt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

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
/// from the environment variable `env` (e.g. `LBD_LOG=debug`) or `default_level`.
pub fn init(program: &'static str, env: &str, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(env)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
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
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(crate::syslog::layer(program))
        .try_init();
    match crate::syslog::boot_target() {
        Some(Ok(t)) => crate::syslog::set_target(Some(t)),
        Some(Err(e)) => tracing::warn!("lb.syslog: {e}"),
        None => {}
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
