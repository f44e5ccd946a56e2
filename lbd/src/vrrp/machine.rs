//! One virtual router's state machine, RFC 3768 6 / RFC 5798 6. Pure: the caller passes the
//! time and gets actions back; nothing here reads a clock or touches a socket.
//!
//! Times are [`Duration`]s since an origin the runtime chooses (its start); a timer armed for
//! `at` fires as an input carrying `at`'s instance. When a timer fires, its *deadline* is the
//! event's time: the advertisement timer is re-armed one interval after the previous deadline
//! (not after a late wake-up), so a master that wakes a few milliseconds late keeps its
//! cadence instead of drifting towards the backup's master-down time.
//!
//! Timers (RFC 5798 6.1, RFC 3768 6.1), with `p` the local priority:
//! - v3 `Skew_Time = ((256 - p) * Master_Adver_Interval) / 256`, computed in nanoseconds and
//!   rounded down (the RFC's centisecond unit would round 60.9375 cs to 60 cs and make pairs
//!   with close priorities collide);
//! - v2 `Skew_Time = (256 - p) / 256` seconds, whatever the interval;
//! - `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`, where v3 learns
//!   `Master_Adver_Interval` from the master's advertisements and v2 uses its own interval.
//!
//! Preemption delay (not in the RFCs; keepalived's meaning): a backup that would preempt a
//! lower-priority master first accepts that master's advertisements for `preempt_delay`
//! after it first saw one, then discards them, so it takes over one master-down interval
//! later.

use super::packet::{Advert, Auth, Version};
use crate::config::{IpPrefix, VrrpInstance};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What one instance is configured with, plus its primary address (found by the runtime).
/// Mirrors [`VrrpInstance`] with `Deserialize`, so recorded runs can be replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: Version,
    pub ipv6: bool,
    /// 1–254, or 255 for the address owner.
    pub priority: u8,
    /// What this router advertises while master.
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub vips: Vec<IpPrefix>,
    /// Empty: multicast.
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_source: Option<IpAddr>,
    pub auth_pass: Option<String>,
    pub track_interfaces: Vec<String>,
    /// The macvlan carrying the RFC virtual MAC, when used.
    pub virtual_mac: Option<String>,
    pub accept: bool,
    pub garp_count: u32,
    pub garp_repeat_after: Duration,
    pub quorum_priority_drop: u8,
    /// Source address of our advertisements and the tie-breaker between equal priorities
    /// (v4: `unicast_source` or the interface's first address; v6: its link-local address).
    /// `None` (no address yet) faults the instance.
    pub primary: Option<IpAddr>,
    /// Every address of this router was on its interface when lbd started: the previous lbd
    /// died while master (an orderly stop releases them). The runtime's to fill in, at start
    /// only. See [`Instance::start`].
    #[serde(default)]
    pub resume: bool,
}

impl Spec {
    /// From the validated config; `primary` is the runtime's to fill in.
    pub fn from_config(i: &VrrpInstance) -> Spec {
        Spec {
            name: i.name.clone(),
            interface: i.interface.clone(),
            vrid: i.vrid,
            version: i.version.into(),
            ipv6: i.family == crate::config::Family::Ipv6,
            priority: i.priority,
            advert_interval: i.advert_interval,
            preempt: i.preempt,
            preempt_delay: i.preempt_delay,
            vips: i.vips.clone(),
            unicast_peers: i.unicast_peers.clone(),
            unicast_source: i.unicast_source,
            auth_pass: i.auth_pass.clone(),
            track_interfaces: i.track_interfaces.clone(),
            virtual_mac: i.virtual_mac.clone(),
            accept: i.accept,
            garp_count: i.garp_count,
            garp_repeat_after: i.garp_repeat_after,
            quorum_priority_drop: i.quorum_priority_drop,
            primary: None,
            resume: false,
        }
    }

