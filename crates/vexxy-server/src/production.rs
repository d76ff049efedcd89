//! Production evidence: execution profiles that node agents (`vexxy
//! worker --node-agent`) recorded by observing running containers of an
//! analysed image, uploaded to `POST /api/v1/images/{digest}/profiles`.
//!
//! Every upload of an image is merged with the ones before it (union of
//! the evidence, spans concatenated: the image's production evidence
//! accumulates) and becomes a re-decision job of the image's last report.
//! The worker merges that production evidence with the execution profile
//! of the image's last run and decides from the result, so the image's
//! re-issued VEX rests on what the image did under real traffic as well as
//! in the sandbox. The accumulated evidence travels in the job's request
//! (`JobSpec::production_profile`) and is kept as an artifact of the job
//! (`production.profile.json`, with the upload itself as
//! `observed.profile.json`); the next upload starts from the newest job
//! that carries it.
//!
//! Also the node agent's side that needs no HTTP or tracer: which running
//! containers to observe for which wanted image ([`plan`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use vexxy_model::{EvidenceSpan, ExecutionProfile, ProfileSource};
use vexxy_store::{jobs::JobFilter, review::ImageRow, Job};

use crate::{
    api::{Document, JobSpec},
    api_review::{NodeAgentImages, WatchedImage},
    error::ApiError,
    review::{self, StoredRun},
    Service,
};

/// The artifact holding all production evidence of the image so far.
pub const PRODUCTION_FILE: &str = "production.profile.json";
/// The artifact holding the one uploaded profile that queued the job.
pub const UPLOAD_FILE: &str = "observed.profile.json";

/// How many of the image's newest jobs are searched for its production
/// evidence.
const LOOKBACK: i64 = 200;

/// How many uploads older than the newest production evidence are checked
/// for evidence it lacks (two uploads taken at once by two processes).
const RECENT_UPLOADS: usize = 20;

/// Uploads of this process are merged one at a time, so two at once do not
/// both start from the same earlier evidence and lose each other's. (Two
/// processes still may: [`evidence_so_far`] repairs that from the
/// uploads themselves.)
static MERGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The newest production evidence of an image, and the job whose request
/// carries it.
#[derive(Clone, Debug)]
pub struct Production {
    pub job_id: String,
    /// Every profile uploaded for the image up to that job, merged.
    pub profile: Document,
    /// The uploads of the (at most [`RECENT_UPLOADS`]) jobs before it.
    pub earlier_uploads: Vec<Document>,
}

/// The image's newest production evidence: that of the newest of its jobs
/// (of the last [`LOOKBACK`]) whose request carries some, with the uploads
/// of the jobs before it. Jobs past retention carry none.
pub(crate) async fn latest(
    svc: &Service,
    org_id: &str,
    image: &ImageRow,
) -> Result<Option<Production>, ApiError> {
    let filter = JobFilter {
        state: None,
        image: Some(image.reference.clone()),
        page: 1,
        per_page: LOOKBACK,
    };
    let (jobs, _) = svc.store.list_jobs(org_id, &filter).await?;
    let mut found: Option<Production> = None;
    for job in jobs
        .iter()
        .filter(|j| j.image_digest.as_deref() == Some(image.digest.as_str()))
    {
        let Some(spec) = review::job_spec(svc, org_id, &job.id).await? else {
            continue;
        };
        match &mut found {
            None => {
                if let Some(profile) = spec.production_profile {
                    found = Some(Production {
                        job_id: job.id.clone(),
                        profile,
                        earlier_uploads: Vec::new(),
                    });
                }
            }
            Some(p) => {
                if let Some(upload) = spec.production_upload {
                    p.earlier_uploads.push(upload);
                    if p.earlier_uploads.len() >= RECENT_UPLOADS {
                        break;
                    }
                }
            }
        }
    }
    Ok(found)
}

