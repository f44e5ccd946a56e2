//! The control API: status, metrics, events, reload and drain, on a Unix socket (always;
//! `/run/lb/lbd.sock`, env `LBD_API_SOCKET`) and on HTTP at `[node] api_listen` when set.
//! `lbctl` is its client.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /status` | JSON: lbd, config (version, load time), VRRP instances and states, services and reals (health, reason, weights wanted and held, connections, rates), remote-log counters |
//! | `GET /metrics` | the same as Prometheus text (see [`metrics`] for the names) |
//! | `GET /events?since=SEQ&max=N` | the ring of recent log events after SEQ |
//! | `POST /reload` | validates the config file, then reloads as SIGHUP does; says `reloaded`, `unchanged` or `refused` with the errors |
//! | `POST /drain?real=ADDR[:PORT][&service=NAME]` | weight 0 for the real(s) until undrained, without a config change |
//! | `POST /undrain?real=...` | back to the weight the config and checks give |
//!
//! Data comes from the subsystems as they publish it (health reports and VRRP status through
//! `watch` channels, the config through [`Subsystem::apply`]); the IPVS columns from a
//! read-only dump of the kernel table per request. A drain is an *input* of the reconciler
//! (operator weights into `check::feed`), never a write to IPVS from here.
//!
//! The API runs on its own thread and runtime, like the checks and VRRP, so a slow client or a
//! large table dump never delays them or the daemon's signal handling.

pub mod drain;
pub mod http;
pub mod metrics;
pub mod snapshot;

