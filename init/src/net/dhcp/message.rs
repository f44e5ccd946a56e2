//! DHCPv4 messages the client sends, and what it reads out of the server's replies.
//! Built on `dhcproto`; pure (no I/O, no clock).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{
    DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode, CLIENT_PORT, SERVER_PORT,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::lease::Lease;
use crate::net::ipspec::{classful_prefix_len, mask_to_prefix_len};

/// UDP port servers listen on.
pub const DHCP_SERVER_PORT: u16 = SERVER_PORT;
/// UDP port clients listen on.
pub const DHCP_CLIENT_PORT: u16 = CLIENT_PORT;

/// BOOTP's minimum message size; some relays and old servers drop anything shorter.
const MIN_MESSAGE_LEN: usize = 300;

/// Largest DHCP message we accept (option 57): an Ethernet MTU minus IP and UDP headers.
pub const MAX_MESSAGE_LEN: u16 = 1500 - 20 - 8;

/// Options asked for in every DISCOVER/REQUEST (option 55), in this order.
pub const REQUESTED_OPTIONS: [OptionCode; 12] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::DomainName,
    OptionCode::NtpServers,
    OptionCode::AddressLeaseTime,
    OptionCode::ServerIdentifier,
    OptionCode::Renewal,
    OptionCode::Rebinding,
    OptionCode::TFTPServerName,
    OptionCode::BootfileName,
];

/// What identifies the client in every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Ethernet address: `chaddr`, and the client identifier (option 61, type 1).
    pub mac: [u8; 6],
    /// Sent as option 12 when known.
    pub hostname: Option<String>,
}

/// Which kind of request to build; they differ in `ciaddr` and options 50/54 (RFC 2131 table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Answering an OFFER: requested IP (50) and server identifier (54), `ciaddr` 0, broadcast.
    Selecting {
        requested: Ipv4Addr,
        server: Ipv4Addr,
    },
    /// Extending a lease (RENEWING unicast, REBINDING broadcast): `ciaddr` = our address.
    Extending { ciaddr: Ipv4Addr },
}

fn base(id: &ClientIdentity, xid: u32, secs: u16, kind: MessageType) -> Message {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &id.mac,
    );
    msg.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_secs(secs);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    let mut client_id = Vec::with_capacity(7);
    client_id.push(1); // hardware type: Ethernet
    client_id.extend_from_slice(&id.mac);
    opts.insert(DhcpOption::ClientIdentifier(client_id));
    opts.insert(DhcpOption::ParameterRequestList(REQUESTED_OPTIONS.to_vec()));
    opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE_LEN));
    if let Some(name) = &id.hostname {
        opts.insert(DhcpOption::Hostname(name.clone()));
    }
    msg
}

/// DHCPDISCOVER with the BROADCAST flag (we cannot receive unicast before we have an address).
pub fn discover(id: &ClientIdentity, xid: u32, secs: u16) -> Message {
    let mut msg = base(id, xid, secs, MessageType::Discover);
    msg.set_flags(Flags::default().set_broadcast());
    msg
}

/// DHCPREQUEST of the given kind.
pub fn request(id: &ClientIdentity, xid: u32, secs: u16, kind: RequestKind) -> Message {
    let mut msg = base(id, xid, secs, MessageType::Request);
    match kind {
        RequestKind::Selecting { requested, server } => {
            msg.set_flags(Flags::default().set_broadcast());
            msg.opts_mut()
                .insert(DhcpOption::RequestedIpAddress(requested));
            msg.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        }
        RequestKind::Extending { ciaddr } => {
            msg.set_ciaddr(ciaddr);
        }
    }
    msg
}

/// Why received bytes are not a DHCP message.
#[derive(Debug, thiserror::Error)]
#[error("malformed DHCP message ({len} bytes): {problem}")]
pub struct DecodeError {
    len: usize,
    problem: DecodeProblem,
}

#[derive(Debug, thiserror::Error)]
enum DecodeProblem {
    #[error(transparent)]
    Decoder(dhcproto::error::DecodeError),
    #[error("hlen {0} is longer than the 16-byte chaddr field")]
    HardwareLength(u8),
    #[error("the decoder failed on it")]
    DecoderPanicked,
    #[error("option {code} has {len} bytes, which its definition does not allow")]
    OptionLength { code: u8, len: u8 },
}

/// Options whose length is fixed by their RFC, where dhcproto asserts the length rather than
/// checking it (found by fuzzing): `(code, exact length)`, or a minimum for the FQDN.
const FIXED_LENGTH_OPTIONS: [(u8, u8); 6] =
    [(80, 0), (94, 3), (152, 4), (153, 4), (154, 4), (155, 4)];
