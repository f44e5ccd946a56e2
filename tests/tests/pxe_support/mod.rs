//! A PXE lab in a network namespace: a bridge with one tap per guest, `pxe serve` (HTTP on
//! :8080, TFTP on :69) with an inventory and template written here, and dnsmasq as the DHCP
//! server pointing firmware and iPXE at pxe, configured with the snippet pxe/README.md gives
//! operators (read from the README itself, so the two cannot drift apart). Shared by the
//! `pxe_chain`, `pxe_uefi` and `dhcp_snippets` tests and the `pxe_bench` binary (included
//! with `#[path]`).
//!
//! Everything lives in the namespace and goes with it: dropping the lab kills pxe and dnsmasq
//! and deletes the namespace, also when a test panics.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lbtest::appliance::{sha256_hex, Image};
use lbtest::{ChildGuard, GuestBuilder, MacAddr, Netns, Nic};

/// The namespace's address on the bridge: pxe and dnsmasq listen here.
pub const SERVER: &str = "10.66.0.1";
pub const HTTP_PORT: u16 = 8080;

/// A balancer the lab PXE-boots: its inventory entry (MAC, hostname, priority) and how it
/// fetches `boot.ipxe`.
#[derive(Clone, Debug)]
pub struct PxeBalancer {
    pub mac: MacAddr,
    pub hostname: &'static str,
    pub priority: u8,
    /// Boot through TFTP (`boot.ipxe` from pxe's TFTP server) instead of the HTTP URL.
    pub via_tftp: bool,
}

/// The template both balancers are rendered from: a VRRP instance whose priority differs per
/// balancer and a NAT service, as the demo balancer has.
pub const TEMPLATE: &str = r#"# PXE chain test pair: one template, values per node from the inventory.
[node]
hostname = "{{ node.hostname }}"

[vrrp.instance.VI_1]
interface = "eth0"
vrid = 66
priority = {{ node.priority }}
vips = ["10.66.0.100/24"]

[service.web]
vip = "10.66.0.100:80"
scheduler = "wrr"
forwarding = "nat"
check = { type = "tcp", interval = "2s" }

[[service.web.real]]
address = "10.66.0.1:8080"
weight = 2
"#;

/// The code block that follows the line `heading` in pxe/README.md: the snippets operators
/// copy, as the tests use them.
pub fn readme_snippet(heading: &str) -> String {
    let path = lbtest::artifacts::workspace_root().join("pxe/README.md");
    let text = std::fs::read_to_string(&path).expect("pxe/README.md");
    let after = text
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("pxe/README.md has no line {heading:?}"))
        .1;
    let block = after
        .split_once("```\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no code block after {heading:?} in pxe/README.md"))
        .0;
    format!("{block}\n")
}

/// A README snippet with the README's example addresses (pxe on 192.0.2.5, leases from
/// .100 to .199) replaced by the lab's: pxe on [`SERVER`], leases from .50 to .99 (the
/// template's VIP is .100).
pub fn lab_addresses(snippet: &str) -> String {
    assert!(
        snippet.contains("192.0.2.5"),
        "the README snippet no longer names pxe at 192.0.2.5; update the tests with it:\n{snippet}"
    );
    let s = snippet
        .replace("192.0.2.100", "10.66.0.50")
        .replace("192.0.2.199", "10.66.0.99")
        .replace("192.0.2.5", SERVER)
        .replace("192.0.2.0", "10.66.0.0");
    assert!(
        !s.contains("192.0.2."),
        "an address the lab does not know:\n{s}"
    );
    s
}

/// OVMF, the UEFI firmware for QEMU (Debian's `ovmf`): its code, and the template of the
/// variable store each guest gets a copy of.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// The `pxe` binary built from the current source (release for benchmarks, else the test
/// profile's debug build).
pub fn pxe_binary(release: bool) -> PathBuf {
    let profile = if release {
        lbtest::fresh::Profile::Release
    } else {
        lbtest::fresh::Profile::Debug
    };
    lbtest::fresh::binary("pxe", "pxe", profile)
}

