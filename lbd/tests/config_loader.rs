//! The incremental loader gives exactly what validating the whole file gives (config,
//! warnings, errors), takes the short path for edits inside service tables, and shares the
//! services an edit did not touch with the previous config.

use lbd::config::{self, Loader, Validated};
use std::sync::Arc;

const FILE: &str = "lb.toml";

fn example(name: &str) -> String {
    let path = format!("{}/../tools/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Loads `text` with `loader` and on its own; both must agree. Returns what the loader
/// validated.
fn load(loader: &mut Loader, text: &str) -> Validated {
    let incremental = loader.parse(FILE, text.to_string());
    let whole = config::parse(FILE, text);
    match (incremental, whole) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.config, b.config, "config differs for:\n{text}");
            assert_eq!(a.warnings, b.warnings, "warnings differ for:\n{text}");
            assert_eq!(a.source_text, b.source_text);
        }
        (Err(a), Err(b)) => assert_eq!(a.diagnostics, b.diagnostics, "for:\n{text}"),
        (a, b) => panic!(
            "the loader says {:?}, the whole file {:?}, for:\n{text}",
            a.map(|l| l.config.version).map_err(|e| e.to_string()),
            b.map(|l| l.config.version).map_err(|e| e.to_string())
        ),
    }
    loader.last_validated().expect("validated")
}

fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the text");
    text.replacen(from, to, 1)
}

#[test]
fn edits_inside_services_validate_only_those_services() {
    let base = example("classic-pair.toml");
    let mut loader = Loader::new();
    assert_eq!(load(&mut loader, &base), Validated::Whole);
    assert_eq!(load(&mut loader, &base), Validated::Nothing);
    let first = loader.parse(FILE, base.clone()).unwrap().config;

    // One weight of one real.
    let weight = edit(
        &base,
        "address = \"10.1.0.12:80\"\nweight = 2",
        "address = \"10.1.0.12:80\"\nweight = 5",
    );
    assert_eq!(load(&mut loader, &weight), Validated::Services(1));
    let second = loader.parse(FILE, weight.clone()).unwrap().config;
    for (name, svc) in second.services.iter() {
        assert_eq!(
            Arc::ptr_eq(svc, &first.services[name]),
            name != "web_nat",
            "{name}: only the edited service is new"
        );
    }

    // A real added at the end of a service (the edit starts where the next segment did),
    // a real added at the end of the file, a new service, a service renamed, one removed.
    let steps = [
        edit(
            &weight,
            "\n# HTTPS passed through",
            "\n[[service.web_nat.real]]\naddress = \"10.1.0.14:80\"\n\n# HTTPS passed through",
        ),
        format!("{weight}\n[[service.dns.real]]\naddress = \"192.0.2.23\"\n"),
        format!("{weight}\n[service.smtp]\nvip = \"192.0.2.10:25\"\ncheck = {{ type = \"tcp\" }}\n[[service.smtp.real]]\naddress = \"10.1.0.11:25\"\n"),
        edit(&weight, "service.web_dr", "service.web_direct").replace("service.web_dr.real", "service.web_direct.real"),
        weight[..weight.find("# DNS over UDP").unwrap()].to_string(),
    ];
    for (i, text) in steps.iter().enumerate() {
        let got = load(&mut loader, text);
        assert!(matches!(got, Validated::Services(_)), "step {i}: {got:?}");
        let back = load(&mut loader, &weight);
        assert!(
            matches!(back, Validated::Services(_)),
            "step {i} back: {back:?}"
        );
    }
}

#[test]
fn edits_that_matter_elsewhere_validate_the_whole_file() {
    let base = example("classic-pair.toml");
    let mut loader = Loader::new();
    load(&mut loader, &base);
    let cases = [
        // Another service's kernel key: refused, with both places named.
        (
            "duplicate key",
            edit(&base, "vip = \"192.0.2.10:443\"", "vip = \"192.0.2.10:80\""),
        ),
        (
            "bad address",
            edit(
                &base,
                "address = \"10.1.0.12:443\"",
                "address = \"10.1.0.312:443\"",
            ),
        ),
        ("no reals: a warning", {
            let start = base.find("[[service.web_dr.real]]").unwrap();
            let end = base.find("# DNS over UDP").unwrap();
            format!("{}{}", &base[..start], &base[end..])
        }),
        (
            "named check no longer used",
            edit(&base, "check = \"web\"\nsorry_server", "sorry_server")
                .replace("check = \"web\"\n\n[[service.web_dr", "\n[[service.web_dr"),
        ),
        (
            "a real of another family, which connection sync cannot carry",
            edit(
                &base,
                "forwarding = \"dr\"\ncheck = \"web\"",
                "forwarding = \"tun\"\ncheck = \"web\"",
            )
            .replace(
                "address = \"192.0.2.22\"\nweight = 2",
                "address = \"2001:db8::22\"\nweight = 2",
            ),
        ),
        (
            "the node",
            edit(&base, "hostname = \"lb1\"", "hostname = \"lb2\""),
        ),
        (
            "a comment outside services",
            edit(&base, "# The classic LVS pair", "# A classic LVS pair"),
        ),
        (
            "unclosed string",
            edit(
                &base,
                "address = \"192.0.2.22\"\nweight = 2",
                "address = \"192.0.2.22\nweight = 2",
            ),
        ),
        (
            "a table of another section",
            format!("{base}\n[node.sysctl]\n\"net.ipv4.vs.expire_nodest_conn\" = 1\n"),
        ),
        ("a bare [service] table", format!("{base}\n[service]\n")),
        (
            "a service renamed to one the rest of the file has",
            base.replace("[service.tls_nat", "[service.web_nat")
                .replace("[[service.tls_nat", "[[service.web_nat"),
        ),
    ];
    for (what, text) in cases {
        assert_eq!(load(&mut loader, &text), Validated::Whole, "{what}");
        // What was last accepted is still the base of the next small edit.
        let accepted = if config::parse(FILE, &text).is_ok() {
            &text
        } else {
            &base
        };
        let small = edit(accepted, "weight = 3", "weight = 4");
        // Keys of a bare [service] table could define any service: no short path from it.
        let after = if accepted.contains("\n[service]\n") {
            Validated::Whole
        } else {
            Validated::Services(1)
        };
        assert_eq!(load(&mut loader, &small), after, "after {what}");
        load(&mut loader, &base);
    }
}

