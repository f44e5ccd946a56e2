//! ELF reading: a kernel module's `.modinfo` section (`key=value` strings separated by NULs),
//! the check that a binary is a static x86-64 executable, and what the dynamic loader needs to
//! run a dynamically linked program (`PT_INTERP`, `DT_NEEDED`, `DT_SONAME`, `DT_RUNPATH`).
//!
//! A Debian kernel package ships no `modules.dep` (depmod runs at install time), so the
//! dependencies come from each `.ko`'s own `depends=` entry.

use object::read::elf::{ElfFile64, FileHeader};
use object::{Endianness, Object, ObjectSection};
use thiserror::Error;

/// The parts of `.modinfo` the image builder uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=` (absent in very old kernels; then the file name is used).
    pub name: Option<String>,
    /// `depends=a,b`: modules that must be loaded first (hard dependencies).
    pub depends: Vec<String>,
    /// `alias=` patterns, in the order the module lists them (e.g. `pci:v00008086d*...`).
    pub aliases: Vec<String>,
    /// `softdep=` values verbatim (e.g. `pre: crc32c`), as kmod writes them to modules.softdep.
    pub softdeps: Vec<String>,
    /// `firmware=` files the driver may request (not shipped in the kernel package).
    pub firmware: Vec<String>,
    /// `vermagic=` (starts with the kernel release the module was built for).
    pub vermagic: Option<String>,
}

#[derive(Debug, Error)]
pub enum ModinfoError {
    #[error("not a 64-bit ELF object: {0}")]
    NotElf(#[source] object::Error),
    #[error("has no .modinfo section (not a kernel module?)")]
    NoModinfo,
    #[error("cannot read its .modinfo section: {0}")]
    BadSection(#[source] object::Error),
}

/// Parses the raw bytes of a `.modinfo` section. Unknown keys are ignored; empty strings (the
/// section is padded with NULs) are skipped.
pub fn parse_modinfo(section: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for raw in section.split(|&b| b == 0) {
        if raw.is_empty() {
            continue;
        }
        let entry = String::from_utf8_lossy(raw);
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        match key {
            "name" => info.name = Some(value.to_string()),
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            ),
            "alias" => info.aliases.push(value.to_string()),
            "softdep" => info.softdeps.push(value.to_string()),
            "firmware" => info.firmware.push(value.to_string()),
            "vermagic" => info.vermagic = Some(value.to_string()),
            _ => {}
        }
    }
    info
}

/// Finds and parses `.modinfo` in a module's ELF image.
pub fn modinfo_from_elf(data: &[u8]) -> Result<ModInfo, ModinfoError> {
    let elf = ElfFile64::<Endianness>::parse(data).map_err(ModinfoError::NotElf)?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or(ModinfoError::NoModinfo)?;
    let bytes = section.data().map_err(ModinfoError::BadSection)?;
    Ok(parse_modinfo(bytes))
}

/// Why a binary cannot be PID 1 / lbd in the initramfs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BinaryKindError {
    #[error("is not an ELF file")]
    NotElf,
    #[error("is not a 64-bit little-endian ELF file")]
    Not64BitLe,
    #[error("is built for ELF machine {0}, not x86-64 (62)")]
    WrongMachine(u16),
    #[error("is not an executable (ELF type {0}; expected EXEC or static-pie DYN)")]
    NotExecutable(u16),
    #[error("is dynamically linked (program interpreter {0:?}); build it with -C target-feature=+crt-static")]
    Dynamic(String),
    #[error("is a malformed ELF file: {0}")]
    Malformed(String),
}

/// Accepts only a static x86-64 ELF executable: ET_EXEC, or ET_DYN without PT_INTERP
/// (a static-pie, which is what `+crt-static` produces for x86_64-unknown-linux-gnu).
pub fn check_static_x86_64(data: &[u8]) -> Result<(), BinaryKindError> {
    use object::elf::{EM_X86_64, ET_DYN, ET_EXEC, PT_INTERP};

    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(BinaryKindError::NotElf);
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little endian).
    if data.len() < 6 || data[4] != 2 || data[5] != 1 {
        return Err(BinaryKindError::Not64BitLe);
    }
    let header = object::elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|e| BinaryKindError::Malformed(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| BinaryKindError::Malformed(e.to_string()))?;
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(BinaryKindError::WrongMachine(machine.0));
    }
    let kind = header.e_type(endian);
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(BinaryKindError::NotExecutable(kind.0));
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| BinaryKindError::Malformed(e.to_string()))?;
    use object::read::elf::ProgramHeader;
    if segments.is_empty() {
        return Err(BinaryKindError::NotExecutable(kind.0));
    }
    for ph in segments {
        if ph.p_type(endian) == PT_INTERP {
            let interp = ph
                .data(endian, data)
                .map(|d| {
                    String::from_utf8_lossy(d)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|_| "?".to_string());
            return Err(BinaryKindError::Dynamic(interp));
        }
    }
    Ok(())
}

/// What the dynamic loader reads from a dynamically linked x86-64 executable or shared object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// `PT_INTERP`: the program interpreter (`/lib64/ld-linux-x86-64.so.2`); executables only.
    pub interp: Option<String>,
    /// `DT_SONAME`: the name a shared object is known by.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order: the shared objects to load first, by file name.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` and `DT_RPATH` directories (`:`-separated in the file), searched before the
    /// loader's default directories.
    pub runpath: Vec<String>,
}

