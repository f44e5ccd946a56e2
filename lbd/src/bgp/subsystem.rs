//! The BGP speaker as a part of lbd: BIRD 2 as lbd's own child, fed with what to announce.
//!
//! - lbd starts `bird -f -c DIR/bird.conf -s DIR/bird.ctl` with `PR_SET_PDEATHSIG(SIGKILL)`:
//!   when lbd dies, even by `kill -9`, the kernel kills BIRD, its TCP sessions close and the
//!   routers drop this node's routes at once (no hold time to wait out). The signal follows the
//!   thread that started BIRD, so the subsystem must run on a thread that lives as long as lbd
//!   (lbd's runtime is single-threaded: its main thread).
//! - When the VIPs to announce (or the peers) change, it rewrites the config and asks BIRD to
//!   `configure`: BIRD reloads gracefully and keeps every session whose config did not change,
//!   so a withdrawal is an UPDATE on a session that stays up.
//! - A BIRD that dies is started again, after 1 s, then 2, 4... up to 30 s.
//! - Every second (and after every change) it reads `show protocols all` for status.
//! - The VIPs of the config's N-way services are put on `lo` (as /32 or /128) while the config
//!   has them: DR and tunnel reals' packets arrive for the VIP, which must be local here.
//! - On an orderly stop it withdraws everything, waits (so the routers move the flows while the
//!   sessions still run), then stops BIRD (which sends a Cease to each peer).
//! - A hung lbd does not keep announcing: the [`watchdog`](super::watchdog) kills BIRD when the
//!   daemon's loop has not turned for `[bgp] watchdog`, and BIRD is not started again until it
//!   turns.
//! - The VIPs it put on `lo` are listed in a file beside BIRD's config, so that a restarted lbd
//!   takes off the ones its config no longer has.

use super::birdconf::{self, BirdConfig};
use super::client::BirdClient;
use super::control::{self, BgpState};
use super::decision::{Decision, VipDecision};
use super::watchdog::{self, Watchdog};
use crate::config::Bgp;
use crate::liveness::Liveness;
use crate::netlink::{AddressOptions, Netlink};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info, warn};

/// Where BIRD is in the image (Debian's `bird2`).
pub const DEFAULT_BIRD: &str = "/usr/sbin/bird";
/// How long an orderly stop waits between withdrawing every VIP and stopping BIRD.
pub const DEFAULT_WITHDRAW_WAIT: Duration = Duration::from_secs(1);
/// How often the sessions' states are read.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// How long a started BIRD may take to open its control socket.
const SOCKET_WAIT: Duration = Duration::from_secs(5);

/// Where the subsystem runs BIRD.
#[derive(Clone, Debug)]
pub struct BgpOptions {
    pub bird: PathBuf,
    /// BIRD's config file (lbd writes it).
    pub config: PathBuf,
    /// BIRD's control socket.
    pub socket: PathBuf,
    pub withdraw_wait: Duration,
    /// Put the N-way VIPs on `lo` (off for tests that look only at BGP).
    pub local_vips: bool,
    /// The VIPs this lbd put on `lo`, one per line.
    pub local_vips_file: PathBuf,
    /// The heartbeats the watchdog reads (the daemon's loop beats into it).
    pub liveness: Arc<Liveness>,
}

impl BgpOptions {
    /// BIRD's files in `dir` (lbd's run directory, beside the control API's socket); the
    /// program from `LBD_BIRD` or [`DEFAULT_BIRD`].
    pub fn in_dir(dir: &Path) -> BgpOptions {
        let bird = std::env::var_os("LBD_BIRD")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIRD));
        BgpOptions {
            bird,
            config: dir.join("bird.conf"),
            socket: dir.join("bird.ctl"),
            withdraw_wait: DEFAULT_WITHDRAW_WAIT,
            local_vips: true,
            local_vips_file: dir.join("lo-vips"),
            liveness: Arc::new(Liveness::default()),
        }
    }
}

/// What the daemon wants of the speaker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Wanted {
    /// `None` (or no peer): no BIRD.
    pub bgp: Option<Bgp>,
    /// The VIPs of the config's N-way services: on `lo` while the config has them.
    pub local_vips: BTreeSet<IpAddr>,
    /// Which of them to announce, and why.
    pub decision: Decision,
}

