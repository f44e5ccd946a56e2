//! The faults the lab injects besides the balancers' own: on the bridges (nftables in the
//! bridge family), at the config server, at the reals' health endpoints.

use super::{Lab, Layout, MEMBERS, REALS};
use crate::config_server::Mode;

impl Lab {
    /// How the config server answers from now on.
    pub fn server_mode(&self, mode: Mode) -> Result<(), String> {
        self.server.set_mode(mode).map_err(|e| e.to_string())
    }

    /// Marks a real's health endpoint down (`true`) or up.
    pub fn set_health_down(&self, real: usize, down: bool) {
        let path = self.dir.path().join("health").join(REALS[real].name);
        if down {
            let _ = std::fs::write(&path, b"down");
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Drops `percent` % of VRRP packets crossing the bridges (0: none).
    pub fn vrrp_loss(&self, percent: u32) -> Result<(), String> {
        self.set_faults(&format!(
            "ip protocol 112 numgen random mod 100 < {percent} drop\n\
             ip6 nexthdr 112 numgen random mod 100 < {percent} drop"
        ))
    }

    /// Cuts the balancers off each other (everything between their taps, on both segments in
    /// the NAT layout), or heals.
    pub fn partition(&self, on: bool) -> Result<(), String> {
        if !on {
            return self.set_faults("");
        }
        let mut pairs = vec![(MEMBERS[0].tap, MEMBERS[1].tap)];
        if self.setup.layout == Layout::Nat {
            pairs.push((MEMBERS[0].inside_tap, MEMBERS[1].inside_tap));
        }
        let rules: Vec<String> = pairs
            .iter()
            .map(|(a, b)| {
                format!(
                    "iifname \"{a}\" oifname \"{b}\" drop\niifname \"{b}\" oifname \"{a}\" drop"
                )
            })
            .collect();
        self.set_faults(&rules.join("\n"))
    }

    /// Replaces the bridge's fault rules with `rules` (one nft rule per line).
    fn set_faults(&self, rules: &str) -> Result<(), String> {
        self.ns.set_bridge_rules(self.dir.path(), "chaos", rules)
    }
}
