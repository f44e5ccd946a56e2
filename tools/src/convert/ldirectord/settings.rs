//! Every setting ldirectord(8) documents, where it may be written (`global`: unindented;
//! `virtual`: in a `virtual=` section), and what the converter does with it: translated
//! ([`CONVERTED`]), or not ([`IGNORED`]), with the warning that says what ldirectord does with
//! it and what lbd does instead. A setting ldirectord does not take where it is written is an
//! error, as it is for ldirectord.
//!
//! Two settings ldirectord reads without documenting them are here too: `schedflags` (the
//! scheduler flags it hands `ipvsadm -b`) and `load` (read, never used).

/// Settings the converter translates (or reports by their value), by context.
pub const CONVERTED: &[(&str, &str)] = &[
    ("global", "virtual"),
    ("global", "virtual6"),
    ("global", "fork"),
    ("global virtual", "checktimeout"),
    ("global virtual", "negotiatetimeout"),
    ("global virtual", "checkinterval"),
    ("global virtual", "failurecount"),
    ("global virtual", "fallback"),
    ("global virtual", "fallback6"),
    ("global virtual", "quiescent"),
    ("virtual", "real"),
    ("virtual", "real6"),
    ("virtual", "checktype"),
    ("virtual", "service"),
    ("virtual", "checkcommand"),
    ("virtual", "checkport"),
    ("virtual", "request"),
    ("virtual", "receive"),
    ("virtual", "httpmethod"),
    ("virtual", "virtualhost"),
    ("virtual", "login"),
    ("virtual", "passwd"),
    ("virtual", "database"),
    ("virtual", "scheduler"),
    ("virtual", "persistent"),
    ("virtual", "netmask"),
    ("virtual", "protocol"),
    ("virtual", "ops"),
    ("virtual", "servicename"),
    ("virtual", "comment"),
    ("virtual", "schedflags"),
];

/// Settings the converter does not translate, by context, with their warning.
pub const IGNORED: &[(&str, &str, &str)] = &[
    ("global virtual", "checkcount", "checkcount (deprecated; ping checks only) has no equivalent in lbd: use failurecount (ldirectord tries a ping check this many times before it counts a failure)"),
    ("global", "autoreload", "`autoreload` has no equivalent in lbd: lbd reloads on SIGHUP and when init hands it a new config (ldirectord rereads its file whenever it changes)"),
    ("global", "callback", "`callback` has no equivalent in lbd: lbd reloads on SIGHUP and when init hands it a new config (ldirectord runs this program when its file changes, e.g. to copy it to the other node)"),
    ("global", "logfile", "`logfile` has no equivalent in lbd: it logs to the console and, with [node.syslog], to a remote collector (ldirectord logs to this file or syslog facility)"),
    ("global", "supervised", "`supervised` has no equivalent in lbd: it logs to the console and, with [node.syslog], to a remote collector (ldirectord stays in the foreground and logs to stdout)"),
    ("global", "execute", "`execute` has no equivalent in lbd: it runs no other instances (ldirectord starts one more for that configuration: convert that file too)"),
    ("global virtual", "fallbackcommand", "`fallbackcommand` has no equivalent in lbd: it runs no scripts (ldirectord runs this one with start when every real of a service is down, and with stop when one is back)"),
    ("global virtual", "emailalert", "`emailalert` has no equivalent in lbd: ignored (ldirectord mails real server state changes to these addresses; health changes are in lbd's log, remote syslog and status API)"),
    ("global", "emailalertfrom", "`emailalertfrom` has no equivalent in lbd: ignored (the sender of ldirectord's alert mails; lbd sends no mail: health changes are in its log, remote syslog and status API)"),
    ("global virtual", "emailalertfreq", "`emailalertfreq` has no equivalent in lbd: ignored (ldirectord mails again this often while a real stays down; health changes are in lbd's log, remote syslog and status API)"),
    ("global virtual", "emailalertstatus", "`emailalertstatus` has no equivalent in lbd: ignored (the daemon states, starting, running, stopping or reloading, in which ldirectord mails alerts; health changes are in lbd's log, remote syslog and status API)"),
    ("global virtual", "smtp", "`smtp` has no equivalent in lbd: ignored (the SMTP server ldirectord sends its alert mails through; health changes are in lbd's log, remote syslog and status API)"),
    ("global", "readdquiescent", "readdquiescent has no equivalent in lbd: lbd keeps the kernel table as the config says (ldirectord adds a down real back with weight 0 when it is missing from the table)"),
    ("global virtual", "cleanstop", "cleanstop has no equivalent in lbd: lbd leaves its IPVS table in place when it stops, so connections survive a restart (with yes, ldirectord removes its services when it stops)"),
    ("global", "maintenancedir", "maintenancedir has no equivalent in lbd: ldirectord takes a real down while a file named after it is in that directory; drain a real with `lbctl drain SERVICE REAL` (weight 0 until undrain)"),
    ("virtual", "monitorfile", "monitorfile has no equivalent in lbd: ldirectord logs every check of this service to that file; check results are in lbd's log, remote syslog and the status API (lbctl status)"),
    ("virtual", "secret", "`secret` (RADIUS) has no equivalent in lbd: ignored (ldirectord's radius check signs its Access-Request with it; lbd checks a radius service with a UDP datagram)"),
    ("virtual", "load", "`load` has no equivalent in lbd: ignored (ldirectord reads it and does not use it)"),
];

fn in_ctx(list: &str, ctx: &str) -> bool {
    list.split(' ').any(|c| c == ctx)
}

/// Whether ldirectord takes `key` in `ctx`.
pub fn known(ctx: &str, key: &str) -> bool {
    CONVERTED.iter().any(|(c, k)| *k == key && in_ctx(c, ctx)) || message(ctx, key).is_some()
}

/// The warning for `key` in `ctx`, when the converter does not translate it.
pub fn message(ctx: &str, key: &str) -> Option<&'static str> {
    IGNORED
        .iter()
        .find(|(c, k, _)| *k == key && in_ctx(c, ctx))
        .map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_setting_once_in_its_context() {
        let mut seen = BTreeSet::new();
        for (ctxs, key) in CONVERTED
            .iter()
            .copied()
            .chain(IGNORED.iter().map(|(c, k, _)| (*c, *k)))
        {
            for c in ctxs.split(' ') {
                assert!(matches!(c, "global" | "virtual"), "{c}");
                assert!(seen.insert((c, key)), "{c} {key} listed twice");
            }
        }
        for (_, key, m) in IGNORED {
            assert!(m.contains(key), "{m}");
        }
        assert!(known("virtual", "servicename"));
        assert!(!known("global", "servicename"));
        assert!(message("global", "emailalertfrom").is_some());
    }
}
