//! lbd's remote log target follows its config: `[node.syslog]` when present, else the kernel
//! command line's `lb.syslog=` (what init uses), else none.

use super::{Target, Transport};
use crate::config::{Config, SyslogProtocol};
use crate::daemon::Subsystem;
use tracing::{info, warn};

/// Applies `[node.syslog]` on start and reload.
pub struct SyslogSubsystem {
    boot: Option<Target>,
}

impl SyslogSubsystem {
    /// Reads the boot-time target (`LB_SYSLOG`, `lb.syslog=`) once.
    pub fn new() -> SyslogSubsystem {
        let boot = match super::boot_target() {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                warn!("ignoring the boot-time syslog target: {e}");
                None
            }
            None => None,
        };
        SyslogSubsystem { boot }
    }

    /// The target `config` asks for.
    pub fn wanted(&self, config: &Config) -> Option<Target> {
        config
            .node
            .syslog
            .as_ref()
            .map(|s| Target {
                transport: match s.protocol {
                    SyslogProtocol::Udp => Transport::Udp,
                    SyslogProtocol::Tcp => Transport::Tcp,
                },
                addr: s.server,
            })
            .or(self.boot)
    }
}

impl Default for SyslogSubsystem {
    fn default() -> Self {
        Self::new()
    }
}

impl Subsystem for SyslogSubsystem {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn apply(&mut self, old: Option<&Config>, new: &Config) {
        let want = self.wanted(new);
        let before = old.map(|o| self.wanted(o));
        if before == Some(want) {
            return;
        }
        // Said first, so the collector that loses the stream learns where it went.
        match want {
            Some(t) => info!(target_url = %t, "remote syslog to {t}"),
            None => info!("remote syslog off"),
        }
        super::set_target(want);
    }
}
