//! The whole PXE chain with the real pieces: two QEMU guests with no kernel given (`-boot n`,
//! QEMU's iPXE ROM) on a bridge in a network namespace, dnsmasq as their DHCP server pointing
//! iPXE at `pxe`, and `pxe` serving the generic script (over TFTP to one guest, over HTTP to the
//! other), each guest's own script, the built image's kernel and initramfs, and each guest's
//! own rendered config, which our init fetches before starting lbd.
//!
//! Needs root, QEMU, dnsmasq, the kernel package and the built image (tools/setup.sh,
//! tools/build-image.sh) and `pxe`, built from the current source by the harness.

#[path = "pxe_support/mod.rs"]
mod pxe_support;

use std::time::{Duration, Instant};

use lbtest::appliance::{assert_no_fatal, lines_containing, LbdRunning, LBD_RUNNING};
use lbtest::MacAddr;
use pxe_support::{pxe_binary, Dhcp, Lab, PxeBalancer, HTTP_PORT, SERVER};

/// QEMU start to lbd running through the whole chain: about 15 s under TCG on an idle host;
/// two guests at once on a loaded 2-core machine take much longer.
const CHAIN: Duration = Duration::from_secs(300);

const NETWORK_UP: &str =
    r"init:\s+INFO network up device=eth0 address=(?P<addr>10\.66\.0\.\d+)/24 .*dhcp=true";

#[test]
fn two_guests_pxe_boot_from_pxe_and_run_lbd_with_their_own_configs() {
    let balancers = vec![
        PxeBalancer {
            mac: MacAddr::local(0x66_00_01),
            hostname: "pxe-lb1",
            priority: 150,
            via_tftp: true,
        },
        PxeBalancer {
            mac: MacAddr::local(0x66_00_02),
            hostname: "pxe-lb2",
            priority: 100,
            via_tftp: false,
        },
    ];
    let lab = Lab::start("pxe-chain", balancers, &pxe_binary(false));
    let started = Instant::now();
    let guests: Vec<_> = (0..2)
        .map(|i| lab.guest(i).spawn().expect("start QEMU in the namespace"))
        .collect();

    let mut running = Vec::new();
    for (i, g) in guests.iter().enumerate() {
        let up = g.expect(NETWORK_UP, CHAIN).unwrap();
        let m = g.expect(LBD_RUNNING, CHAIN).unwrap();
        let lbd = LbdRunning::from_match(&m).expect("a complete lbd running line");
        eprintln!(
            "figure: {} {} PXE chain (iPXE ROM → DHCP → {} boot.ipxe → HTTP script, kernel, initrd → init → config) to lbd running: {:.1?} wall (both guests booting at once), {:.2?} guest uptime, address {}",
            g.accel().name(),
            lab.balancers[i].hostname,
            if lab.balancers[i].via_tftp { "TFTP" } else { "HTTP" },
            started.elapsed(),
            lbd.uptime,
            up.name("addr").unwrap_or("?"),
        );
        running.push(lbd);
    }

    // Each guest runs exactly the config pxe renders for its MAC: same bytes, so the same
    // hostname and priority; and the two differ.
    let mut versions = Vec::new();
    for (i, lbd) in running.iter().enumerate() {
        let n = &lab.balancers[i];
        let (text, version) = lab.rendered(i);
        assert!(
            text.contains(&format!("hostname = \"{}\"\n", n.hostname)),
            "{text}"
        );
        assert!(
            text.contains(&format!("priority = {}\n", n.priority)),
            "{text}"
        );
        assert!(
            lbd.summary
                .ends_with(&format!("version {}", &version[..12])),
            "{} runs another config than pxe renders for {} (version {}):\n{}",
            n.hostname,
            n.mac,
            &version[..12],
            lbd.line
        );
        assert!(
            lbd.summary
                .starts_with("1 service, 1 real, 1 vrrp instance (1 vip)"),
            "{}",
            lbd.line
        );
        // init fetched it from pxe, by this MAC.
        let fetched = lines_containing(guests[i].console(), "INFO config fetched:");
        let url = format!(
            "url=http://{SERVER}:{HTTP_PORT}/config/{}.toml",
            n.mac.to_string().replace(':', "-")
        );
        assert!(
            fetched.len() == 1 && fetched[0].contains(&url) && fetched[0].contains(&version[..12]),
            "{fetched:?}"
        );
        versions.push(version);
    }
    assert_ne!(
        versions[0], versions[1],
        "both balancers got the same config"
    );

    // iPXE's own account (SeaBIOS and iPXE print to the serial console without a display).
    for (i, n) in lab.balancers.iter().enumerate() {
        assert_ipxe_fetched(&guests[i], n);
    }

    // pxe's access log: who asked for what, and what they got.
    for n in &lab.balancers {
        let hyphen = n.mac.to_string().replace(':', "-");
        let host = format!("node=\"{}\"", n.hostname);
        let script = lab.access(&[&format!("path=/boot/{hyphen}.ipxe"), "status=200", &host]);
        assert_eq!(script.len(), 1, "{script:?}");
        let config = lab.access(&[&format!("path=/config/{hyphen}.toml"), "status=200", &host]);
        assert!(!config.is_empty(), "{}", lab.pxe_log());
        // The kernel and initramfs went out whole to this guest's address.
        let peer = script[0]
            .split_whitespace()
            .find_map(|w| w.strip_prefix("peer="))
            .and_then(|p| p.rsplit_once(':'))
            .map(|(ip, _)| ip.to_string())
            .unwrap();
        for (file, len) in [
            (
                "vmlinuz",
                std::fs::metadata(&lab.image.vmlinuz).unwrap().len(),
            ),
            (
                "initrd.img",
                std::fs::metadata(&lab.image.initrd).unwrap().len(),
            ),
        ] {
            let got = lab.access(&[
                &format!("peer={peer}:"),
                &format!("path=/image/{file}"),
                "status=200",
                &format!("bytes={len} "),
            ]);
            assert_eq!(
                got.len(),
                1,
                "{file} to {}: {got:?}\n{}",
                n.hostname,
                lab.pxe_log()
            );
        }
        let generic = if n.via_tftp {
            lab.access(&[
                "proto=\"tftp\"",
                &format!("peer={peer}:"),
                "path=boot.ipxe",
                "status=\"complete\"",
            ])
        } else {
            lab.access(&[
                "proto=\"http\"",
                &format!("peer={peer}:"),
                "path=/boot.ipxe",
                "status=200",
            ])
        };
        assert_eq!(
            generic.len(),
            1,
            "{}: {generic:?}\n{}",
            n.hostname,
            lab.pxe_log()
        );
    }
    // dnsmasq, configured as pxe/README.md says, told iPXE (it sends option 175) where pxe's
    // script is, and anything else (here init's own DHCP client) the iPXE binary: the guard
    // that stops a chainloaded iPXE from loading itself again.
    let dhcp = lab.dnsmasq_log();
    for bootfile in [
        format!("bootfile-name  http://{SERVER}:{HTTP_PORT}/boot.ipxe"),
        "bootfile-name  boot.ipxe".to_string(),
        "bootfile-name  undionly.kpxe".to_string(),
    ] {
        assert!(
            dhcp.contains(&bootfile),
            "dnsmasq never sent {bootfile:?}:\n{dhcp}"
        );
    }
    // That binary is what pxe serves over TFTP to firmware without iPXE.
    let undionly = std::path::Path::new("/usr/lib/ipxe/undionly.kpxe");
    assert!(
        undionly.is_file(),
        "{} is missing: apt-get install ipxe (tools/setup.sh installs it)",
        undionly.display()
    );
    let got = lab.dir.path().join("undionly.kpxe");
    lab.ns
        .run(&[
            "tftp",
            SERVER,
            "-m",
            "binary",
            "-c",
            "get",
            "undionly.kpxe",
            got.to_str().unwrap(),
        ])
        .expect("tftp-hpa in the namespace");
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(undionly).unwrap(),
        "undionly.kpxe over TFTP differs from the ipxe package's"
    );
    assert!(
        !lab.pxe_log().contains("unknown MAC asked"),
        "{}",
        lab.pxe_log()
    );

    for g in &guests {
        assert_no_fatal(g.console());
    }
}

