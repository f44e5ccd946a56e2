//! A small client for the QEMU Machine Protocol (QMP) over a unix socket.
//!
//! QEMU is started with `-qmp unix:PATH,server=on,wait=off`; [`Qmp::connect`] reads the greeting,
//! negotiates with `qmp_capabilities`, and starts a reader thread that files asynchronous events
//! (`SHUTDOWN`, `POWERDOWN`, `RESET`, ...) apart from command responses.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a command may take before [`QmpError::Timeout`]. QEMU answers from its main loop,
/// which is busy but responsive even under TCG.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// A QMP failure.
#[derive(thiserror::Error)]
pub enum QmpError {
    /// The socket did not accept a connection in time.
    #[error("cannot connect to QMP socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The last connection error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP I/O on {path} during {during}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        during: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// QEMU sent something that is not QMP.
    #[error("QMP protocol error on {path}: {detail}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// QEMU closed the connection (it exited) before answering.
    #[error("QEMU closed the QMP connection before answering {command}")]
    Closed {
        /// The command sent.
        command: String,
    },
    /// QEMU did not answer in time.
    #[error("QEMU did not answer {command} within {timeout:?}")]
    Timeout {
        /// The command sent.
        command: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// QEMU refused the command.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command sent.
        command: String,
        /// QMP error class, e.g. `GenericError`, `CommandNotFound`.
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

crate::debug_is_display!(QmpError);

/// An asynchronous QMP event, e.g. `SHUTDOWN` with `{"guest": true, "reason": "guest-shutdown"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct QmpEvent {
    /// Event name, e.g. `SHUTDOWN`.
    pub name: String,
    /// Event data (`Value::Null` when absent).
    pub data: Value,
}

/// One message from QEMU, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum QmpMessage {
    /// The greeting sent on connect (`{"QMP": {...}}`).
    Greeting(Value),
    /// A successful response.
    Return {
        /// The `id` sent with the command, if any.
        id: Option<Value>,
        /// The `return` value.
        value: Value,
    },
    /// A failed command.
    Error {
        /// The `id` sent with the command, if any.
        id: Option<Value>,
        /// Error class.
        class: String,
        /// Description.
        desc: String,
    },
    /// An asynchronous event.
    Event(QmpEvent),
}

/// Parses one line of QMP (each message is one JSON object on one line).
pub fn parse_message(line: &str) -> Result<QmpMessage, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("not a JSON object: {line}"))?;
    let id = obj.get("id").cloned();
    if let Some(g) = obj.get("QMP") {
        Ok(QmpMessage::Greeting(g.clone()))
    } else if let Some(r) = obj.get("return") {
        Ok(QmpMessage::Return {
            id,
            value: r.clone(),
        })
    } else if let Some(e) = obj.get("error") {
        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(QmpMessage::Error {
            id,
            class: field("class"),
            desc: field("desc"),
        })
    } else if let Some(name) = obj.get("event").and_then(Value::as_str) {
        Ok(QmpMessage::Event(QmpEvent {
            name: name.to_owned(),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
        }))
    } else {
        Err(format!("unknown QMP message: {line}"))
    }
}

/// The command that sends ctrl-alt-delete as key presses.
pub fn ctrl_alt_delete_args() -> Value {
    json!({"keys": [
        {"type": "qcode", "data": "ctrl"},
        {"type": "qcode", "data": "alt"},
        {"type": "qcode", "data": "delete"},
    ]})
}

#[derive(Default)]
struct Events {
    list: Mutex<(Vec<QmpEvent>, bool)>,
    changed: Condvar,
}

struct Writer {
    stream: UnixStream,
    next_id: u64,
    responses: Receiver<QmpMessage>,
}

/// A connected QMP client. Methods take `&self`; commands are serialised internally.
pub struct Qmp {
    path: PathBuf,
    writer: Mutex<Writer>,
    events: Arc<Events>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp").field("path", &self.path).finish()
    }
}

