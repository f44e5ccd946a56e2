//! `[bgp]`, `[bgp.peer.NAME]` and `announce = "bgp"`: what a valid N-way config becomes, and
//! each thing that cannot work refused with its code, where it is written.

use lbd::config::{self, Announce, Scheduler, ServiceFlag};
use std::time::Duration;

const BGP: &str = r#"
[bgp]
local_as = 65001
router_id = "192.0.2.2"

[bgp.peer.tor1]
address = "192.0.2.1"
remote_as = 65000
password = "s3cret"
"#;

const NWAY: &str = r#"
[service.web]
vip = "198.51.100.10:80"
announce = "bgp"
forwarding = "dr"
[[service.web.real]]
address = "10.0.0.1"
"#;

/// The codes of the errors `text` gets, and the text each error's span starts with.
fn errors(text: &str) -> Vec<(String, String)> {
    match config::parse("t.toml", text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .map(|d| {
                let at = d.span.clone().map_or(String::new(), |s| {
                    text[s.start..].chars().take(20).collect::<String>()
                });
                (d.code.to_string(), at)
            })
            .collect(),
    }
}

fn codes(text: &str) -> Vec<String> {
    errors(text).into_iter().map(|(c, _)| c).collect()
}

#[test]
fn an_nway_service_defaults_to_mh_with_port_and_fallback_and_the_password_is_redacted() {
    let loaded = config::parse("t.toml", &format!("{BGP}{NWAY}")).unwrap();
    let c = &loaded.config;
    let web = &c.services["web"];
    assert_eq!(web.announce, Announce::Bgp);
    assert_eq!(web.vrrp_instance, None);
    assert_eq!(web.scheduler, Scheduler::Mh);
    assert!(web.flags.contains(&ServiceFlag::ShPort));
    assert!(web.flags.contains(&ServiceFlag::ShFallback));
    let bgp = c.bgp.as_ref().unwrap();
    assert_eq!(bgp.local_as, Some(65001));
    assert_eq!(bgp.hold_time, Duration::from_secs(3));
    assert!(!bgp.bfd);
    assert_eq!(bgp.bfd_interval, Duration::from_millis(100));
    assert_eq!(bgp.bfd_multiplier, 3);
    assert_eq!(bgp.watchdog, Duration::from_secs(10));
    let peer = &bgp.peers["tor1"];
    assert_eq!(peer.remote_as, 65000);
    assert_eq!(peer.password.as_deref(), Some("s3cret"));
    let json = serde_json::to_string(c).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(json.contains("<redacted>"));
}

#[test]
fn nway_services_turn_sloppy_tcp_and_sctp_on_unless_the_config_says_otherwise() {
    let c = config::parse("t.toml", &format!("{BGP}{NWAY}"))
        .unwrap()
        .config;
    assert_eq!(
        (c.ipvs.sloppy_tcp, c.ipvs.sloppy_sctp),
        (Some(true), Some(true))
    );
    let off = format!("[ipvs]\nsloppy_tcp = false\n{BGP}{NWAY}");
    let c = config::parse("t.toml", &off).unwrap().config;
    assert_eq!(
        (c.ipvs.sloppy_tcp, c.ipvs.sloppy_sctp),
        (Some(false), Some(true))
    );
    // Without N-way services the kernel's setting is left alone.
    let pair = "[service.web]\nfwmark = 7\n[[service.web.real]]\naddress = \"10.0.0.1\"\n";
    let c = config::parse("t.toml", pair).unwrap().config;
    assert_eq!((c.ipvs.sloppy_tcp, c.ipvs.sloppy_sctp), (None, None));
}

#[test]
fn services_turn_expire_nodest_conn_on_unless_the_config_says_otherwise() {
    let pair = "[service.web]\nfwmark = 7\n[[service.web.real]]\naddress = \"10.0.0.1\"\n";
    let c = config::parse("t.toml", pair).unwrap().config;
    assert_eq!(c.ipvs.expire_nodest_conn, Some(true));
    let c = config::parse("t.toml", &format!("{BGP}{NWAY}"))
        .unwrap()
        .config;
    assert_eq!(c.ipvs.expire_nodest_conn, Some(true));
    let off = format!("[ipvs]\nexpire_nodest_conn = false\n{pair}");
    let c = config::parse("t.toml", &off).unwrap().config;
    assert_eq!(c.ipvs.expire_nodest_conn, Some(false));
    // No services: the kernel's setting is left alone.
    let c = config::parse("t.toml", "[node]\nhostname = \"lb1\"\n")
        .unwrap()
        .config;
    assert_eq!(c.ipvs.expire_nodest_conn, None);
}

#[test]
fn peers_take_the_nodes_timers_unless_they_set_their_own() {
    let text = r#"
[bgp]
local_as = 65001
router_id = "192.0.2.2"
hold_time = "9s"
bfd = true
bfd_interval = "50ms"
bfd_multiplier = 5
watchdog = "30s"
[bgp.peer.a]
address = "192.0.2.1"
remote_as = 65000
[bgp.peer.b]
address = "2001:db8::1"
remote_as = 65000
hold_time = "0s"
bfd = false
multihop = 2
"#;
    let c = config::parse("t.toml", &format!("{text}{NWAY}"))
        .unwrap()
        .config;
    let bgp = c.bgp.unwrap();
    assert_eq!(bgp.peers["a"].hold_time, Duration::from_secs(9));
    assert!(bgp.peers["a"].bfd);
    assert_eq!(bgp.peers["b"].hold_time, Duration::ZERO);
    assert!(!bgp.peers["b"].bfd);
    assert_eq!(bgp.peers["b"].multihop, Some(2));
    assert_eq!(bgp.bfd_interval, Duration::from_millis(50));
    assert_eq!(bgp.bfd_multiplier, 5);
    assert_eq!(bgp.watchdog, Duration::from_secs(30));
}

