//! The VRRP router (RFC 5798's name for the whole box): all virtual routers of this balancer,
//! packet checks and drop counters, sync groups, tracked interfaces, health quorum. Pure:
//! `step(now, input) -> actions`, every input a serde enum so a run can be recorded as JSON lines
//! and replayed.
//!
//! Receive checks, in RFC 3768 7.1 / RFC 5798 7.1 order; a failed check drops the packet,
//! counts it by [`DropReason`] and never reaches a state machine:
//! TTL/hop limit 255 → version, type, length, address count, checksum → VRID configured on
//! this interface (and family) → version of that instance → unicast peer → v2 authentication →
//! interval (v2: must match; v3: learned, a difference is logged) → address list (v2: must
//! match unless the sender is the owner; v3: a difference is logged).
//!
//! Sync groups (keepalived's semantics): a backup member whose master-down timer fires
//! becomes master only when every other backup member wants to as well (its own timer fired
//! and it has heard no master since), else it stays backup and looks again a master-down
//! interval later: on a lossy link one member missing three adverts does not take the group
//! over while the others still hear the master. A member that becomes master on its own makes
//! the other members that are backup master too; a member that a better advertisement pushes
//! to backup takes the other masters with it (they resign with priority 0); a fault of one
//! member faults them all.

use super::machine::{Action, FaultReason, Instance, Spec, State, Timer, Why};
use super::packet::{peek_vrid, Advert, DropReason, Version, TTL};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// A VRRP packet as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// Interface it arrived on.
    pub ifname: String,
    pub src: IpAddr,
    /// Destination (the multicast group, or our address for unicast).
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// The VRRP message, after the IP header.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
}

/// Everything that can happen to the router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The (new) set of instances and sync groups. The first one starts the router.
    Configure {
        instances: Vec<Spec>,
        sync_groups: BTreeMap<String, Vec<String>>,
    },
    /// An interface went up (administratively up with carrier) or down (or is missing).
    /// Interfaces never reported are taken as up.
    Link {
        ifname: String,
        up: bool,
    },
    /// The instance's primary address changed (`None`: it has none).
    Primary {
        instance: String,
        addr: Option<IpAddr>,
    },
    /// Health quorum of the services behind this instance lost or regained.
    Quorum {
        instance: String,
        lost: bool,
    },
    Packet(Packet),
    Timer {
        instance: String,
        timer: Timer,
    },
    /// Orderly stop: masters send priority 0 and release their addresses.
    Shutdown,
}

/// What a peer last advertised, when it differed from our config (to log each change once).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PeerView {
    interval: Duration,
    addrs: Vec<IpAddr>,
}

