//! BIRD 2's config for lbd's N-way VIPs: pure text generation from `[bgp]` and the VIPs to
//! announce now.
//!
//! Each VIP is a `/32` or `/128` blackhole route of a `protocol static` (`lbd_vips4`,
//! `lbd_vips6`) that holds exactly the VIPs announced now; each peer's BGP protocol exports
//! only those routes (by protocol and by prefix) with this node as next hop, and imports
//! nothing. BIRD has no `protocol kernel` here: it never touches the node's routing table.
//! Rewriting this file and asking BIRD to `configure` withdraws or announces a VIP without
//! resetting any session whose own config did not change.

use crate::config::Bgp;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// The static protocols holding the announced VIPs, per family.
pub const STATIC4: &str = "lbd_vips4";
pub const STATIC6: &str = "lbd_vips6";

/// A rendered config and the BIRD protocol name of each peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdConfig {
    pub text: String,
    /// BIRD protocol name → `[bgp.peer.NAME]`.
    pub protocols: BTreeMap<String, String>,
}

/// BIRD symbols are letters, digits and `_`: a peer `tor-1` becomes `peer_tor_1` (with a
/// number added should two names meet).
pub fn protocol_names(bgp: &Bgp) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in bgp.peers.keys() {
        let base: String = format!("peer_{name}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut symbol = base.clone();
        let mut n = 2;
        while out.contains_key(&symbol) {
            symbol = format!("{base}_{n}");
            n += 1;
        }
        out.insert(symbol, name.clone());
    }
    out
}

/// BIRD's config for `bgp` announcing `announced`, out of the config's N-way VIPs `vips`.
///
/// Which address families each session carries follows from the peers and `vips`, never from
/// what is announced at the moment: a channel added or removed makes BIRD restart the session,
/// which would withdraw everything else it carries.
pub fn render(bgp: &Bgp, vips: &BTreeSet<IpAddr>, announced: &BTreeSet<IpAddr>) -> BirdConfig {
    let protocols = protocol_names(bgp);
    let mut t = String::new();
    let router_id = bgp
        .router_id
        .map_or_else(|| "0.0.0.0".to_string(), |r| r.to_string());
    let _ = writeln!(
        t,
        "# Written by lbd; rewritten whenever what it announces changes."
    );
    let _ = writeln!(t, "router id {router_id};");
    let _ = writeln!(
        t,
        "log stderr {{ info, remote, warning, error, auth, fatal, bug }};"
    );
    let _ = writeln!(t, "protocol device {{ }}");
    let v4: Vec<&IpAddr> = announced.iter().filter(|a| a.is_ipv4()).collect();
    let v6: Vec<&IpAddr> = announced.iter().filter(|a| a.is_ipv6()).collect();
    let has6 = vips.iter().chain(announced).any(IpAddr::is_ipv6);
    let has4 = vips.iter().chain(announced).any(IpAddr::is_ipv4);
    let any6 = has6 || bgp.peers.values().any(|p| p.address.is_ipv6());
    let any4 = has4 || bgp.peers.values().any(|p| p.address.is_ipv4());
    if any4 {
        static_protocol(&mut t, STATIC4, "ipv4", &v4);
    }
    if any6 {
        static_protocol(&mut t, STATIC6, "ipv6", &v6);
    }
    if bgp.peers.values().any(|p| p.bfd) {
        let ms = millis(bgp.bfd_interval);
        let timers = format!(
            "min rx interval {ms} ms; min tx interval {ms} ms; idle tx interval {ms} ms; multiplier {};",
            bgp.bfd_multiplier
        );
        let _ = writeln!(t, "protocol bfd lbd_bfd {{");
        let _ = writeln!(t, "  interface \"*\" {{ {timers} }};");
        let _ = writeln!(t, "  multihop {{ {timers} }};");
        let _ = writeln!(t, "}}");
    }
    for (symbol, name) in &protocols {
        let p = &bgp.peers[name];
        let _ = writeln!(t, "protocol bgp {symbol} {{");
        let _ = writeln!(t, "  description \"{name}\";");
        match p.source_address {
            Some(src) => {
                let _ = writeln!(t, "  local {src} as {};", bgp.local_as.unwrap_or(0));
            }
            None => {
                let _ = writeln!(t, "  local as {};", bgp.local_as.unwrap_or(0));
            }
        }
        let _ = writeln!(t, "  neighbor {} as {};", p.address, p.remote_as);
        let hold = p.hold_time.as_secs();
        let _ = writeln!(t, "  hold time {hold};");
        if hold > 0 {
            let _ = writeln!(t, "  keepalive time {};", (hold / 3).max(1));
        }
        // Reconnect quickly after a restart of lbd or of the router.
        let _ = writeln!(t, "  connect delay time 1;");
        let _ = writeln!(t, "  connect retry time 2;");
        let _ = writeln!(t, "  error wait time 1, 16;");
        if let Some(pw) = &p.password {
            let _ = writeln!(t, "  password \"{pw}\";");
        }
        if let Some(ttl) = p.multihop {
            let _ = writeln!(t, "  multihop {ttl};");
        }
        if p.bfd {
            let _ = writeln!(t, "  bfd on;");
        }
        // IPv4 VIPs go over IPv6 sessions too (extended next hop, RFC 8950: an IPv4 route
        // with an IPv6 next hop, which routers install); IPv6 VIPs only over IPv6 sessions (an
        // IPv6 route with an IPv4 next hop is one that Linux, for one, refuses).
        if p.address.is_ipv4() || has4 {
            channel(&mut t, "ipv4", STATIC4, &v4, p.address.is_ipv6());
        }
        if p.address.is_ipv6() {
            channel(&mut t, "ipv6", STATIC6, &v6, false);
        }
        let _ = writeln!(t, "}}");
    }
    BirdConfig { text: t, protocols }
}

