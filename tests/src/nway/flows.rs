//! Fixed flows and what they tell: a flow is the client's address and a chosen source port to a
//! VIP's port, so the same flow can be sent again (through another balancer, after a real is
//! removed) and land where the balancers' hashing puts it. Plus the router's view: the next hops
//! of its route to a VIP, from `ip -j route`.
//!
//! The probes are real TCP connections from a bound source port: an HTTP GET answered by the
//! real's name, closed with a reset (SO_LINGER 0) so neither end keeps the 4-tuple in
//! TIME_WAIT and the same flow can be opened again at once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use nix::sys::time::TimeVal;

/// Which real answered each flow (by source port); flows that failed are left out.
pub type FlowMap = BTreeMap<u16, String>;

/// One GET of `/` from `src` to `dst`; the body (the real's name) or why not.
pub fn get_from(src: SocketAddrV4, dst: SocketAddrV4, timeout: Duration) -> Result<String, String> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let tv = TimeVal::new(
        timeout.as_secs() as i64,
        timeout.subsec_micros() as nix::libc::suseconds_t,
    );
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    // SO_SNDTIMEO bounds connect(2) too.
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(|e| format!("SO_SNDTIMEO: {e}"))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    setsockopt(
        &fd,
        sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .map_err(|e| format!("SO_LINGER: {e}"))?;
    use std::os::fd::AsRawFd;
    bind(fd.as_raw_fd(), &SockaddrIn::from(src)).map_err(|e| format!("bind {src}: {e}"))?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).map_err(|e| format!("connect: {e}"))?;
    let mut s = TcpStream::from(fd);
    s.write_all(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    body_name(&answer)
}

/// The real's name from an HTTP answer (`200`, body `NAME\n`).
pub fn body_name(answer: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(format!("not 200: {head:?}"));
    }
    let name = body.trim();
    if name.is_empty() {
        return Err("empty body".into());
    }
    Ok(name.to_string())
}

/// Sends every flow of `ports` from `client` to `vip` once, in order (call inside the client's
/// namespace); which real answered each, and the failures.
pub fn probe(
    client: Ipv4Addr,
    ports: impl IntoIterator<Item = u16>,
    vip: SocketAddrV4,
    timeout: Duration,
) -> (FlowMap, BTreeMap<u16, String>) {
    let mut ok = FlowMap::new();
    let mut failed = BTreeMap::new();
    for port in ports {
        match get_from(SocketAddrV4::new(client, port), vip, timeout) {
            Ok(real) => {
                ok.insert(port, real);
            }
            Err(e) => {
                failed.insert(port, e);
            }
        }
    }
    (ok, failed)
}

/// Flows both maps answered that landed on different reals.
pub fn disagreements(a: &FlowMap, b: &FlowMap) -> Vec<u16> {
    a.iter()
        .filter(|(port, real)| b.get(port).is_some_and(|r| r != *real))
        .map(|(port, _)| *port)
        .collect()
}

/// How flows moved between `before` and `after`: (flows answered both times, flows that were
/// on `gone` before, flows that moved although they were not on `gone`).
pub fn moved(before: &FlowMap, after: &FlowMap, gone: &str) -> MoveCount {
    let mut m = MoveCount::default();
    for (port, was) in before {
        let Some(now) = after.get(port) else { continue };
        m.compared += 1;
        if was == gone {
            m.on_gone += 1;
        } else if now != was {
            m.others_moved += 1;
        }
    }
    m
}

/// See [`moved`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveCount {
    /// Flows answered before and after.
    pub compared: usize,
    /// Flows that were on the removed real (they must move: the ideal).
    pub on_gone: usize,
    /// Flows that moved although their real stayed (Maglev's slack; 0 is ideal).
    pub others_moved: usize,
}

/// Flows per real.
pub fn spread(map: &FlowMap) -> BTreeMap<String, usize> {
    let mut s = BTreeMap::new();
    for real in map.values() {
        *s.entry(real.clone()).or_insert(0) += 1;
    }
    s
}

/// The next hops of the first route in `ip -j route show PREFIX` output: one gateway for a
/// single-path route, every `nexthops` gateway for a multipath one, none without a route.
pub fn next_hops(json: &str) -> Result<Vec<IpAddr>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("ip -j route: {e}: {json:?}"))?;
    let Some(route) = v.as_array().and_then(|a| a.first()) else {
        return Ok(Vec::new());
    };
    let gw = |x: &serde_json::Value| -> Option<IpAddr> { x.get("gateway")?.as_str()?.parse().ok() };
    if let Some(hops) = route.get("nexthops").and_then(|h| h.as_array()) {
        let mut out: Vec<IpAddr> = hops.iter().filter_map(gw).collect();
        out.sort();
        return Ok(out);
    }
    Ok(gw(route).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(u16, &str)]) -> FlowMap {
        pairs.iter().map(|(p, r)| (*p, r.to_string())).collect()
    }

    #[test]
    fn next_hops_of_single_and_multipath_routes() {
        // What `ip -j route show 10.73.100.1` prints (iproute2 6.1) for each shape.
        let multi = r#"[{"dst":"10.73.100.1","protocol":"bird","metric":32,"flags":[],"nexthops":[{"gateway":"10.73.0.13","dev":"br0","weight":1,"flags":[]},{"gateway":"10.73.0.11","dev":"br0","weight":1,"flags":[]},{"gateway":"10.73.0.12","dev":"br0","weight":1,"flags":[]}]}]"#;
        assert_eq!(
            next_hops(multi).unwrap(),
            ["10.73.0.11", "10.73.0.12", "10.73.0.13"]
                .map(|a| a.parse::<IpAddr>().unwrap())
                .to_vec()
        );
        let single = r#"[{"dst":"10.73.100.1","gateway":"10.73.0.12","dev":"br0","protocol":"bird","metric":32,"flags":[]}]"#;
        assert_eq!(
            next_hops(single).unwrap(),
            vec!["10.73.0.12".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(next_hops("[]\n").unwrap(), Vec::<IpAddr>::new());
        assert!(next_hops("Error: any").is_err());
    }

    #[test]
    fn moves_are_counted_against_the_removed_real() {
        let before = map(&[(1, "r1"), (2, "r2"), (3, "r3"), (4, "r2"), (5, "r1")]);
        let after = map(&[(1, "r1"), (2, "r1"), (3, "r1"), (4, "r3")]);
        assert_eq!(
            moved(&before, &after, "r2"),
            MoveCount {
                compared: 4,
                on_gone: 2,
                others_moved: 1
            }
        );
        assert_eq!(disagreements(&before, &after), vec![2, 3, 4]);
        assert_eq!(spread(&before)["r1"], 2);
    }

    #[test]
    fn http_answers_are_read_for_the_real_name() {
        assert_eq!(
            body_name(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nr2\n").unwrap(),
            "r2"
        );
        assert!(body_name(b"HTTP/1.0 503 Service Unavailable\r\n\r\ndown\n").is_err());
        assert!(body_name(b"").is_err());
    }
}
