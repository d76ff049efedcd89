//! Facts that static analysis of a root filesystem establishes, in a form
//! the decision engine can use without doing any I/O itself.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::{Confidence, Finding, Justification, Status};

/// What a plugin loader's configuration says about one plugin file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoaderVerdict {
    /// The loader's configuration does not load it (e.g. an nginx module
    /// without a `load_module` line).
    NotLoaded { loader: String, reason: String },
    /// No known loader explains the file: something could `dlopen` it.
    Unknown,
}

/// How the ELF objects of one package can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageReach {
    /// The package owns no ELF object: ELF analysis cannot say anything.
    NoElf,
    /// An object of the package is in the dependency closure of an entrypoint
    /// (or of a plugin the configuration loads).
    FromEntrypoint {
        object: String,
        /// The load chain from the entrypoint to `object`, entrypoint first.
        chain: Vec<String>,
    },
    /// Not loaded from an entrypoint, but other executables of the image load
    /// it (they could run, e.g. from a shell or a health check).
    FromOtherExecutables {
        /// Up to a handful of such executables, sorted.
        executables: Vec<String>,
        /// How many there are in all.
        count: usize,
    },
    /// Reachable only from shared objects nothing links against (plugins),
    /// with what each plugin's loader says.
    OnlyViaPlugins {
        plugins: Vec<(String, LoaderVerdict)>,
    },
    /// Nothing in the image links or loads it.
    Unreferenced,
}

/// The ELF reachability of a root filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfReach {
    /// The entrypoint executables analysed (absolute paths in the image).
    pub entrypoints: Vec<String>,
    /// Plugins configuration loads, added to the entrypoint closure.
    pub loaded_plugins: Vec<String>,
    /// Objects of the entrypoint closure that import `dlopen`: when there
    /// are any, a shared object no loader explains could be loaded at run
    /// time, so static analysis cannot rule it out.
    pub entry_dlopen_callers: Vec<String>,
    /// Per package name.
    pub packages: BTreeMap<String, PackageReach>,
    /// `DT_NEEDED` names that could not be resolved, with who needed them.
    pub unresolved: Vec<(String, String)>,
    /// How many ELF objects were read.
    pub objects: usize,
}

/// Which findings a rule outcome applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Package names; `*` matches any run of characters. Empty: any package.
    pub packages: Vec<String>,
    /// Vulnerability ids (matched against id and aliases). Empty: any.
    pub vulnerabilities: Vec<String>,
}

impl Selector {
    pub fn matches(&self, finding: &Finding) -> bool {
        let pkg_ok = self.packages.is_empty()
            || self.packages.iter().any(|p| {
                wildcard(p, &finding.package.name)
                    || finding
                        .package
                        .source_name
                        .as_deref()
                        .is_some_and(|s| wildcard(p, s))
            });
        let vuln_ok = self.vulnerabilities.is_empty()
            || finding.ids().any(|id| {
                self.vulnerabilities
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(id))
            });
        pkg_ok && vuln_ok
    }
}

/// `*`-only glob, case-sensitive; enough for package names.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The result of evaluating one configuration rule against a root filesystem.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub description: String,
    pub selector: Selector,
    pub status: Status,
    pub justification: Option<Justification>,
    pub confidence: Confidence,
    /// What the rule observed, e.g. "no server block sets ssl_verify_client".
    pub observation: String,
    pub facts: Vec<(String, String)>,
}

/// Everything static analysis established about one image.
#[derive(Clone, Debug, Default)]
pub struct ReachFacts {
    pub elf: Option<ElfReach>,
    /// Outcomes of rules whose conditions held.
    pub rules: Vec<RuleOutcome>,
    /// Functions advisories name, resolved in the image's objects, one
    /// entry per (vulnerability, package) that names any.
    pub functions: Vec<crate::NamedFunctions>,
    /// The image's symlinks and hard links, so a path used at run time is
    /// attributed to every package that owns a name of the same file.
    pub links: ImageLinks,
    /// Data packages with security relevance (CA bundles, time zones,
    /// locales, crypto policies) and the files their data lives in.
    pub security_data: Vec<SecurityData>,
}

