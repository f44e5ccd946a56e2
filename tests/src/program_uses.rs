//! Finds the host programs that the workspace's code and scripts start, so a test can hold them
//! against `tools/programs.txt` (see [`crate::programs`]).
//!
//! Rust: the call sites that start programs in this workspace — `Command::new("…")`,
//! `programs::command/path("…")`, `require*(…)`, `run_args("…")`, a namespace's or lab's
//! `run/spawn/exec/output/program(…&["prog", …])` and `.command("prog")` — and absolute paths
//! under `/usr` in string literals. Shell: the first word of every simple command (after
//! `;`, `&&`, `|`, `$(`, keywords, assignments, redirections, `exec`/`command -v`/`runuser --`),
//! skipping builtins, the script's own functions, case patterns and heredoc bodies.
//!
//! Heuristic by design (no full parser), and tested below against the forms the project uses.

use std::path::{Path, PathBuf};

use regex::Regex;

/// One program a file starts (or checks for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramUse {
    /// The file, relative to the scanned root.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// A command name or an absolute path.
    pub program: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

fn plausible_program(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c))
        && !s.starts_with('-')
        && (s.starts_with('/') || !s.contains('/'))
}

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

/// Words that are not programs when they start a command: bash keywords and builtins.
const SHELL_BUILTINS: &[&str] = &[
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "in",
    "function",
    "select",
    "time",
    "return",
    "local",
    "export",
    "declare",
    "readonly",
    "typeset",
    "set",
    "unset",
    "shift",
    "exit",
    "echo",
    "printf",
    "read",
    "cd",
    "pwd",
    "test",
    "[",
    "[[",
    "]]",
    "true",
    "false",
    "source",
    ".",
    "eval",
    "exec",
    "wait",
    "kill",
    "trap",
    "command",
    "builtin",
    "type",
    "hash",
    "let",
    "break",
    "continue",
    "getopts",
    "mapfile",
    "readarray",
    "pushd",
    "popd",
    "umask",
    "ulimit",
    "jobs",
    "fg",
    "bg",
    "disown",
    "alias",
    "unalias",
    "shopt",
    "caller",
    "enable",
    "help",
    "history",
    "logout",
    "times",
    "suspend",
    ":",
];

#[derive(Debug, PartialEq)]
enum Tok {
    /// A word, and whether it began unquoted (only those can be keywords or patterns).
    Word(String),
    /// A separator that puts the next word in command position (`;`, `&&`, `|`, `(`, newline…).
    Sep,
    /// `)` — ends a case pattern or a subshell.
    Close,
    /// `;;` / `;&` — ends a case branch.
    CaseEnd,
    /// A redirection: the next word is a file.
    Redirect,
}

