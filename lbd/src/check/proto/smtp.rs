//! SMTP replies (RFC 5321 §4.2): a three-digit code, `-` on every line but the last. Pure.

/// A complete reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    /// The text of the last line (after the code).
    pub text: String,
}

impl SmtpReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// Why a reply cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("not an SMTP reply: {0:?}")]
    Garbled(String),
    #[error("SMTP reply longer than 64 KiB")]
    TooLong,
}

/// Parses the first complete reply in `buf`. `Ok(None)`: more bytes are needed. On success,
/// also returns how many bytes the reply took.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(SmtpReply, usize)>, ReplyError> {
    let mut pos = 0;
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            if buf.len() > 65536 {
                return Err(ReplyError::TooLong);
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let garbled = || ReplyError::Garbled(text.chars().take(80).collect());
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(garbled());
        }
        let code: u16 = text[..3].parse().map_err(|_| garbled())?;
        pos += nl + 1;
        match line.get(3) {
            Some(b'-') => continue,
            None | Some(b' ') => {
                let rest = text.get(4..).unwrap_or("").trim().to_string();
                return Ok(Some((SmtpReply { code, text: rest }, pos)));
            }
            Some(_) => return Err(garbled()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        let (r, used) = parse_reply(b"220 mx.example.org ESMTP ready\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.code, r.text.as_str(), used),
            (220, "mx.example.org ESMTP ready", 32)
        );
        let ehlo = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
        let (r, used) = parse_reply(ehlo).unwrap().unwrap();
        assert_eq!(
            (r.code, r.text.as_str(), used),
            (250, "8BITMIME", ehlo.len())
        );
        assert!(r.is_positive());
        assert_eq!(parse_reply(b"250-a\r\n250 b").unwrap(), None);
        assert_eq!(parse_reply(b"221\r\n").unwrap().unwrap().0.code, 221);
        let (r, _) = parse_reply(b"554 no service\n").unwrap().unwrap();
        assert!(!r.is_positive());
    }

    #[test]
    fn garbage_is_not_a_reply() {
        assert!(matches!(
            parse_reply(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Err(ReplyError::Garbled(_))
        ));
        assert!(matches!(
            parse_reply(b"220x\r\n"),
            Err(ReplyError::Garbled(_))
        ));
        assert_eq!(parse_reply(&[b'2'; 70000]), Err(ReplyError::TooLong));
    }
}
