//! Fetching the node config: HTTP and TFTP clients, URL variables, retries with backoff.
//!
//! ```text
//! UrlTemplate ──expand(Vars)──▶ FetchUrl ──http::get / tftp::read──▶ body
//!     ──ConfigGate (later: signature, anti-rollback)──▶ validator ──▶ FetchOutcome
//! ```
//!
//! * [`url`]: templates (`${mac}`, `${mac_hyphen}`, `${ip}`, `${hostname}`, `${uuid}`) and the
//!   address-only URL model (no resolver in PID 1). Pure.
//! * [`backoff`]: exponential delays with full or decorrelated jitter. Pure.
//! * [`http`]: HTTP/1.1 GET on hyper's connection API, conditional requests, redirects, bounded
//!   body.
//! * [`tftp`]: RFC 1350/2347/2348/2349 read client; the protocol is a pure state machine.
//! * [`Fetcher`]: tries the URLs in order, first success wins; [`Fetcher::fetch_until_ok`] is the
//!   boot path's retry loop.
//!
//! # The seam for signed configs
//!
//! [`ConfigGate`] is consulted for every newly fetched body, before the validator. It names
//! companion files to fetch beside the config ([`ConfigGate::companions`], e.g. `node.toml.sig`,
//! fetched over the same transport within the same attempt timeout) and then accepts or refuses
//! the [`Candidate`]: body, companions and the running config. A signature check against a key in
//! the image, and refusing a config older than the running one, plug in there without touching
//! the transport code. A refusal counts as a failed attempt and the next URL is tried.

pub mod backoff;
pub mod http;
mod rejected;
pub mod tftp;
pub mod tls;
pub mod url;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub use backoff::{Backoff, BackoffPolicy, Jitter, JitterSource};
pub use http::{HttpError, HttpLimits, HttpResponse, Validators};
pub use tftp::{ReadConfig, TftpError, TftpRead};
pub use url::{FetchUrl, Scheme, UrlError, UrlTemplate, Var, Vars};

/// A config body that was fetched and accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The body.
    pub bytes: Bytes,
    /// The configured URL it was fetched from (a template expanded with the node's variables).
    pub url: FetchUrl,
    /// The URL that actually answered, after HTTP redirects (equal to `url` otherwise).
    pub final_url: FetchUrl,
    /// The HTTP `ETag`, if the server sent one.
    pub etag: Option<String>,
    /// The HTTP `Last-Modified`, if the server sent one.
    pub last_modified: Option<String>,
    /// SHA-256 of `bytes`: how changes are detected where there are no validators (TFTP).
    pub sha256: [u8; 32],
}

impl Fetched {
    /// Wraps a body, computing its hash.
    pub fn new(bytes: Bytes, url: FetchUrl, final_url: FetchUrl) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Fetched {
            bytes,
            url,
            final_url,
            etag: None,
            last_modified: None,
            sha256,
        }
    }

    /// The hash in lower-case hex, for logs and status output.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The HTTP validators to send when re-fetching this config.
    pub fn validators(&self) -> Validators<'_> {
        Validators {
            etag: self.etag.as_deref(),
            last_modified: self.last_modified.as_deref(),
        }
    }
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("len", &self.bytes.len())
            .field("url", &self.url.to_string())
            .field("final_url", &self.final_url.to_string())
            .field("etag", &self.etag)
            .field("last_modified", &self.last_modified)
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

/// The result of a successful fetch.
// One value per fetch, moved straight to its user: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The config is the one passed as `previous` (HTTP 304, or the same SHA-256).
    Unchanged,
    /// A new config, accepted by the gate and the validator.
    New(Fetched),
}

/// A file fetched beside the config at a gate's request (e.g. a detached signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Companion {
    /// Where it came from.
    pub url: FetchUrl,
    /// Its bytes.
    pub bytes: Bytes,
}

