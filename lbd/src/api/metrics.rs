//! `GET /metrics`: the status document in the Prometheus text exposition format (0.0.4).
//! Pure; names follow Prometheus conventions (base units, `_total` for counters).
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `lbd_info` | gauge | version, config_version, hostname | always 1 |
//! | `lbd_start_time_seconds` | gauge | | when lbd started, Unix time |
//! | `lbd_config_load_time_seconds` | gauge | | when the running config was applied, Unix time |
//! | `lbd_config_applied_total` | counter | | configs applied since start |
//! | `lbd_ipvs_available` | gauge | | 1 when the kernel's IPVS table could be read |
//! | `lbd_config_trust` | gauge | mode, signer | 1 for how init admitted the running config: `signed`, `unsigned-allowed` (`lb.unsigned=allow`), `no-keys` |
//! | `lbd_config_serial` | gauge | | the running config's `[release] serial` |
//! | `lbd_vrrp_instance_state` | gauge | instance, state | 1 for the instance's current state (INIT, BACKUP, MASTER, FAULT) |
//! | `lbd_vrrp_instance_priority` | gauge | instance | configured priority |
//! | `lbd_vrrp_instance_effective_priority` | gauge | instance | priority advertised now (after a quorum drop) |
//! | `lbd_vrrp_dropped_packets_total` | counter | reason | received VRRP packets dropped |
//! | `lbd_bgp_session_up` | gauge | peer, address | 1 while the BGP session is established |
//! | `lbd_bgp_session_state` | gauge | peer, state | 1 for the session's current state (idle, connect, active, opensent, openconfirm, established) |
//! | `lbd_bgp_speaker_restarts_total` | counter | | times BIRD was started again after it died |
//! | `lbd_bgp_node_drained` | gauge | | 1 while the node is drained (`lbctl drain --node`) |
//! | `lbd_bgp_vip_announced` | gauge | vip, reason | 1 while the N-way VIP is announced; the reason says why it is or is not |
//! | `lbd_service_reals_up` | gauge | service | reals that serve |
//! | `lbd_service_up_weight` | gauge | service | their total weight |
//! | `lbd_service_quorum_up` | gauge | service | 1 while the quorum holds (services with a quorum) |
//! | `lbd_service_sorry_active` | gauge | service | 1 while the sorry server replaces the reals |
//! | `lbd_service_connections_total` | counter | service | connections IPVS scheduled |
//! | `lbd_service_packets_total` | counter | service, direction | packets in / out |
//! | `lbd_service_bytes_total` | counter | service, direction | bytes in / out |
//! | `lbd_service_connections_per_second` | gauge | service | IPVS's rate estimate |
//! | `lbd_service_packets_per_second` | gauge | service, direction | IPVS's rate estimate |
//! | `lbd_service_bytes_per_second` | gauge | service, direction | IPVS's rate estimate |
//! | `lbd_real_up` | gauge | service, real | 1 when the real serves (up, or not checked yet) |
//! | `lbd_real_drained` | gauge | service, real | 1 while drained by an operator |
//! | `lbd_real_draining` | gauge | service, real | 1 while removed from the config and kept at weight 0 until its connections end (`ipvs.removal_drain`) |
//! | `lbd_real_config_weight` | gauge | service, real | weight in the config |
//! | `lbd_real_weight` | gauge | service, real | weight lbd wants in IPVS (absent: left out) |
//! | `lbd_real_ipvs_weight` | gauge | service, real | weight the kernel holds |
//! | `lbd_real_active_connections` | gauge | service, real | established connections (draining reals too) |
//! | `lbd_real_inactive_connections` | gauge | service, real | other connection entries |
//! | `lbd_real_connections_total` | counter | service, real | connections scheduled to it |
//! | `lbd_real_bytes_total` | counter | service, real, direction | bytes in / out |
//! | `lbd_real_connections_per_second` | gauge | service, real | IPVS's rate estimate |
//! | `lbd_syslog_messages_sent_total` | counter | | remote log messages sent |
//! | `lbd_syslog_messages_dropped_total` | counter | | remote log messages lost (queue full) |
//! | `lbd_syslog_send_failures_total` | counter | | failed sends (each retried) |
//! | `lbd_link_up` | gauge | link, kind | 1 when the link is administratively up |
//! | `lbd_link_carrier` | gauge | link | 1 when it has carrier |
//! | `lbd_link_speed_bytes` | gauge | link | the speed the driver reports, bytes per second |
//! | `lbd_link_mtu_bytes` | gauge | link | its MTU |
//! | `lbd_bond_member_up` | gauge | bond, member | 1 while the bond's link monitoring sees carrier |
//! | `lbd_bond_member_active` | gauge | bond, member | 1 while the bond uses the member |
//! | `lbd_bond_member_lacp_collecting_distributing` | gauge | bond, member | 802.3ad: 1 once LACP agreed and the member carries traffic |

