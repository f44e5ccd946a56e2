//! Fuzz targets: every decoder of lbd that takes bytes from the network or an operator, as a
//! function of arbitrary bytes that must never panic (and, where an encoder exists, whatever
//! decodes must encode and decode back to itself).
//!
//! `tools/fuzz` runs them under libFuzzer (cargo-fuzz, stable toolchain, `--sanitizer none`);
//! `lbd/tests/fuzz_replay.rs` replays their seed and regression corpora in plain `cargo test`.

use crate::vrrp::packet::{Advert, MULTICAST_V4, MULTICAST_V6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// A fuzz target: its name (the name of its corpus directories) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// The targets of this crate.
pub const TARGETS: &[Target] = &[
    ("vrrp_packet", vrrp_packet),
    ("ipvs_reply", ipvs_reply),
    ("rtnetlink_reply", rtnetlink_reply),
    ("api_request", api_request),
    ("config", config),
    ("config_edit", config_edit),
    ("check_reply", check_reply),
];

/// A VRRP advertisement as received (byte 0: bit 0 IPv6, bit 1 version 3; byte 1: TTL; the
/// rest: the packet), through the decoder and through a router's receive path.
pub fn vrrp_packet(data: &[u8]) {
    use crate::vrrp::{Input, Packet, Router, Spec, Version};
    if data.len() < 2 {
        return;
    }
    let ipv6 = data[0] & 1 == 1;
    let ttl = data[1];
    let msg = &data[2..];
    let (src, dst) = if ipv6 {
        (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3)),
            IpAddr::V6(MULTICAST_V6),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
            IpAddr::V4(MULTICAST_V4),
        )
    };
    if let Ok(adv) = Advert::parse(msg, src, dst) {
        // What parses encodes, and decodes to the same advertisement (fields the decoder
        // ignores, such as reserved bits or type-0 auth data, may differ in the bytes).
        let back = adv.emit(src, dst).expect("a parsed advert encodes");
        assert_eq!(Advert::parse(&back, src, dst).expect("re-parse"), adv);
    }
    let version = if data[0] & 2 == 2 {
        Version::V3
    } else {
        Version::V2
    };
    let spec = Spec {
        name: "f".into(),
        interface: "eth0".into(),
        vrid: 1,
        version,
        ipv6,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        vips: vec![if ipv6 { "fe80::1/64" } else { "10.0.0.1/24" }
            .parse()
            .expect("a prefix")],
        unicast_peers: vec![],
        unicast_source: None,
        auth_pass: (version == Version::V2).then(|| "pw".to_string()),
        track_interfaces: vec![],
        virtual_mac: None,
        accept: false,
        garp_count: 1,
        garp_repeat_after: Duration::ZERO,
        quorum_priority_drop: 0,
        primary: Some(if ipv6 {
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
        }),
        resume: false,
    };
    let mut router = Router::new();
    let _ = router.step(
        Duration::ZERO,
        Input::Configure {
            instances: vec![spec],
            sync_groups: Default::default(),
        },
    );
    let _ = router.step(
        Duration::from_millis(1),
        Input::Packet(Packet {
            ifname: "eth0".into(),
            src,
            dst,
            ttl,
            data: msg.to_vec(),
        }),
    );
}

/// An IPVS generic-netlink reply (byte 0: the command; the rest: its attributes), and a
/// netlink header.
pub fn ipvs_reply(data: &[u8]) {
    use crate::ipvs::msg::{CmdAttr, DestEntry, IpvsMessage, ServiceEntry};
    let _ = crate::ipvs::nl::NlHeader::parse(data);
    let Some((&cmd, attrs)) = data.split_first() else {
        return;
    };
    let Ok(msg) = IpvsMessage::parse(cmd, attrs) else {
        return;
    };
    let mut back = Vec::new();
    msg.emit_attrs(&mut back);
    assert_eq!(
        IpvsMessage::parse(cmd, &back).expect("what parsed re-parses"),
        msg
    );
    // The entries the client builds from a dump's nested attributes.
    let _ = ServiceEntry::parse_nested(attrs);
    let _ = DestEntry::parse_nested(attrs, 2);
    let _ = DestEntry::parse_nested(attrs, 10);
    for a in &msg.attrs {
        if let CmdAttr::Other(raw) = a {
            let _ = ServiceEntry::parse_nested(&raw.data);
        }
    }
}

