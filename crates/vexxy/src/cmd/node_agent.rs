//! `vexxy worker --node-agent`: the DaemonSet role. Each round asks the
//! service which images it analysed (`GET /api/v1/node-agent/images`),
//! lists containerd's containers, observes the running ones of those
//! images with the tracer (`vexxy_observe`), and uploads one production
//! profile per image (`POST /api/v1/images/{digest}/profiles`); the
//! service re-decides the image's findings with it. Which containers to
//! observe is `vexxy_server::production::plan`; HTTP and auth are the
//! service client's (`client.rs`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vexxy_model::ExecutionProfile;
use vexxy_observe::{ObserveError, ObserveRequest, Selector};
use vexxy_server::{
    api_review::{NodeAgentImages, ReevaluateResponse},
    production::{plan, RunningContainer},
};

use super::client::{api_error, path_segment, Client, MAX_JSON_BYTES, NO_BODY};
use super::observe::{observe_error, stop_on_signal};
use crate::{
    cli::{NodeAgentArgs, ServerArgs},
    exit::{BadInput, Exit},
};

pub(crate) fn run(args: &NodeAgentArgs, _quiet: bool) -> Result<Exit> {
    let client = Client::new(&ServerArgs {
        server: args
            .server
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned()),
        api_key: args.api_key.clone().unwrap_or_default(),
    })?;
    if args.observe_for.is_zero() {
        return Err(BadInput("--observe-for must be longer than 0 s".into()).into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(&stop);
    loop {
        let began = Instant::now();
        match round(&client, args, &stop) {
            Ok(failed) if args.once => {
                return Ok(if failed == 0 {
                    Exit::Done
                } else {
                    Exit::Internal
                });
            }
            Err(e) if args.once => return Err(e),
            Ok(_) => {}
            // the next round tries again (the service or containerd may be back)
            Err(e) => tracing::error!("node agent round failed: {e:#}"),
        }
        let next = began + args.every;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(200)));
        }
        if stop.load(Ordering::Relaxed) {
            tracing::info!("node agent stopping");
            return Ok(Exit::Done);
        }
    }
}

/// One round; how many uploads failed.
fn round(client: &Client, args: &NodeAgentArgs, stop: &Arc<AtomicBool>) -> Result<usize> {
    let (_, wanted): (_, NodeAgentImages) = client.json(
        "asking the service which images to observe",
        "GET",
        "/api/v1/node-agent/images",
        NO_BODY,
        &[200],
    )?;
    let containers = vexxy_observe::containerd::list(&args.containerd_address, &args.namespace)
        .map_err(observe_error)?;
    let running: Vec<RunningContainer> = containers
        .iter()
        .filter(|c| c.pid.is_some())
        .map(|c| RunningContainer {
            id: c.id.clone(),
            image_digest: c.image_digest.clone(),
        })
        .collect();
    let planned = plan(&wanted, &running);
    tracing::info!(
        wanted = wanted.images.len(),
        running = running.len(),
        images = planned.len(),
        "node agent round"
    );
    // every container at once, each in an observation of its own
    let observed: Vec<(String, Vec<Result<ExecutionProfile, ObserveError>>)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = planned
                .iter()
                .map(|(digest, ids)| {
                    let handles: Vec<_> = ids
                        .iter()
                        .map(|id| s.spawn(|| observe_one(args, id, digest, stop)))
                        .collect();
                    (digest, handles)
                })
                .collect();
            handles
                .into_iter()
                .map(|(digest, hs)| {
                    let results = hs
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(ObserveError::Invalid("the observation panicked".into()))
                            })
                        })
                        .collect();
                    (digest.clone(), results)
                })
                .collect()
        });
    let mut failed = 0;
    for (digest, results) in observed {
        let mut profile: Option<ExecutionProfile> = None;
        for r in results {
            match r {
                Ok(p) => {
                    profile = Some(match profile {
                        None => p,
                        Some(before) => vexxy_profile::merge(before, p)
                            .with_context(|| format!("merging the observations of {digest}"))?,
                    });
                }
                Err(e) => {
                    tracing::warn!(image = %digest, "observing a container failed: {e}");
                }
            }
        }
        let Some(profile) = profile else {
            failed += 1;
            continue;
        };
        if let Err(e) = upload(client, &digest, &profile) {
            tracing::error!(image = %digest, "{e}");
            failed += 1;
        }
    }
    Ok(failed)
}

fn observe_one(
    args: &NodeAgentArgs,
    id: &str,
    digest: &str,
    stop: &Arc<AtomicBool>,
) -> Result<ExecutionProfile, ObserveError> {
    let request = ObserveRequest {
        selector: Selector::Containerd {
            address: args.containerd_address.clone(),
            namespace: args.namespace.clone(),
            id: Some(id.to_owned()),
            labels: Vec::new(),
        },
        duration: args.observe_for,
        uprobes: Vec::new(),
        cancel: Arc::clone(stop),
        image_digest: Some(digest.to_owned()),
    };
    let observations = vexxy_observe::observe(&request, &|_| {})?;
    // one container: one image
    observations
        .into_iter()
        .find(|o| o.image_digest.as_deref() == Some(digest))
        .map(|o| o.profile)
        .ok_or_else(|| {
            ObserveError::Invalid(format!("container {id} is no longer of image {digest}"))
        })
}

/// Uploads one image's profile; prints one line.
fn upload(client: &Client, digest: &str, profile: &ExecutionProfile) -> Result<()> {
    let what = format!("uploading the production profile of {digest}");
    let body = vexxy_profile::to_json(profile);
    let (status, bytes) = client.request(
        &what,
        "POST",
        &format!("/api/v1/images/{}/profiles", path_segment(digest)),
        Some(&body),
        MAX_JSON_BYTES,
    )?;
    if !matches!(status, 200 | 202) {
        return Err(api_error(&what, status, &bytes).into());
    }
    let answer: ReevaluateResponse = serde_json::from_slice(&bytes).with_context(|| {
        format!("{what}: the service answered {status} with something unreadable")
    })?;
    let observed_ms: u64 = profile.run.spans.iter().map(|s| s.duration_ms).sum();
    println!(
        "uploaded {digest}: {} container(s), {} ms observed: job {} {}",
        profile.run.spans.len(),
        observed_ms,
        answer.job_id,
        if status == 202 {
            "queued"
        } else {
            "(already had it)"
        }
    );
    Ok(())
}