/// What a [`ConfigGate`] decides on.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The configured URL (expanded).
    pub url: &'a FetchUrl,
    /// The URL that served the body.
    pub final_url: &'a FetchUrl,
    /// The new body.
    pub body: &'a [u8],
    /// The companions named by [`ConfigGate::companions`], in that order.
    pub companions: &'a [Companion],
    /// The config in use now (the `previous` given to [`Fetcher::fetch`]), for rollback checks.
    pub running: Option<&'a Fetched>,
}

/// Decides whether a newly fetched config may be used: the hook for detached signatures
/// (`URL.sig`, verified against a key in the image) and for refusing a config older than the
/// running one. Not implemented yet; see the module docs.
pub trait ConfigGate: Send {
    /// Files to fetch beside a config served from `served_from` (the final URL). An error (a
    /// suffix that makes no valid URL) fails the attempt.
    fn companions(&self, served_from: &FetchUrl) -> Result<Vec<FetchUrl>, UrlError> {
        let _ = served_from;
        Ok(Vec::new())
    }

    /// `Ok` to accept, `Err(reason)` to refuse (the fetcher then tries the next URL).
    fn check(&mut self, candidate: &Candidate<'_>) -> Result<(), String>;
}

/// Why one URL failed within a fetch.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The template could not be expanded (e.g. `${ip}` before the network is up).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// HTTP failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// TFTP failed.
    #[error("TFTP: {0}")]
    Tftp(#[from] TftpError),
    /// The attempt exceeded the per-attempt timeout.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The validator rejected the body.
    #[error("config rejected: {0}")]
    Rejected(String),
    /// The gate refused the body.
    #[error("config refused: {0}")]
    Refused(String),
    /// A companion file could not be fetched.
    #[error("{url}, needed beside the config: {cause}")]
    Companion {
        /// The companion's URL.
        url: FetchUrl,
        /// Why it failed.
        cause: Box<AttemptError>,
    },
}

/// One URL and why it failed.
#[derive(Debug)]
pub struct UrlFailure {
    /// The URL (expanded), or the template if it could not be expanded.
    pub url: String,
    /// The cause.
    pub error: AttemptError,
}

impl fmt::Display for UrlFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.error)
    }
}

/// Why no config could be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The fetcher has no URLs.
    #[error("no config URLs are configured")]
    NoUrls,
    /// Every URL failed; each with its cause, in the order tried.
    #[error("all {} config URLs failed: {}", failures.len(), join_failures(failures))]
    AllFailed {
        /// One entry per URL.
        failures: Vec<UrlFailure>,
    },
    /// [`Fetcher::fetch_until_ok`] reached its deadline.
    #[error("no config after {rounds} rounds, deadline reached; last round: {last}")]
    Deadline {
        /// Rounds tried.
        rounds: u32,
        /// The last round's error.
        last: Box<FetchError>,
    },
}