/// All production evidence of the image so far, as profile JSON, and the
/// newest job that carries it: [`latest`], with any earlier upload it
/// lacks merged in (two processes that took uploads of the image at the
/// same instant each started from the same evidence; the newest job has
/// only one of them).
pub(crate) async fn evidence_so_far(
    svc: &Service,
    org_id: &str,
    image: &ImageRow,
) -> Result<Option<(String, Document)>, ApiError> {
    let Some(found) = latest(svc, org_id, image).await? else {
        return Ok(None);
    };
    if found.earlier_uploads.is_empty() {
        return Ok(Some((found.job_id, found.profile)));
    }
    tokio::task::spawn_blocking(move || {
        let mut all = parse_stored(&found.profile, &found.job_id)?;
        let mut repaired = false;
        for doc in &found.earlier_uploads {
            let Ok(mut upload) = vexxy_profile::parse(doc.json().as_bytes(), "upload") else {
                continue;
            };
            ensure_span(&mut upload);
            if !upload.run.spans.iter().all(|s| all.run.spans.contains(s)) {
                all = merge(all, upload).map_err(ApiError::internal)?;
                repaired = true;
            }
        }
        let profile = if repaired {
            document(&all)?
        } else {
            found.profile
        };
        Ok(Some((found.job_id, profile)))
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the production evidence: {e}")))?
}

fn parse_stored(doc: &Document, job_id: &str) -> Result<ExecutionProfile, ApiError> {
    vexxy_profile::parse(doc.json().as_bytes(), "production profile").map_err(|e| {
        ApiError::internal(format!(
            "the production evidence of job {job_id} does not parse: {e}"
        ))
    })
}

fn document(profile: &ExecutionProfile) -> Result<Document, ApiError> {
    let json = String::from_utf8(vexxy_profile::to_json(profile))
        .map_err(|e| ApiError::internal(format!("writing the production profile: {e}")))?;
    Document::try_from(json)
        .map_err(|e| ApiError::internal(format!("writing the production profile: {e}")))
}

/// A profile without spans gets one from its run (as merging would
/// count it), so that what it covers can be compared.
fn ensure_span(profile: &mut ExecutionProfile) {
    if profile.run.spans.is_empty() {
        let target = if profile.run.image.is_empty() {
            profile.run.image_digest.clone().unwrap_or_default()
        } else {
            profile.run.image.clone()
        };
        profile.run.spans.push(EvidenceSpan {
            source: profile.run.source,
            target,
            started_at: profile.run.started_at.clone(),
            duration_ms: profile.run.duration_ms,
        });
    }
}

/// An uploaded profile, checked: it parses (422 naming the field), it is
/// about `digest` (`run.image_digest`) and it records production use
/// (`run.source` observed or kubescape, not a sandbox run). An upload
/// without spans gets one from its run.
pub fn check_upload(bytes: &[u8], digest: &str) -> Result<ExecutionProfile, ApiError> {
    let mut profile = vexxy_profile::parse(bytes, "profile")
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    match profile.run.image_digest.as_deref() {
        Some(d) if d == digest => {}
        Some(d) => {
            return Err(ApiError::unprocessable(format!(
                "run.image_digest: the profile is about image {d}, not {digest}"
            )));
        }
        None => {
            return Err(ApiError::unprocessable(format!(
                "run.image_digest: missing; a production profile must name the manifest digest of the image it observed ({digest})"
            )));
        }
    }
    match profile.run.source {
        ProfileSource::Observed | ProfileSource::Kubescape => {}
        ProfileSource::Sandbox => {
            return Err(ApiError::unprocessable(
                "run.source: a sandbox run is not production evidence (expected observed or kubescape); submit an analysis to run the image",
            ));
        }
    }
    if let Some((i, s)) = profile
        .run
        .spans
        .iter()
        .enumerate()
        .find(|(_, s)| s.source == ProfileSource::Sandbox)
    {
        return Err(ApiError::unprocessable(format!(
            "run.spans[{i}].source: span of {} is a sandbox run, not production evidence",
            s.target
        )));
    }
    ensure_span(&mut profile);
    Ok(profile)
}

/// Queues the re-decision of an analysed image with a production profile
/// (checked by [`check_upload`]): merged with the image's earlier uploads,
/// decided against its last report together with its last run's profile.
/// `Ok((job, false))`: every span of the upload was already part of the
/// image's evidence (the same upload again); the job that has it.
pub(crate) async fn queue(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    digest: &str,
    upload: Document,
    profile: ExecutionProfile,
) -> Result<(Job, bool), ApiError> {
    let org = &caller.org.id;
    let _one = MERGING.lock().await;
    let StoredRun {
        image,
        run,
        spec: run_spec,
    } = review::stored_run(svc, caller, digest).await?;
    // the image's last report (or SBOM): the last analysis' (a re-decision
    // when a new report came since the run), else the run's own
    let last = match review::job_spec(svc, org, &image.last_analysis_job).await? {
        Some(s) if s.scan_report.is_some() || s.sbom.is_some() => s,
        _ => run_spec.clone(),
    };
    if last.scan_report.is_none() && last.sbom.is_none() {
        return Err(ApiError::conflict(
            "no_report",
            format!(
                "image {digest} was analysed without a scanner report or SBOM: there are no findings to re-decide"
            ),
        ));
    }
    let before = evidence_so_far(svc, org, &image).await?;
    let merged = tokio::task::spawn_blocking(move || accumulate(before, profile))
        .await
        .map_err(|e| ApiError::internal(format!("merging the production profile: {e}")))??;
    let merged = match merged {
        Accumulated::Duplicate(job_id) => {
            let job = svc
                .store
                .job(Some(org), &job_id)
                .await?
                .ok_or_else(|| ApiError::internal(format!("job {job_id} vanished")))?;
            return Ok((job, false));
        }
        Accumulated::Merged(doc) => doc,
    };
    let spec = JobSpec {
        image_digest: Some(digest.to_owned()),
        scan_report: last.scan_report,
        sbom: last.sbom,
        reevaluate_from: Some(run),
        rerun: None,
        production_profile: Some(merged),
        production_upload: Some(upload),
        ..run_spec
    };
    crate::job::findings(&spec)
        .map_err(|e| ApiError::internal(format!("the stored report of image {digest}: {e}")))?;
    review::submit_reevaluation(svc, caller, &spec).await
}

/// An upload merged with the image's earlier production evidence.
enum Accumulated {
    /// All of it, as profile JSON.
    Merged(Document),
    /// The upload was part of the evidence of this job already.
    Duplicate(String),
}

fn accumulate(
    before: Option<(String, Document)>,
    upload: ExecutionProfile,
) -> Result<Accumulated, ApiError> {
    let merged = match before {
        None => upload,
        Some((job_id, doc)) => {
            let earlier = parse_stored(&doc, &job_id)?;
            if upload
                .run
                .spans
                .iter()
                .all(|s| earlier.run.spans.contains(s))
            {
                return Ok(Accumulated::Duplicate(job_id));
            }
            merge(earlier, upload).map_err(ApiError::unprocessable)?
        }
    };
    document(&merged).map(Accumulated::Merged)
}

/// Two profiles of one image merged (`vexxy_profile::merge`).
fn merge(a: ExecutionProfile, b: ExecutionProfile) -> Result<ExecutionProfile, String> {
    vexxy_profile::merge(a, b).map_err(|e| e.to_string())
}

/// The profile a production re-decision decides from: the run's, with the
/// job's production evidence merged in; the run's alone otherwise.
pub fn with_production(
    run: ExecutionProfile,
    spec: &JobSpec,
) -> Result<ExecutionProfile, vexxy_analyze::AnalyzeError> {
    let Some(doc) = &spec.production_profile else {
        return Ok(run);
    };
    let production =
        vexxy_profile::parse(doc.json().as_bytes(), "production profile").map_err(|e| {
            vexxy_analyze::AnalyzeError::internal(format!("the job's production evidence: {e}"))
        })?;
    merge(run, production).map_err(|e| {
        vexxy_analyze::AnalyzeError::bad_input(format!(
            "merging the production evidence with the image's run: {e}"
        ))
    })
}

/// The images node agents of the organisation watch for: every analysed
/// image with a stored run, most recently analysed first (at most 10 000).
pub(crate) async fn watched(svc: &Service, org_id: &str) -> Result<NodeAgentImages, ApiError> {
    const PAGE: i64 = 1000;
    let now = vexxy_store::now_ms();
    let mut images = Vec::new();
    for page in 0..10 {
        let (rows, total) = svc
            .store
            .images(org_id, None, None, PAGE, page * PAGE, now)
            .await?;
        let done = rows.is_empty() || (page + 1) * PAGE >= total;
        images.extend(
            rows.into_iter()
                .filter(|r| r.last_run_job.is_some())
                .map(|r| WatchedImage {
                    digest: r.digest,
                    repository: r.repository,
                    reference: r.reference,
                }),
        );
        if done {
            break;
        }
    }
    Ok(NodeAgentImages { images })
}

/// A running container as a node agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningContainer {
    pub id: String,
    /// Its image's manifest digest, when the runtime knows it.
    pub image_digest: Option<String>,
}

/// Which containers to observe for which wanted image: the running
/// containers whose image digest the service asked about, by digest (the
/// order of `wanted`), each container once. Images without a running
/// container are left out.
pub fn plan(wanted: &NodeAgentImages, running: &[RunningContainer]) -> Vec<(String, Vec<String>)> {
    let mut by_digest: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in running {
        if let Some(d) = c.image_digest.as_deref() {
            by_digest.entry(d).or_default().insert(c.id.as_str());
        }
    }
    let mut seen = BTreeSet::new();
    wanted
        .images
        .iter()
        .filter(|w| seen.insert(w.digest.as_str()))
        .filter_map(|w| {
            let ids = by_digest.get(w.digest.as_str())?;
            Some((
                w.digest.clone(),
                ids.iter().map(|s| (*s).to_owned()).collect(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(d: &str) -> WatchedImage {
        WatchedImage {
            digest: d.into(),
            repository: "r".into(),
            reference: "r:1".into(),
        }
    }

    #[test]
    fn plans_only_wanted_images_with_running_containers() {
        let wanted = NodeAgentImages {
            images: vec![image("sha256:b"), image("sha256:a"), image("sha256:b")],
        };
        let c = |id: &str, d: Option<&str>| RunningContainer {
            id: id.into(),
            image_digest: d.map(str::to_owned),
        };
        let running = [
            c("x", Some("sha256:a")),
            c("y", Some("sha256:c")),
            c("z", None),
            c("w", Some("sha256:a")),
            c("v", Some("sha256:b")),
        ];
        assert_eq!(
            plan(&wanted, &running),
            [
                ("sha256:b".to_owned(), vec!["v".to_owned()]),
                ("sha256:a".to_owned(), vec!["w".to_owned(), "x".to_owned()]),
            ]
        );
        assert!(plan(&NodeAgentImages::default(), &running).is_empty());
    }
}
