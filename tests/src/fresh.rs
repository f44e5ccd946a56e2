//! Tests never run an old build. Before a test boots an image or starts a workspace binary, the
//! harness brings it up to date with the current source, the way the README's commands build it:
//!
//! - the images (`target/lb-image`, `target/lb-test-image`) by running `tools/build-image.sh` /
//!   `tools/build-test-image.sh`: cargo decides whether init and lbd need compiling, and the
//!   image builder leaves an image built from the same inputs as it is, so an up-to-date image
//!   costs a few seconds;
//! - workspace binaries (`pxe`, `lbd`, `lbctl` from another package) with `cargo build`.
//!
//! Once per process, under a file lock shared by concurrent test processes. An image named by
//! `LB_IMAGE_DIR` / `LB_TEST_IMAGE_DIR` is the caller's: it is not rebuilt, but refused when its
//! init or lbd differ from the ones the current source builds.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::artifacts::{self, harness_dir, target_dir, workspace_root};

/// The static binaries' target (see tools/build-image.sh).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The images the harness boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// The appliance as shipped (`tools/build-image.sh`): the bare-metal profile.
    Appliance,
    /// The appliance plus busybox, ipvsadm and keepalived (`tools/build-test-image.sh`).
    Test,
    /// The appliance's `cloud` profile (`IMAGE_ARGS=--profile cloud tools/build-image.sh`):
    /// the small image of earlier releases, booted beside the default one to compare.
    Cloud,
}

impl ImageKind {
    /// The script that builds it.
    pub fn script(self) -> &'static str {
        match self {
            ImageKind::Appliance | ImageKind::Cloud => "tools/build-image.sh",
            ImageKind::Test => "tools/build-test-image.sh",
        }
    }

    /// The variable that names another directory for it.
    pub fn env(self) -> &'static str {
        match self {
            ImageKind::Appliance => artifacts::ENV_IMAGE_DIR,
            ImageKind::Test => crate::ipvs::ENV_TEST_IMAGE_DIR,
            ImageKind::Cloud => "LB_CLOUD_IMAGE_DIR",
        }
    }

    /// Where the harness builds it.
    pub fn default_dir(self) -> PathBuf {
        target_dir().join(match self {
            ImageKind::Appliance => "lb-image",
            ImageKind::Test => "lb-test-image",
            ImageKind::Cloud => "lb-cloud-image",
        })
    }
}

/// Holds the lock on `<target>/lbtest/<name>.lock` while alive.
struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

