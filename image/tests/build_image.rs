//! End-to-end tests of `image build` against the real Debian kernel package, checked with
//! independent tools: GNU cpio, dpkg-deb, zstd and xz.
//!
//! Needs: the kernel package (env LB_KERNEL_DEB, else `<repo>/.cache/kernel/linux-image-*.deb`,
//! fetched by tools/setup.sh), /bin/busybox (busybox-static, a static stand-in for init and
//! lbd), and cpio, dpkg-deb, zstd, xz on PATH.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use image::manifest::{sha256_hex, Manifest};

const BUSYBOX: &str = "/bin/busybox";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("image/ is inside the workspace")
        .to_path_buf()
}

fn kernel_deb() -> PathBuf {
    if let Some(path) = std::env::var_os("LB_KERNEL_DEB") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "LB_KERNEL_DEB={} does not exist",
            path.display()
        );
        return path;
    }
    image::workspace::default_kernel_deb(&repo_root(), image::drivers::Profile::BareMetal)
        .unwrap_or_else(|e| {
            panic!("these tests need the Debian kernel package: {e} (or set LB_KERNEL_DEB)")
        })
}

fn busybox() -> &'static str {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "these tests use {BUSYBOX} as a static stand-in binary: apt-get install busybox-static"
    );
    BUSYBOX
}

fn image_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_image"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// `image build --out OUT --kernel-deb DEB --init busybox --lbd busybox EXTRA...`
fn build(out: &Path, extra: &[&str]) -> Output {
    let deb = kernel_deb();
    let mut cmd = image_cmd();
    cmd.arg("build")
        .arg("--out")
        .arg(out)
        .arg("--kernel-deb")
        .arg(&deb)
        .args(["--init", busybox(), "--lbd", busybox()])
        .args(extra);
    cmd.output().expect("run image")
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "image failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_manifest(out: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Runs `program args` with `input` on stdin and returns stdout.
fn pipe(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Decompresses an initrd with the matching command-line tool.
fn decompress(initrd: &[u8], compression: &str) -> Vec<u8> {
    let mut cmd = match compression {
        "gzip" => lbtest::programs::command("gzip"),
        "zstd" => lbtest::programs::command("zstd"),
        "xz" => lbtest::programs::command("xz"),
        other => panic!("unknown compression {other}"),
    };
    cmd.args(["-d", "-c"]);
    pipe(cmd, initrd)
}

/// The archives of `initrd.img` as the kernel reads them, each as a plain cpio archive: the
/// manifest's segments must cover the file exactly, an uncompressed one is a newc archive
/// as it is, a compressed one is decompressed with its own tool.
fn archives(initrd: &[u8], manifest: &Manifest) -> Vec<Vec<u8>> {
    let mut end = 0u64;
    let mut out = Vec::new();
    for segment in &manifest.segments {
        assert_eq!(segment.offset, end, "segments are contiguous: {segment:?}");
        assert_eq!(
            segment.offset % 4,
            0,
            "the kernel wants each archive 4-aligned"
        );
        end = segment.offset + segment.size;
        let bytes = &initrd[segment.offset as usize..end as usize];
        let cpio = if segment.compression == "none" {
            assert_eq!(
                &bytes[..6],
                b"070701",
                "an uncompressed archive is newc cpio"
            );
            bytes.to_vec()
        } else {
            decompress(bytes, &segment.compression)
        };
        assert_eq!(cpio.len() as u64, segment.cpio_bytes, "{segment:?}");
        out.push(cpio);
    }
    assert_eq!(end, initrd.len() as u64, "segments cover initrd.img");
    out
}

/// Every archive of `initrd.img` unpacked into `dir` in order, as the kernel does; returns
/// the concatenated listings and the total of the cpio archives' sizes.
fn unpack_initrd(initrd: &[u8], manifest: &Manifest, dir: &Path) -> (Vec<String>, u64) {
    let mut listing = Vec::new();
    let mut total = 0;
    for cpio in archives(initrd, manifest) {
        total += cpio.len() as u64;
        listing.extend(extract_cpio(&cpio, dir));
    }
    (listing, total)
}

/// Extracts a cpio archive with GNU cpio into `dir`; returns `cpio -t`'s listing.
fn extract_cpio(cpio: &[u8], dir: &Path) -> Vec<String> {
    let mut list = lbtest::programs::command("cpio");
    list.args(["-t", "--quiet"]);
    let listing = String::from_utf8(pipe(list, cpio)).unwrap();
    let mut extract = lbtest::programs::command("cpio");
    extract
        .args([
            "-i",
            "--quiet",
            "--make-directories",
            "--no-absolute-filenames",
            "--preserve-modification-time",
        ])
        .current_dir(dir);
    pipe(extract, cpio);
    listing.lines().map(str::to_string).collect()
}

/// No `NAME.tmp-*` / `NAME.old-*` leftovers and no `NAME` itself next to `out`.
/// A bzImage's payload (`payload_offset`, `payload_length` of the setup header), without the
/// decompressed size kbuild appends.
fn payload(bzimage: &[u8]) -> &[u8] {
    let u32_at = |at: usize| u32::from_le_bytes(bzimage[at..at + 4].try_into().unwrap()) as usize;
    let setup = match bzimage[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup + 1) * 512 + u32_at(0x248);
    &bzimage[start..start + u32_at(0x24c) - 4]
}

/// The rebuilt vmlinuz carries the package's kernel byte for byte, as the real `xz` and `lz4`
/// programs decompress the two payloads.
fn assert_same_kernel(package: &[u8], rebuilt: &[u8]) {
    let run = |program: &str, args: &[&str], input: &[u8]| {
        let mut cmd = lbtest::programs::command(program);
        cmd.args(args);
        pipe(cmd, input)
    };
    let theirs = run("xz", &["-dc", "--single-stream"], payload(package));
    let ours = run("lz4", &["-dc"], payload(rebuilt));
    assert!(theirs.len() > 10 << 20, "{} bytes", theirs.len());
    assert!(ours == theirs, "the rebuilt vmlinuz holds another kernel");
    assert_eq!(&rebuilt[0x202..0x206], b"HdrS");
}

/// The kernel package as `dpkg-deb -x` unpacks it.
fn unpacked_kernel_deb() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = lbtest::programs::command("dpkg-deb")
        .arg("-x")
        .arg(kernel_deb())
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x failed");
    dir
}

fn assert_no_output(out: &Path) {
    assert!(!out.exists(), "{} was created", out.display());
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&name))
        .collect();
    assert!(leftovers.is_empty(), "leftovers: {leftovers:?}");
}

