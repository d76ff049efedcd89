//! Pulls from a real local registry (Debian's `docker-registry`), pushed to
//! with skopeo. Skips with a printed reason when the tools or the nginx test
//! image are missing outside CI; fails in CI.

mod support;

use support::{
    check_layout, expected, prerequisites, read_json, synthetic, tools, Auth, Registry,
    TokenServer, PASS, USER,
};
use vexxy_registry::{pull, pull_blocking, Credentials, PullOptions, RegistryError};

#[test]
fn pulls_nginx_by_tag_and_by_digest_and_reuses_blobs() {
    let Some((bin, image)) = prerequisites() else {
        return;
    };
    let exp = expected(&image);
    let registry = Registry::start(&bin, Auth::None);
    assert_eq!(
        registry.push(&image, "latest", "nginx", false),
        exp.manifest
    );

    let out = tempfile::tempdir().expect("tempdir");
    let layout = out.path().join("layout");
    let by_tag = format!("{}/nginx:latest", registry.addr);
    let first = pull_blocking(&by_tag, &support::options(&registry), &layout).expect("pull by tag");
    assert_eq!(first.reference, by_tag);
    assert_eq!(first.manifest_digest.to_string(), exp.manifest);
    assert_eq!(first.config_digest.to_string(), exp.config);
    assert_eq!(first.index_digest, None);
    let layers: Vec<String> = first.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(layers, exp.layers);
    assert_eq!(first.reused_blobs, 0);
    let manifest = read_json(&support::blob(&image, &exp.manifest));
    let blob_bytes: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .chain([&manifest["config"]])
        .map(|d| d["size"].as_u64().expect("size"))
        .sum();
    assert_eq!(first.fetched_bytes, blob_bytes);
    assert_eq!(check_layout(&layout, &by_tag), exp.manifest);

    // Same layout again: every config and layer blob is reused.
    let second =
        pull_blocking(&by_tag, &support::options(&registry), &layout).expect("second pull");
    assert_eq!(second.reused_blobs, exp.layers.len() + 1);
    assert_eq!(second.fetched_bytes, 0);
    assert_eq!(second.manifest_digest, first.manifest_digest);
    let index = read_json(&layout.join("index.json"));
    assert_eq!(
        index["manifests"].as_array().expect("manifests").len(),
        1,
        "{index}"
    );

    // By digest, with the docker:// prefix, through the async API, into the
    // same layout: a second index entry, nothing fetched.
    let by_digest = format!("{}/nginx@{}", registry.addr, exp.manifest);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let third = rt
        .block_on(pull(
            &format!("docker://{by_digest}"),
            &support::options(&registry),
            &layout,
        ))
        .expect("pull by digest");
    assert_eq!(third.manifest_digest.to_string(), exp.manifest);
    assert_eq!(third.reference, by_digest);
    assert_eq!(third.fetched_bytes, 0);
    assert_eq!(check_layout(&layout, &by_digest), exp.manifest);
    assert_eq!(check_layout(&layout, &by_tag), exp.manifest);
}

#[test]
fn missing_images_and_plain_http_without_opt_in_are_errors() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    registry.push(image.dir.path(), "latest", "app", false);
    let out = tempfile::tempdir().expect("tempdir");

    let missing_tag = format!("{}/app:nope", registry.addr);
    let e =
        pull_blocking(&missing_tag, &support::options(&registry), out.path()).expect_err("no tag");
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");
    assert!(
        e.is_bad_input() && e.to_string().contains(&missing_tag),
        "{e}"
    );

    let missing_digest = format!("{}/app@sha256:{}", registry.addr, "0".repeat(64));
    let e =
        pull_blocking(&missing_digest, &support::options(&registry), out.path()).expect_err("none");
    assert!(matches!(e, RegistryError::NotFound { .. }), "{e:?}");

    // Without listing the registry as insecure the client speaks TLS to a
    // plain-HTTP server: a transport failure, not bad input.
    let by_tag = format!("{}/app:latest", registry.addr);
    let e = pull_blocking(&by_tag, &PullOptions::default(), out.path()).expect_err("https");
    assert!(matches!(e, RegistryError::Network { .. }), "{e:?}");
    assert!(
        !e.is_bad_input() && e.to_string().contains(&registry.addr),
        "{e}"
    );
    assert!(!out.path().join("index.json").exists());
}

