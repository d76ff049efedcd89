//! Kubescape's runtime objects as evidence: `ApplicationProfile` and
//! `ContainerProfile` (programs executed and files opened per container),
//! `SBOMSyftFiltered` (the packages those files belong to) and
//! `OpenVulnerabilityExchangeContainer` (Kubescape's own OpenVEX), all of
//! API group `spdx.softwarecomposition.kubescape.io/v1beta1`, read as
//! `kubectl get -o yaml` or `-o json` prints them: one object or a `List`.
//!
//! [`parse`] turns a file into [`Object`]s (raw serde types convert with
//! `TryFrom`; every error names the file and the field path, e.g.
//! `profile.yaml: spec.containers[0].opens[2].path: invalid type: integer,
//! expected a string`; never the values found in the file); [`import`] turns objects into one
//! [`ExecutionProfile`] per image (source [`ProfileSource::Kubescape`]),
//! the statements to respect as existing ones (`affected`,
//! `under_investigation`, `fixed`) and the `not_affected` claims, which
//! never decide a finding: vexxy decides it from its own evidence and
//! records the claim.
//!
//! Kubescape records exec and open events only: no mappings, no function
//! calls. A shared object the dynamic loader opened is therefore an opened
//! file here, never a loaded library: nothing is invented.

mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;
use vexxy_model::{
    Confidence, Decider, Evidence, EvidenceSource, EvidenceSpan, ExecutedBinary, ExecutionProfile,
    FileAccess, Package, ProfileSource, RunInfo, Status, VexStatement,
};

/// The API group and version of every object read.
pub const API_VERSION: &str = "spdx.softwarecomposition.kubescape.io/v1beta1";

/// Largest file read: the limit of every other input (reports, SBOMs).
pub const MAX_BYTES: u64 = vexxy_ingest::Limits::DEFAULT_MAX_BYTES;

/// The confidence of a statement read from Kubescape's own OpenVEX: it is
/// unsigned, file-level and made by a third party, so it sits below the
/// default review threshold (0.6) and a person confirms it.
pub const STATEMENT_CONFIDENCE: f64 = 0.5;

/// The provider named by the evidence of Kubescape's statements.
pub const KUBESCAPE: &str = "kubescape";

/// Annotation and label keys Kubescape writes (`kubescape.io/…`).
pub mod keys {
    /// The container instance: `apiVersion-…/namespace-…/kind-…/name-…/containerName-…`.
    pub const INSTANCE_ID: &str = "kubescape.io/instance-id";
    /// The workload id (`wlid://cluster-…/namespace-…/deployment-…`).
    pub const WLID: &str = "kubescape.io/wlid";
    /// `complete`, or `partial` when the container started before the node agent.
    pub const COMPLETION: &str = "kubescape.io/completion";
    /// `initializing`, `ready` (learning), `completed`, …
    pub const STATUS: &str = "kubescape.io/status";
    /// The container's image id (`repo@sha256:…`).
    pub const IMAGE_ID: &str = "kubescape.io/image-id";
    /// The container's image tag.
    pub const IMAGE_TAG: &str = "kubescape.io/image-tag";
    /// The container's name.
    pub const CONTAINER_NAME: &str = "kubescape.io/workload-container-name";
    /// The learning period, as a Go duration (`10m`, `24h`).
    pub const LEARNING_PERIOD: &str = "kubescape.io/learning-period";
}