#[test]
fn default_image_has_expected_contents_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert_ok(&build(&a, &[]));
    assert_ok(&build(&b, &[]));

    // Byte-identical outputs from identical inputs.
    for file in ["vmlinuz", "initrd.img", "boot.ipxe", "manifest.json"] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two identical builds");
    }

    // The same inputs again: the image is checked and left alone. A damaged image is rebuilt.
    // On a third image built with fast compression: what is checked is the builder's
    // bookkeeping, and each of these builds would cost a minute at the best effort.
    let c = dir.path().join("c");
    let fast = ["--effort", "fast"];
    assert_ok(&build(&c, &fast));
    let written = |f: &str| std::fs::metadata(c.join(f)).unwrap().modified().unwrap();
    let before = written("initrd.img");
    let again = build(&c, &fast);
    assert_ok(&again);
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.starts_with("up to date (same inputs)"), "{said}");
    assert_eq!(
        written("initrd.img"),
        before,
        "an unchanged image was rewritten"
    );
    assert_eq!(read_manifest(&c).inputs_sha256.len(), 64);
    assert_ne!(
        read_manifest(&c).inputs_sha256,
        read_manifest(&a).inputs_sha256,
        "the effort is an input"
    );
    std::fs::write(c.join("boot.ipxe"), "#!ipxe\n").unwrap();
    let repaired = build(&c, &fast);
    assert_ok(&repaired);
    let said = String::from_utf8_lossy(&repaired.stdout).into_owned();
    assert!(said.starts_with("built "), "{said}");
    assert_eq!(
        std::fs::read(c.join("boot.ipxe")).unwrap(),
        std::fs::read(b.join("boot.ipxe")).unwrap()
    );
    let other = build(
        &c,
        &["--effort", "fast", "--cmdline", "console=ttyS0 quiet"],
    );
    assert_ok(&other);
    assert!(
        String::from_utf8_lossy(&other.stdout).starts_with("built "),
        "another command line is another input"
    );
    let forced = build(&c, &["--effort", "fast", "--force"]);
    assert_ok(&forced);
    assert!(String::from_utf8_lossy(&forced.stdout).starts_with("built "));
    let initrd_size = |d: &Path| std::fs::metadata(d.join("initrd.img")).unwrap().len();
    assert!(
        initrd_size(&c) > initrd_size(&a),
        "the fast effort's initrd ({} bytes) should be larger than the best's ({} bytes)",
        initrd_size(&c),
        initrd_size(&a)
    );

    let manifest = read_manifest(&a);
    let version = manifest.kernel_version.clone();
    assert!(version.ends_with("-amd64"), "{version}");
    assert_eq!(manifest.compression, "zstd", "zstd is the default");

    // Output files match the manifest.
    let outputs: BTreeMap<&str, _> = manifest
        .outputs
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    for (name, entry) in &outputs {
        let data = std::fs::read(a.join(name)).unwrap();
        assert_eq!(data.len() as u64, entry.size, "{name}");
        assert_eq!(sha256_hex(&data), entry.sha256, "{name}");
    }
    let ipxe = std::fs::read_to_string(a.join("boot.ipxe")).unwrap();
    assert!(
        ipxe.starts_with("#!ipxe\nkernel vmlinuz initrd=initrd.img "),
        "{ipxe}"
    );
    assert!(ipxe.ends_with("\ninitrd initrd.img\nboot\n"), "{ipxe}");

    // The modules are the package's own bytes, as dpkg-deb extracts them; so is the kernel
    // inside vmlinuz, behind a boot stub rebuilt for an lz4 payload.
    let deb_dir = unpacked_kernel_deb();
    let deb_moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|p| deb_dir.path().join(p).join(&version))
        .find(|p| p.is_dir())
        .expect("modules directory in the package");
    let package_vmlinuz =
        std::fs::read(deb_dir.path().join(format!("boot/vmlinuz-{version}"))).unwrap();
    let vmlinuz = std::fs::read(a.join("vmlinuz")).unwrap();
    assert_eq!(manifest.kernel.package_payload, "xz");
    assert_eq!(manifest.kernel.payload, "lz4");
    assert!(
        manifest
            .kernel
            .stub_source
            .as_deref()
            .is_some_and(|s| s.starts_with("linux-source-")),
        "{:?}",
        manifest.kernel
    );
    assert_ne!(vmlinuz, package_vmlinuz);
    assert_same_kernel(&package_vmlinuz, &vmlinuz);

    // The initramfs, decompressed and unpacked by real tools.
    let initrd = std::fs::read(a.join("initrd.img")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (listing, cpio_bytes) = unpack_initrd(&initrd, &manifest, root.path());
    assert_eq!(cpio_bytes, manifest.totals.initramfs_uncompressed_bytes);
    assert_eq!(manifest.layout, "split", "split is the default");
    assert_eq!(manifest.segments.len(), 2, "{:?}", manifest.segments);
    assert_eq!(manifest.segments[0].compression, "none");
    assert_eq!(
        manifest.totals.kernel_decompressed_bytes,
        manifest.segments[1].cpio_bytes
    );
    for expected in [
        "init",
        "bin/lbd",
        "dev/console",
        "dev/null",
        "proc",
        "sys",
        "run",
        "tmp",
        "etc/lb/modules.boot",
        "etc/lb/image.json",
    ] {
        assert!(
            listing.iter().any(|l| l == expected),
            "{expected} missing from cpio -t"
        );
    }
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let console = std::fs::symlink_metadata(root.path().join("dev/console")).unwrap();
        assert!(console.file_type().is_char_device());
        assert_eq!(console.rdev(), (5 << 8) | 1);
        assert_eq!(console.mode() & 0o7777, 0o600);
        let init = std::fs::metadata(root.path().join("init")).unwrap();
        assert_eq!(init.mode() & 0o7777, 0o755);
        assert_eq!(init.mtime(), 0);
    }
    assert!(
        std::fs::read(root.path().join("init")).unwrap() == std::fs::read(BUSYBOX).unwrap(),
        "/init is not the given binary"
    );
    // Every regular file in the archive is listed in the manifest with the right hash, and
    // a file stored compressed decompresses (by zstd or xz) to what the manifest says.
    let mut listed_files = BTreeSet::new();
    for entry in &manifest.initramfs {
        let data = std::fs::read(root.path().join(entry.path.trim_start_matches('/'))).unwrap();
        assert_eq!(sha256_hex(&data), entry.sha256, "{}", entry.path);
        if let Some(compression) = &entry.compression {
            let content = decompress(&data, compression);
            assert_eq!(
                Some(content.len() as u64),
                entry.content_size,
                "{}",
                entry.path
            );
            assert_eq!(
                Some(sha256_hex(&content)),
                entry.content_sha256,
                "{}",
                entry.path
            );
        }
        listed_files.insert(entry.path.trim_start_matches('/').to_string());
    }
    for path in &listing {
        if root.path().join(path).symlink_metadata().unwrap().is_file() {
            assert!(listed_files.contains(path), "{path} not in manifest");
        }
    }

    // BIRD: the default image carries it; each regular file is the bytes of the package that
    // the manifest names, as dpkg-deb extracts it, and the loader is where PT_INTERP says.
    let bird = manifest
        .bird
        .as_ref()
        .expect("the default image carries BIRD");
    assert_eq!(
        (bird.path.as_str(), bird.package.as_str()),
        ("/usr/sbin/bird", "bird2")
    );
    assert_eq!(
        manifest.totals.bird_bytes,
        bird.files.iter().map(|f| f.size).sum::<u64>()
    );
    let bird_debs =
        image::firmware::packages_in(&repo_root().join(image::workspace::BIRD_CACHE_DIR));
    let mut extracted = BTreeMap::new();
    for deb in &bird_debs {
        let dir = tempfile::tempdir().unwrap();
        let status = lbtest::programs::command("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        let package = name.split('_').next().unwrap().to_string();
        extracted.insert(package, dir);
    }
    for f in &bird.files {
        let in_image = root.path().join(f.path.trim_start_matches('/'));
        if let Some(target) = &f.link {
            assert_eq!(
                std::fs::read_link(&in_image).unwrap().to_string_lossy(),
                target.as_str()
            );
            continue;
        }
        let dir = extracted[&f.package].path();
        let rel = f.path.trim_start_matches('/');
        let from_deb = std::fs::read(dir.join(rel))
            .or_else(|_| std::fs::read(dir.join("usr").join(rel)))
            .unwrap_or_else(|e| panic!("{} not in package {}: {e}", f.path, f.package));
        // The split layout stores BIRD's files compressed one by one (lbd expands them before
        // BIRD first starts): not in the archive the kernel decompresses.
        assert!(
            !in_image.exists(),
            "{} is stored whole; the split layout stores it as {}.zst",
            f.path,
            f.path
        );
        let mut stored = in_image.clone().into_os_string();
        stored.push(".zst");
        let packed = std::fs::read(&stored)
            .unwrap_or_else(|e| panic!("{}.zst not in the image: {e}", f.path));
        assert!(
            zstd::stream::decode_all(&packed[..]).unwrap() == from_deb,
            "{} differs from package {}'s",
            f.path,
            f.package
        );
        assert!(
            manifest
                .initramfs
                .iter()
                .any(|e| e.path == format!("{}.zst", f.path)
                    && e.compression.as_deref() == Some("zstd")),
            "{}.zst is not in the manifest's initramfs list",
            f.path
        );
    }
    // The loader at PT_INTERP's path, a link to the file in the library directory.
    let interp = bird
        .files
        .iter()
        .find(|f| f.path == "/lib64/ld-linux-x86-64.so.2")
        .expect("the loader at /lib64");
    assert_eq!(interp.role, "loader");
    assert_eq!(
        interp.link.as_deref(),
        Some("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    );
    let image_info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("etc/lb/image.json")).unwrap())
            .unwrap();
    assert_eq!(image_info["bird"]["version"], bird.version.as_str());
    // What lbd expands before it first starts BIRD.
    let listed: Vec<&str> = image_info["bird"]["files"]
        .as_array()
        .expect("the image's BIRD lists its files")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(
        listed,
        bird.files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
    );

    // Modules: the IPVS closure, the package's bytes, and kmod-format index files.
    let moddir = root.path().join("lib/modules").join(&version);
    let by_name: BTreeMap<&str, _> = manifest
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    for needed in [
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wlc",
        "ip_vs_mh",
        "ip_vs_ftp",
        "ip_vs_pe_sip",
        "nf_conntrack",
        "nf_defrag_ipv4",
        "nf_defrag_ipv6",
        "libcrc32c",
        "virtio_net",
        "virtio_pci",
        "virtio_ring",
        "net_failover",
        "8021q",
        "bonding",
        "macvlan",
        "ipip",
        "dummy",
        "veth",
        "bridge",
        "tun",
        "button",
        "evdev",
    ] {
        let module = by_name
            .get(needed)
            .unwrap_or_else(|| panic!("{needed} missing"));
        let ours = std::fs::read(moddir.join(&module.path)).unwrap();
        assert!(
            ours == std::fs::read(deb_moddir.join(&module.path)).unwrap(),
            "{needed} differs from the package's file"
        );
    }
    assert_eq!(
        by_name["ip_vs"].depends.iter().collect::<BTreeSet<_>>(),
        ["libcrc32c", "nf_conntrack", "nf_defrag_ipv6"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        manifest.totals.module_count as usize,
        manifest.modules.len()
    );
    let nic: Vec<_> = manifest.modules.iter().filter(|m| m.nic).collect();
    assert!(!nic.is_empty(), "the list's NIC drivers are included");
    // NIC drivers are coldplugged by PCI ID; only virtio_net is also in the boot set.
    let boot_nics: Vec<&str> = nic
        .iter()
        .filter(|m| m.boot)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(boot_nics, ["virtio_net"]);

    // modules.dep: kmod format, every referenced module present, full transitive closure.
    let dep_text = std::fs::read_to_string(moddir.join("modules.dep")).unwrap();
    let mut dep_lines = BTreeMap::new();
    for line in dep_text.lines() {
        let (module, deps) = line.split_once(':').expect("kmod format: path: deps");
        assert!(moddir.join(module).is_file(), "{module}");
        let deps: Vec<&str> = deps.split_whitespace().collect();
        for dep in &deps {
            assert!(moddir.join(dep).is_file(), "{dep}");
        }
        dep_lines.insert(module.to_string(), deps);
    }
    assert_eq!(dep_lines.len(), manifest.modules.len());
    let ip_vs_deps = &dep_lines["kernel/net/netfilter/ipvs/ip_vs.ko"];
    for dep in [
        "nf_conntrack.ko",
        "nf_defrag_ipv4.ko",
        "nf_defrag_ipv6.ko",
        "libcrc32c.ko",
    ] {
        assert!(
            ip_vs_deps.iter().any(|d| d.ends_with(&format!("/{dep}"))),
            "ip_vs closure lacks {dep}: {ip_vs_deps:?}"
        );
    }
    // kmod order: loading from the end of the list to its start satisfies every dependency.
    let path_of: BTreeMap<&str, &str> = manifest
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.path.as_str()))
        .collect();
    for (module, deps) in &dep_lines {
        for (i, dep) in deps.iter().enumerate() {
            let direct = &manifest
                .modules
                .iter()
                .find(|m| m.path == *dep)
                .unwrap()
                .depends;
            for d in direct {
                let pos = deps.iter().position(|x| *x == path_of[d.as_str()]);
                assert!(
                    pos.is_some_and(|p| p > i),
                    "{module}: {dep} listed after its dependency {d}"
                );
            }
        }
    }

    let alias = std::fs::read_to_string(moddir.join("modules.alias")).unwrap();
    assert!(alias.contains("\nalias net-pf-16-proto-16-family-IPVS ip_vs\n"));
    assert!(alias.contains(" virtio_net\n"));

    // modules.boot: dependencies first, no NIC drivers but virtio's, nothing missing.
    let boot_text = std::fs::read_to_string(root.path().join("etc/lb/modules.boot")).unwrap();
    let boot: Vec<&str> = boot_text.lines().collect();
    assert!(boot.contains(&"ip_vs") && boot.contains(&"virtio_net"));
    // The generic kernel has crc32c as a module: libcrc32c fails to load (ENOENT) unless its
    // soft dependency is loaded first, so both are in the boot set, crc32c first.
    let position = |name: &str| boot.iter().position(|l| *l == name);
    assert!(
        matches!((position("crc32c_generic"), position("libcrc32c")), (Some(a), Some(b)) if a < b),
        "modules.boot:\n{boot_text}"
    );
    for (i, name) in boot.iter().enumerate() {
        let module = by_name[name];
        assert!(
            !module.nic || *name == "virtio_net",
            "{name} is a NIC driver"
        );
        for dep in &module.depends {
            let pos = boot.iter().position(|b| b == dep);
            assert!(
                pos.is_some_and(|p| p < i),
                "{name} is loaded before its dependency {dep}"
            );
        }
    }
    let boot_set: BTreeSet<&str> = boot.iter().copied().collect();
    let flagged: BTreeSet<&str> = manifest
        .modules
        .iter()
        .filter(|m| m.boot)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(boot_set, flagged);

    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("etc/lb/image.json")).unwrap())
            .unwrap();
    assert_eq!(info["kernel_version"], version.as_str());

    // `image inspect` verifies the files and notices tampering.
    let inspect = image_cmd().arg("inspect").arg(&a).output().unwrap();
    assert_ok(&inspect);
    assert!(String::from_utf8_lossy(&inspect.stdout).contains(&version));
    std::fs::write(b.join("boot.ipxe"), "#!ipxe\nshell\n").unwrap();
    let inspect = image_cmd().arg("inspect").arg(&b).output().unwrap();
    assert_eq!(inspect.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("MISMATCH"));
}

