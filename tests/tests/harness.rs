//! Self-tests of the harness against the real thing: the Debian cloud kernel booted in QEMU with
//! a busybox initramfs, QMP, a bridge and tap in a network namespace, user networking, PXE, and
//! python's http.server.
//!
//! Needs root, QEMU, busybox-static and the kernel package: run `tools/setup.sh` first. Nothing
//! here is skipped when something is missing; it fails and says what to do.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lbtest::artifacts::{self, Kernel};
use lbtest::{GuestBuilder, Initramfs, MacAddr, Netns, Nic, StaticServer, UserNet};

/// Generous: TCG on a loaded 2-core machine; a boot takes about 3-5 s when idle.
const BOOT: Duration = Duration::from_secs(90);
const APPEND: &str = "console=ttyS0 panic=-1 quiet";

fn kernel() -> &'static Kernel {
    artifacts::kernel()
}

/// Writes a busybox initramfs whose `/init` first loads `modules` (with their dependencies, in
/// order) and then runs `script`.
fn busybox_initrd(dir: &Path, modules: &[&str], script: &str) -> PathBuf {
    let kos = kernel()
        .modules_with_deps(modules)
        .expect("modules in the kernel package");
    let load: String = kos
        .iter()
        .map(|ko| {
            let name = ko.file_name().unwrap().to_str().unwrap();
            format!("insmod /modules/{name} || echo LBTEST-INSMOD-FAILED {name}\n")
        })
        .collect();
    let mut fs = Initramfs::busybox_script(&format!("{load}{script}")).unwrap();
    fs.modules("/modules", &kos).unwrap();
    let path = dir.join("initrd.cpio");
    fs.write_to(&path).unwrap();
    path
}

fn guest(name: &str, initrd: &Path) -> GuestBuilder {
    GuestBuilder::new(name)
        .kernel(&kernel().vmlinuz)
        .initrd(initrd)
        .append(APPEND)
        .memory_mib(256)
}

#[test]
fn boots_the_cloud_kernel_with_busybox_and_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = busybox_initrd(
        dir.path(),
        &[],
        "echo LBTEST-HELLO kernel=$(uname -r) pid=$$\npoweroff -f\n",
    );
    let started = Instant::now();
    let mut g = guest("hello", &initrd).spawn().unwrap();
    let m = g
        .expect(r"LBTEST-HELLO kernel=(\S+) pid=(\d+)", BOOT)
        .unwrap();
    let to_marker = started.elapsed();
    assert_eq!(m.group(1), Some(kernel().release.as_str()));
    assert_eq!(m.group(2), Some("1"), "the script runs as PID 1");

    let exit = g.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(exit.status.success(), "{exit:?}");
    assert_eq!(exit.shutdown_reason.as_deref(), Some("guest-shutdown"));
    eprintln!(
        "figure: {} boot to marker {to_marker:.2?}, to power-off {:.2?}",
        g.accel().name(),
        exit.uptime
    );

    // After the exit, an expectation fails at once and shows the console's end.
    let t = Instant::now();
    let err = g.expect("NEVER-PRINTED", BOOT).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(
        text.contains("exited before anything matched /NEVER-PRINTED/"),
        "{text}"
    );
    assert!(text.contains("LBTEST-HELLO"), "{text}");

    // Logs: the full console and the command line that reproduces the run.
    let log = std::fs::read_to_string(g.log_dir().join("console.log")).unwrap();
    assert!(log.contains("LBTEST-HELLO"));
    let cmdline = std::fs::read_to_string(g.log_dir().join("qemu.cmdline")).unwrap();
    // The QEMU of tools/programs.txt, by the path the harness resolved.
    let qemu = lbtest::programs::path("qemu-system-x86_64");
    assert!(
        cmdline.starts_with(&format!("{} ", qemu.display())),
        "{cmdline}"
    );
    let report = g.report();
    assert!(report.contains("| LBTEST-HELLO"), "{report}");
    assert!(report.contains("guest-shutdown"), "{report}");
}