impl Qmp {
    /// Connects to `path`, retrying until `timeout` while QEMU creates the socket, and negotiates
    /// capabilities. `still_starting` is asked between attempts and may abort the wait (e.g.
    /// because QEMU already exited); its error text becomes the connect error.
    pub fn connect(
        path: &Path,
        timeout: Duration,
        mut still_starting: impl FnMut() -> Result<(), String>,
    ) -> Result<Self, QmpError> {
        // Some(Err) when QEMU is no longer starting; the last connect error on a miss.
        let mut last = None;
        let connected = crate::wait::until_some(timeout, Duration::from_millis(20), || {
            let e = match UnixStream::connect(path) {
                Ok(s) => return Some(Ok(s)),
                Err(e) => e,
            };
            if let Err(why) = still_starting() {
                return Some(Err(io::Error::other(why)));
            }
            last = Some(e);
            None
        });
        let stream = connected
            .unwrap_or_else(|| Err(last.expect("until_some tries at least once")))
            .map_err(|source| QmpError::Connect {
                path: path.to_owned(),
                source,
            })?;
        let io_err = |during: &str, source| QmpError::Io {
            path: path.to_owned(),
            during: during.to_owned(),
            source,
        };
        let read_half = stream.try_clone().map_err(|e| io_err("clone", e))?;
        let (tx, rx) = mpsc::channel();
        let events = Arc::<Events>::default();
        let reader_events = Arc::clone(&events);
        let reader = std::thread::Builder::new()
            .name("qmp-reader".into())
            .spawn(move || {
                let mut lines = BufReader::new(read_half);
                let mut line = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    match parse_message(line.trim_end()) {
                        Ok(QmpMessage::Event(ev)) => {
                            lock(&reader_events.list).0.push(ev);
                            reader_events.changed.notify_all();
                        }
                        Ok(msg) => {
                            if tx.send(msg).is_err() {
                                break;
                            }
                        }
                        // Not QMP: ignore the line rather than lose the connection.
                        Err(_) => {}
                    }
                }
                lock(&reader_events.list).1 = true;
                reader_events.changed.notify_all();
            })
            .map_err(|e| io_err("starting the reader thread", e))?;
        let qmp = Self {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                stream,
                next_id: 1,
                responses: rx,
            }),
            events,
            reader: Mutex::new(Some(reader)),
        };
        match lock(&qmp.writer).responses.recv_timeout(COMMAND_TIMEOUT) {
            Ok(QmpMessage::Greeting(_)) => {}
            Ok(other) => {
                return Err(QmpError::Protocol {
                    path: path.to_owned(),
                    detail: format!("expected the QMP greeting, got {other:?}"),
                })
            }
            Err(_) => {
                return Err(QmpError::Protocol {
                    path: path.to_owned(),
                    detail: "no QMP greeting".into(),
                })
            }
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Sends `command` with optional `arguments` and returns its `return` value.
    pub fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut w = lock(&self.writer);
        let id = w.next_id;
        w.next_id += 1;
        let mut msg = json!({"execute": command, "id": id});
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut bytes = serde_json::to_vec(&msg).expect("a JSON value serialises");
        bytes.push(b'\n');
        w.stream
            .write_all(&bytes)
            .map_err(|source| match source.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => QmpError::Closed {
                    command: command.to_owned(),
                },
                _ => QmpError::Io {
                    path: self.path.clone(),
                    during: format!("sending {command}"),
                    source,
                },
            })?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.responses.recv_timeout(left) {
                Ok(QmpMessage::Return { id: rid, value }) if rid == Some(json!(id)) => {
                    return Ok(value)
                }
                Ok(QmpMessage::Error {
                    id: rid,
                    class,
                    desc,
                }) if rid == Some(json!(id)) || rid.is_none() => {
                    return Err(QmpError::Command {
                        command: command.to_owned(),
                        class,
                        desc,
                    })
                }
                // A late answer to an earlier command that timed out.
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(QmpError::Timeout {
                        command: command.to_owned(),
                        timeout: COMMAND_TIMEOUT,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(QmpError::Closed {
                        command: command.to_owned(),
                    })
                }
            }
        }
    }

    /// Presses the ACPI power button (`system_powerdown`). The guest decides what to do.
    pub fn system_powerdown(&self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Sends ctrl-alt-delete as key presses (`send-key`).
    pub fn send_ctrl_alt_delete(&self) -> Result<(), QmpError> {
        self.execute("send-key", Some(ctrl_alt_delete_args()))
            .map(drop)
    }

    /// Ends QEMU at once (`quit`). QEMU may close the socket before answering; that counts as
    /// success.
    pub fn quit(&self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs a human monitor (HMP) command, e.g. `info network`, and returns its text output.
    pub fn human_monitor_command(&self, command_line: &str) -> Result<String, QmpError> {
        let v = self.execute(
            "human-monitor-command",
            Some(json!({"command-line": command_line})),
        )?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The VM run state from `query-status`, e.g. `running`, `paused`, `shutdown`.
    pub fn query_status(&self) -> Result<String, QmpError> {
        let v = self.execute("query-status", None)?;
        Ok(v["status"].as_str().unwrap_or_default().to_owned())
    }

    /// All events received so far, oldest first.
    pub fn events(&self) -> Vec<QmpEvent> {
        lock(&self.events.list).0.clone()
    }

    /// Waits for an event named `name` (already received ones count). `None` on timeout or
    /// when the connection closed without it.
    pub fn wait_event(&self, name: &str, timeout: Duration) -> Option<QmpEvent> {
        let deadline = Instant::now() + timeout;
        let mut list = lock(&self.events.list);
        loop {
            if let Some(ev) = list.0.iter().find(|e| e.name == name) {
                return Some(ev.clone());
            }
            let now = Instant::now();
            if list.1 || now >= deadline {
                return None;
            }
            list = self
                .events
                .changed
                .wait_timeout(list, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits (at most `timeout`) until QEMU closed the connection, so every event it sent before
    /// exiting has been filed. Returns whether it closed.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut list = lock(&self.events.list);
        while !list.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            list = self
                .events
                .changed
                .wait_timeout(list, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(list);
        if let Some(h) = lock(&self.reader).take() {
            let _ = h.join();
        }
        true
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        // Unblocks the reader thread if QEMU is still running.
        let _ = lock(&self.writer).stream.shutdown(std::net::Shutdown::Both);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as QEMU 7.2 sends them.
    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;

    #[test]
    fn parses_greeting_return_error_and_event() {
        assert!(matches!(
            parse_message(GREETING),
            Ok(QmpMessage::Greeting(g)) if g["version"]["qemu"]["major"] == 7
        ));
        assert_eq!(
            parse_message(r#"{"return": {}, "id": 1}"#),
            Ok(QmpMessage::Return {
                id: Some(json!(1)),
                value: json!({})
            })
        );
        assert_eq!(
            parse_message(
                r#"{"id": 2, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#
            ),
            Ok(QmpMessage::Error {
                id: Some(json!(2)),
                class: "CommandNotFound".into(),
                desc: "The command nope has not been found".into()
            })
        );
        assert_eq!(
            parse_message(
                r#"{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#
            ),
            Ok(QmpMessage::Event(QmpEvent {
                name: "SHUTDOWN".into(),
                data: json!({"guest": true, "reason": "guest-shutdown"})
            }))
        );
    }

    #[test]
    fn rejects_what_is_not_qmp() {
        assert!(parse_message("hello").is_err());
        assert!(parse_message("[1]").is_err());
        assert!(parse_message(r#"{"foo": 1}"#).is_err());
    }

    #[test]
    fn ctrl_alt_delete_is_three_qcodes() {
        let keys = ctrl_alt_delete_args()["keys"].clone();
        let names: Vec<_> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["data"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["ctrl", "alt", "delete"]);
    }
}
