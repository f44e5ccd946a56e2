//! Which link to boot from, and the wait for its carrier. The netlink operations themselves are
//! the shared layer, [`lbd::netlink`] (lbd's VRRP uses the same one).

use std::time::{Duration, Instant};

pub use lbd::netlink::{AddressOptions, Link, Netlink};

/// Why no link could be had.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Netlink(#[from] lbd::netlink::NetError),
    #[error("no link named {name:?} (links: {})", available.join(", "))]
    NoSuchLink {
        name: String,
        available: Vec<String>,
    },
    #[error("link {name:?} is not ethernet (type {kind}), cannot run DHCP or take a MAC from it")]
    NotEthernet { name: String, kind: String },
    #[error("no carrier after {waited:?} on {}", if candidates.is_empty() { "any link (no ethernet links found)".to_string() } else { candidates.join(", ") })]
    NoCarrier {
        waited: Duration,
        candidates: Vec<String>,
    },
}

/// How often the wait for carrier says what it sees: often enough to watch a switch port come
/// up, not once per poll.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The driver bound to a link's device (`e1000e`), from sysfs; `None` for virtual links.
fn driver_of(name: &str) -> Option<String> {
    let target = std::fs::read_link(format!("/sys/class/net/{name}/device/driver")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// One line for the operator: every candidate link with its driver and state, or, when a
/// named link is not there (yet), which links are.
pub fn describe_wait(
    device: Option<&str>,
    candidates: &[&Link],
    all: &[Link],
    driver_of: impl Fn(&str) -> Option<String>,
) -> String {
    if candidates.is_empty() {
        let names: Vec<&str> = all
            .iter()
            .filter(|l| l.name != "lo")
            .map(|l| l.name.as_str())
            .collect();
        let seen = if names.is_empty() {
            "no links at all: no NIC driver bound (is the NIC's driver in the image?)".to_string()
        } else {
            format!("links present: {}", names.join(", "))
        };
        return match device {
            Some(name) => format!("{name} is not there yet; {seen}"),
            None => format!("no ethernet link yet; {seen}"),
        };
    }
    candidates
        .iter()
        .map(|l| {
            format!(
                "{} ({}, {}, {})",
                l.name,
                driver_of(&l.name).unwrap_or_else(|| "no driver".into()),
                if l.admin_up { "up" } else { "down" },
                if l.carrier { "carrier" } else { "no carrier" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the link to configure and waits (bounded by `timeout`) for its carrier.
///
/// With `device`, that link must be (or appear within `timeout`) and be ethernet; it is brought
/// up. Without, every ethernet link is brought up, also ones that appear while we wait (a NIC
/// driver still probing), and the first (lowest index) to show carrier is chosen; the others
/// stay up, unconfigured.
pub async fn choose_link(
    nl: &Netlink,
    device: Option<&str>,
    timeout: Duration,
) -> Result<Link, LinkError> {
    let started = Instant::now();
    let mut brought_up: Vec<u32> = Vec::new();
    let mut next_report = started + REPORT_EVERY;
    // Poll: carrier usually comes within a second or two of "up"; 100 ms keeps the wait short
    // without a multicast subscription.
    let poll = Duration::from_millis(100);
    loop {
        let links = nl.links().await?;
        let candidates: Vec<&Link> = match device {
            Some(name) => links.iter().filter(|l| l.name == name).collect(),
            None => links.iter().filter(|l| l.is_physical_ethernet()).collect(),
        };
        for link in &candidates {
            if device.is_some() && !link.is_ethernet() {
                return Err(LinkError::NotEthernet {
                    name: link.name.clone(),
                    kind: format!("{:?}", link.kind),
                });
            }
            if !link.admin_up && !brought_up.contains(&link.index) {
                nl.set_up(link.index, &link.name).await?;
                brought_up.push(link.index);
            }
        }
        if let Some(link) = candidates.iter().find(|l| l.carrier) {
            tracing::info!(
                device = %link.name,
                driver = %driver_of(&link.name).unwrap_or_else(|| "none".into()),
                waited_ms = started.elapsed().as_millis() as u64,
                "carrier up"
            );
            return Ok((*link).clone());
        }
        if Instant::now() >= next_report {
            next_report += REPORT_EVERY;
            tracing::info!(
                "waiting for carrier ({} s of {} s): {}",
                started.elapsed().as_secs(),
                timeout.as_secs(),
                describe_wait(device, &candidates, &links, driver_of)
            );
        }
        if started.elapsed() >= timeout {
            if let (Some(name), true) = (device, candidates.is_empty()) {
                return Err(LinkError::NoSuchLink {
                    name: name.to_string(),
                    available: links.into_iter().map(|l| l.name).collect(),
                });
            }
            return Err(LinkError::NoCarrier {
                waited: started.elapsed(),
                candidates: candidates.iter().map(|l| l.name.clone()).collect(),
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbd::netlink::LinkLayerType;

    fn nic(index: u32, name: &str, up: bool, carrier: bool) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some([0x52, 0x54, 0, 0, 0, index as u8]),
            kind: LinkLayerType::Ether,
            admin_up: up,
            carrier,
            virtual_kind: None,
            mtu: Some(1500),
            controller: None,
            perm_mac: None,
            lower: None,
            vlan_id: None,
            bond: None,
            bond_port: None,
        }
    }

    #[test]
    fn the_wait_names_each_link_with_its_driver_and_state() {
        let all = vec![nic(2, "eth0", true, false), nic(3, "eth1", false, false)];
        let candidates: Vec<&Link> = all.iter().collect();
        let driver = |name: &str| (name == "eth0").then(|| "e1000e".to_string());
        assert_eq!(
            describe_wait(None, &candidates, &all, driver),
            "eth0 (e1000e, up, no carrier), eth1 (no driver, down, no carrier)"
        );
    }

    #[test]
    fn the_wait_says_when_no_nic_is_there() {
        let lo = Link {
            kind: LinkLayerType::Loopback,
            ..nic(1, "lo", true, true)
        };
        let none = |_: &str| None;
        assert_eq!(
            describe_wait(None, &[], std::slice::from_ref(&lo), none),
            "no ethernet link yet; no links at all: no NIC driver bound (is the NIC's driver in the image?)"
        );
        let all = vec![lo, nic(2, "eth0", true, true)];
        assert_eq!(
            describe_wait(Some("eth1"), &[], &all, none),
            "eth1 is not there yet; links present: eth0"
        );
    }
}