/// The speaker's state, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BgpStatus {
    /// BIRD runs (its pid).
    pub pid: Option<u32>,
    /// Times BIRD was started again after it died.
    pub restarts: u32,
    /// The last problem with BIRD (start, configure, control socket), if any since.
    pub last_error: Option<String>,
    pub sessions: Vec<Session>,
    /// Every VIP of an N-way service: announced or not, and why.
    pub vips: BTreeMap<IpAddr, VipDecision>,
    /// What BIRD's config announces now.
    pub announced: BTreeSet<IpAddr>,
}

/// One BGP session as BIRD reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Session {
    /// `[bgp.peer.NAME]`.
    pub peer: String,
    pub address: IpAddr,
    /// The session's state (`established`...); `None` before BIRD said.
    pub state: Option<BgpState>,
    /// Since when (BIRD's clock).
    pub since: String,
    pub last_error: Option<String>,
    /// Routes exported to the peer.
    pub exported: Option<u64>,
}

impl Session {
    pub fn established(&self) -> bool {
        self.state == Some(BgpState::Established)
    }
}

/// The running subsystem: a task on the daemon's runtime.
pub struct BgpSubsystem {
    /// `None` until the daemon's first word: nothing is touched before it.
    wanted: watch::Sender<Option<Wanted>>,
    status: watch::Receiver<BgpStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    liveness: Arc<Liveness>,
    _watchdog: Option<Watchdog>,
}

impl BgpSubsystem {
    /// Starts the task (BIRD only once something is to be spoken). Needs a tokio runtime.
    pub fn start(opts: BgpOptions) -> BgpSubsystem {
        let (wanted, wanted_rx) = watch::channel(None);
        let (status_tx, status) = watch::channel(BgpStatus::default());
        let (stop, stop_rx) = oneshot::channel();
        let liveness = opts.liveness.clone();
        let shared = Arc::new(watchdog::Shared::new(liveness.clone()));
        let dog = match Watchdog::start(shared.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                error!(
                    "bgp: cannot start the watchdog thread: {e}; a hung lbd would keep announcing"
                );
                None
            }
        };
        let task = tokio::spawn(run(opts, shared, wanted_rx, status_tx, stop_rx));
        BgpSubsystem {
            wanted,
            status,
            stop: Some(stop),
            task: Some(task),
            liveness,
            _watchdog: dog,
        }
    }

    /// The heartbeats the watchdog watches: the daemon's loop beats into them.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// Hands over what to announce now (nothing happens when it is what it was).
    pub fn set(&self, wanted: Wanted) {
        let wanted = Some(wanted);
        self.wanted.send_if_modified(|w| {
            let changed = *w != wanted;
            *w = wanted;
            changed
        });
    }

    pub fn status(&self) -> watch::Receiver<BgpStatus> {
        self.status.clone()
    }

    /// Withdraws everything, waits, stops BIRD. The VIPs stay on `lo`: a restarted lbd
    /// finds them there.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The speaker process and what it has loaded.
struct Speaker {
    child: Child,
    client: Option<BirdClient>,
    /// The config text BIRD runs.
    loaded: String,
    protocols: BTreeMap<String, String>,
    announced: BTreeSet<IpAddr>,
}

struct Runner {
    opts: BgpOptions,
    watchdog: Arc<watchdog::Shared>,
    status: watch::Sender<BgpStatus>,
    speaker: Option<Speaker>,
    restarts: u32,
    backoff: Duration,
    next_start: Instant,
    last_error: Option<String>,
    netlink: Option<Netlink>,
    on_lo: BTreeSet<IpAddr>,
    /// `on_lo` was read from the file and not yet brought to the config.
    on_lo_unsure: bool,
}