/// Splits shell text into tokens; command substitutions (`$(…)`, backticks), also inside
/// double quotes, are tokenised in place as nested commands (wrapped in separators).
fn tokenize(text: &str) -> Vec<(usize, Tok)> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut word = String::new();
    let mut word_line = 1;
    // Heredoc terminators waiting for the end of the current line.
    let mut pending_heredocs: Vec<(String, bool)> = Vec::new();
    let flush = |word: &mut String, toks: &mut Vec<(usize, Tok)>, wl: usize| {
        if !word.is_empty() {
            toks.push((wl, Tok::Word(std::mem::take(word))));
        }
    };
    // Nested substitutions: the depth of `(` inside each `$(` so `)` closes the right one.
    let mut subst_paren: Vec<usize> = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                i += 2;
                line += 1;
            }
            '\\' => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(chars.get(i + 1).copied().unwrap_or('\\'));
                i += 2;
            }
            '\n' => {
                flush(&mut word, &mut toks, word_line);
                toks.push((line, Tok::Sep));
                line += 1;
                i += 1;
                // Skip heredoc bodies.
                for (term, strip_tabs) in std::mem::take(&mut pending_heredocs) {
                    loop {
                        let start = i;
                        while i < chars.len() && chars[i] != '\n' {
                            i += 1;
                        }
                        let body_line: String = chars[start..i].iter().collect();
                        i += 1;
                        line += 1;
                        let body_line = if strip_tabs {
                            body_line.trim_start_matches('\t')
                        } else {
                            &body_line
                        };
                        if body_line == term || i >= chars.len() {
                            break;
                        }
                    }
                }
            }
            '#' if word.is_empty() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ' ' | '\t' => {
                flush(&mut word, &mut toks, word_line);
                i += 1;
            }
            '\'' => {
                if word.is_empty() {
                    word_line = line;
                }
                // Mark quoted content so it is never taken for a keyword or pattern.
                word.push('\u{1}');
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push('\u{1}');
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    match chars[i] {
                        '\\' => {
                            word.extend(chars.get(i + 1));
                            i += 2;
                        }
                        '$' if chars.get(i + 1) == Some(&'(') && chars.get(i + 2) != Some(&'(') => {
                            // A command substitution inside quotes: scan it on its own.
                            let end = matching_paren(&chars, i + 1);
                            let inner: String = chars[i + 2..end.min(chars.len())].iter().collect();
                            toks.push((line, Tok::Sep));
                            for (l, t) in tokenize(&inner) {
                                toks.push((line + l - 1, t));
                            }
                            toks.push((line, Tok::Sep));
                            line += inner.matches('\n').count();
                            word.push('$');
                            i = end + 1;
                        }
                        ch => {
                            if ch == '\n' {
                                line += 1;
                            }
                            word.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                // Parameter expansion: part of the word, never a command.
                if word.is_empty() {
                    word_line = line;
                }
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                word.push('}');
                i += 1;
            }
            '$' if chars.get(i + 1) == Some(&'(') && chars.get(i + 2) == Some(&'(') => {
                // Arithmetic: no commands inside.
                let end = matching_paren(&chars, i + 1);
                if word.is_empty() {
                    word_line = line;
                }
                word.push('$');
                i = end + 1;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                flush(&mut word, &mut toks, word_line);
                toks.push((line, Tok::Sep));
                subst_paren.push(0);
                i += 2;
            }
            '`' => {
                flush(&mut word, &mut toks, word_line);
                toks.push((line, Tok::Sep));
                i += 1;
            }
            '(' if word.is_empty() && chars.get(i + 1) == Some(&'(') => {
                // (( arithmetic )): skip.
                let end = matching_paren(&chars, i);
                i = end + 1;
            }
            '(' => {
                flush(&mut word, &mut toks, word_line);
                if let Some(d) = subst_paren.last_mut() {
                    *d += 1;
                }
                toks.push((line, Tok::Sep));
                i += 1;
            }
            ')' => {
                flush(&mut word, &mut toks, word_line);
                match subst_paren.last_mut() {
                    Some(0) => {
                        subst_paren.pop();
                        toks.push((line, Tok::Sep));
                    }
                    Some(d) => {
                        *d -= 1;
                        toks.push((line, Tok::Close));
                    }
                    None => toks.push((line, Tok::Close)),
                }
                i += 1;
            }
            ';' => {
                flush(&mut word, &mut toks, word_line);
                if matches!(chars.get(i + 1), Some(';') | Some('&')) {
                    toks.push((line, Tok::CaseEnd));
                    i += 2;
                } else {
                    toks.push((line, Tok::Sep));
                    i += 1;
                }
            }
            '|' | '&' => {
                flush(&mut word, &mut toks, word_line);
                if c == '&' && chars.get(i + 1) == Some(&'>') {
                    toks.push((line, Tok::Redirect));
                    i += 2;
                    continue;
                }
                toks.push((line, Tok::Sep));
                i += 1;
                if chars.get(i) == Some(&c) {
                    i += 1;
                }
            }
            '<' | '>' => {
                // A leading fd number (2>) belongs to the redirection.
                if word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                }
                flush(&mut word, &mut toks, word_line);
                let mut j = i;
                while j < chars.len() && matches!(chars[j], '<' | '>' | '&' | '-') {
                    j += 1;
                }
                let op: String = chars[i..j].iter().collect();
                if op.starts_with("<<") && !op.starts_with("<<<") {
                    // Heredoc: read the terminator word.
                    let strip_tabs = op.ends_with('-');
                    while j < chars.len() && chars[j] == ' ' {
                        j += 1;
                    }
                    let start = j;
                    while j < chars.len() && !chars[j].is_whitespace() && !";|&)".contains(chars[j])
                    {
                        j += 1;
                    }
                    let term: String = chars[start..j]
                        .iter()
                        .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                        .collect();
                    pending_heredocs.push((term, strip_tabs));
                    i = j;
                    continue;
                }
                if op.ends_with('&') && chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
                    // >&2: a descriptor, no file word follows.
                    i = j + 1;
                    continue;
                }
                toks.push((line, Tok::Redirect));
                i = j;
            }
            _ => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
                i += 1;
            }
        }
    }
    flush(&mut word, &mut toks, word_line);
    toks
}

/// The index of the `)` matching the `(` at `open`.
fn matching_paren(chars: &[char], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '\\' => i += 1,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    chars.len()
}

