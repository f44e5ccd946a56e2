//! The order of a service's destinations in the kernel, and the canonical order lbd keeps it in
//! for `mh` services, so that balancers with the same reals map a flow to the same real.
//!
//! What the kernel does (Linux 6.1, `net/netfilter/ipvs/`, read for this module):
//!
//! - `ip_vs_ctl.c` `__ip_vs_update_dest(.., add = 1)` links a new destination with
//!   `list_add_rcu(&dest->n_list, &svc->destinations)`: at the **head** of the service's list.
//!   An edit (`add = 0`) leaves it where it is; `__ip_vs_unlink_dest` (`list_del_rcu`) takes it
//!   out and leaves the others' order alone.
//! - `ip_vs_mh.c` `ip_vs_mh_permutate` and `ip_vs_mh_populate` walk that list from the head:
//!   the lookup table is a function of the list order, each destination's address and port,
//!   its `last_weight` (see [`super::DestSpec::last_weight`]) and the table size (a build
//!   constant). Two boxes with the same reals in another order fill their tables differently
//!   and send the same flow to different reals.
//! - The dump (`IPVS_CMD_GET_DEST`, `ip_vs_genl_dump_dests`) and the old sockopt interface walk
//!   the same list from the head: a dump reads the kernel's order as it is, newest first.
//!   `ipvsadm -Ln` sorts by default; `ipvsadm -Ln --nosort` shows this order.
//! - A deleted destination goes to the netns' trash (`__ip_vs_del_dest`), referenced by its
//!   connections; `ip_vs_add_dest` takes it back from there (`ip_vs_trash_get_dest`, same
//!   service, address and port) instead of making a new one, so connections that still point
//!   at it find it available again. Trash entries without connections are freed after
//!   `IP_VS_DEST_TRASH_PERIOD` (120 s) of idleness.
//!
//! **The canonical order** (head first, as a dump and `ipvsadm -Ln --nosort` show it):
//! descending by address, then port (IPv4 before IPv6 in ascending order, so IPv6 first here).
//! Adding in ascending order builds it, which is what lbd did for a new service before this
//! order existed, so tables made by an older lbd are already canonical. Descending rather than
//! ascending because a destination can only be linked at the head: a new real whose address
//! is above every other's (the usual way a pool grows) then costs one add, and only a real
//! that sorts below others makes those others move.
//!
//! **Moving a destination** is a delete and an add in the same netlink batch. What it costs:
//! the destination is taken back from the trash, so its established connections continue;
//! between the two messages (microseconds) their packets find the destination unavailable and
//! are dropped (`ip_vs_in` with the default `expire_nodest_conn = 0`: TCP retransmits; with
//! `expire_nodest_conn = 1` a packet in that window ends its connection entry and is scheduled
//! again). Each message rebuilds the `mh` lookup table, so a new connection that arrives
//! mid-batch may be scheduled by an intermediate table. Counters of the destination are kept
//! (same service). A destination at weight 0 is added at its `last_weight` and set to 0 by the
//! next message, since an add at weight 0 would leave it no slots: for those microseconds it
//! can take new connections.

use super::kernel::DestKey;
use std::collections::{BTreeMap, BTreeSet};

/// A service's destination list as the kernel keeps it (`svc->destinations`): a pure model of
/// what `ip_vs_add_dest`, `ip_vs_del_dest` and `ip_vs_edit_dest` do to it.
///
/// Stored tail first, so that linking at the head (every add) is a push: stored head first,
/// each add shifted the whole list, and a service of a thousand reals cost half a million
/// moves to build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestList(Vec<DestKey>);

impl DestList {
    pub fn new() -> DestList {
        DestList::default()
    }

    /// The list a dump returned, in the dump's order (which is the list's, head first).
    pub fn from_dump(keys: impl IntoIterator<Item = DestKey>) -> DestList {
        let mut tail_first: Vec<DestKey> = keys.into_iter().collect();
        tail_first.reverse();
        DestList(tail_first)
    }

    /// `ip_vs_add_dest`: linked at the head. (An add of a key already there fails with EEXIST
    /// in the kernel; the model keeps one entry, at the head.)
    pub fn add(&mut self, key: DestKey) {
        if let Some(at) = self.0.iter().position(|k| *k == key) {
            self.0.remove(at);
        }
        self.0.push(key);
    }

