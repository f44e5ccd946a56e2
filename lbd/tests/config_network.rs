//! `[network]`: the node's links, bonds, VLANs, addresses and routes, validated like the rest.
//! Ten mistakes planted in a two-bond, two-VLAN network come out as exactly ten errors at their
//! line and column; the rest of the config is held to the links it names.

use lbd::config::network::{BondMode, LacpRate, LinkKind, XmitHashPolicy};
use lbd::config::{self, Location};
use std::net::IpAddr;

/// Two NICs bonded by LACP, two more in an active-backup bond, two VLANs on the first bond, a
/// policy rule for replies from the inside network.
const NETWORK: &str = r#"
[network]
resolvers = ["192.0.2.53", "192.0.2.54"]
search = ["example.net"]
confirm_timeout = "45s"

[network.link.eth0]
match = { mac = "52:54:00:00:00:10" }

[network.link.eth1]
match = { path = "0000:00:04.0", driver = "e1000e" }

[network.link.eth2]
[network.link.eth3]

[network.link.outside]
kind = "bond"
members = ["eth0", "eth1"]
mode = "802.3ad"
lacp_rate = "fast"
xmit_hash_policy = "layer3+4"
min_links = 1
miimon = "100ms"
updelay = "200ms"
mtu = 9000

[network.link.inside]
kind = "bond"
members = ["eth2", "eth3"]
mode = "active-backup"
primary = "eth2"
addresses = ["10.1.0.2/24"]

[network.link."outside.10"]
kind = "vlan"
parent = "outside"
id = 10
mtu = 1500
addresses = ["192.0.2.2/24", "2001:db8::2/64"]
route = [
    { to = "default", via = "192.0.2.1", metric = 10 },
    { to = "198.51.100.0/24", via = "192.0.2.254", table = 100 },
]

[network.link."outside.20"]
kind = "vlan"
parent = "outside"
id = 20
addresses = ["203.0.113.2/24"]

[[network.rule]]
from = "10.1.0.0/24"
table = 100
priority = 1000

[vrrp.instance.ext]
interface = "outside.10"
vrid = 51
priority = 150
vips = ["192.0.2.10/24"]
track_interfaces = ["inside"]

[vrrp.instance.int]
interface = "inside"
vrid = 52
priority = 150
vips = ["10.1.0.1/24"]

[ipvs.sync]
interface = "inside"
follow = "ext"
"#;

#[test]
fn a_network_of_bonds_and_vlans_is_read_as_written() {
    let loaded = config::parse("network.toml", NETWORK).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warning_lines());
    let net = loaded.config.network.expect("a network");
    assert_eq!(
        net.links.keys().collect::<Vec<_>>(),
        [
            "eth0",
            "eth1",
            "eth2",
            "eth3",
            "inside",
            "outside",
            "outside.10",
            "outside.20"
        ]
    );
    let LinkKind::Bond(outside) = &net.links["outside"].kind else {
        panic!("outside is a bond")
    };
    assert_eq!(outside.members, ["eth0", "eth1"]);
    assert_eq!(outside.mode, BondMode::Lacp);
    assert_eq!(outside.lacp_rate, LacpRate::Fast);
    assert_eq!(outside.xmit_hash_policy, Some(XmitHashPolicy::Layer34));
    assert_eq!(outside.updelay.as_millis(), 200);
    assert_eq!(net.links["outside"].mtu, Some(9000));
    let LinkKind::Bond(inside) = &net.links["inside"].kind else {
        panic!("inside is a bond")
    };
    assert_eq!(inside.mode, BondMode::ActiveBackup);
    assert_eq!(inside.primary.as_deref(), Some("eth2"));
    assert_eq!(inside.miimon.as_millis(), 100, "the default miimon");
    assert_eq!(
        net.links["outside.10"].kind,
        LinkKind::Vlan {
            parent: "outside".into(),
            id: 10
        }
    );
    let LinkKind::Ethernet { matches: Some(m) } = &net.links["eth1"].kind else {
        panic!("eth1 is matched")
    };
    assert_eq!(
        (m.path.as_deref(), m.driver.as_deref()),
        (Some("0000:00:04.0"), Some("e1000e"))
    );
    assert_eq!(net.links["outside.10"].routes.len(), 2);
    assert_eq!(net.rules.len(), 1);
    assert_eq!(net.confirm_timeout.as_secs(), 45);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // Main table only: the /24 in table 100 is policy routing.
    assert_eq!(net.route_to(ip("198.51.100.7")), Some("outside.10"));
    assert_eq!(net.route_to(ip("10.1.0.50")), Some("inside"));
    assert_eq!(net.route_to(ip("2001:db8::99")), Some("outside.10"));
    assert_eq!(net.route_to(ip("2001:db9::1")), None);
}

