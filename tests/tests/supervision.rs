//! init supervises lbd: a crashing lbd is restarted with a delay that doubles on each quick
//! crash, and every restart runs the same config again. The test image's debug shell (ttyS1)
//! is how the test kills lbd; the console is the independent record of what init did.
//!
//! Needs QEMU, the kernel package (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::time::Duration;

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::boot_with_shell;

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(45);
const CMD: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[vrrp.instance.V]
interface = "eth0"
vrid = 7
priority = 100
vips = ["10.0.2.100/24"]

[service.web]
vip = "10.0.2.100:80"
scheduler = "rr"

[[service.web.real]]
address = "10.0.2.2:8080"
"#;

#[test]
fn crashing_lbd_is_restarted_with_doubling_delays() {
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", CONFIG).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("supervision")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml"),
        BOOT,
    )
    .unwrap();
    let first = sg
        .guest
        .expect(r"init:\s+INFO lbd started pid=(?P<pid>\d+)", BOOT)
        .unwrap();
    let mut pid: u32 = first.name("pid").unwrap().parse().unwrap();
    sg.guest
        .expect(r"lbd:\s+INFO lbd running with ", STEP)
        .unwrap();

    // Three crashes in a row, each within seconds of the restart: 1 s, 2 s, 4 s.
    for (round, delay) in [1u64, 2, 4].into_iter().enumerate() {
        sg.shell.run(&format!("kill -9 {pid}"), CMD).unwrap();
        sg.guest
            .expect(
                &format!(r"init:\s+WARN lbd exited \(signal SIGKILL\) after [\d.]+ s; restarting in {delay} s"),
                STEP,
            )
            .unwrap_or_else(|e| panic!("crash {}: {e}", round + 1));
        let restarted = sg
            .guest
            .expect(
                r"init:\s+INFO lbd restarted pid=(?P<pid>\d+) restarts=(?P<n>\d+)",
                STEP,
            )
            .unwrap();
        let new_pid: u32 = restarted.name("pid").unwrap().parse().unwrap();
        assert_ne!(new_pid, pid, "a restart is a new process");
        assert_eq!(restarted.name("n").unwrap(), (round + 1).to_string());
        pid = new_pid;
        sg.guest
            .expect(
                r"lbd:\s+INFO lbd running with /run/lb/config.toml: 1 service, 1 real",
                STEP,
            )
            .unwrap();
        // The process really is the one init reported.
        let live = sg.shell.run("pidof lbd", CMD).unwrap();
        assert_eq!(live.trim(), pid.to_string());
    }

    // An orderly stop still works after the crashes.
    sg.guest.ctrl_alt_delete().unwrap();
    sg.guest
        .expect(&format!(r"init:\s+INFO stopping lbd pid={pid}$"), STEP)
        .unwrap();
    sg.guest
        .expect(r"init:\s+INFO lbd stopped \(exit code 0\)$", STEP)
        .unwrap();
    assert_no_fatal(sg.guest.console());
}
