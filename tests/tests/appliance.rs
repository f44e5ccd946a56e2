//! End-to-end tests of the real appliance image: the Debian cloud kernel with our initramfs
//! (init as PID 1, lbd supervised) booted in QEMU on user networking, fetching its config from
//! python's http.server on the host or from QEMU's built-in TFTP server, reloading it, refusing
//! bad ones, and shutting down in order on Ctrl-Alt-Del and the power button.
//!
//! Needs QEMU, python3 and the kernel package (`tools/setup.sh`); the image is brought up to date
//! with the source first (`lbtest::fresh`). A missing piece fails the test with instructions.
//! Every test has its own directories, server port and QEMU (with its own user network), so they
//! run in parallel.

use std::path::Path;
use std::time::Duration;

use lbtest::appliance::{
    self, assert_no_fatal, lines_containing, position_of, ApplianceBuilder, ConfigDir, Image,
    LbdRunning, LBD_RUNNING,
};
use lbtest::{Guest, MacAddr, StaticServer};

/// Kernel start to lbd running: about 4 s under TCG when idle; generous for a loaded 2-core host
/// running several guests at once.
const BOOT: Duration = Duration::from_secs(90);
/// One step after boot: a poll, a reload, a shutdown.
const STEP: Duration = Duration::from_secs(30);
/// From the power request to QEMU's exit.
const EXIT: Duration = Duration::from_secs(30);
/// How long the polls of a refused config are counted: a fixed 1 s poll would ask about 20
/// times, init's backoff (1 s doubling to 8 s) 4 to 6 times.
const BACKOFF_WINDOW: Duration = Duration::from_secs(20);
/// How long the polls are counted once a good config is back: about 10 at 1 s.
const RECOVERED_WINDOW: Duration = Duration::from_secs(10);

const NETWORK_UP: &str =
    r"init:\s+INFO network up device=(?P<dev>\S+) address=(?P<addr>\S+) .*dhcp=true";
const LBD_STARTED: &str = r"init:\s+INFO lbd started pid=(?P<pid>\d+)";

fn demo_config() -> String {
    lbtest::appliance::USER_NET_CONFIG.to_owned()
}

/// `base` with one more real server in `service.web` (the config's last table).
fn with_real(base: &str, address: &str, weight: u32) -> String {
    format!("{base}\n[[service.web.real]]\naddress = \"{address}\"\nweight = {weight}\n")
}

/// `base` with an unknown scheduler, and where the error must point (line, column).
fn with_bad_scheduler(base: &str) -> (String, (usize, usize)) {
    assert!(
        base.contains("scheduler = \"wrr\""),
        "USER_NET_CONFIG changed"
    );
    let bad = base.replace("scheduler = \"wrr\"", "scheduler = \"fastest\"");
    let at = position_of(&bad, "\"fastest\"").expect("the bad value is in the text");
    (bad, at)
}

fn short(version: &str) -> &str {
    &version[..12]
}

/// Waits for init's "network up" (DHCP from QEMU's user network), "lbd started" and lbd's
/// "running" line, and checks they agree on the pid.
fn boot_to_lbd(g: &Guest) -> LbdRunning {
    let up = g.expect(NETWORK_UP, BOOT).unwrap();
    assert_eq!(up.name("dev"), Some("eth0"), "{}", up.line);
    assert_eq!(
        up.name("addr"),
        Some("10.0.2.15/24"),
        "QEMU's DHCP address: {}",
        up.line
    );
    let started = g.expect(LBD_STARTED, STEP).unwrap();
    let m = g.expect(LBD_RUNNING, STEP).unwrap();
    let running = LbdRunning::from_match(&m).expect("a complete running line");
    assert_eq!(
        started.name("pid"),
        Some(running.pid.to_string().as_str()),
        "init started one lbd and another one runs:\n{}\n{}",
        started.line,
        running.line
    );
    running
}

/// The summary of the demo config (and variants) at `version`, with `reals` real servers.
fn summary(reals: usize, version: &str) -> String {
    format!(
        "1 service, {reals} reals, 1 vrrp instance (1 vip), 0 sync groups, version {}",
        short(version)
    )
}

fn http_requests(server: &StaticServer, path: &str) -> usize {
    server
        .requests_with_status(200)
        .iter()
        .filter(|p| *p == path)
        .count()
}

/// The polls of `path` the server answered (200 with the file, or 304) during `window`.
fn polls_during(server: &StaticServer, path: &str, window: Duration) -> usize {
    let count = || {
        [200, 304]
            .iter()
            .map(|s| {
                let answered = server.requests_with_status(*s);
                answered.iter().filter(|p| *p == path).count()
            })
            .sum::<usize>()
    };
    let before = count();
    std::thread::sleep(window);
    count() - before
}

