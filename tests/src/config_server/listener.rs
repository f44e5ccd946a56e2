//! The listener thread and the thread each accepted connection gets.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::connection::serve_connection;
use super::shared::{lock, Shared};
use super::{Mode, MAX_CONNECTIONS};

/// How often the listener thread looks for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// A non-blocking listener on `addr` (std sets `SO_REUSEADDR`, so the address of a closed
/// listener can be taken again at once).
pub(super) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The listener thread: acts on mode changes (closing and reopening the listener), accepts and
/// hands each connection to a thread of its own, until the stop flag is set.
pub(super) fn accept_loop(shared: &Arc<Shared>, addr: SocketAddr, listener: TcpListener) {
    let mut listener = Some(listener);
    let mut control = lock(&shared.control);
    loop {
        if shared.stopping() {
            return;
        }
        let changed = control.applied != control.wanted;
        if control.mode == Mode::Gone {
            listener = None;
        } else if listener.is_none() {
            match listen(addr) {
                Ok(l) => listener = Some(l),
                // Reported to the set_mode that asked; retried every poll.
                Err(e) if changed => control.bind_error = Some(e),
                Err(_) => {}
            }
        }
        if changed {
            control.applied = control.wanted;
            shared.control_changed.notify_all();
        }
        if let Some(l) = &listener {
            drop(control);
            // Until WouldBlock (none waiting) or another error (a connection reset while
            // queued, too many open files): those are tried again at the next poll.
            while let Ok((stream, peer)) = l.accept() {
                spawn_connection(shared, stream, peer);
            }
            control = lock(&shared.control);
        }
        if !shared.stopping() && control.applied == control.wanted {
            control = shared
                .control_changed
                .wait_timeout(control, ACCEPT_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Decrements the count of active connections when a connection thread ends, also by panic.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    // Only this thread adds to `active`, so the check cannot be overtaken.
    if shared.active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        return; // dropping the stream closes it
    }
    shared.active.fetch_add(1, Ordering::Relaxed);
    let active = Active(Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .name("config-server-conn".into())
        .spawn(move || {
            let shared = Arc::clone(&active.0);
            serve_connection(&shared, stream, peer);
            drop(active);
        });
    match spawned {
        Ok(h) => {
            let mut workers = lock(&shared.workers);
            workers.retain(|w| !w.is_finished());
            workers.push(h);
        }
        // The closure (with `active` and the stream) was dropped: count and connection are undone.
        Err(_) => {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}
