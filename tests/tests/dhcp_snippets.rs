//! The DHCP server snippets of pxe/README.md, run for real: dnsmasq and ISC dhcpd, each with
//! the README's block (read from the README, with the lab's addresses) in a network namespace,
//! and busybox's udhcpc in another one asking as the clients a balancer's boot goes through:
//! BIOS and UEFI firmware (option 93 = 0, 7, 9), UEFI HTTP boot (93 = 16, vendor class
//! `HTTPClient`), iPXE (option 175 and user class `iPXE`) and init (neither). Each must get the
//! boot file and next server the README promises.
//!
//! Needs root (namespaces), dnsmasq, isc-dhcp-server and busybox (tools/setup.sh).

#[path = "pxe_support/mod.rs"]
mod pxe_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lbtest::{ChildGuard, Netns};
use pxe_support::{assert_logged, lab_addresses, readme_snippet, HTTP_PORT, SERVER};

/// The DHCP server's own address: not pxe's, so a next server of [`SERVER`] is the
/// snippet's doing, not the server naming itself.
const DHCP_SERVER: &str = "10.66.0.2";

/// One kind of client and what it must be told.
struct Ask {
    what: &'static str,
    /// udhcpc `-x` options and `-V` vendor class.
    options: &'static [&'static str],
    vendor: &'static str,
    /// The boot file (the reply's `file` field), `{S}` for pxe's address.
    boot_file: &'static str,
    /// The next server (`siaddr`) must be pxe: for boot files fetched by TFTP.
    by_tftp: bool,
    /// The reply must carry option 60 = `HTTPClient`.
    http_client: bool,
}

/// Option 93 (client architecture) as udhcpc sends raw options.
const ASKS: &[Ask] = &[
    Ask {
        what: "BIOS firmware (arch 0)",
        options: &["0x5d:0000"],
        vendor: "PXEClient:Arch:00000:UNDI:002001",
        boot_file: "undionly.kpxe",
        by_tftp: true,
        http_client: false,
    },
    Ask {
        what: "UEFI firmware (arch 7)",
        options: &["0x5d:0007"],
        vendor: "PXEClient:Arch:00007:UNDI:003000",
        boot_file: "snponly.efi",
        by_tftp: true,
        http_client: false,
    },
    Ask {
        what: "UEFI firmware (arch 9)",
        options: &["0x5d:0009"],
        vendor: "PXEClient:Arch:00009:UNDI:003000",
        boot_file: "snponly.efi",
        by_tftp: true,
        http_client: false,
    },
    Ask {
        what: "UEFI HTTP boot (arch 16)",
        options: &["0x5d:0010"],
        vendor: "HTTPClient:Arch:00016:UNDI:003000",
        boot_file: "http://{S}:8080/ipxe/snponly.efi",
        by_tftp: false,
        http_client: true,
    },
    Ask {
        // What iPXE sends: option 175 (its feature list, here one sub-option) and user class.
        what: "iPXE on BIOS (175, arch 0)",
        options: &["0x5d:0000", "0xaf:130101", "0x4d:69505845"],
        vendor: "PXEClient:Arch:00000:UNDI:002001",
        boot_file: "http://{S}:8080/boot.ipxe",
        by_tftp: false,
        http_client: false,
    },
    Ask {
        what: "iPXE on UEFI (175, arch 7)",
        options: &["0x5d:0007", "0xaf:130101", "0x4d:69505845"],
        vendor: "PXEClient:Arch:00007:UNDI:003010",
        boot_file: "http://{S}:8080/boot.ipxe",
        by_tftp: false,
        http_client: false,
    },
    Ask {
        // init's own DHCP client: no 93, no 175. It ignores the boot file; the answer shows
        // the loop guard (never pxe's script to a client that is not iPXE).
        what: "init (no 93, no 175)",
        options: &[],
        vendor: "lb-init",
        boot_file: "undionly.kpxe",
        by_tftp: true,
        http_client: false,
    },
];

/// A DHCP server namespace and a client namespace joined by a veth pair.
struct Segment {
    dir: tempfile::TempDir,
    server: Netns,
    client: Netns,
}

impl Segment {
    fn new(tag: &str) -> Segment {
        let dir = tempfile::tempdir().unwrap();
        let server = Netns::new(tag).expect("network namespaces (run the tests as root)");
        let client = Netns::new(&format!("{tag}-c")).expect("a client namespace");
        server.add_veth_to("eth0", &client, "eth0").unwrap();
        server
            .add_addr("eth0", &format!("{DHCP_SERVER}/24"))
            .unwrap();
        client.link_up("eth0").unwrap();
        Segment {
            dir,
            server,
            client,
        }
    }

