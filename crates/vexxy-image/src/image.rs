//! Opening an image: resolve index → manifest → config and layers, importing
//! every blob into the cache with its digest verified.

use std::{collections::BTreeMap, io::Read, path::Path};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;
use vexxy_model::Digest;

use crate::{
    archive::TarIndex,
    cache::{digest_of, hash_reader, open_regular, BlobCache},
    ImageError, ImageSource, Platform,
};

/// Largest `index.json`, index or manifest read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest image config read.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Largest docker-archive `manifest.json` read.
const MAX_DOCKER_MANIFEST_BYTES: u64 = 4 << 20;
/// Nested indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type given to an uncompressed docker-archive layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Media type given to a gzip docker-archive layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How to open an image.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The platform to pick from a multi-platform index (default: the host's).
    /// When set, a single-platform image of another platform is refused too.
    pub platform: Option<Platform>,
}

/// The parts of an image config vexxy uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `ExposedPorts` keys, sorted (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// GOARCH name (`amd64`).
    pub architecture: String,
    /// GOOS name (`linux`).
    pub os: String,
    /// Architecture variant (`v8`) when given.
    pub variant: Option<String>,
}

/// One filesystem layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    /// Media type from the manifest (or derived from the content for docker-archives).
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
}

/// An opened image whose blobs are all in the [`BlobCache`], verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Digest of the manifest (`None` for a docker-archive, which has none).
    pub manifest_digest: Option<Digest>,
    /// Digest of the config blob.
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
    /// Layers, lowest first.
    pub layers: Vec<Layer>,
    /// A name for the image when the source carries one (docker-archive
    /// `RepoTags`, an `io.containerd.image.name` annotation or a fully
    /// qualified `org.opencontainers.image.ref.name`).
    pub name: Option<String>,
}

/// Opens an image, importing its blobs into `cache`.
///
/// Every blob used — index, manifest, config, layers — is hashed and
/// compared with its digest (and size) before it is parsed or stored; an
/// uncompressed layer's digest must equal its `diff_id`. Archives are
/// imported once: a blob already in the cache (intact) is not copied again.
/// `Registry` sources give [`ImageError::NeedsRegistryPull`], `Dir` sources
/// [`ImageError::NotAnImage`].
pub fn open(
    source: &ImageSource,
    cache: &BlobCache,
    opts: &OpenOptions,
) -> Result<Image, ImageError> {
    match source {
        ImageSource::OciLayout { dir, tag } => {
            if !dir.is_dir() {
                return Err(ImageError::SourceNotFound { path: dir.clone() });
            }
            open_layout(&Layout::Dir(dir), tag.as_deref(), cache, opts)
        }
        ImageSource::OciArchive { file, tag } => {
            let index = TarIndex::open(file, cache)?;
            open_layout(&Layout::Archive(&index), tag.as_deref(), cache, opts)
        }
        ImageSource::DockerArchive { file } => {
            let index = TarIndex::open(file, cache)?;
            open_docker_archive(&index, cache, opts)
        }
        ImageSource::Dir { rootfs } => Err(ImageError::NotAnImage {
            rootfs: rootfs.clone(),
        }),
        ImageSource::Registry { reference } => Err(ImageError::NeedsRegistryPull {
            reference: reference.clone(),
        }),
    }
}

