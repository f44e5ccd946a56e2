//! The status document (`GET /status`), built from what the subsystems publish. Pure: every
//! input is passed in, so tests build documents without a daemon.
//!
//! Weights shown are what the reconciler wants IPVS to hold now (config, health, drains and
//! check weights through [`reconcile::desired`]), next to what the kernel holds when it can be
//! read (`ipvs` of each real: weight, connections, counters and rates).

use super::drain::Drained;
use crate::check::board::{HealthReport, ServiceHealth};
use crate::config::{Config, Forwarding, Real, Service, ServiceKey};
use crate::ipvs::client::Dump;
use crate::ipvs::msg::{self, FwdMethod, Stats};
use crate::ipvs::subsystem::DrainingReal;
use crate::reconcile::{self, Desired, DestKey, Overrides, ServiceState, SyncRole};
use crate::syslog::rfc5424::timestamp;
use crate::syslog::SyslogStatus;
use crate::vrrp::runtime::Status as VrrpStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::SystemTime;

/// What the kernel's IPVS table looked like when the document was made.
#[derive(Clone, Debug)]
pub enum KernelView {
    Table(Dump),
    Unavailable(String),
}

/// Everything a status document is made of.
pub struct Inputs<'a> {
    pub config: &'a Config,
    pub config_path: &'a Path,
    pub loaded_at: SystemTime,
    /// Configs applied since start (1 = only the first).
    pub applied: u64,
    pub started_at: SystemTime,
    pub now: SystemTime,
    pub hostname: String,
    pub health: &'a HealthReport,
    pub vrrp: &'a VrrpStatus,
    /// The BGP speaker as the subsystem last reported it.
    pub bgp: &'a crate::bgp::subsystem::BgpStatus,
    /// `lbctl drain --node`.
    pub node_drained: bool,
    pub drained: &'a Drained,
    pub kernel: &'a KernelView,
    pub syslog: SyslogStatus,
    pub last_reload: Option<&'a crate::daemon::ReloadOutcome>,
    /// The node's links as the kernel reported them for this document.
    pub links: &'a [LinkReading],
    /// How init admitted the running config (`/run/lb/trust`), if it says.
    pub trust: Option<ConfigTrust>,
    /// Reals removed from the config that IPVS keeps at weight 0 until their connections end.
    pub draining: &'a [DrainingReal],
}

/// Where init records how it admitted the config it installed.
pub const TRUST_STATE: &str = "/run/lb/trust";

/// How the running config was admitted: signed (by which key, which serial), unsigned
/// although the image has keys (`lb.unsigned=allow`), or with no keys in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigTrust {
    /// `signed`, `unsigned-allowed` or `no-keys`.
    pub mode: String,
    pub signer: Option<String>,
    pub serial: Option<u64>,
}

impl ConfigTrust {
    /// Parses init's `key=value` file; `None` unless it is about the config `version`.
    pub fn parse(text: &str, version: &str) -> Option<ConfigTrust> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        (field("sha256")? == version).then(|| ConfigTrust {
            mode: field("mode").unwrap_or("unknown").to_string(),
            signer: field("signer").map(str::to_string),
            serial: field("serial").and_then(|s| s.parse().ok()),
        })
    }
}

/// A link as read for a status document: netlink's view and sysfs's speed.
#[derive(Clone, Debug)]
pub struct LinkReading {
    pub link: crate::netlink::Link,
    /// `/sys/class/net/NAME/speed`, when the driver knows it.
    pub speed_mbps: Option<u32>,
}

