//! The config source: network up, first config fetched and validated, then polled for
//! changes. Valid configs go to the main loop; invalid ones are refused here with every error
//! on the console, and the running config stays.

use crate::cmdline::{InitSettings, KernelCmdline};
use crate::fetch::{Backoff, BackoffPolicy, FetchError, FetchOutcome, Fetched, Fetcher, Vars};
use crate::net::{self, IpSpec, NetInfo, NetOptions};
use crate::node_network::{BootLink, NodeNetwork, Taken};
use crate::poll_schedule::{PollSchedule, Polled};
use crate::trust;
use lbd::config::network::Network;
use lbd::config::{self, Loaded};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, error, info, warn};

/// Server keys the image pins for `https://` config URLs (`image build --tls-pin`).
pub const TLS_PINS: &str = "/etc/lb/tls_pins";

/// Where lbd reads its config: RAM only.
pub const CONFIG_PATH: &str = "/run/lb/config.toml";
/// Where the config came from (URL, hash, validators), for operators and status.
pub const SOURCE_PATH: &str = "/run/lb/config.source";

/// A fetched config that passed validation.
#[derive(Debug)]
pub struct NewConfig {
    pub fetched: Fetched,
    pub loaded: Loaded,
    /// On what trust it was accepted (signed by whom), for status.
    pub trust: Option<trust::Verdict>,
}

/// Name used for the fetched config in error messages.
fn display_name(fetched_from: Option<&str>) -> String {
    fetched_from.unwrap_or("config").to_string()
}

/// Validates config bytes with lbd's own validator; the error lists every problem found.
pub fn validate(name: &str, bytes: &[u8]) -> Result<Loaded, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("{name}: not UTF-8 text: {e}"))?;
    config::parse(name, text).map_err(|e| {
        let lines = e.one_line_each();
        format!("{} error(s): {}", e.error_count(), lines.join("; "))
    })
}

