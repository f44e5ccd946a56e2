//! Building the lab: the namespaces, bridges and taps, the reals, the client, the config
//! server and the observers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{
    Lab, Layout, NeighWatch, RealServer, Services, Setup, CLIENT, CLIENT6, CONFIG_PORT, GATEWAY,
    MEMBERS, REALS, REAL_SERVER, SERVER, VIP, VIP6,
};
use crate::config_server::ConfigServer;
use crate::netns::Netns;
use crate::wire::Observer;

impl Lab {
    /// Sets up the segment (and the inside one for NAT), starts the reals, the config server
    /// and the observer, and publishes the first configs (serial 1, [`Services::default`]).
    pub fn start(setup: Setup) -> Result<Lab, String> {
        let dir = tempfile::Builder::new()
            .prefix("lbtest-chaos-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let key = crate::operator_keys::keypair(dir.path(), "operator");
        for sub in ["configs", "health"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let ns = Netns::new("chaos").map_err(|e| e.to_string())?;
        ns.add_flooding_bridge("br0").map_err(|e| e.to_string())?;
        ns.add_addr("br0", &format!("{SERVER}/24"))
            .map_err(|e| e.to_string())?;
        for m in &MEMBERS {
            ns.add_tap(m.tap, Some("br0")).map_err(|e| e.to_string())?;
        }
        let reals_bridge = match setup.layout {
            Layout::Dr => "br0",
            Layout::Nat => {
                ns.add_flooding_bridge("br1").map_err(|e| e.to_string())?;
                for m in &MEMBERS {
                    ns.add_tap(m.inside_tap, Some("br1"))
                        .map_err(|e| e.to_string())?;
                }
                "br1"
            }
        };
        let mut real_ns = Vec::new();
        let mut reals = Vec::new();
        for r in &REALS {
            let rns = Netns::new(&format!("chaos-{}", r.name)).map_err(|e| e.to_string())?;
            let host_end = format!("v{}", r.name);
            ns.add_veth_to(&host_end, &rns, "eth0")
                .and_then(|()| ns.set_master(&host_end, reals_bridge))
                .and_then(|()| rns.add_addr("eth0", &format!("{}/24", r.addr_in(setup.layout))))
                .map_err(|e| e.to_string())?;
            match setup.layout {
                Layout::Dr => rns
                    .hold_dr_vips(&[IpAddr::V4(VIP)])
                    .map_err(|e| e.to_string())?,
                // NAT: replies go back through whoever holds the gateway VIP.
                Layout::Nat => rns
                    .ip(&["route", "add", "default", "via", &GATEWAY.to_string()])
                    .map(|_| ())
                    .map_err(|e| e.to_string())?,
            }
            let down = dir.path().join("health").join(r.name);
            let down = down.to_string_lossy();
            reals.push(
                rns.spawn(&["python3", "-c", REAL_SERVER, r.name, &down])
                    .map_err(|e| e.to_string())?,
            );
            real_ns.push(rns);
        }
        let client = Netns::new("chaos-client").map_err(|e| e.to_string())?;
        ns.add_veth_to("vclient", &client, "eth0")
            .and_then(|()| ns.set_master("vclient", "br0"))
            .and_then(|()| client.add_addr("eth0", &format!("{CLIENT}/24")))
            .and_then(|()| {
                client
                    .ip(&[
                        "-6",
                        "addr",
                        "add",
                        &format!("{CLIENT6}/64"),
                        "dev",
                        "eth0",
                        "nodad",
                    ])
                    .map(|_| ())
            })
            .map_err(|e| e.to_string())?;
        let server = ConfigServer::start_in(
            &ns,
            SocketAddr::new(IpAddr::V4(SERVER), CONFIG_PORT),
            &dir.path().join("configs"),
        )
        .map_err(|e| e.to_string())?;
        let observer = Observer::start(&ns, "br0").map_err(|e| e.to_string())?;
        let client_port = Observer::start(&ns, "vclient").map_err(|e| e.to_string())?;
        let neigh = NeighWatch::start(&client, VIP, Some(VIP6))?;
        let gateway_neigh = match setup.layout {
            Layout::Dr => None,
            Layout::Nat => Some(NeighWatch::start(&real_ns[0], GATEWAY, None)?),
        };
        let mut lab = Lab {
            observer,
            client_port,
            neigh,
            gateway_neigh,
            _reals: reals,
            server,
            client,
            _real_ns: real_ns,
            ns,
            dir,
            key,
            serials: [0; 2],
            priorities: [None; 2],
            setup,
        };
        lab.wait_reals()?;
        lab.publish_all(&Services::default())?;
        Ok(lab)
    }

    /// The reals answer directly (before any VIP exists): the client asks the DR reals, each
    /// NAT real (out of the client's reach) answers itself.
    fn wait_reals(&self) -> Result<(), String> {
        for (r, rns) in REALS.iter().zip(&self._real_ns) {
            let from = match self.setup.layout {
                Layout::Dr => &self.client,
                Layout::Nat => rns,
            };
            from.enter(|| self.wait_real(r))
                .map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    fn wait_real(&self, r: &RealServer) -> Result<(), String> {
        let addr = SocketAddr::new(IpAddr::V4(r.addr_in(self.setup.layout)), 80);
        let mut last = None;
        let ok = crate::wait::until(Duration::from_secs(30), Duration::from_millis(100), || {
            let got = crate::chaos::load::http_get(addr, Duration::from_secs(1));
            let ok = matches!(&got, Ok(name) if name == r.name);
            last = Some(got);
            ok
        });
        match ok {
            Some(_) => Ok(()),
            None => Err(format!(
                "real {} at {addr} does not answer: {last:?}",
                r.name
            )),
        }
    }
}
