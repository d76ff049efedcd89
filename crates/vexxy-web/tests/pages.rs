//! The web UI through `tower::ServiceExt::oneshot` on a seeded SQLite
//! store (and the real PostgreSQL): signing in and out, CSRF, the
//! security headers on every answer, escaping of attacker-shaped text,
//! tenant isolation, decisions and bulk approvals from the forms (the VEX
//! re-issued), submissions, and the dashboard's numbers against the API.
//! The browser tests (`crates/vexxy/tests/web_ui.rs`) drive the same
//! pages in Chromium against the real `vexxy serve`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, HeaderMap, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt as _;
use scraper::{Html, Selector};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use vexxy_analyze::{AnalysisOutcome, AnalysisRequest, AnalyzeError};
use vexxy_model::{
    Confidence, Decider, Ecosystem, Evidence, EvidenceSource, Finding, FixState, Justification,
    PackageRef, Severity, Verdict, Vulnerability,
};
use vexxy_review::StatementRecord;
use vexxy_server::{Analyzer, JobControl, Service, ServiceConfig};
use vexxy_store::{
    jobs::{Completion, NewJob, Submitted},
    review::AnalysisRecord,
    tenants::month_window,
    EvidenceStore, LocalStore, Store, Tier,
};

/// A description an attacker controls (it comes from the scanner report).
const HOSTILE: &str =
    "Overflow <script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\"> & \"quotes\"";

/// No analysis runs in these tests: analyses are stored directly.
struct Idle;

impl Analyzer for Idle {
    fn analyze(
        &self,
        _: &AnalysisRequest,
        _: &JobControl,
    ) -> Result<AnalysisOutcome, AnalyzeError> {
        Err(AnalyzeError::internal("no analysis in the web tests"))
    }
}

struct Harness {
    svc: Arc<Service>,
    app: Router,
    _dir: tempfile::TempDir,
    _db: Option<vexxy_testkit::pg::TestDatabase>,
}

struct Org {
    id: String,
    key: String,
    key_id: String,
}

async fn harness(pg: bool) -> Option<Harness> {
    let dir = tempfile::tempdir().unwrap();
    let (store, db) = if pg {
        let db = vexxy_testkit::require_postgres("web pages")?;
        (Store::open(&db.url()).await.unwrap(), Some(db))
    } else {
        (Store::open_sqlite_in(dir.path()).await.unwrap(), None)
    };
    let evidence = EvidenceStore::Local(LocalStore::new(dir.path().join("evidence")));
    let svc = Service::new(store, evidence, Arc::new(Idle), ServiceConfig::default());
    let app = vexxy_server::router(svc.clone()).merge(vexxy_web::router(svc.clone()));
    Some(Harness {
        svc,
        app,
        _dir: dir,
        _db: db,
    })
}

async fn org(h: &Harness, name: &str) -> Org {
    let o = h
        .svc
        .store
        .create_org(name, Tier::Professional, None)
        .await
        .unwrap();
    let key = h
        .svc
        .store
        .create_key_for(&o.id, "web", Some(&format!("reviewer@{name}.example")))
        .await
        .unwrap();
    Org {
        id: o.id,
        key: key.secret,
        key_id: key.id,
    }
}

fn digest_of(reference: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(reference.as_bytes()))
    )
}

fn finding(id: &str, package: &str, severity: Severity, description: &str) -> Finding {
    Finding {
        vulnerability: Vulnerability {
            id: id.to_owned(),
            severity,
            description: Some(description.to_owned()),
            epss: Some(0.12),
            ..Vulnerability::default()
        },
        package: PackageRef {
            name: package.to_owned(),
            version: "1.0-1".to_owned(),
            ecosystem: Ecosystem::Deb,
            purl: Some(
                format!("pkg:deb/debian/{package}@1.0-1?arch=amd64")
                    .parse()
                    .unwrap(),
            ),
            source_name: None,
        },
        fixed_versions: Vec::new(),
        fix_state: FixState::NotFixed,
        reported_by: Some("grype".to_owned()),
    }
}

