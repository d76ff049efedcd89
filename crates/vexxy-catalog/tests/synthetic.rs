//! Table-driven tests of the dpkg cataloger on synthetic root filesystems.

use std::{fs, os::unix::fs::symlink};

use vexxy_catalog::{catalog, Catalog, CatalogError};
use vexxy_rootfs::RootFs;

/// One entry of a synthetic root filesystem.
enum Node<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    Link(&'a str, &'a str),
    /// A sparse file of this many bytes.
    Sparse(&'a str, u64),
}
use Node::{Dir, File, Link, Sparse};

fn build(nodes: &[Node<'_>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for node in nodes {
        let (File(path, _) | Dir(path) | Link(path, _) | Sparse(path, _)) = node;
        let host = dir.path().join(path.trim_start_matches('/'));
        if let Some(parent) = host.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        match node {
            File(_, text) => fs::write(&host, text).expect("write"),
            Dir(_) => fs::create_dir_all(&host).expect("mkdir"),
            Link(_, target) => symlink(target, &host).expect("symlink"),
            Sparse(_, len) => fs::File::create(&host)
                .and_then(|f| f.set_len(*len))
                .expect("sparse file"),
        }
    }
    dir
}

fn run(nodes: &[Node<'_>]) -> Result<Catalog, CatalogError> {
    let dir = build(nodes);
    let root = RootFs::open(dir.path()).expect("open rootfs");
    catalog(&root)
}

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";

/// A realistic status file: several stanzas, not-installed ones, multi-line
/// Description and Conffiles fields, Source with and without a version.
const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Package: not-a-package
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf 0123456789abcdef0123456789abcdef

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/removed.conf 0123456789abcdef0123456789abcdef obsolete

Package: bash
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b8
Description: GNU Bourne Again SHell

Package: never-installed
Status: purge ok not-installed
Architecture: amd64

Package: zlib1g
Status: hold ok installed
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 2

Package: adduser
Status: install ok installed
Architecture: all
Version: 3.134
";

fn merged_usr_rootfs<'a>(extra: &[Node<'a>]) -> Vec<Node<'a>> {
    let mut nodes = vec![
        Link("/lib", "usr/lib"),
        Link("/bin", "usr/bin"),
        Link("/etc/os-release", "../usr/lib/os-release"),
        File("/usr/lib/os-release", OS_RELEASE),
        Dir("/etc/ld.so.conf.d"),
        File("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", "/usr/lib/x86_64-linux-gnu\n"),
        File("/usr/lib/x86_64-linux-gnu/libc.so.6", "ELF"),
        Link("/usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1.2.13"),
        File("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "ELF"),
        File("/usr/bin/bash", "ELF"),
        File("/usr/sbin/adduser", "#!/usr/bin/perl"),
        File("/var/lib/dpkg/status", STATUS),
        File(
            "/var/lib/dpkg/info/libc6:amd64.list",
            "/.\n/etc\n/etc/ld.so.conf.d\n/etc/ld.so.conf.d/x86_64-linux-gnu.conf\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n/usr/share/doc/libc6/gone\n",
        ),
        File("/var/lib/dpkg/info/bash.list", "/.\n/bin\n/bin/bash\n"),
        File(
            "/var/lib/dpkg/info/zlib1g:amd64.md5sums",
            "d41d8cd98f00b204e9800998ecf8427e  lib/x86_64-linux-gnu/libz.so.1.2.13\n",
        ),
        File("/var/lib/dpkg/info/removed-pkg.list", "/etc/removed.conf\n"),
        File("/var/lib/dpkg/info/adduser.list", "/usr/sbin/adduser\n"),
    ];
    nodes.extend(extra.iter().map(|n| match n {
        File(p, t) => File(p, t),
        Dir(p) => Dir(p),
        Link(p, t) => Link(p, t),
        Sparse(p, n) => Sparse(p, *n),
    }));
    nodes
}

