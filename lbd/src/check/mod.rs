//! Health checks of real servers.
//!
//! ```text
//! Config ──▶ engine: a queue of next runs ──probe──▶ Outcome (up / down + reason)
//!                 │                                        │
//!                 │                 Hysteresis (rise/fall, interval, retry, jitter)
//!                 ▼                                        │ state changes
//!            HealthBoard (per real, per service, quorum) ◀─┘
//!                 │ logs each change once, with its reason
//!                 ▼
//!   watch::Receiver<Arc<HealthReport>> ──▶ the daemon: IPVS reconciler (RealHealth, weights)
//!                                        ──▶ VRRP quorum per instance, status (serde)
//! ```
//!
//! Pure parts (no tokio): [`failure`], [`hysteresis`], [`quorum`], [`board`], [`schedule`]
//! (next run times by millisecond), [`deadlines`] (runs in flight by deadline), [`proto`] (protocol encoders and parsers). I/O parts (feature `daemon`): `probe` (the checkers),
//! `connect` (the engine's fast path for TCP connect checks: reused sockets, one epoll), `half_open`
//! (SYN-only TCP checks: batched sends and reads on one raw socket per family),
//! `engine` (the scheduler loop: clock, runs in flight, channels), and `subsystem` (the engine's thread, started
//! and fed by the daemon, which takes the health reports into the IPVS reconciler).
//!
//! Health reaches the kernel only through the reconciler: the report's
//! [`board::HealthReport::real_health`] is the [`crate::reconcile::RealHealth`] that
//! [`crate::reconcile::desired`] takes, where `on_failure` (inhibit → weight 0, remove → absent)
//! and the sorry server (when no real serves) are applied.

pub mod board;
pub mod deadlines;
pub mod failure;
pub mod hysteresis;
pub mod proto;
pub mod quorum;
pub mod schedule;

#[cfg(feature = "daemon")]
pub mod connect;
#[cfg(feature = "daemon")]
pub mod engine;
#[cfg(feature = "daemon")]
pub mod half_open;
#[cfg(feature = "daemon")]
pub mod probe;
#[cfg(feature = "daemon")]
pub mod subsystem;

pub use board::{Event, HealthBoard, HealthReport, RealKey, RealStatus, ServiceHealth};
pub use failure::{Failure, Outcome};
pub use hysteresis::{CheckState, Hysteresis, Step, Timing, Transition};
pub use quorum::{QuorumChange, QuorumState, QuorumTracker};
