//! Stage 2 of the keepalived converter: words into a tree of `keyword args... [{ block }]` items.

use super::lexer::Tok;
use crate::convert::{ConvertError, Loc, Sources};

const MAX_BLOCK_DEPTH: usize = 32;

/// `keyword args... [{ block }]`.
#[derive(Clone, Debug)]
pub struct Item {
    pub key: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Item>>,
    pub at: Loc,
}

impl Item {
    pub(super) fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    pub(super) fn children(&self) -> &[Item] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// The keyword and its arguments, as in the source.
    pub(super) fn head(&self) -> String {
        let mut s = self.key.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// The items up to the end of the words, or up to the `}` that closes the block opened at `open`.
pub(super) fn parse_items(
    toks: &[(Tok, Loc)],
    pos: &mut usize,
    open: Option<Loc>,
    src: &Sources,
    depth: usize,
) -> Result<Vec<Item>, ConvertError> {
    if depth > MAX_BLOCK_DEPTH {
        let at = open.unwrap_or(Loc { file: 0, line: 0 });
        return Err(src.error(
            at,
            format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
        ));
    }
    let mut items = Vec::new();
    loop {
        while *pos < toks.len() && toks[*pos].0 == Tok::Eol {
            *pos += 1;
        }
        let Some((tok, at)) = toks.get(*pos) else {
            return match open {
                Some(at) => Err(src.error(at, "this block is never closed: a '}' is missing")),
                None => Ok(items),
            };
        };
        match tok {
            Tok::Close => {
                if open.is_some() {
                    *pos += 1;
                    return Ok(items);
                }
                return Err(src.error(*at, "unexpected '}': no block is open here"));
            }
            Tok::Open => return Err(src.error(*at, "'{' without a keyword before it")),
            Tok::Eol => unreachable!("skipped above"),
            Tok::Word(key) => {
                *pos += 1;
                let mut args = Vec::new();
                while let Some((Tok::Word(w), _)) = toks.get(*pos) {
                    args.push(w.clone());
                    *pos += 1;
                }
                // The block may open on the keyword's line or on the next one.
                let mut look = *pos;
                while look < toks.len() && toks[look].0 == Tok::Eol {
                    look += 1;
                }
                let block = if matches!(toks.get(look), Some((Tok::Open, _))) {
                    *pos = look + 1;
                    Some(parse_items(toks, pos, Some(*at), src, depth + 1)?)
                } else {
                    None
                };
                items.push(Item {
                    key: key.clone(),
                    args,
                    block,
                    at: *at,
                });
            }
        }
    }
}