fn static_protocol(t: &mut String, name: &str, family: &str, vips: &[&IpAddr]) {
    let _ = writeln!(t, "protocol static {name} {{");
    let _ = writeln!(t, "  {family};");
    for v in vips {
        let _ = writeln!(t, "  route {v}/{} blackhole;", host_len(v));
    }
    let _ = writeln!(t, "}}");
}

fn channel(t: &mut String, family: &str, proto: &str, vips: &[&IpAddr], other_family: bool) {
    let export = if vips.is_empty() {
        "none".to_string()
    } else {
        let set: Vec<String> = vips
            .iter()
            .map(|v| format!("{v}/{}", host_len(v)))
            .collect();
        format!("where proto = \"{proto}\" && net ~ [ {} ]", set.join(", "))
    };
    let extended = if other_family {
        " extended next hop on;"
    } else {
        ""
    };
    let _ = writeln!(
        t,
        "  {family} {{ import none; export {export}; next hop self;{extended} }};"
    );
}

fn host_len(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BgpPeer;

    fn bgp(bfd: bool) -> Bgp {
        let peer = |name: &str, addr: &str, password: Option<&str>| BgpPeer {
            name: name.into(),
            address: addr.parse().unwrap(),
            remote_as: 65000,
            password: password.map(str::to_string),
            hold_time: Duration::from_secs(3),
            bfd,
            source_address: None,
            multihop: None,
        };
        Bgp {
            local_as: Some(65001),
            router_id: Some("10.77.0.2".parse().unwrap()),
            hold_time: Duration::from_secs(3),
            bfd,
            bfd_interval: Duration::from_millis(100),
            bfd_multiplier: 3,
            watchdog: Bgp::DEFAULT_WATCHDOG,
            peers: [
                ("tor-1".to_string(), peer("tor-1", "10.77.0.1", Some("pw"))),
                ("tor_1".to_string(), peer("tor_1", "10.77.0.9", None)),
            ]
            .into(),
        }
    }

    fn vips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|v| v.parse().unwrap()).collect()
    }

    #[test]
    fn announces_exactly_the_given_vips_to_each_peer() {
        let both = vips(&["198.51.100.10", "198.51.100.11"]);
        let c = render(&bgp(false), &both, &both);
        let expected = r#"# Written by lbd; rewritten whenever what it announces changes.
router id 10.77.0.2;
log stderr { info, remote, warning, error, auth, fatal, bug };
protocol device { }
protocol static lbd_vips4 {
  ipv4;
  route 198.51.100.10/32 blackhole;
  route 198.51.100.11/32 blackhole;
}
protocol bgp peer_tor_1 {
  description "tor-1";
  local as 65001;
  neighbor 10.77.0.1 as 65000;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 16;
  password "pw";
  ipv4 { import none; export where proto = "lbd_vips4" && net ~ [ 198.51.100.10/32, 198.51.100.11/32 ]; next hop self; };
}
protocol bgp peer_tor_1_2 {
  description "tor_1";
  local as 65001;
  neighbor 10.77.0.9 as 65000;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 16;
  ipv4 { import none; export where proto = "lbd_vips4" && net ~ [ 198.51.100.10/32, 198.51.100.11/32 ]; next hop self; };
}
"#;
        assert_eq!(c.text, expected);
        assert_eq!(c.protocols["peer_tor_1"], "tor-1");
        assert_eq!(c.protocols["peer_tor_1_2"], "tor_1");
    }

    #[test]
    fn nothing_announced_exports_none_and_keeps_the_sessions() {
        let all = vips(&["198.51.100.10"]);
        let c = render(&bgp(false), &all, &BTreeSet::new());
        assert!(c.text.contains("protocol static lbd_vips4 {\n  ipv4;\n}\n"));
        assert!(c
            .text
            .contains("ipv4 { import none; export none; next hop self; };"));
        // The session config is the same as when announcing: BIRD keeps the session.
        let announcing = render(&bgp(false), &all, &all);
        let session = |t: &str| {
            t.lines()
                .filter(|l| !l.contains("export") && !l.contains("route "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(session(&c.text), session(&announcing.text));
    }

    #[test]
    fn bfd_and_ipv6() {
        let mut b = bgp(true);
        b.peers.remove("tor_1");
        b.peers.get_mut("tor-1").unwrap().address = "2001:db8::1".parse().unwrap();
        let both = vips(&["198.51.100.10", "2001:db8::10"]);
        let c = render(&b, &both, &both);
        assert!(c.text.contains("protocol bfd lbd_bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 100 ms; multiplier 3; };"));
        assert!(c.text.contains("  bfd on;\n"));
        assert!(c.text.contains(
            "protocol static lbd_vips6 {\n  ipv6;\n  route 2001:db8::10/128 blackhole;\n}"
        ));
        assert!(c.text.contains("  ipv6 { import none; export where proto = \"lbd_vips6\" && net ~ [ 2001:db8::10/128 ]; next hop self; };"));
        // The IPv4 VIP over the IPv6 session: an IPv4 route with an IPv6 next hop.
        assert!(c.text.contains("  ipv4 { import none; export where proto = \"lbd_vips4\" && net ~ [ 198.51.100.10/32 ]; next hop self; extended next hop on; };"));
        // An IPv4 session carries no IPv6 (its next hop would be one routers cannot install).
        let mut v4 = bgp(false);
        v4.peers.remove("tor_1");
        let c = render(&v4, &both, &both);
        assert!(!c.text.contains("  ipv6 {"), "{}", c.text);
    }

    #[test]
    fn the_channels_stay_whatever_is_announced() {
        // An IPv6 peer and VIPs of both families: the IPv4 VIP withdrawn and announced again
        // must not add or remove the session's IPv4 channel (BIRD would restart the session
        // and withdraw the IPv6 VIPs with it).
        let mut b = bgp(false);
        b.peers.remove("tor_1");
        b.peers.get_mut("tor-1").unwrap().address = "2001:db8::1".parse().unwrap();
        let all = vips(&["198.51.100.10", "2001:db8::10"]);
        let session = |announced: &[&str]| {
            render(&b, &all, &vips(announced))
                .text
                .lines()
                .filter(|l| l.trim_start().starts_with("ipv"))
                .map(|l| l.split(" export").next().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let full = session(&["198.51.100.10", "2001:db8::10"]);
        assert_eq!(
            full.len(),
            4,
            "two static protocols, two channels: {full:?}"
        );
        assert_eq!(session(&["2001:db8::10"]), full);
        assert_eq!(session(&[]), full);
    }
}