/// How many symlinks one resolution follows before giving up (a loop).
const MAX_LINK_HOPS: usize = 40;

/// The image's symlinks and hard links: the several paths of one file.
///
/// Built from the root filesystem by static analysis; used without I/O by
/// the decision engine to resolve the paths a traced run recorded and the
/// paths packages own to the files they name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageLinks {
    /// Symlink path → its target as the link stores it, made absolute
    /// (relative targets joined to the link's directory, `.` and `..`
    /// folded). Targets may themselves go through links.
    symlinks: BTreeMap<String, String>,
    /// Path → the other paths of the same regular file (hard links).
    hardlinks: BTreeMap<String, Vec<String>>,
    /// Whether the image had more symlinks than were recorded.
    truncated: bool,
}

/// Where a path leads in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The path with every symlink component followed.
    pub path: Cow<'a, str>,
    /// The symlinks passed on the way (the path itself first when it is one),
    /// as absolute paths.
    pub via: Vec<String>,
}

impl ImageLinks {
    /// `symlinks`: (link path, target as stored in the link);
    /// `hardlink_groups`: the paths of each file with several links.
    pub fn new(
        symlinks: impl IntoIterator<Item = (String, String)>,
        hardlink_groups: impl IntoIterator<Item = Vec<String>>,
    ) -> Self {
        let symlinks = symlinks
            .into_iter()
            .filter_map(|(link, target)| {
                let dir = link.rsplit_once('/').map_or("", |(d, _)| d);
                let joined = if target.starts_with('/') {
                    target
                } else {
                    format!("{dir}/{target}")
                };
                let clean = normalize(&joined)?;
                (clean != link).then_some((link, clean))
            })
            .collect();
        let mut hardlinks: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in hardlink_groups {
            for p in &group {
                let others: Vec<String> = group.iter().filter(|q| *q != p).cloned().collect();
                if !others.is_empty() {
                    hardlinks.entry(p.clone()).or_default().extend(others);
                }
            }
        }
        Self {
            symlinks,
            hardlinks,
            truncated: false,
        }
    }

    /// Marks the links as recorded only in part (the image had more
    /// symlinks than static analysis keeps): a use through an unrecorded
    /// link goes unseen, so absence claims must not rest on them alone.
    #[must_use]
    pub fn truncated_at_limit(mut self) -> Self {
        self.truncated = true;
        self
    }

    /// Whether the image had more symlinks than were recorded.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Whether nothing is known (no links recorded).
    pub fn is_empty(&self) -> bool {
        self.symlinks.is_empty() && self.hardlinks.is_empty()
    }

    /// How many symlinks are recorded.
    pub fn symlink_count(&self) -> usize {
        self.symlinks.len()
    }

    /// Follows every symlink component of the absolute path `path`, with
    /// chroot semantics (absolute targets restart at the image root, `..`
    /// stops at it). Gives up after a bounded number of links (a loop),
    /// returning what it reached.
    pub fn resolve<'a>(&self, path: &'a str) -> Resolved<'a> {
        let mut via = Vec::new();
        if self.symlinks.is_empty() || !path.starts_with('/') {
            return Resolved {
                path: Cow::Borrowed(path),
                via,
            };
        }
        let mut current = path.to_owned();
        let mut hops = 0;
        'restart: loop {
            let mut done = String::new();
            let mut rest = current.as_str();
            while let Some(stripped) = rest.strip_prefix('/') {
                let (component, tail) = stripped
                    .split_once('/')
                    .map_or((stripped, ""), |(c, t)| (c, t));
                rest = if tail.is_empty() {
                    ""
                } else {
                    &stripped[component.len()..]
                };
                if component.is_empty() {
                    continue;
                }
                done.push('/');
                done.push_str(component);
                if let Some(target) = self.symlinks.get(&done) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        break 'restart;
                    }
                    via.push(done.clone());
                    current = format!("{target}{rest}");
                    continue 'restart;
                }
            }
            break;
        }
        if current == path {
            Resolved {
                path: Cow::Borrowed(path),
                via,
            }
        } else {
            Resolved {
                path: Cow::Owned(current),
                via,
            }
        }
    }

    /// The other names of the regular file at `path` (hard links).
    pub fn hardlinks_of(&self, path: &str) -> &[String] {
        self.hardlinks.get(path).map_or(&[], Vec::as_slice)
    }

    /// Every symlink: (path, absolute target).
    pub fn symlinks(&self) -> impl Iterator<Item = (&str, &str)> {
        self.symlinks.iter().map(|(a, b)| (a.as_str(), b.as_str()))
    }
}

