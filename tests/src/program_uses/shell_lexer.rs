//! Shell text as tokens: words (with quoted parts marked), command separators, `)`, `;;`,
//! redirections. Command substitutions (`$(…)`, backticks), also inside double quotes, are
//! tokenised in place as nested commands, wrapped in separators; heredoc bodies, comments,
//! parameter expansions and arithmetic are skipped.

/// A token, with the line it starts on.
#[derive(Debug, PartialEq)]
pub(super) enum Tok {
    /// A word; quoted parts are marked with `\u{1}` so they are never taken for a keyword.
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

/// Marks a quoted part of a word.
pub(super) const QUOTED: char = '\u{1}';

pub(super) fn tokenize(text: &str) -> Vec<(usize, Tok)> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        word: String::new(),
        word_line: 1,
        toks: Vec::new(),
        heredocs: Vec::new(),
        substitutions: Vec::new(),
    };
    while lx.i < lx.chars.len() {
        lx.step();
    }
    lx.flush();
    lx.toks
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    word: String,
    word_line: usize,
    toks: Vec<(usize, Tok)>,
    /// Heredoc terminators (and whether tabs are stripped) waiting for the end of the line.
    heredocs: Vec<(String, bool)>,
    /// For each open `$(`, the depth of `(` inside it, so `)` closes the right one.
    substitutions: Vec<usize>,
}

impl Lexer {
    fn at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn flush(&mut self) {
        if !self.word.is_empty() {
            self.toks
                .push((self.word_line, Tok::Word(std::mem::take(&mut self.word))));
        }
    }

    fn push(&mut self, tok: Tok) {
        self.toks.push((self.line, tok));
    }

    /// Appends `c` to the current word, which starts on this line if it is new.
    fn add(&mut self, c: char) {
        if self.word.is_empty() {
            self.word_line = self.line;
        }
        self.word.push(c);
    }

    fn step(&mut self) {
        let c = self.chars[self.i];
        match c {
            '\\' if self.at(1) == Some('\n') => {
                self.i += 2;
                self.line += 1;
            }
            '\\' => {
                self.add(self.at(1).unwrap_or('\\'));
                self.i += 2;
            }
            '\n' => self.newline(),
            '#' if self.word.is_empty() => {
                while self.at(0).is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
            }
            ' ' | '\t' => {
                self.flush();
                self.i += 1;
            }
            '\'' => self.single_quoted(),
            '"' => self.double_quoted(),
            '$' if self.at(1) == Some('{') => self.parameter(),
            '$' if self.at(1) == Some('(') && self.at(2) == Some('(') => {
                // Arithmetic: no commands inside.
                let end = matching_paren(&self.chars, self.i + 1);
                self.add('$');
                self.i = end + 1;
            }
            '$' if self.at(1) == Some('(') => {
                self.flush();
                self.push(Tok::Sep);
                self.substitutions.push(0);
                self.i += 2;
            }
            '`' => {
                self.flush();
                self.push(Tok::Sep);
                self.i += 1;
            }
            '(' if self.word.ends_with('=') => {
                // NAME=(a b c): an array assignment; its words are values, not commands.
                self.i = matching_paren(&self.chars, self.i) + 1;
            }
            '(' if self.word.is_empty() && self.at(1) == Some('(') => {
                // (( arithmetic )): skip.
                self.i = matching_paren(&self.chars, self.i) + 1;
            }
            '(' => {
                self.flush();
                if let Some(d) = self.substitutions.last_mut() {
                    *d += 1;
                }
                self.push(Tok::Sep);
                self.i += 1;
            }
            ')' => self.close_paren(),
            ';' => {
                self.flush();
                if matches!(self.at(1), Some(';' | '&')) {
                    self.push(Tok::CaseEnd);
                    self.i += 2;
                } else {
                    self.push(Tok::Sep);
                    self.i += 1;
                }
            }
            '|' | '&' => self.pipe_or_background(c),
            '<' | '>' => self.redirection(),
            _ => {
                self.add(c);
                self.i += 1;
            }
        }
    }

