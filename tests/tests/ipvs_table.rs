//! lbd programs the kernel's IPVS table inside a real guest, and ipvsadm (shipped in the test
//! image, run through the guest's debug shell) is the independent check: after each config
//! edit, `ipvsadm -Ln` shows exactly the expected table, and lbd's summary line says it made
//! exactly those changes (a removed real drains at weight 0 first, then goes once idle). A
//! kill -9 of lbd is followed by an adoption without any change; unmanaged entries follow
//! `ipvs.unmanaged`; a refused object does not stop the others.
//!
//! Needs QEMU, the kernel package (`tools/setup.sh`) and the test image
//! (`tools/build-test-image.sh`); a missing piece fails the test with instructions.

use std::time::Duration;

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, canonical_listing, GuestShell, ShellGuest};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(45);
const CMD: Duration = Duration::from_secs(30);

const APPLIED: &str = r"lbd:\s+INFO ipvs applied: (?P<s>services \S+ \S+ \S+, reals \S+ \S+ \S+, other \d+, \d+ errors?)";

const BASE: &str = r#"
[ipvs.timeouts]
tcp = "2h"
tcp_fin = "2m"
udp = "5m"

[ipvs.sync]
interface = "eth0"
sync_id = 51
follow = "V4"

[vrrp.instance.V4]
interface = "eth0"
vrid = 42
priority = 100
vips = ["10.0.2.100/24", "10.0.2.101/24"]

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

[service.tls]
vip = "10.0.2.100:443"
scheduler = "wlc"
forwarding = "dr"
persistence = { timeout = "5m", netmask = 24 }

[[service.tls.real]]
address = "10.0.2.21"

[service.dns]
vip = "10.0.2.101:53"
protocol = "udp"
scheduler = "sh"
flags = ["sh-fallback", "sh-port", "one-packet"]
forwarding = "tun"

[[service.dns.real]]
address = "10.0.2.31"
upper_threshold = 100
lower_threshold = 10

[vrrp.instance.V6]
interface = "eth0"
vrid = 43
priority = 100
version = 3
vips = ["2001:db8::10/128"]

[service.web6]
vip = "[2001:db8::10]:80"
scheduler = "wrr"
forwarding = "dr"

[[service.web6.real]]
address = "[2001:db8::21]:80"
weight = 2

[service.sig]
vip = "10.0.2.101:3868"
protocol = "sctp"
scheduler = "rr"
forwarding = "nat"

[[service.sig.real]]
address = "10.0.2.41:3868"

[service.marked]
fwmark = 7
family = "ipv6"
scheduler = "mh"
forwarding = "dr"

[[service.marked.real]]
address = "[2001:db8::21]:80"
weight = 4
"#;

const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn";

/// A destination line as ipvsadm prints it (no connections yet).
fn dest(addr: &str, method: &str, weight: u32) -> String {
    format!("  -> {addr:<28} {method:<7} {weight:<6} 0          0")
}

#[derive(Clone)]
struct Table {
    web: (&'static str, Vec<String>),
    tls: &'static str,
    dns: bool,
    marked: bool,
    extra: Vec<String>,
}

impl Table {
    fn initial() -> Self {
        Table {
            web: (
                "TCP  10.0.2.100:80 wrr",
                vec![
                    dest("10.0.2.2:8080", "Masq", 2),
                    dest("10.0.2.3:8080", "Masq", 1),
                ],
            ),
            tls: "TCP  10.0.2.100:443 wlc persistent 300 mask 255.255.255.0",
            dns: true,
            marked: true,
            extra: vec![],
        }
    }

