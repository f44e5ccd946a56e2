//! DHCP client against a real dnsmasq across a veth pair between two test namespaces.
//! Needs root, `ip` and `dnsmasq` (see net_support).

mod net_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use init::net::{configure, IpSpec, NetError};
use net_support::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const FIXED: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 57);

/// dnsmasq with everything the client should read: router, 2 DNS, domain, hostname and a fixed
/// address for our MAC, PXE boot file/server name/next server; 2-minute leases.
fn full_dnsmasq(lan: &Lan) -> Dnsmasq {
    Dnsmasq::start(
        &lan.server,
        &[
            "--dhcp-range=10.9.0.50,10.9.0.59,255.255.255.0,2m",
            "--dhcp-option=option:router,10.9.0.1",
            "--dhcp-option=option:dns-server,10.9.0.53,10.9.0.54",
            "--domain=lb.test",
            &format!("--dhcp-host={CLIENT_MAC_STR},node7,{FIXED}"),
            "--dhcp-boot=lb/pxe.efi,bootsrv,10.9.0.7",
        ],
    )
}

#[test]
fn lease_is_obtained_and_applied_with_all_options() {
    require(&["ip", "dnsmasq"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let dns = full_dnsmasq(&lan);
    let dir = TempDir::new("resolv");
    let opts = test_options(dir.path());
    let started = Instant::now();
    let (info, hostname) = lan.client.run(move || async move {
        with_own_hostname();
        let mut opts = opts;
        opts.set_hostname = true;
        let info = configure(&IpSpec::dhcp(), &opts).await.expect("DHCP lease");
        let keeper = info.keeper.clone().expect("a DHCP lease has a keeper");
        assert!(keeper.is_running());
        keeper.stop();
        (info, nix::unistd::gethostname().unwrap())
    });
    assert_eq!(hostname, "node7", "kernel hostname set from the lease");
    let took = started.elapsed();

    assert_eq!(info.device, CLIENT_DEV);
    assert_eq!(info.mac, CLIENT_MAC);
    assert_eq!(info.address, FIXED);
    assert_eq!(info.prefix_len, 24);
    assert_eq!(info.gateway, Some(SERVER));
    assert_eq!(
        info.dns,
        vec![Ipv4Addr::new(10, 9, 0, 53), Ipv4Addr::new(10, 9, 0, 54)]
    );
    assert_eq!(info.domain.as_deref(), Some("lb.test"));
    assert_eq!(info.hostname.as_deref(), Some("node7"));
    assert_eq!(info.next_server, Some(Ipv4Addr::new(10, 9, 0, 7)));
    assert_eq!(info.bootfile.as_deref(), Some("lb/pxe.efi"));
    assert_eq!(info.tftp_server_name.as_deref(), Some("bootsrv"));
    let lease = info.lease.as_ref().unwrap();
    assert_eq!(lease.server, SERVER);
    assert_eq!(lease.lease_time, Some(Duration::from_secs(120)));
    assert_eq!(lease.t1, Some(Duration::from_secs(60)));

    // The kernel really has it: address with the lease's lifetime, default route, lo.
    let addrs = lan.client_addrs();
    assert!(addrs.contains("inet 10.9.0.57/24"), "{addrs}");
    assert!(
        addrs.contains("valid_lft 11") || addrs.contains("valid_lft 120sec"),
        "address lifetime follows the lease: {addrs}"
    );
    let routes = lan.client_routes();
    assert!(
        routes.contains("default via 10.9.0.1 dev lan0 proto dhcp"),
        "{routes}"
    );
    let lo = lan.client.ip(&["-4", "addr", "show", "dev", "lo"]);
    assert!(
        lo.contains("inet 127.0.0.1/8") && lo.contains(",UP"),
        "{lo}"
    );

    let resolv = std::fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap();
    assert_eq!(
        resolv,
        "# written by init from DHCP server 10.9.0.1\nsearch lb.test\n\
         nameserver 10.9.0.53\nnameserver 10.9.0.54\n"
    );

    // The server's view: one full exchange with our MAC.
    let ack = dns.lines_with("DHCPACK(srv0)");
    assert_eq!(ack.len(), 1, "{}", dns.log());
    assert!(
        ack[0].contains("10.9.0.57 02:00:00:00:09:07 node7"),
        "{ack:?}"
    );
    // Our option 55 reached it (dnsmasq logs the requested options).
    assert!(
        dns.log()
            .contains("requested options: 1:netmask, 3:router, 6:dns-server"),
        "{}",
        dns.log()
    );
    // Real traffic over the configured address: TCP to the server namespace.
    let listener = lan.server.thread(|| {
        let l = std::net::TcpListener::bind("10.9.0.1:7070").unwrap();
        l.set_nonblocking(false).unwrap();
        let (_, peer) = l.accept().unwrap();
        peer
    });
    std::thread::sleep(Duration::from_millis(100));
    let local = lan.client.thread(|| {
        let s = std::net::TcpStream::connect_timeout(
            &"10.9.0.1:7070".parse().unwrap(),
            Duration::from_secs(3),
        )
        .expect("TCP to the server over the leased address");
        s.local_addr().unwrap()
    });
    let local = local.join().unwrap();
    let peer = listener.join().unwrap();
    assert_eq!(local.ip(), Ipv4Addr::new(10, 9, 0, 57));
    assert_eq!(peer, local);
    eprintln!("first lease in {took:?}");
}

#[test]
fn ip_values_win_over_the_lease_and_hostname_is_sent() {
    require(&["ip", "dnsmasq"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let dns = Dnsmasq::start(
        &lan.server,
        &[
            "--dhcp-range=10.9.0.50,10.9.0.59,255.255.255.0,2m",
            "--dhcp-option=option:router,10.9.0.1",
            "--dhcp-option=option:dns-server,10.9.0.53",
        ],
    );
    let dir = TempDir::new("resolv");
    let opts = test_options(dir.path());
    let spec = IpSpec::parse(":10.9.0.8:10.9.0.254::mybox:lan0:dhcp:10.9.0.99").unwrap();
    let info = lan.client.run(move || async move {
        let info = configure(&spec, &opts).await.expect("DHCP lease");
        info.keeper.as_ref().unwrap().stop();
        info
    });
    assert!(
        (50..=59).contains(&info.address.octets()[3]) && info.address.octets()[..3] == [10, 9, 0],
        "{info:?}"
    );
    assert_eq!(info.gateway, Some(Ipv4Addr::new(10, 9, 0, 254)));
    assert_eq!(info.dns, vec![Ipv4Addr::new(10, 9, 0, 99)]);
    assert_eq!(info.hostname.as_deref(), Some("mybox"));
    assert_eq!(info.next_server, Some(Ipv4Addr::new(10, 9, 0, 8)));
    let routes = lan.client_routes();
    assert!(
        routes.contains("default via 10.9.0.254 dev lan0"),
        "{routes}"
    );
    // dnsmasq saw our hostname (option 12) and recorded it with the lease.
    let ack = dns.lines_with("DHCPACK(srv0)");
    assert!(ack.iter().any(|l| l.ends_with(" mybox")), "{}", dns.log());
}

/// Waits (bounded) on the keeper's watch until `pred` holds, returning the lease seen.
async fn wait_lease(
    rx: &mut tokio::sync::watch::Receiver<Option<init::net::Lease>>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Option<init::net::Lease>) -> bool,
) -> Option<init::net::Lease> {
    match lbtest::wait::watch_until(rx, timeout, pred).await {
        Ok(l) => l,
        // Sender gone: nothing can change any more.
        Err(_) if rx.has_changed().is_err() => panic!("{what}: keeper ended"),
        Err(last) => panic!("{what}: not within {timeout:?}; lease now {last:?}"),
    }
}

#[test]
fn renews_at_t1_with_the_server() {
    require(&["ip", "dnsmasq"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let dns = full_dnsmasq(&lan);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    // dnsmasq's shortest lease is 2 minutes; treat it as 4 s so T1 = 2 s, T2 = 3.5 s.
    opts.dhcp.lease_cap = Some(Duration::from_secs(4));
    opts.dhcp.extend_retransmit_min = Duration::from_millis(300);
    let (first, renewals) = lan.client.run(move || async move {
        let info = configure(&IpSpec::dhcp(), &opts).await.expect("DHCP lease");
        let keeper = info.keeper.clone().unwrap();
        let first = info.lease.clone().unwrap();
        let mut rx = keeper.watch();
        let mut renewals = vec![];
        let mut last = first.obtained_at;
        for n in 0..2 {
            let l = wait_lease(
                &mut rx,
                Duration::from_secs(6),
                &format!("renewal {n}"),
                |l| l.as_ref().is_some_and(|l| l.obtained_at > last),
            )
            .await
            .unwrap();
            last = l.obtained_at;
            renewals.push(l);
        }
        keeper.stop();
        (first, renewals)
    });
    for (i, l) in renewals.iter().enumerate() {
        assert_eq!(l.address, FIXED, "same address after renewal {i}");
        let prev = if i == 0 {
            first.obtained_at
        } else {
            renewals[i - 1].obtained_at
        };
        let gap = l.obtained_at - prev;
        assert!(
            gap >= Duration::from_millis(1950) && gap <= Duration::from_millis(2400),
            "renewal {i} came {gap:?} after the previous lease, T1 is 2 s"
        );
    }
    // The server saw the initial REQUEST/ACK and two renewals.
    let acks = dns.lines_with("DHCPACK(srv0) 10.9.0.57");
    assert_eq!(acks.len(), 3, "{}", dns.log());
    let addrs = lan.client_addrs();
    assert!(addrs.contains("inet 10.9.0.57/24"), "{addrs}");
}

#[test]
fn server_gone_renew_unicast_rebind_broadcast_expire_then_recover() {
    require(&["ip", "dnsmasq"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let mut dns = full_dnsmasq(&lan);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    // Lease 4 s: T1 2 s, T2 3.5 s, expiry 4 s; retransmit at least every 300 ms.
    opts.dhcp.lease_cap = Some(Duration::from_secs(4));
    opts.dhcp.extend_retransmit_min = Duration::from_millis(300);
    // Phase 1: lease from dnsmasq, then the server dies.
    let (tx_lease, rx_lease) = std::sync::mpsc::channel();
    let (tx_go, rx_go) = std::sync::mpsc::channel::<()>();
    let client = lan.client.spawn_async(move || async move {
        let info = configure(&IpSpec::dhcp(), &opts).await.expect("DHCP lease");
        let keeper = info.keeper.clone().unwrap();
        let first = info.lease.clone().unwrap();
        tx_lease.send(first.clone()).unwrap();
        let mut rx = keeper.watch();
        // Lost at expiry...
        wait_lease(&mut rx, Duration::from_secs(8), "lease loss", |l| {
            l.is_none()
        })
        .await;
        let lost_at = Instant::now();
        // ...and found again once a server is back (the test says when).
        tokio::task::spawn_blocking(move || rx_go.recv())
            .await
            .unwrap()
            .expect("go signal");
        let again = wait_lease(&mut rx, Duration::from_secs(10), "new lease", |l| {
            l.is_some()
        })
        .await
        .unwrap();
        keeper.stop();
        (lost_at, again)
    });
    let first = rx_lease
        .recv_timeout(Duration::from_secs(20))
        .expect("first lease");
    dns.stop();
    let listener = Listener::start(&lan.server, SERVER);

    // Phase 2: the wire, as an unresponsive server sees it.
    let seen = listener.wait_for(Duration::from_secs(8), |s| {
        s.iter().any(|m| m.kind() == Some(MessageType::Discover))
    });
    let t = |s: &Seen| {
        s.at.saturating_duration_since(first.obtained_at)
            .as_secs_f64()
    };
    let requests: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.kind() == Some(MessageType::Request))
        .collect();
    let unicast: Vec<&Seen> = requests.iter().copied().filter(|s| !s.broadcast).collect();
    let broadcast: Vec<&Seen> = requests.iter().copied().filter(|s| s.broadcast).collect();
    let discover = seen
        .iter()
        .find(|s| s.kind() == Some(MessageType::Discover))
        .unwrap();
    let times = |v: &[&Seen]| v.iter().map(|s| format!("{:.3}", t(s))).collect::<Vec<_>>();
    eprintln!(
        "renew (unicast) at {:?}, rebind (broadcast) at {:?}, discover at {:.3}",
        times(&unicast),
        times(&broadcast),
        t(discover)
    );
    // RENEWING: unicast to the server from T1 = 2 s until T2 = 3.5 s, ciaddr = our address.
    assert!(
        unicast.len() >= 3,
        "renew retransmissions: {:?}",
        times(&unicast)
    );
    assert!(
        (1.95..2.5).contains(&t(unicast[0])),
        "first renew at T1: {:?}",
        times(&unicast)
    );
    assert!(unicast
        .iter()
        .all(|s| s.msg.ciaddr() == FIXED && t(s) < 3.5));
    assert!(unicast.iter().all(|s| s.msg.xid() == unicast[0].msg.xid()));
    // REBINDING: broadcast from T2 until expiry at 4 s.
    assert!(!broadcast.is_empty(), "no rebind REQUEST");
    assert!(
        (3.45..3.9).contains(&t(broadcast[0])),
        "rebind at T2: {:?}",
        times(&broadcast)
    );
    assert!(broadcast
        .iter()
        .all(|s| s.msg.ciaddr() == FIXED && t(s) < 4.05));
    // Expired at 4 s: DISCOVER again, no ciaddr.
    assert!(
        (3.95..4.5).contains(&t(discover)),
        "DISCOVER after expiry at {:.3}",
        t(discover)
    );
    assert_eq!(discover.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    // The address and the default route are gone from the kernel.
    std::thread::sleep(Duration::from_millis(200));
    let addrs = lan.client_addrs();
    assert!(
        !addrs.contains("10.9.0.57"),
        "address still there after expiry: {addrs}"
    );
    let routes = lan.client_routes();
    assert!(
        !routes.contains("default"),
        "default route still there: {routes}"
    );

    // Phase 3: a server comes back; the client (still backing off) gets a lease again.
    drop(listener);
    let dns2 = full_dnsmasq(&lan);
    tx_go.send(()).unwrap();
    let (lost_at, again) = join(client);
    let lost = lost_at.saturating_duration_since(first.obtained_at);
    assert!(
        lost >= Duration::from_millis(3950) && lost < Duration::from_millis(4500),
        "lease reported lost {lost:?} after it was obtained; it lasts 4 s"
    );
    assert_eq!(again.address, FIXED);
    assert!(lan.client_addrs().contains("inet 10.9.0.57/24"));
    assert_eq!(dns2.lines_with("DHCPACK(srv0)").len(), 1, "{}", dns2.log());
}

#[test]
fn nak_on_renew_drops_the_address_and_starts_over() {
    require(&["ip", "dnsmasq"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let mut first_server = full_dnsmasq(&lan);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    opts.dhcp.lease_cap = Some(Duration::from_secs(4));
    opts.dhcp.extend_retransmit_min = Duration::from_millis(300);
    opts.dhcp.nak_restart_delay = Duration::from_millis(200);

    let (tx_lease, rx_lease) = std::sync::mpsc::channel();
    let client = lan.client.spawn_async(move || async move {
        let info = configure(&IpSpec::dhcp(), &opts).await.expect("DHCP lease");
        let keeper = info.keeper.clone().unwrap();
        tx_lease.send(()).unwrap();
        let mut rx = keeper.watch();
        let mut history = vec![Some(info.address)];
        // Lost (NAK), then a different address.
        wait_lease(&mut rx, Duration::from_secs(8), "NAK drop", |l| l.is_none()).await;
        history.push(None);
        let l = wait_lease(&mut rx, Duration::from_secs(8), "new lease", |l| {
            l.is_some()
        })
        .await
        .unwrap();
        history.push(Some(l.address));
        keeper.stop();
        history
    });
    rx_lease
        .recv_timeout(Duration::from_secs(20))
        .expect("first lease");
    // Replace the server with one that knows nothing of 10.9.0.57 and is authoritative: it NAKs
    // the renewal at T1, then hands out another address.
    first_server.stop();
    let second = Dnsmasq::start(
        &lan.server,
        &[
            "--dhcp-range=10.9.0.100,10.9.0.109,255.255.255.0,2m",
            "--dhcp-option=option:router,10.9.0.1",
            &format!("--dhcp-host={CLIENT_MAC_STR},10.9.0.101"),
            "--dhcp-authoritative",
        ],
    );
    let history = join(client);
    assert_eq!(
        history,
        vec![Some(FIXED), None, Some(Ipv4Addr::new(10, 9, 0, 101))]
    );
    let log = second.log();
    assert!(
        log.contains("DHCPNAK(srv0) 10.9.0.57 02:00:00:00:09:07"),
        "the new server NAKed the renewal:\n{log}"
    );
    assert!(
        log.contains("DHCPACK(srv0) 10.9.0.101 02:00:00:00:09:07"),
        "{log}"
    );
    let addrs = lan.client_addrs();
    assert!(addrs.contains("inet 10.9.0.101/24"), "{addrs}");
    assert!(!addrs.contains("10.9.0.57"), "old address removed: {addrs}");
}

#[test]
fn no_server_backoff_is_bounded_and_times_out() {
    require(&["ip"]);
    init_tracing();
    let lan = Lan::new(SERVER);
    let listener = Listener::start(&lan.server, SERVER);
    let dir = TempDir::new("resolv");
    let mut opts = test_options(dir.path());
    // DISCOVER at 0, 0.5, 1.5, 3.5, 5.5 s (0.5 s doubling, capped at 2 s), give up at 6 s.
    opts.dhcp_timeout = Duration::from_secs(6);
    let started = Instant::now();
    let result = lan
        .client
        .run(move || async move { configure(&IpSpec::dhcp(), &opts).await.map(|_| ()) });
    let took = started.elapsed();
    match result {
        Err(NetError::DhcpTimeout {
            device,
            discovers,
            offers,
            requests,
            ..
        }) => {
            assert_eq!(device, CLIENT_DEV);
            assert_eq!((discovers, offers, requests), (5, 0, 0));
        }
        other => panic!("expected a DHCP timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(8),
        "gave up after {took:?}"
    );
    // The server side saw exactly those DISCOVERs, broadcast, one xid, secs counting up.
    std::thread::sleep(Duration::from_millis(1000));
    let seen = listener.seen();
    assert_eq!(seen.len(), 5, "nothing is sent after giving up: {seen:#?}");
    assert!(seen
        .iter()
        .all(|s| s.broadcast && s.kind() == Some(MessageType::Discover)));
    assert!(seen.iter().all(|s| s.msg.xid() == seen[0].msg.xid()));
    assert!(seen.iter().all(|s| s.msg.flags().broadcast()));
    let gaps: Vec<f64> = seen
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    for (gap, want) in gaps.iter().zip([0.5, 1.0, 2.0, 2.0]) {
        assert!((gap - want).abs() < 0.25, "gaps {gaps:?}, want 0.5 1 2 2");
    }
    let secs: Vec<u16> = seen.iter().map(|s| s.msg.secs()).collect();
    assert_eq!(secs, vec![0, 0, 1, 3, 5]);
    eprintln!("DISCOVER gaps {gaps:?}, gave up after {took:?}");
}
