//! `/etc/resolv.conf`: rendered from the lease or `ip=` (pure), written atomically.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Why resolv.conf could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct ResolvConfError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// glibc and musl read at most three nameservers.
const MAX_NAMESERVERS: usize = 3;

/// The file's text: a `search` line for `domain`, one `nameserver` line per server (at most 3).
/// `source` says where the values came from, in a comment.
pub fn render(source: &str, domain: Option<&str>, dns: &[Ipv4Addr]) -> String {
    let mut out = format!("# written by init from {source}\n");
    if let Some(domain) = domain {
        out.push_str(&format!("search {domain}\n"));
    }
    for ns in dns.iter().take(MAX_NAMESERVERS) {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out
}

/// The file's text from a config's `[network]`: search domains and name servers of either
/// family (at most 3).
pub fn render_list(source: &str, search: &[String], servers: &[std::net::IpAddr]) -> String {
    let mut out = format!("# written by init from {source}\n");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in servers.iter().take(MAX_NAMESERVERS) {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out
}

/// Writes `contents` to `path` through a temporary file and a rename, so readers never see half a
/// file; creates the parent directory (`/etc` does not exist in a bare initramfs).
pub fn write(path: &Path, contents: &str) -> Result<(), ResolvConfError> {
    let err = |source| ResolvConfError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_search_and_at_most_three_nameservers() {
        let dns: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(
            render("DHCP server 10.0.0.1", Some("lb.example.org"), &dns),
            "# written by init from DHCP server 10.0.0.1\n\
             search lb.example.org\n\
             nameserver 10.0.0.1\n\
             nameserver 10.0.0.2\n\
             nameserver 10.0.0.3\n"
        );
        assert_eq!(render("ip=", None, &[]), "# written by init from ip=\n");
    }

    #[test]
    fn writes_creating_the_directory_and_replacing() {
        let dir = std::env::temp_dir().join(format!("init-resolv-{}", std::process::id()));
        let path = dir.join("etc").join("resolv.conf");
        write(&path, "nameserver 10.0.0.1\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 10.0.0.1\n"
        );
        write(&path, "nameserver 10.0.0.2\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "nameserver 10.0.0.2\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        // A path whose parent is a file cannot be written: the error names the path.
        let bad = path.join("x");
        let e = write(&bad, "").unwrap_err();
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
