//! Programs started in Rust source: the call sites this workspace uses to start programs.

use super::{line_of, plausible_program};
use regex::Regex;

/// Programs started in Rust source `text`, with their lines.
pub fn rust_uses(text: &str) -> Vec<(usize, String)> {
    static PATTERNS: std::sync::OnceLock<Vec<Regex>> = std::sync::OnceLock::new();
    static LISTS: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static STRING: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            r#"Command::new\(\s*"([^"]+)"\s*\)"#,
            r#"programs::(?:command|path|try_path)\(\s*"([^"]+)""#,
            r#"\b(?:require_program|find_program|run_args|require)\(\s*"([^"]+)""#,
            r#"\.(?:run|spawn|exec|output|spawn_logged)\(\s*&\[\s*"([^"]+)""#,
            r#"\.program\(\s*[^,()]+,\s*[^,()]+,\s*&\[\s*"([^"]+)""#,
            r#"\.command\(\s*"([^"]+)"\s*\)"#,
            // Host paths under /usr (programs by path, data files such as firmware or ROMs).
            r#""(/usr/(?:s?bin|lib|libexec|share)/[^"\s]*)""#,
        ]
        .iter()
        .map(|p| Regex::new(p).expect("pattern"))
        .collect()
    });
    let lists = LISTS.get_or_init(|| {
        Regex::new(r#"\b(?:require_programs|require)\(\s*&\[([^\]]*)\]"#).expect("pattern")
    });
    let string = STRING.get_or_init(|| Regex::new(r#""([^"]+)""#).expect("pattern"));
    let mut found = Vec::new();
    for re in patterns {
        for c in re.captures_iter(text) {
            let m = c.get(1).expect("group");
            found.push((line_of(text, m.start()), m.as_str().to_owned()));
        }
    }
    for c in lists.captures_iter(text) {
        let m = c.get(1).expect("group");
        for s in string.captures_iter(m.as_str()) {
            let n = s.get(1).expect("group");
            found.push((line_of(text, m.start() + n.start()), n.as_str().to_owned()));
        }
    }
    found.retain(|(_, p)| plausible_program(p));
    found.sort();
    found.dedup();
    found
}