async fn run(
    opts: BgpOptions,
    watchdog: Arc<watchdog::Shared>,
    mut wanted: watch::Receiver<Option<Wanted>>,
    status: watch::Sender<BgpStatus>,
    mut stop: oneshot::Receiver<()>,
) {
    let on_lo = read_local_vips(&opts.local_vips_file);
    let mut r = Runner {
        opts,
        watchdog,
        status,
        speaker: None,
        restarts: 0,
        backoff: RESTART_FIRST,
        next_start: Instant::now(),
        last_error: None,
        netlink: None,
        on_lo,
        on_lo_unsure: true,
    };
    loop {
        // Before the daemon's first word (its first config applied) nothing is touched: the
        // VIPs a previous lbd left on `lo` stay until the config says which go.
        let Some(w) = wanted.borrow_and_update().clone() else {
            tokio::select! {
                _ = &mut stop => break,
                changed = wanted.changed() => if changed.is_err() { break },
            }
            continue;
        };
        r.local_vips(&w.local_vips).await;
        r.converge(&w).await;
        r.publish(&w).await;
        let exited = async {
            match r.speaker.as_mut() {
                Some(s) => s.child.wait().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            changed = wanted.changed() => if changed.is_err() { break },
            status = exited => {
                let text = format!("BIRD exited ({})", status.map_or("?".into(), |s| s.to_string()));
                error!("bgp: {text}; started again in {:?}", r.backoff);
                r.died(text);
            }
            _ = tokio::time::sleep(STATUS_INTERVAL) => {}
        }
    }
    let w = wanted.borrow().clone().unwrap_or_default();
    r.shutdown(&w).await;
}

impl Runner {
    /// Brings BIRD to what `w` asks: started, stopped, or reconfigured.
    async fn converge(&mut self, w: &Wanted) {
        let Some(bgp) = w.bgp.as_ref().filter(|b| !b.peers.is_empty()) else {
            if self.speaker.is_some() {
                info!("bgp: no peer to speak to: stopping BIRD");
                self.stop_bird().await;
            }
            return;
        };
        self.watchdog.set_limit(bgp.watchdog);
        if let Some(silent) = self.watchdog.daemon_stalled() {
            // The watchdog kills whatever BIRD runs; starting one would only flap the routes.
            if self.speaker.is_none() {
                self.last_error = Some(format!(
                    "not started: lbd's daemon loop has not turned for {:.0} s",
                    silent.as_secs_f64()
                ));
            }
            return;
        }
        let announced = w.decision.announced();
        let conf = birdconf::render(bgp, &w.local_vips, &announced);
        match self.speaker.as_ref() {
            None if Instant::now() >= self.next_start => self.start_bird(conf, announced).await,
            None => {}
            Some(s) if s.loaded != conf.text => self.configure(conf, announced).await,
            Some(_) => {}
        }
    }

    async fn start_bird(&mut self, conf: BirdConfig, announced: BTreeSet<IpAddr>) {
        if let Err(e) = write_atomic(&self.opts.config, &conf.text) {
            self.failed(format!("cannot write {}: {e}", self.opts.config.display()));
            self.next_start = Instant::now() + self.backoff;
            return;
        }
        let _ = std::fs::remove_file(&self.opts.socket);
        // The image may store BIRD compressed (a pair never expands it): once, before the
        // first start.
        match crate::packed::expand_bird(Path::new("/"), &self.opts.bird) {
            Ok(0) => {}
            Ok(n) => info!(files = n, "bgp: expanded {}", self.opts.bird.display()),
            Err(e) => {
                self.failed(format!("cannot expand {}: {e}", self.opts.bird.display()));
                self.next_start = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RESTART_MAX);
                return;
            }
        }
        let mut cmd = Command::new(&self.opts.bird);
        cmd.arg("-f")
            .arg("-c")
            .arg(&self.opts.config)
            .arg("-s")
            .arg(&self.opts.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and
        // exec.
        unsafe {
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // lbd died between the fork and the prctl: no signal would come.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.failed(format!("cannot start {}: {e}", self.opts.bird.display()));
                self.next_start = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(RESTART_MAX);
                return;
            }
        };
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    info!(target: "lbd::bgp::bird", "bird: {line}");
                }
            });
        }
        self.watchdog.set_bird(child.id());
        info!(
            pid = child.id(),
            announced = announced.len(),
            "bgp: started {} with {}",
            self.opts.bird.display(),
            self.opts.config.display()
        );
        let client = wait_socket(&self.opts.socket).await;
        if client.is_none() {
            warn!(
                "bgp: BIRD's control socket {} did not open within {SOCKET_WAIT:?}",
                self.opts.socket.display()
            );
        }
        self.speaker = Some(Speaker {
            child,
            client,
            loaded: conf.text,
            protocols: conf.protocols,
            announced,
        });
    }

    async fn configure(&mut self, conf: BirdConfig, announced: BTreeSet<IpAddr>) {
        if let Err(e) = write_atomic(&self.opts.config, &conf.text) {
            self.failed(format!("cannot write {}: {e}", self.opts.config.display()));
            return;
        }
        let Some(s) = self.speaker.as_mut() else {
            return;
        };
        if s.client.is_none() {
            s.client = BirdClient::connect(&self.opts.socket).await.ok();
        }
        let Some(client) = s.client.as_mut() else {
            self.failed("BIRD's control socket is not there".into());
            return;
        };
        match client.ask("configure").await {
            Ok(_) => {
                let added: Vec<_> = announced.difference(&s.announced).collect();
                let withdrawn: Vec<_> = s.announced.difference(&announced).collect();
                info!(
                    ?added,
                    ?withdrawn,
                    "bgp: BIRD reconfigured: announcing {} VIP(s)",
                    announced.len()
                );
                s.loaded = conf.text;
                s.protocols = conf.protocols;
                s.announced = announced;
            }
            Err(e) => {
                s.client = None;
                self.failed(format!("configure: {e}"));
            }
        }
    }

    fn failed(&mut self, text: String) {
        error!("bgp: {text}");
        self.last_error = Some(text);
    }

    fn died(&mut self, text: String) {
        self.watchdog.set_bird(None);
        self.last_error = Some(text);
        self.speaker = None;
        self.restarts += 1;
        self.next_start = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(RESTART_MAX);
    }

    /// Reads the sessions and publishes the status.
    async fn publish(&mut self, w: &Wanted) {
        let mut sessions = Vec::new();
        let mut pid = None;
        let mut announced = BTreeSet::new();
        if let Some(s) = self.speaker.as_mut() {
            pid = s.child.id();
            announced = s.announced.clone();
            if s.client.is_none() {
                s.client = BirdClient::connect(&self.opts.socket).await.ok();
            }
            let reply = match s.client.as_mut() {
                Some(c) => c.ask("show protocols all").await.ok(),
                None => None,
            };
            if reply.is_none() {
                s.client = None;
            }
            let protocols = reply.map(|r| control::protocols(&r)).unwrap_or_default();
            let bgp = w.bgp.as_ref();
            for (symbol, peer) in &s.protocols {
                let p = protocols.iter().find(|p| &p.name == symbol);
                let Some(address) = bgp.and_then(|b| b.peers.get(peer)).map(|p| p.address) else {
                    continue;
                };
                sessions.push(Session {
                    peer: peer.clone(),
                    address,
                    state: p.and_then(|p| p.bgp_state.clone()),
                    since: p.map(|p| p.since.clone()).unwrap_or_default(),
                    last_error: p.and_then(|p| p.last_error.clone()),
                    exported: p.and_then(|p| p.exported),
                });
            }
            if sessions.iter().any(Session::established) {
                // Running well: the next death starts over from the shortest wait.
                self.backoff = RESTART_FIRST;
            }
        }
        let status = BgpStatus {
            pid,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            sessions,
            vips: w.decision.vips.clone(),
            announced,
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    /// Puts `want` on `lo` and takes off what this lbd put there before and is not wanted.
    async fn local_vips(&mut self, want: &BTreeSet<IpAddr>) {
        if !self.opts.local_vips || (want == &self.on_lo && !self.on_lo_unsure) {
            return;
        }
        if self.netlink.is_none() {
            match Netlink::connect() {
                Ok(n) => self.netlink = Some(n),
                Err(e) => {
                    self.failed(format!("netlink: {e}"));
                    return;
                }
            }
        }
        let nl = self.netlink.as_ref().expect("just connected");
        let lo = match nl.link_by_name("lo").await {
            Ok(l) => l,
            Err(e) => {
                error!("bgp: cannot find lo: {e}");
                return;
            }
        };
        // Read back from the file: re-add them all (idempotent), in case one was taken off.
        let known = if self.on_lo_unsure {
            BTreeSet::new()
        } else {
            self.on_lo.clone()
        };
        for vip in want.difference(&known) {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            match nl
                .add_address(lo.index, "lo", *vip, len, AddressOptions::default())
                .await
            {
                Ok(()) => {
                    info!(%vip, "bgp: added {vip}/{len} on lo");
                    self.on_lo.insert(*vip);
                }
                Err(e) => error!("bgp: {e}"),
            }
        }
        for vip in self.on_lo.clone().difference(want) {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            match nl.del_address(lo.index, "lo", *vip, len).await {
                Ok(()) => {
                    info!(%vip, "bgp: removed {vip}/{len} from lo");
                    self.on_lo.remove(vip);
                }
                Err(e) => error!("bgp: {e}"),
            }
        }
        self.on_lo_unsure = false;
        if let Err(e) = write_atomic(&self.opts.local_vips_file, &local_vips_text(&self.on_lo)) {
            error!(
                "bgp: cannot write {}: {e}; a restarted lbd would not take off VIPs it no longer has",
                self.opts.local_vips_file.display()
            );
        }
    }

    /// Orderly stop: withdraw, wait, stop BIRD.
    async fn shutdown(&mut self, w: &Wanted) {
        if self.speaker.is_none() {
            return;
        }
        if let Some(bgp) = w.bgp.as_ref() {
            let had = self.speaker.as_ref().map_or(0, |s| s.announced.len());
            self.configure(
                birdconf::render(bgp, &w.local_vips, &BTreeSet::new()),
                BTreeSet::new(),
            )
            .await;
            if had > 0 {
                info!(
                    "bgp: withdrew every VIP; stopping BIRD in {:?}",
                    self.opts.withdraw_wait
                );
                tokio::time::sleep(self.opts.withdraw_wait).await;
            }
        }
        self.stop_bird().await;
    }

    async fn stop_bird(&mut self) {
        let Some(mut s) = self.speaker.take() else {
            return;
        };
        self.watchdog.set_bird(None);
        if let Some(pid) = s.child.id() {
            // SIGTERM: BIRD sends each peer a Cease and closes the sessions.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(Duration::from_secs(3), s.child.wait()).await {
            Ok(_) => debug!("bgp: BIRD stopped"),
            Err(_) => {
                warn!("bgp: BIRD did not stop within 3s: killed");
                let _ = s.child.kill().await;
            }
        }
    }
}

async fn wait_socket(path: &Path) -> Option<BirdClient> {
    let deadline = Instant::now() + SOCKET_WAIT;
    while Instant::now() < deadline {
        if let Ok(c) = BirdClient::connect(path).await {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The VIPs a previous lbd put on `lo`, as it listed them (none when the file is missing).
fn read_local_vips(path: &Path) -> BTreeSet<IpAddr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_local_vips(&text)
}

fn parse_local_vips(text: &str) -> BTreeSet<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.parse() {
                Ok(a) => Some(a),
                Err(_) if l.is_empty() || l.starts_with('#') => None,
                Err(_) => {
                    warn!("bgp: ignored {l:?} in the list of VIPs on lo: not an address");
                    None
                }
            }
        })
        .collect()
}

fn local_vips_text(vips: &BTreeSet<IpAddr>) -> String {
    let mut text = String::from(
        "# N-way VIPs lbd put on lo; a restarted lbd takes off the ones its config no longer has\n",
    );
    for v in vips {
        text += &format!("{v}\n");
    }
    text
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_of_vips_on_lo_reads_back_what_was_written() {
        let vips: BTreeSet<IpAddr> = ["198.51.100.10", "2001:db8::10", "198.51.100.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let text = local_vips_text(&vips);
        assert_eq!(parse_local_vips(&text), vips);
        assert_eq!(
            parse_local_vips("garbage\n\n198.51.100.1\n"),
            ["198.51.100.1".parse().unwrap()].into()
        );
        assert!(parse_local_vips("").is_empty());
    }
}