use super::snapshot::Status;
use std::fmt::Write as _;

/// The Content-Type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

struct Out {
    families: Vec<Family>,
}

impl Out {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) -> usize {
        self.families.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
        self.families.len() - 1
    }

    fn add(&mut self, f: usize, labels: Vec<(&'static str, String)>, value: f64) {
        self.families[f].samples.push((labels, value));
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &'static str, kind: &'static str, help: &'static str, value: f64) {
        let f = self.family(name, kind, help);
        self.add(f, vec![], value);
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for f in self.families.iter().filter(|f| !f.samples.is_empty()) {
            let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(s, "# TYPE {} {}", f.name, f.kind);
            for (labels, value) in &f.samples {
                s.push_str(f.name);
                if !labels.is_empty() {
                    s.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        let _ = write!(s, "{k}=\"{}\"", escape(v));
                    }
                    s.push('}');
                }
                let _ = writeln!(s, " {}", number(*value));
            }
        }
        s
    }
}

/// Label values: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn unix(rfc3339: &str, fallback: f64) -> f64 {
    // The document carries RFC 3339 times; the metric wants Unix seconds.
    parse_rfc3339(rfc3339).unwrap_or(fallback)
}

/// Seconds since 1970 of `YYYY-MM-DDThh:mm:ss.ffffffZ` (the form our documents use).
fn parse_rfc3339(t: &str) -> Option<f64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (h.next()?.ok()?, h.next()?.ok()?, h.next()?.ok()?);
    let (yy, mo) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (mo - 3) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let f: f64 = format!("0.{frac}").parse().ok()?;
    Some((days * 86400 + hh * 3600 + mm * 60 + ss) as f64 + f)
}

/// The exposition text: the families in the order of the table above, a helper per group
/// (each family's samples in the order of the status document).
pub fn render(st: &Status) -> String {
    let mut o = Out {
        families: Vec::new(),
    };
    lbd_families(&mut o, st);
    vrrp_families(&mut o, st);
    bgp_families(&mut o, st);
    service_families(&mut o, st);
    real_families(&mut o, st);
    syslog_families(&mut o, st);
    link_families(&mut o, st);
    o.render()
}

/// lbd itself, its running config, and whether IPVS could be read.
fn lbd_families(o: &mut Out, st: &Status) {
    let info = o.family(
        "lbd_info",
        "gauge",
        "lbd build and running config (always 1).",
    );
    o.add(
        info,
        vec![
            ("version", st.lbd.version.to_string()),
            ("config_version", st.config.version.clone()),
            ("hostname", st.lbd.hostname.clone()),
        ],
        1.0,
    );
    o.single(
        "lbd_start_time_seconds",
        "gauge",
        "When lbd started, in seconds since the Unix epoch.",
        unix(&st.lbd.started_at, 0.0),
    );
    o.single(
        "lbd_config_load_time_seconds",
        "gauge",
        "When the running config was applied, in seconds since the Unix epoch.",
        unix(&st.config.loaded_at, 0.0),
    );
    o.single(
        "lbd_config_applied_total",
        "counter",
        "Configs applied since lbd started.",
        st.config.applied as f64,
    );
    if let Some(trust) = &st.config.trust {
        let family = o.family(
            "lbd_config_trust",
            "gauge",
            "How init admitted the running config (always 1): signed, unsigned-allowed, no-keys.",
        );
        o.add(
            family,
            vec![
                ("mode", trust.mode.clone()),
                ("signer", trust.signer.clone().unwrap_or_default()),
            ],
            1.0,
        );
        if let Some(serial) = trust.serial {
            o.single(
                "lbd_config_serial",
                "gauge",
                "The running config's [release] serial.",
                serial as f64,
            );
        }
    }
    o.single(
        "lbd_ipvs_available",
        "gauge",
        "1 when the kernel's IPVS table could be read.",
        f64::from(u8::from(st.ipvs.available)),
    );
}