/// Why a file could not be read as Kubescape objects.
#[derive(Debug, thiserror::Error)]
pub enum KubescapeError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`] (or the caller's limit).
    #[error("{}: {size} bytes is more than the limit of {limit}", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size, or how much was read before stopping.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Neither YAML nor JSON.
    #[error("{}: not valid yaml or json: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's complaint (with line and column).
        message: String,
    },
    /// A field is missing, of the wrong type or value.
    #[error("{}: {field}: {message}", file.display())]
    Field {
        /// The file.
        file: PathBuf,
        /// The field path, e.g. `items[1].spec.containers[0].opens[2].path`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// `spec.syft` of an `SBOMSyftFiltered` is not a Syft document vexxy reads.
    #[error(transparent)]
    Syft(#[from] vexxy_ingest::IngestError),
    /// `spec` of an `OpenVulnerabilityExchangeContainer` is not OpenVEX vexxy reads.
    #[error(transparent)]
    Vex(#[from] vexxy_vex::VexError),
}

impl KubescapeError {
    /// The field path the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A problem at a field path, before the file is known.
#[derive(Debug)]
struct FieldError {
    field: String,
    message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    fn in_file(self, file: &Path) -> KubescapeError {
        KubescapeError::Field {
            file: file.to_path_buf(),
            field: if self.field.is_empty() {
                "(document root)".to_owned()
            } else {
                self.field
            },
            message: self.message,
        }
    }
}

/// `prefix.field`, or either alone when the other is empty.
fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if field.starts_with('[') => format!("{prefix}{field}"),
        _ => format!("{prefix}.{field}"),
    }
}

/// Which of the four kinds an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Every container of a workload.
    ApplicationProfile,
    /// One container.
    ContainerProfile,
    /// The packages of the files a container used.
    SbomSyftFiltered,
    /// Kubescape's OpenVEX for a container's image.
    OpenVulnerabilityExchangeContainer,
}

impl Kind {
    /// The name as `kind:` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApplicationProfile => "ApplicationProfile",
            Self::ContainerProfile => "ContainerProfile",
            Self::SbomSyftFiltered => "SBOMSyftFiltered",
            Self::OpenVulnerabilityExchangeContainer => "OpenVulnerabilityExchangeContainer",
        }
    }

    const ALL: [Self; 4] = [
        Self::ApplicationProfile,
        Self::ContainerProfile,
        Self::SbomSyftFiltered,
        Self::OpenVulnerabilityExchangeContainer,
    ];

    fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every object says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Its kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` (RFC 3339).
    pub created: Option<String>,
    /// Where it was read: the file, and `items[i]` in a list.
    pub origin: String,
}

impl Meta {
    fn of(kind: Kind, raw: raw::RawMeta, origin: String) -> Self {
        Self {
            kind,
            name: raw.name,
            namespace: raw.namespace.filter(|n| !n.is_empty()),
            annotations: raw.annotations,
            labels: raw.labels,
            created: raw.creation_timestamp.filter(|t| !t.is_empty()),
            origin,
        }
    }

    /// An annotation, else a label, of that key (non-empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .or_else(|| self.labels.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `Kind namespace/name`.
    pub fn title(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Where a container sits in its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// `spec.containers`.
    Container,
    /// `spec.initContainers`.
    InitContainer,
    /// `spec.ephemeralContainers`.
    EphemeralContainer,
}

/// One program start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The executed file.
    pub path: String,
    /// Its argv as recorded (possibly with Kubescape's `⋯` placeholders).
    pub args: Vec<String>,
}

/// One opened path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The path, possibly collapsed by Kubescape (`⋯` for one segment, `*`
    /// for any number).
    pub path: String,
    /// The open flags (`O_RDONLY`, `O_CLOEXEC`, …).
    pub flags: Vec<String>,
}

/// What one container did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// Where it sits in the pod.
    pub kind: ContainerKind,
    /// Its name (empty when the object does not say).
    pub name: String,
    /// `imageID` (`repo@sha256:…`), when given.
    pub image_id: Option<String>,
    /// `imageTag`, when given.
    pub image_tag: Option<String>,
    /// Programs started.
    pub execs: Vec<Exec>,
    /// Paths opened.
    pub opens: Vec<Open>,
}

impl Container {
    /// The image's manifest digest, when `imageID` names one.
    pub fn image_digest(&self) -> Option<String> {
        self.image_id.as_deref().and_then(manifest_digest)
    }
}

/// An `ApplicationProfile` or `ContainerProfile`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadProfile {
    /// The object.
    pub meta: Meta,
    /// Its containers (a `ContainerProfile` has one).
    pub containers: Vec<Container>,
}

/// An `SBOMSyftFiltered`: the packages owning the files the container used.
#[derive(Clone, Debug, PartialEq)]
pub struct FilteredSbom {
    /// The object.
    pub meta: Meta,
    /// `spec.syft.files[].location.path`: the files the container executed
    /// or opened that a package owns.
    pub files: Vec<String>,
    /// The packages (`spec.syft.artifacts`).
    pub packages: Vec<Package>,
    /// The image's manifest digest, from `kubescape.io/image-id`.
    pub image_digest: Option<String>,
}

