//! A blocking IPVS client over a generic netlink socket.
//!
//! neli opens the socket and resolves the family "IPVS" through the generic netlink
//! controller; the IPVS messages themselves are encoded and decoded by [`super::msg`] (neli's
//! typed attributes are not used for them: nested IPVS attributes are simpler as plain bytes).
//!
//! Changes are batched: many requests go out in one `sendmsg`, each with `NLM_F_ACK` and its
//! own sequence number, and the acknowledgements are read back in bulk. The kernel handles a
//! batch in order, within the `sendmsg` call, so a batch costs one system call to send plus one
//! cheap `recvmsg` per queued acknowledgement, instead of a round trip per request. Every
//! request gets its own result: one refused object does not stop the rest of the batch.

use super::msg::{
    self, request, DaemonEntry, DestEntry, Info, IpvsMessage, Request, ServiceEntry, ServiceId,
    Timeouts,
};
use super::nl::{self, GenlHeader, ParseError, Received};
use neli::consts::genl::{CtrlAttr, CtrlCmd};
use neli::consts::nl::{GenlId, NlmF};
use neli::consts::socket::{Msg, NlFamily};
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, NlattrBuilder};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::socket::NlSocket;
use neli::types::GenlBuffer;
use neli::utils::Groups;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

// x86-64 Linux socket option numbers (not all are exported by libc for every target).
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;

/// Socket buffers asked for (root may exceed `rmem_max`): room for a few thousand queued ACKs.
const SOCKET_BUFFER: usize = 8 << 20;
/// Largest batch in bytes per `sendmsg` (the kernel refuses more than the send buffer).
const MAX_BATCH_BYTES: usize = 256 << 10;
/// How long to wait for the kernel before calling a request unanswered.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive slots: one datagram each (the kernel sizes a dump part to the reader's buffer, at
/// most 32 KiB; an ACK is tiny). Up to `RECV_SLOTS` datagrams are read per `recvmmsg`.
const RECV_SLOT: usize = 32 << 10;
const RECV_SLOTS: usize = 32;

/// An IPVS operation that failed, or a client that cannot talk to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("the kernel has no generic netlink family \"IPVS\": IPVS is not available (the ip_vs module is not loaded, or the kernel has no IPVS)")]
    Unavailable,
    #[error("IPVS netlink socket: {context}: {source}")]
    Socket {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("resolving the generic netlink family \"IPVS\": {0}")]
    Resolve(String),
    #[error("{what}: already exists ({})", errno_text(*errno))]
    AlreadyExists { what: String, errno: i32 },
    #[error("{what}: no such entry ({})", errno_text(*errno))]
    NotFound { what: String, errno: i32 },
    #[error("{what}: the kernel refused it: {}{}", errno_text(*errno), message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        what: String,
        errno: i32,
        message: Option<String>,
    },
    #[error("{what}: {source}")]
    Parse {
        what: String,
        #[source]
        source: ParseError,
    },
    #[error("{what}: no answer from the kernel within {timeout:?}")]
    NoAnswer { what: String, timeout: Duration },
}

/// "Invalid argument (EINVAL, errno 22)".
pub fn errno_text(e: i32) -> String {
    let errno = nix::errno::Errno::from_raw(e);
    format!("{} ({errno:?}, errno {e})", errno.desc())
}

impl IpvsError {
    /// The errno the kernel returned, if this is a kernel answer.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IpvsError::AlreadyExists { errno, .. }
            | IpvsError::NotFound { errno, .. }
            | IpvsError::Kernel { errno, .. } => Some(*errno),
            IpvsError::Socket { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    fn from_errno(what: String, errno: i32, message: Option<String>) -> IpvsError {
        match errno {
            libc::EEXIST => IpvsError::AlreadyExists { what, errno },
            // IPVS answers ESRCH for a missing service and ENOENT for a missing destination.
            libc::ESRCH | libc::ENOENT => IpvsError::NotFound { what, errno },
            _ => IpvsError::Kernel {
                what,
                errno,
                message,
            },
        }
    }
}

/// Netlink traffic of a client, for benchmarks and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Netlink messages sent (requests).
    pub messages_sent: u64,
    /// Netlink messages received (replies, ACKs, errors, DONE).
    pub messages_received: u64,
    /// `sendmsg` calls.
    pub sends: u64,
    /// `recvmsg` calls.
    pub recvs: u64,
}

