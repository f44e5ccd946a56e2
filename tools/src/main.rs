//! `lbctl`: the operator's command-line tool.

use clap::{Parser, Subcommand, ValueEnum};
use lbctl::convert::{self, Conversion, ConvertError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "lbctl", version, about = "Operate load-balancer appliances")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    match Cli::parse().command {
        Command::Validate { files, quiet } => validate(&files, quiet),
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

fn validate(files: &[PathBuf], quiet: bool) -> ExitCode {
    let mut failed = 0;
    for file in files {
        match lbd::config::load(file) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{}", w.render(&loaded.file, &loaded.source_text));
                }
                if !quiet {
                    println!("{}: ok: {}", file.display(), loaded.config.summary());
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
