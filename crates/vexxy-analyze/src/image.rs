//! Turning an [`ImageRequest`] into a root filesystem, a run config and a
//! product: registry pulls land in the blob cache (an OCI layout), archives
//! are imported into it, and the unpacked rootfs is either leased from the
//! shared rootfs cache or unpacked into a scratch directory of its own.

use std::path::{Path, PathBuf};

use vexxy_image::{ImageSource, RootfsLease};
use vexxy_model::{Digest, Product};

use crate::{
    context::Timings, AnalyzeError, Context, ImageRequest, Phase, ResultExt as _, RunConfig,
};

/// Where an unpacked rootfs goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Leased from the shared rootfs cache (the analysis commands, which
    /// look at the same image again and again).
    Cached,
    /// A scratch directory removed when done, on tmpfs when it has room
    /// (one-shot work such as an SBOM: creating thousands of files on a
    /// disk filesystem costs more than everything else together).
    Scratch,
}

/// What keeps the rootfs directory alive while it is used.
#[derive(Debug)]
enum Holder {
    /// The caller's own directory (`dir:`).
    Caller,
    /// A cache entry: nobody evicts it while the lease lives.
    Lease { _lease: RootfsLease },
    /// Removed when dropped.
    Scratch { _dir: crate::scratch::ScratchDir },
}

/// An image ready for analysis. The rootfs stays until this is dropped.
#[derive(Debug)]
pub struct Resolved {
    rootfs: PathBuf,
    /// The image: name, tag, digest.
    pub product: Product,
    /// Whether the product's name is the image's repository (the caller's
    /// `name`, the registry reference, or a name the image carries) rather
    /// than a stand-in made from the reference.
    pub named: bool,
    /// The digest of the multi-platform index the image was picked from.
    pub index_digest: Option<Digest>,
    /// The digest of the image's config blob (its image ID).
    pub config_digest: Option<Digest>,
    /// Its run config (empty for a `dir:` rootfs).
    pub run: RunConfig,
    _holder: Holder,
}

impl Resolved {
    /// The unpacked root filesystem.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The product, refused without a digest (VEX about an image needs
    /// it) or without a repository name (scanners match the product by
    /// the repository's last path segment).
    pub fn pinned(&self) -> Result<Product, AnalyzeError> {
        let product = self.named_product()?;
        if product.digest.is_none() {
            return Err(AnalyzeError::bad_input(format!(
                "no digest known for {}: VEX about an image needs its digest; analyze an OCI layout, archive or registry image",
                self.product.name
            )));
        }
        Ok(self.product.clone())
    }

    /// The product, refused without a repository name.
    pub fn named_product(&self) -> Result<Product, AnalyzeError> {
        if !self.named {
            return Err(AnalyzeError::bad_input(format!(
                "{} carries no repository name, and the VEX product must name the image as scanners see it: \
                 pass --name REPOSITORY (the repository it is pushed to and scanned from, e.g. registry.example/team/app)",
                self.product.name
            )));
        }
        Ok(self.product.clone())
    }

    /// The digests a report may name this image by.
    pub fn identity(&self) -> crate::ImageIdentity {
        crate::ImageIdentity {
            manifest: self.product.digest.clone(),
            index: self.index_digest.clone(),
            config: self.config_digest.clone(),
        }
    }

    /// Refuses an image that resolved to another digest than `expected`.
    pub fn check_digest(&self, reference: &str, expected: &Digest) -> Result<(), AnalyzeError> {
        match &self.product.digest {
            Some(got) if got == expected => Ok(()),
            got => Err(AnalyzeError::bad_input(format!(
                "image {reference} resolved to {}, not the expected {expected}",
                got.as_ref()
                    .map_or_else(|| "no digest".to_owned(), ToString::to_string)
            ))),
        }
    }
}

