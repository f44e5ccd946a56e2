//! MAC addresses as they appear in inventories, URLs and iPXE variables.
//!
//! Accepted spellings (any case): `aa:bb:cc:dd:ee:ff` (iPXE's `${mac}`, init's `${mac}`),
//! `aa-bb-cc-dd-ee-ff` (`${mac:hexhyp}`, init's `${mac_hyphen}`) and `aabbccddeeff`.
//! Displayed as lower-case `aa:bb:cc:dd:ee:ff`.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// Why a text is not a MAC address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a MAC address; expected six hex octets such as 52:54:00:12:34:56 (`:` or `-` between them, or none)")]
pub struct MacError {
    /// The text as given.
    pub text: String,
}

impl Mac {
    /// `aa-bb-cc-dd-ee-ff`: the file-name friendly form used in URLs.
    pub fn hyphenated(&self) -> String {
        self.join("-")
    }

    fn join(&self, sep: &str) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.join(":"))
    }
}

impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Mac, MacError> {
        let err = || MacError {
            text: s.to_string(),
        };
        let octets: Vec<&str> = if s.len() == 12 {
            (0..6)
                .map(|i| s.get(2 * i..2 * i + 2).unwrap_or(""))
                .collect()
        } else if s.len() == 17 {
            let sep = if s.as_bytes()[2] == b'-' { '-' } else { ':' };
            s.split(sep).collect()
        } else {
            return Err(err());
        };
        if octets.len() != 6 {
            return Err(err());
        }
        let mut mac = [0u8; 6];
        for (o, text) in mac.iter_mut().zip(octets) {
            if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *o = u8::from_str_radix(text, 16).map_err(|_| err())?;
        }
        Ok(Mac(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Mac = Mac([0x52, 0x54, 0x00, 0xab, 0x0c, 0x01]);

    #[test]
    fn parses_every_spelling_in_any_case() {
        for text in [
            "52:54:00:ab:0c:01",
            "52:54:00:AB:0C:01",
            "52-54-00-ab-0c-01",
            "52-54-00-Ab-0C-01",
            "525400ab0c01",
            "525400AB0C01",
        ] {
            assert_eq!(text.parse::<Mac>(), Ok(M), "{text}");
        }
        assert_eq!(M.to_string(), "52:54:00:ab:0c:01");
        assert_eq!(M.hyphenated(), "52-54-00-ab-0c-01");
    }

    #[test]
    fn refuses_near_misses() {
        for text in [
            "",
            "52:54:00:ab:0c",
            "52:54:00:ab:0c:01:02",
            "52:54-00:ab:0c:01",
            "52:54:00:ab:0c:0g",
            "5:254:00:ab:0c:01",
            "+2:54:00:ab:0c:01",
            "52.54.00.ab.0c.01",
            "525400ab0c0",
            "52:54:00:ab:0c:01 ",
            "é2:54:00:ab:0c:1",
        ] {
            assert!(text.parse::<Mac>().is_err(), "{text:?} accepted");
        }
        let e = "nope".parse::<Mac>().unwrap_err();
        assert!(e.to_string().contains("\"nope\" is not a MAC address"));
    }
}