use crate::check::board::HealthReport;
use crate::check::feed::OperatorWeights;
use crate::config::{self, Config};
use crate::daemon::Subsystem;
use crate::vrrp::runtime::Status as VrrpStatus;
use drain::Drained;
use http::{Request, Response};
use serde::Serialize;
use snapshot::KernelView;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Where the Unix socket is unless `LBD_API_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/lb/lbd.sock";
/// How long a reload may take before the API gives up waiting for it.
const RELOAD_WAIT: Duration = Duration::from_secs(10);
/// How long reading the kernel table may take for one request.
const DUMP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the API listens and what it reloads.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub socket: PathBuf,
    /// The config file lbd runs from (what `POST /reload` validates).
    pub config_path: PathBuf,
    /// Where drained reals are remembered (next to the socket).
    pub drain_file: PathBuf,
}

impl ApiOptions {
    /// The socket from `LBD_API_SOCKET` or [`DEFAULT_SOCKET`].
    pub fn from_env(config_path: &Path) -> ApiOptions {
        let socket = std::env::var_os("LBD_API_SOCKET")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        let drain_file = socket
            .parent()
            .unwrap_or(Path::new("/run/lb"))
            .join("drained.json");
        ApiOptions {
            socket,
            config_path: config_path.to_path_buf(),
            drain_file,
        }
    }
}

/// What the API reads from the other subsystems.
pub struct Sources {
    pub health: watch::Receiver<Arc<HealthReport>>,
    pub vrrp: watch::Receiver<VrrpStatus>,
    /// The reconciler's operator-weight input (see `check::feed::HealthFeed::operator_weights`).
    pub operator: watch::Sender<OperatorWeights>,
}

struct State {
    config: Option<Arc<Config>>,
    loaded_at: SystemTime,
    applied: u64,
    drained: Drained,
}

struct Shared {
    opts: ApiOptions,
    started_at: SystemTime,
    state: Mutex<State>,
    /// Bumped at every applied config (reloads wait for it).
    applied: watch::Sender<u64>,
    health: watch::Receiver<Arc<HealthReport>>,
    vrrp: watch::Receiver<VrrpStatus>,
    operator: watch::Sender<OperatorWeights>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the drained set to the reconciler.
    fn publish_drains(&self, drained: &Drained) {
        self.operator.send_replace(Arc::new(drained.weights()));
    }
}

enum Cmd {
    Listen(Option<SocketAddr>),
    Stop,
}

/// The control API subsystem.
pub struct ApiSubsystem {
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
    listen: Option<Option<SocketAddr>>,
}

impl ApiSubsystem {
    /// Starts the API thread and binds the Unix socket. Drains remembered from an earlier lbd
    /// are handed to the reconciler at once, so they hold from the first apply.
    pub fn start(opts: ApiOptions, sources: Sources) -> std::io::Result<ApiSubsystem> {
        let drained = Drained::load(Some(opts.drain_file.clone()));
        if !drained.set().is_empty() {
            info!(
                reals = drained.set().len(),
                "api: {} real(s) still drained from before the restart",
                drained.set().len()
            );
        }
        let (applied, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            opts,
            started_at: SystemTime::now(),
            state: Mutex::new(State {
                config: None,
                loaded_at: SystemTime::now(),
                applied: 0,
                drained,
            }),
            applied,
            health: sources.health,
            vrrp: sources.vrrp,
            operator: sources.operator,
        });
        shared.publish_drains(&shared.lock().drained);
        let unix = bind_unix(&shared.opts.socket)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (cmd, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new().name("lbd-api".into()).spawn({
            let shared = shared.clone();
            move || runtime.block_on(serve(shared, unix, rx))
        })?;
        info!(socket = %shared.opts.socket.display(), "api: listening on {}", shared.opts.socket.display());
        Ok(ApiSubsystem {
            shared,
            cmd,
            thread: Some(thread),
            listen: None,
        })
    }
}

fn bind_unix(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by an lbd that died: nobody answers on it any more.
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_err() {
        std::fs::remove_file(path)?;
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
    })?;
    // Root and the group: whoever may steer the balancer.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Subsystem for ApiSubsystem {
    fn name(&self) -> &'static str {
        "api"
    }

    fn apply(&mut self, _old: Option<&Config>, new: &Config) {
        {
            let mut st = self.shared.lock();
            st.config = Some(Arc::new(new.clone()));
            st.loaded_at = SystemTime::now();
            st.applied += 1;
            if st.drained.retain_in(new) {
                if let Err(e) = st.drained.save() {
                    warn!("api: cannot remember drained reals: {e}");
                }
                self.shared.publish_drains(&st.drained);
            }
        }
        self.shared.applied.send_modify(|g| *g += 1);
        if self.listen != Some(new.node.api_listen) {
            self.listen = Some(new.node.api_listen);
            let _ = self.cmd.send(Cmd::Listen(new.node.api_listen));
        }
    }

    fn stop(&mut self) {
        let _ = self.cmd.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.shared.opts.socket);
    }
}

impl Drop for ApiSubsystem {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    shared: Arc<Shared>,
    unix: std::os::unix::net::UnixListener,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
) {
    let unix = match UnixListener::from_std(unix) {
        Ok(u) => u,
        Err(e) => {
            error!("api: {e}; the control API is not available");
            return;
        }
    };
    let mut tcp: Option<(SocketAddr, TcpListener)> = None;
    loop {
        tokio::select! {
            c = cmd.recv() => match c {
                None | Some(Cmd::Stop) => return,
                Some(Cmd::Listen(addr)) => {
                    if tcp.as_ref().map(|t| t.0) == addr {
                        continue;
                    }
                    tcp = None;
                    if let Some(a) = addr {
                        match TcpListener::bind(a).await {
                            Ok(l) => {
                                info!(listen = %a, "api: HTTP on {a}");
                                tcp = Some((a, l));
                            }
                            Err(e) => error!("api: cannot listen on {a}: {e}; the HTTP API is off (the Unix socket works)"),
                        }
                    }
                }
            },
            a = unix.accept() => {
                if let Ok((stream, _)) = a {
                    tokio::spawn(connection(shared.clone(), stream));
                }
            }
            a = async {
                match &tcp {
                    Some((_, l)) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok((stream, _)) = a {
                    tokio::spawn(connection(shared.clone(), stream));
                }
            }
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(shared: Arc<Shared>, mut stream: S) {
    let resp = match http::read_request(&mut stream).await {
        Ok(req) => route(&shared, req).await,
        Err(http::HttpError::Closed) => return,
        Err(e) => Response::error(e.status(), e.to_string()),
    };
    let _ = stream.write_all(&resp.encode()).await;
    let _ = stream.shutdown().await;
}

async fn route(shared: &Arc<Shared>, req: Request) -> Response {
    let path = req.path.trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "" | "/") => Response::json(
            200,
            &serde_json::json!({
                "endpoints": ["GET /status", "GET /metrics", "GET /events?since=SEQ&max=N",
                    "POST /reload", "POST /drain?real=ADDR[:PORT][&service=NAME]",
                    "POST /undrain?real=ADDR[:PORT][&service=NAME]"]
            }),
        ),
        ("GET", "/status") => match status(shared).await {
            Some(st) => Response::json(200, &st),
            None => Response::error(503, "no config applied yet"),
        },
        ("GET", "/metrics") => match status(shared).await {
            Some(st) => Response::text(200, metrics::CONTENT_TYPE, metrics::render(&st)),
            None => Response::error(503, "no config applied yet"),
        },
        ("GET", "/events") => events(&req),
        ("POST", "/reload") => reload(shared).await,
        ("POST", "/drain") => drain_cmd(shared, &req, true),
        ("POST", "/undrain") => drain_cmd(shared, &req, false),
        (_, "/status" | "/metrics" | "/events" | "/reload" | "/drain" | "/undrain") => {
            Response::error(405, format!("{} is not allowed on {path}", req.method))
        }
        _ => Response::error(404, format!("no such endpoint {path:?} (GET / lists them)")),
    }
}

/// Reads the kernel's IPVS table with counters, off the API thread.
async fn kernel_view() -> KernelView {
    let dump = tokio::task::spawn_blocking(|| {
        crate::ipvs::client::IpvsClient::connect().and_then(|mut c| c.dump())
    });
    match tokio::time::timeout(DUMP_TIMEOUT, dump).await {
        Ok(Ok(Ok(d))) => KernelView::Table(d),
        Ok(Ok(Err(e))) => KernelView::Unavailable(e.to_string()),
        Ok(Err(e)) => KernelView::Unavailable(format!("dump task failed: {e}")),
        Err(_) => {
            KernelView::Unavailable(format!("reading the table took more than {DUMP_TIMEOUT:?}"))
        }
    }
}

async fn status(shared: &Arc<Shared>) -> Option<snapshot::Status> {
    let kernel = kernel_view().await;
    let st = shared.lock();
    let config = st.config.clone()?;
    let health = shared.health.borrow().clone();
    let vrrp = shared.vrrp.borrow().clone();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Some(snapshot::build(&snapshot::Inputs {
        config: &config,
        config_path: &shared.opts.config_path,
        loaded_at: st.loaded_at,
        applied: st.applied,
        started_at: shared.started_at,
        now: SystemTime::now(),
        hostname,
        health: &health,
        vrrp: &vrrp,
        drained: &st.drained,
        kernel: &kernel,
        syslog: crate::syslog::status(),
    }))
}

fn events(req: &Request) -> Response {
    let since = match req.param("since").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Response::error(400, "since must be a sequence number"),
    };
    let max = match req.param("max").map(str::parse::<usize>) {
        None => 200,
        Some(Ok(n)) => n.min(crate::syslog::RING_CAPACITY),
        Some(Err(_)) => return Response::error(400, "max must be a number"),
    };
    let ring = crate::syslog::ring();
    let list = ring.since(since, max);
    let events: Vec<&crate::syslog::Event> = list.iter().map(|e| &**e).collect();
    Response::json(
        200,
        &serde_json::json!({ "next_seq": ring.next_seq(), "events": events }),
    )
}

#[derive(Serialize)]
struct ReloadAnswer {
    /// `reloaded`, `unchanged` or `refused`.
    result: &'static str,
    version: Option<String>,
    previous: Option<String>,
    errors: Vec<String>,
}

async fn reload(shared: &Arc<Shared>) -> Response {
    let path = shared.opts.config_path.clone();
    let current = shared.lock().config.as_ref().map(|c| c.version.clone());
    let loaded = match tokio::task::spawn_blocking(move || config::load(&path)).await {
        Ok(r) => r,
        Err(e) => return Response::error(500, format!("validation task failed: {e}")),
    };
    let next = match loaded {
        Ok(l) => l,
        Err(e) => {
            warn!(
                errors = e.error_count(),
                "api: reload refused: {} does not validate",
                shared.opts.config_path.display()
            );
            return Response::json(
                422,
                &ReloadAnswer {
                    result: "refused",
                    version: None,
                    previous: current,
                    errors: e.one_line_each(),
                },
            );
        }
    };
    let version = next.config.version.clone();
    if current.as_deref() == Some(version.as_str()) {
        return Response::json(
            200,
            &ReloadAnswer {
                result: "unchanged",
                version: Some(version),
                previous: current,
                errors: Vec::new(),
            },
        );
    }
    // The daemon reloads on SIGHUP, validating again; the API waits until the new version
    // has been applied (or another change won the race).
    let mut applied = shared.applied.subscribe();
    info!("api: reload requested");
    // SAFETY: kill(2) on our own pid with a signal the daemon handles.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGHUP);
    }
    let waited = tokio::time::timeout(RELOAD_WAIT, async {
        loop {
            if applied.changed().await.is_err() {
                return false;
            }
            let now = shared.lock().config.as_ref().map(|c| c.version.clone());
            if now.as_deref() == Some(version.as_str()) {
                return true;
            }
        }
    })
    .await;
    match waited {
        Ok(true) => Response::json(
            200,
            &ReloadAnswer {
                result: "reloaded",
                version: Some(version),
                previous: current,
                errors: Vec::new(),
            },
        ),
        _ => Response::error(
            504,
            format!(
                "the daemon did not apply version {version} within {RELOAD_WAIT:?}; see its log"
            ),
        ),
    }
}

fn drain_cmd(shared: &Arc<Shared>, req: &Request, drain: bool) -> Response {
    let Some(real) = req.param("real").filter(|r| !r.is_empty()) else {
        return Response::error(
            400,
            "name the real: ?real=ADDR[:PORT] (and &service=NAME for one service)",
        );
    };
    let service = req.param("service").filter(|s| !s.is_empty());
    let mut st = shared.lock();
    let Some(config) = st.config.clone() else {
        return Response::error(503, "no config applied yet");
    };
    let keys = match drain::select(&config, service, real) {
        Ok(k) => k,
        Err(e @ drain::SelectError::BadReal(_)) => return Response::error(400, e.to_string()),
        Err(e) => return Response::error(404, e.to_string()),
    };
    let changed = st.drained.change(&keys, drain);
    if changed {
        if let Err(e) = st.drained.save() {
            warn!("api: cannot remember drained reals: {e}");
        }
        shared.publish_drains(&st.drained);
    }
    for (svc, addr) in &keys {
        info!(
            service = %svc,
            real = %addr,
            "api: real {addr} of service {svc} {}",
            match (drain, changed) {
                (true, true) => "drained (weight 0 until undrained)",
                (true, false) => "was already drained",
                (false, true) => "undrained",
                (false, false) => "was not drained",
            }
        );
    }
    let list = |ks: &mut dyn Iterator<Item = &(String, SocketAddr)>| -> Vec<serde_json::Value> {
        ks.map(|(s, a)| serde_json::json!({ "service": s, "real": a }))
            .collect()
    };
    Response::json(
        200,
        &serde_json::json!({
            "action": if drain { "drain" } else { "undrain" },
            "changed": changed,
            "reals": list(&mut keys.iter()),
            "drained": list(&mut st.drained.set().iter()),
        }),
    )
}
