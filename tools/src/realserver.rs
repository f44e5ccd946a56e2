//! The commands a real server behind an LVS balancer needs for direct routing (DR) or IP-in-IP
//! tunnelling (TUN): the VIP on a non-ARPing interface, ARP kept quiet about it, and, for TUN,
//! the tunnel device up and reverse-path filtering off on it. Pure: [`script`] returns the
//! text; `lbctl realserver` prints it.
//!
//! Why each command (Linux):
//! - The real must accept packets addressed to the VIP, so the VIP is one of its addresses: on
//!   `lo` for DR (packets arrive unchanged on the LAN interface), on `tunl0` / `ip6tnl0` for TUN
//!   (the kernel's fallback tunnel devices decapsulate whatever IP-in-IP arrives).
//! - Only the balancer may answer ARP for the VIP, or clients bypass it: `arp_ignore=1` answers
//!   only for addresses of the interface the request came in on, `arp_announce=2` never uses the
//!   VIP as the source of the real's own ARP requests. The kernel takes the larger of `all` and
//!   the interface's value, so setting `all` covers every interface.
//! - IPv6 needs no such settings: a neighbour solicitation is answered only for addresses of the
//!   receiving interface, so a VIP on `lo` or `ip6tnl0` is never announced.
//! - TUN: a decapsulated packet arrives on `tunl0` from a client whose route goes out another
//!   interface, which strict reverse-path filtering drops; the kernel takes the larger of `all`
//!   and `tunl0`, so both are set to 0 (other interfaces keep their own value).

use std::fmt::Write as _;
use std::net::IpAddr;

/// How the balancer forwards to this real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Direct routing (ipvsadm -g, ldirectord "gate", keepalived DR).
    Dr,
    /// IP-in-IP tunnelling (ipvsadm -i, "ipip", TUN).
    Tun,
}

/// Why no script can be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RealServerError {
    #[error("{0} is not a usable VIP (unspecified, multicast or loopback)")]
    BadVip(IpAddr),
    #[error("invalid interface name {0:?} (1 to 15 characters, no '/', ':' or spaces)")]
    BadInterface(String),
    #[error("tun mode puts the VIP on the kernel's tunnel device {want}, not {given}")]
    TunInterface { want: &'static str, given: String },
}

