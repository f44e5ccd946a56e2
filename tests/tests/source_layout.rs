//! The size rules of `docs/architecture.md`, held by a test so that they do not erode as
//! features land: no source file over 800 lines outside tests and benchmarks, and no function
//! over 150 lines (data tables are not functions). Test code is left out: `tests/tests`,
//! `tests/bench`, `tests.rs` and `*_tests.rs` files, and everything from a file's first
//! `#[cfg(test)]` on.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

/// The crates' source trees, relative to the workspace.
const TREES: &[&str] = &[
    "init/src",
    "lbd/src",
    "pxe/src",
    "image/src",
    "tools/src",
    "tests/src",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The lines before the first `#[cfg(test)]` at the start of a line.
fn non_test_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .collect()
}

/// A function's name if `line` opens one with a body.
fn fn_name(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        if w.starts_with("pub") || ["async", "const", "unsafe", "extern"].contains(w) {
            words.next();
        } else {
            break;
        }
    }
    if words.next()? != "fn" || t.trim_end().ends_with(';') {
        return None;
    }
    let rest = words.next()?;
    let end = rest.find(['(', '<']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Each function over the limit in `lines`: name, first line (1-based), length. A function
/// ends at the first `}` at its own indentation (rustfmt's layout).
fn long_functions(lines: &[&str]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(name) = fn_name(lines[i]) {
            let indent = lines[i].len() - lines[i].trim_start().len();
            let close = format!("{}}}", &lines[i][..indent]);
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_end() == close)
                .unwrap_or(lines.len() - 1);
            let len = end - i + 1;
            if len > MAX_FN_LINES {
                out.push((name.to_string(), i + 1, len));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn no_source_file_or_function_is_over_the_limits() {
    let root = workspace();
    let mut files = Vec::new();
    for tree in TREES {
        rust_files(&root.join(tree), &mut files);
    }
    files.sort();
    assert!(files.len() > 100, "only {} source files found", files.len());
    let mut problems = Vec::new();
    for path in files.iter().filter(|p| !is_test_file(p)) {
        let text = std::fs::read_to_string(path).expect("readable source");
        let lines = non_test_lines(&text);
        let shown = path.strip_prefix(&root).unwrap_or(path).display();
        if lines.len() > MAX_FILE_LINES {
            problems.push(format!(
                "{shown}: {} lines outside tests (limit {MAX_FILE_LINES})",
                lines.len()
            ));
        }
        for (name, line, len) in long_functions(&lines) {
            problems.push(format!(
                "{shown}:{line}: fn {name} is {len} lines (limit {MAX_FN_LINES})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "split these (see docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scanner_finds_functions_and_their_ends() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!(
        "pub(crate) async fn long<T>(t: T) {{\n{body}}}\n\nfn short() {{\n    if x {{\n    }}\n}}\n\ntrait T {{\n    fn declared(&self);\n    fn provided(&self) {{\n{body}    }}\n}}\n"
    );
    let lines: Vec<&str> = text.lines().collect();
    let found = long_functions(&lines);
    let names: Vec<&str> = found.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["long", "provided"]);
    assert_eq!(found[0], ("long".to_string(), 1, MAX_FN_LINES + 2));
    assert_eq!(non_test_lines("a\n#[cfg(test)]\nmod tests {}\n"), vec!["a"]);
}
