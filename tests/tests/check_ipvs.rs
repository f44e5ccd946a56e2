//! Health checks drive the kernel's IPVS table inside a real guest (the test image): real
//! servers (busybox httpd in the guest) stopped and started, and `ipvsadm -Ln` as the
//! independent check. A dead real gets weight 0 (`on_failure = "inhibit"`) or leaves the table
//! (`"remove"`) within fall × interval of its death, comes back within rise × interval of its
//! start (measured on the guest's own clock: the shell's /proc/uptime against lbd's stamped log
//! lines), and when every real of a service is down the sorry server gets the traffic sent to
//! the VIP.
//!
//! Needs QEMU, the kernel package (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::collections::BTreeMap;
use std::time::Duration;

use lbtest::appliance::{assert_no_fatal, stamp, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell, ShellGuest};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(30);
const CMD: Duration = Duration::from_secs(30);
/// The checks' interval, rise and fall below.
const INTERVAL: Duration = Duration::from_secs(1);
const RISE: u32 = 2;
const FALL: u32 = 2;
/// Room for a check's own duration and the log line, on a TCG guest.
const SLACK: Duration = Duration::from_millis(700);

const CONFIG: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 42
priority = 100
vips = ["10.0.2.100/24"]

[service.web]
vip = "10.0.2.100:80"
scheduler = "rr"
forwarding = "nat"
on_failure = "inhibit"
sorry_server = "10.0.2.15:8099"
check = { type = "http", path = "/", expect_body = "real", interval = "1s", timeout = "500ms", rise = 2, fall = 2, jitter = "0ms" }

[[service.web.real]]
address = "10.0.2.15:8081"
weight = 2

[[service.web.real]]
address = "10.0.2.15:8082"
weight = 3

[service.app]
vip = "10.0.2.100:81"
scheduler = "rr"
forwarding = "nat"
on_failure = "remove"
check = { type = "tcp", interval = "1s", timeout = "500ms", rise = 2, fall = 2, jitter = "0ms" }

[[service.app.real]]
address = "10.0.2.15:8083"
"#;

/// Destinations (address → weight) of each service in `ipvsadm -Ln`.
fn table(sh: &mut GuestShell) -> BTreeMap<String, BTreeMap<String, u32>> {
    let text = sh.run("ipvsadm -Ln", CMD).unwrap();
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["TCP" | "UDP", vip, ..] => {
                current = Some(vip.to_string());
                out.entry(vip.to_string()).or_default();
            }
            ["->", addr, _fwd, weight, ..] if *addr != "RemoteAddress:Port" => {
                if let (Some(svc), Ok(w)) = (&current, weight.parse()) {
                    out.entry(svc.clone())
                        .or_default()
                        .insert(addr.to_string(), w);
                }
            }
            _ => {}
        }
    }
    out
}

fn dests(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(a, w)| (a.to_string(), *w)).collect()
}

/// Polls `ipvsadm -Ln` until the services have exactly these destinations.
fn wait_table(
    sh: &mut GuestShell,
    web: &[(&str, u32)],
    app: &[(&str, u32)],
    within: Duration,
    what: &str,
) {
    let want = BTreeMap::from([
        ("10.0.2.100:80".to_string(), dests(web)),
        ("10.0.2.100:81".to_string(), dests(app)),
    ]);
    let mut got = BTreeMap::new();
    let reached = lbtest::wait::until(within, Duration::from_millis(200), || {
        got = table(sh);
        got == want
    });
    assert!(
        reached.is_some(),
        "{what}: ipvsadm -Ln did not reach {want:?} within {within:?}; it shows {got:?}"
    );
}

/// The guest's uptime now (the same clock as lbd's log stamps).
fn uptime(sh: &mut GuestShell) -> Duration {
    let out = sh.run("cat /proc/uptime", CMD).unwrap();
    let secs: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_secs_f64(secs)
}

/// Waits for lbd's log line matching `pattern` and returns its stamp.
fn logged(sg: &ShellGuest, pattern: &str) -> Duration {
    let m = sg.guest.expect(pattern, STEP).unwrap();
    stamp(&m.line).unwrap_or_else(|| panic!("no stamp on {:?}", m.line))
}

/// Starts busybox httpd serving `body` on 10.0.2.15:`port`; its pid goes to /tmp/httpd.`port`.
fn start_httpd(sh: &mut GuestShell, port: u16, body: &str) {
    sh.run(
        &format!(
            "mkdir -p /tmp/www{port} && echo {body} > /tmp/www{port}/index.html && \
             (httpd -f -p 10.0.2.15:{port} -h /tmp/www{port} </dev/null >/dev/null 2>&1 & echo $! > /tmp/httpd.{port})"
        ),
        CMD,
    )
    .unwrap();
}

fn stop_httpd(sh: &mut GuestShell, port: u16) {
    sh.run(&format!("kill $(cat /tmp/httpd.{port})"), CMD)
        .unwrap();
}

