//! `pxe serve` over HTTP against curl on loopback: the boot chain's URLs, conditional GETs,
//! HEAD, ranges and a resumed download, path escapes, unknown MACs, invalid configs on disk
//! (last good served, error logged with file:line:col) and changes picked up.

mod common;

use common::*;
use std::time::Duration;

fn config_path(mac: &str) -> String {
    format!("/config/{}.toml", mac.replace(':', "-"))
}

/// The 1-based line of the first line of the template containing `needle`.
fn template_line(site: &Site, needle: &str) -> usize {
    String::from_utf8(site.read("pair.toml.tmpl"))
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .expect(needle)
        + 1
}

/// `pxe render` for a MAC: what the node should be served.
fn rendered(site: &Site, mac: &str) -> Vec<u8> {
    let out = std::process::Command::new(PXE)
        .arg("render")
        .args(site.source_args())
        .args(["--mac", mac])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn boot_chain_urls_lead_to_the_image_and_the_nodes_own_config() {
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);

    // iPXE's first script chains by MAC.
    let generic = curl(&pxe.url("/boot.ipxe"), &[]);
    assert_eq!(generic.status, 200);
    let text = generic.text();
    assert!(text.starts_with("#!ipxe\n"), "{text}");
    let chain = format!("chain {}/boot/${{netX/mac:hexhyp}}.ipxe", pxe.base);
    assert!(text.contains(&chain), "{text}");

    // The per-MAC script, as iPXE asks for it (hyphens, from ${netX/mac:hexhyp}).
    let script = curl(&pxe.url("/boot/52-54-00-00-00-02.ipxe"), &[]);
    assert_eq!(script.status, 200, "{}", script.text());
    let script = script.text();
    let kernel_line = script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .expect(&script);
    let words: Vec<&str> = kernel_line.split_whitespace().collect();
    assert_eq!(words[1], pxe.url("/image/vmlinuz"));
    assert_eq!(words[2], "initrd=initrd.img");
    assert!(
        words.contains(&"console=ttyS0,115200n8"),
        "image cmdline kept: {kernel_line}"
    );
    assert!(
        words.contains(&"lb.poll=10s"),
        "[boot] cmdline added: {kernel_line}"
    );
    let config_url = words
        .iter()
        .find_map(|w| w.strip_prefix("lb.config="))
        .expect(kernel_line);
    assert_eq!(config_url, pxe.url("/config/52-54-00-00-00-02.toml"));
    let initrd_url = script
        .lines()
        .find_map(|l| l.strip_prefix("initrd "))
        .and_then(|l| l.split_whitespace().next())
        .expect(&script);

    // Following the script's URLs gives the image's files and lb2's own config.
    assert!(
        curl(words[1], &[]).body == site.read("image/vmlinuz"),
        "kernel differs"
    );
    assert!(
        curl(initrd_url, &[]).body == site.read("image/initrd.img"),
        "initrd differs"
    );
    let config = curl(config_url, &[]);
    assert_eq!(config.status, 200);
    assert_eq!(config.header("content-type"), Some("application/toml"));
    assert_eq!(config.body, rendered(&site, LB2));
    assert!(config.text().contains("hostname = \"lb2\"\n"));
    assert!(config.text().contains("priority = 100\n"));
    let lb1 = curl(&pxe.url(&config_path(LB1)), &[]).text();
    assert!(lb1.contains("hostname = \"lb1\"\n") && lb1.contains("priority = 150\n"));

    // Every spelling of a MAC names the same node.
    for path in [
        "/config/52:54:00:00:00:02.toml",
        "/config/52-54-00-00-00-02.toml",
        "/config/525400000002.toml",
        "/config/52-54-00-00-00-02.toml"
            .to_uppercase()
            .replace("/CONFIG/", "/config/")
            .replace(".TOML", ".toml")
            .as_str(),
    ] {
        assert_eq!(curl(&pxe.url(path), &[]).body, config.body, "{path}");
    }

    // The access log says who asked for what and what they got.
    let line = pxe.wait_log(&[
        "pxe::access",
        "path=/config/52-54-00-00-00-02.toml",
        "status=200",
    ]);
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("node=\"lb2\""), "{line}");
    assert!(
        line.contains(&format!("bytes={}", config.body.len())),
        "{line}"
    );
    assert!(line.contains("agent=\"curl/"), "{line}");

    // /status lists both nodes with the versions lbd will log.
    let status: serde_json::Value =
        serde_json::from_slice(&curl(&pxe.url("/status"), &[]).body).unwrap();
    let version = lbd::config::parse("x", &config.text())
        .unwrap()
        .config
        .version;
    assert_eq!(status["nodes"][1]["hostname"], "lb2");
    assert_eq!(status["nodes"][1]["version"], version.hex());
}

