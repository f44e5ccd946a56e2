//! The serial console a node's kernel writes to, for machines without a screen: the
//! inventory's `console = "ttyS1,115200n8"` (in `[boot]` for every node, or per node). Pure.
//!
//! The kernel's `/dev/console` is the **last** `console=` on its command line; every one named
//! gets the kernel's messages. So the image's own `console=` words are replaced by
//! `console=tty0 console=<the setting>`: the screen keeps its messages, and the serial port,
//! which is what a remote operator reads (IPMI serial-over-LAN, a console server), becomes
//! `/dev/console`.

use std::fmt;
use std::str::FromStr;

/// Line speeds the kernel's serial drivers take on the command line (bits per second).
pub const SPEEDS: [u32; 11] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600,
];

/// Device names a serial console may have: the PC UART (8250/16550), the ARM PrimeCell UART,
/// a hypervisor console.
const DEVICES: [&str; 3] = ["ttyS", "ttyAMA", "hvc"];

/// The accepted forms, for messages.
pub const FORM_HELP: &str = "write DEVICE[,SPEED[PARITY[BITS]]], e.g. \"ttyS1,115200n8\": DEVICE is ttyS<N>, ttyAMA<N> or hvc<N>; SPEED one of 1200 2400 4800 9600 19200 38400 57600 115200 230400 460800 921600; PARITY n, o or e; BITS 5 to 8";

/// A validated serial console: `ttyS1` with options `115200n8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialConsole {
    /// `ttyS1`, `ttyAMA0`, `hvc0`.
    pub device: String,
    /// `115200n8`, `9600`, or empty (the driver's default speed).
    pub options: String,
}

impl FromStr for SerialConsole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (device, options) = s.split_once(',').unwrap_or((s, ""));
        if device == "tty0" || (device.starts_with("tty") && device[3..].parse::<u8>().is_ok()) {
            return Err(format!(
                "{device:?} is a virtual terminal, not a serial port; console=tty0 (the screen) is always added"
            ));
        }
        let number = DEVICES
            .iter()
            .find_map(|d| device.strip_prefix(d))
            .ok_or_else(|| format!("{device:?} is not a serial console device"))?;
        if number.is_empty()
            || number.len() > 3
            || !number.bytes().all(|b| b.is_ascii_digit())
            || (number.len() > 1 && number.starts_with('0'))
        {
            return Err(format!(
                "{device:?} is not a serial console device: the name ends in the port number"
            ));
        }
        if s.contains(',') {
            check_options(device, options)?;
        }
        Ok(SerialConsole {
            device: device.to_string(),
            options: options.to_string(),
        })
    }
}

/// `SPEED[PARITY[BITS]]`, as the kernel's `uart_parse_options` reads it (flow control `r`
/// is left out: few BMCs pass RTS/CTS).
fn check_options(device: &str, options: &str) -> Result<(), String> {
    if device.starts_with("hvc") {
        return Err(format!(
            "{device} is a hypervisor console and takes no speed; write just {device:?}"
        ));
    }
    let digits = options.bytes().take_while(u8::is_ascii_digit).count();
    let (speed, rest) = options.split_at(digits);
    match speed.parse::<u32>() {
        Ok(n) if SPEEDS.contains(&n) => {}
        Ok(n) => return Err(format!("{n} is not a standard serial speed")),
        Err(_) => return Err(format!("{options:?} does not start with a speed")),
    }
    let mut rest = rest.chars();
    match rest.next() {
        None | Some('n' | 'o' | 'e') => {}
        Some(c) => return Err(format!("parity {c:?} is not n (none), o (odd) or e (even)")),
    }
    match rest.next() {
        None | Some('5'..='8') => {}
        Some(c) => return Err(format!("{c:?} is not a number of data bits (5 to 8)")),
    }
    if let Some(c) = rest.next() {
        return Err(format!("unexpected {c:?} after the data bits"));
    }
    Ok(())
}

impl fmt::Display for SerialConsole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.options.is_empty() {
            f.write_str(&self.device)
        } else {
            write!(f, "{},{}", self.device, self.options)
        }
    }
}

/// `cmdline` with its `console=` words replaced by `console=tty0 console=<console>`, where
/// the first of them was (at the end when there was none). The other words keep their order.
pub fn replace_consoles(cmdline: &str, console: &SerialConsole) -> String {
    let ours = ["console=tty0".to_string(), format!("console={console}")];
    let mut words: Vec<String> = Vec::new();
    let mut placed = false;
    for w in cmdline.split_whitespace() {
        if w.starts_with("console=") {
            if !placed {
                words.extend(ours.iter().cloned());
                placed = true;
            }
        } else {
            words.push(w.to_string());
        }
    }
    if !placed {
        words.extend(ours);
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> SerialConsole {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_the_usual_consoles() {
        for (text, device, options) in [
            ("ttyS1,115200n8", "ttyS1", "115200n8"),
            ("ttyS0,9600", "ttyS0", "9600"),
            ("ttyS0", "ttyS0", ""),
            ("ttyS12,57600e7", "ttyS12", "57600e7"),
            ("ttyAMA0,115200", "ttyAMA0", "115200"),
            ("ttyS2,921600o", "ttyS2", "921600o"),
            ("hvc0", "hvc0", ""),
        ] {
            let got = c(text);
            assert_eq!(
                (got.device.as_str(), got.options.as_str()),
                (device, options)
            );
            assert_eq!(got.to_string(), text, "renders as written");
        }
    }

    #[test]
    fn refuses_what_the_kernel_would_not_take() {
        for (text, why) in [
            ("tty0", "virtual terminal"),
            ("tty1,115200", "virtual terminal"),
            ("ttyUSB0,115200", "not a serial console device"),
            ("eth0", "not a serial console device"),
            ("ttyS", "ends in the port number"),
            ("ttyS01", "ends in the port number"),
            ("ttyS1a", "ends in the port number"),
            ("ttyS1,115201n8", "115201 is not a standard serial speed"),
            ("ttyS1,", "does not start with a speed"),
            ("ttyS1,n8", "does not start with a speed"),
            ("ttyS1,115200x8", "parity 'x'"),
            ("ttyS1,115200n9", "'9' is not a number of data bits"),
            ("ttyS1,115200n8r", "unexpected 'r'"),
            ("ttyS1,115200 n8", "parity ' '"),
            ("hvc0,115200", "takes no speed"),
            ("", "not a serial console device"),
        ] {
            let e = text.parse::<SerialConsole>().unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn replaces_the_image_consoles_in_place() {
        let s = c("ttyS1,115200n8");
        assert_eq!(
            replace_consoles("console=tty0 console=ttyS0,115200n8 panic=10", &s),
            "console=tty0 console=ttyS1,115200n8 panic=10"
        );
        assert_eq!(
            replace_consoles("quiet console=ttyS0 panic=10 console=hvc0", &s),
            "quiet console=tty0 console=ttyS1,115200n8 panic=10",
            "every console= word goes, ours stand where the first was"
        );
        assert_eq!(
            replace_consoles("panic=10", &s),
            "panic=10 console=tty0 console=ttyS1,115200n8",
            "none in the image: added at the end"
        );
        assert_eq!(
            replace_consoles("", &c("hvc0")),
            "console=tty0 console=hvc0"
        );
    }
}
