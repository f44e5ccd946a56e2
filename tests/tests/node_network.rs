//! The node's own network from the config, on a real guest kernel (the host's has no bonding or
//! VLANs): a balancer with three NICs, the boot NIC on the outside segment and an
//! active-backup bond of the other two (found by MAC and renamed) on the inside segment, with a
//! VLAN on the bond, and a VRRP instance on each.
//!
//! ```text
//!   namespace "nodenet": br0 10.72.0.1 (config server :8080)   br1 10.73.0.1 ── br2 (two switches)
//!     └─ tap0 ── eth0 10.72.0.11 (ip=, then the config)         tap1 ── in1 ┐  │
//!                                                                tap2 ── in2 ┘──┘ bond "inside" 10.73.0.11
//!                                                               VIP 10.73.0.100, VLAN 42 (VIP 10.74.0.100)
//! ```
//!
//! Checked, with the kernel's own reports (`/proc/net/bonding`, `/proc/net/vlan`, sysfs) and
//! tshark on the taps as the independent checks:
//! - the bond, its members, its primary, the VLAN and the addresses are as configured, VRRP is
//!   master on the bond, and the host reaches the bond's address and the VIP;
//! - frames of VLAN 42 leave by the active member, tagged;
//! - cutting the active member (QMP `set_link off`) moves the bond to the other one without a
//!   VRRP change, and traffic goes on (the gap is printed);
//! - a reload that adds a VLAN touches nothing else: the bond's index and carrier changes and
//!   the members' are as before, VRRP stays master;
//! - a config whose network cuts the box off from its config source is undone within its
//!   `confirm_timeout` and refused; the previous network is back; one with no route to the
//!   source at all is refused before anything is touched, at its `[network]` line;
//! - lbd's API listens on the bond and a health check goes out from the bond's address.
//!
//! And LACP: two guests whose 802.3ad bonds are wired to each other NIC to NIC (QEMU datagram
//! sockets: a Linux bridge never forwards LACPDUs). The partner boots normally and serves the
//! other's config and a DHCP server on its bond (busybox httpd and udhcpd); the other boots over
//! its bond from the kernel command line alone (`bond=`, `ip=agg:dhcp`, no other NIC), gets its
//! address by DHCP over the bond, fetches its config through it and starts lbd. Both members reach collecting+distributing, read from netlink through lbd's
//! status API (`lbctl status --json`) and from the kernel's own report, and a cable cut keeps
//! every ping.
//!
//! Needs root, QEMU, tshark, ping, the kernel package (`tools/setup.sh`) and the test image.

use std::time::{Duration, Instant};

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::fresh::{binary, Profile};
use lbtest::ipvs::{boot_with_shell, ShellGuest};
use lbtest::{wait, MacAddr, Netns, Nic, StaticServer};

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(90);
const CMD: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

const SERVER: &str = "10.72.0.1";
const INSIDE_HOST: &str = "10.73.0.1";
const CONFIG_PORT: u16 = 8080;
const MAC0: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x72, 0x00, 0x10]);
const MAC1: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x72, 0x00, 0x11]);
const MAC2: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x72, 0x00, 0x12]);

