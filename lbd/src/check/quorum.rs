//! A service's quorum with hysteresis: lost when the total weight of the reals that serve falls
//! below `min_weight`, regained only at `min_weight + hysteresis`, so a real flapping at the
//! edge does not flap the quorum. Pure.
//!
//! Quorum loss is visible state (status, logs) and an input the VRRP instance can use to lower
//! its priority (`quorum_priority_drop`); it does not by itself change the IPVS table.

use crate::config::Quorum;
use serde::Serialize;

/// Quorum state of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QuorumState {
    pub min_weight: u32,
    pub hysteresis: u32,
    /// Whether the service has its quorum now.
    pub up: bool,
    /// Total weight of the reals that serve, at the last evaluation.
    pub up_weight: u64,
}

/// A change of quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QuorumChange {
    pub up: bool,
    pub up_weight: u64,
    /// The weight the change was measured against: `min_weight` when lost,
    /// `min_weight + hysteresis` when regained.
    pub threshold: u64,
}

/// Tracks one service's quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumTracker {
    min_weight: u32,
    hysteresis: u32,
    up: Option<bool>,
    up_weight: u64,
}

impl QuorumTracker {
    pub fn new(q: Quorum) -> QuorumTracker {
        QuorumTracker {
            min_weight: q.min_weight,
            hysteresis: q.hysteresis,
            up: None,
            up_weight: 0,
        }
    }

    /// The same tracker with new settings (reload); the current state is kept.
    pub fn reconfigure(&mut self, q: Quorum) {
        self.min_weight = q.min_weight;
        self.hysteresis = q.hysteresis;
    }

    /// Evaluates the quorum for the current up weight. The first evaluation reports a change
    /// only when the quorum is missing (having it is the normal state).
    pub fn update(&mut self, up_weight: u64) -> Option<QuorumChange> {
        self.up_weight = up_weight;
        let low = u64::from(self.min_weight);
        let high = low + u64::from(self.hysteresis);
        let (now, threshold) = match self.up {
            None => (up_weight >= low, low),
            Some(true) => (up_weight >= low, low),
            Some(false) => (up_weight >= high, high),
        };
        let changed = match self.up {
            None => !now,
            Some(was) => was != now,
        };
        self.up = Some(now);
        changed.then_some(QuorumChange {
            up: now,
            up_weight,
            threshold,
        })
    }

    pub fn state(&self) -> QuorumState {
        QuorumState {
            min_weight: self.min_weight,
            hysteresis: self.hysteresis,
            up: self.up.unwrap_or(true),
            up_weight: self.up_weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(min_weight: u32, hysteresis: u32) -> QuorumTracker {
        QuorumTracker::new(Quorum {
            min_weight,
            hysteresis,
        })
    }

    #[test]
    fn lost_below_min_regained_at_min_plus_hysteresis() {
        let mut q = tracker(3, 2);
        assert_eq!(q.update(4), None);
        assert!(q.state().up);
        assert_eq!(q.update(3), None);
        let lost = q.update(2).unwrap();
        assert_eq!((lost.up, lost.up_weight, lost.threshold), (false, 2, 3));
        // Back at the minimum is not enough: hysteresis.
        assert_eq!(q.update(3), None);
        assert_eq!(q.update(4), None);
        assert!(!q.state().up);
        let back = q.update(5).unwrap();
        assert_eq!((back.up, back.threshold), (true, 5));
        assert_eq!(q.update(3), None);
    }

    #[test]
    fn first_evaluation_reports_only_a_missing_quorum() {
        let mut q = tracker(2, 0);
        assert_eq!(q.update(5), None);
        let mut q = tracker(2, 0);
        assert_eq!(
            q.update(1),
            Some(QuorumChange {
                up: false,
                up_weight: 1,
                threshold: 2
            })
        );
        assert_eq!(q.update(2).map(|c| c.up), Some(true));
    }
}
