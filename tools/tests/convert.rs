//! The converters on a corpus of keepalived.conf and ldirectord.cf files written for these tests.
//!
//! Each `tests/corpus/{keepalived,ldirectord}/NAME.{conf,cf}` has a `NAME.expect` written by
//! hand from the keepalived.conf(5) and ldirectord(8) manuals:
//! - `== ipvs`: the IPVS table the original daemon programs with every real healthy, in
//!   `ipvsadm -Ln` layout (services in any order, spacing free);
//! - `== vrrp`: instances, sync groups, connection sync and timeouts of the converted model;
//! - `== checks`: the health check each real ends up with;
//! - `== warnings`: `LINE text` for each warning (the text is a substring of the message);
//!   every warning the converter gives must be listed.
//!
//! The converted TOML must validate with `lbd::config::parse`, and the table is computed by
//! the same planner lbd uses (`reconcile::desired`), so "validates and gives the same table"
//! is what is tested. `tests/corpus/malformed/` holds broken files whose first line says which
//! line the error must name.

use lbctl::convert::{self, keepalived, Conversion};
use lbd::config::{CheckKind, Config};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sections of an expect file: name → lines (blank lines and `#` comments dropped).
fn expect_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = name.trim().to_string();
            out.entry(current.clone()).or_default();
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            out.entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
    }
    out
}

/// IPVS table as sorted service blocks with normalised spacing.
fn ipvs_blocks(lines: &[String]) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    for l in lines {
        if l.trim_start().starts_with("->") {
            if let Some(b) = blocks.last_mut() {
                b.push('\n');
                b.push_str(&ws(l));
            }
        } else {
            blocks.push(ws(l));
        }
    }
    blocks.sort();
    blocks
}

