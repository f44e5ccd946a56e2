//! The request builders, each the message for one kernel operation; re-exported as
//! [`super::request`].

use super::super::nl;
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
pub fn write_dest_settings_attrs(buf: &mut Vec<u8>, id: &ServiceId, d: &DestSettings) {
    nl::put_nested(buf, cmd_attr::SERVICE, |b| id.each_attr(|a| a.emit(b)));
    nl::put_nested(buf, cmd_attr::DEST, |b| d.each_attr(|a| a.emit(b)));
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
