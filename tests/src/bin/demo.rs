//! The demo that `tools/demo.sh` runs: one balancer from the appliance image in QEMU, two web
//! servers, and requests through the VIP, all on the host in network namespaces.
//!
//! ```text
//!   namespace lb-demo: br0 192.0.2.1 (the client; the config's HTTP server :8000)
//!     ├─ tap0 ── the balancer 192.0.2.2 (QEMU, static ip=), VIP 192.0.2.100, API :9000 (mTLS)
//!     ├─ veth ── namespace lb-demo-web1 192.0.2.11 (VIP on lo), answers "web-1"   weight 3
//!     └─ veth ── namespace lb-demo-web2 192.0.2.12 (VIP on lo), answers "web-2"   weight 1
//! ```
//!
//! It boots the balancer with `tools/examples/demo.toml`, waits until the VIP is held and both
//! reals are up, sends requests with curl and counts who answered (3:1, the weights), prints
//! `lbctl status`, stops web-2 and shows it marked down and every request going to web-1, starts
//! it again and shows the traffic shared again. Then, by default, it keeps running so the user
//! can send requests of their own (it prints the commands) until Ctrl-C, which powers the
//! balancer off the orderly way (power button: init stops lbd, then powers off).
//!
//! `--check` asserts every step and exits non-zero at the first that fails (tools/test.sh runs
//! it). Needs root (namespaces, a tap), QEMU, python3 and curl (tools/setup.sh).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lbtest::appliance::{ApplianceBuilder, Image};
use lbtest::fresh::{self, Profile};
use lbtest::{artifacts, programs, Guest, MacAddr, Netns, Nic, ScratchDir, StaticServer};

const NS: &str = "lb-demo";
const CLIENT: &str = "192.0.2.1";
const BALANCER: &str = "192.0.2.2";
const VIP: &str = "192.0.2.100";
const CONFIG_PORT: u16 = 8000;
const API: &str = "https://192.0.2.2:9000";
const API_LISTEN: &str = "192.0.2.2:9000";
const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xde, 0x00, 0x02]);

/// One real server of the demo.
struct Real {
    name: &'static str,
    ns: &'static str,
    addr: &'static str,
    weight: u32,
}

const REALS: [Real; 2] = [
    Real {
        name: "web-1",
        ns: "lb-demo-web1",
        addr: "192.0.2.11",
        weight: 3,
    },
    Real {
        name: "web-2",
        ns: "lb-demo-web2",
        addr: "192.0.2.12",
        weight: 1,
    },
];

/// A TCG boot on a busy machine.
const BOOT: Duration = Duration::from_secs(240);
/// A health change: two checks a second apart, plus slack.
const HEALTH: Duration = Duration::from_secs(60);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn say(text: &str) {
    println!("\ndemo: {text}");
}

/// A step that failed, with what was seen.
type Step<T> = Result<T, String>;

struct Demo {
    lan: Netns,
    real_ns: Vec<Netns>,
    servers: Vec<Option<StaticServer>>,
    www: ScratchDir,
    lbctl: PathBuf,
    /// lbctl's certificate, key and CA for the API's mutual TLS, made for this run.
    client: lbtest::tls::ClientFiles,
    _tls_dir: ScratchDir,
    guest: Option<Guest>,
    _config_server: StaticServer,
    _config_dir: ScratchDir,
}

