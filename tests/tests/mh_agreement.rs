//! Balancers side by side agree on a flow's real (`mh` services, issue 21), shown inside one
//! guest of the test image: two `mh` services (flags `mh-port`, `mh-fallback`) reach the same
//! set of reals through different histories — other add orders, a real removed (drained) and
//! added back, a weight changed and changed back, a real marked down by its check and up again,
//! each through a config reload — and the kernel's own list order, as `ipvsadm -Ln --nosort`
//! (the independent tool in the image) shows it, is the same for both and the canonical one
//! (descending by address, then port). Since the kernel builds an `mh` table from that order,
//! the reals and their weights, the same source port then goes to the same real on both: SYNs
//! from fixed source ports show it in `ipvsadm -Lnc`. `[ipvs] sloppy_tcp` and `sloppy_sctp`
//! reach `/proc/sys/net/ipv4/vs/`.
//!
//! Needs QEMU, the kernel package (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::collections::BTreeMap;
use std::time::Duration;

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell, ShellGuest};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(45);
const CMD: Duration = Duration::from_secs(30);

const APPLIED: &str = r"lbd:\s+INFO ipvs applied: (?P<s>services \S+ \S+ \S+, reals \S+ \S+ \S+, other \d+, \d+ errors?)";

/// A real in a config: address, weight, and whether its check fails (a TCP check of a port of
/// the guest where nothing listens).
type Real = (&'static str, u32, bool);

fn service(name: &str, port: u16, reals: &[Real]) -> String {
    let mut t = format!(
        "[service.{name}]\nvip = \"10.0.2.100:{port}\"\nscheduler = \"mh\"\nflags = [\"mh-port\", \"mh-fallback\"]\nforwarding = \"nat\"\n\n"
    );
    for (addr, weight, down) in reals {
        t += &format!("[[service.{name}.real]]\naddress = \"{addr}\"\nweight = {weight}\n");
        if *down {
            t += "check = { type = \"tcp\", connect_address = \"10.0.2.15\", port = 9, interval = \"1s\", timeout = \"500ms\", rise = 1, fall = 1, jitter = \"0ms\" }\n";
        }
        t += "\n";
    }
    t
}

fn config(ipvs: &str, a: &[Real], b: &[Real]) -> String {
    format!(
        "[ipvs]\n{ipvs}\n[vrrp.instance.V4]\ninterface = \"eth0\"\nvrid = 42\npriority = 100\nvips = [\"10.0.2.100/24\"]\n\n{}{}",
        service("a", 80, a),
        service("b", 81, b)
    )
}

/// The final set of reals, the same for both services (the config's order differs).
const FINAL_A: &[Real] = &[
    ("10.0.2.11:80", 1, false),
    ("10.0.2.12:80", 2, false),
    ("10.0.2.13:80", 1, false),
    ("10.0.2.14:8080", 3, false),
    ("10.0.2.5:80", 1, false),
    ("10.0.2.14:80", 2, false),
];
const FINAL_B: &[Real] = &[
    ("10.0.2.14:80", 2, false),
    ("10.0.2.5:80", 1, false),
    ("10.0.2.14:8080", 3, false),
    ("10.0.2.13:80", 1, false),
    ("10.0.2.12:80", 2, false),
    ("10.0.2.11:80", 1, false),
];

/// The canonical order of the final reals, head first, as `ipvsadm -Ln --nosort` lists them.
const CANONICAL: &[(&str, u32)] = &[
    ("10.0.2.14:8080", 3),
    ("10.0.2.14:80", 2),
    ("10.0.2.13:80", 1),
    ("10.0.2.12:80", 2),
    ("10.0.2.11:80", 1),
    ("10.0.2.5:80", 1),
];

/// Each service's reals in the kernel's order, with forwarding and weight, from
/// `ipvsadm -Ln --nosort`.
fn kernel_order(sh: &mut GuestShell) -> BTreeMap<String, Vec<(String, String, u32)>> {
    let text = sh.run("ipvsadm -Ln --nosort", CMD).unwrap();
    let mut out: BTreeMap<String, Vec<(String, String, u32)>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["TCP", vip, ..] => {
                current = Some(vip.to_string());
                out.entry(vip.to_string()).or_default();
            }
            ["->", addr, fwd, weight, ..] if current.is_some() => {
                if let Ok(w) = weight.parse() {
                    out.get_mut(current.as_ref().unwrap()).unwrap().push((
                        addr.to_string(),
                        fwd.to_string(),
                        w,
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// Publishes `config` and waits for lbd's apply summary and the reload line.
fn publish(sg: &ShellGuest, dir: &ConfigDir, config: &str) -> String {
    let version = dir.publish("lb.toml", config).unwrap();
    let m = sg.guest.expect(APPLIED, STEP).unwrap();
    sg.guest
        .expect(
            &format!(
                r"lbd:\s+INFO reloaded config \S+: .*version {}",
                &version[..12]
            ),
            STEP,
        )
        .unwrap();
    m.name("s").unwrap().to_string()
}

/// Waits until every pattern matched a console line from line `from` on, in any order (a check
/// may report before the reload's own lines).
fn wait_all(sg: &ShellGuest, from: usize, patterns: &[String], what: &str) {
    let res: Vec<regex::Regex> = patterns
        .iter()
        .map(|p| regex::Regex::new(p).unwrap())
        .collect();
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let lines = sg.guest.console().lines();
        let missing: Vec<&regex::Regex> = res
            .iter()
            .filter(|re| !lines.iter().skip(from).any(|l| re.is_match(l)))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no console line matched {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sysctl(sh: &mut GuestShell, name: &str) -> String {
    sh.run(&format!("cat /proc/sys/net/ipv4/vs/{name}"), CMD)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn two_mh_services_with_different_histories_end_in_the_same_canonical_order() {
    // Step 0: a gets three reals listed ascending, b two listed descending.
    let first = config(
        "sloppy_tcp = true",
        &[
            ("10.0.2.11:80", 1, false),
            ("10.0.2.12:80", 2, false),
            ("10.0.2.13:80", 1, false),
        ],
        &[("10.0.2.14:8080", 3, false), ("10.0.2.5:80", 1, false)],
    );
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", &first).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("mh-agreement")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml")
            .poll("1s"),
        BOOT,
    )
    .unwrap();
    let m = sg.guest.expect(APPLIED, BOOT).unwrap();
    assert_eq!(
        m.name("s"),
        Some("services +2 ~0 -0, reals +5 ~0 -0, other 0, 0 errors"),
        "{}",
        m.line
    );
    // Set at start; sloppy_sctp is not in the config: left as the kernel has it (0).
    assert_eq!(sysctl(&mut sg.shell, "sloppy_tcp"), "1");
    assert_eq!(sysctl(&mut sg.shell, "sloppy_sctp"), "0");
    assert!(
        sg.guest
            .console()
            .lines()
            .iter()
            .any(|l| l.contains("ipvs: sloppy_tcp set to 1 (was 0)")),
        "lbd says what it set"
    );
    let order = kernel_order(&mut sg.shell);
    let addrs = |v: &[(String, String, u32)]| v.iter().map(|d| d.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        addrs(&order["10.0.2.100:80"]),
        ["10.0.2.13:80", "10.0.2.12:80", "10.0.2.11:80"],
        "a new service is added ascending, so the kernel lists it descending"
    );
    assert_eq!(
        addrs(&order["10.0.2.100:81"]),
        ["10.0.2.14:8080", "10.0.2.5:80"]
    );

    // Each step: what, the config, then the log lines to wait for (a drain ending, a check
    // marking a real down) before looking at the table.
    let drained = |real: &str, svc: &str| {
        vec![
            format!(
                r"lbd:\s+INFO ipvs: real {} of service {svc} drained: no connections left",
                real.replace('.', r"\.")
            ),
            r"lbd:\s+INFO ipvs applied removal drain changes".to_string(),
        ]
    };
    let steps: Vec<(&str, String, Vec<String>)> = vec![
        (
            // a: a real below the others (they all move); b: two reals between its two.
            "add reals in other orders",
            config(
                "sloppy_tcp = true",
                &[
                    ("10.0.2.13:80", 1, false),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.12:80", 2, false),
                ],
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.13:80", 1, false),
                ],
            ),
            vec![],
        ),
        (
            // a: the top real (one add), and a weight change; b: 10.0.2.5 removed (drained).
            "add the top real, change a weight, remove a real",
            config(
                "sloppy_tcp = true",
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.13:80", 1, false),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.12:80", 7, false),
                ],
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.13:80", 1, false),
                ],
            ),
            drained("10.0.2.5:80", "b"),
        ),
        (
            // a: 10.0.2.13 down, 10.0.2.11 removed (drained); b: 10.0.2.5 back, two more.
            "a real down, a real removed, a removed real back",
            config(
                "sloppy_tcp = true",
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.13:80", 1, true),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.12:80", 7, false),
                ],
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.13:80", 1, false),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.14:80", 2, false),
                    ("10.0.2.12:80", 2, false),
                ],
            ),
            {
                let mut w = drained("10.0.2.11:80", "a");
                w.push(r"lbd:\s+WARN real 10\.0\.2\.13:80 of service a is down".into());
                w.push(r"lbd:\s+INFO ipvs applied health (and sync role )?changes".into());
                w
            },
        ),
        (
            // a: 10.0.2.11 back below the down 10.0.2.13, which moves at weight 0 (added at
            // its weight for its slots, then 0), and 10.0.2.14:80 new; b: listed otherwise.
            "reals added below and above a down one",
            config(
                "sloppy_tcp = true",
                &[
                    ("10.0.2.14:8080", 3, false),
                    ("10.0.2.13:80", 1, true),
                    ("10.0.2.5:80", 1, false),
                    ("10.0.2.11:80", 1, false),
                    ("10.0.2.12:80", 7, false),
                    ("10.0.2.14:80", 2, false),
                ],
                FINAL_B,
            ),
            vec![],
        ),
        (
            // Everything up, weights back; the sloppy settings change.
            "the final set",
            config("sloppy_tcp = false\nsloppy_sctp = true", FINAL_A, FINAL_B),
            vec![],
        ),
    ];
    for (what, text, waits) in &steps {
        let from = sg.guest.console().lines().len();
        let summary = publish(&sg, &dir, text);
        assert!(summary.ends_with(", 0 errors"), "{what}: {summary}");
        wait_all(&sg, from, waits, what);
        let order = kernel_order(&mut sg.shell);
        if what.starts_with("a real down") || what.starts_with("reals added below") {
            let a = &order["10.0.2.100:80"];
            assert!(
                a.iter().any(|d| d.0 == "10.0.2.13:80" && d.2 == 0),
                "{what}: the down real stays at weight 0: {a:?}"
            );
        }
        // Every step leaves both services in the canonical order.
        for (vip, dests) in order {
            let list = addrs(&dests);
            let mut sorted = list.clone();
            sorted.sort_by_key(|a| {
                let s: std::net::SocketAddr = a.parse().unwrap();
                std::cmp::Reverse(s)
            });
            assert_eq!(list, sorted, "{what}: {vip} not in the canonical order");
        }
    }
    let log = sg.guest.console().lines().join("\n");
    assert!(
        log.contains("ipvs: service a (mh): moving"),
        "a move was logged"
    );

    // The same reals, weights and order on both services: the canonical order.
    let order = kernel_order(&mut sg.shell);
    let want: Vec<(String, String, u32)> = CANONICAL
        .iter()
        .map(|(a, w)| (a.to_string(), "Masq".to_string(), *w))
        .collect();
    assert_eq!(order["10.0.2.100:80"], want, "service a");
    assert_eq!(order["10.0.2.100:81"], want, "service b");
    assert_eq!(sysctl(&mut sg.shell, "sloppy_tcp"), "0");
    assert_eq!(sysctl(&mut sg.shell, "sloppy_sctp"), "1");

    // Flows: SYNs from fixed source ports to both services, from the guest itself (IPVS
    // schedules local clients too). With mh-port the port is hashed with the address: each
    // source port must go to the same real on both services. busybox nc binds no local port
    // when it connects, so the ephemeral range is narrowed to the one port each time.
    sg.shell
        .run(
            "r=$(cat /proc/sys/net/ipv4/ip_local_port_range); for p in $(seq 41001 41024); do echo \"$p $p\" > /proc/sys/net/ipv4/ip_local_port_range; nc -w 1 10.0.2.100 80 </dev/null >/dev/null 2>&1 & nc -w 1 10.0.2.100 81 </dev/null >/dev/null 2>&1 & sleep 0.3; done; echo \"$r\" > /proc/sys/net/ipv4/ip_local_port_range; wait",
            CMD,
        )
        .unwrap();
    let conns = sg.shell.run("ipvsadm -Lnc", CMD).unwrap();
    let mut to: BTreeMap<(String, u16), String> = BTreeMap::new();
    for line in conns.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["TCP", _, _, source, virt, dest] = f.as_slice() {
            let Some(port) = source
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            if (41001..=41024).contains(&port) {
                to.insert((virt.to_string(), port), dest.to_string());
            }
        }
    }
    let mut reals_used = std::collections::BTreeSet::new();
    for port in 41001..=41024u16 {
        let a = to.get(&("10.0.2.100:80".to_string(), port));
        let b = to.get(&("10.0.2.100:81".to_string(), port));
        assert!(
            a.is_some() && b.is_some(),
            "port {port}: {a:?} {b:?}\n{conns}"
        );
        assert_eq!(a, b, "source port {port} went to different reals\n{conns}");
        reals_used.insert(a.unwrap().clone());
    }
    assert!(
        reals_used.len() > 1,
        "24 flows all went to one real: {reals_used:?}"
    );
    eprintln!(
        "24 source ports, each to the same real on both services, over {} reals: {reals_used:?}",
        reals_used.len()
    );
    assert_no_fatal(sg.guest.console());
}
