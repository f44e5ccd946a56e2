//! UEFI beside BIOS over the whole PXE chain: a UEFI guest (OVMF) whose firmware PXE-boots by
//! itself (DHCP with client architecture 7, `snponly.efi` by TFTP from pxe, that iPXE on the
//! firmware's network interface, pxe's scripts, kernel and initramfs by HTTP, init, its config)
//! and a BIOS guest (QEMU's iPXE ROM) boot side by side from one pxe and one dnsmasq, which
//! runs with pxe/README.md's snippet as it stands. A second test boots a UEFI guest by UEFI
//! HTTP boot: the firmware fetches `snponly.efi` itself from pxe's `/ipxe/` URL.
//!
//! Needs root, QEMU, OVMF (`ovmf`), dnsmasq, the kernel package and the built image
//! (tools/setup.sh, tools/build-image.sh) and `pxe`, built from the current source by the
//! harness. OVMF under TCG is slow: the timeouts are generous, and the figures printed.

#[path = "pxe_support/mod.rs"]
mod pxe_support;

use std::time::{Duration, Instant};

use lbtest::appliance::{assert_no_fatal, lines_containing, LbdRunning, LBD_RUNNING};
use lbtest::{Guest, MacAddr};
use pxe_support::{pxe_binary, Dhcp, Lab, PxeBalancer, HTTP_PORT, SERVER};

/// QEMU start to lbd running for a UEFI guest under TCG beside another booting guest on a
/// 2-core machine: OVMF alone takes tens of seconds to reach its PXE client.
const UEFI_CHAIN: Duration = Duration::from_secs(600);
/// The same by HTTP boot (with PXE on, OVMF would first spend about two minutes of DHCP
/// timeouts under TCG on PXE over IPv4 and IPv6; the test turns it off).
const UEFI_HTTP_CHAIN: Duration = Duration::from_secs(900);
/// A BIOS guest from QEMU's iPXE ROM (as in pxe_chain).
const BIOS_CHAIN: Duration = Duration::from_secs(300);

fn running(g: &Guest, timeout: Duration, lab: &Lab, i: usize) -> LbdRunning {
    let m = g.expect(LBD_RUNNING, timeout).unwrap();
    let lbd = LbdRunning::from_match(&m).expect("a complete lbd running line");
    let (_, version) = lab.rendered(i);
    assert!(
        lbd.summary
            .ends_with(&format!("version {}", &version[..12])),
        "{} runs another config than pxe renders for it: {}",
        lab.balancers[i].hostname,
        lbd.line
    );
    lbd
}

/// The guest's console shows iPXE fetching pxe's script, the node's script, the kernel and
/// the initramfs, each "ok".
fn assert_ipxe_fetched(g: &Guest, n: &PxeBalancer) {
    let hyphen = n.mac.to_string().replace(':', "-");
    for url in [
        format!("http://{SERVER}:{HTTP_PORT}/boot.ipxe"),
        format!("http://{SERVER}:{HTTP_PORT}/boot/{hyphen}.ipxe"),
        format!("http://{SERVER}:{HTTP_PORT}/image/vmlinuz"),
        format!("http://{SERVER}:{HTTP_PORT}/image/initrd.img"),
    ] {
        let lines = lines_containing(g.console(), &url);
        assert!(
            lines.iter().any(|l| l.trim_end().ends_with(" ok")),
            "{}: iPXE did not report {url} ... ok: {lines:?}",
            n.hostname
        );
    }
}

