//! The health board: every real's check state, each service's totals and quorum, kept from the
//! config and the checks' state changes, and published as a [`HealthReport`] for the reconciler,
//! the status API and VRRP. Pure: the engine feeds it and logs the [`Event`]s it returns.

use super::failure::Failure;
use super::hysteresis::{CheckState, Transition};
use super::quorum::{QuorumChange, QuorumState, QuorumTracker};
use crate::config::Config;
use crate::reconcile::{Health, RealHealth};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// Identity of a real: (service name, real address), as the reconciler keys it.
pub type RealKey = (String, SocketAddr);

/// One real's health as the checks see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RealStatus {
    pub state: CheckState,
    /// Whether the real has a check (one without is always up).
    pub checked: bool,
    /// Weight reported by the check (exec with `weight_from_exit`); `None`: the config's.
    pub weight: Option<u32>,
    /// The weight from the config.
    pub config_weight: u32,
    /// Why the real is down (the failure that brought it down); `None` while it serves.
    pub reason: Option<Failure>,
    /// When the state last changed (`None`: not since lbd started).
    pub since: Option<SystemTime>,
}

impl RealStatus {
    /// Whether traffic should go to it.
    pub fn serves(&self) -> bool {
        self.state.serves()
    }

    /// The weight it should have while it serves.
    pub fn effective_weight(&self) -> u32 {
        self.weight.unwrap_or(self.config_weight)
    }
}

/// A service's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceHealth {
    pub reals: BTreeMap<SocketAddr, RealStatus>,
    /// Reals that serve (up or not yet checked).
    pub reals_up: usize,
    /// Sum of their effective weights.
    pub up_weight: u64,
    /// `None` when the service has no quorum setting.
    pub quorum: Option<QuorumState>,
    /// The sorry server, if configured.
    pub sorry: Option<SocketAddr>,
    /// The VRRP instance holding the service's VIP, whose priority a lost quorum lowers.
    pub vrrp_instance: Option<String>,
}

impl ServiceHealth {
    /// No real serves (and there is at least one): the reconciler puts the sorry server in.
    pub fn all_down(&self) -> bool {
        !self.reals.is_empty() && self.reals_up == 0
    }

    pub fn quorum_up(&self) -> bool {
        self.quorum.is_none_or(|q| q.up)
    }
}

/// What the checks say, published after every change. Services are shared between reports
/// (copy on write), so publishing after a change copies only the service that changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    #[serde(serialize_with = "serialize_services")]
    pub services: BTreeMap<String, Arc<ServiceHealth>>,
}

fn serialize_services<S: serde::Serializer>(
    m: &BTreeMap<String, Arc<ServiceHealth>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k, &**v)))
}

impl HealthReport {
    pub fn real(&self, service: &str, addr: &SocketAddr) -> Option<&RealStatus> {
        self.services.get(service)?.reals.get(addr)
    }

    /// Up/down per real for [`crate::reconcile::desired`]: down reals only (a real not in the
    /// map is up, and `Unknown` serves).
    pub fn real_health(&self) -> RealHealth {
        let mut out = RealHealth::default();
        for (svc, s) in &self.services {
            for (addr, r) in &s.reals {
                if !r.serves() {
                    out.0.insert((svc.clone(), *addr), Health::Down);
                }
            }
        }
        out
    }

    /// Weights the checks set (exec `weight_from_exit`), per real. The reconciler applies them
    /// like runtime weight overrides; an operator's override should win over them.
    pub fn weights(&self) -> BTreeMap<RealKey, u32> {
        let mut out = BTreeMap::new();
        for (svc, s) in &self.services {
            for (addr, r) in &s.reals {
                if let Some(w) = r.weight {
                    out.insert((svc.clone(), *addr), w);
                }
            }
        }
        out
    }

    /// Per VRRP instance named by a service: whether one of its services lost its quorum
    /// (what VRRP's `quorum_priority_drop` acts on).
    pub fn instance_quorum_lost(&self) -> BTreeMap<String, bool> {
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for s in self.services.values() {
            if let Some(i) = &s.vrrp_instance {
                *out.entry(i.clone()).or_default() |= !s.quorum_up();
            }
        }
        out
    }

    /// Services that lost their quorum.
    pub fn quorum_lost(&self) -> Vec<&str> {
        self.services
            .iter()
            .filter(|(_, s)| !s.quorum_up())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Something worth one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A real changed state.
    Real {
        service: String,
        addr: SocketAddr,
        transition: Transition,
    },
    /// A check set a real's weight.
    Weight {
        service: String,
        addr: SocketAddr,
        from: Option<u32>,
        to: Option<u32>,
    },
    Quorum {
        service: String,
        change: QuorumChange,
        min_weight: u32,
    },
    /// No real of the service serves any more (`true`) or one serves again (`false`).
    AllDown {
        service: String,
        down: bool,
        sorry: Option<SocketAddr>,
    },
}

impl Event {
    /// Whether the event is bad news (logged as a warning).
    pub fn is_warning(&self) -> bool {
        match self {
            Event::Real { transition, .. } => transition.to == CheckState::Down,
            Event::Weight { .. } => false,
            Event::Quorum { change, .. } => !change.up,
            Event::AllDown { down, .. } => *down,
        }
    }

