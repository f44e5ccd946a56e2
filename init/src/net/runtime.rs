//! The I/O edge of the DHCP client: owns the clock, the UDP socket and the netlink connection,
//! feeds [`DhcpClient`] and carries out its actions.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use dhcproto::v4::Message;
use lbd::netlink::RouteProtocol;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::dhcp::message::{self, DHCP_CLIENT_PORT, DHCP_SERVER_PORT};
use super::dhcp::{Action, Destination, DhcpClient, Input, Lease};
use super::ipspec::{same_subnet, IpSpec};
use super::link::{AddressOptions, Link, Netlink};
use super::{resolv, NetError};

/// Opens the client socket: UDP 0.0.0.0:68, bound to `device` (so it sends and receives only
/// there, before the link has an address) and allowed to broadcast.
pub(crate) fn open_socket(device: &str) -> Result<UdpSocket, NetError> {
    let err = |what: &'static str| {
        let device = device.to_string();
        move |errno: nix::Error| NetError::Socket {
            device,
            what,
            source: std::io::Error::from(errno),
        }
    };
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(err("socket"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err("SO_REUSEADDR"))?;
    socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(err("SO_BROADCAST"))?;
    socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(device))
        .map_err(err("SO_BINDTODEVICE"))?;
    let addr = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DHCP_CLIENT_PORT));
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).map_err(err("bind 0.0.0.0:68"))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd)).map_err(|source| NetError::Socket {
        device: device.to_string(),
        what: "register with tokio",
        source,
    })
}

/// What `ip=` and the options say about applying a lease.
#[derive(Debug, Clone)]
pub(crate) struct Apply {
    pub spec: IpSpec,
    pub resolv_conf: Option<std::path::PathBuf>,
    pub set_hostname: bool,
}

/// The values actually used: the lease, with what `ip=` gives explicitly winning (as in the
/// kernel's ipconfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Effective {
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub next_server: Option<Ipv4Addr>,
}

pub(crate) fn effective(spec: &IpSpec, lease: &Lease) -> Effective {
    Effective {
        gateway: spec.gateway.or_else(|| lease.routers.first().copied()),
        dns: if spec.dns.is_empty() {
            lease.dns.clone()
        } else {
            spec.dns.clone()
        },
        hostname: spec.hostname.clone().or_else(|| lease.hostname.clone()),
        next_server: spec.server.or(lease.next_server),
    }
}

/// Sets the kernel hostname.
pub(crate) fn set_hostname(name: &str) -> Result<(), NetError> {
    nix::unistd::sethostname(name).map_err(|source| NetError::Hostname {
        name: name.to_string(),
        source,
    })
}

/// Drives one [`DhcpClient`] on one link.
pub(crate) struct Driver {
    client: DhcpClient,
    socket: UdpSocket,
    nl: Netlink,
    link: Link,
    apply: Apply,
    timer: Option<Instant>,
    status: watch::Sender<Option<Lease>>,
    last_hostname: Option<String>,
    last_resolv: Option<String>,
}

enum Event {
    Packet(Box<Message>),
    Timer,
    Deadline,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    pub fn new(
        client: DhcpClient,
        socket: UdpSocket,
        nl: Netlink,
        link: Link,
        apply: Apply,
    ) -> Self {
        let (status, _) = watch::channel(None);
        Driver {
            client,
            socket,
            nl,
            link,
            apply,
            timer: None,
            status,
            last_hostname: None,
            last_resolv: None,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Lease>> {
        self.status.subscribe()
    }

    /// Waits for the next packet for us, the client's timer, or `deadline`.
    async fn next_event(&mut self, deadline: Option<Instant>) -> Event {
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((len, from)) => match message::decode(&buf[..len]) {
                        Ok(msg) => return Event::Packet(Box::new(msg)),
                        Err(e) => tracing::debug!(%from, error = %e, "ignoring undecodable packet"),
                    },
                    Err(e) => {
                        tracing::warn!(device = %self.link.name, error = %e, "DHCP socket receive failed");
                        // Do not spin on a persistent error; the timers still run.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = sleep_until(self.timer) => return Event::Timer,
                _ = sleep_until(deadline) => return Event::Deadline,
            }
        }
    }

    /// Starts the client and runs until the first lease is applied or `timeout` passes.
    pub async fn run_until_bound(&mut self, timeout: Duration) -> Result<Lease, NetError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let actions = self.client.step(started, Input::Start);
        if let Some(lease) = self.execute(actions).await? {
            return Ok(lease);
        }
        loop {
            let input = match self.next_event(Some(deadline)).await {
                Event::Packet(msg) => Input::Packet(msg),
                Event::Timer => Input::Timeout,
                Event::Deadline => {
                    let st = self.client.stats();
                    return Err(NetError::DhcpTimeout {
                        device: self.link.name.clone(),
                        waited: started.elapsed(),
                        discovers: st.discovers_sent,
                        requests: st.requests_sent,
                        offers: st.offers_received,
                        naks: st.naks_received,
                    });
                }
            };
            let actions = self.client.step(Instant::now(), input);
            if let Some(lease) = self.execute(actions).await? {
                return Ok(lease);
            }
        }
    }

