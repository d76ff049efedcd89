//! File ownership of the interpreted ecosystems whose runtime evidence is
//! "a module file of the package was opened": Ruby gems, PHP Composer
//! packages, npm packages (Debian's global module directories, copies in
//! several `node_modules`), Java archives (symlinks, nested archives).
//! Real-shaped fixtures: specifications as `gem install` writes them,
//! `installed.json` as Composer 1 and 2 write it.

use std::{
    fs,
    io::{Cursor, Write},
    os::unix::fs::symlink,
};

use vexxy_catalog::{catalog, Catalog, NESTED_SEPARATOR};
use vexxy_model::{Ecosystem, Package};
use vexxy_rootfs::RootFs;

fn rootfs(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, bytes) in files {
        let host = dir.path().join(path.trim_start_matches('/'));
        fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        fs::write(&host, bytes).expect("write");
    }
    dir
}

fn run(dir: &tempfile::TempDir) -> Catalog {
    catalog(&RootFs::open(dir.path()).expect("open")).expect("catalogs")
}

fn package<'a>(cat: &'a Catalog, name: &str) -> &'a Package {
    let found: Vec<&Package> = cat.inventory.by_name(name).collect();
    assert_eq!(found.len(), 1, "one package {name}: {found:?}");
    found[0]
}

fn purl(p: &Package) -> String {
    p.purl.as_ref().map(ToString::to_string).unwrap_or_default()
}

const RACK_SPEC: &str = r#"# -*- encoding: utf-8 -*-
# stub: rack 2.2.4 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "2.2.4"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.bindir = "bin".freeze
  s.date = "2022-06-30"
  s.executables = ["rackup".freeze]
  s.files = ["bin/rackup".freeze, "lib/rack.rb".freeze, "lib/rack/builder.rb".freeze]
  s.licenses = ["MIT".freeze]
  s.summary = "A modular Ruby webserver interface".freeze

  s.installed_by_version = "3.3.15" if s.respond_to? :installed_by_version
end
"#;

