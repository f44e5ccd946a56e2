//! What pxe serves, built from the inventory, the template and the image: every node's rendered
//! and validated config, kept per node so a bad edit never takes away a node's last good
//! config. Pure: texts in, a [`Site`] and a [`Report`] of what changed and what is wrong out.
//!
//! Rules, per reload:
//! - The inventory does not parse: nothing changes (the previous site stays), error logged.
//! - A node's config does not render or does not pass lbd's validation: that node keeps its
//!   last good config; the others get their new ones.
//! - A node removed from the inventory is unknown from then on.
//! - A config whose `[node] hostname` differs from the inventory's hostname is refused, so a
//!   template with a fixed hostname cannot hand one node's identity to another.

use crate::conditional::{whole_seconds, Validators};
use crate::inventory::{self, Inventory, NodeEntry, UnknownProfile};
use crate::ipxe::{self, BootParams};
use crate::mac::Mac;
use crate::template::{self, Template};
use bytes::Bytes;
use lbd::config::{ConfigError, Diagnostic};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A source file's name, text and modification time.
#[derive(Clone, Debug)]
pub struct SourceText {
    pub name: String,
    pub text: String,
    pub modified: SystemTime,
}

/// A rendered config that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub body: Bytes,
    pub validators: Validators,
    /// lbd's config version (sha256 of the text, hex), as lbd logs it.
    pub version: String,
    /// lbd's one-line summary of the config.
    pub summary: String,
}

impl Rendered {
    /// The first 12 hex digits of the version, as lbd and init print it.
    pub fn short_version(&self) -> &str {
        &self.version[..12.min(self.version.len())]
    }
}

/// One inventory node and what is served to it.
#[derive(Clone, Debug)]
pub struct NodeState {
    pub entry: NodeEntry,
    /// The last good config; `None` until one renders and validates.
    pub served: Option<Arc<Rendered>>,
    /// Why the latest render was refused (`file:line:col: ...` lines), if it was.
    pub problem: Option<Vec<String>>,
}

/// The `[unknown]` profile with the template it last validated with.
#[derive(Clone, Debug)]
pub struct UnknownState {
    pub profile: UnknownProfile,
    template: Arc<Template>,
    inventory_file: String,
}

/// Everything pxe serves.
#[derive(Clone, Debug)]
pub struct Site {
    pub nodes: BTreeMap<Mac, NodeState>,
    pub unknown: Option<UnknownState>,
    pub params: BootParams,
    /// Last-Modified of generated scripts: the newest source modification.
    pub modified: SystemTime,
}

/// A problem found while building, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What it concerns: `inventory`, `template`, `lb1 (52:54:00:00:00:01)`, `[unknown]`.
    pub scope: String,
    /// `file:line:col: error[code]: message (help)` lines.
    pub lines: Vec<String>,
    /// What happens meanwhile, e.g. `keeping the last good config abcdef123456`.
    pub consequence: String,
}

/// What a build found and changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// One line per node whose served config changed (or appeared / disappeared).
    pub changes: Vec<String>,
    /// Validation warnings of newly served configs.
    pub warnings: Vec<String>,
}

/// The answer for a config request.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// An inventory node with a good config.
    Node {
        hostname: String,
        rendered: Arc<Rendered>,
    },
    /// An inventory node that has never had a good config.
    NotReady {
        hostname: String,
        problem: Vec<String>,
    },
    /// A MAC not in the inventory, served the `[unknown]` profile.
    Default {
        hostname: String,
        rendered: Arc<Rendered>,
    },
    /// A MAC not in the inventory, and no `[unknown]` profile.
    Unknown,
}

/// The MAC an `[unknown]` profile is checked with when it is loaded.
const PROBE_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0]);

/// Renders and validates one node's config.
pub fn render_node(
    template: &Template,
    entry: &NodeEntry,
    inventory_file: &str,
    modified: SystemTime,
) -> Result<(Rendered, Vec<String>), ConfigError> {
    let text = template.render(entry, inventory_file)?;
    // Lines of the rendered text are the template's lines (values hold no newlines), so
    // lbd's errors point into the template, named with the node they were rendered for.
    let name = format!("{}[{}]", template.file, entry.hostname);
    let loaded = lbd::config::parse(&name, &text)?;
    if let Some(h) = &loaded.config.node.hostname {
        if *h != entry.hostname {
            return Err(ConfigError {
                file: name,
                source_text: text,
                diagnostics: vec![Diagnostic::error(
                    "hostname-mismatch",
                    None,
                    format!(
                        "the rendered [node] hostname is {h:?} but the inventory calls {} {:?}",
                        entry.mac, entry.hostname
                    ),
                )
                .help("write hostname = \"{{ node.hostname }}\" in the template")],
            });
        }
    }
    let warnings = loaded.warning_lines();
    let body = Bytes::from(text);
    Ok((
        Rendered {
            validators: Validators::of(&body, modified),
            body,
            version: loaded.config.version.to_string(),
            summary: loaded.config.summary(),
        },
        warnings,
    ))
}

