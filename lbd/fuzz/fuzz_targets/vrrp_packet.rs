//! VRRP advertisement decoder and the node's receive path: arbitrary bytes, addresses and
//! TTL must never panic, and whatever parses must encode and decode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lbd::vrrp::packet::Advert;
use lbd::vrrp::{Input, Node, Packet, Spec, Version};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

fn spec(version: Version, ipv6: bool) -> Spec {
    Spec {
        name: "f".into(),
        interface: "eth0".into(),
        vrid: 1,
        version,
        ipv6,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        vips: vec![if ipv6 { "fe80::1/64" } else { "10.0.0.1/24" }.parse().unwrap()],
        unicast_peers: vec![],
        unicast_source: None,
        auth_pass: (version == Version::V2).then(|| "pw".to_string()),
        track_interfaces: vec![],
        virtual_mac: false,
        accept: false,
        garp_count: 1,
        garp_repeat_after: Duration::ZERO,
        quorum_priority_drop: 0,
        primary: Some(if ipv6 { "fe80::2".parse().unwrap() } else { "10.0.0.2".parse().unwrap() }),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let ipv6 = data[0] & 1 == 1;
    let ttl = data[1];
    let msg = &data[2..];
    let (src, dst) = if ipv6 {
        (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3)), IpAddr::V6(lbd::vrrp::packet::MULTICAST_V6))
    } else {
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), IpAddr::V4(lbd::vrrp::packet::MULTICAST_V4))
    };
    if let Ok(adv) = Advert::parse(msg, src, dst) {
        // What parses encodes, and decodes to the same advertisement (fields the decoder
        // ignores, such as reserved bits or type-0 auth data, may differ in the bytes).
        let back = adv.emit(src, dst).expect("a parsed advert encodes");
        assert_eq!(Advert::parse(&back, src, dst).expect("re-parse"), adv);
    }
    let mut node = Node::new();
    let version = if data[0] & 2 == 2 { Version::V3 } else { Version::V2 };
    let _ = node.step(
        Duration::ZERO,
        Input::Configure { instances: vec![spec(version, ipv6)], sync_groups: Default::default() },
    );
    let _ = node.step(
        Duration::from_millis(1),
        Input::Packet(Packet { ifname: "eth0".into(), src, dst, ttl, data: msg.to_vec() }),
    );
});