/// A whole virtual-server table as dumped.
pub type Dump = Vec<(ServiceEntry, Vec<DestEntry>)>;

/// A connected IPVS client.
pub struct IpvsClient {
    sock: NlSocket,
    family: u16,
    seq: u32,
    batch: usize,
    /// `RECV_SLOTS` slots of `RECV_SLOT` bytes.
    buf: Vec<u8>,
    /// Lengths of the datagrams in the slots after a receive.
    lens: Vec<usize>,
    pub counters: Counters,
}

fn set_int_opt(fd: i32, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a c_int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int_opt(fd: i32, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is an open socket; v and len are valid for writes of their sizes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the generic netlink controller for a family's id (`None`: no such family).
pub fn resolve_family(name: &str) -> Result<Option<u16>, IpvsError> {
    let handle = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
        .map_err(|e| IpvsError::Resolve(format!("cannot open a generic netlink socket: {e}")))?;
    resolve_on(&handle, name)
}

fn resolve_on(handle: &NlSocketHandle, name: &str) -> Result<Option<u16>, IpvsError> {
    let r = |e: &dyn std::fmt::Display| IpvsError::Resolve(e.to_string());
    let attr = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(CtrlAttr::FamilyName)
                .build()
                .map_err(|e| r(&e))?,
        )
        .nla_payload(name)
        .build()
        .map_err(|e| r(&e))?;
    let genl = GenlmsghdrBuilder::default()
        .cmd(CtrlCmd::Getfamily)
        .version(2)
        .attrs(std::iter::once(attr).collect::<GenlBuffer<_, _>>())
        .build()
        .map_err(|e| r(&e))?;
    let msg = NlmsghdrBuilder::default()
        .nl_type(GenlId::Ctrl)
        .nl_flags(NlmF::REQUEST | NlmF::ACK)
        .nl_seq(1)
        .nl_payload(NlPayload::Payload(genl))
        .build()
        .map_err(|e| r(&e))?;
    handle.send(&msg).map_err(|e| r(&e))?;
    let mut id = None;
    // A reply, then the ACK: a few datagrams at most.
    for _ in 0..8 {
        let (iter, _) = handle
            .recv::<GenlId, Genlmsghdr<CtrlCmd, CtrlAttr>>()
            .map_err(|e| r(&e))?;
        for m in iter {
            let m = m.map_err(|e| r(&e))?;
            match m.nl_payload() {
                NlPayload::Payload(p) => {
                    if let Ok(v) = p
                        .attrs()
                        .get_attr_handle()
                        .get_attr_payload_as::<u16>(CtrlAttr::FamilyId)
                    {
                        id = Some(v);
                    }
                }
                NlPayload::Err(e) => {
                    return if -*e.error() == libc::ENOENT {
                        Ok(None)
                    } else {
                        Err(IpvsError::Resolve(format!(
                            "the controller answered: {}",
                            io::Error::from_raw_os_error(-*e.error())
                        )))
                    };
                }
                NlPayload::Ack(_) => return Ok(id),
                _ => {}
            }
        }
    }
    Ok(id)
}

impl IpvsClient {
    /// Opens a socket and resolves the IPVS family; [`IpvsError::Unavailable`] when the kernel
    /// has no IPVS.
    pub fn connect() -> Result<IpvsClient, IpvsError> {
        let handle =
            NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty()).map_err(|e| {
                IpvsError::Socket {
                    context: "opening a generic netlink socket",
                    source: io::Error::other(e.to_string()),
                }
            })?;
        let family = resolve_on(&handle, msg::IPVS_GENL_NAME)?.ok_or(IpvsError::Unavailable)?;
        let sock: NlSocket = handle.into();
        let fd = sock.as_raw_fd();
        let size = SOCKET_BUFFER as libc::c_int;
        // Bigger buffers if allowed (root), else whatever the system gives.
        if set_int_opt(fd, libc::SOL_SOCKET, SO_RCVBUFFORCE, size).is_err() {
            let _ = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        if set_int_opt(fd, libc::SOL_SOCKET, SO_SNDBUFFORCE, size).is_err() {
            let _ = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size);
        }
        // Errors carry only the request's header (we know the request), plus the kernel's
        // extended message when it has one.
        let _ = set_int_opt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = set_int_opt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: fd is open; tv is a valid timeval for the duration of the call.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(IpvsError::Socket {
                context: "setting the receive timeout",
                source: io::Error::last_os_error(),
            });
        }
        // Each queued ACK costs about 1 KiB of receive buffer (skb overhead): size the
        // batches so the acknowledgements of one batch always fit.
        let rcvbuf = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(212_992);
        let batch = (rcvbuf as usize / 2048).clamp(32, 2048);
        Ok(IpvsClient {
            sock,
            family,
            seq: 0,
            batch,
            buf: vec![0; RECV_SLOT * RECV_SLOTS],
            lens: Vec::with_capacity(RECV_SLOTS),
            counters: Counters::default(),
        })
    }

    /// The generic netlink family id the kernel gave IPVS.
    pub fn family(&self) -> u16 {
        self.family
    }

    /// How many requests go into one `sendmsg` at most.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send_buf(&mut self, buf: &[u8], count: usize) -> Result<(), IpvsError> {
        let n = self
            .sock
            .send(buf, Msg::empty())
            .map_err(|source| IpvsError::Socket {
                context: "sending requests",
                source,
            })?;
        if n != buf.len() {
            return Err(IpvsError::Socket {
                context: "sending requests",
                source: io::Error::other(format!("sent {n} of {} bytes", buf.len())),
            });
        }
        self.counters.sends += 1;
        self.counters.messages_sent += count as u64;
        Ok(())
    }

    /// Receives at least one datagram, and whatever else is already queued (up to
    /// `RECV_SLOTS`), with one `recvmmsg`. A dump's next part and its DONE are produced by the
    /// kernel while the previous one is read, so they are usually taken in the same call.
    /// Fills `self.lens`.
    fn recv_batch(&mut self, what: &dyn std::fmt::Display) -> Result<(), IpvsError> {
        let fd = self.sock.as_raw_fd();
        // SAFETY: zeroed iovec/mmsghdr are valid "empty" values; they are filled below.
        let mut iovs: [libc::iovec; RECV_SLOTS] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; RECV_SLOTS] = unsafe { std::mem::zeroed() };
        let base = self.buf.as_mut_ptr();
        for i in 0..RECV_SLOTS {
            // SAFETY: slot i lies within self.buf (RECV_SLOTS * RECV_SLOT bytes).
            iovs[i].iov_base = unsafe { base.add(i * RECV_SLOT) } as *mut libc::c_void;
            iovs[i].iov_len = RECV_SLOT;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: hdrs and the iovecs point into live buffers for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                RECV_SLOTS as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        self.counters.recvs += 1;
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut {
                    IpvsError::NoAnswer {
                        what: what.to_string(),
                        timeout: RECV_TIMEOUT,
                    }
                } else {
                    IpvsError::Socket {
                        context: "receiving replies",
                        source: e,
                    }
                },
            );
        }
        self.lens.clear();
        for h in &hdrs[..n as usize] {
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return Err(IpvsError::Socket {
                    context: "receiving replies",
                    source: io::Error::other(format!(
                        "a datagram was larger than {RECV_SLOT} bytes"
                    )),
                });
            }
            self.lens.push(h.msg_len as usize);
        }
        Ok(())
    }

    /// The datagrams of the last receive.
    fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.lens
            .iter()
            .enumerate()
            .map(|(i, len)| &self.buf[i * RECV_SLOT..i * RECV_SLOT + len])
    }

    fn write_request(&self, buf: &mut Vec<u8>, m: &impl Request, flags: u16, seq: u32) {
        nl::write_genl_message(
            buf,
            self.family,
            nl::NLM_F_REQUEST | flags,
            seq,
            GenlHeader {
                cmd: m.cmd(),
                version: msg::IPVS_GENL_VERSION,
            },
            |b| m.emit_attrs(b),
        );
    }

    /// Sends `requests` in batches and returns one result per request, in order. `Err` only
    /// when the socket itself fails (then the outcome of the unanswered requests is unknown).
    /// Each request comes with what it does, for messages: written out only for an error (a
    /// full apply sends thousands, nearly always without one).
    pub fn execute<W: std::fmt::Display, R: Request>(
        &mut self,
        requests: &[(W, R)],
    ) -> Result<Vec<Result<(), IpvsError>>, IpvsError> {
        let mut results: Vec<Option<Result<(), IpvsError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut start = 0;
        let mut buf = Vec::with_capacity(MAX_BATCH_BYTES);
        while start < requests.len() {
            buf.clear();
            let mut pending: HashMap<u32, usize> = HashMap::new();
            let mut end = start;
            while end < requests.len() && end - start < self.batch && buf.len() < MAX_BATCH_BYTES {
                let seq = self.next_seq();
                let m = &requests[end].1;
                self.write_request(&mut buf, m, nl::NLM_F_ACK, seq);
                pending.insert(seq, end);
                end += 1;
            }
            self.send_buf(&buf, end - start)?;
            while !pending.is_empty() {
                let what = &requests[*pending.values().min().expect("not empty")].0;
                self.recv_batch(what)?;
                let mut received = 0;
                for datagram in self.datagrams() {
                    for m in nl::messages(datagram) {
                        let m = m.map_err(|source| IpvsError::Parse {
                            what: "reading acknowledgements".into(),
                            source,
                        })?;
                        received += 1;
                        if let Received::Error {
                            errno,
                            request,
                            message,
                            ..
                        } = m
                        {
                            if let Some(i) = pending.remove(&request.seq) {
                                results[i] = Some(if errno == 0 {
                                    Ok(())
                                } else {
                                    Err(IpvsError::from_errno(
                                        requests[i].0.to_string(),
                                        errno,
                                        message,
                                    ))
                                });
                            }
                        }
                    }
                }
                self.counters.messages_received += received;
            }
            start = end;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every request was answered"))
            .collect())
    }

    /// Runs one request and waits for its acknowledgement.
    pub fn execute_one(&mut self, what: &str, m: IpvsMessage) -> Result<(), IpvsError> {
        let mut r = self.execute(&[(what, m)])?;
        r.pop().expect("one result")
    }

    /// Like [`Self::query`] for a dump whose replies each carry one nested attribute `kind`:
    /// returns what `read` makes of each nested payload, without building attribute lists.
    fn query_nested<T>(
        &mut self,
        what: &str,
        m: &IpvsMessage,
        kind: u16,
        read: impl Fn(&[u8]) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, IpvsError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        self.write_request(&mut buf, m, nl::NLM_F_DUMP, seq);
        self.send_buf(&buf, 1)?;
        let mut out = Vec::new();
        let perr = |source| IpvsError::Parse {
            what: what.to_string(),
            source,
        };
        loop {
            self.recv_batch(&what)?;
            let mut received = 0;
            let mut finished = None;
            for r in self.datagrams().flat_map(nl::messages) {
                let r = r.map_err(perr)?;
                received += 1;
                if finished.is_some() {
                    continue;
                }
                match r {
                    Received::Genl { header, attrs, .. } if header.seq == seq => {
                        if let Some(payload) = msg::nested_payload(attrs, kind).map_err(perr)? {
                            out.push(read(payload).map_err(perr)?);
                        }
                    }
                    Received::Done { header, errno } if header.seq == seq => {
                        finished = Some(errno);
                    }
                    Received::Error { errno, request, .. } if request.seq == seq => {
                        finished = Some(errno);
                    }
                    _ => {}
                }
            }
            self.counters.messages_received += received;
            match finished {
                Some(0) => return Ok(out),
                Some(errno) => return Err(IpvsError::from_errno(what.to_string(), errno, None)),
                None => {}
            }
        }
    }

    /// Sends `m` (as a dump or a plain request) and returns the reply datagrams exactly as the
    /// kernel sent them, up to and including the DONE or acknowledgement. For debugging and for
    /// capturing test vectors.
    pub fn query_raw(&mut self, m: &IpvsMessage, dump: bool) -> Result<Vec<Vec<u8>>, IpvsError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let flags = if dump { nl::NLM_F_DUMP } else { nl::NLM_F_ACK };
        self.write_request(&mut buf, m, flags, seq);
        self.send_buf(&buf, 1)?;
        let mut out = Vec::new();
        loop {
            self.recv_batch(&"raw query")?;
            let mut done = false;
            for d in self.datagrams() {
                for r in nl::messages(d).flatten() {
                    match r {
                        Received::Done { header, .. } if header.seq == seq => done = true,
                        Received::Error { request, .. } if request.seq == seq => done = true,
                        _ => {}
                    }
                }
                out.push(d.to_vec());
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// A request answered by data messages (a dump with `NLM_F_DUMP`, or a single reply);
    /// returns the replies.
    fn query(
        &mut self,
        what: &str,
        m: &IpvsMessage,
        dump: bool,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let flags = if dump { nl::NLM_F_DUMP } else { nl::NLM_F_ACK };
        self.write_request(&mut buf, m, flags, seq);
        self.send_buf(&buf, 1)?;
        let mut out = Vec::new();
        loop {
            self.recv_batch(&what)?;
            let mut received = 0;
            let mut finished = None;
            for r in self.datagrams().flat_map(nl::messages) {
                let r = r.map_err(|source| IpvsError::Parse {
                    what: what.to_string(),
                    source,
                })?;
                received += 1;
                if finished.is_some() {
                    continue;
                }
                match r {
                    Received::Genl {
                        header,
                        genl,
                        attrs,
                    } if header.seq == seq => {
                        out.push(IpvsMessage::parse(genl.cmd, attrs).map_err(|source| {
                            IpvsError::Parse {
                                what: what.to_string(),
                                source,
                            }
                        })?);
                    }
                    Received::Done { header, errno } if header.seq == seq => {
                        finished = Some(if errno != 0 {
                            Err(IpvsError::from_errno(what.to_string(), errno, None))
                        } else {
                            Ok(())
                        });
                    }
                    Received::Error {
                        errno,
                        request,
                        message,
                        ..
                    } if request.seq == seq => {
                        finished = Some(if errno != 0 {
                            Err(IpvsError::from_errno(what.to_string(), errno, message))
                        } else {
                            Ok(())
                        });
                    }
                    _ => {}
                }
            }
            self.counters.messages_received += received;
            if let Some(r) = finished {
                return r.map(|()| out);
            }
        }
    }

    /// IPVS version and connection table size.
    pub fn info(&mut self) -> Result<Info, IpvsError> {
        let what = "get IPVS info";
        let replies = self.query(what, &request::get_info(), false)?;
        let m = replies.first().ok_or_else(|| IpvsError::Parse {
            what: what.into(),
            source: ParseError::new("GET_INFO", "no reply message"),
        })?;
        msg::info_from(m).map_err(|source| IpvsError::Parse {
            what: what.into(),
            source,
        })
    }

    /// Every virtual service (without destinations).
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, IpvsError> {
        self.query_nested(
            "list services",
            &request::get_services(),
            msg::CMD_ATTR_SERVICE,
            ServiceEntry::parse_nested,
        )
    }

    /// The destinations of one service.
    pub fn dests(&mut self, id: &ServiceId) -> Result<Vec<DestEntry>, IpvsError> {
        let af = id.af();
        self.query_nested(
            &format!("list reals of {id}"),
            &request::get_dests(id),
            msg::CMD_ATTR_DEST,
            |p| DestEntry::parse_nested(p, af),
        )
    }

    /// The whole table: services, each with its destinations.
    pub fn dump(&mut self) -> Result<Dump, IpvsError> {
        let services = self.services()?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let dests = match self.dests(&s.id) {
                Ok(d) => d,
                // Deleted by someone else between the two dumps.
                Err(IpvsError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            out.push((s, dests));
        }
        Ok(out)
    }

    /// Connection timeouts (seconds).
    pub fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let replies = self.query("get timeouts", &request::get_timeouts(), false)?;
        Ok(replies.first().map(msg::timeouts_from).unwrap_or_default())
    }

    /// Sets timeouts; 0 leaves a value unchanged.
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError> {
        self.execute_one("set timeouts", request::set_timeouts(t))
    }

    /// Running sync daemons.
    pub fn daemons(&mut self) -> Result<Vec<DaemonEntry>, IpvsError> {
        let what = "list sync daemons";
        let replies = self.query(what, &request::get_daemons(), true)?;
        replies
            .iter()
            .filter_map(|m| m.daemon())
            .map(|a| {
                DaemonEntry::from_attrs(a).map_err(|source| IpvsError::Parse {
                    what: what.into(),
                    source,
                })
            })
            .collect()
    }

    pub fn add_service(&mut self, s: &ServiceEntry) -> Result<(), IpvsError> {
        self.execute_one(&format!("add service {}", s.id), request::add_service(s))
    }
    pub fn edit_service(&mut self, s: &ServiceEntry) -> Result<(), IpvsError> {
        self.execute_one(&format!("edit service {}", s.id), request::edit_service(s))
    }
    pub fn del_service(&mut self, id: &ServiceId) -> Result<(), IpvsError> {
        self.execute_one(&format!("delete service {id}"), request::del_service(id))
    }
    pub fn add_dest(&mut self, id: &ServiceId, d: &DestEntry) -> Result<(), IpvsError> {
        self.execute_one(
            &format!("add real {}:{} to {id}", d.addr, d.port),
            request::add_dest(id, d),
        )
    }
    pub fn edit_dest(&mut self, id: &ServiceId, d: &DestEntry) -> Result<(), IpvsError> {
        self.execute_one(
            &format!("edit real {}:{} of {id}", d.addr, d.port),
            request::edit_dest(id, d),
        )
    }
    pub fn del_dest(
        &mut self,
        id: &ServiceId,
        addr: &std::net::IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        self.execute_one(
            &format!("delete real {addr}:{port} from {id}"),
            request::del_dest(id, addr, port),
        )
    }
    pub fn start_daemon(&mut self, d: &DaemonEntry) -> Result<(), IpvsError> {
        self.execute_one("start sync daemon", request::start_daemon(d))
    }
    pub fn stop_daemon(&mut self, state: msg::DaemonState) -> Result<(), IpvsError> {
        self.execute_one("stop sync daemon", request::stop_daemon(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_keep_errno_and_split_exists_from_missing() {
        let e = IpvsError::from_errno("add service tcp 10.0.0.1:80".into(), libc::EEXIST, None);
        assert!(matches!(e, IpvsError::AlreadyExists { errno: 17, .. }));
        assert_eq!(
            e.to_string(),
            "add service tcp 10.0.0.1:80: already exists (File exists (EEXIST, errno 17))"
        );
        // IPVS says ESRCH for a missing service and ENOENT for a missing real.
        for errno in [libc::ESRCH, libc::ENOENT] {
            let e = IpvsError::from_errno("delete".into(), errno, None);
            assert!(matches!(e, IpvsError::NotFound { .. }), "{e}");
            assert_eq!(e.errno(), Some(errno));
        }
        let e = IpvsError::from_errno(
            "add real 10.0.2.255:80 to tcp 10.0.2.100:81".into(),
            libc::EINVAL,
            Some("bad address".into()),
        );
        assert_eq!(
            e.to_string(),
            "add real 10.0.2.255:80 to tcp 10.0.2.100:81: the kernel refused it: Invalid argument (EINVAL, errno 22): bad address"
        );
    }
}