/// Where an OCI layout's files are.
enum Layout<'a> {
    Dir(&'a Path),
    Archive(&'a TarIndex),
}

impl Layout<'_> {
    fn location(&self, rel: &str) -> String {
        match self {
            Layout::Dir(dir) => dir.join(rel).display().to_string(),
            Layout::Archive(index) => index.location(rel),
        }
    }

    fn read_index_json(&self) -> Result<Vec<u8>, ImageError> {
        let rel = "index.json";
        match self {
            Layout::Dir(dir) => {
                let path = dir.join(rel);
                let file = open_regular(&path).map_err(|e| ImageError::io(&path, e))?;
                read_limited(file, MAX_MANIFEST_BYTES, &self.location(rel), "index.json")
            }
            Layout::Archive(index) => index
                .read_small(rel, MAX_MANIFEST_BYTES, "index.json")?
                .ok_or_else(|| {
                    ImageError::malformed(
                        index.path.display().to_string(),
                        "oci-archive",
                        "no index.json",
                    )
                }),
        }
    }

    /// Copies a blob into the cache (verifying it) unless an intact copy is there.
    fn import(&self, cache: &BlobCache, digest: &Digest, size: u64) -> Result<(), ImageError> {
        if cache.has_verified(digest, Some(size))? {
            return Ok(());
        }
        let rel = format!("blobs/sha256/{}", digest.hex());
        let location = self.location(&rel);
        let missing = || ImageError::BlobMissing {
            digest: digest.clone(),
            location: self.location(""),
        };
        match self {
            Layout::Dir(dir) => {
                let path = dir.join(&rel);
                let file = open_regular(&path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        missing()
                    } else {
                        ImageError::io(&path, e)
                    }
                })?;
                cache.put_from(
                    std::io::BufReader::with_capacity(1 << 20, file),
                    digest,
                    Some(size),
                    &location,
                )?;
            }
            Layout::Archive(index) => {
                let (reader, _) = index.open_member(&rel)?.ok_or_else(missing)?;
                cache.put_from(reader, digest, Some(size), &location)?;
            }
        }
        Ok(())
    }

    /// Imports a small JSON blob and returns its verified bytes.
    fn json_blob(
        &self,
        cache: &BlobCache,
        desc: &Descriptor,
        limit: u64,
        what: &'static str,
    ) -> Result<(Digest, Vec<u8>), ImageError> {
        let digest = descriptor_digest(desc, &self.location("index.json"))?;
        if desc.size() > limit {
            return Err(ImageError::TooLarge {
                location: self.location(&format!("blobs/sha256/{}", digest.hex())),
                what,
                size: desc.size(),
                limit,
            });
        }
        self.import(cache, &digest, desc.size())?;
        let bytes = cache.read_small(&digest, limit)?;
        Ok((digest, bytes))
    }
}

fn read_limited(
    reader: impl Read,
    limit: u64,
    location: &str,
    what: &'static str,
) -> Result<Vec<u8>, ImageError> {
    let mut buf = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ImageError::malformed(location, what, e))?;
    if buf.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            location: location.to_owned(),
            what,
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

fn descriptor_digest(desc: &Descriptor, location: &str) -> Result<Digest, ImageError> {
    let text = desc.digest().to_string();
    text.parse::<Digest>().map_err(|_| {
        ImageError::malformed(
            location,
            "descriptor",
            format!("unsupported digest {text:?} (only sha256)"),
        )
    })
}

fn media_type_str(m: &MediaType) -> String {
    m.to_string()
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn platform_str(d: &Descriptor) -> Option<String> {
    d.platform().as_ref().map(|p| {
        let mut s = format!("{}/{}", p.os(), p.architecture());
        if let Some(v) = p.variant() {
            s.push('/');
            s.push_str(v);
        }
        s
    })
}

fn choose<'d>(
    location: &str,
    descs: &'d [Descriptor],
    tag: Option<&str>,
    platform: Option<&Platform>,
) -> Result<&'d Descriptor, ImageError> {
    let tags = || {
        let t: Vec<&str> = descs.iter().filter_map(ref_name).collect();
        if t.is_empty() {
            "none".to_owned()
        } else {
            t.join(", ")
        }
    };
    let candidates: Vec<&Descriptor> = match tag {
        Some(tag) => {
            let c: Vec<_> = descs.iter().filter(|d| ref_name(d) == Some(tag)).collect();
            if c.is_empty() {
                return Err(ImageError::TagNotFound {
                    location: location.to_owned(),
                    tag: tag.to_owned(),
                    available: tags(),
                });
            }
            c
        }
        None => descs.iter().collect(),
    };
    match candidates.as_slice() {
        [] => {
            return Err(ImageError::malformed(
                location,
                "index",
                "it lists no manifests",
            ))
        }
        [one] => return Ok(one),
        _ => {}
    }
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let matching: Vec<&Descriptor> = candidates
        .iter()
        .copied()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                want.matches(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
            })
        })
        .collect();
    if let Some(first) = matching.first() {
        // Several matches (e.g. arm v6 and v7 for a host without variant): the index's order decides.
        return Ok(first);
    }
    let platforms: Vec<String> = candidates.iter().filter_map(|d| platform_str(d)).collect();
    if platforms.is_empty() {
        Err(ImageError::Ambiguous {
            location: location.to_owned(),
            count: candidates.len(),
            available: tags(),
        })
    } else {
        Err(ImageError::NoMatchingPlatform {
            location: location.to_owned(),
            platform: want.to_string(),
            available: platforms.join(", "),
        })
    }
}

