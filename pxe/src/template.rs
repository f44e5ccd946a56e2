//! The shared config template: a node config (TOML, the same schema lbd reads) with
//! `{{ node.KEY }}` placeholders filled from the inventory. Pure.
//!
//! ```toml
//! [node]
//! hostname = "{{ node.hostname }}"
//!
//! [vrrp.instance.VI_EXT]
//! interface = "{{ node.ext_if }}"
//! priority = {{ node.priority }}
//! vips = {{ node.vips }}
//! ```
//!
//! A string value replaces its placeholder as it is (the template writes the quotes); numbers,
//! booleans and arrays become TOML literals. Values never hold a newline, so a line of the
//! rendered config is the same line of the template: errors in a rendered config point at the
//! template's lines. A placeholder with no value for a node is an error at its line:column.
//! Every `{{` starts a placeholder; a literal `{{` in a TOML string can be written `\u007B{`.

use crate::inventory::{NodeEntry, Values};
use lbd::config::{ConfigError, Diagnostic};
use std::ops::Range;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub file: String,
    pub source_text: String,
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Range<usize>),
    Value { key: String, span: Range<usize> },
}

const SYNTAX_HELP: &str = "placeholders look like {{ node.KEY }}, with KEY from the inventory";

impl Template {
    /// Parses the placeholders; every syntax error is reported at once.
    pub fn parse(file: &str, src: &str) -> Result<Template, ConfigError> {
        let mut pieces = Vec::new();
        let mut diags = Vec::new();
        let mut pos = 0;
        while let Some(rel) = src[pos..].find("{{") {
            let open = pos + rel;
            if open > pos {
                pieces.push(Piece::Text(pos..open));
            }
            // A placeholder ends at `}}` on the same line.
            let line_end = src[open..].find('\n').map_or(src.len(), |i| open + i);
            let Some(close_rel) = src[open + 2..line_end].find("}}") else {
                diags.push(
                    Diagnostic::error(
                        "unclosed-placeholder",
                        Some(open..line_end),
                        "`{{` without `}}` on the same line",
                    )
                    .help(SYNTAX_HELP),
                );
                pos = line_end;
                continue;
            };
            let close = open + 2 + close_rel + 2;
            let inner = src[open + 2..close - 2].trim();
            match inner.strip_prefix("node.") {
                Some(key)
                    if !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    pieces.push(Piece::Value {
                        key: key.to_string(),
                        span: open..close,
                    })
                }
                _ => diags.push(
                    Diagnostic::error(
                        "bad-placeholder",
                        Some(open..close),
                        format!("`{}` is not a placeholder", &src[open..close]),
                    )
                    .help(SYNTAX_HELP),
                ),
            }
            pos = close;
        }
        if pos < src.len() {
            pieces.push(Piece::Text(pos..src.len()));
        }
        if diags.is_empty() {
            Ok(Template {
                file: file.to_string(),
                source_text: src.to_string(),
                pieces,
            })
        } else {
            Err(ConfigError {
                file: file.to_string(),
                source_text: src.to_string(),
                diagnostics: diags,
            })
        }
    }

    /// The keys the template uses, in order of first use.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Value { key, .. } = p {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// Fills the placeholders with `node`'s values. Every missing value is reported at its
    /// placeholder, naming the node.
    pub fn render(&self, node: &NodeEntry, inventory_file: &str) -> Result<String, ConfigError> {
        self.render_values(&node.values, &who(node), inventory_file)
    }

    fn render_values(
        &self,
        values: &Values,
        who: &str,
        inventory_file: &str,
    ) -> Result<String, ConfigError> {
        let src = &self.source_text;
        let mut out = String::with_capacity(src.len() + 64);
        let mut diags = Vec::new();
        for p in &self.pieces {
            match p {
                Piece::Text(r) => out.push_str(&src[r.clone()]),
                Piece::Value { key, span } => match values.get(key) {
                    Some(v) => out.push_str(&v.placeholder_text()),
                    None => {
                        let known: Vec<&str> = values.keys().map(String::as_str).collect();
                        diags.push(
                            Diagnostic::error(
                                "unknown-placeholder",
                                Some(span.clone()),
                                format!("no value `{key}` for {who}"),
                            )
                            .help(format!(
                                "add `{key} = ...` to the node or to [defaults] in {inventory_file}; known: {}",
                                known.join(", ")
                            )),
                        )
                    }
                },
            }
        }
        if diags.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError {
                file: self.file.clone(),
                source_text: src.clone(),
                diagnostics: diags,
            })
        }
    }
}

