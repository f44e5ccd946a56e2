//! From source text to a validated [`Config`], collecting every problem at once.
//!
//! Stage 1 parses the TOML into a spanned tree. Stage 2 deserializes each item (a service, a
//! real, an instance...) on its own, so one typo does not hide the next. Stage 3 checks what
//! the kernel or the network would reject later, with spans pointing at the values involved.

use super::diag::{ConfigError, Diagnostic, Severity};
use super::model::*;
use super::schema::*;
use super::types::*;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A config that passed validation, and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    pub file: String,
    pub source_text: String,
}

impl Loaded {
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|w| w.one_line(&self.file, &self.source_text))
            .collect()
    }
}

/// Parses and validates config text. `file` is only used in messages.
pub fn parse(file: &str, src: &str) -> Result<Loaded, ConfigError> {
    let mut cx = Cx { diags: Vec::new() };
    let config = cx.config(src);
    let mut diags = cx.diags;
    // A service's check is resolved again for each of its reals, and a named check once on
    // its own and again where it is used: one mistake is reported once.
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.span.clone(), d.message.clone())));
    diags.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.severity));
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    match config {
        Some(config) if !failed => Ok(Loaded {
            config,
            warnings: diags,
            file: file.to_string(),
            source_text: src.to_string(),
        }),
        _ => Err(ConfigError {
            file: file.to_string(),
            source_text: src.to_string(),
            diagnostics: diags,
        }),
    }
}

/// Reads and validates a config file.
pub fn load(path: &std::path::Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(src) => parse(&file, &src),
            Err(e) => Err(ConfigError {
                file,
                source_text: String::new(),
                diagnostics: vec![Diagnostic::error(
                    "not-utf8",
                    None,
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                )],
            }),
        },
        Err(e) => Err(ConfigError {
            file,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                "unreadable",
                None,
                format!("cannot read the file: {e}"),
            )],
        }),
    }
}

const TOP_LEVEL_HELP: &str =
    "top-level sections are [node], [ipvs], [vrrp.instance.NAME], [vrrp.sync_group.NAME], [check.NAME] and [service.NAME]";

const CHECK_DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const CHECK_DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
const CHECK_DEFAULT_RISE: u32 = 2;
const CHECK_DEFAULT_FALL: u32 = 3;
/// Longest `warmup` and `retry_delay`: longer is a typo (`"10h"` for `"10s"`), not a plan.
const CHECK_MAX_DELAY: Duration = Duration::from_secs(3600);

/// Named checks after validating each on its own: `None` for one that was refused (its
/// errors are reported once, not again where it is used).
type NamedChecks = BTreeMap<String, (Range<usize>, Option<CheckSchema>)>;

struct Cx {
    diags: Vec<Diagnostic>,
}

/// Raw items gathered in stage 2, with the spans of their names.
#[derive(Default)]
struct Raw {
    node: NodeSchema,
    ipvs: IpvsSchema,
    instances: Vec<(Spanned<String>, VrrpInstanceSchema)>,
    sync_groups: Vec<(Spanned<String>, SyncGroupSchema)>,
    checks: BTreeMap<String, (Range<usize>, CheckSchema)>,
    services: Vec<(Spanned<String>, ServiceSchema, Vec<RealSchema>)>,
    declared: Declared,
}

/// Every named item the file declares, valid or not. An item refused for its own mistakes is
/// still known by name, so the places that refer to it do not report it again ("no check
/// named `web`" after `web` was refused would be a second error for one mistake), and a
/// misspelt reference gets the nearest declared name.
#[derive(Default)]
struct Declared {
    /// `[vrrp.instance.NAME]` → the span of NAME.
    instances: BTreeMap<String, Range<usize>>,
    /// `[vrrp.sync_group.NAME]`.
    sync_groups: BTreeMap<String, Range<usize>>,
    /// `[check.NAME]`.
    checks: BTreeMap<String, Range<usize>>,
    /// VIPs of instances whose table did not deserialize, read leniently, so the services on
    /// them do not report that no instance holds their VIP.
    refused_instance_vips: Vec<(IpAddr, String)>,
}

/// Just the VIPs of an instance table that failed to deserialize (other keys ignored).
#[derive(serde::Deserialize)]
struct VipsOnly {
    vips: Vec<IpPrefix>,
}

