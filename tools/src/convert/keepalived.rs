//! keepalived.conf → our config.
//!
//! Three stages, each pure:
//! 1. [`Lexer`]: lines into words, with keepalived's comments (`#`, `!`), quoting, `include`
//!    (relative to the including file, with globs), `$NAME=value` substitution and `@^NAME`
//!    conditional lines; every word keeps its file and line.
//! 2. [`parse_items`]: words into a tree of `keyword args... [{ block }]` items.
//! 3. [`Cx`]: items into an [`Output`], with a warning for every keyword lbd has no use for.
//!
//! Defaults are keepalived's (2.2), written out explicitly because ours differ: VRRP version 2,
//! scheduler wlc, NAT, a real removed on failure unless `inhibit_on_failure`, checks every 60 s
//! with a 5 s timeout, one retry (three for DNS, none for MISC), up on the first success.

use super::out::{self, Entries, Origin, Output, Value};
use super::{parse_seconds, Conversion, ConvertError, FileSystem, Loc, Options, Sources, Warning};
use lbd::config::{Family, Forwarding, IpPrefix, Protocol, Scheduler};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Converts a keepalived.conf (and the files it includes).
pub fn convert_file(
    path: &Path,
    fs: &dyn FileSystem,
    opts: &Options,
) -> Result<Conversion, ConvertError> {
    let mut lx = Lexer::new(fs);
    lx.file(path, None, 0)?;
    let Lexer {
        src,
        toks,
        warnings,
        ..
    } = lx;
    let mut pos = 0;
    let items = parse_items(&toks, &mut pos, None, &src, 0)?;
    let mut cx = Cx {
        src: &src,
        warnings,
        opts,
    };
    let output = cx.convert(&items, &path.display().to_string())?;
    let mut warnings = cx.warnings;
    let main = src.files[0].0.clone();
    warnings
        .sort_by(|a, b| (a.file != main, &a.file, a.line).cmp(&(b.file != main, &b.file, b.line)));
    super::accepted(&path.display().to_string(), Conversion { output, warnings })
}

/// Converts keepalived.conf text (includes are looked up on the real file system).
pub fn convert_str(name: &str, text: &str, opts: &Options) -> Result<Conversion, ConvertError> {
    struct One<'a> {
        name: PathBuf,
        text: &'a str,
    }
    impl FileSystem for One<'_> {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            if path == self.name {
                Ok(self.text.to_string())
            } else {
                super::RealFs.read(path)
            }
        }
        fn glob(&self, pattern: &str) -> Vec<PathBuf> {
            super::RealFs.glob(pattern)
        }
    }
    let fs = One {
        name: PathBuf::from(name),
        text,
    };
    convert_file(Path::new(name), &fs, opts)
}

// ---------------------------------------------------------------------------------------------
// Stage 1: words.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_BLOCK_DEPTH: usize = 32;

struct Lexer<'a> {
    fs: &'a dyn FileSystem,
    src: Sources,
    toks: Vec<(Tok, Loc)>,
    defs: BTreeMap<String, String>,
    warnings: Vec<Warning>,
}

