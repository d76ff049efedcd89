//! Installed Ruby gems: `<gem home>/specifications/<full name>.gemspec`
//! in every gem home of the image (`/var/lib/gems/<api>`,
//! `/usr/lib/ruby/gems/<api>`, `/usr/local/bundle`, `vendor/bundle/ruby/<api>`,
//! Debian's `/usr/share/rubygems-integration/<api or all>`, …), and the
//! default gems under `specifications/default/`.
//!
//! A gem owns its specification, everything under `gems/<full name>/`
//! and `extensions/<platform>/<api>/<full name>/` (compiled extensions),
//! and its `cache/<full name>.gem`. Debian's gem2deb packages of bookworm
//! install the same layout under `/usr/share/rubygems-integration/all`
//! (`gems/rack-2.2.22/lib/…`); older ones install into `vendor_ruby` and
//! their specification lists `files` relative to the require paths (often
//! only the executables): the gem owns the listed files found under
//! Debian's `vendor_ruby` directories, and when that finds no Ruby code,
//! every file but the documentation of the operating-system package that
//! ships the specification. dpkg owns those files too, which is fine: the
//! runtime evidence is read per package. A default gem's files live in
//! Ruby's standard library, which its specification lists the same way
//! (relative to `lib/`); the gem owns the ones found under the
//! `rubylibdir` beside its gem home and its architecture-dependent twin.
//!
//! Name and version come from the specification's `name`/`version`
//! assignments (`s.name = "rack".freeze`), else from the file name split at
//! the last `-` followed by a digit. Nothing in a specification is
//! evaluated.

use std::collections::BTreeSet;

use vexxy_model::{Ecosystem, Package, Purl};
use vexxy_rootfs::{Entry, EntryKind, RootFs};

use crate::{
    files::FileResolver,
    walk::{below, file_name, parent},
};

/// Largest gemspec read (1 MiB).
pub const GEMSPEC_LIMIT: u64 = 1 << 20;
/// Most gems cataloged in one image.
pub const GEM_MAX_PACKAGES: usize = 100_000;
/// Most `files` entries taken from one specification.
const MAX_LISTED_FILES: usize = 50_000;

/// Catalogs the gems among the walked entries.
pub(crate) fn catalog(
    root: &RootFs,
    entries: &[Entry],
    os_packages: &[Package],
    resolver: &mut FileResolver<'_>,
    warnings: &mut Vec<String>,
) -> Vec<Package> {
    let mut out = Vec::new();
    for entry in entries {
        if entry.kind != EntryKind::File {
            continue;
        }
        let Some(spec) = locate(&entry.path) else {
            continue;
        };
        if out.len() >= GEM_MAX_PACKAGES {
            warnings.push(format!(
                "more than {GEM_MAX_PACKAGES} ruby gems: the rest are not cataloged"
            ));
            break;
        }
        let text = match root.read(&entry.path, GEMSPEC_LIMIT) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                warnings.push(format!("cannot read {}: {e}", entry.path));
                continue;
            }
        };
        let fields = parse_gemspec(&text);
        let from_file = split_full_name(spec.full_name);
        let name = fields
            .name
            .clone()
            .or_else(|| from_file.as_ref().map(|(n, _)| n.clone()));
        let version = fields
            .version
            .clone()
            .or_else(|| from_file.as_ref().map(|(_, v)| v.clone()));
        let (Some(name), Some(version)) = (name, version) else {
            warnings.push(format!(
                "{}: no name or version in the specification or its file name; skipped",
                entry.path
            ));
            continue;
        };
        if !valid(&name) || !valid(&version) || name.contains('/') {
            warnings.push(format!(
                "{}: invalid gem name or version {:?}@{:?}; skipped",
                entry.path,
                crate::clip(&name),
                crate::clip(&version)
            ));
            continue;
        }
        let purl = match Purl::new("gem", None, &name, Some(&version)) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("{}: {e}", entry.path));
                continue;
            }
        };
        let mut files = BTreeSet::new();
        resolver.add(&entry.path, &mut files);
        own_installed(entries, &spec, resolver, &mut files);
        own_listed(root, &spec, &fields, resolver, &mut files);
        if !files.iter().any(|f| is_ruby_code(f)) {
            own_from_os_package(os_packages, &entry.path, &mut files);
        }
        let mut p = Package::new(name, version, Ecosystem::from_purl_type("gem"));
        p.purl = Some(purl);
        p.files = files;
        out.push(p);
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

