//! `open` + `unpack` on the real Debian test images built by
//! `scripts/build-test-images.sh --with-archives` (see docs/test-images.md).
//! The images come from `vexxy_testkit::test_image` (`SKIP` outside CI
//! when absent, a failure in CI).

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Instant,
};

use vexxy_image::{open, unpack, BlobCache, ImageError, ImageSource, Limits, OpenOptions};

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    File(u64),
    Dir,
    Link(PathBuf),
    Other,
}

/// Path → kind of a tree, without following symlinks, ignoring /dev.
fn tree(root: &Path) -> BTreeMap<String, Kind> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Kind>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = format!("/{}", p.strip_prefix(root).expect("prefix").display());
            if rel == "/dev" || rel.starts_with("/dev/") {
                continue;
            }
            let m = fs::symlink_metadata(&p).expect("meta");
            let kind = if m.is_dir() {
                go(root, &p, out);
                Kind::Dir
            } else if m.file_type().is_symlink() {
                Kind::Link(fs::read_link(&p).expect("readlink"))
            } else if m.is_file() {
                Kind::File(m.len())
            } else {
                Kind::Other
            };
            out.insert(rel, kind);
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

fn check_tree(unpacked: &Path, rootfs: &Path) {
    let got = tree(unpacked);
    let want: BTreeMap<String, Kind> = tree(rootfs)
        .into_iter()
        .filter(|(_, k)| *k != Kind::Other)
        .collect();
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(10)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    let differing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(10)
        .collect();
    assert!(
        differing.is_empty(),
        "differing kinds or sizes: {differing:?}"
    );
    assert!(got.len() > 5_000, "only {} paths", got.len());
}

fn open_and_unpack(
    source: &str,
    cache: &BlobCache,
    out: &Path,
) -> (vexxy_image::Image, vexxy_image::UnpackReport) {
    let source: ImageSource = source.parse().expect("parses");
    let t = Instant::now();
    let image = open(&source, cache, &OpenOptions::default()).expect("opens");
    let opened = t.elapsed();
    let t = Instant::now();
    let report = unpack(&image, cache, out, &Limits::default()).expect("unpacks");
    eprintln!(
        "{source}: open {:.2?}, unpack {:.2?} ({} entries, {} files, {} MB written)",
        opened,
        t.elapsed(),
        report.entries,
        report.files,
        report.bytes_written >> 20
    );
    (image, report)
}

fn entrypoint_is_nginx(image: &vexxy_image::Image) {
    let want: Vec<String> = ["nginx", "-g", "daemon off;"].map(String::from).to_vec();
    assert_eq!(image.config.entrypoint.as_ref(), Some(&want));
    assert_eq!(image.config.exposed_ports, ["80/tcp"]);
    assert_eq!(
        (image.config.os.as_str(), image.config.architecture.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(image.layers.len(), 1);
    assert!(image.layers[0].diff_id.is_some());
}

#[test]
fn nginx_oci_layout_matches_the_rootfs() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let out = tmp.path().join("rootfs");
    let (image, report) = open_and_unpack(
        &format!("oci:{}:latest", dir.join("oci").display()),
        &cache,
        &out,
    );
    entrypoint_is_nginx(&image);
    assert!(image.manifest_digest.is_some());
    assert_eq!(
        image.layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    check_tree(&out, &dir.join("rootfs"));
    // Ownership is recorded, not applied; nginx's log directory belongs to root here.
    assert_eq!(
        report
            .owners
            .get("/usr/sbin/nginx")
            .map(|m| (m.uid, m.mode)),
        Some((0, 0o755))
    );

    // A missing tag is an error naming the tags there are.
    let err = open(
        &format!("oci:{}:nope", dir.join("oci").display())
            .parse()
            .expect("parses"),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("no such tag");
    assert!(
        matches!(err, ImageError::TagNotFound { .. }) && err.to_string().contains("latest"),
        "{err}"
    );
}

#[test]
fn nginx_oci_archive_matches_and_a_second_open_copies_nothing() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let out = tmp.path().join("rootfs");
    let source = format!("oci-archive:{}", dir.join("image.oci.tar").display());
    let (image, _) = open_and_unpack(&source, &cache, &out);
    entrypoint_is_nginx(&image);
    check_tree(&out, &dir.join("rootfs"));

    let inodes = |cache: &BlobCache| -> BTreeMap<String, u64> {
        fs::read_dir(cache.root().join("blobs/sha256"))
            .expect("blobs")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("meta").ino(),
                )
            })
            .collect()
    };
    let before = inodes(&cache);
    assert_eq!(before.len(), 3, "manifest, config, layer: {before:?}");
    let again = open(
        &source.parse().expect("parses"),
        &cache,
        &OpenOptions::default(),
    )
    .expect("reopens");
    assert_eq!(again, image);
    assert_eq!(inodes(&cache), before, "the second open copied blobs");
}