/// How the guests find pxe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dhcp {
    /// dnsmasq beside pxe is the segment's DHCP server and names the boot files itself.
    Server,
    /// The segment's DHCP server (dnsmasq in a second namespace on the bridge) knows nothing
    /// of PXE; dnsmasq beside pxe answers as proxy DHCP with the boot information only.
    Proxy,
}

/// The running lab.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub balancers: Vec<PxeBalancer>,
    pub pxe_log: PathBuf,
    pub dnsmasq_log: PathBuf,
    pub image: Image,
    pxe_bin: PathBuf,
    // Dropped in this order: the servers, then the namespace (which kills what is left).
    _pxe: ChildGuard,
    _dnsmasq: Vec<ChildGuard>,
    pub ns: Netns,
    /// The namespace of the segment's own DHCP server ([`Dhcp::Proxy`]).
    pub lan: Option<Netns>,
    /// Its log.
    pub lan_log: PathBuf,
}

impl Lab {
    /// Starts pxe and dnsmasq in a fresh namespace with a tap `tapN` per balancer.
    /// dnsmasq runs with the README's snippet for [`Dhcp::Server`]; balancers marked
    /// `via_tftp` get `boot.ipxe` by TFTP instead of its URL (the README's alternative).
    pub fn start(tag: &str, balancers: Vec<PxeBalancer>, pxe_bin: &Path) -> Lab {
        Self::start_with(tag, balancers, pxe_bin, Dhcp::Server)
    }

    /// [`Lab::start`] with a choice of DHCP setup.
    pub fn start_with(tag: &str, balancers: Vec<PxeBalancer>, pxe_bin: &Path, mode: Dhcp) -> Lab {
        Self::start_with_conf(tag, balancers, pxe_bin, mode, "")
    }

