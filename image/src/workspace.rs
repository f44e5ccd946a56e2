//! Default input locations, relative to the workspace root.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::drivers::Profile;

/// Cargo command that produces the static binaries the image expects by default.
pub const BUILD_BINARIES_HINT: &str = "RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu -p init -p lbd";

/// Where the setup script puts the kernel packages (the generic and the cloud flavour).
pub const KERNEL_CACHE_DIR: &str = ".cache/kernel";

/// Where the setup script puts the firmware packages.
pub const FIRMWARE_CACHE_DIR: &str = ".cache/firmware";

/// Where the setup script puts BIRD's packages (bird2 and its library packages).
pub const BIRD_CACHE_DIR: &str = ".cache/bird";

/// Where the static release binaries are built.
pub const RELEASE_DIR: &str = "target/x86_64-unknown-linux-gnu/release";

#[derive(Debug, Error)]
pub enum WorkspaceError {
    #[error(
        "no Cargo.toml with [workspace] found in {start} or any parent directory; pass --root"
    )]
    NoRoot { start: PathBuf },
    #[error("no {flavour} kernel package (linux-image-*.deb) in {dir}: run tools/setup.sh to fetch the kernel packages")]
    NoKernel { dir: PathBuf, flavour: &'static str },
    #[error("no kernel source package linux-source-*_{version}_all.deb in {dir}, which the boot stub is rebuilt from: run tools/setup.sh to fetch it, or pass --kernel-payload shipped")]
    NoKernelSource { dir: PathBuf, version: String },
    #[error("{what} binary not found at {path}: build it with `{hint}`")]
    NoBinary {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
}

/// Walks up from `start` to the first directory whose Cargo.toml has a `[workspace]` table.
pub fn find_root(start: &Path) -> Result<PathBuf, WorkspaceError> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|line| line.trim() == "[workspace]") {
                return Ok(dir.to_path_buf());
            }
        }
    }
    Err(WorkspaceError::NoRoot {
        start: start.to_path_buf(),
    })
}

/// The newest `linux-image-*.deb` of the profile's flavour in `<root>/.cache/kernel/`, by
/// version-aware name order (digit runs compare as numbers, so `-56` is newer than `-9`).
pub fn default_kernel_deb(root: &Path, profile: Profile) -> Result<PathBuf, WorkspaceError> {
    let dir = root.join(KERNEL_CACHE_DIR);
    let no_kernel = || WorkspaceError::NoKernel {
        dir: dir.clone(),
        flavour: match profile {
            Profile::BareMetal => "generic (amd64)",
            Profile::Cloud => "cloud",
        },
    };
    let entries = std::fs::read_dir(&dir).map_err(|_| no_kernel())?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("linux-image-") && n.ends_with(".deb"))
        .filter(|n| {
            // linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb: the release ends at `_`.
            let release = n.split('_').next().unwrap_or(n);
            profile.matches_kernel(release)
        })
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    names.pop().map(|n| dir.join(n)).ok_or_else(no_kernel)
}

/// Where rebuilt kernel images are kept (see `image::restub`).
pub const RESTUB_CACHE_DIR: &str = ".cache/kernel/restubbed";

/// `<root>/.cache/kernel/linux-source-X.Y_VERSION_all.deb`: Debian's source of the kernel
/// whose package version is `version`.
pub fn default_kernel_source_deb(root: &Path, version: &str) -> Result<PathBuf, WorkspaceError> {
    let dir = root.join(KERNEL_CACHE_DIR);
    let suffix = format!("_{version}_all.deb");
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| n.starts_with("linux-source-") && n.ends_with(&suffix))
        .map(|n| dir.join(n))
        .ok_or_else(|| WorkspaceError::NoKernelSource {
            dir: dir.clone(),
            version: version.to_string(),
        })
}

/// `<root>/target/x86_64-unknown-linux-gnu/release/<name>`, which must exist.
pub fn default_binary(root: &Path, name: &'static str) -> Result<PathBuf, WorkspaceError> {
    let path = root.join(RELEASE_DIR).join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(WorkspaceError::NoBinary {
            what: name,
            path,
            hint: BUILD_BINARIES_HINT,
        })
    }
}

/// Compares strings treating runs of ASCII digits as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(
            natural_cmp(
                "linux-image-6.1.0-9-cloud-amd64_6.1.27-1_amd64.deb",
                "linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb"
            ),
            Ordering::Less
        );
        assert_eq!(natural_cmp("a10", "a9"), Ordering::Greater);
        assert_eq!(natural_cmp("a010", "a10"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "ab"), Ordering::Less);
    }

    #[test]
    fn finds_root_and_newest_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        let nested = root.join("image/src");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(root.join("image/Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(find_root(&nested).unwrap(), root);

        let err = default_kernel_deb(root, Profile::Cloud).unwrap_err();
        assert!(err.to_string().contains("run tools/setup.sh"), "{err}");
        let cache = root.join(KERNEL_CACHE_DIR);
        std::fs::create_dir_all(&cache).unwrap();
        for name in [
            "linux-image-6.1.0-9-cloud-amd64_1_amd64.deb",
            "linux-image-6.1.0-56-cloud-amd64_1_amd64.deb",
            "notes.txt",
        ] {
            std::fs::write(cache.join(name), b"").unwrap();
        }
        assert_eq!(
            default_kernel_deb(root, Profile::Cloud).unwrap(),
            cache.join("linux-image-6.1.0-56-cloud-amd64_1_amd64.deb")
        );
        let err = default_kernel_deb(root, Profile::BareMetal).unwrap_err();
        assert!(err.to_string().contains("generic"), "{err}");
        std::fs::write(cache.join("linux-image-6.1.0-55-amd64_1_amd64.deb"), b"").unwrap();
        assert_eq!(
            default_kernel_deb(root, Profile::BareMetal).unwrap(),
            cache.join("linux-image-6.1.0-55-amd64_1_amd64.deb")
        );

        let err = default_binary(root, "init").unwrap_err();
        assert!(err.to_string().contains("+crt-static"), "{err}");
    }
}