impl Cx {
    fn err(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, Some(span), msg));
        self.diags.last_mut().expect("just pushed")
    }

    fn warn(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(code, Some(span), msg));
        self.diags.last_mut().expect("just pushed")
    }

    /// Deserializes one item. On an error in a table, the offending entry is set aside and the
    /// rest is tried again, so every bad key of the item is reported, not only the first.
    fn de<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue<'_>>) -> Option<T> {
        let span = value.span();
        let mut current = value.get_ref().clone();
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..64 {
            let attempt = T::deserialize(toml::de::ValueDeserializer::from(Spanned::new(
                span.clone(),
                current.clone(),
            )));
            let e = match attempt {
                Ok(t) => return removed.is_empty().then_some(t),
                Err(e) => e,
            };
            // A key set aside earlier is reported as missing now: that is not a new problem.
            let cascade = removed
                .iter()
                .any(|k| e.message().starts_with(&format!("missing field `{k}`")));
            if !cascade {
                self.schema_error(&e, span.clone());
            }
            let (Some(at), DeValue::Table(table)) = (e.span(), &current) else {
                return None;
            };
            let culprit = table
                .iter()
                .find(|(k, v)| k.span().contains(&at.start) || holds(v, at.start))
                // A sub-table from a [a.b] header may carry no span of its own: the entry
                // whose key comes last before the error is the one it is in.
                .or_else(|| {
                    table
                        .iter()
                        .filter(|(k, _)| k.span().start <= at.start)
                        .max_by_key(|(k, _)| k.span().start)
                })
                .map(|(k, _)| k.get_ref().to_string());
            let culprit = culprit?;
            let mut rest = DeTable::new();
            for (k, v) in table.iter().filter(|(k, _)| k.get_ref() != &culprit) {
                rest.insert(k.clone(), v.clone());
            }
            removed.push(culprit);
            current = DeValue::Table(rest);
        }
        None
    }

    fn schema_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let span = e.span().unwrap_or(fallback);
        let msg = e.message().trim().to_string();
        let mut d = Diagnostic::error("invalid-value", Some(span), msg.clone());
        if let Some((key, expected)) = unknown_field(&msg) {
            d.code = "unknown-key";
            d.message = format!("unknown key `{key}`");
            d.help = Some(
                match super::suggest::nearest(&key, expected.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None if expected.is_empty() => "this table takes no keys".into(),
                    None => format!("the keys here are {}", expected.join(", ")),
                },
            );
        } else if msg.starts_with("missing field") {
            d.code = "missing-key";
        }
        self.diags.push(d);
    }

    fn config(&mut self, src: &str) -> Option<Config> {
        let root = match DeTable::parse(src) {
            Ok(root) => root,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.diags.push(
                    Diagnostic::error("toml-syntax", Some(span), e.message().trim().to_string())
                        .help("this is not valid TOML; see https://toml.io"),
                );
                return None;
            }
        };
        let raw = self.gather(root.get_ref());
        let before = self.error_count();
        let config = self.build(raw, src);
        (self.error_count() == before).then_some(config).flatten()
    }

    fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Stage 2: walk the tree, deserialize each item separately.
    fn gather(&mut self, root: &DeTable<'_>) -> Raw {
        let mut raw = Raw::default();
        for (key, value) in root.iter() {
            let name: &str = key.get_ref();
            match name {
                "node" => {
                    if let Some(n) = self.de(value) {
                        raw.node = n;
                    }
                }
                "ipvs" => {
                    if let Some(i) = self.de(value) {
                        raw.ipvs = i;
                    }
                }
                "vrrp" => {
                    let Some(table) = self.table(value, "[vrrp]") else {
                        continue;
                    };
                    for (k, v) in table.iter() {
                        match k.get_ref().as_ref() {
                            "instance" => {
                                for (name, item) in self.named_items(v, "vrrp.instance") {
                                    raw.declared
                                        .instances
                                        .insert(name.get_ref().clone(), name.span());
                                    if let Some(i) = self.de(item) {
                                        raw.instances.push((name, i));
                                    } else if let Ok(v) = VipsOnly::deserialize(
                                        toml::de::ValueDeserializer::from(item.clone()),
                                    ) {
                                        raw.declared.refused_instance_vips.extend(
                                            v.vips.iter().map(|p| (p.addr, name.get_ref().clone())),
                                        );
                                    }
                                }
                            }
                            "sync_group" => {
                                for (name, item) in self.named_items(v, "vrrp.sync_group") {
                                    raw.declared
                                        .sync_groups
                                        .insert(name.get_ref().clone(), name.span());
                                    if let Some(g) = self.de(item) {
                                        raw.sync_groups.push((name, g));
                                    }
                                }
                            }
                            other => {
                                let help = match super::suggest::nearest(
                                    other,
                                    ["instance", "sync_group"],
                                ) {
                                    Some(near) => format!("did you mean `vrrp.{near}`?"),
                                    None => "[vrrp] holds [vrrp.instance.NAME] and [vrrp.sync_group.NAME]".into(),
                                };
                                self.err(
                                    "unknown-key",
                                    k.span(),
                                    format!("unknown key `vrrp.{other}`"),
                                )
                                .help = Some(help);
                            }
                        }
                    }
                }
                "check" => {
                    for (name, item) in self.named_items(value, "check") {
                        raw.declared
                            .checks
                            .insert(name.get_ref().clone(), name.span());
                        if let Some(c) = self.de::<CheckSchema>(item) {
                            raw.checks.insert(name.get_ref().clone(), (name.span(), c));
                        }
                    }
                }
                "service" => {
                    for (name, item) in self.named_items(value, "service") {
                        let Some(table) = self.table(item, "a service") else {
                            continue;
                        };
                        let mut rest = DeTable::new();
                        for (k, v) in table.iter().filter(|(k, _)| k.get_ref() != "real") {
                            rest.insert(k.clone(), v.clone());
                        }
                        let service = self
                            .de::<ServiceSchema>(&Spanned::new(item.span(), DeValue::Table(rest)));
                        let mut reals = Vec::new();
                        if let Some((_, real_value)) =
                            table.iter().find(|(k, _)| k.get_ref() == "real")
                        {
                            match real_value.get_ref() {
                                DeValue::Array(items) => {
                                    for r in items.iter() {
                                        if let Some(real) = self.de::<RealSchema>(r) {
                                            reals.push(real);
                                        }
                                    }
                                }
                                _ => {
                                    self.err(
                                        "invalid-value",
                                        real_value.span(),
                                        "`real` must be a list of tables",
                                    )
                                    .help = Some(format!(
                                        "write each real server as [[service.{}.real]] with address = \"10.0.0.1:80\"",
                                        name.get_ref()
                                    ));
                                }
                            }
                        }
                        if let Some(service) = service {
                            raw.services.push((name, service, reals));
                        }
                    }
                }
                other => {
                    let help = match super::suggest::nearest(
                        other,
                        ["node", "ipvs", "vrrp", "check", "service"],
                    ) {
                        Some(near) => format!("did you mean [{near}]? {TOP_LEVEL_HELP}"),
                        None => TOP_LEVEL_HELP.into(),
                    };
                    self.err(
                        "unknown-section",
                        key.span(),
                        format!("unknown section `{other}`"),
                    )
                    .help = Some(help);
                }
            }
        }
        raw
    }

    fn table<'a, 'i>(
        &mut self,
        value: &'a Spanned<DeValue<'i>>,
        what: &str,
    ) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    "invalid-value",
                    value.span(),
                    format!("{what} must be a table, found a {}", other.type_str()),
                );
                None
            }
        }
    }

    /// The `NAME = { ... }` entries of a keyed section like `[service.NAME]`.
    fn named_items<'a, 'i>(
        &mut self,
        value: &'a Spanned<DeValue<'i>>,
        section: &str,
    ) -> Vec<(Spanned<String>, &'a Spanned<DeValue<'i>>)> {
        let Some(table) = self.table(value, &format!("[{section}]")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in table.iter() {
            let name: &str = k.get_ref();
            if !valid_name(name) {
                self.err(
                    "bad-name",
                    k.span(),
                    format!("invalid name {name:?} in [{section}.NAME]"),
                )
                .help = Some("names use letters, digits, '-' and '_' (at most 64)".into());
                continue;
            }
            if !matches!(v.get_ref(), DeValue::Table(_)) {
                self.err(
                    "invalid-value",
                    k.span(),
                    format!("`{section}.{name}` must be a table"),
                )
                .help = Some(format!("write it as a section: [{section}.{name}]"));
                continue;
            }
            out.push((Spanned::new(k.span(), name.to_string()), v));
        }
        out
    }

    /// Stage 3: semantic checks and the domain model.
    fn build(&mut self, raw: Raw, src: &str) -> Option<Config> {
        let node = self.node(raw.node);
        // VIP owners from every instance that parsed, valid or not, so a bad instance does not
        // also make each of its services report "VIP not in any VRRP instance".
        let mut vip_owners: HashMap<IpAddr, String> = raw
            .instances
            .iter()
            .flat_map(|(n, s)| {
                s.vips
                    .get_ref()
                    .iter()
                    .map(move |v| (v.get_ref().addr, n.get_ref().clone()))
            })
            .collect();
        vip_owners.extend(raw.declared.refused_instance_vips.iter().cloned());
        let declared = &raw.declared;
        let instances = self.instances(raw.instances);
        let sync_groups = self.sync_groups(raw.sync_groups, &instances, declared);
        // Every named check is validated, used or not, so a mistake in one waiting for its
        // first service is found now, not when someone uses it.
        let mut checks: NamedChecks = BTreeMap::new();
        for (n, (span, schema)) in raw.checks {
            let errors_before = self.error_count();
            let _ = self.check(Some(&schema), None, span.clone());
            let ok = self.error_count() == errors_before;
            checks.insert(n, (span, ok.then_some(schema)));
        }
        // Declared but refused while deserializing: known, with no usable definition.
        for (n, span) in &declared.checks {
            checks.entry(n.clone()).or_insert((span.clone(), None));
        }
        let mut used_checks: BTreeSet<String> = BTreeSet::new();
        let mut services = BTreeMap::new();
        let mut keys: HashMap<ServiceKey, (String, Range<usize>)> = HashMap::new();
        let mut real_families = false;
        for (name, schema, reals) in raw.services {
            if let Some((service, key_span)) =
                self.service(&name, schema, reals, &checks, &mut used_checks, &vip_owners)
            {
                if service
                    .reals
                    .iter()
                    .any(|r| Family::of(&r.addr.ip()) != service.key.family())
                {
                    real_families = true;
                }
                if let Some((other, other_span)) = keys.get(&service.key) {
                    let msg = format!(
                        "virtual service {} is defined twice (services `{}` and `{}`)",
                        service.key, other, service.name
                    );
                    let other_span = other_span.clone();
                    self.err("duplicate-service", key_span, msg)
                        .and_related(other_span, "first defined here")
                        .and_help("the kernel holds one service per protocol, address and port: merge their reals, or use another port");
                    continue;
                }
                keys.insert(service.key, (service.name.clone(), key_span));
                services.insert(service.name.clone(), service);
            }
        }
        for (n, (span, _)) in &checks {
            if !used_checks.contains(n) {
                self.warn(
                    "unused-check",
                    span.clone(),
                    format!("check `{n}` is not used by any service or real"),
                )
                .help = Some(format!(
                    "use it with check = \"{n}\" in a service or real, or remove it"
                ));
            }
        }
        let ipvs = self.ipvs(raw.ipvs, &instances, &sync_groups, declared, real_families);
        Some(Config {
            node,
            ipvs,
            vrrp_instances: instances.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            sync_groups,
            services,
            version: hex(&Sha256::digest(src.as_bytes())),
        })
    }

    fn node(&mut self, n: NodeSchema) -> Node {
        let mut node = Node {
            log_level: n.log_level.unwrap_or_default(),
            ..Node::default()
        };
        if let Some(h) = n.hostname {
            if valid_hostname(h.get_ref()) {
                node.hostname = Some(h.get_ref().clone());
            } else {
                self.err(
                    "bad-hostname",
                    h.span(),
                    format!("invalid host name {:?}", h.get_ref()),
                )
                .help = Some(
                    "use letters, digits and '-', dot-separated labels of at most 63 characters"
                        .into(),
                );
            }
        }
        // In source order, so a second spelling of one sysctl is the one pointed at.
        let mut sysctls: Vec<_> = n.sysctl.into_iter().collect();
        sysctls.sort_by_key(|(k, _)| k.span().start);
        let mut spelled: HashMap<String, Spanned<String>> = HashMap::new();
        for (k, v) in sysctls {
            let key = k.get_ref();
            if key.is_empty()
                || key.starts_with('.')
                || key.contains("..")
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
            {
                self.err(
                    "bad-sysctl",
                    k.span(),
                    format!("invalid sysctl name {key:?}"),
                )
                .help = Some("write the dotted name, e.g. \"net.ipv4.ip_forward\"".into());
                continue;
            }
            let dotted = key.replace('/', ".");
            if let Some(first) = spelled.get(&dotted) {
                self.err(
                    "duplicate-sysctl",
                    k.span(),
                    format!(
                        "{key:?} and {:?} are the same sysctl, {dotted}",
                        first.get_ref()
                    ),
                )
                .and_related(first.span(), "first set here")
                .and_help("`/` and `.` both separate the parts of a name: keep one of them");
                continue;
            }
            spelled.insert(dotted.clone(), k.clone());
            node.sysctls.insert(dotted, v.get_ref().render());
        }
        if let Some(s) = n.syslog {
            let protocol = match s
                .protocol
                .as_ref()
                .map(|p| p.get_ref().to_ascii_lowercase())
            {
                None => Some(SyslogProtocol::Udp),
                Some(p) if p == "udp" => Some(SyslogProtocol::Udp),
                Some(p) if p == "tcp" => Some(SyslogProtocol::Tcp),
                Some(p) => {
                    let span = s.protocol.as_ref().map(|x| x.span()).unwrap_or(0..0);
                    self.err("bad-syslog", span, format!("unknown syslog protocol {p:?}"))
                        .help = Some("use \"udp\" or \"tcp\"".into());
                    None
                }
            };
            if let Some(protocol) = protocol {
                node.syslog = Some(Syslog {
                    server: s.server.get_ref().socket_addr(514),
                    protocol,
                });
            }
        }
        if let Some(api) = n.api_listen {
            match api.get_ref().port {
                Some(p) => node.api_listen = Some(SocketAddr::new(api.get_ref().ip, p)),
                None => {
                    self.err("missing-port", api.span(), "api_listen needs a port")
                        .help = Some("e.g. api_listen = \"192.0.2.2:9900\"".into());
                }
            }
        }
        if let Some(p) = n.vrrp_realtime_priority {
            match u8::try_from(*p.get_ref()) {
                Ok(v) if v <= 99 => node.vrrp_realtime_priority = Some(v),
                _ => {
                    self.err(
                        "bad-realtime-priority",
                        p.span(),
                        format!("vrrp_realtime_priority {} is outside 0–99", p.get_ref()),
                    )
                    .help = Some(
                        "SCHED_FIFO priorities are 1 to 99; 0 runs the VRRP thread as a normal one"
                            .into(),
                    );
                }
            }
        }
        node
    }

    fn instances(
        &mut self,
        raw: Vec<(Spanned<String>, VrrpInstanceSchema)>,
    ) -> BTreeMap<String, (VrrpInstance, Range<usize>)> {
        let mut out = BTreeMap::new();
        // (interface, vrid, family) → instance name, for duplicates.
        let mut routers: HashMap<(String, u8, Family), (String, Range<usize>)> = HashMap::new();
        let mut vip_owner: HashMap<IpAddr, (String, Range<usize>)> = HashMap::new();
        // macvlan name → instance, so two virtual MACs never fight over one link.
        let mut vmac_links: HashMap<String, (String, Range<usize>)> = HashMap::new();
        let interfaces: BTreeSet<String> = raw
            .iter()
            .map(|(_, s)| s.interface.get_ref().clone())
            .collect();
        for (name, s) in raw {
            let name_str = name.get_ref().clone();
            let ok_before = self.error_count();
            let vrid = self.int_in(
                &s.vrid,
                1,
                255,
                "vrid",
                "a virtual router id is 1 to 255, the same on both nodes of a pair",
            ) as u8;
            let priority = self.int_in(
                &s.priority,
                1,
                255,
                "priority",
                "use 1 to 254 (255 only for the node that owns the addresses)",
            ) as u8;
            let version = match s.version.as_ref().map(|v| (*v.get_ref(), v.span())) {
                None | Some((3, _)) => VrrpVersion::V3,
                Some((2, _)) => VrrpVersion::V2,
                Some((n, span)) => {
                    self.err(
                        "bad-vrrp-version",
                        span,
                        format!("VRRP version {n} does not exist"),
                    )
                    .help =
                        Some("use 2 (RFC 3768, IPv4 only) or 3 (RFC 5798, IPv4 and IPv6)".into());
                    VrrpVersion::V3
                }
            };
            // Family from the first VIP; every address of the instance must match it.
            let vips: Vec<Spanned<IpPrefix>> = s.vips.get_ref().clone();
            if vips.is_empty() {
                self.err(
                    "no-vips",
                    s.vips.span(),
                    format!("VRRP instance `{name_str}` has no VIPs"),
                )
                .help = Some("list the addresses it moves: vips = [\"192.0.2.10/24\"]".into());
            }
            let family = vips
                .first()
                .map_or(Family::Ipv4, |v| Family::of(&v.get_ref().addr));
            for v in &vips {
                let f = Family::of(&v.get_ref().addr);
                if f != family {
                    self.err(
                        "mixed-family",
                        v.span(),
                        format!("{f} VIP {} in an {family} VRRP instance", v.get_ref().addr),
                    )
                    .help = Some("a VRRP instance carries one address family: put IPv4 and IPv6 VIPs in separate instances".into());
                }
                if version == VrrpVersion::V2 && f == Family::Ipv6 {
                    self.err("v2-ipv6", v.span(), "VRRPv2 carries only IPv4 addresses")
                        .help = Some("set version = 3 for IPv6".into());
                }
                if let Some((other, other_span)) = vip_owner.get(&v.get_ref().addr) {
                    let (other, other_span) = (other.clone(), other_span.clone());
                    self.err(
                        "duplicate-vip",
                        v.span(),
                        format!(
                            "VIP {} is also in VRRP instance `{other}`",
                            v.get_ref().addr
                        ),
                    )
                    .and_related(other_span, "also here")
                    .and_help("an address can be moved by one instance only");
                } else {
                    vip_owner.insert(v.get_ref().addr, (name_str.clone(), v.span()));
                }
            }
            let advert_interval = match &s.advert_interval {
                None => Duration::from_secs(1),
                Some(d) => {
                    let iv = d.get_ref().0;
                    match version {
                        VrrpVersion::V2 => {
                            if iv.subsec_nanos() != 0 || iv.as_secs() < 1 || iv.as_secs() > 255 {
                                self.err("bad-advert-interval", d.span(), format!("VRRPv2 advert interval {} is not a whole number of seconds from 1s to 255s", d.get_ref()))
                                    .help = Some("use whole seconds, or version = 3 for intervals in centiseconds".into());
                            }
                        }
                        VrrpVersion::V3 => {
                            let cs = iv.as_millis();
                            if iv.as_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&cs) {
                                self.err("bad-advert-interval", d.span(), format!("VRRPv3 advert interval {} is not a multiple of 10ms from 10ms to 40950ms", d.get_ref()))
                                    .help = Some("VRRPv3 counts the interval in centiseconds (RFC 5798 5.2.7)".into());
                            }
                        }
                    }
                    iv
                }
            };
            if let Some(pass) = &s.auth_pass {
                if version == VrrpVersion::V3 {
                    self.err(
                        "auth-v3",
                        pass.span(),
                        "VRRPv3 has no authentication (RFC 5798 removed it)",
                    )
                    .help =
                        Some("remove auth_pass, or use version = 2 to talk to old peers".into());
                } else if pass.get_ref().is_empty() || pass.get_ref().len() > 8 {
                    self.err(
                        "bad-auth-pass",
                        pass.span(),
                        "a VRRPv2 password is 1 to 8 characters",
                    )
                    .help = Some("longer passwords are cut by peers and never match".into());
                }
            }
            let mut peers_seen: HashMap<IpAddr, Range<usize>> = HashMap::new();
            for p in &s.unicast_peers {
                if let Some(first) = peers_seen.get(p.get_ref()) {
                    let first = first.clone();
                    self.err(
                        "duplicate-peer",
                        p.span(),
                        format!("unicast peer {} is listed twice", p.get_ref()),
                    )
                    .and_related(first, "first here")
                    .and_help("list each peer once: it would get every advert twice");
                } else {
                    peers_seen.insert(*p.get_ref(), p.span());
                }
                if Family::of(p.get_ref()) != family {
                    self.err(
                        "mixed-family",
                        p.span(),
                        format!(
                            "{} peer {} for an {family} instance",
                            Family::of(p.get_ref()),
                            p.get_ref()
                        ),
                    )
                    .help = Some("unicast peers use the instance's address family".into());
                }
            }
            if let Some(src) = &s.unicast_source {
                if Family::of(src.get_ref()) != family {
                    self.err(
                        "mixed-family",
                        src.span(),
                        format!(
                            "{} unicast source for an {family} instance",
                            Family::of(src.get_ref())
                        ),
                    );
                }
                if s.unicast_peers.is_empty() {
                    self.warn(
                        "unused-key",
                        src.span(),
                        "unicast_source has no effect without unicast_peers",
                    );
                }
            }
            if priority == 255 {
                self.warn(
                    "address-owner",
                    s.priority.span(),
                    "priority 255 means this node owns the VIPs (RFC 5798); it always preempts",
                )
                .help =
                    Some("use 254 or lower unless the addresses really belong to this node".into());
            }
            let garp_count = s.garp_count.as_ref().map_or(5, |g| {
                self.int_in(
                    g,
                    0,
                    100,
                    "garp_count",
                    "send 0 to 100 gratuitous ARPs on takeover",
                ) as u32
            });
            let preempt_delay = s
                .preempt_delay
                .as_ref()
                .map_or(Duration::ZERO, |d| d.get_ref().0);
            if preempt_delay > Duration::from_secs(3600) {
                let span = s.preempt_delay.as_ref().map(|d| d.span()).unwrap_or(0..0);
                self.err("bad-preempt-delay", span, "preempt_delay is at most 1h");
            }
            let quorum_priority_drop = s.quorum_priority_drop.as_ref().map_or(0, |q| {
                self.int_in(
                    q,
                    0,
                    254,
                    "quorum_priority_drop",
                    "lower the priority by 0 to 254",
                ) as u8
            });
            if !valid_ifname(s.interface.get_ref()) {
                self.err(
                    "bad-interface",
                    s.interface.span(),
                    format!("invalid interface name {:?}", s.interface.get_ref()),
                )
                .help = Some(
                    "Linux interface names are 1 to 15 characters without '/' or spaces".into(),
                );
            }
            for t in &s.track_interfaces {
                if !valid_ifname(t.get_ref()) {
                    self.err(
                        "bad-interface",
                        t.span(),
                        format!("invalid interface name {:?}", t.get_ref()),
                    );
                }
            }
            let key = (s.interface.get_ref().clone(), vrid, family);
            if let Some((other, other_span)) = routers.get(&key) {
                let (other, other_span) = (other.clone(), other_span.clone());
                self.err(
                    "duplicate-vrid",
                    s.vrid.span(),
                    format!(
                        "vrid {vrid} ({family}) on {} is also used by instance `{other}`",
                        key.0
                    ),
                )
                .and_related(other_span, "also here")
                .and_help("each virtual router on a link needs its own vrid");
            } else {
                routers.insert(key, (name_str.clone(), s.vrid.span()));
            }
            if let Some(false) = s.accept.as_ref().map(|a| *a.get_ref()) {
                let span = s.accept.as_ref().map(|a| a.span()).unwrap_or(0..0);
                self.err(
                    "accept-mode-off",
                    span,
                    "accept = false is not supported: the master always accepts packets to its VIPs",
                )
                .help = Some("IPVS needs the VIPs as local addresses, so traffic to them reaches this host; remove the key, and keep other traffic off the VIPs with a firewall".into());
            }
            let virtual_mac = self.virtual_mac_link(
                &name,
                s.virtual_mac.unwrap_or(false),
                s.virtual_mac_interface.as_ref(),
                vrid,
                family,
                &interfaces,
                &mut vmac_links,
            );
            if self.error_count() != ok_before {
                continue;
            }
            let instance = VrrpInstance {
                name: name_str.clone(),
                interface: s.interface.get_ref().clone(),
                vrid,
                priority,
                version,
                family,
                advert_interval,
                vips: vips.iter().map(|v| *v.get_ref()).collect(),
                preempt: s.preempt.unwrap_or(true),
                preempt_delay,
                unicast_peers: s.unicast_peers.iter().map(|p| *p.get_ref()).collect(),
                unicast_source: s.unicast_source.as_ref().map(|p| *p.get_ref()),
                auth_pass: s.auth_pass.as_ref().map(|p| p.get_ref().clone()),
                track_interfaces: s
                    .track_interfaces
                    .iter()
                    .map(|t| t.get_ref().clone())
                    .collect(),
                virtual_mac,
                accept: true,
                garp_count,
                garp_repeat_after: s
                    .garp_repeat_after
                    .as_ref()
                    .map_or(Duration::from_secs(5), |d| d.get_ref().0),
                quorum_priority_drop,
            };
            out.insert(name_str, (instance, name.span()));
        }
        out
    }

    /// The macvlan an instance with `virtual_mac` uses: `virtual_mac_interface`, or
    /// `vrrp.VRID` (`vrrp6.VRID`). Refuses a name another instance's macvlan or a VRRP
    /// interface already has.
    #[allow(clippy::too_many_arguments)]
    fn virtual_mac_link(
        &mut self,
        instance: &Spanned<String>,
        enabled: bool,
        explicit: Option<&Spanned<String>>,
        vrid: u8,
        family: Family,
        interfaces: &BTreeSet<String>,
        taken: &mut HashMap<String, (String, Range<usize>)>,
    ) -> Option<String> {
        if !enabled {
            if let Some(e) = explicit {
                self.warn(
                    "unused-key",
                    e.span(),
                    "virtual_mac_interface has no effect without virtual_mac = true",
                );
            }
            return None;
        }
        let (link, span) = match explicit {
            Some(e) => {
                if !valid_ifname(e.get_ref()) {
                    self.err(
                        "bad-interface",
                        e.span(),
                        format!("invalid interface name {:?}", e.get_ref()),
                    )
                    .help = Some(
                        "Linux interface names are 1 to 15 characters without '/' or spaces".into(),
                    );
                    return None;
                }
                (e.get_ref().clone(), e.span())
            }
            None => {
                let prefix = if family == Family::Ipv6 {
                    "vrrp6"
                } else {
                    "vrrp"
                };
                (format!("{prefix}.{vrid}"), instance.span())
            }
        };
        if interfaces.contains(&link) {
            self.err(
                "vmac-name-taken",
                span,
                format!(
                    "the virtual MAC's macvlan would be named {link}, which is a VRRP interface"
                ),
            )
            .help = Some("set virtual_mac_interface to an unused name".into());
            return None;
        }
        if let Some((other, other_span)) = taken.get(&link) {
            let (other, other_span) = (other.clone(), other_span.clone());
            self.err(
                "vmac-name-taken",
                span,
                format!("instance `{}` would create macvlan {link}, which instance `{other}` already uses for its virtual MAC", instance.get_ref()),
            )
            .and_related(other_span, "also here")
            .and_help("one VRID on two interfaces needs distinct names: set virtual_mac_interface = \"NAME\" on one of them");
            return None;
        }
        taken.insert(link.clone(), (instance.get_ref().clone(), span));
        Some(link)
    }

    fn sync_groups(
        &mut self,
        raw: Vec<(Spanned<String>, SyncGroupSchema)>,
        instances: &BTreeMap<String, (VrrpInstance, Range<usize>)>,
        declared: &Declared,
    ) -> BTreeMap<String, SyncGroup> {
        let mut out = BTreeMap::new();
        let mut member_of: HashMap<String, String> = HashMap::new();
        for (name, g) in raw {
            let mut members = Vec::new();
            for m in g.instances.get_ref() {
                let inst = m.get_ref();
                if !instances.contains_key(inst) {
                    // Declared but refused: its own errors say why.
                    if declared.instances.contains_key(inst) {
                        continue;
                    }
                    self.err(
                        "unknown-instance",
                        m.span(),
                        format!(
                            "sync group `{}` names unknown VRRP instance `{inst}`",
                            name.get_ref()
                        ),
                    )
                    .help = Some(unknown_name_help(
                        inst,
                        declared.instances.keys(),
                        "define it as [vrrp.instance.NAME]",
                    ));
                    continue;
                }
                if let Some(other) = member_of.get(inst) {
                    self.err(
                        "instance-in-two-groups",
                        m.span(),
                        format!("instance `{inst}` is already in sync group `{other}`"),
                    )
                    .help = Some("an instance belongs to at most one sync group".into());
                    continue;
                }
                member_of.insert(inst.clone(), name.get_ref().clone());
                members.push(inst.clone());
            }
            if g.instances.get_ref().len() < 2 {
                self.warn(
                    "small-sync-group",
                    g.instances.span(),
                    "a sync group with fewer than two instances synchronises nothing",
                );
            }
            out.insert(
                name.get_ref().clone(),
                SyncGroup {
                    name: name.get_ref().clone(),
                    instances: members,
                },
            );
        }
        out
    }

    fn ipvs(
        &mut self,
        s: IpvsSchema,
        instances: &BTreeMap<String, (VrrpInstance, Range<usize>)>,
        groups: &BTreeMap<String, SyncGroup>,
        declared: &Declared,
        mixed_family_reals: bool,
    ) -> IpvsSettings {
        let mut out = IpvsSettings {
            unmanaged: s.unmanaged.unwrap_or_default(),
            ..Default::default()
        };
        if let Some(t) = s.timeouts {
            let mut take = |v: &Option<Spanned<ConfigDuration>>, name: &str| -> Option<Duration> {
                let v = v.as_ref()?;
                let d = v.get_ref().0;
                if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > i32::MAX as u64 / 1000 {
                    self.err("bad-timeout", v.span(), format!("IPVS {name} timeout {} must be whole seconds from 1s to {}s", v.get_ref(), i32::MAX / 1000))
                        .help = Some("the kernel keeps these timeouts in seconds; e.g. tcp = \"2h\" for long-lived database connections".into());
                    return None;
                }
                Some(d)
            };
            out.timeouts = IpvsTimeouts {
                tcp: take(&t.tcp, "tcp"),
                tcp_fin: take(&t.tcp_fin, "tcp_fin"),
                udp: take(&t.udp, "udp"),
            };
        }
        if let Some(sync) = s.sync {
            let sync_id = sync.sync_id.as_ref().map_or(0, |v| {
                self.int_in(
                    v,
                    0,
                    255,
                    "sync_id",
                    "a sync id is 0 to 255, the same on both nodes",
                ) as u8
            });
            let port = sync.port.as_ref().map_or(8848, |v| {
                self.int_in(v, 1, 65535, "port", "a UDP port") as u16
            });
            let ttl = sync.ttl.as_ref().map_or(1, |v| {
                self.int_in(v, 1, 255, "ttl", "a multicast TTL is 1 to 255") as u8
            });
            let max_len = sync.max_len.as_ref().map(|v| {
                self.int_in(
                    v,
                    256,
                    65507,
                    "max_len",
                    "the sync message size is 256 to 65507 bytes",
                ) as u16
            });
            if !valid_ifname(sync.interface.get_ref()) {
                self.err(
                    "bad-interface",
                    sync.interface.span(),
                    format!("invalid interface name {:?}", sync.interface.get_ref()),
                );
            }
            if mixed_family_reals {
                self.err("sync-mixed-family", sync.interface.span(), "connection sync cannot be used with reals of another address family than their service")
                    .help = Some("the kernel's sync protocol does not carry mixed-family connections; remove [ipvs.sync] or the mixed-family tunnel reals".into());
            }
            let follow = match &sync.follow {
                Some(f) => {
                    let name = f.get_ref();
                    let known = instances.contains_key(name)
                        || groups.contains_key(name)
                        || declared.instances.contains_key(name)
                        || declared.sync_groups.contains_key(name);
                    if !known {
                        self.err("unknown-instance", f.span(), format!("`follow` names `{name}`, which is neither a VRRP instance nor a sync group"))
                            .help = Some(unknown_name_help(
                                name,
                                declared.instances.keys().chain(declared.sync_groups.keys()),
                                "name a [vrrp.instance.NAME] or [vrrp.sync_group.NAME]",
                            ));
                    }
                    f.get_ref().clone()
                }
                None => {
                    if groups.len() == 1 {
                        groups.keys().next().cloned().unwrap_or_default()
                    } else if groups.is_empty() && instances.len() == 1 {
                        instances.keys().next().cloned().unwrap_or_default()
                    } else {
                        self.err(
                            "ambiguous-follow",
                            sync.interface.span(),
                            "connection sync needs to know which VRRP state to follow",
                        )
                        .help =
                            Some("set follow = \"NAME\" to a sync group or VRRP instance".into());
                        String::new()
                    }
                }
            };
            out.sync = Some(ConnSync {
                interface: sync.interface.get_ref().clone(),
                sync_id,
                follow,
                port,
                ttl,
                max_len,
                group: sync.group.map(|g| *g.get_ref()),
            });
        }
        out
    }

    fn service(
        &mut self,
        name: &Spanned<String>,
        s: ServiceSchema,
        reals: Vec<RealSchema>,
        checks: &NamedChecks,
        used_checks: &mut BTreeSet<String>,
        vip_owners: &HashMap<IpAddr, String>,
    ) -> Option<(Service, Range<usize>)> {
        let before = self.error_count();
        let sname = name.get_ref().clone();
        // Named checks count as used even when this service is refused before its checks.
        let refs = s
            .check
            .iter()
            .chain(reals.iter().filter_map(|r| r.check.as_ref()));
        for c in refs {
            if let CheckRef::Named(n) = c.get_ref() {
                used_checks.insert(n.clone());
            }
        }
        // Identity.
        let (key, key_span) = match (&s.vip, &s.fwmark) {
            (Some(vip), None) => {
                if let Some(f) = &s.family {
                    let vip_family = Family::of(&vip.get_ref().ip);
                    if *f.get_ref() == vip_family {
                        self.warn(
                            "unused-key",
                            f.span(),
                            "`family` is only for fwmark services; a VIP's address already says it",
                        )
                        .help = Some("remove `family`".into());
                    } else {
                        self.err(
                            "mixed-family",
                            f.span(),
                            format!(
                                "family {} for the {vip_family} VIP {}",
                                f.get_ref(),
                                vip.get_ref().ip
                            ),
                        )
                        .help = Some("a VIP's address decides its family: remove `family`".into());
                    }
                }
                let Some(port) = vip.get_ref().port else {
                    self.err(
                        "missing-port",
                        vip.span(),
                        format!("service `{sname}` VIP {} has no port", vip.get_ref()),
                    )
                    .help =
                        Some("write vip = \"192.0.2.10:80\", or use fwmark for all ports".into());
                    return None;
                };
                let protocol = s.protocol.as_ref().map_or(Protocol::Tcp, |p| *p.get_ref());
                (
                    ServiceKey::Addr {
                        protocol,
                        addr: SocketAddr::new(vip.get_ref().ip, port),
                    },
                    vip.span(),
                )
            }
            (None, Some(mark)) => {
                if let Some(p) = &s.protocol {
                    self.warn(
                        "unused-key",
                        p.span(),
                        "a fwmark service has no protocol: the mark selects the packets, of any protocol",
                    )
                    .help = Some("remove `protocol` (mark only the packets you mean), or use vip = \"ADDR:PORT\"".into());
                }
                let mark_v = self.int_in(
                    mark,
                    1,
                    u32::MAX as i64,
                    "fwmark",
                    "a firewall mark is 1 to 4294967295",
                ) as u32;
                let family = s.family.as_ref().map_or(Family::Ipv4, |f| *f.get_ref());
                (
                    ServiceKey::Fwmark {
                        mark: mark_v,
                        family,
                    },
                    mark.span(),
                )
            }
            (Some(vip), Some(mark)) => {
                self.err(
                    "vip-and-fwmark",
                    mark.span(),
                    format!("service `{sname}` has both `vip` and `fwmark`"),
                )
                .and_related(vip.span(), "vip here")
                .and_help("a service is selected by address:port or by firewall mark, not both");
                return None;
            }
            (None, None) => {
                self.err(
                    "no-vip",
                    name.span(),
                    format!("service `{sname}` has neither `vip` nor `fwmark`"),
                )
                .help = Some("add vip = \"192.0.2.10:80\" (or fwmark = 1)".into());
                return None;
            }
        };
        let family = key.family();
        let protocol = match key {
            ServiceKey::Addr { protocol, .. } => Some(protocol),
            ServiceKey::Fwmark { .. } => None,
        };
        let scheduler = s
            .scheduler
            .as_ref()
            .map_or(Scheduler::Wlc, |x| *x.get_ref());
        let mut flags = BTreeSet::new();
        for f in &s.flags {
            match f.get_ref() {
                ServiceFlag::ShFallback | ServiceFlag::ShPort
                    if !matches!(scheduler, Scheduler::Sh | Scheduler::Mh) =>
                {
                    self.err(
                        "flag-needs-sh",
                        f.span(),
                        format!(
                            "this flag only works with the sh or mh scheduler, not {scheduler}"
                        ),
                    );
                }
                ServiceFlag::OnePacket if protocol != Some(Protocol::Udp) && protocol.is_some() => {
                    self.err(
                        "flag-needs-udp",
                        f.span(),
                        "one-packet scheduling is for UDP services",
                    )
                    .help = Some("set protocol = \"udp\" or remove the flag".into());
                }
                flag => {
                    flags.insert(*flag);
                }
            }
        }
        let persistence = s.persistence.as_ref().and_then(|p| {
            let timeout = p.timeout.get_ref().0;
            if timeout.subsec_nanos() != 0 || timeout.is_zero() {
                self.err(
                    "bad-persistence",
                    p.timeout.span(),
                    "the persistence timeout is whole seconds, at least 1s",
                );
                return None;
            }
            let prefix_len = match &p.netmask {
                None => family.max_prefix(),
                Some(m) if m.get_ref().dotted && family == Family::Ipv6 => {
                    self.err(
                        "bad-netmask",
                        m.span(),
                        "a dotted IPv4 netmask for an IPv6 service",
                    )
                    .help = Some("write an IPv6 prefix length, e.g. netmask = 64".into());
                    return None;
                }
                Some(m) if m.get_ref().len > family.max_prefix() => {
                    self.err(
                        "bad-netmask",
                        m.span(),
                        format!("prefix length {} is too long for {family}", m.get_ref().len),
                    )
                    .help = Some(format!("use 0 to {}", family.max_prefix()));
                    return None;
                }
                Some(m) => m.get_ref().len,
            };
            Some(Persistence {
                timeout,
                prefix_len,
            })
        });
        let default_forwarding = s
            .forwarding
            .as_ref()
            .map_or(Forwarding::Nat, |f| *f.get_ref());
        let vrrp_instance = match key {
            ServiceKey::Addr { addr, .. } => {
                let owner = vip_owners.get(&addr.ip()).cloned();
                if owner.is_none() {
                    let vip_span = s.vip.as_ref().map(|v| v.span()).unwrap_or(name.span());
                    self.err("vip-not-in-vrrp", vip_span, format!("VIP {} of service `{sname}` is not in any VRRP instance", addr.ip()))
                        .help = Some(format!(
                            "add \"{}\" to the vips of a [vrrp.instance.NAME] (a single balancer still uses one: it becomes master alone)",
                            addr.ip()
                        ));
                }
                owner
            }
            ServiceKey::Fwmark { .. } => None,
        };
        // The service's check: a named template or inline; reals may override fields.
        let base_check: Option<CheckSchema> = match &s.check {
            None => None,
            Some(c) => match c.get_ref() {
                CheckRef::Named(n) => self.named_check(n, c.span(), checks),
                CheckRef::Inline(schema) => Some((**schema).clone()),
            },
        };
        // A service check that was named but refused (or is unknown, reported above): reals'
        // overrides have nothing to complete, and must not report that as a second mistake.
        let mut base_refused = s.check.is_some() && base_check.is_none();
        // Validate the service's own check once, so its mistakes are reported even without
        // reals and not once per real.
        let base_check = match base_check {
            Some(b) => {
                let at = s.check.as_ref().map_or(name.span(), |c| c.span());
                let errors_before = self.error_count();
                let _ = self.check(Some(&b), None, at);
                let ok = self.error_count() == errors_before;
                base_refused |= !ok;
                ok.then_some(b)
            }
            None => None,
        };
        let service_port = match key {
            ServiceKey::Addr { addr, .. } => Some(addr.port()),
            ServiceKey::Fwmark { .. } => None,
        };
        let mut out_reals: Vec<Real> = Vec::new();
        let mut seen: HashMap<SocketAddr, Range<usize>> = HashMap::new();
        for r in reals {
            let ep = *r.address.get_ref();
            let forwarding = r
                .forwarding
                .as_ref()
                .map_or(default_forwarding, |f| *f.get_ref());
            let port = match (ep.port, forwarding, service_port) {
                (Some(p), Forwarding::Dr | Forwarding::Tun, Some(sp)) if p != sp => {
                    self.err("real-port-mismatch", r.address.span(), format!("{forwarding} real {ep} has port {p}, but {forwarding} cannot change the port of service port {sp}"))
                        .help = Some(format!("{forwarding} forwards packets unchanged: write \"{}\" (port {sp}) or use forwarding = \"nat\"", Endpoint { ip: ep.ip, port: None }));
                    continue;
                }
                (Some(p), _, _) => p,
                (None, _, Some(sp)) => sp,
                // fwmark services: port 0 keeps the packet's destination port.
                (None, _, None) => 0,
            };
            let addr = SocketAddr::new(ep.ip, port);
            if Family::of(&ep.ip) != family && forwarding != Forwarding::Tun {
                self.err("mixed-family", r.address.span(), format!("{} real {} behind an {family} service", Family::of(&ep.ip), ep.ip))
                    .help = Some("the kernel forwards to another address family only in tunnel mode: use a real of the service's family or forwarding = \"tun\"".into());
                continue;
            }
            if let Some(first) = seen.get(&addr) {
                let first = first.clone();
                self.err(
                    "duplicate-real",
                    r.address.span(),
                    format!("real {addr} appears twice in service `{sname}`"),
                )
                .and_related(first, "first here")
                .and_help("the kernel holds one destination per address and port in a service");
                continue;
            }
            seen.insert(addr, r.address.span());
            let weight = r.weight.as_ref().map_or(1, |w| {
                self.int_in(
                    w,
                    0,
                    i32::MAX as i64,
                    "weight",
                    "a weight is 0 (no new connections) or more",
                ) as u32
            });
            let upper = r.upper_threshold.as_ref().map_or(0, |w| {
                self.int_in(
                    w,
                    0,
                    i32::MAX as i64,
                    "upper_threshold",
                    "a connection limit, 0 for none",
                ) as u32
            });
            let lower = r.lower_threshold.as_ref().map_or(0, |w| {
                self.int_in(
                    w,
                    0,
                    i32::MAX as i64,
                    "lower_threshold",
                    "a connection count, 0 for none",
                ) as u32
            });
            if upper > 0 && lower > upper {
                let span = r
                    .lower_threshold
                    .as_ref()
                    .map(|x| x.span())
                    .unwrap_or(r.address.span());
                self.err(
                    "bad-threshold",
                    span,
                    format!("lower_threshold {lower} is above upper_threshold {upper}"),
                )
                .help = Some(
                    "the real takes new connections again when it drops below lower_threshold"
                        .into(),
                );
            }
            let check = match r.check.as_ref().map(|c| (c.get_ref(), c.span())) {
                None => self.check(base_check.as_ref(), None, r.address.span()),
                // A named check replaces the service's whole.
                Some((CheckRef::Named(n), span)) => self
                    .named_check(n, span.clone(), checks)
                    .and_then(|c| self.check(Some(&c), None, span)),
                // Overrides of a refused service check: nothing to check them against.
                Some((CheckRef::Inline(_), _)) if base_refused => None,
                Some((CheckRef::Inline(over), span)) => self.check(
                    base_check.as_ref(),
                    Some(&Spanned::new(span, (**over).clone())),
                    r.address.span(),
                ),
            };
            if let Some(c) = &check {
                if port == 0 && c.port.is_none() && !matches!(c.kind, CheckKind::Exec { .. }) {
                    // Point at the check the fix belongs in: the real's own, else the service's.
                    let span = r
                        .check
                        .as_ref()
                        .map(|c| c.span())
                        .or_else(|| s.check.as_ref().map(|c| c.span()))
                        .unwrap_or(r.address.span());
                    self.err(
                        "check-needs-port",
                        span,
                        "the reals of a fwmark service have no port, so this check has none to connect to",
                    )
                    .help = Some("set port = N in the check (e.g. port = 443)".into());
                }
            }
            out_reals.push(Real {
                addr,
                weight,
                forwarding,
                upper_threshold: upper,
                lower_threshold: lower,
                check,
            });
        }
        if out_reals.is_empty() && self.error_count() == before {
            self.warn("no-reals", name.span(), format!("service `{sname}` has no real servers"))
                .help = Some(format!("add [[service.{sname}.real]] entries; until then only the sorry server (if any) answers"));
        }
        let sorry = s.sorry_server.as_ref().and_then(|ss| {
            let ep = *ss.get_ref();
            if Family::of(&ep.ip) != family {
                self.err(
                    "mixed-family",
                    ss.span(),
                    format!(
                        "{} sorry server for an {family} service",
                        Family::of(&ep.ip)
                    ),
                );
                return None;
            }
            let forwarding = s
                .sorry_forwarding
                .as_ref()
                .map_or(default_forwarding, |f| *f.get_ref());
            if let (Some(p), Forwarding::Dr | Forwarding::Tun, Some(sp)) =
                (ep.port, forwarding, service_port)
            {
                if p != sp {
                    self.err("real-port-mismatch", ss.span(), format!("{forwarding} sorry server {ep} has port {p}, but {forwarding} cannot change the port of service port {sp}"))
                        .help = Some(format!("{forwarding} forwards packets unchanged: write \"{}\" (port {sp}) or use sorry_forwarding = \"nat\"", Endpoint { ip: ep.ip, port: None }));
                    return None;
                }
            }
            // Port 0 (a fwmark service's sorry server without one) keeps the packet's port.
            let port = ep.port.or(service_port).unwrap_or(0);
            Some(SorryServer {
                addr: SocketAddr::new(ep.ip, port),
                forwarding,
            })
        });
        if let (Some(q), ServiceKey::Fwmark { .. }) = (&s.quorum, key) {
            self.warn(
                "quorum-without-vip",
                q.min_weight.span(),
                "a fwmark service holds no VIP: its quorum never lowers a VRRP priority",
            )
            .help = Some("its quorum is only shown in status and logs; quorum_priority_drop acts on address services".into());
        }
        let quorum = s.quorum.as_ref().map(|q| {
            let min_weight = self.int_in(&q.min_weight, 1, i32::MAX as i64, "min_weight", "the minimum total weight of healthy reals, at least 1") as u32;
            let hysteresis = q.hysteresis.as_ref().map_or(0, |h| self.int_in(h, 0, i32::MAX as i64, "hysteresis", "0 or more") as u32);
            let total: u64 = out_reals.iter().map(|r| r.weight as u64).sum();
            if (min_weight as u64 + hysteresis as u64) > total && !out_reals.is_empty() {
                self.err("quorum-unreachable", q.min_weight.span(), format!("quorum {min_weight} (+{hysteresis} hysteresis) can never be met: the reals' weights add up to {total}"))
                    .help = Some("lower min_weight or add reals".into());
            }
            Quorum { min_weight, hysteresis }
        });
        if self.error_count() != before {
            return None;
        }
        Some((
            Service {
                name: sname,
                key,
                scheduler,
                flags,
                persistence,
                sorry,
                quorum,
                on_failure: s.on_failure.unwrap_or_default(),
                vrrp_instance,
                reals: out_reals,
            },
            key_span,
        ))
    }

    /// The `[check.NAME]` a service or real names; `None` (reported) if there is none, or
    /// (already reported) if it was refused.
    fn named_check(
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

    /// Resolves the check of one real: the service's definition with the real's overrides.
    fn check(
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
        let kind_v = *kind.get_ref();
        let before = self.error_count();
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
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
        let check_kind = match kind_v {
            T::None => return None,
            T::Tcp => CheckKind::Tcp {
                half_open: merged.half_open.as_ref().is_some_and(|v| *v.get_ref()),
            },
            T::Http | T::Https => {
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
                        self.err("bad-digest", d.span(), "a body digest is 32 hexadecimal digits (MD5, as keepalived's genhash prints)");
                    }
                }
                let ca_pem = merged.ca_pem.as_ref().filter(|_| kind_v == T::Https).and_then(|p| {
                    match super::pem::ca_certificates(p.get_ref()) {
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
            T::Udp => {
                let mut hex = |v: &Option<Spanned<String>>, key: &str| {
                    let v = v.as_ref()?;
                    match parse_hex(v.get_ref()) {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            self.err("bad-hex", v.span(), format!("{key}: {e}")).help = Some(
                                "write bytes as pairs of hexadecimal digits, spaces allowed: \"0a ff 00\"".into(),
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
            T::Dns => {
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
                if !["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"]
                    .contains(&qtype.as_str())
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
                CheckKind::Dns {
                    query,
                    query_type: qtype,
                }
            }
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
            T::Mysql | T::Pgsql => {
                if let (Some(p), None) = (&merged.password, &merged.user) {
                    self.err(
                        "password-without-user",
                        p.span(),
                        "a password without `user`: the check would log in as lbd-check",
                    )
                    .help =
                        Some("add user = \"NAME\" for the account the password belongs to".into());
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
        };
        let dur = |v: &Option<Spanned<ConfigDuration>>| v.as_ref().map(|d| d.get_ref().0);
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

    /// An integer within bounds; on error reports it and returns the low bound.
    fn int_in(&mut self, v: &Spanned<i64>, low: i64, high: i64, what: &str, help: &str) -> i64 {
        let n = *v.get_ref();
        if n < low || n > high {
            self.err(
                "out-of-range",
                v.span(),
                format!("{what} {n} is out of range {low} to {high}"),
            )
            .help = Some(help.to_string());
            low
        } else {
            n
        }
    }
}

/// Per-real override: every field the real sets replaces the service's. A real that changes
/// the check's `type` inherits only the keys of every type (timing, port, addresses): the
/// service's type-specific keys (an HTTP `path`...) mean nothing to the real's type.
/// Whether `value` (or anything inside it) spans byte `pos`.
fn holds(value: &Spanned<DeValue<'_>>, pos: usize) -> bool {
    if value.span().contains(&pos) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .any(|(k, v)| k.span().contains(&pos) || holds(v, pos)),
        DeValue::Array(a) => a.iter().any(|v| holds(v, pos)),
        _ => false,
    }
}

/// The key and the expected keys of serde's "unknown field `x`, expected one of `a`, `b`"
/// (or "expected `a` or `b`", "expected `a`", "there are no fields").
fn unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((key.to_owned(), expected))
}

/// The help for a reference to a name that nobody declared: the nearest declared name when
/// one is close enough to be a misspelling, else what to do.
fn unknown_name_help<'a>(
    name: &str,
    declared: impl IntoIterator<Item = &'a String>,
    otherwise: &str,
) -> String {
    match super::suggest::nearest(name, declared.into_iter().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`?"),
        None => otherwise.to_string(),
    }
}

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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A name Linux takes for an interface: 1 to 15 bytes, no `/`, `:` or white space, not `.`
/// or `..`.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c == ':')
}

pub(crate) fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