/// An `OpenVulnerabilityExchangeContainer`: Kubescape's statements.
#[derive(Clone, Debug, PartialEq)]
pub struct VexContainer {
    /// The object.
    pub meta: Meta,
    /// The statements, with [`STATEMENT_CONFIDENCE`].
    pub statements: Vec<VexStatement>,
}

/// One object read.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// An `ApplicationProfile` or `ContainerProfile`.
    Profile(WorkloadProfile),
    /// An `SBOMSyftFiltered`.
    Sbom(FilteredSbom),
    /// An `OpenVulnerabilityExchangeContainer`.
    Vex(VexContainer),
}

impl Object {
    /// The object's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Self::Profile(p) => &p.meta,
            Self::Sbom(s) => &s.meta,
            Self::Vex(v) => &v.meta,
        }
    }
}

/// `sha256:<hex>` when `image_id` is `[scheme://]repo@sha256:<64 hex>`
/// (a manifest or index digest); `None` for a bare `sha256:…` (a runtime's
/// image id, which is a config digest) or a tag.
pub fn manifest_digest(image_id: &str) -> Option<String> {
    let (_, hex) = image_id.rsplit_once("@sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// Reads `file` (at most [`MAX_BYTES`]) and parses it with [`parse`].
pub fn read(file: &Path) -> Result<Vec<Object>, KubescapeError> {
    let io = |source| KubescapeError::Io {
        file: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let declared = f.metadata().map_err(io)?.len();
    let too_large = |size| KubescapeError::TooLarge {
        file: file.to_path_buf(),
        size,
        limit: MAX_BYTES,
    };
    if declared > MAX_BYTES {
        return Err(too_large(declared));
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if got > MAX_BYTES {
        return Err(too_large(got));
    }
    parse(&bytes, file)
}

/// Parses one YAML or JSON document: a Kubescape object or a list of them
/// (`kind: List`, or `ApplicationProfileList` and the like). `file` names
/// it in errors.
pub fn parse(bytes: &[u8], file: &Path) -> Result<Vec<Object>, KubescapeError> {
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_BYTES {
        return Err(KubescapeError::TooLarge {
            file: file.to_path_buf(),
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            limit: MAX_BYTES,
        });
    }
    let value = document(bytes, file)?;
    let head: raw::RawHead = typed(&value, "").map_err(|e| e.in_file(file))?;
    let kind = head.kind.as_deref().unwrap_or_default();
    if kind == "List" || (kind.ends_with("List") && Kind::parse(&kind[..kind.len() - 4]).is_some())
    {
        let list: raw::RawList = typed(&value, "").map_err(|e| e.in_file(file))?;
        let mut out = Vec::with_capacity(list.items.len());
        for (i, item) in list.items.iter().enumerate() {
            out.push(object(item, &format!("items[{i}]"), file)?);
        }
        return Ok(out);
    }
    Ok(vec![object(&value, "", file)?])
}

/// The document as a JSON value: JSON when it starts like JSON, else YAML.
fn document(bytes: &[u8], file: &Path) -> Result<Value, KubescapeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let syntax = |message: String| KubescapeError::Syntax {
        file: file.to_path_buf(),
        message: message.to_lowercase(),
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let value: Value = if first == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(|e| syntax(e.to_string()))?
    } else {
        serde_yaml_ng::from_slice(bytes).map_err(|e| syntax(e.to_string()))?
    };
    if !value.is_object() {
        return Err(FieldError::new("", "expected a kubernetes object (a mapping)").in_file(file));
    }
    Ok(value)
}

/// `value` as `T`, errors at the field path under `at`.
fn typed<T: DeserializeOwned>(value: &Value, at: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = if inner == "." { String::new() } else { inner };
        FieldError::new(
            join(at, &field),
            content_free(&e.inner().to_string().to_lowercase()),
        )
    })
}

/// A serde message without the values it quotes from the file: what was
/// found keeps its type only (`invalid type: integer`, `unknown field`),
/// what was expected (vexxy's schema) stays, and a missing or duplicate
/// field keeps its name (also the schema's). Errors name the file and the
/// field, never the file's content.
fn content_free(message: &str) -> String {
    if message.starts_with("missing field ") || message.starts_with("duplicate field ") {
        return message.to_owned();
    }
    // The expectation comes last; what was found may quote anything,
    // including ", expected ".
    let (found, expected) = match message.rfind(", expected ") {
        Some(i) => (&message[..i], Some(&message[i + ", expected ".len()..])),
        None => (message, None),
    };
    // Serde quotes what it found with backticks or double quotes.
    let found = found[..found.find(['`', '"', '\'']).unwrap_or(found.len())].trim_end();
    let found = found.strip_suffix(':').unwrap_or(found);
    match expected {
        // `struct RawOpen` is a private type name: say what it reads.
        Some(e) if e.starts_with("struct ") || e.starts_with("map") => {
            format!("{found}, expected a mapping")
        }
        Some(e) => format!("{found}, expected {e}"),
        None => found.to_owned(),
    }
}

/// One object at `at` (empty, or `items[i]`).
fn object(value: &Value, at: &str, file: &Path) -> Result<Object, KubescapeError> {
    let fail = |e: FieldError| e.in_file(file);
    if !value.is_object() {
        return Err(fail(FieldError::new(
            at,
            "expected a kubernetes object (a mapping)",
        )));
    }
    let head: raw::RawHead = typed(value, at).map_err(fail)?;
    match head.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(_) => {
            return Err(fail(FieldError::new(
                join(at, "apiVersion"),
                format!("expected {API_VERSION} (another api group or version)"),
            )))
        }
        None => {
            return Err(fail(FieldError::new(
                join(at, "apiVersion"),
                format!("missing (expected {API_VERSION})"),
            )))
        }
    }
    let kind_field = join(at, "kind");
    let kind = match head.kind.as_deref() {
        Some(k) => Kind::parse(k).ok_or_else(|| {
            fail(FieldError::new(
                &kind_field,
                "not a kind vexxy reads (expected ApplicationProfile, ContainerProfile, SBOMSyftFiltered or OpenVulnerabilityExchangeContainer)",
            ))
        })?,
        None => return Err(fail(FieldError::new(&kind_field, "missing"))),
    };
    let origin = if at.is_empty() {
        file.display().to_string()
    } else {
        format!("{}: {at}", file.display())
    };
    let spec_missing = || fail(FieldError::new(join(at, "spec"), "missing"));
    match kind {
        Kind::ApplicationProfile => {
            let raw: raw::RawApplicationProfile = typed(value, at).map_err(fail)?;
            let spec = raw.spec.ok_or_else(spec_missing)?;
            let meta = Meta::of(kind, raw.metadata, origin);
            let spec_at = join(at, "spec");
            let mut containers = Vec::new();
            for (list, field, ck) in [
                (spec.containers, "containers", ContainerKind::Container),
                (
                    spec.init_containers,
                    "initContainers",
                    ContainerKind::InitContainer,
                ),
                (
                    spec.ephemeral_containers,
                    "ephemeralContainers",
                    ContainerKind::EphemeralContainer,
                ),
            ] {
                for (i, c) in list.into_iter().enumerate() {
                    let c_at = join(&spec_at, &format!("{field}[{i}]"));
                    containers.push(container(c, ck, &meta, &c_at).map_err(fail)?);
                }
            }
            Ok(Object::Profile(WorkloadProfile { meta, containers }))
        }
        Kind::ContainerProfile => {
            let raw: raw::RawContainerProfile = typed(value, at).map_err(fail)?;
            let spec = raw.spec.ok_or_else(spec_missing)?;
            let meta = Meta::of(kind, raw.metadata, origin);
            let c = container(spec, ContainerKind::Container, &meta, &join(at, "spec"))
                .map_err(fail)?;
            Ok(Object::Profile(WorkloadProfile {
                meta,
                containers: vec![c],
            }))
        }
        Kind::SbomSyftFiltered => {
            let raw: raw::RawSbomFiltered = typed(value, at).map_err(fail)?;
            let spec = raw.spec.ok_or_else(spec_missing)?;
            let syft_at = join(at, "spec.syft");
            let syft = spec
                .syft
                .filter(|s| !s.is_null())
                .ok_or_else(|| fail(FieldError::new(&syft_at, "missing")))?;
            let meta = Meta::of(kind, raw.metadata, origin);
            sbom(syft, meta, &syft_at, file)
        }
        Kind::OpenVulnerabilityExchangeContainer => {
            let raw: raw::RawVexContainer = typed(value, at).map_err(fail)?;
            let spec = raw.spec.filter(|s| !s.is_null()).ok_or_else(spec_missing)?;
            let meta = Meta::of(kind, raw.metadata, origin);
            vex(spec, meta, &join(at, "spec"), file)
        }
    }
}

