//! Errors as the API shows them: a status code and a JSON body
//! `{"code": "...", "message": "..."}` (429 adds `used` and `limit`,
//! 409 `not_complete` adds `status`).

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable: unauthorized, premium_required, quota_exceeded,
    /// not_found, bad_request, not_complete, already_finished, gone,
    /// payload_too_large, unavailable, internal, command_override_forbidden,
    /// no_secret_key, version_conflict, no_profile.
    pub code: &'static str,
    pub message: String,
    /// Analyses used this month (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
    /// The monthly limit (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The job's state (409 not_complete only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds for a `Retry-After` header (503 busy only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                used: None,
                limit: None,
                status: None,
            },
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The organisation may not do this (a setting of its own).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn premium_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "premium_required",
            "Premium tier required",
        )
    }

    pub fn quota_exceeded(used: i64, limit: i64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!("monthly analysis quota spent: {used} of {limit} used"),
        );
        e.body.used = Some(used);
        e.body.limit = Some(limit);
        e
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", message)
    }

    pub fn not_complete(job: &str, state: &str) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "not_complete",
            format!("job {job} is {state}, not complete"),
        );
        e.body.status = Some(state.to_owned());
        e
    }

    pub fn already_finished(job: &str, state: &str) -> Self {
        let mut e = Self::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("job {job} already finished ({state})"),
        );
        e.body.status = Some(state.to_owned());
        e
    }

    /// 409 for a request that conflicts with the resource's state (a
    /// statement changed since the caller read it: `version_conflict`).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "gone", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 503 with `Retry-After`: too much of something is under way.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::unavailable(message);
        e.retry_after = Some(retry_after_secs);
        e
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503: the service has no server secret key, so it stores no signing
    /// keys or registry passwords (and signs nothing).
    pub fn no_secret_key() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_secret_key",
            crate::tenant::OrgSecretsError::NoServerKey.to_string(),
        )
    }
}

impl From<crate::tenant::OrgSecretsError> for ApiError {
    fn from(e: crate::tenant::OrgSecretsError) -> Self {
        use crate::tenant::OrgSecretsError;
        match e {
            OrgSecretsError::NoServerKey => Self::no_secret_key(),
            OrgSecretsError::BadInput(m) => Self::unprocessable(m),
            OrgSecretsError::Store(e) => e.into(),
        }
    }
}

impl From<vexxy_store::StoreError> for ApiError {
    fn from(e: vexxy_store::StoreError) -> Self {
        match e {
            vexxy_store::StoreError::NotFound(what) => Self::not_found(what),
            vexxy_store::StoreError::Invalid(m) => Self::unprocessable(m),
            vexxy_store::StoreError::Conflict(m) => Self::conflict("version_conflict", m),
            vexxy_store::StoreError::Secrets(e) if *e == vexxy_store::SecretsError::NoKey => {
                Self::no_secret_key()
            }
            vexxy_store::StoreError::BadDigest(d) => {
                Self::bad_request(format!("not a digest: {d}"))
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "storage unavailable");
                crate::health::storage_unavailable(&other)
            }
            other => {
                tracing::error!(error = %other, "storage error");
                Self::internal("storage error; see the server log")
            }
        }
    }
}

impl From<crate::body::BodyError> for ApiError {
    fn from(e: crate::body::BodyError) -> Self {
        use crate::body::BodyError;
        match e {
            BodyError::TooLarge { .. }
            | BodyError::FieldTooLarge { .. }
            | BodyError::TooManyValues { .. } => Self::payload_too_large(e.to_string()),
            BodyError::TooDeep { .. } => Self::unprocessable(e.to_string()),
            BodyError::Busy { .. } => Self::busy(e.to_string(), BUSY_RETRY_AFTER_SECS),
            BodyError::NotAnObject | BodyError::Read(_) => Self::bad_request(e.to_string()),
        }
    }
}

/// What a 503 for too many large submissions asks clients to wait.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}
