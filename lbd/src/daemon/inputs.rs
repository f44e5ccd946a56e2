//! What the IPVS reconciler takes besides the config, and whether it changed: real health and
//! the weights the checks set (from the health report), the operator's drains (from the control
//! API), and the connection-sync role (from the VRRP roles). Pure: the daemon feeds it and
//! reconciles when [`IpvsInputs::take`] says something changed.
//!
//! Until VRRP reports a master, a config with `[ipvs.sync]` runs the backup sync daemon: a node
//! that is not yet sure it holds the VIPs must not send its (empty) connection table over its
//! peer's.

use crate::check::board::{HealthReport, RealKey};
use crate::config::Config;
use crate::reconcile::{Overrides, RealHealth, SyncRole};
use crate::vrrp::runtime::Status as VrrpStatus;
use crate::vrrp::sync::sync_role;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Operator weight overrides per real (the control API's drain: weight 0 until undrain). They
/// win over the weights the checks set.
pub type OperatorWeights = Arc<BTreeMap<RealKey, u32>>;

/// The reconciler's inputs as last taken.
#[derive(Clone, Debug, PartialEq)]
pub struct IpvsInputs {
    pub health: RealHealth,
    /// The checks' weights with the operator's over them.
    pub weights: BTreeMap<RealKey, u32>,
    pub role: SyncRole,
}

impl Default for IpvsInputs {
    fn default() -> Self {
        IpvsInputs {
            health: RealHealth::default(),
            weights: BTreeMap::new(),
            role: SyncRole::Backup,
        }
    }
}

/// Which inputs [`IpvsInputs::take`] found changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Health or weights.
    pub health: bool,
    /// The sync daemon's role.
    pub role: bool,
}

impl Changed {
    pub fn any(self) -> bool {
        self.health || self.role
    }
}

impl IpvsInputs {
    /// Takes the report's health and weights, the operator's weights over them, and the sync
    /// role the VRRP roles ask for under `config`; says what changed.
    pub fn take(
        &mut self,
        config: &Config,
        report: &HealthReport,
        operator: &BTreeMap<RealKey, u32>,
        vrrp: &VrrpStatus,
    ) -> Changed {
        let health = report.real_health();
        let mut weights = report.weights();
        weights.extend(operator.iter().map(|(k, w)| (k.clone(), *w)));
        let mut changed = Changed::default();
        if health != self.health || weights != self.weights {
            self.health = health;
            self.weights = weights;
            changed.health = true;
        }
        let role = sync_role(config, &vrrp.roles).unwrap_or_default();
        if role != self.role {
            self.role = role;
            changed.role = true;
        }
        changed
    }

    /// The operator overrides as the reconciler takes them.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            weights: self.weights.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vrrp::machine::State;
    use std::net::SocketAddr;

    fn config(sync: bool) -> Config {
        let sync = if sync {
            "[ipvs.sync]\ninterface = \"eth0\"\nfollow = \"V\"\n"
        } else {
            ""
        };
        let text = format!(
            "{sync}[vrrp.instance.V]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"192.0.2.10/24\"]\n\
             [service.web]\nvip = \"192.0.2.10:80\"\n[[service.web.real]]\naddress = \"10.0.0.1:80\"\n"
        );
        crate::config::parse("t.toml", &text).unwrap().config
    }

    fn real() -> RealKey {
        ("web".into(), "10.0.0.1:80".parse::<SocketAddr>().unwrap())
    }

    #[test]
    fn drains_win_over_check_weights_and_changes_are_reported_once() {
        let c = config(false);
        let mut inputs = IpvsInputs::default();
        let report = HealthReport::default();
        let vrrp = VrrpStatus::default();
        let none = BTreeMap::new();
        // Without [ipvs.sync] the node is its own master from the first take; an empty report
        // is what the defaults hold.
        assert_eq!(
            inputs.take(&c, &report, &none, &vrrp),
            Changed {
                health: false,
                role: true
            }
        );
        assert!(!inputs.take(&c, &report, &none, &vrrp).any());
        let drained = BTreeMap::from([(real(), 0)]);
        let changed = inputs.take(&c, &report, &drained, &vrrp);
        assert_eq!(
            changed,
            Changed {
                health: true,
                role: false
            }
        );
        assert_eq!(inputs.overrides().weights.get(&real()), Some(&0));
        assert!(!inputs.take(&c, &report, &drained, &vrrp).any());
        assert!(inputs.take(&c, &report, &none, &vrrp).health);
        assert!(inputs.overrides().weights.is_empty());
    }

    #[test]
    fn the_sync_role_follows_the_master_and_starts_as_backup() {
        let c = config(true);
        let mut inputs = IpvsInputs::default();
        assert_eq!(inputs.role, SyncRole::Backup);
        let report = HealthReport::default();
        let none = BTreeMap::new();
        let mut vrrp = VrrpStatus::default();
        vrrp.roles.insert("V".into(), State::Master);
        let changed = inputs.take(&c, &report, &none, &vrrp);
        assert_eq!(
            changed,
            Changed {
                health: false,
                role: true
            }
        );
        assert_eq!(inputs.role, SyncRole::Master);
        vrrp.roles.insert("V".into(), State::Backup);
        assert!(inputs.take(&c, &report, &none, &vrrp).role);
        assert_eq!(inputs.role, SyncRole::Backup);
    }
}
