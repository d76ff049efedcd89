//! Hostile and tricky layers, generated at test time: each case checks the
//! error or the neutralised result, and that nothing changed outside the
//! target (a sentinel directory beside it is compared before and after).

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};
use vexxy_image::{
    unpack, BlobCache, Digest, EntryKind, Image, ImageConfig, ImageError, Layer, Limits,
    UnpackReport,
};

fn sha(bytes: &[u8]) -> Digest {
    Digest::from_sha256_bytes(&Sha256::digest(bytes).into())
}

struct Fixture {
    dir: tempfile::TempDir,
    cache: BlobCache,
    target: PathBuf,
    sentinel: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlobCache::open(dir.path().join("cache")).expect("cache");
        let sentinel = dir.path().join("sentinel");
        fs::create_dir(&sentinel).expect("mkdir");
        fs::write(sentinel.join("keep"), b"original").expect("write");
        let target = dir.path().join("target");
        Self {
            dir,
            cache,
            target,
            sentinel,
        }
    }

    /// Everything in the tempdir except the target and the cache: path → (kind, content).
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
            for e in fs::read_dir(dir).expect("read_dir") {
                let p = e.expect("entry").path();
                if skip.contains(&p) {
                    continue;
                }
                let m = fs::symlink_metadata(&p).expect("meta");
                let v = if m.is_dir() {
                    walk(&p, skip, out);
                    "dir".to_owned()
                } else if m.file_type().is_symlink() {
                    format!("link {:?}", fs::read_link(&p).expect("readlink"))
                } else {
                    format!("file {:?} nlink {}", fs::read(&p).expect("read"), m.nlink())
                };
                out.insert(p, v);
            }
        }
        let mut out = BTreeMap::new();
        walk(
            self.dir.path(),
            &[self.target.clone(), self.dir.path().join("cache")],
            &mut out,
        );
        out
    }

    fn layer(&self, tar_bytes: &[u8]) -> Layer {
        self.layer_as(
            tar_bytes,
            tar_bytes,
            "application/vnd.oci.image.layer.v1.tar",
        )
    }

    fn layer_as(&self, uncompressed: &[u8], blob: &[u8], media_type: &str) -> Layer {
        let digest = sha(blob);
        self.cache
            .put(blob, &digest, Some(blob.len() as u64))
            .expect("put");
        Layer {
            digest,
            diff_id: Some(sha(uncompressed)),
            media_type: media_type.to_owned(),
            size: blob.len() as u64,
        }
    }

    /// Unpacks, checking that nothing outside the target changed whatever the outcome.
    fn unpack(&self, layers: Vec<Layer>, limits: &Limits) -> Result<UnpackReport, ImageError> {
        let before = self.outside();
        let passwd = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
        let image = Image {
            manifest_digest: None,
            config_digest: sha(b"{}"),
            config: ImageConfig::default(),
            layers,
            name: None,
        };
        let result = unpack(&image, &self.cache, &self.target, limits);
        assert_eq!(
            self.outside(),
            before,
            "something outside the target changed"
        );
        assert_eq!(
            fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
            passwd,
            "host /etc/passwd gained a link"
        );
        if result.is_err() {
            assert!(
                !self.target.exists(),
                "a failed unpack leaves no partial tree"
            );
        }
        result
    }

    fn t(&self, rel: &str) -> PathBuf {
        self.target.join(rel)
    }
}

/// A tar builder writing names and link names raw (no sanitising).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8], mode: u32) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(100);
        h.set_mtime(0);
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", data, 0o644)
    }
    fn dir(self, name: &str) -> Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"", 0o755)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        )
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
        )
    }
    fn done(self) -> Vec<u8> {
        self.0.into_inner().expect("finish")
    }
}

fn hostile(result: Result<UnpackReport, ImageError>, entry: &str) -> String {
    let err = result.expect_err("refused");
    assert!(
        matches!(&err, ImageError::HostileEntry { entry: e, .. } if e == entry),
        "{err:?}"
    );
    assert!(err.is_bad_input());
    let msg = err.to_string();
    assert!(msg.contains(entry), "{msg}");
    msg
}

