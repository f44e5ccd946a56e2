//! The control API: status, metrics, events, reload and drain, on a Unix socket (always;
//! `/run/lb/lbd.sock`, env `LBD_API_SOCKET`) and over TCP with mutual TLS at `[node]
//! api_listen` when set. `lbctl` is its client.
//!
//! | request | answer | role |
//! | --- | --- | --- |
//! | `GET /status` | JSON: lbd, config (version, load time), VRRP instances and states, services and reals (health, reason, weights wanted and held, connections, rates), remote-log counters | reader |
//! | `GET /metrics` | the same as Prometheus text (see [`metrics`] for the names) | reader |
//! | `GET /events?since=SEQ&max=N` | the ring of recent log events after SEQ | reader |
//! | `GET /whoami` | the caller as lbd sees it, its role and what it may call | reader |
//! | `POST /reload` | validates the config file, then reloads as SIGHUP does; says `reloaded`, `unchanged` or `refused` with the errors | operator |
//! | `POST /drain?real=ADDR[:PORT][&service=NAME]` | weight 0 for the real(s) until undrained, without a config change | operator |
//! | `POST /undrain?real=...` | back to the weight the config and checks give | operator |
//! | `POST /drain?node=1` | withdraw every BGP announcement of this node (IPVS stays, so connections finish) until `POST /undrain?node=1` | operator |
//!
//! Every caller has a role ([`access`]): on the socket from its kernel credentials, over TCP
//! from its client certificate. A request its role does not cover is answered 403. Every
//! request that may change state, and every refusal (a role too low, a failed TLS
//! handshake), is an audit event: a log event with target `lbd::audit`, so it is in the event
//! ring and goes to remote syslog like any log line, whatever the log level.
//!
//! Data comes from what the daemon and the subsystems publish (the running config, health
//! reports and VRRP status through `watch` channels); the IPVS columns from the kernel view the
//! daemon's IPVS subsystem reads (no second kernel client here). A reload is a request to the
//! daemon, answered with its outcome; a drain is an *input* of the reconciler (operator
//! weights, sent to the daemon), never a write to IPVS from here.
//!
//! The API runs as tasks on the daemon's runtime; a kernel dump or a config parse happens on a
//! blocking worker, so a slow client never delays the daemon.

pub mod access;
pub mod drain;
pub mod http;
pub mod metrics;
pub mod snapshot;
pub mod tls;

use crate::config::{ApiAccess, ApiTls, Config, Role};
use crate::daemon::inputs::OperatorWeights;
use crate::daemon::{Handle, ReloadResult, ReloadSource};
use access::Caller;
use drain::Drained;
use http::{Request, Response};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// Where the Unix socket is unless `LBD_API_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/lb/lbd.sock";

/// Where the API listens.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub socket: PathBuf,
    /// Where drained reals are remembered (next to the socket).
    pub drain_file: PathBuf,
}

impl ApiOptions {
    /// The socket from `LBD_API_SOCKET` or [`DEFAULT_SOCKET`].
    pub fn from_env() -> ApiOptions {
        let socket = std::env::var_os("LBD_API_SOCKET")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        let drain_file = socket
            .parent()
            .unwrap_or(Path::new("/run/lb"))
            .join("drained.json");
        ApiOptions { socket, drain_file }
    }
}

struct Shared {
    opts: ApiOptions,
    daemon: Handle,
    /// The API's own state: the drained set (only the API's tasks touch it, on one runtime).
    drained: Mutex<Drained>,
    /// The whole node drained (`lbctl drain --node`), remembered in a file beside the drains.
    node_drained: Mutex<bool>,
}

impl Shared {
    fn node_drain_file(&self) -> PathBuf {
        node_drain_file(&self.opts.drain_file)
    }
}

/// Where a node drain is remembered: a file that exists while the node is drained.
fn node_drain_file(drain_file: &Path) -> PathBuf {
    drain_file.with_file_name("node-drained")
}

