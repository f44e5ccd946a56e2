//! Kernel module selection: dependency closure, load order, and the kmod-format index files.
//!
//! Pure logic over module metadata (names, paths, `.modinfo`); no I/O.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::elf::ModInfo;

/// One `.ko` from the kernel package.
#[derive(Debug, Clone)]
pub struct KernelModule {
    /// Module name as the kernel knows it (`-` replaced by `_`).
    pub name: String,
    /// Path relative to `/lib/modules/VER/`, e.g. `kernel/net/netfilter/ipvs/ip_vs.ko`.
    pub path: String,
    /// Size of the (uncompressed) `.ko` in bytes.
    pub size: u64,
    pub info: ModInfo,
}

/// Errors of module selection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModuleError {
    #[error("module {name:?} is not in the kernel package{}", suggestion_text(.suggestions))]
    Unknown {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("module {module:?} depends on {dependency:?}, which is not in the kernel package")]
    MissingDependency { module: String, dependency: String },
    #[error("module dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("module {name:?} appears twice in the kernel package: {first} and {second}")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (close matches: {})", suggestions.join(", "))
    }
}

/// kmod treats `-` and `_` in module names as the same character.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name from a `.ko` path: the file stem, normalized.
pub fn name_from_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    normalize_name(file.strip_suffix(".ko").unwrap_or(file))
}

/// A root of the module selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub name: String,
    /// A required root that is missing is an error; an optional one is skipped.
    pub required: bool,
}

impl Root {
    pub fn required(name: &str) -> Self {
        Root {
            name: normalize_name(name),
            required: true,
        }
    }
    pub fn optional(name: &str) -> Self {
        Root {
            name: normalize_name(name),
            required: false,
        }
    }
}

/// What a set of roots resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    /// Every module needed (roots and their transitive `depends=`).
    pub modules: BTreeSet<String>,
    /// Roots that are compiled into the kernel (nothing to load).
    pub builtin_roots: BTreeSet<String>,
    /// Optional roots absent from the package.
    pub skipped_optional: BTreeSet<String>,
}

/// All modules of one kernel package, by name.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    modules: BTreeMap<String, KernelModule>,
    builtin: BTreeSet<String>,
}

impl ModuleIndex {
    /// `builtin`: names from the package's `modules.builtin`.
    pub fn new(
        modules: impl IntoIterator<Item = KernelModule>,
        builtin: BTreeSet<String>,
    ) -> Result<Self, ModuleError> {
        let mut map: BTreeMap<String, KernelModule> = BTreeMap::new();
        for module in modules {
            if let Some(first) = map.get(&module.name) {
                return Err(ModuleError::Duplicate {
                    name: module.name.clone(),
                    first: first.path.clone(),
                    second: module.path.clone(),
                });
            }
            map.insert(module.name.clone(), module);
        }
        Ok(Self {
            modules: map,
            builtin,
        })
    }

    pub fn get(&self, name: &str) -> Option<&KernelModule> {
        self.modules.get(&normalize_name(name))
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// Every module of the package, by name.
    pub fn modules(&self) -> impl Iterator<Item = &KernelModule> {
        self.modules.values()
    }

    /// The modules a softdep word names: the module of that name, else every module with
    /// exactly that alias (`crc32c` → crc32c_generic, crc32c_intel). Built-in: none needed.
    pub fn resolve_name_or_alias(&self, word: &str) -> Vec<String> {
        let name = normalize_name(word);
        if self.modules.contains_key(&name) {
            return vec![name];
        }
        self.modules
            .values()
            .filter(|m| m.info.aliases.iter().any(|a| a == word))
            .map(|m| m.name.clone())
            .collect()
    }

    /// Compiled into the kernel (listed in `modules.builtin`).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_name(name))
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Names of the modules whose path starts with `prefix` (e.g. `kernel/net/netfilter/ipvs/`).
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        self.modules
            .values()
            .filter(|m| m.path.starts_with(prefix))
            .map(|m| m.name.clone())
            .collect()
    }