    /// Keeps the lease for ever: renew, rebind, expire, start over. Errors applying a lease are
    /// logged and retried at the next event; the link may come back.
    pub async fn keep(mut self) {
        loop {
            let input = match self.next_event(None).await {
                Event::Packet(msg) => Input::Packet(msg),
                Event::Timer | Event::Deadline => Input::Timeout,
            };
            let actions = self.client.step(Instant::now(), input);
            if let Err(e) = self.execute(actions).await {
                tracing::error!(device = %self.link.name, error = %e, "applying DHCP lease failed");
            }
        }
    }

    /// Carries out actions in order; returns the lease if one was configured.
    async fn execute(&mut self, actions: Vec<Action>) -> Result<Option<Lease>, NetError> {
        let mut configured = None;
        for action in actions {
            match action {
                Action::Send { message, to } => self.send(&message, to).await,
                Action::ArmTimer(at) => self.timer = Some(at),
                Action::CancelTimer => self.timer = None,
                Action::Drop(lease) => {
                    self.drop_lease(&lease).await?;
                    self.status.send_replace(None);
                }
                Action::Configure(lease) => {
                    self.configure(&lease).await?;
                    self.status.send_replace(Some(lease.clone()));
                    configured = Some(lease);
                }
            }
        }
        Ok(configured)
    }

    async fn send(&self, msg: &Message, to: Destination) {
        let bytes = match message::encode(msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode DHCP message");
                return;
            }
        };
        let dest = match to {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(ip) => ip,
        };
        let kind = msg.opts().msg_type();
        tracing::debug!(device = %self.link.name, ?kind, %dest, xid = msg.xid(), secs = msg.secs(), "DHCP send");
        // A failed send is not fatal: the client retransmits on its timer.
        if let Err(e) = self
            .socket
            .send_to(&bytes, SocketAddrV4::new(dest, DHCP_SERVER_PORT))
            .await
        {
            tracing::warn!(device = %self.link.name, %dest, error = %e, "DHCP send failed");
        }
    }

    async fn configure(&mut self, lease: &Lease) -> Result<(), NetError> {
        let now = Instant::now();
        let eff = effective(&self.apply.spec, lease);
        let renewed = self
            .status
            .borrow()
            .as_ref()
            .is_some_and(|l| l.address == lease.address);
        let opts = AddressOptions {
            lifetime: lease.remaining(now),
            ..AddressOptions::default()
        };
        self.nl
            .add_address(
                self.link.index,
                &self.link.name,
                IpAddr::V4(lease.address),
                lease.prefix_len,
                opts,
            )
            .await?;
        if let Some(gw) = eff.gateway {
            let onlink = !same_subnet(lease.address, lease.prefix_len, gw);
            self.nl
                .set_default_route(&self.link, gw, RouteProtocol::Dhcp, onlink)
                .await?;
        }
        if self.apply.set_hostname && eff.hostname != self.last_hostname {
            if let Some(name) = &eff.hostname {
                set_hostname(name)?;
            }
            self.last_hostname = eff.hostname.clone();
        }
        if let Some(path) = &self.apply.resolv_conf {
            let text = resolv::render(
                &format!("DHCP server {}", lease.server),
                lease.domain.as_deref(),
                &eff.dns,
            );
            if self.last_resolv.as_ref() != Some(&text) {
                resolv::write(path, &text)?;
                self.last_resolv = Some(text);
            }
        }
        tracing::info!(
            device = %self.link.name,
            address = %lease.address,
            prefix_len = lease.prefix_len,
            gateway = ?eff.gateway,
            server = %lease.server,
            lease_secs = lease.lease_time.map(|d| d.as_secs()),
            renew_in_secs = lease.t1.map(|d| d.as_secs()),
            "{}", if renewed { "DHCP lease renewed" } else { "DHCP lease obtained" }
        );
        Ok(())
    }

    async fn drop_lease(&mut self, lease: &Lease) -> Result<(), NetError> {
        tracing::warn!(device = %self.link.name, address = %lease.address, "DHCP lease lost, removing address");
        let eff = effective(&self.apply.spec, lease);
        if let Some(gw) = eff.gateway {
            self.nl
                .del_default_route(&self.link, gw, RouteProtocol::Dhcp)
                .await?;
        }
        self.nl
            .del_address(
                self.link.index,
                &self.link.name,
                IpAddr::V4(lease.address),
                lease.prefix_len,
            )
            .await?;
        Ok(())
    }
}

