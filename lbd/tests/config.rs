//! Accepted and refused configs: each refused case names the diagnostic code and the
//! line:column it must point at, so a message that drifts away from the mistake fails.

use lbd::config::{self, CheckKind, Forwarding, Location, Scheduler, ServiceKey, Severity};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/examples")
}

/// Minimal valid header: one VRRP instance holding 192.0.2.10 and 2001:db8::10 is separate.
const BASE: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.10/24"]
"#;

/// Parses BASE + `extra` and returns (code, line, column) of every error.
fn errors(extra: &str) -> Vec<(String, usize, usize)> {
    let src = format!("{BASE}{extra}");
    match config::parse("t.toml", &src) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .map(|d| {
                let loc = d
                    .span
                    .as_ref()
                    .map(|s| Location::of(&src, s.start))
                    .unwrap_or(Location { line: 0, column: 0 });
                (d.code.to_string(), loc.line, loc.column)
            })
            .collect(),
    }
}

/// Parses BASE + `extra`, which must be accepted, and returns (code, line, column) of every
/// warning.
fn warnings(extra: &str) -> Vec<(String, usize, usize)> {
    let src = format!("{BASE}{extra}");
    let loaded = config::parse("t.toml", &src).unwrap_or_else(|e| panic!("{e}"));
    loaded
        .warnings
        .iter()
        .map(|d| {
            let loc = Location::of(&src, d.span.as_ref().map_or(0, |s| s.start));
            (d.code.to_string(), loc.line, loc.column)
        })
        .collect()
}

fn codes(extra: &str) -> Vec<String> {
    errors(extra).into_iter().map(|(c, _, _)| c).collect()
}

#[test]
fn every_example_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let loaded = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.config.services.is_empty(), "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 3, "expected the sample configs in tools/examples");
}

#[test]
fn classic_pair_model() {
    let loaded = config::load(&examples().join("classic-pair.toml")).unwrap();
    let c = &loaded.config;
    assert_eq!(c.node.hostname.as_deref(), Some("lb1"));
    assert_eq!(c.node.sysctls["net.ipv4.ip_forward"], "1");
    assert_eq!(c.ipvs.timeouts.tcp, Some(Duration::from_secs(7200)));
    let sync = c.ipvs.sync.as_ref().unwrap();
    assert_eq!(
        (sync.interface.as_str(), sync.sync_id, sync.follow.as_str()),
        ("eth1", 51, "NAT_PAIR")
    );
    assert_eq!(c.sync_groups["NAT_PAIR"].instances, ["VI_EXT", "VI_INT"]);
    let ext = &c.vrrp_instances["VI_EXT"];
    assert_eq!(
        (ext.vrid, ext.priority, ext.advert_interval),
        (51, 150, Duration::from_secs(1))
    );
    assert_eq!(ext.preempt_delay, Duration::from_secs(30));

    let nat = &c.services["web_nat"];
    assert_eq!(
        nat.key,
        ServiceKey::Addr {
            protocol: config::Protocol::Tcp,
            addr: "192.0.2.10:80".parse().unwrap()
        }
    );
    assert_eq!(nat.scheduler, Scheduler::Wlc);
    assert_eq!(nat.vrrp_instance.as_deref(), Some("VI_EXT"));
    assert_eq!(
        nat.sorry.as_ref().unwrap().addr,
        "10.1.0.99:80".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(nat.quorum.unwrap().min_weight, 2);
    let weights: Vec<u32> = nat.reals.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [3, 2, 1]);
    // The third real overrides the named check's port and path, keeps its other fields.
    let check = nat.reals[2].check.as_ref().unwrap();
    assert_eq!(check.port, Some(8080));
    assert_eq!(
        (check.rise, check.fall, check.interval),
        (2, 3, Duration::from_secs(2))
    );
    match &check.kind {
        CheckKind::Http(h) => {
            assert_eq!(h.path, "/status");
            assert_eq!(h.host.as_deref(), Some("www.example.com"));
            assert_eq!(h.expect_body.as_deref(), Some("ok"));
        }
        other => panic!("expected http, got {other:?}"),
    }

    let tls = &c.services["tls_nat"];
    let p = tls.persistence.unwrap();
    assert_eq!((p.timeout, p.prefix_len), (Duration::from_secs(300), 24));

    // DR reals without a port take the service's port.
    let dr = &c.services["web_dr"];
    assert!(dr
        .reals
        .iter()
        .all(|r| r.forwarding == Forwarding::Dr && r.addr.port() == 80));
    assert!(dr.flags.contains(&config::ServiceFlag::ShFallback));
    assert_eq!(c.services["dns"].key.to_string(), "udp 192.0.2.11:53");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warning_lines());
}