    /// Whether the event only confirms what was assumed (a first check that passed).
    pub fn is_routine(&self) -> bool {
        matches!(self, Event::Real { transition, .. }
            if transition.from == CheckState::Unknown && transition.to == CheckState::Up)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Event::Real {
                service,
                addr,
                transition: t,
            } => {
                let runs =
                    |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
                match (t.from, t.to, &t.reason) {
                    (CheckState::Unknown, CheckState::Up, _) => {
                        write!(f, "real {addr} of service {service} is up (first check)")
                    }
                    (CheckState::Unknown, CheckState::Down, Some(r)) => write!(
                        f,
                        "real {addr} of service {service} is down: {r} (first check)"
                    ),
                    (_, CheckState::Down, Some(r)) => write!(
                        f,
                        "real {addr} of service {service} is down: {r} (after {})",
                        runs(t.after, "failed check")
                    ),
                    (_, CheckState::Up, _) => write!(
                        f,
                        "real {addr} of service {service} is up again (after {})",
                        runs(t.after, "successful check")
                    ),
                    (from, to, _) => {
                        write!(f, "real {addr} of service {service}: {from} -> {to}")
                    }
                }
            }
            Event::Weight {
                service,
                addr,
                from,
                to,
            } => {
                let w =
                    |x: &Option<u32>| x.map_or("the configured weight".into(), |w| w.to_string());
                write!(
                    f,
                    "real {addr} of service {service}: check sets weight {} (was {})",
                    w(to),
                    w(from)
                )
            }
            Event::Quorum {
                service,
                change,
                min_weight,
            } => {
                if change.up {
                    write!(
                        f,
                        "service {service} regained its quorum: up weight {} reached {}",
                        change.up_weight, change.threshold
                    )
                } else {
                    write!(
                        f,
                        "service {service} lost its quorum: up weight {} is below {min_weight}",
                        change.up_weight
                    )
                }
            }
            Event::AllDown {
                service,
                down,
                sorry,
            } => match (down, sorry) {
                (true, Some(s)) => write!(
                    f,
                    "service {service}: no real is up; sorry server {s} takes the traffic"
                ),
                (true, None) => write!(
                    f,
                    "service {service}: no real is up and there is no sorry server"
                ),
                (false, _) => write!(f, "service {service}: a real serves again"),
            },
        }
    }
}

#[derive(Clone, Debug)]
struct ServiceBook {
    health: Arc<ServiceHealth>,
    quorum: Option<QuorumTracker>,
    all_down: bool,
}

/// The board.
#[derive(Clone, Debug, Default)]
pub struct HealthBoard {
    services: BTreeMap<String, ServiceBook>,
}

impl HealthBoard {
    pub fn new() -> HealthBoard {
        HealthBoard::default()
    }

    /// Takes a (new) config: services and reals it no longer has are forgotten, new ones start
    /// unknown, and the states of the others are kept (a real whose check was removed serves
    /// from now on).
    pub fn configure(&mut self, config: &Config, now: SystemTime) -> Vec<Event> {
        let mut old = std::mem::take(&mut self.services);
        let mut events = Vec::new();
        for (name, svc) in config.services.iter() {
            let prev = old.remove(name);
            let mut reals = BTreeMap::new();
            for real in &svc.reals {
                let kept = prev.as_ref().and_then(|p| p.health.reals.get(&real.addr));
                let mut status = RealStatus {
                    state: CheckState::Unknown,
                    checked: real.check.is_some(),
                    weight: None,
                    config_weight: real.weight,
                    reason: None,
                    since: None,
                };
                if let (Some(k), true) = (kept, real.check.is_some()) {
                    status.state = k.state;
                    status.weight = k.weight;
                    status.reason = k.reason.clone();
                    status.since = k.since;
                } else if kept.is_some_and(|k| k.state == CheckState::Down) {
                    status.since = Some(now);
                }
                reals.insert(real.addr, status);
            }
            let quorum = match (svc.quorum, prev.as_ref().and_then(|p| p.quorum.clone())) {
                (Some(q), Some(mut t)) => {
                    t.reconfigure(q);
                    Some(t)
                }
                (Some(q), None) => Some(QuorumTracker::new(q)),
                (None, _) => None,
            };
            let book = ServiceBook {
                health: Arc::new(ServiceHealth {
                    reals,
                    reals_up: 0,
                    up_weight: 0,
                    quorum: None,
                    sorry: svc.sorry.as_ref().map(|s| s.addr),
                    vrrp_instance: svc.vrrp_instance.clone(),
                }),
                quorum,
                all_down: prev.as_ref().is_some_and(|p| p.all_down),
            };
            self.services.insert(name.clone(), book);
            self.evaluate(name, &mut events);
        }
        events
    }

