//! `pxe`: the central boot and config server (TFTP + HTTP). See `pxe --help` and
//! pxe/README.md.

use clap::{Args, Parser, Subcommand};
use lbd::config::ConfigDuration;
use pxe::files::FileCache;
use pxe::inventory;
use pxe::reload::{self, Loader, Sources};
use pxe::site::{self, Site};
use pxe::state::Shared;
use pxe::template::{self, Template};
use pxe::Mac;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{error, info, warn};

const LONG_ABOUT: &str = "\
The central boot and config server of the load-balancer appliance.

One process serves, over HTTP and (optionally) TFTP:
  /boot.ipxe            generic iPXE script; chains to /boot/${netX/mac:hexhyp}.ipxe
  /boot/MAC.ipxe        the node's iPXE script: kernel + initrd from /image/, and
                        lb.config=http://ADVERTISE/config/MAC.toml on its command line
  /config/MAC.toml      the node's config: the template rendered with its inventory values,
                        validated like lbd does (an invalid one is never served: the last good
                        one is, and the error is logged with file:line:col)
  /image/FILE           files of --image (vmlinuz, initrd.img, ...)          (HTTP only)
  /status               JSON: nodes, served config versions, current problems (HTTP only)
  /ipxe/FILE            files of --tftp-root, for UEFI HTTP boot             (HTTP only)
  undionly.kpxe, ...    files of --tftp-root (default /usr/lib/ipxe)         (TFTP only)
MAC is aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabbccddeeff, any case. An unknown MAC gets
404 (and a log line) unless the inventory has an [unknown] section.

HTTP answers carry ETag (content hash) and Last-Modified, and honour If-None-Match,
If-Modified-Since, If-Match, If-Unmodified-Since, If-Range, HEAD and one byte Range.
Sources are re-read every --poll interval and on SIGHUP. Logs go to stderr; PXE_LOG sets the
level (e.g. PXE_LOG=debug); every request is logged on target pxe::access.";

#[derive(Parser)]
#[command(name = "pxe", version, about = "Central boot and config server: TFTP + HTTP", long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve boot files, iPXE scripts and node configs.
    Serve(ServeArgs),
    /// Print one node's rendered config (validated, as it would be served).
    Render {
        #[command(flatten)]
        src: SourceArgs,
        /// The node's MAC address.
        #[arg(long)]
        mac: Mac,
    },
    /// Validate the inventory and every node's rendered config; exit 1 if anything is wrong.
    /// With --trusted-keys, also check each node's signature in --signatures against its
    /// current render, as the node itself will.
    Check {
        #[command(flatten)]
        src: SourceArgs,
        /// Operator public keys (`ssh-ed25519 AAAA...` lines) the image trusts.
        #[arg(long, value_name = "FILE", requires = "signatures")]
        trusted_keys: Option<PathBuf>,
        /// The directory `pxe sign` wrote.
        #[arg(long, value_name = "DIR", requires = "trusted_keys")]
        signatures: Option<PathBuf>,
    },
    /// Render every node's config and sign it with the operator's key (ssh-keygen -Y sign
    /// -n lb-config), into DIR/config/MAC.toml and DIR/config/MAC.toml.sig; with --image,
    /// sign the image's files too (namespace lb-image). Run it where the key is; publish DIR
    /// to the pxe host and serve it with `pxe serve --signatures DIR`.
    Sign {
        #[command(flatten)]
        src: SourceArgs,
        /// The private key, or its .pub when the key is in ssh-agent.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signed renders and their signatures.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// An image directory whose vmlinuz, initrd.img and boot.ipxe to sign as well.
        #[arg(long, value_name = "DIR")]
        image: Option<PathBuf>,
        /// With --image: also sign each node's iPXE script as `pxe serve --advertise ADDR`
        /// renders it (into DIR/boot/MAC.ipxe.sig).
        #[arg(long, value_name = "ADDR[:PORT]", requires = "image")]
        advertise: Option<String>,
    },
}

