//! The converters' output: our config language as plain data, and its rendering as TOML text.
//!
//! Both converters fill an [`Output`]; [`Output::render`] writes it in the order an operator
//! reads a config (node, ipvs, VRRP, services), each section preceded by a comment naming the
//! source line it came from, so the result can be reviewed against the original side by side.

use std::fmt::Write as _;
use std::time::Duration;

/// A TOML value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    /// An inline table, keys in the order given.
    Table(Vec<(String, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A duration in our notation ("5s", "1500ms").
    pub fn duration(d: Duration) -> Value {
        Value::Str(duration_text(d))
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&quote(s)),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.render(out);
                }
                out.push(']');
            }
            Value::Table(kv) => {
                out.push_str("{ ");
                let mut first = true;
                for (i, (k, v)) in kv.iter().enumerate() {
                    // Given twice: the last value, once.
                    if kv[i + 1..].iter().any(|(later, _)| later == k) {
                        continue;
                    }
                    if !std::mem::take(&mut first) {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.render(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// "5s" for whole seconds, "1500ms" otherwise (our durations never take bare numbers).
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 && ms > 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A TOML basic string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key, quoted unless it is a bare key.
pub fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

/// Ordered key/value pairs of one table.
pub type Entries = Vec<(String, Value)>;

/// The value set for `key` in `entries`.
pub fn get<'e>(entries: &'e Entries, key: &str) -> Option<&'e Value> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The string set for `key` in `entries`.
pub fn get_str(entries: &Entries, key: &str) -> Option<String> {
    match get(entries, key) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Where an output item came from, for the comment above it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// "keepalived.conf:12".
    pub at: String,
    /// What was there, e.g. "virtual_server 192.0.2.10 80".
    pub what: String,
}

/// `[vrrp.instance.NAME]`.
#[derive(Clone, Debug, Default)]
pub struct Instance {
    pub name: String,
    pub origin: Origin,
    pub entries: Entries,
}

/// `[vrrp.sync_group.NAME]`.
#[derive(Clone, Debug, Default)]
pub struct SyncGroup {
    pub name: String,
    pub origin: Origin,
    pub instances: Vec<String>,
}

/// `[[service.NAME.real]]`.
#[derive(Clone, Debug, Default)]
pub struct Real {
    pub origin: Origin,
    pub entries: Entries,
    /// The real's own health check (inline table entries), if it differs from the service's.
    pub check: Option<Entries>,
}

/// `[service.NAME]` with its sub-tables and reals.
#[derive(Clone, Debug, Default)]
pub struct Service {
    pub name: String,
    pub origin: Origin,
    pub entries: Entries,
    /// `[service.NAME.persistence]`.
    pub persistence: Option<Entries>,
    /// `[service.NAME.quorum]`.
    pub quorum: Option<Entries>,
    pub check: Option<Entries>,
    pub reals: Vec<Real>,
    /// Comment lines written above the reals (e.g. reals left out, and why).
    pub notes: Vec<String>,
}

impl Service {
    /// Puts a check shared by every real on the service, and leaves the others on the reals.
    pub fn hoist_common_check(&mut self) {
        let first = match self.reals.first() {
            Some(r) => r.check.clone(),
            None => return,
        };
        if first.is_some() && self.reals.iter().all(|r| r.check == first) {
            self.check = first;
            for r in &mut self.reals {
                r.check = None;
            }
        }
    }
}

/// A whole converted config.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Comment lines at the top.
    pub header: Vec<String>,
    pub node: Entries,
    /// `[network.link.NAME]`, in name order.
    pub network_links: std::collections::BTreeMap<String, Entries>,
    /// `[[network.rule]]`.
    pub network_rules: Vec<Entries>,
    pub ipvs: Entries,
    pub ipvs_timeouts: Entries,
    pub ipvs_sync: Option<(Origin, Entries)>,
    pub instances: Vec<Instance>,
    pub sync_groups: Vec<SyncGroup>,
    pub services: Vec<Service>,
}

fn comment(out: &mut String, origin: &Origin) {
    if !origin.at.is_empty() {
        let _ = writeln!(
            out,
            "# {} ({})",
            printable(&origin.what),
            printable(&origin.at)
        );
    }
}

fn entries(out: &mut String, e: &Entries) {
    // A setting the source gives twice is written once, with its last value (as the daemons
    // read their files): a TOML table cannot hold a key twice.
    for (i, (k, v)) in e.iter().enumerate() {
        if e[i + 1..].iter().any(|(later, _)| later == k) {
            continue;
        }
        out.push_str(&key(k));
        out.push_str(" = ");
        v.render(out);
        out.push('\n');
    }
}

/// `text` with every control character but tab written as `\u{..}`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl Output {
    /// Sets `[node] key`, replacing an earlier value (a setting given twice: the last wins, as
    /// in keepalived), so the TOML never holds a key twice.
    pub fn set_node(&mut self, key: &str, value: Value) {
        self.node.retain(|(k, _)| k != key);
        self.node.push((key.to_string(), value));
    }

    /// Appends `value` to the list `key` of `[network.link.NAME]`, declaring the link.
    pub fn push_link_list(&mut self, link: &str, key: &str, value: Value) {
        let e = self.network_links.entry(link.to_string()).or_default();
        match e.iter_mut().find(|(k, _)| k == key) {
            Some((_, Value::List(items))) => items.push(value),
            _ => e.push((key.to_string(), Value::List(vec![value]))),
        }
    }

    /// Sets `[node.sysctl] name`, replacing an earlier value.
    pub fn set_sysctl(&mut self, name: &str, value: Value) {
        let mut table = match self.node.iter().position(|(k, _)| k == "sysctl") {
            Some(i) => match self.node.remove(i).1 {
                Value::Table(t) => t,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        table.retain(|(k, _)| k != name);
        table.push((name.to_string(), value));
        self.node.push(("sysctl".into(), Value::Table(table)));
    }

    /// The config as TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            if h.is_empty() {
                out.push_str("#\n");
            } else {
                // Warnings quote the source, which may hold characters a TOML comment cannot
                // (control characters, found by fuzzing): write those escaped.
                let _ = writeln!(out, "# {}", printable(h));
            }
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        if !self.node.is_empty() {
            out.push_str("[node]\n");
            entries(&mut out, &self.node);
            out.push('\n');
        }
        for (name, e) in &self.network_links {
            let _ = writeln!(out, "[network.link.{}]", key(name));
            entries(&mut out, e);
            out.push('\n');
        }
        for r in &self.network_rules {
            out.push_str("[[network.rule]]\n");
            entries(&mut out, r);
            out.push('\n');
        }
        if !self.ipvs.is_empty() {
            out.push_str("[ipvs]\n");
            entries(&mut out, &self.ipvs);
            out.push('\n');
        }
        if !self.ipvs_timeouts.is_empty() {
            out.push_str("[ipvs.timeouts]\n");
            entries(&mut out, &self.ipvs_timeouts);
            out.push('\n');
        }
        if let Some((origin, e)) = &self.ipvs_sync {
            comment(&mut out, origin);
            out.push_str("[ipvs.sync]\n");
            entries(&mut out, e);
            out.push('\n');
        }
        for i in &self.instances {
            comment(&mut out, &i.origin);
            let _ = writeln!(out, "[vrrp.instance.{}]", key(&i.name));
            entries(&mut out, &i.entries);
            out.push('\n');
        }
        for g in &self.sync_groups {
            comment(&mut out, &g.origin);
            let _ = writeln!(out, "[vrrp.sync_group.{}]", key(&g.name));
            let e: Entries = vec![(
                "instances".into(),
                Value::List(g.instances.iter().map(Value::str).collect()),
            )];
            entries(&mut out, &e);
            out.push('\n');
        }
        for s in &self.services {
            let name = key(&s.name);
            comment(&mut out, &s.origin);
            let _ = writeln!(out, "[service.{name}]");
            let mut e = s.entries.clone();
            if let Some(c) = &s.check {
                e.push(("check".into(), Value::Table(c.clone())));
            }
            entries(&mut out, &e);
            out.push('\n');
            if let Some(p) = &s.persistence {
                let _ = writeln!(out, "[service.{name}.persistence]");
                entries(&mut out, p);
                out.push('\n');
            }
            if let Some(q) = &s.quorum {
                let _ = writeln!(out, "[service.{name}.quorum]");
                entries(&mut out, q);
                out.push('\n');
            }
            for n in &s.notes {
                let _ = writeln!(out, "# {}", printable(n));
            }
            if !s.notes.is_empty() {
                out.push('\n');
            }
            for r in &s.reals {
                comment(&mut out, &r.origin);
                let _ = writeln!(out, "[[service.{name}.real]]");
                let mut e = r.entries.clone();
                if let Some(c) = &r.check {
                    e.push(("check".into(), Value::Table(c.clone())));
                }
                entries(&mut out, &e);
                out.push('\n');
            }
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }
}

/// A config name (`[service.NAME]`) from arbitrary text: letters, digits, '-' and '_', at
/// most 64 characters.
pub fn name_from(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    let s = if s.is_empty() {
        "unnamed".to_string()
    } else {
        s
    };
    s.chars().take(64).collect()
}

/// Makes `name` unique among `taken` by appending `_2`, `_3`...
pub fn unique_name(name: String, taken: &mut std::collections::BTreeSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    for n in 2.. {
        let suffix = format!("_{n}");
        let base: String = name.chars().take(64 - suffix.len()).collect();
        let candidate = format!("{base}{suffix}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    unreachable!("an unbounded counter always finds a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_keys() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(quote("\u{1}"), "\"\\u0001\"");
        assert_eq!(key("web_1"), "web_1");
        assert_eq!(key("net.ipv4.ip_forward"), "\"net.ipv4.ip_forward\"");
        assert_eq!(duration_text(Duration::from_secs(60)), "60s");
        assert_eq!(duration_text(Duration::from_millis(2500)), "2500ms");
        assert_eq!(duration_text(Duration::ZERO), "0ms");
    }

    #[test]
    fn names() {
        assert_eq!(name_from("192.0.2.10:80"), "192_0_2_10_80");
        assert_eq!(name_from("2001:db8::1"), "2001_db8_1");
        assert_eq!(name_from("..."), "unnamed");
        let mut taken = Default::default();
        assert_eq!(unique_name("a".into(), &mut taken), "a");
        assert_eq!(unique_name("a".into(), &mut taken), "a_2");
        assert_eq!(unique_name("a".into(), &mut taken), "a_3");
    }

    #[test]
    fn renders_parsable_toml() {
        let mut o = Output::default();
        o.header.push("converted".into());
        o.node.push(("hostname".into(), Value::str("lb1")));
        o.services.push(Service {
            name: "web".into(),
            origin: Origin {
                at: "x.conf:3".into(),
                what: "virtual_server".into(),
            },
            entries: vec![("vip".into(), Value::str("192.0.2.1:80"))],
            check: Some(vec![
                ("type".into(), Value::str("tcp")),
                ("interval".into(), Value::duration(Duration::from_secs(3))),
            ]),
            reals: vec![Real {
                entries: vec![
                    ("address".into(), Value::str("10.0.0.1:80")),
                    ("weight".into(), Value::Int(2)),
                ],
                ..Default::default()
            }],
            ..Default::default()
        });
        let text = o.render();
        assert!(text.starts_with("# converted\n\n[node]\nhostname = \"lb1\"\n"));
        assert!(text.contains("# virtual_server (x.conf:3)\n[service.web]\n"));
        assert!(text.contains("check = { type = \"tcp\", interval = \"3s\" }"));
        assert!(text.contains("[[service.web.real]]\naddress = \"10.0.0.1:80\"\nweight = 2"));
        assert!(!text.ends_with("\n\n"));
    }
}
