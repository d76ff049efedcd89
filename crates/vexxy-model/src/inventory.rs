use std::collections::{BTreeMap, HashMap};

use crate::{Package, PackageRef};

/// Where an inventory's package list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventorySource {
    /// An SBOM handed to us; it may be incomplete.
    Sbom,
    /// The package databases of a root filesystem we read ourselves.
    RootFs,
}

/// The packages of one image, indexed by name and by owned file.
#[derive(Clone, Debug)]
pub struct Inventory {
    pub source: InventorySource,
    packages: Vec<Package>,
    by_name: HashMap<String, Vec<usize>>,
    by_path: HashMap<String, usize>,
}

impl Inventory {
    pub fn new(source: InventorySource, packages: Vec<Package>) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(packages.len());
        let mut by_path = HashMap::new();
        for (i, p) in packages.iter().enumerate() {
            by_name
                .entry(p.name.to_ascii_lowercase())
                .or_default()
                .push(i);
            for f in &p.files {
                // First owner wins; dpkg diversions make later claims rare and
                // an ambiguous owner must not flip between runs.
                by_path.entry(f.clone()).or_insert(i);
            }
        }
        Self {
            source,
            packages,
            by_name,
            by_path,
        }
    }

    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Packages with this name (any version), case-insensitively.
    pub fn by_name(&self, name: &str) -> impl Iterator<Item = &Package> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .map(|&i| &self.packages[i])
    }

    /// The package matching a finding's package: same ecosystem family and
    /// name; an exact version match is preferred.
    pub fn find(&self, r: &PackageRef) -> Option<&Package> {
        let mut best = None;
        for p in self.by_name(&r.name) {
            if p.ecosystem != r.ecosystem {
                continue;
            }
            if p.version == r.version {
                return Some(p);
            }
            best.get_or_insert(p);
        }
        if best.is_some() {
            return best;
        }
        // Names differ between tools (Trivy names Maven packages
        // `group:artifact`); the purl's identity does not.
        let want = r.purl.as_ref()?;
        let same = |p: &&Package| {
            p.purl.as_ref().is_some_and(|q| {
                q.ty() == want.ty()
                    && q.namespace() == want.namespace()
                    && q.name().eq_ignore_ascii_case(want.name())
            })
        };
        let mut candidates = self.packages.iter().filter(same);
        let first = candidates.next()?;
        Some(
            std::iter::once(first)
                .chain(candidates)
                .find(|p| Some(p.version.as_str()) == want.version())
                .unwrap_or(first),
        )
    }

    /// The package that owns an absolute path.
    pub fn owner_of(&self, path: &str) -> Option<&Package> {
        self.by_path.get(path).map(|&i| &self.packages[i])
    }

    /// Number of packages by ecosystem, for summaries.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in &self.packages {
            *m.entry(format!("{:?}", p.ecosystem).to_lowercase())
                .or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ecosystem;

    #[test]
    fn finds_by_name_and_path() {
        let mut a = Package::new("libtiff6", "4.5.0-6+deb12u1", Ecosystem::Deb);
        a.files
            .insert("/usr/lib/x86_64-linux-gnu/libtiff.so.6".into());
        let inv = Inventory::new(InventorySource::RootFs, vec![a]);
        let r = PackageRef {
            name: "libtiff6".into(),
            version: "4.5.0-6+deb12u2".into(),
            ecosystem: Ecosystem::Deb,
            purl: None,
            source_name: None,
        };
        assert_eq!(
            inv.find(&r).map(|p| p.version.as_str()),
            Some("4.5.0-6+deb12u1")
        );
        assert_eq!(
            inv.owner_of("/usr/lib/x86_64-linux-gnu/libtiff.so.6")
                .map(|p| p.name.as_str()),
            Some("libtiff6")
        );
        let other = PackageRef {
            ecosystem: Ecosystem::Python,
            ..r
        };
        assert!(inv.find(&other).is_none());
    }
}
