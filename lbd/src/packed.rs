//! Files the image stores compressed on their own (`PATH.zst`, one zstd frame with a content
//! checksum), in the initramfs's uncompressed archive: the kernel only copies them at boot, and
//! they are expanded where they are used. Kernel modules are expanded in memory by init;
//! BIRD (the BGP speaker, only N-way balancers run it) and its libraries are expanded on disk
//! before BIRD first starts, so a pair that never speaks BGP never pays for them.

use std::path::{Path, PathBuf};

/// The image's description of itself, inside the image.
pub const IMAGE_JSON: &str = "/etc/lb/image.json";

/// Decompresses one zstd frame, whose content checksum must match (a damaged file is refused
/// here, by name, rather than by whoever reads it next).
pub fn decompress_zstd(data: &[u8]) -> Result<Vec<u8>, String> {
    let size = frame_content_size(data)?;
    // The builder writes the size into the frame header: one allocation, one call.
    let capacity = usize::try_from(size).map_err(|_| format!("a frame of {size} bytes"))?;
    let out = zstd::bulk::decompress(data, capacity).map_err(|e| format!("zstd: {e}"))?;
    if out.len() as u64 != size {
        return Err(format!(
            "the zstd frame says {size} bytes, {} decoded",
            out.len()
        ));
    }
    Ok(out)
}

/// The size a single frame says it holds; refused when the frame does not say, is cut short
/// or is followed by anything.
fn frame_content_size(data: &[u8]) -> Result<u64, String> {
    use zstd::zstd_safe;
    let size = match zstd_safe::get_frame_content_size(data) {
        Ok(Some(size)) => size,
        Ok(None) => return Err("the zstd frame does not say its size".to_string()),
        Err(_) => return Err("not a zstd frame".to_string()),
    };
    let frame = zstd_safe::find_frame_compressed_size(data)
        .map_err(|_| "not a whole zstd frame (damaged or cut short)".to_string())?;
    if frame != data.len() {
        return Err(format!("{} bytes after the zstd frame", data.len() - frame));
    }
    Ok(size)
}

/// Decompresses one zstd frame into `out` as it goes (a program of megabytes never sits whole
/// in the heap); the content checksum and the size the frame says are both checked. Returns
/// the bytes written.
pub fn decompress_zstd_to(data: &[u8], out: &mut impl std::io::Write) -> Result<u64, String> {
    let size = frame_content_size(data)?;
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
        .map_err(|e| format!("zstd: {e}"))?
        .single_frame();
    // Large writes: under emulation every system call is dear.
    let mut buf = vec![0u8; 256 << 10];
    let mut written = 0u64;
    loop {
        let n = std::io::Read::read(&mut decoder, &mut buf).map_err(|e| format!("zstd: {e}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write: {e}"))?;
        written += n as u64;
    }
    if written != size {
        return Err(format!(
            "the zstd frame says {size} bytes, {written} decoded"
        ));
    }
    Ok(written)
}

