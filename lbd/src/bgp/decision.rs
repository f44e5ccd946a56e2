//! Which VIPs to announce, and why each is or is not announced: pure.
//!
//! A VIP of an `announce = "bgp"` service is announced iff lbd is healthy, the node is not
//! drained, and one of the services on that VIP is held by IPVS (its last apply succeeded) and
//! has a healthy real with a weight above 0 (the checks' and the operator's weights over the
//! config's).

use crate::config::{Announce, Config, ServiceKey};
use crate::reconcile::{Health, RealHealth};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// What the decision takes besides the config.
#[derive(Clone, Debug, Default)]
pub struct Inputs<'a> {
    /// Real health from the checks (a real not in it is up).
    pub health: Option<&'a RealHealth>,
    /// Weight overrides per (service, real): the checks' and the operator's drains.
    pub weights: Option<&'a BTreeMap<(String, SocketAddr), u32>>,
    /// The services IPVS holds: those whose last apply succeeded.
    pub ipvs_holds: Option<&'a BTreeSet<String>>,
    /// Why lbd is not healthy, if it is not.
    pub lbd_unhealthy: Option<&'a str>,
    /// The operator drained the whole node (`lbctl drain --node`).
    pub node_drained: bool,
}

/// Why a VIP is or is not announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Why {
    /// Announced: these services can serve it, with this many healthy reals of weight > 0.
    Serving { services: Vec<String>, reals: usize },
    /// Not announced: the operator drained the node.
    NodeDrained,
    /// Not announced: lbd is not healthy.
    LbdUnhealthy { detail: String },
    /// Not announced: IPVS does not hold any of its services (the last apply failed).
    NotInIpvs,
    /// Not announced: none of its services has a healthy real with a weight above 0.
    NoHealthyReal,
}

/// One VIP's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VipDecision {
    pub announced: bool,
    /// The services on this VIP (announced by BGP).
    pub services: Vec<String>,
    #[serde(flatten)]
    pub why: Why,
}

/// The VIPs to announce and a decision for every VIP of a BGP service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub vips: BTreeMap<IpAddr, VipDecision>,
}

impl Decision {
    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.vips
            .iter()
            .filter(|(_, d)| d.announced)
            .map(|(v, _)| *v)
            .collect()
    }
}

/// The VIPs of the config's `announce = "bgp"` services, with their services.
pub fn nway_vips(config: &Config) -> BTreeMap<IpAddr, Vec<String>> {
    let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for s in config.services.values() {
        if let (Announce::Bgp, ServiceKey::Addr { addr, .. }) = (s.announce, s.key) {
            out.entry(addr.ip()).or_default().push(s.name.clone());
        }
    }
    out
}

