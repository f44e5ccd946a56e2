//! What the wire and the neighbours show at takeovers: the announcements, the neighbour
//! entries following the master, and two masters after a fault ends.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::NEIGH_WITHIN;
use crate::chaos::analysis::{self, ms};
use crate::chaos::lab::{Layout, Member, NeighWatch, VrrpBy, ADVERT, GATEWAY, MEMBERS, VIP, VIP6};
use crate::chaos::{Chaos, Report, Row};

/// A takeover must be announced (gratuitous ARP from the new master) within this.
const GARP_WITHIN: Duration = Duration::from_secs(2);

/// The index of the current master on the wire (lb1 after a settle).
pub(super) fn master_index(c: &Chaos) -> usize {
    let runs = c.masterships();
    let now = Instant::now();
    runs.iter()
        .rev()
        .find(|r| now.saturating_duration_since(r.to) < 2 * ADVERT)
        .and_then(|r| MEMBERS.iter().position(|m| IpAddr::V4(m.addr) == r.source))
        .unwrap_or(0)
}

/// A neighbour's entry that must follow the master: who keeps it, for which address, the MAC
/// it must name when `m` is master, and what to call it.
pub(super) struct Follower<'a> {
    pub(super) watch: &'a NeighWatch,
    pub(super) ip: IpAddr,
    pub(super) mac: String,
    pub(super) what: &'static str,
}

impl Follower<'_> {
    /// Whether the entry named `m` (this follower's MAC for it) within [`NEIGH_WITHIN`] of `at`:
    /// the note saying when, or when it did move, if ever.
    fn moved(&self, m: &Member, at: Instant) -> Result<String, Option<Duration>> {
        match self.watch.moved_to(self.ip, &self.mac, at) {
            Some(when) if when <= at + NEIGH_WITHIN => Ok(format!(
                "{} entry on {} after {} ms",
                self.what,
                m.name,
                ms(when.saturating_duration_since(at))
            )),
            other => Err(other.map(|when| when.saturating_duration_since(at))),
        }
    }
}

/// The entries that follow master `m`: the client's for the VIP (and the IPv6 VIP, which only
/// lbd's pair has), and in the NAT layout r1's for the gateway, on `m`'s inside MAC.
pub(super) fn followers<'a>(c: &'a Chaos, m: &Member) -> Vec<Follower<'a>> {
    let mut out = vec![Follower {
        watch: &c.lab.neigh,
        ip: IpAddr::V4(VIP),
        mac: m.mac.to_string(),
        what: "client's ARP",
    }];
    if c.lab.setup.vrrp == VrrpBy::Lbd {
        out.push(Follower {
            watch: &c.lab.neigh,
            ip: IpAddr::V6(VIP6),
            mac: m.mac.to_string(),
            what: "client's neighbour",
        });
    }
    if let (Layout::Nat, Some(watch)) = (c.lab.setup.layout, &c.lab.gateway_neigh) {
        out.push(Follower {
            watch,
            ip: IpAddr::V4(GATEWAY),
            mac: m.inside_mac.to_string(),
            what: "r1's gateway ARP",
        });
    }
    out
}

