//! Drained reals: the operator's runtime override "no new connections to this real" (weight 0
//! until undrained), like ldirectord's maintenance directory, without a config change. They
//! reach IPVS only through the reconciler (as operator weights the daemon takes, see `daemon::inputs`), and are
//! kept in a file under `/run` so a restarted lbd keeps them (a reboot forgets them, with the
//! IPVS table).

use crate::check::board::RealKey;
use crate::config::{Config, Endpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a drain request names nothing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("{0}")]
    BadReal(String),
    #[error("no service named {0:?}")]
    NoService(String),
    #[error("no real {real} in {where_}")]
    NoReal { real: String, where_: String },
}

/// The reals `real` names: `ADDR:PORT` exactly, or `ADDR` with any port; in `service`, or in
/// every service when none is given (to take a whole machine out, as a maintenance file
/// named by its address does in ldirectord).
pub fn select(
    config: &Config,
    service: Option<&str>,
    real: &str,
) -> Result<Vec<RealKey>, SelectError> {
    let ep: Endpoint = real.parse().map_err(SelectError::BadReal)?;
    let matches = |a: &SocketAddr| a.ip() == ep.ip && ep.port.is_none_or(|p| p == a.port());
    let services: Vec<_> = match service {
        Some(name) => vec![config
            .services
            .get(name)
            .ok_or_else(|| SelectError::NoService(name.to_string()))?],
        None => config.services.values().collect(),
    };
    let keys: Vec<RealKey> = services
        .iter()
        .flat_map(|s| {
            s.reals
                .iter()
                .filter(|r| matches(&r.addr))
                .map(|r| (s.name.clone(), r.addr))
        })
        .collect();
    if keys.is_empty() {
        return Err(SelectError::NoReal {
            real: real.to_string(),
            where_: service.map_or("any service".to_string(), |s| format!("service {s}")),
        });
    }
    Ok(keys)
}

/// The drained reals, remembered in a file.
#[derive(Clone, Debug, Default)]
pub struct Drained {
    set: BTreeSet<RealKey>,
    path: Option<PathBuf>,
}

impl Drained {
    /// Loads the set from `path` (missing or unreadable: empty).
    pub fn load(path: Option<PathBuf>) -> Drained {
        let set = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Vec<(String, SocketAddr)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        Drained { set, path }
    }

    pub fn set(&self) -> &BTreeSet<RealKey> {
        &self.set
    }

    pub fn contains(&self, key: &RealKey) -> bool {
        self.set.contains(key)
    }

    /// Adds (`drain`) or removes keys; whether anything changed.
    pub fn change(&mut self, keys: &[RealKey], drain: bool) -> bool {
        let mut changed = false;
        for k in keys {
            changed |= if drain {
                self.set.insert(k.clone())
            } else {
                self.set.remove(k)
            };
        }
        changed
    }

    /// Forgets reals the config no longer has; whether anything changed.
    pub fn retain_in(&mut self, config: &Config) -> bool {
        let before = self.set.len();
        self.set.retain(|(svc, addr)| {
            config
                .services
                .get(svc)
                .is_some_and(|s| s.reals.iter().any(|r| r.addr == *addr))
        });
        before != self.set.len()
    }

    /// The operator weights for the reconciler: 0 for each drained real.
    pub fn weights(&self) -> BTreeMap<RealKey, u32> {
        self.set.iter().map(|k| (k.clone(), 0)).collect()
    }

    /// Writes the set to its file (atomically).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let list: Vec<&RealKey> = self.set.iter().collect();
        let json = serde_json::to_vec(&list).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            "t.toml",
            r#"
[vrrp.instance.v]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.1"]

[service.web]
vip = "192.0.2.1:80"
[[service.web.real]]
address = "10.0.0.1:80"
[[service.web.real]]
address = "10.0.0.2:80"

[service.alt]
vip = "192.0.2.1:8080"
[[service.alt.real]]
address = "10.0.0.1:8080"
"#,
        )
        .unwrap()
        .config
    }

    #[test]
    fn selects() {
        let c = config();
        let k = |s: &str, a: &str| (s.to_string(), a.parse::<SocketAddr>().unwrap());
        assert_eq!(
            select(&c, Some("web"), "10.0.0.1:80").unwrap(),
            vec![k("web", "10.0.0.1:80")]
        );
        assert_eq!(
            select(&c, None, "10.0.0.1").unwrap(),
            vec![k("alt", "10.0.0.1:8080"), k("web", "10.0.0.1:80")]
        );
        assert_eq!(
            select(&c, Some("nope"), "10.0.0.1"),
            Err(SelectError::NoService("nope".into()))
        );
        assert!(matches!(
            select(&c, Some("web"), "10.0.0.1:81"),
            Err(SelectError::NoReal { .. })
        ));
        assert!(matches!(
            select(&c, None, "web1"),
            Err(SelectError::BadReal(_))
        ));
    }

    #[test]
    fn drains_saves_and_forgets() {
        let dir = std::env::temp_dir().join(format!("lbd-drain-{}", std::process::id()));
        let path = dir.join("drained.json");
        let c = config();
        let mut d = Drained::load(Some(path.clone()));
        let keys = select(&c, None, "10.0.0.1").unwrap();
        assert!(d.change(&keys, true));
        assert!(!d.change(&keys, true));
        d.save().unwrap();
        let again = Drained::load(Some(path.clone()));
        assert_eq!(again.set(), d.set());
        assert_eq!(
            again.weights().values().copied().collect::<Vec<_>>(),
            [0, 0]
        );
        let mut smaller = c.clone();
        std::sync::Arc::make_mut(&mut smaller.services).remove("alt");
        assert!(d.retain_in(&smaller));
        assert_eq!(d.set().len(), 1);
        assert!(d.change(&keys, false));
        assert!(d.set().is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