fn lock(name: &str) -> Result<Lock, String> {
    let dir = harness_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// The cargo that runs these tests (`CARGO`), or the toolchain's on PATH.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// PATH with this cargo's directory first: for scripts that run cargo (and cargo-fuzz, which
/// `cargo install` puts beside it).
pub fn toolchain_path() -> std::ffi::OsString {
    script_path()
}

/// PATH for the build scripts, with this cargo's directory first.
fn script_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = cargo().parent().filter(|d| !d.as_os_str().is_empty()) {
        dirs.push(dir.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Cargo's settings, which a nested cargo must keep; every other `CARGO_*` variable is one cargo
/// sets for the program it runs (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`...).
const CARGO_SETTINGS: &[&str] = &[
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "CARGO_INCREMENTAL",
    "CARGO_LOG",
    "CARGO_BUILD_",
    "CARGO_PROFILE_",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRY",
    "CARGO_REGISTRIES_",
    "CARGO_TERM_",
];

/// Removes from `cmd` the variables cargo set for this process. A build script that tracks one
/// (ring's tracks `CARGO_MANIFEST_DIR`) would otherwise see it change, and the nested build would
/// recompile everything above it, then the next ordinary build all of it again.
pub fn clear_cargo_run_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        let run_var = (k.starts_with("CARGO_") && !CARGO_SETTINGS.iter().any(|s| k.starts_with(s)))
            || k == "OUT_DIR";
        if run_var {
            cmd.env_remove(&key);
        }
    }
}

/// Runs `cmd` with its output in `<target>/lbtest/<log>`; a failure returns the log's tail.
fn run_logged(mut cmd: Command, log: &str, what: &str) -> Result<(), String> {
    clear_cargo_run_env(&mut cmd);
    let dir = harness_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join(log);
    let out = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    Err(format!(
        "{what} failed ({status}); the end of {}:\n{}",
        log_path.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// Brings the image of `kind` up to date with the current source (see the module docs) and
/// returns its directory.
pub fn image(kind: ImageKind) -> Result<PathBuf, String> {
    static DONE: OnceLock<Mutex<HashMap<ImageKind, Result<PathBuf, String>>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(result) = done.get(&kind) {
        return result.clone();
    }
    let result = match std::env::var_os(kind.env()) {
        Some(dir) => check_given_image(kind, Path::new(&dir)),
        None => build_image(kind),
    };
    done.insert(kind, result.clone());
    result
}

fn build_image(kind: ImageKind) -> Result<PathBuf, String> {
    let dir = kind.default_dir();
    let _lock = lock("images")?;
    let mut cmd = crate::programs::command("bash");
    cmd.arg(kind.script()).arg(&dir).env("PATH", script_path());
    if kind == ImageKind::Cloud {
        cmd.env("IMAGE_ARGS", "--profile cloud");
    }
    let log = match kind {
        ImageKind::Appliance => "build-image.log",
        ImageKind::Test => "build-test-image.log",
        ImageKind::Cloud => "build-cloud-image.log",
    };
    run_logged(
        cmd,
        log,
        &format!(
            "{} {} (bringing the image up to date with the source)",
            kind.script(),
            dir.display()
        ),
    )?;
    Ok(dir)
}

/// An image of `kind` built into `dir` with extra `image build` arguments (e.g. the test's
/// own `--trusted-keys`), brought up to date the same way as the shared ones.
pub fn variant(kind: ImageKind, dir: &Path, image_args: &[String]) -> Result<PathBuf, String> {
    let _lock = lock("images")?;
    let mut cmd = crate::programs::command("bash");
    cmd.arg(kind.script())
        .arg(dir)
        .env("PATH", script_path())
        .env("IMAGE_ARGS", image_args.join(" "));
    let log = format!(
        "build-variant-{}.log",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    run_logged(
        cmd,
        &log,
        &format!("{} {} with {image_args:?}", kind.script(), dir.display()),
    )?;
    Ok(dir.to_path_buf())
}

/// The static init and lbd as the current source builds them.
fn current_static_binaries() -> Result<[PathBuf; 2], String> {
    let _lock = lock("images")?;
    let mut cmd = Command::new(cargo());
    cmd.args([
        "build",
        "--quiet",
        "--release",
        "--target",
        STATIC_TARGET,
        "-p",
        "init",
        "-p",
        "lbd",
    ])
    .env("RUSTFLAGS", "-C target-feature=+crt-static");
    run_logged(cmd, "build-static.log", "building the static init and lbd")?;
    let dir = target_dir().join(STATIC_TARGET).join("release");
    Ok([dir.join("init"), dir.join("lbd")])
}

/// An image the caller named: used as it is if its init and lbd are the current source's.
fn check_given_image(kind: ImageKind, dir: &Path) -> Result<PathBuf, String> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        format!(
            "{}={}: {}: {e}",
            kind.env(),
            dir.display(),
            manifest_path.display()
        )
    })?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON: {e}", manifest_path.display()))?;
    let in_image = |guest: &str| {
        manifest["initramfs"].as_array().and_then(|files| {
            files
                .iter()
                .find(|f| f["path"] == guest)
                .and_then(|f| f["sha256"].as_str().map(str::to_owned))
        })
    };
    let [init, lbd] = current_static_binaries()?;
    for (guest, built) in [("/init", init), ("/bin/lbd", lbd)] {
        let data = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
        let want = sha256_hex(&data);
        if in_image(guest).as_deref() != Some(want.as_str()) {
            return Err(format!(
                "{}={} holds a {guest} that is not the one the current source builds; rebuild it with `{} {}` or unset {}",
                kind.env(),
                dir.display(),
                kind.script(),
                dir.display(),
                kind.env()
            ));
        }
    }
    Ok(dir.to_path_buf())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cargo profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `dev` (target/debug), what `cargo test` builds.
    Debug,
    /// `release` (target/release), for benchmarks.
    Release,
}

/// The binary `bin` of workspace package `package`, built from the current source (once per
/// process): for tests that start a binary of another package, which cargo does not build for
/// them. (A package's own binaries are `env!("CARGO_BIN_EXE_<name>")`.)
pub fn binary(package: &str, bin: &str, profile: Profile) -> PathBuf {
    type Built = HashMap<(String, String, Profile), Result<PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (package.to_owned(), bin.to_owned(), profile);
    let result = built
        .entry(key)
        .or_insert_with(|| {
            let _lock = lock("binaries")?;
            let mut cmd = Command::new(cargo());
            if profile == Profile::Release {
                cmd.args(["build", "--quiet", "--release", "-p", package, "--bin", bin]);
                run_logged(
                    cmd,
                    &format!("build-{bin}.log"),
                    &format!("cargo build --release -p {package} --bin {bin}"),
                )?;
            } else {
                // Every debug binary in one build: one package at a time would build the
                // shared dependencies once per package's feature set.
                cmd.args(["build", "--quiet", "--workspace", "--bins"]);
                run_logged(cmd, "build-bins.log", "cargo build --workspace --bins")?;
            }
            Ok(target_dir()
                .join(match profile {
                    Profile::Debug => "debug",
                    Profile::Release => "release",
                })
                .join(bin))
        })
        .clone();
    result.unwrap_or_else(|e| panic!("{e}"))
}