#[derive(Args)]
struct SourceArgs {
    /// The inventory: MAC -> hostname and values per node (TOML).
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// The shared config template with {{ node.KEY }} placeholders.
    #[arg(long, value_name = "FILE")]
    template: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    /// Image directory from `image build` (vmlinuz, initrd.img, manifest.json).
    #[arg(long, value_name = "DIR")]
    image: PathBuf,
    #[command(flatten)]
    src: SourceArgs,
    /// HTTP listen address (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8080")]
    http: SocketAddr,
    /// TFTP listen address, e.g. 0.0.0.0:69; no TFTP without it.
    #[arg(long, value_name = "ADDR:PORT")]
    tftp: Option<SocketAddr>,
    /// Directory served over TFTP besides the scripts [default: /usr/lib/ipxe if present].
    #[arg(long, value_name = "DIR")]
    tftp_root: Option<PathBuf>,
    /// Address (and port) the nodes reach the HTTP server at, written into scripts and
    /// config URLs [default: the --http address, unless it is 0.0.0.0 / ::].
    #[arg(long, value_name = "ADDR[:PORT]")]
    advertise: Option<String>,
    /// How often the inventory, template and image manifest are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    poll: ConfigDuration,
    /// Directory of detached signatures written by `pxe sign`, served beside what they sign
    /// (`/config/MAC.toml.sig`, `/boot/MAC.ipxe.sig`, `/image/FILE.sig`). pxe holds no key.
    #[arg(long, value_name = "DIR")]
    signatures: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => {
            init_logging();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("pxe: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            rt.block_on(serve(args))
        }
        Cmd::Render { src, mac } => render(&src, mac),
        Cmd::Check {
            src,
            trusted_keys,
            signatures,
        } => check(&src, trusted_keys.as_deref().zip(signatures.as_deref())),
        Cmd::Sign {
            src,
            key,
            out,
            image,
            advertise,
        } => sign(&src, &key, &out, image.as_deref(), advertise.as_deref()),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PXE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `http://ADDR:PORT` from --advertise or the bound HTTP address.
fn base_url(advertise: Option<&str>, bound: SocketAddr) -> Result<String, String> {
    let addr = match advertise {
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(sa) => sa,
            Err(_) => match a.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, bound.port()),
                Err(_) => {
                    return Err(format!(
                        "--advertise {a:?}: expected an IP address, optionally with :PORT (names are not resolved by init at boot)"
                    ))
                }
            },
        },
        None if bound.ip().is_unspecified() => {
            return Err(format!(
                "--http {bound} listens on every address: give --advertise ADDR, the address the nodes reach this server at"
            ))
        }
        None => bound,
    };
    Ok(format!("http://{addr}"))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let usage = |msg: String| {
        error!("{msg}");
        ExitCode::from(2)
    };
    let listener = match tokio::net::TcpListener::bind(args.http).await {
        Ok(l) => l,
        Err(e) => return usage(format!("--http {}: cannot listen: {e}", args.http)),
    };
    let http_addr = listener.local_addr().unwrap_or(args.http);
    let base = match base_url(args.advertise.as_deref(), http_addr) {
        Ok(b) => b,
        Err(e) => return usage(e),
    };
    let image = match FileCache::new(&args.image) {
        Ok(c) => c,
        Err(e) => return usage(format!("--image {}: {e}", args.image.display())),
    };
    for f in ["vmlinuz", "initrd.img"] {
        if !image.root().join(f).is_file() {
            warn!(
                "{}: no {f}; build the image with tools/build-image.sh",
                image.root().display()
            );
        }
    }
    let tftp_root = match &args.tftp_root {
        Some(dir) => match FileCache::new(dir) {
            Ok(c) => Some(c),
            Err(e) => return usage(format!("--tftp-root {}: {e}", dir.display())),
        },
        None => FileCache::new(Path::new("/usr/lib/ipxe")).ok(),
    };
    if args.tftp.is_some() {
        match &tftp_root {
            Some(r) => {
                // What the DHCP snippets of pxe/README.md hand to firmware: undionly.kpxe
                // to BIOS, snponly.efi to UEFI (ipxe.efi where the firmware has no driver
                // for its NIC).
                for f in ["undionly.kpxe", "snponly.efi", "ipxe.efi"] {
                    if !r.root().join(f).is_file() {
                        warn!("TFTP root {}: no {f} (install Debian's ipxe package)", r.root().display());
                    }
                }
            }
            None => warn!("no TFTP root: only the scripts and configs are served over TFTP (install Debian's ipxe package for undionly.kpxe, snponly.efi and ipxe.efi)"),
        }
    }
    let mut loader = Loader::new(Sources {
        inventory: args.src.inventory.clone(),
        template: args.src.template.clone(),
        image: image.root().to_path_buf(),
        base_url: base.clone(),
    });
    let empty = Site::empty(pxe::ipxe::BootParams {
        base_url: base.clone(),
        image_cmdline: String::new(),
        boot_cmdline: String::new(),
        boot_console: None,
    });
    let site = match loader.poll(&empty) {
        Ok(Some((site, report))) => {
            reload::log_report(&report);
            site
        }
        Ok(None) => empty,
        Err(e) => return usage(e.to_string()),
    };
    if let Ok(inv) = inventory::load(&args.src.inventory) {
        info!("inventory: {}", inventory::describe(&inv));
    }
    let mut shared = Shared::new(site, image, tftp_root);
    if let Some(dir) = &args.signatures {
        match FileCache::new(dir) {
            Ok(c) => shared = shared.with_signatures(c),
            Err(e) => return usage(format!("--signatures {}: {e}", dir.display())),
        }
    }
    let shared = Arc::new(shared);

    let mut tftp_addr = None;
    if let Some(addr) = args.tftp {
        let socket = match std::net::UdpSocket::bind(addr) {
            Ok(s) => s,
            Err(e) => return usage(format!("--tftp {addr}: cannot listen: {e}")),
        };
        tftp_addr = socket.local_addr().ok();
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = pxe::tftp::serve(socket, shared).await {
                error!("TFTP server stopped: {e}");
            }
        });
    }
    tokio::spawn(pxe::http::serve(listener, shared.clone()));
    tokio::spawn(reload::watch(shared.clone(), loader, args.poll.0));

    let tftp_text = tftp_addr.map_or("off".to_string(), |a| a.to_string());
    info!(http = %http_addr, tftp = %tftp_text, base_url = %base, "pxe serving");
    // One machine-readable line on stdout, for scripts and tests that start pxe on port 0.
    println!("listening http={http_addr} tftp={tftp_text} base_url={base}");
    let _ = std::io::stdout().flush();

    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return usage(format!("cannot watch SIGTERM: {e}")),
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
    }
    ExitCode::SUCCESS
}

