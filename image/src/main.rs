//! `image`: builds the appliance's kernel + initramfs + iPXE script.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use image::build::{BuildOptions, ExtraFile};
use image::inspect::{self, mib};
use image::{workspace, Compression};

#[derive(Parser, Debug)]
#[command(
    name = "image",
    version,
    about = "Build the load balancer's boot image",
    after_help = "Environment: SOURCE_DATE_EPOCH (seconds) sets the mtime of every initramfs \
                  entry (default 0), for builds that must match another's byte for byte."
)]
struct Cli {
    /// Workspace root for default inputs (default: nearest parent with a [workspace] Cargo.toml).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build vmlinuz, initrd.img, boot.ipxe and manifest.json into DIR.
    Build(BuildArgs),
    /// Summarize a built image and verify its files against manifest.json.
    Inspect {
        /// Image output directory.
        dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// Output directory (replaced as a whole; written beside it first).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Debian kernel package [default: newest .cache/kernel/linux-image-*.deb].
    #[arg(long, value_name = "PATH")]
    kernel_deb: Option<PathBuf>,
    /// Static init binary [default: target/x86_64-unknown-linux-gnu/release/init].
    #[arg(long, value_name = "PATH")]
    init: Option<PathBuf>,
    /// Static lbd binary [default: target/x86_64-unknown-linux-gnu/release/lbd].
    #[arg(long, value_name = "PATH")]
    lbd: Option<PathBuf>,
    /// Extra host file for the initramfs (repeatable).
    #[arg(long = "add", value_name = "HOST_PATH:GUEST_PATH")]
    add: Vec<ExtraFile>,
    /// Extra kernel module, with its dependencies (repeatable).
    #[arg(long = "module", value_name = "NAME")]
    modules: Vec<String>,
    /// Kernel command line (initrd=initrd.img is added) [default: "console=tty0 console=ttyS0,115200n8 panic=10"].
    #[arg(long)]
    cmdline: Option<String>,
    /// Initramfs compression: zstd boots fastest (measured under TCG: zstd 2.35 s, gzip 2.47 s,
    /// xz 3.43 s to /init) at nearly xz's size.
    #[arg(long, value_enum, default_value_t = Compression::Zstd)]
    compress: Compression,
    /// Build even when DIR already holds an image built from the same inputs (by default such
    /// an image is checked against its manifest and left as it is).
    #[arg(long)]
    force: bool,
}

/// mtime for initramfs entries: SOURCE_DATE_EPOCH if set, else 0.
fn source_date_epoch() -> Result<u32, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) => v.trim().parse::<u32>().map_err(|_| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds between 0 and 4294967295")
        }),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

struct Root {
    explicit: Option<PathBuf>,
    found: Option<PathBuf>,
}

impl Root {
    fn get(&mut self) -> Result<&Path, workspace::WorkspaceError> {
        if self.found.is_none() {
            let root = match &self.explicit {
                Some(root) => root.clone(),
                None => {
                    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                    workspace::find_root(&cwd)?
                }
            };
            self.found = Some(root);
        }
        Ok(self.found.as_deref().expect("just set"))
    }
}

fn run_build(args: BuildArgs, root: Option<PathBuf>) -> Result<(), String> {
    let mut root = Root {
        explicit: root,
        found: None,
    };
    let e = |err: workspace::WorkspaceError| err.to_string();
    let kernel_deb = match args.kernel_deb {
        Some(p) => p,
        None => workspace::default_kernel_deb(root.get().map_err(e)?).map_err(e)?,
    };
    let init = match args.init {
        Some(p) => p,
        None => workspace::default_binary(root.get().map_err(e)?, "init").map_err(e)?,
    };
    let lbd = match args.lbd {
        Some(p) => p,
        None => workspace::default_binary(root.get().map_err(e)?, "lbd").map_err(e)?,
    };
    let options = BuildOptions {
        out: args.out,
        kernel_deb,
        init,
        lbd,
        extra_files: args.add,
        extra_modules: args.modules,
        cmdline: args.cmdline,
        compression: args.compress,
        mtime: source_date_epoch()?,
    };
    let built = image::build(&options, args.force).map_err(|err| error_chain(&err))?;
    let manifest = &built.manifest;
    let t = &manifest.totals;
    println!(
        "{} {}: kernel {}, initrd.img {} {} ({} uncompressed), {} modules ({})",
        if built.rebuilt {
            "built"
        } else {
            "up to date (same inputs)"
        },
        options.out.display(),
        manifest.kernel_version,
        mib(t.initramfs_compressed_bytes),
        manifest.compression,
        mib(t.initramfs_uncompressed_bytes),
        t.module_count,
        mib(t.module_bytes),
    );
    Ok(())
}

fn main() -> ExitCode {
    // Parse errors exit with status 2 (clap's convention for usage errors).
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => run_build(args, cli.root),
        Command::Inspect { dir } => match inspect::inspect(&dir) {
            Ok(inspection) => {
                print!("{}", inspect::summary(&inspection));
                if inspection.all_ok() {
                    Ok(())
                } else {
                    Err(format!("{} does not match its manifest", dir.display()))
                }
            }
            Err(err) => Err(error_chain(&err)),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