#[test]
fn ruby_gems() {
    let nokogiri_spec = RACK_SPEC
        .replace("\"rack\"", "\"nokogiri\"")
        .replace("\"2.2.4\"", "\"1.15.4\"");
    let json_default = "Gem::Specification.new do |s|\n  s.name = \"json\"\n  s.version = \"2.6.1\"\n  s.files = [\"json.rb\", \"json/common.rb\", \"json/ext/parser.so\"]\nend\n";
    let dir = rootfs(&[
        // gem install into /var/lib/gems (Debian's GEM_HOME for root).
        ("/var/lib/gems/3.1.0/specifications/rack-2.2.4.gemspec", RACK_SPEC.as_bytes()),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/lib/rack.rb", b"module Rack; end\n"),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/lib/rack/builder.rb", b""),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/bin/rackup", b"#!/usr/bin/env ruby\n"),
        ("/var/lib/gems/3.1.0/cache/rack-2.2.4.gem", b"tar"),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.40/lib/other.rb", b""),
        // A native gem: platform in the full name, compiled extension.
        (
            "/usr/local/bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec",
            nokogiri_spec.as_bytes(),
        ),
        (
            "/usr/local/bundle/gems/nokogiri-1.15.4-x86_64-linux/lib/nokogiri.rb",
            b"",
        ),
        (
            "/usr/local/bundle/extensions/x86_64-linux/3.1.0/nokogiri-1.15.4-x86_64-linux/nokogiri/nokogiri.so",
            b"\x7fELF",
        ),
        // Debian's gem2deb: specification in rubygems-integration, files in vendor_ruby.
        (
            "/usr/share/rubygems-integration/all/specifications/rack-test-2.0.2.gemspec",
            RACK_SPEC
                .replace("\"rack\"", "\"rack-test\"")
                .replace("\"2.2.4\"", "\"2.0.2\"")
                .replace("lib/rack.rb", "lib/rack/test.rb")
                .as_bytes(),
        ),
        ("/usr/lib/ruby/vendor_ruby/rack/test.rb", b""),
        // Debian bookworm's gem2deb layout (ruby-rack 2.2.22).
        (
            "/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec",
            RACK_SPEC
                .replace("2.2.4", "2.2.22")
                .replace(
                    "[\"bin/rackup\".freeze, \"lib/rack.rb\".freeze, \"lib/rack/builder.rb\".freeze]",
                    "[\"bin/rackup\".freeze]",
                )
                .as_bytes(),
        ),
        (
            "/usr/share/rubygems-integration/all/gems/rack-2.2.22/lib/rack/builder.rb",
            b"",
        ),
        // An older gem2deb package: code in vendor_ruby, listed nowhere;
        // dpkg's file list says which files the package ships.
        (
            "/usr/share/rubygems-integration/all/specifications/oldgem-1.0.gemspec",
            b"Gem::Specification.new do |s|\n  s.name = \"oldgem\".freeze\n  s.version = \"1.0\"\n  s.files = [\"bin/oldgem\".freeze]\nend\n",
        ),
        ("/usr/lib/ruby/vendor_ruby/oldgem/core.rb", b""),
        ("/usr/share/doc/ruby-oldgem/copyright", b""),
        (
            "/var/lib/dpkg/status",
            b"Package: ruby-oldgem\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: all\n",
        ),
        (
            "/var/lib/dpkg/info/ruby-oldgem.list",
            b"/.\n/usr\n/usr/lib/ruby/vendor_ruby/oldgem/core.rb\n/usr/share/rubygems-integration/all/specifications/oldgem-1.0.gemspec\n/usr/share/doc/ruby-oldgem/copyright\n",
        ),
        // A default gem: files in the standard library beside the gem home.
        (
            "/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
            json_default.as_bytes(),
        ),
        ("/usr/lib/ruby/3.1.0/json.rb", b""),
        ("/usr/lib/ruby/3.1.0/json/common.rb", b""),
        // Not gem homes: a project's own gemspec, a stray file.
        ("/src/app/app.gemspec", RACK_SPEC.as_bytes()),
        ("/var/lib/gems/3.1.0/specifications/README", b""),
        // Hostile: no name or version anywhere, an invalid name.
        ("/var/lib/gems/3.1.0/specifications/noversion.gemspec", b"s.name = \"x\"\n"),
        (
            "/var/lib/gems/3.1.0/specifications/bad-1.0.gemspec",
            b"s.name = \"has space\"\ns.version = \"1.0\"\n",
        ),
    ]);
    let cat = run(&dir);
    let gems: Vec<(String, String, String)> = cat
        .inventory
        .packages()
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::from_purl_type("gem"))
        .map(|p| (p.name.clone(), p.version.clone(), purl(p)))
        .collect();
    assert_eq!(
        gems,
        [
            ("json".into(), "2.6.1".into(), "pkg:gem/json@2.6.1".into()),
            (
                "nokogiri".into(),
                "1.15.4".into(),
                "pkg:gem/nokogiri@1.15.4".into()
            ),
            ("oldgem".into(), "1.0".into(), "pkg:gem/oldgem@1.0".into()),
            ("rack".into(), "2.2.22".into(), "pkg:gem/rack@2.2.22".into()),
            ("rack".into(), "2.2.4".into(), "pkg:gem/rack@2.2.4".into()),
            (
                "rack-test".into(),
                "2.0.2".into(),
                "pkg:gem/rack-test@2.0.2".into()
            ),
        ]
    );
    let owner = |path: &str| cat.inventory.owner_of(path).map(|p| p.name.clone());
    for (path, want) in [
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/lib/rack.rb", Some("rack")),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/bin/rackup", Some("rack")),
        ("/var/lib/gems/3.1.0/cache/rack-2.2.4.gem", Some("rack")),
        (
            "/var/lib/gems/3.1.0/specifications/rack-2.2.4.gemspec",
            Some("rack"),
        ),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.40/lib/other.rb", None),
        (
            "/usr/local/bundle/gems/nokogiri-1.15.4-x86_64-linux/lib/nokogiri.rb",
            Some("nokogiri"),
        ),
        (
            "/usr/local/bundle/extensions/x86_64-linux/3.1.0/nokogiri-1.15.4-x86_64-linux/nokogiri/nokogiri.so",
            Some("nokogiri"),
        ),
        ("/usr/lib/ruby/vendor_ruby/rack/test.rb", Some("rack-test")),
        (
            "/usr/share/rubygems-integration/all/gems/rack-2.2.22/lib/rack/builder.rb",
            Some("rack"),
        ),
        ("/usr/lib/ruby/3.1.0/json.rb", Some("json")),
        ("/usr/lib/ruby/3.1.0/json/common.rb", Some("json")),
        ("/src/app/app.gemspec", None),
    ] {
        assert_eq!(owner(path).as_deref(), want, "owner of {path}");
    }
    // dpkg is the first owner of the files it lists; the gem owns them too.
    let oldgem = cat
        .inventory
        .packages()
        .iter()
        .find(|p| p.name == "oldgem")
        .expect("oldgem");
    assert!(oldgem
        .files
        .contains("/usr/lib/ruby/vendor_ruby/oldgem/core.rb"));
    assert!(!oldgem
        .files
        .contains("/usr/share/doc/ruby-oldgem/copyright"));
    assert_eq!(
        owner("/usr/lib/ruby/vendor_ruby/oldgem/core.rb").as_deref(),
        Some("ruby-oldgem")
    );
    for needle in [
        "/var/lib/gems/3.1.0/specifications/noversion.gemspec: no name or version",
        "/var/lib/gems/3.1.0/specifications/bad-1.0.gemspec: invalid gem name or version",
    ] {
        assert!(
            cat.warnings.iter().any(|w| w.contains(needle)),
            "no warning {needle:?} in {:?}",
            cat.warnings
        );
    }
}