/// `.` and `..` folded, `..` stopping at the root; `None` for a relative path.
fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// A data package whose data is itself security-relevant: a distrusted CA
/// in a bundle, a wrong time zone rule or a weak crypto policy is a
/// vulnerability in data, so "ships only data" proves nothing for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityData {
    /// The rule's id, e.g. `ca-certificates`.
    pub id: String,
    /// What kind of data, e.g. "CA certificates".
    pub kind: String,
    /// Package names; `*` matches any run of characters.
    pub packages: Vec<String>,
    /// Files the data lives in, including files generated from it after
    /// installation that no package database lists (a CA bundle built by
    /// `update-ca-certificates`); `*` matches any run of characters.
    pub paths: Vec<String>,
}

impl SecurityData {
    /// Whether this entry is about the package `name`.
    pub fn covers_package(&self, name: &str) -> bool {
        self.packages.iter().any(|p| wildcard(p, name))
    }

    /// Whether `path` holds this entry's data.
    pub fn covers_path(&self, path: &str) -> bool {
        self.paths.iter().any(|p| wildcard(p, path))
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn links_resolve_chains_directories_and_loops() {
        let links = super::ImageLinks::new(
            [
                (
                    "/usr/bin/redis-server".to_owned(),
                    "redis-check-rdb".to_owned(),
                ),
                (
                    "/usr/bin/awk".to_owned(),
                    "/etc/alternatives/awk".to_owned(),
                ),
                (
                    "/etc/alternatives/awk".to_owned(),
                    "/usr/bin/mawk".to_owned(),
                ),
                ("/usr/lib/jvm/default-java".to_owned(), "java-17".to_owned()),
                (
                    "/etc/localtime".to_owned(),
                    "../usr/share/zoneinfo/Etc/UTC".to_owned(),
                ),
                ("/loop/a".to_owned(), "b".to_owned()),
                ("/loop/b".to_owned(), "a".to_owned()),
                ("/up".to_owned(), "../../../etc".to_owned()),
            ],
            [vec![
                "/usr/bin/perl".to_owned(),
                "/usr/bin/perl5.36.0".to_owned(),
            ]],
        );
        for (path, want, via) in [
            (
                "/usr/bin/redis-server",
                "/usr/bin/redis-check-rdb",
                vec!["/usr/bin/redis-server"],
            ),
            (
                "/usr/bin/awk",
                "/usr/bin/mawk",
                vec!["/usr/bin/awk", "/etc/alternatives/awk"],
            ),
            (
                "/usr/lib/jvm/default-java/bin/java",
                "/usr/lib/jvm/java-17/bin/java",
                vec!["/usr/lib/jvm/default-java"],
            ),
            (
                "/etc/localtime",
                "/usr/share/zoneinfo/Etc/UTC",
                vec!["/etc/localtime"],
            ),
            ("/up/passwd", "/etc/passwd", vec!["/up"]),
            ("/usr/bin/mawk", "/usr/bin/mawk", vec![]),
            ("relative/x", "relative/x", vec![]),
        ] {
            let r = links.resolve(path);
            assert_eq!(r.path, want, "{path}");
            assert_eq!(r.via, via, "{path}");
        }
        // a loop ends, bounded
        assert!(links.resolve("/loop/a").via.len() > 1);
        assert_eq!(links.hardlinks_of("/usr/bin/perl"), ["/usr/bin/perl5.36.0"]);
        assert!(links.hardlinks_of("/usr/bin/mawk").is_empty());
    }

    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("linux-headers-*", "linux-headers-6.1.0-13-amd64", true),
            ("linux-headers-*", "linux-libc-dev", false),
            ("*", "", true),
            ("lib*-dev", "libssl-dev", true),
            ("lib*-dev", "libssl3", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("exact", "exact", true),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} vs {t}");
        }
    }
}
