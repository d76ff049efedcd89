//! Workers: claim a job while one of the process' slots is free, run it
//! through the [`Analyzer`](crate::Analyzer) on a blocking thread while a
//! heartbeat keeps the lease (and carries progress, cancellation and the
//! timeout), then store the evidence and finish the job under the lease's
//! fencing token. Up to `workers` jobs run at once, each on a task of its
//! own ([`dispatch_loop`]); nothing is shared between them but the
//! service (database, evidence store, the map of local jobs) and, below
//! the analyzer, the caches on disk, which are safe for concurrent use by
//! threads and processes (file locks, atomic renames, unique scratch and
//! sandbox names).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use tokio::{sync::watch, task::JoinSet};
use tracing::Instrument as _;
use vexxy_store::{
    jobs::{Completion, Lease, NewDelivery, WebhookFor},
    Artifact,
};

use vexxy_analyze::ErrorKind;

use crate::{
    analyzer::JobControl,
    api::{rfc3339, JobSpec, Summary, WebhookPayload},
    metrics::OutcomeLabel,
    Service,
};

/// Longest a job's signing and attaching may take after its analysis.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an analysis may ignore a cancellation (timeout, shutdown,
/// lost lease) before the worker stops waiting for it: it records the
/// outcome and moves on, and the blocking thread's late result is dropped.
const ABANDON_AFTER: Duration = Duration::from_secs(60);

/// Claims jobs and runs each on a task of its own, at most `slots` at
/// once, until `stop` turns true; then waits for the running ones (they
/// see `stop` too: the shutdown grace, then cancelled and re-queued).
///
/// One loop claims for every slot of the process, and only while a slot
/// is free: an idle process asks the database once per poll (or when a
/// submission wakes it), however many slots it has. A job's lease names
/// its slot (`<instance>/w<slot>`).
pub(crate) async fn dispatch_loop(
    svc: Arc<Service>,
    slots: usize,
    mut stop: watch::Receiver<bool>,
) {
    let lease_ms = svc.config.queue.lease.as_millis() as i64;
    let poll = svc.config.queue.poll;
    let mut slots = Slots::new(slots);
    let mut running: JoinSet<()> = JoinSet::new();
    tracing::info!(instance = %svc.config.instance, slots = slots.free.len(), "workers started");
    // the sender gone counts as a stop
    let mut closed = false;
    while !closed && !*stop.borrow() {
        while let Some(done) = running.try_join_next_with_id() {
            slots.release(&svc, done);
        }
        let Some(slot) = slots.first_free() else {
            // every slot busy: claim again once one is free
            tokio::select! {
                Some(done) = running.join_next_with_id() => slots.release(&svc, done),
                r = stop.changed() => closed = r.is_err(),
            }
            continue;
        };
        // listening before the claim: a submission between an empty claim
        // and the wait below still wakes us
        let wake = svc.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let worker = format!("{}/w{slot}", svc.config.instance);
        match svc.store.claim(&worker, lease_ms).await {
            Ok(Some(lease)) => {
                let span = tracing::info_span!("job", job = %lease.job.id, attempt = lease.job.attempts, worker = %lease.worker);
                let (svc_, stop_) = (Arc::clone(&svc), stop.clone());
                let task =
                    running.spawn(async move { run(&svc_, lease, &stop_).instrument(span).await });
                slots.hold(&svc, slot, task.id());
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = &mut wake => {}
                    Some(done) = running.join_next_with_id() => slots.release(&svc, done),
                    r = stop.changed() => closed = r.is_err(),
                }
            }
            Err(e) => {
                tracing::error!(worker = %worker, error = %e, "claiming a job failed");
                tokio::select! {
                    () = tokio::time::sleep(poll * 4) => {}
                    r = stop.changed() => closed = r.is_err(),
                }
            }
        }
    }
    if !running.is_empty() {
        tracing::info!(
            running = running.len(),
            "workers stopping: waiting for the running jobs"
        );
    }
    while let Some(done) = running.join_next_with_id().await {
        slots.release(&svc, done);
    }
    tracing::info!(instance = %svc.config.instance, "workers stopped");
}