/// A container of either profile kind; a `ContainerProfile`'s name comes
/// from its metadata.
fn container(
    raw: raw::RawContainer,
    kind: ContainerKind,
    meta: &Meta,
    at: &str,
) -> Result<Container, FieldError> {
    let name = raw
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| meta.get(keys::CONTAINER_NAME).map(str::to_owned))
        .unwrap_or_default();
    let execs = raw
        .execs
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            Exec::try_from(e).map_err(|m| FieldError::new(join(at, &format!("execs[{i}].path")), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opens = raw
        .opens
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            Open::try_from(o).map_err(|m| FieldError::new(join(at, &format!("opens[{i}].path")), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(Container {
        kind,
        name,
        image_id: nonempty(raw.image_id).or_else(|| meta.get(keys::IMAGE_ID).map(str::to_owned)),
        image_tag: nonempty(raw.image_tag).or_else(|| meta.get(keys::IMAGE_TAG).map(str::to_owned)),
        execs,
        opens,
    })
}

/// An absolute path, or why not.
fn absolute(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("missing (an empty path)".to_owned())
    } else if !path.starts_with('/') {
        Err("expected an absolute path (one starting with /)".to_owned())
    } else {
        Ok(())
    }
}

impl TryFrom<raw::RawExec> for Exec {
    type Error = String;

    fn try_from(raw: raw::RawExec) -> Result<Self, String> {
        let path = raw.path.unwrap_or_default();
        absolute(&path)?;
        Ok(Self {
            path,
            args: raw.args,
        })
    }
}

impl TryFrom<raw::RawOpen> for Open {
    type Error = String;

    fn try_from(raw: raw::RawOpen) -> Result<Self, String> {
        absolute(&raw.path)?;
        Ok(Self {
            path: raw.path,
            flags: raw.flags,
        })
    }
}

/// An origin for errors of an embedded document: `file: field`.
fn embedded(file: &Path, at: &str) -> PathBuf {
    PathBuf::from(format!("{}: {at}", file.display()))
}

fn sbom(mut syft: Value, meta: Meta, at: &str, file: &Path) -> Result<Object, KubescapeError> {
    let Some(doc) = syft.as_object_mut() else {
        return Err(FieldError::new(at, "expected a syft json document (a mapping)").in_file(file));
    };
    // The file list: what the container used, as Kubescape filtered it.
    let mut files = Vec::new();
    if let Some(list) = doc.get("files").filter(|v| !v.is_null()) {
        let Some(list) = list.as_array() else {
            return Err(FieldError::new(join(at, "files"), "expected a sequence").in_file(file));
        };
        for (i, f) in list.iter().enumerate() {
            let field = join(at, &format!("files[{i}].location.path"));
            match f.pointer("/location/path") {
                Some(Value::String(p)) => {
                    absolute(p).map_err(|m| FieldError::new(&field, m).in_file(file))?;
                    files.push(p.clone());
                }
                Some(_) => return Err(FieldError::new(field, "expected a string").in_file(file)),
                None => return Err(FieldError::new(field, "missing").in_file(file)),
            }
        }
    }
    // Kubescape copies the descriptor; an object written without one is
    // still a Syft document by its schema.
    if doc.get("descriptor").and_then(|d| d.get("name")).is_none() {
        doc.insert(
            "descriptor".to_owned(),
            serde_json::json!({ "name": "syft" }),
        );
    }
    let bytes = serde_json::to_vec(&syft)
        .map_err(|e| FieldError::new(at, format!("cannot re-encode: {e}")).in_file(file))?;
    let parsed = match vexxy_ingest::parse(&bytes, &embedded(file, at))? {
        vexxy_ingest::Input::Sbom(s) => s,
        vexxy_ingest::Input::Report(_) => {
            return Err(
                FieldError::new(at, "is a scanner report, not a syft document").in_file(file),
            )
        }
    };
    let image_digest = meta
        .get(keys::IMAGE_ID)
        .and_then(manifest_digest)
        .or_else(|| {
            parsed
                .subject
                .manifest_digests
                .first()
                .map(ToString::to_string)
        });
    Ok(Object::Sbom(FilteredSbom {
        meta,
        files,
        packages: parsed.packages,
        image_digest,
    }))
}

fn vex(mut spec: Value, meta: Meta, at: &str, file: &Path) -> Result<Object, KubescapeError> {
    let Some(statements) = spec.get_mut("statements").and_then(Value::as_array_mut) else {
        return Err(
            FieldError::new(join(at, "statements"), "missing (expected a sequence)").in_file(file),
        );
    };
    for s in statements.iter_mut().filter_map(Value::as_object_mut) {
        // Kubescape names the package as the image product's identifier:
        // the statement is about that package in the image, a subcomponent.
        if let Some(products) = s.get_mut("products").and_then(Value::as_array_mut) {
            for p in products.iter_mut().filter_map(Value::as_object_mut) {
                let purl = p
                    .get("identifiers")
                    .and_then(|i| i.get("purl"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let (Some(purl), None) = (purl, p.get("subcomponents")) {
                    p.insert(
                        "subcomponents".to_owned(),
                        serde_json::json!([{ "@id": purl }]),
                    );
                }
            }
        }
        // Kubescape writes `affected` with an impact statement and no
        // action statement, which VEX requires: say that none was given.
        if s.get("status").and_then(Value::as_str) == Some("affected")
            && s.get("action_statement")
                .is_none_or(|a| a.as_str().is_none_or(str::is_empty))
        {
            if let Some(impact) = s.remove("impact_statement") {
                s.entry("status_notes").or_insert(impact);
            }
            s.insert(
                "action_statement".to_owned(),
                Value::String("none given (statement imported from kubescape)".to_owned()),
            );
        }
    }
    let bytes = serde_json::to_vec(&spec)
        .map_err(|e| FieldError::new(at, format!("cannot re-encode: {e}")).in_file(file))?;
    let doc = vexxy_vex::read_vex(&bytes, &embedded(file, at)).map_err(without_values)?;
    let confidence = Confidence::new(STATEMENT_CONFIDENCE).unwrap_or(Confidence::CERTAIN);
    // A tool's statements, whether or not the document names its tooling.
    let author = if doc.author.trim().is_empty() {
        "kubescape".to_owned()
    } else {
        doc.author.clone()
    };
    let document = doc.id.clone().unwrap_or_else(|| meta.title());
    let statements = doc
        .statements
        .into_iter()
        .map(|mut s| {
            s.verdict = s.verdict.with_confidence(confidence);
            s.verdict.decided_by = Decider::Imported {
                author: author.clone(),
            };
            let stated = s.verdict.status();
            s.verdict.evidence.push(Evidence::new(
                KUBESCAPE,
                EvidenceSource::ExistingVex(document.clone()),
                format!("kubescape's openvex ({}) states {stated}", meta.title()),
            ));
            // Kubescape names the image `repo@sha256:…`, not as a purl
            if s.product.digest.is_none() && s.product.name.contains("@sha256:") {
                if let Ok(p) = vexxy_model::Product::parse(&s.product.name) {
                    s.product = p;
                }
            }
            s
        })
        .collect();
    Ok(Object::Vex(VexContainer { meta, statements }))
}

/// An error of the embedded OpenVEX without the values it quotes.
fn without_values(e: vexxy_vex::VexError) -> vexxy_vex::VexError {
    use vexxy_vex::VexError;
    match e {
        VexError::Shape {
            file,
            path,
            message,
        } => VexError::Shape {
            file,
            path,
            message: content_free(&message),
        },
        VexError::Invalid {
            file,
            path,
            message,
        } => VexError::Invalid {
            file,
            path,
            message: content_free(&message),
        },
        other => other,
    }
}

/// What [`import`] makes of a set of objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Import {
    /// One profile per image digest (`None` for containers whose image id
    /// names no digest), each of every container of that image.
    pub profiles: Vec<ExecutionProfile>,
    /// Kubescape's `affected`, `under_investigation` and `fixed`
    /// statements, to respect as existing ones: none of them can hide a
    /// finding vexxy's own evidence shows in use.
    pub statements: Vec<VexStatement>,
    /// Kubescape's `not_affected` statements: claims, never existing
    /// statements. Kubescape's "not loaded into memory" is file-level and
    /// unsigned, so vexxy decides those findings from its own evidence (and
    /// this import's profiles) and records each claim as evidence
    /// (`vexxy_decide::record_claims`).
    pub claims: Vec<VexStatement>,
}

/// Why objects could not be combined.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A filtered SBOM without the profile it was filtered with: its
    /// packages show use, and vexxy never reads non-use from it.
    #[error(
        "{origin}: an SBOMSyftFiltered only shows which packages were used; give the ApplicationProfile or ContainerProfile of the same image (the one its kubescape.io/image-id names) too"
    )]
    SbomWithoutProfile {
        /// Where the SBOM was read.
        origin: String,
        /// Its image digest.
        digest: Option<String>,
    },
}

