//! Kernel modules: the boot set in dependency order, and coldplug of device drivers by
//! modalias. The image builder writes `modules.dep` and `modules.alias` in kmod's formats
//! (the Debian package has none) and `/etc/lb/modules.boot`, the boot set in load order.
//! Drivers for hardware a box may not have are stored as `NAME.ko.zst` (the kernel then
//! only copies them at boot, see the image crate's `layout`); the kernel has no in-kernel
//! module decompression, so those are decompressed here and loaded from memory.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// `modules.dep` and `modules.alias` of one kernel, parsed.
#[derive(Clone, Debug, Default)]
pub struct ModuleIndex {
    /// Directory holding modules.dep (`/lib/modules/<release>`).
    pub root: PathBuf,
    /// Module name (underscores) → (path relative to root, dependency names).
    pub modules: HashMap<String, (String, Vec<String>)>,
    /// (pattern, module name), in file order.
    pub aliases: Vec<(String, String)>,
    /// `modules.softdep`: module → (load before it, load after it), as modprobe does; a
    /// NIC driver's PHY driver is often only a soft dependency (r8169 → realtek).
    pub softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
}

/// Module names treat `-` and `_` alike; the kernel reports `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn name_of_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

impl ModuleIndex {
    /// Parses kmod's text formats.
    pub fn parse(root: &Path, modules_dep: &str, modules_alias: &str) -> ModuleIndex {
        let mut modules = HashMap::new();
        for line in modules_dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(name_of_path).collect();
            modules.insert(name_of_path(path), (path.to_string(), deps));
        }
        let aliases = modules_alias
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next()? == "alias").then_some(())?;
                Some((words.next()?.to_string(), normalize(words.next()?)))
            })
            .collect();
        ModuleIndex {
            root: root.to_path_buf(),
            modules,
            aliases,
            softdeps: HashMap::new(),
        }
    }

    /// Adds kmod's `modules.softdep` (`softdep NAME pre: A B post: C`).
    pub fn with_softdeps(mut self, text: &str) -> ModuleIndex {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(name) = words.next() else { continue };
            let entry = self.softdeps.entry(normalize(name)).or_default();
            let mut post = false;
            for word in words {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    dep if post => entry.1.push(normalize(dep)),
                    dep => entry.0.push(normalize(dep)),
                }
            }
        }
        self
    }

    /// Reads the index of the running kernel.
    pub fn load(root: &Path) -> std::io::Result<ModuleIndex> {
        let dep = std::fs::read_to_string(root.join("modules.dep"))?;
        let alias = std::fs::read_to_string(root.join("modules.alias")).unwrap_or_default();
        let softdep = std::fs::read_to_string(root.join("modules.softdep")).unwrap_or_default();
        Ok(ModuleIndex::parse(root, &dep, &alias).with_softdeps(&softdep))
    }

    /// `name` and its dependencies, dependencies first, each once. Unknown names are
    /// returned in `Err` (the caller decides whether that matters).
    pub fn closure(&self, name: &str) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&normalize(name), &mut seen, &mut order, 0)?;
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err(format!(
                "module dependencies of {name} are nested too deep (a cycle?)"
            ));
        }
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let (_, deps) = self
            .modules
            .get(name)
            .ok_or_else(|| format!("module {name} is not in modules.dep"))?;
        for d in deps {
            self.visit(d, seen, order, depth + 1)?;
        }
        order.push(name.to_string());
        Ok(())
    }

    /// Modules whose alias pattern matches a device's modalias.
    pub fn matching(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let text = modalias.as_bytes();
        for (pattern, module) in &self.aliases {
            // Most patterns name a vendor and device before their first wildcard: comparing
            // that literal prefix first skips the glob for nearly all of the thousands of
            // aliases a driver list brings, at every device of every coldplug pass.
            let pattern = pattern.as_bytes();
            let literal = pattern
                .iter()
                .position(|b| matches!(b, b'*' | b'?' | b'['))
                .unwrap_or(pattern.len());
            if !text.starts_with(&pattern[..literal]) {
                continue;
            }
            if glob_match(pattern, text) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }
}

