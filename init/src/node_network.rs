//! A config's `[network]` taken over by init, like `commit confirmed` on a router: refused
//! before anything is touched when it leaves no route to the config source; applied as a
//! difference; then the source must answer again within `confirm_timeout`, or the previous
//! network (at the first config: the one init booted with) is put back and the config refused.

use crate::net::apply::{self, Sysfs};
use crate::net::{resolv, NetInfo};
use lbd::config::network::Network;
use lbd::config::IpPrefix;
use lbd::netlink::Netlink;
use std::collections::BTreeMap;
use std::net::IpAddr;
use tracing::{error, info, warn};

/// The link init configured at boot, before any config, and the command line's bonds and
/// VLANs it may be on.
#[derive(Clone, Debug)]
pub struct BootLink {
    pub device: String,
    pub address: IpPrefix,
    pub gateway: Option<IpAddr>,
    pub dhcp: bool,
    /// `bond=` and `vlan=` links.
    pub links: Network,
}

impl BootLink {
    pub fn of(info: &NetInfo, links: Network) -> BootLink {
        BootLink {
            device: info.device.clone(),
            address: IpPrefix {
                addr: IpAddr::V4(info.address),
                prefix_len: info.prefix_len,
            },
            gateway: info.gateway.map(IpAddr::V4),
            dhcp: info.lease.is_some(),
            links,
        }
    }

    /// The boot network as a `[network]`: the command line's links, with the address on the
    /// boot link (which may be one of them).
    fn network(&self) -> Network {
        let on_link = apply::boot_network(&self.device, self.address, self.gateway, self.dhcp);
        let mut net = self.links.clone();
        for (name, link) in on_link.links {
            match net.links.get_mut(&name) {
                Some(existing) => {
                    existing.addresses = link.addresses;
                    existing.routes = link.routes;
                    existing.dhcp = link.dhcp;
                }
                None => {
                    net.links.insert(name, link);
                }
            }
        }
        net
    }
}

/// The node's network across configs.
pub struct NodeNetwork {
    sys: Sysfs,
    boot: Option<BootLink>,
    /// What the running config applied.
    applied: Option<Network>,
    /// Applied, waiting for the config source to answer.
    pending: Option<Network>,
    /// A DHCP client per link the config puts on DHCP (the boot link's is the boot's own):
    /// dropping the sender stops it.
    dhcp: BTreeMap<String, tokio::sync::oneshot::Sender<()>>,
}

/// What [`NodeNetwork::apply`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Nothing changed: nothing to confirm.
    Unchanged,
    /// Changes are in place: confirm, then [`NodeNetwork::commit`] or
    /// [`NodeNetwork::roll_back`].
    Changed(usize),
}

impl NodeNetwork {
    pub fn new(boot: Option<BootLink>) -> Self {
        NodeNetwork {
            sys: Sysfs::default(),
            boot,
            applied: None,
            pending: None,
            dhcp: BTreeMap::new(),
        }
    }

    /// Runs a DHCP client on each link of `net` with `dhcp = true` (but the boot link, whose
    /// lease init keeps from boot), and stops those of links no longer on DHCP.
    fn dhcp_clients(&mut self, net: &Network) {
        let wanted: Vec<String> = net
            .links
            .values()
            .filter(|l| l.dhcp && self.boot.as_ref().is_none_or(|b| b.device != l.name))
            .map(|l| l.name.clone())
            .collect();
        self.dhcp.retain(|name, _| {
            let keep = wanted.contains(name);
            if !keep {
                info!(link = %name, "DHCP stopped: the config no longer asks for it");
            }
            keep
        });
        for name in wanted {
            if self.dhcp.contains_key(&name) {
                continue;
            }
            let (stop, stopped) = tokio::sync::oneshot::channel();
            self.dhcp.insert(name.clone(), stop);
            tokio::task::spawn_local(dhcp_client(name, stopped));
        }
    }