    /// Roots plus all their transitive dependencies.
    pub fn closure(&self, roots: &[Root]) -> Result<Closure, ModuleError> {
        let mut result = Closure::default();
        let mut stack = Vec::new();
        for root in roots {
            if self.modules.contains_key(&root.name) {
                stack.push(root.name.clone());
            } else if self.builtin.contains(&root.name) {
                result.builtin_roots.insert(root.name.clone());
            } else if root.required {
                return Err(ModuleError::Unknown {
                    name: root.name.clone(),
                    suggestions: self.suggest(&root.name),
                });
            } else {
                result.skipped_optional.insert(root.name.clone());
            }
        }
        while let Some(name) = stack.pop() {
            if !result.modules.insert(name.clone()) {
                continue;
            }
            let module = &self.modules[&name];
            for dep in &module.info.depends {
                let dep = normalize_name(dep);
                if !self.modules.contains_key(&dep) {
                    return Err(ModuleError::MissingDependency {
                        module: name.clone(),
                        dependency: dep,
                    });
                }
                if !result.modules.contains(&dep) {
                    stack.push(dep);
                }
            }
        }
        Ok(result)
    }

    fn deps_of(&self, name: &str) -> BTreeSet<String> {
        self.modules[name]
            .info
            .depends
            .iter()
            .map(|d| normalize_name(d))
            .collect()
    }

    /// A load order of `set` (which must be closed under dependencies): every module comes
    /// after all of its dependencies; among modules that are ready at the same time the
    /// alphabetically first goes first, so the order is deterministic.
    pub fn load_order(&self, set: &BTreeSet<String>) -> Result<Vec<String>, ModuleError> {
        let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
        let mut users: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for name in set {
            let deps = self.deps_of(name);
            pending.insert(name, deps.len());
            for dep in deps {
                if !set.contains(&dep) {
                    return Err(ModuleError::MissingDependency {
                        module: name.clone(),
                        dependency: dep,
                    });
                }
                users.entry(dep).or_default().push(name);
            }
        }
        let mut ready: BTreeSet<&str> = pending
            .iter()
            .filter(|(_, &n)| n == 0)
            .map(|(&name, _)| name)
            .collect();
        let mut order = Vec::with_capacity(set.len());
        while let Some(name) = ready.pop_first() {
            order.push(name.to_string());
            for &user in users.get(name).map(Vec::as_slice).unwrap_or_default() {
                let count = pending.get_mut(user).expect("user is in the set");
                *count -= 1;
                if *count == 0 {
                    ready.insert(user);
                }
            }
        }
        if order.len() < set.len() {
            let stuck: BTreeSet<&str> = pending
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(&name, _)| name)
                .collect();
            return Err(ModuleError::Cycle(self.find_cycle(&stuck)));
        }
        Ok(order)
    }

    /// Every module left over by Kahn's algorithm has a dependency that is also left over, so
    /// walking "first unresolved dependency" from any of them must revisit a module.
    fn find_cycle(&self, stuck: &BTreeSet<&str>) -> Vec<String> {
        let Some(&start) = stuck.first() else {
            return Vec::new();
        };
        let mut path: Vec<String> = vec![start.to_string()];
        loop {
            let current = path.last().expect("path is never empty");
            let next = self
                .deps_of(current)
                .into_iter()
                .find(|d| stuck.contains(d.as_str()))
                .expect("a stuck module has a stuck dependency");
            if let Some(pos) = path.iter().position(|p| *p == next) {
                let mut cycle = path.split_off(pos);
                cycle.push(next);
                return cycle;
            }
            path.push(next);
        }
    }

    /// All transitive dependencies of `name`, in the order kmod's depmod writes them to
    /// modules.dep: the module's closest users-side dependency first, the most basic last, so
    /// loading the list from its end to its start satisfies every dependency.
    fn sorted_transitive_deps(&self, name: &str, load_pos: &BTreeMap<&str, usize>) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = self.deps_of(name).into_iter().collect();
        while let Some(dep) = stack.pop() {
            if seen.insert(dep.clone()) {
                stack.extend(self.deps_of(&dep));
            }
        }
        let mut deps: Vec<String> = seen.into_iter().collect();
        deps.sort_by_key(|d| std::cmp::Reverse(load_pos[d.as_str()]));
        deps
    }

    /// `modules.dep` for the modules in `order` (a load order from [`Self::load_order`]), one
    /// line per module sorted by path: `kernel/a.ko: kernel/b.ko kernel/c.ko`.
    pub fn modules_dep(&self, order: &[String]) -> String {
        self.modules_dep_as(order, |name| &self.modules[name].path)
    }

    /// [`Self::modules_dep`] with each module's path as `path_of(name)` gives it (a module
    /// stored as `NAME.ko.zst`).
    pub fn modules_dep_as<'a>(
        &'a self,
        order: &[String],
        path_of: impl Fn(&str) -> &'a String,
    ) -> String {
        let load_pos: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut lines: Vec<String> = order
            .iter()
            .map(|name| {
                let mut line = format!("{}:", path_of(name));
                for dep in self.sorted_transitive_deps(name, &load_pos) {
                    line.push(' ');
                    line.push_str(path_of(&dep));
                }
                line
            })
            .collect();
        lines.sort();
        join_lines(lines)
    }

    /// `modules.alias` (kmod text format) for the given modules, sorted by module path.
    pub fn modules_alias(&self, names: &[String]) -> String {
        let mut lines = vec!["# Aliases extracted from modules themselves.".to_string()];
        for module in self.sorted_by_path(names) {
            for alias in &module.info.aliases {
                lines.push(format!("alias {alias} {}", module.name));
            }
        }
        join_lines(lines)
    }

    /// `modules.softdep` (kmod text format) for the given modules, sorted by module path.
    pub fn modules_softdep(&self, names: &[String]) -> String {
        let mut lines = vec!["# Soft dependencies extracted from modules themselves.".to_string()];
        for module in self.sorted_by_path(names) {
            for softdep in &module.info.softdeps {
                lines.push(format!("softdep {} {softdep}", module.name));
            }
        }
        join_lines(lines)
    }

    fn sorted_by_path(&self, names: &[String]) -> Vec<&KernelModule> {
        let mut modules: Vec<&KernelModule> = names.iter().map(|n| &self.modules[n]).collect();
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        modules
    }

    /// Up to five module names close to `wanted` (edit distance ≤ 2, or one contains the other).
    pub fn suggest(&self, wanted: &str) -> Vec<String> {
        let mut scored: Vec<(usize, &String)> = self
            .modules
            .keys()
            .filter_map(|name| {
                let distance = edit_distance(wanted, name);
                let contains =
                    wanted.len() >= 3 && (name.contains(wanted) || wanted.contains(name.as_str()));
                (distance <= 2 || contains).then_some((distance, name))
            })
            .collect();
        scored.sort();
        scored.into_iter().take(5).map(|(_, n)| n.clone()).collect()
    }
}