#[test]
fn ipv6_example_model() {
    let c = config::load(&examples().join("ipv6-dr.toml"))
        .unwrap()
        .config;
    assert_eq!(
        c.vrrp_instances["VI6"].advert_interval,
        Duration::from_millis(100)
    );
    let web6 = &c.services["web6"];
    assert_eq!(web6.reals[2].forwarding, Forwarding::Tun);
    assert_eq!(
        web6.reals[2].addr,
        "192.0.2.30:443".parse::<SocketAddr>().unwrap()
    );
    let fw = &c.services["all_ports"];
    assert_eq!(fw.key.to_string(), "fwmark 7 (IPv6)");
    assert_eq!(fw.persistence.unwrap().prefix_len, 64);
    assert_eq!(fw.reals[0].addr.port(), 0);
}

#[test]
fn defaults_are_filled_in() {
    let text = format!("{BASE}[service.s]\nvip = \"192.0.2.10:80\"\ncheck = {{ type = \"tcp\" }}\n[[service.s.real]]\naddress = \"10.0.0.1:80\"\n");
    let c = config::parse("t.toml", &text).unwrap().config;
    let s = &c.services["s"];
    assert_eq!(s.scheduler, Scheduler::Wlc);
    assert_eq!(s.reals[0].forwarding, Forwarding::Nat);
    assert_eq!(s.reals[0].weight, 1);
    let ch = s.reals[0].check.as_ref().unwrap();
    assert_eq!(
        (ch.interval, ch.timeout, ch.rise, ch.fall),
        (Duration::from_secs(5), Duration::from_secs(3), 2, 3)
    );
    assert_eq!(ch.jitter, Duration::from_millis(500));
    assert!(c.vrrp_instances["V"].preempt);
    // The version is the text's SHA-256 (worked out when asked for).
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(c.version.hex(), sha);
    assert_eq!(c.version.short(), &sha[..12]);
    assert_eq!(c.version.to_string(), sha);
    assert_eq!(
        serde_json::to_value(&c).unwrap()["version"],
        serde_json::Value::String(sha)
    );
    let again = config::parse("t.toml", &text).unwrap().config.version;
    assert_eq!(again, c.version);
    let other = config::parse("t.toml", &format!("{text}# a comment\n"))
        .unwrap()
        .config
        .version;
    assert_ne!(other, c.version);
}

