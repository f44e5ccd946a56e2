//! BIRD, the BGP speaker lbd drives on N-way balancers, runs in a guest booted from the image.
//!
//! The production image has no shell, so this boots the test image: the default image (built by
//! the same `image build`, BIRD included) plus busybox on ttyS1. BIRD is stored compressed and
//! is not there until `lbd expand-bird` (what lbd does before it first starts BIRD). Every BIRD
//! file in the guest must then hash as the image's manifest lists it: the test image keeps the packages' libraries
//! where it also adds host libraries at the same paths, so this is the default image's BIRD.
//! Then BIRD starts the way lbd starts it (`bird -f -c CONF -s SOCKET`), opens its control
//! socket, and programs the guest kernel: the route of its static protocol reaches the kernel
//! table through its kernel protocol (netlink), which only a running, configured BIRD does.
//!
//! Needs QEMU, the kernel and BIRD packages (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::time::Duration;

use lbtest::appliance::{ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, test_image};

const BOOT: Duration = Duration::from_secs(120);
const CMD: Duration = Duration::from_secs(30);
/// BIRD scans the kernel table and exports at start; a TCG guest is slow.
const EXPORT: Duration = Duration::from_secs(30);

/// One VRRP instance and one service with one real: enough for lbd to run.
const CONFIG: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 42
priority = 100
vips = ["10.0.2.100/24"]

[service.app]
vip = "10.0.2.100:81"
scheduler = "rr"
forwarding = "nat"
check = { type = "tcp", interval = "1s", timeout = "500ms", rise = 2, fall = 2, jitter = "0ms" }

[[service.app.real]]
address = "10.0.2.15:8083"
"#;

/// A minimal BIRD config of the kind lbd writes: a router id, log to stderr (the image has no
/// syslog), the device scan, a static route and the kernel protocol that exports it.
const BIRD_CONF: [&str; 5] = [
    "log stderr all;",
    "router id 10.0.2.15;",
    "protocol device { }",
    "protocol static vips { ipv4; route 192.0.2.100/32 blackhole; }",
    "protocol kernel { ipv4 { export all; }; }",
];

#[test]
fn bird_from_the_image_runs_in_the_guest_and_programs_its_kernel() {
    let image = test_image();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&image.manifest).unwrap()).unwrap();
    let bird = &manifest["bird"];
    assert!(
        bird.is_object(),
        "{} carries no BIRD (no \"bird\" in its manifest)",
        image.manifest.display()
    );
    let upstream = bird["version"]
        .as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .0
        .to_string();

    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", CONFIG).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("bird")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml"),
        BOOT,
    )
    .unwrap();
    sg.guest
        .expect(r"lbd:\s+INFO lbd running with", BOOT)
        .unwrap();
    let sh = &mut sg.shell;

    // The image stores BIRD compressed and a pair's lbd never expands it: the program is not
    // there until lbd starts BIRD, or `lbd expand-bird` is run.
    assert!(
        sh.run("test -e /usr/sbin/bird", CMD).is_err(),
        "/usr/sbin/bird is whole in the guest before anything asked for it"
    );
    let expanded = sh.run("lbd expand-bird", CMD).unwrap();
    assert!(
        expanded.contains("/usr/sbin/bird: ") && !expanded.contains(": 0 files"),
        "lbd expand-bird: {expanded}"
    );
    assert!(
        sh.run("test -e /usr/sbin/bird.zst", CMD).is_err(),
        "the compressed copy stays after expansion"
    );

    // The files in the guest are the manifest's (the packages'), byte for byte.
    for file in bird["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        if file["link"].is_string() {
            let target = sh.run(&format!("readlink {path}"), CMD).unwrap();
            assert_eq!(target.trim(), file["link"].as_str().unwrap(), "{path}");
            continue;
        }
        let sum = sh.run(&format!("sha256sum {path}"), CMD).unwrap();
        assert_eq!(
            sum.split_whitespace().next(),
            file["sha256"].as_str(),
            "{path} in the guest differs from the manifest's (package {})",
            file["package"]
        );
    }

    let version = sh.run("/usr/sbin/bird --version 2>&1", CMD).unwrap();
    assert!(
        version.contains(&format!("BIRD version {upstream}")),
        "bird --version in the guest: {version}"
    );

    let lines: Vec<String> = BIRD_CONF.iter().map(|l| format!("'{l}'")).collect();
    sh.run(
        &format!("printf '%s\\n' {} > /tmp/bird.conf", lines.join(" ")),
        CMD,
    )
    .unwrap();
    sh.run(
        "/usr/sbin/bird -f -c /tmp/bird.conf -s /run/bird.ctl > /tmp/bird.log 2>&1 &",
        CMD,
    )
    .unwrap();
    // Only BIRD puts this route in the guest (busybox ip prints no protocol it has no name
    // for; metric 32 is BIRD's kernel protocol default).
    let route = lbtest::wait::until_some(EXPORT, Duration::from_millis(500), || {
        let out = sh.run("ip route show", CMD).ok()?;
        out.lines()
            .find(|l| l.starts_with("blackhole 192.0.2.100"))
            .map(str::to_string)
    });
    let log = sh
        .run("cat /tmp/bird.log; ip route show", CMD)
        .unwrap_or_default();
    let route = route.unwrap_or_else(|| {
        panic!("BIRD's static route did not reach the guest's kernel table within {EXPORT:?}; bird's log:\n{log}")
    });
    assert!(route.contains("metric 32"), "{route}");
    sh.run("test -S /run/bird.ctl", CMD)
        .unwrap_or_else(|e| panic!("no control socket at /run/bird.ctl: {e}\nbird's log:\n{log}"));
    assert!(
        sh.run("pidof bird", CMD).is_ok(),
        "bird is not running; its log:\n{log}"
    );
}
