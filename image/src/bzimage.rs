//! Reading an x86 `bzImage` (the kernel package's `vmlinuz`): the setup header's version string
//! and compressed payload, the payload's format, and what the payload holds once decompressed
//! (the kernel's ELF image followed by its relocation table).
//!
//! The payload is what the boot stub decompresses before the kernel runs. Debian's generic
//! kernel ships it xz-compressed, which costs about 0.75 s of CPU at every boot on hardware and
//! 3–4 s under QEMU's TCG; [`crate::restub`] gives the same kernel an lz4 payload. This
//! module is the pure part: parsing, and the checks that the kernel inside stays byte for byte
//! the package's.

use std::io::Read;

use object::read::elf::{ElfFile64, FileHeader};
use object::{Endianness, Object, ObjectSection};
use thiserror::Error;

/// Offsets in the setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS: usize = 0x1f1;
const HEADER_MAGIC: usize = 0x202;
const VERSION: usize = 0x206;
const KERNEL_VERSION: usize = 0x20e;
const PAYLOAD_OFFSET: usize = 0x248;
const PAYLOAD_LENGTH: usize = 0x24c;
/// `payload_offset` and `payload_length` came with boot protocol 2.08.
const MIN_PROTOCOL: u16 = 0x0208;

/// How a bzImage's payload is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    Gzip,
    Bzip2,
    Lzma,
    Xz,
    Lzo,
    Lz4,
    Zstd,
}

impl PayloadFormat {
    fn sniff(payload: &[u8]) -> Option<Self> {
        const MAGICS: [(&[u8], PayloadFormat); 7] = [
            (&[0x1f, 0x8b], PayloadFormat::Gzip),
            (b"BZh", PayloadFormat::Bzip2),
            (&[0x5d, 0x00, 0x00], PayloadFormat::Lzma),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], PayloadFormat::Xz),
            (&[0x89, b'L', b'Z', b'O'], PayloadFormat::Lzo),
            (&[0x02, 0x21, 0x4c, 0x18], PayloadFormat::Lz4),
            (&[0x28, 0xb5, 0x2f, 0xfd], PayloadFormat::Zstd),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| payload.starts_with(magic))
            .map(|&(_, f)| f)
    }

    /// The name kbuild's `CONFIG_KERNEL_*` option uses (`xz`, `zstd`...).
    pub fn name(self) -> &'static str {
        match self {
            PayloadFormat::Gzip => "gzip",
            PayloadFormat::Bzip2 => "bzip2",
            PayloadFormat::Lzma => "lzma",
            PayloadFormat::Xz => "xz",
            PayloadFormat::Lzo => "lzo",
            PayloadFormat::Lz4 => "lz4",
            PayloadFormat::Zstd => "zstd",
        }
    }

    /// The `CONFIG_KERNEL_*` option that selects this format.
    pub fn config_option(self) -> String {
        format!("CONFIG_KERNEL_{}", self.name().to_ascii_uppercase())
    }

    /// Every format, for rewriting a kernel config's choice.
    pub const ALL: [PayloadFormat; 7] = [
        PayloadFormat::Gzip,
        PayloadFormat::Bzip2,
        PayloadFormat::Lzma,
        PayloadFormat::Xz,
        PayloadFormat::Lzo,
        PayloadFormat::Lz4,
        PayloadFormat::Zstd,
    ];
}