    /// Records what a check reported for a real; returns what is worth logging.
    pub fn record(
        &mut self,
        service: &str,
        addr: SocketAddr,
        transition: Option<Transition>,
        weight_change: Option<(Option<u32>, Option<u32>)>,
        now: SystemTime,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(book) = self.services.get_mut(service) else {
            return events;
        };
        if !book.health.reals.contains_key(&addr) {
            return events;
        }
        let Some(real) = Arc::make_mut(&mut book.health).reals.get_mut(&addr) else {
            return events;
        };
        if let Some((from, to)) = weight_change {
            real.weight = to;
            events.push(Event::Weight {
                service: service.to_string(),
                addr,
                from,
                to,
            });
        }
        if let Some(t) = transition {
            real.state = t.to;
            real.reason = if t.to == CheckState::Down {
                t.reason.clone()
            } else {
                None
            };
            real.since = Some(now);
            events.push(Event::Real {
                service: service.to_string(),
                addr,
                transition: t,
            });
        }
        if !events.is_empty() {
            self.evaluate(service, &mut events);
        }
        events
    }

    /// The state of a real (for resuming a check after a reload).
    pub fn real(&self, service: &str, addr: &SocketAddr) -> Option<&RealStatus> {
        self.services.get(service)?.health.reals.get(addr)
    }

    pub fn report(&self) -> HealthReport {
        HealthReport {
            services: self
                .services
                .iter()
                .map(|(n, b)| (n.clone(), b.health.clone()))
                .collect(),
        }
    }

