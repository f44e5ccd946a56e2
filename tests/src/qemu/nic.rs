//! The guest's NICs: MAC addresses, QEMU's user networking (with port forwards, TFTP and a
//! boot file) and tap devices, as QEMU command-line options.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered address in QEMU's `52:54:00` range, numbered by `n`.
    pub fn local(n: u32) -> Self {
        let b = n.to_be_bytes();
        MacAddr([0x52, 0x54, 0x00, b[1], b[2], b[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("MAC address {s:?} must have 6 octets"));
        }
        let mut b = [0u8; 6];
        for (o, p) in b.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16)
                .map_err(|_| format!("MAC address {s:?}: {p:?} is not a hex octet"))?;
        }
        Ok(MacAddr(b))
    }
}

/// Transport protocol of a forwarded port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A user-networking port forward from the host into the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFwd {
    /// Protocol.
    pub proto: Proto,
    /// Host address to listen on (loopback by default, so tests stay local).
    pub host_addr: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// Guest address (`None`: the guest's DHCP address).
    pub guest_addr: Option<Ipv4Addr>,
    /// Guest port.
    pub guest_port: u16,
}

impl HostFwd {
    pub(super) fn qemu_value(&self) -> String {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        let guest = self.guest_addr.map(|a| a.to_string()).unwrap_or_default();
        format!(
            "{proto}:{}:{}-{guest}:{}",
            self.host_addr, self.host_port, self.guest_port
        )
    }
}

/// QEMU user networking (slirp): the guest gets 10.0.2.15 by DHCP, the host is 10.0.2.2.
/// Fine for one guest talking to the host; passes no multicast between guests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserNet {
    hostfwd: Vec<HostFwd>,
    guestfwd: Vec<String>,
    tftp: Option<PathBuf>,
    bootfile: Option<String>,
    net: Option<String>,
    restrict: bool,
}

impl UserNet {
    /// Default user networking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forwards TCP `127.0.0.1:host_port` on the host to `guest_port` in the guest.
    pub fn hostfwd_tcp(self, host_port: u16, guest_port: u16) -> Self {
        self.hostfwd(HostFwd {
            proto: Proto::Tcp,
            host_addr: Ipv4Addr::LOCALHOST,
            host_port,
            guest_addr: None,
            guest_port,
        })
    }

    /// Adds a port forward.
    pub fn hostfwd(mut self, fwd: HostFwd) -> Self {
        self.hostfwd.push(fwd);
        self
    }

    /// Adds a guest forward in QEMU's syntax, e.g. `tcp:10.0.2.100:80-tcp:127.0.0.1:8080`
    /// (connections from the guest to 10.0.2.100:80 reach the host's 127.0.0.1:8080).
    pub fn guestfwd(mut self, spec: impl Into<String>) -> Self {
        self.guestfwd.push(spec.into());
        self
    }

    /// Serves `dir` with QEMU's built-in TFTP server at 10.0.2.2.
    pub fn tftp(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tftp = Some(dir.into());
        self
    }

    /// The boot file name QEMU's DHCP server offers (for PXE: a path under the TFTP root, or a
    /// URL such as `http://10.0.2.2:8080/boot.ipxe` for iPXE).
    pub fn bootfile(mut self, name: impl Into<String>) -> Self {
        self.bootfile = Some(name.into());
        self
    }

    /// The guest network, e.g. `10.0.2.0/24` (QEMU's default).
    pub fn net(mut self, cidr: impl Into<String>) -> Self {
        self.net = Some(cidr.into());
        self
    }

    /// Isolates the guest from the host's network (forwards still work).
    pub fn restrict(mut self, on: bool) -> Self {
        self.restrict = on;
        self
    }

    pub(super) fn qemu_options(&self) -> String {
        let mut opts = String::new();
        if let Some(net) = &self.net {
            opts += &format!(",net={}", escape(net));
        }
        if self.restrict {
            opts += ",restrict=on";
        }
        if let Some(dir) = &self.tftp {
            opts += &format!(",tftp={}", escape(&dir.to_string_lossy()));
        }
        if let Some(file) = &self.bootfile {
            opts += &format!(",bootfile={}", escape(file));
        }
        for f in &self.hostfwd {
            opts += &format!(",hostfwd={}", f.qemu_value());
        }
        for g in &self.guestfwd {
            opts += &format!(",guestfwd={}", escape(g));
        }
        opts
    }
}

