//! Netlink and generic-netlink framing: headers, attributes, error and done messages.
//!
//! Pure byte layout (`linux/netlink.h`, `linux/genetlink.h`), no sockets. Integers inside
//! netlink headers and most attributes are in host byte order; the IPVS layer on top says where
//! the kernel wants network order instead.

use std::fmt;

/// `struct nlmsghdr`: length, type, flags, sequence, port id.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct genlmsghdr`: command, version, reserved.
pub const GENL_HDRLEN: usize = 4;
/// `struct nlattr`: length, type.
pub const NLA_HDRLEN: usize = 4;

/// Attribute type flag: the payload is a nested attribute stream.
pub const NLA_F_NESTED: u16 = 0x8000;
/// Attribute type flag: the payload is in network byte order.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// The attribute type without its flags.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Request flags (`NLM_F_*`).
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_DUMP: u16 = 0x300;
/// On an error message: the original request was cut to its header (`NETLINK_CAP_ACK`).
pub const NLM_F_CAPPED: u16 = 0x100;
/// On an error message: extended-ack attributes follow (`NETLINK_EXT_ACK`).
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// Message types below `NLMSG_MIN_TYPE` are netlink's own.
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

/// Extended-ack attribute: a human-readable error message (NUL-terminated).
pub const NLMSGERR_ATTR_MSG: u16 = 1;

/// Generic netlink controller: its fixed family id and the commands/attributes we use.
pub const GENL_ID_CTRL: u16 = 0x10;

/// Rounds up to netlink's 4-byte alignment.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A malformed message or attribute from the kernel (or in a test vector).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink data in {what}: {detail}")]
pub struct ParseError {
    /// Which structure was being read (e.g. "service attribute PORT").
    pub what: String,
    /// What was wrong with it.
    pub detail: String,
}

impl ParseError {
    pub fn new(what: impl Into<String>, detail: impl Into<String>) -> Self {
        ParseError {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// `struct nlmsghdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NlHeader {
    /// Length of the whole message including this header, in bytes.
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlHeader {
    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.len.to_ne_bytes());
        buf.extend_from_slice(&self.kind.to_ne_bytes());
        buf.extend_from_slice(&self.flags.to_ne_bytes());
        buf.extend_from_slice(&self.seq.to_ne_bytes());
        buf.extend_from_slice(&self.pid.to_ne_bytes());
    }

    pub fn parse(b: &[u8]) -> Result<NlHeader, ParseError> {
        if b.len() < NLMSG_HDRLEN {
            return Err(ParseError::new(
                "netlink header",
                format!("{} bytes, need {NLMSG_HDRLEN}", b.len()),
            ));
        }
        Ok(NlHeader {
            len: u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes")),
            kind: u16::from_ne_bytes(b[4..6].try_into().expect("2 bytes")),
            flags: u16::from_ne_bytes(b[6..8].try_into().expect("2 bytes")),
            seq: u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes")),
            pid: u32::from_ne_bytes(b[12..16].try_into().expect("4 bytes")),
        })
    }
}

/// `struct genlmsghdr` (the reserved field is always 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenlHeader {
    pub cmd: u8,
    pub version: u8,
}

/// Appends one whole generic netlink message: headers, then what `body` writes (attributes);
/// the length is filled in at the end.
pub fn write_genl_message(
    buf: &mut Vec<u8>,
    family: u16,
    flags: u16,
    seq: u32,
    genl: GenlHeader,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = buf.len();
    NlHeader {
        len: 0,
        kind: family,
        flags,
        seq,
        pid: 0,
    }
    .emit(buf);
    buf.extend_from_slice(&[genl.cmd, genl.version, 0, 0]);
    body(buf);
    pad(buf);
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn pad(buf: &mut Vec<u8>) {
    let padded = align4(buf.len());
    buf.resize(padded, 0);
}

/// Appends an attribute with a raw payload (padded to 4 bytes).
pub fn put_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_parts(buf, kind, data, &[]);
}

/// An attribute whose payload is `data` then `tail`, written in one reservation: a full apply
/// writes over a hundred thousand attributes.
fn put_parts(buf: &mut Vec<u8>, kind: u16, data: &[u8], tail: &[u8]) {
    let len = NLA_HDRLEN + data.len() + tail.len();
    let padding = align4(len) - len;
    buf.reserve(len + padding);
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.extend_from_slice(tail);
    buf.extend_from_slice(&[0; 3][..padding]);
}

