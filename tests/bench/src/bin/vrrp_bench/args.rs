//! The command line.

use std::path::PathBuf;

pub struct Args {
    pub runs: usize,
    /// Seconds of soak (0: none).
    pub soak: u64,
    /// Measure keepalived too, as the anchor.
    pub keepalived: bool,
    /// The lbd binary to run.
    pub lbd: PathBuf,
}

/// The arguments; an error is the message to print (the usage for `--help`).
pub fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        runs: 5,
        soak: 60,
        keepalived: true,
        lbd: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("lbd"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).ok_or("--runs N")?,
            "--soak" => {
                a.soak = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--soak SECS")?
            }
            "--no-keepalived" => a.keepalived = false,
            "--lbd" => a.lbd = it.next().ok_or("--lbd PATH")?.into(),
            "-h" | "--help" => {
                return Err(
                    "usage: vrrp_bench [--runs N] [--soak SECS] [--no-keepalived] [--lbd PATH]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !a.lbd.is_file() {
        return Err(format!(
            "no lbd binary at {} (build it, or pass --lbd PATH)",
            a.lbd.display()
        ));
    }
    Ok(a)
}