/// The job slots of a process: which are free, which task holds which.
#[derive(Debug)]
struct Slots {
    /// Lowest first, so that a quiet process reuses `w0`.
    free: BTreeSet<usize>,
    held: HashMap<tokio::task::Id, usize>,
}

impl Slots {
    fn new(n: usize) -> Self {
        Self {
            free: (0..n).collect(),
            held: HashMap::new(),
        }
    }

    fn first_free(&self) -> Option<usize> {
        self.free.first().copied()
    }

    fn hold(&mut self, svc: &Service, slot: usize, task: tokio::task::Id) {
        self.free.remove(&slot);
        self.held.insert(task, slot);
        svc.metrics.worker_busy(1);
    }

    /// Frees the slot of a finished task (a task that panicked too: its
    /// job's lease then runs out and the job is recovered).
    fn release(
        &mut self,
        svc: &Service,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    ) {
        let task = match done {
            Ok((task, ())) => task,
            Err(e) => {
                tracing::error!(error = %e, "a job's task failed; its lease will run out");
                e.id()
            }
        };
        if let Some(slot) = self.held.remove(&task) {
            self.free.insert(slot);
            svc.metrics.worker_busy(-1);
        }
    }
}

/// Why the analysis was told to stop, if it was, and since when.
#[derive(Debug, Default)]
struct Stopped {
    lost: bool,
    timed_out: bool,
    shutdown: bool,
    since: Option<Instant>,
}

impl Stopped {
    fn stop(&mut self, control: &JobControl) {
        self.since.get_or_insert_with(Instant::now);
        control.cancel();
    }
}

/// Keeps the lease for as long as the job is this worker's — through the
/// analysis and the storing of its results — and carries progress,
/// cancellation, the timeout and the shutdown grace. A lease it cannot
/// renew for longer than the lease lasts counts as lost: another worker
/// may have the job by then.
async fn keep_lease(
    svc: Arc<Service>,
    lease: Lease,
    control: JobControl,
    why: Arc<Mutex<Stopped>>,
    stop: watch::Receiver<bool>,
    mut done: watch::Receiver<bool>,
    timeout: Duration,
) {
    let lease_ms = svc.config.queue.lease.as_millis() as i64;
    let began = Instant::now();
    let mut last_ok = Instant::now();
    let mut grace_until: Option<Instant> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(svc.config.queue.heartbeat) => {}
            _ = done.changed() => return,
        }
        if *done.borrow() {
            return;
        }
        // a job counts as `analyzing` from the sandboxed run on, `running`
        // while it fetches and analyses statically
        let (phase, pct, analyzing) = control.phase().map_or(("starting", 0, false), |p| {
            (p.label(), p.percent(), p.is_run_or_later())
        });
        let beat = svc
            .store
            .heartbeat(&lease, lease_ms, Some(phase), i64::from(pct), analyzing)
            .await;
        let mut w = why
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match beat {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                tracing::info!("the job was cancelled or its lease lost: stopping the analysis");
                w.lost = true;
                w.stop(&control);
                return;
            }
            Err(e) if last_ok.elapsed() + svc.config.queue.heartbeat >= svc.config.queue.lease => {
                tracing::error!(error = %e, "no heartbeat for the length of the lease: giving the job up");
                w.lost = true;
                w.stop(&control);
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
        }
        if began.elapsed() > timeout && !w.timed_out {
            tracing::warn!(
                timeout_s = timeout.as_secs(),
                "job timed out: stopping the analysis"
            );
            w.timed_out = true;
            w.stop(&control);
        }
        if *stop.borrow() {
            let until =
                *grace_until.get_or_insert_with(|| Instant::now() + svc.config.shutdown_grace);
            if Instant::now() >= until && !w.shutdown {
                tracing::warn!(
                    "shutdown grace over: stopping the analysis and re-queueing the job"
                );
                w.shutdown = true;
                w.stop(&control);
            }
        }
    }
}

