//! `lbctl realserver`: the printed script is run for real, with `sh`, and the result checked.
//!
//! DR runs in network namespaces on the host (needs root): the VIP ends up on `lo`, the ARP
//! sysctls are set, and — the point of it all — a neighbour on the LAN gets no ARP (or
//! neighbour-discovery) answer for the VIP, while without the sysctls it does. TUN needs the
//! `ipip` / `ip6_tunnel` modules, which the host kernel lacks, so it runs in a QEMU guest booted
//! from the Debian cloud kernel with busybox (needs `tools/setup.sh`), `modprobe` included.

use lbtest::{artifacts, GuestBuilder, Initramfs, Netns};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lbctl_script(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("realserver")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pipes `script` into `sh -s` inside `ns`; returns (success, output).
fn run_in(ns: &Netns, script: &str) -> (bool, String) {
    let mut child = ns
        .command("sh")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sysctl(ns: &Netns, key: &str) -> String {
    let out = ns.run(&["sysctl", "-n", key]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Pings `addr` once from `ns` (fails fast) and returns the neighbour entry for it on `dev`.
fn probe_neighbour(ns: &Netns, addr: &str, dev: &str) -> (bool, String) {
    let six = addr.contains(':');
    let mut c = ns.command("ping");
    if six {
        c.arg("-6");
    }
    let ok = c
        .args(["-c", "1", "-W", "2", addr])
        .output()
        .unwrap()
        .status
        .success();
    let fam = if six { "-6" } else { "-4" };
    let neigh = ns.ip(&[fam, "neigh", "show", addr, "dev", dev]).unwrap();
    (ok, neigh.trim().to_string())
}

/// A real server and a client on one link.
fn lan(tag: &str) -> (Netns, Netns) {
    let real = Netns::new(&format!("{tag}-real")).expect("network namespaces (run as root)");
    let client = Netns::new(&format!("{tag}-cli")).unwrap();
    real.add_veth_to("eth0", &client, "eth0").unwrap();
    real.add_addr("eth0", "10.77.0.2/24").unwrap();
    client.add_addr("eth0", "10.77.0.1/24").unwrap();
    real.ip(&["-6", "addr", "add", "fd77::2/64", "dev", "eth0", "nodad"])
        .unwrap();
    client
        .ip(&["-6", "addr", "add", "fd77::1/64", "dev", "eth0", "nodad"])
        .unwrap();
    (real, client)
}

#[test]
fn dr_ipv4_vip_on_lo_is_never_arped() {
    let (real, client) = lan("dr4");
    client
        .ip(&["route", "add", "192.0.2.10/32", "dev", "eth0"])
        .unwrap();
    // Control: the VIP on lo without the sysctls is answered (Linux's default), so the check
    // below can tell the difference.
    real.ip(&["addr", "add", "192.0.2.10/32", "dev", "lo"])
        .unwrap();
    let (ok, neigh) = probe_neighbour(&client, "192.0.2.10", "eth0");
    assert!(ok && neigh.contains("lladdr"), "control failed: {neigh}");
    real.ip(&["addr", "del", "192.0.2.10/32", "dev", "lo"])
        .unwrap();
    client.ip(&["neigh", "flush", "dev", "eth0"]).unwrap();

    let script = lbctl_script(&["--vip", "192.0.2.10", "--mode", "dr"]);
    let (ok, out) = run_in(&real, &script);
    assert!(ok, "the script failed:\n{out}\n---\n{script}");
    // Twice: it must be safe to run again.
    let (ok, out) = run_in(&real, &script);
    assert!(ok, "the script failed on a second run:\n{out}");

    let lo = real.ip(&["-o", "-4", "addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains("inet 192.0.2.10/32 "), "{lo}");
    assert_eq!(lo.matches("192.0.2.10").count(), 1, "VIP added once: {lo}");
    assert_eq!(sysctl(&real, "net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(sysctl(&real, "net.ipv4.conf.all.arp_announce"), "2");

    let (ok, neigh) = probe_neighbour(&client, "192.0.2.10", "eth0");
    assert!(!ok, "the VIP answered a client directly");
    assert!(
        !neigh.contains("lladdr"),
        "the real answered ARP for the VIP: {neigh}"
    );
    // The real's own address still resolves.
    let (ok, neigh) = probe_neighbour(&client, "10.77.0.2", "eth0");
    assert!(ok && neigh.contains("lladdr"), "{neigh}");
}

#[test]
fn dr_ipv6_vip_on_lo_is_never_announced() {
    let (real, client) = lan("dr6");
    client
        .ip(&["-6", "route", "add", "2001:db8::10/128", "dev", "eth0"])
        .unwrap();
    let script = lbctl_script(&["--vip", "2001:db8::10", "--mode", "dr"]);
    let (ok, out) = run_in(&real, &script);
    assert!(ok, "the script failed:\n{out}\n---\n{script}");
    let lo = real.ip(&["-o", "-6", "addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains("inet6 2001:db8::10/128 "), "{lo}");
    let (ok, neigh) = probe_neighbour(&client, "2001:db8::10", "eth0");
    assert!(!ok, "the VIP answered a client directly");
    assert!(
        !neigh.contains("lladdr"),
        "the real answered NS for the VIP: {neigh}"
    );
    let (ok, neigh) = probe_neighbour(&client, "fd77::2", "eth0");
    assert!(ok && neigh.contains("lladdr"), "{neigh}");
}

#[test]
fn dr_on_another_interface_and_refusals() {
    let (real, _client) = lan("drdum");
    real.ip(&["link", "add", "vip0", "type", "bridge"]).unwrap();
    let script = lbctl_script(&["--vip", "192.0.2.11", "--mode", "dr", "--iface", "vip0"]);
    let (ok, out) = run_in(&real, &script);
    assert!(ok, "{out}");
    let dev = real.ip(&["-o", "addr", "show", "dev", "vip0"]).unwrap();
    assert!(dev.contains("inet 192.0.2.11/32 "), "{dev}");
    let link = real.ip(&["-o", "link", "show", "dev", "vip0"]).unwrap();
    assert!(link.contains(",UP"), "{link}");
    let bad = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args([
            "realserver",
            "--vip",
            "192.0.2.10",
            "--mode",
            "tun",
            "--iface",
            "eth0",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tunl0"));
}

/// TUN in a guest: the host kernel has no ipip module. busybox's modprobe finds the modules
/// through a modules.dep written here (the package has none), so `modprobe` in the script runs
/// for real.
#[test]
fn tun_in_a_guest() {
    let kernel = artifacts::kernel();
    let script4 = lbctl_script(&["--vip", "192.0.2.10", "--mode", "tun"]);
    let script6 = lbctl_script(&["--vip", "2001:db8::10", "--mode", "tun"]);
    let mut fs = Initramfs::busybox_script(
        "ip link set lo up\n\
         echo '--- tun4'\n\
         if sh /tun4.sh; then echo TUN4-OK; else echo TUN4-FAILED; fi\n\
         if sh /tun4.sh; then echo TUN4-AGAIN-OK; else echo TUN4-AGAIN-FAILED; fi\n\
         ip -o -4 addr show dev tunl0\n\
         ip -o link show dev tunl0\n\
         for k in all/arp_ignore all/arp_announce tunl0/rp_filter all/rp_filter; do \
           echo \"SYSCTL $k=$(cat /proc/sys/net/ipv4/conf/$k)\"; done\n\
         echo '--- tun6'\n\
         if sh /tun6.sh; then echo TUN6-OK; else echo TUN6-FAILED; fi\n\
         ip -o -6 addr show dev ip6tnl0\n\
         grep -E '^(ipip|ip6_tunnel) ' /proc/modules | sed 's/^/MODULE /'\n\
         echo ALL-DONE\n\
         poweroff -f\n",
    )
    .unwrap();
    fs.file("/tun4.sh", script4.as_bytes().to_vec(), 0o755);
    fs.file("/tun6.sh", script6.as_bytes().to_vec(), 0o755);
    // modules.dep in busybox's format: paths relative to /lib/modules/RELEASE.
    let base = format!("/lib/modules/{}", kernel.release);
    let mut dep = String::new();
    for root in ["ipip", "ip6_tunnel"] {
        let mods = kernel.modules_with_deps(&[root]).unwrap();
        let rel = |p: &std::path::Path| {
            p.strip_prefix(&kernel.modules_dir)
                .unwrap()
                .display()
                .to_string()
        };
        for (i, m) in mods.iter().enumerate() {
            fs.file_from(&format!("{base}/{}", rel(m)), m, 0o644)
                .unwrap();
            let deps: Vec<String> = mods[..i].iter().rev().map(|d| rel(d)).collect();
            let line = format!("{}: {}\n", rel(m), deps.join(" "));
            if !dep.contains(&format!("{}:", rel(m))) {
                dep.push_str(&line);
            }
        }
    }
    fs.file(&format!("{base}/modules.dep"), dep.into_bytes(), 0o644);
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    fs.write_to(&initrd).unwrap();
    let guest = GuestBuilder::new("realserver-tun")
        .kernel(&kernel.vmlinuz)
        .initrd(&initrd)
        .append("console=ttyS0 panic=-1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    guest.expect("ALL-DONE", Duration::from_secs(120)).unwrap();
    let text = guest.console().lines().join("\n");
    eprintln!("guest ran both scripts in {:?}", start.elapsed());
    for want in [
        "TUN4-OK",
        "TUN4-AGAIN-OK",
        "TUN6-OK",
        "inet 192.0.2.10/32",
        "SYSCTL all/arp_ignore=1",
        "SYSCTL all/arp_announce=2",
        "SYSCTL tunl0/rp_filter=0",
        "SYSCTL all/rp_filter=0",
        "inet6 2001:db8::10/128",
        "MODULE ipip ",
        "MODULE ip6_tunnel ",
    ] {
        assert!(text.contains(want), "guest console lacks {want:?}:\n{text}");
    }
    let link = text
        .lines()
        .find(|l| l.contains(": tunl0") && l.contains('<'))
        .unwrap_or_default();
    assert!(link.contains(",UP"), "tunl0 not up: {link}\n{text}");
}
