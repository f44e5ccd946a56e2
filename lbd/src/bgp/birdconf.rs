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

/// BIRD's config for `bgp` announcing `announced`.
pub fn render(bgp: &Bgp, announced: &BTreeSet<IpAddr>) -> BirdConfig {
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
    let any6 = !v6.is_empty() || bgp.peers.values().any(|p| p.address.is_ipv6());
    let any4 = !v4.is_empty() || bgp.peers.values().any(|p| p.address.is_ipv4());
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
        if any4 && (p.address.is_ipv4() || !v4.is_empty()) {
            channel(&mut t, "ipv4", STATIC4, &v4, p.address.is_ipv6());
        }
        if any6 && (p.address.is_ipv6() || !v6.is_empty()) {
            channel(&mut t, "ipv6", STATIC6, &v6, p.address.is_ipv4());
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
        let c = render(&bgp(false), &vips(&["198.51.100.10", "198.51.100.11"]));
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
        let c = render(&bgp(false), &BTreeSet::new());
        assert!(c.text.contains("protocol static lbd_vips4 {\n  ipv4;\n}\n"));
        assert!(c
            .text
            .contains("ipv4 { import none; export none; next hop self; };"));
        // The session config is the same as when announcing: BIRD keeps the session.
        let announcing = render(&bgp(false), &vips(&["198.51.100.10"]));
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
        let c = render(&b, &vips(&["198.51.100.10", "2001:db8::10"]));
        assert!(c.text.contains("protocol bfd lbd_bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 100 ms; multiplier 3; };"));
        assert!(c.text.contains("  bfd on;\n"));
        assert!(c.text.contains(
            "protocol static lbd_vips6 {\n  ipv6;\n  route 2001:db8::10/128 blackhole;\n}"
        ));
        assert!(c.text.contains("  ipv6 { import none; export where proto = \"lbd_vips6\" && net ~ [ 2001:db8::10/128 ]; next hop self; extended next hop on; };"));
    }
}
