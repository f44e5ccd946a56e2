//! How the initramfs's files are laid out in `initrd.img`.
//!
//! The kernel unpacks `initrd.img` as a sequence of cpio archives, each compressed or not
//! (Debian's early-microcode archive is the usual first, uncompressed one). Unpacking a
//! compressed archive costs its whole decompression at every boot, while most of a bare-metal
//! image is NIC drivers for hardware that is not there and their firmware: on a given box
//! init loads one or two of them, or none. So with [`Layout::Split`] those files go in a
//! first, *uncompressed* archive, each file compressed on its own — modules as `NAME.ko.zst`,
//! which init decompresses in memory before `init_module(2)`, firmware as `NAME.xz`, which the
//! kernel's firmware loader finds when `NAME` is absent (CONFIG_FW_LOADER_COMPRESS_XZ) — and
//! the kernel only copies their bytes. Everything else goes in the second archive, compressed
//! as a whole as before.

use std::collections::BTreeMap;
use std::io;

use crate::compress::{Compression, Effort};
use crate::cpio::{Tree, TreeError};
use crate::manifest::{sha256_hex, FileEntry, InitrdSegment};

/// Where the files that most boxes never read go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Layout {
    /// NIC drivers outside the boot set and all firmware in an uncompressed first archive,
    /// each file compressed on its own; the rest in one compressed archive.
    #[default]
    Split,
    /// Everything in one compressed archive.
    Single,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Split => "split",
            Layout::Single => "single",
        }
    }
}

/// Compression of one file of the uncompressed archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCompression {
    /// zstd level 19 with a content checksum: modules (init decodes them).
    Zstd,
    /// xz, LZMA2, CRC32 check: firmware (the kernel's loader decodes it, and its xz decoder
    /// does not know CRC64, xz's default).
    Xz,
}

impl FileCompression {
    pub fn name(self) -> &'static str {
        match self {
            FileCompression::Zstd => "zstd",
            FileCompression::Xz => "xz",
        }
    }

    /// The suffix appended to the file's name.
    pub fn suffix(self) -> &'static str {
        match self {
            FileCompression::Zstd => ".zst",
            FileCompression::Xz => ".xz",
        }
    }

    /// Compresses `data` deterministically.
    pub fn compress(self, data: &[u8], effort: Effort) -> io::Result<Vec<u8>> {
        match self {
            FileCompression::Zstd => crate::compress::zstd_checked(data, effort),
            // The kernel allocates the dictionary the header names: no larger than the file
            // needs.
            FileCompression::Xz => {
                crate::compress::xz_crc32(data, xz_dict_size(data.len()), effort)
            }
        }
    }
}

/// The smallest power of two at least `len`, between xz's minimum (4 KiB) and 8 MiB.
fn xz_dict_size(len: usize) -> u32 {
    let wanted = len.clamp(4096, 8 << 20) as u32;
    wanted.next_power_of_two().min(8 << 20)
}

/// A file stored compressed on its own: what it holds once decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub compression: FileCompression,
    pub size: u64,
    pub sha256: String,
}

/// The uncompressed archive: files compressed one by one.
#[derive(Debug, Default)]
pub struct Separate {
    pub tree: Tree,
    /// Stored guest path (absolute) → what the file decompresses to.
    pub contents: BTreeMap<String, Content>,
    /// How hard each file's encoder works.
    pub effort: Effort,
}

impl Separate {
    pub fn new(effort: Effort) -> Self {
        Separate {
            effort,
            ..Self::default()
        }
    }

    /// Stores `data` compressed at `path` + the compression's suffix; returns that path.
    pub fn add_compressed(
        &mut self,
        path: &str,
        perm: u32,
        data: &[u8],
        compression: FileCompression,
    ) -> Result<String, LayoutError> {
        let stored = format!("{path}{}", compression.suffix());
        let packed =
            compression
                .compress(data, self.effort)
                .map_err(|source| LayoutError::Compress {
                    path: path.to_string(),
                    format: compression.name(),
                    source,
                })?;
        self.tree.add_file(&stored, perm, packed)?;
        self.contents.insert(
            stored.clone(),
            Content {
                compression,
                size: data.len() as u64,
                sha256: sha256_hex(data),
            },
        );
        Ok(stored)
    }