/// An attribute whose payload size is known when compiling (every integer, address and port
/// attribute), written as one copy of constant size: copies of a size known only at run time
/// each call `memmove`, and a full apply writes over a hundred thousand attributes.
#[inline]
pub fn put_array<const N: usize>(buf: &mut Vec<u8>, kind: u16, data: [u8; N]) {
    const { assert!(N <= 16, "put_array is for payloads of up to 16 bytes") };
    let mut attr = StackAttrs::<{ NLA_HDRLEN + 16 }>::default();
    attr.put(kind, data);
    buf.extend_from_slice(attr.bytes());
}

pub fn put_u8(buf: &mut Vec<u8>, kind: u16, v: u8) {
    put_array(buf, kind, [v]);
}

pub fn put_u16(buf: &mut Vec<u8>, kind: u16, v: u16) {
    put_array(buf, kind, v.to_ne_bytes());
}

pub fn put_u32(buf: &mut Vec<u8>, kind: u16, v: u32) {
    put_array(buf, kind, v.to_ne_bytes());
}

pub fn put_u64(buf: &mut Vec<u8>, kind: u16, v: u64) {
    put_array(buf, kind, v.to_ne_bytes());
}

/// A NUL-terminated string attribute (`NLA_NUL_STRING` / `NLA_STRING`).
pub fn put_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    put_parts(buf, kind, s.as_bytes(), &[0]);
}

/// Attributes written into a buffer on the stack, for a message whose largest size is known
/// (a destination request: at most 144 bytes), then appended to the request stream with one
/// copy. Each attribute goes in with a copy of constant size at a running offset: appending
/// to a `Vec` attribute by attribute costs a capacity check and, in code built for size, a
/// `memcpy` call for each, and a full apply writes over a hundred thousand.
pub struct StackAttrs<const CAP: usize> {
    buf: [u8; CAP],
    len: usize,
}

impl<const CAP: usize> Default for StackAttrs<CAP> {
    fn default() -> Self {
        StackAttrs {
            buf: [0; CAP],
            len: 0,
        }
    }
}

impl<const CAP: usize> StackAttrs<CAP> {
    /// An attribute of `N` payload bytes, padded to 4 (the padding is the buffer's zeros).
    /// Panics past `CAP`: callers size `CAP` for their largest message.
    #[inline(always)]
    pub fn put<const N: usize>(&mut self, kind: u16, data: [u8; N]) {
        let at = self.len;
        let attr = &mut self.buf[at..at + align4(NLA_HDRLEN + N)];
        attr[..2].copy_from_slice(&((NLA_HDRLEN + N) as u16).to_ne_bytes());
        attr[2..4].copy_from_slice(&kind.to_ne_bytes());
        attr[NLA_HDRLEN..NLA_HDRLEN + N].copy_from_slice(&data);
        self.len = at + align4(NLA_HDRLEN + N);
    }