/// `lb1 (52:54:00:00:00:01)`: how a node is named in messages.
pub fn who(node: &NodeEntry) -> String {
    format!("{} ({})", node.hostname, node.mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory;

    const INV: &str = r#"
[defaults]
ext_if = "eth0"
vips = ["192.0.2.10/24"]
[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"
priority = 150
"#;

    fn lb1() -> NodeEntry {
        inventory::parse("inv.toml", INV).unwrap().nodes.remove(0)
    }

    #[test]
    fn fills_strings_raw_and_the_rest_as_toml() {
        let t = Template::parse(
            "t.tmpl",
            "hostname = \"{{ node.hostname }}\"\nif = \"{{node.ext_if}}.100\"\nprio = {{  node.priority }}\nvips = {{ node.vips }}\n# {{ node.mac }} {{ node.mac_hyphen }}\n",
        )
        .unwrap();
        assert_eq!(
            t.render(&lb1(), "inv.toml").unwrap(),
            "hostname = \"lb1\"\nif = \"eth0.100\"\nprio = 150\nvips = [\"192.0.2.10/24\"]\n# 52:54:00:00:00:01 52-54-00-00-00-01\n"
        );
        assert_eq!(
            t.keys(),
            vec![
                "hostname",
                "ext_if",
                "priority",
                "vips",
                "mac",
                "mac_hyphen"
            ]
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let src = "[node]\nhostname = \"x\" # { braces } }}\n";
        let t = Template::parse("t", src).unwrap();
        assert_eq!(t.render(&lb1(), "inv.toml").unwrap(), src);
        assert!(t.keys().is_empty());
    }

    #[test]
    fn missing_values_are_reported_at_each_placeholder() {
        let t = Template::parse(
            "site.tmpl",
            "a = {{ node.prio }}\nb = \"{{ node.int_if }}\"\nc = {{ node.priority }}\n",
        )
        .unwrap();
        let e = t.render(&lb1(), "inv.toml").unwrap_err();
        let lines = e.one_line_each();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0],
            "site.tmpl:1:5: error[unknown-placeholder]: no value `prio` for lb1 (52:54:00:00:00:01) (add `prio = ...` to the node or to [defaults] in inv.toml; known: ext_if, hostname, mac, mac_hyphen, priority, vips)"
        );
        assert!(
            lines[1].starts_with("site.tmpl:2:6: error[unknown-placeholder]: no value `int_if`"),
            "{lines:?}"
        );
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let e = Template::parse(
            "t",
            "a = {{ node.x\nb = {{ nodes.x }}\nc = {{ node. }}\nd = {{ node.a b }}\ne = {{ node.ok }}\n",
        )
        .unwrap_err();
        assert_eq!(
            e.one_line_each(),
            vec![
                "t:1:5: error[unclosed-placeholder]: `{{` without `}}` on the same line (placeholders look like {{ node.KEY }}, with KEY from the inventory)",
                "t:2:5: error[bad-placeholder]: `{{ nodes.x }}` is not a placeholder (placeholders look like {{ node.KEY }}, with KEY from the inventory)",
                "t:3:5: error[bad-placeholder]: `{{ node. }}` is not a placeholder (placeholders look like {{ node.KEY }}, with KEY from the inventory)",
                "t:4:5: error[bad-placeholder]: `{{ node.a b }}` is not a placeholder (placeholders look like {{ node.KEY }}, with KEY from the inventory)",
            ]
        );
    }

    #[test]
    fn rendered_lines_stay_on_template_lines() {
        let t = Template::parse("t", "x = {{ node.vips }}\ny = 1\n").unwrap();
        let out = t.render(&lb1(), "inv.toml").unwrap();
        assert_eq!(out.lines().count(), 2);
        assert_eq!(out.lines().nth(1), Some("y = 1"));
    }
}
