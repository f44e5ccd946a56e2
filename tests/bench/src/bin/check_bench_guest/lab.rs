//! The host side: the namespace behind the guest's tap, the reals' listeners, the config
//! server, and booting the guest.

use crate::configs::LBD_IDLE;
use crate::opts::{runs, Opts};
use crate::servers::{serve, Served};
use crate::{BOOT, CONFIG_PORT, GUEST_IP, HOST_IP};
use lbtest::appliance::{ApplianceBuilder, ConfigDir};
use lbtest::ipvs::{boot_with_shell, ShellGuest};
use lbtest::{MacAddr, Netns, Nic, StaticServer};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Every real's address is in here; the namespace answers all of it.
const REALS_NET: &str = "10.201.0.0/16";

/// The host's part of the benchmark, torn down on drop.
pub struct Lab {
    ns: Netns,
    pub configs: ConfigDir,
    _http: StaticServer,
    served: BTreeMap<u16, Arc<Served>>,
}

impl Lab {
    pub fn new(opts: &Opts) -> Result<Lab, String> {
        let e = |e: lbtest::netns::NetnsError| e.to_string();
        let ns = Netns::new("ckbench").map_err(e)?;
        ns.add_bridge("br0").map_err(e)?;
        ns.add_addr("br0", &format!("{HOST_IP}/24")).map_err(e)?;
        ns.add_tap("tap0", Some("br0")).map_err(e)?;
        ns.ip(&["route", "add", "local", REALS_NET, "dev", "lo"])
            .map_err(e)?;
        // Room for bursts of handshakes in the accept queues.
        ns.run(&["sysctl", "-qw", "net.core.somaxconn=8192"])
            .map_err(e)?;
        let mut served = BTreeMap::new();
        for checker in &opts.checkers {
            for kind in &opts.kinds {
                if !runs(*checker, *kind) {
                    continue;
                }
                let port = checker.port(*kind);
                let listener = ns
                    .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
                    .map_err(e)?
                    .map_err(|err| format!("listen on port {port}: {err}"))?;
                let s = Arc::new(Served::default());
                serve(&ns, listener, *kind, s.clone())?;
                served.insert(port, s);
            }
        }
        let configs = ConfigDir::new().map_err(|err| format!("config dir: {err}"))?;
        configs
            .publish("lb.toml", LBD_IDLE)
            .map_err(|err| format!("lb.toml: {err}"))?;
        let http = StaticServer::start_in(&ns, configs.path(), HOST_IP.into(), CONFIG_PORT)
            .map_err(|err| err.to_string())?;
        Ok(Lab {
            ns,
            configs,
            _http: http,
            served,
        })
    }

    /// (accepted, answered) so far on `port`.
    pub fn served(&self, port: u16) -> (u64, u64) {
        let s = &self.served[&port];
        (
            s.accepted.load(Ordering::Relaxed),
            s.answered.load(Ordering::Relaxed),
        )
    }

    pub fn boot(&self) -> Result<ShellGuest, String> {
        boot_with_shell(
            ApplianceBuilder::new("check-bench")
                .nic(Nic::tap("tap0", MacAddr::local(0x00c4_b001)))
                .netns(&self.ns)
                .append(format!(
                    "ip={GUEST_IP}::{HOST_IP}:255.255.255.0:ckbench:eth0:off"
                ))
                .config_url(format!("http://{HOST_IP}:{CONFIG_PORT}/lb.toml"))
                .poll("1s"),
            BOOT,
        )
    }
}
