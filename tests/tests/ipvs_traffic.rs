//! Real traffic through the IPVS table lbd programs, inside one guest: network namespaces and
//! veth pairs (busybox `unshare`/`nsenter`/`ip`/`brctl`) for a client and real servers, busybox
//! `httpd` on each real, busybox `nc` as the client.
//!
//! ```text
//!   client 10.70.0.2 ─┐                      brB 10.80.0.1 ── NAT reals r11 .11 (w3), r12 .12 (w1)
//!   DR reals .11 .12 ─┼─ brA 10.70.0.1 [lb]                   (default route via the lb)
//!   TUN real .21 ─────┘   VIPs .100 (NAT) .101 (DR, persistent) .102 (TUN)
//! ```
//!
//! NAT: the balancer is the reals' gateway. DR: the reals hold the VIP on `lo` with
//! arp_ignore=1 / arp_announce=2 and answer the client directly. TUN: the real decapsulates on
//! `tunl0`, which holds the VIP. Requests spread by weight; persistence pins a client; a
//! long-lived TCP connection keeps flowing across a reload that changes other services and
//! across a kill -9 and restart of lbd.

use std::time::Duration;

use lbtest::appliance::{assert_no_fatal, ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, GuestShell};

const BOOT: Duration = Duration::from_secs(120);
const STEP: Duration = Duration::from_secs(45);
const CMD: Duration = Duration::from_secs(60);
const APPLIED: &str = r"lbd:\s+INFO ipvs applied: (?P<s>services \S+ \S+ \S+, reals \S+ \S+ \S+, other \d+, \d+ errors?)";

const CONFIG: &str = r#"
[node.sysctl]
"net.ipv4.ip_forward" = 1

[vrrp.instance.V]
interface = "eth0"
vrid = 70
priority = 100
vips = ["10.70.0.100/32", "10.70.0.101/32", "10.70.0.102/32"]

[service.web_nat]
vip = "10.70.0.100:80"
scheduler = "wrr"
forwarding = "nat"

[[service.web_nat.real]]
address = "10.80.0.11:80"
weight = 3

[[service.web_nat.real]]
address = "10.80.0.12:80"
weight = 1

[service.echo]
vip = "10.70.0.100:9000"
scheduler = "rr"
forwarding = "nat"

[[service.echo.real]]
address = "10.80.0.11:9000"

[service.web_dr]
vip = "10.70.0.101:80"
scheduler = "rr"
forwarding = "dr"
persistence = { timeout = "5m", netmask = 24 }

[[service.web_dr.real]]
address = "10.70.0.11"

[[service.web_dr.real]]
address = "10.70.0.12"

[service.web_tun]
vip = "10.70.0.102:80"
scheduler = "rr"
forwarding = "tun"

[[service.web_tun.real]]
address = "10.70.0.21"
"#;

/// Shell functions: `mk NS` makes a namespace held by a sleeping process, `inn NS CMD...` runs
/// in it, `attach NS BRIDGE ADDR [GW]` gives it an eth0 on the bridge, `www NS` serves its name.
const FUNCTIONS: &[&str] = &[
    r#"mk() { (unshare -n sh -c "echo \$\$ > /tmp/ns_$1.pid; exec sleep 100000" &); for i in 1 2 3 4 5 6 7 8 9 10; do [ -s /tmp/ns_$1.pid ] && break; sleep 0.2; done; [ -s /tmp/ns_$1.pid ]; }"#,
    r#"inn() { n=$1; shift; nsenter -t $(cat /tmp/ns_$n.pid) -n "$@"; }"#,
    r#"attach() { ip link add h_$1 type veth && ip link set veth0 name p_$1 && ip link set p_$1 netns $(cat /tmp/ns_$1.pid) && brctl addif $2 h_$1 && ip link set h_$1 up && inn $1 ip link set p_$1 name eth0 && inn $1 ip addr add $3/24 dev eth0 && inn $1 ip link set eth0 up && inn $1 ip link set lo up && { [ -z "$4" ] || inn $1 ip route add default via $4; }; }"#,
    r#"www() { mkdir -p /tmp/www/$1 && echo $1 > /tmp/www/$1/index.html && (inn $1 httpd -f -p 80 -h /tmp/www/$1 &); }"#,
    r#"bridge() { ip link add $1 type bridge && ip addr add $2/24 dev $1 && ip link set $1 up; }"#,
];

const TOPOLOGY: &[&str] = &[
    "echo 1 > /proc/sys/net/ipv4/ip_forward",
    "bridge brA 10.70.0.1 && bridge brB 10.80.0.1",
    "for v in 100 101 102; do ip addr add 10.70.0.$v/32 dev brA; done",
    "mk c && attach c brA 10.70.0.2",
    // NAT reals: the balancer is their gateway.
    "mk r11 && attach r11 brB 10.80.0.11 10.80.0.1 && www r11",
    "mk r12 && attach r12 brB 10.80.0.12 10.80.0.1 && www r12",
    "(inn r11 nc -ll -p 9000 -e cat &)",
    // DR reals: the VIP on lo, never answered for in ARP.
    "for r in d11:11 d12:12; do n=${r%:*}; a=${r#*:}; mk $n && attach $n brA 10.70.0.$a && inn $n ip addr add 10.70.0.101/32 dev lo && inn $n sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 && www $n || exit 1; done",
    // TUN real: decapsulates on tunl0, which holds the VIP.
    "mk t21 && attach t21 brA 10.70.0.21 && inn t21 ip link set tunl0 up && inn t21 ip addr add 10.70.0.102/32 dev tunl0 && inn t21 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.default.rp_filter=0 && www t21",
    "sleep 1",
];