#[test]
fn conditional_gets_and_head_make_polling_cheap() {
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);
    let url = pxe.url(&config_path(LB1));

    let first = curl(&url, &[]);
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("ETag").to_string();
    let last_modified = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert_eq!(first.header("cache-control"), Some("no-cache"));

    // init's poll: both validators → 304, no body.
    let again = curl(
        &url,
        &[
            "-H",
            &format!("If-None-Match: {etag}"),
            "-H",
            &format!("If-Modified-Since: {last_modified}"),
        ],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // Either validator alone.
    assert_eq!(
        curl(&url, &["-H", &format!("If-None-Match: {etag}")]).status,
        304
    );
    assert_eq!(
        curl(
            &url,
            &["-H", &format!("If-Modified-Since: {last_modified}")]
        )
        .status,
        304
    );
    // A stale ETag wins over a fresh date: the body comes back.
    let stale = curl(
        &url,
        &[
            "-H",
            "If-None-Match: \"0000\"",
            "-H",
            &format!("If-Modified-Since: {last_modified}"),
        ],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
    assert_eq!(
        curl(
            &url,
            &["-H", "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT"]
        )
        .status,
        200
    );
    // curl's own conditional GET by date (-z).
    assert_eq!(curl(&url, &["-z", &last_modified]).status, 304);

    // HEAD: the same headers, the length, no body.
    let head = curl(&url, &["-I"]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    // (curl -I writes the headers where the body would go: no config text may be there.)
    assert!(
        !head.text().contains("[vrrp"),
        "HEAD sent a body: {}",
        head.text()
    );
    let head_img = curl(&pxe.url("/image/initrd.img"), &["-I"]);
    assert_eq!(head_img.header("content-length"), Some("2000000"));
    assert_eq!(head_img.header("accept-ranges"), Some("bytes"));

    // If-Match / If-Unmodified-Since guard.
    assert_eq!(curl(&url, &["-H", "If-Match: \"0000\""]).status, 412);
    assert_eq!(
        curl(&url, &["-H", &format!("If-Match: {etag}")]).status,
        200
    );

    // Only GET and HEAD.
    let post = curl(&url, &["-X", "POST", "-d", "x"]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let n304 = pxe.wait_log_n(
        &["pxe::access", "status=304", "node=\"lb1\""],
        4,
        Duration::from_secs(10),
    );
    assert!(n304.iter().all(|l| l.contains("bytes=0")), "{n304:?}");
}

#[test]
fn ranges_resume_an_interrupted_initrd_download() {
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);
    let url = pxe.url("/image/initrd.img");
    let initrd = site.read("image/initrd.img");
    let len = initrd.len();

    let r = curl(&url, &["-r", "0-99"]);
    assert_eq!(r.status, 206);
    assert!(r.body == initrd[..100]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-99/{len}").as_str())
    );
    let r = curl(&url, &["-r", "1000000-"]);
    assert_eq!(r.status, 206);
    assert!(r.body == initrd[1_000_000..]);
    let r = curl(&url, &["-r", "-500"]);
    assert_eq!(r.status, 206, "suffix range");
    assert!(r.body == initrd[len - 500..]);
    let r = curl(&url, &["-r", &format!("{len}-")]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert!(r.body.is_empty());
    // Several ranges: the whole body (allowed by RFC 9110).
    let r = curl(&url, &["-r", "0-1,5-6"]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), len);

    // If-Range with the current ETag honours the range; with an old one, the whole file.
    let etag = curl(&url, &["-I"]).header("etag").unwrap().to_string();
    let r = curl(&url, &["-r", "10-19", "-H", &format!("If-Range: {etag}")]);
    assert_eq!(r.status, 206);
    assert!(r.body == initrd[10..20]);
    let r = curl(&url, &["-r", "10-19", "-H", "If-Range: \"old\""]);
    assert_eq!((r.status, r.body.len()), (200, len));

    // A download cut off after 1 MB, resumed with curl -C -: the same bytes as the file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("initrd.img");
    std::fs::write(&out, &initrd[..1_048_576]).unwrap();
    let status = lbtest::programs::command("curl")
        .args(["-sS", "--max-time", "20", "-C", "-", "-o"])
        .arg(&out)
        .arg(&url)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read(&out).unwrap() == initrd,
        "resumed download differs"
    );
    let line = pxe.wait_log(&["pxe::access", "range=\"bytes=1048576-\""]);
    assert!(line.contains("status=206"), "{line}");
    assert!(
        line.contains(&format!("bytes={}", len - 1_048_576)),
        "{line}"
    );
}

#[test]
fn path_escapes_are_refused_and_nothing_outside_is_served() {
    require("curl");
    let site = Site::new();
    std::os::unix::fs::symlink(site.path("secret"), site.path("image/escape")).unwrap();
    std::os::unix::fs::symlink(site.path("inventory.toml"), site.path("image/inv")).unwrap();
    std::os::unix::fs::symlink(site.dir.path(), site.path("image/up")).unwrap();
    std::os::unix::fs::symlink("vmlinuz", site.path("image/kernel")).unwrap();
    let pxe = Server::start(&site);

    for path in [
        "/image/../secret",
        "/image/%2e%2e/secret",
        "/image/%2E%2E/inventory.toml",
        "/image/..%2fsecret",
        "/image/x/../../secret",
        "/image//etc/passwd",
        "/image/./vmlinuz",
        "/image/escape",
        "/image/inv",
        "/image/up/secret",
        "/image/%5c..%5csecret",
        "/config/../secret",
        "/boot/..%2f..%2fsecret",
        "/ipxe/../secret",
        "/ipxe/%2e%2e/inventory.toml",
    ] {
        let r = curl(&pxe.url(path), &["--path-as-is"]);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            !r.text().contains("SECRET") && !r.text().contains("[[node]]"),
            "{path} leaked"
        );
    }
    // A symlink inside the root is fine; a missing file is a plain 404.
    assert!(curl(&pxe.url("/image/kernel"), &[]).body == site.read("image/vmlinuz"));
    assert_eq!(curl(&pxe.url("/image/nothing"), &[]).status, 404);
    assert_eq!(curl(&pxe.url("/secret"), &[]).status, 404);
    assert_eq!(curl(&pxe.url("/inventory.toml"), &[]).status, 404);
    let line = pxe.wait_log(&["WARN", "refused", "path=/image/escape"]);
    assert!(line.contains("leaves the served directory"), "{line}");
}