#[test]
fn extras_modules_and_other_compressions() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("hello.txt");
    std::fs::write(&extra, b"hello from the host\n").unwrap();
    let add = format!("{}:/usr/share/lb/hello.txt", extra.display());

    let zst = dir.path().join("zst");
    let output = build(
        &zst,
        &[
            "--compress",
            "zstd",
            "--add",
            &add,
            "--module",
            "xt-ipvs",
            "--cmdline",
            "console=ttyS0 lb.test=1",
        ],
    );
    assert_ok(&output);
    let manifest = read_manifest(&zst);
    assert_eq!(manifest.compression, "zstd");
    assert_eq!(
        manifest.cmdline,
        "initrd=initrd.img console=ttyS0 lb.test=1"
    );
    let names: BTreeSet<&str> = manifest.modules.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains("xt_ipvs") && names.contains("x_tables"));
    let root = tempfile::tempdir().unwrap();
    let (listing, _) = unpack_initrd(
        &std::fs::read(zst.join("initrd.img")).unwrap(),
        &manifest,
        root.path(),
    );
    assert!(listing.iter().any(|l| l == "usr/share/lb/hello.txt"));
    assert_eq!(
        std::fs::read(root.path().join("usr/share/lb/hello.txt")).unwrap(),
        b"hello from the host\n"
    );
    let boot = std::fs::read_to_string(root.path().join("etc/lb/modules.boot")).unwrap();
    let pos = |n: &str| boot.lines().position(|l| l == n).unwrap();
    assert!(pos("x_tables") < pos("xt_ipvs") && pos("ip_vs") < pos("xt_ipvs"));

    // The package's vmlinuz as it is, on request (it is the one signed for Secure Boot).
    let deb_dir = unpacked_kernel_deb();
    let package_vmlinuz = std::fs::read(
        deb_dir
            .path()
            .join(format!("boot/vmlinuz-{}", manifest.kernel_version)),
    )
    .unwrap();
    let shipped = dir.path().join("shipped");
    assert_ok(&build(&shipped, &["--kernel-payload", "shipped"]));
    assert_eq!(
        std::fs::read(shipped.join("vmlinuz")).unwrap(),
        package_vmlinuz
    );
    let shipped = read_manifest(&shipped);
    assert_eq!(
        (shipped.kernel.payload.as_str(), shipped.kernel.stub_source),
        ("xz", None)
    );

    // xz: the kernel's decoder needs the CRC32 check type. One archive (`--layout single`):
    // initrd.img is an xz file as a whole, every module and firmware file in it as it is.
    let xz = dir.path().join("xz");
    assert_ok(&build(&xz, &["--compress", "xz", "--layout", "single"]));
    let single = read_manifest(&xz);
    assert_eq!(single.layout, "single");
    assert_eq!(single.segments.len(), 1);
    assert!(single
        .initramfs
        .iter()
        .all(|f| f.compression.is_none() && !f.path.ends_with(".zst")));
    assert!(single.firmware.iter().all(|f| f.compression.is_none()));
    assert_eq!(
        single.totals.kernel_decompressed_bytes,
        single.totals.initramfs_uncompressed_bytes
    );
    let initrd = std::fs::read(xz.join("initrd.img")).unwrap();
    let listing = lbtest::programs::command("xz")
        .args(["--robot", "--list"])
        .arg(xz.join("initrd.img"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("CRC32"), "{listing}");
    let cpio = decompress(&initrd, "xz");
    assert_eq!(
        cpio.len() as u64,
        read_manifest(&xz).totals.initramfs_uncompressed_bytes
    );

    // SOURCE_DATE_EPOCH becomes every entry's mtime.
    let dated = dir.path().join("dated");
    let deb = kernel_deb();
    let output = image_cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--out"])
        .arg(&dated)
        .arg("--kernel-deb")
        .arg(&deb)
        .args([
            "--init",
            busybox(),
            "--lbd",
            busybox(),
            "--compress",
            "zstd",
        ])
        .output()
        .unwrap();
    assert_ok(&output);
    let cpio = archives(
        &std::fs::read(dated.join("initrd.img")).unwrap(),
        &read_manifest(&dated),
    )
    .pop()
    .unwrap();
    let mut list = lbtest::programs::command("cpio");
    list.args(["-t", "-v", "--quiet"]);
    let verbose = String::from_utf8(pipe(list, &cpio)).unwrap();
    let init_line = verbose.lines().find(|l| l.ends_with(" init")).unwrap();
    assert!(init_line.contains("2023"), "{init_line}");
}

