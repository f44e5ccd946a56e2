//! A link's routes and the policy rules of `[[network.rule]]`.

use super::Validator;
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::types::*;
use std::net::IpAddr;
use toml::Spanned;

impl Validator {
    pub(super) fn route(&mut self, link: &str, r: &Spanned<RouteSchema>) -> Option<Route> {
        let s = r.get_ref();
        let errors_before = self.error_count();
        let via = s.via.as_ref().map(|v| *v.get_ref());
        let to = if s.to.get_ref() == "default" {
            match via {
                Some(IpAddr::V4(_)) => Some("0.0.0.0/0".parse::<IpPrefix>().expect("a prefix")),
                Some(IpAddr::V6(_)) => Some("::/0".parse::<IpPrefix>().expect("a prefix")),
                None => {
                    self.err(
                        "bad-route",
                        s.to.span(),
                        format!("the default route on `{link}` has no `via`"),
                    )
                    .help = Some("say which gateway: via = \"192.0.2.1\"".into());
                    None
                }
            }
        } else {
            match s.to.get_ref().parse::<IpPrefix>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err("bad-route", s.to.span(), e).help =
                        Some("to is \"default\" or a prefix such as \"10.8.0.0/16\"".into());
                    None
                }
            }
        };
        for (key, addr) in [("via", &s.via), ("source", &s.source)] {
            if let (Some(to), Some(a)) = (&to, addr) {
                if Family::of(a.get_ref()) != Family::of(&to.addr) {
                    self.err(
                        "route-mixed-family",
                        a.span(),
                        format!("{key} {} is not of the family of {}", a.get_ref(), to),
                    );
                }
            }
        }
        let metric = s.metric.as_ref().map(|m| {
            self.int_in(
                m,
                0,
                u32::MAX.into(),
                "metric",
                "a route metric is 0 to 4294967295",
            ) as u32
        });
        let table = s.table.as_ref().map(|t| {
            self.int_in(
                t,
                1,
                u32::MAX.into(),
                "table",
                "tables are 1 to 4294967295 (254 is main)",
            ) as u32
        });
        let to = to?;
        (self.error_count() == errors_before).then(|| Route {
            to,
            via,
            metric,
            table,
            source: s.source.as_ref().map(|a| *a.get_ref()),
        })
    }

    pub(super) fn rule(&mut self, r: Spanned<RuleSchema>) -> Option<Rule> {
        let s = r.get_ref();
        let errors_before = self.error_count();
        if let (Some(f), Some(t)) = (&s.from, &s.to) {
            if Family::of(&f.get_ref().addr) != Family::of(&t.get_ref().addr) {
                self.err(
                    "rule-mixed-family",
                    t.span(),
                    format!("a rule from {} cannot go to {}", f.get_ref(), t.get_ref()),
                );
            }
        }
        if s.from.is_none() && s.to.is_none() {
            self.err("bad-rule", r.span(), "a rule needs `from` or `to`")
                .help = Some("e.g. from = \"10.1.0.0/24\", table = 100: replies from the inside network use table 100".into());
        }
        let table = self.int_in(
            &s.table,
            1,
            u32::MAX.into(),
            "table",
            "tables are 1 to 4294967295 (254 is main)",
        ) as u32;
        let priority = s.priority.as_ref().map(|p| {
            self.int_in(
                p,
                1,
                32765,
                "priority",
                "0, 32766 and 32767 are the kernel's own rules (local, main, default)",
            ) as u32
        });
        (self.error_count() == errors_before).then(|| Rule {
            from: s.from.as_ref().map(|f| *f.get_ref()),
            to: s.to.as_ref().map(|t| *t.get_ref()),
            table,
            priority,
        })
    }
}
