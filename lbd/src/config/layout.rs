//! Where each item of a config file is written: the text split at its table headers into
//! runs of consecutive tables that belong to one item (`[service.web]` with its
//! `[[service.web.real]]`s is one run). The incremental loader uses it to find which services
//! an edit touched; anything this reader does not follow exactly makes it answer `None`, and
//! the caller parses the whole file instead.
//!
//! It reads just enough TOML for that: headers at the start of a line, and, to know when a
//! `[` at the start of a line is a header, strings (basic, literal, multi-line), comments and
//! brackets of arrays and inline tables that span lines.

use std::ops::Range;

/// What a run of tables belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Text before the first header.
    Preamble,
    /// `[service.NAME]` and the tables under it.
    Service(String),
    /// Any other header (`[node]`, `[vrrp.instance.x]`, `[check.y]`, `[service]` itself).
    Other,
}

/// A run of consecutive tables of one item, from its first header to the next run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub item: Item,
    pub range: Range<usize>,
}

/// Splits `text` into segments; the segments cover the text, in order.
pub fn segments(text: &str) -> Option<Vec<Segment>> {
    let mut out = vec![Segment {
        item: Item::Preamble,
        range: 0..0,
    }];
    scan(text, 0, text.len(), false, &mut out)?;
    Some(out)
}

/// Reads on from `pos` (the start of a line outside any string or bracket) to the next
/// service's first header, adding the segments of the items before it to `out`: where that
/// header's line starts, or `None` at the end of the text. The caller reads the service and
/// carries on from where it ends. `None` (outer) when the text cannot be followed.
pub fn next_service(text: &str, pos: usize, out: &mut Vec<Segment>) -> Option<Option<usize>> {
    let stop = scan(text, pos, text.len(), true, out)?;
    Some((stop < text.len()).then_some(stop))
}

/// The segments of `text[start..end]`, where `start` is the start of a header line and `end`
/// the end of the text or the start of a line outside any string or bracket.
pub fn segments_in(text: &str, start: usize, end: usize) -> Option<Vec<Segment>> {
    if !(start == 0 || text.as_bytes().get(start.wrapping_sub(1)) == Some(&b'\n'))
        || !(end == text.len() || (end > 0 && text.as_bytes()[end - 1] == b'\n'))
        || start >= end
    {
        return None;
    }
    let mut out = Vec::new();
    scan(text, start, end, false, &mut out)?;
    // The range must open with a header: otherwise it starts inside another run.
    match out.first() {
        Some(s) if s.range.start == start => Some(out),
        _ => None,
    }
}

/// Whether a preamble holds only blank lines and comments (no keys at the top level).
pub fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim_start();
        t.is_empty() || t.starts_with('#')
    })
}

/// Whether each service is written in one place and nothing else can define one: the
/// preamble is blank, each service has one segment, and no segment opens with `[service]` or
/// `[[service]]` (whose keys could define services anywhere). Then a service's segment holds
/// all of it, and the other segments none of it.
pub fn services_apart(text: &str, segments: &[Segment]) -> bool {
    let mut names = std::collections::HashSet::new();
    segments.iter().all(|s| {
        let part = &text[s.range.clone()];
        match &s.item {
            Item::Preamble => is_blank(part),
            Item::Service(name) => names.insert(name.as_str()),
            Item::Other => !is_bare_service_table(part),
        }
    })
}

/// Whether a segment opens with `[service]` or `[[service]]`, whose keys could define
/// services anywhere.
fn is_bare_service_table(text: &str) -> bool {
    let head = text.lines().next().unwrap_or("");
    let inner = head
        .trim()
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches(['"', '\'']);
    inner == "service"
}

/// Lexer state carried from one line to the next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside strings; `depth` open brackets of a value that spans lines.
    Code {
        depth: u32,
    },
    MultiBasic {
        depth: u32,
    },
    MultiLiteral {
        depth: u32,
    },
}

