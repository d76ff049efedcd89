//! Turning an image reference into a root filesystem, a run config and a
//! product: registry pulls land in the blob cache (an OCI layout), archives
//! are imported into it, and the unpacked rootfs is cached by config digest.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Condvar, Mutex},
};

use anyhow::{Context, Result};
use vexxy_image::{BlobCache, ImageSource};
use vexxy_model::Product;

use super::config::RunConfig;
use crate::{cli::ImageArgs, exit::BadInput, progress::Phase};

/// Where an unpacked rootfs goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Kept in the cache by config digest and reused by later runs (the
    /// analysis commands, which look at the same image again and again).
    Cached,
    /// A scratch directory removed when done, on tmpfs when it has room
    /// (one-shot commands such as `vexxy sbom`: creating thousands of files
    /// on a disk filesystem costs more than everything else together).
    Scratch,
}

/// An image ready for analysis.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The unpacked root filesystem (cached, scratch, or the user's `dir:`).
    pub(crate) rootfs: PathBuf,
    pub(crate) product: Product,
    pub(crate) run: RunConfig,
    /// Removes a scratch rootfs when dropped.
    _scratch: Option<tempfile::TempDir>,
}

pub(crate) fn resolve(
    reference: &str,
    args: &ImageArgs,
    placement: Placement,
    quiet: bool,
) -> Result<Resolved> {
    let source: ImageSource = reference
        .parse()
        .map_err(|e| BadInput(format!("image reference {reference:?}: {e}")))?;
    if let ImageSource::Dir { rootfs } = &source {
        let name = rootfs
            .file_name()
            .map_or_else(|| "rootfs".to_owned(), |n| n.to_string_lossy().into_owned());
        return Ok(Resolved {
            rootfs: rootfs.clone(),
            product: Product {
                name,
                tag: None,
                digest: None,
            },
            run: RunConfig::default(),
            _scratch: None,
        });
    }
    let cache = BlobCache::open_default().context("opening the blob cache")?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| BadInput(format!("--platform: {e}")))?;
    let opts = vexxy_image::OpenOptions { platform };
    let (image, pulled_name) = match &source {
        ImageSource::Registry { reference } => {
            let phase = Phase::start("pulling image", quiet);
            let pull = vexxy_registry::PullOptions {
                platform: args.platform.clone(),
                insecure_registries: args.insecure_registry.clone(),
                credentials: credentials(args)?,
            };
            let pulled = vexxy_registry::pull_blocking(reference, &pull, cache.root())
                .with_context(|| format!("pulling {reference}"))?;
            for w in &pulled.warnings {
                tracing::warn!("{w}");
            }
            phase.finish(&format!(
                "{} bytes fetched, {} blobs reused",
                pulled.fetched_bytes, pulled.reused_blobs
            ));
            let layout = ImageSource::OciLayout {
                dir: cache.root().to_path_buf(),
                tag: Some(pulled.reference.clone()),
            };
            let image = vexxy_image::open(&layout, &cache, &opts)
                .with_context(|| format!("opening pulled {reference}"))?;
            (
                image,
                Some(reference.trim_start_matches("docker://").to_owned()),
            )
        }
        other => {
            let phase = Phase::start("reading image", quiet);
            let image = vexxy_image::open(other, &cache, &opts)
                .with_context(|| format!("opening {reference}"))?;
            phase.finish("");
            (image, None)
        }
    };

    let unpacked_size: u64 = image
        .layers
        .iter()
        .map(|l| l.size)
        .sum::<u64>()
        .saturating_mul(4);
    let mut limits = vexxy_image::Limits::default();
    let (rootfs, scratch) = match placement {
        Placement::Cached => (
            rootfs_dir(cache.root(), &image.config_digest.to_string())?,
            None,
        ),
        Placement::Scratch => {
            let base = match scratch_base(unpacked_size) {
                Some((dir, free)) => {
                    // Memory-backed: a decompression bomb must not eat the machine's RAM.
                    limits.max_total_bytes = limits.max_total_bytes.min(free / 2);
                    dir
                }
                None => cache.root().parent().unwrap_or(cache.root()).to_path_buf(),
            };
            let dir = tempfile::Builder::new()
                .prefix("vexxy-rootfs-")
                .tempdir_in(&base)
                .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
            (dir.path().join("rootfs"), Some(dir))
        }
    };
    // another thread of this process (the service runs analyses side by
    // side) may be unpacking the same image: wait for it, then look again
    let _claim = (!rootfs.join(".vexxy-complete").exists()).then(|| Unpacking::claim(&rootfs));
    if !rootfs.join(".vexxy-complete").exists() {
        let phase = Phase::start("unpacking layers", quiet);
        let tmp = rootfs.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let report = vexxy_image::unpack(&image, &cache, &tmp, &limits);
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e).with_context(|| format!("unpacking {reference}"));
            }
        };
        std::fs::write(tmp.join(".vexxy-complete"), b"")
            .with_context(|| format!("writing {}", tmp.display()))?;
        let _ = std::fs::remove_dir_all(&rootfs);
        std::fs::rename(&tmp, &rootfs)
            .with_context(|| format!("moving {} into place", rootfs.display()))?;
        phase.finish(&format!(
            "{} layers, {} files, {} bytes, {} skipped devices",
            report.layers, report.files, report.bytes_written, report.skipped_devices
        ));
    }

    let name = pulled_name
        .or_else(|| image.name.clone())
        .unwrap_or_else(|| reference.to_owned());
    let mut product = Product::parse(&name).unwrap_or(Product {
        name,
        tag: None,
        digest: None,
    });
    if product.digest.is_none() {
        product.digest.clone_from(&image.manifest_digest);
    }
    Ok(Resolved {
        rootfs,
        product,
        run: RunConfig::from_image(&image.config),
        _scratch: scratch,
    })
}

