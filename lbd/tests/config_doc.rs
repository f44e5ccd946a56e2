//! Keeps lbd/CONFIG.md true to the code: every key the schema accepts is documented in its
//! section and nothing else is, every diagnostic code the validator can emit is listed and no
//! other, each check key's "applies to" column is what validation enforces, and every TOML
//! snippet is a config that validates cleanly.

use lbd::config::{self, CheckType};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Snippets without a VRRP instance of their own are read after this one (the doc says so).
const BASE: &str = r#"
[vrrp.instance.doc_base]
interface = "eth0"
vrid = 250
priority = 100
vips = ["192.0.2.10/24"]
"#;

/// A table row of the reference: its key (or code) and its cells by column name.
struct Row {
    key: String,
    line: usize,
    cells: BTreeMap<String, String>,
}

/// What the test reads from CONFIG.md.
struct Doc {
    /// Section path as in `known_keys` (`service.NAME.real`) → its rows.
    sections: BTreeMap<String, Vec<Row>>,
    /// Codes listed under "Diagnostic codes".
    codes: Vec<String>,
    /// (line of the fence, text) of every ```toml block.
    snippets: Vec<(usize, String)>,
}

/// The cells of a Markdown table row; `\|` is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The words between backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn read_doc() -> Doc {
    let path = manifest_dir().join("CONFIG.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc = Doc {
        sections: BTreeMap::new(),
        codes: Vec::new(),
        snippets: Vec::new(),
    };
    let mut section: Option<String> = None;
    let mut in_codes = false;
    let mut header: Vec<String> = Vec::new();
    let mut fence: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(rest) = line.strip_prefix("```") {
            match fence.take() {
                Some((start, lang, body)) => {
                    if lang == "toml" {
                        doc.snippets.push((start, body));
                    }
                }
                None => fence = Some((n, rest.trim().to_string(), String::new())),
            }
            continue;
        }
        if let Some((_, _, body)) = &mut fence {
            body.push_str(line);
            body.push('\n');
            continue;
        }
        if line.starts_with('#') {
            let level = line.chars().take_while(|c| *c == '#').count();
            // A heading naming a table (`[node.syslog]`, `[[service.NAME.real]]`) starts its
            // section; other level-2 headings end it, deeper ones (check types) continue it.
            let path = line.find("`[").and_then(|start| {
                let rest = &line[start + 1..];
                rest.find("]`").map(|end| {
                    rest[..=end]
                        .trim_matches(|c| c == '[' || c == ']')
                        .to_string()
                })
            });
            match path {
                Some(p) => {
                    section = Some(p);
                    in_codes = false;
                }
                None if level <= 2 => {
                    section = None;
                    in_codes = line.trim_start_matches('#').trim() == "Diagnostic codes";
                }
                None => {}
            }
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let row = cells(line);
        if row.first().is_some_and(|c| c == "key" || c == "code") {
            header = row;
            continue;
        }
        let Some(key) = row.first().and_then(|c| backticked(c).first().copied()) else {
            continue;
        };
        if in_codes {
            doc.codes.push(key.to_string());
        } else if let Some(s) = &section {
            doc.sections.entry(s.clone()).or_default().push(Row {
                key: key.to_string(),
                line: n,
                cells: header.iter().cloned().zip(row.iter().cloned()).collect(),
            });
        }
    }
    assert!(fence.is_none(), "CONFIG.md: a code block is never closed");
    doc
}