/// fnmatch(3) without flags: `*`, `?` and `[...]` classes (with `!`/`^` negation and ranges),
/// which is what modules.alias patterns use.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let (mut star_p, mut star_t) = (usize::MAX, 0usize);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p != usize::MAX {
            p = star_p + 1;
            star_t += 1;
            t = star_t;
            continue;
        }
        return false;
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[start] == b'['`; returns whether it
/// matched and the index after `]`, or None for an unterminated class.
fn class_match(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let ch = pattern[i];
        if ch == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            if (ch..=pattern[i + 2]).contains(&c) {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Outcome of loading one module.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    AlreadyLoaded,
}

/// How a module file is stored, by its name in `modules.dep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleFile {
    /// `NAME.ko`: handed to the kernel as it is (finit_module).
    Plain,
    /// `NAME.ko.zst`: one zstd frame, decompressed here and handed over as a buffer
    /// (init_module).
    Zstd,
}

impl ModuleFile {
    pub fn of(path: &str) -> Result<ModuleFile, String> {
        if path.ends_with(".ko") {
            Ok(ModuleFile::Plain)
        } else if path.ends_with(".ko.zst") {
            Ok(ModuleFile::Zstd)
        } else {
            Err(format!("{path}: neither a .ko nor a .ko.zst module file"))
        }
    }
}

/// Decompresses a `.ko.zst` module: one zstd frame, whose content checksum must match (a
/// damaged file is refused here, by name, rather than by the kernel's ELF loader).
pub use lbd::packed::decompress_zstd;

/// Loads modules with finit_module(2), or init_module(2) after decompressing a `.ko.zst`,
/// remembering what is loaded.
pub struct Loader {
    pub index: ModuleIndex,
    loaded: HashSet<String>,
}

impl Loader {
    pub fn new(index: ModuleIndex) -> Loader {
        Loader {
            index,
            loaded: HashSet::new(),
        }
    }

    /// Loads `name` and its dependencies, with its soft dependencies around it when the image
    /// carries them. Returns the names newly loaded.
    pub fn load_with_deps(&mut self, name: &str) -> Result<Vec<String>, String> {
        let (pre, post) = self
            .index
            .softdeps
            .get(&normalize(name))
            .cloned()
            .unwrap_or_default();
        let mut newly = Vec::new();
        newly.extend(self.load_soft(name, &pre));
        newly.extend(self.load_closure(name)?);
        newly.extend(self.load_soft(name, &post));
        Ok(newly)
    }

    /// Soft dependencies: a module name or an alias (`crc32c`); ones the image does not
    /// carry are skipped, failures only logged (modprobe does the same).
    fn load_soft(&mut self, of: &str, words: &[String]) -> Vec<String> {
        let mut newly = Vec::new();
        for word in words {
            let targets = if self.index.modules.contains_key(word) {
                vec![word.clone()]
            } else {
                self.index.matching(word)
            };
            for soft in targets {
                if self.loaded.contains(&soft) || soft == normalize(of) {
                    continue;
                }
                match self.load_closure(&soft) {
                    Ok(more) => newly.extend(more),
                    Err(e) => tracing::warn!("soft dependency {soft} of {of}: {e}"),
                }
            }
        }
        newly
    }

    fn load_closure(&mut self, name: &str) -> Result<Vec<String>, String> {
        let order = self.index.closure(name)?;
        let mut newly = Vec::new();
        for m in order {
            if self.loaded.contains(&m) {
                continue;
            }
            match self.load_one(&m)? {
                LoadOutcome::Loaded => newly.push(m.clone()),
                LoadOutcome::AlreadyLoaded => {}
            }
            self.loaded.insert(m);
        }
        Ok(newly)
    }