#[test]
fn nginx_docker_archive_matches_the_rootfs() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let out = tmp.path().join("rootfs");
    let (image, _) = open_and_unpack(
        &format!("docker-archive:{}", dir.join("image.docker.tar").display()),
        &cache,
        &out,
    );
    entrypoint_is_nginx(&image);
    assert_eq!(image.manifest_digest, None);
    assert_eq!(
        image.name.as_deref(),
        Some("docker.io/vexxy-test/nginx:latest")
    );
    assert_eq!(image.layers[0].media_type, vexxy_image::DOCKER_LAYER_TAR);
    assert_eq!(
        image.layers[0].diff_id.as_ref(),
        Some(&image.layers[0].digest)
    );
    check_tree(&out, &dir.join("rootfs"));

    // Same config as the OCI layout's.
    let oci = open(
        &format!("oci:{}", dir.join("oci").display())
            .parse()
            .expect("parses"),
        &cache,
        &OpenOptions::default(),
    )
    .expect("opens");
    assert_eq!(oci.config_digest, image.config_digest);
    assert_eq!(oci.layers[0].diff_id, image.layers[0].diff_id);
}

#[test]
fn a_tampered_oci_layout_is_rejected_for_its_digest() {
    let Some(dir) = vexxy_testkit::test_image("nginx") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("oci");
    fs::create_dir_all(copy.join("blobs/sha256")).expect("mkdir");
    for f in ["oci-layout", "index.json"] {
        fs::copy(dir.join("oci").join(f), copy.join(f)).expect("copy");
    }
    let mut layer = None;
    for e in fs::read_dir(dir.join("oci/blobs/sha256")).expect("blobs") {
        let e = e.expect("entry");
        fs::copy(e.path(), copy.join("blobs/sha256").join(e.file_name())).expect("copy");
        if e.metadata().expect("meta").len() > 1 << 20 {
            layer = Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    let layer = layer.expect("a layer blob");
    let path = copy.join("blobs/sha256").join(&layer);
    let mut bytes = fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&path, bytes).expect("tamper");

    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let err = open(
        &format!("oci:{}:latest", copy.display())
            .parse()
            .expect("parses"),
        &cache,
        &OpenOptions::default(),
    )
    .expect_err("tampered");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if expected.hex() == layer),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&layer) && err.is_bad_input(),
        "{err}"
    );
    assert!(
        !cache.contains(&format!("sha256:{layer}").parse().expect("digest")),
        "a tampered blob entered the cache"
    );
}

#[test]
fn python_flask_docker_archive_config() {
    let Some(dir) = vexxy_testkit::test_image("python-flask") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(tmp.path().join("cache")).expect("cache");
    let source: ImageSource = format!("docker-archive:{}", dir.join("image.docker.tar").display())
        .parse()
        .expect("parses");
    let image = open(&source, &cache, &OpenOptions::default()).expect("opens");
    let all: Vec<String> = image
        .config
        .entrypoint
        .iter()
        .flatten()
        .chain(image.config.cmd.iter().flatten())
        .cloned()
        .collect();
    assert_eq!(all, ["python3", "/app/app.py"]);
    assert_eq!(image.config.exposed_ports, ["8080/tcp"]);
}
