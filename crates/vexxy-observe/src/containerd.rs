//! containerd's view of the containers on this host: which run, with
//! which labels, from which image (by manifest digest), and the host pid
//! of each one's init process. Read over containerd's gRPC API on its
//! socket; nothing is changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    GetImageRequest, GetRequest as GetTaskRequest, ListContainersRequest, ReadContentRequest,
};
use containerd_client::tonic::Request;
use containerd_client::{with_namespace, Client};
use serde_json::Value;

use crate::ObserveError;

/// How long one call to containerd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest index or manifest read from the content store.
const MAX_DESCRIPTOR_BYTES: i64 = 4 << 20;

/// A container containerd knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// Its containerd namespace (`k8s.io` under Kubernetes).
    pub namespace: String,
    /// The image name it was created from.
    pub image: String,
    /// The image's manifest digest for this host's platform (an index is
    /// resolved), when the image is still in the content store.
    pub image_digest: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The host pid of its task's init process, when it has a running task.
    pub pid: Option<u32>,
    /// The command its OCI spec runs (`process.args`): what the image's
    /// entrypoint and command became, before any process renamed itself.
    pub args: Vec<String>,
}

/// The containers of `namespace`, with their tasks and image digests.
pub fn list(address: &Path, namespace: &str) -> Result<Vec<ContainerInfo>, ObserveError> {
    runtime(address)?.block_on(list_async(address, namespace))
}

fn runtime(address: &Path) -> Result<tokio::runtime::Runtime, ObserveError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ObserveError::Containerd {
            address: address.to_owned(),
            what: "starting the client's runtime".into(),
            message: source.to_string(),
        })
}

fn failure(address: &Path, what: impl Into<String>) -> impl FnOnce(String) -> ObserveError {
    let address: PathBuf = address.to_owned();
    let what = what.into();
    move |message| ObserveError::Containerd {
        address,
        what,
        message,
    }
}

/// A gRPC status as text: its code and message (containerd's own words
/// about its own objects, never a remote party's).
fn status_text(status: &containerd_client::tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn timed<T, E: std::fmt::Display>(
    address: &Path,
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ObserveError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(address, what)(e.to_string())),
        Err(_) => Err(failure(address, what)(no_answer())),
    }
}

fn no_answer() -> String {
    format!("no answer within {}s", CALL_TIMEOUT.as_secs())
}