/// The config: `extra_vlan` adds VLAN 43; `cut_off` moves eth0 to an address the config
/// server cannot answer (its subnet is a /24 that does not hold it).
fn config(api_tls: &str, extra_vlan: bool, cut_off: bool) -> String {
    let eth0 = if cut_off {
        "10.72.5.11/16"
    } else {
        "10.72.0.11/24"
    };
    let vlan43 = if extra_vlan {
        "\n[network.link.\"inside.43\"]\nkind = \"vlan\"\nparent = \"inside\"\nid = 43\naddresses = [\"10.75.0.11/24\"]\n"
    } else {
        ""
    };
    format!(
        r#"[node]
hostname = "lb"
api_listen = "10.73.0.11:9000"

[network]
confirm_timeout = "{timeout}"

[network.link.eth0]
addresses = ["{eth0}"]

[network.link.in1]
match = {{ mac = "{MAC1}" }}

[network.link.in2]
match = {{ mac = "{MAC2}" }}

[network.link.inside]
kind = "bond"
members = ["in1", "in2"]
mode = "active-backup"
primary = "in1"
miimon = "100ms"
addresses = ["10.73.0.11/24"]

[network.link."inside.42"]
kind = "vlan"
parent = "inside"
id = 42
addresses = ["10.74.0.11/24"]

[network.link."inside.44"]
kind = "vlan"
parent = "inside"
id = 44
addresses = ["10.76.0.11/24"]
{vlan43}
[vrrp.instance.VI_IN]
interface = "inside"
vrid = 73
priority = 150
advert_interval = "1s"
vips = ["10.73.0.100/24"]

[vrrp.instance.VI_V42]
interface = "inside.42"
vrid = 74
priority = 150
advert_interval = "1s"
vips = ["10.74.0.100/24"]

[vrrp.instance.VI_V44]
interface = "inside.44"
vrid = 75
priority = 150
advert_interval = "1s"
vips = ["10.76.0.100/24"]

# A check sent from the bond's address to a real on the inside segment.
[service.web]
vip = "10.73.0.100:80"
forwarding = "nat"
check = {{ type = "http", path = "/lb.toml", source_address = "10.73.0.11" }}

[[service.web.real]]
address = "10.73.0.1:8081"
{api_tls}"#,
        timeout = if cut_off { "8s" } else { "30s" },
    )
}

/// The TCP API's mutual TLS for this test's guests: a CA made for the run, a server
/// certificate for the node's and the partner's API addresses, and an admin client for lbctl.
struct ApiPki {
    /// The `[node.api.tls]` table of the configs.
    tls_toml: String,
    client: lbtest::tls::ClientFiles,
    _dir: tempfile::TempDir,
}

impl ApiPki {
    fn new() -> ApiPki {
        let ca = lbtest::tls::TestCa::new("node network test CA");
        let server = ca.server(&["10.73.0.11".parse().unwrap(), PARTNER_BOOT.parse().unwrap()]);
        let dir = tempfile::tempdir().unwrap();
        let client = ca
            .write_client(dir.path(), "admin", &ca.client("admin"))
            .unwrap();
        ApiPki {
            tls_toml: ca.api_tls_toml(&server, &[("admin", "admin")]),
            client,
            _dir: dir,
        }
    }

    /// `lbctl --url https://ADDR ...` with the client's files.
    fn lbctl(&self, ns: &Netns, addr: &str, args: &[&str]) -> Option<std::process::Output> {
        let lbctl = binary("lbctl", "lbctl", Profile::Debug);
        ns.command(&lbctl)
            .args(["--url", &format!("https://{addr}")])
            .args(self.client.lbctl_args())
            .args(args)
            .output()
            .ok()
    }
}

struct Lab {
    _http: StaticServer,
    /// The inside real the node's check reaches from the bond.
    _inside_http: StaticServer,
    configs: ConfigDir,
    ns: Netns,
    api: ApiPki,
}

impl Lab {
    fn start() -> Lab {
        let ns = Netns::new("nodenet").expect("network namespaces (run the tests as root)");
        for (br, addr) in [("br0", SERVER), ("br1", INSIDE_HOST)] {
            ns.add_bridge(br).unwrap();
            ns.add_addr(br, &format!("{addr}/24")).unwrap();
        }
        ns.add_tap("tap0", Some("br0")).unwrap();
        // Two switches: the bond's members on br1 and br2, the switches joined by a link.
        ns.add_bridge("br2").unwrap();
        ns.add_veth("isl1", "isl2").unwrap();
        ns.set_master("isl1", "br1").unwrap();
        ns.set_master("isl2", "br2").unwrap();
        ns.add_tap("tap1", Some("br1")).unwrap();
        ns.add_tap("tap2", Some("br2")).unwrap();
        let configs = ConfigDir::new().unwrap();
        let api = ApiPki::new();
        configs
            .publish("lb.toml", &config(&api.tls_toml, false, false))
            .unwrap();
        let http =
            StaticServer::start_in(&ns, configs.path(), SERVER.parse().unwrap(), CONFIG_PORT)
                .unwrap();
        let inside_http =
            StaticServer::start_in(&ns, configs.path(), INSIDE_HOST.parse().unwrap(), 8081)
                .unwrap();
        Lab {
            _http: http,
            _inside_http: inside_http,
            configs,
            ns,
            api,
        }
    }

