//! Glob expansion beneath a root filesystem (`*`, `?`, `[…]` in any path
//! component), the way `glob(3)` expands include patterns.

use globset::{GlobBuilder, GlobMatcher};
use vexxy_rootfs::{normalize, RootFs};

/// Whether a path component holds glob metacharacters.
pub(crate) fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Compiles one path component as a glob.
pub(crate) fn component_matcher(component: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(component)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// Checks that every component of a pattern is a valid glob.
pub(crate) fn validate(pattern: &str) -> Result<(), globset::Error> {
    for c in pattern.split('/').filter(|c| has_magic(c)) {
        component_matcher(c)?;
    }
    Ok(())
}

/// Expands an absolute image-path pattern beneath `root`, sorted. A pattern
/// without metacharacters yields itself when it exists. Names starting with
/// a dot only match components that start with a dot, as in the shell.
pub(crate) fn expand(root: &RootFs, pattern: &str) -> Vec<String> {
    let normalized = normalize(pattern);
    if !has_magic(&normalized) {
        return if root.exists(&normalized) {
            vec![normalized]
        } else {
            Vec::new()
        };
    }
    let mut current = vec![String::from("/")];
    for comp in normalized.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if has_magic(comp) {
            let Ok(matcher) = component_matcher(comp) else {
                return Vec::new();
            };
            for dir in &current {
                let Ok(entries) = root.read_dir(dir) else {
                    continue;
                };
                for e in entries {
                    let name = e.path.rsplit('/').next().unwrap_or_default();
                    if name.starts_with('.') && !comp.starts_with('.') {
                        continue;
                    }
                    if matcher.is_match(name) {
                        next.push(join(dir, name));
                    }
                }
            }
        } else {
            next = current.iter().map(|d| join(d, comp)).collect();
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    let mut out: Vec<String> = current.into_iter().filter(|p| root.exists(p)).collect();
    out.sort();
    out.dedup();
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}
