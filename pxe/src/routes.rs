//! The URL layout, shared by HTTP and TFTP. Pure.
//!
//! | path                  | what                                                        |
//! |-----------------------|-------------------------------------------------------------|
//! | `/boot.ipxe`          | generic iPXE script: chains to `/boot/${netX/mac:hexhyp}.ipxe` |
//! | `/boot/<mac>.ipxe`    | the node's iPXE script (kernel, initrd, its config URL)     |
//! | `/config/<mac>.toml`  | the node's rendered, validated config                       |
//! | `/image/<file>`       | a file of the image directory (`vmlinuz`, `initrd.img`, ...) (HTTP) |
//! | `/ipxe/<file>`        | a file of the TFTP root, for UEFI HTTP boot (`snponly.efi`) (HTTP) |
//! | `/status`             | JSON: nodes, served config versions, current problems (HTTP) |
//! | `<any of the above>.sig` | its detached signature, from `--signatures` (`pxe sign` writes them) |
//! | `<file>`              | a file of the TFTP root (`undionly.kpxe`, `snponly.efi`, `ipxe.efi`) (TFTP) |
//!
//! `<mac>` is `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabbccddeeff`, any case.

use crate::mac::Mac;
use crate::safepath::{self, PathError};

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    GenericScript,
    NodeScript(Mac),
    Config(Mac),
    /// A file below the image directory (HTTP) or the TFTP root (TFTP), as checked words.
    File(Vec<String>),
    /// A file of the TFTP root asked for over HTTP (`/ipxe/...`): UEFI firmware that boots
    /// by HTTP fetches iPXE itself by URL.
    LoaderFile(Vec<String>),
    Status,
    /// The detached signature of a script, config or image file: its path below the
    /// signatures directory (`config/aa-bb-cc-dd-ee-ff.toml.sig`), MACs written one way.
    Signature(Vec<String>),
    /// `/boot/x.ipxe` or `/config/x.toml` where x is not a MAC.
    BadMac(String),
    /// A path that tries to leave its directory, or is malformed.
    Refused(PathError),
    NotFound,
}

/// Routes an HTTP request path (percent-encoded, without the query).
pub fn http(path: &str) -> Route {
    match path.strip_suffix(".sig") {
        Some(signed) => signature_of(http_unsigned(signed)),
        None => http_unsigned(path),
    }
}

/// Where the signature of what `route` serves is kept, below the signatures directory.
fn signature_of(route: Route) -> Route {
    let words: Vec<String> = match route {
        Route::GenericScript => vec!["boot.ipxe.sig".into()],
        Route::NodeScript(mac) => vec!["boot".into(), format!("{}.ipxe.sig", mac.hyphenated())],
        Route::Config(mac) => vec!["config".into(), format!("{}.toml.sig", mac.hyphenated())],
        Route::File(mut words) => {
            if let Some(last) = words.last_mut() {
                last.push_str(".sig");
            }
            let mut path = vec!["image".to_string()];
            path.extend(words);
            path
        }
        other @ (Route::BadMac(_) | Route::Refused(_)) => return other,
        _ => return Route::NotFound,
    };
    Route::Signature(words)
}

fn http_unsigned(path: &str) -> Route {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    match rest {
        "" => return Route::NotFound,
        "boot.ipxe" => return Route::GenericScript,
        "status" => return Route::Status,
        _ => {}
    }
    if let Some(file) = rest.strip_prefix("image/") {
        return match safepath::clean(file, true) {
            Ok(words) => Route::File(words),
            Err(e) => Route::Refused(e),
        };
    }
    if let Some(file) = rest.strip_prefix("ipxe/") {
        return match safepath::clean(file, true) {
            Ok(words) => Route::LoaderFile(words),
            Err(e) => Route::Refused(e),
        };
    }
    match safepath::clean(rest, true) {
        Ok(words) => per_mac(&words).unwrap_or(Route::NotFound),
        Err(e) => Route::Refused(e),
    }
}

/// Routes a TFTP file name (literal, no percent-encoding; one leading `/` is ignored, as
/// firmware sends both `boot.ipxe` and `/boot.ipxe`).
pub fn tftp(name: &str) -> Route {
    let name = name.strip_prefix('/').unwrap_or(name);
    if let Some(signed) = name.strip_suffix(".sig") {
        // Scripts and configs only: TFTP's plain files are the iPXE binaries.
        return match tftp_unsigned(signed) {
            Route::File(_) => Route::NotFound,
            route => signature_of(route),
        };
    }
    tftp_unsigned(name)
}

fn tftp_unsigned(name: &str) -> Route {
    match safepath::clean(name, false) {
        Ok(words) if words == ["boot.ipxe"] => Route::GenericScript,
        Ok(words) => per_mac(&words).unwrap_or(Route::File(words)),
        Err(e) => Route::Refused(e),
    }
}