pub fn decide(config: &Config, inputs: &Inputs<'_>) -> Decision {
    let mut vips = BTreeMap::new();
    for (vip, services) in nway_vips(config) {
        let held: Vec<&String> = services
            .iter()
            .filter(|s| inputs.ipvs_holds.is_some_and(|h| h.contains(*s)))
            .collect();
        let mut serving = Vec::new();
        let mut reals = 0;
        for name in &held {
            let service = &config.services[*name];
            let up = service
                .reals
                .iter()
                .filter(|r| {
                    let key = ((*name).clone(), r.addr);
                    let healthy = inputs
                        .health
                        .is_none_or(|h| h.get(name, &r.addr) == Health::Up);
                    let weight = inputs
                        .weights
                        .and_then(|w| w.get(&key).copied())
                        .unwrap_or(r.weight);
                    healthy && weight > 0
                })
                .count();
            if up > 0 {
                serving.push((*name).clone());
                reals += up;
            }
        }
        let why = if inputs.node_drained {
            Why::NodeDrained
        } else if let Some(detail) = inputs.lbd_unhealthy {
            Why::LbdUnhealthy {
                detail: detail.to_string(),
            }
        } else if held.is_empty() {
            Why::NotInIpvs
        } else if serving.is_empty() {
            Why::NoHealthyReal
        } else {
            Why::Serving {
                services: serving,
                reals,
            }
        };
        vips.insert(
            vip,
            VipDecision {
                announced: matches!(why, Why::Serving { .. }),
                services,
                why,
            },
        );
    }
    Decision { vips }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[bgp]
local_as = 65001
router_id = "192.0.2.2"
[bgp.peer.tor]
address = "192.0.2.1"
remote_as = 65000

[service.web]
vip = "198.51.100.10:80"
announce = "bgp"
forwarding = "dr"
[[service.web.real]]
address = "10.0.0.1"
[[service.web.real]]
address = "10.0.0.2"

[service.web-tls]
vip = "198.51.100.10:443"
announce = "bgp"
forwarding = "dr"
[[service.web-tls.real]]
address = "10.0.0.3"

[service.dns]
vip = "198.51.100.20:53"
protocol = "udp"
announce = "bgp"
forwarding = "tun"
[[service.dns.real]]
address = "10.0.0.4"
weight = 0

[vrrp.instance.v]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]
[service.pair]
vip = "192.0.2.10:80"
[[service.pair.real]]
address = "10.0.0.9"
"#;

    fn key(s: &str, a: &str) -> (String, SocketAddr) {
        (s.to_string(), a.parse().unwrap())
    }

    #[test]
    fn a_table_of_cases() {
        let config = crate::config::parse("t.toml", CONFIG).unwrap().config;
        let all: BTreeSet<String> = config.services.keys().cloned().collect();
        let web_down = RealHealth(
            [
                (key("web", "10.0.0.1:80"), Health::Down),
                (key("web", "10.0.0.2:80"), Health::Down),
            ]
            .into(),
        );
        let tls_down = RealHealth(
            [
                (key("web", "10.0.0.1:80"), Health::Down),
                (key("web", "10.0.0.2:80"), Health::Down),
                (key("web-tls", "10.0.0.3:443"), Health::Down),
            ]
            .into(),
        );
        let web_only: BTreeSet<String> = ["web".to_string()].into();
        let drained_reals: BTreeMap<_, _> = [
            (key("web", "10.0.0.1:80"), 0),
            (key("web", "10.0.0.2:80"), 0),
            (key("web-tls", "10.0.0.3:443"), 0),
            (key("dns", "10.0.0.4:53"), 5),
        ]
        .into();
        let dns_weighted: BTreeMap<_, _> = [(key("dns", "10.0.0.4:53"), 5)].into();
        let v10: IpAddr = "198.51.100.10".parse().unwrap();
        let v20: IpAddr = "198.51.100.20".parse().unwrap();
        let serving = |services: &[&str], reals| Why::Serving {
            services: services.iter().map(|s| s.to_string()).collect(),
            reals,
        };
        // (what, inputs, expected why for .10, expected why for .20)
        let cases: Vec<(&str, Inputs, Why, Why)> = vec![
            (
                "all up: .10 served by both services; .20's only real has weight 0",
                Inputs {
                    ipvs_holds: Some(&all),
                    ..Inputs::default()
                },
                serving(&["web", "web-tls"], 3),
                Why::NoHealthyReal,
            ),
            (
                "web's reals down: web-tls still serves the VIP",
                Inputs {
                    ipvs_holds: Some(&all),
                    health: Some(&web_down),
                    ..Inputs::default()
                },
                serving(&["web-tls"], 1),
                Why::NoHealthyReal,
            ),
            (
                "every real of the VIP down",
                Inputs {
                    ipvs_holds: Some(&all),
                    health: Some(&tls_down),
                    ..Inputs::default()
                },
                Why::NoHealthyReal,
                Why::NoHealthyReal,
            ),
            (
                "the operator drained every real of .10; a check weight lifts dns's 0",
                Inputs {
                    ipvs_holds: Some(&all),
                    weights: Some(&drained_reals),
                    ..Inputs::default()
                },
                Why::NoHealthyReal,
                serving(&["dns"], 1),
            ),
            (
                "IPVS holds only web",
                Inputs {
                    ipvs_holds: Some(&web_only),
                    weights: Some(&dns_weighted),
                    ..Inputs::default()
                },
                serving(&["web"], 2),
                Why::NotInIpvs,
            ),
            (
                "IPVS holds nothing yet",
                Inputs::default(),
                Why::NotInIpvs,
                Why::NotInIpvs,
            ),
            (
                "lbd unhealthy",
                Inputs {
                    ipvs_holds: Some(&all),
                    lbd_unhealthy: Some("stopping"),
                    ..Inputs::default()
                },
                Why::LbdUnhealthy {
                    detail: "stopping".into(),
                },
                Why::LbdUnhealthy {
                    detail: "stopping".into(),
                },
            ),
            (
                "node drained wins over everything",
                Inputs {
                    ipvs_holds: Some(&all),
                    lbd_unhealthy: Some("stopping"),
                    node_drained: true,
                    ..Inputs::default()
                },
                Why::NodeDrained,
                Why::NodeDrained,
            ),
        ];
        for (what, inputs, w10, w20) in cases {
            let d = decide(&config, &inputs);
            assert_eq!(
                d.vips.len(),
                2,
                "{what}: the VRRP service's VIP is not a BGP VIP"
            );
            assert_eq!(d.vips[&v10].why, w10, "{what}: .10");
            assert_eq!(d.vips[&v20].why, w20, "{what}: .20");
            let expected: BTreeSet<IpAddr> = [(v10, &w10), (v20, &w20)]
                .into_iter()
                .filter(|(_, w)| matches!(w, Why::Serving { .. }))
                .map(|(v, _)| v)
                .collect();
            assert_eq!(d.announced(), expected, "{what}");
        }
        assert_eq!(
            decide(&config, &Inputs::default()).vips[&v10].services,
            ["web", "web-tls"]
        );
    }
}