/// The wire at every takeover of [from, to): the new master's gratuitous ARP, and the
/// client's neighbour entries (and a NAT real's for the gateway) moving to its MAC; adds
/// notes and violations.
pub(super) fn check_takeovers(
    c: &Chaos,
    row: &mut Row,
    from: Instant,
    to: Instant,
    report: &mut Report,
) {
    let runs = c.masterships();
    let events = c.lab.observer.events();
    for t in analysis::takeovers(&runs, from, to) {
        let Some(m) = MEMBERS.iter().find(|m| IpAddr::V4(m.addr) == t.source) else {
            continue;
        };
        let garp = events.iter().find(|e| {
            e.at + Duration::from_millis(200) >= t.at
                && e.at <= t.at + GARP_WITHIN
                && e.packet.announces(IpAddr::V4(VIP))
                && e.packet.link.src.0 == m.mac.0
        });
        match garp {
            Some(e) => row.notes.push(format!(
                "{} announced the VIP {} ms after its first advert",
                m.name,
                ms(e.at.saturating_duration_since(t.at))
            )),
            None => report.violations.push(format!(
                "{}: no gratuitous ARP for {VIP} from {} within {GARP_WITHIN:?} of its takeover",
                row.fault, m.name
            )),
        }
        if c.lab.setup.vrrp != VrrpBy::Lbd {
            // The anchor: reported, not judged.
            for f in followers(c, m) {
                row.notes
                    .push(f.moved(m, t.at).unwrap_or_else(|_| {
                        format!("{} entry did not move to {}", f.what, m.name)
                    }));
            }
            continue;
        }
        let na = events.iter().find(|e| {
            e.at + Duration::from_millis(200) >= t.at
                && e.at <= t.at + GARP_WITHIN
                && e.packet.announces(IpAddr::V6(VIP6))
                && e.packet.link.src.0 == m.mac.0
        });
        if na.is_none() {
            report.violations.push(format!(
                "{}: no unsolicited neighbour advertisement for {VIP6} from {} within {GARP_WITHIN:?} of its takeover",
                row.fault, m.name
            ));
        }
        // A takeover undone at once (the old master answered its first advert: a spurious
        // one under VRRP loss) may leave no trace in the neighbours' tables, which are
        // sampled: what matters is that they point at whoever holds the VIP once it settled.
        // Any longer takeover must move the entries.
        if let Some((holder, ended)) = undone_by(&runs, t.source, t.at) {
            let after = ended + NEIGH_WITHIN;
            let Some(holder) = MEMBERS.iter().find(|h| IpAddr::V4(h.addr) == holder) else {
                continue;
            };
            for f in followers(c, holder) {
                let entry = f.watch.entry_at(f.ip, after);
                if entry.as_deref() == Some(f.mac.as_str()) {
                    row.notes.push(format!(
                        "{}'s takeover undone by {} after {} ms; the {} entry on {} {NEIGH_WITHIN:?} later",
                        m.name,
                        holder.name,
                        ms(ended.saturating_duration_since(t.at)),
                        f.what,
                        holder.name
                    ));
                } else {
                    report.violations.push(format!(
                        "{}: {}'s takeover was undone by {}, but {NEIGH_WITHIN:?} later the {} entry for {} is {entry:?}, not {} ({})",
                        row.fault, m.name, holder.name, f.what, f.ip, holder.name, f.mac
                    ));
                }
            }
            continue;
        }
        for f in followers(c, m) {
            match f.moved(m, t.at) {
                Ok(note) => row.notes.push(note),
                Err(other) => report.violations.push(format!(
                    "{}: the {} entry for {} did not move to {} ({}) within {NEIGH_WITHIN:?} of its takeover (moved: {:?})",
                    row.fault,
                    f.what,
                    f.ip,
                    m.name,
                    f.mac,
                    other
                )),
            }
        }
    }
}

/// Who held the VIP after `source`'s takeover at `at`, when that mastership ended within one
/// advert interval (answered at once: a partition's takeover lasts) and another master went
/// on past it; with when it ended.
fn undone_by(
    runs: &[analysis::Mastership],
    source: IpAddr,
    at: Instant,
) -> Option<(IpAddr, Instant)> {
    let run = runs.iter().find(|r| r.source == source && r.from == at)?;
    if run.to >= at + ADVERT {
        return None;
    }
    let holder = runs
        .iter()
        .filter(|r| r.source != source && r.to > run.to && r.from <= run.to + NEIGH_WITHIN)
        .max_by_key(|r| r.to)?;
    Some((holder.source, run.to))
}

/// Two masters after `healed`: how long, at most, they lasted past it.
pub(super) fn split_brain_after(c: &Chaos, healed: Instant) -> Duration {
    analysis::split_brain(&c.masterships())
        .iter()
        .filter(|(_, to)| *to > healed)
        .map(|(from, to)| *to - (*from).max(healed))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_takeover_answered_at_once_counts_as_undone() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let lb1 = IpAddr::V4(MEMBERS[0].addr);
        let lb2 = IpAddr::V4(MEMBERS[1].addr);
        let run = |source, from, to| analysis::Mastership {
            source,
            from: at(from),
            to: at(to),
        };
        // lb1 master throughout; lb2 sends one advert as master (VRRP loss): undone by lb1.
        let spurious = [run(lb1, 0, 20_000), run(lb2, 5_900, 5_900)];
        assert_eq!(undone_by(&spurious, lb2, at(5_900)), Some((lb1, at(5_900))));
        // A partition: lb2 master for 5 s beside lb1, which goes on: a real takeover.
        let partition = [run(lb1, 0, 20_000), run(lb2, 5_000, 10_000)];
        assert_eq!(undone_by(&partition, lb2, at(5_000)), None);
        // lb2 takes over and keeps it: nothing undone.
        let failover = [run(lb1, 0, 5_000), run(lb2, 8_000, 20_000)];
        assert_eq!(undone_by(&failover, lb2, at(8_000)), None);
    }
}
