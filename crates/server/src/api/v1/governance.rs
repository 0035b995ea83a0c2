//! `/api/v1/workflows` and `/api/v1/checks`: approval workflows and
//! compliance checks.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use promptvault_core::SecurityClassification;
use promptvault_core::authz::{Action, Principal, Resource};
use promptvault_core::compliance::{CheckDefinition, Rule, Severity};
use promptvault_core::model::Revision;
use promptvault_core::workflow::{WorkflowDefinition, WorkflowStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{if_match, required_if_match};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::service::workflows::{CheckView, Origin, WorkflowView};
use crate::state::AppState;

const WF: &str = "wf";
const CHK: &str = "chk";

/// One step of a workflow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStepDto {
    /// Unique within the workflow: a-z, 0-9, `_`, `-`, starting with a letter.
    pub name: String,
    /// Roles (built-in or custom); an approver holds at least one.
    pub approver_roles: Vec<String>,
    /// Different people who must approve this step (1-100; 1 when left out).
    #[serde(default = "one")]
    pub required_approvals: u32,
    /// How long the step may wait, in hours (1-8760); none when left out.
    pub sla_hours: Option<u32>,
}

const fn one() -> u32 {
    1
}

/// A workflow to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// Required to create; to replace, the path's name (or left out).
    pub name: Option<String>,
    pub description: Option<String>,
    /// `public`, `internal`, `confidential`, `restricted`: the templates it governs.
    pub classifications: Vec<String>,
    /// In order; each must be approved before the next.
    pub steps: Vec<WorkflowStepDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowDto {
    pub name: String,
    pub description: Option<String>,
    pub classifications: Vec<String>,
    pub steps: Vec<WorkflowStepDto>,
    /// `default` (built in, in force where nothing stored covers its
    /// classifications), `api` or `file`.
    pub source: String,
    /// Stored workflows: the row revision; the ETag is `"wf-<revision>"`.
    pub revision: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub items: Vec<WorkflowDto>,
    /// Classifications no workflow governs: their versions cannot be approved.
    pub uncovered: Vec<String>,
}

