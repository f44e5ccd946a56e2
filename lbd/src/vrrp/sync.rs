//! VRRP role → desired IPVS connection-sync role, as data for the reconciler. Pure.
//!
//! The kernel's sync daemons carry connection state from the master balancer to the backup,
//! so established connections survive a failover. Which side this node is on follows the
//! VRRP instance or sync group named by `[ipvs.sync] follow`: master while it is master,
//! backup otherwise (backup, fault, not started). This module only *computes* the role; the
//! IPVS subsystem turns it into sync-daemon operations through `reconcile::desired` (STYLE:
//! VRRP state is an input to reconcile, never a second path to the kernel).

use super::machine::State;
use crate::config::Config;
use crate::reconcile::SyncRole;
use std::collections::BTreeMap;

/// The sync role `config` asks for, given the VRRP `roles` by instance name. `None` when the
/// config has no `[ipvs.sync]`. A sync group counts as master only when every member is.
pub fn sync_role(config: &Config, roles: &BTreeMap<String, State>) -> Option<SyncRole> {
    let sync = config.ipvs.sync.as_ref()?;
    let follow = &sync.follow;
    let members: Vec<&String> = match config.sync_groups.get(follow) {
        Some(g) => g.instances.iter().collect(),
        None if config.vrrp_instances.contains_key(follow) => vec![follow],
        // Validation refuses unknown names; a node without VRRP holds its VIPs alone.
        None => return Some(SyncRole::Master),
    };
    let master = !members.is_empty()
        && members
            .iter()
            .all(|m| roles.get(*m) == Some(&State::Master));
    Some(if master {
        SyncRole::Master
    } else {
        SyncRole::Backup
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: &str = r#"
[ipvs.sync]
interface = "eth1"
sync_id = 51
follow = "G"

[vrrp.instance.A]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]

[vrrp.instance.B]
interface = "eth1"
vrid = 2
priority = 100
vips = ["10.1.0.1/24"]

[vrrp.sync_group.G]
instances = ["A", "B"]
"#;

    fn roles(a: State, b: State) -> BTreeMap<String, State> {
        [("A".to_string(), a), ("B".to_string(), b)].into()
    }

    #[test]
    fn group_is_master_only_when_all_members_are() {
        let c = crate::config::parse("t.toml", PAIR).unwrap().config;
        assert_eq!(
            sync_role(&c, &roles(State::Master, State::Master)),
            Some(SyncRole::Master)
        );
        for (a, b) in [
            (State::Master, State::Backup),
            (State::Backup, State::Backup),
            (State::Fault, State::Master),
            (State::Initialize, State::Initialize),
        ] {
            assert_eq!(
                sync_role(&c, &roles(a, b)),
                Some(SyncRole::Backup),
                "{a} {b}"
            );
        }
        assert_eq!(sync_role(&c, &BTreeMap::new()), Some(SyncRole::Backup));
    }

    #[test]
    fn instance_and_absent_sync() {
        let src = PAIR.replace("follow = \"G\"", "follow = \"B\"");
        let c = crate::config::parse("t.toml", &src).unwrap().config;
        assert_eq!(
            sync_role(&c, &roles(State::Backup, State::Master)),
            Some(SyncRole::Master)
        );
        assert_eq!(
            sync_role(&c, &roles(State::Master, State::Backup)),
            Some(SyncRole::Backup)
        );
        let start = src.find("[ipvs.sync]").unwrap();
        let end = src.find("[vrrp.instance.A]").unwrap();
        let no_sync = format!("{}{}", &src[..start], &src[end..]);
        let c = crate::config::parse("t.toml", &no_sync).unwrap().config;
        assert_eq!(sync_role(&c, &roles(State::Master, State::Master)), None);
    }
}
