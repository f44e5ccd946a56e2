//! Requests written out ahead of sending: each message's command and attribute bytes, all in
//! one buffer. A full apply sends thousands of requests; as [`IpvsMessage`]s (a vector of
//! attributes, each a vector of its own) they took about five times the memory, every page of
//! it touched once, which is what costs most on an emulated CPU.

use super::IpvsMessage;

/// What [`crate::ipvs::client::IpvsClient::execute`] sends: a command and its attributes.
pub trait Request {
    fn cmd(&self) -> u8;
    /// Appends the attribute stream (the part after the generic netlink header).
    fn emit_attrs(&self, buf: &mut Vec<u8>);
}

impl<R: Request> Request for &R {
    fn cmd(&self) -> u8 {
        (**self).cmd()
    }
    fn emit_attrs(&self, buf: &mut Vec<u8>) {
        (**self).emit_attrs(buf)
    }
}

impl Request for IpvsMessage {
    fn cmd(&self) -> u8 {
        self.cmd
    }
    fn emit_attrs(&self, buf: &mut Vec<u8>) {
        IpvsMessage::emit_attrs(self, buf)
    }
}

/// Messages written out, in order.
#[derive(Debug, Default)]
pub struct Encoded {
    bytes: Vec<u8>,
    /// Each message's command and the end of its attributes in `bytes`.
    ends: Vec<(u8, usize)>,
}

/// One message of an [`Encoded`].
#[derive(Clone, Copy, Debug)]
pub struct EncodedRequest<'a> {
    cmd: u8,
    attrs: &'a [u8],
}

impl Encoded {
    /// Writes out `messages` (messages, or what writes itself out as one), each dropped once
    /// written.
    pub fn of<R: Request>(messages: impl ExactSizeIterator<Item = R>) -> Encoded {
        // Destination requests, the bulk of a large apply, take about 120 bytes.
        let mut out = Encoded {
            bytes: Vec::with_capacity(messages.len() * 128),
            ends: Vec::with_capacity(messages.len()),
        };
        for m in messages {
            m.emit_attrs(&mut out.bytes);
            out.ends.push((m.cmd(), out.bytes.len()));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EncodedRequest<'_>> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = i.checked_sub(1).map_or(0, |p| self.ends[p].1);
            let (cmd, end) = self.ends[i];
            EncodedRequest {
                cmd,
                attrs: &self.bytes[start..end],
            }
        })
    }
}

impl Request for EncodedRequest<'_> {
    fn cmd(&self) -> u8 {
        self.cmd
    }
    fn emit_attrs(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::msg::{request, DestEntry, FwdMethod, ServiceId, IPPROTO_TCP};

    #[test]
    fn each_message_reads_back_as_written() {
        let id = ServiceId::Addr {
            protocol: IPPROTO_TCP,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        let dest = DestEntry::new("10.1.0.1".parse().unwrap(), 80, FwdMethod::Route, 3);
        let messages = vec![
            request::add_dest(&id, &dest),
            request::del_service(&id),
            request::get_info(),
        ];
        let encoded = Encoded::of(messages.clone().into_iter());
        assert_eq!(encoded.len(), 3);
        for (m, e) in messages.iter().zip(encoded.iter()) {
            let (mut want, mut got) = (Vec::new(), Vec::new());
            m.emit_attrs(&mut want);
            e.emit_attrs(&mut got);
            assert_eq!((e.cmd(), got), (m.cmd, want));
        }
    }
}