    /// Bytes of a stored file (0 when there is none at `path`).
    pub fn stored_size(&self, path: &str) -> u64 {
        match self.tree.get(path).map(|e| &e.kind) {
            Some(crate::cpio::EntryKind::File(data)) => data.len() as u64,
            _ => 0,
        }
    }

    /// The manifest's entries of the separate archive's files, with what each decompresses to.
    pub fn file_entries(&self) -> Vec<FileEntry> {
        let mut out = Vec::new();
        for (path, entry) in self.tree.iter() {
            if let crate::cpio::EntryKind::File(data) = &entry.kind {
                let mut file = FileEntry::new(&path, data);
                file.mode = Some(format!("{:04o}", entry.perm));
                if let Some(content) = self.contents.get(&path) {
                    file.compression = Some(content.compression.name().to_string());
                    file.content_size = Some(content.size);
                    file.content_sha256 = Some(content.sha256.clone());
                }
                out.push(file);
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("cannot {format}-compress {path}: {source}")]
    Compress {
        path: String,
        format: &'static str,
        #[source]
        source: io::Error,
    },
}

/// `initrd.img`: the separate archive as it is (when it has files), then the main archive
/// compressed. Returns the bytes and the segments, in order.
pub fn write_initrd(
    separate: &Tree,
    main: &Tree,
    compression: Compression,
    effort: Effort,
    mtime: u32,
) -> io::Result<(Vec<u8>, Vec<InitrdSegment>)> {
    let mut initrd = Vec::new();
    let mut segments = Vec::new();
    let separate_files = file_count(separate);
    if separate_files > 0 {
        // newc pads every entry and the trailer to 4 bytes, so the compressed archive starts
        // 4-aligned, as the kernel's unpacker requires of whatever follows an archive.
        let cpio_bytes = separate.write_cpio(&mut initrd, mtime)?;
        segments.push(InitrdSegment {
            offset: 0,
            size: cpio_bytes,
            compression: "none".into(),
            cpio_bytes,
            files: separate_files,
        });
    }
    let mut cpio = Vec::new();
    let cpio_bytes = main.write_cpio(&mut cpio, mtime)?;
    let packed = compression.compress(&cpio, effort)?;
    segments.push(InitrdSegment {
        offset: initrd.len() as u64,
        size: packed.len() as u64,
        compression: compression.name().into(),
        cpio_bytes,
        files: file_count(main),
    });
    initrd.extend_from_slice(&packed);
    Ok((initrd, segments))
}

fn file_count(tree: &Tree) -> u64 {
    tree.iter()
        .filter(|(_, e)| matches!(e.kind, crate::cpio::EntryKind::File(_)))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn firmware_like() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| ((i * 7) % 253).to_le_bytes())
            .collect()
    }

    /// What the kernel's xz decoder (lib/xz, as the firmware loader uses it) accepts: one
    /// stream, CRC32 (or no) check, LZMA2 only, a dictionary no larger than it must be.
    #[test]
    fn firmware_xz_is_what_the_kernels_loader_decodes() {
        let data = firmware_like();
        let packed = FileCompression::Xz.compress(&data, Effort::Best).unwrap();
        assert_eq!(&packed[..6], b"\xfd7zXZ\0", "xz stream magic");
        // Stream flags: 0x00, check type 0x01 = CRC32.
        assert_eq!(&packed[6..8], &[0, 1]);
        assert_eq!(&packed[packed.len() - 2..], b"YZ", "stream footer magic");
        // Block header: size byte, flags (one filter, no sizes), filter ID 0x21 = LZMA2,
        // properties size 1, dictionary size byte.
        let block = &packed[12..];
        assert_eq!(block[1] & 0x03, 0, "one filter");
        assert_eq!(block[2], 0x21, "LZMA2");
        assert_eq!(block[3], 1);
        let dict_byte = block[4];
        let dict = (2 | (dict_byte as u32 & 1)) << (dict_byte / 2 + 11);
        assert!(
            dict as usize >= data.len() && dict <= 2 << 20,
            "dictionary {dict} for {} bytes",
            data.len()
        );
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(
            packed,
            FileCompression::Xz.compress(&data, Effort::Best).unwrap()
        );
    }

