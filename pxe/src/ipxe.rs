//! iPXE scripts: the generic entry point and each node's own script. Pure.
//!
//! The generic script (`/boot.ipxe`, also over TFTP) chains to `/boot/<mac>.ipxe` with the MAC
//! of the NIC iPXE booted from (`${netX/mac:hexhyp}`). A node's script loads the image's kernel
//! and initramfs over HTTP and puts the node's config URL and `BOOTIF=` on the kernel command
//! line with the MAC written out, so neither iPXE nor init has a variable left to expand. Both scripts retry
//! every 10 s on failure instead of falling through to the next boot device.

use crate::console::{self, SerialConsole};
use crate::mac::Mac;

/// How long a failed boot waits before trying again, in seconds.
pub const RETRY_SECS: u32 = 10;

/// Everything a node script needs besides the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    /// `http://ADDR:PORT` as the booting machines reach pxe, no trailing `/`.
    pub base_url: String,
    /// The image's own kernel command line (from its `manifest.json`), without `initrd=`
    /// and `lb.config=`.
    pub image_cmdline: String,
    /// `[boot] cmdline` of the inventory.
    pub boot_cmdline: String,
    /// `[boot] console` of the inventory: the serial console of nodes without their own.
    pub boot_console: Option<SerialConsole>,
}

/// The generic entry script.
pub fn generic_script(base_url: &str) -> String {
    format!(
        "#!ipxe\n\
         # Served by pxe: chains to this machine's own script, chosen by its MAC.\n\
         :retry\n\
         chain {base_url}/boot/${{netX/mac:hexhyp}}.ipxe || goto failed\n\
         :failed\n\
         echo pxe: no boot script for ${{netX/mac}} from {base_url} (unknown MAC? see the pxe log); retrying in {RETRY_SECS} s\n\
         sleep {RETRY_SECS}\n\
         goto retry\n"
    )
}

/// The URL of a node's config.
pub fn config_url(base_url: &str, mac: Mac) -> String {
    format!("{base_url}/config/{}.toml", mac.hyphenated())
}

/// The kernel command line of a node. A serial console (the node's own, else `[boot]
/// console`) replaces the image's `console=` words with `console=tty0 console=<it>`.
pub fn kernel_cmdline(
    params: &BootParams,
    mac: Mac,
    node_cmdline: &str,
    node_console: Option<&SerialConsole>,
) -> String {
    let mut words = vec!["initrd=initrd.img".to_string()];
    let image = match node_console.or(params.boot_console.as_ref()) {
        Some(c) => console::replace_consoles(&params.image_cmdline, c),
        None => params.image_cmdline.clone(),
    };
    words.extend(image.split_whitespace().map(str::to_string));
    words.push(format!("lb.config={}", config_url(&params.base_url, mac)));
    // The NIC that booted, as pxelinux and iPXE name it: init configures it when `ip=` names
    // no device (or the bond it is in).
    words.push(format!("BOOTIF=01-{}", mac.hyphenated()));
    words.extend(params.boot_cmdline.split_whitespace().map(str::to_string));
    words.extend(node_cmdline.split_whitespace().map(str::to_string));
    words.join(" ")
}

/// A node's script: kernel + initramfs from `/image/`, its config URL on the command line.
pub fn node_script(
    params: &BootParams,
    mac: Mac,
    hostname: &str,
    node_cmdline: &str,
    node_console: Option<&SerialConsole>,
) -> String {
    let base = &params.base_url;
    let cmdline = kernel_cmdline(params, mac, node_cmdline, node_console);
    format!(
        "#!ipxe\n\
         # Served by pxe for {hostname} ({mac}).\n\
         :retry\n\
         kernel {base}/image/vmlinuz {cmdline} || goto failed\n\
         initrd {base}/image/initrd.img || goto failed\n\
         boot || goto failed\n\
         :failed\n\
         echo pxe: booting {hostname} failed; retrying in {RETRY_SECS} s\n\
         sleep {RETRY_SECS}\n\
         goto retry\n"
    )
}