    /// [`Lab::start_with`] with lines added to dnsmasq's configuration after the README's.
    pub fn start_with_conf(
        tag: &str,
        balancers: Vec<PxeBalancer>,
        pxe_bin: &Path,
        mode: Dhcp,
        extra_conf: &str,
    ) -> Lab {
        let image = Image::find();
        let dir = tempfile::tempdir().expect("temp dir");
        let ns = Netns::new(tag).expect("network namespaces (run the tests as root)");
        ns.add_bridge("br0").unwrap();
        ns.add_addr("br0", &format!("{SERVER}/24")).unwrap();
        // An IPv6 prefix for router advertisements (below): iPXE configures IPv4 and IPv6 at
        // once and, on a segment without a router, waits about 14 s for IPv6 before booting.
        ns.add_addr("br0", "fd66::1/64").unwrap();
        for i in 0..balancers.len() {
            ns.add_tap(&format!("tap{i}"), Some("br0")).unwrap();
        }

        let mut inventory = String::from("[boot]\ncmdline = \"lb.poll=5s\"\n");
        for n in &balancers {
            inventory += &format!(
                "\n[[node]]\nmac = \"{}\"\nhostname = \"{}\"\npriority = {}\n",
                n.mac, n.hostname, n.priority
            );
        }
        std::fs::write(dir.path().join("inventory.toml"), inventory).unwrap();
        std::fs::write(dir.path().join("pair.toml.tmpl"), TEMPLATE).unwrap();

        let pxe_log = dir.path().join("pxe.log");
        let mut cmd = ns.command(pxe_bin);
        cmd.arg("serve")
            .arg("--image")
            .arg(&image.dir)
            .arg("--inventory")
            .arg(dir.path().join("inventory.toml"))
            .arg("--template")
            .arg(dir.path().join("pair.toml.tmpl"))
            .args(["--http", &format!("{SERVER}:{HTTP_PORT}")])
            .args(["--tftp", &format!("{SERVER}:69")])
            .env("PXE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&pxe_log).unwrap());
        let pxe = ChildGuard::spawn(&mut cmd).expect("start pxe in the namespace");
        assert_logged(&pxe_log, "pxe serving", Duration::from_secs(30));

        // The DHCP server, configured as pxe/README.md says: iPXE (option 175) gets pxe's
        // script, anything else the iPXE binary (the chainloading loop guard).
        let dnsmasq_log = dir.path().join("dnsmasq.log");
        let lan_log = dir.path().join("lan-dhcp.log");
        let mut args = dnsmasq_common(dir.path(), "br0", &dnsmasq_log, "beside-pxe");
        let conf = match mode {
            Dhcp::Server => {
                let mut conf = lab_addresses(&readme_snippet("### dnsmasq as the DHCP server"));
                if balancers.iter().any(|n| n.via_tftp) {
                    let http = format!("dhcp-boot=tag:ipxe,http://{SERVER}:{HTTP_PORT}/boot.ipxe");
                    assert!(conf.contains(&http), "{conf}");
                    conf = conf.replace(
                        &http,
                        &format!(
                            "dhcp-boot=tag:ipxe,tag:!viatftp,http://{SERVER}:{HTTP_PORT}/boot.ipxe"
                        ),
                    );
                    conf += &format!("dhcp-boot=tag:ipxe,tag:viatftp,boot.ipxe,,{SERVER}\n");
                    for n in balancers.iter().filter(|n| n.via_tftp) {
                        conf += &format!("dhcp-host={},set:viatftp\n", n.mac);
                    }
                }
                // No ICMP probe of an address before offering it: the namespace is ours, and
                // the probe adds 3 s to every first lease.
                conf + "no-ping\n"
            }
            Dhcp::Proxy => lab_addresses(&readme_snippet(
                "### Proxy DHCP: when the DHCP server cannot be changed",
            )),
        };
        let conf_path = dir.path().join("dnsmasq-beside-pxe.conf");
        std::fs::write(&conf_path, conf + extra_conf).unwrap();
        args.push(format!("--conf-file={}", conf_path.display()));
        // Router advertisements (no DHCPv6): iPXE's IPv6 autoconfiguration ends at once.
        args.extend([
            "--enable-ra".to_string(),
            "--dhcp-range=::,constructor:br0,ra-only".into(),
        ]);
        let mut cmd = ns.command("dnsmasq");
        cmd.args(&args).stdin(Stdio::null());
        let mut dnsmasq =
            vec![ChildGuard::spawn(&mut cmd).expect("dnsmasq (apt-get install dnsmasq-base)")];
        let ready = if mode == Dhcp::Proxy {
            "proxy on subnet"
        } else {
            "DHCP, IP range"
        };
        assert_logged(&dnsmasq_log, ready, Duration::from_secs(10));

        let lan = (mode == Dhcp::Proxy).then(|| {
            // The segment's own DHCP server: addresses only, in a namespace of its own
            // joined to the bridge.
            let lan = Netns::new("pxe-lan").expect("a second namespace");
            ns.add_veth_to("lan0", &lan, "eth0").unwrap();
            ns.set_master("lan0", "br0").unwrap();
            lan.add_addr("eth0", "10.66.0.2/24").unwrap();
            let mut args = dnsmasq_common(dir.path(), "eth0", &lan_log, "lan");
            args.extend([
                "--dhcp-range=10.66.0.50,10.66.0.99,255.255.255.0,1h".to_string(),
                "--no-ping".into(),
            ]);
            let mut cmd = lan.command("dnsmasq");
            cmd.args(&args).stdin(Stdio::null());
            dnsmasq.push(ChildGuard::spawn(&mut cmd).expect("dnsmasq for the LAN"));
            assert_logged(&lan_log, "DHCP, IP range", Duration::from_secs(10));
            lan
        });

        Lab {
            dir,
            balancers,
            pxe_log,
            dnsmasq_log,
            image,
            pxe_bin: pxe_bin.to_path_buf(),
            _pxe: pxe,
            _dnsmasq: dnsmasq,
            ns,
            lan,
            lan_log,
        }
    }

    /// A guest for balancer `i`: no kernel given, `-boot n` with QEMU's iPXE ROM, on `tap{i}`.
    /// Without a display, SeaBIOS and iPXE print to the serial console too.
    pub fn guest(&self, i: usize) -> GuestBuilder {
        let n = &self.balancers[i];
        GuestBuilder::new(format!("pxe-chain-{}", n.hostname))
            .pxe()
            .memory_mib(512)
            .nic(Nic::tap(format!("tap{i}"), n.mac))
            .netns(&self.ns)
            .args(["-machine", "graphics=off"])
    }

    /// A UEFI guest for balancer `i`: OVMF with a variable store of its own, on `tap{i}`. The
    /// NIC has no option ROM, so the firmware's own virtio driver and PXE client boot it:
    /// DHCP with client architecture 7, `snponly.efi` by TFTP, and that iPXE on the
    /// firmware's network interface (SNP). (QEMU's virtio ROM would be an iPXE of its own and
    /// skip both.)
    pub fn uefi_guest(&self, i: usize) -> GuestBuilder {
        let n = &self.balancers[i];
        for f in [OVMF_CODE, OVMF_VARS] {
            assert!(
                Path::new(f).is_file(),
                "{f} is missing: apt-get install ovmf (tools/setup.sh installs it)"
            );
        }
        let vars = self.dir.path().join(format!("ovmf-vars-{i}.fd"));
        std::fs::copy(OVMF_VARS, &vars).unwrap();
        GuestBuilder::new(format!("pxe-uefi-{}", n.hostname))
            .memory_mib(512)
            .nic(Nic::tap(format!("tap{i}"), n.mac).romfile(""))
            .netns(&self.ns)
            .args(["-machine", "graphics=off"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ))
    }

    /// What pxe serves balancer `i` (`pxe render`): its config text and lbd's version of it.
    pub fn rendered(&self, i: usize) -> (String, String) {
        let out = Command::new(&self.pxe_bin)
            .arg("render")
            .arg("--inventory")
            .arg(self.dir.path().join("inventory.toml"))
            .arg("--template")
            .arg(self.dir.path().join("pair.toml.tmpl"))
            .args(["--mac", &self.balancers[i].mac.to_string()])
            .output()
            .expect("pxe render");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let version = sha256_hex(text.as_bytes());
        (text, version)
    }

    pub fn pxe_log(&self) -> String {
        std::fs::read_to_string(&self.pxe_log).unwrap_or_default()
    }

    pub fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(&self.dnsmasq_log).unwrap_or_default()
    }

