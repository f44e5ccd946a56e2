//! The hasher of the half-open checks' maps.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes the keys of the half-open module's maps: sequence numbers it chose and the configured
/// targets, ports and addresses, never values from the network, so SipHash's keyed defence
/// against chosen keys buys nothing, and at thousands of checks a second its cost shows.
pub(super) type Keys = BuildHasherDefault<KeyHasher>;

/// A multiply-rotate hash of the words written (as rustc's FxHash), with a final mix: the
/// maps find buckets by the hash's low bits, and without it the low bits of an address's hash
/// would depend only on its first octets (10.201.x.y would all land in one bucket).
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }
    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }
    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        // murmur3's 64-bit finalizer: every input bit reaches every output bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    /// Buckets are found by the low bits of a hash: keys that differ only in a few bits, as
    /// a block of real servers' addresses or their sequence numbers do, must still spread.
    #[test]
    fn keys_spread_over_the_low_bits() {
        let spread = |hashes: Vec<u64>| {
            let buckets: HashSet<u64> = hashes.iter().map(|h| h & 0x3ff).collect();
            buckets.len()
        };
        let keys = Keys::default();
        let addrs: Vec<u64> = (0..1000u32)
            .map(|i| keys.hash_one(Ipv4Addr::new(10, 201, (i / 250) as u8, (i % 250 + 1) as u8)))
            .collect();
        let targets: Vec<u64> = (0..1000u32)
            .map(|i| {
                let ip = Ipv4Addr::new(10, 201, (i / 250) as u8, (i % 250 + 1) as u8);
                keys.hash_one((40000u16, SocketAddr::new(IpAddr::V4(ip), 8003)))
            })
            .collect();
        let seqs: Vec<u64> = (0..1000u32).map(|i| keys.hash_one(i << 20)).collect();
        // 1000 random values in 1024 buckets fill about 630 of them.
        for (what, hashes) in [("addresses", addrs), ("targets", targets), ("seqs", seqs)] {
            let n = spread(hashes);
            assert!(n > 550, "{what}: 1000 keys in {n} of 1024 buckets");
        }
    }
}