/// Adds the segments of `text[start..end]` to `out`; with `stop_at_service`, stops at the
/// first service header instead. Where it stopped (`end` when it did not).
fn scan(
    text: &str,
    start: usize,
    end: usize,
    stop_at_service: bool,
    out: &mut Vec<Segment>,
) -> Option<usize> {
    let bytes = &text.as_bytes()[..end];
    let mut state = State::Code { depth: 0 };
    let mut pos = start;
    while pos < end {
        let line_end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| pos + i + 1);
        let line = &bytes[pos..line_end];
        let indent = line
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if state == (State::Code { depth: 0 }) && line.get(indent) == Some(&b'[') {
            let service = header_service(&line[indent..])?;
            if stop_at_service && service.is_some() {
                if let Some(last) = out.last_mut() {
                    last.range.end = pos;
                }
                return Some(pos);
            }
            match out.last_mut() {
                // Borrowed until it opens a segment: a service has a header per real.
                Some(Segment {
                    item: Item::Service(last),
                    ..
                }) if service == Some(last.as_str()) => {}
                _ => {
                    let item = service.map_or(Item::Other, |n| Item::Service(n.to_string()));
                    if let Some(last) = out.last_mut() {
                        last.range.end = pos;
                    }
                    out.push(Segment {
                        item,
                        range: pos..pos,
                    });
                }
            }
        } else {
            state = scan_line(line, state)?;
        }
        pos = line_end;
    }
    if let Some(last) = out.last_mut() {
        last.range.end = end;
    }
    (state == State::Code { depth: 0 }).then_some(end)
}

/// The bytes [`scan_line`] must look at outside strings.
const CODE_STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let stops = *b"#\n\r\"'[]{}";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

/// Follows strings, comments and brackets through one line that is not a header.
fn scan_line(line: &[u8], mut state: State) -> Option<State> {
    let mut i = 0;
    while i < line.len() {
        match state {
            State::MultiBasic { depth } => match find_close(line, i, b'"', true) {
                Some(after) => {
                    state = State::Code { depth };
                    i = after;
                }
                None => return Some(state),
            },
            State::MultiLiteral { depth } => match find_close(line, i, b'\'', false) {
                Some(after) => {
                    state = State::Code { depth };
                    i = after;
                }
                None => return Some(state),
            },
            State::Code { depth } => match line[i] {
                b'#' | b'\n' | b'\r' => return Some(state),
                q @ (b'"' | b'\'') => {
                    if line[i..].starts_with(&[q, q, q]) {
                        state = if q == b'"' {
                            State::MultiBasic { depth }
                        } else {
                            State::MultiLiteral { depth }
                        };
                        i += 3;
                    } else {
                        i = single_line_string(line, i)?;
                    }
                }
                b'[' | b'{' => {
                    state = State::Code { depth: depth + 1 };
                    i += 1;
                }
                b']' | b'}' => {
                    state = State::Code {
                        depth: depth.checked_sub(1)?,
                    };
                    i += 1;
                }
                // Ordinary bytes, skipped together.
                _ => {
                    i += line[i..]
                        .iter()
                        .position(|&b| CODE_STOPS[usize::from(b)])
                        .unwrap_or(line.len() - i)
                }
            },
        }
    }
    Some(state)
}

/// In a multi-line string, the position after its closing delimiter on this line, if any.
/// Up to two more quotes right before the delimiter belong to the string.
fn find_close(line: &[u8], mut i: usize, q: u8, escapes: bool) -> Option<usize> {
    while i < line.len() {
        if escapes && line[i] == b'\\' {
            i += 2;
            continue;
        }
        if line[i..].starts_with(&[q, q, q]) {
            let mut end = i + 3;
            while end < line.len() && line[end] == q && end < i + 5 {
                end += 1;
            }
            return Some(end);
        }
        i += 1;
    }
    None
}

