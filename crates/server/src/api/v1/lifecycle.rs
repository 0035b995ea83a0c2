//! The version lifecycle: submit, approve, reject, deprecate, archive,
//! restore; decisions on a version; versions waiting for review.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use promptvault_core::authz::Principal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::VersionDto;
use super::{NO_STORE, etag, if_match, path_name, version_ref};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::service::lifecycle::{Move, Moved};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// Required to reject.
    pub comment: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeprecateRequest {
    /// The version (number) that replaces this one.
    pub replacement_version: Option<u32>,
    /// The end of the deprecation period.
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LifecycleResponse {
    pub template: String,
    pub version: VersionDto,
    /// The compliance checks run (submission, approval).
    #[schema(value_type = Vec<Object>)]
    pub checks: Value,
}

/// A JSON body that may be left out entirely.
fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let (status, code) = if e.is_syntax() || e.is_eof() {
            (axum::http::StatusCode::BAD_REQUEST, "invalid_json")
        } else {
            (axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
        };
        ApiError::new(status, code, format!("the request body is not what this endpoint takes: {e}"))
    })
}

fn answer(m: Moved) -> impl IntoResponse {
    let tag = etag("ver", m.version.revision);
    let body = LifecycleResponse {
        template: m.template.name.to_string(),
        version: VersionDto::from(&m.version),
        checks: serde_json::to_value(&m.checks).unwrap_or(Value::Null),
    };
    (tag, [NO_STORE], axum::Json(body))
}

async fn moved(
    s: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    raw: &str,
    v: &str,
    how: Move,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let name = path_name(raw)?;
    let expect = if_match(headers, "ver")?.flatten();
    let m = s.registry.move_version(who, &name, &version_ref(v)?, expect, how).await?;
    Ok(answer(m))
}

/// Submit a draft for review. Compliance checks run first; an `error` result
/// blocks (422 `compliance_failed`, with every result).
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/submit", tag = "lifecycle", operation_id = "submit_version",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body(content = CommentRequest, description = "Optional"),
    responses(
        (status = 200, body = LifecycleResponse),
        (status = 409, description = "Not a draft", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Blocked by compliance checks", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn submit(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let comment = optional_body::<CommentRequest>(&body)?.comment;
    moved(&s, &who, &headers, &raw, &v, Move::Submit { comment }).await
}

/// Approve a version in review (a step of its workflow; four eyes).
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/approve", tag = "lifecycle", operation_id = "approve_version",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body(content = CommentRequest, description = "Optional"),
    responses(
        (status = 200, body = LifecycleResponse),
        (status = 403, description = "Not an approver of this step, the author, or already approved", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in review, or the workflow is complete", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Blocked by compliance checks", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let comment = optional_body::<CommentRequest>(&body)?.comment;
    let m = s.registry.review(&who, &name, &version_ref(&v)?, true, comment).await?;
    Ok(answer(m))
}

/// Reject a version in review: back to draft, with the comment.
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/reject", tag = "lifecycle", operation_id = "reject_version",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body = CommentRequest,
    responses(
        (status = 200, body = LifecycleResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in review, or no comment", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CommentRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let m = s.registry.review(&who, &name, &version_ref(&v)?, false, req.comment).await?;
    Ok(answer(m))
}

/// Deprecate an approved version, naming its replacement and period.
/// Renders of it still work, with a warning.
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/deprecate", tag = "lifecycle", operation_id = "deprecate_version",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body = DeprecateRequest,
    responses((status = 200, body = LifecycleResponse), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn deprecate(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<DeprecateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let how = Move::Deprecate { replacement: req.replacement_version, until: req.until, reason: req.reason };
    moved(&s, &who, &headers, &raw, &v, how).await
}

/// Archive a deprecated version: it no longer renders.
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/archive", tag = "lifecycle", operation_id = "archive_version",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = LifecycleResponse), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn archive(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath((raw, v)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    moved(&s, &who, &headers, &raw, &v, Move::Archive).await
}

/// Undo a deprecation: the version is approved again.
#[utoipa::path(post, path = "/templates/{name}/versions/{version}/restore", tag = "lifecycle", operation_id = "restore_version",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = LifecycleResponse), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn restore(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath((raw, v)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    moved(&s, &who, &headers, &raw, &v, Move::Restore).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDto {
    pub round: u32,
    pub step: String,
    pub user_id: Uuid,
    /// `submit`, `approve` or `reject`.
    pub decision: String,
    pub comment: Option<String>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionList {
    pub items: Vec<DecisionDto>,
}

/// The submissions, approvals and rejections of a version, every round.
#[utoipa::path(get, path = "/templates/{name}/versions/{version}/decisions", tag = "lifecycle", operation_id = "list_decisions",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = DecisionList), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn decisions(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let items = s.registry.decisions(&who, &name, &version_ref(&v)?).await?;
    Ok(axum::Json(DecisionList {
        items: items
            .into_iter()
            .map(|d| DecisionDto {
                round: d.round,
                step: d.step,
                user_id: *d.user_id.as_uuid(),
                decision: d.decision.as_str().to_owned(),
                comment: d.comment,
                decided_at: d.decided_at,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDto {
    pub template: String,
    pub version_seq: u32,
    pub security_classification: String,
    pub round: u32,
    pub submitted_at: DateTime<Utc>,
    pub workflow: Option<String>,
    pub current_step: Option<String>,
    pub approvals: usize,
    /// When the current step's SLA ends.
    pub due_at: Option<DateTime<Utc>>,
    /// Whole hours past the SLA; absent when not overdue.
    pub overdue_hours: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    pub items: Vec<ReviewDto>,
}

/// Versions waiting for review, longest waiting first, with SLA.
#[utoipa::path(get, path = "/reviews", tag = "lifecycle", operation_id = "list_reviews",
    responses((status = 200, body = ReviewList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn reviews(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let items = s.registry.reviews(&who).await?;
    Ok(axum::Json(ReviewList {
        items: items
            .into_iter()
            .map(|r| ReviewDto {
                template: r.item.template.to_string(),
                version_seq: r.item.seq,
                security_classification: r.item.classification.to_string(),
                round: r.item.round,
                submitted_at: r.item.submitted_at,
                workflow: r.workflow,
                current_step: r.current_step,
                approvals: r.item.approvals.len(),
                due_at: r.due_at,
                overdue_hours: r.overdue_hours,
            })
            .collect(),
    }))
}