async fn run(svc: &Arc<Service>, lease: Lease, stop: &watch::Receiver<bool>) {
    let id = lease.job.id.clone();
    let spec: JobSpec = match serde_json::from_str(lease.job.request.as_deref().unwrap_or("")) {
        Ok(s) => s,
        Err(e) => {
            finish_failed(
                svc,
                &lease,
                &format!("the stored request of job {id} does not parse: {e}"),
                false,
            )
            .await;
            return;
        }
    };
    let mut work = match work(svc, &lease.job, &spec).await {
        Ok(w) => w,
        Err(e) => {
            let transient = e.kind() != ErrorKind::BadInput;
            finish_failed(svc, &lease, &e.to_string(), transient).await;
            return;
        }
    };
    // the organisation's settings: its allow-list (again), its signing
    // key when the job signs, its own login for the registry (else
    // anonymous; never another's, never the operator's)
    let org_id = lease.job.org_id.clone();
    let credentials = match crate::tenant::admit_job(svc, &org_id, &spec).await {
        Ok(()) => crate::tenant::pull_credentials(svc, &org_id, &spec.image_ref).await,
        Err(e) => Err(e),
    };
    match credentials {
        Ok(c) => work.image_mut().credentials = c,
        Err(e) => {
            let transient = e.kind() != ErrorKind::BadInput;
            finish_failed(svc, &lease, &e.to_string(), transient).await;
            return;
        }
    }
    tracing::info!(image = %spec.image_ref, "analysis started");
    let control = JobControl::for_tenant(&org_id);
    svc.register_local(&id, lease.token, &control);
    let began = Instant::now();
    let timeout =
        Duration::from_millis(lease.job.timeout_ms.max(1) as u64).min(svc.config.queue.job_timeout);
    let why = Arc::new(Mutex::new(Stopped::default()));
    let (done_tx, done_rx) = watch::channel(false);
    let keeper = tokio::spawn(keep_lease(
        Arc::clone(svc),
        lease.clone(),
        control.clone(),
        Arc::clone(&why),
        stop.clone(),
        done_rx,
        timeout,
    ));
    let analyzer = Arc::clone(&svc.analyzer);
    let c = control.clone();
    let mut handle = tokio::task::spawn_blocking(move || match &work {
        Work::Analyze(request) => analyzer.analyze(request, &c),
        Work::Reevaluate(request) => analyzer.reevaluate(request, &c),
    });
    let result = loop {
        tokio::select! {
            r = &mut handle => break Some(r),
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                let since = why.lock().ok().and_then(|w| w.since);
                if since.is_some_and(|t| t.elapsed() > ABANDON_AFTER) {
                    tracing::error!("the analysis ignored its cancellation for {ABANDON_AFTER:?}: abandoning it");
                    break None;
                }
            }
        }
    };
    let why = why
        .lock()
        .map(|w| Stopped {
            since: w.since,
            ..*w
        })
        .unwrap_or_default();
    // stopped: cancelled by us (or abandoned after ignoring it)
    let stopped =
        result.is_none() || matches!(&result, Some(Ok(Err(e))) if e.kind() == ErrorKind::Cancelled);
    let outcome = match result {
        Some(Ok(Ok(output))) if !why.lost => {
            // sign (and attach) before anything is recorded: a job that
            // asked for an attestation completes only with it
            // bounded: a registry the tenant names must not hold a worker
            // (and its lease) for ever; a job cancelled meanwhile pushes
            // nothing
            let publishing = async {
                if control.is_cancelled() {
                    return None;
                }
                tokio::time::timeout(
                    PUBLISH_TIMEOUT,
                    crate::tenant::publish(svc, &org_id, &spec, &output),
                )
                .await
                .ok()
            };
            let published = match publishing.await {
                Some(Ok(p)) => Ok(p),
                Some(Err(e)) => {
                    tracing::warn!(retriable = e.is_retriable(), "{e}");
                    finish_failed(svc, &lease, &e.to_string(), e.is_retriable()).await;
                    Err(())
                }
                None if control.is_cancelled() => {
                    tracing::info!("cancelled before signing and attaching; results discarded");
                    Err(())
                }
                None => {
                    let what = format!(
                        "signing and attaching the VEX of job {id} took longer than {} s",
                        PUBLISH_TIMEOUT.as_secs()
                    );
                    tracing::warn!("{what}");
                    finish_failed(svc, &lease, &what, true).await;
                    Err(())
                }
            };
            match published {
                Err(()) => "failed",
                Ok(published) => match store_results(svc, &lease, &spec, output, published).await {
                    Ok(true) => {
                        tracing::info!(secs = began.elapsed().as_secs_f64(), "analysis complete");
                        "complete"
                    }
                    Ok(false) => {
                        tracing::info!("lease lost before completion; results discarded");
                        "discarded"
                    }
                    Err(e) => {
                        finish_failed(
                            svc,
                            &lease,
                            &format!("storing the results of job {id}: {e}"),
                            true,
                        )
                        .await;
                        "failed"
                    }
                },
            }
        }
        Some(Ok(Ok(_))) | None if why.lost => {
            tracing::info!("the job was cancelled or taken over; results discarded");
            "discarded"
        }
        _ if stopped && why.timed_out => {
            finish_failed(
                svc,
                &lease,
                &format!("timed out after {} s", timeout.as_secs()),
                false,
            )
            .await;
            "timed_out"
        }
        _ if stopped && why.shutdown => {
            match svc
                .store
                .release(&lease, "the worker shut down; re-queued")
                .await
            {
                Ok(true) => tracing::info!("job re-queued"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "re-queueing failed; the lease will expire"),
            }
            "requeued"
        }
        Some(Ok(Err(e))) if e.kind() == ErrorKind::Cancelled => {
            tracing::info!("analysis cancelled");
            "cancelled"
        }
        Some(Ok(Err(e))) if e.kind() == ErrorKind::BadInput => {
            finish_failed(svc, &lease, e.message(), false).await;
            "rejected"
        }
        Some(Ok(Err(e))) => {
            tracing::warn!(kind = %e.kind(), "analysis failed: {e}");
            finish_failed(svc, &lease, e.message(), true).await;
            "failed"
        }
        Some(Err(join)) => {
            finish_failed(
                svc,
                &lease,
                &format!("the analysis of job {id} panicked: {join}"),
                true,
            )
            .await;
            "panicked"
        }
        // unreachable in practice: abandoning needs a stop reason
        Some(Ok(Ok(_))) | None => "discarded",
    };
    let _ = done_tx.send(true);
    let _ = keeper.await;
    svc.unregister_local(&id, lease.token);
    svc.metrics
        .job_duration
        .get_or_create(&OutcomeLabel {
            outcome: outcome.into(),
        })
        .observe(began.elapsed().as_secs_f64());
}

