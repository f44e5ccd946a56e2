//! TCP segments as a raw IPv4 socket receives them (IP header first).

/// SYN alone among the flags: a connection's first segment.
const SYN: u8 = 0x02;

/// The destination port of `packet` if it carries a SYN (alone, so not a SYN-ACK).
pub fn syn_destination_port(packet: &[u8]) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let tcp = packet.get(ihl..ihl + 14)?;
    (tcp[13] == SYN).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

#[cfg(test)]
mod tests {
    use super::syn_destination_port;

    #[test]
    fn only_a_bare_syn_counts() {
        let mut p = [0u8; 40];
        p[0] = 0x45;
        p[22..24].copy_from_slice(&8001u16.to_be_bytes());
        p[33] = 0x02;
        assert_eq!(syn_destination_port(&p), Some(8001));
        p[33] = 0x12; // SYN-ACK
        assert_eq!(syn_destination_port(&p), None);
        assert_eq!(syn_destination_port(&p[..33]), None, "truncated");
        assert_eq!(syn_destination_port(&[]), None);
    }
}