const CLIENT_FQDN: u8 = 81;

/// The first option, in the options field or in the `sname`/`file` fields it overloads, whose
/// length contradicts its definition.
fn option_with_wrong_length(bytes: &[u8]) -> Option<(u8, u8)> {
    fn scan(area: &[u8], overload: &mut u8) -> Option<(u8, u8)> {
        let mut i = 0;
        while i < area.len() {
            let code = area[i];
            match code {
                0 => i += 1,
                255 => break,
                _ => {
                    let len = *area.get(i + 1)?;
                    let bad = FIXED_LENGTH_OPTIONS
                        .iter()
                        .any(|(c, l)| *c == code && *l != len)
                        || (code == CLIENT_FQDN && len < 3);
                    if bad {
                        return Some((code, len));
                    }
                    if code == 52 && len == 1 {
                        *overload = area.get(i + 2).copied().unwrap_or(0);
                    }
                    i += 2 + usize::from(len);
                }
            }
        }
        None
    }
    const SNAME: std::ops::Range<usize> = 44..108;
    const FILE: std::ops::Range<usize> = 108..236;
    const OPTIONS: usize = 240;
    let mut overload = 0;
    scan(bytes.get(OPTIONS..)?, &mut overload)
        .or_else(|| {
            (overload & 1 != 0)
                .then(|| scan(bytes.get(FILE)?, &mut 0))
                .flatten()
        })
        .or_else(|| {
            (overload & 2 != 0)
                .then(|| scan(bytes.get(SNAME)?, &mut 0))
                .flatten()
        })
}

/// Why a message could not be encoded (a field too long for its slot).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode DHCP message: {0}")]
pub struct EncodeError(#[from] dhcproto::error::EncodeError);

/// Bytes on the wire, padded to the 300-byte BOOTP minimum.
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(MIN_MESSAGE_LEN);
    msg.encode(&mut Encoder::new(&mut buf))?;
    if buf.len() < MIN_MESSAGE_LEN {
        buf.resize(MIN_MESSAGE_LEN, 0); // option 0 = Pad
    }
    Ok(buf)
}

/// Parses bytes received on port 68.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    // dhcproto keeps hlen as sent, and its chaddr() slices the 16-byte field by it: a reply
    // with hlen over 16 would panic there (found by fuzzing), in PID 1.
    if let Some(&hlen) = bytes.get(2).filter(|h| **h > 16) {
        return Err(DecodeError {
            len: bytes.len(),
            problem: DecodeProblem::HardwareLength(hlen),
        });
    }
    if let Some((code, len)) = option_with_wrong_length(bytes) {
        return Err(DecodeError {
            len: bytes.len(),
            problem: DecodeProblem::OptionLength { code, len },
        });
    }
    // A decoder that panics on some input (dhcproto has) must not take PID 1 down with it:
    // whatever it cannot read is a malformed message.
    let decoded = std::panic::catch_unwind(|| Message::decode(&mut Decoder::new(bytes)));
    match decoded {
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(source)) => Err(DecodeError {
            len: bytes.len(),
            problem: DecodeProblem::Decoder(source),
        }),
        Err(_) => Err(DecodeError {
            len: bytes.len(),
            problem: DecodeProblem::DecoderPanicked,
        }),
    }
}

/// What a server offered (from a DHCPOFFER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub address: Ipv4Addr,
    pub server: Ipv4Addr,
}

/// Why a reply was ignored. Only logged: the client waits for a better one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyProblem {
    #[error("not a BOOTREPLY")]
    NotAReply,
    #[error("xid {got:#010x} is not ours ({want:#010x})")]
    OtherXid { got: u32, want: u32 },
    #[error("chaddr {got:02x?} is not our MAC")]
    OtherChaddr { got: Vec<u8> },
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
    #[error("{kind:?} has no server identifier (option 54)")]
    NoServerId { kind: MessageType },
    #[error("yiaddr {0} is not a usable unicast address")]
    BadYiaddr(Ipv4Addr),
    #[error("from server {got}, but we are talking to {want}")]
    OtherServer { got: Ipv4Addr, want: Ipv4Addr },
    #[error("{kind:?} is not expected in state {state}")]
    Unexpected {
        kind: MessageType,
        state: &'static str,
    },
}

