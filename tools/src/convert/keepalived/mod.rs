//! keepalived.conf → our config.
//!
//! Three stages, each pure:
//! 1. [`lexer`]: lines into words, with keepalived's comments (`#`, `!`), quoting, `include`
//!    (relative to the including file, with globs), `$NAME=value` substitution and `@^NAME`
//!    conditional lines; every word keeps its file and line.
//! 2. [`items`]: words into a tree of `keyword args... [{ block }]` items.
//! 3. [`Converter`]: items into an [`Output`], with a warning for every keyword lbd has no use for
//!    that says what keepalived does with it ([`settings`]: every keyword keepalived.conf(5)
//!    documents, by the block it is in). Each top-level section has its translator:
//!    [`global`] (global_defs), [`vrrp`] (vrrp_instance, vrrp_sync_group, the IPVS sync
//!    daemon), [`lvs`] (virtual_server), [`groups`] (virtual_server_group) and [`checks`] (the
//!    real servers' health checkers).
//!
//! Defaults are keepalived's (2.2), written out explicitly because ours differ: VRRP version 2,
//! scheduler wlc, NAT, a real removed on failure unless `inhibit_on_failure`, checks every 60 s
//! with a 5 s timeout, one retry (three for DNS, none for MISC), up on the first success.

mod checks;
mod global;
mod groups;
mod items;
mod lexer;
mod lvs;
pub mod settings;
mod statics;
mod vrrp;

pub use items::Item;

use super::out::{Origin, Output, Value};
use super::{parse_seconds, Conversion, ConvertError, FileSystem, Loc, Options, Sources, Warning};
use global::Globals;
use items::parse_items;
use lexer::Lexer;
use lvs::VsKeys;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vrrp::InstanceInfo;

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
    let mut converter = Converter {
        src: &src,
        warnings,
        opts,
        vmac_at: BTreeMap::new(),
    };
    let output = converter.convert(&items, &path.display().to_string())?;
    let mut warnings = converter.warnings;
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

/// Stage 3: the items into our config, with the warnings met on the way.
struct Converter<'a> {
    src: &'a Sources,
    warnings: Vec<Warning>,
    opts: &'a Options,
    /// Where each converted instance asked for a virtual MAC (`use_vmac`), for the warning
    /// when its macvlan has to be renamed.
    vmac_at: BTreeMap<String, Loc>,
}

/// What a conversion step gives: its part of the config, or the error that stops it.
type Converted<T> = Result<T, ConvertError>;

impl<'a> Converter<'a> {
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

    /// A warning for a keyword of `ctx` the converter does not translate: what keepalived
    /// does with it ([`settings`]), or that it is no keepalived setting lbctl knows; then one
    /// for each setting of a block of settings. Translated keywords met here (in a block that
    /// is left out as a whole) need no word of their own.
    fn unconverted(&mut self, it: &Item, ctx: &str) {
        if let Some(why) = settings::reason(ctx, &it.key) {
            self.ignore(it, why);
        } else if !settings::converted(ctx, &it.key) {
            let place = if ctx == "top" {
                "at the top level".to_string()
            } else {
                format!("in {ctx}")
            };
            self.warn(
                it.at,
                format!(
                    "`{}` is not a keepalived setting lbctl knows {place}: ignored",
                    it.key
                ),
            );
        }
        if let Some(inner) = settings::block_context(ctx, &it.key) {
            for c in it.children() {
                self.unconverted(c, inner);
            }
        }
    }