    fn load_one(&self, name: &str) -> Result<LoadOutcome, String> {
        // Built-in or loaded earlier (e.g. by the kernel's request_module).
        if Path::new("/sys/module")
            .join(name)
            .join("initstate")
            .exists()
        {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let (rel, _) = self
            .index
            .modules
            .get(name)
            .ok_or_else(|| format!("module {name} is not in modules.dep"))?;
        let path = self.index.root.join(rel);
        let params = CString::new(default_params(name)).unwrap_or_default();
        let (call, result) = match ModuleFile::of(rel)? {
            ModuleFile::Plain => {
                let file = std::fs::File::open(&path)
                    .map_err(|e| format!("open {}: {e}", path.display()))?;
                let result =
                    nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty());
                ("finit_module", result)
            }
            ModuleFile::Zstd => {
                let packed =
                    std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
                let started = std::time::Instant::now();
                let image =
                    decompress_zstd(&packed).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::debug!(
                    module = name,
                    packed = packed.len(),
                    bytes = image.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "module decompressed"
                );
                ("init_module", nix::kmod::init_module(&image, &params))
            }
        };
        match result {
            Ok(()) => Ok(LoadOutcome::Loaded),
            Err(nix::errno::Errno::EEXIST) => Ok(LoadOutcome::AlreadyLoaded),
            Err(e) => Err(format!("{call} {}: {}", path.display(), e.desc())),
        }
    }

    /// Coldplug: load the drivers for every device present (`/sys/bus/*/devices/*/modalias`).
    /// A loaded driver can bring devices of its own (a NIC's MDIO bus and PHYs, virtio
    /// devices behind virtio_pci), so the scan repeats until a pass loads nothing (at most
    /// [`COLDPLUG_PASSES`]). Returns the modules loaded, and errors per module.
    pub fn coldplug(&mut self, sys_bus: &Path) -> (Vec<String>, Vec<String>) {
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        let mut failed: HashSet<String> = HashSet::new();
        for _ in 0..COLDPLUG_PASSES {
            let before = loaded.len();
            for alias in device_modaliases(sys_bus) {
                for module in self.index.matching(&alias) {
                    if self.loaded.contains(&module) || failed.contains(&module) {
                        continue;
                    }
                    match self.load_with_deps(&module) {
                        Ok(newly) => loaded.extend(newly),
                        Err(e) => {
                            failed.insert(module);
                            errors.push(e)
                        }
                    }
                }
            }
            if loaded.len() == before {
                break;
            }
        }
        (loaded, errors)
    }
}

/// Coldplug scans at most this many times (each loads the drivers of devices the last one's
/// drivers brought).
pub const COLDPLUG_PASSES: usize = 4;

/// Parameters some modules need on an appliance: `dummy` and `bonding` otherwise create
/// `dummy0` / `bond0` on load, links that nobody configured and that look like NICs.
pub fn default_params(name: &str) -> &'static str {
    match name {
        "dummy" => "numdummies=0",
        "bonding" => "max_bonds=0",
        _ => "",
    }
}