fn valid(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// Where one specification sits.
#[derive(Debug, PartialEq, Eq)]
struct SpecPath<'a> {
    /// The gem home (the directory holding `specifications/`).
    home: &'a str,
    /// `<name>-<version>[-<platform>]`, the specification's file stem.
    full_name: &'a str,
    /// A default gem (`specifications/default/`).
    default: bool,
}

/// `<home>/specifications/<full>.gemspec` or
/// `<home>/specifications/default/<full>.gemspec`.
fn locate(path: &str) -> Option<SpecPath<'_>> {
    let full_name = file_name(path).strip_suffix(".gemspec")?;
    if full_name.is_empty() || full_name.starts_with('.') {
        return None;
    }
    let dir = parent(path);
    let (specs, default) = match file_name(dir) {
        "specifications" => (dir, false),
        "default" if file_name(parent(dir)) == "specifications" => (parent(dir), true),
        _ => return None,
    };
    let home = parent(specs);
    Some(SpecPath {
        home,
        full_name,
        default,
    })
}

fn join(dir: &str, rest: &str) -> String {
    if dir == "/" {
        format!("/{rest}")
    } else {
        format!("{dir}/{rest}")
    }
}

/// Files of the gem's installed directories: `gems/<full>/**`,
/// `extensions/*/*/<full>/**`, `cache/<full>.gem`.
fn own_installed(
    entries: &[Entry],
    spec: &SpecPath<'_>,
    resolver: &mut FileResolver<'_>,
    files: &mut BTreeSet<String>,
) {
    let add_tree = |dir: &str, resolver: &mut FileResolver<'_>, files: &mut BTreeSet<String>| {
        for e in below(entries, dir) {
            if e.kind != EntryKind::Dir {
                resolver.add(&e.path, files);
            }
        }
    };
    add_tree(
        &join(spec.home, &format!("gems/{}", spec.full_name)),
        resolver,
        files,
    );
    let extensions = join(spec.home, "extensions");
    for e in below(entries, &extensions) {
        // extensions/<platform>/<api>/<full>: three levels below.
        if e.kind == EntryKind::Dir
            && file_name(&e.path) == spec.full_name
            && e.path[extensions.len()..].matches('/').count() == 3
        {
            add_tree(&e.path, resolver, files);
        }
    }
    let cached = join(spec.home, &format!("cache/{}.gem", spec.full_name));
    if entries
        .binary_search_by(|e| e.path.as_str().cmp(cached.as_str()))
        .is_ok()
    {
        resolver.add(&cached, files);
    }
}

/// Where the `files` a specification lists (relative to the gem's root)
/// are installed when the gem has no `gems/<full>/` directory: Debian's
/// `vendor_ruby` directories for rubygems-integration specifications, the
/// standard library beside the gem home for default gems. Only files that
/// exist are owned.
fn own_listed(
    root: &RootFs,
    spec: &SpecPath<'_>,
    fields: &Gemspec,
    resolver: &mut FileResolver<'_>,
    files: &mut BTreeSet<String>,
) {
    let mut bases: Vec<String> = Vec::new();
    if spec.home.starts_with("/usr/share/rubygems-integration/") {
        bases.push("/usr/lib/ruby/vendor_ruby".to_owned());
        if let Ok(entries) = root.read_dir("/usr/lib") {
            for e in entries {
                if e.kind == EntryKind::Dir && file_name(&e.path).ends_with("-linux-gnu") {
                    bases.push(format!("{}/ruby/vendor_ruby", e.path));
                }
            }
        }
    } else if spec.default {
        // <prefix>/lib/ruby/gems/<api> → <prefix>/lib/ruby/<api>, and the
        // architecture-dependent <prefix>/lib/<triplet>/ruby/<api>.
        let api = file_name(spec.home);
        if let Some(ruby) = parent(spec.home).strip_suffix("/gems") {
            bases.push(join(ruby, api));
            if let Ok(entries) = root.read_dir(parent(ruby)) {
                for e in entries {
                    if e.kind == EntryKind::Dir && file_name(&e.path).ends_with("-linux-gnu") {
                        bases.push(format!("{}/ruby/{api}", e.path));
                    }
                }
            }
        }
    } else {
        return;
    }
    let require_paths: Vec<&str> = if fields.require_paths.is_empty() {
        vec!["lib"]
    } else {
        fields.require_paths.iter().map(String::as_str).collect()
    };
    for listed in fields.files.iter().take(MAX_LISTED_FILES) {
        if listed.starts_with('/') || listed.split('/').any(|c| c == "..") {
            continue;
        }
        // A listed file outside the require paths is not loaded from
        // vendor_ruby; default gems may list paths relative to lib/ already.
        let relative = require_paths
            .iter()
            .find_map(|r| listed.strip_prefix(&format!("{r}/")))
            .unwrap_or(listed);
        for base in &bases {
            let candidate = join(base, relative);
            if root.is_file(&candidate) {
                resolver.add(&candidate, files);
            }
        }
    }
}

