//! The inventory: which machines exist (by MAC), what each is called, and the values its
//! config is rendered with. Pure: text in, [`Inventory`] or every problem (file:line:col) out.
//!
//! ```toml
//! [boot]                      # optional
//! cmdline = "lb.poll=10s"     # kernel command line words for every node
//! console = "ttyS1,115200n8"  # serial console for every node (a node may set its own)
//!
//! [defaults]                  # optional: values every node has unless it sets its own
//! ext_if = "eth0"
//!
//! [unknown]                   # optional: what a MAC not listed below gets; without this
//! hostname = "spare"          # section an unknown MAC gets a 404 (and a log line)
//! priority = 50
//!
//! [[node]]
//! mac = "52:54:00:00:00:01"   # required, unique
//! hostname = "lb1"            # required, unique
//! cmdline = "ip=dhcp"         # optional, this node's extra kernel command line words
//! console = "ttyS0,9600"      # optional, this node's serial console (over [boot] console)
//! priority = 150              # anything else: a value for the template, {{ node.priority }}
//! ```
//!
//! Values are strings, integers, booleans or arrays of those. Strings may not hold `"`, `\` or
//! control characters, so a value can never break the TOML of the config it is put into.
//! Every node also has `node.mac` (`aa:bb:cc:dd:ee:ff`) and `node.mac_hyphen`.

use crate::console::{self, SerialConsole};
use crate::mac::Mac;
use lbd::config::{ConfigError, Diagnostic, Severity};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A value a template can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
}

impl Value {
    /// The text that replaces a placeholder: strings as they are (the template writes the
    /// quotes), everything else as a TOML literal.
    pub fn placeholder_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.toml_literal(),
        }
    }

    /// The value as a TOML literal: strings quoted, arrays inline.
    pub fn toml_literal(&self) -> String {
        match self {
            Value::Str(s) => format!("\"{s}\""),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => {
                let inner: Vec<String> = items.iter().map(Value::toml_literal).collect();
                format!("[{}]", inner.join(", "))
            }
        }
    }
}

/// Values by key, as a template sees them under `node.`.
pub type Values = BTreeMap<String, Value>;

/// One machine of the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    pub mac: Mac,
    pub hostname: String,
    /// Extra kernel command line words for this node (after `[boot] cmdline`).
    pub cmdline: String,
    /// This node's own serial console (over `[boot] console`).
    pub console: Option<SerialConsole>,
    /// Everything the template can use: `[defaults]`, then the node's own keys, then `mac`,
    /// `mac_hyphen` and `hostname`.
    pub values: Values,
    /// Where the node's table is, for messages.
    pub span: Range<usize>,
}

/// What an unknown MAC gets when the inventory has an `[unknown]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownProfile {
    pub hostname: String,
    pub cmdline: String,
    pub console: Option<SerialConsole>,
    /// `[defaults]` then `[unknown]`; `mac`, `mac_hyphen` are added per request.
    pub values: Values,
}

impl UnknownProfile {
    /// The node entry this profile gives to `mac`.
    pub fn entry_for(&self, mac: Mac) -> NodeEntry {
        let mut values = self.values.clone();
        add_identity(&mut values, mac, &self.hostname);
        NodeEntry {
            mac,
            hostname: self.hostname.clone(),
            cmdline: self.cmdline.clone(),
            console: self.console.clone(),
            values,
            span: 0..0,
        }
    }
}

/// A validated inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub file: String,
    pub source_text: String,
    /// Kernel command line words for every node.
    pub boot_cmdline: String,
    /// The serial console of every node that does not name its own.
    pub boot_console: Option<SerialConsole>,
    pub nodes: Vec<NodeEntry>,
    pub unknown: Option<UnknownProfile>,
}

impl Inventory {
    /// The node with this MAC, if listed.
    pub fn node(&self, mac: Mac) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.mac == mac)
    }
}

/// Keys with a meaning of their own in a node table.
const NODE_KEYS: &str = "mac and hostname";
const SECTIONS_HELP: &str =
    "an inventory has [boot], [defaults], [unknown] and [[node]] entries (see pxe/README.md)";