/// Programs started by shell script `text`, with their lines.
pub fn shell_uses(text: &str) -> Vec<(usize, String)> {
    let toks = tokenize(text);
    // The script's own functions: `name() {` (and `function name`).
    let mut functions: Vec<String> = Vec::new();
    for w in toks.windows(3) {
        if let [(_, Tok::Word(name)), (_, Tok::Sep), (_, Tok::Close)] = w {
            functions.push(name.clone());
        }
        if let [(_, Tok::Word(f)), (_, Tok::Word(name)), _] = w {
            if f == "function" {
                functions.push(name.clone());
            }
        }
    }
    let mut found = Vec::new();
    let mut command_position = true;
    // Inside `case … in` before a pattern's `)`.
    let mut case_depth = 0usize;
    let mut in_pattern = false;
    let mut expect_case_in = false;
    // After `for NAME`: words up to `do` are not commands.
    let mut in_for = false;
    let mut after_redirect = false;
    // A wrapper's program is still to come: `command -v X`, `runuser … -- X`, `timeout 5 X`.
    let mut pending = Pending::None;
    for (line, tok) in toks {
        match tok {
            Tok::Sep => {
                if !in_for {
                    command_position = true;
                }
                pending = Pending::None;
                after_redirect = false;
            }
            Tok::Close => {
                if in_pattern {
                    in_pattern = false;
                }
                command_position = true;
            }
            Tok::CaseEnd => {
                in_pattern = case_depth > 0;
                command_position = true;
            }
            Tok::Redirect => after_redirect = true,
            Tok::Word(w) => {
                if after_redirect {
                    after_redirect = false;
                    continue;
                }
                let bare = !w.contains('\u{1}');
                if expect_case_in {
                    if bare && w == "in" {
                        expect_case_in = false;
                        in_pattern = true;
                    }
                    continue;
                }
                if bare && w == "esac" {
                    case_depth = case_depth.saturating_sub(1);
                    in_pattern = false;
                    command_position = false;
                    continue;
                }
                if in_pattern {
                    continue;
                }
                if in_for {
                    if bare && w == "do" {
                        in_for = false;
                        command_position = true;
                    }
                    continue;
                }
                match pending {
                    Pending::None => {}
                    Pending::AfterOptions if w.starts_with('-') => continue,
                    Pending::AfterDoubleDash => {
                        if w == "--" {
                            pending = Pending::AfterOptions;
                        }
                        continue;
                    }
                    Pending::SkipThenProgram(n) if w.starts_with('-') || n > 0 => {
                        if !w.starts_with('-') {
                            pending = Pending::SkipThenProgram(n - 1);
                        }
                        continue;
                    }
                    Pending::AfterOptions | Pending::SkipThenProgram(_) => {
                        pending = Pending::None;
                        record(&w, line, &functions, &mut found);
                        continue;
                    }
                }
                if !command_position {
                    continue;
                }
                if bare && w == "case" {
                    case_depth += 1;
                    expect_case_in = true;
                    command_position = false;
                    continue;
                }
                if bare && (w == "for" || w == "select") {
                    in_for = true;
                    command_position = false;
                    continue;
                }
                if bare && is_assignment(&w) {
                    continue;
                }
                if bare
                    && matches!(
                        w.as_str(),
                        "if" | "then"
                            | "else"
                            | "elif"
                            | "while"
                            | "until"
                            | "do"
                            | "!"
                            | "{"
                            | "}"
                            | "time"
                            | "exec"
                            | "fi"
                            | "done"
                    )
                {
                    continue;
                }
                if bare && w == "command" {
                    pending = Pending::AfterOptions;
                    command_position = false;
                    continue;
                }
                command_position = false;
                record(&w, line, &functions, &mut found);
                pending = match w.as_str() {
                    "runuser" => Pending::AfterDoubleDash,
                    "timeout" => Pending::SkipThenProgram(1),
                    "env" => Pending::AfterOptions,
                    _ => Pending::None,
                };
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What a wrapper command still expects before the program it runs.
#[derive(Clone, Copy)]
enum Pending {
    None,
    /// The first word that is not an option.
    AfterOptions,
    /// Options up to `--`, then the program.
    AfterDoubleDash,
    /// Options and this many other words (a duration), then the program.
    SkipThenProgram(usize),
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            let name = name.trim_end_matches('+');
            let name = name.split('[').next().unwrap_or(name);
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn record(word: &str, line: usize, functions: &[String], found: &mut Vec<(usize, String)>) {
    if word.contains('\u{1}') || word.contains('$') || word.contains('*') {
        return;
    }
    // A script of the project (tools/setup.sh), not a host program.
    if word.contains('/') && !word.starts_with('/') {
        return;
    }
    if SHELL_BUILTINS.contains(&word) || functions.iter().any(|f| f == word) {
        return;
    }
    if plausible_program(word) {
        found.push((line, word.to_owned()));
    }
}

/// True for a file that is a shell script: `.sh`, or a shebang naming sh or bash.
pub fn is_shell_script(path: &Path, text: &str) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let first = text.lines().next().unwrap_or("");
    first.starts_with("#!") && (first.contains("bash") || first.ends_with("/sh"))
}

/// Every program used by the Rust sources and shell scripts below `root` (`target` and hidden
/// directories skipped), with file and line.
pub fn scan(root: &Path) -> std::io::Result<Vec<ProgramUse>> {
    let mut files = Vec::new();
    collect(root, root, &mut files)?;
    let mut uses = Vec::new();
    for rel in files {
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else {
            continue;
        };
        let found = if rel.extension().is_some_and(|e| e == "rs") {
            rust_uses(&text)
        } else if is_shell_script(&rel, &text) {
            shell_uses(&text)
        } else {
            continue;
        };
        uses.extend(found.into_iter().map(|(line, program)| ProgramUse {
            file: rel.clone(),
            line,
            program,
        }));
    }
    Ok(uses)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            // The CI entry point lives in .ci; other hidden directories (.git, .cache) are not ours.
            if name == "target" || (name.starts_with('.') && name != ".ci") {
                continue;
            }
            collect(root, &path, out)?;
        } else if ty.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[(usize, String)]) -> Vec<&str> {
        let mut v: Vec<&str> = found.iter().map(|(_, p)| p.as_str()).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn rust_call_sites_are_found_with_lines() {
        let src = r#"
fn a() {
    let out = Command::new("frobnicate").arg("x");
    lbtest::programs::command("curl");
    require(&["ip", "tshark"]);
    require("atftp");
    ns.spawn(&["nginx", "-c", conf]);
    lab.program(0, "ka", &["keepalived", "-n"]);
    ns.command("dnsmasq");
    let p = "/usr/lib/postgresql/15/bin/initdb";
    sh.run("ipvsadm -Ln", CMD); // a guest shell: not a host program
    stats.command("stats line") // not a name
}
"#;
        let found = rust_uses(src);
        assert_eq!(
            names(&found),
            [
                "/usr/lib/postgresql/15/bin/initdb",
                "atftp",
                "curl",
                "dnsmasq",
                "frobnicate",
                "ip",
                "keepalived",
                "nginx",
                "tshark"
            ]
        );
        assert!(found.contains(&(3, "frobnicate".to_owned())));
        assert!(found.contains(&(5, "tshark".to_owned())));
    }

    #[test]
    fn shell_commands_are_found_after_separators_and_in_substitutions() {
        let script = r#"#!/usr/bin/env bash
# a comment naming notaprogram
set -euo pipefail
out=${1:-target/x}
die() { printf 'x\n' >&2; exit 1; }
cargo build --release -p init 2>/dev/null || die "no"
busybox=$(command -v busybox || true)
libs=$(ldd "$prog" | awk '$2 == "=>" { print $3 }')
for lib in $libs; do cp "$lib" "$out"; done
if [[ -f x ]] && grep -q y z; then sed -n 1p a; fi
case "$mode" in
--check) CHECK=1 ;;
kvm | tcg) qemu-system-x86_64 -accel "$mode" ;;
esac
python3 - "$sock" <<'PY'
import json
notacommand here
PY
tools/setup.sh
X=1 Y=2 timeout 5 curl http://x/
echo "$(date +%s) and $(stat -c %Y f)"
(( n = n + 1 ))
exec tail -f log
runuser -u nobody -- rustup target list
"#;
        let found = shell_uses(script);
        assert_eq!(
            names(&found),
            [
                "awk",
                "busybox",
                "cargo",
                "cp",
                "curl",
                "date",
                "grep",
                "ldd",
                "python3",
                "qemu-system-x86_64",
                "runuser",
                "rustup",
                "sed",
                "stat",
                "tail",
                "timeout"
            ]
        );
        assert!(found.contains(&(6, "cargo".to_owned())), "{found:?}");
        assert!(found.contains(&(15, "python3".to_owned())), "{found:?}");
    }

    #[test]
    fn shell_scripts_are_recognised() {
        assert!(is_shell_script(Path::new("tools/x.sh"), ""));
        assert!(is_shell_script(
            Path::new(".ci/run"),
            "#!/usr/bin/env bash\n"
        ));
        assert!(is_shell_script(Path::new("x"), "#!/bin/sh\n"));
        assert!(!is_shell_script(
            Path::new("x.rs"),
            "#!/usr/bin/env python3\n"
        ));
    }
}