impl Demo {
    fn build(image: &Image) -> Step<Demo> {
        let lan = Netns::named(NS).map_err(|e| e.to_string())?;
        lan.add_bridge("br0").map_err(|e| e.to_string())?;
        lan.add_addr("br0", &format!("{CLIENT}/24"))
            .map_err(|e| e.to_string())?;
        lan.add_tap("tap0", Some("br0"))
            .map_err(|e| e.to_string())?;

        let lbctl = fresh::binary("lbctl", "lbctl", Profile::Debug);
        let www = ScratchDir::new("lb-demo-www");
        let mut real_ns = Vec::new();
        for (i, r) in REALS.iter().enumerate() {
            let ns = Netns::named(r.ns).map_err(|e| e.to_string())?;
            let (here, there) = (format!("veth{i}"), "eth0");
            lan.add_veth_to(&here, &ns, there)
                .map_err(|e| e.to_string())?;
            lan.set_master(&here, "br0").map_err(|e| e.to_string())?;
            ns.add_addr(there, &format!("{}/24", r.addr))
                .map_err(|e| e.to_string())?;
            // The real-server side of DR, as lbctl prints it for an operator to run.
            let script = lbtest::process::run(std::process::Command::new(&lbctl).args([
                "realserver",
                "--vip",
                VIP,
                "--mode",
                "dr",
            ]))
            .map_err(|e| e.to_string())?;
            let mut sh = ns.command("sh");
            sh.arg("-c")
                .arg(String::from_utf8_lossy(&script.stdout).into_owned());
            lbtest::process::run(&mut sh).map_err(|e| e.to_string())?;
            let dir = www.path().join(r.name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("index.html"), format!("{}\n", r.name))
                .map_err(|e| e.to_string())?;
            real_ns.push(ns);
        }

        // The API over TCP takes mutual TLS only: a CA for this run, the balancer's certificate
        // (its address as a subject alternative name, which lbctl checks against the URL) and
        // an admin client's, for lbctl.
        let ca = lbtest::tls::TestCa::new("lb demo CA (made for this run only)");
        let server = ca.server(&[IpAddr::V4(BALANCER.parse::<Ipv4Addr>().expect("address"))]);
        let tls_dir = ScratchDir::new("lb-demo-tls");
        let client = ca
            .write_client(tls_dir.path(), "demo-admin", &ca.client("demo-admin"))
            .map_err(|e| format!("writing the demo's client certificate: {e}"))?;

        let config_dir = ScratchDir::new("lb-demo-config");
        let example = artifacts::workspace_root().join("tools/examples/demo.toml");
        let text =
            std::fs::read_to_string(&example).map_err(|e| format!("{}: {e}", example.display()))?;
        let text = demo_config(&text, &ca.api_tls_toml(&server, &[("demo-admin", "admin")]))?;
        std::fs::write(config_dir.path().join("demo.toml"), text)
            .map_err(|e| format!("writing the demo's config: {e}"))?;
        let config_server = StaticServer::start_in(
            &lan,
            config_dir.path(),
            IpAddr::V4(CLIENT.parse::<Ipv4Addr>().expect("address")),
            CONFIG_PORT,
        )
        .map_err(|e| e.to_string())?;

        let mut demo = Demo {
            lan,
            real_ns,
            servers: Vec::new(),
            www,
            lbctl,
            client,
            _tls_dir: tls_dir,
            guest: None,
            _config_server: config_server,
            _config_dir: config_dir,
        };
        for i in 0..REALS.len() {
            let server = demo.start_real(i)?;
            demo.servers.push(Some(server));
        }
        let guest = ApplianceBuilder::new("demo")
            .nic(Nic::tap("tap0", MAC))
            .netns(&demo.lan)
            .config_url(format!("http://{CLIENT}:{CONFIG_PORT}/demo.toml"))
            .poll("5s")
            .append(format!(
                "ip={BALANCER}::{CLIENT}:255.255.255.0:lb-demo:eth0:off"
            ))
            .guest_builder(image)
            // Ctrl-C is the demo's to handle: it powers the balancer off in order.
            .own_process_group(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        demo.guest = Some(guest);
        Ok(demo)
    }

    fn guest(&self) -> &Guest {
        self.guest.as_ref().expect("booted")
    }

    fn start_real(&self, i: usize) -> Step<StaticServer> {
        StaticServer::start_in(
            &self.real_ns[i],
            &self.www.path().join(REALS[i].name),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            80,
        )
        .map_err(|e| format!("starting {}: {e}", REALS[i].name))
    }

    /// `lbctl --url API ARGS` run from the client's namespace.
    fn lbctl(&self, args: &[&str]) -> Step<String> {
        let mut cmd = self.lan.command(&self.lbctl);
        cmd.args(["--url", API])
            .args(self.client.lbctl_args())
            .args(args);
        lbtest::process::run(&mut cmd)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .map_err(|e| e.to_string())
    }

    fn status_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.lbctl(&["status", "--json"]).ok()?).ok()
    }

    /// Each real's health as lbd reports it, and whether the VRRP instance is master.
    fn health(&self) -> Option<(bool, BTreeMap<String, String>)> {
        let doc = self.status_json()?;
        let master = doc["vrrp"]
            .as_array()?
            .iter()
            .any(|v| v["state"] == "MASTER");
        let mut health = BTreeMap::new();
        for svc in doc["services"].as_array()? {
            for r in svc["reals"].as_array()? {
                health.insert(
                    r["address"].as_str()?.to_owned(),
                    r["health"].as_str()?.to_owned(),
                );
            }
        }
        Some((master, health))
    }

    /// Waits until the instance is master and each real's health is `want[i]`.
    fn wait_for(&self, want: [&str; 2], timeout: Duration) -> Step<()> {
        let mut last = None;
        let mut reached = false;
        lbtest::wait::until(timeout, Duration::from_millis(500), || {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return true; // stop waiting; reported as not reached
            }
            last = self.health();
            reached = match &last {
                Some((true, health)) => REALS.iter().zip(want).all(|(r, w)| {
                    health
                        .iter()
                        .any(|(addr, h)| addr.starts_with(r.addr) && h == w)
                }),
                _ => false,
            };
            reached
        });
        if reached {
            return Ok(());
        }
        Err(format!(
            "after {timeout:?}: wanted master with {} {} and {} {}, lbd says {last:?}",
            REALS[0].name, want[0], REALS[1].name, want[1]
        ))
    }

    /// `n` requests to the VIP with curl from the client's namespace, counted by answer.
    fn requests(&self, n: usize) -> BTreeMap<String, usize> {
        let mut answers = BTreeMap::new();
        for _ in 0..n {
            let out = self
                .lan
                .command("curl")
                .args(["-s", "--max-time", "3", &format!("http://{VIP}/")])
                .output();
            let answer = match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
                Ok(o) => format!("failed (curl exit {})", o.status.code().unwrap_or(-1)),
                Err(e) => format!("failed ({e})"),
            };
            *answers.entry(answer).or_insert(0) += 1;
        }
        answers
    }

    fn print_status(&self) -> Step<()> {
        let table = self.lbctl(&["status", "--color", "never"])?;
        println!("$ ip netns exec {NS} lbctl --url {API} --cert demo-admin.crt --key demo-admin.key --ca ca.crt status");
        print!("{table}");
        Ok(())
    }
}