/// lbd was started once and never restarted or re-run.
fn assert_one_lbd(g: &Guest, pid: u32) {
    let c = g.console();
    let started = lines_containing(c, "INFO lbd started");
    assert_eq!(started.len(), 1, "lbd started more than once: {started:#?}");
    assert!(started[0].ends_with(&format!("pid={pid}")), "{started:?}");
    let running = lines_containing(c, "INFO lbd running");
    assert_eq!(running.len(), 1, "lbd ran more than once: {running:#?}");
    for bad in ["lbd restarted", "lbd exited"] {
        let found = lines_containing(c, bad);
        assert!(found.is_empty(), "{found:#?}");
    }
}

/// 1. HTTP: the config is named after the guest's MAC (`${mac}` in the URL), served by python's
///    http.server on the host and reached through QEMU's user network at 10.0.2.2.
#[test]
fn http_config_named_after_the_mac_starts_lbd() {
    let image = Image::find();
    let configs = ConfigDir::new().unwrap();
    let mac: MacAddr = "52:54:00:ab:cd:01".parse().unwrap();
    let file = format!("{mac}.toml");
    let version = configs.publish(&file, &demo_config()).unwrap();
    let server = StaticServer::start(configs.path()).unwrap();

    let g = ApplianceBuilder::new("appliance-http")
        .mac(mac)
        .config_url(format!("http://10.0.2.2:{}/${{mac}}.toml", server.port()))
        .poll("1s")
        .spawn(&image)
        .unwrap();
    let running = boot_to_lbd(&g);
    assert_eq!(running.summary, summary(2, &version));

    // init fetched exactly the expanded URL, and the server saw that path.
    let fetched = lines_containing(g.console(), "INFO fetched new config");
    assert_eq!(fetched.len(), 1, "{fetched:#?}");
    let expected_url = format!("url=http://10.0.2.2:{}/{file} ", server.port());
    assert!(fetched[0].contains(&expected_url), "{}", fetched[0]);
    assert!(
        http_requests(&server, &format!("/{file}")) >= 1,
        "server log: {:#?}",
        server.log()
    );
    eprintln!(
        "figure: {} kernel start to lbd running (HTTP config): {:.2?} guest time",
        g.accel().name(),
        running.uptime
    );
    assert_no_fatal(g.console());
}

/// 2. TFTP: QEMU's built-in TFTP server serves the sample config.
#[test]
fn tftp_config_starts_lbd() {
    let image = Image::find();
    let configs = ConfigDir::new().unwrap();
    let version = configs.publish("demo.toml", &demo_config()).unwrap();

    let g = ApplianceBuilder::new("appliance-tftp")
        .mac("52:54:00:ab:cd:02".parse().unwrap())
        .tftp(configs.path())
        .config_url("tftp://10.0.2.2/demo.toml")
        .spawn(&image)
        .unwrap();
    let running = boot_to_lbd(&g);
    assert_eq!(running.summary, summary(2, &version));
    let fetched = lines_containing(g.console(), "INFO fetched new config");
    assert_eq!(fetched.len(), 1, "{fetched:#?}");
    assert!(
        fetched[0].contains("url=tftp://10.0.2.2/demo.toml "),
        "{}",
        fetched[0]
    );
    assert_no_fatal(g.console());
}

