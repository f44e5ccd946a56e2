//! The configs both checkers get: lbd's TOML and keepalived.conf, with the same reals and
//! settings.

use crate::opts::{Checker, Kind, Opts};
use std::net::{Ipv4Addr, SocketAddr};

/// Reals per virtual service (both configs).
pub const PER_SERVICE: usize = 100;

/// The address of real `i` (the same for both checkers; the port tells them apart).
fn real_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// Interval 1 s, connect/answer timeout 1 s, a real goes down after 2 failed checks (keepalived:
/// the first failure and `retry 1` after `delay_before_retry 1`) and comes back after 1.
pub const SETTINGS: &str =
    "interval 1s, timeout 1s, down after 2 failures 1s apart, up after 1 success; lbd jitter 100ms";

pub fn lbd_config(opts: &Opts, kind: Kind) -> String {
    let port = Checker::Lbd.port(kind);
    let check = match kind {
        Kind::TcpHalfOpen => {
            r#"{ type = "tcp", half_open = true, interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::Tcp => {
            r#"{ type = "tcp", interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::Http => {
            r#"{ type = "http", path = "/health", expect_status = [200], interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
        Kind::HttpKeepAlive => {
            r#"{ type = "http", keep_alive = true, path = "/health", expect_status = [200], interval = "1s", timeout = "1s", jitter = "100ms", rise = 1, fall = 2 }"#
        }
    };
    let reals = (0..opts.reals).map(|i| SocketAddr::new(real_ip(i).into(), port));
    let services =
        lb_bench::lbd_config::services(reals, PER_SERVICE, Checker::Lbd.first_fwmark(), check);
    format!("[node]\nhostname = \"ckbench\"\n\n{services}")
}

/// lbd's config between phases: no services, so no checks.
pub const LBD_IDLE: &str = "[node]\nhostname = \"ckbench\"\n";

pub fn keepalived_config(opts: &Opts, kind: Kind) -> String {
    let port = Checker::Keepalived.port(kind);
    let check = match kind {
        Kind::Tcp | Kind::TcpHalfOpen => "        TCP_CHECK {\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n".to_string(),
        Kind::Http | Kind::HttpKeepAlive => "        HTTP_GET {\n            url {\n                path /health\n                status_code 200\n            }\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }\n".to_string(),
    };
    let mut t = String::from("global_defs {\n    router_id ckbench\n}\n");
    for s in 0..opts.reals.div_ceil(PER_SERVICE) {
        t += &format!(
            "virtual_server fwmark {} {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n",
            Checker::Keepalived.first_fwmark() + s
        );
        for i in s * PER_SERVICE..((s + 1) * PER_SERVICE).min(opts.reals) {
            t += &format!(
                "    real_server {} {port} {{\n        weight 1\n{check}    }}\n",
                real_ip(i)
            );
        }
        t += "}\n";
    }
    t
}
