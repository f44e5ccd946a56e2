//! `lbd`: the load-balancer daemon.

use clap::{Parser, Subcommand};
use lbd::config;
use lbd::daemon::{Daemon, Parts};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lbd",
    version,
    about = "Load-balancer daemon: VRRP, IPVS and health checks",
    after_help = ENVIRONMENT
)]
struct Cli {
    /// Config file (for `run`, the default command).
    #[arg(short, long, default_value = "/run/lb/config.toml", global = true)]
    config: PathBuf,
    /// Validate FILE and exit (same as `lbd check FILE`).
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (default).
    Run,
    /// Validate config files: print every error with file:line:col, exit 1 if any is invalid.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also print the validated model as JSON.
        #[arg(long)]
        dump: bool,
    },
    /// Expand the image's BIRD where the image stores it compressed (the daemon does it before
    /// it first starts BIRD; this is for running BIRD by hand).
    ExpandBird,
}

/// The environment variables lbd reads (everything an operator configures is in the config).
const ENVIRONMENT: &str = "\
Environment (debugging and tests; production settings live in the config):
  LBD_LOG=LEVEL|FILTER    log level or tracing filter (e.g. debug, lbd::vrrp=trace); wins over
                          [node] log_level
  LB_SYSLOG=udp://IP:514  remote syslog target before the config says one; wins over the kernel
                          command line's lb.syslog=
  LBD_API_SOCKET=PATH     the control socket (default /run/lb/lbd.sock), e.g. to run a second lbd
                          beside the first
  LBD_VRRP_RECORD=DIR     record every VRRP input and action as JSON lines in DIR, for replay tests
  LBD_BIRD=PATH           the BGP speaker (default /usr/sbin/bird); its config and control socket
                          are bird.conf and bird.ctl beside the control socket";

/// Open files lbd asks for: a kept HTTP connection per checked real, plus the checks in
/// flight, for tens of thousands of reals (the kernel's default for PID 1's children is 1024).
const FD_LIMIT: u64 = 1 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = cli.check_config {
        return check(&[file], false);
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Check { files, dump } => check(&files, dump),
        Command::Run => run(cli.config),
        Command::ExpandBird => {
            let bird = std::path::Path::new(lbd::bgp::subsystem::DEFAULT_BIRD);
            match lbd::packed::expand_bird(std::path::Path::new("/"), bird) {
                Ok(n) => {
                    println!("{}: {n} files expanded", bird.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lbd: cannot expand {}: {e}", bird.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(files: &[PathBuf], dump: bool) -> ExitCode {
    let mut ok = true;
    for file in files {
        match config::load(file) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{}", w.render(&loaded.file, &loaded.source_text));
                }
                println!("{}: ok: {}", file.display(), loaded.config.summary());
                if dump {
                    match serde_json::to_string_pretty(&loaded.config) {
                        Ok(json) => println!("{json}"),
                        Err(e) => eprintln!("cannot print the model: {e}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(path: PathBuf) -> ExitCode {
    let refused = lbd::heap::keep_for_reloads();
    lbd::logging::init("lbd", "LBD_LOG", "info");
    if !refused.is_empty() {
        tracing::warn!("lbd: the allocator refused {refused:?}: large reloads will take their memory afresh each time");
    }
    match lbd::sockets::raise_fd_limit(FD_LIMIT) {
        Ok(n) if n < FD_LIMIT => {
            tracing::warn!("lbd: open files limited to {n}: checks that keep connections (HTTP keep_alive) may run out")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("lbd: cannot raise the open files limit: {e}"),
    }
    // The one runtime: the daemon and the control API. The check engine and VRRP run on
    // threads of their own, which the daemon starts and stops.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let checks = match lbd::check::subsystem::CheckSubsystem::start() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("lbd: cannot start the health checks: {e}");
                return ExitCode::FAILURE;
            }
        };
        let api = lbd::api::ApiOptions::from_env();
        let parts = Parts {
            // Remote syslog first: later start-up lines then reach the collector.
            syslog: lbd::syslog::subsystem::SyslogSubsystem::new(),
            ipvs: lbd::ipvs::subsystem::IpvsSubsystem::new(),
            checks,
            vrrp: lbd::vrrp::runtime::VrrpSubsystem::new(),
            bgp: lbd::bgp::subsystem::BgpSubsystem::start(lbd::bgp::subsystem::BgpOptions::in_dir(
                api.socket
                    .parent()
                    .unwrap_or(std::path::Path::new("/run/lb")),
            )),
            api: Some(api),
        };
        let daemon = match Daemon::start(&path, parts).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                tracing::error!("lbd: cannot start: config {} refused", path.display());
                return ExitCode::from(2);
            }
        };
        match daemon.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("lbd failed: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // The last lines ("lbd stopped") must reach the remote collector before the box reboots.
    lbd::syslog::flush(std::time::Duration::from_secs(2));
    result
}