/// `modules.boot`: one module name per line.
pub fn modules_boot(order: &[String]) -> String {
    join_lines(order.to_vec())
}

fn join_lines(lines: Vec<String>) -> String {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(prev[j + 1] + 1).min(current[j] + 1);
        }
        prev = current;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, depends: &[&str], aliases: &[&str]) -> KernelModule {
        KernelModule {
            name: name_from_path(path),
            path: path.to_string(),
            size: 100,
            info: ModInfo {
                depends: depends.iter().map(|s| s.to_string()).collect(),
                aliases: aliases.iter().map(|s| s.to_string()).collect(),
                ..ModInfo::default()
            },
        }
    }

    /// The real dependency shape of IPVS in Debian's 6.1 cloud kernel.
    fn ipvs_index() -> ModuleIndex {
        ModuleIndex::new(
            [
                module(
                    "kernel/net/netfilter/ipvs/ip_vs.ko",
                    &["nf_conntrack", "libcrc32c", "nf_defrag_ipv6"],
                    &["net-pf-16-proto-16-family-IPVS"],
                ),
                module("kernel/net/netfilter/ipvs/ip_vs_rr.ko", &["ip_vs"], &[]),
                module(
                    "kernel/net/netfilter/nf_conntrack.ko",
                    &["nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"],
                    &["nf_conntrack-2", "nf_conntrack-10"],
                ),
                module("kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko", &[], &[]),
                module("kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko", &[], &[]),
                module("kernel/lib/libcrc32c.ko", &[], &[]),
                module("kernel/drivers/net/dummy.ko", &[], &["rtnl-link-dummy"]),
            ],
            ["button".to_string()].into(),
        )
        .unwrap()
    }

    fn position(order: &[String], name: &str) -> usize {
        order.iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn closure_follows_depends() {
        let index = ipvs_index();
        let closure = index.closure(&[Root::required("ip_vs_rr")]).unwrap();
        let expected: BTreeSet<String> = [
            "ip_vs_rr",
            "ip_vs",
            "nf_conntrack",
            "nf_defrag_ipv4",
            "nf_defrag_ipv6",
            "libcrc32c",
        ]
        .map(String::from)
        .into();
        assert_eq!(closure.modules, expected);
    }

    #[test]
    fn load_order_puts_dependencies_first() {
        let index = ipvs_index();
        let closure = index.closure(&[Root::required("ip_vs_rr")]).unwrap();
        let order = index.load_order(&closure.modules).unwrap();
        assert_eq!(
            order,
            [
                "libcrc32c",
                "nf_defrag_ipv4",
                "nf_defrag_ipv6",
                "nf_conntrack",
                "ip_vs",
                "ip_vs_rr"
            ]
        );
        for name in &order {
            for dep in &index.get(name).unwrap().info.depends {
                assert!(position(&order, dep) < position(&order, name));
            }
        }
    }

    #[test]
    fn builtin_and_optional_roots() {
        let index = ipvs_index();
        let closure = index
            .closure(&[
                Root::required("button"),
                Root::optional("nf_conntrack_netlink"),
                Root::required("dummy"),
            ])
            .unwrap();
        assert_eq!(closure.modules, ["dummy".to_string()].into());
        assert!(closure.builtin_roots.contains("button"));
        assert!(closure.skipped_optional.contains("nf_conntrack_netlink"));
    }

    #[test]
    fn unknown_root_suggests_close_names() {
        let index = ipvs_index();
        let err = index.closure(&[Root::required("ip-vs-r")]).unwrap_err();
        match &err {
            ModuleError::Unknown { name, suggestions } => {
                assert_eq!(name, "ip_vs_r");
                assert_eq!(suggestions[..2], ["ip_vs_rr", "ip_vs"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("close matches: ip_vs_rr, ip_vs"));
    }

    #[test]
    fn missing_dependency_is_named() {
        let index =
            ModuleIndex::new([module("kernel/a.ko", &["b"], &[])], BTreeSet::new()).unwrap();
        assert_eq!(
            index.closure(&[Root::required("a")]).unwrap_err(),
            ModuleError::MissingDependency {
                module: "a".into(),
                dependency: "b".into()
            }
        );
    }

    #[test]
    fn cycle_is_reported_with_its_path() {
        let index = ModuleIndex::new(
            [
                module("kernel/a.ko", &["b"], &[]),
                module("kernel/b.ko", &["c"], &[]),
                module("kernel/c.ko", &["a"], &[]),
                module("kernel/d.ko", &["a"], &[]),
            ],
            BTreeSet::new(),
        )
        .unwrap();
        let closure = index.closure(&[Root::required("d")]).unwrap();
        let err = index.load_order(&closure.modules).unwrap_err();
        assert_eq!(
            err,
            ModuleError::Cycle(["a", "b", "c", "a"].map(String::from).into())
        );
        assert_eq!(err.to_string(), "module dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn duplicate_module_names_are_rejected() {
        let err = ModuleIndex::new(
            [
                module("kernel/x/a.ko", &[], &[]),
                module("kernel/y/a.ko", &[], &[]),
            ],
            BTreeSet::new(),
        )
        .unwrap_err();
        assert!(matches!(err, ModuleError::Duplicate { .. }));
    }

    #[test]
    fn modules_dep_uses_kmod_format_and_order() {
        let index = ipvs_index();
        let closure = index.closure(&[Root::required("ip_vs_rr")]).unwrap();
        let order = index.load_order(&closure.modules).unwrap();
        let dep = index.modules_dep(&order);
        let expected = "\
kernel/lib/libcrc32c.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
";
        assert_eq!(dep, expected);
    }

    #[test]
    fn modules_alias_and_softdep_use_kmod_format() {
        let mut index = ipvs_index();
        index
            .modules
            .get_mut("libcrc32c")
            .unwrap()
            .info
            .softdeps
            .push("pre: crc32c".into());
        let names: Vec<String> = ["nf_conntrack", "dummy", "ip_vs", "libcrc32c"]
            .map(String::from)
            .into();
        assert_eq!(
            index.modules_alias(&names),
            "# Aliases extracted from modules themselves.\n\
             alias rtnl-link-dummy dummy\n\
             alias net-pf-16-proto-16-family-IPVS ip_vs\n\
             alias nf_conntrack-2 nf_conntrack\n\
             alias nf_conntrack-10 nf_conntrack\n"
        );
        assert_eq!(
            index.modules_softdep(&names),
            "# Soft dependencies extracted from modules themselves.\n\
             softdep libcrc32c pre: crc32c\n"
        );
        assert_eq!(modules_boot(&names[..2]), "nf_conntrack\ndummy\n");
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(name_from_path("kernel/drivers/net/foo-bar.ko"), "foo_bar");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
