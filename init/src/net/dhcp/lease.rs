//! The one DHCP lease type: what a DHCPACK granted ([`crate::net::dhcp::message::parse_ack`]
//! reads it), with the times the client keeps it by.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// An address lease and everything the server told us with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The server that granted it (option 54, else the server of the offer); renewals are
    /// unicast to it.
    pub server: Ipv4Addr,
    /// Option 3, in the server's order of preference.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// `siaddr` when not 0.0.0.0: the next server in the boot process (TFTP).
    pub next_server: Option<Ipv4Addr>,
    /// Option 66, else the `sname` header field.
    pub tftp_server_name: Option<String>,
    /// Option 67, else the `file` header field.
    pub bootfile: Option<String>,
    /// Option 51: the lease duration (after [`Lease::capped`], the client's cap); `None` =
    /// infinite.
    pub lease_time: Option<Duration>,
    /// Option 58: renewal time, from `obtained_at`; `None` for an infinite lease.
    pub t1: Option<Duration>,
    /// Option 59: rebinding time, from `obtained_at`; `None` for an infinite lease.
    pub t2: Option<Duration>,
    /// When the REQUEST that obtained it was first sent: lease times count from there
    /// (RFC 2131 4.4.1), so we never believe we hold it longer than the server does.
    pub obtained_at: Instant,
}

impl Lease {
    /// T1: when to start renewing.
    pub fn renew_at(&self) -> Option<Instant> {
        self.t1.map(|t| self.obtained_at + t)
    }
    /// T2: when to start rebinding.
    pub fn rebind_at(&self) -> Option<Instant> {
        self.t2.map(|t| self.obtained_at + t)
    }
    /// When the address must be dropped.
    pub fn expires_at(&self) -> Option<Instant> {
        self.lease_time.map(|t| self.obtained_at + t)
    }
    /// Time left at `now`; `None` for an infinite lease.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at().map(|e| e.saturating_duration_since(now))
    }

    /// This lease with the cap applied and T1 < T2 < lease enforced (see [`lease_times`]).
    pub fn capped(mut self, cap: Option<Duration>) -> Self {
        let (lease_time, t1, t2) = lease_times(self.lease_time, self.t1, self.t2, cap);
        self.lease_time = lease_time;
        self.t1 = t1;
        self.t2 = t2;
        self
    }
}

/// Effective (lease, T1, T2): the cap applied, T1 < T2 < lease enforced with the RFC defaults
/// (T1 = lease/2, T2 = lease*7/8) replacing missing or inconsistent server values.
pub fn lease_times(
    lease: Option<Duration>,
    t1: Option<Duration>,
    t2: Option<Duration>,
    cap: Option<Duration>,
) -> (Option<Duration>, Option<Duration>, Option<Duration>) {
    let (lease, capped) = match (lease, cap) {
        (None, Some(cap)) => (Some(cap), true),
        (Some(l), Some(cap)) if l > cap => (Some(cap), true),
        (l, _) => (l, false),
    };
    let Some(lease) = lease else {
        return (None, None, None);
    };
    let default_t1 = lease / 2;
    let default_t2 = lease * 7 / 8;
    if capped {
        return (Some(lease), Some(default_t1), Some(default_t2));
    }
    let t2 = t2.filter(|t| *t < lease).unwrap_or(default_t2);
    let t1 = t1.filter(|t| *t <= t2).unwrap_or(default_t1.min(t2));
    (Some(lease), Some(t1), Some(t2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_time_rules() {
        let d = |x: u64| Some(Duration::from_secs(x));
        // Server values kept when consistent.
        assert_eq!(
            lease_times(d(100), d(30), d(60), None),
            (d(100), d(30), d(60))
        );
        // Missing T1/T2: RFC defaults.
        assert_eq!(
            lease_times(d(800), None, None, None),
            (d(800), d(400), d(700))
        );
        // T2 beyond the lease, T1 beyond T2: defaults.
        assert_eq!(
            lease_times(d(800), d(900), d(900), None),
            (d(800), d(400), d(700))
        );
        assert_eq!(
            lease_times(d(800), d(650), d(600), None),
            (d(800), d(400), d(600))
        );
        // Infinite.
        assert_eq!(lease_times(None, None, None, None), (None, None, None));
        // Capped (also an infinite lease).
        assert_eq!(lease_times(None, None, None, d(8)), (d(8), d(4), d(7)));
        assert_eq!(lease_times(d(5), d(2), d(3), d(8)), (d(5), d(2), d(3)));
    }
}