/// Bodies of `n` requests to the VIP from inside the guest (busybox nc: the static busybox's
/// wget crashes resolving addresses).
fn fetch_vip(sh: &mut GuestShell, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = sh
                .run(
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.100 80",
                    CMD,
                )
                .unwrap();
            out.lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn checks_drive_ipvs_weight_zero_removal_return_and_sorry_server() {
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", CONFIG).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("check-ipvs")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml"),
        BOOT,
    )
    .unwrap();
    sg.guest
        .expect(r"lbd:\s+INFO lbd running with", BOOT)
        .unwrap();

    // Nothing listens yet: the first checks put the web reals at weight 0 with the sorry
    // server in, and leave the app real out.
    wait_table(
        &mut sg.shell,
        &[
            ("10.0.2.15:8081", 0),
            ("10.0.2.15:8082", 0),
            ("10.0.2.15:8099", 1),
        ],
        &[],
        STEP,
        "no server running",
    );
    sg.guest
        .expect(r"lbd:\s+WARN service web: no real is up; sorry server 10.0.2.15:8099 takes the traffic", STEP)
        .unwrap();

    // Servers start: each real is back within rise × interval of its start.
    start_httpd(&mut sg.shell, 8099, "sorry");
    let started = uptime(&mut sg.shell);
    start_httpd(&mut sg.shell, 8081, "real1");
    start_httpd(&mut sg.shell, 8082, "real2");
    start_httpd(&mut sg.shell, 8083, "real3");
    let up = logged(
        &sg,
        r"lbd:\s+INFO real 10.0.2.15:808[123] of service \w+ is up again \(after 2 successful checks\)",
    );
    assert!(
        up - started <= INTERVAL * RISE + SLACK,
        "a real came back {:?} after its server started (rise {RISE} × interval {INTERVAL:?})",
        up - started
    );
    wait_table(
        &mut sg.shell,
        &[("10.0.2.15:8081", 2), ("10.0.2.15:8082", 3)],
        &[("10.0.2.15:8083", 1)],
        STEP,
        "all servers running",
    );
    // The VIP is up once VRRP is master (possibly long before this point).
    let master = |sg: &ShellGuest| {
        sg.guest
            .console()
            .lines()
            .iter()
            .any(|l| l.contains("vrrp: V:") && l.contains("-> MASTER"))
    };
    if !master(&sg) {
        sg.guest
            .expect(r"lbd:\s+INFO vrrp: V: \w+ -> MASTER", BOOT)
            .unwrap();
    }
    let bodies = fetch_vip(&mut sg.shell, 4);
    assert!(
        bodies.contains(&"real1".to_string()) && bodies.contains(&"real2".to_string()),
        "round robin over both reals through the VIP: {bodies:?}"
    );

    // One web real stops: weight 0 (inhibit) within fall × interval; the other serves alone.
    let killed = uptime(&mut sg.shell);
    stop_httpd(&mut sg.shell, 8081);
    let down = logged(
        &sg,
        r"lbd:\s+WARN real 10.0.2.15:8081 of service web is down: connection refused \(after 2 failed checks\)",
    );
    assert!(
        down - killed <= INTERVAL * FALL + SLACK,
        "the dead real was noticed {:?} after it stopped (fall {FALL} × interval {INTERVAL:?})",
        down - killed
    );
    wait_table(
        &mut sg.shell,
        &[("10.0.2.15:8081", 0), ("10.0.2.15:8082", 3)],
        &[("10.0.2.15:8083", 1)],
        STEP,
        "web real 8081 stopped",
    );
    assert_eq!(fetch_vip(&mut sg.shell, 3), ["real2", "real2", "real2"]);

    // The app real stops: removed (on_failure = remove).
    stop_httpd(&mut sg.shell, 8083);
    wait_table(
        &mut sg.shell,
        &[("10.0.2.15:8081", 0), ("10.0.2.15:8082", 3)],
        &[],
        STEP,
        "app real stopped",
    );

    // Every web real down: the sorry server takes the traffic.
    stop_httpd(&mut sg.shell, 8082);
    wait_table(
        &mut sg.shell,
        &[
            ("10.0.2.15:8081", 0),
            ("10.0.2.15:8082", 0),
            ("10.0.2.15:8099", 1),
        ],
        &[],
        STEP,
        "all web reals stopped",
    );
    assert_eq!(fetch_vip(&mut sg.shell, 2), ["sorry", "sorry"]);

    // One comes back: the sorry server leaves again.
    start_httpd(&mut sg.shell, 8082, "real2");
    wait_table(
        &mut sg.shell,
        &[("10.0.2.15:8081", 0), ("10.0.2.15:8082", 3)],
        &[],
        STEP,
        "web real 8082 back",
    );
    assert_eq!(fetch_vip(&mut sg.shell, 2), ["real2", "real2"]);
    assert_no_fatal(sg.guest.console());
}
