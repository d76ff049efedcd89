//! Facts that static analysis of a root filesystem establishes, in a form
//! the decision engine can use without doing any I/O itself.

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
}

#[cfg(test)]
mod tests {
    use super::wildcard;

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
