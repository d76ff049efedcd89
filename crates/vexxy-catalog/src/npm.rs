//! Installed npm packages: `node_modules/<name>/package.json` and
//! `node_modules/@scope/<name>/package.json`, at any depth of nesting, and
//! the same below Debian's global module directories (`/usr/share/nodejs`,
//! `/usr/lib/nodejs`, `/usr/lib/<triplet>/nodejs`), which node searches.
//! Only manifests at a package root count, so the `package.json` files of
//! test fixtures and examples inside a package are not mistaken for
//! packages. Each package owns the files under its directory except those
//! of its own nested `node_modules`.

use std::collections::BTreeSet;

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{
    files::FileResolver,
    walk::{below, parent},
};

/// Largest `package.json` read (4 MiB).
pub const NPM_MANIFEST_LIMIT: u64 = 4 << 20;
/// Most npm packages cataloged in one image.
pub const NPM_MAX_PACKAGES: usize = 200_000;

/// Catalogs the npm packages among the walked entries.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut out = Vec::new();
    for entry in entries {
        if entry.kind != EntryKind::File || !entry.path.ends_with("/package.json") {
            continue;
        }
        let dir = parent(&entry.path);
        if !is_package_root(dir) {
            continue;
        }
        if out.len() >= NPM_MAX_PACKAGES {
            warnings.push(format!(
                "more than {NPM_MAX_PACKAGES} npm packages: the rest are not cataloged"
            ));
            break;
        }
        let (name, version) = match read_manifest(root, &entry.path) {
            Ok(Some(nv)) => nv,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(e);
                continue;
            }
        };
        let (namespace, short) = match name.split_once('/') {
            Some((scope, short)) => (Some(scope), short),
            None => (None, name.as_str()),
        };
        let purl = match Purl::new("npm", namespace, short, Some(&version)) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("{}: {e}", entry.path));
                continue;
            }
        };
        let mut files = BTreeSet::new();
        let nested = format!("{dir}/node_modules/");
        for e in below(entries, dir) {
            if e.kind != EntryKind::Dir && !e.path.starts_with(&nested) {
                resolver.add(&e.path, &mut files);
            }
        }
        let mut p = Package::new(name, version, Ecosystem::Npm);
        p.purl = Some(purl);
        p.files = files;
        out.push(p);
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// Debian's global module directories (`/usr/share/nodejs`, `/usr/lib/nodejs`,
/// `/usr/lib/<triplet>/nodejs`): node searches them like a `node_modules`,
/// and Debian's node packages (`node-undici`, `node-acorn`, …) install there.
fn is_module_dir(dir: &str) -> bool {
    matches!(dir, "/usr/share/nodejs" | "/usr/lib/nodejs")
        || dir
            .strip_prefix("/usr/lib/")
            .and_then(|rest| rest.strip_suffix("/nodejs"))
            .is_some_and(|triplet| !triplet.is_empty() && !triplet.contains('/'))
}

/// `…/node_modules/<name>` or `…/node_modules/@scope/<name>`, and the same
/// below Debian's global module directories.
fn is_package_root(dir: &str) -> bool {
    let Some((up, name)) = dir.rsplit_once('/') else {
        return false;
    };
    if name.is_empty() || name.starts_with('.') {
        return false;
    }
    let up_name = up.rsplit('/').next().unwrap_or(up);
    if up_name == "node_modules" || is_module_dir(up) {
        return !name.starts_with('@');
    }
    let Some((above, _)) = up.rsplit_once('/') else {
        return false;
    };
    let above_name = above.rsplit('/').next().unwrap_or(above);
    up_name.starts_with('@')
        && up_name.len() > 1
        && (above_name == "node_modules" || is_module_dir(above))
}

/// Name and version of a manifest; `None` for a manifest that names no
/// package (workspace roots, private stubs without a version).
fn read_manifest(root: &RootFs, path: &str) -> Result<Option<(String, String)>, String> {
    let bytes = root
        .read(path, NPM_MANIFEST_LIMIT)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{path}: invalid json: {}", e.to_string().to_lowercase()))?;
    let field = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
    };
    let (Some(name), Some(version)) = (field("name"), field("version")) else {
        return Ok(None);
    };
    if name.is_empty() || version.is_empty() {
        return Ok(None);
    }
    let valid = |s: &str| !s.contains(|c: char| c.is_whitespace() || c.is_control());
    let scoped_ok = match name.split_once('/') {
        Some((scope, short)) => {
            scope.starts_with('@') && scope.len() > 1 && !short.is_empty() && !short.contains('/')
        }
        None => true,
    };
    if !valid(name) || !valid(version) || !scoped_ok {
        return Err(format!(
            "{path}: invalid package name or version {:?}@{:?}",
            crate::clip(name),
            crate::clip(version)
        ));
    }
    Ok(Some((name.to_owned(), version.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_roots() {
        for (dir, want) in [
            ("/app/node_modules/express", true),
            ("/app/node_modules/@types/node", true),
            ("/app/node_modules/a/node_modules/b", true),
            ("/app/node_modules/express/test/fixtures", false),
            ("/app/node_modules/@types", false),
            ("/app/node_modules/.bin", false),
            ("/app", false),
            ("/node_modules/@/x", false),
            ("/usr/share/nodejs/undici", true),
            ("/usr/share/nodejs/@types/node", true),
            ("/usr/lib/nodejs/acorn", true),
            ("/usr/lib/x86_64-linux-gnu/nodejs/cjs-module-lexer", true),
            ("/usr/share/nodejs/undici/lib", false),
            ("/usr/share/nodejs", false),
            ("/usr/lib/a/b/nodejs/x", false),
            ("/opt/nodejs/x", false),
        ] {
            assert_eq!(is_package_root(dir), want, "{dir}");
        }
    }
}
