//! The IPVS client against the host's real kernel. The host has generic netlink but no IPVS
//! (IPVS itself is tested inside guests: tests/tests/ipvs_*.rs), so this checks family
//! resolution through the real controller and the error a balancer without IPVS reports.

use lbd::ipvs::client::{resolve_family, IpvsClient, IpvsError};

#[test]
fn the_generic_netlink_controller_resolves_families() {
    // The controller's own family always exists, with its fixed id 0x10.
    assert_eq!(resolve_family("nlctrl").unwrap(), Some(0x10));
    // A family no kernel has.
    assert_eq!(resolve_family("NO_SUCH_FAMILY").unwrap(), None);
}

#[test]
fn a_kernel_without_ipvs_is_reported_as_unavailable() {
    match resolve_family("IPVS").unwrap() {
        None => {
            let err = IpvsClient::connect()
                .err()
                .expect("no IPVS family, no client");
            assert!(matches!(err, IpvsError::Unavailable), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("\"IPVS\"") && text.contains("ip_vs"),
                "{text}"
            );
        }
        Some(id) => {
            // A host with IPVS: the client connects to the same family and can read it.
            let mut c = IpvsClient::connect().unwrap();
            assert_eq!(c.family(), id);
            c.info().unwrap();
        }
    }
}