/// Why an ELF file's dynamic information cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DynamicError {
    #[error("is not an ELF file")]
    NotElf,
    #[error("is not a 64-bit little-endian ELF file")]
    Not64BitLe,
    #[error("is built for ELF machine {0}, not x86-64 (62)")]
    WrongMachine(u16),
    #[error("is a malformed ELF file: {0}")]
    Malformed(String),
}

/// Reads `PT_INTERP` and the dynamic section of an x86-64 ELF file. A static file (no dynamic
/// section) gives an empty [`DynamicInfo`]. `$ORIGIN` in a run path is left as written.
pub fn dynamic_info(data: &[u8]) -> Result<DynamicInfo, DynamicError> {
    use object::elf::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, EM_X86_64, PT_INTERP};
    use object::read::elf::{Dyn, ProgramHeader};

    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(DynamicError::NotElf);
    }
    if data.len() < 6 || data[4] != 2 || data[5] != 1 {
        return Err(DynamicError::Not64BitLe);
    }
    let malformed = |e: object::Error| DynamicError::Malformed(e.to_string());
    let header = object::elf::FileHeader64::<Endianness>::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(DynamicError::WrongMachine(machine.0));
    }
    let mut info = DynamicInfo::default();
    for ph in header.program_headers(endian, data).map_err(malformed)? {
        if ph.p_type(endian) == PT_INTERP {
            let raw = ph
                .data(endian, data)
                .map_err(|()| DynamicError::Malformed("PT_INTERP lies outside the file".into()))?;
            info.interp = Some(c_string(raw));
        }
    }
    let sections = header.sections(endian, data).map_err(malformed)?;
    let Some((entries, link)) = sections.dynamic(endian, data).map_err(malformed)? else {
        return Ok(info);
    };
    let strings = sections.strings(endian, data, link).map_err(malformed)?;
    for entry in entries {
        let tag = entry.d_tag(endian);
        if tag == object::elf::DT_NULL {
            break;
        }
        let text = || {
            entry
                .string(endian, strings)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .map_err(malformed)
        };
        match tag {
            DT_NEEDED => info.needed.push(text()?),
            DT_SONAME => info.soname = Some(text()?),
            DT_RUNPATH | DT_RPATH => info.runpath.extend(
                text()?
                    .split(':')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    Ok(info)
}

fn c_string(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modinfo_strings() {
        let raw = b"parm=conn_tab_bits:Set connections' hash size\0\
            license=GPL\0alias=net-pf-16-proto-16-family-IPVS\0\
            depends=nf_conntrack,libcrc32c,nf_defrag_ipv6\0retpoline=Y\0intree=Y\0\
            name=ip_vs\0softdep=pre: crc32c\0firmware=x/y.bin\0\
            vermagic=6.1.0-56-cloud-amd64 SMP preempt mod_unload modversions \0\0\0";
        let info = parse_modinfo(raw);
        assert_eq!(info.name.as_deref(), Some("ip_vs"));
        assert_eq!(
            info.depends,
            ["nf_conntrack", "libcrc32c", "nf_defrag_ipv6"]
        );
        assert_eq!(info.aliases, ["net-pf-16-proto-16-family-IPVS"]);
        assert_eq!(info.softdeps, ["pre: crc32c"]);
        assert_eq!(info.firmware, ["x/y.bin"]);
        assert!(info.vermagic.unwrap().starts_with("6.1.0-56-cloud-amd64 "));
    }

    #[test]
    fn empty_depends_means_none() {
        let info = parse_modinfo(b"depends=\0name=libcrc32c\0alias=a\0alias=b\0");
        assert!(info.depends.is_empty());
        assert_eq!(info.aliases, ["a", "b"]);
    }

    #[test]
    fn rejects_non_elf_and_non_modules() {
        assert!(matches!(
            modinfo_from_elf(b"not an elf"),
            Err(ModinfoError::NotElf(_))
        ));
        // A real ELF executable without .modinfo.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(
            modinfo_from_elf(&exe),
            Err(ModinfoError::NoModinfo)
        ));
    }

    #[test]
    fn reads_the_dynamic_information_of_this_test_binary() {
        // The test binary is a dynamically linked glibc executable: it has a loader and needs
        // libc, and is not a shared object (no SONAME).
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = dynamic_info(&exe).unwrap();
        assert!(
            info.interp.as_deref().unwrap().contains("ld-linux"),
            "{info:?}"
        );
        assert!(info.needed.iter().any(|n| n == "libc.so.6"), "{info:?}");
        assert_eq!(info.soname, None);
        assert_eq!(dynamic_info(b"#!/bin/sh\n"), Err(DynamicError::NotElf));
        let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
        elf32.resize(64, 0);
        assert_eq!(dynamic_info(&elf32), Err(DynamicError::Not64BitLe));
    }

    #[test]
    fn binary_checks() {
        assert_eq!(
            check_static_x86_64(b"#!/bin/sh\n"),
            Err(BinaryKindError::NotElf)
        );
        let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
        elf32.resize(64, 0);
        assert_eq!(
            check_static_x86_64(&elf32),
            Err(BinaryKindError::Not64BitLe)
        );
        // This test binary is linked dynamically against glibc.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        match check_static_x86_64(&exe) {
            Err(BinaryKindError::Dynamic(interp)) => assert!(interp.contains("ld-linux")),
            other => panic!("expected Dynamic, got {other:?}"),
        }
    }
}