    /// Opens a nested attribute; returns where it starts, for [`Self::end_nested`].
    #[inline(always)]
    pub fn start_nested(&mut self, kind: u16) -> usize {
        let at = self.len;
        self.buf[at + 2..at + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self.len = at + NLA_HDRLEN;
        at
    }

    /// Closes the nested attribute opened at `start`: its length is what was written since.
    #[inline(always)]
    pub fn end_nested(&mut self, start: usize) {
        let len = (self.len - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Appends a nested attribute whose payload is what `body` writes. `NLA_F_NESTED` is set, as
/// the kernel's own `nla_nest_start` does.
pub fn put_nested(buf: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    let [k0, k1] = (kind | NLA_F_NESTED).to_ne_bytes();
    buf.extend_from_slice(&[0, 0, k0, k1]);
    body(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    pad(buf);
}

/// One attribute as found in a stream: type without flags, and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    pub kind: u16,
    pub nested: bool,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    fn exact<const N: usize>(&self, what: &str) -> Result<[u8; N], ParseError> {
        self.data.try_into().map_err(|_| {
            ParseError::new(
                what,
                format!("payload is {} bytes, expected {N}", self.data.len()),
            )
        })
    }

    /// At least `N` bytes (the kernel may send a wider integer than documented).
    fn prefix<const N: usize>(&self, what: &str) -> Result<[u8; N], ParseError> {
        self.data
            .get(..N)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                ParseError::new(
                    what,
                    format!("payload is {} bytes, expected {N}", self.data.len()),
                )
            })
    }

    pub fn u8(&self, what: &str) -> Result<u8, ParseError> {
        Ok(self.prefix::<1>(what)?[0])
    }
    pub fn u16(&self, what: &str) -> Result<u16, ParseError> {
        Ok(u16::from_ne_bytes(self.exact(what)?))
    }
    pub fn be16(&self, what: &str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.exact(what)?))
    }
    pub fn u32(&self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_ne_bytes(self.exact(what)?))
    }
    pub fn u64(&self, what: &str) -> Result<u64, ParseError> {
        Ok(u64::from_ne_bytes(self.exact(what)?))
    }
    pub fn bytes4(&self, what: &str) -> Result<[u8; 4], ParseError> {
        self.exact(what)
    }
    /// A string, up to the first NUL.
    pub fn string(&self, what: &str) -> Result<String, ParseError> {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8(self.data[..end].to_vec())
            .map_err(|_| ParseError::new(what, "string is not UTF-8"))
    }
}

/// Iterates over an attribute stream; stops with an error at the first malformed attribute.
pub fn attrs(data: &[u8]) -> AttrIter<'_> {
    AttrIter { rest: data }
}

pub struct AttrIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            if self.rest.iter().all(|&b| b == 0) {
                return None;
            }
            let e = ParseError::new(
                "attribute stream",
                format!("{} trailing bytes", self.rest.len()),
            );
            self.rest = &[];
            return Some(Err(e));
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let raw_kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]);
        if len < NLA_HDRLEN || len > self.rest.len() {
            let e = ParseError::new(
                "attribute header",
                format!(
                    "type {} claims {len} bytes, {} available",
                    raw_kind & NLA_TYPE_MASK,
                    self.rest.len()
                ),
            );
            self.rest = &[];
            return Some(Err(e));
        }
        let attr = Attr {
            kind: raw_kind & NLA_TYPE_MASK,
            nested: raw_kind & NLA_F_NESTED != 0,
            data: &self.rest[NLA_HDRLEN..len],
        };
        self.rest = &self.rest[align4(len).min(self.rest.len())..];
        Some(Ok(attr))
    }
}

/// An attribute this code does not know (a newer kernel's), kept as it came.
#[derive(Clone, PartialEq, Eq)]
pub struct RawAttr {
    pub kind: u16,
    pub data: Vec<u8>,
}

impl RawAttr {
    pub fn from_attr(a: &Attr) -> Self {
        RawAttr {
            kind: a.kind | if a.nested { NLA_F_NESTED } else { 0 },
            data: a.data.to_vec(),
        }
    }
    pub fn emit(&self, buf: &mut Vec<u8>) {
        put_attr(buf, self.kind, &self.data);
    }
}

impl fmt::Debug for RawAttr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RawAttr {{ kind: {}, data: {:02x?} }}",
            self.kind, self.data
        )
    }
}

/// One message received from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// An ACK (`errno == 0`) or an error for the request with header `request`.
    Error {
        header: NlHeader,
        /// 0 for an ACK, else a positive errno (the kernel sends it negated).
        errno: i32,
        request: NlHeader,
        /// The extended-ack message, when the kernel gave one.
        message: Option<String>,
    },
    /// End of a dump (`errno` is 0, or why the dump stopped).
    Done { header: NlHeader, errno: i32 },
    /// A data message: the generic netlink header and its attribute stream.
    Genl {
        header: NlHeader,
        genl: GenlHeader,
        attrs: &'a [u8],
    },
    /// Netlink NOOP/OVERRUN or a message of another protocol.
    Other { header: NlHeader },
}

/// Splits a receive buffer into messages.
pub fn messages(buf: &[u8]) -> MessageIter<'_> {
    MessageIter { rest: buf }
}

