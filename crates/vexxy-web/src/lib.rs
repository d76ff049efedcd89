//! The web UI of `vexxy serve`: server-rendered pages for people who
//! triage in a browser — the dashboard, images and their evidence, the
//! review queue, submissions with live progress, and comparisons.
//!
//! Every page is rendered from the same typed queries the REST API
//! serialises ([`vexxy_server::queries`]), and every change goes through
//! the same service calls (decisions, submissions): the UI adds no
//! business rule of its own. Templates are compiled (askama) and escape
//! every value; the only script is `/static/app.js`, loaded from the
//! same origin under a strict Content-Security-Policy, and every page
//! works without it.
//!
//! Sign-in exchanges an organisation's API key for a session cookie
//! (HttpOnly, SameSite=Strict; the session is stored hashed and ends with
//! its key); state-changing forms carry the session's CSRF token.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderValue},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use vexxy_server::Service;

mod error;
mod pages;
mod session;
mod view;

pub use session::{LOGIN_COOKIE, SESSION_COOKIE};

/// The Content-Security-Policy of every page: scripts and styles only
/// from this origin, no inline code, no framing, forms post here only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest body of a plain form (sign-in, sign-out, a decision).
const FORM_LIMIT: usize = 64 * 1024;
/// Largest body of a bulk decision (up to 1000 `id@version` selections).
const BULK_LIMIT: usize = 512 * 1024;

/// How the UI's cookies are set.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Mark cookies `Secure` (the service is reached over HTTPS, e.g.
    /// behind a TLS-terminating proxy). Off by default: `vexxy serve`
    /// itself speaks plain HTTP.
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
}

impl WebConfig {
    /// The session cookie's name: `__Host-` prefixed when cookies are
    /// `Secure`, so no sibling domain can plant or shadow it.
    pub fn session_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-vexxy_session"
        } else {
            SESSION_COOKIE
        }
    }

    /// The sign-in form's cookie's name (prefixed as the session's).
    pub fn login_cookie(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-vexxy_login"
        } else {
            LOGIN_COOKIE
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

/// What every handler gets: the service and the UI's settings.
#[derive(Clone, Debug)]
pub(crate) struct Web {
    pub svc: Arc<Service>,
    pub config: WebConfig,
}

pub(crate) type AppState = Arc<Web>;

/// Every page and asset of the UI with the default settings.
pub fn router(svc: Arc<Service>) -> Router {
    router_with(svc, WebConfig::default())
}

/// Every page and asset of the UI (no fallback: merged beside the API,
/// whose fallback answers unknown paths).
pub fn router_with(svc: Arc<Service>, config: WebConfig) -> Router {
    // a page's body is small; only a submission carries a report, and
    // it is bounded as the API bounds one
    let submit_limit = svc.config.max_body_bytes;
    let state = Arc::new(Web { svc, config });
    Router::new()
        .route("/", get(pages::dashboard::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/images", get(pages::images::page))
        .route("/images/compliance.csv", get(pages::images::compliance_csv))
        .route("/images/{digest}", get(pages::image::page))
        .route(
            "/images/{digest}/vex/{file}",
            get(pages::image::vex_download),
        )
        .route("/statements/{id}", get(pages::statement::page))
        .route("/statements/{id}/decide", post(pages::statement::decide))
        .route("/review", get(pages::review::page))
        .route(
            "/review/bulk",
            post(pages::review::bulk).layer(DefaultBodyLimit::max(BULK_LIMIT)),
        )
        .route(
            "/submit",
            get(pages::submit::page)
                .post(pages::submit::submit)
                .layer(DefaultBodyLimit::max(submit_limit)),
        )
        .route("/jobs/{id}", get(pages::submit::job_page))
        .route("/jobs/{id}/status.json", get(pages::submit::job_status))
        .route(
            "/jobs/{id}/artifacts/{name}",
            get(pages::image::artifact_download),
        )
        .route("/compare", get(pages::compare::page))
        .route("/static/app.css", get(app_css))
        .route("/static/app.js", get(app_js))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The headers every answer of the UI carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // a download sets its own, stricter policy
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

const APP_CSS: &str = include_str!("../assets/app.css");
const APP_JS: &str = include_str!("../assets/app.js");

async fn app_css(State(_): State<AppState>) -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

async fn app_js(State(_): State<AppState>) -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

fn asset(media: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, media),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}
