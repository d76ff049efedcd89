//! Kubescape's objects as `kubectl get -o yaml|json` prints them, field for
//! field (only the fields vexxy reads; the rest are ignored). Private: they
//! convert into the domain types of the crate root with `TryFrom`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Go writes a nil slice or map as `null`: read it as empty.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `apiVersion` and `kind`, read first to pick the object's shape.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHead {
    #[serde(rename = "apiVersion", default)]
    pub(crate) api_version: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
}

/// A `List` (or `ApplicationProfileList`, …): its items.
#[derive(Debug, Deserialize)]
pub(crate) struct RawList {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) items: Vec<Value>,
}

/// `metadata` (Kubernetes `ObjectMeta`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawMeta {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) creation_timestamp: Option<String>,
}

/// `ApplicationProfile`: one entry per container of the workload.
#[derive(Debug, Deserialize)]
pub(crate) struct RawApplicationProfile {
    #[serde(default)]
    pub(crate) metadata: RawMeta,
    #[serde(default)]
    pub(crate) spec: Option<RawApplicationProfileSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawApplicationProfileSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) containers: Vec<RawContainer>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) init_containers: Vec<RawContainer>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) ephemeral_containers: Vec<RawContainer>,
}

/// `ContainerProfile`: one container; its `spec` has the fields of an
/// `ApplicationProfile` container (no name: that is in the metadata).
#[derive(Debug, Deserialize)]
pub(crate) struct RawContainerProfile {
    #[serde(default)]
    pub(crate) metadata: RawMeta,
    #[serde(default)]
    pub(crate) spec: Option<RawContainer>,
}

/// An `ApplicationProfileContainer` or a `ContainerProfileSpec`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawContainer {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) execs: Vec<RawExec>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) opens: Vec<RawOpen>,
    #[serde(rename = "imageID", default)]
    pub(crate) image_id: Option<String>,
    #[serde(rename = "imageTag", default)]
    pub(crate) image_tag: Option<String>,
}

/// `ExecCalls` (`path` is `omitempty` in Go, so it may be absent).
#[derive(Debug, Deserialize)]
pub(crate) struct RawExec {
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) args: Vec<String>,
}

/// `OpenCalls`.
#[derive(Debug, Deserialize)]
pub(crate) struct RawOpen {
    pub(crate) path: String,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) flags: Vec<String>,
}

/// `SBOMSyftFiltered`: `spec.syft` is a Syft JSON document.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSbomFiltered {
    #[serde(default)]
    pub(crate) metadata: RawMeta,
    #[serde(default)]
    pub(crate) spec: Option<RawSbomSpec>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawSbomSpec {
    #[serde(default)]
    pub(crate) syft: Option<Value>,
}

/// `OpenVulnerabilityExchangeContainer`: `spec` is an OpenVEX document.
#[derive(Debug, Deserialize)]
pub(crate) struct RawVexContainer {
    #[serde(default)]
    pub(crate) metadata: RawMeta,
    #[serde(default)]
    pub(crate) spec: Option<Value>,
}
