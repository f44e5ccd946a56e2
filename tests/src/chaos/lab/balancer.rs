//! A balancer of the pair: booting it, its shell, and what it reports about itself.

use std::time::Duration;

use super::{Lab, Layout, Member, CONFIG_PORT, MEMBERS, SERVER, VIP};
use crate::appliance::{ApplianceBuilder, Image};
use crate::ipvs::{boot_image_with_shell, GuestShell, ShellGuest};
use crate::qemu::Nic;

/// One try of [`Balancer::sh`].
const SHELL_TRY: Duration = Duration::from_secs(20);

impl Lab {
    /// Boots both balancers at once from `image`.
    pub fn boot(&self, image: &Image, boot: Duration) -> Result<[Balancer; 2], String> {
        let [a, b] = std::thread::scope(|s| {
            let a = s.spawn(|| Balancer::boot(self, image, MEMBERS[0], boot));
            let b = s.spawn(|| Balancer::boot(self, image, MEMBERS[1], boot));
            [a.join(), b.join()]
        });
        let unwrap = |r: std::thread::Result<Result<Balancer, String>>| {
            r.unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        Ok([unwrap(a)?, unwrap(b)?])
    }
}

/// Memory and descriptors of a process in a guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// init's and lbd's [`ProcStats`], read through the guest's shell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestStats {
    /// PID 1.
    pub init: ProcStats,
    /// lbd, if it runs.
    pub lbd: Option<ProcStats>,
    /// lbd's pid.
    pub lbd_pid: Option<u32>,
}

/// A balancer of the pair: the guest with its shell.
pub struct Balancer {
    /// Its identity in the lab.
    pub member: Member,
    /// The guest and its shell.
    pub guest: ShellGuest,
}

impl Balancer {
    /// Boots `m` from `image` on its tap, fetching its config by MAC every 100 ms (the reload
    /// storm changes it every 200 ms).
    pub fn boot(lab: &Lab, image: &Image, m: Member, boot: Duration) -> Result<Balancer, String> {
        let mut builder =
            ApplianceBuilder::new(format!("chaos-{}", m.name)).nic(Nic::tap(m.tap, m.mac));
        if lab.setup.layout == Layout::Nat {
            builder = builder.nic(Nic::tap(m.inside_tap, m.inside_mac));
        }
        let guest = boot_image_with_shell(
            image,
            builder
                .vcpus(lab.setup.vcpus)
                .netns(&lab.ns)
                .append(format!(
                    "ip={}::{SERVER}:255.255.255.0:{}:eth0:off",
                    m.addr, m.name
                ))
                .config_url(format!(
                    "http://{SERVER}:{CONFIG_PORT}/${{mac_hyphen}}.toml"
                ))
                .poll("100ms"),
            boot,
        )?;
        Ok(Balancer { member: m, guest })
    }

    /// The shell.
    pub fn shell(&mut self) -> &mut GuestShell {
        &mut self.guest.shell
    }

    /// Runs `command` in the guest's shell; its output. Tried up to three times: a guest whose
    /// CPU was saturated can lose characters of a command on its serial line (and init
    /// restarts a shell that exits), so a lost command is sent again.
    pub fn sh(&mut self, command: &str) -> Result<String, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match self.shell().run(command, SHELL_TRY) {
                Ok(out) => return Ok(out),
                // Only a command that never answered is sent again: one that ran and failed
                // (or half ran) must not run twice.
                Err(e @ crate::ipvs::ShellError::Timeout { .. }) => last = e.to_string(),
                Err(e) => return Err(format!("{}: {e}", self.member.name)),
            }
        }
        Err(format!("{}: {last}", self.member.name))
    }

    /// init's and lbd's memory and descriptors.
    pub fn stats(&mut self) -> Result<GuestStats, String> {
        // Descriptors: the fewest of five looks 200 ms apart, so health-check sockets in flight
        // (three reals checked every second) do not read as growth.
        let out = self.sh(
            "for p in 1 $(pidof lbd); do m=100000; for i in 1 2 3 4 5; do n=$(ls /proc/$p/fd | wc -l); [ $n -lt $m ] && m=$n; sleep 0.2; done; echo \"$p $(awk '/^VmRSS:/ {print $2}' /proc/$p/status) $m\"; done",
        )?;
        Ok(parse_stats(&out))
    }

    /// `kill -9` of lbd; its pid, if it ran.
    pub fn kill_lbd(&mut self) -> Result<Option<u32>, String> {
        let out = self.sh("p=$(pidof lbd) && kill -9 $p && echo $p")?;
        Ok(out.trim().parse().ok())
    }

    /// Whether the VIP is on its eth0 (as the guest sees it).
    pub fn holds_vip(&mut self) -> Result<bool, String> {
        let out = self.sh("ip -4 addr show dev eth0")?;
        Ok(out.contains(&format!("inet {VIP}/32")))
    }

    /// The console lines printed since `from` (an index from [`Balancer::console_len`]).
    pub fn console_since(&self, from: usize) -> Vec<String> {
        self.guest
            .guest
            .console()
            .lines()
            .split_off(from.min(self.console_len()))
    }

    /// How many console lines there are so far.
    pub fn console_len(&self) -> usize {
        self.guest.guest.console().lines().len()
    }
}

/// Parses `PID RSS FDS` lines, PID 1 first.
fn parse_stats(out: &str) -> GuestStats {
    let mut stats = GuestStats::default();
    for line in out.lines() {
        let w: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [pid, rss_kib, fds] = w[..] else { continue };
        let p = ProcStats { rss_kib, fds };
        if pid == 1 {
            stats.init = p;
        } else {
            stats.lbd = Some(p);
            stats.lbd_pid = Some(pid as u32);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_parse() {
        let s = parse_stats("1 4552 12\n81 9000 23\n");
        assert_eq!(
            s.init,
            ProcStats {
                rss_kib: 4552,
                fds: 12
            }
        );
        assert_eq!(
            s.lbd,
            Some(ProcStats {
                rss_kib: 9000,
                fds: 23
            })
        );
        assert_eq!(s.lbd_pid, Some(81));
        assert_eq!(parse_stats("1 4552 12\n").lbd, None);
    }
}
