//! The HTTP prober: a bounded, same-origin crawl of every ready port.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use url::Url;
use vexxy_model::ExerciseStats;

use crate::api::{self, Form, Req};
use crate::netns::in_netns;
use crate::{ExerciseError, Target};

/// The most of a response body read for links: 1 MiB.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The most distinct paths queued per port (bounds memory on link farms).
const MAX_QUEUED_PER_PORT: usize = 10_000;

/// The longest path (with query) requested.
const MAX_PATH_LEN: usize = 2048;

/// Paths most web servers and frameworks answer, tried after `/`.
const COMMON_PATHS: &[&str] = &[
    "/robots.txt",
    "/favicon.ico",
    "/index.html",
    "/health",
    "/healthz",
    "/status",
    "/api",
    "/login",
    "/admin",
    "/static/",
    "/.well-known/security.txt",
];

/// How much probing [`probe_http`] may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeBudget {
    /// Requests over all ports (default [`ProbeBudget::DEFAULT_MAX_REQUESTS`]).
    pub max_requests: u32,
    /// No request starts after this, and none runs past it.
    pub deadline: Instant,
    /// The longest one request may take, connect to last body byte
    /// (default [`ProbeBudget::DEFAULT_REQUEST_TIMEOUT`]).
    pub per_request_timeout: Duration,
}

impl ProbeBudget {
    /// The default request budget.
    pub const DEFAULT_MAX_REQUESTS: u32 = 200;
    /// The default per-request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

    /// The default budget ending at `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            max_requests: Self::DEFAULT_MAX_REQUESTS,
            deadline,
            per_request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What the prober did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpStats {
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Responses by status code; `0` counts requests without a response
    /// (refused, reset, timed out, not HTTP).
    pub by_status: BTreeMap<u16, u64>,
    /// Distinct paths (with query) requested, over all ports.
    pub paths: BTreeSet<String>,
    /// Ports that answered at least one request in HTTP.
    pub answered_ports: BTreeSet<u16>,
    /// Of `requests`, those the fuzz phase sent.
    pub fuzz_requests: u64,
    /// The OpenAPI/Swagger document requests were built from, as `port
    /// path`, when a port served one (the first found).
    pub openapi: Option<String>,
}

impl HttpStats {
    /// Adds these results to a profile's exercise statistics.
    pub fn record_into(&self, stats: &mut ExerciseStats) {
        stats.http_requests += self.requests;
        for (code, n) in &self.by_status {
            *stats.http_status.entry(*code).or_default() += n;
        }
        let mut paths: BTreeSet<String> = stats.http_paths.drain(..).collect();
        paths.extend(self.paths.iter().cloned());
        stats.http_paths = paths.into_iter().collect();
        stats.http_fuzz_requests += self.fuzz_requests;
        if stats.openapi.is_none() {
            stats.openapi.clone_from(&self.openapi);
        }
    }

    fn count(&mut self, port: u16, path: &str, status: u16) {
        self.requests += 1;
        if status != 0 {
            self.answered_ports.insert(port);
        }
        *self.by_status.entry(status).or_default() += 1;
        if !self.paths.contains(path) {
            self.paths.insert(path.to_owned());
        }
    }
}

/// Probes every port in `ports` over plain HTTP from inside the target's
/// network namespace: `GET /`, then, interleaved, a breadth-first crawl of
/// the same-origin links (`href`/`src`, and same-origin redirects) found in
/// HTML responses and the extras (`HEAD /`, `OPTIONS /`, common paths, one
/// random path for the 404 handler, and the usual OpenAPI/Swagger document
/// paths). Once that is done on a port: one request per operation of the
/// first OpenAPI/Swagger document it served (parameters filled with
/// samples), then a fuzz phase (at most 64 requests per port: mutated query
/// parameters and form fields, unusual headers, other methods). Ports take
/// turns, one request each.
///
/// Stops at `budget.max_requests` or `budget.deadline`. Redirects are never
/// followed automatically, and nothing but `target.host` on the given ports
/// is ever contacted.
pub fn probe_http(
    target: &Target,
    ports: &[u16],
    budget: &ProbeBudget,
) -> Result<HttpStats, ExerciseError> {
    probe_http_unless(target, ports, budget, &AtomicBool::new(false))
}

/// [`probe_http`] that also stops as soon as `stop` is set (checked before
/// every request, so within one request's timeout): the caller sets it to
/// cancel the run. What was sent until then is returned.
pub fn probe_http_unless(
    target: &Target,
    ports: &[u16],
    budget: &ProbeBudget,
    stop: &AtomicBool,
) -> Result<HttpStats, ExerciseError> {
    let host = target.host;
    let ports: Vec<u16> = ports
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let budget = budget.clone();
    let started = Instant::now();
    let stats = in_netns(target.netns.as_deref(), "vexxy-http", move || {
        probe(host, &ports, &budget, stop)
    })?;
    tracing::info!(
        requests = stats.requests,
        paths = stats.paths.len(),
        statuses = ?stats.by_status,
        elapsed = ?started.elapsed(),
        "http probe done"
    );
    Ok(stats)
}

/// One request to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Options,
}