/// `installed.json` as Composer 2.x writes it (abridged fields).
const INSTALLED_V2: &str = r#"{
    "packages": [
        {
            "name": "monolog/monolog",
            "version": "2.9.1",
            "version_normalized": "2.9.1.0",
            "source": {"type": "git", "url": "https://github.com/Seldaek/monolog.git", "reference": "f259e2b15fb95494c83f52d3caad003bbf5ffaa1"},
            "require": {"php": ">=7.2", "psr/log": "^1.0.1 || ^2.0 || ^3.0"},
            "type": "library",
            "installation-source": "dist",
            "autoload": {"psr-4": {"Monolog\\": "src/Monolog"}},
            "install-path": "../monolog/monolog"
        },
        {
            "name": "psr/log",
            "version": "3.0.0",
            "type": "library",
            "install-path": "../psr/log"
        },
        {
            "name": "evil/escape",
            "version": "1.0.0",
            "type": "library",
            "install-path": "../../../etc"
        },
        {
            "name": "acme/meta",
            "version": "1.0.0",
            "type": "metapackage",
            "install-path": null
        },
        {"name": "no-slash", "version": "1.0.0"}
    ],
    "dev": false,
    "dev-package-names": []
}"#;

#[test]
fn composer_packages() {
    let dir = rootfs(&[
        (
            "/var/www/app/vendor/composer/installed.json",
            INSTALLED_V2.as_bytes(),
        ),
        ("/var/www/app/vendor/composer/ClassLoader.php", b"<?php"),
        ("/var/www/app/vendor/autoload.php", b"<?php"),
        (
            "/var/www/app/vendor/monolog/monolog/src/Monolog/Logger.php",
            b"<?php",
        ),
        ("/var/www/app/vendor/monolog/monolog/composer.json", b"{}"),
        (
            "/var/www/app/vendor/psr/log/src/LoggerInterface.php",
            b"<?php",
        ),
        ("/var/www/app/index.php", b"<?php"),
        ("/etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        // Composer 1: a top-level array, no install-path.
        (
            "/srv/legacy/vendor/composer/installed.json",
            br#"[{"name":"guzzlehttp/guzzle","version":"6.5.8","type":"library"}]"#,
        ),
        (
            "/srv/legacy/vendor/guzzlehttp/guzzle/src/Client.php",
            b"<?php",
        ),
        // Malformed: named in a warning, nothing cataloged.
        (
            "/srv/broken/vendor/composer/installed.json",
            b"{\"packages\": 7}",
        ),
    ]);
    let cat = run(&dir);
    let got: Vec<(String, String)> = cat
        .inventory
        .packages()
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::from_purl_type("composer"))
        .map(|p| (p.name.clone(), purl(p)))
        .collect();
    assert_eq!(
        got,
        [
            ("acme/meta".into(), "pkg:composer/acme/meta@1.0.0".into()),
            (
                "evil/escape".into(),
                "pkg:composer/evil/escape@1.0.0".into()
            ),
            (
                "guzzlehttp/guzzle".into(),
                "pkg:composer/guzzlehttp/guzzle@6.5.8".into()
            ),
            (
                "monolog/monolog".into(),
                "pkg:composer/monolog/monolog@2.9.1".into()
            ),
            ("psr/log".into(), "pkg:composer/psr/log@3.0.0".into()),
        ]
    );
    let owner = |path: &str| cat.inventory.owner_of(path).map(|p| p.name.clone());
    for (path, want) in [
        (
            "/var/www/app/vendor/monolog/monolog/src/Monolog/Logger.php",
            Some("monolog/monolog"),
        ),
        (
            "/var/www/app/vendor/monolog/monolog/composer.json",
            Some("monolog/monolog"),
        ),
        (
            "/var/www/app/vendor/psr/log/src/LoggerInterface.php",
            Some("psr/log"),
        ),
        (
            "/srv/legacy/vendor/guzzlehttp/guzzle/src/Client.php",
            Some("guzzlehttp/guzzle"),
        ),
        ("/var/www/app/vendor/composer/ClassLoader.php", None),
        ("/var/www/app/vendor/autoload.php", None),
        ("/etc/passwd", None),
    ] {
        assert_eq!(owner(path).as_deref(), want, "owner of {path}");
    }
    assert!(package(&cat, "evil/escape").files.is_empty());
    assert!(package(&cat, "acme/meta").files.is_empty());
    for needle in [
        "/var/www/app/vendor/composer/installed.json: packages[2].install-path leaves /var/www/app/vendor",
        "/var/www/app/vendor/composer/installed.json: packages[4]: name: not vendor/name",
        "/srv/broken/vendor/composer/installed.json: packages: not an array",
    ] {
        assert!(
            cat.warnings.iter().any(|w| w.contains(needle)),
            "no warning {needle:?} in {:?}",
            cat.warnings
        );
    }
}

