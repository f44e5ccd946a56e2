//! Benchmark of lbd's IPVS client against ipvsadm in the same TCG guest: 1,000 services x 10
//! reals applied from an empty table, a one-real change, a full dump; then `ipvsadm -R` and
//! `ipvsadm -Ln` of the same table. Prints the figures and ratios (`--nocapture` shows them).
//!
//! Timings are printed, not asserted (a loaded CI host would make them flaky); what is asserted
//! does not depend on the machine: the dump holds the whole table, and a one-real change costs
//! one request and its acknowledgement whatever the size of the table.

use std::time::Duration;

use lbtest::appliance::{ApplianceBuilder, ConfigDir};
use lbtest::ipvs::boot_with_shell;

fn figure<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

fn messages(line: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == "netlink")
        .unwrap_or_else(|| panic!("no message count in {line:?}"));
    words[i - 1].parse().unwrap()
}

#[test]
fn ipvs_bench_against_ipvsadm() {
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", "[node]\nhostname = \"bench\"\n")
        .unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("ipvs-bench")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml"),
        Duration::from_secs(120),
    )
    .unwrap();
    sg.guest
        .expect(r"lbd:\s+INFO ipvs applied", Duration::from_secs(120))
        .unwrap();

    // A small table first: the one-real change must cost the same in both.
    let small = sg
        .shell
        .run("ipvs-bench 100 10", Duration::from_secs(300))
        .unwrap();
    let out = sg
        .shell
        .run("ipvs-bench 1000 10", Duration::from_secs(600))
        .unwrap();
    println!("{small}\n{out}");
    for o in [&small, &out] {
        let one = figure(o, "figure: lbd one-real change");
        assert_eq!(
            messages(one),
            2,
            "one request and one acknowledgement: {one}"
        );
    }
    let full = figure(&out, "figure: lbd full apply from empty");
    // 11,000 requests and as many acknowledgements: no dump, no retries.
    assert_eq!(messages(full), 22_000, "{full}");
    assert!(figure(&out, "figure: lbd full dump").contains("(1000 services, 10000 destinations)"));
    figure(&out, "figure: ratio full apply ipvsadm -R / lbd");
    figure(&out, "figure: ratio full listing ipvsadm -Ln / lbd dump");
    // Everything the benchmark created is gone again.
    let left = sg
        .shell
        .run("ipvsadm -Sn | wc -l", Duration::from_secs(60))
        .unwrap();
    assert_eq!(left.trim(), "0", "services left behind");
}