/// Parses and validates an inventory. `file` is only used in messages.
pub fn parse(file: &str, src: &str) -> Result<Inventory, ConfigError> {
    let mut reader = InventoryReader { diags: Vec::new() };
    let inv = reader.inventory(file, src);
    let mut diags = reader.diags;
    diags.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.severity));
    match inv {
        Some(inv) if !diags.iter().any(|d| d.severity == Severity::Error) => Ok(inv),
        _ => Err(ConfigError {
            file: file.to_string(),
            source_text: src.to_string(),
            diagnostics: diags,
        }),
    }
}

/// Reads and validates an inventory file.
pub fn load(path: &std::path::Path) -> Result<Inventory, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse(&file, &src),
        Err(e) => Err(ConfigError {
            file,
            source_text: String::new(),
            diagnostics: vec![Diagnostic::error(
                "unreadable",
                None,
                format!("cannot read the inventory: {e}"),
            )],
        }),
    }
}

fn add_identity(values: &mut Values, mac: Mac, hostname: &str) {
    values.insert("mac".into(), Value::Str(mac.to_string()));
    values.insert("mac_hyphen".into(), Value::Str(mac.hyphenated()));
    values.insert("hostname".into(), Value::Str(hostname.to_string()));
}

/// Reads an inventory's TOML into an [`Inventory`], collecting every problem it finds as a
/// diagnostic instead of stopping at the first.
struct InventoryReader {
    diags: Vec<Diagnostic>,
}

type Table<'a> = DeTable<'a>;

/// The top-level sections as read in the first pass: `[unknown]` and the `[[node]]` tables are
/// only read once `[defaults]` is known, wherever it stands in the file.
struct Sections<'a, 'i> {
    boot_cmdline: String,
    boot_console: Option<SerialConsole>,
    defaults: Values,
    unknown_table: Option<&'a Spanned<DeValue<'i>>>,
    node_items: Vec<&'a Spanned<DeValue<'i>>>,
}

/// The keys of a node (or `[unknown]`) table with a meaning of their own, and its values.
struct NodeKeys {
    hostname: String,
    cmdline: String,
    console: Option<SerialConsole>,
    values: Values,
}

/// Where each MAC and hostname was first listed, to point at both places of a duplicate.
#[derive(Default)]
struct FirstListed {
    macs: BTreeMap<Mac, Range<usize>>,
    hostnames: BTreeMap<String, Range<usize>>,
}

impl InventoryReader {
    fn err(&mut self, code: &'static str, span: Range<usize>, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(code, Some(span), msg));
    }