/// The position after a one-line string opened at `i`; `None` if the line ends first.
fn single_line_string(line: &[u8], i: usize) -> Option<usize> {
    let q = line[i];
    let mut j = i + 1;
    while j < line.len() {
        match line[j] {
            b'\\' if q == b'"' => j += 2,
            b'\n' => return None,
            c if c == q => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The service whose tables a header line opens (`Some(None)` for another item); `None` if
/// the header cannot be read.
pub(crate) fn header_service(line: &[u8]) -> Option<Option<&str>> {
    let (double, rest) = match line {
        [b'[', b'[', rest @ ..] => (true, rest),
        [b'[', rest @ ..] => (false, rest),
        _ => return None,
    };
    let (path, rest) = key_path(rest)?;
    let rest = skip_blanks(rest);
    let rest = rest.strip_prefix(if double { &b"]]"[..] } else { &b"]"[..] })?;
    let rest = skip_blanks(rest);
    if !matches!(rest, [] | [b'#', ..] | [b'\n', ..] | [b'\r', b'\n']) {
        return None;
    }
    Some(match path {
        [Some(b"service"), Some(name)] => Some(std::str::from_utf8(name).ok()?),
        _ => None,
    })
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

/// The first two parts of a dotted key (all a header needs to tell its item).
type PathStart<'a> = [Option<&'a [u8]>; 2];

/// A dotted key (`a."b c".'d'`): its first two parts, and the text after it.
fn key_path(mut s: &[u8]) -> Option<(PathStart<'_>, &[u8])> {
    let mut path = [None; 2];
    for i in 0.. {
        s = skip_blanks(s);
        let (part, rest) = match s {
            [q @ (b'"' | b'\''), r @ ..] => {
                let end = r.iter().position(|b| b == q)?;
                // Escapes are rare in names; leave them to the full parser.
                if *q == b'"' && r[..end].contains(&b'\\') {
                    return None;
                }
                (&r[..end], &r[end + 1..])
            }
            _ => {
                let end = s
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
                    .unwrap_or(s.len());
                if end == 0 {
                    return None;
                }
                (&s[..end], &s[end..])
            }
        };
        if let Some(slot) = path.get_mut(i) {
            *slot = Some(part);
        }
        s = skip_blanks(rest);
        match s {
            [b'.', r @ ..] => s = r,
            _ => break,
        }
    }
    Some((path, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<(Item, &str)> {
        segments(text)
            .expect("readable")
            .into_iter()
            .map(|s| (s.item, &text[s.range]))
            .collect()
    }

    fn svc(n: &str) -> Item {
        Item::Service(n.into())
    }

    #[test]
    fn runs_of_one_service_are_one_segment() {
        let text = "# top\n[node]\nhostname = \"a\"\n[service.web]\nvip = \"1.2.3.4:80\"\n\
                    [[service.web.real]]\naddress = \"10.0.0.1\"\n[service.dns]\n[ipvs]\n";
        assert_eq!(
            items(text),
            [
                (Item::Preamble, "# top\n"),
                (Item::Other, "[node]\nhostname = \"a\"\n"),
                (
                    svc("web"),
                    "[service.web]\nvip = \"1.2.3.4:80\"\n[[service.web.real]]\naddress = \"10.0.0.1\"\n"
                ),
                (svc("dns"), "[service.dns]\n"),
                (Item::Other, "[ipvs]\n"),
            ]
        );
    }

    #[test]
    fn brackets_inside_strings_and_values_are_not_headers() {
        let text = "[service.a]\nx = \"\"\"\n[service.b]\n\"\"\"\ny = [\n  [1, 2],\n]\n\
                    z = '''\n[node]\n'''\nw = \"[\" # [\n[service.c]\n";
        let got: Vec<Item> = segments(text)
            .unwrap()
            .into_iter()
            .map(|s| s.item)
            .collect();
        assert_eq!(got, [Item::Preamble, svc("a"), svc("c")]);
    }

    #[test]
    fn quoted_and_spaced_header_keys() {
        let text = "[ service . \"web\" ]\n[[service.'web'.real]] # r\n[service]\n";
        assert_eq!(
            items(text),
            [
                (Item::Preamble, ""),
                (
                    svc("web"),
                    "[ service . \"web\" ]\n[[service.'web'.real]] # r\n"
                ),
                (Item::Other, "[service]\n"),
            ]
        );
    }

    #[test]
    fn unreadable_layouts_are_refused() {
        for text in [
            "[service.a\n",
            "x = \"open\n",
            "x = \"\"\"never closed\n",
            "x = [1,\n",
            "[service.\"a\\u0041\"]\n",
            "x = ]\n",
            "[node] junk\n",
        ] {
            assert_eq!(segments(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_range_must_start_at_a_header_and_end_at_a_line() {
        let text = "[service.a]\nx = 1\n[service.b]\ny = 2\n";
        let b = text.find("[service.b]").unwrap();
        assert_eq!(
            segments_in(text, b, text.len()).unwrap(),
            [Segment {
                item: svc("b"),
                range: b..text.len()
            }]
        );
        assert_eq!(segments_in(text, 1, text.len()), None);
        assert_eq!(
            segments_in(text, b + 12, text.len()),
            None,
            "starts at a key"
        );
        assert_eq!(segments_in(text, 0, b - 1), None, "ends mid-line");
    }

    #[test]
    fn multi_line_strings_end_with_extra_quotes() {
        let text = "[service.a]\nx = \"\"\"a\"\"\"\"\"\n[service.b]\ny = '''b'''''\n[service.c]\n";
        let got: Vec<Item> = segments(text)
            .unwrap()
            .into_iter()
            .map(|s| s.item)
            .collect();
        assert_eq!(got, [Item::Preamble, svc("a"), svc("b"), svc("c")]);
    }
}