    /// The end of a line: a separator, then the bodies of the heredocs the line opened.
    fn newline(&mut self) {
        self.flush();
        self.push(Tok::Sep);
        self.line += 1;
        self.i += 1;
        for (term, strip_tabs) in std::mem::take(&mut self.heredocs) {
            loop {
                let start = self.i;
                while self.at(0).is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                let body_line: String = self.chars[start..self.i].iter().collect();
                self.i += 1;
                self.line += 1;
                let body_line = if strip_tabs {
                    body_line.trim_start_matches('\t')
                } else {
                    &body_line
                };
                if body_line == term || self.i >= self.chars.len() {
                    break;
                }
            }
        }
    }

    fn single_quoted(&mut self) {
        self.add(QUOTED);
        self.i += 1;
        while let Some(c) = self.at(0).filter(|c| *c != '\'') {
            if c == '\n' {
                self.line += 1;
            }
            self.word.push(c);
            self.i += 1;
        }
        self.i += 1;
    }

    fn double_quoted(&mut self) {
        self.add(QUOTED);
        self.i += 1;
        while let Some(c) = self.at(0).filter(|c| *c != '"') {
            match c {
                '\\' => {
                    self.word.extend(self.at(1));
                    self.i += 2;
                }
                '$' if self.at(1) == Some('(') && self.at(2) != Some('(') => {
                    // A command substitution inside quotes: scanned on its own.
                    let end = matching_paren(&self.chars, self.i + 1);
                    let inner: String = self.chars[self.i + 2..end.min(self.chars.len())]
                        .iter()
                        .collect();
                    self.push(Tok::Sep);
                    for (l, t) in tokenize(&inner) {
                        self.toks.push((self.line + l - 1, t));
                    }
                    self.push(Tok::Sep);
                    self.line += inner.matches('\n').count();
                    self.word.push('$');
                    self.i = end + 1;
                }
                c => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    self.word.push(c);
                    self.i += 1;
                }
            }
        }
        self.i += 1;
    }

    /// `${...}`: part of the word, never a command.
    fn parameter(&mut self) {
        if self.word.is_empty() {
            self.word_line = self.line;
        }
        let mut depth = 0;
        while let Some(c) = self.at(0) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            self.word.push(c);
            self.i += 1;
        }
        self.word.push('}');
        self.i += 1;
    }

    fn close_paren(&mut self) {
        self.flush();
        match self.substitutions.last_mut() {
            Some(0) => {
                self.substitutions.pop();
                self.push(Tok::Sep);
            }
            Some(d) => {
                *d -= 1;
                self.push(Tok::Close);
            }
            None => self.push(Tok::Close),
        }
        self.i += 1;
    }

    fn pipe_or_background(&mut self, c: char) {
        self.flush();
        if c == '&' && self.at(1) == Some('>') {
            self.push(Tok::Redirect);
            self.i += 2;
            return;
        }
        self.push(Tok::Sep);
        self.i += 1;
        if self.at(0) == Some(c) {
            self.i += 1;
        }
    }

    fn redirection(&mut self) {
        // A leading fd number (2>) belongs to the redirection.
        if self.word.chars().all(|d| d.is_ascii_digit()) {
            self.word.clear();
        }
        self.flush();
        let mut j = self.i;
        while j < self.chars.len() && matches!(self.chars[j], '<' | '>' | '&' | '-') {
            j += 1;
        }
        let op: String = self.chars[self.i..j].iter().collect();
        if op.starts_with("<<") && !op.starts_with("<<<") {
            // Heredoc: read the terminator word; the body follows the end of the line.
            let strip_tabs = op.ends_with('-');
            while j < self.chars.len() && self.chars[j] == ' ' {
                j += 1;
            }
            let start = j;
            while j < self.chars.len()
                && !self.chars[j].is_whitespace()
                && !";|&)".contains(self.chars[j])
            {
                j += 1;
            }
            let term: String = self.chars[start..j]
                .iter()
                .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                .collect();
            self.heredocs.push((term, strip_tabs));
            self.i = j;
            return;
        }
        if op.ends_with('&') && self.chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
            // >&2: a descriptor, no file word follows.
            self.i = j + 1;
            return;
        }
        self.push(Tok::Redirect);
        self.i = j;
    }
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
