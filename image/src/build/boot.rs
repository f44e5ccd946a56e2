//! What the boot loader is told: the kernel command line and the iPXE script.

use super::BuildError;

/// Kernel command line used when `--cmdline` is not given. The last `console=` becomes
/// /dev/console, so the serial port gets init's output; `panic=10` reboots a wedged box.
pub const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 panic=10";

/// x86's COMMAND_LINE_SIZE, including the terminating NUL.
const MAX_CMDLINE: usize = 2047;

/// The final command line: `initrd=initrd.img` first (iPXE's EFI loader needs it to hand the
/// initrd to the kernel), then the user's or the default parameters.
pub fn full_cmdline(user: Option<&str>) -> Result<String, BuildError> {
    let params = user.unwrap_or(DEFAULT_CMDLINE).trim();
    if params.chars().any(|c| c.is_control()) {
        return Err(BuildError::Cmdline(
            "contains a control character (newline?); it must be one line".into(),
        ));
    }
    let has_initrd = params.split_whitespace().any(|p| p.starts_with("initrd="));
    let cmdline = if has_initrd {
        params.to_string()
    } else if params.is_empty() {
        "initrd=initrd.img".to_string()
    } else {
        format!("initrd=initrd.img {params}")
    };
    if cmdline.len() > MAX_CMDLINE {
        return Err(BuildError::Cmdline(format!(
            "{} bytes; the x86 kernel accepts at most {MAX_CMDLINE}",
            cmdline.len()
        )));
    }
    Ok(cmdline)
}

/// `boot.ipxe`: relative URLs, so it works wherever the pxe server serves the directory.
pub fn ipxe_script(cmdline: &str) -> String {
    format!("#!ipxe\nkernel vmlinuz {cmdline}\ninitrd initrd.img\nboot\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_gets_initrd_first() {
        assert_eq!(
            full_cmdline(None).unwrap(),
            format!("initrd=initrd.img {DEFAULT_CMDLINE}")
        );
        assert_eq!(
            full_cmdline(Some("console=ttyS0 lb.debug")).unwrap(),
            "initrd=initrd.img console=ttyS0 lb.debug"
        );
        assert_eq!(
            full_cmdline(Some("initrd=other.img quiet")).unwrap(),
            "initrd=other.img quiet"
        );
        assert_eq!(full_cmdline(Some("")).unwrap(), "initrd=initrd.img");
        assert!(full_cmdline(Some("a\nchain http://evil/")).is_err());
        assert!(full_cmdline(Some(&"x".repeat(3000))).is_err());
    }

    #[test]
    fn ipxe_script_is_relative() {
        assert_eq!(
            ipxe_script("initrd=initrd.img console=ttyS0"),
            "#!ipxe\nkernel vmlinuz initrd=initrd.img console=ttyS0\ninitrd initrd.img\nboot\n"
        );
    }
}