fn show(answers: &BTreeMap<String, usize>) {
    let total: usize = answers.values().sum();
    println!("  {total} requests: $ ip netns exec {NS} curl -s http://{VIP}/");
    for (who, n) in answers {
        println!("    {who:<8} {n:>3}  {}", "#".repeat(*n));
    }
}

/// Every request answered, by the reals in `shares` (name, expected count) within ±`slack`.
fn check_shares(
    answers: &BTreeMap<String, usize>,
    shares: &[(&str, usize)],
    slack: usize,
) -> Step<()> {
    let total: usize = answers.values().sum();
    let expected: usize = shares.iter().map(|(_, n)| n).sum();
    for (who, n) in answers {
        if !shares.iter().any(|(name, _)| name == who) {
            return Err(format!(
                "{n} of {total} requests were answered by {who:?}: {answers:?}"
            ));
        }
    }
    for (name, want) in shares {
        let got = answers.get(*name).copied().unwrap_or(0);
        if got.abs_diff(*want) > slack {
            return Err(format!(
                "{name} answered {got} of {expected} requests, expected {want} (±{slack}): {answers:?}"
            ));
        }
    }
    Ok(())
}

fn walkthrough(demo: &mut Demo, check: bool) -> Step<()> {
    say("booting the balancer (TCG: about half a minute to \"lbd running\")");
    demo.guest()
        .expect(r"lbd:\s+INFO lbd running", BOOT)
        .map_err(|e| e.to_string())?;
    for line in demo.guest().console().lines() {
        if line.contains(" init: ") || line.contains(" lbd: ") {
            println!("  | {line}");
        }
    }
    say("waiting for the VIP (VRRP master) and both reals' health checks");
    demo.wait_for(["up", "up"], HEALTH)?;
    demo.print_status()?;

    say(&format!(
        "40 requests to the VIP: weights {}:{} (wrr) should share them 30:10",
        REALS[0].weight, REALS[1].weight
    ));
    let answers = demo.requests(40);
    show(&answers);
    check_shares(&answers, &[("web-1", 30), ("web-2", 10)], 2)?;

    say("stopping web-2's server: its check fails twice and lbd takes it out (weight 0)");
    demo.servers[1] = None;
    demo.wait_for(["up", "down"], HEALTH)?;
    demo.print_status()?;
    let answers = demo.requests(20);
    show(&answers);
    check_shares(&answers, &[("web-1", 20)], 0)?;

    say("starting web-2 again: two good checks and it is back");
    demo.servers[1] = Some(demo.start_real(1)?);
    demo.wait_for(["up", "up"], HEALTH)?;
    demo.print_status()?;
    let answers = demo.requests(40);
    show(&answers);
    check_shares(&answers, &[("web-1", 30), ("web-2", 10)], 2)?;

    if check {
        say("ok: the balancer shared requests 3:1, took a stopped real out and put it back");
    }
    Ok(())
}

