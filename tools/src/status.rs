//! `lbctl status`: lbd's status document as a table in the layout of `ipvsadm -Ln`, each real
//! joined with its health and each service with its VRRP instance's state. Pure: JSON in, text
//! out; colour only when asked (a TTY, and no `NO_COLOR`).

use serde_json::Value;
use std::fmt::Write as _;

/// ANSI colours, or nothing.
#[derive(Clone, Copy)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn green(&self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.wrap("31", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    pub fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// `2h03m`, `4m05s`, `12s`.
pub fn human_duration(secs: f64) -> String {
    let t = secs.max(0.0) as u64;
    let (d, h, m, s) = (t / 86400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn ipvsadm_fwd(f: &str) -> &'static str {
    match f {
        "nat" => "Masq",
        "dr" => "Route",
        "tun" => "Tunnel",
        "local" => "Local",
        _ => "?",
    }
}

fn state_paint(p: Paint, state: &str) -> String {
    match state {
        "MASTER" => p.green(state),
        "FAULT" => p.red(state),
        "BACKUP" => state.to_string(),
        _ => p.yellow(state),
    }
}

/// The table.
pub fn render(doc: &Value, p: Paint) -> String {
    let mut out = String::new();
    header(&mut out, doc, p);
    let vrrp_state = vrrp(&mut out, doc, p);
    bgp(&mut out, doc, p);
    links(&mut out, doc, p);
    ipvs_header(&mut out, doc, p);
    for svc in doc["services"].as_array().into_iter().flatten() {
        service(&mut out, svc, &vrrp_state, p);
        for r in svc["reals"].as_array().into_iter().flatten() {
            real(&mut out, r, p);
        }
        sorry_server(&mut out, svc, p);
        draining(&mut out, svc, p);
    }
    if let Some(t) = doc["syslog"]["target"].as_str() {
        let sy = &doc["syslog"];
        let _ = writeln!(
            out,
            "remote syslog {t}: {} sent, {} dropped, {} failed sends",
            u(sy, "sent").unwrap_or(0),
            u(sy, "dropped").unwrap_or(0),
            u(sy, "failures").unwrap_or(0)
        );
    }
    out
}

/// `lbd VERSION on HOST, pid N, up T; config V loaded T ago (AT), PATH`.
fn header(out: &mut String, doc: &Value, p: Paint) {
    let lbd = &doc["lbd"];
    let cfg = &doc["config"];
    let version = s(cfg, "version");
    let _ = writeln!(
        out,
        "{} {} on {}, pid {}, up {}; config {} loaded {} ago ({}), {}",
        p.bold("lbd"),
        s(lbd, "version"),
        s(lbd, "hostname"),
        u(lbd, "pid").unwrap_or(0),
        human_duration(lbd["uptime_seconds"].as_f64().unwrap_or(0.0)),
        &version[..12.min(version.len())],
        human_duration(cfg["age_seconds"].as_f64().unwrap_or(0.0)),
        s(cfg, "loaded_at"),
        s(cfg, "path"),
    );
    let trust = &cfg["trust"];
    if trust.is_object() {
        let serial = u(trust, "serial")
            .map(|n| format!(", serial {n}"))
            .unwrap_or_default();
        let line = match s(trust, "mode") {
            "signed" => format!("config signed by {}{serial}", s(trust, "signer")),
            "unsigned-allowed" => p.red(&format!(
                "config NOT signature-checked: lb.unsigned=allow on the kernel command line{serial}"
            )),
            "no-keys" => format!("config not signed: the image carries no keys{serial}"),
            other => format!("config trust: {other}{serial}"),
        };
        let _ = writeln!(out, "{line}");
    }
}

/// The VRRP instances, one per line; their states by name, for the services' notes.
/// BGP: each session's state, and each N-way VIP announced or not and why.
fn bgp(out: &mut String, doc: &Value, p: Paint) {
    let b = &doc["bgp"];
    if b.is_null() {
        return;
    }
    let drained = if b["node_drained"].as_bool() == Some(true) {
        p.red("  node drained: nothing announced")
    } else {
        String::new()
    };
    let speaker = match b["pid"].as_u64() {
        Some(pid) => format!("bird pid {pid}"),
        None => p.red("bird not running"),
    };
    let _ = writeln!(out, "{}  {speaker}{drained}", p.bold("BGP"));
    if let Some(e) = b["last_error"].as_str() {
        let _ = writeln!(out, "  last problem: {e}");
    }
    for sess in b["sessions"].as_array().into_iter().flatten() {
        let state = sess["state"].as_str().unwrap_or("unknown");
        let painted = if state == "established" {
            p.green(state)
        } else {
            p.red(state)
        };
        let err = sess["last_error"]
            .as_str()
            .map(|e| format!("  last error: {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  peer {:<12} {:<16} {painted}{err}",
            s(sess, "peer"),
            s(sess, "address")
        );
    }
    if let Some(vips) = b["vips"].as_object() {
        for (vip, d) in vips {
            let announced = d["announced"].as_bool() == Some(true);
            let word = if announced {
                p.green("announced")
            } else {
                p.red("withdrawn")
            };
            let _ = writeln!(out, "  vip {vip:<16} {word}  ({})", s(d, "reason"));
        }
    }
}

fn vrrp(out: &mut String, doc: &Value, p: Paint) -> std::collections::BTreeMap<String, String> {
    let mut vrrp_state = std::collections::BTreeMap::new();
    if let Some(list) = doc["vrrp"].as_array().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "{}", p.bold("VRRP"));
        for v in list {
            let state = s(v, "state");
            vrrp_state.insert(s(v, "name").to_string(), state.to_string());
            let vips: Vec<&str> = v["vips"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let group = v["sync_group"]
                .as_str()
                .map(|g| format!("  group {g}"))
                .unwrap_or_default();
            let configured = u(v, "priority").unwrap_or(0);
            let lowered = match u(v, "effective_priority") {
                Some(e) if e != configured => {
                    p.red(&format!("  priority lowered to {e} (health quorum lost)"))
                }
                _ => String::new(),
            };
            // Pad outside the paint, so escape codes do not upset the columns.
            let padded = format!(
                "{}{}",
                state_paint(p, state),
                " ".repeat(7usize.saturating_sub(state.len()))
            );
            let _ = writeln!(
                out,
                "  {:<12} {:<8} vrid {:<3} v{} prio {:<3} {} {}{group}{lowered}",
                s(v, "name"),
                s(v, "interface"),
                u(v, "vrid").unwrap_or(0),
                u(v, "version").unwrap_or(0),
                configured,
                padded,
                vips.join(" "),
            );
        }
    }
    vrrp_state
}

/// The node's links: state, speed, MTU; a bond's mode, active member and each member's
/// carrier and LACP state under it; a VLAN's id and parent. Bond members are shown under
/// their bond only.
fn links(out: &mut String, doc: &Value, p: Paint) {
    let Some(list) = doc["links"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    let _ = writeln!(out, "{}", p.bold("LINKS"));
    for l in list.iter().filter(|l| l["member_of"].is_null()) {
        let state = match (l["up"].as_bool(), l["carrier"].as_bool()) {
            (Some(true), Some(true)) => p.green("up"),
            (Some(true), _) => p.red("no carrier"),
            _ => p.yellow("down"),
        };
        let speed = u(l, "speed_mbps")
            .map(|s| format!("  {s} Mb/s"))
            .unwrap_or_default();
        let mtu = u(l, "mtu")
            .map(|m| format!("  mtu {m}"))
            .unwrap_or_default();
        let what = if let Some(v) = l["vlan"].as_object() {
            format!(
                "vlan {} on {}",
                v.get("id").and_then(Value::as_u64).unwrap_or(0),
                v.get("parent").and_then(Value::as_str).unwrap_or("?")
            )
        } else if l["bond"].is_object() {
            let b = &l["bond"];
            let active = b["active"]
                .as_str()
                .map(|a| format!(", active {a}"))
                .unwrap_or_default();
            format!("bond {}{active}", s(b, "mode"))
        } else {
            s(l, "kind").to_string()
        };
        let _ = writeln!(
            out,
            "  {:<12} {:<28} {state}{speed}{mtu}",
            s(l, "name"),
            what
        );
        for m in l["bond"]["members"].as_array().into_iter().flatten() {
            let mii = if m["mii_up"].as_bool() == Some(true) {
                p.green("up")
            } else {
                p.red("down")
            };
            let active = if m["active"].as_bool() == Some(true) {
                ", active"
            } else {
                ""
            };
            let lacp = match m["lacp"].as_object() {
                Some(x)
                    if x.get("collecting_distributing").and_then(Value::as_bool) == Some(true) =>
                {
                    ", LACP collecting+distributing".to_string()
                }
                Some(x) => p.red(&format!(
                    ", LACP not agreed (actor {:#04x}, partner {:#04x})",
                    x.get("actor_state").and_then(Value::as_u64).unwrap_or(0),
                    x.get("partner_state").and_then(Value::as_u64).unwrap_or(0)
                )),
                None => String::new(),
            };
            let _ = writeln!(out, "    {:<10} {mii}{active}{lacp}", s(m, "name"));
        }
    }
}

/// `IPVS` (and why the kernel's columns are missing) and the column headers, as ipvsadm -Ln.
fn ipvs_header(out: &mut String, doc: &Value, p: Paint) {
    let ipvs_ok = doc["ipvs"]["available"].as_bool().unwrap_or(false);
    let _ = writeln!(
        out,
        "{}{}",
        p.bold("IPVS"),
        if ipvs_ok {
            String::new()
        } else {
            p.dim(&format!(
                " (kernel table not readable: {}; weights are the ones lbd wants)",
                s(&doc["ipvs"], "error")
            ))
        }
    );
    let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Flags");
    let _ = writeln!(
        out,
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health"
    );
}

/// A service's line: protocol, address or mark, scheduler, persistence, and notes.
fn service(
    out: &mut String,
    svc: &Value,
    vrrp_state: &std::collections::BTreeMap<String, String>,
    p: Paint,
) {
    let key = match (svc["vip"].as_str(), u(svc, "fwmark")) {
        (Some(vip), _) => format!("{:<4} {vip}", s(svc, "protocol").to_ascii_uppercase()),
        (None, Some(m)) => format!("FWM  {m}"),
        _ => s(svc, "key").to_string(),
    };
    let mut line = format!("{key} {}", s(svc, "scheduler"));
    if let Some(t) = u(svc, "persistence_seconds") {
        let _ = write!(line, " persistent {t}");
    }
    let mut notes = vec![s(svc, "name").to_string()];
    if let Some(inst) = svc["vrrp_instance"].as_str() {
        let st = vrrp_state.get(inst).cloned().unwrap_or_default();
        notes.push(format!("{inst} {}", state_paint(p, &st)));
    }
    if let Some(q) = svc.get("quorum").filter(|q| !q.is_null()) {
        notes.push(if q["up"].as_bool().unwrap_or(true) {
            "quorum up".to_string()
        } else {
            p.red("quorum lost")
        });
    }
    if svc["in_kernel"].as_bool() == Some(false) {
        notes.push(p.red("not in the kernel"));
    }
    let _ = writeln!(out, "{line}  [{}]", notes.join(", "));
}

/// A real's line: the kernel's columns (or what lbd wants), and its health.
fn real(out: &mut String, r: &Value, p: Paint) {
    let k = r.get("ipvs").filter(|k| !k.is_null());
    let (fwd, weight, active, inactive) = match k {
        Some(k) => (
            ipvsadm_fwd(s(k, "forwarding")),
            u(k, "weight").map_or("-".into(), |w| w.to_string()),
            u(k, "active_connections").map_or("-".into(), |w| w.to_string()),
            u(k, "inactive_connections").map_or("-".into(), |w| w.to_string()),
        ),
        None => (
            ipvsadm_fwd(s(r, "forwarding")),
            u(r, "weight").map_or("-".into(), |w| w.to_string()),
            "-".to_string(),
            "-".to_string(),
        ),
    };
    let health = s(r, "health");
    let mut h = match health {
        "up" => p.green("up"),
        "down" => p.red("down"),
        other => p.yellow(other),
    };
    if let Some(reason) = r["reason"].as_str() {
        let _ = write!(h, ": {reason}");
    }
    if r["drained"].as_bool() == Some(true) {
        let _ = write!(h, ", {}", p.yellow("drained"));
    }
    if !r["checked"].as_bool().unwrap_or(false) {
        let _ = write!(h, " {}", p.dim("(no check)"));
    }
    let want = u(r, "weight");
    if k.is_some() && want != u(k.unwrap(), "weight") {
        let _ = write!(
            h,
            " {}",
            p.dim(&format!(
                "(lbd wants {})",
                want.map_or("it removed".into(), |w| format!("weight {w}"))
            ))
        );
    }
    if k.is_none() && want.is_none() {
        let _ = write!(h, " {}", p.dim("(left out of the table)"));
    }
    let addr = s(r, "address");
    let _ = writeln!(
        out,
        "  -> {addr:<28} {fwd:<7} {weight:<6} {active:<10} {inactive:<9} {h}"
    );
}

/// The sorry server's line, while it serves.
fn sorry_server(out: &mut String, svc: &Value, p: Paint) {
    if let Some(sorry) = svc.get("sorry").filter(|x| !x.is_null()) {
        if sorry["active"].as_bool() == Some(true) {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {}",
                s(sorry, "address"),
                ipvsadm_fwd(s(sorry, "forwarding")),
                1,
                "-",
                "-",
                p.yellow("sorry server (no real serves)")
            );
        }
    }
}

/// The lines of reals removed from the config that still drain.
fn draining(out: &mut String, svc: &Value, p: Paint) {
    for d in svc["draining"].as_array().into_iter().flatten() {
        let k = d.get("ipvs").filter(|k| !k.is_null());
        let col = |key: &str| {
            k.and_then(|k| u(k, key))
                .map_or("-".into(), |v| v.to_string())
        };
        let _ = writeln!(
            out,
            "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {}",
            s(d, "address"),
            k.map_or("-", |k| ipvsadm_fwd(s(k, "forwarding"))),
            col("weight"),
            col("active_connections"),
            col("inactive_connections"),
            p.yellow(&format!(
                "draining: removed from the config, deleted when idle or at {}",
                s(d, "ends_by")
            ))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::json!({
            "lbd": {"version": "0.1.0", "pid": 42, "hostname": "lb1", "uptime_seconds": 3725.0},
            "config": {"version": "65702530a44839e38d1f", "age_seconds": 65.0, "loaded_at": "2025-01-01T00:00:00.000000Z", "path": "/run/lb/config.toml"},
            "ipvs": {"available": true, "error": null},
            "vrrp": [{"name": "VI", "interface": "eth0", "vrid": 7, "version": 3, "priority": 150, "effective_priority": 150, "state": "MASTER", "vips": ["192.0.2.10/24"], "sync_group": null},
                     {"name": "VJ", "interface": "eth1", "vrid": 8, "version": 3, "priority": 150, "effective_priority": 50, "state": "BACKUP", "vips": ["192.0.2.20/24"], "sync_group": null}],
            "services": [{
                "name": "web", "key": "tcp 192.0.2.10:80", "protocol": "tcp", "vip": "192.0.2.10:80", "fwmark": null,
                "scheduler": "wlc", "persistence_seconds": 300, "vrrp_instance": "VI", "quorum": {"up": false},
                "in_kernel": true, "sorry": {"address": "10.0.0.99:80", "forwarding": "nat", "active": false},
                "reals": [
                    {"address": "10.0.0.1:80", "forwarding": "nat", "weight": 0, "drained": true, "health": "up", "checked": true, "reason": null,
                     "ipvs": {"weight": 0, "forwarding": "nat", "active_connections": 12, "inactive_connections": 40}},
                    {"address": "10.0.0.2:80", "forwarding": "nat", "weight": null, "drained": false, "health": "down", "checked": true, "reason": "connection refused", "ipvs": null}
                ]
            }],
            "syslog": {"target": "udp://192.0.2.5:514", "sent": 10, "dropped": 0, "failures": 1}
        })
    }

    #[test]
    fn plain_table() {
        let t = render(&doc(), Paint { on: false });
        assert!(
            t.starts_with(
                "lbd 0.1.0 on lb1, pid 42, up 1h02m; config 65702530a448 loaded 1m05s ago"
            ),
            "{t}"
        );
        assert!(
            t.contains("  VI           eth0     vrid 7   v3 prio 150 MASTER  192.0.2.10/24\n"),
            "{t}"
        );
        assert!(
            t.contains("  VJ           eth1     vrid 8   v3 prio 150 BACKUP  192.0.2.20/24  priority lowered to 50 (health quorum lost)\n"),
            "{t}"
        );
        assert!(
            t.contains("TCP  192.0.2.10:80 wlc persistent 300  [web, VI MASTER, quorum lost]\n"),
            "{t}"
        );
        assert!(t.contains("  -> 10.0.0.1:80                  Masq    0      12         40        up, drained\n"), "{t}");
        assert!(t.contains("  -> 10.0.0.2:80                  Masq    -      -          -         down: connection refused (left out of the table)\n"), "{t}");
        assert!(t.contains("remote syslog udp://192.0.2.5:514: 10 sent, 0 dropped, 1 failed sends"));
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn colour() {
        let t = render(&doc(), Paint { on: true });
        assert!(t.contains("\x1b[32mMASTER\x1b[0m  192.0.2.10/24"), "{t}");
        assert!(t.contains("\x1b[31mdown\x1b[0m: connection refused"), "{t}");
        assert!(t.contains("\x1b[33mdrained\x1b[0m"), "{t}");
    }

    #[test]
    fn links_with_a_bond_its_members_and_a_vlan() {
        let mut d = doc();
        d["links"] = serde_json::json!([
            {"name": "eth0", "kind": "ethernet", "up": true, "carrier": true, "mtu": 1500, "speed_mbps": 10000, "member_of": null, "vlan": null, "bond": null},
            {"name": "in1", "kind": "ethernet", "up": true, "carrier": true, "mtu": 1500, "member_of": "inside", "vlan": null, "bond": null},
            {"name": "inside", "kind": "bond", "up": true, "carrier": true, "mtu": 1500, "member_of": null, "vlan": null,
             "bond": {"mode": "802.3ad", "active": null, "primary": null, "members": [
                {"name": "in1", "mii_up": true, "active": true, "lacp": {"collecting_distributing": true, "actor_state": 61, "partner_state": 61, "aggregator": 1}},
                {"name": "in2", "mii_up": false, "active": false, "lacp": {"collecting_distributing": false, "actor_state": 13, "partner_state": 0, "aggregator": 2}}
             ]}},
            {"name": "inside.42", "kind": "vlan", "up": true, "carrier": false, "mtu": 1500, "member_of": null, "vlan": {"parent": "inside", "id": 42}, "bond": null}
        ]);
        let t = render(&d, Paint { on: false });
        for line in [
            "LINKS\n",
            "  eth0         ethernet                     up  10000 Mb/s  mtu 1500\n",
            "  inside       bond 802.3ad                 up  mtu 1500\n",
            "    in1        up, active, LACP collecting+distributing\n",
            "    in2        down, LACP not agreed (actor 0x0d, partner 0x00)\n",
            "  inside.42    vlan 42 on inside            no carrier  mtu 1500\n",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }
        assert!(
            !t.contains("\n  in1 "),
            "members are shown under their bond only:\n{t}"
        );
    }

    #[test]
    fn trust_line() {
        let mut d = doc();
        d["config"]["trust"] =
            serde_json::json!({"mode": "signed", "signer": "SHA256:abc", "serial": 7});
        let text = render(&d, Paint { on: false });
        assert!(
            text.contains("\nconfig signed by SHA256:abc, serial 7\n"),
            "{text}"
        );
        d["config"]["trust"] =
            serde_json::json!({"mode": "unsigned-allowed", "signer": null, "serial": null});
        let text = render(&d, Paint { on: false });
        assert!(text.contains("config NOT signature-checked"), "{text}");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5.0), "5s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(3725.0), "1h02m");
        assert_eq!(human_duration(90000.0), "1d01h");
    }
}
