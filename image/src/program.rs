//! A dynamically linked program carried from Debian packages (BIRD, the BGP speaker): the
//! program file, exactly the shared objects its `DT_NEEDED` closure names, and the dynamic
//! loader its `PT_INTERP` names, each taken from the packages (never from the build host).
//!
//! [`resolve`] is pure: it walks a [`PackageSet`] already in memory the way the loader would
//! search a Debian system (`DT_RUNPATH`, then the multiarch directories), following the
//! packages' symlinks and merged-/usr aliases. [`PackageSet::read`] does the I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use thiserror::Error;

use crate::deb::{self, DebError, Package, PackageEntry};
use crate::elf::{self, DynamicError};

/// Where the x86-64 loader of Debian looks when neither the object's run path nor an
/// `ld.so.cache` (the image has none) names a directory: glibc's multiarch system directories,
/// then the classic ones. (Paths in the image and the packages, not on the build host: splitting
/// `/usr` off keeps the workspace's scan for host programs, which reads quoted `/usr/lib/...` paths as
/// such, from listing them.)
pub const LOADER_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    concat!("/usr", "/lib/x86_64-linux-gnu"),
    "/lib64",
    "/usr/lib64",
    "/lib",
    concat!("/usr", "/lib"),
];

/// Symlink hops followed before a path is declared a loop.
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, Error)]
pub enum ProgramError {
    #[error(transparent)]
    Package(#[from] DebError),
    #[error("package {package} ({file}) is built for {architecture}, not amd64")]
    WrongArchitecture {
        package: String,
        file: String,
        architecture: String,
    },
    #[error("{path} is in package {first} and, with other contents, in package {second}")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("no package provides {program} (packages read: {packages})")]
    NoProgram { program: String, packages: String },
    #[error("{path} (package {package}) {source}")]
    NotElf {
        path: String,
        package: String,
        #[source]
        source: DynamicError,
    },
    #[error("{path} (package {package}) is a symlink loop or a dangling symlink")]
    BadLink { path: String, package: String },
    #[error("{library}, needed by {needed_by} (package {package}), is in none of the packages read ({packages}); searched {searched}")]
    MissingLibrary {
        library: String,
        needed_by: String,
        package: String,
        searched: String,
        packages: String,
    },
    #[error("the program interpreter {interp} of {program} is in none of the packages read ({packages})")]
    MissingLoader {
        interp: String,
        program: String,
        packages: String,
    },
}

/// What a carried file is to the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Program,
    Library,
    Loader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Program => "program",
            Role::Library => "library",
            Role::Loader => "loader",
        }
    }
}

/// What a carried path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File {
        data: Vec<u8>,
        mode: u32,
    },
    /// Another carried path (absolute) with the same file: the loader is asked for by its
    /// `PT_INTERP` path and, as `DT_NEEDED`, by its name in the library directory.
    Symlink {
        target: String,
    },
}

/// One path the image gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// Absolute guest path: where the loader (or whoever starts the program) opens it.
    pub path: String,
    pub content: Content,
    pub role: Role,
    /// The package the bytes come from, and its version.
    pub package: String,
    pub version: String,
    /// The path of the file inside that package (after its symlinks).
    pub source: String,
}

/// The program and everything the loader needs to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub program: String,
    pub package: String,
    pub version: String,
    /// By guest path.
    pub files: Vec<Carried>,
}

impl Closure {
    /// Bytes of the regular files carried.
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match &f.content {
                Content::File { data, .. } => data.len() as u64,
                Content::Symlink { .. } => 0,
            })
            .sum()
    }
}

/// The packages a program is taken from, by package name.
#[derive(Debug, Default)]
pub struct PackageSet {
    packages: BTreeMap<String, Package>,
}

impl PackageSet {
    /// Reads every .deb; all must be for amd64 (or `all`).
    pub fn read(paths: &[PathBuf]) -> Result<Self, ProgramError> {
        let mut packages = Vec::new();
        for path in paths {
            packages.push(deb::read_package(path)?);
        }
        Self::new(packages)
    }

