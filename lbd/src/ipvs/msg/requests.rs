//! The request builders, each the message for one kernel operation; re-exported as
//! [`super::request`].

use super::super::nl;
use super::entries::{addr_bytes, af_of};
use super::{
    cmd, cmd_attr, netmask_bytes, CmdAttr, DaemonAttr, DaemonEntry, DaemonState, DestEntry,
    DestSettings, FlagsAttr, IpvsMessage, ServiceEntry, ServiceId, SvcAttr, Timeouts, SVC_F_HASHED,
};
use std::net::IpAddr;

pub fn get_info() -> IpvsMessage {
    IpvsMessage::new(cmd::GET_INFO, vec![])
}
pub fn get_services() -> IpvsMessage {
    IpvsMessage::new(cmd::GET_SERVICE, vec![])
}
pub fn add_service(s: &ServiceEntry) -> IpvsMessage {
    IpvsMessage::new(cmd::NEW_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
}
pub fn edit_service(s: &ServiceEntry) -> IpvsMessage {
    IpvsMessage::new(cmd::SET_SERVICE, vec![CmdAttr::Service(s.to_attrs())])
}
/// A service's settings as NEW_SERVICE and SET_SERVICE carry them, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSettings<'a> {
    pub id: &'a ServiceId,
    pub scheduler: &'a str,
    pub flags: u32,
    pub timeout: u32,
    pub netmask: u8,
    pub pe_name: Option<&'a str>,
}
/// The attributes of [`add_service`] and [`edit_service`] (the same bytes, in the order of
/// [`ServiceEntry::to_attrs`]), written without building the message and copying its names.
pub fn write_service_attrs(buf: &mut Vec<u8>, s: &ServiceSettings) {
    use super::attrs::svc_attr;
    nl::put_nested(buf, cmd_attr::SERVICE, |b| {
        s.id.each_attr(|a| a.emit(b));
        nl::put_str(b, svc_attr::SCHED_NAME, s.scheduler);
        SvcAttr::Flags(FlagsAttr {
            flags: s.flags & !SVC_F_HASHED,
            mask: u32::MAX,
        })
        .emit(b);
        nl::put_u32(b, svc_attr::TIMEOUT, s.timeout);
        nl::put_array(b, svc_attr::NETMASK, netmask_bytes(s.id.af(), s.netmask));
        if let Some(pe) = s.pe_name {
            nl::put_str(b, svc_attr::PE_NAME, pe);
        }
    });
}
pub fn del_service(id: &ServiceId) -> IpvsMessage {
    IpvsMessage::new(cmd::DEL_SERVICE, vec![CmdAttr::Service(id.attrs())])
}
pub fn get_dests(id: &ServiceId) -> IpvsMessage {
    IpvsMessage::new(cmd::GET_DEST, vec![CmdAttr::Service(id.attrs())])
}
pub fn add_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
    IpvsMessage::new(
        cmd::NEW_DEST,
        vec![CmdAttr::Service(id.attrs()), CmdAttr::Dest(d.to_attrs())],
    )
}
pub fn edit_dest(id: &ServiceId, d: &DestEntry) -> IpvsMessage {
    IpvsMessage::new(
        cmd::SET_DEST,
        vec![CmdAttr::Service(id.attrs()), CmdAttr::Dest(d.to_attrs())],
    )
}
/// The attributes of [`add_dest`] and [`edit_dest`] (the same bytes), written straight into
/// `buf` without building the message: the bulk of a full apply.
pub fn write_dest_attrs(buf: &mut Vec<u8>, id: &ServiceId, d: &DestEntry) {
    write_dest_settings_attrs(buf, id, &d.settings());
}
/// [`write_dest_attrs`] from the settings alone, without a [`DestEntry`] and its counters.
/// The same attributes as the generic writers give (`ServiceId::each_attr`,
/// `DestSettings::each_attr`, held to the same bytes by the tests), written straight: this
/// is most of a full apply's encoding.
pub fn write_dest_settings_attrs(buf: &mut Vec<u8>, id: &ServiceId, d: &DestSettings) {
    use super::attrs::dest_attr;
    // Service 48 bytes at most, destination 96 with a tunnel.
    let mut w = nl::StackAttrs::<144>::default();
    let service = w.start_nested(cmd_attr::SERVICE);
    write_service_id(&mut w, id);
    w.end_nested(service);
    let dest = w.start_nested(cmd_attr::DEST);
    w.put(dest_attr::ADDR_FAMILY, af_of(&d.addr).to_ne_bytes());
    w.put(dest_attr::ADDR, addr_bytes(&d.addr));
    w.put(dest_attr::PORT, d.port.to_be_bytes());
    w.put(dest_attr::FWD_METHOD, d.fwd.conn_flags().to_ne_bytes());
    w.put(dest_attr::WEIGHT, d.weight.to_ne_bytes());
    w.put(dest_attr::U_THRESH, d.upper_threshold.to_ne_bytes());
    w.put(dest_attr::L_THRESH, d.lower_threshold.to_ne_bytes());
    if let Some(t) = d.tunnel {
        w.put(dest_attr::TUN_TYPE, [t.kind]);
        w.put(dest_attr::TUN_PORT, t.port.to_be_bytes());
        w.put(dest_attr::TUN_FLAGS, t.flags.to_ne_bytes());
    }
    w.end_nested(dest);
    buf.extend_from_slice(w.bytes());
}