/// Brings the network up, fetches the first valid config, then polls for changes forever.
pub async fn run(
    settings: InitSettings,
    cmdline: KernelCmdline,
    out: mpsc::UnboundedSender<NewConfig>,
    refetch: Arc<Notify>,
) {
    if settings.config_urls.is_empty() {
        error!("no config source: add lb.config=URL to the kernel command line (http:// or tftp://); lbd will not start");
    }
    let (net, boot_links) = bring_up_network(&cmdline, settings.carrier_timeout).await;
    let hostname = net
        .as_ref()
        .and_then(|n| n.hostname.clone())
        .or_else(current_hostname);
    let vars = Vars {
        mac: net.as_ref().map(|n| n.mac),
        ip: net.as_ref().map(|n| std::net::IpAddr::V4(n.address)),
        hostname,
        uuid: std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty()),
    };
    if settings.config_urls.is_empty() {
        return;
    }
    let boot_hostname = vars.hostname.clone();
    let mut fetcher = match Fetcher::from_templates(&settings.config_urls, vars) {
        Ok(f) => f,
        Err(e) => {
            error!("lb.config: {e}; lbd will not start");
            return;
        }
    };
    let policy = trust::Policy::from_image(settings.allow_unsigned).unwrap_or_else(|e| {
        error!("{e}; no config will be applied until the image is fixed");
        trust::Policy::refusing()
    });
    report_policy(&policy);
    let identity = lbd::trust::Identity {
        macs: local_macs().await,
        hostname: boot_hostname,
    };
    let (gate, verdicts) = trust::SignatureGate::new(policy, identity);
    fetcher = fetcher
        .with_pinned_keys(tls_pins(&settings))
        .with_attempt_timeout(settings.attempt_timeout)
        .with_backoff(Backoff::new(first_fetch_backoff(settings.poll)))
        .with_gate(gate)
        .with_validator(|url, bytes| validate(&url.to_string(), bytes).map(|_| ()));
    info!(urls = ?settings.config_urls, "fetching the config");

    let mut running: Option<Fetched> = None;
    let mut last_error: Option<String> = None;
    let mut node_net = NodeNetwork::new(net.as_ref().map(|n| BootLink::of(n, boot_links)));
    // A config refused for its network is not tried again until it changes: polls compare
    // with it, so the server answers "unchanged" until then.
    let mut refused: Option<Fetched> = None;
    let mut schedule = poll_schedule(settings.poll);
    loop {
        let result = if running.is_none() {
            fetcher.fetch_until_ok(None, None).await
        } else {
            fetcher.fetch(refused.as_ref().or(running.as_ref())).await
        };
        // A refused config that is still served is a failed poll as much as no answer is.
        let polled = match result {
            Ok(FetchOutcome::New(fetched))
                if refused.as_ref().is_some_and(|r| r.sha256 == fetched.sha256) =>
            {
                debug!("config still the one refused for its network");
                Polled::Failed
            }
            Ok(FetchOutcome::New(fetched)) => {
                let name = display_name(Some(&fetched.final_url.to_string()));
                match validate(&name, &fetched.bytes) {
                    Ok(loaded) => {
                        let boot = net.as_ref();
                        let took = take_config_network(
                            &mut node_net,
                            boot,
                            &loaded,
                            &fetched,
                            &mut fetcher,
                        )
                        .await;
                        if let Err(why) = took {
                            error!("refused config from {name}: {why}; keeping the running one");
                            refused = Some(fetched);
                            Polled::Failed
                        } else {
                            refused = None;
                            report_taken(&loaded, &fetched);
                            running = Some(fetched.clone());
                            last_error = None;
                            let trust = verdicts
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .take()
                                .filter(|v| v.sha256 == fetched.sha256_hex());
                            let new = NewConfig {
                                fetched,
                                loaded,
                                trust,
                            };
                            if out.send(new).is_err() {
                                return;
                            }
                            Polled::Good
                        }
                    }
                    // The fetcher's validator accepted it, so this cannot differ; but never
                    // hand over anything that did not pass here.
                    Err(e) => {
                        error!("refused config from {name}: {e}");
                        Polled::Failed
                    }
                }
            }
            Ok(FetchOutcome::Unchanged) if refused.is_some() => {
                debug!("config still the one refused for its network");
                Polled::Failed
            }
            Ok(FetchOutcome::Unchanged) => {
                debug!("config unchanged");
                Polled::Good
            }
            Err(e) => {
                report_poll_error(&e, &mut last_error);
                Polled::Failed
            }
        };
        if running.is_none() {
            // fetch_until_ok only returns without a config at a deadline, which we do not set.
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        if polled == Polled::Good && schedule.failures() > 0 {
            info!(
                failed_polls = schedule.failures(),
                "config poll succeeded again; back to polling every {:?}",
                settings.poll.unwrap_or_default()
            );
            // A new outage with the same cause is reported again.
            last_error = None;
        }
        next_poll(&mut schedule, polled, &refetch).await;
    }
}

/// Says which config was taken, with its warnings.
fn report_taken(loaded: &Loaded, fetched: &Fetched) {
    for w in loaded.warning_lines() {
        warn!("{w}");
    }
    info!(
        url = %fetched.final_url,
        sha256 = %&fetched.sha256_hex()[..12],
        "config fetched: {}",
        loaded.config.summary()
    );
}

/// The server keys trusted for `https://` config URLs: the command line's and the image's.
fn tls_pins(settings: &InitSettings) -> Vec<crate::fetch::tls::Pin> {
    let mut pins = settings.tls_pins.clone();
    if let Ok(text) = std::fs::read_to_string(TLS_PINS) {
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            match line.parse() {
                Ok(pin) => pins.push(pin),
                Err(e) => error!("{TLS_PINS}: {e}"),
            }
        }
    }
    if !pins.is_empty() {
        info!(pins = ?pins, "https:// config URLs trust exactly these server keys (no CA, no clock)");
    }
    pins
}

/// The waits between polls, said once at boot.
fn poll_schedule(poll: Option<Duration>) -> PollSchedule {
    let schedule = PollSchedule::new(poll);
    if let Some(every) = poll {
        info!(
            every = ?every,
            backoff_cap = ?schedule.cap(),
            "polling the config source; after failed polls the wait doubles up to the cap"
        );
    }
    schedule
}

