//! Stage 1 of the keepalived converter: source lines into words.
//!
//! Follows keepalived's reader: `#` and `!` comments, `"` and `'` quoting, `include` (relative to
//! the including file, with globs), `$NAME=value` definitions and their `$NAME` / `${NAME}`
//! substitution, and `@^NAME` conditional lines; every word keeps its file and line.

use crate::convert::{ConvertError, FileSystem, Loc, Sources, Warning};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A word, a brace, or the end of a source line (items end there unless a block follows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads a file and the files it includes into one stream of words.
pub(super) struct Lexer<'a> {
    fs: &'a dyn FileSystem,
    pub(super) src: Sources,
    pub(super) toks: Vec<(Tok, Loc)>,
    defs: BTreeMap<String, String>,
    pub(super) warnings: Vec<Warning>,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(fs: &'a dyn FileSystem) -> Self {
        Lexer {
            fs,
            src: Sources::default(),
            toks: Vec::new(),
            defs: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Reads `path` (included at `from`, `depth` includes deep).
    pub(super) fn file(
        &mut self,
        path: &Path,
        from: Option<Loc>,
        depth: usize,
    ) -> Result<(), ConvertError> {
        let text = match self.fs.read(path) {
            Ok(t) => t,
            Err(e) => {
                return Err(match from {
                    None => ConvertError::Read {
                        file: path.display().to_string(),
                        source: e,
                    },
                    Some(at) => self.src.error(
                        at,
                        format!("cannot read included file {}: {e}", path.display()),
                    ),
                })
            }
        };
        let idx = self.src.add(&path.display().to_string(), &text);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (i, raw) in text.lines().enumerate() {
            let at = Loc {
                file: idx,
                line: i + 1,
            };
            let mut line = raw.to_string();
            let trimmed = raw.trim_start();
            if let Some(rest) = trimmed.strip_prefix('@') {
                match rest.strip_prefix('^') {
                    // `@^NAME text`: used unless keepalived runs as instance NAME.
                    Some(r) => {
                        line = r
                            .trim_start()
                            .split_once(char::is_whitespace)
                            .map_or(String::new(), |(_, after)| after.to_string());
                    }
                    None => {
                        self.warnings.push(self.src.warning(
                            at,
                            "conditional line for a named keepalived instance (@NAME): skipped, as keepalived does when started without -i",
                        ));
                        continue;
                    }
                }
            } else if trimmed.starts_with('$') {
                if let Some((name, value)) = definition(trimmed) {
                    self.defs.insert(name, value);
                    continue;
                }
            } else if trimmed.starts_with('~') {
                self.warnings.push(self.src.warning(
                    at,
                    "sequence and list blocks (~SEQ, ~LST) are not expanded: line skipped; write the expanded lines",
                ));
                continue;
            }
            if !self.defs.is_empty() && line.contains('$') {
                line = substitute(&line, &self.defs);
            }
            let words = lex_line(&line).map_err(|m| self.src.error(at, m))?;
            if let Some(Tok::Word(w)) = words.first() {
                if matches!(
                    w.as_str(),
                    "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
                ) {
                    self.include(&words, &dir, at, depth)?;
                    continue;
                }
            }
            self.toks.extend(words.into_iter().map(|t| (t, at)));
            self.toks.push((Tok::Eol, at));
        }
        Ok(())
    }

    fn include(
        &mut self,
        words: &[Tok],
        dir: &Path,
        at: Loc,
        depth: usize,
    ) -> Result<(), ConvertError> {
        let Some(Tok::Word(pattern)) = words.get(1) else {
            return Err(self.src.error(at, "include needs a file name"));
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(self.src.error(
                at,
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)"),
            ));
        }
        if pattern.contains('{') {
            self.warnings.push(self.src.warning(
                at,
                "brace expressions in include are not expanded: list the files with one include each",
            ));
        }
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let full_text = full.display().to_string();
        let files = if full_text.contains(['*', '?', '[']) {
            self.fs.glob(&full_text)
        } else {
            vec![full]
        };
        let mut read_any = false;
        for f in files {
            match self.fs.read(&f) {
                Ok(_) => {
                    self.file(&f, Some(at), depth + 1)?;
                    read_any = true;
                }
                Err(e) => self.warnings.push(self.src.warning(
                    at,
                    format!(
                        "included file {} not read ({e}): skipped, as keepalived does",
                        f.display()
                    ),
                )),
            }
        }
        if !read_any && !full_text.contains(['*', '?', '[']) {
            // Already warned above.
        } else if !read_any {
            self.warnings.push(
                self.src
                    .warning(at, format!("include {pattern} matched no file")),
            );
        }
        Ok(())
    }
}

/// `$NAME=value` (a parameter definition).
fn definition(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name.to_string(), value.trim().to_string()))
}

