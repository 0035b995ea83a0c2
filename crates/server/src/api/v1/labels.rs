//! `/api/v1/templates/{name}/labels…` and `/rollback`

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use promptvault_core::Bump;
use promptvault_core::authz::Principal;

use super::dto::{
    LabelDetail, LabelDto, LabelList, LabelMoveDto, RollbackRequest, RollbackResponse, SetLabelRequest,
};
use super::versions::written;
use super::{body_label, body_value, etag, if_match, path_label, path_name, version_ref};
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::service::{Rollback, RolledBack};
use crate::state::AppState;

/// List labels, `latest` included.
#[utoipa::path(get, path = "/templates/{name}/labels", tag = "labels", operation_id = "list_labels",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = LabelList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<LabelList>, ApiError> {
    let name = path_name(&raw)?;
    let labels = s.registry.list_labels(&who, &name).await?;
    Ok(axum::Json(LabelList {
        template: name.to_string(),
        items: labels.into_iter().map(Into::into).collect(),
    }))
}

/// Get a label with its history of moves.
#[utoipa::path(get, path = "/templates/{name}/labels/{label}", tag = "labels", operation_id = "get_label",
    params(("name" = String, Path), ("label" = String, Path)),
    responses(
        (status = 200, body = LabelDetail, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, label)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let (view, history) = s.registry.get_label(&who, &name, &path_label(&label)?).await?;
    let tag = view.revision.map(|r| etag("label", r));
    Ok((
        tag,
        axum::Json(LabelDetail {
            label: view.into(),
            history: history.into_iter().map(LabelMoveDto::from).collect(),
        }),
    ))
}

/// Point a label at a version, creating the label if needed. With
/// `If-Match`, only if the label is still where you read it.
#[utoipa::path(put, path = "/templates/{name}/labels/{label}", tag = "labels", operation_id = "set_label",
    params(("name" = String, Path), ("label" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag of the label")),
    request_body = SetLabelRequest,
    responses(
        (status = 200, body = LabelDto, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`latest` cannot be set", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, label)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SetLabelRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let label = path_label(&label)?;
    let to = version_ref(&req.version.as_text())
        .map_err(|e| ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, ..e })?;
    let expect = if_match(&headers, "label")?.flatten();
    let view = s.registry.set_label(&who, &name, &label, &to, expect).await?;
    let tag = view.revision.map(|r| etag("label", r));
    Ok((tag, axum::Json(LabelDto::from(view))))
}

/// Remove a label. With `If-Match`, only if it is still where you read it.
#[utoipa::path(delete, path = "/templates/{name}/labels/{label}", tag = "labels", operation_id = "delete_label",
    params(("name" = String, Path), ("label" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, label)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&raw)?;
    let expect = if_match(&headers, "label")?.flatten();
    s.registry.delete_label(&who, &name, &path_label(&label)?, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make an earlier version current again: move a label back
/// (`move_label`) or create a new version with an old version's content
/// (`new_version`).
#[utoipa::path(post, path = "/templates/{name}/rollback", tag = "labels", operation_id = "rollback",
    params(("name" = String, Path)),
    request_body = RollbackRequest,
    responses(
        (status = 200, body = RollbackResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The label never pointed elsewhere", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rollback(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> Result<axum::Json<RollbackResponse>, ApiError> {
    let name = path_name(&raw)?;
    let unprocessable = |e: ApiError| ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, ..e };
    let how = match req {
        RollbackRequest::MoveLabel { label, to_version } => Rollback::MoveLabel {
            label: body_label(&label)?,
            to: to_version.map(|v| version_ref(&v.as_text()).map_err(unprocessable)).transpose()?,
        },
        RollbackRequest::NewVersion { from_version, bump, change_description } => Rollback::NewVersion {
            from: version_ref(&from_version.as_text()).map_err(unprocessable)?,
            bump: bump.as_deref().map(body_value::<Bump>).transpose()?,
            change_description,
        },
    };
    let done = s.registry.rollback(&who, &name, how).await?;
    Ok(axum::Json(match done {
        RolledBack::Label(view) => RollbackResponse::MoveLabel { label: view.into() },
        RolledBack::Version(v) => RollbackResponse::NewVersion { version: Box::new(written(&name, *v)) },
    }))
}