/// Answers to `n` HTTP GETs of `vip` port 80 from the client (each a new connection), counted
/// per body. (busybox nc: the static busybox's wget crashes on its NSS lookups.)
fn spread(sh: &mut GuestShell, vip: &str, n: u32) -> Vec<(String, u32)> {
    let out = sh
        .run(
            &format!("for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | inn c nc -w 5 {vip} 80 | tail -1 | grep . || echo FAILED; done | sort | uniq -c"),
            CMD,
        )
        .unwrap();
    let mut counts: Vec<(String, u32)> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let count = w.next()?.parse().ok()?;
            Some((w.next()?.to_string(), count))
        })
        .collect();
    counts.sort();
    counts
}

/// Lines the long-lived connection has echoed so far.
fn echoed(sh: &mut GuestShell) -> u32 {
    sh.run("wc -l < /tmp/ll.out", CMD)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn assert_still_flowing(sh: &mut GuestShell, what: &str) {
    let before = echoed(sh);
    sh.run("sleep 3", CMD).unwrap();
    let after = echoed(sh);
    assert!(
        after >= before + 2,
        "{what}: the long-lived connection stopped ({before} then {after} lines echoed)"
    );
    let alive = sh.run_status("pidof nc", CMD).unwrap();
    assert_eq!(alive.status, 0, "{what}: nc is gone");
}

#[test]
fn ipvs_traffic_nat_dr_tun_weights_persistence_and_a_long_connection() {
    let dir = ConfigDir::new().unwrap();
    dir.publish("lb.toml", CONFIG).unwrap();
    let mut sg = boot_with_shell(
        ApplianceBuilder::new("ipvs-traffic")
            .tftp(dir.path())
            .config_url("tftp://10.0.2.2/lb.toml")
            .poll("1s"),
        BOOT,
    )
    .unwrap();
    let applied = sg
        .guest
        .expect(r"lbd:\s+INFO ipvs applied: .* 0 errors", BOOT)
        .unwrap();
    assert!(applied.line.contains("services +4"), "{}", applied.line);
    let sh = &mut sg.shell;
    for f in FUNCTIONS.iter().chain(TOPOLOGY) {
        sh.run(f, CMD).unwrap();
    }

    // NAT, weights 3:1 under wrr: 40 new connections split 30/10.
    let nat = spread(sh, "10.70.0.100", 40);
    assert_eq!(
        nat,
        [("r11".to_string(), 30), ("r12".to_string(), 10)],
        "NAT spread by weight"
    );

    // DR with persistence: every request of this client goes to one real.
    let dr = spread(sh, "10.70.0.101", 10);
    assert_eq!(
        dr.len(),
        1,
        "persistence pins the client to one real: {dr:?}"
    );
    assert!(
        dr[0].0 == "d11" || dr[0].0 == "d12",
        "a DR real answered: {dr:?}"
    );
    assert_eq!(dr[0].1, 10, "{dr:?}");
    // The persistence template covers the client's /24 (netmask 24): source 10.70.0.0:0.
    let conns = sh.run("ipvsadm -Lnc", CMD).unwrap();
    assert!(
        conns
            .lines()
            .any(|l| l.contains("10.70.0.0:0") && l.contains("10.70.0.101:80")),
        "DR persistence template:\n{conns}"
    );

    // TUN: the real decapsulates and answers.
    let tun = spread(sh, "10.70.0.102", 3);
    assert_eq!(tun, [("t21".to_string(), 3)], "TUN");

    // A long-lived TCP connection through the NAT VIP: a line a second, echoed back.
    sh.run(
        "(inn c sh -c '(while true; do echo ping; sleep 1; done) | nc 10.70.0.100 9000 > /tmp/ll.out' &)",
        CMD,
    )
    .unwrap();
    sh.run("sleep 3", CMD).unwrap();
    assert_still_flowing(sh, "before any change");

    // A reload that changes other services (a weight, a new service).
    let changed = CONFIG.replacen("weight = 3", "weight = 2", 1)
        + "\n[service.extra]\nvip = \"10.70.0.100:81\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n\n[[service.extra.real]]\naddress = \"10.80.0.12:80\"\n";
    dir.publish("lb.toml", &changed).unwrap();
    let m = sg.guest.expect(APPLIED, STEP).unwrap();
    assert_eq!(
        m.name("s"),
        Some("services +1 ~0 -0, reals +1 ~1 -0, other 0, 0 errors"),
        "{}",
        m.line
    );
    let sh = &mut sg.shell;
    assert_still_flowing(sh, "after a reload");

    // kill -9 lbd: init restarts it, it adopts the table, the connection never notices.
    sh.run("kill -9 $(pidof lbd)", CMD).unwrap();
    let m = sg.guest.expect(APPLIED, STEP).unwrap();
    assert_eq!(
        m.name("s"),
        Some("services +0 ~0 -0, reals +0 ~0 -0, other 0, 0 errors"),
        "{}",
        m.line
    );
    let sh = &mut sg.shell;
    assert_still_flowing(sh, "after kill -9 and restart of lbd");
    let conns = sh.run("ipvsadm -Lnc", CMD).unwrap();
    assert!(
        conns
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains("10.70.0.100:9000")),
        "the long connection's IPVS entry:\n{conns}"
    );
    // NAT still serves new connections with the new weights (2:1).
    let nat = spread(sh, "10.70.0.100", 30);
    assert_eq!(
        nat,
        [("r11".to_string(), 20), ("r12".to_string(), 10)],
        "NAT spread after the weight change"
    );
    assert_no_fatal(sg.guest.console());
}
