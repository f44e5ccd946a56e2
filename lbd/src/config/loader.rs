//! Loading a config again after an edit, at a cost that follows the edit.
//!
//! A reload usually changes a few lines of one service in a file of hundreds. The loader keeps
//! the last accepted config with its text, where each item is written ([`super::layout`]) and
//! what validating a service needs from the rest of the file. When the new text differs from
//! that one only inside `[service.*]` tables, it validates just the services written there,
//! each on its own, and shares every other service with the previous config (the same `Arc`:
//! the reconciler then knows they are unchanged without looking).
//!
//! The result is the same as validating the whole file; anything that could make it differ
//! takes the full path instead:
//! - the edit reaches outside service tables, or the layout reader cannot follow the text;
//! - an edited service reports anything (error or warning: the full validation says what,
//!   with every other finding of the file, in order);
//! - an edited service takes a kernel key another service has, changes whether any real is of
//!   another family than its service, or changes which named checks are used at all;
//! - a service's tables are written in more than one place, or the file has top-level keys or
//!   a bare `[service]` table (they can define services outside their segments).

use super::diag::ConfigError;
use super::layout::{self, Item, Segment};
use super::model::Service;
use super::validate::{self, Loaded, ServiceContext};
use super::{Family, ServiceKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// What the last [`Loader::parse`] validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validated {
    /// Nothing: the text is the one already accepted.
    Nothing,
    /// Only this many edited services.
    Services(usize),
    /// The whole file.
    Whole,
}

/// Keeps the last accepted config; see the module doc.
#[derive(Default)]
pub struct Loader {
    base: Option<Base>,
    last: Option<Validated>,
}

/// The last accepted config and what the fast path needs of it.
struct Base {
    loaded: Loaded,
    segments: Vec<Segment>,
    context: ServiceContext,
    /// How many services use each named check.
    check_uses: BTreeMap<String, usize>,
    /// Which service has each kernel key (the config's own `Arc`s: no copies of names).
    keys: HashMap<ServiceKey, Arc<Service>>,
}

impl Loader {
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Reads and validates a config file (see [`Loader::parse`]).
    pub fn load(&mut self, path: &Path) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        match validate::read_text(path, &file) {
            Ok(text) => self.parse(&file, text),
            Err(e) => Err(e),
        }
    }

    /// Validates `text`; the result is what [`super::parse`] gives for it. An accepted config
    /// becomes the base of the next call; a refused one leaves the base as it was.
    pub fn parse(&mut self, file: &str, text: String) -> Result<Loaded, ConfigError> {
        if let Some(base) = &mut self.base {
            if base.loaded.file == file && *base.loaded.source_text == *text {
                self.last = Some(Validated::Nothing);
                return Ok(base.loaded.clone());
            }
            if base.loaded.file == file {
                if let Some(edited) = base.edit(&text) {
                    self.last = Some(Validated::Services(edited));
                    return Ok(base.loaded.clone());
                }
            }
        }
        self.last = Some(Validated::Whole);
        let (result, context) = validate::parse_keeping_context(file, text);
        if let (Ok(loaded), Some(context)) = (&result, context) {
            self.base = Base::new(loaded.clone(), context);
        }
        result
    }

    /// What the last call validated (for logs, tests and benchmarks).
    pub fn last_validated(&self) -> Option<Validated> {
        self.last
    }
}

impl Base {
    /// `None` when the fast path cannot be used for edits of this text.
    fn new(loaded: Loaded, mut context: ServiceContext) -> Option<Base> {
        let segments = match context.segments.take() {
            Some(segments) => segments,
            None => {
                let segments = layout::segments(&loaded.source_text)?;
                if !layout::services_apart(&loaded.source_text, &segments) {
                    return None;
                }
                segments
            }
        };
        let mut check_uses = BTreeMap::new();
        for uses in context.uses.values() {
            for c in uses {
                *check_uses.entry(c.clone()).or_default() += 1;
            }
        }
        let keys = loaded
            .config
            .services
            .values()
            .map(|s| (s.key, s.clone()))
            .collect();
        Some(Base {
            loaded,
            segments,
            context,
            check_uses,
            keys,
        })
    }