#[test]
fn qmp_system_powerdown_reaches_the_guest_power_button() {
    let dir = tempfile::tempdir().unwrap();
    // The power button is an input device: wait for any event on it, then power off.
    let initrd = busybox_initrd(
        dir.path(),
        &["button", "evdev"],
        r#"for e in /sys/class/input/event*; do
  if grep -q "Power Button" $e/device/name; then
    (head -c 1 /dev/input/${e##*/} >/dev/null; echo LBTEST-POWER-BUTTON; poweroff -f) &
  fi
done
echo LBTEST-WAITING
while true; do sleep 1; done
"#,
    );
    let mut g = guest("powerdown", &initrd).spawn().unwrap();
    g.expect("LBTEST-WAITING", BOOT).unwrap();
    assert_eq!(g.qmp().query_status().unwrap(), "running");
    let info = g.human_monitor_command("info status").unwrap();
    assert!(info.contains("running"), "{info:?}");

    // The reader may not have opened the device yet when WAITING prints: press again if needed.
    let mut pressed = false;
    for _ in 0..5 {
        g.system_powerdown().unwrap();
        if g.expect("LBTEST-POWER-BUTTON", Duration::from_secs(3))
            .is_ok()
        {
            pressed = true;
            break;
        }
    }
    assert!(pressed, "the guest never saw the power button");
    let exit = g.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(exit.shutdown_reason.as_deref(), Some("guest-shutdown"));
    assert!(g.qmp().events().iter().any(|e| e.name == "POWERDOWN"));
}

#[test]
fn qmp_ctrl_alt_delete_resets_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    // With a shell as PID 1 nobody disables the kernel's ctrl-alt-del reboot.
    let initrd = busybox_initrd(
        dir.path(),
        &[],
        "echo LBTEST-READY\nwhile true; do sleep 1; done\n",
    );
    let mut g = guest("cad", &initrd).spawn().unwrap();
    g.expect("LBTEST-READY", BOOT).unwrap();
    g.ctrl_alt_delete().unwrap();
    let exit = g.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(
        exit.shutdown_reason.as_deref(),
        Some("guest-reset"),
        "{exit:?}"
    );
}

#[test]
fn qmp_quit_ends_qemu_and_drop_kills_a_running_guest() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = busybox_initrd(
        dir.path(),
        &[],
        "echo LBTEST-READY\nwhile true; do sleep 1; done\n",
    );
    let mut g = guest("quit", &initrd).spawn().unwrap();
    g.expect("LBTEST-READY", BOOT).unwrap();
    let version = g.human_monitor_command("info version").unwrap();
    assert!(version.starts_with('7') || version.starts_with('8') || version.starts_with('9'));
    g.quit().unwrap();
    let exit = g.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(exit.shutdown_reason.as_deref(), Some("host-qmp-quit"));

    // A guest dropped while running is gone afterwards.
    let g = guest("dropped", &initrd).spawn().unwrap();
    let pid = g.pid().unwrap();
    drop(g);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} survived the drop"
    );
}

