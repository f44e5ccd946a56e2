//! TFTP packets (RFC 1350) with option extension (RFC 2347), both ways: [`Packet::parse`] and
//! [`Packet::emit`]. No I/O.

use std::fmt;

/// Opcode of a request.
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// An option name/value pair as sent on the wire (RFC 2347). Names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOption {
    /// The option's name, e.g. `blksize`.
    pub name: String,
    /// Its value, e.g. `1468`.
    pub value: String,
}

impl TftpOption {
    /// A name/value pair.
    pub fn new(name: impl Into<String>, value: impl ToString) -> Self {
        TftpOption {
            name: name.into(),
            value: value.to_string(),
        }
    }
}

/// TFTP error codes (RFC 1350 and RFC 2347 for 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: see the message.
    NotDefined,
    /// 1
    FileNotFound,
    /// 2
    AccessViolation,
    /// 3: also used for "file larger than the receiver accepts".
    DiskFull,
    /// 4
    IllegalOperation,
    /// 5: a packet from a port that is not part of this transfer.
    UnknownTid,
    /// 6
    FileExists,
    /// 7
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionsRefused,
    /// Any other value.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionsRefused => 8,
            ErrorCode::Other(c) => c,
        }
    }

    /// The code for a wire value.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionsRefused,
            c => ErrorCode::Other(c),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::NotDefined => "not defined",
            ErrorCode::FileNotFound => "file not found",
            ErrorCode::AccessViolation => "access violation",
            ErrorCode::DiskFull => "disk full or allocation exceeded",
            ErrorCode::IllegalOperation => "illegal TFTP operation",
            ErrorCode::UnknownTid => "unknown transfer ID",
            ErrorCode::FileExists => "file already exists",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::OptionsRefused => "option negotiation refused",
            ErrorCode::Other(_) => "unknown error code",
        };
        write!(f, "{} ({text})", self.code())
    }
}

/// One TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Read request: file name, mode (`octet`), options.
    Rrq {
        /// The file to read.
        filename: String,
        /// Transfer mode; this client sends `octet`.
        mode: String,
        /// RFC 2347 options, in order.
        options: Vec<TftpOption>,
    },
    /// Write request (parsed for completeness; this client never sends one).
    Wrq {
        /// The file to write.
        filename: String,
        /// Transfer mode.
        mode: String,
        /// RFC 2347 options, in order.
        options: Vec<TftpOption>,
    },
    /// A block of the file; fewer than blksize bytes ends the transfer.
    Data {
        /// Block number, from 1, wrapping after 65535.
        block: u16,
        /// The payload.
        data: Vec<u8>,
    },
    /// Acknowledges a DATA block (0 acknowledges an OACK).
    Ack {
        /// The block acknowledged.
        block: u16,
    },
    /// Ends the transfer.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable message.
        message: String,
    },
    /// The server's answer to requested options (RFC 2347).
    Oack {
        /// Accepted options with their final values.
        options: Vec<TftpOption>,
    },
}

/// Why bytes are not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than the opcode's fixed fields.
    #[error("TFTP packet of {len} bytes is too short for opcode {opcode}")]
    Truncated {
        /// The opcode (0 if even that is missing).
        opcode: u16,
        /// The packet's length.
        len: usize,
    },
    /// An opcode outside 1..=6.
    #[error("unknown TFTP opcode {0}")]
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    #[error("TFTP {field} is not NUL-terminated")]
    Unterminated {
        /// Which field.
        field: &'static str,
    },
    /// A string field that is not UTF-8 (netascii is a subset of it).
    #[error("TFTP {field} is not valid text")]
    NotText {
        /// Which field.
        field: &'static str,
    },
    /// An option name without a value.
    #[error("TFTP option {name:?} has no value")]
    OptionWithoutValue {
        /// The option's name.
        name: String,
    },
}

