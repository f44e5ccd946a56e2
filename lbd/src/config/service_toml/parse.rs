//! The reader: one service's run of tables, in the subset of TOML that services are written
//! in, into a [`ServiceText`]. Anything outside that subset, and anything TOML refuses, makes
//! it answer `None`.

use super::{Entry, Node, RealText, ServiceText, Value};
use crate::config::layout;
use std::borrow::Cow;
use std::ops::Range;

/// Reads `src[range]`, a run of tables that [`crate::config::layout`] found to belong to one
/// service. Spans are positions in `src`.
pub fn service(src: &str, range: Range<usize>) -> Option<ServiceText<'_>> {
    let (text, end) = read(src, range.start, range.end)?;
    (end == range.end).then_some(text)
}

/// Reads the service whose first header opens the line at `start`, up to the header of
/// another item or the end of `src`: the service, and where its run of tables ends (as
/// [`crate::config::layout`] would split the text there). The text is read once, rather than
/// once by the layout reader and again here.
pub fn service_run(src: &str, start: usize) -> Option<(ServiceText<'_>, usize)> {
    read(src, start, src.len())
}

/// [`service_run`] within `src[..end]`.
fn read(src: &str, start: usize, end: usize) -> Option<(ServiceText<'_>, usize)> {
    let mut r = Reader {
        src,
        bytes: &src.as_bytes()[..end],
        pos: start,
    };
    let mut out: Option<ServiceText> = None;
    // Where the lines of keys go: the service's own table, or its last real.
    let mut in_real = false;
    // A real's header as nearly every real's is written, once the service's name is known:
    // such a line is taken whole, without reading it key by key.
    let mut plain_real_header = String::new();
    while r.pos < r.bytes.len() {
        let line_start = r.pos;
        r.skip_blanks();
        match r.peek() {
            None => break,
            Some(b'\n' | b'\r' | b'#') => r.end_of_line()?,
            Some(b'[') => {
                let at = r.pos;
                let plain_end = at + plain_real_header.len();
                if let Some(text) = out.as_mut().filter(|_| {
                    !plain_real_header.is_empty()
                        && r.bytes[at..].starts_with(plain_real_header.as_bytes())
                        && r.bytes.get(plain_end) == Some(&b'\n')
                }) {
                    let keys = text.real_keys.len();
                    text.reals.push(RealText {
                        span: at..plain_end,
                        keys: keys..keys,
                    });
                    in_real = true;
                    r.pos = plain_end + 1;
                    continue;
                }
                let Some(header) = r.header() else {
                    // Another item's header ends the run; one of this service's that the
                    // reader does not take (or no header at all) sends the file elsewhere.
                    let line_end = r.bytes[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(r.bytes.len(), |i| at + i + 1);
                    let other = layout::header_service(&r.bytes[at..line_end])?;
                    let text = out?;
                    return (other != Some(&*text.name)).then_some((text, line_start));
                };
                let text = match &mut out {
                    None => {
                        // The service's own table comes first, once.
                        if header.real {
                            return None;
                        }
                        if header.name.bytes().all(|b| BARE_KEY[usize::from(b)]) {
                            plain_real_header = format!("[[service.{}.real]]", header.name);
                        }
                        // Room for the reals of most services at once; larger ones grow.
                        let reals = 16;
                        out = Some(ServiceText {
                            name: header.name,
                            name_span: header.name_span,
                            keys: Vec::with_capacity(8),
                            reals: Vec::with_capacity(reals),
                            real_keys: Vec::with_capacity(reals * 2),
                        });
                        continue;
                    }
                    Some(text) => text,
                };
                if header.name != text.name {
                    return out.map(|text| (text, line_start));
                }
                if !header.real {
                    return None;
                }
                let at = text.real_keys.len();
                text.reals.push(RealText {
                    span: header.span,
                    keys: at..at,
                });
                in_real = true;
            }
            Some(_) => {
                let text = out.as_mut()?;
                let entry = r.key_value()?;
                if in_real {
                    let real = text.reals.last_mut()?;
                    let keys = &text.real_keys[real.keys.clone()];
                    if keys.iter().any(|e| e.key == entry.key) {
                        return None;
                    }
                    text.real_keys.push(entry);
                    real.keys.end += 1;
                } else {
                    // `real` is the array of tables: set as a key it is another TOML shape.
                    if entry.key == "real" || text.keys.iter().any(|e| e.key == entry.key) {
                        return None;
                    }
                    text.keys.push(entry);
                }
            }
        }
    }
    out.map(|text| (text, r.pos))
}

/// A header the reader takes: `[service.NAME]` or `[[service.NAME.real]]`.
struct Header<'i> {
    real: bool,
    name: Cow<'i, str>,
    name_span: Range<usize>,
    span: Range<usize>,
}