fn name_from(d: &Descriptor) -> Option<String> {
    let ann = d.annotations().as_ref()?;
    if let Some(n) = ann.get(CONTAINERD_NAME) {
        return Some(n.clone());
    }
    ann.get(REF_NAME)
        .filter(|n| n.contains('/') || n.contains('@'))
        .cloned()
}

fn open_layout(
    layout: &Layout<'_>,
    tag: Option<&str>,
    cache: &BlobCache,
    opts: &OpenOptions,
) -> Result<Image, ImageError> {
    let index_location = layout.location("index.json");
    let index: ImageIndex = serde_json::from_slice(&layout.read_index_json()?)
        .map_err(|e| ImageError::malformed(&index_location, "index.json", e))?;
    let mut descs = index.manifests().clone();
    let mut location = index_location;
    let mut tag = tag;
    let mut name = None;
    for _ in 0..MAX_INDEX_DEPTH {
        let chosen = choose(&location, &descs, tag, opts.platform.as_ref())?.clone();
        name = name.or_else(|| name_from(&chosen));
        let media = media_type_str(chosen.media_type());
        match chosen.media_type() {
            MediaType::ImageIndex => {}
            MediaType::ImageManifest => return open_manifest(layout, cache, &chosen, name, opts),
            MediaType::Other(m) if m == DOCKER_MANIFEST_LIST => {}
            MediaType::Other(m) if m == DOCKER_MANIFEST => {
                return open_manifest(layout, cache, &chosen, name, opts)
            }
            _ => {
                return Err(ImageError::UnsupportedMediaType {
                    location,
                    media_type: media,
                })
            }
        }
        let (digest, bytes) =
            layout.json_blob(cache, &chosen, MAX_MANIFEST_BYTES, "an image index")?;
        location = format!("index {digest}");
        let nested: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::malformed(&location, "image index", e))?;
        descs = nested.manifests().clone();
        tag = None;
    }
    Err(ImageError::malformed(
        location,
        "image index",
        format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
    ))
}

fn is_layer_media_type(m: &MediaType) -> bool {
    match m {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => [
            DOCKER_LAYER_TAR,
            DOCKER_LAYER_GZIP,
            DOCKER_LAYER_FOREIGN,
            OCI_LAYER_ZSTD,
        ]
        .contains(&s.as_str()),
        _ => false,
    }
}