    /// A set from packages already read. Refuses other architectures and two packages that
    /// ship different contents at one path.
    pub fn new(packages: Vec<Package>) -> Result<Self, ProgramError> {
        let mut set = PackageSet::default();
        let mut owner: BTreeMap<&str, &Package> = BTreeMap::new();
        for package in &packages {
            let arch = &package.control.architecture;
            if arch != "amd64" && arch != "all" {
                return Err(ProgramError::WrongArchitecture {
                    package: package.control.package.clone(),
                    file: package.file.clone(),
                    architecture: arch.clone(),
                });
            }
        }
        for package in &packages {
            for (path, entry) in &package.entries {
                if let Some(first) = owner.get(path.as_str()) {
                    if first.entries.get(path) != Some(entry) {
                        return Err(ProgramError::Conflict {
                            path: path.clone(),
                            first: first.control.package.clone(),
                            second: package.control.package.clone(),
                        });
                    }
                } else {
                    owner.insert(path, package);
                }
            }
        }
        for package in packages {
            set.packages
                .insert(package.control.package.clone(), package);
        }
        Ok(set)
    }

    /// `name version` of every package, for messages.
    pub fn describe(&self) -> String {
        if self.packages.is_empty() {
            return "none".into();
        }
        self.packages
            .values()
            .map(|p| format!("{} {}", p.control.package, p.control.version))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The entry at exactly `path` (or its merged-/usr alias), with its package.
    fn entry(&self, path: &str) -> Option<(&Package, &str, &PackageEntry)> {
        for candidate in [Some(path.to_string()), usr_alias(path)]
            .into_iter()
            .flatten()
        {
            for package in self.packages.values() {
                if let Some((key, entry)) = package.entries.get_key_value(&candidate) {
                    return Some((package, key.as_str(), entry));
                }
            }
        }
        None
    }

    /// The regular file `path` leads to after symlinks: (package, path in the package, data,
    /// mode). `Ok(None)` when nothing is at `path`; an error for a loop or dangling link.
    fn file(&self, path: &str) -> Result<Option<Found<'_>>, ProgramError> {
        let mut current = normalize(path);
        let mut first_package = None;
        for _ in 0..MAX_LINK_HOPS {
            let Some((package, key, entry)) = self.entry(&current) else {
                return match first_package {
                    None => Ok(None),
                    Some(package) => Err(ProgramError::BadLink {
                        path: path.to_string(),
                        package,
                    }),
                };
            };
            match entry {
                PackageEntry::File { data, mode } => {
                    return Ok(Some(Found {
                        package,
                        path: key.to_string(),
                        data,
                        mode: *mode,
                    }))
                }
                PackageEntry::Symlink { target } => {
                    first_package.get_or_insert_with(|| package.control.package.clone());
                    current = if target.starts_with('/') {
                        normalize(target)
                    } else {
                        let dir = key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalize(&format!("{dir}/{target}"))
                    };
                }
            }
        }
        Err(ProgramError::BadLink {
            path: path.to_string(),
            package: first_package.unwrap_or_default(),
        })
    }
}

struct Found<'a> {
    package: &'a Package,
    path: String,
    data: &'a [u8],
    mode: u32,
}

/// `/lib/x` ↔ `/usr/lib/x` (and bin, sbin, lib64): Debian's merged /usr makes both the same
/// file, and packages ship one or the other.
fn usr_alias(path: &str) -> Option<String> {
    for top in ["/lib/", "/lib64/", "/bin/", "/sbin/"] {
        if path.starts_with(top) {
            return Some(format!("/usr{path}"));
        }
        if let Some(rest) = path.strip_prefix("/usr") {
            if rest.starts_with(top) {
                return Some(rest.to_string());
            }
        }
    }
    None
}