/// The guest's console shows iPXE fetching its own script, the kernel and the initramfs from
/// pxe, each ending in "ok".
fn assert_ipxe_fetched(g: &lbtest::Guest, n: &PxeBalancer) {
    let hyphen = n.mac.to_string().replace(':', "-");
    for url in [
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

/// The proxy-DHCP alternative from pxe/README.md: the segment's DHCP server hands out
/// addresses and knows nothing of PXE; dnsmasq beside pxe adds the boot information.
#[test]
fn proxy_dhcp_beside_an_existing_dhcp_server_boots_a_guest() {
    let balancer = PxeBalancer {
        mac: MacAddr::local(0x66_00_11),
        hostname: "pxe-proxied",
        priority: 120,
        via_tftp: false,
    };
    let lab = Lab::start_with("pxe-proxy", vec![balancer], &pxe_binary(false), Dhcp::Proxy);
    let started = Instant::now();
    let g = lab.guest(0).spawn().expect("start QEMU in the namespace");
    let up = g.expect(NETWORK_UP, CHAIN).unwrap();
    let m = g.expect(LBD_RUNNING, CHAIN).unwrap();
    let lbd = LbdRunning::from_match(&m).expect("a complete lbd running line");
    eprintln!(
        "figure: {} PXE chain with proxy DHCP to lbd running: {:.1?} wall, {:.2?} guest uptime",
        g.accel().name(),
        started.elapsed(),
        lbd.uptime
    );
    let (text, version) = lab.rendered(0);
    assert!(text.contains("hostname = \"pxe-proxied\"\n"), "{text}");
    assert!(
        lbd.summary
            .ends_with(&format!("version {}", &version[..12])),
        "{}",
        lbd.line
    );
    assert_ipxe_fetched(&g, &lab.balancers[0]);

    // The address came from the segment's server (which sent no boot file), the boot
    // information from the proxy beside pxe.
    let addr = up.name("addr").unwrap().to_string();
    let lan = lab.lan_log();
    assert!(
        lan.contains(&format!("DHCPACK(eth0) {addr} {}", lab.balancers[0].mac)),
        "{lan}"
    );
    assert!(
        !lan.contains("option: 67"),
        "the LAN server sent a boot file: {lan}"
    );
    let proxy = lab.dnsmasq_log();
    assert!(
        proxy.contains(&format!("PXE(br0) {} proxy", lab.balancers[0].mac)),
        "{proxy}"
    );
    assert!(
        proxy.contains(&format!(
            "bootfile name: http://{SERVER}:{HTTP_PORT}/boot.ipxe"
        )),
        "{proxy}"
    );
    assert!(
        !proxy.contains("DHCPACK"),
        "the proxy must not hand out addresses: {proxy}"
    );
    assert_eq!(
        lab.access(&["path=/config/", "status=200", "node=\"pxe-proxied\""])
            .len(),
        1,
        "{}",
        lab.pxe_log()
    );
    assert_no_fatal(g.console());
}