fn records(description: &str) -> Vec<StatementRecord> {
    let by = || Decider::automated("vexxy");
    vec![
        StatementRecord::of(
            &finding("CVE-2024-0001", "libfoo1", Severity::High, description),
            Verdict::not_affected(Justification::VulnerableCodeNotInExecutePath, by())
                .with_confidence(Confidence::new(0.55).unwrap())
                .with_evidence(
                    Evidence::new(
                        "runtime",
                        EvidenceSource::Runtime,
                        "libfoo.so.1 was never mapped during a 30 s run <b>bold</b>",
                    )
                    .about("/usr/lib/libfoo.so.1")
                    .fact("run", "30 s"),
                )
                .with_notes("nothing the image runs loads libfoo"),
        ),
        StatementRecord::of(
            &finding(
                "CVE-2024-0002",
                "libbar2",
                Severity::Critical,
                "a plain description",
            ),
            Verdict::affected("upgrade libbar2".to_owned(), by())
                .with_confidence(Confidence::new(0.9).unwrap())
                .with_notes("libbar is loaded by the entrypoint"),
        ),
        StatementRecord::of(
            &finding(
                "CVE-2024-0003",
                "libbaz3",
                Severity::Medium,
                "another description",
            ),
            Verdict::under_investigation(by()).with_notes("no reachability facts"),
        ),
    ]
}