#[test]
fn npm_debian_directories_and_copies() {
    let lodash = br#"{"name":"lodash","version":"4.17.21","main":"lodash.js"}"#;
    let dir = rootfs(&[
        (
            "/usr/share/nodejs/undici/package.json",
            br#"{"name":"undici","version":"5.15.0"}"#,
        ),
        ("/usr/share/nodejs/undici/index.js", b""),
        (
            "/usr/lib/x86_64-linux-gnu/nodejs/cjs-module-lexer/package.json",
            br#"{"name":"cjs-module-lexer","version":"1.2.2"}"#,
        ),
        (
            "/usr/lib/x86_64-linux-gnu/nodejs/cjs-module-lexer/lexer.js",
            b"",
        ),
        ("/srv/a/node_modules/lodash/package.json", lodash),
        ("/srv/a/node_modules/lodash/lodash.js", b""),
        ("/srv/b/node_modules/lodash/package.json", lodash),
        ("/srv/b/node_modules/lodash/lodash.js", b""),
        ("/srv/b/node_modules/lodash/fp.js", b""),
    ]);
    let cat = run(&dir);
    let undici = package(&cat, "undici");
    assert_eq!(purl(undici), "pkg:npm/undici@5.15.0");
    assert!(undici.files.contains("/usr/share/nodejs/undici/index.js"));
    assert!(package(&cat, "cjs-module-lexer")
        .files
        .contains("/usr/lib/x86_64-linux-gnu/nodejs/cjs-module-lexer/lexer.js"));
    // Two copies of one package are one package owning both copies' files.
    let lodash = package(&cat, "lodash");
    for f in [
        "/srv/a/node_modules/lodash/lodash.js",
        "/srv/b/node_modules/lodash/lodash.js",
        "/srv/b/node_modules/lodash/fp.js",
    ] {
        assert!(lodash.files.contains(f), "lodash owns {f}");
    }
}

fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start entry");
        w.write_all(data).expect("write entry");
    }
    w.finish().expect("finish zip").into_inner()
}

#[test]
fn java_symlinks_and_nested_archives() {
    let lang3 = jar(&[(
        "META-INF/maven/org.apache.commons/commons-lang3/pom.properties",
        b"groupId=org.apache.commons\nartifactId=commons-lang3\nversion=3.12.0\n",
    )]);
    let yaml = jar(&[(
        "META-INF/maven/org.yaml/snakeyaml/pom.properties",
        b"groupId=org.yaml\nartifactId=snakeyaml\nversion=2.2\n",
    )]);
    let boot = jar(&[
        (
            "META-INF/maven/com.example/demo/pom.properties",
            b"groupId=com.example\nartifactId=demo\nversion=3.1.0\n",
        ),
        ("BOOT-INF/lib/snakeyaml-2.2.jar", &yaml),
        ("BOOT-INF/classes/App.class", b"\xca\xfe\xba\xbe"),
    ]);
    let dir = rootfs(&[
        ("/usr/share/java/commons-lang3.jar", &lang3),
        ("/app/demo-3.1.0.jar", &boot),
    ]);
    symlink(
        "commons-lang3.jar",
        dir.path().join("usr/share/java/commons-lang3-3.12.0.jar"),
    )
    .expect("symlink");
    symlink(
        "/usr/share/java/commons-lang3-3.12.0.jar",
        dir.path().join("app/lang3.jar"),
    )
    .expect("symlink");
    symlink("/nowhere.jar", dir.path().join("app/dangling.jar")).expect("symlink");
    let cat = run(&dir);
    let lang3 = package(&cat, "commons-lang3");
    assert_eq!(
        lang3.files.iter().map(String::as_str).collect::<Vec<_>>(),
        [
            "/app/lang3.jar",
            "/usr/share/java/commons-lang3-3.12.0.jar",
            "/usr/share/java/commons-lang3.jar"
        ],
        "the archive and every link that resolves to it"
    );
    let yaml = package(&cat, "snakeyaml");
    let marker = format!("/app/demo-3.1.0.jar{NESTED_SEPARATOR}BOOT-INF/lib/snakeyaml-2.2.jar");
    assert_eq!(
        yaml.files.iter().map(String::as_str).collect::<Vec<_>>(),
        ["/app/demo-3.1.0.jar", marker.as_str()],
        "a nested archive owns its outer archive and the marker"
    );
    let demo = package(&cat, "demo");
    assert_eq!(
        demo.files.iter().map(String::as_str).collect::<Vec<_>>(),
        ["/app/demo-3.1.0.jar"],
        "the outer archive's own package carries no marker"
    );
}