    /// Whether `net` leaves a way to `source`: its own links and routes, or the boot link when
    /// `net` leaves that alone.
    pub fn reaches(&self, net: &Network, source: IpAddr) -> bool {
        if source.is_loopback() || net.may_reach(source) {
            return true;
        }
        let Some(boot) = &self.boot else { return false };
        let untouched = !net.links.contains_key(&boot.device)
            && !net.bond_of().contains_key(boot.device.as_str());
        untouched && boot.network().may_reach(source)
    }

    /// Whether `net` takes the boot link over (so its DHCP lease is not init's to keep).
    pub fn takes_boot_link(&self, net: &Network) -> bool {
        self.boot.as_ref().is_some_and(|b| {
            let member = net.bond_of().contains_key(b.device.as_str());
            let declared = net.links.get(&b.device);
            member || declared.is_some_and(|l| !l.dhcp)
        })
    }

    /// Applies `net`; `source` is the config server that must stay reachable.
    pub async fn apply(&mut self, net: &Network, source: IpAddr) -> Result<Taken, String> {
        if !self.reaches(net, source) {
            return Err(format!(
                "its [network] leaves no route to the config source {source}: nothing applied"
            ));
        }
        let nl = Netlink::connect().map_err(|e| e.to_string())?;
        let previous = self.applied.clone();
        match apply::apply(&nl, &self.sys, net, previous.as_ref()).await {
            Ok(done) if done.steps.is_empty() => {
                self.applied = Some(net.clone());
                write_resolvers(net);
                self.dhcp_clients(net);
                Ok(Taken::Unchanged)
            }
            Ok(done) => {
                self.pending = Some(net.clone());
                self.dhcp_clients(net);
                Ok(Taken::Changed(done.steps.len()))
            }
            Err(e) => {
                // Part of it may be in place: undo that before saying no.
                self.pending = Some(net.clone());
                self.roll_back().await;
                Err(format!("its [network] could not be applied: {e}"))
            }
        }
    }

    /// The config source answered: the pending network is the running one.
    pub fn commit(&mut self) {
        if let Some(net) = self.pending.take() {
            write_resolvers(&net);
            self.applied = Some(net);
        }
    }

    /// Puts back the network before the pending one.
    pub async fn roll_back(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let target = match (&self.applied, &self.boot) {
            (Some(a), _) => a.clone(),
            (None, Some(b)) => b.network(),
            (None, None) => Network {
                links: Default::default(),
                rules: Vec::new(),
                resolvers: Vec::new(),
                search: Vec::new(),
                confirm_timeout: Network::DEFAULT_CONFIRM_TIMEOUT,
            },
        };
        let nl = match Netlink::connect() {
            Ok(nl) => nl,
            Err(e) => {
                error!("network: cannot roll back: {e}");
                return;
            }
        };
        self.dhcp_clients(&target);
        match apply::apply(&nl, &self.sys, &target, Some(&pending)).await {
            Ok(done) => info!(
                steps = done.steps.len(),
                "network: previous network put back"
            ),
            Err(e) => error!("network: rolling back failed: {e}; the box may be unreachable"),
        }
    }
}

/// DHCP on `link` until `stop` fires (or its sender is dropped): the lease is kept, renewed
/// and given back by the same client init boots with.
async fn dhcp_client(link: String, stop: tokio::sync::oneshot::Receiver<()>) {
    let spec = crate::net::IpSpec {
        device: Some(link.clone()),
        ..crate::net::IpSpec::dhcp()
    };
    // The boot link's name servers and host name stay.
    let opts = crate::net::NetOptions {
        resolv_conf: None,
        set_hostname: false,
        ..crate::net::NetOptions::default()
    };
    let run = async {
        loop {
            match crate::net::configure(&spec, &opts).await {
                Ok(info) => {
                    info!(link = %link, address = %format!("{}/{}", info.address, info.prefix_len), "DHCP lease on a config's link");
                    return Some(info);
                }
                Err(e) => {
                    warn!(link = %link, "DHCP: {e}; trying again in 10 s");
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                }
            }
        }
    };
    let mut stop = stop;
    let info = tokio::select! {
        info = run => info,
        _ = &mut stop => return,
    };
    // Hold the lease until the config drops DHCP on this link, then give it back.
    let _ = stop.await;
    if let Some(k) = info.and_then(|i| i.keeper) {
        k.stop();
    }
}