/// Checks that a reply is a BOOTREPLY for our transaction and MAC, and returns its type.
pub fn check_reply(msg: &Message, xid: u32, mac: &[u8; 6]) -> Result<MessageType, ReplyProblem> {
    if msg.opcode() != Opcode::BootReply {
        return Err(ReplyProblem::NotAReply);
    }
    if msg.xid() != xid {
        return Err(ReplyProblem::OtherXid {
            got: msg.xid(),
            want: xid,
        });
    }
    let chaddr = msg.chaddr();
    if chaddr.len() < 6 || chaddr[..6] != mac[..] {
        return Err(ReplyProblem::OtherChaddr {
            got: chaddr.to_vec(),
        });
    }
    msg.opts().msg_type().ok_or(ReplyProblem::NoMessageType)
}

/// Server identifier (option 54), if present.
pub fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

fn usable_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// Reads the address and server out of a DHCPOFFER.
pub fn parse_offer(msg: &Message) -> Result<Offer, ReplyProblem> {
    let address = msg.yiaddr();
    if !usable_unicast(address) {
        return Err(ReplyProblem::BadYiaddr(address));
    }
    let server = server_id(msg).ok_or(ReplyProblem::NoServerId {
        kind: MessageType::Offer,
    })?;
    Ok(Offer { address, server })
}

/// Text from an option or header field: trailing NULs stripped, `None` if empty or not UTF-8.
fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = std::str::from_utf8(&bytes[..end]).ok()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn seconds(value: u32) -> Option<Duration> {
    (value != u32::MAX).then(|| Duration::from_secs(u64::from(value)))
}