/// The address pxe saw a node's script requested from.
fn peer_of(lab: &Lab, n: &PxeBalancer) -> String {
    let hyphen = n.mac.to_string().replace(':', "-");
    let script = lab.access(&[&format!("path=/boot/{hyphen}.ipxe"), "status=200"]);
    assert!(!script.is_empty(), "{}", lab.pxe_log());
    script[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .and_then(|p| p.rsplit_once(':'))
        .map(|(ip, _)| ip.to_string())
        .unwrap()
}

#[test]
fn a_uefi_guest_and_a_bios_guest_pxe_boot_side_by_side() {
    let balancers = vec![
        PxeBalancer {
            mac: MacAddr::local(0x66_00_21),
            hostname: "pxe-uefi",
            priority: 150,
            via_tftp: false,
        },
        PxeBalancer {
            mac: MacAddr::local(0x66_00_22),
            hostname: "pxe-bios",
            priority: 100,
            via_tftp: false,
        },
    ];
    let lab = Lab::start("pxe-uefi", balancers, &pxe_binary(false));
    let started = Instant::now();
    let uefi = lab.uefi_guest(0).spawn().expect("start the UEFI guest");
    let bios = lab.guest(1).spawn().expect("start the BIOS guest");

    let bios_lbd = running(&bios, BIOS_CHAIN, &lab, 1);
    let bios_wall = started.elapsed();
    let uefi_lbd = running(&uefi, UEFI_CHAIN, &lab, 0);
    let uefi_wall = started.elapsed();
    eprintln!(
        "figure: {} BIOS PXE chain (iPXE ROM → DHCP → HTTP boot.ipxe → script, kernel, initrd → init → config) to lbd running: {bios_wall:.1?} wall, {:.2?} guest uptime (beside a UEFI guest)",
        bios.accel().name(),
        bios_lbd.uptime
    );
    eprintln!(
        "figure: {} UEFI PXE chain (OVMF PXE → DHCP arch 7 → TFTP snponly.efi → iPXE on SNP → HTTP boot.ipxe → script, kernel, initrd → init → config) to lbd running: {uefi_wall:.1?} wall, {:.2?} kernel uptime (beside a BIOS guest)",
        uefi.accel().name(),
        uefi_lbd.uptime
    );

    // The UEFI guest's own firmware did the first step: OVMF's PXE client got snponly.efi
    // ("NBP filename"), and the iPXE it started drives the NIC through the firmware (SNP).
    let console = uefi.console();
    for needle in [
        "Start PXE over IPv4",
        "NBP filename is snponly.efi",
        "UEFI PXEv4 (MAC:",
        "using SNP on",
    ] {
        assert!(
            !lines_containing(console, needle).is_empty(),
            "the UEFI guest's console never said {needle:?}"
        );
    }
    assert_ipxe_fetched(&uefi, &lab.balancers[0]);
    assert_ipxe_fetched(&bios, &lab.balancers[1]);

    // dnsmasq, with the README's snippet: the UEFI firmware (arch 7, no option 175) was sent
    // snponly.efi, and the iPXE it loaded (option 175) pxe's script.
    let dhcp = lab.dnsmasq_log();
    let tx_of = |needle: &str| -> Vec<String> {
        dhcp.lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .collect()
    };
    let firmware = tx_of("vendor class: PXEClient:Arch:00007");
    let sent_snponly = tx_of("bootfile-name  snponly.efi");
    assert!(
        sent_snponly.iter().any(|tx| firmware.contains(tx)),
        "dnsmasq never sent snponly.efi to the arch-7 client:\n{dhcp}"
    );
    let ipxe = tx_of("user class: iPXE");
    let sent_script = tx_of(&format!(
        "bootfile-name  http://{SERVER}:{HTTP_PORT}/boot.ipxe"
    ));
    assert!(
        sent_script.iter().any(|tx| ipxe.contains(tx)),
        "dnsmasq never sent pxe's script to iPXE:\n{dhcp}"
    );
    assert!(
        !sent_script.iter().any(|tx| sent_snponly.contains(tx)),
        "one request got both: {dhcp}"
    );

    // pxe sent snponly.efi whole by TFTP to the UEFI guest's address, and the same bytes as
    // the ipxe package's.
    let peer = peer_of(&lab, &lab.balancers[0]);
    let len = std::fs::metadata("/usr/lib/ipxe/snponly.efi")
        .expect("/usr/lib/ipxe/snponly.efi (apt-get install ipxe)")
        .len();
    let tftp = lab.access(&[
        "proto=\"tftp\"",
        &format!("peer={peer}:"),
        "path=snponly.efi",
        "status=\"complete\"",
        &format!("bytes={len} "),
    ]);
    assert_eq!(tftp.len(), 1, "{}", lab.pxe_log());
    // Not to the BIOS guest, which is iPXE from the start.
    let bios_peer = peer_of(&lab, &lab.balancers[1]);
    assert!(
        lab.access(&[&format!("peer={bios_peer}:"), "path=snponly.efi"])
            .is_empty(),
        "{}",
        lab.pxe_log()
    );
    for (g, n) in [(&uefi, &lab.balancers[0]), (&bios, &lab.balancers[1])] {
        let fetched = lines_containing(g.console(), "INFO config fetched:");
        assert_eq!(fetched.len(), 1, "{}: {fetched:?}", n.hostname);
        assert_no_fatal(g.console());
    }
}

#[test]
fn a_uefi_guest_boots_by_uefi_http_boot() {
    let balancers = vec![PxeBalancer {
        mac: MacAddr::local(0x66_00_31),
        hostname: "http-uefi",
        priority: 120,
        via_tftp: false,
    }];
    // Its firmware's PXE requests (UEFI, not iPXE) go unanswered, so OVMF moves on to HTTP
    // boot, as a machine with HTTP boot first in its boot order would start with.
    let mac = balancers[0].mac;
    let lab = Lab::start_with_conf(
        "pxe-httpboot",
        balancers,
        &pxe_binary(false),
        Dhcp::Server,
        &format!("dhcp-host={mac},set:httponly\ndhcp-ignore=tag:httponly,tag:efi64,tag:!ipxe\n"),
    );
    let started = Instant::now();
    // PXE off in the firmware's network stack (OVMF's fw_cfg knobs), as on a machine set up
    // for HTTP boot: otherwise OVMF spends about two minutes of DHCP timeouts on PXEv4 and
    // PXEv6 before it tries HTTP.
    let g = lab
        .uefi_guest(0)
        .args([
            "-fw_cfg",
            "name=opt/org.tianocore/IPv4PXESupport,string=n",
            "-fw_cfg",
            "name=opt/org.tianocore/IPv6PXESupport,string=n",
        ])
        .spawn()
        .expect("start the UEFI guest");
    let lbd = running(&g, UEFI_HTTP_CHAIN, &lab, 0);
    eprintln!(
        "figure: {} UEFI HTTP boot chain (PXE off in OVMF → HTTP boot: DHCP arch 16 → HTTP /ipxe/snponly.efi → iPXE → pxe's script, kernel, initrd → init → config) to lbd running: {:.1?} wall, {:.2?} kernel uptime",
        g.accel().name(),
        started.elapsed(),
        lbd.uptime
    );
    let console = g.console();
    for needle in [
        "Start HTTP Boot over IPv4",
        &format!("URI: http://{SERVER}:{HTTP_PORT}/ipxe/snponly.efi"),
        "UEFI HTTPv4 (MAC:",
        "using SNP on",
    ] {
        assert!(
            !lines_containing(console, needle).is_empty(),
            "the UEFI guest's console never said {needle:?}"
        );
    }
    assert_ipxe_fetched(&g, &lab.balancers[0]);
    let dhcp = lab.dnsmasq_log();
    assert!(
        dhcp.contains("vendor class: HTTPClient:Arch:00016"),
        "{dhcp}"
    );
    assert!(
        dhcp.contains(&format!(
            "bootfile-name  http://{SERVER}:{HTTP_PORT}/ipxe/snponly.efi"
        )),
        "{dhcp}"
    );
    let len = std::fs::metadata("/usr/lib/ipxe/snponly.efi")
        .unwrap()
        .len();
    let got = lab.access(&[
        "proto=\"http\"",
        "path=/ipxe/snponly.efi",
        "status=200",
        &format!("bytes={len} "),
    ]);
    assert!(!got.is_empty(), "{}", lab.pxe_log());
    assert!(
        lab.access(&["proto=\"tftp\"", "path=snponly.efi"])
            .is_empty(),
        "HTTP boot fetched nothing by TFTP: {}",
        lab.pxe_log()
    );
    assert_no_fatal(g.console());
}