/// The shell script (`sh`), commands in the order they must run: ARP settings before the VIP
/// exists, so it is never announced. Every command can run again without error.
pub fn script(vip: IpAddr, mode: Mode, iface: Option<&str>) -> Result<String, RealServerError> {
    let bad_vip = match vip {
        IpAddr::V4(v) => {
            v.is_unspecified() || v.is_multicast() || v.is_loopback() || v.is_broadcast()
        }
        IpAddr::V6(v) => v.is_unspecified() || v.is_multicast() || v.is_loopback(),
    };
    if bad_vip {
        return Err(RealServerError::BadVip(vip));
    }
    let v6 = vip.is_ipv6();
    let tunnel_dev = if v6 { "ip6tnl0" } else { "tunl0" };
    let dev = match (mode, iface) {
        (Mode::Dr, None) => "lo".to_string(),
        (Mode::Dr, Some(i)) => i.to_string(),
        (Mode::Tun, None) => tunnel_dev.to_string(),
        (Mode::Tun, Some(i)) if i == tunnel_dev => i.to_string(),
        (Mode::Tun, Some(i)) => {
            return Err(RealServerError::TunInterface {
                want: tunnel_dev,
                given: i.to_string(),
            })
        }
    };
    if dev.is_empty()
        || dev.len() > 15
        || dev
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(RealServerError::BadInterface(dev));
    }
    let prefix = if v6 { 128 } else { 32 };
    let ip = if v6 { "ip -6" } else { "ip" };
    let mut s = String::new();
    let mode_name = match mode {
        Mode::Dr => "direct routing (DR)",
        Mode::Tun => "IP-in-IP tunnelling (TUN)",
    };
    let _ = writeln!(s, "#!/bin/sh");
    let _ = writeln!(
        s,
        "# Real server for VIP {vip}, reached by LVS {mode_name}."
    );
    let _ = writeln!(
        s,
        "# Run as root on the real server (made by lbctl realserver)."
    );
    let _ = writeln!(s, "set -e");
    if mode == Mode::Tun {
        let module = if v6 { "ip6_tunnel" } else { "ipip" };
        let _ = writeln!(
            s,
            "# The tunnel module creates {dev}, which decapsulates what the balancer sends."
        );
        let _ = writeln!(s, "modprobe {module}");
    }
    if !v6 {
        let _ = writeln!(
            s,
            "# Only the balancer answers ARP for the VIP; never use it as an ARP source."
        );
        let _ = writeln!(s, "sysctl -w net.ipv4.conf.all.arp_ignore=1");
        let _ = writeln!(s, "sysctl -w net.ipv4.conf.all.arp_announce=2");
    } else {
        let _ = writeln!(
            s,
            "# IPv6: neighbour solicitations are answered only for addresses of the"
        );
        let _ = writeln!(
            s,
            "# receiving interface, so the VIP on {dev} is never announced."
        );
    }
    if mode == Mode::Tun && !v6 {
        let _ = writeln!(
            s,
            "# Decapsulated packets come from clients routed via another interface:"
        );
        let _ = writeln!(
            s,
            "# reverse-path filtering off on {dev} (the kernel uses the larger of all and {dev})."
        );
        let _ = writeln!(s, "sysctl -w net.ipv4.conf.{dev}.rp_filter=0");
        let _ = writeln!(s, "sysctl -w net.ipv4.conf.all.rp_filter=0");
    }
    if dev != "lo" {
        let _ = writeln!(s, "{ip} link set dev {dev} up");
    }
    let _ = writeln!(
        s,
        "# The VIP, as a host address: the real accepts packets sent to it."
    );
    let _ = writeln!(s, "{ip} address replace {vip}/{prefix} dev {dev}");
    // How to keep it across reboots.
    let _ = writeln!(
        s,
        "# To keep this across reboots: put the sysctls in /etc/sysctl.d/90-lvs-realserver.conf"
    );
    let _ = writeln!(
        s,
        "# (without `sysctl -w`){} and the address in the network",
        if mode == Mode::Tun {
            format!(
                ", the module in /etc/modules-load.d/{}.conf",
                if v6 { "ip6_tunnel" } else { "ipip" }
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "# configuration of {dev}.");
    Ok(s)
}

/// The commands of a script (lines that are not comments, `set -e` excluded).
pub fn commands(script: &str) -> Vec<&str> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "set -e")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmds(vip: &str, mode: Mode, iface: Option<&str>) -> Vec<String> {
        let s = script(vip.parse().unwrap(), mode, iface).unwrap();
        commands(&s).into_iter().map(String::from).collect()
    }

    #[test]
    fn dr_ipv4() {
        assert_eq!(
            cmds("192.0.2.10", Mode::Dr, None),
            [
                "sysctl -w net.ipv4.conf.all.arp_ignore=1",
                "sysctl -w net.ipv4.conf.all.arp_announce=2",
                "ip address replace 192.0.2.10/32 dev lo",
            ]
        );
        assert_eq!(
            cmds("192.0.2.10", Mode::Dr, Some("dummy0"))[2..],
            [
                "ip link set dev dummy0 up",
                "ip address replace 192.0.2.10/32 dev dummy0"
            ]
        );
    }

    #[test]
    fn dr_ipv6() {
        assert_eq!(
            cmds("2001:db8::10", Mode::Dr, None),
            ["ip -6 address replace 2001:db8::10/128 dev lo"]
        );
    }

    #[test]
    fn tun() {
        assert_eq!(
            cmds("192.0.2.10", Mode::Tun, None),
            [
                "modprobe ipip",
                "sysctl -w net.ipv4.conf.all.arp_ignore=1",
                "sysctl -w net.ipv4.conf.all.arp_announce=2",
                "sysctl -w net.ipv4.conf.tunl0.rp_filter=0",
                "sysctl -w net.ipv4.conf.all.rp_filter=0",
                "ip link set dev tunl0 up",
                "ip address replace 192.0.2.10/32 dev tunl0",
            ]
        );
        assert_eq!(
            cmds("2001:db8::10", Mode::Tun, None),
            [
                "modprobe ip6_tunnel",
                "ip -6 link set dev ip6tnl0 up",
                "ip -6 address replace 2001:db8::10/128 dev ip6tnl0",
            ]
        );
    }

    #[test]
    fn refusals() {
        let v: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(matches!(
            script(v, Mode::Tun, Some("eth0")),
            Err(RealServerError::TunInterface { .. })
        ));
        assert!(matches!(
            script(v, Mode::Dr, Some("a/b")),
            Err(RealServerError::BadInterface(_))
        ));
        assert!(matches!(
            script("224.0.0.1".parse().unwrap(), Mode::Dr, None),
            Err(RealServerError::BadVip(_))
        ));
        assert!(matches!(
            script("::".parse().unwrap(), Mode::Dr, None),
            Err(RealServerError::BadVip(_))
        ));
    }
}
