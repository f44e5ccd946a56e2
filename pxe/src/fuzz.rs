//! Fuzz targets for pxe: what a client sends (the request path and its headers, a TFTP file
//! name) and what an operator writes (the inventory and the config template). Each must never
//! panic; a byte range must lie inside the body.
//!
//! `tools/fuzz` runs them under libFuzzer; `pxe/tests/fuzz_replay.rs` replays their corpora.

use crate::conditional::{self, RangeSpec};

/// The targets of this crate (see `lbd::fuzz::Target`).
pub const TARGETS: &[lbd::fuzz::Target] = &[("http_request", http_request), ("site", site)];

/// A request as pxe reads it: the first line is the path (also tried as a TFTP file name),
/// the others are `Range` values, each tried against bodies of several sizes.
pub fn http_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let _ = crate::routes::http(path);
    let _ = crate::routes::tftp(path);
    for percent in [false, true] {
        if let Ok(words) = crate::safepath::clean(path, percent) {
            assert!(
                words.iter().all(|w| w != ".." && !w.contains('/')),
                "{words:?}"
            );
        }
    }
    for range in lines {
        for len in [0u64, 1, 100, u64::MAX] {
            if let RangeSpec::Bytes(r) = conditional::parse_range(range, len) {
                assert!(r.start < r.end && r.end <= len, "{range:?} {len}: {r:?}");
                let _ = conditional::content_range(&r, len);
            }
        }
    }
}

/// The operator's inventory and config template, one text tried as both.
pub fn site(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::inventory::parse("inventory.toml", text);
    let _ = crate::template::Template::parse("template.toml", text);
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_take_empty_and_short_inputs() {
        for (_, target) in super::TARGETS {
            for input in [&b""[..], b"/", b"/../x\nbytes=0-", b"\xff"] {
                target(input);
            }
        }
    }
}