fn write_resolvers(net: &Network) {
    if net.resolvers.is_empty() && net.search.is_empty() {
        return;
    }
    let text = resolv::render_list("the config's [network]", &net.search, &net.resolvers);
    if let Err(e) = resolv::write(std::path::Path::new("/etc/resolv.conf"), &text) {
        warn!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        lbd::config::parse("n.toml", text)
            .unwrap_or_else(|e| panic!("{e}"))
            .config
            .network
            .unwrap()
    }

    fn booted() -> NodeNetwork {
        NodeNetwork::new(Some(BootLink {
            device: "eth0".into(),
            address: "10.0.2.15/24".parse().unwrap(),
            gateway: Some("10.0.2.2".parse().unwrap()),
            dhcp: true,
            links: net("[network]\n"),
        }))
    }

    #[test]
    fn the_boot_network_keeps_the_command_lines_bond() {
        let links = crate::net::bootlinks::parse(&["bond=bond0:eth0,eth1:mode=1"])
            .unwrap()
            .network;
        let boot = BootLink {
            device: "bond0".into(),
            address: "10.0.2.15/24".parse().unwrap(),
            gateway: Some("10.0.2.2".parse().unwrap()),
            dhcp: false,
            links,
        };
        let net = boot.network();
        let bond = &net.links["bond0"];
        assert!(matches!(bond.kind, lbd::config::network::LinkKind::Bond(_)));
        assert_eq!(bond.addresses, ["10.0.2.15/24".parse().unwrap()]);
        assert_eq!(bond.routes.len(), 1);
        assert!(net.links.contains_key("eth0") && net.links.contains_key("eth1"));
        // A config that leaves bond0 alone still reaches the server through it.
        let n = NodeNetwork::new(Some(boot));
        let other = super::tests::net("[network.link.eth2]\naddresses = [\"192.168.5.2/24\"]\n");
        assert!(n.reaches(&other, "198.51.100.1".parse().unwrap()));
        // One that takes a member does not get the bond's way out.
        let takes_member =
            super::tests::net("[network.link.eth1]\naddresses = [\"192.168.5.2/24\"]\n");
        assert!(!n.takes_boot_link(&takes_member));
    }

    #[test]
    fn the_config_source_must_stay_reachable() {
        let n = booted();
        let server = "10.0.2.2".parse().unwrap();
        let far = "198.51.100.7".parse().unwrap();
        // eth1 only: the boot link still leads to the server, and its default route anywhere.
        let other_link = net("[network.link.eth1]\naddresses = [\"192.168.5.2/24\"]\n");
        assert!(n.reaches(&other_link, server) && n.reaches(&other_link, far));
        assert!(!n.takes_boot_link(&other_link));
        // eth0 taken over without a route to the server.
        let cut = net("[network.link.eth0]\naddresses = [\"192.168.9.2/24\"]\n");
        assert!(!n.reaches(&cut, server));
        assert!(n.takes_boot_link(&cut));
        // eth0 into a bond that has the server's subnet.
        let bonded = net(
            "[network.link.eth0]\n[network.link.eth1]\n[network.link.bond0]\nkind = \"bond\"\nmembers = [\"eth0\", \"eth1\"]\naddresses = [\"10.0.2.15/24\"]\n",
        );
        assert!(n.reaches(&bonded, server) && !n.reaches(&bonded, far));
        assert!(n.takes_boot_link(&bonded));
        // DHCP kept on the boot link: the lease is still init's to keep.
        let dhcp = net("[network.link.eth0]\ndhcp = true\n");
        assert!(n.reaches(&dhcp, server) && !n.takes_boot_link(&dhcp));
    }
}
