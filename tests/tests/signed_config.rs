//! Signed configs on the real image: a test image built with an operator key (`image build
//! --trusted-keys`), configs signed by `ssh-keygen -Y sign` in the test itself, served over
//! HTTP beside their `.sig`. What is refused is refused with its reason, once, and the box
//! keeps waiting (or keeps its running config); a lower serial is refused on reload; with
//! `lb.unsigned=allow` an unsigned config is applied and the box says so.
//!
//! Needs root, QEMU, python3, ssh-keygen and the kernel packages (`tools/setup.sh`).

use std::path::Path;
use std::time::Duration;

use lbtest::appliance::{lines_containing, ApplianceBuilder, ConfigDir, Image, LBD_RUNNING};
use lbtest::fresh::{self, ImageKind};
use lbtest::ipvs::{boot_image_with_shell, ShellGuest};
use lbtest::operator_keys::{self, keypair};
use lbtest::{MacAddr, ScratchDir, StaticServer};

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(60);
const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x5a, 0x00, 0x01]);

/// `text` signed with `key` the way an operator does it: the armored signature.
fn sign(dir: &Path, key: &Path, text: &str) -> String {
    let file = dir.join("to-sign.toml");
    std::fs::write(&file, text).unwrap();
    String::from_utf8(operator_keys::sign(key, "lb-config", &file)).unwrap()
}

/// A config for `node` with `serial`, and one real of `weight` (so versions differ).
fn config(serial: u64, node: &str, weight: u32) -> String {
    format!(
        "[release]\nserial = {serial}\nnode = \"{node}\"\n\n{}\n[[service.web.real]]\naddress = \"10.0.2.2:8082\"\nweight = {weight}\n",
        lbtest::appliance::USER_NET_CONFIG
    )
}

