//! `[bgp]` and its `[bgp.peer.NAME]`s: the settings of lbd's BGP speaker, and the checks that
//! need the services (`local_as` and `router_id` are required only when a service announces by
//! BGP) or the network (a peer must be reachable from some link).

use super::{Raw, Validator};
use crate::config::model::*;
use crate::config::network::Network;
use crate::config::schema::*;
use crate::config::types::Announce;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `[bgp]` as gathered in stage 2.
pub(super) struct RawBgp {
    /// Where `[bgp]` is written.
    pub span: Range<usize>,
    /// `None` when its own keys did not deserialize (already reported).
    pub schema: Option<BgpSchema>,
    pub peers: Vec<(Spanned<String>, BgpPeerSchema)>,
    /// Peers declared, valid or not.
    pub declared_peers: usize,
}

/// What the validation of a service needs to know of `[bgp]`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct BgpContext {
    /// The config has a `[bgp]` section.
    pub section: bool,
    /// ... declaring at least one peer.
    pub peers: bool,
    /// ... one of them at an IPv6 address.
    pub ipv6_peers: bool,
}

impl Validator {
    /// `[bgp]`: its peers one by one, then its own keys.
    pub(super) fn gather_bgp(&mut self, value: &Spanned<DeValue<'_>>, raw: &mut Raw) {
        let Some(table) = self.table(value, "[bgp]") else {
            return;
        };
        let mut rest = DeTable::new();
        let mut peers = Vec::new();
        let mut declared_peers = 0;
        for (k, v) in table.iter() {
            if k.get_ref() == "peer" {
                for (name, item) in self.named_items(v, "bgp.peer") {
                    declared_peers += 1;
                    if let Some(p) = self.de::<BgpPeerSchema>(item) {
                        peers.push((name, p));
                    }
                }
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        let schema = self.de::<BgpSchema>(&Spanned::new(value.span(), DeValue::Table(rest)));
        raw.bgp = Some(RawBgp {
            span: value.span(),
            schema,
            peers,
            declared_peers,
        });
    }

    /// The model of `[bgp]`, its peers checked against the network.
    pub(super) fn bgp(&mut self, raw: RawBgp, network: Option<&Network>) -> Option<Bgp> {
        let schema = raw.schema?;
        let local_as = schema
            .local_as
            .as_ref()
            .map(|a| self.as_number(a, "local_as"));
        let router_id = schema
            .router_id
            .as_ref()
            .map(|r| *r.get_ref())
            .or_else(|| network.and_then(first_ipv4));
        let hold_time = schema
            .hold_time
            .as_ref()
            .map_or(Bgp::DEFAULT_HOLD_TIME, |h| self.hold_time(h));
        let bfd = schema.bfd.as_ref().is_some_and(|b| *b.get_ref());
        let bfd_interval = self.duration_in(
            schema.bfd_interval.as_ref(),
            Bgp::DEFAULT_BFD_INTERVAL,
            (Duration::from_millis(10), Duration::from_secs(10)),
            ("bad-bfd-interval", "BFD interval", "10ms to 10s"),
            "routers commonly run 50ms to 1s; the default is 100ms",
        );
        let bfd_multiplier =
            schema
                .bfd_multiplier
                .as_ref()
                .map_or(Bgp::DEFAULT_BFD_MULTIPLIER, |m| {
                    self.int_in(
                        m,
                        1,
                        255,
                        "bfd_multiplier",
                        "missed BFD packets before the session is down, 1 to 255 (default 3)",
                    ) as u8
                });
        let watchdog = self.duration_in(
            schema.watchdog.as_ref(),
            Bgp::DEFAULT_WATCHDOG,
            (Duration::from_secs(1), Duration::from_secs(600)),
            ("bad-watchdog", "watchdog", "1s to 600s"),
            "longer than lbd's longest apply (a few seconds for a very large table), short \
             enough that a hung lbd stops announcing soon; the default is 10s",
        );
        let mut peers = BTreeMap::new();
        let mut addresses: HashMap<IpAddr, Range<usize>> = HashMap::new();
        for (name, p) in raw.peers {
            let address = *p.address.get_ref();
            if let Some(first) = addresses.get(&address) {
                let first = first.clone();
                self.err(
                    "duplicate-peer",
                    p.address.span(),
                    format!("BGP peer {address} appears twice"),
                )
                .and_related(first, "first here")
                .and_help("BIRD holds one session per neighbour address: remove one of them");
                continue;
            }
            addresses.insert(address, p.address.span());
            let remote_as = self.as_number(&p.remote_as, "remote_as");
            if let Some(src) = &p.source_address {
                if src.get_ref().is_ipv4() != address.is_ipv4() {
                    self.err(
                        "mixed-family",
                        src.span(),
                        format!(
                            "source address {} for the peer {address} of another family",
                            src.get_ref()
                        ),
                    )
                    .help = Some("use one of this node's addresses of the peer's family".into());
                }
            }
            let multihop = p.multihop.as_ref().map(|m| {
                self.int_in(
                    m,
                    1,
                    255,
                    "multihop",
                    "the TTL of the session's packets: how many hops away the peer is, 1 to 255",
                ) as u8
            });
            if let Some(net) = network {
                if !reachable(net, address) {
                    self.err(
                        "bgp-peer-unreachable",
                        p.address.span(),
                        format!(
                            "BGP peer {address} is in no subnet of the [network] links' addresses and no [network] route covers it"
                        ),
                    )
                    .help = Some(
                        "give a link an address in the peer's subnet, or add a route (e.g. `to = \"default\"`) that reaches it".into(),
                    );
                }
            }
            if let Some(pw) = &p.password {
                if pw.get_ref().is_empty()
                    || pw.get_ref().chars().any(|c| c == '"' || c.is_control())
                {
                    self.err(
                        "bad-password",
                        pw.span(),
                        "a BGP password must be non-empty, without `\"` or control characters",
                    )
                    .help = Some("BIRD's config strings cannot hold them; pick another password on both sides".into());
                }
            }
            let name = name.get_ref().clone();
            peers.insert(
                name.clone(),
                BgpPeer {
                    name,
                    address,
                    remote_as,
                    password: p.password.as_ref().map(|s| s.get_ref().clone()),
                    hold_time: p
                        .hold_time
                        .as_ref()
                        .map_or(hold_time, |h| self.hold_time(h)),
                    bfd: p.bfd.as_ref().map_or(bfd, |b| *b.get_ref()),
                    source_address: p.source_address.as_ref().map(|s| *s.get_ref()),
                    multihop,
                },
            );
        }
        Some(Bgp {
            local_as,
            router_id,
            hold_time,
            bfd,
            bfd_interval,
            bfd_multiplier,
            watchdog,
            peers,
        })
    }

    /// The checks that need both `[bgp]` and the services: with a service announcing by BGP,
    /// the speaker needs an AS number and a router id.
    pub(super) fn bgp_for_services(
        &mut self,
        bgp: Option<&Bgp>,
        bgp_span: Option<Range<usize>>,
        services: &BTreeMap<String, std::sync::Arc<Service>>,
    ) {
        let (Some(bgp), Some(span)) = (bgp, bgp_span) else {
            return;
        };
        let Some(first) = services.values().find(|s| s.announce == Announce::Bgp) else {
            return;
        };
        if bgp.local_as.is_none() {
            self.err(
                "bgp-no-local-as",
                span.clone(),
                format!(
                    "service `{}` announces by BGP, but [bgp] has no local_as",
                    first.name
                ),
            )
            .help = Some("set local_as = 65001 (this node's AS number) in [bgp]".into());
        }
        if bgp.router_id.is_none() {
            self.err(
                "bgp-no-router-id",
                span,
                "[bgp] has no router_id and [network] gives this node no IPv4 address to take it from",
            )
            .help = Some("set router_id = \"192.0.2.2\" (an IPv4 address of this node) in [bgp]".into());
        }
    }

    /// A duration of `[bgp]` within `range`, or `default` when not set; out of range is an
    /// error (`code`, what it is, the range as written) and the value is kept as written.
    fn duration_in(
        &mut self,
        value: Option<&Spanned<crate::config::ConfigDuration>>,
        default: Duration,
        (low, high): (Duration, Duration),
        (code, what, range): (&'static str, &str, &str),
        help: &str,
    ) -> Duration {
        let Some(v) = value else {
            return default;
        };
        let d = v.get_ref().0;
        if d < low || d > high {
            self.err(
                code,
                v.span(),
                format!("{what} {d:?} is out of range {range}"),
            )
            .help = Some(help.into());
        }
        d
    }

    fn as_number(&mut self, v: &Spanned<i64>, what: &str) -> u32 {
        self.int_in(
            v,
            1,
            u32::MAX as i64,
            what,
            "an AS number is 1 to 4294967295 (private: 64512–65534, 4200000000–4294967294)",
        ) as u32
    }

    /// A BGP hold time: whole seconds, 0 or 3 to 65535 (RFC 4271 4.2).
    fn hold_time(&mut self, h: &Spanned<crate::config::ConfigDuration>) -> Duration {
        let d = h.get_ref().0;
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 || secs == 1 || secs == 2 || secs > 65535 {
            self.err(
                "bad-hold-time",
                h.span(),
                format!("BGP hold time {d:?} is not 0 or 3s to 65535s in whole seconds"),
            )
            .help = Some(
                "BGP allows 0 (no keepalives) or 3s to 65535s; with BFD the hold time can stay long"
                    .into(),
            );
            return Bgp::DEFAULT_HOLD_TIME;
        }
        d
    }
}

/// The node's first IPv4 address in `[network]` (links in name order).
fn first_ipv4(network: &Network) -> Option<Ipv4Addr> {
    network
        .links
        .values()
        .flat_map(|l| l.addresses.iter())
        .find_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
}

/// Whether `[network]` reaches `peer`: a link's subnet holds it or a route covers it. A link
/// that takes its address by DHCP could be in any subnet: then nothing can be said.
fn reachable(network: &Network, peer: IpAddr) -> bool {
    network.links.values().any(|l| {
        l.dhcp
            || l.addresses.iter().any(|a| a.contains(peer))
            || l.routes.iter().any(|r| r.to.contains(peer))
    })
}