/// Rootfs directories a thread of this process is unpacking into.
static UNPACKING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
/// Signalled whenever an entry leaves [`UNPACKING`].
static UNPACKED: Condvar = Condvar::new();

/// The right to unpack into one rootfs directory, released on drop.
#[derive(Debug)]
struct Unpacking(PathBuf);

impl Unpacking {
    fn claim(rootfs: &Path) -> Self {
        let mut busy = UNPACKING.lock().unwrap_or_else(|e| e.into_inner());
        while busy.contains(rootfs) {
            busy = UNPACKED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.insert(rootfs.to_path_buf());
        Self(rootfs.to_path_buf())
    }
}

impl Drop for Unpacking {
    fn drop(&mut self) {
        let mut busy = UNPACKING.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(&self.0);
        UNPACKED.notify_all();
    }
}

/// `VEXXY_SCRATCH_DIR`, else `/dev/shm` when it has room for `needed`
/// bytes and some to spare; with the free bytes there.
fn scratch_base(needed: u64) -> Option<(PathBuf, u64)> {
    let dir = std::env::var_os("VEXXY_SCRATCH_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from);
    let st = rustix::fs::statvfs(&dir).ok()?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    (free > needed.saturating_mul(2)).then_some((dir, free))
}

/// `<cache>/rootfs/<config hex>` beside the blob cache.
fn rootfs_dir(blobs: &Path, config_digest: &str) -> Result<PathBuf> {
    let base = blobs.parent().unwrap_or(blobs).join("rootfs");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let hex = config_digest.trim_start_matches("sha256:");
    Ok(base.join(hex))
}

fn credentials(args: &ImageArgs) -> Result<vexxy_registry::Credentials> {
    Ok(match &args.creds {
        Some(c) => {
            let (user, pass) = c
                .split_once(':')
                .ok_or_else(|| BadInput("--creds: expected USER:PASSWORD".into()))?;
            vexxy_registry::Credentials::Basic {
                user: user.to_owned(),
                pass: pass.to_owned(),
            }
        }
        None => vexxy_registry::Credentials::FromDockerConfig,
    })
}