/// One step of a port's work.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A crawl request (`GET` of a link or an extra, `HEAD /`, `OPTIONS /`).
    Crawl(Method, String),
    /// A request an OpenAPI document describes.
    Api(Req),
    /// A fuzz request.
    Fuzz(Req),
}

/// The crawl state of one port.
#[derive(Debug)]
struct Crawl {
    origin: Url,
    /// Requests from the port's OpenAPI document.
    api: VecDeque<Req>,
    /// The document they came from (`port path`).
    openapi: Option<String>,
    /// Forms found in HTML pages (fuzzed later).
    forms: Vec<Form>,
    /// The fuzz phase, built when the crawl and the API are done.
    fuzz: Option<VecDeque<Req>>,
    /// Whether any request got an HTTP answer (a port that never did gets
    /// no fuzz phase: it does not speak HTTP).
    answered: bool,
    /// Paths found in pages and redirects, breadth first.
    links: VecDeque<String>,
    /// `HEAD /`, `OPTIONS /` and the common paths.
    extras: VecDeque<(Method, String)>,
    /// Every path ever queued for `GET`.
    queued: HashSet<String>,
    /// Whether the last request came from `links` (they alternate).
    last_was_link: bool,
}

impl Crawl {
    fn new(host: IpAddr, port: u16) -> Option<Self> {
        let origin = Url::parse(&format!("http://{}/", SocketAddr::new(host, port))).ok()?;
        let mut crawl = Self {
            origin,
            api: VecDeque::new(),
            openapi: None,
            forms: Vec::new(),
            fuzz: None,
            answered: false,
            links: VecDeque::new(),
            extras: VecDeque::new(),
            queued: HashSet::new(),
            last_was_link: false,
        };
        crawl.push_link("/".to_owned());
        crawl.extras.push_back((Method::Head, "/".to_owned()));
        crawl.extras.push_back((Method::Options, "/".to_owned()));
        for path in COMMON_PATHS {
            crawl.extras.push_back((Method::Get, (*path).to_owned()));
        }
        let random = RandomState::new().hash_one(Instant::now());
        crawl
            .extras
            .push_back((Method::Get, format!("/nonexistent-{random:016x}")));
        for path in api::OPENAPI_PATHS {
            crawl.extras.push_back((Method::Get, (*path).to_owned()));
        }
        Some(crawl)
    }

    fn push_link(&mut self, path: String) {
        if self.queued.len() < MAX_QUEUED_PER_PORT && self.queued.insert(path.clone()) {
            self.links.push_back(path);
        }
    }

    /// The next request: links and extras alternate while both have work.
    fn next(&mut self) -> Option<(Method, String)> {
        let take_link = !self.links.is_empty() && (self.extras.is_empty() || !self.last_was_link);
        if take_link {
            self.last_was_link = true;
            return self.links.pop_front().map(|p| (Method::Get, p));
        }
        self.last_was_link = false;
        while let Some((method, path)) = self.extras.pop_front() {
            // A common path already crawled as a link is not asked twice.
            if method != Method::Get || self.queued.insert(path.clone()) {
                return Some((method, path));
            }
        }
        None
    }

    /// The next step: the crawl, then the API's requests, then the fuzz
    /// phase.
    fn step(&mut self) -> Option<Step> {
        if let Some((method, path)) = self.next() {
            return Some(Step::Crawl(method, path));
        }
        if let Some(req) = self.api.pop_front() {
            return Some(Step::Api(req));
        }
        if !self.answered {
            return None;
        }
        if self.fuzz.is_none() {
            let crawled: BTreeSet<String> = self.queued.iter().cloned().collect();
            self.fuzz = Some(api::fuzz_requests(&crawled, &self.forms).into());
        }
        self.fuzz.as_mut()?.pop_front().map(Step::Fuzz)
    }
}