fn vrrp_lines(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = &c.node.hostname {
        out.push(format!("hostname {h}"));
    }
    for (name, i) in &c.vrrp_instances {
        let mut s = format!(
            "instance {name} {} vrid={} prio={} {:?} advert={}ms preempt={} delay={}ms vips={}",
            i.interface,
            i.vrid,
            i.priority,
            i.version,
            i.advert_interval.as_millis(),
            i.preempt,
            i.preempt_delay.as_millis(),
            i.vips
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        if !i.unicast_peers.is_empty() {
            let peers: Vec<String> = i.unicast_peers.iter().map(|p| p.to_string()).collect();
            let _ = write!(s, " peers={}", peers.join(","));
        }
        if let Some(src) = i.unicast_source {
            let _ = write!(s, " src={src}");
        }
        if let Some(p) = &i.auth_pass {
            let _ = write!(s, " auth={p}");
        }
        if !i.track_interfaces.is_empty() {
            let _ = write!(s, " track={}", i.track_interfaces.join(","));
        }
        let _ = write!(
            s,
            " vmac={} accept={} garp={}/{}ms",
            i.virtual_mac.as_deref().unwrap_or("false"),
            i.accept,
            i.garp_count,
            i.garp_repeat_after.as_millis()
        );
        out.push(s);
    }
    for (name, g) in &c.sync_groups {
        out.push(format!("group {name} {}", g.instances.join(",")));
    }
    if let Some(s) = &c.ipvs.sync {
        out.push(format!(
            "sync {} id={} follow={} port={} ttl={} maxlen={:?} group={:?}",
            s.interface, s.sync_id, s.follow, s.port, s.ttl, s.max_len, s.group
        ));
    }
    let t = &c.ipvs.timeouts;
    if t.tcp.is_some() || t.tcp_fin.is_some() || t.udp.is_some() {
        out.push(format!(
            "timeouts tcp={:?} tcpfin={:?} udp={:?}",
            t.tcp.map(|d| d.as_secs()),
            t.tcp_fin.map(|d| d.as_secs()),
            t.udp.map(|d| d.as_secs())
        ));
    }
    out
}

fn check_lines(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in c.services.iter() {
        if let Some(sorry) = &s.sorry {
            out.push(format!("{name} sorry={} {}", sorry.addr, sorry.forwarding));
        }
        out.push(format!("{name} on_failure={:?}", s.on_failure));
        if let Some(q) = &s.quorum {
            out.push(format!(
                "{name} quorum={} hysteresis={}",
                q.min_weight, q.hysteresis
            ));
        }
        for r in &s.reals {
            let Some(ch) = &r.check else {
                out.push(format!("{name} {}: none", r.addr));
                continue;
            };
            let mut l = format!(
                "{name} {}: {} every={}ms timeout={}ms rise={} fall={} retry={}ms",
                r.addr,
                kind_name(&ch.kind),
                ch.interval.as_millis(),
                ch.timeout.as_millis(),
                ch.rise,
                ch.fall,
                ch.retry_delay.as_millis()
            );
            if !ch.warmup.is_zero() {
                let _ = write!(l, " warmup={}ms", ch.warmup.as_millis());
            }
            if let Some(p) = ch.port {
                let _ = write!(l, " port={p}");
            }
            if let Some(a) = ch.connect_address {
                let _ = write!(l, " connect={a}");
            }
            if let Some(a) = ch.source_address {
                let _ = write!(l, " source={a}");
            }
            match &ch.kind {
                CheckKind::Http(h) | CheckKind::Https(h) => {
                    let _ = write!(l, " path={}", h.path);
                    if let Some(x) = &h.host {
                        let _ = write!(l, " host={x}");
                    }
                    if let Some(x) = &h.sni {
                        let _ = write!(l, " sni={x}");
                    }
                    let st: Vec<String> = h
                        .expect_status
                        .iter()
                        .map(|r| {
                            if r.low == r.high {
                                r.low.to_string()
                            } else {
                                format!("{}-{}", r.low, r.high)
                            }
                        })
                        .collect();
                    let _ = write!(l, " status={}", st.join(","));
                    if let Some(x) = &h.digest {
                        let _ = write!(l, " digest={x}");
                    }
                    if let Some(x) = &h.expect_body_regex {
                        let _ = write!(l, " regex={x}");
                    }
                }
                CheckKind::Udp {
                    payload,
                    expect_reply,
                    expect_prefix,
                } => {
                    if let Some(p) = expect_prefix {
                        let _ = write!(l, " expect_hex={}", hex(p));
                    }
                    match std::str::from_utf8(payload) {
                        Ok(text) => {
                            let _ = write!(l, " payload={text:?} reply={expect_reply}");
                        }
                        Err(_) => {
                            let _ = write!(l, " payload_hex={} reply={expect_reply}", hex(payload));
                        }
                    }
                }
                CheckKind::Dns { query, query_type } => {
                    let _ = write!(l, " query={query} {query_type}");
                }
                CheckKind::Smtp { helo_name } => {
                    let _ = write!(l, " helo={helo_name}");
                }
                CheckKind::Exec {
                    command,
                    weight_from_exit,
                } => {
                    let _ = write!(l, " command={command:?} dynamic={weight_from_exit}");
                }
                CheckKind::Mysql(login) | CheckKind::Pgsql(login) => {
                    let _ = write!(l, " user={:?} db={:?}", login.user, login.database);
                    if let Some(p) = &login.password {
                        let _ = write!(l, " password={:?}", p.expose());
                    }
                }
                CheckKind::Tcp { .. } => {}
            }
            out.push(l);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Http(_) => "http",
        CheckKind::Https(_) => "https",
        CheckKind::Udp { .. } => "udp",
        CheckKind::Dns { .. } => "dns",
        CheckKind::Smtp { .. } => "smtp",
        CheckKind::Exec { .. } => "exec",
        CheckKind::Mysql(_) => "mysql",
        CheckKind::Pgsql(_) => "pgsql",
    }
}

fn sorted_ws(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| ws(l)).collect();
    v.sort();
    v
}

fn check_case(source: &Path, conversion: &Conversion) {
    let expect_path = source.with_extension("expect");
    let expect_text = std::fs::read_to_string(&expect_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()));
    let expect = expect_sections(&expect_text);
    let toml = conversion.toml();
    let loaded = lbd::config::parse("converted.toml", &toml).unwrap_or_else(|e| {
        panic!(
            "{}: converted config does not validate:\n{e}\n---\n{toml}",
            source.display()
        )
    });
    let cfg = &loaded.config;
    let actual_ipvs: Vec<String> = lbctl::table::render(&lbctl::table::desired(cfg))
        .lines()
        .map(String::from)
        .collect();
    let mut failures = Vec::new();
    let want = ipvs_blocks(expect.get("ipvs").map_or(&[][..], |v| v));
    let got = ipvs_blocks(&actual_ipvs);
    if want != got {
        failures.push(format!(
            "IPVS table differs\n--- expected\n{}\n--- converted\n{}",
            want.join("\n"),
            got.join("\n")
        ));
    }
    for (section, actual) in [("vrrp", vrrp_lines(cfg)), ("checks", check_lines(cfg))] {
        let want = sorted_ws(expect.get(section).map_or(&[][..], |v| v));
        let got = sorted_ws(&actual);
        if want != got {
            let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
            let extra: Vec<&String> = got.iter().filter(|g| !want.contains(g)).collect();
            failures.push(format!(
                "{section} differs\n--- expected, not found:\n{}\n--- found, not expected:\n{}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    // Warnings: each expected one matched once, and nothing unexpected.
    let mut unmatched: Vec<&convert::Warning> = conversion.warnings.iter().collect();
    for w in expect.get("warnings").map_or(&[][..], |v| v) {
        let (line, text) = w.trim().split_once(' ').unwrap_or((w.trim(), ""));
        let line: usize = line
            .parse()
            .expect("warning lines start with a line number");
        match unmatched
            .iter()
            .position(|u| u.line == line && u.message.contains(text))
        {
            Some(i) => {
                unmatched.remove(i);
            }
            None => failures.push(format!("expected warning not given: {line} {text}")),
        }
    }
    for u in unmatched {
        failures.push(format!("unexpected warning: {} {}", u.line, u.message));
    }
    assert!(
        failures.is_empty(),
        "{}:\n{}\n--- converted config:\n{toml}",
        source.display(),
        failures.join("\n\n")
    );
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn keepalived_corpus() {
    let cases = files("keepalived", "conf");
    assert!(cases.len() >= 5, "{cases:?}");
    for case in cases {
        let c = convert::keepalived::convert_file(
            &case,
            &convert::RealFs,
            &convert::Options::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        check_case(&case, &c);
    }
}

#[test]
fn ldirectord_corpus() {
    let cases = files("ldirectord", "cf");
    assert!(cases.len() >= 3, "{cases:?}");
    for case in cases {
        let c = convert::ldirectord::convert_file(&case, &convert::Options::default())
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        check_case(&case, &c);
    }
}

/// Broken files: the first line is `# error LINE: TEXT` (TEXT a substring of the message).
#[test]
fn malformed_input_names_the_line() {
    let mut count = 0;
    for case in files("malformed", "conf")
        .into_iter()
        .chain(files("malformed", "cf"))
    {
        let text = std::fs::read_to_string(&case).unwrap();
        let first = text.lines().next().unwrap();
        let spec = first.strip_prefix("# error ").unwrap_or_else(|| {
            panic!(
                "{}: first line must be `# error LINE: TEXT`",
                case.display()
            )
        });
        let (line, want) = spec.split_once(": ").unwrap();
        let line: usize = line.parse().unwrap();
        let result = if case.extension().is_some_and(|e| e == "conf") {
            convert::keepalived::convert_file(&case, &convert::RealFs, &Default::default())
        } else {
            convert::ldirectord::convert_file(&case, &Default::default())
        };
        let err = match result {
            Ok(c) => panic!(
                "{}: converted, expected an error:\n{}",
                case.display(),
                c.toml()
            ),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.line(), line, "{}: {shown}", case.display());
        assert!(
            shown.contains(want),
            "{}: error {shown:?} does not say {want:?}",
            case.display()
        );
        assert!(
            shown.starts_with(&format!("{}:{line}: ", case.display())),
            "{shown}"
        );
        count += 1;
    }
    assert!(count >= 10, "only {count} malformed cases");
}

/// The CLI: TOML on stdout that `lbctl validate` accepts, warnings on stderr, exit 1 on errors.
#[test]
fn cli_converts_and_the_output_validates() {
    let dir = std::env::temp_dir().join(format!("lbctl-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["convert", "ldirectord"])
        .arg(corpus().join("ldirectord/classic.cf"))
        .arg("-o")
        .arg(&out)
        .args(["--interface", "bond0", "--vrid", "7", "--table"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("warning: "), "{stderr}");
    assert!(stderr.contains("converted: 1 service"), "{stderr}");
    assert!(
        stderr.contains("TCP  192.168.6.240:80 rr persistent 600\n  -> 192.168.6.2:80"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("interface = \"bond0\"\nvrid = 7\n"), "{text}");
    let v = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("validate")
        .arg(&out)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let bad = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["convert", "keepalived"])
        .arg(corpus().join("malformed/unclosed.conf"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unclosed.conf:"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn keepalived_static_addresses_routes_and_rules_become_the_network() {
    let text = "\
static_ipaddress {
    192.0.2.2/24 dev eth0 scope global
    10.1.0.2/24 dev eth1
    198.51.100.9 label eth0:1
}
static_routes {
    default via 192.0.2.1
    10.8.0.0/16 via 10.1.0.254 metric 20
    src 10.1.0.2 172.16.0.0/12 via 10.1.0.254 dev eth1 table 100
    blackhole 10.99.0.0/16
}
static_rules {
    from 10.1.0.0/24 table 100 priority 1000
    from 10.2.0.0/24 fwmark 3 table 100
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    unicast_src_ip 192.0.2.7
    unicast_peer {
        192.0.2.3
    }
    track_interface {
        eth2
    }
    virtual_ipaddress {
        192.0.2.10/24
    }
}
";
    let c = keepalived::convert_str("keepalived.conf", text, &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let loaded =
        lbd::config::parse("converted.toml", &c.output.render()).unwrap_or_else(|e| panic!("{e}"));
    let net = loaded.config.network.expect("a [network]");
    let addrs = |l: &str| -> Vec<String> {
        net.links[l]
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    // No dev: keepalived's default interface. The system's unicast source is declared too.
    assert_eq!(
        addrs("eth0"),
        ["192.0.2.2/24", "198.51.100.9/32", "192.0.2.7/32"]
    );
    assert_eq!(addrs("eth1"), ["10.1.0.2/24"]);
    // The tracked interface is declared, so lbd knows it.
    assert!(net.links["eth2"].addresses.is_empty());
    // A route without dev leaves by the link whose subnet holds its gateway.
    let routes = |l: &str| -> Vec<String> {
        net.links[l]
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?} {:?} {:?}",
                    r.to, r.via, r.metric, r.table, r.source
                )
            })
            .collect()
    };
    assert_eq!(routes("eth0"), ["0.0.0.0/0 Some(192.0.2.1) None None None"]);
    assert_eq!(
        routes("eth1"),
        [
            "10.8.0.0/16 Some(10.1.0.254) Some(20) None None",
            "172.16.0.0/12 Some(10.1.0.254) None Some(100) Some(10.1.0.2)"
        ]
    );
    assert_eq!(net.rules.len(), 1);
    assert_eq!(net.rules[0].priority, Some(1000));
    let said: Vec<&str> = c.warnings.iter().map(|w| w.message.as_str()).collect();
    for expected in [
        "`scope global` has no equivalent",
        "`label eth0:1` has no equivalent",
        "lbd configures no `blackhole` routes",
        "not `fwmark`",
        "unicast_src_ip 192.0.2.7 was an address the system gave eth0",
    ] {
        assert!(
            said.iter().any(|w| w.contains(expected)),
            "no warning saying {expected:?} in {said:#?}"
        );
    }
}
