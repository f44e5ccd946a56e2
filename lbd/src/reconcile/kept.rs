//! The desired state kept between reconciles, so a change costs what it touches: only the
//! services whose config, health or overrides changed are computed again, and the plan looks
//! only at them.
//!
//! A service is unchanged when the config holds the same `Arc<Service>` as last time (the
//! config loader shares unchanged services between configs) and its health and override
//! entries are equal. Anything else (the first call, after [`KeptDesired::forget`], a new
//! unmanaged policy) computes everything and plans over [`Scope::All`].

use super::desired::{service_id, service_state, set_globals, Desired, Overrides, RealHealth};
use super::plan::Scope;
use super::SyncRole;
use crate::config::{Config, Service};
use crate::ipvs::msg::ServiceId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

/// See the module doc.
#[derive(Debug, Default)]
pub struct KeptDesired {
    desired: Desired,
    /// The service each table entry was computed from, by name.
    from: BTreeMap<String, Arc<Service>>,
    health: RealHealth,
    overrides: Overrides,
    valid: bool,
}

impl KeptDesired {
    pub fn new() -> KeptDesired {
        KeptDesired::default()
    }

    /// The desired state as last updated.
    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// The desired state, for the drains to add their weight-0 destinations to (they are
    /// dropped with the entry of their service when it is computed again).
    pub fn desired_mut(&mut self) -> &mut Desired {
        &mut self.desired
    }

    /// Services lbd owned before: deleted when no longer desired.
    pub fn set_owned_before(&mut self, owned: BTreeSet<ServiceId>) {
        self.desired.owned_before = owned;
    }

    /// Drops what is kept: the next update computes everything.
    pub fn forget(&mut self) {
        self.valid = false;
    }

    /// Brings the desired state up to date; returns the services a plan must look at.
    pub fn update(
        &mut self,
        config: &Config,
        health: &RealHealth,
        overrides: &Overrides,
        role: SyncRole,
    ) -> Scope {
        let policy = self.desired.unmanaged;
        set_globals(&mut self.desired, config, role);
        if !self.valid || policy != self.desired.unmanaged {
            return self.rebuild(config, health, overrides);
        }
        let mut changed: BTreeSet<&str> = config
            .services
            .iter()
            .filter(|(name, svc)| self.from.get(*name).is_none_or(|f| !Arc::ptr_eq(f, svc)))
            .map(|(name, _)| name.as_str())
            .collect();
        changed.extend(differing_services(&self.health.0, &health.0));
        changed.extend(differing_services(
            &self.overrides.weights,
            &overrides.weights,
        ));
        let removed: Vec<String> = self
            .from
            .keys()
            .filter(|name| !config.services.contains_key(*name))
            .cloned()
            .collect();
        let mut scope = BTreeSet::new();
        // Every old entry leaves before any new one comes in: two services may have swapped
        // their keys.
        for name in removed
            .iter()
            .map(String::as_str)
            .chain(changed.iter().copied())
        {
            if let Some(old) = self.from.remove(name) {
                let id = service_id(&old.key);
                self.desired.table.remove(&id);
                self.desired.names.remove(&id);
                scope.insert(id);
            }
        }
        for name in changed {
            let Some(svc) = config.services.get(name) else {
                continue;
            };
            let id = service_id(&svc.key);
            self.desired
                .table
                .insert(id, service_state(svc, health, overrides));
            self.desired.names.insert(id, svc.name.clone());
            self.from.insert(svc.name.clone(), svc.clone());
            scope.insert(id);
        }
        self.health = health.clone();
        self.overrides = overrides.clone();
        Scope::Services(scope)
    }

    fn rebuild(&mut self, config: &Config, health: &RealHealth, overrides: &Overrides) -> Scope {
        self.desired.table.clear();
        self.desired.names.clear();
        self.from.clear();
        for (name, svc) in config.services.iter() {
            let id = service_id(&svc.key);
            self.desired
                .table
                .insert(id, service_state(svc, health, overrides));
            self.desired.names.insert(id, name.clone());
            self.from.insert(name.clone(), svc.clone());
        }
        self.health = health.clone();
        self.overrides = overrides.clone();
        self.valid = true;
        Scope::All
    }
}

/// Names of the services whose entries differ between two maps keyed by (service, real).
fn differing_services<'a, V: PartialEq>(
    a: &'a BTreeMap<(String, SocketAddr), V>,
    b: &'a BTreeMap<(String, SocketAddr), V>,
) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for ((svc, addr), v) in a {
        if b.get(&(svc.clone(), *addr)) != Some(v) {
            out.insert(svc.as_str());
        }
    }
    for ((svc, addr), v) in b {
        if a.get(&(svc.clone(), *addr)) != Some(v) {
            out.insert(svc.as_str());
        }
    }
    out
}