/// Waits as long as the schedule says after `polled`, or until a refetch is asked for (a
/// SIGHUP to init), which never waits for a backoff.
async fn next_poll(schedule: &mut PollSchedule, polled: Polled, refetch: &Notify) {
    match schedule.after(polled) {
        Some(wait) => {
            if polled == Polled::Failed {
                debug!(
                    failed_polls = schedule.failures(),
                    next_poll_in = ?wait,
                    "config poll failed; backing off"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = refetch.notified() => {}
            }
        }
        None => refetch.notified().await,
    }
}

/// Applies the config's `[network]`, if it has one, and has the config source confirm it;
/// when it takes the boot link over, the boot link's DHCP lease is no longer kept.
async fn take_config_network(
    node_net: &mut NodeNetwork,
    boot: Option<&NetInfo>,
    loaded: &Loaded,
    fetched: &Fetched,
    fetcher: &mut Fetcher,
) -> Result<(), String> {
    let Some(wanted) = &loaded.config.network else {
        return Ok(());
    };
    take_network(node_net, wanted, loaded, fetched, fetcher).await?;
    if node_net.takes_boot_link(wanted) {
        if let Some(keeper) = boot.and_then(|n| n.keeper.as_ref()) {
            if keeper.is_running() {
                info!("the config's [network] takes the boot link over: its DHCP lease is no longer kept");
                keeper.stop();
            }
        }
    }
    Ok(())
}

/// Applies a config's `[network]` and has the config source confirm it; on no answer within
/// its `confirm_timeout`, the previous network is put back.
async fn take_network(
    node_net: &mut NodeNetwork,
    wanted: &lbd::config::network::Network,
    loaded: &Loaded,
    fetched: &Fetched,
    fetcher: &mut Fetcher,
) -> Result<(), String> {
    let source = fetched.final_url.host();
    if !node_net.reaches(wanted, source) {
        let refused = lbd::config::ConfigError {
            file: loaded.file.clone(),
            source_text: loaded.source_text.to_string(),
            diagnostics: vec![lbd::config::network::no_route_to_source(
                &loaded.source_text,
                source,
            )],
        };
        return Err(format!(
            "{}; nothing applied",
            refused.one_line_each().join("; ")
        ));
    }
    match node_net.apply(wanted, source).await? {
        Taken::Unchanged => return Ok(()),
        Taken::Changed(steps) => info!(
            steps,
            timeout = ?wanted.confirm_timeout,
            "network changed: confirming that the config source {source} still answers"
        ),
    }
    let deadline = tokio::time::Instant::now() + wanted.confirm_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, fetcher.fetch(Some(fetched))).await {
            Ok(Ok(_)) => {
                node_net.commit();
                info!("network confirmed: the config source answers");
                return Ok(());
            }
            Ok(Err(e)) => debug!("confirming the network: {e}"),
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_secs(1).min(left)).await;
    }
    node_net.roll_back().await;
    Err(format!(
        "with its [network] the config source {source} did not answer within {}: the previous network is back",
        lbd::config::ConfigDuration(wanted.confirm_timeout)
    ))
}

/// Retries of the first fetch: the default backoff, but never waiting longer than the poll
/// interval, so an operator who fixes a refused config sees it picked up as soon as a change
/// would be.
fn first_fetch_backoff(poll: Option<Duration>) -> BackoffPolicy {
    let mut policy = BackoffPolicy::default();
    if let Some(poll) = poll {
        policy.max = policy.max.min(poll.max(policy.min));
    }
    policy
}

/// Logs a failed poll once per distinct cause, so a bad config on the server does not flood
/// the console every interval.
fn report_poll_error(e: &FetchError, last: &mut Option<String>) {
    let text = e.to_string();
    if last.as_deref() == Some(&text) {
        debug!("config poll: still failing: {text}");
        return;
    }
    error!("refused new config; keeping the running one: {text}");
    *last = Some(text);
}