#[test]
fn unknown_macs_get_404_and_a_log_line_or_the_configured_default() {
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);
    let stranger = "02:00:00:00:00:99";

    let r = curl(&pxe.url(&config_path(stranger)), &[]);
    assert_eq!(r.status, 404);
    assert!(
        r.text()
            .contains("02:00:00:00:00:99 is not in the inventory"),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("hostname"),
        "never another node's config"
    );
    assert_eq!(
        curl(&pxe.url("/boot/02-00-00-00-00-99.ipxe"), &[]).status,
        404
    );
    let warn = pxe.wait_log(&[
        "WARN",
        "unknown MAC asked for its config",
        "mac=02:00:00:00:00:99",
    ]);
    assert!(warn.contains("add it to the inventory"), "{warn}");
    pxe.wait_log(&["pxe::access", "status=404", "detail=\"unknown MAC\""]);
    let r = curl(&pxe.url("/config/lb1.toml"), &[]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("not a MAC address"), "{}", r.text());

    // With an [unknown] section, a stranger boots as a spare, its own MAC in the config.
    site.edit(
        "inventory.toml",
        "# [unknown]\n# hostname = \"lb-spare\"\n# priority = 50\n# preempt = false",
        "[unknown]\nhostname = \"lb-spare\"\npriority = 50\npreempt = false",
    );
    pxe.wait_log(&["sources reloaded"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = curl(&pxe.url(&config_path(stranger)), &[]);
        if r.status == 200 || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("hostname = \"lb-spare\"\n"));
    assert!(r.text().contains("priority = 50\n"));
    let script = curl(&pxe.url("/boot/02-00-00-00-00-99.ipxe"), &[]).text();
    assert!(script.contains("config/02-00-00-00-00-99.toml"), "{script}");
    // Listed nodes are unaffected.
    assert!(curl(&pxe.url(&config_path(LB1)), &[])
        .text()
        .contains("hostname = \"lb1\""));
}

