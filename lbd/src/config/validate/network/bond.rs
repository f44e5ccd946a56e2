//! A bond's options: its mode, the keys that only some modes take, its timers.

use super::Validator;
use crate::config::network::*;
use crate::config::schema::*;
use crate::config::types::*;
use crate::config::validate::unknown_name_help;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

impl Validator {
    pub(super) fn bond(&mut self, name: &Spanned<String>, s: &LinkSchema) -> Option<Bond> {
        let Some(members) = &s.members else {
            self.err(
                "missing-key",
                name.span(),
                format!("bond `{}` has no `members`", name.get_ref()),
            )
            .help = Some("list its links: members = [\"eth0\", \"eth1\"]".into());
            return None;
        };
        // A refused mode leaves the mode-dependent keys unjudged: they may fit the mode meant.
        let (mode, mode_known) = match self.word::<BondMode>(s.mode.as_ref(), "mode") {
            Some(m) => (m.unwrap_or(BondMode::ActiveBackup), true),
            None => (BondMode::ActiveBackup, false),
        };
        let lacp_rate = self
            .word::<LacpRate>(s.lacp_rate.as_ref(), "lacp_rate")
            .flatten();
        let xmit_hash_policy = self
            .word::<XmitHashPolicy>(s.xmit_hash_policy.as_ref(), "xmit_hash_policy")
            .flatten();
        if mode_known {
            if let (Some(r), false) = (&s.lacp_rate, mode == BondMode::Lacp) {
                self.not_for_mode(r.span(), "lacp_rate", mode, "802.3ad");
            }
            if let (Some(p), false) = (&s.xmit_hash_policy, mode.takes_hash_policy()) {
                self.not_for_mode(
                    p.span(),
                    "xmit_hash_policy",
                    mode,
                    "balance-xor, 802.3ad and balance-tlb",
                );
            }
            if let (Some(p), false) = (&s.primary, mode.takes_primary()) {
                self.not_for_mode(
                    p.span(),
                    "primary",
                    mode,
                    "active-backup, balance-tlb and balance-alb",
                );
            }
        }
        if let Some(p) = &s.primary {
            if !members.get_ref().iter().any(|m| m.get_ref() == p.get_ref()) {
                self.err(
                    "unknown-member",
                    p.span(),
                    format!(
                        "primary `{}` is not a member of bond `{}`",
                        p.get_ref(),
                        name.get_ref()
                    ),
                )
                .help = Some(unknown_name_help(
                    p.get_ref(),
                    members.get_ref().iter().map(|m| m.get_ref()),
                    "name one of the bond's members",
                ));
            }
        }
        let min_links = s.min_links.as_ref().map_or(0, |m| {
            self.int_in(
                m,
                0,
                255,
                "min_links",
                "the number of members that must be up for the bond to be up",
            ) as u32
        });
        let miimon = self
            .bond_duration(s.miimon.as_ref(), "miimon")
            .unwrap_or(Bond::DEFAULT_MIIMON);
        if miimon.is_zero() {
            let span = s.miimon.as_ref().map(|m| m.span()).unwrap_or(name.span());
            self.err("out-of-range", span, "miimon 0 turns link monitoring off")
                .help = Some(
                "without it the bond never notices a member losing carrier: use \"100ms\"".into(),
            );
        }
        let mut delays = [Duration::ZERO; 2];
        for (slot, (key, value)) in delays
            .iter_mut()
            .zip([("updelay", &s.updelay), ("downdelay", &s.downdelay)])
        {
            let Some(d) = self.bond_duration(value.as_ref(), key) else {
                continue;
            };
            if !miimon.is_zero() && d.as_millis() % miimon.as_millis() != 0 {
                let span = value.as_ref().map(|v| v.span()).unwrap_or(name.span());
                self.warn(
                    "delay-not-multiple",
                    span,
                    format!(
                        "{key} {} is not a multiple of miimon {}",
                        ConfigDuration(d),
                        ConfigDuration(miimon)
                    ),
                )
                .help = Some("the kernel rounds it down to a multiple of miimon".into());
            }
            *slot = d;
        }
        Some(Bond {
            members: members
                .get_ref()
                .iter()
                .map(|m| m.get_ref().clone())
                .collect(),
            mode,
            miimon,
            lacp_rate: lacp_rate.unwrap_or(LacpRate::Slow),
            xmit_hash_policy,
            min_links,
            updelay: delays[0],
            downdelay: delays[1],
            primary: s.primary.as_ref().map(|p| p.get_ref().clone()),
        })
    }

    /// A word from a fixed set; `Some(None)` when absent, `None` when refused.
    fn word<T: std::str::FromStr<Err = String>>(
        &mut self,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> Option<Option<T>> {
        let Some(v) = value else { return Some(None) };
        match v.get_ref().parse::<T>() {
            Ok(t) => Some(Some(t)),
            Err(e) => {
                self.err("bad-bond-option", v.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    fn not_for_mode(&mut self, span: Range<usize>, key: &str, mode: BondMode, modes: &str) {
        self.err(
            "key-not-for-mode",
            span,
            format!("`{key}` does nothing in bond mode {mode}"),
        )
        .help = Some(format!(
            "it applies to {modes}; remove it or change the mode"
        ));
    }

    /// A bond timer: whole milliseconds, as the kernel takes them.
    fn bond_duration(
        &mut self,
        value: Option<&Spanned<ConfigDuration>>,
        key: &str,
    ) -> Option<Duration> {
        let v = value?;
        let d = v.get_ref().0;
        if d.subsec_nanos() % 1_000_000 != 0 || d > Duration::from_secs(60) {
            self.err(
                "out-of-range",
                v.span(),
                format!(
                    "{key} {} is not whole milliseconds up to a minute",
                    v.get_ref()
                ),
            )
            .help = Some("bonding counts these timers in milliseconds, e.g. \"100ms\"".into());
            return None;
        }
        Some(d)
    }
}