#[test]
fn picks_the_platform_from_a_multi_arch_index() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/arm64/v8", "linux/amd64", "linux/arm/v7"]);
    let registry = Registry::start(&bin, Auth::None);
    let pushed = registry.push(image.dir.path(), "latest", "multi", true);
    assert_eq!(Some(&pushed), image.index.as_ref());
    let reference = format!("{}/multi:latest", registry.addr);
    let out = tempfile::tempdir().expect("tempdir");

    let host =
        pull_blocking(&reference, &support::options(&registry), out.path()).expect("host platform");
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        assert_eq!(host.manifest_digest.to_string(), image.manifests[1]);
    }
    assert_eq!(
        host.index_digest.as_ref().map(ToString::to_string),
        image.index
    );
    assert_eq!(host.config_digest.to_string(), image.config);
    assert_eq!(host.layers.len(), 2);

    for (platform, want) in [("linux/arm64", 0), ("linux/arm/v7", 2), ("linux/amd64", 1)] {
        let opts = PullOptions {
            platform: Some(platform.into()),
            ..support::options(&registry)
        };
        let p = pull_blocking(&reference, &opts, out.path()).expect(platform);
        assert_eq!(
            p.manifest_digest.to_string(),
            image.manifests[want],
            "{platform}"
        );
        assert_eq!(
            p.reused_blobs, 3,
            "{platform}: config and both layers reused"
        );
        assert_eq!(check_layout(out.path(), &reference), image.manifests[want]);
    }

    let opts = PullOptions {
        platform: Some("windows/amd64".into()),
        ..support::options(&registry)
    };
    let e = pull_blocking(&reference, &opts, out.path()).expect_err("no windows");
    assert!(
        matches!(e, RegistryError::NoMatchingPlatform { .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("windows/amd64") && msg.contains("linux/arm/v7"),
        "{msg}"
    );
    let opts = PullOptions {
        platform: Some("linux".into()),
        ..support::options(&registry)
    };
    let e = pull_blocking(&reference, &opts, out.path()).expect_err("bad platform");
    assert!(
        matches!(e, RegistryError::BadPlatform { .. }) && e.is_bad_input(),
        "{e:?}"
    );
}

#[test]
fn tampered_blobs_and_manifests_are_rejected_and_not_stored() {
    let Some(bin) = tools() else { return };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::None);
    let manifest = registry.push(image.dir.path(), "latest", "app", false);
    let reference = format!("{}/app:latest", registry.addr);

    // Corrupt the second layer in the registry's storage, keeping its size.
    let victim = &image.layers[1];
    let data = registry.blob_data(victim);
    let mut bytes = std::fs::read(&data).expect("stored layer");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).expect("tamper");

    let out = tempfile::tempdir().expect("tempdir");
    let e =
        pull_blocking(&reference, &support::options(&registry), out.path()).expect_err("tampered");
    assert!(matches!(e, RegistryError::BlobMismatch { .. }), "{e:?}");
    assert!(e.is_bad_input());
    let msg = e.to_string();
    assert!(
        msg.contains(victim.as_str()) && msg.contains("hashes to"),
        "{msg}"
    );
    assert!(
        !support::blob(out.path(), victim).exists(),
        "tampered blob stored"
    );
    assert!(
        !out.path().join("index.json").exists(),
        "index written for a failed pull"
    );
    assert!(
        !out.path().join(".vexxy-tmp").exists(),
        "temporary file left behind"
    );
    let stored: Vec<_> = std::fs::read_dir(out.path().join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        stored.iter().all(|h| !victim.ends_with(h.as_str())),
        "{stored:?}"
    );

    // A manifest changed in storage no longer matches its digest, whether
    // pinned by the reference or announced by the registry for a tag.
    let mdata = registry.blob_data(&manifest);
    let mut mbytes = std::fs::read(&mdata).expect("stored manifest");
    mbytes.extend_from_slice(b"\n");
    std::fs::write(&mdata, &mbytes).expect("tamper manifest");
    let by_digest = format!("{}/app@{manifest}", registry.addr);
    for r in [by_digest.as_str(), reference.as_str()] {
        let e = pull_blocking(r, &support::options(&registry), out.path())
            .expect_err("tampered manifest");
        assert!(
            matches!(e, RegistryError::ManifestDigestMismatch { .. }),
            "{r}: {e:?}"
        );
        assert!(e.is_bad_input() && e.to_string().contains(&manifest), "{e}");
    }
    assert!(!support::blob(out.path(), &manifest).exists());
}

