//! The one place that owns the clock and the sockets: feeds the pure [`Router`] with packets,
//! link and address changes, timer expiries and commands, and carries out its actions.

use super::pacer::Pacer;
use super::record::Recorder;
use super::rx::{read_loop, RxSocket};
use super::sock::{is_link_local, ArpSocket, NdSocket, Received, VrrpSocket};
use super::{Command, Status};
use crate::config::{Config, IpPrefix};
use crate::netlink::{self, Addr, AddressOptions, Event, Link, Netlink};
use crate::vrrp::announce::{gratuitous_arp, unsolicited_na, virtual_mac_v4, virtual_mac_v6};
use crate::vrrp::machine::{Action, Spec, State, Timer};
use crate::vrrp::packet::{Advert, DropReason, MULTICAST_V4, MULTICAST_V6};
use crate::vrrp::router::{Input, Packet, Router};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// How often one drop reason (or one send error) is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The macvlan of an instance with `virtual_mac`.
struct Vmac {
    name: String,
    index: u32,
    mac: [u8; 6],
    /// Adverts leave from here (source MAC = the virtual MAC); IPv4 only.
    sock: Option<VrrpSocket>,
}

pub(super) struct Driver {
    router: Router,
    origin: Instant,
    timers: BTreeMap<(String, Timer), Duration>,
    specs: BTreeMap<String, Spec>,
    groups: BTreeMap<String, Vec<String>>,
    net: Netlink,
    links: BTreeMap<String, Link>,
    addrs: Vec<Addr>,
    /// What the router was last told about each interface.
    link_fed: BTreeMap<String, bool>,
    rx: BTreeMap<(String, bool), RxSocket>,
    vmacs: BTreeMap<String, Vmac>,
    arp: BTreeMap<u32, ArpSocket>,
    nd: BTreeMap<u32, NdSocket>,
    pacer: Pacer,
    pkt_tx: mpsc::UnboundedSender<(String, Received)>,
    pkt_rx: mpsc::UnboundedReceiver<(String, Received)>,
    status: watch::Sender<Status>,
    record: Option<Recorder>,
    last_log: BTreeMap<String, (Duration, u64)>,
    /// The first config was applied (only then can addresses left on a link be a dead
    /// predecessor's).
    configured: bool,
}