/// VRRP instances (state, priorities) and the received packets dropped.
fn bgp_families(o: &mut Out, st: &Status) {
    let Some(bgp) = &st.bgp else { return };
    let up = o.family(
        "lbd_bgp_session_up",
        "gauge",
        "1 while the BGP session with the peer is established.",
    );
    let state = o.family(
        "lbd_bgp_session_state",
        "gauge",
        "1 for the BGP session's current state, 0 for the others.",
    );
    for s in &bgp.speaker.sessions {
        o.add(
            up,
            vec![("peer", s.peer.clone()), ("address", s.address.to_string())],
            f64::from(u8::from(s.established())),
        );
        let now = s.state.as_ref().map_or("unknown", |st| st.name());
        for name in [
            "idle",
            "connect",
            "active",
            "opensent",
            "openconfirm",
            "established",
        ] {
            o.add(
                state,
                vec![("peer", s.peer.clone()), ("state", name.to_string())],
                f64::from(u8::from(now == name)),
            );
        }
    }
    o.single(
        "lbd_bgp_speaker_restarts_total",
        "counter",
        "Times BIRD was started again after it died.",
        f64::from(bgp.speaker.restarts),
    );
    o.single(
        "lbd_bgp_node_drained",
        "gauge",
        "1 while the node is drained: nothing is announced.",
        f64::from(u8::from(bgp.node_drained)),
    );
    let vip = o.family(
        "lbd_bgp_vip_announced",
        "gauge",
        "1 while the N-way VIP is announced by BGP; reason says why it is or is not.",
    );
    for (addr, d) in &bgp.speaker.vips {
        let reason = serde_json::to_value(&d.why)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_default();
        o.add(
            vip,
            vec![("vip", addr.to_string()), ("reason", reason)],
            f64::from(u8::from(d.announced)),
        );
    }
}

fn vrrp_families(o: &mut Out, st: &Status) {
    let state = o.family(
        "lbd_vrrp_instance_state",
        "gauge",
        "1 for the VRRP instance's current state, 0 for the others.",
    );
    let prio = o.family(
        "lbd_vrrp_instance_priority",
        "gauge",
        "Configured VRRP priority.",
    );
    let effective = o.family(
        "lbd_vrrp_instance_effective_priority",
        "gauge",
        "VRRP priority advertised now (configured, lowered while the health quorum is lost).",
    );
    for v in &st.vrrp {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            o.add(
                state,
                vec![("instance", v.name.clone()), ("state", s.to_string())],
                f64::from(u8::from(v.state == s)),
            );
        }
        o.add(
            prio,
            vec![("instance", v.name.clone())],
            f64::from(v.priority),
        );
        o.add(
            effective,
            vec![("instance", v.name.clone())],
            f64::from(v.effective_priority),
        );
    }
    let drops = o.family(
        "lbd_vrrp_dropped_packets_total",
        "counter",
        "Received VRRP packets dropped, by reason.",
    );
    for (reason, n) in &st.vrrp_drops {
        o.add(drops, vec![("reason", reason.clone())], *n as f64);
    }
}