/// An rtnetlink reply: a link message and an address message, read as lbd and init read them.
pub fn rtnetlink_reply(data: &[u8]) {
    #[cfg(feature = "netlink")]
    {
        use rtnetlink::packet_core::Parseable;
        use rtnetlink::packet_route::address::AddressMessage;
        use rtnetlink::packet_route::link::LinkMessage;
        if let Ok(m) = LinkMessage::parse(data) {
            let _ = crate::netlink::Link::from_message(&m);
        }
        if let Ok(m) = AddressMessage::parse(data) {
            let _ = crate::netlink::Addr::from_message(&m);
        }
    }
    #[cfg(not(feature = "netlink"))]
    let _ = data;
}

/// A request to the control API (Unix socket or `api_listen`).
pub fn api_request(data: &[u8]) {
    #[cfg(feature = "daemon")]
    if let Ok(Some((req, head_len, _body))) = crate::api::http::parse_head(data) {
        assert!(head_len <= data.len());
        let _ = req.param("real");
    }
    #[cfg(not(feature = "daemon"))]
    let _ = data;
}

/// A config file: TOML text through the whole validation.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::config::parse("fuzz.toml", text) {
        Ok(loaded) => {
            let _ = loaded.config.summary();
            let _ = loaded.warning_lines();
        }
        Err(e) => {
            // Every error renders, with a location inside the text.
            let _ = e.to_string();
            for d in e.errors() {
                if let Some(span) = &d.span {
                    assert!(span.start <= text.len(), "{d:?}");
                }
            }
        }
    }
}

/// An edit of a config file: the text before and after, separated by a NUL byte. Loaded one
/// after the other by the incremental loader, the edited text must give exactly what
/// validating it whole gives.
pub fn config_edit(data: &[u8]) {
    let Some(at) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (Ok(before), Ok(after)) = (
        std::str::from_utf8(&data[..at]),
        std::str::from_utf8(&data[at + 1..]),
    ) else {
        return;
    };
    let mut loader = crate::config::Loader::new();
    if loader.parse("fuzz.toml", before.to_string()).is_err() {
        return;
    }
    let incremental = loader.parse("fuzz.toml", after.to_string());
    match (incremental, crate::config::parse("fuzz.toml", after)) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.config, b.config, "{:?}", loader.last_validated());
            assert_eq!(a.warnings, b.warnings, "{:?}", loader.last_validated());
        }
        (Err(a), Err(b)) => assert_eq!(a.diagnostics, b.diagnostics),
        (a, b) => panic!(
            "the loader ({:?}) and the whole file disagree: {:?} / {:?}",
            loader.last_validated(),
            a.map(|_| ()).map_err(|e| e.to_string()),
            b.map(|_| ()).map_err(|e| e.to_string())
        ),
    }
}

/// A real server's answer to a health check (byte 0 picks the protocol: HTTP response, DNS
/// reply, SMTP reply, MySQL greeting and auth reply, PostgreSQL auth and error, a TCP segment
/// or IPv4 packet to a half-open check).
pub fn check_reply(data: &[u8]) {
    use crate::check::proto::{dns, mysql, pgsql, smtp, syn};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 6 {
        #[cfg(feature = "daemon")]
        0 => {
            use crate::check::proto::http;
            for keep_alive in [false, true] {
                let x = http::Exchange {
                    request: Vec::new(),
                    expect_status: vec![crate::config::StatusRange {
                        low: 200,
                        high: 299,
                    }],
                    body: http::BodyRules {
                        substring: Some("ok".into()),
                        regex: None,
                        digest: None,
                    },
                    keep_alive,
                };
                // Fed whole, then in two pieces: the verdict must not depend on the split.
                let mut whole = http::Reader::default();
                let a = whole.feed(&x, rest).unwrap_or_else(|| whole.end(&x));
                let mut split = http::Reader::default();
                let cut = rest.len() / 2;
                let b = split
                    .feed(&x, &rest[..cut])
                    .or_else(|| split.feed(&x, &rest[cut..]))
                    .unwrap_or_else(|| split.end(&x));
                assert_eq!(a.is_ok(), b.is_ok(), "{a:?} {b:?}");
            }
        }
        1 => {
            if let Ok(query) = dns::encode_query(0x1234, "example.com", 1) {
                let _ = dns::check_reply(&query, rest);
            }
        }
        2 => {
            let _ = smtp::parse_reply(rest);
        }
        3 => {
            let _ = mysql::parse_greeting(rest);
            let _ = mysql::parse_auth_reply(rest);
        }
        4 => {
            let _ = pgsql::parse_auth(rest);
            let _ = pgsql::parse_error(rest);
        }
        _ => {
            let _ = syn::parse_tcp(rest);
            let _ = syn::parse_v4(rest);
            let _ = syn::parse_quoted_v4(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_take_empty_and_short_inputs() {
        for (name, target) in super::TARGETS {
            for input in [&[][..], &[0], &[1, 2], &[0xff; 40]] {
                target(input);
                let _ = name;
            }
        }
    }
}