/// The VRRP router: every virtual router (instance) of this balancer, fed [`Input`]s by
/// [`Router::step`], which answers with [`Action`]s.
#[derive(Clone, Debug, Default)]
pub struct Router {
    instances: BTreeMap<String, Instance>,
    groups: BTreeMap<String, Vec<String>>,
    links: BTreeMap<String, bool>,
    drops: BTreeMap<DropReason, u64>,
    instance_drops: BTreeMap<String, BTreeMap<DropReason, u64>>,
    peers: BTreeMap<(String, IpAddr), PeerView>,
    /// When each backup instance's master-down timer fired while it had to wait for its
    /// group, and when it last heard a master (an advert that put its timer off).
    wants_master: BTreeMap<String, Duration>,
    heard_master: BTreeMap<String, Duration>,
    started: bool,
    stopped: bool,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.get(name)
    }

    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// State of each instance by name.
    pub fn roles(&self) -> BTreeMap<String, State> {
        self.instances
            .iter()
            .map(|(n, i)| (n.clone(), i.state()))
            .collect()
    }

    /// Priority each instance advertises now (after any health-quorum drop), by name.
    pub fn priorities(&self) -> BTreeMap<String, u8> {
        self.instances
            .iter()
            .map(|(n, i)| (n.clone(), i.priority()))
            .collect()
    }

    /// Dropped packets by reason, all instances and interfaces together.
    pub fn drops(&self) -> &BTreeMap<DropReason, u64> {
        &self.drops
    }

    /// Dropped packets of one instance (those whose VRID could be read).
    pub fn instance_drops(&self, name: &str) -> BTreeMap<DropReason, u64> {
        self.instance_drops.get(name).cloned().unwrap_or_default()
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match input {
            Input::Configure {
                instances,
                sync_groups,
            } => self.configure(now, instances, sync_groups, &mut out),
            Input::Link { ifname, up } => {
                self.links.insert(ifname, up);
                self.reevaluate(now, &mut out);
            }
            Input::Primary { instance, addr } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.set_primary(addr);
                    self.reevaluate(now, &mut out);
                }
            }
            Input::Quorum { instance, lost } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.set_quorum_lost(lost);
                    self.reevaluate(now, &mut out);
                }
            }
            Input::Packet(p) => self.packet(now, p, &mut out),
            Input::Timer { instance, timer } => {
                let due = timer == Timer::MasterDown
                    && self
                        .instances
                        .get(&instance)
                        .is_some_and(|i| i.master_down_due(now));
                if due {
                    if let Some(member) = self.mate_not_ready(now, &instance) {
                        // Said once per episode: a member cut off from the master on its own
                        // link would otherwise say it every master-down interval.
                        let waiting = self.wants_master.get(&instance).is_some_and(|w| {
                            self.heard_master.get(&instance).is_none_or(|h| h < w)
                        });
                        self.wants_master.insert(instance.clone(), now);
                        if let Some(i) = self.instances.get_mut(&instance) {
                            i.wait_for_group(now, &mut out);
                        }
                        if !waiting {
                            out.push(Action::GroupWait { instance, member });
                        }
                        return out;
                    }
                }
                if let Some(i) = self.instances.get_mut(&instance) {
                    let mark = out.len();
                    i.on_timer(now, timer, &mut out);
                    self.follow_groups(now, mark, &mut out);
                }
            }
            Input::Shutdown => {
                for i in self.instances.values_mut() {
                    i.shutdown(Why::Shutdown, &mut out);
                }
                self.stopped = true;
            }
        }
        out
    }

    fn configure(
        &mut self,
        now: Duration,
        specs: Vec<Spec>,
        groups: BTreeMap<String, Vec<String>>,
        out: &mut Vec<Action>,
    ) {
        let names: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let removed: Vec<String> = self
            .instances
            .keys()
            .filter(|n| !names.contains(n.as_str()))
            .cloned()
            .collect();
        for n in removed {
            if let Some(mut i) = self.instances.remove(&n) {
                i.shutdown(Why::Removed, out);
            }
            self.instance_drops.remove(&n);
        }
        for spec in specs {
            match self.instances.get_mut(&spec.name) {
                Some(i) if i.spec().same_router(&spec) => i.update(spec, out),
                Some(i) => {
                    i.shutdown(Why::Removed, out);
                    *i = Instance::new(spec);
                }
                None => {
                    self.instances
                        .insert(spec.name.clone(), Instance::new(spec));
                }
            }
        }
        self.peers
            .retain(|(n, _), _| self.instances.contains_key(n));
        self.wants_master
            .retain(|n, _| self.instances.contains_key(n));
        self.heard_master
            .retain(|n, _| self.instances.contains_key(n));
        self.groups = groups;
        self.started = true;
        self.reevaluate(now, out);
    }

    /// A backup member of `name`'s sync group that does not want to become master: its
    /// master-down timer has not fired, or it heard a master since it did.
    fn mate_not_ready(&self, now: Duration, name: &str) -> Option<String> {
        self.group_mates(name).into_iter().find(|m| {
            let Some(i) = self.instances.get(m) else {
                return false;
            };
            if i.state() != State::Backup || i.master_down_due(now) {
                return false;
            }
            match self.wants_master.get(m) {
                Some(wanted) => self.heard_master.get(m).is_some_and(|h| h >= wanted),
                None => true,
            }
        })
    }

    /// The group an instance belongs to, and the other members.
    fn group_mates(&self, name: &str) -> Vec<String> {
        self.groups
            .values()
            .find(|m| m.iter().any(|n| n == name))
            .map(|m| m.iter().filter(|n| *n != name).cloned().collect())
            .unwrap_or_default()
    }

    fn own_fault(&self, i: &Instance) -> Option<FaultReason> {
        let s = i.spec();
        for ifname in std::iter::once(&s.interface).chain(s.track_interfaces.iter()) {
            if self.links.get(ifname) == Some(&false) {
                return Some(FaultReason::InterfaceDown(ifname.clone()));
            }
        }
        if s.primary.is_none() {
            return Some(FaultReason::NoAddress);
        }
        if i.quorum_fault() {
            return Some(FaultReason::Quorum);
        }
        None
    }

    /// Puts every instance where its fault conditions say: starts instances not started
    /// yet, faults or recovers the others, then lets sync groups follow.
    fn reevaluate(&mut self, now: Duration, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let own: BTreeMap<String, Option<FaultReason>> = self
            .instances
            .iter()
            .map(|(n, i)| (n.clone(), self.own_fault(i)))
            .collect();
        let mark = out.len();
        for name in own.keys() {
            let fault = own[name].clone().or_else(|| {
                self.group_mates(name)
                    .into_iter()
                    .find(|m| own.get(m).is_some_and(|f| f.is_some()))
                    .map(FaultReason::Group)
            });
            let i = self.instances.get_mut(name).expect("listed");
            match (i.state(), fault) {
                (State::Fault, None) => i.leave_fault(now, out),
                (State::Initialize, None) => i.start(now, out),
                (State::Fault, Some(_)) => {}
                (_, Some(reason)) => i.enter_fault(now, reason, out),
                (State::Backup | State::Master, None) => {}
            }
        }
        self.follow_groups(now, mark, out);
    }

    /// Sync groups follow the transitions in `out[mark..]` that members made on their own.
    fn follow_groups(&mut self, now: Duration, mark: usize, out: &mut Vec<Action>) {
        let own: Vec<(String, State, State)> = out[mark..]
            .iter()
            .filter_map(|a| match a {
                Action::State {
                    instance,
                    from,
                    to,
                    why,
                    ..
                } if !matches!(why, Why::Group { .. }) => Some((instance.clone(), *from, *to)),
                _ => None,
            })
            .collect();
        for (name, from, to) in own {
            // A later transition of the same member may have superseded this one.
            if self.instances.get(&name).map(|i| i.state()) != Some(to) {
                continue;
            }
            for mate in self.group_mates(&name) {
                let Some(m) = self.instances.get_mut(&mate) else {
                    continue;
                };
                let why = Why::Group {
                    member: name.clone(),
                };
                match (from, to, m.state()) {
                    (_, State::Master, State::Backup) => m.become_master(now, why, out),
                    (State::Master, State::Backup, State::Master) => {
                        let interval = m.spec().advert_interval;
                        m.become_backup(now, why, interval, true, out)
                    }
                    _ => {}
                }
            }
        }
    }

    fn drop_packet(
        &mut self,
        instance: Option<&str>,
        p: &Packet,
        reason: DropReason,
        detail: String,
        out: &mut Vec<Action>,
    ) {
        let count = {
            let c = self.drops.entry(reason).or_default();
            *c += 1;
            *c
        };
        if let Some(n) = instance {
            *self
                .instance_drops
                .entry(n.to_string())
                .or_default()
                .entry(reason)
                .or_default() += 1;
        }
        out.push(Action::Dropped {
            instance: instance.map(str::to_string),
            ifname: p.ifname.clone(),
            src: p.src,
            reason,
            detail,
            count,
        });
    }

    fn packet(&mut self, now: Duration, p: Packet, out: &mut Vec<Action>) {
        let ipv6 = p.src.is_ipv6();
        // The instance this packet is for, by interface, family and VRID, if any.
        let target: Option<String> = peek_vrid(&p.data).and_then(|vrid| {
            self.instances
                .values()
                .find(|i| {
                    let s = i.spec();
                    s.interface == p.ifname && s.ipv6 == ipv6 && s.vrid == vrid
                })
                .map(|i| i.name().to_string())
        });
        let t = target.as_deref();
        if p.ttl != TTL {
            let d = format!(
                "{} {}, must be {TTL}",
                if ipv6 { "hop limit" } else { "TTL" },
                p.ttl
            );
            return self.drop_packet(t, &p, DropReason::Ttl, d, out);
        }
        let adv = match Advert::parse(&p.data, p.src, p.dst) {
            Ok(a) => a,
            Err(e) => return self.drop_packet(t, &p, e.reason(), e.to_string(), out),
        };
        let Some(name) = target else {
            let d = format!("no instance with VRID {} on {}", adv.vrid, p.ifname);
            return self.drop_packet(None, &p, DropReason::Vrid, d, out);
        };
        let inst = &self.instances[&name];
        let spec = inst.spec();
        if spec.primary == Some(p.src) {
            return; // our own, looped back
        }
        if adv.version != spec.version {
            let d = format!("VRRP {}, instance runs {}", adv.version, spec.version);
            return self.drop_packet(Some(&name), &p, DropReason::Version, d, out);
        }
        if !spec.unicast_peers.is_empty() && !spec.unicast_peers.contains(&p.src) {
            let d = format!("{} is not a unicast peer", p.src);
            return self.drop_packet(Some(&name), &p, DropReason::Source, d, out);
        }
        if spec.version == Version::V2 && adv.auth != spec.auth() {
            let d = match (&adv.auth, &spec.auth_pass) {
                (super::packet::Auth::None, Some(_)) => "no password, ours is set".to_string(),
                (_, None) => "a password or another auth type, we use none".to_string(),
                _ => "password or auth type differs".to_string(),
            };
            return self.drop_packet(Some(&name), &p, DropReason::Auth, d, out);
        }
        let ours: BTreeSet<IpAddr> = spec.vips.iter().map(|v| v.addr).collect();
        let theirs: BTreeSet<IpAddr> = adv.addrs.iter().copied().collect();
        let interval_differs = adv.interval != spec.advert_interval;
        let addrs_differ = ours != theirs;
        let key = (name.clone(), p.src);
        if interval_differs || addrs_differ {
            let view = PeerView {
                interval: adv.interval,
                addrs: adv.addrs.clone(),
            };
            if self.peers.get(&key) != Some(&view) {
                let mut parts = Vec::new();
                if interval_differs {
                    parts.push(format!(
                        "interval {:?} (ours {:?}){}",
                        adv.interval,
                        spec.advert_interval,
                        if spec.version == Version::V2 {
                            ", dropped (RFC 3768)"
                        } else {
                            ", timing the master with its interval"
                        }
                    ));
                }
                if addrs_differ {
                    parts.push(format!(
                        "addresses [{}] (ours [{}])",
                        list(&adv.addrs),
                        list(&ours.iter().copied().collect::<Vec<_>>())
                    ));
                }
                out.push(Action::PeerMismatch {
                    instance: name.clone(),
                    src: p.src,
                    detail: parts.join("; "),
                });
                self.peers.insert(key, view);
            }
        } else {
            self.peers.remove(&key);
        }
        if spec.version == Version::V2 && interval_differs {
            let d = format!(
                "interval {:?}, ours {:?}",
                adv.interval, spec.advert_interval
            );
            return self.drop_packet(Some(&name), &p, DropReason::Interval, d, out);
        }
        if spec.version == Version::V2 && addrs_differ && adv.priority != 255 {
            let d = format!("addresses [{}] differ from ours", list(&adv.addrs));
            return self.drop_packet(Some(&name), &p, DropReason::Addresses, d, out);
        }
        let mark = out.len();
        let inst = self.instances.get_mut(&name).expect("found above");
        inst.on_advert(now, p.src, &adv, out);
        // Heard a master: an advert that put the master-down timer off. Not one a backup
        // discards so that it preempts (lower priority), nor a resignation.
        let heard = adv.priority > 0
            && out[mark..].iter().any(|a| {
                matches!(a, Action::ArmTimer { instance, timer: Timer::MasterDown, .. } if *instance == name)
            });
        if heard {
            self.heard_master.insert(name.clone(), now);
        }
        self.follow_groups(now, mark, out);
    }
}

fn list(a: &[IpAddr]) -> String {
    a.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Packet bytes as a hex string in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut h = String::with_capacity(b.len() * 2);
        for x in b {
            h.push_str(&format!("{x:02x}"));
        }
        s.serialize_str(&h)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let h = String::deserialize(d)?;
        if h.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..h.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&h[i..i + 2], 16)
                    .map_err(|_| serde::de::Error::custom(format!("bad hex at {i}")))
            })
            .collect()
    }
}