/// Ruby code: sources and compiled extensions.
fn is_ruby_code(path: &str) -> bool {
    let name = file_name(path);
    name.ends_with(".rb") || name.ends_with(".so")
}

/// A gem whose files were found neither installed nor listed (gem2deb
/// packages that install into `vendor_ruby` and whose specification lists
/// only executables): the operating-system package that ships the
/// specification ships the gem, so the gem owns that package's files but
/// its documentation.
fn own_from_os_package(os_packages: &[Package], spec: &str, files: &mut BTreeSet<String>) {
    let Some(owner) = os_packages
        .iter()
        .find(|p| p.ecosystem.is_os() && p.files.contains(spec))
    else {
        return;
    };
    files.extend(
        owner
            .files
            .iter()
            .filter(|f| !f.starts_with("/usr/share/doc/") && !f.starts_with("/usr/share/man/"))
            .cloned(),
    );
}

/// What a specification says, read without evaluating it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Gemspec {
    name: Option<String>,
    version: Option<String>,
    files: Vec<String>,
    require_paths: Vec<String>,
}

/// Reads `X.name = "…"`, `X.version = "…"` (or `Gem::Version.new("…")`),
/// `X.files = [ "…", … ]` and `X.require_paths = [ … ]` from a
/// specification as `gem` writes it.
fn parse_gemspec(text: &str) -> Gemspec {
    let mut out = Gemspec::default();
    for (key, value) in assignments(text) {
        match key {
            "name" if out.name.is_none() => out.name = strings(value, 1).into_iter().next(),
            "version" if out.version.is_none() => {
                out.version = strings(value, 1).into_iter().next();
            }
            "files" if out.files.is_empty() => out.files = strings(value, MAX_LISTED_FILES),
            "require_paths" if out.require_paths.is_empty() => {
                out.require_paths = strings(value, 64);
            }
            _ => {}
        }
    }
    out
}

/// `(attribute, rest of the statement)` for every `<var>.<attribute> =`
/// at the start of a line; the statement runs to the end of the line, or
/// for an array to its closing `]`.
fn assignments(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    // None: not searched yet; Some(None): no `]` after the last search start.
    let mut next_close: Option<Option<usize>> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let Some((lhs, _)) = trimmed.split_once('=') else {
            continue;
        };
        let Some((var, attr)) = lhs.trim_end().split_once('.') else {
            continue;
        };
        if var.is_empty()
            || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || attr.is_empty()
            || !attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let value_start = start + (line.len() - trimmed.len()) + lhs.len() + 1;
        let rest = &text[value_start..];
        // `==` is a comparison, not an assignment.
        if rest.starts_with('=') {
            continue;
        }
        let value = if rest.trim_start().starts_with('[') {
            // The next `]` at or after `value_start`, remembered across
            // lines (value_start only grows), so the scans stay linear.
            let end = match next_close {
                Some(Some(c)) if c >= value_start => Some(c),
                Some(None) => None,
                _ => {
                    let found = rest.find(']').map(|e| value_start + e);
                    next_close = Some(found);
                    found
                }
            };
            end.map_or(rest, |end| &text[value_start..=end])
        } else {
            rest.split('\n').next().unwrap_or(rest)
        };
        out.push((attr, value));
    }
    out
}

/// The first `max` Ruby string literals of a value: double- or
/// single-quoted, with `\\` and `\"` escapes; interpolation is not
/// evaluated (a string with `#{` is skipped).
fn strings(value: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if out.len() >= max {
            break;
        }
        if c == '#' {
            break; // a comment ends the statement
        }
        if c != '"' && c != '\'' {
            continue;
        }
        let quote = c;
        let mut s = String::new();
        let mut closed = false;
        while let Some(d) = chars.next() {
            match d {
                '\\' => {
                    if let Some(e) = chars.next() {
                        s.push(e);
                    }
                }
                d if d == quote => {
                    closed = true;
                    break;
                }
                d => s.push(d),
            }
        }
        if closed && !(quote == '"' && s.contains("#{")) {
            out.push(s);
        }
    }
    out
}