/// A service's key attributes, as [`ServiceId::each_attr`] gives them.
fn write_service_id<const CAP: usize>(w: &mut nl::StackAttrs<CAP>, id: &ServiceId) {
    use super::attrs::svc_attr;
    match *id {
        ServiceId::Addr {
            protocol,
            addr,
            port,
        } => {
            w.put(svc_attr::AF, af_of(&addr).to_ne_bytes());
            w.put(svc_attr::PROTOCOL, protocol.to_ne_bytes());
            w.put(svc_attr::ADDR, addr_bytes(&addr));
            w.put(svc_attr::PORT, port.to_be_bytes());
        }
        ServiceId::Fwmark { af, mark } => {
            w.put(svc_attr::AF, af.to_ne_bytes());
            w.put(svc_attr::FWMARK, mark.to_ne_bytes());
        }
    }
}
/// The attributes of [`del_dest`], written as [`write_dest_attrs`] does.
pub fn write_del_dest_attrs(buf: &mut Vec<u8>, id: &ServiceId, addr: &IpAddr, port: u16) {
    nl::put_nested(buf, cmd_attr::SERVICE, |b| id.each_attr(|a| a.emit(b)));
    nl::put_nested(buf, cmd_attr::DEST, |b| {
        DestEntry::each_key_attr(addr, port, |a| a.emit(b))
    });
}
pub fn del_dest(id: &ServiceId, addr: &IpAddr, port: u16) -> IpvsMessage {
    IpvsMessage::new(
        cmd::DEL_DEST,
        vec![
            CmdAttr::Service(id.attrs()),
            CmdAttr::Dest(DestEntry::key_attrs(addr, port)),
        ],
    )
}
pub fn get_timeouts() -> IpvsMessage {
    IpvsMessage::new(cmd::GET_CONFIG, vec![])
}
/// Fields that are 0 are left unchanged by the kernel.
pub fn set_timeouts(t: &Timeouts) -> IpvsMessage {
    IpvsMessage::new(
        cmd::SET_CONFIG,
        vec![
            CmdAttr::TimeoutTcp(t.tcp),
            CmdAttr::TimeoutTcpFin(t.tcp_fin),
            CmdAttr::TimeoutUdp(t.udp),
        ],
    )
}
pub fn get_daemons() -> IpvsMessage {
    IpvsMessage::new(cmd::GET_DAEMON, vec![])
}
pub fn start_daemon(d: &DaemonEntry) -> IpvsMessage {
    IpvsMessage::new(cmd::NEW_DAEMON, vec![CmdAttr::Daemon(d.to_attrs())])
}
pub fn stop_daemon(state: DaemonState) -> IpvsMessage {
    IpvsMessage::new(
        cmd::DEL_DAEMON,
        vec![CmdAttr::Daemon(vec![DaemonAttr::State(state.raw())])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::msg::{FwdMethod, Tunnel, AF_INET6, IPPROTO_TCP};

    /// The straight writer against the generic one, for every shape of service key and
    /// destination (IPv4, IPv6, fwmark; with and without a tunnel).
    #[test]
    fn destination_requests_are_the_bytes_of_the_generic_writer() {
        let services = [
            ServiceId::Addr {
                protocol: IPPROTO_TCP,
                addr: "192.0.2.10".parse().unwrap(),
                port: 443,
            },
            ServiceId::Addr {
                protocol: 17,
                addr: "2001:db8::10".parse().unwrap(),
                port: 53,
            },
            ServiceId::Fwmark {
                af: AF_INET6,
                mark: 0x1234_5678,
            },
        ];
        let tunnels = [
            None,
            Some(Tunnel {
                kind: 1,
                port: 6081,
                flags: 3,
            }),
        ];
        for id in &services {
            for addr in ["10.1.0.11", "2001:db8::beef"] {
                for tunnel in tunnels {
                    let d = DestSettings {
                        addr: addr.parse().unwrap(),
                        port: 8080,
                        fwd: FwdMethod::Tunnel,
                        weight: 70000,
                        upper_threshold: 100,
                        lower_threshold: 10,
                        tunnel,
                    };
                    let mut want = Vec::new();
                    nl::put_nested(&mut want, cmd_attr::SERVICE, |b| {
                        id.each_attr(|a| a.emit(b))
                    });
                    nl::put_nested(&mut want, cmd_attr::DEST, |b| d.each_attr(|a| a.emit(b)));
                    let mut got = vec![0xaa];
                    write_dest_settings_attrs(&mut got, id, &d);
                    assert_eq!(got[0], 0xaa, "appended, not overwritten");
                    assert_eq!(got[1..], want[..], "{id} {addr} {tunnel:?}");
                }
            }
        }
    }
}
