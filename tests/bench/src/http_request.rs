//! Request heads as the benchmarks' HTTP servers read them: everything up to the blank line;
//! a health check's request has no body.

const END_OF_HEAD: &[u8] = b"\r\n\r\n";

/// Whether `buf` holds a complete request head.
pub fn has_head(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == END_OF_HEAD)
}

/// Takes the first complete request head off the `got` bytes at the start of `buf`, moving
/// what follows it to the front; false (and nothing moved) if there is none yet.
pub fn take_head(buf: &mut [u8], got: &mut usize) -> bool {
    let Some(end) = buf[..*got].windows(4).position(|w| w == END_OF_HEAD) else {
        return false;
    };
    buf.copy_within(end + 4..*got, 0);
    *got -= end + 4;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_taken_one_at_a_time() {
        let mut buf = *b"GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET";
        let mut got = buf.len();
        assert!(has_head(&buf[..got]));
        assert!(take_head(&mut buf, &mut got));
        assert_eq!(&buf[..got], b"GET /b HTTP/1.1\r\n\r\nGET");
        assert!(take_head(&mut buf, &mut got));
        assert_eq!(&buf[..got], b"GET");
        assert!(!take_head(&mut buf, &mut got));
        assert!(!has_head(&buf[..got]));
        assert_eq!(got, 3);
    }
}
