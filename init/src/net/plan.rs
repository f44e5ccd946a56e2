//! From the `[network]` a config wants, the one before it and what the kernel has, the steps
//! that get there: as a difference, so a link, address, route or rule that did not change is
//! not touched (no flap, no address removed and added again), and in the order the kernel needs
//! (renames while down, bonds before their members are enslaved, members down and without
//! addresses before that, parents before VLANs, MTUs before links come up).
//!
//! Pure: the kernel's state comes in as [`Observed`], the steps go out as data, so every case is
//! a unit test; `apply` runs them.

use lbd::config::network::{Bond, Link, LinkKind, Network, NicMatch, Route, Rule};
use lbd::config::IpPrefix;
use lbd::netlink::types::BondInfo;
use std::collections::{BTreeMap, BTreeSet};

/// One link as the kernel has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nic {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub perm_mac: Option<[u8; 6]>,
    /// From sysfs: the bound driver and the device's bus address.
    pub driver: Option<String>,
    pub path: Option<String>,
    /// Software kind (`bond`, `vlan`...); `None` for a NIC.
    pub kind: Option<String>,
    pub controller: Option<u32>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// A VLAN's (parent index, id).
    pub vlan: Option<(u32, u16)>,
    pub bond: Option<BondInfo>,
}

/// The kernel's side of the difference.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub links: Vec<Nic>,
    /// (link index, address).
    pub addresses: Vec<(u32, IpPrefix)>,
    pub rules: Vec<Rule>,
}

/// One change, naming links by the name they have when it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Down(String),
    Rename {
        from: String,
        to: String,
    },
    Delete(String),
    Release(String),
    CreateBond {
        name: String,
        bond: Bond,
    },
    FlushAddresses(String),
    Enslave {
        member: String,
        bond: String,
    },
    SetPrimary {
        bond: String,
        member: String,
    },
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
    },
    SetMtu {
        link: String,
        mtu: u32,
    },
    Up(String),
    AddAddress {
        link: String,
        prefix: IpPrefix,
    },
    DelAddress {
        link: String,
        prefix: IpPrefix,
    },
    AddRoute {
        link: String,
        route: Route,
    },
    DelRoute {
        link: String,
        route: Route,
    },
    AddRule(Rule),
    DelRule(Rule),
}

/// Why a network cannot be planned on this box.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("link {link}: no NIC matches {criteria} (NICs: {})", nics.join(", "))]
    NoMatch {
        link: String,
        criteria: String,
        nics: Vec<String>,
    },
    #[error("link {link}: {criteria} matches several NICs ({}): add a criterion", nics.join(", "))]
    Ambiguous {
        link: String,
        criteria: String,
        nics: Vec<String>,
    },
    #[error("link {link}: the box has no NIC of that name (NICs: {})", nics.join(", "))]
    Missing { link: String, nics: Vec<String> },
    #[error("link {link}: NIC {nic} cannot take the name: {by} has it")]
    NameTaken {
        link: String,
        nic: String,
        by: String,
    },
}

/// Whether a NIC matches every criterion given.
pub fn matches(m: &NicMatch, nic: &Nic) -> bool {
    m.mac
        .is_none_or(|mac| nic.perm_mac.or(nic.mac) == Some(mac))
        && m.name.as_ref().is_none_or(|n| *n == nic.name)
        && m.driver
            .as_ref()
            .is_none_or(|d| nic.driver.as_ref() == Some(d))
        && m.path.as_ref().is_none_or(|p| nic.path.as_ref() == Some(p))
}

fn describe(m: &NicMatch) -> String {
    let mut parts = Vec::new();
    if let Some(mac) = &m.mac {
        parts.push(format!("mac {}", lbd::config::network::format_mac(mac)));
    }
    if let Some(n) = &m.name {
        parts.push(format!("name {n}"));
    }
    if let Some(d) = &m.driver {
        parts.push(format!("driver {d}"));
    }
    if let Some(p) = &m.path {
        parts.push(format!("path {p}"));
    }
    parts.join(", ")
}