/// BIRD's program and files as the image under `root` lists them (`bird.path` and
/// `bird.files` of [`IMAGE_JSON`]); `None` when the image says nothing of BIRD.
pub fn bird_files(root: &Path) -> Result<Option<(String, Vec<String>)>, String> {
    let path = under(root, IMAGE_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bird = &json["bird"];
    let Some(program) = bird["path"].as_str() else {
        return Ok(None);
    };
    let files = bird["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some((program.to_string(), files)))
}

/// Expands every file of `files` (absolute paths, taken under `root`) that exists only as
/// `PATH.zst`: decompressed beside it, given the stored file's mode, renamed into place (a
/// reader never sees half a file), then the compressed copy removed (the initramfs lives in
/// memory). Files already there, or symlinks, are left alone. How many were expanded.
pub fn expand(root: &Path, files: &[String]) -> Result<usize, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut expanded = 0;
    for file in files {
        let target = under(root, file);
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let mut stored = target.clone().into_os_string();
        stored.push(".zst");
        let stored = PathBuf::from(stored);
        let packed = std::fs::read(&stored).map_err(|e| {
            format!(
                "{}: missing, and so is its compressed copy ({}: {e})",
                target.display(),
                stored.display()
            )
        })?;
        let mode = std::fs::metadata(&stored)
            .map_err(|e| format!("{}: {e}", stored.display()))?
            .permissions()
            .mode();
        let mut part = target.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let written = std::fs::File::create(&part)
            .map_err(|e| format!("{}: {e}", part.display()))
            .and_then(|mut file| {
                decompress_zstd_to(&packed, &mut file)
                    .map_err(|e| format!("{}: {e}", stored.display()))
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode & 0o7777))
            .and_then(|()| std::fs::rename(&part, &target))
            .map_err(|e| format!("{}: {e}", target.display()))?;
        // Only memory: a copy that stays is no harm.
        let _ = std::fs::remove_file(&stored);
        expanded += 1;
    }
    Ok(expanded)
}

/// Expands BIRD's files when the image under `root` stores them compressed and `program` is
/// the image's BIRD (a BIRD named by `LBD_BIRD` is someone else's). How many were expanded.
pub fn expand_bird(root: &Path, program: &Path) -> Result<usize, String> {
    match bird_files(root)? {
        Some((path, files)) if Path::new(&path) == program => expand(root, &files),
        _ => Ok(0),
    }
}

fn under(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const BIRD: &str = "/usr/sbin/bird";

    fn zst(data: &[u8]) -> Vec<u8> {
        // A frame with a content checksum, as the image builder writes it.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(true).unwrap();
        e.set_pledged_src_size(Some(data.len() as u64)).unwrap();
        e.include_contentsize(true).unwrap();
        std::io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    fn put(root: &Path, path: &str, data: &[u8], mode: u32) {
        let p = under(root, path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn birds_files_are_expanded_in_place_once() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let program = [0x7f, b'E', b'L', b'F', 1, 2, 3].repeat(1000);
        let lib = b"a library".repeat(500);
        put(r, &format!("{BIRD}.zst"), &zst(&program), 0o755);
        put(r, "/lib/x86_64-linux-gnu/libc.so.6.zst", &zst(&lib), 0o644);
        // Already plain (the test image keeps libraries other programs use): left alone.
        put(r, "/lib/x86_64-linux-gnu/libz.so.1", b"plain", 0o644);
        std::os::unix::fs::symlink("libc.so.6", under(r, "/lib/x86_64-linux-gnu/libc.so")).unwrap();
        put(
            r,
            IMAGE_JSON,
            br#"{"bird": {"path": "/usr/sbin/bird", "package": "bird2", "files": [
                "/usr/sbin/bird", "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libc.so"]}}"#,
            0o644,
        );
        // Someone else's BIRD: nothing to do.
        assert_eq!(expand_bird(r, Path::new("/opt/bird")).unwrap(), 0);
        assert_eq!(expand_bird(r, Path::new("/usr/sbin/bird")).unwrap(), 2);
        let bird = under(r, "/usr/sbin/bird");
        assert_eq!(std::fs::read(&bird).unwrap(), program);
        assert_eq!(
            std::fs::metadata(&bird).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert!(!under(r, &format!("{BIRD}.zst")).exists());
        assert_eq!(
            std::fs::read(under(r, "/lib/x86_64-linux-gnu/libc.so")).unwrap(),
            lib
        );
        assert_eq!(
            std::fs::read(under(r, "/lib/x86_64-linux-gnu/libz.so.1")).unwrap(),
            b"plain"
        );
        // The second start finds everything in place.
        assert_eq!(expand_bird(r, Path::new("/usr/sbin/bird")).unwrap(), 0);
    }

    #[test]
    fn a_missing_or_damaged_file_is_named() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let e = expand(r, &["/usr/sbin/bird".to_string()]).unwrap_err();
        assert!(e.contains("/usr/sbin/bird: missing"), "{e}");
        let mut packed = zst(&b"bird".repeat(100));
        let n = packed.len();
        packed[n - 6] ^= 0xff;
        put(r, &format!("{BIRD}.zst"), &packed, 0o755);
        let e = expand(r, &["/usr/sbin/bird".to_string()]).unwrap_err();
        assert!(e.contains("bird.zst"), "{e}");
        assert!(!under(r, "/usr/sbin/bird").exists());
        assert!(
            !under(r, &format!("{BIRD}.part")).exists(),
            "no half-written file is left"
        );
        // No image description: no BIRD of the image's to expand.
        assert_eq!(bird_files(r).unwrap(), None);
    }

    #[test]
    fn a_frame_is_decoded_whole_or_refused_by_what_is_wrong() {
        let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let packed = zst(&data);
        assert_eq!(decompress_zstd(&packed).unwrap(), data);
        let mut streamed = Vec::new();
        assert_eq!(
            decompress_zstd_to(&packed, &mut streamed).unwrap(),
            data.len() as u64
        );
        assert_eq!(streamed, data);

        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"junk");
        for e in [
            decompress_zstd(&trailing).unwrap_err(),
            decompress_zstd_to(&trailing, &mut Vec::new()).unwrap_err(),
        ] {
            assert!(e.contains("4 bytes after the zstd frame"), "{e}");
        }
        let cut = &packed[..packed.len() / 2];
        assert!(decompress_zstd(cut).unwrap_err().contains("cut short"));
        assert!(decompress_zstd(&data)
            .unwrap_err()
            .contains("not a zstd frame"));
        // Without its size in the header (another tool's frame) it is refused, not guessed.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut e, &data).unwrap();
        let sizeless = e.finish().unwrap();
        assert!(decompress_zstd(&sizeless)
            .unwrap_err()
            .contains("does not say its size"));
    }
}