/// Every device modalias under `sys_bus` (normally `/sys/bus`).
pub fn device_modaliases(sys_bus: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(buses) = std::fs::read_dir(sys_bus) else {
        return out;
    };
    let mut buses: Vec<PathBuf> = buses.flatten().map(|e| e.path()).collect();
    buses.sort();
    for bus in buses {
        let Ok(devices) = std::fs::read_dir(bus.join("devices")) else {
            continue;
        };
        let mut devices: Vec<PathBuf> = devices.flatten().map(|e| e.path()).collect();
        devices.sort();
        for dev in devices {
            if let Ok(text) = std::fs::read_to_string(dev.join("modalias")) {
                let text = text.trim();
                if !text.is_empty() {
                    out.push(text.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko\n\
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko\n\
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:\n\
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:\n\
kernel/lib/libcrc32c.ko:\n\
kernel/net/netfilter/ipvs/ip_vs_wlc.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko\n\
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
kernel/net/core/failover.ko:\n";
    const ALIAS: &str = "# Aliases extracted from modules themselves.\nalias virtio:d00000001v* virtio_net\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias acpi*:LNXPWRBN:* button\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(Path::new("/lib/modules/x"), DEP, ALIAS)
    }

    #[test]
    fn closure_puts_dependencies_first() {
        let order = index().closure("ip_vs_wlc").unwrap();
        assert_eq!(order.last().unwrap(), "ip_vs_wlc");
        let pos = |n: &str| order.iter().position(|m| m == n).unwrap();
        assert!(pos("nf_conntrack") < pos("ip_vs"));
        assert!(pos("libcrc32c") < pos("nf_conntrack"));
        assert_eq!(order.len(), 6, "each module once: {order:?}");
        assert_eq!(
            index().closure("virtio-net").unwrap(),
            ["failover", "net_failover", "virtio_net"]
        );
        assert!(index().closure("nope").unwrap_err().contains("nope"));
    }

    #[test]
    fn modalias_matching() {
        let ix = index();
        assert_eq!(ix.matching("virtio:d00000001v00001AF4"), ["virtio_net"]);
        assert_eq!(
            ix.matching("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(ix.matching("acpi:LNXPWRBN:"), ["button"]);
        assert!(ix
            .matching("pci:v00008086d00001000sv0sd0bc02sc00i00")
            .is_empty());
    }

    #[test]
    fn softdeps_are_read_in_kmods_format() {
        let index = index().with_softdeps(
            "# Soft dependencies extracted from modules themselves.\nsoftdep r8169 pre: realtek\nsoftdep a-b pre: c post: d-e f\n",
        );
        assert_eq!(index.softdeps["r8169"], (vec!["realtek".into()], vec![]));
        assert_eq!(
            index.softdeps["a_b"],
            (vec!["c".into()], vec!["d_e".into(), "f".into()])
        );
    }

    #[test]
    fn compressed_modules_are_named_and_decompressed() {
        assert_eq!(ModuleFile::of("kernel/a/e1000e.ko"), Ok(ModuleFile::Plain));
        assert_eq!(
            ModuleFile::of("kernel/a/e1000e.ko.zst"),
            Ok(ModuleFile::Zstd)
        );
        assert!(ModuleFile::of("kernel/a/e1000e.ko.xz").is_err());
        assert_eq!(name_of_path("kernel/a/e1000-e.ko.zst"), "e1000_e");

        // As the image builder writes them: level 19, content size and checksum.
        let module: Vec<u8> = b"\x7fELF"
            .iter()
            .copied()
            .chain((0..200_000u32).flat_map(|i| ((i * 31) % 97).to_le_bytes()))
            .collect();
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder
            .set_pledged_src_size(Some(module.len() as u64))
            .unwrap();
        std::io::Write::write_all(&mut encoder, &module).unwrap();
        let packed = encoder.finish().unwrap();
        assert_eq!(decompress_zstd(&packed).unwrap(), module);

        // A flipped byte in the data is caught, as is a cut file or something else entirely.
        let mut damaged = packed.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x40;
        assert!(decompress_zstd(&damaged).is_err());
        assert!(decompress_zstd(&packed[..packed.len() - 9]).is_err());
        assert!(decompress_zstd(&module)
            .unwrap_err()
            .contains("not a zstd frame"));
    }

    #[test]
    fn globbing() {
        assert!(glob_match(b"a*c", b"abbbc"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"a?c", b"ac"));
        assert!(glob_match(b"usb:v*p*d*dc[0-9]*", b"usb:v1p2d3dc7x"));
        assert!(!glob_match(b"x[!0-9]", b"x5"));
        assert!(glob_match(b"x[!0-9]", b"xa"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"abc", b"abcd"));
    }
}
