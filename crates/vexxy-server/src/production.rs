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
    sync::{Arc, PoisonError},
};

use sha2::{Digest as _, Sha256};
use vexxy_model::{EvidenceSpan, ExecutionProfile, ProfileSource, RunInfo};
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

/// At most this many spans in one upload.
pub const MAX_SPANS: usize = 256;
/// The longest time one span (and `run.duration_ms`) may claim: 7 days.
pub const MAX_SPAN_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// How far past the service's clock a span may start or end (the node's
/// clock may run ahead): 5 minutes.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// The longest a span's `target` (what was traced) may be, in characters.
pub const MAX_TARGET_CHARS: usize = 256;

/// How many content digests of the uploads merged into an image's
/// evidence the newest job remembers (the newest ones): an upload sent
/// again is recognised by them, and the uploads of a concurrent process
/// are merged back by them.
const REMEMBERED_UPLOADS: usize = 64;

/// How many of the image's newest jobs are searched for its production
/// evidence.
const LOOKBACK: i64 = 200;

/// How many uploads older than the newest production evidence are checked
/// for evidence it lacks (two uploads taken at once by two processes).
const RECENT_UPLOADS: usize = 20;

/// The locks under which this process merges uploads, one per
/// (organisation, image digest) while some upload of it is being merged:
/// two uploads of one image at once do not both start from the same
/// earlier evidence and lose each other's, and uploads of other images
/// (or organisations) do not wait. (Two processes still may race:
/// [`evidence_so_far`] repairs that from the uploads themselves.)
type MergeLocks = BTreeMap<(String, String), Arc<tokio::sync::Mutex<()>>>;
static MERGING: std::sync::Mutex<MergeLocks> = std::sync::Mutex::new(BTreeMap::new());

/// A share of the merge lock of one (organisation, digest); the entry
/// leaves [`MERGING`] with its last share.
struct MergeLock {
    key: (String, String),
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl MergeLock {
    fn new(org_id: &str, digest: &str) -> Self {
        let key = (org_id.to_owned(), digest.to_owned());
        let lock = MERGING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        Self {
            key,
            lock: Some(lock),
        }
    }

    async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        match &self.lock {
            Some(lock) => lock.lock().await,
            None => unreachable!("a merge lock's share is held until it is dropped"),
        }
    }
}

impl Drop for MergeLock {
    fn drop(&mut self) {
        let mut locks = MERGING.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.lock.take());
        if locks
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

/// The content digest of an upload (checked by [`check_upload`]): the
/// SHA-256 of its canonical profile JSON (`vexxy_profile::to_json`), so
/// the same profile sent with other whitespace or key order is the same
/// upload, and one with any other evidence is not.
pub fn upload_digest(profile: &ExecutionProfile) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(vexxy_profile::to_json(profile)))
    )
}