/// 3. Reload: a changed config reaches lbd without a restart; an invalid one is refused by init
///    with its location, lbd keeps the running config, and a valid config after it is taken.
#[test]
fn reload_without_restart_and_refuse_an_invalid_config() {
    let image = Image::find();
    let configs = ConfigDir::new().unwrap();
    let base = demo_config();
    let v1 = configs.publish("node.toml", &base).unwrap();
    let server = StaticServer::start(configs.path()).unwrap();

    let g = ApplianceBuilder::new("appliance-reload")
        .mac("52:54:00:ab:cd:03".parse().unwrap())
        .config_url(format!("http://10.0.2.2:{}/node.toml", server.port()))
        .poll("1s")
        .spawn(&image)
        .unwrap();
    let running = boot_to_lbd(&g);
    assert_eq!(running.summary, summary(2, &v1));

    // A third real server.
    let v2_text = with_real(&base, "10.0.2.2:8082", 1);
    let v2 = configs.publish("node.toml", &v2_text).unwrap();
    g.expect(
        &format!(
            r"init:\s+INFO config fetched: {}",
            regex::escape(&summary(3, &v2))
        ),
        STEP,
    )
    .unwrap();
    // init logs the hand-over after signalling lbd, so the two lines come in either order.
    let fetched_at = g.console().position();
    g.expect(
        &format!(
            r"init:\s+INFO new config handed to lbd version={}",
            short(&v2)
        ),
        STEP,
    )
    .unwrap();
    let handed_at = g.console().position();
    g.console().set_position(fetched_at);
    g.expect(
        &format!(
            r"lbd:\s+INFO reloaded config /run/lb/config\.toml: {} previous={}",
            regex::escape(&summary(3, &v2)),
            short(&v1)
        ),
        STEP,
    )
    .unwrap();
    g.console()
        .set_position(handed_at.max(g.console().position()));

    // An unknown scheduler: refused by init, with file:line:col.
    let (bad, (line, col)) = with_bad_scheduler(&v2_text);
    configs.publish("node.toml", &bad).unwrap();
    let before_bad = http_requests(&server, "/node.toml");
    let refused = g
        .expect(
            &format!(
                r#"init:\s+ERROR refused new config; keeping the running one: .*config rejected: 1 error\(s\): http://\S*/node\.toml:{line}:{col}: .*unknown scheduler "fastest""#
            ),
            STEP,
        )
        .unwrap();
    // init keeps polling the bad file, but backs off, and nothing reaches lbd.
    let refused_polls = polls_during(&server, "/node.toml", BACKOFF_WINDOW);
    println!(
        "polls in {BACKOFF_WINDOW:?} while the config is refused: {refused_polls} (requests of \
         the bad file since it was published: {})",
        http_requests(&server, "/node.toml") - before_bad
    );
    assert!(
        (2..=10).contains(&refused_polls),
        "{refused_polls} polls in {BACKOFF_WINDOW:?} at lb.poll=1s: expected a few (still \
         polling, but backing off); server log: {:#?}",
        server.log()
    );
    let after: Vec<String> = g.console().lines()[refused.line_no + 1..].to_vec();
    for line in &after {
        for forbidden in [
            "config fetched",
            "new config handed",
            "reloaded config",
            "refused new config /run",
            "lbd started",
            "lbd restarted",
        ] {
            assert!(
                !line.contains(forbidden),
                "after the refusal: {line}\n(all lines since: {after:#?})"
            );
        }
    }
    // The refusal is reported once, not every poll.
    assert_eq!(
        lines_containing(g.console(), "refused new config").len(),
        1,
        "{:#?}",
        lines_containing(g.console(), "refused new config")
    );

    // A valid config again: taken, and lbd's previous version is v2 (it never saw the bad one).
    let v3_text = with_real(&v2_text, "10.0.2.2:8083", 3);
    let v3 = configs.publish("node.toml", &v3_text).unwrap();
    g.expect(
        &format!(
            r"lbd:\s+INFO reloaded config /run/lb/config\.toml: {} previous={}",
            regex::escape(&summary(4, &v3)),
            short(&v2)
        ),
        STEP,
    )
    .unwrap();

    // Taken at the first poll after the backoff, said once, and polled every second again.
    let said = lines_containing(g.console(), "config poll succeeded again");
    assert_eq!(said.len(), 1, "{said:#?}");
    let recovered_polls = polls_during(&server, "/node.toml", RECOVERED_WINDOW);
    println!("polls in {RECOVERED_WINDOW:?} after a good config is back: {recovered_polls}");
    assert!(
        recovered_polls >= 5,
        "{recovered_polls} polls in {RECOVERED_WINDOW:?} at lb.poll=1s after recovery; server \
         log: {:#?}",
        server.log()
    );

    assert_one_lbd(&g, running.pid);
    assert_eq!(
        lines_containing(g.console(), "INFO reloaded config").len(),
        2
    );
    assert_no_fatal(g.console());
}

