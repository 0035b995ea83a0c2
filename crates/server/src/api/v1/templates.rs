//! `/api/v1/templates` and `/api/v1/templates/{name}`

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use promptvault_core::authz::Principal;
use promptvault_core::{
    ChatItem, PromptTypeKey, SecurityClassification, Tag, TemplateBody, TemplateName, UserId,
};
use promptvault_store::{PageRequest, TemplateFilter};
use serde_json::Value;

use super::dto::{
    CreateTemplateRequest, LabelRef, ListTemplatesQuery, ReadQuery, TemplateCreated, TemplateDto,
    TemplatePage, TemplateSummary, UpdateTemplateRequest, VersionDto,
};
use super::{NO_STORE, body_value, etag, path_label, path_name, query_value, required_if_match, version_ref};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::service::{ContentInput, CreateTemplate, ReadSelector, TemplateView, UpdateTemplate};
use crate::state::AppState;

pub(crate) fn view_dto(v: TemplateView) -> TemplateDto {
    let mut labels = vec![LabelRef { name: "latest".into(), version_seq: v.template.latest_seq }];
    labels.extend(v.labels.iter().map(|l| LabelRef { name: l.name.to_string(), version_seq: l.version_seq }));
    TemplateDto {
        summary: TemplateSummary::from(&v.template),
        long_description_markdown: v.template.long_description_markdown.clone(),
        labels,
        version: VersionDto::from(&v.version),
    }
}

/// The body from `template_text` or `messages`; `inherit` when neither.
pub(crate) fn body(
    text: Option<String>,
    messages: Option<Value>,
    inherit: Option<&TemplateBody>,
) -> Result<TemplateBody, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_template", m);
    match (text, messages) {
        (Some(_), Some(_)) => Err(invalid(
            "give template_text (a text template) or messages (a chat template), not both".into(),
        )),
        (Some(t), None) => Ok(TemplateBody::Text(t)),
        (None, Some(m)) => {
            let items: Vec<ChatItem> =
                serde_json::from_value(m).map_err(|e| invalid(format!("messages: {e}")))?;
            Ok(TemplateBody::Chat(items))
        }
        (None, None) => inherit
            .cloned()
            .ok_or_else(|| invalid("a template needs template_text (text) or messages (chat)".into())),
    }
}

pub(crate) fn tags(raw: Vec<String>) -> Result<Vec<Tag>, ApiError> {
    let mut tags = raw
        .iter()
        .map(|t| {
            Tag::parse(t)
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_name", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// List or search templates.
#[utoipa::path(get, path = "/templates", tag = "templates", operation_id = "list_templates",
    params(ListTemplatesQuery),
    responses(
        (status = 200, body = TemplatePage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListTemplatesQuery>,
) -> Result<axum::Json<TemplatePage>, ApiError> {
    let filter = TemplateFilter {
        type_key: q.type_key.as_deref().map(query_value::<PromptTypeKey>).transpose()?,
        tag: q.tag.as_deref().map(query_value::<Tag>).transpose()?,
        status: q.status.as_deref().map(query_value).transpose()?,
        classification: q.classification.as_deref().map(query_value).transpose()?,
        owner_id: q.owner.map(UserId::from),
        folder: q.folder.filter(|f| !f.is_empty()),
        // An empty search is no search.
        query: q.q.filter(|q| !q.trim().is_empty()),
    };
    if filter.query.as_ref().is_some_and(|q| q.len() > 500) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the search query may be at most 500 characters",
        ));
    }
    let page = PageRequest { limit: q.limit.unwrap_or(50), cursor: q.cursor };
    let found = s.registry.list_templates(&who, &filter, &page).await?;
    Ok(axum::Json(TemplatePage {
        items: found.items.iter().map(TemplateSummary::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Create a template with its first version (1.0.0, a draft).
#[utoipa::path(post, path = "/templates", tag = "templates", operation_id = "create_template",
    request_body = CreateTemplateRequest,
    responses(
        (status = 201, body = TemplateCreated, headers(("ETag" = String))),
        (status = 404, description = "Unknown prompt type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name, template, schema or undeclared variables", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<CreateTemplateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = TemplateName::parse(&req.name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_name", e.to_string()))?;
    let input = CreateTemplate {
        name,
        type_key: body_value(req.type_key.as_deref().unwrap_or("general"))?,
        description: req.description,
        long_description_markdown: req.long_description_markdown,
        owner_id: req.owner_id.map(UserId::from),
        tags: tags(req.tags)?,
        security_classification: req
            .security_classification
            .as_deref()
            .map(body_value::<SecurityClassification>)
            .transpose()?
            .unwrap_or_default(),
        content: ContentInput {
            body: body(req.template_text, req.messages, None)?,
            parameter_schema: req.parameter_schema,
            config: req.config,
        },
        change_description: req.change_description,
        access: req.access.map(Into::into).unwrap_or_default(),
    };
    let (view, warnings, findings) = s.registry.create_template(&who, input).await?;
    let revision = view.template.revision;
    Ok((
        StatusCode::CREATED,
        etag("tpl", revision),
        [NO_STORE],
        axum::Json(TemplateCreated {
            template: view_dto(view),
            warnings,
            findings: findings.iter().map(Into::into).collect(),
        }),
    ))
}

/// Read a template with one version: by `label`, by `version`, or the
/// default label (`production` unless configured).
#[utoipa::path(get, path = "/templates/{name}", tag = "templates", operation_id = "get_template",
    params(("name" = String, Path, description = "Template name; `/` may be sent raw or as %2F"), ReadQuery),
    responses(
        (status = 200, body = TemplateDto, headers(("ETag" = String, description = "The template's metadata revision"))),
        (status = 404, description = "No such template, label or version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let read = ReadSelector {
        label: q.label.as_deref().map(path_label).transpose()?,
        version: q.version.as_deref().map(version_ref).transpose()?,
    };
    let view = s.registry.read_template(&who, &name, &read).await?;
    let revision = view.template.revision;
    Ok((etag("tpl", revision), [NO_STORE], axum::Json(view_dto(view))))
}

/// Change a template's metadata (`If-Match` required).
#[utoipa::path(patch, path = "/templates/{name}", tag = "templates", operation_id = "update_template",
    params(("name" = String, Path), ("If-Match" = String, Header, description = "ETag of the template")),
    request_body = UpdateTemplateRequest,
    responses(
        (status = 200, body = TemplateSummary, headers(("ETag" = String))),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateTemplateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let expect = required_if_match(&headers, "tpl", || None)?;
    let patch = UpdateTemplate {
        type_key: req.type_key.as_deref().map(body_value).transpose()?,
        description: req.description,
        long_description_markdown: req.long_description_markdown,
        owner_id: req.owner_id.map(|o| o.map(UserId::from)),
        tags: req.tags.map(tags).transpose()?,
        security_classification: req.security_classification.as_deref().map(body_value).transpose()?,
        access: req.access.map(Into::into),
    };
    let t = s.registry.update_template(&who, &name, expect, patch).await?;
    Ok((etag("tpl", t.revision), axum::Json(TemplateSummary::from(&t))))
}

/// Delete a template with its versions and labels; its renderings are kept
/// (`If-Match` required).
#[utoipa::path(delete, path = "/templates/{name}", tag = "templates", operation_id = "delete_template",
    params(("name" = String, Path), ("If-Match" = String, Header)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 428, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(s): State<AppState>,
    who: Principal,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&raw)?;
    let expect = required_if_match(&headers, "tpl", || None)?;
    s.registry.delete_template(&who, &name, expect).await?;
    Ok(StatusCode::NO_CONTENT)
}
