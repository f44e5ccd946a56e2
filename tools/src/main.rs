//! `lbctl`: the operator's command-line tool.
//!
//! Today: `validate`. The control-API commands (status, drain, reload) and the keepalived /
//! ldirectord converters come with the operator-surface work.

use clap::{Parser, Subcommand};
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
    /// Validate config files: every error with file:line:col and a fix; exit 1 if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print nothing for valid files.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { files, quiet } => validate(&files, quiet),
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