/// Per service: the reals that serve, quorum, sorry server, and IPVS's counters and rates.
fn service_families(o: &mut Out, st: &Status) {
    let up = o.family(
        "lbd_service_reals_up",
        "gauge",
        "Reals of the service that serve.",
    );
    let upw = o.family(
        "lbd_service_up_weight",
        "gauge",
        "Total weight of the reals that serve.",
    );
    let quorum = o.family(
        "lbd_service_quorum_up",
        "gauge",
        "1 while the service's quorum holds.",
    );
    let sorry = o.family(
        "lbd_service_sorry_active",
        "gauge",
        "1 while the sorry server replaces the reals.",
    );
    let conns = o.family(
        "lbd_service_connections_total",
        "counter",
        "Connections IPVS scheduled for the service.",
    );
    let pkts = o.family(
        "lbd_service_packets_total",
        "counter",
        "Packets of the service, in and out.",
    );
    let bytes = o.family(
        "lbd_service_bytes_total",
        "counter",
        "Bytes of the service, in and out.",
    );
    let cps = o.family(
        "lbd_service_connections_per_second",
        "gauge",
        "New connections per second (IPVS's estimate).",
    );
    let pps = o.family(
        "lbd_service_packets_per_second",
        "gauge",
        "Packets per second, in and out (IPVS's estimate).",
    );
    let bps = o.family(
        "lbd_service_bytes_per_second",
        "gauge",
        "Bytes per second, in and out (IPVS's estimate).",
    );
    for s in &st.services {
        let sl = || vec![("service", s.name.clone())];
        let dir = |d: &str| vec![("service", s.name.clone()), ("direction", d.to_string())];
        o.add(up, sl(), s.reals_up as f64);
        o.add(upw, sl(), s.up_weight as f64);
        if let Some(q) = &s.quorum {
            o.add(quorum, sl(), f64::from(u8::from(q.up)));
        }
        if let Some(so) = &s.sorry {
            o.add(sorry, sl(), f64::from(u8::from(so.active)));
        }
        if let Some(t) = &s.traffic {
            o.add(conns, sl(), t.connections as f64);
            o.add(pkts, dir("in"), t.packets_in as f64);
            o.add(pkts, dir("out"), t.packets_out as f64);
            o.add(bytes, dir("in"), t.bytes_in as f64);
            o.add(bytes, dir("out"), t.bytes_out as f64);
            o.add(cps, sl(), t.connections_per_second as f64);
            o.add(pps, dir("in"), t.packets_in_per_second as f64);
            o.add(pps, dir("out"), t.packets_out_per_second as f64);
            o.add(bps, dir("in"), t.bytes_in_per_second as f64);
            o.add(bps, dir("out"), t.bytes_out_per_second as f64);
        }
    }
}

/// Per real of each service: health, drain, weights, and what the kernel holds for it.
fn real_families(o: &mut Out, st: &Status) {
    let r_up = o.family(
        "lbd_real_up",
        "gauge",
        "1 when the real serves (up, or not checked yet).",
    );
    let r_drained = o.family(
        "lbd_real_drained",
        "gauge",
        "1 while an operator drained the real.",
    );
    let r_draining = o.family(
        "lbd_real_draining",
        "gauge",
        "1 while the real, removed from the config, is kept at weight 0 until its connections end.",
    );
    let r_cw = o.family(
        "lbd_real_config_weight",
        "gauge",
        "The real's weight in the config.",
    );
    let r_w = o.family(
        "lbd_real_weight",
        "gauge",
        "The weight lbd wants IPVS to hold for the real (absent: left out of the table).",
    );
    let r_kw = o.family(
        "lbd_real_ipvs_weight",
        "gauge",
        "The weight the kernel holds for the real.",
    );
    let r_act = o.family(
        "lbd_real_active_connections",
        "gauge",
        "Established connections to the real.",
    );
    let r_inact = o.family(
        "lbd_real_inactive_connections",
        "gauge",
        "Other connection entries of the real.",
    );
    let r_conns = o.family(
        "lbd_real_connections_total",
        "counter",
        "Connections scheduled to the real.",
    );
    let r_bytes = o.family(
        "lbd_real_bytes_total",
        "counter",
        "Bytes to and from the real, in and out.",
    );
    let r_cps = o.family(
        "lbd_real_connections_per_second",
        "gauge",
        "New connections per second to the real (IPVS's estimate).",
    );
    for s in &st.services {
        for r in &s.reals {
            let rl = || vec![("service", s.name.clone()), ("real", r.address.to_string())];
            let rdir = |d: &str| {
                vec![
                    ("service", s.name.clone()),
                    ("real", r.address.to_string()),
                    ("direction", d.to_string()),
                ]
            };
            o.add(r_up, rl(), f64::from(u8::from(r.health != "down")));
            o.add(r_drained, rl(), f64::from(u8::from(r.drained)));
            o.add(r_draining, rl(), 0.0);
            o.add(r_cw, rl(), f64::from(r.config_weight));
            if let Some(w) = r.weight {
                o.add(r_w, rl(), f64::from(w));
            }
            if let Some(k) = &r.ipvs {
                o.add(r_kw, rl(), f64::from(k.weight));
                o.add(r_act, rl(), f64::from(k.active_connections));
                o.add(r_inact, rl(), f64::from(k.inactive_connections));
                if let Some(t) = &k.traffic {
                    o.add(r_conns, rl(), t.connections as f64);
                    o.add(r_bytes, rdir("in"), t.bytes_in as f64);
                    o.add(r_bytes, rdir("out"), t.bytes_out as f64);
                    o.add(r_cps, rl(), t.connections_per_second as f64);
                }
            }
        }
        for d in &s.draining {
            let rl = || vec![("service", s.name.clone()), ("real", d.address.to_string())];
            o.add(r_draining, rl(), 1.0);
            if let Some(k) = &d.ipvs {
                o.add(r_kw, rl(), f64::from(k.weight));
                o.add(r_act, rl(), f64::from(k.active_connections));
                o.add(r_inact, rl(), f64::from(k.inactive_connections));
            }
        }
    }
}