    /// Room for `n` more destinations.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve_exact(n);
    }

    /// [`Self::add`] of a key the list does not hold (no search for it).
    pub fn add_absent(&mut self, key: DestKey) {
        debug_assert!(!self.0.contains(&key), "{key} is in the list already");
        self.0.push(key);
    }

    /// `ip_vs_del_dest`: unlinked; the others keep their order.
    pub fn remove(&mut self, key: &DestKey) {
        if let Some(at) = self.0.iter().position(|k| k == key) {
            self.0.remove(at);
        }
    }

    /// Head first.
    pub fn keys(&self) -> Vec<DestKey> {
        self.0.iter().rev().copied().collect()
    }

    pub fn contains(&self, key: &DestKey) -> bool {
        self.0.contains(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `keys` in the canonical order, head first (see the module doc).
pub fn canonical<'a>(keys: impl IntoIterator<Item = &'a DestKey>) -> Vec<DestKey> {
    let mut v: Vec<DestKey> = keys.into_iter().copied().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.dedup();
    v
}

/// Whether a list (head first) is in the canonical order.
pub fn is_canonical(keys: &[DestKey]) -> bool {
    keys.windows(2).all(|w| w[0] > w[1])
}

/// The destinations to add, in the order to add them, so that a list that now reads `current`
/// (head first) holds `want` in the canonical order once the destinations it has and `want`
/// lacks are deleted. Those of them it has already must be deleted just before their add
/// (a move); the others are new. `stale` destinations must be added again whatever their place
/// (an add is the only way to clear the kernel's `last_weight`). Empty when `current` already
/// is in order and nothing is stale.
///
/// Since an add links at the head, the destinations that stay put are a tail of the canonical
/// order that `current` already holds in that order; this keeps the longest such tail (up to
/// the lowest stale destination) and moves nothing else, which is the fewest moves there are.
pub fn reorder(
    current: &[DestKey],
    want: &BTreeSet<DestKey>,
    stale: &BTreeSet<DestKey>,
) -> Vec<DestKey> {
    let order = canonical(want);
    let position: BTreeMap<DestKey, usize> = current
        .iter()
        .filter(|k| want.contains(k))
        .enumerate()
        .map(|(i, k)| (*k, i))
        .collect();
    // Walk the canonical order from its tail while each destination is in the list before the
    // one after it.
    let mut keep_from = order.len();
    let mut next = usize::MAX;
    while keep_from > 0 {
        let key = &order[keep_from - 1];
        match position.get(key) {
            Some(&p) if p < next && !stale.contains(key) => {
                next = p;
                keep_from -= 1;
            }
            _ => break,
        }
    }
    order[..keep_from].iter().rev().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> DestKey {
        let a: std::net::SocketAddr = s.parse().unwrap();
        DestKey {
            addr: a.ip(),
            port: a.port(),
        }
    }

    fn keys(v: &[&str]) -> Vec<DestKey> {
        v.iter().map(|s| k(s)).collect()
    }

    fn set(v: &[&str]) -> BTreeSet<DestKey> {
        keys(v).into_iter().collect()
    }

    #[test]
    fn the_list_links_at_the_head_and_unlinks_in_place() {
        let mut l = DestList::new();
        for a in ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"] {
            l.add(k(a));
        }
        // Newest first, as the kernel dumps it.
        assert_eq!(
            l.keys(),
            keys(&["10.0.0.3:80", "10.0.0.2:80", "10.0.0.1:80"])
        );
        l.remove(&k("10.0.0.2:80"));
        assert_eq!(l.keys(), keys(&["10.0.0.3:80", "10.0.0.1:80"]));
        // Taken back (from the trash, in the kernel): at the head again.
        l.add(k("10.0.0.2:80"));
        assert_eq!(
            l.keys(),
            keys(&["10.0.0.2:80", "10.0.0.3:80", "10.0.0.1:80"])
        );
    }

    #[test]
    fn canonical_is_descending_by_address_then_port() {
        let c = canonical(&keys(&[
            "10.0.0.2:80",
            "10.0.0.10:80",
            "10.0.0.2:81",
            "[2001:db8::1]:80",
            "9.0.0.1:443",
        ]));
        assert_eq!(
            c,
            keys(&[
                "[2001:db8::1]:80",
                "10.0.0.10:80",
                "10.0.0.2:81",
                "10.0.0.2:80",
                "9.0.0.1:443"
            ])
        );
        assert!(is_canonical(&c));
        assert!(!is_canonical(&keys(&["10.0.0.1:80", "10.0.0.2:80"])));
        // Adding in ascending order builds it.
        let mut l = DestList::new();
        let mut asc = c.clone();
        asc.reverse();
        for a in asc {
            l.add(a);
        }
        assert_eq!(l.keys(), c);
    }

    /// (list now, head first; wanted; what to add, in order)
    #[test]
    fn reorder_moves_the_fewest() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            // In order: nothing.
            (
                &["10.0.0.3:80", "10.0.0.2:80"],
                &["10.0.0.2:80", "10.0.0.3:80"],
                &[],
            ),
            // A new real above all others: one add at the head.
            (
                &["10.0.0.3:80", "10.0.0.2:80"],
                &["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"],
                &["10.0.0.4:80"],
            ),
            // A new real below the others: they move (added back after it, highest last).
            (
                &["10.0.0.3:80", "10.0.0.2:80"],
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
            ),
            // A new real in the middle: only those above it move.
            (
                &["10.0.0.4:80", "10.0.0.3:80", "10.0.0.1:80"],
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"],
                &["10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"],
            ),
            // 10.0.0.2 was removed and added back (at the head) by an older lbd: moving the
            // one real above it is enough.
            (
                &["10.0.0.2:80", "10.0.0.3:80", "10.0.0.1:80"],
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
                &["10.0.0.3:80"],
            ),
            // Destinations about to be deleted do not count.
            (
                &["10.0.0.9:80", "10.0.0.3:80", "10.0.0.5:80", "10.0.0.2:80"],
                &["10.0.0.2:80", "10.0.0.3:80"],
                &[],
            ),
            // Added in descending order (another tool): all but the lowest move.
            (
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
                &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"],
                &["10.0.0.2:80", "10.0.0.3:80"],
            ),
            (
                &[],
                &["10.0.0.2:80", "10.0.0.1:80"],
                &["10.0.0.1:80", "10.0.0.2:80"],
            ),
        ];
        for (now, want, adds) in cases {
            let got = reorder(&keys(now), &set(want), &BTreeSet::new());
            assert_eq!(got, keys(adds), "{now:?} → {want:?}");
            // Carried out on the model, the list ends canonical.
            let mut l = DestList::from_dump(keys(now));
            for a in &got {
                l.remove(a);
                l.add(*a);
            }
            for x in keys(now) {
                if !set(want).contains(&x) {
                    l.remove(&x);
                }
            }
            assert_eq!(l.keys(), canonical(&set(want)), "{now:?} → {want:?}");
        }
    }

    #[test]
    fn a_stale_destination_is_added_again_with_those_above_it() {
        let now = keys(&["10.0.0.3:80", "10.0.0.2:80", "10.0.0.1:80"]);
        let want = set(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        assert_eq!(
            reorder(&now, &want, &set(&["10.0.0.2:80"])),
            keys(&["10.0.0.2:80", "10.0.0.3:80"])
        );
        assert_eq!(
            reorder(&now, &want, &set(&["10.0.0.3:80"])),
            keys(&["10.0.0.3:80"])
        );
    }

    #[test]
    fn reorder_is_minimal_against_every_other_choice_of_kept_tail() {
        // Exhaustive over all orders of 5 reals (and every subset wanted): no kept set larger
        // than the one reorder keeps can end canonical.
        let all = keys(&[
            "10.0.0.1:80",
            "10.0.0.2:80",
            "10.0.0.3:80",
            "10.0.0.4:80",
            "10.0.0.5:80",
        ]);
        let mut perm: Vec<usize> = (0..all.len()).collect();
        let mut count = 0;
        loop {
            let now: Vec<DestKey> = perm.iter().map(|&i| all[i]).collect();
            for mask in 0u32..(1 << all.len()) {
                let want: BTreeSet<DestKey> = (0..all.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| all[i])
                    .collect();
                let adds = reorder(&now, &want, &BTreeSet::new());
                let kept = want.len() - adds.len();
                // The best possible: the longest tail of the canonical order that `now`
                // holds in order, by brute force over tail lengths.
                let order = canonical(&want);
                let in_now: Vec<DestKey> =
                    now.iter().filter(|x| want.contains(x)).copied().collect();
                let best = (0..=order.len())
                    .filter(|&t| {
                        let tail = &order[order.len() - t..];
                        let sub: Vec<DestKey> = in_now
                            .iter()
                            .filter(|x| tail.contains(x))
                            .copied()
                            .collect();
                        sub == tail
                    })
                    .max()
                    .unwrap();
                assert_eq!(kept, best, "{now:?} {want:?}");
                count += 1;
            }
            // Next permutation.
            let Some(i) = (0..perm.len() - 1).rev().find(|&i| perm[i] < perm[i + 1]) else {
                break;
            };
            let j = (i + 1..perm.len())
                .rev()
                .find(|&j| perm[j] > perm[i])
                .unwrap();
            perm.swap(i, j);
            perm[i + 1..].reverse();
        }
        assert_eq!(count, 120 * 32);
    }
}