#[test]
fn invalid_configs_on_disk_keep_the_last_good_one_and_a_fix_is_picked_up() {
    require("curl");
    let site = Site::new();
    let pxe = Server::start(&site);
    let lb1_url = pxe.url(&config_path(LB1));
    let lb2_url = pxe.url(&config_path(LB2));
    let good1 = curl(&lb1_url, &[]);
    let good2 = curl(&lb2_url, &[]);
    let etag1 = good1.header("etag").unwrap().to_string();

    // lb1 gets a priority VRRP does not allow; lb2 a new valid one.
    site.edit("inventory.toml", "priority = 150", "priority = 300");
    site.edit("inventory.toml", "priority = 100", "priority = 90");
    let line = template_line(&site, "priority = {{ node.priority }}");
    let err = pxe.wait_log(&["ERROR", &format!("pair.toml.tmpl[lb1]:{line}:12:")]);
    assert!(err.contains("error["), "{err}");
    pxe.wait_log(&[
        "ERROR",
        "config refused; keeping the last good one",
        "lb1 (52:54:00:00:00:01)",
    ]);
    pxe.wait_log(&["INFO", "lb2 (52:54:00:00:00:02): config ", " -> "]);
    let r = curl(&lb1_url, &[]);
    assert_eq!(r.body, good1.body, "lb1 keeps its last good config");
    assert_eq!(r.header("etag"), Some(etag1.as_str()));
    assert_eq!(
        curl(&lb1_url, &["-H", &format!("If-None-Match: {etag1}")]).status,
        304
    );
    let new2 = curl(&lb2_url, &[]);
    assert_ne!(new2.body, good2.body);
    assert!(
        new2.text().contains("priority = 90\n"),
        "lb2's change is picked up"
    );
    assert_eq!(
        curl(
            &lb2_url,
            &[
                "-H",
                &format!("If-None-Match: {}", good2.header("etag").unwrap())
            ]
        )
        .status,
        200
    );
    let status: serde_json::Value =
        serde_json::from_slice(&curl(&pxe.url("/status"), &[]).body).unwrap();
    assert!(status["nodes"][0]["problem"][0]
        .as_str()
        .unwrap()
        .contains(&format!("pair.toml.tmpl[lb1]:{line}:12")));

    // A template error: every node keeps its config; the error names the template's line.
    let text = String::from_utf8(site.read("pair.toml.tmpl")).unwrap();
    site.write(
        "pair.toml.tmpl",
        &format!("{text}\nbroken = {{{{ node.priority\n"),
    );
    let tline = text.lines().count() + 2;
    pxe.wait_log(&[
        "ERROR",
        &format!("pair.toml.tmpl:{tline}:10: error[unclosed-placeholder]"),
    ]);
    assert_eq!(curl(&lb2_url, &[]).body, new2.body);

    // An inventory that is not TOML: nothing changes.
    site.write("pair.toml.tmpl", &text);
    let inv = String::from_utf8(site.read("inventory.toml")).unwrap();
    site.write("inventory.toml", &format!("{inv}\n[[node]\n"));
    let iline = inv.lines().count() + 2;
    pxe.wait_log(&["ERROR", &format!("inventory.toml:{iline}:"), "toml-syntax"]);
    assert_eq!(curl(&lb1_url, &[]).body, good1.body);
    assert_eq!(curl(&lb2_url, &[]).body, new2.body);

    // Fixed: lb1's new config is served, with a new ETag.
    site.write(
        "inventory.toml",
        &inv.replace("priority = 300", "priority = 140"),
    );
    pxe.wait_log(&["INFO", "lb1 (52:54:00:00:00:01): config ", " -> "]);
    let fixed = curl(&lb1_url, &["-H", &format!("If-None-Match: {etag1}")]);
    assert_eq!(fixed.status, 200);
    assert!(fixed.text().contains("priority = 140\n"));
    assert_ne!(fixed.header("etag"), Some(etag1.as_str()));
    assert_eq!(fixed.body, rendered(&site, LB1));
}

#[test]
fn a_node_whose_first_config_is_invalid_gets_503_until_fixed() {
    require("curl");
    let site = Site::new();
    site.edit("inventory.toml", "priority = 100", "priority = 0");
    let pxe = Server::start(&site);
    let r = curl(&pxe.url(&config_path(LB2)), &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("10"));
    assert!(r.text().contains("pair.toml.tmpl[lb2]:"), "{}", r.text());
    // Its boot script is served: init waits for the config and retries.
    assert_eq!(
        curl(&pxe.url("/boot/52-54-00-00-00-02.ipxe"), &[]).status,
        200
    );
    assert_eq!(curl(&pxe.url(&config_path(LB1)), &[]).status, 200);
    site.edit("inventory.toml", "priority = 0", "priority = 100");
    pxe.wait_log(&["INFO", "lb2 (52:54:00:00:00:02): config "]);
    assert_eq!(curl(&pxe.url(&config_path(LB2)), &[]).status, 200);
}