/// (what to find, what to put instead, the error code, the text the error points at).
const MISTAKES: &[(&str, &str, &str, &str)] = &[
    // A kind the kernel has no link of.
    (
        "kind = \"vlan\"\nparent = \"outside\"\nid = 20",
        "kind = \"vlam\"\nparent = \"outside\"\nid = 20",
        "bad-link-kind",
        "\"vlam\"",
    ),
    // A bond member that is not a link.
    (
        "members = [\"eth2\", \"eth3\"]",
        "members = [\"eth2\", \"eth4\"]",
        "unknown-link",
        "\"eth4\"",
    ),
    // A bonding mode the kernel does not know.
    (
        "mode = \"802.3ad\"",
        "mode = \"lacp\"",
        "bad-bond-option",
        "\"lacp\"",
    ),
    // A VLAN id out of 802.1Q's range.
    ("id = 10", "id = 4095", "out-of-range", "4095"),
    // A VLAN larger than its parent.
    ("mtu = 1500", "mtu = 9216", "vlan-mtu-above-parent", "9216"),
    // A bond key on an ethernet link.
    (
        "[network.link.eth3]",
        "[network.link.eth3]\nprimary = \"eth2\"",
        "key-not-for-kind",
        "\"eth2\"",
    ),
    // A MAC with five bytes.
    (
        "mac = \"52:54:00:00:00:10\"",
        "mac = \"52:54:00:00:10\"",
        "bad-mac",
        "\"52:54:00:00:10\"",
    ),
    // A default route without a gateway.
    (
        "{ to = \"default\", via = \"192.0.2.1\", metric = 10 }",
        "{ to = \"default\", metric = 10 }",
        "bad-route",
        "\"default\", metric",
    ),
    // A VRRP interface the node does not have.
    (
        "interface = \"outside.10\"",
        "interface = \"outside.11\"",
        "unknown-interface",
        "\"outside.11\"",
    ),
    // A VIP no neighbour on its link would send to.
    (
        "vips = [\"10.1.0.1/24\"]",
        "vips = [\"10.2.0.1/24\"]",
        "vip-outside-subnets",
        "\"10.2.0.1/24\"",
    ),
];

fn planted() -> (String, Vec<(String, usize, usize)>) {
    let mut text = NETWORK.to_string();
    for (from, to, _, _) in MISTAKES {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} is not once in the config"
        );
        text = text.replacen(from, to, 1);
    }
    // Located once all are planted: a planted line moves the ones below it.
    let mut expected = Vec::new();
    for (_, to, code, at) in MISTAKES {
        assert_eq!(
            text.matches(to).count(),
            1,
            "{to:?} is not once in the planted config"
        );
        let start = text.find(to).unwrap() + to.find(at).unwrap();
        let loc = Location::of(&text, start);
        expected.push((code.to_string(), loc.line, loc.column));
    }
    expected.sort();
    (text, expected)
}