/// What a job asks of the analyzer.
enum Work {
    /// Fetch, run, trace and decide.
    Analyze(Box<vexxy_analyze::AnalysisRequest>),
    /// Decide a new report against a stored execution profile.
    Reevaluate(Box<vexxy_analyze::ReevaluateRequest>),
}

impl Work {
    fn image_mut(&mut self) -> &mut vexxy_analyze::ImageRequest {
        match self {
            Self::Analyze(r) => &mut r.image,
            Self::Reevaluate(r) => &mut r.image,
        }
    }
}

/// The typed work a stored job stands for. A re-decision reads the
/// execution profile its source job stored (the same organisation's).
async fn work(
    svc: &Service,
    job: &vexxy_store::Job,
    spec: &JobSpec,
) -> Result<Work, vexxy_analyze::AnalyzeError> {
    use vexxy_analyze::AnalyzeError;
    let Some(source) = &spec.reevaluate_from else {
        return crate::job::request(spec, &svc.config.analysis).map(|r| Work::Analyze(Box::new(r)));
    };
    let owned = svc
        .store
        .job(Some(&job.org_id), source)
        .await
        .map_err(|e| AnalyzeError::transient(format!("reading job {source}: {e}")))?;
    if owned.is_none() {
        return Err(AnalyzeError::bad_input(format!(
            "job {source}, whose profile this re-decision uses, does not exist"
        )));
    }
    let name = vexxy_analyze::ArtifactKind::Profile.file_name();
    let artifact = svc
        .store
        .artifacts(source)
        .await
        .map_err(|e| AnalyzeError::transient(format!("reading the artifacts of job {source}: {e}")))?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            AnalyzeError::bad_input(format!(
                "job {source} has no stored execution profile (it passed retention, or the job never ran the image)"
            ))
        })?;
    let bytes = svc
        .evidence
        .get(&artifact.digest)
        .await
        .map_err(|e| AnalyzeError::transient(format!("reading {name} of job {source}: {e}")))?
        .ok_or_else(|| {
            AnalyzeError::bad_input(format!("the {name} of job {source} is no longer stored"))
        })?;
    let mut origin = format!("job {source} {name}");
    let profile = vexxy_profile::parse(&bytes, &origin)
        .map_err(|e| AnalyzeError::internal(format!("{origin}: {e}")))?;
    // with production evidence (node agents' uploads), decided from both
    if spec.production_profile.is_some() {
        origin.push_str(" with the image's production profiles");
    }
    let profile = crate::production::with_production(profile, spec)?;
    crate::job::reevaluate_request(spec, &svc.config.analysis, profile, origin)
        .map(|r| Work::Reevaluate(Box::new(r)))
}