/// A parsed bzImage: borrowed slices of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzImage<'a> {
    /// Boot protocol version (`0x020f` for 6.1).
    pub protocol: u16,
    /// `6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian ...`.
    pub version: String,
    /// The compressed kernel, the decompressed size's four bytes at its end included.
    pub payload: &'a [u8],
    pub format: PayloadFormat,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BzImageError {
    #[error("not a bzImage: {0}")]
    NotBzImage(String),
    #[error("its boot protocol {0:#06x} is older than 2.08 (no payload fields)")]
    OldProtocol(u16),
    #[error("its payload ({offset} + {length} bytes after the setup code) lies outside the file ({file} bytes)")]
    PayloadOutside {
        offset: usize,
        length: usize,
        file: usize,
    },
    #[error("its payload starts with {0}, which is no compression format the kernel knows")]
    UnknownFormat(String),
    #[error("its {0} payload cannot be decompressed here")]
    Unsupported(&'static str),
    #[error("its {format} payload does not decompress: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    #[error("its payload decompresses to {got} bytes, but its trailer says {expected}")]
    SizeMismatch { got: usize, expected: usize },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses the setup header and finds the payload.
pub fn parse(file: &[u8]) -> Result<BzImage<'_>, BzImageError> {
    if file.len() < 0x270 {
        return Err(BzImageError::NotBzImage(format!(
            "{} bytes is shorter than a setup header",
            file.len()
        )));
    }
    if &file[HEADER_MAGIC..HEADER_MAGIC + 4] != b"HdrS" {
        return Err(BzImageError::NotBzImage(
            "no HdrS magic in the setup header".into(),
        ));
    }
    let protocol = u16_at(file, VERSION);
    if protocol < MIN_PROTOCOL {
        return Err(BzImageError::OldProtocol(protocol));
    }
    // A setup_sects of 0 means 4 (boot.rst).
    let setup_sects = match file[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let protected_mode = (setup_sects + 1) * 512;
    let offset = u32_at(file, PAYLOAD_OFFSET) as usize;
    let length = u32_at(file, PAYLOAD_LENGTH) as usize;
    let start = protected_mode + offset;
    let payload = start
        .checked_add(length)
        .and_then(|end| file.get(start..end))
        .filter(|p| p.len() > 4)
        .ok_or(BzImageError::PayloadOutside {
            offset,
            length,
            file: file.len(),
        })?;
    let format = PayloadFormat::sniff(payload).ok_or_else(|| {
        BzImageError::UnknownFormat(
            payload[..payload.len().min(6)]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    })?;
    // kernel_version points into the setup code, 0x200 before where it counts from.
    let version = match usize::from(u16_at(file, KERNEL_VERSION)) {
        0 => String::new(),
        p => {
            let at = p + 0x200;
            let text = file.get(at..protected_mode).unwrap_or_default();
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            String::from_utf8_lossy(&text[..end]).into_owned()
        }
    };
    Ok(BzImage {
        protocol,
        version,
        payload,
        format,
    })
}

impl BzImage<'_> {
    /// The decompressed payload (`vmlinux.bin` and its relocations), checked against the size
    /// kbuild appends to every x86 payload.
    pub fn decompress(&self) -> Result<Vec<u8>, BzImageError> {
        let (data, trailer) = self.payload.split_at(self.payload.len() - 4);
        let expected = u32_at(trailer, 0) as usize;
        let corrupt = |e: std::io::Error| BzImageError::Corrupt {
            format: self.format.name(),
            reason: e.to_string(),
        };
        let mut out = Vec::with_capacity(expected);
        match self.format {
            // One stream: what follows it (padding) is not the kernel's.
            PayloadFormat::Xz => {
                liblzma::read::XzDecoder::new(data)
                    .read_to_end(&mut out)
                    .map_err(corrupt)?;
            }
            PayloadFormat::Zstd => {
                zstd::stream::read::Decoder::new(data)
                    .map_err(corrupt)?
                    .single_frame()
                    .read_to_end(&mut out)
                    .map_err(corrupt)?;
            }
            PayloadFormat::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .map_err(corrupt)?;
            }
            PayloadFormat::Lz4 => {
                out = lz4_legacy(data, expected).map_err(|reason| BzImageError::Corrupt {
                    format: "lz4",
                    reason,
                })?;
            }
            other => return Err(BzImageError::Unsupported(other.name())),
        }
        if out.len() != expected {
            return Err(BzImageError::SizeMismatch {
                got: out.len(),
                expected,
            });
        }
        Ok(out)
    }
}

/// LZ4's legacy format, as `lz4 -l` writes it and the kernel's `unlz4` reads it: the magic,
/// then blocks of at most 8 MiB, each after its compressed size (a repeated magic is skipped).
fn lz4_legacy(data: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    const MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
    const BLOCK: usize = 8 << 20;
    let mut out = vec![0u8; expected];
    let (mut at, mut written) = (0, 0);
    while at < data.len() {
        let word = data
            .get(at..at + 4)
            .ok_or_else(|| format!("a block header cut short at byte {at}"))?;
        at += 4;
        if word == MAGIC {
            continue;
        }
        let size = u32::from_le_bytes(word.try_into().expect("4 bytes")) as usize;
        let block = data
            .get(at..at + size)
            .ok_or_else(|| format!("a {size}-byte block at byte {at} runs past the end"))?;
        at += size;
        let room = (expected - written).min(BLOCK);
        let n = lz4_flex::block::decompress_into(block, &mut out[written..written + room])
            .map_err(|e| format!("the block at byte {}: {e}", at - size))?;
        written += n;
    }
    out.truncate(written);
    Ok(out)
}

/// The release, builder and build string a kernel's version line is made of:
/// `RELEASE (USER@HOST) UTS_VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelVersion {
    /// `6.1.0-57-amd64`.
    pub release: String,
    /// `debian-kernel`.
    pub user: String,
    /// `lists.debian.org`.
    pub host: String,
    /// `#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)`.
    pub uts_version: String,
}

