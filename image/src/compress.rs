//! Initramfs compression in formats the Debian kernel unpacks (CONFIG_RD_GZIP/ZSTD/XZ=y).
//!
//! Every encoder is configured for byte-identical output from identical input: no timestamps,
//! no file names, single-threaded.

use std::io::{self, Write};

use serde::Serialize;

/// Initramfs compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip, level 9 (universally supported; the default).
    #[default]
    Gzip,
    /// zstd, level 19 (fast to decompress at boot).
    Zstd,
    /// xz with CRC32 check (the kernel's xz decoder does not verify CRC64), preset 9 + extreme
    /// limited to an 8 MiB dictionary; smallest output.
    Xz,
}

/// How hard the encoders work. `Best` is what ships: the smallest image, level for level what
/// the docs above say. `Fast` (zstd level 3, xz preset 6, gzip level 6) builds several times
/// faster for a somewhat larger image: for test images, which are built and booted many times a
/// day and never shipped. Either decompresses the same way at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Effort {
    #[default]
    Best,
    Fast,
}

impl Effort {
    pub fn name(self) -> &'static str {
        match self {
            Effort::Best => "best",
            Effort::Fast => "fast",
        }
    }

    fn zstd_level(self) -> i32 {
        match self {
            Effort::Best => 19,
            Effort::Fast => 3,
        }
    }

    fn gzip_level(self) -> flate2::Compression {
        match self {
            Effort::Best => flate2::Compression::best(),
            Effort::Fast => flate2::Compression::default(),
        }
    }

    fn xz_preset(self) -> u32 {
        match self {
            Effort::Best => 9 | liblzma::stream::PRESET_EXTREME,
            Effort::Fast => 6,
        }
    }
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }

    /// Compresses `data` completely.
    pub fn compress(self, data: &[u8], effort: Effort) -> io::Result<Vec<u8>> {
        match self {
            Compression::Gzip => {
                // GzBuilder writes mtime 0 and no file name unless told otherwise.
                let mut encoder = flate2::GzBuilder::new()
                    .operating_system(3) // Unix, fixed rather than host-dependent
                    .write(Vec::new(), effort.gzip_level());
                encoder.write_all(data)?;
                encoder.finish()
            }
            Compression::Zstd => zstd_checked(data, effort),
            // The kernel allocates the whole dictionary while unpacking; 8 MiB is what
            // preset 6 uses and costs nearly nothing in ratio for a ~30 MB archive.
            Compression::Xz => xz_crc32(data, 8 << 20, effort),
        }
    }
}

/// zstd at level 19 (3 at [`Effort::Fast`]) with a checksum and the content size in the frame
/// header, which the kernel and init check.
pub fn zstd_checked(data: &[u8], effort: Effort) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), effort.zstd_level())?;
    encoder.include_checksum(true)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(data.len() as u64))?;
    encoder.write_all(data)?;
    encoder.finish()
}

/// xz at preset 9e (6 at [`Effort::Fast`]) with one LZMA2 filter, a `dict_size` dictionary and
/// a CRC32 check: the kernel's xz decoder (initramfs and firmware) supports no other check.
pub fn xz_crc32(data: &[u8], dict_size: u32, effort: Effort) -> io::Result<Vec<u8>> {
    let mut options =
        liblzma::stream::LzmaOptions::new_preset(effort.xz_preset()).map_err(io::Error::other)?;
    options.dict_size(dict_size);
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&options);
    let stream =
        liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32)
            .map_err(io::Error::other)?;
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let data = sample();
        for c in [Compression::Gzip, Compression::Zstd, Compression::Xz] {
            let a = c.compress(&data, Effort::Best).unwrap();
            let b = c.compress(&data, Effort::Best).unwrap();
            assert_eq!(a, b, "{c:?} output differs between runs");
            assert!(a.len() < data.len() / 4, "{c:?} did not compress");
            let mut back = Vec::new();
            match c {
                Compression::Gzip => {
                    // No mtime, no FNAME flag: bytes 3..8 are FLG and MTIME.
                    assert_eq!(&a[..2], b"\x1f\x8b");
                    assert_eq!(&a[3..8], &[0, 0, 0, 0, 0]);
                    flate2::read::GzDecoder::new(&a[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zstd => back = zstd::stream::decode_all(&a[..]).unwrap(),
                Compression::Xz => {
                    // Stream flags: check type 1 = CRC32, which the kernel can verify.
                    assert_eq!(&a[..6], b"\xfd7zXZ\0");
                    assert_eq!(a[7], 1);
                    liblzma::read::XzDecoder::new(&a[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
            }
            assert_eq!(back, data, "{c:?} round trip");
        }
    }
}
