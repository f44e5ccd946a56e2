//! Signing what pxe renders (`pxe sign`, with OpenSSH's ssh-keygen and the operator's key),
//! checking it as the nodes will (`pxe check --trusted-keys`, `lbctl validate
//! --trusted-keys`), and serving the signatures beside the configs (`pxe serve
//! --signatures`).

mod common;

use common::*;
use lbtest::operator_keys::keypair;
use std::path::Path;
use std::process::Command;

fn pxe(args: &[String]) -> (i32, String, String) {
    let out = Command::new(PXE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(site: &Site, cmd: &str, rest: &[String]) -> Vec<String> {
    let mut v = vec![cmd.to_string()];
    v.extend(site.source_args());
    v.extend(rest.iter().cloned());
    v
}

/// The example template with a [release] naming each node by its MAC.
fn signed_site() -> Site {
    let site = Site::new();
    let text = String::from_utf8(site.read("pair.toml.tmpl")).unwrap();
    site.write(
        "pair.toml.tmpl",
        &format!("[release]\nserial = 7\nnode = \"{{{{ node.mac }}}}\"\n\n{text}"),
    );
    site
}

#[test]
fn pxe_signs_every_node_checks_them_and_serves_the_signatures() {
    let site = signed_site();
    let keys = tempfile::tempdir().unwrap();
    let ops = keypair(keys.path(), "ops");
    let other = keypair(keys.path(), "other");
    let out = keys.path().join("signed");
    let s = |p: &Path| p.to_string_lossy().into_owned();

    let (code, stdout, stderr) = pxe(&args(
        &site,
        "sign",
        &[
            "--key".into(),
            s(&ops),
            "--out".into(),
            s(&out),
            "--image".into(),
            s(&site.path("image")),
            "--advertise".into(),
            "127.0.0.1".into(),
        ],
    ));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 configs signed"), "{stdout}");
    assert!(
        out.join("boot/52-54-00-00-00-02.ipxe.sig").is_file(),
        "{stdout}"
    );
    assert!(out.join("image/initrd.img.sig").is_file(), "{stdout}");
    let sig1 = out.join("config/52-54-00-00-00-01.toml.sig");
    assert!(sig1.is_file());

    let check = |keyfile: &Path| {
        pxe(&args(
            &site,
            "check",
            &[
                "--trusted-keys".into(),
                s(&keyfile.with_extension("pub")),
                "--signatures".into(),
                s(&out),
            ],
        ))
    };
    let (code, stdout, _) = check(&ops);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("ok     lb1 (52:54:00:00:00:01): 4 services")
            && stdout.contains("signed by SHA256:")
            && stdout.contains("ops@test, serial 7"),
        "{stdout}"
    );
    // Keys the nodes do not trust.
    let (code, stdout, _) = check(&other);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("a key this image does not trust"),
        "{stdout}"
    );
    // The template changed after signing: the renders no longer match.
    site.edit("inventory.toml", "priority = 150", "priority = 140");
    let (code, stdout, _) = check(&ops);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAILED lb1 (52:54:00:00:00:01):")
            && stdout.contains("run pxe sign again")
            && stdout.contains("ok     lb2"),
        "{stdout}"
    );
    site.edit("inventory.toml", "priority = 140", "priority = 150");

    // lbctl validate checks a render and its signature the same way.
    let lbctl = lbtest::fresh::binary("lbctl", "lbctl", lbtest::fresh::Profile::Debug);
    let render = out.join("config/52-54-00-00-00-01.toml");
    let validate = |file: &Path| {
        Command::new(&lbctl)
            .arg("validate")
            .arg("--trusted-keys")
            .arg(ops.with_extension("pub"))
            .arg(file)
            .output()
            .unwrap()
    };
    let ok = validate(&render);
    assert!(ok.status.success(), "{ok:?}");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("signed by SHA256:") && text.contains("serial 7, for 52:54:00:00:00:01"),
        "{text}"
    );
    let tampered = keys.path().join("tampered.toml");
    let body = std::fs::read_to_string(&render)
        .unwrap()
        .replace("priority = 150", "priority = 250");
    std::fs::write(&tampered, body).unwrap();
    std::fs::copy(&sig1, keys.path().join("tampered.toml.sig")).unwrap();
    let bad = validate(&tampered);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("does not match these bytes"),
        "{bad:?}"
    );

    // Served beside the configs, byte for byte; a node's own config verifies against it.
    let server = Server::start_with(&site, &["--signatures", &s(&out)]);
    let sig = curl(&server.url("/config/52-54-00-00-00-01.toml.sig"), &[]);
    assert_eq!(sig.status, 200);
    assert_eq!(sig.body, std::fs::read(&sig1).unwrap());
    let config = curl(&server.url("/config/52:54:00:00:00:01.toml"), &[]);
    let trusted = lbd::trust::parse_keys(
        &std::fs::read_to_string(ops.with_extension("pub")).unwrap(),
        "k",
    )
    .unwrap();
    lbd::trust::verify(&config.body, &sig.body, &trusted)
        .expect("the served config is the signed one");
    assert_eq!(
        curl(&server.url("/config/52-54-00-00-00-02.toml.sig"), &[]).status,
        200
    );
    assert_eq!(
        curl(&server.url("/config/52-54-00-00-00-09.toml.sig"), &[]).status,
        404
    );
}
