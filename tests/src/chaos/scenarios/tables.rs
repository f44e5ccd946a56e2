//! The balancers' IPVS tables as `ipvsadm -Ln` lists them, and waiting for them to hold a
//! config's services.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::STEP;
use crate::chaos::lab::{Layout, Services, VIP};
use crate::chaos::Chaos;

/// `ipvsadm -Ln`'s destinations: (service, real, weight).
fn destinations(listing: &str) -> BTreeSet<(String, String, u32)> {
    let mut out = BTreeSet::new();
    let mut service = String::new();
    for line in listing.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["TCP" | "UDP" | "SCTP", addr, ..] => service = addr.to_string(),
            ["->", real, _forward, weight, ..]
                if real.contains(':') && *real != "RemoteAddress:Port" =>
            {
                if let Ok(weight) = weight.parse() {
                    out.insert((service.clone(), real.to_string(), weight));
                }
            }
            _ => {}
        }
    }
    out
}

/// What `services` should look like in `ipvsadm -Ln` (all reals healthy).
fn expected_destinations(services: &Services, layout: Layout) -> BTreeSet<(String, String, u32)> {
    let mut out = BTreeSet::new();
    for (port, reals) in [(80, &services.web), (9000, &services.echo)] {
        for &(i, weight) in reals {
            out.insert((
                format!("{VIP}:{port}"),
                format!("{}:{port}", crate::chaos::lab::REALS[i].addr_in(layout)),
                weight,
            ));
        }
    }
    out
}

fn ipvs_listing(c: &mut Chaos, who: usize) -> Result<String, String> {
    c.pair[who].sh("ipvsadm -Ln")
}

/// Waits until both balancers' tables hold `services`.
pub(super) fn wait_tables(c: &mut Chaos, services: &Services) -> Result<Duration, String> {
    let want = expected_destinations(services, c.lab.setup.layout);
    let started = Instant::now();
    let mut last = Vec::new();
    let ok = crate::wait::until(STEP, Duration::from_millis(300), || {
        last.clear();
        for who in 0..2 {
            match ipvs_listing(c, who) {
                Ok(l) => last.push(destinations(&l)),
                Err(_) => return false,
            }
        }
        last.iter().all(|d| *d == want)
    });
    ok.map(|_| started.elapsed())
        .ok_or_else(|| format!("the tables did not become {want:?} within {STEP:?}: {last:?}"))
}

pub(super) fn echo_destinations(
    c: &mut Chaos,
    who: usize,
) -> Result<BTreeSet<(String, String, u32)>, String> {
    let echo = format!("{VIP}:9000");
    Ok(destinations(&ipvs_listing(c, who)?)
        .into_iter()
        .filter(|(s, _, _)| *s == echo)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_come_from_ipvsadm_listings() {
        let l = "IP Virtual Server version 1.2.1 (size=4096)\n\
                 Prot LocalAddress:Port Scheduler Flags\n\
                   -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                 TCP  10.72.0.100:80 wrr\n\
                   -> 10.72.0.21:80                Route   1      0          3\n\
                   -> 10.72.0.22:80                Route   0      0          0\n\
                 TCP  10.72.0.100:9000 wrr\n\
                   -> 10.72.0.21:9000              Route   1      4          0\n\
                   -> 10.72.0.22:9000              Route   1      4          0\n";
        let d = destinations(l);
        assert_eq!(d.len(), 4);
        assert!(d.contains(&("10.72.0.100:80".into(), "10.72.0.22:80".into(), 0)));
        let mut want = expected_destinations(&Services::default(), Layout::Dr);
        assert_ne!(d, want);
        want.remove(&("10.72.0.100:80".into(), "10.72.0.22:80".into(), 1));
        want.insert(("10.72.0.100:80".into(), "10.72.0.22:80".into(), 0));
        assert_eq!(d, want);
    }
}
