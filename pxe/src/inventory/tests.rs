//! The inventory's parser against valid and invalid inventories, message by message.

use super::*;

const PAIR: &str = r#"
[boot]
cmdline = "lb.poll=10s   lb.log=debug"

[defaults]
ext_if = "eth0"
vips = ["192.0.2.10/24", "192.0.2.11/24"]
preempt = true

[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"
priority = 150

[[node]]
mac = "52-54-00-00-00-02"
hostname = "lb2"
priority = 100
ext_if = "ens3"
cmdline = "ip=dhcp"
"#;

fn errors(src: &str) -> Vec<String> {
    parse("inv.toml", src).unwrap_err().one_line_each()
}

#[test]
fn parses_the_classic_pair() {
    let inv = parse("inv.toml", PAIR).unwrap();
    assert_eq!(inv.boot_cmdline, "lb.poll=10s lb.log=debug");
    assert_eq!(inv.nodes.len(), 2);
    let lb2 = inv.node("52:54:00:00:00:02".parse().unwrap()).unwrap();
    assert_eq!(lb2.hostname, "lb2");
    assert_eq!(lb2.cmdline, "ip=dhcp");
    assert_eq!(lb2.values["priority"], Value::Int(100));
    assert_eq!(
        lb2.values["ext_if"],
        Value::Str("ens3".into()),
        "own value wins"
    );
    assert_eq!(lb2.values["preempt"], Value::Bool(true), "default applies");
    assert_eq!(lb2.values["mac"], Value::Str("52:54:00:00:00:02".into()));
    assert_eq!(
        lb2.values["mac_hyphen"],
        Value::Str("52-54-00-00-00-02".into())
    );
    assert_eq!(lb2.values["hostname"], Value::Str("lb2".into()));
    assert_eq!(
        lb2.values["vips"].toml_literal(),
        r#"["192.0.2.10/24", "192.0.2.11/24"]"#
    );
    assert!(inv.unknown.is_none());
    assert_eq!(
        describe(&inv),
        "2 nodes (lb1 52:54:00:00:00:01, lb2 52:54:00:00:00:02), unknown MACs: 404"
    );
}

#[test]
fn unknown_profile_gets_the_asking_mac() {
    let src = format!("{PAIR}\n[unknown]\nhostname = \"spare\"\npriority = 1\n");
    let inv = parse("inv.toml", &src).unwrap();
    let u = inv.unknown.as_ref().unwrap();
    let e = u.entry_for("02:00:00:00:00:09".parse().unwrap());
    assert_eq!(e.hostname, "spare");
    assert_eq!(e.values["mac"], Value::Str("02:00:00:00:00:09".into()));
    assert_eq!(e.values["priority"], Value::Int(1));
    assert_eq!(e.values["ext_if"], Value::Str("eth0".into()));
}

#[test]
fn duplicates_point_at_both_places() {
    let src = r#"
[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"

[[node]]
mac = "52-54-00-00-00-01"
hostname = "lb2"

[[node]]
mac = "52:54:00:00:00:03"
hostname = "lb1"
"#;
    let e = parse("inv.toml", src).unwrap_err();
    assert_eq!(
        e.one_line_each(),
        vec![
            "inv.toml:7:7: error[duplicate-mac]: MAC 52:54:00:00:00:01 is listed twice (each machine appears once; remove one of the entries)",
            "inv.toml:12:12: error[duplicate-hostname]: hostname `lb1` is used twice (every node needs its own hostname)",
        ]
    );
    let text = e.to_string();
    assert!(text.contains("::: inv.toml:3:7"), "{text}");
    assert!(text.contains("first listed here"), "{text}");
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let src = r#"[boot]
cmdline = "a ${x}"
colour = 1

[defaults]
hostname = "x"
when = 1979-05-27

[[node]]
mac = "52:54:00:00:00:0g"
hostname = "-bad"
note = "say \"hi\""

[[node]]
hostname = "lb9"

[extra]
"#;
    assert_eq!(
        errors(src),
        vec![
            "inv.toml:2:11: error[invalid-cmdline]: `cmdline` holds a control character or `${` (kernel parameters are one line of words; iPXE would expand `${...}` itself)",
            "inv.toml:3:1: error[unknown-key]: unknown key `boot.colour` ([boot] has two keys: cmdline and console)",
            "inv.toml:6:1: error[per-node-key]: `hostname` cannot have a default (mac and hostname are set per [[node]]; kernel words and the console for every node go in [boot] cmdline and [boot] console)",
            "inv.toml:7:8: error[invalid-value]: a datetime cannot be used as a template value (values are strings, integers, booleans or arrays of those)",
            "inv.toml:10:7: error[invalid-mac]: \"52:54:00:00:00:0g\" is not a MAC address; expected six hex octets such as 52:54:00:12:34:56 (`:` or `-` between them, or none)",
            "inv.toml:11:12: error[invalid-hostname]: \"-bad\" is not a valid hostname (use letters, digits and `-` (dots between labels), at most 63 characters per label)",
            "inv.toml:12:8: error[unsafe-string]: a value may not contain `\"`, `\\` or control characters (values are put into the config as they are, so they must not change its TOML structure)",
            "inv.toml:14:1: error[missing-key]: [[node]] without `mac` (a node needs mac and hostname (cmdline and console are optional))",
            "inv.toml:17:2: error[unknown-section]: unknown section `extra` (an inventory has [boot], [defaults], [unknown] and [[node]] entries (see pxe/README.md))",
        ]
    );
}

#[test]
fn toml_syntax_errors_have_a_place() {
    let e = errors("[[node]]\nmac = \"52:54:00:00:00:01\nhostname = \"x\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("inv.toml:2:25: error[toml-syntax]: invalid basic string"),
        "{e:?}"
    );
}

#[test]
fn unknown_section_cannot_name_a_mac() {
    let e = errors("[unknown]\nhostname = \"spare\"\nmac = \"52:54:00:00:00:01\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("inv.toml:3:1: error[per-node-key]: [unknown] cannot have a `mac`"),
        "{e:?}"
    );
}

#[test]
fn an_empty_inventory_is_valid() {
    let inv = parse("inv.toml", "# nothing yet\n").unwrap();
    assert!(inv.nodes.is_empty());
    assert_eq!(describe(&inv), "0 nodes, unknown MACs: 404");
}

#[test]
fn console_for_every_node_and_per_node() {
    let src = r#"
[boot]
console = "ttyS1,115200n8"

[unknown]
hostname = "spare"
console = "hvc0"

[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"

[[node]]
mac = "52:54:00:00:00:02"
hostname = "lb2"
console = "ttyS0,9600"
"#;
    let inv = parse("inv.toml", src).unwrap();
    assert_eq!(
        inv.boot_console
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("ttyS1,115200n8")
    );
    let own = |mac: &str| {
        inv.node(mac.parse().unwrap())
            .unwrap()
            .console
            .as_ref()
            .map(ToString::to_string)
    };
    assert_eq!(own("52:54:00:00:00:01"), None, "takes [boot] console");
    assert_eq!(own("52:54:00:00:00:02").as_deref(), Some("ttyS0,9600"));
    assert!(
        !inv.nodes[1].values.contains_key("console"),
        "console is a setting, not a template value"
    );
    let spare = inv
        .unknown
        .as_ref()
        .unwrap()
        .entry_for("02:00:00:00:00:09".parse().unwrap());
    assert_eq!(
        spare.console.map(|c| c.to_string()).as_deref(),
        Some("hvc0")
    );
}

#[test]
fn a_wrong_console_is_refused_at_its_line() {
    let src = r#"[boot]
console = "ttyS1,115300n8"

[defaults]
console = "ttyS0"

[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"
console = "tty1"

[[node]]
mac = "52:54:00:00:00:02"
hostname = "lb2"
console = 115200
"#;
    let help = crate::console::FORM_HELP;
    assert_eq!(
        errors(src),
        vec![
            format!("inv.toml:2:11: error[invalid-console]: console \"ttyS1,115300n8\": 115300 is not a standard serial speed ({help})"),
            "inv.toml:5:1: error[per-node-key]: `console` cannot have a default (mac and hostname are set per [[node]]; kernel words and the console for every node go in [boot] cmdline and [boot] console)".to_string(),
            format!("inv.toml:10:11: error[invalid-console]: console \"tty1\": \"tty1\" is a virtual terminal, not a serial port; console=tty0 (the screen) is always added ({help})"),
            format!("inv.toml:15:11: error[invalid-console]: `console` must be a string such as \"ttyS1,115200n8\", found integer ({help})"),
        ]
    );
}
