//! Every setting keepalived.conf(5) and ldirectord(8) document, converted one at a time.
//!
//! The lists (`convert_settings/lists.rs`) hold each documented keyword with the block it is
//! written in and a sample use. They were taken from the manuals:
//! - keepalived.conf(5) (keepalived's `doc/man/man5/keepalived.conf.5.in`): every `\fB...`
//!   keyword at the start of a line (`grep -E '^\s*\\fB'`), in the block the page shows it in;
//!   plus the keywords the page names without `\fB` (`disable_local_igmp`, `param_match`,
//!   `min_reply_length`, `max_reply_length`, `interface_up_down_delays`) and the synonyms it
//!   names in its comments (`vrrp_track_file`, `neighbour_ip`). Left out as syntax rather than
//!   settings: `include` and its variants (read by the lexer), `@`-conditional lines,
//!   `$NAME=` definitions and `${_PWD}`-style pre-defined ones, `~SEQ`/`~LST` blocks, the
//!   `<IPADDR>`, `<BOOL>`, `<TIMER>` placeholders and the words of prose the grep also finds
//!   (GLOBAL, Note, Important...). The examples at the end of the page repeat keywords listed
//!   above them. `virtual_server fwmark N` and `virtual_server group NAME` are forms of
//!   `virtual_server`, sampled as such.
//! - ldirectord(8) (the POD in resource-agents' `ldirectord/ldirectord.in`): every
//!   `B<key = >` setting at the start of a line, in the context(s) the manual allows it
//!   (global, virtual section, or both); plus `virtual6`, `real6` and `fallback6` from its IPv6
//!   section.
//!
//! For each: a small config (one of the templates below, with the sample in its block) must
//! convert (lbd accepting the result), must not meet the "not a keepalived setting" fallback,
//! and must either change the conversion (the converted TOML without its comments, or its
//! warnings), or, for a keyword the converter's table lists as not translated, give a warning
//! that names it and says why. A sample `A ;; B` is compared with `A` alone: `B` is the
//! setting under test, `A` what it needs to matter (`nopreempt ;; state MASTER`).
//!
//! The lists and the converters' tables ([`keepalived::settings`], [`ldirectord::settings`])
//! must name the same keywords, so the tables cover the manuals.

use lbctl::convert::{self, keepalived, ldirectord, Conversion};
use std::collections::BTreeSet;

#[path = "convert_settings/lists.rs"]
mod lists;
use lists::{KEEPALIVED_SETTINGS, LDIRECTORD_SETTINGS};

/// The keepalived config every sample goes in: `@CTX@` marks where a block's settings go.
/// The second virtual server's VIP is in no VRRP instance (default_interface shows there);
/// the real's HTTP_GET comes after the samples, so a sampled checker is the real's first.
const KEEPALIVED: &str = "\
@top@
global_defs {
    router_id lb1
@global_defs@
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.1/24
    }
@vrrp_instance@
}
virtual_server 192.0.2.1 80 {
    protocol TCP
@virtual_server@
    real_server 10.0.0.1 80 {
@real_server@
        HTTP_GET {
            url {
                path /
            }
        }
    }
}
virtual_server 198.51.100.1 80 {
    protocol TCP
    real_server 10.0.0.1 80 {
    }
}
";

/// Where a keepalived context's sample goes: the template's mark, and the block around it.
fn keepalived_place(ctx: &str) -> (&'static str, String) {
    let wrap = |head: &str| format!("{head} {{\n{{S}}\n}}");
    match ctx {
        "top" | "global_defs" | "vrrp_instance" | "virtual_server" | "real_server" => {
            (mark(ctx), "{S}".to_string())
        }
        "authentication" => (
            "@vrrp_instance@",
            "authentication {\nauth_pass pw1\n{S}\n}".into(),
        ),
        "auth_hmac" => ("@vrrp_instance@", wrap("auth_hmac")),
        "vrrp_sync_group" => ("@top@", wrap("vrrp_sync_group G1")),
        "vrrp_script" => ("@top@", wrap("vrrp_script chk")),
        "track_file" => ("@top@", wrap("track_file tf")),
        "vrrp_track_process" => ("@top@", wrap("vrrp_track_process tp")),
        "bfd_instance" => ("@top@", wrap("bfd_instance b1")),
        "garp_group" => ("@top@", wrap("garp_group")),
        "track_group" => ("@top@", wrap("track_group tg")),
        "SSL" => ("@top@", wrap("SSL")),
        "virtual_server_group" => (
            "@top@",
            "virtual_server_group G {\n192.0.2.1 8080\n{S}\n}\n\
             virtual_server group G {\nprotocol TCP\nreal_server 10.0.0.1 8080 {\n}\n}"
                .into(),
        ),
        "checker" => ("@real_server@", wrap("TCP_CHECK")),
        "MISC_CHECK" => (
            "@real_server@",
            "MISC_CHECK {\nmisc_path /bin/true\n{S}\n}".into(),
        ),
        "url" => (
            "@real_server@",
            "HTTP_GET {\nurl {\npath /\n{S}\n}\n}".into(),
        ),
        checker => ("@real_server@", wrap(checker)),
    }
}