/// Stores every file, then completes the job (fenced). `Ok(false)`: the
/// lease was lost meanwhile and nothing was recorded (the blobs stay for
/// the sweeper).
async fn store_results(
    svc: &Arc<Service>,
    lease: &Lease,
    spec: &JobSpec,
    outcome: vexxy_analyze::AnalysisOutcome,
    published: Option<crate::tenant::Published>,
) -> Result<bool, vexxy_store::StoreError> {
    let summary = Summary::of(&outcome);
    // the image's statements, stored with the completion; what they
    // change is told in the webhook
    let rules = crate::review::settings(&svc.store.review_settings(&lease.job.org_id).await?);
    let record = crate::review::analysis_record(&lease.job, spec, &outcome, &rules);
    let mut artifacts = Vec::new();
    let mut attestation = None;
    if let Some(p) = published {
        if let Some(bytes) = p.envelope {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            let size = bytes.len() as i64;
            svc.store.touch_blob(&digest, size).await?;
            svc.evidence.put(bytes).await?;
            artifacts.push(Artifact {
                media_type: crate::tenant::ATTESTATION_MEDIA_TYPE.to_owned(),
                name: crate::tenant::ATTESTATION_FILE.to_owned(),
                digest,
                size,
            });
        }
        attestation = serde_json::to_string(&p.attestation).ok();
    }
    // a production re-decision keeps the evidence it was given
    for (name, doc) in [
        (crate::production::PRODUCTION_FILE, &spec.production_profile),
        (crate::production::UPLOAD_FILE, &spec.production_upload),
    ] {
        let Some(doc) = doc else { continue };
        let bytes = doc.json().as_bytes().to_vec();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let size = bytes.len() as i64;
        svc.store.touch_blob(&digest, size).await?;
        svc.evidence.put(bytes).await?;
        artifacts.push(Artifact {
            media_type: vexxy_analyze::ArtifactKind::Profile.media_type().to_owned(),
            name: name.to_owned(),
            digest,
            size,
        });
    }
    for (kind, bytes) in outcome.artifacts {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let size = bytes.len() as i64;
        svc.store.touch_blob(&digest, size).await?;
        let stored = svc.evidence.put(bytes).await?;
        debug_assert_eq!(stored, digest);
        artifacts.push(Artifact {
            media_type: kind.media_type().to_owned(),
            name: kind.file_name().to_owned(),
            digest,
            size,
        });
    }
    let digest = outcome
        .product
        .digest
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| spec.image_digest.clone());
    // the callback is built in the completing transaction, from what
    // recording the statements changed there
    let webhook = spec.callback_url.as_ref().map(|url| -> WebhookFor<'_> {
        let (job, digest, summary) = (&lease.job, digest.clone(), summary.clone());
        Box::new(move |changed| NewDelivery {
            url: url.clone(),
            payload: payload(
                job,
                spec,
                "complete",
                digest,
                Some(summary),
                None,
                changed.cloned().map(changes),
            ),
        })
    });
    let summary_json = serde_json::to_string(&summary).unwrap_or_else(|_| "{}".into());
    let image = record.as_ref().map(|r| r.image_digest.clone());
    let done = svc
        .store
        .complete_job(
            lease,
            Completion {
                image_digest: digest.as_deref(),
                artifacts: &artifacts,
                summary: &summary_json,
                attestation: attestation.as_deref(),
                webhook,
                analysis: record,
            },
        )
        .await?;
    if !done.is_done() {
        return Ok(false);
    }
    // the image's current VEX, re-issued from its rows and the human
    // decisions about them (a failure here leaves the job complete and
    // the statements stored: the next decision or analysis issues it)
    if let Some(image) = image {
        let cause = if spec.reevaluate_from.is_some() {
            crate::review::Cause::Reevaluation
        } else {
            crate::review::Cause::Analysis
        };
        let issued = crate::review::reissue(
            svc,
            &lease.job.org_id,
            &image,
            cause,
            Some(&lease.job.id),
            "vexxy",
        )
        .await;
        match issued {
            Ok(Some(v)) => {
                tracing::info!(image = %image, version = v.version, "issued the image's VEX")
            }
            Ok(None) => tracing::info!(image = %image, "no finding present: no VEX issued"),
            Err(e) => tracing::error!(image = %image, error = %e, "issuing the image's VEX failed"),
        }
    }
    Ok(true)
}