/// The newest production evidence of an image, and the job whose request
/// carries it.
#[derive(Clone, Debug)]
pub struct Production {
    pub job_id: String,
    /// Every profile uploaded for the image up to that job, merged.
    pub profile: Document,
    /// The content digests ([`upload_digest`]) of the newest uploads
    /// merged into `profile`, oldest first; empty in jobs stored before
    /// they were recorded.
    pub uploads: Vec<String>,
    /// The upload that queued that job, if one did.
    pub upload: Option<Document>,
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
                        uploads: spec.production_upload_digests,
                        upload: spec.production_upload,
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

/// All production evidence of an image so far.
#[derive(Clone, Debug)]
pub(crate) struct Evidence {
    /// The newest job that carries it (a repaired one is newer).
    pub(crate) job_id: String,
    /// The merged profile JSON.
    pub(crate) profile: Document,
    /// The content digests of the newest [`REMEMBERED_UPLOADS`] uploads
    /// merged into it, oldest first.
    pub(crate) uploads: Vec<String>,
}

/// All production evidence of the image so far, as profile JSON, and the
/// newest job that carries it: [`latest`], with any earlier upload it
/// lacks merged in (two processes that took uploads of the image at the
/// same instant each started from the same evidence; the newest job has
/// only one of them). Which uploads the evidence has is told by their
/// content digests (for jobs stored before those were recorded, by their
/// spans).
pub(crate) async fn evidence_so_far(
    svc: &Service,
    org_id: &str,
    image: &ImageRow,
) -> Result<Option<Evidence>, ApiError> {
    let Some(found) = latest(svc, org_id, image).await? else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || {
        let legacy = found.uploads.is_empty();
        let mut uploads = found.uploads;
        if legacy {
            if let Some(doc) = &found.upload {
                if let Ok(own) = parse_upload(doc) {
                    uploads.push(upload_digest(&own));
                }
            }
        }
        if found.earlier_uploads.is_empty() {
            return Ok(Some(Evidence {
                job_id: found.job_id,
                profile: found.profile,
                uploads,
            }));
        }
        let mut all = parse_stored(&found.profile, &found.job_id)?;
        let mut repaired = false;
        // oldest first, as they were merged
        for doc in found.earlier_uploads.iter().rev() {
            let Ok(upload) = parse_upload(doc) else {
                continue;
            };
            let digest = upload_digest(&upload);
            let included = if legacy {
                upload.run.spans.iter().all(|s| all.run.spans.contains(s))
            } else {
                uploads.contains(&digest)
            };
            if !included {
                all = merge(all, upload).map_err(ApiError::internal)?;
                repaired = true;
            }
            if !uploads.contains(&digest) {
                uploads.push(digest);
            }
        }
        let profile = if repaired {
            document(&all)?
        } else {
            found.profile
        };
        Ok(Some(Evidence {
            job_id: found.job_id,
            profile,
            uploads: remembered(uploads),
        }))
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the production evidence: {e}")))?
}

/// A stored upload as [`check_upload`] made it (without the checks that
/// depend on the time: it was taken when it was sent).
fn parse_upload(doc: &Document) -> Result<ExecutionProfile, vexxy_profile::ProfileError> {
    let mut upload = vexxy_profile::parse(doc.json().as_bytes(), "upload")?;
    ensure_span(&mut upload);
    Ok(upload)
}

/// The newest [`REMEMBERED_UPLOADS`] of `uploads` (oldest first).
fn remembered(mut uploads: Vec<String>) -> Vec<String> {
    let extra = uploads.len().saturating_sub(REMEMBERED_UPLOADS);
    uploads.drain(..extra);
    uploads
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
/// about `digest` (`run.image_digest`), it records production use
/// (`run.source` observed or kubescape, not a sandbox run) and what it
/// claims is bounded ([`check_claims`]). An upload without spans gets one
/// from its run. No error repeats a value of the upload.
pub fn check_upload(bytes: &[u8], digest: &str) -> Result<ExecutionProfile, ApiError> {
    check_upload_at(bytes, digest, vexxy_store::now_ms())
}

/// [`check_upload`] at `now_ms` (Unix milliseconds).
pub fn check_upload_at(
    bytes: &[u8],
    digest: &str,
    now_ms: i64,
) -> Result<ExecutionProfile, ApiError> {
    let mut profile = vexxy_profile::parse(bytes, "profile").map_err(|e| parse_error(&e))?;
    match profile.run.image_digest.as_deref() {
        Some(d) if d == digest => {}
        Some(_) => {
            return Err(ApiError::unprocessable(
                "run.image_digest: the profile is about another image than the one it is posted for",
            ));
        }
        None => {
            return Err(ApiError::unprocessable(
                "run.image_digest: missing; a production profile must name the manifest digest of the image it observed",
            ));
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
    check_claims(&profile.run, now_ms)?;
    ensure_span(&mut profile);
    Ok(profile)
}

/// What a profile claims about its run and spans, bounded: at most
/// [`MAX_SPANS`] spans, none of them a sandbox run; each span's
/// `started_at` RFC 3339 and neither it nor its end (`started_at` +
/// `duration_ms`) later than now (give or take [`CLOCK_SKEW_MS`]); no span,
/// nor `run.duration_ms`, longer than [`MAX_SPAN_MS`]; each `target` at
/// most [`MAX_TARGET_CHARS`] printable characters. A profile without spans
/// counts as one made from its run (`run.image`, `run.started_at`,
/// `run.duration_ms`), checked the same way.
fn check_claims(run: &RunInfo, now_ms: i64) -> Result<(), ApiError> {
    if run.spans.len() > MAX_SPANS {
        return Err(ApiError::unprocessable(format!(
            "run.spans: more than {MAX_SPANS} spans; upload at most {MAX_SPANS} at a time"
        )));
    }
    if run.duration_ms > MAX_SPAN_MS {
        return Err(ApiError::unprocessable(format!(
            "run.duration_ms: longer than {MAX_SPAN_MS} ms (7 days), the most one upload may claim"
        )));
    }
    if run.spans.is_empty() {
        if !run.image.is_empty() {
            check_target(&run.image, "run.image")?;
        }
        return check_time(&run.started_at, run.duration_ms, "run", now_ms);
    }
    for (i, s) in run.spans.iter().enumerate() {
        let at = format!("run.spans[{i}]");
        if s.source == ProfileSource::Sandbox {
            return Err(ApiError::unprocessable(format!(
                "{at}.source: a sandbox run is not production evidence (expected observed or kubescape)"
            )));
        }
        check_target(&s.target, &format!("{at}.target"))?;
        if s.duration_ms > MAX_SPAN_MS {
            return Err(ApiError::unprocessable(format!(
                "{at}.duration_ms: longer than {MAX_SPAN_MS} ms (7 days), the most one span may claim"
            )));
        }
        check_time(&s.started_at, s.duration_ms, &at, now_ms)?;
    }
    if run.started_at.is_empty() {
        Ok(())
    } else {
        check_time(&run.started_at, run.duration_ms, "run", now_ms)
    }
}

/// `{at}.started_at` is an RFC 3339 time, and neither it nor
/// `started_at + duration_ms` is later than `now_ms` + [`CLOCK_SKEW_MS`].
fn check_time(started_at: &str, duration_ms: u64, at: &str, now_ms: i64) -> Result<(), ApiError> {
    let started =
        time::OffsetDateTime::parse(started_at, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                ApiError::unprocessable(format!(
                    "{at}.started_at: not an RFC 3339 time (such as 2026-01-01T00:00:00Z)"
                ))
            })?;
    let started_ms = started.unix_timestamp_nanos() / 1_000_000;
    let latest = i128::from(now_ms) + i128::from(CLOCK_SKEW_MS);
    if started_ms > latest {
        return Err(ApiError::unprocessable(format!(
            "{at}.started_at: in the future (more than {} minutes past the service's clock)",
            CLOCK_SKEW_MS / 60_000
        )));
    }
    if started_ms + i128::from(duration_ms) > latest {
        return Err(ApiError::unprocessable(format!(
            "{at}.duration_ms: the span would end in the future (started_at + duration_ms is more than {} minutes past the service's clock)",
            CLOCK_SKEW_MS / 60_000
        )));
    }
    Ok(())
}

/// `field` names what was traced in at most [`MAX_TARGET_CHARS`]
/// printable characters: no control characters, nor the invisible ones
/// that reorder or hide text (bidirectional overrides, zero-width
/// characters), since it is shown in the image's VEX.
fn check_target(target: &str, field: &str) -> Result<(), ApiError> {
    let invisible = |c: char| {
        matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
    };
    if target.chars().count() > MAX_TARGET_CHARS
        || target.chars().any(|c| c.is_control() || invisible(c))
    {
        return Err(ApiError::unprocessable(format!(
            "{field}: must be at most {MAX_TARGET_CHARS} printable characters"
        )));
    }
    Ok(())
}

/// A parse error of an upload, naming the field without repeating what
/// the upload had there.
fn parse_error(e: &vexxy_profile::ProfileError) -> ApiError {
    use vexxy_profile::ProfileError as E;
    let message = match e {
        E::Empty { .. } => "the profile is empty".to_owned(),
        E::NotAnObject { .. } => "the profile is not a JSON object".to_owned(),
        E::Malformed { line, column, .. } => {
            format!("the profile is not well-formed JSON (line {line} column {column})")
        }
        E::Truncated { line, column, .. } => {
            format!("the profile ends early (line {line} column {column})")
        }
        E::UnsupportedSchema { .. } => format!(
            "schema: not {}, the execution profile schema this service reads",
            vexxy_profile::SCHEMA
        ),
        E::Invalid { json_path, .. } if json_path == "schema" => {
            format!("schema: missing; expected {}", vexxy_profile::SCHEMA)
        }
        E::Schema {
            json_path,
            line,
            column,
            message,
            ..
        } => {
            // serde's "missing field `x`" names a field of the schema;
            // its other messages may quote the value
            let what = match message.strip_prefix("missing field `") {
                Some(rest)
                    if rest.ends_with('`')
                        && rest[..rest.len() - 1]
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b == b'_') =>
                {
                    message.as_str()
                }
                _ => "missing, of the wrong type or not an allowed value",
            };
            format!(
                "{}: {what} (line {line} column {column})",
                safe_path(json_path)
            )
        }
        E::Invalid { json_path, .. } => format!(
            "{}: not allowed (a duplicate, malformed or inconsistent value)",
            safe_path(json_path)
        ),
        _ => "the profile could not be read".to_owned(),
    };
    ApiError::unprocessable(message)
}

/// A JSON path up to its first character that is not a letter, digit,
/// `_`, `.`, `[` or `]` (a map key of the upload may follow), at most 128
/// characters.
fn safe_path(path: &str) -> String {
    let safe: String = path
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
        .take(128)
        .collect();
    if safe.is_empty() {
        "the profile".to_owned()
    } else {
        safe
    }
}

/// Queues the re-decision of an analysed image with a production profile
/// (checked by [`check_upload`]): merged with the image's earlier uploads,
/// decided against its last report together with its last run's profile.
/// The job's request records the key that uploaded it
/// (`production_uploaded_by`). `Ok((job, false))`: the same upload (by
/// content, [`upload_digest`]) is part of the image's evidence already;
/// the newest job that has it.
pub(crate) async fn queue(
    svc: &Arc<Service>,
    caller: &vexxy_store::Caller,
    digest: &str,
    upload: Document,
    profile: ExecutionProfile,
) -> Result<(Job, bool), ApiError> {
    let org = &caller.org.id;
    let lock = MergeLock::new(org, digest);
    let _one = lock.lock().await;
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
    let (merged, uploads) = match merged {
        Accumulated::Duplicate(job_id) => {
            let job = svc
                .store
                .job(Some(org), &job_id)
                .await?
                .ok_or_else(|| ApiError::internal(format!("job {job_id} vanished")))?;
            return Ok((job, false));
        }
        Accumulated::Merged { profile, uploads } => (profile, uploads),
    };
    let spec = JobSpec {
        image_digest: Some(digest.to_owned()),
        scan_report: last.scan_report,
        sbom: last.sbom,
        reevaluate_from: Some(run),
        rerun: None,
        production_profile: Some(merged),
        production_upload: Some(upload),
        production_upload_digests: uploads,
        production_uploaded_by: Some(caller.key_id.clone()),
        ..run_spec
    };
    crate::job::findings(&spec)
        .map_err(|e| ApiError::internal(format!("the stored report of image {digest}: {e}")))?;
    review::submit_reevaluation(svc, caller, &spec).await
}

/// An upload merged with the image's earlier production evidence.
enum Accumulated {
    /// All of it, as profile JSON, and the content digests of the newest
    /// uploads in it (this one last).
    Merged {
        profile: Document,
        uploads: Vec<String>,
    },
    /// The upload was part of the evidence of this job already.
    Duplicate(String),
}

fn accumulate(before: Option<Evidence>, upload: ExecutionProfile) -> Result<Accumulated, ApiError> {
    let digest = upload_digest(&upload);
    let (merged, mut uploads) = match before {
        None => (upload, Vec::new()),
        Some(before) => {
            if before.uploads.contains(&digest) {
                return Ok(Accumulated::Duplicate(before.job_id));
            }
            let earlier = parse_stored(&before.profile, &before.job_id)?;
            let merged = merge(earlier, upload).map_err(ApiError::unprocessable)?;
            (merged, before.uploads)
        }
    };
    uploads.push(digest);
    Ok(Accumulated::Merged {
        profile: document(&merged)?,
        uploads: remembered(uploads),
    })
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
    use std::time::Duration;

    use super::*;

    fn in_use(org: &str) -> usize {
        MERGING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .filter(|(o, _)| o == org)
            .count()
    }

    #[tokio::test]
    async fn merge_locks_are_per_image_and_dropped_when_unused() {
        let (a, b) = ("org-merge-lock-a", "org-merge-lock-b");
        let first = MergeLock::new(a, "sha256:1");
        let held = first.lock().await;
        // another organisation's upload of the same digest, and another
        // image of the same organisation, do not wait
        let other_org = MergeLock::new(b, "sha256:1");
        let other_image = MergeLock::new(a, "sha256:2");
        let other_org_held = tokio::time::timeout(Duration::from_secs(5), other_org.lock())
            .await
            .expect("another organisation waited");
        let other_image_held = tokio::time::timeout(Duration::from_secs(5), other_image.lock())
            .await
            .expect("another image waited");
        // the same image does
        let same = MergeLock::new(a, "sha256:1");
        assert!(tokio::time::timeout(Duration::from_millis(50), same.lock())
            .await
            .is_err());
        assert_eq!(in_use(a), 2);
        drop(other_image_held);
        drop(other_org_held);
        drop(other_image);
        assert_eq!(in_use(a), 1);
        drop(held);
        drop(first);
        // still awaited by `same`: kept
        assert_eq!(in_use(a), 1);
        drop(same.lock().await);
        drop(same);
        drop(other_org);
        assert_eq!((in_use(a), in_use(b)), (0, 0));
    }

    #[test]
    fn claims_are_bounded_at_the_time_of_the_upload() {
        let now = 1_800_000_000_000; // 2027-01-15T08:00:00Z
        let profile = |started_at: &str, duration_ms: u64| {
            let p = ExecutionProfile {
                run: RunInfo {
                    image_digest: Some(format!("sha256:{}", "a".repeat(64))),
                    started_at: started_at.into(),
                    duration_ms,
                    source: ProfileSource::Observed,
                    ..RunInfo::default()
                },
                ..ExecutionProfile::default()
            };
            vexxy_profile::to_json(&p)
        };
        let digest = format!("sha256:{}", "a".repeat(64));
        let check = |started_at: &str, duration_ms: u64| {
            check_upload_at(&profile(started_at, duration_ms), &digest, now)
                .map(|_| ())
                .map_err(|e| e.body.message)
        };
        // ends four minutes past the clock: within the skew
        assert_eq!(check("2027-01-15T07:00:00Z", 64 * 60_000), Ok(()));
        let err = check("2027-01-15T07:00:00Z", 66 * 60_000).unwrap_err();
        assert!(err.starts_with("run.duration_ms:"), "{err}");
        let err = check("2027-01-15T08:06:00Z", 0).unwrap_err();
        assert!(err.starts_with("run.started_at:"), "{err}");
        let err = check("2027-01-15 08:00", 0).unwrap_err();
        assert!(
            err.starts_with("run.started_at:") && !err.contains("08:00"),
            "{err}"
        );
        assert_eq!(check("2026-01-01T00:00:00Z", MAX_SPAN_MS), Ok(()));
        let err = check("2026-01-01T00:00:00Z", MAX_SPAN_MS + 1).unwrap_err();
        assert!(err.starts_with("run.duration_ms:"), "{err}");
        // a synthesised span's target is the run's image
        let mut p = vexxy_profile::parse(&profile("2026-01-01T00:00:00Z", 1), "p").unwrap();
        p.run.image = "web\u{202E}gpj.exe".into();
        let err = check_upload_at(&vexxy_profile::to_json(&p), &digest, now)
            .unwrap_err()
            .body
            .message;
        assert!(
            err.starts_with("run.image:") && !err.contains("web"),
            "{err}"
        );
    }

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
