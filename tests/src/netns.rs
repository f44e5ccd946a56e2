//! Network namespaces for test topologies: a uniquely named namespace with bridges, taps and veth
//! pairs, commands run inside it, and removal of everything (processes included) on drop.
//!
//! Names look like `lbt-<pid>-<n>-<tag>`. Namespaces left behind by a test process that was
//! killed (so its drops never ran) are removed the next time one is created.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::process::{self, ChildGuard, CommandError};

const PREFIX: &str = "lbt-";

/// A namespace operation that failed.
#[derive(thiserror::Error)]
pub enum NetnsError {
    /// Namespaces, taps and bridges need root.
    #[error("network namespace tests need root (running as uid {uid}); run the tests as root")]
    NotRoot {
        /// The effective uid.
        uid: u32,
    },
    /// An `ip` (or other) command failed.
    #[error("network namespace {ns}: {source}")]
    Command {
        /// The namespace.
        ns: String,
        /// The failing command.
        #[source]
        source: CommandError,
    },
    /// A namespace of the wanted name exists and has processes in it.
    #[error("network namespace {ns} exists and processes run in it (pids {pids}); is another one running? (`ip netns del {ns}` removes it)")]
    InUse {
        /// The namespace.
        ns: String,
        /// What runs inside.
        pids: String,
    },
    /// Entering the namespace failed.
    #[error("cannot enter network namespace {ns}: {detail}")]
    Enter {
        /// The namespace.
        ns: String,
        /// Why.
        detail: String,
    },
}

