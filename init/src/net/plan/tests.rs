use super::*;
use lbd::config::network::{BondMode, LacpRate};
use std::time::Duration;

fn prefix(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn nic(index: u32, name: &str, mac: u8) -> Nic {
    Nic {
        index,
        name: name.into(),
        mac: Some([0x52, 0x54, 0, 0, 0, mac]),
        perm_mac: Some([0x52, 0x54, 0, 0, 0, mac]),
        driver: Some("virtio_net".into()),
        path: Some(format!("0000:00:0{index}.0")),
        mtu: Some(1500),
        up: true,
        ..Nic::default()
    }
}

fn ethernet(name: &str, addresses: &[&str]) -> Link {
    Link {
        name: name.into(),
        kind: LinkKind::Ethernet { matches: None },
        mtu: None,
        addresses: addresses.iter().map(|a| prefix(a)).collect(),
        dhcp: false,
        routes: vec![],
    }
}

fn bond(name: &str, members: &[&str], addresses: &[&str]) -> Link {
    Link {
        kind: LinkKind::Bond(Bond {
            members: members.iter().map(|m| m.to_string()).collect(),
            mode: BondMode::ActiveBackup,
            miimon: Duration::from_millis(100),
            lacp_rate: LacpRate::Slow,
            xmit_hash_policy: None,
            min_links: 0,
            updelay: Duration::ZERO,
            downdelay: Duration::ZERO,
            primary: None,
        }),
        ..ethernet(name, addresses)
    }
}

fn vlan(name: &str, parent: &str, id: u16, addresses: &[&str]) -> Link {
    Link {
        kind: LinkKind::Vlan {
            parent: parent.into(),
            id,
        },
        ..ethernet(name, addresses)
    }
}

fn network(links: Vec<Link>) -> Network {
    Network {
        links: links.into_iter().map(|l| (l.name.clone(), l)).collect(),
        rules: vec![],
        resolvers: vec![],
        search: vec![],
        confirm_timeout: Network::DEFAULT_CONFIRM_TIMEOUT,
    }
}

fn default_route(via: &str) -> Route {
    Route {
        to: prefix("0.0.0.0/0"),
        via: Some(via.parse().unwrap()),
        metric: None,
        table: None,
        source: None,
    }
}

fn add(link: &str, a: &str) -> Step {
    Step::AddAddress {
        link: link.into(),
        prefix: prefix(a),
    }
}

/// The kernel after `bond0` (members eth0, eth1) and what `net` put on it.
fn bonded_box() -> Observed {
    let mut eth0 = nic(2, "eth0", 1);
    eth0.controller = Some(10);
    let mut eth1 = nic(3, "eth1", 2);
    eth1.controller = Some(10);
    let bond0 = Nic {
        index: 10,
        name: "bond0".into(),
        kind: Some("bond".into()),
        mtu: Some(1500),
        up: true,
        bond: Some(bond_info_of(match &bond("b", &[], &[]).kind {
            LinkKind::Bond(b) => b,
            _ => unreachable!(),
        })),
        ..Nic::default()
    };
    Observed {
        links: vec![nic(1, "lo", 0), eth0, eth1, bond0],
        addresses: vec![(10, prefix("192.0.2.2/24")), (10, prefix("192.0.2.10/24"))],
        rules: vec![],
    }
}

fn bonded_network() -> Network {
    let mut b = bond("bond0", &["eth0", "eth1"], &["192.0.2.2/24"]);
    b.routes = vec![default_route("192.0.2.1")];
    network(vec![ethernet("eth0", &[]), ethernet("eth1", &[]), b])
}

#[test]
fn static_addresses_and_a_route_on_two_nics() {
    let observed = Observed {
        links: vec![nic(1, "lo", 0), nic(2, "eth0", 1), nic(3, "eth1", 2)],
        addresses: vec![(2, prefix("10.0.2.15/24"))],
        rules: vec![],
    };
    let mut eth0 = ethernet("eth0", &["192.0.2.2/24"]);
    eth0.routes = vec![default_route("192.0.2.1")];
    let net = network(vec![eth0, ethernet("eth1", &["10.1.0.2/24"])]);
    let steps = plan(&net, None, &observed).unwrap();
    assert_eq!(
        steps,
        [
            add("eth0", "192.0.2.2/24"),
            add("eth1", "10.1.0.2/24"),
            Step::AddRoute {
                link: "eth0".into(),
                route: default_route("192.0.2.1")
            },
        ],
        "the boot address 10.0.2.15 is not the config's to remove"
    );
}

#[test]
fn the_same_network_again_changes_nothing() {
    let net = bonded_network();
    assert_eq!(plan(&net, Some(&net), &bonded_box()).unwrap(), []);
}

#[test]
fn a_new_vlan_touches_nothing_else() {
    let before = bonded_network();
    let mut after = before.clone();
    after.links.insert(
        "bond0.42".into(),
        vlan("bond0.42", "bond0", 42, &["198.51.100.2/24"]),
    );
    let steps = plan(&after, Some(&before), &bonded_box()).unwrap();
    assert_eq!(
        steps,
        [
            Step::CreateVlan {
                name: "bond0.42".into(),
                parent: "bond0".into(),
                id: 42
            },
            Step::Up("bond0.42".into()),
            add("bond0.42", "198.51.100.2/24"),
        ]
    );
}

#[test]
fn the_boot_nic_goes_into_a_bond() {
    // eth0 booted with DHCP's address; the config bonds it with eth1.
    let observed = Observed {
        links: vec![nic(1, "lo", 0), nic(2, "eth0", 1), nic(3, "eth1", 2)],
        addresses: vec![(2, prefix("10.0.2.15/24"))],
        rules: vec![],
    };
    let steps = plan(&bonded_network(), None, &observed).unwrap();
    let pos = |s: &Step| {
        steps
            .iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("no {s:?} in {steps:#?}"))
    };
    let enslave0 = pos(&Step::Enslave {
        member: "eth0".into(),
        bond: "bond0".into(),
    });
    let enslave1 = pos(&Step::Enslave {
        member: "eth1".into(),
        bond: "bond0".into(),
    });
    assert!(pos(&Step::Down("eth0".into())) < pos(&Step::FlushAddresses("eth0".into())));
    assert!(pos(&Step::FlushAddresses("eth0".into())) < enslave0);
    assert!(
        enslave0 < enslave1,
        "the first member listed is enslaved first: the bond takes its MAC"
    );
    assert!(enslave1 < pos(&Step::Up("eth0".into())));
    assert!(pos(&Step::Up("bond0".into())) < pos(&add("bond0", "192.0.2.2/24")));
    assert!(
        pos(&add("bond0", "192.0.2.2/24")) < steps.len() - 1,
        "the route comes last"
    );
    assert!(matches!(steps.last(), Some(Step::AddRoute { link, .. }) if link == "bond0"));
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::AddAddress { link, .. } if link.starts_with("eth"))));
}