impl Site {
    /// An empty site: no nodes, nothing known yet.
    pub fn empty(params: BootParams) -> Site {
        Site {
            nodes: BTreeMap::new(),
            unknown: None,
            params,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    /// Builds the site from the current sources, keeping what `prev` served where the new
    /// sources fail.
    pub fn build(
        prev: &Site,
        inventory: &SourceText,
        template: &SourceText,
        params: BootParams,
        image_modified: SystemTime,
    ) -> (Site, Report) {
        let mut report = Report::default();
        let modified = whole_seconds(
            inventory
                .modified
                .max(template.modified)
                .max(image_modified),
        );
        let inv = match inventory::parse(&inventory.name, &inventory.text) {
            Ok(inv) => inv,
            Err(e) => {
                report.problems.push(Problem {
                    scope: "inventory".into(),
                    lines: e.one_line_each(),
                    consequence: "inventory refused; every node keeps what it was served before"
                        .into(),
                });
                let mut site = prev.clone();
                site.params = params;
                site.modified = site.modified.max(modified);
                return (site, report);
            }
        };
        let tmpl = match Template::parse(&template.name, &template.text) {
            Ok(t) => Ok(Arc::new(t)),
            Err(e) => {
                report.problems.push(Problem {
                    scope: "template".into(),
                    lines: e.one_line_each(),
                    consequence: "template refused; every node keeps its last good config".into(),
                });
                Err(())
            }
        };
        let mut site = Site {
            nodes: BTreeMap::new(),
            unknown: None,
            params,
            modified: prev.modified.max(modified),
        };
        for entry in &inv.nodes {
            let old = prev.nodes.get(&entry.mac);
            let old_served = old.and_then(|o| o.served.clone());
            let result = match &tmpl {
                Ok(t) => render_node(t, entry, &inv.file, modified).map_err(|e| e.one_line_each()),
                Err(()) => Err(vec!["the template has errors (above)".to_string()]),
            };
            let who = template::who(entry);
            let state = match result {
                Ok((rendered, warnings)) => {
                    report
                        .warnings
                        .extend(warnings.into_iter().map(|w| format!("{who}: {w}")));
                    let served = match &old_served {
                        Some(o) if o.body == rendered.body => o.clone(),
                        _ => {
                            let mut r = rendered;
                            // Never older than what this node was served before, so
                            // If-Modified-Since alone still sees the change.
                            if let Some(o) = &old_served {
                                let floor = o.validators.modified + Duration::from_secs(1);
                                r.validators.modified = r.validators.modified.max(floor);
                            }
                            report.changes.push(match &old_served {
                                Some(o) => format!(
                                    "{who}: config {} -> {}: {}",
                                    o.short_version(),
                                    r.short_version(),
                                    r.summary
                                ),
                                None => format!("{who}: config {}", r.summary),
                            });
                            Arc::new(r)
                        }
                    };
                    NodeState {
                        entry: entry.clone(),
                        served: Some(served),
                        problem: None,
                    }
                }
                Err(lines) => {
                    let consequence = match &old_served {
                        Some(o) => format!(
                            "config refused; keeping the last good one {}",
                            o.short_version()
                        ),
                        None => {
                            "config refused; no good config yet: its config requests get 503".into()
                        }
                    };
                    report.problems.push(Problem {
                        scope: who,
                        lines: lines.clone(),
                        consequence,
                    });
                    NodeState {
                        entry: entry.clone(),
                        served: old_served,
                        problem: Some(lines),
                    }
                }
            };
            site.nodes.insert(entry.mac, state);
        }
        for (mac, old) in &prev.nodes {
            if !site.nodes.contains_key(mac) {
                report.changes.push(format!(
                    "{}: removed from the inventory; its MAC is unknown now",
                    template::who(&old.entry)
                ));
            }
        }
        site.unknown = Self::unknown_state(prev, &inv, &tmpl, modified, &mut report);
        (site, report)
    }

    fn unknown_state(
        prev: &Site,
        inv: &Inventory,
        tmpl: &Result<Arc<Template>, ()>,
        modified: SystemTime,
        report: &mut Report,
    ) -> Option<UnknownState> {
        let profile = inv.unknown.clone()?;
        let keep = || {
            prev.unknown
                .clone()
                .filter(|u| u.profile.hostname == profile.hostname)
        };
        let Ok(t) = tmpl else {
            return keep();
        };
        match render_node(t, &profile.entry_for(PROBE_MAC), &inv.file, modified)
            .map_err(|e| e.one_line_each())
        {
            Ok(_) => Some(UnknownState {
                profile,
                template: t.clone(),
                inventory_file: inv.file.clone(),
            }),
            Err(lines) => {
                let kept = keep();
                report.problems.push(Problem {
                    scope: "[unknown]".into(),
                    lines,
                    consequence: if kept.is_some() {
                        "unknown MACs keep the last good [unknown] config".into()
                    } else {
                        "unknown MACs get 404 until [unknown] renders".into()
                    },
                });
                kept
            }
        }
    }

    /// The config for `mac`.
    pub fn lookup(&self, mac: Mac) -> Lookup {
        if let Some(n) = self.nodes.get(&mac) {
            return match &n.served {
                Some(r) => Lookup::Node {
                    hostname: n.entry.hostname.clone(),
                    rendered: r.clone(),
                },
                None => Lookup::NotReady {
                    hostname: n.entry.hostname.clone(),
                    problem: n.problem.clone().unwrap_or_default(),
                },
            };
        }
        let Some(u) = &self.unknown else {
            return Lookup::Unknown;
        };
        let entry = u.profile.entry_for(mac);
        match render_node(&u.template, &entry, &u.inventory_file, self.modified) {
            Ok((r, _)) => Lookup::Default {
                hostname: entry.hostname,
                rendered: Arc::new(r),
            },
            Err(e) => Lookup::NotReady {
                hostname: entry.hostname,
                problem: e.one_line_each(),
            },
        }
    }

    /// The iPXE script for `mac` and the hostname it is for; `None` for an unknown MAC
    /// without an `[unknown]` profile.
    pub fn script(&self, mac: Mac) -> Option<(String, String)> {
        let (hostname, cmdline, console) = match self.nodes.get(&mac) {
            Some(n) => (&n.entry.hostname, &n.entry.cmdline, &n.entry.console),
            None => {
                let u = self.unknown.as_ref()?;
                (&u.profile.hostname, &u.profile.cmdline, &u.profile.console)
            }
        };
        Some((
            hostname.clone(),
            ipxe::node_script(&self.params, mac, hostname, cmdline, console.as_ref()),
        ))
    }

    /// A JSON overview for `/status`: nodes, their served versions and current problems.
    pub fn status_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .values()
            .map(|n| {
                serde_json::json!({
                    "mac": n.entry.mac.to_string(),
                    "hostname": n.entry.hostname,
                    "config_url": ipxe::config_url(&self.params.base_url, n.entry.mac),
                    "version": n.served.as_ref().map(|r| r.version.clone()),
                    "etag": n.served.as_ref().map(|r| r.validators.etag.clone()),
                    "summary": n.served.as_ref().map(|r| r.summary.clone()),
                    "problem": n.problem,
                })
            })
            .collect();
        serde_json::json!({
            "nodes": nodes,
            "unknown": self.unknown.as_ref().map(|u| u.profile.hostname.clone()),
            "base_url": self.params.base_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const INV: &str = r#"
[[node]]
mac = "52:54:00:00:00:01"
hostname = "lb1"
priority = 150

[[node]]
mac = "52:54:00:00:00:02"
hostname = "lb2"
priority = 100
"#;

    const TMPL: &str = r#"[node]
hostname = "{{ node.hostname }}"

[vrrp.instance.VI_1]
interface = "eth0"
vrid = 51
priority = {{ node.priority }}
vips = ["192.0.2.10/24"]
"#;

    const LB1: Mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
    const LB2: Mac = Mac([0x52, 0x54, 0, 0, 0, 2]);

    fn src(name: &str, text: &str, secs: u64) -> SourceText {
        SourceText {
            name: name.into(),
            text: text.into(),
            modified: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn params() -> BootParams {
        BootParams {
            base_url: "http://10.0.0.1:8080".into(),
            image_cmdline: "console=ttyS0".into(),
            boot_cmdline: String::new(),
            boot_console: None,
        }
    }

    fn build(prev: &Site, inv: &str, tmpl: &str, t: u64) -> (Site, Report) {
        Site::build(
            prev,
            &src("inv.toml", inv, t),
            &src("pair.tmpl", tmpl, t),
            params(),
            UNIX_EPOCH,
        )
    }

    fn served(site: &Site, mac: Mac) -> Arc<Rendered> {
        match site.lookup(mac) {
            Lookup::Node { rendered, .. } => rendered,
            other => panic!("{mac}: {other:?}"),
        }
    }

    fn body(site: &Site, mac: Mac) -> String {
        String::from_utf8(served(site, mac).body.to_vec()).unwrap()
    }

    #[test]
    fn each_node_gets_its_own_config() {
        let (site, report) = build(&Site::empty(params()), INV, TMPL, 1000);
        assert!(report.problems.is_empty(), "{report:?}");
        assert_eq!(report.changes.len(), 2, "{report:?}");
        assert!(body(&site, LB1).contains("hostname = \"lb1\"\n"));
        assert!(body(&site, LB1).contains("priority = 150\n"));
        assert!(body(&site, LB2).contains("hostname = \"lb2\"\n"));
        assert!(body(&site, LB2).contains("priority = 100\n"));
        let r = served(&site, LB1);
        assert_eq!(
            r.version,
            lbd::config::parse("x", &body(&site, LB1))
                .unwrap()
                .config
                .version
                .to_string()
        );
        assert_eq!(
            r.validators.modified,
            UNIX_EPOCH + Duration::from_secs(1000)
        );
        assert!(matches!(
            site.lookup(Mac([2, 0, 0, 0, 0, 9])),
            Lookup::Unknown
        ));
        assert!(site.script(Mac([2, 0, 0, 0, 0, 9])).is_none());
        let (host, script) = site.script(LB2).unwrap();
        assert_eq!(host, "lb2");
        assert!(script.contains("lb.config=http://10.0.0.1:8080/config/52-54-00-00-00-02.toml"));
    }

    #[test]
    fn a_bad_value_for_one_node_keeps_its_last_good_config_only() {
        let (v1, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        let old_lb1 = served(&v1, LB1);
        // lb1 gets an impossible priority, lb2 a new valid one.
        let inv2 = INV
            .replace("priority = 150", "priority = 300")
            .replace("priority = 100", "priority = 90");
        let (v2, report) = build(&v1, &inv2, TMPL, 2000);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        let p = &report.problems[0];
        assert_eq!(p.scope, "lb1 (52:54:00:00:00:01)");
        assert!(
            p.lines[0].starts_with("pair.tmpl[lb1]:7:12: error"),
            "{:?}",
            p.lines
        );
        assert_eq!(
            p.consequence,
            format!(
                "config refused; keeping the last good one {}",
                old_lb1.short_version()
            )
        );
        assert!(Arc::ptr_eq(&served(&v2, LB1), &old_lb1));
        assert!(v2.nodes[&LB1].problem.is_some());
        assert!(body(&v2, LB2).contains("priority = 90\n"));
        assert_eq!(
            served(&v2, LB2).validators.modified,
            UNIX_EPOCH + Duration::from_secs(2000)
        );
        assert_eq!(report.changes.len(), 1, "{report:?}");
        assert!(report.changes[0].starts_with("lb2 (52:54:00:00:00:02): config "));

        // Fixed again: the problem goes away.
        let (v3, report) = build(&v2, &inv2.replace("300", "140"), TMPL, 3000);
        assert!(report.problems.is_empty());
        assert!(body(&v3, LB1).contains("priority = 140\n"));
        assert!(v3.nodes[&LB1].problem.is_none());
    }

    #[test]
    fn a_broken_inventory_or_template_changes_nothing() {
        let (v1, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        let (v2, report) = build(&v1, "[[node]]\nmac = ", TMPL, 2000);
        assert_eq!(report.problems[0].scope, "inventory");
        assert!(report.problems[0].lines[0].starts_with("inv.toml:2:7: error[toml-syntax]"));
        assert!(Arc::ptr_eq(&served(&v2, LB1), &served(&v1, LB1)));
        assert!(Arc::ptr_eq(&served(&v2, LB2), &served(&v1, LB2)));

        let (v3, report) = build(&v2, INV, &format!("{TMPL}x = {{{{ node.prio"), 3000);
        assert_eq!(report.problems[0].scope, "template");
        assert!(
            report.problems[0].lines[0].starts_with("pair.tmpl:9:5: error[unclosed-placeholder]")
        );
        assert!(Arc::ptr_eq(&served(&v3, LB1), &served(&v1, LB1)));
    }

    #[test]
    fn unchanged_content_keeps_its_validators() {
        let (v1, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        let (v2, report) = build(&v1, &format!("# touched\n{INV}"), TMPL, 5000);
        assert!(report.changes.is_empty(), "{report:?}");
        assert!(Arc::ptr_eq(&served(&v2, LB1), &served(&v1, LB1)));
        assert_eq!(
            served(&v2, LB1).validators.modified,
            UNIX_EPOCH + Duration::from_secs(1000)
        );
    }

    #[test]
    fn last_modified_never_goes_back() {
        let (v1, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        // New content from sources with an older mtime (restored from a backup).
        let (v2, _) = build(&v1, &INV.replace("150", "151"), TMPL, 10);
        assert_eq!(
            served(&v2, LB1).validators.modified,
            UNIX_EPOCH + Duration::from_secs(1001)
        );
    }

    #[test]
    fn a_fixed_hostname_in_the_template_is_refused() {
        let tmpl = TMPL.replace("{{ node.hostname }}", "lb1");
        let (site, report) = build(&Site::empty(params()), INV, &tmpl, 1000);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert!(report.problems[0].lines[0].contains("error[hostname-mismatch]"));
        assert_eq!(report.problems[0].scope, "lb2 (52:54:00:00:00:02)");
        match site.lookup(LB2) {
            Lookup::NotReady { hostname, problem } => {
                assert_eq!(hostname, "lb2");
                assert!(problem[0].contains("hostname-mismatch"));
            }
            other => panic!("{other:?}"),
        }
        assert!(body(&site, LB1).contains("priority = 150"));
    }

    #[test]
    fn unknown_macs_get_the_default_profile_with_their_own_mac() {
        let inv = format!("{INV}\n[unknown]\nhostname = \"spare\"\npriority = 1\n");
        let tmpl = format!("{TMPL}# for {{{{ node.mac }}}}\n");
        let (site, report) = build(&Site::empty(params()), &inv, &tmpl, 1000);
        assert!(report.problems.is_empty(), "{report:?}");
        let m = Mac([2, 0, 0, 0, 0, 0x42]);
        match site.lookup(m) {
            Lookup::Default { hostname, rendered } => {
                assert_eq!(hostname, "spare");
                let text = std::str::from_utf8(&rendered.body).unwrap();
                assert!(text.contains("# for 02:00:00:00:00:42"), "{text}");
                assert!(text.contains("priority = 1\n"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(site.script(m).unwrap().0, "spare");

        // A broken [unknown] keeps the last good profile.
        let bad = inv.replace("priority = 1\n", "priority = 0\n");
        let (site2, report) = build(&site, &bad, &tmpl, 2000);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].scope, "[unknown]");
        match site2.lookup(m) {
            Lookup::Default { rendered, .. } => {
                assert!(std::str::from_utf8(&rendered.body)
                    .unwrap()
                    .contains("priority = 1\n"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removed_nodes_become_unknown() {
        let (v1, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        let only_lb2 = INV.split("[[node]]").nth(2).unwrap();
        let (v2, report) = build(&v1, &format!("[[node]]{only_lb2}"), TMPL, 2000);
        assert_eq!(
            report.changes,
            vec!["lb1 (52:54:00:00:00:01): removed from the inventory; its MAC is unknown now"]
        );
        assert!(matches!(v2.lookup(LB1), Lookup::Unknown));
    }

    #[test]
    fn status_lists_nodes() {
        let (site, _) = build(&Site::empty(params()), INV, TMPL, 1000);
        let s = site.status_json();
        assert_eq!(s["nodes"][0]["hostname"], "lb1");
        assert_eq!(
            s["nodes"][1]["config_url"],
            "http://10.0.0.1:8080/config/52-54-00-00-00-02.toml"
        );
        assert!(s["nodes"][0]["version"].as_str().unwrap().len() == 64);
        assert!(s["unknown"].is_null());
    }
}
