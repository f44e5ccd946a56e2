//! Networking at boot: links, `ip=` parsing, static addresses and the DHCP client.
//!
//! - [`ipspec`] parses the kernel's `ip=` syntax into an [`IpSpec`] (pure).
//! - [`dhcp`] has the DHCPv4 messages and the client state machine (pure, fake-clock tested).
//! - [`link`] picks the boot link and waits for its carrier; links, addresses and routes go
//!   through the shared netlink layer, [`lbd::netlink`].
//! - [`resolv`] writes `/etc/resolv.conf`.
//! - [`configure`] puts it all together; it is what init's main calls.
//!
//! What init (main) does with this module:
//! 1. take the `ip=` values from the command line with [`ip_specs_from_cmdline`] (none → the
//!    default [`IpSpec::dhcp`]);
//! 2. call [`configure`] on a tokio runtime that lives as long as PID 1 (the DHCP lease keeper
//!    runs on it), with [`NetOptions::default`];
//! 3. on `Err`, log the error and retry after a pause or reboot: without network there is no
//!    config (except [`NetError::Disabled`], which is final);
//! 4. use [`NetInfo`] as documented on its fields.

pub mod apply;
pub mod bootlinks;
pub mod dhcp;
pub mod ipspec;
pub mod link;
pub mod plan;
pub mod resolv;
mod runtime;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use lbd::netlink::RouteProtocol;

pub use dhcp::{DhcpTiming, Lease};
pub use ipspec::{ip_specs_from_cmdline, IpMode, IpSpec, IpSpecError};
pub use link::{AddressOptions, Link, LinkError, Netlink};
pub use resolv::ResolvConfError;
pub use runtime::LeaseKeeper;

use dhcp::{ClientIdentity, DhcpClient, DhcpConfig};
use ipspec::same_subnet;

/// How [`configure`] behaves. [`Default`] is what PID 1 wants on a real box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Longest wait for carrier on the chosen link (or on any ethernet link when `ip=` names
    /// none), counted from when the links are brought up. Default 90 s
    /// ([`crate::cmdline::DEFAULT_CARRIER_TIMEOUT`]).
    pub carrier_timeout: Duration,
    /// Longest wait for the first DHCP lease, from the first DISCOVER. Default 60 s, enough
    /// for the RFC backoff to send 5 DISCOVERs (0, ~4, ~12, ~28 s, ~60 s).
    pub dhcp_timeout: Duration,
    /// Where to write the resolver config; `None` = do not write one. Default `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// Whether to `sethostname(2)` from `ip=` or the lease. Default true; tests on the host turn
    /// it off (the UTS namespace is shared with the host).
    pub set_hostname: bool,
    /// DHCP retransmission and lease timings. Default RFC 2131.
    pub dhcp: DhcpTiming,
    /// Seed for xids and retransmission jitter; `None` = random (mixed with the MAC so that
    /// identical boxes booting together do not pick the same xids).
    pub seed: Option<u64>,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            carrier_timeout: crate::cmdline::DEFAULT_CARRIER_TIMEOUT,
            dhcp_timeout: Duration::from_secs(60),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            set_hostname: true,
            dhcp: DhcpTiming::default(),
            seed: None,
        }
    }
}

/// The configured network, for the rest of init.
#[derive(Debug, Clone)]
pub struct NetInfo {
    /// The link configured (`eth0`...). Log it; lbd may need it for VRRP defaults.
    pub device: String,
    /// Its kernel index.
    pub ifindex: u32,
    /// Its MAC: `${mac}` in config URLs (the per-node key on the config server).
    pub mac: [u8; 6],
    /// Our address: `${ip}` in config URLs. Only valid while [`NetInfo::keeper`] holds the lease;
    /// watch it for changes.
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The default gateway set, if any (already in the routing table; nothing to do).
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers (already in resolv.conf if [`NetOptions::resolv_conf`] is set). Init resolves
    /// config-server names itself (no NSS in a static PID 1) and should use these.
    pub dns: Vec<Ipv4Addr>,
    /// DNS search domain (DHCP option 15).
    pub domain: Option<String>,
    /// Hostname from `ip=` or DHCP: `${hostname}` in config URLs. Already set in the kernel if
    /// [`NetOptions::set_hostname`].
    pub hostname: Option<String>,
    /// The boot server (`ip=` `<server-ip>`, else DHCP `siaddr`): default host for `tftp://` and
    /// `http://` config URLs that name none.
    pub next_server: Option<Ipv4Addr>,
    /// DHCP option 66 (or `sname`): TFTP server name, when given.
    pub tftp_server_name: Option<String>,
    /// DHCP option 67 (or `file`): boot file name, for information.
    pub bootfile: Option<String>,
    /// NTP servers (`ip=` `<ntp0-ip>`, else DHCP option 42). Nothing uses them yet.
    pub ntp: Vec<Ipv4Addr>,
    /// The DHCP lease as first obtained; `None` for a static address.
    pub lease: Option<Lease>,
    /// The task keeping the DHCP lease; `None` for a static address. Keep it (or a
    /// [`LeaseKeeper::watch`] receiver) to follow renewals and address changes.
    pub keeper: Option<LeaseKeeper>,
}

