//! Health quorum lowers the VRRP priority end to end: lbd's TCP check of a real server (a
//! python3 listener in a third namespace) fails, the service loses its quorum, the master's
//! priority drops by `quorum_priority_drop` and the backup preempts; the server comes back
//! and the master takes its VIP back.
//!
//! Needs root, python3 and curl.

mod vrrp_support;

use lbtest::wait;
use std::time::Duration;
use vrrp_support::*;

const SEC: Duration = Duration::from_secs(1);
const VIP: &str = "10.1.0.100";

fn server(lab: &Lab, name: &str) -> Daemon {
    let s = lab.program(
        2,
        name,
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "10.1.0.3",
        ],
    );
    assert!(
        s.wait_log("Serving HTTP", 10 * SEC),
        "server did not start: {}",
        s.log()
    );
    s
}

#[test]
fn lost_quorum_hands_the_vip_to_the_peer() {
    require(&["python3", "curl"]);
    let lab = Lab::new(3, 1);
    let mut web = server(&lab, "web");
    let a_cfg = format!(
        "{}\n[service.web]\nvip = \"10.1.0.100:80\"\nscheduler = \"rr\"\nforwarding = \"nat\"\ncheck = {{ type = \"tcp\", interval = \"200ms\", timeout = \"150ms\", rise = 1, fall = 1 }}\n\n[service.web.quorum]\nmin_weight = 1\n\n[[service.web.real]]\naddress = \"10.1.0.3:8080\"\n",
        lbd_instance("VI_1", "eth0", 51, 150, 3, "100ms", &["10.1.0.100/24"], "quorum_priority_drop = 100")
    );
    let a = lab.lbd(0, "a", &a_cfg);
    assert!(
        wait::until(5 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)).is_some(),
        "{}",
        a.log()
    );
    let b = lab.lbd(
        1,
        "b",
        &lbd_instance("VI_1", "eth0", 51, 100, 3, "100ms", &["10.1.0.100/24"], ""),
    );
    assert!(b.wait_log("VI_1: INIT -> BACKUP", 5 * SEC), "{}", b.log());
    std::thread::sleep(SEC);
    assert!(!lab.has_addr(1, "eth0", VIP), "{}", b.log());
    web.kill().unwrap();
    assert!(
        wait::until(10 * SEC, POLL, || lab.has_addr(1, "eth0", VIP)
            && !lab.has_addr(0, "eth0", VIP))
        .is_some(),
        "b did not take over when a lost its quorum:\na:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log().contains("VI_1: health quorum lost; priority 50"),
        "{}",
        a.log()
    );
    // The control API shows the lowered priority next to the configured one.
    let prio = |name: &str| {
        lab.api_get(name, "/status").map(|s| {
            let v = &s["vrrp"][0];
            (
                v["priority"].as_u64(),
                v["effective_priority"].as_u64(),
                v["state"].as_str().map(String::from),
            )
        })
    };
    assert_eq!(
        prio("a"),
        Some((Some(150), Some(50), Some("BACKUP".into()))),
        "{}",
        a.log()
    );
    assert_eq!(
        prio("b"),
        Some((Some(100), Some(100), Some("MASTER".into())))
    );
    assert!(
        a.log()
            .contains("VI_1: MASTER -> BACKUP (10.1.0.2 advertises priority 100)"),
        "{}",
        a.log()
    );
    let _web2 = server(&lab, "web2");
    assert!(
        wait::until(10 * SEC, POLL, || lab.has_addr(0, "eth0", VIP)
            && !lab.has_addr(1, "eth0", VIP))
        .is_some(),
        "a did not take its VIP back:\na:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        a.log().contains("VI_1: health quorum back; priority 150"),
        "{}",
        a.log()
    );
    assert_eq!(
        prio("a"),
        Some((Some(150), Some(150), Some("MASTER".into()))),
        "{}",
        a.log()
    );
}