    fn err_help(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::error(code, Some(span), msg).help(help));
    }

    fn inventory(&mut self, file: &str, src: &str) -> Option<Inventory> {
        let root = match DeTable::parse(src) {
            Ok(root) => root,
            Err(e) => {
                self.err_help(
                    "toml-syntax",
                    e.span().unwrap_or(0..0),
                    e.message().trim().to_string(),
                    "this is not valid TOML; see https://toml.io",
                );
                return None;
            }
        };
        let sections = self.sections(root.get_ref());
        let unknown = sections
            .unknown_table
            .and_then(|v| self.unknown_profile(v, &sections.defaults));
        let nodes = self.nodes(&sections.node_items, &sections.defaults);
        Some(Inventory {
            file: file.to_string(),
            source_text: src.to_string(),
            boot_cmdline: sections.boot_cmdline,
            boot_console: sections.boot_console,
            nodes,
            unknown,
        })
    }

    /// The first pass over the top level: `[boot]` and `[defaults]` read, `[unknown]` and the
    /// `[[node]]` tables set aside, anything else refused.
    fn sections<'a, 'i>(&mut self, root: &'a Table<'i>) -> Sections<'a, 'i> {
        let mut sections = Sections {
            boot_cmdline: String::new(),
            boot_console: None,
            defaults: Values::new(),
            unknown_table: None,
            node_items: Vec::new(),
        };
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "boot" => self.boot_section(
                    value,
                    &mut sections.boot_cmdline,
                    &mut sections.boot_console,
                ),
                "defaults" => self.defaults_section(value, &mut sections.defaults),
                "unknown" => {
                    if self.table(value, "[unknown]").is_some() {
                        sections.unknown_table = Some(value);
                    }
                }
                "node" => match value.get_ref() {
                    DeValue::Array(items) => sections.node_items.extend(items.iter()),
                    _ => self.err_help(
                        "not-a-list",
                        value.span(),
                        "`node` must be a list of tables",
                        "write each machine as a [[node]] table",
                    ),
                },
                other => self.err_help(
                    "unknown-section",
                    key.span(),
                    format!("unknown section `{other}`"),
                    SECTIONS_HELP,
                ),
            }
        }
        sections
    }

    /// `[boot]`: `cmdline` into `boot_cmdline`, `console` into `boot_console`.
    fn boot_section(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        boot_cmdline: &mut String,
        boot_console: &mut Option<SerialConsole>,
    ) {
        let Some(t) = self.table(value, "[boot]") else {
            return;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "cmdline" => {
                    if let Some(c) = self.cmdline(v) {
                        *boot_cmdline = c;
                    }
                }
                "console" => *boot_console = self.console(v),
                other => self.err_help(
                    "unknown-key",
                    k.span(),
                    format!("unknown key `boot.{other}`"),
                    "[boot] has two keys: cmdline and console",
                ),
            }
        }
    }

    /// `[defaults]`: template values into `defaults`; the per-node keys are refused.
    fn defaults_section(&mut self, value: &Spanned<DeValue<'_>>, defaults: &mut Values) {
        let Some(t) = self.table(value, "[defaults]") else {
            return;
        };
        for (k, v) in t.iter() {
            if matches!(
                k.get_ref().as_ref(),
                "mac" | "hostname" | "cmdline" | "console"
            ) {
                self.err_help(
                    "per-node-key",
                    k.span(),
                    format!("`{}` cannot have a default", k.get_ref()),
                    "mac and hostname are set per [[node]]; kernel words and the console for every node go in [boot] cmdline and [boot] console",
                );
            } else if let Some((name, val)) = self.named_value(k, v) {
                defaults.insert(name, val);
            }
        }
    }

    /// `[unknown]` over the defaults: what a MAC not listed gets.
    fn unknown_profile(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        defaults: &Values,
    ) -> Option<UnknownProfile> {
        let t = v.get_ref().as_table()?;
        let keys = self.node_keys(t, v.span(), false, "[unknown]")?;
        let mut values = defaults.clone();
        values.extend(keys.values);
        values.insert("hostname".into(), Value::Str(keys.hostname.clone()));
        Some(UnknownProfile {
            hostname: keys.hostname,
            cmdline: keys.cmdline,
            console: keys.console,
            values,
        })
    }

    /// The `[[node]]` tables that are valid and not duplicates of an earlier one.
    fn nodes(&mut self, items: &[&Spanned<DeValue<'_>>], defaults: &Values) -> Vec<NodeEntry> {
        let mut first = FirstListed::default();
        items
            .iter()
            .filter_map(|item| self.node(item, defaults, &mut first))
            .collect()
    }

    /// One `[[node]]` table over the defaults, if valid and its MAC and hostname are new.
    fn node(
        &mut self,
        item: &Spanned<DeValue<'_>>,
        defaults: &Values,
        first: &mut FirstListed,
    ) -> Option<NodeEntry> {
        let t = self.table(item, "[[node]]")?;
        let NodeKeys {
            hostname,
            cmdline,
            console,
            values: own,
        } = self.node_keys(t, item.span(), true, "[[node]]")?;
        let v = t.get("mac")?;
        let mac_span = v.span();
        // An invalid MAC was reported by node_keys.
        let mac = v
            .get_ref()
            .as_str()
            .unwrap_or_default()
            .parse::<Mac>()
            .ok()?;
        let host_span = t.get("hostname").map_or(item.span(), |v| v.span());
        if !self.first_listing(first, mac, mac_span, &hostname, host_span) {
            return None;
        }
        let mut values = defaults.clone();
        values.extend(own);
        add_identity(&mut values, mac, &hostname);
        Some(NodeEntry {
            mac,
            hostname,
            cmdline,
            console,
            values,
            span: item.span(),
        })
    }

    /// Records a node's MAC and hostname; false (and an error pointing at both places) if
    /// either was listed before.
    fn first_listing(
        &mut self,
        first: &mut FirstListed,
        mac: Mac,
        mac_span: Range<usize>,
        hostname: &str,
        host_span: Range<usize>,
    ) -> bool {
        if let Some(earlier) = first.macs.get(&mac) {
            self.diags.push(
                Diagnostic::error(
                    "duplicate-mac",
                    Some(mac_span),
                    format!("MAC {mac} is listed twice"),
                )
                .related(earlier.clone(), "first listed here")
                .help("each machine appears once; remove one of the entries"),
            );
            return false;
        }
        if let Some(earlier) = first.hostnames.get(hostname) {
            self.diags.push(
                Diagnostic::error(
                    "duplicate-hostname",
                    Some(host_span),
                    format!("hostname `{hostname}` is used twice"),
                )
                .related(earlier.clone(), "first used here")
                .help("every node needs its own hostname"),
            );
            return false;
        }
        first.macs.insert(mac, mac_span);
        first.hostnames.insert(hostname.to_string(), host_span);
        true
    }

    fn table<'a, 'i>(
        &mut self,
        value: &'a Spanned<DeValue<'i>>,
        what: &str,
    ) -> Option<&'a Table<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(
                    "not-a-table",
                    value.span(),
                    format!("{what} must be a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// The keys of a `[[node]]` or `[unknown]` table: hostname, cmdline, console and the
    /// other values. `mac` is required (and checked) for nodes and refused for `[unknown]`.
    fn node_keys(
        &mut self,
        t: &Table<'_>,
        span: Range<usize>,
        needs_mac: bool,
        what: &str,
    ) -> Option<NodeKeys> {
        let before = self.error_count();
        let mut hostname = None;
        let mut cmdline = String::new();
        let mut console = None;
        let mut values = Values::new();
        let mut has_mac = false;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "mac" if needs_mac => {
                    has_mac = true;
                    match v.get_ref().as_str() {
                        Some(text) => {
                            if let Err(e) = text.parse::<Mac>() {
                                self.err("invalid-mac", v.span(), e.to_string());
                            }
                        }
                        None => self.err(
                            "invalid-mac",
                            v.span(),
                            format!(
                                "`mac` must be a string such as \"52:54:00:12:34:56\", found {}",
                                v.get_ref().type_str()
                            ),
                        ),
                    }
                }
                "mac" => self.err_help(
                    "per-node-key",
                    k.span(),
                    format!("{what} cannot have a `mac`"),
                    "the MAC of an unknown machine is the one that asks: use {{ node.mac }}",
                ),
                "hostname" => hostname = self.hostname(v),
                "cmdline" => {
                    if let Some(c) = self.cmdline(v) {
                        cmdline = c;
                    }
                }
                "console" => console = self.console(v),
                "mac_hyphen" => self.err_help(
                    "reserved-key",
                    k.span(),
                    "`mac_hyphen` is computed from `mac` and cannot be set",
                    "remove it; {{ node.mac_hyphen }} is always available",
                ),
                _ => {
                    if let Some((name, val)) = self.named_value(k, v) {
                        values.insert(name, val);
                    }
                }
            }
        }
        if needs_mac && !has_mac {
            self.err_help(
                "missing-key",
                span.clone(),
                format!("{what} without `mac`"),
                format!("a node needs {NODE_KEYS} (cmdline and console are optional)"),
            );
        }
        if hostname.is_none() && !t.contains_key("hostname") {
            self.err_help(
                "missing-key",
                span,
                format!("{what} without `hostname`"),
                "add hostname = \"lb1\" (letters, digits and `-`)",
            );
        }
        if self.error_count() > before {
            return None;
        }
        Some(NodeKeys {
            hostname: hostname?,
            cmdline,
            console,
            values,
        })
    }

    /// A `console` setting: a serial console the kernel takes, or an error at its value.
    fn console(&mut self, v: &Spanned<DeValue<'_>>) -> Option<SerialConsole> {
        let Some(text) = v.get_ref().as_str() else {
            self.err_help(
                "invalid-console",
                v.span(),
                format!(
                    "`console` must be a string such as \"ttyS1,115200n8\", found {}",
                    v.get_ref().type_str()
                ),
                console::FORM_HELP,
            );
            return None;
        };
        match text.parse() {
            Ok(c) => Some(c),
            Err(e) => {
                self.err_help(
                    "invalid-console",
                    v.span(),
                    format!("console {text:?}: {e}"),
                    console::FORM_HELP,
                );
                None
            }
        }
    }

    fn hostname(&mut self, v: &Spanned<DeValue<'_>>) -> Option<String> {
        let Some(h) = v.get_ref().as_str() else {
            self.err(
                "invalid-hostname",
                v.span(),
                format!(
                    "`hostname` must be a string, found {}",
                    v.get_ref().type_str()
                ),
            );
            return None;
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if h.len() > 253 || !h.split('.').all(label_ok) {
            self.err_help(
                "invalid-hostname",
                v.span(),
                format!("{h:?} is not a valid hostname"),
                "use letters, digits and `-` (dots between labels), at most 63 characters per label",
            );
            return None;
        }
        Some(h.to_string())
    }

    fn cmdline(&mut self, v: &Spanned<DeValue<'_>>) -> Option<String> {
        let Some(c) = v.get_ref().as_str() else {
            self.err(
                "invalid-cmdline",
                v.span(),
                format!(
                    "`cmdline` must be a string of kernel parameters, found {}",
                    v.get_ref().type_str()
                ),
            );
            return None;
        };
        if c.chars().any(|ch| ch.is_control()) || c.contains("${") {
            self.err_help(
                "invalid-cmdline",
                v.span(),
                "`cmdline` holds a control character or `${`",
                "kernel parameters are one line of words; iPXE would expand `${...}` itself",
            );
            return None;
        }
        Some(c.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn named_value(
        &mut self,
        k: &Spanned<std::borrow::Cow<'_, str>>,
        v: &Spanned<DeValue<'_>>,
    ) -> Option<(String, Value)> {
        let name = k.get_ref().as_ref();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.err_help(
                "invalid-key",
                k.span(),
                format!("key {name:?} cannot be used in a template"),
                "use letters, digits, `_` and `-`, so {{ node.KEY }} can name it",
            );
            return None;
        }
        let value = self.value(v)?;
        Some((name.to_string(), value))
    }

    fn value(&mut self, v: &Spanned<DeValue<'_>>) -> Option<Value> {
        match v.get_ref() {
            DeValue::String(s) => {
                if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                    self.err_help(
                        "unsafe-string",
                        v.span(),
                        "a value may not contain `\"`, `\\` or control characters",
                        "values are put into the config as they are, so they must not change its TOML structure",
                    );
                    return None;
                }
                Some(Value::Str(s.to_string()))
            }
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Value::Int(n)),
                Err(_) => {
                    self.err("invalid-value", v.span(), "integer out of range");
                    None
                }
            },
            DeValue::Boolean(b) => Some(Value::Bool(*b)),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    if matches!(item.get_ref(), DeValue::Array(_)) {
                        self.err(
                            "invalid-value",
                            item.span(),
                            "arrays inside arrays are not supported",
                        );
                        ok = false;
                    } else if let Some(x) = self.value(item) {
                        out.push(x);
                    } else {
                        ok = false;
                    }
                }
                ok.then_some(Value::List(out))
            }
            other => {
                self.err_help(
                    "invalid-value",
                    v.span(),
                    format!("a {} cannot be used as a template value", other.type_str()),
                    "values are strings, integers, booleans or arrays of those",
                );
                None
            }
        }
    }

    fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// A one-line overview for logs: `2 nodes (lb1 52:54:00:00:00:01, lb2 ...), unknown MACs: 404`.
pub fn describe(inv: &Inventory) -> String {
    let mut s = format!(
        "{} node{}",
        inv.nodes.len(),
        if inv.nodes.len() == 1 { "" } else { "s" }
    );
    if !inv.nodes.is_empty() {
        let list: Vec<String> = inv
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.hostname, n.mac))
            .collect();
        let _ = write!(s, " ({})", list.join(", "));
    }
    match &inv.unknown {
        Some(u) => {
            let _ = write!(s, ", unknown MACs: rendered as `{}`", u.hostname);
        }
        None => s.push_str(", unknown MACs: 404"),
    }
    s
}

#[cfg(test)]
mod tests;
