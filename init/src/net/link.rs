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
                waited_ms = started.elapsed().as_millis() as u64,
                "carrier up"
            );
            return Ok((*link).clone());
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
