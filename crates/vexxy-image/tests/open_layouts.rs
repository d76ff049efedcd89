//! `open` on small layouts and archives generated at test time: tags,
//! multi-platform indexes, tampering, docker-archives with gzip layers.

use std::{fs, io::Write, path::Path};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use vexxy_image::{open, BlobCache, Digest, ImageError, ImageSource, OpenOptions, Platform};

fn sha(bytes: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(bytes).into())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn layer_tar(name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, name, &b"hi"[..]).expect("append");
    b.into_inner().expect("tar")
}

struct LayoutBuilder<'a> {
    dir: &'a Path,
}

impl LayoutBuilder<'_> {
    fn blob(&self, bytes: &[u8]) -> (Digest, usize) {
        let d = sha(bytes);
        fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).expect("blob");
        (d, bytes.len())
    }

    /// A one-layer image for `arch`; returns the manifest descriptor.
    fn image(&self, arch: &str, entry: &str) -> serde_json::Value {
        let tar = layer_tar(entry);
        let (ld, ls) = self.blob(&gzip(&tar));
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": {"Entrypoint": [format!("/bin/{arch}")], "Labels": {"a": "b"}, "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": [sha(&tar).to_string()]}
        });
        let (cd, cs) = self.blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": ls}]
        });
        let (md, ms) = self.blob(manifest.to_string().as_bytes());
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": ms,
               "platform": {"architecture": arch, "os": "linux"}})
    }

    fn index(&self, manifests: Vec<serde_json::Value>) {
        fs::write(
            self.dir.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("layout");
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(self.dir.join("index.json"), index.to_string()).expect("index");
    }
}

fn new_layout(dir: &Path) -> LayoutBuilder<'_> {
    fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    LayoutBuilder { dir }
}

fn src(s: String) -> ImageSource {
    s.parse().expect("parses")
}

#[test]
fn multi_platform_index_picks_the_host_or_the_asked_platform() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let dir = tmp.path().join("oci");
    let l = new_layout(&dir);
    let amd = l.image("amd64", "amd");
    let arm = l.image("arm64", "arm");
    // A nested index tagged "multi", as a registry pull stores a multi-arch image.
    let nested = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]});
    let (nd, ns) = l.blob(nested.to_string().as_bytes());
    let mut amd_tagged = l.image("amd64", "single");
    amd_tagged["annotations"] = json!({"org.opencontainers.image.ref.name": "single", "io.containerd.image.name": "example.com/app:single"});
    l.index(vec![
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": nd.to_string(), "size": ns,
               "annotations": {"org.opencontainers.image.ref.name": "multi"}}),
        amd_tagged,
    ]);
    let oci = tmp.path().join("oci").display().to_string();

    let host = open(
        &src(format!("oci:{oci}:multi")),
        &cache,
        &OpenOptions::default(),
    )
    .expect("host platform");
    assert_eq!(host.config.architecture, Platform::host().architecture);
    assert_eq!(host.config.working_dir.as_deref(), Some("/srv"));
    assert_eq!(host.config.labels.get("a").map(String::as_str), Some("b"));
    assert_eq!(
        host.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let arm64 = OpenOptions {
        platform: Some("linux/arm64".parse().expect("platform")),
    };
    let img = open(&src(format!("oci:{oci}:multi")), &cache, &arm64).expect("arm64");
    assert_eq!(img.config.entrypoint, Some(vec!["/bin/arm64".to_owned()]));

    let s390 = OpenOptions {
        platform: Some("linux/s390x".parse().expect("platform")),
    };
    let err = open(&src(format!("oci:{oci}:multi")), &cache, &s390).expect_err("no s390x");
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. })
            && err.to_string().contains("linux/arm64"),
        "{err}"
    );
    // An asked platform also applies to a single-platform image.
    let err = open(&src(format!("oci:{oci}:single")), &cache, &arm64).expect_err("wrong arch");
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );

    let single = open(
        &src(format!("oci:{oci}:single")),
        &cache,
        &OpenOptions::default(),
    )
    .expect("single");
    assert_eq!(single.name.as_deref(), Some("example.com/app:single"));

    // Two tagged images and no tag: ambiguous only when platforms cannot decide.
    let err = open(
        &src(format!("oci:{oci}:nope")),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("tag");
    assert!(err.to_string().contains("multi, single"), "{err}");
}