impl Shared {
    fn drained(&self) -> std::sync::MutexGuard<'_, Drained> {
        self.drained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the drained set to the reconciler.
    fn publish_drains(&self, drained: &Drained) {
        self.daemon
            .set_operator_weights(Arc::new(drained.weights()));
    }

    /// Who may do what, from the running config (before the first one, the defaults: root
    /// is admin, everyone else a reader).
    fn access(&self) -> ApiAccess {
        self.config()
            .map(|c| c.node.api.clone())
            .unwrap_or_default()
    }

    fn config(&self) -> Option<Arc<Config>> {
        self.daemon
            .published()
            .borrow()
            .as_ref()
            .map(|p| p.config.clone())
    }
}

/// The running control API.
pub struct Api {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Api {
    /// Binds the Unix socket and starts serving on the current runtime. Returns the drains
    /// remembered from an earlier lbd as the reconciler's first operator weights, so they hold
    /// from the first apply.
    pub fn start(opts: ApiOptions, daemon: Handle) -> std::io::Result<(Api, OperatorWeights)> {
        let drained = Drained::load(Some(opts.drain_file.clone()));
        if !drained.set().is_empty() {
            info!(
                reals = drained.set().len(),
                "api: {} real(s) still drained from before the restart",
                drained.set().len()
            );
        }
        let weights: OperatorWeights = Arc::new(drained.weights());
        let unix = UnixListener::from_std(bind_unix(&opts.socket)?)?;
        let node_drained = node_drain_file(&opts.drain_file).exists();
        if node_drained {
            info!("api: the node is still drained from before the restart: nothing is announced by BGP");
        }
        let shared = Arc::new(Shared {
            opts,
            daemon,
            drained: Mutex::new(drained),
            node_drained: Mutex::new(node_drained),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(shared.clone(), unix, stopped));
        info!(socket = %shared.opts.socket.display(), "api: listening on {}", shared.opts.socket.display());
        Ok((
            Api {
                shared,
                stop: Some(stop),
                task,
            },
            weights,
        ))
    }

    /// Whether the node was drained (`lbctl drain --node`) before this lbd started.
    pub fn node_drained(&self) -> bool {
        *self
            .shared
            .node_drained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops listening and removes the socket.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        let _ = std::fs::remove_file(&self.shared.opts.socket);
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
    // Anyone on the box may connect: what a caller may do is its role, from the kernel's
    // credentials of the connection ([node.api] uid / gid / default_role), decided and audited
    // per request, not by a file mode that refuses silently.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The TCP listener: its address, the TLS it serves (as configured and as built).
struct TcpApi {
    addr: SocketAddr,
    listener: TcpListener,
    tls: ApiTls,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// How long a TCP client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Follows the daemon's config (the TCP listener and its TLS, drains of reals that are gone)
/// and serves both listeners until told to stop.
async fn serve(shared: Arc<Shared>, unix: UnixListener, mut stop: oneshot::Receiver<()>) {
    let mut published = shared.daemon.published();
    let mut tcp: Option<TcpApi> = None;
    let mut applied_seen = 0;
    loop {
        // The config as the daemon runs it: follow its listener and forget drains of reals
        // it no longer has.
        let current = published.borrow_and_update().clone();
        if let Some(p) = current.filter(|p| p.applied != applied_seen) {
            applied_seen = p.applied;
            follow_config(&shared, &p.config, &mut tcp).await;
        }
        tokio::select! {
            _ = &mut stop => return,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            a = unix.accept() => {
                if let Ok((stream, _)) = a {
                    tokio::spawn(unix_connection(shared.clone(), stream));
                }
            }
            a = async {
                match &tcp {
                    Some(t) => t.listener.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                if let (Ok((stream, peer)), Some(t)) = (a, &tcp) {
                    tokio::spawn(tls_connection(shared.clone(), t.acceptor.clone(), stream, peer));
                }
            }
        }
    }
}

async fn follow_config(shared: &Arc<Shared>, config: &Config, tcp: &mut Option<TcpApi>) {
    {
        let mut drained = shared.drained();
        if drained.retain_in(config) {
            if let Err(e) = drained.save() {
                warn!("api: cannot remember drained reals: {e}");
            }
            shared.publish_drains(&drained);
        }
    }
    let want = config.node.api_listen;
    let want_tls = config.node.api.tls.as_ref();
    if let (Some(t), Some(a), Some(tls)) = (tcp.as_ref(), want, want_tls) {
        if t.addr == a && &t.tls == tls {
            return;
        }
    }
    let Some(addr) = want else {
        if tcp.take().is_some() {
            info!("api: the TCP listener is closed (no api_listen)");
        }
        return;
    };
    // The config check refuses api_listen without TLS; this is the second lock on that door.
    let Some(tls) = want_tls else {
        *tcp = None;
        error!("api: api_listen {addr} without [node.api.tls]: the TCP API is off (it takes mutual TLS only; the Unix socket works)");
        return;
    };
    let acceptor = match tls::server_config(tls) {
        Ok(c) => tokio_rustls::TlsAcceptor::from(c),
        Err(e) => {
            *tcp = None;
            error!(
                "api: [node.api.tls]: {e}; the TCP API on {addr} is off (the Unix socket works)"
            );
            return;
        }
    };
    // Same address: keep the socket, serve the new TLS from the next connection on.
    if let Some(t) = tcp.as_mut().filter(|t| t.addr == addr) {
        t.tls = tls.clone();
        t.acceptor = acceptor;
        info!(listen = %addr, "api: new TLS settings on {addr}");
        return;
    }
    *tcp = None;
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(listen = %addr, "api: HTTPS (mutual TLS) on {addr}");
            *tcp = Some(TcpApi {
                addr,
                listener,
                tls: tls.clone(),
                acceptor,
            });
        }
        Err(e) => {
            error!("api: cannot listen on {addr}: {e}; the TCP API is off (the Unix socket works)")
        }
    }
}

/// A connection on the Unix socket: the caller is who the kernel says.
async fn unix_connection(shared: Arc<Shared>, stream: UnixStream) {
    let caller = match stream.peer_cred() {
        Ok(c) => Caller::Unix {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            warn!("api: cannot read the credentials of a Unix socket caller: {e}; refused");
            return;
        }
    };
    connection(shared, stream, caller).await;
}

/// A TCP connection: the TLS handshake verifies the client's certificate; the caller is who
/// the certificate names. A failed handshake is a refusal, audited with the peer's address.
async fn tls_connection(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let refuse = |outcome: String| {
        access::audit(
            &peer.to_string(),
            &format!("tls from {peer}"),
            Role::Denied,
            "connect",
            &outcome,
            true,
        )
    };
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            refuse(format!("refused at the TLS handshake: {e}"));
            return;
        }
        Err(_) => {
            refuse(format!(
                "refused: no TLS handshake within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            ));
            return;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Caller::from_certificate(c.as_ref(), peer));
    let caller = match cert {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            refuse(format!("refused: {e}"));
            return;
        }
        None => {
            refuse("refused: no client certificate".into());
            return;
        }
    };
    connection(shared, tls, caller).await;
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    mut stream: S,
    caller: Caller,
) {
    let req = match http::read_request(&mut stream).await {
        Ok(req) => req,
        Err(http::HttpError::Closed) => return,
        Err(e) => {
            let resp = Response::error(e.status(), e.to_string());
            let _ = stream.write_all(&resp.encode()).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let role = caller.role(&shared.access());
    let needed = access::needed(&req.method, &req.path);
    let action = describe(&req);
    let resp = if role.may(needed) {
        let resp = route(&shared, req.clone(), &caller, role).await;
        if access::changes_state(&req.method) {
            access::audit(
                &caller.to_string(),
                &caller.via(),
                role,
                &action,
                &outcome(&resp),
                false,
            );
        }
        resp
    } else {
        let why = if role == Role::Denied {
            format!("{caller} has no access (role none)")
        } else {
            format!(
                "role {role} may not {} {}: it needs {needed}",
                req.method, req.path
            )
        };
        access::audit(
            &caller.to_string(),
            &caller.via(),
            role,
            &action,
            &format!("refused: {why}"),
            true,
        );
        Response::json(
            403,
            &serde_json::json!({ "error": why, "role": role, "needs": needed }),
        )
    };
    let _ = stream.write_all(&resp.encode()).await;
    let _ = stream.shutdown().await;
}

/// A request as an audit event names it: `POST /drain real=10.0.0.1:80 service=web`.
fn describe(req: &Request) -> String {
    let mut s = format!("{} {}", req.method, req.path);
    for (k, v) in &req.query {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

/// The outcome of an answered request, for the audit trail: `200 reloaded`, `404 no real...`.
fn outcome(resp: &Response) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let detail = doc["error"]
        .as_str()
        .map(String::from)
        .or_else(|| doc["result"].as_str().map(String::from))
        .or_else(|| {
            doc["changed"].as_bool().map(|c| {
                if c {
                    "changed".to_string()
                } else {
                    "unchanged".to_string()
                }
            })
        })
        .unwrap_or_default();
    let word = if (200..300).contains(&resp.status) {
        "done"
    } else {
        "failed"
    };
    format!("{word} ({} {detail})", resp.status).replace(" )", ")")
}

async fn route(shared: &Arc<Shared>, req: Request, caller: &Caller, role: Role) -> Response {
    let path = req.path.trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "" | "/") => Response::json(
            200,
            &serde_json::json!({
                "endpoints": access::ENDPOINTS.iter().map(|e| e.3).collect::<Vec<_>>(),
                "yours": access::allowed(role),
            }),
        ),
        ("GET", "/whoami") => Response::json(
            200,
            &serde_json::json!({
                "who": caller.to_string(),
                "via": caller.via(),
                "role": role,
                "may": access::allowed(role),
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
        (_, "/status" | "/metrics" | "/events" | "/whoami" | "/reload" | "/drain" | "/undrain") => {
            Response::error(405, format!("{} is not allowed on {path}", req.method))
        }
        _ => Response::error(404, format!("no such endpoint {path:?} (GET / lists them)")),
    }
}

async fn status(shared: &Arc<Shared>) -> Option<snapshot::Status> {
    let published = shared.daemon.published().borrow().clone()?;
    let kernel = shared.daemon.kernel_table().await;
    let health = shared.daemon.health().borrow().clone();
    let vrrp = shared.daemon.vrrp().borrow().clone();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let drained = shared.drained().clone();
    let links = read_links().await;
    Some(snapshot::build(&snapshot::Inputs {
        config: &published.config,
        config_path: &published.config_path,
        loaded_at: published.loaded_at,
        applied: published.applied,
        started_at: published.started_at,
        now: SystemTime::now(),
        hostname,
        health: &health,
        vrrp: &vrrp,
        bgp: &shared.daemon.bgp().borrow().clone(),
        node_drained: *shared
            .node_drained
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
        drained: &drained,
        kernel: &kernel,
        syslog: crate::syslog::status(),
        last_reload: published.last_reload.as_ref(),
        links: &links,
        trust: std::fs::read_to_string(snapshot::TRUST_STATE)
            .ok()
            .and_then(|t| snapshot::ConfigTrust::parse(&t, published.config.version.hex())),
        draining: &published.draining,
    }))
}

/// The node's links for a status document; none when netlink cannot be asked.
async fn read_links() -> Vec<snapshot::LinkReading> {
    let links = match crate::netlink::Netlink::connect() {
        Ok(nl) => nl.links().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    links
        .into_iter()
        .map(|link| {
            let speed_mbps = std::fs::read_to_string(format!("/sys/class/net/{}/speed", link.name))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|s| *s > 0)
                .and_then(|s| u32::try_from(s).ok());
            snapshot::LinkReading { link, speed_mbps }
        })
        .collect()
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
    /// How long the reload took, and what validation looked at.
    millis: f64,
    validated: Option<crate::config::Validated>,
}

async fn reload(shared: &Arc<Shared>) -> Response {
    info!("api: reload requested");
    let Some(outcome) = shared.daemon.reload(ReloadSource::Api).await else {
        return Response::error(503, "lbd is stopping");
    };
    let (millis, validated) = (outcome.millis, outcome.validated);
    let answer = match outcome.result {
        ReloadResult::Reloaded { version, previous } => ReloadAnswer {
            result: "reloaded",
            version: Some(version),
            previous: Some(previous),
            errors: Vec::new(),
            millis,
            validated,
        },
        ReloadResult::Unchanged { version } => ReloadAnswer {
            result: "unchanged",
            previous: Some(version.clone()),
            version: Some(version),
            errors: Vec::new(),
            millis,
            validated,
        },
        ReloadResult::Refused { errors, running } => {
            warn!(
                errors = errors.len(),
                "api: reload refused: the config file does not validate"
            );
            return Response::json(
                422,
                &ReloadAnswer {
                    result: "refused",
                    version: None,
                    previous: Some(running),
                    errors,
                    millis,
                    validated,
                },
            );
        }
    };
    Response::json(200, &answer)
}

/// `POST /drain?node=1`, `POST /undrain?node=1`: the whole node's BGP announcements.
fn node_drain_cmd(shared: &Arc<Shared>, drain: bool) -> Response {
    let changed = {
        let mut d = shared
            .node_drained
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let changed = *d != drain;
        *d = drain;
        changed
    };
    let file = shared.node_drain_file();
    let saved = if drain {
        std::fs::write(&file, b"drained\n")
    } else {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    };
    if let Err(e) = saved {
        warn!(
            "api: cannot remember the node drain in {}: {e}",
            file.display()
        );
    }
    shared.daemon.set_node_drained(drain);
    Response::json(
        200,
        &serde_json::json!({
            "action": if drain { "drain" } else { "undrain" },
            "node": true,
            "changed": changed,
            "result": match (drain, changed) {
                (true, true) => "node drained: every BGP announcement withdrawn; IPVS keeps serving established connections",
                (true, false) => "the node was already drained",
                (false, true) => "node undrained: announcing again what it can serve",
                (false, false) => "the node was not drained",
            },
        }),
    )
}

fn drain_cmd(shared: &Arc<Shared>, req: &Request, drain: bool) -> Response {
    if req.query.iter().any(|(k, _)| k == "node") {
        return node_drain_cmd(shared, drain);
    }
    let Some(real) = req.param("real").filter(|r| !r.is_empty()) else {
        return Response::error(
            400,
            "name the real: ?real=ADDR[:PORT] (and &service=NAME for one service)",
        );
    };
    let service = req.param("service").filter(|s| !s.is_empty());
    let Some(config) = shared.config() else {
        return Response::error(503, "no config applied yet");
    };
    let mut st = shared.drained();
    let keys = match drain::select(&config, service, real) {
        Ok(k) => k,
        Err(e @ drain::SelectError::BadReal(_)) => return Response::error(400, e.to_string()),
        Err(e) => return Response::error(404, e.to_string()),
    };
    let changed = st.change(&keys, drain);
    if changed {
        if let Err(e) = st.save() {
            warn!("api: cannot remember drained reals: {e}");
        }
        shared.publish_drains(&st);
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
            "drained": list(&mut st.set().iter()),
        }),
    )
}
