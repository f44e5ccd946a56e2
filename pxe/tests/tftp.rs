//! `pxe serve` over TFTP against real clients on loopback: tftp-hpa (what firmware-era tools
//! use) and atftp (blksize / tsize negotiation, RFC 2348 / 2349), path escapes and refused
//! writes.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `tftp HOST PORT -m binary -c get REMOTE LOCAL` (tftp-hpa); returns its output text.
fn hpa_get(pxe: &Server, remote: &str, local: &std::path::Path) -> String {
    let port = pxe.tftp.port().to_string();
    let out = run(
        "tftp",
        &[
            "127.0.0.1",
            &port,
            "-m",
            "binary",
            "-c",
            "get",
            remote,
            local.to_str().unwrap(),
        ],
        T,
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tftp_hpa_gets_the_scripts_configs_and_ipxe_binaries() {
    require("tftp");
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);
    let dir = tempfile::tempdir().unwrap();
    let local = |n: &str| dir.path().join(n);

    // The generic script over TFTP is the one over HTTP (it chains to HTTP).
    let said = hpa_get(&pxe, "boot.ipxe", &local("boot.ipxe"));
    assert!(!said.contains("Error"), "{said}");
    let script = std::fs::read(local("boot.ipxe")).unwrap();
    assert_eq!(script, curl(&pxe.url("/boot.ipxe"), &[]).body);
    assert!(String::from_utf8_lossy(&script).contains(&format!("chain {}/boot/", pxe.base)));
    // A leading slash, as some firmware sends it.
    hpa_get(&pxe, "/boot.ipxe", &local("boot2.ipxe"));
    assert_eq!(std::fs::read(local("boot2.ipxe")).unwrap(), script);

    // Node script and config: the same bytes as over HTTP.
    hpa_get(&pxe, "boot/52-54-00-00-00-01.ipxe", &local("lb1.ipxe"));
    assert_eq!(
        std::fs::read(local("lb1.ipxe")).unwrap(),
        curl(&pxe.url("/boot/52-54-00-00-00-01.ipxe"), &[]).body
    );
    // (tftp-hpa reads `a:b` as HOST:FILE, so the colon spelling is fetched with atftp below.)
    hpa_get(&pxe, "config/52-54-00-00-00-02.toml", &local("lb2.toml"));
    let lb2 = std::fs::read(local("lb2.toml")).unwrap();
    assert!(lb2 == curl(&pxe.url("/config/52-54-00-00-00-02.toml"), &[]).body);
    assert!(String::from_utf8_lossy(&lb2).contains("hostname = \"lb2\""));

    // A binary of the TFTP root, larger than one 512-byte block many times over.
    hpa_get(&pxe, "undionly.kpxe", &local("undionly.kpxe"));
    assert!(std::fs::read(local("undionly.kpxe")).unwrap() == site.read("tftp/undionly.kpxe"));

    // Unknown MAC and missing file: TFTP's "file not found", and a log line for the MAC.
    let said = hpa_get(&pxe, "config/02-00-00-00-00-77.toml", &local("x"));
    assert!(said.contains("Error code 1"), "{said}");
    pxe.wait_log(&["WARN", "unknown MAC", "mac=02:00:00:00:00:77"]);
    let said = hpa_get(&pxe, "ipxe.efi", &local("y"));
    assert!(said.contains("Error code 1"), "{said}");

    // The access log has the start and the end of each transfer.
    let done = pxe.wait_log(&[
        "pxe::access",
        "proto=\"tftp\"",
        "path=undionly.kpxe",
        "status=\"complete\"",
    ]);
    assert!(done.contains("bytes=74213"), "{done}");
    assert!(done.contains("peer=127.0.0.1:"), "{done}");
    let sent = pxe.wait_log(&[
        "pxe::access",
        "path=config/52-54-00-00-00-02.toml",
        "status=\"sending\"",
    ]);
    assert!(sent.contains("node=\"lb2\""), "{sent}");
}

#[test]
fn atftp_negotiates_block_size_and_transfer_size() {
    require("atftp");
    let site = Site::new();
    let pxe = Server::start(&site);
    let dir = tempfile::tempdir().unwrap();
    let port = pxe.tftp.port().to_string();
    let local = dir.path().join("undionly.kpxe");
    let out = run(
        "atftp",
        &[
            "--trace",
            "--option",
            "blksize 1428",
            "--option",
            "tsize 0",
            "-g",
            "-r",
            "undionly.kpxe",
            "-l",
            local.to_str().unwrap(),
            "127.0.0.1",
            &port,
        ],
        T,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("received OACK <tsize: 74213, blksize: 1428"),
        "{said}"
    );
    assert!(said.contains("DATA <block: 1, size 1428>"), "{said}");
    assert!(std::fs::read(&local).unwrap() == site.read("tftp/undionly.kpxe"));
    // 74213 bytes in 1428-byte blocks: 51 full blocks and a last one of 1385.
    assert!(said.contains("DATA <block: 52, size 1385>"), "{said}");

    // A config by MAC with colons, as init's ${mac} writes it, in 1024-byte blocks.
    let cfg = dir.path().join("lb1.toml");
    let out = run(
        "atftp",
        &[
            "--trace",
            "--option",
            "blksize 1024",
            "--option",
            "tsize 0",
            "-g",
            "-r",
            "config/52:54:00:00:00:01.toml",
            "-l",
            cfg.to_str().unwrap(),
            "127.0.0.1",
            &port,
        ],
        T,
    );
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("hostname = \"lb1\"\n"), "{text}");
    assert!(
        said.contains(&format!(
            "received OACK <tsize: {}, blksize: 1024",
            text.len()
        )),
        "{said}"
    );
}

#[test]
fn tftp_refuses_escapes_and_writes_and_keeps_serving() {
    require("tftp");
    let site = Site::new();
    std::os::unix::fs::symlink(site.path("secret"), site.path("tftp/escape")).unwrap();
    let pxe = Server::start(&site);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("got");

    for remote in [
        "../secret",
        "tftp/../../secret",
        "escape",
        "//secret",
        "a\\..\\..\\secret",
    ] {
        let _ = std::fs::remove_file(&local);
        let said = hpa_get(&pxe, remote, &local);
        assert!(said.contains("Error code 2"), "{remote}: {said}");
        let got = std::fs::read(&local).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&got).contains("SECRET"),
            "{remote} leaked"
        );
    }
    pxe.wait_log(&[
        "WARN",
        "tftp refused",
        "path=escape",
        "leaves the served directory",
    ]);

    // Writes are refused and change nothing.
    let upload = dir.path().join("upload");
    std::fs::write(&upload, "overwrite\n").unwrap();
    let port = pxe.tftp.port().to_string();
    let out = run(
        "tftp",
        &[
            "127.0.0.1",
            &port,
            "-m",
            "binary",
            "-c",
            "put",
            upload.to_str().unwrap(),
            "undionly.kpxe",
        ],
        T,
    );
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Error code 2"), "{said}");
    pxe.wait_log(&["WARN", "tftp write refused"]);
    assert_eq!(site.read("tftp/undionly.kpxe").len(), 74_213);

    // Still serving.
    hpa_get(&pxe, "undionly.kpxe", &local);
    assert!(std::fs::read(&local).unwrap() == site.read("tftp/undionly.kpxe"));
}
