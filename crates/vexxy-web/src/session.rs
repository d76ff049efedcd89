//! Signing in and out: an API key exchanged for a session cookie, the
//! session's CSRF token on every form that changes something, and the
//! extractor that turns a request's cookie into the calling organisation.

use axum::{
    extract::{FromRequestParts, Query, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use vexxy_store::Caller;

use crate::{
    error::{render, WebError},
    AppState,
};

/// The session cookie: an opaque token, stored hashed by the service.
pub const SESSION_COOKIE: &str = "vexxy_session";
/// The sign-in form's CSRF cookie (double submit: the form carries the
/// same random value), so that no other site can sign a browser in.
pub const LOGIN_COOKIE: &str = "vexxy_login";

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(web: &crate::Web, name: &str, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if web.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    // the value is hex we made: always a valid header value
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn random_hex() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Equal without an early exit on the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A redirect target inside this site: a path, never another origin.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 2048 =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Refuses a form another site posted: by the browser's `Sec-Fetch-Site`
/// when it sends one (every current browser does; a proxy rewriting
/// `Host` does not change it), else by `Origin` against `Host`. A request
/// with neither (not a browser's form post) passes to the token check.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let refuse = || WebError::forbidden("the form was posted from another site");
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str() {
            Ok("same-origin" | "none") => Ok(()),
            _ => Err(refuse()),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| refuse())?;
    let Some(origin_host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        // `null` (a sandboxed or privacy-sensitive context) and anything else
        return Err(refuse());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
        return Err(refuse());
    }
    Ok(())
}

/// A signed-in caller: the organisation, the key it signed in with, and
/// the session's CSRF token. Not signed in: a redirect to the sign-in
/// page that comes back here.
#[derive(Debug)]
pub(crate) struct Signed {
    pub caller: Caller,
    pub csrf: String,
    token: String,
}

impl Signed {
    /// Refuses a form whose CSRF token is not the session's, or that
    /// another origin posted.
    pub(crate) fn check(&self, headers: &HeaderMap, token: &str) -> Result<(), WebError> {
        same_origin(headers)?;
        if same(token, &self.csrf) {
            Ok(())
        } else {
            Err(WebError::forbidden(
                "the form's CSRF token is not this session's; reload the page and try again",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &AppState) -> Result<Self, Response> {
        // a script's JSON request gets a JSON answer, not the sign-in page
        let wants_json = parts.uri.path().ends_with(".json")
            || parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.starts_with("application/json"));
        let to_login = || {
            if wants_json {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({
                        "code": "unauthorized",
                        "message": "not signed in (the session ended)",
                    })),
                )
                    .into_response();
            }
            let next = if parts.method == Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".to_owned())
            } else {
                "/".to_owned()
            };
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish();
            Redirect::to(&format!("/login?{query}")).into_response()
        };
        let Some(token) = cookie(&parts.headers, web.config.session_cookie()) else {
            return Err(to_login());
        };
        match web
            .svc
            .store
            .web_session(token, vexxy_store::now_ms())
            .await
        {
            Ok(Some(s)) => Ok(Self {
                caller: s.caller,
                csrf: s.csrf,
                token: token.to_owned(),
            }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    next: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the sign-in form, with a fresh CSRF cookie.
pub(crate) async fn login_page(
    State(web): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, WebError> {
    login_form(&web, &headers, q.next.as_deref(), None, StatusCode::OK)
}

/// The sign-in form. A well-formed sign-in cookie already present is
/// kept, so that a page polling in another tab cannot expire this form.
fn login_form(
    web: &crate::Web,
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = cookie(headers, web.config.login_cookie())
        .filter(|c| c.len() == 64 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .map_or_else(random_hex, str::to_owned);
    let next = local_path(next);
    let page = render(&LoginPage {
        title: "Sign in",
        next: &next,
        csrf: &csrf,
        error,
    })?;
    Ok((
        status,
        [(
            header::SET_COOKIE,
            set_cookie(web, web.config.login_cookie(), &csrf, 3600),
        )],
        page,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    api_key: String,
    next: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// `POST /login`: the key checked, a session made, on to `next`.
pub(crate) async fn login(
    State(web): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, web.config.login_cookie()).unwrap_or("");
    if expected.is_empty() || !same(expected, &form.csrf) || same_origin(&headers).is_err() {
        return login_form(
            &web,
            &headers,
            form.next.as_deref(),
            Some("The sign-in form expired; please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let ttl = web.config.session_ttl;
    let made = web
        .svc
        .store
        .create_web_session(
            form.api_key.trim(),
            i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            vexxy_store::now_ms(),
        )
        .await?;
    let Some((token, _)) = made else {
        return login_form(
            &web,
            &headers,
            form.next.as_deref(),
            Some("That API key is not valid."),
            StatusCode::UNAUTHORIZED,
        );
    };
    // signing in again ends the session this browser had
    if let Some(old) = cookie(&headers, web.config.session_cookie()) {
        web.svc.store.end_web_session(old).await?;
    }
    let mut res = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&web, web.config.session_cookie(), &token, ttl.as_secs()),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&web, web.config.login_cookie(), "", 0),
    );
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
}

/// `POST /logout`: the session ended and its cookie cleared.
pub(crate) async fn logout(
    State(web): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    signed.check(&headers, &form.csrf)?;
    web.svc.store.end_web_session(&signed.token).await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&web, web.config.session_cookie(), "", 0),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site() {
        for (next, want) in [
            (Some("/images?x=1"), "/images?x=1"),
            (Some("//evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("/a\nb"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(next), want, "{next:?}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; vexxy_session_x=2; vexxy_session=abc"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        for (headers, ok) in [
            (h(&[("sec-fetch-site", "same-origin")]), true),
            (h(&[("sec-fetch-site", "none")]), true),
            (h(&[("sec-fetch-site", "cross-site")]), false),
            (h(&[("sec-fetch-site", "same-site")]), false),
            // behind a proxy that rewrites Host, the browser's word counts
            (
                h(&[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://vexxy.example"),
                    ("host", "127.0.0.1:8080"),
                ]),
                true,
            ),
            (
                h(&[("origin", "http://vexxy.test"), ("host", "vexxy.test")]),
                true,
            ),
            (
                h(&[("origin", "http://evil.test"), ("host", "vexxy.test")]),
                false,
            ),
            (h(&[("origin", "null"), ("host", "vexxy.test")]), false),
            (h(&[("origin", "null")]), false),
            (h(&[("origin", "http://vexxy.test")]), false),
            (h(&[]), true),
        ] {
            assert_eq!(same_origin(&headers).is_ok(), ok, "{headers:?}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