#[test]
fn the_router_id_defaults_to_the_first_ipv4_address_of_the_network() {
    let text = r#"
[network.link.eth0]
addresses = ["2001:db8::2/64", "192.0.2.2/24"]
[bgp]
local_as = 65001
[bgp.peer.tor1]
address = "192.0.2.1"
remote_as = 65000
"#;
    let c = config::parse("t.toml", &format!("{text}{NWAY}"))
        .unwrap()
        .config;
    assert_eq!(c.bgp.unwrap().router_id, Some("192.0.2.2".parse().unwrap()));
}

#[test]
fn pair_and_nway_services_live_side_by_side() {
    let text = format!(
        r#"{BGP}{NWAY}
[vrrp.instance.front]
interface = "eth0"
vrid = 51
priority = 150
vips = ["192.0.2.10/24"]
[service.mail]
vip = "192.0.2.10:25"
[[service.mail.real]]
address = "10.0.0.9"
"#
    );
    let c = config::parse("t.toml", &text).unwrap().config;
    assert_eq!(c.services["mail"].announce, Announce::Vrrp);
    assert_eq!(c.services["mail"].vrrp_instance.as_deref(), Some("front"));
    assert_eq!(c.services["mail"].scheduler, Scheduler::Wlc);
    assert_eq!(c.services["web"].announce, Announce::Bgp);
}

#[test]
fn what_cannot_work_is_refused_with_its_code_where_it_is_written() {
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "NAT replies go to one gateway",
            format!("{BGP}{}", NWAY.replace("forwarding = \"dr\"", "")),
            "announce-nat",
            "\"bgp\"",
        ),
        (
            "a NAT real in a DR service",
            format!("{BGP}{NWAY}forwarding = \"nat\"\n"),
            "announce-nat",
            "\"bgp\"",
        ),
        (
            "a fwmark service has no VIP",
            format!(
                "{BGP}[service.m]\nfwmark = 1\nannounce = \"bgp\"\nforwarding = \"dr\"\n[[service.m.real]]\naddress = \"10.0.0.1\"\n"
            ),
            "announce-fwmark",
            "\"bgp\"",
        ),
        (
            "no [bgp]",
            NWAY.to_string(),
            "announce-without-bgp",
            "\"bgp\"",
        ),
        (
            "no peer",
            format!("[bgp]\nlocal_as = 65001\nrouter_id = \"192.0.2.2\"\n{NWAY}"),
            "announce-without-bgp",
            "\"bgp\"",
        ),
        (
            "another scheduler",
            format!("{BGP}{}", NWAY.replace("announce", "scheduler = \"wlc\"\nannounce")),
            "announce-needs-mh",
            "\"wlc\"",
        ),
        (
            "a VRRP instance holds the VIP too",
            format!(
                "{BGP}{NWAY}[vrrp.instance.v]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"198.51.100.10/32\"]\n"
            ),
            "bgp-vip-in-vrrp",
            "\"198.51.100.10:80\"",
        ),
        (
            "no AS",
            format!("{}{NWAY}", BGP.replace("local_as = 65001\n", "")),
            "bgp-no-local-as",
            "",
        ),
        (
            "no router id and no network",
            format!("{}{NWAY}", BGP.replace("router_id = \"192.0.2.2\"\n", "")),
            "bgp-no-router-id",
            "",
        ),
        (
            "a hold time BGP does not allow",
            format!("{}{NWAY}", BGP.replace("local_as", "hold_time = \"2s\"\nlocal_as")),
            "bad-hold-time",
            "\"2s\"",
        ),
        (
            "a watchdog shorter than an apply may take",
            format!("{}{NWAY}", BGP.replace("local_as", "watchdog = \"500ms\"\nlocal_as")),
            "bad-watchdog",
            "\"500ms\"",
        ),
        (
            "a peer no link reaches",
            format!(
                "[network.link.eth0]\naddresses = [\"10.9.0.2/24\"]\n{BGP}{NWAY}"
            ),
            "bgp-peer-unreachable",
            "\"192.0.2.1\"",
        ),
        (
            "an IPv6 VIP and only IPv4 peers",
            format!(
                "{BGP}[service.v6]\nvip = \"[2001:db8::10]:80\"\nannounce = \"bgp\"\nforwarding = \"dr\"\n[[service.v6.real]]\naddress = \"[2001:db8:1::1]:80\"\n"
            ),
            "bgp-no-ipv6-peer",
            "\"[2001:db8::10]:80\"",
        ),
        (
            "one router twice",
            format!("{BGP}[bgp.peer.again]\naddress = \"192.0.2.1\"\nremote_as = 65000\n{NWAY}"),
            "duplicate-peer",
            "\"192.0.2.1\"",
        ),
    ];
    for (what, text, code, at) in cases {
        let errors = errors(text);
        assert!(
            errors.iter().any(|(c, s)| c == code && s.starts_with(at)),
            "{what}: expected {code} at {at:?}, got {errors:?}"
        );
        assert_eq!(
            errors.len(),
            1,
            "{what}: one mistake, one error: {errors:?}"
        );
    }
}

#[test]
fn a_peer_behind_a_route_or_a_dhcp_link_passes() {
    let routed = format!(
        "[network.link.eth0]\naddresses = [\"10.9.0.2/24\"]\nroute = [{{ to = \"default\", via = \"10.9.0.1\" }}]\n{BGP}{NWAY}"
    );
    assert_eq!(codes(&routed), Vec::<String>::new());
    let dhcp = format!("[network.link.eth0]\ndhcp = true\n{BGP}{NWAY}");
    assert_eq!(codes(&dhcp), Vec::<String>::new());
}
