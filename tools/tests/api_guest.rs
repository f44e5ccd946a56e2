//! The control API against a guest's real IPVS (the test image: the appliance plus busybox and
//! ipvsadm): status and metrics carry the kernel's columns, a drain reaches the kernel through
//! the reconciler, which `ipvsadm -Ln` (an independent tool) confirms, and a config that init's
//! watcher fetches is reloaded by the daemon, whose status says so. The requests come from the
//! host over QEMU's port forward, with mutual TLS (curl with a client certificate the test's CA
//! made): the guest's TCP API takes nothing else.
//!
//! Needs QEMU, the kernel package (tools/setup.sh) and the test image
//! (tools/build-test-image.sh); a missing piece fails the test with instructions.

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell};
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(180);
const STEP: Duration = Duration::from_secs(45);
const CMD: Duration = Duration::from_secs(30);

/// The config without its `[node.api.tls]` table, which the test adds with certificates it
/// makes.
const CONFIG: &str = r#"
[node]
api_listen = "0.0.0.0:9900"

[vrrp.instance.V4]
interface = "eth0"
vrid = 42
priority = 100
vips = ["10.0.2.100/24"]

[service.web]
vip = "10.0.2.100:80"
scheduler = "wrr"
forwarding = "nat"

[[service.web.real]]
address = "10.0.2.2:8080"
weight = 2

[[service.web.real]]
address = "10.0.2.3:8080"
weight = 1
"#;

/// The guest's API as the host reaches it: the forwarded port and an operator's files.
struct Api {
    port: u16,
    client: lbtest::tls::ClientFiles,
}

impl Api {
    /// `curl` from the host with the client certificate; the answer's body.
    fn call(&self, method: &str, path: &str) -> String {
        let mut cmd = lbtest::programs::command("curl");
        cmd.args(["-sS", "--max-time", "30", "-X", method])
            .args(self.client.curl_args())
            .arg(format!("https://127.0.0.1:{}{path}", self.port));
        let o = lbtest::process::run(&mut cmd).unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn get(api: &Api, path: &str) -> String {
    api.call("GET", path)
}

fn post(api: &Api, path: &str) -> String {
    api.call("POST", path)
}

fn status(api: &Api) -> serde_json::Value {
    let text = get(api, "/status");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}):\n{text}"))
}

/// The weight `ipvsadm -Ln` shows for a destination.
fn kernel_weight(sh: &mut GuestShell, dest: &str) -> Option<u32> {
    let out = sh.run("ipvsadm -Ln", CMD).unwrap();
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("-> {dest} ")))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|w| w.parse().ok())
}

