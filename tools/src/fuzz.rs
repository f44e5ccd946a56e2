//! Fuzz targets for the converters: a keepalived.conf and an ldirectord.cf are an operator's
//! text. Conversion must never panic, and a conversion that succeeds must give a config lbd
//! accepts (lbctl calls anything else a bug to report).
//!
//! `tools/fuzz` runs them under libFuzzer; `tools/tests/fuzz_replay.rs` replays their corpora.

use crate::convert::{keepalived, ldirectord, Conversion, ConvertError};

/// The targets of this crate (see `lbd::fuzz::Target`).
pub const TARGETS: &[lbd::fuzz::Target] = &[
    ("keepalived_conf", keepalived_conf),
    ("ldirectord_cf", ldirectord_cf),
];

/// A conversion that lbd refuses is the converter's bug (users get an error that says so;
/// the fuzzer calls it a crash); any other error is the input's, which is fine.
fn accepted(result: Result<Conversion, ConvertError>, what: &str) {
    match result {
        Err(e @ ConvertError::NotAccepted { .. }) => panic!("a {what}: {e}"),
        Err(_) => {}
        Ok(c) => {
            // Checked by the converter itself; here because that is what the target holds.
            let toml = c.toml();
            if let Err(e) = lbd::config::parse("converted.toml", &toml) {
                panic!("a converted {what} does not validate:\n{e}\n--- converted:\n{toml}");
            }
        }
    }
}

/// A keepalived.conf (includes are not followed: the file system is not the input).
pub fn keepalived_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        return;
    }
    accepted(
        keepalived::convert_str("keepalived.conf", text, &Default::default()),
        "keepalived.conf",
    );
}

/// An ldirectord.cf.
pub fn ldirectord_cf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    accepted(
        ldirectord::convert_str("ldirectord.cf", text, &Default::default()),
        "ldirectord.cf",
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_take_empty_and_short_inputs() {
        for (_, target) in super::TARGETS {
            for input in [&b""[..], b"{", b"}", b"virtual=", b"\xff"] {
                target(input);
            }
        }
    }
}