/// The node's links and bond members.
fn link_families(o: &mut Out, st: &Status) {
    let up = o.family(
        "lbd_link_up",
        "gauge",
        "1 when the link is administratively up.",
    );
    let carrier = o.family("lbd_link_carrier", "gauge", "1 when the link has carrier.");
    let speed = o.family(
        "lbd_link_speed_bytes",
        "gauge",
        "The link speed the driver reports, in bytes per second.",
    );
    let mtu = o.family("lbd_link_mtu_bytes", "gauge", "The link's MTU.");
    let member_up = o.family(
        "lbd_bond_member_up",
        "gauge",
        "1 while the bond's link monitoring sees carrier on the member.",
    );
    let member_active = o.family(
        "lbd_bond_member_active",
        "gauge",
        "1 while the bond sends on the member.",
    );
    let lacp = o.family(
        "lbd_bond_member_lacp_collecting_distributing",
        "gauge",
        "802.3ad: 1 once LACP has agreed with the partner and the member carries traffic.",
    );
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    for l in &st.links {
        let name = || vec![("link", l.name.clone())];
        o.add(
            up,
            vec![("link", l.name.clone()), ("kind", l.kind.clone())],
            flag(l.up),
        );
        o.add(carrier, name(), flag(l.carrier));
        if let Some(s) = l.speed_mbps {
            o.add(speed, name(), f64::from(s) * 1e6 / 8.0);
        }
        if let Some(m) = l.mtu {
            o.add(mtu, name(), f64::from(m));
        }
        for m in l.bond.iter().flat_map(|b| &b.members) {
            let labels = || vec![("bond", l.name.clone()), ("member", m.name.clone())];
            o.add(member_up, labels(), flag(m.mii_up));
            o.add(member_active, labels(), flag(m.active));
            if let Some(x) = &m.lacp {
                o.add(lacp, labels(), flag(x.collecting_distributing));
            }
        }
    }
}

/// The remote log's counters.
fn syslog_families(o: &mut Out, st: &Status) {
    o.single(
        "lbd_syslog_messages_sent_total",
        "counter",
        "Remote log messages handed to the network.",
        st.syslog.sent as f64,
    );
    o.single(
        "lbd_syslog_messages_dropped_total",
        "counter",
        "Remote log messages lost because the queue or backlog was full.",
        st.syslog.dropped as f64,
    );
    o.single(
        "lbd_syslog_send_failures_total",
        "counter",
        "Failed attempts to send remote log messages (each is retried).",
        st.syslog.failures as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.500000Z"), Some(1.5));
        assert_eq!(
            parse_rfc3339("2024-12-31T23:59:59.000000Z"),
            Some(1_735_689_599.0)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