fn real(doc: &serde_json::Value, addr: &str) -> serde_json::Value {
    doc["services"][0]["reals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == addr)
        .cloned()
        .unwrap_or_else(|| panic!("no real {addr} in {doc:#}"))
}

#[test]
fn drain_reaches_the_kernel_through_the_reconciler() {
    let ca = lbtest::tls::TestCa::new("api guest test CA");
    let server = ca.server(&["127.0.0.1".parse().unwrap(), "10.0.2.15".parse().unwrap()]);
    let files = tempfile::tempdir().unwrap();
    let api = Api {
        port: std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port(),
        client: ca
            .write_client(files.path(), "ops", &ca.client("ops.example.net"))
            .unwrap(),
    };
    let config = format!(
        "{CONFIG}{}",
        ca.api_tls_toml(&server, &[("ops.example.net", "operator")])
    );
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", &config).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("api-guest")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml")
            .poll("1s")
            .hostfwd_tcp(api.port, 9900),
        BOOT,
    )
    .unwrap();
    sg.guest
        .expect(r"lbd:\s+INFO ipvs applied: services \+1", BOOT)
        .unwrap();
    sg.guest
        .expect(
            r"lbd:\s+INFO api: HTTPS \(mutual TLS\) on 0\.0\.0\.0:9900",
            STEP,
        )
        .unwrap();
    // The VIP is on the box once VRRP is master.
    sg.guest
        .expect(
            r"lbd:\s+INFO vrrp: V4: added 10\.0\.2\.100/24 on eth0",
            STEP,
        )
        .unwrap();
    let sh = &mut sg.shell;
    assert_eq!(kernel_weight(sh, "10.0.2.2:8080"), Some(2));

    // A connection through the VIP from the balancer itself, so the counters move.
    // (Nothing answers behind it; the entry and the counters are what matter. The kernel
    // folds its per-CPU counters into the totals every 2 s.)
    sh.run("echo x | nc -w 1 10.0.2.100 80; sleep 3; true", CMD)
        .unwrap();
    let doc = status(&api);
    assert_eq!(doc["ipvs"]["available"], true, "{doc:#}");
    assert_eq!(doc["services"][0]["in_kernel"], true);
    let r = real(&doc, "10.0.2.2:8080");
    assert_eq!(r["ipvs"]["weight"], 2, "{r:#}");
    assert_eq!(r["ipvs"]["forwarding"], "nat");
    let conns = doc["services"][0]["traffic"]["connections"]
        .as_u64()
        .unwrap();
    assert_eq!(conns, 1, "the connection is counted: {doc:#}");
    let entries: u64 = ["10.0.2.2:8080", "10.0.2.3:8080"]
        .iter()
        .map(|a| {
            let k = &real(&doc, a)["ipvs"];
            k["active_connections"].as_u64().unwrap() + k["inactive_connections"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(entries, 1, "one connection entry: {doc:#}");
    let metrics = get(&api, "/metrics");
    assert!(metrics.contains("lbd_ipvs_available 1"), "{metrics}");
    assert!(
        metrics.contains("lbd_real_ipvs_weight{service=\"web\",real=\"10.0.2.2:8080\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("lbd_service_connections_total{service=\"web\"} "));

    // Drain: the reconciler sets weight 0 in the kernel; nothing else changes.
    let answer = post(&api, "/drain?service=web&real=10.0.2.2:8080");
    assert!(answer.contains("\"changed\": true"), "{answer}");
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs applied drain changes: reals \+0 ~1 -0, 0 errors",
            STEP,
        )
        .unwrap();
    let sh = &mut sg.shell;
    assert_eq!(
        kernel_weight(sh, "10.0.2.2:8080"),
        Some(0),
        "drained in the kernel"
    );
    assert_eq!(
        kernel_weight(sh, "10.0.2.3:8080"),
        Some(1),
        "the other real untouched"
    );
    let r = real(&status(&api), "10.0.2.2:8080");
    assert_eq!(r["drained"], true);
    assert_eq!(r["weight"], 0);
    assert_eq!(r["ipvs"]["weight"], 0);

    // Undrain: back to the config's weight.
    post(&api, "/undrain?real=10.0.2.2");
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs applied drain changes: reals \+0 ~1 -0, 0 errors",
            STEP,
        )
        .unwrap();
    let sh = &mut sg.shell;
    assert_eq!(kernel_weight(sh, "10.0.2.2:8080"), Some(2));
    assert_eq!(real(&status(&api), "10.0.2.2:8080")["ipvs"]["weight"], 2);

    // init's config watcher fetches a changed config and hands it to lbd (SIGHUP): the daemon
    // reloads through its one path and says so in its status; the kernel follows.
    let before = status(&api)["config"]["version"].clone();
    dir.publish("lb.toml", &config.replace("weight = 2", "weight = 5"))
        .unwrap();
    let deadline = std::time::Instant::now() + STEP;
    let reload = loop {
        let r = status(&api)["config"]["last_reload"].clone();
        if r["result"] == "reloaded" {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload after the new config: {r}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(reload["source"], "signal", "{reload}");
    assert_eq!(reload["previous"], before, "{reload}");
    let sh = &mut sg.shell;
    assert_eq!(kernel_weight(sh, "10.0.2.2:8080"), Some(5));
    assert_no_fatal(sg.guest.console());
}
