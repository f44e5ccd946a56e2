//! BIRD's files as the image carries them, resolved from the real Debian packages
//! (`.cache/bird/`, which tools/setup.sh fills), run on this host in a chroot that holds
//! nothing else: BIRD starts and greets on its control socket, and each library the closure
//! carries is needed (without it the loader refuses to start BIRD).
//!
//! Needs root (chroot), the BIRD packages (`tools/setup.sh`; or LB_BIRD_DEBS, a directory) and
//! `chroot` (coreutils).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::program::{self, Closure, Content, Role};

fn bird_debs() -> Vec<PathBuf> {
    let dir = match std::env::var_os("LB_BIRD_DEBS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("image/ is inside the workspace")
            .join(image::workspace::BIRD_CACHE_DIR),
    };
    let debs = image::firmware::packages_in(&dir);
    assert!(
        !debs.is_empty(),
        "these tests need BIRD's Debian packages in {}: run tools/setup.sh (as root)",
        dir.display()
    );
    debs
}

fn closure() -> Closure {
    let set = program::PackageSet::read(&bird_debs()).unwrap();
    program::resolve(&set, image::build::BIRD_PROGRAM).unwrap()
}

/// Writes the closure's files under `root` as the image would hold them.
fn write_root(root: &Path, closure: &Closure) {
    for f in &closure.files {
        let path = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match &f.content {
            Content::File { data, mode } => {
                std::fs::write(&path, data).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Content::Symlink { target } => std::os::unix::fs::symlink(target, &path).unwrap(),
        }
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
}

fn chroot(root: &Path) -> std::process::Command {
    let mut cmd = lbtest::programs::command("chroot");
    cmd.arg(root);
    cmd
}

#[test]
fn closure_is_bird_its_needed_libraries_and_the_loader() {
    let closure = closure();
    assert_eq!(closure.package, "bird2");
    let names: Vec<(&str, Role)> = closure
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.role))
        .collect();
    assert!(
        names.contains(&("/usr/sbin/bird", Role::Program)),
        "{names:?}"
    );
    assert!(
        names.contains(&("/lib64/ld-linux-x86-64.so.2", Role::Loader)),
        "{names:?}"
    );
    for lib in [
        "libc.so.6",
        "libssh-gcrypt.so.4",
        "libgcrypt.so.20",
        "libz.so.1",
    ] {
        assert!(
            closure
                .files
                .iter()
                .any(|f| f.role == Role::Library && f.path.ends_with(&format!("/{lib}"))),
            "{lib} missing from {names:?}"
        );
    }
    // The packages of birdc's libraries (readline, tinfo) and libssl are read, but nothing
    // BIRD loads names them.
    for lib in ["libreadline", "libtinfo", "libssl", "libcrypto"] {
        assert!(
            !closure.files.iter().any(|f| f.path.contains(lib)),
            "{lib} carried though bird does not need it: {names:?}"
        );
    }
    // birdc is not carried: lbd speaks the control protocol itself.
    assert!(!names.iter().any(|(p, _)| p.ends_with("/birdc")));
}

#[test]
fn bird_runs_from_its_closure_alone_and_greets_on_its_socket() {
    lbtest::process::require_root("chroot into a directory holding only BIRD's files");
    let closure = closure();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_root(root, &closure);

    let out = chroot(root)
        .args(["/usr/sbin/bird", "--version"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let upstream = image::inspect::upstream_version(&closure.version);
    assert!(
        out.status.success() && text.contains(&format!("BIRD version {upstream}")),
        "bird --version from its closure: {:?}: {text}",
        out.status
    );

    // Started the way lbd starts it; the config touches nothing of the host (no kernel
    // protocol, no BGP).
    std::fs::write(
        root.join("tmp/bird.conf"),
        "log stderr all;\nrouter id 192.0.2.1;\nprotocol device { }\n",
    )
    .unwrap();
    let log = root.join("tmp/bird.log");
    let mut cmd = chroot(root);
    cmd.args([
        "/usr/sbin/bird",
        "-f",
        "-c",
        "/tmp/bird.conf",
        "-s",
        "/tmp/bird.ctl",
    ]);
    let _bird = lbtest::process::ChildGuard::spawn_logged(&mut cmd, &log).unwrap();
    let socket = root.join("tmp/bird.ctl");
    let mut stream =
        lbtest::wait::until_some(Duration::from_secs(10), Duration::from_millis(50), || {
            UnixStream::connect(&socket).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no control socket within 10 s; bird's log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut greeting = [0u8; 64];
    let n = stream.read(&mut greeting).unwrap();
    let greeting = String::from_utf8_lossy(&greeting[..n]);
    assert_eq!(greeting, format!("0001 BIRD {upstream} ready.\n"));
}

#[test]
fn every_library_carried_is_needed() {
    lbtest::process::require_root("chroot into a directory holding only BIRD's files");
    let closure = closure();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_root(root, &closure);
    let libraries: Vec<&str> = closure
        .files
        .iter()
        .filter(|f| f.role == Role::Library)
        .map(|f| f.path.as_str())
        .collect();
    assert!(libraries.len() >= 5, "{libraries:?}");
    for lib in libraries {
        let path = root.join(lib.trim_start_matches('/'));
        let aside = path.with_extension("aside");
        std::fs::rename(&path, &aside).unwrap();
        let out = chroot(root)
            .args(["/usr/sbin/bird", "--version"])
            .output()
            .unwrap();
        std::fs::rename(&aside, &path).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("error while loading shared libraries"),
            "bird started without {lib}, so the image need not carry it: {:?} {stderr}",
            out.status
        );
    }
}

#[test]
fn a_missing_library_package_fails_naming_the_library_and_who_needs_it() {
    let debs: Vec<PathBuf> = bird_debs()
        .into_iter()
        .filter(|d| {
            !d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("libgcrypt20_")
        })
        .collect();
    let set = program::PackageSet::read(&debs).unwrap();
    let err = program::resolve(&set, image::build::BIRD_PROGRAM)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("libgcrypt.so.20, needed by /lib/x86_64-linux-gnu/libssh-gcrypt.so.4 (package libssh-gcrypt-4), is in none of the packages read (bird2 "),
        "{err}"
    );
}
