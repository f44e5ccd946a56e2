//! The checks' own namespace behind a veth pair, both ends receiving in threaded NAPI, and the
//! counters and kernel threads of that pair.

use crate::netns::{ip, Netns};
use std::process::Command;

/// The checks' own namespace, joined to the servers' by a veth pair whose two ends receive
/// in threaded NAPI (see the module docs).
pub struct VethClient {
    pub ns: Netns,
    /// The servers' namespace (owned by the caller).
    servers: String,
    /// The end in the client namespace.
    pub dev: String,
    /// The end in the servers' namespace.
    pub peer: String,
}

impl VethClient {
    pub fn new(servers: &Netns, queues: u32) -> Result<VethClient, String> {
        let run = ip;
        let ns = Netns {
            name: format!("{}-c", servers.name),
        };
        run(&["netns", "add", &ns.name])?;
        let id = std::process::id();
        let (dev, peer) = (format!("lbc{id}"), format!("lbs{id}"));
        let queues = queues.to_string();
        run(&[
            "-n",
            &ns.name,
            "link",
            "add",
            &dev,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "netns",
            &servers.name,
        ])?;
        run(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        run(&["-n", &ns.name, "link", "set", &dev, "up"])?;
        run(&["-n", &servers.name, "link", "set", &peer, "up"])?;
        run(&["-n", &ns.name, "addr", "add", "10.199.0.1/30", "dev", &dev])?;
        run(&[
            "-n",
            &servers.name,
            "addr",
            "add",
            "10.199.0.2/30",
            "dev",
            &peer,
        ])?;
        run(&[
            "-n",
            &ns.name,
            "route",
            "add",
            "10.200.0.0/16",
            "via",
            "10.199.0.2",
        ])?;
        for (side, d) in [(&ns, &dev), (servers, &peer)] {
            receive_in_napi_thread(side, d)?;
        }
        Ok(VethClient {
            ns,
            servers: servers.name.clone(),
            dev,
            peer,
        })
    }

    /// Packets the two ends dropped on transmit so far (the peer's ring was full).
    pub fn drops(&self) -> u64 {
        tx_dropped(&self.ns.name, &self.dev) + tx_dropped(&self.servers, &self.peer)
    }
}

/// Makes `dev` (in `side`) receive in its own NAPI kernel thread.
fn receive_in_napi_thread(side: &Netns, dev: &str) -> Result<(), String> {
    // veth hands a packet to the peer's NAPI only with GRO on the receiver and no TSO on the
    // sender; otherwise it is processed in the sender's context.
    side.in_thread(|| {
        ethtool_set(dev, ETHTOOL_SGRO, true)?;
        ethtool_set(dev, ETHTOOL_STSO, false)
    })??;
    // /sys/class/net shows the devices of the namespace that mounted /sys: write from
    // `ip netns exec`, which mounts the namespace's own.
    let st = Command::new("ip")
        .args(["netns", "exec", &side.name, "sh", "-c"])
        .arg(format!("echo 1 > /sys/class/net/{dev}/threaded"))
        .status()
        .map_err(|e| format!("threaded NAPI on {dev}: {e}"))?;
    if !st.success() {
        return Err(format!("threaded NAPI on {dev}: {st}"));
    }
    Ok(())
}

/// `ip -s link`'s transmit "dropped" counter of `dev` in namespace `ns`.
fn tx_dropped(ns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "link", "show", "dev", dev])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("TX:") {
            // bytes packets errors dropped ...
            return lines
                .next()
                .and_then(|v| v.split_whitespace().nth(3)?.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGRO: u32 = 0x2c;

/// One of ethtool's legacy on/off settings (`ethtool -K`), on this thread's namespace.
fn ethtool_set(dev: &str, cmd: u32, on: bool) -> Result<(), String> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let mut value = EthtoolValue {
        cmd,
        data: on as u32,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    if dev.len() >= libc::IFNAMSIZ {
        return Err(format!("{dev}: name too long"));
    }
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: a datagram socket for the ioctl, closed below; `req` and `value` outlive it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let r = libc::ioctl(fd, libc::SIOCETHTOOL, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(format!("ethtool {cmd:#x} on {dev}: {err}"));
        }
    }
    Ok(())
}

/// The kernel threads that run `dev`'s threaded NAPI (`napi/<dev>-<id>`, one per queue): the
/// paths of their stat files.
pub fn napi_threads(dev: &str) -> Result<Vec<String>, String> {
    let prefix = format!("napi/{dev}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with(&prefix) {
            found.push(entry.path().join("stat").display().to_string());
        }
    }
    if found.is_empty() {
        return Err(format!("no NAPI thread for {dev}"));
    }
    Ok(found)
}
