//! lbctl against a real lbd in a network namespace: status (JSON and table, plain when piped,
//! coloured on a terminal), metrics parsed by a Prometheus parser, events, drain/undrain
//! (kept across an lbd restart), reload (applied, unchanged, refused), over the Unix socket and
//! over TCP with mutual TLS (curl and lbctl --url inside the namespace); and the API's roles:
//! by the kernel's credentials on the socket (lbctl run as other uids), by the client
//! certificate over TLS, refusals at the handshake, and the audit events of it all.
//!
//! The host has no IPVS, so the kernel columns are empty here ("weights are the ones lbd
//! wants"); the same requests against a guest's IPVS are in `api_guest.rs`. Needs root,
//! python3 (a real's HTTP server), curl and script (util-linux) — tools/setup.sh.

use lbtest::{wait, ChildGuard, Netns};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How often lbd's status or exit is polled while waiting for a change.
const POLL: Duration = Duration::from_millis(50);

/// The lbd binary (another package of the workspace), built from the current source.
pub fn lbd_bin() -> PathBuf {
    lbtest::fresh::binary("lbd", "lbd", lbtest::fresh::Profile::Debug)
}

fn lbctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(args)
        .env_remove("LBCTL_SOCKET")
        .env_remove("LBCTL_URL")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The config without its `[node.api.tls]` table, which [`Lab`] adds with certificates made
/// for the test. Unix socket roles: uid 1001 is an operator, gid 2002 operators, uid 1003 has
/// no access; every other uid but root (admin) is a reader.
const CONFIG: &str = r#"
[node]
api_listen = "127.0.0.1:9900"

[node.api.uid]
1001 = "operator"
1003 = "none"

[node.api.gid]
2002 = "operator"

[vrrp.instance.VI]
interface = "eth0"
vrid = 7
priority = 100
advert_interval = "100ms"
vips = ["10.89.0.100/24"]

[service.web]
vip = "10.89.0.100:80"
forwarding = "nat"
check = { type = "tcp", interval = "200ms", timeout = "100ms", fall = 1, rise = 1 }

[[service.web.real]]
address = "127.0.0.1:8501"
weight = 4

[[service.web.real]]
address = "127.0.0.1:8502"

[service.dns]
vip = "10.89.0.100:53"
protocol = "udp"
scheduler = "rr"
forwarding = "nat"

[[service.dns.real]]
address = "127.0.0.1:53"
"#;

/// lbd in a namespace with a real HTTP server for one of its reals.
struct Lab {
    ns: Netns,
    dir: tempfile::TempDir,
    lbd: Option<ChildGuard>,
    _web: ChildGuard,
    /// The config as written: [`CONFIG`] with its TLS table.
    config: String,
    /// Client certificates of the test CA: `reader` (no entry: the default role),
    /// `operator` and `admin` (by `[node.api.tls.clients]`).
    clients: std::collections::BTreeMap<&'static str, lbtest::tls::ClientFiles>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let ns = Netns::new(tag).expect("network namespaces (run the tests as root)");
        ns.add_veth("eth0", "eth1").unwrap();
        ns.add_addr("eth0", "10.89.0.1/24").unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Other uids run lbctl against the socket in here, and read the client files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let ca = lbtest::tls::TestCa::new("api test CA");
        let server = ca.server(&["127.0.0.1".parse().unwrap()]);
        let mut clients = std::collections::BTreeMap::new();
        for name in ["reader", "operator", "admin"] {
            let files = ca
                .write_client(dir.path(), name, &ca.client(&format!("{name}.example.net")))
                .unwrap();
            clients.insert(name, files);
        }
        let tls = ca.api_tls_toml(
            &server,
            &[
                ("operator.example.net", "operator"),
                ("admin.example.net", "admin"),
            ],
        );
        // After [node]'s own tables, before the rest: a test that cuts the file short at a
        // service keeps it.
        let config = CONFIG.replacen(
            "[vrrp.instance.VI]",
            &format!("{tls}\n[vrrp.instance.VI]"),
            1,
        );
        std::fs::write(dir.path().join("index.html"), "ok").unwrap();
        // The TCP checks connect and hang up, which http.server reports on stderr: quiet.
        let web = ChildGuard::spawn(
            ns.command("python3")
                .args([
                    "-m",
                    "http.server",
                    "8501",
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                ])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        std::fs::write(dir.path().join("lbd.toml"), &config).unwrap();
        let mut lab = Lab {
            ns,
            dir,
            lbd: None,
            _web: web,
            config,
            clients,
        };
        lab.start_lbd();
        lab
    }