/// Why the network could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("ip=off: networking is disabled (lo is up, nothing else configured)")]
    Disabled,
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("DHCP socket on {device}: {what}: {source}")]
    Socket {
        device: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no DHCP lease on {device} after {waited:.1?}: sent {discovers} DISCOVER and {requests} REQUEST, got {offers} OFFER and {naks} NAK")]
    DhcpTimeout {
        device: String,
        waited: Duration,
        discovers: u32,
        requests: u32,
        offers: u32,
        naks: u32,
    },
    #[error("cannot set hostname to {name:?}: {source}")]
    Hostname {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    ResolvConf(#[from] ResolvConfError),
}

impl From<lbd::netlink::NetError> for NetError {
    fn from(e: lbd::netlink::NetError) -> Self {
        NetError::Link(LinkError::Netlink(e))
    }
}

/// Brings `lo` up with 127.0.0.1/8, then configures the link `spec` asks for: static, or DHCP
/// with a lease keeper spawned on the current tokio runtime. See [`NetInfo`] for what to do with
/// the result.
///
/// Runs in the calling thread's network namespace. Bounded in time by
/// [`NetOptions::carrier_timeout`] + [`NetOptions::dhcp_timeout`] (plus netlink round trips).
pub async fn configure(spec: &IpSpec, opts: &NetOptions) -> Result<NetInfo, NetError> {
    let nl = Netlink::connect()?;
    nl.loopback_up().await?;
    if spec.mode == IpMode::Off {
        return Err(NetError::Disabled);
    }
    let link = link::choose_link(&nl, spec.device.as_deref(), opts.carrier_timeout).await?;
    let mac = link.mac.ok_or_else(|| LinkError::NotEthernet {
        name: link.name.clone(),
        kind: format!("{:?}", link.kind),
    })?;
    match spec.mode {
        IpMode::Off => Err(NetError::Disabled),
        IpMode::Static {
            address,
            prefix_len,
        } => configure_static(spec, opts, &nl, &link, mac, address, prefix_len).await,
        IpMode::Dhcp => configure_dhcp(spec, opts, nl, link, mac).await,
    }
}

async fn configure_static(
    spec: &IpSpec,
    opts: &NetOptions,
    nl: &Netlink,
    link: &Link,
    mac: [u8; 6],
    address: Ipv4Addr,
    prefix_len: u8,
) -> Result<NetInfo, NetError> {
    nl.add_address(
        link.index,
        &link.name,
        IpAddr::V4(address),
        prefix_len,
        AddressOptions::default(),
    )
    .await?;
    if let Some(gw) = spec.gateway {
        let onlink = !same_subnet(address, prefix_len, gw);
        nl.set_default_route(link, gw, RouteProtocol::Static, onlink)
            .await?;
    }
    if opts.set_hostname {
        if let Some(name) = &spec.hostname {
            runtime::set_hostname(name)?;
        }
    }
    if let Some(path) = &opts.resolv_conf {
        resolv::write(path, &resolv::render("ip=", None, &spec.dns))?;
    }
    tracing::info!(
        device = %link.name,
        %address,
        prefix_len,
        gateway = ?spec.gateway,
        "static address configured"
    );
    Ok(NetInfo {
        device: link.name.clone(),
        ifindex: link.index,
        mac,
        address,
        prefix_len,
        gateway: spec.gateway,
        dns: spec.dns.clone(),
        domain: None,
        hostname: spec.hostname.clone(),
        next_server: spec.server,
        tftp_server_name: None,
        bootfile: None,
        ntp: spec.ntp.into_iter().collect(),
        lease: None,
        keeper: None,
    })
}

async fn configure_dhcp(
    spec: &IpSpec,
    opts: &NetOptions,
    nl: Netlink,
    link: Link,
    mac: [u8; 6],
) -> Result<NetInfo, NetError> {
    let socket = runtime::open_socket(&link.name)?;
    let cfg = DhcpConfig {
        identity: ClientIdentity {
            mac,
            hostname: spec.hostname.clone(),
        },
        timing: opts.dhcp.clone(),
    };
    let seed = opts.seed.unwrap_or_else(|| {
        let mut mac64 = [0u8; 8];
        mac64[..6].copy_from_slice(&mac);
        fastrand::u64(..) ^ u64::from_le_bytes(mac64)
    });
    let client = DhcpClient::new(cfg, seed, std::time::Instant::now());
    let apply = runtime::Apply {
        spec: spec.clone(),
        resolv_conf: opts.resolv_conf.clone(),
        set_hostname: opts.set_hostname,
    };
    let device = link.name.clone();
    let ifindex = link.index;
    tracing::info!(%device, "DHCP: looking for a lease");
    let mut driver = runtime::Driver::new(client, socket, nl, link, apply);
    let lease = driver.run_until_bound(opts.dhcp_timeout).await?;
    let eff = runtime::effective(spec, &lease);
    let keeper = LeaseKeeper::spawn(driver);
    Ok(NetInfo {
        device,
        ifindex,
        mac,
        address: lease.address,
        prefix_len: lease.prefix_len,
        gateway: eff.gateway,
        dns: eff.dns,
        domain: lease.domain.clone(),
        hostname: eff.hostname,
        next_server: eff.next_server,
        tftp_server_name: lease.tftp_server_name.clone(),
        bootfile: lease.bootfile.clone(),
        ntp: match spec.ntp {
            Some(ntp) => vec![ntp],
            None => lease.ntp.clone(),
        },
        lease: Some(lease),
        keeper: Some(keeper),
    })
}
