//! Kernel-wide IPVS settings that only `/proc/sys/net/ipv4/vs/` holds (no netlink command sets
//! them): `sloppy_tcp`, `sloppy_sctp` and `expire_nodest_conn`. The plan is pure; the
//! subsystem reads and writes the files.
//!
//! With `sloppy_tcp = 0` (the kernel's default) IPVS creates a connection entry only for a SYN
//! (`tcp_conn_schedule` in `ip_vs_proto_tcp.c`: `th->rst || !(sloppy_tcp || th->syn)` → not
//! scheduled); with 1, any TCP packet but a RST can start one. `sloppy_sctp` does the same for
//! SCTP packets other than an INIT. Balancers side by side behind ECMP need it: when the
//! router's hash moves a flow to a balancer that did not see its handshake, that balancer
//! schedules the flow's next packet (with `mh`, to the same real) instead of dropping it.

use crate::config::IpvsSettings;

/// Where the files are.
pub const DIR: &str = "/proc/sys/net/ipv4/vs";

/// One file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlWrite {
    /// The file's name in [`DIR`].
    pub name: &'static str,
    pub value: &'static str,
    /// What it held (trimmed), `None` when it could not be read.
    pub was: Option<String>,
}

/// The settings the config sets, as (file name, value): an unset key is left to the kernel.
pub fn wanted(settings: &IpvsSettings) -> Vec<(&'static str, &'static str)> {
    let as_value = |b: bool| if b { "1" } else { "0" };
    [
        ("sloppy_tcp", settings.sloppy_tcp),
        ("sloppy_sctp", settings.sloppy_sctp),
        ("expire_nodest_conn", settings.expire_nodest_conn),
    ]
    .into_iter()
    .filter_map(|(name, v)| v.map(|b| (name, as_value(b))))
    .collect()
}

/// The writes that bring the files to what `settings` want, given what `read` returns for a
/// file name (its content; `None`: unreadable, so written anyway).
pub fn writes(settings: &IpvsSettings, read: impl Fn(&str) -> Option<String>) -> Vec<SysctlWrite> {
    wanted(settings)
        .into_iter()
        .filter_map(|(name, value)| {
            let was = read(name).map(|s| s.trim().to_string());
            (was.as_deref() != Some(value)).then_some(SysctlWrite { name, value, was })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_keys_that_differ_are_written() {
        let mut s = IpvsSettings::default();
        assert_eq!(wanted(&s), []);
        assert_eq!(writes(&s, |_| Some("0\n".into())), []);
        s.sloppy_tcp = Some(true);
        s.sloppy_sctp = Some(false);
        assert_eq!(wanted(&s), [("sloppy_tcp", "1"), ("sloppy_sctp", "0")]);
        // The kernel's files end with a newline.
        assert_eq!(
            writes(&s, |_| Some("0\n".into())),
            [SysctlWrite {
                name: "sloppy_tcp",
                value: "1",
                was: Some("0".into())
            }]
        );
        assert_eq!(
            writes(&s, |n| Some(
                if n == "sloppy_tcp" { "1\n" } else { "0\n" }.into()
            )),
            []
        );
        s.expire_nodest_conn = Some(true);
        assert_eq!(
            wanted(&s),
            [
                ("sloppy_tcp", "1"),
                ("sloppy_sctp", "0"),
                ("expire_nodest_conn", "1")
            ]
        );
        s.expire_nodest_conn = None;
        // Unreadable (no ip_vs module yet): written, and the write reports the error.
        assert_eq!(
            writes(&s, |_| None)
                .iter()
                .map(|w| (w.name, w.value))
                .collect::<Vec<_>>(),
            [("sloppy_tcp", "1"), ("sloppy_sctp", "0")]
        );
    }
}