/// One of the node's links.
#[derive(Clone, Debug, Serialize)]
pub struct LinkStatus {
    pub name: String,
    /// `ethernet` for a NIC, else the kernel's kind (`bond`, `vlan`, `macvlan`...).
    pub kind: String,
    /// Administratively up.
    pub up: bool,
    pub carrier: bool,
    pub mtu: Option<u32>,
    pub speed_mbps: Option<u32>,
    pub mac: Option<String>,
    /// The bond this link is a member of.
    pub member_of: Option<String>,
    pub vlan: Option<VlanStatus>,
    pub bond: Option<BondStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VlanStatus {
    pub parent: String,
    pub id: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct BondStatus {
    /// bonding.rst's name of the mode.
    pub mode: String,
    pub active: Option<String>,
    pub primary: Option<String>,
    pub members: Vec<MemberStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberStatus {
    pub name: String,
    /// Carrier as the bond's link monitoring sees it.
    pub mii_up: bool,
    /// In use by the bond.
    pub active: bool,
    /// 802.3ad: LACP's view of the member.
    pub lacp: Option<LacpStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LacpStatus {
    /// LACP agreed with the partner and the member carries traffic both ways.
    pub collecting_distributing: bool,
    /// The LACP port state bits, this end's and the partner's (IEEE 802.1AX).
    pub actor_state: u8,
    pub partner_state: u8,
    pub aggregator: Option<u16>,
}

/// The links of a status document, loopback aside, in index order.
pub fn links_status(readings: &[LinkReading]) -> Vec<LinkStatus> {
    let name_of = |index: u32| {
        readings
            .iter()
            .find(|r| r.link.index == index)
            .map(|r| r.link.name.clone())
    };
    readings
        .iter()
        .filter(|r| r.link.name != "lo")
        .map(|r| {
            let l = &r.link;
            let bond = l.bond.as_ref().map(|b| BondStatus {
                mode: crate::config::network::BondMode::ALL
                    .iter()
                    .find(|m| m.kernel() == b.mode)
                    .map_or_else(|| format!("mode {}", b.mode), |m| m.word().to_string()),
                active: b.active.and_then(name_of),
                primary: b.primary.and_then(name_of),
                members: readings
                    .iter()
                    .filter(|m| m.link.controller == Some(l.index))
                    .map(|m| {
                        let port = m.link.bond_port.clone().unwrap_or_default();
                        MemberStatus {
                            name: m.link.name.clone(),
                            mii_up: port.mii_up,
                            active: port.active,
                            lacp: port.actor_state.map(|actor| LacpStatus {
                                collecting_distributing: port.collecting_distributing(),
                                actor_state: actor,
                                partner_state: port.partner_state.unwrap_or(0),
                                aggregator: port.aggregator,
                            }),
                        }
                    })
                    .collect(),
            });
            LinkStatus {
                name: l.name.clone(),
                kind: l.virtual_kind.clone().unwrap_or_else(|| "ethernet".into()),
                up: l.admin_up,
                carrier: l.carrier,
                mtu: l.mtu,
                speed_mbps: r.speed_mbps,
                mac: l.mac.as_ref().map(crate::config::network::format_mac),
                member_of: l
                    .controller
                    .filter(|_| l.bond_port.is_some())
                    .and_then(name_of),
                vlan: l.vlan_id.map(|id| VlanStatus {
                    parent: l.lower.and_then(name_of).unwrap_or_default(),
                    id,
                }),
                bond,
            }
        })
        .collect()
}

/// Traffic counters and rates (IPVS's own: rates are per second, averaged by the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub connections: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_per_second: u64,
    pub packets_in_per_second: u64,
    pub packets_out_per_second: u64,
    pub bytes_in_per_second: u64,
    pub bytes_out_per_second: u64,
}

impl From<&Stats> for Traffic {
    fn from(s: &Stats) -> Traffic {
        Traffic {
            connections: s.conns,
            packets_in: s.inpkts,
            packets_out: s.outpkts,
            bytes_in: s.inbytes,
            bytes_out: s.outbytes,
            connections_per_second: s.cps,
            packets_in_per_second: s.inpps,
            packets_out_per_second: s.outpps,
            bytes_in_per_second: s.inbps,
            bytes_out_per_second: s.outbps,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub lbd: LbdInfo,
    pub config: ConfigInfo,
    pub ipvs: IpvsInfo,
    pub vrrp: Vec<VrrpInstanceStatus>,
    /// Received VRRP packets dropped, by reason.
    pub vrrp_drops: BTreeMap<String, u64>,
    pub services: Vec<ServiceStatus>,
    pub syslog: SyslogStatus,
    pub links: Vec<LinkStatus>,
    /// N-way VIPs announced by BGP; absent without `[bgp]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpView>,
}

/// The BGP speaker in status: the node drain, BIRD's sessions, and each N-way VIP announced
/// or not and why.
#[derive(Clone, Debug, Serialize)]
pub struct BgpView {
    pub node_drained: bool,
    #[serde(flatten)]
    pub speaker: crate::bgp::subsystem::BgpStatus,
}

#[derive(Clone, Debug, Serialize)]
pub struct LbdInfo {
    pub version: &'static str,
    pub pid: u32,
    pub hostname: String,
    pub started_at: String,
    pub uptime_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigInfo {
    pub path: String,
    /// sha256 of the config text.
    pub version: String,
    pub loaded_at: String,
    /// Seconds since the config was loaded.
    pub age_seconds: f64,
    pub applied: u64,
    pub summary: String,
    /// The last reload asked for (by SIGHUP or the API), whatever came of it.
    pub last_reload: Option<crate::daemon::ReloadOutcome>,
    /// How init admitted it; absent when lbd runs without init.
    pub trust: Option<ConfigTrust>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IpvsInfo {
    pub available: bool,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VrrpInstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    /// As configured.
    pub priority: u8,
    /// As advertised now: lower than `priority` while the health quorum is lost
    /// (`quorum_priority_drop`); the configured one before the VRRP thread reported.
    pub effective_priority: u8,
    /// `INIT`, `BACKUP`, `MASTER` or `FAULT`; `UNKNOWN` before the VRRP thread reported.
    pub state: String,
    pub vips: Vec<String>,
    pub sync_group: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `tcp 192.0.2.10:80` or `fwmark 7 (IPv4)`.
    pub key: String,
    pub protocol: Option<String>,
    pub vip: Option<SocketAddr>,
    pub fwmark: Option<u32>,
    pub scheduler: String,
    pub persistence_seconds: Option<u64>,
    pub vrrp_instance: Option<String>,
    pub reals_up: usize,
    pub up_weight: u64,
    pub quorum: Option<QuorumStatus>,
    pub sorry: Option<SorryStatus>,
    /// Whether the kernel has the service (None: unknown).
    pub in_kernel: Option<bool>,
    pub traffic: Option<Traffic>,
    pub reals: Vec<RealStatusDoc>,
    /// Reals the config no longer lists, at weight 0 until their connections end
    /// (`ipvs.removal_drain`).
    pub draining: Vec<DrainingRealDoc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrainingRealDoc {
    pub address: SocketAddr,
    pub since: String,
    /// When it is deleted at the latest.
    pub ends_by: String,
    /// What the kernel holds for it (None: IPVS unreadable, or already gone).
    pub ipvs: Option<KernelReal>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QuorumStatus {
    pub min_weight: u32,
    pub hysteresis: u32,
    pub up: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SorryStatus {
    pub address: SocketAddr,
    pub forwarding: String,
    /// Whether the reconciler wants it in the table now (no real serves).
    pub active: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RealStatusDoc {
    pub address: SocketAddr,
    pub forwarding: String,
    pub config_weight: u32,
    /// The weight the reconciler wants in IPVS now; None: the real is left out of the table
    /// (down with `on_failure = "remove"`).
    pub weight: Option<u32>,
    pub drained: bool,
    /// `up`, `down`, or `unknown` (not checked yet; it serves); `up` for reals without a check.
    pub health: String,
    pub checked: bool,
    /// The check's type (`tcp`, `http`...), if any.
    pub check: Option<String>,
    /// Why the real is down.
    pub reason: Option<String>,
    /// When the health last changed.
    pub since: Option<String>,
    /// What the kernel holds for it (None: not in the table, or IPVS unreadable).
    pub ipvs: Option<KernelReal>,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelReal {
    pub weight: u32,
    pub forwarding: String,
    pub active_connections: u32,
    pub inactive_connections: u32,
    pub persistent_connections: u32,
    pub traffic: Option<Traffic>,
}

fn fwd_name(f: FwdMethod) -> &'static str {
    match f {
        FwdMethod::Masq => "nat",
        FwdMethod::Route => "dr",
        FwdMethod::Tunnel => "tun",
        FwdMethod::Local => "local",
        FwdMethod::Bypass => "bypass",
    }
}

fn forwarding_name(f: Forwarding) -> String {
    f.to_string()
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).unwrap_or_default().as_secs_f64()
}

/// The operator and check weights the reconciler takes (operator wins).
pub fn overrides(health: &HealthReport, drained: &Drained) -> Overrides {
    let mut weights = health.weights();
    weights.extend(drained.weights());
    Overrides { weights }
}

/// The kernel's services by identity, each with its destinations.
type KernelTable<'a> = BTreeMap<msg::ServiceId, &'a (msg::ServiceEntry, Vec<msg::DestEntry>)>;

/// Builds the status document.
pub fn build(i: &Inputs) -> Status {
    let desired = reconcile::desired(
        i.config,
        &i.health.real_health(),
        &overrides(i.health, i.drained),
        SyncRole::Master,
    );
    let kernel: Option<KernelTable> = match i.kernel {
        KernelView::Table(d) => Some(d.iter().map(|e| (e.0.id, e)).collect()),
        KernelView::Unavailable(_) => None,
    };
    let vrrp = vrrp_instances(i);
    let services = i
        .config
        .services
        .values()
        .map(|svc| service_status(i, svc, &desired, kernel.as_ref()))
        .collect();
    let bgp = i.config.bgp.as_ref().map(|_| BgpView {
        node_drained: i.node_drained,
        speaker: i.bgp.clone(),
    });
    Status {
        bgp,
        lbd: LbdInfo {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            hostname: i.hostname.clone(),
            started_at: timestamp(i.started_at),
            uptime_seconds: secs_between(i.started_at, i.now),
        },
        config: ConfigInfo {
            path: i.config_path.display().to_string(),
            version: i.config.version.to_string(),
            loaded_at: timestamp(i.loaded_at),
            age_seconds: secs_between(i.loaded_at, i.now),
            applied: i.applied,
            summary: i.config.summary(),
            last_reload: i.last_reload.cloned(),
            trust: i.trust.clone(),
        },
        ipvs: match i.kernel {
            KernelView::Table(_) => IpvsInfo {
                available: true,
                error: None,
            },
            KernelView::Unavailable(e) => IpvsInfo {
                available: false,
                error: Some(e.clone()),
            },
        },
        vrrp,
        vrrp_drops: vrrp_drops(i.vrrp),
        services,
        syslog: i.syslog.clone(),
        links: links_status(i.links),
    }
}

/// The configured VRRP instances, with the state and priority the VRRP thread reports.
fn vrrp_instances(i: &Inputs) -> Vec<VrrpInstanceStatus> {
    let group_of: BTreeMap<&str, &str> = i
        .config
        .sync_groups
        .values()
        .flat_map(|g| {
            g.instances
                .iter()
                .map(move |m| (m.as_str(), g.name.as_str()))
        })
        .collect();
    i.config
        .vrrp_instances
        .values()
        .map(|v| VrrpInstanceStatus {
            name: v.name.clone(),
            interface: v.interface.clone(),
            vrid: v.vrid,
            version: match v.version {
                crate::config::VrrpVersion::V2 => 2,
                crate::config::VrrpVersion::V3 => 3,
            },
            priority: v.priority,
            effective_priority: i
                .vrrp
                .priorities
                .get(&v.name)
                .copied()
                .unwrap_or(v.priority),
            state: i
                .vrrp
                .roles
                .get(&v.name)
                .map_or("UNKNOWN".to_string(), |s| s.as_str().to_string()),
            vips: v.vips.iter().map(|p| p.to_string()).collect(),
            sync_group: group_of.get(v.name.as_str()).map(|g| g.to_string()),
        })
        .collect()
}

/// The dropped-packet counters by reason, named as the reasons serialize.
fn vrrp_drops(vrrp: &VrrpStatus) -> BTreeMap<String, u64> {
    vrrp.drops
        .iter()
        .map(|(k, v)| {
            (
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| format!("{k:?}")),
                *v,
            )
        })
        .collect()
}

/// One config service: its health, what the reconciler wants for it (`desired`) and what the
/// kernel holds (`kernel`, None: unreadable).
fn service_status(
    i: &Inputs,
    svc: &Service,
    desired: &Desired,
    kernel: Option<&KernelTable>,
) -> ServiceStatus {
    let id = reconcile::service_id(&svc.key);
    let want = desired.table.get(&id);
    let have = kernel.and_then(|k| k.get(&id));
    let sh: Option<&ServiceHealth> = i.health.services.get(&svc.name).map(|s| &**s);
    let (protocol, vip, fwmark) = match svc.key {
        ServiceKey::Addr { protocol, addr } => (Some(protocol.to_string()), Some(addr), None),
        ServiceKey::Fwmark { mark, .. } => (None, None, Some(mark)),
    };
    let reals = svc
        .reals
        .iter()
        .map(|r| real_status(i, svc, sh, r, want, have.copied()))
        .collect();
    ServiceStatus {
        name: svc.name.clone(),
        key: svc.key.to_string(),
        protocol,
        vip,
        fwmark,
        scheduler: svc.scheduler.to_string(),
        persistence_seconds: svc.persistence.map(|p| p.timeout.as_secs()),
        vrrp_instance: svc.vrrp_instance.clone(),
        reals_up: sh.map_or(svc.reals.len(), |s| s.reals_up),
        up_weight: sh.map_or_else(
            || svc.reals.iter().map(|r| u64::from(r.weight)).sum(),
            |s| s.up_weight,
        ),
        quorum: svc.quorum.map(|q| QuorumStatus {
            min_weight: q.min_weight,
            hysteresis: q.hysteresis,
            up: sh.is_none_or(|s| s.quorum_up()),
        }),
        sorry: svc.sorry.as_ref().map(|s| SorryStatus {
            address: s.addr,
            forwarding: forwarding_name(s.forwarding),
            // The reconciler adds the sorry server when no real serves.
            active: !svc.reals.iter().any(|r| r.addr == s.addr)
                && want.is_some_and(|w| {
                    w.dests.contains_key(&DestKey {
                        addr: s.addr.ip(),
                        port: s.addr.port(),
                    })
                }),
        }),
        in_kernel: kernel.map(|k| k.contains_key(&id)),
        traffic: have.and_then(|(s, _)| s.stats.as_ref()).map(Traffic::from),
        reals,
        draining: i
            .draining
            .iter()
            .filter(|d| d.service == svc.name)
            .map(|d| DrainingRealDoc {
                address: d.address,
                since: timestamp(d.started_at),
                ends_by: timestamp(d.ends_by),
                ipvs: kernel_real(have.copied(), d.address),
            })
            .collect(),
    }
}

/// What the kernel holds for the real at `addr` of a dumped service.
fn kernel_real(
    have: Option<&(msg::ServiceEntry, Vec<msg::DestEntry>)>,
    addr: SocketAddr,
) -> Option<KernelReal> {
    let (_, dests) = have?;
    let d = dests
        .iter()
        .find(|d| d.addr == addr.ip() && d.port == addr.port())?;
    Some(KernelReal {
        weight: d.weight,
        forwarding: fwd_name(d.fwd).to_string(),
        active_connections: d.active_conns,
        inactive_connections: d.inactive_conns,
        persistent_connections: d.persistent_conns,
        traffic: d.stats.as_ref().map(Traffic::from),
    })
}

/// One real of `svc`: config, health (`sh`: the service's) and drain, the weight the
/// reconciler wants (`want`: the service as desired) and what the kernel holds (`have`: the
/// service as dumped).
fn real_status(
    i: &Inputs,
    svc: &Service,
    sh: Option<&ServiceHealth>,
    r: &Real,
    want: Option<&ServiceState>,
    have: Option<&(msg::ServiceEntry, Vec<msg::DestEntry>)>,
) -> RealStatusDoc {
    let key = DestKey {
        addr: r.addr.ip(),
        port: r.addr.port(),
    };
    let rs = sh.and_then(|s| s.reals.get(&r.addr));
    RealStatusDoc {
        address: r.addr,
        forwarding: forwarding_name(r.forwarding),
        config_weight: r.weight,
        weight: want.and_then(|w| w.dests.get(&key)).map(|d| d.weight),
        drained: i.drained.contains(&(svc.name.clone(), r.addr)),
        health: match rs {
            Some(s) if s.checked => s.state.to_string(),
            _ => "up".to_string(),
        },
        checked: rs.is_some_and(|s| s.checked),
        check: r.check.as_ref().map(|c| {
            serde_json::to_value(&c.kind)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from))
                .unwrap_or_default()
        }),
        reason: rs.and_then(|s| s.reason.as_ref()).map(|f| f.to_string()),
        since: rs.and_then(|s| s.since).map(timestamp),
        ipvs: kernel_real(have, r.addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::types::{BondInfo, BondPortInfo};
    use crate::netlink::Link;
    use rtnetlink::packet_route::link::LinkLayerType;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some([0x52, 0x54, 0, 0, 0, index as u8]),
            kind: LinkLayerType::Ether,
            admin_up: true,
            carrier: true,
            virtual_kind: None,
            mtu: Some(1500),
            controller: None,
            perm_mac: None,
            lower: None,
            vlan_id: None,
            bond: None,
            bond_port: None,
        }
    }

    #[test]
    fn bonds_show_their_members_and_lacp_state() {
        let mut bond = link(10, "bond0");
        bond.virtual_kind = Some("bond".into());
        bond.bond = Some(BondInfo {
            mode: 4,
            active: None,
            ..BondInfo::default()
        });
        let member = |index, name: &str, actor: u8| {
            let mut m = link(index, name);
            m.controller = Some(10);
            m.bond_port = Some(BondPortInfo {
                mii_up: true,
                active: true,
                perm_mac: None,
                actor_state: Some(actor),
                partner_state: Some(0x3f),
                aggregator: Some(1),
            });
            m
        };
        let mut vlan = link(11, "bond0.42");
        vlan.virtual_kind = Some("vlan".into());
        vlan.lower = Some(10);
        vlan.vlan_id = Some(42);
        let readings: Vec<LinkReading> = [
            link(1, "lo"),
            member(2, "eth0", 0x3d),
            member(3, "eth1", 0x0d),
            bond,
            vlan,
        ]
        .into_iter()
        .map(|link| LinkReading {
            speed_mbps: (link.name.starts_with("eth")).then_some(10_000),
            link,
        })
        .collect();
        let st = links_status(&readings);
        assert_eq!(
            st.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["eth0", "eth1", "bond0", "bond0.42"]
        );
        assert_eq!(st[0].member_of.as_deref(), Some("bond0"));
        assert_eq!(st[0].speed_mbps, Some(10_000));
        let b = st[2].bond.as_ref().unwrap();
        assert_eq!(b.mode, "802.3ad");
        let lacp: Vec<bool> = b
            .members
            .iter()
            .map(|m| m.lacp.as_ref().unwrap().collecting_distributing)
            .collect();
        // 0x3d has COLLECTING (0x10) and DISTRIBUTING (0x20); 0x0d has neither.
        assert_eq!(lacp, [true, false]);
        let v = st[3].vlan.as_ref().unwrap();
        assert_eq!((v.parent.as_str(), v.id), ("bond0", 42));
    }
}