#[test]
fn dotdot_names_that_climb_out_are_refused() {
    for name in ["../escape", "a/../../escape", "./../sentinel/keep"] {
        let f = Fixture::new();
        let layer = f.layer(&Tar::new().dir("a/").file(name, b"pwned").done());
        hostile(f.unpack(vec![layer], &Limits::default()), name);
    }
}

#[test]
fn dotdot_inside_and_absolute_names_are_normalised_beneath_the_root() {
    let f = Fixture::new();
    let layer = f.layer(
        &Tar::new()
            .file("/abs/file", b"abs")
            .file("a/b/../c", b"c")
            .done(),
    );
    let r = f.unpack(vec![layer], &Limits::default()).expect("unpacks");
    assert_eq!(fs::read(f.t("abs/file")).expect("abs"), b"abs");
    assert_eq!(fs::read(f.t("a/c")).expect("a/c"), b"c");
    assert!(!f.t("a/b").exists());
    assert_eq!(r.files, 2);
    assert_eq!(r.owners["/abs/file"].uid, 1000);
    assert_eq!(r.owners["/abs"].kind, EntryKind::Dir);
}

#[test]
fn writing_through_a_symlink_to_an_outside_directory_is_refused() {
    let f = Fixture::new();
    let outside = f.sentinel.to_str().expect("utf-8").to_owned();
    let layer = f.layer(
        &Tar::new()
            .symlink("link", &outside)
            .file("link/pwned", b"pwned")
            .done(),
    );
    hostile(f.unpack(vec![layer], &Limits::default()), "link/pwned");
    assert!(!f.sentinel.join("pwned").exists());
}

#[test]
fn symlinks_planted_in_a_lower_layer_resolve_inside_the_root() {
    let f = Fixture::new();
    let lower = f.layer(
        &Tar::new()
            .dir("real/")
            .symlink("abs", "/real")
            .symlink("up", "../../../..")
            .done(),
    );
    let upper = f.layer(
        &Tar::new()
            .file("abs/f", b"via abs")
            .file("up/sentinel/pwned", b"via up")
            .file("up/up/real/g", b"g")
            .done(),
    );
    let r = f
        .unpack(vec![lower, upper], &Limits::default())
        .expect("unpacks");
    assert_eq!(fs::read(f.t("real/f")).expect("real/f"), b"via abs");
    assert_eq!(
        fs::read(f.t("sentinel/pwned")).expect("in-root sentinel"),
        b"via up"
    );
    assert_eq!(fs::read(f.t("real/g")).expect("real/g"), b"g");
    // Symlinks are stored as they are.
    assert_eq!(fs::read_link(f.t("abs")).expect("link"), Path::new("/real"));
    assert_eq!(
        fs::read_link(f.t("up")).expect("link"),
        Path::new("../../../..")
    );
    assert_eq!(r.symlinks, 2);
}

#[test]
fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
    let f = Fixture::new();
    let keep = f.sentinel.join("keep");
    let layer = f.layer(
        &Tar::new()
            .symlink("x", keep.to_str().expect("utf-8"))
            .file("x", b"data")
            .symlink("y", "/etc/shadow")
            .hardlink("y", "x")
            .done(),
    );
    let r = f.unpack(vec![layer], &Limits::default()).expect("unpacks");
    let m = fs::symlink_metadata(f.t("x")).expect("x");
    assert!(m.is_file());
    assert_eq!(fs::read(f.t("x")).expect("x"), b"data");
    assert_eq!(fs::metadata(f.t("y")).expect("y").ino(), m.ino());
    assert_eq!(r.duplicates, 2);
    assert_eq!(fs::read(&keep).expect("sentinel"), b"original");
}

