//! `Credentials::FromDockerConfig` reads `$DOCKER_CONFIG/config.json`. This
//! binary holds a single test because it sets a process-wide variable.

mod support;

use base64::Engine as _;
use support::{check_layout, synthetic, Auth, Registry, PASS, USER};
use vexxy_registry::{default_docker_config_path, pull_blocking, Credentials, PullOptions};

#[test]
fn credentials_come_from_docker_config_env() {
    let Some(bin) = support::tools_and_htpasswd() else {
        return;
    };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::Htpasswd);
    let manifest = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);

    let config_dir = tempfile::tempdir().expect("tempdir");
    std::env::set_var("DOCKER_CONFIG", config_dir.path());
    assert_eq!(
        default_docker_config_path(),
        Some(config_dir.path().join("config.json"))
    );
    let opts = PullOptions {
        credentials: Credentials::FromDockerConfig,
        ..support::options(&registry)
    };
    let out = tempfile::tempdir().expect("tempdir");

    // No config file: anonymous, which this registry refuses.
    let e = pull_blocking(&reference, &opts, out.path()).expect_err("no config");
    assert!(
        e.is_bad_input() && e.to_string().contains("refused access"),
        "{e}"
    );

    // username/password fields, plus a credential helper named for this
    // registry: the stored credentials are used and the helper is reported.
    std::fs::write(
        config_dir.path().join("config.json"),
        serde_json::json!({
            "auths": {registry.addr.clone(): {"username": USER, "password": PASS}},
            "credHelpers": {registry.addr.clone(): "pass"},
        })
        .to_string(),
    )
    .expect("write config");
    let p = pull_blocking(&reference, &opts, out.path()).expect("credentials from config");
    assert_eq!(p.manifest_digest.to_string(), manifest);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("docker-credential-pass"),
        "{:?}",
        p.warnings
    );
    check_layout(out.path(), &reference);

    // Only a credential store: warned about, then refused as anonymous.
    let store_only = serde_json::json!({"credsStore": "desktop"}).to_string();
    std::fs::write(config_dir.path().join("config.json"), store_only).expect("write config");
    let e = pull_blocking(&reference, &opts, tempfile::tempdir().expect("dir").path())
        .expect_err("helper not run");
    assert!(e.to_string().contains("refused access"), "{e}");

    // A broken config is bad input naming the file.
    let bad = base64::engine::general_purpose::STANDARD.encode("no-colon");
    std::fs::write(
        config_dir.path().join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{bad}"}}}}}}"#,
            registry.addr
        ),
    )
    .expect("write config");
    let e = pull_blocking(&reference, &opts, out.path()).expect_err("bad config");
    assert!(
        e.is_bad_input() && e.to_string().contains("config.json"),
        "{e}"
    );
    std::env::remove_var("DOCKER_CONFIG");
}