    /// Recomputes a service's totals, quorum and all-down flag.
    fn evaluate(&mut self, service: &str, events: &mut Vec<Event>) {
        let Some(book) = self.services.get_mut(service) else {
            return;
        };
        let h = Arc::make_mut(&mut book.health);
        h.reals_up = h.reals.values().filter(|r| r.serves()).count();
        h.up_weight = h
            .reals
            .values()
            .filter(|r| r.serves())
            .map(|r| u64::from(r.effective_weight()))
            .sum();
        if let Some(q) = &mut book.quorum {
            if let Some(change) = q.update(h.up_weight) {
                events.push(Event::Quorum {
                    service: service.to_string(),
                    change,
                    min_weight: q.state().min_weight,
                });
            }
            h.quorum = Some(q.state());
        } else {
            h.quorum = None;
        }
        let all_down = h.all_down();
        if all_down != book.all_down {
            book.all_down = all_down;
            events.push(Event::AllDown {
                service: service.to_string(),
                down: all_down,
                sorry: h.sorry,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    const CFG: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]

[service.web]
vip = "192.0.2.10:80"
scheduler = "wrr"
forwarding = "dr"
sorry_server = "10.1.0.99:80"
quorum = { min_weight = 3, hysteresis = 1 }
check = { type = "tcp", interval = "1s", rise = 2, fall = 2 }

[[service.web.real]]
address = "10.1.0.11:80"
weight = 2

[[service.web.real]]
address = "10.1.0.12:80"
weight = 2

[[service.web.real]]
address = "10.1.0.13:80"
weight = 1
check = { type = "none" }
"#;

    fn cfg(text: &str) -> Config {
        config::parse("t.toml", text).unwrap().config
    }

    fn down(reason: Failure) -> Option<Transition> {
        Some(Transition {
            from: CheckState::Up,
            to: CheckState::Down,
            reason: Some(reason),
            after: 2,
        })
    }

    fn up() -> Option<Transition> {
        Some(Transition {
            from: CheckState::Down,
            to: CheckState::Up,
            reason: None,
            after: 2,
        })
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn totals_quorum_and_all_down_follow_the_reals() {
        let t = SystemTime::UNIX_EPOCH;
        let mut b = HealthBoard::new();
        assert_eq!(b.configure(&cfg(CFG), t), vec![]);
        let r = b.report();
        let web = &r.services["web"];
        assert_eq!((web.reals_up, web.up_weight), (3, 5));
        assert!(web.quorum_up());
        assert!(!web.reals[&a("10.1.0.13:80")].checked);
        assert_eq!(r.real_health(), RealHealth::default());

        // .11 down: weight 3 left = min → quorum kept.
        let ev = b.record("web", a("10.1.0.11:80"), down(Failure::Refused), None, t);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].to_string(),
            "real 10.1.0.11:80 of service web is down: connection refused (after 2 failed checks)"
        );
        assert!(ev[0].is_warning());
        // .12 down: weight 1 < 3 → quorum lost.
        let ev = b.record(
            "web",
            a("10.1.0.12:80"),
            down(Failure::BadStatus(503)),
            None,
            t,
        );
        assert_eq!(
            ev.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "real 10.1.0.12:80 of service web is down: bad status 503 (after 2 failed checks)",
                "service web lost its quorum: up weight 1 is below 3",
            ]
        );
        let r = b.report();
        assert_eq!(r.quorum_lost(), ["web"]);
        assert_eq!(
            r.instance_quorum_lost(),
            BTreeMap::from([("V".to_string(), true)])
        );
        assert_eq!(
            r.real("web", &a("10.1.0.12:80")).unwrap().reason,
            Some(Failure::BadStatus(503))
        );
        let h = r.real_health();
        assert_eq!(h.get("web", &a("10.1.0.11:80")), Health::Down);
        assert_eq!(h.get("web", &a("10.1.0.13:80")), Health::Up);
        // .11 back: weight 3 = min, but regaining needs min + hysteresis = 4.
        let ev = b.record("web", a("10.1.0.11:80"), up(), None, t);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].to_string(),
            "real 10.1.0.11:80 of service web is up again (after 2 successful checks)"
        );
        let ev = b.record("web", a("10.1.0.12:80"), up(), None, t);
        assert_eq!(
            ev[1].to_string(),
            "service web regained its quorum: up weight 5 reached 4"
        );
    }

    #[test]
    fn all_down_names_the_sorry_server_once() {
        let t = SystemTime::UNIX_EPOCH;
        let text = CFG.replace("check = { type = \"none\" }", "");
        let mut b = HealthBoard::new();
        b.configure(&cfg(&text), t);
        let mut all = Vec::new();
        for real in ["10.1.0.11:80", "10.1.0.12:80", "10.1.0.13:80"] {
            all.extend(b.record("web", a(real), down(Failure::Refused), None, t));
        }
        let all_down: Vec<String> = all
            .iter()
            .filter(|e| matches!(e, Event::AllDown { .. }))
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            all_down,
            ["service web: no real is up; sorry server 10.1.0.99:80 takes the traffic"]
        );
        assert!(b.report().services["web"].all_down());
        let ev = b.record("web", a("10.1.0.13:80"), up(), None, t);
        assert!(ev.contains(&Event::AllDown {
            service: "web".into(),
            down: false,
            sorry: Some(a("10.1.0.99:80"))
        }));
    }

    #[test]
    fn weights_from_checks_count_for_quorum_and_are_published() {
        let t = SystemTime::UNIX_EPOCH;
        let mut b = HealthBoard::new();
        b.configure(&cfg(CFG), t);
        let ev = b.record("web", a("10.1.0.11:80"), None, Some((None, Some(0))), t);
        assert_eq!(
            ev[0].to_string(),
            "real 10.1.0.11:80 of service web: check sets weight 0 (was the configured weight)"
        );
        let r = b.report();
        assert_eq!(r.services["web"].up_weight, 3);
        assert_eq!(r.weights()[&("web".to_string(), a("10.1.0.11:80"))], 0);
    }

    #[test]
    fn reload_keeps_states_of_kept_reals_and_forgets_removed_ones() {
        let t = SystemTime::UNIX_EPOCH;
        let mut b = HealthBoard::new();
        b.configure(&cfg(CFG), t);
        b.record("web", a("10.1.0.11:80"), down(Failure::Refused), None, t);
        b.record("web", a("10.1.0.12:80"), down(Failure::Refused), None, t);
        // Reload: .12 removed, .14 added, quorum lowered so the service has it again.
        let text = CFG
            .replace("10.1.0.12:80", "10.1.0.14:80")
            .replace("min_weight = 3", "min_weight = 2");
        let ev = b.configure(&cfg(&text), t);
        let r = b.report();
        let web = &r.services["web"];
        assert_eq!(web.reals[&a("10.1.0.11:80")].state, CheckState::Down);
        assert_eq!(web.reals[&a("10.1.0.14:80")].state, CheckState::Unknown);
        assert!(!web.reals.contains_key(&a("10.1.0.12:80")));
        assert_eq!(web.up_weight, 3);
        assert_eq!(
            ev.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["service web regained its quorum: up weight 3 reached 3"]
        );
        // A report serializes to JSON for the status API.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["services"]["web"]["reals"]["10.1.0.11:80"]["reason"]["kind"],
            "refused"
        );
    }
}