/// Reads a DHCPACK into the lease it grants, with the times as the server sent them (the
/// client caps them: [`Lease::capped`]). `offer_server` is the server when the ACK names none;
/// `obtained_at` is when the REQUEST was first sent (RFC 2131 4.4.1: lease times count from
/// there, so we never believe we hold it longer than the server does).
pub fn parse_ack(
    msg: &Message,
    offer_server: Ipv4Addr,
    obtained_at: Instant,
) -> Result<Lease, ReplyProblem> {
    let address = msg.yiaddr();
    if !usable_unicast(address) {
        return Err(ReplyProblem::BadYiaddr(address));
    }
    let opts = msg.opts();
    let prefix_len = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => mask_to_prefix_len(*mask),
        _ => None,
    }
    .filter(|len| *len > 0)
    .unwrap_or_else(|| classful_prefix_len(address));
    let addrs = |code: OptionCode| -> Vec<Ipv4Addr> {
        match opts.get(code) {
            Some(DhcpOption::Router(v))
            | Some(DhcpOption::DomainNameServer(v))
            | Some(DhcpOption::NtpServers(v)) => {
                v.iter().copied().filter(|ip| usable_unicast(*ip)).collect()
            }
            _ => Vec::new(),
        }
    };
    let time = |code: OptionCode| -> Option<u32> {
        match opts.get(code) {
            Some(DhcpOption::AddressLeaseTime(t))
            | Some(DhcpOption::Renewal(t))
            | Some(DhcpOption::Rebinding(t)) => Some(*t),
            _ => None,
        }
    };
    let domain = match opts.get(OptionCode::DomainName) {
        Some(DhcpOption::DomainName(s)) => text(s.as_bytes()),
        _ => None,
    };
    let hostname = match opts.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(s)) => text(s.as_bytes()),
        _ => None,
    };
    let tftp_server_name = match opts.get(OptionCode::TFTPServerName) {
        Some(DhcpOption::TFTPServerName(b)) => text(b),
        _ => None,
    }
    .or_else(|| msg.sname().and_then(text));
    let bootfile = match opts.get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(b)) => text(b),
        _ => None,
    }
    .or_else(|| msg.fname().and_then(text));
    let siaddr = msg.siaddr();
    Ok(Lease {
        address,
        prefix_len,
        server: server_id(msg).unwrap_or(offer_server),
        routers: addrs(OptionCode::Router),
        dns: addrs(OptionCode::DomainNameServer),
        domain,
        hostname,
        ntp: addrs(OptionCode::NtpServers),
        next_server: usable_unicast(siaddr).then_some(siaddr),
        tftp_server_name,
        bootfile,
        lease_time: time(OptionCode::AddressLeaseTime).and_then(seconds),
        t1: time(OptionCode::Renewal).and_then(seconds),
        t2: time(OptionCode::Rebinding).and_then(seconds),
        obtained_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    pub fn ident() -> ClientIdentity {
        ClientIdentity {
            mac: MAC,
            hostname: Some("lb1".into()),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// The DISCOVER as it must appear on the wire, written out from RFC 2131/2132 by hand.
    fn expected_discover_bytes() -> Vec<u8> {
        let mut b = vec![
            1, 1, 6, 0, // op BOOTREQUEST, htype Ethernet, hlen 6, hops 0
            0xde, 0xad, 0xbe, 0xef, // xid
            0, 3, // secs
            0x80, 0x00, // flags: BROADCAST
        ];
        b.extend_from_slice(&[0; 16]); // ciaddr yiaddr siaddr giaddr
        b.extend_from_slice(&MAC);
        b.extend_from_slice(&[0; 10]); // chaddr padding
        b.extend_from_slice(&[0; 64 + 128]); // sname, file
        b.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
                                                 // options, in code order as dhcproto emits them
        b.extend_from_slice(&[12, 3, b'l', b'b', b'1']);
        b.extend_from_slice(&[53, 1, 1]);
        b.extend_from_slice(&[55, 12, 1, 3, 6, 12, 15, 42, 51, 54, 58, 59, 66, 67]);
        b.extend_from_slice(&[57, 2, 0x05, 0xc0]); // 1472 = 1500 - IP - UDP
        b.extend_from_slice(&[61, 7, 1]);
        b.extend_from_slice(&MAC);
        b.push(255);
        b.resize(300, 0);
        b
    }

    #[test]
    fn discover_bytes_exact() {
        let msg = discover(&ident(), 0xdeadbeef, 3);
        let bytes = encode(&msg).unwrap();
        assert_eq!(bytes, expected_discover_bytes());
        // And back.
        let back = decode(&bytes).unwrap();
        assert_eq!(back.xid(), 0xdeadbeef);
        assert!(back.flags().broadcast());
        assert_eq!(back.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(&back.chaddr()[..6], &MAC);
    }

    #[test]
    fn request_selecting_has_50_and_54_and_broadcast() {
        let msg = request(
            &ident(),
            7,
            0,
            RequestKind::Selecting {
                requested: ip("10.0.0.50"),
                server: ip("10.0.0.1"),
            },
        );
        let back = decode(&encode(&msg).unwrap()).unwrap();
        assert_eq!(back.opts().msg_type(), Some(MessageType::Request));
        assert!(back.flags().broadcast());
        assert_eq!(back.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            back.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ip("10.0.0.50")))
        );
        assert_eq!(server_id(&back), Some(ip("10.0.0.1")));
    }

    #[test]
    fn request_extending_has_ciaddr_and_no_50_54() {
        let msg = request(
            &ident(),
            7,
            0,
            RequestKind::Extending {
                ciaddr: ip("10.0.0.50"),
            },
        );
        let bytes = encode(&msg).unwrap();
        assert_eq!(&bytes[12..16], &[10, 0, 0, 50], "ciaddr on the wire");
        assert_eq!(
            &bytes[10..12],
            &[0, 0],
            "no BROADCAST flag once we have an address"
        );
        let back = decode(&bytes).unwrap();
        assert!(back.opts().get(OptionCode::RequestedIpAddress).is_none());
        assert!(back.opts().get(OptionCode::ServerIdentifier).is_none());
    }

    /// A DHCPACK as dnsmasq sends it, bytes written out field by field.
    pub fn ack_bytes(xid: u32, yiaddr: [u8; 4], lease_secs: u32) -> Vec<u8> {
        let mut b = vec![2, 1, 6, 0];
        b.extend_from_slice(&xid.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0x80, 0]);
        b.extend_from_slice(&[0, 0, 0, 0]); // ciaddr
        b.extend_from_slice(&yiaddr);
        b.extend_from_slice(&[10, 0, 0, 7]); // siaddr: next server
        b.extend_from_slice(&[0, 0, 0, 0]); // giaddr
        b.extend_from_slice(&MAC);
        b.extend_from_slice(&[0; 10]);
        let mut sname = [0u8; 64];
        sname[..7].copy_from_slice(b"bootsrv");
        b.extend_from_slice(&sname);
        let mut file = [0u8; 128];
        file[..10].copy_from_slice(b"pxelinux.0");
        b.extend_from_slice(&file);
        b.extend_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(&[53, 1, 5]); // ACK
        b.extend_from_slice(&[54, 4, 10, 0, 0, 1]);
        b.extend_from_slice(&[51, 4]);
        b.extend_from_slice(&lease_secs.to_be_bytes());
        b.extend_from_slice(&[58, 4, 0, 0, 0, 50]);
        b.extend_from_slice(&[59, 4, 0, 0, 0, 90]);
        b.extend_from_slice(&[1, 4, 255, 255, 255, 0]);
        b.extend_from_slice(&[28, 4, 10, 0, 0, 255]);
        b.extend_from_slice(&[3, 4, 10, 0, 0, 254]);
        b.extend_from_slice(&[6, 8, 10, 0, 0, 53, 10, 0, 0, 54]);
        b.extend_from_slice(&[15, 11]);
        b.extend_from_slice(b"example.org");
        b.extend_from_slice(&[12, 5]);
        b.extend_from_slice(b"node1");
        b.push(255);
        b
    }

    #[test]
    fn ack_from_real_bytes() {
        let msg = decode(&ack_bytes(0x1234, [10, 0, 0, 50], 120)).unwrap();
        assert_eq!(check_reply(&msg, 0x1234, &MAC), Ok(MessageType::Ack));
        let at = Instant::now();
        let p = parse_ack(&msg, ip("10.9.9.9"), at).unwrap();
        assert_eq!(
            p,
            Lease {
                address: ip("10.0.0.50"),
                prefix_len: 24,
                server: ip("10.0.0.1"),
                routers: vec![ip("10.0.0.254")],
                dns: vec![ip("10.0.0.53"), ip("10.0.0.54")],
                domain: Some("example.org".into()),
                hostname: Some("node1".into()),
                ntp: vec![],
                next_server: Some(ip("10.0.0.7")),
                tftp_server_name: Some("bootsrv".into()),
                bootfile: Some("pxelinux.0".into()),
                lease_time: Some(Duration::from_secs(120)),
                t1: Some(Duration::from_secs(50)),
                t2: Some(Duration::from_secs(90)),
                obtained_at: at,
            }
        );
    }

    #[test]
    fn infinite_lease_and_options_66_67_win_over_header_fields() {
        let mut msg = decode(&ack_bytes(1, [10, 0, 0, 50], u32::MAX)).unwrap();
        msg.opts_mut()
            .insert(DhcpOption::BootfileName(b"lb/kernel\0".to_vec()));
        msg.opts_mut()
            .insert(DhcpOption::TFTPServerName(b"tftp.example.org".to_vec()));
        msg.opts_mut().remove(OptionCode::SubnetMask);
        let p = parse_ack(
            &decode(&encode(&msg).unwrap()).unwrap(),
            ip("10.0.0.1"),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(p.lease_time, None);
        assert_eq!(p.bootfile.as_deref(), Some("lb/kernel"));
        assert_eq!(p.tftp_server_name.as_deref(), Some("tftp.example.org"));
        assert_eq!(p.prefix_len, 8, "classful default without option 1");
    }

    #[test]
    fn replies_not_for_us_are_refused() {
        let msg = decode(&ack_bytes(0x1234, [10, 0, 0, 50], 120)).unwrap();
        assert_eq!(
            check_reply(&msg, 0x9999, &MAC),
            Err(ReplyProblem::OtherXid {
                got: 0x1234,
                want: 0x9999
            })
        );
        let other_mac = [2, 0, 0, 0, 0, 1];
        assert!(matches!(
            check_reply(&msg, 0x1234, &other_mac),
            Err(ReplyProblem::OtherChaddr { .. })
        ));
        // Our own broadcast DISCOVER seen on the wire is a BOOTREQUEST.
        let own = discover(&ident(), 0x1234, 0);
        assert_eq!(
            check_reply(&own, 0x1234, &MAC),
            Err(ReplyProblem::NotAReply)
        );
        let mut zero = msg.clone();
        zero.set_yiaddr(Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            parse_ack(&zero, ip("10.0.0.1"), Instant::now()),
            Err(ReplyProblem::BadYiaddr(Ipv4Addr::UNSPECIFIED))
        );
        let mut no_server = msg;
        no_server.opts_mut().remove(OptionCode::ServerIdentifier);
        assert_eq!(
            parse_offer(&no_server),
            Err(ReplyProblem::NoServerId {
                kind: MessageType::Offer
            })
        );
    }

    #[test]
    fn a_hardware_length_over_16_is_a_decode_error_not_a_panic() {
        let mut bytes = ack_bytes(1, [10, 0, 0, 50], 120);
        bytes[2] = 0x93;
        let err = decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("hlen 147"), "{err}");
    }

    #[test]
    fn truncated_bytes_are_a_decode_error() {
        let bytes = ack_bytes(1, [10, 0, 0, 50], 120);
        let err = decode(&bytes[..100]).unwrap_err();
        assert!(err.to_string().contains("100 bytes"), "{err}");
    }
}