impl KernelVersion {
    pub fn parse(line: &str) -> Option<Self> {
        let (release, rest) = line.split_once(" (")?;
        let (by, uts_version) = rest.split_once(") ")?;
        let (user, host) = by.split_once('@')?;
        let ok = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        (ok(release) && ok(user) && ok(host) && uts_version.starts_with('#')).then(|| Self {
            release: release.into(),
            user: user.into(),
            host: host.into(),
            uts_version: uts_version.into(),
        })
    }
}

/// A decompressed payload in its two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadParts<'a> {
    /// The kernel's ELF image (`vmlinux` with symbols and relocation sections stripped).
    pub elf: &'a [u8],
    /// The relocation table the boot stub applies when it moves the kernel (KASLR): 32-bit
    /// entries, starting with a zero separator.
    pub relocs: &'a [u8],
}

/// The symbols the boot stub is built with (`voffset.h`), each from where the kernel's linker
/// script puts it: `_text` opens `.text`, `__start_rodata` opens `.rodata`, `__bss_start`
/// opens `.bss`, and `_end` is the page-aligned end of `.brk`, the last section of the kernel
/// proper (arch/x86/kernel/vmlinux.lds.S).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StubSymbols {
    pub text: u64,
    pub start_rodata: u64,
    pub bss_start: u64,
    pub end: u64,
}

impl StubSymbols {
    /// As `nm` prints them, which is what kbuild reads.
    pub fn nm_lines(&self) -> String {
        format!(
            "{:016x} T _text\n{:016x} D __start_rodata\n{:016x} B __bss_start\n{:016x} B _end\n",
            self.text, self.start_rodata, self.bss_start, self.end
        )
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("the decompressed payload is not a 64-bit little-endian ELF image: {0}")]
    NotElf(String),
    #[error("the ELF image ({elf} bytes) leaves {relocs} bytes of relocations, not a table of 32-bit entries opened by a zero")]
    BadRelocs { elf: usize, relocs: usize },
    #[error("the kernel image has no {0} section")]
    NoSection(&'static str),
    #[error("the kernel image's sections are not in the order its linker script makes: {0}")]
    Layout(String),
}

/// Splits a decompressed payload where the ELF image ends (its section header table is last,
/// as objcopy writes it).
pub fn split_payload(all: &[u8]) -> Result<PayloadParts<'_>, PayloadError> {
    let elf =
        ElfFile64::<Endianness>::parse(all).map_err(|e| PayloadError::NotElf(e.to_string()))?;
    let header = elf.elf_header();
    let endian = elf.endian();
    let shoff = header.e_shoff(endian) as usize;
    let shsize = usize::from(header.e_shentsize(endian)) * usize::from(header.e_shnum(endian));
    let mut end = shoff + shsize;
    for section in elf.sections() {
        if let Some((offset, size)) = section.file_range() {
            end = end.max((offset + size) as usize);
        }
    }
    if end > all.len() {
        return Err(PayloadError::NotElf(format!(
            "its sections reach byte {end} of {}",
            all.len()
        )));
    }
    let (image, relocs) = all.split_at(end);
    if relocs.len() % 4 != 0 || relocs.len() < 4 || relocs[..4] != [0; 4] {
        return Err(PayloadError::BadRelocs {
            elf: image.len(),
            relocs: relocs.len(),
        });
    }
    Ok(PayloadParts { elf: image, relocs })
}

