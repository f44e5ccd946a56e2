//! What a neighbour on the segment believes about a VIP, sampled over time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// A neighbour's entries for a VIP and optionally an IPv6 one: the ARP entry sampled every
/// 50 ms from its namespace's `/proc/net/arp`, the IPv6 one every 200 ms from `ip -6 neigh` (a
/// datagram to that VIP every second keeps it in use): what a neighbour on the segment (the
/// client; a NAT real for its gateway) believes, and when that changed.
pub struct NeighWatch {
    stop: Arc<AtomicBool>,
    /// IPv4, IPv6.
    changes: Arc<Mutex<[Vec<NeighChange>; 2]>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// When the client's entry changed, and the MAC it named (None: no complete entry).
pub type NeighChange = (Instant, Option<String>);

/// No sampler runs longer than this.
const NEIGH_LIMIT: Duration = Duration::from_secs(4 * 3600);
const NEIGH_EVERY: Duration = Duration::from_millis(50);

impl NeighWatch {
    pub(super) fn start(
        client: &Netns,
        v4: Ipv4Addr,
        v6: Option<Ipv6Addr>,
    ) -> Result<NeighWatch, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(Mutex::new([Vec::new(), Vec::new()]));
        let (s, c) = (stop.clone(), changes.clone());
        let thread = client
            .thread(move || {
                let started = Instant::now();
                let mut last: [Option<Option<String>>; 2] = [None, None];
                let mut record = |family: usize, mac: Option<String>| {
                    if last[family].as_ref() != Some(&mac) {
                        c.lock().unwrap_or_else(|e| e.into_inner())[family]
                            .push((Instant::now(), mac.clone()));
                        last[family] = Some(mac);
                    }
                };
                let poke = UdpSocket::bind("[::]:0").ok();
                let max = NEIGH_LIMIT.as_millis() / NEIGH_EVERY.as_millis();
                for n in 0..max {
                    if s.load(Ordering::Relaxed) || started.elapsed() > NEIGH_LIMIT {
                        return;
                    }
                    // thread-self: /proc/net follows the process's first thread, not this one.
                    let table =
                        std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
                    record(0, arp_entry(&table, v4));
                    let Some(v6) = v6 else {
                        std::thread::sleep(NEIGH_EVERY);
                        continue;
                    };
                    if n % 4 == 0 {
                        if n % 20 == 0 {
                            if let Some(sock) = &poke {
                                let _ = sock.send_to(b"neighbour", (v6, 9));
                            }
                        }
                        // A child of this thread is in its namespace.
                        let out = crate::programs::command("ip")
                            .args(["-6", "neigh", "show", &v6.to_string(), "dev", "eth0"])
                            .output()
                            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                            .unwrap_or_default();
                        record(1, neigh6_entry(&out));
                    }
                    std::thread::sleep(NEIGH_EVERY);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(NeighWatch {
            stop,
            changes,
            thread: Some(thread),
        })
    }

    /// Every change of the entry for `vip` (the watched IPv4 or IPv6 one): when it was seen,
    /// and the MAC (None: no usable entry).
    pub fn changes(&self, vip: IpAddr) -> Vec<NeighChange> {
        let family = usize::from(vip.is_ipv6());
        self.changes.lock().unwrap_or_else(|e| e.into_inner())[family].clone()
    }

    /// The MAC the entry for `vip` named at `at` (as last seen by then).
    pub fn entry_at(&self, vip: IpAddr, at: Instant) -> Option<String> {
        self.changes(vip)
            .iter()
            .rev()
            .find(|(seen, _)| *seen <= at)
            .and_then(|(_, mac)| mac.clone())
    }

    /// When the entry for `vip` first named `mac` at or after `from`, if it did.
    pub fn moved_to(&self, vip: IpAddr, mac: &str, from: Instant) -> Option<Instant> {
        let changes = self.changes(vip);
        // The entry may already have held `mac` when `from` came.
        let before = changes.iter().rev().find(|(at, _)| *at < from);
        if before.is_some_and(|(_, m)| m.as_deref() == Some(mac)) {
            return Some(from);
        }
        changes
            .iter()
            .find(|(at, m)| *at >= from && m.as_deref() == Some(mac))
            .map(|(at, _)| *at)
    }
}

impl Drop for NeighWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MAC of `ip -6 neigh show ADDR dev eth0`'s entry, unless it is failed or incomplete.
fn neigh6_entry(out: &str) -> Option<String> {
    let words: Vec<&str> = out.split_whitespace().collect();
    if words.iter().any(|w| matches!(*w, "FAILED" | "INCOMPLETE")) {
        return None;
    }
    let i = words.iter().position(|w| *w == "lladdr")?;
    words.get(i + 1).map(|m| m.to_string())
}

/// The complete entry's MAC for `ip` in a `/proc/net/arp` table.
fn arp_entry(table: &str, ip: Ipv4Addr) -> Option<String> {
    let ip = ip.to_string();
    table.lines().skip(1).find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // IP address, HW type, Flags (0x2: complete), HW address, Mask, Device
        (w.len() >= 4 && w[0] == ip && w[2] == "0x2").then(|| w[3].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::lab::{REALS, VIP};

    #[test]
    fn arp_entries_parse() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.72.0.100      0x1         0x2         52:54:00:72:00:11     *        eth0\n\
                 10.72.0.21       0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(arp_entry(t, VIP).as_deref(), Some("52:54:00:72:00:11"));
        assert_eq!(arp_entry(t, REALS[0].addr), None);
        assert_eq!(
            neigh6_entry("fd72::100 lladdr 52:54:00:72:00:12 STALE\n").as_deref(),
            Some("52:54:00:72:00:12")
        );
        assert_eq!(neigh6_entry("fd72::100  FAILED\n"), None);
        assert_eq!(neigh6_entry(""), None);
    }
}