/// The test image with the operator key, built for this test (`name`: its own directory).
fn keyed_image(name: &str, public: &Path) -> Image {
    let dir = lbtest::artifacts::target_dir().join(format!("lb-test-image-{name}"));
    let args = vec![format!("--trusted-keys {}", public.display())];
    Image::in_dir(fresh::variant(ImageKind::Test, &dir, &args).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

struct Lab {
    configs: ConfigDir,
    server: StaticServer,
}

impl Lab {
    fn new() -> Lab {
        let configs = ConfigDir::new().unwrap();
        let server = StaticServer::start(configs.path()).unwrap();
        Lab { configs, server }
    }

    /// Publishes a config and its signature (signature first, so a poll never pairs the new
    /// config with the old signature... unless the test wants exactly that).
    fn publish(&self, text: &str, sig: Option<&str>) {
        match sig {
            Some(sig) => {
                self.configs.publish("lb.toml.sig", sig).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(self.configs.path().join("lb.toml.sig"));
            }
        }
        self.configs.publish("lb.toml", text).unwrap();
    }

    fn boot(&self, name: &str, image: &Image, extra: &[&str]) -> ShellGuest {
        let mut b = ApplianceBuilder::new(name)
            .mac(MAC)
            .config_url(format!("http://10.0.2.2:{}/lb.toml", self.server.port()))
            .poll("1s");
        for w in extra {
            b = b.append(*w);
        }
        boot_image_with_shell(image, b, BOOT).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Waits for a console line containing every one of `needles`.
fn wait_line(g: &ShellGuest, needles: &[&str], timeout: Duration) -> String {
    let pattern = needles
        .iter()
        .map(|n| regex_escape(n))
        .collect::<Vec<_>>()
        .join(".*");
    g.guest
        .expect(&pattern, timeout)
        .unwrap_or_else(|e| panic!("{needles:?}: {e}\n{}", g.guest.report()))
        .line
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

#[test]
fn only_configs_signed_for_this_node_with_a_rising_serial_are_applied() {
    let scratch = ScratchDir::new("signed-config");
    let ops = keypair(scratch.path(), "ops");
    let other = keypair(scratch.path(), "other");
    let image = keyed_image("signed", &ops.with_extension("pub"));
    let manifest = std::fs::read_to_string(&image.manifest).unwrap();
    assert!(manifest.contains("ops@test"), "the manifest lists the key");

    let lab = Lab::new();
    let mac = MAC.to_string();
    // 1. Unsigned.
    lab.publish(&config(1, &mac, 1), None);
    let mut g = lab.boot("signed", &image, &[]);
    wait_line(&g, &["lb.toml.sig, needed beside the config", "404"], BOOT);
    // 2. One byte changed after signing.
    let good = config(2, &mac, 1);
    let sig = sign(scratch.path(), &ops, &good);
    lab.publish(&good.replace("weight = 1\n", "weight = 9\n"), Some(&sig));
    wait_line(&g, &["does not match these bytes"], STEP);
    // 3. Signed by a key the image does not trust.
    lab.publish(&good, Some(&sign(scratch.path(), &other, &good)));
    wait_line(&g, &["a key this image does not trust"], STEP);
    // 4. Signed, but for another node.
    let elsewhere = config(2, "52:54:00:5a:00:99", 1);
    lab.publish(&elsewhere, Some(&sign(scratch.path(), &ops, &elsewhere)));
    wait_line(
        &g,
        &["is for node \"52:54:00:5a:00:99\", not this box"],
        STEP,
    );
    assert!(
        lines_containing(g.guest.console(), "lbd started").is_empty(),
        "nothing refused may start lbd"
    );
    // 5. Right: applied.
    lab.publish(&good, Some(&sig));
    wait_line(&g, &["config signature verified", "serial=Some(2)"], STEP);
    g.guest
        .expect(LBD_RUNNING, STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    let state = g.shell.run("cat /run/lb/trust", STEP).unwrap();
    assert!(state.contains("mode=signed\n"), "{state}");
    assert!(state.contains("serial=2\n"), "{state}");
    // 6. An older config, validly signed, on reload: refused, the running one stays.
    let old = config(1, &mac, 3);
    lab.publish(&old, Some(&sign(scratch.path(), &ops, &old)));
    wait_line(&g, &["serial 1 is lower than the running config's 2"], STEP);
    // 7. A newer one is applied.
    let newer = config(3, &mac, 4);
    lab.publish(&newer, Some(&sign(scratch.path(), &ops, &newer)));
    wait_line(&g, &["config signature verified", "serial=Some(3)"], STEP);
    // Installed (config, then what it was trusted on) before lbd is told.
    wait_line(&g, &["new config handed to lbd"], STEP);
    let state = g.shell.run("cat /run/lb/trust", STEP).unwrap();
    assert!(state.contains("serial=3\n"), "{state}");

    // Each refusal said once, however many polls it lasted.
    for reason in [
        "does not match these bytes",
        "a key this image does not trust",
        "not this box",
        "lower than the running config's",
    ] {
        let lines = lines_containing(g.guest.console(), reason);
        assert_eq!(lines.len(), 1, "{reason}: {lines:#?}");
    }
    g.guest.kill();
}

#[test]
fn the_unsigned_flag_lets_an_unsigned_config_in_and_says_so() {
    let scratch = ScratchDir::new("unsigned-allowed");
    let ops = keypair(scratch.path(), "ops");
    let image = keyed_image("unsigned", &ops.with_extension("pub"));
    let lab = Lab::new();
    lab.publish(&config(1, &MAC.to_string(), 1), None);
    let mut g = lab.boot("unsigned-allowed", &image, &["lb.unsigned=allow"]);
    wait_line(&g, &["config trust: lb.unsigned=allow"], BOOT);
    wait_line(&g, &["config accepted WITHOUT a signature check"], STEP);
    g.guest
        .expect(LBD_RUNNING, STEP)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.guest.report()));
    let state = g.shell.run("cat /run/lb/trust", STEP).unwrap();
    assert!(state.contains("mode=unsigned-allowed\n"), "{state}");
    g.guest.kill();
}

/// The config over HTTPS from `openssl s_server`, trusting only its pinned key, on a box
/// whose clock says 1970 (long before the certificate's validity): fetched and applied, since
/// a pin needs no clock; the box says what it trusted.
#[test]
fn https_with_a_pinned_key_works_with_the_clock_at_1970() {
    let scratch = ScratchDir::new("https-1970");
    let dir = scratch.path();
    let (cert, key, pin) = operator_keys::server_certificate(dir);
    let openssl = lbtest::programs::path("openssl");
    std::fs::write(dir.join("lb.toml"), lbtest::appliance::USER_NET_CONFIG).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(&openssl);
    server
        .args(["s_server", "-WWW", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .current_dir(dir);
    let _server = lbtest::ChildGuard::spawn_logged(&mut server, &dir.join("s_server.log")).unwrap();

    let image = Image::find();
    let g = ApplianceBuilder::new("https-1970")
        .mac(MAC)
        .config_url(format!("https://10.0.2.2:{port}/lb.toml"))
        .append(format!("lb.tls_pin={pin}"))
        .guest_builder(&image)
        .args(["-rtc", "base=1970-01-01T00:00:00"])
        .spawn()
        .expect("start QEMU");
    g.expect(LBD_RUNNING, BOOT)
        .unwrap_or_else(|e| panic!("{e}\n{}", g.report()));
    let trusted = lines_containing(g.console(), "trust exactly these server keys");
    assert!(
        trusted.len() == 1 && trusted[0].contains(&pin),
        "{trusted:#?} (pin {pin})"
    );
    let fetched = lines_containing(g.console(), "INFO fetched new config");
    assert!(
        fetched
            .iter()
            .any(|l| l.contains(&format!("url=https://10.0.2.2:{port}/lb.toml"))),
        "{fetched:#?}"
    );
    // The guest's clock really was at 1970 (the kernel reads the RTC at boot).
    let clock = lines_containing(g.console(), "setting system clock to");
    assert!(clock.iter().any(|l| l.contains("1970-01-01")), "{clock:#?}");
}