/// The links of `bond=`, `vlan=` first (their members are the NICs named), then every `ip=`:
/// the first is the boot link the config is fetched over (retried until it works), the others
/// are configured once each. `BOOTIF=` names the NIC of an `ip=` that names none.
async fn bring_up_network(
    cmdline: &KernelCmdline,
    carrier_timeout: Duration,
) -> (Option<NetInfo>, Network) {
    let words: Vec<String> = cmdline
        .args
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let links = match net::bootlinks::parse(&words) {
        Ok(l) => l,
        Err(e) => {
            error!("kernel command line: {e}; no bond= or vlan= links are made");
            net::bootlinks::parse(&[]).expect("nothing to refuse")
        }
    };
    if !links.is_empty() {
        bring_up_boot_links(&links.network).await;
    }
    let mut specs = match net::ip_specs_from_cmdline(&cmdline.ip_words()) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}; falling back to DHCP");
            Vec::new()
        }
    };
    if specs.is_empty() {
        specs.push(IpSpec::dhcp());
    }
    if let Some(mac) = links.bootif {
        match boot_device(mac, &links.network).await {
            Some(dev) => {
                for s in specs.iter_mut().filter(|s| s.device.is_none()) {
                    info!(device = %dev, "BOOTIF names the boot link");
                    s.device = Some(dev.clone());
                }
            }
            None => warn!(
                "BOOTIF={}: no NIC has that MAC; the first link with carrier is used",
                lbd::config::network::format_mac(&mac)
            ),
        }
    }
    let spec = specs.remove(0);
    let info = configure_boot_link(&spec, carrier_timeout).await;
    for other in &specs {
        // The boot link's name servers and host name stay.
        let opts = NetOptions {
            resolv_conf: None,
            set_hostname: false,
            carrier_timeout,
            ..NetOptions::default()
        };
        match net::configure(other, &opts).await {
            Ok(i) => info!(
                device = %i.device,
                address = %format!("{}/{}", i.address, i.prefix_len),
                dhcp = i.lease.is_some(),
                "network up (another ip=)"
            ),
            Err(e) => error!("ip= on {}: {e}", other.device.as_deref().unwrap_or("?")),
        }
    }
    (info, links.network)
}

/// Makes the command line's bonds and VLANs; a failure is logged and the boot goes on (an
/// `ip=` on a plain NIC may still work).
async fn bring_up_boot_links(links: &Network) {
    let nl = match lbd::netlink::Netlink::connect() {
        Ok(nl) => nl,
        Err(e) => return error!("bond=/vlan=: {e}"),
    };
    match net::apply::apply(&nl, &net::apply::Sysfs::default(), links, None).await {
        Ok(done) => info!(
            steps = done.steps.len(),
            "links of the kernel command line made"
        ),
        Err(e) => error!("bond=/vlan= could not be made: {e}"),
    }
}

/// The link to configure for the NIC with `mac`: its bond, when the command line bonds it.
async fn boot_device(mac: [u8; 6], links: &Network) -> Option<String> {
    let nl = lbd::netlink::Netlink::connect().ok()?;
    let all = nl.links().await.ok()?;
    let nic = all
        .iter()
        .find(|l| l.perm_mac.or(l.mac) == Some(mac) && l.virtual_kind.is_none())?;
    let bonds = links.bond_of();
    Some(
        bonds
            .get(nic.name.as_str())
            .map_or(nic.name.clone(), |b| b.to_string()),
    )
}