/// The image's kernel command line from its `manifest.json` text (`"cmdline"`), without the
/// words pxe writes itself (`initrd=`, `lb.config=`). `None` if the manifest has none.
pub fn image_cmdline_from_manifest(manifest: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(manifest).ok()?;
    let cmdline = v.get("cmdline")?.as_str()?;
    Some(
        cmdline
            .split_whitespace()
            .filter(|w| !w.starts_with("initrd=") && !w.starts_with("lb.config="))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Used when the image has no manifest: the serial console, as `image build` does by default.
pub const DEFAULT_IMAGE_CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 panic=10";

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BootParams {
        BootParams {
            base_url: "http://10.0.0.1:8080".into(),
            image_cmdline: "console=ttyS0 panic=10".into(),
            boot_cmdline: "lb.poll=5s".into(),
            boot_console: None,
        }
    }

    const MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 1]);

    #[test]
    fn node_script_names_everything_explicitly() {
        let s = node_script(&params(), MAC, "lb1", "ip=dhcp", None);
        assert_eq!(
            s,
            "#!ipxe\n\
             # Served by pxe for lb1 (52:54:00:00:00:01).\n\
             :retry\n\
             kernel http://10.0.0.1:8080/image/vmlinuz initrd=initrd.img console=ttyS0 panic=10 lb.config=http://10.0.0.1:8080/config/52-54-00-00-00-01.toml BOOTIF=01-52-54-00-00-00-01 lb.poll=5s ip=dhcp || goto failed\n\
             initrd http://10.0.0.1:8080/image/initrd.img || goto failed\n\
             boot || goto failed\n\
             :failed\n\
             echo pxe: booting lb1 failed; retrying in 10 s\n\
             sleep 10\n\
             goto retry\n"
        );
        assert!(!s.contains("${"), "no variable is left for iPXE to expand");
    }

    #[test]
    fn a_serial_console_replaces_the_image_consoles() {
        let mut p = params();
        p.image_cmdline = "console=tty0 console=ttyS0,115200n8 panic=10".into();
        let words = |p: &BootParams, own: Option<&SerialConsole>| {
            kernel_cmdline(p, MAC, "", own)
                .split_whitespace()
                .filter(|w| w.starts_with("console=") || *w == "panic=10")
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            words(&p, None),
            "console=tty0 console=ttyS0,115200n8 panic=10",
            "no setting: the image's own"
        );
        p.boot_console = Some("ttyS1,115200n8".parse().unwrap());
        assert_eq!(
            words(&p, None),
            "console=tty0 console=ttyS1,115200n8 panic=10",
            "[boot] console for every node"
        );
        let own: SerialConsole = "ttyS0,9600".parse().unwrap();
        assert_eq!(
            words(&p, Some(&own)),
            "console=tty0 console=ttyS0,9600 panic=10",
            "the node's own wins"
        );
        assert!(
            kernel_cmdline(&p, MAC, "", None).starts_with(
                "initrd=initrd.img console=tty0 console=ttyS1,115200n8 panic=10 lb.config="
            ),
            "in the image's place, before pxe's own words"
        );
    }

    #[test]
    fn generic_script_chains_by_mac() {
        let s = generic_script("http://10.0.0.1:8080");
        assert!(s.starts_with("#!ipxe\n"));
        assert!(
            s.contains("chain http://10.0.0.1:8080/boot/${netX/mac:hexhyp}.ipxe || goto failed\n"),
            "{s}"
        );
        assert!(s.contains("goto retry\n"));
    }

    #[test]
    fn manifest_cmdline_drops_words_pxe_writes() {
        let m = r#"{"format":1,"cmdline":"initrd=initrd.img console=tty0 lb.config=http://x/y panic=10"}"#;
        assert_eq!(
            image_cmdline_from_manifest(m).as_deref(),
            Some("console=tty0 panic=10")
        );
        assert_eq!(image_cmdline_from_manifest("{}"), None);
        assert_eq!(image_cmdline_from_manifest("not json"), None);
    }
}
