//! What the kernel's IPVS knows a service by: scheduler, forwarding, protocol, flags, and
//! what lbd does with entries no config owns.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// IPVS schedulers, as the kernel names them (`ip_vs_<name>` modules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Mh,
    Fo,
    Ovf,
}

impl Scheduler {
    pub const ALL: [Scheduler; 13] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Mh,
        Scheduler::Fo,
        Scheduler::Ovf,
    ];

    /// The name the kernel uses (IPVS_SVC_ATTR_SCHED_NAME).
    pub fn kernel_name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
        }
    }

    /// Whether the scheduler takes real-server weights into account.
    pub fn uses_weights(self) -> bool {
        !matches!(
            self,
            Scheduler::Rr | Scheduler::Lc | Scheduler::Dh | Scheduler::Sh
        )
    }
}

impl FromStr for Scheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scheduler::ALL
            .into_iter()
            .find(|x| x.kernel_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Scheduler::ALL.iter().map(|x| x.kernel_name()).collect();
                format!("unknown scheduler {s:?}: use one of {}", names.join(", "))
            })
    }
}
deserialize_via_from_str!(Scheduler, "an IPVS scheduler name such as \"wlc\"");

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.kernel_name())
    }
}

/// How IPVS forwards packets to a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Masquerading: destination NAT; replies must come back through the balancer.
    Nat,
    /// Direct routing ("gatewaying"): the real holds the VIP on a non-ARPing interface.
    Dr,
    /// IP-in-IP tunnelling.
    Tun,
}

impl FromStr for Forwarding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(s));
        match () {
            _ if is(&["nat", "masq", "masquerade"]) => Ok(Forwarding::Nat),
            _ if is(&["dr", "gate", "direct", "route"]) => Ok(Forwarding::Dr),
            _ if is(&["tun", "ipip", "tunnel"]) => Ok(Forwarding::Tun),
            _ => Err(format!(
                "unknown forwarding method {s:?}: use \"nat\" (masquerading), \"dr\" (direct routing) or \"tun\" (IP-in-IP)"
            )),
        }
    }
}
deserialize_via_from_str!(Forwarding, "a forwarding method: nat, dr or tun");

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tun => "tun",
        })
    }
}

/// Transport protocol of an address-based virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(format!(
                "unknown protocol {s:?}: use \"tcp\", \"udp\" or \"sctp\""
            )),
        }
    }
}
deserialize_via_from_str!(Protocol, "tcp, udp or sctp");

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}
/// IPVS service flags an operator can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceFlag {
    /// `sh` / `mh`: pick another real when the hashed one is unavailable (weight 0).
    ShFallback,
    /// `sh` / `mh`: include the source port in the hash.
    ShPort,
    /// UDP: schedule every datagram independently (one-packet scheduling, "ops").
    OnePacket,
}

impl FromStr for ServiceFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "sh-fallback" | "mh-fallback" => Ok(ServiceFlag::ShFallback),
            "sh-port" | "mh-port" => Ok(ServiceFlag::ShPort),
            "one-packet" | "ops" => Ok(ServiceFlag::OnePacket),
            _ => Err(format!(
                "unknown service flag {s:?}: use \"sh-fallback\", \"sh-port\" or \"one-packet\""
            )),
        }
    }
}
deserialize_via_from_str!(ServiceFlag, "a service flag");
/// What lbd does with kernel IPVS entries that no config service owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnmanagedPolicy {
    /// Leave them alone (another tool may own them).
    #[default]
    Keep,
    /// Delete them: lbd owns the whole table.
    Remove,
}

impl FromStr for UnmanagedPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "keep" => Ok(UnmanagedPolicy::Keep),
            "remove" => Ok(UnmanagedPolicy::Remove),
            _ => Err(format!(
                "unknown policy {s:?}: use \"keep\" (leave entries this config does not own) or \"remove\""
            )),
        }
    }
}
deserialize_via_from_str!(UnmanagedPolicy, "keep or remove");

/// How a service's VIP reaches the routers in front of the balancers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    /// A VRRP instance holds the VIP: one balancer of a pair serves it at a time.
    #[default]
    Vrrp,
    /// Every balancer that can serve the VIP announces it by BGP (N-way, behind ECMP).
    Bgp,
}

impl FromStr for Announce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vrrp" => Ok(Announce::Vrrp),
            "bgp" => Ok(Announce::Bgp),
            _ => Err(format!(
                "unknown announce {s:?}: use \"vrrp\" (a VRRP pair holds the VIP) or \"bgp\" (every balancer announces it by BGP)"
            )),
        }
    }
}
deserialize_via_from_str!(Announce, "vrrp or bgp");

impl fmt::Display for Announce {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Announce::Vrrp => "vrrp",
            Announce::Bgp => "bgp",
        })
    }
}
