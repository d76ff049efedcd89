//! ELF graph, resolution, entrypoints and reachability on a fake root
//! filesystem assembled from tiny ELF objects compiled with `cc` at test time.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::{
    fs,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use vexxy_model::{Ecosystem, Inventory, InventorySource, LoaderVerdict, Package, PackageReach};
use vexxy_rootfs::RootFs;
use vexxy_static::{builtin_loaders, entrypoints, reach, scan, ElfGraph, ElfKind, ScanOptions};

fn cc(dir: &Path, args: &[&str]) {
    let out = Command::new("cc")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    fs::copy(from, to).expect("copy");
}

fn exe(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// Builds the fake image:
///
/// ```text
/// /lib -> usr/lib, /lib64 -> usr/lib64          (merged /usr)
/// /usr/lib/x86_64-linux-gnu/{libc.so.6,ld-linux-x86-64.so.2}  (the host's)
/// /usr/bin/app        needs libmid.so.1           (found through ld.so.conf.d)
/// /opt/mid/lib/libmid.so.1  needs libbase.so.1    (in /usr/lib, a default dir)
/// /opt/app/bin/app2   RUNPATH $ORIGIN/../lib, needs libpriv.so, calls dlopen
/// /usr/bin/tool       needs libtoolonly.so.1
/// /usr/bin/broken     needs libmissing.so.1 (absent)
/// /usr/bin/rpexe      DT_RPATH /opt/rp, needs librp1.so; librp1 needs librp2.so,
///                     found only through the inherited DT_RPATH
/// /usr/lib/plugins/plug.so  needs libplugdep.so.1; nothing links it
/// /usr/lib/libunused.so.1, /usr/lib/crt.o, /usr/lib/bad.so (malformed)
/// /usr/local/lib/libbase.so.1: an aarch64-tagged copy (must be skipped)
/// ```
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("build");
    fs::create_dir_all(&b).expect("mkdir");
    for (name, text) in [
        ("base.c", "int base(void) { return 1; }\n"),
        ("mid.c", "int base(void);\nint mid(void) { return base() + 1; }\n"),
        ("main.c", "int mid(void);\nint main(void) { return mid(); }\n"),
        ("priv.c", "int priv(void) { return 3; }\n"),
        (
            "app2.c",
            "#include <dlfcn.h>\nint priv(void);\nint main(void) { void *h = dlopen(\"x.so\", RTLD_NOW); return priv() + (h != 0); }\n",
        ),
        ("toolonly.c", "int toolonly(void) { return 4; }\n"),
        ("tool.c", "int toolonly(void);\nint main(void) { return toolonly(); }\n"),
        ("missing.c", "int missing(void) { return 5; }\n"),
        ("broken.c", "int missing(void);\nint main(void) { return missing(); }\n"),
        ("plugdep.c", "int plugdep(void) { return 6; }\n"),
        ("plug.c", "int plugdep(void);\nint plug(void) { return plugdep(); }\n"),
        ("unused.c", "int unused(void) { return 7; }\n"),
        ("rp2.c", "int rp2(void) { return 8; }\n"),
        ("rp1.c", "int rp2(void);\nint rp1(void) { return rp2(); }\n"),
        ("rpexe.c", "int rp1(void);\nint main(void) { return rp1(); }\n"),
    ] {
        write(&b.join(name), text);
    }
    let so = |out: &str, src: &str, extra: &[&str]| {
        let mut args = vec!["-shared", "-fPIC", "-o", out, src];
        let soname = format!("-Wl,-soname,{out}");
        args.push(&soname);
        args.extend_from_slice(extra);
        cc(&b, &args);
    };
    so("libbase.so.1", "base.c", &[]);
    so("libmid.so.1", "mid.c", &["-L.", "-l:libbase.so.1"]);
    so("libpriv.so", "priv.c", &[]);
    so("libtoolonly.so.1", "toolonly.c", &[]);
    so("libmissing.so.1", "missing.c", &[]);
    so("libplugdep.so.1", "plugdep.c", &[]);
    so("plug.so", "plug.c", &["-L.", "-l:libplugdep.so.1"]);
    so("libunused.so.1", "unused.c", &[]);
    so("librp2.so", "rp2.c", &[]);
    so("librp1.so", "rp1.c", &["-L.", "-l:librp2.so"]);
    cc(
        &b,
        &[
            "-o",
            "app",
            "main.c",
            "-L.",
            "-l:libmid.so.1",
            "-Wl,-rpath-link,.",
        ],
    );
    cc(
        &b,
        &[
            "-o",
            "app2",
            "app2.c",
            "-L.",
            "-l:libpriv.so",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );
    cc(&b, &["-o", "tool", "tool.c", "-L.", "-l:libtoolonly.so.1"]);
    cc(
        &b,
        &["-o", "broken", "broken.c", "-L.", "-l:libmissing.so.1"],
    );
    cc(
        &b,
        &[
            "-o",
            "rpexe",
            "rpexe.c",
            "-L.",
            "-l:librp1.so",
            "-Wl,-rpath-link,.",
            "-Wl,--disable-new-dtags,-rpath,/opt/rp",
        ],
    );
    cc(&b, &["-c", "-o", "crt.o", "unused.c"]);

    let r = dir.path().join("root");
    let u = r.join("usr");
    fs::create_dir_all(u.join("lib64")).expect("mkdir");
    symlink("usr/lib", r.join("lib")).expect("symlink");
    symlink("usr/lib64", r.join("lib64")).expect("symlink");
    let multiarch = u.join("lib/x86_64-linux-gnu");
    let host_ld = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").expect("host ld.so");
    let host_libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").expect("host libc");
    copy(&host_ld, &multiarch.join("ld-linux-x86-64.so.2"));
    copy(&host_libc, &multiarch.join("libc.so.6"));
    symlink(
        "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        u.join("lib64/ld-linux-x86-64.so.2"),
    )
    .expect("symlink");

    copy(&b.join("app"), &u.join("bin/app"));
    copy(&b.join("libmid.so.1"), &r.join("opt/mid/lib/libmid.so.1"));
    copy(&b.join("libbase.so.1"), &u.join("lib/libbase.so.1"));
    copy(&b.join("app2"), &r.join("opt/app/bin/app2"));
    copy(&b.join("libpriv.so"), &r.join("opt/app/lib/libpriv.so"));
    copy(&b.join("tool"), &u.join("bin/tool"));
    copy(&b.join("broken"), &u.join("bin/broken"));
    copy(&b.join("rpexe"), &u.join("bin/rpexe"));
    copy(&b.join("librp1.so"), &r.join("opt/rp/librp1.so"));
    copy(&b.join("librp2.so"), &r.join("opt/rp/librp2.so"));
    copy(&b.join("libtoolonly.so.1"), &u.join("lib/libtoolonly.so.1"));
    copy(&b.join("plug.so"), &u.join("lib/plugins/plug.so"));
    copy(&b.join("libplugdep.so.1"), &u.join("lib/libplugdep.so.1"));
    copy(&b.join("libunused.so.1"), &u.join("lib/libunused.so.1"));
    copy(&b.join("crt.o"), &u.join("lib/crt.o"));
    for p in ["bin/app", "bin/tool", "bin/broken", "bin/rpexe"] {
        exe(&u.join(p));
    }
    exe(&r.join("opt/app/bin/app2"));
    // `sh` and `env` stand-ins: real ELF executables.
    copy(&b.join("tool"), &u.join("bin/sh"));
    copy(&b.join("tool"), &u.join("bin/env"));
    exe(&u.join("bin/sh"));
    exe(&u.join("bin/env"));
    symlink("usr/bin", r.join("bin")).expect("symlink");
    symlink("app", u.join("bin/app-alias")).expect("symlink");

    // A copy of libbase tagged as aarch64, earlier on LD_LIBRARY_PATH.
    let mut foreign = fs::read(b.join("libbase.so.1")).expect("read");
    foreign[18] = 183;
    foreign[19] = 0;
    fs::create_dir_all(u.join("local/lib")).expect("mkdir");
    fs::write(u.join("local/lib/libbase.so.1"), foreign).expect("write");
    // A malformed ELF file.
    fs::write(
        u.join("lib/bad.so"),
        b"\x7fELF\x02\x01\x01\0garbage that is not an elf header at all, really",
    )
    .expect("write");

    write(
        &r.join("etc/ld.so.conf"),
        "# comment\ninclude /etc/ld.so.conf.d/*.conf\n",
    );
    write(
        &r.join("etc/ld.so.conf.d/mid.conf"),
        "/opt/mid/lib # the mid library\n",
    );
    write(&r.join("docker-entrypoint.sh"), "#!/bin/sh\nexec \"$@\"\n");
    exe(&r.join("docker-entrypoint.sh"));
    write(
        &r.join("usr/local/bin/envscript"),
        "#!/usr/bin/env -S tool --flag\n",
    );
    exe(&r.join("usr/local/bin/envscript"));
    Fixture { root: r, _dir: dir }
}

fn pkg(name: &str, files: &[&str]) -> Package {
    let mut p = Package::new(name, "1", Ecosystem::Deb);
    p.files = files.iter().map(|f| (*f).to_owned()).collect();
    p
}

fn inventory() -> Inventory {
    Inventory::new(
        InventorySource::RootFs,
        vec![
            // Paths as dpkg records them on merged-/usr systems: through /lib.
            pkg(
                "libc6",
                &[
                    "/lib/x86_64-linux-gnu/libc.so.6",
                    "/lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                ],
            ),
            pkg("app", &["/usr/bin/app", "/usr/bin/app-alias"]),
            pkg("mid", &["/opt/mid/lib/libmid.so.1"]),
            pkg("base", &["/lib/libbase.so.1"]),
            pkg("app2", &["/opt/app/bin/app2", "/opt/app/lib/libpriv.so"]),
            pkg("tool", &["/usr/bin/tool"]),
            pkg("toolonly", &["/usr/lib/libtoolonly.so.1"]),
            pkg("plugin", &["/usr/lib/plugins/plug.so"]),
            pkg("plugdep", &["/usr/lib/libplugdep.so.1"]),
            pkg("unused", &["/usr/lib/libunused.so.1"]),
            pkg("objonly", &["/usr/lib/crt.o"]),
            pkg("docs", &["/usr/share/doc/x/README"]),
            pkg("rp", &["/usr/bin/rpexe", "/opt/rp/librp1.so"]),
            pkg("rp2", &["/opt/rp/librp2.so"]),
        ],
    )
}

fn scan_root(root: &RootFs, env: &[(&str, &str)]) -> ElfGraph {
    let opts = ScanOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        ..ScanOptions::default()
    };
    scan(root, &opts).expect("scan")
}

const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
const LD: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";

#[test]
fn objects_aliases_and_warnings() {
    let f = fixture();
    let root = RootFs::open(&f.root).expect("open");
    let g = scan_root(&root, &[]);
    let app = g.get("/usr/bin/app").expect("app");
    assert_eq!(app.aliases, ["/usr/bin/app-alias"]);
    assert!(app.is_executable());
    assert_eq!(app.needed, ["libmid.so.1", "libc.so.6"]);
    assert_eq!(
        app.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    assert_eq!(
        g.get("/usr/bin/app-alias").map(|o| o.path.as_str()),
        Some("/usr/bin/app")
    );
    assert_eq!(
        g.get("/usr/lib64/ld-linux-x86-64.so.2")
            .map(|o| o.path.as_str()),
        Some(LD)
    );
    let mid = g.get("/opt/mid/lib/libmid.so.1").expect("mid");
    assert_eq!(mid.soname.as_deref(), Some("libmid.so.1"));
    assert!(mid.is_shared_library());
    assert!(!mid.imports_dlopen);
    let app2 = g.get("/opt/app/bin/app2").expect("app2");
    assert_eq!(app2.runpath, ["$ORIGIN/../lib"]);
    assert!(app2.imports_dlopen);
    assert_eq!(g.get("/usr/bin/rpexe").expect("rpexe").rpath, ["/opt/rp"]);
    assert_eq!(
        g.get("/usr/lib/crt.o").expect("crt.o").kind,
        ElfKind::Relocatable
    );
    assert!(g.get("/usr/lib/bad.so").is_none());
    assert!(
        g.warnings()
            .iter()
            .any(|w| w.starts_with("/usr/lib/bad.so: malformed elf")),
        "{:?}",
        g.warnings()
    );
    // Each file once, keyed canonically: nothing under the /lib symlink.
    assert!(g
        .objects()
        .iter()
        .all(|o| !o.path.starts_with("/lib/") && !o.path.starts_with("/bin/")));

    let small = scan(
        &root,
        &ScanOptions {
            env: Vec::new(),
            max_file_bytes: 100_000,
        },
    )
    .expect("scan");
    assert!(
        small.skipped().contains(&LIBC.to_owned()),
        "{:?}",
        small.skipped()
    );
    assert!(small
        .unresolved()
        .contains(&("libc.so.6".to_owned(), "/usr/bin/app".to_owned())));
}

#[test]
fn resolution_follows_ld_so_rules() {
    let f = fixture();
    let root = RootFs::open(&f.root).expect("open");
    let g = scan_root(&root, &[]);
    assert_eq!(
        g.dependencies("/usr/bin/app"),
        ["/opt/mid/lib/libmid.so.1", LD, LIBC]
    );
    assert_eq!(
        g.dependencies("/opt/mid/lib/libmid.so.1"),
        ["/usr/lib/libbase.so.1"]
    );
    assert_eq!(
        g.dependencies("/opt/app/bin/app2"),
        ["/opt/app/lib/libpriv.so", LD, LIBC]
    );
    // librp2 is found only through the executable's inherited DT_RPATH.
    assert_eq!(g.dependencies("/opt/rp/librp1.so"), ["/opt/rp/librp2.so"]);
    assert_eq!(
        g.unresolved(),
        [("libmissing.so.1".to_owned(), "/usr/bin/broken".to_owned())],
        "{:?}",
        g.unresolved()
    );

    // LD_LIBRARY_PATH comes first, but a foreign-machine candidate is skipped.
    let g = scan_root(&root, &[("LD_LIBRARY_PATH", "/usr/local/lib")]);
    assert_eq!(
        g.dependencies("/opt/mid/lib/libmid.so.1"),
        ["/usr/lib/libbase.so.1"]
    );
    fs::create_dir_all(f.root.join("srv/override")).expect("mkdir");
    fs::copy(
        f.root.join("usr/lib/libbase.so.1"),
        f.root.join("srv/override/libbase.so.1"),
    )
    .expect("copy");
    let g = scan_root(
        &root,
        &[("LD_LIBRARY_PATH", "/usr/local/lib:/srv/override")],
    );
    assert_eq!(
        g.dependencies("/opt/mid/lib/libmid.so.1"),
        ["/srv/override/libbase.so.1"]
    );
}

#[test]
fn ld_so_cache_is_preferred_to_ld_so_conf() {
    let f = fixture();
    let root = RootFs::open(&f.root).expect("open");
    let status = Command::new("ldconfig")
        .arg("-r")
        .arg(&f.root)
        .arg("-X")
        .status();
    if !status.is_ok_and(|s| s.success()) {
        vexxy_testkit::skip_or_fail("ldconfig -r is not available here (libc-bin)");
        return;
    }
    assert!(f.root.join("etc/ld.so.cache").is_file());
    // With the cache present, ld.so.conf is not consulted: remove it.
    fs::remove_file(f.root.join("etc/ld.so.conf.d/mid.conf")).expect("rm");
    let g = scan_root(&root, &[]);
    assert_eq!(
        g.dependencies("/usr/bin/app"),
        ["/opt/mid/lib/libmid.so.1", LD, LIBC]
    );
    // An unparseable cache falls back to ld.so.conf (which no longer lists /opt/mid/lib).
    fs::write(f.root.join("etc/ld.so.cache"), b"garbage").expect("write");
    let g = scan_root(&root, &[]);
    assert!(g
        .unresolved()
        .contains(&("libmid.so.1".to_owned(), "/usr/bin/app".to_owned())));
}

#[test]
fn entrypoints_resolve_path_scripts_and_arguments() {
    let f = fixture();
    let root = RootFs::open(&f.root).expect("open");
    let argv = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(entrypoints(&root, &argv(&["app"]), &[]), ["/usr/bin/app"]);
    assert_eq!(
        entrypoints(&root, &argv(&["/bin/app-alias", "-x"]), &[]),
        ["/usr/bin/app"]
    );
    assert_eq!(
        entrypoints(
            &root,
            &argv(&["/docker-entrypoint.sh", "app", "-g", "daemon off;"]),
            &[]
        ),
        ["/usr/bin/sh", "/usr/bin/app"]
    );
    assert_eq!(
        entrypoints(&root, &argv(&["envscript"]), &[]),
        ["/usr/bin/env", "/usr/bin/tool"]
    );
    assert_eq!(
        entrypoints(
            &root,
            &argv(&["sh", "-c", "exec app2 --serve"]),
            &[("PATH".into(), "/opt/app/bin:/usr/bin".into())]
        ),
        ["/usr/bin/sh", "/opt/app/bin/app2"]
    );
    assert!(entrypoints(
        &root,
        &argv(&["app"]),
        &[("PATH".into(), "/nowhere".into())]
    )
    .is_empty());
    assert!(entrypoints(&root, &argv(&["/etc/ld.so.conf"]), &[]).is_empty());
    assert!(entrypoints(&root, &[], &[]).is_empty());
}

#[test]
fn reachability_per_package() {
    let f = fixture();
    let root = RootFs::open(&f.root).expect("open");
    let g = scan_root(&root, &[]);
    let eps = entrypoints(&root, &["app".to_owned()], &[]);
    let r = reach(&g, &eps, &builtin_loaders(), &root, &inventory());
    assert_eq!(r.entrypoints, ["/usr/bin/app"]);
    assert!(r.loaded_plugins.is_empty());
    assert_eq!(r.objects, g.len());
    assert_eq!(
        r.unresolved,
        [("libmissing.so.1".to_owned(), "/usr/bin/broken".to_owned())]
    );
    let get = |p: &str| {
        r.packages
            .get(p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    assert_eq!(
        get("base"),
        PackageReach::FromEntrypoint {
            object: "/usr/lib/libbase.so.1".into(),
            chain: vec![
                "/usr/bin/app".into(),
                "/opt/mid/lib/libmid.so.1".into(),
                "/usr/lib/libbase.so.1".into()
            ],
        }
    );
    assert_eq!(
        get("app"),
        PackageReach::FromEntrypoint {
            object: "/usr/bin/app".into(),
            chain: vec!["/usr/bin/app".into()]
        }
    );
    assert!(matches!(get("libc6"), PackageReach::FromEntrypoint { chain, .. } if chain.len() == 2));
    // `sh` and `env` are copies of `tool`.
    assert_eq!(
        get("toolonly"),
        PackageReach::FromOtherExecutables {
            executables: vec![
                "/usr/bin/env".into(),
                "/usr/bin/sh".into(),
                "/usr/bin/tool".into()
            ],
            count: 3
        }
    );
    assert_eq!(
        get("rp2"),
        PackageReach::FromOtherExecutables {
            executables: vec!["/usr/bin/rpexe".into()],
            count: 1
        }
    );
    assert_eq!(
        get("plugdep"),
        PackageReach::OnlyViaPlugins {
            plugins: vec![("/usr/lib/plugins/plug.so".into(), LoaderVerdict::Unknown)]
        }
    );
    assert_eq!(
        get("unused"),
        PackageReach::OnlyViaPlugins {
            plugins: vec![("/usr/lib/libunused.so.1".into(), LoaderVerdict::Unknown)]
        }
    );
    assert_eq!(get("objonly"), PackageReach::Unreferenced);
    assert_eq!(get("docs"), PackageReach::NoElf);

    // With the other executable as an entrypoint too, toolonly becomes reachable.
    let eps = entrypoints(
        &root,
        &["/docker-entrypoint.sh".to_owned(), "app".to_owned()],
        &[],
    );
    let r = reach(&g, &eps, &[], &root, &inventory());
    assert!(
        matches!(r.packages.get("toolonly"), Some(PackageReach::FromEntrypoint { chain, .. }) if chain[0] == "/usr/bin/sh")
    );
}