#[test]
fn an_address_change_removes_only_what_the_config_had_added() {
    let before = bonded_network();
    let mut after = before.clone();
    after.links.get_mut("bond0").unwrap().addresses = vec![prefix("192.0.2.5/24")];
    let steps = plan(&after, Some(&before), &bonded_box()).unwrap();
    // 192.0.2.10 is a VIP lbd holds: not the network's.
    assert_eq!(
        steps,
        [
            add("bond0", "192.0.2.5/24"),
            Step::DelAddress {
                link: "bond0".into(),
                prefix: prefix("192.0.2.2/24")
            },
            Step::AddRoute {
                link: "bond0".into(),
                route: default_route("192.0.2.1")
            },
        ]
    );
}

#[test]
fn a_bond_made_differently_is_made_again() {
    let before = bonded_network();
    let mut after = before.clone();
    if let LinkKind::Bond(b) = &mut after.links.get_mut("bond0").unwrap().kind {
        b.mode = BondMode::Lacp;
    }
    let steps = plan(&after, Some(&before), &bonded_box()).unwrap();
    assert_eq!(steps[0], Step::Delete("bond0".into()));
    assert!(matches!(&steps[1], Step::CreateBond { bond, .. } if bond.mode == BondMode::Lacp));
    for m in ["eth0", "eth1"] {
        assert!(steps.contains(&Step::Enslave {
            member: m.into(),
            bond: "bond0".into()
        }));
        assert!(
            steps.contains(&Step::Up(m.into())),
            "a released member is closed: {steps:#?}"
        );
    }
    assert!(steps.contains(&add("bond0", "192.0.2.2/24")));
}

#[test]
fn a_member_that_leaves_is_released_and_a_dropped_bond_deleted() {
    let before = bonded_network();
    let mut one_member = before.clone();
    if let LinkKind::Bond(b) = &mut one_member.links.get_mut("bond0").unwrap().kind {
        b.members = vec!["eth0".into()];
    }
    let steps = plan(&one_member, Some(&before), &bonded_box()).unwrap();
    assert_eq!(
        steps,
        [Step::Release("eth1".into()), Step::Up("eth1".into())]
    );

    let no_bond = network(vec![
        ethernet("eth0", &["192.0.2.2/24"]),
        ethernet("eth1", &[]),
    ]);
    let steps = plan(&no_bond, Some(&before), &bonded_box()).unwrap();
    assert_eq!(steps[0], Step::Delete("bond0".into()));
    assert!(steps.contains(&add("eth0", "192.0.2.2/24")));
    // A bond this config never made is left alone.
    let steps = plan(&no_bond, None, &bonded_box()).unwrap();
    assert!(!steps.contains(&Step::Delete("bond0".into())), "{steps:#?}");
}

