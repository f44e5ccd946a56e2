//! From source text to a validated [`Config`], collecting every problem at once.
//!
//! Stage 1 parses the TOML into a spanned tree. Stage 2 deserializes each item (a service, a
//! real, an instance...) on its own, so one typo does not hide the next. Stage 3 checks what
//! the kernel or the network would reject later, with spans pointing at the values involved.
//!
//! This module holds the entry points, the `Validator` that collects the diagnostics, stages 1
//! and 2, and the start of stage 3. The rest of stage 3 is split by section: `node`, `vrrp`
//! (instances, virtual MAC links, sync groups), `ipvs` (kernel settings, connection sync),
//! `service` (services and their reals) and `check` (named checks, resolving and merging
//! checks).

use super::diag::{ConfigError, Diagnostic, Severity};
use super::layout::Segment;
use super::model::*;
use super::schema::*;
use super::types::*;
use check::NamedChecks;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod bgp;
mod check;
mod ipvs;
mod network;
mod node;
pub use node::epoch_seconds;
mod quick;
mod service;
mod vrrp;

/// A config that passed validation, and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
    pub file: String,
    /// Shared: the loader keeps the accepted config and hands out copies of it.
    pub source_text: Arc<str>,
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
    parse_keeping_context(file, src.to_string()).0
}

/// [`parse`], and what validating one of its services again needs from the rest of the file
/// (when the file is valid). The text is kept in the result, not copied.
pub(super) fn parse_keeping_context(
    file: &str,
    src: String,
) -> (Result<Loaded, ConfigError>, Option<ServiceContext>) {
    let mut cx = Validator::default();
    let config = cx.config(&src);
    let context = cx.context.take();
    (finish(file, src, config, cx.diags), context)
}

fn finish(
    file: &str,
    src: String,
    config: Option<Config>,
    mut diags: Vec<Diagnostic>,
) -> Result<Loaded, ConfigError> {
    // A service's check is resolved again for each of its reals, and a named check once on
    // its own and again where it is used: one mistake is reported once.
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.span.clone(), d.message.clone())));
    diags.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.severity));
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    match config {
        Some(mut config) if !failed => {
            let text: std::sync::Arc<str> = src.into();
            config.version = Version::of(text.clone());
            Ok(Loaded {
                config,
                warnings: diags,
                file: file.to_string(),
                source_text: text,
            })
        }
        _ => Err(ConfigError {
            file: file.to_string(),
            source_text: src,
            diagnostics: diags,
        }),
    }
}

/// Reads and validates a config file.
pub fn load(path: &std::path::Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = read_text(path, &file)?;
    parse(&file, &text)
}

