//! The chaos suite's NAT pair: the same lab with the reals on an inside segment, routing back
//! through a gateway VIP that moves with the outside VIPs (one sync group), under the same
//! constant traffic. The scenarios where the layout matters run here, a round each: a partition
//! (both sides master, then healed: the client's ARP entry for the VIP and a real's for the
//! gateway must both come back to the master, or replies go to the balancer without the
//! connection) and a rolling upgrade (two planned handovers: every established NAT connection
//! rides the synced entries through both). The other scenarios do not depend on how the reals
//! are reached and run in the DR layout (`tests/tests/chaos.rs`); all of them run in this
//! layout with `cargo run --release -p lbtest --bin chaos -- all --layout nat`.
//!
//! Needs root, QEMU, python3, nft, ssh-keygen and the kernel package (`tools/setup.sh`).

use std::time::Duration;

use lbtest::chaos::lab::{Layout, Setup};
use lbtest::chaos::{Chaos, Scenario};

#[test]
fn a_nat_pair_keeps_its_connections_through_partitions_and_upgrades() {
    lbtest::process::require_root("the chaos suite makes namespaces, taps and bridges");
    let setup = Setup {
        layout: Layout::Nat,
        ..Setup::default()
    };
    let mut chaos =
        Chaos::start(Duration::from_secs(1200), setup).unwrap_or_else(|e| panic!("{e}"));
    let reports = chaos
        .run_short(&[Scenario::Partition, Scenario::RollingUpgrade])
        .unwrap_or_else(|e| panic!("{e}"));
    for report in &reports {
        assert!(
            report.rows.iter().all(|r| r.requests > 0),
            "{}: no request was sent through the NAT pair",
            report.name
        );
    }
    let broken = lbtest::chaos::broken(&reports);
    assert!(
        broken.is_empty(),
        "invariants broken:\n{}",
        broken.join("\n")
    );
}
