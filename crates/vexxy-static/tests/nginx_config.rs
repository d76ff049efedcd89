//! nginx configuration loading (includes, globs, loops) and the nginx
//! plugin loader on a fake root filesystem.

use std::{fs, os::unix::fs::symlink, path::Path};

use vexxy_rootfs::RootFs;
use vexxy_static::{
    nginx::{NginxConfig, NginxLoader},
    ElfGraph, PluginLoader, PluginState, StaticError,
};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

#[test]
fn includes_with_globs_in_place_and_relative_to_the_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "/etc/nginx/nginx.conf", "include modules-enabled/*.conf;\nhttp {\n  include /etc/nginx/conf.d/*.conf;\n  include mime.types;\n}\n");
    write(
        r,
        "/etc/nginx/modules-enabled/10-a.conf",
        "load_module modules/a.so;\n",
    );
    write(
        r,
        "/etc/nginx/modules-enabled/20-b.conf",
        "load_module \"/usr/lib/nginx/modules/b.so\"; # b\n",
    );
    write(
        r,
        "/etc/nginx/modules-enabled/.hidden.conf",
        "load_module modules/hidden.so;\n",
    );
    write(
        r,
        "/etc/nginx/conf.d/site.conf",
        "server {\n  listen 443 ssl;\n  ssl_verify_client on;\n}\n",
    );
    write(r, "/etc/nginx/mime.types", "types { text/html html; }\n");
    let root = RootFs::open(r).expect("open");
    let cfg = NginxConfig::load(&root, "/etc/nginx/nginx.conf")
        .expect("loads")
        .expect("present");
    assert_eq!(
        cfg.files,
        [
            "/etc/nginx/nginx.conf",
            "/etc/nginx/modules-enabled/10-a.conf",
            "/etc/nginx/modules-enabled/20-b.conf",
            "/etc/nginx/conf.d/site.conf",
            "/etc/nginx/mime.types"
        ]
    );
    let modules: Vec<(&str, usize)> = cfg
        .load_modules()
        .map(|d| (d.args[0].as_str(), d.line))
        .collect();
    assert_eq!(
        modules,
        [("modules/a.so", 1), ("/usr/lib/nginx/modules/b.so", 1)]
    );
    let verify: Vec<_> = cfg
        .all()
        .into_iter()
        .filter(|(d, _)| d.name == "ssl_verify_client")
        .collect();
    assert_eq!(verify.len(), 1);
    assert_eq!(verify[0].0.file, "/etc/nginx/conf.d/site.conf");
    assert_eq!(verify[0].0.line, 3);
    assert_eq!(verify[0].1, ["http", "server"]);
    assert!(NginxConfig::load(&root, "/etc/nginx/absent.conf")
        .expect("ok")
        .is_none());
}

#[test]
fn include_loops_depth_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "/etc/nginx/nginx.conf", "include a.conf;\n");
    write(r, "/etc/nginx/a.conf", "include b.conf;\n");
    write(r, "/etc/nginx/b.conf", "events {}\ninclude a.conf;\n");
    let root = RootFs::open(r).expect("open");
    let err = NginxConfig::load(&root, "/etc/nginx/nginx.conf").expect_err("loop");
    assert!(matches!(err, StaticError::NginxSyntax { .. }));
    assert!(err.to_string().contains("include loop"), "{err}");

    write(
        r,
        "/etc/nginx/nginx.conf",
        "include missing.conf;\ninclude none/*.conf;\nhttp { }\n",
    );
    let cfg = NginxConfig::load(&root, "/etc/nginx/nginx.conf")
        .expect("loads")
        .expect("present");
    assert_eq!(cfg.missing_includes, ["/etc/nginx/missing.conf"]);
    assert_eq!(cfg.directives.len(), 1);

    write(r, "/etc/nginx/nginx.conf", "http {\n");
    let err = NginxConfig::load(&root, "/etc/nginx/nginx.conf")
        .expect_err("syntax")
        .to_string();
    assert!(
        err.contains("/etc/nginx/nginx.conf") && err.contains("expecting \"}\""),
        "{err}"
    );
}

#[test]
fn loader_marks_modules_loaded_or_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(
        r,
        "/etc/nginx/nginx.conf",
        "include /etc/nginx/modules-enabled/*.conf;\nevents {}\n",
    );
    write(
        r,
        "/usr/share/nginx/modules-available/mod-a.conf",
        "load_module modules/ngx_a_module.so;\n",
    );
    fs::create_dir_all(r.join("etc/nginx/modules-enabled")).expect("mkdir");
    symlink(
        "/usr/share/nginx/modules-available/mod-a.conf",
        r.join("etc/nginx/modules-enabled/50-mod-a.conf"),
    )
    .expect("symlink");
    write(
        r,
        "/usr/lib/nginx/modules/ngx_a_module.so",
        "not really elf",
    );
    write(
        r,
        "/usr/lib/nginx/modules/ngx_b_module.so",
        "not really elf",
    );
    fs::create_dir_all(r.join("usr/share/nginx")).expect("mkdir");
    symlink("../../lib/nginx/modules", r.join("usr/share/nginx/modules")).expect("symlink");
    let root = RootFs::open(r).expect("open");
    let states = NginxLoader::default().plugins(&root, &ElfGraph::default());
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(states[0].0, "/usr/lib/nginx/modules/ngx_a_module.so");
    assert!(
        matches!(&states[0].1, PluginState::Loaded { reason } if reason.contains("/etc/nginx/modules-enabled/50-mod-a.conf:1")),
        "{states:?}"
    );
    assert_eq!(states[1].0, "/usr/lib/nginx/modules/ngx_b_module.so");
    assert!(
        matches!(&states[1].1, PluginState::NotLoaded { reason } if reason.contains("/etc/nginx/nginx.conf")),
        "{states:?}"
    );

    // No configuration, no verdicts.
    fs::remove_file(r.join("etc/nginx/nginx.conf")).expect("rm");
    assert!(NginxLoader::default()
        .plugins(&root, &ElfGraph::default())
        .is_empty());
}
