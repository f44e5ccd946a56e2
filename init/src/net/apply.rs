//! Applies a `[network]`: reads what the kernel has ([`observe`]: netlink, and sysfs for each
//! NIC's driver and bus address), plans the difference ([`super::plan`]) and runs the steps.
//! The caller confirms that the config source is still reachable and puts the previous
//! network back when it is not.

use super::plan::{self, Nic, Observed, PlanError, Step};
use lbd::config::network::{Link, LinkKind, Network, Route};
use lbd::config::IpPrefix;
use lbd::netlink::{AddressOptions, NetError, Netlink};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tracing::{debug, info};

/// Why a network could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{step}: {source}")]
    Step {
        step: String,
        #[source]
        source: NetError,
    },
    #[error(transparent)]
    Netlink(#[from] NetError),
}

/// Where sysfs is: `/sys` on the box, a fake tree in tests.
#[derive(Clone, Debug)]
pub struct Sysfs(pub PathBuf);

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs(PathBuf::from("/sys"))
    }
}

impl Sysfs {
    /// The NIC's driver and bus address. A virtio NIC's device is `virtioN`, whose parent is
    /// the PCI function: that is its address.
    pub fn driver_and_path(&self, name: &str) -> (Option<String>, Option<String>) {
        let device = self.0.join("class/net").join(name).join("device");
        let base = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let driver = std::fs::canonicalize(device.join("driver"))
            .ok()
            .and_then(|p| base(&p));
        let path = std::fs::canonicalize(&device).ok().and_then(|p| {
            let name = base(&p)?;
            if name.starts_with("virtio") {
                p.parent().and_then(base)
            } else {
                Some(name)
            }
        });
        (driver, path)
    }
}

/// The kernel's links, addresses and rules as the planner takes them.
pub async fn observe(nl: &Netlink, sys: &Sysfs) -> Result<Observed, NetError> {
    let links = nl.links().await?;
    let addresses = nl
        .addresses()
        .await?
        .into_iter()
        .map(|a| {
            (
                a.index,
                IpPrefix {
                    addr: a.addr,
                    prefix_len: a.prefix_len,
                },
            )
        })
        .collect();
    let nics = links
        .into_iter()
        .map(|l| {
            let (driver, path) = if l.virtual_kind.is_none() {
                sys.driver_and_path(&l.name)
            } else {
                (None, None)
            };
            Nic {
                index: l.index,
                name: l.name,
                mac: l.mac,
                perm_mac: l.perm_mac,
                driver,
                path,
                kind: l.virtual_kind,
                controller: l.controller,
                mtu: l.mtu,
                up: l.admin_up,
                vlan: l.lower.zip(l.vlan_id),
                bond: l.bond,
            }
        })
        .collect();
    Ok(Observed {
        links: nics,
        addresses,
        rules: nl.rules().await?,
    })
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    pub steps: Vec<Step>,
}

/// Brings the kernel to `desired`, `previous` being what the running config applied.
pub async fn apply(
    nl: &Netlink,
    sys: &Sysfs,
    desired: &Network,
    previous: Option<&Network>,
) -> Result<Applied, ApplyError> {
    let observed = observe(nl, sys).await?;
    let steps = plan::plan(desired, previous, &observed)?;
    for step in &steps {
        debug!(?step, "network");
        run(nl, step).await.map_err(|source| ApplyError::Step {
            step: describe(step),
            source,
        })?;
    }
    if !steps.is_empty() {
        info!(steps = steps.len(), "network applied: {}", summary(&steps));
    }
    Ok(Applied { steps })
}

async fn index(nl: &Netlink, name: &str) -> Result<u32, NetError> {
    Ok(nl.link_by_name(name).await?.index)
}

async fn run(nl: &Netlink, step: &Step) -> Result<(), NetError> {
    match step {
        Step::Down(n) => nl.set_down(index(nl, n).await?, n).await,
        Step::Rename { from, to } => nl.rename(index(nl, from).await?, from, to).await,
        Step::Delete(n) => nl.del_link(index(nl, n).await?, n).await,
        Step::Release(n) => nl.set_controller(index(nl, n).await?, n, None).await,
        Step::CreateBond { name, bond } => nl.create_bond(name, bond).await,
        Step::FlushAddresses(n) => {
            let link = nl.link_by_name(n).await?;
            for a in nl.addresses_of(&link).await? {
                nl.del_address(link.index, n, a.addr, a.prefix_len).await?;
            }
            Ok(())
        }
        Step::Enslave { member, bond } => {
            let b = index(nl, bond).await?;
            nl.set_controller(index(nl, member).await?, member, Some(b))
                .await
        }
        Step::SetPrimary { bond, member } => {
            let m = index(nl, member).await?;
            nl.set_bond_primary(index(nl, bond).await?, bond, m).await
        }
        Step::CreateVlan { name, parent, id } => {
            nl.create_vlan(name, index(nl, parent).await?, *id).await
        }
        Step::SetMtu { link, mtu } => nl.set_mtu(index(nl, link).await?, link, *mtu).await,
        Step::Up(n) => nl.set_up(index(nl, n).await?, n).await,
        Step::AddAddress { link, prefix } => {
            nl.add_address(
                index(nl, link).await?,
                link,
                prefix.addr,
                prefix.prefix_len,
                AddressOptions::default(),
            )
            .await
        }
        Step::DelAddress { link, prefix } => {
            // The kernel deletes an IPv4 primary's secondaries with it (a new address added in
            // the same subnet, a VIP) unless the link promotes them.
            if prefix.addr.is_ipv4() {
                let knob = format!("/proc/sys/net/ipv4/conf/{link}/promote_secondaries");
                if let Err(e) = std::fs::write(&knob, "1") {
                    debug!("{knob}: {e}");
                }
            }
            nl.del_address(index(nl, link).await?, link, prefix.addr, prefix.prefix_len)
                .await
        }
        Step::AddRoute { link, route } => nl.add_route(index(nl, link).await?, link, route).await,
        Step::DelRoute { link, route } => nl.del_route(index(nl, link).await?, link, route).await,
        Step::AddRule(r) => nl.add_rule(r).await,
        Step::DelRule(r) => nl.del_rule(r).await,
    }
}