/// Combines objects: profiles (and the filtered SBOMs of the same image)
/// into one execution profile per image, and every statement.
///
/// A path Kubescape collapsed (`⋯`, `*`) stands for files vexxy cannot
/// name: it is kept as opened, counted in `lost.truncated_paths`, and when
/// it lies where code lives (`/bin`, `/sbin`, `/lib*`, `/usr`, `/opt`) or
/// the container's profile is `partial` (it started before the node agent,
/// so its first events are missing), the profile records lost events: no
/// absence claim can then be confident.
pub fn import(objects: &[Object]) -> Result<Import, ImportError> {
    let mut by_image: BTreeMap<Option<String>, Builder> = BTreeMap::new();
    let mut statements = Vec::new();
    let mut claims = Vec::new();
    for o in objects {
        match o {
            Object::Profile(p) => {
                for c in &p.containers {
                    by_image
                        .entry(c.image_digest())
                        .or_default()
                        .container(&p.meta, c);
                }
            }
            Object::Vex(v) => {
                for s in &v.statements {
                    if s.verdict.status() == Status::NotAffected {
                        claims.push(s.clone());
                    } else {
                        statements.push(s.clone());
                    }
                }
            }
            Object::Sbom(_) => {}
        }
    }
    for o in objects {
        if let Object::Sbom(s) = o {
            let Some(b) = by_image.get_mut(&s.image_digest) else {
                return Err(ImportError::SbomWithoutProfile {
                    origin: s.meta.origin.clone(),
                    digest: s.image_digest.clone(),
                });
            };
            for f in &s.files {
                b.open(f);
            }
        }
    }
    let profiles = by_image
        .into_iter()
        .map(|(digest, b)| b.finish(digest))
        .collect();
    Ok(Import {
        profiles,
        statements,
        claims,
    })
}