    #[test]
    fn zstd_modules_carry_size_and_checksum() {
        let data = firmware_like();
        let packed = FileCompression::Zstd.compress(&data, Effort::Best).unwrap();
        assert_eq!(&packed[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        // Frame header descriptor: checksum flag (bit 2) set, a content size field.
        let fhd = packed[4];
        assert_ne!(fhd & 0x04, 0, "content checksum");
        assert_ne!(fhd >> 6, 0, "content size");
        assert_eq!(zstd::stream::decode_all(&packed[..]).unwrap(), data);
    }

    #[test]
    fn dictionary_sizes() {
        assert_eq!(xz_dict_size(0), 4096);
        assert_eq!(xz_dict_size(5000), 8192);
        assert_eq!(xz_dict_size(1 << 20), 1 << 20);
        assert_eq!(xz_dict_size(100 << 20), 8 << 20);
    }

    /// The concatenation the kernel unpacks: an uncompressed archive whose length is a
    /// multiple of 4, then the compressed one, each ending with its own trailer.
    #[test]
    fn initrd_is_the_separate_archive_then_the_compressed_one() {
        let mut separate = Separate::new(Effort::Best);
        let stored = separate
            .add_compressed(
                "/lib/firmware/e100/d102e_ucode.bin",
                0o644,
                &firmware_like(),
                FileCompression::Xz,
            )
            .unwrap();
        assert_eq!(stored, "/lib/firmware/e100/d102e_ucode.bin.xz");
        separate
            .add_compressed(
                "/lib/modules/v/x.ko",
                0o644,
                b"\x7fELF...",
                FileCompression::Zstd,
            )
            .unwrap();
        let mut main = Tree::new();
        main.add_file("/init", 0o755, b"#!init".to_vec()).unwrap();
        let (initrd, segments) =
            write_initrd(&separate.tree, &main, Compression::Zstd, Effort::Best, 0).unwrap();
        assert_eq!(segments.len(), 2);
        let (raw, packed) = (&segments[0], &segments[1]);
        assert_eq!((raw.offset, raw.compression.as_str()), (0, "none"));
        assert_eq!(raw.size % 4, 0);
        assert_eq!(raw.files, 2);
        assert_eq!(&initrd[..6], b"070701");
        assert!(initrd[..raw.size as usize].ends_with(b"TRAILER!!!\0\0\0\0"));
        assert_eq!(packed.offset, raw.size);
        assert_eq!(packed.offset + packed.size, initrd.len() as u64);
        let cpio = zstd::stream::decode_all(&initrd[packed.offset as usize..]).unwrap();
        assert_eq!(cpio.len() as u64, packed.cpio_bytes);
        assert!(cpio.windows(4).any(|w| w == b"init"));

        let entries = separate.file_entries();
        let fw = &entries[0];
        assert_eq!(fw.path, "/lib/firmware/e100/d102e_ucode.bin.xz");
        assert_eq!(fw.compression.as_deref(), Some("xz"));
        assert_eq!(fw.content_size, Some(firmware_like().len() as u64));
        assert_eq!(fw.content_sha256, Some(sha256_hex(&firmware_like())));

        // Nothing separate: one compressed archive, as before.
        let (single, segments) =
            write_initrd(&Tree::new(), &main, Compression::Zstd, Effort::Best, 0).unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].offset, 0);
        assert_eq!(&single[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }
}