/// A NIC: not a software link (a veth counts: it is a namespace's NIC).
fn is_nic(n: &Nic) -> bool {
    n.kind.as_deref().is_none_or(|k| k == "veth") && n.name != "lo"
}

/// The bond settings the kernel reports for `bond`, to tell whether an existing bond is it.
pub fn bond_info_of(bond: &Bond) -> BondInfo {
    BondInfo {
        mode: bond.mode.kernel(),
        miimon: bond.miimon.as_millis() as u32,
        updelay: bond.updelay.as_millis() as u32,
        downdelay: bond.downdelay.as_millis() as u32,
        min_links: bond.min_links,
        lacp_rate: if bond.mode == lbd::config::network::BondMode::Lacp {
            bond.lacp_rate.kernel()
        } else {
            0
        },
        xmit_hash_policy: bond.xmit_hash_policy.map_or(0, |p| p.kernel()),
        primary: None,
        active: None,
    }
}

fn same_bond(have: &BondInfo, want: &Bond) -> bool {
    let w = bond_info_of(want);
    // The kernel keeps lacp_rate from an earlier mode; only 802.3ad reads it.
    have.mode == w.mode
        && have.miimon == w.miimon
        && have.updelay == w.updelay
        && have.downdelay == w.downdelay
        && have.min_links == w.min_links
        && (w.mode != 4 || have.lacp_rate == w.lacp_rate)
        && (want.xmit_hash_policy.is_none() || have.xmit_hash_policy == w.xmit_hash_policy)
}

/// Links in the order they are built: NICs, then bonds, then VLANs (a VLAN on a VLAN after
/// its parent).
fn build_order(net: &Network) -> Vec<&Link> {
    let mut out: Vec<&Link> = Vec::new();
    let rank = |l: &Link| match l.kind {
        LinkKind::Ethernet { .. } => 0,
        LinkKind::Bond(_) => 1,
        LinkKind::Vlan { .. } => 2,
    };
    let mut rest: Vec<&Link> = net.links.values().collect();
    rest.sort_by_key(|l| rank(l));
    // VLANs whose parent is a VLAN come after it.
    while !rest.is_empty() {
        let before = rest.len();
        let mut i = 0;
        while i < rest.len() {
            let ready = match &rest[i].kind {
                LinkKind::Vlan { parent, .. } => {
                    !net.links.contains_key(parent) || out.iter().any(|l| l.name == *parent)
                }
                _ => true,
            };
            if ready {
                out.push(rest.remove(i));
            } else {
                i += 1;
            }
        }
        if rest.len() == before {
            out.append(&mut rest);
        }
    }
    out
}

struct Planner<'a> {
    desired: &'a Network,
    previous: Option<&'a Network>,
    observed: &'a Observed,
    steps: Vec<Step>,
    /// Desired link name → the observed NIC that becomes it.
    nic_of: BTreeMap<String, &'a Nic>,
    /// Links created by this plan (or deleted and created again): nothing of theirs is there.
    fresh: BTreeSet<String>,
    /// Links taken down by this plan.
    downed: BTreeSet<String>,
}

/// The steps from `observed` to `desired`. `previous` is the network the running config
/// applied (`None` at the first config): what it added and `desired` no longer has is removed;
/// what neither configured (DHCP's address, lbd's VIPs) is never touched.
pub fn plan(
    desired: &Network,
    previous: Option<&Network>,
    observed: &Observed,
) -> Result<Vec<Step>, PlanError> {
    let mut p = Planner {
        desired,
        previous,
        observed,
        steps: Vec::new(),
        nic_of: BTreeMap::new(),
        fresh: BTreeSet::new(),
        downed: BTreeSet::new(),
    };
    p.resolve_nics()?;
    p.renames()?;
    p.removed_links();
    p.bonds_and_vlans();
    p.mtus_and_up();
    p.addresses();
    p.routes();
    p.rules();
    Ok(p.steps)
}

