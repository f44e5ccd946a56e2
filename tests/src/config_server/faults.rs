//! What the fault modes send instead of a config: endless junk and random non-HTTP bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::answer::head_bytes;
use super::connection::Conn;
use super::End;

/// The size of each write of a [`Mode::Huge`](super::Mode::Huge) body.
const JUNK_CHUNK: usize = 64 * 1024;

/// 64 KiB of TOML-looking services, made once.
fn junk_chunk() -> &'static [u8] {
    static JUNK: OnceLock<Vec<u8>> = OnceLock::new();
    JUNK.get_or_init(|| {
        let mut junk = String::with_capacity(JUNK_CHUNK + 256);
        let mut i = 0u32;
        while junk.len() < JUNK_CHUNK {
            junk.push_str(&format!(
                "[[service]]\nname = \"junk-{i:06}\"\nvip = \"10.{}.{}.1:80\"\n\
                 backends = [\"10.200.{}.{}:8080\"]\n\n",
                (i >> 8) & 0xff,
                i & 0xff,
                (i >> 8) & 0xff,
                i & 0xff,
            ));
            i += 1;
        }
        junk.truncate(JUNK_CHUNK);
        junk.into_bytes()
    })
}

pub(super) fn send_huge(conn: &mut Conn<'_>, declared: Option<u64>, len: u64) -> Result<(), End> {
    let mut headers = vec![("Content-Type", "text/plain".to_owned())];
    if let Some(len) = declared {
        headers.push(("Content-Length", len.to_string()));
    }
    conn.send(&head_bytes(200, &headers))?;
    let junk = junk_chunk();
    let mut left = len;
    while left > 0 {
        let n = left.min(junk.len() as u64) as usize;
        conn.send(&junk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// About 1 KiB of random printable ASCII in lines, ending in a blank line (so a client that
/// waits for the end of a header block gets one), never starting with `H` (as `HTTP/` would).
pub(super) fn garbage() -> Vec<u8> {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // xorshift64*: random enough, never zero.
    let mut x = (nanos ^ SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)) | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = Vec::with_capacity(1100);
    for _ in 0..14 {
        for _ in 0..70 {
            // '!'..='~'
            out.push(b'!' + (next() % 94) as u8);
        }
        out.extend_from_slice(b"\r\n");
    }
    if out[0] == b'H' {
        out[0] = b'h';
    }
    out.extend_from_slice(b"\r\n");
    out
}
