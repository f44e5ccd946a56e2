//! The two implementations, their settings per case, and starting one on a node.

use crate::args::Args;
use crate::lab::Lab;
use lbd::vrrp::machine::{Instance, Spec};
use lbd::vrrp::packet::Version;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The VRRP implementation under test.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Lbd,
    Keepalived,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Lbd => "lbd",
            Daemon::Keepalived => "keepalived",
        }
    }
}

/// An advert version and interval.
#[derive(Clone, Copy)]
pub struct Case {
    pub version: Version,
    pub interval: Duration,
}

impl Case {
    pub fn label(&self) -> String {
        match self.version {
            Version::V2 => format!("v2 {}s", self.interval.as_secs()),
            Version::V3 => format!("v3 {}ms", self.interval.as_millis()),
        }
    }

    /// The backup's (priority 100) RFC timers, from lbd's own state machine.
    pub fn backup_timers(&self) -> (Duration, Duration) {
        let spec = Spec {
            name: "b".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: self.version,
            ipv6: false,
            priority: 100,
            advert_interval: self.interval,
            preempt: true,
            preempt_delay: Duration::ZERO,
            vips: vec!["10.77.0.100/24".parse().expect("prefix")],
            unicast_peers: vec![],
            unicast_source: None,
            auth_pass: None,
            track_interfaces: vec![],
            virtual_mac: None,
            accept: false,
            garp_count: 1,
            garp_repeat_after: Duration::ZERO,
            quorum_priority_drop: 0,
            primary: None,
            resume: false,
        };
        let i = Instance::new(spec);
        (i.master_down_interval(), i.skew_time())
    }
}

/// `daemon`'s config for `case` at `priority`.
fn config(daemon: Daemon, case: &Case, priority: u8) -> String {
    let v = match case.version {
        Version::V2 => 2,
        Version::V3 => 3,
    };
    match daemon {
        Daemon::Lbd => {
            let interval = if case.interval.subsec_nanos() == 0 {
                format!("{}s", case.interval.as_secs())
            } else {
                format!("{}ms", case.interval.as_millis())
            };
            format!(
                "[vrrp.instance.VI_1]\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\nversion = {v}\nadvert_interval = \"{interval}\"\nvips = [\"10.77.0.100/24\"]\ngarp_count = 1\n"
            )
        }
        Daemon::Keepalived => format!(
            // The same scheduling as lbd's VRRP thread (SCHED_FIFO at its default
            // `vrrp_realtime_priority`), so the soak compares the implementations, not the
            // priorities.
            "global_defs {{\n  router_id bench{priority}\n  vrrp_rt_priority {rt}\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int {}\n  version {v}\n  garp_master_repeat 1\n  virtual_ipaddress {{\n    10.77.0.100/24\n  }}\n}}\n",
            case.interval.as_secs_f64(),
            rt = lbd::config::Node::DEFAULT_VRRP_REALTIME_PRIORITY,
        ),
    }
}

/// Starts `daemon` on node `node` with `priority`; its config and log are named after `tag`.
pub fn start(
    lab: &Lab,
    args: &Args,
    daemon: Daemon,
    case: &Case,
    node: usize,
    priority: u8,
    tag: &str,
) -> Result<Child, String> {
    let base = lab.dir.join(format!("{}-{tag}-n{node}", daemon.name()));
    let log = File::create(base.with_extension("log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let cfg = base.with_extension(if daemon == Daemon::Lbd {
        "toml"
    } else {
        "conf"
    });
    std::fs::write(&cfg, config(daemon, case, priority)).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.node(node)]);
    match daemon {
        Daemon::Lbd => {
            cmd.arg(&args.lbd)
                .arg("-c")
                .arg(&cfg)
                .env("LBD_LOG", "warn");
        }
        Daemon::Keepalived => {
            cmd.args(["keepalived", "--vrrp", "-n", "-l", "-f"])
                .arg(&cfg)
                .arg("-p")
                .arg(base.with_extension("pid"))
                .arg("-r")
                .arg(base.with_extension("vrrp.pid"));
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", daemon.name()))
}

/// Polls `f` every 5 ms until it holds or `timeout` has passed; its last answer.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