    /// Fields that make it another virtual router: changing them is a stop and a new start.
    pub fn same_router(&self, other: &Spec) -> bool {
        self.interface == other.interface
            && self.vrid == other.vrid
            && self.version == other.version
            && self.ipv6 == other.ipv6
    }

    /// The authentication we send and expect (v2).
    pub fn auth(&self) -> Auth {
        match (&self.auth_pass, self.version) {
            (Some(p), Version::V2) => Auth::simple(p),
            _ => Auth::None,
        }
    }
}

/// RFC 5798 6.4 states, plus Fault (a link or tracked interface is down, no address, or
/// health quorum says so): no advertisements, no addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timers of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Master: send the next advertisement.
    Adver,
    /// Backup: the master is presumed dead.
    MasterDown,
    /// Master: repeat the gratuitous ARP / NA burst once.
    GarpRepeat,
}

/// Why an instance is in Fault.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FaultReason {
    /// The instance's interface or a tracked interface is down (or missing).
    InterfaceDown(String),
    /// The interface has no usable address to send from.
    NoAddress,
    /// Health quorum lost and `quorum_priority_drop` would take the priority to 0.
    Quorum,
    /// Another member of the sync group is in fault.
    Group(String),
}

impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            FaultReason::InterfaceDown(i) => write!(f, "interface {i} down"),
            FaultReason::NoAddress => f.write_str("no address to send from"),
            FaultReason::Quorum => f.write_str("health quorum lost"),
            FaultReason::Group(m) => write!(f, "sync group member {m} in fault"),
        }
    }
}

/// Why a transition happened (logged, and the sync-group logic tells own and forced ones
/// apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Why {
    /// Initialize → Backup.
    Startup,
    /// Priority 255: the owner is master from the start.
    Owner,
    /// lbd restarted after dying as master, with the addresses still held.
    Resumed,
    /// Master_Down_Timer fired (master silent, or it sent priority 0 and skew time passed).
    MasterDown,
    /// A master saw a better advertisement.
    Preempted {
        by: IpAddr,
        priority: u8,
    },
    /// The sync group followed a member.
    Group {
        member: String,
    },
    Fault(FaultReason),
    Shutdown,
    /// The instance left the config, or changed into another router.
    Removed,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Why::Startup => f.write_str("startup"),
            Why::Owner => f.write_str("address owner (priority 255)"),
            Why::Resumed => f.write_str("restarted while holding the addresses"),
            Why::MasterDown => f.write_str("master down"),
            Why::Preempted { by, priority } => {
                write!(f, "{by} advertises priority {priority}")
            }
            Why::Group { member } => write!(f, "sync group follows {member}"),
            Why::Fault(r) => write!(f, "fault: {r}"),
            Why::Shutdown => f.write_str("shutdown"),
            Why::Removed => f.write_str("removed from the config"),
        }
    }
}

/// What the runtime must do. Actions of one step are executed in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Send this advertisement (multicast, or to each unicast peer) from the primary address.
    Send {
        instance: String,
        advert: Advert,
    },
    /// Add these addresses (idempotent).
    AddVips {
        instance: String,
        vips: Vec<IpPrefix>,
    },
    /// Remove these addresses (idempotent: absent ones are fine).
    RemoveVips {
        instance: String,
        vips: Vec<IpPrefix>,
    },
    /// Gratuitous ARP / unsolicited NA: `count` rounds for these addresses.
    Announce {
        instance: String,
        vips: Vec<IpPrefix>,
        count: u32,
    },
    /// (Re)arm a timer to fire at `at`; replaces an armed one.
    ArmTimer {
        instance: String,
        timer: Timer,
        at: Duration,
    },
    CancelTimer {
        instance: String,
        timer: Timer,
    },
    /// A state change, for logs, status and the connection-sync role.
    State {
        instance: String,
        from: State,
        to: State,
        why: Why,
        priority: u8,
    },
    /// A received packet was dropped; `count` is the node's total for this reason.
    Dropped {
        instance: Option<String>,
        ifname: String,
        src: IpAddr,
        reason: super::packet::DropReason,
        detail: String,
        count: u64,
    },
    /// A peer advertises another interval or address list than ours (logged once per change).
    PeerMismatch {
        instance: String,
        src: IpAddr,
        detail: String,
    },
    /// The master is down as this instance sees it, but a member of its sync group still
    /// hears one: it stays backup (for logs).
    GroupWait {
        instance: String,
        member: String,
    },
}

