//! A `[network]` applied to a real kernel, in a test namespace: addresses, routes in the main
//! and another table, a policy rule, an MTU, and a NIC found by its MAC and renamed; applied
//! again it changes nothing; a changed config changes only what differs; the way back (what a
//! rollback does) removes what the config added and leaves the rest. `ip` is the independent
//! check. Bonds and VLANs need a kernel with those drivers: they are tested in QEMU guests.
//! Needs root and `ip` (see net_support).

mod net_support;

use std::net::Ipv4Addr;

use init::net::apply::{apply, Sysfs};
use init::net::plan::Step;
use lbd::config;
use lbd::config::network::Network;
use lbd::netlink::Netlink;
use net_support::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 1);
/// The second NIC of the client namespace, before init renames it.
const SECOND_MAC: &str = "02:00:00:00:09:08";

fn network(text: &str) -> Network {
    let loaded = config::parse("net.toml", text).unwrap_or_else(|e| panic!("{e}"));
    loaded.config.network.expect("a [network]")
}

fn first() -> Network {
    network(&first_text_with("", ""))
}

/// Applies `net` over `previous` in the client namespace; the steps taken.
fn apply_in(lan: &Lan, net: &Network, previous: Option<&Network>) -> Vec<Step> {
    let (net, previous) = (net.clone(), previous.cloned());
    lan.client.run(move || async move {
        let nl = Netlink::connect().unwrap();
        apply(&nl, &Sysfs::default(), &net, previous.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .steps
    })
}

#[test]
fn a_network_is_applied_as_a_difference() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    // A second NIC under the kernel's name; its peer stays in the namespace.
    lan.client.ip(&[
        "link", "add", "ens9", "address", SECOND_MAC, "type", "veth", "peer", "name", "ens9p",
    ]);
    lan.client.ip(&["link", "set", "ens9p", "up"]);

    let net = first();
    let steps = apply_in(&lan, &net, None);
    assert!(
        steps.contains(&Step::Rename {
            from: "ens9".into(),
            to: "inside".into()
        }),
        "{steps:#?}"
    );
    let addrs = lan.client.ip(&["-4", "addr", "show"]);
    assert!(
        addrs.contains("inet 10.9.1.2/24") && addrs.contains("lan0"),
        "{addrs}"
    );
    let inside = lan.client.ip(&["addr", "show", "dev", "inside"]);
    assert!(
        inside.contains("mtu 1400")
            && inside.contains("inet 10.60.0.2/24")
            && inside.contains(SECOND_MAC),
        "{inside}"
    );
    let main = lan.client.ip(&["-4", "route", "show"]);
    assert!(
        main.contains("default via 10.9.1.1 dev lan0 proto static"),
        "{main}"
    );
    let table = lan.client.ip(&["-4", "route", "show", "table", "100"]);
    assert!(
        table.contains("10.50.0.0/16 via 10.9.1.1 dev lan0 proto static metric 7"),
        "{table}"
    );
    let rules = lan.client.ip(&["-4", "rule", "show"]);
    assert!(
        rules.contains("1000:\tfrom 10.60.0.0/24 lookup 100"),
        "{rules}"
    );
    // The route works: TCP to the server.
    let server = lan.server.thread(|| {
        let l = std::net::TcpListener::bind((SERVER, 7081)).unwrap();
        l.accept().unwrap().1
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let local = join(lan.client.thread(|| {
        std::net::TcpStream::connect_timeout(
            &(SERVER, 7081).into(),
            std::time::Duration::from_secs(3),
        )
        .unwrap()
        .local_addr()
        .unwrap()
    }));
    assert_eq!(join(server), local);

    // The same network again: not one step, and the links are as they were.
    let links_before = lan.client.ip(&["-o", "link", "show"]);
    assert_eq!(apply_in(&lan, &net, Some(&net)), []);
    assert_eq!(lan.client.ip(&["-o", "link", "show"]), links_before);
    assert_eq!(
        lan.client.ip(&["-4", "rule", "show"]),
        rules,
        "no rule added twice"
    );

    // A changed address on `inside` touches only `inside`'s addresses.
    let changed = network(&first_text_with(
        "addresses = [\"10.60.0.2/24\"]",
        "addresses = [\"10.60.0.3/24\"]",
    ));
    let steps = apply_in(&lan, &changed, Some(&net));
    assert_eq!(steps.len(), 2, "{steps:#?}");
    let inside = lan.client.ip(&["-4", "addr", "show", "dev", "inside"]);
    assert!(
        inside.contains("10.60.0.3/24") && !inside.contains("10.60.0.2/24"),
        "{inside}"
    );

    // Back to the boot network: what the config added goes, what it did not is kept.
    lan.client
        .ip(&["addr", "add", "10.9.1.99/32", "dev", "lan0"]);
    let boot = init::net::apply::boot_network(
        "lan0",
        "10.9.1.2/24".parse().unwrap(),
        Some(SERVER.into()),
        false,
    );
    apply_in(&lan, &boot, Some(&changed));
    let all = lan.client.ip(&["-4", "addr", "show"]);
    assert!(!all.contains("10.60.0.3"), "{all}");
    assert!(
        all.contains("10.9.1.2/24") && all.contains("10.9.1.99/32"),
        "{all}"
    );
    let table = lan.client.ip(&["-4", "route", "show", "table", "100"]);
    assert!(table.trim().is_empty(), "{table}");
    let rules = lan.client.ip(&["-4", "rule", "show"]);
    assert!(!rules.contains("lookup 100"), "{rules}");
    let main = lan.client.ip(&["-4", "route", "show"]);
    assert!(main.contains("default via 10.9.1.1 dev lan0"), "{main}");
}

fn first_text_with(from: &str, to: &str) -> String {
    let text = format!(
        r#"
[network.link.lan0]
addresses = ["10.9.1.2/24"]
route = [
    {{ to = "default", via = "10.9.1.1" }},
    {{ to = "10.50.0.0/16", via = "10.9.1.1", table = 100, metric = 7 }},
]

[network.link.inside]
match = {{ mac = "{SECOND_MAC}" }}
mtu = 1400
addresses = ["10.60.0.2/24"]

[[network.rule]]
from = "10.60.0.0/24"
table = 100
priority = 1000
"#
    );
    assert!(text.contains(from));
    text.replacen(from, to, 1)
}

#[test]
fn a_nic_that_is_not_there_is_reported_and_nothing_is_touched() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let net = network(
        "[network.link.lan0]\naddresses = [\"10.9.1.2/24\"]\n\n[network.link.outside]\nmatch = { driver = \"ixgbe\" }\n",
    );
    let before = lan.client.ip(&["-4", "addr", "show"]);
    let err = lan.client.run(move || async move {
        let nl = Netlink::connect().unwrap();
        apply(&nl, &Sysfs::default(), &net, None)
            .await
            .unwrap_err()
            .to_string()
    });
    assert!(
        err.contains("link outside: no NIC matches driver ixgbe"),
        "{err}"
    );
    assert_eq!(lan.client.ip(&["-4", "addr", "show"]), before);
}
