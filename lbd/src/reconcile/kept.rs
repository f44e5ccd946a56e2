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
    /// The services each table entry was computed from, by name: the map of the config last
    /// applied (shared with it).
    from: Arc<BTreeMap<String, Arc<Service>>>,
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
            if let Some(old) = self.from.get(name) {
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
            scope.insert(id);
        }
        // Every service of the config is now computed from its own entry.
        self.from = config.services.clone();
        self.health = health.clone();
        self.overrides = overrides.clone();
        Scope::Services(scope)
    }

    fn rebuild(&mut self, config: &Config, health: &RealHealth, overrides: &Overrides) -> Scope {
        self.desired.table.clear();
        self.desired.names.clear();
        for (name, svc) in config.services.iter() {
            let id = service_id(&svc.key);
            self.desired
                .table
                .insert(id, service_state(svc, health, overrides));
            self.desired.names.insert(id, name.clone());
        }
        self.from = config.services.clone();
        self.health = health.clone();
        self.overrides = overrides.clone();
        self.valid = true;
        Scope::All
    }
}

/// Names of the services whose entries differ between two maps keyed by (service, real): the
/// maps walked side by side, in their common key order.
fn differing_services<'a, V: PartialEq>(
    a: &'a BTreeMap<(String, SocketAddr), V>,
    b: &'a BTreeMap<(String, SocketAddr), V>,
) -> BTreeSet<&'a str> {
    use std::cmp::Ordering;
    let mut out = BTreeSet::new();
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let name = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(((name, _), _)), None) => {
                a.next();
                name
            }
            (None, Some(((name, _), _))) => {
                b.next();
                name
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                Ordering::Less => {
                    let name = &ka.0;
                    a.next();
                    name
                }
                Ordering::Greater => {
                    let name = &kb.0;
                    b.next();
                    name
                }
                Ordering::Equal => {
                    let (name, same) = (&ka.0, va == vb);
                    a.next();
                    b.next();
                    if same {
                        continue;
                    }
                    name
                }
            },
        };
        out.insert(name.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::differing_services;
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::SocketAddr;

    #[test]
    fn services_with_an_added_removed_or_changed_entry_differ() {
        let entry = |s: &str, a: &str, v: u32| ((s.to_string(), a.parse().unwrap()), v);
        let a: BTreeMap<(String, SocketAddr), u32> = [
            entry("same", "10.0.0.1:80", 1),
            entry("same", "10.0.0.2:80", 1),
            entry("changed", "10.0.0.1:80", 1),
            entry("lost", "10.0.0.9:80", 1),
            entry("gone", "10.0.0.1:80", 1),
        ]
        .into();
        let b: BTreeMap<(String, SocketAddr), u32> = [
            entry("same", "10.0.0.1:80", 1),
            entry("same", "10.0.0.2:80", 1),
            entry("changed", "10.0.0.1:80", 2),
            entry("lost", "10.0.0.8:80", 1),
            entry("new", "10.0.0.1:80", 1),
        ]
        .into();
        let want: BTreeSet<&str> = ["changed", "gone", "lost", "new"].into();
        assert_eq!(differing_services(&a, &b), want);
        assert_eq!(differing_services(&b, &a), want);
        assert!(differing_services(&a, &a).is_empty());
        assert_eq!(
            differing_services(&a, &BTreeMap::new()),
            ["changed", "gone", "lost", "same"].into()
        );
    }
}
