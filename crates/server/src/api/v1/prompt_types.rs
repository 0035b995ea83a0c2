//! `/api/v1/prompt-types`

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use promptvault_core::PromptTypeKey;
use promptvault_core::authz::Principal;

use super::dto::{CreatePromptTypeRequest, ListPromptTypes, PromptTypeDto, UpdatePromptTypeRequest};
use super::{etag, required_if_match};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::state::AppState;

fn key(raw: &str, status: StatusCode) -> Result<PromptTypeKey, ApiError> {
    PromptTypeKey::parse(raw).map_err(|e| ApiError::new(status, "invalid_name", e.to_string()))
}

/// List prompt types.
#[utoipa::path(get, path = "/prompt-types", tag = "prompt types", operation_id = "list_prompt_types",
    responses(
        (status = 200, body = ListPromptTypes),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
) -> Result<axum::Json<ListPromptTypes>, ApiError> {
    let items = s.registry.list_prompt_types(&who).await?;
    Ok(axum::Json(ListPromptTypes { items: items.into_iter().map(Into::into).collect() }))
}

/// Create a prompt type.
#[utoipa::path(post, path = "/prompt-types", tag = "prompt types", operation_id = "create_prompt_type",
    request_body = CreatePromptTypeRequest,
    responses(
        (status = 201, body = PromptTypeDto, headers(("ETag" = String))),
        (status = 409, description = "The key or name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreatePromptTypeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = key(&req.key, StatusCode::UNPROCESSABLE_ENTITY)?;
    let t = s
        .registry
        .create_prompt_type(&who, key, req.name, req.schema, req.policy.map(Into::into).unwrap_or_default())
        .await?;
    Ok((StatusCode::CREATED, etag("type", t.revision), axum::Json(PromptTypeDto::from(t))))
}

/// Get a prompt type.
#[utoipa::path(get, path = "/prompt-types/{key}", tag = "prompt types", operation_id = "get_prompt_type",
    params(("key" = String, Path, description = "Prompt type key")),
    responses(
        (status = 200, body = PromptTypeDto, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let t = s.registry.get_prompt_type(&who, &key(&raw, StatusCode::BAD_REQUEST)?).await?;
    Ok((etag("type", t.revision), axum::Json(PromptTypeDto::from(t))))
}

/// Change a prompt type (`If-Match` required).
#[utoipa::path(patch, path = "/prompt-types/{key}", tag = "prompt types", operation_id = "update_prompt_type",
    params(("key" = String, Path), ("If-Match" = String, Header, description = "ETag of the prompt type")),
    request_body = UpdatePromptTypeRequest,
    responses(
        (status = 200, body = PromptTypeDto, headers(("ETag" = String))),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdatePromptTypeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = key(&raw, StatusCode::BAD_REQUEST)?;
    let current = s.registry.get_prompt_type(&who, &key).await?;
    let expect = required_if_match(&headers, "type", || Some(current.revision))?;
    let t = s
        .registry
        .update_prompt_type(&who, &key, expect, req.name, req.schema, req.policy.map(Into::into))
        .await?;
    Ok((etag("type", t.revision), axum::Json(PromptTypeDto::from(t))))
}

/// Delete a prompt type no template uses (`If-Match` required).
#[utoipa::path(delete, path = "/prompt-types/{key}", tag = "prompt types", operation_id = "delete_prompt_type",
    params(("key" = String, Path), ("If-Match" = String, Header)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Templates use it", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = key(&raw, StatusCode::BAD_REQUEST)?;
    let current = s.registry.get_prompt_type(&who, &key).await?;
    let expect = required_if_match(&headers, "type", || Some(current.revision))?;
    s.registry.delete_prompt_type(&who, &key, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}
