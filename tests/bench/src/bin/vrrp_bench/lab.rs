//! The namespaces: a bridge, the master (node 0) and the backup (node 1).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs a command and returns its output; an error carries its stderr.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Three namespaces: bridge, master (node 0), backup (node 1). Deleted on drop.
pub struct Lab {
    prefix: String,
    /// Configs and logs of every daemon started.
    pub dir: PathBuf,
}

impl Lab {
    pub fn new() -> Result<Lab, String> {
        let prefix = format!("vb{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("vrrp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let lab = Lab { prefix, dir };
        let br = lab.ns("br");
        sh(&["ip", "netns", "add", &br])?;
        sh(&[
            "ip",
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        sh(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..2 {
            let ns = lab.node(i);
            sh(&["ip", "netns", "add", &ns])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            let port = format!("p{i}");
            sh(&[
                "ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &br,
            ])?;
            sh(&["ip", "-n", &br, "link", "set", &port, "master", "br0"])?;
            sh(&["ip", "-n", &br, "link", "set", &port, "up"])?;
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.0.{}/24", i + 1),
                "dev",
                "eth0",
            ])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(lab)
    }

    fn ns(&self, s: &str) -> String {
        format!("{}{s}", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn node(&self, i: usize) -> String {
        self.ns(&format!("n{i}"))
    }

    fn pids(&self, i: usize) -> Vec<i32> {
        sh(&["ip", "netns", "pids", &self.node(i)])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Sends `sig` to every process in node `i`'s namespace.
    pub fn kill_all(&self, i: usize, sig: i32) {
        for p in self.pids(i) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(p, sig) };
        }
    }

    pub fn has_vip(&self, i: usize) -> bool {
        sh(&[
            "ip",
            "-n",
            &self.node(i),
            "-o",
            "-4",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .map(|o| o.contains("10.77.0.100/"))
        .unwrap_or(false)
    }

    pub fn remove_vip(&self, i: usize) {
        let _ = sh(&[
            "ip",
            "-n",
            &self.node(i),
            "addr",
            "del",
            "10.77.0.100/24",
            "dev",
            "eth0",
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..2 {
            self.kill_all(i, libc::SIGKILL);
        }
        for ns in [self.node(0), self.node(1), self.ns("br")] {
            let _ = sh(&["ip", "netns", "del", &ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