impl<'a> Planner<'a> {
    fn by_name(&self, name: &str) -> Option<&'a Nic> {
        self.observed.links.iter().find(|n| n.name == name)
    }

    fn by_index(&self, index: u32) -> Option<&'a Nic> {
        self.observed.links.iter().find(|n| n.index == index)
    }

    fn nic_names(&self) -> Vec<String> {
        self.observed
            .links
            .iter()
            .filter(|n| is_nic(n))
            .map(|n| n.name.clone())
            .collect()
    }

    /// The NIC behind each ethernet link: by `match`, else by name.
    fn resolve_nics(&mut self) -> Result<(), PlanError> {
        for link in self.desired.links.values() {
            let LinkKind::Ethernet { matches: m } = &link.kind else {
                continue;
            };
            let nic = match m {
                None => self
                    .by_name(&link.name)
                    .filter(|n| is_nic(n))
                    .ok_or_else(|| PlanError::Missing {
                        link: link.name.clone(),
                        nics: self.nic_names(),
                    })?,
                Some(m) => {
                    let found: Vec<&'a Nic> = self
                        .observed
                        .links
                        .iter()
                        .filter(|n| is_nic(n) && matches(m, n))
                        .collect();
                    match found.as_slice() {
                        [one] => *one,
                        [] => {
                            return Err(PlanError::NoMatch {
                                link: link.name.clone(),
                                criteria: describe(m),
                                nics: self.nic_names(),
                            })
                        }
                        many => {
                            return Err(PlanError::Ambiguous {
                                link: link.name.clone(),
                                criteria: describe(m),
                                nics: many.iter().map(|n| n.name.clone()).collect(),
                            })
                        }
                    }
                }
            };
            self.nic_of.insert(link.name.clone(), nic);
        }
        Ok(())
    }

    fn down(&mut self, name: &str, up: bool) {
        if up && self.downed.insert(name.to_string()) {
            self.steps.push(Step::Down(name.to_string()));
        }
    }

    fn renames(&mut self) -> Result<(), PlanError> {
        let renames: Vec<(String, &Nic)> = self
            .nic_of
            .iter()
            .filter(|(want, nic)| nic.name != **want)
            .map(|(want, nic)| (want.clone(), *nic))
            .collect();
        for (want, nic) in renames {
            if let Some(other) = self.by_name(&want) {
                return Err(PlanError::NameTaken {
                    link: want.clone(),
                    nic: nic.name.clone(),
                    by: other.name.clone(),
                });
            }
            self.down(&nic.name, nic.up);
            self.downed.insert(want.clone());
            self.steps.push(Step::Rename {
                from: nic.name.clone(),
                to: want,
            });
        }
        Ok(())
    }

    /// Bonds and VLANs the running config made that this one drops or makes differently, and
    /// members that leave their bond.
    fn removed_links(&mut self) {
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        for nic in &self.observed.links {
            let kind = nic.kind.as_deref();
            if !matches!(kind, Some("bond" | "vlan")) {
                continue;
            }
            let ours_before = self
                .previous
                .is_some_and(|p| p.links.contains_key(&nic.name));
            let keep = match self.desired.links.get(&nic.name).map(|l| &l.kind) {
                Some(LinkKind::Bond(b)) => {
                    kind == Some("bond") && nic.bond.as_ref().is_some_and(|h| same_bond(h, b))
                }
                Some(LinkKind::Vlan { parent, id }) => {
                    kind == Some("vlan")
                        && nic.vlan.is_some_and(|(p, i)| {
                            i == *id && self.by_index(p).is_some_and(|p| p.name == *parent)
                        })
                }
                Some(LinkKind::Ethernet { .. }) => false,
                // Not ours to remove unless the running config made it.
                None => !ours_before,
            };
            if !keep {
                deleted.insert(nic.name.clone());
                self.steps.push(Step::Delete(nic.name.clone()));
                // The kernel closes the members of a bond it deletes.
                if kind == Some("bond") {
                    let members: Vec<String> = self
                        .observed
                        .links
                        .iter()
                        .filter(|m| m.controller == Some(nic.index))
                        .map(|m| self.final_name(m))
                        .collect();
                    self.downed.extend(members);
                }
                if self.desired.links.contains_key(&nic.name) {
                    self.fresh.insert(nic.name.clone());
                }
            }
        }
        // A VLAN on a deleted link goes with it.
        for nic in &self.observed.links {
            if let Some((parent, _)) = nic.vlan {
                let parent_gone = self
                    .by_index(parent)
                    .is_some_and(|p| deleted.contains(&p.name));
                if parent_gone && !deleted.contains(&nic.name) {
                    deleted.insert(nic.name.clone());
                    if self.desired.links.contains_key(&nic.name) {
                        self.fresh.insert(nic.name.clone());
                    }
                }
            }
        }
        // Members that leave a bond that stays.
        let bond_of = self.desired.bond_of();
        for nic in &self.observed.links {
            let Some(c) = nic.controller else { continue };
            let Some(bond) = self.by_index(c) else {
                continue;
            };
            if bond.kind.as_deref() != Some("bond") || deleted.contains(&bond.name) {
                continue;
            }
            let name = self.final_name(nic);
            if bond_of.get(name.as_str()) != Some(&bond.name.as_str()) {
                self.steps.push(Step::Release(nic.name.clone()));
                // Released, a member is closed.
                self.downed.insert(name);
            }
        }
    }

    /// The name a NIC has once the renames are done.
    fn final_name(&self, nic: &Nic) -> String {
        self.nic_of
            .iter()
            .find(|(_, n)| n.index == nic.index)
            .map(|(want, _)| want.clone())
            .unwrap_or_else(|| nic.name.clone())
    }

    /// The observed state of desired link `name`, unless this plan creates it.
    fn current(&self, name: &str) -> Option<&'a Nic> {
        if self.fresh.contains(name) {
            return None;
        }
        self.nic_of
            .get(name)
            .copied()
            .or_else(|| self.by_name(name))
    }

    fn bonds_and_vlans(&mut self) {
        for link in build_order(self.desired) {
            match &link.kind {
                LinkKind::Bond(bond) => {
                    let existing = self.current(&link.name);
                    if existing.is_none() {
                        self.fresh.insert(link.name.clone());
                        self.steps.push(Step::CreateBond {
                            name: link.name.clone(),
                            bond: bond.clone(),
                        });
                    }
                    let bond_index = existing.map(|b| b.index);
                    for m in &bond.members {
                        let Some(member) = self.current(m) else {
                            continue;
                        };
                        if bond_index.is_some() && member.controller == bond_index {
                            continue;
                        }
                        self.down(m, member.up || self.downed.contains(m));
                        self.steps.push(Step::FlushAddresses(m.clone()));
                        self.steps.push(Step::Enslave {
                            member: m.clone(),
                            bond: link.name.clone(),
                        });
                    }
                    if let Some(p) = &bond.primary {
                        let set = match (existing, self.current(p)) {
                            (Some(b), Some(m)) => {
                                b.bond.as_ref().and_then(|i| i.primary) != Some(m.index)
                            }
                            _ => true,
                        };
                        if set {
                            self.steps.push(Step::SetPrimary {
                                bond: link.name.clone(),
                                member: p.clone(),
                            });
                        }
                    }
                }
                LinkKind::Vlan { parent, id } => {
                    if self.current(&link.name).is_none() {
                        self.fresh.insert(link.name.clone());
                        self.steps.push(Step::CreateVlan {
                            name: link.name.clone(),
                            parent: parent.clone(),
                            id: *id,
                        });
                    }
                }
                LinkKind::Ethernet { .. } => {}
            }
        }
    }

    fn mtus_and_up(&mut self) {
        let order = build_order(self.desired);
        for link in &order {
            let Some(mtu) = link.mtu else { continue };
            if self.current(&link.name).and_then(|n| n.mtu) != Some(mtu) {
                self.steps.push(Step::SetMtu {
                    link: link.name.clone(),
                    mtu,
                });
            }
        }
        for link in &order {
            let up = self
                .current(&link.name)
                .is_some_and(|n| n.up && !self.downed.contains(&link.name));
            if !up {
                self.steps.push(Step::Up(link.name.clone()));
            }
        }
    }

    fn addresses(&mut self) {
        let members = self.desired.bond_of();
        for link in self.desired.links.values() {
            if members.contains_key(link.name.as_str()) {
                continue;
            }
            let flushed = self
                .steps
                .contains(&Step::FlushAddresses(link.name.clone()));
            let have: Vec<IpPrefix> = match self.current(&link.name) {
                Some(nic) if !flushed => self
                    .observed
                    .addresses
                    .iter()
                    .filter(|(i, _)| *i == nic.index)
                    .map(|(_, a)| *a)
                    .collect(),
                _ => Vec::new(),
            };
            for a in &link.addresses {
                if !have.contains(a) {
                    self.steps.push(Step::AddAddress {
                        link: link.name.clone(),
                        prefix: *a,
                    });
                }
            }
        }
        // What the running config added and this one does not have, where it still is.
        let Some(previous) = self.previous else {
            return;
        };
        for old in previous.links.values() {
            let kept = self.desired.links.get(&old.name);
            let Some(nic) = self.current(&old.name) else {
                continue;
            };
            for a in &old.addresses {
                let wanted = kept.is_some_and(|k| k.addresses.contains(a))
                    && !members.contains_key(old.name.as_str());
                let there = self
                    .observed
                    .addresses
                    .iter()
                    .any(|(i, x)| *i == nic.index && x == a);
                if !wanted && there {
                    self.steps.push(Step::DelAddress {
                        link: old.name.clone(),
                        prefix: *a,
                    });
                }
            }
        }
    }

    /// Routes are not read back: the running config's are taken as there, unless their link
    /// is created, flushed or brought up by this plan (the kernel drops a link's routes then).
    fn routes(&mut self) {
        for link in self.desired.links.values() {
            let lost = self.fresh.contains(&link.name)
                || self.downed.contains(&link.name)
                || self.steps.contains(&Step::Up(link.name.clone()))
                || self
                    .steps
                    .iter()
                    .any(|s| matches!(s, Step::AddAddress { link: l, .. } if *l == link.name));
            let before: &[Route] = self
                .previous
                .and_then(|p| p.links.get(&link.name))
                .map_or(&[], |l| &l.routes);
            for r in &link.routes {
                if lost || !before.contains(r) {
                    self.steps.push(Step::AddRoute {
                        link: link.name.clone(),
                        route: r.clone(),
                    });
                }
            }
        }
        let Some(previous) = self.previous else {
            return;
        };
        for old in previous.links.values() {
            if self.current(&old.name).is_none() {
                continue;
            }
            let now: &[Route] = self.desired.links.get(&old.name).map_or(&[], |l| &l.routes);
            for r in old.routes.iter().filter(|r| !now.contains(r)) {
                self.steps.push(Step::DelRoute {
                    link: old.name.clone(),
                    route: r.clone(),
                });
            }
        }
    }

    fn rules(&mut self) {
        let have = |r: &Rule| {
            self.observed.rules.iter().any(|k| {
                k.from == r.from
                    && k.to == r.to
                    && k.table == r.table
                    && (r.priority.is_none() || k.priority == r.priority)
            })
        };
        let mut steps = Vec::new();
        for r in &self.desired.rules {
            if !have(r) {
                steps.push(Step::AddRule(r.clone()));
            }
        }
        if let Some(previous) = self.previous {
            for r in &previous.rules {
                if !self.desired.rules.contains(r) && have(r) {
                    steps.push(Step::DelRule(r.clone()));
                }
            }
        }
        self.steps.extend(steps);
    }
}

#[cfg(test)]
mod tests;