async fn list_async(address: &Path, namespace: &str) -> Result<Vec<ContainerInfo>, ObserveError> {
    if !address.exists() {
        return Err(ObserveError::Containerd {
            address: address.to_owned(),
            what: "connecting".into(),
            message: "no such socket".into(),
        });
    }
    let client = timed(address, "connecting", Client::from_path(address)).await?;
    let listed = timed(address, "listing containers", async {
        client
            .containers()
            .list(with_namespace!(
                ListContainersRequest { filters: vec![] },
                namespace
            ))
            .await
            .map_err(|s| status_text(&s))
    })
    .await?
    .into_inner();
    let mut digests: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::with_capacity(listed.containers.len());
    for c in listed.containers {
        let task = tokio::time::timeout(
            CALL_TIMEOUT,
            client.tasks().get(with_namespace!(
                GetTaskRequest {
                    container_id: c.id.clone(),
                    exec_id: String::new(),
                },
                namespace
            )),
        )
        .await
        .map_err(|_| {
            failure(address, format!("reading the task of container {}", c.id))(no_answer())
        })?;
        let pid = match task {
            // a container without a task (created, not started) has no pid
            Ok(r) => r.into_inner().process.map(|p| p.pid).filter(|pid| *pid > 0),
            Err(s) if s.code() == containerd_client::tonic::Code::NotFound => None,
            Err(s) => {
                return Err(failure(
                    address,
                    format!("reading the task of container {}", c.id),
                )(status_text(&s)))
            }
        };
        let image_digest = match digests.get(&c.image) {
            Some(d) => d.clone(),
            None => {
                let d = image_digest(&client, address, namespace, &c.image).await?;
                digests.insert(c.image.clone(), d.clone());
                d
            }
        };
        let args = c
            .spec
            .as_ref()
            .and_then(|any| serde_json::from_slice::<Value>(&any.value).ok())
            .map(|spec| spec_args(&spec))
            .unwrap_or_default();
        out.push(ContainerInfo {
            args,
            id: c.id,
            namespace: namespace.to_owned(),
            image: c.image,
            image_digest,
            labels: c.labels.into_iter().collect(),
            pid,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The manifest digest of `image` for this host's platform: its target
/// when that is a manifest, else the matching entry of its index.
async fn image_digest(
    client: &Client,
    address: &Path,
    namespace: &str,
    image: &str,
) -> Result<Option<String>, ObserveError> {
    if image.is_empty() {
        return Ok(None);
    }
    let got = tokio::time::timeout(
        CALL_TIMEOUT,
        client.images().get(with_namespace!(
            GetImageRequest {
                name: image.to_owned()
            },
            namespace
        )),
    )
    .await
    .map_err(|_| failure(address, format!("reading image {image}"))(no_answer()))?;
    let target = match got {
        Ok(r) => r.into_inner().image.and_then(|i| i.target),
        // the image was removed after the container was created
        Err(s) if s.code() == containerd_client::tonic::Code::NotFound => None,
        Err(s) => {
            return Err(failure(address, format!("reading image {image}"))(
                status_text(&s),
            ))
        }
    };
    let Some(target) = target else {
        return Ok(None);
    };
    if !is_index(&target.media_type) {
        return Ok(Some(target.digest));
    }
    let bytes = read_content(client, address, namespace, &target.digest, target.size).await?;
    let index: Value = serde_json::from_slice(&bytes).map_err(|e| ObserveError::Containerd {
        address: address.to_owned(),
        what: format!("reading the index {} of image {image}", target.digest),
        message: format!("not json: {e}"),
    })?;
    Ok(platform_manifest(&index, std::env::consts::ARCH))
}

/// `process.args` of an OCI runtime spec.
fn spec_args(spec: &Value) -> Vec<String> {
    spec.pointer("/process/args")
        .and_then(Value::as_array)
        .map(|args| {
            args.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// The manifest of an index for `linux` on this architecture (Rust's
/// name, mapped to the OCI one).
fn platform_manifest(index: &Value, rust_arch: &str) -> Option<String> {
    let arch = match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    index
        .get("manifests")?
        .as_array()?
        .iter()
        .find(|m| {
            let p = m.get("platform");
            p.and_then(|p| p.get("os")).and_then(Value::as_str) == Some("linux")
                && p.and_then(|p| p.get("architecture"))
                    .and_then(Value::as_str)
                    == Some(arch)
        })
        .and_then(|m| m.get("digest"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn read_content(
    client: &Client,
    address: &Path,
    namespace: &str,
    digest: &str,
    size: i64,
) -> Result<Vec<u8>, ObserveError> {
    let what = format!("reading {digest} from the content store");
    if size > MAX_DESCRIPTOR_BYTES {
        return Err(failure(address, what)(format!(
            "{size} bytes, more than the limit of {MAX_DESCRIPTOR_BYTES}"
        )));
    }
    // the whole read, stream included, within one call's time
    tokio::time::timeout(
        CALL_TIMEOUT,
        read_stream(client, address, namespace, digest, what.clone()),
    )
    .await
    .map_err(|_| failure(address, what)(no_answer()))?
}

async fn read_stream(
    client: &Client,
    address: &Path,
    namespace: &str,
    digest: &str,
    what: String,
) -> Result<Vec<u8>, ObserveError> {
    let mut stream = client
        .content()
        .read(with_namespace!(
            ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            },
            namespace
        ))
        .await
        .map_err(|s| failure(address, what.clone())(status_text(&s)))?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| failure(address, what.clone())(status_text(&s)))?
    {
        bytes.extend_from_slice(&chunk.data);
        if i64::try_from(bytes.len()).unwrap_or(i64::MAX) > MAX_DESCRIPTOR_BYTES {
            return Err(failure(address, what)(
                "larger than its descriptor said".into(),
            ));
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_resolves_to_this_platform_s_manifest() {
        let index = serde_json::json!({
            "manifests": [
                {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
                {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        });
        assert_eq!(
            platform_manifest(&index, "x86_64").as_deref(),
            Some("sha256:amd")
        );
        assert_eq!(
            platform_manifest(&index, "aarch64").as_deref(),
            Some("sha256:arm")
        );
        assert_eq!(platform_manifest(&index, "riscv64"), None);
    }

    #[test]
    fn the_command_comes_from_the_spec_s_process() {
        let spec = serde_json::json!({"process": {"args": ["nginx", "-g", "daemon off;"]}});
        assert_eq!(spec_args(&spec), ["nginx", "-g", "daemon off;"]);
        assert!(spec_args(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn a_missing_socket_is_named() {
        let err = list(Path::new("/nonexistent/containerd.sock"), "default").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/containerd.sock"),
            "{err}"
        );
    }
}