/// The boot stub's symbols from the ELF image's section table.
pub fn stub_symbols(elf_image: &[u8]) -> Result<StubSymbols, PayloadError> {
    let elf = ElfFile64::<Endianness>::parse(elf_image)
        .map_err(|e| PayloadError::NotElf(e.to_string()))?;
    let section = |name: &'static str| {
        elf.section_by_name(name)
            .map(|s| (s.address(), s.size()))
            .ok_or(PayloadError::NoSection(name))
    };
    let (text, _) = section(".text")?;
    let (start_rodata, _) = section(".rodata")?;
    let (bss_start, _) = section(".bss")?;
    let (brk, brk_size) = section(".brk")?;
    let end = (brk + brk_size).next_multiple_of(4096);
    // `.init.scratch` (SEV's early work area) lies past `_end` by design: outside the kernel.
    let last = elf
        .sections()
        .filter(|s| s.name() != Ok(".init.scratch"))
        .map(|s| s.address() + s.size())
        .max()
        .unwrap_or(0);
    if !(text < start_rodata && start_rodata < bss_start && bss_start <= brk && last <= end) {
        return Err(PayloadError::Layout(format!(
            ".text {text:#x}, .rodata {start_rodata:#x}, .bss {bss_start:#x}, .brk {brk:#x}, last byte {last:#x}"
        )));
    }
    Ok(StubSymbols {
        text,
        start_rodata,
        bss_start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: 1 setup sector + boot sector, then the payload.
    fn bzimage(payload: &[u8], version: &str) -> Vec<u8> {
        let mut f = vec![0u8; 1024];
        f[SETUP_SECTS] = 1;
        f[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        f[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        // The version string at 0x300 of the file: 0x100 in the header's reckoning.
        f[KERNEL_VERSION..KERNEL_VERSION + 2].copy_from_slice(&0x100u16.to_le_bytes());
        f[0x300..0x300 + version.len()].copy_from_slice(version.as_bytes());
        f[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
        f[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&[0xaa; 16]);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0x55; 8]);
        f
    }

    fn with_size(mut compressed: Vec<u8>, size: usize) -> Vec<u8> {
        compressed.extend_from_slice(&(size as u32).to_le_bytes());
        compressed
    }

    const VERSION_LINE: &str = "6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)";

    #[test]
    fn payload_and_version_are_found_through_the_setup_header() {
        let inner: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let zst = with_size(zstd::bulk::compress(&inner, 3).unwrap(), inner.len());
        let file = bzimage(&zst, VERSION_LINE);
        let bz = parse(&file).unwrap();
        assert_eq!(bz.protocol, 0x020f);
        assert_eq!(bz.version, VERSION_LINE);
        assert_eq!(bz.format, PayloadFormat::Zstd);
        assert_eq!(bz.payload, &zst[..]);
        assert_eq!(bz.decompress().unwrap(), inner);

        let mut xz = Vec::new();
        liblzma::read::XzEncoder::new(&inner[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        let xz = with_size(xz, inner.len());
        let file = bzimage(&xz, VERSION_LINE);
        let bz = parse(&file).unwrap();
        assert_eq!(bz.format, PayloadFormat::Xz);
        assert_eq!(bz.decompress().unwrap(), inner);

        // lz4's legacy format: 8 MiB blocks (three here), a magic again between two of them.
        let big: Vec<u8> = (0..(18u32 << 20) / 4)
            .flat_map(|i| (i / 64).to_le_bytes())
            .collect();
        let mut lz4 = vec![0x02, 0x21, 0x4c, 0x18];
        for (i, chunk) in big.chunks(8 << 20).enumerate() {
            if i == 2 {
                lz4.extend_from_slice(&[0x02, 0x21, 0x4c, 0x18]);
            }
            let block = lz4_flex::block::compress(chunk);
            lz4.extend_from_slice(&(block.len() as u32).to_le_bytes());
            lz4.extend_from_slice(&block);
        }
        let lz4 = with_size(lz4, big.len());
        let file = bzimage(&lz4, VERSION_LINE);
        let bz = parse(&file).unwrap();
        assert_eq!(bz.format, PayloadFormat::Lz4);
        assert!(bz.decompress().unwrap() == big);

        let v = KernelVersion::parse(&bz.version).unwrap();
        assert_eq!(v.release, "6.1.0-57-amd64");
        assert_eq!(v.user, "debian-kernel");
        assert_eq!(v.host, "lists.debian.org");
        assert_eq!(
            v.uts_version,
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"
        );
    }

    #[test]
    fn a_payload_that_does_not_add_up_is_refused_with_the_reason() {
        let inner = vec![7u8; 10_000];
        let short = with_size(zstd::bulk::compress(&inner, 3).unwrap(), inner.len() + 1);
        let file = bzimage(&short, VERSION_LINE);
        assert_eq!(
            parse(&file).unwrap().decompress(),
            Err(BzImageError::SizeMismatch {
                got: 10_000,
                expected: 10_001
            })
        );

        let mut truncated = bzimage(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4], VERSION_LINE);
        assert!(matches!(
            parse(&truncated).unwrap().decompress(),
            Err(BzImageError::Corrupt { format: "zstd", .. })
        ));
        truncated[PAYLOAD_LENGTH] = 0xff;
        truncated[PAYLOAD_LENGTH + 1] = 0xff;
        assert!(matches!(
            parse(&truncated),
            Err(BzImageError::PayloadOutside { .. })
        ));

        let lzo = bzimage(&[0x89, b'L', b'Z', b'O', 0, 0, 0, 0], VERSION_LINE);
        let bz = parse(&lzo).unwrap();
        assert_eq!(bz.format, PayloadFormat::Lzo);
        assert_eq!(bz.decompress(), Err(BzImageError::Unsupported("lzo")));
        let cut = bzimage(
            &[0x02, 0x21, 0x4c, 0x18, 9, 0, 0, 0, 1, 2, 0, 0, 0, 0],
            VERSION_LINE,
        );
        assert!(matches!(
            parse(&cut).unwrap().decompress(),
            Err(BzImageError::Corrupt { format: "lz4", .. })
        ));

        let unknown = bzimage(b"plain text", VERSION_LINE);
        assert_eq!(
            parse(&unknown),
            Err(BzImageError::UnknownFormat("706c61696e20".into()))
        );
        let mut not = unknown.clone();
        not[HEADER_MAGIC] = b'X';
        assert!(matches!(parse(&not), Err(BzImageError::NotBzImage(_))));
        assert!(matches!(
            parse(&not[..100]),
            Err(BzImageError::NotBzImage(_))
        ));
        let mut old = unknown;
        old[VERSION..VERSION + 2].copy_from_slice(&0x0206u16.to_le_bytes());
        assert_eq!(parse(&old), Err(BzImageError::OldProtocol(0x0206)));
    }

    #[test]
    fn version_lines_without_a_builder_are_not_taken() {
        assert_eq!(KernelVersion::parse("6.1.0-57-amd64"), None);
        assert_eq!(KernelVersion::parse("6.1.0 (a@b) 1 SMP"), None);
        assert_eq!(KernelVersion::parse("6.1.0 (ab) #1 SMP"), None);
        assert!(KernelVersion::parse("6.1.0 (a@b) #1 SMP").is_some());
    }

    #[test]
    fn config_options_name_the_formats() {
        assert_eq!(PayloadFormat::Xz.config_option(), "CONFIG_KERNEL_XZ");
        assert_eq!(PayloadFormat::Zstd.config_option(), "CONFIG_KERNEL_ZSTD");
        assert_eq!(PayloadFormat::ALL.len(), 7);
    }

    /// A section for [`elf`]: name, type, address, size (file bytes for PROGBITS).
    type Section = (&'static str, u32, u64, u64);
    const PROGBITS: u32 = 1;
    const NOBITS: u32 = 8;

    /// A minimal x86-64 ELF image with these sections (each PROGBITS one filled with its size
    /// of 0xcc), section headers last, as objcopy lays out `vmlinux.bin`.
    fn elf(sections: &[Section]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_at = Vec::new();
        for (name, ..) in sections.iter().chain([&(".shstrtab", 3, 0, 0)]) {
            name_at.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let mut data = vec![0u8; 64];
        let mut headers = vec![0u8; 64]; // the null section
        let put = |h: &mut Vec<u8>, name: u32, kind: u32, addr: u64, offset: u64, size: u64| {
            h.extend_from_slice(&name.to_le_bytes());
            h.extend_from_slice(&kind.to_le_bytes());
            h.extend_from_slice(&3u64.to_le_bytes()); // WRITE | ALLOC
            h.extend_from_slice(&addr.to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&[0; 8]); // link, info
            h.extend_from_slice(&1u64.to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes());
        };
        for (i, &(_, kind, addr, size)) in sections.iter().enumerate() {
            let offset = data.len() as u64;
            if kind == PROGBITS {
                data.resize(data.len() + size as usize, 0xcc);
            }
            put(&mut headers, name_at[i], kind, addr, offset, size);
        }
        let offset = data.len() as u64;
        data.extend_from_slice(&names);
        put(
            &mut headers,
            name_at[sections.len()],
            3,
            0,
            offset,
            names.len() as u64,
        );
        let shoff = data.len() as u64;
        data.extend_from_slice(&headers);
        let count = sections.len() as u16 + 2;
        let e = &mut data[..64];
        e[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        e[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        e[20..24].copy_from_slice(&1u32.to_le_bytes());
        e[40..48].copy_from_slice(&shoff.to_le_bytes());
        e[52..54].copy_from_slice(&64u16.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[58..60].copy_from_slice(&64u16.to_le_bytes());
        e[60..62].copy_from_slice(&count.to_le_bytes());
        e[62..64].copy_from_slice(&(count - 1).to_le_bytes());
        data
    }

    const KERNEL: [Section; 5] = [
        (".text", PROGBITS, 0xffffffff81000000, 0x40),
        (".rodata", PROGBITS, 0xffffffff82000000, 0x20),
        (".bss", NOBITS, 0xffffffff83310000, 0x10f0000),
        (".brk", NOBITS, 0xffffffff84400000, 0x30010),
        // SEV's work area, past _end by the linker script's design.
        (".init.scratch", PROGBITS, 0xffffffff84600000, 0x10),
    ];

    #[test]
    fn the_payload_splits_where_the_elf_image_ends() {
        let image = elf(&KERNEL);
        let relocs = [0u8, 0, 0, 0, 0x56, 0x04, 0x00, 0x81];
        let all = [&image[..], &relocs].concat();
        let parts = split_payload(&all).unwrap();
        assert_eq!(parts.elf, &image[..]);
        assert_eq!(parts.relocs, relocs);

        for bad in [&[1u8, 0, 0, 0][..], &[0, 0, 0], &[]] {
            let all = [&image[..], bad].concat();
            assert_eq!(
                split_payload(&all),
                Err(PayloadError::BadRelocs {
                    elf: image.len(),
                    relocs: bad.len()
                })
            );
        }
        assert!(matches!(
            split_payload(b"not an elf file at all, not even close to one"),
            Err(PayloadError::NotElf(_))
        ));
    }

    #[test]
    fn stub_symbols_come_from_the_section_table() {
        let symbols = stub_symbols(&elf(&KERNEL)).unwrap();
        assert_eq!(
            symbols,
            StubSymbols {
                text: 0xffffffff81000000,
                start_rodata: 0xffffffff82000000,
                bss_start: 0xffffffff83310000,
                // .brk's end, page-aligned.
                end: 0xffffffff84431000,
            }
        );
        let mut stray = KERNEL.to_vec();
        stray.push((".after", PROGBITS, 0xffffffff84500000, 0x10));
        assert!(matches!(
            stub_symbols(&elf(&stray)),
            Err(PayloadError::Layout(_))
        ));
        let no_brk: Vec<Section> = KERNEL.iter().filter(|s| s.0 != ".brk").copied().collect();
        assert_eq!(
            stub_symbols(&elf(&no_brk)),
            Err(PayloadError::NoSection(".brk"))
        );
    }

    #[test]
    fn nm_lines_are_what_kbuild_reads() {
        let s = StubSymbols {
            text: 0xffffffff81000000,
            start_rodata: 0xffffffff82000000,
            bss_start: 0xffffffff83310000,
            end: 0xffffffff84430000,
        };
        assert_eq!(
            s.nm_lines(),
            "ffffffff81000000 T _text\nffffffff82000000 D __start_rodata\nffffffff83310000 B __bss_start\nffffffff84430000 B _end\n"
        );
    }
}