/// `[node] log_level` sets init's level (and lbd's) from the config, at boot and on change;
/// `lb.log=` on the kernel command line is not given here, so the config decides.
#[test]
fn config_log_level_reaches_init_and_lbd() {
    let image = Image::find();
    let configs = ConfigDir::new().unwrap();
    let base = demo_config();
    assert!(
        base.contains("log_level = \"info\""),
        "USER_NET_CONFIG changed"
    );
    let debug = base.replace("log_level = \"info\"", "log_level = \"debug\"");
    configs.publish("node.toml", &debug).unwrap();
    let server = StaticServer::start(configs.path()).unwrap();

    let g = ApplianceBuilder::new("appliance-log-level")
        .mac("52:54:00:ab:cd:07".parse().unwrap())
        .config_url(format!("http://10.0.2.2:{}/node.toml", server.port()))
        .poll("1s")
        .spawn(&image)
        .unwrap();
    boot_to_lbd(&g);
    // Both follow the config: init says so, and its debug lines (each poll) appear.
    g.console()
        .set_position(lbtest::console::Position::default());
    g.expect(
        r"init:\s+INFO log level debug from \[node\] log_level",
        STEP,
    )
    .unwrap();
    g.expect(r"lbd:\s+INFO log level debug from \[node\] log_level", STEP)
        .unwrap();
    g.expect(r"init:\s+DEBUG config unchanged", STEP).unwrap();

    // Back to info: said once, then the poll's debug lines stop.
    configs.publish("node.toml", &base).unwrap();
    g.expect(r"init:\s+INFO log level info from \[node\] log_level", STEP)
        .unwrap();
    g.expect(r"lbd:\s+INFO log level info from \[node\] log_level", STEP)
        .unwrap();
    // Several polls later (each one logs at debug, if debug were still on), none appeared.
    let after = g.console().position().line;
    g.expect(r"lbd:\s+INFO reloaded config", STEP).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let lines = g.console().lines();
    let debug_after: Vec<&String> = lines[after..]
        .iter()
        .filter(|l| l.contains("init: DEBUG"))
        .collect();
    assert!(debug_after.is_empty(), "{debug_after:?}");
    assert_no_fatal(g.console());
}

/// 4. The first config is invalid: init reports where, keeps trying and does not start lbd;
///    once the file is fixed, lbd starts with it.
#[test]
fn invalid_first_config_is_retried_until_fixed() {
    let image = Image::find();
    let configs = ConfigDir::new().unwrap();
    let good = demo_config();
    let (bad, (line, col)) = with_bad_scheduler(&good);
    configs.publish("node.toml", &bad).unwrap();
    let server = StaticServer::start(configs.path()).unwrap();

    let g = ApplianceBuilder::new("appliance-invalid-first")
        .mac("52:54:00:ab:cd:04".parse().unwrap())
        .config_url(format!("http://10.0.2.2:{}/node.toml", server.port()))
        .poll("1s")
        .spawn(&image)
        .unwrap();
    let rejected = |round: u32| {
        format!(
            r#"init:\s+WARN config fetch failed round={round} .*config rejected: 1 error\(s\): http://\S*/node\.toml:{line}:{col}: .*unknown scheduler "fastest""#
        )
    };
    let first = g.expect(&rejected(1), BOOT).unwrap();
    // It keeps trying; the same refusal is said once, not at every round.
    let retried = lbtest::wait::until(STEP, Duration::from_millis(200), || {
        http_requests(&server, "/node.toml") >= 3
    });
    assert!(retried.is_some(), "{:#?}", server.log());
    let said = lines_containing(g.console(), "unknown scheduler \"fastest\"");
    assert_eq!(said.len(), 1, "{said:#?}");
    // Nothing of lbd so far: not started, not a line printed.
    let lbd_lines: Vec<String> = g
        .console()
        .lines()
        .into_iter()
        .filter(|l| l.contains("lbd started") || l.contains("] lbd:"))
        .collect();
    assert!(
        lbd_lines.is_empty(),
        "lbd ran on an invalid config: {lbd_lines:#?}"
    );
    assert!(first.line.contains("/node.toml"), "{}", first.line);

    let version = configs.publish("node.toml", &good).unwrap();
    // Retries back off with jitter: a few seconds this early, never more than 30 s.
    g.expect(
        r"init:\s+INFO config fetch succeeded after retries",
        Duration::from_secs(45),
    )
    .unwrap();
    let started = g.expect(LBD_STARTED, STEP).unwrap();
    let m = g.expect(LBD_RUNNING, STEP).unwrap();
    let running = LbdRunning::from_match(&m).unwrap();
    assert_eq!(started.name("pid"), Some(running.pid.to_string().as_str()));
    assert_eq!(running.summary, summary(2, &version));
    assert_one_lbd(&g, running.pid);
    assert_no_fatal(g.console());
}

/// Boots the sample config over TFTP and returns the guest with lbd running.
fn boot_demo_over_tftp(name: &str, mac: &str, tftp: &Path) -> (Guest, LbdRunning) {
    std::fs::write(tftp.join("demo.toml"), demo_config()).unwrap();
    let g = ApplianceBuilder::new(name)
        .mac(mac.parse().unwrap())
        .tftp(tftp)
        .config_url("tftp://10.0.2.2/demo.toml")
        .spawn(&Image::find())
        .unwrap();
    let running = boot_to_lbd(&g);
    (g, running)
}