impl<'a> Lexer<'a> {
    fn new(fs: &'a dyn FileSystem) -> Self {
        Lexer {
            fs,
            src: Sources::default(),
            toks: Vec::new(),
            defs: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    fn file(&mut self, path: &Path, from: Option<Loc>, depth: usize) -> Result<(), ConvertError> {
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

// ---------------------------------------------------------------------------------------------
// Stage 2: items.

/// `keyword args... [{ block }]`.
#[derive(Clone, Debug)]
pub struct Item {
    pub key: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Item>>,
    pub at: Loc,
}

impl Item {
    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    fn children(&self) -> &[Item] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// The keyword and its arguments, as in the source.
    fn head(&self) -> String {
        let mut s = self.key.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

fn parse_items(
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

// ---------------------------------------------------------------------------------------------
// Stage 3: meaning.

struct Cx<'a> {
    src: &'a Sources,
    warnings: Vec<Warning>,
    opts: &'a Options,
}

type R<T> = Result<T, ConvertError>;

/// Settings of global_defs that others inherit.
#[derive(Default)]
struct Globals {
    vrrp_version: Option<u8>,
    strict: bool,
    garp_repeat: Option<i64>,
    garp_delay: Option<Duration>,
    default_interface: Option<String>,
    sync_daemon: Option<Item>,
}

/// Health-check timing and defaults inherited virtual server → real server → checker.
#[derive(Clone, Debug, Default)]
struct CheckDefaults {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
    virtualhost: Option<String>,
}

/// A virtual server's identity before expansion of groups.
#[derive(Clone, Debug)]
enum VsKey {
    Addr(IpAddr, u16),
    Fwmark(u32, Option<Family>),
}

/// A VRRP instance as read, before output.
struct InstanceInfo {
    name: String,
    interface: String,
    vrid: u8,
    vips: Vec<IpAddr>,
}

impl<'a> Cx<'a> {
    /// Records a warning once: a group's members repeat the same real servers.
    fn warn(&mut self, at: Loc, msg: impl Into<String>) {
        let w = self.src.warning(at, msg);
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    fn err(&self, at: Loc, msg: impl Into<String>) -> ConvertError {
        self.src.error(at, msg)
    }

    fn origin(&self, it: &Item) -> Origin {
        Origin {
            at: self.src.at(it.at),
            what: it.head(),
        }
    }

    /// A warning for a keyword lbd has no use for.
    fn ignore(&mut self, it: &Item, why: &str) {
        let msg = if why.is_empty() {
            format!("`{}` has no equivalent in lbd: ignored", it.key)
        } else {
            format!("`{}` has no equivalent in lbd: ignored ({why})", it.key)
        };
        self.warn(it.at, msg);
    }

    fn arg<'i>(&self, it: &'i Item, i: usize, what: &str) -> R<&'i str> {
        it.arg(i)
            .ok_or_else(|| self.err(it.at, format!("`{}` needs {what}", it.key)))
    }

    /// Argument `i` as an interface name Linux takes.
    fn ifname(&self, it: &Item, i: usize) -> R<String> {
        let name = self.arg(it, i, "an interface")?;
        if !lbd::config::valid_ifname(name) {
            return Err(self.err(
                it.at,
                format!(
                    "{name:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
                ),
            ));
        }
        Ok(name.to_string())
    }

    fn int(&self, it: &Item, i: usize, lo: i64, hi: i64, what: &str) -> R<i64> {
        let text = self.arg(it, i, what)?;
        match text.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            Ok(n) => Err(self.err(
                it.at,
                format!("`{}` {n} is out of range: {what} is {lo} to {hi}", it.key),
            )),
            Err(_) => Err(self.err(it.at, format!("`{}` needs {what}, not {text:?}", it.key))),
        }
    }

    fn timer(&self, it: &Item, i: usize) -> R<Duration> {
        let text = self.arg(it, i, "a time in seconds")?;
        parse_seconds(text).ok_or_else(|| {
            self.err(
                it.at,
                format!(
                    "`{}` needs a time in seconds such as 3 or 0.5, not {text:?}",
                    it.key
                ),
            )
        })
    }

    fn ip(&self, it: &Item, i: usize) -> R<IpAddr> {
        let text = self.arg(it, i, "an IP address")?;
        text.parse().map_err(|_| {
            self.err(
                it.at,
                format!("`{}`: {text:?} is not an IP address", it.key),
            )
        })
    }

    fn port(&self, it: &Item, i: usize) -> R<u16> {
        Ok(self.int(it, i, 0, 65535, "a port (0 to 65535)")? as u16)
    }

    /// keepalived's <BOOL>; a keyword alone means on.
    fn boolean(&self, it: &Item, i: usize) -> R<bool> {
        match it.arg(i).map(str::to_ascii_lowercase).as_deref() {
            None | Some("on") | Some("true") | Some("yes") => Ok(true),
            Some("off") | Some("false") | Some("no") => Ok(false),
            Some(other) => Err(self.err(
                it.at,
                format!(
                    "`{}` takes on/off, true/false or yes/no, not {other:?}",
                    it.key
                ),
            )),
        }
    }

    fn block<'i>(&self, it: &'i Item) -> R<&'i [Item]> {
        it.block.as_deref().ok_or_else(|| {
            self.err(
                it.at,
                format!("`{}` needs a block: {} {{ ... }}", it.key, it.head()),
            )
        })
    }

    fn convert(&mut self, items: &[Item], file: &str) -> R<Output> {
        let mut o = Output::default();
        o.header.push(format!(
            "Converted from keepalived config {file} by lbctl convert."
        ));
        o.header
            .push("Review interfaces, priorities and checks before use.".into());
        let mut g = Globals::default();
        for it in items.iter().filter(|i| i.key == "global_defs") {
            self.global_defs(it, &mut g, &mut o)?;
        }
        // Groups may be used before they are defined.
        let mut groups: BTreeMap<String, Vec<(VsKey, Loc)>> = BTreeMap::new();
        for it in items.iter().filter(|i| i.key == "virtual_server_group") {
            let name = self.arg(it, 0, "a group name")?.to_string();
            let members = self.vs_group(it)?;
            groups.insert(name, members);
        }
        let mut instances: Vec<InstanceInfo> = Vec::new();
        let mut taken_names = BTreeSet::new();
        let mut vs_items = Vec::new();
        for it in items {
            match it.key.as_str() {
                "global_defs" | "virtual_server_group" => {}
                "vrrp_instance" => {
                    if let Some(info) = self.vrrp_instance(it, &g, &mut o)? {
                        instances.push(info);
                    }
                }
                "vrrp_sync_group" => {}
                "virtual_server" => vs_items.push(it),
                "vrrp_script" | "vrrp_track_process" | "track_file" | "vrrp_track_file" => {
                    self.ignore(it, "lbd tracks interfaces and service quorum; a VRRP instance's priority is lowered with quorum_priority_drop")
                }
                "static_ipaddress" | "static_routes" | "static_rules" => self.ignore(
                    it,
                    "init configures the box's own addresses and routes from the kernel command line and DHCP",
                ),
                "linkbeat_interfaces" | "interface_up_down_delays" | "garp_group" => {
                    self.ignore(it, "")
                }
                "bfd_instance" => self.ignore(it, "lbd has no BFD"),
                "SSL" => self.ignore(
                    it,
                    "HTTPS checks verify with tls_verify = true against the built-in public roots, or against ca_pem (the CA certificate's PEM text, inline in the check); they send no client certificate",
                ),
                "net_namespace" | "net_namespace_ipvs" | "namespace_with_ipsets" | "instance"
                | "use_pid_dir" | "linkbeat_use_polling" | "child_wait_time" => {
                    self.ignore(it, "")
                }
                _ => self.warn(
                    it.at,
                    format!("unknown keyword `{}`: ignored", it.key),
                ),
            }
        }
        // Sync groups after every instance is known.
        let names: BTreeSet<String> = instances.iter().map(|i| i.name.clone()).collect();
        let mut member_of = BTreeMap::new();
        for it in items.iter().filter(|i| i.key == "vrrp_sync_group") {
            self.sync_group(it, &names, &mut member_of, &mut o)?;
        }
        if let Some(sd) = g.sync_daemon.clone() {
            o.ipvs_sync = Some(self.sync_daemon(&sd, &instances)?);
        }
        let mut orphans: Vec<(IpAddr, Loc)> = Vec::new();
        let vips: BTreeSet<IpAddr> = instances.iter().flat_map(|i| i.vips.clone()).collect();
        // The kernel's key of each service (address or mark, protocol): a second definition of
        // one is left out.
        let mut defined: BTreeMap<String, Loc> = BTreeMap::new();
        for it in vs_items {
            for (svc, vip, at) in self.virtual_server(it, &groups, &mut taken_names)? {
                let get = |k: &str| {
                    svc.entries
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| format!("{v:?}"))
                        .unwrap_or_default()
                };
                let protocol = match get("protocol") {
                    p if p.is_empty() => format!("{:?}", Value::str("tcp")),
                    p => p,
                };
                let key = format!("{}|{}|{protocol}", get("vip"), get("fwmark"));
                if let Some(first) = defined.get(&key) {
                    let first = self.src.at(*first);
                    self.warn(at, format!("virtual server defined twice (first at {first}): keepalived adds the kernel's one service once and fails on the second; this definition is left out"));
                    continue;
                }
                defined.insert(key, at);
                if let Some(ip) = vip {
                    if !vips.contains(&ip) && !orphans.iter().any(|(o, _)| *o == ip) {
                        orphans.push((ip, at));
                    }
                }
                o.services.push(svc);
            }
        }
        if !orphans.is_empty() {
            let used: BTreeSet<(String, u8)> = instances
                .iter()
                .map(|i| (i.interface.clone(), i.vrid))
                .collect();
            let interface = g
                .default_interface
                .clone()
                .unwrap_or_else(|| self.opts.interface.clone());
            let taken: BTreeSet<String> = instances.iter().map(|i| i.name.clone()).collect();
            let (new, warnings) = super::adopt_orphan_vips(
                &orphans,
                &interface,
                &used,
                &taken,
                self.opts,
                self.src,
                "keepalived adds a virtual server whose address is in no vrrp_instance without moving that address",
            );
            o.instances.extend(new);
            self.warnings.extend(warnings);
        }
        Ok(o)
    }

    fn global_defs(&mut self, it: &Item, g: &mut Globals, o: &mut Output) -> R<()> {
        for c in self.block(it)? {
            match c.key.as_str() {
                "router_id" => {
                    let id = self.arg(c, 0, "a name")?;
                    if super::valid_hostname(id) {
                        o.set_node("hostname", Value::str(id));
                    } else {
                        self.warn(c.at, format!("router_id {id:?} is not a valid host name: not used as [node] hostname"));
                    }
                }
                "vrrp_version" => {
                    g.vrrp_version = Some(self.int(c, 0, 2, 3, "a VRRP version (2 or 3)")? as u8)
                }
                "vrrp_strict" => g.strict = true,
                "vrrp_rt_priority" => {
                    let prio = self.int(c, 0, 1, 99, "a SCHED_RR priority (1 to 99)")?;
                    o.set_node("vrrp_realtime_priority", Value::Int(prio));
                }
                "vrrp_garp_master_repeat" => {
                    g.garp_repeat = Some(self.int(c, 0, 0, 100, "a count")?)
                }
                "vrrp_garp_master_delay" => g.garp_delay = Some(self.timer(c, 0)?),
                "default_interface" => g.default_interface = Some(self.ifname(c, 0)?),
                "lvs_timeouts" => {
                    let mut i = 0;
                    while i < c.args.len() {
                        let name = c.args[i].to_ascii_lowercase();
                        let key = match name.as_str() {
                            "tcp" => "tcp",
                            "tcpfin" => "tcp_fin",
                            "udp" => "udp",
                            other => {
                                return Err(self.err(
                                    c.at,
                                    format!(
                                    "lvs_timeouts: unknown timeout {other:?} (tcp, tcpfin or udp)"
                                ),
                                ))
                            }
                        };
                        let secs = self.int(c, i + 1, 1, 86400 * 365, "seconds")?;
                        o.ipvs_timeouts.push((
                            key.into(),
                            Value::duration(Duration::from_secs(secs as u64)),
                        ));
                        i += 2;
                    }
                }
                "lvs_sync_daemon" | "lvs_sync_daemon_interface" => g.sync_daemon = Some(c.clone()),
                "lvs_flush" => self.ignore(
                    c,
                    "lbd never flushes: it adopts the kernel table and changes only what differs",
                ),
                "lvs_flush_on_stop" => self.ignore(
                    c,
                    "lbd leaves the table in place when it stops, so connections survive a restart",
                ),
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                    self.ignore(c, "lbd uses the RFC groups 224.0.0.18 and ff02::12")
                }
                _ => self.ignore(c, ""),
            }
        }
        Ok(())
    }