fn probe(host: IpAddr, ports: &[u16], budget: &ProbeBudget, stop: &AtomicBool) -> HttpStats {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent("vexxy-exercise")
        .timeout_global(Some(budget.per_request_timeout))
        .build()
        .into();
    let mut crawls: Vec<Crawl> = ports
        .iter()
        .filter_map(|&port| Crawl::new(host, port))
        .collect();
    let mut stats = HttpStats::default();
    let mut sent: u32 = 0;
    'rounds: loop {
        let mut progressed = false;
        for crawl in &mut crawls {
            if sent >= budget.max_requests {
                tracing::debug!(max = budget.max_requests, "request budget spent");
                break 'rounds;
            }
            let remaining = budget.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                tracing::debug!("probe deadline reached");
                break 'rounds;
            }
            if stop.load(Ordering::Relaxed) {
                tracing::debug!("probe stopped");
                break 'rounds;
            }
            let Some(step) = crawl.step() else {
                continue;
            };
            progressed = true;
            sent += 1;
            let timeout = remaining.min(budget.per_request_timeout);
            let port = crawl.origin.port().unwrap_or(80);
            match step {
                Step::Crawl(method, path) => {
                    let status = request(&agent, crawl, method, &path, timeout);
                    stats.count(port, &path, status);
                }
                Step::Api(req) => {
                    let status = send(&agent, &crawl.origin, &req, timeout);
                    stats.count(port, &req.path, status);
                }
                Step::Fuzz(req) => {
                    let status = send(&agent, &crawl.origin, &req, timeout);
                    stats.requests += 1;
                    stats.fuzz_requests += 1;
                    *stats.by_status.entry(status).or_default() += 1;
                    if status != 0 {
                        stats.answered_ports.insert(port);
                    }
                }
            }
            if stats.openapi.is_none() {
                stats.openapi.clone_from(&crawl.openapi);
            }
            crawl.answered |= stats.answered_ports.contains(&port);
        }
        if !progressed {
            break;
        }
    }
    stats
}

/// Sends one request; returns its status (0 without a response) and queues
/// the same-origin links of an HTML answer or a redirect.
fn request(
    agent: &ureq::Agent,
    crawl: &mut Crawl,
    method: Method,
    path: &str,
    timeout: Duration,
) -> u16 {
    let Ok(url) = crawl.origin.join(path) else {
        return 0;
    };
    let builder = match method {
        Method::Get => agent.get(url.as_str()),
        Method::Head => agent.head(url.as_str()),
        Method::Options => agent.options(url.as_str()),
    };
    let mut response = match builder
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(url = %url, error = %e, "no response");
            return 0;
        }
    };
    let status = response.status().as_u16();
    tracing::trace!(?method, url = %url, status, "response");
    if response.status().is_redirection() {
        if let Some(location) = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
        {
            if let Some(p) = same_origin_path(&crawl.origin, &url, location) {
                crawl.push_link(p);
            }
        }
        return status;
    }
    let is_html = response.body().mime_type().is_some_and(|m| {
        m.eq_ignore_ascii_case("text/html") || m.eq_ignore_ascii_case("application/xhtml+xml")
    });
    let maybe_document = response.body().mime_type().is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("json") || m.contains("yaml")
    }) || api::looks_like_document(path);
    if method == Method::Get
        && crawl.openapi.is_none()
        && response.status().is_success()
        && maybe_document
        && !is_html
    {
        let mut body = Vec::new();
        if let Err(e) = response
            .body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES)
            .read_to_end(&mut body)
        {
            tracing::debug!(url = %url, error = %e, "cannot read body");
        }
        if let Some(doc) = api::parse_document(&body) {
            let requests = api::requests_from_document(&doc);
            tracing::info!(url = %url, operations = requests.len(), "openapi document");
            crawl.openapi = Some(format!("{} {path}", crawl.origin.port().unwrap_or(80)));
            crawl.api.extend(requests);
        }
        return status;
    }
    if method == Method::Get && is_html {
        let mut body = Vec::new();
        if let Err(e) = response
            .body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES)
            .read_to_end(&mut body)
        {
            tracing::debug!(url = %url, error = %e, "cannot read body");
        }
        let html = String::from_utf8_lossy(&body);
        for link in links(&crawl.origin, &url, &html) {
            crawl.push_link(link);
        }
        for form in forms(&crawl.origin, &url, &html) {
            if crawl.forms.len() < 16 && !crawl.forms.contains(&form) {
                crawl.forms.push(form);
            }
        }
    }
    status
}