struct Reader<'i> {
    src: &'i str,
    bytes: &'i [u8],
    pos: usize,
}

impl<'i> Reader<'i> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek() == Some(b)).then(|| self.pos += 1)
    }

    /// Spaces and tabs.
    #[inline(always)]
    fn skip_blanks(&mut self) {
        self.pos += self.bytes[self.pos..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    }

    /// Blanks, an optional comment, and the end of the line (or of the text).
    fn end_of_line(&mut self) -> Option<()> {
        self.skip_blanks();
        if self.peek() == Some(b'#') {
            self.pos += 1;
            while let Some(b) = self.peek() {
                match b {
                    b'\n' | b'\r' => break,
                    // TOML refuses control characters in comments.
                    b'\t' => {}
                    0..=0x1f | 0x7f => return None,
                    _ => {}
                }
                self.pos += 1;
            }
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(b'\r') => {
                self.pos += 1;
                self.eat(b'\n')
            }
            Some(_) => None,
        }
    }

    /// Blanks, line ends and comments, as arrays allow between their values.
    fn skip_space_in_array(&mut self) -> Option<()> {
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(b'\n' | b'\r' | b'#') => self.end_of_line()?,
                _ => return Some(()),
            }
        }
    }

    fn header(&mut self) -> Option<Header<'i>> {
        let start = self.pos;
        self.eat(b'[')?;
        let real = self.eat(b'[').is_some();
        // service, NAME and real at most.
        let mut path: [Option<(Cow<'i, str>, Range<usize>)>; 3] = [None, None, None];
        let mut parts = 0;
        loop {
            self.skip_blanks();
            let key = self.key()?;
            *path.get_mut(parts)? = Some(key);
            parts += 1;
            self.skip_blanks();
            if self.eat(b'.').is_none() {
                break;
            }
        }
        self.eat(b']')?;
        if real {
            self.eat(b']')?;
        }
        let span = start..self.pos;
        self.end_of_line()?;
        let [first, second, third] = path;
        let ((first, _), (name, name_span)) = (first?, second?);
        if first != "service" {
            return None;
        }
        match (real, third) {
            (false, None) => {}
            (true, Some((last, _))) if last == "real" => {}
            _ => return None,
        }
        Some(Header {
            real,
            name,
            name_span,
            span,
        })
    }

    /// A bare or quoted key, with its span (quotes included).
    fn key(&mut self) -> Option<(Cow<'i, str>, Range<usize>)> {
        let start = self.pos;
        let key = match self.peek()? {
            b'"' => self.basic_string()?,
            b'\'' => self.literal_string()?,
            _ => {
                self.pos += self.bytes[start..]
                    .iter()
                    .take_while(|&&b| BARE_KEY[usize::from(b)])
                    .count();
                if self.pos == start {
                    return None;
                }
                Cow::Borrowed(&self.src[start..self.pos])
            }
        };
        Some((key, start..self.pos))
    }

    /// `key = value` and the end of its line.
    fn key_value(&mut self) -> Option<Entry<'i>> {
        let entry = self.entry()?;
        self.end_of_line()?;
        Some(entry)
    }

    /// `key = value` (no dotted keys).
    fn entry(&mut self) -> Option<Entry<'i>> {
        let (key, key_span) = self.key()?;
        self.skip_blanks();
        self.eat(b'=')?;
        self.skip_blanks();
        let value = self.value()?;
        Some(Entry {
            key,
            key_span,
            value,
        })
    }

    fn value(&mut self) -> Option<Node<'i>> {
        let start = self.pos;
        let value = match self.peek()? {
            b'"' => Value::Str(self.basic_string()?),
            b'\'' => Value::Str(self.literal_string()?),
            b'[' => Value::Array(self.array()?),
            b'{' => Value::Table(self.inline_table()?),
            b't' | b'f' => Value::Bool(self.boolean()?),
            _ => Value::Int(self.integer()?),
        };
        Some(Node {
            span: start..self.pos,
            value,
        })
    }

    /// Whether a scalar ends here: what may follow a number or a boolean.
    #[inline(always)]
    fn at_delimiter(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'#' | b',' | b']' | b'}')
        )
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.bytes[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        self.at_delimiter().then_some(value)
    }

    /// A decimal integer (`-12`, `1_000`); floats, dates and other bases are left to the
    /// toml crate.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.pos;
        let mut last_digit = false;
        // Built towards its sign as it is read (so that i64::MIN reads); `None` once out of
        // range, as `i64::from_str` would say.
        let mut value = Some(0i64);
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => {
                    last_digit = true;
                    let d = i64::from(b - b'0');
                    value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
                        if negative {
                            v.checked_sub(d)
                        } else {
                            v.checked_add(d)
                        }
                    });
                }
                // Only between digits.
                b'_' if last_digit => last_digit = false,
                _ => break,
            }
            self.pos += 1;
        }
        let text = &self.src[digits..self.pos];
        // No leading zeros; ends on a digit, before a delimiter.
        if !last_digit || (text.len() > 1 && text.starts_with('0')) || !self.at_delimiter() {
            return None;
        }
        value
    }

    /// `"..."` on one line, escapes resolved.
    fn basic_string(&mut self) -> Option<Cow<'i, str>> {
        self.eat(b'"')?;
        if self.peek() == Some(b'"') && self.bytes.get(self.pos + 1) == Some(&b'"') {
            // A multi-line string.
            return None;
        }
        let start = self.pos;
        // Up to the first byte that is not plain string content (nearly always the end).
        self.pos += self.bytes[start..]
            .iter()
            .take_while(|&&b| !STRING_STOPS[usize::from(b)])
            .count();
        let mut owned: Option<String> = None;
        loop {
            let b = self.peek()?;
            match b {
                b'"' => break,
                b'\\' => {
                    let s = owned.get_or_insert_with(|| self.src[start..self.pos].to_string());
                    let (c, len) = match self.bytes.get(self.pos + 1)? {
                        b'b' => ('\u{8}', 2),
                        b't' => ('\t', 2),
                        b'n' => ('\n', 2),
                        b'f' => ('\u{c}', 2),
                        b'r' => ('\r', 2),
                        b'"' => ('"', 2),
                        b'\\' => ('\\', 2),
                        b'u' => (unicode_escape(self.src, self.pos + 2, 4)?, 6),
                        b'U' => (unicode_escape(self.src, self.pos + 2, 8)?, 10),
                        _ => return None,
                    };
                    self.pos += len;
                    s.push(c);
                    continue;
                }
                b'\t' => {}
                0..=0x1f | 0x7f => return None,
                _ => {}
            }
            let len = utf8_len(b);
            if let Some(s) = &mut owned {
                s.push_str(&self.src[self.pos..self.pos + len]);
            }
            self.pos += len;
        }
        let end = self.pos;
        self.pos += 1;
        Some(match owned {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(&self.src[start..end]),
        })
    }

    /// `'...'` on one line.
    fn literal_string(&mut self) -> Option<Cow<'i, str>> {
        self.eat(b'\'')?;
        if self.peek() == Some(b'\'') && self.bytes.get(self.pos + 1) == Some(&b'\'') {
            return None;
        }
        let start = self.pos;
        loop {
            match self.peek()? {
                b'\'' => break,
                b'\t' => self.pos += 1,
                0..=0x1f | 0x7f => return None,
                b => self.pos += utf8_len(b),
            }
        }
        let s = &self.src[start..self.pos];
        self.pos += 1;
        Some(Cow::Borrowed(s))
    }

    /// `[a, b, ...]`, over lines, with comments and a trailing comma.
    fn array(&mut self) -> Option<Vec<Node<'i>>> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_space_in_array()?;
            if self.eat(b']').is_some() {
                return Some(items);
            }
            items.push(self.value()?);
            self.skip_space_in_array()?;
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                return Some(items);
            }
        }
    }

    /// `{ k = v, ... }` on one line, without a trailing comma (what TOML 1.0 allows).
    fn inline_table(&mut self) -> Option<Vec<Entry<'i>>> {
        self.eat(b'{')?;
        let mut entries: Vec<Entry> = Vec::new();
        self.skip_blanks();
        if self.eat(b'}').is_some() {
            return Some(entries);
        }
        loop {
            self.skip_blanks();
            let entry = self.entry()?;
            if entries.iter().any(|e| e.key == entry.key) {
                return None;
            }
            entries.push(entry);
            self.skip_blanks();
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(entries);
            }
        }
    }
}

/// The bytes a bare key is made of.
const BARE_KEY: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-');
        b += 1;
    }
    t
};

/// The bytes that end the plain run of a basic string: its quote, an escape, and the control
/// characters TOML refuses there (a tab is allowed).
const STRING_STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8, b'"' | b'\\' | 0..=0x08 | 0x0a..=0x1f | 0x7f);
        b += 1;
    }
    t
};

/// The character of the `digits` hexadecimal digits at `at` (after `\u` or `\U`).
fn unicode_escape(src: &str, at: usize, digits: usize) -> Option<char> {
    let hex = src.get(at..at + digits)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(hex, 16).ok()?)
}

/// The length of the UTF-8 sequence that starts with `b` (the text is valid UTF-8).
fn utf8_len(b: u8) -> usize {
    match b {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}