/// Findings join the cataloged packages the way the decision looks them up
/// (`Inventory::find`: name and ecosystem, the ecosystem from the purl's
/// type, else the scanner's type word), for the names and purls Grype,
/// Trivy and CycloneDX SBOMs give npm, Maven, gem and Composer packages.
#[test]
fn scanner_findings_join_cataloged_packages() {
    let lang3 = jar(&[(
        "META-INF/maven/org.apache.commons/commons-lang3/pom.properties",
        b"groupId=org.apache.commons\nartifactId=commons-lang3\nversion=3.12.0\n",
    )]);
    let dir = rootfs(&[
        (
            "/app/node_modules/express/package.json",
            br#"{"name":"express","version":"4.21.2"}"#,
        ),
        (
            "/app/node_modules/@types/node/package.json",
            br#"{"name":"@types/node","version":"20.1.0"}"#,
        ),
        ("/usr/share/java/commons-lang3.jar", &lang3),
        (
            "/var/lib/gems/3.1.0/specifications/rack-2.2.4.gemspec",
            RACK_SPEC.as_bytes(),
        ),
        (
            "/var/www/vendor/composer/installed.json",
            INSTALLED_V2.as_bytes(),
        ),
        (
            "/var/www/vendor/monolog/monolog/src/Monolog/Logger.php",
            b"<?php",
        ),
        ("/app/node_modules/@types/node/index.d.ts", b""),
        ("/app/node_modules/express/index.js", b""),
        ("/var/lib/gems/3.1.0/gems/rack-2.2.4/lib/rack.rb", b""),
    ]);
    let cat = run(&dir);
    // (name as the tool reports it, version, purl or None, scanner type word)
    let cases: [(&str, &str, Option<&str>, &str); 8] = [
        ("express", "4.21.2", Some("pkg:npm/express@4.21.2"), "npm"),
        ("express", "4.21.2", None, "node-pkg"),
        (
            "@types/node",
            "20.1.0",
            Some("pkg:npm/%40types/node@20.1.0"),
            "npm",
        ),
        (
            "commons-lang3",
            "3.12.0",
            Some("pkg:maven/org.apache.commons/commons-lang3@3.12.0"),
            "java-archive",
        ),
        ("commons-lang3", "3.12.0", None, "java-archive"),
        ("rack", "2.2.4", Some("pkg:gem/rack@2.2.4"), "gem"),
        ("rack", "2.2.4", None, "gem"),
        (
            "monolog/monolog",
            "2.9.1",
            Some("pkg:composer/monolog/monolog@2.9.1"),
            "php-composer",
        ),
    ];
    for (name, version, purl, word) in cases {
        let purl: Option<vexxy_model::Purl> = purl.map(|p| p.parse().expect("purl"));
        let ecosystem = match &purl {
            Some(p) => Ecosystem::from_purl_type(p.ty()),
            None => Ecosystem::from_scanner_type(word),
        };
        let r = vexxy_model::PackageRef {
            name: name.to_owned(),
            version: version.to_owned(),
            ecosystem,
            purl,
            source_name: None,
        };
        let found = cat.inventory.find(&r);
        assert_eq!(
            found.map(|p| (p.name.as_str(), p.version.as_str())),
            Some((name, version)),
            "{name} {word}"
        );
        assert!(
            !found.expect("found").files.is_empty(),
            "{name}: the joined package owns files"
        );
    }
}