/// One image's profile, being built.
#[derive(Debug, Default)]
struct Builder {
    image: Option<String>,
    executables: BTreeMap<String, u64>,
    files: BTreeMap<String, u64>,
    spans: Vec<EvidenceSpan>,
    partial: u64,
    collapsed: u64,
    collapsed_code: u64,
}

impl Builder {
    fn container(&mut self, meta: &Meta, c: &Container) {
        if self.image.is_none() {
            self.image.clone_from(&c.image_tag);
        }
        for e in &c.execs {
            *self.executables.entry(e.path.clone()).or_insert(0) += 1;
        }
        for o in &c.opens {
            self.open(&o.path);
        }
        if meta.get(keys::COMPLETION) == Some("partial") {
            self.partial += 1;
        }
        let target = if c.name.is_empty() {
            meta.title()
        } else {
            format!("{} (container {})", meta.title(), c.name)
        };
        self.spans.push(EvidenceSpan {
            source: ProfileSource::Kubescape,
            target,
            started_at: meta.created.clone().unwrap_or_default(),
            duration_ms: meta
                .get(keys::LEARNING_PERIOD)
                .and_then(go_duration_ms)
                .unwrap_or(0),
        });
    }

    fn open(&mut self, path: &str) {
        if is_collapsed(path) {
            self.collapsed += 1;
            if is_code_dir(path) {
                self.collapsed_code += 1;
            }
        }
        *self.files.entry(path.to_owned()).or_insert(0) += 1;
    }

