//! The chaos suite's short version: one pair from the test image under constant traffic (8 long
//! connections exchanging a line every 100 ms, a short request every 50 ms), DR layout, and
//! every scenario of `lbtest::chaos` but the soak and the rolling upgrade for a round or a few
//! seconds. The invariants: no established connection
//! lost on an lbd crash, a reload, a config server fault, a flapping real or a busy backup; no
//! config applied that was unsigned, invalid or garbled; a gratuitous ARP and the client's ARP
//! entry moving at every takeover; no spurious takeover where the master stayed healthy; two
//! masters for at most three advert intervals once a partition heals; IPVS churn under its
//! bound while a real flaps; unicast adverts seen only between the peers; lbd's memory and
//! descriptors flat. The rolling upgrade (no connection lost) runs in the NAT pair of
//! `chaos_nat.rs`, with a second partition. The tables are printed; the long runs are `cargo
//! run --release -p lbtest --bin chaos -- all [--layout nat]`.
//!
//! Needs root, QEMU, python3, nft, ssh-keygen and the kernel package (`tools/setup.sh`).

use std::time::Duration;

use lbtest::chaos::lab::Setup;
use lbtest::chaos::{Chaos, Scenario};

#[test]
fn every_fault_leaves_clients_and_configs_whole() {
    lbtest::process::require_root("the chaos suite makes namespaces, taps and a bridge");
    let mut chaos =
        Chaos::start(Duration::from_secs(1800), Setup::default()).unwrap_or_else(|e| panic!("{e}"));
    let scenarios = [
        Scenario::KillMaster,
        Scenario::KillBackup,
        Scenario::ReloadStorm,
        Scenario::ConfigServer,
        Scenario::RealsFlap,
        Scenario::VrrpLoss(30),
        Scenario::BackupCpu,
        Scenario::Partition,
        // The rolling upgrade runs in the NAT layout (`chaos_nat.rs`), where a handover also
        // has to move the reals' gateway: the harder case, and one boot sequence less here.
    ];
    let reports = chaos
        .run_short(&scenarios)
        .unwrap_or_else(|e| panic!("{e}"));
    let broken = lbtest::chaos::broken(&reports);
    assert!(
        broken.is_empty(),
        "invariants broken:\n{}",
        broken.join("\n")
    );
}