fn mark(ctx: &str) -> &'static str {
    match ctx {
        "top" => "@top@",
        "global_defs" => "@global_defs@",
        "vrrp_instance" => "@vrrp_instance@",
        "virtual_server" => "@virtual_server@",
        "real_server" => "@real_server@",
        "global" => "@global@",
        "virtual" => "@virtual@",
        "virtual6" => "@virtual6@",
        other => panic!("no mark for {other}"),
    }
}

/// The ldirectord config every sample goes in (indented in the virtual sections).
const LDIRECTORD: &str = "\
@global@
virtual=192.0.2.1:80
    real=10.0.0.1:80 masq
@virtual@
virtual6=[2001:db8::1]:80
    real6=[2001:db8::2]:80 masq
@virtual6@
";

/// What a conversion gives, without what depends on line numbers: the TOML without its
/// comments, and the warnings' messages.
struct Outcome {
    body: String,
    warnings: BTreeSet<String>,
}

fn outcome(c: &Conversion) -> Outcome {
    Outcome {
        body: c
            .output
            .render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        warnings: c.warnings.iter().map(|w| w.message.clone()).collect(),
    }
}

/// Whether `text` names `word` (not as part of a longer name).
fn names(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word)
        .any(|(i, _)| !text[..i].ends_with(is_name) && !text[i + word.len()..].starts_with(is_name))
}

