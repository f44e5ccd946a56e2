//! Signing what pxe serves, and checking those signatures as a node will.
//!
//! pxe holds no private key: `pxe sign` runs where the operator's key is and writes each
//! node's render with its detached signature (made by OpenSSH's `ssh-keygen -Y sign`, so the
//! key can stay in ssh-agent or on a token); `pxe serve --signatures DIR` then serves the
//! signatures beside the configs it renders. If the template or the inventory changed after
//! signing, the render no longer matches its signature and the node refuses it: `pxe check
//! --trusted-keys --signatures` says so before a node does.

use std::path::{Path, PathBuf};
use std::process::Command;

use lbd::trust::{self, Identity, PublicKey};

use crate::inventory::NodeEntry;
use crate::Mac;

/// The namespace image files are signed in (configs use [`trust::NAMESPACE`]).
pub const IMAGE_NAMESPACE: &str = "lb-image";

/// Writes `body` to `out/config/MAC.toml` and signs it into `MAC.toml.sig`; returns the
/// signature's path.
pub fn sign_config(key: &Path, out: &Path, mac: Mac, body: &[u8]) -> Result<PathBuf, String> {
    let dir = out.join("config");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("{}.toml", mac.hyphenated()));
    std::fs::write(&file, body).map_err(|e| format!("{}: {e}", file.display()))?;
    ssh_sign(key, trust::NAMESPACE, &file)
}

/// Writes a node's iPXE script to `out/boot/MAC.ipxe` and signs it (namespace lb-image: it
/// is boot material, like the kernel).
pub fn sign_script(key: &Path, out: &Path, mac: Mac, script: &[u8]) -> Result<PathBuf, String> {
    let dir = out.join("boot");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("{}.ipxe", mac.hyphenated()));
    std::fs::write(&file, script).map_err(|e| format!("{}: {e}", file.display()))?;
    ssh_sign(key, IMAGE_NAMESPACE, &file)
}

/// Signs an image file into `out/image/FILE.sig`.
pub fn sign_image_file(key: &Path, out: &Path, file: &Path) -> Result<PathBuf, String> {
    let name = file
        .file_name()
        .ok_or_else(|| format!("{}: not a file", file.display()))?;
    let dir = out.join("image");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = dir.join(name);
    std::fs::copy(file, &copy).map_err(|e| format!("{}: {e}", file.display()))?;
    let sig = ssh_sign(key, IMAGE_NAMESPACE, &copy)?;
    // Only the signature is served: the image directory has the file itself.
    let _ = std::fs::remove_file(&copy);
    Ok(sig)
}

/// `ssh-keygen -Y sign -f KEY -n NAMESPACE FILE` → `FILE.sig` (replaced if present).
fn ssh_sign(key: &Path, namespace: &str, file: &Path) -> Result<PathBuf, String> {
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    let _ = std::fs::remove_file(&sig);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh-keygen (openssh-client): {e}"))?;
    if !out.status.success() || !sig.is_file() {
        return Err(format!(
            "ssh-keygen -Y sign -f {} failed: {}",
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(sig)
}

/// Checks a node's current render against its signature in `dir`, and that the render's
/// `[release]` names the node, as the node will; `Ok` says who signed it.
pub fn check_node(
    body: &[u8],
    entry: &NodeEntry,
    dir: &Path,
    keys: &[PublicKey],
) -> Result<String, String> {
    let sig_path = dir
        .join("config")
        .join(format!("{}.toml.sig", entry.mac.hyphenated()));
    let sig = std::fs::read(&sig_path)
        .map_err(|e| format!("no signature {} ({e}): run pxe sign", sig_path.display()))?;
    let key = trust::verify(body, &sig, keys).map_err(|e| match e {
        trust::TrustError::BadSignature { .. } => format!(
            "{e} — the template or inventory changed after {} was signed: run pxe sign again",
            sig_path.display()
        ),
        other => other.to_string(),
    })?;
    let release = lbd::config::parse("render", &String::from_utf8_lossy(body))
        .ok()
        .and_then(|l| l.config.release.clone());
    let identity = Identity {
        macs: vec![entry.mac.0],
        hostname: Some(entry.hostname.clone()),
    };
    trust::check_release(release.as_ref(), "", &identity, None, 0)
        .map_err(|e| format!("signed by {}, but {e}", key.fingerprint()))?;
    Ok(format!(
        "signed by {} {}, serial {}",
        key.fingerprint(),
        key.comment,
        release.map(|r| r.serial).unwrap_or_default()
    ))
}
