//! The wire observer against real sockets: a veth pair between two namespaces, an [`Observer`]
//! on one end, and from the other a VRRP advert sent through the kernel's IPv4 stack, a gratuitous ARP
//! and an unsolicited neighbour advertisement as hand-built frames. What the failover tests
//! conclude from the wire is only as good as this capture.
//!
//! Needs root (network namespaces, packet sockets); nothing leaves the namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use lbtest::chaos::analysis;
use lbtest::wire::{self, Event, Observer, WireError, IPPROTO_VRRP, VRRP_GROUP_V4};
use lbtest::{process, wait, MacAddr, Netns};

const OBS_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PEER_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x77, 0x00, 0x02]);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x100);
const PEER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe77, 0x0002);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The Internet checksum of the concatenated `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A VRRP v3 advert for IPv4 (interval 100 cs), checksummed over the pseudo-header of
/// `src` → `dst` as RFC 5798 says.
fn vrrp_v3(vrid: u8, priority: u8, vip: Ipv4Addr, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0x31, vrid, priority, 1, 0x00, 100, 0, 0];
    v.extend_from_slice(&vip.octets());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, IPPROTO_VRRP, 0, v.len() as u8]);
    let sum = checksum(&[&pseudo, &v]);
    v[6..8].copy_from_slice(&sum.to_be_bytes());
    v
}

/// A broadcast gratuitous ARP request for `ip` from `mac`.
fn garp(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited (override, not solicited) neighbour advertisement for `target` to all nodes,
/// with the target link-layer address option.
fn unsolicited_na(mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac.0);
    let len = icmp.len() as u16;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&ALL_NODES.octets());
    pseudo.extend_from_slice(&u32::from(len).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let sum = checksum(&[&pseudo, &icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn the_observer_sees_adverts_garps_and_neighbour_advertisements() {
    process::require_root("network namespaces and packet sockets");
    let ns = Netns::new("wire").expect("network namespaces (run the tests as root)");
    // The peer has its own namespace: in one namespace, a packet from a local address arriving
    // on the other end is a martian, and ARP would go unanswered.
    let peer = Netns::new("wire-peer").unwrap();
    ns.add_veth_to("obs0", &peer, "peer0").unwrap();
    peer.ip(&["link", "set", "peer0", "address", &PEER_MAC.to_string()])
        .unwrap();
    ns.add_addr("obs0", &format!("{OBS_IP}/24")).unwrap();
    peer.add_addr("peer0", &format!("{PEER_IP}/24")).unwrap();

    let before = Instant::now();
    let observer = Observer::start(&ns, "obs0").unwrap();
    assert_eq!(observer.ifname(), "obs0");
    let started = Instant::now();

    let multicast = vrrp_v3(77, 150, VIP, PEER_IP, VRRP_GROUP_V4);
    wire::send_ipv4(&peer, "peer0", IPPROTO_VRRP, VRRP_GROUP_V4, 255, &multicast).unwrap();
    // Unicast to a peer: the kernel resolves OBS_IP by ARP first.
    let unicast = vrrp_v3(77, 150, VIP, PEER_IP, OBS_IP);
    wire::send_ipv4(&peer, "peer0", IPPROTO_VRRP, OBS_IP, 255, &unicast).unwrap();
    wire::send_frame(&peer, "peer0", &garp(PEER_MAC, VIP)).unwrap();
    wire::send_frame(&peer, "peer0", &unsolicited_na(PEER_MAC, PEER_LL, VIP6)).unwrap();

    let complete = |events: &[Event]| {
        wire::adverts(events, 77).count() >= 2
            && !wire::garps_for(events, IpAddr::V4(VIP), started, Duration::from_secs(10))
                .is_empty()
            && !wire::garps_for(events, IpAddr::V6(VIP6), started, Duration::from_secs(10))
                .is_empty()
    };
    let events = wait::until_some(Duration::from_secs(3), Duration::from_millis(20), || {
        Some(observer.events()).filter(|e| complete(e))
    })
    .unwrap_or_else(|| {
        panic!(
            "the adverts, the gratuitous ARP and the NA on obs0: not within 3 s; seen:\n{}",
            wire::timeline(&observer.events(), before)
        )
    });
    assert_eq!(observer.dropped(), 0);

    let adverts: Vec<_> = wire::adverts(&events, 77).collect();
    let (first, v) = adverts[0];
    assert_eq!(first.packet.link.src, PEER_MAC);
    assert_eq!(
        first.packet.link.dst,
        MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x12])
    );
    assert_eq!(v.src, IpAddr::V4(PEER_IP));
    assert_eq!(v.dst, IpAddr::V4(VRRP_GROUP_V4));
    assert_eq!((v.ttl, v.version, v.vrid, v.priority), (255, 3, 77, 150));
    assert_eq!(v.interval, Duration::from_secs(1));
    assert_eq!(v.addresses, [IpAddr::V4(VIP)]);
    assert!(first.at >= before && first.at <= Instant::now());
    let (second, v) = adverts[1];
    assert_eq!((v.dst, v.ttl), (IpAddr::V4(OBS_IP), 255));
    assert!(second.at >= first.at);
    assert_eq!(
        wire::adverts_to(&events, 77),
        [IpAddr::V4(VRRP_GROUP_V4), IpAddr::V4(OBS_IP)].into()
    );

    // The kernel's ARP for OBS_IP is seen too, and is not an announcement of the VIP.
    assert!(events.iter().any(|e| e
        .packet
        .arp()
        .is_some_and(|a| !a.is_gratuitous() && a.target_ip == OBS_IP)));
    let garps = wire::garps_for(&events, IpAddr::V4(VIP), started, Duration::from_secs(10));
    assert_eq!(garps.len(), 1, "{garps:#?}");
    let a = garps[0].packet.arp().unwrap();
    assert_eq!((a.op, a.sender_mac, a.sender_ip), (1, PEER_MAC, VIP));
    assert!(a.is_gratuitous());

    let nas = wire::garps_for(&events, IpAddr::V6(VIP6), started, Duration::from_secs(10));
    assert_eq!(nas.len(), 1, "{nas:#?}");
    let n = nas[0].packet.neighbor_advert().unwrap();
    assert_eq!((n.src, n.dst, n.hop_limit), (PEER_LL, ALL_NODES, 255));
    assert_eq!(n.target, VIP6);
    assert!(n.is_unsolicited() && n.override_ && !n.router);
    assert_eq!(n.target_mac, Some(PEER_MAC));

    // One advertiser, no split brain; it counts as master from its first advert.
    let adverts = analysis::ipv4_adverts(&events, 77);
    let held = analysis::masterships(&adverts, Duration::from_secs(3));
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].source, IpAddr::V4(PEER_IP));
    assert!(analysis::split_brain(&held).is_empty());

    assert!(observer.since(Instant::now()).is_empty());
    assert_eq!(observer.since(before).len(), events.len());
    let all = observer.stop().unwrap();
    assert!(all.len() >= events.len());
}

#[test]
fn a_missing_interface_is_an_error_naming_it() {
    process::require_root("network namespaces and packet sockets");
    let ns = Netns::new("wire-none").expect("network namespaces (run the tests as root)");
    let err = Observer::start(&ns, "nosuch0").unwrap_err();
    assert!(
        matches!(&err, WireError::Socket { ifname, .. } if ifname == "nosuch0"),
        "{err}"
    );
    assert!(err.to_string().contains("nosuch0"), "{err}");
}
