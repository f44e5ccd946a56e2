//! What an operator makes with stock tools, made the same way in tests: Ed25519 key pairs and
//! config signatures with OpenSSH's `ssh-keygen`, and a config server's self-signed
//! certificate with its key pin computed by `openssl` (curl's `sha256//` form).

use std::path::{Path, PathBuf};

use crate::process;
use crate::programs;

/// A new passphrase-less Ed25519 key pair `dir/name` (and `dir/name.pub`, comment `name@test`);
/// returns the private key's path.
pub fn keypair(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let mut cmd = programs::command("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("{name}@test"))
        .arg("-f")
        .arg(&key);
    process::run(&mut cmd).unwrap_or_else(|e| panic!("{e}"));
    key
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE`: writes `FILE.sig` (replacing one) and
/// returns its bytes.
pub fn sign(key: &Path, namespace: &str, file: &Path) -> Vec<u8> {
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    let _ = std::fs::remove_file(&sig);
    let mut cmd = programs::command("ssh-keygen");
    cmd.args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(file);
    process::run(&mut cmd).unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&sig).unwrap_or_else(|e| panic!("{}: {e}", sig.display()))
}

/// A self-signed P-256 certificate for a config server, valid from now for a day, in `dir`
/// (`server.crt`, `server.key`), and the pin of its key as openssl computes it.
pub fn server_certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let openssl = programs::path("openssl");
    let mut req = std::process::Command::new(&openssl);
    req.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args([
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=config-server",
        "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&cert);
    process::run(&mut req).unwrap_or_else(|e| panic!("{e}"));
    let mut pin = programs::command("sh");
    pin.arg("-c").arg(format!(
        "{o} x509 -in '{c}' -pubkey -noout | {o} pkey -pubin -outform der | {o} dgst -sha256 -binary | base64",
        o = openssl.display(),
        c = cert.display()
    ));
    let out = process::run(&mut pin).unwrap_or_else(|e| panic!("{e}"));
    let pin = format!("sha256//{}", String::from_utf8_lossy(&out.stdout).trim());
    (cert, key, pin)
}