fn open_manifest(
    layout: &Layout<'_>,
    cache: &BlobCache,
    desc: &Descriptor,
    name: Option<String>,
    opts: &OpenOptions,
) -> Result<Image, ImageError> {
    let (manifest_digest, bytes) =
        layout.json_blob(cache, desc, MAX_MANIFEST_BYTES, "an image manifest")?;
    let location = format!("manifest {manifest_digest}");
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::malformed(&location, "image manifest", e))?;
    let config_desc = manifest.config();
    match config_desc.media_type() {
        MediaType::ImageConfig => {}
        MediaType::Other(m) if m == DOCKER_CONFIG => {}
        other => {
            return Err(ImageError::UnsupportedMediaType {
                location,
                media_type: media_type_str(other),
            })
        }
    }
    let (config_digest, config_bytes) =
        layout.json_blob(cache, config_desc, MAX_CONFIG_BYTES, "an image config")?;
    let (config, diff_ids) = parse_config(&config_bytes, &format!("config {config_digest}"))?;
    check_platform(&config, opts, &location)?;
    if !diff_ids.is_empty() && diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::malformed(
            format!("config {config_digest}"),
            "image config",
            format!(
                "{} diff_ids for {} layers in manifest {manifest_digest}",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for (i, ld) in manifest.layers().iter().enumerate() {
        if !is_layer_media_type(ld.media_type()) {
            return Err(ImageError::UnsupportedMediaType {
                location: location.clone(),
                media_type: media_type_str(ld.media_type()),
            });
        }
        let digest = descriptor_digest(ld, &location)?;
        layout.import(cache, &digest, ld.size())?;
        let diff_id = diff_ids.get(i).cloned();
        let media_type = media_type_str(ld.media_type());
        if let Some(diff_id) = &diff_id {
            let uncompressed = matches!(
                ld.media_type(),
                MediaType::ImageLayer | MediaType::ImageLayerNonDistributable
            ) || media_type == DOCKER_LAYER_TAR;
            if uncompressed && diff_id != &digest {
                return Err(ImageError::DiffIdMismatch {
                    layer: digest.clone(),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
        }
        layers.push(Layer {
            digest,
            diff_id,
            media_type,
            size: ld.size(),
        });
    }
    Ok(Image {
        manifest_digest: Some(manifest_digest),
        config_digest,
        config,
        layers,
        name,
    })
}

fn check_platform(
    config: &ImageConfig,
    opts: &OpenOptions,
    location: &str,
) -> Result<(), ImageError> {
    if let Some(want) = &opts.platform {
        if !want.matches(&config.os, &config.architecture, config.variant.as_deref()) {
            let mut have = format!("{}/{}", config.os, config.architecture);
            if let Some(v) = &config.variant {
                have = format!("{have}/{v}");
            }
            return Err(ImageError::NoMatchingPlatform {
                location: location.to_owned(),
                platform: want.to_string(),
                available: have,
            });
        }
    }
    Ok(())
}

fn parse_config(bytes: &[u8], location: &str) -> Result<(ImageConfig, Vec<Digest>), ImageError> {
    let c: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::malformed(location, "image config", e))?;
    let mut out = ImageConfig {
        architecture: c.architecture().to_string(),
        os: c.os().to_string(),
        variant: c.variant().clone(),
        ..ImageConfig::default()
    };
    if let Some(cfg) = c.config() {
        out.entrypoint = cfg.entrypoint().clone();
        out.cmd = cfg.cmd().clone();
        out.env = cfg.env().clone().unwrap_or_default();
        out.working_dir = cfg.working_dir().clone().filter(|w| !w.is_empty());
        out.user = cfg.user().clone().filter(|u| !u.is_empty());
        let mut ports = cfg.exposed_ports().clone().unwrap_or_default();
        ports.sort();
        out.exposed_ports = ports;
        out.labels = cfg
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
    }
    let diff_ids = c
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            d.parse::<Digest>().map_err(|e| {
                ImageError::malformed(location, "image config", format!("rootfs.diff_ids: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, diff_ids))
}

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The digest a member name promises (`<hex>`, `<hex>.json`, `<hex>.tar`,
/// `blobs/sha256/<hex>`), if it looks like one.
fn digest_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next()?;
    let stem = base
        .strip_suffix(".json")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    format!("sha256:{stem}").parse().ok().filter(|_| {
        stem.len() == 64
            && stem
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

fn open_docker_archive(
    index: &TarIndex,
    cache: &BlobCache,
    opts: &OpenOptions,
) -> Result<Image, ImageError> {
    let mlocation = index.location("manifest.json");
    let bytes = index
        .read_small("manifest.json", MAX_DOCKER_MANIFEST_BYTES, "manifest.json")?
        .ok_or_else(|| {
            ImageError::malformed(
                index.path.display().to_string(),
                "docker-archive",
                "no manifest.json",
            )
        })?;
    let manifests: Vec<DockerArchiveManifest> = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::malformed(&mlocation, "manifest.json", e))?;
    let m = match manifests.as_slice() {
        [one] => one,
        [] => {
            return Err(ImageError::malformed(
                &mlocation,
                "manifest.json",
                "it lists no images",
            ))
        }
        several => {
            let names: Vec<String> = several
                .iter()
                .flat_map(|m| m.repo_tags.clone().unwrap_or_default())
                .collect();
            return Err(ImageError::Ambiguous {
                location: mlocation,
                count: several.len(),
                available: names.join(", "),
            });
        }
    };
    // The config: its digest is computed (and must match its name when the name is a digest).
    let config_bytes = index
        .read_small(&m.config, MAX_CONFIG_BYTES, "an image config")?
        .ok_or_else(|| {
            ImageError::malformed(
                &mlocation,
                "manifest.json",
                format!("config {} is not in the archive", m.config),
            )
        })?;
    let config_digest = digest_of(&config_bytes);
    if let Some(named) = digest_in_name(&m.config) {
        if named != config_digest {
            return Err(ImageError::DigestMismatch {
                location: index.location(&m.config),
                expected: named,
                actual: config_digest,
            });
        }
    }
    cache.put_from(
        &config_bytes[..],
        &config_digest,
        Some(config_bytes.len() as u64),
        &index.location(&m.config),
    )?;
    let clocation = format!("config {config_digest}");
    let (config, diff_ids) = parse_config(&config_bytes, &clocation)?;
    check_platform(&config, opts, &mlocation)?;
    if !diff_ids.is_empty() && diff_ids.len() != m.layers.len() {
        return Err(ImageError::malformed(
            clocation,
            "image config",
            format!(
                "{} diff_ids for {} layers in manifest.json",
                diff_ids.len(),
                m.layers.len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for (i, member) in m.layers.iter().enumerate() {
        let location = index.location(member);
        let not_there = || {
            ImageError::malformed(
                &mlocation,
                "manifest.json",
                format!("layer {member} is not in the archive"),
            )
        };
        // Pass 1: hash in place, so a layer already cached is not copied again.
        let (reader, _) = index.open_member(member)?.ok_or_else(not_there)?;
        let (digest, size) = hash_reader(reader, &index.path)?;
        let magic = sniff_member(index, member)?;
        if !cache.has_verified(&digest, Some(size))? {
            let (reader, _) = index.open_member(member)?.ok_or_else(not_there)?;
            cache.put_from(reader, &digest, Some(size), &location)?;
        }
        let media_type = match magic {
            crate::unpack::Compression::Gzip => DOCKER_LAYER_GZIP,
            crate::unpack::Compression::Zstd => OCI_LAYER_ZSTD,
            crate::unpack::Compression::None => DOCKER_LAYER_TAR,
        };
        let diff_id = diff_ids.get(i).cloned();
        if let Some(diff_id) = &diff_id {
            if media_type == DOCKER_LAYER_TAR && diff_id != &digest {
                return Err(ImageError::DiffIdMismatch {
                    layer: digest.clone(),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
        }
        layers.push(Layer {
            digest,
            diff_id,
            media_type: media_type.to_owned(),
            size,
        });
    }
    let name = m.repo_tags.as_ref().and_then(|t| t.first()).cloned();
    Ok(Image {
        manifest_digest: None,
        config_digest,
        config,
        layers,
        name,
    })
}

fn sniff_member(index: &TarIndex, member: &str) -> Result<crate::unpack::Compression, ImageError> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    if let Some((mut r, _)) = index.open_member(member)? {
        while n < magic.len() {
            match r.read(&mut magic[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    return Err(ImageError::Archive {
                        path: index.path.clone(),
                        cause: e,
                    })
                }
            }
        }
    }
    Ok(crate::unpack::Compression::sniff(&magic[..n]))
}
