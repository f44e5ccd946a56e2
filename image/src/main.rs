//! `image`: builds the appliance's kernel + initramfs + iPXE script.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use image::build::{BuildOptions, ExtraFile, KernelStub};
use image::drivers::{self, Profile};
use image::firmware;
use image::inspect::{self, mib};
use image::layout::Layout;
use image::{workspace, Compression, Effort};

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
    Build(Box<BuildArgs>),
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
    /// What the image is for: `bare-metal` (Debian's generic kernel with the NIC drivers of
    /// real servers and the virtual ones) or `cloud` (the cloud kernel: virtual NICs only,
    /// a smaller image).
    #[arg(long, value_enum, default_value_t = Profile::BareMetal)]
    profile: Profile,
    /// Debian kernel package [default: the newest of the profile's flavour in .cache/kernel/].
    #[arg(long, value_name = "PATH")]
    kernel_deb: Option<PathBuf>,
    /// `lz4`: ship the package's kernel behind a boot stub rebuilt from Debian's source of the
    /// same version for an lz4 payload (the generic kernel's xz costs about 0.75 s of CPU at
    /// every boot; the kernel itself is the package's, byte for byte, which the build checks).
    /// `shipped`: the package's vmlinuz as it is (signed for Secure Boot). [default: lz4 for
    /// bare-metal, shipped for cloud, whose payload is lz4 already]
    #[arg(long, value_enum, value_name = "PAYLOAD")]
    kernel_payload: Option<KernelPayload>,
    /// Debian's kernel source package for `--kernel-payload lz4` [default:
    /// .cache/kernel/linux-source-*_VERSION_all.deb of the kernel package's version, which
    /// tools/setup.sh fetches].
    #[arg(long, value_name = "PATH")]
    kernel_source_deb: Option<PathBuf>,
    /// NIC driver list replacing the profile's (image/drivers/bare-metal.txt or cloud.txt):
    /// one module name or PCI ID (VVVV:DDDD) per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    nic_drivers: Option<PathBuf>,
    /// A NIC driver to carry besides the list: module name or PCI ID VVVV:DDDD (repeatable).
    #[arg(long = "nic-driver", value_name = "NAME|VVVV:DDDD")]
    nic_driver: Vec<String>,
    /// Firmware package (.deb) for the drivers' firmware (repeatable) [default: every .deb in
    /// .cache/firmware/, which tools/setup.sh fills].
    #[arg(long = "firmware-deb", value_name = "PATH")]
    firmware_debs: Vec<PathBuf>,
    /// Operator public keys (OpenSSH `ssh-ed25519 AAAA...` lines, a `.pub` file or
    /// `allowed_signers`), repeatable: init then applies only configs signed by one of them
    /// (`ssh-keygen -Y sign -n lb-config`).
    #[arg(long = "trusted-keys", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    /// Debian package for BIRD, the BGP speaker: bird2 and its library packages (repeatable)
    /// [default: every .deb in .cache/bird/, which tools/setup.sh fills].
    #[arg(long = "bird-deb", value_name = "PATH")]
    bird_debs: Vec<PathBuf>,
    /// Carry no BIRD (an image without a BGP speaker: N-way services cannot run on it).
    #[arg(long, conflicts_with = "bird_debs")]
    no_bird: bool,
    /// Carry no firmware at all (every requested file is reported missing).
    #[arg(long, conflicts_with = "firmware_debs")]
    no_firmware: bool,
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
    /// How hard the compressors work: `best` for images that ship; `fast` (zstd 3, xz 6) builds
    /// several times faster for a somewhat larger initrd, for test images built many times.
    #[arg(long, value_enum, default_value_t = Effort::Best)]
    effort: Effort,
    /// `split`: the NIC drivers outside the boot set (as NAME.ko.zst) and the firmware (as
    /// NAME.xz) in a first, uncompressed archive, each file compressed on its own, so that the
    /// kernel only copies them at boot; everything else in the compressed archive. `single`:
    /// everything in the compressed archive.
    #[arg(long, value_enum, default_value_t = Layout::Split)]
    layout: Layout,
    /// Build even when DIR already holds an image built from the same inputs (by default such
    /// an image is checked against its manifest and left as it is).
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KernelPayload {
    Shipped,
    Lz4,
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

/// What `--kernel-payload` and `--kernel-source-deb` ask for, with their defaults.
fn kernel_stub(
    payload: Option<KernelPayload>,
    profile: Profile,
    kernel_deb: &Path,
    source_deb: Option<PathBuf>,
    root: &mut Root,
) -> Result<Option<KernelStub>, String> {
    let e = |err: workspace::WorkspaceError| err.to_string();
    let payload = payload.unwrap_or(match profile {
        Profile::BareMetal => KernelPayload::Lz4,
        Profile::Cloud => KernelPayload::Shipped,
    });
    if payload == KernelPayload::Shipped {
        return Ok(None);
    }
    let kernel_deb_version = image::deb::read_control(kernel_deb)
        .map_err(|err| err.to_string())?
        .version;
    let source_deb = match source_deb {
        Some(p) => p,
        None => workspace::default_kernel_source_deb(root.get().map_err(e)?, &kernel_deb_version)
            .map_err(e)?,
    };
    Ok(Some(KernelStub {
        source_deb,
        kernel_deb_version,
        cache_dir: root.get().map_err(e)?.join(workspace::RESTUB_CACHE_DIR),
    }))
}

fn run_build(args: BuildArgs, root: Option<PathBuf>) -> Result<(), String> {
    let mut root = Root {
        explicit: root,
        found: None,
    };
    let e = |err: workspace::WorkspaceError| err.to_string();
    let kernel_deb = match args.kernel_deb {
        Some(p) => p,
        None => workspace::default_kernel_deb(root.get().map_err(e)?, args.profile).map_err(e)?,
    };
    let mut nic_drivers = match &args.nic_drivers {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read --nic-drivers {}: {err}", path.display()))?;
            drivers::parse_list(&text, &path.display().to_string())
        }
        None => {
            let (text, name) = args.profile.default_list();
            drivers::parse_list(text, name)
        }
    }
    .map_err(|err| err.to_string())?;
    for (i, text) in args.nic_driver.iter().enumerate() {
        let origin = format!("--nic-driver #{}", i + 1);
        let spec = drivers::parse_spec(text, &origin).map_err(|err| err.to_string())?;
        nic_drivers.push(drivers::ListEntry { spec, origin });
    }
    let firmware_debs = if args.no_firmware {
        Vec::new()
    } else if !args.firmware_debs.is_empty() {
        args.firmware_debs
    } else {
        let dir = root.get().map_err(e)?.join(workspace::FIRMWARE_CACHE_DIR);
        let debs = firmware::packages_in(&dir);
        if debs.is_empty() {
            eprintln!(
                "warning: no firmware packages in {} (tools/setup.sh downloads them); drivers that need firmware are carried without it",
                dir.display()
            );
        }
        debs
    };
    let init = match args.init {
        Some(p) => p,
        None => workspace::default_binary(root.get().map_err(e)?, "init").map_err(e)?,
    };
    let lbd = match args.lbd {
        Some(p) => p,
        None => workspace::default_binary(root.get().map_err(e)?, "lbd").map_err(e)?,
    };
    let bird_debs = if args.no_bird {
        Vec::new()
    } else if !args.bird_debs.is_empty() {
        args.bird_debs
    } else {
        let dir = root.get().map_err(e)?.join(workspace::BIRD_CACHE_DIR);
        let debs = firmware::packages_in(&dir);
        if debs.is_empty() {
            return Err(format!(
                "no BIRD packages in {} (tools/setup.sh downloads bird2 and its libraries there); pass --no-bird for an image without a BGP speaker",
                dir.display()
            ));
        }
        debs
    };
    let kernel_stub = kernel_stub(
        args.kernel_payload,
        args.profile,
        &kernel_deb,
        args.kernel_source_deb,
        &mut root,
    )?;
    let options = BuildOptions {
        out: args.out,
        kernel_deb,
        init,
        lbd,
        extra_files: args.add,
        extra_modules: args.modules,
        cmdline: args.cmdline,
        compression: args.compress,
        effort: args.effort,
        layout: args.layout,
        mtime: source_date_epoch()?,
        profile: args.profile,
        nic_drivers,
        firmware_debs,
        trusted_keys: args.trusted_keys,
        bird_debs,
        kernel_stub,
    };
    let built = image::build(&options, args.force).map_err(|err| error_chain(&err))?;
    let manifest = &built.manifest;
    for warning in inspect::firmware_warnings(manifest) {
        eprintln!("warning: {warning}");
    }
    for add in &manifest.superseded_adds {
        eprintln!(
            "note: --add {}: the image already carries that library from package {}; kept the package's",
            add.path, add.package
        );
    }
    let t = &manifest.totals;
    println!(
        "{} {}: {} profile, kernel {}, initrd.img {} {} ({} uncompressed, {} of it decompressed by the kernel), {} modules ({}), {} NIC drivers, {} firmware files ({}), {} requested firmware files missing, {}",
        if built.rebuilt {
            "built"
        } else {
            "up to date (same inputs)"
        },
        options.out.display(),
        manifest.profile,
        manifest.kernel_version,
        mib(t.initramfs_compressed_bytes),
        manifest.compression,
        mib(t.initramfs_uncompressed_bytes),
        mib(t.kernel_decompressed_bytes),
        t.module_count,
        mib(t.module_bytes),
        manifest.modules.iter().filter(|m| m.nic).count(),
        t.firmware_files,
        mib(t.firmware_bytes),
        manifest.firmware_missing.len(),
        match &manifest.bird {
            Some(b) => format!(
                "BIRD {} ({} files, {})",
                b.version,
                b.files.len(),
                mib(b.bytes)
            ),
            None => "no BIRD".to_string(),
        },
    );
    Ok(())
}

fn main() -> ExitCode {
    // Parse errors exit with status 2 (clap's convention for usage errors).
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => run_build(*args, cli.root),
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
