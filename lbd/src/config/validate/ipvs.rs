//! The `[ipvs]` section: the policy for kernel entries the config does not own, how long a
//! removed real drains, the kernel's connection timeouts, sloppy TCP/SCTP, and connection sync
//! between the pair (`[ipvs.sync]`).

use super::{unknown_name_help, valid_ifname, Declared, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// The kernel-wide switches a config with these services needs unless it says otherwise
/// (each key the config sets is kept as it is).
pub(super) fn default_kernel_settings(
    ipvs: &mut IpvsSettings,
    announces: impl Iterator<Item = Announce>,
) {
    let mut any = false;
    for announce in announces {
        any = true;
        // ECMP moves established flows between N-way balancers: without sloppy TCP/SCTP the
        // one that never saw a flow's handshake drops it.
        if announce == Announce::Bgp {
            ipvs.sloppy_tcp.get_or_insert(true);
            ipvs.sloppy_sctp.get_or_insert(true);
        }
    }
    // A real the config removed is deleted once its drain ends. With the kernel's default a
    // later packet matching one of its old entries (a client reusing a source port within the
    // entry's FIN_WAIT or TIME_WAIT life, a straggler) is dropped until the entry expires,
    // minutes later; with this it is scheduled to a real that is there.
    if any {
        ipvs.expire_nodest_conn.get_or_insert(true);
    }
}

impl Validator {
    /// `mixed_family_reals`: some service has a real of another address family, which
    /// connection sync cannot carry.
    pub(super) fn ipvs(
        &mut self,
        s: IpvsSchema,
        instances: &BTreeMap<String, (VrrpInstance, Range<usize>)>,
        groups: &BTreeMap<String, SyncGroup>,
        declared: &Declared,
        mixed_family_reals: bool,
    ) -> IpvsSettings {
        let mut out = IpvsSettings {
            unmanaged: s.unmanaged.unwrap_or_default(),
            sloppy_tcp: s.sloppy_tcp,
            sloppy_sctp: s.sloppy_sctp,
            expire_nodest_conn: s.expire_nodest_conn,
            ..Default::default()
        };
        if let Some(v) = &s.removal_drain {
            let d = v.get_ref().0;
            if d > IpvsSettings::MAX_REMOVAL_DRAIN {
                self.err(
                    "bad-removal-drain",
                    v.span(),
                    format!("removal_drain {} is over the limit of 1d", v.get_ref()),
                )
                .help = Some("\"0s\" deletes a removed real at once; e.g. removal_drain = \"5m\" lets its connections finish for up to 5 minutes".into());
            } else {
                out.removal_drain = d;
            }
        }
        if let Some(t) = s.timeouts {
            let mut take = |v: &Option<Spanned<ConfigDuration>>, name: &str| -> Option<Duration> {
                let v = v.as_ref()?;
                let d = v.get_ref().0;
                if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > i32::MAX as u64 / 1000 {
                    self.err("bad-timeout", v.span(), format!("IPVS {name} timeout {} must be whole seconds from 1s to {}s", v.get_ref(), i32::MAX / 1000))
                        .help = Some("the kernel keeps these timeouts in seconds; e.g. tcp = \"2h\" for long-lived database connections".into());
                    return None;
                }
                Some(d)
            };
            out.timeouts = IpvsTimeouts {
                tcp: take(&t.tcp, "tcp"),
                tcp_fin: take(&t.tcp_fin, "tcp_fin"),
                udp: take(&t.udp, "udp"),
            };
        }
        if let Some(sync) = s.sync {
            out.sync = Some(self.conn_sync(sync, instances, groups, declared, mixed_family_reals));
        }
        out
    }

    /// `[ipvs.sync]`, and the VRRP state it follows: the one named, else the only sync group,
    /// else the only instance.
    fn conn_sync(
        &mut self,
        sync: SyncSchema,
        instances: &BTreeMap<String, (VrrpInstance, Range<usize>)>,
        groups: &BTreeMap<String, SyncGroup>,
        declared: &Declared,
        mixed_family_reals: bool,
    ) -> ConnSync {
        let sync_id = sync.sync_id.as_ref().map_or(0, |v| {
            self.int_in(
                v,
                0,
                255,
                "sync_id",
                "a sync id is 0 to 255, the same on both nodes",
            ) as u8
        });
        let port = sync.port.as_ref().map_or(8848, |v| {
            self.int_in(v, 1, 65535, "port", "a UDP port") as u16
        });
        let ttl = sync.ttl.as_ref().map_or(1, |v| {
            self.int_in(v, 1, 255, "ttl", "a multicast TTL is 1 to 255") as u8
        });
        let max_len = sync.max_len.as_ref().map(|v| {
            self.int_in(
                v,
                256,
                65507,
                "max_len",
                "the sync message size is 256 to 65507 bytes",
            ) as u16
        });
        if !valid_ifname(sync.interface.get_ref()) {
            self.err(
                "bad-interface",
                sync.interface.span(),
                format!("invalid interface name {:?}", sync.interface.get_ref()),
            );
        }
        if mixed_family_reals {
            self.err("sync-mixed-family", sync.interface.span(), "connection sync cannot be used with reals of another address family than their service")
                    .help = Some("the kernel's sync protocol does not carry mixed-family connections; remove [ipvs.sync] or the mixed-family tunnel reals".into());
        }
        let follow = match &sync.follow {
            Some(f) => {
                let name = f.get_ref();
                let known = instances.contains_key(name)
                    || groups.contains_key(name)
                    || declared.instances.contains_key(name)
                    || declared.sync_groups.contains_key(name);
                if !known {
                    self.err("unknown-instance", f.span(), format!("`follow` names `{name}`, which is neither a VRRP instance nor a sync group"))
                            .help = Some(unknown_name_help(
                                name,
                                declared.instances.keys().chain(declared.sync_groups.keys()),
                                "name a [vrrp.instance.NAME] or [vrrp.sync_group.NAME]",
                            ));
                }
                f.get_ref().clone()
            }
            None => {
                if groups.len() == 1 {
                    groups.keys().next().cloned().unwrap_or_default()
                } else if groups.is_empty() && instances.len() == 1 {
                    instances.keys().next().cloned().unwrap_or_default()
                } else {
                    self.err(
                        "ambiguous-follow",
                        sync.interface.span(),
                        "connection sync needs to know which VRRP state to follow",
                    )
                    .help = Some("set follow = \"NAME\" to a sync group or VRRP instance".into());
                    String::new()
                }
            }
        };
        ConnSync {
            interface: sync.interface.get_ref().clone(),
            sync_id,
            follow,
            port,
            ttl,
            max_len,
            group: sync.group.map(|g| *g.get_ref()),
        }
    }
}