#[test]
fn every_schema_key_is_documented_in_its_section() {
    let doc = read_doc();
    let known = config::known_keys();
    let mut problems = Vec::new();
    for (section, keys) in &known {
        let documented: BTreeSet<&str> = doc
            .sections
            .get(*section)
            .map(|rows| rows.iter().map(|r| r.key.as_str()).collect())
            .unwrap_or_default();
        if documented.is_empty() {
            problems.push(format!("section [{section}] has no table of keys"));
            continue;
        }
        for key in keys {
            if !documented.contains(key) {
                problems.push(format!(
                    "[{section}] `{key}` is accepted but not documented"
                ));
            }
        }
    }
    for (section, rows) in &doc.sections {
        let Some((_, keys)) = known.iter().find(|(s, _)| s == section) else {
            problems.push(format!(
                "CONFIG.md documents a section [{section}] that the schema does not have"
            ));
            continue;
        };
        for r in rows {
            if !keys.contains(&r.key.as_str()) {
                problems.push(format!(
                    "CONFIG.md:{}: [{section}] `{}` is documented but not accepted",
                    r.line, r.key
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "lbd/CONFIG.md and the schema disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// Codes passed as literals to `err`/`warn`/`Diagnostic::error`/`::warning`, assigned to
/// `.code`, or handed to a range check as the first of its `(code, what, range)` triple, in the
/// config module's non-test code.
fn emitted_codes() -> BTreeSet<String> {
    let call =
        regex_lite::Regex::new(r#"\b(?:err|warn|error|warning)\(\s*"([a-z0-9-]+)""#).unwrap();
    let assign = regex_lite::Regex::new(r#"\.code = "([a-z0-9-]+)""#).unwrap();
    let triple =
        regex_lite::Regex::new(r#"\(\s*"([a-z0-9-]+)",\s*"[^"]*",\s*"[^"]*"\s*\)"#).unwrap();
    // The config module and any submodules it may grow.
    let mut dirs = vec![manifest_dir().join("src/config")];
    let mut codes = BTreeSet::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for re in [&call, &assign, &triple] {
                for c in re.captures_iter(code) {
                    codes.insert(c[1].to_string());
                }
            }
        }
    }
    codes
}

#[test]
fn every_diagnostic_code_is_documented() {
    let doc: BTreeSet<String> = read_doc().codes.into_iter().collect();
    let emitted = emitted_codes();
    assert!(
        emitted.contains("duplicate-vrid") && emitted.contains("unknown-key"),
        "the code scan found {emitted:?}"
    );
    let undocumented: Vec<&String> = emitted.difference(&doc).collect();
    let stale: Vec<&String> = doc.difference(&emitted).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "lbd/CONFIG.md \"Diagnostic codes\": missing {undocumented:?}; listed but never emitted {stale:?}"
    );
}

#[test]
fn every_toml_snippet_is_a_valid_config() {
    let doc = read_doc();
    assert!(doc.snippets.len() >= 5, "CONFIG.md should show examples");
    let mut problems = Vec::new();
    for (line, snippet) in &doc.snippets {
        let src = if snippet.contains("[vrrp.instance.") {
            snippet.clone()
        } else {
            format!("{BASE}{snippet}")
        };
        match config::parse(&format!("CONFIG.md snippet at line {line}"), &src) {
            Ok(loaded) if loaded.warnings.is_empty() => {}
            Ok(loaded) => problems.push(format!(
                "snippet at line {line} warns: {:?}",
                loaded.warning_lines()
            )),
            Err(e) => problems.push(format!("snippet at line {line}:\n{e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Values tried in turn for a check key until one has the right type for it.
const SAMPLES: &[&str] = &[
    r#""/x""#,
    "true",
    r#""1s""#,
    "2",
    r#""10.0.0.1""#,
    r#"["/bin/true"]"#,
    "[200]",
];

fn check_config(kind: CheckType, key: &str, value: &str) -> Vec<&'static str> {
    let src = format!(
        "{BASE}[service.s]\nvip = \"192.0.2.10:80\"\ncheck = {{ type = \"{kind}\", {key} = {value} }}\n[[service.s.real]]\naddress = \"10.0.0.1\"\n"
    );
    match config::parse("t.toml", &src) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors().map(|d| d.code).collect(),
    }
}

#[test]
fn check_keys_apply_to_the_types_the_doc_says() {
    let doc = read_doc();
    let rows = doc
        .sections
        .get("check.NAME")
        .expect("a [check.NAME] section");
    let mut problems = Vec::new();
    for row in rows.iter().filter(|r| r.key != "type") {
        let Some(cell) = row.cells.get("applies to") else {
            problems.push(format!(
                "CONFIG.md:{}: `{}` has no \"applies to\" column",
                row.line, row.key
            ));
            continue;
        };
        let applies: Vec<CheckType> = if cell == "all" {
            CheckType::ALL.to_vec()
        } else {
            backticked(cell)
                .iter()
                .map(|t| {
                    t.parse()
                        .unwrap_or_else(|e| panic!("CONFIG.md:{}: {e}", row.line))
                })
                .collect()
        };
        let Some(&first) = applies.first() else {
            problems.push(format!(
                "CONFIG.md:{}: `{}` applies to no type",
                row.line, row.key
            ));
            continue;
        };
        let Some(sample) = SAMPLES.iter().find(|v| {
            let codes = check_config(first, &row.key, v);
            !codes.contains(&"invalid-value") && !codes.contains(&"unknown-key")
        }) else {
            problems.push(format!(
                "`{}`: no value in SAMPLES has its type; add one",
                row.key
            ));
            continue;
        };
        for kind in CheckType::ALL {
            let refused = check_config(kind, &row.key, sample).contains(&"key-not-for-type");
            if refused == applies.contains(&kind) {
                problems.push(format!(
                    "CONFIG.md:{}: `{}` on a {kind} check is {} by validation, the doc says otherwise",
                    row.line,
                    row.key,
                    if refused { "refused" } else { "accepted" }
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