/// Loads inventory and template, printing every error; `None` if either is invalid.
fn load_sources(src: &SourceArgs) -> Option<(inventory::Inventory, Template)> {
    let inv = inventory::load(&src.inventory).map_err(|e| eprintln!("{e}\n"));
    let tmpl = match std::fs::read_to_string(&src.template) {
        Ok(text) => Template::parse(&src.template.display().to_string(), &text)
            .map_err(|e| eprintln!("{e}\n")),
        Err(e) => {
            eprintln!("{}: cannot read the template: {e}", src.template.display());
            Err(())
        }
    };
    Some((inv.ok()?, tmpl.ok()?))
}

fn render(src: &SourceArgs, mac: Mac) -> ExitCode {
    let Some((inv, tmpl)) = load_sources(src) else {
        return ExitCode::from(1);
    };
    let entry = match (inv.node(mac), &inv.unknown) {
        (Some(n), _) => n.clone(),
        (None, Some(u)) => {
            eprintln!("pxe: {mac} is not in the inventory; rendering the [unknown] profile");
            u.entry_for(mac)
        }
        (None, None) => {
            eprintln!(
                "pxe: {mac} is not in {} (and there is no [unknown] section): it would get 404",
                inv.file
            );
            return ExitCode::from(1);
        }
    };
    match site::render_node(&tmpl, &entry, &inv.file, SystemTime::now()) {
        Ok((r, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            eprintln!("pxe: {}: {}", template::who(&entry), r.summary);
            print!("{}", String::from_utf8_lossy(&r.body));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn check(src: &SourceArgs, signed: Option<(&Path, &Path)>) -> ExitCode {
    let Some((inv, tmpl)) = load_sources(src) else {
        return ExitCode::from(1);
    };
    let keys = match signed.map(|(keys, _)| read_keys(keys)).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("pxe: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: {}", inv.file, inventory::describe(&inv));
    let mut failed = 0;
    let mut entries: Vec<(String, inventory::NodeEntry)> = inv
        .nodes
        .iter()
        .map(|n| (template::who(n), n.clone()))
        .collect();
    if let Some(u) = &inv.unknown {
        entries.push(("[unknown]".into(), u.entry_for(Mac([0x02, 0, 0, 0, 0, 0]))));
    }
    for (who, entry) in entries {
        match site::render_node(&tmpl, &entry, &inv.file, SystemTime::now()) {
            Ok((r, warnings)) => {
                let verdict = match (&keys, signed) {
                    (Some(keys), Some((_, dir))) => {
                        Some(pxe::signing::check_node(&r.body, &entry, dir, keys))
                    }
                    _ => None,
                };
                match verdict {
                    Some(Err(e)) => {
                        failed += 1;
                        println!("FAILED {who}: {e}");
                    }
                    Some(Ok(signer)) => println!("ok     {who}: {}, {signer}", r.summary),
                    None => println!("ok     {who}: {}", r.summary),
                }
                for w in warnings {
                    println!("       {w}");
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {who}:\n{e}\n");
            }
        }
    }
    if failed > 0 {
        println!(
            "{failed} config{} refused",
            if failed == 1 { "" } else { "s" }
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read_keys(path: &Path) -> Result<Vec<lbd::trust::PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--trusted-keys {}: {e}", path.display()))?;
    let keys =
        lbd::trust::parse_keys(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Err(format!("--trusted-keys {}: no key in it", path.display()));
    }
    Ok(keys)
}

fn sign(
    src: &SourceArgs,
    key: &Path,
    out: &Path,
    image: Option<&Path>,
    advertise: Option<&str>,
) -> ExitCode {
    let Some((inv, tmpl)) = load_sources(src) else {
        return ExitCode::from(1);
    };
    let mut signed = 0;
    for entry in &inv.nodes {
        let who = template::who(entry);
        let rendered = match site::render_node(&tmpl, entry, &inv.file, SystemTime::now()) {
            Ok((r, _)) => r,
            Err(e) => {
                eprintln!("pxe: {who}: not signed, the config is refused:\n{e}");
                return ExitCode::from(1);
            }
        };
        match pxe::signing::sign_config(key, out, entry.mac, &rendered.body) {
            Ok(path) => {
                signed += 1;
                println!("signed {who}: {}", path.display());
            }
            Err(e) => {
                eprintln!("pxe: {who}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let (Some(image), Some(advertise)) = (image, advertise) {
        // The scripts exactly as `pxe serve --advertise` renders them.
        let bound: SocketAddr = ([0, 0, 0, 0], 8080).into();
        let base = match base_url(Some(advertise), bound) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("pxe: {e}");
                return ExitCode::from(2);
            }
        };
        let mut loader = Loader::new(Sources {
            inventory: src.inventory.clone(),
            template: src.template.clone(),
            image: image.to_path_buf(),
            base_url: base.clone(),
        });
        let empty = Site::empty(pxe::ipxe::BootParams {
            base_url: base,
            image_cmdline: String::new(),
            boot_cmdline: String::new(),
            boot_console: None,
        });
        let site = match loader.poll(&empty) {
            Ok(Some((site, _))) => site,
            Ok(None) => empty,
            Err(e) => {
                eprintln!("pxe: {e}");
                return ExitCode::from(1);
            }
        };
        for entry in &inv.nodes {
            let Some((_, script)) = site.script(entry.mac) else {
                continue;
            };
            match pxe::signing::sign_script(key, out, entry.mac, script.as_bytes()) {
                Ok(path) => println!(
                    "signed {}'s iPXE script: {}",
                    entry.hostname,
                    path.display()
                ),
                Err(e) => {
                    eprintln!("pxe: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    if let Some(image) = image {
        for file in ["vmlinuz", "initrd.img", "boot.ipxe"] {
            if file == "boot.ipxe" && !image.join(file).is_file() {
                continue;
            }
            match pxe::signing::sign_image_file(key, out, &image.join(file)) {
                Ok(path) => println!("signed {file}: {}", path.display()),
                Err(e) => {
                    eprintln!("pxe: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    println!(
        "{signed} config{} signed into {}; serve it with pxe serve --signatures {}",
        if signed == 1 { "" } else { "s" },
        out.display(),
        out.display()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_from_advertise_or_bind() {
        let bound: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            base_url(Some("10.0.0.1"), bound).unwrap(),
            "http://10.0.0.1:8080"
        );
        assert_eq!(
            base_url(Some("10.0.0.1:80"), bound).unwrap(),
            "http://10.0.0.1:80"
        );
        assert_eq!(
            base_url(Some("fd00::1"), bound).unwrap(),
            "http://[fd00::1]:8080"
        );
        assert_eq!(
            base_url(Some("[fd00::1]:81"), bound).unwrap(),
            "http://[fd00::1]:81"
        );
        assert!(base_url(Some("pxe.example"), bound)
            .unwrap_err()
            .contains("IP address"));
        assert!(base_url(None, bound).unwrap_err().contains("--advertise"));
        let lo: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(base_url(None, lo).unwrap(), "http://127.0.0.1:9000");
    }
}
