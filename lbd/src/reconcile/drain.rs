//! Graceful removal: a real the config no longer lists stays in IPVS at weight 0 until its
//! connections are gone or `ipvs.removal_drain` has passed. IPVS drops the packets of an
//! established connection whose destination was deleted (`ip_vs_in`, with the default
//! `expire_nodest_conn = 0`), so an immediate delete would cut every connection to the real;
//! at weight 0 the scheduler gives it no new connections and the existing ones keep flowing.
//!
//! Pure: the clock (`now`) and the kernel's connection counts are passed in.
//!
//! - A destination drains when its service stays (same kernel identity) and the config lists
//!   it neither as a real nor as the sorry server. A real that health removes
//!   (`on_failure = "remove"`) is still listed, and leaves at once as the operator chose.
//! - A deleted service is not drained: deleting an IPVS service drops its connections anyway,
//!   so its drains are forgotten and the plan deletes the service as before.
//! - A drained real that comes back into the config is a normal real again: the plan restores
//!   its weight in place (no delete + add).
//! - After an lbd restart the adopted kernel table may hold such destinations (weight 0,
//!   draining when lbd stopped; or any weight, removed while lbd was down). lbd cannot know
//!   when their drain began, so they drain again with a fresh timeout: at worst a real stays
//!   at weight 0 one timeout longer, never are connections cut early.

use super::desired::Desired;
use super::kernel::{DestKey, DestSpec, KernelState};
use super::plan::Scope;
use crate::config::Config;
use crate::ipvs::msg::ServiceId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Active and inactive connections of a destination, as IPVS counts them.
pub type ConnCounts = BTreeMap<(ServiceId, DestKey), (u32, u32)>;

/// Why a drain ended with a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainEnd {
    /// No active and no inactive connections left.
    Empty,
    /// `removal_drain` passed first.
    TimedOut,
}

/// What changed about drains, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainEvent {
    /// The real left its service in the config: weight 0 from now on.
    Started {
        service: String,
        real: DestKey,
        timeout: Duration,
    },
    /// The real is listed again: a normal real with its weight.
    Readded { service: String, real: DestKey },
    /// To be deleted now.
    Ended {
        service: String,
        real: DestKey,
        why: DrainEnd,
        after: Duration,
        active: u32,
        inactive: u32,
    },
}

/// One draining destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    /// The config name of its service (for messages and status).
    pub service: String,
    pub started: Instant,
    /// What lbd wants the kernel to hold meanwhile: the kernel's destination at weight 0.
    pub spec: DestSpec,
    /// Set when the drain ended: no longer desired, forgotten once the kernel lost it.
    pub ended: Option<DrainEnd>,
}

/// The destinations draining now. See the module doc.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drains {
    entries: BTreeMap<(ServiceId, DestKey), Drain>,
}

/// Whether the config's service `name` lists `key` as a real or as its sorry server.
fn listed(config: &Config, name: Option<&String>, key: &DestKey) -> bool {
    let Some(svc) = name.and_then(|n| config.services.get(n)) else {
        return false;
    };
    let is = |a: &std::net::SocketAddr| a.ip() == key.addr && a.port() == key.port;
    svc.reals.iter().any(|r| is(&r.addr)) || svc.sorry.as_ref().is_some_and(|s| is(&s.addr))
}

impl Drains {
    pub fn new() -> Drains {
        Drains::default()
    }

    /// Destinations still draining (not yet ended).
    pub fn active(&self) -> impl Iterator<Item = (&(ServiceId, DestKey), &Drain)> {
        self.entries.iter().filter(|(_, d)| d.ended.is_none())
    }

    /// Whether any destination is still draining: then the owner checks them periodically.
    pub fn any_active(&self) -> bool {
        self.active().next().is_some()
    }

    /// The services with a destination still draining.
    pub fn services(&self) -> BTreeSet<ServiceId> {
        self.active().map(|((id, _), _)| *id).collect()
    }

