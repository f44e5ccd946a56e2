//! Request paths to files under a served root, with no way out of it.
//!
//! [`clean`] (pure) decodes and checks the words of a request path: no `..`, no `.`, no empty
//! words (`a//b`, a leading `/` after the prefix), no `\`, NUL or `/` hidden in a
//! percent-escape. [`resolve`] (I/O) then joins them to the root, follows symlinks and refuses
//! anything whose real path is not inside the root's real path, or that is not a regular file.

use std::path::{Path, PathBuf};

/// Why a request path is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path word {0:?} is not allowed (no `.`, `..` or empty words)")]
    BadWord(String),
    #[error("bad percent-escape in {0:?}")]
    BadEscape(String),
    #[error("character {0:?} is not allowed in a path")]
    BadChar(char),
    #[error("{0} leaves the served directory")]
    Escapes(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{path}: {reason}")]
    NotFound { path: PathBuf, reason: String },
}

impl PathError {
    /// A refusal for safety (403), as opposed to a file that is not there (404).
    pub fn is_forbidden(&self) -> bool {
        !matches!(self, PathError::NotFound { .. } | PathError::NotAFile(_))
    }
}

/// Splits `rel` (the part of a request path below the root, still percent-encoded when
/// `percent` is set) into checked, decoded words.
pub fn clean(rel: &str, percent: bool) -> Result<Vec<String>, PathError> {
    if rel.is_empty() {
        return Err(PathError::Empty);
    }
    let mut words = Vec::new();
    for raw in rel.split('/') {
        let word = if percent {
            decode(raw)?
        } else {
            raw.to_string()
        };
        if let Some(c) = word.chars().find(|&c| c == '/' || c == '\\' || c == '\0') {
            return Err(PathError::BadChar(c));
        }
        if word.is_empty() || word == "." || word == ".." {
            return Err(PathError::BadWord(word));
        }
        words.push(word);
    }
    Ok(words)
}

fn decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PathError::BadEscape(raw.to_string()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::BadEscape(raw.to_string()))
}

/// The real path of the regular file `words` names under `root` (which must itself be a
/// canonical path, see [`std::fs::canonicalize`]).
pub fn resolve(root: &Path, words: &[String]) -> Result<PathBuf, PathError> {
    let mut path = root.to_path_buf();
    path.extend(words);
    let real = std::fs::canonicalize(&path).map_err(|e| PathError::NotFound {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if !real.starts_with(root) {
        return Err(PathError::Escapes(path));
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(real),
        Ok(_) => Err(PathError::NotAFile(path)),
        Err(e) => Err(PathError::NotFound {
            path,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_words() {
        assert_eq!(clean("vmlinuz", true).unwrap(), vec!["vmlinuz"]);
        assert_eq!(clean("a/b%20c", true).unwrap(), vec!["a", "b c"]);
        assert_eq!(
            clean("a%2Fb", false).unwrap(),
            vec!["a%2Fb"],
            "TFTP names are literal"
        );
    }

    #[test]
    fn clean_refuses_escapes() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/../../b",
            "./a",
            "a/./b",
            "/etc/passwd",
            "a//b",
            "a/",
            "%2e%2e/etc/passwd",
            "%2E%2E",
            "a%2f..%2fb",
            "..%2fetc",
            "a%5c..",
            "a\\..\\b",
            "a%00b",
            "a%zz",
            "a%2",
            "%ff%fe",
        ] {
            assert!(clean(bad, true).is_err(), "{bad:?} accepted");
        }
        assert!(clean("..", false).is_err());
        assert!(clean("/boot.ipxe", false).is_err());
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "s").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file"), "f").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out-link")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/file"), root.join("in-link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let w = |s: &str| clean(s, true).unwrap();

        assert_eq!(
            resolve(&root, &w("sub/file")).unwrap(),
            root.join("sub/file")
        );
        assert_eq!(
            resolve(&root, &w("in-link")).unwrap(),
            root.join("sub/file")
        );
        let e = resolve(&root, &w("out-link")).unwrap_err();
        assert!(
            matches!(e, PathError::Escapes(_)) && e.is_forbidden(),
            "{e}"
        );
        let e = resolve(&root, &w("up/secret")).unwrap_err();
        assert!(matches!(e, PathError::Escapes(_)), "{e}");
        let e = resolve(&root, &w("sub")).unwrap_err();
        assert!(
            matches!(e, PathError::NotAFile(_)) && !e.is_forbidden(),
            "{e}"
        );
        let e = resolve(&root, &w("missing")).unwrap_err();
        assert!(
            matches!(e, PathError::NotFound { .. }) && !e.is_forbidden(),
            "{e}"
        );
    }
}