    pub fn lan_log(&self) -> String {
        std::fs::read_to_string(&self.lan_log).unwrap_or_default()
    }

    /// pxe's access-log lines containing every needle.
    pub fn access(&self, needles: &[&str]) -> Vec<String> {
        self.pxe_log()
            .lines()
            .filter(|l| l.contains("pxe::access") && needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- pxe log ---\n{}", self.pxe_log());
            eprintln!("--- dnsmasq log ---\n{}", self.dnsmasq_log());
            if self.lan.is_some() {
                eprintln!("--- LAN DHCP log ---\n{}", self.lan_log());
            }
        }
    }
}

/// dnsmasq arguments every instance here uses: foreground, no DNS, one interface, logs.
fn dnsmasq_common(dir: &Path, dev: &str, log: &Path, name: &str) -> Vec<String> {
    vec![
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--port=0".into(),
        format!("--interface={dev}"),
        "--bind-interfaces".into(),
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", dir.join(format!("{name}.pid")).display()),
        format!(
            "--dhcp-leasefile={}",
            dir.join(format!("{name}.leases")).display()
        ),
        format!("--log-facility={}", log.display()),
        "--log-dhcp".into(),
    ]
}

/// Fails unless `file` (a server's log) says `needle` within `timeout`, showing what it said.
pub fn assert_logged(file: &Path, needle: &str, timeout: Duration) {
    assert!(
        lbtest::wait::file_contains(file, needle, timeout),
        "{} never said {needle:?} within {timeout:?}:\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}