    /// Applies an edit that stays inside service tables; the number of services validated,
    /// or `None` (and nothing changed) when the whole file must be validated.
    fn edit(&mut self, text: &str) -> Option<usize> {
        let old = &*self.loaded.source_text;
        let (first, last) = self.touched(old, text)?;
        let region = self.segments[first].range.start..self.segments[last].range.end;
        let delta = text.len() as isize - old.len() as isize;
        let new_end = region.end.checked_add_signed(delta)?;
        let new_segments = layout::segments_in(text, region.start, new_end)?;
        let old_names: BTreeSet<&str> = self.segments[first..=last]
            .iter()
            .filter_map(|s| service_name(&s.item))
            .collect();
        if old_names.len() != last - first + 1 {
            return None;
        }
        let mut lone = BTreeMap::new();
        for s in &new_segments {
            let name = service_name(&s.item)?;
            // A service of the untouched part written here too: it is in two places. (Every
            // service of an accepted config is written in a segment of its own.)
            if !old_names.contains(name) && self.loaded.config.services.contains_key(name) {
                return None;
            }
            let service = validate::service_alone(&self.context, name, &text[s.range.clone()])?;
            if lone.insert(name.to_string(), service).is_some() {
                return None;
            }
        }
        let config = &self.loaded.config;
        // Kernel keys stay unique: a new key may only be one the edited services had.
        let mut new_keys = HashMap::new();
        for (name, l) in &lone {
            let taken = self
                .keys
                .get(&l.service.key)
                .is_some_and(|owner| !old_names.contains(owner.name.as_str()));
            if taken || new_keys.insert(l.service.key, name.clone()).is_some() {
                return None;
            }
        }
        // Whether any real is of another family than its service: the [ipvs] checks use it.
        let mixed = |s: &Service| {
            s.reals
                .iter()
                .any(|r| Family::of(&r.addr.ip()) != s.key.family())
        };
        let before = old_names
            .iter()
            .any(|n| config.services.get(*n).is_some_and(|s| mixed(s)));
        let after = lone.values().any(|l| mixed(&l.service));
        if before != after
            && !config
                .services
                .values()
                .any(|s| !old_names.contains(s.name.as_str()) && mixed(s))
        {
            return None;
        }
        // Which named checks are used at all decides the unused-check warnings.
        let mut check_uses = self.check_uses.clone();
        for name in &old_names {
            for c in self.context.uses.get(*name).into_iter().flatten() {
                let n = check_uses.get_mut(c)?;
                *n -= 1;
            }
        }
        for l in lone.values() {
            for c in &l.uses {
                *check_uses.entry(c.clone()).or_default() += 1;
            }
        }
        let used = |m: &BTreeMap<String, usize>| -> BTreeSet<String> {
            m.iter()
                .filter(|(_, n)| **n > 0)
                .map(|(c, _)| c.clone())
                .collect()
        };
        if used(&check_uses) != used(&self.check_uses) {
            return None;
        }
        // Spans after the edit move with the text; warnings about the old text of an edited
        // service go (its new text has none).
        let shift = |r: &Range<usize>| -> Option<Range<usize>> {
            if r.end <= region.start {
                Some(r.clone())
            } else if r.start >= region.end {
                Some(r.start.checked_add_signed(delta)?..r.end.checked_add_signed(delta)?)
            } else {
                None
            }
        };
        let mut warnings = Vec::new();
        for w in &self.loaded.warnings {
            let mut w = w.clone();
            if let Some(span) = &w.span {
                match shift(span) {
                    Some(s) => w.span = Some(s),
                    None => continue,
                }
            }
            if let Some((span, note)) = &w.related {
                w.related = Some((shift(span)?, note.clone()));
            }
            warnings.push(w);
        }
        // Accepted: from here on nothing fails, and the base becomes the new text.
        let edited = lone.len();
        let mut config = config.clone();
        let services = Arc::make_mut(&mut config.services);
        for name in &old_names {
            if let Some(old) = services.remove(*name) {
                self.keys.remove(&old.key);
            }
            self.context.uses.remove(*name);
        }
        for (name, l) in lone {
            let service = Arc::new(l.service);
            self.keys.insert(service.key, service.clone());
            services.insert(name.clone(), service);
            if !l.uses.is_empty() {
                self.context.uses.insert(name, l.uses);
            }
        }
        let shared: Arc<str> = text.into();
        config.version = super::model::Version::of(shared.clone());
        for s in &mut self.segments[last + 1..] {
            s.range =
                s.range.start.wrapping_add_signed(delta)..s.range.end.wrapping_add_signed(delta);
        }
        self.segments.splice(first..=last, new_segments);
        self.check_uses = check_uses;
        self.loaded = Loaded {
            config,
            warnings,
            file: self.loaded.file.clone(),
            source_text: shared,
        };
        Some(edited)
    }

    /// The first and last segment an edit from `old` to `new` touches, if they are all
    /// services.
    fn touched(&self, old: &str, new: &str) -> Option<(usize, usize)> {
        let (a, b) = (old.as_bytes(), new.as_bytes());
        let prefix = common_prefix(a, b);
        let room = a.len().min(b.len()) - prefix;
        let suffix = common_suffix(&a[prefix..], &b[prefix..]).min(room);
        // The bytes either side of the edit belong to it too: an insertion at the start of a
        // segment may extend the one before.
        let from = prefix.saturating_sub(1);
        let to = (a.len() - suffix).min(a.len().saturating_sub(1));
        let first = self.segments.iter().position(|s| s.range.contains(&from))?;
        let last = self.segments.iter().rposition(|s| s.range.contains(&to))?;
        let all_services = self.segments[first..=last]
            .iter()
            .all(|s| matches!(s.item, Item::Service(_)));
        (first <= last && all_services).then_some((first, last))
    }
}

/// How many bytes `a` and `b` have in common at the start (compared a block at a time).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many bytes `a` and `b` have in common at the end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + BLOCK <= n && a[n - i - BLOCK..n - i] == b[n - i - BLOCK..n - i] {
        i += BLOCK;
    }
    i + a[..n - i]
        .iter()
        .rev()
        .zip(b[..n - i].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

fn service_name(item: &Item) -> Option<&str> {
    match item {
        Item::Service(n) => Some(n),
        _ => None,
    }
}
