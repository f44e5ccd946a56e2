//! The kernel command line: splitting it like the kernel does, and init's own `lb.*` keys.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `lb.config=URL` | config source; repeat the key or separate with `,` to try several in order | none: wait for one |
//! | `lb.poll=DURATION` | how often to look for a changed config (`0` = never); failing polls back off up to 8× that or 5 min ([`crate::poll_schedule`]) | `30s` |
//! | `lb.timeout=DURATION` | per-attempt fetch timeout | `5s` |
//! | `lb.lbd=PATH` | the daemon to supervise | `/bin/lbd` |
//! | `lb.log=LEVEL` | init's log level (wins over the config's `[node] log_level`) | `info`, then the config's |
//! | `lb.shutdown_timeout=DURATION` | how long lbd gets to stop before SIGKILL | `10s` |
//! | `lb.syslog=udp://IP:PORT` | remote syslog collector (RFC 5424; `tcp://` too), read by `lbd::logging` | none |
//! | `lb.carrier_timeout=DURATION` | how long the boot link may take to get carrier before init says so and starts over (real switch ports take 30 s, LACP a minute) | `90s` |
//! | `lb.tls_pin=sha256//BASE64` | the config server's public key for `https://` config URLs (curl's `--pinnedpubkey` form; repeat or separate with `,` for several); the image's `/etc/lb/tls_pins` adds to it | none: `https://` cannot be used |
//! | `lb.unsigned=allow` | apply configs without a valid signature although the image carries keys (logged at every config, shown in status and metrics) | refuse them |
//! | `lb.shell=TTY` | a debug shell (`/bin/sh`, only in images that ship one) on `/dev/TTY`, respawned | none |
//! | `ip=...` | the kernel's `ip=` syntax, parsed by `net` | `dhcp` |

use lbd::config::ConfigDuration;
use std::time::Duration;

/// The command line split into `key[=value]` words. Double quotes group words, as in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    pub args: Vec<(String, Option<String>)>,
}

impl KernelCmdline {
    pub fn parse(text: &str) -> KernelCmdline {
        let mut args = Vec::new();
        let mut word = String::new();
        let mut in_quotes = false;
        let mut any = false;
        for c in text.chars() {
            match c {
                '"' => {
                    in_quotes = !in_quotes;
                    any = true;
                }
                c if c.is_whitespace() && !in_quotes => {
                    if any {
                        args.push(split_word(&word));
                        word.clear();
                        any = false;
                    }
                }
                c => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            args.push(split_word(&word));
        }
        KernelCmdline { args }
    }

    /// The last value of `key` (later words override earlier ones, as for kernel parameters).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value of `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.args
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// Whether a key appears, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.args.iter().any(|(k, _)| k == key)
    }

    /// The original text of the `ip=` words, for `net`'s parser.
    pub fn ip_words(&self) -> String {
        self.get_all("ip")
            .iter()
            .map(|v| format!("ip={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn split_word(word: &str) -> (String, Option<String>) {
    match word.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (word.to_string(), None),
    }
}

/// Real NICs and switch ports can take 30 s or more to carrier, LACP ports a minute or more.
pub const DEFAULT_CARRIER_TIMEOUT: Duration = Duration::from_secs(90);

/// init's settings from the `lb.*` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitSettings {
    pub config_urls: Vec<String>,
    /// `None`: never poll for changes.
    pub poll: Option<Duration>,
    pub attempt_timeout: Duration,
    pub lbd_path: String,
    pub log_level: String,
    /// `lb.log=` was given: it wins over the config's `[node] log_level` (the boot-time
    /// debugging override, like `LBD_LOG` for lbd).
    pub log_level_explicit: bool,
    pub shutdown_timeout: Duration,
    /// Longest wait for the boot link's carrier per attempt (`lb.carrier_timeout`).
    pub carrier_timeout: Duration,
    /// `lb.unsigned=allow`: unsigned configs are applied although the image carries keys.
    pub allow_unsigned: bool,
    /// `lb.tls_pin=`: pinned server keys for `https://` config URLs.
    pub tls_pins: Vec<crate::fetch::tls::Pin>,
    /// Terminal for a debug shell (`ttyS1`), if asked for.
    pub shell_tty: Option<String>,
}

/// A bad `lb.*` value. Init logs it and uses the default, so a typo does not brick a box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError {
    pub key: &'static str,
    pub value: String,
    pub problem: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernel command line: {}={:?}: {}; using the default",
            self.key, self.value, self.problem
        )
    }
}