/// Passwords reach the checker but no dump; payloads and expected replies are bytes; a CA
/// in `ca_pem` turns verification on; a real's `payload_hex` replaces the service's `payload`.
#[test]
fn check_passwords_bytes_and_cas() {
    let ca = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_support/test-ca.pem"),
    )
    .unwrap();
    let c = config::parse(
        "t.toml",
        &format!(
            r#"{BASE}
[service.db]
vip = "192.0.2.10:5432"
check = {{ type = "pgsql", user = "monitor", password = "s3cret pass", database = "app" }}
[[service.db.real]]
address = "10.0.0.1:5432"

[service.dns]
vip = "192.0.2.10:53"
protocol = "udp"
check = {{ type = "udp", payload = "ping", expect_hex = "CA FE" }}
[[service.dns.real]]
address = "10.0.0.2:53"
[[service.dns.real]]
address = "10.0.0.3:53"
check = {{ payload_hex = "00 ff 10" }}

[service.web]
vip = "192.0.2.10:443"
check = {{ type = "https", sni = "a.test", ca_pem = """
{ca}""" }}
[[service.web.real]]
address = "10.0.0.4:443"
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let check = |svc: &str, i: usize| c.services[svc].reals[i].check.clone().unwrap().kind.clone();
    let CheckKind::Pgsql(login) = check("db", 0) else {
        panic!()
    };
    assert_eq!(login.user.as_deref(), Some("monitor"));
    assert_eq!(login.password.as_ref().unwrap().expose(), "s3cret pass");
    // Neither the model dump (lbd check --dump) nor Debug shows it.
    let dump = serde_json::to_string(&c).unwrap();
    assert!(!dump.contains("s3cret"), "{dump}");
    assert!(dump.contains(r#""password":"<redacted>""#), "{dump}");
    assert!(!format!("{c:?}").contains("s3cret"));

    let CheckKind::Udp {
        payload,
        expect_reply,
        expect_prefix,
    } = check("dns", 0)
    else {
        panic!()
    };
    assert_eq!(payload, b"ping");
    assert!(expect_reply, "expect_hex implies a reply");
    assert_eq!(expect_prefix.as_deref(), Some(&[0xca, 0xfe][..]));
    let CheckKind::Udp { payload, .. } = check("dns", 1) else {
        panic!()
    };
    assert_eq!(payload, [0x00, 0xff, 0x10]);
    assert!(dump.contains(r#""payload_hex":"00ff10""#), "{dump}");

    let CheckKind::Https(h) = check("web", 0) else {
        panic!()
    };
    assert!(h.tls_verify, "ca_pem turns verification on");
    assert_eq!(h.ca_pem.as_deref(), Some(ca.as_str()));
}

/// (diagnostic code, line, column)
type Expected = (&'static str, usize, usize);

#[test]
fn refused_configs_point_at_the_mistake() {
    // (config after BASE, expected (code, line, column)); BASE is 6 lines, so extra starts at 7.
    let cases: &[(&str, &[Expected])] = &[
        // unknown key inside a known section
        ("[node]\nhostnmae = \"x\"\n", &[("unknown-key", 8, 1)]),
        // unknown top-level section
        ("[frontend]\nx = 1\n", &[("unknown-section", 7, 2)]),
        // bad scheduler name, pointed at the value
        ("[service.s]\nvip = \"192.0.2.10:80\"\nscheduler = \"wlcc\"\n", &[("invalid-value", 9, 13)]),
        // port out of range
        ("[service.s]\nvip = \"192.0.2.10:65536\"\n", &[("invalid-value", 8, 7)]),
        // vip without a port
        ("[service.s]\nvip = \"192.0.2.10\"\n", &[("missing-port", 8, 7)]),
        // a real-time priority the kernel has no such level for
        ("[node]\nvrrp_realtime_priority = 100\n", &[("bad-realtime-priority", 8, 26)]),
        ("[node]\nvrrp_realtime_priority = 0\n", &[]),
        // duplicate service: two names, same protocol/address/port
        (
            "[service.a]\nvip = \"192.0.2.10:80\"\n[service.b]\nvip = \"192.0.2.10:80\"\n",
            &[("duplicate-service", 10, 7)],
        ),
        // same address and port but UDP is another service: accepted
        ("[service.a]\nvip = \"192.0.2.10:53\"\n[service.b]\nvip = \"192.0.2.10:53\"\nprotocol = \"udp\"\n", &[]),
        // VIP not held by any VRRP instance
        ("[service.s]\nvip = \"198.51.100.1:80\"\n", &[("vip-not-in-vrrp", 8, 7)]),
        // DR real on another port: the kernel would forward to the service port anyway
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nforwarding = \"dr\"\n[[service.s.real]]\naddress = \"10.0.0.1:8080\"\n",
            &[("real-port-mismatch", 11, 11)],
        ),
        // IPv6 real behind an IPv4 service in NAT: refused
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\n[[service.s.real]]\naddress = \"[2001:db8::1]:80\"\n",
            &[("mixed-family", 10, 11)],
        ),
        // ...but allowed in tunnel mode
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\n[[service.s.real]]\naddress = \"[2001:db8::1]:80\"\nforwarding = \"tun\"\n",
            &[],
        ),
        // the same real twice in one service
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\n[[service.s.real]]\naddress = \"10.0.0.1:80\"\n[[service.s.real]]\naddress = \"10.0.0.1\"\n",
            &[("duplicate-real", 12, 11)],
        ),
        // a VRRP instance mixing families, and a v2 instance with IPv6
        (
            "[vrrp.instance.W]\ninterface = \"eth1\"\nvrid = 2\npriority = 100\nversion = 2\nvips = [\"192.0.2.20\", \"2001:db8::20\"]\n",
            &[("mixed-family", 12, 23), ("v2-ipv6", 12, 23)],
        ),
        // duplicate vrid on one interface
        (
            "[vrrp.instance.W]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"192.0.2.20\"]\n",
            &[("duplicate-vrid", 9, 8)],
        ),
        // one VRID with virtual MACs on two interfaces: both macvlans would be vrrp.7
        (
            "[vrrp.instance.A]\ninterface = \"eth1\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvips = [\"198.51.100.1\"]\n[vrrp.instance.B]\ninterface = \"eth2\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvips = [\"198.51.100.2\"]\n",
            &[("vmac-name-taken", 13, 16)],
        ),
        // ... and distinct names fix it
        (
            "[vrrp.instance.A]\ninterface = \"eth1\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvips = [\"198.51.100.1\"]\n[vrrp.instance.B]\ninterface = \"eth2\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvirtual_mac_interface = \"vmac-b\"\nvips = [\"198.51.100.2\"]\n",
            &[],
        ),
        // a macvlan name that is one of the VRRP interfaces, or not an interface name
        (
            "[vrrp.instance.A]\ninterface = \"eth1\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvirtual_mac_interface = \"eth0\"\nvips = [\"198.51.100.1\"]\n[vrrp.instance.B]\ninterface = \"eth2\"\nvrid = 8\npriority = 100\nvirtual_mac = true\nvirtual_mac_interface = \"a/b\"\nvips = [\"198.51.100.2\"]\n",
            &[("vmac-name-taken", 12, 25), ("bad-interface", 19, 25)],
        ),
        // a bare number where a duration belongs
        ("[ipvs.timeouts]\ntcp = 900\n", &[("invalid-value", 8, 7)]),
        // v3 interval not in centiseconds
        (
            "[vrrp.instance.W]\ninterface = \"eth1\"\nvrid = 3\npriority = 100\nadvert_interval = \"15ms\"\nvips = [\"192.0.2.30\"]\n",
            &[("bad-advert-interval", 11, 19)],
        ),
        // check option that does not apply to the check type
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", path = \"/\" }\n",
            &[("key-not-for-type", 9, 32)],
        ),
        // unknown named check
        ("[service.s]\nvip = \"192.0.2.10:80\"\ncheck = \"missing\"\n", &[("unknown-check", 9, 9)]),
        // sh flags without sh
        ("[service.s]\nvip = \"192.0.2.10:80\"\nflags = [\"sh-port\"]\n", &[("flag-needs-sh", 9, 10)]),
        // mh keeps down reals in place: "remove" is refused
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nscheduler = \"mh\"\non_failure = \"remove\"\n",
            &[("mh-on-failure-remove", 10, 14)],
        ),
        // sync group naming an unknown instance
        ("[vrrp.sync_group.G]\ninstances = [\"V\", \"NOPE\"]\n", &[("unknown-instance", 8, 19)]),
        // quorum that can never be met
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nquorum = { min_weight = 5 }\n[[service.s.real]]\naddress = \"10.0.0.1:80\"\n",
            &[("quorum-unreachable", 9, 25)],
        ),
        // syntax error
        ("[service.s\n", &[("toml-syntax", 7, 11)]),
        // UDP payload_hex: an odd count of digits, a non-digit; expect_hex likewise
        (
            "[service.s]\nvip = \"192.0.2.10:53\"\nprotocol = \"udp\"\ncheck = { type = \"udp\", payload_hex = \"0a1\" }\n",
            &[("bad-hex", 10, 39)],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:53\"\nprotocol = \"udp\"\ncheck = { type = \"udp\", payload_hex = \"0a 1g\", expect_hex = \"x\" }\n",
            &[("bad-hex", 10, 39), ("bad-hex", 10, 61)],
        ),
        // payload and payload_hex are one setting: not both
        (
            "[service.s]\nvip = \"192.0.2.10:53\"\nprotocol = \"udp\"\ncheck = { type = \"udp\", payload = \"x\", payload_hex = \"78\" }\n",
            &[("conflicting-keys", 10, 54)],
        ),
        // expect_hex needs the reply that expect_reply = false refuses
        (
            "[service.s]\nvip = \"192.0.2.10:53\"\nprotocol = \"udp\"\ncheck = { type = \"udp\", expect_hex = \"00\", expect_reply = false }\n",
            &[("conflicting-keys", 10, 59)],
        ),
        // payload_hex on a tcp check
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", payload_hex = \"00\" }\n",
            &[("key-not-for-type", 9, 39)],
        ),
        // ca_pem that is not PEM, pointed at the value (a multi-line string)
        (
            "[check.web]\ntype = \"https\"\nca_pem = \"\"\"\n-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n\"\"\"\n[service.s]\nvip = \"192.0.2.10:443\"\ncheck = \"web\"\n",
            &[("bad-pem", 9, 10)],
        ),
        // a file name where the certificate text belongs
        (
            "[service.s]\nvip = \"192.0.2.10:443\"\ncheck = { type = \"https\", ca_pem = \"/etc/ssl/ca.pem\" }\n",
            &[("bad-pem", 9, 36)],
        ),
        // ca_pem verifies: tls_verify = false contradicts it; and it is for https only
        (
            "[service.s]\nvip = \"192.0.2.10:443\"\ncheck = { type = \"https\", tls_verify = false, ca_pem = \"x\" }\n",
            &[("conflicting-keys", 9, 40), ("bad-pem", 9, 56)],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"http\", ca_pem = \"x\" }\n",
            &[("key-not-for-type", 9, 35)],
        ),
        // a database password without the user it belongs to; a password on a tcp check
        (
            "[service.s]\nvip = \"192.0.2.10:3306\"\ncheck = { type = \"mysql\", password = \"pw\" }\n",
            &[("password-without-user", 9, 38)],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", password = \"pw\" }\n",
            &[("key-not-for-type", 9, 36)],
        ),
        // A fwmark service's reals have no port: a network check needs one. Reported once at
        // the service's check, not once per real...
        (
            "[service.m]\nfwmark = 1\ncheck = { type = \"tcp\" }\n[[service.m.real]]\naddress = \"10.0.0.1\"\n[[service.m.real]]\naddress = \"10.0.0.2\"\n",
            &[("check-needs-port", 9, 9)],
        ),
        // ...or at the real's check that brings the network check (exec needs no port)
        (
            "[service.m]\nfwmark = 1\ncheck = { type = \"exec\", command = [\"/bin/true\"] }\n[[service.m.real]]\naddress = \"10.0.0.1\"\ncheck = { type = \"tcp\" }\n",
            &[("check-needs-port", 12, 9)],
        ),
        // with a port, and a sorry server without one (port 0 keeps the packet's): accepted
        (
            "[service.m]\nfwmark = 1\nforwarding = \"dr\"\nsorry_server = \"10.0.0.9\"\ncheck = { type = \"tcp\", port = 443 }\n[[service.m.real]]\naddress = \"10.0.0.1\"\n",
            &[],
        ),
        // check timings: jitter over the interval; warmup and retry_delay over 1h
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", interval = \"1s\", jitter = \"2s\" }\n",
            &[("bad-jitter", 9, 51)],
        ),
        (
            "[check.c]\ntype = \"tcp\"\nwarmup = \"2h\"\nretry_delay = \"61m\"\n",
            &[("bad-warmup", 9, 10), ("bad-retry-delay", 10, 15)],
        ),
        // accept = false cannot be honoured (IPVS needs the VIPs local): refused; true is fine
        (
            "[vrrp.instance.A]\ninterface = \"eth1\"\nvrid = 7\npriority = 100\naccept = false\nvips = [\"198.51.100.1\"]\n[vrrp.instance.B]\ninterface = \"eth1\"\nvrid = 8\npriority = 100\naccept = true\nvips = [\"198.51.100.2\"]\n",
            &[("accept-mode-off", 11, 10)],
        ),
        // ... and interval or timeout over 1h (the scheduler's arithmetic stays in range)
        (
            "[check.c]\ntype = \"tcp\"\ninterval = \"2h\"\n[check.d]\ntype = \"tcp\"\ninterval = \"1h\"\ntimeout = \"61m\"\n",
            &[("bad-interval", 9, 12), ("bad-timeout", 13, 11)],
        ),
        // a retry right after the failed run ended is fine; so is jitter equal to the interval
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", retry_delay = \"0s\", interval = \"1s\", jitter = \"1s\" }\n",
            &[],
        ),
        // a named check is validated even when nothing uses it
        ("[check.c]\npath = \"/\"\n", &[("missing-key", 7, 8)]),
        ("[check.c]\ntype = \"tcp\"\npath = \"/\"\n", &[("key-not-for-type", 9, 8)]),
        // keep_alive is for plain HTTP (a TLS session is not kept)
        ("[check.c]\ntype = \"https\"\nkeep_alive = true\n", &[("key-not-for-type", 9, 14)]),
        ("[check.c]\ntype = \"http\"\nkeep_alive = true\n", &[]),
        // ...and a broken one is reported once, not again where it is used
        (
            "[check.c]\ntype = \"http\"\npath = \"x\"\n[service.s]\nvip = \"192.0.2.10:80\"\ncheck = \"c\"\n[[service.s.real]]\naddress = \"10.0.0.1\"\ncheck = \"c\"\n",
            &[("bad-path", 9, 8)],
        ),
        // a real changing the check's type leaves the service's HTTP keys behind
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"http\", path = \"/h\", expect_status = 204 }\n[[service.s.real]]\naddress = \"10.0.0.1\"\ncheck = { type = \"none\" }\n[[service.s.real]]\naddress = \"10.0.0.2\"\ncheck = { type = \"tcp\" }\n",
            &[],
        ),
        // a real naming a check that does not exist
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\n[[service.s.real]]\naddress = \"10.0.0.1\"\ncheck = \"nope\"\n",
            &[("unknown-check", 11, 9)],
        ),
        // expect_status: one status or range alone is a one-item list; an empty list matches
        // nothing
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"http\", expect_status = \"200-204\" }\n",
            &[],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"http\", expect_status = [] }\n",
            &[("invalid-value", 9, 42)],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"http\", expect_status = 700 }\n",
            &[("invalid-value", 9, 42)],
        ),
        // `family` that contradicts the VIP is a mistake, not an unused key
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nfamily = \"ipv6\"\n",
            &[("mixed-family", 9, 10)],
        ),
        // a dr or tun sorry server cannot change the port, like a real
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nforwarding = \"dr\"\nsorry_server = \"10.0.0.9:8080\"\n",
            &[("real-port-mismatch", 10, 16)],
        ),
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nsorry_server = \"10.0.0.9:8080\"\nsorry_forwarding = \"tun\"\n",
            &[("real-port-mismatch", 9, 16)],
        ),
        // one sysctl in two spellings; one unicast peer twice
        (
            "[node.sysctl]\n\"net/ipv4/tcp_syncookies\" = 1\n\"net.ipv4.tcp_syncookies\" = 0\n",
            &[("duplicate-sysctl", 9, 1)],
        ),
        (
            "[vrrp.instance.W]\ninterface = \"eth1\"\nvrid = 2\npriority = 100\nvips = [\"192.0.2.20\"]\nunicast_peers = [\"192.0.2.2\", \"192.0.2.3\", \"192.0.2.2\"]\n",
            &[("duplicate-peer", 12, 44)],
        ),
        // a dotted IPv4 netmask for an IPv6 service
        (
            "[service.m]\nfwmark = 1\nfamily = \"ipv6\"\npersistence = { timeout = \"1m\", netmask = \"255.255.255.0\" }\n",
            &[("bad-netmask", 10, 43)],
        ),
        ("[ipvs.timeouts]\nudp = \"30d\"\n", &[("bad-timeout", 8, 7)]),
    ];
    let mut failures = Vec::new();
    for (extra, expected) in cases {
        let got = errors(extra);
        let want: Vec<(String, usize, usize)> = expected
            .iter()
            .map(|(c, l, col)| (c.to_string(), *l, *col))
            .collect();
        if got != want {
            failures.push(format!(
                "config:\n{extra}\nexpected {want:?}\n     got {got:?}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn warnings_point_at_the_key() {
    let cases: &[(&str, &[Expected])] = &[
        // a timeout longer than the interval: the next run waits for the last
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\ncheck = { type = \"tcp\", interval = \"1s\", timeout = \"2s\" }\n[[service.s.real]]\naddress = \"10.0.0.1\"\n[[service.s.real]]\naddress = \"10.0.0.2\"\n",
            &[("timeout-over-interval", 9, 52)],
        ),
        // a named check nothing uses
        ("[check.spare]\ntype = \"tcp\"\n", &[("unused-check", 7, 8)]),
        // keys with no effect: `family` agreeing with the VIP, `protocol` on a fwmark service
        (
            "[service.s]\nvip = \"192.0.2.10:80\"\nfamily = \"ipv4\"\n[[service.s.real]]\naddress = \"10.0.0.1\"\n",
            &[("unused-key", 9, 10)],
        ),
        (
            "[service.m]\nfwmark = 1\nprotocol = \"udp\"\n[[service.m.real]]\naddress = \"10.0.0.1\"\n",
            &[("unused-key", 9, 12)],
        ),
        // quorum of a fwmark service never lowers a VRRP priority
        (
            "[service.m]\nfwmark = 1\nquorum = { min_weight = 1 }\n[[service.m.real]]\naddress = \"10.0.0.1\"\n",
            &[("quorum-without-vip", 9, 25)],
        ),
    ];
    let mut failures = Vec::new();
    for (extra, expected) in cases {
        let got = warnings(extra);
        let want: Vec<(String, usize, usize)> = expected
            .iter()
            .map(|(c, l, col)| (c.to_string(), *l, *col))
            .collect();
        if got != want {
            failures.push(format!(
                "config:\n{extra}\nexpected {want:?}\n     got {got:?}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A real's `check` overrides single keys of its service's check, or names a `[check.NAME]`
/// to use instead; changing the type keeps only the keys of every type.
#[test]
fn per_real_checks() {
    let c = config::parse(
        "t.toml",
        &format!(
            r#"{BASE}
[check.db]
type = "tcp"
port = 3306
interval = "7s"

[service.s]
vip = "192.0.2.10:80"
check = {{ type = "http", path = "/h", expect_status = 204, interval = "2s", port = 8080 }}
[[service.s.real]]
address = "10.0.0.1"
check = {{ type = "none" }}
[[service.s.real]]
address = "10.0.0.2"
check = {{ type = "tcp", fall = 5 }}
[[service.s.real]]
address = "10.0.0.3"
check = "db"
[[service.s.real]]
address = "10.0.0.4"
check = {{ path = "/other" }}
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let reals = &c.services["s"].reals;
    assert_eq!(reals[0].check, None, "type none: always up");
    let tcp = reals[1].check.as_ref().unwrap();
    assert_eq!(tcp.kind, CheckKind::Tcp { half_open: false });
    // Generic keys are inherited across the type change.
    assert_eq!(
        (tcp.interval, tcp.port, tcp.fall),
        (Duration::from_secs(2), Some(8080), 5)
    );
    // A named check replaces the service's whole: nothing of it is inherited.
    let db = reals[2].check.as_ref().unwrap();
    assert_eq!(
        (&db.kind, db.interval, db.port),
        (
            &CheckKind::Tcp { half_open: false },
            Duration::from_secs(7),
            Some(3306)
        )
    );
    let CheckKind::Http(h) = &reals[3].check.as_ref().unwrap().kind else {
        panic!("{:?}", reals[3].check)
    };
    assert_eq!(h.path, "/other");
    assert_eq!(
        h.expect_status,
        [config::StatusRange {
            low: 204,
            high: 204
        }]
    );
}

#[test]
fn ipvs_timeout_error_states_the_bound() {
    let e =
        config::parse("t.toml", &format!("{BASE}[ipvs.timeouts]\ntcp = \"30d\"\n")).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("from 1s to 2147483s"), "{text}");
}

#[test]
fn duplicate_sysctl_names_both_spellings() {
    let e = config::parse(
        "t.toml",
        &format!("{BASE}[node.sysctl]\n\"net/ipv4/ip_forward\" = 1\n\"net.ipv4.ip_forward\" = 0\n"),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("\"net.ipv4.ip_forward\" and \"net/ipv4/ip_forward\" are the same sysctl"),
        "{text}"
    );
    assert!(
        text.contains("t.toml:8:1"),
        "the first spelling is shown too: {text}"
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let got = codes(
        "[service.a]\nvip = \"192.0.2.10:80\"\nscheduler = \"nope\"\ncolour = \"red\"\n[service.b]\nvip = \"192.0.2.99:80\"\n[node]\nhostname = \"bad_name\"\n",
    );
    assert_eq!(
        got,
        [
            "invalid-value",
            "unknown-key",
            "vip-not-in-vrrp",
            "bad-hostname"
        ]
    );
}

#[test]
fn warnings_do_not_refuse() {
    let loaded = config::parse(
        "t.toml",
        &format!("{BASE}[service.s]\nvip = \"192.0.2.10:80\"\n"),
    )
    .unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].severity, Severity::Warning);
    assert_eq!(loaded.warnings[0].code, "no-reals");
}

#[test]
fn rendered_error_names_file_line_column_and_fix() {
    let src = format!("{BASE}[service.s]\nvip = \"192.0.2.10:80\"\nscheduler = \"round-robin\"\n");
    let e = config::parse("site.toml", &src).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("--> site.toml:9:13"), "{text}");
    assert!(
        text.contains("unknown scheduler \"round-robin\": use one of rr, wrr"),
        "{text}"
    );
    assert!(text.contains("^^^^^^^^^^^^^"), "{text}");
    assert!(text.ends_with("site.toml: refused: 1 error"), "{text}");
}

#[test]
fn lbd_check_exit_codes() {
    let lbd = env!("CARGO_BIN_EXE_lbd");
    let ok = Command::new(lbd)
        .arg("check")
        .arg(examples().join("classic-pair.toml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: 4 services, 9 reals"));

    let dir = std::env::temp_dir().join(format!("lbd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{BASE}[service.s]\nvip = \"192.0.2.10:99999\"\n[node]\nfoo = 1\n"),
    )
    .unwrap();
    for args in [
        vec!["check".to_string(), bad.display().to_string()],
        vec!["--check-config".into(), bad.display().to_string()],
    ] {
        let out = Command::new(lbd).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:8:7"), "{err}");
        assert!(err.contains("bad.toml:10:1"), "{err}");
        assert!(err.contains("refused: 2 errors"), "{err}");
    }
    let missing = Command::new(lbd)
        .args(["check", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn virtual_mac_links_are_named() {
    let c = config::parse(
        "t.toml",
        &format!("{BASE}[vrrp.instance.A]\ninterface = \"eth1\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvips = [\"198.51.100.1\"]\n[vrrp.instance.B]\ninterface = \"eth1\"\nvrid = 7\nversion = 3\npriority = 100\nvirtual_mac = true\nvips = [\"2001:db8::7\"]\n[vrrp.instance.C]\ninterface = \"eth2\"\nvrid = 7\npriority = 100\nvirtual_mac = true\nvirtual_mac_interface = \"out7\"\nvips = [\"198.51.100.3\"]\n"),
    )
    .unwrap()
    .config;
    let link = |n: &str| c.vrrp_instances[n].virtual_mac.clone();
    assert_eq!(link("A").as_deref(), Some("vrrp.7"));
    assert_eq!(link("B").as_deref(), Some("vrrp6.7"));
    assert_eq!(link("C").as_deref(), Some("out7"));
    assert_eq!(link("V"), None);
}

#[test]
fn control_api_roles_and_tls() {
    // TCP without mutual TLS is refused, pointing at the listener.
    assert_eq!(
        errors("[node]\napi_listen = \"192.0.2.2:9900\"\n"),
        [("api-without-tls".to_string(), 8, 14)]
    );
    let src = format!("{BASE}[node]\napi_listen = \"192.0.2.2:9900\"\n");
    let e = config::parse("t.toml", &src).unwrap_err();
    let d = e.errors().next().unwrap();
    assert!(d.message.contains("mutual TLS only"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("[node.api.tls]"));
    // Roles and ids.
    assert_eq!(
        errors("[node.api]\ndefault_role = \"boss\"\n"),
        [("invalid-value".to_string(), 8, 16)]
    );
    assert_eq!(
        errors("[node.api.uid]\nroot = \"admin\"\n"),
        [("bad-uid".to_string(), 8, 1)]
    );
    assert_eq!(
        errors("[node.api.gid]\n4294967295 = \"reader\"\n"),
        [("bad-uid".to_string(), 8, 1)]
    );
    let loaded = config::parse(
        "t.toml",
        &format!("{BASE}[node.api]\ndefault_role = \"none\"\n[node.api.uid]\n0 = \"operator\"\n1000 = \"Admin\"\n[node.api.gid]\n50 = \"reader\"\n"),
    )
    .unwrap();
    let api = &loaded.config.node.api;
    assert_eq!(api.default_role, config::Role::Denied);
    assert_eq!(
        api.unix_role(0, 0),
        config::Role::Operator,
        "root as configured"
    );
    assert_eq!(api.unix_role(1000, 1000), config::Role::Admin);
    assert_eq!(api.unix_role(7, 50), config::Role::Reader);
    assert_eq!(api.unix_role(7, 7), config::Role::Denied);

    // TLS material: made by rcgen, the way an operator's CA would.
    let ca = lbtest::tls::TestCa::new("config test CA");
    let server = ca.server(&["192.0.2.2".parse().unwrap()]);
    let tls = ca.api_tls_toml(
        &server,
        &[("alice", "admin"), ("ops.example.net", "operator")],
    );
    let good = format!("[node]\napi_listen = \"192.0.2.2:9900\"\n{tls}");
    let loaded =
        config::parse("t.toml", &format!("{BASE}{good}")).unwrap_or_else(|e| panic!("{e}"));
    let t = loaded.config.node.api.tls.as_ref().unwrap();
    assert_eq!(t.clients["alice"], config::Role::Admin);
    assert_eq!(t.key_pem.expose(), server.key_pem);
    let dump = serde_json::to_string(&loaded.config).unwrap();
    assert!(!dump.contains("PRIVATE KEY"), "the key is never shown");
    assert!(dump.contains("<redacted>"));
    // Each PEM value is checked where it is written.
    let line_of = |text: &str, key: &str| {
        let full = format!("{BASE}{text}");
        full.lines().position(|l| l.starts_with(key)).unwrap() + 1
    };
    let swapped = good.replacen(&server.key_pem, &server.cert_pem, 1);
    assert_eq!(
        errors(&swapped),
        [("bad-key".to_string(), line_of(&swapped, "key_pem"), 11)]
    );
    let no_cert = good.replacen(&server.cert_pem, "not a certificate\n", 1);
    assert_eq!(
        errors(&no_cert),
        [("bad-pem".to_string(), line_of(&no_cert, "cert_pem"), 12)]
    );
    let key_as_ca = good.replacen(&ca.cert_pem, &server.key_pem, 1);
    assert_eq!(
        errors(&key_as_ca),
        [(
            "bad-pem".to_string(),
            line_of(&key_as_ca, "client_ca_pem"),
            17
        )]
    );
    // TLS without a listener does nothing: a warning at cert_pem.
    let unused = tls.clone();
    assert_eq!(
        warnings(&unused),
        [("unused-key".to_string(), line_of(&unused, "cert_pem"), 12)]
    );
    // A missing key of [node.api.tls] is named.
    let no_ca = good.replacen("client_ca_pem", "# client_ca_pem", 1);
    let no_ca: String = no_ca.split("# client_ca_pem").next().unwrap().to_string();
    assert!(
        codes(&no_ca).contains(&"missing-key".to_string()),
        "{:?}",
        errors(&no_ca)
    );
}

#[test]
fn a_vrrp_password_is_not_in_the_dump() {
    let text = "[vrrp.instance.V]\ninterface = \"eth0\"\nvrid = 5\npriority = 100\nversion = 2\nauth_pass = \"vrrpPw1\"\nvips = [\"192.0.2.9/24\"]\n";
    let c = config::parse("v.toml", text)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(c.vrrp_instances["V"].auth_pass.as_deref(), Some("vrrpPw1"));
    let dump = serde_json::to_string(&c).unwrap();
    assert!(!dump.contains("vrrpPw1"), "{dump}");
    assert!(dump.contains(r#""auth_pass":"<redacted>""#), "{dump}");
}

/// Reals whose checks resolve alike hold one copy of the check; a real with its own setting
/// gets its own, and the real after it is not taken for the first one's.
#[test]
fn reals_share_a_check_they_resolve_to_alike() {
    let c = config::parse(
        "t.toml",
        &format!(
            r#"{BASE}
[service.web]
vip = "192.0.2.10:80"
check = {{ type = "http", path = "/health" }}
[[service.web.real]]
address = "10.0.0.1:80"
[[service.web.real]]
address = "10.0.0.2:80"
[[service.web.real]]
address = "10.0.0.3:80"
check = {{ path = "/other" }}
[[service.web.real]]
address = "10.0.0.4:80"
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let reals = &c.services["web"].reals;
    let check = |i: usize| reals[i].check.as_ref().unwrap();
    assert!(std::sync::Arc::ptr_eq(check(0), check(1)));
    assert!(!std::sync::Arc::ptr_eq(check(1), check(2)));
    assert_ne!(check(1), check(2));
    assert_eq!(check(3), check(0));
}

#[test]
fn a_duplicate_service_names_both_services_and_points_at_the_first() {
    let text = "[vrrp.instance.A]\ninterface = \"eth0\"\nvrid = 9\npriority = 100\nvips = [\"192.0.2.10/32\"]\n\
                [service.first]\nvip = \"192.0.2.10:80\"\n[service.second]\nvip = \"192.0.2.10:80\"\n";
    let e = config::parse("lb.toml", text).unwrap_err();
    let d = e
        .diagnostics
        .iter()
        .find(|d| d.code == "duplicate-service")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        d.message
            .contains("defined twice (services `first` and `second`)"),
        "{}",
        d.message
    );
    let (related, _) = d.related.as_ref().expect("the first definition");
    assert_eq!(&text[related.clone()], "\"192.0.2.10:80\"");
    assert!(related.start < text.find("[service.second]").unwrap());
}

#[test]
fn a_real_written_twice_in_a_large_service_points_at_both() {
    // Past the size where the validator keeps the reals seen in a map instead of a list.
    let mut extra = String::from("[service.big]\nvip = \"192.0.2.10:80\"\n");
    for i in 1..=40 {
        extra += &format!("[[service.big.real]]\naddress = \"10.0.0.{i}:80\"\n");
    }
    extra += "[[service.big.real]]\naddress = \"10.0.0.33\"\n";
    let src = format!("{BASE}{extra}");
    let e = config::parse("t.toml", &src).unwrap_err();
    let d = e
        .errors()
        .find(|d| d.code == "duplicate-real")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(d.message.contains("10.0.0.33:80"), "{}", d.message);
    let (first, _) = d.related.as_ref().expect("the first one");
    assert_eq!(&src[first.clone()], "\"10.0.0.33:80\"");
    assert_eq!(e.errors().count(), 1, "{e}");
}
