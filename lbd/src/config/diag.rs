//! Diagnostics: what is wrong with a config, where, and what would be right.
//!
//! Rendered like cargo/rustc errors so operators get `file:line:col`, the offending line and a
//! caret under the value, plus a `help:` line with the fix.

use std::fmt;
use std::ops::Range;

/// How bad a finding is. Errors refuse the config; warnings are printed and the config is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding about a config, pointing at a byte range of the source text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Short stable identifier, e.g. `duplicate-service`, usable in docs and tests.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the source; `None` when the problem is the file as a whole.
    pub span: Option<Range<usize>>,
    /// What would be right.
    pub help: Option<String>,
    /// A second place involved (e.g. the first definition of a duplicate).
    pub related: Option<(Range<usize>, String)>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            help: None,
            related: None,
        }
    }

    pub fn warning(
        code: &'static str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Range<usize>, note: impl Into<String>) -> Self {
        self.related = Some((span, note.into()));
        self
    }

    /// In-place forms of [`Diagnostic::help`] and [`Diagnostic::related`].
    pub fn and_help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }

    pub fn and_related(&mut self, span: Range<usize>, note: impl Into<String>) -> &mut Self {
        self.related = Some((span, note.into()));
        self
    }

    /// Renders the diagnostic against the source it came from.
    pub fn render(&self, file: &str, src: &str) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{kind}[{}]: {}\n", self.code, self.message));
        match &self.span {
            Some(span) => {
                let loc = Location::of(src, span.start);
                out.push_str(&format!("  --> {file}:{}:{}\n", loc.line, loc.column));
                snippet(&mut out, src, span, None);
            }
            None => out.push_str(&format!("  --> {file}\n")),
        }
        if let Some((span, note)) = &self.related {
            let loc = Location::of(src, span.start);
            out.push_str(&format!("  ::: {file}:{}:{}\n", loc.line, loc.column));
            snippet(&mut out, src, span, Some(note));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("   = help: {help}\n"));
        }
        out
    }

    /// `file:line:col: message` on one line, for logs.
    pub fn one_line(&self, file: &str, src: &str) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let at = match &self.span {
            Some(span) => {
                let loc = Location::of(src, span.start);
                format!("{file}:{}:{}", loc.line, loc.column)
            }
            None => file.to_string(),
        };
        match &self.help {
            Some(help) => format!("{at}: {kind}[{}]: {} ({help})", self.code, self.message),
            None => format!("{at}: {kind}[{}]: {}", self.code, self.message),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn of(src: &str, offset: usize) -> Location {
        let offset = offset.min(src.len());
        let before = &src[..floor_char_boundary(src, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn snippet(out: &mut String, src: &str, span: &Range<usize>, note: Option<&str>) {
    let start = floor_char_boundary(src, span.start.min(src.len()));
    let loc = Location::of(src, start);
    let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    let line_text = src[line_start..line_end].trim_end_matches('\r');
    let gutter = loc.line.to_string().len();
    let pad = " ".repeat(gutter);
    // Underline to the end of the span or of the line, whichever comes first.
    let end = floor_char_boundary(src, span.end.clamp(start, line_end));
    let width = src[start..end].chars().count().max(1);
    out.push_str(&format!("{pad} |\n"));
    out.push_str(&format!("{} | {line_text}\n", loc.line));
    out.push_str(&format!(
        "{pad} | {}{}{}\n",
        " ".repeat(loc.column - 1),
        "^".repeat(width),
        note.map(|n| format!(" {n}")).unwrap_or_default()
    ));
}

/// A refused config: every error (and warning) found, in source order.
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub file: String,
    pub source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }

    /// All diagnostics as `file:line:col: ...` lines, for logs.
    pub fn one_line_each(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .map(|d| d.one_line(&self.file, &self.source_text))
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{}", d.render(&self.file, &self.source_text))?;
        }
        let n = self.error_count();
        write!(
            f,
            "{}: refused: {n} error{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_chars() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(Location::of(src, 0), Location { line: 1, column: 1 });
        let off = src.find('"').unwrap();
        assert_eq!(Location::of(src, off), Location { line: 2, column: 6 });
    }

    #[test]
    fn render_points_at_the_value() {
        let src = "[service.web]\nscheduler = \"wrong\"\n";
        let start = src.find("\"wrong\"").unwrap();
        let d = Diagnostic::error("bad-scheduler", Some(start..start + 7), "unknown scheduler")
            .help("use one of rr, wrr");
        let text = d.render("site.toml", src);
        assert_eq!(
            text,
            "error[bad-scheduler]: unknown scheduler\n  --> site.toml:2:13\n  |\n2 | scheduler = \"wrong\"\n  |             ^^^^^^^\n   = help: use one of rr, wrr\n"
        );
        assert_eq!(
            d.one_line("site.toml", src),
            "site.toml:2:13: error[bad-scheduler]: unknown scheduler (use one of rr, wrr)"
        );
    }
}