/// A handle on the task that keeps a DHCP lease (renew at T1, rebind at T2, drop and start over
/// at expiry). The task runs on the runtime `configure` was called on; dropping the handle does
/// not stop it.
#[derive(Debug, Clone)]
pub struct LeaseKeeper {
    status: watch::Receiver<Option<Lease>>,
    task: tokio::task::AbortHandle,
}

impl LeaseKeeper {
    pub(crate) fn spawn(driver: Driver) -> Self {
        let status = driver.subscribe();
        let task = tokio::spawn(driver.keep()).abort_handle();
        LeaseKeeper { status, task }
    }

    /// The lease now: `None` while there is none (expired or NAKed, searching again).
    pub fn current(&self) -> Option<Lease> {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change: obtained, renewed (new `obtained_at`), lost, replaced.
    /// Init should re-resolve `${ip}` in config URLs when the address changes.
    pub fn watch(&self) -> watch::Receiver<Option<Lease>> {
        self.status.clone()
    }

    /// Stops keeping the lease. The address stays until its kernel lifetime runs out.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Whether the task is still running (it only ends by [`LeaseKeeper::stop`] or runtime end).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 0, 50),
            prefix_len: 24,
            server: Ipv4Addr::new(10, 0, 0, 1),
            routers: vec![Ipv4Addr::new(10, 0, 0, 254), Ipv4Addr::new(10, 0, 0, 253)],
            dns: vec![Ipv4Addr::new(10, 0, 0, 53)],
            domain: None,
            hostname: Some("from-dhcp".into()),
            ntp: vec![],
            next_server: Some(Ipv4Addr::new(10, 0, 0, 7)),
            tftp_server_name: None,
            bootfile: None,
            lease_time: Some(Duration::from_secs(120)),
            t1: Some(Duration::from_secs(60)),
            t2: Some(Duration::from_secs(105)),
            obtained_at: Instant::now(),
        }
    }

    #[test]
    fn lease_values_unless_ip_gives_them() {
        let l = lease();
        assert_eq!(
            effective(&IpSpec::dhcp(), &l),
            Effective {
                gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
                dns: vec![Ipv4Addr::new(10, 0, 0, 53)],
                hostname: Some("from-dhcp".into()),
                next_server: Some(Ipv4Addr::new(10, 0, 0, 7)),
            }
        );
        let spec = IpSpec::parse(":10.9.9.9:10.0.0.1::node7:eth0:dhcp:1.1.1.1").unwrap();
        assert_eq!(
            effective(&spec, &l),
            Effective {
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                dns: vec![Ipv4Addr::new(1, 1, 1, 1)],
                hostname: Some("node7".into()),
                next_server: Some(Ipv4Addr::new(10, 9, 9, 9)),
            }
        );
        let mut bare = l;
        bare.routers.clear();
        bare.hostname = None;
        bare.next_server = None;
        let e = effective(&IpSpec::dhcp(), &bare);
        assert_eq!((e.gateway, e.hostname, e.next_server), (None, None, None));
    }
}