crate::debug_is_display!(NetnsError);

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace owned by the test; deleted (with its interfaces and processes) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `lbt-<pid>-<n>-<tag>` with `lo` up. Fails with a clear message without root or
    /// without `ip netns` support.
    pub fn new(tag: &str) -> Result<Self, NetnsError> {
        if !process::is_root() {
            return Err(NetnsError::NotRoot {
                uid: nix::unistd::geteuid().as_raw(),
            });
        }
        remove_stale();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(16)
            .collect();
        let name = format!(
            "{PREFIX}{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        process::run_args("ip", &["netns", "add", &name]).map_err(|source| {
            NetnsError::Command {
                ns: name.clone(),
                source,
            }
        })?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace with exactly `name` (for a topology a person uses by name, such as
    /// the demo's), `lo` up. A leftover namespace of that name with nothing running in it is
    /// removed first; one with processes in it is an error. Deleted on drop like the others.
    pub fn named(name: &str) -> Result<Self, NetnsError> {
        if !process::is_root() {
            return Err(NetnsError::NotRoot {
                uid: nix::unistd::geteuid().as_raw(),
            });
        }
        if Path::new("/run/netns").join(name).exists() {
            let pids = ns_pids(name);
            if !pids.is_empty() {
                return Err(NetnsError::InUse {
                    ns: name.to_owned(),
                    pids: pids
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
            delete(name);
        }
        process::run_args("ip", &["netns", "add", name]).map_err(|source| NetnsError::Command {
            ns: name.to_owned(),
            source,
        })?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec NAME`, `ip -n NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`). A
    /// bare name is a program of `tools/programs.txt`, run from the system's directories; a path
    /// runs as given.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = crate::programs::command("ip");
        c.args(["netns", "exec", &self.name])
            .arg(crate::programs::resolve_arg0(program.as_ref()));
        c
    }

    /// Runs `args[0]` with the other args inside the namespace; an unsuccessful exit is an error.
    pub fn run(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let (program, rest) = args.split_first().expect("a program to run");
        let mut c = self.command(program);
        c.args(rest);
        process::run(&mut c).map_err(|e| self.err(e))
    }

    /// Replaces the bridge-family nftables table `table` with one forward chain holding
    /// `rules` (one rule per line; none lets everything through). The script goes through a
    /// file in `dir` so that nft applies it as one transaction.
    pub fn set_bridge_rules(&self, dir: &Path, table: &str, rules: &str) -> Result<(), String> {
        let script = format!(
            "table bridge {table}\ndelete table bridge {table}\n\
             table bridge {table} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}\n  }}\n}}\n"
        );
        let path = dir.join(format!("{table}.nft"));
        std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
        self.run(&["nft", "-f", &path.to_string_lossy()])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Starts `args[0]` with the other args inside the namespace; it is killed when the guard
    /// drops (and in any case when the namespace is dropped).
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard, NetnsError> {
        let (program, rest) = args.split_first().expect("a program to run");
        let mut c = self.command(program);
        c.args(rest);
        ChildGuard::spawn(&mut c).map_err(|e| self.err(e))
    }

    /// Runs `ip -n NAME args...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        process::run_args("ip", &all).map_err(|e| self.err(e))
    }

    /// Adds a bridge and sets it up.
    pub fn add_bridge(&self, name: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.link_up(name)
    }

    /// [`Netns::add_bridge`] without multicast snooping: VRRP adverts and connection sync
    /// messages (multicast) reach every port, and an observer on the bridge sees them all.
    pub fn add_flooding_bridge(&self, name: &str) -> Result<(), NetnsError> {
        self.add_bridge(name)?;
        self.ip(&["link", "set", name, "type", "bridge", "mcast_snooping", "0"])
            .map(|_| ())
    }

    /// Makes this namespace a direct-routing real for `vips`: each is local (on `lo`), but
    /// never answered for in ARP nor used as an ARP source (`arp_ignore=1`, `arp_announce=2`
    /// on `all` and `eth0`).
    pub fn hold_dr_vips(&self, vips: &[std::net::IpAddr]) -> Result<(), NetnsError> {
        self.run(&[
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.eth0.arp_ignore=1",
            "net.ipv4.conf.eth0.arp_announce=2",
        ])?;
        for vip in vips {
            let prefix = if vip.is_ipv6() { 128 } else { 32 };
            self.add_addr("lo", &format!("{vip}/{prefix}"))?;
        }
        Ok(())
    }

    /// Adds a persistent tap device for QEMU (`-netdev tap,ifname=NAME`), enslaved to `bridge`
    /// if given, and sets it up.
    pub fn add_tap(&self, name: &str, bridge: Option<&str>) -> Result<(), NetnsError> {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        if let Some(br) = bridge {
            self.set_master(name, br)?;
        }
        self.link_up(name)
    }

    /// Adds a veth pair with both ends in this namespace, both up.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
        self.link_up(a)?;
        self.link_up(b)
    }

    /// Adds a veth pair `local` (here) ↔ `remote` (in `other`), both up. Deleting either
    /// namespace deletes the pair.
    pub fn add_veth_to(&self, local: &str, other: &Netns, remote: &str) -> Result<(), NetnsError> {
        self.ip(&[
            "link",
            "add",
            local,
            "type",
            "veth",
            "peer",
            "name",
            remote,
            "netns",
            &other.name,
        ])?;
        self.link_up(local)?;
        other.link_up(remote)
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`) to `dev`.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<(), NetnsError> {
        self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Sets `dev` up.
    pub fn link_up(&self, dev: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Enslaves `dev` to `bridge`.
    pub fn set_master(&self, dev: &str, bridge: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", dev, "master", bridge]).map(drop)
    }

    /// Runs `f` on a thread whose network namespace is this one, so Rust sockets opened in `f`
    /// live here. Returns what `f` returns.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let file = self.open()?;
        std::thread::scope(|s| {
            s.spawn(move || {
                self.set_thread_ns(&file)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a new thread inside this namespace and does not wait for it: for servers
    /// the test runs while it does other things. The handle's `join` gives what `f` returned.
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>, NetnsError> {
        let file = self.open()?;
        let ns = self.name.clone();
        Ok(std::thread::spawn(move || {
            // The file is open, so only a kernel without setns could refuse.
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("cannot enter network namespace {ns}: setns: {e}"));
            f()
        }))
    }

    /// Runs the future `f` makes on a thread inside this namespace, with its own current-thread
    /// tokio runtime, and returns its output (a panic inside is raised here).
    #[cfg(feature = "tokio")]
    pub fn run_async<F, Fut, T>(&self, f: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: std::future::Future<Output = T>,
        T: Send,
    {
        self.enter(|| current_thread_runtime().block_on(f()))
    }

    /// Like [`Netns::run_async`] without waiting: the handle's `join` gives the output.
    #[cfg(feature = "tokio")]
    pub fn spawn_async<F, Fut, T>(&self, f: F) -> Result<std::thread::JoinHandle<T>, NetnsError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        self.thread(|| current_thread_runtime().block_on(f()))
    }

    fn open(&self) -> Result<File, NetnsError> {
        let path = Path::new("/run/netns").join(&self.name);
        File::open(&path).map_err(|e| NetnsError::Enter {
            ns: self.name.clone(),
            detail: format!("{}: {e}", path.display()),
        })
    }

    fn set_thread_ns(&self, file: &File) -> Result<(), NetnsError> {
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            NetnsError::Enter {
                ns: self.name.clone(),
                detail: format!("setns: {e}"),
            }
        })
    }

    /// Process ids running inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        ns_pids(&self.name)
    }

    fn err(&self, source: CommandError) -> NetnsError {
        NetnsError::Command {
            ns: self.name.clone(),
            source,
        }
    }
}

#[cfg(feature = "tokio")]
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn ns_pids(name: &str) -> Vec<i32> {
    process::run_args("ip", &["netns", "pids", name])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills what still runs inside (only processes this test started can be in its namespace),
/// then deletes the namespace, which deletes its interfaces.
fn delete(name: &str) {
    for _ in 0..3 {
        let pids = ns_pids(name);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if let Err(e) = process::run_args("ip", &["netns", "del", name]) {
        eprintln!("lbtest: could not delete network namespace {name}: {e}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
    }
}

/// The pid in a harness namespace name `lbt-<pid>-<n>-<tag>`.
fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Deletes harness namespaces whose creating process no longer exists.
fn remove_stale() {
    let Ok(list) = process::run_args("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        // `ip netns list` prints "name" or "name (id: 3)".
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(pid) = owner_pid(name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("lbtest: removing network namespace {name} left by exited process {pid}");
                delete(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_the_name() {
        assert_eq!(owner_pid("lbt-1234-0-ping"), Some(1234));
        assert_eq!(owner_pid("lbt-1234-7-"), Some(1234));
        assert_eq!(owner_pid("other-1234"), None);
        assert_eq!(owner_pid("lbt-x-1"), None);
    }
}