    fn arg<'i>(&self, it: &'i Item, i: usize, what: &str) -> Converted<&'i str> {
        it.arg(i)
            .ok_or_else(|| self.err(it.at, format!("`{}` needs {what}", it.key)))
    }

    /// Argument `i` as an interface name Linux takes.
    fn ifname(&self, it: &Item, i: usize) -> Converted<String> {
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

    fn int(&self, it: &Item, i: usize, lo: i64, hi: i64, what: &str) -> Converted<i64> {
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

    fn timer(&self, it: &Item, i: usize) -> Converted<Duration> {
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

    fn ip(&self, it: &Item, i: usize) -> Converted<IpAddr> {
        let text = self.arg(it, i, "an IP address")?;
        text.parse().map_err(|_| {
            self.err(
                it.at,
                format!("`{}`: {text:?} is not an IP address", it.key),
            )
        })
    }

    fn port(&self, it: &Item, i: usize) -> Converted<u16> {
        Ok(self.int(it, i, 0, 65535, "a port (0 to 65535)")? as u16)
    }

    /// keepalived's <BOOL>; a keyword alone means on.
    fn boolean(&self, it: &Item, i: usize) -> Converted<bool> {
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

    fn block<'i>(&self, it: &'i Item) -> Converted<&'i [Item]> {
        it.block.as_deref().ok_or_else(|| {
            self.err(
                it.at,
                format!("`{}` needs a block: {} {{ ... }}", it.key, it.head()),
            )
        })
    }

    /// All items: global_defs first (others inherit from it), then the sections in file
    /// order, the sync groups once every instance is known, and the virtual servers last.
    fn convert(&mut self, items: &[Item], file: &str) -> Converted<Output> {
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
        let mut groups: BTreeMap<String, VsKeys> = BTreeMap::new();
        for it in items.iter().filter(|i| i.key == "virtual_server_group") {
            let name = self.arg(it, 0, "a group name")?.to_string();
            let members = self.vs_group(it)?;
            groups.insert(name, members);
        }
        // Addresses before routes: a route without `dev` goes out of the link whose subnet
        // holds its gateway.
        let default_interface = g.default_interface.clone().unwrap_or_else(|| "eth0".into());
        for key in ["static_ipaddress", "static_routes", "static_rules"] {
            for it in items.iter().filter(|i| i.key == key) {
                self.statics(it, &default_interface, &mut o)?;
            }
        }
        let mut instances: Vec<InstanceInfo> = Vec::new();
        let mut vs_items = Vec::new();
        for it in items {
            match it.key.as_str() {
                "global_defs"
                | "virtual_server_group"
                | "static_ipaddress"
                | "static_routes"
                | "static_rules" => {}
                "vrrp_instance" => {
                    if let Some(info) = self.vrrp_instance(it, &g, &mut o)? {
                        instances.push(info);
                    }
                }
                "vrrp_sync_group" => {}
                "virtual_server" => vs_items.push(it),
                _ => self.other_section(it),
            }
        }
        self.distinct_vmac_names(&mut o);
        // Sync groups after every instance is known.
        let names: BTreeSet<String> = instances.iter().map(|i| i.name.clone()).collect();
        let mut member_of = BTreeMap::new();
        for it in items.iter().filter(|i| i.key == "vrrp_sync_group") {
            self.sync_group(it, &names, &mut member_of, &mut o)?;
        }
        if let Some(sd) = g.sync_daemon.clone() {
            o.ipvs_sync = Some(self.sync_daemon(&sd, &instances)?);
        }
        let orphans = self.services(&vs_items, &groups, &instances, &mut o)?;
        if !orphans.is_empty() {
            self.adopt_orphans(&orphans, &instances, &g, &mut o);
        }
        if let Some(sd) = &g.sync_daemon {
            self.sync_follows_one(sd, &mut o);
        }
        if let Some(first) = items.iter().find(|i| i.key.starts_with("static_")) {
            self.declare_links(&mut o, first.at);
        }
        Ok(o)
    }

    /// The connection sync follows one VRRP state: without `inst`, lbd's default is the only
    /// sync group, or the only instance; when there is neither, it is left out.
    fn sync_follows_one(&mut self, sd: &Item, o: &mut Output) {
        let Some((_, e)) = &o.ipvs_sync else {
            return;
        };
        if e.iter().any(|(k, _)| k == "follow") {
            return;
        }
        if o.sync_groups.len() == 1 || o.instances.len() == 1 {
            self.warn(sd.at, "lvs_sync_daemon without an instance runs master and backup daemons at once in keepalived; lbd follows one VRRP state: that of the only sync group or instance");
        } else {
            self.warn(sd.at, "lvs_sync_daemon without an instance runs master and backup daemons at once in keepalived; lbd follows one VRRP state and cannot tell which here: left out (write [ipvs.sync] with follow)");
            o.ipvs_sync = None;
        }
    }

    /// A top-level section lbd has no translator for: a warning that says why.
    fn other_section(&mut self, it: &Item) {
        self.unconverted(it, "top");
    }

    /// The virtual servers into `o`'s services; returns the VIPs that no VRRP instance holds,
    /// each with the first line that used it.
    fn services(
        &mut self,
        vs_items: &[&Item],
        groups: &BTreeMap<String, VsKeys>,
        instances: &[InstanceInfo],
        o: &mut Output,
    ) -> Converted<Vec<(IpAddr, Loc)>> {
        let mut taken_names = BTreeSet::new();
        let mut orphans: Vec<(IpAddr, Loc)> = Vec::new();
        let vips: BTreeSet<IpAddr> = instances.iter().flat_map(|i| i.vips.clone()).collect();
        // The kernel's key of each service (address or mark, protocol): a second definition of
        // one is left out.
        let mut defined: BTreeMap<String, Loc> = BTreeMap::new();
        for it in vs_items {
            for (svc, vip, at) in self.virtual_server(it, groups, &mut taken_names)? {
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
        Ok(orphans)
    }

    /// New VRRP instances for the VIPs no instance holds, on ids the source's do not use.
    fn adopt_orphans(
        &mut self,
        orphans: &[(IpAddr, Loc)],
        instances: &[InstanceInfo],
        g: &Globals,
        o: &mut Output,
    ) {
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
            orphans,
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
}