/// The orderly stop every power request goes through: lbd first (it will hand over its VIPs),
/// and it exits cleanly within the grace time.
fn expect_orderly_stop(g: &Guest, lbd_pid: u32, verb: &str) {
    g.expect(&format!(r"init:\s+INFO {verb}: stopping$"), STEP)
        .unwrap();
    g.expect(&format!(r"init:\s+INFO stopping lbd pid={lbd_pid}$"), STEP)
        .unwrap();
    g.expect(r"lbd:\s+INFO SIGTERM: stopping$", STEP).unwrap();
    g.expect(r"lbd:\s+INFO lbd stopped$", STEP).unwrap();
    g.expect(r"init:\s+INFO lbd stopped \(exit code 0\)$", STEP)
        .unwrap();
}

/// 5a. Ctrl-Alt-Del (QMP send-key): init stops lbd in order, then the guest reboots (QEMU runs
///     with -no-reboot, so it exits with reason guest-reset).
#[test]
fn ctrl_alt_delete_stops_lbd_then_reboots() {
    let tftp = ConfigDir::new().unwrap();
    let (mut g, running) = boot_demo_over_tftp("appliance-cad", "52:54:00:ab:cd:05", tftp.path());
    g.ctrl_alt_delete().unwrap();
    g.expect(r"init:\s+INFO Ctrl-Alt-Del$", STEP).unwrap();
    expect_orderly_stop(&g, running.pid, "reboot");
    let exit = g.wait_exit(EXIT).unwrap();
    assert_eq!(
        exit.shutdown_reason.as_deref(),
        Some("guest-reset"),
        "{exit:?}"
    );
    assert!(exit.status.success(), "{exit:?}");
    let killed = lines_containing(g.console(), "did not stop");
    assert!(killed.is_empty(), "{killed:#?}");
    assert_no_fatal(g.console());
}

/// 5b. The ACPI power button (QMP system_powerdown): orderly stop, then power off.
#[test]
fn power_button_stops_lbd_then_powers_off() {
    let tftp = ConfigDir::new().unwrap();
    let (mut g, running) =
        boot_demo_over_tftp("appliance-powerdown", "52:54:00:ab:cd:06", tftp.path());
    g.system_powerdown().unwrap();
    g.expect(r"init:\s+INFO power button$", STEP).unwrap();
    expect_orderly_stop(&g, running.pid, "power off");
    let exit = g.wait_exit(EXIT).unwrap();
    assert_eq!(
        exit.shutdown_reason.as_deref(),
        Some("guest-shutdown"),
        "{exit:?}"
    );
    assert!(exit.status.success(), "{exit:?}");
    assert!(g.qmp().events().iter().any(|e| e.name == "POWERDOWN"));
    assert_no_fatal(g.console());
}

/// 7. No `lb.config=`: init says so, never starts lbd, and still answers Ctrl-Alt-Del.
#[test]
fn no_config_source_is_reported_and_lbd_never_starts() {
    let image = Image::find();
    let mut g = ApplianceBuilder::new("appliance-no-config")
        .mac("52:54:00:ab:cd:07".parse().unwrap())
        .spawn(&image)
        .unwrap();
    // Said before the network comes up, so a box without a NIC or DHCP still tells why.
    let said = g
        .expect(
            r"init:\s+ERROR no config source: add lb\.config=URL to the kernel command line.*lbd will not start",
            BOOT,
        )
        .unwrap();
    g.expect(NETWORK_UP, STEP).unwrap();
    // Give it time to do something wrong: a few seconds of guest time.
    let since = appliance::stamp(&said.line).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let lbd: Vec<String> = g
        .console()
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("lbd started") || l.contains("] lbd:") || l.contains("fetching the config")
        })
        .collect();
    assert!(lbd.is_empty(), "{lbd:#?}");

    // PID 1 is alive and in charge: Ctrl-Alt-Del reboots, with no lbd to stop.
    g.ctrl_alt_delete().unwrap();
    let cad = g.expect(r"init:\s+INFO Ctrl-Alt-Del$", STEP).unwrap();
    assert!(
        appliance::stamp(&cad.line).unwrap() >= since,
        "{}",
        cad.line
    );
    g.expect(r"init:\s+INFO reboot: stopping$", STEP).unwrap();
    let exit = g.wait_exit(EXIT).unwrap();
    assert_eq!(exit.shutdown_reason.as_deref(), Some("guest-reset"));
    assert!(lines_containing(g.console(), "stopping lbd").is_empty());
    assert_no_fatal(g.console());
}
