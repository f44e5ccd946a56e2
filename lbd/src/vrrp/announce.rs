//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6) a new master sends
//! so switches and hosts learn where the virtual addresses are now. Pure encoders; the
//! runtime sends them (ARP on a packet socket, NA on an ICMPv6 socket, which fills in the
//! checksum) and paces them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of an ARP payload for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Length of the NA we send: ICMPv6 header, flags, target, one link-layer option.
pub const NA_LEN: usize = 32;
/// All-nodes multicast, where unsolicited NAs go (RFC 4861 7.2.6).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The RFC virtual router MAC for IPv4: 00-00-5E-00-01-{VRID} (RFC 5798 7.3).
pub fn virtual_mac_v4(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x01, vrid]
}

/// The RFC virtual router MAC for IPv6: 00-00-5E-00-02-{VRID}.
pub fn virtual_mac_v6(vrid: u8) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, 0x02, vrid]
}

/// A gratuitous ARP request announcing that `ip` is at `mac` (RFC 5227 "ARP Announcement":
/// sender and target protocol address both `ip`, target hardware address zero). Sent to the
/// Ethernet broadcast address; the payload only (the packet socket adds the Ethernet header).
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; ARP_LEN] {
    let mut p = [0u8; ARP_LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    // target hardware address stays zero
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// An unsolicited neighbour advertisement for `target` at `mac` (RFC 4861 4.4, 7.2.6):
/// Override set, Solicited clear, Router set when `router` (a VRRP master is the router for
/// its addresses when they are gateways), with the target link-layer address option. The
/// checksum is left zero: the kernel computes it for ICMPv6 sockets.
pub fn unsolicited_na(target: Ipv6Addr, mac: [u8; 6], router: bool) -> [u8; NA_LEN] {
    let mut p = [0u8; NA_LEN];
    p[0] = 136; // Neighbor Advertisement
    p[1] = 0;
    p[4] = 0x20 | if router { 0x80 } else { 0 }; // O (and R)
    p[8..24].copy_from_slice(&target.octets());
    p[24] = 2; // Target Link-Layer Address
    p[25] = 1; // in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let p = gratuitous_arp([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(
            p,
            [
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 192, 0,
                2, 10
            ]
        );
    }

    #[test]
    fn na_layout() {
        let t: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let p = unsolicited_na(t, virtual_mac_v6(7), false);
        assert_eq!(&p[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&p[8..24], &t.octets());
        assert_eq!(&p[24..], &[2, 1, 0, 0, 0x5e, 0, 2, 7]);
        assert_eq!(unsolicited_na(t, [0; 6], true)[4], 0xa0);
        assert_eq!(virtual_mac_v4(51), [0, 0, 0x5e, 0, 1, 51]);
    }
}
