//! HTTP errors as RFC 9457 problem details with a stable `code`.
//!
//! One type, [`ApiError`], reaches the client; it is built from a
//! [`ServiceError`] by an exhaustive match, so every failure has a status
//! and a code on purpose. Internal errors are logged once, here, and the
//! client sees only a generic message (never database text or secrets).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use promptvault_core::render::RenderError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::service::error::{Missing, ServiceError};

/// An RFC 9457 problem document.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:promptvault:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What happened, for people.
    pub detail: String,
    /// A stable machine code; the same failure always has the same code.
    pub code: String,
    /// Further fields for some codes (e.g. `violations`, `names`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    /// Extra response headers (e.g. `ETag` on 412).
    pub etag: Option<String>,
}

impl ApiError {
    /// Secrets in `detail` (a template's text or a parameter's value quoted
    /// by the engine, say) are redacted: an error body never carries one.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if let std::borrow::Cow::Owned(r) = crate::content::redact_secrets(&detail) {
            detail = r;
        }
        Self { status, code, detail, extra: Map::new(), etag: None }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.extra.get("retry_after_seconds").and_then(Value::as_u64))
            .flatten();
        let problem = Problem {
            type_: format!("urn:promptvault:problem:{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            extra: self.extra,
        };
        let mut response = (self.status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"promptvault\""));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(etag) = self.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { what, detail } => {
                let code = match what {
                    Missing::Template => "template_not_found",
                    Missing::PromptType => "prompt_type_not_found",
                    Missing::Version => "version_not_found",
                    Missing::Label => "label_not_found",
                    Missing::Prompt => "prompt_not_found",
                    Missing::User => "user_not_found",
                    Missing::Role => "role_not_found",
                    Missing::Key => "key_not_found",
                    Missing::Workflow => "workflow_not_found",
                    Missing::Check => "check_not_found",
                };
                ApiError::new(StatusCode::NOT_FOUND, code, detail)
            }
            ServiceError::Invalid { code, detail, extra } => {
                let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
                if let Some((key, value)) = extra {
                    err = err.with(key, value);
                }
                err
            }
            ServiceError::BadRequest { code, detail } => ApiError::new(StatusCode::BAD_REQUEST, code, detail),
            ServiceError::Conflict { code, detail } => ApiError::new(StatusCode::CONFLICT, code, detail),
            ServiceError::PreconditionFailed { detail, current_etag } => {
                let mut err = ApiError::new(StatusCode::PRECONDITION_FAILED, "precondition_failed", detail);
                if let Some(etag) = current_etag {
                    err = err.with("current_etag", json!(etag));
                    err.etag = Some(etag);
                }
                err
            }
            ServiceError::PreconditionRequired { detail } => {
                ApiError::new(StatusCode::PRECONDITION_REQUIRED, "precondition_required", detail)
            }
            ServiceError::Forbidden { detail } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            ServiceError::ReauthenticationRequired { detail } => {
                ApiError::new(StatusCode::FORBIDDEN, "reauthentication_required", detail)
            }
            ServiceError::Unauthenticated { code, detail } => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
            }
            ServiceError::Render(r) => render_error(r),
            ServiceError::Unavailable(detail) => {
                let detail = crate::content::redact_secrets(&detail);
                tracing::warn!(%detail, "service unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the service is temporarily unavailable; retry shortly",
                )
            }
            ServiceError::Internal(detail) => {
                let detail = crate::content::redact_secrets(&detail);
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

fn render_error(r: RenderError) -> ApiError {
    let unprocessable = |code, detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
    let detail = r.to_string();
    match r {
        RenderError::InvalidParameters(violations) => unprocessable("invalid_parameters", detail)
            .with("violations", serde_json::to_value(violations).unwrap_or(Value::Null)),
        RenderError::ParametersNotObject => unprocessable("invalid_parameters", detail),
        RenderError::MissingVariables { names, detail: engine } => {
            unprocessable("missing_variables", format!("{detail} ({engine})")).with("names", json!(names))
        }
        RenderError::Undefined { .. } => unprocessable("undefined_value", detail),
        RenderError::MissingPlaceholder(name) => {
            unprocessable("missing_placeholder", detail).with("names", json!([name]))
        }
        RenderError::InvalidPlaceholder { .. } => unprocessable("invalid_placeholder", detail),
        RenderError::OutOfFuel { .. }
        | RenderError::OutputTooLarge { .. }
        | RenderError::TooDeep { .. }
        | RenderError::TooLarge { .. }
        | RenderError::TimedOut { .. }
        | RenderError::MemoryExceeded { .. } => unprocessable("render_limit_exceeded", detail),
        RenderError::Include(_) => unprocessable("include_failed", detail),
        RenderError::Template(_) | RenderError::Schema(_) | RenderError::Failed(_) => {
            unprocessable("render_failed", detail)
        }
    }
}

/// JSON body extractor whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!(
                "the request body does not match what this endpoint takes: {}",
                std::error::Error::source(&e).map_or_else(|| e.body_text(), ToString::to_string)
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the request body is not valid JSON: {}",
                std::error::Error::source(&e).map_or_else(|| e.body_text(), ToString::to_string)
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) => {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the server accepts",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read")
            }
        }
        other => ApiError::new(other.status(), "invalid_request", other.body_text()),
    }
}

/// Query-string extractor whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!(
                    "invalid query string: {}",
                    std::error::Error::source(&e).map_or_else(|| e.body_text(), ToString::to_string)
                ),
            )),
            Err(other) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", other.body_text())),
        }
    }
}

/// Path extractor whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))
            }
            Err(other) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", other.body_text())),
        }
    }
}