impl InitSettings {
    pub fn from_cmdline(cmdline: &KernelCmdline) -> (InitSettings, Vec<SettingError>) {
        let mut errors = Vec::new();
        let mut duration = |key: &'static str, default: Duration| -> Duration {
            match cmdline.get(key) {
                None => default,
                Some("0") => Duration::ZERO,
                Some(v) => match v.parse::<ConfigDuration>() {
                    Ok(d) => d.0,
                    Err(problem) => {
                        errors.push(SettingError {
                            key,
                            value: v.to_string(),
                            problem,
                        });
                        default
                    }
                },
            }
        };
        let poll = duration("lb.poll", Duration::from_secs(30));
        let attempt_timeout = duration("lb.timeout", Duration::from_secs(5));
        let shutdown_timeout = duration("lb.shutdown_timeout", Duration::from_secs(10));
        let carrier_timeout = duration("lb.carrier_timeout", DEFAULT_CARRIER_TIMEOUT);
        let config_urls = cmdline
            .get_all("lb.config")
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        let mut log_level_explicit = false;
        let log_level = match cmdline.get("lb.log") {
            None => "info".to_string(),
            Some(l @ ("error" | "warn" | "info" | "debug" | "trace")) => {
                log_level_explicit = true;
                l.to_string()
            }
            Some(other) => {
                errors.push(SettingError {
                    key: "lb.log",
                    value: other.to_string(),
                    problem: "use error, warn, info, debug or trace".into(),
                });
                "info".to_string()
            }
        };
        let settings = InitSettings {
            config_urls,
            poll: (!poll.is_zero()).then_some(poll),
            attempt_timeout: if attempt_timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                attempt_timeout
            },
            lbd_path: cmdline.get("lb.lbd").unwrap_or("/bin/lbd").to_string(),
            log_level,
            log_level_explicit,
            shutdown_timeout,
            carrier_timeout: if carrier_timeout.is_zero() {
                DEFAULT_CARRIER_TIMEOUT
            } else {
                carrier_timeout
            },
            tls_pins: cmdline
                .get_all("lb.tls_pin")
                .iter()
                .flat_map(|v| v.split(','))
                .filter(|p| !p.trim().is_empty())
                .filter_map(|p| match p.parse() {
                    Ok(pin) => Some(pin),
                    Err(problem) => {
                        errors.push(SettingError {
                            key: "lb.tls_pin",
                            value: p.to_string(),
                            problem,
                        });
                        None
                    }
                })
                .collect(),
            allow_unsigned: match cmdline.get("lb.unsigned") {
                None => false,
                Some("allow") => true,
                Some(other) => {
                    errors.push(SettingError {
                        key: "lb.unsigned",
                        value: other.to_string(),
                        problem:
                            "the only value is `allow` (unsigned configs are refused without it)"
                                .into(),
                    });
                    false
                }
            },
            shell_tty: match cmdline.get("lb.shell") {
                Some(t) if !t.is_empty() && !t.contains('/') => Some(t.to_string()),
                Some(other) => {
                    errors.push(SettingError {
                        key: "lb.shell",
                        value: other.to_string(),
                        problem: "name a terminal under /dev, e.g. ttyS1".into(),
                    });
                    None
                }
                None => None,
            },
        };
        (settings, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_kernel() {
        let c = KernelCmdline::parse(
            "console=ttyS0 quiet ip=dhcp lb.config=http://10.0.2.2:8000/${mac}.toml \"lb.x=a b\" lb.config=tftp://10.0.2.2/c\n",
        );
        assert_eq!(c.get("console"), Some("ttyS0"));
        assert!(c.has("quiet"));
        assert_eq!(c.get("quiet"), None);
        assert_eq!(c.get("lb.x"), Some("a b"));
        assert_eq!(
            c.get_all("lb.config"),
            ["http://10.0.2.2:8000/${mac}.toml", "tftp://10.0.2.2/c"]
        );
        assert_eq!(c.ip_words(), "ip=dhcp");
    }

    #[test]
    fn settings_and_defaults() {
        let c = KernelCmdline::parse("lb.config=http://a/x,http://b/y lb.poll=5s lb.timeout=2s");
        let (s, errors) = InitSettings::from_cmdline(&c);
        assert!(errors.is_empty());
        assert_eq!(s.config_urls, ["http://a/x", "http://b/y"]);
        assert_eq!(s.poll, Some(Duration::from_secs(5)));
        assert_eq!(s.attempt_timeout, Duration::from_secs(2));
        assert_eq!(s.lbd_path, "/bin/lbd");

        let (s, errors) = InitSettings::from_cmdline(&KernelCmdline::parse("lb.poll=0"));
        assert!(errors.is_empty());
        assert_eq!(s.poll, None);
        assert!(s.config_urls.is_empty());
    }

    #[test]
    fn bad_values_fall_back_with_an_error() {
        let (s, errors) =
            InitSettings::from_cmdline(&KernelCmdline::parse("lb.poll=soon lb.log=chatty"));
        assert_eq!(s.poll, Some(Duration::from_secs(30)));
        assert_eq!(s.log_level, "info");
        assert!(!s.log_level_explicit, "a bad lb.log does not pin the level");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].key, "lb.poll");
        assert!(errors[0].to_string().contains("lb.poll=\"soon\""));
    }
}
