//! The rules format: parse errors, each condition kind, and the built-in
//! rules against fake nginx configurations.

use std::{fs, os::unix::fs::symlink, path::Path};

use vexxy_model::{Justification, Status};
use vexxy_rootfs::RootFs;
use vexxy_static::{builtin_rules, evaluate, parse_rules, RuleSet, StaticError};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, text).expect("write");
}

fn rules(text: &str) -> RuleSet {
    parse_rules(text, Path::new("/tmp/r.toml")).expect("parses")
}

const THEN: &str = r#"
[rule.then]
packages = ["libfoo*"]
status = "not_affected"
justification = "vulnerable_code_not_in_execute_path"
confidence = 0.5
observation = "saw {matches} in {files}"
"#;

fn one_rule(when: &str) -> RuleSet {
    rules(&format!(
        "version = 1\n[[rule]]\nid = \"r\"\ndescription = \"d\"\n[rule.when]\n{when}\n{THEN}"
    ))
}

#[test]
fn parse_errors_name_file_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("version = 1\n[[rule]]\nid = \"a\"\ndescription = \"d\"\nbogus = 1\n", 5, "rule[0]", "unknown field `bogus`"),
        ("version = 1\n[[rule]]\nid = \"a\"\ndescription = \"d\"\n[rule.when]\npath_exist = [\"/x\"]\n", 6, "rule[0].when", "unknown field `path_exist`"),
        ("version = 2\n", 1, "version", "unsupported version 2"),
        ("version = 1\n[[rule]]\nid = \"a\"\n", 0, "rule[0]", "missing field"),
        ("version = \n", 1, "(document)", ""),
        ("version = 1\n[[security_data]]\nid = \"a\"\nkind = \"k\"\npackages = []\n", 5, "security_data[0].packages", "at least one"),
        ("version = 1\n[[security_data]]\nid = \"a\"\nkind = \"k\"\npackages = [\"p\"]\npaths = [\"rel/x\"]\n", 6, "security_data[0].paths", "not absolute"),
        ("version = 1\n[[security_data]]\nid = \"a\"\nkind = \"k\"\npackages = [\"p\"]\n[[security_data]]\nid = \"a\"\nkind = \"k\"\npackages = [\"q\"]\n", 7, "security_data[1].id", "duplicate"),
        ("version = 1\n[[security_data]]\nid = \"a\"\nkind = \"k\"\npackages = [\"p\"]\nfiles = []\n", 0, "security_data[0]", "unknown field `files`"),
    ];
    for (text, line, key, msg) in cases {
        let err = parse_rules(text, Path::new("/etc/vexxy/rules.toml")).expect_err(text);
        let StaticError::Rules {
            file,
            line: l,
            key: k,
            message,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(file, Path::new("/etc/vexxy/rules.toml"));
        if *line != 0 {
            assert_eq!(l, line, "{text}: {err}");
        }
        assert!(k.starts_with(key), "{text}: key {k}");
        assert!(message.contains(msg), "{text}: {message}");
        assert!(
            err.to_string()
                .starts_with("rules file /etc/vexxy/rules.toml, line "),
            "{err}"
        );
    }
    let bad_then = |then: &str| {
        let text = format!(
            "version = 1\n[[rule]]\nid = \"a\"\ndescription = \"d\"\n[rule.when]\npath_exists = [\"/x\"]\n[rule.then]\n{then}\n"
        );
        parse_rules(&text, Path::new("f.toml"))
            .expect_err(then)
            .to_string()
    };
    let base = "status = \"not_affected\"\njustification = \"vulnerable_code_not_present\"\nconfidence = 0.5\nobservation = \"o\"";
    let e = bad_then(&base.replace("0.5", "1.5"));
    assert!(
        e.contains("line 10") && e.contains("then.confidence") && e.contains("outside"),
        "{e}"
    );
    let e = bad_then(&base.replace("\"not_affected\"", "\"maybe\""));
    assert!(e.contains("line 8") && e.contains("unknown status"), "{e}");
    let e = bad_then(&base.replace("justification = \"vulnerable_code_not_present\"\n", ""));
    assert!(e.contains("needs a justification"), "{e}");
    let e = bad_then(&base.replace("\"o\"", "\"{nope}\""));
    assert!(e.contains("unknown placeholder {nope}"), "{e}");
    let e = bad_then(&(base.to_owned() + "\n[rule.when.file_matches]"));
    assert!(!e.is_empty());
    let text = "version = 1\n[[rule]]\nid = \"a\"\ndescription = \"d\"\n[rule.when]\nfile_matches = [{ paths = [\"/x\"], regex = \"(\" }]\n";
    let e = parse_rules(&format!("{text}[rule.then]\n{base}\n"), Path::new("f.toml"))
        .expect_err("regex")
        .to_string();
    assert!(
        e.contains("line 6") && e.contains("file_matches.regex"),
        "{e}"
    );
    let e = parse_rules("version = 1\n[[rule]]\nid = \"a\"\ndescription = \"d\"\n[rule.when]\n[rule.then]\nstatus = \"fixed\"\nconfidence = 1.0\nobservation = \"o\"\n", Path::new("f.toml"))
        .expect_err("no condition")
        .to_string();
    assert!(e.contains("at least one condition"), "{e}");
}

