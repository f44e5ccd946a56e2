//! `lbctl`: the operator's command-line tool.

use clap::{Parser, Subcommand, ValueEnum};
use lbctl::convert::{self, Conversion, ConvertError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lbctl",
    version,
    about = "Operate load-balancer appliances",
    after_help = "Environment: LBCTL_SOCKET, LBCTL_URL, LBCTL_CERT, LBCTL_KEY and LBCTL_CA as \
                  --socket, --url, --cert, --key and --ca; NO_COLOR turns colour off where it \
                  would be automatic."
)]
struct Cli {
    /// lbd's control socket (status, drain, reload...).
    #[arg(long, global = true, env = "LBCTL_SOCKET")]
    socket: Option<PathBuf>,
    /// lbd's TCP API instead of the socket, over mutual TLS: https://HOST:PORT ([node]
    /// api_listen); needs --cert, --key and --ca.
    #[arg(long, global = true, env = "LBCTL_URL")]
    url: Option<String>,
    /// This client's certificate (PEM), signed by the CA of lbd's [node.api.tls] client_ca_pem;
    /// its subject CN or a subject alternative name gives the role ([node.api.tls.clients]).
    #[arg(long, global = true, env = "LBCTL_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, global = true, env = "LBCTL_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// The CA certificate(s) that signed lbd's certificate (PEM); lbd's certificate must also
    /// name the URL's host.
    #[arg(long, global = true, env = "LBCTL_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// The balancer's state: VRRP instances, and the IPVS table joined with health, drains
    /// and connections (like ipvsadm -Ln).
    Status {
        /// Print lbd's JSON document instead.
        #[arg(long)]
        json: bool,
        /// Colour the table (auto: when stdout is a terminal and NO_COLOR is not set).
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
    },
    /// Take a real out of rotation without a config change: weight 0 for new connections,
    /// established ones continue, until undrain. With --node: withdraw every BGP announcement
    /// of this balancer (IPVS stays, so established connections finish).
    Drain {
        /// ADDR:PORT, or ADDR for every port.
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        real: Option<String>,
        /// Only in this service (default: every service that has the real).
        #[arg(long)]
        service: Option<String>,
        /// The whole node: withdraw its N-way VIPs from the routers.
        #[arg(long)]
        node: bool,
    },
    /// Put a drained real back (or, with --node, announce the node's VIPs again).
    Undrain {
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        real: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        node: bool,
    },
    /// Re-read the config file lbd runs from (as SIGHUP does): validated first, refused with
    /// every error if it is not valid.
    Reload,
    /// Who lbd takes this caller for (uid/gid on the socket, the certificate over TLS), its
    /// role and what it may do.
    Whoami,
    /// Recent log events from lbd's in-memory ring (audit events included).
    Events {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Print the commands a real server needs for direct routing or tunnelling (a shell
    /// script: pipe it to `sh` on the real server, as root).
    Realserver {
        /// The virtual IP the balancer sends to this real server.
        #[arg(long)]
        vip: std::net::IpAddr,
        #[arg(long, value_enum)]
        mode: RsMode,
        /// Interface that holds the VIP (dr: default lo; tun: the kernel's tunl0 / ip6tnl0).
        #[arg(long)]
        iface: Option<String>,
    },
    /// Validate config files: every error with file:line:col and a fix; exit 1 if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print nothing for valid files.
        #[arg(short, long)]
        quiet: bool,
        /// Operator public keys (`ssh-ed25519 AAAA...` lines): each FILE must then have a
        /// valid signature FILE.sig by one of them and a [release] section, as a balancer
        /// whose image carries these keys requires.
        #[arg(long, value_name = "KEYS")]
        trusted_keys: Option<PathBuf>,
    },
    /// Convert a keepalived.conf or ldirectord.cf into our config (TOML on stdout, a warning on
    /// stderr for every construct without an exact equivalent; exit 1 on malformed input).
    Convert {
        #[arg(value_enum)]
        from: Source,
        file: PathBuf,
        /// Write the config here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Interface of the VRRP instance made for VIPs that no source instance holds.
        #[arg(long, default_value = "eth0")]
        interface: String,
        /// Virtual router id of that instance.
        #[arg(long, default_value_t = 51)]
        vrid: u8,
        /// Priority of that instance on this node.
        #[arg(long, default_value_t = 100)]
        priority: u8,
        /// Also print (on stderr) the IPVS table the converted config gives with every real
        /// healthy, in `ipvsadm -Ln` layout, to hold against the old balancer's.
        #[arg(long)]
        table: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RsMode {
    /// Direct routing: the VIP on lo (or --iface), ARP kept quiet.
    Dr,
    /// IP-in-IP: the VIP on tunl0 / ip6tnl0, reverse-path filtering off there.
    Tun,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    Keepalived,
    Ldirectord,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let files = lbctl::client::TlsFiles {
        cert: cli.cert.clone(),
        key: cli.key.clone(),
        ca: cli.ca.clone(),
    };
    let api = || lbctl::client::Target::new(cli.socket.clone(), cli.url.as_deref(), &files);
    match cli.command {
        Command::Status { json, color } => api_cmd(api(), |t| status(t, json, color)),
        Command::Drain { node: true, .. } => api_cmd(api(), |t| drain_node(t, "drain")),
        Command::Undrain { node: true, .. } => api_cmd(api(), |t| drain_node(t, "undrain")),
        Command::Drain {
            ref real,
            ref service,
            ..
        } => api_cmd(api(), |t| {
            drain(
                t,
                "drain",
                real.as_deref().unwrap_or(""),
                service.as_deref(),
            )
        }),
        Command::Undrain {
            ref real,
            ref service,
            ..
        } => api_cmd(api(), |t| {
            drain(
                t,
                "undrain",
                real.as_deref().unwrap_or(""),
                service.as_deref(),
            )
        }),
        Command::Reload => api_cmd(api(), reload),
        Command::Whoami => api_cmd(api(), whoami),
        Command::Events { since, max } => api_cmd(api(), |t| events(t, since, max)),
        Command::Validate {
            files,
            quiet,
            trusted_keys,
        } => validate(&files, quiet, trusted_keys.as_deref()),
        Command::Realserver { vip, mode, iface } => {
            let mode = match mode {
                RsMode::Dr => lbctl::realserver::Mode::Dr,
                RsMode::Tun => lbctl::realserver::Mode::Tun,
            };
            match lbctl::realserver::script(vip, mode, iface.as_deref()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Convert {
            from,
            file,
            output,
            interface,
            vrid,
            priority,
            table,
        } => {
            let opts = convert::Options {
                interface,
                vrid,
                priority,
            };
            let result = match from {
                Source::Keepalived => {
                    convert::keepalived::convert_file(&file, &convert::RealFs, &opts)
                }
                Source::Ldirectord => convert::ldirectord::convert_file(&file, &opts),
            };
            convert_cmd(result, output, table)
        }
    }
}

fn convert_cmd(
    result: Result<Conversion, ConvertError>,
    output: Option<PathBuf>,
    table: bool,
) -> ExitCode {
    let conversion = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &conversion.warnings {
        eprintln!("{w}");
    }
    let text = conversion.toml();
    let name = output
        .as_ref()
        .map_or("converted config".to_string(), |p| p.display().to_string());
    let valid = match lbd::config::parse(&name, &text) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", w.render(&loaded.file, &loaded.source_text));
            }
            if table {
                eprint!(
                    "{}",
                    lbctl::table::render(&lbctl::table::desired(&loaded.config))
                );
            }
            eprintln!(
                "converted: {} ({} warning{})",
                loaded.config.summary(),
                conversion.warnings.len(),
                if conversion.warnings.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            true
        }
        Err(e) => {
            eprintln!("error: the converted config does not validate (please report this):\n{e}");
            false
        }
    };
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        None => println!("{text}"),
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn validate(files: &[PathBuf], quiet: bool, trusted_keys: Option<&std::path::Path>) -> ExitCode {
    let keys = match trusted_keys {
        None => None,
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("--trusted-keys {}: {e}", path.display()))
            .and_then(|t| {
                lbd::trust::parse_keys(&t, &path.display().to_string()).map_err(|e| e.to_string())
            }) {
            Ok(k) if !k.is_empty() => Some(k),
            Ok(_) => {
                eprintln!("error: --trusted-keys {}: no key in it", path.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut failed = 0;
    for file in files {
        match lbd::config::load(file) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{}", w.render(&loaded.file, &loaded.source_text));
                }
                let signer = match &keys {
                    None => String::new(),
                    Some(keys) => match check_signature(file, &loaded, keys) {
                        Ok(s) => format!(", {s}"),
                        Err(e) => {
                            eprintln!("{}: refused: {e}", file.display());
                            failed += 1;
                            continue;
                        }
                    },
                };
                if !quiet {
                    println!(
                        "{}: ok: {}{signer}",
                        file.display(),
                        loaded.config.summary()
                    );
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// FILE.sig verifies over FILE's bytes by one of `keys`, and the config has a `[release]`.
fn check_signature(
    file: &std::path::Path,
    loaded: &lbd::config::Loaded,
    keys: &[lbd::trust::PublicKey],
) -> Result<String, String> {
    let sig_path = PathBuf::from(format!("{}.sig", file.display()));
    let sig = std::fs::read(&sig_path).map_err(|e| {
        format!(
            "no signature {} ({e}): sign it with ssh-keygen -Y sign -n {} -f KEY {}",
            sig_path.display(),
            lbd::trust::NAMESPACE,
            file.display()
        )
    })?;
    let key =
        lbd::trust::verify(loaded.source_text.as_bytes(), &sig, keys).map_err(|e| e.to_string())?;
    let release = loaded
        .config
        .release
        .as_ref()
        .ok_or_else(|| lbd::trust::ReleaseError::Missing.to_string())?;
    Ok(format!(
        "signed by {} {}, serial {}, for {}",
        key.fingerprint(),
        key.comment,
        release.serial,
        release.node
    ))
}

type ApiResult = Result<ExitCode, lbctl::client::ClientError>;

fn api_cmd(
    target: Result<lbctl::client::Target, lbctl::client::ClientError>,
    f: impl FnOnce(&lbctl::client::Target) -> ApiResult,
) -> ExitCode {
    match target.and_then(|t| f(&t)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(t: &lbctl::client::Target, json: bool, color: ColorChoice) -> ApiResult {
    use std::io::IsTerminal;
    let reply = lbctl::client::request(t, "GET", "/status")?;
    if reply.status != 200 {
        eprintln!(
            "error: lbd answered {}: {}",
            reply.status,
            reply.error_text()
        );
        return Ok(ExitCode::FAILURE);
    }
    if json {
        print!("{}", reply.text());
        return Ok(ExitCode::SUCCESS);
    }
    let doc = match reply.json() {
        Ok(d) => d,
        Err(text) => {
            eprintln!("error: lbd's status is not JSON: {text}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let on = match color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    print!(
        "{}",
        lbctl::status::render(&doc, lbctl::status::Paint { on })
    );
    Ok(ExitCode::SUCCESS)
}

fn drain(t: &lbctl::client::Target, action: &str, real: &str, service: Option<&str>) -> ApiResult {
    use lbctl::client::encode;
    let mut path = format!("/{action}?real={}", encode(real));
    if let Some(s) = service {
        path.push_str(&format!("&service={}", encode(s)));
    }
    let reply = lbctl::client::request(t, "POST", &path)?;
    if reply.status != 200 {
        eprintln!("error: {}", reply.error_text());
        return Ok(ExitCode::FAILURE);
    }
    let doc = reply.json().unwrap_or_default();
    let changed = doc["changed"].as_bool().unwrap_or(false);
    for r in doc["reals"].as_array().into_iter().flatten() {
        let what = match (action, changed) {
            ("drain", true) => "drained: weight 0 for new connections until undrain",
            ("drain", false) => "already drained",
            (_, true) => "undrained: back to its weight",
            (_, false) => "was not drained",
        };
        println!(
            "{} of service {}: {what}",
            r["real"].as_str().unwrap_or("?"),
            r["service"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `lbctl drain --node` / `lbctl undrain --node`.
fn drain_node(t: &lbctl::client::Target, action: &str) -> ApiResult {
    let reply = lbctl::client::request(t, "POST", &format!("/{action}?node=1"))?;
    if reply.status != 200 {
        eprintln!("error: {}", reply.error_text());
        return Ok(ExitCode::FAILURE);
    }
    let doc = reply.json().unwrap_or_default();
    println!("{}", doc["result"].as_str().unwrap_or("done"));
    Ok(ExitCode::SUCCESS)
}

fn reload(t: &lbctl::client::Target) -> ApiResult {
    let reply = lbctl::client::request(t, "POST", "/reload")?;
    let doc = reply.json().unwrap_or_default();
    let short = |v: &serde_json::Value| {
        let s = v.as_str().unwrap_or("");
        s[..12.min(s.len())].to_string()
    };
    match (reply.status, doc["result"].as_str()) {
        (200, Some("reloaded")) => {
            println!(
                "reloaded: version {} (was {}) in {:.0} ms{}",
                short(&doc["version"]),
                short(&doc["previous"]),
                doc["millis"].as_f64().unwrap_or(0.0),
                match &doc["validated"] {
                    serde_json::Value::Object(o) =>
                        match o.get("services").and_then(|n| n.as_u64()) {
                            Some(1) => ", validating the one service the edit touched".to_string(),
                            Some(n) => format!(", validating the {n} services the edit touched"),
                            None => String::new(),
                        },
                    _ => String::new(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        (200, Some("unchanged")) => {
            println!("unchanged: version {}", short(&doc["version"]));
            Ok(ExitCode::SUCCESS)
        }
        (_, Some("refused")) => {
            eprintln!(
                "refused: the config does not validate; lbd keeps version {}",
                short(&doc["previous"])
            );
            for e in doc["errors"].as_array().into_iter().flatten() {
                eprintln!("  {}", e.as_str().unwrap_or(""));
            }
            Ok(ExitCode::FAILURE)
        }
        _ => {
            eprintln!(
                "error: lbd answered {}: {}",
                reply.status,
                reply.error_text()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn whoami(t: &lbctl::client::Target) -> ApiResult {
    let reply = lbctl::client::request(t, "GET", "/whoami")?;
    if reply.status != 200 {
        eprintln!("error: {}", reply.error_text());
        return Ok(ExitCode::FAILURE);
    }
    let doc = reply.json().unwrap_or_default();
    println!(
        "{} ({}): role {}",
        doc["who"].as_str().unwrap_or("?"),
        doc["via"].as_str().unwrap_or("?"),
        doc["role"].as_str().unwrap_or("?")
    );
    for m in doc["may"].as_array().into_iter().flatten() {
        println!("  may {}", m.as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

fn events(t: &lbctl::client::Target, since: u64, max: usize) -> ApiResult {
    let reply = lbctl::client::request(t, "GET", &format!("/events?since={since}&max={max}"))?;
    if reply.status != 200 {
        eprintln!("error: {}", reply.error_text());
        return Ok(ExitCode::FAILURE);
    }
    let doc = reply.json().unwrap_or_default();
    for e in doc["events"].as_array().into_iter().flatten() {
        let fields: Vec<String> = e["fields"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:>6} {} {:<5} {}{}",
            e["seq"].as_u64().unwrap_or(0),
            e["time"].as_str().unwrap_or(""),
            e["level"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or(""),
            if fields.is_empty() {
                String::new()
            } else {
                format!(" [{}]", fields.join(" "))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