fn join_failures(failures: &[UrlFailure]) -> String {
    failures
        .iter()
        .enumerate()
        .map(|(i, f)| format!("[{}] {f}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl FetchError {
    /// True when retrying cannot help: no URLs, or every URL is malformed for this node's
    /// variables (which do not change while the fetcher retries).
    pub fn is_permanent(&self) -> bool {
        match self {
            FetchError::NoUrls => true,
            FetchError::AllFailed { failures } => failures
                .iter()
                .all(|f| matches!(f.error, AttemptError::Url(_))),
            FetchError::Deadline { .. } => true,
        }
    }
}

/// TFTP settings of a [`Fetcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpSettings {
    /// Block size to ask for; `None` to not ask (512).
    pub blksize: Option<u16>,
    /// Retransmission timeout per packet.
    pub timeout: Duration,
    /// Retransmissions per packet.
    pub retries: u32,
}

impl Default for TftpSettings {
    /// blksize 1468, 1 s, 5 retransmissions.
    fn default() -> Self {
        TftpSettings {
            blksize: Some(tftp::machine::ETHERNET_BLKSIZE),
            timeout: Duration::from_secs(1),
            retries: 5,
        }
    }
}

type Validator = Box<dyn FnMut(&FetchUrl, &[u8]) -> Result<(), String> + Send>;

/// Fetches the node config from an ordered list of URLs (see the module docs).
pub struct Fetcher {
    urls: Vec<UrlTemplate>,
    vars: Vars,
    attempt_timeout: Duration,
    max_size: u64,
    max_redirects: u8,
    tftp: TftpSettings,
    backoff: Backoff,
    validator: Option<Validator>,
    gate: Option<Box<dyn ConfigGate>>,
    /// The TLS config of `https://` URLs: the pinned server keys.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The last body the validator refused, per URL: not downloaded or parsed again if avoidable.
    rejections: rejected::Rejections,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("urls", &self.urls)
            .field("vars", &self.vars)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_size", &self.max_size)
            .field("tftp", &self.tftp)
            .field("backoff", &self.backoff.policy())
            .field("validator", &self.validator.is_some())
            .field("gate", &self.gate.is_some())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Fetcher {
    /// A fetcher for `urls` (tried in order) with the defaults: 10 s per attempt, 4 MiB at
    /// most, 5 redirects, [`TftpSettings::default`], [`BackoffPolicy::default`].
    pub fn new(urls: Vec<UrlTemplate>, vars: Vars) -> Self {
        Fetcher {
            urls,
            vars,
            attempt_timeout: Duration::from_secs(10),
            max_size: 4 << 20,
            max_redirects: 5,
            tftp: TftpSettings::default(),
            backoff: Backoff::new(BackoffPolicy::default()),
            validator: None,
            gate: None,
            tls: None,
            rejections: rejected::Rejections::default(),
        }
    }

    /// Parses each template; the first bad one is the error.
    pub fn from_templates<S: AsRef<str>>(urls: &[S], vars: Vars) -> Result<Self, UrlError> {
        let urls = urls
            .iter()
            .map(|u| UrlTemplate::parse(u.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Fetcher::new(urls, vars))
    }

    /// Bounds each URL's attempt (connect, redirects, body, companions) in time.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The largest config accepted, in bytes (HTTP body and TFTP file alike).
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// How many HTTP redirects are followed.
    pub fn with_max_redirects(mut self, n: u8) -> Self {
        self.max_redirects = n;
        self
    }

    /// TFTP block size, per-packet timeout and retransmissions.
    pub fn with_tftp(mut self, settings: TftpSettings) -> Self {
        self.tftp = settings;
        self
    }

    /// The delays between rounds of [`Fetcher::fetch_until_ok`].
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Checks each new body (e.g. parses the config), given the URL that served it so errors
    /// can name it; `Err(message)` makes the attempt fail with that message, and the next URL
    /// is tried.
    pub fn with_validator(
        mut self,
        validator: impl FnMut(&FetchUrl, &[u8]) -> Result<(), String> + Send + 'static,
    ) -> Self {
        self.validator = Some(Box::new(validator));
        self
    }

    /// Trusts exactly the servers holding one of `pins` for `https://` URLs.
    pub fn with_pinned_keys(mut self, pins: Vec<tls::Pin>) -> Self {
        self.tls = (!pins.is_empty()).then(|| tls::client_config(pins));
        self
    }

    /// Installs the gate (see [`ConfigGate`]); it runs before the validator.
    pub fn with_gate(mut self, gate: impl ConfigGate + 'static) -> Self {
        self.gate = Some(Box::new(gate));
        self
    }

    /// Replaces the variables (e.g. after DHCP learned the address).
    pub fn set_vars(&mut self, vars: Vars) {
        self.vars = vars;
    }

    /// The URL templates, in order.
    pub fn urls(&self) -> &[UrlTemplate] {
        &self.urls
    }

    /// Tries each URL once, in order; the first that yields an accepted config (or shows that
    /// `previous` is still current) wins.
    ///
    /// HTTP validators of `previous` are only sent to the URL that produced it: another
    /// server's `Last-Modified` says nothing about this one's file. A URL whose last body the
    /// validator refused is asked whether it still has that body instead (its `ETag`), and
    /// the same body again is refused for the same reason without being validated again.
    pub async fn fetch(&mut self, previous: Option<&Fetched>) -> Result<FetchOutcome, FetchError> {
        if self.urls.is_empty() {
            return Err(FetchError::NoUrls);
        }
        let mut failures = Vec::new();
        for i in 0..self.urls.len() {
            let template = &self.urls[i];
            let url = match template.expand(&self.vars) {
                Ok(u) => u,
                Err(e) => {
                    failures.push(UrlFailure {
                        url: template.to_string(),
                        error: e.into(),
                    });
                    continue;
                }
            };
            let started = Instant::now();
            let result =
                tokio::time::timeout(self.attempt_timeout, self.attempt(&url, previous)).await;
            let result = result.unwrap_or(Err(AttemptError::Timeout(self.attempt_timeout)));
            match result {
                Ok(outcome) => {
                    match &outcome {
                        FetchOutcome::Unchanged => {
                            tracing::debug!(%url, elapsed = ?started.elapsed(), "config unchanged")
                        }
                        FetchOutcome::New(f) => tracing::info!(
                            %url,
                            bytes = f.bytes.len(),
                            sha256 = %f.sha256_hex(),
                            elapsed = ?started.elapsed(),
                            "fetched new config"
                        ),
                    }
                    return Ok(outcome);
                }
                Err(error) => {
                    tracing::debug!(%url, %error, "config URL failed");
                    failures.push(UrlFailure {
                        url: url.to_string(),
                        error,
                    });
                }
            }
        }
        Err(FetchError::AllFailed { failures })
    }

    /// [`Fetcher::fetch`] until it succeeds, sleeping [`Backoff`] delays between rounds and
    /// logging each failed round once (a `warn` with every URL's cause). Stops at `deadline`
    /// if given (a round in progress is not cut short; the sleep is), or at once on a
    /// [permanent](FetchError::is_permanent) error.
    pub async fn fetch_until_ok(
        &mut self,
        previous: Option<&Fetched>,
        deadline: Option<Instant>,
    ) -> Result<FetchOutcome, FetchError> {
        self.backoff.reset();
        let mut rounds = 0u32;
        // A refusal (a bad signature, a config for another node) repeats every round until
        // the server changes: say it once, then only when the reason changes.
        let mut last_reported: Option<String> = None;
        loop {
            rounds += 1;
            let error = match self.fetch(previous).await {
                Ok(outcome) => {
                    if rounds > 1 {
                        tracing::info!(rounds, "config fetch succeeded after retries");
                    }
                    self.backoff.reset();
                    return Ok(outcome);
                }
                Err(e) => e,
            };
            if error.is_permanent() {
                tracing::error!(%error, "config fetch cannot succeed; not retrying");
                return Err(error);
            }
            let delay = self.backoff.next_delay();
            let wake = Instant::now() + delay;
            if deadline.is_some_and(|d| wake > d) {
                tracing::error!(rounds, %error, "config fetch failed; deadline reached");
                if let Some(d) = deadline {
                    tokio::time::sleep_until(d).await;
                }
                return Err(FetchError::Deadline {
                    rounds,
                    last: Box::new(error),
                });
            }
            let text = error.to_string();
            if last_reported.as_deref() == Some(text.as_str()) {
                tracing::debug!(round = rounds, retry_in = ?delay, %error, "config fetch failed again");
            } else {
                tracing::warn!(round = rounds, retry_in = ?delay, %error, "config fetch failed");
                last_reported = Some(text);
            }
            tokio::time::sleep_until(wake).await;
        }
    }

    async fn attempt(
        &mut self,
        url: &FetchUrl,
        previous: Option<&Fetched>,
    ) -> Result<FetchOutcome, AttemptError> {
        let validators = self.rejections.validators(url, previous);
        let asked_about_refused = self.rejections.etag(url).is_some();
        let fetched = match self.get(url, validators).await? {
            None if asked_about_refused => {
                let reason = self.rejections.still_refused(url).unwrap_or_default();
                return Err(AttemptError::Rejected(reason.to_string()));
            }
            None => return Ok(FetchOutcome::Unchanged),
            Some(f) => f,
        };
        if previous.is_some_and(|p| p.sha256 == fetched.sha256) {
            self.rejections.forget(url);
            return Ok(FetchOutcome::Unchanged);
        }
        if let Some(reason) = self.rejections.refused_before(url, &fetched) {
            return Err(AttemptError::Rejected(reason.to_string()));
        }
        if let Some(gate) = &self.gate {
            let companion_urls = gate.companions(&fetched.final_url)?;
            let mut companions = Vec::with_capacity(companion_urls.len());
            for c in companion_urls {
                match self.get(&c, Validators::default()).await {
                    Ok(Some(f)) => companions.push(Companion {
                        url: c,
                        bytes: f.bytes,
                    }),
                    Ok(None) => unreachable!("an unconditional request cannot be answered 304"),
                    Err(cause) => {
                        return Err(AttemptError::Companion {
                            url: c,
                            cause: Box::new(cause),
                        })
                    }
                }
            }
            let candidate = Candidate {
                url,
                final_url: &fetched.final_url,
                body: &fetched.bytes,
                companions: &companions,
                running: previous,
            };
            if let Some(gate) = &mut self.gate {
                gate.check(&candidate).map_err(AttemptError::Refused)?;
            }
        }
        if let Some(validate) = &mut self.validator {
            if let Err(reason) = validate(&fetched.final_url, &fetched.bytes) {
                self.rejections.remember(url, &fetched, &reason);
                return Err(AttemptError::Rejected(reason));
            }
        }
        self.rejections.forget(url);
        Ok(FetchOutcome::New(fetched))
    }

    /// One GET over the URL's transport; `None` is HTTP 304.
    async fn get(
        &self,
        url: &FetchUrl,
        validators: Validators<'_>,
    ) -> Result<Option<Fetched>, AttemptError> {
        match url.scheme() {
            Scheme::Http | Scheme::Https => {
                let limits = HttpLimits {
                    max_body: self.max_size,
                    max_redirects: self.max_redirects,
                };
                match http::get_with_tls(url, validators, limits, self.tls.as_ref()).await? {
                    HttpResponse::NotModified { .. } => Ok(None),
                    HttpResponse::Ok {
                        body,
                        url: final_url,
                        etag,
                        last_modified,
                    } => Ok(Some(Fetched {
                        etag,
                        last_modified,
                        ..Fetched::new(body, url.clone(), final_url)
                    })),
                }
            }
            Scheme::Tftp => {
                let cfg = ReadConfig {
                    blksize: self.tftp.blksize,
                    timeout: self.tftp.timeout,
                    retries: self.tftp.retries,
                    max_size: self.max_size,
                    ..ReadConfig::new(url.socket_addr(), url.tftp_filename())
                };
                let read = tftp::read(cfg).await?;
                Ok(Some(Fetched::new(
                    read.data.into(),
                    url.clone(),
                    url.clone(),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_hashes_its_body() {
        let u = FetchUrl::parse("tftp://10.0.0.1/a").unwrap();
        let f = Fetched::new(Bytes::from_static(b"abc"), u.clone(), u);
        assert_eq!(
            f.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(format!("{f:?}").contains("len: 3"));
    }

    #[test]
    fn all_failed_lists_every_url() {
        let e = FetchError::AllFailed {
            failures: vec![
                UrlFailure {
                    url: "http://10.0.0.1/a".into(),
                    error: AttemptError::Timeout(Duration::from_secs(2)),
                },
                UrlFailure {
                    url: "tftp://10.0.0.2/b".into(),
                    error: AttemptError::Rejected("line 3: bad".into()),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "all 2 config URLs failed: [1] http://10.0.0.1/a: no complete answer within 2s; \
             [2] tftp://10.0.0.2/b: config rejected: line 3: bad"
        );
        assert!(!e.is_permanent());
        let e = FetchError::AllFailed {
            failures: vec![UrlFailure {
                url: "http://10.0.0.1/${ip}".into(),
                error: AttemptError::Url(UrlError::VariableUnset {
                    template: "http://10.0.0.1/${ip}".into(),
                    name: "ip",
                }),
            }],
        };
        assert!(e.is_permanent());
    }
}
