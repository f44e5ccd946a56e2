//! The `pxe` command line: check, render, help, and serve's refusals at startup.

mod common;

use common::*;
use std::process::Command;

fn pxe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PXE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_sources<'a>(site: &'a Site, cmd: &'a str, rest: &[&'a str]) -> Vec<String> {
    let mut v = vec![cmd.to_string()];
    v.extend(site.source_args());
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn run_pxe(args: &[String]) -> (i32, String, String) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    pxe(&a)
}

#[test]
fn check_accepts_the_example_pair() {
    let site = Site::new();
    let (code, out, err) = run_pxe(&with_sources(&site, "check", &[]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("2 nodes (lb1 52:54:00:00:00:01, lb2 52:54:00:00:00:02), unknown MACs: 404"),
        "{out}"
    );
    assert!(
        out.contains("ok     lb1 (52:54:00:00:00:01): 4 services"),
        "{out}"
    );
    assert!(
        out.contains("ok     lb2 (52:54:00:00:00:02): 4 services"),
        "{out}"
    );
}

#[test]
fn check_reports_every_broken_node_with_file_line_col() {
    let site = Site::new();
    site.edit("inventory.toml", "priority = 150", "priority = 300");
    site.edit(
        "inventory.toml",
        "hostname = \"lb2\"",
        "hostname = \"lb2\"\next_if = \"\"",
    );
    let (code, out, _) = run_pxe(&with_sources(&site, "check", &[]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED lb1 (52:54:00:00:00:01):"), "{out}");
    assert!(out.contains("FAILED lb2 (52:54:00:00:00:02):"), "{out}");
    assert!(out.contains("pair.toml.tmpl[lb1]:"), "{out}");
    assert!(out.contains("pair.toml.tmpl[lb2]:"), "{out}");
    assert!(out.contains("2 configs refused"), "{out}");

    // Inventory mistakes: all of them, with places.
    site.write(
        "inventory.toml",
        "[[node]]\nmac = \"52:54:00:00:00:01\"\nhostname = \"lb1\"\npriority = 1\n\n[[node]]\nmac = \"52-54-00-00-00-01\"\nhostname = \"lb1\"\n",
    );
    let (code, _, err) = run_pxe(&with_sources(&site, "check", &[]));
    assert_eq!(code, 1);
    assert!(
        err.contains("error[duplicate-mac]: MAC 52:54:00:00:00:01 is listed twice"),
        "{err}"
    );
    assert!(err.contains("inventory.toml:7:7"), "{err}");
    assert!(
        err.contains("7 | mac = \"52-54-00-00-00-01\""),
        "the line is shown: {err}"
    );
}

#[test]
fn render_prints_what_is_served_and_refuses_unknown_macs() {
    let site = Site::new();
    let (code, out, err) = run_pxe(&with_sources(
        &site,
        "render",
        &["--mac", "52-54-00-00-00-01"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("hostname = \"lb1\"\n") && out.contains("priority = 150\n"),
        "{out}"
    );
    assert!(err.contains("lb1 (52:54:00:00:00:01): 4 services"), "{err}");
    assert!(lbd::config::parse("rendered", &out).is_ok());

    let (code, _, err) = run_pxe(&with_sources(
        &site,
        "render",
        &["--mac", "02:00:00:00:00:01"],
    ));
    assert_eq!(code, 1);
    assert!(err.contains("02:00:00:00:00:01 is not in"), "{err}");
    assert!(err.contains("it would get 404"), "{err}");

    let (code, _, err) = run_pxe(&with_sources(&site, "render", &["--mac", "lb1"]));
    assert_eq!(code, 2, "bad MAC is a usage error: {err}");
    assert!(err.contains("not a MAC address"), "{err}");
}

#[test]
fn help_documents_the_url_layout() {
    let (code, out, _) = pxe(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "/boot.ipxe",
        "/boot/MAC.ipxe",
        "/config/MAC.toml",
        "/image/FILE",
        "/status",
        "undionly.kpxe",
        "If-None-Match",
        "Range",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
    let (code, out, _) = pxe(&["serve", "--help"]);
    assert_eq!(code, 0);
    for needle in [
        "--image",
        "--inventory",
        "--template",
        "--http",
        "--tftp",
        "--advertise",
        "--poll",
    ] {
        assert!(out.contains(needle), "serve --help lacks {needle}:\n{out}");
    }
}

#[test]
fn serve_refuses_what_it_cannot_serve() {
    let site = Site::new();
    let image = site.path("image").display().to_string();
    let mut args = vec!["serve".to_string(), "--image".into(), image.clone()];
    args.extend(site.source_args());
    // 0.0.0.0 without --advertise: the scripts would not know the address.
    let mut a = args.clone();
    a.extend(["--http".into(), "0.0.0.0:0".into()]);
    let (code, _, err) = run_pxe(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give --advertise ADDR"), "{err}");
    // A missing inventory.
    let mut a = vec![
        "serve".to_string(),
        "--image".into(),
        image,
        "--http".into(),
        "127.0.0.1:0".into(),
    ];
    a.extend([
        "--inventory".into(),
        site.path("nope.toml").display().to_string(),
    ]);
    a.extend([
        "--template".into(),
        site.path("pair.toml.tmpl").display().to_string(),
    ]);
    let (code, _, err) = run_pxe(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.toml"), "{err}");
    // A missing image directory.
    let mut a = vec![
        "serve".to_string(),
        "--image".into(),
        site.path("noimage").display().to_string(),
        "--http".into(),
        "127.0.0.1:0".into(),
    ];
    a.extend(site.source_args());
    let (code, _, err) = run_pxe(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--image"), "{err}");
}