impl Packet {
    /// Parses one UDP payload.
    pub fn parse(bytes: &[u8]) -> Result<Packet, PacketError> {
        if bytes.len() < 2 {
            return Err(PacketError::Truncated {
                opcode: 0,
                len: bytes.len(),
            });
        }
        let opcode = u16::from_be_bytes([bytes[0], bytes[1]]);
        let body = &bytes[2..];
        let need = |n: usize| {
            if body.len() < n {
                Err(PacketError::Truncated {
                    opcode,
                    len: bytes.len(),
                })
            } else {
                Ok(())
            }
        };
        match opcode {
            RRQ | WRQ => {
                let mut fields = Fields(body);
                let filename = fields.string("file name")?;
                let mode = fields.string("mode")?;
                let options = fields.options()?;
                Ok(if opcode == RRQ {
                    Packet::Rrq {
                        filename,
                        mode,
                        options,
                    }
                } else {
                    Packet::Wrq {
                        filename,
                        mode,
                        options,
                    }
                })
            }
            DATA => {
                need(2)?;
                Ok(Packet::Data {
                    block: u16::from_be_bytes([body[0], body[1]]),
                    data: body[2..].to_vec(),
                })
            }
            ACK => {
                need(2)?;
                Ok(Packet::Ack {
                    block: u16::from_be_bytes([body[0], body[1]]),
                })
            }
            ERROR => {
                need(2)?;
                let code = ErrorCode::from_code(u16::from_be_bytes([body[0], body[1]]));
                // Be lenient with the message: some servers omit the NUL or send Latin-1.
                let raw = &body[2..];
                let raw = raw.split(|&b| b == 0).next().unwrap_or(raw);
                Ok(Packet::Error {
                    code,
                    message: String::from_utf8_lossy(raw).into_owned(),
                })
            }
            OACK => Ok(Packet::Oack {
                options: Fields(body).options()?,
            }),
            other => Err(PacketError::UnknownOpcode(other)),
        }
    }

    /// The bytes of this packet.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        let put_options = |out: &mut Vec<u8>, options: &[TftpOption]| {
            for o in options {
                put_str(out, &o.name);
                put_str(out, &o.value);
            }
        };
        match self {
            Packet::Rrq {
                filename,
                mode,
                options,
            }
            | Packet::Wrq {
                filename,
                mode,
                options,
            } => {
                let op = if matches!(self, Packet::Rrq { .. }) {
                    RRQ
                } else {
                    WRQ
                };
                out.extend_from_slice(&op.to_be_bytes());
                put_str(&mut out, filename);
                put_str(&mut out, mode);
                put_options(&mut out, options);
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&ERROR.to_be_bytes());
                out.extend_from_slice(&code.code().to_be_bytes());
                put_str(&mut out, message);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&OACK.to_be_bytes());
                put_options(&mut out, options);
            }
        }
        out
    }

    /// A short name for logs: `RRQ`, `DATA 7`, ...
    pub fn kind(&self) -> String {
        match self {
            Packet::Rrq { .. } => "RRQ".into(),
            Packet::Wrq { .. } => "WRQ".into(),
            Packet::Data { block, .. } => format!("DATA {block}"),
            Packet::Ack { block } => format!("ACK {block}"),
            Packet::Error { code, .. } => format!("ERROR {}", code.code()),
            Packet::Oack { .. } => "OACK".into(),
        }
    }
}

