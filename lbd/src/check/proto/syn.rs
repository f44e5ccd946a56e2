//! Half-open TCP checks on the wire: the SYN a check sends, the SYN-ACK or RST that answers it,
//! and the classic BPF program that lets only those answers reach the raw socket. Pure.
//!
//! A check's SYN carries a sequence number unique among the checks in flight; the answer's
//! acknowledgement number is that plus one (RFC 9293 3.10.7.2 for an RST to a SYN, 3.10.7.3 for
//! the SYN-ACK), so the answer names its check. The kernel sees a SYN-ACK for a port with no
//! socket in a connectable state and answers it with an RST itself, so the real's half-open
//! connection is closed without this side doing anything.

use std::net::{IpAddr, Ipv4Addr};

/// A SYN's TCP header: 20 bytes and the MSS option.
pub const TCP_SYN_LEN: usize = 24;
/// IPv4 header (no options) and the SYN.
pub const V4_SYN_LEN: usize = 20 + TCP_SYN_LEN;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const PROTO_TCP: u8 = 6;
/// The window a SYN advertises (a typical Linux first window).
const WINDOW: u16 = 64240;

/// The TCP part of a SYN. The checksum is left zero: IPv6 raw sockets fill it in
/// (IPV6_CHECKSUM), and [`syn_v4`] computes it.
pub fn syn_tcp(sport: u16, dport: u16, seq: u32, mss: u16) -> [u8; TCP_SYN_LEN] {
    let mut t = [0u8; TCP_SYN_LEN];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = ((TCP_SYN_LEN / 4) as u8) << 4;
    t[13] = SYN;
    t[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    t[20] = 2; // MSS option
    t[21] = 4;
    t[22..24].copy_from_slice(&mss.to_be_bytes());
    t
}

/// A whole IPv4 SYN, for a raw socket with IP_HDRINCL: the source address is set here so the
/// checksum (which covers it) is right. The kernel fills in the IP ID and header checksum.
pub fn syn_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> [u8; V4_SYN_LEN] {
    let mut p = [0u8; V4_SYN_LEN];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(V4_SYN_LEN as u16).to_be_bytes());
    p[6] = 0x40; // don't fragment
    p[8] = 64; // TTL
    p[9] = PROTO_TCP;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut tcp = syn_tcp(sport, dport, seq, 1460);
    let sum = tcp_checksum_v4(src, dst, &tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    p[20..].copy_from_slice(&tcp);
    p
}

/// The TCP checksum over the IPv4 pseudo-header and `segment` (whose checksum field is zero).
pub fn tcp_checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in [&src.octets()[..], &dst.octets()[..]] {
        sum = add_words(sum, chunk);
    }
    sum += u32::from(PROTO_TCP);
    sum += segment.len() as u32;
    sum = add_words(sum, segment);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn add_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// What answered a SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: something listens.
    Open,
    /// RST: nothing listens.
    Refused,
}

/// An answer as read from the raw socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The real's port (the answer's source port).
    pub from_port: u16,
    /// This side's port (the answer's destination port).
    pub to_port: u16,
    /// The sequence number of the SYN it answers (its acknowledgement number minus one).
    pub syn_seq: u32,
    pub answer: Answer,
}

/// Reads a TCP segment's header as an answer to a SYN; `None` for anything else (too short, an
/// RST without ACK, a plain ACK, a FIN).
pub fn parse_tcp(seg: &[u8]) -> Option<Reply> {
    if seg.len() < 14 {
        return None;
    }
    let flags = seg[13];
    let answer = if flags & RST != 0 {
        Answer::Refused
    } else if flags & (SYN | ACK | FIN) == SYN | ACK {
        Answer::Open
    } else {
        return None;
    };
    // Without ACK an RST acknowledges nothing, so it cannot be matched to a SYN.
    if flags & ACK == 0 {
        return None;
    }
    let ack = u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]);
    Some(Reply {
        from_port: u16::from_be_bytes([seg[0], seg[1]]),
        to_port: u16::from_be_bytes([seg[2], seg[3]]),
        syn_seq: ack.wrapping_sub(1),
        answer,
    })
}

/// Reads an IPv4 packet (as an IPv4 raw socket delivers it: from the IP header) as an answer:
/// the sender's address and the reply.
pub fn parse_v4(packet: &[u8]) -> Option<(IpAddr, Reply)> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != PROTO_TCP {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    // A fragment other than the first has no TCP header where one is expected.
    if ihl < 20 || u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff != 0 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    parse_tcp(packet.get(ihl..)?).map(|r| (IpAddr::V4(src), r))
}