impl Driver {
    pub(super) fn new(status: watch::Sender<Status>) -> Result<Driver, netlink::NetError> {
        let (pkt_tx, pkt_rx) = mpsc::unbounded_channel();
        let record = std::env::var("LBD_VRRP_RECORD").ok().and_then(|d| {
            Recorder::open(&d)
                .map_err(|e| warn!("vrrp: cannot record to {d}: {e}"))
                .ok()
        });
        Ok(Driver {
            router: Router::new(),
            origin: Instant::now(),
            timers: BTreeMap::new(),
            specs: BTreeMap::new(),
            groups: BTreeMap::new(),
            net: Netlink::connect()?,
            links: BTreeMap::new(),
            addrs: Vec::new(),
            link_fed: BTreeMap::new(),
            rx: BTreeMap::new(),
            vmacs: BTreeMap::new(),
            arp: BTreeMap::new(),
            nd: BTreeMap::new(),
            pacer: Pacer::default(),
            pkt_tx,
            pkt_rx,
            status,
            record,
            last_log: BTreeMap::new(),
            configured: false,
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Runs until a Stop command (or the command channel closes).
    pub(super) async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        let mut events = match netlink::monitor() {
            Ok((_task, rx)) => Some(rx),
            Err(e) => {
                error!(
                    "vrrp: cannot watch links and addresses: {e}; interface changes go unnoticed"
                );
                None
            }
        };
        loop {
            let wake = [self.timers.values().min().copied(), self.pacer.next_wake()]
                .into_iter()
                .flatten()
                .min();
            let sleep = async {
                match wake {
                    Some(w) => tokio::time::sleep_until(self.origin + w).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(Command::Configure(c)) => {
                        super::set_realtime(c.node.vrrp_realtime_priority());
                        self.configure(&c).await
                    }
                    Some(Command::Quorum { instance, lost }) => {
                        self.step(Input::Quorum { instance: instance.clone(), lost }).await;
                        if let Some(i) = self.router.instance(&instance) {
                            info!(
                                "vrrp: {instance}: health quorum {}; priority {}",
                                if lost { "lost" } else { "back" },
                                i.priority()
                            );
                        }
                    }
                    Some(Command::Stop(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some((ifname, r)) = self.pkt_rx.recv() => {
                    let p = Packet { ifname, src: r.src, dst: r.dst, ttl: r.ttl, data: r.data };
                    self.step(Input::Packet(p)).await;
                }
                Some(ev) = async { match events.as_mut() { Some(e) => e.recv().await, None => None } } => {
                    self.event(ev).await;
                }
                _ = sleep => self.expire().await,
            }
        }
    }

    async fn expire(&mut self) {
        let now = self.now();
        let mut due: Vec<(Duration, String, Timer)> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|((i, t), at)| (*at, i.clone(), *t))
            .collect();
        due.sort();
        for (_, instance, timer) in due {
            self.timers.remove(&(instance.clone(), timer));
            self.step(Input::Timer { instance, timer }).await;
        }
        for item in self.pacer.due(now) {
            self.announce_one(&item.instance, item.vip);
        }
    }

    /// Feeds the router and carries out its actions.
    async fn step(&mut self, input: Input) {
        let now = self.now();
        let actions = self.router.step(now, input.clone());
        if let Some(r) = self.record.as_mut() {
            r.write(now, &input, &actions);
        }
        for a in actions {
            self.act(now, a).await;
        }
        let status = Status {
            roles: self.router.roles(),
            priorities: self.router.priorities(),
            drops: self.router.drops().clone(),
        };
        self.status.send_if_modified(|s| {
            if *s != status {
                *s = status;
                true
            } else {
                false
            }
        });
    }

    fn spec(&self, instance: &str) -> Option<&Spec> {
        self.specs.get(instance)
    }

    /// The link a VIP lives on: the macvlan with `virtual_mac`, else the interface.
    fn vip_link(&self, spec: &Spec) -> Option<(u32, String)> {
        if let Some(v) = self.vmacs.get(&spec.name) {
            return Some((v.index, v.name.clone()));
        }
        self.links
            .get(&spec.interface)
            .map(|l| (l.index, l.name.clone()))
    }

    /// Whether every VIP of `spec` is on the link it lives on (a previous lbd died as master).
    fn holds_all_vips(&self, spec: &Spec) -> bool {
        let Some((index, _)) = self.vip_link(spec) else {
            return false;
        };
        !spec.vips.is_empty()
            && spec.vips.iter().all(|v| {
                self.addrs
                    .iter()
                    .any(|a| a.index == index && a.addr == v.addr && a.prefix_len == v.prefix_len)
            })
    }

    fn rate_limited(&mut self, key: String, now: Duration) -> Option<u64> {
        let e = self.last_log.entry(key).or_insert((Duration::MAX, 0));
        if e.0 == Duration::MAX || now.saturating_sub(e.0) >= LOG_EVERY {
            let suppressed = e.1;
            *e = (now, 0);
            Some(suppressed)
        } else {
            e.1 += 1;
            None
        }
    }

    async fn act(&mut self, now: Duration, a: Action) {
        match a {
            Action::ArmTimer {
                instance,
                timer,
                at,
            } => {
                self.timers.insert((instance, timer), at);
            }
            Action::CancelTimer { instance, timer } => {
                self.timers.remove(&(instance, timer));
            }
            Action::Send { instance, advert } => self.send_advert(now, &instance, &advert),
            Action::AddVips { instance, vips } => self.add_vips(&instance, &vips).await,
            Action::RemoveVips { instance, vips } => self.remove_vips(&instance, &vips).await,
            Action::Announce {
                instance,
                vips,
                count,
            } => {
                self.pacer.burst(now, &instance, &vips, count);
                for item in self.pacer.due(now) {
                    self.announce_one(&item.instance, item.vip);
                }
            }
            Action::State {
                instance,
                from,
                to,
                why,
                priority,
            } => {
                if to != State::Master {
                    self.pacer.cancel(&instance);
                }
                info!(priority, "vrrp: {instance}: {from} -> {to} ({why})");
            }
            Action::Dropped {
                instance,
                ifname,
                src,
                reason,
                detail,
                count,
            } => {
                let key = format!("drop {reason}");
                if let Some(n) = self.rate_limited(key, now) {
                    let who = instance.map(|i| format!(" for {i}")).unwrap_or_default();
                    let level_debug = reason == DropReason::Vrid;
                    if level_debug {
                        debug!(reason = %reason, count, "vrrp: dropped packet from {src} on {ifname}{who}: {reason}: {detail} (count {count}, {n} not logged)");
                    } else {
                        warn!(reason = %reason, count, "vrrp: dropped packet from {src} on {ifname}{who}: {reason}: {detail} (count {count}, {n} not logged)");
                    }
                }
            }
            Action::PeerMismatch {
                instance,
                src,
                detail,
            } => {
                warn!(instance = %instance, "vrrp: {instance}: peer {src} advertises {detail}");
            }
            // The router says it once per episode.
            Action::GroupWait { instance, member } => {
                info!(instance = %instance, "vrrp: {instance}: no advert from the master for the master-down interval, but sync group member {member} still hears one: staying backup");
            }
        }
    }

    /// Sends an advertisement of `instance` from its primary address: multicast, or to each
    /// unicast peer; from the virtual MAC's macvlan when it has one.
    fn send_advert(&mut self, now: Duration, instance: &str, advert: &Advert) {
        let Some(spec) = self.spec(instance) else {
            return;
        };
        let Some(src) = spec.primary else { return };
        let dsts: Vec<IpAddr> = if spec.unicast_peers.is_empty() {
            vec![if spec.ipv6 {
                IpAddr::V6(MULTICAST_V6)
            } else {
                IpAddr::V4(MULTICAST_V4)
            }]
        } else {
            spec.unicast_peers.clone()
        };
        let key = (spec.interface.clone(), spec.ipv6);
        let mut errors = Vec::new();
        for dst in dsts {
            let bytes = match advert.emit(src, dst) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(format!("cannot encode: {e}"));
                    continue;
                }
            };
            let r = match self.vmacs.get(instance).and_then(|v| v.sock.as_ref()) {
                Some(s) => s.send(src, dst, &bytes),
                None => match self.rx.get(&key) {
                    Some(s) => s.sock.get_ref().send(src, dst, &bytes),
                    None => Err(std::io::Error::other("no socket on the interface")),
                },
            };
            if let Err(e) = r {
                errors.push(format!("to {dst}: {e}"));
            }
        }
        for e in errors {
            if let Some(n) = self.rate_limited(format!("send {instance}"), now) {
                warn!(instance = %instance, suppressed = n, "vrrp: {instance}: sending advertisement failed {e}");
            }
        }
    }

    /// Adds the VIPs of `instance` to its link (the macvlan with `virtual_mac`, else the
    /// interface).
    async fn add_vips(&mut self, instance: &str, vips: &[IpPrefix]) {
        let Some(spec) = self.spec(instance).cloned() else {
            return;
        };
        let Some((index, ifname)) = self.vip_link(&spec) else {
            error!(
                "vrrp: {instance}: interface {} is missing; cannot add {}",
                spec.interface,
                show(vips)
            );
            return;
        };
        for v in vips {
            // IPv6 without duplicate address detection: the VIP must work at once, and
            // the old master has just given it up.
            let opts = AddressOptions {
                no_dad: true,
                ..AddressOptions::default()
            };
            let added = self
                .net
                .add_address(index, &ifname, v.addr, v.prefix_len, opts)
                .await;
            if let Err(e) = added {
                error!("vrrp: {instance}: {e}");
            }
        }
        info!("vrrp: {instance}: added {} on {ifname}", show(vips));
    }

    /// Stops the announcements of `instance` and removes its VIPs from its link; logs those
    /// that were there.
    async fn remove_vips(&mut self, instance: &str, vips: &[IpPrefix]) {
        self.pacer.cancel(instance);
        let Some(spec) = self.spec(instance).cloned() else {
            return;
        };
        let Some((index, ifname)) = self.vip_link(&spec) else {
            return;
        };
        let held: BTreeSet<IpAddr> = self
            .addrs
            .iter()
            .filter(|a| a.index == index)
            .map(|a| a.addr)
            .collect();
        let present: Vec<IpPrefix> = vips
            .iter()
            .filter(|v| held.contains(&v.addr))
            .copied()
            .collect();
        for v in vips {
            let removed = self
                .net
                .del_address(index, &ifname, v.addr, v.prefix_len)
                .await;
            if let Err(e) = removed {
                error!("vrrp: {instance}: {e}");
            }
        }
        if !present.is_empty() {
            info!("vrrp: {instance}: removed {} from {ifname}", show(&present));
        }
    }

    fn announce_one(&mut self, instance: &str, vip: IpPrefix) {
        let Some(spec) = self.specs.get(instance).cloned() else {
            return;
        };
        let Some(base) = self.links.get(&spec.interface).cloned() else {
            return;
        };
        let r = match vip.addr {
            IpAddr::V4(ip) => {
                let (index, mac) = match self.vmacs.get(instance) {
                    Some(v) => (v.index, Some(v.mac)),
                    None => (base.index, base.mac),
                };
                let Some(mac) = mac else { return };
                let sock = match self.arp.entry(index) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        match ArpSocket::open(&spec.interface, index) {
                            Ok(s) => e.insert(s),
                            Err(err) => {
                                error!("vrrp: {instance}: {err}");
                                return;
                            }
                        }
                    }
                };
                sock.send(&gratuitous_arp(mac, ip))
            }
            IpAddr::V6(ip) => {
                let Some(IpAddr::V6(src)) = spec.primary else {
                    return;
                };
                let mac = match self.vmacs.get(instance) {
                    Some(v) => v.mac,
                    None => match base.mac {
                        Some(m) => m,
                        None => return,
                    },
                };
                let sock = match self.nd.entry(base.index) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        match NdSocket::open(&spec.interface, base.index) {
                            Ok(s) => e.insert(s),
                            Err(err) => {
                                error!("vrrp: {instance}: {err}");
                                return;
                            }
                        }
                    }
                };
                sock.send(src, &unsolicited_na(ip, mac, false))
            }
        };
        if let Err(e) = r {
            let now = self.now();
            if let Some(n) = self.rate_limited(format!("announce {instance}"), now) {
                warn!("vrrp: {instance}: announcing {vip} failed: {e} ({n} not logged)");
            }
        }
    }

    /// The address an instance sends from (see [`Spec::primary`]).
    fn primary(&self, spec: &Spec, vips: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        if let Some(src) = spec.unicast_source {
            return Some(src);
        }
        let link = self.links.get(&spec.interface)?;
        let mine = self
            .addrs
            .iter()
            .filter(|a| a.index == link.index && !a.tentative && !vips.contains(&a.addr));
        if spec.ipv6 {
            mine.filter(|a| matches!(a.addr, IpAddr::V6(v) if is_link_local(&v)))
                .map(|a| a.addr)
                .next()
        } else {
            let v4: Vec<&Addr> = mine.filter(|a| a.addr.is_ipv4()).collect();
            v4.iter()
                .find(|a| !a.secondary)
                .or(v4.first())
                .map(|a| a.addr)
        }
    }

    fn all_vips(&self) -> BTreeSet<IpAddr> {
        self.specs
            .values()
            .flat_map(|s| s.vips.iter().map(|v| v.addr))
            .collect()
    }

    /// Interfaces the router must know about.
    fn watched(&self) -> BTreeSet<String> {
        self.specs
            .values()
            .flat_map(|s| {
                std::iter::once(s.interface.clone()).chain(s.track_interfaces.iter().cloned())
            })
            .collect()
    }

    async fn refresh(&mut self) {
        match self.net.links().await {
            Ok(l) => self.links = l.into_iter().map(|l| (l.name.clone(), l)).collect(),
            Err(e) => error!("vrrp: {e}"),
        }
        match self.net.addresses().await {
            Ok(a) => self.addrs = a,
            Err(e) => error!("vrrp: {e}"),
        }
    }

    /// Opens receive sockets for every (interface, family) in use; closes the others.
    fn sockets(&mut self) {
        let wanted: BTreeSet<(String, bool)> = self
            .specs
            .values()
            .map(|s| (s.interface.clone(), s.ipv6))
            .collect();
        self.rx.retain(|k, _| wanted.contains(k));
        for (ifname, ipv6) in wanted {
            let Some(link) = self.links.get(&ifname) else {
                self.rx.remove(&(ifname, ipv6));
                continue;
            };
            if let Some(s) = self.rx.get(&(ifname.clone(), ipv6)) {
                if s.sock.get_ref().ifindex == link.index {
                    continue;
                }
            }
            match VrrpSocket::open(&ifname, link.index, ipv6, true).and_then(|s| {
                // SAFETY: the socket owns its fd (OwnedFd) for as long as the AsyncFd lives,
                // and as_raw_fd always returns that fd.
                unsafe { AsyncFd::register(s) }.map_err(|e| super::sock::SockError {
                    what: "registering with tokio",
                    ifname: ifname.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            }) {
                Ok(s) => {
                    let sock = Arc::new(s);
                    let reader = tokio::spawn(read_loop(sock.clone(), self.pkt_tx.clone()));
                    self.rx.insert((ifname, ipv6), RxSocket { sock, reader });
                }
                Err(e) => error!("vrrp: {e}"),
            }
        }
    }

    /// Creates (or removes) the macvlans of instances with `virtual_mac`.
    async fn vmacs(&mut self) {
        let wanted: BTreeMap<String, Spec> = self
            .specs
            .values()
            .filter(|s| s.virtual_mac.is_some())
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        let gone: Vec<String> = self
            .vmacs
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for g in gone {
            if let Some(v) = self.vmacs.remove(&g) {
                let _ = self.net.del_link(v.index, &v.name).await;
            }
        }
        for (name, spec) in wanted {
            let Some(base) = self.links.get(&spec.interface).cloned() else {
                continue;
            };
            let Some(ifname) = spec.virtual_mac.clone() else {
                continue;
            };
            let mac = if spec.ipv6 {
                virtual_mac_v6(spec.vrid)
            } else {
                virtual_mac_v4(spec.vrid)
            };
            if self.vmacs.get(&name).is_some_and(|v| {
                v.name == ifname && self.links.get(&ifname).is_some_and(|l| l.index == v.index)
            }) {
                continue;
            }
            match self.net.ensure_macvlan(base.index, &ifname, mac).await {
                Ok(index) => {
                    // Only the macvlan answers ARP for the VIPs (with the virtual MAC), and
                    // the base interface never puts a VIP in its own ARP requests: otherwise
                    // neighbours learn the VIP at the base interface's MAC.
                    let conf = format!("/proc/sys/net/ipv4/conf/{}", spec.interface);
                    for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                        if let Err(e) = std::fs::write(format!("{conf}/{key}"), value) {
                            warn!(
                                "vrrp: {name}: cannot set {key} = {value} on {}: {e}",
                                spec.interface
                            );
                        }
                    }
                    let sock = if spec.ipv6 {
                        None
                    } else {
                        match VrrpSocket::open(&ifname, index, false, false) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                error!("vrrp: {name}: {e}");
                                None
                            }
                        }
                    };
                    info!("vrrp: {name}: virtual MAC {} on {ifname}", mac_text(&mac));
                    self.vmacs.insert(
                        name,
                        Vmac {
                            name: ifname,
                            index,
                            mac,
                            sock,
                        },
                    );
                }
                Err(e) => error!(
                    "vrrp: {name}: {e}; using {} without a virtual MAC",
                    spec.interface
                ),
            }
        }
    }

    /// Tells the router about interfaces whose state changed, and primaries that changed.
    async fn feed_links_and_primaries(&mut self) {
        for ifname in self.watched() {
            let up = self.links.get(&ifname).is_some_and(|l| l.carrier);
            if self.link_fed.get(&ifname) != Some(&up) {
                self.link_fed.insert(ifname.clone(), up);
                if !up {
                    info!("vrrp: interface {ifname} is down or missing");
                }
                self.step(Input::Link { ifname, up }).await;
            }
        }
        let vips = self.all_vips();
        let names: Vec<String> = self.specs.keys().cloned().collect();
        for name in names {
            let spec = &self.specs[&name];
            let p = self.primary(spec, &vips);
            if p != spec.primary {
                self.specs.get_mut(&name).expect("listed").primary = p;
                if self.router.instance(&name).is_some() {
                    self.step(Input::Primary {
                        instance: name,
                        addr: p,
                    })
                    .await;
                }
            }
        }
    }

    async fn configure(&mut self, config: &Config) {
        self.refresh().await;
        let vips: BTreeSet<IpAddr> = config
            .vrrp_instances
            .values()
            .flat_map(|i| i.vips.iter().map(|v| v.addr))
            .collect();
        let mut specs = BTreeMap::new();
        for i in config.vrrp_instances.values() {
            let mut s = Spec::from_config(i);
            s.primary = self.primary(&s, &vips);
            if s.primary.is_none() {
                warn!(
                    "vrrp: {}: no {} address on {} to send from (yet)",
                    s.name,
                    if s.ipv6 { "link-local IPv6" } else { "IPv4" },
                    s.interface
                );
            }
            specs.insert(s.name.clone(), s);
        }
        self.specs = specs;
        self.groups = config
            .sync_groups
            .values()
            .map(|g| (g.name.clone(), g.instances.clone()))
            .collect();
        self.sockets();
        self.vmacs().await;
        if !self.configured {
            self.configured = true;
            let names: Vec<String> = self.specs.keys().cloned().collect();
            for name in names {
                let resume = self.holds_all_vips(&self.specs[&name]);
                if resume {
                    info!("vrrp: {name}: its addresses are still configured: lbd restarted after dying as master");
                }
                self.specs.get_mut(&name).expect("listed").resume = resume;
            }
        }
        // Links first, so instances start in fault when their interface is down.
        for ifname in self.watched() {
            let up = self.links.get(&ifname).is_some_and(|l| l.carrier);
            if self.link_fed.get(&ifname) != Some(&up) {
                self.link_fed.insert(ifname.clone(), up);
                self.step(Input::Link { ifname, up }).await;
            }
        }
        let input = Input::Configure {
            instances: self.specs.values().cloned().collect(),
            sync_groups: self.groups.clone(),
        };
        self.step(input).await;
        info!(
            "vrrp: {} instance{} configured",
            self.specs.len(),
            if self.specs.len() == 1 { "" } else { "s" }
        );
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Link(l) => {
                let reopen = self.links.get(&l.name).map(|o| o.index) != Some(l.index);
                self.links.insert(l.name.clone(), l);
                if reopen {
                    self.sockets();
                }
            }
            Event::LinkGone(l) => {
                if self.links.get(&l.name).is_some_and(|o| o.index == l.index) {
                    self.links.remove(&l.name);
                    self.sockets();
                }
            }
            Event::Addresses => match self.net.addresses().await {
                Ok(a) => self.addrs = a,
                Err(e) => error!("vrrp: {e}"),
            },
        }
        self.feed_links_and_primaries().await;
    }

    async fn shutdown(&mut self) {
        self.step(Input::Shutdown).await;
        let drops = self.router.drops();
        if !drops.is_empty() {
            let list: Vec<String> = drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
            info!("vrrp: dropped packets by reason: {}", list.join(" "));
        }
        let vmacs: Vec<Vmac> = std::mem::take(&mut self.vmacs).into_values().collect();
        for v in vmacs {
            let _ = self.net.del_link(v.index, &v.name).await;
        }
    }
}

fn show(v: &[IpPrefix]) -> String {
    v.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