#[test]
fn each_condition_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "/etc/foo/a.conf", "x = 1\nfeature = on\n");
    write(r, "/etc/foo/b.conf", "x = 2\n");
    write(r, "/etc/nginx/nginx.conf", "load_module modules/ngx_m_module.so;\nhttp {\n  server { ssl_verify_client optional; }\n}\n");
    let root = RootFs::open(r).expect("open");
    let holds = |when: &str| {
        !evaluate(&one_rule(when), &root, &["/usr/sbin/nginx".to_owned()])
            .expect("evaluates")
            .is_empty()
    };
    for (when, want) in [
        ("path_exists = [\"/etc/foo/*.conf\"]", true),
        ("path_exists = [\"/etc/foo/a.conf\", \"/etc/nope\"]", false),
        ("path_absent = [\"/etc/nope/*\"]", true),
        ("path_absent = [\"/etc/foo\"]", false),
        ("file_matches = [{ paths = [\"/etc/foo/*.conf\"], regex = \"^feature = on$\" }]", true),
        ("file_matches = [{ paths = [\"/etc/foo/*.conf\"], regex = \"^feature = off$\" }]", false),
        ("file_not_matches = [{ paths = [\"/etc/foo/*.conf\"], regex = \"feature = off\" }]", true),
        ("file_not_matches = [{ paths = [\"/etc/foo/*.conf\"], regex = \"x = 2\" }]", false),
        ("file_not_matches = [{ paths = [\"/etc/absent.conf\"], regex = \"x\" }]", true),
        ("nginx_module_loaded = [\"ngx_m_module\"]", true),
        ("nginx_module_loaded = [\"ngx_other_module\"]", false),
        ("nginx_module_not_loaded = [\"ngx_other_module\"]", true),
        ("nginx_module_not_loaded = [\"ngx_m_module.so\"]", false),
        ("nginx_directive_present = [{ directive = \"ssl_verify_client\" }]", true),
        ("nginx_directive_present = [{ directive = \"ssl_verify_client\", values = [\"ON\", \"optional\"] }]", true),
        ("nginx_directive_absent = [{ directive = \"ssl_verify_client\", values = [\"on\"] }]", true),
        ("nginx_directive_absent = [{ directive = \"ssl_verify_client\" }]", false),
        ("entrypoint_is = [\"nginx\"]", true),
        ("entrypoint_is = [\"python3\"]", false),
    ] {
        assert_eq!(holds(when), want, "{when}");
    }
    let out = evaluate(
        &one_rule("file_matches = [{ paths = [\"/etc/foo/*.conf\"], regex = \"x = \" }]"),
        &root,
        &[],
    )
    .expect("ok");
    assert_eq!(
        out[0].observation,
        "saw /etc/foo/a.conf:1, /etc/foo/b.conf:1 in /etc/foo/a.conf, /etc/foo/b.conf"
    );
    assert_eq!(out[0].selector.packages, ["libfoo*"]);
    assert!(out[0]
        .facts
        .contains(&("match".to_owned(), "/etc/foo/b.conf:1".to_owned())));

    // Without an nginx configuration every nginx condition is false.
    fs::remove_file(r.join("etc/nginx/nginx.conf")).expect("rm");
    for when in [
        "nginx_module_not_loaded = [\"ngx_x_module\"]",
        "nginx_directive_absent = [{ directive = \"ssl_verify_client\" }]",
        "nginx_module_loaded = [\"ngx_m_module\"]",
    ] {
        assert!(!holds(when), "{when}");
    }
}

fn nginx_image(modules_enabled: &[&str], site: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    write(r, "/etc/nginx/nginx.conf", "user www-data;\ninclude /etc/nginx/modules-enabled/*.conf;\nevents { }\nhttp {\n  include /etc/nginx/sites-enabled/*;\n}\n");
    fs::create_dir_all(r.join("etc/nginx/modules-enabled")).expect("mkdir");
    for m in ["image_filter", "xslt_filter", "geoip"] {
        write(
            r,
            &format!("/usr/lib/nginx/modules/ngx_http_{m}_module.so"),
            "",
        );
        write(
            r,
            &format!("/usr/share/nginx/modules-available/mod-{m}.conf"),
            &format!("load_module modules/ngx_http_{m}_module.so;\n"),
        );
    }
    for m in modules_enabled {
        symlink(
            format!("/usr/share/nginx/modules-available/mod-{m}.conf"),
            r.join(format!("etc/nginx/modules-enabled/50-mod-{m}.conf")),
        )
        .expect("symlink");
    }
    write(r, "/etc/nginx/sites-enabled/default", site);
    dir
}