/// Sends one API or fuzz request on `origin`; returns its status (0
/// without a response). The body is not read.
fn send(agent: &ureq::Agent, origin: &Url, req: &Req, timeout: Duration) -> u16 {
    let Some(path) = same_origin_path(origin, origin, &req.path) else {
        tracing::debug!("request path leaves the origin; not sent");
        return 0;
    };
    // same_origin_path re-encodes; keep the request's own bytes when they
    // already are a plain path
    let path = if req.path.starts_with('/') && !req.path.starts_with("//") {
        req.path.clone()
    } else {
        path
    };
    let Ok(url) = origin.join(&path) else {
        return 0;
    };
    if url.host() != origin.host() || url.port_or_known_default() != origin.port_or_known_default()
    {
        return 0;
    }
    let mut builder = http::Request::builder()
        .method(req.method.clone())
        .uri(url.as_str());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match &req.body {
        Some((content_type, bytes)) => {
            builder = builder.header("content-type", content_type.as_str());
            bytes.clone()
        }
        None => Vec::new(),
    };
    let Ok(request) = builder.body(body) else {
        return 0;
    };
    let request = agent
        .configure_request(request)
        .timeout_global(Some(timeout))
        .build();
    match agent.run(request) {
        Ok(response) => {
            tracing::trace!(method = %req.method, url = %url, status = response.status().as_u16(), "response");
            response.status().as_u16()
        }
        Err(e) => {
            tracing::debug!(method = %req.method, url = %url, error = %e, "no response");
            0
        }
    }
}

/// The forms of an HTML page whose action stays on `origin`: method, action
/// and named fields with their values (or a sample fitting the input type).
pub(crate) fn forms(origin: &Url, page: &Url, html: &str) -> Vec<Form> {
    let document = scraper::Html::parse_document(html);
    let mut found = Vec::new();
    for node in document.root_element().descendants() {
        let Some(form) = scraper::ElementRef::wrap(node) else {
            continue;
        };
        if form.value().name() != "form" {
            continue;
        }
        let action = form.value().attr("action").unwrap_or("");
        let Some(action) = same_origin_path(
            origin,
            page,
            if action.is_empty() {
                page.as_str()
            } else {
                action
            },
        ) else {
            continue;
        };
        let post = form
            .value()
            .attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post"));
        let mut fields = Vec::new();
        for node in form.descendants() {
            let Some(field) = scraper::ElementRef::wrap(node) else {
                continue;
            };
            let e = field.value();
            if !matches!(e.name(), "input" | "textarea" | "select") {
                continue;
            }
            let Some(name) = e.attr("name").filter(|n| !n.is_empty()) else {
                continue;
            };
            let value = match (e.attr("value"), e.attr("type").unwrap_or("text")) {
                (Some(v), _) if !v.is_empty() => v.to_owned(),
                (_, "number" | "range") => "1".to_owned(),
                (_, "email") => "probe@example.invalid".to_owned(),
                (_, "checkbox" | "radio") => "on".to_owned(),
                (_, "date") => "2024-01-01".to_owned(),
                _ => "vexxy".to_owned(),
            };
            if fields.len() < 32 {
                fields.push((name.to_owned(), value));
            }
        }
        found.push(Form {
            post,
            action,
            fields,
        });
    }
    found
}