#[test]
fn nics_are_found_by_mac_and_renamed() {
    let observed = Observed {
        links: vec![nic(1, "lo", 0), nic(2, "ens3", 1), nic(3, "ens4", 2)],
        addresses: vec![],
        rules: vec![],
    };
    let mut outside = ethernet("outside", &["192.0.2.2/24"]);
    outside.kind = LinkKind::Ethernet {
        matches: Some(NicMatch {
            mac: Some([0x52, 0x54, 0, 0, 0, 2]),
            ..NicMatch::default()
        }),
    };
    let steps = plan(&network(vec![outside.clone()]), None, &observed).unwrap();
    assert_eq!(
        steps,
        [
            Step::Down("ens4".into()),
            Step::Rename {
                from: "ens4".into(),
                to: "outside".into()
            },
            Step::Up("outside".into()),
            add("outside", "192.0.2.2/24"),
        ]
    );
    // After the rename the same config changes nothing.
    let mut renamed = observed.clone();
    renamed.links[2].name = "outside".into();
    renamed.addresses.push((3, prefix("192.0.2.2/24")));
    let net = network(vec![outside.clone()]);
    assert_eq!(plan(&net, Some(&net), &renamed).unwrap(), []);

    // By driver: both NICs are virtio, so that alone is ambiguous; with the path it is one.
    let mut by_driver = outside;
    by_driver.kind = LinkKind::Ethernet {
        matches: Some(NicMatch {
            driver: Some("virtio_net".into()),
            ..NicMatch::default()
        }),
    };
    let e = plan(&network(vec![by_driver.clone()]), None, &observed).unwrap_err();
    assert!(matches!(e, PlanError::Ambiguous { .. }), "{e}");
    by_driver.kind = LinkKind::Ethernet {
        matches: Some(NicMatch {
            driver: Some("virtio_net".into()),
            path: Some("0000:00:02.0".into()),
            ..NicMatch::default()
        }),
    };
    let steps = plan(&network(vec![by_driver.clone()]), None, &observed).unwrap();
    assert!(steps.contains(&Step::Rename {
        from: "ens3".into(),
        to: "outside".into()
    }));
    by_driver.kind = LinkKind::Ethernet {
        matches: Some(NicMatch {
            driver: Some("ixgbe".into()),
            ..NicMatch::default()
        }),
    };
    let e = plan(&network(vec![by_driver]), None, &observed).unwrap_err();
    assert!(e.to_string().contains("no NIC matches driver ixgbe"), "{e}");
    let e = plan(&network(vec![ethernet("eth9", &[])]), None, &observed).unwrap_err();
    assert!(matches!(e, PlanError::Missing { .. }), "{e}");
}

#[test]
fn rules_are_added_once_and_removed_when_dropped() {
    let rule = Rule {
        from: Some(prefix("10.1.0.0/24")),
        to: None,
        table: 100,
        priority: Some(1000),
    };
    let mut net = network(vec![]);
    net.rules = vec![rule.clone()];
    let empty = Observed::default();
    assert_eq!(
        plan(&net, None, &empty).unwrap(),
        [Step::AddRule(rule.clone())]
    );
    let with = Observed {
        rules: vec![rule.clone()],
        ..Observed::default()
    };
    assert_eq!(plan(&net, Some(&net), &with).unwrap(), []);
    assert_eq!(
        plan(&network(vec![]), Some(&net), &with).unwrap(),
        [Step::DelRule(rule)]
    );
}

#[test]
fn mtus_are_set_parents_first() {
    let mut b = bond("bond0", &["eth0", "eth1"], &[]);
    b.mtu = Some(9000);
    let mut v = vlan("bond0.7", "bond0", 7, &["198.51.100.2/24"]);
    v.mtu = Some(9000);
    let net = network(vec![ethernet("eth0", &[]), ethernet("eth1", &[]), v, b]);
    let observed = Observed {
        links: vec![nic(2, "eth0", 1), nic(3, "eth1", 2)],
        ..Observed::default()
    };
    let steps = plan(&net, None, &observed).unwrap();
    let mtus: Vec<&Step> = steps
        .iter()
        .filter(|s| matches!(s, Step::SetMtu { .. }))
        .collect();
    assert_eq!(
        mtus,
        [
            &Step::SetMtu {
                link: "bond0".into(),
                mtu: 9000
            },
            &Step::SetMtu {
                link: "bond0.7".into(),
                mtu: 9000
            }
        ]
    );
    let create_vlan = steps
        .iter()
        .position(|s| matches!(s, Step::CreateVlan { .. }))
        .unwrap();
    let create_bond = steps
        .iter()
        .position(|s| matches!(s, Step::CreateBond { .. }))
        .unwrap();
    assert!(create_bond < create_vlan);
}