    fn socket(&self) -> String {
        self.dir.path().join("lbd.sock").display().to_string()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("lbd.toml")
    }

    fn start_lbd(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("lbd.log")).unwrap();
        let mut cmd = self.ns.command(lbd_bin());
        cmd.arg("-c")
            .arg(self.config_path())
            .env("LBD_API_SOCKET", self.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.lbd = Some(ChildGuard::spawn(&mut cmd).unwrap());
        // Ready when VRRP is master and both reals were checked.
        wait::expect_some("lbd's status", Duration::from_secs(20), POLL, || {
            let s = self.status_json()?;
            let master = s["vrrp"][0]["state"] == "MASTER";
            let checked = s["services"]
                .as_array()?
                .iter()
                .find(|x| x["name"] == "web")?["reals"]
                .as_array()?
                .iter()
                .all(|r| r["health"] != "unknown");
            (master && checked).then_some(())
        });
    }

    /// SIGTERM and wait for the exit (the socket goes away).
    fn stop_lbd(&mut self) {
        if let Some(mut g) = self.lbd.take() {
            let _ = lbtest::programs::command("kill")
                .args(["-TERM", &g.id().to_string()])
                .status();
            wait::expect_some("lbd to exit", Duration::from_secs(10), POLL, || {
                g.try_wait().ok().flatten()
            });
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lbd.log")).unwrap_or_default()
    }

    fn status_json(&self) -> Option<serde_json::Value> {
        let o = lbctl(&["--socket", &self.socket(), "status", "--json"]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    fn real<'a>(s: &'a serde_json::Value, svc: &str, addr: &str) -> &'a serde_json::Value {
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == svc)
            .unwrap_or_else(|| panic!("no service {svc}: {s:#}"))["reals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == addr)
            .unwrap_or_else(|| panic!("no real {addr}: {s:#}"))
    }

    /// `curl` inside the namespace, to the TCP listener, with the reader's certificate.
    fn curl(&self, path: &str) -> String {
        let mut args: Vec<String> = ["curl", "-sS", "--max-time", "20"]
            .map(String::from)
            .to_vec();
        args.extend(self.clients["reader"].curl_args());
        args.push(format!("https://127.0.0.1:9900{path}"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = self.ns.run(&args).unwrap();
        String::from_utf8(o.stdout).unwrap()
    }

    /// lbctl over mutual TLS inside the namespace, with `client`'s certificate.
    fn lbctl_tls(&self, client: &lbtest::tls::ClientFiles, args: &[&str]) -> Output {
        self.ns
            .command(env!("CARGO_BIN_EXE_lbctl"))
            .args(["--url", "https://127.0.0.1:9900"])
            .args(client.lbctl_args())
            .args(args)
            .env_remove("LBCTL_SOCKET")
            .output()
            .unwrap()
    }

    /// lbctl on the Unix socket, run as `uid`:`gid` (the kernel's credentials lbd sees).
    fn lbctl_as(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        use std::os::unix::process::CommandExt;
        Command::new(env!("CARGO_BIN_EXE_lbctl"))
            .args(["--socket", &self.socket()])
            .args(args)
            .env_remove("LBCTL_SOCKET")
            .env_remove("LBCTL_URL")
            .uid(uid)
            .gid(gid)
            .output()
            .unwrap()
    }

    /// lbd's audit events from its ring, as JSON objects.
    fn audit_events(&self) -> Vec<serde_json::Value> {
        let doc: serde_json::Value =
            serde_json::from_str(&self.curl("/events?since=0&max=1000")).unwrap();
        doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == "lbd::audit")
            .cloned()
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- lbd's log:\n{}", self.log());
        }
    }
}

#[test]
fn status_table_metrics_and_events() {
    let lab = Lab::new("api-status");
    let s = lab.status_json().unwrap();
    // Config identity and load time.
    let want = lbd::config::load(&lab.config_path())
        .unwrap()
        .config
        .version;
    assert_eq!(s["config"]["version"], want.hex());
    assert_eq!(s["config"]["applied"], 1);
    assert!(s["config"]["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["ipvs"]["available"], false);
    assert_eq!(s["vrrp"][0]["name"], "VI");
    assert_eq!(s["vrrp"][0]["vips"][0], "10.89.0.100/24");
    // Health with reasons, and the weights the reconciler wants.
    let up = Lab::real(&s, "web", "127.0.0.1:8501");
    assert_eq!(up["health"], "up");
    assert_eq!(up["weight"], 4);
    assert_eq!(up["check"], "tcp");
    let down = Lab::real(&s, "web", "127.0.0.1:8502");
    assert_eq!(down["health"], "down");
    assert_eq!(down["reason"], "connection refused");
    assert_eq!(down["weight"], 0, "inhibit: weight 0");
    assert!(down["since"].as_str().is_some());
    let unchecked = Lab::real(&s, "dns", "127.0.0.1:53");
    assert_eq!(unchecked["health"], "up");
    assert_eq!(unchecked["checked"], false);

    // The table, plain when piped.
    let o = lbctl(&["--socket", &lab.socket(), "status"]);
    let table = text(&o);
    assert!(o.status.success(), "{table}");
    assert!(!table.contains('\x1b'), "colour in a pipe:\n{table}");
    assert!(
        table.contains("  VI           eth0     vrid 7   v3 prio 100 MASTER"),
        "{table}"
    );
    assert!(
        table.contains("TCP  10.89.0.100:80 wlc  [web, VI MASTER]"),
        "{table}"
    );
    assert!(
        table
            .contains("  -> 127.0.0.1:8501               Masq    4      -          -         up\n"),
        "{table}"
    );
    assert!(
        table.contains("  -> 127.0.0.1:8502               Masq    0      -          -         down: connection refused\n"),
        "{table}"
    );
    assert!(
        table.contains("UDP  10.89.0.100:53 rr  [dns, VI MASTER]"),
        "{table}"
    );
    // Coloured on a terminal (script gives lbctl a pty).
    let o = lbtest::programs::command("script")
        .args(["-qec"])
        .arg(format!(
            "{} --socket {} status",
            env!("CARGO_BIN_EXE_lbctl"),
            lab.socket()
        ))
        .arg("/dev/null")
        .env_remove("NO_COLOR")
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(tty.contains("\x1b[32mup\x1b[0m"), "{tty}");
    assert!(tty.contains("\x1b[31mdown\x1b[0m"), "{tty}");

    // The same document over HTTP, with lbctl --url and curl, inside the namespace.
    let o = lab
        .ns
        .run(&[
            env!("CARGO_BIN_EXE_lbctl"),
            "--url",
            "https://127.0.0.1:9900",
            "--cert",
            &lab.clients["reader"].cert.display().to_string(),
            "--key",
            &lab.clients["reader"].key.display().to_string(),
            "--ca",
            &lab.clients["reader"].ca.display().to_string(),
            "status",
            "--json",
        ])
        .unwrap();
    let over_http: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(over_http["config"]["version"], want.hex());

    // Metrics: a real Prometheus parser reads them.
    let body = lab.curl("/metrics");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"));
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{body}"));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        }
    };
    assert_eq!(
        value(
            "lbd_real_up",
            &[("service", "web"), ("real", "127.0.0.1:8501")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "lbd_real_up",
            &[("service", "web"), ("real", "127.0.0.1:8502")]
        ),
        0.0
    );
    assert_eq!(value("lbd_real_weight", &[("real", "127.0.0.1:8501")]), 4.0);
    assert_eq!(
        value("lbd_real_config_weight", &[("real", "127.0.0.1:8502")]),
        1.0
    );
    assert_eq!(
        value(
            "lbd_vrrp_instance_state",
            &[("instance", "VI"), ("state", "MASTER")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "lbd_vrrp_instance_state",
            &[("instance", "VI"), ("state", "BACKUP")]
        ),
        0.0
    );
    assert_eq!(value("lbd_service_reals_up", &[("service", "web")]), 1.0);
    assert_eq!(value("lbd_ipvs_available", &[]), 0.0);
    assert_eq!(value("lbd_config_applied_total", &[]), 1.0);
    assert!(value("lbd_config_load_time_seconds", &[]) > 1.6e9);
    assert_eq!(value("lbd_info", &[("config_version", want.hex())]), 1.0);
    // Every family has HELP and TYPE.
    for name in [
        "lbd_real_up",
        "lbd_vrrp_instance_state",
        "lbd_config_applied_total",
    ] {
        assert!(scrape.docs.contains_key(name), "no HELP for {name}");
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
    assert!(body.contains("# TYPE lbd_config_applied_total counter"));

    // Events from the ring: the start line is there; since= continues from a sequence number.
    let o = lbctl(&["--socket", &lab.socket(), "events", "--max", "1000"]);
    let ev = text(&o);
    assert!(ev.contains("lbd running with"), "{ev}");
    let json: serde_json::Value =
        serde_json::from_str(&lab.curl("/events?since=0&max=1000")).unwrap();
    let next = json["next_seq"].as_u64().unwrap();
    let later: serde_json::Value =
        serde_json::from_str(&lab.curl(&format!("/events?since={}", next - 2))).unwrap();
    let seqs: Vec<u64> = later["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.first(), Some(&(next - 1)), "{seqs:?}");
    // Errors are JSON with a status.
    assert!(lab.curl("/nope").contains("no such endpoint"));
    let o = lbctl(&["--socket", "/nonexistent/lbd.sock", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("cannot reach lbd at /nonexistent/lbd.sock"));
}

#[test]
fn drain_undrain_and_reload() {
    let mut lab = Lab::new("api-drain");
    let sock = lab.socket();
    let o = lbctl(&[
        "--socket",
        &sock,
        "drain",
        "127.0.0.1:8501",
        "--service",
        "web",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("127.0.0.1:8501 of service web: drained"));
    let s = lab.status_json().unwrap();
    let r = Lab::real(&s, "web", "127.0.0.1:8501");
    assert_eq!(r["drained"], true);
    assert_eq!(r["weight"], 0, "drained: weight 0");
    assert_eq!(r["health"], "up", "a drain does not touch health");
    assert_eq!(s["config"]["applied"], 1, "no config change");
    let table = text(&lbctl(&["--socket", &sock, "status"]));
    assert!(
        table.contains("Masq    0      -          -         up, drained"),
        "{table}"
    );
    let m = lab.curl("/metrics");
    assert!(
        m.contains("lbd_real_drained{service=\"web\",real=\"127.0.0.1:8501\"} 1"),
        "{m}"
    );
    // The drain went to the reconciler's input, which logs that it could not reach IPVS here.
    assert!(lab
        .log()
        .contains("api: real 127.0.0.1:8501 of service web drained"));

    // Kept across an lbd restart.
    lab.stop_lbd();
    assert!(!Path::new(&sock).exists(), "socket left behind");
    lab.start_lbd();
    let s = lab.status_json().unwrap();
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["drained"], true);
    assert!(lab.log().contains("still drained from before the restart"));

    // Unknown reals are refused with a reason; undrain restores the weight.
    let o = lbctl(&["--socket", &sock, "drain", "127.0.0.1:9999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("no real 127.0.0.1:9999 in any service"),
        "{}",
        text(&o)
    );
    let o = lbctl(&["--socket", &sock, "drain", "not-an-address"]);
    assert_eq!(o.status.code(), Some(1));
    let o = lbctl(&["--socket", &sock, "undrain", "127.0.0.1"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = lab.status_json().unwrap();
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["drained"], false);
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["weight"], 4);

    // Reload: unchanged, then a real edit, then a broken file. Every reload, whoever asks,
    // takes the daemon's one path; its outcome is in the status as `config.last_reload`.
    let last_reload = |lab: &Lab| lab.status_json().unwrap()["config"]["last_reload"].clone();
    let first_version = lab.status_json().unwrap()["config"]["version"].clone();
    assert!(last_reload(&lab).is_null(), "no reload yet");
    let o = lbctl(&["--socket", &sock, "reload"]);
    assert!(text(&o).starts_with("unchanged: version "), "{}", text(&o));
    let r = last_reload(&lab);
    assert_eq!(
        (r["source"].as_str(), r["result"].as_str()),
        (Some("api"), Some("unchanged")),
        "{r}"
    );
    assert_eq!(r["version"], first_version);
    let edited = lab.config.replace("weight = 4", "weight = 6");
    std::fs::write(lab.config_path(), &edited).unwrap();
    let o = lbctl(&["--socket", &sock, "reload"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).starts_with("reloaded: version "), "{}", text(&o));
    let s = lab.status_json().unwrap();
    assert_eq!(s["config"]["applied"], 2);
    assert_eq!(
        s["config"]["version"],
        lbd::config::parse("x", &edited)
            .unwrap()
            .config
            .version
            .hex()
    );
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["weight"], 6);
    let r = &s["config"]["last_reload"];
    assert_eq!(
        (r["source"].as_str(), r["result"].as_str()),
        (Some("api"), Some("reloaded")),
        "{r}"
    );
    assert_eq!(r["previous"], first_version);
    assert_eq!(r["version"], s["config"]["version"]);
    // A weight edit: the daemon's loader validated the edited service alone.
    assert_eq!(r["validated"], serde_json::json!({ "services": 1 }), "{r}");
    assert!(
        text(&o).contains("validating the one service the edit touched"),
        "{}",
        text(&o)
    );
    let edited_version = s["config"]["version"].clone();
    std::fs::write(
        lab.config_path(),
        edited.replace("scheduler = \"rr\"", "scheduler = \"fastest\""),
    )
    .unwrap();
    let o = lbctl(&["--socket", &sock, "reload"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains("refused: the config does not validate"),
        "{out}"
    );
    let line = lab
        .config
        .lines()
        .position(|l| l.contains("scheduler = \"rr\""))
        .unwrap()
        + 1;
    assert!(out.contains(&format!("lbd.toml:{line}:13: error")), "{out}");
    assert!(out.contains("unknown scheduler \"fastest\""), "{out}");
    assert_eq!(lab.status_json().unwrap()["config"]["applied"], 2);
    let r = last_reload(&lab);
    assert_eq!(
        (r["source"].as_str(), r["result"].as_str()),
        (Some("api"), Some("refused")),
        "{r}"
    );
    assert_eq!(r["running"], edited_version);
    assert_eq!(
        r["validated"], "whole",
        "a refused edit is reported from the whole file"
    );
    assert!(
        r["errors"].as_array().is_some_and(|e| e
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("fastest"))),
        "{r}"
    );
    // The same broken file by SIGHUP: the same path, the same refusal, the config stays.
    let signalled = lab.lbd.as_ref().unwrap().id().to_string();
    lbtest::programs::command("kill")
        .args(["-HUP", &signalled])
        .status()
        .unwrap();
    let r = wait::expect_some(
        "the refused SIGHUP reload",
        Duration::from_secs(10),
        POLL,
        || {
            let r = last_reload(&lab);
            (r["source"] == "signal").then_some(r)
        },
    );
    assert_eq!(r["result"], "refused", "{r}");
    assert_eq!(r["running"], edited_version);
    assert_eq!(lab.status_json().unwrap()["config"]["applied"], 2);

    // A drained real the next config no longer has is forgotten.
    std::fs::write(lab.config_path(), &edited).unwrap();
    assert!(lbctl(&["--socket", &sock, "drain", "127.0.0.1:53"])
        .status
        .success());
    let without_dns = edited.split("[service.dns]").next().unwrap().to_string();
    std::fs::write(lab.config_path(), &without_dns).unwrap();
    let o = lbctl(&["--socket", &sock, "reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let drained = std::fs::read_to_string(lab.dir.path().join("drained.json")).unwrap();
    assert_eq!(drained.trim(), "[]", "{drained}");
    // SIGHUP, the other way to reload (init's config watcher hands a fetched config over
    // this way), applies through the same path.
    std::fs::write(lab.config_path(), &edited).unwrap();
    lbtest::programs::command("kill")
        .args(["-HUP", &signalled])
        .status()
        .unwrap();
    let s = wait::expect_some("the SIGHUP reload", Duration::from_secs(10), POLL, || {
        let s = lab.status_json()?;
        (s["config"]["applied"] == 4).then_some(s)
    });
    let r = &s["config"]["last_reload"];
    assert_eq!(
        (r["source"].as_str(), r["result"].as_str()),
        (Some("signal"), Some("reloaded")),
        "{r}"
    );
    assert_eq!(r["version"], edited_version);
}

/// An audit event of `who` for `action` (its start) whose outcome starts with `outcome`.
fn find_audit<'a>(
    events: &'a [serde_json::Value],
    who: &str,
    action: &str,
    outcome: &str,
) -> Option<&'a serde_json::Value> {
    events.iter().find(|e| {
        let f = &e["fields"];
        f["who"].as_str().is_some_and(|w| w.starts_with(who))
            && f["action"].as_str().is_some_and(|a| a.starts_with(action))
            && f["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with(outcome))
    })
}

#[test]
fn roles_on_the_socket_come_from_the_callers_uid_and_gid() {
    let lab = Lab::new("api-unix-roles");
    let o = lbctl(&["--socket", &lab.socket(), "whoami"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).starts_with("uid=0 gid=0 pid="),
        "root, as the kernel says: {}",
        text(&o)
    );
    assert!(text(&o).contains("(unix): role admin"), "{}", text(&o));

    // A uid the config does not name is a reader: it reads, its drain is refused.
    let o = lab.lbctl_as(1000, 1000, &["status", "--json"]);
    assert!(o.status.success(), "a reader reads: {}", text(&o));
    let o = lab.lbctl_as(1000, 1000, &["drain", "127.0.0.1:8501"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("role reader may not POST /drain: it needs operator"),
        "{}",
        text(&o)
    );
    let s = lab.status_json().unwrap();
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["drained"], false);
    let o = lab.lbctl_as(1000, 1000, &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("lbd answered 403"), "{}", text(&o));

    // uid 1001 is an operator by its uid, uid 1002 by its gid (2002).
    let o = lab.lbctl_as(1001, 1001, &["drain", "127.0.0.1:8501"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = lab.status_json().unwrap();
    assert_eq!(Lab::real(&s, "web", "127.0.0.1:8501")["drained"], true);
    let o = lab.lbctl_as(1002, 2002, &["whoami"]);
    assert!(
        text(&o).starts_with("uid=1002 gid=2002 pid=") && text(&o).contains("role operator"),
        "{}",
        text(&o)
    );
    let o = lab.lbctl_as(1002, 2002, &["undrain", "127.0.0.1:8501"]);
    assert!(o.status.success(), "{}", text(&o));
    // uid 1003 has no access at all, not even to read.
    let o = lab.lbctl_as(1003, 1003, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("has no access (role none)"),
        "{}",
        text(&o)
    );

    // The audit trail: who, with which role, did what, and what came of it; refusals too.
    let events = lab.audit_events();
    let refused = find_audit(
        &events,
        "uid=1000 gid=1000",
        "POST /drain real=127.0.0.1:8501",
        "refused: role reader",
    )
    .unwrap_or_else(|| panic!("no refused drain of uid 1000 in {events:#?}"));
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["fields"]["role"], "reader");
    assert_eq!(refused["fields"]["via"], "unix");
    assert!(find_audit(&events, "uid=1000 gid=1000", "POST /reload", "refused").is_some());
    let done = find_audit(
        &events,
        "uid=1001 gid=1001",
        "POST /drain real=127.0.0.1:8501",
        "done (200 changed)",
    )
    .unwrap_or_else(|| panic!("no drain of uid 1001 in {events:#?}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["fields"]["role"], "operator");
    assert!(find_audit(&events, "uid=1002 gid=2002", "POST /undrain", "done (200").is_some());
    assert!(find_audit(&events, "uid=1003 gid=1003", "GET /status", "refused").is_some());
    // Reads that are allowed are not audited (a scraper would flood the ring).
    assert!(
        find_audit(&events, "uid=1000 gid=1000", "GET /status", "").is_none(),
        "{events:#?}"
    );
    // lbd's own log has them too (and so does remote syslog, fed from the same events).
    assert!(
        lab.log().contains("audit: uid=1000 gid=1000"),
        "{}",
        lab.log()
    );
}

#[test]
fn roles_over_tcp_come_from_the_client_certificate() {
    let lab = Lab::new("api-tls-roles");
    let (reader, operator, admin) = (
        &lab.clients["reader"],
        &lab.clients["operator"],
        &lab.clients["admin"],
    );
    // A reader reads; its drain is refused.
    let o = lab.lbctl_tls(reader, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = lab.lbctl_tls(reader, &["drain", "127.0.0.1:8501"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("role reader may not POST /drain"),
        "{}",
        text(&o)
    );
    // An operator drains and undrains.
    let o = lab.lbctl_tls(operator, &["drain", "127.0.0.1:8501"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("drained"), "{}", text(&o));
    let o = lab.lbctl_tls(operator, &["undrain", "127.0.0.1:8501"]);
    assert!(o.status.success(), "{}", text(&o));
    // An admin may do everything.
    let o = lab.lbctl_tls(admin, &["whoami"]);
    let who = text(&o);
    assert!(
        who.contains("CN=admin.example.net") && who.contains("role admin"),
        "{who}"
    );
    for endpoint in [
        "GET /status",
        "GET /metrics",
        "GET /events",
        "POST /reload",
        "POST /drain",
        "POST /undrain",
    ] {
        assert!(who.contains(&format!("may {endpoint}")), "{who}");
    }
    for args in [
        &["status"][..],
        &["events", "--max", "5"],
        &["reload"],
        &["drain", "127.0.0.1:8501"],
        &["undrain", "127.0.0.1:8501"],
    ] {
        let o = lab.lbctl_tls(admin, args);
        assert!(o.status.success(), "admin {args:?}: {}", text(&o));
    }

    // A client certificate from another CA is refused at the handshake, before any request.
    let other = lbtest::tls::TestCa::new("another CA");
    let dir = tempfile::tempdir().unwrap();
    let mut stranger = other
        .write_client(dir.path(), "stranger", &other.client("admin.example.net"))
        .unwrap();
    // It trusts lbd's certificate (the right --ca): only its own certificate is wrong.
    stranger.ca = reader.ca.clone();
    let o = lab.lbctl_tls(&stranger, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("TLS with lbd at https://127.0.0.1:9900 failed")
            && text(&o).contains("lbd refused this client"),
        "{}",
        text(&o)
    );
    // No client certificate at all (curl, another TLS stack): refused too.
    let o = lab.ns.run(&[
        "curl",
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        &reader.ca.display().to_string(),
        "https://127.0.0.1:9900/status",
    ]);
    assert!(
        o.is_err(),
        "a client without a certificate got an answer: {o:?}"
    );
    // Plain HTTP on the TLS port gets no answer either, and lbctl refuses http:// URLs.
    let o = lab.ns.run(&[
        "curl",
        "-sS",
        "--max-time",
        "20",
        "http://127.0.0.1:9900/status",
    ]);
    assert!(o.is_err(), "plain HTTP got an answer: {o:?}");
    let o = lbctl(&["--url", "http://127.0.0.1:9900", "status"]);
    assert!(text(&o).contains("speaks mutual TLS only"), "{}", text(&o));
    // lbd's certificate checked by lbctl: the wrong CA for it is lbctl's refusal.
    let mut wrong_ca = reader.clone();
    wrong_ca.ca = stranger.cert.clone();
    std::fs::write(&stranger.cert, &other.cert_pem).unwrap();
    let o = lab.lbctl_tls(&wrong_ca, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("lbd's certificate is not trusted"),
        "{}",
        text(&o)
    );

    // Audited: the refused reader, the operator's and admin's changes, the refused handshakes.
    let events = lab.audit_events();
    let refused = find_audit(
        &events,
        "CN=reader.example.net",
        "POST /drain",
        "refused: role reader",
    )
    .unwrap_or_else(|| panic!("no refused drain in {events:#?}"));
    assert!(
        refused["fields"]["via"]
            .as_str()
            .unwrap()
            .starts_with("tls from 127.0.0.1:"),
        "{refused:#}"
    );
    let drained = find_audit(
        &events,
        "CN=operator.example.net",
        "POST /drain",
        "done (200",
    )
    .unwrap_or_else(|| panic!("no operator drain in {events:#?}"));
    assert_eq!(drained["fields"]["role"], "operator");
    assert!(
        find_audit(
            &events,
            "CN=admin.example.net",
            "POST /reload",
            "done (200 unchanged)"
        )
        .is_some(),
        "{events:#?}"
    );
    let handshakes: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["fields"]["action"] == "connect"
                && e["fields"]["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("refused at the TLS handshake"))
        })
        .collect();
    assert!(
        handshakes.len() >= 2,
        "the stranger's and the certificate-less handshakes: {events:#?}"
    );
    assert!(
        handshakes.iter().all(|e| e["fields"]["who"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")),
        "{handshakes:#?}"
    );
}