async fn configure_boot_link(spec: &IpSpec, carrier_timeout: Duration) -> Option<NetInfo> {
    let opts = NetOptions {
        carrier_timeout,
        ..NetOptions::default()
    };
    let mut pause = Duration::from_secs(2);
    loop {
        match net::configure(spec, &opts).await {
            Ok(info) => {
                info!(
                    device = %info.device,
                    address = %format!("{}/{}", info.address, info.prefix_len),
                    gateway = ?info.gateway,
                    hostname = ?info.hostname,
                    next_server = ?info.next_server,
                    dhcp = info.lease.is_some(),
                    "network up"
                );
                return Some(info);
            }
            Err(net::NetError::Disabled) => {
                warn!("ip=off: no network; only a tftp/http config on loopback can work");
                return None;
            }
            Err(e) => {
                error!("network: {e}; retrying in {} s", pause.as_secs());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn current_hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty() && h != "(none)")
}

/// Says once at boot how configs will be admitted.
fn report_policy(policy: &trust::Policy) {
    let keys: Vec<String> = policy.keys.iter().map(|k| k.fingerprint()).collect();
    match policy.mode {
        trust::Mode::NoKeys => {
            info!("config trust: the image carries no keys; configs are not signature-checked")
        }
        trust::Mode::Signed => {
            info!(keys = ?keys, "config trust: only configs signed by these keys are applied")
        }
        trust::Mode::UnsignedAllowed => warn!(
            keys = ?keys,
            "config trust: lb.unsigned=allow: configs WITHOUT a valid signature are applied too; remove it for production"
        ),
    }
}

/// The permanent MACs of the box's NICs: a signed config's `[release] node` may name any.
async fn local_macs() -> Vec<[u8; 6]> {
    let Ok(nl) = lbd::netlink::Netlink::connect() else {
        return Vec::new();
    };
    let Ok(links) = nl.links().await else {
        return Vec::new();
    };
    links
        .iter()
        .filter(|l| l.virtual_kind.is_none())
        .filter_map(|l| l.perm_mac.or(l.mac))
        .filter(|m| m != &[0u8; 6])
        .collect()
}

/// Puts a validated config in place for lbd: sysctls and host name first (lbd may rely on
/// them), then the file, written atomically so lbd never reads half a config.
pub fn install(new: &NewConfig) -> std::io::Result<()> {
    let cfg = &new.loaded.config;
    let mut sysctls = crate::sysctl::role_defaults();
    sysctls.extend(cfg.node.sysctls.clone());
    for (name, err) in crate::sysctl::apply(Path::new("/proc/sys"), &sysctls) {
        warn!("sysctl {name}: {err}");
    }
    if let Some(h) = &cfg.node.hostname {
        let current = current_hostname();
        if current.as_deref() != Some(h.as_str()) {
            match nix::unistd::sethostname(h) {
                Ok(()) => {
                    info!(hostname = %h, previous = ?current, "host name set from the config")
                }
                Err(e) => warn!("cannot set host name {h}: {e}"),
            }
        }
    }
    write_atomically(Path::new(CONFIG_PATH), &new.fetched.bytes)?;
    let source = format!(
        "url={}\nsha256={}\netag={}\nlast_modified={}\n",
        new.fetched.final_url,
        new.fetched.sha256_hex(),
        new.fetched.etag.as_deref().unwrap_or(""),
        new.fetched.last_modified.as_deref().unwrap_or("")
    );
    write_atomically(Path::new(SOURCE_PATH), source.as_bytes())?;
    if let Some(verdict) = &new.trust {
        write_atomically(Path::new(trust::TRUST_STATE), verdict.render().as_bytes())?;
    }
    Ok(())
}

/// Write to a temporary file beside `path`, then rename over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_lists_every_error() {
        let bad = b"[service.a]\nvip = \"192.0.2.1:80\"\nscheduler = \"x\"\n[nope]\n";
        let e = validate("http://10.0.2.2/c.toml", bad).unwrap_err();
        assert!(e.starts_with("2 error(s)"), "{e}");
        assert!(e.contains("http://10.0.2.2/c.toml:3:13"), "{e}");
        assert!(e.contains("unknown section `nope`"), "{e}");
        assert!(validate("c", &[0xff, 0xfe])
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn first_fetch_retries_no_slower_than_polling() {
        assert_eq!(
            first_fetch_backoff(Some(Duration::from_secs(1))).max,
            Duration::from_secs(1)
        );
        assert_eq!(first_fetch_backoff(None).max, BackoffPolicy::default().max);
        assert_eq!(
            first_fetch_backoff(Some(Duration::from_secs(600))).max,
            BackoffPolicy::default().max
        );
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("init-atomic-{}", std::process::id()));
        let path = dir.join("lb/config.toml");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
