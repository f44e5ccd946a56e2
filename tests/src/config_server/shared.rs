//! The state one server's threads share: the mode the listener thread acts on, the stop
//! flag, the request log and the connection counts.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{Mode, Request};

/// What the listener thread is told and what it reports back.
pub(super) struct Control {
    pub(super) mode: Mode,
    /// Bumped by each `set_mode`.
    pub(super) wanted: u64,
    /// The last `wanted` the listener thread has acted on.
    pub(super) applied: u64,
    /// Why listening again failed when `applied` was last set.
    pub(super) bind_error: Option<io::Error>,
}

/// State of one server, shared by its threads.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) control: Mutex<Control>,
    pub(super) control_changed: Condvar,
    pub(super) stop: AtomicBool,
    pub(super) log: Mutex<Vec<Request>>,
    pub(super) active: AtomicUsize,
    pub(super) rejected: AtomicU64,
    pub(super) workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Locks, also after a panic elsewhere (the data are logs and flags, still usable).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(super) fn mode(&self) -> Mode {
        lock(&self.control).mode
    }

    /// Logs a new request; returns its index for later updates.
    pub(super) fn log_start(&self, request: Request) -> usize {
        let mut log = lock(&self.log);
        log.push(request);
        log.len() - 1
    }

    pub(super) fn log_update(&self, index: usize, f: impl FnOnce(&mut Request)) {
        if let Some(r) = lock(&self.log).get_mut(index) {
            f(r);
        }
    }
}