fn changes(c: vexxy_store::review::ChangeSet) -> crate::api_review::Changes {
    crate::api_review::Changes {
        added: c.added,
        removed: c.removed,
        changed: c.changed,
        kept_decisions: c.kept_decisions,
        offered: c.offered,
    }
}

async fn finish_failed(svc: &Service, lease: &Lease, error: &str, transient: bool) {
    let backoff = svc.config.queue.retries().delay(lease.job.attempts);
    let mut failed = lease.job.clone();
    failed.error = Some(error.to_owned());
    let webhook = failure_webhook(&failed);
    match svc
        .store
        .fail(lease, error, transient, backoff.as_millis() as i64, webhook)
        .await
    {
        Ok(Some(state)) => tracing::warn!(%state, error, "attempt failed"),
        Ok(None) => tracing::info!("lease lost; failure not recorded"),
        Err(e) => {
            tracing::error!(error = %e, "recording the failure failed; the lease will expire")
        }
    }
}

fn payload(
    job: &vexxy_store::Job,
    spec: &JobSpec,
    status: &str,
    image_digest: Option<String>,
    summary: Option<Summary>,
    error: Option<&str>,
    changes: Option<crate::api_review::Changes>,
) -> String {
    let body = WebhookPayload {
        event: format!(
            "analysis.{}",
            if status == "complete" {
                "completed"
            } else {
                "failed"
            }
        ),
        job_id: job.id.clone(),
        status: status.to_owned(),
        image_ref: spec.image_ref.clone(),
        image_digest,
        summary,
        error: error.map(str::to_owned),
        results_url: format!("/api/v1/analysis/{}/results", job.id),
        finished_at: rfc3339(vexxy_store::now_ms()),
        changes,
    };
    serde_json::to_string(&body).unwrap_or_else(|_| "{}".into())
}

/// The callback of a job that failed (its request names one).
pub(crate) fn failure_webhook(job: &vexxy_store::Job) -> Option<NewDelivery> {
    let spec: JobSpec = serde_json::from_str(job.request.as_deref()?).ok()?;
    let url = spec.callback_url.clone()?;
    Some(NewDelivery {
        url,
        payload: payload(
            job,
            &spec,
            "failed",
            spec.image_digest.clone(),
            None,
            job.error.as_deref(),
            None,
        ),
    })
}
