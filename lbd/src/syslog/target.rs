//! Where remote logs go: `udp://ADDR[:PORT]` or `tcp://ADDR[:PORT]` (default port 514), from
//! the kernel command line (`lb.syslog=...`, read by init and lbd alike) or the config's
//! `[node.syslog]`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Transport to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426: one message per datagram.
    Udp,
    /// RFC 6587 octet counting: `LEN SP MSG`.
    Tcp,
}

/// A remote syslog collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The kernel command line key.
pub const CMDLINE_KEY: &str = "lb.syslog";

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid syslog target {s:?}: write udp://192.0.2.5:514 or tcp://[2001:db8::5]:514 (addresses only)"
            )
        };
        let (transport, rest) = match s.split_once("://") {
            Some(("udp", r)) => (Transport::Udp, r),
            Some(("tcp", r)) => (Transport::Tcp, r),
            Some(_) => return Err(bad()),
            None => (Transport::Udp, s),
        };
        let rest = rest.trim_end_matches('/');
        let addr = if let Ok(a) = rest.parse::<SocketAddr>() {
            a
        } else if let Ok(ip) = rest
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            SocketAddr::new(ip, 514)
        } else {
            return Err(bad());
        };
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(bad());
        }
        Ok(Target { transport, addr })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{t}://{}", self.addr)
    }
}

/// The `lb.syslog=` of a kernel command line (the last one wins, as for kernel parameters):
/// None when absent, an error text when malformed.
pub fn from_cmdline(cmdline: &str) -> Option<Result<Target, String>> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.trim_matches('"').strip_prefix("lb.syslog="))
        .map(|v| v.parse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let t: Target = "udp://192.0.2.5:514".parse().unwrap();
        assert_eq!(t.transport, Transport::Udp);
        assert_eq!(t.addr, "192.0.2.5:514".parse().unwrap());
        let t: Target = "tcp://[2001:db8::5]:6514".parse().unwrap();
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(t.to_string(), "tcp://[2001:db8::5]:6514");
        assert_eq!("192.0.2.5".parse::<Target>().unwrap().addr.port(), 514);
        assert_eq!(
            "tcp://[2001:db8::5]".parse::<Target>().unwrap().addr.port(),
            514
        );
        assert!("http://192.0.2.5".parse::<Target>().is_err());
        assert!("udp://loghost:514".parse::<Target>().is_err());
        assert!("udp://0.0.0.0:514".parse::<Target>().is_err());
        assert!("udp://192.0.2.5:0".parse::<Target>().is_err());
    }

    #[test]
    fn cmdline() {
        assert_eq!(from_cmdline("console=ttyS0 ip=dhcp"), None);
        let t = from_cmdline("lb.syslog=udp://10.0.0.1 quiet lb.syslog=tcp://10.0.0.2:601")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_string(), "tcp://10.0.0.2:601");
        assert!(from_cmdline("lb.syslog=nonsense").unwrap().is_err());
    }
}