#[test]
fn basic_auth_refuses_anonymous_and_accepts_credentials() {
    let Some(bin) = support::tools_and_htpasswd() else {
        return;
    };
    let image = synthetic(&["linux/amd64"]);
    let registry = Registry::start(&bin, Auth::Htpasswd);
    let manifest = registry.push(image.dir.path(), "latest", "private/app", false);
    let reference = format!("{}/private/app:latest", registry.addr);
    let out = tempfile::tempdir().expect("tempdir");

    let e =
        pull_blocking(&reference, &support::options(&registry), out.path()).expect_err("anonymous");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
    assert!(e.is_bad_input());
    let msg = e.to_string();
    assert!(
        msg.contains(&registry.addr) && msg.contains("refused access"),
        "{msg}"
    );
    assert!(!out.path().join("index.json").exists());

    let wrong = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: "wrong".into(),
        },
        ..support::options(&registry)
    };
    let e = pull_blocking(&reference, &wrong, out.path()).expect_err("wrong password");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
    assert!(!e.to_string().contains("wrong"), "password leaked: {e}");

    let right = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: PASS.into(),
        },
        ..support::options(&registry)
    };
    let p = pull_blocking(&reference, &right, out.path()).expect("basic credentials");
    assert_eq!(p.manifest_digest.to_string(), manifest);
    assert_eq!(check_layout(out.path(), &reference), manifest);

    // The same credentials from a docker config file ("auth" is base64
    // user:pass); helpers for other registries cause no warning.
    let config = out.path().join("config.json");
    let auth = base64_encode(&format!("{USER}:{PASS}"));
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"http://{}": {{"auth": "{auth}"}}}},
               "credHelpers": {{"gcr.io": "gcloud"}}}}"#,
            registry.addr
        ),
    )
    .expect("write config");
    let from_file = PullOptions {
        credentials: Credentials::DockerConfigFile(config.clone()),
        ..support::options(&registry)
    };
    let fresh = tempfile::tempdir().expect("tempdir");
    let p = pull_blocking(&reference, &from_file, fresh.path()).expect("docker config");
    assert_eq!(p.manifest_digest.to_string(), manifest);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    check_layout(fresh.path(), &reference);
}

#[test]
fn bearer_token_auth_through_a_token_service() {
    let Some(bin) = tools() else { return };
    let tokens = TokenServer::start();
    let (issued, refused) = (tokens.issued.clone(), tokens.refused.clone());
    let registry = Registry::start(&bin, tokens.auth());
    let image = synthetic(&["linux/amd64"]);
    let manifest = registry.push(image.dir.path(), "latest", "team/app", false);
    let reference = format!("{}/team/app:latest", registry.addr);
    let out = tempfile::tempdir().expect("tempdir");

    let refused_before = refused.load(std::sync::atomic::Ordering::Relaxed);
    let e =
        pull_blocking(&reference, &support::options(&registry), out.path()).expect_err("anonymous");
    assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("token service"), "{e}");
    assert!(refused.load(std::sync::atomic::Ordering::Relaxed) > refused_before);

    let wrong = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: "nope".into(),
        },
        ..support::options(&registry)
    };
    let e = pull_blocking(&reference, &wrong, out.path()).expect_err("wrong password");
    assert!(
        matches!(e, RegistryError::AuthRefused { .. }) && e.is_bad_input(),
        "{e:?}"
    );

    let issued_before = issued.load(std::sync::atomic::Ordering::Relaxed);
    let right = PullOptions {
        credentials: Credentials::Basic {
            user: USER.into(),
            pass: PASS.into(),
        },
        ..support::options(&registry)
    };
    let p = pull_blocking(&reference, &right, out.path()).expect("bearer token pull");
    assert_eq!(p.manifest_digest.to_string(), manifest);
    assert!(
        issued.load(std::sync::atomic::Ordering::Relaxed) > issued_before,
        "no token used"
    );
    assert_eq!(check_layout(out.path(), &reference), manifest);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