    /// One DHCP exchange by udhcpc as `ask`: the variables udhcpc hands its script on
    /// `bound` (`boot_file`, `siaddr`, `ip`, `optNN` for options it has no name for).
    fn ask(&self, ask: &Ask) -> BTreeMap<String, String> {
        let script = self.dir.path().join("udhcpc.sh");
        if !script.exists() {
            std::fs::write(
                &script,
                "#!/bin/sh\n[ \"$1\" = bound ] && env > \"$LB_DHCP_OUT\"\nexit 0\n",
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = self.dir.path().join("bound.env");
        let _ = std::fs::remove_file(&out);
        let mut cmd = self.client.command("busybox");
        // -q: quit once bound; -n: fail if no lease; 3 discovers 1 s apart; ask for
        // option 60 as HTTP boot firmware does, so a server that sends options only on
        // request (ISC) sends it.
        cmd.args([
            "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1", "-i", "eth0", "-O", "60",
        ])
        .arg("-s")
        .arg(&script)
        .args(["-V", ask.vendor])
        .env("LB_DHCP_OUT", &out);
        for o in ask.options {
            cmd.args(["-x", o]);
        }
        let res = lbtest::process::run(&mut cmd);
        assert!(res.is_ok(), "{}: udhcpc got no lease: {res:?}", ask.what);
        std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{}: udhcpc's script did not run: {e}", ask.what))
            .lines()
            .filter_map(|l| l.split_once('='))
            // udhcpc's own variables are lower case; the rest is the test's environment.
            .filter(|(k, _)| k.starts_with(|c: char| c.is_ascii_lowercase()))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Asks as every client and checks every answer, each client with a MAC of its own; then
    /// one machine's whole boot on one MAC within seconds (firmware, the iPXE it loaded, init),
    /// as a server that remembers its last answer for a lease would get it wrong.
    fn check_all(&self, server: &str, log: &Path) {
        for (i, ask) in ASKS.iter().enumerate() {
            self.set_mac(&format!("52:54:00:77:00:{i:02x}"));
            self.check(server, log, ask);
        }
        for (mac, boot) in [
            ("52:54:00:77:01:00", [0, 4, 6]),
            ("52:54:00:77:01:01", [1, 5, 6]),
        ] {
            self.set_mac(mac);
            for i in boot {
                self.check(server, log, &ASKS[i]);
            }
        }
    }

    fn set_mac(&self, mac: &str) {
        self.client
            .ip(&["link", "set", "eth0", "address", mac])
            .unwrap();
    }

    /// One exchange as `ask`, and its answer checked.
    fn check(&self, server: &str, log: &Path, ask: &Ask) {
        let got = self.ask(ask);
        let want = ask
            .boot_file
            .replace("{S}", SERVER)
            .replace("8080", &HTTP_PORT.to_string());
        let context = || {
            format!(
                "{server}, {}: {got:?}\n{}",
                ask.what,
                std::fs::read_to_string(log).unwrap_or_default()
            )
        };
        assert_eq!(
            got.get("boot_file").map(String::as_str),
            Some(want.as_str()),
            "{}",
            context()
        );
        if ask.by_tftp {
            assert_eq!(
                got.get("siaddr").map(String::as_str),
                Some(SERVER),
                "next server: {}",
                context()
            );
        }
        // Option 60 in the reply (udhcpc calls it `vendor`).
        let vendor = got.get("vendor").map(String::as_str);
        if ask.http_client {
            assert_eq!(vendor, Some("HTTPClient"), "option 60: {}", context());
        } else {
            assert_eq!(vendor, None, "option 60: {}", context());
        }
        eprintln!(
            "{server}: {:<28} -> boot file {want}, next server {}",
            ask.what,
            got.get("siaddr").map_or("-", String::as_str)
        );
    }
}

#[test]
fn the_readme_dnsmasq_snippet_answers_bios_uefi_http_and_ipxe_clients() {
    let seg = Segment::new("dhcp-dnsmasq");
    let conf = seg.dir.path().join("dnsmasq.conf");
    std::fs::write(
        &conf,
        lab_addresses(&readme_snippet("### dnsmasq as the DHCP server")) + "no-ping\n",
    )
    .unwrap();
    let log = seg.dir.path().join("dnsmasq.log");
    let mut cmd = seg.server.command("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--interface=eth0",
        "--bind-interfaces",
        "--user=root",
        "--group=root",
        "--log-dhcp",
    ])
    .arg(format!("--conf-file={}", conf.display()))
    .arg(format!(
        "--pid-file={}",
        seg.dir.path().join("dnsmasq.pid").display()
    ))
    .arg(format!(
        "--dhcp-leasefile={}",
        seg.dir.path().join("dnsmasq.leases").display()
    ))
    .arg(format!("--log-facility={}", log.display()))
    .stdin(Stdio::null());
    let _dnsmasq = ChildGuard::spawn(&mut cmd).expect("dnsmasq (apt-get install dnsmasq-base)");
    assert_logged(&log, "DHCP, IP range", Duration::from_secs(10));
    seg.check_all("dnsmasq", &log);
}

#[test]
fn the_readme_isc_dhcpd_snippet_answers_bios_uefi_http_and_ipxe_clients() {
    let seg = Segment::new("dhcp-isc");
    let conf = seg.dir.path().join("dhcpd.conf");
    std::fs::write(&conf, lab_addresses(&readme_snippet("### ISC dhcpd"))).unwrap();
    let leases = seg.dir.path().join("dhcpd.leases");
    std::fs::write(&leases, "").unwrap();
    let log = seg.dir.path().join("dhcpd.log");
    let mut cmd = seg.server.command("dhcpd");
    // -f -d: foreground, log to stderr; its own config, leases and pid file; this interface.
    cmd.args(["-4", "-f", "-d", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(seg.dir.path().join("dhcpd.pid"))
        .arg("eth0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let _dhcpd = ChildGuard::spawn(&mut cmd).expect("dhcpd (apt-get install isc-dhcp-server)");
    assert_logged(&log, "Sending on   LPF/eth0", Duration::from_secs(10));
    seg.check_all("ISC dhcpd", &log);
}
