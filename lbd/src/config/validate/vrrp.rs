//! VRRP: each `[vrrp.instance.NAME]` (its addresses, timers, peers and interfaces), the
//! macvlans of instances with a virtual MAC, and `[vrrp.sync_group.NAME]`.

use super::{unknown_name_help, valid_ifname, Declared, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// What the instances validated so far hold, so a later one cannot take it too: each entry
/// names the instance and the span to point at.
#[derive(Default)]
struct Claimed {
    /// (interface, vrid, family) → instance name, for duplicates.
    routers: HashMap<(String, u8, Family), (String, Range<usize>)>,
    vips: HashMap<IpAddr, (String, Range<usize>)>,
    /// macvlan name → instance, so two virtual MACs never fight over one link.
    vmac_links: HashMap<String, (String, Range<usize>)>,
}

impl Validator {
    /// The instances without errors, with the spans of their names.
    pub(super) fn instances(
        &mut self,
        raw: Vec<(Spanned<String>, VrrpInstanceSchema)>,
    ) -> BTreeMap<String, (VrrpInstance, Range<usize>)> {
        let mut out = BTreeMap::new();
        let mut claimed = Claimed::default();
        let interfaces: BTreeSet<String> = raw
            .iter()
            .map(|(_, s)| s.interface.get_ref().clone())
            .collect();
        for (name, s) in raw {
            if let Some(instance) = self.instance(&name, s, &interfaces, &mut claimed) {
                out.insert(name.get_ref().clone(), (instance, name.span()));
            }
        }
        out
    }

    /// One `[vrrp.instance.NAME]`; `None` if it has errors (each one reported). `interfaces`
    /// are the VRRP interfaces of every instance, which no macvlan may be named after.
    fn instance(
        &mut self,
        name: &Spanned<String>,
        s: VrrpInstanceSchema,
        interfaces: &BTreeSet<String>,
        claimed: &mut Claimed,
    ) -> Option<VrrpInstance> {
        let name_str = name.get_ref().clone();
        let ok_before = self.error_count();
        let vrid = self.int_in(
            &s.vrid,
            1,
            255,
            "vrid",
            "a virtual router id is 1 to 255, the same on both nodes of a pair",
        ) as u8;
        let priority = self.int_in(
            &s.priority,
            1,
            255,
            "priority",
            "use 1 to 254 (255 only for the node that owns the addresses)",
        ) as u8;
        let version = self.vrrp_version(s.version.as_ref());
        let (vips, family) = self.instance_vips(&name_str, &s.vips, version, &mut claimed.vips);
        let advert_interval = self.advert_interval(s.advert_interval.as_ref(), version);
        self.auth_pass(s.auth_pass.as_ref(), version);
        self.unicast(&s, family);
        if priority == 255 {
            self.warn(
                "address-owner",
                s.priority.span(),
                "priority 255 means this node owns the VIPs (RFC 5798); it always preempts",
            )
            .help = Some("use 254 or lower unless the addresses really belong to this node".into());
        }
        let garp_count = s.garp_count.as_ref().map_or(5, |g| {
            self.int_in(
                g,
                0,
                100,
                "garp_count",
                "send 0 to 100 gratuitous ARPs on takeover",
            ) as u32
        });
        let preempt_delay = s
            .preempt_delay
            .as_ref()
            .map_or(Duration::ZERO, |d| d.get_ref().0);
        if preempt_delay > Duration::from_secs(3600) {
            let span = s.preempt_delay.as_ref().map(|d| d.span()).unwrap_or(0..0);
            self.err("bad-preempt-delay", span, "preempt_delay is at most 1h");
        }
        let quorum_priority_drop = s.quorum_priority_drop.as_ref().map_or(0, |q| {
            self.int_in(
                q,
                0,
                254,
                "quorum_priority_drop",
                "lower the priority by 0 to 254",
            ) as u8
        });
        self.instance_interfaces(&s);
        self.claim_vrid(&name_str, &s, vrid, family, &mut claimed.routers);
        if let Some(false) = s.accept.as_ref().map(|a| *a.get_ref()) {
            let span = s.accept.as_ref().map(|a| a.span()).unwrap_or(0..0);
            self.err(
                "accept-mode-off",
                span,
                "accept = false is not supported: the master always accepts packets to its VIPs",
            )
            .help = Some("IPVS needs the VIPs as local addresses, so traffic to them reaches this host; remove the key, and keep other traffic off the VIPs with a firewall".into());
        }
        let virtual_mac = self.virtual_mac_link(
            name,
            s.virtual_mac.unwrap_or(false),
            s.virtual_mac_interface.as_ref(),
            vrid,
            family,
            interfaces,
            &mut claimed.vmac_links,
        );
        if self.error_count() != ok_before {
            return None;
        }
        Some(VrrpInstance {
            name: name_str,
            interface: s.interface.get_ref().clone(),
            vrid,
            priority,
            version,
            family,
            advert_interval,
            vips,
            preempt: s.preempt.unwrap_or(true),
            preempt_delay,
            unicast_peers: s.unicast_peers.iter().map(|p| *p.get_ref()).collect(),
            unicast_source: s.unicast_source.as_ref().map(|p| *p.get_ref()),
            auth_pass: s.auth_pass.as_ref().map(|p| p.get_ref().clone()),
            track_interfaces: s
                .track_interfaces
                .iter()
                .map(|t| t.get_ref().clone())
                .collect(),
            virtual_mac,
            accept: true,
            garp_count,
            garp_repeat_after: s
                .garp_repeat_after
                .as_ref()
                .map_or(Duration::from_secs(5), |d| d.get_ref().0),
            quorum_priority_drop,
        })
    }

    /// `version`: 3 unless it says 2.
    fn vrrp_version(&mut self, version: Option<&Spanned<i64>>) -> VrrpVersion {
        match version.map(|v| (*v.get_ref(), v.span())) {
            None | Some((3, _)) => VrrpVersion::V3,
            Some((2, _)) => VrrpVersion::V2,
            Some((n, span)) => {
                self.err(
                    "bad-vrrp-version",
                    span,
                    format!("VRRP version {n} does not exist"),
                )
                .help = Some("use 2 (RFC 3768, IPv4 only) or 3 (RFC 5798, IPv4 and IPv6)".into());
                VrrpVersion::V3
            }
        }
    }

    /// The instance's VIPs and its family, the first VIP's: every address of the instance
    /// must match it. A VIP that an earlier instance already moves is refused.
    fn instance_vips(
        &mut self,
        name: &str,
        vips: &Spanned<Vec<Spanned<IpPrefix>>>,
        version: VrrpVersion,
        owners: &mut HashMap<IpAddr, (String, Range<usize>)>,
    ) -> (Vec<IpPrefix>, Family) {
        let list = vips.get_ref();
        if list.is_empty() {
            self.err(
                "no-vips",
                vips.span(),
                format!("VRRP instance `{name}` has no VIPs"),
            )
            .help = Some("list the addresses it moves: vips = [\"192.0.2.10/24\"]".into());
        }
        let family = list
            .first()
            .map_or(Family::Ipv4, |v| Family::of(&v.get_ref().addr));
        for v in list {
            let f = Family::of(&v.get_ref().addr);
            if f != family {
                self.err(
                    "mixed-family",
                    v.span(),
                    format!("{f} VIP {} in an {family} VRRP instance", v.get_ref().addr),
                )
                .help = Some("a VRRP instance carries one address family: put IPv4 and IPv6 VIPs in separate instances".into());
            }
            if version == VrrpVersion::V2 && f == Family::Ipv6 {
                self.err("v2-ipv6", v.span(), "VRRPv2 carries only IPv4 addresses")
                    .help = Some("set version = 3 for IPv6".into());
            }
            if let Some((other, other_span)) = owners.get(&v.get_ref().addr) {
                let (other, other_span) = (other.clone(), other_span.clone());
                self.err(
                    "duplicate-vip",
                    v.span(),
                    format!(
                        "VIP {} is also in VRRP instance `{other}`",
                        v.get_ref().addr
                    ),
                )
                .and_related(other_span, "also here")
                .and_help("an address can be moved by one instance only");
            } else {
                owners.insert(v.get_ref().addr, (name.to_string(), v.span()));
            }
        }
        (list.iter().map(|v| *v.get_ref()).collect(), family)
    }

    /// `advert_interval` (default 1s), in the unit and range the version's packets carry.
    fn advert_interval(
        &mut self,
        interval: Option<&Spanned<ConfigDuration>>,
        version: VrrpVersion,
    ) -> Duration {
        let Some(d) = interval else {
            return Duration::from_secs(1);
        };
        let iv = d.get_ref().0;
        match version {
            VrrpVersion::V2 => {
                if iv.subsec_nanos() != 0 || iv.as_secs() < 1 || iv.as_secs() > 255 {
                    self.err("bad-advert-interval", d.span(), format!("VRRPv2 advert interval {} is not a whole number of seconds from 1s to 255s", d.get_ref()))
                        .help = Some("use whole seconds, or version = 3 for intervals in centiseconds".into());
                }
            }
            VrrpVersion::V3 => {
                let cs = iv.as_millis();
                if iv.as_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&cs) {
                    self.err("bad-advert-interval", d.span(), format!("VRRPv3 advert interval {} is not a multiple of 10ms from 10ms to 40950ms", d.get_ref()))
                        .help = Some("VRRPv3 counts the interval in centiseconds (RFC 5798 5.2.7)".into());
                }
            }
        }
        iv
    }

    /// `auth_pass`: VRRPv2 only, 1 to 8 characters.
    fn auth_pass(&mut self, pass: Option<&Spanned<String>>, version: VrrpVersion) {
        let Some(pass) = pass else {
            return;
        };
        if version == VrrpVersion::V3 {
            self.err(
                "auth-v3",
                pass.span(),
                "VRRPv3 has no authentication (RFC 5798 removed it)",
            )
            .help = Some("remove auth_pass, or use version = 2 to talk to old peers".into());
        } else if pass.get_ref().is_empty() || pass.get_ref().len() > 8 {
            self.err(
                "bad-auth-pass",
                pass.span(),
                "a VRRPv2 password is 1 to 8 characters",
            )
            .help = Some("longer passwords are cut by peers and never match".into());
        }
    }

    /// `unicast_peers` and `unicast_source`: each peer once, all of the instance's family.
    fn unicast(&mut self, s: &VrrpInstanceSchema, family: Family) {
        let mut peers_seen: HashMap<IpAddr, Range<usize>> = HashMap::new();
        for p in &s.unicast_peers {
            if let Some(first) = peers_seen.get(p.get_ref()) {
                let first = first.clone();
                self.err(
                    "duplicate-peer",
                    p.span(),
                    format!("unicast peer {} is listed twice", p.get_ref()),
                )
                .and_related(first, "first here")
                .and_help("list each peer once: it would get every advert twice");
            } else {
                peers_seen.insert(*p.get_ref(), p.span());
            }
            if Family::of(p.get_ref()) != family {
                self.err(
                    "mixed-family",
                    p.span(),
                    format!(
                        "{} peer {} for an {family} instance",
                        Family::of(p.get_ref()),
                        p.get_ref()
                    ),
                )
                .help = Some("unicast peers use the instance's address family".into());
            }
        }
        if let Some(src) = &s.unicast_source {
            if Family::of(src.get_ref()) != family {
                self.err(
                    "mixed-family",
                    src.span(),
                    format!(
                        "{} unicast source for an {family} instance",
                        Family::of(src.get_ref())
                    ),
                );
            }
            if s.unicast_peers.is_empty() {
                self.warn(
                    "unused-key",
                    src.span(),
                    "unicast_source has no effect without unicast_peers",
                );
            }
        }
    }

    /// `interface` and `track_interfaces` are names Linux takes.
    fn instance_interfaces(&mut self, s: &VrrpInstanceSchema) {
        if !valid_ifname(s.interface.get_ref()) {
            self.err(
                "bad-interface",
                s.interface.span(),
                format!("invalid interface name {:?}", s.interface.get_ref()),
            )
            .help =
                Some("Linux interface names are 1 to 15 characters without '/' or spaces".into());
        }
        for t in &s.track_interfaces {
            if !valid_ifname(t.get_ref()) {
                self.err(
                    "bad-interface",
                    t.span(),
                    format!("invalid interface name {:?}", t.get_ref()),
                );
            }
        }
    }

    /// Takes this instance's virtual router (interface, vrid, family), refused if an earlier
    /// instance has it.
    fn claim_vrid(
        &mut self,
        name: &str,
        s: &VrrpInstanceSchema,
        vrid: u8,
        family: Family,
        routers: &mut HashMap<(String, u8, Family), (String, Range<usize>)>,
    ) {
        let key = (s.interface.get_ref().clone(), vrid, family);
        if let Some((other, other_span)) = routers.get(&key) {
            let (other, other_span) = (other.clone(), other_span.clone());
            self.err(
                "duplicate-vrid",
                s.vrid.span(),
                format!(
                    "vrid {vrid} ({family}) on {} is also used by instance `{other}`",
                    key.0
                ),
            )
            .and_related(other_span, "also here")
            .and_help("each virtual router on a link needs its own vrid");
        } else {
            routers.insert(key, (name.to_string(), s.vrid.span()));
        }
    }

    /// The macvlan an instance with `virtual_mac` uses: `virtual_mac_interface`, or
    /// `vrrp.VRID` (`vrrp6.VRID`). Refuses a name another instance's macvlan or a VRRP
    /// interface already has.
    #[allow(clippy::too_many_arguments)]
    fn virtual_mac_link(
        &mut self,
        instance: &Spanned<String>,
        enabled: bool,
        explicit: Option<&Spanned<String>>,
        vrid: u8,
        family: Family,
        interfaces: &BTreeSet<String>,
        taken: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Option<String> {
        if !enabled {
            if let Some(e) = explicit {
                self.warn(
                    "unused-key",
                    e.span(),
                    "virtual_mac_interface has no effect without virtual_mac = true",
                );
            }
            return None;
        }
        let (link, span) = match explicit {
            Some(e) => {
                if !valid_ifname(e.get_ref()) {
                    self.err(
                        "bad-interface",
                        e.span(),
                        format!("invalid interface name {:?}", e.get_ref()),
                    )
                    .help = Some(
                        "Linux interface names are 1 to 15 characters without '/' or spaces".into(),
                    );
                    return None;
                }
                (e.get_ref().clone(), e.span())
            }
            None => {
                let prefix = if family == Family::Ipv6 {
                    "vrrp6"
                } else {
                    "vrrp"
                };
                (format!("{prefix}.{vrid}"), instance.span())
            }
        };
        if interfaces.contains(&link) {
            self.err(
                "vmac-name-taken",
                span,
                format!(
                    "the virtual MAC's macvlan would be named {link}, which is a VRRP interface"
                ),
            )
            .help = Some("set virtual_mac_interface to an unused name".into());
            return None;
        }
        if let Some((other, other_span)) = taken.get(&link) {
            let (other, other_span) = (other.clone(), other_span.clone());
            self.err(
                "vmac-name-taken",
                span,
                format!("instance `{}` would create macvlan {link}, which instance `{other}` already uses for its virtual MAC", instance.get_ref()),
            )
            .and_related(other_span, "also here")
            .and_help("one VRID on two interfaces needs distinct names: set virtual_mac_interface = \"NAME\" on one of them");
            return None;
        }
        taken.insert(link.clone(), (instance.get_ref().clone(), span));
        Some(link)
    }

    pub(super) fn sync_groups(
        &mut self,
        raw: Vec<(Spanned<String>, SyncGroupSchema)>,
        instances: &BTreeMap<String, (VrrpInstance, Range<usize>)>,
        declared: &Declared,
    ) -> BTreeMap<String, SyncGroup> {
        let mut out = BTreeMap::new();
        let mut member_of: HashMap<String, String> = HashMap::new();
        for (name, g) in raw {
            let mut members = Vec::new();
            for m in g.instances.get_ref() {
                let inst = m.get_ref();
                if !instances.contains_key(inst) {
                    // Declared but refused: its own errors say why.
                    if declared.instances.contains_key(inst) {
                        continue;
                    }
                    self.err(
                        "unknown-instance",
                        m.span(),
                        format!(
                            "sync group `{}` names unknown VRRP instance `{inst}`",
                            name.get_ref()
                        ),
                    )
                    .help = Some(unknown_name_help(
                        inst,
                        declared.instances.keys(),
                        "define it as [vrrp.instance.NAME]",
                    ));
                    continue;
                }
                if let Some(other) = member_of.get(inst) {
                    self.err(
                        "instance-in-two-groups",
                        m.span(),
                        format!("instance `{inst}` is already in sync group `{other}`"),
                    )
                    .help = Some("an instance belongs to at most one sync group".into());
                    continue;
                }
                member_of.insert(inst.clone(), name.get_ref().clone());
                members.push(inst.clone());
            }
            if g.instances.get_ref().len() < 2 {
                self.warn(
                    "small-sync-group",
                    g.instances.span(),
                    "a sync group with fewer than two instances synchronises nothing",
                );
            }
            out.insert(
                name.get_ref().clone(),
                SyncGroup {
                    name: name.get_ref().clone(),
                    instances: members,
                },
            );
        }
        out
    }
}
