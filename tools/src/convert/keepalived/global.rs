//! `global_defs`: the node's settings, and the defaults VRRP instances inherit.

use super::{Converted, Converter, Item};
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

impl Converter<'_> {
    pub(super) fn global_defs(
        &mut self,
        it: &Item,
        g: &mut Globals,
        o: &mut Output,
    ) -> Converted<()> {
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
                "vrrp_min_garp" => {
                    // One gratuitous ARP, no second burst; what is already set stays.
                    if self.boolean(c, 0)? {
                        g.garp_repeat.get_or_insert(1);
                        g.garp_delay.get_or_insert(Duration::ZERO);
                    }
                }
                "disable_local_igmp" => {
                    o.set_sysctl("net.ipv4.igmp_link_local_mcast_reports", Value::Int(0))
                }
                _ => self.unconverted(c, "global_defs"),
            }
        }
        Ok(())
    }

    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]` into the `[ipvs]` timeouts.
    fn lvs_timeouts(&mut self, c: &Item, o: &mut Output) -> Converted<()> {
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
            // The kernel keeps them in jiffies: at most 2^31 milliseconds.
            let secs = self.int(c, i + 1, 1, 2_147_483, "seconds")?;
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
