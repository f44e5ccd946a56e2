//! `[network]`'s own keys: resolvers, search domains and the confirmation timeout.

use super::Validator;
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::validate::valid_hostname;
use std::net::IpAddr;
use std::time::Duration;

impl Validator {
    pub(super) fn resolvers(&mut self, s: &NetworkSchema) -> Vec<IpAddr> {
        if let Some(fourth) = s.resolvers.get(3) {
            self.warn(
                "too-many-resolvers",
                fourth.span(),
                "resolvers after the third are never asked",
            )
            .help = Some("glibc and musl read at most three nameservers".into());
        }
        s.resolvers.iter().map(|r| *r.get_ref()).collect()
    }

    pub(super) fn search(&mut self, s: &NetworkSchema) -> Vec<String> {
        let mut out = Vec::new();
        for d in &s.search {
            if valid_hostname(d.get_ref()) {
                out.push(d.get_ref().clone());
            } else {
                self.err(
                    "bad-hostname",
                    d.span(),
                    format!("invalid search domain {:?}", d.get_ref()),
                );
            }
        }
        out
    }

    pub(super) fn confirm_timeout(&mut self, s: &NetworkSchema) -> Duration {
        let Some(t) = &s.confirm_timeout else {
            return Network::DEFAULT_CONFIRM_TIMEOUT;
        };
        let d = t.get_ref().0;
        if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
            self.err(
                "out-of-range",
                t.span(),
                format!("confirm_timeout {} is outside 1s to 10m", t.get_ref()),
            )
            .help = Some(
                "long enough for links to come up (LACP can take 30 s), short enough to wait for"
                    .into(),
            );
            return Network::DEFAULT_CONFIRM_TIMEOUT;
        }
        d
    }
}