/// A custom check to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Required to create; to replace, the path's key (or left out).
    pub key: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `info`, `warning` or `error` (an `error` result blocks submission and approval).
    pub severity: String,
    /// Prompt type keys it runs on; empty: every type.
    #[serde(default)]
    pub applies_to: Vec<String>,
    /// `true` when left out.
    pub enabled: Option<bool>,
    /// `{"kind": "regex_must_match" | "regex_must_not_match", "pattern", "target": "text" |
    /// "description" | "name" | "config"}`, `{"kind": "max_length", "chars"}`,
    /// `{"kind": "max_tokens", "tokens"}`, `{"kind": "forbidden_phrases", "phrases"}` or
    /// `{"kind": "schema_rule", "schema"}` (a JSON Schema the parameter schema must satisfy).
    #[schema(value_type = Object)]
    pub rule: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckDto {
    pub key: String,
    pub name: String,
    pub description: String,
    pub severity: String,
    pub applies_to: Vec<String>,
    pub enabled: bool,
    /// `builtin` (configured in the settings, read-only here), `api` or `file`.
    pub source: String,
    /// Custom checks: the rule.
    #[schema(value_type = Option<Object>)]
    pub rule: Option<Value>,
    /// Built-in checks: their parameters.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Custom checks: the row revision; the ETag is `"chk-<revision>"`.
    pub revision: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckList {
    pub items: Vec<CheckDto>,
}

fn source(origin: Origin, builtin: &'static str) -> String {
    match origin {
        Origin::BuiltIn => builtin,
        Origin::Api => "api",
        Origin::File => "file",
    }
    .to_owned()
}

fn workflow_dto(v: WorkflowView) -> WorkflowDto {
    let d = v.def;
    WorkflowDto {
        name: d.name,
        description: d.description,
        classifications: d.classifications.iter().map(ToString::to_string).collect(),
        steps: d
            .steps
            .into_iter()
            .map(|s| WorkflowStepDto {
                name: s.name,
                approver_roles: s.approver_roles,
                required_approvals: s.required_approvals,
                sla_hours: s.sla_hours,
            })
            .collect(),
        source: source(v.origin, "default"),
        revision: v.revision.map(|r| r.0),
        updated_at: v.updated_at,
    }
}

fn check_dto(v: CheckView) -> CheckDto {
    CheckDto {
        key: v.key,
        name: v.name,
        description: v.description,
        severity: v.severity.to_string(),
        applies_to: v.applies_to,
        enabled: v.enabled,
        source: source(v.origin, "builtin"),
        rule: v.rule.and_then(|r| serde_json::to_value(r).ok()),
        config: v.config,
        revision: v.revision.map(|r| r.0),
        updated_at: v.updated_at,
    }
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

fn workflow_def(req: WorkflowRequest, path: Option<&str>) -> Result<WorkflowDefinition, ApiError> {
    let name = req
        .name
        .or_else(|| path.map(str::to_owned))
        .ok_or_else(|| unprocessable("invalid_request", "a workflow needs a name"))?;
    let classifications = req
        .classifications
        .iter()
        .map(|c| {
            c.parse::<SecurityClassification>()
                .map_err(|e| unprocessable("invalid_classification", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let steps = req
        .steps
        .into_iter()
        .map(|s| WorkflowStep {
            name: s.name,
            approver_roles: s.approver_roles,
            required_approvals: s.required_approvals,
            sla_hours: s.sla_hours,
        })
        .collect();
    Ok(WorkflowDefinition { name, description: req.description, classifications, steps })
}

fn check_def(req: CheckRequest, path: Option<&str>) -> Result<CheckDefinition, ApiError> {
    let key = req
        .key
        .or_else(|| path.map(str::to_owned))
        .ok_or_else(|| unprocessable("invalid_request", "a check needs a key"))?;
    let severity =
        req.severity.parse::<Severity>().map_err(|e| unprocessable("invalid_severity", e.to_string()))?;
    let rule: Rule = serde_json::from_value(req.rule).map_err(|e| {
        unprocessable("invalid_check_rule", format!("the rule is not one promptvault knows: {e}"))
    })?;
    Ok(CheckDefinition {
        key,
        name: req.name,
        description: req.description,
        severity,
        applies_to: req.applies_to,
        enabled: req.enabled.unwrap_or(true),
        rule,
    })
}

fn etag_of(kind: &str, revision: Option<i64>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(value) = revision.and_then(|r| Revision(r).etag(kind).parse().ok()) {
        h.insert(header::ETAG, value);
    }
    h
}

/// Workflows in force: stored ones, then the defaults still governing a classification.
#[utoipa::path(get, path = "/workflows", tag = "workflows", operation_id = "list_workflows",
    responses((status = 200, body = WorkflowList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_workflows(
    State(s): State<AppState>,
    who: Principal,
) -> Result<impl IntoResponse, ApiError> {
    let listing = s.registry.list_workflows(&who).await?;
    Ok(axum::Json(WorkflowList {
        items: listing.items.into_iter().map(workflow_dto).collect(),
        uncovered: listing.uncovered.iter().map(ToString::to_string).collect(),
    }))
}

/// Create a workflow (one named like a default replaces that default).
#[utoipa::path(post, path = "/workflows", tag = "workflows", operation_id = "create_workflow",
    request_body = WorkflowRequest,
    responses(
        (status = 201, body = WorkflowDto, headers(("ETag" = String))),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or a classification is claimed by another workflow", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid definition (code names the problem)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_workflow(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<WorkflowRequest>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Create, Resource::Workflow, req.name.as_deref()).await?;
    let v = s.registry.create_workflow(&who, workflow_def(req, None)?).await?;
    let tag = etag_of(WF, v.revision.map(|r| r.0));
    Ok((StatusCode::CREATED, tag, axum::Json(workflow_dto(v))))
}

/// Read a workflow: a stored one, or a default in force.
#[utoipa::path(get, path = "/workflows/{name}", tag = "workflows", operation_id = "get_workflow",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = WorkflowDto, headers(("ETag" = String, description = "Stored workflows"))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_workflow(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let v = s.registry.get_workflow(&who, &name).await?;
    let tag = etag_of(WF, v.revision.map(|r| r.0));
    Ok((tag, axum::Json(workflow_dto(v))))
}

/// Replace a stored workflow (needs `If-Match`). The change applies to
/// reviews in progress: their approvals count for the steps of the same name.
#[utoipa::path(put, path = "/workflows/{name}", tag = "workflows", operation_id = "update_workflow",
    params(("name" = String, Path)),
    request_body = WorkflowRequest,
    responses(
        (status = 200, body = WorkflowDto, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A classification is claimed by another workflow, or one with versions in review would leave it", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_workflow(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<WorkflowRequest>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Update, Resource::Workflow, Some(&name)).await?;
    let expect = required_if_match(&headers, WF, || None)?;
    let v = s.registry.replace_workflow(&who, &name, expect, workflow_def(req, Some(&name))?).await?;
    let tag = etag_of(WF, v.revision.map(|r| r.0));
    Ok((tag, axum::Json(workflow_dto(v))))
}

/// Delete a stored workflow (`If-Match` honoured); the defaults take over its
/// classifications. Refused while versions of them are in review.
#[utoipa::path(delete, path = "/workflows/{name}", tag = "workflows", operation_id = "delete_workflow",
    params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Versions in review depend on it, or it is a default", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_workflow(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Delete, Resource::Workflow, Some(&name)).await?;
    let expect = if_match(&headers, WF)?.flatten();
    s.registry.delete_workflow(&who, &name, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Compliance checks: the built-ins as configured, then the custom ones.
#[utoipa::path(get, path = "/checks", tag = "checks", operation_id = "list_checks",
    responses((status = 200, body = CheckList), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_checks(State(s): State<AppState>, who: Principal) -> Result<impl IntoResponse, ApiError> {
    let items = s.registry.list_checks(&who).await?;
    Ok(axum::Json(CheckList { items: items.into_iter().map(check_dto).collect() }))
}

/// Create a custom check.
#[utoipa::path(post, path = "/checks", tag = "checks", operation_id = "create_check",
    request_body = CheckRequest,
    responses(
        (status = 201, body = CheckDto, headers(("ETag" = String))),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is taken (or is a built-in's)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid definition (code names the problem, `field` the field)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_check(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Create, Resource::Check, req.key.as_deref()).await?;
    let v = s.registry.create_check(&who, check_def(req, None)?).await?;
    let tag = etag_of(CHK, v.revision.map(|r| r.0));
    Ok((StatusCode::CREATED, tag, axum::Json(check_dto(v))))
}

/// Read a check, built-in or custom.
#[utoipa::path(get, path = "/checks/{key}", tag = "checks", operation_id = "get_check",
    params(("key" = String, Path)),
    responses(
        (status = 200, body = CheckDto, headers(("ETag" = String, description = "Custom checks"))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_check(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(key): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let v = s.registry.get_check(&who, &key).await?;
    let tag = etag_of(CHK, v.revision.map(|r| r.0));
    Ok((tag, axum::Json(check_dto(v))))
}

/// Replace a custom check (needs `If-Match`); built-ins are configured in the settings.
#[utoipa::path(put, path = "/checks/{key}", tag = "checks", operation_id = "update_check",
    params(("key" = String, Path)),
    request_body = CheckRequest,
    responses(
        (status = 200, body = CheckDto, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in check", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_check(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath(key): ApiPath<String>,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Update, Resource::Check, Some(&key)).await?;
    let expect = required_if_match(&headers, CHK, || None)?;
    let v = s.registry.replace_check(&who, &key, expect, check_def(req, Some(&key))?).await?;
    let tag = etag_of(CHK, v.revision.map(|r| r.0));
    Ok((tag, axum::Json(check_dto(v))))
}

/// Delete a custom check (`If-Match` honoured).
#[utoipa::path(delete, path = "/checks/{key}", tag = "checks", operation_id = "delete_check",
    params(("key" = String, Path)),
    responses(
        (status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A built-in check", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_check(
    State(s): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ApiPath(key): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.require(&who, Action::Delete, Resource::Check, Some(&key)).await?;
    let expect = if_match(&headers, CHK)?.flatten();
    s.registry.delete_check(&who, &key, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}