    fn ping(&self, addr: &str) -> bool {
        self.ns.run(&["ping", "-c", "1", "-W", "1", addr]).is_ok()
    }
}

fn boot(lab: &Lab) -> ShellGuest {
    boot_with_shell(
        ApplianceBuilder::new("nodenet")
            .nic(Nic::tap("tap0", MAC0))
            .nic(Nic::tap("tap1", MAC1))
            .nic(Nic::tap("tap2", MAC2))
            .netns(&lab.ns)
            .append(format!("ip=10.72.0.11::{SERVER}:255.255.255.0:lb:eth0:off"))
            .poll("2s")
            .config_url(format!("http://{SERVER}:{CONFIG_PORT}/lb.toml")),
        BOOT,
    )
    .unwrap()
}

fn sh(g: &mut ShellGuest, cmd: &str) -> String {
    g.shell.run(cmd, CMD).unwrap()
}

/// The bond's active member, from the kernel's own report.
fn active_member(g: &mut ShellGuest) -> String {
    let report = sh(g, "cat /proc/net/bonding/inside");
    report
        .lines()
        .find_map(|l| l.strip_prefix("Currently Active Slave: "))
        .unwrap_or_else(|| panic!("no active member in\n{report}"))
        .trim()
        .to_string()
}

/// The node's status document, through its API on the bond from the host.
fn status(lab: &Lab) -> Option<serde_json::Value> {
    let out = lab
        .api
        .lbctl(&lab.ns, "10.73.0.11:9000", &["status", "--json"])?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Console lines matching `pattern` so far.
fn count(g: &ShellGuest, pattern: &str) -> usize {
    let re = regex::Regex::new(pattern).unwrap();
    g.guest
        .console()
        .lines()
        .iter()
        .filter(|l| re.is_match(l))
        .count()
}

/// What a reload must leave alone: the bond's and members' indexes and carrier changes.
fn link_marks(g: &mut ShellGuest) -> String {
    sh(
        g,
        "for l in inside in1 in2 inside.42 eth0; do echo $l $(cat /sys/class/net/$l/ifindex) $(cat /sys/class/net/$l/carrier_changes) $(cat /sys/class/net/$l/flags); done",
    )
}

#[test]
fn bond_vlan_reload_and_rollback() {
    let lab = Lab::start();
    let mut g = boot(&lab);
    g.guest
        .expect(r"network confirmed", BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    g.guest
        .expect(r"lbd:\s+INFO vrrp: VI_IN: BACKUP -> MASTER", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));

    // VRRP on both VLANs too (their lines may come before or after the bond's).
    for vi in ["VI_V42", "VI_V44"] {
        wait::expect(&format!("{vi} master on its VLAN"), STEP, POLL, || {
            count(&g, &format!("vrrp: {vi}: BACKUP -> MASTER")) == 1
        });
    }
    // The API listens on the bond, and the check goes out from the bond's address.
    wait::expect("the real is up, checked from the bond", STEP, POLL, || {
        status(&lab).is_some_and(|d| {
            d["services"][0]["reals"][0]["health"] == "up"
                && d["links"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|x| x["name"] == "inside" && x["bond"]["mode"] == "active-backup")
                })
        })
    });

    // The kernel's view of what init built.
    let bonding = sh(&mut g, "cat /proc/net/bonding/inside");
    for want in [
        "Bonding Mode: fault-tolerance (active-backup)",
        "Primary Slave: in1",
        "Currently Active Slave: in1",
        "Slave Interface: in1",
        "Slave Interface: in2",
        "MII Polling Interval (ms): 100",
    ] {
        assert!(bonding.contains(want), "{want:?} not in\n{bonding}");
    }
    let vlans = sh(&mut g, "cat /proc/net/vlan/config");
    assert!(
        vlans
            .lines()
            .any(|l| l.split('|').map(str::trim).collect::<Vec<_>>()
                == ["inside.42", "42", "inside"]),
        "{vlans}"
    );
    let addrs = sh(&mut g, "ip -4 addr show");
    for a in [
        "10.72.0.11/24",
        "10.73.0.11/24",
        "10.74.0.11/24",
        "10.73.0.100/24",
        "10.74.0.100/24",
        "10.76.0.100/24",
    ] {
        assert!(addrs.contains(a), "{a} not in\n{addrs}");
    }
    assert!(
        lab.ping("10.73.0.11") && lab.ping("10.73.0.100"),
        "the host reaches the bond and its VIP"
    );

    // VLAN 42 leaves tagged by the active member.
    let mut tshark = lab.ns.command("tshark");
    tshark.args([
        "-i",
        "tap1",
        "-a",
        "duration:10",
        "-l",
        "-Y",
        "vlan.id == 42 && arp",
        "-T",
        "fields",
        "-e",
        "vlan.id",
        "-e",
        "arp.dst.proto_ipv4",
    ]);
    let out = std::thread::scope(|s| {
        let capture = s.spawn(move || tshark.output().expect("tshark"));
        std::thread::sleep(Duration::from_secs(4));
        let _ = g.shell.run_status("ping -c 3 -W 1 10.74.0.99", CMD);
        capture.join().unwrap()
    });
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("42\t10.74.0.99"),
        "no tagged ARP on tap1:\n{seen}"
    );

    // Cut the active member: the bond moves, VRRP does not.
    let transitions_before = count(&g, r"vrrp: VI_IN: MASTER -> ");
    let mut pinger = lab.ns.command("ping");
    pinger.args(["-c", "150", "-i", "0.1", "-W", "1", "10.73.0.100"]);
    let ping = std::thread::scope(|s| {
        let pings = s.spawn(move || pinger.output().expect("ping"));
        std::thread::sleep(Duration::from_secs(3));
        let cut = Instant::now();
        g.guest
            .qmp()
            .execute(
                "set_link",
                Some(serde_json::json!({"name": "n1", "up": false})),
            )
            .unwrap();
        wait::expect("the bond moves to in2", STEP, POLL, || {
            active_member(&mut g) == "in2"
        });
        println!(
            "figure: bond member cut -> in2 active after {:?}",
            cut.elapsed()
        );
        pings.join().unwrap()
    });
    let text = String::from_utf8_lossy(&ping.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_string();
    println!("figure: pings to the VIP across the member cut: {summary}");
    let received: u32 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        received >= 100,
        "traffic stopped across the member cut: {summary}"
    );
    assert_eq!(
        count(&g, r"vrrp: VI_IN: MASTER -> "),
        transitions_before,
        "a member cut is not a VRRP failover"
    );
    g.guest
        .qmp()
        .execute(
            "set_link",
            Some(serde_json::json!({"name": "n1", "up": true})),
        )
        .unwrap();
    wait::expect("in1 is primary again", STEP, POLL, || {
        active_member(&mut g) == "in1"
    });

    // A reload that adds VLAN 43 touches nothing else.
    let marks = link_marks(&mut g);
    lab.configs
        .publish("lb.toml", &config(&lab.api.tls_toml, true, false))
        .unwrap();
    g.guest
        .expect(r"network applied: create VLAN inside\.43", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    g.guest.expect(r"network confirmed", STEP).unwrap();
    let applied = g
        .guest
        .console()
        .lines()
        .into_iter()
        .rev()
        .find(|l| l.contains("network applied:"))
        .unwrap_or_default();
    assert!(
        !applied.contains("inside.42") && !applied.contains("in1") && !applied.contains("eth0"),
        "the reload touched more than the new VLAN: {applied}"
    );
    assert_eq!(
        link_marks(&mut g),
        marks,
        "links that did not change were touched"
    );
    assert!(sh(&mut g, "ip -4 addr show dev inside.43").contains("10.75.0.11/24"));
    assert_eq!(
        count(&g, r"vrrp: VI_IN: MASTER -> "),
        transitions_before,
        "VRRP noticed the reload"
    );

    // A network that cuts the box off is undone and the config refused.
    lab.configs
        .publish("lb.toml", &config(&lab.api.tls_toml, true, true))
        .unwrap();
    g.guest
        .expect(
            r"did not answer within 8s: the previous network is back",
            STEP,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    let eth0 = sh(&mut g, "ip -4 addr show dev eth0");
    assert!(
        eth0.contains("10.72.0.11/24") && !eth0.contains("10.72.5.11"),
        "{eth0}"
    );
    assert!(lab.ping("10.72.0.11"), "the boot address answers again");

    // A network with no route to the config source at all is refused before anything is
    // touched, with the line of its [network].
    let unreachable =
        config(&lab.api.tls_toml, true, false).replace("\"10.72.0.11/24\"", "\"192.168.99.11/24\"");
    lab.configs.publish("lb.toml", &unreachable).unwrap();
    let refused = g
        .guest
        .expect(r"lb\.toml:\d+:1: error\[no-route-to-source\]: this network leaves no route to the config source 10\.72\.0\.1", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    assert!(refused.text().contains("no-route-to-source"));
    let eth0 = sh(&mut g, "ip -4 addr show dev eth0");
    assert!(
        eth0.contains("10.72.0.11/24") && !eth0.contains("192.168.99"),
        "{eth0}"
    );
    assert_no_fatal(g.guest.console());
    let lines = g.guest.console().lines();
    for l in lines
        .iter()
        .filter(|l| l.contains("init:") && l.contains("network"))
    {
        println!("console: {l}");
    }
    if let Some(running) = lines.iter().find(|l| l.contains("lbd running")) {
        println!(
            "figure: kernel -> lbd running with a bond and two VLANs applied first: {:?}",
            lbtest::appliance::stamp(running)
        );
    }
}

/// The partner: boot NIC on br0 (its config from the host), two NICs wired to the node.
const PARTNER_MACS: [MacAddr; 3] = [
    MacAddr([0x52, 0x54, 0x00, 0x77, 0x0b, 0x00]),
    MacAddr([0x52, 0x54, 0x00, 0x77, 0x0b, 0x01]),
    MacAddr([0x52, 0x54, 0x00, 0x77, 0x0b, 0x02]),
];
const PARTNER_BOOT: &str = "10.72.0.22";
const PARTNER_BOND: &str = "10.77.0.22";
/// The node: only the two wired NICs (eth0, eth1), booted over their bond.
const NODE_MACS: [MacAddr; 2] = [
    MacAddr([0x52, 0x54, 0x00, 0x77, 0x0a, 0x01]),
    MacAddr([0x52, 0x54, 0x00, 0x77, 0x0a, 0x02]),
];
/// The bond both ends make, in the kernel command line's words.
const LACP_BOND: &str = "bond=agg:eth0,eth1:mode=802.3ad,lacp_rate=fast,miimon=100";

fn partner_config(api_tls: &str) -> String {
    format!(
        r#"[node]
hostname = "partner"
api_listen = "{PARTNER_BOOT}:9000"

[network]
[network.link.eth0]
addresses = ["{PARTNER_BOOT}/24"]

[network.link.m1]
match = {{ mac = "{m1}" }}

[network.link.m2]
match = {{ mac = "{m2}" }}

[network.link.agg]
kind = "bond"
members = ["m1", "m2"]
mode = "802.3ad"
lacp_rate = "fast"
addresses = ["{PARTNER_BOND}/24"]
{api_tls}"#,
        m1 = PARTNER_MACS[1],
        m2 = PARTNER_MACS[2],
    )
}

/// The node's config, as the partner serves it: the command line's bond, the same way, so
/// taking it over changes nothing.
const NODE_CONFIG: &[&str] = &[
    "[node]",
    "hostname = \"lacp-node\"",
    "[network.link.eth0]",
    "[network.link.eth1]",
    "[network.link.agg]",
    "kind = \"bond\"",
    "members = [\"eth0\", \"eth1\"]",
    "mode = \"802.3ad\"",
    "lacp_rate = \"fast\"",
    "dhcp = true",
];

/// busybox udhcpd on the partner's bond: the node's address over the bond.
const PARTNER_DHCPD: &[&str] = &[
    "interface agg",
    "start 10.77.0.30",
    "end 10.77.0.40",
    "option subnet 255.255.255.0",
    "option router 10.77.0.22",
    "lease_file /tmp/udhcpd.leases",
    "pidfile /tmp/udhcpd.pid",
];

/// The partner's status document, through its API from the host.
fn partner_status(lab: &Lab) -> Option<serde_json::Value> {
    let out = lab.api.lbctl(
        &lab.ns,
        &format!("{PARTNER_BOOT}:9000"),
        &["status", "--json"],
    )?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Each member of `agg` and whether LACP has it collecting and distributing.
fn lacp_members(doc: &serde_json::Value) -> Vec<(String, bool)> {
    doc["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["name"] == "agg")
        .flat_map(|l| l["bond"]["members"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["lacp"]["collecting_distributing"].as_bool() == Some(true),
            )
        })
        .collect()
}

#[test]
fn boot_over_an_lacp_bond() {
    let lab = Lab::start();
    let wires = tempfile::Builder::new()
        .prefix("lbtest-wire-")
        .tempdir()
        .unwrap();
    let end = |n: &str| wires.path().join(format!("{n}.sock"));

    lab.ns.add_tap("tapp", Some("br0")).unwrap();
    lab.configs
        .publish("partner.toml", &partner_config(&lab.api.tls_toml))
        .unwrap();
    let mut partner = boot_with_shell(
        ApplianceBuilder::new("lacp-partner")
            .nic(Nic::tap("tapp", PARTNER_MACS[0]))
            .nic(Nic::wire(end("p1"), end("n1"), PARTNER_MACS[1]))
            .nic(Nic::wire(end("p2"), end("n2"), PARTNER_MACS[2]))
            .netns(&lab.ns)
            .append(format!(
                "ip={PARTNER_BOOT}::{SERVER}:255.255.255.0:partner:eth0:off"
            ))
            .config_url(format!("http://{SERVER}:{CONFIG_PORT}/partner.toml")),
        BOOT,
    )
    .unwrap();
    partner
        .guest
        .expect(r"network confirmed", BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", partner.guest.report()));
    // The node's config, served on the partner's bond.
    sh(&mut partner, "mkdir -p /tmp/w");
    for line in NODE_CONFIG {
        sh(&mut partner, &format!("echo '{line}' >> /tmp/w/node.toml"));
    }
    sh(&mut partner, "busybox httpd -p 8080 -h /tmp/w");
    for line in PARTNER_DHCPD {
        sh(&mut partner, &format!("echo '{line}' >> /tmp/udhcpd.conf"));
    }
    sh(
        &mut partner,
        "touch /tmp/udhcpd.leases; busybox udhcpd /tmp/udhcpd.conf",
    );

    let node = boot_with_shell(
        ApplianceBuilder::new("lacp-node")
            .nic(Nic::wire(end("n1"), end("p1"), NODE_MACS[0]))
            .nic(Nic::wire(end("n2"), end("p2"), NODE_MACS[1]))
            .netns(&lab.ns)
            .append(LACP_BOND)
            .append("ip=agg:dhcp")
            .config_url(format!("http://{PARTNER_BOND}:8080/node.toml")),
        BOOT,
    )
    .unwrap();
    node.guest
        .expect(r"lbd:\s+INFO lbd running", BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.guest.report()));
    let mut node = node;
    let lines = node.guest.console().lines();
    let running = lines.iter().find(|l| l.contains("lbd running")).unwrap();
    println!(
        "figure: kernel -> lbd running, booted over an 802.3ad bond from the command line: {:?}",
        lbtest::appliance::stamp(running)
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("links of the kernel command line made")),
        "the bond came from the command line"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("network up device=agg address=10.77.0.3")
                && l.contains("dhcp=true")),
        "the node's address came by DHCP over the bond"
    );
    // The config describes the command line's bond the same way: nothing more to change.
    let applied: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("network applied"))
        .collect();
    assert_eq!(applied.len(), 1, "{applied:#?}");
    assert!(
        applied[0].contains("create bond agg (802.3ad)"),
        "{applied:#?}"
    );

    // LACP agrees on both members, as the partner's lbd reads it from netlink.
    let agreed = Instant::now();
    wait::expect("both members collecting+distributing", STEP, POLL, || {
        partner_status(&lab).is_some_and(|d| {
            let m = lacp_members(&d);
            m.len() == 2 && m.iter().all(|(_, ok)| *ok)
        })
    });
    println!(
        "figure: LACP agreed {:?} after the node's lbd started",
        agreed.elapsed()
    );
    // The node's kernel agrees: its partner is the partner's bond.
    let report = sh(&mut node, "cat /proc/net/bonding/agg");
    assert!(
        report.contains("Bonding Mode: IEEE 802.3ad Dynamic link aggregation"),
        "{report}"
    );
    assert!(
        report
            .to_ascii_lowercase()
            .contains(&format!("partner mac address: {}", PARTNER_MACS[1])),
        "{report}"
    );

    // A cable cut (both ends lose carrier) while pings run: traffic goes on over the other
    // member, and lbd shows which one is out. (The pings run in the foreground: a background
    // job on the debug shell's serial line ends the shell.)
    let out = std::thread::scope(|s| {
        let shell = &mut node.shell;
        let pings = s.spawn(move || shell.run(&format!("ping -c 60 -i .2 {PARTNER_BOND}"), STEP));
        std::thread::sleep(Duration::from_secs(4));
        // One cable: the node's first NIC (netdev n0) to the partner's m1 (netdev n1).
        for (g, netdev) in [(&node.guest, "n0"), (&partner.guest, "n1")] {
            g.qmp()
                .execute(
                    "set_link",
                    Some(serde_json::json!({"name": netdev, "up": false})),
                )
                .unwrap();
        }
        pings.join().unwrap().unwrap()
    });
    wait::expect("m1 leaves the aggregate", STEP, POLL, || {
        partner_status(&lab)
            .is_some_and(|d| lacp_members(&d) == [("m1".into(), false), ("m2".into(), true)])
    });
    let summary = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_string();
    // busybox ping: "64 bytes from 10.77.0.22: seq=N ttl=64 time=1.2 ms".
    let seqs: Vec<u32> = out
        .lines()
        .filter_map(|l| {
            l.split("seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let gap = seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    println!(
        "figure: pings over the LACP bond across a cable cut: {summary}; longest gap {} ms",
        u64::from(gap.saturating_sub(1)) * 200
    );
    assert!(
        (50..60).all(|s| seqs.contains(&s)),
        "traffic did not come back after the cable cut:\n{out}"
    );
    assert_no_fatal(node.guest.console());
    assert_no_fatal(partner.guest.console());
}

/// A config's link on DHCP (not the boot link): init runs a client on it, and stops it when
/// a later config gives the link a static address.
#[test]
fn dhcp_on_a_config_link() {
    let lab = Lab::start();
    let dir = tempfile::Builder::new()
        .prefix("lbtest-dhcp-")
        .tempdir()
        .unwrap();
    let log = dir.path().join("dnsmasq.log");
    let mut dnsmasq = lab.ns.command("dnsmasq");
    dnsmasq.args([
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--port=0".into(),
        "--interface=br1".into(),
        "--bind-interfaces".into(),
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", dir.path().join("d.pid").display()),
        format!("--dhcp-leasefile={}", dir.path().join("d.leases").display()),
        format!("--log-facility={}", log.display()),
        "--log-dhcp".into(),
        "--no-ping".into(),
        "--dhcp-range=10.73.0.50,10.73.0.60,255.255.255.0,1h".into(),
    ]);
    let _dnsmasq = lbtest::ChildGuard::spawn(&mut dnsmasq).expect("dnsmasq");
    let config = |dhcp: bool| {
        let inside = if dhcp {
            "dhcp = true"
        } else {
            "addresses = [\"10.73.0.9/24\"]"
        };
        format!(
            "[node]\nhostname = \"lb\"\n\n[network]\n[network.link.eth0]\naddresses = [\"10.72.0.11/24\"]\n\n[network.link.eth1]\n{inside}\n"
        )
    };
    lab.configs.publish("lb.toml", &config(true)).unwrap();
    let mut g = boot_with_shell(
        ApplianceBuilder::new("nodenet-dhcp")
            .nic(Nic::tap("tap0", MAC0))
            .nic(Nic::tap("tap1", MAC1))
            .netns(&lab.ns)
            .append(format!("ip=10.72.0.11::{SERVER}:255.255.255.0:lb:eth0:off"))
            .poll("2s")
            .config_url(format!("http://{SERVER}:{CONFIG_PORT}/lb.toml")),
        BOOT,
    )
    .unwrap();
    g.guest
        .expect(r"DHCP lease on a config's link", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    let eth1 = sh(&mut g, "ip -4 addr show dev eth1");
    assert!(
        eth1.contains("inet 10.73.0.5") || eth1.contains("inet 10.73.0.60"),
        "{eth1}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("DHCPACK(br1)"),
        "dnsmasq handed out no lease"
    );
    assert!(lab.ping("10.72.0.11"), "the boot link is untouched");

    // Static from now on: the client stops, the static address is added.
    lab.configs.publish("lb.toml", &config(false)).unwrap();
    g.guest
        .expect(r"DHCP stopped: the config no longer asks for it", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    wait::expect("the static address on eth1", STEP, POLL, || {
        sh(&mut g, "ip -4 addr show dev eth1").contains("10.73.0.9/24")
    });
    assert_no_fatal(g.guest.console());
}

/// The config takes the boot NIC into a bond (with the address it booted with): the NIC is
/// taken down, flushed and enslaved first so the bond keeps its MAC, the bond comes up with the
/// address, the config source answers again and lbd starts.
#[test]
fn the_boot_nic_goes_into_a_bond() {
    let lab = Lab::start();
    lab.ns.add_tap("tapx", Some("br0")).unwrap();
    let config = format!(
        r#"[node]
hostname = "lb"

[network]
[network.link.eth0]
[network.link.eth1]
[network.link.outside]
kind = "bond"
members = ["eth0", "eth1"]
mode = "active-backup"
primary = "eth0"
addresses = ["10.72.0.11/24"]
route = [{{ to = "default", via = "{SERVER}" }}]
"#
    );
    lab.configs.publish("lb.toml", &config).unwrap();
    let mut g = boot_with_shell(
        ApplianceBuilder::new("nodenet-bootbond")
            .nic(Nic::tap("tap0", MAC0))
            .nic(Nic::tap("tapx", MAC1))
            .netns(&lab.ns)
            .append(format!("ip=10.72.0.11::{SERVER}:255.255.255.0:lb:eth0:off"))
            .config_url(format!("http://{SERVER}:{CONFIG_PORT}/lb.toml")),
        BOOT,
    )
    .unwrap();
    g.guest
        .expect(r"network confirmed", BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    g.guest
        .expect(r"lbd:\s+INFO lbd running", STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    let bond = sh(&mut g, "ip addr show dev outside");
    assert!(bond.contains("inet 10.72.0.11/24"), "{bond}");
    assert!(
        bond.contains(&MAC0.to_string()),
        "the bond keeps the boot NIC's MAC:\n{bond}"
    );
    let eth0 = sh(&mut g, "ip -4 addr show dev eth0");
    assert!(
        !eth0.contains("inet "),
        "the member has no address of its own:\n{eth0}"
    );
    let routes = sh(&mut g, "ip route show default");
    assert!(routes.contains("dev outside"), "{routes}");
    wait::expect("the host reaches the bond", STEP, POLL, || {
        lab.ping("10.72.0.11")
    });
    assert_no_fatal(g.guest.console());
}
