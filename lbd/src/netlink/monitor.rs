//! Link and address changes as the kernel announces them (rtnetlink multicast groups).

use super::types::{Link, NetError};

/// A change the monitor saw.
#[derive(Debug, Clone)]
pub enum Event {
    Link(Link),
    LinkGone(Link),
    /// Some address was added or removed: who needs addresses must look again.
    Addresses,
}

/// Subscribes to link and address changes. The receiver yields events until the connection
/// fails; the task forwards them and ends with it.
pub fn monitor() -> Result<
    (
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::UnboundedReceiver<Event>,
    ),
    NetError,
> {
    use futures::StreamExt;
    use rtnetlink::packet_core::NetlinkPayload;
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    use rtnetlink::MulticastGroup as G;
    let (conn, _handle, mut messages) =
        rtnetlink::new_multicast_connection(&[G::Link, G::Ipv4Ifaddr, G::Ipv6Ifaddr])
            .map_err(NetError::Connect)?;
    let conn_task = tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let fwd = tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let ev = match msg.payload {
                NetlinkPayload::InnerMessage(M::NewLink(l)) => Event::Link(Link::from_message(&l)),
                NetlinkPayload::InnerMessage(M::DelLink(l)) => {
                    Event::LinkGone(Link::from_message(&l))
                }
                NetlinkPayload::InnerMessage(M::NewAddress(_) | M::DelAddress(_)) => {
                    Event::Addresses
                }
                _ => continue,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
        conn_task.abort();
    });
    Ok((fwd, rx))
}
