//! DNS messages for the DNS check (RFC 1035): one query out, the answer's header and
//! question checked on the way back. Pure; the bytes in the tests follow RFC 1035 §4.1.

use crate::check::failure::Failure;

/// Query types the config accepts, by name.
pub fn qtype_code(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        _ => return None,
    })
}

/// Why a name cannot be put into a query.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("DNS name {0:?} has an empty label")]
    EmptyLabel(String),
    #[error("DNS name {0:?} has a label longer than 63 bytes")]
    LongLabel(String),
    #[error("DNS name {0:?} is longer than 255 bytes")]
    LongName(String),
}

/// Encodes a name as labels ("www.example.org" or "www.example.org.").
fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(NameError::EmptyLabel(name.into()));
            }
            if label.len() > 63 {
                return Err(NameError::LongLabel(name.into()));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(NameError::LongName(name.into()));
    }
    Ok(())
}

/// A standard query with recursion desired, class IN.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, NameError> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    encode_name(name, &mut m)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    Ok(m)
}

/// What a response says.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not the response to our query (another id, or not a response): keep waiting.
    NotOurs,
    /// The number of answer records.
    Answers(u16),
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

/// Checks a response to the query `query` (the bytes sent): same id, same question, a
/// response, NOERROR, and at least one answer.
pub fn check_reply(query: &[u8], reply: &[u8]) -> Result<Reply, Failure> {
    if reply.len() < 12 || query.len() < 12 {
        return Ok(Reply::NotOurs);
    }
    if reply[..2] != query[..2] || reply[2] & 0x80 == 0 {
        return Ok(Reply::NotOurs);
    }
    let question = &query[12..];
    // The question section is echoed (RFC 1035 §4.1.2); compare it case-insensitively
    // (0x20 randomisation by some resolvers) when the reply has one.
    let qd = u16::from_be_bytes([reply[4], reply[5]]);
    if qd == 1 {
        match reply.get(12..12 + question.len()) {
            Some(q) if q.eq_ignore_ascii_case(question) => {}
            _ => return Ok(Reply::NotOurs),
        }
    }
    let rcode = reply[3] & 0x0f;
    if rcode != 0 {
        return Err(Failure::Rejected(format!("DNS {}", rcode_name(rcode))));
    }
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    if answers == 0 {
        let truncated = reply[2] & 0x02 != 0;
        return Err(Failure::Rejected(if truncated {
            "DNS reply truncated without answers".into()
        } else {
            "DNS NOERROR without an answer".into()
        }));
    }
    Ok(Reply::Answers(answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = encode_query(0x1234, "www.example.org", 1).unwrap();
        let expected: Vec<u8> = [
            &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x03www\x07example\x03org\x00",
            &[0, 1, 0, 1],
        ]
        .concat();
        assert_eq!(q, expected);
        assert_eq!(
            encode_query(1, "example.org.", 28).unwrap()[12..],
            *b"\x07example\x03org\x00\x00\x1c\x00\x01"
        );
        assert_eq!(encode_query(1, ".", 2).unwrap()[12..], [0, 0, 2, 0, 1]);
        assert!(matches!(
            encode_query(1, "a..b", 1),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            encode_query(1, &"x".repeat(64), 1),
            Err(NameError::LongLabel(_))
        ));
        let long = vec!["abcdefghij"; 30].join(".");
        assert!(matches!(
            encode_query(1, &long, 1),
            Err(NameError::LongName(_))
        ));
    }

    fn reply(query: &[u8], flags: [u8; 2], answers: u16) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = flags[0];
        r[3] = flags[1];
        r[6..8].copy_from_slice(&answers.to_be_bytes());
        if answers > 0 {
            // www.example.org A 192.0.2.1, name compressed to offset 12.
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
        }
        r
    }

    #[test]
    fn replies_are_matched_and_judged() {
        let q = encode_query(0xbeef, "www.example.org", 1).unwrap();
        assert_eq!(
            check_reply(&q, &reply(&q, [0x81, 0x80], 1)),
            Ok(Reply::Answers(1))
        );
        // The query itself (QR clear), another id, another question: not ours.
        assert_eq!(check_reply(&q, &q), Ok(Reply::NotOurs));
        let mut other = reply(&q, [0x81, 0x80], 1);
        other[1] ^= 1;
        assert_eq!(check_reply(&q, &other), Ok(Reply::NotOurs));
        let mut renamed = reply(&q, [0x81, 0x80], 1);
        renamed[13] = b'x';
        assert_eq!(check_reply(&q, &renamed), Ok(Reply::NotOurs));
        // 0x20 case randomisation is fine.
        let mut upper = reply(&q, [0x81, 0x80], 1);
        upper[13] = b'W';
        assert_eq!(check_reply(&q, &upper), Ok(Reply::Answers(1)));
        assert_eq!(
            check_reply(&q, &reply(&q, [0x81, 0x83], 0))
                .unwrap_err()
                .to_string(),
            "rejected: DNS NXDOMAIN"
        );
        assert_eq!(
            check_reply(&q, &reply(&q, [0x81, 0x82], 0))
                .unwrap_err()
                .to_string(),
            "rejected: DNS SERVFAIL"
        );
        assert_eq!(
            check_reply(&q, &reply(&q, [0x81, 0x80], 0))
                .unwrap_err()
                .to_string(),
            "rejected: DNS NOERROR without an answer"
        );
        assert_eq!(check_reply(&q, &[0; 5]), Ok(Reply::NotOurs));
    }
}