#[test]
fn two_untagged_images_without_platforms_are_ambiguous() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let dir = tmp.path().join("oci");
    let l = new_layout(&dir);
    let mut a = l.image("amd64", "a");
    let mut b = l.image("amd64", "b");
    a.as_object_mut().expect("object").remove("platform");
    b.as_object_mut().expect("object").remove("platform");
    l.index(vec![a, b]);
    let err = open(
        &src(format!("oci:{}", tmp.path().join("oci").display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("ambiguous");
    assert!(
        matches!(err, ImageError::Ambiguous { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn tampered_config_and_missing_blobs_are_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let dir = tmp.path().join("oci");
    let l = new_layout(&dir);
    let m = l.image("amd64", "x");
    l.index(vec![m.clone()]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(
            dir.join("blobs/sha256").join(
                m["digest"]
                    .as_str()
                    .expect("digest")
                    .trim_start_matches("sha256:"),
            ),
        )
        .expect("manifest"),
    )
    .expect("json");
    let config = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .trim_start_matches("sha256:")
        .to_owned();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .trim_start_matches("sha256:")
        .to_owned();

    let cpath = dir.join("blobs/sha256").join(&config);
    let original = fs::read(&cpath).expect("config");
    fs::write(
        &cpath,
        String::from_utf8(original.clone())
            .expect("utf-8")
            .replace("amd64", "AMD64"),
    )
    .expect("tamper");
    let err = open(
        &src(format!("oci:{}", dir.display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("tampered");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if expected.hex() == config),
        "{err}"
    );
    fs::write(&cpath, original).expect("restore");

    fs::remove_file(dir.join("blobs/sha256").join(&layer)).expect("rm");
    let err = open(
        &src(format!("oci:{}", dir.display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("missing");
    assert!(
        matches!(&err, ImageError::BlobMissing { digest, .. } if digest.hex() == layer),
        "{err}"
    );
}

#[test]
fn gzipped_oci_archive_and_docker_archive_with_gzip_layer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let dir = tmp.path().join("oci");
    let l = new_layout(&dir);
    let m = l.image("amd64", "x");
    let mut tagged = m.clone();
    tagged["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    l.index(vec![tagged]);
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &dir).expect("tar layout");
    let archive = tmp.path().join("img.oci.tar.gz");
    fs::write(&archive, gzip(&b.into_inner().expect("tar"))).expect("write");
    let img = open(
        &src(format!("oci-archive:{}:v1", archive.display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect("opens");
    assert_eq!(
        img.manifest_digest
            .as_ref()
            .map(Digest::to_string)
            .as_deref(),
        m["digest"].as_str()
    );

    // docker-archive: gzip layer (diff_id checked at unpack), config named by its digest.
    let tar = layer_tar("etc/hostname");
    let gz = gzip(&tar);
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                        "rootfs": {"type": "layers", "diff_ids": [sha(&tar).to_string()]}})
    .to_string();
    let cd = sha(config.as_bytes());
    let build = |config_name: &str, config_bytes: &[u8]| {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).expect("append");
        };
        add(
            "manifest.json",
            json!([{"Config": config_name, "RepoTags": ["r/x:1"], "Layers": ["l/layer.tar"]}])
                .to_string()
                .as_bytes(),
        );
        add(config_name, config_bytes);
        add("l/layer.tar", &gz);
        b.into_inner().expect("tar")
    };
    let path = tmp.path().join("d.tar");
    fs::write(
        &path,
        build(&format!("{}.json", cd.hex()), config.as_bytes()),
    )
    .expect("write");
    let img = open(
        &src(format!("docker-archive:{}", path.display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect("opens");
    assert_eq!(img.name.as_deref(), Some("r/x:1"));
    assert_eq!(img.layers[0].media_type, vexxy_image::DOCKER_LAYER_GZIP);
    assert_eq!(img.layers[0].digest, sha(&gz));
    assert_eq!(img.config_digest, cd);
    let report = vexxy_image::unpack(
        &img,
        &cache,
        &tmp.path().join("root"),
        &vexxy_image::Limits::default(),
    )
    .expect("unpacks");
    assert_eq!(report.files, 1);

    // A config whose content does not match its digest-shaped name is refused.
    fs::write(
        &path,
        build(
            &format!("{}.json", cd.hex()),
            config.replace("sh", "bash").as_bytes(),
        ),
    )
    .expect("write");
    let err = open(
        &src(format!("docker-archive:{}", path.display())),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("tampered");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if expected == &cd),
        "{err}"
    );
}

#[test]
fn registry_and_dir_sources_are_not_opened_here() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let err = open(
        &src("docker://nginx:1.27".into()),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("registry");
    assert!(
        matches!(err, ImageError::NeedsRegistryPull { ref reference } if reference == "nginx:1.27"),
        "{err}"
    );
    let err = open(&src("dir:/".into()), &cache, &OpenOptions::default()).expect_err("dir");
    assert!(matches!(err, ImageError::NotAnImage { .. }), "{err}");
    let err = open(
        &src("oci-archive:/nonexistent.tar".into()),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("missing");
    assert!(
        matches!(err, ImageError::SourceNotFound { .. }) && err.is_bad_input(),
        "{err}"
    );
}