/// `rack-2.2.4` → (`rack`, `2.2.4`); `nokogiri-1.15.4-x86_64-linux` →
/// (`nokogiri`, `1.15.4`): split at the last `-` followed by a digit, and
/// the platform (after the next `-`) dropped.
fn split_full_name(full: &str) -> Option<(String, String)> {
    let bytes = full.as_bytes();
    let at = (1..bytes.len())
        .rev()
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit() && i >= 2)?;
    let name = &full[..at - 1];
    let rest = &full[at..];
    let version = rest.split_once('-').map_or(rest, |(v, _)| v);
    (!name.is_empty() && !version.is_empty()).then(|| (name.to_owned(), version.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_specifications() {
        assert_eq!(
            locate("/var/lib/gems/3.1.0/specifications/rack-2.2.4.gemspec"),
            Some(SpecPath {
                home: "/var/lib/gems/3.1.0",
                full_name: "rack-2.2.4",
                default: false
            })
        );
        assert_eq!(
            locate("/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"),
            Some(SpecPath {
                home: "/usr/lib/ruby/gems/3.1.0",
                full_name: "json-2.6.1",
                default: true
            })
        );
        assert_eq!(locate("/src/app/my.gemspec"), None);
        assert_eq!(locate("/x/specifications/.gemspec"), None);
        assert_eq!(
            locate("/specifications/a-1.gemspec").map(|s| s.home),
            Some("/")
        );
    }

    #[test]
    fn splits_full_names() {
        for (full, want) in [
            ("rack-2.2.4", Some(("rack", "2.2.4"))),
            ("net-http-0.3.0", Some(("net-http", "0.3.0"))),
            ("nokogiri-1.15.4-x86_64-linux", Some(("nokogiri", "1.15.4"))),
            (
                "google-protobuf-3.25.0",
                Some(("google-protobuf", "3.25.0")),
            ),
            ("noversion", None),
            ("-1", None),
        ] {
            let got = split_full_name(full);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "{full}"
            );
        }
    }

    #[test]
    fn open_arrays_on_every_line_stay_linear() {
        let line = "a.b=[\n";
        let mut text = line.repeat((1 << 20) / line.len());
        let n = (1 << 20) / line.len();
        text.push_str("s.files = [\"x\"]\ns.name = [\"y\"]\n");
        let started = std::time::Instant::now();
        let got = assignments(&text);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(got.len(), n + 2);
        // every open array runs to the first `]` after it
        let first = got[0].1;
        assert!(first.ends_with("[\"x\"]") && first.len() > (1 << 20) - 16);
        assert!(got[n - 1].1.starts_with("[\n") && got[n - 1].1.ends_with("[\"x\"]"));
        assert_eq!(got[n], ("files", " [\"x\"]"));
        assert_eq!(got[n + 1], ("name", " [\"y\"]"));
        let spec = parse_gemspec(&text);
        assert_eq!(spec.files, ["x"]);
        assert_eq!(spec.name.as_deref(), Some("y"));
    }

    #[test]
    fn reads_generated_gemspecs_without_evaluating_them() {
        let spec = r#"# -*- encoding: utf-8 -*-
# stub: rack 2.2.4 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "2.2.4"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.files = ["lib/rack.rb".freeze, "lib/rack/builder.rb".freeze,
    "bin/rackup".freeze, "lib/ev\"il.rb", "lib/#{x}.rb"]
  s.summary = "a = b".freeze
end
"#;
        let g = parse_gemspec(spec);
        assert_eq!(g.name.as_deref(), Some("rack"));
        assert_eq!(g.version.as_deref(), Some("2.2.4"));
        assert_eq!(g.require_paths, ["lib"]);
        assert_eq!(
            g.files,
            [
                "lib/rack.rb",
                "lib/rack/builder.rb",
                "bin/rackup",
                "lib/ev\"il.rb"
            ]
        );
        let v = parse_gemspec("Gem::Specification.new do |spec|\n  spec.name    = 'x'\n  spec.version = Gem::Version.new(\"1.0\")\nend\n");
        assert_eq!(
            (v.name.as_deref(), v.version.as_deref()),
            (Some("x"), Some("1.0"))
        );
        // Hostile input: unterminated strings and arrays, no panics.
        for bad in [
            "s.name = \"unterminated",
            "s.files = [\"a\", ",
            "s.=\n.x=\n=\n",
            "s.name ==\"x\"",
            "\u{feff}s.version = '\\",
        ] {
            let g = parse_gemspec(bad);
            assert!(g.name.is_none() && g.version.is_none(), "{bad:?}: {g:?}");
        }
    }
}
