//! `global_defs`: the node's settings, and the defaults VRRP instances inherit.

use super::{Cx, Item, R};
use crate::convert::out::{Output, Value};
use std::time::Duration;

/// Settings of global_defs that others inherit.
#[derive(Default)]
pub(super) struct Globals {
    pub(super) vrrp_version: Option<u8>,
    pub(super) strict: bool,
    pub(super) garp_repeat: Option<i64>,
    pub(super) garp_delay: Option<Duration>,
    pub(super) default_interface: Option<String>,
    pub(super) sync_daemon: Option<Item>,
}

impl Cx<'_> {
    pub(super) fn global_defs(&mut self, it: &Item, g: &mut Globals, o: &mut Output) -> R<()> {
        for c in self.block(it)? {
            match c.key.as_str() {
                "router_id" => {
                    let id = self.arg(c, 0, "a name")?;
                    if crate::convert::valid_hostname(id) {
                        o.set_node("hostname", Value::str(id));
                    } else {
                        self.warn(c.at, format!("router_id {id:?} is not a valid host name: not used as [node] hostname"));
                    }
                }
                "vrrp_version" => {
                    g.vrrp_version = Some(self.int(c, 0, 2, 3, "a VRRP version (2 or 3)")? as u8)
                }
                "vrrp_strict" => g.strict = true,
                "vrrp_rt_priority" => {
                    let prio = self.int(c, 0, 1, 99, "a SCHED_RR priority (1 to 99)")?;
                    o.set_node("vrrp_realtime_priority", Value::Int(prio));
                }
                "vrrp_garp_master_repeat" => {
                    g.garp_repeat = Some(self.int(c, 0, 0, 100, "a count")?)
                }
                "vrrp_garp_master_delay" => g.garp_delay = Some(self.timer(c, 0)?),
                "default_interface" => g.default_interface = Some(self.ifname(c, 0)?),
                "lvs_timeouts" => self.lvs_timeouts(c, o)?,
                "lvs_sync_daemon" | "lvs_sync_daemon_interface" => g.sync_daemon = Some(c.clone()),
                "lvs_flush" => self.ignore(
                    c,
                    "lbd never flushes: it adopts the kernel table and changes only what differs",
                ),
                "lvs_flush_on_stop" => self.ignore(
                    c,
                    "lbd leaves the table in place when it stops, so connections survive a restart",
                ),
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                    self.ignore(c, "lbd uses the RFC groups 224.0.0.18 and ff02::12")
                }
                _ => self.ignore(c, ""),
            }
        }
        Ok(())
    }

    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]` into the `[ipvs]` timeouts.
    fn lvs_timeouts(&mut self, c: &Item, o: &mut Output) -> R<()> {
        let mut i = 0;
        while i < c.args.len() {
            let name = c.args[i].to_ascii_lowercase();
            let key = match name.as_str() {
                "tcp" => "tcp",
                "tcpfin" => "tcp_fin",
                "udp" => "udp",
                other => {
                    return Err(self.err(
                        c.at,
                        format!("lvs_timeouts: unknown timeout {other:?} (tcp, tcpfin or udp)"),
                    ))
                }
            };
            let secs = self.int(c, i + 1, 1, 86400 * 365, "seconds")?;
            o.ipvs_timeouts.push((
                key.into(),
                Value::duration(Duration::from_secs(secs as u64)),
            ));
            i += 2;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::convert::keepalived::convert_str;
    use crate::convert::Options;

    #[test]
    fn vrrp_rt_priority_becomes_the_node_setting() {
        let conf = "global_defs {\n  vrrp_rt_priority 50\n}\n";
        let c = convert_str("k.conf", conf, &Options::default()).unwrap();
        let toml = c.toml();
        assert!(toml.contains("vrrp_realtime_priority = 50"), "{toml}");
        let bad = convert_str(
            "k.conf",
            "global_defs {\n  vrrp_rt_priority 0\n}\n",
            &Options::default(),
        );
        assert!(bad.is_err());
    }
}
