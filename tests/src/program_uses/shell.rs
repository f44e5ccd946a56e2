//! Programs started by a shell script: the first word of every simple command, after
//! separators, keywords, assignments, redirections and wrappers (`exec`, `command -v X`,
//! `runuser … -- X`, `timeout N X`, `env X`), skipping builtins, the script's own functions,
//! case patterns and the words of a `for` list.

use super::plausible_program;
use super::shell_lexer::{tokenize, Tok, QUOTED};

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

/// Keywords that leave the next word in command position.
const PREFIX_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "while", "until", "do", "!", "{", "}", "time", "exec", "fi",
    "done",
];

/// Programs started by shell script `text`, with their lines.
pub fn shell_uses(text: &str) -> Vec<(usize, String)> {
    let toks = tokenize(text);
    let mut finder = Finder {
        functions: functions(&toks),
        command_position: true,
        ..Finder::default()
    };
    for (line, tok) in toks {
        finder.token(line, tok);
    }
    let mut found = finder.found;
    found.sort();
    found.dedup();
    found
}

/// The script's own functions: `name() {` and `function name`.
fn functions(toks: &[(usize, Tok)]) -> Vec<String> {
    let mut functions = Vec::new();
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
    functions
}

/// What a wrapper command still expects before the program it runs.
#[derive(Clone, Copy, Default)]
enum Pending {
    #[default]
    None,
    /// The first word that is not an option.
    AfterOptions,
    /// Options up to `--`, then the program.
    AfterDoubleDash,
    /// Options and this many other words (a duration), then the program.
    SkipThenProgram(usize),
}

#[derive(Default)]
struct Finder {
    functions: Vec<String>,
    found: Vec<(usize, String)>,
    /// The next word starts a command (when nothing below says otherwise).
    command_position: bool,
    /// Inside `case … in`, how deep.
    case_depth: usize,
    /// Before a case pattern's `)`.
    in_pattern: bool,
    /// After `case WORD`, waiting for `in`.
    expect_case_in: bool,
    /// After `for NAME`: words up to `do` are not commands.
    in_for: bool,
    /// The next word is a redirection's file.
    after_redirect: bool,
    pending: Pending,
}

impl Finder {
    fn token(&mut self, line: usize, tok: Tok) {
        match tok {
            Tok::Sep => {
                if !self.in_for {
                    self.command_position = true;
                }
                self.pending = Pending::None;
                self.after_redirect = false;
            }
            Tok::Close => {
                self.in_pattern = false;
                self.command_position = true;
            }
            Tok::CaseEnd => {
                self.in_pattern = self.case_depth > 0;
                self.command_position = true;
            }
            Tok::Redirect => self.after_redirect = true,
            Tok::Word(w) => self.word(line, &w),
        }
    }

    fn word(&mut self, line: usize, w: &str) {
        if std::mem::take(&mut self.after_redirect) {
            return;
        }
        let bare = !w.contains(QUOTED);
        if self.expect_case_in {
            if bare && w == "in" {
                self.expect_case_in = false;
                self.in_pattern = true;
            }
            return;
        }
        if bare && w == "esac" {
            self.case_depth = self.case_depth.saturating_sub(1);
            self.in_pattern = false;
            self.command_position = false;
            return;
        }
        if self.in_pattern {
            return;
        }
        if self.in_for {
            if bare && w == "do" {
                self.in_for = false;
                self.command_position = true;
            }
            return;
        }
        if self.wrapped(line, w) || !self.command_position {
            return;
        }
        self.command_word(line, w, bare);
    }

    /// A word after a wrapper (`command -v`, `runuser --`, `timeout N`, `env`): options are
    /// skipped, the program is recorded. True when the word was the wrapper's.
    fn wrapped(&mut self, line: usize, w: &str) -> bool {
        match self.pending {
            Pending::None => false,
            Pending::AfterOptions if w.starts_with('-') => true,
            Pending::AfterDoubleDash => {
                if w == "--" {
                    self.pending = Pending::AfterOptions;
                }
                true
            }
            Pending::SkipThenProgram(n) if w.starts_with('-') || n > 0 => {
                if !w.starts_with('-') {
                    self.pending = Pending::SkipThenProgram(n - 1);
                }
                true
            }
            Pending::AfterOptions | Pending::SkipThenProgram(_) => {
                self.pending = Pending::None;
                self.record(line, w);
                true
            }
        }
    }

    /// A word in command position: a keyword, an assignment, a wrapper or a program.
    fn command_word(&mut self, line: usize, w: &str, bare: bool) {
        if bare && w == "case" {
            self.case_depth += 1;
            self.expect_case_in = true;
            self.command_position = false;
            return;
        }
        if bare && (w == "for" || w == "select") {
            self.in_for = true;
            self.command_position = false;
            return;
        }
        if bare && (is_assignment(w) || PREFIX_KEYWORDS.contains(&w)) {
            return;
        }
        if bare && w == "command" {
            self.pending = Pending::AfterOptions;
            self.command_position = false;
            return;
        }
        self.command_position = false;
        self.record(line, w);
        self.pending = match w {
            "runuser" => Pending::AfterDoubleDash,
            "timeout" => Pending::SkipThenProgram(1),
            "env" => Pending::AfterOptions,
            _ => Pending::None,
        };
    }

    fn record(&mut self, line: usize, word: &str) {
        if word.contains(QUOTED) || word.contains('$') || word.contains('*') {
            return;
        }
        // A script of the project (tools/setup.sh), not a host program.
        if word.contains('/') && !word.starts_with('/') {
            return;
        }
        if SHELL_BUILTINS.contains(&word) || self.functions.iter().any(|f| f == word) {
            return;
        }
        if plausible_program(word) {
            self.found.push((line, word.to_owned()));
        }
    }
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