    /// Before a plan (after the desired state was brought up to date): starts a drain for each
    /// destination of a kept service in `scope` that the config no longer lists, ends the
    /// drains of reals listed again and of deleted services, and puts every draining
    /// destination into `desired` at weight 0, so the plan edits instead of deleting it.
    /// `timeout` zero starts no drain (a removed real is deleted at once).
    pub fn update(
        &mut self,
        desired: &mut Desired,
        config: &Config,
        kernel: &KernelState,
        scope: &Scope,
        now: Instant,
        timeout: Duration,
    ) -> Vec<DrainEvent> {
        let mut events = Vec::new();
        self.entries.retain(|(id, key), d| {
            if !desired.table.contains_key(id) {
                // The service goes: DelService drops its connections anyway.
                return false;
            }
            if listed(config, desired.names.get(id), key) {
                if d.ended.is_none() {
                    events.push(DrainEvent::Readded {
                        service: d.service.clone(),
                        real: *key,
                    });
                }
                return false;
            }
            true
        });
        let ids: Vec<ServiceId> = match scope {
            Scope::All => desired.table.keys().copied().collect(),
            Scope::Services(ids) => ids.iter().copied().collect(),
        };
        if !timeout.is_zero() {
            for id in ids {
                let (Some(want), Some(have)) = (desired.table.get(&id), kernel.table.get(&id))
                else {
                    continue;
                };
                let name = desired.names.get(&id);
                for (key, spec) in &have.dests {
                    if want.dests.contains_key(key)
                        || self.entries.contains_key(&(id, *key))
                        || listed(config, name, key)
                    {
                        continue;
                    }
                    let service = name.cloned().unwrap_or_else(|| id.to_string());
                    events.push(DrainEvent::Started {
                        service: service.clone(),
                        real: *key,
                        timeout,
                    });
                    self.entries.insert(
                        (id, *key),
                        Drain {
                            service,
                            started: now,
                            spec: DestSpec { weight: 0, ..*spec },
                            ended: None,
                        },
                    );
                }
            }
        }
        for ((id, key), d) in self.active() {
            if let Some(s) = desired.table.get_mut(id) {
                s.dests.entry(*key).or_insert(d.spec);
            }
        }
        events
    }

    /// The drains that end now: those whose destination has no connections left in `counts`
    /// (a destination missing from it is gone: nothing left to wait for) and those older than
    /// `timeout`. They leave `desired`; planning their services deletes them. Returns the
    /// services to plan and what ended.
    pub fn finish(
        &mut self,
        desired: &mut Desired,
        counts: &ConnCounts,
        now: Instant,
        timeout: Duration,
    ) -> (BTreeSet<ServiceId>, Vec<DrainEvent>) {
        let mut services = BTreeSet::new();
        let mut events = Vec::new();
        for ((id, key), d) in self.entries.iter_mut() {
            if d.ended.is_some() {
                continue;
            }
            let (active, inactive) = counts.get(&(*id, *key)).copied().unwrap_or((0, 0));
            let after = now.saturating_duration_since(d.started);
            let why = if active == 0 && inactive == 0 {
                DrainEnd::Empty
            } else if after >= timeout {
                DrainEnd::TimedOut
            } else {
                continue;
            };
            d.ended = Some(why);
            if let Some(s) = desired.table.get_mut(id) {
                s.dests.remove(key);
            }
            services.insert(*id);
            events.push(DrainEvent::Ended {
                service: d.service.clone(),
                real: *key,
                why,
                after,
                active,
                inactive,
            });
        }
        (services, events)
    }

    /// After an apply: forgets the drains whose destination the kernel no longer holds
    /// (deleted by lbd, or by someone else).
    pub fn prune(&mut self, kernel: &KernelState) {
        self.entries.retain(|(id, key), _| {
            kernel
                .table
                .get(id)
                .is_some_and(|s| s.dests.contains_key(key))
        });
    }
}