#[test]
fn bad_inputs_fail_clearly_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho not elf\n").unwrap();
    let script = script.to_string_lossy().into_owned();
    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    let dir_path = dir.path().to_string_lossy().into_owned();

    let bb = busybox().to_string();
    // (init, lbd, extra args, expected error text)
    let cases: Vec<(&str, &str, Vec<String>, &str)> = vec![
        (
            "/bin/ls",
            &bb,
            vec![],
            "init binary /bin/ls is dynamically linked",
        ),
        (&bb, &script, vec![], "is not an ELF file"),
        (&missing, &bb, vec![], "cannot read init binary"),
        (&bb, &dir_path, vec![], "is a directory"),
        (
            &bb,
            &bb,
            vec!["--add".into(), format!("{missing}:/x")],
            "cannot read --add file",
        ),
        (
            &bb,
            &bb,
            vec!["--add".into(), format!("{script}:/init")],
            "guest path \"/init\" is already in the image",
        ),
    ];
    for (init, lbd, args, expected) in cases {
        let deb = kernel_deb();
        let mut cmd = image_cmd();
        cmd.arg("build")
            .arg("--out")
            .arg(&out)
            .arg("--kernel-deb")
            .arg(&deb)
            .args(["--init", init, "--lbd", lbd])
            .args(&args);
        let output = cmd.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{init} {lbd} {args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: expected {expected:?} in {:?}",
            stderr(&output)
        );
        assert_no_output(&out);
    }

    // Missing kernel package, given explicitly.
    let output = image_cmd()
        .args(["build", "--out"])
        .arg(&out)
        .args([
            "--kernel-deb",
            &missing,
            "--init",
            busybox(),
            "--lbd",
            busybox(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot read package {missing}")),
        "{}",
        stderr(&output)
    );
    assert_no_output(&out);

    // No kernel package in the workspace cache.
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    let output = image_cmd()
        .current_dir(ws.path())
        .args(["build", "--out"])
        .arg(&out)
        .args(["--init", busybox(), "--lbd", busybox()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("run tools/setup.sh"),
        "{}",
        stderr(&output)
    );
    // ... nor binaries: the message says how to build them.
    std::fs::create_dir_all(ws.path().join(".cache/kernel")).unwrap();
    std::os::unix::fs::symlink(
        kernel_deb(),
        ws.path().join(".cache/kernel/linux-image-test.deb"),
    )
    .unwrap();
    let output = image_cmd()
        .args(["--root"])
        .arg(ws.path())
        .args(["build", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("cargo build --release --target x86_64-unknown-linux-gnu -p init -p lbd"),
        "{}",
        stderr(&output)
    );
    assert_no_output(&out);
    // ... nor BIRD's packages: the message says where they go and how to build without.
    let output = image_cmd()
        .args(["--root"])
        .arg(ws.path())
        .args(["build", "--out"])
        .arg(&out)
        .args(["--init", busybox(), "--lbd", busybox()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no BIRD packages in")
            && stderr(&output).contains("tools/setup.sh")
            && stderr(&output).contains("--no-bird"),
        "{}",
        stderr(&output)
    );
    assert_no_output(&out);

    // Unknown module: named, with close matches.
    let output = build(&out, &["--module", "ip_vs_rrr"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("module \"ip_vs_rrr\" is not in the kernel package")
            && err.contains("ip_vs_rr"),
        "{err}"
    );
    assert_no_output(&out);

    // An unrelated directory is never replaced.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious"), b"keep me").unwrap();
    let output = build(&out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("refusing to replace"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(out.join("precious")).unwrap(), b"keep me");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["build"],
        vec!["build", "--out", "x", "--compress", "lz4"],
        vec!["build", "--out", "x", "--add", "no-colon"],
        vec!["build", "--out", "x", "--add", "/a:relative/guest"],
        vec!["frobnicate"],
    ] {
        let output = image_cmd().args(&args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).is_empty());
    }
    assert!(!Path::new("x").exists());
}

/// The NIC driver list and the firmware its drivers request, against the image built from
/// the real kernel and firmware packages: every driver of the list is carried (as a module
/// the initramfs holds), and every firmware file a carried module requests is either in
/// `/lib/firmware` or reported, by the manifest and by a warning of the build.
#[test]
fn nic_drivers_and_their_firmware_are_carried_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bare-metal");
    let output = build(&out, &["--nic-driver", "8086:10d3"]);
    assert_ok(&output);
    let warnings = stderr(&output);
    let manifest = read_manifest(&out);
    assert_eq!(manifest.profile, "bare-metal");
    let initrd = std::fs::read(out.join("initrd.img")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let listing: BTreeSet<String> = unpack_initrd(&initrd, &manifest, root.path())
        .0
        .into_iter()
        .collect();
    let moddir = format!("lib/modules/{}", manifest.kernel_version);
    let by_name: BTreeMap<&str, &image::manifest::ModuleEntry> = manifest
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();

    // Every driver of the shipped list, and the PCI ID given on the command line.
    let list =
        image::drivers::parse_list(image::drivers::BARE_METAL_LIST, "bare-metal.txt").unwrap();
    assert_eq!(manifest.nic_drivers.len(), list.len() + 1);
    for entry in &list {
        let name = entry.spec.to_string();
        let module = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} ({}) is not in the image", entry.origin));
        assert!(module.nic, "{name} is flagged as a NIC driver");
        assert!(
            listing.contains(&format!("{moddir}/{}", module.path)),
            "{name}: {} is not in the initramfs",
            module.path
        );
    }
    let by_id = manifest.nic_drivers.last().unwrap();
    assert_eq!(
        (by_id.entry.as_str(), by_id.modules.as_slice()),
        ("8086:10d3", ["e1000e".to_string()].as_slice()),
        "a PCI ID resolves to the module whose alias names it"
    );

    // NIC drivers outside the boot set are in the uncompressed archive as .ko.zst, which
    // zstd decompresses to the package's own file; the boot set is stored as it is.
    let deb_dir = tempfile::tempdir().unwrap();
    assert!(lbtest::programs::command("dpkg-deb")
        .arg("-x")
        .arg(kernel_deb())
        .arg(deb_dir.path())
        .status()
        .unwrap()
        .success());
    let deb_moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|p| deb_dir.path().join(p).join(&manifest.kernel_version))
        .find(|p| p.is_dir())
        .expect("modules directory in the package");
    for module in &manifest.modules {
        assert_eq!(
            module.compression.is_some(),
            !module.boot,
            "{}: stored compressed exactly when not in the boot set",
            module.name
        );
    }
    for name in ["e1000e", "8139cp", "ixgbe", "mlx5_core", "mdio"] {
        let module = by_name[name];
        assert_eq!(module.compression.as_deref(), Some("zstd"), "{name}");
        assert!(module.path.ends_with(".ko.zst"), "{}", module.path);
        let stored = std::fs::read(root.path().join(&moddir).join(&module.path)).unwrap();
        let package_path = module.path.trim_end_matches(".zst");
        assert!(
            decompress(&stored, "zstd") == std::fs::read(deb_moddir.join(package_path)).unwrap(),
            "{name}: .ko.zst decompresses to the package's {package_path}"
        );
    }
    let dep = std::fs::read_to_string(root.path().join(&moddir).join("modules.dep")).unwrap();
    // bnx2x needs mdio (stored compressed too) and libcrc32c (a boot module, as it is).
    let bnx2x_line = dep
        .lines()
        .find(|l| l.contains("/bnx2x.ko"))
        .expect("bnx2x in modules.dep");
    assert!(
        bnx2x_line.starts_with(&format!("{}:", by_name["bnx2x"].path))
            && bnx2x_line.contains("/mdio.ko.zst")
            && bnx2x_line.contains("/libcrc32c.ko"),
        "modules.dep names the stored files: {bnx2x_line}"
    );
    assert!(dep.contains("/ip_vs.ko:"), "boot modules as they are");

    // Firmware: carried byte for byte (as NAME.xz, which xz decompresses to the package's
    // file, with the CRC32 check the kernel's loader verifies), or reported.
    let carried: BTreeMap<&str, &image::manifest::FirmwareEntry> = manifest
        .firmware
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut requested = 0;
    for module in &manifest.modules {
        for file in &module.firmware {
            requested += 1;
            if let Some(entry) = carried.get(file.as_str()) {
                assert_eq!(entry.compression.as_deref(), Some("xz"), "{file}");
                assert!(
                    !root.path().join("lib/firmware").join(file).exists(),
                    "{file} is only there compressed"
                );
                let stored = root.path().join(format!("lib/firmware/{file}.xz"));
                let packed = std::fs::read(&stored)
                    .unwrap_or_else(|e| panic!("{file}.xz for {}: {e}", module.name));
                assert_eq!(packed.len() as u64, entry.stored_size, "{file}");
                let data = decompress(&packed, "xz");
                assert_eq!(sha256_hex(&data), entry.sha256, "{file}");
                assert!(entry.modules.contains(&module.name), "{file}");
            } else {
                assert!(
                    module.firmware_missing.contains(file),
                    "{} requests {file}: neither carried nor reported missing",
                    module.name
                );
                assert!(
                    warnings.contains(&format!("driver {}: ", module.name)),
                    "no warning of the build names {} (missing {file}):\n{warnings}",
                    module.name
                );
            }
        }
    }
    // The drivers that cannot work without theirs have it (tools/setup.sh fetches the
    // packages), and the kernel's loader finds it where it looks.
    for (module, file) in [
        ("bnx2x", "bnx2x/bnx2x-e2-7.13.21.0.fw"),
        ("e100", "e100/d102e_ucode.bin"),
        ("ice", "intel/ice/ddp/ice.pkg"),
        ("qed", "qed/qed_init_values_zipped-8.59.1.0.bin"),
    ] {
        assert!(
            by_name[module].firmware.iter().any(|f| f == file)
                && listing.contains(&format!("lib/firmware/{file}.xz")),
            "{module}'s {file} is carried"
        );
    }
    let check = lbtest::programs::command("xz")
        .args(["--robot", "--list"])
        .arg(root.path().join("lib/firmware/e100/d102e_ucode.bin.xz"))
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(check.contains("CRC32"), "{check}");
    let t = &manifest.totals;
    eprintln!(
        "figure: bare-metal image: initrd {:.2} MiB compressed ({}), {:.2} MiB uncompressed, {:.2} MiB of it decompressed by the kernel; {} modules ({:.2} MiB), {} NIC drivers, {} of {requested} requested firmware files carried ({:.2} MiB), {} missing",
        t.initramfs_compressed_bytes as f64 / 1048576.0,
        manifest.compression,
        t.initramfs_uncompressed_bytes as f64 / 1048576.0,
        t.kernel_decompressed_bytes as f64 / 1048576.0,
        t.module_count,
        t.module_bytes as f64 / 1048576.0,
        manifest.modules.iter().filter(|m| m.nic).count(),
        t.firmware_files,
        t.firmware_bytes as f64 / 1048576.0,
        manifest.firmware_missing.len(),
    );
    // What `image inspect` shows.
    let inspect = image_cmd().arg("inspect").arg(&out).output().unwrap();
    assert_ok(&inspect);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("profile     bare-metal"), "{text}");
    assert!(
        text.contains(" ixgbe") && text.contains(" e1000e"),
        "{text}"
    );
    assert!(text.contains("e100/d102e_ucode.bin"), "{text}");

    // Without firmware every request is reported, with what the driver loses.
    let bare = dir.path().join("no-firmware");
    let output = build(&bare, &["--no-firmware"]);
    assert_ok(&output);
    let warnings = stderr(&output);
    let manifest = read_manifest(&bare);
    assert!(manifest.firmware.is_empty());
    for (module, meaning) in [
        ("bnx2x", "do not come up without it"),
        ("ice", "safe mode"),
        ("e100", "CPUSaver"),
    ] {
        let line = warnings
            .lines()
            .find(|l| l.contains(&format!("driver {module}: ")))
            .unwrap_or_else(|| panic!("no warning for {module}:\n{warnings}"));
        assert!(line.contains(meaning), "{line}");
        assert!(manifest.firmware_missing.iter().any(|f| f.module == module));
    }
}

#[test]
fn a_driver_list_that_names_what_the_kernel_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("nics.txt");
    std::fs::write(&list, "# ours\ne1000e\n\nigb 8086:ffff\n").unwrap();
    let list_arg = list.to_string_lossy().into_owned();
    let cases: [(Vec<&str>, String); 3] = [
        (
            vec!["--nic-driver", "e1000ee"],
            "--nic-driver #1: NIC driver \"e1000ee\" is not in the kernel package (close matches: e1000e".into(),
        ),
        (
            vec!["--nic-drivers", &list_arg],
            format!("{list_arg}:4: no module in the kernel package drives PCI device 8086:ffff"),
        ),
        (
            vec!["--nic-driver", "8086:10d"],
            "--nic-driver #1: \"8086:10d\" is neither a module name nor a PCI ID".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = dir.path().join("out");
        let output = build(&out, &args);
        assert!(!output.status.success(), "{args:?} built");
        assert!(
            stderr(&output).contains(&expected),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_no_output(&out);
    }

    // The cloud kernel has no bare-metal drivers: the error says so and what to do.
    let cloud = image::workspace::default_kernel_deb(&repo_root(), image::drivers::Profile::Cloud)
        .expect("tools/setup.sh fetches the cloud kernel too");
    let out = dir.path().join("out");
    let output = image_cmd()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--kernel-deb")
        .arg(&cloud)
        .args(["--init", busybox(), "--lbd", busybox()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("is the cloud flavour") && text.contains("--profile cloud"),
        "{text}"
    );
    // ... and with its own profile it builds, with its own drivers only.
    let output = image_cmd()
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--profile")
        .arg("cloud")
        .args(["--init", busybox(), "--lbd", busybox()])
        .output()
        .unwrap();
    assert_ok(&output);
    let manifest = read_manifest(&out);
    assert_eq!(manifest.profile, "cloud");
    assert!(manifest.kernel_version.contains("-cloud-"));
    let nic: BTreeSet<&str> = manifest
        .modules
        .iter()
        .filter(|m| m.nic)
        .map(|m| m.name.as_str())
        .collect();
    assert!(nic.contains("virtio_net") && nic.contains("ena"), "{nic:?}");
    assert!(!nic.contains("e1000e"), "{nic:?}");
}