/// Replaces `$NAME` and `${NAME}` by their definitions; unknown names stay as written.
fn substitute(line: &str, defs: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match defs.get(name) {
            Some(v) if !name.is_empty() => {
                out.push_str(v);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line into words and braces. Comments start at `#` or `!`; `"` and `'` quote (the quotes
/// go, text next to them joins the word); `\` escapes inside quotes.
fn lex_line(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    let flush = |cur: &mut String, in_word: &mut bool, toks: &mut Vec<Tok>| {
        if *in_word {
            toks.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                match chars.next() {
                    Some('n') => cur.push('\n'),
                    Some('t') => cur.push('\t'),
                    Some('r') => cur.push('\r'),
                    Some(x) => cur.push(x),
                    None => cur.push('\\'),
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                in_word = true;
            }
            '#' | '!' => break,
            '{' => {
                flush(&mut cur, &mut in_word, &mut toks);
                toks.push(Tok::Open);
            }
            '}' => {
                flush(&mut cur, &mut in_word, &mut toks);
                toks.push(Tok::Close);
            }
            c if c.is_whitespace() => flush(&mut cur, &mut in_word, &mut toks),
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!(
            "unterminated quoted string: a closing {q} is missing"
        ));
    }
    flush(&mut cur, &mut in_word, &mut toks);
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        lex_line(line)
            .unwrap()
            .into_iter()
            .map(|t| match t {
                Tok::Word(w) => w,
                Tok::Open => "{".into(),
                Tok::Close => "}".into(),
                Tok::Eol => "\\n".into(),
            })
            .collect()
    }

    #[test]
    fn lexing() {
        assert_eq!(
            words("vrrp_instance VI_1 {"),
            ["vrrp_instance", "VI_1", "{"]
        );
        assert_eq!(words("a{b}c"), ["a", "{", "b", "}", "c"]);
        assert_eq!(words("priority 100 # comment"), ["priority", "100"]);
        assert_eq!(words("priority 100 ! comment"), ["priority", "100"]);
        assert_eq!(words("abcd\" efg h jkl \"mnop"), ["abcd efg h jkl mnop"]);
        assert_eq!(
            words("abcd \"efg h jkl\" mnop"),
            ["abcd", "efg h jkl", "mnop"]
        );
        assert_eq!(words("x \"a\\\"b # c\""), ["x", "a\"b # c"]);
        assert_eq!(
            words("misc_path \"/bin/check 'a b'\""),
            ["misc_path", "/bin/check 'a b'"]
        );
        assert!(lex_line("x \"open").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn substitution() {
        let mut defs = BTreeMap::new();
        defs.insert("IF".to_string(), "eth1".to_string());
        assert_eq!(substitute("interface $IF", &defs), "interface eth1");
        assert_eq!(substitute("x ${IF}y $NOPE", &defs), "x eth1y $NOPE");
        assert_eq!(definition("$IF=eth1"), Some(("IF".into(), "eth1".into())));
        assert_eq!(definition("$=x"), None);
    }
}