#[test]
fn warnings_after_an_edit_move_with_the_text() {
    // The last service has no reals (a warning); an edit before it changes the length.
    let base = format!(
        "{}\n[service.empty]\nvip = \"192.0.2.10:8080\"\ncheck = {{ type = \"tcp\" }}\n",
        example("classic-pair.toml")
    );
    let mut loader = Loader::new();
    load(&mut loader, &base);
    assert!(!loader
        .parse(FILE, base.clone())
        .unwrap()
        .warnings
        .is_empty());
    let longer = edit(&base, "weight = 3", "weight = 3 # three times the others");
    assert_eq!(load(&mut loader, &longer), Validated::Services(1));
    let shorter = edit(&base, "weight = 3\n", "");
    assert_eq!(load(&mut loader, &shorter), Validated::Services(1));
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Lines a service edit brings.
const SERVICE_LINES: &[&str] = &[
    "weight = 9",
    "weight = 0",
    "weight = 2",
    "address = \"10.1.0.77:80\"",
    "address = \"192.0.2.31\"",
    "address = \"2001:db8::7\"",
    "[[service.web_nat.real]]",
    "[[service.dns.real]]",
    "[service.extra]",
    "vip = \"192.0.2.10:8081\"",
    "check = \"web\"",
    "check = { type = \"tcp\" }",
    "upper_threshold = 100",
    "on_failure = \"remove\"",
    "scheduler = \"rr\"",
    "# note",
    "",
];

/// Random line edits of the examples: every result, accepted or refused, is the same either
/// way, and most edits inside services take the short path.
#[test]
fn random_edits_agree_with_whole_file_validation() {
    let files = [
        "classic-pair.toml",
        "checks.toml",
        "ipv6-dr.toml",
        "demo.toml",
    ];
    let mut pool: Vec<String> = files
        .iter()
        .flat_map(|f| example(f).lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    pool.extend(
        [
            "[service.extra]",
            "[[service.extra.real]]",
            "[service]",
            "\"\"\"",
            "x = [",
            "]",
            "weight = 9",
            "weight = 0",
            "address = \"10.1.0.77:80\"",
            "address = \"2001:db8::7\"",
            "check = \"web\"",
            "check = \"nope\"",
            "vip = \"192.0.2.10:80\"",
            "# comment",
            "",
        ]
        .map(String::from),
    );
    let (mut short, mut total) = (0, 0);
    for (f, file) in files.iter().enumerate() {
        let base = example(file);
        let mut loader = Loader::new();
        load(&mut loader, &base);
        let mut rng = Rng(0x5DEECE66D + f as u64);
        for _ in 0..400 {
            let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
            // Half the edits stay among the services, with lines services have.
            let services_from = lines
                .iter()
                .position(|l| l.starts_with("[service."))
                .unwrap_or(0);
            let in_services = rng.below(2) == 0;
            for _ in 0..1 + rng.below(2) {
                let at = if in_services {
                    services_from + rng.below(lines.len() - services_from)
                } else {
                    rng.below(lines.len())
                };
                let line = if in_services {
                    SERVICE_LINES[rng.below(SERVICE_LINES.len())].to_string()
                } else {
                    pool[rng.below(pool.len())].clone()
                };
                match rng.below(3) {
                    0 => {
                        lines.remove(at);
                    }
                    1 => lines.insert(at, line),
                    _ => lines[at] = line,
                }
            }
            let text = lines.join("\n") + "\n";
            if matches!(load(&mut loader, &text), Validated::Services(_)) {
                short += 1;
            }
            total += 1;
        }
    }
    eprintln!("{short} of {total} random edits took the short path");
    assert!(short > 0, "the short path was never taken");
}
