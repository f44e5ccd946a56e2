//! `virtual_server_group`: its members, addresses with a port (ranges and prefixes expanded,
//! IPv4 and IPv6) or firewall marks.

use super::lvs::{VsKey, VsKeys};
use super::{Converted, Converter, Item};
use lbd::config::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

impl Converter<'_> {
    /// A virtual_server_group's members: addresses (ranges expanded) with a port, or firewall
    /// marks.
    pub(super) fn vs_group(&mut self, it: &Item) -> Converted<VsKeys> {
        let mut out = Vec::new();
        for c in self.block(it)? {
            if c.key == "fwmark" {
                let mark = self.int(c, 0, 1, u32::MAX as i64, "a firewall mark")? as u32;
                let family = match c.arg(1) {
                    None => None,
                    Some("inet") => Some(Family::Ipv4),
                    Some("inet6") => Some(Family::Ipv6),
                    Some(other) => {
                        return Err(
                            self.err(c.at, format!("fwmark family {other:?}: use inet or inet6"))
                        )
                    }
                };
                out.push((VsKey::Fwmark(mark, family), c.at));
                continue;
            }
            let port = match c.arg(0) {
                Some(_) => self.port(c, 0)?,
                None => 0,
            };
            let addrs = self.address_range(c)?;
            for a in addrs {
                out.push((VsKey::Addr(a, port), c.at));
            }
        }
        Ok(out)
    }

    /// An address, a range or a prefix: `IP`; `A.B.C.D-E` (the last byte up to E) or
    /// `2001:db8::2-9` (the last group up to 9, in hexadecimal as keepalived reads it);
    /// `FIRST-LAST` with two addresses; `ADDR/LEN`.
    fn address_range(&mut self, c: &Item) -> Converted<Vec<IpAddr>> {
        const MAX: u128 = 256;
        let text = c.key.as_str();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let bad = || {
            self.err(c.at, format!("{text:?} is not an address, an address range (192.0.2.1-10, 2001:db8::1-a) or a prefix (192.0.2.8/29)"))
        };
        let (first, last, v6) = if let Some((a, b)) = text.split_once('-') {
            let first: IpAddr = a.parse().map_err(|_| bad())?;
            let start = ip_number(first);
            let end = match (first, b.parse::<IpAddr>()) {
                (_, Ok(full)) if full.is_ipv6() == first.is_ipv6() => ip_number(full),
                (_, Ok(_)) => return Err(bad()),
                (IpAddr::V4(_), Err(_)) => {
                    let n: u8 = b.parse().map_err(|_| bad())?;
                    (start & !0xff) | u128::from(n)
                }
                (IpAddr::V6(_), Err(_)) => {
                    let n = u16::from_str_radix(b, 16).map_err(|_| bad())?;
                    (start & !0xffff) | u128::from(n)
                }
            };
            (start, end, first.is_ipv6())
        } else if let Some((a, l)) = text.split_once('/') {
            let base: IpAddr = a.parse().map_err(|_| bad())?;
            let bits = if base.is_ipv6() { 128 } else { 32 };
            let len: u32 = l.parse().ok().filter(|n| *n <= bits).ok_or_else(bad)?;
            let all = if bits == 128 {
                u128::MAX
            } else {
                u128::from(u32::MAX)
            };
            let mask = if len == 0 {
                0
            } else {
                (all << (bits - len)) & all
            };
            let start = ip_number(base) & mask;
            (start, start | (all & !mask), base.is_ipv6())
        } else {
            return Err(bad());
        };
        if first > last {
            return Err(self.err(
                c.at,
                format!("address range {text:?} ends before it starts"),
            ));
        }
        if last - first >= MAX {
            self.warn(c.at, format!("address range {text:?} has more than {MAX} addresses: left out (list them, or use a firewall mark)"));
            return Ok(Vec::new());
        }
        Ok((first..=last).map(|n| ip_from_number(n, v6)).collect())
    }
}

/// An address as a number.
fn ip_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of a number ([`ip_number`]'s inverse).
fn ip_from_number(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}