#[test]
fn hard_links_must_stay_inside_and_point_at_existing_files() {
    let f = Fixture::new();
    let layer = f.layer(&Tar::new().hardlink("pw", "/etc/passwd").done());
    let msg = hostile(f.unpack(vec![layer], &Limits::default()), "pw");
    assert!(msg.contains("missing file /etc/passwd"), "{msg}");

    let f = Fixture::new();
    let layer = f.layer(&Tar::new().hardlink("keep", "../sentinel/keep").done());
    let msg = hostile(f.unpack(vec![layer], &Limits::default()), "keep");
    assert!(msg.contains("climbs above"), "{msg}");

    // Through a symlink to an outside directory: resolved in the root, so missing.
    let f = Fixture::new();
    let layer = f.layer(
        &Tar::new()
            .symlink("s", f.sentinel.to_str().expect("utf-8"))
            .hardlink("k", "s/keep")
            .done(),
    );
    hostile(f.unpack(vec![layer], &Limits::default()), "k");

    let f = Fixture::new();
    let layer = f.layer(&Tar::new().dir("d/").hardlink("l", "d").done());
    let msg = hostile(f.unpack(vec![layer], &Limits::default()), "l");
    assert!(msg.contains("directory"), "{msg}");

    // An absolute link name is normalised beneath the root like any name.
    let f = Fixture::new();
    let layer = f.layer(
        &Tar::new()
            .file("etc/passwd", b"root:x:0:0")
            .hardlink("pw", "/etc/passwd")
            .done(),
    );
    let r = f.unpack(vec![layer], &Limits::default()).expect("unpacks");
    assert_eq!(
        fs::metadata(f.t("pw")).expect("pw").ino(),
        fs::metadata(f.t("etc/passwd")).expect("passwd").ino()
    );
    assert_eq!(r.hardlinks, 1);
    assert_eq!(r.owners["/pw"].kind, EntryKind::HardLink);
}

#[test]
fn devices_and_fifos_are_skipped_and_counted() {
    let f = Fixture::new();
    let layer = f.layer(
        &Tar::new()
            .raw(b"dev/null", EntryType::Char, b"", b"", 0o666)
            .raw(b"dev/sda", EntryType::Block, b"", b"", 0o660)
            .raw(b"run/fifo", EntryType::Fifo, b"", b"", 0o600)
            .file("ok", b"ok")
            .done(),
    );
    let r = f.unpack(vec![layer], &Limits::default()).expect("unpacks");
    assert_eq!((r.skipped_devices, r.skipped_fifos, r.files), (2, 1, 1));
    assert!(!f.t("dev/null").exists() && !f.t("dev/sda").exists() && !f.t("run/fifo").exists());
    assert!(!r.owners.contains_key("/dev/null"));
}