fn power_off(demo: &mut Demo) -> Step<()> {
    say("pressing the power button (init stops lbd, then powers off)");
    let guest = demo.guest.as_mut().expect("booted");
    guest.system_powerdown().map_err(|e| e.to_string())?;
    guest
        .wait_exit(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    for line in guest.console().lines() {
        if line.contains("power button")
            || line.contains("lbd stopped")
            || line.contains("Power down")
        {
            println!("  | {line}");
        }
    }
    Ok(())
}

/// demo.toml as the balancer gets it: with the API listener and its TLS table (the example
/// file holds neither: the certificates are made for each run).
fn demo_config(example: &str, api_tls: &str) -> Step<String> {
    let with_listener = example.replacen(
        "\n[node]\n",
        &format!("\n[node]\napi_listen = \"{API_LISTEN}\"\n"),
        1,
    );
    if with_listener == example {
        return Err("tools/examples/demo.toml has no [node] table to add api_listen to".into());
    }
    Ok(format!("{with_listener}{api_tls}"))
}

fn interactive(demo: &Demo) {
    let lbctl = demo.lbctl.display();
    let c = &demo.client;
    say("the balancer keeps running. From another terminal on this host (as root):");
    println!(
        "    ip netns exec {NS} curl http://{VIP}/                 # a request through the VIP"
    );
    println!(
        "    export LBCTL_URL={API} LBCTL_CERT={} LBCTL_KEY={} LBCTL_CA={}",
        c.cert.display(),
        c.key.display(),
        c.ca.display()
    );
    println!("    ip netns exec {NS} {lbctl} status                   # mutual TLS, as demo-admin");
    println!(
        "    ip netns exec {NS} {lbctl} drain {}     # and undrain",
        REALS[0].addr
    );
    println!(
        "    kill $(ip netns pids {})                            # stop web-2's server: it goes down",
        REALS[1].ns
    );
    say("the balancer's console follows; Ctrl-C powers it off");
    let console = demo.guest().console();
    let mut seen = console.lines().len();
    while !INTERRUPTED.load(Ordering::SeqCst) {
        let lines = console.lines();
        for line in lines.iter().skip(seen) {
            println!("  | {line}");
        }
        seen = lines.len();
        if console.is_closed() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: demo [--check]\n  --check   assert every step and power off at the end (what tools/test.sh runs)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some("-h" | "--help") => {
            usage();
            return ExitCode::SUCCESS;
        }
        Some(_) => return usage(),
    };
    if !lbtest::process::is_root() {
        eprintln!(
            "demo: needs root (network namespaces and a tap for QEMU); run tools/demo.sh as root"
        );
        return ExitCode::FAILURE;
    }
    for p in ["ip", "python3", "curl", "qemu-system-x86_64"] {
        if let Err(e) = programs::try_path(p) {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    }
    // SAFETY: the handler only stores to an atomic.
    let handler = nix::sys::signal::SigHandler::Handler(on_sigint);
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, handler) };

    let image = match Image::try_find() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    say(&format!(
        "the network, in namespaces on this host:\n\n  \
         {NS}: br0 {CLIENT} (the client; serves the config at http://{CLIENT}:{CONFIG_PORT}/demo.toml)\n    \
         ├─ tap0 ── the balancer {BALANCER} in QEMU, VIP {VIP}, control API {API}\n    \
         ├─ veth ── {} {} (VIP on lo, direct routing), answers \"{}\", weight {}\n    \
         └─ veth ── {} {} (VIP on lo, direct routing), answers \"{}\", weight {}",
        REALS[0].ns, REALS[0].addr, REALS[0].name, REALS[0].weight,
        REALS[1].ns, REALS[1].addr, REALS[1].name, REALS[1].weight,
    ));
    let mut demo = match Demo::build(&image) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: cannot set up: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = walkthrough(&mut demo, check);
    if let Err(e) = &result {
        eprintln!("\ndemo: FAILED: {e}");
        eprintln!("{}", demo.guest().report());
        if check {
            return ExitCode::FAILURE;
        }
    }
    if !check && !INTERRUPTED.load(Ordering::SeqCst) {
        interactive(&demo);
    }
    if let Err(e) = power_off(&mut demo) {
        eprintln!("demo: power-off: {e}");
        return ExitCode::FAILURE;
    }
    if result.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