pub struct MessageIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MessageIter<'a> {
    type Item = Result<Received<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = parse_one(self.rest);
        match &r {
            Ok((_, consumed)) => self.rest = &self.rest[(*consumed).min(self.rest.len())..],
            Err(_) => self.rest = &[],
        }
        Some(r.map(|(m, _)| m))
    }
}

fn parse_one(b: &[u8]) -> Result<(Received<'_>, usize), ParseError> {
    let header = NlHeader::parse(b)?;
    let len = header.len as usize;
    if len < NLMSG_HDRLEN || len > b.len() {
        return Err(ParseError::new(
            "netlink message",
            format!("header claims {len} bytes, {} available", b.len()),
        ));
    }
    let body = &b[NLMSG_HDRLEN..len];
    let consumed = align4(len);
    let msg = match header.kind {
        NLMSG_ERROR => {
            if body.len() < 4 + NLMSG_HDRLEN {
                return Err(ParseError::new(
                    "netlink error message",
                    format!("{} bytes, need {}", body.len(), 4 + NLMSG_HDRLEN),
                ));
            }
            let code = i32::from_ne_bytes(body[0..4].try_into().expect("4 bytes"));
            let request = NlHeader::parse(&body[4..])?;
            // The original request follows in full unless capped (or an ACK, which never
            // carries the payload); extended-ack attributes come after it.
            let echoed = if header.flags & NLM_F_CAPPED != 0 || code == 0 {
                NLMSG_HDRLEN
            } else {
                (request.len as usize).max(NLMSG_HDRLEN)
            };
            let mut message = None;
            if header.flags & NLM_F_ACK_TLVS != 0 {
                let tlv_start = (4 + align4(echoed)).min(body.len());
                for a in attrs(&body[tlv_start..]).flatten() {
                    if a.kind == NLMSGERR_ATTR_MSG {
                        message = a.string("extended ack message").ok();
                    }
                }
            }
            Received::Error {
                header,
                errno: code.saturating_neg(),
                request,
                message,
            }
        }
        NLMSG_DONE => {
            let errno = body
                .get(0..4)
                .map(|s| i32::from_ne_bytes(s.try_into().expect("4 bytes")))
                .unwrap_or(0);
            Received::Done {
                header,
                errno: errno.saturating_neg(),
            }
        }
        NLMSG_NOOP | NLMSG_OVERRUN => Received::Other { header },
        _ => {
            if body.len() < GENL_HDRLEN {
                return Err(ParseError::new(
                    "generic netlink header",
                    format!("{} bytes, need {GENL_HDRLEN}", body.len()),
                ));
            }
            Received::Genl {
                header,
                genl: GenlHeader {
                    cmd: body[0],
                    version: body[1],
                },
                attrs: &body[GENL_HDRLEN..],
            }
        }
    };
    Ok((msg, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    // These byte vectors are little-endian: the project builds for x86-64 only.

    #[test]
    fn attribute_padding_and_nesting() {
        let mut b = Vec::new();
        put_u16(&mut b, 1, 2);
        put_nested(&mut b, 3, |b| {
            put_str(b, 6, "wlc");
            put_u32(b, 8, 300);
        });
        assert_eq!(
            b,
            [
                6, 0, 1, 0, 2, 0, 0, 0, // u16 + 2 bytes padding
                20, 0, 3, 0x80, // nested, NLA_F_NESTED
                8, 0, 6, 0, b'w', b'l', b'c', 0, // "wlc\0"
                8, 0, 8, 0, 44, 1, 0, 0, // 300
            ]
        );
        let top: Vec<_> = attrs(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].u16("af").unwrap(), 2);
        assert!(top[1].nested && top[1].kind == 3);
        let inner: Vec<_> = attrs(top[1].data).collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].string("sched").unwrap(), "wlc");
        assert_eq!(inner[1].u32("timeout").unwrap(), 300);
    }

    #[test]
    fn truncated_attributes_are_errors_not_panics() {
        let b = [8, 0, 1, 0, 1, 2];
        let r: Result<Vec<_>, _> = attrs(&b).collect();
        assert!(r
            .unwrap_err()
            .detail
            .contains("claims 8 bytes, 6 available"));
        let b = [2, 0, 1, 0];
        assert!(attrs(&b).next().unwrap().is_err());
        let short = Attr {
            kind: 4,
            nested: false,
            data: &[1],
        };
        assert!(short.u16("port").unwrap_err().detail.contains("expected 2"));
    }

    #[test]
    fn genl_message_layout() {
        let mut b = Vec::new();
        write_genl_message(
            &mut b,
            0x24,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            GenlHeader { cmd: 1, version: 1 },
            |b| put_u16(b, 1, 2),
        );
        assert_eq!(
            b,
            [
                28, 0, 0, 0, 0x24, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr
                1, 1, 0, 0, // genlmsghdr
                6, 0, 1, 0, 2, 0, 0, 0,
            ]
        );
    }

    #[test]
    fn ack_error_done_and_data() {
        // An ACK for seq 7 as the kernel sends it with NETLINK_CAP_ACK (header only).
        let mut b = vec![
            36, 0, 0, 0, 2, 0, 0x00, 0x01, 7, 0, 0, 0, 0x39, 0x30, 0, 0, // hdr, CAPPED
            0, 0, 0, 0, // error 0
            28, 0, 0, 0, 0x24, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // original header
        ];
        // EEXIST (-17) for seq 8 with an extended-ack message.
        b.extend_from_slice(&[
            44, 0, 0, 0, 2, 0, 0x00, 0x03, 8, 0, 0, 0, 0x39, 0x30, 0, 0, // CAPPED|ACK_TLVS
            0xef, 0xff, 0xff, 0xff, // -17
            28, 0, 0, 0, 0x24, 0, 5, 0, 8, 0, 0, 0, 0, 0, 0, 0, //
            8, 0, 1, 0, b'b', b'a', b'd', 0,
        ]);
        // NLMSG_DONE
        b.extend_from_slice(&[
            20, 0, 0, 0, 3, 0, 2, 0, 9, 0, 0, 0, 0x39, 0x30, 0, 0, 0, 0, 0, 0,
        ]);
        // a data message: cmd 1 version 1, one u16 attribute
        b.extend_from_slice(&[
            28, 0, 0, 0, 0x24, 0, 2, 0, 9, 0, 0, 0, 0x39, 0x30, 0, 0, 1, 1, 0, 0, 6, 0, 1, 0, 10,
            0, 0, 0,
        ]);
        let msgs: Vec<_> = messages(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 4);
        match &msgs[0] {
            Received::Error { errno, request, .. } => {
                assert_eq!((*errno, request.seq), (0, 7));
            }
            m => panic!("{m:?}"),
        }
        match &msgs[1] {
            Received::Error {
                errno,
                request,
                message,
                ..
            } => {
                assert_eq!((*errno, request.seq), (17, 8));
                assert_eq!(message.as_deref(), Some("bad"));
            }
            m => panic!("{m:?}"),
        }
        assert!(matches!(msgs[2], Received::Done { errno: 0, .. }));
        match &msgs[3] {
            Received::Genl { genl, attrs, .. } => {
                assert_eq!(*genl, GenlHeader { cmd: 1, version: 1 });
                assert_eq!(attrs.len(), 8);
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn uncapped_error_skips_the_echoed_request() {
        // -EINVAL for a 28-byte request echoed in full, then an extended-ack message.
        let mut b = vec![0u8; 0];
        let echoed = [
            28, 0, 0, 0, 0x24, 0, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 6, 0, 1, 0, 2, 0, 0, 0,
        ];
        let total = 16 + 4 + echoed.len() + 12;
        b.extend_from_slice(&(total as u32).to_le_bytes());
        b.extend_from_slice(&[2, 0, 0x00, 0x02, 3, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&(-22i32).to_le_bytes());
        b.extend_from_slice(&echoed);
        b.extend_from_slice(&[12, 0, 1, 0, b'n', b'o', b'p', b'e', b'!', 0, 0, 0]);
        let m = messages(&b).next().unwrap().unwrap();
        match m {
            Received::Error {
                errno,
                message,
                request,
                ..
            } => {
                assert_eq!(errno, 22);
                assert_eq!(request.seq, 3);
                assert_eq!(message.as_deref(), Some("nope!"));
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn message_longer_than_buffer_is_an_error() {
        let b = [40, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        let e = messages(&b).next().unwrap().unwrap_err();
        assert!(e.detail.contains("claims 40 bytes"), "{e}");
    }
}