#[test]
fn duplicate_entries_the_later_wins() {
    let f = Fixture::new();
    let layer = f.layer(
        &Tar::new()
            .file("dup", b"one")
            .file("dup", b"two")
            .dir("d/")
            .file("d", b"file now")
            .done(),
    );
    let r = f.unpack(vec![layer], &Limits::default()).expect("unpacks");
    assert_eq!(fs::read(f.t("dup")).expect("dup"), b"two");
    assert_eq!(fs::read(f.t("d")).expect("d"), b"file now");
    assert_eq!(r.duplicates, 2);
    assert_eq!(r.owners["/d"].kind, EntryKind::File);
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused() {
    for name in ["a/.wh...", ".wh...", "a/.wh.."] {
        let f = Fixture::new();
        let layer = f.layer(
            &Tar::new()
                .dir("a/")
                .file("a/x", b"x")
                .file(name, b"")
                .done(),
        );
        hostile(f.unpack(vec![layer], &Limits::default()), name);
    }
}

#[test]
fn whiteouts_and_opaque_dirs_across_layers() {
    let f = Fixture::new();
    let lower = f.layer(
        &Tar::new()
            .dir("a/")
            .file("a/x", b"x")
            .file("a/y", b"y")
            .dir("b/")
            .file("b/old", b"old")
            .dir("b/sub/")
            .file("b/sub/deep", b"deep")
            .dir("c/")
            .file("c/z", b"z")
            .file("keep", b"keep")
            .done(),
    );
    let upper = f.layer(
        &Tar::new()
            .file("a/.wh.x", b"")
            .dir("b/")
            .file("b/.wh..wh..opq", b"")
            .file("b/new", b"new")
            .file(".wh.c", b"")
            .file("a/.wh.never-existed", b"")
            .file("d/e", b"e")
            .done(),
    );
    let r = f
        .unpack(vec![lower, upper], &Limits::default())
        .expect("unpacks");
    let mut files = Vec::new();
    for e in walk(&f.target) {
        files.push(e);
    }
    assert_eq!(files, ["a", "a/y", "b", "b/new", "d", "d/e", "keep"]);
    assert_eq!(r.whiteouts, 3);
    assert_eq!(r.opaque_dirs, 1);
    let keys: Vec<&str> = r.owners.keys().map(String::as_str).collect();
    assert_eq!(keys, ["/a", "/a/y", "/b", "/b/new", "/d", "/d/e", "/keep"]);
}

fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            out.push(
                p.strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned(),
            );
            if fs::symlink_metadata(&p).expect("meta").is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[test]
fn a_gzip_bomb_hits_the_size_limits() {
    let f = Fixture::new();
    let big = vec![0u8; 64 << 20];
    let tar = Tar::new().file("bomb", &big).done();
    let gz = gzip(&tar);
    assert!(gz.len() < 200 << 10, "compressed to {}", gz.len());
    let layer = f.layer_as(&tar, &gz, "application/vnd.oci.image.layer.v1.tar+gzip");
    let limits = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = f.unpack(vec![layer.clone()], &limits).expect_err("bomb");
    assert!(
        matches!(
            &err,
            ImageError::LimitExceeded {
                what: "uncompressed size",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&layer.digest.to_string()));

    let limits = Limits {
        max_file_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = f.unpack(vec![layer], &limits).expect_err("bomb");
    assert!(
        matches!(&err, ImageError::LimitExceeded { what: "file size", entry, .. } if entry == "bomb"),
        "{err:?}"
    );
}

#[test]
fn too_many_entries_and_too_long_paths_are_refused() {
    let f = Fixture::new();
    let mut t = Tar::new();
    for i in 0..100 {
        t = t.file(&format!("f{i}"), b"");
    }
    let layer = f.layer(&t.done());
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let err = f.unpack(vec![layer], &limits).expect_err("too many");
    assert!(
        matches!(
            err,
            ImageError::LimitExceeded {
                what: "entry count",
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );

    let f = Fixture::new();
    let long = "d/".repeat(2500) + "f";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"x"[..]).expect("long name");
    let layer = f.layer(&b.into_inner().expect("tar"));
    let err = f
        .unpack(vec![layer], &Limits::default())
        .expect_err("too long");
    assert!(
        matches!(
            err,
            ImageError::LimitExceeded {
                what: "path length",
                limit: 4096,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn setid_bits_are_dropped_unless_kept() {
    let tar = Tar::new()
        .raw(b"bin/su", EntryType::Regular, b"", b"elf", 0o4755)
        .raw(b"g/", EntryType::Directory, b"", b"", 0o2775)
        .done();
    let f = Fixture::new();
    let r = f
        .unpack(vec![f.layer(&tar)], &Limits::default())
        .expect("unpacks");
    assert_eq!(
        fs::metadata(f.t("bin/su"))
            .expect("su")
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::metadata(f.t("g")).expect("g").permissions().mode() & 0o7777,
        0o775
    );
    assert_eq!(r.owners["/bin/su"].mode, 0o4755);
    assert_eq!(r.setid_bits_dropped, 2);

    let f = Fixture::new();
    let limits = Limits {
        keep_setid_bits: true,
        ..Limits::default()
    };
    f.unpack(vec![f.layer(&tar)], &limits).expect("unpacks");
    assert_eq!(
        fs::metadata(f.t("bin/su"))
            .expect("su")
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
}

#[test]
fn read_only_directories_get_their_mode_at_the_end() {
    let f = Fixture::new();
    let tar = Tar::new()
        .raw(b"ro/", EntryType::Directory, b"", b"", 0o555)
        .file("ro/f", b"f")
        .raw(b"./", EntryType::Directory, b"", b"", 0o751)
        .done();
    f.unpack(vec![f.layer(&tar)], &Limits::default())
        .expect("unpacks");
    assert_eq!(
        fs::metadata(f.t("ro")).expect("ro").permissions().mode() & 0o7777,
        0o555
    );
    assert_eq!(
        fs::metadata(&f.target).expect("root").permissions().mode() & 0o7777,
        0o751
    );
}

#[test]
fn zstd_gzip_and_plain_layers_by_magic() {
    let f = Fixture::new();
    let t1 = Tar::new().file("one", b"1").done();
    let t2 = Tar::new().file("two", b"2").done();
    let t3 = Tar::new().file("three", b"3").done();
    let z = zstd::encode_all(&t2[..], 3).expect("zstd");
    // Media types need not say the compression: the magic bytes decide.
    let layers = vec![
        f.layer_as(
            &t1,
            &gzip(&t1),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        f.layer_as(&t2, &z, "application/vnd.oci.image.layer.v1.tar"),
        f.layer(&t3),
    ];
    let r = f.unpack(layers, &Limits::default()).expect("unpacks");
    assert_eq!(walk(&f.target), ["one", "three", "two"]);
    assert_eq!(r.layers, 3);

    // A media type announcing compression over uncompressed content is refused.
    let f = Fixture::new();
    let err = f
        .unpack(
            vec![f.layer_as(&t1, &t1, "application/vnd.oci.image.layer.v1.tar+gzip")],
            &Limits::default(),
        )
        .expect_err("lies");
    assert!(matches!(err, ImageError::Tar { .. }), "{err:?}");
}

#[test]
fn diff_id_and_blob_digest_are_checked() {
    let f = Fixture::new();
    let tar = Tar::new().file("x", b"x").done();
    let mut layer = f.layer(&tar);
    let wrong = sha(b"something else");
    layer.diff_id = Some(wrong.clone());
    let err = f
        .unpack(vec![layer.clone()], &Limits::default())
        .expect_err("diff_id");
    assert!(
        matches!(&err, ImageError::DiffIdMismatch { expected, .. } if expected == &wrong),
        "{err:?}"
    );

    // A blob changed inside the cache is refused before use, naming its digest.
    let f = Fixture::new();
    let layer = f.layer(&tar);
    let path = f.cache.blob_path(&layer.digest);
    let mut bytes = fs::read(&path).expect("blob");
    bytes[10] ^= 1;
    fs::write(&path, bytes).expect("tamper");
    let err = f
        .unpack(vec![layer.clone()], &Limits::default())
        .expect_err("tampered");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&layer.digest.to_string()));
}

#[test]
fn a_non_empty_target_is_left_alone() {
    let f = Fixture::new();
    fs::create_dir(&f.target).expect("mkdir");
    fs::write(f.t("mine"), b"mine").expect("write");
    let image = Image {
        manifest_digest: None,
        config_digest: sha(b""),
        config: ImageConfig::default(),
        layers: vec![],
        name: None,
    };
    let err = unpack(&image, &f.cache, &f.target, &Limits::default()).expect_err("not empty");
    assert!(matches!(err, ImageError::BadTarget { .. }), "{err:?}");
    assert_eq!(fs::read(f.t("mine")).expect("kept"), b"mine");
}

/// A file that is not an image (an env file with a secret) named as an
/// archive: the error says what is wrong, never what the file holds (the
/// tar reader quotes header bytes it cannot parse).
#[test]
fn errors_about_non_images_never_echo_their_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = BlobCache::open(dir.path().join("cache")).expect("cache");
    let marker = "SECRET_TOKEN=hunter2-do-not-echo";
    let mut content = String::new();
    while content.len() < 4096 {
        content.push_str(marker);
        content.push('\n');
    }
    let file = dir.path().join("secrets.env");
    std::fs::write(&file, &content).expect("write");
    for source in [
        vexxy_image::ImageSource::DockerArchive { file: file.clone() },
        vexxy_image::ImageSource::OciArchive {
            file: file.clone(),
            tag: None,
        },
    ] {
        let err = vexxy_image::open(&source, &cache, &vexxy_image::OpenOptions::default())
            .expect_err("not an image");
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            text.push_str(&c.to_string());
            cause = c.source();
        }
        assert!(
            !text.contains("hunter2") && !text.contains("SECRET"),
            "{source:?}: {text}"
        );
        assert!(text.contains("secrets.env"), "names the file: {text}");
    }
}

/// A layer entry whose name no Linux filesystem can hold (a component over
/// 255 bytes) is the image's fault: bad input, not a failure of ours.
#[test]
fn a_name_too_long_for_the_host_is_bad_input() {
    let f = Fixture::new();
    let long = format!("etc/{}", "n".repeat(300));
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    builder
        .append_data(&mut h, &long, &b"ok"[..])
        .expect("append with a GNU long name");
    let layer = f.layer(&builder.into_inner().expect("tar"));
    let err = f
        .unpack(vec![layer], &Limits::default())
        .expect_err("refused");
    assert!(err.is_bad_input(), "{err:?}");
}