/// An analysis of `reference` stored as the worker stores one: a job
/// claimed and completed with its statements. Returns the digest.
async fn analysed(h: &Harness, org: &Org, reference: &str, description: &str) -> String {
    let store = &h.svc.store;
    let o = store.org(&org.id).await.unwrap();
    let digest = digest_of(reference);
    let spec = json!({
        "image_ref": reference, "image_digest": null, "duration_secs": 30,
        "environment": {}, "command": [], "test_script": null, "ports": [80],
        "scan_report": null, "sbom": null, "callback_url": null,
    });
    let job = match store
        .submit(
            NewJob {
                org_id: org.id.clone(),
                dedupe_key: format!("web-{reference}"),
                image_ref: reference.to_owned(),
                image_digest: None,
                request: spec.to_string(),
                callback_url: None,
                priority: o.tier.priority(),
                max_attempts: 1,
                timeout_ms: 3_600_000,
                key_id: None,
            },
            o.quota(),
            month_window(vexxy_store::now_ms()),
        )
        .await
        .unwrap()
    {
        Submitted::Created(j) => j,
        other => panic!("{other:?}"),
    };
    let lease = store.claim("web-tests", 3_600_000).await.unwrap().unwrap();
    assert_eq!(lease.job.id, job.id);
    let rules = vexxy_server::review::settings(&store.review_settings(&org.id).await.unwrap());
    let done = store
        .complete_job(
            &lease,
            Completion {
                image_digest: Some(&digest),
                artifacts: &[],
                summary: "{}",
                attestation: None,
                webhook: None,
                analysis: Some(AnalysisRecord {
                    org_id: org.id.clone(),
                    image_digest: digest.clone(),
                    repository: reference.split(':').next().unwrap().to_owned(),
                    reference: reference.to_owned(),
                    job_id: job.id.clone(),
                    full_run: true,
                    statements: records(description)
                        .iter()
                        .map(|r| vexxy_server::review::new_statement(r, &rules))
                        .collect(),
                }),
            },
        )
        .await
        .unwrap();
    assert!(done.is_done());
    digest
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap_or("").to_owned())
    }
    fn select(&self, css: &str) -> Vec<String> {
        let doc = self.html();
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel).map(|e| e.html()).collect()
    }
    fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let doc = self.html();
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel)
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_owned))
    }
    fn text(&self, css: &str) -> String {
        let doc = self.html();
        let sel = Selector::parse(css).unwrap();
        doc.select(&sel)
            .map(|e| e.text().collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(app: &Router, uri: &str, session: Option<&str>) -> Answer {
    let mut req = Request::get(uri);
    if let Some(s) = session {
        req = req.header(header::COOKIE, format!("vexxy_session={s}"));
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

async fn api(app: &Router, uri: &str, key: &str) -> (HeaderMap, Value) {
    let a = send(
        app,
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
    (a.headers, serde_json::from_str(&a.body).unwrap())
}

async fn post_form(
    app: &Router,
    uri: &str,
    session: Option<&str>,
    cookies: &str,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut cookie = cookies.to_owned();
    if let Some(s) = session {
        cookie = format!("vexxy_session={s}; {cookie}");
    }
    let mut req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "vexxy.test")
        .header(header::COOKIE, cookie);
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    send(app, req.body(Body::from(body)).unwrap()).await
}

/// Signs in through the form; returns the session token.
async fn sign_in(app: &Router, key: &str) -> String {
    let page = get(app, "/login", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let login = page.cookie("vexxy_login").unwrap();
    let csrf = page.attr("#login input[name=_csrf]", "value").unwrap();
    assert_eq!(login, csrf, "double-submit: the cookie and the field agree");
    let done = post_form(
        app,
        "/login",
        None,
        &format!("vexxy_login={login}"),
        &[("api_key", key), ("_csrf", &csrf), ("next", "/review")],
        Some("http://vexxy.test"),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/review");
    let cookie = done
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("vexxy_session="))
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    done.cookie("vexxy_session").unwrap()
}

fn csrf_of(page: &Answer) -> String {
    page.attr("#sign-out input[name=_csrf]", "value").unwrap()
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = super::harness(false).await.unwrap();
                super::$name(h).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = super::harness(true).await else { return };
                super::$name(h).await;
            })*
        }
    };
}

both!(
    signing_in_and_out,
    every_answer_carries_the_security_headers,
    attacker_text_renders_as_text,
    organisations_see_only_their_own,
    a_decision_from_the_form_reissues_the_vex,
    the_queue_approves_rows_all_or_nothing,
    a_submission_is_checked_like_the_api_s,
);

async fn signing_in_and_out(h: Harness) {
    let a = org(&h, "acme").await;
    analysed(&h, &a, "registry.example.com/app:1", "plain").await;
    // not signed in: to the sign-in page, coming back here
    let r = get(&h.app, "/images?search=app", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?next=%2Fimages%3Fsearch%3Dapp");
    // no sign-in cookie: refused (another site cannot sign a browser in)
    let page = get(&h.app, "/login", None).await;
    let csrf = page.attr("#login input[name=_csrf]", "value").unwrap();
    let r = post_form(
        &h.app,
        "/login",
        None,
        "",
        &[("api_key", &a.key), ("_csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.cookie("vexxy_session").is_none());
    // a wrong key: 401, the form again with the error
    let r = post_form(
        &h.app,
        "/login",
        None,
        &format!("vexxy_login={csrf}"),
        &[("api_key", "vxk_wrong"), ("_csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text(".error").contains("not valid"), "{}", r.body);
    assert!(r.cookie("vexxy_session").is_none());
    // an outside redirect target is not followed
    let r = post_form(
        &h.app,
        "/login",
        None,
        &format!("vexxy_login={csrf}"),
        &[
            ("api_key", &a.key),
            ("_csrf", &csrf),
            ("next", "//evil.example/"),
        ],
        None,
    )
    .await;
    assert_eq!(r.location(), "/");
    // a sign-in body is small: a large one is refused unread
    let big = format!("api_key={}&_csrf={csrf}", "a".repeat(1 << 20));
    let r = send(
        &h.app,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("vexxy_login={csrf}"))
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // a script's JSON request is told, not redirected
    let r = get(&h.app, "/jobs/job_x/status.json", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("unauthorized"), "{}", r.body);
    let session = sign_in(&h.app, &a.key).await;
    // signing in again ends the browser's earlier session
    let again = {
        let page = get(&h.app, "/login", None).await;
        let login = page.cookie("vexxy_login").unwrap();
        let r = post_form(
            &h.app,
            "/login",
            Some(&session),
            &format!("vexxy_login={login}"),
            &[("api_key", &a.key), ("_csrf", &login)],
            None,
        )
        .await;
        r.cookie("vexxy_session").unwrap()
    };
    assert_eq!(
        get(&h.app, "/", Some(&session)).await.status,
        StatusCode::SEE_OTHER
    );
    let session = again;
    let dash = get(&h.app, "/", Some(&session)).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert_eq!(dash.text("#org-name"), "acme");
    // the dashboard's numbers are the API's
    let (_, api) = api(&h.app, "/api/v1/dashboard", &a.key).await;
    for m in [
        "images_seen",
        "images_analysed",
        "images_with_vex",
        "vex_coverage",
        "findings",
        "noise_reduction",
        "backlog",
        "decisions",
    ] {
        let shown: f64 = dash
            .attr(&format!("[data-metric={m}]"), "data-value")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(Some(shown), api[m].as_f64(), "{m}");
    }
    for (status, n) in api["by_status"].as_object().unwrap() {
        let shown = dash
            .attr(&format!("[data-status-count={status}]"), "data-value")
            .unwrap();
        assert_eq!(shown, n.to_string(), "{status}");
    }
    assert_eq!(api["findings"], 3);
    assert!(!dash.select("svg#weekly-chart title").is_empty());
    // sign-out needs the CSRF token
    let r = post_form(
        &h.app,
        "/logout",
        Some(&session),
        "",
        &[("_csrf", "0")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&h.app, "/", Some(&session)).await.status,
        StatusCode::OK
    );
    let r = post_form(
        &h.app,
        "/logout",
        Some(&session),
        "",
        &[("_csrf", &csrf_of(&dash))],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    assert_eq!(r.cookie("vexxy_session").as_deref(), Some(""));
    // the old cookie is worthless now
    let r = get(&h.app, "/", Some(&session)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // and a revoked key ends its sessions
    let s2 = sign_in(&h.app, &a.key).await;
    h.svc.store.revoke_key(&a.key_id).await.unwrap();
    assert_eq!(
        get(&h.app, "/", Some(&s2)).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn every_answer_carries_the_security_headers(h: Harness) {
    let a = org(&h, "acme").await;
    let digest = analysed(&h, &a, "registry.example.com/app:1", "plain").await;
    let session = sign_in(&h.app, &a.key).await;
    let (_, list) = api(
        &h.app,
        &format!("/api/v1/statements?image={digest}"),
        &a.key,
    )
    .await;
    let id = list["statements"][0]["id"].as_str().unwrap().to_owned();
    for uri in [
        "/login".to_owned(),
        "/".to_owned(),
        "/images".to_owned(),
        format!("/images/{digest}"),
        format!("/statements/{id}"),
        "/review".to_owned(),
        "/submit".to_owned(),
        "/compare".to_owned(),
        format!("/compare?a={digest}&b={digest}"),
        "/images/sha256:nope".to_owned(),
        "/jobs/nope".to_owned(),
        "/static/app.js".to_owned(),
        "/static/app.css".to_owned(),
    ] {
        let r = get(&h.app, &uri, Some(&session)).await;
        let csp = r
            .headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{uri}: no CSP"));
        assert_eq!(csp, vexxy_web::CONTENT_SECURITY_POLICY, "{uri}");
        assert!(!csp.contains("unsafe"), "{uri}");
        assert_eq!(
            r.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{uri}"
        );
        if uri.starts_with("/static") {
            continue;
        }
        // no inline script or style anywhere: the one script is ours
        let scripts = r.select("script");
        assert_eq!(scripts.len(), 1, "{uri}: {scripts:?}");
        assert_eq!(
            r.attr("script", "src").as_deref(),
            Some("/static/app.js"),
            "{uri}"
        );
        assert!(r.select("[style]").is_empty(), "{uri}");
        assert!(r.select("style").is_empty(), "{uri}");
        let doc = r.html();
        let handlers: Vec<String> = doc
            .root_element()
            .descendants()
            .filter_map(scraper::ElementRef::wrap)
            .flat_map(|e| {
                e.value()
                    .attrs()
                    .map(|(k, _)| k.to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|k| k.starts_with("on"))
            .collect();
        assert!(handlers.is_empty(), "{uri}: inline handlers {handlers:?}");
    }
    // unknown pages and ids are 404 pages
    let r = get(&h.app, "/images/sha256:nope", Some(&session)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.text(".error").is_empty());
}

async fn attacker_text_renders_as_text(h: Harness) {
    let a = org(&h, "acme").await;
    let digest = analysed(&h, &a, "registry.example.com/app:1", HOSTILE).await;
    let session = sign_in(&h.app, &a.key).await;
    let page = get(&h.app, &format!("/images/{digest}"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    let (_, list) = api(
        &h.app,
        &format!("/api/v1/statements?image={digest}&vulnerability=CVE-2024-0001"),
        &a.key,
    )
    .await;
    let id = list["statements"][0]["id"].as_str().unwrap().to_owned();
    let detail = get(&h.app, &format!("/statements/{id}"), Some(&session)).await;
    for p in [&page, &detail] {
        assert_eq!(p.select("script").len(), 1, "only our own script");
        assert!(
            p.select("img").is_empty(),
            "no element from the description"
        );
        assert!(p.select("b").is_empty(), "no element from the evidence");
        // the text is there, as text
        assert!(
            p.text(".desc").contains("<script>window.__xss=1</script>"),
            "{}",
            p.body
        );
        assert!(!p.body.contains("<script>window"), "escaped in the markup");
    }
    assert!(page.text(".evidence-list").contains("<b>bold</b>"));
}

async fn organisations_see_only_their_own(h: Harness) {
    let a = org(&h, "acme").await;
    let b = org(&h, "globex").await;
    let digest = analysed(&h, &a, "registry.example.com/app:1", "plain").await;
    let (_, list) = api(
        &h.app,
        &format!("/api/v1/statements?image={digest}"),
        &a.key,
    )
    .await;
    let id = list["statements"][0]["id"].as_str().unwrap().to_owned();
    let sb = sign_in(&h.app, &b.key).await;
    for uri in [
        format!("/images/{digest}"),
        format!("/statements/{id}"),
        format!("/images/{digest}/vex/1.json"),
        format!("/compare?a={digest}&b={digest}"),
    ] {
        let r = get(&h.app, &uri, Some(&sb)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let images = get(&h.app, "/images", Some(&sb)).await;
    assert!(images.select("#images tbody tr").is_empty());
    let queue = get(&h.app, "/review", Some(&sb)).await;
    assert!(queue.select("#queue tbody tr").is_empty());
    // B cannot decide A's statement either
    let csrf = csrf_of(&queue);
    let r = post_form(
        &h.app,
        &format!("/statements/{id}/decide"),
        Some(&sb),
        "",
        &[
            ("_csrf", &csrf),
            ("action", "approve"),
            ("reason", "mine now"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (_, detail) = api(&h.app, &format!("/api/v1/statements/{id}"), &a.key).await;
    assert!(detail["decisions"].as_array().unwrap().is_empty());
}

async fn a_decision_from_the_form_reissues_the_vex(h: Harness) {
    let a = org(&h, "acme").await;
    let digest = analysed(&h, &a, "registry.example.com/app:1", "plain").await;
    let session = sign_in(&h.app, &a.key).await;
    let image = get(&h.app, &format!("/images/{digest}"), Some(&session)).await;
    let before: i64 = image
        .attr("[data-metric=vex_version]", "data-value")
        .unwrap()
        .parse()
        .unwrap();
    let articles = image.select("article.statement");
    assert_eq!(articles.len(), 3);
    let (_, list) = api(
        &h.app,
        &format!("/api/v1/statements?image={digest}&status=affected"),
        &a.key,
    )
    .await;
    let id = list["statements"][0]["id"].as_str().unwrap().to_owned();
    let page = get(&h.app, &format!("/statements/{id}"), Some(&session)).await;
    let csrf = page.attr("#decision input[name=_csrf]", "value").unwrap();
    let version = page
        .attr("#decision input[name=expected_version]", "value")
        .unwrap();
    let form = |reason: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("expected_version", version.clone()),
            ("action", "override".to_owned()),
            ("status", "not_affected".to_owned()),
            (
                "justification",
                "inline_mitigations_already_exist".to_owned(),
            ),
            ("reason", reason.to_owned()),
        ]
    };
    let send_form = |fields: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let app = h.app.clone();
        let session = session.clone();
        let id = id.clone();
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(
                &app,
                &format!("/statements/{id}/decide"),
                Some(&session),
                "",
                &f,
                origin,
            )
            .await
        }
    };
    // no reason: 422, the field named, nothing recorded
    let r = send_form(form(""), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text(".error").contains("reason"), "{}", r.text(".error"));
    // a wrong token, or another origin: refused
    let mut bad = form("x");
    bad[0].1 = "0".repeat(64);
    assert_eq!(send_form(bad, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        send_form(form("x"), Some("http://evil.example"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let (_, detail) = api(&h.app, &format!("/api/v1/statements/{id}"), &a.key).await;
    assert!(detail["decisions"].as_array().unwrap().is_empty());
    // recorded: back to the image, the new version said
    let r = send_form(
        form("the WAF blocks the endpoint"),
        Some("http://vexxy.test"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let next = r.location().to_owned();
    assert!(
        next.starts_with(&format!("/images/{digest}?decided={id}&vex=")),
        "{next}"
    );
    let back = get(&h.app, &next, Some(&session)).await;
    let issued: i64 = back
        .attr("#flash", "data-vex-version")
        .unwrap()
        .parse()
        .unwrap();
    assert!(issued > before, "{issued} after {before}");
    let (headers, vex) = api(&h.app, &format!("/api/v1/images/{digest}/vex"), &a.key).await;
    assert_eq!(
        headers["x-vex-version"].to_str().unwrap(),
        issued.to_string()
    );
    assert_eq!(vex["version"], issued);
    let (_, detail) = api(&h.app, &format!("/api/v1/statements/{id}"), &a.key).await;
    assert_eq!(detail["status"], "not_affected");
    assert_eq!(
        detail["decisions"][0]["reason"],
        "the WAF blocks the endpoint"
    );
    assert_eq!(detail["decisions"][0]["author"], "reviewer@acme.example");
    // the history lists it, downloadable
    assert!(!back
        .select(&format!("#history tr[data-version=\"{issued}\"]"))
        .is_empty());
    let dl = get(
        &h.app,
        &format!("/images/{digest}/vex/{issued}.json"),
        Some(&session),
    )
    .await;
    assert_eq!(dl.status, StatusCode::OK);
    assert!(dl.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    // a download keeps its own sandboxing policy, never the pages'
    assert_eq!(
        dl.headers[header::CONTENT_SECURITY_POLICY],
        "sandbox; default-src 'none'"
    );
    assert_eq!(dl.headers[header::CONTENT_TYPE], "application/json");
    // the same form again, at the old version: 409, said on the page
    let r = send_form(form("again"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(!r.text(".error").is_empty());
    // refused for another reason, the page keeps the version the reviewer
    // saw: fixing the reason cannot quietly overwrite the newer decision
    let r = send_form(form(""), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.attr("#decision input[name=expected_version]", "value"),
        Some(version.clone())
    );
    // a form another site posted is refused whatever its token
    let fields = form("x");
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&f)
        .finish();
    let r = send(
        &h.app,
        Request::post(format!("/statements/{id}/decide"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, format!("vexxy_session={session}"))
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn the_queue_approves_rows_all_or_nothing(h: Harness) {
    let a = org(&h, "acme").await;
    let digest = analysed(&h, &a, "registry.example.com/app:1", "plain").await;
    let session = sign_in(&h.app, &a.key).await;
    let queue = get(&h.app, "/review", Some(&session)).await;
    let (_, api_queue) = api(&h.app, "/api/v1/review/queue?limit=1000", &a.key).await;
    let rows = queue.select("#queue tbody tr");
    assert_eq!(rows.len() as u64, api_queue["total"].as_u64().unwrap());
    assert!(rows.len() >= 2, "{rows:?}");
    let csrf = csrf_of(&queue);
    let doc = queue.html();
    let sel = Selector::parse("#queue input[name=ids]").unwrap();
    let ids: Vec<String> = doc
        .select(&sel)
        .map(|e| e.value().attr("value").unwrap().to_owned())
        .collect();
    // one of the selection changed meanwhile: nothing is recorded
    let stale = format!("{}@999", ids[0].split('@').next().unwrap());
    let r = post_form(
        &h.app,
        "/review/bulk",
        Some(&session),
        "",
        &[
            ("_csrf", &csrf),
            ("ids", &stale),
            ("ids", &ids[1]),
            ("action", "approve"),
            ("reason", "ok"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let (_, d) = api(&h.app, "/api/v1/dashboard", &a.key).await;
    assert_eq!(d["decisions"], 0);
    // a version that is not one: 422, nothing recorded
    let garbage = format!("{}@x", ids[0].split('@').next().unwrap());
    let r = post_form(
        &h.app,
        "/review/bulk",
        Some(&session),
        "",
        &[
            ("_csrf", &csrf),
            ("ids", &garbage),
            ("action", "approve"),
            ("reason", "ok"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // the same row selected twice is decided once
    let r = post_form(
        &h.app,
        "/review/bulk",
        Some(&session),
        "",
        &[
            ("_csrf", &csrf),
            ("ids", &ids[1]),
            ("ids", &ids[1]),
            ("action", "approve"),
            ("reason", "twice"),
        ],
        Some("http://vexxy.test"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("done=1&"), "{}", r.location());
    // approve one row with its own button
    let r = post_form(
        &h.app,
        "/review/bulk",
        Some(&session),
        "",
        &[
            ("_csrf", &csrf),
            ("approve_one", &ids[0]),
            ("reason", "checked the evidence"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("done=1&images=1"), "{}", r.location());
    let (_, d) = api(&h.app, "/api/v1/dashboard", &a.key).await;
    assert_eq!(d["decisions"], 2);
    let (_, vex) = api(&h.app, &format!("/api/v1/images/{digest}/vex"), &a.key).await;
    assert!(vex["version"].as_i64().unwrap() >= 1);
}

async fn a_submission_is_checked_like_the_api_s(h: Harness) {
    let a = org(&h, "acme").await;
    let session = sign_in(&h.app, &a.key).await;
    let page = get(&h.app, "/submit", Some(&session)).await;
    let csrf = page.attr("#submit input[name=_csrf]", "value").unwrap();
    let multipart = |report: &str| {
        let b = "----vexxyboundary";
        let mut body = String::new();
        for (name, value) in [
            ("_csrf", csrf.as_str()),
            ("image_ref", "registry.example.com/team/app:2"),
            ("duration_secs", "10"),
        ] {
            body.push_str(&format!(
                "--{b}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!(
            "--{b}\r\ncontent-disposition: form-data; name=\"report\"; filename=\"grype.json\"\r\ncontent-type: application/json\r\n\r\n{report}\r\n--{b}--\r\n"
        ));
        Request::post("/submit")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={b}"),
            )
            .header(header::COOKIE, format!("vexxy_session={session}"))
            .body(Body::from(body))
            .unwrap()
    };
    // a report that is not one: the page again, naming the field
    let r = send(&h.app, multipart("{\"matches\": 7}")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.text(".error").contains("scan_report"),
        "{}",
        r.text(".error")
    );
    let r = send(&h.app, multipart("not json")).await;
    assert!(r.status.is_client_error());
    let (_, jobs) = api(&h.app, "/api/v1/analysis", &a.key).await;
    assert_eq!(jobs["total"], 0, "nothing queued");
    // a real report: queued, on to the job's page
    let grype = json!({
        "matches": [{
            // larger than a page's body limit: a submission takes the API's
            "vulnerability": {"id": "CVE-2024-1", "severity": "High", "description": "a".repeat(200_000), "fix": {"versions": [], "state": "not-fixed"}},
            "artifact": {"name": "zlib1g", "version": "1:1.2.13.dfsg-1", "type": "deb", "purl": "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"}
        }],
        "descriptor": {"name": "grype", "version": "0.92.2"}
    });
    let r = send(&h.app, multipart(&grype.to_string())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job_page = r.location().to_owned();
    let job = job_page.strip_prefix("/jobs/").unwrap().to_owned();
    let p = get(&h.app, &job_page, Some(&session)).await;
    assert_eq!(
        p.attr("#job-status", "data-status").as_deref(),
        Some("queued")
    );
    let status = get(&h.app, &format!("/jobs/{job}/status.json"), Some(&session)).await;
    let status: Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["job_id"], job);
    assert_eq!(status["image_ref"], "registry.example.com/team/app:2");
    let (_, jobs) = api(&h.app, "/api/v1/analysis", &a.key).await;
    assert_eq!(jobs["total"], 1);
}