    fn listing(&self) -> String {
        let mut lines = vec![HEADER.to_string(), self.web.0.to_string()];
        lines.extend(self.web.1.iter().cloned());
        lines.push(self.tls.to_string());
        lines.push(dest("10.0.2.21:443", "Route", 1));
        if self.dns {
            lines.push("UDP  10.0.2.101:53 sh (sh-fallback,sh-port) ops".into());
            lines.push(dest("10.0.2.31:53", "Tunnel", 1));
        }
        lines.push("TCP  [2001:db8::10]:80 wrr".into());
        lines.push(dest("[2001:db8::21]:80", "Route", 2));
        lines.push("SCTP 10.0.2.101:3868 rr".into());
        lines.push(dest("10.0.2.41:3868", "Masq", 1));
        if self.marked {
            lines.push("FWM  7 IPv6 mh".into());
            lines.push(dest("[2001:db8::21]:80", "Route", 4));
        }
        lines.extend(self.extra.iter().cloned());
        canonical_listing(&lines.join("\n"))
    }
}

/// A config edit: what it is, how the text changes, lbd's expected summary, and how the
/// expected table changes.
type Edit = (
    &'static str,
    Box<dyn Fn(&str) -> String>,
    &'static str,
    Box<dyn Fn(&mut Table)>,
);

fn listing(sh: &mut GuestShell) -> String {
    canonical_listing(&sh.run("ipvsadm -Ln", CMD).unwrap())
}

/// Publishes `config`, waits for lbd's apply summary and the reload line, and returns the
/// summary.
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

fn assert_table(sh: &mut GuestShell, want: &Table, what: &str) {
    let got = listing(sh);
    assert_eq!(got, want.listing(), "{what}: ipvsadm -Ln differs");
}

#[test]
fn ipvs_table_follows_the_config_exactly() {
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", BASE).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("ipvs-table")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml")
            .poll("1s"),
        BOOT,
    )
    .unwrap();

    // Start: adopted an empty kernel table, then added everything.
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs: adopted the kernel table as it is \(no rebuild\) services=0 reals=0",
            BOOT,
        )
        .unwrap();
    let first = sg.guest.expect(APPLIED, STEP).unwrap();
    assert_eq!(
        first.name("s"),
        Some("services +6 ~0 -0, reals +7 ~0 -0, other 2, 0 errors"),
        "{}",
        first.line
    );
    let mut want = Table::initial();
    assert_table(&mut sg.shell, &want, "initial config");
    assert_eq!(
        sg.shell.run("ipvsadm -Ln --timeout", CMD).unwrap().trim(),
        "Timeout (tcp tcpfin udp): 7200 120 300"
    );
    // Connection sync follows VRRP: the backup daemon until V4 is master (no peer here, so
    // after the master-down interval), then the master daemon.
    sync_master_again(&mut sg);
    let daemon = "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)";
    assert_eq!(
        sg.shell.run("ipvsadm -Ln --daemon", CMD).unwrap().trim(),
        daemon
    );
    let thresholds = sg.shell.run("ipvsadm -Ln --thresholds", CMD).unwrap();
    assert!(
        thresholds.lines().any(|l| l.trim_end()
            == "  -> 10.0.2.31:53                 100        10         0          0"),
        "thresholds of the dns real:\n{thresholds}"
    );

    // Each edit: exactly that change, reported as such.
    let mut config = BASE.to_string();
    let edits: Vec<Edit> = vec![
        (
            "add a real",
            Box::new(|c: &str| {
                c.replacen(
                    "[service.tls]",
                    "[[service.web.real]]\naddress = \"10.0.2.4:8080\"\nweight = 3\n\n[service.tls]",
                    1,
                )
            }),
            "services +0 ~0 -0, reals +1 ~0 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| t.web.1.push(dest("10.0.2.4:8080", "Masq", 3))),
        ),
        (
            "change a weight",
            Box::new(|c: &str| {
                c.replacen(
                    "address = \"10.0.2.3:8080\"\nweight = 1",
                    "address = \"10.0.2.3:8080\"\nweight = 5",
                    1,
                )
            }),
            "services +0 ~0 -0, reals +0 ~1 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| t.web.1[1] = dest("10.0.2.3:8080", "Masq", 5)),
        ),
        (
            "remove a real",
            Box::new(|c: &str| {
                c.replacen(
                    "[[service.web.real]]\naddress = \"10.0.2.2:8080\"\nweight = 2\n",
                    "",
                    1,
                )
            }),
            // Drained first (weight 0); with no connections, deleted at the next drain check.
            "services +0 ~0 -0, reals +0 ~1 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| {
                t.web.1.remove(0);
            }),
        ),
        (
            "change the scheduler",
            Box::new(|c: &str| c.replacen("scheduler = \"wrr\"", "scheduler = \"wlc\"", 1)),
            "services +0 ~1 -0, reals +0 ~0 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| t.web.0 = "TCP  10.0.2.100:80 wlc"),
        ),
        (
            "change the persistence",
            Box::new(|c: &str| {
                c.replacen(
                    "persistence = { timeout = \"5m\", netmask = 24 }",
                    "persistence = { timeout = \"1h\", netmask = \"255.255.0.0\" }",
                    1,
                )
            }),
            "services +0 ~1 -0, reals +0 ~0 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| {
                t.tls = "TCP  10.0.2.100:443 wlc persistent 3600 mask 255.255.0.0"
            }),
        ),
        (
            "add a service",
            Box::new(|c: &str| {
                format!("{c}\n[service.smtp]\nvip = \"10.0.2.100:25\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\n[[service.smtp.real]]\naddress = \"10.0.2.5:25\"\n")
            }),
            "services +1 ~0 -0, reals +1 ~0 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| {
                t.extra = vec![
                    "TCP  10.0.2.100:25 rr".into(),
                    dest("10.0.2.5:25", "Masq", 1),
                ]
            }),
        ),
        (
            "remove a service",
            Box::new(|c: &str| {
                let start = c.find("[service.dns]").unwrap();
                let end = c.find("[vrrp.instance.V6]").unwrap();
                format!("{}{}", &c[..start], &c[end..])
            }),
            "services +0 ~0 -1, reals +0 ~0 -0, other 0, 0 errors",
            Box::new(|t: &mut Table| t.dns = false),
        ),
    ];
    for (what, edit, summary, expect) in edits {
        config = edit(&config);
        let got = publish(&sg, &dir, &config);
        assert_eq!(got, summary, "{what}: lbd's summary");
        if what == "remove a real" {
            sg.guest
                .expect(
                    r"lbd:\s+INFO ipvs: real 10\.0\.2\.2:8080 of service web drained: no connections left",
                    STEP,
                )
                .unwrap();
            sg.guest
                .expect(
                    r"lbd:\s+INFO ipvs applied removal drain changes: reals \+0 ~0 -1, 0 errors",
                    STEP,
                )
                .unwrap();
        }
        expect(&mut want);
        assert_table(&mut sg.shell, &want, what);
    }

    // kill -9: init restarts lbd, which adopts the table and changes nothing in it. The sync
    // daemon starts as backup with the table; VRRP resumes V4 as master at once (its VIP is
    // still on the link), and the sync daemon follows it back to master.
    sg.shell.run("kill -9 $(pidof lbd)", CMD).unwrap();
    sg.guest
        .expect(r"init:\s+WARN lbd exited .*restarting", STEP)
        .unwrap();
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs: adopted the kernel table as it is \(no rebuild\) services=6 reals=7",
            STEP,
        )
        .unwrap();
    let after_restart = sg.guest.expect(APPLIED, STEP).unwrap();
    assert_eq!(
        after_restart.name("s"),
        Some("services +0 ~0 -0, reals +0 ~0 -0, other 2, 0 errors"),
        "{}",
        after_restart.line
    );
    sync_master_again(&mut sg);
    assert_table(&mut sg.shell, &want, "after kill -9 and restart");
    assert_eq!(
        sg.shell.run("ipvsadm -Ln --daemon", CMD).unwrap().trim(),
        daemon
    );

    // Unmanaged entries: kept by default, removed with unmanaged = "remove".
    sg.shell
        .run(
            "ipvsadm -A -t 10.0.2.200:99 -s rr && ipvsadm -a -t 10.0.2.200:99 -r 10.0.2.9:99 -m",
            CMD,
        )
        .unwrap();
    config = config.replacen("weight = 5", "weight = 6", 1);
    // The foreign service is not in lbd's view: the edit is applied without reading the table.
    assert_eq!(
        publish(&sg, &dir, &config),
        "services +0 ~0 -0, reals +0 ~1 -0, other 0, 0 errors"
    );
    want.web.1[0] = dest("10.0.2.3:8080", "Masq", 6);
    let mut with_foreign = want.extra.clone();
    with_foreign.push("TCP  10.0.2.200:99 rr".into());
    with_foreign.push(dest("10.0.2.9:99", "Masq", 1));
    let keep = Table {
        extra: with_foreign,
        ..want.clone()
    };
    assert_table(&mut sg.shell, &keep, "unmanaged = keep");
    // Restart so lbd reads the table again, now with remove: the foreign service goes.
    config = format!("[ipvs]\nunmanaged = \"remove\"\n{config}");
    sg.shell.run("kill -9 $(pidof lbd)", CMD).unwrap();
    sg.guest.expect(r"services=7 reals=8", STEP).unwrap();
    sg.guest.expect(APPLIED, STEP).unwrap();
    sync_master_again(&mut sg);
    assert_eq!(
        publish(&sg, &dir, &config),
        "services +0 ~0 -1, reals +0 ~0 -0, other 0, 0 errors"
    );
    assert_table(&mut sg.shell, &want, "unmanaged = remove");

    // One refused object: the kernel rejects a broadcast address as a real; the rest applies.
    config = format!("{config}\n[service.bad]\nvip = \"10.0.2.100:81\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\n[[service.bad.real]]\naddress = \"10.0.2.255:80\"\n\n[[service.bad.real]]\naddress = \"10.0.2.6:80\"\n");
    assert_eq!(
        publish(&sg, &dir, &config),
        "services +1 ~0 -0, reals +2 ~0 -0, other 0, 1 error"
    );
    let log = sg.guest.console().lines().join("\n");
    assert!(
        log.contains("ipvs: add real 10.0.2.255:80 to tcp 10.0.2.100:81 (weight 1): the kernel refused it: Invalid argument (EINVAL, errno 22) (service bad)"),
        "the refused real is reported with its service and errno"
    );
    // That service alone is not as configured (an N-way VIP of it would be withdrawn).
    assert!(
        log.contains("1 error; not as configured: bad"),
        "the apply names the service the kernel refused part of"
    );
    want.extra.push("TCP  10.0.2.100:81 rr".into());
    want.extra.push(dest("10.0.2.6:80", "Masq", 1));
    assert_table(&mut sg.shell, &want, "one refused real");

    // The sync daemon: another sync id restarts it (stop + start); no [ipvs.sync] with
    // unmanaged = "remove" stops it. The refused real is still wanted, so every apply tries
    // (and reports) it again.
    config = config.replacen("sync_id = 51", "sync_id = 52", 1);
    assert_eq!(
        publish(&sg, &dir, &config),
        "services +0 ~0 -0, reals +1 ~0 -0, other 2, 1 error"
    );
    assert_eq!(
        sg.shell.run("ipvsadm -Ln --daemon", CMD).unwrap().trim(),
        daemon.replace("syncid=51", "syncid=52")
    );
    let start = config.find("[ipvs.sync]").unwrap();
    let end = config.find("[vrrp.instance.V4]").unwrap();
    config = format!("{}{}", &config[..start], &config[end..]);
    assert_eq!(
        publish(&sg, &dir, &config),
        "services +0 ~0 -0, reals +1 ~0 -0, other 1, 1 error"
    );
    assert_eq!(
        sg.shell.run("ipvsadm -Ln --daemon", CMD).unwrap().trim(),
        ""
    );
    assert_table(&mut sg.shell, &want, "after the sync daemon changes");
    assert_no_fatal(sg.guest.console());
}

/// Waits until VRRP made V4 master (from backup, or at once when lbd restarted holding its
/// VIP) and the sync daemon followed it.
fn sync_master_again(sg: &mut lbtest::ipvs::ShellGuest) {
    sg.guest
        .expect(r"lbd:\s+INFO vrrp: V4: (BACKUP|INIT) -> MASTER", STEP)
        .unwrap();
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs: connection sync follows VRRP: master daemon",
            STEP,
        )
        .unwrap();
    sg.guest
        .expect(
            r"lbd:\s+INFO ipvs applied (health and )?sync role changes: reals \+0 ~0 -0, 0 errors",
            STEP,
        )
        .unwrap();
}
