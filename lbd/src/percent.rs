//! Percent-encoding (RFC 3986), the one implementation init's URLs and lbd's API share.

/// A `%` not followed by two hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad percent escape at byte {at}")]
pub struct BadEscape {
    /// Byte offset of the `%`.
    pub at: usize,
}

/// Encodes everything but RFC 3986's unreserved characters and `:` (kept so an IPv6 address,
/// a MAC or `host:port` stays readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_into(&mut out, s);
    out
}

/// [`encode`], appending to `out`.
pub fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `%XX` escapes; a `%` without two hex digits is an error.
pub fn decode(s: &str) -> Result<Vec<u8>, BadEscape> {
    decode_with(s, false)
}

/// Decodes a query component: `%XX`, and `+` as a space (HTML forms, curl's `-G -d`).
pub fn decode_query(s: &str) -> Result<Vec<u8>, BadEscape> {
    decode_with(s, true)
}

fn decode_with(s: &str, plus_is_space: bool) -> Result<Vec<u8>, BadEscape> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => out.push((h << 4 | l) as u8),
                    _ => return Err(BadEscape { at: i }),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_what_is_readable() {
        for s in [
            "a b/c",
            "ünï",
            "[2001:db8::1]:80",
            "52:54:00:ab:0c:01",
            "%+&=",
        ] {
            assert_eq!(decode(&encode(s)).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(encode("[2001:db8::1]:80 x"), "%5B2001:db8::1%5D:80%20x");
        assert_eq!(encode("lb-a_1.~"), "lb-a_1.~");
    }

    #[test]
    fn plus_is_a_space_only_in_queries_and_bad_escapes_are_refused() {
        assert_eq!(decode_query("a+b%2Fc").unwrap(), b"a b/c");
        assert_eq!(decode("a+b").unwrap(), b"a+b");
        assert_eq!(decode("%zz"), Err(BadEscape { at: 0 }));
        assert_eq!(decode("ab%4"), Err(BadEscape { at: 2 }));
        assert_eq!(decode("%41%62").unwrap(), b"Ab");
    }
}