/// One virtual router.
#[derive(Clone, Debug)]
pub struct Instance {
    spec: Spec,
    state: State,
    master_adver_interval: Duration,
    quorum_lost: bool,
    timers: BTreeMap<Timer, Duration>,
    /// When a lower-priority master was first seen (preempt delay).
    preempt_seen: Option<Duration>,
    /// The addresses we asked the runtime to add.
    holding: Vec<IpPrefix>,
    /// Source of the last accepted advertisement while backup.
    master: Option<IpAddr>,
    /// The first start resumes mastership ([`Spec::resume`]); spent by it.
    resume: bool,
    /// When another master (lower, or resigning) last made us announce the addresses again.
    rival_announced: Option<Duration>,
}

impl Instance {
    pub fn new(spec: Spec) -> Instance {
        Instance {
            resume: spec.resume,
            master_adver_interval: spec.advert_interval,
            spec,
            state: State::Initialize,
            quorum_lost: false,
            timers: BTreeMap::new(),
            preempt_seen: None,
            holding: Vec::new(),
            master: None,
            rival_announced: None,
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The interval a backup times the master with (learned from it in v3).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// The armed timers and their deadlines.
    pub fn timers(&self) -> &BTreeMap<Timer, Duration> {
        &self.timers
    }

    /// The current master as seen from a backup.
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    pub fn set_primary(&mut self, addr: Option<IpAddr>) {
        self.spec.primary = addr;
    }

    pub fn set_quorum_lost(&mut self, lost: bool) {
        self.quorum_lost = lost;
    }

    /// The priority we advertise and compare with: the configured one, lowered by
    /// `quorum_priority_drop` while the health quorum is lost.
    pub fn priority(&self) -> u8 {
        if self.quorum_lost {
            self.spec
                .priority
                .saturating_sub(self.spec.quorum_priority_drop)
        } else {
            self.spec.priority
        }
    }

    /// Health quorum lost and the drop takes the priority to 0: the instance cannot serve.
    pub fn quorum_fault(&self) -> bool {
        self.quorum_lost && self.spec.quorum_priority_drop > 0 && self.priority() == 0
    }

    /// RFC `Skew_Time` for the current priority (see the module doc for units).
    pub fn skew_time(&self) -> Duration {
        let p = u64::from(self.priority().max(1));
        match self.spec.version {
            Version::V2 => Duration::from_nanos((256 - p) * 1_000_000_000 / 256),
            Version::V3 => {
                let ns = self.master_adver_interval.as_nanos() * u128::from(256 - p) / 256;
                Duration::from_nanos(ns as u64)
            }
        }
    }

    /// RFC `Master_Down_Interval`.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_interval + self.skew_time()
    }

    fn name_owned(&self) -> String {
        self.spec.name.clone()
    }

    /// The advertisement this router sends with `priority`.
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.spec.version,
            vrid: self.spec.vrid,
            priority,
            interval: self.spec.advert_interval,
            addrs: self.spec.vips.iter().map(|v| v.addr).collect(),
            auth: self.spec.auth(),
        }
    }

    fn arm(&mut self, out: &mut Vec<Action>, timer: Timer, at: Duration) {
        self.timers.insert(timer, at);
        out.push(Action::ArmTimer {
            instance: self.name_owned(),
            timer,
            at,
        });
    }

    fn cancel(&mut self, out: &mut Vec<Action>, timer: Timer) {
        if self.timers.remove(&timer).is_some() {
            out.push(Action::CancelTimer {
                instance: self.name_owned(),
                timer,
            });
        }
    }

    fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for t in [Timer::Adver, Timer::MasterDown, Timer::GarpRepeat] {
            self.cancel(out, t);
        }
    }

    fn transition(&mut self, out: &mut Vec<Action>, to: State, why: Why) {
        let from = self.state;
        self.state = to;
        out.push(Action::State {
            instance: self.name_owned(),
            from,
            to,
            why,
            priority: self.priority(),
        });
    }

    fn send(&self, out: &mut Vec<Action>, priority: u8) {
        out.push(Action::Send {
            instance: self.name_owned(),
            advert: self.advert(priority),
        });
    }

    fn release_vips(&mut self, out: &mut Vec<Action>, all: bool) {
        let vips = if all {
            self.spec.vips.clone()
        } else {
            std::mem::take(&mut self.holding)
        };
        self.holding.clear();
        if !vips.is_empty() {
            out.push(Action::RemoveVips {
                instance: self.name_owned(),
                vips,
            });
        }
    }

    fn announce(&self, out: &mut Vec<Action>, vips: Vec<IpPrefix>) {
        if self.spec.garp_count > 0 && !vips.is_empty() {
            out.push(Action::Announce {
                instance: self.name_owned(),
                vips,
                count: self.spec.garp_count,
            });
        }
    }

    /// RFC 6.4.1: Initialize → Master (owner) or Backup. Removes the addresses first when
    /// going to Backup: a previous run may have died holding them.
    ///
    /// Not in the RFC: when lbd died as master and was restarted within the peer's
    /// master-down interval, going to Backup would hand the VIP to the peer and take it back
    /// (two moves, each a gap for new connections). So the first start after such a death
    /// ([`Spec::resume`]) goes straight to Master, if this router may preempt at once anyway:
    /// a peer that took over meanwhile steps down at our first advertisement, as it would
    /// when we preempt from Backup; a better peer makes us Backup at its next one.
    pub fn start(&mut self, now: Duration, out: &mut Vec<Action>) {
        let resume = std::mem::take(&mut self.resume);
        if self.priority() == 255 {
            self.become_master(now, Why::Owner, out);
        } else if resume && self.spec.preempt && self.spec.preempt_delay.is_zero() {
            self.become_master(now, Why::Resumed, out);
        } else {
            self.transition(out, State::Backup, Why::Startup);
            self.release_vips(out, true);
            self.master_adver_interval = self.spec.advert_interval;
            self.preempt_seen = None;
            self.master = None;
            let at = now + self.master_down_interval();
            self.arm(out, Timer::MasterDown, at);
        }
    }

    /// Send an advertisement, take the addresses, announce them, start advertising.
    pub fn become_master(&mut self, now: Duration, why: Why, out: &mut Vec<Action>) {
        self.cancel(out, Timer::MasterDown);
        self.transition(out, State::Master, why);
        self.send(out, self.priority());
        self.holding = self.spec.vips.clone();
        out.push(Action::AddVips {
            instance: self.name_owned(),
            vips: self.holding.clone(),
        });
        self.announce(out, self.holding.clone());
        self.arm(out, Timer::Adver, now + self.spec.advert_interval);
        if self.spec.garp_count > 0 && !self.spec.garp_repeat_after.is_zero() {
            self.arm(out, Timer::GarpRepeat, now + self.spec.garp_repeat_after);
        }
        self.preempt_seen = None;
        self.master = None;
    }

    /// Another master held (or holds) our addresses: announce them again, at most once per
    /// master-down interval, so a rival's repeated adverts do not become a GARP storm; and
    /// once more an advert interval later. The rival announced the addresses a few
    /// milliseconds after its first advert, which is what we answer: its gratuitous ARPs can
    /// reach the neighbours after ours, and it stops sending them once it hears us, so the
    /// second burst is the last word.
    fn announce_for_rival(&mut self, now: Duration, out: &mut Vec<Action>) {
        let quiet = self.master_down_interval();
        if self
            .rival_announced
            .is_none_or(|t| now.saturating_sub(t) >= quiet)
        {
            self.rival_announced = Some(now);
            self.announce(out, self.holding.clone());
            if self.spec.garp_count > 0 {
                self.arm(out, Timer::GarpRepeat, now + self.spec.advert_interval);
            }
        }
    }

    /// Master → Backup, timing the new master with `master_interval`. With `resign`, first
    /// a priority-0 advertisement so a peer that is backup for this router takes over after
    /// its skew time instead of a whole master-down interval (a sync group forcing a master
    /// down), or so a better master announces the addresses again (preempted).
    pub fn become_backup(
        &mut self,
        now: Duration,
        why: Why,
        master_interval: Duration,
        resign: bool,
        out: &mut Vec<Action>,
    ) {
        let was = self.state;
        self.cancel(out, Timer::Adver);
        self.cancel(out, Timer::GarpRepeat);
        self.transition(out, State::Backup, why);
        if resign && was == State::Master {
            self.send(out, 0);
        }
        self.release_vips(out, false);
        self.master_adver_interval = master_interval;
        self.arm(out, Timer::MasterDown, now + self.master_down_interval());
    }

    /// Any state → Fault: a master says priority 0 first (best effort: the link may be down),
    /// addresses go, timers stop.
    pub fn enter_fault(&mut self, _now: Duration, reason: FaultReason, out: &mut Vec<Action>) {
        let was = self.state;
        self.cancel_all(out);
        self.transition(out, State::Fault, Why::Fault(reason));
        if was == State::Master {
            self.send(out, 0);
        }
        self.release_vips(out, was == State::Initialize);
        self.master = None;
    }

    /// Fault → Initialize → Backup (or Master for the owner).
    pub fn leave_fault(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.start(now, out);
    }

    /// RFC 6.4.2/6.4.3 "Shutdown": a master sends priority 0 and releases its addresses.
    pub fn shutdown(&mut self, why: Why, out: &mut Vec<Action>) {
        if self.state == State::Initialize {
            return;
        }
        let was = self.state;
        self.cancel_all(out);
        self.transition(out, State::Initialize, why);
        if was == State::Master {
            self.send(out, 0);
        }
        self.release_vips(out, false);
        self.master = None;
    }

    /// A timer fired. Stale firings (cancelled or re-armed since) are ignored.
    pub fn on_timer(&mut self, now: Duration, timer: Timer, out: &mut Vec<Action>) {
        let Some(&at) = self.timers.get(&timer) else {
            return;
        };
        if at > now {
            return;
        }
        self.timers.remove(&timer);
        match (timer, self.state) {
            (Timer::MasterDown, State::Backup) => self.become_master(at, Why::MasterDown, out),
            (Timer::Adver, State::Master) => {
                self.send(out, self.priority());
                let mut next = at + self.spec.advert_interval;
                if next <= now {
                    // Woken more than an interval late: do not send a burst to catch up.
                    next = now + self.spec.advert_interval;
                }
                self.arm(out, Timer::Adver, next);
            }
            (Timer::GarpRepeat, State::Master) => self.announce(out, self.holding.clone()),
            _ => {}
        }
    }

    /// Master-down while a sync group member still hears a master: stay backup and look
    /// again a master-down interval later (keepalived's `vrrp_sync_can_goto_master`).
    pub fn wait_for_group(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state == State::Backup {
            let at = now + self.master_down_interval();
            self.arm(out, Timer::MasterDown, at);
        }
    }

    /// Whether the master-down timer is due at `now` (the router asks before `on_timer`).
    pub fn master_down_due(&self, now: Duration) -> bool {
        self.state == State::Backup
            && self
                .timers
                .get(&Timer::MasterDown)
                .is_some_and(|at| *at <= now)
    }

    /// A valid advertisement for this router (checked by the node) from `src`.
    pub fn on_advert(&mut self, now: Duration, src: IpAddr, adv: &Advert, out: &mut Vec<Action>) {
        match self.state {
            State::Backup => {
                if adv.priority == 0 {
                    // RFC 6.4.2: the master resigned; take over after skew time only.
                    let at = now + self.skew_time();
                    self.arm(out, Timer::MasterDown, at);
                    return;
                }
                let ours = self.priority();
                let preempt = self.spec.preempt || ours == 255;
                let mut accept = !preempt || adv.priority >= ours;
                if !accept && !self.spec.preempt_delay.is_zero() {
                    let since = *self.preempt_seen.get_or_insert(now);
                    accept = now < since + self.spec.preempt_delay;
                }
                if adv.priority >= ours {
                    self.preempt_seen = None;
                }
                if accept {
                    if self.spec.version == Version::V3 {
                        self.master_adver_interval = adv.interval;
                    }
                    self.master = Some(src);
                    let at = now + self.master_down_interval();
                    self.arm(out, Timer::MasterDown, at);
                }
                // else: discard, so Master_Down_Timer fires and we preempt.
            }
            State::Master => {
                let ours = self.priority();
                if adv.priority == 0 {
                    // RFC 6.4.3: answer at once so backups do not take over after skew time.
                    // Only a master resigns, so the sender held the addresses until now (a
                    // healed partition whose other side heard us first, or a preempted
                    // master): the neighbours may still send to its MAC.
                    self.send(out, ours);
                    self.arm(out, Timer::Adver, now + self.spec.advert_interval);
                    self.announce_for_rival(now, out);
                } else if adv.priority > ours
                    || (adv.priority == ours && self.spec.primary.is_some_and(|p| greater(src, p)))
                {
                    let interval = match self.spec.version {
                        Version::V3 => adv.interval,
                        Version::V2 => self.spec.advert_interval,
                    };
                    // Resign (priority 0) on the way down, not in the RFC: when a partition
                    // heals and the better master's advert arrives here first, this side
                    // would otherwise go quiet, and the better one would never learn that
                    // the neighbours were sent to our MAC meanwhile.
                    self.become_backup(
                        now,
                        Why::Preempted {
                            by: src,
                            priority: adv.priority,
                        },
                        interval,
                        true,
                        out,
                    );
                    self.master = Some(src);
                } else {
                    // Another master below us: a split brain ending, or a peer that has not
                    // heard us yet. Answer at once so it backs off, and announce the addresses
                    // again (at most once per master-down interval): while it was master the
                    // neighbours learned its MAC, and stepping down it will not give them back.
                    self.send(out, ours);
                    self.arm(out, Timer::Adver, now + self.spec.advert_interval);
                    self.announce_for_rival(now, out);
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// Replaces the spec of the same router (see [`Spec::same_router`]): a master adds and
    /// removes the addresses that changed; everything else applies from the next
    /// advertisement or timer.
    pub fn update(&mut self, spec: Spec, out: &mut Vec<Action>) {
        let old = std::mem::replace(&mut self.spec, spec);
        if self.state == State::Master && old.vips != self.spec.vips {
            let gone: Vec<IpPrefix> = old
                .vips
                .iter()
                .filter(|v| !self.spec.vips.contains(v))
                .copied()
                .collect();
            let new: Vec<IpPrefix> = self
                .spec
                .vips
                .iter()
                .filter(|v| !old.vips.contains(v))
                .copied()
                .collect();
            if !gone.is_empty() {
                out.push(Action::RemoveVips {
                    instance: self.name_owned(),
                    vips: gone,
                });
            }
            if !new.is_empty() {
                out.push(Action::AddVips {
                    instance: self.name_owned(),
                    vips: new.clone(),
                });
                self.announce(out, new);
            }
            self.holding = self.spec.vips.clone();
        }
        if self.state == State::Backup && self.spec.version == Version::V2 {
            self.master_adver_interval = self.spec.advert_interval;
        }
    }
}

/// RFC 5798 6.4.3: "the primary IPvX Address of the sender is greater than the local
/// primary IPvX Address" — compared as unsigned integers in network byte order.
pub fn greater(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        _ => false,
    }
}