#[test]
fn an_interrupted_transfer_is_logged_as_incomplete() {
    use std::io::{Read, Write};
    let site = Site::new();
    // Larger than any socket buffers on loopback (tcp_wmem/tcp_rmem max a few MiB), so the
    // transfer cannot finish into buffers after the client stops reading.
    std::fs::write(site.path("image/big.img"), noise(64 << 20, 9)).unwrap();
    let pxe = Server::start(&site);
    let mut s = std::net::TcpStream::connect(pxe.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Read a little and close, as a client that gives up does.
    write!(s, "GET /image/big.img HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
    drop(s);
    let line = pxe.wait_log(&["pxe::access", "path=/image/big.img", "status=200"]);
    assert!(line.contains("complete=false"), "{line}");
    let sent: usize = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent < 64 << 20, "{line}");

    // A whole transfer says so.
    let r = curl(&pxe.url("/image/initrd.img"), &[]);
    assert_eq!(r.body.len(), 2_000_000);
    let lines = pxe.wait_log_n(
        &["pxe::access", "path=/image/initrd.img", "complete=true"],
        1,
        Duration::from_secs(10),
    );
    assert!(lines[0].contains("bytes=2000000"), "{lines:?}");
}

/// UEFI HTTP boot: the firmware fetches iPXE itself by URL, so the TFTP root is served over
/// HTTP too, under `/ipxe/`, byte for byte and with the same caching headers as the image.
#[test]
fn the_ipxe_binaries_are_served_over_http_for_uefi_http_boot() {
    require("curl");
    let site = Site::new();
    std::fs::write(site.path("tftp/snponly.efi"), noise(173_792, 4)).unwrap();
    let pxe = Server::start(&site);
    let r = curl(&pxe.url("/ipxe/snponly.efi"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == site.read("tftp/snponly.efi"), "other bytes");
    assert!(r.header("etag").is_some(), "{:?}", r.headers);
    let again = curl(
        &pxe.url("/ipxe/snponly.efi"),
        &[
            "-H",
            &format!("If-None-Match: {}", r.header("etag").unwrap()),
        ],
    );
    assert_eq!(again.status, 304);
    assert_eq!(curl(&pxe.url("/ipxe/ipxe.efi"), &[]).status, 404);
    pxe.wait_log(&["path=/ipxe/snponly.efi", "status=200", "bytes=173792"]);
}

/// `[boot] console` and a node's own `console` on the kernel command line of the served
/// scripts, in place of the image's console words.
#[test]
fn a_serial_console_setting_reaches_the_kernel_command_line() {
    require("curl");
    let site = Site::new();
    let inv = String::from_utf8(site.read("inventory.toml")).unwrap();
    let inv = inv.replacen("[boot]\n", "[boot]\nconsole = \"ttyS1,115200n8\"\n", 1);
    assert!(
        inv.contains("console = "),
        "the example inventory has no [boot]"
    );
    site.write("inventory.toml", &inv);
    let pxe = Server::start(&site);
    let consoles = |mac: &str| -> Vec<String> {
        let script = curl(&pxe.url(&format!("/boot/{mac}.ipxe")), &[]).text();
        let kernel = script
            .lines()
            .find(|l| l.starts_with("kernel "))
            .unwrap()
            .to_string();
        kernel
            .split_whitespace()
            .filter(|w| w.starts_with("console="))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        consoles("52-54-00-00-00-01"),
        ["console=tty0", "console=ttyS1,115200n8"]
    );
    // One node has a serial port of its own.
    site.edit(
        "inventory.toml",
        "mac = \"52:54:00:00:00:02\"\n",
        "mac = \"52:54:00:00:00:02\"\nconsole = \"ttyS0,9600n8\"\n",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while consoles("52-54-00-00-00-02") != ["console=tty0", "console=ttyS0,9600n8"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the node's console was not picked up: {:?}",
            consoles("52-54-00-00-00-02")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        consoles("52-54-00-00-00-01"),
        ["console=tty0", "console=ttyS1,115200n8"]
    );
    // A wrong one is refused at its line; the scripts stay as they were.
    site.edit("inventory.toml", "ttyS0,9600n8", "ttyS0,9601n8");
    let line = pxe.wait_log(&["invalid-console"]);
    assert!(line.contains("inventory.toml:"), "{line}");
    assert!(
        line.contains("9601 is not a standard serial speed"),
        "{line}"
    );
    assert_eq!(
        consoles("52-54-00-00-00-02"),
        ["console=tty0", "console=ttyS0,9600n8"]
    );
}