/// The text of a config file; `file` names it in the error.
pub(super) fn read_text(path: &std::path::Path, file: &str) -> Result<String, ConfigError> {
    // Named `error` like the other emitters, so the doc test finds its codes.
    let error = |code, message| ConfigError {
        file: file.to_string(),
        source_text: String::new(),
        diagnostics: vec![Diagnostic::error(code, None, message)],
    };
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            error(
                "not-utf8",
                format!(
                    "the file is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        }),
        Err(e) => Err(error("unreadable", format!("cannot read the file: {e}"))),
    }
}

const TOP_LEVEL_HELP: &str =
    "top-level sections are [node], [release], [network], [ipvs], [bgp], [vrrp.instance.NAME], [vrrp.sync_group.NAME], [check.NAME] and [service.NAME]";

/// The validation of one config text: every diagnostic found so far.
#[derive(Default)]
struct Validator {
    diags: Vec<Diagnostic>,
    /// Set by stage 3 for [`parse_keeping_context`].
    context: Option<ServiceContext>,
    /// The file's segments, when the fast path read them.
    segments: Option<Vec<Segment>>,
}

/// What the validation of a service takes from outside its own tables: the named checks and
/// which VRRP instance holds each VIP. Kept by the incremental loader, which validates an
/// edited service again on its own when nothing else in the file changed.
pub(super) struct ServiceContext {
    checks: NamedChecks,
    vip_owners: HashMap<IpAddr, String>,
    bgp: bgp::BgpContext,
    /// The named checks each service uses (a service that uses none is not listed).
    pub uses: BTreeMap<String, BTreeSet<String>>,
    /// The file's segments, when validation read them (each service in one place): for the loader.
    pub segments: Option<Vec<Segment>>,
}

/// A service validated on its own, and the named checks it uses.
pub(super) struct LoneService {
    pub service: Service,
    pub uses: BTreeSet<String>,
}

/// Validates the tables of one `[service.NAME]`, given alone as `text`, against `context`.
/// `None` when the text holds anything else or validation reports anything, error or
/// warning: the caller then validates the whole file, which says what and where.
pub(super) fn service_alone(
    context: &ServiceContext,
    name: &str,
    text: &str,
) -> Option<LoneService> {
    if !valid_name(name) {
        return None;
    }
    let mut cx = Validator::default();
    let mut raw = Raw::default();
    match quick::read_service(text, 0..text.len(), name) {
        Some(service) => raw.services.push(service),
        None => {
            let root = DeTable::parse(text).ok()?;
            let root = root.get_ref();
            let (key, section) = root.iter().next().filter(|_| root.len() == 1)?;
            let DeValue::Table(services) = section.get_ref() else {
                return None;
            };
            let (item_name, item) = services.iter().next().filter(|_| services.len() == 1)?;
            if key.get_ref() != "service" || item_name.get_ref() != name {
                return None;
            }
            cx.gather_service(
                Spanned::new(item_name.span(), name.to_string()),
                item,
                &mut raw,
            );
        }
    }
    let (sname, schema, reals) = raw.services.pop()?;
    let mut uses = BTreeSet::new();
    let (service, _) = cx.service(
        &sname,
        schema,
        reals,
        &context.checks,
        &mut uses,
        &context.vip_owners,
        context.bgp,
    )?;
    cx.diags.is_empty().then_some(LoneService { service, uses })
}

/// Raw items gathered in stage 2, with the spans of their names.
#[derive(Default)]
struct Raw {
    node: NodeSchema,
    release: Option<ReleaseSchema>,
    /// `None` without a `[network]` section: init keeps the boot network as it is.
    network: Option<network::RawNetwork>,
    ipvs: IpvsSchema,
    bgp: Option<bgp::RawBgp>,
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

impl Validator {
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
        let raw = match quick::gather(src) {
            Some((raw, segments)) => {
                self.segments = Some(segments);
                raw
            }
            None => self.gather_with_toml(src)?,
        };
        let before = self.error_count();
        let config = self.build(raw);
        (self.error_count() == before).then_some(config).flatten()
    }

    /// Stages 1 and 2 with the toml crate alone, reporting every problem of the file.
    fn gather_with_toml(&mut self, src: &str) -> Option<Raw> {
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
        Some(self.gather(root.get_ref()))
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
                "release" => raw.release = self.de(value),
                "bgp" => self.gather_bgp(value, &mut raw),
                "vrrp" => self.gather_vrrp(value, &mut raw),
                "network" => raw.network = Some(self.gather_network(value)),
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
                        self.gather_service(name, item, &mut raw);
                    }
                }
                other => {
                    let help = match super::suggest::nearest(
                        other,
                        [
                            "node", "release", "network", "ipvs", "bgp", "vrrp", "check", "service",
                        ],
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

    /// `[vrrp]`: its instances and sync groups.
    fn gather_vrrp(&mut self, value: &Spanned<DeValue<'_>>, raw: &mut Raw) {
        let Some(table) = self.table(value, "[vrrp]") else {
            return;
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
                        } else if let Ok(v) =
                            VipsOnly::deserialize(toml::de::ValueDeserializer::from(item.clone()))
                        {
                            raw.declared
                                .refused_instance_vips
                                .extend(v.vips.iter().map(|p| (p.addr, name.get_ref().clone())));
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
                    let help = match super::suggest::nearest(other, ["instance", "sync_group"]) {
                        Some(near) => format!("did you mean `vrrp.{near}`?"),
                        None => {
                            "[vrrp] holds [vrrp.instance.NAME] and [vrrp.sync_group.NAME]".into()
                        }
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

    /// One `[service.NAME]`: the service's own keys, then each of its `[[...real]]` on its own.
    fn gather_service(
        &mut self,
        name: Spanned<String>,
        item: &Spanned<DeValue<'_>>,
        raw: &mut Raw,
    ) {
        let Some(table) = self.table(item, "a service") else {
            return;
        };
        let mut rest = DeTable::new();
        for (k, v) in table.iter().filter(|(k, _)| k.get_ref() != "real") {
            rest.insert(k.clone(), v.clone());
        }
        let service = self.de::<ServiceSchema>(&Spanned::new(item.span(), DeValue::Table(rest)));
        let mut reals = Vec::new();
        if let Some((_, real_value)) = table.iter().find(|(k, _)| k.get_ref() == "real") {
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
    fn build(&mut self, raw: Raw) -> Option<Config> {
        let network_refs = network::references(&raw);
        let network = raw.network.map(|n| self.network(n, &network_refs));
        let node = self.node(raw.node);
        let release = raw.release.and_then(|r| self.release(r));
        let bgp_context = bgp::BgpContext {
            section: raw.bgp.is_some(),
            peers: raw.bgp.as_ref().is_some_and(|b| b.declared_peers > 0),
            ipv6_peers: raw
                .bgp
                .as_ref()
                .is_some_and(|b| b.peers.iter().any(|(_, p)| p.address.get_ref().is_ipv6())),
        };
        let bgp_span = raw.bgp.as_ref().map(|b| b.span.clone());
        let bgp = raw.bgp.and_then(|b| self.bgp(b, network.as_ref()));
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
        // In name order: built into the map at once, after.
        let mut services: Vec<(String, Arc<Service>)> = Vec::with_capacity(raw.services.len());
        // Where each kernel key was first given (which service: found again on a duplicate).
        let mut keys: HashMap<ServiceKey, Range<usize>> = HashMap::new();
        let mut real_families = false;
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, schema, reals) in raw.services {
            let mut service_uses = BTreeSet::new();
            let validated = self.service(
                &name,
                schema,
                reals,
                &checks,
                &mut service_uses,
                &vip_owners,
                bgp_context,
            );
            used_checks.extend(service_uses.iter().cloned());
            if !service_uses.is_empty() {
                uses.insert(name.get_ref().clone(), service_uses);
            }
            if let Some((service, key_span)) = validated {
                if service
                    .reals
                    .iter()
                    .any(|r| Family::of(&r.addr.ip()) != service.key.family())
                {
                    real_families = true;
                }
                if let Some(other_span) = keys.get(&service.key) {
                    let other = services
                        .iter()
                        .find(|(_, s)| s.key == service.key)
                        .map_or("?", |(_, s)| s.name.as_str());
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
                keys.insert(service.key, key_span);
                services.push((name.into_inner(), Arc::new(service)));
            }
        }
        let services: BTreeMap<_, _> = services.into_iter().collect();
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
        let mut ipvs = self.ipvs(raw.ipvs, &instances, &sync_groups, declared, real_families);
        ipvs::default_kernel_settings(&mut ipvs, services.values().map(|s| s.announce));
        self.bgp_for_services(bgp.as_ref(), bgp_span, &services);
        self.context = Some(ServiceContext {
            checks,
            vip_owners,
            bgp: bgp_context,
            uses,
            segments: self.segments.take(),
        });
        Some(Config {
            node,
            release,
            network,
            ipvs,
            vrrp_instances: instances.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            sync_groups,
            bgp,
            services: Arc::new(services),
            // Set with the text it is of (see `finish`).
            version: Version::default(),
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
