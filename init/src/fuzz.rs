//! Fuzz targets for init's decoders: DHCP replies and TFTP packets from the network, and the
//! kernel command line (`lb.*`, `ip=`, config URL templates) an operator writes. Each must never
//! panic; a TFTP packet that parses must encode and parse back to itself.
//!
//! `tools/fuzz` runs them under libFuzzer; `init/tests/fuzz_replay.rs` replays their corpora.

use crate::net::dhcp::message;
use std::net::Ipv4Addr;
use std::time::Instant;

/// The targets of this crate (see `lbd::fuzz::Target`).
pub const TARGETS: &[lbd::fuzz::Target] = &[
    ("dhcp_message", dhcp_message),
    ("tftp_packet", tftp_packet),
    ("kernel_cmdline", kernel_cmdline),
];

/// A DHCP reply as the client reads it.
pub fn dhcp_message(data: &[u8]) {
    let Ok(msg) = message::decode(data) else {
        return;
    };
    let mac = [0x02, 0, 0, 0, 0x09, 0x07];
    let _ = message::check_reply(&msg, msg.xid(), &mac);
    let _ = message::parse_offer(&msg);
    if let Ok(lease) = message::parse_ack(&msg, Ipv4Addr::new(10, 0, 0, 1), Instant::now()) {
        let capped = lease.capped(Some(std::time::Duration::from_secs(3600)));
        if let (Some(l), Some(t1), Some(t2)) = (capped.lease_time, capped.t1, capped.t2) {
            assert!(t1 <= t2 && t2 <= l, "{capped:?}");
        }
        assert!(capped.prefix_len <= 32);
    }
}

/// A TFTP packet from a server.
pub fn tftp_packet(data: &[u8]) {
    use crate::fetch::tftp::packet::Packet;
    if let Ok(p) = Packet::parse(data) {
        assert_eq!(Packet::parse(&p.emit()).expect("what parsed re-parses"), p);
    }
}

/// A kernel command line: init's settings, `ip=` and the config URL templates.
pub fn kernel_cmdline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cmdline = crate::cmdline::KernelCmdline::parse(text);
    let (settings, _errors) = crate::cmdline::InitSettings::from_cmdline(&cmdline);
    for url in &settings.config_urls {
        let _ = crate::fetch::url::UrlTemplate::parse(url);
    }
    for ip in cmdline.get_all("ip") {
        let _ = crate::net::ipspec::IpSpec::parse(ip);
    }
    let _ = crate::fetch::url::FetchUrl::parse(text);
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_take_empty_and_short_inputs() {
        for (_, target) in super::TARGETS {
            for input in [&[][..], &[0], &[0, 3, 0, 1], &[0xff; 300]] {
                target(input);
            }
        }
    }
}
