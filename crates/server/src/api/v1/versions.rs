//! `/api/v1/templates/{name}/versions…` and `/diff`

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use promptvault_core::authz::Principal;
use promptvault_core::{Bump, TemplateName};
use promptvault_store::PageRequest;

use super::dto::{
    ChangeDto, CreateVersionRequest, DiffDto, DiffQuery, PageQuery, VersionDto, VersionPage, VersionPointer,
    VersionWritten,
};
use super::templates::body;
use super::{NO_STORE, body_value, etag, path_name, required_if_match, version_ref};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::service::{ContentInput, CreateVersion, ReadSelector, VersionCreated};
use crate::state::AppState;

pub(crate) fn written(name: &TemplateName, v: VersionCreated) -> VersionWritten {
    VersionWritten {
        template: name.to_string(),
        version: VersionDto::from(&v.version),
        changes: v.changes.iter().map(ChangeDto::from).collect(),
        warnings: v.warnings,
        findings: v.findings.iter().map(Into::into).collect(),
    }
}

/// Content for a new version: omitted fields come from `base`.
async fn content(
    s: &AppState,
    who: &Principal,
    name: &TemplateName,
    req: &mut CreateVersionRequest,
    base: Option<crate::service::VersionRef>,
) -> Result<(ContentInput, Option<Bump>), ApiError> {
    let needs_base = req.template_text.is_none() && req.messages.is_none()
        || req.parameter_schema.is_none()
        || req.config.is_none();
    let base = if needs_base {
        let read =
            ReadSelector { label: base.is_none().then(promptvault_core::LabelName::latest), version: base };
        Some(s.registry.read_template(who, name, &read).await?.version)
    } else {
        None
    };
    let body = body(req.template_text.take(), req.messages.take(), base.as_ref().map(|v| &v.content.body))?;
    let parameter_schema = req
        .parameter_schema
        .take()
        .or_else(|| base.as_ref().map(|v| v.content.parameter_schema.as_value().clone()));
    let config = req.config.take().or_else(|| base.as_ref().map(|v| v.content.config.to_value()));
    let bump = req.bump.as_deref().map(body_value::<Bump>).transpose()?;
    Ok((ContentInput { body, parameter_schema, config }, bump))
}

/// List versions, newest first.
#[utoipa::path(get, path = "/templates/{name}/versions", tag = "versions", operation_id = "list_versions",
    params(("name" = String, Path), PageQuery),
    responses(
        (status = 200, body = VersionPage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let page = PageRequest { limit: q.limit.unwrap_or(50), cursor: q.cursor };
    let (t, versions) = s.registry.list_versions(&who, &name, &page).await?;
    Ok((
        [NO_STORE],
        axum::Json(VersionPage {
            template: t.name.to_string(),
            items: versions.items.iter().map(VersionDto::from).collect(),
            next_cursor: versions.next_cursor,
        }),
    ))
}

/// Create a version. Its semantic version is computed from the change
/// against the newest version: incompatible parameter changes are major, new
/// optional parameters and wording minor, whitespace and typos patch.
/// Omitted content fields are taken from the newest version.
#[utoipa::path(post, path = "/templates/{name}/versions", tag = "versions", operation_id = "create_version",
    params(("name" = String, Path)),
    request_body = CreateVersionRequest,
    responses(
        (status = 201, body = VersionWritten, headers(("ETag" = String))),
        (status = 409, description = "Another version was added since `base_version`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid content, nothing changed, or a bump smaller than the change needs", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiJson(mut req): ApiJson<CreateVersionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let (content, bump) = content(&s, &who, &name, &mut req, None).await?;
    let created = s
        .registry
        .create_version(
            &who,
            &name,
            CreateVersion {
                content,
                bump,
                change_description: req.change_description,
                base_version: req.base_version,
                restored_from: None,
            },
        )
        .await?;
    let revision = created.version.revision;
    Ok((StatusCode::CREATED, etag("ver", revision), [NO_STORE], axum::Json(written(&name, created))))
}

/// Get one version by number (`3`) or semantic version (`1.2.0`).
#[utoipa::path(get, path = "/templates/{name}/versions/{version}", tag = "versions", operation_id = "get_version",
    params(("name" = String, Path), ("version" = String, Path, description = "Number or semantic version")),
    responses(
        (status = 200, body = VersionDto, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let (_, version) = s.registry.get_version(&who, &name, &version_ref(&v)?).await?;
    Ok((etag("ver", version.revision), [NO_STORE], axum::Json(VersionDto::from(&version))))
}

/// Edit a draft in place; only the newest version, only while it is a draft
/// (`If-Match` required). Omitted content fields are kept.
#[utoipa::path(patch, path = "/templates/{name}/versions/{version}", tag = "versions", operation_id = "update_version",
    params(("name" = String, Path), ("version" = String, Path), ("If-Match" = String, Header)),
    request_body = CreateVersionRequest,
    responses(
        (status = 200, body = VersionWritten, headers(("ETag" = String))),
        (status = 409, description = "Not a draft, or no longer the newest", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(mut req): ApiJson<CreateVersionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let vref = version_ref(&v)?;
    let expect = required_if_match(&headers, "ver", || None)?;
    if req.base_version.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "base_version applies to new versions only",
        ));
    }
    let (content, bump) = content(&s, &who, &name, &mut req, Some(vref.clone())).await?;
    let edited = s
        .registry
        .update_draft(
            &who,
            &name,
            &vref,
            expect,
            CreateVersion {
                content,
                bump,
                change_description: req.change_description,
                base_version: None,
                restored_from: None,
            },
        )
        .await?;
    let revision = edited.version.revision;
    Ok((etag("ver", revision), [NO_STORE], axum::Json(written(&name, edited))))
}

/// Delete a draft no label points at (`If-Match` required).
#[utoipa::path(delete, path = "/templates/{name}/versions/{version}", tag = "versions", operation_id = "delete_version",
    params(("name" = String, Path), ("version" = String, Path), ("If-Match" = String, Header)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Not a draft, labelled, or the only version", body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    ApiPath((raw, v)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&raw)?;
    let expect = required_if_match(&headers, "ver", || None)?;
    s.registry.delete_draft(&who, &name, &version_ref(&v)?, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Compare two versions: a unified text diff and the list of changes with
/// the bump each needs.
#[utoipa::path(get, path = "/templates/{name}/diff", tag = "versions", operation_id = "diff_versions",
    params(("name" = String, Path), DiffQuery),
    responses(
        (status = 200, body = DiffDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn diff(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let from = q.from.as_deref().map(version_ref).transpose()?;
    let to = q.to.as_deref().map(version_ref).transpose()?;
    let (a, b, d) = s.registry.diff(&who, &name, from.as_ref(), to.as_ref()).await?;
    Ok((
        [NO_STORE],
        axum::Json(DiffDto {
            template: name.to_string(),
            from: VersionPointer { seq: a.seq, version: a.version.to_string() },
            to: VersionPointer { seq: b.seq, version: b.version.to_string() },
            text_diff: d.text_diff,
            config_diff: d.config_diff,
            changes: d.changes.iter().map(ChangeDto::from).collect(),
            required_bump: d.required_bump.map(|b| b.as_str().to_owned()),
        }),
    ))
}