/// A SYN of ours as an ICMP error quotes it: (its source port, destination port, sequence
/// number). `segment` starts at the TCP header; ICMP quotes at least its first 8 bytes.
pub fn parse_quoted_tcp(segment: &[u8]) -> Option<(u16, u16, u32)> {
    let s = segment.get(..8)?;
    Some((
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
    ))
}

/// An IPv4 SYN of ours as an ICMP error quotes it, from its IP header: (destination, source
/// port, destination port, sequence number).
pub fn parse_quoted_v4(packet: &[u8]) -> Option<(Ipv4Addr, u16, u16, u32)> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != PROTO_TCP {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let (sport, dport, seq) = parse_quoted_tcp(packet.get(ihl..)?)?;
    Some((dst, sport, dport, seq))
}

/// One classic BPF instruction, as `struct sock_filter` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

// Classic BPF opcodes (linux/filter.h).
const LD_H_ABS: u16 = 0x28;
const LD_H_IND: u16 = 0x48;
const LD_B_IND: u16 = 0x50;
const LDX_B_MSH: u16 = 0xb1;
const LDX_IMM: u16 = 0x01;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

/// Ports one filter can take (its jump offsets are a byte).
pub const FILTER_PORTS_MAX: usize = 250;

/// Accepts only segments to one of `ports` with RST set or SYN and ACK set: the answers to
/// this side's SYNs. Every other TCP segment the box receives is dropped by the kernel before it
/// is queued to the raw socket. `ip_header`: the packet starts with an IPv4 header (IPv4 raw
/// sockets) rather than the TCP header (IPv6 raw sockets).
///
/// At most [`FILTER_PORTS_MAX`] ports.
pub fn answer_filter(ports: &[u16], ip_header: bool) -> Vec<Insn> {
    assert!(
        ports.len() <= FILTER_PORTS_MAX,
        "too many ports for one filter"
    );
    let mut p = Vec::with_capacity(ports.len() + 10);
    if ip_header {
        // X = IP header length; fragments after the first carry no TCP header.
        p.push(insn(LD_H_ABS, 0, 0, 6));
        p.push(insn(JSET_K, 0, 1, 0x1fff));
        p.push(insn(RET_K, 0, 0, 0));
        p.push(insn(LDX_B_MSH, 0, 0, 0));
    } else {
        p.push(insn(LDX_IMM, 0, 0, 0));
    }
    p.push(insn(LD_H_IND, 0, 0, 2)); // destination port
    let n = ports.len();
    for (i, port) in ports.iter().enumerate() {
        // Match: jump over the remaining comparisons and the drop, to the flags test.
        p.push(insn(JEQ_K, (n - i) as u8, 0, u32::from(*port)));
    }
    p.push(insn(RET_K, 0, 0, 0));
    p.push(insn(LD_B_IND, 0, 0, 13)); // flags
    p.push(insn(JSET_K, 2, 0, u32::from(RST)));
    p.push(insn(AND_K, 0, 0, u32::from(SYN | ACK)));
    p.push(insn(JEQ_K, 0, 1, u32::from(SYN | ACK)));
    p.push(insn(RET_K, 0, 0, u32::MAX));
    p.push(insn(RET_K, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same SYN that a real Linux stack answered with a SYN-ACK (captured on loopback
    /// with tshark: 127.0.0.1:41000 → 127.0.0.1:8001, seq 0x12345678, MSS 1460), byte for byte
    /// from the IP total length on (the kernel fills in the IP ID and header checksum).
    #[test]
    fn syn_matches_one_the_kernel_accepted() {
        let p = syn_v4(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            41000,
            8001,
            0x1234_5678,
        );
        let captured = hex("4500 002c 2bee 4000 4006 10dc 7f000001 7f000001 a0281f41 12345678 00000000 6002 faf0 771d 0000 020405b4");
        assert_eq!(p[..4], captured[..4]);
        assert_eq!(p[6..10], captured[6..10], "flags, TTL, protocol");
        assert_eq!(
            p[12..],
            captured[12..],
            "addresses and the whole TCP header"
        );
    }

    /// RFC 1071's worked example: the one's-complement sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
    #[test]
    fn checksum_words_match_rfc_1071() {
        let mut sum = add_words(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xddf2);
        // An odd length pads with a zero byte.
        assert_eq!(add_words(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    /// Real bytes: Linux answering that SYN on a listening port (SYN-ACK) and a SYN with the
    /// same sequence number on a closed port (RST/ACK), captured with tshark.
    #[test]
    fn answers_are_read_from_captured_packets() {
        let syn_ack = hex(
            "4500 002c 0000 4000 4006 3cca 7f000001 7f000001 1f41a028 9f144746 12345679 6012 ffd7 fe20 0000 0204ffd7",
        );
        let (src, r) = parse_v4(&syn_ack).unwrap();
        assert_eq!(src, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            r,
            Reply {
                from_port: 8001,
                to_port: 41000,
                syn_seq: 0x1234_5678,
                answer: Answer::Open
            }
        );
        let rst = hex("4500 0028 0000 4000 4006 3cce 7f000001 7f000001 1f42a028 00000000 12345679 5014 0000 89b6 0000");
        let (_, r) = parse_v4(&rst).unwrap();
        assert_eq!(
            (r.from_port, r.syn_seq, r.answer),
            (8002, 0x1234_5678, Answer::Refused)
        );
        // The kernel's own RST to the SYN-ACK (no socket listens or connects on 41000) is
        // outgoing; were it seen, it acknowledges nothing new and is not an answer to 41000.
        let kernel_rst = hex("4500 0028 0000 4000 4006 3cce 7f000001 7f000001 a0281f41 12345679 00000000 5004 0000 89c7 0000");
        assert_eq!(parse_v4(&kernel_rst), None);
    }

    #[test]
    fn quoted_syns_name_their_check() {
        let p = syn_v4(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(10, 99, 0, 2),
            41000,
            80,
            0xdead_beef,
        );
        // ICMP quotes the IP header and at least 8 bytes of what follows.
        assert_eq!(
            parse_quoted_v4(&p[..28]),
            Some((Ipv4Addr::new(10, 99, 0, 2), 41000, 80, 0xdead_beef))
        );
        assert_eq!(parse_quoted_v4(&p[..27]), None);
        assert_eq!(parse_quoted_tcp(&p[20..28]), Some((41000, 80, 0xdead_beef)));
        let mut udp = p;
        udp[9] = 17;
        assert_eq!(parse_quoted_v4(&udp), None);
    }

    #[test]
    fn other_segments_are_not_answers() {
        let mut seg = syn_tcp(1, 2, 3, 1460);
        assert_eq!(parse_tcp(&seg), None, "a SYN");
        seg[13] = ACK;
        assert_eq!(parse_tcp(&seg), None, "a plain ACK");
        seg[13] = SYN | ACK | FIN;
        assert_eq!(parse_tcp(&seg), None);
        seg[13] = RST;
        assert_eq!(parse_tcp(&seg), None, "an RST acknowledging nothing");
        seg[13] = RST | ACK;
        seg[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse_tcp(&seg).unwrap().syn_seq, u32::MAX, "wraps");
        assert_eq!(parse_tcp(&seg[..13]), None, "short");
        let mut frag = syn_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, 3);
        frag[33] = SYN | ACK;
        assert!(parse_v4(&frag).is_some());
        frag[7] = 1; // fragment offset 8
        assert_eq!(parse_v4(&frag), None);
    }

    /// The filter run by a small interpreter of the instructions it uses, against packets
    /// built here: only answers to the listed ports pass.
    #[test]
    fn filter_passes_answers_to_our_ports_only() {
        for ip_header in [true, false] {
            let prog = answer_filter(&[41000, 41001], ip_header);
            let packet = |dport: u16, flags: u8| {
                let mut v4 = syn_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 8001, dport, 9);
                v4[33] = flags;
                if ip_header {
                    v4.to_vec()
                } else {
                    v4[20..].to_vec()
                }
            };
            assert!(run(&prog, &packet(41000, SYN | ACK)));
            assert!(run(&prog, &packet(41001, RST | ACK)));
            assert!(run(&prog, &packet(41001, RST)));
            assert!(!run(&prog, &packet(41002, SYN | ACK)), "another port");
            assert!(!run(&prog, &packet(41000, ACK)), "a plain ACK");
            assert!(!run(&prog, &packet(41000, SYN)), "a SYN");
            assert!(!run(&prog, &packet(41000, ACK | 0x08)), "data");
        }
        let mut frag = syn_v4(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 8001, 41000, 9);
        frag[33] = SYN | ACK;
        frag[7] = 3;
        assert!(
            !run(&answer_filter(&[41000], true), &frag),
            "a later fragment"
        );
    }

    fn run(prog: &[Insn], pkt: &[u8]) -> bool {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            let at = |k: usize| pkt.get(k).copied().map(u32::from);
            match i.code {
                LD_H_ABS => a = (at(i.k as usize).unwrap() << 8) | at(i.k as usize + 1).unwrap(),
                LD_H_IND => {
                    let k = (x + i.k) as usize;
                    a = (at(k).unwrap() << 8) | at(k + 1).unwrap();
                }
                LD_B_IND => a = at((x + i.k) as usize).unwrap(),
                LDX_B_MSH => x = (at(i.k as usize).unwrap() & 0xf) * 4,
                LDX_IMM => x = i.k,
                AND_K => a &= i.k,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k != 0,
                c => panic!("opcode {c:#x} not interpreted"),
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