    fn vrrp_instance(&mut self, it: &Item, g: &Globals, o: &mut Output) -> R<Option<InstanceInfo>> {
        let name = out::name_from(self.arg(it, 0, "a name")?);
        if o.instances.iter().any(|i| i.name == name) {
            self.warn(
                it.at,
                format!("a second vrrp_instance named {name}: keepalived keeps the first; this one is left out"),
            );
            return Ok(None);
        }
        let mut interface: Option<String> = None;
        let mut vrid: Option<u8> = None;
        let mut priority: u8 = 100;
        let mut version: Option<(u8, Loc)> = None;
        let mut advert: Option<(Duration, Loc)> = None;
        let mut vips: Vec<(IpPrefix, Loc)> = Vec::new();
        let mut preempt = true;
        let mut preempt_delay: Option<Duration> = None;
        let mut unicast_source: Option<IpAddr> = None;
        let mut peers: Vec<IpAddr> = Vec::new();
        let mut auth: Option<(String, Loc)> = None;
        let mut track: Vec<String> = Vec::new();
        let mut vmac = false;
        let mut vmac_name: Option<String> = None;
        let mut accept: Option<bool> = None;
        // Where accept mode was turned off (no_accept / strict_mode), for the warning.
        let mut accept_at = it.at;
        let mut strict = g.strict;
        let mut garp_repeat = g.garp_repeat;
        let mut garp_delay = g.garp_delay;
        let mut state_master: Option<Loc> = None;
        for c in self.block(it)? {
            match c.key.as_str() {
                "state" => {
                    let s = self.arg(c, 0, "MASTER or BACKUP")?.to_ascii_uppercase();
                    match s.as_str() {
                        "MASTER" => state_master = Some(c.at),
                        "BACKUP" => {}
                        other => {
                            return Err(self.err(c.at, format!("state {other:?}: use MASTER or BACKUP")))
                        }
                    }
                }
                "interface" => interface = Some(self.ifname(c, 0)?),
                "virtual_router_id" => {
                    vrid = Some(self.int(c, 0, 1, 255, "a virtual router id (1 to 255)")? as u8)
                }
                "priority" => priority = self.int(c, 0, 1, 255, "a priority (1 to 255)")? as u8,
                "advert_int" => advert = Some((self.timer(c, 0)?, c.at)),
                "version" => {
                    version = Some((self.int(c, 0, 2, 3, "a VRRP version (2 or 3)")? as u8, c.at))
                }
                "nopreempt" => preempt = false,
                "preempt" => preempt = true,
                "preempt_delay" => preempt_delay = Some(self.timer(c, 0)?),
                "authentication" => {
                    let mut kind = "PASS".to_string();
                    let mut pass = None;
                    for a in self.block(c)? {
                        match a.key.as_str() {
                            "auth_type" => kind = self.arg(a, 0, "PASS or AH")?.to_ascii_uppercase(),
                            "auth_pass" => pass = Some((self.arg(a, 0, "a password")?.to_string(), a.at)),
                            _ => self.warn(a.at, format!("unknown keyword `{}` in authentication: ignored", a.key)),
                        }
                    }
                    if kind == "AH" {
                        self.warn(c.at, "IPsec AH authentication has no equivalent in lbd: left out (peers using it will not talk to lbd)");
                    } else if let Some(p) = pass {
                        auth = Some(p);
                    }
                }
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    if c.key == "virtual_ipaddress_excluded" {
                        self.warn(c.at, "virtual_ipaddress_excluded: lbd lists every VIP in its adverts; these addresses are added to vips");
                    }
                    for a in self.block(c)? {
                        let p: IpPrefix = a.key.parse().map_err(|e: String| self.err(a.at, e))?;
                        let mut i = 0;
                        while i < a.args.len() {
                            let opt = a.args[i].as_str();
                            let value = a.args.get(i + 1).map(String::as_str);
                            match opt {
                                "dev" => {
                                    if value != interface.as_deref() {
                                        self.warn(a.at, format!("VIP on another interface (dev {}): lbd puts an instance's VIPs on its own interface", value.unwrap_or("?")));
                                    }
                                    i += 2;
                                }
                                "brd" | "scope" | "label" | "peer" | "preferred_lft" => {
                                    self.warn(a.at, format!("VIP option `{opt}` has no equivalent in lbd: ignored"));
                                    i += 2;
                                }
                                _ => {
                                    self.warn(a.at, format!("VIP option `{opt}` has no equivalent in lbd: ignored"));
                                    i += 1;
                                }
                            }
                        }
                        vips.push((p, a.at));
                    }
                }
                "unicast_src_ip" => unicast_source = Some(self.ip(c, 0)?),
                "unicast_peer" => {
                    for a in self.block(c)? {
                        let ip: IpAddr = a.key.parse().map_err(|_| {
                            self.err(a.at, format!("unicast_peer: {:?} is not an IP address", a.key))
                        })?;
                        if !a.args.is_empty() {
                            self.warn(a.at, "unicast peer TTL limits (min_ttl/max_ttl) have no equivalent in lbd: ignored (lbd checks TTL 255 as the RFC says)");
                        }
                        peers.push(ip);
                    }
                }
                "track_interface" => {
                    for a in self.block(c)? {
                        if !a.args.is_empty() {
                            self.warn(a.at, "a weighted tracked interface lowers the priority in keepalived; in lbd a down tracked interface faults the instance");
                        }
                        if lbd::config::valid_ifname(&a.key) {
                            track.push(a.key.clone());
                        } else {
                            self.warn(a.at, format!("track_interface {:?} is not an interface name Linux takes: left out", a.key));
                        }
                    }
                }
                "use_vmac" => {
                    vmac = true;
                    for a in &c.args {
                        if a.split(':').count() == 6 {
                            self.warn(c.at, format!("use_vmac with a MAC address ({a}): lbd always uses the RFC's 00:00:5e:00:01:VRID"));
                        } else {
                            vmac_name = Some(a.clone());
                        }
                    }
                }
                "accept" => accept = Some(true),
                "no_accept" => {
                    accept = Some(false);
                    accept_at = c.at;
                }
                "strict_mode" => {
                    strict = self.boolean(c, 0)?;
                    accept_at = c.at;
                }
                "garp_master_repeat" => garp_repeat = Some(self.int(c, 0, 0, 100, "a count")?),
                "garp_master_delay" => garp_delay = Some(self.timer(c, 0)?),
                "mcast_src_ip" => self.ignore(c, "lbd sends from the interface's primary address"),
                "dont_track_primary" => self.ignore(c, "lbd always faults an instance whose interface is down"),
                "track_script" | "track_file" | "track_process" | "track_bfd" => self.ignore(c, "lbd tracks interfaces and service quorum (quorum_priority_drop)"),
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify_master_rx_lower_pri" | "notify_deleted" => {
                    self.ignore(c, "lbd runs no scripts; role changes are in its log, remote syslog and status API")
                }
                "smtp_alert" => self.ignore(c, "state changes go to the log, remote syslog and status API"),
                _ => self.ignore(c, ""),
            }
        }
        let Some(vrid) = vrid else {
            return Err(self.err(
                it.at,
                format!("vrrp_instance {name} has no virtual_router_id"),
            ));
        };
        // An address is moved by one instance: listed twice, or already an earlier instance's,
        // it is left out here.
        let held_before: BTreeSet<IpAddr> = o
            .instances
            .iter()
            .flat_map(|i| &i.entries)
            .filter(|(k, _)| k == "vips")
            .flat_map(|(_, v)| match v {
                Value::List(items) => items.clone(),
                _ => Vec::new(),
            })
            .filter_map(|v| match v {
                Value::Str(s) => s.parse::<IpPrefix>().ok().map(|p| p.addr),
                _ => None,
            })
            .collect();
        let mut kept: BTreeSet<IpAddr> = BTreeSet::new();
        let mut unique = Vec::new();
        for (p, at) in vips {
            if held_before.contains(&p.addr) {
                self.warn(at, format!("{} is already a VIP of an earlier vrrp_instance: one instance moves an address; left out of {name}", p.addr));
            } else if !kept.insert(p.addr) {
                self.warn(
                    at,
                    format!(
                        "{} is listed twice in vrrp_instance {name}: listed once",
                        p.addr
                    ),
                );
            } else {
                unique.push((p, at));
            }
        }
        let vips = unique;
        if vips.is_empty() {
            self.warn(
                it.at,
                format!("vrrp_instance {name} has no virtual_ipaddress (of its own): keepalived runs it for its state (and scripts) alone; lbd's instances move addresses, and this one has none: left out"),
            );
            return Ok(None);
        }
        let interface = match interface {
            Some(i) => i,
            None => {
                let i = g
                    .default_interface
                    .clone()
                    .unwrap_or_else(|| self.opts.interface.clone());
                self.warn(
                    it.at,
                    format!("vrrp_instance {name} has no interface; lbd needs one: {i} used"),
                );
                i
            }
        };
        let family = vips
            .first()
            .map_or(Family::Ipv4, |(p, _)| Family::of(&p.addr));
        let mut ver = version.map(|v| v.0).or(g.vrrp_version).unwrap_or(2);
        if family == Family::Ipv6 && ver == 2 {
            if let Some((_, at)) = version {
                self.warn(
                    at,
                    "VRRP version 2 carries no IPv6: version 3 used, as keepalived does",
                );
            }
            ver = 3;
        }
        let mut e: Entries = vec![
            ("interface".into(), Value::str(&interface)),
            ("vrid".into(), Value::Int(vrid.into())),
            ("priority".into(), Value::Int(priority.into())),
            ("version".into(), Value::Int(ver.into())),
        ];
        if let Some((d, at)) = advert {
            let adjusted = if ver == 2 {
                let secs = d.as_millis().div_ceil(1000).clamp(1, 255) as u64;
                Duration::from_secs(secs)
            } else {
                let cs = d.as_millis().div_ceil(10).clamp(1, 4095) as u64;
                Duration::from_millis(cs * 10)
            };
            if adjusted != d {
                self.warn(
                    at,
                    format!(
                        "advert_int {}: VRRPv{ver} counts in {}, so {} is used",
                        out::duration_text(d),
                        if ver == 2 {
                            "whole seconds"
                        } else {
                            "centiseconds"
                        },
                        out::duration_text(adjusted)
                    ),
                );
            }
            e.push(("advert_interval".into(), Value::duration(adjusted)));
        }
        e.push((
            "vips".into(),
            Value::List(
                vips.iter()
                    .map(|(p, _)| Value::str(p.to_string()))
                    .collect(),
            ),
        ));
        if let Some(at) = state_master {
            if preempt {
                // Nothing to say: MASTER with preemption is what the priorities decide anyway.
            } else {
                self.warn(at, "state MASTER with nopreempt: keepalived ignores nopreempt then; lbd starts as backup and does not preempt");
            }
        }
        e.push(("preempt".into(), Value::Bool(preempt)));
        if let Some(d) = preempt_delay {
            if !d.is_zero() {
                e.push(("preempt_delay".into(), Value::duration(d)));
            }
        }
        if let Some(s) = unicast_source {
            if peers.is_empty() {
                self.warn(it.at, "unicast_src_ip without unicast_peer: multicast is used, the source is left out");
            } else {
                e.push(("unicast_source".into(), Value::str(s.to_string())));
            }
        }
        if !peers.is_empty() {
            e.push((
                "unicast_peers".into(),
                Value::List(peers.iter().map(|p| Value::str(p.to_string())).collect()),
            ));
        }
        if let Some((mut pass, at)) = auth {
            if ver == 3 {
                self.warn(at, "authentication with VRRP version 3: RFC 5798 has none and keepalived ignores it; left out");
            } else {
                if pass.chars().count() > 8 {
                    pass = pass.chars().take(8).collect();
                    self.warn(at, format!("auth_pass longer than 8 characters: only the first 8 count (as in keepalived): {pass:?}"));
                }
                e.push(("auth_pass".into(), Value::str(pass)));
            }
        }
        if !track.is_empty() {
            e.push((
                "track_interfaces".into(),
                Value::List(track.iter().map(Value::str).collect()),
            ));
        }
        if vmac {
            e.push(("virtual_mac".into(), Value::Bool(true)));
            if let Some(n) = vmac_name {
                e.push(("virtual_mac_interface".into(), Value::str(n)));
            }
        }
        // keepalived accepts packets to the VIPs unless strict mode or no_accept; lbd always
        // does (IPVS needs the VIPs local), so only the refusal is worth a warning.
        if !accept.unwrap_or(!strict) {
            self.warn(
                accept_at,
                format!("vrrp_instance {name}: no_accept / strict mode has no equivalent: lbd always accepts packets to the VIPs (IPVS needs them local); filter other traffic to them with a firewall"),
            );
        }
        if let Some(n) = garp_repeat {
            e.push(("garp_count".into(), Value::Int(n)));
        }
        if let Some(d) = garp_delay {
            e.push(("garp_repeat_after".into(), Value::duration(d)));
        }
        o.instances.push(out::Instance {
            name: name.clone(),
            origin: self.origin(it),
            entries: e,
        });
        Ok(Some(InstanceInfo {
            name,
            interface,
            vrid,
            vips: vips.iter().map(|(p, _)| p.addr).collect(),
        }))
    }

    fn sync_group(
        &mut self,
        it: &Item,
        known: &BTreeSet<String>,
        member_of: &mut BTreeMap<String, String>,
        o: &mut Output,
    ) -> R<()> {
        let name = out::name_from(self.arg(it, 0, "a name")?);
        if o.sync_groups.iter().any(|g| g.name == name) {
            self.warn(
                it.at,
                format!("a second vrrp_sync_group named {name}: keepalived keeps the first; this one is left out"),
            );
            return Ok(());
        }
        let mut members = Vec::new();
        for c in self.block(it)? {
            match c.key.as_str() {
                "group" => {
                    for m in self.block(c)? {
                        let n = out::name_from(&m.key);
                        if let Some(group) = member_of.get(&n) {
                            let why = if *group == name {
                                format!("sync group {name} lists vrrp_instance {} twice: listed once", m.key)
                            } else {
                                format!("vrrp_instance {} is already in sync group {group}: an instance is in one sync group (keepalived refuses the second); left out of {name}", m.key)
                            };
                            self.warn(m.at, why);
                        } else if known.contains(&n) {
                            member_of.insert(n.clone(), name.clone());
                            members.push(n);
                        } else {
                            self.warn(m.at, format!("sync group {name} names vrrp_instance {} which is not defined: left out", m.key));
                        }
                    }
                }
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify_deleted" => {
                    self.ignore(c, "lbd runs no scripts; role changes are in its log, remote syslog and status API")
                }
                "track_interface" | "track_script" | "track_file" | "track_process" | "track_bfd" => {
                    self.ignore(c, "track interfaces on each instance of the group (track_interfaces)")
                }
                _ => self.ignore(c, ""),
            }
        }
        o.sync_groups.push(out::SyncGroup {
            name,
            origin: self.origin(it),
            instances: members,
        });
        Ok(())
    }

    /// `lvs_sync_daemon IFACE [[inst] VI] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
    fn sync_daemon(&mut self, it: &Item, instances: &[InstanceInfo]) -> R<(Origin, Entries)> {
        let iface = self.ifname(it, 0)?;
        let mut e = Entries::new();
        e.push(("interface".into(), Value::str(&iface)));
        let mut follow: Option<String> = None;
        let mut sync_id: Option<i64> = None;
        let mut i = 1;
        while i < it.args.len() {
            match it.args[i].as_str() {
                "inst" => {
                    follow = Some(self.arg(it, i + 1, "a vrrp_instance name")?.to_string());
                    i += 2;
                }
                "id" => {
                    sync_id = Some(self.int(it, i + 1, 0, 255, "a sync id (0 to 255)")?);
                    i += 2;
                }
                "maxlen" => {
                    let n = self.int(it, i + 1, 1, 65507, "a length")?;
                    let clamped = n.max(256);
                    if clamped != n {
                        self.warn(
                            it.at,
                            format!("maxlen {n}: lbd's minimum is 256, used instead"),
                        );
                    }
                    e.push(("max_len".into(), Value::Int(clamped)));
                    i += 2;
                }
                "port" => {
                    e.push((
                        "port".into(),
                        Value::Int(self.int(it, i + 1, 1, 65535, "a port")?),
                    ));
                    i += 2;
                }
                "ttl" => {
                    e.push((
                        "ttl".into(),
                        Value::Int(self.int(it, i + 1, 1, 255, "a TTL")?),
                    ));
                    i += 2;
                }
                "group" => {
                    e.push(("group".into(), Value::str(self.ip(it, i + 1)?.to_string())));
                    i += 2;
                }
                word if follow.is_none() && i == 1 => {
                    follow = Some(word.to_string());
                    i += 1;
                }
                other => {
                    return Err(self.err(it.at, format!("lvs_sync_daemon: unexpected {other:?}")))
                }
            }
        }
        let follow_inst = follow.as_ref().map(|f| out::name_from(f));
        let inst = follow_inst
            .as_ref()
            .and_then(|f| instances.iter().find(|i| &i.name == f));
        match (&follow_inst, inst) {
            (Some(f), None) => {
                return Err(self.err(
                    it.at,
                    format!("lvs_sync_daemon follows vrrp_instance {f}, which is not defined"),
                ))
            }
            (Some(f), Some(_)) => e.push(("follow".into(), Value::str(f))),
            (None, _) => {
                if instances.len() == 1 {
                    e.push(("follow".into(), Value::str(&instances[0].name)));
                } else {
                    self.warn(it.at, "lvs_sync_daemon without an instance runs master and backup daemons at once in keepalived; lbd follows one VRRP state: set `follow`");
                }
            }
        }
        let id = sync_id.or_else(|| inst.map(|i| i.vrid.into())).unwrap_or(0);
        e.insert(1, ("sync_id".into(), Value::Int(id)));
        Ok((self.origin(it), e))
    }

    fn vs_group(&mut self, it: &Item) -> R<Vec<(VsKey, Loc)>> {
        let mut out = Vec::new();
        for c in self.block(it)? {
            if c.key == "fwmark" {
                let mark = self.int(c, 0, 1, u32::MAX as i64, "a firewall mark")? as u32;
                let family = match c.arg(1) {
                    None => None,
                    Some("inet") => Some(Family::Ipv4),
                    Some("inet6") => Some(Family::Ipv6),
                    Some(other) => {
                        return Err(
                            self.err(c.at, format!("fwmark family {other:?}: use inet or inet6"))
                        )
                    }
                };
                out.push((VsKey::Fwmark(mark, family), c.at));
                continue;
            }
            let port = match c.arg(0) {
                Some(_) => self.port(c, 0)?,
                None => 0,
            };
            let addrs = self.address_range(c)?;
            for a in addrs {
                out.push((VsKey::Addr(a, port), c.at));
            }
        }
        Ok(out)
    }

    /// `IP`, `A.B.C.D-E`, `A.B.C.D-E.F.G.H` or `ADDR/LEN` (IPv4 ranges; IPv6 single addresses).
    fn address_range(&mut self, c: &Item) -> R<Vec<IpAddr>> {
        const MAX: u32 = 256;
        let text = c.key.as_str();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let bad = || {
            self.err(c.at, format!("{text:?} is not an address, an address range (192.0.2.1-10) or a prefix (192.0.2.8/29)"))
        };
        let (first, last) = if let Some((a, b)) = text.split_once('-') {
            let first: Ipv4Addr = a.parse().map_err(|_| bad())?;
            let last: Ipv4Addr = if let Ok(full) = b.parse::<Ipv4Addr>() {
                full
            } else {
                let n: u8 = b.parse().map_err(|_| bad())?;
                let o = first.octets();
                Ipv4Addr::new(o[0], o[1], o[2], n)
            };
            (u32::from(first), u32::from(last))
        } else if let Some((a, l)) = text.split_once('/') {
            let base: Ipv4Addr = a.parse().map_err(|_| bad())?;
            let len: u32 = l.parse().ok().filter(|n| *n <= 32).ok_or_else(bad)?;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let start = u32::from(base) & mask;
            (start, start | !mask)
        } else {
            return Err(bad());
        };
        if first > last {
            return Err(self.err(
                c.at,
                format!("address range {text:?} ends before it starts"),
            ));
        }
        if last - first >= MAX {
            self.warn(c.at, format!("address range {text:?} has more than {MAX} addresses: left out (list them, or use a firewall mark)"));
            return Ok(Vec::new());
        }
        Ok((first..=last)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n)))
            .collect())
    }

    /// One `virtual_server` block into services (several for a group), each with the VIP it
    /// needs a VRRP instance for.
    fn virtual_server(
        &mut self,
        it: &Item,
        groups: &BTreeMap<String, Vec<(VsKey, Loc)>>,
        taken: &mut BTreeSet<String>,
    ) -> R<Vec<(out::Service, Option<IpAddr>, Loc)>> {
        let (keys, group): (Vec<(VsKey, Loc)>, Option<String>) = match it.arg(0) {
            Some("fwmark") => (
                vec![(
                    VsKey::Fwmark(
                        self.int(it, 1, 1, u32::MAX as i64, "a firewall mark")? as u32,
                        None,
                    ),
                    it.at,
                )],
                None,
            ),
            Some("group") => {
                let name = self.arg(it, 1, "a virtual_server_group name")?;
                let Some(members) = groups.get(name) else {
                    return Err(
                        self.err(it.at, format!("virtual_server_group {name} is not defined"))
                    );
                };
                if members.is_empty() {
                    self.warn(
                        it.at,
                        format!("virtual_server_group {name} has no usable member: no service"),
                    );
                }
                (members.clone(), Some(name.to_string()))
            }
            Some(_) => {
                let ip = self.ip(it, 0)?;
                match it.arg(1) {
                    Some(_) => (vec![(VsKey::Addr(ip, self.port(it, 1)?), it.at)], None),
                    None => (vec![(VsKey::Addr(ip, 0), it.at)], None),
                }
            }
            None => {
                return Err(self.err(
                    it.at,
                    "virtual_server needs an address and port, `fwmark N` or `group NAME`",
                ))
            }
        };
        let body = self.block(it)?;
        // Virtual-server settings.
        let mut scheduler = Scheduler::Wlc;
        let mut forwarding = Forwarding::Nat;
        let mut protocol: Option<(Protocol, Loc)> = None;
        let mut flags: Vec<(&'static str, Loc)> = Vec::new();
        let mut persistence: Option<Duration> = None;
        let mut granularity: Option<(Value, Loc)> = None;
        let mut sorry: Option<(IpAddr, Option<u16>, Loc)> = None;
        let mut sorry_fwd: Option<Forwarding> = None;
        let mut quorum: Option<(i64, Loc)> = None;
        let mut hysteresis: Option<i64> = None;
        let mut family: Option<Family> = None;
        let mut inhibit = false;
        let mut defaults = CheckDefaults::default();
        let mut reals: Vec<&Item> = Vec::new();
        for c in body {
            match c.key.as_str() {
                "lvs_sched" | "lb_algo" => {
                    let name = self.arg(c, 0, "a scheduler")?;
                    match name.parse::<Scheduler>() {
                        Ok(s) => scheduler = s,
                        Err(e) => {
                            self.warn(c.at, format!("{e}; wlc used"));
                        }
                    }
                }
                "lvs_method" | "lb_kind" => forwarding = self.forwarding(c)?,
                "protocol" => {
                    let p = self.arg(c, 0, "TCP, UDP or SCTP")?;
                    protocol = Some((p.parse().map_err(|e: String| self.err(c.at, e))?, c.at));
                }
                "persistence_timeout" => {
                    persistence = Some(match c.arg(0) {
                        None => Duration::from_secs(360),
                        Some(_) => {
                            Duration::from_secs(
                                self.int(c, 0, 1, u32::MAX as i64, "seconds")? as u64
                            )
                        }
                    })
                }
                "persistence_granularity" => {
                    let m = self.arg(c, 0, "a netmask")?;
                    let v = if let Ok(n) = m.trim_start_matches('/').parse::<i64>() {
                        Value::Int(n)
                    } else if m.parse::<Ipv4Addr>().is_ok() {
                        Value::str(m)
                    } else {
                        return Err(self.err(c.at, format!("persistence_granularity {m:?}: write a netmask such as 255.255.255.0 or a prefix length")));
                    };
                    granularity = Some((v, c.at));
                }
                "persistence_engine" => self.ignore(c, "lbd programs no persistence engine (sip)"),
                "sorry_server" => {
                    let ip = self.ip(c, 0)?;
                    let port = match c.arg(1) {
                        Some(_) => Some(self.port(c, 1)?),
                        None => None,
                    };
                    sorry = Some((ip, port, c.at));
                }
                "sorry_server_lvs_method" | "sorry_server_lb_kind" => {
                    sorry_fwd = Some(self.forwarding(c)?)
                }
                "sorry_server_inhibit" => self.ignore(
                    c,
                    "lbd adds the sorry server when no real is up and removes it otherwise",
                ),
                "quorum" => quorum = Some((self.int(c, 0, 1, i32::MAX as i64, "a weight")?, c.at)),
                "hysteresis" => {
                    hysteresis = Some(self.int(c, 0, 0, i32::MAX as i64, "a weight")?)
                }
                "quorum_up" | "quorum_down" => self.ignore(
                    c,
                    "lbd runs no scripts; quorum changes are in its log and status",
                ),
                "ip_family" => {
                    family = Some(match self.arg(c, 0, "inet or inet6")? {
                        "inet" => Family::Ipv4,
                        "inet6" => Family::Ipv6,
                        other => {
                            return Err(
                                self.err(c.at, format!("ip_family {other:?}: use inet or inet6"))
                            )
                        }
                    })
                }
                "inhibit_on_failure" => inhibit = self.boolean(c, 0)?,
                "sh-port" | "mh-port" | "flag-2" => flags.push(("sh-port", c.at)),
                "sh-fallback" | "mh-fallback" | "flag-1" => flags.push(("sh-fallback", c.at)),
                "ops" => flags.push(("one-packet", c.at)),
                "flag-3" => self.ignore(c, "no scheduler uses flag-3"),
                "real_server" => reals.push(c),
                "ha_suspend" => {
                    self.ignore(c, "lbd checks reals whether or not this node holds the VIP")
                }
                "alpha" => self.ignore(
                    c,
                    "lbd counts a real as up until its checks say otherwise (rise/fall)",
                ),
                "omega" | "smtp_alert" | "snmp_name" => self.ignore(c, ""),
                _ => {
                    if !self.check_default(c, &mut defaults)? {
                        self.ignore(c, "");
                    }
                }
            }
        }
        if let Some((_, at)) = &protocol {
            if group.is_none() && keys.iter().any(|k| matches!(k.0, VsKey::Fwmark(..))) {
                self.warn(*at, "protocol on a fwmark virtual server: the mark selects the packets; left out, as keepalived ignores it");
            }
        }
        // Real servers, their settings and checks, once: the same for every group member.
        struct RealOut {
            ip: IpAddr,
            port: Option<u16>,
            at: Loc,
            item: Item,
            weight: i64,
            forwarding: Option<Forwarding>,
            upper: Option<i64>,
            lower: Option<i64>,
            inhibit: Option<(bool, Loc)>,
            check: Option<Entries>,
        }
        let mut rs: Vec<RealOut> = Vec::new();
        for r in &reals {
            let ip = self.ip(r, 0)?;
            let port = match r.arg(1) {
                Some(_) => Some(self.port(r, 1)?),
                None => None,
            };
            let mut ro = RealOut {
                ip,
                port,
                at: r.at,
                item: (*r).clone(),
                weight: 1,
                forwarding: None,
                upper: None,
                lower: None,
                inhibit: None,
                check: None,
            };
            let mut rdefaults = defaults.clone();
            let mut checkers: Vec<&Item> = Vec::new();
            for c in r.children() {
                match c.key.as_str() {
                    "weight" => ro.weight = self.int(c, 0, 0, i32::MAX as i64, "a weight")?,
                    "lvs_method" | "lb_kind" => ro.forwarding = Some(self.forwarding(c)?),
                    "uthreshold" => ro.upper = Some(self.int(c, 0, 0, i32::MAX as i64, "a connection count")?),
                    "lthreshold" => ro.lower = Some(self.int(c, 0, 0, i32::MAX as i64, "a connection count")?),
                    "inhibit_on_failure" => ro.inhibit = Some((self.boolean(c, 0)?, c.at)),
                    "notify_up" | "notify_down" => self.ignore(c, "lbd runs no scripts; health changes are in its log, remote syslog and status API"),
                    "HTTP_GET" | "SSL_GET" | "TCP_CHECK" | "SMTP_CHECK" | "DNS_CHECK" | "MISC_CHECK" | "UDP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => checkers.push(c),
                    "alpha" => self.ignore(c, "lbd counts a real as up until its checks say otherwise (rise/fall)"),
                    "smtp_alert" | "snmp_name" => self.ignore(c, ""),
                    _ => {
                        if !self.check_default(c, &mut rdefaults)? {
                            self.ignore(c, "");
                        }
                    }
                }
            }
            let mut mapped = false;
            for c in checkers {
                if mapped {
                    self.warn(c.at, format!("a second checker ({}) on the same real: lbd runs one check per real; only the first is kept", c.key));
                    continue;
                }
                if let Some(e) = self.checker(c, &rdefaults)? {
                    ro.check = Some(e);
                    mapped = true;
                }
            }
            rs.push(ro);
        }
        // inhibit_on_failure is per real in keepalived and per service in lbd.
        let on_failure_inhibit = inhibit;
        for r in &rs {
            if let Some((v, at)) = r.inhibit {
                if v != on_failure_inhibit {
                    self.warn(at, format!("inhibit_on_failure differs from its virtual server's: lbd sets it per service, on_failure = {:?} used for every real", if on_failure_inhibit { "inhibit" } else { "remove" }));
                }
            }
        }
        let mut services = Vec::new();
        if rs.is_empty() {
            self.warn(
                it.at,
                "virtual server without real servers: keepalived ignores it; left out",
            );
            return Ok(services);
        }
        let svc_protocol = match protocol {
            Some((p, _)) => p,
            None => {
                if keys.iter().any(|k| matches!(k.0, VsKey::Addr(..))) {
                    self.warn(it.at, "no protocol: keepalived then uses UDP (the kernel's default for protocol 0); write `protocol TCP` if TCP was meant");
                }
                Protocol::Udp
            }
        };
        for (key, key_at) in &keys {
            let proto_suffix = match svc_protocol {
                Protocol::Udp => "_udp",
                Protocol::Sctp => "_sctp",
                Protocol::Tcp => "",
            };
            let (name_base, vip_ip, svc_port) = match key {
                VsKey::Addr(ip, port) => (
                    format!(
                        "{}{}_{}{proto_suffix}",
                        group.as_ref().map(|g| format!("{g}_")).unwrap_or_default(),
                        ip,
                        port
                    ),
                    Some(*ip),
                    Some(*port),
                ),
                VsKey::Fwmark(m, _) => (
                    format!(
                        "{}fwmark_{m}",
                        group.as_ref().map(|g| format!("{g}_")).unwrap_or_default()
                    ),
                    None,
                    None,
                ),
            };
            if svc_port == Some(0) {
                self.warn(it.at, format!("virtual server {} without a port (all ports, persistent): lbd services have a port; use a firewall mark for all ports. Left out", vip_ip.map(|i| i.to_string()).unwrap_or_default()));
                continue;
            }
            let name = out::unique_name(out::name_from(&format!("vs_{name_base}")), taken);
            let is_fwmark = matches!(key, VsKey::Fwmark(..));
            let mut e = Entries::new();
            let svc_family = match key {
                VsKey::Addr(ip, port) => {
                    let ep = lbd::config::Endpoint {
                        ip: *ip,
                        port: Some(*port),
                    };
                    e.push(("vip".into(), Value::str(ep.to_string())));
                    e.push(("protocol".into(), Value::str(svc_protocol.to_string())));
                    Family::of(ip)
                }
                VsKey::Fwmark(m, f) => {
                    e.push(("fwmark".into(), Value::Int(i64::from(*m))));
                    let fam = f.or(family).unwrap_or_else(|| {
                        // keepalived takes the family of the reals (all tunnelled or not).
                        rs.first().map_or(Family::Ipv4, |r| Family::of(&r.ip))
                    });
                    if fam == Family::Ipv6 {
                        e.push(("family".into(), Value::str("ipv6")));
                    }
                    fam
                }
            };
            e.push(("scheduler".into(), Value::str(scheduler.to_string())));
            let mut fl: Vec<Value> = Vec::new();
            for (f, at) in &flags {
                let ok = match *f {
                    "one-packet" => svc_protocol == Protocol::Udp && !is_fwmark,
                    _ => matches!(scheduler, Scheduler::Sh | Scheduler::Mh),
                };
                if !ok {
                    self.warn(
                        *at,
                        format!(
                            "{f} only applies to {}: left out",
                            if *f == "one-packet" {
                                "UDP services"
                            } else {
                                "the sh and mh schedulers"
                            }
                        ),
                    );
                } else if !fl.contains(&Value::str(*f)) {
                    fl.push(Value::str(*f));
                }
            }
            if !fl.is_empty() {
                e.push(("flags".into(), Value::List(fl)));
            }
            e.push(("forwarding".into(), Value::str(forwarding.to_string())));
            e.push((
                "on_failure".into(),
                Value::str(if on_failure_inhibit {
                    "inhibit"
                } else {
                    "remove"
                }),
            ));
            if let Some((ip, port, at)) = sorry {
                if Family::of(&ip) != svc_family {
                    self.warn(at, "sorry server of another address family: left out");
                } else {
                    // Not NAT: the sorry server takes the service's port (0 for a mark).
                    let nat = sorry_fwd.unwrap_or(forwarding) == Forwarding::Nat;
                    let port = if nat { port } else { None };
                    let ep = lbd::config::Endpoint {
                        ip,
                        port: port.filter(|p| *p != 0),
                    };
                    e.push(("sorry_server".into(), Value::str(ep.to_string())));
                    if let Some(f) = sorry_fwd {
                        e.push(("sorry_forwarding".into(), Value::str(f.to_string())));
                    }
                }
            }
            let mut svc = out::Service {
                name,
                origin: self.origin(it),
                entries: e,
                ..Default::default()
            };
            if let Some(t) = persistence {
                let mut p = vec![("timeout".to_string(), Value::duration(t))];
                if let Some((g, at)) = &granularity {
                    let v6 = svc_is_v6(&svc.entries);
                    let fits = match g {
                        Value::Int(n) => (0..=if v6 { 128 } else { 32 }).contains(n),
                        _ => !v6,
                    };
                    if !fits {
                        return Err(self.err(*at, format!(
                            "persistence_granularity {}: an {} service takes {}",
                            match g { Value::Str(s) => s.clone(), other => format!("{other:?}") },
                            if v6 { "IPv6" } else { "IPv4" },
                            if v6 { "a prefix length from 0 to 128" } else { "a netmask such as 255.255.255.0 or a prefix length from 0 to 32" }
                        )));
                    }
                    p.push(("netmask".into(), g.clone()));
                }
                svc.persistence = Some(p);
            } else if let Some((_, at)) = &granularity {
                self.warn(
                    *at,
                    "persistence_granularity without persistence_timeout: left out",
                );
            }
            let mut seen: BTreeSet<(IpAddr, u16)> = BTreeSet::new();
            for r in &rs {
                let fwd = r.forwarding.unwrap_or(forwarding);
                // keepalived's port rules: NAT keeps the port written (the service's when
                // none); otherwise an address service's real takes the service port and a
                // firewall mark's real port 0.
                let port = match (fwd, svc_port, r.port) {
                    (Forwarding::Nat, _, p) => p.filter(|p| *p != 0),
                    (_, Some(sp), Some(p)) if p != sp && p != 0 => {
                        self.warn(r.at, format!("{fwd} real with port {p} on service port {sp}: {fwd} cannot change the port, so keepalived (and lbd) use {sp}"));
                        None
                    }
                    (_, None, Some(p)) if p != 0 => {
                        self.warn(r.at, format!("{fwd} real with port {p} behind a firewall mark: keepalived clears the port (0)"));
                        None
                    }
                    _ => None,
                };
                if Family::of(&r.ip) != svc_family && fwd != Forwarding::Tun {
                    self.warn(r.at, format!("real server {} is of another address family than its virtual server: the kernel forwards across families only through a tunnel, so keepalived fails to add it; left out", r.ip));
                    continue;
                }
                let effective = port.or(svc_port).unwrap_or(0);
                if !seen.insert((r.ip, effective)) {
                    self.warn(
                        r.at,
                        format!(
                            "real server {} appears twice: keepalived drops the second",
                            lbd::config::Endpoint {
                                ip: r.ip,
                                port: Some(effective)
                            }
                        ),
                    );
                    continue;
                }
                let ep = lbd::config::Endpoint { ip: r.ip, port };
                let mut re = Entries::new();
                re.push(("address".into(), Value::str(ep.to_string())));
                re.push(("weight".into(), Value::Int(r.weight)));
                if r.forwarding.is_some() && fwd != forwarding {
                    re.push(("forwarding".into(), Value::str(fwd.to_string())));
                }
                if let Some(u) = r.upper {
                    re.push(("upper_threshold".into(), Value::Int(u)));
                }
                if let Some(l) = r.lower {
                    re.push(("lower_threshold".into(), Value::Int(l)));
                }
                svc.reals.push(out::Real {
                    origin: Origin {
                        at: self.src.at(r.at),
                        what: r.item.head(),
                    },
                    entries: re,
                    check: r.check.clone().filter(|c| {
                        // A fwmark service's real without a port, checked without a
                        // connect_port: keepalived connects to port 0, which fails.
                        let portless = is_fwmark
                            && port.is_none()
                            && !c.iter().any(|(k, _)| k == "port" || k == "command")
                            && !c.iter().any(|(k, v)| k == "type" && *v == Value::str("exec"));
                        if portless {
                            self.warn(r.at, "a check on a firewall-mark real without a port, and no connect_port: keepalived checks port 0, which fails; lbd leaves the real unchecked (set connect_port)");
                        }
                        !portless
                    }),
                });
            }
            if quorum.is_some() || hysteresis.is_some() {
                // keepalived lowers a quorum above the total weight to it, and a hysteresis
                // to quorum - 1; it loses the quorum below quorum - hysteresis and regains it
                // at quorum + hysteresis. Ours: lost below min_weight, regained at
                // min_weight + hysteresis.
                // Of the reals kept: duplicates and reals of another family are left out above.
                let total: i64 = svc
                    .reals
                    .iter()
                    .flat_map(|r| &r.entries)
                    .filter_map(|(k, v)| match (k.as_str(), v) {
                        ("weight", Value::Int(w)) => Some(*w),
                        _ => None,
                    })
                    .sum();
                let q = quorum.map_or(1, |q| q.0).min(total.max(1));
                let h = hysteresis.unwrap_or(0).min(q - 1);
                let at = quorum.map_or(it.at, |q| q.1);
                if q + h > total {
                    self.warn(at, format!("quorum {q} + hysteresis {h} can never be regained with these reals (total weight {total}): left out"));
                } else {
                    svc.quorum = Some(vec![
                        ("min_weight".into(), Value::Int(q - h)),
                        ("hysteresis".into(), Value::Int(2 * h)),
                    ]);
                    if q > 1 {
                        self.warn(at, "quorum: keepalived swaps in the sorry server when the quorum is lost; lbd adds it only when no real is up (its quorum feeds VRRP quorum_priority_drop)");
                    }
                }
            }
            svc.hoist_common_check();
            services.push((svc, vip_ip, *key_at));
        }
        Ok(services)
    }

    fn forwarding(&self, c: &Item) -> R<Forwarding> {
        let m = self.arg(c, 0, "NAT, DR or TUN")?;
        let f: Forwarding = m.parse().map_err(|e: String| self.err(c.at, e))?;
        if f == Forwarding::Tun {
            if let Some(i) = c.args.iter().position(|a| a == "type") {
                if c.arg(i + 1) != Some("ipip") {
                    return Err(self.err(
                        c.at,
                        format!(
                            "tunnel type {:?}: lbd tunnels with IP-in-IP only",
                            c.arg(i + 1).unwrap_or("")
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }

    /// Inherited check settings; false when `c` is not one.
    fn check_default(&mut self, c: &Item, d: &mut CheckDefaults) -> R<bool> {
        match c.key.as_str() {
            "connect_timeout" => {
                let t = self.timer(c, 0)?;
                if t.is_zero() {
                    self.warn(c.at, "connect_timeout 0: a check needs time to answer; keepalived's default, 5s, is used");
                } else {
                    d.connect_timeout = Some(t);
                }
            }
            "retry" => d.retry = Some(self.int(c, 0, 0, 99, "a retry count")? as u32),
            "delay_before_retry" => d.delay_before_retry = Some(self.timer(c, 0)?),
            "warmup" => d.warmup = Some(self.timer(c, 0)?),
            "delay_loop" => d.delay_loop = Some(self.timer(c, 0)?),
            "virtualhost" => d.virtualhost = Some(self.arg(c, 0, "a host name")?.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One checker block as an inline check table; None when lbd has no such check.
    fn checker(&mut self, c: &Item, inherited: &CheckDefaults) -> R<Option<Entries>> {
        let kind = match c.key.as_str() {
            "TCP_CHECK" => "tcp",
            "HTTP_GET" => "http",
            "SSL_GET" => "https",
            "SMTP_CHECK" => "smtp",
            "DNS_CHECK" => "dns",
            "MISC_CHECK" => "exec",
            "UDP_CHECK" => "udp",
            "PING_CHECK" => {
                self.warn(c.at, "PING_CHECK has no equivalent in lbd (no ICMP checks): the real has no check and is always up");
                return Ok(None);
            }
            other => {
                self.warn(
                    c.at,
                    format!("{other} has no equivalent in lbd: the real has no check from it"),
                );
                return Ok(None);
            }
        };
        let mut d = inherited.clone();
        let mut e: Entries = vec![("type".into(), Value::str(kind))];
        let mut specific: Entries = Vec::new();
        let mut port: Option<i64> = None;
        let mut connect_ip: Option<IpAddr> = None;
        let mut bindto: Option<IpAddr> = None;
        let mut urls: Vec<&Item> = Vec::new();
        let mut sni = false;
        let mut command: Option<Vec<String>> = None;
        let mut misc_timeout: Option<Duration> = None;
        let mut dynamic = false;
        let mut dns_type: Option<String> = None;
        let mut dns_name: Option<String> = None;
        let mut helo: Option<String> = None;
        let mut payload: Option<(String, Loc)> = None;
        let mut require_reply = false;
        let mut reply_data: Option<(String, Loc)> = None;
        for o in c.children() {
            match o.key.as_str() {
                "connect_port" => port = Some(self.int(o, 0, 1, 65535, "a port")?),
                "connect_ip" => connect_ip = Some(self.ip(o, 0)?),
                "bindto" => bindto = Some(self.ip(o, 0)?),
                "bind_port" | "bind_if" | "fwmark" => self.ignore(o, "checks leave from an ephemeral port of the address the kernel picks (or source_address)"),
                "url" if matches!(kind, "http" | "https") => urls.push(o),
                "enable_sni" if kind == "https" => sni = self.boolean(o, 0)?,
                "http_protocol" => self.ignore(o, "lbd's HTTP checks send HTTP/1.1 with Connection: close"),
                // Deprecated, and only known inside HTTP_GET and SSL_GET.
                "nb_get_retry" if matches!(kind, "http" | "https") => {
                    d.retry = Some(self.int(o, 0, 0, 99, "a retry count")? as u32)
                }
                "fast_recovery" => self.ignore(o, ""),
                "misc_path" if kind == "exec" => {
                    let words: Vec<String> = if o.args.len() == 1 {
                        split_command(&o.args[0])
                    } else {
                        o.args.clone()
                    };
                    if words.is_empty() {
                        return Err(self.err(o.at, "misc_path needs a program"));
                    }
                    command = Some(words);
                }
                "misc_timeout" if kind == "exec" => misc_timeout = Some(self.timer(o, 0)?),
                "misc_dynamic" if kind == "exec" => dynamic = true,
                "user" => self.ignore(o, "lbd runs check commands as itself"),
                "type" if kind == "dns" => dns_type = Some(self.arg(o, 0, "a query type")?.to_ascii_uppercase()),
                "name" if kind == "dns" => dns_name = Some(self.arg(o, 0, "a name")?.to_string()),
                "helo_name" if kind == "smtp" => helo = Some(self.arg(o, 0, "a name")?.to_string()),
                "host" if kind == "smtp" => {
                    // Old SMTP_CHECK syntax: one or more host { connect_ip ... } blocks.
                    if connect_ip.is_some() || port.is_some() {
                        self.warn(o.at, "a second SMTP host in one SMTP_CHECK: lbd checks one; only the first is kept");
                        continue;
                    }
                    for h in o.children() {
                        match h.key.as_str() {
                            "connect_ip" => connect_ip = Some(self.ip(h, 0)?),
                            "connect_port" => port = Some(self.int(h, 0, 1, 65535, "a port")?),
                            "bindto" => bindto = Some(self.ip(h, 0)?),
                            _ => self.ignore(h, ""),
                        }
                    }
                }
                "payload" if kind == "udp" => payload = Some((o.args.concat(), o.at)),
                "require_reply" if kind == "udp" => {
                    require_reply = true;
                    if !o.args.is_empty() {
                        reply_data = Some((o.args.concat(), o.at));
                    }
                }
                "min_reply_length" | "max_reply_length" => self.ignore(o, "lbd checks the start of the reply (expect_hex), not its length"),
                "log_all_failures" | "alpha" => self.ignore(o, ""),
                _ => {
                    if !self.check_default(o, &mut d)? {
                        self.ignore(o, "");
                    }
                }
            }
        }
        let interval = d.delay_loop.unwrap_or(Duration::from_secs(60));
        let timeout = match kind {
            "exec" => misc_timeout.or(d.connect_timeout).unwrap_or(interval),
            _ => d.connect_timeout.unwrap_or(Duration::from_secs(5)),
        };
        let retry = d.retry.unwrap_or(match kind {
            "dns" => 3,
            "exec" => 0,
            _ => 1,
        });
        let retry_delay = d.delay_before_retry.unwrap_or(match kind {
            "http" | "https" => Duration::from_secs(3),
            "dns" => interval,
            _ => Duration::from_secs(1),
        });
        e.push(("interval".into(), Value::duration(interval)));
        e.push(("timeout".into(), Value::duration(timeout)));
        e.push(("rise".into(), Value::Int(1)));
        e.push(("fall".into(), Value::Int(i64::from(retry) + 1)));
        e.push(("retry_delay".into(), Value::duration(retry_delay)));
        if let Some(w) = d.warmup {
            self.warn(c.at, "warmup: keepalived waits a random time up to it before the first check; lbd waits exactly that long");
            e.push(("warmup".into(), Value::duration(w)));
        }
        if let Some(p) = port {
            e.push(("port".into(), Value::Int(p)));
        }
        if let Some(ip) = connect_ip {
            e.push(("connect_address".into(), Value::str(ip.to_string())));
        }
        if let Some(ip) = bindto {
            e.push(("source_address".into(), Value::str(ip.to_string())));
        }
        match kind {
            "http" | "https" => {
                let mut host = d.virtualhost.clone();
                if let Some(u) = urls.first() {
                    for f in u.children() {
                        match f.key.as_str() {
                            "path" => {
                                let path = self.arg(f, 0, "a path")?;
                                if !path.starts_with('/') {
                                    return Err(self.err(
                                        f.at,
                                        format!(
                                            "path {path:?}: an HTTP request path starts with '/'"
                                        ),
                                    ));
                                }
                                specific.push(("path".into(), Value::str(path)));
                            }
                            "digest" => {
                                let d = self.arg(f, 0, "an MD5 digest")?.to_ascii_lowercase();
                                if d.len() != 32 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                                    return Err(self.err(f.at, format!("digest {d:?}: an MD5 digest is 32 hexadecimal digits (genhash prints it)")));
                                }
                                specific.push(("digest".into(), Value::str(d)));
                            }
                            "status_code" => {
                                let mut codes = Vec::new();
                                for a in &f.args {
                                    let r: lbd::config::StatusRange =
                                        a.parse().map_err(|e: String| self.err(f.at, e))?;
                                    codes.push(if r.low == r.high {
                                        Value::Int(r.low.into())
                                    } else {
                                        Value::str(a)
                                    });
                                }
                                if codes.is_empty() {
                                    return Err(self.err(f.at, "status_code needs a code or range"));
                                }
                                specific.push(("expect_status".into(), Value::List(codes)));
                            }
                            "virtualhost" => {
                                host = Some(self.arg(f, 0, "a host name")?.to_string())
                            }
                            "regex" => {
                                let re = self.arg(f, 0, "a regular expression")?;
                                if let Some(e) = super::body_regex_problem(re) {
                                    return Err(self.err(
                                        f.at,
                                        format!("regex {re:?} is not a regular expression: {e}"),
                                    ));
                                }
                                specific.push(("expect_body_regex".into(), Value::str(re)));
                            }
                            "regex_no_match" => self.ignore(f, "lbd's body match must match"),
                            _ => self.ignore(f, ""),
                        }
                    }
                    for extra in urls.iter().skip(1) {
                        self.warn(extra.at, "a second url in one HTTP check: lbd checks one URL per real; only the first is kept");
                    }
                } else {
                    self.warn(
                        c.at,
                        format!("{} without url: lbd checks path \"/\"", c.key),
                    );
                }
                if let Some(h) = host {
                    specific.insert(1.min(specific.len()), ("host".into(), Value::str(&h)));
                    if sni {
                        specific.push(("sni".into(), Value::str(h)));
                    }
                }
            }
            "exec" => {
                let Some(cmd) = command else {
                    return Err(self.err(c.at, "MISC_CHECK needs misc_path"));
                };
                specific.push((
                    "command".into(),
                    Value::List(cmd.into_iter().map(Value::Str).collect()),
                ));
                if dynamic {
                    specific.push(("weight_from_exit".into(), Value::Bool(true)));
                }
            }
            "dns" => {
                specific.push((
                    "query".into(),
                    Value::str(dns_name.unwrap_or_else(|| ".".into())),
                ));
                specific.push((
                    "query_type".into(),
                    Value::str(dns_type.unwrap_or_else(|| "SOA".into())),
                ));
            }
            "smtp" => {
                if let Some(h) = helo {
                    specific.push(("helo_name".into(), Value::str(h)));
                }
            }
            "udp" => {
                if let Some((hex, at)) = payload {
                    match decode_hex(&hex) {
                        // Text stays readable; anything else goes as hex.
                        Some(bytes) => match String::from_utf8(bytes) {
                            Ok(text) => specific.push(("payload".into(), Value::str(text))),
                            Err(e) => specific
                                .push(("payload_hex".into(), Value::str(to_hex(e.as_bytes())))),
                        },
                        None => return Err(self.err(at, "payload: not hexadecimal")),
                    }
                }
                let reply = reply_data.and_then(|(hex, at)| match decode_hex(&hex) {
                    Some(bytes) if !bytes.is_empty() => {
                        self.warn(at, "require_reply with data: lbd requires the reply to start with all of it (keepalived also accepts a shorter reply that matches as far as it goes)");
                        Some(bytes)
                    }
                    _ => {
                        self.warn(at, "require_reply data with a mask: lbd compares whole bytes (expect_hex); only a reply is required");
                        None
                    }
                });
                match reply {
                    Some(bytes) => specific.push(("expect_hex".into(), Value::str(to_hex(&bytes)))),
                    None if require_reply => {
                        specific.push(("expect_reply".into(), Value::Bool(true)))
                    }
                    None => {}
                }
            }
            _ => {}
        }
        e.extend(specific);
        Ok(Some(e))
    }
}

/// A command line into words: spaces separate, single quotes group (keepalived's rule).
/// Whether a converted service's entries make it an IPv6 one (its `vip`, or its `family`).
fn svc_is_v6(e: &Entries) -> bool {
    e.iter().any(|(k, v)| match (k.as_str(), v) {
        ("vip", Value::Str(s)) => s.starts_with('['),
        ("family", Value::Str(s)) => s == "ipv6",
        _ => false,
    })
}

fn split_command(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// keepalived's free-form hex ("Ab12f 3 456": pairs, a lone digit before a space is one byte).
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for group in text.split_whitespace() {
        let digits: Vec<u8> = group
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()?;
        for chunk in digits.chunks(2) {
            out.push(match chunk {
                [a, b] => a << 4 | b,
                [a] => *a,
                _ => unreachable!("chunks(2)"),
            });
        }
    }
    Some(out)
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
    fn substitution_and_commands() {
        let mut defs = BTreeMap::new();
        defs.insert("IF".to_string(), "eth1".to_string());
        assert_eq!(substitute("interface $IF", &defs), "interface eth1");
        assert_eq!(substitute("x ${IF}y $NOPE", &defs), "x eth1y $NOPE");
        assert_eq!(definition("$IF=eth1"), Some(("IF".into(), "eth1".into())));
        assert_eq!(definition("$=x"), None);
        assert_eq!(
            split_command("/bin/chk -a 'b c' d"),
            ["/bin/chk", "-a", "b c", "d"]
        );
        assert_eq!(
            decode_hex("Ab12f 3 456"),
            Some(vec![0xab, 0x12, 0x0f, 0x03, 0x45, 0x06])
        );
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn vrrp_rt_priority_becomes_the_node_setting() {
        let conf = "global_defs {\n  vrrp_rt_priority 50\n}\n";
        let c = convert_str("k.conf", conf, &Options::default()).unwrap();
        let toml = c.toml();
        assert!(toml.contains("vrrp_realtime_priority = 50"), "{toml}");
        let bad = convert_str(
            "k.conf",
            "global_defs {\n  vrrp_rt_priority 0\n}\n",
            &Options::default(),
        );
        assert!(bad.is_err());
    }
}