/// What a NIC is connected to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// QEMU user networking.
    User(UserNet),
    /// An existing tap device (created in the guest's network namespace, e.g. by
    /// [`Netns::add_tap`]).
    Tap {
        /// The tap's interface name.
        ifname: String,
    },
    /// A cable to one NIC of another guest: QEMU's datagram sockets on two Unix paths, this
    /// end bound to `local`, sending to `remote` (the other end swaps them). Frames pass
    /// unchanged, LACPDUs included, which a Linux bridge never forwards.
    Wire {
        /// This end's socket (created by QEMU; must not exist).
        local: PathBuf,
        /// The other end's socket.
        remote: PathBuf,
    },
}

/// A guest network card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    /// What it connects to.
    pub backend: NetBackend,
    /// The QEMU device model (default `virtio-net-pci`).
    pub model: String,
    /// The MAC address (default: QEMU's choice).
    pub mac: Option<MacAddr>,
    /// An option ROM for PXE (default: QEMU's iPXE ROM for the model).
    pub romfile: Option<PathBuf>,
}

impl Nic {
    /// A virtio NIC on user networking.
    pub fn user(net: UserNet) -> Self {
        Self {
            backend: NetBackend::User(net),
            model: "virtio-net-pci".into(),
            mac: None,
            romfile: None,
        }
    }

    /// A virtio NIC on the tap `ifname` with address `mac`.
    pub fn tap(ifname: impl Into<String>, mac: MacAddr) -> Self {
        Self {
            backend: NetBackend::Tap {
                ifname: ifname.into(),
            },
            model: "virtio-net-pci".into(),
            mac: Some(mac),
            romfile: None,
        }
    }

    /// Uses another device model, e.g. `e1000`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Uses `rom` as the NIC's option ROM.
    pub fn romfile(mut self, rom: impl Into<PathBuf>) -> Self {
        self.romfile = Some(rom.into());
        self
    }

    /// A virtio NIC on a [`NetBackend::Wire`]: the two ends of a cable are
    /// `wire(a, b, mac1)` and `wire(b, a, mac2)`.
    pub fn wire(local: impl Into<PathBuf>, remote: impl Into<PathBuf>, mac: MacAddr) -> Self {
        Self {
            backend: NetBackend::Wire {
                local: local.into(),
                remote: remote.into(),
            },
            // virtio reports no speed unless told, and 802.3ad aggregates only ports that
            // have one ("failed to get link speed/duplex").
            model: "virtio-net-pci,speed=10000,duplex=full".into(),
            mac: Some(mac),
            romfile: None,
        }
    }

    pub(super) fn qemu_args(&self, index: usize) -> [String; 4] {
        let id = format!("n{index}");
        let netdev = match &self.backend {
            NetBackend::User(u) => format!("user,id={id}{}", u.qemu_options()),
            NetBackend::Tap { ifname } => format!(
                "tap,id={id},ifname={},script=no,downscript=no",
                escape(ifname)
            ),
            NetBackend::Wire { local, remote } => format!(
                "dgram,id={id},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                escape(&local.to_string_lossy()),
                escape(&remote.to_string_lossy())
            ),
        };
        let mut device = format!("{},netdev={id}", self.model);
        if let Some(mac) = self.mac {
            device += &format!(",mac={mac}");
        }
        if let Some(rom) = &self.romfile {
            device += &format!(",romfile={}", escape(&rom.to_string_lossy()));
        }
        ["-netdev".into(), netdev, "-device".into(), device]
    }
}

/// Doubles commas, QEMU's escape inside option values.
pub(super) fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wire_is_a_pair_of_datagram_sockets() {
        let nic = Nic::wire(
            "/tmp/a.sock",
            "/tmp/b.sock",
            MacAddr([0x52, 0x54, 0, 0, 0, 1]),
        );
        let args = nic.qemu_args(2);
        assert_eq!(
            args[1],
            "dgram,id=n2,local.type=unix,local.path=/tmp/a.sock,remote.type=unix,remote.path=/tmp/b.sock"
        );
        assert_eq!(
            args[3],
            "virtio-net-pci,speed=10000,duplex=full,netdev=n2,mac=52:54:00:00:00:01"
        );
    }
}
