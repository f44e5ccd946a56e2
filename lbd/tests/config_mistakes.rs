//! Ten mistakes planted in a copy of `tools/examples/classic-pair.toml`, one per table, come
//! out as exactly ten errors, each at the line and column of the mistake, and nothing else: an
//! item that failed validation is still known by name, so the sync group that lists a refused
//! instance, the services that use a refused check and the connection sync that follows the
//! group do not report it again. Misspelt keys and names get the nearest valid one.

use lbd::config::{self, Location};

/// (what to find in the example, what to put instead, the error code, the text the error's
/// span starts with).
const MISTAKES: &[(&str, &str, &str, &str)] = &[
    // [node]: a host name with a character DNS does not allow
    (
        "hostname = \"lb1\"",
        "hostname = \"lb_1!\"",
        "bad-hostname",
        "\"lb_1!\"",
    ),
    // [ipvs]: a misspelt key
    (
        "unmanaged = \"keep\"",
        "unmanagd = \"keep\"",
        "unknown-key",
        "unmanagd",
    ),
    // [ipvs.timeouts]: a duration without a unit
    (
        "tcp_fin = \"2m\"",
        "tcp_fin = \"2\"",
        "invalid-value",
        "\"2\"",
    ),
    // [vrrp.instance.VI_EXT]: a priority VRRP does not have
    (
        "priority = 150\nversion = 3\nadvert_interval = \"1s\"\nvips = [\"192.0.2.10/24\"",
        "priority = 300\nversion = 3\nadvert_interval = \"1s\"\nvips = [\"192.0.2.10/24\"",
        "out-of-range",
        "300",
    ),
    // [vrrp.instance.VI_INT]: a router id out of range
    ("vrid = 52", "vrid = 256", "out-of-range", "256"),
    // [vrrp.sync_group.NAT_PAIR]: a misspelt member
    (
        "instances = [\"VI_EXT\", \"VI_INT\"]",
        "instances = [\"VI_EXT\", \"VI_INTT\"]",
        "unknown-instance",
        "\"VI_INTT\"",
    ),
    // [check.web]: a wrong type
    (
        "rise = 2\nfall = 3",
        "rise = \"two\"\nfall = 3",
        "invalid-value",
        "\"two\"",
    ),
    // [service.web_dr]: an unknown scheduler
    (
        "scheduler = \"sh\"",
        "scheduler = \"shh\"",
        "invalid-value",
        "\"shh\"",
    ),
    // [[service.web_nat.real]]: an address that is not one
    (
        "address = \"10.1.0.12:80\"",
        "address = \"10.1.0.256:80\"",
        "invalid-value",
        "\"10.1.0.256:80\"",
    ),
    // [service.dns]: a port out of range
    (
        "vip = \"192.0.2.11:53\"",
        "vip = \"192.0.2.11:65553\"",
        "invalid-value",
        "\"192.0.2.11:65553\"",
    ),
];

fn planted() -> (String, Vec<(String, usize, usize)>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/examples/classic-pair.toml");
    let mut text = std::fs::read_to_string(path).unwrap();
    let mut expected = Vec::new();
    for (from, to, code, at) in MISTAKES {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} is not once in the example"
        );
        text = text.replacen(from, to, 1);
        let start = text.find(to).unwrap() + to.find(at).unwrap();
        let loc = Location::of(&text, start);
        expected.push((code.to_string(), loc.line, loc.column));
    }
    expected.sort();
    (text, expected)
}

#[test]
fn ten_mistakes_make_ten_errors_and_nothing_else() {
    let (text, expected) = planted();
    let err = match config::parse("classic-pair.toml", &text) {
        Ok(_) => panic!("the planted config was accepted"),
        Err(e) => e,
    };
    let mut got: Vec<(String, usize, usize)> = err
        .errors()
        .map(|d| {
            let loc = Location::of(&text, d.span.as_ref().map_or(0, |s| s.start));
            (d.code.to_string(), loc.line, loc.column)
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "\n{err}");
}

#[test]
fn misspelt_keys_and_names_get_the_nearest_valid_one() {
    let (text, _) = planted();
    let err = config::parse("classic-pair.toml", &text).unwrap_err();
    let rendered = err.to_string();
    let find = |code: &str| {
        err.errors()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("no {code} in\n{rendered}"))
    };
    let key = find("unknown-key");
    let help = key.help.clone().unwrap_or_default();
    assert!(help.contains("`unmanaged`"), "{rendered}");
    // The nearest key, not the list of every key.
    assert!(!key.message.contains("timeouts"), "{rendered}");
    let name = find("unknown-instance");
    let help = name.help.clone().unwrap_or_default();
    assert!(help.contains("`VI_INT`"), "{rendered}");
}