/// The same-origin paths (with query, without fragment) that `href` and
/// `src` attributes of the HTML page at `page` point to, in document order.
pub(crate) fn links(origin: &Url, page: &Url, html: &str) -> Vec<String> {
    let document = scraper::Html::parse_document(html);
    let elements = || document.tree.values().filter_map(scraper::Node::as_element);
    // A <base href> changes what relative links resolve against.
    let base = elements()
        .find(|e| e.name() == "base")
        .and_then(|e| e.attr("href"))
        .and_then(|href| page.join(href).ok())
        .unwrap_or_else(|| page.clone());
    let mut found = Vec::new();
    for element in elements() {
        for attr in ["href", "src"] {
            if let Some(p) = element
                .attr(attr)
                .and_then(|v| same_origin_path(origin, &base, v))
            {
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// `reference` resolved against `base`, as a path with query, when it stays
/// on `origin` (scheme, host and port).
fn same_origin_path(origin: &Url, base: &Url, reference: &str) -> Option<String> {
    let url = base.join(reference.trim()).ok()?;
    if url.scheme() != origin.scheme()
        || url.host() != origin.host()
        || url.port_or_known_default() != origin.port_or_known_default()
    {
        return None;
    }
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    (path.len() <= MAX_PATH_LEN).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stay_on_the_origin() {
        let origin = Url::parse("http://127.0.0.1:8080/").unwrap_or_else(|e| panic!("{e}"));
        let page = origin
            .join("/docs/index.html")
            .unwrap_or_else(|e| panic!("{e}"));
        // (attribute markup, expected path or None when it must be dropped)
        let cases: &[(&str, Option<&str>)] = &[
            (r#"<a href="/a">"#, Some("/a")),
            (r#"<a href="b">"#, Some("/docs/b")),
            (r#"<a href="../up?x=1#frag">"#, Some("/up?x=1")),
            (
                r#"<script src="/static/app.js"></script>"#,
                Some("/static/app.js"),
            ),
            (
                r#"<img src="http://127.0.0.1:8080/img.png">"#,
                Some("/img.png"),
            ),
            (r#"<a href="  /spaced  ">"#, Some("/spaced")),
            (r#"<a href="http://example.com/">"#, None),
            (r#"<a href="//example.com/x.png">"#, None),
            (r#"<a href="http://127.0.0.1:9090/">"#, None),
            (r#"<a href="https://127.0.0.1:8080/">"#, None),
            (r#"<a href="mailto:someone@example.com">"#, None),
            (r#"<a href="javascript:void(0)">"#, None),
            (r#"<a name="no-href">"#, None),
        ];
        for (markup, expected) in cases {
            let html = format!("<html><body>{markup}</body></html>");
            let got = links(&origin, &page, &html);
            let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(got, expected, "{markup}");
        }
    }

    #[test]
    fn stats_add_into_a_profile() {
        let mut stats = HttpStats::default();
        stats.count(80, "/", 200);
        stats.count(80, "/x", 404);
        stats.count(81, "/", 0);
        let mut exercise = ExerciseStats {
            http_requests: 1,
            http_status: BTreeMap::from([(200, 1)]),
            http_paths: vec!["/z".into()],
            ..ExerciseStats::default()
        };
        stats.record_into(&mut exercise);
        assert_eq!(exercise.http_requests, 4);
        assert_eq!(
            exercise.http_status,
            BTreeMap::from([(0, 1), (200, 2), (404, 1)])
        );
        assert_eq!(exercise.http_paths, ["/", "/x", "/z"]);
        assert_eq!(stats.answered_ports, BTreeSet::from([80]));
    }

    #[test]
    fn base_href_and_duplicates() {
        let origin = Url::parse("http://127.0.0.1:80/").unwrap_or_else(|e| panic!("{e}"));
        let html = r#"<html><head><base href="/app/"></head>
            <body><a href="x">x</a><a href="x#again">x</a><link href="style.css"></body></html>"#;
        // The <base> itself points somewhere too.
        assert_eq!(
            links(&origin, &origin, html),
            ["/app/", "/app/x", "/app/style.css"]
        );
    }

    #[test]
    fn extras_and_links_alternate_without_repeats() {
        let mut crawl =
            Crawl::new(IpAddr::from([127, 0, 0, 1]), 80).unwrap_or_else(|| panic!("origin"));
        assert_eq!(crawl.next(), Some((Method::Get, "/".to_owned())));
        crawl.push_link("/a".into());
        crawl.push_link("/robots.txt".into());
        crawl.push_link("/a".into());
        let mut order = Vec::new();
        while let Some(step) = crawl.next() {
            order.push(step);
        }
        assert_eq!(order[0], (Method::Head, "/".to_owned()));
        assert_eq!(order[1], (Method::Get, "/a".to_owned()));
        assert_eq!(order[2], (Method::Options, "/".to_owned()));
        assert_eq!(order[3], (Method::Get, "/robots.txt".to_owned()));
        let gets: Vec<_> = order
            .iter()
            .filter(|(m, _)| *m == Method::Get)
            .map(|(_, p)| p.as_str())
            .collect();
        let distinct: HashSet<_> = gets.iter().collect();
        assert_eq!(distinct.len(), gets.len(), "{gets:?}");
        assert!(gets.iter().any(|p| p.starts_with("/nonexistent-")));
        // 2 links + HEAD + OPTIONS + 11 common paths (robots.txt once) +
        // random + the OpenAPI document paths
        assert_eq!(
            order.len(),
            2 + 2 + COMMON_PATHS.len() - 1 + 1 + api::OPENAPI_PATHS.len()
        );
    }
}