/// One step as `ip` would be told it.
pub fn describe(step: &Step) -> String {
    match step {
        Step::Down(n) => format!("set {n} down"),
        Step::Rename { from, to } => format!("rename {from} to {to}"),
        Step::Delete(n) => format!("delete {n}"),
        Step::Release(n) => format!("release {n} from its bond"),
        Step::CreateBond { name, bond } => format!("create bond {name} ({})", bond.mode),
        Step::FlushAddresses(n) => format!("flush the addresses of {n}"),
        Step::Enslave { member, bond } => format!("enslave {member} to {bond}"),
        Step::SetPrimary { bond, member } => format!("make {member} the primary of {bond}"),
        Step::CreateVlan { name, parent, id } => {
            format!("create VLAN {name} (id {id} on {parent})")
        }
        Step::SetMtu { link, mtu } => format!("set mtu {mtu} on {link}"),
        Step::Up(n) => format!("set {n} up"),
        Step::AddAddress { link, prefix } => format!("add {prefix} to {link}"),
        Step::DelAddress { link, prefix } => format!("remove {prefix} from {link}"),
        Step::AddRoute { link, route } => format!("add route {} on {link}", route_text(route)),
        Step::DelRoute { link, route } => format!("remove route {} on {link}", route_text(route)),
        Step::AddRule(r) => format!("add rule {r:?}"),
        Step::DelRule(r) => format!("remove rule {r:?}"),
    }
}

fn route_text(r: &Route) -> String {
    let mut s = r.to.to_string();
    if let Some(v) = r.via {
        s += &format!(" via {v}");
    }
    if let Some(t) = r.table {
        s += &format!(" table {t}");
    }
    s
}

fn summary(steps: &[Step]) -> String {
    steps.iter().map(describe).collect::<Vec<_>>().join("; ")
}

/// The network init brought up at boot (`ip=` or DHCP on one link), as a `[network]`: what a
/// first config's network is rolled back to.
pub fn boot_network(
    device: &str,
    address: IpPrefix,
    gateway: Option<IpAddr>,
    dhcp: bool,
) -> Network {
    let routes = gateway
        .map(|g| Route {
            to: IpPrefix {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                prefix_len: 0,
            },
            via: Some(g),
            metric: None,
            table: None,
            source: None,
        })
        .into_iter()
        .collect();
    let link = Link {
        name: device.to_string(),
        kind: LinkKind::Ethernet { matches: None },
        mtu: None,
        addresses: vec![address],
        dhcp,
        routes,
    };
    Network {
        links: BTreeMap::from([(device.to_string(), link)]),
        rules: Vec::new(),
        resolvers: Vec::new(),
        search: Vec::new(),
        confirm_timeout: Network::DEFAULT_CONFIRM_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_and_bus_addresses_come_from_sysfs_links() {
        let dir = std::env::temp_dir().join(format!("lb-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pci = dir.join("devices/pci0000:00/0000:00:03.0");
        let virtio = dir.join("devices/pci0000:00/0000:00:04.0/virtio1");
        let drivers = dir.join("bus/pci/drivers");
        std::fs::create_dir_all(&pci).unwrap();
        std::fs::create_dir_all(&virtio).unwrap();
        std::fs::create_dir_all(drivers.join("e1000e")).unwrap();
        std::fs::create_dir_all(drivers.join("virtio_net")).unwrap();
        std::os::unix::fs::symlink(drivers.join("e1000e"), pci.join("driver")).unwrap();
        std::os::unix::fs::symlink(drivers.join("virtio_net"), virtio.join("driver")).unwrap();
        for (nic, dev) in [("eth0", &pci), ("eth1", &virtio)] {
            let class = dir.join("class/net").join(nic);
            std::fs::create_dir_all(&class).unwrap();
            std::os::unix::fs::symlink(dev, class.join("device")).unwrap();
        }
        let sys = Sysfs(dir.clone());
        assert_eq!(
            sys.driver_and_path("eth0"),
            (Some("e1000e".into()), Some("0000:00:03.0".into()))
        );
        assert_eq!(
            sys.driver_and_path("eth1"),
            (Some("virtio_net".into()), Some("0000:00:04.0".into()))
        );
        assert_eq!(sys.driver_and_path("bond0"), (None, None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
