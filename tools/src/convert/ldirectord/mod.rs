//! ldirectord.cf → our config.
//!
//! The file is line-based: global `key = value` lines start in column 0; a `virtual=` (or
//! `virtual6=`) line opens a section whose lines are indented by at least four spaces or a tab.
//! Everything is read first ([`lexer`]) and mapped afterwards, because globals such as `fork` or
//! `checktimeout` may come after the sections they apply to: each section into a service with
//! its reals and fallback ([`services`]), and its check ([`checks`]). [`settings`] lists every
//! setting ldirectord(8) documents, where it may be written, and the warning for each that
//! lbd has no equivalent for.
//!
//! Defaults are ldirectord's, written out because ours differ: scheduler wrr, checks every 10 s,
//! connect timeout 5 s, negotiate timeout 30 s, one failure marks a real down, a down real is
//! removed (`quiescent = no`), the fallback server is reached by direct routing.

mod checks;
mod lexer;
mod services;
pub mod settings;

use super::out::Output;
use super::{Conversion, ConvertError, Loc, Options, Sources, Warning};
use lexer::{unquote, File, Setting, VKey};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What a conversion step gives: its part of the config, or the error that stops it.
type Converted<T> = Result<T, ConvertError>;

/// Converts ldirectord.cf text.
pub fn convert_str(name: &str, text: &str, opts: &Options) -> Converted<Conversion> {
    let mut src = Sources::default();
    src.add(name, text);
    let mut converter = Converter {
        src: &src,
        warnings: Vec::new(),
        opts,
    };
    let file = converter.read(text)?;
    let output = converter.map(&file, name)?;
    let mut warnings = converter.warnings;
    warnings.sort_by_key(|w| w.line);
    super::accepted(name, Conversion { output, warnings })
}

/// Converts an ldirectord.cf file.
pub fn convert_file(path: &std::path::Path, opts: &Options) -> Converted<Conversion> {
    let text = super::FileSystem::read(&super::RealFs, path).map_err(|e| ConvertError::Read {
        file: path.display().to_string(),
        source: e,
    })?;
    convert_str(&path.display().to_string(), &text, opts)
}

/// Stage 2: the file as read into our config, with the warnings met on the way.
struct Converter<'a> {
    src: &'a Sources,
    warnings: Vec<Warning>,
    opts: &'a Options,
}

/// The global settings the sections inherit (ldirectord's defaults where not set).
struct Globals {
    fork: bool,
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    interval: u64,
    failurecount: u64,
    quiescent: bool,
}

impl Converter<'_> {
    fn warn(&mut self, at: Loc, msg: impl Into<String>) {
        self.warnings.push(self.src.warning(at, msg));
    }

    /// The warning for a setting the converter does not translate ([`settings`]).
    fn unconverted(&mut self, s: &lexer::Setting, ctx: &str) {
        if let Some(m) = settings::message(ctx, &s.key) {
            self.warn(s.at, m);
        }
    }

    fn err(&self, at: Loc, msg: impl Into<String>) -> ConvertError {
        self.src.error(at, msg)
    }

    /// A whole number of seconds, 1 or more.
    fn seconds(&self, s: &Setting) -> Converted<u64> {
        unquote(&s.value)
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                self.err(
                    s.at,
                    format!("`{}` needs a number of seconds (1 or more)", s.key),
                )
            })
    }

    fn yes_no(&self, s: &Setting) -> Converted<bool> {
        match unquote(&s.value) {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(self.err(
                s.at,
                format!("`{}` must be yes or no, not {other:?}", s.key),
            )),
        }
    }

    /// Stage 2: the sections into services.
    fn map(&mut self, f: &File, name: &str) -> Converted<Output> {
        let mut o = Output::default();
        o.header.push(format!(
            "Converted from ldirectord config {name} by lbctl convert."
        ));
        o.header
            .push("Review the VRRP instance and the checks before use.".into());
        let g = self.globals(f)?;
        let mut taken = BTreeSet::new();
        let mut orphans: Vec<(IpAddr, Loc)> = Vec::new();
        let mut seen_keys: BTreeMap<String, Loc> = BTreeMap::new();
        for sec in &f.sections {
            let svc = self.section(sec, f, &g, &mut taken)?;
            let id = format!(
                "{:?}{}",
                sec.key,
                svc.entries
                    .iter()
                    .find(|(k, _)| k == "protocol")
                    .map(|(_, v)| format!("{v:?}"))
                    .unwrap_or_default()
            );
            if let Some(first) = seen_keys.get(&id) {
                return Err(self.err(
                    sec.at,
                    format!("duplicate virtual service (first at line {})", first.line),
                ));
            }
            seen_keys.insert(id, sec.at);
            if let VKey::Addr(ip, _) = sec.key {
                if !orphans.iter().any(|(o, _)| *o == ip) {
                    orphans.push((ip, sec.at));
                }
            }
            o.services.push(svc);
        }
        if !orphans.is_empty() {
            let (instances, warnings) = super::adopt_orphan_vips(
                &orphans,
                &self.opts.interface,
                &BTreeSet::new(),
                &BTreeSet::new(),
                self.opts,
                self.src,
                "ldirectord has no VRRP: heartbeat or pacemaker moved its addresses",
            );
            // One warning per VIP is enough: the first service of each names the instance.
            o.instances = instances;
            self.warnings.extend(warnings);
        }
        Ok(o)
    }

    /// The global settings, with a warning for each that lbd has no use for.
    fn globals(&mut self, f: &File) -> Converted<Globals> {
        let fork = match f.globals.get("fork") {
            Some(s) => self.yes_no(s)?,
            None => false,
        };
        let mut g = Globals {
            fork,
            checktimeout: None,
            negotiatetimeout: None,
            interval: 10,
            failurecount: 1,
            quiescent: false,
        };
        for s in &f.global_lines {
            match s.key.as_str() {
                "checktimeout" => g.checktimeout = Some(self.seconds(s)?),
                "negotiatetimeout" => g.negotiatetimeout = Some(self.seconds(s)?),
                "checkinterval" => g.interval = self.seconds(s)?,
                "failurecount" => g.failurecount = self.seconds(s)?,
                "quiescent" => g.quiescent = self.yes_no(s)?,
                "fallback" | "fallback6" => {
                    // Used per section; checked here so a bad one is reported even if unused.
                    self.fallback(s)?;
                }
                "fork" => {}
                _ => self.unconverted(s, "global"),
            }
        }
        Ok(g)
    }
}