    fn finish(mut self, digest: Option<String>) -> ExecutionProfile {
        self.spans.sort();
        self.spans.dedup();
        let started_at = self
            .spans
            .iter()
            .map(|s| s.started_at.as_str())
            .filter(|s| !s.is_empty())
            .min()
            .unwrap_or_default()
            .to_owned();
        let duration_ms = self.spans.iter().map(|s| s.duration_ms).max().unwrap_or(0);
        let mut profile = ExecutionProfile {
            run: RunInfo {
                image: self
                    .image
                    .or_else(|| self.spans.first().map(|s| s.target.clone()))
                    .unwrap_or_default(),
                image_digest: digest,
                started_at,
                duration_ms,
                source: ProfileSource::Kubescape,
                spans: self.spans,
                ..RunInfo::default()
            },
            executables: self
                .executables
                .into_iter()
                .map(|(path, count)| ExecutedBinary {
                    path,
                    interpreter: None,
                    count,
                })
                .collect(),
            files: self
                .files
                .into_iter()
                .map(|(path, opens)| FileAccess { path, opens })
                .collect(),
            ..ExecutionProfile::default()
        };
        profile.lost.truncated_paths = self.collapsed;
        if self.partial > 0 {
            profile
                .lost
                .map_full
                .insert("kubescape: partial profiles".to_owned(), self.partial);
        }
        if self.collapsed_code > 0 {
            profile.lost.map_full.insert(
                "kubescape: collapsed paths where code lives".to_owned(),
                self.collapsed_code,
            );
        }
        profile
    }
}