/// NUL-terminated string fields.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn string(&mut self, field: &'static str) -> Result<String, PacketError> {
        let nul = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(PacketError::Unterminated { field })?;
        let s = std::str::from_utf8(&self.0[..nul])
            .map_err(|_| PacketError::NotText { field })?
            .to_string();
        self.0 = &self.0[nul + 1..];
        Ok(s)
    }

    fn options(&mut self) -> Result<Vec<TftpOption>, PacketError> {
        let mut options = Vec::new();
        while !self.0.is_empty() {
            let name = self.string("option name")?;
            if self.0.is_empty() {
                return Err(PacketError::OptionWithoutValue { name });
            }
            let value = self.string("option value")?;
            options.push(TftpOption { name, value });
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(raw: &[u8], packet: Packet) {
        assert_eq!(Packet::parse(raw).unwrap(), packet, "parse");
        assert_eq!(packet.emit(), raw, "emit");
    }

    #[test]
    fn rrq_with_options() {
        // As tftp-hpa's client sends it: opcode 1, "pxe/a.cfg\0octet\0blksize\01468\0tsize\00\0".
        let raw = b"\x00\x01pxe/a.cfg\x00octet\x00blksize\x001468\x00tsize\x000\x00";
        roundtrip(
            raw,
            Packet::Rrq {
                filename: "pxe/a.cfg".into(),
                mode: "octet".into(),
                options: vec![
                    TftpOption::new("blksize", 1468),
                    TftpOption::new("tsize", 0),
                ],
            },
        );
    }

    #[test]
    fn wrq_without_options() {
        roundtrip(
            b"\x00\x02f\x00netascii\x00",
            Packet::Wrq {
                filename: "f".into(),
                mode: "netascii".into(),
                options: vec![],
            },
        );
    }

    #[test]
    fn data_ack_error_oack() {
        roundtrip(
            b"\x00\x03\x01\x02abc",
            Packet::Data {
                block: 0x0102,
                data: b"abc".to_vec(),
            },
        );
        roundtrip(
            b"\x00\x03\xff\xff",
            Packet::Data {
                block: 65535,
                data: vec![],
            },
        );
        roundtrip(b"\x00\x04\x00\x00", Packet::Ack { block: 0 });
        roundtrip(b"\x00\x04\xfe\x01", Packet::Ack { block: 0xfe01 });
        roundtrip(
            b"\x00\x05\x00\x01File not found\x00",
            Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "File not found".into(),
            },
        );
        roundtrip(
            b"\x00\x05\x00\x63\x00",
            Packet::Error {
                code: ErrorCode::Other(99),
                message: String::new(),
            },
        );
        roundtrip(
            b"\x00\x06blksize\x001024\x00tsize\x00513\x00",
            Packet::Oack {
                options: vec![
                    TftpOption::new("blksize", 1024),
                    TftpOption::new("tsize", 513),
                ],
            },
        );
        roundtrip(b"\x00\x06", Packet::Oack { options: vec![] });
    }

    #[test]
    fn lenient_error_message() {
        // No terminating NUL, and a Latin-1 byte.
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x02denied \xe9").unwrap(),
            Packet::Error {
                code: ErrorCode::AccessViolation,
                message: "denied \u{fffd}".into()
            }
        );
    }

    #[test]
    fn malformed_packets() {
        let cases: [(&[u8], PacketError); 8] = [
            (b"", PacketError::Truncated { opcode: 0, len: 0 }),
            (b"\x00", PacketError::Truncated { opcode: 0, len: 1 }),
            (
                b"\x00\x03\x01",
                PacketError::Truncated { opcode: 3, len: 3 },
            ),
            (b"\x00\x04", PacketError::Truncated { opcode: 4, len: 2 }),
            (b"\x00\x07", PacketError::UnknownOpcode(7)),
            (
                b"\x00\x01file",
                PacketError::Unterminated { field: "file name" },
            ),
            (
                b"\x00\x06blksize\x00",
                PacketError::OptionWithoutValue {
                    name: "blksize".into(),
                },
            ),
            (
                b"\x00\x01\xff\x00octet\x00",
                PacketError::NotText { field: "file name" },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(Packet::parse(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn error_code_display() {
        assert_eq!(ErrorCode::UnknownTid.to_string(), "5 (unknown transfer ID)");
        for c in 0..=9 {
            assert_eq!(ErrorCode::from_code(c).code(), c);
        }
    }
}
