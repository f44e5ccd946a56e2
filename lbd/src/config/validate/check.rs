//! Health checks: `[check.NAME]` templates, the check of a service and of each of its reals
//! (a real may name another check or override keys of its service's), and the validation of a
//! resolved check, one check type at a time.

use super::{unknown_name_help, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

const CHECK_DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const CHECK_DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const CHECK_DEFAULT_RISE: u32 = 2;
const CHECK_DEFAULT_FALL: u32 = 3;
/// Longest `warmup` and `retry_delay`: longer is a typo (`"10h"` for `"10s"`), not a plan.
const CHECK_MAX_DELAY: Duration = Duration::from_secs(3600);

/// Named checks after validating each on its own: `None` for one that was refused (its
/// errors are reported once, not again where it is used).
pub(super) type NamedChecks = BTreeMap<String, (Range<usize>, Option<CheckSchema>)>;

/// A service's own check, validated once, that its reals start from.
pub(super) struct ServiceCheck {
    /// `None` when the service has no check, or when it was refused.
    schema: Option<CheckSchema>,
    /// The service has a check, but it was refused (or is unknown, reported where it is
    /// named): reals' overrides have nothing to complete, and must not report that as a
    /// second mistake.
    refused: bool,
}

impl Validator {
    /// The `[check.NAME]` a service or real names; `None` (reported) if there is none, or
    /// (already reported) if it was refused.
    pub(super) fn named_check(
        &mut self,
        name: &str,
        at: Range<usize>,
        checks: &NamedChecks,
    ) -> Option<CheckSchema> {
        match checks.get(name) {
            Some((_, schema)) => schema.clone(),
            None => {
                self.err("unknown-check", at, format!("no check named `{name}`"))
                    .help = Some(unknown_name_help(
                    name,
                    checks.keys(),
                    "define it as [check.NAME] or write the check inline: check = { type = \"tcp\" }",
                ));
                None
            }
        }
    }

    /// The check of a service: a named template or inline. It is validated here once, so its
    /// mistakes are reported even without reals, and not once per real.
    pub(super) fn service_check(
        &mut self,
        service: &Spanned<String>,
        check: Option<&Spanned<CheckRef>>,
        checks: &NamedChecks,
    ) -> ServiceCheck {
        let base_check: Option<CheckSchema> = match check {
            None => None,
            Some(c) => match c.get_ref() {
                CheckRef::Named(n) => self.named_check(n, c.span(), checks),
                CheckRef::Inline(schema) => Some((**schema).clone()),
            },
        };
        // Named, but unknown (reported above) or refused while gathering.
        let mut refused = check.is_some() && base_check.is_none();
        let schema = match base_check {
            Some(b) => {
                let at = check.map_or(service.span(), |c| c.span());
                let errors_before = self.error_count();
                let _ = self.check(Some(&b), None, at);
                let ok = self.error_count() == errors_before;
                refused |= !ok;
                ok.then_some(b)
            }
            None => None,
        };
        ServiceCheck { schema, refused }
    }

    /// The check of one real, whose address is at `at`: its service's, or the `[check.NAME]`
    /// the real names instead, or its service's with the real's overrides.
    pub(super) fn real_check(
        &mut self,
        own: Option<&Spanned<CheckRef>>,
        service: &ServiceCheck,
        at: Range<usize>,
        checks: &NamedChecks,
    ) -> Option<Check> {
        match own.map(|c| (c.get_ref(), c.span())) {
            None => self.check(service.schema.as_ref(), None, at),
            // A named check replaces the service's whole.
            Some((CheckRef::Named(n), span)) => self
                .named_check(n, span.clone(), checks)
                .and_then(|c| self.check(Some(&c), None, span)),
            // Overrides of a refused service check: nothing to check them against.
            Some((CheckRef::Inline(_), _)) if service.refused => None,
            Some((CheckRef::Inline(over), span)) => self.check(
                service.schema.as_ref(),
                Some(&Spanned::new(span, (**over).clone())),
                at,
            ),
        }
    }

    /// Resolves the check of one real: the service's definition with the real's overrides.
    pub(super) fn check(
        &mut self,
        base: Option<&CheckSchema>,
        over: Option<&Spanned<CheckSchema>>,
        at: Range<usize>,
    ) -> Option<Check> {
        let merged = match (base, over) {
            (None, None) => return None,
            (Some(b), None) => b.clone(),
            (None, Some(o)) => o.get_ref().clone(),
            (Some(b), Some(o)) => merge_check(b, o.get_ref()),
        };
        let Some(kind) = merged.kind.as_ref() else {
            let span = over.map_or(at, |o| o.span());
            self.err("missing-key", span, "the check has no `type`")
                .help = Some(
                "add type = \"tcp\" (or http, https, udp, dns, smtp, exec, mysql, pgsql, none)"
                    .into(),
            );
            return None;
        };
        let before = self.error_count();
        self.keys_for_type(&merged, *kind.get_ref());
        let check_kind = self.check_kind(&merged, kind)?;
        let (interval, timeout) = self.check_timing(&merged, kind);
        let rise = merged.rise.as_ref().map_or(CHECK_DEFAULT_RISE, |r| {
            self.int_in(
                r,
                1,
                100,
                "rise",
                "successes needed to mark a real up, 1 to 100",
            ) as u32
        });
        let fall = merged.fall.as_ref().map_or(CHECK_DEFAULT_FALL, |r| {
            self.int_in(
                r,
                1,
                100,
                "fall",
                "failures needed to mark a real down, 1 to 100",
            ) as u32
        });
        let port = merged
            .port
            .as_ref()
            .map(|p| self.int_in(p, 1, 65535, "port", "a port is 1 to 65535") as u16);
        if self.error_count() != before {
            return None;
        }
        Some(Check {
            kind: check_kind,
            interval,
            timeout,
            rise,
            fall,
            retry_delay: dur(&merged.retry_delay).unwrap_or(interval),
            warmup: dur(&merged.warmup).unwrap_or(Duration::ZERO),
            jitter: dur(&merged.jitter).unwrap_or(interval / 10),
            port,
            connect_address: merged.connect_address.as_ref().map(|a| *a.get_ref()),
            source_address: merged.source_address.as_ref().map(|a| *a.get_ref()),
        })
    }

    /// Reports each key the check's type does not understand.
    fn keys_for_type(&mut self, merged: &CheckSchema, kind_v: CheckType) {
        // Fields that only some check types understand.
        macro_rules! only_for {
            ($field:ident, $types:expr, $label:literal) => {
                if let Some(v) = &merged.$field {
                    if !$types.contains(&kind_v) {
                        self.err(
                            "key-not-for-type",
                            v.span(),
                            format!(
                                "`{}` does not apply to {} checks",
                                stringify!($field),
                                kind_v
                            ),
                        )
                        .help = Some(format!("`{}` is for {} checks", stringify!($field), $label));
                    }
                }
            };
        }
        use CheckType as T;
        only_for!(half_open, [T::Tcp], "tcp");
        only_for!(path, [T::Http, T::Https], "http and https");
        only_for!(host, [T::Http, T::Https], "http and https");
        only_for!(sni, [T::Https], "https");
        only_for!(tls_verify, [T::Https], "https");
        only_for!(ca_pem, [T::Https], "https");
        only_for!(keep_alive, [T::Http], "http");
        only_for!(expect_status, [T::Http, T::Https], "http and https");
        only_for!(expect_body, [T::Http, T::Https], "http and https");
        only_for!(expect_body_regex, [T::Http, T::Https], "http and https");
        only_for!(digest, [T::Http, T::Https], "http and https");
        only_for!(payload, [T::Udp], "udp");
        only_for!(payload_hex, [T::Udp], "udp");
        only_for!(expect_reply, [T::Udp], "udp");
        only_for!(expect_hex, [T::Udp], "udp");
        only_for!(query, [T::Dns], "dns");
        only_for!(query_type, [T::Dns], "dns");
        only_for!(helo_name, [T::Smtp], "smtp");
        only_for!(command, [T::Exec], "exec");
        only_for!(weight_from_exit, [T::Exec], "exec");
        only_for!(user, [T::Mysql, T::Pgsql], "mysql and pgsql");
        only_for!(password, [T::Mysql, T::Pgsql], "mysql and pgsql");
        only_for!(database, [T::Mysql, T::Pgsql], "mysql and pgsql");
    }

    /// What the check's type sends and expects; `None` for type `none`, or when a key the
    /// type needs is missing (reported).
    fn check_kind(&mut self, merged: &CheckSchema, kind: &Spanned<CheckType>) -> Option<CheckKind> {
        use CheckType as T;
        let kind_v = *kind.get_ref();
        let check_kind = match kind_v {
            T::None => return None,
            T::Tcp => CheckKind::Tcp {
                half_open: merged.half_open.as_ref().is_some_and(|v| *v.get_ref()),
            },
            T::Http | T::Https => self.http_check(merged, kind_v),
            T::Udp => self.udp_check(merged),
            T::Dns => self.dns_check(merged, kind)?,
            T::Smtp => CheckKind::Smtp {
                helo_name: text(&merged.helo_name).unwrap_or_else(|| "lbd.localdomain".into()),
            },
            T::Exec => match &merged.command {
                Some(c) if !c.get_ref().is_empty() && !c.get_ref()[0].is_empty() => {
                    CheckKind::Exec {
                        command: c.get_ref().clone(),
                        weight_from_exit: merged
                            .weight_from_exit
                            .as_ref()
                            .is_some_and(|v| *v.get_ref()),
                    }
                }
                other => {
                    let span = other.as_ref().map_or(kind.span(), |c| c.span());
                    self.err("missing-key", span, "an exec check needs `command`, a non-empty list: [\"/path/to/program\", \"arg\"]");
                    return None;
                }
            },
            T::Mysql | T::Pgsql => self.sql_check(merged, kind_v),
        };
        Some(check_kind)
    }

    /// `http` and `https`: the request, what the answer must be, and TLS verification.
    fn http_check(&mut self, merged: &CheckSchema, kind_v: CheckType) -> CheckKind {
        use CheckType as T;
        let path = match &merged.path {
            Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
            Some(p) => {
                self.err(
                    "bad-path",
                    p.span(),
                    format!("HTTP path {:?} must start with '/'", p.get_ref()),
                );
                String::new()
            }
            None => "/".to_string(),
        };
        if let Some(st) = &merged.expect_status {
            if st.get_ref().0.is_empty() {
                self.err("invalid-value", st.span(), "expect_status is empty: no answer would ever be up")
                    .help = Some("list the statuses that mean up, e.g. expect_status = [200, \"301-302\"], or leave it out for 200-299".into());
            }
        }
        if let Some(re) = &merged.expect_body_regex {
            if let Err(e) = regex_lite::Regex::new(re.get_ref()) {
                self.err(
                    "bad-regex",
                    re.span(),
                    format!("invalid regular expression: {e}"),
                );
            }
        }
        if let Some(d) = &merged.digest {
            let t = d.get_ref();
            if t.len() != 32 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                self.err(
                    "bad-digest",
                    d.span(),
                    "a body digest is 32 hexadecimal digits (MD5, as keepalived's genhash prints)",
                );
            }
        }
        let ca_pem = merged.ca_pem.as_ref().filter(|_| kind_v == T::Https).and_then(|p| {
            match crate::config::pem::ca_certificates(p.get_ref()) {
                Ok(_) => Some(p.get_ref().clone()),
                Err(e) => {
                    self.err("bad-pem", p.span(), format!("ca_pem: {e}")).help = Some(
                        "paste the CA certificate as a multi-line string: ca_pem = \"\"\"\n-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n\"\"\"".into(),
                    );
                    None
                }
            }
        });
        if let (Some(pem), Some(v)) = (&merged.ca_pem, &merged.tls_verify) {
            if !*v.get_ref() {
                self.err(
                    "conflicting-keys",
                    v.span(),
                    "tls_verify = false, but ca_pem is set: a CA is only used to verify",
                )
                .and_related(pem.span(), "ca_pem turns verification on")
                .and_help("remove tls_verify, or remove ca_pem");
            }
        }
        let http = HttpCheck {
            path,
            host: text(&merged.host),
            sni: text(&merged.sni),
            expect_status: merged.expect_status.as_ref().map_or_else(
                || {
                    vec![StatusRange {
                        low: 200,
                        high: 299,
                    }]
                },
                |s| s.get_ref().0.clone(),
            ),
            expect_body: text(&merged.expect_body),
            expect_body_regex: text(&merged.expect_body_regex),
            digest: merged
                .digest
                .as_ref()
                .map(|d| d.get_ref().to_ascii_lowercase()),
            tls_verify: merged.tls_verify.as_ref().is_some_and(|v| *v.get_ref())
                || merged.ca_pem.is_some(),
            ca_pem,
            keep_alive: merged.keep_alive.as_ref().is_some_and(|v| *v.get_ref()),
        };
        if kind_v == T::Http {
            CheckKind::Http(http)
        } else {
            CheckKind::Https(http)
        }
    }

    /// `udp`: the datagram sent and the reply expected, as text or hexadecimal bytes.
    fn udp_check(&mut self, merged: &CheckSchema) -> CheckKind {
        let mut hex = |v: &Option<Spanned<String>>, key: &str| {
            let v = v.as_ref()?;
            match parse_hex(v.get_ref()) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    self.err("bad-hex", v.span(), format!("{key}: {e}")).help = Some(
                        "write bytes as pairs of hexadecimal digits, spaces allowed: \"0a ff 00\""
                            .into(),
                    );
                    None
                }
            }
        };
        let payload_hex = hex(&merged.payload_hex, "payload_hex");
        let expect_prefix = hex(&merged.expect_hex, "expect_hex");
        if let (Some(p), Some(h)) = (&merged.payload, &merged.payload_hex) {
            self.err(
                "conflicting-keys",
                h.span(),
                "a udp check has either `payload` (text) or `payload_hex`, not both",
            )
            .and_related(p.span(), "the text payload");
        }
        if let (Some(e), Some(r)) = (&merged.expect_hex, &merged.expect_reply) {
            if !*r.get_ref() {
                self.err(
                    "conflicting-keys",
                    r.span(),
                    "expect_reply = false, but expect_hex needs a reply",
                )
                .and_related(e.span(), "the reply must start with these bytes")
                .and_help("remove expect_reply");
            }
        }
        CheckKind::Udp {
            payload: payload_hex
                .or_else(|| text(&merged.payload).map(String::into_bytes))
                .unwrap_or_default(),
            expect_reply: merged.expect_reply.as_ref().is_some_and(|v| *v.get_ref())
                || expect_prefix.is_some(),
            expect_prefix,
        }
    }

    /// `dns`: the name to resolve (required) and the query type.
    fn dns_check(&mut self, merged: &CheckSchema, kind: &Spanned<CheckType>) -> Option<CheckKind> {
        let Some(query) = text(&merged.query) else {
            self.err(
                "missing-key",
                kind.span(),
                "a dns check needs `query` (the name to resolve)",
            );
            return None;
        };
        let qtype = text(&merged.query_type)
            .unwrap_or_else(|| "A".into())
            .to_ascii_uppercase();
        if !["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"].contains(&qtype.as_str())
        {
            let span = merged
                .query_type
                .as_ref()
                .map(|q| q.span())
                .unwrap_or(kind.span());
            self.err(
                "bad-query-type",
                span,
                format!("unknown DNS query type {qtype:?}"),
            )
            .help = Some("use A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT".into());
        }
        Some(CheckKind::Dns {
            query,
            query_type: qtype,
        })
    }

    /// `mysql` and `pgsql`: the login.
    fn sql_check(&mut self, merged: &CheckSchema, kind_v: CheckType) -> CheckKind {
        use CheckType as T;
        if let (Some(p), None) = (&merged.password, &merged.user) {
            self.err(
                "password-without-user",
                p.span(),
                "a password without `user`: the check would log in as lbd-check",
            )
            .help = Some("add user = \"NAME\" for the account the password belongs to".into());
        }
        let login = SqlLogin {
            user: text(&merged.user),
            password: text(&merged.password).map(Secret::new),
            database: text(&merged.database),
        };
        if kind_v == T::Mysql {
            CheckKind::Mysql(login)
        } else {
            CheckKind::Pgsql(login)
        }
    }

    /// `interval`, `timeout`, `jitter`, `warmup` and `retry_delay`, each within bounds;
    /// returns the interval and the timeout.
    fn check_timing(
        &mut self,
        merged: &CheckSchema,
        kind: &Spanned<CheckType>,
    ) -> (Duration, Duration) {
        let interval = dur(&merged.interval).unwrap_or(CHECK_DEFAULT_INTERVAL);
        if interval < Duration::from_millis(10) {
            let span = merged
                .interval
                .as_ref()
                .map(|d| d.span())
                .unwrap_or(kind.span());
            self.err("bad-interval", span, "a check interval is at least 10ms");
        } else if interval > CHECK_MAX_DELAY {
            let span = merged
                .interval
                .as_ref()
                .map(|d| d.span())
                .unwrap_or(kind.span());
            self.err("bad-interval", span, "a check interval is at most 1h");
        }
        let timeout = dur(&merged.timeout).unwrap_or(CHECK_DEFAULT_TIMEOUT.min(interval));
        if timeout.is_zero() {
            let span = merged
                .timeout
                .as_ref()
                .map(|d| d.span())
                .unwrap_or(kind.span());
            self.err("bad-timeout", span, "a check timeout must be more than 0");
        } else if timeout > CHECK_MAX_DELAY {
            let span = merged
                .timeout
                .as_ref()
                .map(|d| d.span())
                .unwrap_or(kind.span());
            self.err("bad-timeout", span, "a check timeout is at most 1h");
        } else if timeout > interval {
            if let Some(t) = &merged.timeout {
                self.warn("timeout-over-interval", t.span(), format!("check timeout {} is longer than its interval {}", t.get_ref(), ConfigDuration(interval)))
                    .help = Some("checks will overlap their next run; lbd starts the next one only after the last finished".into());
            }
        }
        if let Some(j) = &merged.jitter {
            if j.get_ref().0 > interval {
                let d = self.err(
                    "bad-jitter",
                    j.span(),
                    format!(
                        "jitter {} is longer than the check's interval {}",
                        j.get_ref(),
                        ConfigDuration(interval)
                    ),
                );
                d.help = Some("jitter moves each run by up to half of it either way; keep it at most the interval (default: a tenth of it)".into());
                if let Some(i) = &merged.interval {
                    d.related = Some((i.span(), "the interval".into()));
                }
            }
        }
        let over_max = |v: &Option<Spanned<ConfigDuration>>| {
            v.as_ref()
                .filter(|v| v.get_ref().0 > CHECK_MAX_DELAY)
                .map(|v| (v.span(), v.get_ref().to_string()))
        };
        if let Some((span, v)) = over_max(&merged.warmup) {
            self.err("bad-warmup", span, format!("warmup {v} is over 1h"))
                .help =
                Some("the first check comes this long after start or reload: at most 1h".into());
        }
        if let Some((span, v)) = over_max(&merged.retry_delay) {
            self.err(
                "bad-retry-delay",
                span,
                format!("retry_delay {v} is over 1h"),
            )
            .help = Some("a failed check is retried this long after it ended: at most 1h".into());
        }
        (interval, timeout)
    }
}