#[test]
fn ten_network_mistakes_make_ten_errors_and_nothing_else() {
    let (text, expected) = planted();
    let err = match config::parse("network.toml", &text) {
        Ok(_) => panic!("the planted config was accepted"),
        Err(e) => e,
    };
    let mut got: Vec<(String, usize, usize)> = err
        .errors()
        .map(|d| {
            let loc = Location::of(&text, d.span.as_ref().map_or(0, |s| s.start));
            (d.code.to_string(), loc.line, loc.column)
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "\n{err}");
    let rendered = err.to_string();
    assert!(
        rendered.contains("did you mean `outside.10`?"),
        "a misspelt interface gets the nearest link:\n{rendered}"
    );
    assert!(
        rendered.contains("did you mean \"vlan\"?"),
        "a misspelt kind gets the nearest:\n{rendered}"
    );
}

fn errors_of(text: &str) -> Vec<(String, String)> {
    match config::parse("network.toml", text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .map(|d| (d.code.to_string(), d.message.clone()))
            .collect(),
    }
}

#[test]
fn bonds_are_checked_across_links() {
    let two_bonds = NETWORK.replacen(
        "members = [\"eth2\", \"eth3\"]",
        "members = [\"eth2\", \"eth1\"]",
        1,
    );
    let e = errors_of(&two_bonds);
    assert!(
        e.iter().any(|(c, m)| c == "link-in-two-bonds"
            && m.contains("`eth1` is a member of bonds `outside` and `inside`")),
        "{e:?}"
    );
    assert_eq!(e.len(), 1, "{e:?}");
    let not_a_member = NETWORK.replacen("primary = \"eth2\"", "primary = \"eth0\"", 1);
    assert_eq!(errors_of(&not_a_member)[0].0, "unknown-member");

    let addressed_member = NETWORK.replacen(
        "[network.link.eth2]",
        "[network.link.eth2]\naddresses = [\"10.9.0.1/24\"]",
        1,
    );
    assert_eq!(errors_of(&addressed_member)[0].0, "member-has-addresses");

    let vrrp_on_member = NETWORK.replacen("interface = \"inside\"", "interface = \"eth2\"", 1);
    let e = errors_of(&vrrp_on_member);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "interface-is-bond-member");

    let vlan_on_member = NETWORK.replacen(
        "parent = \"outside\"\nid = 20",
        "parent = \"eth0\"\nid = 20",
        1,
    );
    assert_eq!(errors_of(&vlan_on_member)[0].0, "vlan-on-bond-member");

    let lacp_rate_off_mode = NETWORK.replacen(
        "primary = \"eth2\"",
        "primary = \"eth2\"\nlacp_rate = \"fast\"",
        1,
    );
    assert_eq!(errors_of(&lacp_rate_off_mode)[0].0, "key-not-for-mode");

    let twice = NETWORK.replacen(
        "addresses = [\"203.0.113.2/24\"]",
        "addresses = [\"10.1.0.2/24\"]",
        1,
    );
    let e = errors_of(&twice);
    assert!(
        e.iter()
            .any(|(c, m)| c == "duplicate-address" && m.contains("10.1.0.2")),
        "{e:?}"
    );
}

#[test]
fn a_refused_link_is_still_known_to_its_bond() {
    // eth3's mistake is reported once; the bond naming it does not add "unknown link".
    let text = NETWORK.replacen("[network.link.eth3]", "[network.link.eth3]\nmtuu = 1500", 1);
    let e = errors_of(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "unknown-key");
}

#[test]
fn the_node_must_hold_the_addresses_it_sends_from() {
    // The TCP API takes mutual TLS only: its table is part of every config here.
    let ca = lbtest::tls::TestCa::new("network test CA");
    let tls = ca.api_tls_toml(&ca.server(&["192.0.2.2".parse().unwrap()]), &[]);
    let api = NETWORK.replacen(
        "[network]",
        "[node]\napi_listen = \"192.0.2.9:9000\"\n\n[network]",
        1,
    ) + &tls;
    let e = errors_of(&api);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "not-a-node-address");
    // Held, or any address: accepted.
    for ok in ["192.0.2.2:9000", "0.0.0.0:9000"] {
        let text = NETWORK.replacen(
            "[network]",
            &format!("[node]\napi_listen = \"{ok}\"\n\n[network]"),
            1,
        ) + &tls;
        assert_eq!(errors_of(&text), Vec::new(), "{ok}");
    }
    // A DHCP link may bring any address: nothing to hold it to.
    let dhcp = api.replacen(
        "[network.link.eth3]",
        "[network.link.eth3]\n[network.link.mgmt]\ndhcp = true",
        1,
    );
    assert_eq!(errors_of(&dhcp), Vec::new());
}

#[test]
fn without_a_network_section_interfaces_are_not_checked() {
    let text = "[vrrp.instance.v]\ninterface = \"eth7\"\nvrid = 1\npriority = 100\nvips = [\"192.0.2.1/24\"]\n";
    let loaded = config::parse("x.toml", text).unwrap();
    assert!(loaded.config.network.is_none());
}
