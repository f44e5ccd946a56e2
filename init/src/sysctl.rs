//! sysctls: the role's defaults plus the config's `[node.sysctl]`, written to /proc/sys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a load balancer needs regardless of config; the config can override each.
pub fn role_defaults() -> BTreeMap<String, String> {
    [
        // NAT mode routes replies back through the balancer.
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
        // Services may bind a VIP the node does not hold yet (backup node).
        ("net.ipv4.ip_nonlocal_bind", "1"),
        ("net.ipv6.ip_nonlocal_bind", "1"),
        // Removing a node address must not take the VIPs and other addresses of its subnet
        // with it (the kernel deletes an IPv4 primary's secondaries unless this is set).
        ("net.ipv4.conf.all.promote_secondaries", "1"),
        ("net.ipv4.conf.default.promote_secondaries", "1"),
        // NAT with netfilter rules needs IPVS to keep conntrack entries.
        ("net.ipv4.vs.conntrack", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `net.ipv4.ip_forward` → `<root>/net/ipv4/ip_forward`.
pub fn path_of(root: &Path, name: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in name.split('.') {
        p.push(part);
    }
    p
}

/// Writes each sysctl; returns `(name, error)` for those that failed (e.g. an IPVS key whose
/// module did not load). The others are still applied.
pub fn apply(root: &Path, values: &BTreeMap<String, String>) -> Vec<(String, std::io::Error)> {
    let mut failed = Vec::new();
    for (name, value) in values {
        if let Err(e) = std::fs::write(path_of(root, name), format!("{value}\n")) {
            failed.push((name.clone(), e));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_values_and_reports_failures() {
        let root = std::env::temp_dir().join(format!("sysctl-test-{}", std::process::id()));
        std::fs::create_dir_all(root.join("net/ipv4")).unwrap();
        let mut values = BTreeMap::new();
        values.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        values.insert("net.nope.x".to_string(), "2".to_string());
        let failed = apply(&root, &values);
        assert_eq!(
            std::fs::read_to_string(root.join("net/ipv4/ip_forward")).unwrap(),
            "1\n"
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "net.nope.x");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