/// The template without its marks left unused.
fn clear_marks(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim();
            !(t.len() > 2 && t.starts_with('@') && t.ends_with('@'))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The sample's prelude (what the setting needs) and the setting.
fn split_sample(sample: &str) -> (&str, &str) {
    sample.split_once(" ;; ").unwrap_or(("", sample))
}

/// Checks one sample; `Err` says what is wrong.
fn check_sample(
    convert: &dyn Fn(&str) -> Result<Conversion, convert::ConvertError>,
    place: (&str, String),
    key: &str,
    sample: &str,
    ignored: bool,
    template: &str,
) -> Result<(), String> {
    let (prelude, setting) = split_sample(sample);
    let (mark, wrap) = place;
    let build = |body: &str| clear_marks(&template.replace(mark, &wrap.replace("{S}", body)));
    let base_text = build(prelude);
    let with_text = build(&format!("{prelude}\n{setting}"));
    let base = convert(&base_text).map_err(|e| format!("without it: {e}"))?;
    let with = convert(&with_text).map_err(|e| format!("{e}"))?;
    let (b, w) = (outcome(&base), outcome(&with));
    let new: Vec<&String> = w.warnings.difference(&b.warnings).collect();
    if let Some(f) = new
        .iter()
        .find(|m| m.contains("is not a keepalived setting"))
    {
        return Err(format!("fallback warning: {f}"));
    }
    let named = new.iter().any(|m| {
        names(m, key) && !m.ends_with(": ignored") && !m.ends_with("has no equivalent in lbd")
    });
    if ignored && !named {
        return Err(format!(
            "not translated, and no warning names it with a reason; new warnings: {new:?}"
        ));
    }
    if !named && b.body == w.body && b.warnings == w.warnings {
        return Err("changed nothing".into());
    }
    Ok(())
}

#[test]
fn every_keepalived_setting_converts_or_warns() {
    let convert =
        |text: &str| keepalived::convert_str("keepalived.conf", text, &convert::Options::default());
    let mut failures = Vec::new();
    for (ctx, key, sample) in KEEPALIVED_SETTINGS {
        let ignored = keepalived::settings::reason(ctx, key).is_some();
        let (mark, wrap) = keepalived_place(ctx);
        let indented = wrap
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(e) = check_sample(&convert, (mark, indented), key, sample, ignored, KEEPALIVED) {
            failures.push(format!("{ctx} {key} ({sample:?}): {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_ldirectord_setting_converts_or_warns() {
    let convert =
        |text: &str| ldirectord::convert_str("ldirectord.cf", text, &convert::Options::default());
    let mut failures = Vec::new();
    for (ctx, key, sample) in LDIRECTORD_SETTINGS {
        let table_ctx = if *ctx == "virtual6" { "virtual" } else { ctx };
        let ignored = ldirectord::settings::message(table_ctx, key).is_some();
        let indent = if *ctx == "global" { "" } else { "    " };
        let (prelude, setting) = split_sample(sample);
        let indent_all = |t: &str| {
            t.lines()
                .map(|l| format!("{indent}{l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let sample = if prelude.is_empty() {
            indent_all(setting)
        } else {
            format!("{} ;; {}", indent_all(prelude), indent_all(setting))
        };
        if let Err(e) = check_sample(
            &convert,
            (mark(ctx), "{S}".into()),
            key,
            &sample,
            ignored,
            LDIRECTORD,
        ) {
            failures.push(format!("{ctx} {key} ({sample:?}): {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (context, keyword) of each entry of a table whose contexts are space-separated.
fn table_keys<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeSet<(String, String)> {
    entries
        .flat_map(|(ctxs, key)| {
            ctxs.split(' ')
                .map(move |c| (c.to_string(), key.to_string()))
        })
        .collect()
}

#[test]
fn the_keepalived_table_covers_the_manual() {
    use keepalived::settings::{CONVERTED, IGNORED};
    let table = table_keys(
        CONVERTED
            .iter()
            .copied()
            .chain(IGNORED.iter().map(|(c, k, _)| (*c, *k))),
    );
    let listed: BTreeSet<(String, String)> = KEEPALIVED_SETTINGS
        .iter()
        .map(|(c, k, _)| (c.to_string(), k.to_string()))
        .collect();
    let untested: Vec<_> = table.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&table).collect();
    assert!(
        untested.is_empty(),
        "in the table, not sampled: {untested:?}"
    );
    assert!(unknown.is_empty(), "sampled, not in the table: {unknown:?}");
}

#[test]
fn the_ldirectord_table_covers_the_manual() {
    use ldirectord::settings::{CONVERTED, IGNORED};
    let table = table_keys(
        CONVERTED
            .iter()
            .copied()
            .chain(IGNORED.iter().map(|(c, k, _)| (*c, *k))),
    );
    let listed: BTreeSet<(String, String)> = LDIRECTORD_SETTINGS
        .iter()
        .map(|(c, k, _)| {
            let c = if *c == "virtual6" { "virtual" } else { c };
            (c.to_string(), k.to_string())
        })
        .collect();
    let untested: Vec<_> = table.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&table).collect();
    assert!(
        untested.is_empty(),
        "in the table, not sampled: {untested:?}"
    );
    assert!(unknown.is_empty(), "sampled, not in the table: {unknown:?}");
}

#[test]
fn unknown_keepalived_keywords_are_reported_as_such() {
    let text = clear_marks(
        &KEEPALIVED
            .replace("@global_defs@", "    frobnicate 3")
            .replace("@top@", "frobnicator {\n}"),
    );
    let c = keepalived::convert_str("keepalived.conf", &text, &Default::default()).unwrap();
    let fallback: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .filter(|m| m.contains("is not a keepalived setting lbctl knows"))
        .collect();
    assert_eq!(fallback.len(), 2, "{fallback:?}");
    assert!(fallback[0].contains("`frobnicator`") && fallback[0].contains("at the top level"));
    assert!(fallback[1].contains("`frobnicate`") && fallback[1].contains("in global_defs"));
}

#[test]
fn ipv6_ranges_of_a_virtual_server_group() {
    let text = "\
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 60
    priority 100
    virtual_ipaddress {
        2001:db8::2/64
        2001:db8::3/64
        2001:db8::a/64
        2001:db8::b/64
    }
}
virtual_server_group V6 {
    2001:db8::2-3 80
    2001:db8::a-2001:db8::b 443
    2001:db8::10/127 8080
}
virtual_server group V6 {
    protocol TCP
    real_server 2001:db8:1::1 80 {
    }
}
";
    let c = keepalived::convert_str("keepalived.conf", text, &Default::default()).unwrap();
    let vips: Vec<String> = c
        .output
        .services
        .iter()
        .flat_map(|s| &s.entries)
        .filter(|(k, _)| k == "vip")
        .map(|(_, v)| format!("{v:?}"))
        .collect();
    let want = [
        "[2001:db8::2]:80",
        "[2001:db8::3]:80",
        "[2001:db8::a]:443",
        "[2001:db8::b]:443",
        "[2001:db8::10]:8080",
        "[2001:db8::11]:8080",
    ];
    assert_eq!(vips.len(), want.len(), "{vips:?}");
    for (got, want) in vips.iter().zip(want) {
        assert!(got.contains(want), "{got} is not {want}");
    }
    // The last group ranges in hexadecimal, as keepalived reads it: ::8-10 is ::8 to ::10.
    let hex = text
        .replace("2001:db8::2-3 80", "2001:db8::8-10 80")
        .replace("2001:db8::a-2001:db8::b 443\n", "")
        .replace("2001:db8::10/127 8080\n", "");
    let c = keepalived::convert_str("keepalived.conf", &hex, &Default::default()).unwrap();
    assert_eq!(c.output.services.len(), 9);
    let bad = text.replace("2001:db8::2-3 80", "2001:db8::3-2 80");
    assert!(keepalived::convert_str("keepalived.conf", &bad, &Default::default()).is_err());
}
