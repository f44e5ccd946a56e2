//! The IPVS table a config gives, in the layout of `ipvsadm -Ln`, so an operator (and the
//! converter tests) can hold it against the table the old balancer shows.

use lbd::config::Config;
use lbd::ipvs::msg::{self, FwdMethod, ServiceId};
use lbd::reconcile::{self, DestKey, DestSpec, Overrides, RealHealth, ServiceSpec, SyncRole};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The table lbd programs for `config` when every real is healthy and nothing is drained.
pub fn desired(config: &Config) -> reconcile::Table {
    reconcile::desired(
        config,
        &RealHealth::default(),
        &Overrides::default(),
        SyncRole::Master,
    )
    .table
}

/// One service line: `TCP  192.0.2.1:80 wlc persistent 300 mask 255.255.255.0`.
pub fn service_line(id: &ServiceId, spec: &ServiceSpec) -> String {
    let mut s = match id {
        ServiceId::Addr {
            protocol,
            addr,
            port,
        } => format!(
            "{:<4} {}",
            msg::protocol_name(*protocol).to_ascii_uppercase(),
            SocketAddr::new(*addr, *port)
        ),
        ServiceId::Fwmark { af, mark } => {
            if *af == msg::AF_INET6 {
                format!("FWM  {mark} IPv6")
            } else {
                format!("FWM  {mark}")
            }
        }
    };
    let _ = write!(s, " {}", spec.scheduler);
    let mut flags = Vec::new();
    if spec.flags & msg::SVC_F_SCHED_SH_FALLBACK != 0 {
        flags.push("sh-fallback");
    }
    if spec.flags & msg::SVC_F_SCHED_SH_PORT != 0 {
        flags.push("sh-port");
    }
    if !flags.is_empty() {
        let _ = write!(s, " ({})", flags.join(","));
    }
    if spec.flags & msg::SVC_F_PERSISTENT != 0 {
        let _ = write!(s, " persistent {}", spec.timeout);
        let v6 = id.af() == msg::AF_INET6;
        let max = if v6 { 128 } else { 32 };
        if spec.netmask < max {
            if v6 {
                let _ = write!(s, " mask {}", spec.netmask);
            } else {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(spec.netmask))
                    .unwrap_or(0);
                let _ = write!(s, " mask {}", Ipv4Addr::from(mask));
            }
        }
    }
    if spec.flags & msg::SVC_F_ONEPACKET != 0 {
        s.push_str(" ops");
    }
    s
}

pub fn fwd_name(f: FwdMethod) -> &'static str {
    match f {
        FwdMethod::Masq => "Masq",
        FwdMethod::Local => "Local",
        FwdMethod::Tunnel => "Tunnel",
        FwdMethod::Route => "Route",
        FwdMethod::Bypass => "Bypass",
    }
}

/// One destination line: `  -> 10.0.0.1:80                  Masq    1`.
pub fn dest_line(key: &DestKey, spec: &DestSpec) -> String {
    let addr = match key.addr {
        IpAddr::V6(_) => format!("[{}]:{}", key.addr, key.port),
        IpAddr::V4(_) => format!("{}:{}", key.addr, key.port),
    };
    let mut s = format!("  -> {addr:<28} {:<7} {}", fwd_name(spec.fwd), spec.weight);
    if spec.upper_threshold != 0 || spec.lower_threshold != 0 {
        let _ = write!(
            s,
            " (thresholds {}/{})",
            spec.upper_threshold, spec.lower_threshold
        );
    }
    s
}

/// The whole table, services in key order, destinations in address order.
pub fn render(table: &reconcile::Table) -> String {
    let mut out = String::new();
    for (id, state) in table {
        out.push_str(&service_line(id, &state.spec));
        out.push('\n');
        for (k, d) in &state.dests {
            out.push_str(&dest_line(k, d));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let cfg = lbd::config::parse(
            "t.toml",
            r#"
[vrrp.instance.a]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.1"]

[service.web]
vip = "192.0.2.1:80"
scheduler = "sh"
flags = ["sh-fallback", "sh-port"]
forwarding = "dr"
[service.web.persistence]
timeout = "5m"
netmask = 24
[[service.web.real]]
address = "10.0.0.1"
weight = 3
upper_threshold = 100
[[service.web.real]]
address = "10.0.0.2"
forwarding = "tun"

[service.mark]
fwmark = 7
family = "ipv6"
scheduler = "rr"
[[service.mark.real]]
address = "[2001:db8::1]:8080"
"#,
        )
        .unwrap()
        .config;
        let text = render(&desired(&cfg));
        assert_eq!(
            text,
            "TCP  192.0.2.1:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0\n  \
             -> 10.0.0.1:80                  Route   3 (thresholds 100/0)\n  \
             -> 10.0.0.2:80                  Tunnel  1\n\
             FWM  7 IPv6 rr\n  \
             -> [2001:db8::1]:8080           Masq    1\n"
        );
    }
}