/// An absolute path with `.`, `..` and repeated slashes resolved.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The program at `program` (an absolute path as its package installs it), every shared object
/// its `DT_NEEDED` closure names, and its loader, laid out where the loader looks for them:
/// each object at the path its name was found at (a regular file even when the package has a
/// symlink there), and a second request for the same file (the loader by `PT_INTERP` and by
/// `DT_NEEDED`) as a symlink to the first path.
pub fn resolve(set: &PackageSet, program: &str) -> Result<Closure, ProgramError> {
    let found = set.file(program)?.ok_or_else(|| ProgramError::NoProgram {
        program: program.to_string(),
        packages: set.describe(),
    })?;
    let package = found.package.control.package.clone();
    let version = found.package.control.version.clone();
    let info = elf::dynamic_info(found.data).map_err(|source| ProgramError::NotElf {
        path: program.to_string(),
        package: package.clone(),
        source,
    })?;

    // Requested guest path → (role, package name, path in the package).
    let mut requested: BTreeMap<String, (Role, String, String)> = BTreeMap::new();
    requested.insert(
        program.to_string(),
        (Role::Program, package.clone(), found.path.clone()),
    );
    let mut loader_source = None;
    if let Some(interp) = &info.interp {
        let loader = set
            .file(interp)?
            .ok_or_else(|| ProgramError::MissingLoader {
                interp: interp.clone(),
                program: program.to_string(),
                packages: set.describe(),
            })?;
        loader_source = Some((loader.package.control.package.clone(), loader.path.clone()));
        requested.insert(
            interp.clone(),
            (
                Role::Loader,
                loader.package.control.package.clone(),
                loader.path,
            ),
        );
    }

    // Breadth first over the objects, each parsed once (keyed by package path).
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut queue: VecDeque<(String, String, String, Vec<String>)> = VecDeque::new();
    seen.insert((package.clone(), found.path.clone()));
    queue.push_back((
        program.to_string(),
        package.clone(),
        found.path,
        info.needed,
    ));
    let mut runpaths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    runpaths.insert(program.to_string(), info.runpath);
    while let Some((needer, needer_package, _, needed)) = queue.pop_front() {
        let runpath = runpaths.get(&needer).cloned().unwrap_or_default();
        for name in needed {
            let dirs: Vec<String> = if name.contains('/') {
                vec![String::new()]
            } else {
                runpath
                    .iter()
                    .filter(|d| !d.contains("$ORIGIN"))
                    .cloned()
                    .chain(LOADER_DIRS.iter().map(|d| d.to_string()))
                    .collect()
            };
            let mut hit = None;
            for dir in &dirs {
                let path = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                if let Some(f) = set.file(&path)? {
                    hit = Some((path, f));
                    break;
                }
            }
            let Some((path, f)) = hit else {
                return Err(ProgramError::MissingLibrary {
                    library: name,
                    needed_by: needer,
                    package: needer_package,
                    searched: dirs.join(" "),
                    packages: set.describe(),
                });
            };
            let key = (f.package.control.package.clone(), f.path.clone());
            let role = if Some(&key) == loader_source.as_ref() {
                Role::Loader
            } else {
                Role::Library
            };
            requested
                .entry(path.clone())
                .or_insert((role, key.0.clone(), key.1.clone()));
            if seen.insert(key.clone()) && role == Role::Library {
                let info = elf::dynamic_info(f.data).map_err(|source| ProgramError::NotElf {
                    path: f.path.clone(),
                    package: key.0.clone(),
                    source,
                })?;
                runpaths.insert(path.clone(), info.runpath);
                queue.push_back((path, key.0, key.1, info.needed));
            }
        }
    }

    // The first guest path (in path order) of each package file gets its bytes; the others
    // link to it.
    let mut first_path: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut files = Vec::new();
    for (path, (role, pkg, source)) in &requested {
        let key = (pkg.clone(), source.clone());
        let content = match first_path.get(&key) {
            Some(target) => Content::Symlink {
                target: target.clone(),
            },
            None => {
                first_path.insert(key, path.clone());
                let f = set
                    .file(source)?
                    .expect("resolved above from this very package path");
                Content::File {
                    data: f.data.to_vec(),
                    mode: f.mode,
                }
            }
        };
        let version = set.packages[pkg].control.version.clone();
        files.push(Carried {
            path: path.clone(),
            content,
            role: *role,
            package: pkg.clone(),
            version,
            source: source.clone(),
        });
    }
    Ok(Closure {
        program: program.to_string(),
        package,
        version,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::Control;

    fn package(name: &str, entries: &[(&str, PackageEntry)]) -> Package {
        Package {
            file: format!("{name}_1_amd64.deb"),
            control: Control {
                package: name.into(),
                version: "1".into(),
                architecture: "amd64".into(),
            },
            entries: entries
                .iter()
                .map(|(p, e)| (p.to_string(), e.clone()))
                .collect(),
        }
    }

    fn file(data: &[u8]) -> PackageEntry {
        PackageEntry::File {
            data: data.to_vec(),
            mode: 0o644,
        }
    }

    fn link(target: &str) -> PackageEntry {
        PackageEntry::Symlink {
            target: target.into(),
        }
    }

    #[test]
    fn paths_normalize_and_alias_across_merged_usr() {
        assert_eq!(normalize("/lib64/../lib/./x//y"), "/lib/x/y");
        assert_eq!(
            usr_alias("/lib/x").as_deref(),
            Some(concat!("/usr", "/lib/x"))
        );
        assert_eq!(usr_alias("/usr/lib64/x"), Some("/lib64/x".into()));
        assert_eq!(usr_alias(concat!("/usr", "/share/x")), None);
        assert_eq!(usr_alias("/etc/x"), None);
    }

    #[test]
    fn symlinks_are_followed_within_and_across_packages() {
        let set = PackageSet::new(vec![
            package(
                "libc6",
                &[
                    (
                        "/lib64/ld-linux-x86-64.so.2",
                        link("/lib/x86_64-linux-gnu/ld.so"),
                    ),
                    ("/lib/x86_64-linux-gnu/ld.so", file(b"loader")),
                ],
            ),
            package(
                "libz",
                &[
                    (
                        concat!("/usr", "/lib/x86_64-linux-gnu/libz.so.1"),
                        link("libz.so.1.2"),
                    ),
                    (
                        concat!("/usr", "/lib/x86_64-linux-gnu/libz.so.1.2"),
                        file(b"z"),
                    ),
                    ("/lib/loop", link("loop")),
                    ("/lib/dangling", link("nowhere")),
                ],
            ),
        ])
        .unwrap();
        let f = set.file("/lib64/ld-linux-x86-64.so.2").unwrap().unwrap();
        assert_eq!(
            (f.data, f.path.as_str()),
            (&b"loader"[..], "/lib/x86_64-linux-gnu/ld.so")
        );
        // Asked under /lib, shipped under /usr/lib.
        let f = set
            .file("/lib/x86_64-linux-gnu/libz.so.1")
            .unwrap()
            .unwrap();
        assert_eq!(f.data, b"z");
        assert_eq!(f.package.control.package, "libz");
        assert!(set.file("/lib/nothing").unwrap().is_none());
        assert!(matches!(
            set.file("/lib/loop"),
            Err(ProgramError::BadLink { .. })
        ));
        assert!(matches!(
            set.file("/lib/dangling"),
            Err(ProgramError::BadLink { .. })
        ));
    }

    #[test]
    fn conflicting_packages_and_foreign_architectures_are_refused() {
        let a = package("a", &[("/lib/x", file(b"1"))]);
        let b = package("b", &[("/lib/x", file(b"2"))]);
        let same = package("c", &[("/lib/x", file(b"1"))]);
        assert!(PackageSet::new(vec![a.clone(), same]).is_ok());
        let err = PackageSet::new(vec![a, b]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/lib/x is in package a and, with other contents, in package b"
        );
        let mut arm = package("d", &[]);
        arm.control.architecture = "arm64".into();
        let err = PackageSet::new(vec![arm]).unwrap_err();
        assert!(err.to_string().contains("built for arm64"), "{err}");
    }

    #[test]
    fn a_missing_program_names_the_packages_read() {
        let set = PackageSet::new(vec![package("libc6", &[])]).unwrap();
        let err = resolve(&set, "/usr/sbin/bird").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no package provides /usr/sbin/bird (packages read: libc6 1)"
        );
        let set =
            PackageSet::new(vec![package("bird2", &[("/usr/sbin/bird", file(b"#!"))])]).unwrap();
        let err = resolve(&set, "/usr/sbin/bird").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/usr/sbin/bird (package bird2) is not an ELF file"
        );
    }
}
