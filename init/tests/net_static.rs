//! Static `ip=`, link choice and carrier waiting, in test namespaces joined by a veth pair.
//! Needs root and `ip` (see net_support).

mod net_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use init::net::{configure, IpSpec, LinkError, NetError};
use net_support::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 1);

/// TCP from the client namespace to the server namespace: proves the address and route work.
fn tcp_reaches_server(lan: &Lan, port: u16) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = lan.server.thread(move || {
        let l = std::net::TcpListener::bind((SERVER, port)).unwrap();
        tx.send(()).unwrap();
        l.accept().unwrap().1
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let local = join(lan.client.thread(move || {
        std::net::TcpStream::connect_timeout(&(SERVER, port).into(), Duration::from_secs(3))
            .expect("TCP to the server namespace")
            .local_addr()
            .unwrap()
    }));
    assert_eq!(join(server), local);
    local
}

#[test]
fn static_ip_is_applied() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let dir = TempDir::new("resolv");
    let opts = test_options(dir.path());
    let spec = IpSpec::parse(
        "10.9.1.2:10.9.1.7:10.9.1.1:255.255.255.0:node7:lan0:off:10.9.1.53:10.9.1.54:10.9.1.123",
    )
    .unwrap();
    let (info, hostname) = lan.client.run(move || async move {
        with_own_hostname();
        let mut opts = opts;
        opts.set_hostname = true;
        let info = configure(&spec, &opts).await.expect("static config");
        (info, nix::unistd::gethostname().unwrap())
    });
    assert_eq!(hostname, "node7", "kernel hostname set from ip=");
    assert_eq!(info.device, CLIENT_DEV);
    assert_eq!(info.mac, CLIENT_MAC);
    assert_eq!(info.address, Ipv4Addr::new(10, 9, 1, 2));
    assert_eq!(info.prefix_len, 24);
    assert_eq!(info.gateway, Some(SERVER));
    assert_eq!(info.hostname.as_deref(), Some("node7"));
    assert_eq!(info.next_server, Some(Ipv4Addr::new(10, 9, 1, 7)));
    assert_eq!(info.ntp, vec![Ipv4Addr::new(10, 9, 1, 123)]);
    assert!(info.lease.is_none() && info.keeper.is_none());

    let addrs = lan.client_addrs();
    assert!(addrs.contains("inet 10.9.1.2/24"), "{addrs}");
    assert!(addrs.contains("valid_lft forever"), "{addrs}");
    let routes = lan.client_routes();
    assert!(
        routes.contains("default via 10.9.1.1 dev lan0 proto static"),
        "{routes}"
    );
    let lo = lan.client.ip(&["-4", "addr", "show", "dev", "lo"]);
    assert!(
        lo.contains("inet 127.0.0.1/8") && lo.contains(",UP"),
        "{lo}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap(),
        "# written by init from ip=\nnameserver 10.9.1.53\nnameserver 10.9.1.54\n"
    );
    assert_eq!(
        tcp_reaches_server(&lan, 7071).ip(),
        Ipv4Addr::new(10, 9, 1, 2)
    );

    // Applying the same spec again (init restarted its network step) is not an error.
    let opts = test_options(dir.path());
    let spec = IpSpec::parse("10.9.1.2::10.9.1.1:24::lan0:off").unwrap();
    lan.client
        .run(move || async move { configure(&spec, &opts).await.expect("idempotent") });
}

#[test]
fn without_device_the_first_link_with_carrier_is_chosen_after_waiting() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    // A second ethernet link that never gets carrier (its peer stays down), and the real one's
    // peer down for the first second.
    lan.client.ip(&[
        "link",
        "add",
        "dead0",
        "type",
        "veth",
        "peer",
        "name",
        "dead1",
        "netns",
        lan.server.name(),
    ]);
    lan.server.ip(&["link", "set", SERVER_DEV, "down"]);
    let dir = TempDir::new("resolv");
    let opts = test_options(dir.path());
    let spec = IpSpec::parse("10.9.1.2::10.9.1.1:24").unwrap();
    let started = Instant::now();
    let client = lan
        .client
        .spawn_async(move || async move { configure(&spec, &opts).await });
    std::thread::sleep(Duration::from_secs(1));
    lan.server.ip(&["link", "set", SERVER_DEV, "up"]);
    let info = join(client).expect("configured once carrier came");
    let took = started.elapsed();
    assert_eq!(info.device, CLIENT_DEV);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "waited {took:?} for carrier"
    );
    // Every ethernet link was brought up; only the chosen one got the address.
    let dead = lan.client.ip(&["link", "show", "dev", "dead0"]);
    assert!(dead.contains(",UP"), "{dead}");
    let dead_addrs = lan.client.ip(&["-4", "addr", "show", "dev", "dead0"]);
    assert!(!dead_addrs.contains("inet "), "{dead_addrs}");
    assert!(lan.client_addrs().contains("inet 10.9.1.2/24"));
    tcp_reaches_server(&lan, 7072);
    eprintln!("carrier wait: {took:?}");
}

#[test]
fn no_carrier_is_a_bounded_error_naming_the_link() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    lan.server.ip(&["link", "set", SERVER_DEV, "down"]);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    opts.carrier_timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let r = lan
        .client
        .run(move || async move { configure(&IpSpec::dhcp(), &opts).await.map(|_| ()) });
    let took = started.elapsed();
    match r {
        Err(NetError::Link(LinkError::NoCarrier { candidates, .. })) => {
            assert_eq!(candidates, vec![CLIENT_DEV.to_string()]);
        }
        other => panic!("expected NoCarrier, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[test]
fn unknown_device_is_an_error_listing_the_links() {
    require(&["ip"]);
    let lan = Lan::new(SERVER);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    opts.carrier_timeout = Duration::from_millis(300);
    let spec = IpSpec::parse(":::::eth9:dhcp").unwrap();
    let r = lan
        .client
        .run(move || async move { configure(&spec, &opts).await.map(|_| ()) });
    match r {
        Err(NetError::Link(e @ LinkError::NoSuchLink { .. })) => {
            let msg = e.to_string();
            assert!(
                msg.contains("eth9") && msg.contains("lan0") && msg.contains("lo"),
                "{msg}"
            );
        }
        other => panic!("expected NoSuchLink, got {other:?}"),
    }
}

#[test]
fn ip_off_only_brings_up_loopback() {
    require(&["ip"]);
    let lan = Lan::new(SERVER);
    let dir = TempDir::new("resolv");
    let opts = test_options(dir.path());
    let r = lan.client.run(move || async move {
        configure(&IpSpec::parse("off").unwrap(), &opts)
            .await
            .map(|_| ())
    });
    assert!(matches!(r, Err(NetError::Disabled)), "{r:?}");
    let lo = lan.client.ip(&["-4", "addr", "show", "dev", "lo"]);
    assert!(
        lo.contains("inet 127.0.0.1/8") && lo.contains(",UP"),
        "{lo}"
    );
    let link = lan.client.ip(&["link", "show", "dev", CLIENT_DEV]);
    assert!(link.contains("state DOWN"), "lan0 untouched: {link}");
    assert!(!dir.path().join("etc/resolv.conf").exists());
}