#[test]
fn catalogs_installed_packages_with_purls_sources_and_files() {
    let cat = run(&merged_usr_rootfs(&[])).expect("catalogs");
    let d = cat.distro.as_ref().expect("distro");
    assert_eq!(
        (d.id.as_str(), d.version_id.as_deref()),
        ("debian", Some("12"))
    );
    assert_eq!(d.version_codename.as_deref(), Some("bookworm"));

    // (name, version, arch, source name, source version, purl)
    let want = [
        ("adduser", "3.134", "all", "adduser", "3.134", "pkg:deb/debian/adduser@3.134?arch=all&distro=debian-12"),
        (
            "bash",
            "5.2.15-2+b8",
            "amd64",
            "bash",
            "5.2.15-2",
            "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2",
        ),
        (
            "libc6",
            "2.36-9+deb12u10",
            "amd64",
            "glibc",
            "2.36-9+deb12u10",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc",
        ),
        (
            "zlib1g",
            "1:1.2.13.dfsg-1",
            "amd64",
            "zlib",
            "1:1.2.13.dfsg-1",
            "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib",
        ),
    ];
    let got: Vec<_> = cat
        .inventory
        .packages()
        .iter()
        .map(|p| {
            let src = p.source.as_ref().expect("source");
            (
                p.name.as_str(),
                p.version.as_str(),
                p.architecture.as_deref().unwrap_or(""),
                src.name.as_str(),
                src.version.as_deref().unwrap_or(""),
                p.purl.as_ref().map(ToString::to_string).unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<_> = want
        .iter()
        .map(|w| (w.0, w.1, w.2, w.3, w.4, w.5.to_owned()))
        .collect();
    assert_eq!(got, want);
    assert!(cat.warnings.is_empty(), "{:?}", cat.warnings);

    // Owners by canonical and by listed path; directories are not files.
    for (path, owner) in [
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", Some("libc6")),
        ("/lib/x86_64-linux-gnu/libc.so.6", Some("libc6")),
        ("/etc/ld.so.conf.d/x86_64-linux-gnu.conf", Some("libc6")),
        ("/usr/share/doc/libc6/gone", Some("libc6")),
        ("/usr/bin/bash", Some("bash")),
        ("/bin/bash", Some("bash")),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", Some("zlib1g")),
        ("/lib/x86_64-linux-gnu/libz.so.1.2.13", Some("zlib1g")),
        ("/usr/sbin/adduser", Some("adduser")),
        ("/etc/removed.conf", None),
        ("/lib", None),
        ("/lib/x86_64-linux-gnu", None),
        ("/usr/lib/x86_64-linux-gnu", None),
        ("/etc", None),
        ("/", None),
        ("/.", None),
    ] {
        assert_eq!(
            cat.inventory.owner_of(path).map(|p| p.name.as_str()),
            owner,
            "{path}"
        );
    }
    let libc = cat.inventory.by_name("libc6").next().expect("libc6");
    let files: Vec<&str> = libc.files.iter().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/share/doc/libc6/gone",
        ]
    );
}

#[test]
fn layouts_and_degraded_inputs() {
    struct Case<'a> {
        name: &'a str,
        nodes: Vec<Node<'a>>,
        /// name → purl
        packages: &'a [(&'a str, &'a str)],
        owners: &'a [(&'a str, &'a str)],
        warning: Option<&'a str>,
    }
    let cases = [
        Case {
            name: "no dpkg database",
            nodes: vec![File("/etc/os-release", OS_RELEASE), Dir("/var/lib")],
            packages: &[],
            owners: &[],
            warning: Some("no dpkg database"),
        },
        Case {
            name: "distroless status.d with md5sums and no os-release",
            nodes: vec![
                File("/var/lib/dpkg/status.d/base-files", "Package: base-files\nVersion: 12.4+deb12u11\nArchitecture: amd64\n"),
                File("/var/lib/dpkg/status.d/base-files.md5sums", "00  etc/debian_version\n"),
                File("/var/lib/dpkg/status.d/libssl3", "Package: libssl3\nVersion: 3.0.16-1~deb12u1\nArchitecture: amd64\nSource: openssl\n"),
                File("/var/lib/dpkg/status.d/libssl3.md5sums", "00  usr/lib/x86_64-linux-gnu/libssl.so.3\n"),
                File("/etc/debian_version", "12.11\n"),
                File("/usr/lib/x86_64-linux-gnu/libssl.so.3", "ELF"),
            ],
            packages: &[
                ("base-files", "pkg:deb/base-files@12.4%2Bdeb12u11?arch=amd64"),
                ("libssl3", "pkg:deb/libssl3@3.0.16-1~deb12u1?arch=amd64&upstream=openssl"),
            ],
            owners: &[("/etc/debian_version", "base-files"), ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "libssl3")],
            warning: Some("os-release"),
        },
        Case {
            name: "status plus status.d, duplicate kept once, package without list",
            nodes: vec![
                File("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
                File("/var/lib/dpkg/status", "Package: tzdata\nStatus: install ok installed\nVersion: 2025b-0+deb12u1\nArchitecture: all\n"),
                File("/var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"),
                File("/var/lib/dpkg/info/tzdata.list", "/usr/share/zoneinfo\n/usr/share/zoneinfo/UTC\n"),
                File("/usr/share/zoneinfo/UTC", "TZif"),
            ],
            packages: &[("tzdata", "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12")],
            owners: &[("/usr/share/zoneinfo/UTC", "tzdata")],
            warning: Some("/var/lib/dpkg/status.d/tzdata line 1: package tzdata (all) listed again"),
        },
        Case {
            name: "list file without the arch, crlf line ends",
            nodes: vec![
                File("/etc/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\n"),
                File("/var/lib/dpkg/status", "Package: libfoo1\r\nStatus: install ok installed\r\nVersion: 1.0\r\nArchitecture: arm64\r\n"),
                File("/var/lib/dpkg/info/libfoo1.list", "/usr/lib/libfoo.so.1\r\n"),
                File("/usr/lib/libfoo.so.1", "ELF"),
            ],
            packages: &[("libfoo1", "pkg:deb/ubuntu/libfoo1@1.0?arch=arm64&distro=ubuntu-24.04")],
            owners: &[("/usr/lib/libfoo.so.1", "libfoo1")],
            warning: None,
        },
        Case {
            name: "no file list at all",
            nodes: vec![
                File("/etc/os-release", "ID=debian\nVERSION_ID=12\n"),
                File("/var/lib/dpkg/status", "\n\nPackage: lonely\nStatus: install ok installed\nVersion: 1\n"),
            ],
            packages: &[("lonely", "pkg:deb/debian/lonely@1?distro=debian-12")],
            owners: &[],
            warning: Some("/var/lib/dpkg/status line 3: no file list for package lonely"),
        },
    ];
    for case in cases {
        let cat = run(&case.nodes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got: Vec<(String, String)> = cat
            .inventory
            .packages()
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.purl.as_ref().map(ToString::to_string).unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = case
            .packages
            .iter()
            .map(|(n, p)| ((*n).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(got, want, "{}", case.name);
        for (path, owner) in case.owners {
            assert_eq!(
                cat.inventory.owner_of(path).map(|p| p.name.as_str()),
                Some(*owner),
                "{}: {path}",
                case.name
            );
        }
        match case.warning {
            Some(needle) => assert!(
                cat.warnings.iter().any(|w| w.contains(needle)),
                "{}: no warning containing {needle:?} in {:?}",
                case.name,
                cat.warnings
            ),
            None => assert!(cat.warnings.is_empty(), "{}: {:?}", case.name, cat.warnings),
        }
    }
}

#[test]
fn bad_databases_are_errors_naming_file_and_line() {
    let cases: Vec<(&str, Vec<Node<'_>>, &str, bool)> = vec![
        (
            "stanza without a package",
            vec![File("/var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n\nStatus: install ok installed\nVersion: 2\n")],
            "/var/lib/dpkg/status line 5: field without a package",
            true,
        ),
        (
            "garbage line",
            vec![File("/var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nthis is not a field\n")],
            "/var/lib/dpkg/status line 3: line is not a field",
            true,
        ),
        (
            "installed without a version",
            vec![File("/var/lib/dpkg/status", "Package: a\nStatus: install ok installed\n")],
            "/var/lib/dpkg/status line 1: installed package a has no version",
            true,
        ),
        (
            "broken status field",
            vec![File("/var/lib/dpkg/status", "Package: a\nVersion: 1\nStatus: installed\n")],
            "/var/lib/dpkg/status line 3: package a: status",
            true,
        ),
        (
            "broken source field",
            vec![File("/var/lib/dpkg/status", "Package: a\nVersion: 1\nStatus: install ok installed\nSource: b (1.0\n")],
            "/var/lib/dpkg/status line 4: package a: invalid source field",
            true,
        ),
        (
            "bad md5sums line",
            vec![
                File("/var/lib/dpkg/status", "Package: a\nVersion: 1\nStatus: install ok installed\n"),
                File("/var/lib/dpkg/info/a.md5sums", "0123  usr/bin/a\nnospace\n"),
            ],
            "/var/lib/dpkg/info/a.md5sums line 2: not a checksum line",
            true,
        ),
        (
            "oversized status",
            vec![Sparse("/var/lib/dpkg/status", vexxy_catalog::STATUS_LIMIT + 1)],
            "cannot read /var/lib/dpkg/status",
            true,
        ),
        (
            "status is a directory",
            vec![Dir("/var/lib/dpkg/status/x")],
            "cannot read /var/lib/dpkg/status",
            true,
        ),
        ("status symlink loop", vec![Link("/var/lib/dpkg/status", "status")], "cannot read /var/lib/dpkg/status", true),
        ("oversized list", vec![
            File("/var/lib/dpkg/status", "Package: a\nVersion: 1\nStatus: install ok installed\n"),
            Sparse("/var/lib/dpkg/info/a.list", vexxy_catalog::LIST_LIMIT + 1),
        ], "cannot read /var/lib/dpkg/info/a.list", true),
    ];
    for (name, nodes, needle, bad_input) in cases {
        let err = match run(&nodes) {
            Ok(c) => panic!(
                "{name}: expected an error, got {} packages",
                c.inventory.packages().len()
            ),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "{name}: {msg:?} does not contain {needle:?}"
        );
        assert_eq!(err.is_bad_input(), bad_input, "{name}: {msg}");
        // Lowercase up to the first path (host temp paths may have capitals).
        let head = msg.split('/').next().unwrap_or_default();
        assert_eq!(
            head,
            head.to_lowercase(),
            "{name}: message not lowercase: {msg}"
        );
    }
}