/// Fetches, imports and unpacks the image.
pub fn resolve(
    request: &ImageRequest,
    placement: Placement,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> Result<Resolved, AnalyzeError> {
    let reference = request.reference.as_str();
    if let Some(name) = &request.name {
        vexxy_model::check_repository(name)
            .map_err(|e| AnalyzeError::bad_input(format!("--name: {e}")))?;
    }
    if let ImageSource::Dir { rootfs } = &request.source {
        let name = request.name.clone().unwrap_or_else(|| {
            rootfs
                .file_name()
                .map_or_else(|| "rootfs".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        return Ok(Resolved {
            rootfs: rootfs.clone(),
            product: Product {
                name,
                tag: None,
                digest: None,
            },
            named: request.name.is_some(),
            index_digest: None,
            config_digest: None,
            run: RunConfig::default(),
            _holder: Holder::Caller,
        });
    }
    let cache = ctx.caches().blobs().doing("opening the blob cache")?;
    let opts = vexxy_image::OpenOptions {
        platform: request.platform.clone(),
    };
    let (image, pulled_name, index_digest) = match &request.source {
        ImageSource::Registry { reference: name } => {
            let step = ctx.start(Phase::PullingImage);
            let pull = vexxy_registry::PullOptions {
                platform: request.platform.as_ref().map(ToString::to_string),
                insecure_registries: request.insecure_registries.clone(),
                credentials: request.credentials.clone(),
                timeout: request.registry_timeout,
                egress: request.egress.clone(),
            };
            let pulled = vexxy_registry::pull_blocking(name, &pull, cache.root())
                .doing_with(|| format!("pulling {reference}"))?;
            for w in &pulled.warnings {
                tracing::warn!("{w}");
            }
            timings.finish(
                ctx,
                step,
                format!(
                    "{} bytes fetched, {} blobs reused",
                    pulled.fetched_bytes, pulled.reused_blobs
                ),
            );
            let layout = ImageSource::OciLayout {
                dir: cache.root().to_path_buf(),
                tag: Some(pulled.reference.clone()),
            };
            let image = vexxy_image::open(&layout, &cache, &opts)
                .doing_with(|| format!("opening pulled {reference}"))?;
            (
                image,
                Some(name.trim_start_matches("docker://").to_owned()),
                pulled.index_digest,
            )
        }
        other => {
            let step = ctx.start(Phase::ReadingImage);
            let image = vexxy_image::open(other, &cache, &opts)
                .doing_with(|| format!("opening {reference}"))?;
            timings.finish(ctx, step, "");
            (image, None, None)
        }
    };
    ctx.check_cancelled()?;

    let unpack = |dir: &Path,
                  limits: &vexxy_image::Limits,
                  timings: &mut Timings|
     -> Result<vexxy_image::UnpackReport, vexxy_image::ImageError> {
        let step = ctx.start(Phase::UnpackingLayers);
        let r = vexxy_image::unpack(&image, &cache, dir, limits)?;
        timings.finish(
            ctx,
            step,
            format!(
                "{} layers, {} files, {} bytes, {} skipped devices",
                r.layers, r.files, r.bytes_written, r.skipped_devices
            ),
        );
        Ok(r)
    };
    let (rootfs, holder) = match placement {
        Placement::Cached => {
            let rootfs_cache = ctx.caches().rootfs()?;
            let key = image.config_digest.hex().to_owned();
            let (lease, _report) = rootfs_cache
                .acquire(&key, |dir| {
                    unpack(dir, &vexxy_image::Limits::default(), timings)
                })
                .doing_with(|| format!("unpacking {reference}"))?;
            (lease.path().to_path_buf(), Holder::Lease { _lease: lease })
        }
        Placement::Scratch => {
            let unpacked_size: u64 = image
                .layers
                .iter()
                .map(|l| l.size)
                .sum::<u64>()
                .saturating_mul(4);
            let mut limits = vexxy_image::Limits::default();
            let base = match scratch_base(ctx.caches().scratch.as_deref(), unpacked_size) {
                Some((dir, free)) => {
                    // memory-backed: a decompression bomb must not eat the machine's RAM
                    limits.max_total_bytes = limits.max_total_bytes.min(free / 2);
                    dir
                }
                None => ctx.caches().root().to_path_buf(),
            };
            std::fs::create_dir_all(&base)
                .map_err(|e| AnalyzeError::io(format!("creating {}", base.display()), &e))?;
            let dir = crate::scratch::ScratchDir::new_in(&base, crate::scratch::ROOTFS_PREFIX)
                .map_err(|e| {
                    AnalyzeError::io(
                        format!("creating a scratch directory in {}", base.display()),
                        &e,
                    )
                })?;
            let rootfs = dir.path().join("rootfs");
            std::fs::create_dir(&rootfs)
                .map_err(|e| AnalyzeError::io(format!("creating {}", rootfs.display()), &e))?;
            unpack(&rootfs, &limits, timings).doing_with(|| format!("unpacking {reference}"))?;
            (rootfs, Holder::Scratch { _dir: dir })
        }
    };

    // the caller's name first: a registry image may be scanned under
    // another name (a mirror) than it was pulled by
    let known = request
        .name
        .clone()
        .or(pulled_name)
        .or_else(|| image.name.clone());
    let named = known.is_some();
    let name = known.unwrap_or_else(|| reference.to_owned());
    let mut product = product_named(name, image.manifest_digest.as_ref());
    if request.name.is_some() {
        // the image's own digest, never one a pulled reference pinned
        product.digest.clone_from(&image.manifest_digest);
    }
    Ok(Resolved {
        rootfs,
        named,
        index_digest,
        config_digest: Some(image.config_digest.clone()),
        product,
        run: RunConfig::from_image(&image.config),
        _holder: holder,
    })
}

/// The product a name stands for (`name[:tag][@digest]`), with `digest`
/// when the name carries none.
pub(crate) fn product_named(name: String, digest: Option<&Digest>) -> Product {
    let mut product = Product::parse(&name).unwrap_or(Product {
        name,
        tag: None,
        digest: None,
    });
    if product.digest.is_none() {
        product.digest = digest.cloned();
    }
    product
}

/// The caller's scratch directory, else `/dev/shm`, when it has room for
/// `needed` bytes and some to spare; with the free bytes there.
fn scratch_base(configured: Option<&Path>, needed: u64) -> Option<(PathBuf, u64)> {
    let dir = configured.map_or_else(|| PathBuf::from("/dev/shm"), Path::to_path_buf);
    let st = rustix::fs::statvfs(&dir).ok()?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    (free > needed.saturating_mul(2)).then_some((dir, free))
}