/// Whether Kubescape collapsed the path: `⋯` (one segment) or `*` (any).
fn is_collapsed(path: &str) -> bool {
    path.contains('\u{22EF}') || path.contains('*')
}

/// Whether a path lies where programs and libraries live.
fn is_code_dir(path: &str) -> bool {
    [
        "/bin",
        "/sbin",
        "/lib",
        "/usr",
        "/opt",
        "/app",
        "/*",
        "/\u{22EF}",
    ]
    .iter()
    .any(|d| path.starts_with(d))
}

/// A Go duration (`10m`, `1h30m`, `24h0m0s`, `1.5h`, `300ms`) in
/// milliseconds.
pub fn go_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        rest = &rest[u..];
        total += number * scale;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_only_from_repository_digests() {
        let hex = "f466f670b9d6f0b1341d62f8201a5fa1781de2c7f2e37fd3f9b9ef1a61b143d5";
        assert_eq!(
            manifest_digest(&format!("docker.io/library/nginx@sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            manifest_digest(&format!("docker-pullable://nginx@sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(manifest_digest(&format!("sha256:{hex}")), None);
        assert_eq!(manifest_digest("nginx:1.25"), None);
        assert_eq!(manifest_digest("nginx@sha256:abc"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ms("10m"), Some(600_000));
        assert_eq!(go_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(go_duration_ms("24h0m0s"), Some(86_400_000));
        assert_eq!(go_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(go_duration_ms("300ms"), Some(300));
        assert_eq!(go_duration_ms("soon"), None);
        assert_eq!(go_duration_ms(""), None);
    }

    #[test]
    fn collapsed_paths_where_code_lives() {
        assert!(is_collapsed("/usr/lib/\u{22EF}/libssl.so.3"));
        assert!(is_collapsed("/proc/*/stat"));
        assert!(!is_collapsed("/etc/nginx/nginx.conf"));
        assert!(is_code_dir("/usr/lib/x86_64-linux-gnu/*"));
        assert!(!is_code_dir("/proc/\u{22EF}/stat"));
    }
}