fn per_mac(words: &[String]) -> Option<Route> {
    let [dir, file] = words else {
        return None;
    };
    let (stem, make): (&str, fn(Mac) -> Route) = match dir.as_str() {
        "boot" => (file.strip_suffix(".ipxe")?, Route::NodeScript),
        "config" => (file.strip_suffix(".toml")?, Route::Config),
        _ => return None,
    };
    Some(match stem.parse::<Mac>() {
        Ok(mac) => make(mac),
        Err(_) => Route::BadMac(stem.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Mac = Mac([0x52, 0x54, 0, 0xab, 0, 1]);

    #[test]
    fn http_layout() {
        assert_eq!(http("/boot.ipxe"), Route::GenericScript);
        assert_eq!(http("/status"), Route::Status);
        for p in [
            "/boot/52:54:00:ab:00:01.ipxe",
            "/boot/52-54-00-AB-00-01.ipxe",
            "/boot/525400ab0001.ipxe",
            "/boot/52%3A54%3A00%3Aab%3A00%3A01.ipxe",
        ] {
            assert_eq!(http(p), Route::NodeScript(M), "{p}");
        }
        assert_eq!(http("/config/52-54-00-ab-00-01.toml"), Route::Config(M));
        assert_eq!(http("/config/52:54:00:AB:00:01.toml"), Route::Config(M));
        assert_eq!(http("/config/lb1.toml"), Route::BadMac("lb1".into()));
        assert_eq!(http("/image/vmlinuz"), Route::File(vec!["vmlinuz".into()]));
        assert_eq!(
            http("/ipxe/snponly.efi"),
            Route::LoaderFile(vec!["snponly.efi".into()])
        );
        assert_eq!(http("/"), Route::NotFound);
        assert_eq!(http("/config/52-54-00-ab-00-01.json"), Route::NotFound);
        assert_eq!(http("/config/x/52-54-00-ab-00-01.toml"), Route::NotFound);
        assert_eq!(http("/boot.ipxe.bak"), Route::NotFound);
        assert_eq!(http("nothing"), Route::NotFound);
    }

    #[test]
    fn http_escapes_are_refused() {
        for p in [
            "/image/../inventory.toml",
            "/image/%2e%2e/inventory.toml",
            "/image//etc/passwd",
            "/image/a/../../b",
            "/image/..%2f..%2fetc%2fpasswd",
            "/image/",
            "/ipxe/../inventory.toml",
            "/ipxe/%2e%2e/%2e%2e/etc/passwd",
            "/config/../../etc/passwd",
        ] {
            assert!(matches!(http(p), Route::Refused(_)), "{p}: {:?}", http(p));
        }
    }

    #[test]
    fn signatures_sit_beside_what_they_sign() {
        let sig = |words: &[&str]| Route::Signature(words.iter().map(|w| w.to_string()).collect());
        assert_eq!(
            http("/config/52:54:00:AB:00:01.toml.sig"),
            sig(&["config", "52-54-00-ab-00-01.toml.sig"])
        );
        assert_eq!(
            http("/boot/525400ab0001.ipxe.sig"),
            sig(&["boot", "52-54-00-ab-00-01.ipxe.sig"])
        );
        assert_eq!(http("/boot.ipxe.sig"), sig(&["boot.ipxe.sig"]));
        assert_eq!(
            http("/image/initrd.img.sig"),
            sig(&["image", "initrd.img.sig"])
        );
        assert_eq!(
            tftp("config/52-54-00-ab-00-01.toml.sig"),
            sig(&["config", "52-54-00-ab-00-01.toml.sig"])
        );
        assert_eq!(tftp("undionly.kpxe.sig"), Route::NotFound);
        assert_eq!(http("/status.sig"), Route::NotFound);
        assert!(matches!(http("/image/../x.sig"), Route::Refused(_)));
        assert_eq!(http("/config/lb1.toml.sig"), Route::BadMac("lb1".into()));
    }

    #[test]
    fn tftp_layout() {
        assert_eq!(tftp("boot.ipxe"), Route::GenericScript);
        assert_eq!(tftp("/boot.ipxe"), Route::GenericScript);
        assert_eq!(tftp("boot/52-54-00-ab-00-01.ipxe"), Route::NodeScript(M));
        assert_eq!(tftp("/config/52:54:00:ab:00:01.toml"), Route::Config(M));
        assert_eq!(
            tftp("undionly.kpxe"),
            Route::File(vec!["undionly.kpxe".into()])
        );
        for p in ["../etc/passwd", "//etc/passwd", "a/../b", "a\\..\\b", ""] {
            assert!(matches!(tftp(p), Route::Refused(_)), "{p}: {:?}", tftp(p));
        }
    }
}