fn fired(dir: &tempfile::TempDir) -> Vec<String> {
    fired_with(dir, "/usr/sbin/nginx")
}

fn fired_with(dir: &tempfile::TempDir, entrypoint: &str) -> Vec<String> {
    let root = RootFs::open(dir.path()).expect("open");
    evaluate(&builtin_rules(), &root, &[entrypoint.to_owned()])
        .expect("evaluates")
        .into_iter()
        .map(|o| o.rule_id)
        .collect()
}

#[test]
fn builtin_rules_parse_and_follow_the_configuration() {
    let set = builtin_rules();
    assert_eq!(set.rules.len(), 4);
    let ssl = set
        .rules
        .iter()
        .find(|r| r.id == "nginx-no-peer-certificate-verification")
        .expect("ssl rule");
    assert_eq!(
        ssl.justification,
        Some(Justification::VulnerableCodeCannotBeControlledByAdversary)
    );
    assert!(ssl
        .selector
        .vulnerabilities
        .contains(&"CVE-2022-3602".to_owned()));
    assert!((ssl.confidence.get() - 0.7).abs() < 1e-9);

    let plain = "server { listen 443 ssl; ssl_certificate /c.pem; }\n";
    let all = [
        "nginx-image-filter-not-loaded",
        "nginx-xslt-not-loaded",
        "nginx-geoip-not-loaded",
        "nginx-no-peer-certificate-verification",
    ];
    assert_eq!(fired(&nginx_image(&[], plain)), all);
    assert_eq!(fired(&nginx_image(&["image_filter"], plain)), all[1..]);
    assert_eq!(
        fired(&nginx_image(
            &["image_filter", "xslt_filter", "geoip"],
            plain
        )),
        all[3..]
    );
    for verifying in [
        "server { ssl_verify_client on; }",
        "server { ssl_verify_client optional_no_ca; }",
        "server { location / { proxy_pass https://up; proxy_ssl_verify on; } }",
    ] {
        assert_eq!(fired(&nginx_image(&[], verifying)), all[..3], "{verifying}");
    }
    assert_eq!(
        fired(&nginx_image(&[], "server { ssl_verify_client off; }")),
        all
    );

    let dir = nginx_image(&["image_filter"], plain);
    let root = RootFs::open(dir.path()).expect("open");
    let out =
        evaluate(&builtin_rules(), &root, &["/usr/sbin/nginx".to_owned()]).expect("evaluates");
    let xslt = out
        .iter()
        .find(|o| o.rule_id == "nginx-xslt-not-loaded")
        .expect("xslt");
    assert_eq!(xslt.status, Status::NotAffected);
    assert!(
        xslt.observation
            .contains("/etc/nginx/modules-enabled/50-mod-image_filter.conf"),
        "{}",
        xslt.observation
    );
    assert!(
        xslt.observation
            .contains("/etc/nginx/sites-enabled/default"),
        "{}",
        xslt.observation
    );

    // No nginx at all: no rule applies.
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(fired(&empty).is_empty());
}

#[test]
fn builtin_nginx_rules_need_nginx_to_be_the_entrypoint() {
    let dir = nginx_image(&[], "server { listen 443 ssl; }\n");
    assert!(!fired_with(&dir, "/usr/sbin/nginx").is_empty());
    assert!(
        fired_with(&dir, "/usr/bin/python3.11").is_empty(),
        "another program runs: nginx's config says nothing"
    );
}

#[test]
fn builtin_security_data_names_ca_tz_locale_and_crypto_policy() {
    let set = builtin_rules();
    let ids: Vec<&str> = set.security_data.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ca-certificates",
            "time-zones",
            "locales",
            "crypto-policies"
        ]
    );
    let ca = &set.security_data[0];
    assert!(ca.covers_package("ca-certificates"));
    // the bundle update-ca-certificates generates, which no package lists
    assert!(ca.covers_path("/etc/ssl/certs/ca-certificates.crt"));
    assert!(!ca.covers_path("/etc/passwd"));
    let tz = &set.security_data[1];
    assert!(tz.covers_package("tzdata") && tz.covers_path("/etc/localtime"));
}