/// The value of a text key.
fn text(v: &Option<Spanned<String>>) -> Option<String> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// The value of a duration key.
fn dur(v: &Option<Spanned<ConfigDuration>>) -> Option<Duration> {
    v.as_ref().map(|d| d.get_ref().0)
}

/// Per-real override: every field the real sets replaces the service's. A real that changes
/// the check's `type` inherits only the keys of every type (timing, port, addresses): the
/// service's type-specific keys (an HTTP `path`...) mean nothing to the real's type.
fn merge_check(base: &CheckSchema, over: &CheckSchema) -> CheckSchema {
    let type_changed = match (&over.kind, &base.kind) {
        (Some(o), Some(b)) => o.get_ref() != b.get_ref(),
        _ => false,
    };
    let base = &if type_changed {
        CheckSchema {
            kind: base.kind.clone(),
            interval: base.interval.clone(),
            timeout: base.timeout.clone(),
            rise: base.rise.clone(),
            fall: base.fall.clone(),
            retry_delay: base.retry_delay.clone(),
            warmup: base.warmup.clone(),
            jitter: base.jitter.clone(),
            port: base.port.clone(),
            connect_address: base.connect_address.clone(),
            source_address: base.source_address.clone(),
            ..CheckSchema::default()
        }
    } else {
        base.clone()
    };
    macro_rules! pick {
        ($($f:ident),*) => {
            CheckSchema { $($f: over.$f.clone().or_else(|| base.$f.clone()),)* }
        };
    }
    let mut merged = pick!(
        kind,
        interval,
        timeout,
        rise,
        fall,
        retry_delay,
        warmup,
        jitter,
        port,
        connect_address,
        source_address,
        half_open,
        path,
        host,
        sni,
        expect_status,
        expect_body,
        expect_body_regex,
        digest,
        tls_verify,
        ca_pem,
        keep_alive,
        payload,
        payload_hex,
        expect_reply,
        expect_hex,
        query,
        query_type,
        helo_name,
        command,
        weight_from_exit,
        user,
        password,
        database
    );
    // `payload` and `payload_hex` are one setting written two ways: a real that sets either
    // replaces the service's, instead of conflicting with it.
    if over.payload.is_some() || over.payload_hex.is_some() {
        merged.payload = over.payload.clone();
        merged.payload_hex = over.payload_hex.clone();
    }
    merged
}

/// Bytes written as hexadecimal digit pairs; ASCII spaces between them are allowed.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    if let Some(bad) = text.chars().find(|c| *c != ' ' && !c.is_ascii_hexdigit()) {
        return Err(format!("{bad:?} is not a hexadecimal digit"));
    }
    if digits.is_empty() {
        return Err("no bytes".into());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hexadecimal digits: an odd count (two digits per byte)",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            let v = |d: u8| (d as char).to_digit(16).unwrap_or(0) as u8;
            v(p[0]) << 4 | v(p[1])
        })
        .collect())
}