/// Two guests' worth of plumbing in one namespace: bridge + tap, QEMU inside the namespace,
/// guest ↔ namespace traffic both ways, and a Rust socket inside the namespace.
#[test]
fn guest_on_a_bridge_in_a_netns_talks_to_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let mac = MacAddr::local(0x77_00_02);
    let initrd = busybox_initrd(
        dir.path(),
        &["virtio_pci", "virtio_net"],
        r#"i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip addr add 10.77.0.2/24 dev eth0
ip link set eth0 up
echo LBTEST-NET-UP mac=$(cat /sys/class/net/eth0/address)
ping -c 3 -W 5 10.77.0.1
mkdir -p /www && echo LBTEST-HTTP-BODY > /www/index.html
httpd -p 8080 -h /www
echo LBTEST-SERVING
while true; do sleep 1; done
"#,
    );
    let ns = Netns::new("harness-br").expect("network namespaces (run as root)");
    ns.add_bridge("br0").unwrap();
    ns.add_addr("br0", "10.77.0.1/24").unwrap();
    ns.add_tap("tap0", Some("br0")).unwrap();
    let ns_name = ns.name().to_owned();

    let g = guest("netns", &initrd)
        .nic(Nic::tap("tap0", mac))
        .netns(&ns)
        .spawn()
        .unwrap();
    let m = g.expect(r"LBTEST-NET-UP mac=(\S+)", BOOT).unwrap();
    assert_eq!(m.group(1), Some(mac.to_string().as_str()));
    let m = g
        .expect(
            r"(?P<tx>\d+) packets transmitted, (?P<rx>\d+) packets received",
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(m.name("tx"), Some("3"));
    assert_eq!(
        m.name("rx"),
        Some("3"),
        "guest → namespace ping lost packets"
    );
    g.expect("LBTEST-SERVING", Duration::from_secs(30)).unwrap();

    // Namespace → guest with the real ping.
    let out = ns
        .run(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rtt = text
        .lines()
        .find(|l| l.starts_with("rtt"))
        .unwrap_or_default();
    eprintln!(
        "figure: namespace → guest ping over bridge+tap ({}): {rtt}",
        g.accel().name()
    );
    assert!(text.contains("5 received"), "{text}");

    // A Rust socket inside the namespace fetches from busybox httpd in the guest.
    let body = ns
        .enter(|| -> std::io::Result<String> {
            let addr = SocketAddr::from((Ipv4Addr::new(10, 77, 0, 2), 8080));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(s, "GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })
        .unwrap()
        .unwrap();
    assert!(body.contains("200 OK"), "{body}");
    assert!(body.contains("LBTEST-HTTP-BODY"), "{body}");

    drop(g);
    drop(ns);
    let list = lbtest::process::run_args("ip", &["netns", "list"]).unwrap();
    assert!(!list.contains(&ns_name), "{ns_name} left behind: {list}");
}

/// User networking: the guest reaches a StaticServer on the host through 10.0.2.2, and the host
/// reaches the guest's httpd through a hostfwd port.
#[test]
fn user_networking_reaches_the_host_and_forwards_a_port() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "LBTEST-FROM-HOST\n").unwrap();
    let server = StaticServer::start(&www).unwrap();
    let fwd_port = lbtest::process::free_tcp_port().unwrap();

    let initrd = busybox_initrd(
        dir.path(),
        &["virtio_pci", "virtio_net"],
        &format!(
            r#"i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
# (busybox's `wget -T` crashes: bound it with `timeout` instead)
echo LBTEST-GOT $(timeout 20 wget -q -O - http://10.0.2.2:{port}/hello.txt)
mkdir -p /www && echo LBTEST-FROM-GUEST > /www/index.html
httpd -p 8080 -h /www
echo LBTEST-SERVING
while true; do sleep 1; done
"#,
            port = server.port()
        ),
    );
    let g = guest("usernet", &initrd)
        .nic(Nic::user(UserNet::new().hostfwd_tcp(fwd_port, 8080)))
        .spawn()
        .unwrap();
    g.expect("LBTEST-GOT LBTEST-FROM-HOST", BOOT).unwrap();
    assert!(server
        .requests_with_status(200)
        .contains(&"/hello.txt".to_owned()));
    g.expect("LBTEST-SERVING", Duration::from_secs(30)).unwrap();

    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, fwd_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.contains("LBTEST-FROM-GUEST"), "{body}");
}

/// PXE: QEMU's iPXE ROM gets `boot.ipxe` by DHCP + TFTP from user networking, then the kernel and
/// initramfs over HTTP from a StaticServer.
#[test]
fn pxe_boots_through_ipxe_tftp_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    busybox_initrd(&www, &[], "echo LBTEST-PXE-BOOTED\npoweroff -f\n");
    std::fs::copy(&kernel().vmlinuz, www.join("vmlinuz")).unwrap();
    let server = StaticServer::start(&www).unwrap();
    let tftp = dir.path().join("tftp");
    std::fs::create_dir(&tftp).unwrap();
    std::fs::write(
        tftp.join("boot.ipxe"),
        format!(
            "#!ipxe\nkernel http://10.0.2.2:{p}/vmlinuz {APPEND}\ninitrd http://10.0.2.2:{p}/initrd.cpio\nboot\n",
            p = server.port()
        ),
    )
    .unwrap();

    let started = Instant::now();
    let mut g = GuestBuilder::new("pxe")
        .pxe()
        .memory_mib(256)
        .nic(Nic::user(UserNet::new().tftp(&tftp).bootfile("boot.ipxe")))
        .spawn()
        .unwrap();
    g.expect("LBTEST-PXE-BOOTED", Duration::from_secs(120))
        .unwrap();
    let exit = g.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(exit.shutdown_reason.as_deref(), Some("guest-shutdown"));
    eprintln!(
        "figure: {} PXE (iPXE → TFTP script → HTTP kernel+initrd) to marker {:.2?}",
        g.accel().name(),
        started.elapsed()
    );
    let fetched = server.requests_with_status(200);
    assert!(fetched.contains(&"/vmlinuz".to_owned()), "{fetched:?}");
    assert!(fetched.contains(&"/initrd.cpio".to_owned()), "{fetched:?}");
}

#[test]
fn netns_veth_pair_carries_traffic_and_is_removed_even_on_panic() {
    let a = Netns::new("veth-a").expect("network namespaces (run as root)");
    let b = Netns::new("veth-b").unwrap();
    a.add_veth_to("va", &b, "vb").unwrap();
    a.add_addr("va", "10.78.0.1/30").unwrap();
    b.add_addr("vb", "10.78.0.2/30").unwrap();

    let listener = b
        .enter(|| std::net::TcpListener::bind("10.78.0.2:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let echoed = a
        .enter(|| {
            let mut s = TcpStream::connect(("10.78.0.2", port)).unwrap();
            s.write_all(b"hello").unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            buf
        })
        .unwrap();
    assert_eq!(&echoed, b"hello");
    server.join().unwrap();

    // A StaticServer inside one namespace, fetched from the other.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("cfg.toml"), "answer = 42\n").unwrap();
    let http = StaticServer::start_in(&a, www.path(), "10.78.0.1".parse().unwrap(), 8080).unwrap();
    assert_eq!(http.url("cfg.toml"), "http://10.78.0.1:8080/cfg.toml");
    let body = b
        .enter(|| {
            let mut s = TcpStream::connect(http.addr()).unwrap();
            write!(s, "GET /cfg.toml HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        })
        .unwrap();
    assert!(body.ends_with("answer = 42\n"), "{body}");

    // Processes started inside die with the namespace.
    let mut sleeper = a.spawn(&["sleep", "600"]).unwrap();
    let sleeper_pid = i32::try_from(sleeper.id()).unwrap();
    // `ip netns exec` enters the namespace, then execs sleep: wait until it is inside.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.pids().contains(&sleeper_pid) {
        assert!(
            Instant::now() < deadline,
            "sleep never showed up in {}",
            a.name()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let names = [a.name().to_owned(), b.name().to_owned()];
    let result = std::panic::catch_unwind(move || {
        let _a = a;
        let _b = b;
        panic!("a test failing with namespaces alive");
    });
    assert!(result.is_err());
    let list = lbtest::process::run_args("ip", &["netns", "list"]).unwrap();
    for n in &names {
        assert!(!list.contains(n.as_str()), "{n} left behind: {list}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = sleeper.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "sleep survived its namespace");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

/// The fault-injecting config server listens inside a namespace, is reached from another one,
/// and after `Gone` listens again inside the same namespace (the socket is remade there, not in
/// the test's own namespace).
#[test]
fn config_server_listens_inside_a_netns_and_again_after_gone() {
    use lbtest::config_server::{ConfigServer, Mode};

    let server_ns = Netns::new("cfgsrv-a").expect("network namespaces (run as root)");
    let client_ns = Netns::new("cfgsrv-b").unwrap();
    server_ns.add_veth_to("ca", &client_ns, "cb").unwrap();
    server_ns.add_addr("ca", "10.79.0.1/30").unwrap();
    client_ns.add_addr("cb", "10.79.0.2/30").unwrap();
    let dir = lbtest::ScratchDir::new("cfgsrv-ns");
    dir.write("lb.toml", "[node]\n");
    let addr: SocketAddr = "10.79.0.1:8080".parse().unwrap();
    let server = ConfigServer::start_in(&server_ns, addr, dir.path()).unwrap();
    assert_eq!(server.addr(), addr);

    let get = || {
        client_ns
            .enter(move || -> std::io::Result<String> {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(s, "GET /lb.toml HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
                let mut r = String::new();
                s.read_to_string(&mut r)?;
                Ok(r)
            })
            .unwrap()
    };
    let answer = get().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n[node]\n"), "{answer}");

    server.set_mode(Mode::Gone).unwrap();
    let refused = get().unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    server.set_mode(Mode::Serve).unwrap();
    assert!(get().unwrap().ends_with("[node]\n"));
    let paths: Vec<_> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/lb.toml", "/lb.toml"]);
}
