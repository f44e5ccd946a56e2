//! Virtual services, `[service.NAME]`: what selects their packets (a VIP or a firewall mark),
//! scheduling, persistence, the VRRP instance holding the VIP, each real server with its
//! check, the sorry server and the quorum.

use super::bgp::BgpContext;
use super::check::{NamedChecks, ServiceCheck};
use super::Validator;
use crate::config::model::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use toml::Spanned;

/// What the reals of one service take from it, or are checked against.
struct ServiceDefaults<'a> {
    name: &'a str,
    family: Family,
    /// The service's `forwarding`, for reals that do not set their own.
    forwarding: Forwarding,
    /// `None` for a fwmark service.
    port: Option<u16>,
    check: ServiceCheck,
    /// Where the service's check is written, if it has one.
    check_span: Option<Range<usize>>,
    checks: &'a NamedChecks,
}

impl Validator {
    /// One `[service.NAME]` and its reals; `None` if any of them has an error. The range is
    /// where the service's key (its `vip` or `fwmark`) is written.
    // What a service is checked against comes from four parts of the file; one struct for
    // them would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn service(
        &mut self,
        name: &Spanned<String>,
        s: ServiceSchema,
        reals: Vec<RealSchema>,
        checks: &NamedChecks,
        used_checks: &mut BTreeSet<String>,
        vip_owners: &HashMap<IpAddr, String>,
        bgp: BgpContext,
    ) -> Option<(Service, Range<usize>)> {
        let before = self.error_count();
        let sname = name.get_ref().clone();
        // Named checks count as used even when this service is refused before its checks.
        let refs = s
            .check
            .iter()
            .chain(reals.iter().filter_map(|r| r.check.as_ref()));
        for c in refs {
            if let CheckRef::Named(n) = c.get_ref() {
                used_checks.insert(n.clone());
            }
        }
        let (key, key_span) = self.service_key(name, &s)?;
        let family = key.family();
        let protocol = match key {
            ServiceKey::Addr { protocol, .. } => Some(protocol),
            ServiceKey::Fwmark { .. } => None,
        };
        let (scheduler, flags) = self.scheduler_and_flags(&s, protocol);
        let persistence = self.persistence(s.persistence.as_ref(), family);
        let default_forwarding = s
            .forwarding
            .as_ref()
            .map_or(Forwarding::Nat, |f| *f.get_ref());
        let announce = s.announce.as_ref().map_or(Announce::Vrrp, |a| *a.get_ref());
        let vrrp_instance = self.vip_instance(name, &s, key, vip_owners, announce);
        if announce == Announce::Bgp {
            self.announced_by_bgp(name, &s, key, bgp);
        }
        // The service's check: a named template or inline; reals may override fields.
        let check = self.service_check(name, s.check.as_ref(), checks);
        let service_port = match key {
            ServiceKey::Addr { addr, .. } => Some(addr.port()),
            ServiceKey::Fwmark { .. } => None,
        };
        let defaults = ServiceDefaults {
            name: &sname,
            family,
            forwarding: default_forwarding,
            port: service_port,
            check,
            check_span: s.check.as_ref().map(|c| c.span()),
            checks,
        };
        let mut out_reals: Vec<Real> = Vec::with_capacity(reals.len());
        let mut seen = SeenReals::with_capacity(reals.len());
        for r in &reals {
            if let Some(mut real) = self.real(r, &defaults, &mut seen) {
                // One copy of a check the reals resolve to alike (nearly always all of them).
                if let (Some(c), Some(prev)) = (&real.check, out_reals.last()) {
                    if let Some(p) = prev.check.as_ref().filter(|p| ***p == **c) {
                        real.check = Some(p.clone());
                    }
                }
                out_reals.push(real);
            }
        }
        if out_reals.is_empty() && self.error_count() == before {
            self.warn("no-reals", name.span(), format!("service `{sname}` has no real servers"))
                .help = Some(format!("add [[service.{sname}.real]] entries; until then only the sorry server (if any) answers"));
        }
        let sorry = self.sorry_server(&s, family, default_forwarding, service_port);
        let quorum = self.quorum(&s, key, &out_reals);
        if announce == Announce::Bgp {
            self.bgp_forwarding(name, &s, &out_reals, sorry.as_ref(), default_forwarding);
        }
        let on_failure = s
            .on_failure
            .as_ref()
            .map_or(OnFailure::default(), |o| *o.get_ref());
        if let (Some(o), Scheduler::Mh, OnFailure::Remove) = (&s.on_failure, scheduler, on_failure)
        {
            self.err(
                "mh-on-failure-remove",
                o.span(),
                "on_failure = \"remove\" cannot be used with the mh scheduler: a down real of an mh service stays in the table at weight 0, in its place",
            )
            .help = Some("remove the line (the default is \"inhibit\") and set flags = [\"mh-fallback\"], so the flows of a down real go to the others; removing and adding reals back would reorder the kernel's list, and balancers side by side would then send the same flow to different reals".into());
        }
        if self.error_count() != before {
            return None;
        }
        Some((
            Service {
                name: sname,
                key,
                scheduler,
                flags,
                persistence,
                sorry,
                quorum,
                on_failure,
                vrrp_instance,
                announce,
                reals: out_reals,
            },
            key_span,
        ))
    }

    /// What selects the service's packets, and where that is written: `vip` (address, port
    /// and protocol) or `fwmark` (mark and family), exactly one of them.
    fn service_key(
        &mut self,
        name: &Spanned<String>,
        s: &ServiceSchema,
    ) -> Option<(ServiceKey, Range<usize>)> {
        let sname = name.get_ref();
        let key = match (&s.vip, &s.fwmark) {
            (Some(vip), None) => {
                if let Some(f) = &s.family {
                    let vip_family = Family::of(&vip.get_ref().ip);
                    if *f.get_ref() == vip_family {
                        self.warn(
                            "unused-key",
                            f.span(),
                            "`family` is only for fwmark services; a VIP's address already says it",
                        )
                        .help = Some("remove `family`".into());
                    } else {
                        self.err(
                            "mixed-family",
                            f.span(),
                            format!(
                                "family {} for the {vip_family} VIP {}",
                                f.get_ref(),
                                vip.get_ref().ip
                            ),
                        )
                        .help = Some("a VIP's address decides its family: remove `family`".into());
                    }
                }
                let Some(port) = vip.get_ref().port else {
                    self.err(
                        "missing-port",
                        vip.span(),
                        format!("service `{sname}` VIP {} has no port", vip.get_ref()),
                    )
                    .help =
                        Some("write vip = \"192.0.2.10:80\", or use fwmark for all ports".into());
                    return None;
                };
                let protocol = s.protocol.as_ref().map_or(Protocol::Tcp, |p| *p.get_ref());
                (
                    ServiceKey::Addr {
                        protocol,
                        addr: SocketAddr::new(vip.get_ref().ip, port),
                    },
                    vip.span(),
                )
            }
            (None, Some(mark)) => {
                if let Some(p) = &s.protocol {
                    self.warn(
                        "unused-key",
                        p.span(),
                        "a fwmark service has no protocol: the mark selects the packets, of any protocol",
                    )
                    .help = Some("remove `protocol` (mark only the packets you mean), or use vip = \"ADDR:PORT\"".into());
                }
                let mark_v = self.int_in(
                    mark,
                    1,
                    u32::MAX as i64,
                    "fwmark",
                    "a firewall mark is 1 to 4294967295",
                ) as u32;
                let family = s.family.as_ref().map_or(Family::Ipv4, |f| *f.get_ref());
                (
                    ServiceKey::Fwmark {
                        mark: mark_v,
                        family,
                    },
                    mark.span(),
                )
            }
            (Some(vip), Some(mark)) => {
                self.err(
                    "vip-and-fwmark",
                    mark.span(),
                    format!("service `{sname}` has both `vip` and `fwmark`"),
                )
                .and_related(vip.span(), "vip here")
                .and_help("a service is selected by address:port or by firewall mark, not both");
                return None;
            }
            (None, None) => {
                self.err(
                    "no-vip",
                    name.span(),
                    format!("service `{sname}` has neither `vip` nor `fwmark`"),
                )
                .help = Some("add vip = \"192.0.2.10:80\" (or fwmark = 1)".into());
                return None;
            }
        };
        Some(key)
    }

    /// The scheduler, and the flags that work with it and with the service's protocol
    /// (`None` for a fwmark service).
    fn scheduler_and_flags(
        &mut self,
        s: &ServiceSchema,
        protocol: Option<Protocol>,
    ) -> (Scheduler, BTreeSet<ServiceFlag>) {
        let bgp = s
            .announce
            .as_ref()
            .is_some_and(|a| *a.get_ref() == Announce::Bgp);
        let mut flags = BTreeSet::new();
        let scheduler = match &s.scheduler {
            Some(x) => *x.get_ref(),
            // N-way: every balancer must pick the same real for a flow, by Maglev hashing of
            // the whole 4-tuple, re-hashing the flows of a weight-0 real the same way.
            None if bgp => {
                flags.extend([ServiceFlag::ShPort, ServiceFlag::ShFallback]);
                Scheduler::Mh
            }
            None => Scheduler::Wlc,
        };
        if let (true, Some(x)) = (bgp, &s.scheduler) {
            if *x.get_ref() != Scheduler::Mh {
                self.err(
                    "announce-needs-mh",
                    x.span(),
                    format!(
                        "a service announced by BGP needs the mh scheduler, not {}",
                        x.get_ref()
                    ),
                )
                .help = Some("behind ECMP every balancer must send a flow to the same real: use scheduler = \"mh\" with flags = [\"mh-port\", \"mh-fallback\"], or leave scheduler out (that is the default for announce = \"bgp\")".into());
            }
        }
        for f in &s.flags {
            match f.get_ref() {
                ServiceFlag::ShFallback | ServiceFlag::ShPort
                    if !matches!(scheduler, Scheduler::Sh | Scheduler::Mh) =>
                {
                    self.err(
                        "flag-needs-sh",
                        f.span(),
                        format!(
                            "this flag only works with the sh or mh scheduler, not {scheduler}"
                        ),
                    );
                }
                ServiceFlag::OnePacket if protocol != Some(Protocol::Udp) && protocol.is_some() => {
                    self.err(
                        "flag-needs-udp",
                        f.span(),
                        "one-packet scheduling is for UDP services",
                    )
                    .help = Some("set protocol = \"udp\" or remove the flag".into());
                }
                flag => {
                    flags.insert(*flag);
                }
            }
        }
        (scheduler, flags)
    }

    /// `persistence`: whole seconds, and a netmask that fits the service's family.
    fn persistence(
        &mut self,
        persistence: Option<&PersistenceSchema>,
        family: Family,
    ) -> Option<Persistence> {
        let p = persistence?;
        let timeout = p.timeout.get_ref().0;
        if timeout.subsec_nanos() != 0 || timeout.is_zero() {
            self.err(
                "bad-persistence",
                p.timeout.span(),
                "the persistence timeout is whole seconds, at least 1s",
            );
            return None;
        }
        let prefix_len = match &p.netmask {
            None => family.max_prefix(),
            Some(m) if m.get_ref().dotted && family == Family::Ipv6 => {
                self.err(
                    "bad-netmask",
                    m.span(),
                    "a dotted IPv4 netmask for an IPv6 service",
                )
                .help = Some("write an IPv6 prefix length, e.g. netmask = 64".into());
                return None;
            }
            Some(m) if m.get_ref().len > family.max_prefix() => {
                self.err(
                    "bad-netmask",
                    m.span(),
                    format!("prefix length {} is too long for {family}", m.get_ref().len),
                )
                .help = Some(format!("use 0 to {}", family.max_prefix()));
                return None;
            }
            Some(m) => m.get_ref().len,
        };
        Some(Persistence {
            timeout,
            prefix_len,
        })
    }

    /// The VRRP instance that holds an address service's VIP; there must be one, unless the
    /// VIP is announced by BGP: then there must be none.
    fn vip_instance(
        &mut self,
        name: &Spanned<String>,
        s: &ServiceSchema,
        key: ServiceKey,
        vip_owners: &HashMap<IpAddr, String>,
        announce: Announce,
    ) -> Option<String> {
        let sname = name.get_ref();
        match key {
            ServiceKey::Addr { addr, .. } if announce == Announce::Bgp => {
                if let Some(owner) = vip_owners.get(&addr.ip()) {
                    let vip_span = s.vip.as_ref().map(|v| v.span()).unwrap_or(name.span());
                    self.err(
                        "bgp-vip-in-vrrp",
                        vip_span,
                        format!(
                            "VIP {} of service `{sname}` is announced by BGP but VRRP instance `{owner}` also holds it",
                            addr.ip()
                        ),
                    )
                    .help = Some(format!(
                        "a VIP is either held by one VRRP master or announced by every balancer: remove \"{}\" from `{owner}`'s vips, or use announce = \"vrrp\"",
                        addr.ip()
                    ));
                }
                None
            }
            ServiceKey::Addr { addr, .. } => {
                let owner = vip_owners.get(&addr.ip()).cloned();
                if owner.is_none() {
                    let vip_span = s.vip.as_ref().map(|v| v.span()).unwrap_or(name.span());
                    self.err("vip-not-in-vrrp", vip_span, format!("VIP {} of service `{sname}` is not in any VRRP instance", addr.ip()))
                        .help = Some(format!(
                            "add \"{}\" to the vips of a [vrrp.instance.NAME] (a single balancer still uses one: it becomes master alone)",
                            addr.ip()
                        ));
                }
                owner
            }
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// What a service announced by BGP needs besides its forwarding: a VIP (not a firewall
    /// mark) and a `[bgp]` with a peer.
    fn announced_by_bgp(
        &mut self,
        name: &Spanned<String>,
        s: &ServiceSchema,
        key: ServiceKey,
        bgp: BgpContext,
    ) {
        let sname = name.get_ref();
        let span = s.announce.as_ref().map_or(name.span(), |a| a.span());
        if let ServiceKey::Fwmark { .. } = key {
            self.err(
                "announce-fwmark",
                span.clone(),
                format!("service `{sname}` is a fwmark service: it has no VIP to announce"),
            )
            .help =
                Some("announce a service by its vip = \"ADDR:PORT\", or remove `announce`".into());
        }
        if !bgp.section {
            self.err(
                "announce-without-bgp",
                span,
                format!("service `{sname}` announces by BGP, but the config has no [bgp]"),
            )
            .help = Some("add [bgp] with local_as and a [bgp.peer.NAME] (address, remote_as) for each router".into());
        } else if !bgp.peers {
            self.err(
                "announce-without-bgp",
                span,
                format!("service `{sname}` announces by BGP, but [bgp] has no peer"),
            )
            .help = Some("add a [bgp.peer.NAME] with address and remote_as for each router".into());
        } else if let ServiceKey::Addr { addr, .. } = key {
            if addr.is_ipv6() && !bgp.ipv6_peers {
                let at = s.vip.as_ref().map_or(span, |v| v.span());
                self.err(
                    "bgp-no-ipv6-peer",
                    at,
                    format!(
                        "service `{sname}` announces the IPv6 VIP {} by BGP, but every [bgp.peer] is at an IPv4 address",
                        addr.ip()
                    ),
                )
                .help = Some("add a [bgp.peer.NAME] at the router's IPv6 address: an IPv6 route learnt over an IPv4 session has an IPv4 next hop, which routers (Linux among them) cannot install; IPv4 VIPs may go over IPv6 sessions (extended next hop)".into());
            }
        }
    }

    /// N-way services forward by DR or tunnel: with NAT the replies would come back through
    /// one gateway, not through the balancer that took the request.
    fn bgp_forwarding(
        &mut self,
        name: &Spanned<String>,
        s: &ServiceSchema,
        reals: &[Real],
        sorry: Option<&SorryServer>,
        default_forwarding: Forwarding,
    ) {
        let nat = reals.iter().any(|r| r.forwarding == Forwarding::Nat)
            || sorry.is_some_and(|s| s.forwarding == Forwarding::Nat)
            || (reals.is_empty() && default_forwarding == Forwarding::Nat);
        if !nat {
            return;
        }
        let span = s.announce.as_ref().map_or(name.span(), |a| a.span());
        let d = self.err(
            "announce-nat",
            span,
            format!(
                "service `{}` announces by BGP but forwards by NAT",
                name.get_ref()
            ),
        );
        d.and_help("N-way balancing needs forwarding = \"dr\" or \"tun\": NAT replies go back through one gateway, which ECMP across several balancers cannot give (NAT stays a VRRP pair feature; forwarding defaults to nat)");
        if let Some(f) = &s.forwarding {
            d.and_related(f.span(), "forwarding set here");
        }
    }

    /// One `[[service.NAME.real]]`; `None` if it is refused. `seen` holds the addresses of the
    /// service's reals so far.
    fn real(
        &mut self,
        r: &RealSchema,
        svc: &ServiceDefaults<'_>,
        seen: &mut SeenReals,
    ) -> Option<Real> {
        let (sname, family, service_port) = (svc.name, svc.family, svc.port);
        let ep = *r.address.get_ref();
        let forwarding = r
            .forwarding
            .as_ref()
            .map_or(svc.forwarding, |f| *f.get_ref());
        let port = match (ep.port, forwarding, service_port) {
            (Some(p), Forwarding::Dr | Forwarding::Tun, Some(sp)) if p != sp => {
                self.err("real-port-mismatch", r.address.span(), format!("{forwarding} real {ep} has port {p}, but {forwarding} cannot change the port of service port {sp}"))
                    .help = Some(format!("{forwarding} forwards packets unchanged: write \"{}\" (port {sp}) or use forwarding = \"nat\"", Endpoint { ip: ep.ip, port: None }));
                return None;
            }
            (Some(p), _, _) => p,
            (None, _, Some(sp)) => sp,
            // fwmark services: port 0 keeps the packet's destination port.
            (None, _, None) => 0,
        };
        let addr = SocketAddr::new(ep.ip, port);
        if Family::of(&ep.ip) != family && forwarding != Forwarding::Tun {
            self.err("mixed-family", r.address.span(), format!("{} real {} behind an {family} service", Family::of(&ep.ip), ep.ip))
                .help = Some("the kernel forwards to another address family only in tunnel mode: use a real of the service's family or forwarding = \"tun\"".into());
            return None;
        }
        if let Some(first) = seen.get(&addr) {
            let first = first.clone();
            self.err(
                "duplicate-real",
                r.address.span(),
                format!("real {addr} appears twice in service `{sname}`"),
            )
            .and_related(first, "first here")
            .and_help("the kernel holds one destination per address and port in a service");
            return None;
        }
        seen.insert(addr, r.address.span());
        let (weight, upper, lower) = self.weight_and_thresholds(r);
        let check = self.real_check(r.check.as_ref(), &svc.check, r.address.span(), svc.checks);
        if let Some(c) = &check {
            if port == 0 && c.port.is_none() && !matches!(c.kind, CheckKind::Exec { .. }) {
                // Point at the check the fix belongs in: the real's own, else the service's.
                let span = r
                    .check
                    .as_ref()
                    .map(|c| c.span())
                    .or_else(|| svc.check_span.clone())
                    .unwrap_or(r.address.span());
                self.err(
                    "check-needs-port",
                    span,
                    "the reals of a fwmark service have no port, so this check has none to connect to",
                )
                .help = Some("set port = N in the check (e.g. port = 443)".into());
            }
        }
        Some(Real {
            addr,
            weight,
            forwarding,
            upper_threshold: upper,
            lower_threshold: lower,
            check: check.map(Arc::new),
        })
    }

    /// A real's `weight`, `upper_threshold` and `lower_threshold`, the lower not above the
    /// upper.
    fn weight_and_thresholds(&mut self, r: &RealSchema) -> (u32, u32, u32) {
        let weight = r.weight.as_ref().map_or(1, |w| {
            self.int_in(
                w,
                0,
                i32::MAX as i64,
                "weight",
                "a weight is 0 (no new connections) or more",
            ) as u32
        });
        let upper = r.upper_threshold.as_ref().map_or(0, |w| {
            self.int_in(
                w,
                0,
                i32::MAX as i64,
                "upper_threshold",
                "a connection limit, 0 for none",
            ) as u32
        });
        let lower = r.lower_threshold.as_ref().map_or(0, |w| {
            self.int_in(
                w,
                0,
                i32::MAX as i64,
                "lower_threshold",
                "a connection count, 0 for none",
            ) as u32
        });
        if upper > 0 && lower > upper {
            let span = r
                .lower_threshold
                .as_ref()
                .map(|x| x.span())
                .unwrap_or(r.address.span());
            self.err(
                "bad-threshold",
                span,
                format!("lower_threshold {lower} is above upper_threshold {upper}"),
            )
            .help = Some(
                "the real takes new connections again when it drops below lower_threshold".into(),
            );
        }
        (weight, upper, lower)
    }

    /// `sorry_server`: of the service's family, and on the service's port unless NAT can
    /// change it.
    fn sorry_server(
        &mut self,
        s: &ServiceSchema,
        family: Family,
        default_forwarding: Forwarding,
        service_port: Option<u16>,
    ) -> Option<SorryServer> {
        let ss = s.sorry_server.as_ref()?;
        let ep = *ss.get_ref();
        if Family::of(&ep.ip) != family {
            self.err(
                "mixed-family",
                ss.span(),
                format!(
                    "{} sorry server for an {family} service",
                    Family::of(&ep.ip)
                ),
            );
            return None;
        }
        let forwarding = s
            .sorry_forwarding
            .as_ref()
            .map_or(default_forwarding, |f| *f.get_ref());
        if let (Some(p), Forwarding::Dr | Forwarding::Tun, Some(sp)) =
            (ep.port, forwarding, service_port)
        {
            if p != sp {
                self.err("real-port-mismatch", ss.span(), format!("{forwarding} sorry server {ep} has port {p}, but {forwarding} cannot change the port of service port {sp}"))
                    .help = Some(format!("{forwarding} forwards packets unchanged: write \"{}\" (port {sp}) or use sorry_forwarding = \"nat\"", Endpoint { ip: ep.ip, port: None }));
                return None;
            }
        }
        // Port 0 (a fwmark service's sorry server without one) keeps the packet's port.
        let port = ep.port.or(service_port).unwrap_or(0);
        Some(SorryServer {
            addr: SocketAddr::new(ep.ip, port),
            forwarding,
        })
    }

    /// `quorum`: reachable with the weights of the reals.
    fn quorum(&mut self, s: &ServiceSchema, key: ServiceKey, reals: &[Real]) -> Option<Quorum> {
        if let (Some(q), ServiceKey::Fwmark { .. }) = (&s.quorum, key) {
            self.warn(
                "quorum-without-vip",
                q.min_weight.span(),
                "a fwmark service holds no VIP: its quorum never lowers a VRRP priority",
            )
            .help = Some("its quorum is only shown in status and logs; quorum_priority_drop acts on address services".into());
        }
        s.quorum.as_ref().map(|q| {
            let min_weight = self.int_in(&q.min_weight, 1, i32::MAX as i64, "min_weight", "the minimum total weight of healthy reals, at least 1") as u32;
            let hysteresis = q.hysteresis.as_ref().map_or(0, |h| self.int_in(h, 0, i32::MAX as i64, "hysteresis", "0 or more") as u32);
            let total: u64 = reals.iter().map(|r| r.weight as u64).sum();
            if (min_weight as u64 + hysteresis as u64) > total && !reals.is_empty() {
                self.err("quorum-unreachable", q.min_weight.span(), format!("quorum {min_weight} (+{hysteresis} hysteresis) can never be met: the reals' weights add up to {total}"))
                    .help = Some("lower min_weight or add reals".into());
            }
            Quorum { min_weight, hysteresis }
        })
    }
}

/// The addresses of a service's reals so far, with where each is written: a list while the
/// service is small (nearly all are, and a list of ten needs no hashing), a map beyond.
enum SeenReals {
    Few(Vec<(SocketAddr, Range<usize>)>),
    Many(HashMap<SocketAddr, Range<usize>>),
}

impl SeenReals {
    /// Up to this many, a list.
    const FEW: usize = 32;

    fn with_capacity(n: usize) -> SeenReals {
        if n <= Self::FEW {
            SeenReals::Few(Vec::with_capacity(n))
        } else {
            SeenReals::Many(HashMap::with_capacity(n))
        }
    }

    fn get(&self, addr: &SocketAddr) -> Option<&Range<usize>> {
        match self {
            SeenReals::Few(list) => list.iter().find(|(a, _)| a == addr).map(|(_, r)| r),
            SeenReals::Many(map) => map.get(addr),
        }
    }

    /// Records `addr` (not seen yet) at `span`.
    fn insert(&mut self, addr: SocketAddr, span: Range<usize>) {
        match self {
            SeenReals::Few(list) => list.push((addr, span)),
            SeenReals::Many(map) => {
                map.insert(addr, span);
            }
        }
    }
}
